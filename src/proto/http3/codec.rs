//! HTTP/3 (RFC 9114) framing over QUIC's streams.
//!
//! A QUIC connection is recorded, per direction, as the QUIC frames that carry its streams (RFC
//! 9000 §19): STREAM frames with offset and length (§19.8), RESET_STREAM (§19.4), STOP_SENDING
//! (§19.5) and CONNECTION_CLOSE (§19.19), each stream's data in order. This codec takes them
//! apart and frames each stream on its own: a unidirectional stream's type (RFC 9114 §6.2), then
//! HTTP/3 frames (§7.1: a varint type and length), HEADERS and PUSH_PROMISE decoded with QPACK
//! (`qpack.rs`). One message per frame, per stream type, per stream end and per reset or close;
//! the end of a request stream carries the whole message it held (head, body, trailers), which
//! is what `expect: { response }` judges.
//!
//! Per-stream rules a single frame shows are findings: SETTINGS first on a control stream
//! (§6.2.1), frames where §7.2 forbids them, HTTP/2's reserved frame types and settings (§7.2.8,
//! §7.2.4.1), frames whose payload does not parse (§7.1: H3_FRAME_ERROR), a second control
//! stream (§6.2.1), a stream that ends inside a frame (§7.1), a field section that refers to the
//! dynamic table the harness allowed no room for (RFC 9204 §2.2.3).

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::Digest;

use super::qpack;
use crate::proto::{escape_bytes, Codec, CodecError, Finding, Frame, Level, Message};

/// Largest HTTP/3 frame framed; a longer one is a flood (the runner's `MAX_BUFFERED`).
pub const MAX_FRAME: u64 = 16 << 20;
/// Bytes of a message's body kept for `body:` checks (its length and SHA-256 cover all of it).
pub const MAX_KEPT_BODY: usize = 4 << 20;

/// HTTP/3 error codes (RFC 9114 §8.1) and QPACK's (RFC 9204 §6).
pub const ERRORS: &[(u64, &str)] = &[
    (0x100, "H3_NO_ERROR"),
    (0x101, "H3_GENERAL_PROTOCOL_ERROR"),
    (0x102, "H3_INTERNAL_ERROR"),
    (0x103, "H3_STREAM_CREATION_ERROR"),
    (0x104, "H3_CLOSED_CRITICAL_STREAM"),
    (0x105, "H3_FRAME_UNEXPECTED"),
    (0x106, "H3_FRAME_ERROR"),
    (0x107, "H3_EXCESSIVE_LOAD"),
    (0x108, "H3_ID_ERROR"),
    (0x109, "H3_SETTINGS_ERROR"),
    (0x10a, "H3_MISSING_SETTINGS"),
    (0x10b, "H3_REQUEST_REJECTED"),
    (0x10c, "H3_REQUEST_CANCELLED"),
    (0x10d, "H3_REQUEST_INCOMPLETE"),
    (0x10e, "H3_MESSAGE_ERROR"),
    (0x10f, "H3_CONNECT_ERROR"),
    (0x110, "H3_VERSION_FALLBACK"),
    (0x200, "QPACK_DECOMPRESSION_FAILED"),
    (0x201, "QPACK_ENCODER_STREAM_ERROR"),
    (0x202, "QPACK_DECODER_STREAM_ERROR"),
];

/// QUIC's transport error codes (RFC 9000 §20.1), for a CONNECTION_CLOSE of type 0x1c.
const TRANSPORT_ERRORS: &[&str] = &[
    "NO_ERROR",
    "INTERNAL_ERROR",
    "CONNECTION_REFUSED",
    "FLOW_CONTROL_ERROR",
    "STREAM_LIMIT_ERROR",
    "STREAM_STATE_ERROR",
    "FINAL_SIZE_ERROR",
    "FRAME_ENCODING_ERROR",
    "TRANSPORT_PARAMETER_ERROR",
    "CONNECTION_ID_LIMIT_ERROR",
    "PROTOCOL_VIOLATION",
    "INVALID_TOKEN",
    "APPLICATION_ERROR",
    "CRYPTO_BUFFER_EXCEEDED",
    "KEY_UPDATE_ERROR",
    "AEAD_LIMIT_REACHED",
    "NO_VIABLE_PATH",
];

/// Frame types (RFC 9114 §7.2, §11.2.1).
pub const FRAMES: &[(u64, &str)] = &[
    (0x0, "DATA"),
    (0x1, "HEADERS"),
    (0x3, "CANCEL_PUSH"),
    (0x4, "SETTINGS"),
    (0x5, "PUSH_PROMISE"),
    (0x7, "GOAWAY"),
    (0xd, "MAX_PUSH_ID"),
];

/// HTTP/2's frame types that HTTP/3 reserves (RFC 9114 §7.2.8: receiving one MUST be treated as a
/// connection error H3_FRAME_UNEXPECTED).
pub const HTTP2_FRAMES: &[(u64, &str)] = &[(0x2, "PRIORITY"), (0x6, "PING"), (0x8, "WINDOW_UPDATE"), (0x9, "CONTINUATION")];

