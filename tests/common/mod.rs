//! Helpers for tests that run the `wirecheck` binary.
#![allow(dead_code)]

pub mod pcap;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The buggy FTP student samples (`fixtures/students/<sample>.py`) and the `ftp` case each must
/// fail: these cases are proven by a sample, the others by a fault switch of the reference.
/// Each buggy BitTorrent tracker sample and the `bt-tracker` case its docstring names.
pub const BT_TRACKER_BUGGY_SAMPLES: &[(&str, &str)] = &[
    ("bt_tracker_all_peers", "peers-of-the-right-torrent"),
    ("bt_tracker_no_failure", "unknown-torrent-failure"),
    ("bt_tracker_keeps_stopped", "stopped-removes-peer"),
    ("bt_tracker_ignores_numwant", "numwant-limits"),
    ("bt_tracker_unsorted_keys", "response-canonical-bencode"),
    ("bt_tracker_str_info_hash", "info-hash-percent-encoding"),
    ("bt_tracker_port_little_endian", "peer-port-as-announced"),
    ("bt_tracker_udp_transaction", "udp-connect"),
];

/// Each buggy DASH player sample and the `dash-client` case its docstring names.
pub const DASH_PLAYER_BUGGY_SAMPLES: &[(&str, &str)] = &[
    ("dash_player_never_switches", "top-when-fits"),
    ("dash_player_always_top", "adapts-down"),
    ("dash_player_out_of_order", "segments-in-order"),
    ("dash_player_ignores_start_number", "number-start"),
];

/// Each buggy DASH origin sample and the `dash-server` case its docstring names.
pub const DASH_ORIGIN_BUGGY_SAMPLES: &[(&str, &str)] = &[
    ("dash_origin_wrong_type", "mpd-content-type"),
    ("dash_origin_broken_ranges", "range-init"),
];

/// Each buggy ring node sample and the `dht-ring` case its docstring names.
pub const DHT_RING_BUGGY_SAMPLES: &[(&str, &str)] = &[
    ("ring_node_forwards_to_predecessor", "forward-closest-preceding"),
    ("ring_node_no_second_successor", "successor-leaves"),
    ("ring_node_off_by_one", "owner-is-successor"),
    ("ring_node_no_shortcuts", "shortcut-first-hop"),
];

/// Each buggy DHT node sample and the `bt-dht` case its docstring names.
pub const BT_DHT_BUGGY_SAMPLES: &[(&str, &str)] = &[
    ("bt_dht_no_token_check", "announce-bad-token"),
    ("bt_dht_numeric_distance", "find-node-closest"),
];

/// Each buggy BitTorrent seeder sample and the `bt-peer` case its docstring names.
pub const BT_SEEDER_BUGGY_SAMPLES: &[(&str, &str)] = &[
    ("bt_seeder_spare_bits", "bitfield-spare-bits-zero"),
    ("bt_seeder_off_by_one", "request-first-block"),
    ("bt_seeder_never_unchokes", "unchoke-after-interested"),
    ("bt_seeder_any_info_hash", "wrong-info-hash-dropped"),
    ("bt_seeder_fixed_buffer", "request-over-16k"),
    ("bt_seeder_single_recv", "handshake-in-pieces"),
];

/// Each buggy BitTorrent client sample and the `bt-client` case its docstring names.
pub const BT_CLIENT_BUGGY_SAMPLES: &[(&str, &str)] = &[
    ("bt_client_no_verify", "corrupt-piece-refetched"),
    ("bt_client_sequential", "rarest-first"),
    ("bt_client_never_unchokes", "tit-for-tat-top-four"),
    ("bt_client_no_optimistic", "optimistic-unchoke"),
    ("bt_client_floods_requests", "bounded-requests"),
    ("bt_client_no_stopped", "announces-completed"),
    ("bt_client_ignores_interval", "churn-new-peers"),
];

