//! HTTP/2 framing (RFC 9113): the client's connection preface, then one message per frame, each
//! frame type of §6 decoded, header blocks (HEADERS or PUSH_PROMISE and their CONTINUATIONs)
//! decoded with the direction's HPACK table, and the MUST findings a frame shows on its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::hpack::{Hpack, HpackError};
use crate::proto::{escape_bytes, Codec, CodecError, Finding, Frame, Level, Message};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// SETTINGS_MAX_FRAME_SIZE until the receiver says otherwise (RFC 9113 §6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;

/// The largest frame payload kept when it is over the receiver's limit: past it the stream is
/// not framed further, rather than buffered up to the 16 MiB the length field can say.
pub const MAX_OVERSIZED: usize = 1 << 20;

/// The largest header block kept across CONTINUATION frames; a longer one is not decoded.
pub const MAX_HEADER_BLOCK: usize = 1 << 20;

/// Streams whose header blocks are remembered (request or response head seen); the oldest are
/// forgotten past this, so a long connection's memory stays bounded.
const MAX_STREAMS: usize = 4096;

/// Flag bits (RFC 9113 §6).
pub mod flags {
    /// DATA, HEADERS: the sender's last frame on the stream.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: an acknowledgement.
    pub const ACK: u8 = 0x1;
    /// HEADERS, PUSH_PROMISE, CONTINUATION: the header block ends here.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS, PUSH_PROMISE: a pad length byte, and padding.
    pub const PADDED: u8 = 0x8;
    /// HEADERS: priority fields follow.
    pub const PRIORITY: u8 = 0x20;
}

/// A frame's type (RFC 9113 §6); other types are kept by number and ignored (§5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// DATA (0x0).
    Data,
    /// HEADERS (0x1).
    Headers,
    /// PRIORITY (0x2).
    Priority,
    /// RST_STREAM (0x3).
    RstStream,
    /// SETTINGS (0x4).
    Settings,
    /// PUSH_PROMISE (0x5).
    PushPromise,
    /// PING (0x6).
    Ping,
    /// GOAWAY (0x7).
    GoAway,
    /// WINDOW_UPDATE (0x8).
    WindowUpdate,
    /// CONTINUATION (0x9).
    Continuation,
    /// A type RFC 9113 does not define (an extension's, or garbage).
    Unknown(u8),
}

impl Kind {
    /// The type of a frame header's type byte.
    pub fn of(t: u8) -> Kind {
        match t {
            0 => Kind::Data,
            1 => Kind::Headers,
            2 => Kind::Priority,
            3 => Kind::RstStream,
            4 => Kind::Settings,
            5 => Kind::PushPromise,
            6 => Kind::Ping,
            7 => Kind::GoAway,
            8 => Kind::WindowUpdate,
            9 => Kind::Continuation,
            t => Kind::Unknown(t),
        }
    }

    /// The name RFC 9113 gives it.
    pub fn name(self) -> String {
        match self {
            Kind::Data => "DATA".into(),
            Kind::Headers => "HEADERS".into(),
            Kind::Priority => "PRIORITY".into(),
            Kind::RstStream => "RST_STREAM".into(),
            Kind::Settings => "SETTINGS".into(),
            Kind::PushPromise => "PUSH_PROMISE".into(),
            Kind::Ping => "PING".into(),
            Kind::GoAway => "GOAWAY".into(),
            Kind::WindowUpdate => "WINDOW_UPDATE".into(),
            Kind::Continuation => "CONTINUATION".into(),
            Kind::Unknown(t) => format!("UNKNOWN_0x{t:02x}"),
        }
    }

    /// The flags this type defines, by bit and name.
    fn flag_names(self) -> &'static [(u8, &'static str)] {
        use flags::*;
        match self {
            Kind::Data => &[(END_STREAM, "END_STREAM"), (PADDED, "PADDED")],
            Kind::Headers => &[
                (END_STREAM, "END_STREAM"),
                (END_HEADERS, "END_HEADERS"),
                (PADDED, "PADDED"),
                (PRIORITY, "PRIORITY"),
            ],
            Kind::Settings | Kind::Ping => &[(ACK, "ACK")],
            Kind::PushPromise => &[(END_HEADERS, "END_HEADERS"), (PADDED, "PADDED")],
            Kind::Continuation => &[(END_HEADERS, "END_HEADERS")],
            _ => &[],
        }
    }
}

/// A stream dependency (RFC 9113 §5.3.2, §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    /// The E bit.
    pub exclusive: bool,
    /// The stream depended on.
    pub depends_on: u32,
    /// The weight, 1 to 256 (the field plus one).
    pub weight: u16,
}

/// What a header block fragment amounts to in the frame that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// The block goes on in CONTINUATION frames: this many bytes of it so far.
    Continues(usize),
    /// The block ended here: its fields, in order (names and values as sent, lossily UTF-8).
    Fields(Vec<(String, String)>),
    /// The block ended here and could not be decoded: why.
    Undecoded(String),
}

/// A frame's payload, decoded per type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The client connection preface (not a frame).
    Preface,
    /// DATA: its data without padding, and the padding's length.
    Data {
        /// The data.
        data: Vec<u8>,
        /// Bytes of padding (and the pad length byte) around it.
        padding: usize,
    },
    /// HEADERS.
    Headers {
        /// Priority fields, with the PRIORITY flag.
        priority: Option<Priority>,
        /// The header block, when it ended here.
        block: Block,
    },
    /// PRIORITY.
    Priority(Priority),
    /// RST_STREAM: the error code.
    RstStream(u32),
    /// SETTINGS: identifier and value pairs, in order.
    Settings(Vec<(u16, u32)>),
    /// PUSH_PROMISE.
    PushPromise {
        /// The promised stream.
        promised: u32,
        /// The header block, when it ended here.
        block: Block,
    },
    /// PING: the opaque data.
    Ping(Vec<u8>),
    /// GOAWAY.
    GoAway {
        /// The last stream processed.
        last: u32,
        /// The error code.
        code: u32,
        /// Additional debug data.
        debug: Vec<u8>,
    },
    /// WINDOW_UPDATE: the increment.
    WindowUpdate(u32),
    /// CONTINUATION.
    Continuation(Block),
    /// An unknown type's payload.
    Other(Vec<u8>),
    /// A payload that does not fit its type's layout (the findings say how): its bytes.
    Malformed(Vec<u8>),
}

/// One framed HTTP/2 frame (or the preface), the `detail` of its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Frame {
    /// The type.
    pub kind: Kind,
    /// The flags byte.
    pub flags: u8,
    /// The stream identifier (R bit cleared).
    pub stream: u32,
    /// The payload's length.
    pub length: usize,
    /// The decoded payload.
    pub body: Body,
}

