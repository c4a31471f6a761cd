//! Helpers for tests that run the `wirecheck` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `wirecheck ARGS` from the repository root; returns output and wall time.
pub fn wirecheck(args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_wirecheck"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("wirecheck runs");
    (out, start.elapsed())
}

/// Runs `wirecheck run ARGS --report json:FILE` and returns (exit code, stdout, parsed report).
pub fn run_json(args: &[&str]) -> (i32, String, serde_json::Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = dir.path().join("r.json");
    let report = format!("json:{}", path.display());
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--report", &report]);
    let (out, _) = wirecheck(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let json = std::fs::read_to_string(&path)
        .map(|t| serde_json::from_str(&t).expect("valid JSON"))
        .unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), stdout, json)
}

/// Ids of the cases with verdict `verdict`.
pub fn cases_with(report: &serde_json::Value, verdict: &str) -> Vec<String> {
    let mut v: Vec<String> = report["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["verdict"] == verdict)
        .map(|c| c["case"].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

/// Live processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let is_pid = e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !zombie && cmd.contains(marker) && !cmd.contains("wirecheck run") {
            out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    out
}

/// A marker unique to this test run, to find leftover processes.
pub fn marker(name: &str) -> String {
    format!("wirecheck-test-{name}-{}", std::process::id())
}
