//! The ring actor: the rest of a circular DHT (`docs/dht-ring.md`) around a node under test,
//! each node on a loopback address of its own at the case's shared port.
//!
//! The actor's nodes are oracles: their predecessor, successors and shortcuts are always those of
//! the ring as it is (the actor's nodes that are up, and the node under test once its join was
//! answered), so whatever goes wrong is the node under test's. They route every request by the
//! lab's rules (among themselves at once, to the node under test by datagram), answer pings and
//! `successors`, welcome a joining node with its items, and can leave (go silent) or have a new
//! node join during a case:
//!
//! ```yaml
//! actors:
//!   - name: ring
//!     host: 127.0.0.2                      # the first node's address (the runner binds it)
//!     dht-ring:
//!       bits: 4
//!       nodes: [{ id: 1, host: 127.0.0.2 }, { id: 3, host: 127.0.0.3 }, ...]
//!       items: { 9: "nine", 13: "thirteen" }     # stored at their owners at the start
//! # a case's own events:
//! - serve: { actors: all, with: { ring: { leave: [{ id: 5, after: 1s }],
//!                                         join: [{ id: 13, host: 127.0.0.20, after: 500ms }] } } }
//! ```
//! A joining node sends its `join` through the ring (so it reaches the node under test when that
//! owns its id), checks the `welcome` it gets against the ring, and notifies its predecessor.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::codec::{self, between, NodeRef, RingMsg};
use crate::proto::common::actor::{ActorHandle, ActorKind, ActorLog, ActorOptions, ActorSpec, Bound};
use crate::proto::{Direction, Level, Transport};
use crate::syntax::{Data, LoadCx, Node};

/// The `dht-ring:` actor vocabulary.
pub static ACTOR: ActorKind = ActorKind {
    key: "dht-ring",
    faults: &[],
    parse,
    options: Some(parse_options),
};

/// A declared ring.
#[derive(Debug)]
struct Ring {
    bits: u32,
    nodes: Vec<(u64, IpAddr)>,
    items: Vec<(u64, String)>,
}

/// A case's events.
#[derive(Debug, Default)]
struct Events {
    leave: Vec<(u64, Duration)>,
    join: Vec<(u64, IpAddr, Duration)>,
}

fn id_in(node: &Node, bits: u32, cx: &mut LoadCx) -> Option<u64> {
    let id: u64 = cx.number(node, "an id")?;
    if id >= 1 << bits {
        cx.err_help(
            node,
            format!("{id} is outside the ring's 0..{}", (1u64 << bits) - 1),
            "ids are below 2^bits",
        );
        return None;
    }
    Some(id)
}

fn host(node: &Node, cx: &mut LoadCx) -> Option<IpAddr> {
    match node.as_str().and_then(|h| h.parse().ok()) {
        Some(ip) => Some(ip),
        None => {
            cx.err_help(
                node,
                "host must be an IP address",
                "e.g. host: 127.0.0.3: a loopback address of its own",
            );
            None
        }
    }
}

fn parse(node: &Node, cx: &mut LoadCx) -> Option<Arc<dyn ActorSpec>> {
    let help = "e.g. dht-ring: { bits: 4, nodes: [{ id: 1, host: 127.0.0.2 }, { id: 3, host: 127.0.0.3 }] }";
    let f = cx.fields(node, &["bits", "nodes", "items"], "a ring actor")?;
    let bits: u32 = match f.get("bits") {
        Some(b) => cx.number(b, "bits")?,
        None => 4,
    };
    if !(1..=16).contains(&bits) {
        cx.err_help(f.get("bits")?, "bits is 1 to 16", "the textbook's ring has bits: 4");
        return None;
    }
    let Some(Node { data: Data::Seq(list), .. }) = f.get("nodes") else {
        cx.err_help(node, "a ring actor needs its nodes", help);
        return None;
    };
    let mut nodes: Vec<(u64, IpAddr)> = Vec::new();
    for item in list {
        let n = cx.fields(item, &["id", "host"], "a ring node")?;
        let (Some(i), Some(h)) = (n.get("id"), n.get("host")) else {
            cx.err_help(item, "a ring node needs an id and a host", help);
            return None;
        };
        let (id, ip) = (id_in(i, bits, cx)?, host(h, cx)?);
        if nodes.iter().any(|(o, oip)| *o == id || *oip == ip) {
            cx.err(item, "two nodes with one id or one address");
            return None;
        }
        nodes.push((id, ip));
    }
    let mut items = Vec::new();
    if let Some(m) = f.get("items") {
        for (k, v) in cx.mapping(m, "items is a mapping of key to value", "e.g. items: { 13: \"thirteen\" }")? {
            items.push((id_in(k, bits, cx)?, cx.string(v, "a value")?));
        }
    }
    Some(Arc::new(Ring { bits, nodes, items }))
}

