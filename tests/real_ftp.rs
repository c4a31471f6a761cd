//! FTP servers no one here wrote: vsftpd and pyftpdlib. The `ftp` suite must not fail them where
//! the RFCs allow what they do; what they may fail is in `tests/real/ftp.<server>.expected`, with
//! the RFC's reason.
//!
//! Each is started by wirecheck (`--exec "tests/peers/<name> {port}"`): the wrapper serves a
//! temporary copy of fixtures/ftp (the suite's uploads change it) and runs the server in the
//! foreground. The cases that upload ask for a fresh server, so those start one each.

mod common;
use common::*;

#[test]
fn ftp_suite_against_vsftpd() {
    if !peer_installed("/usr/sbin/vsftpd", "vsftpd") {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var_os("CI").is_none(), "the vsftpd test needs root");
        eprintln!("skipped: vsftpd chroots anonymous sessions and switches to the ftp user, which needs root");
        return;
    }
    let (_, out, report) = run_json(&["ftp", "--exec", "tests/peers/vsftpd {port}"]);
    let result = check_expected("ftp", "vsftpd", &report, &out);
    readme_row("vsftpd 3.0.3 (Debian `vsftpd`, anonymous only)", "ftp", &result);
}

#[test]
fn ftp_suite_against_pyftpdlib() {
    // ci/test installs pyftpdlib into this virtual environment (PyPI; Debian has no package).
    let venv = std::env::var_os("WIRECHECK_VENV").map(std::path::PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
        cache.join("wirecheck/venv")
    });
    let installed = std::process::Command::new(venv.join("bin/python"))
        .args(["-c", "import pyftpdlib"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "pyftpdlib is missing from {}: ci/test installs it",
            venv.display()
        );
        eprintln!("skipped: pyftpdlib is not installed in {} (run ci/test)", venv.display());
        return;
    }
    let (_, out, report) = run_json(&["ftp", "--exec", "tests/peers/pyftpdlib {port}"]);
    let result = check_expected("ftp", "pyftpdlib", &report, &out);
    readme_row("pyftpdlib 2.2 (PyPI), anonymous and bob / hungry", "ftp", &result);
}

/// The `ftp-client` suite against FTP clients no one here wrote: curl, and Python's ftplib, each
/// behind a wrapper in `tests/peers/` that maps the suite's `[--passive] get|put|ls` to it.
#[test]
fn ftp_client_suite_against_curl() {
    if !peer_installed("curl", "curl") {
        return;
    }
    let (_, out, report) = run_json(&["ftp-client", "--exec", "tests/peers/curl-ftp-client {host} {port}"]);
    let result = check_expected("ftp-client", "curl", &report, &out);
    readme_row("curl (Debian `curl`) as the client", "ftp-client", &result);
}

#[test]
fn ftp_client_suite_against_ftplib() {
    let (_, out, report) = run_json(&["ftp-client", "--exec", "tests/peers/ftplib-client {host} {port}"]);
    let result = check_expected("ftp-client", "ftplib", &report, &out);
    readme_row("Python's ftplib as the client", "ftp-client", &result);
}