/// Settings (RFC 9114 §7.2.4.1, RFC 9204 §5, RFC 9220 §3, RFC 9297 §2.1.1).
pub const SETTINGS: &[(u64, &str)] = &[
    (0x1, "QPACK_MAX_TABLE_CAPACITY"),
    (0x6, "MAX_FIELD_SECTION_SIZE"),
    (0x7, "QPACK_BLOCKED_STREAMS"),
    (0x8, "ENABLE_CONNECT_PROTOCOL"),
    (0x33, "H3_DATAGRAM"),
];

/// Unidirectional stream types (RFC 9114 §6.2, RFC 9204 §4.2).
pub const STREAM_TYPES: &[(u64, &str)] = &[(0x0, "control"), (0x1, "push"), (0x2, "qpack-encoder"), (0x3, "qpack-decoder")];

/// The name of `code` in `table`, or the number in hex.
pub fn name_of(table: &[(u64, &'static str)], code: u64) -> String {
    match table.iter().find(|(c, _)| *c == code) {
        Some((_, name)) => (*name).to_string(),
        None if is_reserved(code) => format!("0x{code:x} (reserved)"),
        None => format!("0x{code:x}"),
    }
}

/// The code called `name` in `table`, or a number written as such.
pub fn code_of(table: &[(u64, &'static str)], name: &str) -> Option<u64> {
    if let Some((c, _)) = table.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)) {
        return Some(*c);
    }
    let name = name.trim();
    match name.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => name.parse().ok(),
    }
}

/// Whether `v` is one of the values every registry reserves for greasing: 0x1f * N + 0x21 (RFC
/// 9114 §6.2.3, §7.2.8, §7.2.4.1, §8.1).
pub fn is_reserved(v: u64) -> bool {
    v >= 0x21 && (v - 0x21) % 0x1f == 0
}

/// A QUIC variable-length integer at `at` (RFC 9000 §16) and where it ends.
pub fn varint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let first = *b.get(at)?;
    let len = 1usize << (first >> 6);
    let raw = b.get(at..at.checked_add(len)?)?;
    let mut v = u64::from(first & 0x3f);
    for x in &raw[1..] {
        v = (v << 8) | u64::from(*x);
    }
    Some((v, at + len))
}

/// Appends `v` as a QUIC variable-length integer in its shortest form.
pub fn put_varint(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=0x3f => out.push(v as u8),
        0x40..=0x3fff => out.extend_from_slice(&(v as u16 | 0x4000).to_be_bytes()),
        0x4000..=0x3fff_ffff => out.extend_from_slice(&(v as u32 | 0x8000_0000).to_be_bytes()),
        _ => out.extend_from_slice(&((v & 0x3fff_ffff_ffff_ffff) | 0xc000_0000_0000_0000).to_be_bytes()),
    }
}

/// QUIC frame types of the record (RFC 9000 §19).
pub const RESET_STREAM: u8 = 0x04;
/// STOP_SENDING (RFC 9000 §19.5).
pub const STOP_SENDING: u8 = 0x05;
/// STREAM with the OFF and LEN bits (RFC 9000 §19.8); `| 1` is FIN.
pub const STREAM: u8 = 0x0e;
/// CONNECTION_CLOSE for a transport error (RFC 9000 §19.19).
pub const CLOSE_TRANSPORT: u8 = 0x1c;
/// CONNECTION_CLOSE for an application error (RFC 9000 §19.19).
pub const CLOSE_APPLICATION: u8 = 0x1d;

/// A STREAM frame of the record: `data` at `offset` of stream `id`, FIN when `fin`.
pub fn stream_record(id: u64, offset: u64, data: &[u8], fin: bool) -> Vec<u8> {
    let mut out = vec![STREAM | u8::from(fin)];
    put_varint(&mut out, id);
    put_varint(&mut out, offset);
    put_varint(&mut out, data.len() as u64);
    out.extend_from_slice(data);
    out
}

/// A RESET_STREAM (`reset`) or STOP_SENDING frame of the record.
pub fn abort_record(kind: u8, id: u64, code: u64, final_size: u64) -> Vec<u8> {
    let mut out = vec![kind];
    put_varint(&mut out, id);
    put_varint(&mut out, code);
    if kind == RESET_STREAM {
        put_varint(&mut out, final_size);
    }
    out
}

/// A CONNECTION_CLOSE frame of the record.
pub fn close_record(application: bool, code: u64, reason: &[u8]) -> Vec<u8> {
    let mut out = vec![if application { CLOSE_APPLICATION } else { CLOSE_TRANSPORT }];
    put_varint(&mut out, code);
    if !application {
        put_varint(&mut out, 0);
    }
    put_varint(&mut out, reason.len() as u64);
    out.extend_from_slice(reason);
    out
}

/// One record of the stream of QUIC frames, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Stream data (`start..end` of the buffer) at `offset`.
    Stream {
        /// Stream id.
        id: u64,
        /// Offset of the data in the stream.
        offset: u64,
        /// Where the data is in the buffer.
        start: usize,
        /// Where it ends.
        end: usize,
        /// The stream's last data.
        fin: bool,
    },
    /// RESET_STREAM or STOP_SENDING.
    Abort {
        /// RESET_STREAM (`true`) or STOP_SENDING.
        reset: bool,
        /// Stream id.
        id: u64,
        /// The application error code.
        code: u64,
    },
    /// CONNECTION_CLOSE.
    Close {
        /// An application's error code (0x1d) or QUIC's (0x1c).
        application: bool,
        /// The code.
        code: u64,
        /// The reason phrase.
        reason: String,
    },
}

