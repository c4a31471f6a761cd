//! `dht-ring`: a node of the course's circular DHT (Kurose & Ross §2.5), exactly as
//! `docs/dht-ring.md` specifies it: JSON over UDP, one socket for everything.
//!
//! ```text
//!  ping                                     → pong
//!  find_successor  key, origin, hops        → found (key, node, hops) to origin, or forwarded
//!  get             key, origin, hops        → value (key, value, hops) to origin, or forwarded
//!  put             key, value, origin, hops → stored (key, hops) to origin, or forwarded
//!  join            key, origin, hops        → welcome (predecessor, successors, items) to origin, or forwarded
//!  notify          successor | predecessor  → ok
//!  successors                               → successors_reply (predecessor, successors)
//!  unreadable (a field missing or ill-typed, a key out of range, an unknown type) → error
//! ```
//!
//! - Routing (rules 1-3): a node owns `(p, n]`; a key in `(n, s1]` is `s1`'s (a find_successor
//!   is answered at once, anything else forwarded to `s1`); anything else goes to the closest
//!   preceding node among `s1`, `s2` and the m shortcuts. Forwarding keeps the object and sets
//!   `from` and `hops + 1`; answers go straight to `origin`.
//! - Every 0.5 s the node pings `s1` and `s2` (a successor is gone after 2 unanswered pings of
//!   0.5 s each) and asks `s1` its `successors`; every 2 s it looks its shortcuts up.
//! - Where the spec leaves a choice, the node: answers a join as a node alone (its successors
//!   itself, no predecessor) with itself as the `predecessor` of the welcome and the items of
//!   `(itself, N]`; refuses with an error a join for its own id; takes a notify's `predecessor`
//!   that is not in `(p, n)` once its own predecessor has failed 2 pings (it asks only then);
//!   ignores, for a while, nodes it has seen leave when a successors_reply names them; hands
//!   items that do not fit a 1400-byte welcome over as `put`s; drops a request forwarded more
//!   than 65,536 times (going round in circles).
//!
//! Options: `bits` (m, 1 to 16; default 4), `id` (required), `bootstrap` (IP:PORT of a ring
//! node to join through; without it, a ring of its own), `ring` (`ID@IP:PORT,...`: start as a
//! node of that complete ring, for the spec's test vectors; its own entry's address is replaced
//! by the bound one) and `fault` (`FAULTS`, deliberate bugs that prove a suite's cases can fail).
//!
//! Nothing here is shared with the harness: a misreading of the spec cannot hide on both sides.

mod circle;
mod node;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::{Error, OptionSet, Options, RunningServer, Transport};
use circle::{parse_addr, Circle, Id};
use node::{Node, Start};

/// The name suites and the CLI use for this server.
pub(crate) const NAME: &str = "dht-ring";
const OPTIONS: &[&str] = &["bits", "id", "bootstrap", "ring", "fault", "args"];
/// The receive buffer: any UDP datagram fits, so a long one is read whole.
const RECEIVE_BUFFER: usize = 64 * 1024;

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `forwards-to-predecessor`: rule 3 forwards to the predecessor, not the closest preceding node.
    ForwardsToPredecessor,
    /// `no-second-successor`: no s2 is kept (replies carry s1 twice; when s1 leaves the node is stuck).
    NoSecondSuccessor,
    /// `off-by-one-owner`: ownership is `[p, n)` and `[n, s1)` instead of `(p, n]` and `(n, s1]`.
    OffByOneOwner,
    /// `ignores-shortcuts`: no shortcuts are looked up, and rule 3 always forwards to s1.
    IgnoresShortcuts,
    /// `no-items-handoff`: a welcome carries no items (the welcoming node keeps them).
    NoItemsHandoff,
    /// `no-notify`: a node that has joined never sends notify to its predecessor.
    NoNotify,
    /// `answers-forwarder`: answers go to the datagram's sender instead of `origin`.
    AnswersForwarder,
    /// `no-hops`: forwarding does not increment `hops`.
    NoHops,
    /// `never-pings`: successors are never pinged (a departure is never noticed).
    NeverPings,
    /// `no-error`: unreadable requests are dropped instead of answered with `error`.
    NoError,
    /// `wrong-tid`: answers carry a tid of the node's own.
    WrongTid,
    /// `no-stabilize`: s1 is never asked its successors (s2 is not updated after a join ahead).
    NoStabilize,
    /// `no-join`: the bootstrap node is never contacted (the node stays a ring of its own).
    NoJoin,
    /// `ignores-welcome-items`: the items a welcome hands over are not stored.
    IgnoresWelcomeItems,
    /// `static-successors`: a node that joins ahead is never taken as s1 (notify and
    /// stabilization both ignore it); only a departure changes the successors.
    StaticSuccessors,
    /// `keeps-predecessor`: welcoming a joining node does not make it the predecessor.
    KeepsPredecessor,
}

