//! The node over real loopback sockets: clients, a fake bootstrap node and fake peers.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::bencode::{decode, Value};
use super::table::{compact, Contact, Id};
use super::NAME;
use crate::{start_server, Error, Options, RunningServer};

/// How long a test waits for any one datagram.
const WAIT: Duration = Duration::from_secs(3);
/// How long a test watches for a datagram that must not come.
const QUIET: Duration = Duration::from_millis(300);
/// The node's id in most tests.
const OWN_HEX: &str = "8000000000000000000000000000000000000001";

fn id_with(first: u8, fill: u8) -> Id {
    let mut id = [fill; 20];
    id[0] = first;
    id
}

fn own_id() -> Id {
    let mut id = [0u8; 20];
    id[0] = 0x80;
    id[19] = 1;
    id
}

async fn start(pairs: &[(&str, &str)]) -> RunningServer {
    let mut opts: Options = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    opts.entry("id".to_owned()).or_insert_with(|| OWN_HEX.to_owned());
    start_server(NAME, "127.0.0.1:0".parse().expect("address"), &opts)
        .await
        .expect("server starts")
}

fn query(t: &[u8], method: &str, args: Vec<(&str, Value)>) -> Vec<u8> {
    let args = Value::dict(args);
    Value::dict([
        ("t", Value::bytes(t)),
        ("y", Value::bytes("q")),
        ("q", Value::bytes(method)),
        ("a", args),
    ])
    .encode()
}

fn client_id() -> Value {
    Value::bytes(id_with(0x11, 0x22))
}

/// A client socket talking to one node.
struct Client {
    socket: UdpSocket,
    server: SocketAddr,
}

impl Client {
    async fn new(server: &RunningServer) -> Client {
        Client::at("127.0.0.1:0", server).await.expect("client binds")
    }

    async fn at(bind: &str, server: &RunningServer) -> std::io::Result<Client> {
        let socket = UdpSocket::bind(bind).await?;
        Ok(Client {
            socket,
            server: server.local_addr(),
        })
    }

    fn port(&self) -> u16 {
        self.socket.local_addr().expect("local address").port()
    }

    async fn send(&self, datagram: &[u8]) {
        self.socket.send_to(datagram, self.server).await.expect("send");
    }

    async fn receive(&self) -> Value {
        let mut buffer = vec![0u8; 65536];
        let (len, _) = timeout(WAIT, self.socket.recv_from(&mut buffer))
            .await
            .expect("an answer in time")
            .expect("receive");
        decode(&buffer[..len]).expect("the answer is bencode")
    }

    async fn ask(&self, datagram: &[u8]) -> Value {
        self.send(datagram).await;
        self.receive().await
    }

    async fn nothing_comes(&self) -> bool {
        let mut buffer = vec![0u8; 65536];
        timeout(QUIET, self.socket.recv_from(&mut buffer)).await.is_err()
    }

    async fn get_peers(&self, t: &[u8], info_hash: Id) -> Value {
        let args = vec![("id", client_id()), ("info_hash", Value::bytes(info_hash))];
        self.ask(&query(t, "get_peers", args)).await
    }

    async fn token(&self, info_hash: Id) -> Vec<u8> {
        let reply = self.get_peers(b"tk", info_hash).await;
        field(&reply, "token").expect("get_peers gives a token").to_vec()
    }

    async fn announce(&self, info_hash: Id, port: i64, token: &[u8], implied: Option<i64>) -> Value {
        let mut args = vec![
            ("id", client_id()),
            ("info_hash", Value::bytes(info_hash)),
            ("port", Value::Int(port)),
            ("token", Value::bytes(token)),
        ];
        if let Some(implied) = implied {
            args.push(("implied_port", Value::Int(implied)));
        }
        self.ask(&query(b"an", "announce_peer", args)).await
    }
}

/// The byte string at `key` of a response's `r`.
fn field<'a>(reply: &'a Value, key: &str) -> Option<&'a [u8]> {
    reply.get("r")?.get(key)?.as_bytes()
}

fn kind(reply: &Value) -> &[u8] {
    reply.get("y").and_then(Value::as_bytes).unwrap_or_default()
}

