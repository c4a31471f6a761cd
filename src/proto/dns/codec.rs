//! DNS framing (RFC 1035, RFC 6891 EDNS0, RFC 7766 over TCP), with dig-like renderings.
//!
//! Over UDP a datagram is one message; over TCP each message has a two-byte length prefix
//! (RFC 1035 §4.2.2). Hand-written on purpose: the reference servers use hickory-proto, and a
//! parser bug must not be able to hide on both sides.

use std::collections::VecDeque;
use std::sync::Arc;

use super::text;
use super::wire::{self, DnsMessage};
use crate::proto::{Codec, CodecError, Direction, Finding, Frame, Level, Message, Transport};

/// Queries remembered per connection to pair responses with (a resolver may send many).
const REMEMBERED: usize = 64;

/// What a framed DNS message carries for structured checks.
#[derive(Debug, Clone)]
pub struct DnsFrame {
    /// The message.
    pub msg: DnsMessage,
    /// The query this response answers: the last one sent on the connection with its ID, else the last one.
    pub query: Option<DnsMessage>,
}

/// Frames DNS messages of one direction: a datagram each (UDP) or length-prefixed (TCP).
pub struct DnsCodec {
    dir: Direction,
    transport: Transport,
    /// Messages the other side was sent, newest last.
    sent: VecDeque<DnsMessage>,
    peer_buf: Vec<u8>,
}

impl DnsCodec {
    /// A codec for messages travelling `dir` over `transport`.
    pub fn new(dir: Direction, transport: Transport) -> DnsCodec {
        DnsCodec {
            dir,
            transport,
            sent: VecDeque::new(),
            peer_buf: Vec::new(),
        }
    }

    fn frame(&self, bytes: &[u8], base: usize) -> Result<Message, CodecError> {
        let parsed = wire::parse(bytes).map_err(|e| CodecError {
            offset: base + e.offset,
            reason: e.reason,
        })?;
        let mut findings = parsed.findings;
        let msg = parsed.msg;
        let response = self.dir == Direction::ServerToClient;
        if msg.qr != response {
            findings.push(Finding {
                level: Level::Must,
                rule: "RFC 1035 §4.1.1",
                text: match response {
                    true => "a response with QR=0 (QR is 1 in every response)".into(),
                    false => "a query with QR=1".into(),
                },
            });
        }
        let query = match response {
            // With no ID match (a server that got the ID wrong), the last query is the best guess.
            true => self.sent.iter().rev().find(|q| q.id == msg.id).or(self.sent.back()).cloned(),
            false => None,
        };
        if let (Some(q), Some(rq)) = (query.as_ref().and_then(|q| q.questions.first()), msg.questions.first()) {
            if rq.name.eq_ignore_case(&q.name) && rq.name != q.name {
                findings.push(Finding {
                    level: Level::Should,
                    rule: "RFC 1034 §3.1",
                    text: format!(
                        "the question came back as {} but was asked as {} (preserve the case of names)",
                        rq.name, q.name
                    ),
                });
            }
        }
        let lines = text::dig(&msg);
        Ok(Message {
            text: text::one_line(&msg),
            summary: lines.join("\n  "),
            findings,
            detail: Some(Arc::new(DnsFrame { msg, query })),
        })
    }

    fn remember(&mut self, bytes: &[u8]) {
        if let Ok(p) = wire::parse(bytes) {
            if self.sent.len() == REMEMBERED {
                self.sent.pop_front();
            }
            self.sent.push_back(p.msg);
        }
    }
}

impl Codec for DnsCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        if self.transport == Transport::Udp {
            if buf.is_empty() {
                return Err(CodecError {
                    offset: 0,
                    reason: "an empty datagram (a DNS message has at least a 12-byte header)".into(),
                });
            }
            return Ok(Frame::Message(self.frame(buf, 0)?, buf.len()));
        }
        if buf.len() < 2 {
            if eof && !buf.is_empty() {
                return Err(CodecError {
                    offset: buf.len(),
                    reason: "the connection closed inside a two-byte length prefix".into(),
                });
            }
            return Ok(Frame::Incomplete);
        }
        let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
        if len == 0 {
            return Err(CodecError {
                offset: 0,
                reason: "a length prefix of 0 (RFC 7766 §8: each message is prefixed by its length)".into(),
            });
        }
        if buf.len() < 2 + len {
            if eof {
                return Err(CodecError {
                    offset: buf.len(),
                    reason: format!(
                        "the connection closed after {} of the {len} bytes the length prefix announced",
                        buf.len() - 2
                    ),
                });
            }
            return Ok(Frame::Incomplete);
        }
        Ok(Frame::Message(self.frame(&buf[2..2 + len], 2)?, 2 + len))
    }

    fn peer_sent(&mut self, bytes: &[u8]) {
        if self.transport == Transport::Udp {
            self.remember(bytes);
            return;
        }
        self.peer_buf.extend_from_slice(bytes);
        while self.peer_buf.len() >= 2 {
            let len = u16::from_be_bytes([self.peer_buf[0], self.peer_buf[1]]) as usize;
            if self.peer_buf.len() < 2 + len {
                break;
            }
            let msg: Vec<u8> = self.peer_buf.drain(..2 + len).skip(2).collect();
            self.remember(&msg);
        }
    }
}

