//! Grading speed: grades 50 generated submissions of the Web Server lab
//! (`ci/assignments/webserver.yaml`) the way course staff would (`grade --submissions`), and
//! prints seconds per submission for each kind, and what a hanging submission costs against the
//! step timeout: cases take turns on one instance of the program until it hangs, then run side by
//! side on instances of their own, and a program that answered no case is not re-run, so a server
//! that never answers costs the first case's timeout and then the longest one (here get-binary's
//! 5 s, times 1.5) per part, not one timeout per case.
//!
//! ```text
//! cargo run --release --example bench_grade [-- [--jobs N] [--keep DIR]]
//! ```
//!
//! The submissions: 35 correct servers (the textbook one and a fuller one), 10 buggy ones (each
//! fails a case or two quickly), and 5 that accept connections and never answer.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use wirecheck::cli::grade::GradeArgs;

/// `wirecheck grade`'s arguments, parsed as the command line parses them.
#[derive(Parser)]
struct Grade {
    #[command(flatten)]
    args: GradeArgs,
}

/// A server that accepts every connection and never sends a byte.
const HANGS: &str = r#"import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
"#;

/// The step timeout of the `http` suite, times the assignment's `timeout_scale`.
const STEP_TIMEOUT_S: f64 = 2.0 * 1.5;

fn main() {
    let mut jobs = "2".to_string();
    let mut keep: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--jobs" => jobs = args.next().expect("--jobs N"),
            "--keep" => keep = Some(PathBuf::from(args.next().expect("--keep DIR"))),
            "-h" | "--help" => {
                println!("usage: bench_grade [--jobs N] [--keep DIR]");
                return;
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).expect("the checkout");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let base = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    let subs = base.join("class");
    let out = base.join("grades");
    let students = root.join("fixtures/students");
    let mut kinds: Vec<(String, &str)> = Vec::new();
    for i in 0..50 {
        let name = format!("student{i:02}");
        let dir = subs.join(&name);
        std::fs::create_dir_all(&dir).expect("submission folder");
        let (kind, source) = match i % 10 {
            0 => ("hangs", None),
            1 => ("buggy", Some("http_404_as_200.py")),
            2 => ("buggy", Some("http_no_blank_line.py")),
            3 | 5 | 7 => ("correct", Some("http_server.py")),
            _ => ("correct", Some("http_textbook_server.py")),
        };
        match source {
            Some(file) => std::fs::copy(students.join(file), dir.join("WebServer.py")).map(|_| ()),
            None => std::fs::write(dir.join("WebServer.py"), HANGS),
        }
        .expect("write the submission");
        kinds.push((name, kind));
    }

    // The same class graded in this process (the baseline), then, where it can be made, with a
    // sandbox per submission (as root on Linux): the ratio is what the sandbox costs.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let run = |no_sandbox: bool, out: &Path| -> f64 {
        let started = Instant::now();
        let mut argv = vec![
            "grade",
            "ci/assignments/webserver.yaml",
            "--submissions",
            subs.to_str().expect("utf-8 path"),
            "--out",
            out.to_str().expect("utf-8 path"),
            "--jobs",
            &jobs,
            "--seed",
            "1",
        ];
        if no_sandbox {
            argv.push("--no-sandbox");
        }
        let code = runtime.block_on(wirecheck::cli::grade::grade(Grade::parse_from(argv).args));
        assert_eq!(code, 0, "grading failed");
        started.elapsed().as_secs_f64()
    };
    let baseline = run(true, &base.join("grades-in-process"));
    let sandboxed = wirecheck::grade::worker::probe().is_ok().then(|| run(false, &out));
    let out = if sandboxed.is_some() { out } else { base.join("grades-in-process") };
    let wall = sandboxed.unwrap_or(baseline);

    let roster: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("roster.json")).expect("roster.json")).expect("roster JSON");
    let rows = roster["submissions"].as_array().expect("rows");
    let mut by_kind: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for r in rows {
        let name = r["submission"].as_str().unwrap_or_default();
        let kind = kinds.iter().find(|(n, _)| n == name).map_or("?", |(_, k)| *k);
        by_kind.entry(kind).or_default().push(r["duration_s"].as_f64().unwrap_or(0.0));
    }
    let cases = rows
        .first()
        .and_then(|r| r["max"].as_f64())
        .map_or(String::new(), |m| format!(", {m} points"));
    println!();
    println!(
        "{} submissions graded in {wall:.1} s with --jobs {jobs}{cases}{}",
        rows.len(),
        if sandboxed.is_some() { ", each in its own sandbox" } else { "" }
    );
    let busy: f64 = by_kind.values().flatten().sum();
    for (kind, times) in &by_kind {
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        let max = times.iter().cloned().fold(0.0, f64::max);
        println!(
            "  {kind:<8} {:>2} submissions: {mean:>5.1} s each on average (slowest {max:.1} s), {:>4.1}% of the grading time",
            times.len(),
            100.0 * times.iter().sum::<f64>() / busy
        );
    }
    match sandboxed {
        Some(s) => println!(
            "  a sandbox per submission: {s:.1} s against {baseline:.1} s graded in one process ({:.2}x)",
            s / baseline
        ),
        None => println!("  graded in one process ({baseline:.1} s): no sandbox here (needs root on Linux)"),
    }
    if let Some(h) = by_kind.get("hangs") {
        let worst = h.iter().cloned().fold(0.0, f64::max);
        println!(
            "  a hanging submission costs {worst:.1} s = {:.1}x one step timeout ({STEP_TIMEOUT_S} s) for its one part; one timeout per case would be at least {:.0} s",
            worst / STEP_TIMEOUT_S,
            STEP_TIMEOUT_S * 9.0
        );
    }
}
