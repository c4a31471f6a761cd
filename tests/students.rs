//! Sample student programs: the good ones pass every case, each buggy one fails the case that targets its bug.

mod common;
use common::*;

/// Runs `file` against `suite` and checks the failing cases: `must_fail` all fail, and with none given, nothing fails.
fn check(suite: &str, cmd: &str, must_fail: &[&str]) {
    let (code, out, report) = run_json(&[suite, "--exec", cmd]);
    let failed = cases_with(&report, "fail");
    if must_fail.is_empty() {
        assert_eq!(
            (code, failed.clone()),
            (0, vec![]),
            "{cmd} should pass every case of {suite}:\n{out}"
        );
        assert!(!cases_with(&report, "pass").is_empty(), "no case ran:\n{out}");
    } else {
        assert_eq!(code, 1, "{cmd} should fail {suite} (exit 1):\n{out}");
        for case in must_fail {
            assert!(
                failed.iter().any(|f| f == case),
                "{cmd} should fail {suite}::{case}; failed: {failed:?}\n{out}"
            );
        }
    }
}

fn py(file: &str) -> String {
    format!("python3 fixtures/students/{file}.py {{port}}")
}

#[test]
fn tcp_upper_good() {
    check("tcp-upper", &py("tcp_upper_server"), &[]);
}

#[test]
fn tcp_upper_single_recv() {
    check("tcp-upper", &py("tcp_upper_single_recv"), &["split-writes", "large-message"]);
}

#[test]
fn tcp_upper_no_loop() {
    check("tcp-upper", &py("tcp_upper_no_loop"), &["two-clients-in-turn"]);
}

#[test]
fn tcp_upper_ascii() {
    check("tcp-upper", &py("tcp_upper_ascii"), &["non-ascii"]);
}

#[test]
fn tcp_upper_failure_output_points_into_the_suite() {
    let (out, _) = wirecheck(&["run", "tcp-upper", "--case", "split-writes", "--exec", &py("tcp_upper_single_recv")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("step:     suites/tcp-upper.yaml:"), "no file:line:col in:\n{text}");
    let (out, _) = wirecheck(&["run", "tcp-upper", "--case", "non-ascii", "--exec", &py("tcp_upper_ascii")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("expected: \"HÉLLO WÖRLD, ÑANDÚ\""), "no expected value in:\n{text}");
    assert!(text.contains("got:"), "no got value in:\n{text}");
    assert!(text.contains("UnicodeDecodeError"), "no stderr tail in:\n{text}");
}

#[test]
fn udp_upper_good() {
    check("udp-upper", &py("udp_upper_server"), &[]);
}

#[test]
fn udp_upper_small_buffer() {
    check("udp-upper", &py("udp_upper_small_buffer"), &["large-datagram"]);
}

#[test]
fn udp_upper_first_client() {
    check("udp-upper", &py("udp_upper_first_client"), &["two-clients"]);
}

#[test]
fn udp_pinger_server_good() {
    check("udp-pinger-server", &py("udp_pinger_server"), &[]);
}

#[test]
fn udp_pinger_server_no_loss() {
    check("udp-pinger-server", &py("udp_pinger_server_no_loss"), &["drops-some"]);
}

#[test]
fn udp_pinger_server_echo() {
    check("udp-pinger-server", &py("udp_pinger_server_echo"), &["reply-uppercased"]);
}

fn client(file: &str) -> String {
    format!("python3 fixtures/students/{file}.py 127.0.0.1 {{port}}")
}

#[test]
fn udp_pinger_client_good() {
    check("udp-pinger", &client("udp_pinger_client"), &[]);
}

#[test]
fn udp_pinger_client_no_timeout() {
    check("udp-pinger", &client("udp_pinger_client_no_timeout"), &["reports-timeout"]);
}

#[test]
fn udp_pinger_client_zero_based() {
    check("udp-pinger", &client("udp_pinger_client_zero_based"), &["ten-pings-numbered"]);
}

#[test]
fn udp_pinger_client_short_timeout() {
    check("udp-pinger", &client("udp_pinger_client_short_timeout"), &["waits-one-second"]);
}

fn timeout_server(file: &str) -> String {
    format!("python3 fixtures/students/{file}.py {{port}} 1")
}

#[test]
fn socket_timeout_good() {
    check("socket-timeout", &timeout_server("socket_timeout_server"), &[]);
}

#[test]
fn socket_timeout_no_timeout() {
    check(
        "socket-timeout",
        &timeout_server("socket_timeout_server_no_timeout"),
        &["silent-client-closed"],
    );
}

#[test]
fn socket_timeout_never_stops() {
    check(
        "socket-timeout",
        &timeout_server("socket_timeout_server_never_stops"),
        &["stops-after-three-strikes"],
    );
}

#[test]
fn socket_timeout_counts_all() {
    check(
        "socket-timeout",
        &timeout_server("socket_timeout_server_counts_all"),
        &["served-clients-are-not-strikes"],
    );
}
