//! The HTTP/2 vocabulary: frames built from mappings, and expectations over one frame.
//!
//! ```yaml
//! - send: { preface: true }                          # PRI * HTTP/2.0 ... (RFC 9113 §3.4)
//! - send: { frame: SETTINGS, settings: { MAX_CONCURRENT_STREAMS: 100 } }
//! - send: { frame: SETTINGS, flags: [ACK] }
//! - send: { request: { stream: 1, method: GET, path: /index.html, authority: "${target.host}" } }
//!   # HEADERS (END_HEADERS, and END_STREAM without a body), then DATA with the body, if any
//! - send: { frame: HEADERS, stream: 3, flags: [END_HEADERS], headers: { ":method": GET, ... } }
//! - send: { frame: DATA, stream: 3, flags: [END_STREAM], data: "x=1", padding: 4 }
//! - send: { frame: WINDOW_UPDATE, stream: 0, increment: 65535 }
//! - send: { frame: RST_STREAM, stream: 1, code: CANCEL }
//! - send: { frame: PING, data: "01234567" }          # 8 octets
//! - send: { frame: GOAWAY, last: 0, code: NO_ERROR }
//! - send: { frame: PRIORITY, stream: 5, priority: { depends_on: 3, weight: 16 } }
//! - send: { frame: 0x0a, stream: 0, payload: "00 01" }   # any type; payload in hex replaces the body
//! - send: { frame: PING, length: 4, payload: "00000000" } # a length field that lies (on purpose)
//! - send: { frame: SETTINGS, size: 16386 }          # N zero octets (DATA: N octets of "x")
//! - send: { frame: PING, data: "floodabc", times: 1000 }  # the frame 1000 times in one write
//! - send: { request: { stream: 1, path: /, times: 500, reset: CANCEL } }
//!   # requests on streams 1, 3, ... 999, each followed by RST_STREAM (the "rapid reset")
//! # Headers are HPACK literals without indexing (RFC 7541 §6.2.2): valid, and no table state
//! # to keep. Field names a request must not carry (uppercase, connection-specific, §8.2) are a
//! # load error unless the step says `invalid: true`: the harness breaks rules only on purpose.
//!
//! - expect: { frame: HEADERS, stream: 1, status: 200, headers: { content-type: { regex: ^text/html } } }
//! - expect: { frame: DATA, stream: 1, flags: [END_STREAM] }
//! - expect: { frame: SETTINGS, flags: [ACK] }
//! - expect: { frame: DATA, stream: [3, 5], flags: [END_STREAM], passing: [HEADERS, DATA] }
//!   # the first stream to end is 3 or 5: frames of other streams go by unless they end one
//! - saw: { actor: srv, preface: true, count: 1 }        # prefaces an actor saw: one connection
//! - expect: { connection_error: PROTOCOL_ERROR }     # a GOAWAY with the code, or the connection closing (§5.4.1)
//!   # PROTOCOL_ERROR and INTERNAL_ERROR meet any expected code (§5.4: a generic code can always be used)
//! - expect: { stream_error: { stream: 1, code: PROTOCOL_ERROR } }   # RST_STREAM, or a connection error (§5.4)
//! - expect: { stream_error: { stream: 1, code: PROTOCOL_ERROR, malformed: true } }  # or a 4xx response (§8.1.1)
//! - expect: { stream_error: { stream: any, code: [REFUSED_STREAM, PROTOCOL_ERROR] } }
//! - expect: { frame: SETTINGS, not_flags: [ACK], settings: { MAX_FRAME_SIZE: { max: 16384 } } }
//!   # at most ({ min: N }: at least); a setting left out counts as its initial value (RFC 9113
//!   # §6.5.2), unlimited for MAX_CONCURRENT_STREAMS and MAX_HEADER_LIST_SIZE
//! # Frames a peer may send at any time (SETTINGS, PING, WINDOW_UPDATE, PRIORITY, unknown types:
//! # RFC 9113 §5.5, §6.5, §6.7, §6.9) are passed over unless the step asks for that type.
//! ```

use regex::Regex;

use super::codec::{error_name, setting_name, Body, H2Frame, Kind, PREFACE};
use crate::proto::steps::mismatch;
use crate::proto::{Message, Mismatch, RenderCx, Steps, StructuredExpect, StructuredSend};
use crate::syntax::{Data, LoadCx, Loc, Node, Template};

/// The structured `send:`/`expect:` keys of HTTP/2.
pub static STEPS: Steps = Steps {
    send_keys: &["preface", "frame", "request"],
    expect_keys: &["frame", "connection_error", "stream_error", "preface"],
    parse_send,
    parse_expect,
};

const FRAME_SEND_KEYS: &[&str] = &[
    "frame",
    "stream",
    "flags",
    "settings",
    "headers",
    "data",
    "size",
    "padding",
    "priority",
    "increment",
    "code",
    "last",
    "debug",
    "promised",
    "payload",
    "length",
    "reserved",
    "invalid",
    "times",
];

const REQUEST_KEYS: &[&str] = &[
    "stream",
    "method",
    "path",
    "scheme",
    "authority",
    "headers",
    "body",
    "invalid",
    "times",
    "reset",
];

/// Most copies of a frame or request one `times:` sends.
const MAX_TIMES: u32 = 100_000;

/// Fields no HTTP/2 message may carry (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: &[&str] = &["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];

fn frame_kind(n: &Node, cx: &mut LoadCx) -> Option<u8> {
    let s = cx.string(n, "frame")?;
    let names = [
        "DATA",
        "HEADERS",
        "PRIORITY",
        "RST_STREAM",
        "SETTINGS",
        "PUSH_PROMISE",
        "PING",
        "GOAWAY",
        "WINDOW_UPDATE",
        "CONTINUATION",
    ];
    if let Some(i) = names.iter().position(|k| k.eq_ignore_ascii_case(&s)) {
        return Some(i as u8);
    }
    match parse_int(&s).and_then(|v| u8::try_from(v).ok()) {
        Some(t) => Some(t),
        None => {
            cx.err_help(
                n,
                format!("'{s}' is not a frame type"),
                format!("one of {}, or a type number like 0x0a", names.join(", ")),
            );
            None
        }
    }
}

