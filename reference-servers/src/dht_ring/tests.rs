//! The node over real loopback sockets: the spec's test vectors against the textbook ring (the
//! other nodes are test sockets), rings of reference nodes that join and lose a node, and one
//! test per fault.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::UdpSocket;
use tokio::time::{timeout, Instant};

use super::NAME;
use crate::{start_server, Error, Options, RunningServer};

/// How long a test waits for any one datagram.
const WAIT: Duration = Duration::from_secs(3);
/// How long a test watches for a datagram that must not come.
const QUIET: Duration = Duration::from_millis(400);
/// Longer than a round of pings and successors (0.5 s), for timer traffic that must not come.
const ROUND_AND_SOME: Duration = Duration::from_millis(1200);
/// The textbook's ring (m = 4).
const TEXTBOOK: [u64; 8] = [1, 3, 4, 5, 8, 10, 12, 14];
/// How often a test asks nodes their successors while waiting for a ring to settle.
const POLL: Duration = Duration::from_millis(50);

fn options(pairs: &[(&str, &str)]) -> Options {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

async fn start(pairs: &[(&str, &str)]) -> RunningServer {
    start_server(NAME, "127.0.0.1:0".parse().expect("address"), &options(pairs))
        .await
        .expect("server starts")
}

/// A test socket: a client, or a node of the ring played by the test.
struct Sock {
    socket: UdpSocket,
}

impl Sock {
    async fn bind() -> Sock {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        Sock { socket }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("local address")
    }

    /// `{"id": null, "addr": ...}`: this socket as a client.
    fn client(&self) -> Value {
        json!({"id": null, "addr": self.addr().to_string()})
    }

    async fn send(&self, to: SocketAddr, message: &Value) {
        let bytes = serde_json::to_vec(message).expect("json");
        self.socket.send_to(&bytes, to).await.expect("send");
    }

    async fn send_raw(&self, to: SocketAddr, bytes: &[u8]) {
        self.socket.send_to(bytes, to).await.expect("send");
    }

    /// The next datagram (as JSON) within `wait`.
    async fn receive(&self, wait: Duration) -> Option<(Value, SocketAddr)> {
        let mut buffer = vec![0u8; 65536];
        let (len, from) = timeout(wait, self.socket.recv_from(&mut buffer)).await.ok()?.expect("receive");
        let message = serde_json::from_slice(&buffer[..len]).expect("the node sends JSON");
        Some((message, from))
    }

    /// The next datagram of type `kind` within `wait`, skipping the node's timer traffic (pings
    /// and successors) and the datagrams `skip` names.
    async fn receive_kind(&self, kind: &str, wait: Duration, skip: &[&str]) -> Option<Value> {
        let deadline = Instant::now() + wait;
        loop {
            let (message, _) = self.receive(deadline.saturating_duration_since(Instant::now())).await?;
            let got = message["type"].as_str().unwrap_or_default();
            if got == kind {
                return Some(message);
            }
            let timer = ["ping", "successors"].contains(&got);
            assert!(timer || skip.contains(&got), "expected {kind}, got {message}");
        }
    }

    /// Sends `message` to `to` and returns the answer carrying its tid.
    async fn ask(&self, to: SocketAddr, message: &Value) -> Value {
        self.send(to, message).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let (answer, _) = self
                .receive(deadline.saturating_duration_since(Instant::now()))
                .await
                .unwrap_or_else(|| panic!("an answer to {message}"));
            if answer["tid"] == message["tid"] {
                return answer;
            }
        }
    }
}

/// A node description's id.
fn id_of(node: &Value) -> Option<u64> {
    node["id"].as_u64()
}

/// A reference node of the textbook ring; the other seven nodes, the client and the other
/// identifiers (a joining node's, say) are test sockets.
struct Textbook {
    server: RunningServer,
    node: u64,
    /// A socket for every identifier but the reference node's.
    peers: BTreeMap<u64, Sock>,
    client: Sock,
}

