//! HTTP/2 (RFC 9113) with HPACK (RFC 7541): a connection opened with the client's preface, or
//! handed over by HTTP/1.1's `Upgrade: h2c` and `101 Switching Protocols`; one message per frame.

pub mod actor;
pub mod codec;
pub mod hpack;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, Direction, Exchange, Finding, Protocol, Steps, Transport};
pub use codec::{render, Block, Body, H2Frame, Http2Codec, Kind, PREFACE};

/// The `http2` protocol.
pub struct Http2;

impl Protocol for Http2 {
    fn name(&self) -> &'static str {
        "http2"
    }
    // RFC 9113 §3.2: HTTP/2 over TLS is "h2", chosen by ALPN.
    fn alpn(&self) -> &'static [&'static str] {
        &["h2"]
    }
    fn line_ending(&self) -> &'static [u8] {
        b""
    }
    fn codec(&self, dir: Direction) -> Box<dyn Codec> {
        Box::new(Http2Codec::new(dir == Direction::ClientToServer))
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
    fn interleaved_key(&self, text: &str) -> Option<u32> {
        let rest = &text[text.find(" stream=")? + 8..];
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    }
    fn preface(&self) -> Option<&'static [u8]> {
        Some(PREFACE)
    }
    fn detect(&self, transport: Transport, client: &[u8], _server: &[u8]) -> bool {
        // The first line is enough: a capture's first segment may stop before the rest.
        let line = b"PRI * HTTP/2.0\r\n";
        transport == Transport::Tcp && client.len() >= line.len() && PREFACE.starts_with(&client[..client.len().min(PREFACE.len())])
    }
}
