//! HTTP/2 servers no one here wrote: nghttpd and nginx. The `http2` suite must not fail them where
//! RFC 9113 allows what they do; what they may fail is in `tests/real/http2.<server>.expected`,
//! with the RFC's reason. Each is started by wirecheck (`--exec "tests/peers/nghttpd {port}"`,
//! `--exec "tests/peers/nginx-h2 {port}"`), serving fixtures/www (nghttpd a temporary copy).

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
