//! Servers no one here wrote: the suites must not fail them where the RFCs allow what they do.
//! Each runs the whole suite through its wrapper in `tests/peers/` (a temp config with the port
//! wirecheck gives it, `fixtures/www` as the docroot, the server in the foreground); the
//! verdicts must be those of `tests/real/<suite>.<server>.expected`.

mod common;
use common::*;

/// Runs `suite` against the peer started by `exec` and checks the expected results.
fn real(suite: &str, server: &str, exec: &str, label: &str) {
    let (_, out, report) = run_json(&[suite, "--exec", exec]);
    let result = check_expected(suite, server, &report, &out);
    readme_row(label, suite, &result);
}

#[test]
fn http_suite_against_nginx() {
    if peer_installed("/usr/sbin/nginx", "nginx-light") {
        real("http", "nginx", "tests/peers/nginx {port}", "nginx (Debian `nginx-light`)");
    }
}

#[test]
fn dash_server_suite_against_nginx() {
    if peer_installed("/usr/sbin/nginx", "nginx-light") {
        real(
            "dash-server",
            "nginx",
            "tests/peers/nginx-dash {port}",
            "nginx (Debian `nginx-light`) as a DASH origin",
        );
    }
}

#[test]
fn http_suite_against_nginx_over_tls() {
    // HTTPS with the run's certificate: the same dialogue over TLS (ALPN http/1.1).
    if peer_installed("/usr/sbin/nginx", "nginx-light") {
        let (_, out, report) = run_json(&["http", "--tls", "--exec", "tests/peers/nginx {port} {cert} {key}"]);
        let result = check_expected("http", "nginx-tls", &report, &out);
        readme_row("nginx (Debian `nginx-light`) over TLS", "http --tls", &result);
    }
}

#[test]
fn http_suite_against_python_http_server_1_0() {
    // http.server's default: HTTP/1.0 responses, a close after each one.
    if peer_installed("python3", "python3") {
        real(
            "http",
            "pyhttp10",
            "tests/peers/pyhttp {port}",
            "Python 3 `http.server` (HTTP/1.0, its default)",
        );
    }
}

#[test]
fn http_suite_against_python_http_server_1_1() {
    if peer_installed("python3", "python3") {
        real(
            "http",
            "pyhttp11",
            "tests/peers/pyhttp {port} HTTP/1.1",
            "Python 3 `http.server --protocol HTTP/1.1`",
        );
    }
}

#[test]
fn http_proxy_suite_against_squid() {
    // squid in front of the suite's scripted origins.
    if peer_installed("/usr/sbin/squid", "squid") {
        real("http-proxy", "squid", "tests/peers/squid {port}", "squid (Debian `squid`)");
    }
}
