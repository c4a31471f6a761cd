//! HTTP/1.x message framing (RFC 9112): start line, fields, body length; deviations as findings.
//!
//! Lenient where the RFC lets a recipient be (bare LF line endings, a missing reason phrase),
//! strict where it requires (whitespace before a colon, conflicting Content-Length), and never
//! guessing a body length: a message that cannot be framed is an error.

use crate::proto::{CodecError, Finding, Level};

/// Largest head (start line and fields) framed; beyond it the peer is flooding.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest body framed.
pub const MAX_BODY: usize = 64 << 20;

/// Request or response start line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `method target version`.
    Request {
        /// The method (case-sensitive).
        method: String,
        /// The request-target as sent.
        target: String,
    },
    /// `version status reason`.
    Response {
        /// The three-digit status code.
        status: u16,
        /// The reason phrase (may be empty).
        reason: String,
    },
}

/// How the body's length was determined (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body by rule (HEAD, 1xx, 204, 304, a request without length fields).
    None,
    /// Content-Length.
    Length(usize),
    /// Transfer-Encoding: chunked.
    Chunked,
    /// Read until the connection closes (responses only).
    Close,
}

/// A parsed HTTP message.
#[derive(Debug, Clone)]
pub struct HttpMessage {
    /// The start line.
    pub start: StartLine,
    /// (major, minor) version.
    pub version: (u8, u8),
    /// Fields in order, names as sent.
    pub fields: Vec<(String, String)>,
    /// The body after transfer decoding.
    pub body: Vec<u8>,
    /// How the body was delimited.
    pub framing: Framing,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
}

impl HttpMessage {
    /// The values of field `name` (case-insensitive), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The field's values joined with ", " (RFC 9110 §5.3), if present.
    pub fn field(&self, name: &str) -> Option<String> {
        let v: Vec<&str> = self.values(name).collect();
        (!v.is_empty()).then(|| v.join(", "))
    }

    /// Whether a comma-separated field lists `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The status code, for responses.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }
}

/// The head of a message: everything but the body.
#[derive(Debug)]
pub struct Head {
    /// Start line.
    pub start: StartLine,
    /// Version.
    pub version: (u8, u8),
    /// Fields.
    pub fields: Vec<(String, String)>,
    /// Bytes the head used, including the empty line.
    pub len: usize,
    /// Deviations seen.
    pub findings: Vec<Finding>,
}

/// The finding a head with bare-LF line endings gets: a warning, except where a case asks for
/// CRLF (`expect: { crlf: true }`).
pub const BARE_LF: &str = "lines end in a bare LF; a sender generates CRLF";

fn must(rule: &'static str, text: impl Into<String>) -> Finding {
    Finding {
        level: Level::Must,
        rule,
        text: text.into(),
    }
}

fn should(rule: &'static str, text: impl Into<String>) -> Finding {
    Finding {
        level: Level::Should,
        rule,
        text: text.into(),
    }
}

fn err(offset: usize, reason: impl Into<String>) -> CodecError {
    CodecError {
        offset,
        reason: reason.into(),
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses a head; `Ok(None)` until the empty line that ends it has arrived.
pub fn parse_head(buf: &[u8], request: bool) -> Result<Option<Head>, CodecError> {
    let mut findings = Vec::new();
    let mut pos = 0;
    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request-line.
    if request {
        while buf[pos..].starts_with(b"\r\n") || buf[pos..].starts_with(b"\n") {
            pos += if buf[pos] == b'\r' { 2 } else { 1 };
        }
    }
    let mut lines: Vec<(usize, &[u8])> = Vec::new();
    let mut bare_lf = false;
    let end = loop {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            if buf.len() > MAX_HEAD {
                return Err(err(MAX_HEAD, format!("no end of the header section within {MAX_HEAD} bytes")));
            }
            return Ok(None);
        };
        let raw = &buf[pos..pos + nl];
        let line = match raw.strip_suffix(b"\r") {
            Some(l) => l,
            None => {
                bare_lf = true;
                raw
            }
        };
        if let Some(i) = line.iter().position(|&b| b == b'\r') {
            return Err(err(
                pos + i,
                "a bare CR inside a line (RFC 9112 §2.2: a recipient MUST treat it as invalid)",
            ));
        }
        let start = pos;
        pos += nl + 1;
        if line.is_empty() {
            break pos;
        }
        lines.push((start, line));
    };
    if bare_lf {
        findings.push(should("RFC 9112 §2.2", BARE_LF));
    }
    let Some(&(off, first)) = lines.first() else {
        return Err(err(0, "an empty line where the start line should be"));
    };
    let (start, version) = if request {
        request_line(first, off)?
    } else {
        status_line(first, off, &mut findings)?
    };
    let mut fields: Vec<(String, String)> = Vec::new();
    for &(off, line) in &lines[1..] {
        if line[0] == b' ' || line[0] == b'\t' {
            // RFC 9112 §5.2: obs-fold; a recipient may replace it with SP, a sender MUST NOT generate it.
            findings.push(must("RFC 9112 §5.2", "a field value is folded onto a continuation line (obs-fold)"));
            match fields.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(String::from_utf8_lossy(line).trim());
                    continue;
                }
                None => return Err(err(off, "a continuation line before any field")),
            }
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(err(
                off,
                format!("a field line without a colon: \"{}\"", crate::proto::escape_bytes(line, 80)),
            ));
        };
        let raw_name = &line[..colon];
        let name_end = raw_name.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |i| i + 1);
        if name_end < raw_name.len() {
            findings.push(must(
                "RFC 9112 §5.1",
                format!(
                    "whitespace between the field name '{}' and the colon",
                    String::from_utf8_lossy(&raw_name[..name_end])
                ),
            ));
        }
        let name = &raw_name[..name_end];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(err(
                off,
                format!("an invalid field name \"{}\"", crate::proto::escape_bytes(raw_name, 80)),
            ));
        }
        let value = String::from_utf8_lossy(&line[colon + 1..]).trim_matches([' ', '\t']).to_string();
        fields.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    Ok(Some(Head {
        start,
        version,
        fields,
        len: end,
        findings,
    }))
}

