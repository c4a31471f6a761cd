//! The node itself, as a state machine the socket loop feeds: `receive` for each datagram,
//! `tick` when `wake_at` comes; both return the datagrams to send. Keeping the socket out makes
//! every decision here plain code, and one task owning all of it needs no locks.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::circle::{closed_open, open_closed, open_open, parse_addr, Circle, Id, Peer};
use super::{Fault, Faults};

/// The spec's largest datagram: a welcome is kept within it (items that do not fit follow as puts).
pub(super) const MAX_MESSAGE: usize = 1400;
/// The longest value a put may store, in bytes.
pub(super) const MAX_VALUE: usize = 512;
/// The most items the store holds.
pub(super) const MAX_ITEMS: usize = 10_000;
/// How often successors are pinged and s1 is asked its successors.
pub(super) const ROUND: Duration = Duration::from_millis(500);
/// How long a request of ours waits for its answer.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// Unanswered pings in a row after which a node has left.
pub(super) const MISSED_PINGS: u32 = 2;
/// How often the shortcuts are looked up.
pub(super) const SHORTCUT_REFRESH: Duration = Duration::from_secs(2);
/// How often a join through the bootstrap node is sent again while no welcome has come.
pub(super) const JOIN_RETRY: Duration = Duration::from_secs(1);
/// How many joins are sent before the node gives up (and stays a ring of its own).
pub(super) const JOIN_ATTEMPTS: usize = 30;
/// Our requests awaiting an answer: 2 pings, a successors, m <= 16 shortcut lookups, a
/// predecessor ping, with room to spare.
const MAX_OUTSTANDING: usize = 64;
/// How long a node seen to leave is not taken back from a successors_reply naming it.
const DEPARTED_MEMORY: Duration = Duration::from_secs(10);
/// Nodes remembered as departed.
const MAX_DEPARTED: usize = 16;
/// A request forwarded this many times is going round in circles: dropped.
const MAX_HOPS: u64 = 1 << 16;

/// The datagrams to send, each with its destination.
pub(super) type Outgoing = Vec<(Vec<u8>, SocketAddr)>;

/// How the node starts.
#[derive(Debug, Clone)]
pub(super) enum Start {
    /// A ring of its own: no predecessor, both successors itself.
    Alone,
    /// Joining the ring of the node at this address.
    Join(SocketAddr),
    /// A node of this complete ring (sorted by id, its own entry among them).
    Ring(Vec<(Id, SocketAddr)>),
}

/// One node of the ring.
#[derive(Debug)]
pub(super) struct Node {
    circle: Circle,
    me: Peer,
    faults: Faults,
    predecessor: Option<Peer>,
    /// s1 and s2 (itself when alone).
    successors: [Peer; 2],
    /// Shortcut i: the owner of `(n + 2^i) mod 2^m`, once known.
    shortcuts: Vec<Option<Peer>>,
    store: BTreeMap<Id, String>,
    /// False while a join through `bootstrap` awaits its welcome.
    joined: bool,
    bootstrap: Option<SocketAddr>,
    /// The tids of the joins sent, one per attempt: a welcome to any of them is ours.
    join_tids: Vec<i64>,
    next_join: Option<Instant>,
    next_round: Instant,
    next_shortcuts: Option<Instant>,
    outstanding: HashMap<i64, Outstanding>,
    /// Unanswered pings in a row, per successor.
    missed: Vec<(Peer, u32)>,
    /// Nodes seen to leave, until when they are remembered.
    departed: Vec<(Peer, Instant)>,
    /// A predecessor being pinged because another node says it is our predecessor now.
    predecessor_check: Option<PredecessorCheck>,
    /// The `wrong-tid` fault's own tids.
    fake_tid: i64,
}

/// A request of ours awaiting its answer.
#[derive(Debug)]
struct Outstanding {
    deadline: Instant,
    what: Pending,
}

/// What a request of ours was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// A ping to a successor.
    Ping(Peer),
    /// A ping to the predecessor, which a notify says has left.
    PredecessorPing(Peer),
    /// A successors to s1.
    Successors(Peer),
    /// The lookup of shortcut i.
    Shortcut(usize),
}

/// The predecessor `suspect` is being pinged; if it has left, `candidate` (who sent a notify
/// saying it is our predecessor) takes its place.
#[derive(Debug)]
struct PredecessorCheck {
    suspect: Peer,
    candidate: Peer,
    missed: u32,
}

