//! Reading requests off a connection: the head with `httparse` (plus the
//! checks it leaves to us), then the body by Content-Length or chunked.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::guard::Stream;

/// Longest request line, line terminator excluded (else 414).
pub(super) const MAX_REQUEST_LINE: usize = 8 * 1024;
/// Longest header section, final empty line included (else 431).
pub(super) const MAX_HEADER_SECTION: usize = 16 * 1024;
/// Most header field lines (else 431).
const MAX_FIELDS: usize = 100;
/// Largest request body, after chunked decoding (else 413).
pub(super) const MAX_BODY: u64 = 10 * 1024 * 1024;
/// Longest chunk-size line or trailer line.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// HTTP/1.0 or HTTP/1.1 (1.x with x > 1 is served as 1.1, RFC 9110 §2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    /// HTTP/1.0: closes after each response unless asked to keep alive.
    Http10,
    /// HTTP/1.1 (or 1.x): persistent unless asked to close.
    Http11,
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes (never 0: that is `None`).
    Length(u64),
    /// Chunked transfer coding (RFC 9112 §7.1).
    Chunked,
}

/// A parsed and checked request head.
#[derive(Debug)]
pub(super) struct Head {
    /// Case-sensitive, as sent (RFC 9110 §9.1).
    pub method: String,
    /// The request-target, still percent-encoded.
    pub target: String,
    /// The version the client spoke.
    pub version: Version,
    /// Field lines in order, names as sent.
    pub fields: Vec<(String, Vec<u8>)>,
    /// How the body that follows is delimited.
    pub framing: Framing,
    /// Whether the client asked for a persistent connection (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// `Expect: 100-continue` from an HTTP/1.1 client (1.0 ones are ignored, RFC 9110 §10.1.1).
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

/// Why reading a request stopped.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// Close without a word: the peer left, the connection idled out between requests, or I/O failed.
    Silent,
    /// Answer with this status and `Connection: close`, then close: the framing can no longer be trusted.
    Respond(u16),
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

    /// Reads the next request head; blank lines before it are skipped (RFC 9112 §2.2).
    pub(super) async fn read_head(&mut self) -> Result<Head, Stop> {
        // A large body may have left a large allocation behind.
        if self.buf.capacity() > 4 * READ_CHUNK && self.buf.len() < READ_CHUNK {
            self.buf.shrink_to(READ_CHUNK);
        }
        loop {
            let blank = leading_blank_lines(&self.buf);
            self.buf.drain(..blank);
            match parse_head(&self.buf) {
                Parsed::Complete(head, used) => {
                    self.buf.drain(..used);
                    return Ok(head);
                }
                Parsed::Invalid(status) => return Err(Stop::Respond(status)),
                Parsed::Partial => {
                    let started = !self.buf.is_empty();
                    self.fill(started).await?;
                }
            }
        }
    }

