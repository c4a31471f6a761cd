//! Structured HTTP steps: `send: { method, target, headers, body }` and
//! `expect: { status, version, headers, body }` with header captures.

use regex::Regex;

use super::codec::{body_summary, render, sha256_hex};
use super::parse::{HttpMessage, StartLine};
use crate::proto::{Message, Mismatch, RenderCx, Steps, StructuredExpect, StructuredSend};
use crate::syntax::{Data, Fixture, LoadCx, Loc, Node, Template};

/// Keys of a structured HTTP send.
pub const SEND_KEYS: &[&str] = &["method", "target", "version", "headers", "body", "body_file", "chunked"];
/// Keys of a structured HTTP expect.
pub const EXPECT_KEYS: &[&str] = &["status", "version", "headers", "body", "method", "target", "crlf"];

#[derive(Debug)]
enum BodySrc {
    Text(Template),
    File(Fixture),
}

/// An HTTP request (or response, from a harness playing the server) built from a mapping.
#[derive(Debug)]
struct HttpSend {
    method: Option<Template>,
    target: Template,
    status: Option<Template>,
    version: Template,
    /// None as a value means: do not send this header (and do not add it by default).
    headers: Vec<(String, Option<Template>)>,
    body: Option<BodySrc>,
    chunked: bool,
}

fn read_body(cx: &RenderCx, b: &BodySrc) -> Result<Vec<u8>, String> {
    match b {
        BodySrc::Text(t) => Ok(t.render(cx.vars)?.into_bytes()),
        BodySrc::File(f) => Ok(f.bytes.to_vec()),
    }
}

impl StructuredSend for HttpSend {
    fn render(&self, cx: &RenderCx) -> Result<Vec<u8>, String> {
        let version = self.version.render(cx.vars)?;
        let mut out = match (&self.method, &self.status) {
            (_, Some(status)) => format!("{version} {}\r\n", status.render(cx.vars)?),
            (Some(m), None) => format!("{} {} {version}\r\n", m.render(cx.vars)?, self.target.render(cx.vars)?),
            (None, None) => return Err("an HTTP send needs a method (request) or a status (response)".into()),
        }
        .into_bytes();
        let has = |name: &str| self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        // The harness as origin keeps the rules it checks: an origin with a clock MUST send Date
        // (RFC 9110 §6.6.1); `Date: null` leaves it out on purpose.
        let code = self.status.as_ref().map(|s| s.render(cx.vars)).transpose()?;
        let code: Option<u16> = code
            .as_deref()
            .and_then(|s| s.split_whitespace().next())
            .and_then(|c| c.parse().ok());
        if self.status.is_some() && !has("date") {
            out.extend_from_slice(format!("Date: {}\r\n", httpdate::fmt_http_date(std::time::SystemTime::now())).as_bytes());
        }
        if self.status.is_none() && !has("host") && version == "HTTP/1.1" {
            if let (Some(h), Some(p)) = (cx.vars.get("target.host"), cx.vars.get("target.port")) {
                out.extend_from_slice(format!("Host: {h}:{p}\r\n").as_bytes());
            }
        }
        for (n, v) in &self.headers {
            if let Some(v) = v {
                out.extend_from_slice(format!("{n}: {}\r\n", v.render(cx.vars)?).as_bytes());
            }
        }
        let body = match &self.body {
            Some(b) => read_body(cx, b)?,
            None => Vec::new(),
        };
        if self.chunked {
            if !has("transfer-encoding") {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            }
            out.extend_from_slice(b"\r\n");
            for chunk in body.chunks(4096) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            // 1xx, 204 and 304 responses have no body and a 304 no Content-Length of its own
            // (RFC 9110 §8.6, §15.4.5: it would be the 200's, not 0).
            let bodiless = code.is_some_and(|c| (100..200).contains(&c) || c == 204 || c == 304);
            let needs_length = !body.is_empty() || (self.status.is_some() && !bodiless);
            if needs_length && !has("content-length") {
                out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&body);
        }
        Ok(out)
    }

    fn templates(&self) -> Vec<&Template> {
        let mut t: Vec<&Template> = vec![&self.target, &self.version];
        t.extend(self.method.iter());
        t.extend(self.status.iter());
        t.extend(self.headers.iter().filter_map(|(_, v)| v.as_ref()));
        if let Some(BodySrc::Text(b)) = &self.body {
            t.push(b);
        }
        t
    }
}

fn body_src(node: &Node, file: Option<&Node>, cx: &mut LoadCx) -> Option<BodySrc> {
    if let Some(f) = file {
        return Some(BodySrc::File(cx.fixture(f, "body_file")?));
    }
    Some(BodySrc::Text(cx.template(node, "body")?))
}

