//! The DHT actor: a small Mainline DHT (BEP 5) the harness plays, each node on a loopback address
//! of its own at the case's shared port, so that a node under test bootstrapped from the first
//! has a network to find: every node answers `ping`, `find_node` and `get_peers` with the K nodes
//! of the actor closest to the target by XOR, gives tokens and takes announces, and answers
//! anything else with 204.
//!
//! ```yaml
//! actors:
//!   - name: dht
//!     host: 127.0.0.2                  # the first node's address (the runner binds it)
//!     bt-dht:
//!       nodes:
//!         - { id: "f800000000000000000000000000000000000000", host: 127.0.0.2 }
//!         - { id: "1000000000000000000000000000000000000000", host: 127.0.0.3, silent: true }
//! ```
//! A `silent` node receives and never answers (a node that left). What the node under test sends
//! is judged as it comes: a query BEP 5 calls malformed, or an announce with a token the actor
//! never gave that address, is a violation that fails the case.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use super::codec::{self, compact_addr, distance, Kind3, Krpc, K};
use crate::proto::bittorrent::bencode::{unhex, Build};
use crate::proto::common::actor::{ActorHandle, ActorKind, ActorLog, ActorSpec, Bound};
use crate::proto::{Direction, Level, Transport};
use crate::syntax::{Data, LoadCx, Node};

/// The `bt-dht:` actor vocabulary.
pub static ACTOR: ActorKind = ActorKind {
    key: "bt-dht",
    faults: &[("silent", "every node receives and never answers (a network that went away)")],
    parse,
    options: None,
};

/// One node of the actor.
#[derive(Debug, Clone)]
struct NodeSpec {
    id: [u8; 20],
    host: IpAddr,
    silent: bool,
}

/// A declared network of nodes.
#[derive(Debug)]
struct Network {
    nodes: Vec<NodeSpec>,
}

fn parse(node: &Node, cx: &mut LoadCx) -> Option<Arc<dyn ActorSpec>> {
    let help = "e.g. bt-dht: { nodes: [{ id: \"f800000000000000000000000000000000000000\", host: 127.0.0.2 }] }";
    let f = cx.fields(node, &["nodes"], "a DHT actor")?;
    let Some(Node {
        data: Data::Seq(items), ..
    }) = f.get("nodes")
    else {
        cx.err_help(node, "a DHT actor needs a list of nodes", help);
        return None;
    };
    let mut nodes: Vec<NodeSpec> = Vec::new();
    for item in items {
        let n = cx.fields(item, &["id", "host", "silent"], "a DHT node")?;
        let (Some(id), Some(host)) = (n.get("id"), n.get("host")) else {
            cx.err_help(item, "a DHT node needs an id and a host", help);
            return None;
        };
        let id_text = cx.string(id, "id")?;
        let Some(id_bytes) = unhex(&id_text).and_then(|b| <[u8; 20]>::try_from(b).ok()) else {
            cx.err_help(id, "a node id is 40 hex digits (20 bytes)", help);
            return None;
        };
        let Some(ip) = host.as_str().and_then(|h| h.parse::<IpAddr>().ok()) else {
            cx.err_help(
                host,
                "host must be an IP address",
                "e.g. host: 127.0.0.3: a loopback address of its own",
            );
            return None;
        };
        if nodes.iter().any(|o| o.host == ip) {
            cx.err_help(host, "two nodes on one address", "give each node a loopback address of its own");
            return None;
        }
        if nodes.iter().any(|o| o.id == id_bytes) {
            cx.err(id, "two nodes with one id");
            return None;
        }
        let silent = match n.get("silent") {
            Some(s) => cx.boolean(s, "silent")?,
            None => false,
        };
        nodes.push(NodeSpec {
            id: id_bytes,
            host: ip,
            silent,
        });
    }
    if nodes.is_empty() {
        cx.err_help(node, "a DHT actor needs at least one node", help);
        return None;
    }
    Some(Arc::new(Network { nodes }))
}

impl ActorSpec for Network {
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }

    fn well_known_port(&self) -> u16 {
        6881
    }

    fn start(&self, sockets: Bound, faults: &[String], log: Arc<dyn ActorLog>) -> ActorHandle {
        let silent = faults.iter().any(|f| f == "silent");
        let Some(first) = sockets.udp else {
            return ActorHandle::default();
        };
        let Ok(bound) = first.local_addr() else {
            return ActorHandle::default();
        };
        let mut first = Some(first);
        let everyone: Arc<Vec<(NodeSpec, SocketAddrV4)>> = Arc::new(
            self.nodes
                .iter()
                .filter_map(|n| match n.host {
                    IpAddr::V4(ip) => Some((n.clone(), SocketAddrV4::new(ip, bound.port()))),
                    IpAddr::V6(_) => None,
                })
                .collect(),
        );
        let mut tasks = Vec::new();
        for spec in &self.nodes {
            let addr = SocketAddr::new(spec.host, bound.port());
            // The runner bound the actor's own host; the other nodes bind theirs on its port.
            let mine = match first.as_ref().and_then(|s| s.local_addr().ok()) {
                Some(a) if a.ip() == spec.host => first.take(),
                _ => None,
            };
            let node = DhtNode {
                spec: NodeSpec {
                    silent: spec.silent || silent,
                    ..spec.clone()
                },
                everyone: everyone.clone(),
                log: log.clone(),
            };
            tasks.push(tokio::spawn(node.serve(addr, mine)));
        }
        ActorHandle::new(tasks)
    }
}