/// Parses the record at `at`: Ok(None) when it is not all there yet.
pub fn parse_record(b: &[u8], at: usize) -> Result<Option<(Record, usize)>, CodecError> {
    let bad = |reason: String| CodecError { offset: at, reason };
    let Some(&kind) = b.get(at) else { return Ok(None) };
    let mut p = at + 1;
    macro_rules! v {
        () => {
            match varint(b, p) {
                Some((v, next)) => {
                    p = next;
                    v
                }
                None => return Ok(None),
            }
        };
    }
    let record = match kind {
        0x08..=0x0f => {
            let id = v!();
            let offset = if kind & 0x04 != 0 { v!() } else { 0 };
            let len = if kind & 0x02 != 0 {
                v!()
            } else {
                return Err(bad("a STREAM frame without a length: the record needs one".into()));
            };
            if len > MAX_FRAME {
                return Err(bad(format!("a STREAM frame of {len} bytes")));
            }
            let end = p + len as usize;
            if end > b.len() {
                return Ok(None);
            }
            let r = Record::Stream {
                id,
                offset,
                start: p,
                end,
                fin: kind & 0x01 != 0,
            };
            p = end;
            r
        }
        RESET_STREAM | STOP_SENDING => {
            let id = v!();
            let code = v!();
            if kind == RESET_STREAM {
                let _final_size = v!();
            }
            Record::Abort {
                reset: kind == RESET_STREAM,
                id,
                code,
            }
        }
        CLOSE_TRANSPORT | CLOSE_APPLICATION => {
            let code = v!();
            if kind == CLOSE_TRANSPORT {
                let _frame_type = v!();
            }
            let len = v!() as usize;
            let Some(reason) = b.get(p..p.saturating_add(len)) else {
                return Ok(None);
            };
            p += len;
            Record::Close {
                application: kind == CLOSE_APPLICATION,
                code,
                reason: String::from_utf8_lossy(reason).into_owned(),
            }
        }
        other => return Err(bad(format!("QUIC frame type 0x{other:02x} is not one a stream record holds"))),
    };
    Ok(Some((record, p)))
}

/// What a message of this codec is.
#[derive(Debug, Clone)]
pub enum H3Kind {
    /// The type that opens a unidirectional stream (RFC 9114 §6.2).
    StreamType(u64),
    /// An HTTP/3 frame.
    Frame(H3Frame),
    /// Data on a stream this codec does not frame (an unknown type, a QPACK stream).
    Bytes(usize),
    /// The stream ended (FIN); on a request stream, with what it carried.
    End(Option<Arc<Exchange>>),
    /// RESET_STREAM (`reset`) or STOP_SENDING, with the application error code.
    Abort {
        /// RESET_STREAM, else STOP_SENDING.
        reset: bool,
        /// The code.
        code: u64,
    },
    /// CONNECTION_CLOSE.
    Close {
        /// An application error code (HTTP/3's), else a QUIC transport one.
        application: bool,
        /// The code.
        code: u64,
        /// The reason phrase.
        reason: String,
    },
}

/// One HTTP/3 frame.
#[derive(Debug, Clone)]
pub struct H3Frame {
    /// Its type.
    pub kind: u64,
    /// Its payload (for HEADERS, the encoded field section).
    pub payload: Vec<u8>,
    /// HEADERS' and PUSH_PROMISE's fields, when they decode.
    pub fields: Option<Vec<(String, String)>>,
    /// SETTINGS' identifiers and values, in order.
    pub settings: Vec<(u64, u64)>,
    /// GOAWAY's id, CANCEL_PUSH's, MAX_PUSH_ID's and PUSH_PROMISE's push id.
    pub id: Option<u64>,
}

/// What a request stream carried, for the message at its end.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// The first HEADERS that is not an interim (1xx) response: the message's head.
    pub head: Option<Vec<(String, String)>>,
    /// Interim responses' statuses.
    pub interim: Vec<String>,
    /// The body, up to `MAX_KEPT_BODY` bytes.
    pub body: Vec<u8>,
    /// The body's whole length.
    pub body_len: u64,
    /// Its SHA-256, in hex.
    pub body_sha256: String,
    /// A HEADERS after the body.
    pub trailers: Option<Vec<(String, String)>>,
}

/// A message's parsed form.
#[derive(Debug, Clone)]
pub struct H3Message {
    /// The stream, for all but CONNECTION_CLOSE.
    pub stream: Option<u64>,
    /// What it is.
    pub kind: H3Kind,
}

impl H3Message {
    /// The frame, if it is one.
    pub fn frame(&self) -> Option<&H3Frame> {
        match &self.kind {
            H3Kind::Frame(f) => Some(f),
            _ => None,
        }
    }
}

/// What a stream is, once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Request,
    Control,
    Push,
    Unframed,
}

#[derive(Default)]
struct StreamState {
    buf: Vec<u8>,
    next_offset: u64,
    role: Option<Role>,
    frames: usize,
    ended: bool,
    exchange: Exchange,
    sha: sha2::Sha256,
    /// A push stream's push id is still to be read.
    push_id_pending: bool,
}

/// The rest of a STREAM record whose data was framed only in part.
#[derive(Debug, Clone, Copy)]
struct Cont {
    stream: u64,
    left: usize,
    fin: bool,
    /// Its bytes were framed already; only the FIN is left to tell.
    framed: bool,
}