    /// Reads the body `framing` announces, first sending `100 Continue` if
    /// `send_continue` (only once the body is known not to be too large).
    pub(super) async fn read_body(&mut self, framing: Framing, send_continue: bool) -> Result<Vec<u8>, Stop> {
        if let Framing::Length(n) = framing {
            if n > MAX_BODY {
                return Err(Stop::Respond(413));
            }
        }
        if send_continue && framing != Framing::None {
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n").await.map_err(|_| Stop::Silent)?;
        }
        match framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(n) => {
                let mut body = Vec::new();
                self.read_exact_into(n, &mut body).await?;
                Ok(body)
            }
            Framing::Chunked => self.read_chunked().await,
        }
    }

    /// Decodes a chunked body (RFC 9112 §7.1); extensions and trailer fields are checked, then dropped.
    async fn read_chunked(&mut self) -> Result<Vec<u8>, Stop> {
        let mut body = Vec::new();
        loop {
            let line = self.read_crlf_line().await?;
            let size = parse_chunk_size(&line).ok_or(Stop::Respond(400))?;
            if size == 0 {
                break;
            }
            if body.len() as u64 + size > MAX_BODY {
                return Err(Stop::Respond(413));
            }
            self.read_exact_into(size, &mut body).await?;
            if !self.read_crlf_line().await?.is_empty() {
                return Err(Stop::Respond(400));
            }
        }
        let mut trailer_bytes = 0;
        loop {
            let line = self.read_crlf_line().await?;
            if line.is_empty() {
                return Ok(body);
            }
            trailer_bytes += line.len() + 2;
            if trailer_bytes > MAX_HEADER_SECTION {
                return Err(Stop::Respond(431));
            }
            if !is_field_line(&line) {
                return Err(Stop::Respond(400));
            }
        }
    }

    /// Takes one CRLF-terminated line (without the CRLF). Chunk framing is
    /// held to CRLF: a bare LF here is a 400, unlike in the head.
    async fn read_crlf_line(&mut self) -> Result<Vec<u8>, Stop> {
        loop {
            if let Some(lf) = self.buf.iter().position(|&b| b == b'\n') {
                if lf == 0 || self.buf[lf - 1] != b'\r' || lf > MAX_CHUNK_LINE {
                    return Err(Stop::Respond(400));
                }
                let line = self.buf[..lf - 1].to_vec();
                self.buf.drain(..=lf);
                return Ok(line);
            }
            if self.buf.len() > MAX_CHUNK_LINE {
                return Err(Stop::Respond(400));
            }
            self.fill(true).await?;
        }
    }

    /// Appends exactly `n` more bytes to `out`, straight from the socket once
    /// the buffer is used up, so `buf` stays small however large the body.
    async fn read_exact_into(&mut self, n: u64, out: &mut Vec<u8>) -> Result<(), Stop> {
        let from_buf = self.buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        out.extend(self.buf.drain(..from_buf));
        let mut left = n - from_buf as u64;
        while left > 0 {
            out.reserve(usize::try_from(left).unwrap_or(READ_CHUNK).min(READ_CHUNK));
            let mut limited = (&mut self.stream).take(left);
            match timeout(self.idle, limited.read_buf(out)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Stop::Silent),
                Ok(Ok(got)) => left -= got as u64,
                Err(_) => return Err(Stop::Respond(408)),
            }
        }
        Ok(())
    }

    /// Reads more into `buf`. Timing out part-way through a request earns a
    /// 408 (RFC 9110 §15.5.9); between requests it just closes.
    async fn fill(&mut self, mid_request: bool) -> Result<(), Stop> {
        self.buf.reserve(READ_CHUNK);
        match timeout(self.idle, self.stream.read_buf(&mut self.buf)).await {
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

    /// Half-closes, then discards what the client still sends (bounded):
    /// closing with unread input makes the kernel send a RST that can destroy
    /// the response before the client reads it.
    pub(super) async fn close(mut self) {
        const LINGER: Duration = Duration::from_secs(1);
        const LINGER_BYTES: u64 = 1 << 20;
        let _ = timeout(LINGER, self.stream.shutdown()).await;
        let mut rest = (&mut self.stream).take(LINGER_BYTES);
        let _ = timeout(LINGER, tokio::io::copy(&mut rest, &mut tokio::io::sink())).await;
    }
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

fn leading_blank_lines(buf: &[u8]) -> usize {
    let mut at = 0;
    loop {
        match &buf[at..] {
            [b'\n', ..] => at += 1,
            [b'\r', b'\n', ..] => at += 2,
            _ => return at,
        }
    }
}

/// Parses a request head from the start of `buf` (blank lines already skipped).
/// Errors surface as soon as the bytes so far can no longer be a valid head,
/// so garbage and HTTP/0.9 requests are answered without waiting for more.
pub(super) fn parse_head(buf: &[u8]) -> Parsed {
    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_REQUEST_LINE + 1 {
            return Parsed::Invalid(414);
        }
        return if plausible_request_line(buf) {
            Parsed::Partial
        } else {
            Parsed::Invalid(400)
        };
    };
    let line = buf[..lf].strip_suffix(b"\r").unwrap_or(&buf[..lf]);
    if line.len() > MAX_REQUEST_LINE {
        return Parsed::Invalid(414);
    }
    let (method, target, version) = match parse_request_line(line) {
        Ok(parts) => parts,
        Err(status) => return Parsed::Invalid(status),
    };
    let section = &buf[lf + 1..];
    let Some(end) = header_section_end(section) else {
        return if section.len() > MAX_HEADER_SECTION {
            Parsed::Invalid(431)
        } else {
            Parsed::Partial
        };
    };
    if end > MAX_HEADER_SECTION {
        return Parsed::Invalid(431);
    }
    // httparse's defaults reject obs-fold, whitespace before the colon and
    // bare CR, which RFC 9112 §5.1, §5.2 and §2.2 want rejected; the unit
    // tests below pin that down.
    let mut slots = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let fields = match httparse::parse_headers(&section[..end], &mut slots) {
        Ok(httparse::Status::Complete((used, fields))) if used == end => fields,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid(431),
        _ => return Parsed::Invalid(400),
    };
    let fields = fields.iter().map(|f| (f.name.to_owned(), f.value.to_vec())).collect();
    match check_head(method, target, version, fields) {
        Ok(head) => Parsed::Complete(head, lf + 1 + end),
        Err(status) => Parsed::Invalid(status),
    }
}

/// Where the header section (which starts right after the request line) ends, final empty line included.
fn header_section_end(section: &[u8]) -> Option<usize> {
    if section.starts_with(b"\n") {
        return Some(1);
    }
    if section.starts_with(b"\r\n") {
        return Some(2);
    }
    section
        .windows(3)
        .position(|w| w == b"\n\r\n")
        .map(|at| at + 3)
        .into_iter()
        .chain(section.windows(2).position(|w| w == b"\n\n").map(|at| at + 2))
        .min()
}

/// `method SP request-target SP HTTP-version`, single spaces (RFC 9112 §3).
fn parse_request_line(line: &[u8]) -> Result<(String, String, Version), u16> {
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(400);
    };
    let version = match version {
        [b'H', b'T', b'T', b'P', b'/', major @ b'0'..=b'9', b'.', minor @ b'0'..=b'9'] => match (major, minor) {
            (b'1', b'0') => Version::Http10,
            (b'1', _) => Version::Http11,
            _ => return Err(505),
        },
        _ => return Err(400),
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(400);
    }
    if target.is_empty() || !target.iter().all(|&b| (0x21..=0x7e).contains(&b)) {
        return Err(400);
    }
    // Both are ASCII, checked just above.
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ok((text(method), text(target), version))
}

