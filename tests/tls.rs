//! TLS under the suites: every TCP suite passes its reference with `--tls` (server and client
//! roles), the TLS options are checked before anything runs, and the `starttls` step.

mod common;

use common::{cases_with, run_json, wirecheck, TCP_SUITES};

#[test]
fn every_tcp_suite_passes_its_reference_over_tls() {
    let suites: Vec<String> = std::fs::read_dir(common::root().join("suites"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".yaml").map(str::to_string))
        .collect();
    for s in &suites {
        // UDP suites have no TLS here; QUIC's (http3) is always TLS 1.3; BitTorrent's peer wire
        // has none, and its trackers' suite speaks UDP too; the DHTs (bt-dht, dht-ring) are UDP;
        // the DASH lab is clear HTTP/1.1 (`Protocol::no_tls`).
        let not_tcp = s.starts_with("dns")
            || s.starts_with("udp")
            || s == "http3"
            || s.starts_with("bt-")
            || s.starts_with("dht-")
            || s.starts_with("dash-");
        assert!(
            not_tcp || TCP_SUITES.contains(&s.as_str()),
            "suite {s} is neither in TCP_SUITES nor a UDP or QUIC suite: add it where it belongs"
        );
    }
    let mut args = vec!["--tls"];
    args.extend_from_slice(TCP_SUITES);
    let (code, out, report) = run_json(&args);
    let failed = cases_with(&report, "fail");
    let errors = cases_with(&report, "error");
    assert!(
        failed.is_empty() && errors.is_empty(),
        "failed {failed:?}, errors {errors:?}\n{out}"
    );
    assert_eq!(code, 0, "{out}");
    let passed = cases_with(&report, "pass");
    assert!(passed.len() > 500, "only {} cases passed:\n{out}", passed.len());
    // Over TLS the upgrade to h2c is not HTTP/2's way in (RFC 9113 §3.2: h2 by ALPN); the
    // pipelined STARTTLS cases are not about a session that is already TLS.
    let na = cases_with(&report, "n/a");
    assert!(na.len() < 20, "{} cases n/a over TLS: {na:?}", na.len());
}

#[test]
fn tls_options_are_checked_before_anything_runs() {
    let (out, _) = wirecheck(&["run", "--tls", "udp-upper"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("udp-upper") && err.contains("UDP"), "{err}");

    for suite in ["bt-peer", "bt-tracker", "bt-client"] {
        let (out, _) = wirecheck(&["run", "--tls", suite]);
        assert_eq!(out.status.code(), Some(2), "{suite}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(suite) && err.contains("BEP"), "{err}");
    }

    let (out, _) = wirecheck(&["run", "--tls", "--ca", "no-such-ca.pem", "tcp-upper"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ca") && err.contains("no-such-ca.pem"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let (out, _) = wirecheck(&["run", "--tls", "--ca", not_pem.to_str().unwrap(), "tcp-upper"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no certificate"));

    let (out, _) = wirecheck(&["run", "--tls", "--sni", "not a name", "tcp-upper"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_server_without_tls_fails_every_case_with_the_handshake_named() {
    // The plain reference at an address, spoken to in TLS: each case says the handshake failed.
    let (code, out, report) = run_json(&[
        "--tls",
        "--case",
        "exact-reply",
        "tcp-upper",
        "--exec",
        "python3 fixtures/students/tcp_upper_server.py {port}",
    ]);
    assert_eq!(code, 1, "{out}");
    let failed = cases_with(&report, "fail");
    assert_eq!(failed, ["exact-reply"], "{out}");
    assert!(out.contains("TLS"), "{out}");
}

#[test]
fn the_keylog_file_gets_the_run_secrets_and_keeps_what_was_there() {
    let dir = tempfile::tempdir().unwrap();
    let keylog = dir.path().join("keys.log");
    std::fs::write(&keylog, "# kept\n").unwrap();
    let (code, out, _) = run_json(&["--tls", "--keylog", keylog.to_str().unwrap(), "--case", "exact-reply", "tcp-upper"]);
    assert_eq!(code, 0, "{out}");
    let text = std::fs::read_to_string(&keylog).unwrap();
    assert!(text.starts_with("# kept\n"), "{text}");
    assert!(text.contains("CLIENT_TRAFFIC_SECRET_0 "), "{text}");
}
