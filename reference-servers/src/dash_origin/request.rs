//! Reading requests off a connection: the head with `httparse` plus the checks it leaves to us
//! (Host, framing, persistence), and skipping the body a GET or HEAD should not have.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::guard::Stream;

/// Longest request head, blank lines before it included (else 414 or 431).
pub(super) const MAX_HEAD: usize = 16 * 1024;
/// Most header field lines (else 431).
const MAX_FIELDS: usize = 64;
/// Largest request body read and dropped to keep the connection; a larger one ends it after the answer.
const MAX_SKIPPED_BODY: u64 = 64 * 1024;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 8 * 1024;

/// A parsed and checked request head.
#[derive(Debug)]
pub(super) struct Head {
    /// Case-sensitive, as sent (RFC 9110 §9.1).
    pub method: String,
    /// The request-target, still percent-encoded.
    pub target: String,
    /// HTTP/1.0 rather than 1.1.
    pub http10: bool,
    /// Field lines in order, names as sent.
    pub fields: Vec<(String, Vec<u8>)>,
    /// Whether the client asked for a persistent connection (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// How a body after the head is delimited.
    pub framing: Framing,
    /// `Expect: 100-continue`: the client may hold its body back until told to send it.
    pub expect_continue: bool,
}

impl Head {
    /// Values of every field line named `name` (case-insensitively).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes (never 0: that is `None`).
    Length(u64),
    /// Transfer-Encoding: nothing here needs a body, so it is not decoded and the connection ends after the answer.
    Coded,
}

/// Why reading a request stopped.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// Close without a word: the peer left, the connection idled out between requests, or I/O failed.
    Silent,
    /// Answer with this status and `Connection: close`, then close: the framing can no longer be trusted.
    Respond(u16),
}

/// What the buffered bytes amount to so far.
#[derive(Debug)]
pub(super) enum Parsed {
    /// Not a whole head yet, but nothing wrong so far.
    Partial,
    /// A head, and how many bytes it used.
    Complete(Head, usize),
    /// Answer with this status and close.
    Invalid(u16),
}

/// One client connection: the socket plus the bytes read but not yet used.
pub(super) struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    idle: Duration,
}

impl Conn {
    /// Wraps an accepted socket; every read and write waits at most `idle`.
    pub(super) fn new(stream: Stream, idle: Duration) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
            idle,
        }
    }

    /// Reads the next request head.
    pub(super) async fn read_head(&mut self) -> Result<Head, Stop> {
        loop {
            if !self.buf.is_empty() {
                match parse_head(&self.buf) {
                    Parsed::Complete(head, used) => {
                        self.buf.drain(..used);
                        return Ok(head);
                    }
                    Parsed::Invalid(status) => return Err(Stop::Respond(status)),
                    Parsed::Partial => {}
                }
            }
            if self.buf.len() >= MAX_HEAD {
                let line_done = self.buf.contains(&b'\n');
                return Err(Stop::Respond(if line_done { 431 } else { 414 }));
            }
            let started = !self.buf.is_empty();
            self.fill(started).await?;
        }
    }

    /// Reads and drops the body `head` announces; false if it was left unread, so the connection
    /// must end after the answer (too large, not length-delimited, or held back for a `100 Continue`).
    pub(super) async fn skip_body(&mut self, head: &Head) -> Result<bool, Stop> {
        let n = match head.framing {
            Framing::None => return Ok(true),
            Framing::Length(n) if n <= MAX_SKIPPED_BODY && !head.expect_continue => n,
            Framing::Length(_) | Framing::Coded => return Ok(false),
        };
        // Bounded above, so the cast cannot truncate.
        let mut left = n as usize;
        let from_buf = left.min(self.buf.len());
        self.buf.drain(..from_buf);
        left -= from_buf;
        let mut sink = vec![0u8; left.min(READ_CHUNK)];
        while left > 0 {
            let want = left.min(sink.len());
            match timeout(self.idle, self.stream.read(&mut sink[..want])).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Stop::Silent),
                Ok(Ok(got)) => left -= got,
                Err(_) => return Err(Stop::Respond(408)),
            }
        }
        Ok(true)
    }

    /// Reads more into `buf`. Timing out part-way through a request earns a 408 (RFC 9110
    /// §15.5.9); between requests the connection is just closed (RFC 9112 §9.5).
    async fn fill(&mut self, mid_request: bool) -> Result<(), Stop> {
        self.buf.reserve(READ_CHUNK);
        let mut limited = (&mut self.stream).take(READ_CHUNK as u64);
        match timeout(self.idle, limited.read_buf(&mut self.buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => Err(Stop::Silent),
            Ok(Ok(_)) => Ok(()),
            Err(_) if mid_request => Err(Stop::Respond(408)),
            Err(_) => Err(Stop::Silent),
        }
    }

    /// Writes all of `bytes`, giving up if the client has not taken any for `idle`.
    pub(super) async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            match timeout(self.idle, self.stream.write(rest)).await {
                Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => rest = &rest[n..],
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
            }
        }
        Ok(())
    }

    /// Half-closes, then discards what the client still sends (bounded): closing with unread
    /// input makes the kernel send a RST that can destroy the response before it is read.
    pub(super) async fn close(mut self) {
        const LINGER: Duration = Duration::from_secs(1);
        const LINGER_BYTES: u64 = 1 << 20;
        let _ = timeout(LINGER, self.stream.shutdown()).await;
        let mut rest = (&mut self.stream).take(LINGER_BYTES);
        let _ = timeout(LINGER, tokio::io::copy(&mut rest, &mut tokio::io::sink())).await;
    }
}

