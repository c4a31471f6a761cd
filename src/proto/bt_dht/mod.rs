//! BitTorrent's DHT (BEP 5): KRPC, bencoded queries and answers over UDP between Kademlia nodes.
//! The harness queries a node under test from its own sockets and plays the rest of the network
//! as an actor (`actor.rs`), so the node has peers to bootstrap from and to learn. Bencode comes
//! from `bittorrent`.

pub mod actor;
pub mod codec;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, Direction, Exchange, Finding, Message, Protocol, Steps, Transport};
pub use codec::{Kind3, Krpc, KrpcCodec};

/// The `bt-dht` protocol.
pub struct BtDht;

impl Protocol for BtDht {
    fn name(&self) -> &'static str {
        "bt-dht"
    }
    fn transport(&self) -> Transport {
        Transport::Udp
    }
    fn no_tls(&self) -> Option<&'static str> {
        Some("the DHT runs over UDP, and BEP 5 has no TLS")
    }
    fn codec(&self, _dir: Direction) -> Box<dyn Codec> {
        Box::new(KrpcCodec)
    }
    fn steps(&self) -> &'static Steps {
        &steps::STEPS
    }
    fn actor(&self) -> Option<&'static crate::proto::actor::ActorKind> {
        Some(&actor::ACTOR)
    }
    /// A node under test picks its own transaction ids and looks nodes up as its timing goes:
    /// what it asked the actor differs from run to run.
    fn actor_snapshot_skips(&self, _text: &str) -> bool {
        true
    }
    /// A query a case asks again (`retry`, while the node is still learning) shows once, with
    /// the answer that held: how many times it was asked is the node's timing, not its verdict.
    fn snapshot_merge(&self, first: &str, next: &str) -> Option<String> {
        let answer_t = |s: &str| {
            let rest = s.strip_prefix("response ").or_else(|| s.strip_prefix("error "))?;
            let t = rest.split(' ').next()?;
            t.starts_with("t=").then(|| (s.starts_with('r'), t.to_string()))
        };
        if first.starts_with("query ") && first == next {
            return Some(next.to_string());
        }
        match (answer_t(first), answer_t(next)) {
            (Some(a), Some(b)) if a == b => Some(next.to_string()),
            _ => None,
        }
    }
    /// Which nodes a node under test names depends on how far its bootstrap had gone when it
    /// answered (the cases that care check them live): snapshots show that it named nodes.
    fn snapshot_line(&self, text: &str) -> String {
        let Some(a) = text.find(" nodes=[") else {
            return text.to_string();
        };
        let end = text[a..].find(']').map_or(text.len(), |e| a + e + 1);
        format!("{} nodes=[…]{}", &text[..a], &text[end..])
    }
    /// A case sends one query twice only to ask again (`retry`): each has its own transaction id.
    fn snapshot_dedup_sent(&self) -> bool {
        true
    }
    fn conversation_rules(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        rules::conversation(conv)
    }
    /// What was asked or answered, in a few words: the method, or the kind of answer.
    fn label(&self, m: &Message) -> String {
        let Some(k) = m.detail.as_ref().and_then(|d| d.downcast_ref::<Krpc>()) else {
            return m.summary.lines().next().unwrap_or_default().to_string();
        };
        match &k.kind {
            Kind3::Query(q) => q.clone().unwrap_or_else(|| "query".into()),
            Kind3::Response => match (k.nodes(), k.values()) {
                (_, Some(v)) => format!("response: {} peers", v.len()),
                (Some(n), None) => format!("response: {} nodes", n.len()),
                _ => "response".into(),
            },
            Kind3::Error(c, _) => format!("error {}", c.map_or("?".into(), |c| c.to_string())),
            Kind3::Other(_) => "message".into(),
        }
    }
    /// A bencoded dictionary whose keys include `y` with one of KRPC's three types: `d1:` and a
    /// key, as every KRPC message starts with the sorted keys `a`, `e`, `q`, `r` or `t`.
    fn detect(&self, transport: Transport, client: &[u8], server: &[u8]) -> bool {
        let first = if client.is_empty() { server } else { client };
        transport == Transport::Udp
            && first.starts_with(b"d1:")
            && [&b"1:y1:q"[..], b"1:y1:r", b"1:y1:e"]
                .iter()
                .any(|y| first.windows(6).any(|w| w == *y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_show_a_query_asked_again_once_with_the_answer_that_held() {
        let q = "query find_node t=\"fn\" id=00 target=80";
        assert_eq!(BtDht.snapshot_merge(q, q).as_deref(), Some(q));
        let (early, late) = ("response t=\"fn\" id=08 nodes=[]", "response t=\"fn\" id=08 nodes=[10@a]");
        assert_eq!(BtDht.snapshot_merge(early, late).as_deref(), Some(late));
        assert_eq!(BtDht.snapshot_merge("response t=\"a\" id=08", "response t=\"b\" id=08"), None);
        assert_eq!(BtDht.snapshot_merge("query ping t=\"a\"", "query ping t=\"b\""), None);
    }

    #[test]
    fn detects_krpc_by_content_over_udp_only() {
        let q = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        let id = |t, c: &[u8]| crate::proto::identify(t, Some(c), Some(b""), Some(c)).name();
        assert_eq!(id(Transport::Udp, q), "bt-dht");
        assert_eq!(id(Transport::Udp, b"d1:ad2:id2:abee"), "datagram");
        assert_ne!(id(Transport::Tcp, q), "bt-dht");
    }
}