fn error_code(reply: &Value) -> Option<i64> {
    match reply.get("e")? {
        Value::List(items) => items.first()?.as_int(),
        _ => None,
    }
}

fn values(reply: &Value) -> Vec<Vec<u8>> {
    match reply.get("r").and_then(|r| r.get("values")) {
        Some(Value::List(items)) => items.iter().filter_map(Value::as_bytes).map(<[u8]>::to_vec).collect(),
        _ => Vec::new(),
    }
}

fn node_ids(reply: &Value) -> Vec<Id> {
    let nodes = field(reply, "nodes").expect("nodes");
    assert_eq!(nodes.len() % 26, 0, "whole compact node infos");
    Contact::read_compact(nodes).iter().map(|c| c.id).collect()
}

#[tokio::test]
async fn ping_echoes_a_binary_transaction_id() {
    let server = start(&[]).await;
    let client = Client::new(&server).await;
    let t = [0u8, 0xff, b'e', 0x80, 0];
    let mut message = BTreeMap::new();
    message.insert(b"t".to_vec(), Value::bytes(t));
    message.insert(b"y".to_vec(), Value::bytes("q"));
    message.insert(b"q".to_vec(), Value::bytes("ping"));
    message.insert(b"v".to_vec(), Value::bytes("UT01"));
    message.insert(b"a".to_vec(), Value::dict([("id", client_id()), ("extra", Value::Int(5))]));
    let reply = client.ask(&Value::Dict(message).encode()).await;
    assert_eq!(reply.get("t").and_then(Value::as_bytes), Some(&t[..]));
    assert_eq!(kind(&reply), b"r");
    assert_eq!(field(&reply, "id"), Some(&own_id()[..]));
    assert_eq!(reply.encode(), decode(&reply.encode()).expect("bencode").encode(), "canonical");
}

#[tokio::test]
async fn options_are_checked() {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let opts = |pairs: &[(&str, &str)]| -> Options { pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect() };
    let unknown = start_server(NAME, addr, &opts(&[("nope", "1")])).await;
    assert!(matches!(unknown, Err(Error::UnknownOption { .. })));
    for (key, bad) in [
        ("id", "abc"),
        ("id", &"g".repeat(40)),
        ("id", &format!("+f{}", "0".repeat(38))),
        ("bootstrap", "6881"),
        ("bootstrap", "[::1]:6881"),
        ("bootstrap", "127.0.0.1:0"),
    ] {
        let refused = start_server(NAME, addr, &opts(&[(key, bad)])).await;
        assert!(matches!(refused, Err(Error::BadOption { .. })), "{key}={bad}");
    }
    match start_server(NAME, addr, &opts(&[("fault", "nonsense")])).await {
        Err(Error::BadOption { why, .. }) => assert!(why.contains("no-token-check") && why.contains("new-id"), "{why}"),
        other => panic!("expected a bad fault, got {other:?}"),
    }
}

/// A fake node answering every query with its id and no nodes, reporting each query on `seen`.
fn fake_node(socket: UdpSocket, id: Id, seen: mpsc::UnboundedSender<Id>) {
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 2048];
        while let Ok((len, from)) = socket.recv_from(&mut buffer).await {
            let Some(message) = decode(&buffer[..len]) else { continue };
            let t = message.get("t").and_then(Value::as_bytes).unwrap_or_default().to_vec();
            let r = Value::dict([("id", Value::bytes(id)), ("nodes", Value::bytes(Vec::new()))]);
            let reply = Value::dict([("t", Value::bytes(t)), ("y", Value::bytes("r")), ("r", r)]);
            let _ = socket.send_to(&reply.encode(), from).await;
            let _ = seen.send(id);
        }
    });
}

