//! GitHub Classroom: the base64-encoded JSON result its grading reporter
//! (`classroom-resources/autograding-grading-reporter`) reads from `<RUNNER>_RESULTS` and sums:
//! `{version: 1, status, max_score, tests: [{name, status, score, message, ...}]}`.

use serde_json::json;

use super::super::score::{Grade, Status};
use super::{shows_details, Audience};

/// The report's bytes: one line of base64.
pub fn render(g: &Grade, audience: Audience) -> Vec<u8> {
    let tests: Vec<_> = g
        .cases
        .iter()
        .map(|c| {
            let status = match c.status {
                // n/a is not a failure (0 of 0 points); the message says n/a.
                Status::Passed | Status::NotApplicable => "pass",
                // Not run because the build failed is an error of the submission, not a failed test.
                Status::NotRun if !g.build.ok => "error",
                Status::Error => "error",
                _ => "fail",
            };
            let message = if c.status == Status::Passed {
                super::figures_line(c, audience)
                    .map(|l| format!("figures: {l}"))
                    .unwrap_or_default()
            } else if shows_details(c, audience) {
                c.reason.clone().unwrap_or_default()
            } else {
                super::redacted_line(c)
            };
            json!({
                "name": c.name,
                "status": status,
                "score": c.score,
                "message": message,
                "test_code": "",
                "filename": "",
                "line_no": 0,
                "execution_time": format!("{:.2}s", c.duration.as_secs_f64()),
            })
        })
        .collect();
    let status = if !g.build.ok {
        "error"
    } else if g.all_passed() {
        "pass"
    } else {
        "fail"
    };
    let doc = json!({ "version": 1, "status": status, "max_score": g.max_score(), "tests": tests });
    let mut out = base64(serde_json::to_string(&doc).unwrap_or_default().as_bytes()).into_bytes();
    out.push(b'\n');
    out
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(i.as_bytes()), o);
        }
    }
}
