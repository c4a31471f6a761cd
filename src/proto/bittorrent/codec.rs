//! The BitTorrent peer wire protocol (BEP 3): each direction opens with the 68-byte handshake,
//! then length-prefixed messages, one message each: BEP 3's nine, the DHT's `port` (BEP 5), the
//! fast extension's five (BEP 6), the extension protocol's `extended` (BEP 10) and unknown ids.
//!
//! A direction that does not open with the handshake but looks encrypted (Message Stream
//! Encryption opens with 96 random bytes) is framed as opaque data from there on; one that looks
//! like anything else is a `CodecError` at the first byte that differs.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::bencode;
use super::metainfo::BLOCK;
use crate::proto::{Codec, CodecError, Finding, Frame, Level, Message};

/// The protocol string of the handshake.
pub const PSTR: &[u8] = b"BitTorrent protocol";

/// The handshake's fixed start: the protocol string's length (19) and the string.
pub const PREFACE: &[u8] = b"\x13BitTorrent protocol";

/// The handshake's length: the preface, 8 reserved bytes, the info-hash and the peer id.
pub const HANDSHAKE_LEN: usize = 68;

/// The longest message framed: a piece message of a 1 MiB block (its 13 bytes of header
/// included). BEP 3 blocks are 16 KiB; anything longer is kept out of memory, not framed.
pub const MAX_MESSAGE: usize = (1 << 20) + 13;

/// Message ids (BEP 3; `PORT` BEP 5; 13 to 17 BEP 6; `EXTENDED` BEP 10).
pub mod id {
    /// choke.
    pub const CHOKE: u8 = 0;
    /// unchoke.
    pub const UNCHOKE: u8 = 1;
    /// interested.
    pub const INTERESTED: u8 = 2;
    /// not interested.
    pub const NOT_INTERESTED: u8 = 3;
    /// have.
    pub const HAVE: u8 = 4;
    /// bitfield.
    pub const BITFIELD: u8 = 5;
    /// request.
    pub const REQUEST: u8 = 6;
    /// piece.
    pub const PIECE: u8 = 7;
    /// cancel.
    pub const CANCEL: u8 = 8;
    /// port (BEP 5).
    pub const PORT: u8 = 9;
    /// suggest piece (BEP 6).
    pub const SUGGEST: u8 = 13;
    /// have all (BEP 6).
    pub const HAVE_ALL: u8 = 14;
    /// have none (BEP 6).
    pub const HAVE_NONE: u8 = 15;
    /// reject request (BEP 6).
    pub const REJECT: u8 = 16;
    /// allowed fast (BEP 6).
    pub const ALLOWED_FAST: u8 = 17;
    /// extended (BEP 10).
    pub const EXTENDED: u8 = 20;
}

/// A block of a piece, as requests, cancels and rejects name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Block {
    /// The piece's index.
    pub index: u32,
    /// The block's offset in the piece.
    pub begin: u32,
    /// The block's length.
    pub length: u32,
}

/// One framed peer wire message, the `detail` of its `Message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMessage {
    /// The handshake: reserved bits, info-hash, peer id (the protocol string was checked).
    Handshake {
        /// The 8 reserved bytes (extension bits: BEP 10 `0x10` in byte 5, BEP 5 and 6 in byte 7).
        reserved: [u8; 8],
        /// The torrent's info-hash.
        info_hash: [u8; 20],
        /// The sender's peer id.
        peer_id: [u8; 20],
    },
    /// A length-0 message.
    KeepAlive,
    /// choke.
    Choke,
    /// unchoke.
    Unchoke,
    /// interested.
    Interested,
    /// not interested.
    NotInterested,
    /// have: a piece's index.
    Have(u32),
    /// bitfield: its bytes, high bit of the first byte for piece 0.
    Bitfield(Vec<u8>),
    /// request.
    Request(Block),
    /// piece: a block's data.
    Piece {
        /// The piece's index.
        index: u32,
        /// The block's offset in the piece.
        begin: u32,
        /// The block's bytes.
        data: Vec<u8>,
    },
    /// cancel.
    Cancel(Block),
    /// port (BEP 5): the sender's DHT port.
    Port(u16),
    /// suggest piece (BEP 6).
    Suggest(u32),
    /// have all (BEP 6).
    HaveAll,
    /// have none (BEP 6).
    HaveNone,
    /// reject request (BEP 6).
    Reject(Block),
    /// allowed fast (BEP 6).
    AllowedFast(u32),
    /// extended (BEP 10): the extended message id (0: the extension handshake) and the payload.
    Extended {
        /// The extended message id.
        id: u8,
        /// The payload after it.
        payload: Vec<u8>,
    },
    /// An id no specification here defines.
    Unknown {
        /// The id.
        id: u8,
        /// The payload.
        payload: Vec<u8>,
    },
    /// A known id whose payload has the wrong length (a finding says how).
    Malformed {
        /// The id.
        id: u8,
        /// The payload.
        payload: Vec<u8>,
    },
    /// Bytes of a direction that did not open with the handshake and look encrypted.
    Opaque(usize),
}

