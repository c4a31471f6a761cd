//! The HTTP/3 vocabulary: bytes on QUIC streams built from mappings, and expectations over the
//! frames, stream ends, resets and closes the server sends.
//!
//! ```yaml
//! - connect: c                      # QUIC with TLS 1.3, ALPN h3 (RFC 9114 §3.1)
//! # The harness's control stream (stream 2: type 0x00, SETTINGS QPACK_MAX_TABLE_CAPACITY=0
//! # QPACK_BLOCKED_STREAMS=0) goes out with the connection's first send, unless that send writes
//! # stream 2 itself: then the case's bytes are the control stream (to leave SETTINGS out).
//! - send: { request: { stream: 0, path: /index.html } }     # HEADERS, then the stream's end
//! - send: { request: [ { stream: 0, path: /a }, { stream: 4, method: HEAD, path: /b } ] }
//! - send: { request: { stream: 0, method: POST, path: /echo, body: "x=1", end: false } }
//! - send: { stream: 0, frame: DATA, data: "x" }
//! - send: { stream: 0, frame: HEADERS, headers: { ":method": GET, ... } }   # fields as given
//! - send: { stream: 2, stream_type: control, frame: SETTINGS, settings: { QPACK_MAX_TABLE_CAPACITY: 0 } }
//! - send: { stream: 2, frame: GOAWAY, id: 0 }               # CANCEL_PUSH, MAX_PUSH_ID: id too
//! - send: { stream: 0, frame: 0x21, payload: "01 02" }      # any type; hex payload
//! - send: { stream: 2, frame: SETTINGS, length: 3, payload: "01" }  # a length that lies
//! - send: { stream: 6, stream_type: 0x21, bytes: "61 62" }  # a stream of an unknown type, raw bytes
//! - send: { stream: 2, end: true }                          # FIN: finish the stream
//!
//! - expect: { response: { stream: 0, status: 200, headers: { content-type: { regex: ^text/html } }, body: { length: 506 } } }
//! - expect: { response: { stream: [0, 4, 8], status: 200 } }   # the next of them to end
//! - expect: { stream_type: control }                        # the server's control stream
//! - expect: { frame: SETTINGS }                             # on its control stream
//! - expect: { frame: GOAWAY, id: 0 }
//! - expect: { connection_error: H3_MISSING_SETTINGS }       # CONNECTION_CLOSE with the code
//! - expect: { stream_error: { stream: 0, code: H3_FRAME_UNEXPECTED } }  # RESET_STREAM or STOP_SENDING, or the connection's close
//! # H3_GENERAL_PROTOCOL_ERROR meets any expected code (RFC 9114 §8.1: an endpoint may decline
//! # the more specific code). Frames, streams and instructions a server may send at any time
//! # (its control and QPACK streams, SETTINGS, GREASE, unknown types) are passed over unless
//! # the step asks for them; a close or a reset of the stream asked for is not.
//! ```

use regex::Regex;

use super::codec::{self, code_of, name_of, H3Frame, H3Kind, H3Message, ERRORS, FRAMES, SETTINGS, STREAM_TYPES};
use super::qpack;
use crate::proto::steps::mismatch;
use crate::proto::{Message, Mismatch, RenderCx, Steps, StructuredExpect, StructuredSend};
use crate::syntax::{parse_hex, Data, Fixture, LoadCx, Loc, Node, Template};

/// The structured `send:`/`expect:` keys of HTTP/3.
pub static STEPS: Steps = Steps {
    send_keys: &["request", "frame", "stream_type", "bytes", "end", "stream"],
    expect_keys: &["response", "frame", "stream_type", "connection_error", "stream_error"],
    parse_send,
    parse_expect,
};

const SEND_KEYS: &[&str] = &[
    "stream",
    "stream_type",
    "frame",
    "headers",
    "data",
    "settings",
    "id",
    "payload",
    "length",
    "bytes",
    "end",
];
const REQUEST_KEYS: &[&str] = &["stream", "method", "path", "scheme", "authority", "headers", "body", "end"];
const EXPECT_KEYS: &[&str] = &["frame", "stream", "stream_type", "id"];
const RESPONSE_KEYS: &[&str] = &["stream", "status", "headers", "body"];

/// H3_GENERAL_PROTOCOL_ERROR, which stands for any more specific code (RFC 9114 §8.1).
const GENERAL: u64 = 0x101;

fn parse_int(s: &str) -> Option<u64> {
    match s.trim().strip_prefix("0x").or_else(|| s.trim().strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.trim().parse().ok(),
    }
}

