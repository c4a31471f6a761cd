//! The node itself, as a state machine the socket loop feeds: `receive` for each datagram,
//! `tick` when `wake_at` comes; both return the datagrams to send. Keeping the sockets out makes
//! every decision here plain code, and one task owning all of it needs no locks.

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::time::Instant;

use super::bencode::{decode, Value};
use super::peers::{compact_peer, Store, Tokens};
use super::table::{compact, Contact, Id, Metric, Table, K};
use super::{Fault, Faults};

/// Datagrams longer than this are ignored: KRPC messages fit one Ethernet frame.
pub(super) const MAX_MESSAGE: usize = 1500;
/// How long a query of ours waits for its answer.
pub(super) const QUERY_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the bootstrap node is asked again while it has never answered.
pub(super) const BOOTSTRAP_RETRY: Duration = Duration::from_secs(2);
/// How many times one lookup asks the bootstrap node before it gives up.
pub(super) const BOOTSTRAP_ATTEMPTS: u32 = 5;
/// How long after a lookup that left the table empty the next one starts.
pub(super) const RELOOKUP: Duration = Duration::from_secs(5);
/// Queries a lookup has in flight at once (Kademlia's alpha).
const ALPHA: usize = 3;
/// Candidates a lookup remembers; only the K closest are ever asked, the rest is slack for
/// closer ones turning up.
const MAX_CANDIDATES: usize = 64;
/// Our queries awaiting an answer; a lookup needs ALPHA plus the bootstrap node.
const MAX_OUTSTANDING: usize = 32;

/// The datagrams to send, each with its destination.
pub(super) type Outgoing = Vec<(Vec<u8>, SocketAddr)>;

/// One DHT node: its id, routing table, tokens, peer store and its own queries.
#[derive(Debug)]
pub(super) struct Node {
    id: Id,
    faults: Faults,
    table: Table,
    tokens: Tokens,
    store: Store,
    bootstrap: Option<SocketAddrV4>,
    lookup: Option<Lookup>,
    /// When the next bootstrap lookup starts, if one is due.
    next_lookup: Option<Instant>,
    outstanding: HashMap<Vec<u8>, Outstanding>,
    next_transaction: u16,
    /// The `wrong-transaction` fault's own transaction ids.
    fake_transaction: u32,
    /// The `stops-on-garbage` fault: the node has stopped answering.
    stopped: bool,
}

/// A query of ours awaiting its answer.
#[derive(Debug)]
struct Outstanding {
    to: SocketAddr,
    deadline: Instant,
    asked: Asked,
}

/// Whom a query of ours went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// The bootstrap node, whose id we do not know yet.
    Bootstrap,
    /// A lookup candidate, by the id it was listed with.
    Candidate(Id),
}

/// An iterative find_node lookup of `target` (our own id: the bootstrap).
#[derive(Debug)]
struct Lookup {
    target: Id,
    bootstrap_answered: bool,
    bootstrap_attempts: u32,
    /// When the bootstrap node may be asked again.
    bootstrap_next: Instant,
    /// Closest to `target` (XOR) first.
    candidates: Vec<Candidate>,
}

/// A node a lookup has heard of, and how asking it went.
#[derive(Debug)]
struct Candidate {
    contact: Contact,
    progress: Progress,
}

/// Where a candidate stands: not asked yet, asked, answered, or silent past the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    Fresh,
    Waiting,
    Answered,
    Failed,
}

impl Lookup {
    /// Adds `contact` in its place by distance, unless it is us or already a candidate.
    fn add(&mut self, own: &Id, contact: Contact, progress: Progress) {
        if contact.id == *own || self.candidates.iter().any(|c| c.contact.id == contact.id) {
            return;
        }
        let distance = Metric::Xor.distance(&contact.id, &self.target);
        let at = self
            .candidates
            .partition_point(|c| Metric::Xor.distance(&c.contact.id, &self.target) < distance);
        self.candidates.insert(at, Candidate { contact, progress });
        self.candidates.truncate(MAX_CANDIDATES);
    }

