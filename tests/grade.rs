//! `wirecheck grade` and `wirecheck merge` end to end: scores of the sample submissions, the build
//! gate, hidden cases, every report format, budgets, re-runs, many submissions, shards, the
//! Gradescope autograder script.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Every format of `grade --report`.
const ALL_FORMATS: &[&str] = &[
    "gradescope",
    "junit",
    "json",
    "tap",
    "prairielearn",
    "classroom",
    "markdown",
    "html",
];

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", p.display()))
}

/// Grades `submission` with `assignment`, writing the Gradescope and JSON reports; returns
/// (exit code, console output, results.json, grade.json).
fn grade(assignment: &str, submission: &str, extra: &[&str]) -> (i32, String, Value, Value) {
    let dir = tempfile::tempdir().unwrap();
    let gs = dir.path().join("results.json");
    let js = dir.path().join("grade.json");
    let (gs_arg, js_arg) = (format!("gradescope:{}", gs.display()), format!("json:{}", js.display()));
    let mut args = vec![
        "grade",
        assignment,
        "--submission",
        submission,
        "--report",
        &gs_arg,
        "--report",
        &js_arg,
    ];
    args.extend_from_slice(extra);
    let (out, _) = wirecheck(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text, read_json(&gs), read_json(&js))
}

fn lost(results: &Value) -> Vec<String> {
    results["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["score"].as_f64() < t["max_score"].as_f64())
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

fn max_score(results: &Value) -> f64 {
    results["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["max_score"].as_f64().unwrap())
        .sum()
}

/// Checks a results.json against Gradescope's documented fields and types.
fn validate_gradescope(r: &Value) {
    let obj = r.as_object().expect("results.json is an object");
    assert!(r["score"].is_number(), "score: {r}");
    assert!(r["execution_time"].is_u64(), "execution_time is whole seconds: {r}");
    assert!(r["output"].is_string());
    assert!(matches!(r["stdout_visibility"].as_str(), Some("hidden" | "visible")));
    for k in obj.keys() {
        assert!(
            [
                "score",
                "execution_time",
                "output",
                "output_format",
                "stdout_visibility",
                "tests",
                "extra_data",
                "visibility"
            ]
            .contains(&k.as_str()),
            "unknown top-level key {k}"
        );
    }
    let tests = r["tests"].as_array().expect("tests is a list");
    let mut names = std::collections::HashSet::new();
    for t in tests {
        assert!(
            names.insert(t["name"].as_str().expect("name").to_string()),
            "duplicate test name {}",
            t["name"]
        );
        assert!(t["number"].is_string());
        let (score, max) = (t["score"].as_f64().expect("score"), t["max_score"].as_f64().expect("max_score"));
        assert!((0.0..=max).contains(&score), "{t}");
        assert!(matches!(t["status"].as_str(), Some("passed" | "failed")), "{t}");
        assert!(t["output"].is_string());
        assert!(matches!(
            t["output_format"].as_str(),
            Some("text" | "html" | "simple_format" | "md" | "ansi")
        ));
        assert!(t["tags"].as_array().is_some_and(|a| a.iter().all(Value::is_string)));
        assert!(matches!(
            t["visibility"].as_str(),
            Some("visible" | "hidden" | "after_due_date" | "after_published")
        ));
        assert!(t["extra_data"].is_object());
    }
    let sum: f64 = tests.iter().map(|t| t["score"].as_f64().unwrap()).sum();
    assert!((sum - r["score"].as_f64().unwrap()).abs() < 1e-6, "score is the sum of the tests");
}

const STUDENT: &str = "fixtures/students";

#[test]
fn the_good_web_server_scores_full_marks() {
    let (code, out, gs, js) = grade(
        "ci/assignments/webserver.yaml",
        &format!("{STUDENT}/http_textbook_server.py"),
        &["--student"],
    );
    assert_eq!(code, 0, "{out}");
    validate_gradescope(&gs);
    assert_eq!(gs["score"].as_f64(), Some(max_score(&gs)), "{out}");
    assert!(max_score(&gs) > 0.0);
    assert_eq!(js["schema"], "wirecheck.grade/1");
    assert_eq!(js["seed"], gs["extra_data"]["seed"], "one seed in every report");
    assert_eq!(js["suites_sha256"].as_str().map(str::len), Some(64));
    assert!(out.contains(&format!("seed {}", js["seed"])), "the seed is printed: {out}");
}

#[test]
fn each_buggy_web_server_scores_less_with_the_lost_case_named() {
    for (assignment, file, case) in [
        ("webserver", "http_no_blank_line", "get-index"),
        ("webserver", "http_404_as_200", "not-found"),
        ("webserver", "http_single_recv", "split-request"),
        ("webserver", "http_crash_on_empty", "empty-connection"),
        ("webserver-mt", "http_length_in_chars", "get-utf8"),
        ("webserver-mt", "http_close_no_header", "keep-alive-two"),
        // http_traversal and http_no_threads take 15 s each here (their failures wait out step
        // timeouts); HEAD and Host checks are opt-in (core) for the lab: tests/students.rs checks
        // that those samples fail their cases.
    ] {
        let a = format!("ci/assignments/{assignment}.yaml");
        let (code, out, gs, _) = grade(&a, &format!("{STUDENT}/{file}.py"), &["--retries", "0"]);
        assert_eq!(code, 1, "{file}: {out}");
        assert!(gs["score"].as_f64().unwrap() < max_score(&gs), "{file} scores less: {out}");
        let lost = lost(&gs);
        assert!(lost.contains(&format!("web::{case}")), "{file} loses web::{case}; lost {lost:?}");
        assert!(out.contains(&format!("web::{case}")), "the console names the lost case: {out}");
    }
}

#[test]
fn a_submission_that_does_not_build_scores_zero_with_every_case_listed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("WebServer.py"), "def broken(:\n    pass\n").unwrap();
    let reports = tempfile::tempdir().unwrap();
    let pl = reports.path().join("pl.json");
    let pl_arg = format!("prairielearn:{}", pl.display());
    let (code, out, gs, js) = grade(
        "ci/assignments/webserver.yaml",
        dir.path().to_str().unwrap(),
        &["--report", &pl_arg],
    );
    assert_eq!(code, 3, "{out}");
    validate_gradescope(&gs);
    assert_eq!(gs["score"].as_f64(), Some(0.0));
    let tests = gs["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 9, "every case of the textbook profile is listed");
    assert!(tests.iter().all(|t| t["score"] == 0.0 && t["status"] == "failed"));
    assert!(
        gs["output"].as_str().unwrap().contains("SyntaxError"),
        "the build output is shown: {}",
        gs["output"]
    );
    assert_eq!(js["build"]["ok"], false);
    let pl = read_json(&pl);
    assert_eq!(pl["gradable"], false);
    assert!(pl["format_errors"].as_array().is_some_and(|e| !e.is_empty()));
    assert!(out.contains("build failed"), "{out}");
}

/// Grading a folder says why a submission scored 0 (its build failed, its program did not start),
/// and the roster has a status and a build column; an empty folder is a usage error.
#[test]
fn a_class_roster_says_why_a_submission_scored_zero() {
    let dir = tempfile::tempdir().unwrap();
    let subs = dir.path().join("class");
    for (name, code) in [
        ("broken", "def broken(:\n    pass\n"),
        // Builds (it compiles) but exits at once: nothing ever listens.
        ("quits", "import sys\nsys.exit(0)\n"),
    ] {
        std::fs::create_dir_all(subs.join(name)).unwrap();
        std::fs::write(subs.join(name).join("WebServer.py"), code).unwrap();
    }
    std::fs::create_dir_all(subs.join("good")).unwrap();
    std::fs::copy(
        root().join(format!("{STUDENT}/http_textbook_server.py")),
        subs.join("good/WebServer.py"),
    )
    .unwrap();
    let out_dir = dir.path().join("grades");
    let (o, _) = wirecheck(&[
        "grade",
        "ci/assignments/webserver.yaml",
        "--submissions",
        subs.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--retries",
        "0",
    ]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}: ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("broken").contains("0 of") && line("broken").contains("build failed: "),
        "{text}"
    );
    assert!(line("quits").contains("the program did not start: "), "{text}");
    assert!(!line("good").contains("not passed"), "{text}");
    let csv = std::fs::read_to_string(out_dir.join("roster.csv")).unwrap();
    let row = |name: &str| {
        csv.lines()
            .find(|l| l.starts_with(&format!("{name},")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(row("broken").contains(",build failed,failed,"), "{csv}");
    assert!(row("quits").contains(",did not start,ok,"), "{csv}");
    assert!(row("good").contains(",graded,ok,,"), "{csv}");

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (o, _) = wirecheck(&["grade", "ci/assignments/webserver.yaml", "--submissions", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no submissions in"));
}

/// Perl's `prove` reads the TAP report as it is meant: an all-pass grade passes, a failed case or
/// a failed build fails (TAP version 13, a build that failed is a test that failed).
#[test]
fn prove_reads_the_tap_report_right() {
    if !peer_installed("prove", "perl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("WebServer.py"), "def broken(:\n    pass\n").unwrap();
    for (submission, passes) in [
        (format!("{STUDENT}/http_textbook_server.py"), true),
        (format!("{STUDENT}/http_404_as_200.py"), false),
        (broken.display().to_string(), false),
    ] {
        let tap = dir.path().join("grade.tap");
        let arg = format!("tap:{}", tap.display());
        let (_, out, _, _) = grade("ci/assignments/webserver.yaml", &submission, &["--report", &arg, "--retries", "0"]);
        let prove = Command::new("prove").args(["-e", "cat"]).arg(&tap).output().unwrap();
        let said = String::from_utf8_lossy(&prove.stdout).into_owned();
        assert_eq!(
            prove.status.success(),
            passes,
            "{submission}: prove says\n{said}\n{}\n{out}",
            std::fs::read_to_string(&tap).unwrap_or_default()
        );
        assert!(said.contains(if passes { "Result: PASS" } else { "Result: FAIL" }), "{said}");
        assert!(!said.contains("Parse errors"), "{said}");
    }
}

#[test]
fn hidden_cases_show_no_expectations_to_students() {
    // empty-connection is hidden in webserver.yaml; the sample crashes on it.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let (code, out, gs, js) = grade(
        "ci/assignments/webserver.yaml",
        &format!("{STUDENT}/http_crash_on_empty.py"),
        &["--student", "--retries", "0", "--report", &format!("html:{}", page.display())],
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(code, 1, "--student exits non-zero when anything failed: {out}");
    validate_gradescope(&gs);
    let hidden = gs["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "web::empty-connection")
        .unwrap()
        .clone();
    assert_eq!(hidden["visibility"], "hidden");
    assert_eq!(hidden["output"], "```text\nhidden case failed\n```");
    // What the case checks must not appear anywhere a student reads.
    let (list, _) = wirecheck(&["list", "http", "--format", "json"]);
    let suites: Value = serde_json::from_slice(&list.stdout).unwrap();
    let case = suites[0]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "empty-connection")
        .unwrap()
        .clone();
    let title = case["title"].as_str().unwrap();
    let suite_text = std::fs::read_to_string(root().join("suites/http.yaml")).unwrap();
    let step_line = suite_text.lines().position(|l| l.contains("id: empty-connection")).unwrap() + 1;
    for (what, text) in [
        ("console", out.as_str()),
        ("results.json", &gs.to_string()),
        ("grade.json", &js.to_string()),
        ("report.html", &html),
    ] {
        assert!(!text.contains(title), "{what} shows the hidden case's title:\n{text}");
        assert!(
            !text.contains(&format!("http.yaml:{}", step_line + 3)),
            "{what} points into the hidden case"
        );
    }
    assert!(out.contains("hidden case failed"), "{out}");
    let case_json = js["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["case"] == "empty-connection")
        .unwrap();
    assert!(
        case_json.get("transcript").is_none() && case_json.get("failure").is_none(),
        "{case_json}"
    );
    // The page: its name, status and points; no dialogue, no failure block.
    let at = html
        .find("<code>web::empty-connection</code><span class=\"pts\">")
        .expect("the hidden case is listed");
    let section = &html[at..at + html[at..].find("</section>").unwrap()];
    assert!(section.contains("hidden case failed") && section.contains("0/2 pts"), "{section}");
    for detail in ["<svg", "<dl", "transcript", "<pre"] {
        assert!(!section.contains(detail), "{detail} in the hidden case:\n{section}");
    }
    assert!(html.contains("<svg class=\"ladder\""), "visible cases have their ladders");
}

#[test]
fn every_format_lists_every_case() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("reports");
    let mut args = vec![
        "grade",
        "ci/assignments/webserver.yaml",
        "--submission",
        "fixtures/students/http_404_as_200.py",
        "--retries",
        "0",
        "--student",
        "--out",
        out_dir.to_str().unwrap(),
    ];
    for f in ALL_FORMATS {
        args.extend_from_slice(&["--report", f]);
    }
    let (o, _) = wirecheck(&args);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert_eq!(html.matches("<section class=\"case ").count(), 9, "{html}");
    assert_eq!(html.matches("<section class=\"case failed\"").count(), 1, "{html}");
    assert!(html.contains("<b>16</b> of 18 points"), "{html}");
    let xml = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 9);
    let names: std::collections::HashSet<_> = cases.iter().map(|c| c.attribute("name").unwrap()).collect();
    assert_eq!(names.len(), 9, "unique names");
    let failing = cases.iter().find(|c| c.attribute("name") == Some("web::not-found")).unwrap();
    let failure = failing.children().find(|n| n.has_tag_name("failure")).unwrap();
    assert!(
        failure.text().unwrap_or("").contains("expected"),
        "failure text is element content for GitLab"
    );
    let tap = std::fs::read_to_string(out_dir.join("grade.tap")).unwrap();
    assert!(tap.starts_with("TAP version 13\n1..9\n"), "{tap}");
    assert_eq!(tap.lines().filter(|l| l.starts_with("not ok")).count(), 1, "{tap}");
    let pl = read_json(&out_dir.join("prairielearn.json"));
    assert_eq!(pl["gradable"], true);
    assert!((pl["score"].as_f64().unwrap() - 16.0 / 18.0).abs() < 1e-6, "{pl}");
    let b64 = std::fs::read_to_string(out_dir.join("classroom.b64")).unwrap();
    let decoded = Command::new("base64")
        .arg("-d")
        .stdin(std::fs::File::open(out_dir.join("classroom.b64")).unwrap())
        .output()
        .unwrap();
    assert!(decoded.status.success(), "{b64}");
    let cl: Value = serde_json::from_slice(&decoded.stdout).unwrap();
    assert_eq!(
        (cl["version"].as_u64(), cl["max_score"].as_f64(), cl["status"].as_str()),
        (Some(1), Some(18.0), Some("fail"))
    );
    let sum: f64 = cl["tests"].as_array().unwrap().iter().map(|t| t["score"].as_f64().unwrap()).sum();
    assert_eq!(sum, 16.0, "the reporter sums test scores");
    let md = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(
        md.contains("16 of 18 points") && md.contains("| 1.5 | `web::not-found` | ❌ failed | 0/2 |"),
        "{md}"
    );
}

/// An assignment over the premise test suite: one case whose premise holds, one whose does not.
fn premise_assignment(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("premise.yaml");
    let suite = root().join("tests/suites/premise.yaml");
    std::fs::write(
        &p,
        format!(
            "assignment: premise-small\nmain: [\"*.py\"]\nparts:\n  - suite: {}\n    name: p\n    cases: [premise-offered, premise-not-offered]\n    start: \"python3 {{main}} {{port}}\"\n{extra}",
            suite.display()
        ),
    )
    .unwrap();
    p
}

fn grade_every_format(assignment: &Path, out_dir: &Path) -> (i32, String) {
    let mut args = vec![
        "grade",
        assignment.to_str().unwrap(),
        "--submission",
        "fixtures/students/tcp_upper_server.py",
        "--student",
        "--out",
        out_dir.to_str().unwrap(),
    ];
    for f in ALL_FORMATS {
        args.extend_from_slice(&["--report", f]);
    }
    let (o, _) = wirecheck(&args);
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned())
}

fn classroom(out_dir: &Path) -> Value {
    let decoded = Command::new("base64")
        .arg("-d")
        .stdin(std::fs::File::open(out_dir.join("classroom.b64")).unwrap())
        .output()
        .unwrap();
    serde_json::from_slice(&decoded.stdout).unwrap()
}

#[test]
fn a_case_that_does_not_apply_costs_nothing_and_shows_as_n_a_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("reports");
    let (code, out) = grade_every_format(&premise_assignment(dir.path(), ""), &out_dir);
    assert_eq!(code, 0, "n/a is not a failure: {out}");
    assert!(out.contains("N/A   p::premise-not-offered (n/a: 2 pts not counted)"), "{out}");
    assert!(
        out.contains("score: 2 of 2 points; n/a (not counted): p::premise-not-offered"),
        "{out}"
    );

    let gs = read_json(&out_dir.join("results.json"));
    validate_gradescope(&gs);
    assert_eq!((gs["score"].as_f64(), max_score(&gs)), (Some(2.0), 2.0));
    let na = &gs["tests"][1];
    assert_eq!(
        (na["status"].as_str(), na["score"].as_f64(), na["max_score"].as_f64()),
        (Some("passed"), Some(0.0), Some(0.0))
    );
    assert_eq!(na["extra_data"]["wirecheck_status"], "n/a");
    assert!(
        na["output"].as_str().unwrap().contains("does not offer: an ETag (RFC 9110 §8.8.3)"),
        "{na}"
    );

    let js = read_json(&out_dir.join("grade.json"));
    assert_eq!((js["score"].as_f64(), js["max_score"].as_f64()), (Some(2.0), Some(2.0)));
    assert_eq!(js["summary"]["not_applicable"], 1);
    assert_eq!(
        (js["cases"][1]["status"].as_str(), js["cases"][1]["verdict"].as_str()),
        (Some("n/a"), Some("n/a"))
    );

    let xml = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let skipped = doc.descendants().find(|n| n.has_tag_name("skipped")).expect("n/a is skipped");
    assert!(skipped.attribute("message").unwrap().starts_with("n/a: "), "{xml}");
    assert!(doc.descendants().all(|n| !n.has_tag_name("failure")), "{xml}");

    let tap = std::fs::read_to_string(out_dir.join("grade.tap")).unwrap();
    assert!(tap.contains("\nok 2 - p::premise-not-offered (0/0 pts) # SKIP n/a: "), "{tap}");
    assert!(!tap.contains("not ok"), "{tap}");

    let pl = read_json(&out_dir.join("prairielearn.json"));
    assert_eq!(pl["score"].as_f64(), Some(1.0), "{pl}");
    assert_eq!(pl["tests"][1]["max_points"].as_f64(), Some(0.0));
    assert!(pl["tests"][1]["message"].as_str().unwrap().starts_with("n/a: "), "{pl}");

    let cl = classroom(&out_dir);
    assert_eq!((cl["max_score"].as_f64(), cl["status"].as_str()), (Some(2.0), Some("pass")), "{cl}");
    assert!(cl["tests"][1]["message"].as_str().unwrap().starts_with("n/a: "), "{cl}");

    let md = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(
        md.contains("2 of 2 points") && md.contains("| 1.2 | `p::premise-not-offered` | ➖ n/a | 0/0 |"),
        "{md}"
    );
    assert!(
        md.contains("Does not apply (n/a): `p::premise-not-offered` (2 points not counted)"),
        "{md}"
    );

    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("<b>1</b> n/a") && html.contains("<b>2</b> of 2 points"), "{html}");
    assert!(html.contains("n/a: 2 pts not counted"), "{html}");
    assert!(html.contains("the program does not offer: an ETag (RFC 9110 §8.8.3)"), "{html}");
}

#[test]
fn a_required_premise_that_is_not_offered_fails_the_case() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("reports");
    let a = premise_assignment(dir.path(), "    require: [premise-not-offered]\n");
    let (code, out) = grade_every_format(&a, &out_dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  p::premise-not-offered (0/2 pts)"), "{out}");
    assert!(out.contains("score: 2 of 4 points; not passed: p::premise-not-offered"), "{out}");
    let js = read_json(&out_dir.join("grade.json"));
    assert_eq!((js["score"].as_f64(), js["max_score"].as_f64()), (Some(2.0), Some(4.0)));
    let c = &js["cases"][1];
    assert_eq!(c["status"], "failed");
    assert!(
        c["reason"]
            .as_str()
            .unwrap()
            .contains("the assignment requires an ETag (RFC 9110 §8.8.3)"),
        "{c}"
    );
    let gs = read_json(&out_dir.join("results.json"));
    assert_eq!(gs["tests"][1]["status"], "failed");
    assert!(lost(&gs).contains(&"p::premise-not-offered".to_string()));
    let tap = std::fs::read_to_string(out_dir.join("grade.tap")).unwrap();
    assert!(tap.contains("not ok 2 - p::premise-not-offered (0/2 pts)\n"), "{tap}");
    assert!(tap.contains("required: the assignment requires"), "{tap}");
    assert_eq!(classroom(&out_dir)["status"], "fail");
}

#[test]
fn reports_never_overwrite_the_submission() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("WebServer.py"), "print('hi')\n").unwrap();
    let target = format!("json:{}", dir.path().join("grade.json").display());
    let (o, _) = wirecheck(&[
        "grade",
        "ci/assignments/webserver.yaml",
        "--submission",
        dir.path().to_str().unwrap(),
        "--report",
        &target,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refusing to write"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!dir.path().join("grade.json").exists());
}

/// A small assignment over tcp-upper in a temp folder.
fn tcp_assignment(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("tcp.yaml");
    std::fs::write(
        &p,
        format!(
            "assignment: tcp-small\nmain: [\"*.py\"]\nparts:\n  - suite: tcp-upper\n    name: tcp\n    cases: [exact-reply, non-ascii]\n    start: \"python3 {{main}} {{port}}\"\n{extra}"
        ),
    )
    .unwrap();
    p
}

#[test]
fn a_spent_time_budget_leaves_every_case_listed_as_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let a = tcp_assignment(dir.path(), "budget: { total: 1us }\n");
    let (code, out, gs, js) = grade(a.to_str().unwrap(), "fixtures/students/tcp_upper_server.py", &[]);
    assert_eq!(code, 1, "{out}");
    validate_gradescope(&gs);
    assert_eq!(js["budget_exhausted"], true);
    assert_eq!(gs["tests"].as_array().unwrap().len(), 2);
    for c in js["cases"].as_array().unwrap() {
        assert_eq!(c["status"], "not_run", "{c}");
        assert!(c["reason"].as_str().unwrap().contains("time budget"), "{c}");
    }
}

/// A submission folder `sub` under `dir` holding `server.py` with `source`.
fn submission_of(dir: &Path, source: &str) -> PathBuf {
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("server.py"), source).unwrap();
    sub
}

#[test]
fn a_case_that_passes_on_a_re_run_is_flaky_not_passed() {
    let dir = tempfile::tempdir().unwrap();
    // Answers in lowercase the first time it is started in a folder, correctly afterwards.
    let sub = submission_of(
        dir.path(),
        "import os, socket, sys\nfirst = not os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'ran'))\nopen(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'ran'), 'w').close()\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(5)\nwhile True:\n    c, _ = s.accept(); data = b''\n    while not data.endswith(b'\\n'):\n        d = c.recv(1024)\n        if not d: break\n        data += d\n    c.sendall(data if first else data.decode().upper().encode()); c.close()\n",
    );
    let a = tcp_assignment(dir.path(), "flaky_credit: 0.5\n");
    let (code, out, gs, js) = grade(a.to_str().unwrap(), sub.to_str().unwrap(), &["--retries", "2"]);
    assert_eq!(code, 1, "flaky is not a pass: {out}");
    let exact = js["cases"].as_array().unwrap().iter().find(|c| c["case"] == "exact-reply").unwrap();
    assert_eq!(exact["status"], "flaky", "{out}");
    assert_eq!(exact["attempts"], 2);
    assert_eq!(exact["score"].as_f64(), Some(exact["max_score"].as_f64().unwrap() * 0.5));
    assert!(
        !sub.join("ran").exists(),
        "the program ran in a copy; the original folder is untouched"
    );
    validate_gradescope(&gs);
}

#[test]
fn a_program_that_answers_no_case_is_not_re_run() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts every connection and never sends a byte.
    let sub = submission_of(
        dir.path(),
        "import socket, sys\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(5)\nheld = []\nwhile True:\n    held.append(s.accept()[0])\n",
    );
    let a = tcp_assignment(dir.path(), "");
    let (code, out, _, js) = grade(a.to_str().unwrap(), sub.to_str().unwrap(), &["--retries", "2"]);
    assert_eq!(code, 1, "{out}");
    for c in js["cases"].as_array().unwrap() {
        assert_eq!(c["status"], "failed", "{c}");
        assert_eq!(c["attempts"], 1, "a hanging program is not run again: {c}");
    }
    let notes = js["notes"].to_string();
    assert!(notes.contains("were not re-run"), "{notes}");
}

#[test]
fn fifty_submissions_two_at_a_time_then_shards_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    let subs = dir.path().join("class");
    for i in 0..50 {
        let d = subs.join(format!("student{i:02}"));
        std::fs::create_dir_all(&d).unwrap();
        // Every fifth student submits the ASCII-only server, which fails non-ascii.
        let file = if i % 5 == 0 { "tcp_upper_ascii.py" } else { "tcp_upper_server.py" };
        std::fs::copy(root().join(STUDENT).join(file), d.join("TCPServer.py")).unwrap();
    }
    let a = tcp_assignment(dir.path(), "");
    let full = dir.path().join("full");
    let (o, took) = wirecheck(&[
        "grade",
        a.to_str().unwrap(),
        "--submissions",
        subs.to_str().unwrap(),
        "--jobs",
        "2",
        "--retries",
        "0",
        "--out",
        full.to_str().unwrap(),
        "--report",
        "gradescope",
    ]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(took.as_secs() < 120, "took {took:?}");
    let roster = read_json(&full.join("roster.json"));
    let rows = roster["submissions"].as_array().unwrap();
    assert_eq!(rows.len(), 50, "{text}");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["submission"], format!("student{i:02}"));
        if i % 5 == 0 {
            assert_eq!(r["failed"], serde_json::json!(["tcp::non-ascii"]), "{r}");
            assert!(r["score"].as_f64() < r["max"].as_f64());
        } else {
            assert_eq!(
                (r["score"].as_f64(), r["failed"].as_array().map(Vec::len)),
                (r["max"].as_f64(), Some(0)),
                "{r}"
            );
        }
        validate_gradescope(&read_json(&full.join(format!("student{i:02}/results.json"))));
    }
    let csv = std::fs::read_to_string(full.join("roster.csv")).unwrap();
    assert_eq!(csv.lines().count(), 51);
    assert!(
        csv.starts_with("submission,score,max,status,build,failed,duration_s\nstudent00,"),
        "{csv}"
    );

    // Three shards: disjoint, covering, and merged back into the same roster.
    let mut shard_rosters = Vec::new();
    let mut seen = Vec::new();
    for k in 1..=3 {
        let out = dir.path().join(format!("shard{k}"));
        let (o, _) = wirecheck(&[
            "grade",
            a.to_str().unwrap(),
            "--submissions",
            subs.to_str().unwrap(),
            "--shard",
            &format!("{k}/3"),
            // Waiting on programs, not computing: more at once than cores is fine here.
            "--jobs",
            "4",
            "--retries",
            "0",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        let r = read_json(&out.join("roster.json"));
        assert_eq!(r["shard"], format!("{k}/3"));
        for row in r["submissions"].as_array().unwrap() {
            seen.push(row["submission"].as_str().unwrap().to_string());
        }
        shard_rosters.push(out.join("roster.json"));
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "shards are disjoint");
    assert_eq!(sorted.len(), 50, "shards cover every submission");
    let merged_dir = dir.path().join("merged");
    let mut args = vec!["merge".to_string()];
    args.extend(shard_rosters.iter().map(|p| p.display().to_string()));
    args.extend(["--out".to_string(), merged_dir.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (o, _) = wirecheck(&args);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let merged = read_json(&merged_dir.join("roster.json"));
    let strip = |r: &Value| -> Vec<(String, f64, f64, Value)> {
        r["submissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["submission"].as_str().unwrap().to_string(),
                    e["score"].as_f64().unwrap(),
                    e["max"].as_f64().unwrap(),
                    e["failed"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&merged), strip(&roster), "merge reproduces the full roster (durations aside)");
    assert_eq!(merged["suites_sha256"], roster["suites_sha256"]);
    // Merging a shard twice is refused.
    let (o, _) = wirecheck(&[
        "merge",
        shard_rosters[0].to_str().unwrap(),
        shard_rosters[0].to_str().unwrap(),
        "--out",
        dir.path().join("twice").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("in two rosters"));
}

#[test]
fn run_autograder_writes_valid_results_in_a_fake_autograder_layout() {
    let dir = tempfile::tempdir().unwrap();
    let ag = dir.path().join("autograder");
    for d in ["source", "submission", "results"] {
        std::fs::create_dir_all(ag.join(d)).unwrap();
    }
    // What the Gradescope zip unpacks to: the scripts, the assignment's name, the wirecheck tree.
    std::os::unix::fs::symlink(root(), ag.join("source/wirecheck")).unwrap();
    std::fs::write(ag.join("source/ASSIGNMENT"), "ci/assignments/webserver.yaml\n").unwrap();
    std::fs::copy(root().join(STUDENT).join("http_404_as_200.py"), ag.join("submission/WebServer.py")).unwrap();
    let run = |ag: &Path| {
        Command::new("bash")
            .arg(root().join("ci/gradescope/run_autograder"))
            .env("AUTOGRADER_ROOT", ag)
            .env("WIRECHECK", env!("CARGO_BIN_EXE_wirecheck"))
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let o = run(&ag);
    let log = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    let r = read_json(&ag.join("results/results.json"));
    validate_gradescope(&r);
    assert_eq!(r["score"].as_f64(), Some(16.0), "{log}");
    assert_eq!(lost(&r), vec!["web::not-found".to_string()]);
    assert!(ag.join("submission/WebServer.py").is_file(), "the submission is left in place");

    // A broken assignment still leaves a results.json that says what happened.
    std::fs::write(ag.join("source/ASSIGNMENT"), "ci/assignments/no-such-lab.yaml\n").unwrap();
    let o = run(&ag);
    assert!(o.status.success());
    let r = read_json(&ag.join("results/results.json"));
    assert_eq!(r["score"].as_f64(), Some(0.0));
    assert!(r["output"].as_str().unwrap().contains("autograder"), "{r}");
}

#[test]
fn a_program_that_does_not_start_costs_every_case_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(
        sub.join("server.py"),
        "import sys\nprint('cannot bind, giving up', file=sys.stderr)\nsys.exit(4)\n",
    )
    .unwrap();
    let a = tcp_assignment(dir.path(), "ready_timeout: 5s\n");
    let (code, out, gs, js) = grade(a.to_str().unwrap(), sub.to_str().unwrap(), &[]);
    assert_eq!(code, 3, "{out}");
    validate_gradescope(&gs);
    assert_eq!(gs["score"].as_f64(), Some(0.0));
    for c in js["cases"].as_array().unwrap() {
        assert_eq!(c["status"], "error", "{c}");
    }
    assert!(out.contains("cannot bind, giving up"), "the program's stderr is shown: {out}");
}

#[test]
fn an_interrupted_grading_still_writes_every_case() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    // Answers the first client, then accepts the second and never answers: that case waits out
    // its step timeout, long enough to be interrupted in.
    std::fs::write(
        sub.join("server.py"),
        "import socket, sys\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(5)\nc, _ = s.accept(); c.recv(1024); c.sendall(b'HELLO WORLD\\n'); c.close()\nheld = []\nwhile True:\n    held.append(s.accept())\n",
    )
    .unwrap();
    let a = tcp_assignment(dir.path(), "timeout_scale: 5\n");
    let results = dir.path().join("out/results.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wirecheck"))
        .args(["grade", a.to_str().unwrap(), "--submission", sub.to_str().unwrap()])
        .arg("--report")
        .arg(format!("gradescope:{}", results.display()))
        .current_dir(root())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // The placeholder report exists before any case runs.
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("grading "), "{first}");
    assert!(results.is_file(), "placeholder results.json before grading");
    let passed = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("PASS  tcp::exact-reply"));
    assert!(passed.is_some());
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let r = read_json(&results);
    validate_gradescope(&r);
    let tests = r["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 2);
    assert_eq!(
        (tests[0]["status"].as_str(), tests[0]["score"].as_f64()),
        (Some("passed"), Some(2.0))
    );
    assert!(tests[1]["output"].as_str().unwrap().contains("stopped by SIGTERM"), "{}", tests[1]);
}

#[test]
fn a_submission_over_its_limits_is_stopped_and_the_report_names_the_limit() {
    // Each misbehaving program, as the whole submission, under an assignment that limits it.
    for (program, limits, named) in [
        ("spins_cpu.py", "limits: { cpu: 1s }\n", "CPU time limit"),
        ("allocates_unbounded.py", "limits: { memory: 256MiB }\n", "memory limit"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let a = tcp_assignment(dir.path(), limits);
        let sub = dir.path().join("submission");
        std::fs::create_dir(&sub).unwrap();
        // A unique file name marks every process of this submission on the command line.
        let tag = marker(program.trim_end_matches(".py"));
        std::fs::copy(root().join("fixtures/targets").join(program), sub.join(format!("{tag}.py"))).unwrap();
        let (code, out, gs, js) = grade(a.to_str().unwrap(), sub.to_str().unwrap(), &[]);
        assert_eq!(code, 1, "{program}: {out}");
        validate_gradescope(&gs);
        let all = serde_json::to_string(&js).unwrap();
        assert!(all.contains(named), "{program}: the report does not say '{named}':\n{out}");
        assert_eq!(processes_with(&tag), Vec::<String>::new(), "{program}: survivors after the grade");
    }
}

#[test]
fn an_unknown_user_stops_grading_before_the_submission_is_touched() {
    // Only root switches users, so only as root does the user matter (and get checked).
    if !nix::unistd::geteuid().is_root() {
        eprintln!("an_unknown_user_stops_grading_before_the_submission_is_touched: skipped: not root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("server.py"), "print('never started')\n").unwrap();
    let a = tcp_assignment(dir.path(), "");
    let report = dir.path().join("out/grade.json");
    let (o, _) = wirecheck(&[
        "grade",
        a.to_str().unwrap(),
        "--submission",
        sub.to_str().unwrap(),
        "--user",
        "no-such-user-wc",
        "--report",
        &format!("json:{}", report.display()),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("error: user 'no-such-user-wc' does not exist"), "{err}");
    assert!(!report.exists(), "nothing is graded, so no report is written");
}

#[test]
fn the_textbook_programs_as_the_labs_ask_score_full_marks() {
    // Each lab's program written the way the textbook writes it (one recv(1024) / recvfrom(2048)
    // as the slides have them; the lab skeletons' shapes): every assignment's default grading
    // must give it every point. What goes beyond the lab is an opt-in tag.
    let pinger = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("udp_pinger_client_textbook", "UDPPingerClient"),
        ("udp_pinger_server", "UDPPingerServer"),
    ] {
        std::fs::copy(format!("{STUDENT}/{from}.py"), pinger.path().join(format!("{to}.py"))).unwrap();
    }
    let pinger = pinger.path().to_str().unwrap().to_string();
    let file = |f: &str| format!("{STUDENT}/{f}.py");
    let programs = [
        ("tcp-upper", file("tcp_upper_textbook")),
        ("udp-upper", file("udp_upper_textbook")),
        ("udp-pinger", pinger),
        ("webserver", file("http_textbook_server")),
        ("webserver-mt", file("http_textbook_threads")),
        ("smtp-client", file("smtp_client_textbook")),
        ("smtp-server", file("smtp_server_textbook")),
        ("pop3-server", file("pop3_server_minimal")),
        ("proxy", file("proxy_textbook")),
        ("dns-auth", file("dns_auth_server")),
        ("dns-resolver", file("dns_resolver")),
        ("socket-timeout", file("socket_timeout_textbook")),
        ("ftp-server", file("ftp_server_textbook")),
        ("ftp-client", file("ftp_client_textbook")),
    ];
    let mut files: Vec<String> = std::fs::read_dir("ci/assignments")
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".yaml").map(str::to_string))
        .collect();
    files.sort();
    let mut covered: Vec<String> = programs.iter().map(|(a, _)| a.to_string()).collect();
    covered.sort();
    assert_eq!(files, covered, "every assignment file has its textbook program here");
    for (assignment, program) in &programs {
        let a = format!("ci/assignments/{assignment}.yaml");
        let (code, out, gs, _) = grade(&a, program, &["--retries", "0"]);
        assert_eq!(code, 0, "{program}: {out}");
        assert!(lost(&gs).is_empty(), "{program} loses {:?} in {assignment}: {out}", lost(&gs));
        assert!(max_score(&gs) > 0.0, "{out}");
    }
}

/// What `fixtures/targets/forges_report.py` writes that would act if a report let it through:
/// markup, a fake score, TAP lines, XML and terminal control sequences.
const FORGERIES: &[&str] = &[
    "Total: 20/20 points",
    "20 of 20 points",
    "<h1>",
    "<img",
    "<script",
    "![x](http://evil.example",
    "[regrade](http://evil.example",
    "| forged |",
    "<!--",
    "]]>",
    "ok 1 - fake",
    "Bail out!",
];

/// The parts of a markdown text outside code blocks (fenced with ``` or ~~~, per CommonMark: a
/// block closes only at a fence of its own character at least as long, or at the end).
fn md_outside_code(md: &str) -> String {
    let mut out = String::new();
    let mut open: Option<(char, usize)> = None;
    for line in md.lines() {
        let t = line.trim_start_matches(' ');
        let indent = line.len() - t.len();
        let fence = t
            .chars()
            .next()
            .filter(|c| *c == '`' || *c == '~')
            .map(|c| (c, t.chars().take_while(|x| *x == c).count()));
        match (open, fence) {
            (None, Some((c, n))) if n >= 3 && indent < 4 => open = Some((c, n)),
            (Some((c, n)), Some((c2, n2))) if c == c2 && n2 >= n && indent < 4 && t.trim_end().chars().all(|x| x == c) => open = None,
            (None, _) => {
                out.push_str(line);
                out.push('\n');
            }
            _ => {}
        }
    }
    out
}

fn assert_md_inert(what: &str, md: &str) {
    let outside = md_outside_code(md);
    for f in FORGERIES {
        assert!(!outside.contains(f), "{what}: '{f}' is outside a code block:\n{outside}");
    }
    assert!(!md.contains('\x1b'), "{what}: a raw escape character:\n{md}");
}

/// Grades `fixtures/targets/forges_report.py` in every format (staff view, so failure text shows).
fn grade_forger(start_args: &str) -> (tempfile::TempDir, PathBuf, i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy(root().join("fixtures/targets/forges_report.py"), sub.join("server.py")).unwrap();
    let a = dir.path().join("tcp.yaml");
    std::fs::write(
        &a,
        format!("assignment: tcp-small\nmain: [\"*.py\"]\nready_timeout: 5s\nparts:\n  - suite: tcp-upper\n    name: tcp\n    cases: [exact-reply, non-ascii]\n    start: \"python3 {{main}} {{port}}{start_args}\"\n"),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let mut args = vec![
        "grade",
        a.to_str().unwrap(),
        "--submission",
        sub.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ];
    for f in ALL_FORMATS {
        args.extend_from_slice(&["--report", f]);
    }
    // Colours forced on: a console that strips every escape sequence would hide a missing escape.
    let o = Command::new(env!("CARGO_BIN_EXE_wirecheck"))
        .args(&args)
        .current_dir(root())
        .env_remove("NO_COLOR")
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    (dir, out_dir, o.status.code().unwrap_or(-1), console)
}

fn assert_every_format_inert(out_dir: &Path, console: &str) {
    let read = |f: &str| std::fs::read_to_string(out_dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));

    // Gradescope: "md" output, at the top and per test; the real score is 0.
    let gs = read_json(&out_dir.join("results.json"));
    validate_gradescope(&gs);
    assert_eq!(gs["score"].as_f64(), Some(0.0));
    let top = gs["output"].as_str().unwrap();
    assert_md_inert("results.json output", top);
    assert!(md_outside_code(top).contains(": 0 of 3 points"), "{top}");
    for t in gs["tests"].as_array().unwrap() {
        assert_eq!(t["output_format"], "md");
        assert_md_inert("results.json test output", t["output"].as_str().unwrap());
    }

    // Markdown: the score, the table and the lost points stay the grader's; the program is quoted.
    let md = read("summary.md");
    assert_md_inert("summary.md", &md);
    let outside = md_outside_code(&md);
    assert!(outside.contains(": 0 of 3 points"), "{md}");
    assert!(outside.contains("Lost points: `tcp::exact-reply`"), "{md}");
    assert!(outside.contains("| 1.1 | `tcp::exact-reply` | "), "{md}");

    // JUnit: well-formed XML 1.0, the program's text as text (no raw control characters).
    let xml = read("junit.xml");
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("junit.xml: {e}\n{xml}"));
    assert!(!xml.contains("]]>") && !xml.contains("<!--") && !xml.contains("<img"), "{xml}");
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure") || n.has_tag_name("error"))
        .unwrap();
    let text = failure.text().unwrap_or("");
    assert!(
        text.contains("Total: 20/20 points") && text.contains("]]>") && text.contains("\\x1b[2J"),
        "{text}"
    );

    // TAP: every line a consumer parses is the grader's; the program's lines are marked.
    let tap = read("grade.tap");
    let mut plans = 0;
    for l in tap.lines() {
        let t = l.trim_start();
        if l.starts_with(' ') {
            for f in ["ok ", "not ok ", "1..", "Bail out!", "TAP version", "# "] {
                assert!(
                    !t.starts_with(f) || !t.contains("fake") && !t.contains("Bail"),
                    "a program line reads as TAP: {l:?}\n{tap}"
                );
            }
            assert!(t != "..." || l == "  ...", "a program line ends the YAML block: {l:?}\n{tap}");
            continue;
        }
        plans += usize::from(l.starts_with("1.."));
        assert!(
            ["TAP version 13", "1..", "ok ", "not ok ", "#"].iter().any(|p| l.starts_with(p)),
            "not a TAP line: {l:?}\n{tap}"
        );
        assert!(!l.contains("fake") && !l.starts_with("Bail out!"), "{l:?}\n{tap}");
    }
    assert_eq!(plans, 1, "{tap}");
    assert!(
        tap.contains("| ok 1 - fake") || tap.contains("|   ok 1 - fake") || tap.contains("program output"),
        "{tap}"
    );
    assert!(!tap.contains('\x1b'), "{tap}");

    // JSON formats: they parse (serde escapes), and PrairieLearn's message is markdown.
    let js = read_json(&out_dir.join("grade.json"));
    assert_eq!(js["score"].as_f64().or(js["points"].as_f64()), Some(0.0), "{js}");
    let pl = read_json(&out_dir.join("prairielearn.json"));
    assert_md_inert("prairielearn message", pl["message"].as_str().unwrap());
    classroom(out_dir);

    // HTML: the only markup is the page's own; what the program wrote is text.
    let html = read("report.html");
    for tag in ["<script", "<img", "<h1>full marks", "<!--", "<![CDATA["] {
        assert!(!html.contains(tag), "{tag} became markup:\n{html}");
    }
    assert!(html.contains("<b>0</b> of 3 points"), "{html}");
    assert!(!html.contains('\x1b') && !html.contains('\0'), "raw control characters:\n{html}");

    // Console: the program cannot clear, recolour or retitle the grader's terminal.
    for raw in ["\x1b[2J", "\x1b[31mRED", "\x1b]0;", "\x07", "\r overwritten"] {
        assert!(!console.contains(raw), "raw {raw:?} on the console:\n{console}");
    }
    assert!(
        console.contains("\\x1b[2J"),
        "the program's escapes are shown, not played:\n{console}"
    );
}

#[test]
fn program_output_cannot_forge_any_report_format() {
    // Replies and stderr in failure blocks.
    let (_dir, out_dir, code, console) = grade_forger("");
    assert_eq!(code, 1, "{console}");
    assert_every_format_inert(&out_dir, &console);
    let md = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(md.contains("program output (stderr, last lines, verbatim):"), "{md}");
    forged_goldens("failed", &out_dir, &console);
}

/// Times, seeds, hashes, ports and temporary paths out of a report, so it can be a golden.
fn normalise(s: &str) -> String {
    let rules = [
        (r"/tmp/[^\s'\x22<]+( \d+)?", "<tmp>"),
        (r"seed \d+", "seed <seed>"),
        (r"\b[0-9a-f]{16,64}\b", "<sha256>"),
        (r"port \d+", "port <port>"),
        // Times are right-aligned: their padding changes with their width.
        (r" +\d+(\.\d+)?(ms|s)\b", " <time>"),
        (r"\b\d+(\.\d+)?(ms|s)\b", "<time>"),
        (r"(time|timestamp)=\x22[^\x22]*\x22", "$1=\x22<time>\x22"),
    ];
    let mut s = s.to_string();
    for (re, to) in rules {
        s = regex::Regex::new(re).unwrap().replace_all(&s, to).into_owned();
    }
    s
}

/// Compares each format's rendering of the forging program with `tests/golden/forged-KIND.*`.
/// Regenerate with WIRECHECK_BLESS=1 after a deliberate change, and review the diff.
fn forged_goldens(kind: &str, out_dir: &Path, console: &str) {
    let gs = read_json(&out_dir.join("results.json"));
    let read = |f: &str| std::fs::read_to_string(out_dir.join(f)).unwrap();
    let console: String = console.lines().skip(1).map(|l| format!("{l}\n")).collect();
    for (name, text) in [
        ("gradescope-output.md", gs["output"].as_str().unwrap().to_string()),
        ("gradescope-test.md", gs["tests"][0]["output"].as_str().unwrap().to_string()),
        ("summary.md", read("summary.md")),
        ("junit.xml", read("junit.xml")),
        ("grade.tap", read("grade.tap")),
        ("console.txt", console),
    ] {
        let golden = root().join(format!("tests/golden/forged-{kind}.{name}"));
        let text = normalise(&text);
        if std::env::var_os("WIRECHECK_BLESS").is_some() {
            std::fs::write(&golden, &text).unwrap();
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        assert_eq!(text, want, "{name} differs from {}", golden.display());
    }
}

#[test]
fn a_target_error_quoting_the_program_cannot_forge_any_report_format() {
    // Its stderr in the target error of a program that never listened.
    let (_dir, out_dir, code, console) = grade_forger(" --exit");
    assert_eq!(code, 3, "{console}");
    assert_every_format_inert(&out_dir, &console);
    let md = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(md.contains("The program could not be tested (its output quoted verbatim):"), "{md}");
    forged_goldens("target-error", &out_dir, &console);
}
