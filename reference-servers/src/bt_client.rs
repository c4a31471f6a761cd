//! `bt-client`: a BitTorrent client (BEP 3) as K&R 2.5 draws it, done right; the oracle for the
//! `bt-client` suite. Its command line:
//!
//! ```text
//! TORRENT OUTDIR [--rechoke SECONDS] [--optimistic SECONDS]
//! ```
//!
//! It reads TORRENT, listens for peers on 127.0.0.1 (any free port), and announces to the
//! torrent's tracker, HTTP (`event=started`, `compact=1`) or UDP (BEP 15), again every
//! `interval` the tracker gives (new peers are learnt only that way). It connects to every peer it is given (up to 30
//! connections at once, either way), says `interested` to peers with pieces it lacks and `not
//! interested` once they have nothing more it needs, and asks peers that unchoked it for 16 KiB
//! blocks, at most 10 outstanding each, the pieces RAREST FIRST (availability counted from
//! bitfields and haves; ties at random), a begun piece finished first. Each complete piece is
//! checked against its SHA-1: a good one is announced to every peer with `have`, a bad one thrown
//! away and fetched again from another peer that has it, if there is one. Once every missing
//! block has been asked for (the end game) blocks asked of one peer are asked of others too, and
//! the duplicates are cancelled when the block arrives. Choking is tit-for-tat: every `--rechoke`
//! seconds (10) the 4 interested peers that sent it the most since the last round are unchoked,
//! plus one optimistic unchoke, a random choked interested peer rotated every `--optimistic`
//! seconds (30); every other peer is choked. Unchoked peers' requests are answered from verified
//! pieces. When all pieces are verified it writes OUTDIR/<name> (a folder of files for a
//! multi-file torrent), announces `completed` (left=0) then `stopped`, closes its connections and
//! exits 0. A tracker's `failure reason` ends it with exit 1; so does a minute (`stall`) without a
//! verified piece. Lines printed: `saved NAME (N bytes, P pieces)`, a piece that failed its hash,
//! a peer dropped for breaking the protocol, a tracker that did not answer, and `error: ...`.
//!
//! The harness's server address is not used: the tracker is the torrent's `announce` URL.
//!
//! Options: `stall` (give up after this long without a verified piece, 60s) and `fault`:
//! deliberate bugs (comma-separated, none by default) that the suite's proofs switch on, each the
//! small change to this code that a client with that bug would have (see `FAULTS`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::{parse_duration, Error, OptionSet, Options};

mod metainfo;
mod swarm;
mod tracker;
mod udp_tracker;
mod wire;

/// The name suites and the CLI use for this client.
pub(crate) const NAME: &str = "bt-client";
const OPTIONS: &[&str] = &["stall", "fault"];