impl Textbook {
    async fn start(node: u64, fault: &str) -> Textbook {
        let mut peers = BTreeMap::new();
        for id in (0..16).filter(|&id| id != node) {
            peers.insert(id, Sock::bind().await);
        }
        let ring: Vec<String> = TEXTBOOK
            .iter()
            .map(|id| match peers.get(id) {
                Some(sock) => format!("{id}@{}", sock.addr()),
                // Any address: the node takes its bound one.
                None => format!("{id}@127.0.0.1:1"),
            })
            .collect();
        let (id, ring) = (node.to_string(), ring.join(","));
        let server = start(&[("bits", "4"), ("id", &id), ("ring", &ring), ("fault", fault)]).await;
        Textbook {
            server,
            node,
            peers,
            client: Sock::bind().await,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The address of node `id` (the reference node or a test socket).
    fn addr_of(&self, id: u64) -> SocketAddr {
        match self.peers.get(&id) {
            Some(sock) if id != self.node => sock.addr(),
            _ => self.addr(),
        }
    }

    fn node(&self, id: u64) -> Value {
        json!({"id": id, "addr": self.addr_of(id).to_string()})
    }

    /// The socket listening at `addr`.
    fn socket_at(&self, addr: SocketAddr) -> &Sock {
        self.peers
            .values()
            .chain([&self.client])
            .find(|sock| sock.addr() == addr)
            .unwrap_or_else(|| panic!("no test socket at {addr}"))
    }

    /// The vectors' addresses (node i at 127.0.0.1:7000+i, the client at 127.0.0.1:9000)
    /// replaced by the ones in use.
    fn rewrite(&self, text: &str) -> String {
        let mut text = text.replace("\"127.0.0.1:9000\"", &format!("\"{}\"", self.client.addr()));
        for id in 0..16 {
            text = text.replace(&format!("\"127.0.0.1:{}\"", 7000 + id), &format!("\"{}\"", self.addr_of(id)));
        }
        text
    }

    /// A request from the client.
    fn request(&self, kind: &str, tid: u64, fields: Value) -> Value {
        let mut message = json!({"type": kind, "tid": tid, "from": self.client.client()});
        if let (Some(message), Some(fields)) = (message.as_object_mut(), fields.as_object()) {
            message.extend(fields.clone());
        }
        message
    }

    /// A routed request from the client, with the client as origin.
    fn routed(&self, kind: &str, tid: u64, key: u64) -> Value {
        let origin = self.client.addr().to_string();
        self.request(kind, tid, json!({"key": key, "origin": origin, "hops": 0}))
    }
}

/// The JSON lines between the vector markers of docs/dht-ring.md.
fn vectors() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/dht-ring.md");
    let doc = std::fs::read_to_string(path).expect("docs/dht-ring.md");
    let start = doc.find("<!-- vectors:begin").expect("the vectors' start");
    let end = doc.find("<!-- vectors:end -->").expect("the vectors' end");
    doc[start..end]
        .lines()
        .filter(|line| line.trim_start().starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("a vector is JSON"))
        .collect()
}

#[tokio::test]
async fn the_spec_vectors() {
    let vectors = vectors();
    assert!(vectors.len() >= 11, "every vector is read");
    for vector in vectors {
        let name = vector["vector"].as_str().expect("name").to_owned();
        let ring = Textbook::start(vector["node"].as_u64().expect("node"), "").await;
        let recv: Value = serde_json::from_str(&ring.rewrite(&vector["recv"].to_string())).expect("json");
        let sender = match id_of(&recv["from"]) {
            Some(id) => ring.peers.get(&id).expect("a ring node sends it"),
            None => &ring.client,
        };
        sender.send(ring.addr(), &recv).await;
        for send in vector["send"].as_array().expect("send") {
            let to: SocketAddr = ring.rewrite(&send["to"].to_string()).trim_matches('"').parse().expect("to");
            let expected: Value = serde_json::from_str(&ring.rewrite(&send["msg"].to_string())).expect("json");
            let kind = expected["type"].as_str().expect("type");
            let got = ring
                .socket_at(to)
                .receive_kind(kind, WAIT, &[])
                .await
                .unwrap_or_else(|| panic!("{name}: nothing sent to {to}"));
            if kind == "error" {
                assert_eq!(got["tid"], expected["tid"], "{name}");
                assert!(got["error"].is_string(), "{name}: {got}");
            } else {
                assert_eq!(got, expected, "{name}");
            }
        }
    }
}

#[tokio::test]
async fn options_are_checked() {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let unknown = start_server(NAME, addr, &options(&[("id", "1"), ("nope", "1")])).await;
    assert!(matches!(unknown, Err(Error::UnknownOption { .. })));
    for pairs in [
        &[("bits", "4")][..],
        &[("id", "16")],
        &[("id", "-1")],
        &[("id", "x")],
        &[("bits", "3"), ("id", "8")],
        &[("bits", "0"), ("id", "0")],
        &[("bits", "17"), ("id", "0")],
        &[("id", "1"), ("bootstrap", "7001")],
        &[("id", "1"), ("bootstrap", "localhost:7001")],
        &[("id", "1"), ("bootstrap", "127.0.0.1:0")],
        &[("id", "1"), ("ring", "3@127.0.0.1:7003")],
        &[("id", "1"), ("ring", "1@127.0.0.1:7001,1@127.0.0.1:7002")],
        &[("id", "1"), ("ring", "1@127.0.0.1:7001,16@127.0.0.1:7016")],
        &[("id", "1"), ("ring", "1:127.0.0.1:7001")],
        &[("id", "1"), ("ring", "1@127.0.0.1:7001"), ("bootstrap", "127.0.0.1:7003")],
    ] {
        let refused = start_server(NAME, addr, &options(pairs)).await;
        assert!(matches!(refused, Err(Error::BadOption { .. })), "{pairs:?}: {refused:?}");
    }
    match start_server(NAME, addr, &options(&[("id", "1"), ("fault", "nonsense")])).await {
        Err(Error::BadOption { why, .. }) => assert!(why.contains("no-hops") && why.contains("wrong-tid"), "{why}"),
        other => panic!("expected a bad fault, got {other:?}"),
    }
    let server = start(&[("bits", "16"), ("id", "65535")]).await;
    assert_ne!(server.local_addr().port(), 0, "the bound address is reported");
}

#[tokio::test]
async fn a_node_alone_owns_every_key() {
    let server = start(&[("id", "6")]).await;
    let client = Sock::bind().await;
    let origin = client.addr().to_string();
    let request = |kind: &str, tid: u64, key: u64| json!({"type": kind, "tid": tid, "from": client.client(), "key": key, "origin": origin, "hops": 0});
    let found = client.ask(server.local_addr(), &request("find_successor", 1, 2)).await;
    assert_eq!(found["type"], "found");
    assert_eq!(found["node"], json!({"id": 6, "addr": server.local_addr().to_string()}));
    let mut put = request("put", 2, 9);
    put["value"] = json!("Abbey Road");
    assert_eq!(client.ask(server.local_addr(), &put).await["type"], "stored");
    let value = client.ask(server.local_addr(), &request("get", 3, 9)).await;
    assert_eq!(
        (&value["value"], &value["key"], &value["hops"]),
        (&json!("Abbey Road"), &json!(9), &json!(0))
    );
    let ping = json!({"type": "successors", "tid": 4, "from": client.client()});
    let reply = client.ask(server.local_addr(), &ping).await;
    let me = json!({"id": 6, "addr": server.local_addr().to_string()});
    assert_eq!(reply["predecessor"], Value::Null);
    assert_eq!(reply["successors"], json!([me, me]));
}

/// Requests a node cannot read, each answered with an error carrying its tid.
fn unreadable(client: &Sock) -> Vec<Value> {
    let from = client.client();
    let origin = client.addr().to_string();
    let find = |extra: Value| {
        let mut message = json!({"type": "find_successor", "tid": 7, "from": from, "key": 3, "origin": origin, "hops": 0});
        if let (Some(message), Some(extra)) = (message.as_object_mut(), extra.as_object()) {
            for (name, value) in extra {
                if value.is_null() {
                    message.remove(name);
                } else {
                    message.insert(name.clone(), value.clone());
                }
            }
        }
        message
    };
    vec![
        find(json!({"key": null})),
        find(json!({"key": 16})),
        find(json!({"key": -1})),
        find(json!({"key": "3"})),
        find(json!({"key": 3.5})),
        find(json!({"origin": null})),
        find(json!({"origin": "nowhere"})),
        find(json!({"origin": 9000})),
        find(json!({"hops": null})),
        find(json!({"hops": -1})),
        find(json!({"from": null})),
        find(json!({"from": "me"})),
        find(json!({"from": {"id": 99, "addr": origin}})),
        find(json!({"type": "put"})),
        find(json!({"type": "put", "value": 5})),
        find(json!({"type": "put", "value": "x".repeat(513)})),
        find(json!({"type": "frobnicate"})),
        find(json!({"type": 5})),
        find(json!({"type": null})),
        json!({"type": "notify", "tid": 7, "from": from}),
        json!({"type": "notify", "tid": 7, "from": from, "successor": {"id": 99, "addr": origin}}),
        json!({"type": "notify", "tid": 7, "from": from, "predecessor": null}),
    ]
}

#[tokio::test]
async fn unreadable_requests_get_errors_and_garbage_is_dropped() {
    let server = start(&[("id", "6")]).await;
    let client = Sock::bind().await;
    for message in unreadable(&client) {
        let answer = client.ask(server.local_addr(), &message).await;
        assert_eq!(answer["type"], "error", "{message}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let mut value = "é".repeat(256);
    let mut put =
        json!({"type": "put", "tid": 8, "from": client.client(), "key": 3, "value": value, "origin": client.addr().to_string(), "hops": 0});
    assert_eq!(
        client.ask(server.local_addr(), &put).await["type"],
        "stored",
        "512 bytes is a value"
    );
    value.push('x');
    put["value"] = json!(value);
    assert_eq!(client.ask(server.local_addr(), &put).await["type"], "error", "513 is not");

    let garbage: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"hello".to_vec(),
        b"[1, 2]".to_vec(),
        b"\"ping\"".to_vec(),
        b"{\"type\": \"ping\"".to_vec(),
        br#"{"type": "ping", "from": {"id": null, "addr": "127.0.0.1:9"}}"#.to_vec(),
        br#"{"type": "ping", "tid": 1.5}"#.to_vec(),
        br#"{"type": "ping", "tid": "1"}"#.to_vec(),
        br#"{"type": "ping", "tid": null}"#.to_vec(),
        br#"{"type": "frobnicate", "tid": 1e3}"#.to_vec(),
        // Answers to requests the node never sent.
        br#"{"type": "pong", "tid": 5, "from": {"id": 3, "addr": "127.0.0.1:9"}}"#.to_vec(),
        br#"{"type": "welcome", "tid": 5, "predecessor": null, "successors": [], "items": []}"#.to_vec(),
        (0..=255u8).collect(),
    ];
    for datagram in &garbage {
        client.send_raw(server.local_addr(), datagram).await;
    }
    let ping = json!({"type": "ping", "tid": 99, "from": client.client()});
    client.send(server.local_addr(), &ping).await;
    let (answer, _) = client.receive(WAIT).await.expect("the ping is answered");
    assert_eq!(
        (&answer["type"], &answer["tid"]),
        (&json!("pong"), &json!(99)),
        "nothing answered the garbage"
    );
    assert!(client.receive(QUIET).await.is_none());
}

#[tokio::test]
async fn a_welcome_is_kept_within_1400_bytes_and_the_rest_follows_as_puts() {
    let server = start(&[("id", "1")]).await;
    let client = Sock::bind().await;
    let origin = client.addr().to_string();
    for key in 2..=5u64 {
        let put =
            json!({"type": "put", "tid": key, "from": client.client(), "key": key, "value": "v".repeat(500), "origin": origin, "hops": 0});
        assert_eq!(client.ask(server.local_addr(), &put).await["type"], "stored");
    }
    let join = json!({"type": "join", "tid": 10, "from": client.client(), "key": 5, "origin": origin, "hops": 0});
    client.send(server.local_addr(), &join).await;
    let mut buffer = vec![0u8; 65536];
    let (len, _) = timeout(WAIT, client.socket.recv_from(&mut buffer))
        .await
        .expect("a welcome")
        .expect("receive");
    assert!(len <= 1400, "a welcome of {len} bytes");
    let welcome: Value = serde_json::from_slice(&buffer[..len]).expect("json");
    assert_eq!(welcome["type"], "welcome");
    let me = json!({"id": 1, "addr": server.local_addr().to_string()});
    assert_eq!(welcome["predecessor"], me, "a node alone is the joining node's predecessor");
    assert_eq!(welcome["successors"], json!([me, me]));
    let mut keys: Vec<u64> = welcome["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item[0].as_u64().expect("key"))
        .collect();
    assert!(!keys.is_empty());
    while keys.len() < 4 {
        let put = client
            .receive_kind("put", WAIT, &["find_successor"])
            .await
            .expect("the other items as puts");
        assert_eq!(put["origin"], json!(server.local_addr().to_string()));
        keys.push(put["key"].as_u64().expect("key"));
    }
    keys.sort_unstable();
    assert_eq!(keys, [2, 3, 4, 5]);
}

#[tokio::test]
async fn a_join_is_retried_until_a_welcome_comes() {
    let bootstrap = Sock::bind().await;
    let addr = bootstrap.addr().to_string();
    let _server = start(&[("id", "3"), ("bootstrap", &addr)]).await;
    let mut tids = Vec::new();
    for _ in 0..2 {
        let join = bootstrap.receive_kind("join", WAIT, &[]).await.expect("a join");
        assert_eq!((&join["key"], &join["hops"]), (&json!(3), &json!(0)));
        tids.push(join["tid"].clone());
    }
    assert_ne!(tids[0], tids[1]);
}

/// The predecessor and successors' ids a node reports.
async fn neighbours(client: &Sock, node: SocketAddr, tid: u64) -> (Option<u64>, Vec<u64>) {
    let ask = json!({"type": "successors", "tid": tid, "from": client.client()});
    let reply = client.ask(node, &ask).await;
    assert_eq!(reply["type"], "successors_reply");
    let successors = reply["successors"].as_array().expect("successors");
    (id_of(&reply["predecessor"]), successors.iter().filter_map(id_of).collect())
}

/// Waits (at most `wait`) until every node reports the neighbours expected of it.
async fn settle(client: &Sock, nodes: &[(u64, SocketAddr)], expected: &[(u64, [u64; 2])], wait: Duration) {
    let deadline = Instant::now() + wait;
    let mut poll = tokio::time::interval(POLL);
    let mut tid = 1000;
    loop {
        let mut all = true;
        let mut seen = Vec::new();
        for (&(id, addr), &(predecessor, successors)) in nodes.iter().zip(expected) {
            tid += 1;
            let got = neighbours(client, addr, tid).await;
            all &= got == (Some(predecessor), successors.to_vec());
            seen.push((id, got));
        }
        if all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not settled in {wait:?}: {seen:?}, expected {expected:?}"
        );
        poll.tick().await;
    }
}

/// A ring of reference nodes (m = 4) built by joins: the first alone, each next one joining
/// through the one before it; settled after each join.
async fn joined_ring(ids: &[u64]) -> Vec<(u64, RunningServer)> {
    let client = Sock::bind().await;
    let mut nodes: Vec<(u64, RunningServer)> = Vec::new();
    for &id in ids {
        let id_text = id.to_string();
        let server = match nodes.last() {
            None => start(&[("id", &id_text)]).await,
            Some((_, through)) => {
                let bootstrap = through.local_addr().to_string();
                start(&[("id", &id_text), ("bootstrap", &bootstrap)]).await
            }
        };
        nodes.push((id, server));
        if nodes.len() > 1 {
            let addrs: Vec<(u64, SocketAddr)> = nodes.iter().map(|(id, s)| (*id, s.local_addr())).collect();
            settle(&client, &addrs, &expected_neighbours(&addrs), Duration::from_secs(3)).await;
        }
    }
    nodes
}

/// Each node's predecessor and two successors in a ring of `nodes`.
fn expected_neighbours(nodes: &[(u64, SocketAddr)]) -> Vec<(u64, [u64; 2])> {
    let mut ids: Vec<u64> = nodes.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    let len = ids.len();
    let at = |id: u64| ids.iter().position(|&i| i == id).expect("a node");
    nodes
        .iter()
        .map(|&(id, _)| {
            let i = at(id);
            (ids[(i + len - 1) % len], [ids[(i + 1) % len], ids[(i + 2) % len]])
        })
        .collect()
}

/// The owner of `key` among `ids`.
fn owner(ids: &[u64], key: u64) -> u64 {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.iter().copied().find(|&id| id >= key).unwrap_or(sorted[0])
}

#[tokio::test]
async fn a_fresh_node_joins_a_ring_of_three() {
    let mut nodes = joined_ring(&[1, 5, 10]).await;
    let client = Sock::bind().await;
    let origin = client.addr().to_string();
    let first = nodes[0].1.local_addr();
    for (tid, key) in [(1u64, 11u64), (2, 12), (3, 2)] {
        let put = json!({"type": "put", "tid": tid, "from": client.client(), "key": key, "value": format!("item {key}"), "origin": origin, "hops": 0});
        assert_eq!(client.ask(first, &put).await["type"], "stored");
    }

    // 12 joins through 5: the join goes 5 -> 10 -> 1, 1 welcomes it with 11 and 12.
    let bootstrap = nodes[1].1.local_addr().to_string();
    nodes.push((12, start(&[("id", "12"), ("bootstrap", &bootstrap)]).await));
    let addrs: Vec<(u64, SocketAddr)> = nodes.iter().map(|(id, s)| (*id, s.local_addr())).collect();
    settle(&client, &addrs, &expected_neighbours(&addrs), Duration::from_secs(3)).await;

    let newcomer = nodes[3].1.local_addr();
    for (tid, key) in [(4u64, 11u64), (5, 12)] {
        let get = json!({"type": "get", "tid": tid, "from": client.client(), "key": key, "origin": origin, "hops": 0});
        let value = client.ask(newcomer, &get).await;
        assert_eq!(
            (&value["value"], &value["hops"]),
            (&json!(format!("item {key}")), &json!(0)),
            "handed over"
        );
    }
    let get = json!({"type": "get", "tid": 6, "from": client.client(), "key": 11, "origin": origin, "hops": 0});
    assert_eq!(client.ask(first, &get).await["value"], json!("item 11"), "found from elsewhere");

    // Every node finds every key's owner, straight to the client.
    let ids: Vec<u64> = nodes.iter().map(|(id, _)| *id).collect();
    let mut tid = 100;
    for (_, addr) in &addrs {
        for key in 0..16 {
            tid += 1;
            let find = json!({"type": "find_successor", "tid": tid, "from": client.client(), "key": key, "origin": origin, "hops": 0});
            let found = client.ask(*addr, &find).await;
            assert_eq!(id_of(&found["node"]), Some(owner(&ids, key)), "key {key} from {addr}: {found}");
            assert!(found["hops"].as_u64().is_some_and(|hops| hops < 4), "{found}");
        }
    }
}

#[tokio::test]
async fn a_departure_is_repaired_by_the_predecessor() {
    let mut nodes = joined_ring(&[1, 5, 10, 12]).await;
    let client = Sock::bind().await;
    let (_, gone) = nodes.remove(1);
    gone.shutdown().await;
    let left = Instant::now();
    let addr = |id: u64| nodes.iter().find(|(i, _)| *i == id).map(|(_, s)| s.local_addr()).expect("a node");
    settle(&client, &[(1, addr(1))], &[(12, [10, 12])], Duration::from_secs(3)).await;
    assert!(left.elapsed() < Duration::from_secs(3));
    // Then the rest: 10 takes 1 as its predecessor, 12 finds 10 its second successor.
    let addrs: Vec<(u64, SocketAddr)> = nodes.iter().map(|(id, s)| (*id, s.local_addr())).collect();
    settle(&client, &addrs, &expected_neighbours(&addrs), Duration::from_secs(5)).await;
    let find =
        json!({"type": "find_successor", "tid": 1, "from": client.client(), "key": 3, "origin": client.addr().to_string(), "hops": 0});
    assert_eq!(id_of(&client.ask(addr(12), &find).await["node"]), Some(10), "5's keys are 10's");
}

// One test per fault.

#[tokio::test]
async fn fault_forwards_to_predecessor() {
    let ring = Textbook::start(4, "forwards-to-predecessor").await;
    ring.client.send(ring.addr(), &ring.routed("find_successor", 1, 1)).await;
    let forwarded = ring.peers[&3].receive_kind("find_successor", WAIT, &[]).await.expect("to 3");
    assert_eq!(forwarded["from"], ring.node(4));
}

#[tokio::test]
async fn fault_no_second_successor() {
    let ring = Textbook::start(4, "no-second-successor").await;
    let reply = ring.client.ask(ring.addr(), &ring.request("successors", 1, json!({}))).await;
    assert_eq!(reply["successors"], json!([ring.node(5), ring.node(5)]));
}

#[tokio::test]
async fn fault_off_by_one_owner() {
    let ring = Textbook::start(4, "off-by-one-owner").await;
    let found = ring.client.ask(ring.addr(), &ring.routed("find_successor", 1, 4)).await;
    assert_eq!(found["node"], ring.node(5), "key 4 given to 5");
}

#[tokio::test]
async fn fault_ignores_shortcuts() {
    let ring = Textbook::start(4, "ignores-shortcuts").await;
    ring.client.send(ring.addr(), &ring.routed("find_successor", 1, 1)).await;
    let forwarded = ring.peers[&5].receive_kind("find_successor", WAIT, &[]).await.expect("to 5");
    assert_eq!(forwarded["hops"], 1);
    assert!(ring.peers[&12].receive_kind("find_successor", QUIET, &[]).await.is_none());
}

#[tokio::test]
async fn fault_no_items_handoff() {
    for (fault, items) in [("", json!([[3, "x"]])), ("no-items-handoff", json!([]))] {
        let server = start(&[("id", "1"), ("fault", fault)]).await;
        let client = Sock::bind().await;
        let origin = client.addr().to_string();
        let put = json!({"type": "put", "tid": 1, "from": client.client(), "key": 3, "value": "x", "origin": origin, "hops": 0});
        assert_eq!(client.ask(server.local_addr(), &put).await["type"], "stored");
        let join = json!({"type": "join", "tid": 2, "from": client.client(), "key": 5, "origin": origin, "hops": 0});
        let welcome = client.ask(server.local_addr(), &join).await;
        assert_eq!(welcome["items"], items, "fault {fault:?}");
    }
}

#[tokio::test]
async fn fault_no_notify() {
    for (fault, notified) in [("", true), ("no-notify", false)] {
        let (bootstrap, predecessor, second) = (Sock::bind().await, Sock::bind().await, Sock::bind().await);
        let addr = bootstrap.addr().to_string();
        let server = start(&[("id", "3"), ("bootstrap", &addr), ("fault", fault)]).await;
        let join = bootstrap.receive_kind("join", WAIT, &[]).await.expect("a join");
        let welcome = json!({
            "type": "welcome", "tid": join["tid"], "from": {"id": 5, "addr": addr},
            "predecessor": {"id": 1, "addr": predecessor.addr().to_string()},
            "successors": [{"id": 5, "addr": addr}, {"id": 8, "addr": second.addr().to_string()}],
            "items": [],
        });
        bootstrap.send(server.local_addr(), &welcome).await;
        let wait = if notified { WAIT } else { ROUND_AND_SOME };
        let notify = predecessor.receive_kind("notify", wait, &[]).await;
        assert_eq!(notify.is_some(), notified, "fault {fault:?}");
        if let Some(notify) = notify {
            assert_eq!(notify["successor"], json!({"id": 3, "addr": server.local_addr().to_string()}));
        }
    }
}

#[tokio::test]
async fn fault_answers_forwarder() {
    for (fault, to_client) in [("", true), ("answers-forwarder", false)] {
        let ring = Textbook::start(4, fault).await;
        let origin = ring.client.addr().to_string();
        let find = json!({"type": "find_successor", "tid": 1, "from": ring.node(3), "key": 4, "origin": origin, "hops": 1});
        ring.peers[&3].send(ring.addr(), &find).await;
        let at = if to_client { &ring.client } else { &ring.peers[&3] };
        let found = at.receive_kind("found", WAIT, &[]).await.expect("found");
        assert_eq!(found["node"], ring.node(4), "fault {fault:?}");
    }
}

#[tokio::test]
async fn fault_no_hops() {
    let ring = Textbook::start(8, "no-hops").await;
    let origin = ring.client.addr().to_string();
    let get = json!({"type": "get", "tid": 6, "from": ring.node(5), "key": 9, "origin": origin, "hops": 1});
    ring.peers[&5].send(ring.addr(), &get).await;
    let forwarded = ring.peers[&10].receive_kind("get", WAIT, &[]).await.expect("to 10");
    assert_eq!(forwarded["hops"], 1);
}

#[tokio::test]
async fn fault_never_pings() {
    for (fault, pinged) in [("", true), ("never-pings", false)] {
        let ring = Textbook::start(4, fault).await;
        let ping = ring.peers[&5].receive_kind("ping", ROUND_AND_SOME, &["successors"]).await;
        assert_eq!(ping.is_some(), pinged, "fault {fault:?}");
    }
}

#[tokio::test]
async fn fault_no_error() {
    let ring = Textbook::start(4, "no-error").await;
    ring.client.send(ring.addr(), &ring.request("frobnicate", 1, json!({}))).await;
    ring.client.send(ring.addr(), &ring.routed("get", 2, 16)).await;
    let pong = ring.client.ask(ring.addr(), &ring.request("ping", 3, json!({}))).await;
    assert_eq!(pong["type"], "pong");
    assert!(ring.client.receive(QUIET).await.is_none(), "no errors");
}

#[tokio::test]
async fn fault_wrong_tid() {
    let ring = Textbook::start(4, "wrong-tid").await;
    ring.client.send(ring.addr(), &ring.request("ping", 1, json!({}))).await;
    let (pong, _) = ring.client.receive(WAIT).await.expect("a pong");
    assert_eq!(pong["type"], "pong");
    assert_ne!(pong["tid"], 1);
}

#[tokio::test]
async fn fault_no_stabilize() {
    for (fault, asked) in [("", true), ("no-stabilize", false)] {
        let ring = Textbook::start(4, fault).await;
        let successors = ring.peers[&5].receive_kind("successors", ROUND_AND_SOME, &["ping"]).await;
        assert_eq!(successors.is_some(), asked, "fault {fault:?}");
    }
}
