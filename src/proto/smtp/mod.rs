//! SMTP (RFC 5321): replies (three-digit codes, multi-line `250-`), commands, and DATA content.

pub mod codec;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, Direction, Exchange, Finding, Message, Protocol, Steps, Transport};
pub use codec::{CommandCodec, ReplyCodec, SmtpMessage};

/// The `smtp` protocol.
pub struct Smtp;

impl Protocol for Smtp {
    fn name(&self) -> &'static str {
        "smtp"
    }
    fn server_greets(&self) -> bool {
        true
    }
    fn codec(&self, dir: Direction) -> Box<dyn Codec> {
        match dir {
            Direction::ServerToClient => Box::new(ReplyCodec::default()),
            Direction::ClientToServer => Box::new(CommandCodec::default()),
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
        matches!(SmtpMessage::of(m), Some(SmtpMessage::Reply { starts_tls: true, .. })).then_some("tls")
    }
    fn ports(&self) -> &'static [u16] {
        &[25, 587, 2525]
    }
    fn detect(&self, transport: Transport, client: &[u8], server: &[u8]) -> bool {
        let starts = |b: &[u8], p: &[u8]| b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p);
        transport == Transport::Tcp && starts(server, b"220") && (starts(client, b"EHLO") || starts(client, b"HELO"))
    }
}
