//! Cases that only the bundled reference can run are proven with its fault switches: each must
//! pass the reference and fail the reference with the fault on.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wirecheck::run::{run_one, RunOptions, SuiteTarget, TargetSpec, Verdict};

/// Runs the `tag` cases of `suite` with `extra` added to its reference options; returns (case, verdict).
async fn run_tagged(suite: &str, tag: &str, extra: &str) -> Vec<(String, Verdict)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites").join(format!("{suite}.yaml"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    if !extra.is_empty() {
        text = text.replacen("reference_options: { ", &format!("reference_options: {{ {extra}, "), 1);
    }
    let suite = Arc::new(wirecheck::suite::load_str(&path, text).unwrap_or_else(|e| panic!("{e}")));
    let target = SuiteTarget::new(suite.clone(), TargetSpec::Reference, Duration::from_secs(5));
    let mut out = Vec::new();
    for (i, case) in suite.cases.iter().enumerate() {
        if case.tags.iter().any(|t| t == tag) {
            let (r, _) = run_one(&target, suite.clone(), i, &RunOptions::default()).await;
            out.push((case.id.clone(), r.verdict));
        }
    }
    target.stop().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_roundtrip_cases_catch_a_server_that_keeps_dot_stuffing() {
    let good = run_tagged("smtp", "roundtrip", "").await;
    assert!(good.len() >= 2 && good.iter().all(|(_, v)| *v == Verdict::Pass), "{good:?}");
    let faulty = run_tagged("smtp", "roundtrip", "fault: no-unstuff").await;
    assert!(
        faulty.iter().all(|(_, v)| *v == Verdict::Fail),
        "every round trip must catch the fault: {faulty:?}"
    );
}