impl H2Frame {
    /// Whether `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Whether this frame ends its sender's side of the stream (END_STREAM on DATA or HEADERS).
    pub fn ends_stream(&self) -> bool {
        matches!(self.kind, Kind::Data | Kind::Headers) && self.has(flags::END_STREAM)
    }

    /// Whether this is a SETTINGS acknowledgement.
    pub fn is_settings_ack(&self) -> bool {
        self.kind == Kind::Settings && self.has(flags::ACK)
    }

    /// The frame's decoded fields, when a header block ended in it.
    pub fn fields(&self) -> Option<&[(String, String)]> {
        match &self.body {
            Body::Headers {
                block: Block::Fields(f), ..
            }
            | Body::PushPromise {
                block: Block::Fields(f), ..
            }
            | Body::Continuation(Block::Fields(f)) => Some(f),
            _ => None,
        }
    }
}

/// The name of a SETTINGS parameter (RFC 9113 §6.5.2; 8 is RFC 8441's, 9 RFC 9218's).
pub fn setting_name(id: u16) -> String {
    match id {
        1 => "HEADER_TABLE_SIZE".into(),
        2 => "ENABLE_PUSH".into(),
        3 => "MAX_CONCURRENT_STREAMS".into(),
        4 => "INITIAL_WINDOW_SIZE".into(),
        5 => "MAX_FRAME_SIZE".into(),
        6 => "MAX_HEADER_LIST_SIZE".into(),
        8 => "ENABLE_CONNECT_PROTOCOL".into(),
        9 => "NO_RFC7540_PRIORITIES".into(),
        id => format!("0x{id:04x}"),
    }
}

/// The name of an error code (RFC 9113 §7).
pub fn error_name(code: u32) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES.get(code as usize).map_or_else(|| format!("0x{code:x}"), |n| n.to_string())
}

/// The frame as one transcript line: type, stream, flags, then what it carries.
pub fn render(f: &H2Frame) -> String {
    if f.body == Body::Preface {
        return "PREFACE PRI * HTTP/2.0".into();
    }
    let mut s = f.kind.name();
    let connection_level = matches!(f.kind, Kind::Settings | Kind::Ping | Kind::GoAway);
    if !connection_level || f.stream != 0 {
        s.push_str(&format!(" stream={}", f.stream));
    }
    let mut names: Vec<String> = Vec::new();
    let mut rest = f.flags;
    for (bit, name) in f.kind.flag_names() {
        if f.flags & bit != 0 {
            names.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        names.push(format!("0x{rest:02x}"));
    }
    if !names.is_empty() {
        s.push_str(&format!(" [{}]", names.join(" ")));
    }
    let tail = match &f.body {
        Body::Preface => String::new(),
        Body::Data { data, padding } => {
            let pad = if *padding > 0 {
                format!(" (padding {padding})")
            } else {
                String::new()
            };
            format!("{} bytes{pad} \"{}\"", data.len(), escape_bytes(data, 60))
        }
        Body::Headers { priority, block } => {
            let p = priority.map(|p| format!("{} ", priority_text(p))).unwrap_or_default();
            format!("{p}{}", block_text(block))
        }
        Body::Priority(p) => priority_text(*p),
        Body::RstStream(code) => error_name(*code),
        Body::Settings(params) => params
            .iter()
            .map(|(id, v)| format!("{}={v}", setting_name(*id)))
            .collect::<Vec<_>>()
            .join(" "),
        Body::PushPromise { promised, block } => format!("promised={promised} {}", block_text(block)),
        Body::Ping(data) => data.iter().map(|b| format!("{b:02x}")).collect(),
        Body::GoAway { last, code, debug } => {
            let d = if debug.is_empty() {
                String::new()
            } else {
                format!(" \"{}\"", escape_bytes(debug, 120))
            };
            format!("last={last} {}{d}", error_name(*code))
        }
        Body::WindowUpdate(n) => format!("increment={n}"),
        Body::Continuation(block) => block_text(block),
        Body::Other(b) | Body::Malformed(b) => format!("{} bytes \"{}\"", b.len(), escape_bytes(b, 60)),
    };
    if !tail.is_empty() {
        s.push(' ');
        s.push_str(&tail);
    }
    s
}

fn priority_text(p: Priority) -> String {
    let e = if p.exclusive { " exclusive" } else { "" };
    format!("(depends on {}{e}, weight {})", p.depends_on, p.weight)
}

fn block_text(b: &Block) -> String {
    match b {
        Block::Continues(n) => format!("header block continues ({n} bytes so far)"),
        Block::Fields(f) => f
            .iter()
            .map(|(n, v)| format!("{}: {}", escape_bytes(n.as_bytes(), 200), escape_bytes(v.as_bytes(), 200)))
            .collect::<Vec<_>>()
            .join(", "),
        Block::Undecoded(why) => format!("header block {why}"),
    }
}

/// A header block still open: its first frame's type and stream, and its fragments so far.
struct OpenBlock {
    kind: Kind,
    stream: u32,
    fragments: Vec<u8>,
    /// More than `MAX_HEADER_BLOCK` bytes came: the block is not kept.
    overflow: bool,
}

/// What the peer told this direction's sender in its SETTINGS (learnt through `peer_sent`).
struct PeerSettings {
    buf: Vec<u8>,
    /// The peer is the client, whose bytes start with the preface.
    preface_left: bool,
    /// Payload bytes of a frame not worth keeping, still to pass over.
    skip: usize,
    /// The largest SETTINGS_MAX_FRAME_SIZE the peer advertised.
    max_frame: u32,
    /// The largest SETTINGS_HEADER_TABLE_SIZE the peer advertised.
    table: Option<usize>,
    /// The peer's bytes stopped making sense; nothing more is learnt.
    broken: bool,
}

impl PeerSettings {
    fn feed(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len());
                self.buf.drain(..n);
                self.skip -= n;
                if self.skip > 0 {
                    return;
                }
            }
            if self.preface_left {
                let n = self.buf.len().min(PREFACE.len());
                if self.buf[..n] != PREFACE[..n] {
                    self.broken = true;
                    return;
                }
                if n < PREFACE.len() {
                    return;
                }
                self.buf.drain(..n);
                self.preface_left = false;
            }
            let Some(h) = header(&self.buf) else { return };
            let settings = Kind::of(h.kind) == Kind::Settings && h.flags & flags::ACK == 0;
            if !settings || h.length > MAX_OVERSIZED {
                self.buf.drain(..9);
                self.skip = h.length;
                continue;
            }
            if self.buf.len() < 9 + h.length {
                return;
            }
            for p in self.buf[9..9 + h.length].chunks_exact(6) {
                let value = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
                match u16::from_be_bytes([p[0], p[1]]) {
                    1 => self.table = Some(self.table.unwrap_or(0).max(value as usize)),
                    5 => self.max_frame = self.max_frame.max(value),
                    _ => {}
                }
            }
            self.buf.drain(..9 + h.length);
        }
    }
}