fn version(v: &[u8], off: usize) -> Result<(u8, u8), CodecError> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', maj, b'.', min] if maj.is_ascii_digit() && min.is_ascii_digit() => Ok((maj - b'0', min - b'0')),
        _ => Err(err(off, format!("not an HTTP version: \"{}\"", crate::proto::escape_bytes(v, 40)))),
    }
}

fn request_line(line: &[u8], off: usize) -> Result<(StartLine, (u8, u8)), CodecError> {
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(err(
            off,
            format!(
                "a request line is 'METHOD TARGET HTTP/x.y' with single spaces: \"{}\"",
                crate::proto::escape_bytes(line, 120)
            ),
        ));
    }
    if !parts[0].iter().all(|&b| is_tchar(b)) {
        return Err(err(off, "an invalid method"));
    }
    let v = version(parts[2], off + parts[0].len() + parts[1].len() + 2)?;
    Ok((
        StartLine::Request {
            method: String::from_utf8_lossy(parts[0]).into_owned(),
            target: String::from_utf8_lossy(parts[1]).into_owned(),
        },
        v,
    ))
}

fn status_line(line: &[u8], off: usize, findings: &mut Vec<Finding>) -> Result<(StartLine, (u8, u8)), CodecError> {
    let sp = line
        .iter()
        .position(|&b| b == b' ')
        .ok_or_else(|| err(off, format!("not a status line: \"{}\"", crate::proto::escape_bytes(line, 120))))?;
    let v = version(&line[..sp], off)?;
    let rest = &line[sp + 1..];
    if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ') {
        return Err(err(
            off + sp + 1,
            format!(
                "the status code must be three digits: \"{}\"",
                crate::proto::escape_bytes(line, 120)
            ),
        ));
    }
    let status = (rest[0] - b'0') as u16 * 100 + (rest[1] - b'0') as u16 * 10 + (rest[2] - b'0') as u16;
    if rest.len() == 3 {
        findings.push(should(
            "RFC 9112 §4",
            "no space after the status code (status-line = version SP code SP [reason])",
        ));
    }
    let reason = String::from_utf8_lossy(rest.get(4..).unwrap_or(&[])).into_owned();
    Ok((StartLine::Response { status, reason }, v))
}