pub const FTP_BUGGY_SAMPLES: &[(&str, &str)] = &[
    ("ftp_server_pasv_swapped", "pasv-reply-format"),
    ("ftp_server_list_on_control", "list-passive"),
    ("ftp_server_no_226", "retr-passive"),
    ("ftp_server_no_150", "retr-passive"),
    ("ftp_server_ascii_binary", "type-i-keeps-lf"),
    ("ftp_server_traversal", "cwd-above-root"),
];

/// The buggy FTP client samples and the `ftp-client` case each must fail (`tests/students.rs`).
pub const FTP_CLIENT_BUGGY_SAMPLES: &[(&str, &str)] = &[
    ("ftp_client_port_swapped", "get-active"),
    ("ftp_client_no_data", "get-active"),
    ("ftp_client_no_data", "ls-passive"),
    ("ftp_client_ignores_550", "get-missing-550"),
];

/// The buggy HTTP/2 sample clients and the `http2-client` case each must fail (`tests/students.rs`).
pub const HTTP2_CLIENT_BUGGY_SAMPLES: &[(&str, &str)] = &[
    ("http2_client_no_window_update", "large-object"),
    ("http2_client_ignores_status", "not-found-fails"),
    ("http2_client_uppercase", "lowercase-names"),
    ("http2_client_uppercase", "textbook-get"),
];

