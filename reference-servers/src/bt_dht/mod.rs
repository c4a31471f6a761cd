//! `bt-dht`: a node of the BitTorrent Mainline DHT (BEP 5), Kademlia over UDP with bencoded
//! KRPC messages, one socket for everything:
//!
//! ```text
//!  ping           a: id                          → r: id
//!  find_node      a: id, target                  → r: id, nodes (the K=8 closest good nodes)
//!  get_peers      a: id, info_hash               → r: id, token, values | nodes
//!  announce_peer  a: id, info_hash, port, token  → r: id          (token from get_peers)
//!  errors         e: [203, "Protocol Error: ..." | "bad token"] or [204, "Method Unknown"]
//! ```
//!
//! - Every answer copies the query's `t` byte for byte; dictionaries are written with sorted keys.
//! - The routing table (`table`) holds good nodes only: a node enters when it has answered one
//!   of our queries, never for querying us or for being named in someone's `nodes`.
//! - With `bootstrap`, the node looks itself up: find_node(own id) to the bootstrap node (asked
//!   again every 2 s while it has never answered, 5 times at most), then an iterative lookup
//!   asking at most 3 at a time the closest candidates not yet asked, until the 8 closest have
//!   all answered or failed (1 s each). A lookup that leaves the table empty is tried again 5 s
//!   later; nothing else is periodic.
//! - Tokens are the first 8 bytes of SHA-1(secret || querier's IP); the secret changes every
//!   5 minutes and the previous one is still accepted. announce_peer with any other token is
//!   refused (203 "bad token"); with `implied_port` non-zero the UDP source port is stored.
//! - Malformed queries get 203 "Protocol Error: <what is wrong>", unknown methods 204; a datagram
//!   that is not a bencoded dictionary with a string `t`, is over 1500 bytes, or nests deeper
//!   than `bencode::MAX_DEPTH`, is ignored. Unknown keys are ignored everywhere.
//!
//! Options: `bootstrap` (HOST:PORT of an IPv4 node; without it the node only answers), `id`
//! (40 hex digits; default random) and `fault` (`FAULTS`, deliberate bugs that prove a suite's
//! cases can fail).
//!
//! Nothing here is shared with the harness's KRPC codec: a misreading of BEP 5 cannot hide on
//! both sides.

mod bencode;
mod node;
mod peers;
mod table;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::{Error, OptionSet, Options, RunningServer, Transport};
use node::Node;
use table::Id;

/// The name suites and the CLI use for this server.
pub(crate) const NAME: &str = "bt-dht";
const OPTIONS: &[&str] = &["bootstrap", "id", "fault"];
/// The receive buffer: any UDP datagram fits, so a long one is seen whole and then ignored
/// rather than cut to something that might read as a message.
const RECEIVE_BUFFER: usize = 64 * 1024;
/// How long resolving the bootstrap node's host name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `no-token-check`: announce_peer accepts any token.
    NoTokenCheck,
    /// `token-any-ip`: the token does not depend on the querier's address (one for everyone).
    TokenAnyIp,
    /// `numeric-distance`: "closest" is the absolute difference of the ids as integers, not XOR.
    NumericDistance,
    /// `wrong-transaction`: responses and errors carry a transaction id of the node's own.
    WrongTransaction,
    /// `no-error-203`: malformed queries are silently dropped instead of answered 203.
    NoError203,
    /// `unknown-as-ping`: an unknown method is answered as a ping instead of with error 204.
    UnknownAsPing,
    /// `no-token`: get_peers responses carry no token.
    NoToken,
    /// `no-bootstrap`: the bootstrap node is never queried.
    NoBootstrap,
    /// `adds-unverified`: queriers and nodes named in responses enter the table before answering.
    AddsUnverified,
    /// `ignores-implied-port`: implied_port is ignored and the `port` argument stored.
    IgnoresImpliedPort,
    /// `no-values`: get_peers never returns values (always nodes), though announces are stored.
    NoValues,
    /// `too-many-nodes`: find_node returns every good node it knows, not at most 8.
    TooManyNodes,
    /// `new-id`: every response carries a new random node id.
    NewId,
    /// `rejects-unknown-keys`: a query with a key BEP 5 does not name for it (a client version
    /// `v`, an argument of a later BEP) is refused with 203.
    RejectsUnknownKeys,
    /// `stops-on-garbage`: after a datagram that is not a bencoded dictionary, nothing more is
    /// answered (a node whose receive loop died on a decode error).
    StopsOnGarbage,
}