fn parse_options(node: &Node, cx: &mut LoadCx) -> Option<ActorOptions> {
    let f = cx.fields(node, &["leave", "join"], "the ring's events")?;
    let mut ev = Events::default();
    let list = |n: Option<&Node>| -> Vec<Node> {
        match n {
            Some(Node {
                data: Data::Seq(items), ..
            }) => items.clone(),
            Some(n) => vec![n.clone()],
            None => Vec::new(),
        }
    };
    for item in list(f.get("leave")) {
        let e = cx.fields(&item, &["id", "after"], "a leave")?;
        let id = cx.number(e.get("id")?, "id")?;
        let after = cx.optional(&e, "after", |cx, n| cx.duration(n, "after"))?.unwrap_or_default();
        ev.leave.push((id, after));
    }
    for item in list(f.get("join")) {
        let e = cx.fields(&item, &["id", "host", "after"], "a join")?;
        let (Some(i), Some(h)) = (e.get("id"), e.get("host")) else {
            cx.err_help(
                &item,
                "a join needs an id and a host",
                "e.g. join: [{ id: 13, host: 127.0.0.20, after: 500ms }]",
            );
            return None;
        };
        let id = cx.number(i, "id")?;
        let ip = host(h, cx)?;
        let after = cx.optional(&e, "after", |cx, n| cx.duration(n, "after"))?.unwrap_or_default();
        ev.join.push((id, ip, after));
    }
    Some(Arc::new(ev))
}

/// A node of the ring as the actor knows it.
#[derive(Debug, Clone)]
struct Member {
    addr: SocketAddr,
    /// One of the actor's own nodes (else the node under test).
    actor: bool,
}

/// The ring as it is: who is up, and the items the actor's nodes hold.
#[derive(Debug)]
struct State {
    size: u64,
    bits: u32,
    members: BTreeMap<u64, Member>,
    items: BTreeMap<u64, String>,
    /// Joins of the actor's nodes waiting for their welcome: id -> the ring's answer then.
    joining: HashMap<u64, Expected>,
}

/// What a welcome must say.
#[derive(Debug, Clone)]
struct Expected {
    predecessor: Option<u64>,
    successors: [u64; 2],
}

impl State {
    /// The first member at `k` or after it, clockwise.
    fn owner(&self, k: u64) -> Option<u64> {
        self.members
            .range(k..)
            .next()
            .or_else(|| self.members.iter().next())
            .map(|(id, _)| *id)
    }

    fn next(&self, n: u64) -> Option<u64> {
        self.owner((n + 1) % self.size)
    }

    fn prev(&self, n: u64) -> Option<u64> {
        self.members
            .range(..n)
            .next_back()
            .or_else(|| self.members.iter().next_back())
            .map(|(id, _)| *id)
    }

    fn node(&self, id: u64) -> Value {
        match self.members.get(&id) {
            Some(m) => json!({ "id": id, "addr": m.addr.to_string() }),
            None => Value::Null,
        }
    }

    /// The node `n`'s closest preceding node for `k`: of its successors and shortcuts.
    fn closest_preceding(&self, n: u64, k: u64) -> Option<u64> {
        let s1 = self.next(n)?;
        let s2 = self.next(s1)?;
        let mut candidates = vec![s1, s2];
        for i in 0..self.bits {
            candidates.extend(self.owner((n + (1 << i)) % self.size));
        }
        candidates
            .into_iter()
            .filter(|c| between(*c, n, k, false, self.size))
            .max_by_key(|c| (c + self.size - n) % self.size)
            .or(Some(s1))
    }
}