/// The buggy HTTP/2 sample servers and the `http2` case each must fail (`tests/students.rs`):
/// the hand-written lenient one fails every case that asks for a connection or stream error.
pub const HTTP2_BUGGY_SAMPLES: &[(&str, &str)] = &[
    ("http2_server_uppercase", "textbook-get"),
    ("http2_server_no_settings_ack", "settings-ack"),
    ("http2_server_no_flow_control", "flow-control-respected"),
    ("http2_server_one_at_a_time", "textbook-interleaved"),
    ("http2_server_lenient", "data-on-stream-0"),
    ("http2_server_lenient", "headers-on-stream-0"),
    ("http2_server_lenient", "settings-on-stream"),
    ("http2_server_lenient", "settings-bad-length"),
    ("http2_server_lenient", "settings-ack-with-payload"),
    ("http2_server_lenient", "initial-window-too-large"),
    ("http2_server_lenient", "max-frame-size-too-small"),
    ("http2_server_lenient", "enable-push-invalid"),
    ("http2_server_lenient", "ping-bad-length"),
    ("http2_server_lenient", "ping-on-stream"),
    ("http2_server_lenient", "rst-stream-on-stream-0"),
    ("http2_server_lenient", "rst-stream-on-idle-stream"),
    ("http2_server_lenient", "rst-stream-bad-length"),
    ("http2_server_lenient", "window-update-zero-connection"),
    ("http2_server_lenient", "window-update-bad-length"),
    ("http2_server_lenient", "window-overflow"),
    ("http2_server_lenient", "priority-bad-length"),
    ("http2_server_lenient", "continuation-without-headers"),
    ("http2_server_lenient", "interrupted-field-block"),
    ("http2_server_lenient", "even-stream-id"),
    ("http2_server_lenient", "decreasing-stream-id"),
    ("http2_server_lenient", "hpack-bad-index"),
    ("http2_server_lenient", "uppercase-field-name"),
    ("http2_server_lenient", "connection-specific-field"),
    ("http2_server_lenient", "te-not-trailers"),
    ("http2_server_lenient", "pseudo-after-regular"),
    ("http2_server_lenient", "unknown-pseudo-header"),
    ("http2_server_lenient", "invalid-preface"),
    ("http2_server_lenient", "preface-without-settings"),
    ("http2_server_lenient", "unknown-frame-in-field-block"),
    ("http2_server_lenient", "data-frame-too-large"),
    ("http2_server_lenient", "settings-frame-too-large"),
    ("http2_server_lenient", "headers-frame-too-large"),
    ("http2_server_lenient", "idle-data"),
    ("http2_server_lenient", "idle-window-update"),
    ("http2_server_lenient", "idle-continuation-after-request"),
    ("http2_server_lenient", "data-after-end-stream"),
    ("http2_server_lenient", "headers-after-end-stream"),
    ("http2_server_lenient", "data-after-end-stream-in-data"),
    ("http2_server_lenient", "new-stream-reusing-id"),
    ("http2_server_lenient", "skipped-stream-id-used"),
    ("http2_server_lenient", "max-concurrent-streams-exceeded"),
    ("http2_server_lenient", "goaway-on-stream"),
    ("http2_server_lenient", "connection-closed-after-error"),
    ("http2_server_lenient", "data-padding-whole-frame"),
    ("http2_server_lenient", "data-padding-past-frame"),
    ("http2_server_lenient", "headers-padding-past-frame"),
    ("http2_server_lenient", "headers-padding-with-priority-past-frame"),
    ("http2_server_lenient", "priority-on-stream-0"),
    ("http2_server_lenient", "priority-bad-length-long"),
    ("http2_server_lenient", "rst-stream-bad-length-long"),
    ("http2_server_lenient", "settings-max-frame-size-too-large"),
    ("http2_server_lenient", "settings-max-frame-size-zero"),
    ("http2_server_lenient", "settings-enable-push-large"),
    ("http2_server_lenient", "settings-initial-window-2-31"),
    ("http2_server_lenient", "settings-bad-length-7"),
    ("http2_server_lenient", "settings-initial-window-overflow"),
    ("http2_server_lenient", "ping-bad-length-long"),
    ("http2_server_lenient", "goaway-too-short"),
    ("http2_server_lenient", "window-update-zero-stream"),
    ("http2_server_lenient", "window-update-stream-overflow"),
    ("http2_server_lenient", "window-update-bad-length-long"),
    ("http2_server_lenient", "continuation-after-end-headers"),
    ("http2_server_lenient", "continuation-on-stream-0"),
    ("http2_server_lenient", "continuation-on-other-stream"),
    ("http2_server_lenient", "headers-interrupted-by-data"),
    ("http2_server_lenient", "headers-interrupted-by-headers"),
    ("http2_server_lenient", "headers-interrupted-by-priority"),
    ("http2_server_lenient", "hpack-size-update-evicts"),
    ("http2_server_lenient", "hpack-index-zero"),
    ("http2_server_lenient", "hpack-name-index-past-tables"),
    ("http2_server_lenient", "hpack-index-past-dynamic-table"),
    ("http2_server_lenient", "hpack-size-update-too-large"),
    ("http2_server_lenient", "hpack-huffman-eos"),
    ("http2_server_lenient", "hpack-huffman-long-padding"),
    ("http2_server_lenient", "hpack-huffman-zero-padding"),
    ("http2_server_lenient", "hpack-string-past-block"),
    ("http2_server_lenient", "hpack-block-ends-mid-field"),
    ("http2_server_lenient", "hpack-integer-too-long"),
    ("http2_server_lenient", "hpack-bad-index-in-continuation"),
    ("http2_server_lenient", "missing-method"),
    ("http2_server_lenient", "missing-scheme"),
    ("http2_server_lenient", "missing-path"),
    ("http2_server_lenient", "empty-path"),
    ("http2_server_lenient", "empty-method"),
    ("http2_server_lenient", "duplicate-method"),
    ("http2_server_lenient", "duplicate-scheme"),
    ("http2_server_lenient", "duplicate-path"),
    ("http2_server_lenient", "response-pseudo-in-request"),
    ("http2_server_lenient", "field-value-with-newline"),
    ("http2_server_lenient", "field-value-with-nul"),
    ("http2_server_lenient", "field-name-with-space"),
    ("http2_server_lenient", "field-name-with-colon"),
    ("http2_server_lenient", "field-name-empty"),
    ("http2_server_lenient", "connection-specific-keep-alive"),
    ("http2_server_lenient", "connection-specific-proxy-connection"),
    ("http2_server_lenient", "connection-specific-transfer-encoding"),
    ("http2_server_lenient", "connection-specific-upgrade"),
    ("http2_server_lenient", "pseudo-in-trailers"),
    ("http2_server_lenient", "trailers-without-end-stream"),
    ("http2_server_lenient", "content-length-too-large"),
    ("http2_server_lenient", "content-length-several-data"),
    ("http2_server_lenient", "content-length-too-small"),
    ("http2_server_no_flow_control", "half-closed-window-update-ok"),
    ("http2_server_no_flow_control", "initial-window-one"),
    ("http2_server_no_flow_control", "initial-window-zero-holds"),
    ("http2_server_no_flow_control", "connection-window-respected"),
    ("http2_server_no_settings_ack", "settings-two-acked"),
];