/// The name of a message id, as transcripts write it.
pub fn id_name(id: u8) -> &'static str {
    match id {
        id::CHOKE => "choke",
        id::UNCHOKE => "unchoke",
        id::INTERESTED => "interested",
        id::NOT_INTERESTED => "not interested",
        id::HAVE => "have",
        id::BITFIELD => "bitfield",
        id::REQUEST => "request",
        id::PIECE => "piece",
        id::CANCEL => "cancel",
        id::PORT => "port",
        id::SUGGEST => "suggest",
        id::HAVE_ALL => "have all",
        id::HAVE_NONE => "have none",
        id::REJECT => "reject",
        id::ALLOWED_FAST => "allowed fast",
        id::EXTENDED => "extended",
        _ => "unknown",
    }
}

impl PeerMessage {
    /// The message's kind, as transcripts write it ("not interested", "have all" ...).
    pub fn name(&self) -> &'static str {
        match self {
            PeerMessage::Handshake { .. } => "handshake",
            PeerMessage::KeepAlive => "keep-alive",
            PeerMessage::Opaque(_) => "encrypted or not BitTorrent",
            PeerMessage::Malformed { .. } => "malformed",
            m => id_name(m.id().unwrap_or(u8::MAX)),
        }
    }

    /// The message id, for a message that has one.
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            PeerMessage::Handshake { .. } | PeerMessage::KeepAlive | PeerMessage::Opaque(_) => return None,
            PeerMessage::Choke => id::CHOKE,
            PeerMessage::Unchoke => id::UNCHOKE,
            PeerMessage::Interested => id::INTERESTED,
            PeerMessage::NotInterested => id::NOT_INTERESTED,
            PeerMessage::Have(_) => id::HAVE,
            PeerMessage::Bitfield(_) => id::BITFIELD,
            PeerMessage::Request(_) => id::REQUEST,
            PeerMessage::Piece { .. } => id::PIECE,
            PeerMessage::Cancel(_) => id::CANCEL,
            PeerMessage::Port(_) => id::PORT,
            PeerMessage::Suggest(_) => id::SUGGEST,
            PeerMessage::HaveAll => id::HAVE_ALL,
            PeerMessage::HaveNone => id::HAVE_NONE,
            PeerMessage::Reject(_) => id::REJECT,
            PeerMessage::AllowedFast(_) => id::ALLOWED_FAST,
            PeerMessage::Extended { .. } => id::EXTENDED,
            PeerMessage::Unknown { id, .. } | PeerMessage::Malformed { id, .. } => *id,
        })
    }

    /// Whether the message says which pieces its sender has as a whole (bitfield, have all, have
    /// none): what only comes right after the handshake.
    fn announces(&self) -> bool {
        matches!(self, PeerMessage::Bitfield(_) | PeerMessage::HaveAll | PeerMessage::HaveNone)
    }

    /// Whether a message may come before the announcement without taking its place: keep-alives
    /// say nothing; the DHT port and the extension handshake are about the connection, not the
    /// pieces, and common clients send the extension handshake before the bitfield.
    fn before_announcement(&self) -> bool {
        matches!(self, PeerMessage::KeepAlive | PeerMessage::Port(_) | PeerMessage::Extended { .. })
    }
}

/// `name` with its indefinite article: "an unchoke", "a have".
pub fn a(name: &str) -> String {
    let vowel = name.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {name}", if vowel { "an" } else { "a" })
}

/// A peer id (or any 20 bytes) for transcripts: quoted, printable ASCII as it is and every other
/// byte as `\xHH`, so nothing is lost.
pub fn quote_id(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() + 2);
    s.push('"');
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

/// Bitfield bytes as bits, a byte a group; long ones cut, with how many bits are set.
fn bits_text(bits: &[u8]) -> String {
    const SHOWN: usize = 32;
    let groups: Vec<String> = bits.iter().take(SHOWN).map(|b| format!("{b:08b}")).collect();
    let mut s = groups.join(" ");
    if bits.len() > SHOWN {
        let set: u32 = bits.iter().map(|b| b.count_ones()).sum();
        s.push_str(&format!(" … ({set} of {} bits set)", bits.len() * 8));
    }
    s
}

