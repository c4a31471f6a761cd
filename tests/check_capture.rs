//! `wirecheck check`: passive rules find the seeded violations and pass clean captures; with
//! `--suite/--case` the verdict is the live one; `--snapshot` compares transcripts.

mod common;
use common::*;

fn seeded(name: &str) -> String {
    format!("fixtures/captures/seeded/{name}.pcapng")
}

fn check(args: &[&str]) -> (i32, String) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let (out, _) = wirecheck(&all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn passive_rules_find_each_seeded_violation() {
    for (file, rule) in [
        ("http-head-with-body", "MUST http message syntax"),
        ("smtp-ehlo-no-dash", "MUST RFC 5321 §4.2"),
        ("pop3-no-stuffing", "MUST pop3 message syntax"),
        ("dns-wrong-id", "MUST RFC 1035 §4.1.1: response id"),
    ] {
        let (code, out) = check(&[&seeded(file)]);
        assert_eq!(code, 1, "{file} should break a rule:\n{out}");
        assert!(out.contains(rule), "{file}: no '{rule}' in:\n{out}");
    }
}

#[test]
fn passive_rules_pass_clean_captures() {
    for file in ["http-clean-keep-alive", "smtp-clean"] {
        let (code, out) = check(&[&seeded(file)]);
        assert_eq!(code, 0, "{file} should be clean:\n{out}");
        assert!(out.contains("0 breaking a MUST"), "{out}");
    }
    // The public sample captures hold real servers' traffic (h2c included: what follows the
    // HTTP/2 preface is not HTTP/1's to judge): none breaks a MUST either.
    for e in std::fs::read_dir(root().join("fixtures/captures")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
            let (code, out) = check(&[path.to_str().unwrap()]);
            assert_eq!(code, 0, "{}:\n{out}", path.display());
        }
    }
}

#[test]
fn json_output_lists_violations() {
    let (code, out) = check(&[&seeded("dns-wrong-id"), "--format", "json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["failed"], 1);
    assert_eq!(v["conversations"][0]["violations"][0]["level"], "must");
}

#[test]
fn suite_case_verdicts_of_seeded_captures_are_the_live_ones() {
    for (file, suite, case, live) in [
        ("http-head-with-body", "http", "head-no-body", 1),
        ("smtp-ehlo-no-dash", "smtp", "ehlo-multiline", 1),
        ("pop3-no-stuffing", "pop3", "retr-byte-stuffed", 1),
        ("dns-wrong-id", "dns-auth", "id-echoed", 1),
        ("http-clean-keep-alive", "http", "keep-alive-two", 0),
        ("smtp-clean", "smtp", "ehlo-multiline", 0),
    ] {
        let (code, out) = check(&[&seeded(file), "--suite", suite, "--case", case]);
        assert_eq!(code, live, "{file} against {suite}::{case}:\n{out}");
    }
}

/// Runs `suite` live against `cmd` with capture on, then checks every case's capture offline.
fn agrees_with_live(suite: &str, cmd: &str, tags: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = dir.path().to_str().expect("utf-8");
    let mut args = vec![suite, "--exec", cmd, "--capture", cap];
    for t in tags {
        args.extend_from_slice(&["--tag", t]);
    }
    let (_, out, report) = run_json(&args);
    if out.contains("warning: --capture:") {
        eprintln!("SKIPPED: capturing is not permitted here:\n{out}");
        return;
    }
    let cases = report["cases"].as_array().expect("cases");
    assert!(cases.len() > 5, "{out}");
    let mut differ = Vec::new();
    let (mut pass, mut fail) = (0, 0);
    for c in cases {
        let id = c["case"].as_str().unwrap_or("");
        let live = match c["verdict"].as_str() {
            Some("pass") => 0,
            Some("fail") => 1,
            _ => continue,
        };
        if live == 0 {
            pass += 1
        } else {
            fail += 1
        }
        let file = format!("{cap}/{suite}/{id}.pcapng");
        let (code, text) = check(&[&file, "--suite", suite, "--case", id]);
        if code != live {
            differ.push(format!("{id}: live {live}, from the capture {code}\n{text}"));
        }
    }
    assert!(
        pass > 0 && fail > 0,
        "the sample should pass some cases and fail others ({pass} passed, {fail} failed)"
    );
    assert!(differ.is_empty(), "{} case(s) disagree:\n{}", differ.len(), differ.join("\n"));
}

#[test]
fn every_smtp_case_checked_from_its_capture_agrees_with_the_live_run() {
    agrees_with_live("smtp", "python3 fixtures/students/smtp_server_ehlo_no_dash.py {port}", &[]);
}

#[test]
fn every_basic_dns_case_checked_from_its_capture_agrees_with_the_live_run() {
    agrees_with_live(
        "dns-auth",
        "python3 fixtures/students/dns_auth_wrong_id.py {port} fixtures/dns/example.test.zone",
        &["basic"],
    );
}

#[test]
fn snapshot_compares_transcripts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let snap = dir.path().join("smtp.txt");
    let (out, _) = wirecheck(&["decode", &seeded("smtp-clean")]);
    std::fs::write(&snap, &out.stdout).unwrap();
    let snap_s = snap.to_str().unwrap();
    let (code, text) = check(&[&seeded("smtp-clean"), "--snapshot", snap_s]);
    assert_eq!(code, 0, "{text}");
    let changed = String::from_utf8_lossy(&out.stdout).replace("250", "251");
    std::fs::write(&snap, changed).unwrap();
    let (code, text) = check(&[&seeded("smtp-clean"), "--snapshot", snap_s]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("-") && text.contains("+"), "no diff in:\n{text}");
    let (code, text) = check(&[&seeded("smtp-clean"), "--snapshot", "/nonexistent/x.txt"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("wirecheck decode"), "no hint in:\n{text}");
}

#[test]
fn suites_whose_target_connects_back_are_refused() {
    let (code, text) = check(&[&seeded("http-clean-keep-alive"), "--suite", "http-proxy", "--case", "via-added"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("cannot be replayed"), "{text}");
}
