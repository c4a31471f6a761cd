//! HTTP/3 (RFC 9114) over QUIC (RFC 9000) with QPACK (RFC 9204). A live connection is recorded as
//! the QUIC frames that carry its streams (`Transport::Quic`), framed per stream by `codec.rs`;
//! the runner's side is `run::quic`. A capture's QUIC datagrams (UDP) are shown by `packet.rs`:
//! their headers, the rest being protected.

pub mod codec;
pub mod initial;
pub mod packet;
pub mod qpack;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, Direction, Exchange, Finding, Protocol, Steps, Transport};
pub use codec::{H3Frame, H3Kind, H3Message, Http3Codec};

/// The `http3` protocol.
pub struct Http3;

impl Protocol for Http3 {
    fn name(&self) -> &'static str {
        "http3"
    }
    fn transport(&self) -> Transport {
        Transport::Quic
    }
    fn line_ending(&self) -> &'static [u8] {
        b""
    }
    fn codec(&self, dir: Direction) -> Box<dyn Codec> {
        Box::new(Http3Codec::new(dir == Direction::ClientToServer))
    }
    fn codec_on(&self, dir: Direction, transport: Transport) -> Box<dyn Codec> {
        // A capture holds QUIC's packets, which show their headers only; a live run records the
        // streams (`Transport::Quic`).
        match transport {
            Transport::Udp => Box::new(packet::PacketCodec::new(dir == Direction::ServerToClient)),
            _ => self.codec(dir),
        }
    }
    fn detect(&self, transport: Transport, client: &[u8], server: &[u8]) -> bool {
        transport == Transport::Udp && (packet::looks_like_quic(client) || packet::looks_like_quic(server))
    }
    fn alpn(&self) -> &'static [&'static str] {
        &["h3"]
    }
    fn steps(&self) -> &'static Steps {
        &steps::STEPS
    }
    fn conversation_rules(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        rules::conversation(conv)
    }
    fn snapshot_skips(&self, text: &str) -> bool {
        // QPACK streams open when the server likes (RFC 9204 §4.2), and a STOP_SENDING for a
        // stream the server ignores comes when it gets to it (RFC 9114 §6.2).
        (text.starts_with("STREAM stream=") && text.contains(" qpack-")) || text.starts_with("STOP_SENDING ")
    }
    fn interleaved_key(&self, text: &str) -> Option<u32> {
        if text.starts_with("CONNECTION_CLOSE") {
            return Some(u32::MAX);
        }
        let rest = &text[text.find(" stream=")? + 8..];
        let id: u32 = rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
        Some(id.saturating_add(1))
    }
}
