//! RFC 6455 frames (§5.2), sans-IO: one message per frame, its payload unmasked. What one frame
//! shows is a finding: a client's frame that is not masked or a server's that is (§5.1), a length
//! not in its shortest form (§5.2), a control frame over 125 bytes or fragmented (§5.5), a close
//! body of one byte or with a code no endpoint may send (§5.5.1, §7.4), a text message that is
//! not UTF-8 (§5.6, §8.1), a continuation with no message begun or a new message inside one
//! (§5.4). RSV bits and reserved opcodes are SHOULD-level notes: an extension negotiated in the
//! handshake, which the codec does not see, may give them a meaning (RFC 7692 sets RSV1).

use crate::proto::{escape_bytes, Codec, CodecError, Direction, Finding, Frame, Level, Message};

/// A frame whose payload is longer than this ends the framing (a capture of something else).
pub const MAX_FRAME: u64 = 16 << 20;
/// The most of a fragmented text message kept to check its UTF-8 at its end.
const MAX_KEPT_TEXT: usize = 1 << 20;

/// The opcodes of RFC 6455 §5.2.
pub const CONTINUATION: u8 = 0x0;
/// A text frame.
pub const TEXT: u8 = 0x1;
/// A binary frame.
pub const BINARY: u8 = 0x2;
/// A close frame.
pub const CLOSE: u8 = 0x8;
/// A ping.
pub const PING: u8 = 0x9;
/// A pong.
pub const PONG: u8 = 0xA;

/// One frame as it came, its payload unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsFrame {
    /// The FIN bit: the last frame of its message.
    pub fin: bool,
    /// RSV1, RSV2, RSV3 as the low three bits.
    pub rsv: u8,
    /// The opcode.
    pub opcode: u8,
    /// The masking key, when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The application data, unmasked.
    pub payload: Vec<u8>,
}

impl WsFrame {
    /// Whether it is a control frame (close, ping, pong and the reserved 0xB-0xF).
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }

    /// A close frame's status code and reason, when its body has them.
    pub fn close_code(&self) -> Option<(u16, &[u8])> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| (u16::from_be_bytes([self.payload[0], self.payload[1]]), &self.payload[2..]))
    }

    /// The frame's bytes, masked with `mask` when given (a client's frames are, §5.3).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![(u8::from(self.fin) << 7) | ((self.rsv & 7) << 4) | (self.opcode & 0xF)];
        let bit = if self.mask.is_some() { 0x80 } else { 0 };
        let len = self.payload.len();
        match len {
            0..=125 => out.push(bit | len as u8),
            126..=0xFFFF => {
                out.push(bit | 126);
                out.extend((len as u16).to_be_bytes());
            }
            _ => {
                out.push(bit | 127);
                out.extend((len as u64).to_be_bytes());
            }
        }
        match self.mask {
            Some(key) => {
                out.extend(key);
                out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend(&self.payload),
        }
        out
    }
}

/// The name of an opcode, as transcripts show it.
pub fn opcode_name(op: u8) -> String {
    match op {
        CONTINUATION => "continuation".into(),
        TEXT => "text".into(),
        BINARY => "binary".into(),
        CLOSE => "close".into(),
        PING => "ping".into(),
        PONG => "pong".into(),
        n => format!("opcode {n:#x}"),
    }
}

/// Frames one direction of a WebSocket connection.
pub struct WebSocketCodec {
    dir: Direction,
    /// The opcode of the fragmented message under way, if any.
    open: Option<u8>,
    /// Whether that message's frames are compressed (RSV1 on its first frame, RFC 7692): its
    /// text is then not UTF-8 as sent.
    open_compressed: bool,
    /// The fragmented text message so far, up to `MAX_KEPT_TEXT`.
    text: Vec<u8>,
}

impl WebSocketCodec {
    /// A codec for frames travelling `dir`.
    pub fn new(dir: Direction) -> WebSocketCodec {
        WebSocketCodec {
            dir,
            open: None,
            open_compressed: false,
            text: Vec::new(),
        }
    }

