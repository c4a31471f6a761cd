//! TLS (RFC 8446, RFC 5246) as captures show it: records and the handshake decoded, and with a
//! key log the protected records decrypted and framed by the protocol they carry. A live run
//! never frames TLS: it records what it sent and read inside the connection.

pub mod codec;
pub mod crypto;
pub mod keylog;
pub mod rules;
pub mod steps;
#[cfg(test)]
pub mod testing;

use crate::proto::{Codec, Direction, Exchange, Finding, Protocol, Steps};
pub use codec::{TlsCodec, TlsMessage};
pub use keylog::{KeyLog, KeyLogError, Label};

/// The `tls` protocol.
pub struct Tls;

/// The protocol spoken inside TLS on a well-known implicit-TLS port (RFC 8314 §7 for mail).
pub fn inner_by_port(port: u16) -> Option<&'static str> {
    Some(match port {
        443 => "http",
        465 => "smtp",
        993 => "imap",
        995 => "pop3",
        990 => "ftp",
        _ => return None,
    })
}

impl Protocol for Tls {
    fn name(&self) -> &'static str {
        "tls"
    }
    fn codec(&self, dir: Direction) -> Box<dyn Codec> {
        Box::new(TlsCodec::new(dir))
    }
    fn steps(&self) -> &'static Steps {
        &steps::STEPS
    }
    fn conversation_rules(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        rules::conversation_rules(conv)
    }
    fn carries_others(&self) -> bool {
        true
    }
    fn open(&self, chunks: &[(Direction, &[u8])], cx: &crate::proto::Context) -> Option<Vec<(usize, Direction, Vec<u8>)>> {
        codec::plaintext(chunks, cx)
    }
    // No `ports`: 443 is QUIC's too (over UDP), and a port names one protocol. A conversation is
    // TLS by its ClientHello; the port then says what TLS carries (`inner_by_port`).
    fn detect(&self, transport: crate::proto::Transport, client: &[u8], _server: &[u8]) -> bool {
        // A handshake record holding a ClientHello (RFC 8446 §5.1, §4.1.2).
        transport == crate::proto::Transport::Tcp
            && client.len() >= 6
            && client[0] == 22
            && client[1] == 3
            && client[2] <= 4
            && client[5] == 1
    }
}
