//! HTTP/1.x messages on the wire: bounded reading of heads (with httparse)
//! and bodies (RFC 9112 §6), header-field helpers, and writing heads.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

use crate::guard::Stream;

/// Largest request or response head (start line and header fields).
pub(super) const MAX_HEAD: usize = 16 * 1024;
/// Largest body the proxy reads, from either side.
pub(super) const MAX_BODY: usize = 10 * 1024 * 1024;
/// How long moving one whole body may take, however steadily it trickles in.
pub(super) const TRANSFER_LIMIT: Duration = Duration::from_secs(60);
/// Header field lines per head; more is treated like an oversized head.
const MAX_FIELDS: usize = 100;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// Header fields that describe one connection, not the message (RFC 9110 §7.6.1),
/// plus the proxy-authentication pair, which is meant for this proxy alone.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Parses a complete head from the start of a buffer: the head and its length, or `None` while incomplete.
pub(super) type HeadParser<T> = fn(&[u8]) -> Result<Option<(T, usize)>, ReadError>;

/// Header field lines in the order received: (name as sent, value bytes).
pub(super) type Headers = Vec<(String, Vec<u8>)>;

/// A request from a client, body already read (`None`: the request had no body framing at all).
#[derive(Debug)]
pub(super) struct Request {
    /// Method, case-sensitive as in RFC 9110 §9.1.
    pub method: String,
    /// The request-target exactly as sent.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// All header field lines.
    pub headers: Headers,
    /// The de-chunked body, if the request was framed with Content-Length or chunked.
    pub body: Option<Vec<u8>>,
}

/// A complete response: from an origin, from the cache, or made up by the proxy.
#[derive(Debug, Clone)]
pub(super) struct Response {
    /// HTTP minor version it was received with (for `Via`).
    pub minor: u8,
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header field lines; Content-Length is rewritten when the response is sent.
    pub headers: Headers,
    /// The de-chunked body; shared so cache hits do not copy it.
    pub body: Arc<[u8]>,
}

/// Why a message could not be read.
#[derive(Debug)]
pub(super) enum ReadError {
    /// The peer closed or reset the connection mid-message.
    Closed,
    /// The peer was too slow.
    Timeout,
    /// A head or body over its cap.
    TooLarge,
    /// Not HTTP/1.x, or unusable framing.
    Malformed(&'static str),
    /// A transfer coding other than plain `chunked`.
    UnknownCoding,
}

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(usize),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the peer closes (responses only).
    UntilClose,
}

/// A socket with the bytes read from it but not yet consumed.
pub(super) struct Conn {
    /// The socket, for writing.
    pub stream: Stream,
    buf: Vec<u8>,
    /// Longest silence tolerated while a body is arriving.
    stall: Duration,
}

impl Conn {
    /// Wraps `stream`; `stall` bounds each wait for more body bytes.
    pub fn new(stream: Stream, stall: Duration) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
            stall,
        }
    }

    /// True when nothing of a next message has arrived yet.
    pub fn nothing_pending(&self) -> bool {
        self.buf.is_empty()
    }

    /// Writes all of `bytes` by `deadline`.
    pub async fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), ReadError> {
        match timeout_at(deadline, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ReadError::Closed),
            Err(_) => Err(ReadError::Timeout),
        }
    }

    /// Reads more bytes; `false` at EOF.
    async fn fill(&mut self, deadline: Instant) -> Result<bool, ReadError> {
        self.buf.reserve(READ_CHUNK);
        let mut limited = (&mut self.stream).take(READ_CHUNK as u64);
        match timeout_at(deadline, limited.read_buf(&mut self.buf)).await {
            Ok(Ok(n)) => Ok(n > 0),
            // A reset is just a rude close.
            Ok(Err(_)) => Ok(false),
            Err(_) => Err(ReadError::Timeout),
        }
    }

    /// Like `fill`, but also gives up after `stall` without a byte.
    async fn fill_body(&mut self, deadline: Instant) -> Result<(), ReadError> {
        let deadline = deadline.min(Instant::now() + self.stall);
        if self.fill(deadline).await? {
            Ok(())
        } else {
            Err(ReadError::Closed)
        }
    }

    /// Reads a head with `parse`; `None` when the peer closed before sending anything.
    pub async fn read_head<T>(&mut self, deadline: Instant, parse: HeadParser<T>) -> Result<Option<T>, ReadError> {
        loop {
            if let Some((head, used)) = parse(&self.buf)? {
                if used > MAX_HEAD {
                    return Err(ReadError::TooLarge);
                }
                self.buf.drain(..used);
                return Ok(Some(head));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ReadError::TooLarge);
            }
            if !self.fill(deadline).await? {
                return if self.buf.is_empty() { Ok(None) } else { Err(ReadError::Closed) };
            }
        }
    }

    /// Reads a body framed by `framing`, at most `max` bytes of it, by `deadline`.
    pub async fn read_body(&mut self, framing: Framing, deadline: Instant, max: usize) -> Result<Vec<u8>, ReadError> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(len) if len > max => Err(ReadError::TooLarge),
            Framing::Length(len) => {
                while self.buf.len() < len {
                    self.fill_body(deadline).await?;
                }
                Ok(self.buf.drain(..len).collect())
            }
            Framing::Chunked => self.read_chunked(deadline, max).await,
            Framing::UntilClose => {
                while self.buf.len() <= max {
                    match self.fill_body(deadline).await {
                        Ok(()) => {}
                        Err(ReadError::Closed) => return Ok(std::mem::take(&mut self.buf)),
                        Err(e) => return Err(e),
                    }
                }
                Err(ReadError::TooLarge)
            }
        }
    }

    /// RFC 9112 §7.1. Chunk extensions and trailer fields are dropped: the
    /// body is passed on with a Content-Length, so they have nowhere to go.
    async fn read_chunked(&mut self, deadline: Instant, max: usize) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(deadline).await?;
            let size = chunk_size(&line).ok_or(ReadError::Malformed("bad chunk size"))?;
            if size == 0 {
                break;
            }
            if size > max.saturating_sub(body.len()) {
                return Err(ReadError::TooLarge);
            }
            while self.buf.len() < size + 2 {
                self.fill_body(deadline).await?;
            }
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err(ReadError::Malformed("chunk data not followed by CRLF"));
            }
            body.extend(self.buf.drain(..size + 2).take(size));
        }
        let mut trailer_bytes = 0;
        loop {
            let line = self.read_line(deadline).await?;
            trailer_bytes += line.len() + 2;
            if line.is_empty() {
                return Ok(body);
            }
            if trailer_bytes > MAX_HEAD {
                return Err(ReadError::TooLarge);
            }
        }
    }

    /// One line without its CRLF (a bare LF is accepted too, RFC 9112 §2.2).
    async fn read_line(&mut self, deadline: Instant) -> Result<Vec<u8>, ReadError> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ReadError::TooLarge);
            }
            self.fill_body(deadline).await?;
        }
    }
}

