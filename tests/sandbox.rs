//! Untrusted programs are confined: each limit stops a program that breaks it, the report names
//! the limit, nothing it started survives (even what escaped its process group), it runs as the
//! given user, and `--isolate` gives it a network of its own.
//!
//! Parts that need root (switching users, network namespaces) are skipped with a printed reason
//! when not root; CI runs as root.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;
use std::time::Duration;

/// The dedicated user's process count is shared: one sandbox test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const USER: &str = "wirecheck-sandbox";

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A Python another user can run (a pyenv shim under /root cannot be), when running as root;
/// None (with the reason printed) when the user-switching parts must be skipped.
fn user_python(test: &str) -> Option<&'static str> {
    if !is_root() {
        eprintln!("{test}: skipped: not root, so wirecheck cannot run programs as another user");
        return None;
    }
    if !std::path::Path::new("/usr/bin/python3").exists() {
        eprintln!("{test}: skipped: no /usr/bin/python3 that user '{USER}' could run");
        return None;
    }
    Some("/usr/bin/python3")
}

fn fixture(file: &str) -> String {
    root().join("fixtures/targets").join(file).display().to_string()
}

/// The one case's failure message in a report.
fn failure_message(report: &serde_json::Value) -> String {
    report["cases"][0]["failure"]["message"].as_str().unwrap_or("").to_string()
}