/// A frame header's fields (RFC 9113 §4.1).
struct Header {
    length: usize,
    kind: u8,
    flags: u8,
    reserved: bool,
    stream: u32,
}

fn header(buf: &[u8]) -> Option<Header> {
    let b: &[u8; 9] = buf.get(..9)?.try_into().ok()?;
    Some(Header {
        length: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
        kind: b[3],
        flags: b[4],
        reserved: b[5] & 0x80 != 0,
        stream: u32::from_be_bytes([b[5] & 0x7f, b[6], b[7], b[8]]),
    })
}

/// Frames one direction of an HTTP/2 connection.
pub struct Http2Codec {
    client: bool,
    preface_done: bool,
    hpack: Hpack,
    open: Option<OpenBlock>,
    /// Per stream, whether this side's final head (request, or non-1xx response) was sent.
    heads: BTreeMap<u32, bool>,
    peer: PeerSettings,
}

impl Http2Codec {
    /// A codec for what the client sends (`client`: the preface first) or what the server sends.
    pub fn new(client: bool) -> Http2Codec {
        Http2Codec {
            client,
            preface_done: false,
            hpack: Hpack::new(),
            open: None,
            heads: BTreeMap::new(),
            peer: PeerSettings {
                buf: Vec::new(),
                preface_left: !client,
                skip: 0,
                max_frame: DEFAULT_MAX_FRAME_SIZE,
                table: None,
                broken: false,
            },
        }
    }

    fn preface(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let n = buf.len().min(PREFACE.len());
        if let Some(at) = (0..n).find(|&i| buf[i] != PREFACE[i]) {
            return Err(CodecError {
                offset: at,
                reason: format!(
                    "a client's first bytes MUST be the connection preface \"PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n\" (RFC 9113 §3.4), not \"{}\"",
                    escape_bytes(&buf[..n], 40)
                ),
            });
        }
        if n < PREFACE.len() {
            if eof && n > 0 {
                return Err(CodecError {
                    offset: n,
                    reason: "the connection closed in the middle of the connection preface".into(),
                });
            }
            return Ok(Frame::Incomplete);
        }
        self.preface_done = true;
        // The preface is no frame: its body says what it is, and no rule reads its kind.
        let f = H2Frame {
            kind: Kind::Unknown(0xff),
            flags: 0,
            stream: 0,
            length: 0,
            body: Body::Preface,
        };
        Ok(Frame::Message(message(f, Vec::new()), PREFACE.len()))
    }

