//! HTTP/1.x framing (RFC 9112): requests and responses one by one, pipelined, with the framing a
//! response gets from the request it answers (HEAD, CONNECT) learnt through `peer_sent`.

use std::collections::VecDeque;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::parse::{self, Framing, HttpMessage, StartLine};
use crate::proto::{escape_bytes, Codec, CodecError, Frame, Message};

/// The first line after the start line that cannot be a field line (no colon), when the head never
/// ended: 1-based line number, its offset, and the line. A body sent without the empty line that
/// ends the head reads this way (`<!DOCTYPE html>` where a field was due).
fn unended_head(buf: &[u8]) -> Option<(usize, usize, &[u8])> {
    let mut offset = 0;
    // Only whole lines: the last piece, after the last LF, may just be cut short.
    let whole = buf.iter().rposition(|&b| b == b'\n').map_or(&buf[..0], |n| &buf[..n]);
    for (i, line) in whole.split(|&b| b == b'\n').enumerate() {
        let text = line.strip_suffix(b"\r").unwrap_or(line);
        // Line 1 is the start line; a continuation (obs-fold) starts with white space.
        if i > 0 && !text.is_empty() && !text.contains(&b':') && !text[0].is_ascii_whitespace() {
            // Binary (another protocol's frames) is not a body that lost its empty line.
            let is_text = text.iter().all(|&b| b >= 0x20 && b != 0x7f || b == b'\t');
            return is_text.then_some((i + 1, offset, text));
        }
        offset += line.len() + 1;
    }
    None
}

/// Frames requests (client to server) or responses (server to client).
pub struct HttpCodec {
    request: bool,
    /// Methods of requests sent the other way and not yet answered (a HEAD response has no body).
    pending: VecDeque<String>,
    peer_buf: Vec<u8>,
}

impl HttpCodec {
    /// A codec for requests (`request`) or responses.
    pub fn new(request: bool) -> HttpCodec {
        HttpCodec {
            request,
            pending: VecDeque::new(),
            peer_buf: Vec::new(),
        }
    }
}

impl Codec for HttpCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let Some(mut head) = parse::parse_head(buf, self.request)? else {
            if eof && buf.iter().any(|b| !b.is_ascii_whitespace()) {
                return Err(match unended_head(buf) {
                    Some((n, offset, line)) => CodecError {
                        offset,
                        reason: format!(
                            "no empty line after the header section: line {n} \"{}\" has no colon, so the head never \
                             ended (RFC 9112 §2.1: the header section ends with an empty line, CRLF CRLF)",
                            escape_bytes(line, 80)
                        ),
                    },
                    None => CodecError {
                        offset: buf.len(),
                        reason: "the connection closed in the middle of a message head".into(),
                    },
                });
            }
            return Ok(Frame::Incomplete);
        };
        let head_request = !self.request && self.pending.front().is_some_and(|m| m == "HEAD");
        let framing = parse::framing(&mut head, self.request, head_request)?;
        let rest = &buf[head.len..];
        let (body, trailers, used) = match framing {
            Framing::None => (Vec::new(), Vec::new(), 0),
            Framing::Length(n) if rest.len() >= n => (rest[..n].to_vec(), Vec::new(), n),
            Framing::Length(n) => {
                if eof {
                    return Err(CodecError {
                        offset: buf.len(),
                        reason: format!(
                            "the connection closed after {} of the {n} body bytes Content-Length announced",
                            rest.len()
                        ),
                    });
                }
                return Ok(Frame::Incomplete);
            }
            Framing::Chunked => match parse::dechunk(rest).map_err(|e| CodecError {
                offset: head.len + e.offset,
                reason: e.reason,
            })? {
                Some((b, t, used)) => (b, t, used),
                None if eof => {
                    return Err(CodecError {
                        offset: buf.len(),
                        reason: "the connection closed before the last chunk".into(),
                    })
                }
                None => return Ok(Frame::Incomplete),
            },
            Framing::Close if eof => (rest.to_vec(), Vec::new(), rest.len()),
            Framing::Close => {
                if rest.len() > parse::MAX_BODY {
                    return Err(CodecError {
                        offset: buf.len(),
                        reason: "a close-delimited body over the size limit".into(),
                    });
                }
                return Ok(Frame::Incomplete);
            }
        };
        let msg = HttpMessage {
            start: head.start,
            version: head.version,
            fields: head.fields,
            body,
            framing,
            trailers,
        };
        if !self.request && !msg.status().is_some_and(|s| (100..200).contains(&s) && s != 101) {
            self.pending.pop_front();
        }
        let text = start_line(&msg);
        let summary = render(&msg);
        Ok(Frame::Message(
            Message {
                text,
                summary,
                findings: head.findings,
                detail: Some(Arc::new(msg)),
            },
            head.len + used,
        ))
    }

    fn peer_sent(&mut self, bytes: &[u8]) {
        if self.request {
            return;
        }
        self.peer_buf.extend_from_slice(bytes);
        let mut requests = HttpCodec::new(true);
        loop {
            match requests.decode(&self.peer_buf, false) {
                Ok(Frame::Message(m, used)) => {
                    let method = m
                        .detail
                        .as_ref()
                        .and_then(|d| d.downcast_ref::<HttpMessage>())
                        .map(|h| match &h.start {
                            StartLine::Request { method, .. } => method.clone(),
                            StartLine::Response { .. } => String::new(),
                        });
                    self.pending.push_back(method.unwrap_or_default());
                    self.peer_buf.drain(..used);
                }
                Ok(Frame::Incomplete) => break,
                Err(_) => {
                    // Deliberately malformed requests still get one response each.
                    self.pending.push_back(String::new());
                    self.peer_buf.clear();
                    break;
                }
            }
        }
    }
}

