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
    /// A server that opens with `+OK`, and a client whose first bytes, if any, are a POP3
    /// command (a keyword of 3 or 4 letters, RFC 1939 §3): Redis answers `+OK` too, to a client
    /// that speaks RESP (`*2`).
    fn detect(&self, transport: Transport, client: &[u8], server: &[u8]) -> bool {
        let command = |c: &[u8]| {
            let word = c.iter().take_while(|b| b.is_ascii_alphabetic()).count();
            (3..=4).contains(&word) && matches!(c.get(word), None | Some(b' ' | b'\r' | b'\n'))
        };
        transport == Transport::Tcp
            && server.len() >= 3
            && server[..3].eq_ignore_ascii_case(b"+OK")
            && (client.is_empty() || command(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_wants_a_pop3_command_from_the_client_too() {
        assert!(Pop3.detect(Transport::Tcp, b"", b"+OK ready\r\n"));
        assert!(Pop3.detect(Transport::Tcp, b"USER bob\r\n", b"+OK ready\r\n"));
        assert!(Pop3.detect(Transport::Tcp, b"STAT\r\n", b"+OK 2 320\r\n"));
        // Redis: RESP's array of bulk strings, answered +OK.
        assert!(!Pop3.detect(Transport::Tcp, b"*2\r\n$4\r\nAUTH\r\n", b"+OK\r\n"));
        assert!(!Pop3.detect(Transport::Udp, b"", b"+OK ready\r\n"));
    }
}