    /// Decodes one whole frame's payload.
    fn frame(&mut self, h: &Header, p: &[u8], out: &mut Vec<Finding>) -> H2Frame {
        let kind = Kind::of(h.kind);
        let name = kind.name();
        let undefined = kind.flag_names().iter().fold(h.flags, |rest, (bit, _)| rest & !bit);
        if undefined != 0 && !matches!(kind, Kind::Unknown(_)) {
            must(
                out,
                "RFC 9113 §4.1",
                format!("flags 0x{undefined:02x}, which {name} does not define, MUST be left unset"),
            );
        }
        if h.reserved {
            must(
                out,
                "RFC 9113 §4.1",
                "the reserved bit of the stream identifier MUST be unset".into(),
            );
        }
        // A header block is one contiguous run of frames (RFC 9113 §4.3).
        if let Some(open) = &self.open {
            if kind != Kind::Continuation || h.stream != open.stream {
                must(
 out,
                    "RFC 9113 §6.10",
                    format!(
                        "a {name} frame on stream {} while the {} header block on stream {} had no END_HEADERS yet: only its CONTINUATION frames may follow",
                        h.stream,
                        open.kind.name(),
                        open.stream
                    ),
                );
                self.open = None;
                // The unfinished block never reached the table: what follows cannot be decoded.
                self.hpack.lose();
            }
        }
        let zero = h.stream == 0;
        let body = match kind {
            Kind::Data => {
                if zero {
                    must(
                        out,
                        "RFC 9113 §6.1",
                        "DATA on stream 0: DATA frames MUST be associated with a stream".into(),
                    );
                }
                match unpad(h.flags, p) {
                    Some((data, padding)) => Body::Data {
                        data: data.to_vec(),
                        padding,
                    },
                    None => {
                        must(out, "RFC 9113 §6.1", "the padding is as long as the payload or longer".into());
                        Body::Malformed(p.to_vec())
                    }
                }
            }
            Kind::Headers => {
                if zero {
                    must(
                        out,
                        "RFC 9113 §6.2",
                        "HEADERS on stream 0: HEADERS frames MUST be associated with a stream".into(),
                    );
                }
                let (pad_len, at) = if h.flags & flags::PADDED != 0 {
                    (p.first().map(|&b| usize::from(b)), 1)
                } else {
                    (Some(0), 0)
                };
                let prio_len = if h.flags & flags::PRIORITY != 0 { 5 } else { 0 };
                match pad_len.filter(|pad| at + prio_len + pad <= p.len()) {
                    Some(pad) => {
                        let priority = (prio_len > 0).then(|| priority(&p[at..at + 5]));
                        if let Some(pr) = priority.filter(|pr| pr.depends_on == h.stream) {
                            must(out, "RFC 9113 §5.3.1", format!("stream {} depends on itself", pr.depends_on));
                        }
                        let fragment = &p[at + prio_len..p.len() - pad];
                        let block = self.start_block(kind, h, fragment, out);
                        Body::Headers { priority, block }
                    }
                    None => {
                        must(
                            out,
                            "RFC 9113 §6.2",
                            "the padding and priority fields do not fit in the payload".into(),
                        );
                        Body::Malformed(p.to_vec())
                    }
                }
            }
            Kind::Priority => {
                if zero {
                    must(out, "RFC 9113 §6.3", "PRIORITY on stream 0".into());
                }
                if p.len() == 5 {
                    let pr = priority(p);
                    if pr.depends_on == h.stream {
                        must(out, "RFC 9113 §5.3.1", format!("stream {} depends on itself", pr.depends_on));
                    }
                    Body::Priority(pr)
                } else {
                    must(
                        out,
                        "RFC 9113 §6.3",
                        format!("a PRIORITY frame of {} bytes, not 5 (FRAME_SIZE_ERROR)", p.len()),
                    );
                    Body::Malformed(p.to_vec())
                }
            }
            Kind::RstStream => {
                if zero {
                    must(out, "RFC 9113 §6.4", "RST_STREAM on stream 0".into());
                }
                match <[u8; 4]>::try_from(p) {
                    Ok(b) => Body::RstStream(u32::from_be_bytes(b)),
                    Err(_) => {
                        must(
                            out,
                            "RFC 9113 §6.4",
                            format!("an RST_STREAM frame of {} bytes, not 4 (FRAME_SIZE_ERROR)", p.len()),
                        );
                        Body::Malformed(p.to_vec())
                    }
                }
            }
            Kind::Settings => {
                if !zero {
                    must(
                        out,
                        "RFC 9113 §6.5",
                        format!("SETTINGS on stream {}: it MUST be on stream 0", h.stream),
                    );
                }
                if h.flags & flags::ACK != 0 && !p.is_empty() {
                    must(
                        out,
                        "RFC 9113 §6.5",
                        format!("a SETTINGS ACK with {} payload bytes: it MUST be empty (FRAME_SIZE_ERROR)", p.len()),
                    );
                    Body::Malformed(p.to_vec())
                } else if p.len() % 6 != 0 {
                    must(
                        out,
                        "RFC 9113 §6.5",
                        format!("a SETTINGS payload of {} bytes, not a multiple of 6 (FRAME_SIZE_ERROR)", p.len()),
                    );
                    Body::Malformed(p.to_vec())
                } else {
                    let params: Vec<(u16, u32)> = p
                        .chunks_exact(6)
                        .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]])))
                        .collect();
                    for &(id, v) in &params {
                        match id {
                            2 if v > 1 => must(out, "RFC 9113 §6.5.2", format!("ENABLE_PUSH={v}: only 0 and 1 are allowed")),
                            2 if v == 1 && !self.client => must(
                                out,
                                "RFC 9113 §6.5.2",
                                "a server sent ENABLE_PUSH=1: a server MUST NOT set it to 1".into(),
                            ),
                            4 if v > 0x7fff_ffff => must(
                                out,
                                "RFC 9113 §6.5.2",
                                format!("INITIAL_WINDOW_SIZE={v}, over 2^31-1 (FLOW_CONTROL_ERROR)"),
                            ),
                            5 if !(16_384..=16_777_215).contains(&v) => {
                                must(out, "RFC 9113 §6.5.2", format!("MAX_FRAME_SIZE={v}, outside 16384 to 16777215"))
                            }
                            _ => {}
                        }
                    }
                    Body::Settings(params)
                }
            }
            Kind::PushPromise => {
                if self.client {
                    must(out, "RFC 9113 §8.4", "a client sent PUSH_PROMISE: a client cannot push".into());
                }
                if zero {
                    must(out, "RFC 9113 §6.6", "PUSH_PROMISE on stream 0".into());
                }
                match unpad(h.flags, p).filter(|(rest, _)| rest.len() >= 4) {
                    Some((rest, _)) => {
                        let promised = u32::from_be_bytes([rest[0] & 0x7f, rest[1], rest[2], rest[3]]);
                        let block = self.start_block(kind, h, &rest[4..], out);
                        Body::PushPromise { promised, block }
                    }
                    None => {
                        must(
                            out,
                            "RFC 9113 §6.6",
                            "the padding and promised stream do not fit in the payload".into(),
                        );
                        Body::Malformed(p.to_vec())
                    }
                }
            }
            Kind::Ping => {
                if !zero {
                    must(out, "RFC 9113 §6.7", format!("PING on stream {}: it MUST be on stream 0", h.stream));
                }
                if p.len() == 8 {
                    Body::Ping(p.to_vec())
                } else {
                    must(
                        out,
                        "RFC 9113 §6.7",
                        format!("a PING of {} bytes, not 8 (FRAME_SIZE_ERROR)", p.len()),
                    );
                    Body::Malformed(p.to_vec())
                }
            }
            Kind::GoAway => {
                if !zero {
                    must(
                        out,
                        "RFC 9113 §6.8",
                        format!("GOAWAY on stream {}: it MUST be on stream 0", h.stream),
                    );
                }
                if p.len() >= 8 {
                    Body::GoAway {
                        last: u32::from_be_bytes([p[0] & 0x7f, p[1], p[2], p[3]]),
                        code: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                        debug: p[8..].to_vec(),
                    }
                } else {
                    must(
                        out,
                        "RFC 9113 §4.2",
                        format!("a GOAWAY of {} bytes, too short for its 8 fixed bytes (FRAME_SIZE_ERROR)", p.len()),
                    );
                    Body::Malformed(p.to_vec())
                }
            }
            Kind::WindowUpdate => match <[u8; 4]>::try_from(p) {
                Ok(b) => {
                    let n = u32::from_be_bytes(b) & 0x7fff_ffff;
                    if n == 0 {
                        must(out, "RFC 9113 §6.9", "a WINDOW_UPDATE increment of 0 (PROTOCOL_ERROR)".into());
                    }
                    Body::WindowUpdate(n)
                }
                Err(_) => {
                    must(
                        out,
                        "RFC 9113 §6.9",
                        format!("a WINDOW_UPDATE of {} bytes, not 4 (FRAME_SIZE_ERROR)", p.len()),
                    );
                    Body::Malformed(p.to_vec())
                }
            },
            Kind::Continuation => {
                if zero {
                    must(out, "RFC 9113 §6.10", "CONTINUATION on stream 0".into());
                }
                match self.open.take() {
                    Some(mut open) if open.stream == h.stream => {
                        append(&mut open, p);
                        if h.flags & flags::END_HEADERS != 0 {
                            Body::Continuation(self.finish_block(open, out))
                        } else {
                            let n = open.fragments.len();
                            self.open = Some(open);
                            Body::Continuation(Block::Continues(n))
                        }
                    }
                    _ => {
                        must(
 out,
                            "RFC 9113 §6.10",
                            "a CONTINUATION frame that does not follow a HEADERS, PUSH_PROMISE or CONTINUATION frame without END_HEADERS on its stream".into(),
                        );
                        Body::Malformed(p.to_vec())
                    }
                }
            }
            Kind::Unknown(_) => Body::Other(p.to_vec()),
        };
        H2Frame {
            kind,
            flags: h.flags,
            stream: h.stream,
            length: p.len(),
            body,
        }
    }

    /// The first fragment of a header block: decoded now if END_HEADERS is set, else kept.
    fn start_block(&mut self, kind: Kind, h: &Header, fragment: &[u8], out: &mut Vec<Finding>) -> Block {
        let mut open = OpenBlock {
            kind,
            stream: h.stream,
            fragments: Vec::new(),
            overflow: false,
        };
        append(&mut open, fragment);
        if h.flags & flags::END_HEADERS != 0 {
            self.finish_block(open, out)
        } else {
            let n = open.fragments.len();
            self.open = Some(open);
            Block::Continues(n)
        }
    }

    fn finish_block(&mut self, open: OpenBlock, out: &mut Vec<Finding>) -> Block {
        if open.overflow {
            self.hpack.lose();
            return Block::Undecoded(format!("over {MAX_HEADER_BLOCK} bytes, not kept"));
        }
        match self.hpack.decode(&open.fragments) {
            Ok(raw) => {
                check_fields(&raw, self.role(open.kind, open.stream, &raw), out);
                Block::Fields(
                    raw.iter()
                        .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v).into_owned()))
                        .collect(),
                )
            }
            Err(e @ HpackError::Malformed(_)) => {
                out.push(Finding {
                    level: Level::Must,
                    rule: "RFC 9113 §4.3",
                    text: format!("the header block cannot be decoded (COMPRESSION_ERROR): {e}"),
                });
                Block::Undecoded(format!("not decoded: {e}"))
            }
            Err(e @ HpackError::Lost) => Block::Undecoded(e.to_string()),
        }
    }

    /// What a decoded block is on its stream: a request or response head, or trailers.
    fn role(&mut self, kind: Kind, stream: u32, fields: &[(Vec<u8>, Vec<u8>)]) -> Role {
        if kind == Kind::PushPromise {
            return Role::Request;
        }
        let pseudo = fields.iter().any(|(n, _)| n.starts_with(b":"));
        let done = self.heads.get(&stream).copied().unwrap_or(false);
        if done {
            return Role::Trailers;
        }
        let role = if self.client { Role::Request } else { Role::Response };
        // A response head that is 1xx is interim: the final one is still to come (RFC 9113 §8.1).
        let interim = !self.client && pseudo && fields.iter().any(|(n, v)| n == b":status" && v.len() == 3 && v.starts_with(b"1"));
        self.heads.insert(stream, !interim);
        while self.heads.len() > MAX_STREAMS {
            self.heads.pop_first();
        }
        role
    }
}