/// The codec of one direction of an HTTP/3 connection.
pub struct Http3Codec {
    /// It frames what the client sent.
    client: bool,
    streams: BTreeMap<u64, StreamState>,
    /// Bytes at the start of the buffer whose data already went to the streams.
    absorbed: usize,
    cont: Option<Cont>,
    controls: usize,
}

impl Http3Codec {
    /// The codec of the client's side (`client`) or the server's.
    pub fn new(client: bool) -> Http3Codec {
        Http3Codec {
            client,
            streams: BTreeMap::new(),
            absorbed: 0,
            cont: None,
            controls: 0,
        }
    }
}

fn must(rule: &'static str, text: String) -> Finding {
    Finding {
        level: Level::Must,
        rule,
        text,
    }
}

impl Codec for Http3Codec {
    fn decode(&mut self, buf: &[u8], _eof: bool) -> Result<Frame, CodecError> {
        let mut at = self.absorbed.min(buf.len());
        loop {
            if let Some(c) = self.cont.take() {
                if c.framed {
                    // The FIN of data already framed: it takes the last byte kept for it.
                    let m = self.end(c.stream, Vec::new());
                    self.absorbed = 0;
                    return Ok(Frame::Message(m, at + c.left));
                }
                let end = at + c.left;
                if end > buf.len() {
                    self.cont = Some(c);
                    return Ok(Frame::Incomplete);
                }
                if let Some(m) = self.feed(c.stream, buf, at, end, c.fin)? {
                    return Ok(m);
                }
                at = end;
                self.absorbed = at;
                continue;
            }
            let Some((record, next)) = parse_record(buf, at)? else {
                return Ok(Frame::Incomplete);
            };
            match record {
                Record::Stream {
                    id,
                    offset,
                    start,
                    end,
                    fin,
                } => {
                    let s = self.streams.entry(id).or_default();
                    if offset != s.next_offset {
                        return Err(CodecError {
                            offset: at,
                            reason: format!(
                                "stream {id}: data at offset {offset} where {} was next: bytes are missing or repeated",
                                s.next_offset
                            ),
                        });
                    }
                    if s.ended {
                        return Err(CodecError {
                            offset: at,
                            reason: format!("stream {id}: data after the stream's end"),
                        });
                    }
                    if let Some(m) = self.feed(id, buf, start, end, fin)? {
                        return Ok(m);
                    }
                    at = next;
                    self.absorbed = at;
                }
                Record::Abort { reset, id, code } => {
                    let name = name_of(ERRORS, code);
                    let kind = if reset { "RESET_STREAM" } else { "STOP_SENDING" };
                    if reset {
                        self.streams.entry(id).or_default().ended = true;
                    }
                    let text = format!("{kind} stream={id} {name}");
                    let m = message(text.clone(), text, Some(id), H3Kind::Abort { reset, code });
                    self.absorbed = 0;
                    return Ok(Frame::Message(m, next));
                }
                Record::Close { application, code, reason } => {
                    let name = match application {
                        true => name_of(ERRORS, code),
                        false => transport_error(code),
                    };
                    let mut text = format!("CONNECTION_CLOSE {name}");
                    if !application {
                        text.push_str(" (QUIC)");
                    }
                    if !reason.is_empty() {
                        text.push_str(&format!(" \"{}\"", escape_bytes(reason.as_bytes(), 120)));
                    }
                    let kind = H3Kind::Close { application, code, reason };
                    let m = message(text.clone(), text, None, kind);
                    self.absorbed = 0;
                    return Ok(Frame::Message(m, next));
                }
            }
        }
    }
}

/// QUIC's name for a transport error code (RFC 9000 §20.1), a TLS alert for CRYPTO_ERROR.
fn transport_error(code: u64) -> String {
    match code {
        0x100..=0x1ff => format!("CRYPTO_ERROR (TLS alert {})", code - 0x100),
        _ => match TRANSPORT_ERRORS.get(code as usize) {
            Some(name) => (*name).to_string(),
            None => format!("0x{code:x}"),
        },
    }
}

fn message(text: String, summary: String, stream: Option<u64>, kind: H3Kind) -> Message {
    Message {
        text,
        summary,
        findings: Vec::new(),
        detail: Some(Arc::new(H3Message { stream, kind })),
    }
}

impl Http3Codec {
    /// Feeds `buf[start..end]`, data of stream `id`, and frames what it completes. Returns the
    /// first message, with the bytes used up to it (the rest of the data is `cont`); None when
    /// the data completes nothing (it is all in the stream's buffer).
    fn feed(&mut self, id: u64, buf: &[u8], start: usize, end: usize, fin: bool) -> Result<Option<Frame>, CodecError> {
        let s = self.streams.entry(id).or_default();
        let old = s.buf.len();
        s.buf.extend_from_slice(&buf[start..end]);
        if s.buf.len() as u64 > MAX_FRAME + 16 {
            return Err(CodecError {
                offset: start,
                reason: format!("stream {id}: over {} MiB without a whole frame", MAX_FRAME >> 20),
            });
        }
        match self.unit(id)? {
            Some((m, used)) => {
                let taken = used - old;
                let s = self.streams.get_mut(&id).expect("fed above");
                s.buf.clear();
                s.next_offset += taken as u64;
                let data_len = end - start;
                let mut upto = start + taken;
                if taken < data_len {
                    self.cont = Some(Cont {
                        stream: id,
                        left: data_len - taken,
                        fin,
                        framed: false,
                    });
                } else if fin {
                    // Keep the last byte for the FIN's own message.
                    upto -= 1;
                    self.cont = Some(Cont {
                        stream: id,
                        left: 1,
                        fin,
                        framed: true,
                    });
                }
                self.absorbed = 0;
                Ok(Some(Frame::Message(m, upto)))
            }
            None => {
                let s = self.streams.get_mut(&id).expect("fed above");
                s.next_offset += (end - start) as u64;
                if fin {
                    let held = std::mem::take(&mut s.buf);
                    let m = self.end(id, held);
                    self.absorbed = 0;
                    return Ok(Some(Frame::Message(m, end)));
                }
                Ok(None)
            }
        }
    }

