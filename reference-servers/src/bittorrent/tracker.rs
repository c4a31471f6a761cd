//! `bt-tracker`: the tracker of BEP 3, "a host that keeps track of the peers in a torrent".
//!
//! One port, two transports: the HTTP tracker (`GET /announce`, `GET /scrape`; BEP 3, BEP 23,
//! BEP 48) on TCP (`tracker_http`) and the UDP tracker of BEP 15 (`tracker_udp`) on the UDP
//! socket of the same number. Both share the swarms kept here.
//!
//! Options: `torrents` (a folder: it knows exactly the torrents of its `*.torrent` files; by
//! default `fixtures/bittorrent`), `interval` (seconds, default 1800), `idle` (HTTP connections
//! idle between requests are closed, default 10s), `fault`, and `guard`'s `max_connections` and
//! `line_timeout`.
//!
//! What an announce does:
//! - an unknown info-hash gets `failure reason` "unknown torrent" (HTTP status 200, BEP 3);
//!   missing or malformed parameters too, naming the parameter;
//! - the peer is kept under its peer id with the source address (or the `ip` parameter, when it
//!   is a literal IP address) and its port; `left=0` makes it a seeder (`complete`), anything else
//!   (or no `left`) a leecher (`incomplete`);
//! - `event=stopped` removes it; `event=completed` counts a download (scrape's `downloaded`);
//! - the answer has `interval`, `complete`, `incomplete` (the requester counted) and `peers`: the
//!   torrent's other peers in the order they joined, at most `numwant` (default 50, at most 200);
//!   `compact=1` as BEP 23's 6-byte strings (IPv6 peers in `peers6`, BEP 7), otherwise a list of
//!   dictionaries with `ip`, `peer id` (unless `no_peer_id=1`) and `port`.
//!
//! Choices where the BEPs leave room: an unknown `event` (BEP 21's `paused`, say) is a regular
//! announce; a stopped peer gets an ordinary answer; peers silent for two intervals are
//! forgotten; a torrent keeps at most `MAX_PEERS` peers, the longest silent one making room.
//!
//! The `fault` option switches on deliberate bugs (`FAULTS`), so the harness can prove that its
//! cases catch them; none is ever on in a real run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::metainfo;
use super::swarm::{Faults, Tracker, FAULTS};
use super::tracker_http;
use super::tracker_udp;
use crate::guard::{self, Limits};
use crate::{parse_count, parse_duration, Error, OptionSet, Options, RunningServer, Transport};

/// The name suites and the CLI use for this server.
pub(crate) const NAME: &str = "bt-tracker";
const OPTIONS: &[&str] = &["torrents", "interval", "idle", "fault", guard::OPTIONS[0], guard::OPTIONS[1]];

/// The default torrents folder, relative to the current directory.
const DEFAULT_TORRENTS: &str = "fixtures/bittorrent";
/// The repository's torrents, for the default when run from elsewhere (e.g. `cargo test`).
const CHECKOUT_TORRENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/bittorrent");

/// Checks the options, reads the torrents, binds TCP and UDP on one port, and starts serving.
pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let interval = opts.get("interval", "1800", |v| parse_count(v, 1, 86_400))?;
    let idle = opts.get("idle", "10s", parse_duration)?;
    let faults = opts.get("fault", "", |v| Faults::parse(v, FAULTS))?;
    let limits = Limits::from_options(&opts)?;
    let torrents = match opts.given("torrents") {
        Some(dir) => opts.parse("torrents", dir, |d| torrent_files(Path::new(d)))?,
        None => torrent_files(Path::new(DEFAULT_TORRENTS))
            .or_else(|_| torrent_files(Path::new(CHECKOUT_TORRENTS)))
            .map_err(|why| Error::BadOption {
                server: NAME.to_owned(),
                key: "torrents".to_owned(),
                value: DEFAULT_TORRENTS.to_owned(),
                why,
            })?,
    };
    let mut hashes = Vec::new();
    for file in torrents {
        let value = file.display().to_string();
        hashes.push(opts.parse("torrents", &value, |_| metainfo::load(&file))?.info_hash);
    }
    // At most 86 400, so the cast cannot truncate.
    let tracker = Arc::new(Tracker::new(&hashes, interval as u32, faults));
    // The same port for both, as BEP 15 trackers usually do (and the DNS servers here).
    let (udp, tcp) = crate::dns::bind_udp_and_tcp(bind).await?;
    let local_addr = tcp.local_addr()?;
    let server = async move {
        let http = tracker.clone();
        let goodbye = tracker_http::goodbye();
        tokio::join!(
            tracker_udp::serve(udp, tracker),
            guard::serve(tcp, limits, goodbye, move |stream, peer| {
                tracker_http::serve_connection(stream, peer, http.clone(), idle)
            })
        );
    };
    Ok(RunningServer::spawn(local_addr, Transport::Tcp, server))
}

/// The `*.torrent` files in `dir`, sorted by name.
fn torrent_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|err| format!("cannot read the folder: {err}"))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "torrent"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err("no *.torrent files in it".to_owned());
    }
    Ok(files)
}