    fn judge(&mut self, f: &WsFrame, short_form: bool) -> Vec<Finding> {
        let mut out = Vec::new();
        let must = |rule: &'static str, text: String| Finding {
            level: Level::Must,
            rule,
            text,
        };
        match (self.dir, f.mask.is_some()) {
            (Direction::ClientToServer, false) => out.push(must(
                "RFC 6455 §5.1",
                "a client frame without a mask: \"a client MUST mask all frames that it sends to the server\"".into(),
            )),
            (Direction::ServerToClient, true) => out.push(must(
                "RFC 6455 §5.1",
                "a server frame with a mask: \"A server MUST NOT mask any frames that it sends to the client\"".into(),
            )),
            _ => {}
        }
        if !short_form {
            out.push(must(
                "RFC 6455 §5.2",
                format!(
                    "a payload length of {} in a longer form than it needs: \"the minimal number of bytes MUST be used to encode the length\"",
                    f.payload.len()
                ),
            ));
        }
        if f.rsv & 0b011 != 0 {
            out.push(Finding {
                level: Level::Should,
                rule: "RFC 6455 §5.2",
                text: "RSV2 or RSV3 set: they \"MUST be 0 unless an extension is negotiated that defines meanings\" for them".into(),
            });
        }
        if !matches!(f.opcode, CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG) {
            out.push(Finding {
                level: Level::Should,
                rule: "RFC 6455 §5.2",
                text: format!("{}: reserved, for an extension to define", opcode_name(f.opcode)),
            });
        }
        if f.is_control() {
            if f.payload.len() > 125 || !f.fin {
                out.push(must(
                    "RFC 6455 §5.5",
                    format!(
                        "a {} frame of {} bytes{}: \"All control frames MUST have a payload length of 125 bytes or less and MUST NOT be fragmented\"",
                        opcode_name(f.opcode),
                        f.payload.len(),
                        if f.fin { "" } else { " without FIN" }
                    ),
                ));
            }
            if f.opcode == CLOSE {
                out.extend(judge_close(f));
            }
            return out;
        }
        // Data frames: a message is a first frame (text or binary) and continuations up to FIN.
        match (f.opcode, self.open) {
            (CONTINUATION, None) => out.push(must(
                "RFC 6455 §5.4",
                "a continuation frame with no fragmented message begun".into(),
            )),
            (TEXT | BINARY, Some(open)) => out.push(must(
                "RFC 6455 §5.4",
                format!(
                    "a new {} message inside a fragmented {} message: \"the fragments of one message MUST NOT be interleaved between the fragments of another message\"",
                    opcode_name(f.opcode),
                    opcode_name(open)
                ),
            )),
            _ => {}
        }
        if f.opcode != CONTINUATION {
            self.open = Some(f.opcode);
            self.open_compressed = f.rsv & 0b100 != 0;
            self.text.clear();
        }
        if self.open == Some(TEXT) && !self.open_compressed && self.text.len() < MAX_KEPT_TEXT {
            self.text.extend_from_slice(&f.payload);
        }
        if f.fin {
            let complete = self.text.len() < MAX_KEPT_TEXT;
            if self.open == Some(TEXT) && !self.open_compressed && complete && std::str::from_utf8(&self.text).is_err() {
                out.push(must(
                    "RFC 6455 §5.6",
                    "a text message that is not UTF-8: \"The \"Payload data\" is text data encoded as UTF-8\" (§8.1: the receiver MUST fail the connection)".into(),
                ));
            }
            self.open = None;
            self.text.clear();
        }
        out
    }
}

/// What a close frame's body may hold (§5.5.1, §7.4.1).
fn judge_close(f: &WsFrame) -> Vec<Finding> {
    let must = |text: String| Finding {
        level: Level::Must,
        rule: "RFC 6455 §5.5.1",
        text,
    };
    if f.payload.len() == 1 {
        return vec![must(
            "a close body of one byte: \"If there is a body, the first two bytes of the body MUST be a 2-byte unsigned integer\" (the status code)".into(),
        )];
    }
    let Some((code, reason)) = f.close_code() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // §7.4.1: 1005, 1006 and 1015 "MUST NOT be set as a status code in a Close control frame";
    // below 1000 and 1004 are not used; 1016-2999 are reserved for the protocol (§7.4.2).
    let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !sendable {
        out.push(Finding {
            level: Level::Must,
            rule: "RFC 6455 §7.4",
            text: format!("close code {code}: not one an endpoint may send (1000-1003, 1007-1014, 3000-4999)"),
        });
    }
    if std::str::from_utf8(reason).is_err() {
        out.push(must("a close reason that is not UTF-8".into()));
    }
    out
}