    /// The stream's end: what it carried, and a finding if a frame was cut.
    fn end(&mut self, id: u64, held: Vec<u8>) -> Message {
        let client = self.client;
        let s = self.streams.entry(id).or_default();
        s.ended = true;
        let mut findings = Vec::new();
        if !held.is_empty() {
            findings.push(must(
                "RFC 9114 §7.1",
                format!(
                    "the stream ended inside a frame ({} bytes of it): a receiver MUST treat a truncated last frame as a connection error H3_FRAME_ERROR",
                    held.len()
                ),
            ));
        }
        let (text, exchange) = match s.role {
            Some(Role::Request) | Some(Role::Push) => {
                s.exchange.body_sha256 = hex(&std::mem::take(&mut s.sha).finalize());
                let e = std::mem::take(&mut s.exchange);
                let what = match (&e.head, client) {
                    (Some(head), false) => format!(
                        " (response {}, {} bytes of body)",
                        head.iter()
                            .find(|(n, _)| n == ":status")
                            .map_or("without :status", |(_, v)| v.as_str()),
                        e.body_len
                    ),
                    (None, false) => " (no response)".to_string(),
                    _ => String::new(),
                };
                (format!("END stream={id}{what}"), Some(Arc::new(e)))
            }
            Some(Role::Control) => {
                findings.push(must(
                    "RFC 9114 §6.2.1",
                    "the control stream was closed: if either control stream is closed at any point, this MUST be treated as a connection error H3_CLOSED_CRITICAL_STREAM".into(),
                ));
                (format!("END stream={id}"), None)
            }
            _ => (format!("END stream={id}"), None),
        };
        let mut m = message(text.clone(), text, Some(id), H3Kind::End(exchange));
        m.findings = findings;
        m
    }