/// Bytes read of one datagram: more than any KRPC message needs.
const MAX_DATAGRAM: usize = 65536;

/// One running node.
struct DhtNode {
    spec: NodeSpec,
    everyone: Arc<Vec<(NodeSpec, SocketAddrV4)>>,
    log: Arc<dyn ActorLog>,
}

impl DhtNode {
    async fn serve(self, addr: SocketAddr, bound: Option<tokio::net::UdpSocket>) {
        let sock = match bound {
            Some(s) => s,
            None => match tokio::net::UdpSocket::bind(addr).await {
                Ok(s) => s,
                Err(e) => {
                    self.log.hint(0, &format!("the DHT node {addr} could not bind: {e}"));
                    return;
                }
            },
        };
        let mut peers: HashMap<SocketAddr, usize> = HashMap::new();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else { return };
            let conv = *peers.entry(from).or_insert_with(|| self.log.open(Transport::Udp, addr, from));
            self.log.data(conv, Direction::ClientToServer, &buf[..n]);
            let Some(out) = self.answer(&buf[..n], from, conv) else { continue };
            if self.spec.silent {
                continue;
            }
            if sock.send_to(&out, from).await.is_ok() {
                self.log.data(conv, Direction::ServerToClient, &out);
            }
        }
    }

    /// The token this node gives `ip`: its own, so an announce from elsewhere can be told.
    fn token(&self, ip: IpAddr) -> Vec<u8> {
        let mut t = b"tk".to_vec();
        match ip {
            IpAddr::V4(v4) => t.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => t.extend_from_slice(&v6.octets()),
        }
        t.extend_from_slice(&self.spec.id[..2]);
        t
    }

    fn closest(&self, target: &[u8; 20]) -> Vec<u8> {
        let mut others: Vec<&(NodeSpec, SocketAddrV4)> = self.everyone.iter().filter(|(n, _)| n.id != self.spec.id).collect();
        others.sort_by_key(|(n, _)| distance(&n.id, target));
        let mut out = Vec::new();
        for (n, a) in others.into_iter().take(K) {
            out.extend_from_slice(&n.id);
            out.extend_from_slice(&compact_addr(*a));
        }
        out
    }

    /// What to send back for `b` from `from`, judging it on the way.
    fn answer(&self, b: &[u8], from: SocketAddr, conv: usize) -> Option<Vec<u8>> {
        let (k, findings): (Krpc, _) = match codec::parse(b) {
            Ok(p) => p,
            Err(why) => {
                self.log.violation(
                    conv,
                    &format!(
                        "{} sent a datagram that is not KRPC ({why}): BEP 5, every message is a bencoded dictionary",
                        from
                    ),
                );
                return None;
            }
        };
        let t = k.t.clone()?;
        let error = |code: i64, text: &str| {
            Build::Dict(vec![
                (b"t".to_vec(), Build::Bytes(t.clone())),
                (b"y".to_vec(), Build::text("e")),
                (b"e".to_vec(), Build::List(vec![Build::Int(code), Build::text(text)])),
            ])
            .encode()
        };
        let Kind3::Query(method) = &k.kind else {
            // A node under test answers nothing the actor asked: the actor never queries.
            return None;
        };
        if let Some(f) = findings.iter().find(|f| f.level == Level::Must) {
            self.log.violation(conv, &format!("{from} sent a malformed query: {f}"));
            return Some(error(203, "Protocol Error"));
        }
        let twenty = |key: &str| k.bytes(key).and_then(|b| <[u8; 20]>::try_from(b).ok());
        let mut r: Vec<(Vec<u8>, Build)> = vec![(b"id".to_vec(), Build::Bytes(self.spec.id.to_vec()))];
        match method.as_deref() {
            Some("ping") => {}
            Some("find_node") => {
                let Some(target) = twenty("target") else {
                    self.log
                        .violation(conv, &format!("{from} sent find_node without a 20-byte target (BEP 5)"));
                    return Some(error(203, "find_node needs a 20-byte target"));
                };
                r.push((b"nodes".to_vec(), Build::Bytes(self.closest(&target))));
            }
            Some("get_peers") => {
                let Some(hash) = twenty("info_hash") else {
                    self.log
                        .violation(conv, &format!("{from} sent get_peers without a 20-byte info_hash (BEP 5)"));
                    return Some(error(203, "get_peers needs a 20-byte info_hash"));
                };
                r.push((b"token".to_vec(), Build::Bytes(self.token(from.ip()))));
                r.push((b"nodes".to_vec(), Build::Bytes(self.closest(&hash))));
            }
            Some("announce_peer") => {
                if k.bytes("token") != Some(&self.token(from.ip())[..]) {
                    self.log.violation(
                        conv,
                        &format!(
                            "{from} announced with a token this node never gave its address: BEP 5, the token of a get_peers response from the same node is sent back"
                        ),
                    );
                    return Some(error(203, "bad token"));
                }
            }
            _ => return Some(error(204, "Method Unknown")),
        }
        Some(
            Build::Dict(vec![
                (b"t".to_vec(), Build::Bytes(t)),
                (b"y".to_vec(), Build::text("r")),
                (b"r".to_vec(), Build::Dict(r)),
            ])
            .encode(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Codec, Frame};

    struct NoLog(std::sync::Mutex<Vec<String>>);

    impl ActorLog for NoLog {
        fn open(&self, _: Transport, _: SocketAddr, _: SocketAddr) -> usize {
            0
        }
        fn data(&self, _: usize, _: Direction, _: &[u8]) {}
        fn closed(&self, _: usize) {}
        fn violation(&self, _: usize, text: &str) {
            self.0.lock().unwrap().push(text.to_string());
        }
    }

    fn node(first: u8) -> NodeSpec {
        let mut id = [0u8; 20];
        id[0] = first;
        NodeSpec {
            id,
            host: IpAddr::from([127, 0, 0, first]),
            silent: false,
        }
    }

    fn network() -> (DhtNode, Arc<NoLog>) {
        let all: Vec<_> = [0xf8u8, 0x10, 0x20, 0x50]
            .iter()
            .map(|f| {
                let n = node(*f);
                let IpAddr::V4(ip) = n.host else { unreachable!() };
                (n, SocketAddrV4::new(ip, 6881))
            })
            .collect();
        let log = Arc::new(NoLog(Default::default()));
        let me = DhtNode {
            spec: all[0].0.clone(),
            everyone: Arc::new(all),
            log: log.clone(),
        };
        (me, log)
    }

    fn read(b: &[u8]) -> Krpc {
        let Frame::Message(m, _) = codec::KrpcCodec.decode(b, false).unwrap() else {
            unreachable!()
        };
        assert!(m.findings.is_empty(), "{:?}", m.findings);
        m.detail.unwrap().downcast_ref::<Krpc>().unwrap().clone()
    }

    #[test]
    fn answers_with_the_xor_closest_other_nodes_and_checks_tokens() {
        let (me, log) = network();
        let from: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let mut q = b"d1:ad2:id20:abcdefghij01234567896:target20:".to_vec();
        q.extend_from_slice(&[0x18; 20]);
        q.extend_from_slice(b"e1:q9:find_node1:t2:aa1:y1:qe");
        let r = read(&me.answer(&q, from, 0).unwrap());
        let ids: Vec<u8> = r.nodes().unwrap().iter().map(|n| n.id[0]).collect();
        assert_eq!(ids, vec![0x10, 0x20, 0x50], "closest first, never itself");
        let mut gp = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:".to_vec();
        gp.extend_from_slice(&[7; 20]);
        gp.extend_from_slice(b"e1:q9:get_peers1:t2:bb1:y1:qe");
        let r = read(&me.answer(&gp, from, 0).unwrap());
        let token = r.bytes("token").unwrap().to_vec();
        let announce = |tok: &[u8]| {
            let mut a = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:".to_vec();
            a.extend_from_slice(&[7; 20]);
            a.extend_from_slice(b"4:porti6001e5:token");
            a.extend_from_slice(format!("{}:", tok.len()).as_bytes());
            a.extend_from_slice(tok);
            a.extend_from_slice(b"e1:q13:announce_peer1:t2:cc1:y1:qe");
            a
        };
        assert_eq!(read(&me.answer(&announce(&token), from, 0).unwrap()).kind, Kind3::Response);
        let other: SocketAddr = "127.0.0.9:4000".parse().unwrap();
        assert_eq!(
            read(&me.answer(&announce(&token), other, 0).unwrap()).kind,
            Kind3::Error(Some(203), Some("bad token".into()))
        );
        assert!(log.0.lock().unwrap()[0].contains("never gave"));
        let r = read(
            &me.answer(b"d1:ad2:id20:abcdefghij0123456789e1:q3:foo1:t2:dd1:y1:qe", from, 0)
                .unwrap(),
        );
        assert_eq!(r.kind, Kind3::Error(Some(204), Some("Method Unknown".into())));
        assert!(me.answer(b"garbage", from, 0).is_none());
        assert!(log.0.lock().unwrap().iter().any(|v| v.contains("not KRPC")));
    }
}