/// Bootstraps a node (with `fault`) from a fake bootstrap node whose id is 0x7fff…ff and which
/// names eight live fake nodes 0x81… to 0x88… and one dead one; returns the node, once every
/// live fake has been asked and has answered, and the contacts of the fakes.
async fn bootstrapped(fault: &str) -> (RunningServer, Vec<Contact>) {
    let bootstrap = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let bootstrap_addr = bootstrap.local_addr().expect("address");
    let mut pairs = vec![("bootstrap", bootstrap_addr.to_string())];
    if !fault.is_empty() {
        pairs.push(("fault", fault.to_owned()));
    }
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = start(&pairs).await;

    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let mut fakes = Vec::new();
    for first in 0x81..=0x88u8 {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let Ok(SocketAddr::V4(addr)) = socket.local_addr() else {
            panic!("IPv4")
        };
        let id = id_with(first, 0);
        fakes.push(Contact { id, addr });
        fake_node(socket, id, seen_tx.clone());
    }
    // Never asked: the eight live ones are closer to the node's id.
    let dead = Contact {
        id: id_with(0xff, 0),
        addr: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9),
    };
    let mut listed = fakes.clone();
    listed.push(dead);

    let mut buffer = vec![0u8; 2048];
    let (len, from) = timeout(WAIT, bootstrap.recv_from(&mut buffer))
        .await
        .expect("the node queries its bootstrap node")
        .expect("receive");
    assert_eq!(from, server.local_addr());
    let first = decode(&buffer[..len]).expect("bencode");
    assert_eq!(first.get("q").and_then(Value::as_bytes), Some(&b"find_node"[..]));
    let args = first.get("a").expect("a");
    assert_eq!(args.get("id").and_then(Value::as_bytes), Some(&own_id()[..]));
    assert_eq!(
        args.get("target").and_then(Value::as_bytes),
        Some(&own_id()[..]),
        "it looks itself up"
    );
    let t = first.get("t").and_then(Value::as_bytes).expect("t").to_vec();
    let r = Value::dict([("id", Value::bytes(id_with(0x7f, 0xff))), ("nodes", Value::bytes(compact(&listed)))]);
    let reply = Value::dict([("t", Value::bytes(t)), ("y", Value::bytes("r")), ("r", r)]);
    bootstrap.send_to(&reply.encode(), from).await.expect("send");

    let mut asked = Vec::new();
    while asked.len() < fakes.len() {
        let id = timeout(WAIT, seen.recv())
            .await
            .expect("every live node is asked")
            .expect("fakes live");
        assert!(!asked.contains(&id), "each node is asked once");
        asked.push(id);
    }
    (server, fakes)
}

fn find_node_query(target: Id) -> Vec<u8> {
    query(b"fn", "find_node", vec![("id", client_id()), ("target", Value::bytes(target))])
}

#[tokio::test]
async fn find_node_after_bootstrap_returns_the_xor_closest() {
    let (server, fakes) = bootstrapped("").await;
    let client = Client::new(&server).await;
    let reply = client.ask(&find_node_query(id_with(0x80, 0))).await;
    let nodes = Contact::read_compact(field(&reply, "nodes").expect("nodes"));
    // The bootstrap node (0x7fff…) answered too, but is the farthest by XOR: nine good nodes, eight given.
    assert_eq!(nodes, fakes, "the eight XOR-closest, closest first, with their addresses");

    let reply = client.ask(&find_node_query(id_with(0x00, 0))).await;
    let ids = node_ids(&reply);
    assert_eq!(ids.len(), 8);
    assert_eq!(ids[0], id_with(0x7f, 0xff), "the bootstrap node is in the table");
    assert!(!ids.contains(&id_with(0xff, 0)), "a node that never answered is not");
    assert!(!ids.contains(&own_id()), "never itself");
}

#[tokio::test]
async fn numeric_distance_fault_picks_other_nodes() {
    let (server, _) = bootstrapped("numeric-distance").await;
    let client = Client::new(&server).await;
    let ids = node_ids(&client.ask(&find_node_query(id_with(0x80, 0))).await);
    assert!(ids.contains(&id_with(0x7f, 0xff)), "numerically next to 0x80…, by XOR the farthest");
    assert!(!ids.contains(&id_with(0x88, 0)));
}

#[tokio::test]
async fn too_many_nodes_fault_returns_all() {
    let (server, _) = bootstrapped("too-many-nodes").await;
    let client = Client::new(&server).await;
    assert_eq!(node_ids(&client.ask(&find_node_query(id_with(0x80, 0))).await).len(), 9);
}