impl Codec for WebSocketCodec {
    fn decode(&mut self, buf: &[u8], _eof: bool) -> Result<Frame, CodecError> {
        let Some((frame, used, short_form)) = parse(buf)? else {
            return Ok(Frame::Incomplete);
        };
        let findings = self.judge(&frame, short_form);
        Ok(Frame::Message(render(&frame, findings), used))
    }
}

/// Reads one frame from the front of `buf`: the frame, the bytes it used, and whether its length
/// was in its shortest form; None when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(WsFrame, usize, bool)>, CodecError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let masked = b1 & 0x80 != 0;
    let (len, mut at, short_form) = match b1 & 0x7F {
        126 => {
            let Some(b) = buf.get(2..4) else { return Ok(None) };
            let n = u64::from(u16::from_be_bytes([b[0], b[1]]));
            (n, 4, n > 125)
        }
        127 => {
            let Some(b) = buf.get(2..10) else { return Ok(None) };
            let n = u64::from_be_bytes(b.try_into().unwrap_or_default());
            if n >> 63 != 0 {
                return Err(CodecError {
                    offset: 2,
                    reason: "a 64-bit payload length with its most significant bit set (RFC 6455 §5.2: it MUST be 0)".into(),
                });
            }
            (n, 10, n > 0xFFFF)
        }
        n => (u64::from(n), 2, true),
    };
    if len > MAX_FRAME {
        return Err(CodecError {
            offset: 1,
            reason: format!("a frame of {len} bytes, over the {MAX_FRAME} this decoder reads"),
        });
    }
    let mask = match masked {
        true => {
            let Some(k) = buf.get(at..at + 4) else { return Ok(None) };
            at += 4;
            Some([k[0], k[1], k[2], k[3]])
        }
        false => None,
    };
    let end = at + len as usize;
    let Some(data) = buf.get(at..end) else { return Ok(None) };
    let payload = match mask {
        Some(key) => data.iter().enumerate().map(|(i, b)| b ^ key[i % 4]).collect(),
        None => data.to_vec(),
    };
    let frame = WsFrame {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 7,
        opcode: b0 & 0xF,
        mask,
        payload,
    };
    Ok(Some((frame, end, short_form)))
}

