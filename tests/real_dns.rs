//! NSD, an authoritative name server no one here wrote, as a standing oracle for `dns-auth`:
//! the suite must not fail it where the RFCs allow what it does (tests/real/dns-auth.nsd.expected
//! lists what is out of its scope, with the RFC reason). `tests/peers/nsd` starts it on the
//! runner's port with the suite's zones from fixtures/dns.

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