/// Runs `exact-reply` against `exec` with `extra` flags; asserts it fails, in bounded time,
/// naming `limit`, and that no process with `marker` is left. Returns the report.
fn assert_stopped_by(exec: &str, extra: &[&str], limit: &str, marker: &str) -> serde_json::Value {
    let mut args = vec!["tcp-upper", "--case", "exact-reply", "--exec", exec];
    args.extend_from_slice(extra);
    let started = std::time::Instant::now();
    let (code, out, report) = run_json(&args);
    let took = started.elapsed();
    assert_eq!(code, 1, "{out}");
    assert_eq!(cases_with(&report, "fail"), ["exact-reply"], "{out}");
    let msg = failure_message(&report);
    assert!(
        msg.contains(&format!("sandbox: {limit}")),
        "the report does not name the limit '{limit}': {msg}\n{out}"
    );
    assert!(out.contains(limit), "the console does not name the limit: {out}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(processes_with(marker), Vec::<String>::new(), "survivors");
    report
}

#[test]
fn cpu_limit_stops_a_spinning_program() {
    let _g = serial();
    let m = marker("sandbox-cpu");
    let exec = format!("python3 {} {{port}} {m}", fixture("spins_cpu.py"));
    // A 2 s step timeout, scaled so that 1 s of CPU always comes first on a busy machine.
    assert_stopped_by(
        &exec,
        &["--limit", "cpu=1s", "--timeout-scale", "5"],
        "CPU time limit (1s) exceeded",
        &m,
    );
}

#[test]
fn cpu_limit_hard_stop_is_named_and_a_sigkill_before_it_is_not() {
    let _g = serial();
    let m = marker("sandbox-cpu-kill");
    // Ignoring SIGXCPU leaves the kernel's SIGKILL a second later: the limit's, by the CPU used.
    let exec = format!("python3 {} {{port}} {m} ignore-xcpu", fixture("spins_cpu.py"));
    assert_stopped_by(
        &exec,
        &["--limit", "cpu=1s", "--timeout-scale", "5"],
        "CPU time limit (1s) exceeded",
        &m,
    );
    // A SIGKILL that a process sends is not a limit, whatever limits are set.
    let exec = format!("python3 {} {{port}} {m}", fixture("kills_itself.py"));
    let report = assert_stopped_by(
        &exec,
        &["--limit", "cpu=5s", "--limit", "memory=512M"],
        "killed by SIGKILL that a process sent",
        &m,
    );
    assert!(!failure_message(&report).contains("limit ("), "{report}");
}

#[test]
fn memory_limit_stops_an_unbounded_allocation() {
    let _g = serial();
    let m = marker("sandbox-mem");
    let exec = format!("python3 {} {{port}} {m}", fixture("allocates_unbounded.py"));
    let report = assert_stopped_by(
        &exec,
        &["--limit", "memory=128M"],
        "memory limit (128 MiB) exceeded (allocation failed)",
        &m,
    );
    let tail = report["cases"][0]["failure"]["stderr_tail"].as_str().unwrap_or("");
    assert!(tail.contains("MemoryError"), "{tail}");
}

#[test]
fn file_size_limit_keeps_the_file_small() {
    let _g = serial();
    let m = marker("sandbox-fsize");
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().display().to_string();
    let exec = format!("python3 {} {{port}} {m}", fixture("writes_huge_file.py"));
    assert_stopped_by(
        &exec,
        &["--limit", "file-size=1M", "--cwd", &cwd],
        "file size limit (1 MiB) exceeded",
        &m,
    );
    let size = std::fs::metadata(dir.path().join("huge.bin")).map(|m| m.len());
    // It did write, in the folder it was given, and no more than the limit.
    assert!(matches!(size, Ok(n) if n > 0 && n <= 1 << 20), "huge.bin: {size:?}");
}

#[test]
fn process_limit_stops_a_fork_bomb_and_nothing_escapes() {
    let _g = serial();
    let Some(python) = user_python("process_limit_stops_a_fork_bomb_and_nothing_escapes") else {
        return;
    };
    let m = marker("sandbox-forks");
    // Its children setsid() out of the process group and double-fork into orphans.
    let exec = format!("{python} {} {{port}} {m}", fixture("fork_bomb.py"));
    let report = assert_stopped_by(
        &exec,
        &["--limit", "processes=32", "--user", USER],
        "process limit (32) reached (fork failed)",
        &m,
    );
    let tail = report["cases"][0]["failure"]["stderr_tail"].as_str().unwrap_or("");
    assert!(tail.contains("BlockingIOError"), "{tail}");
}

#[test]
fn program_runs_as_the_given_user_without_supplementary_groups() {
    let _g = serial();
    let Some(python) = user_python("program_runs_as_the_given_user_without_supplementary_groups") else {
        return;
    };
    let m = marker("sandbox-user");
    let exec = format!("id >&2; exec {python} {} {{port}} {m}", fixture("hangs.py"));
    let (code, out, report) = run_json(&[
        "tcp-upper",
        "--case",
        "exact-reply",
        "--exec",
        &exec,
        "--user",
        USER,
        "--timeout-scale",
        "0.25",
    ]);
    assert_eq!(code, 1, "{out}");
    let tail = report["cases"][0]["failure"]["stderr_tail"].as_str().unwrap_or("").to_string();
    let id = tail
        .lines()
        .find(|l| l.starts_with("uid="))
        .unwrap_or_else(|| panic!("no `id` line in: {tail}"));
    assert!(id.contains(&format!("({USER})")), "{id}");
    assert!(!id.starts_with("uid=0("), "{id}");
    let groups = id.split("groups=").nth(1).unwrap_or("");
    assert!(
        !groups.contains(',') && !groups.contains("(root)"),
        "supplementary groups kept: {id}"
    );
    assert_eq!(processes_with(&m), Vec::<String>::new());
}

#[test]
fn a_folder_the_user_cannot_read_is_a_usage_error_that_says_what_to_do() {
    let _g = serial();
    if user_python("a_folder_the_user_cannot_read_is_a_usage_error_that_says_what_to_do").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let cwd = dir.path().display().to_string();
    let (out, _) = wirecheck(&[
        "run",
        "tcp-upper",
        "--exec",
        "python3 server.py {port}",
        "--user",
        USER,
        "--cwd",
        &cwd,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("user '{USER}' cannot read {cwd}")), "{err}");
    assert!(err.contains("prepare_dir") && err.contains("chmod"), "{err}");
}

#[test]
fn bad_limits_name_the_flag_and_what_is_accepted() {
    for (bad, why) in [
        ("cpu=fast", "'fast' is not a duration"),
        ("colour=3", "unknown limit 'colour'"),
        ("memory=12T", "unknown size unit"),
        ("processes", "not KEY=VALUE"),
    ] {
        let (out, _) = wirecheck(&["run", "tcp-upper", "--limit", bad]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains("--limit") && err.contains(why) && err.contains("memory=256M"),
            "{bad}: {err}"
        );
    }
}

/// Whether `--isolate` works here; prints why not.
fn isolate_works(test: &str) -> bool {
    let (out, _) = wirecheck(&["run", "tcp-upper", "--case", "exact-reply", "--isolate"]);
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) && err.contains("--isolate") {
        eprintln!("{test}: skipped: {}", err.trim());
        return false;
    }
    assert_eq!(out.status.code(), Some(0), "{err}");
    true
}

