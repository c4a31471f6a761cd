//! Name servers no one here wrote as standing oracles: NSD for `dns-auth` (started by
//! `tests/peers/nsd` on the runner's port with the zones of fixtures/dns), Unbound for
//! `dns-resolver` (started by `tests/peers/unbound` with root hints only, under `--isolate` so the
//! harness's hierarchy owns port 53). The suites must not fail them where the RFCs allow what they
//! do (tests/real/SUITE.SERVER.expected lists what is out of scope, with the RFC reason).

mod common;
use common::*;

#[test]
fn dns_auth_passes_nsd() {
    if !peer_installed("/usr/sbin/nsd", "nsd") {
        return;
    }
    // Every zone of fixtures/dns is loaded, so every tag runs: basic, seeds, reverse and full.
    let (_, out, report) = run_json(&["dns-auth", "--exec", "tests/peers/nsd {port}"]);
    let result = check_expected("dns-auth", "nsd", &report, &out);
    // NSD caps UDP answers at 1232 octets and sets TC above that: the large EDNS answer then
    // comes over TCP, which the suite accepts (RFC 6891 §6.2.5).
    assert!(cases_with(&report, "pass").contains(&"edns-large-answer".to_string()), "{out}");
    readme_row("NSD (Debian `nsd`)", "dns-auth", &result);
}

#[test]
fn dns_resolver_passes_unbound() {
    if !peer_installed("/usr/sbin/unbound", "unbound") {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var_os("CI").is_none(), "the Unbound test needs root for --isolate");
        eprintln!("skipped: --isolate (a private network namespace with port 53) needs root");
        return;
    }
    let (_, out, report) = run_json(&["dns-resolver", "--isolate", "--exec", "tests/peers/unbound {listen_port}"]);
    let result = check_expected("dns-resolver", "unbound", &report, &out);
    // The priming query and what else Unbound asks are accepted: the root saw more than the
    // stub's question, and the cases still passed.
    assert!(cases_with(&report, "pass").contains(&"follows-referrals".to_string()), "{out}");
    readme_row("Unbound (Debian `unbound`, root hints only, `--isolate`)", "dns-resolver", &result);
}
