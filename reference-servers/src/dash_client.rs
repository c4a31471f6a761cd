//! `dash-client`: the DASH lab's player (docs/dash.md "The player"; K&R §2.6.2), the oracle for
//! the suites where the harness is the origin. Its command line:
//!
//! ```text
//! MPD_URL --buffer SECONDS [--dns HOST:PORT]
//! ```
//!
//! It fetches the MPD (a static one; DASH §5.3), plays the first video adaptation set of each
//! period, and exits 0 once the last media segment has been downloaded. BaseURLs are resolved
//! level by level (§5.6, RFC 3986 §5.2); several at one level are alternatives, and a request that
//! fails on one (refused or reset, 2 s without an answer, 404 or 5xx) goes to the next, which the
//! player then keeps (three rounds of them, 0.5 s apart, before it gives up with exit 1).
//! Segments are found by SegmentTemplate (`$Number$`, `$Time$` with a
//! SegmentTimeline, widths), SegmentList (URLs and/or byte ranges) or SegmentBase (the `sidx` at
//! `@indexRange`). A representation's initialization segment comes before its first media
//! segment; media segments come in order, each position once. Playback starts with the first
//! media segment and drains the buffer in real time; no media request goes out while `--buffer`
//! seconds are buffered. The representation of each request is chosen by a throughput rule and
//! BOLA (`dash_client/abr.rs`); a media download that would take more than 1.8 times what it plays
//! is abandoned for a lower representation, as dash.js does, and its position asked again. HTTP/1.1
//! is its own (`dash_client/http.rs`): persistent connections, ranges, redirects (a 302 is not
//! remembered).
//!
//! With `--dns` (docs/dash.md "CDNs"; K&R §2.6.3), every host name in a URL is resolved by that
//! DNS server over UDP (`dash_client/dns.rs`): a CNAME chain is followed to its A records, which
//! are tried in order (refused, reset or 2 s of silence: the next one), and only when all fail
//! does the request go to the next BaseURL; `Host:` always names the URL's own authority. Without
//! it, the system's resolver.
//!
//! Lines printed: the MPD's representations, each initialization segment, each media segment
//! (position, representation, bytes, seconds, throughput, buffer level), each failed or abandoned
//! request, `done: ...`, and `error: ...` before an exit 1 (the MPD unreadable, every BaseURL
//! failed).
//!
//! The harness's server address is not used: the MPD URL says where to go.
//!
//! Option `fault`: deliberate bugs (comma-separated, none by default) that the suite's proofs
//! switch on, each the small change to this code that a player with that bug would have (see
//! `FAULTS`).

use std::net::SocketAddr;

use tokio::sync::mpsc::UnboundedSender;

use crate::{Error, OptionSet, Options};

mod abr;
mod dns;
mod http;
mod mpd;
mod player;
mod sidx;
mod url;

/// The name suites and the CLI use for this client.
pub(crate) const NAME: &str = "dash-client";
const OPTIONS: &[&str] = &["fault"];

/// The largest `--buffer`.
const MAX_BUFFER: f64 = 600.0;

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `never-switches`: every media segment at the lowest representation.
    NeverSwitches,
    /// `always-top`: every media segment at the highest representation.
    AlwaysTop,
    /// `out-of-order`: the 3rd and 4th media segments are asked for the other way round.
    OutOfOrder,
    /// `ignores-start-number`: `$Number$` counts from 1 whatever `@startNumber` says.
    IgnoresStartNumber,
    /// `ignores-width`: `$Number%05d$` (any width) is written without its zeros.
    IgnoresWidth,
    /// `time-as-number`: `$Time$` is replaced by the segment's number.
    TimeAsNumber,
    /// `no-init`: initialization segments are never fetched.
    NoInit,
    /// `init-once`: only the first representation's initialization segment is fetched.
    InitOnce,
    /// `skips-segment`: the 5th media segment is never asked for.
    SkipsSegment,
    /// `past-end`: one more segment is asked for after the last (its 404 ignored).
    PastEnd,
    /// `no-failover`: a failed request on the first BaseURL ends the player (exit 1).
    NoFailover,
    /// `ignores-relative-base`: BaseURLs below the MPD element are not read.
    IgnoresRelativeBase,
    /// `no-ranges`: byte ranges are not asked for; each request fetches the whole file.
    NoRanges,
    /// `aggressive`: the highest representation below 4 x the last throughput.
    Aggressive,
    /// `slow-down`: after a fall in throughput, 6 more segments at the old representation.
    SlowDown,
    /// `no-host`: requests without a Host field.
    NoHost,
    /// `follows-302-forever`: after a redirect, later segments are asked of its target.
    Follows302Forever,
    /// `probes-first`: the MPD's folder is asked for before the MPD (a player guessing a listing).
    ProbesFirst,
    /// `ignores-list`: a SegmentList's SegmentURL@media is not read: each segment is asked of the BaseURL.
    IgnoresList,
    /// `ignores-mpd-base`: the MPD element's BaseURLs are not read: segments resolve against the MPD's URL.
    IgnoresMpdBase,
    /// `ignores-dns`: `--dns` is ignored; names go to the system's resolver (which does not know
    /// the lab's `.test` names).
    IgnoresDns,
    /// `no-cname`: an answer whose first record is a CNAME counts as no address (the chain is not
    /// followed, its target not asked).
    NoCname,
    /// `first-address-only`: only a name's first A record is ever tried.
    FirstAddressOnly,
    /// `host-is-address`: `Host:` names the address and port connected to, not the URL's name.
    HostIsAddress,
}