/// A torrent file larger than this is refused before it is parsed.
const MAX_TORRENT: u64 = 4 << 20;
/// K&R 2.5: every 10 seconds the top 4 uploaders are unchoked ...
const DEFAULT_RECHOKE: f64 = 10.0;
/// ... and every 30 seconds one more peer, optimistically.
const DEFAULT_OPTIMISTIC: f64 = 30.0;
/// Longest period `--rechoke` and `--optimistic` take.
const MAX_PERIOD: f64 = 3600.0;

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `no-verify`: pieces are not checked against their SHA-1, so a corrupt one is kept.
    NoVerify,
    /// `sequential`: pieces are asked for in order 0, 1, 2, ... instead of rarest first.
    Sequential,
    /// `never-unchokes`: no peer is ever unchoked, so nobody downloads from us.
    NeverUnchokes,
    /// `no-stopped`: the tracker is never told `stopped`.
    NoStopped,
    /// `floods-requests`: no limit on outstanding requests: every block a peer has is asked of it at once.
    FloodsRequests,
    /// `ignores-interval`: no announce after the first answered one, so later peers stay unknown.
    IgnoresInterval,
    /// `arrival-order`: the file is written with its pieces in the order they were verified.
    ArrivalOrder,
    /// `no-started`: the first announce has no `event=started`.
    NoStarted,
    /// `hashes-whole-file`: the info-hash is the SHA-1 of the whole torrent file, not of its info dictionary.
    HashesWholeFile,
    /// `never-interested`: `interested` is never sent (so a peer that waits for it never unchokes us).
    NeverInterested,
    /// `big-requests`: requests ask for 32 KiB, past both BEP 3's 16 KiB and the piece's end.
    BigRequests,
    /// `no-have`: a verified piece is not announced to the peers.
    NoHave,
    /// `unchokes-all`: every interested peer is unchoked, whatever its rate.
    UnchokesAll,
    /// `no-end-game`: a block is only ever asked of one peer, until that peer goes.
    NoEndGame,
    /// `no-cancel`: in the end game, the duplicates of a block that arrived are not cancelled.
    NoCancel,
    /// `exits-when-peer-leaves`: a peer closing its connection ends the download with an error.
    ExitsWhenPeerLeaves,
    /// `fixed-shares`: each piece is asked only of one of the peers that have it, picked by its
    /// index, so a peer that never unchokes keeps its share from us.
    FixedShares,
    /// `trusts-any-hash`: a peer's handshake is taken whatever info-hash it names.
    TrustsAnyHash,
    /// `compact-only`: a tracker's list of peer dictionaries (BEP 3) is read as no peers.
    CompactOnly,
    /// `ignores-failure`: a tracker's `failure reason` is read as an answer with no peers.
    IgnoresFailure,
    /// `sticky-pieces`: a piece that failed its hash is asked again only of the peer that sent
    /// it, which is never dropped.
    StickyPieces,
    /// `http-only`: a udp:// tracker (BEP 15) is not announced to.
    HttpOnly,
}

/// Each fault's name, as the `fault` option takes it.
const FAULTS: &[(&str, Fault)] = &[
    ("no-verify", Fault::NoVerify),
    ("sequential", Fault::Sequential),
    ("never-unchokes", Fault::NeverUnchokes),
    ("no-stopped", Fault::NoStopped),
    ("floods-requests", Fault::FloodsRequests),
    ("ignores-interval", Fault::IgnoresInterval),
    ("arrival-order", Fault::ArrivalOrder),
    ("no-started", Fault::NoStarted),
    ("hashes-whole-file", Fault::HashesWholeFile),
    ("never-interested", Fault::NeverInterested),
    ("big-requests", Fault::BigRequests),
    ("no-have", Fault::NoHave),
    ("unchokes-all", Fault::UnchokesAll),
    ("no-end-game", Fault::NoEndGame),
    ("no-cancel", Fault::NoCancel),
    ("exits-when-peer-leaves", Fault::ExitsWhenPeerLeaves),
    ("fixed-shares", Fault::FixedShares),
    ("trusts-any-hash", Fault::TrustsAnyHash),
    ("compact-only", Fault::CompactOnly),
    ("ignores-failure", Fault::IgnoresFailure),
    ("sticky-pieces", Fault::StickyPieces),
    ("http-only", Fault::HttpOnly),
];

/// The faults switched on.
type Faults = crate::faults::Set<Fault>;

impl From<Fault> for u32 {
    fn from(f: Fault) -> u32 {
        f as u32
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
struct Args {
    torrent: PathBuf,
    out_dir: PathBuf,
    rechoke: Duration,
    optimistic: Duration,
}

/// `TORRENT OUTDIR [--rechoke SECONDS] [--optimistic SECONDS]` (also `--rechoke=SECONDS`).
fn parse_args(args: &[String]) -> Result<Args, String> {
    const USAGE: &str = "expected TORRENT OUTDIR [--rechoke SECONDS] [--optimistic SECONDS]";
    let mut positional = Vec::new();
    let (mut rechoke, mut optimistic) = (DEFAULT_RECHOKE, DEFAULT_OPTIMISTIC);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let slot = match flag {
            "--rechoke" => &mut rechoke,
            "--optimistic" => &mut optimistic,
            _ if flag.starts_with("--") => return Err(format!("unknown option {flag}; {USAGE}")),
            _ => {
                positional.push(arg);
                continue;
            }
        };
        let value = inline
            .or_else(|| rest.next().cloned())
            .ok_or_else(|| format!("{flag} needs SECONDS; {USAGE}"))?;
        *slot = match value.parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 && s <= MAX_PERIOD => s,
            _ => return Err(format!("{flag} {value:?}: expected seconds above 0, at most {MAX_PERIOD}")),
        };
    }
    let [torrent, out_dir] = positional[..] else {
        return Err(USAGE.to_owned());
    };
    if torrent.is_empty() || out_dir.is_empty() {
        return Err(USAGE.to_owned());
    }
    Ok(Args {
        torrent: PathBuf::from(torrent),
        out_dir: PathBuf::from(out_dir),
        rechoke: Duration::from_secs_f64(rechoke),
        optimistic: Duration::from_secs_f64(optimistic),
    })
}

