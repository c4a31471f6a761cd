//! The circular DHT of K&R 2.5 as a course lab (`docs/dht-ring.md`): JSON messages over UDP
//! between nodes on a ring of identifiers. The harness asks a node under test as a client and
//! plays the rest of the ring as an actor (`actor.rs`).

pub mod actor;
pub mod codec;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, Direction, Exchange, Finding, Message, Protocol, Steps, Transport};
pub use codec::{RingCodec, RingMsg};

/// The `dht-ring` protocol.
pub struct DhtRing;

impl Protocol for DhtRing {
    fn name(&self) -> &'static str {
        "dht-ring"
    }
    fn transport(&self) -> Transport {
        Transport::Udp
    }
    fn no_tls(&self) -> Option<&'static str> {
        Some("the lab's ring runs over UDP")
    }
    /// A routed request is answered by the key's owner, straight to the origin.
    fn answers_from_elsewhere(&self) -> bool {
        true
    }
    fn codec(&self, _dir: Direction) -> Box<dyn Codec> {
        Box::new(RingCodec)
    }
    fn steps(&self) -> &'static Steps {
        &steps::STEPS
    }
    fn actor(&self) -> Option<&'static crate::proto::actor::ActorKind> {
        Some(&actor::ACTOR)
    }
    /// A node under test pings, stabilizes and refreshes its shortcuts on its own timers: what it
    /// sent the ring differs from run to run in number and tids.
    fn actor_snapshot_skips(&self, _text: &str) -> bool {
        true
    }
    /// A case asks the same request again only while a ring settles (`retry`).
    fn snapshot_dedup_sent(&self) -> bool {
        true
    }
    /// The answers to a request asked again while the ring settled show once, the one that held.
    fn snapshot_merge(&self, first: &str, next: &str) -> Option<String> {
        let head = |s: &str| s.split(" from=").next().map(str::to_string);
        (head(first) == head(next)).then(|| next.to_string())
    }
    fn conversation_rules(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        rules::conversation(conv)
    }
    /// The type, and the key of a routed request or answer.
    fn label(&self, m: &Message) -> String {
        match m.detail.as_ref().and_then(|d| d.downcast_ref::<RingMsg>()) {
            Some(r) => match r.int("key") {
                Some(k) => format!("{} {k}", r.kind()),
                None => r.kind().to_string(),
            },
            None => m.summary.lines().next().unwrap_or_default().to_string(),
        }
    }
    /// A JSON object with the lab's `type`, `tid` and `from` keys.
    fn detect(&self, transport: Transport, client: &[u8], server: &[u8]) -> bool {
        let first = if client.is_empty() { server } else { client };
        transport == Transport::Udp
            && first.first() == Some(&b'{')
            && codec::parse(first).is_ok_and(|(m, _)| m.tid().is_some() && !m.kind().is_empty() && m.node("from").is_some())
    }
}