#[tokio::test]
async fn an_unanswering_bootstrap_node_is_retried() {
    let bootstrap = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = bootstrap.local_addr().expect("address").to_string();
    let _server = start(&[("bootstrap", &addr)]).await;
    let mut buffer = vec![0u8; 2048];
    for _ in 0..2 {
        let (len, _) = timeout(WAIT, bootstrap.recv_from(&mut buffer))
            .await
            .expect("asked")
            .expect("receive");
        let message = decode(&buffer[..len]).expect("bencode");
        assert_eq!(message.get("q").and_then(Value::as_bytes), Some(&b"find_node"[..]));
    }

    let quiet = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = quiet.local_addr().expect("address").to_string();
    let _server = start(&[("bootstrap", &addr), ("fault", "no-bootstrap")]).await;
    assert!(
        timeout(QUIET, quiet.recv_from(&mut buffer)).await.is_err(),
        "no-bootstrap sends nothing"
    );
}

#[tokio::test]
async fn queriers_are_not_good_nodes() {
    for (fault, listed) in [("", false), ("adds-unverified", true)] {
        let server = start(&[("fault", fault)]).await;
        let client = Client::new(&server).await;
        client.ask(&query(b"p", "ping", vec![("id", client_id())])).await;
        let ids = node_ids(&client.ask(&find_node_query(id_with(0x11, 0x22))).await);
        assert_eq!(ids.contains(&id_with(0x11, 0x22)), listed, "fault {fault:?}");
    }
}

#[tokio::test]
async fn announce_then_get_peers_gives_values() {
    let server = start(&[]).await;
    let client = Client::new(&server).await;
    let hash = id_with(0x42, 0x42);
    let first = client.get_peers(b"g1", hash).await;
    assert_eq!(first.get("t").and_then(Value::as_bytes), Some(&b"g1"[..]));
    assert!(field(&first, "nodes").is_some(), "no peers yet: nodes");
    assert!(values(&first).is_empty());
    let token = field(&first, "token").expect("token").to_vec();

    for _ in 0..2 {
        let reply = client.announce(hash, 6881, &token, None).await;
        assert_eq!(kind(&reply), b"r", "{reply:?}");
        assert_eq!(field(&reply, "id"), Some(&own_id()[..]));
    }
    let reply = client.get_peers(b"g2", hash).await;
    assert_eq!(values(&reply), vec![vec![127, 0, 0, 1, 0x1a, 0xe1]], "one peer, announced twice");
    assert!(field(&reply, "token").is_some());
    assert!(values(&client.get_peers(b"g3", id_with(0x43, 0)).await).is_empty(), "per info-hash");

    let server = start(&[("fault", "no-values")]).await;
    let client = Client::new(&server).await;
    let token = client.token(hash).await;
    assert_eq!(kind(&client.announce(hash, 6881, &token, None).await), b"r");
    assert!(values(&client.get_peers(b"g4", hash).await).is_empty());

    let server = start(&[("fault", "no-token")]).await;
    let client = Client::new(&server).await;
    assert!(field(&client.get_peers(b"g5", hash).await, "token").is_none());
}

#[tokio::test]
async fn a_bad_token_is_refused() {
    for (fault, accepted) in [("", false), ("no-token-check", true)] {
        let server = start(&[("fault", fault)]).await;
        let client = Client::new(&server).await;
        let hash = id_with(0x42, 0);
        let reply = client.announce(hash, 6881, b"made-up!", None).await;
        if accepted {
            assert_eq!(kind(&reply), b"r");
        } else {
            assert_eq!(kind(&reply), b"e");
            assert_eq!(error_code(&reply), Some(203));
            assert!(values(&client.get_peers(b"g", hash).await).is_empty(), "nothing stored");
        }
    }
}

