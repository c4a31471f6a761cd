//! POP3 (RFC 1939, RFC 2449): `+OK`/`-ERR` responses, multi-line bodies ending in `.`, byte-stuffing.

pub mod codec;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, Direction, Exchange, Finding, Message, Protocol, Steps, Transport};
pub use codec::{CommandCodec, Pop3Message, ResponseCodec};

/// The `pop3` protocol.
pub struct Pop3;

impl Protocol for Pop3 {
    fn name(&self) -> &'static str {
        "pop3"
    }
    fn codec(&self, dir: Direction) -> Box<dyn Codec> {
        match dir {
            Direction::ServerToClient => Box::new(ResponseCodec::default()),
            Direction::ClientToServer => Box::new(CommandCodec),
        }
    }
    fn steps(&self) -> &'static Steps {
        &steps::STEPS
    }
    fn conversation_rules(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        rules::conversation(conv)
    }
    fn conversation_rules_from_middle(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        rules::from_middle(conv)
    }
    fn next_protocol(&self, m: &Message) -> Option<&'static str> {
        matches!(Pop3Message::of(m), Some(Pop3Message::Response { starts_tls: true, .. })).then_some("tls")
    }
    fn ports(&self) -> &'static [u16] {
        &[110]
    }
    fn detect(&self, transport: Transport, _client: &[u8], server: &[u8]) -> bool {
        transport == Transport::Tcp && server.len() >= 3 && server[..3].eq_ignore_ascii_case(b"+OK")
    }
}