/// `chunk-size [ chunk-ext ]`: 1 to 15 hex digits (so it cannot overflow), extensions ignored.
fn chunk_size(line: &[u8]) -> Option<usize> {
    let size = line.split(|&b| b == b';').next()?;
    let size = std::str::from_utf8(size).ok()?.trim_end_matches([' ', '\t']);
    if size.is_empty() || size.len() > 15 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    usize::from_str_radix(size, 16).ok()
}

/// Parses a request head (RFC 9112 §3); `None` while incomplete.
pub(super) fn parse_request_head(buf: &[u8]) -> Result<Option<(Request, usize)>, ReadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut head = httparse::Request::new(&mut fields);
    match head.parse(buf) {
        Ok(httparse::Status::Complete(used)) => {
            let request = Request {
                method: head.method.unwrap_or_default().to_owned(),
                target: head.path.unwrap_or_default().to_owned(),
                minor: head.version.unwrap_or(1),
                headers: owned(head.headers),
                body: None,
            };
            Ok(Some((request, used)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(ReadError::TooLarge),
        Err(_) => Err(ReadError::Malformed("not an HTTP/1.x request head")),
    }
}

/// Parses a response head (RFC 9112 §4); the body is left empty.
pub(super) fn parse_response_head(buf: &[u8]) -> Result<Option<(Response, usize)>, ReadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut head = httparse::Response::new(&mut fields);
    match head.parse(buf) {
        Ok(httparse::Status::Complete(used)) => {
            let response = Response {
                minor: head.version.unwrap_or(1),
                status: head.code.unwrap_or_default(),
                reason: head.reason.unwrap_or_default().to_owned(),
                headers: owned(head.headers),
                body: Arc::from(Vec::new()),
            };
            Ok(Some((response, used)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(ReadError::TooLarge),
        Err(_) => Err(ReadError::Malformed("not an HTTP/1.x response head")),
    }
}

fn owned(fields: &[httparse::Header<'_>]) -> Headers {
    fields.iter().map(|f| (f.name.to_owned(), f.value.to_vec())).collect()
}

/// Body framing of a request (RFC 9112 §6.3, items 3, 4, 5 and 6).
pub(super) fn request_framing(headers: &Headers) -> Result<Framing, ReadError> {
    let codings = tokens(headers, "transfer-encoding");
    if !codings.is_empty() {
        // Both at once is the classic request-smuggling shape: refuse rather than pick one.
        if has(headers, "content-length") {
            return Err(ReadError::Malformed("both Transfer-Encoding and Content-Length"));
        }
        return if codings == ["chunked"] {
            Ok(Framing::Chunked)
        } else {
            Err(ReadError::UnknownCoding)
        };
    }
    match content_length(headers)? {
        Some(len) => Ok(Framing::Length(len)),
        None => Ok(Framing::Empty),
    }
}

/// Body framing of a response to `method` (RFC 9112 §6.3, items 1 to 7).
pub(super) fn response_framing(method: &str, status: u16, headers: &Headers) -> Result<Framing, ReadError> {
    if method == "HEAD" || status < 200 || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    let codings = tokens(headers, "transfer-encoding");
    if !codings.is_empty() {
        // Transfer-Encoding wins over Content-Length; codings other than
        // chunked (gzip...) cannot be passed on once the header is dropped.
        return if codings == ["chunked"] {
            Ok(Framing::Chunked)
        } else {
            Err(ReadError::UnknownCoding)
        };
    }
    match content_length(headers)? {
        Some(len) => Ok(Framing::Length(len)),
        None => Ok(Framing::UntilClose),
    }
}

/// Content-Length, which may repeat (as lines or a list) only with one value (RFC 9110 §8.6).
fn content_length(headers: &Headers) -> Result<Option<usize>, ReadError> {
    const BAD: ReadError = ReadError::Malformed("bad Content-Length");
    let mut length = None;
    for (_, value) in headers.iter().filter(|(name, _)| name.eq_ignore_ascii_case("content-length")) {
        for item in value.split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() || item.len() > 18 || !item.iter().all(u8::is_ascii_digit) {
                return Err(BAD);
            }
            let n = std::str::from_utf8(item).ok().and_then(|s| s.parse::<usize>().ok()).ok_or(BAD)?;
            if length.is_some_and(|seen| seen != n) {
                return Err(BAD);
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// True if some field line is named `name` (case-insensitive).
pub(super) fn has(headers: &Headers, name: &str) -> bool {
    headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// The value of the first field line named `name`.
pub(super) fn field<'h>(headers: &'h Headers, name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// All lines named `name` combined into one list value (RFC 9110 §5.3).
pub(super) fn combined(headers: &Headers, name: &str) -> Option<Vec<u8>> {
    let mut lines = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice());
    let first = lines.next()?.to_vec();
    Some(lines.fold(first, |mut all, line| {
        all.extend_from_slice(b", ");
        all.extend_from_slice(line);
        all
    }))
}

/// The elements of list field `name`, trimmed and lowercased (for token lists such as Connection).
pub(super) fn tokens(headers: &Headers, name: &str) -> Vec<String> {
    let Some(value) = combined(headers, name) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&value)
        .split(',')
        .map(|item| item.trim().to_ascii_lowercase())
        .filter(|item| !item.is_empty())
        .collect()
}

/// The field lines a proxy passes on: hop-by-hop fields and the ones named in Connection removed (RFC 9110 §7.6.1).
pub(super) fn end_to_end(headers: &Headers) -> Headers {
    let named = tokens(headers, "connection");
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            !HOP_BY_HOP.contains(&name.as_str()) && !named.contains(&name)
        })
        .cloned()
        .collect()
}

/// Appends `start_line`, then each field line, CRLF-terminated (the blank line is the caller's).
pub(super) fn write_head<'a>(out: &mut Vec<u8>, start_line: &str, fields: impl IntoIterator<Item = (&'a str, &'a [u8])>) {
    out.extend_from_slice(start_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"1a"), Some(26));
        assert_eq!(chunk_size(b"0"), Some(0));
        assert_eq!(chunk_size(b"A;name=value"), Some(10));
        assert_eq!(chunk_size(b"5 ;x"), Some(5));
        for bad in [&b""[..], b";x", b"g", b"-1", b"1 2", b"ffffffffffffffff"] {
            assert_eq!(chunk_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn framing() {
        let te = headers(&[("Transfer-Encoding", "chunked")]);
        assert_eq!(request_framing(&te).ok(), Some(Framing::Chunked));
        assert!(matches!(
            request_framing(&headers(&[("Transfer-Encoding", "gzip, chunked")])),
            Err(ReadError::UnknownCoding)
        ));
        let both = headers(&[("Transfer-Encoding", "chunked"), ("Content-Length", "3")]);
        assert!(request_framing(&both).is_err());
        assert_eq!(response_framing("GET", 200, &both).ok(), Some(Framing::Chunked));
        assert_eq!(
            request_framing(&headers(&[("content-length", "7, 7")])).ok(),
            Some(Framing::Length(7))
        );
        for bad in ["7, 8", "-1", "", "0x10", "99999999999999999999"] {
            assert!(request_framing(&headers(&[("Content-Length", bad)])).is_err(), "{bad:?}");
        }
        assert_eq!(request_framing(&Headers::new()).ok(), Some(Framing::Empty));
        assert_eq!(response_framing("GET", 200, &Headers::new()).ok(), Some(Framing::UntilClose));
        for (method, status) in [("HEAD", 200), ("GET", 204), ("GET", 304), ("GET", 103)] {
            assert_eq!(response_framing(method, status, &te).ok(), Some(Framing::Empty));
        }
    }

    #[test]
    fn hop_by_hop_fields_are_dropped() {
        let all = headers(&[
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("Accept", "*/*"),
        ]);
        assert_eq!(end_to_end(&all), headers(&[("Accept", "*/*")]));
    }

    #[test]
    fn list_fields() {
        let h = headers(&[("Cache-Control", "max-age=1"), ("cache-control", "no-cache")]);
        assert_eq!(combined(&h, "Cache-Control").as_deref(), Some(&b"max-age=1, no-cache"[..]));
        assert_eq!(tokens(&headers(&[("Connection", " Close ,,x")]), "connection"), ["close", "x"]);
    }
}
