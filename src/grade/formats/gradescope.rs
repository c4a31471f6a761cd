//! Gradescope's `results.json` (the autograder specification): `score`, `execution_time`,
//! `output` (markdown), `stdout_visibility`, and per test `name`, `number`, `score`, `max_score`,
//! `status`, `output`, `output_format`, `tags`, `visibility`, `extra_data`.
//!
//! Gradescope itself withholds `hidden`, `after_due_date` and `after_published` tests from students
//! until their time; a `hidden` test's `output` still carries only "hidden case passed/failed", so
//! nothing of its expectations is in the file a student's browser may ever receive.

use serde_json::json;

use super::super::assignment::Visibility;
use super::super::score::Grade;
use super::{case_text, summary_markdown};

/// The results.json bytes.
pub fn render(g: &Grade) -> Vec<u8> {
    let tests: Vec<_> = g
        .cases
        .iter()
        .map(|c| {
            let show = c.visibility != Visibility::Hidden;
            let text = case_text(c, show);
            json!({
                "name": c.name,
                "number": c.number,
                "score": c.score,
                "max_score": c.max_score,
                // n/a is not a failure: "passed" with 0 of 0 points, the output says n/a.
                "status": if c.status.is_ok() { "passed" } else { "failed" },
                // Gradescope renders "md" output as markdown (with HTML): the text goes in a code block.
                "output": super::md_case_block(&text),
                "output_format": "md",
                "tags": c.tags,
                "visibility": c.visibility.as_str(),
                "extra_data": {
                    "wirecheck_status": c.status.as_str(),
                    "tier": c.tier,
                    "attempts": c.attempts,
                    "duration_ms": c.duration.as_millis() as u64,
                },
            })
        })
        .collect();
    let doc = json!({
        "score": g.score(),
        "execution_time": g.duration.as_secs().max(1),
        "output": summary_markdown(g),
        "output_format": "md",
        "stdout_visibility": g.stdout_visibility,
        "tests": tests,
        "extra_data": {
            "seed": g.seed,
            "suites_sha256": g.suites_sha256,
            "assignment_sha256": g.assignment_sha256,
            "build_ok": g.build.ok,
            "budget_exhausted": g.budget_exhausted,
            "wirecheck": g.version,
        },
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
