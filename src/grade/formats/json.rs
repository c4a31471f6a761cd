//! JSON (`wirecheck.grade/1`): each case as in the `run` report (`wirecheck.run/1`: verdict,
//! failure, transcript, dialogue) plus its grade (status, score, max_score, visibility, tier);
//! a redacted case keeps only its name, status and points.

use serde_json::{json, Value};

use super::super::score::{Grade, Status};
use super::{shows_details, Audience};

/// The schema identifier written as `"schema"`.
pub const SCHEMA: &str = "wirecheck.grade/1";

/// The report's bytes.
pub fn render(g: &Grade, audience: Audience) -> Vec<u8> {
    let count = |s: Status| g.cases.iter().filter(|c| c.status == s).count();
    let cases: Vec<Value> = g
        .cases
        .iter()
        .map(|c| {
            let mut v = json!({
                "name": c.name,
                "number": c.number,
                "suite": c.suite,
                "case": c.id,
                "status": c.status,
                "score": c.score,
                "max_score": c.max_score,
                "visibility": c.visibility,
                "tier": c.tier,
                "attempts": c.attempts,
            });
            if shows_details(c, audience) {
                if let Some(r) = &c.result {
                    if let (Value::Object(m), Value::Object(run)) = (&mut v, crate::report::case_json(r)) {
                        for (k, x) in run {
                            m.entry(k).or_insert(x);
                        }
                    }
                }
                v["title"] = json!(c.title);
                v["tags"] = json!(c.tags);
                v["reason"] = json!(c.reason);
                v["warnings"] = json!(c.warnings);
            }
            v
        })
        .collect();
    let doc = json!({
        "schema": SCHEMA,
        "run_schema": crate::report::SCHEMA,
        "assignment": g.assignment,
        "title": g.title,
        "submission": g.submission,
        "score": g.score(),
        "max_score": g.max_score(),
        "seed": g.seed,
        "suites_sha256": g.suites_sha256,
        "assignment_sha256": g.assignment_sha256,
        "build": g.build,
        "target_errors": g.target_errors,
        "notes": g.notes,
        "budget_exhausted": g.budget_exhausted,
        "duration_ms": g.duration.as_millis() as u64,
        "wirecheck": g.version,
        "summary": {
            "passed": count(Status::Passed), "failed": count(Status::Failed), "errors": count(Status::Error),
            "flaky": count(Status::Flaky), "not_run": count(Status::NotRun),
            "not_applicable": count(Status::NotApplicable),
        },
        "cases": cases,
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
