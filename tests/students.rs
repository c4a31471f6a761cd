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

/// Runs `cmd` against `suite` with extra arguments (a profile's tags, or one case).
fn check_with(suite: &str, cmd: &str, extra: &[&str], must_fail: &[&str]) {
    let mut args = vec![suite, "--exec", cmd];
    args.extend_from_slice(extra);
    let (code, out, report) = run_json(&args);
    let failed = cases_with(&report, "fail");
    if must_fail.is_empty() {
        assert_eq!((code, failed.clone()), (0, vec![]), "{cmd} should pass {suite} {extra:?}:\n{out}");
        assert!(!cases_with(&report, "pass").is_empty(), "no case ran:\n{out}");
    } else {
        assert_eq!(code, 1, "{cmd} should fail {suite} {extra:?}:\n{out}");
        for case in must_fail {
            assert!(
                failed.iter().any(|f| f == case),
                "{cmd} should fail {suite}::{case}; failed: {failed:?}\n{out}"
            );
        }
    }
}

fn web(file: &str) -> String {
    format!("python3 fixtures/students/{file}.py {{port}} fixtures/www")
}

/// The fuller server's profile: everything but the reference's own endpoints.
const FULL_PROFILE: &[&str] = &[
    "--tag",
    "textbook",
    "--tag",
    "core",
    "--tag",
    "persistent",
    "--tag",
    "pipelining",
    "--tag",
    "conditional",
    "--tag",
    "concurrency",
    "--tag",
    "security",
    "--tag",
    "robustness",
    "--tag",
    "strict",
    "--tag",
    "parsing",
];

#[test]
fn http_textbook_server_passes_the_textbook_profile() {
    check_with("http", &web("http_textbook_server"), &["--tag", "textbook"], &[]);
}

#[test]
fn http_full_server_passes_its_profile() {
    check_with("http", &web("http_server"), FULL_PROFILE, &[]);
}

#[test]
fn http_buggy_servers_fail_their_cases() {
    for (file, case) in [
        ("http_no_blank_line", "get-index"),
        ("http_length_in_chars", "content-length-utf8"),
        ("http_head_with_body", "head-no-body"),
        ("http_single_recv", "split-request"),
        ("http_404_as_200", "not-found"),
        ("http_close_no_header", "keep-alive-two"),
        ("http_close_no_header", "close-announced"),
        ("http_traversal", "traversal-dotdot"),
        ("http_no_threads", "idle-client-does-not-block"),
        ("http_no_host_check", "missing-host-400"),
        ("http_crash_on_empty", "empty-connection"),
    ] {
        check_with("http", &web(file), &["--case", case], &[case]);
    }
}

#[test]
fn http_bare_lf_fails_only_the_crlf_case() {
    // A bare LF is a warning in every other case (RFC 9112 §2.2 lets recipients accept it).
    let (code, out, report) = run_json(&[&["http", "--exec", &web("http_bare_lf")], FULL_PROFILE].concat());
    assert_eq!(
        (code, cases_with(&report, "fail")),
        (1, vec!["crlf-line-endings".to_string()]),
        "{out}"
    );
}

#[test]
fn http10_server_that_closes_after_each_response_passes_all_but_persistence() {
    // HTTP/1.0 responses end their connection (RFC 9112 §9.3): only the persistent and
    // pipelining profiles are out of its scope.
    let tags: Vec<&str> = FULL_PROFILE
        .chunks(2)
        .filter(|t| !["persistent", "pipelining"].contains(&t[1]))
        .flatten()
        .copied()
        .chain(["--tag", "etag"])
        .collect();
    check_with("http", &web("http10_server"), &tags, &[]);
}

#[test]
fn http_server_without_etags_saying_keep_alive_passes_its_profile() {
    // ETag is a SHOULD (RFC 9110 §8.8.3); Connection: keep-alive is allowed (RFC 9110 §7.6.1).
    check_with("http", &web("http_no_etag"), FULL_PROFILE, &[]);
}

#[test]
fn proxy_get_only_without_revalidation_passes_all_but_post_and_revalidation() {
    let tags = [
        "--tag",
        "basic",
        "--tag",
        "cache",
        "--tag",
        "errors",
        "--tag",
        "concurrency",
        "--tag",
        "strict",
    ];
    check_with("http-proxy", &py("proxy_get_only"), &tags, &[]);
}

#[test]
fn proxy_good_passes_everything() {
    check("http-proxy", &py("proxy_server"), &[]);
}

#[test]
fn proxy_buggy_ones_fail_their_cases() {
    for (file, case) in [
        ("proxy_absolute_upstream", "forward-origin-form"),
        ("proxy_caches_no_store", "no-store-not-cached"),
        ("proxy_text_mode", "relay-binary"),
        ("proxy_no_cache", "served-from-cache"),
        ("proxy_crash_unreachable", "unreachable-502"),
        ("proxy_cache_ignores_query", "query-in-cache-key"),
    ] {
        check_with("http-proxy", &py(file), &["--case", case], &[case]);
    }
}