/// The start line as text.
pub fn start_line(m: &HttpMessage) -> String {
    let (maj, min) = m.version;
    match &m.start {
        StartLine::Request { method, target } => format!("{method} {target} HTTP/{maj}.{min}"),
        StartLine::Response { status, reason } => format!("HTTP/{maj}.{min} {status} {reason}").trim_end().to_string(),
    }
}

/// A body as one line: short text quoted, anything else by size and digest.
pub fn body_summary(body: &[u8]) -> String {
    match std::str::from_utf8(body) {
        Ok(t) if t.chars().count() <= 300 => format!("\"{}\"", escape_bytes(body, 300)),
        _ => format!("{} bytes, sha256 {}", body.len(), &sha256_hex(body)[..16]),
    }
}

/// Hex SHA-256 of `b`.
pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// Start line, fields and body, one per line, for transcripts and failures.
pub fn render(m: &HttpMessage) -> String {
    let mut s = start_line(m);
    for (n, v) in &m.fields {
        s.push_str(&format!("\n  {n}: {v}"));
    }
    let framing = match m.framing {
        Framing::None => "",
        Framing::Length(_) => " (Content-Length)",
        Framing::Chunked => " (chunked)",
        Framing::Close => " (until close)",
    };
    if !m.body.is_empty() || matches!(m.framing, Framing::Length(_) | Framing::Chunked) {
        s.push_str(&format!("\n  body{framing}: {}", body_summary(&m.body)));
    }
    for (n, v) in &m.trailers {
        s.push_str(&format!("\n  trailer {n}: {v}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(c: &mut HttpCodec, buf: &[u8], eof: bool) -> (HttpMessage, usize, Vec<crate::proto::Finding>) {
        match c.decode(buf, eof).unwrap() {
            Frame::Message(m, used) => {
                let h = m.detail.unwrap().downcast_ref::<HttpMessage>().unwrap().clone();
                (h, used, m.findings)
            }
            Frame::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn parses_pipelined_responses_one_by_one() {
        let mut c = HttpCodec::new(false);
        c.peer_sent(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        let stream = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let (m, used, _) = one(&mut c, stream, false);
        assert_eq!((m.status(), m.body.as_slice(), used), (Some(200), &b"ab"[..], 40));
        let (m, used, _) = one(&mut c, &stream[40..], false);
        assert_eq!((m.status(), used), (Some(404), 45));
    }

    #[test]
    fn parses_a_head_response_without_a_body_even_with_content_length() {
        let mut c = HttpCodec::new(false);
        c.peer_sent(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
        let (m, used, _) = one(&mut c, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false);
        assert_eq!((m.body.len(), used), (0, 39));
    }

    #[test]
    fn parses_interim_responses_that_do_not_answer_the_request() {
        let mut c = HttpCodec::new(false);
        c.peer_sent(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
        one(&mut c, b"HTTP/1.1 100 Continue\r\n\r\n", false);
        let (m, _, _) = one(&mut c, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false);
        assert!(m.body.is_empty());
    }

    #[test]
    fn incomplete_close_delimited_bodies_until_eof() {
        let mut c = HttpCodec::new(false);
        let buf = b"HTTP/1.0 200 OK\r\n\r\nhello";
        assert!(matches!(c.decode(buf, false).unwrap(), Frame::Incomplete));
        let (m, used, _) = one(&mut c, buf, true);
        assert_eq!((m.body.as_slice(), m.framing, used), (&b"hello"[..], Framing::Close, buf.len()));
    }

    #[test]
    fn rejects_truncated_bodies_at_eof() {
        let mut c = HttpCodec::new(false);
        let e = c.decode(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true).unwrap_err();
        assert!(e.reason.contains("3 of the 10"), "{e}");
        assert!(c
            .decode(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", true)
            .is_err());
        assert!(c.decode(b"HTTP/1.1 200 O", true).is_err());
    }

    #[test]
    fn parses_requests_with_bodies_and_answers_to_garbage() {
        let mut c = HttpCodec::new(true);
        let (m, used, _) = one(
            &mut c,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET",
            false,
        );
        assert_eq!((m.body.as_slice(), used), (&b"abc"[..], 73));
        let mut r = HttpCodec::new(false);
        r.peer_sent(b"\x00\x01 garbage\r\n\r\n");
        let (m, _, _) = one(&mut r, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad", false);
        assert_eq!(m.body, b"bad");
    }

    #[test]
    fn parses_into_a_summary_with_fields_and_body() {
        let mut c = HttpCodec::new(false);
        let Frame::Message(m, _) = c
            .decode(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi", false)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(m.text, "HTTP/1.1 200 OK");
        assert_eq!(
            m.summary,
            "HTTP/1.1 200 OK\n  Content-Type: text/plain\n  Content-Length: 2\n  body (Content-Length): \"hi\""
        );
    }

    #[test]
    fn round_trip_a_decoded_request_emits_back_to_the_same_message() {
        let wire = b"PUT /a%20b?q=1 HTTP/1.1\r\nHost: x\r\nX-Two: a\r\nX-Two: b\r\nContent-Length: 5\r\n\r\nhello";
        let (m, used, f) = one(&mut HttpCodec::new(true), wire, false);
        assert_eq!((used, f.len()), (wire.len(), 0));
        let StartLine::Request { method, target } = &m.start else {
            panic!()
        };
        let mut again = format!("{method} {target} HTTP/{}.{}\r\n", m.version.0, m.version.1);
        for (n, v) in &m.fields {
            again.push_str(&format!("{n}: {v}\r\n"));
        }
        let mut again = again.into_bytes();
        again.extend_from_slice(b"\r\n");
        again.extend_from_slice(&m.body);
        assert_eq!(again, wire);
    }

    #[test]
    fn rejects_a_head_that_never_ended_naming_the_line_without_a_colon() {
        let mut c = HttpCodec::new(false);
        c.peer_sent(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let e = c
            .decode(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n<!DOCTYPE html>\r\n<p>hi</p>\r\n",
                true,
            )
            .unwrap_err();
        assert!(
            e.reason
                .starts_with("no empty line after the header section: line 3 \"<!DOCTYPE html>\" has no colon"),
            "{e}"
        );
        assert_eq!(e.offset, 42);
        let e = HttpCodec::new(false).decode(b"HTTP/1.1 200 OK\r\nContent-Ty", true).unwrap_err();
        assert!(e.reason.contains("closed in the middle of a message head"), "{e}");
    }
}
