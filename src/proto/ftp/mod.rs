//! FTP's control connection (RFC 959, RFC 2428): replies (three-digit codes, multi-line `123-`
//! up to `123 `), commands, and the data addresses PASV, EPSV, PORT and EPRT carry.

pub mod actor;
pub mod codec;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, DataChannel, Direction, Exchange, Finding, Protocol, Steps, Transfer, Transport};
pub use codec::{parse_eprt_arg, parse_epsv, parse_pasv, parse_port_arg, CommandCodec, FtpMessage, ReplyCodec};

/// The `ftp` protocol.
pub struct Ftp;

/// The name data connections go by in transcripts: raw bytes, counted, not framed.
pub const DATA: &str = "ftp-data";

/// Commands a client may open with that an SMTP client never sends first (it starts with EHLO).
const OPENING_COMMANDS: &[&[u8]] = &[b"USER ", b"AUTH TLS", b"AUTH SSL", b"FEAT", b"SYST", b"OPTS "];

fn starts(b: &[u8], p: &[u8]) -> bool {
    b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p)
}

impl Protocol for Ftp {
    fn name(&self) -> &'static str {
        "ftp"
    }
    fn server_greets(&self) -> bool {
        true
    }
    fn codec(&self, dir: Direction) -> Box<dyn Codec> {
        match dir {
            Direction::ServerToClient => Box::new(ReplyCodec),
            Direction::ClientToServer => Box::new(CommandCodec),
        }
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
    fn announces_close(&self, m: &crate::proto::Message) -> Option<&'static str> {
        rules::announces_close(m)
    }
    fn data_protocol(&self) -> Option<&'static str> {
        Some(DATA)
    }
    fn data_channels(&self, control: &[Exchange<'_>]) -> Vec<DataChannel> {
        rules::data_channels(control)
    }
    fn transfer_rules(&self, control: &[Exchange<'_>], times: &[u64], transfers: &[Transfer]) -> Vec<Finding> {
        rules::transfers(control, times, transfers)
    }
    fn ports(&self) -> &'static [u16] {
        &[21]
    }
    /// SMTP servers greet with `220 ` too: a 220 counts only with an FTP client's opening
    /// command or "FTP" in the greeting line; 120 (RFC 959 §5.4) is FTP's alone.
    fn detect(&self, transport: Transport, client: &[u8], server: &[u8]) -> bool {
        let greets = |code: &[u8]| starts(server, code) && matches!(server.get(3), Some(b' ' | b'-'));
        let ftp_client = OPENING_COMMANDS.iter().any(|c| starts(client, c));
        let first_line = &server[..server.iter().position(|&b| b == b'\n').unwrap_or(server.len())];
        let says_ftp = first_line.windows(3).any(|w| w.eq_ignore_ascii_case(b"FTP"));
        let smtp_client = starts(client, b"EHLO") || starts(client, b"HELO");
        transport == Transport::Tcp
            && !smtp_client
            && (greets(b"120") || (greets(b"220") && (ftp_client || says_ftp)) || (server.is_empty() && ftp_client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::identify;

    #[test]
    fn detects_ftp_greetings_and_openings_but_leaves_smtp_alone() {
        let id = |c: &[u8], s: &[u8]| identify(Transport::Tcp, Some(c), Some(s), Some(if s.is_empty() { c } else { s })).name();
        assert_eq!(id(b"USER anonymous\r\n", b"220 ready\r\n"), "ftp");
        assert_eq!(id(b"", b"220 (vsFTPd 3.0.3)\r\n"), "ftp");
        assert_eq!(id(b"", b"220-ProFTPD\r\n220 ready\r\n"), "ftp");
        assert_eq!(id(b"", b"120 in 5 minutes\r\n"), "ftp");
        assert_eq!(id(b"user bob\r\n", b""), "ftp");
        assert_eq!(id(b"EHLO x\r\n", b"220 mail ESMTP\r\n"), "smtp");
        assert_eq!(id(b"EHLO x\r\n", b"220 ftp.example ESMTP\r\n"), "smtp");
        assert_eq!(id(b"", b"220 mail ESMTP Postfix\r\n"), "line-crlf");
        assert_eq!(id(b"USER bob\r\n", b"+OK ready\r\n"), "pop3");
        assert!(!Ftp.detect(Transport::Udp, b"USER a\r\n", b"220 FTP\r\n"));
        assert!(!Ftp.detect(Transport::Tcp, b"", b"2200 FTP\r\n"));
    }
}
