//! Misbehaving targets cost their timeouts, never the run, and leave no process behind.

mod common;
use common::*;
use std::time::Duration;

fn target(file: &str, marker: &str) -> String {
    format!("python3 fixtures/targets/{file}.py {{port}} {marker}")
}

#[test]
fn never_listening_target_exits_3_within_its_readiness_bound() {
    let m = marker("never");
    let (out, took) = wirecheck(&[
        "run",
        "tcp-upper",
        "--exec",
        &target("never_listens", &m),
        "--ready-timeout",
        "1500ms",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("never opened a tcp socket bound to port"), "{text}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert_eq!(processes_with(&m), Vec::<String>::new());
}

#[test]
fn target_that_exits_at_once_exits_3_with_its_stderr() {
    let (out, took) = wirecheck(&["run", "tcp-upper", "--exec", &target("exits_immediately", "x")]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("exit status 7") && text.contains("boom"), "{text}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn hanging_target_fails_within_timeouts() {
    let m = marker("hangs");
    let (code, out, report) = run_json(&[
        "tcp-upper",
        "--case",
        "exact-reply",
        "--case",
        "two-clients-in-turn",
        "--exec",
        &target("hangs", &m),
        "--timeout-scale",
        "0.5",
    ]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(cases_with(&report, "fail"), ["exact-reply", "two-clients-in-turn"], "{out}");
    let ms = report["summary"]["duration_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(ms < 8000, "took {ms} ms:\n{out}");
    assert!(out.contains("timed out"), "{out}");
    assert_eq!(processes_with(&m), Vec::<String>::new());
}

#[test]
fn flooding_target_is_capped() {
    let m = marker("floods");
    let (code, out, report) = run_json(&[
        "tcp-upper",
        "--case",
        "exact-reply",
        "--case",
        "mixed-text",
        "--exec",
        &target("floods", &m),
    ]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(cases_with(&report, "fail"), ["exact-reply", "mixed-text"], "{out}");
    assert_eq!(processes_with(&m), Vec::<String>::new());
}

#[test]
fn crash_costs_one_case_and_the_target_is_restarted() {
    let m = marker("crash");
    let (code, out, report) = run_json(&["tests/suites/crash.yaml", "--exec", &target("crashes_on_crash", &m)]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(cases_with(&report, "fail"), ["crash"], "{out}");
    assert_eq!(cases_with(&report, "pass"), ["after", "before"], "{out}");
    let crash = report["cases"].as_array().unwrap().iter().find(|c| c["case"] == "crash").unwrap();
    let msg = crash["failure"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("exit status 13"), "{msg}");
    assert!(
        crash["failure"]["stderr_tail"].as_str().unwrap_or("").contains("ValueError: crash"),
        "{crash}"
    );
    assert_eq!(processes_with(&m), Vec::<String>::new());
}

#[test]
fn forked_child_is_killed_with_the_group() {
    let m = marker("forks");
    let (code, out, _) = run_json(&["tcp-upper", "--case", "exact-reply", "--exec", &target("forks_child", &m)]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(processes_with(&m), Vec::<String>::new());
}

#[test]
fn target_ignoring_sigterm_is_killed() {
    let m = marker("sigterm");
    let (code, out, _) = run_json(&["tcp-upper", "--case", "exact-reply", "--exec", &target("ignores_sigterm", &m)]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(processes_with(&m), Vec::<String>::new());
}

#[test]
fn sigterm_to_wirecheck_kills_its_targets() {
    let m = marker("harness-term");
    let cmd = target("hangs", &m);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wirecheck"))
        .args(["run", "tcp-upper", "--exec", &cmd])
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until the target runs, then stop the harness as a CI runner would.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while processes_with(&m).is_empty() && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(!processes_with(&m).is_empty(), "the target never started");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(processes_with(&m), Vec::<String>::new());
}

#[test]
fn a_target_listening_on_another_port_is_told_where_it_listens() {
    let m = marker("elsewhere");
    let (out, _) = wirecheck(&[
        "run",
        "tcp-upper",
        "--exec",
        &target("listens_elsewhere", &m),
        "--ready-timeout",
        "1500ms",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let said = text.lines().find(|l| l.contains("listening on")).expect("its stdout or stderr");
    let port = said.split_whitespace().nth(2).unwrap();
    assert!(
        text.contains(&format!("the program listens on tcp port {port}, not on the port it was given")),
        "{text}"
    );
    assert!(text.contains("read the port from the command line"), "{text}");
    // Explained once, with its stderr; every other case says it could not run.
    assert_eq!(text.matches("listening on").count(), 1, "{text}");
    assert!(text.contains("the same as above: the case could not run"), "{text}");
    assert_eq!(processes_with(&m), Vec::<String>::new());
}

#[test]
fn send_cut_short_fails_only_when_the_next_step_wants_an_answer() {
    let m = marker("resets");
    let (code, out, report) = run_json(&["tests/suites/peer-gone.yaml", "--exec", &target("resets_on_line", &m)]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(cases_with(&report, "pass"), ["end-expected"], "{out}");
    assert_eq!(cases_with(&report, "fail"), ["answer-expected"], "{out}");
    let failed = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["case"] == "answer-expected")
        .unwrap();
    let msg = failed["failure"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("write failed"), "{failed}");
    assert_eq!(processes_with(&m), Vec::<String>::new());
}