/// Each fault's name, as the `fault` option takes it.
const FAULTS: &[(&str, Fault)] = &[
    ("never-switches", Fault::NeverSwitches),
    ("always-top", Fault::AlwaysTop),
    ("out-of-order", Fault::OutOfOrder),
    ("ignores-start-number", Fault::IgnoresStartNumber),
    ("ignores-width", Fault::IgnoresWidth),
    ("time-as-number", Fault::TimeAsNumber),
    ("no-init", Fault::NoInit),
    ("init-once", Fault::InitOnce),
    ("skips-segment", Fault::SkipsSegment),
    ("past-end", Fault::PastEnd),
    ("no-failover", Fault::NoFailover),
    ("ignores-relative-base", Fault::IgnoresRelativeBase),
    ("no-ranges", Fault::NoRanges),
    ("aggressive", Fault::Aggressive),
    ("slow-down", Fault::SlowDown),
    ("no-host", Fault::NoHost),
    ("follows-302-forever", Fault::Follows302Forever),
    ("probes-first", Fault::ProbesFirst),
    ("ignores-list", Fault::IgnoresList),
    ("ignores-mpd-base", Fault::IgnoresMpdBase),
    ("ignores-dns", Fault::IgnoresDns),
    ("no-cname", Fault::NoCname),
    ("first-address-only", Fault::FirstAddressOnly),
    ("host-is-address", Fault::HostIsAddress),
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
    mpd: url::Url,
    buffer: f64,
    dns: Option<SocketAddr>,
}

/// `MPD_URL --buffer SECONDS [--dns HOST:PORT]` (also `--buffer=SECONDS`, `--dns=HOST:PORT`, in
/// any order).
fn parse_args(args: &[String]) -> Result<Args, String> {
    const USAGE: &str = "expected MPD_URL --buffer SECONDS [--dns HOST:PORT]";
    let mut positional = Vec::new();
    let mut buffer = None;
    let mut dns = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        match flag {
            "--buffer" => {
                let value = inline
                    .or_else(|| rest.next().cloned())
                    .ok_or_else(|| format!("--buffer needs SECONDS; {USAGE}"))?;
                buffer = match value.parse::<f64>() {
                    Ok(s) if s.is_finite() && s > 0.0 && s <= MAX_BUFFER => Some(s),
                    _ => return Err(format!("--buffer {value:?}: expected seconds above 0, at most {MAX_BUFFER}")),
                };
            }
            "--dns" => {
                let value = inline
                    .or_else(|| rest.next().cloned())
                    .ok_or_else(|| format!("--dns needs HOST:PORT; {USAGE}"))?;
                dns = Some(dns_server(&value)?);
            }
            _ if flag.starts_with("--") => return Err(format!("unknown option {flag}; {USAGE}")),
            _ => positional.push(arg),
        }
    }
    let [mpd] = positional[..] else {
        return Err(USAGE.to_owned());
    };
    let buffer = buffer.ok_or_else(|| format!("--buffer is missing; {USAGE}"))?;
    let mpd = url::Url::parse(mpd).map_err(|e| format!("MPD_URL: {e}"))?;
    mpd.target().map_err(|e| format!("MPD_URL: {e}"))?;
    Ok(Args { mpd, buffer, dns })
}

/// `--dns`'s HOST:PORT: an address and port, or a name the system resolves (`[v6]:port` too).
fn dns_server(value: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let bad = || format!("--dns {value:?}: expected HOST:PORT");
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
        _ => return Err(bad()),
    }
    value.to_socket_addrs().ok().and_then(|mut found| found.next()).ok_or_else(bad)
}

/// Runs the player; 0 once the last media segment is downloaded, 1 when it cannot go on.
pub(crate) async fn run(_server: SocketAddr, opts: &Options, args: &[String], out: UnboundedSender<String>) -> Result<i32, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let faults = opts.get("fault", "", |text| Faults::parse(text, FAULTS))?;
    let args = parse_args(args).map_err(|why| Error::BadArgs {
        client: NAME.to_owned(),
        why,
    })?;
    let config = player::Config {
        mpd: args.mpd,
        buffer: args.buffer,
        dns: args.dns,
        faults,
    };
    Ok(player::play(config, out).await)
}

#[cfg(test)]
mod tests;
