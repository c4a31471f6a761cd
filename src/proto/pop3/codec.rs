//! POP3 framing (RFC 1939, RFC 2449): `+OK`/`-ERR` responses, multi-line bodies ending in `.`,
//! byte-stuffing.
//!
//! Whether a `+OK` opens a multi-line body depends on the command it answers (LIST and UIDL
//! without an argument, RETR, TOP, CAPA), which the response codec learns from `peer_sent`.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::proto::codec::{command_line, line};
use crate::proto::{escape_bytes, Codec, CodecError, Finding, Frame, Level, Message};

const MAX_BODY: usize = 64 << 20;

/// A parsed POP3 response or command.
#[derive(Debug, Clone)]
pub enum Pop3Message {
    /// A server response.
    Response {
        /// `+OK` (true) or `-ERR`.
        ok: bool,
        /// The text after the status indicator.
        text: String,
        /// The multi-line body after un-stuffing (CRLF endings), if any.
        body: Option<Vec<u8>>,
        /// A +OK answering STLS: the TLS handshake starts after it (RFC 2595 §4).
        starts_tls: bool,
    },
    /// A SASL continuation request (`+ base64`) during AUTH (RFC 5034 §4).
    Continuation {
        /// The text after `+ `.
        text: String,
    },
    /// A client command.
    Command {
        /// The keyword, upper-cased.
        keyword: String,
        /// The arguments.
        args: Vec<String>,
    },
}

impl Pop3Message {
    /// The parsed form of a message this codec framed.
    pub fn of(m: &Message) -> Option<&Pop3Message> {
        m.detail.as_ref().and_then(|d| d.downcast_ref::<Pop3Message>())
    }
}

/// Frames responses; knows which ones carry a multi-line body from the commands sent.
#[derive(Default)]
pub struct ResponseCodec {
    /// For each command sent and not yet answered: does a +OK to it carry a body?
    pending: VecDeque<bool>,
    cmd_buf: Vec<u8>,
    greeted: bool,
    /// Inside an AUTH exchange: the client's lines are SASL responses, not commands.
    sasl: bool,
    /// The conversation's start was not seen: a response may answer a command never seen.
    late: bool,
    /// The response under way began when no command was waiting for one (only when `late`):
    /// whether it has a body is read from the lines that follow it.
    orphan: bool,
    /// Beside `pending`, one per command waiting: whether it is STLS.
    stls: std::collections::VecDeque<bool>,
}

/// Whether `l` opens a response rather than continuing a body.
fn is_status(l: &[u8]) -> bool {
    l.starts_with(b"+OK") || l.starts_with(b"-ERR") || l == b"+" || l.starts_with(b"+ ")
}

/// Whether a +OK to this command line is multi-line (RFC 1939 §5, RFC 2449 §5).
pub fn multi_line(cmd: &str) -> bool {
    let mut words = cmd.split_whitespace();
    let kw = words.next().unwrap_or("").to_ascii_uppercase();
    let has_arg = words.next().is_some();
    match kw.as_str() {
        "RETR" | "TOP" | "CAPA" => true,
        // AUTH without a mechanism lists the mechanisms (a common extension; RFC 5034 leaves it out).
        "LIST" | "UIDL" | "AUTH" => !has_arg,
        _ => false,
    }
}