/// Adds the TCP length prefix (RFC 1035 §4.2.2) when the connection is TCP.
pub fn for_transport(msg: Vec<u8>, transport: Transport) -> Vec<u8> {
    match transport {
        Transport::Udp | Transport::Quic => msg,
        Transport::Tcp => {
            let mut out = (msg.len() as u16).to_be_bytes().to_vec();
            out.extend(msg);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wire::*;
    use super::*;

    fn q(id: u16, name: &str) -> DnsMessage {
        DnsMessage {
            id,
            questions: vec![Question {
                name: text::parse_name(name).unwrap(),
                qtype: rtype::A,
                qclass: CLASS_IN,
            }],
            ..DnsMessage::default()
        }
    }

    fn frames(c: &mut DnsCodec, stream: &[u8], cut: usize) -> Vec<DnsFrame> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for part in [&stream[..cut], &stream[cut..]] {
            buf.extend_from_slice(part);
            while let Frame::Message(m, used) = c.decode(&buf, false).unwrap() {
                out.push(m.detail.unwrap().downcast_ref::<DnsFrame>().unwrap().clone());
                buf.drain(..used);
            }
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn incomplete_tcp_framing_survives_a_split_at_every_byte() {
        let mut a = q(1, "www.example.test");
        a.qr = true;
        let mut b = q(2, "alias.example.test");
        b.qr = true;
        let stream = [for_transport(emit(&a), Transport::Tcp), for_transport(emit(&b), Transport::Tcp)].concat();
        for cut in 0..=stream.len() {
            let mut c = DnsCodec::new(Direction::ServerToClient, Transport::Tcp);
            let got = frames(&mut c, &stream, cut);
            assert_eq!(got.iter().map(|f| f.msg.id).collect::<Vec<_>>(), [1, 2], "cut at {cut}");
        }
    }

    #[test]
    fn rejects_tcp_eof_inside_a_message() {
        let m = for_transport(emit(&q(1, "a.test")), Transport::Tcp);
        let mut c = DnsCodec::new(Direction::ClientToServer, Transport::Tcp);
        assert!(c.decode(&m[..1], true).unwrap_err().reason.contains("length prefix"));
        let e = c.decode(&m[..5], true).unwrap_err();
        assert!(e.reason.contains("after 3 of the"), "{e}");
        assert!(c.decode(&[0, 0], false).is_err());
        // Offsets point into the stream, past the prefix.
        let mut bad = m.clone();
        bad[2 + 12] = 0xc0;
        bad[2 + 13] = 0x0c;
        assert_eq!(c.decode(&bad, false).unwrap_err().offset, 14);
    }

    #[test]
    fn parses_responses_paired_with_their_query_and_checked() {
        let mut c = DnsCodec::new(Direction::ServerToClient, Transport::Udp);
        c.peer_sent(&emit(&q(77, "WwW.ExAmPlE.TeSt")));
        let mut r = q(77, "www.example.test");
        r.qr = true;
        let Frame::Message(m, _) = c.decode(&emit(&r), true).unwrap() else {
            panic!()
        };
        let f = m.detail.as_ref().unwrap().downcast_ref::<DnsFrame>().unwrap();
        assert_eq!(f.query.as_ref().map(|q| q.id), Some(77));
        assert_eq!(m.findings.len(), 1);
        assert_eq!((m.findings[0].level, m.findings[0].rule), (Level::Should, "RFC 1034 §3.1"));
        r.qr = false;
        let Frame::Message(m, _) = c.decode(&emit(&r), true).unwrap() else {
            panic!()
        };
        assert!(m.findings.iter().any(|f| f.level == Level::Must));
        assert!(c.decode(b"", true).is_err());
    }

    #[test]
    fn parses_into_a_dig_like_summary() {
        let mut r = q(4242, "www.example.test");
        r.qr = true;
        r.aa = true;
        r.rd = true;
        r.answer
            .push(text::parse_record("www.example.test. 300 IN A 192.0.2.80").unwrap().rec);
        r.edns = Some(Edns::default());
        let mut c = DnsCodec::new(Direction::ServerToClient, Transport::Udp);
        let Frame::Message(m, _) = c.decode(&emit(&r), true).unwrap() else {
            panic!()
        };
        assert_eq!(
            m.summary,
            ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 4242\n  \
             ;; flags: qr aa rd; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1\n  \
             ;; OPT PSEUDOSECTION:\n  \
             ; EDNS: version: 0, flags:; udp: 1232\n  \
             ;; QUESTION SECTION:\n  \
             ;www.example.test. IN A\n  \
             ;; ANSWER SECTION:\n  \
             www.example.test. 300 IN A 192.0.2.80"
        );
        assert_eq!(
            m.text,
            "id: 4242, opcode: QUERY, status: NOERROR, flags: qr aa rd | www.example.test. IN A | \
             ANSWER: www.example.test. 300 IN A 192.0.2.80 | EDNS udp: 1232"
        );
    }
}