/// The requests that are routed to a key's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routed {
    FindSuccessor,
    Get,
    Put,
    Join,
}

/// Where routing sends a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Rule 1: this node owns it.
    Own,
    /// Rule 2: s1 owns it.
    Successor(Peer),
    /// Rule 3: on to this node.
    Forward(Peer),
}

/// A readable routed request.
struct Request<'a> {
    kind: Routed,
    message: &'a Map<String, Value>,
    tid: &'a Value,
    source: SocketAddr,
    key: Id,
    origin: SocketAddr,
    hops: u64,
}

impl Node {
    /// A node `id` on `circle` bound to `addr`, started as `start` says.
    pub(super) fn new(circle: Circle, id: Id, addr: SocketAddr, faults: Faults, start: Start, now: Instant) -> Node {
        let me = Peer { id, addr };
        let mut node = Node {
            circle,
            me,
            faults,
            predecessor: None,
            successors: [me, me],
            shortcuts: vec![None; circle.bits() as usize],
            store: BTreeMap::new(),
            joined: true,
            bootstrap: None,
            join_tids: Vec::new(),
            next_join: None,
            next_round: now + ROUND,
            next_shortcuts: Some(now),
            outstanding: HashMap::new(),
            missed: Vec::new(),
            departed: Vec::new(),
            predecessor_check: None,
            fake_tid: 0,
        };
        match start {
            Start::Alone => {}
            Start::Join(bootstrap) => {
                node.joined = false;
                node.bootstrap = Some(bootstrap);
                node.next_join = Some(now);
                node.next_shortcuts = None;
            }
            Start::Ring(ring) => node.take_ring(&ring, now),
        }
        node
    }

    /// The state of a node of the complete `ring`: predecessor, successors and shortcuts.
    fn take_ring(&mut self, ring: &[(Id, SocketAddr)], now: Instant) {
        let peers: Vec<Peer> = ring
            .iter()
            .map(|&(id, addr)| if id == self.me.id { self.me } else { Peer { id, addr } })
            .collect();
        let Some(at) = peers.iter().position(|peer| *peer == self.me) else {
            return;
        };
        let len = peers.len();
        if len > 1 {
            self.predecessor = Some(peers[(at + len - 1) % len]);
        }
        self.set_successors(peers[(at + 1) % len], peers[(at + 2) % len]);
        for (i, shortcut) in self.shortcuts.iter_mut().enumerate() {
            let key = self.circle.shortcut_key(self.me.id, i as u32);
            *shortcut = peers.iter().find(|peer| peer.id >= key).or(peers.first()).copied();
        }
        self.next_shortcuts = Some(now + SHORTCUT_REFRESH);
    }

    /// When `tick` has something to do.
    pub(super) fn wake_at(&self) -> Instant {
        let deadlines = self.outstanding.values().map(|o| o.deadline);
        deadlines
            .chain(self.next_join)
            .chain(self.next_shortcuts)
            .fold(self.next_round, Instant::min)
    }