impl Codec for ResponseCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let closed = |what: &str| CodecError {
            offset: buf.len(),
            reason: format!("the connection closed in the middle of {what}"),
        };
        self.orphan |= self.late && self.pending.is_empty() && !buf.is_empty();
        let Some((first, mut pos, lf)) = line(buf)? else {
            return if eof && !buf.is_empty() {
                Err(closed("a response"))
            } else {
                Ok(Frame::Incomplete)
            };
        };
        if self.greeted && (first == b"+" || first.starts_with(b"+ ")) {
            // RFC 5034 §4: the server asks for the next SASL response; the AUTH is still pending.
            self.sasl = true;
            self.orphan = false;
            let text = String::from_utf8_lossy(first.get(2..).unwrap_or(&[])).into_owned();
            return Ok(Frame::Message(
                Message {
                    text: format!("+ {text}"),
                    summary: format!("+ {text}").trim_end().to_string(),
                    findings: Vec::new(),
                    detail: Some(Arc::new(Pop3Message::Continuation { text })),
                },
                pos,
            ));
        }
        let (ok, rest) = if let Some(r) = first.strip_prefix(b"+OK") {
            (true, r)
        } else if let Some(r) = first.strip_prefix(b"-ERR") {
            (false, r)
        } else {
            return Err(CodecError {
                offset: 0,
                reason: format!("a POP3 response starts with +OK or -ERR: \"{}\"", escape_bytes(first, 120)),
            });
        };
        let mut findings = Vec::new();
        if lf {
            findings.push(Finding {
                level: Level::Should,
                rule: "RFC 1939 §3",
                text: "a line ends in a bare LF; POP3 lines end in CRLF".into(),
            });
        }
        if !rest.is_empty() && rest[0] != b' ' {
            findings.push(Finding {
                level: Level::Should,
                rule: "RFC 1939 §3",
                text: "no space after the status indicator".into(),
            });
        }
        let text = String::from_utf8_lossy(rest).trim_start().to_string();
        let wants_body = if self.orphan {
            match line(&buf[pos..])? {
                Some((next, _, _)) => !is_status(next),
                None if eof => false,
                None => return Ok(Frame::Incomplete),
            }
        } else if self.greeted {
            self.pending.front().copied().unwrap_or(false)
        } else {
            false
        };
        let mut body = None;
        if ok && wants_body {
            let mut b = Vec::new();
            loop {
                let Some((l, used, _)) = line(&buf[pos..])? else {
                    if buf.len() > MAX_BODY {
                        return Err(CodecError {
                            offset: MAX_BODY,
                            reason: "a multi-line response over the size limit".into(),
                        });
                    }
                    return if eof {
                        Err(closed("a multi-line response (no line with only \".\")"))
                    } else {
                        Ok(Frame::Incomplete)
                    };
                };
                pos += used;
                if l == b"." {
                    break;
                }
                if l.starts_with(b".")
                    && !l.starts_with(b"..")
                    && findings.iter().all(|f: &Finding| f.rule != "RFC 1939 §3 (byte-stuffing)")
                {
                    findings.push(Finding {
                        level: Level::Must,
                        rule: "RFC 1939 §3 (byte-stuffing)",
                        text: format!("a line beginning with \".\" is not byte-stuffed: \"{}\"", escape_bytes(l, 80)),
                    });
                }
                b.extend_from_slice(l.strip_prefix(b".").unwrap_or(l));
                b.extend_from_slice(b"\r\n");
            }
            body = Some(b);
        }
        // The +OK to STLS: the answer to the command waiting first when that is STLS (commands an
        // attacker pipelined behind it are not answered in clear, RFC 2595 §4).
        let starts_tls = ok && self.greeted && !self.orphan && self.stls.front() == Some(&true);
        if self.greeted && !std::mem::take(&mut self.orphan) {
            self.pending.pop_front();
            self.stls.pop_front();
        }
        self.greeted = true;
        self.sasl = false;
        let status = if ok { "+OK" } else { "-ERR" };
        let mut summary = format!("{status} {text}").trim_end().to_string();
        let mut full_text = summary.clone();
        if let Some(b) = &body {
            let lines = b.split(|&c| c == b'\n').count() - 1;
            summary.push_str(&format!("\n  ({lines} lines, {} bytes): \"{}\"", b.len(), escape_bytes(b, 200)));
            full_text.push('\n');
            full_text.push_str(&String::from_utf8_lossy(b));
        }
        Ok(Frame::Message(
            Message {
                text: full_text,
                summary,
                findings,
                detail: Some(Arc::new(Pop3Message::Response {
                    ok,
                    text,
                    body,
                    starts_tls,
                })),
            },
            pos,
        ))
    }

    fn joined_late(&mut self) {
        self.greeted = true;
        self.late = true;
    }

    fn peer_sent(&mut self, bytes: &[u8]) {
        self.cmd_buf.extend_from_slice(bytes);
        while let Some(i) = self.cmd_buf.iter().position(|&b| b == b'\n') {
            let l: Vec<u8> = self.cmd_buf.drain(..=i).collect();
            // A SASL response answers a continuation; it is not a command awaiting a response of its own.
            if !self.sasl {
                self.pending.push_back(multi_line(&String::from_utf8_lossy(&l)));
                self.stls.push_back(l.trim_ascii().eq_ignore_ascii_case(b"STLS"));
            }
        }
    }
}

