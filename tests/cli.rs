//! The command line: suite and option errors (exit 2), reports that parse back, list, filters.

mod common;
use common::*;

fn bad_suite(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, text).unwrap();
    let (out, _) = wirecheck(&["run", path.to_str().unwrap()]);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn misspelt_step_exits_2_with_location_caret_and_suggestion() {
    let (code, err) = bad_suite(
        "suite: t\nprotocol: line\nreference: tcp-upper\ncases:\n  - id: a\n    steps:\n      - connect: c\n      - expcet: HELLO\n",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.yaml:8:9: error: unknown step 'expcet'"), "{err}");
    assert!(err.contains("8 |       - expcet: HELLO"), "{err}");
    assert!(err.contains("^^^^^^ did you mean 'expect'?"), "{err}");
}

#[test]
fn misspelt_key_exits_2_with_suggestion() {
    let (code, err) =
        bad_suite("suite: t\nprotocol: line\ncases:\n  - id: a\n    steps:\n      - connect: { nmae: c }\n      - expect: closed\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(":6:20: error: unknown key 'nmae' in connect"), "{err}");
    assert!(err.contains("did you mean 'name'?"), "{err}");
}

#[test]
fn lint_errors_exit_2() {
    let (code, err) = bad_suite("suite: t\nprotocol: line\ncases:\n  - id: a\n    steps: [connect: c, send: '${x}', expect: closed]\n  - id: a\n    steps: [connect: c]\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("variable '${x}' is used before it is set"), "{err}");
    assert!(err.contains("duplicate case id 'a'"), "{err}");
    assert!(err.contains("checks nothing"), "{err}");
}

#[test]
fn unknown_suite_name_gets_a_suggestion() {
    let (out, _) = wirecheck(&["run", "tcp-uper"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("did you mean 'tcp-upper'?"), "{err}");
}

/// Runs `wirecheck run tcp-upper --target TARGET` with a JSON report; asserts it stopped with
/// exit status 2 before any case ran (no report, no case line), and returns its stderr.
fn bad_target(target: &str) -> String {
    let (code, out, report) = run_json(&["tcp-upper", "--target", target]);
    assert_eq!(code, 2, "{out}");
    assert!(report.is_null(), "a report was written, so cases ran: {report}");
    for word in ["PASS", "FAIL", "ERROR", "passed"] {
        assert!(!out.contains(word), "{out}");
    }
    out
}

#[test]
fn target_without_a_port_exits_2_before_any_case() {
    let err = bad_target("localhost");
    assert!(
        err.contains("error: --target 'localhost': no port; write HOST:PORT, e.g. 127.0.0.1:12000"),
        "{err}"
    );
}

#[test]
fn target_with_an_unknown_host_exits_2_before_any_case() {
    let err = bad_target("nosuchhost.invalid:1");
    assert!(
        err.contains("error: --target 'nosuchhost.invalid:1': cannot resolve host 'nosuchhost.invalid'"),
        "{err}"
    );
}

#[test]
fn json_and_junit_reports_parse_back_with_dialogues() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let junit = dir.path().join("sub/r.xml");
    let (out, _) = wirecheck(&[
        "run",
        "tcp-upper",
        "udp-upper",
        "--report",
        &format!("json:{}", json.display()),
        "--report",
        &format!("junit:{}", junit.display()),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["schema"], "wirecheck.run/1");
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for c in cases {
        assert_eq!(c["verdict"], "pass");
        let events = c["dialogue"]["events"].as_array().unwrap();
        assert!(!events.is_empty(), "{c}");
        assert!(c["transcript"].as_str().unwrap().contains("C→S"), "{c}");
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    let parsed = roxmltree::Document::parse(&xml).unwrap();
    let testcases = parsed.descendants().filter(|n| n.has_tag_name("testcase")).count();
    assert_eq!(testcases, cases.len());
}

#[test]
fn junit_failure_text_is_element_content() {
    let (out, _) = wirecheck(&[
        "run",
        "tcp-upper",
        "--case",
        "split-writes",
        "--exec",
        "python3 fixtures/students/tcp_upper_single_recv.py {port}",
        "--report",
        "junit:-",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let xml = String::from_utf8_lossy(&out.stdout);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failure = doc.descendants().find(|n| n.has_tag_name("failure")).expect("a failure element");
    let text = failure.text().unwrap_or("");
    assert!(text.contains("suites/tcp-upper.yaml:"), "{xml}");
    assert!(failure.attribute("message").is_some());
}

#[test]
fn not_applicable_cases_show_in_every_run_report_and_do_not_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let junit = dir.path().join("r.xml");
    let (out, _) = wirecheck(&[
        "run",
        "tests/suites/premise.yaml",
        "--case",
        "premise-*offered",
        "--report",
        &format!("json:{}", json.display()),
        "--report",
        &format!("junit:{}", junit.display()),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "n/a is not a failure: {stdout}");
    assert!(stdout.contains("N/A   premise::premise-not-offered (2 pts not counted"), "{stdout}");
    assert!(stdout.contains("the program does not offer: an ETag (RFC 9110 §8.8.3)"), "{stdout}");
    assert!(stdout.contains("1 passed, 0 failed, 1 n/a; 2 of 2 points"), "{stdout}");
    assert!(!stdout.contains('\x1b'), "NO_COLOR is set: {stdout}");

    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["summary"]["not_applicable"], 1);
    assert_eq!(doc["summary"]["max_points"], 2.0);
    let na = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["case"] == "premise-not-offered")
        .unwrap();
    assert_eq!(na["verdict"], "n/a");
    assert_eq!((na["points"].as_f64(), na["max_points"].as_f64()), (Some(0.0), Some(0.0)));
    assert_eq!(na["not_applicable"], "an ETag (RFC 9110 §8.8.3)");
    assert_eq!(na["failure"]["premise"], "an ETag (RFC 9110 §8.8.3)");

    let xml = std::fs::read_to_string(&junit).unwrap();
    let parsed = roxmltree::Document::parse(&xml).unwrap();
    let skipped = parsed.descendants().find(|n| n.has_tag_name("skipped")).expect("a skipped element");
    assert_eq!(skipped.attribute("message"), Some("n/a: an ETag (RFC 9110 §8.8.3)"));
    assert!(parsed.descendants().all(|n| !n.has_tag_name("failure")), "{xml}");
}

#[test]
fn a_premise_step_that_times_out_fails_the_run() {
    let (out, _) = wirecheck(&["run", "tests/suites/premise.yaml", "--case", "premise-timeout-fails"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL  premise::premise-timeout-fails"), "{stdout}");
}

#[test]
fn list_json_has_every_case() {
    let (out, _) = wirecheck(&["list", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = doc.as_array().unwrap().iter().map(|s| s["suite"].as_str().unwrap()).collect();
    for s in ["socket-timeout", "tcp-upper", "udp-pinger", "udp-pinger-server", "udp-upper"] {
        assert!(names.contains(&s), "{names:?}");
    }
}

#[test]
fn filters_select_cases() {
    let (code, out, report) = run_json(&["tcp-upper", "--case", "two-*", "--tag", "core"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(cases_with(&report, "pass"), ["two-clients-in-turn"]);
    let (out, _) = wirecheck(&["run", "tcp-upper", "--case", "nothing-matches"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn decode_prints_transcripts_and_names_the_packet_of_a_corrupt_file() {
    let (out, _) = wirecheck(&["decode", "fixtures/captures/http-keepalive-5gets.pcap"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("== tcp ") && text.contains("(http)"), "{text}");
    assert_eq!(text.matches("C→S GET ").count(), 5, "{text}");
    let (out, _) = wirecheck(&["decode", "fixtures/captures/dns-udp-many-rrtypes.pcap", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(doc.as_array().is_some_and(|a| !a.is_empty()), "{doc}");
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    let bytes = std::fs::read(root().join("fixtures/captures/http-keepalive-5gets.pcap")).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (out, _) = wirecheck(&["decode", cut.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    // Decoded up to the cut, then the damage named: exit status 4.
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("damaged: ") && err.contains("cut.pcap: packet "), "{err}");
    assert!(regex::Regex::new(r"packet \d+ \(byte \d+\)").unwrap().is_match(&err), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("== tcp ") && text.contains("C→S GET "), "{text}");
    let (out, _) = wirecheck(&["check", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 breaking a MUST"));
    // Not a capture at all is still a usage error.
    std::fs::write(&cut, b"not a capture file").unwrap();
    let (out, _) = wirecheck(&["decode", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn decode_and_check_decrypt_tls_with_a_key_log_and_name_its_bad_line() {
    let (cap, keys) = (
        "fixtures/captures/tls12-https-decryption.pcap",
        "fixtures/captures/tls12-https-decryption.keylog",
    );
    let (out, _) = wirecheck(&["decode", cap]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TLS application data, ") && !text.contains("GET /"), "{text}");
    let (out, _) = wirecheck(&["decode", cap, "--keylog", keys]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("C→S GET / HTTP/1.1") && text.contains("S→C HTTP/1.1 301 Moved Permanently"),
        "{text}"
    );
    let (out, _) = wirecheck(&["check", cap, "--keylog", keys]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.keylog");
    std::fs::write(&bad, "# fine\nCLIENT_RANDOM 00 11\n").unwrap();
    for cmd in ["decode", "check"] {
        let (out, _) = wirecheck(&[cmd, cap, "--keylog", bad.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("bad.keylog: key log line 2: "), "{err}");
    }
}

#[test]
fn a_failing_header_check_points_at_the_header_line() {
    // Golden: the failure block down to the dialogue (which carries timings). Regenerate with
    // WIRECHECK_BLESS=1 after a deliberate change, and review the diff.
    let (out, _) = wirecheck(&["run", "tests/suites/header-location.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let block: String = stdout
        .lines()
        .skip_while(|l| !l.starts_with("  step:"))
        .take_while(|l| !l.starts_with("  dialogue:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let golden = root().join("tests/golden/header-location.txt");
    if std::env::var_os("WIRECHECK_BLESS").is_some() {
        std::fs::write(&golden, &block).unwrap();
    }
    assert_eq!(block, std::fs::read_to_string(&golden).unwrap(), "{stdout}");
    assert!(block.contains("at:       tests/suites/header-location.yaml:23:13"), "{block}");
}

/// Writes `text` as `name` in a temporary folder and runs wirecheck with `args`, where `{}` is
/// the file's path; returns the exit status and stderr.
fn with_file(name: &str, text: &str, args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let p = path.to_str().unwrap();
    let args: Vec<&str> = args.iter().map(|a| if *a == "{}" { p } else { a }).collect();
    let (out, _) = wirecheck(&args);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Ten thousand levels, in flow style (`[[[`, `{a: {a:`) and block style (`- - -`, nested keys).
fn deep_files() -> Vec<(&'static str, String)> {
    let n = 10_000;
    let head = "suite: deep\nprotocol: line\ncases: ";
    vec![
        ("flow sequences", format!("{head}{}{}\n", "[".repeat(n), "]".repeat(n))),
        ("flow mappings", format!("{head}{}x{}\n", "{a: ".repeat(n), "}".repeat(n))),
        ("block sequences", format!("{head}\n{}x\n", "- ".repeat(n))),
        // Block mappings need an indent per level; 2,000 levels keep the file small.
        (
            "block mappings",
            format!(
                "{head}\n{}",
                (0..2_000).map(|i| format!("{}k:\n", " ".repeat(i + 1))).collect::<String>()
            ),
        ),
    ]
}

#[test]
fn deeply_nested_suites_exit_2_with_a_location_not_a_stack_overflow() {
    for (what, text) in deep_files() {
        for cmd in [&["list", "{}"][..], &["run", "{}"][..]] {
            let (code, err) = with_file("deep.yaml", &text, cmd);
            assert_eq!(code, 2, "{what}, {cmd:?}: {err}");
            assert!(err.contains("nested more than 128 levels deep"), "{what}, {cmd:?}: {err}");
            let located = err.lines().next().unwrap_or("");
            assert!(
                located.contains("deep.yaml:") && located.split(':').nth(1).is_some_and(|l| l.parse::<u32>().is_ok()),
                "{what}: no file:line:col in {located}"
            );
            assert!(err.len() < 2_000, "{what}: the snippet shows the whole line: {} bytes", err.len());
        }
    }
}

#[test]
fn deeply_nested_assignment_exits_2_with_a_location() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    for (what, text) in deep_files() {
        let text = text.replace("suite: deep\nprotocol: line\ncases:", "assignment: deep\nparts:");
        let (code, err) = with_file("deep.yaml", &text, &["grade", "{}", "--submission", sub.to_str().unwrap()]);
        assert_eq!(code, 2, "{what}: {err}");
        assert!(
            err.contains("deep.yaml:") && err.contains("nested more than 128 levels deep"),
            "{what}: {err}"
        );
    }
}

#[test]
fn a_suite_over_the_size_limit_exits_2_naming_file_size_and_limit() {
    // Valid YAML, just too much of it: a comment line repeated past 16 MiB.
    let line = format!("# {}\n", "x".repeat(1021));
    let text = format!("suite: big\nprotocol: line\n{}", line.repeat(17 * 1024));
    let (code, err) = with_file("big.yaml", &text, &["list", "{}"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("big.yaml: error: the suite file is 17.0 MiB"), "{err}");
    assert!(err.contains("over the 16.0 MiB limit"), "{err}");
    let text = text.replace("suite: big\nprotocol: line\n", "assignment: big\n");
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = with_file("a.yaml", &text, &["grade", "{}", "--submission", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("a.yaml: error: the assignment file is 17.0 MiB"), "{err}");
}

#[test]
fn a_suite_with_thousands_of_errors_shows_the_first_fifty_quickly() {
    let case = "  - id: same\n    steps: [connect: c, expect: closed]\n";
    let text = format!("suite: t\nprotocol: line\ncases:\n{}", case.repeat(5_000));
    let start = std::time::Instant::now();
    let (code, err) = with_file("many.yaml", &text, &["list", "{}"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.matches("duplicate case id 'same'").count(), 50, "{err}");
    assert!(err.contains("... and 4949 more errors not shown; fix these first"), "{err}");
    assert!(start.elapsed() < std::time::Duration::from_secs(30), "{:?}", start.elapsed());
}

#[test]
fn run_reports_show_a_programs_control_sequences_without_playing_them() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let forger = root().join("fixtures/targets/forges_report.py");
    for extra in ["", " --exit"] {
        let exec = format!("python3 {} {{port}}{extra}", forger.display());
        // Colours forced on: a console that strips every escape sequence would hide a missing escape.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wirecheck"))
            .args(["run", "tcp-upper", "--case", "exact-reply", "--exec", &exec])
            .args(["--ready-timeout", "5s", "--report", &format!("junit:{}", junit.display())])
            .current_dir(root())
            .env_remove("NO_COLOR")
            .env("CLICOLOR_FORCE", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !text.contains("\x1b[2J") && !text.contains("\x1b]0;"),
            "{extra}: raw escapes:\n{text}"
        );
        assert!(text.contains("\\x1b[2J"), "{extra}: the escapes are shown:\n{text}");
        let xml = std::fs::read_to_string(&junit).unwrap();
        roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{extra}: {e}\n{xml}"));
    }
}

/// `start: { args }` reaches the program quoted for the shell, `{ out: NAME }` is in a folder of
/// the case's own, and `expect_file` passes the same bytes only (tests/suites/client-args.yaml,
/// run with `cp` as the client: its cases tagged must-fail must fail, the others pass).
#[test]
fn start_arguments_and_expect_file_pass_and_fail_as_tagged() {
    let path = root().join("tests/suites/client-args.yaml");
    let suite = wirecheck::suite::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut must_fail: Vec<String> = suite
        .cases
        .iter()
        .filter(|c| c.tags.iter().any(|t| t == "must-fail"))
        .map(|c| c.id.clone())
        .collect();
    let (code, out, report) = run_json(&["tests/suites/client-args.yaml", "--exec", "cp"]);
    assert_eq!(code, 1, "{out}");
    let mut failed = cases_with(&report, "fail");
    failed.sort();
    must_fail.sort();
    assert_eq!(failed, must_fail, "{out}");
    assert_eq!(cases_with(&report, "pass").len(), suite.cases.len() - must_fail.len(), "{out}");
}

/// `run --failed` re-runs what failed last time from this folder against the same command, and
/// says so when nothing is left; the record lives in the user's cache folder, not the working tree.
#[test]
fn failed_reruns_the_cases_that_failed_last_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache");
    let server = dir.path().join("server.py");
    let exec = format!("python3 {} {{port}}", server.display());
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "tcp-upper", "--exec", exec.as_str()];
        args.extend_from_slice(extra);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wirecheck"))
            .args(&args)
            .current_dir(root())
            .env("NO_COLOR", "1")
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .expect("wirecheck runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    };
    let (code, out) = run(&["--failed"]);
    assert_eq!(code, 2, "nothing recorded yet:\n{out}");
    assert!(out.contains("run once without --failed"), "{out}");

    std::fs::copy(root().join("fixtures/students/tcp_upper_single_recv.py"), &server).unwrap();
    let (code, all) = run(&[]);
    assert_eq!(code, 1, "{all}");
    let failed: Vec<&str> = all.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert!(!failed.is_empty() && all.contains("PASS "), "{all}");
    let (code, again) = run(&["--failed"]);
    assert_eq!(code, 1, "{again}");
    assert!(!again.contains("PASS "), "only the failed cases run:\n{again}");
    assert_eq!(again.lines().filter(|l| l.starts_with("FAIL ")).count(), failed.len(), "{again}");

    // Fixed: the same command passes them, and then nothing is left to re-run.
    std::fs::copy(root().join("fixtures/students/tcp_upper_server.py"), &server).unwrap();
    let (code, fixed) = run(&["--failed"]);
    assert_eq!(code, 0, "{fixed}");
    assert_eq!(fixed.lines().filter(|l| l.starts_with("PASS ")).count(), failed.len(), "{fixed}");
    let (code, none) = run(&["--failed"]);
    assert_eq!(code, 0, "{none}");
    assert!(none.contains("nothing to re-run"), "{none}");
    assert!(!root().join(".wirecheck").exists());
}

/// Completions and man pages come from the same definitions as --help.
#[test]
fn completions_and_man_pages() {
    let (out, _) = wirecheck(&["completions", "bash"]);
    let bash = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && bash.contains("_wirecheck()") && bash.contains("--failed"),
        "{bash}"
    );
    let (out, _) = wirecheck(&["man", "run"]);
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH wirecheck-run 1") && page.contains("\\-\\-failed"), "{page}");
    let (out, _) = wirecheck(&["man"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(".SH SUBCOMMANDS"));
    let (out, _) = wirecheck(&["man", "runn"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("commands: run, list"));
}

/// `list --tag/--case` picks cases as `run` does.
#[test]
fn list_filters_like_run() {
    let (out, _) = wirecheck(&["list", "http", "--tag", "conditional", "--case", "if-none-match-*"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let cases: Vec<&str> = text.lines().filter(|l| l.starts_with("  http::")).collect();
    assert!(cases.len() >= 2, "{text}");
    assert!(
        cases.iter().all(|l| l.contains("::if-none-match-") && l.contains("conditional")),
        "{text}"
    );
    let (out, _) = wirecheck(&["list", "--tag", "no-such-tag"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Loads `page` in headless Chromium (a profile of its own, so tests may run side by side) and
/// returns the DOM it built and the console messages it logged (`INFO:CONSOLE` lines: script
/// errors, and anything the page's Content-Security-Policy blocked).
fn chromium_dom(page: &std::path::Path) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("chromium")
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

/// The part of a dumped page from `id="case-N"` to the end of its section.
fn case_section(dom: &str, n: usize) -> &str {
    let at = dom.find(&format!("id=\"case-{n}\"")).unwrap_or_else(|| panic!("no case {n}"));
    let end = dom[at..].find("</section>").map_or(dom.len(), |e| at + e);
    &dom[at..end]
}

/// `--report html` as a browser shows it: Chromium loads the page with no console message (no
/// script, nothing blocked), draws a ladder per case with one arrow per message or close of the
/// transcript (the JSON report of the same run), marks the failing step in the failing case
/// only, and shows a hostile program's markup as text.
#[test]
fn html_report_renders_in_chromium_with_ladders_the_failing_step_marked_and_markup_escaped() {
    if !peer_installed("chromium", "chromium") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (page, json) = (dir.path().join("report.html"), dir.path().join("report.json"));
    let sample = root().join("fixtures/students/tcp_upper_single_recv.py");
    let exec = format!("python3 {} {{port}}", sample.display());
    let (out, _) = wirecheck(&[
        "run",
        "tcp-upper",
        "--case",
        "exact-reply",
        "--case",
        "split-writes",
        "--exec",
        &exec,
        "--report",
        &format!("html:{}", page.display()),
        "--report",
        &format!("json:{}", json.display()),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let (dom, console) = chromium_dom(&page);
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(!dom.contains("<script"), "the page has no script");
    assert!(dom.contains("<b>1</b> passed") && dom.contains("<b>1</b> failed"), "{dom}");
    for case in report["cases"].as_array().unwrap() {
        let id = case["case"].as_str().unwrap();
        // The report lists cases as the suite has them; the JSON as they finished.
        let n = if id == "exact-reply" { 1 } else { 2 };
        let section = case_section(&dom, n);
        assert!(section.contains(&format!("tcp-upper::{id}")), "{section}");
        let directed = case["transcript"]
            .as_str()
            .unwrap()
            .lines()
            .filter(|l| l.contains("C→S") || l.contains("S→C"))
            .count();
        assert!(directed >= 2, "{id}: {}", case["transcript"]);
        assert_eq!(section.matches("<svg class=\"ladder\"").count(), 1, "{id}");
        assert_eq!(
            section.matches("<g class=\"arrow ").count(),
            directed,
            "{id}: one arrow per message or close:\n{section}"
        );
        assert_eq!(section.matches("<g class=\"mark open\"").count(), 1, "{id}: the connection's open");
        let marked = section.matches("<g class=\"failure-mark\"").count();
        match case["verdict"].as_str().unwrap() {
            "pass" => assert_eq!(marked, 0, "{id}"),
            _ => {
                assert_eq!(marked, 1, "{id}: {section}");
                let step = &case["failure"]["step"];
                let at = format!("failed: send at suites/tcp-upper.yaml:{}:{}", step["line"], step["col"]);
                assert!(section.contains(&at), "{at}: {section}");
            }
        }
    }

    // A hostile program: its replies and stderr are markup, a script and an image among them.
    let forger = root().join("fixtures/targets/forges_report.py");
    let exec = format!("python3 {} {{port}}", forger.display());
    let (out, _) = wirecheck(&[
        "run",
        "tcp-upper",
        "--case",
        "exact-reply",
        "--exec",
        &exec,
        "--report",
        &format!("html:{}", page.display()),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let (dom, console) = chromium_dom(&page);
    assert!(console.is_empty(), "console messages: {console:#?}");
    for element in ["<script", "<img", "<h1>full marks", "<!--"] {
        assert!(!dom.contains(element), "{element} became markup:\n{dom}");
    }
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the script shows as text:\n{dom}"
    );
    assert!(dom.contains("<title>wirecheck run: tcp-upper"), "{dom}");
    let section = case_section(&dom, 1);
    assert!(section.contains("<g class=\"failure-mark\""), "{section}");
    assert!(section.contains("<g class=\"arrow msg s2c\""), "its reply is drawn: {section}");

    // And it renders: a screenshot is a PNG.
    let shot = dir.path().join("shot.png");
    let profile = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("chromium")
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--window-size=1000,1400"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"));
}

/// `run --report` writes every format `grade --report` does, each listing the run's cases in
/// suite order with the run's points; an unknown format is a usage error naming the known ones.
#[test]
fn run_reports_come_in_every_grade_format() {
    let dir = tempfile::tempdir().unwrap();
    let sample = root().join("fixtures/students/tcp_upper_single_recv.py");
    let exec = format!("python3 {} {{port}}", sample.display());
    let mut args = vec![
        "run",
        "tcp-upper",
        "--case",
        "split-writes",
        "--case",
        "exact-reply",
        "--exec",
        &exec,
    ];
    let formats = ["tap", "markdown", "gradescope", "prairielearn", "classroom", "html"];
    let specs: Vec<String> = formats.iter().map(|f| format!("{f}:{}", dir.path().join(f).display())).collect();
    for s in &specs {
        args.extend_from_slice(&["--report", s]);
    }
    let (out, _) = wirecheck(&args);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    let tap = read("tap");
    assert!(
        tap.starts_with("TAP version 13\n1..2\n# wirecheck run: tcp-upper: 2 of 4 points"),
        "{tap}"
    );
    assert!(tap.contains("\nok 1 - tcp-upper::exact-reply (2/2 pts)\n"), "{tap}");
    assert!(tap.contains("\nnot ok 2 - tcp-upper::split-writes (0/2 pts)\n"), "{tap}");
    assert!(tap.contains("step:     suites/tcp-upper.yaml:"), "the failure block: {tap}");
    let md = read("markdown");
    assert!(md.contains("| 1.2 | `tcp-upper::split-writes` | ❌ failed | 0/2 |"), "{md}");
    let gs: serde_json::Value = serde_json::from_str(&read("gradescope")).unwrap();
    assert_eq!(gs["score"].as_f64(), Some(2.0), "{gs}");
    assert_eq!(gs["tests"][1]["status"], "failed");
    let pl: serde_json::Value = serde_json::from_str(&read("prairielearn")).unwrap();
    assert_eq!(pl["score"].as_f64(), Some(0.5), "{pl}");
    assert!(!read("classroom").trim().is_empty());
    assert!(read("html").contains("<section class=\"case failed\" id=\"case-2\">"));

    let (out, _) = wirecheck(&["run", "tcp-upper", "--report", "htlm:x.html"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown report format 'htlm' (known: json, junit, html, markdown, tap, gradescope, prairielearn, classroom)"),
        "{err}"
    );
    assert!(err.contains("did you mean 'html'?"), "{err}");
}