/// Each fault's name, as the `fault` option takes it.
pub(crate) const FAULTS: &[(&str, Fault)] = &[
    ("no-token-check", Fault::NoTokenCheck),
    ("token-any-ip", Fault::TokenAnyIp),
    ("numeric-distance", Fault::NumericDistance),
    ("wrong-transaction", Fault::WrongTransaction),
    ("no-error-203", Fault::NoError203),
    ("unknown-as-ping", Fault::UnknownAsPing),
    ("no-token", Fault::NoToken),
    ("no-bootstrap", Fault::NoBootstrap),
    ("adds-unverified", Fault::AddsUnverified),
    ("ignores-implied-port", Fault::IgnoresImpliedPort),
    ("no-values", Fault::NoValues),
    ("too-many-nodes", Fault::TooManyNodes),
    ("new-id", Fault::NewId),
    ("rejects-unknown-keys", Fault::RejectsUnknownKeys),
    ("stops-on-garbage", Fault::StopsOnGarbage),
];

/// The faults switched on.
pub(crate) type Faults = crate::faults::Set<Fault>;

impl From<Fault> for u32 {
    fn from(f: Fault) -> u32 {
        f as u32
    }
}

/// Checks the options, binds the UDP socket, and starts the node (and its bootstrap).
pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let faults = opts.get("fault", "", |text| Faults::parse(text, FAULTS))?;
    let id = match opts.given("id") {
        Some(text) => opts.parse("id", text, parse_id)?,
        None => std::array::from_fn(|_| fastrand::u8(..)),
    };
    let bootstrap = match opts.given("bootstrap") {
        Some(text) => Some(resolve_bootstrap(text).await.map_err(|why| Error::BadOption {
            server: NAME.to_owned(),
            key: "bootstrap".to_owned(),
            value: text.to_owned(),
            why,
        })?),
        None => None,
    };
    let socket = UdpSocket::bind(bind).await?;
    let local_addr = socket.local_addr()?;
    let node = Node::new(id, faults, bootstrap, Instant::now());
    Ok(RunningServer::spawn(local_addr, Transport::Udp, serve(socket, node)))
}

/// Feeds the node its datagrams and its timer until aborted.
async fn serve(socket: UdpSocket, mut node: Node) {
    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    loop {
        let wake = node.wake_at();
        let timer = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let outgoing = tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                Ok((len, from)) => node.receive(buffer.get(..len).unwrap_or_default(), from, Instant::now()),
                // A receive error (an ICMP "port unreachable" for an earlier query) concerns one peer.
                Err(_) => continue,
            },
            () = timer => node.tick(Instant::now()),
        };
        for (datagram, to) in outgoing {
            let _ = socket.send_to(&datagram, to).await;
        }
    }
}

/// A node id written as 40 hex digits.
fn parse_id(text: &str) -> Result<Id, String> {
    const WHY: &str = "expected a node id of 40 hex digits, such as 0123456789abcdef0123456789abcdef01234567";
    let text = text.trim();
    if text.len() != 40 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(WHY.to_owned());
    }
    let mut id = [0u8; 20];
    for (byte, pair) in id.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| WHY.to_owned())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| WHY.to_owned())?;
    }
    Ok(id)
}

/// The IPv4 address of the bootstrap node `text` (HOST:PORT), its host name resolved.
async fn resolve_bootstrap(text: &str) -> Result<SocketAddrV4, String> {
    const WHY: &str = "expected HOST:PORT of an IPv4 node, such as 127.0.0.1:6881 or router.example.org:6881";
    let text = text.trim();
    let (host, port) = text.rsplit_once(':').ok_or(WHY)?;
    let port: u16 = port.parse().ok().filter(|&port| port != 0).ok_or(WHY)?;
    if host.is_empty() || host.contains(':') || host.starts_with('[') {
        return Err(WHY.to_owned());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(v4) => Ok(SocketAddrV4::new(v4, port)),
            IpAddr::V6(_) => Err(WHY.to_owned()),
        };
    }
    let resolved = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await;
    let addrs = match resolved {
        Ok(Ok(addrs)) => addrs,
        _ => return Err(format!("cannot resolve {host:?}; {WHY}")),
    };
    let mut v4 = addrs.filter_map(|addr| match addr {
        SocketAddr::V4(v4) => Some(v4),
        SocketAddr::V6(_) => None,
    });
    v4.next().ok_or_else(|| format!("{host:?} has no IPv4 address; {WHY}"))
}
