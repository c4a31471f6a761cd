//! HTTP/2 servers no one here wrote: nghttpd. The `http2` suite must not fail it where RFC 9113
//! allows what it does; what it may fail is in `tests/real/http2.nghttpd.expected`, with the
//! RFC's reason. It is started by wirecheck (`--exec "tests/peers/nghttpd {port}"`), serving a
//! temporary copy of fixtures/www.

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