/// The structured `send:`/`expect:` keys of HTTP.
pub static STEPS: Steps = Steps {
    send_keys: SEND_KEYS,
    expect_keys: EXPECT_KEYS,
    parse_send,
    parse_expect,
};

/// Parses `send: { method, target, version, headers, body | body_file, chunked }` (or `status` for a response).
pub fn parse_send(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredSend>> {
    let mut keys = SEND_KEYS.to_vec();
    keys.push("status");
    let f = cx.fields(node, &keys, "an HTTP send")?;
    let method = cx.optional(&f, "method", |cx, n| cx.template(n, "method"))?;
    let status = cx.optional(&f, "status", |cx, n| cx.template(n, "status"))?;
    if method.is_none() && status.is_none() {
        cx.err_help(
            node,
            "an HTTP send needs 'method' (a request) or 'status' (a response)",
            "e.g. send: { method: GET, target: /index.html }",
        );
        return None;
    }
    let target = match f.get("target") {
        Some(n) => cx.template(n, "target")?,
        None => Template::literal("/"),
    };
    let version = match f.get("version") {
        Some(n) => cx.template(n, "version")?,
        None => Template::literal("HTTP/1.1"),
    };
    let mut headers = Vec::new();
    if let Some(h) = f.get("headers") {
        let pairs = cx.mapping(h, "headers must be a mapping", "e.g. headers: { Connection: close }")?;
        for (k, v) in pairs {
            let name = cx.string(k, "a header name")?;
            let value = match v.data {
                Data::Null => None,
                _ => Some(cx.template(v, "a header value")?),
            };
            headers.push((name, value));
        }
    }
    let body = match (f.get("body"), f.get("body_file")) {
        (Some(_), Some(file)) => {
            cx.err(file, "give body or body_file, not both");
            return None;
        }
        (Some(b), None) => Some(body_src(b, None, cx)?),
        (None, Some(file)) => Some(body_src(file, Some(file), cx)?),
        (None, None) => None,
    };
    let chunked = match f.get("chunked") {
        Some(n) => cx.boolean(n, "chunked")?,
        None => false,
    };
    Some(Box::new(HttpSend {
        method,
        target,
        status,
        version,
        headers,
        body,
        chunked,
    }))
}

#[derive(Debug)]
enum StatusMatch {
    Codes(Vec<u16>),
    Class(u16),
}

#[derive(Debug)]
enum HeaderCheck {
    Equals(Template),
    Regex(Template),
    Present,
    Absent,
    /// A comma-separated list (Connection, Cache-Control) without this token; absent is fine.
    Lacks(String),
}

#[derive(Debug)]
struct HeaderMatch {
    name: String,
    /// The header's key in the suite, so a failure points at its own line.
    loc: Loc,
    check: HeaderCheck,
    capture: Option<String>,
}

#[derive(Debug)]
enum BodyMatch {
    Exact(Template),
    File(Fixture),
    Sha256(String),
    Regex(Template),
    Length(usize),
    Empty,
}

/// Checks on one HTTP message.
#[derive(Debug)]
struct HttpExpect {
    status: Option<StatusMatch>,
    /// Where `status` and `body` are written, for failures that point at the key.
    status_at: Option<Loc>,
    body_at: Option<Loc>,
    method: Option<Template>,
    target: Option<Template>,
    version: Option<Template>,
    headers: Vec<HeaderMatch>,
    body: Option<BodyMatch>,
    /// `crlf: true`: the head's lines end in CRLF, as the grammar says (RFC 9112 §2.1; a sender
    /// MUST NOT generate what does not match it, RFC 9110 §2.2). Elsewhere a bare LF is a warning.
    crlf: bool,
}

fn status_match(n: &Node, cx: &mut LoadCx) -> Option<StatusMatch> {
    let one = |n: &Node, cx: &mut LoadCx| -> Option<u16> {
        match n.as_str().and_then(|s| s.parse::<u16>().ok()).filter(|c| (100..600).contains(c)) {
            Some(c) => Some(c),
            None => {
                cx.err_help(
                    n,
                    "a status is a code from 100 to 599",
                    "e.g. status: 200, status: [200, 304], status: 4xx",
                );
                None
            }
        }
    };
    match &n.data {
        Data::Seq(items) => Some(StatusMatch::Codes(items.iter().map(|i| one(i, cx)).collect::<Option<_>>()?)),
        _ => match n.as_str() {
            Some(s) if s.len() == 3 && s.ends_with("xx") && (b'1'..=b'5').contains(&s.as_bytes()[0]) => {
                Some(StatusMatch::Class((s.as_bytes()[0] - b'0') as u16))
            }
            _ => Some(StatusMatch::Codes(vec![one(n, cx)?])),
        },
    }
}

/// Parses `expect: { status, version, headers, body, method, target }`.
pub fn parse_expect(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    let f = cx.fields(node, EXPECT_KEYS, "an HTTP expect")?;
    let status = match f.get("status") {
        Some(n) => Some(status_match(n, cx)?),
        None => None,
    };
    let tmpl = |key: &str, cx: &mut LoadCx| -> Option<Option<Template>> {
        match f.get(key) {
            Some(n) => Some(Some(cx.template(n, key)?)),
            None => Some(None),
        }
    };
    let method = tmpl("method", cx)?;
    let target = tmpl("target", cx)?;
    let version = tmpl("version", cx)?;
    let mut headers = Vec::new();
    if let Some(h) = f.get("headers") {
        let pairs = cx.mapping(
            h,
            "headers must be a mapping of name to check",
            "e.g. headers: { Content-Type: { regex: '^text/html' } }",
        )?;
        for (k, v) in pairs {
            let name = cx.string(k, "a header name")?;
            let (check, capture) = match &v.data {
                Data::Map(_) => {
                    let hf = cx.fields(v, &["equals", "regex", "present", "absent", "lacks", "capture"], "a header check")?;
                    let capture = match hf.get("capture") {
                        Some(c) => Some(cx.string(c, "capture")?),
                        None => None,
                    };
                    let check = if let Some(e) = hf.get("equals") {
                        HeaderCheck::Equals(cx.template(e, "equals")?)
                    } else if let Some(r) = hf.get("regex") {
                        HeaderCheck::Regex(cx.regex(r)?)
                    } else if let Some(t) = hf.get("lacks") {
                        HeaderCheck::Lacks(cx.string(t, "lacks")?)
                    } else if let Some(a) = hf.get("absent") {
                        if !cx.boolean(a, "absent")? {
                            cx.err(a, "absent: false checks nothing; use present: true");
                            return None;
                        }
                        HeaderCheck::Absent
                    } else {
                        if let Some(p) = hf.get("present") {
                            if !cx.boolean(p, "present")? {
                                cx.err(p, "present: false is absent: true");
                                return None;
                            }
                        } else if capture.is_none() {
                            cx.err_help(
                                v,
                                "a header check needs equals, regex, present, absent or capture",
                                "e.g. ETag: { capture: etag }",
                            );
                            return None;
                        }
                        HeaderCheck::Present
                    };
                    (check, capture)
                }
                _ => (HeaderCheck::Equals(cx.template(v, "a header value")?), None),
            };
            headers.push(HeaderMatch {
                name,
                loc: k.loc,
                check,
                capture,
            });
        }
    }
    let body = match f.get("body") {
        None => None,
        Some(b) => Some(match &b.data {
            Data::Map(_) => {
                let bf = cx.fields(b, &["file", "sha256", "regex", "length", "none"], "a body check")?;
                if let Some(file) = bf.get("file") {
                    BodyMatch::File(cx.fixture(file, "file")?)
                } else if let Some(h) = bf.get("sha256") {
                    BodyMatch::Sha256(cx.string(h, "sha256")?.to_ascii_lowercase())
                } else if let Some(r) = bf.get("regex") {
                    BodyMatch::Regex(cx.regex(r)?)
                } else if let Some(l) = bf.get("length") {
                    BodyMatch::Length(cx.number(l, "length")?)
                } else if let Some(n) = bf.get("none") {
                    if !cx.boolean(n, "none")? {
                        cx.err(n, "none: false checks nothing");
                        return None;
                    }
                    BodyMatch::Empty
                } else {
                    cx.err_help(
                        b,
                        "a body check needs file, sha256, regex, length or none",
                        "e.g. body: { file: ../fixtures/www/index.html }",
                    );
                    return None;
                }
            }
            _ => BodyMatch::Exact(cx.template(b, "body")?),
        }),
    };
    let crlf = match f.get("crlf") {
        Some(n) => {
            if !cx.boolean(n, "crlf")? {
                cx.err(n, "crlf: false checks nothing (a bare LF is a warning anyway)");
                return None;
            }
            true
        }
        None => false,
    };
    Some(Box::new(HttpExpect {
        crlf,
        status,
        status_at: f.get("status").map(|n| n.loc),
        body_at: f.get("body").map(|n| n.loc),
        method,
        target,
        version,
        headers,
        body,
    }))
}

fn mismatch(message: impl Into<String>, expected: impl Into<String>, got: impl Into<String>) -> Mismatch {
    Mismatch {
        message: message.into(),
        expected: expected.into(),
        got: got.into(),
        at: None,
    }
}

impl StructuredExpect for HttpExpect {
    fn check(&self, msg: &Message, cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        let Some(m) = msg.detail.as_ref().and_then(|d| d.downcast_ref::<HttpMessage>()) else {
            return Err(mismatch("not an HTTP message", self.describe(), msg.summary.clone()));
        };
        let got = render(m);
        if let Some(s) = &self.status {
            let status = m.status().unwrap_or(0);
            let ok = match s {
                StatusMatch::Codes(c) => c.contains(&status),
                StatusMatch::Class(c) => status / 100 == *c,
            };
            if !ok {
                let m = mismatch(format!("status {status}, expected {}", describe_status(s)), self.describe(), got);
                return Err(match self.status_at {
                    Some(at) => m.at(at),
                    None => m,
                });
            }
        }
        if let StartLine::Request { method, target } = &m.start {
            for (want, have, what) in [(&self.method, method, "method"), (&self.target, target, "request-target")] {
                if let Some(t) = want {
                    let w = t.render(cx.vars).map_err(|e| mismatch(e, "", ""))?;
                    if &w != have {
                        return Err(mismatch(format!("the {what} is '{have}', expected '{w}'"), self.describe(), got));
                    }
                }
            }
        }
        if let Some(v) = &self.version {
            let w = v.render(cx.vars).map_err(|e| mismatch(e, "", ""))?;
            let have = format!("HTTP/{}.{}", m.version.0, m.version.1);
            if w != have {
                return Err(mismatch(format!("version {have}, expected {w}"), self.describe(), got));
            }
        }
        if self.crlf && msg.findings.iter().any(|f| f.text == super::parse::BARE_LF) {
            return Err(mismatch(
                "the head's lines end in a bare LF: HTTP/1.1's grammar ends them in CRLF (RFC 9112 §2.1), and a sender MUST NOT generate anything else (RFC 9110 §2.2)",
                self.describe(),
                got,
            ));
        }
        let mut caps = Vec::new();
        for h in &self.headers {
            let value = m.field(&h.name);
            let fail = |why: String| mismatch(why, format!("{}: {}", h.name, describe_check(&h.check)), got.clone()).at(h.loc);
            let text = match (&h.check, &value) {
                (HeaderCheck::Absent, Some(v)) => return Err(fail(format!("{} is present ('{v}'), expected absent", h.name))),
                (HeaderCheck::Absent | HeaderCheck::Lacks(_), None) => continue,
                (HeaderCheck::Lacks(t), Some(v)) if m.has_token(&h.name, t) => return Err(fail(format!("{} lists '{t}' ('{v}')", h.name))),
                (_, None) => return Err(fail(format!("no {} header", h.name))),
                (_, Some(v)) => v.clone(),
            };
            let mut captured = text.clone();
            match &h.check {
                HeaderCheck::Equals(t) => {
                    let w = t.render(cx.vars).map_err(|e| mismatch(e, "", ""))?;
                    if w != text {
                        return Err(fail(format!("{} is '{text}', expected '{w}'", h.name)));
                    }
                }
                HeaderCheck::Regex(t) => {
                    let p = t.render_regex(cx.vars).map_err(|e| mismatch(e, "", ""))?;
                    let re = Regex::new(&p).map_err(|e| mismatch(e.to_string(), "", ""))?;
                    match re.captures(&text) {
                        Some(c) => captured = c.get(1).or_else(|| c.get(0)).map_or(String::new(), |m| m.as_str().to_string()),
                        None => return Err(fail(format!("{} is '{text}', which does not match /{p}/", h.name))),
                    }
                }
                HeaderCheck::Present | HeaderCheck::Absent | HeaderCheck::Lacks(_) => {}
            }
            if let Some(var) = &h.capture {
                caps.push((var.clone(), captured));
            }
        }
        if let Some(b) = &self.body {
            check_body(b, &m.body, cx, &got).map_err(|m| match self.body_at {
                Some(at) => m.at(at),
                None => m,
            })?;
        }
        Ok(caps)
    }

    fn templates(&self) -> Vec<&Template> {
        let mut t: Vec<&Template> = Vec::new();
        t.extend(self.method.iter());
        t.extend(self.target.iter());
        t.extend(self.version.iter());
        for h in &self.headers {
            if let HeaderCheck::Equals(x) | HeaderCheck::Regex(x) = &h.check {
                t.push(x);
            }
        }
        if let Some(BodyMatch::Exact(x) | BodyMatch::Regex(x)) = &self.body {
            t.push(x);
        }
        t
    }

    fn captures(&self) -> Vec<String> {
        self.headers.iter().filter_map(|h| h.capture.clone()).collect()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.status {
            parts.push(format!("status {}", describe_status(s)));
        }
        if let Some(m) = &self.method {
            parts.push(format!("method {}", m.as_literal().unwrap_or("${..}")));
        }
        if let Some(t) = &self.target {
            parts.push(format!("target {}", t.as_literal().unwrap_or("${..}")));
        }
        for h in &self.headers {
            parts.push(format!("{}: {}", h.name, describe_check(&h.check)));
        }
        if let Some(b) = &self.body {
            parts.push(match b {
                BodyMatch::Exact(t) => format!("body \"{}\"", t.as_literal().unwrap_or("${..}")),
                BodyMatch::File(p) => format!("body = {}", p.display()),
                BodyMatch::Sha256(h) => format!("body sha256 {h}"),
                BodyMatch::Regex(_) => "body matching a regex".into(),
                BodyMatch::Length(n) => format!("body of {n} bytes"),
                BodyMatch::Empty => "no body".into(),
            });
        }
        if self.crlf {
            parts.push("CRLF line endings".into());
        }
        format!("an HTTP message with {}", parts.join(", "))
    }
}

fn describe_status(s: &StatusMatch) -> String {
    match s {
        StatusMatch::Codes(c) => c.iter().map(u16::to_string).collect::<Vec<_>>().join(" or "),
        StatusMatch::Class(c) => format!("{c}xx"),
    }
}

fn describe_check(c: &HeaderCheck) -> String {
    match c {
        HeaderCheck::Equals(t) => format!("'{}'", t.as_literal().unwrap_or("${..}")),
        HeaderCheck::Regex(t) => format!("/{}/", t.as_literal().unwrap_or("${..}")),
        HeaderCheck::Present => "present".into(),
        HeaderCheck::Absent => "absent".into(),
        HeaderCheck::Lacks(t) => format!("without '{t}'"),
    }
}

fn check_body(b: &BodyMatch, body: &[u8], cx: &RenderCx, got: &str) -> Result<(), Mismatch> {
    let compare = |want: &[u8], what: String| -> Result<(), Mismatch> {
        if want == body {
            return Ok(());
        }
        let at = want
            .iter()
            .zip(body)
            .position(|(a, b)| a != b)
            .unwrap_or(want.len().min(body.len()));
        let msg = format!(
            "the body differs from {what} at byte {at} (expected {} bytes, got {})",
            want.len(),
            body.len()
        );
        // Text bodies are shown whole so the console can diff them; binary ones by size and digest.
        match (std::str::from_utf8(want), std::str::from_utf8(body)) {
            (Ok(w), Ok(g)) if w.len() < 8192 && g.len() < 8192 => Err(mismatch(msg, w, g)),
            _ => Err(mismatch(msg, body_summary(want), body_summary(body))),
        }
    };
    match b {
        BodyMatch::Exact(t) => compare(
            t.render(cx.vars).map_err(|e| mismatch(e, "", ""))?.as_bytes(),
            "the expected text".into(),
        ),
        BodyMatch::File(p) => compare(&p.bytes, p.display().to_string()),
        BodyMatch::Sha256(h) => {
            let have = sha256_hex(body);
            if &have == h {
                Ok(())
            } else {
                Err(mismatch(
                    "the body's SHA-256 differs",
                    format!("sha256 {h}"),
                    format!("sha256 {have} ({} bytes)", body.len()),
                ))
            }
        }
        BodyMatch::Regex(t) => {
            let p = t.render_regex(cx.vars).map_err(|e| mismatch(e, "", ""))?;
            let re = Regex::new(&p).map_err(|e| mismatch(e.to_string(), "", ""))?;
            if re.is_match(&String::from_utf8_lossy(body)) {
                Ok(())
            } else {
                Err(mismatch(
                    format!("the body does not match /{p}/"),
                    format!("/{p}/"),
                    got.to_string(),
                ))
            }
        }
        BodyMatch::Length(n) => {
            if body.len() == *n {
                Ok(())
            } else {
                Err(mismatch(
                    format!("the body has {} bytes, expected {n}", body.len()),
                    format!("{n} bytes"),
                    got.to_string(),
                ))
            }
        }
        BodyMatch::Empty => {
            if body.is_empty() {
                Ok(())
            } else {
                Err(mismatch(
                    format!("expected no body, got {} bytes", body.len()),
                    "no body",
                    got.to_string(),
                ))
            }
        }
    }
}