/// Decides the body's framing per RFC 9112 §6.3. `head_request` says the request was HEAD.
pub fn framing(head: &mut Head, request: bool, head_request: bool) -> Result<Framing, CodecError> {
    let status = match head.start {
        StartLine::Response { status, .. } => Some(status),
        StartLine::Request { .. } => None,
    };
    let te: Vec<String> = head
        .fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    let cl: Vec<&str> = head
        .fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .flat_map(|(_, v)| v.split(',').map(str::trim))
        .collect();
    if let Some(s) = status {
        if (100..200).contains(&s) || s == 204 {
            if !cl.is_empty() || !te.is_empty() {
                head.findings.push(must(
                    "RFC 9110 §8.6",
                    format!("a {s} response carries Content-Length or Transfer-Encoding"),
                ));
            }
            return Ok(Framing::None);
        }
        if head_request || s == 304 {
            return Ok(Framing::None);
        }
    }
    if !te.is_empty() {
        if !cl.is_empty() {
            head.findings.push(must(
                "RFC 9112 §6.1",
                "both Transfer-Encoding and Content-Length (a sender MUST NOT send both)",
            ));
        }
        if te.last().map(String::as_str) == Some("chunked") {
            return Ok(Framing::Chunked);
        }
        if request {
            return Err(err(
                0,
                "a request whose final transfer coding is not chunked has no determinable length (RFC 9112 §6.3)",
            ));
        }
        return Ok(Framing::Close);
    }
    if !cl.is_empty() {
        let first = cl[0];
        if cl.iter().any(|v| *v != first) {
            return Err(err(0, format!("conflicting Content-Length values {cl:?} (RFC 9112 §6.3: invalid)")));
        }
        if cl.len() > 1 {
            head.findings.push(should("RFC 9110 §8.6", "Content-Length repeated"));
        }
        let n: usize = first.parse().map_err(|_| err(0, format!("an invalid Content-Length '{first}'")))?;
        if n > MAX_BODY {
            return Err(err(0, format!("Content-Length {n} is over the {MAX_BODY}-byte limit")));
        }
        return Ok(Framing::Length(n));
    }
    Ok(if request { Framing::None } else { Framing::Close })
}