    /// Expires overdue requests, and sends what is due: a join, pings and successors, shortcut lookups.
    pub(super) fn tick(&mut self, now: Instant) -> Outgoing {
        let mut out = Vec::new();
        let overdue: Vec<i64> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(&tid, _)| tid)
            .collect();
        for tid in overdue {
            if let Some(outstanding) = self.outstanding.remove(&tid) {
                out.extend(self.expired(outstanding.what, now));
            }
        }
        self.departed.retain(|&(_, until)| until > now);
        if self.next_join.is_some_and(|due| due <= now) {
            out.extend(self.send_join(now));
        }
        if self.next_round <= now {
            self.next_round = now + ROUND;
            out.extend(self.round(now));
        }
        if self.next_shortcuts.is_some_and(|due| due <= now) {
            self.next_shortcuts = Some(now + SHORTCUT_REFRESH);
            out.extend(self.look_up_shortcuts(now));
        }
        out
    }

    /// A request of ours got no answer in time.
    fn expired(&mut self, what: Pending, now: Instant) -> Outgoing {
        match what {
            Pending::Ping(peer) => {
                if !self.successors.contains(&peer) {
                    return Vec::new();
                }
                let missed = match self.missed.iter_mut().find(|(p, _)| *p == peer) {
                    Some((_, missed)) => {
                        *missed += 1;
                        *missed
                    }
                    None => {
                        self.missed.push((peer, 1));
                        1
                    }
                };
                if missed >= MISSED_PINGS {
                    return self.successor_left(peer, now);
                }
                Vec::new()
            }
            Pending::PredecessorPing(peer) => {
                let Some(check) = self.predecessor_check.as_mut().filter(|check| check.suspect == peer) else {
                    return Vec::new();
                };
                check.missed += 1;
                if check.missed < MISSED_PINGS {
                    return self.request(peer.addr, "ping", Vec::new(), Pending::PredecessorPing(peer), now);
                }
                let candidate = check.candidate;
                self.predecessor_check = None;
                self.remember_departed(peer, now);
                if self.predecessor == Some(peer) {
                    self.predecessor = Some(candidate);
                }
                Vec::new()
            }
            Pending::Successors(_) | Pending::Shortcut(_) => Vec::new(),
        }
    }

    /// Sends the join (again), until the last attempt.
    fn send_join(&mut self, now: Instant) -> Outgoing {
        let Some(bootstrap) = self.bootstrap.filter(|_| !self.joined) else {
            self.next_join = None;
            return Vec::new();
        };
        let tid = self.new_tid();
        self.join_tids.push(tid);
        self.next_join = (self.join_tids.len() < JOIN_ATTEMPTS).then_some(now + JOIN_RETRY);
        let fields = vec![
            ("key", json!(self.me.id)),
            ("origin", json!(self.me.addr.to_string())),
            ("hops", json!(0)),
        ];
        vec![(self.encode("join", &json!(tid), fields), bootstrap)]
    }

    /// Every 0.5 s: pings to s1 and s2, and a successors to s1.
    fn round(&mut self, now: Instant) -> Outgoing {
        let mut out = Vec::new();
        if !self.faults.has(Fault::NeverPings) {
            let [s1, s2] = self.successors;
            let targets = if s2 == s1 { vec![s1] } else { vec![s1, s2] };
            for successor in targets {
                if successor != self.me && !self.is_departed(successor) {
                    out.extend(self.request(successor.addr, "ping", Vec::new(), Pending::Ping(successor), now));
                }
            }
        }
        out.extend(self.ask_successors(now));
        out
    }

    /// A successors to s1 (unless s1 is this node, or under `no-stabilize`).
    fn ask_successors(&mut self, now: Instant) -> Outgoing {
        let s1 = self.successors[0];
        if s1 == self.me || self.faults.has(Fault::NoStabilize) {
            return Vec::new();
        }
        self.request(s1.addr, "successors", Vec::new(), Pending::Successors(s1), now)
    }

    /// Looks up every shortcut: at once when this node or s1 owns its key, else with a
    /// find_successor (origin: this node) to the closest preceding node.
    fn look_up_shortcuts(&mut self, now: Instant) -> Outgoing {
        let mut out = Vec::new();
        if self.faults.has(Fault::IgnoresShortcuts) {
            return out;
        }
        for i in 0..self.shortcuts.len() {
            let key = self.circle.shortcut_key(self.me.id, i as u32);
            match self.route(key) {
                Route::Own => self.shortcuts[i] = Some(self.me),
                Route::Successor(s1) => self.shortcuts[i] = Some(s1),
                Route::Forward(next) => {
                    let fields = vec![("key", json!(key)), ("origin", json!(self.me.addr.to_string())), ("hops", json!(0))];
                    out.extend(self.request(next.addr, "find_successor", fields, Pending::Shortcut(i), now));
                }
            }
        }
        out
    }

    /// A request of ours, remembered as outstanding; nothing when too many are.
    fn request(&mut self, to: SocketAddr, kind: &str, fields: Vec<(&str, Value)>, what: Pending, now: Instant) -> Outgoing {
        if self.outstanding.len() >= MAX_OUTSTANDING {
            return Vec::new();
        }
        let tid = self.new_tid();
        self.outstanding.insert(
            tid,
            Outstanding {
                deadline: now + REQUEST_TIMEOUT,
                what,
            },
        );
        vec![(self.encode(kind, &json!(tid), fields), to)]
    }

    /// A tid for a request of ours, not in use.
    fn new_tid(&self) -> i64 {
        loop {
            let tid = fastrand::i64(0..1 << 31);
            if !self.outstanding.contains_key(&tid) && !self.join_tids.contains(&tid) {
                return tid;
            }
        }
    }

    /// Handles one datagram from `source`.
    pub(super) fn receive(&mut self, datagram: &[u8], source: SocketAddr, now: Instant) -> Outgoing {
        let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(datagram) else {
            return Vec::new();
        };
        // Without an integer tid there is nothing an answer could carry.
        let Some(tid) = message.get("tid").filter(|tid| tid.is_i64() || tid.is_u64()) else {
            return Vec::new();
        };
        // Whatever sends us something has not left.
        self.departed.retain(|(peer, _)| peer.addr != source);
        let Some(kind) = message.get("type").and_then(Value::as_str) else {
            return self.refuse(tid, source, "type missing or not a string".to_owned());
        };
        if !tid.as_i64().is_some_and(|tid| (0..1 << 31).contains(&tid)) {
            return self.refuse(tid, source, format!("tid {tid} is outside [0, 2^31 - 1]"));
        }
        match kind {
            "ping" | "find_successor" | "get" | "put" | "join" | "notify" | "successors" => {
                match self.handle_request(kind, &message, tid, source, now) {
                    Ok(out) => out,
                    Err(why) => self.refuse(tid, source, why),
                }
            }
            "pong" | "found" | "value" | "stored" | "welcome" | "ok" | "successors_reply" | "error" => {
                self.answer(kind, &message, tid, now)
            }
            other => self.refuse(tid, source, format!("unknown type {other}")),
        }
    }

    /// A request: its answer or its forwarding, or why it cannot be read.
    fn handle_request(
        &mut self,
        kind: &str,
        message: &Map<String, Value>,
        tid: &Value,
        source: SocketAddr,
        now: Instant,
    ) -> Result<Outgoing, String> {
        let from = message.get("from").ok_or("from missing")?;
        let from = from
            .as_object()
            .ok_or("from is not an object {\"id\": N or null, \"addr\": \"IP:PORT\"}")?;
        match from.get("id") {
            Some(Value::Null) => {}
            Some(id) if id.as_u64().and_then(|id| self.circle.id(id)).is_some() => {}
            _ => {
                return Err(format!(
                    "from's id is missing or not null or an integer in [0, {}]",
                    self.circle.max()
                ))
            }
        }
        if from.get("addr").and_then(Value::as_str).and_then(parse_addr).is_none() {
            return Err("from's addr is missing or not a string \"IP:PORT\"".to_owned());
        }
        let routed = match kind {
            "ping" => return Ok(vec![(self.answer_message("pong", tid, Vec::new()), source)]),
            "successors" => {
                let fields = vec![("predecessor", self.predecessor_json()), ("successors", self.successors_json())];
                return Ok(vec![(self.answer_message("successors_reply", tid, fields), source)]);
            }
            "notify" => return self.notify(message, tid, source, now),
            "find_successor" => Routed::FindSuccessor,
            "get" => Routed::Get,
            "put" => Routed::Put,
            _ => Routed::Join,
        };
        let key = message.get("key").ok_or("key missing")?;
        let key = key.as_u64().ok_or_else(|| format!("key {key} is not a whole number"))?;
        let key = self
            .circle
            .id(key)
            .ok_or_else(|| format!("key {key} is outside [0, {}]", self.circle.max()))?;
        let origin = message.get("origin").ok_or("origin missing")?;
        let origin = origin
            .as_str()
            .and_then(parse_addr)
            .ok_or_else(|| format!("origin {origin} is not a string \"IP:PORT\""))?;
        let hops = message.get("hops").ok_or("hops missing")?;
        let hops = hops.as_u64().ok_or_else(|| format!("hops {hops} is not a whole number"))?;
        if routed == Routed::Put {
            let value = message.get("value").ok_or("value missing")?;
            let value = value.as_str().ok_or("value is not a string")?;
            if value.len() > MAX_VALUE {
                return Err(format!("value is {} bytes long, over {MAX_VALUE}", value.len()));
            }
        }
        if hops >= MAX_HOPS {
            return Ok(Vec::new());
        }
        let request = Request {
            kind: routed,
            message,
            tid,
            source,
            key,
            origin,
            hops,
        };
        Ok(self.route_request(&request))
    }

    /// Rules 1 to 3 for a readable routed request.
    fn route_request(&mut self, request: &Request) -> Outgoing {
        match self.route(request.key) {
            Route::Own => self.own(request),
            Route::Successor(s1) if request.kind == Routed::FindSuccessor => {
                let fields = vec![("key", json!(request.key)), ("node", s1.to_json()), ("hops", json!(request.hops))];
                self.answer_routed(request, "found", fields)
            }
            Route::Successor(next) | Route::Forward(next) => self.forward(request, next),
        }
    }

    /// Where key `k` goes from here. A next node that is this one (a node alone) means it owns `k`.
    fn route(&self, k: Id) -> Route {
        let n = self.me.id;
        let [s1, s2] = self.successors;
        let off_by_one = self.faults.has(Fault::OffByOneOwner);
        let within = |a: Id, b: Id| if off_by_one { closed_open(a, k, b) } else { open_closed(a, k, b) };
        if self.predecessor.is_some_and(|p| within(p.id, n)) {
            return Route::Own;
        }
        if within(n, s1.id) {
            return if s1 == self.me { Route::Own } else { Route::Successor(s1) };
        }
        let next = if self.faults.has(Fault::IgnoresShortcuts) {
            s1
        } else if self.faults.has(Fault::ForwardsToPredecessor) {
            self.predecessor.unwrap_or(s1)
        } else {
            let candidates = [s1, s2].into_iter().chain(self.shortcuts.iter().flatten().copied());
            candidates
                .filter(|peer| open_open(n, peer.id, k))
                .max_by_key(|peer| self.circle.distance(n, peer.id))
                .unwrap_or(s1)
        };
        if next == self.me {
            Route::Own
        } else {
            Route::Forward(next)
        }
    }

    /// The same object to `next`, from this node, with hops + 1.
    fn forward(&mut self, request: &Request, next: Peer) -> Outgoing {
        let mut message = request.message.clone();
        message.insert("from".to_owned(), self.me.to_json());
        let hops = if self.faults.has(Fault::NoHops) {
            request.hops
        } else {
            request.hops + 1
        };
        message.insert("hops".to_owned(), json!(hops));
        vec![(serde_json::to_vec(&Value::Object(message)).unwrap_or_default(), next.addr)]
    }

    /// Rule 1: this node owns the key.
    fn own(&mut self, request: &Request) -> Outgoing {
        let (key, hops) = (request.key, request.hops);
        match request.kind {
            Routed::FindSuccessor => {
                let fields = vec![("key", json!(key)), ("node", self.me.to_json()), ("hops", json!(hops))];
                self.answer_routed(request, "found", fields)
            }
            Routed::Get => {
                let value = self.store.get(&key).map_or(Value::Null, |value| json!(value));
                let fields = vec![("key", json!(key)), ("value", value), ("hops", json!(hops))];
                self.answer_routed(request, "value", fields)
            }
            Routed::Put => {
                let value = request.message.get("value").and_then(Value::as_str).unwrap_or_default();
                if self.store.len() >= MAX_ITEMS && !self.store.contains_key(&key) {
                    return self.refuse(request.tid, request.source, format!("the store is full ({MAX_ITEMS} items)"));
                }
                self.store.insert(key, value.to_owned());
                let fields = vec![("key", json!(key)), ("hops", json!(hops))];
                self.answer_routed(request, "stored", fields)
            }
            Routed::Join => self.welcome(request),
        }
    }

    /// Joining, at the joining node's successor S (this node): the welcome, the items handed
    /// over, and the joining node as predecessor (and as s1 when S was alone).
    fn welcome(&mut self, request: &Request) -> Outgoing {
        let joining = Peer {
            id: request.key,
            addr: request.origin,
        };
        if joining.id == self.me.id {
            return self.refuse(
                request.tid,
                request.source,
                format!("node id {} is already in the ring", joining.id),
            );
        }
        let alone = self.successors[0] == self.me;
        // A node alone owns the whole circle: the joining node's predecessor is this node.
        let predecessor = if alone { Some(self.me) } else { self.predecessor };
        let second = if self.faults.has(Fault::NoSecondSuccessor) {
            self.me
        } else {
            self.successors[0]
        };
        let handed: Vec<Id> = match predecessor {
            Some(p) if !self.faults.has(Fault::NoItemsHandoff) => {
                self.store.keys().copied().filter(|&k| open_closed(p.id, k, joining.id)).collect()
            }
            _ => Vec::new(),
        };
        let predecessor_json = predecessor.map_or(Value::Null, Peer::to_json);
        let successors = json!([self.me.to_json(), second.to_json()]);
        let mut items = Vec::new();
        let mut overflow = Vec::new();
        for key in handed {
            let Some(value) = self.store.remove(&key) else { continue };
            if !overflow.is_empty() {
                overflow.push((key, value));
                continue;
            }
            items.push(json!([key, value]));
            let fields = vec![
                ("predecessor", predecessor_json.clone()),
                ("successors", successors.clone()),
                ("items", Value::Array(items.clone())),
            ];
            if self.encode("welcome", request.tid, fields).len() > MAX_MESSAGE {
                items.pop();
                overflow.push((key, value));
            }
        }
        let fields = vec![
            ("predecessor", predecessor_json),
            ("successors", successors),
            ("items", Value::Array(items)),
        ];
        let mut out = self.answer_routed(request, "welcome", fields);
        // What did not fit the welcome follows as puts, answered (`stored`) to nobody who waits.
        for (key, value) in overflow {
            let fields = vec![
                ("key", json!(key)),
                ("value", json!(value)),
                ("origin", json!(self.me.addr.to_string())),
                ("hops", json!(0)),
            ];
            let tid = json!(self.new_tid());
            out.push((self.encode("put", &tid, fields), joining.addr));
        }
        if !self.faults.has(Fault::KeepsPredecessor) || alone {
            self.predecessor = Some(joining);
        }
        if alone {
            self.set_successors(joining, self.me);
        }
        out
    }

    /// A notify: a new successor (in `(n, s1)`) or predecessor; answered `ok`.
    fn notify(&mut self, message: &Map<String, Value>, tid: &Value, source: SocketAddr, now: Instant) -> Result<Outgoing, String> {
        let read = |field: &str| match message.get(field) {
            None => Ok(None),
            Some(value) => Peer::from_json(value, self.circle)
                .map(Some)
                .map_err(|why| format!("{field} {why}")),
        };
        let (successor, predecessor) = (read("successor")?, read("predecessor")?);
        if successor.is_none() && predecessor.is_none() {
            return Err("a notify needs a successor or a predecessor".to_owned());
        }
        let mut out = vec![(self.answer_message("ok", tid, Vec::new()), source)];
        if let Some(x) = successor.filter(|x| *x != self.me && !self.faults.has(Fault::StaticSuccessors)) {
            let s1 = self.successors[0];
            if open_open(self.me.id, x.id, s1.id) {
                self.set_successors(x, s1);
            }
        }
        if let Some(x) = predecessor.filter(|x| *x != self.me) {
            out.extend(self.offered_predecessor(x, now));
        }
        Ok(out)
    }

    /// `x` says it is our predecessor: taken when we have none, when ours has left, or when
    /// `x` is in `(p, n)`; otherwise ours is pinged, and `x` taken if it has left.
    fn offered_predecessor(&mut self, x: Peer, now: Instant) -> Outgoing {
        let Some(p) = self.predecessor else {
            self.predecessor = Some(x);
            return Vec::new();
        };
        if p == x {
            return Vec::new();
        }
        if self.is_departed(p) || open_open(p.id, x.id, self.me.id) {
            self.predecessor = Some(x);
            self.predecessor_check = None;
            return Vec::new();
        }
        match &mut self.predecessor_check {
            Some(check) if check.suspect == p => {
                check.candidate = x;
                Vec::new()
            }
            _ => {
                self.predecessor_check = Some(PredecessorCheck {
                    suspect: p,
                    candidate: x,
                    missed: 0,
                });
                self.request(p.addr, "ping", Vec::new(), Pending::PredecessorPing(p), now)
            }
        }
    }

    /// An answer: to one of our requests (by tid), a welcome to one of our joins, or ignored.
    fn answer(&mut self, kind: &str, message: &Map<String, Value>, tid: &Value, now: Instant) -> Outgoing {
        let Some(tid) = tid.as_i64() else {
            return Vec::new();
        };
        if kind == "welcome" {
            return self.welcomed(message, tid, now);
        }
        let Some(what) = self.outstanding.get(&tid).map(|o| o.what) else {
            return Vec::new();
        };
        let expected = match what {
            Pending::Ping(_) | Pending::PredecessorPing(_) => "pong",
            Pending::Successors(_) => "successors_reply",
            Pending::Shortcut(_) => "found",
        };
        if kind != expected && kind != "error" {
            return Vec::new();
        }
        self.outstanding.remove(&tid);
        if kind == "error" {
            return Vec::new();
        }
        match what {
            Pending::Ping(peer) => {
                self.missed.retain(|(p, _)| *p != peer);
            }
            Pending::PredecessorPing(peer) => {
                if self.predecessor_check.as_ref().is_some_and(|check| check.suspect == peer) {
                    self.predecessor_check = None;
                }
            }
            Pending::Successors(asked) => return self.stabilize(asked, message),
            Pending::Shortcut(i) => {
                let node = message.get("node").and_then(|node| Peer::from_json(node, self.circle).ok());
                if let Some(node) = node.filter(|node| !self.is_departed(*node)) {
                    if let Some(shortcut) = self.shortcuts.get_mut(i) {
                        *shortcut = Some(node);
                    }
                }
            }
        }
        Vec::new()
    }

    /// s1's successors_reply: its first successor is our s2, and its predecessor, if in
    /// `(n, s1)`, our s1.
    fn stabilize(&mut self, asked: Peer, message: &Map<String, Value>) -> Outgoing {
        let [s1, s2] = self.successors;
        if asked != s1 {
            return Vec::new();
        }
        let Some(successors) = message.get("successors").and_then(Value::as_array) else {
            return Vec::new();
        };
        let successors: Vec<Peer> = successors
            .iter()
            .filter_map(|peer| Peer::from_json(peer, self.circle).ok())
            .collect();
        let second = successors.iter().copied().find(|peer| !self.is_departed(*peer)).unwrap_or(s2);
        self.set_successors(s1, second);
        let predecessor = message.get("predecessor").and_then(|p| Peer::from_json(p, self.circle).ok());
        if let Some(x) = predecessor.filter(|_| !self.faults.has(Fault::StaticSuccessors)) {
            if x != self.me && open_open(self.me.id, x.id, s1.id) && !self.is_departed(x) {
                self.set_successors(x, s1);
            }
        }
        Vec::new()
    }

    /// The welcome to one of our joins: predecessor, successors and items taken, then a notify
    /// to the predecessor and the first shortcut lookups.
    fn welcomed(&mut self, message: &Map<String, Value>, tid: i64, now: Instant) -> Outgoing {
        if self.joined || !self.join_tids.contains(&tid) {
            return Vec::new();
        }
        let predecessor = match message.get("predecessor") {
            None | Some(Value::Null) => None,
            Some(p) => match Peer::from_json(p, self.circle) {
                Ok(p) => Some(p),
                Err(_) => return Vec::new(),
            },
        };
        let successors: Vec<Peer> = match message.get("successors").and_then(Value::as_array) {
            Some(list) => list.iter().filter_map(|p| Peer::from_json(p, self.circle).ok()).collect(),
            None => return Vec::new(),
        };
        let Some(&s1) = successors.first() else {
            return Vec::new();
        };
        let s2 = successors.get(1).copied().unwrap_or(s1);
        self.joined = true;
        self.next_join = None;
        self.predecessor = predecessor.filter(|p| *p != self.me);
        self.set_successors(s1, s2);
        let items = message
            .get("items")
            .and_then(Value::as_array)
            .filter(|_| !self.faults.has(Fault::IgnoresWelcomeItems));
        for item in items.into_iter().flatten() {
            let Some([key, value]) = item.as_array().map(Vec::as_slice) else {
                continue;
            };
            let (Some(key), Some(value)) = (key.as_u64().and_then(|k| self.circle.id(k)), value.as_str()) else {
                continue;
            };
            if value.len() <= MAX_VALUE && (self.store.len() < MAX_ITEMS || self.store.contains_key(&key)) {
                self.store.insert(key, value.to_owned());
            }
        }
        let mut out = Vec::new();
        if let Some(p) = self.predecessor.filter(|_| !self.faults.has(Fault::NoNotify)) {
            let tid = json!(self.new_tid());
            out.push((self.encode("notify", &tid, vec![("successor", self.me.to_json())]), p.addr));
        }
        self.next_round = now + ROUND;
        self.next_shortcuts = Some(now + SHORTCUT_REFRESH);
        out.extend(self.look_up_shortcuts(now));
        out
    }

    /// Successor `gone` has not answered its last pings: it has left.
    fn successor_left(&mut self, gone: Peer, now: Instant) -> Outgoing {
        if self.faults.has(Fault::NoSecondSuccessor) {
            // Without an s2 there is nobody to take s1's place: the node is stuck.
            return Vec::new();
        }
        self.remember_departed(gone, now);
        for shortcut in &mut self.shortcuts {
            if *shortcut == Some(gone) {
                *shortcut = None;
            }
        }
        if self.predecessor == Some(gone) {
            self.predecessor = None;
        }
        let [s1, s2] = self.successors;
        let mut out = Vec::new();
        if s1 == gone {
            // s2 takes its place (or, if it has left too, the nearest live shortcut, else nobody).
            let next = if s2 != gone && !self.is_departed(s2) {
                s2
            } else {
                let live = self
                    .shortcuts
                    .iter()
                    .flatten()
                    .copied()
                    .filter(|p| *p != self.me && !self.is_departed(*p));
                live.min_by_key(|p| self.circle.distance(self.me.id, p.id)).unwrap_or(self.me)
            };
            // s2 until the new s1 says who its first successor is.
            self.set_successors(next, next);
            if next != self.me {
                out.extend(self.ask_successors(now));
                let tid = json!(self.new_tid());
                out.push((self.encode("notify", &tid, vec![("predecessor", self.me.to_json())]), next.addr));
            } else {
                // Alone again: the whole circle is ours.
                self.predecessor = None;
            }
        } else if s2 == gone {
            self.set_successors(s1, s1);
            out.extend(self.ask_successors(now));
        }
        out
    }

    /// s1 and s2 (s2 is s1 under the `no-second-successor` fault); ping counts of nodes that
    /// are no longer successors are dropped.
    fn set_successors(&mut self, s1: Peer, s2: Peer) {
        let s2 = if self.faults.has(Fault::NoSecondSuccessor) { s1 } else { s2 };
        self.successors = [s1, s2];
        self.missed.retain(|(peer, _)| *peer == s1 || *peer == s2);
    }

    fn remember_departed(&mut self, peer: Peer, now: Instant) {
        self.departed.retain(|(p, _)| *p != peer);
        if self.departed.len() >= MAX_DEPARTED {
            self.departed.remove(0);
        }
        self.departed.push((peer, now + DEPARTED_MEMORY));
    }

    fn is_departed(&self, peer: Peer) -> bool {
        self.departed.iter().any(|(p, _)| *p == peer)
    }

    fn predecessor_json(&self) -> Value {
        self.predecessor.map_or(Value::Null, Peer::to_json)
    }

    fn successors_json(&self) -> Value {
        let [s1, s2] = self.successors;
        json!([s1.to_json(), s2.to_json()])
    }

    /// The answer to a routed request, to its origin (to whoever sent it, under `answers-forwarder`).
    fn answer_routed(&mut self, request: &Request, kind: &str, fields: Vec<(&str, Value)>) -> Outgoing {
        let to = if self.faults.has(Fault::AnswersForwarder) {
            request.source
        } else {
            request.origin
        };
        vec![(self.answer_message(kind, request.tid, fields), to)]
    }

    /// An `error` for an unreadable request, to its sender (nothing under `no-error`).
    fn refuse(&mut self, tid: &Value, to: SocketAddr, why: String) -> Outgoing {
        if self.faults.has(Fault::NoError) {
            return Vec::new();
        }
        vec![(self.answer_message("error", tid, vec![("error", json!(why))]), to)]
    }

    /// An answer carrying the request's tid (one of the node's own under `wrong-tid`).
    fn answer_message(&mut self, kind: &str, tid: &Value, fields: Vec<(&str, Value)>) -> Vec<u8> {
        if !self.faults.has(Fault::WrongTid) {
            return self.encode(kind, tid, fields);
        }
        loop {
            self.fake_tid = (self.fake_tid + 1) % (1 << 31);
            let own = json!(self.fake_tid);
            if own != *tid {
                return self.encode(kind, &own, fields);
            }
        }
    }

    /// A message: type, tid, from (this node) and `fields`.
    fn encode(&self, kind: &str, tid: &Value, fields: Vec<(&str, Value)>) -> Vec<u8> {
        let mut message = Map::new();
        message.insert("type".to_owned(), json!(kind));
        message.insert("tid".to_owned(), tid.clone());
        message.insert("from".to_owned(), self.me.to_json());
        for (name, value) in fields {
            message.insert(name.to_owned(), value);
        }
        serde_json::to_vec(&Value::Object(message)).unwrap_or_default()
    }
}