    fn mark(&mut self, id: &Id, progress: Progress) {
        if let Some(candidate) = self.candidates.iter_mut().find(|c| c.contact.id == *id) {
            candidate.progress = progress;
        }
    }

    /// Done when each of the K closest candidates has answered or failed.
    fn is_done(&self) -> bool {
        let window = self.candidates.iter().take(K);
        window
            .into_iter()
            .all(|c| matches!(c.progress, Progress::Answered | Progress::Failed))
    }
}

/// Why a query gets an error instead of a response.
#[derive(Debug)]
enum Refusal {
    /// 203, saying what is wrong with the query.
    Malformed(&'static str),
    /// 203: an announce_peer whose token this node did not give the querier.
    BadToken,
    /// 204.
    UnknownMethod,
}

impl Node {
    /// A node with id `id`; with a `bootstrap` node (and without the `no-bootstrap` fault) its
    /// first lookup is due at once.
    pub(super) fn new(id: Id, faults: Faults, bootstrap: Option<SocketAddrV4>, now: Instant) -> Node {
        let bootstrap = bootstrap.filter(|_| !faults.has(Fault::NoBootstrap));
        Node {
            id,
            faults,
            table: Table::new(id),
            tokens: Tokens::new(now, faults.has(Fault::TokenAnyIp)),
            store: Store::default(),
            bootstrap,
            lookup: None,
            next_lookup: bootstrap.map(|_| now),
            outstanding: HashMap::new(),
            next_transaction: fastrand::u16(..),
            fake_transaction: 0,
            stopped: false,
        }
    }

    /// When `tick` has something to do; None while only datagrams can change anything.
    pub(super) fn wake_at(&self) -> Option<Instant> {
        let deadlines = self.outstanding.values().map(|o| o.deadline);
        let retry = self
            .lookup
            .as_ref()
            .filter(|lookup| !lookup.bootstrap_answered && !self.asking_bootstrap())
            .map(|lookup| lookup.bootstrap_next);
        deadlines.chain(retry).chain(self.next_lookup).min()
    }

    /// Expires overdue queries, starts a lookup that is due and moves the current one on.
    pub(super) fn tick(&mut self, now: Instant) -> Outgoing {
        let overdue: Vec<Vec<u8>> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(t, _)| t.clone())
            .collect();
        for t in overdue {
            if let Some(Outstanding {
                asked: Asked::Candidate(id),
                ..
            }) = self.outstanding.remove(&t)
            {
                if let Some(lookup) = &mut self.lookup {
                    lookup.mark(&id, Progress::Failed);
                }
            }
        }
        if self.lookup.is_none() && self.next_lookup.is_some_and(|due| due <= now) {
            self.next_lookup = None;
            self.lookup = Some(Lookup {
                target: self.id,
                bootstrap_answered: false,
                bootstrap_attempts: 0,
                bootstrap_next: now,
                candidates: Vec::new(),
            });
        }
        self.step_lookup(now)
    }

    /// Handles one datagram from `from`.
    pub(super) fn receive(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) -> Outgoing {
        if datagram.len() > MAX_MESSAGE || self.stopped {
            return Vec::new();
        }
        let Some(message) = decode(datagram).filter(Value::is_dict) else {
            self.stopped = self.faults.has(Fault::StopsOnGarbage);
            return Vec::new();
        };
        // Without a transaction id there is nothing an answer could be matched by.
        let Some(t) = message.get("t").and_then(Value::as_bytes) else {
            return Vec::new();
        };
        match message.get("y").and_then(Value::as_bytes) {
            Some(b"q") => self.query(&message, t, from, now).into_iter().collect(),
            Some(b"r") => self.answer(&message, t, from, now),
            Some(b"e") => self.answer(&message, t, from, now),
            _ => self
                .refuse(t, Refusal::Malformed("y missing or not one of q, r, e"))
                .map(|reply| (reply, from))
                .into_iter()
                .collect(),
        }
    }