/// The first bytes of a block's SHA-256, to tell blocks apart in a transcript.
fn short_hash(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    format!("{}…", bencode::hex(&d[..4]))
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The message as its transcript line (see the formats in the module's documentation).
pub fn render(m: &PeerMessage) -> String {
    match m {
        PeerMessage::Handshake {
            reserved,
            info_hash,
            peer_id,
        } => format!(
            "handshake info_hash {} peer_id {} reserved {}",
            bencode::hex(info_hash),
            quote_id(peer_id),
            bencode::hex(reserved)
        ),
        PeerMessage::KeepAlive
        | PeerMessage::Choke
        | PeerMessage::Unchoke
        | PeerMessage::Interested
        | PeerMessage::NotInterested
        | PeerMessage::HaveAll
        | PeerMessage::HaveNone => m.name().to_string(),
        PeerMessage::Have(i) | PeerMessage::Suggest(i) | PeerMessage::AllowedFast(i) => format!("{} {i}", m.name()),
        PeerMessage::Bitfield(b) => format!("bitfield {} {}", plural(b.len(), "byte"), bits_text(b)),
        PeerMessage::Request(b) | PeerMessage::Cancel(b) | PeerMessage::Reject(b) => {
            format!("{} {} begin {} len {}", m.name(), b.index, b.begin, b.length)
        }
        PeerMessage::Piece { index, begin, data } => {
            format!("piece {index} begin {begin} len {} (sha256 {})", data.len(), short_hash(data))
        }
        PeerMessage::Port(p) => format!("port {p}"),
        PeerMessage::Extended { id: 0, payload } => {
            let decoded = match bencode::decode(payload) {
                Ok((v, _)) => {
                    let mut r = v.render();
                    if r.chars().count() > 300 {
                        r = r.chars().take(300).collect::<String>() + "…";
                    }
                    r
                }
                Err(e) => format!("(not bencode: {e})"),
            };
            format!("extended 0 (handshake) {} {decoded}", plural(payload.len(), "byte"))
        }
        PeerMessage::Extended { id, payload } => format!("extended {id} {}", plural(payload.len(), "byte")),
        PeerMessage::Unknown { id, payload } => format!("message {id} (unknown) {}", plural(payload.len(), "byte")),
        PeerMessage::Malformed { id, payload } => {
            format!("{} (malformed) {}", id_name(*id), plural(payload.len(), "byte"))
        }
        PeerMessage::Opaque(n) => format!("encrypted or not BitTorrent: {}", plural(*n, "byte")),
    }
}

/// Where a direction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Messages,
    /// Not BitTorrent's framing (encrypted): every byte from here is opaque data.
    Opaque,
}

/// Frames one direction of a peer wire connection. Both directions are alike (each opens with
/// a handshake), so one codec serves either.
pub struct PeerCodec {
    state: State,
    /// The first message after the handshake that is neither a keep-alive, a DHT port nor an
    /// extended message, once one came: a bitfield after it is out of place.
    first: Option<&'static str>,
    /// The capture began after the connection did: what came first is unknown, and not judged.
    late: bool,
}

impl Default for PeerCodec {
    fn default() -> Self {
        PeerCodec::new()
    }
}

impl PeerCodec {
    /// A codec for one direction, from its handshake on.
    pub fn new() -> PeerCodec {
        PeerCodec {
            state: State::Handshake,
            first: None,
            late: false,
        }
    }

    fn handshake(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let n = buf.len().min(PREFACE.len());
        if let Some(at) = (0..n).find(|&i| buf[i] != PREFACE[i]) {
            return match not_handshake(buf, at, eof) {
                NotHandshake::Encrypted => {
                    self.state = State::Opaque;
                    Ok(opaque(buf.len()))
                }
                NotHandshake::Wait => Ok(Frame::Incomplete),
                NotHandshake::Error(reason) => Err(CodecError { offset: at, reason }),
            };
        }
        if buf.len() < HANDSHAKE_LEN {
            if eof && !buf.is_empty() {
                return Err(CodecError {
                    offset: buf.len(),
                    reason: format!(
                        "the connection closed after {} of the handshake's {HANDSHAKE_LEN} bytes{}",
                        buf.len(),
                        if buf.len() == 48 { " (no peer id after the info-hash)" } else { "" }
                    ),
                });
            }
            return Ok(Frame::Incomplete);
        }
        let mut reserved = [0; 8];
        let mut info_hash = [0; 20];
        let mut peer_id = [0; 20];
        reserved.copy_from_slice(&buf[20..28]);
        info_hash.copy_from_slice(&buf[28..48]);
        peer_id.copy_from_slice(&buf[48..68]);
        self.state = State::Messages;
        let m = PeerMessage::Handshake {
            reserved,
            info_hash,
            peer_id,
        };
        Ok(Frame::Message(message(m, Vec::new()), HANDSHAKE_LEN))
    }

    fn message(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let Some(prefix) = buf.get(..4) else {
            if eof && !buf.is_empty() {
                return Err(CodecError {
                    offset: buf.len(),
                    reason: format!("the connection closed after {} of a length prefix's 4 bytes", buf.len()),
                });
            }
            return Ok(Frame::Incomplete);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > MAX_MESSAGE {
            return Err(CodecError {
                offset: 0,
                reason: format!(
                    "a message of {len} bytes, over the {MAX_MESSAGE} a 1 MiB block needs (BEP 3 blocks are 16 KiB): not framed further"
                ),
            });
        }
        if buf.len() < 4 + len {
            if eof {
                let what = buf
                    .get(4)
                    .map_or("a message".to_string(), |&i| format!("{} message", a(id_name(i))));
                return Err(CodecError {
                    offset: buf.len(),
                    reason: format!("the connection closed after {} of the {len} bytes of {what}", buf.len() - 4),
                });
            }
            return Ok(Frame::Incomplete);
        }
        let mut findings = Vec::new();
        let m = parse(&buf[4..4 + len], &mut findings);
        if m.announces() && !self.late {
            if let Some(first) = self.first {
                out_of_place(&m, first, &mut findings);
            }
        }
        if self.first.is_none() && !m.before_announcement() {
            self.first = Some(m.name());
        }
        Ok(Frame::Message(message(m, findings), 4 + len))
    }
}

/// What bytes that are not the handshake's are.
enum NotHandshake {
    /// Random-looking: an encrypted stream (Message Stream Encryption), framed as opaque data.
    Encrypted,
    /// Too few bytes to tell.
    Wait,
    /// Something else: why, for the error.
    Error(String),
}

/// Tells an encrypted stream from a peer that breaks the handshake, by the byte that differs:
/// text (another protocol, or a wrong protocol string) and a bare length prefix (a peer that
/// skipped the handshake) are errors; a binary byte where the length 19 or the string's first
/// letter should be is taken for encryption, whose first 96 bytes are random.
fn not_handshake(buf: &[u8], at: usize, eof: bool) -> NotHandshake {
    let b = buf[at];
    let text = b.is_ascii_graphic() || b.is_ascii_whitespace();
    if at == 0 && b == 0 {
        if buf.len() < 3 && !eof {
            return NotHandshake::Wait;
        }
        if buf.len() >= 3 && buf[..3] == [0, 0, 0] {
            return NotHandshake::Error(
                "no handshake: these bytes start like a length-prefixed message, and a connection opens with the handshake, character nineteen then \"BitTorrent protocol\" (BEP 3)".into(),
            );
        }
    }
    if at <= 1 && !text {
        return NotHandshake::Encrypted;
    }
    let what = if at == 0 {
        format!("the protocol string's length byte is {b}, not 19")
    } else {
        format!("byte {at} is {}, not '{}'", printable(b), PREFACE[at] as char)
    };
    NotHandshake::Error(format!(
        "not a BitTorrent handshake: {what}; the handshake starts with character nineteen followed by the string \"BitTorrent protocol\" (BEP 3), and this is \"{}\"",
        crate::proto::escape_bytes(&buf[..buf.len().min(24)], 40)
    ))
}

fn printable(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("'{}'", b as char)
    } else {
        format!("0x{b:02x}")
    }
}

fn opaque(n: usize) -> Frame {
    Frame::Message(message(PeerMessage::Opaque(n), Vec::new()), n)
}

fn message(m: PeerMessage, findings: Vec<Finding>) -> Message {
    let text = render(&m);
    Message {
        summary: text.clone(),
        text,
        findings,
        detail: Some(Arc::new(m)),
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

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn block(p: &[u8]) -> Block {
    Block {
        index: be32(&p[0..4]),
        begin: be32(&p[4..8]),
        length: be32(&p[8..12]),
    }
}

/// Decodes one message's bytes after its length prefix.
fn parse(body: &[u8], out: &mut Vec<Finding>) -> PeerMessage {
    let Some((&mid, p)) = body.split_first() else {
        return PeerMessage::KeepAlive;
    };
    // The payload length each fixed-size message has, the rule and what it says of it.
    let fixed: Option<(usize, &'static str, &'static str)> = match mid {
        id::CHOKE | id::UNCHOKE | id::INTERESTED | id::NOT_INTERESTED => Some((
            0,
            "BEP 3",
            "'choke', 'unchoke', 'interested', and 'not interested' have no payload.",
        )),
        id::HAVE => Some((
            4,
            "BEP 3",
            "The 'have' message's payload is a single number, the index which that downloader just completed and checked the hash of.",
        )),
        id::REQUEST | id::CANCEL => Some((
            12,
            "BEP 3",
            "'request' messages contain an index, begin, and length. ... 'cancel' messages have the same payload as request messages.",
        )),
        id::PORT => Some((
            2,
            "BEP 5",
            "It begins with byte 0x09 and has a two byte payload containing the UDP port of the DHT node in network byte order.",
        )),
        id::SUGGEST | id::ALLOWED_FAST => Some((4, "BEP 6", "its payload is a piece index, four bytes")),
        id::HAVE_ALL | id::HAVE_NONE => Some((0, "BEP 6", "it has no payload")),
        id::REJECT => Some((12, "BEP 6", "its payload is a request's: index, begin and length")),
        _ => None,
    };
    if let Some((len, rule, says)) = fixed.filter(|(len, ..)| p.len() != *len) {
        let says = if says.ends_with('.') {
            format!("\"{says}\"")
        } else {
            says.to_string()
        };
        must(
            out,
            rule,
            format!(
                "{} message with {}, not {len}: {says}",
                a(id_name(mid)),
                plural(p.len(), "payload byte"),
            ),
        );
        return PeerMessage::Malformed {
            id: mid,
            payload: p.to_vec(),
        };
    }
    match mid {
        id::CHOKE => PeerMessage::Choke,
        id::UNCHOKE => PeerMessage::Unchoke,
        id::INTERESTED => PeerMessage::Interested,
        id::NOT_INTERESTED => PeerMessage::NotInterested,
        id::HAVE => PeerMessage::Have(be32(p)),
        id::BITFIELD => PeerMessage::Bitfield(p.to_vec()),
        id::REQUEST | id::CANCEL => {
            let b = block(p);
            if b.length > BLOCK {
                out.push(Finding {
                    level: Level::Should,
                    rule: "BEP 3",
                    text: format!(
                        "a {} for {} bytes: \"All current implementations use 2^14 (16 kiB), and close connections which request an amount greater than that.\"",
                        id_name(mid),
                        b.length
                    ),
                });
            }
            if mid == id::REQUEST {
                PeerMessage::Request(b)
            } else {
                PeerMessage::Cancel(b)
            }
        }
        id::PIECE if p.len() < 8 => {
            must(
                out,
                "BEP 3",
                format!(
                    "a piece message with {}, too short for its index and begin: \"'piece' messages contain an index, begin, and piece.\"",
                    plural(p.len(), "payload byte")
                ),
            );
            PeerMessage::Malformed {
                id: mid,
                payload: p.to_vec(),
            }
        }
        id::PIECE => PeerMessage::Piece {
            index: be32(&p[0..4]),
            begin: be32(&p[4..8]),
            data: p[8..].to_vec(),
        },
        id::PORT => PeerMessage::Port(u16::from_be_bytes([p[0], p[1]])),
        id::SUGGEST => PeerMessage::Suggest(be32(p)),
        id::HAVE_ALL => PeerMessage::HaveAll,
        id::HAVE_NONE => PeerMessage::HaveNone,
        id::REJECT => PeerMessage::Reject(block(p)),
        id::ALLOWED_FAST => PeerMessage::AllowedFast(be32(p)),
        id::EXTENDED => match p.split_first() {
            Some((&ext, payload)) => {
                if ext == 0 {
                    match bencode::decode(payload) {
                        Ok((v, _)) if v.dict().is_some() => {}
                        Ok(_) => must(
                            out,
                            "BEP 10",
                            "the extension handshake is bencode but not a dictionary: \"The payload of the handshake message is a bencoded dictionary.\"".into(),
                        ),
                        Err(e) => must(
                            out,
                            "BEP 10",
                            format!(
                                "the extension handshake is not bencode ({e}): \"The payload of the handshake message is a bencoded dictionary.\""
                            ),
                        ),
                    }
                }
                PeerMessage::Extended {
                    id: ext,
                    payload: payload.to_vec(),
                }
            }
            None => {
                must(out, "BEP 10", "an extended message without its extended message id byte".into());
                PeerMessage::Malformed {
                    id: mid,
                    payload: Vec::new(),
                }
            }
        },
        _ => PeerMessage::Unknown {
            id: mid,
            payload: p.to_vec(),
        },
    }
}

/// The findings for a bitfield, have all or have none after `first`, another message.
fn out_of_place(m: &PeerMessage, first: &str, out: &mut Vec<Finding>) {
    match m {
        PeerMessage::Bitfield(_) => must(
            out,
            "BEP 3",
            format!(
                "a bitfield after {} message: \"'bitfield' is only ever sent as the first message.\"",
                a(first)
            ),
        ),
        _ => must(
            out,
            "BEP 6",
            format!(
                "{} after {} message: it takes the bitfield's place, right after the handshake, and only there",
                a(m.name()),
                a(first)
            ),
        ),
    }
}

impl Codec for PeerCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        match self.state {
            State::Handshake if buf.is_empty() => Ok(Frame::Incomplete),
            State::Handshake => self.handshake(buf, eof),
            State::Messages => self.message(buf, eof),
            State::Opaque if buf.is_empty() => Ok(Frame::Incomplete),
            State::Opaque => Ok(opaque(buf.len())),
        }
    }

    fn joined_late(&mut self) {
        // The handshake, and maybe more, went before the capture began.
        self.state = State::Messages;
        self.late = true;
    }
}

#[cfg(test)]
mod tests {
    use super::super::steps::wire;
    use super::*;
    use crate::proto::Framer;
    use proptest::prelude::*;

    fn msg(id: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
        b.push(id);
        b.extend_from_slice(payload);
        b
    }

    fn handshake() -> PeerMessage {
        let mut info_hash = [0; 20];
        info_hash.copy_from_slice(&bencode::unhex("978d8983bd506915a578f583b1e9a3ff32c1c7b2").unwrap());
        PeerMessage::Handshake {
            reserved: [0, 0, 0, 0, 0, 0x10, 0, 0x05],
            info_hash,
            peer_id: *b"-WC0001-abcdefghijkl",
        }
    }

    /// Every message `bytes` frames into, then the error if framing stopped.
    fn frames(bytes: &[u8]) -> (Vec<Message>, Option<CodecError>) {
        let mut f = Framer::new(Box::new(PeerCodec::new()));
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

    fn detail(m: &Message) -> &PeerMessage {
        m.detail.as_ref().unwrap().downcast_ref::<PeerMessage>().unwrap()
    }

    /// The handshake, then `rest`.
    fn after_handshake(rest: &[u8]) -> Vec<u8> {
        [wire(&handshake()), rest.to_vec()].concat()
    }

    /// The one message `rest` frames into after a handshake: its line, its parsed form, its findings.
    fn one(rest: &[u8]) -> (String, PeerMessage, Vec<Finding>) {
        let (ms, e) = frames(&after_handshake(rest));
        assert!(e.is_none(), "{e:?}");
        assert_eq!(ms.len(), 2, "{:?}", ms.iter().map(|m| &m.summary).collect::<Vec<_>>());
        (ms[1].summary.clone(), detail(&ms[1]).clone(), ms[1].findings.clone())
    }

    fn rules(f: &[Finding]) -> Vec<(&'static str, Level)> {
        f.iter().map(|f| (f.rule, f.level)).collect()
    }

    /// One message of every type, with the line each renders as.
    fn every_message() -> Vec<(Vec<u8>, &'static str)> {
        let ext = b"d1:md11:ut_metadatai3ee1:v4:teste";
        vec![
            (0u32.to_be_bytes().to_vec(), "keep-alive"),
            (msg(0, b""), "choke"),
            (msg(1, b""), "unchoke"),
            (msg(2, b""), "interested"),
            (msg(3, b""), "not interested"),
            (msg(4, &3u32.to_be_bytes()), "have 3"),
            (
                msg(6, &[0, 0, 0, 3, 0, 0, 0x40, 0, 0, 0, 0x40, 0]),
                "request 3 begin 16384 len 16384",
            ),
            (
                msg(7, &[0, 0, 0, 3, 0, 0, 0x40, 0, b'a', b'b', b'c']),
                "piece 3 begin 16384 len 3 (sha256 ba7816bf…)",
            ),
            (
                msg(8, &[0, 0, 0, 3, 0, 0, 0x40, 0, 0, 0, 0x40, 0]),
                "cancel 3 begin 16384 len 16384",
            ),
            (msg(9, &6881u16.to_be_bytes()), "port 6881"),
            (msg(13, &2u32.to_be_bytes()), "suggest 2"),
            (msg(14, b""), "have all"),
            (msg(15, b""), "have none"),
            (msg(16, &[0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0x40, 0]), "reject 3 begin 0 len 16384"),
            (msg(17, &4u32.to_be_bytes()), "allowed fast 4"),
            (
                msg(20, &[&[0u8][..], ext].concat()),
                "extended 0 (handshake) 33 bytes {\"m\": {\"ut_metadata\": 3}, \"v\": \"test\"}",
            ),
            (msg(20, &[3, 1, 2]), "extended 3 2 bytes"),
            (msg(99, &[1, 2, 3, 4, 5]), "message 99 (unknown) 5 bytes"),
        ]
    }

    #[test]
    fn parses_the_handshake() {
        let (ms, e) = frames(&wire(&handshake()));
        assert!(e.is_none());
        assert_eq!(
            ms[0].summary,
            "handshake info_hash 978d8983bd506915a578f583b1e9a3ff32c1c7b2 peer_id \"-WC0001-abcdefghijkl\" reserved 0000000000100005"
        );
        assert_eq!(detail(&ms[0]), &handshake());
        assert!(ms[0].findings.is_empty());
    }

    #[test]
    fn parses_a_binary_peer_id_without_losing_bytes() {
        let mut h = wire(&handshake());
        h[56] = 0xfe;
        h[57] = b'"';
        let (ms, _) = frames(&h);
        assert!(
            ms[0].summary.contains("peer_id \"-WC0001-\\xfe\\\"cdefghijkl\""),
            "{}",
            ms[0].summary
        );
    }

    #[test]
    fn parses_every_message_type() {
        for (bytes, line) in every_message() {
            let (got, _, findings) = one(&bytes);
            assert_eq!(got, line);
            assert!(findings.is_empty(), "{line}: {findings:?}");
        }
    }

    #[test]
    fn parses_a_bitfield_first_as_bits() {
        let (line, m, findings) = one(&msg(5, &[0xf8]));
        assert_eq!(line, "bitfield 1 byte 11111000");
        assert_eq!(m, PeerMessage::Bitfield(vec![0xf8]));
        assert!(findings.is_empty());
        let (line, ..) = one(&msg(5, &[0xff, 0xc0]));
        assert_eq!(line, "bitfield 2 bytes 11111111 11000000");
        let (line, ..) = one(&msg(5, &[0xff; 40]));
        assert!(line.ends_with("11111111 … (320 of 320 bits set)"), "{line}");
    }

    #[test]
    fn parses_an_extended_message_allowed_before_the_bitfield() {
        let ext = msg(20, b"\x00de");
        let b = [ext, 0u32.to_be_bytes().to_vec(), msg(9, &[0x1a, 0xe1]), msg(5, &[0xf8])].concat();
        let (ms, _) = frames(&after_handshake(&b));
        assert_eq!(ms.len(), 5);
        assert!(
            ms.iter().all(|m| m.findings.is_empty()),
            "{:?}",
            ms.iter().map(|m| &m.findings).collect::<Vec<_>>()
        );
    }

    #[test]
    fn rejects_a_bitfield_after_another_message_with_a_must() {
        let b = [msg(4, &[0, 0, 0, 1]), msg(5, &[0xf8])].concat();
        let (ms, _) = frames(&after_handshake(&b));
        assert_eq!(rules(&ms[2].findings), [("BEP 3", Level::Must)]);
        assert!(
            ms[2].findings[0].text.contains("after a have message"),
            "{}",
            ms[2].findings[0].text
        );
        assert!(ms[2].findings[0]
            .text
            .contains("'bitfield' is only ever sent as the first message."));
        let b = [msg(5, &[0xf8]), msg(14, b"")].concat();
        let (ms, _) = frames(&after_handshake(&b));
        assert_eq!(rules(&ms[2].findings), [("BEP 6", Level::Must)]);
    }

    #[test]
    fn rejects_fixed_size_messages_of_the_wrong_length() {
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (msg(0, b"x"), "BEP 3", "choke (malformed) 1 byte"),
            (msg(2, b"xy"), "BEP 3", "interested (malformed) 2 bytes"),
            (msg(4, &[0, 0, 1]), "BEP 3", "have (malformed) 3 bytes"),
            (msg(6, &[0; 11]), "BEP 3", "request (malformed) 11 bytes"),
            (msg(8, &[0; 13]), "BEP 3", "cancel (malformed) 13 bytes"),
            (msg(7, &[0; 7]), "BEP 3", "piece (malformed) 7 bytes"),
            (msg(9, &[0; 3]), "BEP 5", "port (malformed) 3 bytes"),
            (msg(13, &[0; 2]), "BEP 6", "suggest (malformed) 2 bytes"),
            (msg(14, &[0]), "BEP 6", "have all (malformed) 1 byte"),
            (msg(16, &[0; 4]), "BEP 6", "reject (malformed) 4 bytes"),
            (msg(20, b""), "BEP 10", "extended (malformed) 0 bytes"),
            (msg(20, b"\x00i1e"), "BEP 10", "extended 0 (handshake) 3 bytes 1"),
            (
                msg(20, b"\x00d1:"),
                "BEP 10",
                "extended 0 (handshake) 3 bytes (not bencode: bencode cut short)",
            ),
        ];
        for (bytes, rule, line) in cases {
            let (got, _, findings) = one(&bytes);
            assert_eq!(got, line);
            assert_eq!(rules(&findings), [(rule, Level::Must)], "{line}");
        }
        let (_, m, findings) = one(&msg(4, &[0, 0, 1]));
        assert!(matches!(m, PeerMessage::Malformed { id: 4, .. }));
        assert!(
            findings[0].text.contains("a have message with 3 payload bytes, not 4"),
            "{}",
            findings[0].text
        );
    }

    #[test]
    fn rejects_requests_over_16_kib_with_a_should() {
        for id in [6, 8] {
            let (_, _, findings) = one(&msg(id, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0]));
            assert_eq!(rules(&findings), [("BEP 3", Level::Should)]);
            assert!(findings[0].text.contains("for 32768 bytes"), "{}", findings[0].text);
            assert!(findings[0].text.contains("All current implementations use 2^14 (16 kiB)"));
        }
        let (_, _, findings) = one(&msg(6, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0]));
        assert!(findings.is_empty());
    }

    #[test]
    fn rejects_a_message_over_the_limit_without_buffering_it() {
        let huge = ((MAX_MESSAGE + 1) as u32).to_be_bytes();
        let mut c = PeerCodec::new();
        assert!(matches!(c.decode(&wire(&handshake()), false), Ok(Frame::Message(_, 68))));
        let e = c.decode(&huge, false).unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.reason.contains("not framed further"), "{e}");
        let limit = (MAX_MESSAGE as u32).to_be_bytes();
        assert!(matches!(c.decode(&limit, false), Ok(Frame::Incomplete)));
    }

    #[test]
    fn rejects_a_wrong_protocol_string_at_its_offset() {
        let mut h = wire(&handshake());
        h[12] = b'X';
        let (ms, e) = frames(&h);
        assert!(ms.is_empty());
        let e = e.unwrap();
        assert_eq!(e.offset, 12);
        assert!(e.reason.contains("byte 12 is 'X', not 'p'"), "{e}");
        let (_, e) = frames(b"GET / HTTP/1.1\r\n\r\n");
        let e = e.unwrap();
        assert_eq!(e.offset, 0);
        assert!(e.reason.contains("length byte is 71, not 19"), "{e}");
        let (_, e) = frames(&msg(2, b""));
        assert!(e.unwrap().reason.contains("length-prefixed message"));
    }

    #[test]
    fn parses_an_encrypted_stream_as_opaque_data() {
        let random: Vec<u8> = (0..96u32).map(|i| (i * 151 + 7) as u8 | 0x80).collect();
        let mut c = PeerCodec::new();
        let Ok(Frame::Message(m, used)) = c.decode(&random, false) else {
            panic!()
        };
        assert_eq!((m.summary.as_str(), used), ("encrypted or not BitTorrent: 96 bytes", 96));
        // What follows is opaque too, even a valid handshake: one message per chunk given.
        let Ok(Frame::Message(m, used)) = c.decode(&wire(&handshake()), false) else {
            panic!()
        };
        assert_eq!((m.summary.as_str(), used), ("encrypted or not BitTorrent: 68 bytes", 68));
        assert!(matches!(c.decode(b"", true), Ok(Frame::Incomplete)));
        // A first byte of 19 followed by a binary one is taken for encryption as well.
        let (ms, e) = frames(&[19, 0xc3, 0x01]);
        assert!(e.is_none());
        assert_eq!(detail(&ms[0]), &PeerMessage::Opaque(3));
    }

    #[test]
    fn incomplete_handshakes_and_messages_wait_then_fail_at_the_close() {
        let h = wire(&handshake());
        for cut in [1, 10, 20, 47, 48, 67] {
            let mut c = PeerCodec::new();
            assert!(matches!(c.decode(&h[..cut], false), Ok(Frame::Incomplete)), "{cut}");
            let e = c.decode(&h[..cut], true).unwrap_err();
            assert_eq!(e.offset, cut);
        }
        assert!(PeerCodec::new().decode(&h[..48], true).unwrap_err().reason.contains("no peer id"));
        let mut c = PeerCodec::new();
        c.decode(&h, false).unwrap();
        let have = msg(4, &[0, 0, 0, 1]);
        for cut in 0..have.len() {
            assert!(matches!(c.decode(&have[..cut], false), Ok(Frame::Incomplete)), "{cut}");
        }
        assert!(c
            .decode(&have[..6], true)
            .unwrap_err()
            .reason
            .contains("2 of the 5 bytes of a have message"));
        assert!(matches!(c.decode(b"", true), Ok(Frame::Incomplete)));
        assert!(matches!(PeerCodec::new().decode(&[0], false), Ok(Frame::Incomplete)));
    }

    #[test]
    fn incomplete_at_every_byte_boundary_of_every_message_then_the_same_message() {
        let mut all = every_message();
        all.push((msg(5, &[0xf8]), "bitfield 1 byte 11111000"));
        all.push((msg(4, &[0, 1]), "have (malformed) 2 bytes"));
        for (bytes, line) in all {
            let whole = after_handshake(&bytes);
            for cut in 0..whole.len() {
                let mut f = Framer::new(Box::new(PeerCodec::new()));
                let mut got = Vec::new();
                f.push(&whole[..cut]);
                while let Some(m) = f.next(false).unwrap() {
                    got.push(m.summary);
                }
                assert_eq!(got.len(), usize::from(cut >= HANDSHAKE_LEN), "{line} cut at {cut}: {got:?}");
                f.push(&whole[cut..]);
                while let Some(m) = f.next(false).unwrap() {
                    got.push(m.summary);
                }
                assert_eq!(got.last().map(String::as_str), Some(line), "cut at {cut}");
                assert_eq!(got.len(), 2, "{line} cut at {cut}");
            }
        }
    }

    #[test]
    fn round_trip_every_message_through_the_steps_encoder() {
        let b = Block {
            index: 4,
            begin: 16384,
            length: 16384,
        };
        let all = vec![
            handshake(),
            PeerMessage::KeepAlive,
            PeerMessage::Choke,
            PeerMessage::Unchoke,
            PeerMessage::Interested,
            PeerMessage::NotInterested,
            PeerMessage::Have(7),
            PeerMessage::Bitfield(vec![0xff, 0x80]),
            PeerMessage::Request(b),
            PeerMessage::Piece {
                index: 4,
                begin: 16384,
                data: (0..=255).collect(),
            },
            PeerMessage::Cancel(b),
            PeerMessage::Port(6881),
            PeerMessage::Suggest(1),
            PeerMessage::HaveAll,
            PeerMessage::HaveNone,
            PeerMessage::Reject(b),
            PeerMessage::AllowedFast(2),
            PeerMessage::Extended {
                id: 0,
                payload: b"d1:v1:xe".to_vec(),
            },
            PeerMessage::Extended {
                id: 2,
                payload: vec![1, 2],
            },
            PeerMessage::Unknown {
                id: 99,
                payload: vec![0, 1],
            },
        ];
        let bytes: Vec<u8> = all.iter().flat_map(wire).collect();
        let (ms, e) = frames(&bytes);
        assert!(e.is_none(), "{e:?}");
        let got: Vec<PeerMessage> = ms.iter().map(|m| detail(m).clone()).collect();
        assert_eq!(got, all);
        // The bitfield came after other messages, the only finding.
        let findings: Vec<_> = ms.iter().flat_map(|m| rules(&m.findings)).collect();
        assert_eq!(findings, [("BEP 3", Level::Must), ("BEP 6", Level::Must), ("BEP 6", Level::Must)]);
    }

    #[test]
    fn round_trip_after_joining_late_frames_messages_without_a_handshake() {
        let mut c = PeerCodec::new();
        c.joined_late();
        let b = wire(&PeerMessage::Have(2));
        let Ok(Frame::Message(m, used)) = c.decode(&b, false) else {
            panic!()
        };
        assert_eq!((m.summary.as_str(), used), ("have 2", 9));
    }

    proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400), handshake_first: bool) {
            let b = if handshake_first { after_handshake(&bytes) } else { bytes };
            let _ = frames(&b);
        }

        #[test]
        fn never_panics_on_random_messages(ms in proptest::collection::vec((0u8..24, proptest::collection::vec(any::<u8>(), 0..20)), 0..20)) {
            let b: Vec<u8> = ms.iter().flat_map(|(id, p)| msg(*id, p)).collect();
            let (out, e) = frames(&after_handshake(&b));
            prop_assert!(e.is_none());
            prop_assert_eq!(out.len(), ms.len() + 1);
        }
    }
}