/// Parses a request head from the start of `buf`. httparse skips blank lines before the request
/// line (RFC 9112 §2.2) and, for requests, rejects obs-fold, whitespace before a colon and bare CR.
pub(super) fn parse_head(buf: &[u8]) -> Parsed {
    let mut slots = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut request = httparse::Request::new(&mut slots);
    let used = match request.parse(buf) {
        // A head may arrive whole in the read that takes the buffer past the cap.
        Ok(httparse::Status::Complete(used)) if used > MAX_HEAD => return Parsed::Invalid(431),
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid(431),
        Err(httparse::Error::Version) if names_other_version(buf) => return Parsed::Invalid(505),
        Err(_) => return Parsed::Invalid(400),
    };
    let (Some(method), Some(target), Some(version)) = (request.method, request.path, request.version) else {
        return Parsed::Invalid(400);
    };
    if target.is_empty() || !target.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Parsed::Invalid(400);
    }
    let fields = request.headers.iter().map(|f| (f.name.to_owned(), f.value.to_vec())).collect();
    match check_head(method.to_owned(), target.to_owned(), version == 0, fields) {
        Ok(head) => Parsed::Complete(head, used),
        Err(status) => Parsed::Invalid(status),
    }
}

/// Whether the request line ends in a well-formed `HTTP/d.d` that httparse refused: another
/// major version (505, RFC 9110 §15.6.6) rather than garbage (400).
fn names_other_version(buf: &[u8]) -> bool {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(buf.len());
    let rest = &buf[start..];
    let line = &rest[..rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    matches!(
        line.rsplit(|&b| b == b' ').next(),
        Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor]) if major.is_ascii_digit() && minor.is_ascii_digit() && *major != b'1'
    )
}

/// The checks on field values that decide whether and how a request can be read at all.
fn check_head(method: String, target: String, http10: bool, fields: Vec<(String, Vec<u8>)>) -> Result<Head, u16> {
    let named = |name: &'static str| {
        fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    };

    // RFC 9112 §3.2: exactly one valid Host in 1.1, at most one in 1.0.
    let hosts: Vec<&[u8]> = named("host").collect();
    match hosts[..] {
        [] if http10 => {}
        [host] if is_host(host) => {}
        _ => return Err(400),
    }

    let lengths: Vec<&[u8]> = named("content-length").collect();
    let framing = if named("transfer-encoding").next().is_some() {
        // RFC 9112 §6.1: both is a smuggling attempt or a broken client; in 1.0 TE is not defined.
        if !lengths.is_empty() || http10 {
            return Err(400);
        }
        Framing::Coded
    } else if lengths.is_empty() {
        Framing::None
    } else {
        match content_length(&lengths)? {
            0 => Framing::None,
            n => Framing::Length(n),
        }
    };

    let connection = list_members(named("connection"));
    let has = |token: &str| connection.iter().any(|t| t == token);
    let keep_alive = if http10 {
        has("keep-alive") && !has("close")
    } else {
        !has("close")
    };
    let expect_continue = list_members(named("expect")).iter().any(|e| e == "100-continue");

    Ok(Head {
        method,
        target,
        http10,
        fields,
        keep_alive,
        framing,
        expect_continue,
    })
}