/// Each fault's name, as the `fault` option takes it.
pub(crate) const FAULTS: &[(&str, Fault)] = &[
    ("forwards-to-predecessor", Fault::ForwardsToPredecessor),
    ("no-second-successor", Fault::NoSecondSuccessor),
    ("off-by-one-owner", Fault::OffByOneOwner),
    ("ignores-shortcuts", Fault::IgnoresShortcuts),
    ("no-items-handoff", Fault::NoItemsHandoff),
    ("no-notify", Fault::NoNotify),
    ("answers-forwarder", Fault::AnswersForwarder),
    ("no-hops", Fault::NoHops),
    ("never-pings", Fault::NeverPings),
    ("no-error", Fault::NoError),
    ("wrong-tid", Fault::WrongTid),
    ("no-stabilize", Fault::NoStabilize),
    ("no-join", Fault::NoJoin),
    ("ignores-welcome-items", Fault::IgnoresWelcomeItems),
    ("static-successors", Fault::StaticSuccessors),
    ("keeps-predecessor", Fault::KeepsPredecessor),
];

/// The faults switched on.
pub(crate) type Faults = crate::faults::Set<Fault>;

impl From<Fault> for u32 {
    fn from(f: Fault) -> u32 {
        f as u32
    }
}

/// Checks the options, binds the UDP socket, and starts the node (joining through `bootstrap`
/// when it is given).
pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = &with_args(opts)?;
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let faults = opts.get("fault", "", |text| Faults::parse(text, FAULTS))?;
    let circle = Circle::new(opts.get("bits", "4", parse_bits)?);
    let id = match opts.given("id") {
        Some(text) => opts.parse("id", text, |text| parse_id(text, circle))?,
        None => {
            return Err(Error::BadOption {
                server: NAME.to_owned(),
                key: "id".to_owned(),
                value: String::new(),
                why: format!("required: the node's identifier, a whole number from 0 to {}", circle.max()),
            })
        }
    };
    let bootstrap = match opts.given("bootstrap") {
        Some(text) => Some(opts.parse("bootstrap", text, parse_bootstrap)?),
        None => None,
    };
    let ring = match opts.given("ring") {
        Some(text) => Some(opts.parse("ring", text, |text| parse_ring(text, circle, id))?),
        None => None,
    };
    let start = match (bootstrap, ring) {
        (Some(_), Some(_)) => {
            return Err(Error::BadOption {
                server: NAME.to_owned(),
                key: "ring".to_owned(),
                value: opts.given("ring").unwrap_or_default().to_owned(),
                why: "`ring` (a complete ring to start in) and `bootstrap` (a ring to join) exclude each other".to_owned(),
            })
        }
        (Some(_), None) if faults.has(Fault::NoJoin) => Start::Alone,
        (Some(bootstrap), None) => Start::Join(bootstrap),
        (None, Some(ring)) => Start::Ring(ring),
        (None, None) => Start::Alone,
    };
    let socket = UdpSocket::bind(bind).await?;
    let local_addr = socket.local_addr()?;
    let node = Node::new(circle, id, local_addr, faults, start, Instant::now());
    Ok(RunningServer::spawn(local_addr, Transport::Udp, serve(socket, node)))
}