    /// The reply to a query (none when a fault drops it).
    fn query(&mut self, message: &Value, t: &[u8], from: SocketAddr, now: Instant) -> Option<(Vec<u8>, SocketAddr)> {
        let reply = match self.respond(message, from, now) {
            Ok(values) => Some(self.response(t, values)),
            Err(refusal) => self.refuse(t, refusal),
        };
        reply.map(|reply| (reply, from))
    }

    /// The values of the response to a query, or why it is refused.
    fn respond(&mut self, message: &Value, from: SocketAddr, now: Instant) -> Result<Vec<(&'static str, Value)>, Refusal> {
        let method = message
            .get("q")
            .and_then(Value::as_bytes)
            .ok_or(Refusal::Malformed("q missing or not a string"))?;
        let args = message
            .get("a")
            .filter(|a| a.is_dict())
            .ok_or(Refusal::Malformed("a missing or not a dictionary"))?;
        let querier = id_arg(args, "id").ok_or(Refusal::Malformed("id missing or not 20 bytes"))?;
        if self.faults.has(Fault::RejectsUnknownKeys) && has_unknown_keys(message, args) {
            return Err(Refusal::Malformed("a key this node does not know"));
        }
        if let (true, SocketAddr::V4(addr)) = (self.faults.has(Fault::AddsUnverified), from) {
            self.table.insert(Contact { id: querier, addr });
        }
        match method {
            b"ping" => Ok(Vec::new()),
            b"find_node" => self.find_node(args),
            b"get_peers" => self.get_peers(args, from, now),
            b"announce_peer" => self.announce_peer(args, from, now),
            _ if self.faults.has(Fault::UnknownAsPing) => Ok(Vec::new()),
            _ => Err(Refusal::UnknownMethod),
        }
    }

    fn metric(&self) -> Metric {
        if self.faults.has(Fault::NumericDistance) {
            Metric::Numeric
        } else {
            Metric::Xor
        }
    }

    fn find_node(&self, args: &Value) -> Result<Vec<(&'static str, Value)>, Refusal> {
        let target = id_arg(args, "target").ok_or(Refusal::Malformed("target missing or not 20 bytes"))?;
        let count = if self.faults.has(Fault::TooManyNodes) { usize::MAX } else { K };
        let nodes = self.table.closest(&target, count, self.metric());
        Ok(vec![("nodes", Value::bytes(compact(&nodes)))])
    }

    fn get_peers(&mut self, args: &Value, from: SocketAddr, now: Instant) -> Result<Vec<(&'static str, Value)>, Refusal> {
        let info_hash = id_arg(args, "info_hash").ok_or(Refusal::Malformed("info_hash missing or not 20 bytes"))?;
        let mut values = Vec::new();
        if !self.faults.has(Fault::NoToken) {
            values.push(("token", Value::bytes(self.tokens.make(from.ip(), now))));
        }
        let peers = self.store.peers(&info_hash);
        if peers.is_empty() || self.faults.has(Fault::NoValues) {
            let nodes = self.table.closest(&info_hash, K, self.metric());
            values.push(("nodes", Value::bytes(compact(&nodes))));
        } else {
            let peers = peers.into_iter().map(|peer| Value::bytes(compact_peer(peer))).collect();
            values.push(("values", Value::List(peers)));
        }
        Ok(values)
    }

    fn announce_peer(&mut self, args: &Value, from: SocketAddr, now: Instant) -> Result<Vec<(&'static str, Value)>, Refusal> {
        let info_hash = id_arg(args, "info_hash").ok_or(Refusal::Malformed("info_hash missing or not 20 bytes"))?;
        // BEP 5: "If it is present and non-zero, the port argument should be ignored".
        let implied = args.get("implied_port").and_then(Value::as_int).is_some_and(|n| n != 0);
        let port = if implied && !self.faults.has(Fault::IgnoresImpliedPort) {
            from.port()
        } else {
            let port = args.get("port").ok_or(Refusal::Malformed("port missing"))?;
            let port = port.as_int().ok_or(Refusal::Malformed("port not an integer"))?;
            u16::try_from(port)
                .ok()
                .filter(|&port| port != 0)
                .ok_or(Refusal::Malformed("port out of range 1..65535"))?
        };
        let token = args
            .get("token")
            .and_then(Value::as_bytes)
            .ok_or(Refusal::Malformed("token missing or not a string"))?;
        if !self.faults.has(Fault::NoTokenCheck) && !self.tokens.accepts(token, from.ip(), now) {
            return Err(Refusal::BadToken);
        }
        self.store.announce(info_hash, SocketAddr::new(from.ip(), port));
        Ok(Vec::new())
    }

