//! BitTorrent peers no one here wrote: opentracker for `bt-tracker`, aria2 as a seeder for
//! `bt-peer` and as a client for `bt-client`. The suites must not fail them where the BEPs allow
//! what they do; what they may fail is in `tests/real/SUITE.PEER.expected`, with the BEP's reason.
//! Every one stays on loopback: opentracker binds 127.0.0.1, aria2 binds `lo` and runs with DHT,
//! local peer discovery and peer exchange off (tests/peers/).

mod common;
use common::*;

#[test]
fn bt_tracker_suite_against_opentracker() {
    if !peer_installed("/usr/bin/opentracker", "opentracker") {
        return;
    }
    let (_, out, report) = run_json(&["bt-tracker", "--exec", "tests/peers/opentracker {port}"]);
    let result = check_expected("bt-tracker", "opentracker", &report, &out);
    readme_row(
        "opentracker (Debian `opentracker`, whitelist of the fixture torrents)",
        "bt-tracker",
        &result,
    );
}

#[test]
fn bt_peer_suite_against_aria2() {
    if !peer_installed("/usr/bin/aria2c", "aria2") {
        return;
    }
    let (_, out, report) = run_json(&[
        "bt-peer",
        "--exec",
        "tests/peers/aria2-seed {port} fixtures/bittorrent/sample.torrent fixtures/bittorrent",
    ]);
    let result = check_expected("bt-peer", "aria2", &report, &out);
    readme_row("aria2 (Debian `aria2`) as the seeder", "bt-peer", &result);
}

#[test]
fn bt_client_suite_against_aria2() {
    if !peer_installed("/usr/bin/aria2c", "aria2") {
        return;
    }
    let (_, out, report) = run_json(&["bt-client", "--exec", "tests/peers/aria2-client", "-j", "4"]);
    let result = check_expected("bt-client", "aria2", &report, &out);
    readme_row("aria2 (Debian `aria2`) as the client", "bt-client", &result);
}

#[test]
fn bt_dht_suite_against_libtorrent() {
    // ci/test installs libtorrent's Python bindings into this virtual environment (PyPI).
    let python = venv_python();
    let installed = std::process::Command::new(&python)
        .args(["-c", "import libtorrent"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "libtorrent is missing from {}: ci/test installs it",
            python.display()
        );
        eprintln!("skipped: libtorrent is not installed for {} (run ci/test)", python.display());
        return;
    }
    let (_, out, report) = run_json(&["bt-dht", "--exec", "tests/peers/libtorrent-dht {listen_port} {dht.host} {dht.port}"]);
    let result = check_expected("bt-dht", "libtorrent", &report, &out);
    readme_row("libtorrent 2.1 (PyPI `libtorrent`), its DHT alone on loopback", "bt-dht", &result);
}
