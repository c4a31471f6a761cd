//! `--report json:PATH`: the versioned machine-readable schema (documented in the README).

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::run::{CaseResult, Reporter, Summary};

/// The schema identifier written as `"schema"`; bumped on incompatible changes.
pub const SCHEMA: &str = "wirecheck.run/1";

/// Collects results and writes one JSON document at the end.
pub struct Json {
    path: PathBuf,
    cases: Vec<Value>,
}

impl Json {
    /// A reporter writing to `path` (`-` for stdout).
    pub fn new(path: PathBuf) -> Json {
        Json { path, cases: Vec::new() }
    }
}

/// One case as JSON (also used by other reporters and tests).
pub fn case_json(r: &CaseResult) -> Value {
    let case = r.case();
    let failure = r.failure.as_ref().map(|f| {
        json!({
            "message": f.message,
            "step": f.loc.map(|l| json!({
                "keyword": f.keyword,
                "file": r.suite.source.path.display().to_string(),
                "line": l.line,
                "col": l.col,
            })),
            "at": f.at.as_deref().map(|l| json!({ "line": l.line, "col": l.col })),
            "expected": f.expected,
            "got": f.got,
            "hints": f.hints,
            "stderr_tail": r.stderr_tail,
            "premise": f.premise.as_deref(),
        })
    });
    json!({
        "suite": r.suite.name,
        "suite_file": r.suite.source.path.display().to_string(),
        "case": case.id,
        "title": case.title,
        "rfc": case.rfc,
        "tags": case.tags,
        "hidden": case.hidden,
        "verdict": r.verdict,
        "points": r.points,
        "max_points": r.max_points(),
        "not_applicable": r.premise(),
        "duration_ms": r.duration.as_millis() as u64,
        "failure": failure,
        "warnings": r.warnings,
        "figures": super::figures::totals(&r.dialogue).into_iter().map(|(n, v)| (n, json!(v))).collect::<serde_json::Map<String, serde_json::Value>>(),
        "figure_series": super::figures::series(&r.dialogue)
            .into_iter()
            .map(|(n, v)| (n, json!(v.iter().map(|(t, x)| json!([*t as f64 / 1e6, x])).collect::<Vec<_>>())))
            .collect::<serde_json::Map<String, serde_json::Value>>(),
        "transcript": r.transcript(false),
        "dialogue": r.dialogue,
    })
}

impl Reporter for Json {
    fn case_finished(&mut self, r: &CaseResult) {
        self.cases.push(case_json(r));
    }

    fn finish(&mut self, summary: &Summary) -> std::io::Result<()> {
        let doc = json!({ "schema": SCHEMA, "summary": summary, "cases": self.cases });
        let mut bytes = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        super::write_output(&self.path, &bytes)
    }
}