/// What a header block is, for its pseudo-header rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Request,
    Response,
    Trailers,
}

fn append(open: &mut OpenBlock, fragment: &[u8]) {
    if open.overflow || open.fragments.len() + fragment.len() > MAX_HEADER_BLOCK {
        open.overflow = true;
        open.fragments = Vec::new();
    } else {
        open.fragments.extend_from_slice(fragment);
    }
}

/// A payload without its padding (RFC 9113 §6.1), and the bytes the padding took; `None` when
/// the padding does not fit.
fn unpad(flag_bits: u8, p: &[u8]) -> Option<(&[u8], usize)> {
    if flag_bits & flags::PADDED == 0 {
        return Some((p, 0));
    }
    let pad = usize::from(*p.first()?);
    (pad < p.len()).then(|| (&p[1..p.len() - pad], pad + 1))
}

fn priority(b: &[u8]) -> Priority {
    Priority {
        exclusive: b[0] & 0x80 != 0,
        depends_on: u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]),
        weight: u16::from(b[4]) + 1,
    }
}

/// The fields HTTP/2 forbids outright (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&str; 5] = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];

/// The field rules of RFC 9113 §8.2 and §8.3 over one decoded block.
fn check_fields(fields: &[(Vec<u8>, Vec<u8>)], role: Role, out: &mut Vec<Finding>) {
    let show = |b: &[u8]| escape_bytes(b, 80);
    let mut regular_seen = false;
    let mut pseudo: Vec<&[u8]> = Vec::new();
    let mut method = None;
    for (n, v) in fields {
        if n.starts_with(b":") {
            if regular_seen {
                must(
                    out,
                    "RFC 9113 §8.3",
                    format!(
                        "pseudo-header {} after a regular field: all pseudo-headers MUST come first",
                        show(n)
                    ),
                );
            }
            if pseudo.contains(&n.as_slice()) {
                must(out, "RFC 9113 §8.3.1", format!("pseudo-header {} appears twice", show(n)));
            }
            pseudo.push(n);
            if n == b":method" {
                method = Some(v.as_slice());
            }
        } else {
            regular_seen = true;
        }
        if n.iter().any(u8::is_ascii_uppercase) {
            must(
                out,
                "RFC 9113 §8.2.1",
                format!("field name {} has uppercase letters: names MUST be lowercase", show(n)),
            );
        }
        if let Some(c) = CONNECTION_SPECIFIC.iter().find(|c| c.as_bytes().eq_ignore_ascii_case(n)) {
            must(
                out,
                "RFC 9113 §8.2.2",
                format!("connection-specific field {c}: HTTP/2 messages MUST NOT contain it"),
            );
        }
        if n.eq_ignore_ascii_case(b"te") && !v.trim_ascii().eq_ignore_ascii_case(b"trailers") {
            must(
                out,
                "RFC 9113 §8.2.2",
                format!("TE: {}: the only value allowed is \"trailers\"", show(v)),
            );
        }
        if v.iter().any(|b| matches!(b, 0 | b'\r' | b'\n')) {
            must(
                out,
                "RFC 9113 §8.2.1",
                format!("field {} has a NUL, CR or LF in its value", show(n)),
            );
        }
    }
    let has = |p: &str| pseudo.contains(&p.as_bytes());
    match role {
        Role::Trailers => {
            if !pseudo.is_empty() {
                must(out, "RFC 9113 §8.1", "trailers MUST NOT include pseudo-header fields".into());
            }
        }
        Role::Request => {
            let connect = method == Some(b"CONNECT".as_slice());
            for n in &pseudo {
                let known = [b":method".as_slice(), b":scheme", b":authority", b":path"].contains(n) || (*n == b":protocol" && connect);
                if !known {
                    must(out, "RFC 9113 §8.3", format!("{} is not a request pseudo-header", show(n)));
                }
            }
            if connect && !has(":protocol") {
                // CONNECT (RFC 9113 §8.5): :method and :authority only.
                if !has(":authority") {
                    must(out, "RFC 9113 §8.5", "a CONNECT request without :authority".into());
                }
                if has(":scheme") || has(":path") {
                    must(out, "RFC 9113 §8.5", "a CONNECT request MUST omit :scheme and :path".into());
                }
            } else {
                let missing: Vec<&str> = [":method", ":scheme", ":path"].into_iter().filter(|p| !has(p)).collect();
                if !missing.is_empty() {
                    must(
                        out,
                        "RFC 9113 §8.3.1",
                        format!(
                            "a request without {}: every request MUST include :method, :scheme and :path",
                            missing.join(", ")
                        ),
                    );
                }
                if fields.iter().any(|(n, v)| n == b":path" && v.is_empty()) {
                    must(out, "RFC 9113 §8.3.1", "an empty :path".into());
                }
            }
        }
        Role::Response => {
            for n in &pseudo {
                if *n != b":status" {
                    must(out, "RFC 9113 §8.3", format!("{} is not a response pseudo-header", show(n)));
                }
            }
            if !has(":status") {
                must(out, "RFC 9113 §8.3.2", "a response without :status".into());
            }
        }
    }
}