#[test]
fn http_failure_shows_request_response_location_and_rfc() {
    let (out, _) = wirecheck(&[
        "run",
        "http",
        "--case",
        "content-length-utf8",
        "--exec",
        &web("http_length_in_chars"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("step:     suites/http.yaml:"), "{text}");
    assert!(text.contains("checks:   RFC 9110 §8.6"), "{text}");
    assert!(text.contains("C→S GET /utf8.html HTTP/1.1"), "the request is shown:\n{text}");
    assert!(text.contains("S→C HTTP/1.1 200 OK"), "the response is shown:\n{text}");
    assert!(text.contains("Content-Length:"), "response headers are shown:\n{text}");
}

const SMTP_PROFILE: &[&str] = &["--tag", "core", "--tag", "ext", "--tag", "strict", "--tag", "robustness"];

#[test]
fn smtp_good_server_passes_its_profile() {
    check_with("smtp", &py("smtp_server"), SMTP_PROFILE, &[]);
}

#[test]
fn smtp_buggy_servers_fail_their_cases() {
    for (file, case) in [
        ("smtp_server_no_503", "rcpt-before-mail-503"),
        ("smtp_server_single_recv", "pipelining"),
        ("smtp_server_no_quit_close", "quit-closes"),
        ("smtp_server_ehlo_no_dash", "ehlo-multiline"),
    ] {
        check_with("smtp", &py(file), &["--case", case], &[case]);
    }
}

fn pop3(file: &str) -> String {
    format!("python3 fixtures/students/{file}.py {{port}} fixtures/mail/store")
}

#[test]
fn pop3_good_server_passes() {
    check("pop3", &pop3("pop3_server"), &[]);
}

#[test]
fn pop3_buggy_servers_fail_their_cases() {
    for (file, case) in [
        ("pop3_server_no_stuffing", "retr-byte-stuffed"),
        ("pop3_server_dele_at_once", "dele-rset"),
        ("pop3_server_any_password", "wrong-password"),
    ] {
        check_with("pop3", &pop3(file), &["--case", case], &[case]);
    }
}

fn mail_client(file: &str) -> String {
    format!("python3 fixtures/students/{file}.py 127.0.0.1 {{port}} fixtures/mail/outgoing.txt")
}

#[test]
fn smtp_good_client_passes() {
    check("smtp-client", &mail_client("smtp_client"), &[]);
}

#[test]
fn smtp_buggy_clients_fail_their_cases() {
    for (file, case) in [
        ("smtp_client_no_wait", "waits-for-greeting"),
        ("smtp_client_no_stuffing", "dot-stuffing"),
        ("smtp_client_lf_only", "crlf-dot-crlf"),
        ("smtp_client_ignores_550", "stops-on-550"),
        ("smtp_client_one_recv", "replies-in-pieces"),
    ] {
        check_with("smtp-client", &mail_client(file), &["--case", case], &[case]);
    }
}

#[test]
fn mail_failure_shows_dialogue_code_location_and_rfc() {
    let (out, _) = wirecheck(&["run", "smtp", "--case", "rcpt-before-mail-503", "--exec", &py("smtp_server_no_503")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("step:     suites/smtp.yaml:"), "{text}");
    assert!(text.contains("checks:   RFC 5321 §4.1.4"), "{text}");
    assert!(text.contains("expected: reply 503"), "{text}");
    assert!(
        text.contains("C→S \"RCPT TO:<bob@hamburger.edu>\""),
        "the dialogue up to the failing reply:\n{text}"
    );
}

fn dns_auth(file: &str) -> String {
    format!("python3 fixtures/students/{file}.py {{port}} fixtures/dns/example.test.zone")
}

#[test]
fn dns_good_auth_server_passes_the_basic_profile() {
    check_with("dns-auth", &dns_auth("dns_auth_server"), &["--tag", "basic"], &[]);
}

#[test]
fn dns_buggy_auth_servers_fail_their_cases() {
    for (file, case) in [
        ("dns_auth_wrong_id", "id-echoed"),
        ("dns_auth_no_qr", "qr-set"),
        ("dns_auth_no_question", "question-echoed"),
        ("dns_auth_nxdomain_noerror", "nxdomain"),
        ("dns_auth_case_sensitive", "case-insensitive"),
    ] {
        check_with("dns-auth", &dns_auth(file), &["--case", case], &[case]);
    }
}

fn resolver(file: &str) -> String {
    format!("python3 fixtures/students/{file}.py {{listen_port}} {{root.host}} {{root.port}}")
}

#[test]
fn dns_good_resolver_passes() {
    check("dns-resolver", &resolver("dns_resolver"), &[]);
}

#[test]
fn dns_buggy_resolvers_fail_their_cases() {
    for (file, case) in [("dns_resolver_no_cache", "caches"), ("dns_resolver_ignores_ttl", "ttl-expiry")] {
        check_with("dns-resolver", &resolver(file), &["--case", case], &[case]);
    }
}

#[test]
fn dns_failure_shows_query_and_response_dig_like_with_differences_marked() {
    let (out, _) = wirecheck(&[
        "run",
        "dns-auth",
        "--case",
        "nxdomain",
        "--exec",
        &dns_auth("dns_auth_nxdomain_noerror"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("step:     suites/dns-auth.yaml:"), "{text}");
    assert!(text.contains(";; ->>HEADER<<-"), "dig-like rendering:\n{text}");
    assert!(text.contains("NXDOMAIN") && text.contains("NOERROR"), "{text}");
}
