//! Servers no one here wrote: the suites must not fail them where the RFCs allow what they do.

mod common;
use common::*;

#[test]
fn http_core_profile_passes_python_http_server() {
    // http.server answers HTTP/1.0 and closes after each response: the core profile must accept that.
    let (_, out, report) = run_json(&[
        "http",
        "--tag",
        "core",
        "--exec",
        "python3 -m http.server {port} --bind 127.0.0.1 --directory fixtures/www",
    ]);
    let result = check_expected("http-core", "pyhttp", &report, &out);
    assert!(cases_with(&report, "pass").len() >= 20, "{out}");
    readme_row("Python 3 `http.server` (HTTP/1.0)", "http --tag core", &result);
}