/// Runs the client; 0 when the download is complete and written.
pub(crate) async fn run(_server: SocketAddr, opts: &Options, args: &[String], out: UnboundedSender<String>) -> Result<i32, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let stall = opts.get("stall", "60s", parse_duration)?;
    let faults = opts.get("fault", "", |text| Faults::parse(text, FAULTS))?;
    let args = parse_args(args).map_err(|why| Error::BadArgs {
        client: NAME.to_owned(),
        why,
    })?;
    let torrent = match read_torrent(&args.torrent, faults.has(Fault::HashesWholeFile)).await {
        Ok(torrent) => torrent,
        Err(why) => {
            let _ = out.send(format!("error: {why}"));
            return Ok(1);
        }
    };
    let config = swarm::Config {
        torrent,
        out_dir: args.out_dir,
        rechoke: args.rechoke,
        optimistic: args.optimistic,
        stall,
        faults,
    };
    Ok(swarm::download(config, out).await)
}

/// Reads and parses the torrent file (`whole_file`: the `hashes-whole-file` fault).
async fn read_torrent(path: &std::path::Path, whole_file: bool) -> Result<metainfo::Torrent, String> {
    let shown = path.display();
    let meta = tokio::fs::metadata(path).await.map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() || meta.len() > MAX_TORRENT {
        return Err(format!("{shown} is not a file of at most {MAX_TORRENT} bytes"));
    }
    let bytes = tokio::fs::read(path).await.map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut torrent = metainfo::parse(&bytes).map_err(|why| format!("{shown}: {why}"))?;
    if whole_file {
        use sha1::Digest;
        torrent.info_hash = sha1::Sha1::digest(&bytes).into();
    }
    Ok(torrent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn parses_command_lines() {
        let parsed = parse_args(&args(&["t.torrent", "out"])).expect("args");
        assert_eq!(parsed.rechoke, Duration::from_secs(10));
        assert_eq!(parsed.optimistic, Duration::from_secs(30));
        let parsed = parse_args(&args(&["--rechoke", "0.5", "t.torrent", "out", "--optimistic=1.5"])).expect("args");
        assert_eq!((parsed.torrent.to_str(), parsed.out_dir.to_str()), (Some("t.torrent"), Some("out")));
        assert_eq!(
            (parsed.rechoke, parsed.optimistic),
            (Duration::from_millis(500), Duration::from_millis(1500))
        );
    }

    #[test]
    fn rejects_bad_command_lines() {
        for bad in [
            &["t.torrent"][..],
            &["t.torrent", "out", "extra"],
            &["t.torrent", "out", "--rechoke"],
            &["t.torrent", "out", "--rechoke", "0"],
            &["t.torrent", "out", "--rechoke", "-1"],
            &["t.torrent", "out", "--optimistic", "NaN"],
            &["t.torrent", "out", "--optimistic", "1e9"],
            &["t.torrent", "out", "--verbose"],
            &["", "out"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_faults() {
        let faults = Faults::parse("sequential, no-stopped", FAULTS).expect("faults");
        assert!(faults.has(Fault::Sequential) && faults.has(Fault::NoStopped));
        assert!(!faults.has(Fault::NoVerify));
        assert!(Faults::parse("sequentail", FAULTS).is_err());
    }
}