impl ActorSpec for Ring {
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }

    fn well_known_port(&self) -> u16 {
        7000
    }

    fn start(&self, sockets: Bound, faults: &[String], log: Arc<dyn ActorLog>) -> ActorHandle {
        self.start_with(sockets, faults, None, log)
    }

    fn start_with(&self, sockets: Bound, _faults: &[String], options: Option<&ActorOptions>, log: Arc<dyn ActorLog>) -> ActorHandle {
        let events = options.and_then(|o| o.clone().downcast::<Events>().ok());
        let Some(first) = sockets.udp else {
            return ActorHandle::default();
        };
        let Ok(bound) = first.local_addr() else {
            return ActorHandle::default();
        };
        let port = bound.port();
        let size = 1u64 << self.bits;
        let mut state = State {
            size,
            bits: self.bits,
            members: BTreeMap::new(),
            items: self.items.iter().cloned().collect(),
            joining: HashMap::new(),
        };
        for (id, ip) in &self.nodes {
            state.members.insert(
                *id,
                Member {
                    addr: SocketAddr::new(*ip, port),
                    actor: true,
                },
            );
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            log,
            silent: Mutex::new(Vec::new()),
            convs: Mutex::new(HashMap::new()),
        });
        let mut first = Some(first);
        let mut tasks = Vec::new();
        let mut nodes: Vec<(u64, IpAddr, Duration, bool)> = self.nodes.iter().map(|(id, ip)| (*id, *ip, Duration::ZERO, false)).collect();
        if let Some(ev) = &events {
            nodes.extend(ev.join.iter().map(|(id, ip, after)| (*id, *ip, *after, true)));
            for (id, after) in &ev.leave {
                let (shared, id, after) = (shared.clone(), *id, *after);
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    shared.leave(id);
                }));
            }
        }
        for (id, ip, after, joins) in nodes {
            let addr = SocketAddr::new(ip, port);
            let mine = match first.as_ref().and_then(|s| s.local_addr().ok()) {
                Some(a) if a.ip() == ip => first.take(),
                _ => None,
            };
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                let sock = match mine {
                    Some(s) => s,
                    None => match tokio::net::UdpSocket::bind(addr).await {
                        Ok(s) => s,
                        Err(e) => {
                            shared.log.hint(0, &format!("the ring's node {id} could not bind {addr}: {e}"));
                            return;
                        }
                    },
                };
                let sock = Arc::new(sock);
                if joins {
                    tokio::time::sleep(after).await;
                    shared.start_join(id, addr, &sock).await;
                }
                shared.serve(id, addr, sock).await;
            }));
        }
        ActorHandle::new(tasks)
    }
}

/// What every node of the actor shares.
struct Shared {
    state: Mutex<State>,
    log: Arc<dyn ActorLog>,
    /// Nodes that left: they read and answer nothing.
    silent: Mutex<Vec<u64>>,
    /// The conversation of each pair of addresses, opened by whichever side sent first (as a
    /// capture of the wire sees it).
    convs: Mutex<HashMap<(SocketAddr, SocketAddr), usize>>,
}

/// Datagrams to send: to whom, what.
type Out = Vec<(SocketAddr, Value)>;

