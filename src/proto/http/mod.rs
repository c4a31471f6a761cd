//! HTTP/1.x (RFC 9110, 9112): the codec, and structured `send`/`expect` for suites.

pub mod actor;
pub mod codec;
pub mod parse;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, Direction, Exchange, Finding, Message, Protocol, Steps, Transport};
pub use codec::{body_summary, render, sha256_hex, start_line, HttpCodec};
pub use parse::{Framing, HttpMessage, StartLine};

/// The `http` protocol.
pub struct Http;

impl Protocol for Http {
    fn name(&self) -> &'static str {
        "http"
    }
    fn alpn(&self) -> &'static [&'static str] {
        &["http/1.1"]
    }
    fn codec(&self, dir: Direction) -> Box<dyn Codec> {
        Box::new(HttpCodec::new(dir == Direction::ClientToServer))
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
    fn switches_protocol(&self, m: &Message) -> bool {
        rules::switches_protocol(m)
    }
    fn next_protocol(&self, m: &Message) -> Option<&'static str> {
        rules::next_protocol(m)
    }
    fn announces_close(&self, m: &Message) -> Option<&'static str> {
        rules::announces_close(m)
    }
    fn ports(&self) -> &'static [u16] {
        &[80, 8080, 8000]
    }
    fn detect(&self, transport: Transport, client: &[u8], server: &[u8]) -> bool {
        let request_line = client.iter().position(|&b| b == b'\n').map(|n| &client[..n]).unwrap_or(client);
        transport == Transport::Tcp
            && ((server.len() >= 7 && server[..7].eq_ignore_ascii_case(b"HTTP/1.")) || request_line.windows(7).any(|w| w == b" HTTP/1"))
    }
}
