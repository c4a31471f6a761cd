//! Cases that only the bundled reference can run are proven with its fault switches: each must
//! pass the reference and fail the reference with the fault on.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wirecheck::run::{run_one, RunOptions, SuiteTarget, TargetSpec, Verdict};

/// Runs the `tag` cases of `suite` with `extra` added to its reference options; returns (case, verdict).
async fn run_tagged(suite: &str, tag: &str, extra: &str) -> Vec<(String, Verdict)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites").join(format!("{suite}.yaml"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    if !extra.is_empty() {
        if text.contains("reference_options: { ") {
            text = text.replacen("reference_options: { ", &format!("reference_options: {{ {extra}, "), 1);
        } else {
            let at = text
                .find("\nreference: ")
                .unwrap_or_else(|| panic!("{suite}: no reference to give {extra} to"));
            text.insert_str(at, &format!("\nreference_options: {{ {extra} }}"));
        }
    }
    let suite = Arc::new(wirecheck::suite::load_str(&path, text).unwrap_or_else(|e| panic!("{e}")));
    let target = SuiteTarget::new(suite.clone(), TargetSpec::Reference, Duration::from_secs(5));
    let mut out = Vec::new();
    for (i, case) in suite.cases.iter().enumerate() {
        if case.tags.iter().any(|t| t == tag) {
            let (r, _) = run_one(&target, suite.clone(), i, &RunOptions::default()).await;
            out.push((case.id.clone(), r.verdict));
        }
    }
    target.stop().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_roundtrip_cases_catch_a_server_that_keeps_dot_stuffing() {
    let good = run_tagged("smtp", "roundtrip", "").await;
    assert!(good.len() >= 2 && good.iter().all(|(_, v)| *v == Verdict::Pass), "{good:?}");
    let faulty = run_tagged("smtp", "roundtrip", "fault: no-unstuff").await;
    assert!(
        faulty.iter().all(|(_, v)| *v == Verdict::Fail),
        "every round trip must catch the fault: {faulty:?}"
    );
}