fn parse_int(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn int<T: TryFrom<u64>>(n: &Node, cx: &mut LoadCx, what: &str) -> Option<T> {
    let s = cx.string(n, what)?;
    match parse_int(&s).and_then(|v| T::try_from(v).ok()) {
        Some(v) => Some(v),
        None => {
            cx.err(n, format!("{what} must be a number in range, found '{s}'"));
            None
        }
    }
}

/// A flag list (`[END_STREAM, END_HEADERS]`) or a number, as the flags byte.
fn flag_bits(n: &Node, cx: &mut LoadCx) -> Option<u8> {
    let names = |s: &str| match s.to_ascii_uppercase().as_str() {
        "END_STREAM" | "ACK" => Some(0x1),
        "END_HEADERS" => Some(0x4),
        "PADDED" => Some(0x8),
        "PRIORITY" => Some(0x20),
        other => parse_int(other).and_then(|v| u8::try_from(v).ok()),
    };
    let items: Vec<&Node> = match &n.data {
        Data::Seq(items) => items.iter().collect(),
        _ => vec![n],
    };
    let mut bits = 0u8;
    for i in items {
        let s = cx.string(i, "a flag")?;
        match names(&s) {
            Some(b) => bits |= b,
            None => {
                cx.err_help(
                    i,
                    format!("'{s}' is not a flag"),
                    "END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY, or a number",
                );
                return None;
            }
        }
    }
    Some(bits)
}

fn error_code(n: &Node, cx: &mut LoadCx) -> Option<u32> {
    let s = cx.string(n, "an error code")?;
    if let Some(v) = parse_int(&s).and_then(|v| u32::try_from(v).ok()) {
        return Some(v);
    }
    match (0..14u32).find(|c| error_name(*c).eq_ignore_ascii_case(&s)) {
        Some(c) => Some(c),
        None => {
            cx.err_help(
                n,
                format!("'{s}' is not an error code"),
                "e.g. PROTOCOL_ERROR, CANCEL, or a number (RFC 9113 §7)",
            );
            None
        }
    }
}

fn setting_id(n: &Node, cx: &mut LoadCx) -> Option<u16> {
    let s = cx.string(n, "a setting")?;
    if let Some(v) = parse_int(&s).and_then(|v| u16::try_from(v).ok()) {
        return Some(v);
    }
    match (1..=9u16).find(|id| setting_name(*id).eq_ignore_ascii_case(&s)) {
        Some(id) => Some(id),
        None => {
            cx.err_help(
                n,
                format!("'{s}' is not a setting"),
                "e.g. MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE (RFC 9113 §6.5.2)",
            );
            None
        }
    }
}

/// Header fields as written: a mapping (in file order) or a list of `[name, value]` pairs.
fn header_list(n: &Node, cx: &mut LoadCx) -> Option<Vec<(String, Template, Loc)>> {
    let mut out = Vec::new();
    match &n.data {
        Data::Map(pairs) => {
            for (k, v) in pairs {
                out.push((cx.string(k, "a field name")?, cx.template(v, "a field value")?, k.loc));
            }
        }
        Data::Seq(items) => {
            for i in items {
                match &i.data {
                    Data::Seq(pair) if pair.len() == 2 => {
                        out.push((cx.string(&pair[0], "a field name")?, cx.template(&pair[1], "a field value")?, i.loc))
                    }
                    _ => {
                        cx.err_help(i, "a header is a [name, value] pair", "e.g. [\":method\", GET]");
                        return None;
                    }
                }
            }
        }
        _ => {
            cx.err_help(
                n,
                "headers is a mapping or a list of [name, value] pairs",
                "e.g. headers: { \":method\": GET }",
            );
            return None;
        }
    }
    Some(out)
}

/// Refuses, at load, fields that break RFC 9113 §8.2 unless the step says it does so on purpose.
fn check_fields(fields: &[(String, Template, Loc)], invalid: bool, cx: &mut LoadCx) -> bool {
    if invalid {
        return true;
    }
    for (name, value, loc) in fields {
        let why = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Some("a field name with uppercase letters (RFC 9113 §8.2.1)".to_string())
        } else if CONNECTION_SPECIFIC.contains(&name.as_str()) {
            Some(format!("the connection-specific field {name} (RFC 9113 §8.2.2)"))
        } else if name == "te" && value.as_literal().is_some_and(|v| !v.eq_ignore_ascii_case("trailers")) {
            Some("TE other than \"trailers\" (RFC 9113 §8.2.2)".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            cx.err_at(
                *loc,
                format!("this sends {why}, which HTTP/2 forbids"),
                Some("add `invalid: true` to the step to send it on purpose".into()),
            );
            return false;
        }
    }
    true
}

#[derive(Debug)]
enum SendKind {
    Preface,
    Frame(FrameSend),
    Requests(Vec<RequestSend>),
}

#[derive(Debug, Clone)]
struct FrameSend {
    kind: u8,
    stream: u32,
    flags: u8,
    settings: Vec<(u16, u32)>,
    headers: Vec<(String, Template, Loc)>,
    data: Option<Template>,
    size: Option<usize>,
    padding: Option<u8>,
    priority: Option<(bool, u32, u16)>,
    increment: u32,
    code: u32,
    last: u32,
    debug: Option<Template>,
    promised: u32,
    payload: Option<Vec<u8>>,
    length: Option<u32>,
    reserved: bool,
    /// Copies of the frame sent in one write (`times:`, for floods).
    times: u32,
}

#[derive(Debug)]
struct RequestSend {
    stream: u32,
    method: Template,
    path: Template,
    scheme: Template,
    authority: Option<Template>,
    headers: Vec<(String, Template, Loc)>,
    body: Option<Template>,
    /// Requests sent, on streams `stream`, `stream + 2`, ... (`times:`).
    times: u32,
    /// An RST_STREAM with this code after each request (`reset:`, the "rapid reset" of CVE-2023-44487).
    reset: Option<u32>,
}

/// A `times:` count: 1 to `MAX_TIMES`.
fn times(n: Option<&Node>, cx: &mut LoadCx) -> Option<u32> {
    let Some(n) = n else { return Some(1) };
    let t: u32 = int(n, cx, "times")?;
    if !(1..=MAX_TIMES).contains(&t) {
        cx.err(n, format!("times is 1 to {MAX_TIMES}"));
        return None;
    }
    Some(t)
}

#[derive(Debug)]
struct H2Send(SendKind);

fn parse_send(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredSend>> {
    Some(Box::new(parse_h2_send(node, cx)?))
}

fn parse_h2_send(node: &Node, cx: &mut LoadCx) -> Option<H2Send> {
    let Data::Map(pairs) = &node.data else {
        cx.err(node, "an HTTP/2 send is a mapping");
        return None;
    };
    let has = |k: &str| pairs.iter().any(|(n, _)| n.as_str() == Some(k));
    if has("preface") {
        let f = cx.fields(node, &["preface"], "the preface")?;
        if !cx.boolean(f.get("preface")?, "preface")? {
            cx.err(node, "preface: false sends nothing; leave the step out");
            return None;
        }
        return Some(H2Send(SendKind::Preface));
    }
    if has("request") {
        let f = cx.fields(node, &["request"], "a request")?;
        // A list of requests goes out in one write: the server sees them all at once.
        let items: Vec<&Node> = match &f.get("request")?.data {
            Data::Seq(items) => items.iter().collect(),
            _ => vec![f.get("request")?],
        };
        let mut reqs = Vec::new();
        for item in items {
            reqs.push(parse_request(item, cx)?);
        }
        return Some(H2Send(SendKind::Requests(reqs)));
    }
    let f = cx.fields(node, FRAME_SEND_KEYS, "an HTTP/2 frame")?;
    let kind = frame_kind(f.get("frame")?, cx)?;
    let mut s = FrameSend {
        kind,
        stream: 0,
        flags: 0,
        settings: Vec::new(),
        headers: Vec::new(),
        data: None,
        size: None,
        padding: None,
        priority: None,
        increment: 0,
        code: 0,
        last: 0,
        debug: None,
        promised: 0,
        payload: None,
        length: None,
        reserved: false,
        times: times(f.get("times"), cx)?,
    };
    if let Some(n) = f.get("stream") {
        s.stream = int(n, cx, "stream")?;
        if s.stream > 0x7fff_ffff {
            cx.err(n, "a stream identifier has 31 bits (RFC 9113 §4.1)");
            return None;
        }
    }
    if let Some(n) = f.get("flags") {
        s.flags = flag_bits(n, cx)?;
    }
    if let Some(n) = f.get("settings") {
        for (k, v) in cx.mapping(n, "settings is a mapping", "e.g. settings: { MAX_CONCURRENT_STREAMS: 100 }")? {
            s.settings.push((setting_id(k, cx)?, int(v, cx, "a setting's value")?));
        }
    }
    if let Some(n) = f.get("headers") {
        s.headers = header_list(n, cx)?;
    }
    let invalid = match f.get("invalid") {
        Some(n) => cx.boolean(n, "invalid")?,
        None => false,
    };
    if !check_fields(&s.headers, invalid, cx) {
        return None;
    }
    if let Some(n) = f.get("data") {
        s.data = Some(cx.template(n, "data")?);
    }
    if let Some(n) = f.get("size") {
        s.size = Some(int(n, cx, "size")?);
    }
    if let Some(n) = f.get("padding") {
        s.padding = Some(int(n, cx, "padding")?);
    }
    if let Some(n) = f.get("priority") {
        let p = cx.fields(n, &["depends_on", "weight", "exclusive"], "a priority")?;
        let depends: u32 = match p.get("depends_on") {
            Some(d) => int(d, cx, "depends_on")?,
            None => 0,
        };
        let weight: u16 = match p.get("weight") {
            Some(w) => int(w, cx, "weight")?,
            None => 16,
        };
        if !(1..=256).contains(&weight) {
            cx.err(n, "a weight is 1 to 256 (RFC 9113 §5.3.2)");
            return None;
        }
        let exclusive = match p.get("exclusive") {
            Some(e) => cx.boolean(e, "exclusive")?,
            None => false,
        };
        s.priority = Some((exclusive, depends, weight));
    }
    if let Some(n) = f.get("increment") {
        s.increment = int(n, cx, "increment")?;
    }
    if let Some(n) = f.get("code") {
        s.code = error_code(n, cx)?;
    }
    if let Some(n) = f.get("last") {
        s.last = int(n, cx, "last")?;
    }
    if let Some(n) = f.get("debug") {
        s.debug = Some(cx.template(n, "debug")?);
    }
    if let Some(n) = f.get("promised") {
        s.promised = int(n, cx, "promised")?;
    }
    if let Some(n) = f.get("payload") {
        let hex = cx.string(n, "payload")?;
        match crate::syntax::parse_hex(&hex) {
            Ok(b) => s.payload = Some(b),
            Err(e) => {
                cx.err_help(n, format!("payload: {e}"), "hex digits, spaces allowed: \"00 00 00 01\"");
                return None;
            }
        }
    }
    if let Some(n) = f.get("length") {
        s.length = Some(int(n, cx, "length")?);
    }
    if let Some(n) = f.get("reserved") {
        s.reserved = cx.boolean(n, "reserved")?;
    }
    if kind == 6 && s.payload.is_none() {
        if let Some(d) = s.data.as_ref().and_then(Template::as_literal) {
            if d.len() != 8 {
                cx.err_help(
                    f.get("data")?,
                    format!("PING carries 8 octets, not {} (RFC 9113 §6.7)", d.len()),
                    "give 8 characters, or `payload:` in hex to send another length on purpose",
                );
                return None;
            }
        }
    }
    Some(H2Send(SendKind::Frame(s)))
}

/// One request of `request:` (a mapping).
/// A frame written as a mapping (the keys of `send: { frame: ... }`), for an actor that injects
/// frames into what it sends.
#[derive(Debug)]
pub struct FrameSpec(FrameSend);

/// Parses one frame mapping as `send:` does (`frame`, `stream`, `flags`, `payload` ...).
pub fn parse_frame(node: &Node, cx: &mut LoadCx) -> Option<FrameSpec> {
    match parse_h2_send(node, cx)?.into_frame() {
        Some(f) => Some(FrameSpec(f)),
        None => {
            cx.err_help(node, "a frame is needed here", "e.g. { frame: PING, data: \"12345678\" }");
            None
        }
    }
}

impl FrameSpec {
    /// The frame's bytes, on `stream` instead of the written one when given.
    pub fn bytes(&self, stream: Option<u32>, vars: &crate::syntax::Vars) -> Result<Vec<u8>, String> {
        let base = std::path::PathBuf::new();
        let cx = RenderCx {
            vars,
            base_dir: &base,
            transport: crate::proto::Transport::Tcp,
            local: None,
        };
        match stream {
            Some(id) => FrameSend {
                stream: id,
                ..self.0.clone()
            }
            .render(&cx),
            None => self.0.render(&cx),
        }
    }

    /// The frame's type byte.
    pub fn kind(&self) -> u8 {
        self.0.kind
    }
}

impl H2Send {
    fn into_frame(self) -> Option<FrameSend> {
        match self.0 {
            SendKind::Frame(f) => Some(f),
            _ => None,
        }
    }
}

fn parse_request(node: &Node, cx: &mut LoadCx) -> Option<RequestSend> {
    let r = cx.fields(node, REQUEST_KEYS, "a request")?;
    let t = |cx: &mut LoadCx, key: &str, default: &str| -> Option<Template> {
        match r.get(key) {
            Some(n) => cx.template(n, key),
            None => Template::parse(default).ok(),
        }
    };
    let headers = match r.get("headers") {
        Some(n) => header_list(n, cx)?,
        None => Vec::new(),
    };
    let invalid = match r.get("invalid") {
        Some(n) => cx.boolean(n, "invalid")?,
        None => false,
    };
    if !check_fields(&headers, invalid, cx) {
        return None;
    }
    let req = RequestSend {
        stream: match r.get("stream") {
            Some(n) => int(n, cx, "stream")?,
            None => 1,
        },
        method: t(cx, "method", "GET")?,
        path: t(cx, "path", "/")?,
        // `https` under --tls: the harness keeps the rule it checks (RFC 9113 §8.3.1).
        scheme: t(cx, "scheme", "${scheme}")?,
        authority: match r.get("authority") {
            Some(n) => Some(cx.template(n, "authority")?),
            None => None,
        },
        headers,
        body: match r.get("body") {
            Some(n) => Some(cx.template(n, "body")?),
            None => None,
        },
        times: times(r.get("times"), cx)?,
        reset: match r.get("reset") {
            Some(n) => Some(error_code(n, cx)?),
            None => None,
        },
    };
    if req.stream == 0 || u64::from(req.stream) + 2 * u64::from(req.times - 1) > 0x7fff_ffff {
        cx.err(node, "the requests' streams must be 1 to 2^31-1 (RFC 9113 §5.1.1)");
        return None;
    }
    Some(req)
}

/// A header block of literals without indexing, new names, no Huffman (RFC 7541 §6.2.2): valid
/// HPACK that needs no table on either side.
/// Fields as HPACK literals without indexing (RFC 7541 §6.2.2): valid, and no table to keep.
pub fn header_block(fields: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        crate::proto::http2::hpack::integer(&mut out, 0, 7, name.len());
        out.extend_from_slice(name.as_bytes());
        crate::proto::http2::hpack::integer(&mut out, 0, 7, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// A frame: the 9-octet header (RFC 9113 §4.1) and `payload`; `length` overrides the length field.
pub fn frame_bytes(kind: u8, flags: u8, stream: u32, payload: &[u8], length: Option<u32>) -> Vec<u8> {
    let len = length.unwrap_or(payload.len() as u32);
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn render_fields(fields: &[(String, Template, Loc)], cx: &RenderCx) -> Result<Vec<(String, String)>, String> {
    fields.iter().map(|(n, v, _)| Ok((n.clone(), v.render(cx.vars)?))).collect()
}

impl FrameSend {
    fn render(&self, cx: &RenderCx) -> Result<Vec<u8>, String> {
        let mut flags = self.flags;
        let stream = self.stream | if self.reserved { 0x8000_0000 } else { 0 };
        let payload = match &self.payload {
            Some(p) => p.clone(),
            None => {
                let mut body = Vec::new();
                match self.kind {
                    0 => match (&self.data, self.size) {
                        (Some(d), _) => body.extend_from_slice(d.render(cx.vars)?.as_bytes()),
                        (None, Some(n)) => body.resize(n, b'x'),
                        (None, None) => {}
                    },
                    1 | 9 => {
                        if let (1, Some((e, dep, w))) = (self.kind, self.priority) {
                            flags |= 0x20;
                            body.extend_from_slice(&(dep | if e { 0x8000_0000 } else { 0 }).to_be_bytes());
                            body.push((w - 1) as u8);
                        }
                        body.extend_from_slice(&header_block(&render_fields(&self.headers, cx)?));
                    }
                    2 => {
                        let (e, dep, w) = self.priority.unwrap_or((false, 0, 16));
                        body.extend_from_slice(&(dep | if e { 0x8000_0000 } else { 0 }).to_be_bytes());
                        body.push((w - 1) as u8);
                    }
                    3 => body.extend_from_slice(&self.code.to_be_bytes()),
                    4 => {
                        for (id, v) in &self.settings {
                            body.extend_from_slice(&id.to_be_bytes());
                            body.extend_from_slice(&v.to_be_bytes());
                        }
                    }
                    5 => {
                        body.extend_from_slice(&self.promised.to_be_bytes());
                        body.extend_from_slice(&header_block(&render_fields(&self.headers, cx)?));
                    }
                    6 => {
                        let d = match &self.data {
                            Some(d) => d.render(cx.vars)?,
                            None => "\0\0\0\0\0\0\0\0".into(),
                        };
                        if d.len() != 8 {
                            return Err(format!("PING carries 8 octets, not {} (RFC 9113 §6.7)", d.len()));
                        }
                        body.extend_from_slice(d.as_bytes());
                    }
                    7 => {
                        body.extend_from_slice(&self.last.to_be_bytes());
                        body.extend_from_slice(&self.code.to_be_bytes());
                        if let Some(d) = &self.debug {
                            body.extend_from_slice(d.render(cx.vars)?.as_bytes());
                        }
                    }
                    8 => body.extend_from_slice(&self.increment.to_be_bytes()),
                    _ => {}
                }
                // `size:` on another type: that many zero octets instead (a frame too large, on purpose).
                if let (Some(n), false) = (self.size, self.kind == 0) {
                    body = vec![0; n];
                }
                // Padding (DATA, HEADERS, PUSH_PROMISE): a length byte first, zeros after.
                match (self.padding, self.kind) {
                    (Some(p), 0 | 1 | 5) => {
                        flags |= 0x8;
                        let mut padded = vec![p];
                        padded.extend_from_slice(&body);
                        padded.resize(padded.len() + p as usize, 0);
                        padded
                    }
                    _ => body,
                }
            }
        };
        Ok(frame_bytes(self.kind, flags, stream, &payload, self.length).repeat(self.times as usize))
    }
}

impl RequestSend {
    fn render(&self, cx: &RenderCx) -> Result<Vec<u8>, String> {
        let authority = match &self.authority {
            Some(a) => a.render(cx.vars)?,
            None => match (cx.vars.get("target.host"), cx.vars.get("target.port")) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                _ => "localhost".into(),
            },
        };
        let mut fields = vec![
            (":method".to_string(), self.method.render(cx.vars)?),
            (":scheme".to_string(), self.scheme.render(cx.vars)?),
            (":authority".to_string(), authority),
            (":path".to_string(), self.path.render(cx.vars)?),
        ];
        fields.extend(render_fields(&self.headers, cx)?);
        let body = match &self.body {
            Some(b) => Some(b.render(cx.vars)?),
            None => None,
        };
        let mut out = Vec::new();
        for i in 0..self.times {
            let stream = self.stream + 2 * i;
            out.extend(self.one(stream, &fields, body.as_deref()));
            if let Some(code) = self.reset {
                out.extend(frame_bytes(3, 0, stream, &code.to_be_bytes(), None));
            }
        }
        Ok(out)
    }

    /// One request on `stream`: HEADERS, then the body in DATA frames.
    fn one(&self, stream: u32, fields: &[(String, String)], body: Option<&str>) -> Vec<u8> {
        let end = if body.is_none() { 0x1 } else { 0 };
        let mut out = frame_bytes(1, 0x4 | end, stream, &header_block(fields), None);
        if let Some(b) = body {
            // One DATA frame per 16384 octets: the default SETTINGS_MAX_FRAME_SIZE (§4.2).
            let chunks: Vec<&[u8]> = if b.is_empty() {
                vec![&[][..]]
            } else {
                b.as_bytes().chunks(16_384).collect()
            };
            let n = chunks.len();
            for (i, c) in chunks.into_iter().enumerate() {
                out.extend(frame_bytes(0, if i + 1 == n { 0x1 } else { 0 }, stream, c, None));
            }
        }
        out
    }
}

impl StructuredSend for H2Send {
    fn flood(&self) -> bool {
        match &self.0 {
            SendKind::Preface => false,
            SendKind::Frame(f) => f.times > 1,
            SendKind::Requests(rs) => rs.iter().any(|r| r.times > 1),
        }
    }

    fn render(&self, cx: &RenderCx) -> Result<Vec<u8>, String> {
        match &self.0 {
            SendKind::Preface => Ok(PREFACE.to_vec()),
            SendKind::Frame(f) => f.render(cx),
            SendKind::Requests(rs) => {
                let mut out = Vec::new();
                for r in rs {
                    out.extend(r.render(cx)?);
                }
                Ok(out)
            }
        }
    }

    fn templates(&self) -> Vec<&Template> {
        match &self.0 {
            SendKind::Preface => Vec::new(),
            SendKind::Frame(f) => f
                .headers
                .iter()
                .map(|(_, v, _)| v)
                .chain(f.data.iter())
                .chain(f.debug.iter())
                .collect(),
            SendKind::Requests(rs) => rs
                .iter()
                .flat_map(|r| {
                    [&r.method, &r.path, &r.scheme]
                        .into_iter()
                        .chain(r.authority.iter())
                        .chain(r.headers.iter().map(|(_, v, _)| v))
                        .chain(r.body.iter())
                })
                .collect(),
        }
    }
}

/// A setting check: there with any value, this value, at most or at least this (`{ max: N }`,
/// `{ min: N }`), where a setting left out has its initial value (RFC 9113 §6.5.2): a number, or
/// unlimited for MAX_CONCURRENT_STREAMS and MAX_HEADER_LIST_SIZE.
#[derive(Debug)]
enum SettingWant {
    Any,
    Equals(u32),
    AtMost(u32),
    AtLeast(u32),
}

/// A setting's initial value (RFC 9113 §6.5.2); MAX_CONCURRENT_STREAMS and MAX_HEADER_LIST_SIZE
/// start unlimited.
fn setting_initial(id: u16) -> Option<u32> {
    match id {
        1 => Some(4096),
        2 => Some(1),
        4 => Some(65_535),
        5 => Some(16_384),
        _ => None,
    }
}

/// A field check: a value, a regex, or absence.
#[derive(Debug)]
enum FieldWant {
    Equals(Template),
    Regex(Template),
    Absent,
}

#[derive(Debug)]
enum ExpectKind {
    Frame {
        kind: u8,
        /// The stream it must be on: one of these, when given.
        stream: Option<Vec<u32>>,
        /// Types of frame passed over while waiting, unless they end a stream (`passing:`).
        passing: Vec<u8>,
        flags: u8,
        not_flags: u8,
        fields: Vec<(String, FieldWant, Loc)>,
        data: Option<Template>,
        settings: Vec<(u16, SettingWant)>,
        code: Option<u32>,
    },
    /// A GOAWAY with one of these codes, or the connection closing.
    ConnectionError(Vec<u32>),
    /// An RST_STREAM on the stream (any stream: `None`) with one of these codes, or a connection
    /// error. With `malformed: true`, a 4xx response on the stream also does (RFC 9113 §8.1.1: for
    /// a malformed request a server MAY send a response before closing or resetting the stream).
    StreamError(Option<u32>, Vec<u32>, bool),
    /// The client's connection preface (one per connection: `saw:` counts connections).
    Preface,
}

#[derive(Debug)]
struct H2Expect(ExpectKind);

const EXPECT_FRAME_KEYS: &[&str] = &[
    "frame",
    "stream",
    "flags",
    "not_flags",
    "headers",
    "status",
    "data",
    "settings",
    "code",
    "passing",
];

/// One stream id or a list of them.
fn streams(n: &Node, cx: &mut LoadCx) -> Option<Vec<u32>> {
    match &n.data {
        Data::Seq(items) => items.iter().map(|i| int(i, cx, "stream")).collect(),
        _ => Some(vec![int(n, cx, "stream")?]),
    }
}

fn codes(n: &Node, cx: &mut LoadCx) -> Option<Vec<u32>> {
    match &n.data {
        Data::Seq(items) => items.iter().map(|i| error_code(i, cx)).collect(),
        _ => Some(vec![error_code(n, cx)?]),
    }
}

fn parse_expect(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    let Data::Map(pairs) = &node.data else {
        cx.err(node, "an HTTP/2 expect is a mapping");
        return None;
    };
    let has = |k: &str| pairs.iter().any(|(n, _)| n.as_str() == Some(k));
    if has("preface") {
        let f = cx.fields(node, &["preface"], "the preface")?;
        if !cx.boolean(f.get("preface")?, "preface")? {
            cx.err(node, "preface: false matches nothing; count prefaces with preface: true");
            return None;
        }
        return Some(Box::new(H2Expect(ExpectKind::Preface)));
    }
    if has("connection_error") {
        let f = cx.fields(node, &["connection_error"], "a connection error")?;
        return Some(Box::new(H2Expect(ExpectKind::ConnectionError(codes(
            f.get("connection_error")?,
            cx,
        )?))));
    }
    if has("stream_error") {
        let f = cx.fields(node, &["stream_error"], "a stream error")?;
        let s = cx.fields(f.get("stream_error")?, &["stream", "code", "malformed"], "a stream error")?;
        let malformed = match s.get("malformed") {
            Some(n) => cx.boolean(n, "malformed")?,
            None => false,
        };
        let Some(stream) = s.get("stream") else {
            cx.err_help(
                node,
                "a stream error names its stream",
                "e.g. stream_error: { stream: 1, code: PROTOCOL_ERROR }",
            );
            return None;
        };
        let Some(code) = s.get("code") else {
            cx.err_help(
                node,
                "a stream error names its code",
                "e.g. stream_error: { stream: 1, code: PROTOCOL_ERROR }",
            );
            return None;
        };
        // `stream: any`: any stream (a stream error a server may put on any; the stream a
        // client chose for its request, in an actor's `saw:`).
        let stream = match stream.as_str() {
            Some("any") => None,
            _ => Some(int(stream, cx, "stream")?),
        };
        return Some(Box::new(H2Expect(ExpectKind::StreamError(stream, codes(code, cx)?, malformed))));
    }
    let f = cx.fields(node, EXPECT_FRAME_KEYS, "an HTTP/2 frame")?;
    let kind = frame_kind(f.get("frame")?, cx)?;
    let mut fields = Vec::new();
    if let Some(n) = f.get("status") {
        fields.push((":status".to_string(), FieldWant::Equals(cx.template(n, "status")?), n.loc));
    }
    if let Some(n) = f.get("headers") {
        for (k, v) in cx.mapping(n, "headers is a mapping", "e.g. headers: { content-type: text/html }")? {
            let name = cx.string(k, "a field name")?.to_ascii_lowercase();
            let want = match &v.data {
                Data::Map(_) => {
                    let w = cx.fields(v, &["regex", "absent"], "a field check")?;
                    match (w.get("regex"), w.get("absent")) {
                        (Some(r), None) => FieldWant::Regex(cx.regex(r)?),
                        (None, Some(a)) if cx.boolean(a, "absent")? => FieldWant::Absent,
                        _ => {
                            cx.err_help(
                                v,
                                "a field check is a value, { regex: .. } or { absent: true }",
                                "e.g. content-type: { regex: ^text/ }",
                            );
                            return None;
                        }
                    }
                }
                _ => FieldWant::Equals(cx.template(v, "a field value")?),
            };
            fields.push((name, want, k.loc));
        }
    }
    let mut settings = Vec::new();
    if let Some(n) = f.get("settings") {
        for (k, v) in cx.mapping(n, "settings is a mapping", "e.g. settings: { MAX_CONCURRENT_STREAMS: 100 }")? {
            let value = match (&v.data, v.as_str()) {
                (_, Some("any")) => SettingWant::Any,
                (Data::Map(_), _) => {
                    let m = cx.fields(v, &["max", "min"], "a setting check")?;
                    match (m.get("max"), m.get("min")) {
                        (Some(n), None) => SettingWant::AtMost(int(n, cx, "max")?),
                        (None, Some(n)) => SettingWant::AtLeast(int(n, cx, "min")?),
                        _ => {
                            cx.err_help(
                                v,
                                "a setting check is a value, any, { max: N } or { min: N }",
                                "e.g. MAX_FRAME_SIZE: { max: 16384 }",
                            );
                            return None;
                        }
                    }
                }
                _ => SettingWant::Equals(int(v, cx, "a setting's value")?),
            };
            settings.push((setting_id(k, cx)?, value));
        }
    }
    Some(Box::new(H2Expect(ExpectKind::Frame {
        kind,
        stream: match f.get("stream") {
            Some(n) => Some(streams(n, cx)?),
            None => None,
        },
        passing: match f.get("passing") {
            Some(Node {
                data: Data::Seq(items), ..
            }) => items.iter().map(|i| frame_kind(i, cx)).collect::<Option<Vec<u8>>>()?,
            Some(n) => vec![frame_kind(n, cx)?],
            None => Vec::new(),
        },
        flags: match f.get("flags") {
            Some(n) => flag_bits(n, cx)?,
            None => 0,
        },
        not_flags: match f.get("not_flags") {
            Some(n) => flag_bits(n, cx)?,
            None => 0,
        },
        fields,
        data: match f.get("data") {
            Some(n) => Some(cx.template(n, "data")?),
            None => None,
        },
        settings,
        code: match f.get("code") {
            Some(n) => Some(error_code(n, cx)?),
            None => None,
        },
    })))
}

fn frame_of(msg: &Message) -> Option<&H2Frame> {
    msg.detail.as_ref()?.downcast_ref::<H2Frame>()
}

fn kind_name(kind: u8) -> String {
    Kind::of(kind).name()
}

fn code_list(codes: &[u32]) -> String {
    codes.iter().map(|c| error_name(*c)).collect::<Vec<_>>().join(" or ")
}

/// PROTOCOL_ERROR and INTERNAL_ERROR: RFC 9113 §5.4 lets an endpoint use them for any error
/// ("a generic error code ... can always be used in place of more specific error codes"), so an
/// expected error is also met by either of them.
const GENERIC: [u32; 2] = [0x1, 0x2];

/// Whether `code` meets an expected error of one of `codes` (or a generic one, §5.4).
fn meets(codes: &[u32], code: u32) -> bool {
    codes.contains(&code) || GENERIC.contains(&code)
}

impl H2Expect {
    fn check_frame(&self, f: &H2Frame, msg: &Message, cx: &RenderCx) -> Result<(), Mismatch> {
        let want = self.describe();
        match &self.0 {
            ExpectKind::Preface => match f.body {
                Body::Preface => Ok(()),
                _ => Err(mismatch("not the connection preface", want, msg)),
            },
            ExpectKind::ConnectionError(codes) => match &f.body {
                Body::GoAway { code, .. } if meets(codes, *code) => Ok(()),
                Body::GoAway { code, .. } => Err(mismatch(
                    format!("the GOAWAY says {}, not {}", error_name(*code), code_list(codes)),
                    want,
                    msg,
                )),
                _ => Err(mismatch("not a GOAWAY", want, msg)),
            },
            ExpectKind::StreamError(stream, codes, malformed) => match &f.body {
                Body::RstStream(code) if stream.is_none_or(|s| f.stream == s) && meets(codes, *code) => Ok(()),
                Body::Headers { .. } if *malformed && stream.is_none_or(|s| f.stream == s) => {
                    match f.fields().and_then(|fs| fs.iter().find(|(n, _)| n == ":status")) {
                        Some((_, v)) if v.starts_with('4') && v.len() == 3 => Ok(()),
                        _ => Err(mismatch(
                            "a response to a malformed request that is not a 4xx (RFC 9113 §8.1.1)",
                            want,
                            msg,
                        )),
                    }
                }
                Body::GoAway { code, .. } if meets(codes, *code) => Ok(()),
                Body::RstStream(code) => Err(mismatch(
                    format!(
                        "RST_STREAM on stream {} with {}, not {} with {}",
                        f.stream,
                        error_name(*code),
                        stream.map_or("any stream".to_string(), |s| format!("stream {s}")),
                        code_list(codes)
                    ),
                    want,
                    msg,
                )),
                Body::GoAway { code, .. } => Err(mismatch(
                    format!("the GOAWAY says {}, not {}", error_name(*code), code_list(codes)),
                    want,
                    msg,
                )),
                _ => Err(mismatch("neither an RST_STREAM nor a GOAWAY", want, msg)),
            },
            ExpectKind::Frame {
                kind,
                stream,
                flags,
                not_flags,
                fields,
                data,
                settings,
                code,
                ..
            } => {
                if Kind::of(*kind) != f.kind {
                    return Err(mismatch(format!("a {} frame, not {}", f.kind.name(), kind_name(*kind)), want, msg));
                }
                if let Some(s) = stream.as_ref().filter(|s| !s.contains(&f.stream)) {
                    let list: Vec<String> = s.iter().map(u32::to_string).collect();
                    return Err(mismatch(
                        format!("the frame is on stream {}, not {}", f.stream, list.join(" or ")),
                        want,
                        msg,
                    ));
                }
                if f.flags & flags != *flags {
                    return Err(mismatch(
                        format!("flags 0x{:02x} lack 0x{:02x}", f.flags, flags & !f.flags),
                        want,
                        msg,
                    ));
                }
                if f.flags & not_flags != 0 {
                    return Err(mismatch(
                        format!(
                            "flags 0x{:02x} have 0x{:02x}, which the step rules out",
                            f.flags,
                            f.flags & not_flags
                        ),
                        want,
                        msg,
                    ));
                }
                if !fields.is_empty() {
                    let Some(have) = f.fields() else {
                        return Err(mismatch("the frame carries no decoded header block", want, msg));
                    };
                    for (name, check, loc) in fields {
                        let got = have.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
                        let ok = match (check, got) {
                            (FieldWant::Absent, None) => true,
                            (FieldWant::Absent, Some(_)) | (_, None) => false,
                            (FieldWant::Equals(t), Some(v)) => t.render(cx.vars).map_err(|e| mismatch(e, want.clone(), msg))? == v,
                            (FieldWant::Regex(t), Some(v)) => {
                                let re = t.render_regex(cx.vars).map_err(|e| mismatch(e, want.clone(), msg))?;
                                Regex::new(&re).map_err(|e| mismatch(e.to_string(), want.clone(), msg))?.is_match(v)
                            }
                        };
                        if !ok {
                            let what = match got {
                                Some(v) => format!("{name}: {v}"),
                                None => format!("no {name} field"),
                            };
                            return Err(mismatch(format!("the header block has {what}"), want, msg).at(*loc));
                        }
                    }
                }
                if let Some(d) = data {
                    let want_data = d.render(cx.vars).map_err(|e| mismatch(e, want.clone(), msg))?;
                    match &f.body {
                        Body::Data { data, .. } | Body::Ping(data) if data == want_data.as_bytes() => {}
                        _ => return Err(mismatch("the frame's data differs", want, msg)),
                    }
                }
                if !settings.is_empty() {
                    let Body::Settings(have) = &f.body else {
                        return Err(mismatch("not a SETTINGS frame", want, msg));
                    };
                    for (id, value) in settings {
                        let got = have.iter().rev().find(|(i, _)| i == id).map(|(_, v)| *v);
                        let ok = match value {
                            SettingWant::Any => got.is_some(),
                            SettingWant::Equals(w) => got == Some(*w),
                            SettingWant::AtMost(w) => got.or(setting_initial(*id)).is_some_and(|v| v <= *w),
                            SettingWant::AtLeast(w) => got.or(setting_initial(*id)).is_none_or(|v| v >= *w),
                        };
                        if !ok {
                            let what = got.map_or("not there".to_string(), |v| format!("{v}"));
                            return Err(mismatch(format!("{} is {what}", setting_name(*id)), want, msg));
                        }
                    }
                }
                if let Some(c) = code {
                    let got = match &f.body {
                        Body::RstStream(c) | Body::GoAway { code: c, .. } => Some(*c),
                        _ => None,
                    };
                    if got != Some(*c) {
                        return Err(mismatch(format!("the error code is not {}", error_name(*c)), want, msg));
                    }
                }
                Ok(())
            }
        }
    }
}

impl StructuredExpect for H2Expect {
    fn check(&self, msg: &Message, cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        let Some(f) = frame_of(msg) else {
            return Err(mismatch("not an HTTP/2 frame", self.describe(), msg));
        };
        self.check_frame(f, msg, cx).map(|()| Vec::new())
    }

    fn templates(&self) -> Vec<&Template> {
        match &self.0 {
            ExpectKind::Frame { fields, data, .. } => fields
                .iter()
                .filter_map(|(_, w, _)| match w {
                    FieldWant::Equals(t) | FieldWant::Regex(t) => Some(t),
                    FieldWant::Absent => None,
                })
                .chain(data.iter())
                .collect(),
            _ => Vec::new(),
        }
    }

    fn captures(&self) -> Vec<String> {
        Vec::new()
    }

    fn describe(&self) -> String {
        match &self.0 {
            ExpectKind::Preface => "the client connection preface (RFC 9113 §3.4)".into(),
            ExpectKind::ConnectionError(codes) => format!(
                "a connection error: GOAWAY {} (or a generic PROTOCOL_ERROR or INTERNAL_ERROR, RFC 9113 §5.4) or the connection closing (§5.4.1)",
                code_list(codes)
            ),
            ExpectKind::StreamError(s, codes, malformed) => format!(
                "RST_STREAM stream={} {} (or a generic PROTOCOL_ERROR or INTERNAL_ERROR, RFC 9113 §5.4), or a connection error{}",
                s.map_or("any".to_string(), |s| s.to_string()),
                code_list(codes),
                if *malformed { ", or a 4xx response (§8.1.1)" } else { "" }
            ),
            ExpectKind::Frame { kind, stream, flags, .. } => {
                let mut s = kind_name(*kind);
                if let Some(st) = stream {
                    let list: Vec<String> = st.iter().map(u32::to_string).collect();
                    s.push_str(&format!(" stream={}", list.join("|")));
                }
                if *flags != 0 {
                    s.push_str(&format!(" with flags 0x{flags:02x}"));
                }
                s
            }
        }
    }

    fn skips(&self, msg: &Message) -> bool {
        let Some(f) = frame_of(msg) else { return false };
        let (kind, stream, flags, not_flags, passing) = match &self.0 {
            ExpectKind::Frame {
                kind,
                stream,
                flags,
                not_flags,
                passing,
                ..
            } => (Kind::of(*kind), stream, flags, not_flags, passing),
            // Waiting for an error, anything else the peer sends first is passed over; the
            // deadline ends the wait for a peer that never reports one.
            ExpectKind::ConnectionError(_) => return f.kind != Kind::GoAway,
            ExpectKind::Preface => return !matches!(f.body, Body::Preface),
            ExpectKind::StreamError(s, _, malformed) => {
                let response = *malformed && f.kind == Kind::Headers && s.is_none_or(|s| f.stream == s);
                return !matches!(f.kind, Kind::GoAway | Kind::RstStream) && !response;
            }
        };
        let any_time = matches!(
            f.kind,
            Kind::Settings | Kind::Ping | Kind::WindowUpdate | Kind::Priority | Kind::Unknown(_)
        );
        // A frame of the asked type is judged when its stream and flags are the asked ones; the
        // peer's own SETTINGS is passed over while the step waits for the ACK of ours.
        let the_one = f.kind == kind
            && stream.as_ref().is_none_or(|s| s.contains(&f.stream))
            && f.flags & flags == *flags
            && f.flags & not_flags == 0;
        // `passing:` types go by too, but never a frame that ends a stream: the order in which
        // streams end is what a step with `passing` judges (the textbook's head-of-line blocking).
        let passed = passing.iter().any(|p| Kind::of(*p) == f.kind) && !f.ends_stream();
        (any_time || passed) && !the_one
    }

    fn accepts_close(&self) -> bool {
        matches!(self.0, ExpectKind::ConnectionError(_) | ExpectKind::StreamError(..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Codec, Frame};

    fn decode_all(bytes: &[u8], client: bool) -> Vec<H2Frame> {
        let mut codec = super::super::codec::Http2Codec::new(client);
        let mut rest = bytes;
        let mut out = Vec::new();
        while !rest.is_empty() {
            match codec.decode(rest, true) {
                Ok(Frame::Message(m, used)) => {
                    out.push(frame_of(&m).unwrap().clone());
                    rest = &rest[used..];
                }
                other => panic!("{other:?}"),
            }
        }
        out
    }

    #[test]
    fn hpack_integers_follow_rfc_7541_c_1() {
        let mut out = Vec::new();
        crate::proto::http2::hpack::integer(&mut out, 0, 5, 10);
        assert_eq!(out, [10]);
        out.clear();
        crate::proto::http2::hpack::integer(&mut out, 0, 5, 1337);
        assert_eq!(out, [31, 154, 10]);
        out.clear();
        crate::proto::http2::hpack::integer(&mut out, 0, 8, 42);
        assert_eq!(out, [42]);
    }

    #[test]
    fn a_built_request_decodes_with_its_fields_and_body() {
        let vars = crate::syntax::Vars::new();
        let cx = RenderCx {
            vars: &vars,
            base_dir: std::path::Path::new("."),
            transport: crate::proto::Transport::Tcp,
            local: None,
        };
        let req = RequestSend {
            stream: 3,
            method: Template::parse("POST").unwrap(),
            path: Template::parse("/echo").unwrap(),
            scheme: Template::parse("http").unwrap(),
            authority: Some(Template::parse("example.test").unwrap()),
            headers: vec![("x-long".into(), Template::parse(&"v".repeat(300)).unwrap(), Loc::default())],
            body: Some(Template::parse(&"b".repeat(20_000)).unwrap()),
            times: 1,
            reset: None,
        };
        let mut bytes = PREFACE.to_vec();
        bytes.extend(req.render(&cx).unwrap());
        let frames = decode_all(&bytes, true);
        assert_eq!(frames.len(), 4, "{frames:?}");
        let fields = frames[1].fields().unwrap();
        assert_eq!(fields[0], (":method".into(), "POST".into()));
        assert_eq!(fields[4].1.len(), 300);
        assert!(!frames[1].ends_stream());
        assert!(!frames[2].ends_stream() && frames[3].ends_stream());
        let body: usize = frames[2..]
            .iter()
            .map(|f| match &f.body {
                Body::Data { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(body, 20_000);
    }
}
