//! A real DASH player runs the `dash-client` suite: dash.js (npm `dashjs` 4) in headless Chromium
//! behind `tests/peers/dashjs-player`, with the verdicts of `tests/real/dash-client.dashjs.expected`
//! (every case out of its scope with the reason). Each run's QoE figures are in its report.

mod common;
use common::*;

#[test]
fn dash_client_suite_against_dashjs() {
    if !peer_installed("chromium", "chromium") {
        return;
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .unwrap_or_default();
    let dashjs = cache.join("wirecheck/npm/node_modules/dashjs/dist/dash.all.min.js");
    if !dashjs.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing: ci/test installs it (npm install --prefix ~/.cache/wirecheck/npm dashjs@4)",
            dashjs.display()
        );
        eprintln!("skipped: dash.js is not installed (npm install --prefix ~/.cache/wirecheck/npm dashjs@4, or run ci/test)");
        return;
    }
    let (_, out, report) = run_json(&["dash-client", "--exec", "tests/peers/dashjs-player"]);
    let result = check_expected("dash-client", "dashjs", &report, &out);
    readme_row("dash.js 4.7 (npm `dashjs`) in headless Chromium", "dash-client", &result);
    // The figures reach the report of every case that played.
    let cases = report["cases"].as_array().cloned().unwrap_or_default();
    let with_qoe = cases.iter().filter(|c| c["figures"]["QoE"].is_number()).count();
    assert!(with_qoe >= 10, "only {with_qoe} cases report QoE:\n{out}");
}
