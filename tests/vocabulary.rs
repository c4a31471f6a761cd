//! Each step keyword both passes and fails where it should (tests/suites/vocabulary.yaml).

use std::sync::Arc;
use std::time::Duration;

use wirecheck::run::{run_one, RunOptions, SuiteTarget, TargetSpec, Verdict};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vocabulary_cases_pass_or_fail_as_tagged() {
    run_tagged("tests/suites/vocabulary.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_findings_fail_musts_and_warn_shoulds() {
    run_tagged("tests/suites/http-findings.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmet_premises_are_not_applicable_and_broken_answers_fail() {
    run_tagged("tests/suites/premise.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmet_structured_premise_is_not_applicable_but_a_must_finding_fails() {
    run_tagged("tests/suites/premise-http.yaml").await;
}

/// Runs every case of a test suite: `must-fail` cases must fail, `na` cases must be n/a (their
/// premise not offered: no points, none counted), `warns` cases must pass with a warning.
async fn run_tagged(file: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let suite = Arc::new(wirecheck::suite::load_file(&path).unwrap_or_else(|e| panic!("{e}")));
    let target = SuiteTarget::new(suite.clone(), TargetSpec::Reference, Duration::from_secs(5));
    let opts = RunOptions::default();
    let mut wrong = Vec::new();
    for (i, case) in suite.cases.iter().enumerate() {
        let (r, _) = run_one(&target, suite.clone(), i, &opts).await;
        let must_fail = case.tags.iter().any(|t| t == "must-fail");
        let na = case.tags.iter().any(|t| t == "na");
        let want = match (must_fail, na) {
            (true, _) => Verdict::Fail,
            (_, true) => Verdict::NotApplicable,
            _ => Verdict::Pass,
        };
        if na && (r.premise().is_none() || r.points != 0.0 || r.max_points() != 0.0) {
            wrong.push(format!("{}: n/a without its premise, or with points: {:?}", case.id, r.failure));
        }
        let warns = case.tags.iter().any(|t| t == "warns");
        if warns == r.warnings.is_empty() {
            wrong.push(format!(
                "{}: warnings {:?}, expected {}",
                case.id,
                r.warnings,
                if warns { "some" } else { "none" }
            ));
        }
        if r.verdict != want {
            wrong.push(format!(
                "{}: {:?}, wanted {want:?}: {:?}\n{}",
                case.id,
                r.verdict,
                r.failure,
                r.transcript(true)
            ));
        }
    }
    target.stop().await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_frames_pass_and_fail_as_tagged() {
    run_tagged("tests/suites/http2-vocabulary.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bittorrent_peer_wire_steps_pass_and_fail_as_tagged() {
    run_tagged("tests/suites/bittorrent-vocabulary.yaml").await;
}

/// A structured HTTP/2 send keeps RFC 9113 §8.2 unless the step says it breaks it on purpose.
#[test]
fn an_http2_field_the_rfc_forbids_is_a_load_error_unless_invalid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/suites/t.yaml");
    let suite = |headers: &str| {
        format!(
            "suite: t\nprotocol: http2\nreference: http2\ncases:\n  - id: a\n    steps:\n      - connect: c\n      - send: {{ request: {{ path: /, headers: {headers} }} }}\n      - expect: {{ frame: SETTINGS }}\n"
        )
    };
    for (headers, why) in [
        ("{ X-Upper: \"1\" }", "uppercase"),
        ("{ connection: close }", "connection-specific"),
        ("{ te: gzip }", "TE other than"),
    ] {
        let err = wirecheck::suite::load_str(&path, suite(headers))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(why) && err.contains("invalid: true"), "{headers}: {err}");
        let ok = suite(headers).replace("headers:", "invalid: true, headers:");
        assert!(wirecheck::suite::load_str(&path, ok).is_ok(), "{headers} with invalid: true");
    }
}