/// Frames client command lines.
pub struct CommandCodec;

impl Codec for CommandCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let Some((l, used, _)) = command_line(buf, eof)? else {
            return Ok(Frame::Incomplete);
        };
        let text = String::from_utf8_lossy(l).into_owned();
        let mut words = text.split_whitespace();
        let keyword = words.next().unwrap_or("").to_ascii_uppercase();
        let args = words.map(str::to_string).collect();
        let summary = format!("\"{}\"", escape_bytes(l, 200));
        Ok(Frame::Message(
            Message {
                text,
                summary,
                findings: Vec::new(),
                detail: Some(Arc::new(Pop3Message::Command { keyword, args })),
            },
            used,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(c: &mut ResponseCodec, buf: &[u8], eof: bool) -> (bool, String, Option<Vec<u8>>, usize, Vec<Finding>) {
        match c.decode(buf, eof).unwrap() {
            Frame::Message(m, used) => match m.detail.as_ref().unwrap().downcast_ref::<Pop3Message>().unwrap() {
                Pop3Message::Response { ok, text, body, .. } => (*ok, text.clone(), body.clone(), used, m.findings),
                _ => panic!(),
            },
            Frame::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn parses_the_greeting_then_multi_line_list_per_the_seeds() {
        let mut c = ResponseCodec::default();
        let (ok, text, body, _, _) = resp(&mut c, b"+OK POP3 server ready\r\n", false);
        assert!(ok && text == "POP3 server ready" && body.is_none());
        c.peer_sent(b"list\r\nretr 1\r\nstat\r\n");
        let (_, _, body, used, _) = resp(&mut c, b"+OK 2 messages\r\n1 498\r\n2 912\r\n.\r\n", false);
        assert_eq!((body.unwrap(), used), (b"1 498\r\n2 912\r\n".to_vec(), 33));
        let (_, _, body, _, f) = resp(&mut c, b"+OK 3 octets\r\n..x\r\n.\r\n", false);
        assert_eq!((body.unwrap(), f.len()), (b".x\r\n".to_vec(), 0));
        let (_, text, body, _, _) = resp(&mut c, b"+OK 2 1410\r\n", false);
        assert_eq!((text.as_str(), body), ("2 1410", None));
    }

    #[test]
    fn parses_sasl_continuations_keeping_the_auth_pending() {
        let mut c = ResponseCodec::default();
        resp(&mut c, b"+OK hi\r\n", false);
        c.peer_sent(b"AUTH PLAIN\r\n");
        let Frame::Message(m, used) = c.decode(b"+ \r\n", false).unwrap() else {
            panic!()
        };
        assert!(matches!(
            m.detail.as_deref().and_then(|d| d.downcast_ref::<Pop3Message>()),
            Some(Pop3Message::Continuation { .. })
        ));
        assert_eq!(used, 4);
        c.peer_sent(b"AGJvYgBodW5ncnk=\r\n");
        let (ok, _, body, _, _) = resp(&mut c, b"+OK logged in\r\n", false);
        assert!(ok && body.is_none());
        c.peer_sent(b"LIST\r\n");
        let (_, _, body, _, _) = resp(&mut c, b"+OK 1 messages\r\n1 498\r\n.\r\n", false);
        assert_eq!(body.unwrap(), b"1 498\r\n");
    }

    #[test]
    fn parses_errors_without_bodies_and_list_with_argument_as_one_line() {
        let mut c = ResponseCodec::default();
        resp(&mut c, b"+OK hi\r\n", false);
        c.peer_sent(b"RETR 9\r\nLIST 1\r\n");
        let (ok, _, body, _, _) = resp(&mut c, b"-ERR no such message\r\n", false);
        assert!(!ok && body.is_none());
        let (_, text, body, _, _) = resp(&mut c, b"+OK 1 498\r\n", false);
        assert_eq!((text.as_str(), body), ("1 498", None));
    }

    #[test]
    fn incomplete_bodies_wait_for_the_dot_and_unstuffed_dot_lines_are_must_findings() {
        let mut c = ResponseCodec::default();
        resp(&mut c, b"+OK hi\r\n", false);
        c.peer_sent(b"RETR 1\r\n");
        let full = b"+OK\r\n.bad\r\nok\r\n.\r\n";
        for cut in 0..full.len() {
            let mut c2 = ResponseCodec {
                greeted: true,
                pending: [true].into(),
                ..ResponseCodec::default()
            };
            assert!(matches!(c2.decode(&full[..cut], false).unwrap(), Frame::Incomplete), "cut {cut}");
        }
        let (_, _, body, _, f) = resp(&mut c, full, false);
        assert_eq!(body.unwrap(), b"bad\r\nok\r\n");
        assert_eq!(f[0].level, Level::Must);
        assert!(ResponseCodec::default().decode(b"OK ready\r\n", false).is_err());
    }

    #[test]
    fn parses_responses_of_a_conversation_joined_late_by_their_commands_or_their_lines() {
        let mut c = ResponseCodec::default();
        c.joined_late();
        // The reply to a STAT sent before the capture: no greeting, no command; the next line
        // tells whether it has a body, so it waits for one.
        let stream = b"+OK 2 320\r\n+OK 2 messages\r\n1 100\r\n2 220\r\n.\r\n";
        assert!(matches!(c.decode(&stream[..11], false).unwrap(), Frame::Incomplete));
        c.peer_sent(b"LIST\r\n");
        let (_, text, body, used, _) = resp(&mut c, stream, false);
        assert_eq!((text.as_str(), body), ("2 320", None));
        let (_, _, body, _, _) = resp(&mut c, &stream[used..], false);
        assert_eq!(body.unwrap(), b"1 100\r\n2 220\r\n");
        // A RETR never seen: its body is read from its lines.
        let mut c = ResponseCodec::default();
        c.joined_late();
        let (_, _, body, _, _) = resp(&mut c, b"+OK 9 octets\r\nSubject\r\n.\r\n", false);
        assert_eq!(body.unwrap(), b"Subject\r\n");
        let (_, _, body, _, _) = resp(&mut c, b"+OK bye\r\n", true);
        assert!(body.is_none());
    }

    #[test]
    fn rejects_a_greeting_without_a_status_indicator() {
        assert!(ResponseCodec::default().decode(b"OK ready\r\n", false).is_err());
        assert!(ResponseCodec::default().decode(b"* OK ready\r\n", false).is_err());
    }

    #[test]
    fn round_trip_a_byte_stuffed_body_frames_back_unstuffed() {
        let body = b"a\r\n.dot\r\n..two\r\n";
        let mut wire = b"+OK\r\n".to_vec();
        wire.extend_from_slice(&crate::proto::codec::dot_stuff(body));
        let mut c = ResponseCodec {
            greeted: true,
            pending: [true].into(),
            ..ResponseCodec::default()
        };
        let (ok, _, got, used, f) = resp(&mut c, &wire, false);
        assert!(ok && f.is_empty());
        assert_eq!((got.unwrap().as_slice(), used), (&body[..], wire.len()));
    }

    #[test]
    fn parses_the_ok_to_stls_as_the_start_of_tls_and_nothing_else() {
        let starts = |c: &mut ResponseCodec, r: &[u8]| match c.decode(r, false).unwrap() {
            Frame::Message(m, _) => matches!(Pop3Message::of(&m), Some(Pop3Message::Response { starts_tls: true, .. })),
            Frame::Incomplete => panic!("incomplete"),
        };
        let mut c = ResponseCodec::default();
        assert!(!starts(&mut c, b"+OK ready\r\n"));
        c.peer_sent(b"STLS\r\n");
        assert!(!starts(&mut c, b"-ERR not now\r\n"));
        c.peer_sent(b"stls\r\n");
        assert!(starts(&mut c, b"+OK Begin TLS negotiation now\r\n"));
        // Two commands waiting: the +OK answers the first, not STLS.
        let mut c = ResponseCodec::default();
        assert!(!starts(&mut c, b"+OK ready\r\n"));
        c.peer_sent(b"NOOP\r\nSTLS\r\n");
        assert!(!starts(&mut c, b"+OK\r\n"));
    }
}
