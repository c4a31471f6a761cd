//! Every case of every suite against its bundled reference: `cargo test -- tcp-upper::` filters.

use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use wirecheck::report::failure_text;
use wirecheck::run::{run_one, RunOptions, SuiteTarget, TargetSpec, Verdict};
use wirecheck::suite::{self, Suite};

fn main() {
    let args = Arguments::from_args();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("suites");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("suites/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    let mut trials = Vec::new();
    for p in paths {
        let suite = match suite::load_file(&p) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                // A broken suite is a failing test, not a crash of the whole harness.
                let name = p.file_stem().unwrap_or_default().to_string_lossy().into_owned();
                let msg = e.to_string();
                trials.push(Trial::test(format!("{name}::load"), move || Err(Failed::from(msg))));
                continue;
            }
        };
        for (i, case) in suite.cases.iter().enumerate() {
            let s = suite.clone();
            trials.push(Trial::test(format!("{}::{}", suite.name, case.id), move || run_case(s, i)).with_kind(suite.protocol.clone()));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

fn run_case(suite: Arc<Suite>, index: usize) -> Result<(), Failed> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let opts = RunOptions::default();
        let target = SuiteTarget::new(suite.clone(), TargetSpec::Reference, Duration::from_secs(10));
        let (result, _) = run_one(&target, suite.clone(), index, &opts).await;
        target.stop().await;
        if result.verdict != Verdict::Pass {
            return Err(Failed::from(failure_text(&result, false)));
        }
        // A change in what a reference server says shows up as a snapshot to review.
        let proto = wirecheck::proto::find(&suite.protocol).ok_or("unknown protocol")?;
        let text = result.dialogue.stable_transcript(proto);
        let name = format!("{}__{}", suite.name, suite.cases[index].id);
        std::panic::catch_unwind(|| insta::assert_snapshot!(name, text)).map_err(|_| {
            Failed::from(format!(
                "the transcript of {}::{} changed: review with `cargo insta review`",
                suite.name, suite.cases[index].id
            ))
        })
    })
}