/// The STARTTLS cases of the smtp and pop3 suites each catch their fault of the reference (the
/// imap suite's are among `IMAP_FAULTS`): a server that runs what came in clear after STARTTLS,
/// one that offers STARTTLS again inside TLS, one that takes STLS after a login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_cases_catch_their_faults() {
    let faults = [
        ("smtp", "starttls-runs-pipelined"),
        ("smtp", "starttls-again"),
        ("pop3", "starttls-runs-pipelined"),
        ("pop3", "stls-after-login"),
    ];
    let mut problems = Vec::new();
    for (suite, fault) in faults {
        let tag = format!("bug-{fault}");
        let good = run_tagged(suite, &tag, "").await;
        if good.is_empty() {
            problems.push(format!("{suite}: no case is tagged {tag}"));
        }
        for (case, v) in good.iter().filter(|(_, v)| *v != Verdict::Pass) {
            problems.push(format!("{suite}::{case} does not pass the reference ({v:?})"));
        }
        let faulty = run_tagged(suite, &tag, &format!("fault: {fault}")).await;
        for (case, v) in faulty.iter().filter(|(_, v)| *v != Verdict::Fail) {
            problems.push(format!("{suite}::{case} does not catch {fault} ({v:?})"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The reference IMAP server's faults: each is the tag `bug-<fault>` of the suite cases that must
/// catch it (`reference-servers/src/imap/fault.rs`).
const IMAP_FAULTS: &[&str] = &[
    "tag-echo",
    "any-password",
    "quoted-strings",
    "no-continuation",
    "no-auth-check",
    "logout-no-bye",
    "wrong-exists",
    "examine-writes",
    "size-lf",
    "dot-stuffing",
    "peek-sets-seen",
    "never-seen",
    "silent-ignored",
    "no-renumber",
    "expunge-numbers",
    "close-no-expunge",
    "uid-as-seq",
    "uidvalidity-changes",
    "one-recv",
    "one-line-per-recv",
    "case-sensitive",
    "crash-on-garbage",
    "single-client",
    "starttls-runs-pipelined",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn imap_bug_cases_catch_their_faults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/imap.yaml");
    let suite = wirecheck::suite::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut tags: Vec<&str> = suite
        .cases
        .iter()
        .flat_map(|c| &c.tags)
        .filter_map(|t| t.strip_prefix("bug-"))
        .collect();
    tags.sort_unstable();
    tags.dedup();
    let unknown: Vec<&&str> = tags.iter().filter(|t| !IMAP_FAULTS.contains(t)).collect();
    assert!(unknown.is_empty(), "bug-* tags without a fault in the reference: {unknown:?}");

    // Each fault in its own reference server, all at once: several of them are caught by a timeout.
    let mut runs = tokio::task::JoinSet::new();
    for fault in IMAP_FAULTS {
        runs.spawn(async move {
            let tag = format!("bug-{fault}");
            let good = run_tagged("imap", &tag, "").await;
            let faulty = run_tagged("imap", &tag, &format!("fault: {fault}")).await;
            (fault, good, faulty)
        });
    }
    let mut problems = Vec::new();
    while let Some(run) = runs.join_next().await {
        let (fault, good, faulty) = run.unwrap();
        if good.is_empty() {
            problems.push(format!("{fault}: no case is tagged bug-{fault}"));
        }
        for (case, verdict) in good.iter().filter(|(_, v)| *v != Verdict::Pass) {
            problems.push(format!("{fault}: {case} does not pass the reference ({verdict:?})"));
        }
        for (case, verdict) in faulty.iter().filter(|(_, v)| *v != Verdict::Fail) {
            problems.push(format!("{fault}: {case} does not catch the fault ({verdict:?})"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The reference FTP server's faults: each is the tag `bug-<fault>` of the suite cases that must
/// catch it (`reference-servers/src/ftp/fault.rs`).
const FTP_FAULTS: &[&str] = &[
    "no-greeting",
    "no-password",
    "quit-no-close",
    "type-swapped",
    "basename-only",
    "split-on-spaces",
    "textbook-only",
    "list-ignores-path",
    "list-folders-only",
    "close-after-transfer",
    "port-ignored",
    "epsv-bare-port",
    "epsv-all-ignored",
    "rest-off-by-one",
    "rest-sticky",
    "size-ascii",
    "errors-450",
    "appe-overwrites",
    "dele-ignored",
    "rnfr-no-350",
    "no-quotes",
    "rmd-rmtree",
    "stor-no-truncate",
    "case-sensitive",
    "no-530",
    "no-503",
    "unknown-200",
    "no-425",
    "no-syntax-errors",
    "traversal",
    "bounce-allowed",
    "crash-on-garbage",
    "one-recv",
    "crash-on-disconnect",
    "single-client",
];

/// How long proving the whole suite may take: its slowest faults are caught by 5 s timeouts, a
/// few cases in a row, and every fault runs at once.
const FTP_BUDGET: Duration = Duration::from_secs(240);

/// Every case of the `ftp` suite can fail: a buggy student sample fails it
/// (`common::FTP_BUGGY_SAMPLES`, run by `tests/students.rs`), or it is tagged `bug-<fault>` and
/// passes the reference, then fails it with each such fault on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ftp_cases_are_each_proven() {
    // The test's list is the server's: an unknown name is refused with the names it knows.
    let opts = [("fault".to_owned(), "nosuch".to_owned())].into_iter().collect();
    let refused = match reference_servers::start_server("ftp", "127.0.0.1:0".parse().unwrap(), &opts).await {
        Ok(_) => panic!("the ftp reference took an unknown fault"),
        Err(e) => e.to_string(),
    };
    each_case_proven("ftp", &refused, FTP_FAULTS, common::FTP_BUGGY_SAMPLES, &[]).await;
}

/// The faults of the reference FTP client (`reference-servers/src/ftp_client.rs`).
const FTP_CLIENT_FAULTS: &[&str] = &[
    "port-swapped",
    "no-greeting-wait",
    "no-type",
    "one-recv",
    "ignore-errors",
    "no-quit",
    "pasv-parens-only",
    "no-fallback",
    "read-once",
    "no-226-wait",
    "pass-always",
    "wrong-host",
    "no-pass",
    "first-line-only",
    "first-word",
    "ls-no-path",
    "basename",
];

/// The same for the `ftp-client` suite, with the reference client's faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ftp_client_cases_are_each_proven() {
    let refused = client_refusal("ftp-client", &["ls"]).await;
    each_case_proven("ftp-client", &refused, FTP_CLIENT_FAULTS, common::FTP_CLIENT_BUGGY_SAMPLES, &[]).await;
}

/// What a reference client says when given an unknown fault: the list of its faults.
async fn client_refusal(client: &str, args: &[&str]) -> String {
    let opts = [("fault".to_owned(), "nosuch".to_owned())].into_iter().collect();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    match reference_servers::run_client(client, "127.0.0.1:9".parse().unwrap(), &opts, &args, tx).await {
        Ok(code) => panic!("the {client} reference took an unknown fault (exit {code})"),
        Err(e) => e.to_string(),
    }
}

/// The faults of the reference HTTP/2 client (`reference-servers/src/http2_client/fault.rs`).
const HTTP2_CLIENT_FAULTS: &[&str] = &[
    "no-preface",
    "settings-not-first",
    "no-settings-ack",
    "no-ping-ack",
    "even-stream-ids",
    "reused-stream-id",
    "uppercase-names",
    "connection-header",
    "no-scheme",
    "pseudo-after-regular",
    "ignore-flow-control",
    "big-frames",
    "no-window-update",
    "no-end-stream",
    "ignores-status",
    "accepts-malformed",
    "lenient",
    "wrong-error-code",
    "accepts-push",
    "discards-on-reset",
    "ignores-max-streams",
    "one-connection-per-request",
    "no-padding",
    "no-continuation",
    "no-huffman",
    "no-dynamic-table",
    "no-size-update",
    "strict-unknown",
    "no-priority",
    "final-1xx",
    "no-trailers",
    "goaway-fails",
    "first-data-only",
];

/// The same for the `http2-client` suite, with the reference client's faults: every case is
/// failed by a buggy sample client or tagged with a fault that fails it (and passes without it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http2_client_cases_are_each_proven() {
    let refused = client_refusal("http2-client", &["get", "/", "x"]).await;
    // `one-connection-per-request` is legal (RFC 9113 §9.1 makes one connection a SHOULD): it
    // makes textbook-multiplexed n/a, not failed, so it proves nothing.
    each_case_proven(
        "http2-client",
        &refused,
        HTTP2_CLIENT_FAULTS,
        common::HTTP2_CLIENT_BUGGY_SAMPLES,
        &["one-connection-per-request"],
    )
    .await;
}

/// The faults of the reference HTTP/2 server (`reference-servers/src/http2/fault.rs`).
const HTTP2_FAULTS: &[&str] = &[
    "one-at-a-time",
    "no-push",
    "first-stream-only",
    "strict-unknown",
    "no-padding",
    "no-continuation",
    "no-priority",
    "no-ping-ack",
    "limits-off-by-one",
    "no-trailers",
    "bodies-refused",
    "ping-ack-answered",
    "ignores-window-changes",
    "literals-only",
    "no-dynamic-table",
    "no-never-indexed",
    "no-huffman",
    "no-size-update",
    "strict-fields",
    "head-body",
    "no-404",
    "one-connection",
    "upgrade-forgets-request",
];

/// Every case of the `http2` suite can fail: a buggy sample server fails it, or a fault of the
/// reference does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http2_cases_are_each_proven() {
    let opts = [("fault".to_owned(), "nosuch".to_owned())].into_iter().collect();
    let refused = match reference_servers::start_server("http2", "127.0.0.1:0".parse().unwrap(), &opts).await {
        Ok(_) => panic!("the http2 reference took an unknown fault"),
        Err(e) => e.to_string(),
    };
    // `no-push` is for push cases, which come later. `one-at-a-time` releases a stream's turn
    // when its body is handed to h2, which may still be writing it when the next stream starts:
    // the order is not certain, so textbook-interleaved is proven by the one-at-a-time sample;
    // the hol cases it proves stall the first stream on a zero window, which holds the turn.
    each_case_proven("http2", &refused, HTTP2_FAULTS, common::HTTP2_BUGGY_SAMPLES, &["no-push"]).await;
}

/// The faults of the reference HTTP/3 server (`reference-servers/src/http3/fault.rs`).
const HTTP3_FAULTS: &[&str] = &[
    "no-settings",
    "ignores-control-streams",
    "ignores-frame-errors",
    "rejects-unknown",
    "wrong-code",
    "head-body",
    "no-404",
    "first-stream-only",
    "truncated-body",
];

/// Every case of the `http3` suite is failed by a fault of the reference (no sample servers:
/// an HTTP/3 server needs a QUIC library). Three faults at a time: QUIC's handshakes and the
/// cases that wait for a connection error are slow on a loaded 2-core machine, and with every
/// fault at once a correct reference missed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http3_cases_are_each_proven() {
    let opts = [("fault".to_owned(), "nosuch".to_owned())].into_iter().collect();
    let refused = match reference_servers::start_server("http3", "127.0.0.1:0".parse().unwrap(), &opts).await {
        Ok(_) => panic!("the http3 reference took an unknown fault"),
        Err(e) => e.to_string(),
    };
    each_case_proven_at_most("http3", &refused, HTTP3_FAULTS, &[], &[], 3).await;
}

/// The reference DASH origin's faults (`reference-servers/src/dash_origin/fault.rs`).
const DASH_ORIGIN_FAULTS: &[&str] = &[
    "wrong-content-type",
    "broken-ranges",
    "range-off-by-one",
    "no-416",
    "head-body",
    "no-head",
    "no-cors",
    "no-preflight",
    "no-expose",
    "wrong-length",
    "no-404",
    "closes-silently",
    "traversal",
    "no-accept-ranges",
    "any-unit",
    "no-suffix",
    "no-clamp",
    "text-mode",
];

/// Every case of the `dash-server` suite fails a buggy sample or a fault of the reference origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dash_server_cases_are_each_proven() {
    let opts = [("fault".to_owned(), "nosuch".to_owned())].into_iter().collect();
    let refused = match reference_servers::start_server("dash-origin", "127.0.0.1:0".parse().unwrap(), &opts).await {
        Ok(_) => panic!("the dash-origin reference took an unknown fault"),
        Err(e) => e.to_string(),
    };
    each_case_proven("dash-server", &refused, DASH_ORIGIN_FAULTS, common::DASH_ORIGIN_BUGGY_SAMPLES, &[]).await;
}

/// The reference DASH player's faults (`reference-servers/src/dash_client.rs`).
const DASH_CLIENT_FAULTS: &[&str] = &[
    "never-switches",
    "always-top",
    "out-of-order",
    "ignores-start-number",
    "ignores-width",
    "time-as-number",
    "no-init",
    "init-once",
    "skips-segment",
    "past-end",
    "no-failover",
    "ignores-relative-base",
    "no-ranges",
    "aggressive",
    "slow-down",
    "no-host",
    "follows-302-forever",
    "probes-first",
    "ignores-list",
    "ignores-mpd-base",
    "ignores-dns",
    "no-cname",
    "first-address-only",
    "host-is-address",
];

/// Every case of the `dash-client` suite fails a buggy sample or a fault of the reference player
/// (a few faults at a time: the adaptation cases judge rates measured on the socket).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dash_client_cases_are_each_proven() {
    let refused = client_refusal("dash-client", &["http://127.0.0.1:9/v.mpd", "--buffer", "2"]).await;
    each_case_proven_at_most(
        "dash-client",
        &refused,
        DASH_CLIENT_FAULTS,
        common::DASH_PLAYER_BUGGY_SAMPLES,
        &[],
        6,
    )
    .await;
}

/// The reference BitTorrent tracker's faults (`reference-servers/src/bittorrent/tracker.rs`).
const BT_TRACKER_FAULTS: &[&str] = &[
    "no-failure-reason",
    "wrong-torrent-peers",
    "ignores-stopped",
    "ignores-numwant",
    "unsorted-keys",
    "udp-wrong-transaction",
    "port-little-endian",
    "counts-nothing",
    "no-param-check",
];

/// Every case of the `bt-tracker` suite fails a buggy sample or a fault of the reference tracker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bt_tracker_cases_are_each_proven() {
    let opts = [("fault".to_owned(), "nosuch".to_owned())].into_iter().collect();
    let refused = match reference_servers::start_server("bt-tracker", "127.0.0.1:0".parse().unwrap(), &opts).await {
        Ok(_) => panic!("the bt-tracker reference took an unknown fault"),
        Err(e) => e.to_string(),
    };
    each_case_proven("bt-tracker", &refused, BT_TRACKER_FAULTS, common::BT_TRACKER_BUGGY_SAMPLES, &[]).await;
}

/// The reference DHT node's faults (`reference-servers/src/bt_dht/mod.rs`).
const BT_DHT_FAULTS: &[&str] = &[
    "no-token-check",
    "token-any-ip",
    "numeric-distance",
    "wrong-transaction",
    "no-error-203",
    "unknown-as-ping",
    "no-token",
    "no-bootstrap",
    "adds-unverified",
    "ignores-implied-port",
    "no-values",
    "too-many-nodes",
    "new-id",
    "rejects-unknown-keys",
    "stops-on-garbage",
];

/// Every case of the `bt-dht` suite fails a buggy sample node or a fault of the reference node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bt_dht_cases_are_each_proven() {
    let opts = [("fault".to_owned(), "nosuch".to_owned())].into_iter().collect();
    let refused = match reference_servers::start_server("bt-dht", "127.0.0.1:0".parse().unwrap(), &opts).await {
        Ok(_) => panic!("the bt-dht reference took an unknown fault"),
        Err(e) => e.to_string(),
    };
    each_case_proven("bt-dht", &refused, BT_DHT_FAULTS, common::BT_DHT_BUGGY_SAMPLES, &[]).await;
}

