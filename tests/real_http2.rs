//! HTTP/2 peers no one here wrote: nghttpd and nginx for the `http2` suite, curl and nghttp for
//! the `http2-client` suite. A suite must not fail them where RFC 9113 allows what they do; what
//! each may fail is in `tests/real/<suite>.<peer>.expected`, with the RFC's reason. The servers
//! are started by wirecheck (`--exec "tests/peers/nghttpd {port}"`, `--exec "tests/peers/nginx-h2
//! {port}"`), serving fixtures/www (nghttpd a temporary copy); the clients run per case behind
//! `tests/peers/curl-h2-client` and `tests/peers/nghttp-h2-client`, which put them behind the
//! suite's interface.

mod common;
use common::*;

#[test]
fn http2_suite_against_nghttpd() {
    if !peer_installed("/usr/sbin/nghttpd", "nghttp2-server") {
        return;
    }
    let (_, out, report) = run_json(&["http2", "--exec", "tests/peers/nghttpd {port}"]);
    let result = check_expected("http2", "nghttpd", &report, &out);
    readme_row("nghttpd 1.52 (Debian `nghttp2-server`), prior knowledge", "http2", &result);
}

#[test]
fn http2_suite_against_nginx() {
    if !peer_installed("/usr/sbin/nginx", "nginx-light") {
        return;
    }
    let (_, out, report) = run_json(&["http2", "--exec", "tests/peers/nginx-h2 {port}"]);
    let result = check_expected("http2", "nginx", &report, &out);
    readme_row(
        "nginx 1.22 (Debian `nginx-light`), `listen ... http2` without TLS",
        "http2",
        &result,
    );
}

#[test]
fn http2_client_suite_against_curl() {
    if !peer_installed("curl", "curl") {
        return;
    }
    let (_, out, report) = run_json(&["http2-client", "--exec", "tests/peers/curl-h2-client {host} {port}"]);
    let result = check_expected("http2-client", "curl", &report, &out);
    readme_row(
        "curl 7.88 (Debian `curl`, nghttp2 1.52) as the client, prior knowledge",
        "http2-client",
        &result,
    );
}

#[test]
fn http2_client_suite_against_nghttp() {
    if !peer_installed("nghttp", "nghttp2-client") {
        return;
    }
    let (_, out, report) = run_json(&["http2-client", "--exec", "tests/peers/nghttp-h2-client {host} {port}"]);
    let result = check_expected("http2-client", "nghttp", &report, &out);
    readme_row("nghttp 1.52 (Debian `nghttp2-client`) as the client", "http2-client", &result);
}