/// Could `partial` (no LF yet) still become a valid request line?
fn plausible_request_line(partial: &[u8]) -> bool {
    let mut spaces = 0;
    for (at, &b) in partial.iter().enumerate() {
        match b {
            b' ' => spaces += 1,
            b'\r' if at + 1 == partial.len() => {}
            _ if spaces == 0 && !is_tchar(b) => return false,
            0x21..=0x7e => {}
            _ => return false,
        }
        if spaces > 2 {
            return false;
        }
    }
    true
}

/// The checks on field values that decide whether and how a request can be read at all.
fn check_head(method: String, target: String, version: Version, fields: Vec<(String, Vec<u8>)>) -> Result<Head, u16> {
    let named = |name: &'static str| {
        fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    };

    // RFC 9112 §3.2: exactly one valid Host in 1.1, at most one in 1.0.
    let hosts: Vec<&[u8]> = named("host").collect();
    match hosts[..] {
        [] if version == Version::Http10 => {}
        [host] if is_host(host) => {}
        _ => return Err(400),
    }

    let lengths: Vec<&[u8]> = named("content-length").collect();
    let codings: Vec<String> = list_members(named("transfer-encoding"));
    let framing = if named("transfer-encoding").next().is_some() {
        // RFC 9112 §6.1 and §6.3: TE with CL, or in 1.0, is faulty framing.
        if !lengths.is_empty() || version == Version::Http10 {
            return Err(400);
        }
        match codings.split_last() {
            Some((last, rest)) if last == "chunked" && !rest.iter().any(|c| c == "chunked") => {
                if !rest.is_empty() {
                    return Err(501);
                }
                Framing::Chunked
            }
            _ => return Err(400),
        }
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
    let keep_alive = match version {
        Version::Http11 => !has("close"),
        Version::Http10 => has("keep-alive") && !has("close"),
    };

    let expectations = list_members(named("expect"));
    if expectations.iter().any(|e| e != "100-continue") {
        return Err(417);
    }
    let expect_continue = version == Version::Http11 && !expectations.is_empty();

    Ok(Head {
        method,
        target,
        version,
        fields,
        framing,
        keep_alive,
        expect_continue,
    })
}