/// The Python of wirecheck's virtual environment (`ci/test` makes it; `WIRECHECK_VENV`), which
/// has the PyPI packages some samples and real servers need.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("WIRECHECK_VENV").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
        cache.join("wirecheck/venv")
    });
    venv.join("bin/python")
}

/// The public sample captures' file names (`fixtures/captures/*.pcap*`), sorted.
pub fn sample_captures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("fixtures/captures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    names.sort();
    names
}

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `wirecheck ARGS` from the repository root; returns output and wall time.
pub fn wirecheck(args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_wirecheck"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("wirecheck runs");
    (out, start.elapsed())
}

/// Runs `wirecheck run ARGS --report json:FILE` and returns (exit code, stdout, parsed report).
pub fn run_json(args: &[&str]) -> (i32, String, serde_json::Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = dir.path().join("r.json");
    let report = format!("json:{}", path.display());
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--report", &report]);
    let (out, _) = wirecheck(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let json = std::fs::read_to_string(&path)
        .map(|t| serde_json::from_str(&t).expect("valid JSON"))
        .unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), stdout, json)
}

/// Ids of the cases with verdict `verdict`.
pub fn cases_with(report: &serde_json::Value, verdict: &str) -> Vec<String> {
    let mut v: Vec<String> = report["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["verdict"] == verdict)
        .map(|c| c["case"].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

/// Live processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let is_pid = e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !zombie && cmd.contains(marker) && !cmd.contains("wirecheck run") {
            out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    out
}

/// A marker unique to this test run, to find leftover processes.
pub fn marker(name: &str) -> String {
    format!("wirecheck-test-{name}-{}", std::process::id())
}

/// Whether a real server's program is installed. `ci/test` installs every one, so in CI a missing
/// program is a failure; on a developer's machine the test says what to install and skips.
pub fn peer_installed(program: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
        || Path::new(program).is_file();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is missing: ci/test installs it (Debian package {package})"
        );
        eprintln!("skipped: {program} is not installed (apt-get install {package}, or run ci/test)");
    }
    found
}

/// One case a real server is expected not to pass, and the RFC's reason.
#[derive(Debug, Clone)]
pub struct Exclusion {
    /// The case id.
    pub case: String,
    /// `fail`, `n/a`, or `any` (pass or fail: the outcome turns on a choice the server makes at
    /// random, or on a period it fixes, that the case cannot set).
    pub verdict: String,
    /// Why, quoting the RFC that lets the server do what it does.
    pub reason: String,
}

/// Reads `tests/real/<suite>.<server>.expected`: `case-id verdict reason` per line, `#` comments.
pub fn exclusions(suite: &str, server: &str) -> Vec<Exclusion> {
    let path = root().join(format!("tests/real/{suite}.{server}.expected"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, char::is_whitespace);
        let (case, verdict, reason) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("").trim(),
        );
        assert!(
            ["fail", "n/a", "any"].contains(&verdict),
            "{}:{}: the verdict is fail, n/a or any, not '{verdict}'",
            path.display(),
            n + 1
        );
        // BitTorrent's specifications are BEPs, DASH's ISO/IEC 23009-1, the IETF's RFCs.
        assert!(
            reason.contains("RFC") || reason.contains("BEP") || reason.contains("ISO/IEC"),
            "{}:{}: every exclusion gives the RFC (or BEP) reason the server may do what it does",
            path.display(),
            n + 1
        );
        out.push(Exclusion {
            case: case.into(),
            verdict: verdict.into(),
            reason: reason.into(),
        });
    }
    out
}

