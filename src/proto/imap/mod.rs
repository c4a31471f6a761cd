//! IMAP (RFC 9051; RFC 3501 for IMAP4rev1): the codec, and a structured `expect` for suites.

pub mod codec;
pub mod parse;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, Direction, Message, Protocol, Steps, Transport};
pub use codec::{Command, CommandCodec, End, Group, Kind, Response, ResponseCodec};

/// The `imap` protocol.
pub struct Imap;

impl Protocol for Imap {
    fn name(&self) -> &'static str {
        "imap"
    }
    fn server_greets(&self) -> bool {
        true
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
    fn next_protocol(&self, m: &Message) -> Option<&'static str> {
        let group = m.detail.as_ref().and_then(|d| d.downcast_ref::<Group>())?;
        group.starts_tls.then_some("tls")
    }
    fn ports(&self) -> &'static [u16] {
        &[143]
    }
    fn detect(&self, transport: Transport, _client: &[u8], server: &[u8]) -> bool {
        let starts = |p: &[u8]| server.len() >= p.len() && server[..p.len()].eq_ignore_ascii_case(p);
        transport == Transport::Tcp && (starts(b"* OK") || starts(b"* PREAUTH"))
    }
}