/// Feeds the node its datagrams and its timer until aborted.
async fn serve(socket: UdpSocket, mut node: Node) {
    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    loop {
        let wake = node.wake_at();
        let outgoing = tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                Ok((len, from)) => node.receive(buffer.get(..len).unwrap_or_default(), from, Instant::now()),
                // A receive error (an ICMP "port unreachable" for an earlier datagram) concerns one peer.
                Err(_) => continue,
            },
            () = tokio::time::sleep_until(wake) => node.tick(Instant::now()),
        };
        for (datagram, to) in outgoing {
            let _ = socket.send_to(&datagram, to).await;
        }
    }
}

/// m: 1 to 16.
fn parse_bits(text: &str) -> Result<u32, String> {
    crate::parse_count(text, 1, 16).map(|bits| bits as u32)
}

/// A node id on `circle`.
fn parse_id(text: &str, circle: Circle) -> Result<Id, String> {
    crate::parse_count(text, 0, u64::from(circle.max())).map(|id| id as Id)
}

/// `IP:PORT` of the node to join through.
fn parse_bootstrap(text: &str) -> Result<SocketAddr, String> {
    parse_addr(text.trim()).ok_or_else(|| "expected IP:PORT of a ring node, such as 127.0.0.1:7001".to_owned())
}

/// `ID@IP:PORT,...`: every node of a complete ring, `own` among them; sorted by id.
fn parse_ring(text: &str, circle: Circle, own: Id) -> Result<Vec<(Id, SocketAddr)>, String> {
    let why = format!(
        "expected every node of the ring as ID@IP:PORT separated by commas, ids from 0 to {} and each once, \
         this node's id among them, such as 1@127.0.0.1:7001,3@127.0.0.1:7003",
        circle.max()
    );
    let mut ring = Vec::new();
    for entry in text.split(',').map(str::trim) {
        let (id, addr) = entry.split_once('@').ok_or_else(|| why.clone())?;
        let id = parse_id(id, circle).map_err(|_| why.clone())?;
        let addr = parse_addr(addr.trim()).ok_or_else(|| why.clone())?;
        ring.push((id, addr));
    }
    ring.sort_by_key(|&(id, _)| id);
    let unique = ring.windows(2).all(|pair| pair[0].0 != pair[1].0);
    if !unique || !ring.iter().any(|&(id, _)| id == own) {
        return Err(why);
    }
    Ok(ring)
}

/// The options with `args` (the lab's command line after the port, `M NODE_ID [BOOT_HOST
/// BOOT_PORT]`, as a suite's `start` step gives it) read into `bits`, `id` and `bootstrap`.
fn with_args(opts: &Options) -> Result<Options, Error> {
    let Some(args) = opts.get("args") else {
        return Ok(opts.clone());
    };
    let bad = |why: &str| Error::BadOption {
        server: NAME.to_owned(),
        key: "args".to_owned(),
        value: args.clone(),
        why: why.to_owned(),
    };
    let words: Vec<&str> = args.split_whitespace().collect();
    let mut out = opts.clone();
    out.remove("args");
    let mut set = |key: &str, value: String| match out.insert(key.to_owned(), value) {
        Some(_) => Err(bad("args gives bits, id and bootstrap: leave those options out")),
        None => Ok(()),
    };
    match words[..] {
        [m, id] => {
            set("bits", m.to_owned())?;
            set("id", id.to_owned())?;
        }
        [m, id, host, port] => {
            set("bits", m.to_owned())?;
            set("id", id.to_owned())?;
            set("bootstrap", format!("{host}:{port}"))?;
        }
        _ => return Err(bad("expected M NODE_ID [BOOT_HOST BOOT_PORT], such as \"4 4 127.0.0.1 7001\"")),
    }
    Ok(out)
}
