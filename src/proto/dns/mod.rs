//! DNS (RFC 1035, RFC 6891 EDNS0, RFC 7766 over TCP): the codec, dig-like renderings, and
//! structured `send: { query | response }` / `expect: { rcode, flags, answer, ... }` for suites.

pub mod actor;
pub mod codec;
pub mod rules;
pub mod steps;
pub mod text;
pub mod wire;

use crate::proto::{Codec, Direction, Exchange, Finding, Frame, Protocol, Steps, Transport};
pub use codec::{for_transport, DnsCodec, DnsFrame};
pub use wire::{DnsMessage, Edns, Name, Question, RData, Record};

/// The `dns` protocol.
pub struct Dns;

impl Protocol for Dns {
    fn name(&self) -> &'static str {
        "dns"
    }
    fn transport(&self) -> Transport {
        Transport::Udp
    }
    fn line_ending(&self) -> &'static [u8] {
        b""
    }
    fn codec(&self, dir: Direction) -> Box<dyn Codec> {
        self.codec_on(dir, Transport::Udp)
    }
    fn codec_on(&self, dir: Direction, transport: Transport) -> Box<dyn Codec> {
        Box::new(DnsCodec::new(dir, transport))
    }
    fn steps(&self) -> &'static Steps {
        &steps::STEPS
    }
    fn actor(&self) -> Option<&'static crate::proto::actor::ActorKind> {
        Some(&actor::ACTOR)
    }
    fn conversation_rules(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        rules::conversation(conv)
    }
    fn ports(&self) -> &'static [u16] {
        &[53]
    }
    fn detect(&self, transport: Transport, client: &[u8], _server: &[u8]) -> bool {
        // A query header (QR clear, one question) that the codec frames as a whole message.
        let is_query = client.len() >= 12 && u16::from_be_bytes([client[2], client[3]]) & wire::QR.mask == 0 && client[4..6] == [0, 1];
        transport == Transport::Udp
            && is_query
            && matches!(
                DnsCodec::new(Direction::ClientToServer, Transport::Udp).decode(client, true),
                Ok(Frame::Message(..))
            )
    }
}