fn int(n: &Node, cx: &mut LoadCx, what: &str) -> Option<u64> {
    let s = cx.string(n, what)?;
    match parse_int(&s).filter(|v| *v < 1 << 62) {
        Some(v) => Some(v),
        None => {
            cx.err(n, format!("{what} must be a number below 2^62 (decimal or 0x hex), found '{s}'"));
            None
        }
    }
}

/// A name from `table` or a number.
fn named(n: &Node, cx: &mut LoadCx, table: &[(u64, &'static str)], what: &str) -> Option<u64> {
    let s = cx.string(n, what)?;
    match code_of(table, &s).filter(|v| *v < 1 << 62) {
        Some(v) => Some(v),
        None => {
            let names: Vec<&str> = table.iter().map(|(_, n)| *n).collect();
            cx.err_help(
                n,
                format!("'{s}' is not a {what}"),
                format!("one of {}, or a number like 0x21", names.join(", ")),
            );
            None
        }
    }
}

fn streams(n: &Node, cx: &mut LoadCx) -> Option<Vec<u64>> {
    match &n.data {
        Data::Seq(items) => items.iter().map(|i| int(i, cx, "a stream id")).collect(),
        _ => Some(vec![int(n, cx, "a stream id")?]),
    }
}

fn codes(n: &Node, cx: &mut LoadCx) -> Option<Vec<u64>> {
    match &n.data {
        Data::Seq(items) => items.iter().map(|i| named(i, cx, ERRORS, "error code")).collect(),
        _ => Some(vec![named(n, cx, ERRORS, "error code")?]),
    }
}

fn field_list(n: &Node, cx: &mut LoadCx) -> Option<Vec<(String, Template)>> {
    let pairs = cx.mapping(
        n,
        "headers is a mapping of field names to values",
        "e.g. headers: { accept: \"*/*\" }",
    )?;
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.push((cx.string(k, "a field name")?, cx.template(v, "a field value")?));
    }
    Some(out)
}

/// What one send writes on one stream.
#[derive(Debug)]
enum Piece {
    Frame {
        kind: u64,
        headers: Vec<(String, Template)>,
        data: Option<Template>,
        settings: Vec<(u64, u64)>,
        id: Option<u64>,
        payload: Option<Vec<u8>>,
        length: Option<u64>,
    },
    Request(Box<Request>),
}

#[derive(Debug)]
struct Request {
    stream: u64,
    method: Template,
    path: Template,
    scheme: Template,
    authority: Option<Template>,
    headers: Vec<(String, Template)>,
    body: Option<Template>,
    end: bool,
}

/// A structured send: records of the streams it writes.
#[derive(Debug)]
struct H3Send {
    stream: Option<u64>,
    stream_type: Option<u64>,
    pieces: Vec<Piece>,
    bytes: Option<Vec<u8>>,
    end: bool,
}

fn parse_send(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredSend>> {
    let f = cx.fields(node, &[SEND_KEYS, &["request"]].concat(), "an HTTP/3 send")?;
    let mut send = H3Send {
        stream: None,
        stream_type: None,
        pieces: Vec::new(),
        bytes: None,
        end: false,
    };
    if let Some(r) = f.get("request") {
        if SEND_KEYS.iter().any(|k| f.get(k).is_some()) {
            cx.err_help(
                node,
                "a request send takes no other keys",
                "put the stream and fields inside request:",
            );
            return None;
        }
        let items: Vec<&Node> = match &r.data {
            Data::Seq(items) => items.iter().collect(),
            _ => vec![r],
        };
        for item in items {
            send.pieces.push(Piece::Request(Box::new(parse_request(item, cx)?)));
        }
        return Some(Box::new(send));
    }
    let Some(stream) = f.get("stream") else {
        cx.err_help(
            node,
            "an HTTP/3 send names its stream",
            "e.g. send: { stream: 0, frame: DATA, data: x }",
        );
        return None;
    };
    send.stream = Some(int(stream, cx, "stream")?);
    if let Some(t) = f.get("stream_type") {
        send.stream_type = Some(named(t, cx, STREAM_TYPES, "stream type")?);
    }
    if let Some(b) = f.get("bytes") {
        let text = cx.string(b, "bytes")?;
        match parse_hex(&text) {
            Ok(bytes) => send.bytes = Some(bytes),
            Err(e) => {
                cx.err(b, e);
                return None;
            }
        }
    }
    if let Some(e) = f.get("end") {
        send.end = cx.boolean(e, "end")?;
    }
    if let Some(k) = f.get("frame") {
        let kind = named(k, cx, FRAMES, "frame type")?;
        let mut headers = Vec::new();
        if let Some(h) = f.get("headers") {
            headers = field_list(h, cx)?;
        }
        let data = match f.get("data") {
            Some(d) => Some(cx.template(d, "data")?),
            None => None,
        };
        let mut settings = Vec::new();
        if let Some(s) = f.get("settings") {
            for (k, v) in cx.mapping(s, "settings is a mapping", "e.g. settings: { QPACK_MAX_TABLE_CAPACITY: 0 }")? {
                settings.push((named(k, cx, SETTINGS, "setting")?, int(v, cx, "a setting's value")?));
            }
        }
        let id = match f.get("id") {
            Some(i) => Some(int(i, cx, "id")?),
            None => None,
        };
        let payload = match f.get("payload") {
            Some(p) => match parse_hex(&cx.string(p, "payload")?) {
                Ok(b) => Some(b),
                Err(e) => {
                    cx.err(p, e);
                    return None;
                }
            },
            None => None,
        };
        let length = match f.get("length") {
            Some(l) => Some(int(l, cx, "length")?),
            None => None,
        };
        send.pieces.push(Piece::Frame {
            kind,
            headers,
            data,
            settings,
            id,
            payload,
            length,
        });
    } else {
        for key in ["headers", "data", "settings", "id", "payload", "length"] {
            if let Some(n) = f.get(key) {
                cx.err_help(n, format!("{key} belongs to a frame"), "add frame: with its type");
                return None;
            }
        }
    }
    if send.pieces.is_empty() && send.bytes.is_none() && send.stream_type.is_none() && !send.end {
        cx.err_help(node, "this send writes nothing", "add frame:, bytes:, stream_type: or end: true");
        return None;
    }
    Some(Box::new(send))
}

fn parse_request(node: &Node, cx: &mut LoadCx) -> Option<Request> {
    let f = cx.fields(node, REQUEST_KEYS, "a request")?;
    let t = |cx: &mut LoadCx, key: &str, default: &str| -> Option<Template> {
        match f.get(key) {
            Some(n) => cx.template(n, key),
            None => Template::parse(default).ok(),
        }
    };
    let Some(stream) = f.get("stream") else {
        cx.err_help(
            node,
            "a request names its stream",
            "client-initiated bidirectional streams are 0, 4, 8, ...",
        );
        return None;
    };
    let stream = int(stream, cx, "stream")?;
    if stream % 4 != 0 {
        cx.err_help(
            node,
            format!("stream {stream} is not a client-initiated bidirectional stream"),
            "requests go on streams 0, 4, 8, ... (RFC 9000 §2.1, RFC 9114 §6.1)",
        );
        return None;
    }
    Some(Request {
        stream,
        method: t(cx, "method", "GET")?,
        path: t(cx, "path", "/")?,
        scheme: t(cx, "scheme", "https")?,
        authority: match f.get("authority") {
            Some(a) => Some(cx.template(a, "authority")?),
            None => None,
        },
        headers: match f.get("headers") {
            Some(h) => field_list(h, cx)?,
            None => Vec::new(),
        },
        body: match f.get("body") {
            Some(b) => Some(cx.template(b, "body")?),
            None => None,
        },
        end: match f.get("end") {
            Some(e) => cx.boolean(e, "end")?,
            None => true,
        },
    })
}

/// An HTTP/3 frame: type, length (or the one given) and payload.
pub fn frame_bytes(kind: u64, payload: &[u8], length: Option<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    codec::put_varint(&mut out, kind);
    codec::put_varint(&mut out, length.unwrap_or(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

fn render_fields(fields: &[(String, Template)], cx: &RenderCx) -> Result<Vec<(String, String)>, String> {
    fields.iter().map(|(n, v)| Ok((n.clone(), v.render(cx.vars)?))).collect()
}

impl Piece {
    fn bytes(&self, cx: &RenderCx) -> Result<Vec<u8>, String> {
        match self {
            Piece::Frame {
                kind,
                headers,
                data,
                settings,
                id,
                payload,
                length,
            } => {
                let body = match (payload, kind) {
                    (Some(p), _) => p.clone(),
                    (None, 0x0) => match data {
                        Some(d) => crate::syntax::unescape(&d.render(cx.vars)?)?,
                        None => Vec::new(),
                    },
                    (None, 0x1) => qpack::encode(&render_fields(headers, cx)?),
                    (None, 0x5) => {
                        let mut b = Vec::new();
                        codec::put_varint(&mut b, id.unwrap_or(0));
                        b.extend(qpack::encode(&render_fields(headers, cx)?));
                        b
                    }
                    (None, 0x4) => {
                        let mut b = Vec::new();
                        for (k, v) in settings {
                            codec::put_varint(&mut b, *k);
                            codec::put_varint(&mut b, *v);
                        }
                        b
                    }
                    (None, 0x3 | 0x7 | 0xd) => {
                        let mut b = Vec::new();
                        codec::put_varint(&mut b, id.unwrap_or(0));
                        b
                    }
                    (None, _) => match data {
                        Some(d) => crate::syntax::unescape(&d.render(cx.vars)?)?,
                        None => Vec::new(),
                    },
                };
                Ok(frame_bytes(*kind, &body, *length))
            }
            Piece::Request(r) => {
                let authority = match &r.authority {
                    Some(a) => a.render(cx.vars)?,
                    None => "localhost".to_string(),
                };
                let mut fields = vec![
                    (":method".to_string(), r.method.render(cx.vars)?),
                    (":scheme".to_string(), r.scheme.render(cx.vars)?),
                    (":authority".to_string(), authority),
                    (":path".to_string(), r.path.render(cx.vars)?),
                ];
                fields.extend(render_fields(&r.headers, cx)?);
                let mut out = frame_bytes(0x1, &qpack::encode(&fields), None);
                if let Some(b) = &r.body {
                    out.extend(frame_bytes(0x0, &crate::syntax::unescape(&b.render(cx.vars)?)?, None));
                }
                Ok(out)
            }
        }
    }
}

impl StructuredSend for H3Send {
    fn render(&self, cx: &RenderCx) -> Result<Vec<u8>, String> {
        // Offsets are the connection's to fill in: it knows what each stream carried before.
        let mut out = Vec::new();
        if let Some(stream) = self.stream {
            let mut data = Vec::new();
            if let Some(t) = self.stream_type {
                codec::put_varint(&mut data, t);
            }
            for p in &self.pieces {
                data.extend(p.bytes(cx)?);
            }
            if let Some(b) = &self.bytes {
                data.extend_from_slice(b);
            }
            if !data.is_empty() {
                out.extend(codec::stream_record(stream, 0, &data, false));
            }
            if self.end {
                out.extend(codec::stream_record(stream, 0, b"", true));
            }
        }
        for p in &self.pieces {
            if let Piece::Request(r) = p {
                out.extend(codec::stream_record(r.stream, 0, &p.bytes(cx)?, false));
                if r.end {
                    out.extend(codec::stream_record(r.stream, 0, b"", true));
                }
            }
        }
        Ok(out)
    }

    fn templates(&self) -> Vec<&Template> {
        let mut out = Vec::new();
        for p in &self.pieces {
            match p {
                Piece::Frame { headers, data, .. } => {
                    out.extend(headers.iter().map(|(_, v)| v));
                    out.extend(data.iter());
                }
                Piece::Request(r) => {
                    out.extend([&r.method, &r.path, &r.scheme]);
                    out.extend(r.authority.iter());
                    out.extend(r.headers.iter().map(|(_, v)| v));
                    out.extend(r.body.iter());
                }
            }
        }
        out
    }
}

#[derive(Debug)]
enum FieldCheck {
    Equals(Template),
    Regex(Template),
    Absent,
}

#[derive(Debug)]
enum BodyCheck {
    Exact(Template),
    File(Fixture),
    Length(u64),
    Sha256(String),
    Empty,
}

#[derive(Debug)]
enum ExpectKind {
    Response {
        streams: Vec<u64>,
        status: Option<u16>,
        headers: Vec<(String, FieldCheck, Loc)>,
        body: Option<(BodyCheck, Loc)>,
    },
    Frame {
        kind: u64,
        stream: Option<Vec<u64>>,
        id: Option<u64>,
    },
    StreamType(u64),
    ConnectionError(Vec<u64>),
    StreamError(Option<u64>, Vec<u64>),
}

/// A structured expectation.
#[derive(Debug)]
struct H3Expect(ExpectKind);

fn parse_expect(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    let all = [EXPECT_KEYS, &["response", "connection_error", "stream_error"]].concat();
    let f = cx.fields(node, &all, "an HTTP/3 expectation")?;
    let kind = if let Some(r) = f.get("response") {
        let rf = cx.fields(r, RESPONSE_KEYS, "a response")?;
        let Some(s) = rf.get("stream") else {
            cx.err_help(
                r,
                "a response names its request's stream",
                "e.g. response: { stream: 0, status: 200 }",
            );
            return None;
        };
        let streams = streams(s, cx)?;
        let status = match rf.get("status") {
            Some(s) => Some(cx.number(s, "status")?),
            None => None,
        };
        let mut headers = Vec::new();
        if let Some(h) = rf.get("headers") {
            for (k, v) in cx.mapping(h, "headers is a mapping", "e.g. headers: { content-type: text/plain }")? {
                let name = cx.string(k, "a field name")?.to_ascii_lowercase();
                let check = match &v.data {
                    Data::Map(_) => {
                        let hf = cx.fields(v, &["regex", "absent"], "a field check")?;
                        if let Some(r) = hf.get("regex") {
                            FieldCheck::Regex(cx.regex(r)?)
                        } else if hf.get("absent").is_some() {
                            FieldCheck::Absent
                        } else {
                            cx.err_help(v, "a field check needs regex or absent", "e.g. { regex: ^text/ }");
                            return None;
                        }
                    }
                    _ => FieldCheck::Equals(cx.template(v, "a field value")?),
                };
                headers.push((name, check, k.loc));
            }
        }
        let body = match rf.get("body") {
            None => None,
            Some(b) => Some((
                match &b.data {
                    Data::Map(_) => {
                        let bf = cx.fields(b, &["file", "length", "sha256", "none"], "a body check")?;
                        if let Some(file) = bf.get("file") {
                            BodyCheck::File(cx.fixture(file, "file")?)
                        } else if let Some(l) = bf.get("length") {
                            BodyCheck::Length(cx.number(l, "length")?)
                        } else if let Some(h) = bf.get("sha256") {
                            BodyCheck::Sha256(cx.string(h, "sha256")?.to_ascii_lowercase())
                        } else if bf.get("none").is_some() {
                            BodyCheck::Empty
                        } else {
                            cx.err_help(b, "a body check needs file, length, sha256 or none", "e.g. body: { length: 506 }");
                            return None;
                        }
                    }
                    _ => BodyCheck::Exact(cx.template(b, "body")?),
                },
                b.loc,
            )),
        };
        ExpectKind::Response {
            streams,
            status,
            headers,
            body,
        }
    } else if let Some(c) = f.get("connection_error") {
        ExpectKind::ConnectionError(codes(c, cx)?)
    } else if let Some(s) = f.get("stream_error") {
        let sf = cx.fields(s, &["stream", "code"], "a stream error")?;
        let stream = match sf.get("stream") {
            Some(n) => Some(int(n, cx, "stream")?),
            None => None,
        };
        let Some(c) = sf.get("code") else {
            cx.err_help(
                s,
                "a stream error names its code",
                "e.g. stream_error: { stream: 0, code: H3_FRAME_UNEXPECTED }",
            );
            return None;
        };
        ExpectKind::StreamError(stream, codes(c, cx)?)
    } else if let Some(k) = f.get("frame") {
        ExpectKind::Frame {
            kind: named(k, cx, FRAMES, "frame type")?,
            stream: match f.get("stream") {
                Some(s) => Some(streams(s, cx)?),
                None => None,
            },
            id: match f.get("id") {
                Some(i) => Some(int(i, cx, "id")?),
                None => None,
            },
        }
    } else if let Some(t) = f.get("stream_type") {
        ExpectKind::StreamType(named(t, cx, STREAM_TYPES, "stream type")?)
    } else {
        cx.err_help(
            node,
            "an HTTP/3 expectation needs response, frame, stream_type, connection_error or stream_error",
            "e.g. expect: { response: { stream: 0, status: 200 } }",
        );
        return None;
    };
    Some(Box::new(H3Expect(kind)))
}

fn detail(msg: &Message) -> Option<&H3Message> {
    msg.detail.as_ref()?.downcast_ref::<H3Message>()
}

fn code_list(codes: &[u64]) -> String {
    codes.iter().map(|c| name_of(ERRORS, *c)).collect::<Vec<_>>().join(" or ")
}

fn meets(codes: &[u64], code: u64) -> bool {
    codes.contains(&code) || code == GENERAL
}

fn list(streams: &[u64]) -> String {
    match streams {
        [one] => one.to_string(),
        many => format!("one of {}", many.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    }
}

impl H3Expect {
    fn check_response(&self, e: &codec::Exchange, msg: &Message, cx: &RenderCx) -> Result<(), Mismatch> {
        let want = self.describe();
        let ExpectKind::Response { status, headers, body, .. } = &self.0 else {
            return Ok(());
        };
        let Some(head) = &e.head else {
            return Err(mismatch("the stream ended without a response (no HEADERS frame)", want, msg));
        };
        let field = |name: &str| head.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        if let Some(st) = status {
            if field(":status") != Some(st.to_string().as_str()) {
                return Err(mismatch(
                    format!("the status is {}, not {st}", field(":status").unwrap_or("missing")),
                    want,
                    msg,
                ));
            }
        }
        for (name, check, loc) in headers {
            let got = field(name);
            let fail = |what: String| mismatch(what, want.clone(), msg).at(*loc);
            match (check, got) {
                (FieldCheck::Absent, Some(v)) => return Err(fail(format!("{name} is there ({v:?}), expected none"))),
                (FieldCheck::Absent, None) => {}
                (_, None) => return Err(fail(format!("no {name} field"))),
                (FieldCheck::Equals(t), Some(v)) => {
                    let w = t.render(cx.vars).map_err(&fail)?;
                    if w != v {
                        return Err(fail(format!("{name} is {v:?}, not {w:?}")));
                    }
                }
                (FieldCheck::Regex(t), Some(v)) => {
                    let p = t.render_regex(cx.vars).map_err(&fail)?;
                    let re = Regex::new(&p).map_err(|e| fail(format!("invalid regex: {e}")))?;
                    if !re.is_match(v) {
                        return Err(fail(format!("{name} is {v:?}, which does not match /{p}/")));
                    }
                }
            }
        }
        if let Some((check, loc)) = body {
            let fail = |what: String| mismatch(what, want.clone(), msg).at(*loc);
            let kept_all = e.body.len() as u64 == e.body_len;
            match check {
                BodyCheck::Exact(t) => {
                    let w = crate::syntax::unescape(&t.render(cx.vars).map_err(&fail)?).map_err(&fail)?;
                    if !kept_all || e.body != w {
                        return Err(fail(format!(
                            "the body differs: {} bytes \"{}\"",
                            e.body_len,
                            crate::proto::escape_bytes(&e.body, 120)
                        )));
                    }
                }
                BodyCheck::File(fx) if !kept_all || e.body[..] != fx.bytes[..] => {
                    return Err(fail(format!(
                        "the body ({} bytes) is not the {} bytes of {}",
                        e.body_len,
                        fx.bytes.len(),
                        fx.path.display()
                    )));
                }
                BodyCheck::Length(n) if e.body_len != *n => {
                    return Err(fail(format!("the body is {} bytes, not {n}", e.body_len)));
                }
                BodyCheck::Sha256(h) if e.body_sha256 != *h => {
                    return Err(fail(format!("the body's SHA-256 is {}", e.body_sha256)));
                }
                BodyCheck::Empty if e.body_len != 0 => {
                    return Err(fail(format!("the body is {} bytes, expected none", e.body_len)));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl StructuredExpect for H3Expect {
    fn expects_end(&self) -> bool {
        matches!(self.0, ExpectKind::ConnectionError(_) | ExpectKind::StreamError(..))
    }

    fn check(&self, msg: &Message, cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        let want = self.describe();
        let Some(m) = detail(msg) else {
            return Err(mismatch("not an HTTP/3 message", want, msg));
        };
        match (&self.0, &m.kind) {
            (
                ExpectKind::ConnectionError(codes),
                H3Kind::Close {
                    application: true, code, ..
                },
            )
            | (
                ExpectKind::StreamError(_, codes),
                H3Kind::Close {
                    application: true, code, ..
                },
            ) => match meets(codes, *code) {
                true => Ok(Vec::new()),
                false => Err(mismatch(
                    format!(
                        "the connection was closed with {}, not {}",
                        name_of(ERRORS, *code),
                        code_list(codes)
                    ),
                    want,
                    msg,
                )),
            },
            (ExpectKind::StreamError(_, codes), H3Kind::Abort { code, reset }) => match meets(codes, *code) {
                true => Ok(Vec::new()),
                false => Err(mismatch(
                    format!(
                        "the stream was {} with {}, not {}",
                        if *reset { "reset" } else { "stopped" },
                        name_of(ERRORS, *code),
                        code_list(codes)
                    ),
                    want,
                    msg,
                )),
            },
            (_, H3Kind::Close { .. }) => Err(mismatch("the connection was closed", want, msg)),
            (ExpectKind::Response { .. }, H3Kind::Abort { reset: true, code }) => {
                Err(mismatch(format!("the stream was reset with {}", name_of(ERRORS, *code)), want, msg))
            }
            (ExpectKind::Response { .. }, H3Kind::End(Some(e))) => self.check_response(e, msg, cx).map(|()| Vec::new()),
            (ExpectKind::Frame { kind, id, .. }, H3Kind::Frame(H3Frame { kind: got, id: got_id, .. })) if kind == got => {
                match (id, got_id) {
                    (Some(w), Some(g)) if w != g => Err(mismatch(format!("the id is {g}, not {w}"), want, msg)),
                    _ => Ok(Vec::new()),
                }
            }
            (ExpectKind::StreamType(t), H3Kind::StreamType(got)) if t == got => Ok(Vec::new()),
            _ => Err(mismatch("not what the step waits for", want, msg)),
        }
    }

    fn templates(&self) -> Vec<&Template> {
        match &self.0 {
            ExpectKind::Response { headers, body, .. } => {
                let mut out: Vec<&Template> = headers
                    .iter()
                    .filter_map(|(_, c, _)| match c {
                        FieldCheck::Equals(t) | FieldCheck::Regex(t) => Some(t),
                        FieldCheck::Absent => None,
                    })
                    .collect();
                if let Some((BodyCheck::Exact(t), _)) = body {
                    out.push(t);
                }
                out
            }
            _ => Vec::new(),
        }
    }

    fn captures(&self) -> Vec<String> {
        Vec::new()
    }

    fn describe(&self) -> String {
        match &self.0 {
            ExpectKind::Response { streams, status, .. } => match status {
                Some(s) => format!("a response {s} on stream {}, to its end", list(streams)),
                None => format!("a response on stream {}, to its end", list(streams)),
            },
            ExpectKind::Frame { kind, stream, id } => {
                let mut s = format!("a {} frame", name_of(FRAMES, *kind));
                if let Some(st) = stream {
                    s.push_str(&format!(" on stream {}", list(st)));
                }
                if let Some(i) = id {
                    s.push_str(&format!(" with id {i}"));
                }
                s
            }
            ExpectKind::StreamType(t) => format!("a {} stream from the server", name_of(STREAM_TYPES, *t)),
            ExpectKind::ConnectionError(codes) => {
                format!("the connection closed with {} (CONNECTION_CLOSE, RFC 9114 §8)", code_list(codes))
            }
            ExpectKind::StreamError(stream, codes) => format!(
                "stream {} reset or stopped with {}, or the connection closed with it (RFC 9114 §8)",
                stream.map_or("any".to_string(), |s| s.to_string()),
                code_list(codes)
            ),
        }
    }

    fn skips(&self, msg: &Message) -> bool {
        let Some(m) = detail(msg) else { return false };
        if matches!(m.kind, H3Kind::Close { .. }) {
            return false;
        }
        let on = |streams: &[u64]| m.stream.is_some_and(|s| streams.contains(&s));
        match &self.0 {
            ExpectKind::Response { streams, .. } => !(on(streams) && matches!(m.kind, H3Kind::End(_) | H3Kind::Abort { reset: true, .. })),
            ExpectKind::Frame { kind, stream, .. } => {
                let right_stream = stream.as_ref().is_none_or(|s| on(s));
                !(right_stream && matches!(&m.kind, H3Kind::Frame(f) if f.kind == *kind))
            }
            ExpectKind::StreamType(t) => !matches!(m.kind, H3Kind::StreamType(got) if got == *t),
            ExpectKind::ConnectionError(_) => true,
            // A STOP_SENDING with another code is read past: a server may stop reading a stream
            // it drops (h3 does, with 0) on its way to the connection error the case expects.
            ExpectKind::StreamError(stream, codes) => {
                !(matches!(m.kind, H3Kind::Abort { .. }) && stream.is_none_or(|s| m.stream == Some(s)))
                    || matches!(m.kind, H3Kind::Abort { reset: false, code } if !meets(codes, code))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::steps::testing;
    use crate::proto::{Codec, Frame};
    use crate::syntax::Vars;

    fn cx(vars: &Vars) -> RenderCx<'_> {
        RenderCx {
            vars,
            base_dir: std::path::Path::new("."),
            transport: crate::proto::Transport::Quic,
            local: None,
        }
    }

    /// What the connection does to a send's records: each stream's offsets, in order.
    fn with_offsets(bytes: &[u8]) -> Vec<u8> {
        let mut next = std::collections::HashMap::new();
        let (mut out, mut at) = (Vec::new(), 0);
        while let Some((r, end)) = codec::parse_record(bytes, at).unwrap() {
            if let codec::Record::Stream {
                id, start, end: stop, fin, ..
            } = r
            {
                let off: &mut u64 = next.entry(id).or_default();
                out.extend(codec::stream_record(id, *off, &bytes[start..stop], fin));
                *off += (stop - start) as u64;
            }
            at = end;
        }
        out
    }

    fn frames(bytes: &[u8], client: bool) -> Vec<Message> {
        let mut f = crate::proto::Framer::new(Box::new(codec::Http3Codec::new(client)));
        f.push(bytes);
        let mut out = Vec::new();
        while let Some(m) = f.next(false).unwrap() {
            out.push(m);
        }
        out
    }

    #[test]
    fn round_trip_a_request() {
        let vars = Vars::new();
        let s = testing::send(
            &STEPS,
            "request: { stream: 4, method: POST, path: /echo, body: hi, headers: { x-a: b } }",
        )
        .unwrap();
        let bytes = s.render(&cx(&vars)).unwrap();
        // The connection fills in offsets: here the stream starts at 0, so they are right.
        let texts: Vec<String> = frames(&with_offsets(&bytes), true).iter().map(|m| m.text.clone()).collect();
        assert_eq!(
            texts,
            [
                "HEADERS stream=4 :method: POST, :scheme: https, :authority: localhost, :path: /echo, x-a: b",
                "DATA stream=4 2 bytes \"hi\"",
                "END stream=4"
            ]
        );
    }

    #[test]
    fn builds_control_streams_and_malformed_frames() {
        let vars = Vars::new();
        let s = testing::send(
            &STEPS,
            "{ stream: 2, stream_type: control, frame: SETTINGS, settings: { QPACK_MAX_TABLE_CAPACITY: 0 } }",
        )
        .unwrap();
        let texts: Vec<String> = frames(&s.render(&cx(&vars)).unwrap(), true)
            .iter()
            .map(|m| m.text.clone())
            .collect();
        assert_eq!(texts, ["STREAM stream=2 control", "SETTINGS stream=2 QPACK_MAX_TABLE_CAPACITY=0"]);
        let s = testing::send(&STEPS, "{ stream: 2, frame: GOAWAY, length: 3, payload: '00' }").unwrap();
        assert_eq!(
            s.render(&cx(&vars)).unwrap(),
            codec::stream_record(2, 0, &[0x07, 0x03, 0x00], false)
        );
        assert!(testing::send(&STEPS, "{ frame: DATA }").unwrap_err().contains("names its stream"));
        assert!(testing::send(&STEPS, "request: { stream: 2 }")
            .unwrap_err()
            .contains("bidirectional"));
        assert!(testing::send(&STEPS, "{ stream: 0, frame: NOPE }")
            .unwrap_err()
            .contains("not a frame type"));
    }

    fn server(bytes: &[u8]) -> Vec<Message> {
        frames(bytes, false)
    }

    #[test]
    fn expectations_skip_what_a_server_may_send() {
        let vars = Vars::new();
        let mut control = vec![0x00];
        control.extend(frame_bytes(0x4, &[0x06, 0x40, 0x64], None));
        let mut rec = codec::stream_record(3, 0, &control, false);
        let mut resp = frame_bytes(
            0x1,
            &qpack::encode(&[(":status".into(), "200".into()), ("content-type".into(), "text/html".into())]),
            None,
        );
        resp.extend(frame_bytes(0x0, b"hello", None));
        rec.extend(codec::stream_record(0, 0, &resp, false));
        rec.extend(codec::stream_record(0, resp.len() as u64, b"", true));
        rec.extend(codec::close_record(true, 0x101, b""));
        let ms = server(&rec);
        let e = testing::expect(
            &STEPS,
            "response: { stream: [0, 4], status: 200, headers: { content-type: { regex: ^text/ } }, body: hello }",
        )
        .unwrap();
        let seen: Vec<bool> = ms.iter().map(|m| e.skips(m)).collect();
        assert_eq!(seen, [true, true, true, true, false, false]);
        assert!(e.check(&ms[4], &cx(&vars)).is_ok());
        let wrong = testing::expect(&STEPS, "response: { stream: 0, status: 404 }").unwrap();
        assert!(wrong.check(&ms[4], &cx(&vars)).unwrap_err().message.contains("200"));
        let closed = testing::expect(&STEPS, "connection_error: H3_MISSING_SETTINGS").unwrap();
        assert!(closed.check(&ms[5], &cx(&vars)).is_ok(), "H3_GENERAL_PROTOCOL_ERROR meets any code");
        let settings = testing::expect(&STEPS, "frame: SETTINGS").unwrap();
        assert!(!settings.skips(&ms[1]) && settings.check(&ms[1], &cx(&vars)).is_ok());
        let control = testing::expect(&STEPS, "stream_type: control").unwrap();
        assert!(!control.skips(&ms[0]));
    }

    #[test]
    fn expectations_name_the_wrong_code() {
        let vars = Vars::new();
        let ms = server(&codec::close_record(true, 0x102, b"oops"));
        let e = testing::expect(&STEPS, "connection_error: [H3_FRAME_ERROR, H3_FRAME_UNEXPECTED]").unwrap();
        let err = e.check(&ms[0], &cx(&vars)).unwrap_err();
        assert!(
            err.message.contains("H3_INTERNAL_ERROR") && err.message.contains("H3_FRAME_ERROR or H3_FRAME_UNEXPECTED"),
            "{err:?}"
        );
        let ms = server(&codec::abort_record(codec::RESET_STREAM, 0, 0x105, 0));
        let e = testing::expect(&STEPS, "stream_error: { stream: 0, code: H3_FRAME_UNEXPECTED }").unwrap();
        assert!(!e.skips(&ms[0]) && e.check(&ms[0], &cx(&vars)).is_ok());
        let mut c = codec::Http3Codec::new(false);
        assert!(matches!(c.decode(&[], false), Ok(Frame::Incomplete)));
    }
}