#[tokio::test]
async fn a_token_is_good_only_for_the_address_it_was_given_to() {
    for (fault, accepted) in [("", false), ("token-any-ip", true)] {
        let server = start(&[("fault", fault)]).await;
        let here = Client::new(&server).await;
        let Ok(there) = Client::at("127.0.0.2:0", &server).await else {
            eprintln!("skipped: this system cannot bind 127.0.0.2");
            return;
        };
        let hash = id_with(0x42, 1);
        let token = here.token(hash).await;
        let reply = there.announce(hash, 6881, &token, None).await;
        assert_eq!(kind(&reply), if accepted { &b"r"[..] } else { &b"e"[..] }, "fault {fault:?}");
        if !accepted {
            assert_eq!(error_code(&reply), Some(203));
            assert_eq!(kind(&here.announce(hash, 6881, &token, None).await), b"r", "its owner may");
        }
    }
}

#[tokio::test]
async fn implied_port_stores_the_source_port() {
    for (fault, implied) in [("", true), ("ignores-implied-port", false)] {
        let server = start(&[("fault", fault)]).await;
        let client = Client::new(&server).await;
        let hash = id_with(0x42, 2);
        let token = client.token(hash).await;
        assert_eq!(kind(&client.announce(hash, 1, &token, Some(1)).await), b"r");
        let port = if implied { client.port() } else { 1 };
        let mut expected = vec![127, 0, 0, 1];
        expected.extend_from_slice(&port.to_be_bytes());
        assert_eq!(values(&client.get_peers(b"g", hash).await), vec![expected], "fault {fault:?}");
    }
}

#[tokio::test]
async fn an_unknown_method_is_204() {
    let server = start(&[]).await;
    let client = Client::new(&server).await;
    let reply = client.ask(&query(b"u", "vote", vec![("id", client_id())])).await;
    assert_eq!(kind(&reply), b"e");
    assert_eq!(error_code(&reply), Some(204));
    assert_eq!(reply.get("t").and_then(Value::as_bytes), Some(&b"u"[..]));

    let server = start(&[("fault", "unknown-as-ping")]).await;
    let client = Client::new(&server).await;
    let reply = client.ask(&query(b"u", "vote", vec![("id", client_id())])).await;
    assert_eq!(kind(&reply), b"r");
}

fn malformed() -> Vec<Vec<u8>> {
    let hash = || Value::bytes(id_with(0x42, 0));
    let announce = |port: Option<Value>, token: bool| {
        let mut args = vec![("id", client_id()), ("info_hash", hash())];
        if let Some(port) = port {
            args.push(("port", port));
        }
        if token {
            args.push(("token", Value::bytes("x")));
        }
        query(b"m", "announce_peer", args)
    };
    vec![
        Value::dict([("t", Value::bytes("m")), ("y", Value::bytes("q")), ("q", Value::bytes("ping"))]).encode(),
        Value::dict([
            ("t", Value::bytes("m")),
            ("y", Value::bytes("q")),
            ("q", Value::bytes("ping")),
            ("a", Value::Int(1)),
        ])
        .encode(),
        Value::dict([
            ("t", Value::bytes("m")),
            ("y", Value::bytes("q")),
            ("a", Value::dict([("id", client_id())])),
        ])
        .encode(),
        Value::dict([
            ("t", Value::bytes("m")),
            ("y", Value::bytes("q")),
            ("q", Value::Int(1)),
            ("a", Value::dict([("id", client_id())])),
        ])
        .encode(),
        Value::dict([("t", Value::bytes("m")), ("y", Value::bytes("x"))]).encode(),
        Value::dict([("t", Value::bytes("m"))]).encode(),
        query(b"m", "ping", vec![]),
        query(b"m", "ping", vec![("id", Value::bytes([1u8; 19]))]),
        query(b"m", "find_node", vec![("id", client_id())]),
        query(b"m", "find_node", vec![("id", client_id()), ("target", Value::bytes([1u8; 21]))]),
        query(b"m", "get_peers", vec![("id", client_id()), ("info_hash", Value::Int(3))]),
        query(
            b"m",
            "announce_peer",
            vec![("id", client_id()), ("port", Value::Int(1)), ("token", Value::bytes("x"))],
        ),
        announce(None, true),
        announce(Some(Value::bytes("6881")), true),
        announce(Some(Value::Int(0)), true),
        announce(Some(Value::Int(65536)), true),
        announce(Some(Value::Int(-1)), true),
        announce(Some(Value::Int(6881)), false),
    ]
}