/// Content-Length: identical repeats (as lines or list members) are one
/// value, anything else is a 400 (RFC 9112 §6.3); a length that does not fit
/// is simply too large.
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
fn list_members<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
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

/// `chunk-size [ chunk-ext ]` (RFC 9112 §7.1.1): 1 to 16 hex digits, then
/// extensions, which are ignored but may not hold control characters.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let (size, ext) = match line.iter().position(|&b| b == b';') {
        Some(at) => (&line[..at], &line[at..]),
        None => (line, &[][..]),
    };
    let size = size.trim_ascii_end();
    if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    if ext.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(size).ok()?, 16).ok()
}

/// `field-name ":" OWS field-value OWS` with a token name and no control characters but HTAB.
fn is_field_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    !name.is_empty() && name.iter().all(|&b| is_tchar(b)) && value.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// `tchar` from RFC 9110 §5.6.2.
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(head: &[u8]) -> Option<u16> {
        match parse_head(head) {
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
        let h = head(b"GET /a?b HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, Close\r\n\r\n");
        assert_eq!((h.method.as_str(), h.target.as_str(), h.version), ("GET", "/a?b", Version::Http11));
        assert!(!h.keep_alive);
        assert_eq!(h.framing, Framing::None);
        let h = head(b"GET / HTTP/1.0\nConnection: keep-alive\n\n");
        assert!(h.keep_alive && h.version == Version::Http10);
        assert_eq!(head(b"GET / HTTP/1.7\r\nHost:\r\n\r\n").version, Version::Http11);
        let h = head(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.expect_continue);
        let h = head(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
    }

    #[test]
    fn incomplete_heads_wait() {
        for partial in [
            &b"G"[..],
            b"GET / HT",
            b"GET / HTTP/1.1\r",
            b"GET / HTTP/1.1\r\nHost: x\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r",
        ] {
            assert_eq!(status(partial), Some(0), "{:?}", String::from_utf8_lossy(partial));
        }
    }

    #[test]
    fn bad_heads_are_rejected() {
        let cases: &[(&[u8], u16)] = &[
            (b"\x16\x03\x01\x02\x00\x01", 400),
            (b"GET /\r\n", 400),
            (b"GET  / HTTP/1.1\r\n", 400),
            (b"GET / HTTP/1.1 \r\n", 400),
            (b"GET / http/1.1\r\n", 400),
            (b"G(T / HTTP/1.1\r\n", 400),
            (b"GET / HTTP/2.0\r\n", 505),
            (b"GET / HTTP/0.9\r\n", 505),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417),
        ];
        for (bytes, want) in cases {
            assert_eq!(status(bytes), Some(*want), "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn limits() {
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_REQUEST_LINE));
        assert_eq!(status(long_line.as_bytes()), Some(414));
        assert_eq!(status(&long_line.as_bytes()[..MAX_REQUEST_LINE + 2]), Some(414));
        let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "b".repeat(MAX_HEADER_SECTION));
        assert_eq!(status(big.as_bytes()), Some(431));
        let many: String = (0..=MAX_FIELDS).map(|i| format!("X{i}: y\r\n")).collect();
        assert_eq!(status(format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n").as_bytes()), Some(431));
        assert_eq!(
            content_length(&[b"99999999999999999999999"]),
            Ok(u64::MAX),
            "too large, not malformed"
        );
    }

    #[test]
    fn blank_lines_before_the_request_line() {
        assert_eq!(leading_blank_lines(b"\r\n\n\r\nGET"), 5);
        assert_eq!(leading_blank_lines(b"\r"), 0);
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a"), Some(26));
        assert_eq!(parse_chunk_size(b"0"), Some(0));
        assert_eq!(parse_chunk_size(b"A;name=value;q=\"x y\""), Some(10));
        assert_eq!(parse_chunk_size(b"5 ;ext"), Some(5));
        for bad in [&b""[..], b";ext", b"-1", b"0x5", b"g", b"12345678901234567", b"5;a\rb"] {
            assert_eq!(parse_chunk_size(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(is_field_line(b"Expires: soon"));
        assert!(!is_field_line(b"no colon") && !is_field_line(b": empty name") && !is_field_line(b"Bad Name: x"));
    }
}