fn message(f: H2Frame, findings: Vec<Finding>) -> Message {
    let text = render(&f);
    Message {
        summary: text.clone(),
        text,
        findings,
        detail: Some(Arc::new(f)),
    }
}

/// Adds a MUST finding.
fn must(out: &mut Vec<Finding>, rule: &'static str, text: String) {
    out.push(Finding {
        level: Level::Must,
        rule,
        text,
    });
}

impl Codec for Http2Codec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        if self.client && !self.preface_done {
            return self.preface(buf, eof);
        }
        let Some(h) = header(buf) else {
            if eof && !buf.is_empty() {
                return Err(CodecError {
                    offset: buf.len(),
                    reason: "the connection closed in the middle of a frame header".into(),
                });
            }
            return Ok(Frame::Incomplete);
        };
        let limit = self.peer.max_frame;
        if h.length > limit as usize && h.length > MAX_OVERSIZED {
            return Err(CodecError {
                offset: 0,
                reason: format!(
                    "a {} frame of {} bytes, over SETTINGS_MAX_FRAME_SIZE {limit} (RFC 9113 §4.2: FRAME_SIZE_ERROR), not framed further",
                    Kind::of(h.kind).name(),
                    h.length
                ),
            });
        }
        if buf.len() < 9 + h.length {
            if eof {
                return Err(CodecError {
                    offset: buf.len(),
                    reason: format!(
                        "the connection closed after {} of the {} payload bytes of a {} frame",
                        buf.len() - 9,
                        h.length,
                        Kind::of(h.kind).name()
                    ),
                });
            }
            return Ok(Frame::Incomplete);
        }
        let mut findings = Vec::new();
        if h.length > limit as usize {
            findings.push(Finding {
                level: Level::Must,
                rule: "RFC 9113 §4.2",
                text: format!(
                    "a frame of {} bytes, over the receiver's SETTINGS_MAX_FRAME_SIZE {limit} (FRAME_SIZE_ERROR)",
                    h.length
                ),
            });
        }
        if let Some(t) = self.peer.table {
            self.hpack.allow_table(t);
        }
        let f = self.frame(&h, &buf[9..9 + h.length], &mut findings);
        Ok(Frame::Message(message(f, findings), 9 + h.length))
    }

    fn peer_sent(&mut self, bytes: &[u8]) {
        self.peer.feed(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Framer;
    use proptest::prelude::*;

    /// One frame's bytes.
    fn fr(kind: u8, flag_bits: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut b = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flag_bits];
        b.extend_from_slice(&stream.to_be_bytes());
        b.extend_from_slice(payload);
        b
    }

    fn hpack(enc: &mut fluke_hpack::Encoder<'static>, fields: &[(&str, &str)]) -> Vec<u8> {
        enc.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    /// Every message `bytes` frames into, then the error if framing stopped.
    fn frames(client: bool, bytes: &[u8]) -> (Vec<Message>, Option<CodecError>) {
        let mut f = Framer::new(Box::new(Http2Codec::new(client)));
        f.push(bytes);
        let mut out = Vec::new();
        loop {
            match f.next(true) {
                Ok(Some(m)) => out.push(m),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    fn lines(client: bool, bytes: &[u8]) -> Vec<String> {
        let (ms, e) = frames(client, bytes);
        assert!(e.is_none(), "{e:?}");
        ms.into_iter().map(|m| m.summary).collect()
    }

    /// The rules of the findings of each frame, one list per frame.
    fn rules(client: bool, bytes: &[u8]) -> Vec<Vec<&'static str>> {
        frames(client, bytes)
            .0
            .iter()
            .map(|m| m.findings.iter().map(|f| f.rule).collect())
            .collect()
    }

    fn client_opening() -> Vec<u8> {
        let mut b = PREFACE.to_vec();
        b.extend(fr(4, 0, 0, &[0, 3, 0, 0, 0, 100, 0, 4, 0, 0, 0xff, 0xff]));
        b
    }

    const GET: &[(&str, &str)] = &[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "a.test")];

    #[test]
    fn parses_the_preface_settings_and_a_request() {
        let mut enc = fluke_hpack::Encoder::new();
        let mut b = client_opening();
        b.extend(fr(1, 0x5, 1, &hpack(&mut enc, GET)));
        assert_eq!(
            lines(true, &b),
            [
                "PREFACE PRI * HTTP/2.0",
                "SETTINGS MAX_CONCURRENT_STREAMS=100 INITIAL_WINDOW_SIZE=65535",
                "HEADERS stream=1 [END_STREAM END_HEADERS] :method: GET, :scheme: http, :path: /, :authority: a.test",
            ]
        );
        assert!(frames(true, &b).0.iter().all(|m| m.findings.is_empty()));
    }

    #[test]
    fn parses_every_frame_type() {
        let mut enc = fluke_hpack::Encoder::new();
        let mut b = Vec::new();
        b.extend(fr(4, 1, 0, b""));
        b.extend(fr(0, 0x9, 1, b"\x02hello\x00\x00"));
        let block = hpack(&mut enc, &[(":status", "200")]);
        b.extend(fr(1, 0x2c, 3, &[&[1u8, 0x80, 0, 0, 1, 15][..], &block, &[0]].concat()));
        b.extend(fr(2, 0, 5, &[0, 0, 0, 3, 255]));
        b.extend(fr(3, 0, 1, &8u32.to_be_bytes()));
        let promise = hpack(&mut enc, GET);
        b.extend(fr(5, 4, 1, &[&2u32.to_be_bytes()[..], &promise].concat()));
        b.extend(fr(6, 1, 0, b"12345678"));
        b.extend(fr(7, 0, 0, &[&3u32.to_be_bytes()[..], &1u32.to_be_bytes(), b"debug"].concat()));
        b.extend(fr(8, 0, 0, &1000u32.to_be_bytes()));
        b.extend(fr(0x0a, 0x3, 0, b"ext"));
        assert_eq!(
            lines(false, &b),
            [
                "SETTINGS [ACK]",
                "DATA stream=1 [END_STREAM PADDED] 5 bytes (padding 3) \"hello\"",
                "HEADERS stream=3 [END_HEADERS PADDED PRIORITY] (depends on 1 exclusive, weight 16) :status: 200",
                "PRIORITY stream=5 (depends on 3, weight 256)",
                "RST_STREAM stream=1 CANCEL",
                "PUSH_PROMISE stream=1 [END_HEADERS] promised=2 :method: GET, :scheme: http, :path: /, :authority: a.test",
                "PING [ACK] 3132333435363738",
                "GOAWAY last=3 PROTOCOL_ERROR \"debug\"",
                "WINDOW_UPDATE stream=0 increment=1000",
                "UNKNOWN_0x0a stream=0 [0x03] 3 bytes \"ext\"",
            ]
        );
        assert!(frames(false, &b).0.iter().all(|m| m.findings.is_empty()), "{:?}", rules(false, &b));
    }

    #[test]
    fn parses_header_blocks_across_continuations_with_one_dynamic_table() {
        let mut enc = fluke_hpack::Encoder::new();
        let long = "v".repeat(40);
        let fields = [GET, &[("x-long", long.as_str())]].concat();
        let first = hpack(&mut enc, &fields);
        let second = hpack(&mut enc, &fields);
        assert!(second.len() < first.len() / 2, "the second block uses the dynamic table");
        let mut b = client_opening();
        b.extend(fr(1, 0, 1, &first[..10]));
        b.extend(fr(9, 0, 1, &first[10..20]));
        b.extend(fr(9, 4, 1, &first[20..]));
        b.extend(fr(1, 5, 3, &second));
        let l = lines(true, &b);
        assert_eq!(l[2], "HEADERS stream=1 header block continues (10 bytes so far)");
        assert_eq!(l[3], "CONTINUATION stream=1 header block continues (20 bytes so far)");
        let want = format!(
            ":method: GET, :scheme: http, :path: /, :authority: a.test, x-long: {}",
            "v".repeat(40)
        );
        assert_eq!(l[4], format!("CONTINUATION stream=1 [END_HEADERS] {want}"));
        assert_eq!(l[5], format!("HEADERS stream=3 [END_STREAM END_HEADERS] {want}"));
    }

    #[test]
    fn incomplete_preface_and_frames_wait_for_more() {
        let mut c = Http2Codec::new(true);
        assert!(matches!(c.decode(&PREFACE[..10], false), Ok(Frame::Incomplete)));
        assert!(c.decode(&PREFACE[..10], true).is_err());
        assert!(matches!(c.decode(PREFACE, false), Ok(Frame::Message(_, 24))));
        let f = fr(6, 0, 0, b"12345678");
        for cut in [0, 5, 9, 12] {
            assert!(matches!(c.decode(&f[..cut], false), Ok(Frame::Incomplete)), "{cut}");
        }
        assert_eq!(c.decode(&f[..12], true).unwrap_err().offset, 12);
    }

    #[test]
    fn rejects_a_client_without_the_preface() {
        let (ms, e) = frames(true, b"GET / HTTP/1.1\r\n\r\n");
        assert!(ms.is_empty());
        let e = e.unwrap();
        assert_eq!(e.offset, 0);
        assert!(e.reason.contains("RFC 9113 §3.4"), "{e}");
    }

    #[test]
    fn rejects_bad_frames_with_their_rules() {
        let mut enc = fluke_hpack::Encoder::new();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (fr(0, 0, 0, b"x"), "RFC 9113 §6.1"),
            (fr(0, 8, 1, b"\x05ab"), "RFC 9113 §6.1"),
            (
                fr(1, 4, 0, &hpack(&mut fluke_hpack::Encoder::new(), &[(":status", "200")])),
                "RFC 9113 §6.2",
            ),
            (fr(4, 0, 1, b""), "RFC 9113 §6.5"),
            (fr(4, 0, 0, b"\x00\x03\x00\x00\x00"), "RFC 9113 §6.5"),
            (fr(4, 1, 0, b"\x00\x03\x00\x00\x00\x01"), "RFC 9113 §6.5"),
            (fr(4, 0, 0, b"\x00\x05\x00\x00\x00\x01"), "RFC 9113 §6.5.2"),
            (fr(4, 0, 0, b"\x00\x02\x00\x00\x00\x01"), "RFC 9113 §6.5.2"),
            (fr(6, 0, 0, b"1234567"), "RFC 9113 §6.7"),
            (fr(6, 0, 1, b"12345678"), "RFC 9113 §6.7"),
            (fr(7, 0, 1, &[0; 8]), "RFC 9113 §6.8"),
            (fr(7, 0, 0, &[0; 7]), "RFC 9113 §4.2"),
            (fr(8, 0, 1, &[0; 4]), "RFC 9113 §6.9"),
            (fr(8, 0, 1, &[0; 3]), "RFC 9113 §6.9"),
            (fr(9, 4, 1, &[0x82]), "RFC 9113 §6.10"),
            (fr(2, 0, 3, &[0, 0, 0, 3, 1]), "RFC 9113 §5.3.1"),
            (fr(3, 0, 1, &[0; 3]), "RFC 9113 §6.4"),
            (fr(6, 0x10, 0, b"12345678"), "RFC 9113 §4.1"),
            (fr(1, 4, 1, &[0x82, 0x20]), "RFC 9113 §4.3"),
            (fr(0, 0, 1 | 0x8000_0000, b""), "RFC 9113 §4.1"),
            (fr(0, 0, 1, &[0; 16_385]), "RFC 9113 §4.2"),
        ];
        let _ = &mut enc;
        for (bytes, rule) in cases {
            let got = rules(false, &bytes);
            assert!(
                got.first().is_some_and(|r| r.contains(&rule)),
                "{rule}: {got:?} for {:x?}",
                &bytes[..bytes.len().min(20)]
            );
        }
    }

    #[test]
    fn rejects_field_rules_of_requests_responses_and_trailers() {
        type Case<'a> = (bool, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (
                true,
                &[(":method", "GET"), ("accept", "*/*"), (":scheme", "http"), (":path", "/")],
                "RFC 9113 §8.3",
            ),
            (
                true,
                &[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":status", "200")],
                "RFC 9113 §8.3",
            ),
            (
                true,
                &[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":x", "1")],
                "RFC 9113 §8.3",
            ),
            (true, &[(":method", "GET"), (":scheme", "http")], "RFC 9113 §8.3.1"),
            (
                true,
                &[(":method", "GET"), (":method", "GET"), (":scheme", "http"), (":path", "/")],
                "RFC 9113 §8.3.1",
            ),
            (true, &[(":method", "CONNECT"), (":path", "/")], "RFC 9113 §8.5"),
            (false, &[("content-type", "text/plain")], "RFC 9113 §8.3.2"),
            (false, &[(":status", "200"), (":path", "/")], "RFC 9113 §8.3"),
            (false, &[(":status", "200"), ("Content-Type", "x")], "RFC 9113 §8.2.1"),
            (false, &[(":status", "200"), ("connection", "close")], "RFC 9113 §8.2.2"),
            (false, &[(":status", "200"), ("transfer-encoding", "chunked")], "RFC 9113 §8.2.2"),
            (
                true,
                &[(":method", "GET"), (":scheme", "http"), (":path", "/"), ("te", "gzip")],
                "RFC 9113 §8.2.2",
            ),
            (false, &[(":status", "200"), ("x", "a\nb")], "RFC 9113 §8.2.1"),
        ];
        for (client, fields, rule) in cases {
            let mut b = if *client { client_opening() } else { Vec::new() };
            b.extend(fr(1, 5, 1, &hpack(&mut fluke_hpack::Encoder::new(), fields)));
            let got = rules(*client, &b);
            assert!(got.last().unwrap().contains(rule), "{rule} for {fields:?}: {got:?}");
        }
        let ok: &[(&str, &str)] = &[(":method", "GET"), (":scheme", "https"), (":path", "/"), ("te", "trailers")];
        let mut b = client_opening();
        b.extend(fr(1, 5, 1, &hpack(&mut fluke_hpack::Encoder::new(), ok)));
        assert_eq!(rules(true, &b).last().unwrap(), &Vec::<&str>::new());
        let connect: &[(&str, &str)] = &[(":method", "CONNECT"), (":authority", "a.test:443")];
        let mut b = client_opening();
        b.extend(fr(1, 4, 1, &hpack(&mut fluke_hpack::Encoder::new(), connect)));
        assert_eq!(rules(true, &b).last().unwrap(), &Vec::<&str>::new());
    }

    #[test]
    fn parses_interim_responses_and_trailers() {
        let mut enc = fluke_hpack::Encoder::new();
        let mut b = Vec::new();
        b.extend(fr(1, 4, 1, &hpack(&mut enc, &[(":status", "103"), ("link", "</a>")])));
        b.extend(fr(1, 4, 1, &hpack(&mut enc, &[(":status", "200")])));
        b.extend(fr(0, 0, 1, b"body"));
        b.extend(fr(1, 5, 1, &hpack(&mut enc, &[("grpc-status", "0")])));
        b.extend(fr(1, 5, 3, &hpack(&mut enc, &[(":status", "200")])));
        b.extend(fr(1, 5, 3, &hpack(&mut enc, &[(":status", "200")])));
        let got = rules(false, &b);
        assert!(got[..5].iter().all(Vec::is_empty), "{got:?}");
        assert_eq!(got[5], ["RFC 9113 §8.1"], "pseudo-headers in trailers");
    }

    #[test]
    fn rejects_frames_inside_an_open_header_block_and_loses_the_table() {
        let mut enc = fluke_hpack::Encoder::new();
        let block = hpack(&mut enc, GET);
        let mut b = client_opening();
        b.extend(fr(1, 0, 1, &block[..3]));
        b.extend(fr(6, 0, 0, b"12345678"));
        b.extend(fr(1, 5, 3, &hpack(&mut enc, GET)));
        let (ms, _) = frames(true, &b);
        assert_eq!(ms[3].findings[0].rule, "RFC 9113 §6.10");
        assert!(ms[4].summary.contains("dynamic table was lost"), "{}", ms[4].summary);
        assert!(ms[4].findings.is_empty());
    }

    #[test]
    fn parses_larger_frames_once_the_receiver_allowed_them() {
        let big = fr(0, 0, 1, &vec![b'x'; 20_000]);
        let mut c = Http2Codec::new(false);
        let Ok(Frame::Message(m, _)) = c.decode(&big, false) else {
            panic!()
        };
        assert_eq!(m.findings[0].rule, "RFC 9113 §4.2");
        let mut c = Http2Codec::new(false);
        let mut peer = PREFACE.to_vec();
        peer.extend(fr(4, 0, 0, &[0, 5, 0, 0, 0x80, 0]));
        c.peer_sent(&peer[..30]);
        c.peer_sent(&peer[30..]);
        let Ok(Frame::Message(m, used)) = c.decode(&big, false) else {
            panic!()
        };
        assert!(m.findings.is_empty(), "{:?}", m.findings);
        assert_eq!(used, big.len());
        let huge = [0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1];
        assert!(Http2Codec::new(false).decode(&huge, false).is_err(), "not buffered");
    }

    /// A valid client stream of many frames, for the split test.
    fn conversation() -> Vec<u8> {
        let mut enc = fluke_hpack::Encoder::new();
        let mut b = client_opening();
        b.extend(fr(4, 1, 0, b""));
        let block = hpack(&mut enc, &[GET, &[("user-agent", "test/1")]].concat());
        b.extend(fr(1, 1, 1, &block[..7]));
        b.extend(fr(9, 4, 1, &block[7..]));
        b.extend(fr(8, 0, 0, &65535u32.to_be_bytes()));
        b.extend(fr(
            1,
            4,
            3,
            &hpack(&mut enc, &[(":method", "POST"), (":scheme", "http"), (":path", "/up")]),
        ));
        b.extend(fr(0, 9, 3, b"\x01data\x00"));
        b.extend(fr(6, 0, 0, b"abcdefgh"));
        b
    }

    #[test]
    fn round_trip_split_at_every_byte_gives_the_same_messages() {
        let b = conversation();
        let whole = lines(true, &b);
        assert_eq!(whole.len(), 9);
        for cut in 0..=b.len() {
            let mut f = Framer::new(Box::new(Http2Codec::new(true)));
            let mut got = Vec::new();
            for part in [&b[..cut], &b[cut..]] {
                f.push(part);
                while let Some(m) = f.next(false).unwrap() {
                    got.push(m.summary);
                }
            }
            assert_eq!(got, whole, "cut at {cut}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600), client: bool, preface: bool) {
            let mut b = if preface { PREFACE.to_vec() } else { Vec::new() };
            b.extend(bytes);
            let _ = frames(client, &b);
        }

        #[test]
        fn never_panics_on_random_frames(
            fs in proptest::collection::vec((0u8..12, any::<u8>(), 0u32..6, proptest::collection::vec(any::<u8>(), 0..40)), 0..30),
            peer in proptest::collection::vec(any::<u8>(), 0..80),
            client: bool,
        ) {
            let mut b = if client { PREFACE.to_vec() } else { Vec::new() };
            for (kind, flag_bits, stream, payload) in &fs {
                b.extend(fr(*kind, *flag_bits, *stream, payload));
            }
            let mut c = Http2Codec::new(client);
            c.peer_sent(&peer);
            let mut f = Framer::new(Box::new(c));
            f.push(&b);
            while let Ok(Some(_)) = f.next(true) {}
        }
    }
}