/// The reference ring node's faults (`reference-servers/src/dht_ring/`).
const DHT_RING_FAULTS: &[&str] = &[
    "forwards-to-predecessor",
    "no-second-successor",
    "off-by-one-owner",
    "ignores-shortcuts",
    "no-items-handoff",
    "no-notify",
    "answers-forwarder",
    "no-hops",
    "never-pings",
    "no-error",
    "wrong-tid",
    "no-stabilize",
    "no-join",
    "ignores-welcome-items",
    "static-successors",
    "keeps-predecessor",
];

/// Every case of the `dht-ring` suite fails a buggy sample node or a fault of the reference node.
/// Four faults at a time: the churn cases wait for pings over seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dht_ring_cases_are_each_proven() {
    let opts = [("fault".to_owned(), "nosuch".to_owned()), ("args".to_owned(), "4 4".to_owned())]
        .into_iter()
        .collect();
    let refused = match reference_servers::start_server("dht-ring", "127.0.0.1:0".parse().unwrap(), &opts).await {
        Ok(_) => panic!("the dht-ring reference took an unknown fault"),
        Err(e) => e.to_string(),
    };
    each_case_proven_at_most("dht-ring", &refused, DHT_RING_FAULTS, common::DHT_RING_BUGGY_SAMPLES, &[], 4).await;
}