impl Shared {
    /// The conversation between `local` and `peer`; a new one is the actor's when it sends first.
    fn conv(&self, local: SocketAddr, peer: SocketAddr, actor_first: bool) -> usize {
        let mut convs = self.convs.lock().unwrap_or_else(|e| e.into_inner());
        *convs.entry((local, peer)).or_insert_with(|| match actor_first {
            true => self.log.open_other(Transport::Udp, local, peer, "dht-ring", true),
            false => self.log.open(Transport::Udp, local, peer),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn leave(&self, id: u64) {
        self.silent.lock().unwrap_or_else(|e| e.into_inner()).push(id);
        let mut st = self.state();
        if let Some(p) = st.prev(id) {
            let size = st.size;
            st.items.retain(|k, _| !between(*k, p, id, true, size));
        }
        st.members.remove(&id);
    }

    fn is_silent(&self, id: u64) -> bool {
        self.silent.lock().unwrap_or_else(|e| e.into_inner()).contains(&id)
    }

    /// A node of the actor joins: its `join` goes to the first node the ring routes it to.
    async fn start_join(&self, id: u64, addr: SocketAddr, sock: &tokio::net::UdpSocket) {
        let out = {
            let mut st = self.state();
            let expected = Expected {
                predecessor: st.prev(id),
                successors: match st.owner(id) {
                    Some(s) => [s, st.next(s).unwrap_or(s)],
                    None => [id, id],
                },
            };
            st.joining.insert(id, expected);
            let msg = json!({ "type": "join", "tid": 900 + id, "from": { "id": id, "addr": addr.to_string() },
                              "key": id, "origin": addr.to_string(), "hops": 0 });
            // Through its future predecessor's routing, as any node would go through a node it knows.
            let via = st.prev(id).or_else(|| st.owner(id));
            match via.and_then(|v| st.members.get(&v).cloned().map(|m| (v, m))) {
                Some((v, m)) if m.actor => {
                    let mut msg = msg;
                    msg["from"] = st.node(v);
                    self.route(&mut st, v, msg)
                }
                Some((_, m)) => vec![(m.addr, msg)],
                None => Vec::new(),
            }
        };
        self.send_all(sock, addr, out).await;
    }

    async fn send_all(&self, sock: &tokio::net::UdpSocket, local: SocketAddr, out: Out) {
        for (to, msg) in out {
            let Ok(bytes) = serde_json::to_vec(&msg) else { continue };
            if sock.send_to(&bytes, to).await.is_ok() {
                let conv = self.conv(local, to, true);
                self.log.data(conv, Direction::ServerToClient, &bytes);
            }
        }
    }

    async fn serve(&self, id: u64, addr: SocketAddr, sock: Arc<tokio::net::UdpSocket>) {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else { return };
            if self.is_silent(id) {
                continue;
            }
            let conv = self.conv(addr, from, false);
            self.log.data(conv, Direction::ClientToServer, &buf[..n]);
            let out = self.receive(id, addr, &buf[..n], from, conv);
            self.send_all(&sock, addr, out).await;
        }
    }

    fn me(&self, st: &State, id: u64) -> Value {
        st.node(id)
    }

    /// What node `id` sends for a datagram from `from`.
    fn receive(&self, id: u64, addr: SocketAddr, b: &[u8], from: SocketAddr, conv: usize) -> Out {
        let (m, findings) = match codec::parse(b) {
            Ok(p) => p,
            Err(why) => {
                self.log
                    .violation(conv, &format!("{from} sent the ring a datagram that is not a lab message ({why})"));
                return Vec::new();
            }
        };
        if let Some(f) = findings.iter().find(|f| f.level == Level::Must) {
            self.log
                .violation(conv, &format!("{from} sent a message the lab does not allow: {f}"));
        }
        let Some(tid) = m.tid() else { return Vec::new() };
        let mut st = self.state();
        let me = self.me(&st, id);
        let reply = |to: SocketAddr, mut v: Value| -> Out {
            v["tid"] = json!(tid);
            v["from"] = me.clone();
            vec![(to, v)]
        };
        match m.kind() {
            "ping" => reply(from, json!({ "type": "pong" })),
            "successors" => {
                let (p, s1) = (st.prev(id), st.next(id));
                let s2 = s1.and_then(|s| st.next(s));
                let (p, s1, s2) = (p.map(|p| st.node(p)), s1.map(|s| st.node(s)), s2.map(|s| st.node(s)));
                reply(
                    from,
                    json!({ "type": "successors_reply", "predecessor": p, "successors": [s1, s2] }),
                )
            }
            "notify" => reply(from, json!({ "type": "ok" })),
            "find_successor" | "get" | "put" | "join" => {
                let mut fwd = Value::Object(m.obj.clone());
                fwd["from"] = me.clone();
                if !m.obj.contains_key("origin") || m.int("key").is_none() {
                    return reply(from, json!({ "type": "error", "error": "a routed request needs key and origin" }));
                }
                self.route(&mut st, id, fwd)
            }
            "welcome" => self.welcomed(&mut st, id, addr, &m, conv),
            "pong" | "ok" | "found" | "value" | "stored" | "successors_reply" | "error" => Vec::new(),
            other => reply(from, json!({ "type": "error", "error": format!("unknown type {other}") })),
        }
    }

    /// Node `n` handles a routed request `msg` (its `from` already `n`): answers it or passes it on.
    fn route(&self, st: &mut State, n: u64, mut msg: Value) -> Out {
        let kind = msg["type"].as_str().unwrap_or("").to_string();
        let key = msg["key"].as_u64().unwrap_or(0) % st.size;
        let hops = msg["hops"].as_u64().unwrap_or(0);
        let Some(origin) = msg["origin"].as_str().and_then(|o| o.parse::<SocketAddr>().ok()) else {
            return Vec::new();
        };
        let (Some(p), Some(s1)) = (st.prev(n), st.next(n)) else {
            return Vec::new();
        };
        let answer = |v: Value| -> Out {
            let mut v = v;
            v["tid"] = msg["tid"].clone();
            v["from"] = msg["from"].clone();
            vec![(origin, v)]
        };
        let owns = p == n || between(key, p, n, true, st.size);
        if owns {
            return match kind.as_str() {
                "find_successor" => answer(json!({ "type": "found", "key": key, "node": st.node(n), "hops": hops })),
                "get" => {
                    let v = st.items.get(&key).cloned();
                    answer(json!({ "type": "value", "key": key, "value": v, "hops": hops }))
                }
                "put" => {
                    if let Some(v) = msg["value"].as_str() {
                        st.items.insert(key, v.to_string());
                    }
                    answer(json!({ "type": "stored", "key": key, "hops": hops }))
                }
                _ => {
                    // A join for a key this node owns: welcome the newcomer with its items.
                    let size = st.size;
                    let items: Vec<Value> = st
                        .items
                        .iter()
                        .filter(|(k, _)| between(**k, p, key, true, size))
                        .map(|(k, v)| json!([k, v]))
                        .collect();
                    let s2 = st.next(n).unwrap_or(n);
                    let out = answer(
                        json!({ "type": "welcome", "predecessor": st.node(p), "successors": [st.node(n), st.node(s2)], "items": items }),
                    );
                    st.items.retain(|k, _| !between(*k, p, key, true, size));
                    let actor = st.members.values().any(|m| m.addr == origin && m.actor);
                    st.members.insert(key, Member { addr: origin, actor });
                    out
                }
            };
        }
        if between(key, n, s1, true, st.size) && kind == "find_successor" {
            return answer(json!({ "type": "found", "key": key, "node": st.node(s1), "hops": hops }));
        }
        let next = if between(key, n, s1, true, st.size) {
            s1
        } else {
            st.closest_preceding(n, key).unwrap_or(s1)
        };
        msg["hops"] = json!(hops + 1);
        match st.members.get(&next) {
            Some(m) if m.actor => {
                msg["from"] = st.node(next);
                self.route(st, next, msg)
            }
            Some(m) => vec![(m.addr, msg)],
            None => Vec::new(),
        }
    }

    /// A node of the actor that asked to join got its welcome: judge it, take its place.
    fn welcomed(&self, st: &mut State, id: u64, addr: SocketAddr, m: &RingMsg, conv: usize) -> Out {
        let Some(want) = st.joining.remove(&id) else { return Vec::new() };
        let got_pred = m.node("predecessor").and_then(|n| n.id);
        let got_succ: Vec<Option<u64>> = m.successors().unwrap_or_default().iter().map(|n: &NodeRef| n.id).collect();
        if got_pred != want.predecessor {
            self.log.violation(
                conv,
                &format!(
                    "the welcome to node {id} names predecessor {}, but the node before {id} is {} (docs/dht-ring.md, Joining: predecessor = P, the owner's predecessor)",
                    got_pred.map_or("null".into(), |p| p.to_string()),
                    want.predecessor.map_or("none".into(), |p| p.to_string())
                ),
            );
        }
        if got_succ != [Some(want.successors[0]), Some(want.successors[1])] {
            self.log.violation(
                conv,
                &format!(
                    "the welcome to node {id} names successors {got_succ:?}, not [{}, {}] (Joining: successors = [S, S's first successor])",
                    want.successors[0], want.successors[1]
                ),
            );
        }
        if let Some(items) = m.obj.get("items").and_then(Value::as_array) {
            for it in items {
                if let (Some(k), Some(v)) = (it.get(0).and_then(Value::as_u64), it.get(1).and_then(Value::as_str)) {
                    st.items.insert(k, v.to_string());
                }
            }
        }
        st.members.insert(id, Member { addr, actor: true });
        // As the lab's joining node does: tell the predecessor, when that is the node under test.
        match want.predecessor.and_then(|p| st.members.get(&p)) {
            Some(pm) if !pm.actor => vec![(
                pm.addr,
                json!({ "type": "notify", "tid": 950 + id, "from": st.node(id), "successor": st.node(id) }),
            )],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn textbook() -> State {
        let mut st = State {
            size: 16,
            bits: 4,
            members: BTreeMap::new(),
            items: BTreeMap::new(),
            joining: HashMap::new(),
        };
        for id in [1u64, 3, 4, 5, 8, 10, 12, 14] {
            let addr: SocketAddr = format!("127.0.0.1:{}", 7000 + id).parse().unwrap();
            st.members.insert(id, Member { addr, actor: true });
        }
        st
    }

    #[test]
    fn knows_the_textbooks_ring() {
        let st = textbook();
        assert_eq!(st.owner(13), Some(14));
        assert_eq!(st.owner(15), Some(1));
        assert_eq!(st.prev(4), Some(3));
        assert_eq!(st.next(14), Some(1));
        // Node 4's closest preceding node for key 1: its shortcut 12 (docs/dht-ring.md).
        assert_eq!(st.closest_preceding(4, 1), Some(12));
        assert_eq!(st.closest_preceding(12, 1), Some(14));
    }
}
