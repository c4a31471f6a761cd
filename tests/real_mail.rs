//! Mail servers and clients no one here wrote: Postfix (smtp), Dovecot (pop3, imap) and swaks
//! (smtp-client). The suites must not fail them where the RFCs allow what they do; what they may
//! or do fail is in `tests/real/<suite>.<server>.expected`, with the RFC's reason.
//!
//! Each server is started by wirecheck (`--exec "tests/peers/<name> ... {port}"`): the wrapper
//! writes a throwaway configuration for the port, copies the seed store and execs the server in
//! the foreground. The wrappers make their folders under `TMPDIR`, a temporary folder of the test.

mod common;
use common::*;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// Runs `wirecheck run ARGS --report json:FILE` with the peers' folders under a temporary `TMPDIR`;
/// returns (stdout and stderr, parsed report).
fn run_peer(args: &[&str]) -> (String, serde_json::Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    // the servers' own users (nobody, dovecot, postfix) reach their folders through this one
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = dir.path().join("report.json");
    let report = format!("json:{}", path.display());
    let out = Command::new(env!("CARGO_BIN_EXE_wirecheck"))
        .arg("run")
        .args(args)
        .args(["--report", &report])
        .current_dir(root())
        .env("NO_COLOR", "1")
        .env("TMPDIR", dir.path())
        .output()
        .expect("wirecheck runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let json = std::fs::read_to_string(&path)
        .map(|t| serde_json::from_str(&t).expect("valid JSON"))
        .unwrap_or(serde_json::Value::Null);
    (text, json)
}

/// Every case id of `suite`.
fn case_ids(suite: &str) -> Vec<String> {
    let (out, _) = wirecheck(&["list", suite, "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list --format json");
    list[0]["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

/// The ids of the cases of `suite` tagged `tag`.
fn case_ids_tagged(suite: &str, tag: &str) -> Vec<String> {
    let (out, _) = wirecheck(&["list", suite, "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list --format json");
    list[0]["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| c["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == tag)))
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

/// The smtp tags a real server is run with: every one but `roundtrip`, which reads the message
/// back through the bundled reference's own POP3 and IMAP.
const SMTP_TAGS: &str = "--tag core --tag robustness --tag ext --tag pipelining --tag recipients --tag relay --tag strict";

#[test]
fn smtp_suite_against_postfix() {
    if !peer_installed("/usr/lib/postfix/sbin/master", "postfix") {
        return;
    }
    // With the run's certificate Postfix offers STARTTLS (smtpd_tls_security_level = may).
    let mut args = vec!["smtp"];
    args.extend(SMTP_TAGS.split(' '));
    args.extend(["--tag", "starttls", "--exec", "tests/peers/postfix {port} {cert} {key}"]);
    let (out, report) = run_peer(&args);
    let result = check_expected("smtp", "postfix", &report, &out);
    readme_row(
        "Postfix 3.7 (Debian `postfix`)",
        &format!("smtp {SMTP_TAGS} --tag starttls"),
        &result,
    );
}

#[test]
fn smtp_suite_against_postfix_over_tls() {
    if !peer_installed("/usr/lib/postfix/sbin/master", "postfix") {
        return;
    }
    // SMTPS (RFC 8314 implicit TLS, smtpd_tls_wrappermode): the same dialogue over TLS.
    let mut args = vec!["smtp", "--tls"];
    args.extend(SMTP_TAGS.split(' '));
    args.extend(["--exec", "tests/peers/postfix {port} {cert} {key} implicit"]);
    let (out, report) = run_peer(&args);
    let result = check_expected("smtp", "postfix-tls", &report, &out);
    readme_row("Postfix 3.7 (Debian `postfix`), SMTPS", &format!("smtp --tls {SMTP_TAGS}"), &result);
}

#[test]
fn pop3_suite_against_dovecot() {
    if !peer_installed("/usr/lib/dovecot/pop3", "dovecot-pop3d") {
        return;
    }
    // every pop3 case needs a fresh server: wirecheck restarts Dovecot for each; with the run's
    // certificate it offers STLS
    let (out, report) = run_peer(&["pop3", "--exec", "tests/peers/dovecot pop3 {port} {cert} {key}"]);
    let result = check_expected("pop3", "dovecot", &report, &out);
    readme_row("Dovecot 2.3 (Debian `dovecot-pop3d`)", "pop3", &result);
}

#[test]
fn pop3_suite_against_dovecot_over_tls() {
    if !peer_installed("/usr/lib/dovecot/pop3", "dovecot-pop3d") {
        return;
    }
    // POP3S (implicit TLS): the same dialogue over TLS.
    let (out, report) = run_peer(&["pop3", "--tls", "--exec", "tests/peers/dovecot pop3 {port} {cert} {key} implicit"]);
    let result = check_expected("pop3", "dovecot-tls", &report, &out);
    readme_row("Dovecot 2.3 (Debian `dovecot-pop3d`), POP3S", "pop3 --tls", &result);
}

#[test]
fn imap_suite_against_dovecot() {
    if !peer_installed("/usr/lib/dovecot/imap", "dovecot-imapd") {
        return;
    }
    // One Dovecot per case, not only for the cases that change the store: Dovecot delays every
    // login from an address after a failed one, and a failed login in one case must not slow
    // down the next (README "Mail": one case at a time on a fresh store).
    let mut cases = Vec::new();
    let mut outs = String::new();
    for id in case_ids("imap") {
        // with the run's certificate Dovecot offers STARTTLS
        let (out, report) = run_peer(&["imap", "--case", &id, "--exec", "tests/peers/dovecot imap {port} {cert} {key}"]);
        let ran = report["cases"].as_array().cloned().unwrap_or_default();
        assert_eq!(ran.len(), 1, "imap::{id} did not run once:\n{out}");
        cases.extend(ran);
        outs.push_str(&out);
    }
    let report = serde_json::json!({ "cases": cases });
    let result = check_expected("imap", "dovecot", &report, &outs);
    readme_row("Dovecot 2.3 (Debian `dovecot-imapd`)", "imap", &result);
}

#[test]
fn imap_suite_against_dovecot_over_tls() {
    if !peer_installed("/usr/lib/dovecot/imap", "dovecot-imapd") {
        return;
    }
    // IMAPS (implicit TLS): the same dialogue over TLS, for the core cases (one Dovecot each,
    // as above).
    let mut cases = Vec::new();
    let mut outs = String::new();
    for id in case_ids_tagged("imap", "core") {
        let (out, report) = run_peer(&[
            "imap",
            "--tls",
            "--case",
            &id,
            "--exec",
            "tests/peers/dovecot imap {port} {cert} {key} implicit",
        ]);
        let ran = report["cases"].as_array().cloned().unwrap_or_default();
        assert_eq!(ran.len(), 1, "imap::{id} did not run once:\n{out}");
        cases.extend(ran);
        outs.push_str(&out);
    }
    let report = serde_json::json!({ "cases": cases });
    let result = check_expected("imap", "dovecot-tls", &report, &outs);
    readme_row("Dovecot 2.3 (Debian `dovecot-imapd`), IMAPS", "imap --tls --tag core", &result);
}

#[test]
fn smtp_client_suite_against_swaks() {
    if !peer_installed("swaks", "swaks") {
        return;
    }
    let cmd =
        "swaks --server 127.0.0.1:{port} --from alice@crepes.fr --to bob@hamburger.edu --helo crepes.fr --data fixtures/mail/outgoing.txt";
    let (out, report) = run_peer(&["smtp-client", "--exec", cmd]);
    let result = check_expected("smtp-client", "swaks", &report, &out);
    readme_row("swaks 20201014 (Debian `swaks`), the message file given", "smtp-client", &result);
}