/// The reference seeder's faults (`reference-servers/src/bittorrent/seeder.rs`).
const BT_SEEDER_FAULTS: &[&str] = &[
    "spare-bits-set",
    "off-by-one-index",
    "never-unchokes",
    "truncates-big-requests",
    "accepts-any-info-hash",
    "corrupt-piece",
    "no-range-check",
    "no-bitfield",
    "ignores-pstr",
    "wrong-info-hash",
    "closes-on-keepalive",
];

/// Every case of the `bt-peer` suite fails a buggy sample or a fault of the reference seeder.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bt_peer_cases_are_each_proven() {
    let torrent = common::root().join("fixtures/bittorrent/sample.torrent").display().to_string();
    let opts = [("fault".to_owned(), "nosuch".to_owned()), ("torrent".to_owned(), torrent)]
        .into_iter()
        .collect();
    let refused = match reference_servers::start_server("bt-seeder", "127.0.0.1:0".parse().unwrap(), &opts).await {
        Ok(_) => panic!("the bt-seeder reference took an unknown fault"),
        Err(e) => e.to_string(),
    };
    each_case_proven("bt-peer", &refused, BT_SEEDER_FAULTS, common::BT_SEEDER_BUGGY_SAMPLES, &[]).await;
}

/// The faults of the reference BitTorrent client (`reference-servers/src/bt_client.rs`).
const BT_CLIENT_FAULTS: &[&str] = &[
    "no-verify",
    "sequential",
    "never-unchokes",
    "no-stopped",
    "floods-requests",
    "ignores-interval",
    "arrival-order",
    "no-started",
    "hashes-whole-file",
    "never-interested",
    "big-requests",
    "no-have",
    "unchokes-all",
    "no-end-game",
    "no-cancel",
    "exits-when-peer-leaves",
    "fixed-shares",
    "trusts-any-hash",
    "compact-only",
    "ignores-failure",
    "sticky-pieces",
    "http-only",
];