/// The message a frame is: its payload as text for data frames, its kind and body as the summary.
fn render(f: &WsFrame, findings: Vec<Finding>) -> Message {
    let mut flags = Vec::new();
    if !f.fin {
        flags.push("not final");
    }
    if f.rsv & 0b100 != 0 {
        flags.push("RSV1");
    }
    if f.rsv & 0b011 != 0 {
        flags.push("RSV2/3");
    }
    if f.mask.is_some() {
        flags.push("masked");
    }
    let flags = match flags.is_empty() {
        true => String::new(),
        false => format!(" ({})", flags.join(", ")),
    };
    let name = opcode_name(f.opcode);
    let body = match (f.opcode, f.close_code()) {
        (CLOSE, Some((code, []))) => format!(" {code}"),
        (CLOSE, Some((code, reason))) => format!(" {code} \"{}\"", escape_bytes(reason, 120)),
        (TEXT | CONTINUATION | PING | PONG | CLOSE, _) if !f.payload.is_empty() => {
            format!(" \"{}\"", escape_bytes(&f.payload, 200))
        }
        (BINARY, _) => format!(" {} bytes", f.payload.len()),
        _ if !f.payload.is_empty() => format!(" {} bytes", f.payload.len()),
        _ => String::new(),
    };
    let text = match f.opcode {
        TEXT | CONTINUATION => String::from_utf8_lossy(&f.payload).into_owned(),
        _ => name.clone(),
    };
    Message {
        text,
        summary: format!("{name}{body}{flags}"),
        findings,
        detail: Some(std::sync::Arc::new(f.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> WsFrame {
        WsFrame {
            fin,
            rsv: 0,
            opcode,
            mask,
            payload: payload.to_vec(),
        }
    }

    const KEY: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

    fn decode_all(dir: Direction, bytes: &[u8]) -> Vec<Message> {
        let mut codec = WebSocketCodec::new(dir);
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            match codec.decode(&bytes[at..], true).expect("decodes") {
                Frame::Message(m, used) => {
                    out.push(m);
                    at += used;
                }
                Frame::Incomplete => panic!("incomplete at {at}"),
            }
        }
        out
    }

    fn rules(m: &Message) -> Vec<(&'static str, Level)> {
        m.findings.iter().map(|f| (f.rule, f.level)).collect()
    }

    #[test]
    fn rfc_6455_section_5_7_examples_decode() {
        // §5.7: a single-frame unmasked text message, and the masked one.
        let unmasked = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let m = &decode_all(Direction::ServerToClient, &unmasked)[0];
        assert_eq!((m.text.as_str(), m.summary.as_str()), ("Hello", "text \"Hello\""));
        assert!(m.findings.is_empty(), "{:?}", m.findings);
        let masked = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let m = &decode_all(Direction::ClientToServer, &masked)[0];
        assert_eq!((m.text.as_str(), m.summary.as_str()), ("Hello", "text \"Hello\" (masked)"));
        assert!(m.findings.is_empty());
        // A fragmented unmasked text message, "Hel" then "lo".
        let ms = decode_all(Direction::ServerToClient, &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
        assert_eq!(ms[0].summary, "text \"Hel\" (not final)");
        assert_eq!(ms[1].summary, "continuation \"lo\"");
        assert!(ms.iter().all(|m| m.findings.is_empty()));
        // Unmasked ping and its masked pong; 256 bytes of binary in one unmasked frame.
        let ms = decode_all(Direction::ServerToClient, &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(ms[0].summary, "ping \"Hello\"");
        let ms = decode_all(
            Direction::ClientToServer,
            &[0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
        );
        assert_eq!(ms[0].summary, "pong \"Hello\" (masked)");
        let mut big = vec![0x82, 0x7E, 0x01, 0x00];
        big.extend([7u8; 256]);
        let ms = decode_all(Direction::ServerToClient, &big);
        assert_eq!((ms[0].summary.as_str(), ms[0].findings.len()), ("binary 256 bytes", 0));
    }

    #[test]
    fn a_frame_cut_anywhere_is_incomplete() {
        let frames = [
            frame(true, TEXT, KEY, b"hello"),
            frame(false, BINARY, KEY, &[9; 300]),
            frame(true, CONTINUATION, KEY, &[1; 70000]),
            frame(true, CLOSE, KEY, b"\x03\xe8bye"),
            frame(true, PING, None, b""),
        ];
        for f in &frames {
            let bytes = f.encode();
            // Every byte of the short frames; the 70,000-byte one at 200 places and its header.
            let step = if bytes.len() > 1000 { bytes.len() / 200 } else { 1 };
            for cut in 0..bytes.len().min(16) {
                assert!(parse(&bytes[..cut]).expect("a prefix is no error").is_none(), "cut {cut}");
            }
            for cut in (0..bytes.len()).step_by(step) {
                assert!(parse(&bytes[..cut]).expect("a prefix is no error").is_none(), "cut {cut}");
            }
            let (got, used, short) = parse(&bytes).expect("parses").expect("whole");
            assert_eq!((&got, used, short), (f, bytes.len(), true));
        }
    }

    #[test]
    fn masking_follows_the_direction() {
        let m = &decode_all(Direction::ClientToServer, &frame(true, TEXT, None, b"hi").encode())[0];
        assert_eq!(rules(m), [("RFC 6455 §5.1", Level::Must)]);
        let m = &decode_all(Direction::ServerToClient, &frame(true, TEXT, KEY, b"hi").encode())[0];
        assert_eq!(rules(m), [("RFC 6455 §5.1", Level::Must)]);
    }

    #[test]
    fn lengths_must_be_in_their_shortest_form() {
        // "hi" with a 16-bit length.
        let m = &decode_all(Direction::ServerToClient, &[0x81, 126, 0, 2, b'h', b'i'])[0];
        assert_eq!(rules(m), [("RFC 6455 §5.2", Level::Must)]);
        let err = parse(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1]).unwrap_err();
        assert!(err.reason.contains("most significant bit"), "{}", err.reason);
    }

    #[test]
    fn control_frames_are_short_and_whole() {
        let m = &decode_all(Direction::ServerToClient, &frame(true, PING, None, &[0; 126]).encode())[0];
        assert_eq!(rules(m), [("RFC 6455 §5.5", Level::Must)]);
        let m = &decode_all(Direction::ServerToClient, &frame(false, PONG, None, b"x").encode())[0];
        assert_eq!(rules(m), [("RFC 6455 §5.5", Level::Must)]);
    }

    #[test]
    fn close_bodies_carry_a_code_an_endpoint_may_send() {
        let ok = &decode_all(Direction::ServerToClient, &frame(true, CLOSE, None, b"\x03\xe8done").encode())[0];
        assert_eq!((ok.summary.as_str(), ok.findings.len()), ("close 1000 \"done\"", 0));
        let empty = &decode_all(Direction::ServerToClient, &frame(true, CLOSE, None, b"").encode())[0];
        assert_eq!((empty.summary.as_str(), empty.findings.len()), ("close", 0));
        let one = &decode_all(Direction::ServerToClient, &frame(true, CLOSE, None, b"\x03").encode())[0];
        assert_eq!(rules(one), [("RFC 6455 §5.5.1", Level::Must)]);
        for code in [1005u16, 1006, 1015, 999, 1004, 2000, 5000] {
            let body = code.to_be_bytes();
            let m = &decode_all(Direction::ServerToClient, &frame(true, CLOSE, None, &body).encode())[0];
            assert_eq!(rules(m), [("RFC 6455 §7.4", Level::Must)], "{code}");
        }
        let m = &decode_all(Direction::ServerToClient, &frame(true, CLOSE, None, b"\x03\xe8\xff").encode())[0];
        assert_eq!(rules(m), [("RFC 6455 §5.5.1", Level::Must)]);
    }

    #[test]
    fn text_messages_are_utf8_across_their_fragments() {
        // "é" split between two fragments is fine; a lone continuation byte is not.
        let mut ok = frame(false, TEXT, None, b"caf\xc3").encode();
        ok.extend(frame(true, CONTINUATION, None, b"\xa9").encode());
        assert!(decode_all(Direction::ServerToClient, &ok).iter().all(|m| m.findings.is_empty()));
        let bad = frame(true, TEXT, None, b"\xa9").encode();
        assert_eq!(
            rules(&decode_all(Direction::ServerToClient, &bad)[0]),
            [("RFC 6455 §5.6", Level::Must)]
        );
        // Compressed (RSV1, RFC 7692): not UTF-8 as sent, and no finding for it.
        let mut z = frame(true, TEXT, None, b"\xf2\x48\xcd");
        z.rsv = 0b100;
        let m = &decode_all(Direction::ServerToClient, &z.encode())[0];
        assert!(m.findings.is_empty(), "{:?}", m.findings);
        assert!(m.summary.contains("RSV1"), "{}", m.summary);
    }

    #[test]
    fn fragments_are_not_interleaved() {
        let lone = frame(true, CONTINUATION, None, b"x").encode();
        assert_eq!(
            rules(&decode_all(Direction::ServerToClient, &lone)[0]),
            [("RFC 6455 §5.4", Level::Must)]
        );
        let mut two = frame(false, BINARY, None, b"a").encode();
        two.extend(frame(true, PING, None, b"").encode()); // control frames may come in between
        two.extend(frame(true, TEXT, None, b"b").encode());
        let ms = decode_all(Direction::ServerToClient, &two);
        assert!(ms[1].findings.is_empty());
        assert_eq!(rules(&ms[2]), [("RFC 6455 §5.4", Level::Must)]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_overrun() {
        // Deterministic pseudo-random streams, each decoded to its end in both directions.
        let mut x: u32 = 0x2545_F491;
        for n in 0..2000 {
            let len = n % 300;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x >> 24) as u8
                })
                .collect();
            for dir in [Direction::ClientToServer, Direction::ServerToClient] {
                let mut codec = WebSocketCodec::new(dir);
                let mut at = 0;
                while at < bytes.len() {
                    match codec.decode(&bytes[at..], true) {
                        Ok(Frame::Message(_, used)) => {
                            assert!(used > 0 && at + used <= bytes.len());
                            at += used;
                        }
                        Ok(Frame::Incomplete) | Err(_) => break,
                    }
                }
            }
        }
    }

    #[test]
    fn reserved_bits_and_opcodes_are_notes_only() {
        let mut f = frame(true, 0x3, None, b"");
        f.rsv = 0b010;
        let m = &decode_all(Direction::ServerToClient, &f.encode())[0];
        assert_eq!(rules(m), [("RFC 6455 §5.2", Level::Should), ("RFC 6455 §5.2", Level::Should)]);
        assert_eq!(m.summary, "opcode 0x3 (RSV2/3)");
    }
}