#[tokio::test]
async fn malformed_queries_are_203() {
    let server = start(&[]).await;
    let client = Client::new(&server).await;
    for message in malformed() {
        let reply = client.ask(&message).await;
        let shown = String::from_utf8_lossy(&message).into_owned();
        assert_eq!(kind(&reply), b"e", "{shown}");
        assert_eq!(error_code(&reply), Some(203), "{shown}");
        assert_eq!(reply.get("t").and_then(Value::as_bytes), Some(&b"m"[..]), "{shown}");
    }

    let server = start(&[("fault", "no-error-203")]).await;
    let client = Client::new(&server).await;
    for message in malformed() {
        client.send(&message).await;
    }
    let reply = client.ask(&query(b"after", "ping", vec![("id", client_id())])).await;
    assert_eq!(
        reply.get("t").and_then(Value::as_bytes),
        Some(&b"after"[..]),
        "the malformed ones were dropped"
    );
}

#[tokio::test]
async fn garbage_is_ignored_and_the_node_still_answers() {
    let server = start(&[]).await;
    let client = Client::new(&server).await;
    let ping = query(b"p", "ping", vec![("id", client_id())]);
    let mut oversized = ping.clone();
    oversized.truncate(oversized.len() - 1);
    oversized.extend_from_slice(format!("1:v1500:{}e", "x".repeat(1500)).as_bytes());
    let deep = format!(
        "d1:t1:d1:y1:q1:q4:ping1:ad2:id20:{}1:x{}{}ee",
        "a".repeat(20),
        "l".repeat(40),
        "e".repeat(40)
    );
    let garbage: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"hello".to_vec(),
        b"le".to_vec(),
        b"i5e".to_vec(),
        ping[..ping.len() - 1].to_vec(),
        [&ping[..], b"x"].concat(),
        oversized,
        deep.into_bytes(),
        Value::dict([("y", Value::bytes("q")), ("q", Value::bytes("ping"))]).encode(),
        Value::dict([("t", Value::Int(1)), ("y", Value::bytes("q")), ("q", Value::bytes("ping"))]).encode(),
        // Answers to queries the node never sent.
        Value::dict([
            ("t", Value::bytes("zz")),
            ("y", Value::bytes("r")),
            ("r", Value::dict([("id", client_id())])),
        ])
        .encode(),
        Value::dict([("t", Value::bytes("zz")), ("y", Value::bytes("e")), ("e", Value::Int(1))]).encode(),
        (0..=255u8).collect(),
    ];
    for datagram in &garbage {
        client.send(datagram).await;
    }
    for _ in 0..200 {
        client.send(&fastrand_bytes()).await;
    }
    let reply = client.ask(&query(b"after", "ping", vec![("id", client_id())])).await;
    assert_eq!(
        reply.get("t").and_then(Value::as_bytes),
        Some(&b"after"[..]),
        "nothing answered the garbage"
    );
    assert!(client.nothing_comes().await);
}

/// Random bytes that start like a dictionary, to reach deeper into the reader.
fn fastrand_bytes() -> Vec<u8> {
    let len = fastrand::usize(1..200);
    let mut bytes: Vec<u8> = (0..len).map(|_| fastrand::u8(..)).collect();
    bytes[0] = b'd';
    bytes
}

#[tokio::test]
async fn transaction_and_id_faults() {
    let server = start(&[("fault", "wrong-transaction")]).await;
    let client = Client::new(&server).await;
    let reply = client.ask(&query(b"tx", "ping", vec![("id", client_id())])).await;
    assert_ne!(reply.get("t").and_then(Value::as_bytes), Some(&b"tx"[..]));
    let reply = client.ask(&query(b"tx", "vote", vec![("id", client_id())])).await;
    assert_ne!(reply.get("t").and_then(Value::as_bytes), Some(&b"tx"[..]), "errors too");

    let server = start(&[("fault", "new-id")]).await;
    let client = Client::new(&server).await;
    let ping = query(b"p", "ping", vec![("id", client_id())]);
    let first = field(&client.ask(&ping).await, "id").expect("id").to_vec();
    let second = field(&client.ask(&ping).await, "id").expect("id").to_vec();
    assert_eq!(first.len(), 20);
    assert_ne!(first, second);
}