/// Decodes a chunked body starting at `buf[0]`: `Ok(None)` until complete, else (body, trailers, bytes used).
#[allow(clippy::type_complexity)]
pub fn dechunk(buf: &[u8]) -> Result<Option<(Vec<u8>, Vec<(String, String)>, usize)>, CodecError> {
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            return if buf.len() - pos > 4096 {
                Err(err(pos, "a chunk-size line over 4096 bytes"))
            } else {
                Ok(None)
            };
        };
        let line = &buf[pos..pos + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // chunk-ext after ';' is allowed and ignored (RFC 9112 §7.1.1).
        let size_txt = line.split(|&b| b == b';').next().unwrap_or(b"");
        let size_txt = std::str::from_utf8(size_txt)
            .map_err(|_| err(pos, "a chunk size that is not hex"))?
            .trim_end_matches([' ', '\t']);
        let size = usize::from_str_radix(size_txt, 16).map_err(|_| err(pos, format!("a chunk size that is not hex: \"{size_txt}\"")))?;
        if body.len() + size > MAX_BODY {
            return Err(err(pos, format!("a chunked body over {MAX_BODY} bytes")));
        }
        pos += nl + 1;
        if size == 0 {
            // Trailer section, then the empty line.
            let mut trailers = Vec::new();
            loop {
                let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
                    return Ok(None);
                };
                let line = &buf[pos..pos + nl];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                pos += nl + 1;
                if line.is_empty() {
                    return Ok(Some((body, trailers, pos)));
                }
                if let Some(c) = line.iter().position(|&b| b == b':') {
                    trailers.push((
                        String::from_utf8_lossy(&line[..c]).trim().to_string(),
                        String::from_utf8_lossy(&line[c + 1..]).trim().to_string(),
                    ));
                }
            }
        }
        if buf.len() < pos + size + 1 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size;
        match &buf[pos..] {
            [b'\r', b'\n', ..] => pos += 2,
            [b'\n', ..] => pos += 1,
            [b'\r'] | [] => return Ok(None),
            _ => return Err(err(pos, "chunk data is not followed by CRLF (the chunk size is wrong)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &[u8], request: bool) -> Head {
        parse_head(s, request).unwrap().unwrap()
    }

    #[test]
    fn parses_request_and_response_heads() {
        let h = head(b"GET /a HTTP/1.1\r\nHost: x\r\nAccept:  */* \r\n\r\nrest", true);
        assert_eq!(
            h.start,
            StartLine::Request {
                method: "GET".into(),
                target: "/a".into()
            }
        );
        assert_eq!(h.version, (1, 1));
        assert_eq!(h.fields, vec![("Host".into(), "x".into()), ("Accept".into(), "*/*".into())]);
        assert_eq!(h.len, 43);
        assert!(h.findings.is_empty());
        let h = head(b"HTTP/1.0 404 Not Found\r\n\r\n", false);
        assert_eq!(
            h.start,
            StartLine::Response {
                status: 404,
                reason: "Not Found".into()
            }
        );
    }

    #[test]
    fn incomplete_until_the_empty_line() {
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n", true).unwrap().is_none());
        assert!(parse_head(b"GET / HT", true).unwrap().is_none());
    }

    #[test]
    fn parses_bare_lf_with_a_should_finding() {
        let h = head(b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", false);
        assert_eq!(h.findings.len(), 1);
        assert_eq!((h.findings[0].level, h.findings[0].rule), (Level::Should, "RFC 9112 §2.2"));
    }

    #[test]
    fn parses_whitespace_before_colon_and_obs_fold_as_must_findings() {
        let h = head(b"HTTP/1.1 200 OK\r\nX-A : 1\r\nX-B: one\r\n two\r\n\r\n", false);
        let rules: Vec<_> = h.findings.iter().map(|f| (f.level, f.rule)).collect();
        assert_eq!(rules, vec![(Level::Must, "RFC 9112 §5.1"), (Level::Must, "RFC 9112 §5.2")]);
        assert_eq!(h.fields[1].1, "one two");
    }

    #[test]
    fn parses_a_missing_reason_with_a_note() {
        let h = head(b"HTTP/1.1 200\r\n\r\n", false);
        assert_eq!(
            h.start,
            StartLine::Response {
                status: 200,
                reason: String::new()
            }
        );
        assert_eq!(h.findings[0].level, Level::Should);
    }

    #[test]
    fn rejects_malformed_start_lines() {
        assert!(parse_head(b"HTTP/1.1 20 OK\r\n\r\n", false).is_err());
        assert!(parse_head(b"HTTP/x 200 OK\r\n\r\n", false).is_err());
        assert!(parse_head(b"GET /\r\n\r\n", true).is_err());
        assert!(parse_head(b"GET  / HTTP/1.1\r\n\r\n", true).is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", false).is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", false).is_err());
    }

    #[test]
    fn parses_past_leading_empty_lines_before_a_request() {
        let h = head(b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", true);
        assert_eq!(h.len, 29);
    }

    fn framing_of(s: &[u8], request: bool, head_req: bool) -> Result<Framing, CodecError> {
        let mut h = head(s, request);
        framing(&mut h, request, head_req)
    }

    #[test]
    fn parses_body_length_rules() {
        assert_eq!(
            framing_of(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, false).unwrap(),
            Framing::Length(5)
        );
        assert_eq!(
            framing_of(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, false).unwrap(),
            Framing::Chunked
        );
        assert_eq!(framing_of(b"HTTP/1.1 200 OK\r\n\r\n", false, false).unwrap(), Framing::Close);
        assert_eq!(
            framing_of(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, true).unwrap(),
            Framing::None
        );
        assert_eq!(
            framing_of(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false, false).unwrap(),
            Framing::None
        );
        assert_eq!(framing_of(b"HTTP/1.1 204 No Content\r\n\r\n", false, false).unwrap(), Framing::None);
        assert_eq!(framing_of(b"HTTP/1.1 100 Continue\r\n\r\n", false, false).unwrap(), Framing::None);
        assert_eq!(
            framing_of(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true, false).unwrap(),
            Framing::None
        );
        assert_eq!(
            framing_of(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n", true, false).unwrap(),
            Framing::Length(3)
        );
        assert!(framing_of(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", false, false).is_err());
        assert!(framing_of(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false, false).is_err());
        assert!(framing_of(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", true, false).is_err());
    }

    #[test]
    fn parses_framing_findings() {
        let mut h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false);
        assert_eq!(framing(&mut h, false, false).unwrap(), Framing::Chunked);
        assert_eq!(h.findings[0].rule, "RFC 9112 §6.1");
        let mut h = head(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false);
        framing(&mut h, false, false).unwrap();
        assert_eq!(h.findings[0].rule, "RFC 9110 §8.6");
        let mut h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n", false);
        assert_eq!(framing(&mut h, false, false).unwrap(), Framing::Length(3));
        assert_eq!(h.findings[0].level, Level::Should);
    }

    #[test]
    fn parses_chunked_with_extensions_and_trailers() {
        let (body, trailers, used) = dechunk(b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: y\r\n\r\nNEXT")
            .unwrap()
            .unwrap();
        assert_eq!(body, b"Wikipedia");
        assert_eq!(trailers, vec![("X-T".into(), "y".into())]);
        assert_eq!(used, 38);
        assert!(dechunk(b"4\r\nWik").unwrap().is_none());
        assert!(dechunk(b"4\r\nWiki\r\n0\r\n").unwrap().is_none());
        assert!(dechunk(b"zz\r\n").is_err());
        assert!(dechunk(b"2\r\nabc\r\n").is_err());
    }
}
