//! PrairieLearn's external grader results (`/grade/results/results.json`): `score` from 0 to 1,
//! `gradable: false` with `format_errors` when the build fails, and per test `points`/`max_points`.

use serde_json::json;

use super::super::score::{Grade, Status};
use super::{case_text, shows_details, summary_markdown, Audience};

/// The report's bytes.
pub fn render(g: &Grade, audience: Audience) -> Vec<u8> {
    let max = g.max_score();
    let score = if max > 0.0 { (g.score() / max).clamp(0.0, 1.0) } else { 0.0 };
    let tests: Vec<_> = g
        .cases
        .iter()
        .map(|c| {
            let show = shows_details(c, audience);
            json!({
                "name": c.name,
                "description": if show { c.title.clone() } else { String::new() },
                "points": c.score,
                "max_points": c.max_score,
                "message": if c.status == Status::Passed { String::new() } else if show { c.reason.clone().unwrap_or_default() } else { super::redacted_line(c) },
                "output": case_text(c, show),
            })
        })
        .collect();
    let mut doc = json!({
        "gradable": g.build.ok,
        "score": score,
        "message": summary_markdown(g),
        "tests": tests,
    });
    if !g.build.ok {
        let mut errors = vec![g.build.error.clone().unwrap_or_else(|| "the build failed".into())];
        errors.extend(g.build.output.lines().map(str::to_string).take(50));
        doc["format_errors"] = json!(errors);
    }
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
