//! An HTTP/3 server no one here wrote: aioquic's (PyPI), behind `tests/peers/aioquic-h3`, a small
//! script on aioquic's documented server API that serves fixtures/www with the run's certificate
//! (`{cert}` and `{key}`, which the harness trusts). The `http3` suite must not fail it where RFC
//! 9114 allows what it does; what it may fail is in `tests/real/http3.aioquic.expected`, with the
//! RFC's reason.

mod common;
use common::*;

#[test]
fn http3_suite_against_aioquic() {
    // ci/test installs aioquic into this virtual environment (PyPI; Debian's is older).
    let python = venv_python();
    let installed = std::process::Command::new(&python)
        .args(["-c", "import aioquic"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "aioquic is missing from {}: ci/test installs it",
            python.display()
        );
        eprintln!("skipped: aioquic is not installed for {} (run ci/test)", python.display());
        return;
    }
    let (_, out, report) = run_json(&["http3", "--exec", "tests/peers/aioquic-h3 {port} {cert} {key}"]);
    let result = check_expected("http3", "aioquic", &report, &out);
    readme_row("aioquic 1.2 (PyPI), its H3Connection behind a 60-line script", "http3", &result);
}