/// Content-Length: identical repeats (as lines or list members) are one value, anything else is
/// a 400 (RFC 9112 §6.3); a length that does not fit is simply too large.
fn content_length(values: &[&[u8]]) -> Result<u64, u16> {
    let mut length = None;
    for value in values {
        for member in value.split(|&b| b == b',') {
            let member = member.trim_ascii();
            if member.is_empty() || !member.iter().all(u8::is_ascii_digit) {
                return Err(400);
            }
            let n = member
                .iter()
                .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
                .unwrap_or(u64::MAX);
            if length.is_some_and(|l| l != n) {
                return Err(400);
            }
            length = Some(n);
        }
    }
    length.ok_or(400)
}

/// The lowercased, non-empty members of comma-separated list fields (RFC 9110 §5.6.1).
pub(super) fn list_members<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|m| String::from_utf8_lossy(m.trim_ascii()).to_ascii_lowercase())
        .filter(|m| !m.is_empty())
        .collect()
}

/// `uri-host [ ":" port ]`, loosely: the characters a reg-name, IP literal and port may use; empty is allowed (RFC 9112 §3.2).
fn is_host(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(bytes: &[u8]) -> Option<u16> {
        match parse_head(bytes) {
            Parsed::Invalid(status) => Some(status),
            Parsed::Complete(..) => None,
            Parsed::Partial => Some(0),
        }
    }

    fn head(bytes: &[u8]) -> Head {
        match parse_head(bytes) {
            Parsed::Complete(head, used) => {
                assert_eq!(used, bytes.len());
                head
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn well_formed_heads() {
        let h = head(b"\r\nGET /a.mpd?x HTTP/1.1\r\nHost: x:80\r\nRange: bytes=0-1\r\n\r\n");
        assert_eq!((h.method.as_str(), h.target.as_str(), h.http10), ("GET", "/a.mpd?x", false));
        assert!(h.keep_alive);
        assert_eq!(h.values("RANGE").collect::<Vec<_>>(), [&b"bytes=0-1"[..]]);
        let h = head(b"HEAD / HTTP/1.0\nConnection: Keep-Alive\n\n");
        assert!(h.http10 && h.keep_alive);
        assert!(!head(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(!head(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x, close\r\n\r\n").keep_alive);
        let h = head(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\nExpect: 100-continue\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(3));
        assert!(h.expect_continue);
        assert_eq!(
            head(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").framing,
            Framing::Coded
        );
    }

    #[test]
    fn partial_heads_wait() {
        for partial in [
            &b"G"[..],
            b"GET / HT",
            b"GET / HTTP/1.1\r\nHost: a\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r",
        ] {
            assert_eq!(status(partial), Some(0), "{:?}", String::from_utf8_lossy(partial));
        }
    }

    #[test]
    fn bad_heads_are_refused() {
        let cases: &[(&[u8], u16)] = &[
            (b"\x16\x03\x01\x02\x00\x01", 400),
            (b"GET  / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            (b"GET / FOO/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ];
        for (bytes, want) in cases {
            assert_eq!(status(bytes), Some(*want), "{:?}", String::from_utf8_lossy(bytes));
        }
        let many: String = (0..=MAX_FIELDS).map(|i| format!("X{i}: y\r\n")).collect();
        assert_eq!(status(format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n").as_bytes()), Some(431));
    }
}