#[test]
fn isolated_run_serves_its_own_target_and_cannot_reach_outside() {
    let _g = serial();
    if !isolate_works("isolated_run_serves_its_own_target_and_cannot_reach_outside") {
        return;
    }
    let m = marker("sandbox-isolate");
    let good = format!(
        "python3 {} {{port}} {m}",
        root().join("fixtures/students/tcp_upper_server.py").display()
    );
    let (code, out, _) = run_json(&["tcp-upper", "--isolate", "--exec", &good]);
    assert_eq!(code, 0, "a program inside the namespace passes: {out}");
    assert_eq!(processes_with(&m), Vec::<String>::new());
    // A server outside (it accepts, never answers): reachable without --isolate, not with it.
    let outside = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = outside.local_addr().unwrap().to_string();
    let (code, out, _) = run_json(&["tcp-upper", "--case", "exact-reply", "--target", &addr, "--timeout-scale", "0.25"]);
    assert_eq!(code, 1, "without --isolate the outside server is reached (and times out): {out}");
    let (code, out, _) = run_json(&["tcp-upper", "--case", "exact-reply", "--target", &addr, "--isolate"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains(&format!("nothing listens on tcp {addr}")), "{out}");
}

#[test]
fn isolate_without_root_says_what_to_do() {
    if !is_root() {
        // Run as we are: not root, so the refusal is the one under test.
        let (out, _) = wirecheck(&["run", "tcp-upper", "--isolate"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("--isolate needs root"), "{err}");
        return;
    }
    // As root: run wirecheck as nobody.
    use std::os::unix::process::CommandExt;
    let Some(nobody) = nix::unistd::User::from_name("nobody").ok().flatten() else {
        eprintln!("isolate_without_root_says_what_to_do: skipped: no user 'nobody' to run wirecheck as");
        return;
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wirecheck"))
        .args(["run", "tcp-upper", "--isolate", "--user", "somebody"])
        .current_dir(root())
        .uid(nobody.uid.as_raw())
        .gid(nobody.gid.as_raw())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--isolate needs root") && err.contains("sudo"), "{err}");
}

/// Whether `grade` can give each submission a sandbox here; prints why not.
fn grading_sandbox_works(test: &str) -> bool {
    if !is_root() {
        eprintln!("{test}: skipped: not root, so grading has no sandbox per submission");
        return false;
    }
    let (out, _) = wirecheck(&["grade-worker", "--probe"]);
    if out.status.code() != Some(0) {
        eprintln!("{test}: skipped: {}", String::from_utf8_lossy(&out.stderr).trim());
        return false;
    }
    true
}

/// Submissions graded three at once, one of which attacks the others, the grader and the
/// machine: it reads and writes the others' files, reads the reports, signals every process
/// it sees and process 1, connects to every port it sees, fills /tmp past the disk quota and
/// leaves a detached, renamed daemon. The others score full marks with every case passed,
/// their originals are unchanged, nothing of the attacker outlives the grading, and its own
/// report shows each attempt refused.
#[test]
fn submissions_three_at_once_one_attacking_the_others() {
    let _g = serial();
    if !grading_sandbox_works("submissions_three_at_once_one_attacking_the_others") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (subs, out) = (dir.path().join("subs"), dir.path().join("out"));
    let good = std::fs::read_to_string(root().join("fixtures/students/tcp_upper_server.py")).unwrap();
    // Graded three at a time, so mallory starts when a first grade's reports are written.
    for name in ["alice", "bob", "carol"] {
        std::fs::create_dir_all(subs.join(name)).unwrap();
        std::fs::write(subs.join(name).join("TCPServer.py"), &good).unwrap();
    }
    let m = marker("attacker");
    let attacker = std::fs::read_to_string(root().join("fixtures/targets/attacks_others.py"))
        .unwrap()
        .replace("@MARKER@", &m)
        .replace("@SUBMISSIONS@", subs.to_str().unwrap())
        .replace("@OUT@", out.to_str().unwrap());
    std::fs::create_dir_all(subs.join("mallory")).unwrap();
    std::fs::write(subs.join("mallory").join("TCPServer.py"), attacker).unwrap();
    let assignment = dir.path().join("isolation.yaml");
    std::fs::write(
        &assignment,
        "assignment: isolation\nmain: [TCPServer.py]\nretries: 0\nlimits: { cpu: 30s, memory: 512MiB, processes: 64, open_files: 256, disk: 32MiB }\nparts:\n  - suite: tcp-upper\n    name: tcp\n    tags: [textbook]\n    start: \"python3 {main} {port}\"\n",
    )
    .unwrap();
    let (o, _) = wirecheck(&[
        "grade",
        assignment.to_str().unwrap(),
        "--submissions",
        subs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        "3",
    ]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(!text.contains("without a sandbox"), "{text}");
    assert_eq!(
        processes_with(&m),
        Vec::<String>::new(),
        "the attacker's daemons outlived the grading"
    );
    for name in ["alice", "bob", "carol"] {
        let g: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join(name).join("grade.json")).unwrap()).unwrap();
        assert_eq!(g["score"], g["max_score"], "{name}: {text}");
        for c in g["cases"].as_array().unwrap() {
            assert_eq!(c["status"], "passed", "{name}: {c}");
        }
        assert_eq!(
            std::fs::read_to_string(subs.join(name).join("TCPServer.py")).unwrap(),
            good,
            "{name}'s original was changed"
        );
    }
    let g = std::fs::read_to_string(out.join("mallory").join("grade.json")).unwrap();
    for refused in [
        "attack read other submissions: refused",
        "attack write other submissions: refused",
        "attack read reports: refused",
        "attack kill process 1: refused",
        "attack flood ports: refused",
        "attack fill /tmp: refused: OSError: [Errno 28] No space left on device",
    ] {
        assert!(g.contains(refused), "the attacker's report lacks '{refused}': {g}");
    }
}

/// A submission that is one file, next to its assignment in one folder under /tmp (both kept in
/// sight in the sandbox's private /tmp): graded in full, and the file is left as it was.
#[test]
fn a_single_file_submission_beside_its_assignment_is_graded_and_left_intact() {
    let _g = serial();
    if !grading_sandbox_works("a_single_file_submission_beside_its_assignment_is_graded_and_left_intact") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(root().join("fixtures/students/tcp_upper_server.py")).unwrap();
    let file = dir.path().join("TCPServer.py");
    std::fs::write(&file, &good).unwrap();
    let assignment = dir.path().join("a.yaml");
    std::fs::write(
        &assignment,
        "assignment: single\nmain: [TCPServer.py]\nretries: 0\nparts:\n  - suite: tcp-upper\n    name: tcp\n    tags: [textbook]\n    start: \"python3 {main} {port}\"\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let (o, _) = wirecheck(&[
        "grade",
        assignment.to_str().unwrap(),
        "--submission",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--report",
        "json",
    ]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), good, "the submission was changed: {text}");
    assert_eq!(o.status.code(), Some(0), "{text}");
}
