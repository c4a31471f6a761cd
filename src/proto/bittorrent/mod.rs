//! BitTorrent (BEP 3): the peer wire protocol over TCP, one message per handshake and per
//! length-prefixed message; bencode and metainfo files, which the steps and the tracker share.

pub mod actor;
pub mod bencode;
pub mod codec;
pub mod judge;
pub mod metainfo;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, Direction, Exchange, Finding, Message, Protocol, Steps, SwarmEvent, Transport};
pub use codec::{render, Block, PeerCodec, PeerMessage, PREFACE};

/// The `bittorrent` protocol: the peer wire.
pub struct BitTorrent;

impl Protocol for BitTorrent {
    fn name(&self) -> &'static str {
        "bittorrent"
    }
    fn no_tls(&self) -> Option<&'static str> {
        Some("the BitTorrent peer wire (BEP 3) has no TLS; its own encryption (MSE) is another protocol")
    }
    fn line_ending(&self) -> &'static [u8] {
        b""
    }
    fn codec(&self, _dir: Direction) -> Box<dyn Codec> {
        Box::new(PeerCodec::new())
    }
    fn steps(&self) -> &'static Steps {
        &steps::STEPS
    }
    fn conversation_rules(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        rules::conversation(conv)
    }
    fn conversation_rules_from_middle(&self, _conv: &[Exchange<'_>]) -> Vec<Finding> {
        // Both rules need the start: the handshakes, and the requests a piece may answer.
        Vec::new()
    }
    fn preface(&self) -> Option<&'static [u8]> {
        Some(PREFACE)
    }
    fn actor(&self) -> Option<&'static crate::proto::actor::ActorKind> {
        Some(&actor::ACTOR)
    }
    /// In a swarm the client picks pieces at random, sends have, choke and interest as the
    /// download goes, announces what it has when a peer joins late, and ends with cancels: only
    /// the handshakes say the same every run.
    fn actor_snapshot_skips(&self, text: &str) -> bool {
        !text.starts_with("handshake")
    }
    fn swarm_event(&self, m: &Message) -> Option<SwarmEvent> {
        match m.detail.as_ref()?.downcast_ref::<PeerMessage>()? {
            PeerMessage::Piece { index, .. } => Some(SwarmEvent::Block(*index)),
            PeerMessage::Unchoke => Some(SwarmEvent::Unchoke),
            PeerMessage::Choke => Some(SwarmEvent::Choke),
            _ => None,
        }
    }
    fn ports(&self) -> &'static [u16] {
        &[6881]
    }
    fn detect(&self, transport: Transport, client: &[u8], server: &[u8]) -> bool {
        // Either side may open (a peer answers a handshake with its own), and either capture
        // direction may be the one that starts with it.
        transport == Transport::Tcp && (client.starts_with(PREFACE) || server.starts_with(PREFACE))
    }
    fn label(&self, m: &Message) -> String {
        match m.detail.as_ref().and_then(|d| d.downcast_ref::<PeerMessage>()) {
            Some(PeerMessage::Handshake { info_hash, .. }) => format!("handshake {}…", bencode::hex(&info_hash[..4])),
            Some(PeerMessage::Bitfield(b)) => format!("bitfield {} bytes", b.len()),
            Some(PeerMessage::Piece { index, begin, data }) => format!("piece {index} begin {begin} len {}", data.len()),
            Some(PeerMessage::Extended { id, payload }) => format!("extended {id} {} bytes", payload.len()),
            _ => m.summary.lines().next().unwrap_or_default().to_string(),
        }
    }
}