/// Compares a real server's run (`report`, JSON) with its expected-results file: every case not
/// excluded passes, every excluded one has its listed verdict. Returns the README row's result.
pub fn check_expected(suite: &str, server: &str, report: &serde_json::Value, out: &str) -> String {
    let excluded = exclusions(suite, server);
    let mut unexpected = Vec::new();
    let mut total = 0;
    for c in report["cases"].as_array().into_iter().flatten() {
        total += 1;
        let id = c["case"].as_str().unwrap_or("");
        let verdict = c["verdict"].as_str().unwrap_or("");
        let want = excluded.iter().find(|e| e.case == id).map_or("pass", |e| e.verdict.as_str());
        let pass_or_fail = want == "any" && ["pass", "fail"].contains(&verdict);
        if verdict != want && !pass_or_fail {
            let why = c["failure"]["message"].as_str().unwrap_or("");
            unexpected.push(format!("{id}: {verdict}, expected {want} ({why})"));
        }
    }
    for e in &excluded {
        assert!(
            report["cases"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["case"] == e.case.as_str()),
            "tests/real/{suite}.{server}.expected names '{}', which did not run",
            e.case
        );
    }
    assert!(total > 0, "no case ran: {out}");
    assert!(
        unexpected.is_empty(),
        "{suite} against {server}: unexpected verdicts:\n  {}\n{out}",
        unexpected.join("\n  ")
    );
    let passed = total - excluded.len();
    let mut row = format!("{passed} of {total} pass");
    if !excluded.is_empty() {
        let list: Vec<String> = excluded
            .iter()
            .map(|e| format!("`{}` ({}: {})", e.case, e.verdict, e.reason))
            .collect();
        row.push_str(&format!("; out of scope: {}", list.join("; ")));
    }
    row
}

/// Keeps the README's generated "Real servers" table row for `label` × `run` (the suite and its
/// options, as a reader would type them) equal to `result`: the row comes from the test's results,
/// never from a hand. `WIRECHECK_BLESS=1` rewrites it.
pub fn readme_row(label: &str, run: &str, result: &str) {
    // Tests of one binary run on threads; only one may rewrite the file at a time.
    static README: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _lock = README.lock().unwrap_or_else(|e| e.into_inner());
    const BEGIN: &str = "<!-- real-servers:begin (generated by the real-server tests; WIRECHECK_BLESS=1 cargo test to refresh) -->";
    const END: &str = "<!-- real-servers:end -->";
    let path = root().join("README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        panic!("README.md has no generated real-servers table ({BEGIN} ... {END})")
    };
    let body = &text[b + BEGIN.len()..e];
    let key = format!("| {label} | `{run}` |");
    let row = format!("{key} {result} |");
    let mut rows: Vec<String> = body
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| server |") && !l.starts_with("|---"))
        .map(str::to_string)
        .collect();
    let current = rows.iter().find(|l| l.starts_with(&key)).cloned();
    if current.as_deref() == Some(row.as_str()) {
        return;
    }
    if std::env::var_os("WIRECHECK_BLESS").is_none() {
        panic!("README.md's real-servers row for {label} × {run} is stale; run with WIRECHECK_BLESS=1.\n  now: {current:?}\n  run: {row}");
    }
    rows.retain(|l| !l.starts_with(&key));
    rows.push(row);
    rows.sort();
    let table = format!("\n| server | suite | result |\n|---|---|---|\n{}\n", rows.join("\n"));
    let new = format!("{}{BEGIN}{table}{}", &text[..b], &text[e..]);
    std::fs::write(&path, new).unwrap();
}

/// The suites whose protocol runs over TCP: what `--tls` applies to.
pub const TCP_SUITES: &[&str] = &[
    "tcp-upper",
    "socket-timeout",
    "http",
    "http-proxy",
    "http2",
    "smtp",
    "pop3",
    "imap",
    "ftp",
    "smtp-client",
    "ftp-client",
    "http2-client",
];