    /// A response (`y: r`) carrying `values` and our id.
    fn response(&mut self, t: &[u8], values: Vec<(&'static str, Value)>) -> Vec<u8> {
        let id = if self.faults.has(Fault::NewId) {
            std::array::from_fn(|_| fastrand::u8(..))
        } else {
            self.id
        };
        let body = Value::dict([("id", Value::bytes(id))].into_iter().chain(values));
        let t = self.transaction_for(t);
        Value::dict([("t", Value::bytes(t)), ("y", Value::bytes("r")), ("r", body)]).encode()
    }

    /// The error (`y: e`) for `refusal`, or nothing when the `no-error-203` fault drops it.
    fn refuse(&mut self, t: &[u8], refusal: Refusal) -> Option<Vec<u8>> {
        let (code, message) = match refusal {
            Refusal::Malformed(_) if self.faults.has(Fault::NoError203) => return None,
            Refusal::Malformed(why) => (203, format!("Protocol Error: {why}")),
            Refusal::BadToken => (203, "bad token".to_owned()),
            Refusal::UnknownMethod => (204, "Method Unknown".to_owned()),
        };
        let t = self.transaction_for(t);
        let error = Value::List(vec![Value::Int(code), Value::bytes(message)]);
        Some(Value::dict([("t", Value::bytes(t)), ("y", Value::bytes("e")), ("e", error)]).encode())
    }

    /// The transaction id an answer to `t` carries: `t` itself, byte for byte, but for the
    /// `wrong-transaction` fault.
    fn transaction_for(&mut self, t: &[u8]) -> Vec<u8> {
        if !self.faults.has(Fault::WrongTransaction) {
            return t.to_vec();
        }
        loop {
            self.fake_transaction = self.fake_transaction.wrapping_add(1);
            let own = self.fake_transaction.to_be_bytes();
            if own != t {
                return own.to_vec();
            }
        }
    }

    /// A response or error to one of our queries: matched by transaction id and address, the
    /// rest ignored.
    fn answer(&mut self, message: &Value, t: &[u8], from: SocketAddr, now: Instant) -> Outgoing {
        if self.outstanding.get(t).is_none_or(|o| o.to != from) {
            return Vec::new();
        }
        let Some(asked) = self.outstanding.remove(t).map(|o| o.asked) else {
            return Vec::new();
        };
        let values = message
            .get("r")
            .filter(|_| message.get("y").and_then(Value::as_bytes) == Some(b"r"));
        let responder = values.and_then(|r| id_arg(r, "id"));
        let (Some(values), Some(id), SocketAddr::V4(addr)) = (values, responder, from) else {
            if let (Some(lookup), Asked::Candidate(id)) = (&mut self.lookup, asked) {
                lookup.mark(&id, Progress::Failed);
            }
            return self.step_lookup(now);
        };
        // It answered one of our queries: a good node (BEP 5), and the only way into the table.
        let contact = Contact { id, addr };
        self.table.insert(contact);
        let listed = values
            .get("nodes")
            .and_then(Value::as_bytes)
            .map(Contact::read_compact)
            .unwrap_or_default();
        if self.faults.has(Fault::AddsUnverified) {
            listed.iter().for_each(|node| {
                self.table.insert(*node);
            });
        }
        if let Some(lookup) = &mut self.lookup {
            match asked {
                Asked::Bootstrap => {
                    lookup.bootstrap_answered = true;
                    lookup.add(&self.id, contact, Progress::Answered);
                }
                Asked::Candidate(listed_as) => lookup.mark(&listed_as, Progress::Answered),
            }
            for node in listed {
                lookup.add(&self.id, node, Progress::Fresh);
            }
        }
        self.step_lookup(now)
    }

    fn asking_bootstrap(&self) -> bool {
        self.outstanding.values().any(|o| o.asked == Asked::Bootstrap)
    }

    /// Sends what the lookup should send now, and ends it when it is done.
    fn step_lookup(&mut self, now: Instant) -> Outgoing {
        let Some(bootstrap) = self.bootstrap else {
            return Vec::new();
        };
        let Some(mut lookup) = self.lookup.take() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let done = if !lookup.bootstrap_answered {
            let asking = self.asking_bootstrap();
            if !asking && lookup.bootstrap_attempts < BOOTSTRAP_ATTEMPTS && lookup.bootstrap_next <= now {
                lookup.bootstrap_attempts += 1;
                lookup.bootstrap_next = now + BOOTSTRAP_RETRY;
                out.extend(self.find_node_query(lookup.target, SocketAddr::V4(bootstrap), Asked::Bootstrap, now));
            }
            // Given up: no answer to the last attempt, and no attempt left.
            !asking && out.is_empty() && lookup.bootstrap_attempts >= BOOTSTRAP_ATTEMPTS
        } else {
            let mut in_flight = lookup.candidates.iter().filter(|c| c.progress == Progress::Waiting).count();
            for candidate in lookup.candidates.iter_mut().take(K) {
                if in_flight >= ALPHA {
                    break;
                }
                if candidate.progress != Progress::Fresh {
                    continue;
                }
                let to = SocketAddr::V4(candidate.contact.addr);
                if let Some(query) = self.find_node_query(lookup.target, to, Asked::Candidate(candidate.contact.id), now) {
                    out.push(query);
                    candidate.progress = Progress::Waiting;
                    in_flight += 1;
                }
            }
            lookup.is_done()
        };
        if done {
            // Retrying only an empty table keeps a node without peers from giving up for good,
            // and one with peers from querying forever.
            self.next_lookup = self.table.is_empty().then_some(now + RELOOKUP);
        } else {
            self.lookup = Some(lookup);
        }
        out
    }

    /// A find_node query of ours for `target` to `to`, remembered as outstanding; None when
    /// too many are (the caller tries again once some have been answered or expired).
    fn find_node_query(&mut self, target: Id, to: SocketAddr, asked: Asked, now: Instant) -> Option<(Vec<u8>, SocketAddr)> {
        if self.outstanding.len() >= MAX_OUTSTANDING {
            return None;
        }
        let t = loop {
            self.next_transaction = self.next_transaction.wrapping_add(1);
            let t = self.next_transaction.to_be_bytes().to_vec();
            if !self.outstanding.contains_key(&t) {
                break t;
            }
        };
        let args = Value::dict([("id", Value::bytes(self.id)), ("target", Value::bytes(target))]);
        let query = Value::dict([
            ("t", Value::bytes(t.clone())),
            ("y", Value::bytes("q")),
            ("q", Value::bytes("find_node")),
            ("a", args),
        ]);
        let deadline = now + QUERY_TIMEOUT;
        self.outstanding.insert(t, Outstanding { to, deadline, asked });
        Some((query.encode(), to))
    }
}

/// The 20-byte id at `key` of a dictionary.
fn id_arg(dict: &Value, key: &str) -> Option<Id> {
    dict.get(key)?.as_bytes()?.try_into().ok()
}

/// Whether a query carries a key BEP 5 does not name (for the `rejects-unknown-keys` fault).
fn has_unknown_keys(message: &Value, args: &Value) -> bool {
    const TOP: &[&[u8]] = &[b"t", b"y", b"q", b"a"];
    const ARGS: &[&[u8]] = &[b"id", b"target", b"info_hash", b"port", b"token", b"implied_port"];
    let unknown = |v: &Value, known: &[&[u8]]| match v {
        Value::Dict(pairs) => pairs.keys().any(|k| !known.contains(&k.as_slice())),
        _ => false,
    };
    unknown(message, TOP) || unknown(args, ARGS)
}