    /// The next unit the stream's buffer holds whole (its type, a frame, or the bytes of a
    /// stream not framed), and the buffer's bytes it used.
    fn unit(&mut self, id: u64) -> Result<Option<(Message, usize)>, CodecError> {
        let client = self.client;
        let uni = id & 0x2 != 0;
        let s = self.streams.get_mut(&id).expect("fed before");
        if s.role.is_none() {
            if !uni {
                s.role = Some(Role::Request);
            } else {
                let Some((kind, used)) = varint(&s.buf, 0) else { return Ok(None) };
                let mut findings = Vec::new();
                let role = match kind {
                    0x0 => {
                        self.controls += 1;
                        if self.controls > 1 {
                            findings.push(must(
                                "RFC 9114 §6.2.1",
                                "a second control stream: only one per peer is permitted; receipt of a second MUST be treated as a connection error H3_STREAM_CREATION_ERROR".into(),
                            ));
                        }
                        Role::Control
                    }
                    0x1 => {
                        if client {
                            findings.push(must(
                                "RFC 9114 §6.2.2",
                                "a push stream opened by the client: only servers can push; a server MUST treat it as a connection error H3_STREAM_CREATION_ERROR".into(),
                            ));
                        }
                        s.push_id_pending = true;
                        Role::Push
                    }
                    _ => Role::Unframed,
                };
                let s = self.streams.get_mut(&id).expect("fed before");
                s.role = Some(role);
                let text = format!("STREAM stream={id} {}", name_of(STREAM_TYPES, kind));
                let mut m = message(text.clone(), text, Some(id), H3Kind::StreamType(kind));
                m.findings = findings;
                return Ok(Some((m, used)));
            }
        }
        let s = self.streams.get_mut(&id).expect("fed before");
        if s.role == Some(Role::Unframed) {
            if s.buf.is_empty() {
                return Ok(None);
            }
            let n = s.buf.len();
            let text = format!("BYTES stream={id} {n} bytes \"{}\"", escape_bytes(&s.buf, 60));
            return Ok(Some((message(text.clone(), text, Some(id), H3Kind::Bytes(n)), n)));
        }
        if s.push_id_pending {
            let Some((push, used)) = varint(&s.buf, 0) else { return Ok(None) };
            s.push_id_pending = false;
            let text = format!("PUSH stream={id} push_id={push}");
            return Ok(Some((message(text.clone(), text, Some(id), H3Kind::Bytes(used)), used)));
        }
        let Some((kind, p)) = varint(&s.buf, 0) else { return Ok(None) };
        let Some((len, p)) = varint(&s.buf, p) else { return Ok(None) };
        if len > MAX_FRAME {
            return Err(CodecError {
                offset: 0,
                reason: format!("stream {id}: a frame of {len} bytes, over the {} MiB framed", MAX_FRAME >> 20),
            });
        }
        let end = p + len as usize;
        if s.buf.len() < end {
            return Ok(None);
        }
        let payload = s.buf[p..end].to_vec();
        let m = frame_message(s, id, kind, payload, client);
        Ok(Some((m, end)))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn fields_text(fields: &[(String, String)]) -> String {
    fields.iter().map(|(n, v)| format!("{n}: {v}")).collect::<Vec<_>>().join(", ")
}

/// A frame of stream `s` as a message, with the findings its place on the stream shows.
fn frame_message(s: &mut StreamState, id: u64, kind: u64, payload: Vec<u8>, client: bool) -> Message {
    let role = s.role.unwrap_or(Role::Request);
    let first = s.frames == 0;
    s.frames += 1;
    let mut findings = Vec::new();
    let name = name_of(FRAMES, kind);
    let mut frame = H3Frame {
        kind,
        payload,
        fields: None,
        settings: Vec::new(),
        id: None,
    };
    let frame_error = |what: &str| {
        must(
            "RFC 9114 §7.1",
            format!("{what}: a frame whose payload does not match its type MUST be treated as a connection error H3_FRAME_ERROR"),
        )
    };
    let unexpected = |rule: &'static str, what: String| must(rule, format!("{what}: a connection error H3_FRAME_UNEXPECTED"));
    let mut detail = String::new();
    match kind {
        0x0 => {
            detail = format!("{} bytes \"{}\"", frame.payload.len(), escape_bytes(&frame.payload, 60));
            if role == Role::Request && s.exchange.head.is_none() {
                findings.push(unexpected(
                    "RFC 9114 §4.1",
                    "DATA before HEADERS on a request stream (a receipt of an invalid sequence of frames MUST be treated as a connection error of type H3_FRAME_UNEXPECTED)".into(),
                ));
            }
            s.exchange.body_len += frame.payload.len() as u64;
            s.sha.update(&frame.payload);
            let room = MAX_KEPT_BODY.saturating_sub(s.exchange.body.len());
            s.exchange.body.extend_from_slice(&frame.payload[..frame.payload.len().min(room)]);
        }
        0x1 | 0x5 => {
            let mut section = &frame.payload[..];
            if kind == 0x5 {
                match varint(section, 0) {
                    Some((push, used)) => {
                        frame.id = Some(push);
                        section = &section[used..];
                        detail = format!("push_id={push} ");
                    }
                    None => findings.push(frame_error("a PUSH_PROMISE without a push id")),
                }
                if client {
                    findings.push(unexpected(
                        "RFC 9114 §7.2.5",
                        "a PUSH_PROMISE from the client (a server MUST treat it as a connection error of type H3_FRAME_UNEXPECTED)".into(),
                    ));
                }
            }
            match qpack::decode(section) {
                Ok(fields) => {
                    detail.push_str(&fields_text(&fields));
                    for (n, _) in &fields {
                        if n.bytes().any(|b| b.is_ascii_uppercase()) {
                            findings.push(must(
                                "RFC 9114 §4.2",
                                format!("field name {n:?} has uppercase letters: such a message MUST be treated as malformed"),
                            ));
                        }
                    }
                    if kind == 0x1 && role == Role::Request {
                        let status = fields.iter().find(|(n, _)| n == ":status").map(|(_, v)| v.clone());
                        if s.exchange.head.is_none() {
                            match status.filter(|st| st.starts_with('1') && !client) {
                                Some(st) => s.exchange.interim.push(st),
                                None => s.exchange.head = Some(fields.clone()),
                            }
                        } else {
                            s.exchange.trailers = Some(fields.clone());
                        }
                    }
                    frame.fields = Some(fields);
                }
                Err(e) => {
                    let rule = if e.dynamic { "RFC 9204 §2.2.3" } else { "RFC 9204 §4.5" };
                    detail.push_str(&format!("(field section does not decode: {})", e.reason));
                    // The harness allowed no dynamic table: only a peer that reads its
                    // SETTINGS is bound by it, so the client's own sections are not judged.
                    if !client || !e.dynamic {
                        findings.push(must(rule, format!("{}: QPACK_DECOMPRESSION_FAILED", e.reason)));
                    }
                }
            }
        }
        0x3 | 0x7 | 0xd => match varint(&frame.payload, 0) {
            Some((v, used)) if used == frame.payload.len() => {
                frame.id = Some(v);
                detail = match kind {
                    0x7 => format!("id={v}"),
                    _ => format!("push_id={v}"),
                };
            }
            _ => {
                detail = format!("{} bytes \"{}\"", frame.payload.len(), escape_bytes(&frame.payload, 60));
                findings.push(frame_error(&format!("a {name} whose payload is not one variable-length integer")));
            }
        },
        0x4 => {
            let mut p = 0;
            let mut parts = Vec::new();
            while p < frame.payload.len() {
                let Some((k, next)) = varint(&frame.payload, p) else {
                    findings.push(frame_error("a SETTINGS frame that ends inside an identifier"));
                    break;
                };
                let Some((v, next)) = varint(&frame.payload, next) else {
                    findings.push(frame_error("a SETTINGS frame that ends inside a value"));
                    break;
                };
                p = next;
                if (0x2..=0x5).contains(&k) {
                    findings.push(must(
                        "RFC 9114 §7.2.4.1",
                        format!("setting 0x{k:x} is one of HTTP/2's: receipt MUST be treated as a connection error H3_SETTINGS_ERROR"),
                    ));
                }
                if frame.settings.iter().any(|(seen, _)| *seen == k) {
                    findings.push(must(
                        "RFC 9114 §7.2.4",
                        format!("setting 0x{k:x} appears twice: the same identifier MUST NOT occur more than once (H3_SETTINGS_ERROR)"),
                    ));
                }
                frame.settings.push((k, v));
                parts.push(format!("{}={v}", name_of(SETTINGS, k)));
            }
            detail = parts.join(" ");
        }
        _ => {
            detail = format!("{} bytes \"{}\"", frame.payload.len(), escape_bytes(&frame.payload, 60));
            if let Some((_, h2)) = HTTP2_FRAMES.iter().find(|(t, _)| *t == kind) {
                findings.push(unexpected(
                    "RFC 9114 §7.2.8",
                    format!("frame type 0x{kind:x} (HTTP/2's {h2}) is reserved: its receipt MUST be treated as a connection error of type H3_FRAME_UNEXPECTED"),
                ));
            }
        }
    }
    // Where each frame may go (RFC 9114 §7.2).
    match (role, kind) {
        (Role::Control, _) if first && kind != 0x4 => findings.push(must(
            "RFC 9114 §6.2.1",
            format!("the control stream's first frame is {name}: it MUST be SETTINGS, else a connection error H3_MISSING_SETTINGS"),
        )),
        (Role::Control, 0x4) if !first => findings.push(unexpected(
            "RFC 9114 §7.2.4",
            "a second SETTINGS frame on the control stream (an endpoint MUST respond with".into(),
        )),
        (Role::Control, 0x0 | 0x1 | 0x5) => findings.push(unexpected(
            "RFC 9114 §7.2",
            format!("{name} on the control stream (not permitted there; the recipient MUST respond with"),
        )),
        (Role::Request | Role::Push, 0x3 | 0x4 | 0x7 | 0xd) => findings.push(unexpected(
            "RFC 9114 §7.2",
            format!("{name} on a request stream (only permitted on the control stream; receipt MUST be treated as"),
        )),
        _ => {}
    }
    let text = match detail.is_empty() {
        true => format!("{name} stream={id}"),
        false => format!("{name} stream={id} {detail}"),
    };
    Message {
        text: text.clone(),
        summary: text,
        findings,
        detail: Some(Arc::new(H3Message {
            stream: Some(id),
            kind: H3Kind::Frame(frame),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Framer;

    fn frame(kind: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, kind);
        put_varint(&mut out, payload.len() as u64);
        out.extend_from_slice(payload);
        out
    }

    fn all(codec: Http3Codec, bytes: &[u8]) -> Vec<Message> {
        let mut f = Framer::new(Box::new(codec));
        f.push(bytes);
        let mut out = Vec::new();
        while let Some(m) = f.next(false).unwrap() {
            out.push(m);
        }
        assert!(f.pending().is_empty(), "left: {:?}", f.pending());
        out
    }

    fn texts(ms: &[Message]) -> Vec<String> {
        ms.iter().map(|m| m.text.clone()).collect()
    }

    #[test]
    fn round_trip_varints() {
        for v in [0, 37, 63, 64, 15293, 16383, 16384, 494878333, 1 << 40, (1 << 62) - 1] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(varint(&b, 0), Some((v, b.len())), "{v}");
        }
        assert_eq!(varint(&[0x9d, 0x7f, 0x3e, 0x7d], 0), Some((494878333, 4)));
        assert_eq!(varint(&[0x40], 0), None);
    }

    #[test]
    fn parses_a_response_split_across_records() {
        let mut data = frame(0x1, &qpack::encode(&[(":status".into(), "200".into())]));
        data.extend(frame(0x0, b"hello"));
        data.extend(frame(0x0, b" world"));
        let mut rec = stream_record(0, 0, &data[..4], false);
        rec.extend(stream_record(0, 4, &data[4..], false));
        rec.extend(stream_record(0, data.len() as u64, b"", true));
        let ms = all(Http3Codec::new(false), &rec);
        assert_eq!(
            texts(&ms),
            [
                "HEADERS stream=0 :status: 200",
                "DATA stream=0 5 bytes \"hello\"",
                "DATA stream=0 6 bytes \" world\"",
                "END stream=0 (response 200, 11 bytes of body)"
            ]
        );
        let Some(end) = ms[3].detail.as_ref().and_then(|d| d.downcast_ref::<H3Message>()) else {
            panic!()
        };
        let H3Kind::End(Some(e)) = &end.kind else { panic!() };
        assert_eq!(e.body, b"hello world");
        assert!(ms.iter().all(|m| m.findings.is_empty()));
    }

    #[test]
    fn parses_data_and_fin_in_one_record() {
        let data = frame(0x0, b"x");
        let mut head = frame(0x1, &qpack::encode(&[(":status".into(), "404".into())]));
        head.extend(&data);
        let ms = all(Http3Codec::new(false), &stream_record(0, 0, &head, true));
        assert_eq!(texts(&ms)[2], "END stream=0 (response 404, 1 bytes of body)");
    }

    #[test]
    fn parses_control_streams_and_findings() {
        let mut control = vec![0x00];
        control.extend(frame(0x4, &[0x01, 0x00, 0x07, 0x00, 0x21, 0x05]));
        control.extend(frame(0x7, &[0x04]));
        control.extend(frame(0x21, b"grease"));
        let mut rec = stream_record(3, 0, &control, false);
        rec.extend(abort_record(STOP_SENDING, 2, 0x103, 0));
        rec.extend(close_record(true, 0x10a, b"no settings"));
        let ms = all(Http3Codec::new(false), &rec);
        assert_eq!(
            texts(&ms),
            [
                "STREAM stream=3 control",
                "SETTINGS stream=3 QPACK_MAX_TABLE_CAPACITY=0 QPACK_BLOCKED_STREAMS=0 0x21 (reserved)=5",
                "GOAWAY stream=3 id=4",
                "0x21 (reserved) stream=3 6 bytes \"grease\"",
                "STOP_SENDING stream=2 H3_STREAM_CREATION_ERROR",
                "CONNECTION_CLOSE H3_MISSING_SETTINGS \"no settings\"",
            ]
        );
        assert!(
            ms.iter().all(|m| m.findings.is_empty()),
            "{:?}",
            ms.iter().map(|m| &m.findings).collect::<Vec<_>>()
        );

        let mut bad = vec![0x00];
        bad.extend(frame(0x7, &[0x00]));
        bad.extend(frame(0x0, b"x"));
        bad.extend(frame(0x4, &[0x01]));
        let ms = all(Http3Codec::new(false), &stream_record(3, 0, &bad, true));
        let rules: Vec<Vec<&str>> = ms.iter().map(|m| m.findings.iter().map(|f| f.rule).collect()).collect();
        assert_eq!(
            rules,
            [
                vec![],
                vec!["RFC 9114 §6.2.1"],
                vec!["RFC 9114 §7.2"],
                vec!["RFC 9114 §7.1", "RFC 9114 §7.2.4"],
                vec!["RFC 9114 §6.2.1"]
            ]
        );
    }

    #[test]
    fn parses_request_stream_rules() {
        let mut s = frame(0x0, b"early");
        s.extend(frame(0x2, b""));
        s.extend(frame(0x1, &[0x02, 0x00, 0x80]));
        let ms = all(Http3Codec::new(false), &stream_record(0, 0, &s, false));
        assert_eq!(ms[0].findings[0].rule, "RFC 9114 §4.1");
        assert_eq!(ms[1].findings[0].rule, "RFC 9114 §7.2.8");
        assert_eq!(ms[2].findings[0].rule, "RFC 9204 §2.2.3");
        // The client's own dynamic reference is not judged: it reads no SETTINGS of ours.
        let ms = all(Http3Codec::new(true), &stream_record(0, 0, &frame(0x1, &[0x02, 0x00, 0x80]), false));
        assert!(ms[0].findings.is_empty());
    }

    #[test]
    fn parses_unknown_streams_as_bytes() {
        let ms = all(Http3Codec::new(true), &stream_record(6, 0, &[0x40, 0x21, b'a', b'b'], true));
        assert_eq!(
            texts(&ms),
            ["STREAM stream=6 0x21 (reserved)", "BYTES stream=6 2 bytes \"ab\"", "END stream=6"]
        );
    }

    #[test]
    fn incomplete_records_wait() {
        let rec = stream_record(0, 0, &frame(0x0, b"hello"), false);
        let mut c = Http3Codec::new(false);
        assert!(matches!(c.decode(&rec[..rec.len() - 1], false), Ok(Frame::Incomplete)));
        assert!(matches!(c.decode(&rec[..3], false), Ok(Frame::Incomplete)));
    }

    #[test]
    fn rejects_gaps_and_foreign_frames() {
        let e = Http3Codec::new(false).decode(&stream_record(0, 5, b"x", false), false).unwrap_err();
        assert!(e.reason.contains("offset 5"), "{e}");
        let e = Http3Codec::new(false).decode(&[0x06, 0x00], false).unwrap_err();
        assert!(e.reason.contains("0x06"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), client: bool) {
            let mut f = Framer::new(Box::new(Http3Codec::new(client)));
            f.push(&bytes);
            while let Ok(Some(_)) = f.next(true) {}
            let _ = super::qpack::decode(&bytes);
            let _ = super::super::packet::PacketCodec::default().decode(&bytes, true);
            let _ = super::super::initial::frames(&bytes);
        }

        #[test]
        fn never_panics_on_random_frames_in_records(
            recs in proptest::collection::vec((0u64..12, proptest::collection::vec((0u64..0x30, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..30)), 0..4), proptest::prelude::any::<bool>()), 0..20),
            client: bool,
        ) {
            let mut offsets = std::collections::HashMap::new();
            let mut b = Vec::new();
            for (id, frames, fin) in &recs {
                let mut data = Vec::new();
                for (kind, payload) in frames {
                    data.extend(frame(*kind, payload));
                }
                let off: &mut u64 = offsets.entry(*id).or_default();
                b.extend(stream_record(*id, *off, &data, *fin));
                *off += data.len() as u64;
            }
            let mut f = Framer::new(Box::new(Http3Codec::new(client)));
            f.push(&b);
            while let Ok(Some(_)) = f.next(true) {}
        }
    }
}