/// Every case of the `bt-client` suite fails a buggy sample client or a fault of the reference
/// client. Four faults at a time: the choking cases judge rates over seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bt_client_cases_are_each_proven() {
    let refused = client_refusal("bt-client", &["t.torrent", "out"]).await;
    each_case_proven_at_most("bt-client", &refused, BT_CLIENT_FAULTS, common::BT_CLIENT_BUGGY_SAMPLES, &[], 4).await;
}

/// Checks that `faults` is the list the reference's refusal (`refused`) names, that every case of
/// `suite` is failed by a sample of `samples` or tagged `bug-<fault>`, and runs every fault at once:
/// its cases pass the reference and fail it with the fault on.
async fn each_case_proven(
    suite_name: &'static str,
    refused: &str,
    faults: &'static [&'static str],
    samples: &[(&str, &str)],
    untagged: &[&str],
) {
    each_case_proven_at_most(suite_name, refused, faults, samples, untagged, usize::MAX).await;
}

/// [`each_case_proven`] with at most `at_once` faults running together: for suites whose cases
/// judge timing (a swarm's rates), which a machine running dozens of cases at once would skew.
async fn each_case_proven_at_most(
    suite_name: &'static str,
    refused: &str,
    faults: &'static [&'static str],
    samples: &[(&str, &str)],
    untagged: &[&str],
    at_once: usize,
) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("suites/{suite_name}.yaml"));
    let suite = wirecheck::suite::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let known = refused.rsplit("the faults are ").next().unwrap_or_default();
    assert_eq!(known.split(", ").collect::<Vec<_>>(), faults, "{refused}");

    let by_sample: Vec<&str> = samples.iter().map(|(_, case)| *case).collect();
    let mut unproven = Vec::new();
    for case in &suite.cases {
        let tagged: Vec<&str> = case.tags.iter().filter_map(|t| t.strip_prefix("bug-")).collect();
        if tagged.is_empty() && !by_sample.contains(&case.id.as_str()) {
            unproven.push(case.id.as_str());
        }
        let unknown: Vec<&&str> = tagged.iter().filter(|f| !faults.contains(f)).collect();
        assert!(
            unknown.is_empty(),
            "{}: bug-* tags without a fault in the reference: {unknown:?}",
            case.id
        );
    }
    assert!(
        unproven.is_empty(),
        "cases neither failed by a sample nor tagged bug-<fault>: {unproven:?}"
    );
    for (sample, case) in samples {
        assert!(
            suite.cases.iter().any(|c| c.id == *case),
            "{sample}'s case {case} is not in the suite"
        );
        let file = common::root().join(format!("fixtures/students/{sample}.py"));
        assert!(file.is_file(), "no sample {}", file.display());
    }

    // Each fault in its own reference, all at once (or `at_once` at a time): many are caught by a
    // timeout.
    let started = Instant::now();
    let budget = match at_once {
        usize::MAX => FTP_BUDGET,
        n => FTP_BUDGET * (faults.len().div_ceil(n) as u32).max(1) / 2,
    };
    let mut runs = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(at_once.min(tokio::sync::Semaphore::MAX_PERMITS)));
    for fault in faults.iter().filter(|f| !untagged.contains(f)) {
        let slots = slots.clone();
        runs.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("the semaphore is never closed");
            let (tag, option) = (format!("bug-{fault}"), format!("fault: {fault}"));
            let (good, faulty) = tokio::join!(run_tagged(suite_name, &tag, ""), run_tagged(suite_name, &tag, &option));
            (fault, good, faulty)
        });
    }
    let mut problems = Vec::new();
    let all = async {
        while let Some(run) = runs.join_next().await {
            let (fault, good, faulty) = run.unwrap();
            if good.is_empty() {
                problems.push(format!("{fault}: no case is tagged bug-{fault}"));
            }
            for (case, verdict) in good.iter().filter(|(_, v)| *v != Verdict::Pass) {
                problems.push(format!("{fault}: {case} does not pass the reference ({verdict:?})"));
            }
            for (case, verdict) in faulty.iter().filter(|(_, v)| *v != Verdict::Fail) {
                problems.push(format!("{fault}: {case} does not catch the fault ({verdict:?})"));
            }
        }
    };
    if tokio::time::timeout(budget, all).await.is_err() {
        problems.push(format!("the faults were not all proven within {budget:?}"));
    }
    eprintln!("{suite_name}: {} faults ran in {:.1?}", faults.len(), started.elapsed());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
