//! The BitTorrent peer wire vocabulary: messages built from mappings, and expectations over one
//! message each. Torrents and the files they describe are read when the suite loads.
//!
//! ```yaml
//! - send: { handshake: { torrent: ../fixtures/bittorrent/sample.torrent, peer_id: "-WC0001-000000000001", reserved: "0000000000000000" } }
//! - send: { handshake: { info_hash: "978d8983bd506915a578f583b1e9a3ff32c1c7b2" } }
//!   # peer_id: 20 bytes of text or 40 hex digits (default "-WC0001-000000000001"); reserved: 16 hex digits (default zeros)
//! - send: { message: interested }          # keep-alive | choke | unchoke | interested | not_interested | have_all | have_none
//! - send: { have: 3 }
//! - send: { bitfield: "11110" }            # bits as written, padded with 0 to whole bytes
//! - send: { bitfield: { hex: "f8" } }      # the bytes as they are
//! - send: { request: { index: 0, begin: 0, length: 16384 } }
//! - send: { cancel: { index: 0, begin: 0, length: 16384 } }
//! - send: { piece: { index: 0, begin: 0, length: 16384, torrent: ..., file: ../fixtures/bittorrent/sample.bin } }
//!   # the block's bytes from the file; a multi-file torrent lists its files in order: file: [a.txt, sub/b.bin]
//! - send: { port: 6881 }
//! - send: { raw_message: { id: 99, payload: "0001" } }   # any id, the payload in hex
//!
//! - expect: { handshake: { torrent: ... } }              # or { info_hash: <40 hex> }
//!   capture: { their_id: peer_id }                       # a handshake field (peer_id, info_hash, reserved); { peer_id: their_id } reads the same
//! - expect: { pieces: all, torrent: ... }                # a bitfield with every piece (or have all)
//! - expect: { bitfield: { torrent: ... } }               # a bitfield next: ceil(n/8) bytes, spare bits zero
//!   # (a peer that announces its pieces by have, have all or have none instead passes: no bitfield to judge)
//! - expect: { message: unchoke }                         # any kind by name: choke, have, request, extended ...
//! - expect: { have: 3 }
//! - expect: { piece: { index: 0, begin: 0, length: 16384, torrent: ..., file: ... } }   # the exact bytes
//! - expect: { dropped: true }                          # the connection closes, nothing sent first (BEP 3: "sever")
//! - expect: { no_answer: 2s }                          # no handshake or message within 2 s: closed, silent, or encrypted bytes
//! - expect: { no_piece: 1s }                           # no piece within 1 s (a refused request; closing refuses it too)
//! - expect: { request: { index: 9 } }, { cancel: {} }  # what a client sent (for saw: over a swarm actor)
//! - expect: { piece: { any_of: [{ index: 0, begin: 0, length: 16384 }, ...], torrent: ..., file: ... } }
//! ```
//!
//! What a peer may send at any time is read past unless the step asks for it: keep-alive, have,
//! port, extended, suggest, have all, have none, reject, allowed fast, interested, not
//! interested and unchoke; `message`, `have` and `piece` pass a bitfield too. A piece
//! expectation does not pass a choke (the requests it waits on are dropped: it fails saying so)
//! nor a reject of a block it waits for. `pieces: all` judges the first message that says what
//! the peer has: a peer that announces its pieces by have messages alone is read by
//! `expect: { have: N }` steps, one message each.

use std::sync::Arc;

use regex::Regex;

use super::bencode;
use super::codec::{a, Block, PeerMessage, PREFACE};
use super::metainfo::Metainfo;
use crate::proto::steps::{apply_captures, mismatch};
use crate::proto::{Message, Mismatch, RenderCx, Steps, StructuredExpect, StructuredSend};
use crate::syntax::{Data, LoadCx, Loc, Node, Template};

/// The structured `send:`/`expect:` keys of the peer wire.
pub static STEPS: Steps = Steps {
    send_keys: SEND_KEYS,
    expect_keys: EXPECT_KEYS,
    parse_send,
    parse_expect,
};

const SEND_KEYS: &[&str] = &[
    "handshake",
    "message",
    "have",
    "bitfield",
    "request",
    "cancel",
    "piece",
    "port",
    "raw_message",
];

const EXPECT_KEYS: &[&str] = &[
    "handshake",
    "pieces",
    "bitfield",
    "message",
    "have",
    "piece",
    "request",
    "cancel",
    "no_piece",
    "no_answer",
    "dropped",
    "rarest_first",
    "unchokes",
    "requests",
];

/// The peer id a handshake sends unless the step gives one: Azureus-style, the client id "WC".
pub const DEFAULT_PEER_ID: &str = "-WC0001-000000000001";

/// How many block positions a failed piece expectation compares the wrong bytes with, looking
/// for where they came from.
const MAX_CANDIDATES: usize = 100_000;

/// A message's bytes on the wire: the handshake, or a length prefix, the id and the payload.
pub fn wire(m: &PeerMessage) -> Vec<u8> {
    let framed = |id: u8, parts: &[&[u8]]| {
        let len: usize = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut out = Vec::with_capacity(4 + len);
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.push(id);
        parts.iter().for_each(|p| out.extend_from_slice(p));
        out
    };
    let block = |b: &Block| [b.index.to_be_bytes(), b.begin.to_be_bytes(), b.length.to_be_bytes()].concat();
    let id = m.id().unwrap_or(0);
    match m {
        PeerMessage::Handshake {
            reserved,
            info_hash,
            peer_id,
        } => [PREFACE, reserved, info_hash, peer_id].concat(),
        PeerMessage::KeepAlive => vec![0; 4],
        PeerMessage::Opaque(_) => Vec::new(),
        PeerMessage::Have(i) | PeerMessage::Suggest(i) | PeerMessage::AllowedFast(i) => framed(id, &[&i.to_be_bytes()]),
        PeerMessage::Bitfield(b) => framed(id, &[b]),
        PeerMessage::Request(b) | PeerMessage::Cancel(b) | PeerMessage::Reject(b) => framed(id, &[&block(b)]),
        PeerMessage::Piece { index, begin, data } => framed(id, &[&index.to_be_bytes(), &begin.to_be_bytes(), data]),
        PeerMessage::Port(p) => framed(id, &[&p.to_be_bytes()]),
        PeerMessage::Extended { id: ext, payload } => framed(id, &[&[*ext], payload]),
        PeerMessage::Unknown { payload, .. } | PeerMessage::Malformed { payload, .. } => framed(id, &[payload]),
        PeerMessage::Choke
        | PeerMessage::Unchoke
        | PeerMessage::Interested
        | PeerMessage::NotInterested
        | PeerMessage::HaveAll
        | PeerMessage::HaveNone => framed(id, &[]),
    }
}

/// A torrent a step names, parsed when the suite loads.
#[derive(Debug, Clone)]
struct Torrent {
    /// The path as written, for messages.
    path: String,
    meta: Arc<Metainfo>,
}

/// The bytes a torrent describes (its files one after the other), read when the suite loads.
#[derive(Debug, Clone)]
struct Content {
    /// The file names as written, for messages.
    names: String,
    bytes: Arc<[u8]>,
}

fn torrent(n: &Node, cx: &mut LoadCx) -> Option<Torrent> {
    let f = cx.fixture(n, "torrent")?;
    match Metainfo::parse(&f.bytes) {
        Ok(meta) => Some(Torrent {
            path: f.display().to_string(),
            meta: Arc::new(meta),
        }),
        Err(e) => {
            cx.err_help(
                n,
                format!("{} is not a torrent a peer can use: {e}", f.display()),
                "a metainfo file (BEP 3), e.g. torrent: ../fixtures/bittorrent/sample.torrent",
            );
            None
        }
    }
}

/// The torrent `f` names under `torrent:`, which the step needs: its absence is an error at `node`.
fn required_torrent(node: &Node, f: &crate::syntax::Fields, cx: &mut LoadCx, example: &str) -> Option<Torrent> {
    match f.get("torrent") {
        Some(n) => torrent(n, cx),
        None => {
            cx.err_help(node, "this step needs the torrent (torrent: FILE)", example.to_string());
            None
        }
    }
}

/// The file (or, for a multi-file torrent, the list of files) holding `t`'s bytes, checked
/// against the torrent's length and piece hashes now, so a wrong file is a load error.
fn content(n: &Node, t: &Torrent, cx: &mut LoadCx) -> Option<Content> {
    let items: Vec<&Node> = match &n.data {
        Data::Seq(items) => items.iter().collect(),
        _ => vec![n],
    };
    let mut files = Vec::new();
    for i in &items {
        files.push(cx.fixture(i, "file")?);
    }
    let names = files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(" + ");
    let bytes: Arc<[u8]> = match files.as_slice() {
        [one] => one.bytes.clone(),
        many => many.iter().flat_map(|f| f.bytes.iter().copied()).collect(),
    };
    let want = t.meta.total_length();
    if bytes.len() as u64 != want {
        cx.err_help(
            n,
            format!(
                "{names} holds {} bytes; the files of {} are {want} bytes together",
                bytes.len(),
                t.path
            ),
            "give the torrent's file; for a multi-file torrent its files in order: file: [multi/a.txt, multi/sub/b.bin]",
        );
        return None;
    }
    for i in 0..t.meta.piece_count() {
        let len = t.meta.piece_len(i).unwrap_or(0) as u32;
        let ok = t.meta.block(&bytes, i, 0, len).is_ok_and(|b| t.meta.verifies(i, b));
        if !ok {
            cx.err(
                n,
                format!(
                    "piece {i} of {names} does not have the SHA-1 {} gives it: these are not the torrent's bytes",
                    t.path
                ),
            );
            return None;
        }
    }
    Some(Content { names, bytes })
}

/// A whole number of type `T` (u8, u16, u32), with its range in the message when it is not one.
fn num<T: std::str::FromStr + Bounded>(n: &Node, cx: &mut LoadCx, what: &str) -> Option<T> {
    let s = cx.string(n, what)?;
    match s.trim().parse() {
        Ok(v) => Some(v),
        Err(_) => {
            cx.err(n, format!("{what} must be a whole number from 0 to {}, found '{s}'", T::MAX_TEXT));
            None
        }
    }
}

/// The largest value of a number type, for messages.
trait Bounded {
    const MAX_TEXT: &'static str;
}
impl Bounded for u8 {
    const MAX_TEXT: &'static str = "255";
}
impl Bounded for u16 {
    const MAX_TEXT: &'static str = "65535";
}
impl Bounded for u32 {
    const MAX_TEXT: &'static str = "4294967295";
}

fn hex_bytes(n: &Node, cx: &mut LoadCx, what: &str, len: Option<usize>) -> Option<Vec<u8>> {
    let s = cx.string(n, what)?;
    match bencode::unhex(&s) {
        Some(b) if len.is_none_or(|l| b.len() == l) => Some(b),
        _ => {
            let size = len.map_or(String::new(), |l| format!("{} ", l * 2));
            cx.err_help(
                n,
                format!("{what} must be {size}hex digits, found '{s}'"),
                format!("e.g. {what}: \"{}\"", "00".repeat(len.unwrap_or(2))),
            );
            None
        }
    }
}

fn info_hash_hex(n: &Node, cx: &mut LoadCx) -> Option<[u8; 20]> {
    let b = hex_bytes(n, cx, "info_hash", Some(20))?;
    b.try_into().ok()
}

/// A peer id from a step: 20 bytes of text, or 40 hex digits (what a capture of a binary one
/// holds).
fn peer_id_bytes(s: &str) -> Result<[u8; 20], String> {
    if let Ok(b) = <[u8; 20]>::try_from(s.as_bytes()) {
        return Ok(b);
    }
    match bencode::unhex(s).map(<[u8; 20]>::try_from) {
        Some(Ok(b)) if s.len() == 40 => Ok(b),
        _ => Err(format!(
            "peer_id \"{s}\" is {} bytes; a peer id is 20 bytes (BEP 3), or 40 hex digits",
            s.len()
        )),
    }
}

/// A block's three numbers, all required.
fn block<'a>(n: &'a Node, cx: &mut LoadCx, extra: &[&str], what: &str) -> Option<(Block, crate::syntax::Fields<'a>)> {
    let mut keys = vec!["index", "begin", "length"];
    keys.extend_from_slice(extra);
    let f = cx.fields(n, &keys, what)?;
    let get = |cx: &mut LoadCx, key: &str| match f.get(key) {
        Some(v) => num::<u32>(v, cx, key),
        None => {
            cx.err_help(n, format!("{what} needs {key}"), "e.g. { index: 0, begin: 0, length: 16384 }");
            None
        }
    };
    let index = get(cx, "index");
    let begin = get(cx, "begin");
    let length = get(cx, "length");
    Some((
        Block {
            index: index?,
            begin: begin?,
            length: length?,
        },
        f,
    ))
}

/// A message without payload by name, as `send: { message: .. }` takes them.
fn bare_message(s: &str) -> Option<PeerMessage> {
    Some(match normal(s).as_str() {
        "keep-alive" => PeerMessage::KeepAlive,
        "choke" => PeerMessage::Choke,
        "unchoke" => PeerMessage::Unchoke,
        "interested" => PeerMessage::Interested,
        "not interested" => PeerMessage::NotInterested,
        "have all" => PeerMessage::HaveAll,
        "have none" => PeerMessage::HaveNone,
        _ => return None,
    })
}

/// Every kind `expect: { message: .. }` knows, as `PeerMessage::name` writes them.
const KINDS: &[&str] = &[
    "keep-alive",
    "choke",
    "unchoke",
    "interested",
    "not interested",
    "have",
    "bitfield",
    "request",
    "piece",
    "cancel",
    "port",
    "suggest",
    "have all",
    "have none",
    "reject",
    "allowed fast",
    "extended",
];

/// A message name as `PeerMessage::name` writes it: `not_interested` and `keep_alive` are
/// `not interested` and `keep-alive`.
fn normal(s: &str) -> String {
    let s = s.trim().to_ascii_lowercase().replace(['_', '-'], " ");
    match s.as_str() {
        "keepalive" | "keep alive" => "keep-alive".into(),
        _ => s,
    }
}

#[derive(Debug)]
enum SendKind {
    Handshake {
        info_hash: [u8; 20],
        peer_id: Template,
        reserved: [u8; 8],
    },
    /// Any other message, built when the suite loads.
    Message(PeerMessage),
}

#[derive(Debug)]
struct BtSend(SendKind);

fn parse_send(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredSend>> {
    let f = cx.fields(node, SEND_KEYS, "a BitTorrent send")?;
    let (key, v) = cx.one_of(
        node,
        &f,
        SEND_KEYS,
        "a send is one message: one of",
        "e.g. send: { message: interested }",
    )?;
    let m = match key {
        "handshake" => return parse_handshake_send(v, cx).map(|s| Box::new(s) as Box<dyn StructuredSend>),
        "message" => {
            let s = cx.string(v, "message")?;
            match bare_message(&s) {
                Some(m) => m,
                None => {
                    cx.err_help(
                        v,
                        format!("'{s}' is not a message without payload"),
                        "keep-alive, choke, unchoke, interested, not_interested, have_all or have_none; the others have keys of their own (have: 3, request: {..})",
                    );
                    return None;
                }
            }
        }
        "have" => PeerMessage::Have(num(v, cx, "have")?),
        "port" => PeerMessage::Port(num(v, cx, "port")?),
        "bitfield" => PeerMessage::Bitfield(bitfield_send(v, cx)?),
        "request" => PeerMessage::Request(block(v, cx, &[], "a request")?.0),
        "cancel" => PeerMessage::Cancel(block(v, cx, &[], "a cancel")?.0),
        "piece" => {
            let (b, pf) = block(v, cx, &["torrent", "file"], "a piece")?;
            let example = "e.g. piece: { index: 0, begin: 0, length: 16384, torrent: sample.torrent, file: sample.bin }";
            let t = required_torrent(v, &pf, cx, example)?;
            let Some(file) = pf.get("file") else {
                cx.err_help(v, "a piece sends bytes of the torrent's file (file: FILE)", example);
                return None;
            };
            let c = content(file, &t, cx)?;
            match t.meta.block(&c.bytes, b.index, b.begin, b.length) {
                Ok(data) => PeerMessage::Piece {
                    index: b.index,
                    begin: b.begin,
                    data: data.to_vec(),
                },
                Err(e) => {
                    cx.err(v, format!("{}: {e}", t.path));
                    return None;
                }
            }
        }
        "raw_message" => {
            let rf = cx.fields(v, &["id", "payload"], "a raw message")?;
            let Some(id) = rf.get("id") else {
                cx.err_help(v, "a raw message needs its id", "e.g. raw_message: { id: 99, payload: \"0001\" }");
                return None;
            };
            let id = num(id, cx, "id")?;
            let payload = match rf.get("payload") {
                Some(p) => hex_bytes(p, cx, "payload", None)?,
                None => Vec::new(),
            };
            PeerMessage::Unknown { id, payload }
        }
        _ => return None,
    };
    Some(Box::new(BtSend(SendKind::Message(m))))
}

fn parse_handshake_send(v: &Node, cx: &mut LoadCx) -> Option<BtSend> {
    let f = cx.fields(v, &["torrent", "info_hash", "peer_id", "reserved"], "a handshake")?;
    let (form, n) = cx.one_of(
        v,
        &f,
        &["torrent", "info_hash"],
        "a handshake names its torrent by one of",
        "e.g. handshake: { torrent: ../fixtures/bittorrent/sample.torrent }",
    )?;
    let info_hash = match form {
        "torrent" => torrent(n, cx)?.meta.info_hash,
        _ => info_hash_hex(n, cx)?,
    };
    let peer_id = match f.get("peer_id") {
        Some(p) => {
            let t = cx.template(p, "peer_id")?;
            if let Some(Err(e)) = t.as_literal().map(peer_id_bytes) {
                cx.err_help(p, e, format!("e.g. peer_id: \"{DEFAULT_PEER_ID}\""));
                return None;
            }
            t
        }
        None => Template::literal(DEFAULT_PEER_ID),
    };
    let reserved = match f.get("reserved") {
        Some(r) => hex_bytes(r, cx, "reserved", Some(8))?.try_into().ok()?,
        None => [0; 8],
    };
    Some(BtSend(SendKind::Handshake {
        info_hash,
        peer_id,
        reserved,
    }))
}

/// `bitfield: "11110"` (bits, padded with zeros to whole bytes) or `bitfield: { hex: "f8" }`.
fn bitfield_send(v: &Node, cx: &mut LoadCx) -> Option<Vec<u8>> {
    if let Data::Map(_) = &v.data {
        let f = cx.fields(v, &["hex"], "a bitfield")?;
        let Some(h) = f.get("hex") else {
            cx.err_help(v, "a bitfield mapping gives its bytes in hex", "e.g. bitfield: { hex: \"f8\" }");
            return None;
        };
        return hex_bytes(h, cx, "hex", None);
    }
    let s = cx.string(v, "bitfield")?;
    let bits: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    if bits.iter().any(|c| !matches!(c, '0' | '1')) {
        cx.err_help(
            v,
            format!("'{s}' is not a string of bits"),
            "one 0 or 1 per piece, piece 0 first: bitfield: \"11110\"; or the bytes: bitfield: { hex: \"f8\" }",
        );
        return None;
    }
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, _) in bits.iter().enumerate().filter(|(_, c)| **c == '1') {
        out[i / 8] |= 0x80 >> (i % 8);
    }
    Some(out)
}

impl StructuredSend for BtSend {
    fn render(&self, cx: &RenderCx) -> Result<Vec<u8>, String> {
        Ok(match &self.0 {
            SendKind::Handshake {
                info_hash,
                peer_id,
                reserved,
            } => wire(&PeerMessage::Handshake {
                reserved: *reserved,
                info_hash: *info_hash,
                peer_id: peer_id_bytes(&peer_id.render(cx.vars)?)?,
            }),
            SendKind::Message(m) => wire(m),
        })
    }

    fn templates(&self) -> Vec<&Template> {
        match &self.0 {
            SendKind::Handshake { peer_id, .. } => vec![peer_id],
            SendKind::Message(_) => Vec::new(),
        }
    }
}

/// A handshake field an expectation can capture.
#[derive(Debug, Clone, Copy)]
enum Field {
    PeerId,
    InfoHash,
    Reserved,
}

fn field(s: &str) -> Option<Field> {
    match s {
        "peer_id" => Some(Field::PeerId),
        "info_hash" => Some(Field::InfoHash),
        "reserved" => Some(Field::Reserved),
        _ => None,
    }
}

/// The blocks a piece expectation accepts, the torrent and its bytes.
#[derive(Debug)]
struct PieceWant {
    blocks: Vec<(Block, Loc)>,
    torrent: Torrent,
    content: Content,
    /// Blocks whose piece messages are read past (a cancelled request may still be answered).
    passing: Vec<Block>,
    /// A refusal meets it too: nothing within this while, or the connection closing.
    or_refused: Option<std::time::Duration>,
}

/// A request or cancel the client sent, by the fields a step names.
#[derive(Debug, Default)]
struct BlockMatch {
    index: Option<u32>,
    begin: Option<u32>,
    length: Option<u32>,
}

impl BlockMatch {
    fn matches(&self, b: &Block) -> bool {
        self.index.is_none_or(|i| i == b.index) && self.begin.is_none_or(|x| x == b.begin) && self.length.is_none_or(|l| l == b.length)
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(i) = self.index {
            parts.push(format!("piece {i}"));
        }
        if let Some(b) = self.begin {
            parts.push(format!("begin {b}"));
        }
        if let Some(l) = self.length {
            parts.push(format!("len {l}"));
        }
        if parts.is_empty() {
            "any block".to_string()
        } else {
            parts.join(" ")
        }
    }
}

fn parse_block_match(v: &Node, cx: &mut LoadCx, what: &str) -> Option<BlockMatch> {
    if matches!(v.data, Data::Null) {
        return Some(BlockMatch::default());
    }
    let f = cx.fields(v, &["index", "begin", "length"], what)?;
    let mut m = BlockMatch::default();
    for (key, slot) in [("index", &mut m.index), ("begin", &mut m.begin), ("length", &mut m.length)] {
        if let Some(n) = f.get(key) {
            *slot = Some(num::<u32>(n, cx, key)?);
        }
    }
    Some(m)
}

#[derive(Debug)]
enum ExpectKind {
    Handshake {
        info_hash: [u8; 20],
        /// Where the info-hash came from, for messages ("sample.torrent's").
        from: String,
    },
    PiecesAll(Torrent),
    Bitfield(Torrent),
    /// A message of this kind (as `PeerMessage::name` writes it).
    Message(&'static str),
    Have(u32),
    Piece(PieceWant),
    /// A request (what a client under test asked a swarm's peer for).
    Request(BlockMatch),
    /// A cancel.
    Cancel(BlockMatch),
    /// No piece within this while: a request the peer must refuse (it may close instead).
    NoPiece(std::time::Duration),
    /// No handshake or peer wire message within this while: the peer closes, waits, or speaks
    /// another protocol (the encrypted handshake), as for bytes that are not BitTorrent.
    NoAnswer(std::time::Duration),
    /// The connection closed with no message first (BEP 3: "they sever the connection").
    Dropped,
}

#[derive(Debug)]
struct BtExpect {
    kind: ExpectKind,
    /// Handshake fields to keep in variables.
    fields: Vec<(String, Field)>,
    /// Regex captures over the message's line.
    regexes: Vec<(String, Regex)>,
}

fn parse_expect(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    // Judgements over a whole swarm's record (saw steps) have their own file.
    if let Data::Map(pairs) = &node.data {
        if pairs
            .iter()
            .any(|(k, _)| k.as_str().is_some_and(|k| super::judge::KEYS.contains(&k)))
        {
            return super::judge::parse(node, cx);
        }
    }
    let mut keys = EXPECT_KEYS.to_vec();
    keys.extend(["torrent", "capture"]);
    let f = cx.fields(node, &keys, "a BitTorrent expect")?;
    let (key, v) = cx.one_of(
        node,
        &f,
        EXPECT_KEYS,
        "an expect checks one message: one of",
        "e.g. expect: { message: unchoke }",
    )?;
    if key != "pieces" {
        if let Some(t) = f.get("torrent") {
            cx.err_help(
                t,
                format!("torrent goes inside {key}: here"),
                format!("e.g. {key}: {{ torrent: ../fixtures/bittorrent/sample.torrent }}"),
            );
            return None;
        }
    }
    let kind = match key {
        "handshake" => {
            let hf = cx.fields(v, &["torrent", "info_hash"], "a handshake")?;
            let (form, n) = cx.one_of(
                v,
                &hf,
                &["torrent", "info_hash"],
                "a handshake expectation names the info-hash by one of",
                "e.g. handshake: { torrent: ../fixtures/bittorrent/sample.torrent }",
            )?;
            match form {
                "torrent" => {
                    let t = torrent(n, cx)?;
                    ExpectKind::Handshake {
                        info_hash: t.meta.info_hash,
                        from: format!(" ({})", t.path),
                    }
                }
                _ => ExpectKind::Handshake {
                    info_hash: info_hash_hex(n, cx)?,
                    from: String::new(),
                },
            }
        }
        "pieces" => {
            if v.as_str() != Some("all") {
                cx.err_help(
                    v,
                    "pieces: all is its one form",
                    "expect: { pieces: all, torrent: FILE }; a single piece announced: expect: { have: 3 }",
                );
                return None;
            }
            ExpectKind::PiecesAll(required_torrent(
                node,
                &f,
                cx,
                "e.g. expect: { pieces: all, torrent: ../fixtures/bittorrent/sample.torrent }",
            )?)
        }
        "bitfield" => {
            let bf = cx.fields(v, &["torrent"], "a bitfield expectation")?;
            ExpectKind::Bitfield(required_torrent(
                v,
                &bf,
                cx,
                "e.g. bitfield: { torrent: ../fixtures/bittorrent/sample.torrent }",
            )?)
        }
        "message" => {
            let s = cx.string(v, "message")?;
            let n = normal(&s);
            match KINDS.iter().find(|k| **k == n) {
                Some(k) => ExpectKind::Message(k),
                None => {
                    cx.err_help(
                        v,
                        format!("'{s}' is not a peer wire message"),
                        format!("one of {}", KINDS.join(", ")),
                    );
                    return None;
                }
            }
        }
        "have" => ExpectKind::Have(num(v, cx, "have")?),
        "piece" => ExpectKind::Piece(parse_piece_want(v, cx)?),
        "request" => ExpectKind::Request(parse_block_match(v, cx, "a request")?),
        "cancel" => ExpectKind::Cancel(parse_block_match(v, cx, "a cancel")?),
        "no_piece" => ExpectKind::NoPiece(cx.duration(v, "no_piece")?),
        "no_answer" => ExpectKind::NoAnswer(cx.duration(v, "no_answer")?),
        "dropped" => {
            if cx.boolean(v, "dropped")? {
                ExpectKind::Dropped
            } else {
                cx.err_help(v, "dropped: true is its one form", "e.g. expect: { dropped: true }");
                return None;
            }
        }
        _ => return None,
    };
    let (fields, regexes) = match f.get("capture") {
        Some(c) => parse_capture(c, cx, matches!(kind, ExpectKind::Handshake { .. }))?,
        None => (Vec::new(), Vec::new()),
    };
    Some(Box::new(BtExpect { kind, fields, regexes }))
}

fn parse_piece_want(v: &Node, cx: &mut LoadCx) -> Option<PieceWant> {
    let example = "e.g. piece: { index: 0, begin: 0, length: 16384, torrent: sample.torrent, file: sample.bin }";
    let f = cx.fields(
        v,
        &["index", "begin", "length", "any_of", "torrent", "file", "passing", "or_refused"],
        "a piece expectation",
    )?;
    let t = required_torrent(v, &f, cx, example)?;
    let Some(file) = f.get("file") else {
        cx.err_help(v, "a piece expectation compares with the torrent's file (file: FILE)", example);
        return None;
    };
    let content = content(file, &t, cx)?;
    let mut blocks = Vec::new();
    match f.get("any_of") {
        Some(list) => {
            if ["index", "begin", "length"].iter().any(|k| f.get(k).is_some()) {
                cx.err_help(v, "a piece is either one block or any_of: [blocks]", example);
                return None;
            }
            let Data::Seq(items) = &list.data else {
                cx.err_help(
                    list,
                    "any_of is a list of blocks",
                    "e.g. any_of: [{ index: 0, begin: 0, length: 16384 }, { index: 1, begin: 0, length: 16384 }]",
                );
                return None;
            };
            for i in items {
                blocks.push((block(i, cx, &[], "a block")?.0, i.loc));
            }
            if blocks.is_empty() {
                cx.err(list, "any_of lists at least one block");
                return None;
            }
        }
        None => {
            let (b, _) = block(
                v,
                cx,
                &["any_of", "torrent", "file", "passing", "or_refused"],
                "a piece expectation",
            )?;
            blocks.push((b, v.loc));
        }
    }
    let mut passing = Vec::new();
    if let Some(list) = f.get("passing") {
        let Data::Seq(items) = &list.data else {
            cx.err_help(
                list,
                "passing is a list of blocks",
                "e.g. passing: [{ index: 2, begin: 0, length: 16384 }]",
            );
            return None;
        };
        for i in items {
            passing.push(block(i, cx, &[], "a block")?.0);
        }
    }
    let or_refused = match f.get("or_refused") {
        Some(d) => Some(cx.duration(d, "or_refused")?),
        None => None,
    };
    // A refusal that is met by silence would be met by a block too big to be served (the peer
    // may send what BEP 3 lets it refuse): the bytes are still checked when it comes.
    if or_refused.is_none() {
        for (b, loc) in &blocks {
            if let Err(e) = t.meta.block(&content.bytes, b.index, b.begin, b.length) {
                cx.err_at(*loc, format!("{}: {e}", t.path), None);
                return None;
            }
        }
    }
    Some(PieceWant {
        blocks,
        torrent: t,
        content,
        passing,
        or_refused,
    })
}

type Captures = (Vec<(String, Field)>, Vec<(String, Regex)>);

/// `capture: { var: peer_id }` (a handshake field; `{ peer_id: var }` reads the same) or
/// `capture: { var: 'regex (with) a group' }` over the message's line.
fn parse_capture(n: &Node, cx: &mut LoadCx, handshake: bool) -> Option<Captures> {
    let pairs = cx.mapping(n, "capture must be a mapping", "e.g. capture: { their_id: peer_id }")?;
    let (mut fields, mut regexes) = (Vec::new(), Vec::new());
    for (k, v) in pairs {
        let key = cx.string(k, "a variable name")?;
        let value = cx.string(v, "a handshake field or a regex")?;
        if let Some(fl) = field(&value) {
            fields.push((key, fl));
        } else if let Some(fl) = field(&key) {
            fields.push((value, fl));
        } else {
            match Regex::new(&value) {
                Ok(re) if re.captures_len() >= 2 => regexes.push((key, re)),
                _ => {
                    cx.err_help(
                        v,
                        "capture a handshake field (peer_id, info_hash, reserved) or a regex with a group",
                        "e.g. capture: { their_id: peer_id }",
                    );
                    return None;
                }
            }
        }
    }
    if !fields.is_empty() && !handshake {
        cx.err_help(
            n,
            "peer_id, info_hash and reserved are the handshake's fields",
            "capture them on the expectation of the handshake: expect: { handshake: { torrent: .. }, capture: { their_id: peer_id } }",
        );
        return None;
    }
    Some((fields, regexes))
}

fn peer(msg: &Message) -> Option<&PeerMessage> {
    msg.detail.as_ref()?.downcast_ref::<PeerMessage>()
}

/// Piece indexes as ranges ("0-2, 4"), the first few.
fn ranges(pieces: &[u32]) -> String {
    const SHOWN: usize = 12;
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < pieces.len() && out.len() < SHOWN {
        let start = pieces[i];
        let mut end = start;
        while i + 1 < pieces.len() && pieces[i + 1] == end + 1 {
            i += 1;
            end = pieces[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    let mut s = out.join(", ");
    if i < pieces.len() {
        s.push_str(&format!(" … ({} in all)", pieces.len()));
    }
    s
}

fn has(bits: &[u8], i: u32) -> bool {
    bits.get(i as usize / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
}

/// Whether `bits` is the right bitfield for `meta`'s pieces: one bit a piece, high bit first, in
/// whole bytes, the spare bits zero (BEP 3).
fn check_bitfield(bits: &[u8], meta: &Metainfo) -> Result<(), String> {
    let n = meta.piece_count() as usize;
    let want = n.div_ceil(8);
    if bits.len() != want {
        return Err(format!(
            "the bitfield is {} bytes; {n} pieces take {want} (BEP 3: one bit a piece, the first byte for pieces 0 - 7)",
            bits.len()
        ));
    }
    let spare = want * 8 - n;
    if let Some(&last) = bits.last().filter(|&&b| spare > 0 && b & ((1u8 << spare) - 1) != 0) {
        return Err(format!(
            "spare bits set: the last byte is {last:08b}, and its last {spare} bits are past piece {}: \"Spare bits at the end are set to zero.\" (BEP 3)",
            n - 1
        ));
    }
    Ok(())
}

impl PieceWant {
    fn describe_block(&self, b: &Block) -> String {
        format!("piece {} begin {} len {}", b.index, b.begin, b.length)
    }

    /// Where else in the torrent `data` is (another piece's block: an index off by one), other
    /// than at `not`.
    fn whose(&self, data: &[u8], not: (u32, u32)) -> Option<(u32, u32)> {
        let meta = &self.torrent.meta;
        let len = data.len() as u64;
        if len == 0 {
            return None;
        }
        let mut tried = 0;
        for i in 0..meta.piece_count() {
            let plen = meta.piece_len(i)?;
            let start = u64::from(i) * meta.piece_length;
            // The same offset in another piece first, then the block-aligned offsets.
            let same = std::iter::once(u64::from(not.1));
            let aligned = (0..plen).step_by(len as usize);
            for b in same.chain(aligned) {
                tried += 1;
                if tried > MAX_CANDIDATES {
                    return None;
                }
                if b + len > plen || (i, b) == (not.0, u64::from(not.1)) {
                    continue;
                }
                let at = (start + b) as usize;
                if self.content.bytes.get(at..at + data.len()) == Some(data) {
                    return Some((i, b as u32));
                }
            }
        }
        None
    }

    fn check(&self, m: &PeerMessage, msg: &Message, want: String) -> Result<(), Mismatch> {
        let (index, begin, data) = match m {
            PeerMessage::Piece { index, begin, data } => (*index, *begin, data.as_slice()),
            PeerMessage::Choke => {
                return Err(mismatch(
                    "the peer choked us: it will not answer the requests it had (BEP 3)",
                    want,
                    msg,
                ))
            }
            PeerMessage::Reject(b) => {
                return Err(mismatch(
                    format!(
                        "the peer rejected the request for {} (BEP 6): it will not send it",
                        self.describe_block(b)
                    ),
                    want,
                    msg,
                ))
            }
            other => return Err(mismatch(format!("{} message, not a piece", a(other.name())), want, msg)),
        };
        let Some((b, loc)) = self.blocks.iter().find(|(b, _)| b.index == index && b.begin == begin) else {
            let listed: Vec<String> = self
                .blocks
                .iter()
                .map(|(b, _)| format!("piece {} begin {}", b.index, b.begin))
                .collect();
            let mut why = format!("piece {index} begin {begin}, not {}", listed.join(" or "));
            let same = self.blocks.iter().find(|(b, _)| self.bytes(b) == Some(data));
            if let Some((b, _)) = same {
                why.push_str(&format!(
                    "; its bytes are those of {}: the index or begin field is wrong",
                    self.describe_block(b)
                ));
            }
            return Err(mismatch(why, want, msg));
        };
        let expected = self.bytes(b).unwrap_or_default();
        if data.len() != expected.len() {
            let right = if expected.starts_with(data) || data.starts_with(expected) {
                " (the bytes they share are right)"
            } else {
                ""
            };
            return Err(mismatch(
                format!("the block is {} bytes, not {}{right}", data.len(), expected.len()),
                want,
                msg,
            )
            .at(*loc));
        }
        if data != expected {
            let differ: Vec<usize> = (0..data.len()).filter(|&i| data[i] != expected[i]).collect();
            let first = differ.first().copied().unwrap_or(0);
            let mut why = format!(
                "the block's bytes are not those of {} in {}: {} of {} bytes differ, the first at offset {first} of the block (expected 0x{:02x}, got 0x{:02x})",
                self.describe_block(b),
                self.content.names,
                differ.len(),
                data.len(),
                expected[first],
                data[first],
            );
            match self.whose(data, (b.index, b.begin)) {
                Some((i, at)) => why.push_str(&format!("; they are the bytes of piece {i} begin {at} (an index off by one?)")),
                None => why.push_str("; they are no other block of the torrent either"),
            }
            return Err(mismatch(why, want, msg).at(*loc));
        }
        Ok(())
    }

    fn bytes(&self, b: &Block) -> Option<&[u8]> {
        self.torrent.meta.block(&self.content.bytes, b.index, b.begin, b.length).ok()
    }
}

/// What a peer may send at any time, which expectations read past unless they ask for it.
fn any_time(m: &PeerMessage) -> bool {
    matches!(
        m,
        PeerMessage::KeepAlive
            | PeerMessage::Have(_)
            | PeerMessage::Port(_)
            | PeerMessage::Extended { .. }
            | PeerMessage::Suggest(_)
            | PeerMessage::HaveAll
            | PeerMessage::HaveNone
            | PeerMessage::Reject(_)
            | PeerMessage::AllowedFast(_)
            | PeerMessage::Interested
            | PeerMessage::NotInterested
            | PeerMessage::Unchoke
    )
}

fn hex_of(f: Field, m: &PeerMessage) -> Option<String> {
    let PeerMessage::Handshake {
        reserved,
        info_hash,
        peer_id,
    } = m
    else {
        return None;
    };
    Some(match f {
        // Printable peer ids are kept as text (what a handshake step sends back as is), others
        // as hex, which `peer_id:` takes too.
        Field::PeerId if peer_id.iter().all(|b| (0x20..0x7f).contains(b)) => String::from_utf8_lossy(peer_id).into_owned(),
        Field::PeerId => bencode::hex(peer_id),
        Field::InfoHash => bencode::hex(info_hash),
        Field::Reserved => bencode::hex(reserved),
    })
}

impl BtExpect {
    fn judge(&self, m: &PeerMessage, msg: &Message) -> Result<(), Mismatch> {
        let want = self.describe();
        let not = |what: &str| mismatch(format!("{} message, not {what}", a(m.name())), want.clone(), msg);
        match &self.kind {
            ExpectKind::Handshake { info_hash, from } => match m {
                PeerMessage::Handshake { info_hash: got, .. } if got == info_hash => Ok(()),
                PeerMessage::Handshake { info_hash: got, .. } => Err(mismatch(
                    format!(
                        "the handshake's info-hash is {}, not {}{from}: \"If both sides don't send the same value, they sever the connection.\" (BEP 3)",
                        bencode::hex(got),
                        bencode::hex(info_hash)
                    ),
                    want,
                    msg,
                )),
                PeerMessage::Opaque(_) => Err(mismatch(
                    "the peer's bytes are no BitTorrent handshake: they look encrypted (Message Stream Encryption?) or another protocol",
                    want,
                    msg,
                )),
                _ => Err(not("the handshake")),
            },
            ExpectKind::PiecesAll(t) => {
                let n = t.meta.piece_count();
                let missing = |has: &dyn Fn(u32) -> bool| ranges(&(0..n).filter(|&i| !has(i)).collect::<Vec<_>>());
                match m {
                    PeerMessage::HaveAll => Ok(()),
                    PeerMessage::Bitfield(bits) => {
                        check_bitfield(bits, &t.meta).map_err(|e| mismatch(e, want.clone(), msg))?;
                        if (0..n).all(|i| has(bits, i)) {
                            return Ok(());
                        }
                        Err(mismatch(
                            format!("the bitfield lacks pieces {} of the {n}", missing(&|i| has(bits, i))),
                            want,
                            msg,
                        ))
                    }
                    PeerMessage::HaveNone => Err(mismatch(format!("have none: the peer has none of the {n} pieces"), want, msg)),
                    PeerMessage::Have(h) => Err(mismatch(
                        format!(
                            "a have (piece {h}) where a bitfield with all {n} pieces was expected: so far the peer announced piece {h} alone, and pieces {} are missing; a peer that announces its pieces by have messages is read by `expect: {{ have: N }}` steps",
                            missing(&|i| i == *h)
                        ),
                        want,
                        msg,
                    )),
                    _ => Err(not(&format!("a bitfield with all {n} pieces"))),
                }
            }
            ExpectKind::Bitfield(t) => match m {
                PeerMessage::Bitfield(bits) => check_bitfield(bits, &t.meta).map_err(|e| mismatch(e, want, msg)),
                // A peer that announces its pieces otherwise sends no bitfield to judge: BEP 3
                // makes the bitfield optional, and BEP 6 lets have all or have none stand for it.
                PeerMessage::Have(_) | PeerMessage::HaveAll | PeerMessage::HaveNone => Ok(()),
                _ => Err(not("a bitfield")),
            },
            ExpectKind::Message(kind) if m.name() == *kind => Ok(()),
            ExpectKind::Message(kind) => Err(not(kind)),
            ExpectKind::Have(i) => match m {
                PeerMessage::Have(h) if h == i => Ok(()),
                PeerMessage::Have(h) => Err(mismatch(format!("have {h}, not have {i}"), want, msg)),
                _ => Err(not(&format!("have {i}"))),
            },
            ExpectKind::Piece(p) => p.check(m, msg, want),
            ExpectKind::Request(b) => match m {
                PeerMessage::Request(r) if b.matches(r) => Ok(()),
                PeerMessage::Request(r) => Err(mismatch(
                    format!("a request for piece {} begin {} len {}, not {}", r.index, r.begin, r.length, b.describe()),
                    want,
                    msg,
                )),
                _ => Err(not("a request")),
            },
            ExpectKind::Cancel(b) => match m {
                PeerMessage::Cancel(r) if b.matches(r) => Ok(()),
                _ => Err(not(&format!("a cancel of {}", b.describe()))),
            },
            ExpectKind::NoPiece(_) => match m {
                PeerMessage::Piece { index, begin, data } => Err(mismatch(
                    format!(
                        "the peer answered with {} bytes at {begin} of piece {index}: a request it should have refused (BEP 3)",
                        data.len()
                    ),
                    want,
                    msg,
                )),
                _ => Ok(()),
            },
            ExpectKind::Dropped => Err(mismatch(
                format!(
                    "the peer answered with {} instead of closing the connection: \"If both sides don't send the same value, they sever the connection.\" (BEP 3)",
                    m.name()
                ),
                want,
                msg,
            )),
            ExpectKind::NoAnswer(_) => match m {
                PeerMessage::Opaque(_) => Ok(()),
                _ => Err(mismatch(
                    format!(
                        "the peer answered with {}: bytes that are not a BitTorrent handshake get none back (BEP 3)",
                        m.name()
                    ),
                    want,
                    msg,
                )),
            },
        }
    }
}

impl StructuredExpect for BtExpect {
    fn check(&self, msg: &Message, _cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        let Some(m) = peer(msg) else {
            return Err(mismatch("not a BitTorrent peer wire message", self.describe(), msg));
        };
        self.judge(m, msg)?;
        let mut out = Vec::new();
        for (var, f) in &self.fields {
            match hex_of(*f, m) {
                Some(v) => out.push((var.clone(), v)),
                None => {
                    return Err(mismatch(
                        format!("nothing to capture into '{var}': not a handshake"),
                        self.describe(),
                        msg,
                    ))
                }
            }
        }
        out.extend(apply_captures(&self.regexes, msg, self.describe())?);
        Ok(out)
    }

    fn templates(&self) -> Vec<&Template> {
        Vec::new()
    }

    fn captures(&self) -> Vec<String> {
        self.fields
            .iter()
            .map(|(v, _)| v.clone())
            .chain(self.regexes.iter().map(|(v, _)| v.clone()))
            .collect()
    }

    fn describe(&self) -> String {
        match &self.kind {
            ExpectKind::Handshake { info_hash, from } => format!("a handshake with info_hash {}{from}", bencode::hex(info_hash)),
            ExpectKind::PiecesAll(t) => format!("a bitfield with all {} pieces of {} (or have all)", t.meta.piece_count(), t.path),
            ExpectKind::Bitfield(t) => format!(
                "a bitfield of {} for the {} pieces of {}, spare bits zero",
                match (t.meta.piece_count() as usize).div_ceil(8) {
                    1 => "1 byte".to_string(),
                    n => format!("{n} bytes"),
                },
                t.meta.piece_count(),
                t.path
            ),
            ExpectKind::Message(kind) => kind.to_string(),
            ExpectKind::Have(i) => format!("have {i}"),
            ExpectKind::Piece(p) => {
                let blocks: Vec<String> = p.blocks.iter().map(|(b, _)| p.describe_block(b)).collect();
                let refused = match p.or_refused {
                    Some(d) => format!(", or no answer within {d:?} (the request refused)"),
                    None => String::new(),
                };
                format!(
                    "{} of {}, the bytes of {}{refused}",
                    blocks.join(" or "),
                    p.torrent.path,
                    p.content.names
                )
            }
            ExpectKind::Request(b) => format!("a request for {}", b.describe()),
            ExpectKind::Cancel(b) => format!("a cancel of {}", b.describe()),
            ExpectKind::NoPiece(d) => format!("no piece within {d:?} (the request refused; closing the connection refuses it too)"),
            ExpectKind::NoAnswer(d) => format!("no handshake within {d:?} (the connection closed, or silent)"),
            ExpectKind::Dropped => "the connection closed, nothing sent".to_string(),
        }
    }

    fn skips(&self, msg: &Message) -> bool {
        let Some(m) = peer(msg) else { return false };
        match &self.kind {
            ExpectKind::Handshake { .. } => false,
            ExpectKind::PiecesAll(_) => any_time(m) && !matches!(m, PeerMessage::Have(_) | PeerMessage::HaveAll | PeerMessage::HaveNone),
            ExpectKind::Bitfield(_) => any_time(m) && !matches!(m, PeerMessage::Have(_) | PeerMessage::HaveAll | PeerMessage::HaveNone),
            ExpectKind::Message(kind) => (any_time(m) || matches!(m, PeerMessage::Bitfield(_))) && m.name() != *kind,
            ExpectKind::Have(_) => (any_time(m) || matches!(m, PeerMessage::Bitfield(_))) && !matches!(m, PeerMessage::Have(_)),
            ExpectKind::Piece(p) => match m {
                // A reject of a block this step waits for is its answer: no piece will come.
                PeerMessage::Reject(r) => !p.blocks.iter().any(|(b, _)| b == r),
                PeerMessage::Bitfield(_) => true,
                PeerMessage::Piece { index, begin, .. } => p.passing.iter().any(|b| b.index == *index && b.begin == *begin),
                _ => any_time(m),
            },
            ExpectKind::Request(_) | ExpectKind::Cancel(_) => false,
            ExpectKind::NoPiece(_) => !matches!(m, PeerMessage::Piece { .. }),
            ExpectKind::NoAnswer(_) | ExpectKind::Dropped => false,
        }
    }

    fn accepts_close(&self) -> bool {
        matches!(self.kind, ExpectKind::Dropped)
    }

    fn holds_after(&self) -> Option<std::time::Duration> {
        match &self.kind {
            ExpectKind::NoPiece(d) | ExpectKind::NoAnswer(d) => Some(*d),
            ExpectKind::Piece(p) => p.or_refused,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::PeerCodec;
    use super::*;
    use crate::proto::steps::testing::{expect, send};
    use crate::proto::{Codec, Frame};

    const T: &str = "../fixtures/bittorrent/sample.torrent";
    const F: &str = "../fixtures/bittorrent/sample.bin";

    fn vars() -> crate::syntax::Vars {
        crate::syntax::Vars::new()
    }

    fn render(yaml: &str) -> Vec<u8> {
        let s = send(&STEPS, yaml).unwrap_or_else(|e| panic!("{e}"));
        let v = vars();
        let cx = RenderCx {
            vars: &v,
            base_dir: std::path::Path::new("."),
            transport: crate::proto::Transport::Tcp,
            local: None,
        };
        s.render(&cx).unwrap()
    }

    fn sample() -> Vec<u8> {
        std::fs::read(format!("{}/fixtures/bittorrent/sample.bin", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn hash() -> [u8; 20] {
        bencode::unhex("978d8983bd506915a578f583b1e9a3ff32c1c7b2")
            .unwrap()
            .try_into()
            .unwrap()
    }

    /// The message `m` as the codec frames it (after a handshake, so order findings stay out).
    fn framed(m: &PeerMessage) -> Message {
        let mut c = PeerCodec::new();
        let h = wire(&PeerMessage::Handshake {
            reserved: [0; 8],
            info_hash: hash(),
            peer_id: *b"-XX0000-000000000000",
        });
        let first = match m {
            PeerMessage::Handshake { .. } => Some(wire(m)),
            PeerMessage::Opaque(n) => Some(vec![0xc3; *n]),
            _ => None,
        };
        if let Some(bytes) = first {
            let Ok(Frame::Message(got, _)) = c.decode(&bytes, false) else {
                panic!()
            };
            return got;
        }
        c.decode(&h, false).unwrap();
        let Ok(Frame::Message(got, _)) = c.decode(&wire(m), false) else {
            panic!()
        };
        got
    }

    /// Checks `m` against the expectation written `yaml`: the captures, or the failure's sentence.
    fn judge(yaml: &str, m: &PeerMessage) -> Result<Vec<(String, String)>, String> {
        let e = expect(&STEPS, yaml).unwrap_or_else(|e| panic!("{e}"));
        let v = vars();
        let cx = RenderCx {
            vars: &v,
            base_dir: std::path::Path::new("."),
            transport: crate::proto::Transport::Tcp,
            local: None,
        };
        e.check(&framed(m), &cx).map_err(|mm| mm.message)
    }

    fn skips(yaml: &str, m: &PeerMessage) -> bool {
        expect(&STEPS, yaml).unwrap().skips(&framed(m))
    }

    #[test]
    fn sends_a_handshake_from_a_torrent_with_the_default_peer_id() {
        let b = render(&format!("handshake: {{ torrent: {T} }}"));
        assert_eq!(b.len(), 68);
        assert_eq!(&b[..20], PREFACE);
        assert_eq!(&b[20..28], &[0; 8]);
        assert_eq!(&b[28..48], &hash());
        assert_eq!(&b[48..], DEFAULT_PEER_ID.as_bytes());
        let b = render("handshake: { info_hash: 978d8983bd506915a578f583b1e9a3ff32c1c7b2, peer_id: \"-WC0001-abcdefghijkl\", reserved: \"0000000000100005\" }");
        assert_eq!(&b[20..28], &[0, 0, 0, 0, 0, 0x10, 0, 5]);
        assert_eq!(&b[48..], b"-WC0001-abcdefghijkl");
        let b = render(&format!(
            "handshake: {{ info_hash: {}, peer_id: \"{}\" }}",
            bencode::hex(&hash()),
            "ab".repeat(20)
        ));
        assert_eq!(&b[48..], &[0xab; 20]);
    }

    #[test]
    fn sends_every_message_kind() {
        assert_eq!(render("message: interested"), [0, 0, 0, 1, 2]);
        assert_eq!(render("message: not_interested"), [0, 0, 0, 1, 3]);
        assert_eq!(render("message: keep-alive"), [0, 0, 0, 0]);
        assert_eq!(render("message: have_all"), [0, 0, 0, 1, 14]);
        assert_eq!(render("have: 3"), [0, 0, 0, 5, 4, 0, 0, 0, 3]);
        assert_eq!(render("bitfield: \"11110\""), [0, 0, 0, 2, 5, 0xf0]);
        assert_eq!(render("bitfield: \"111111111\""), [0, 0, 0, 3, 5, 0xff, 0x80]);
        assert_eq!(render("bitfield: { hex: f8 }"), [0, 0, 0, 2, 5, 0xf8]);
        assert_eq!(
            render("request: { index: 1, begin: 16384, length: 16384 }"),
            [0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0]
        );
        assert_eq!(render("cancel: { index: 1, begin: 0, length: 1 }")[4], 8);
        assert_eq!(render("port: 6881"), [0, 0, 0, 3, 9, 0x1a, 0xe1]);
        assert_eq!(render("raw_message: { id: 99, payload: \"0001\" }"), [0, 0, 0, 3, 99, 0, 1]);
        assert_eq!(render("raw_message: { id: 2 }"), [0, 0, 0, 1, 2]);
    }

    #[test]
    fn sends_a_piece_with_the_files_bytes() {
        let b = render(&format!(
            "piece: {{ index: 4, begin: 16384, length: 2544, torrent: {T}, file: {F} }}"
        ));
        assert_eq!(&b[..13], [0, 0, 0x09, 0xf9, 7, 0, 0, 0, 4, 0, 0, 0x40, 0]);
        assert_eq!(&b[13..], &sample()[4 * 32768 + 16384..]);
    }

    #[test]
    fn rejects_sends_that_cannot_be_sent_with_their_location() {
        let err = |yaml: &str| send(&STEPS, yaml).unwrap_err();
        assert!(err("handshake: { peer_id: x }").contains("names its torrent by one of"));
        assert!(err("handshake: { info_hash: abcd }").contains("40 hex digits"));
        assert!(err(&format!("handshake: {{ torrent: {T}, peer_id: short }}")).contains("a peer id is 20 bytes"));
        assert!(err("handshake: { torrent: nope.torrent }").contains("no file"));
        assert!(err(&format!("handshake: {{ torrent: {F} }}")).contains("is not a torrent a peer can use"));
        assert!(err("message: have").contains("not a message without payload"));
        assert!(err("have: -1").contains("whole number"));
        assert!(err("bitfield: \"10x\"").contains("not a string of bits"));
        assert!(err("request: { index: 0, begin: 0 }").contains("needs length"));
        assert!(err(&format!("piece: {{ index: 5, begin: 0, length: 1, torrent: {T}, file: {F} }}")).contains("past the last"));
        assert!(err(&format!(
            "piece: {{ index: 4, begin: 16384, length: 16384, torrent: {T}, file: {F} }}"
        ))
        .contains("past the end of piece 4"));
        assert!(err(&format!(
            "piece: {{ index: 0, begin: 0, length: 1, torrent: {T}, file: ../fixtures/bittorrent/swarm.bin }}"
        ))
        .contains("holds 1048576 bytes"));
        assert!(err("port: 70000").contains("0 to 65535"));
        assert!(err("have: 1\nport: 2").contains("a send is one message"));
        let e = err("raw_message: { payload: \"00\" }");
        assert!(e.contains("suites/t.yaml:1:"), "located: {e}");
    }

    #[test]
    fn expects_the_handshake_and_captures_its_fields() {
        let h = PeerMessage::Handshake {
            reserved: [0, 0, 0, 0, 0, 0x10, 0, 5],
            info_hash: hash(),
            peer_id: *b"-XX0001-abcdefghijkl",
        };
        let got = judge(
            &format!("handshake: {{ torrent: {T} }}\ncapture: {{ pid: peer_id, reserved: bits }}"),
            &h,
        )
        .unwrap();
        assert_eq!(
            got,
            [
                ("pid".to_string(), "-XX0001-abcdefghijkl".to_string()),
                ("bits".into(), "0000000000100005".into())
            ]
        );
        let other = PeerMessage::Handshake {
            reserved: [0; 8],
            info_hash: [1; 20],
            peer_id: [0xff; 20],
        };
        let e = judge(&format!("handshake: {{ torrent: {T} }}"), &other).unwrap_err();
        assert!(e.contains("info-hash is 0101") && e.contains("sever the connection"), "{e}");
        let got = judge(
            "handshake: { info_hash: 0101010101010101010101010101010101010101 }\ncapture: { id: peer_id }",
            &other,
        )
        .unwrap();
        assert_eq!(got[0].1, "ff".repeat(20));
        assert!(judge(&format!("handshake: {{ torrent: {T} }}"), &PeerMessage::Opaque(96))
            .unwrap_err()
            .contains("encrypted"));
        assert!(expect(&STEPS, "message: choke\ncapture: { id: peer_id }")
            .unwrap_err()
            .contains("handshake's fields"));
        assert!(expect(&STEPS, "message: choke\ncapture: { id: nogroup }")
            .unwrap_err()
            .contains("regex with a group"));
    }

    #[test]
    fn expects_all_pieces_from_a_bitfield_or_have_all() {
        let all = format!("pieces: all\ntorrent: {T}");
        assert!(judge(&all, &PeerMessage::Bitfield(vec![0xf8])).is_ok());
        assert!(judge(&all, &PeerMessage::HaveAll).is_ok());
        let e = judge(&all, &PeerMessage::Bitfield(vec![0xe8])).unwrap_err();
        assert_eq!(e, "the bitfield lacks pieces 3 of the 5");
        let e = judge(&all, &PeerMessage::Bitfield(vec![0xfc])).unwrap_err();
        assert!(
            e.contains("Spare bits at the end are set to zero.") && e.contains("11111100"),
            "{e}"
        );
        let e = judge(&all, &PeerMessage::Bitfield(vec![0xf8, 0])).unwrap_err();
        assert!(e.contains("2 bytes; 5 pieces take 1"), "{e}");
        let e = judge(&all, &PeerMessage::Have(2)).unwrap_err();
        assert!(
            e.contains("pieces 0-1, 3-4 are missing") && e.contains("expect: { have: N }"),
            "{e}"
        );
        assert!(judge(&all, &PeerMessage::HaveNone).unwrap_err().contains("none of the 5"));
        assert!(skips(&all, &PeerMessage::Unchoke));
        assert!(!skips(&all, &PeerMessage::Have(1)));
        assert!(skips(&all, &PeerMessage::KeepAlive));
        assert!(expect(&STEPS, "pieces: some").unwrap_err().contains("pieces: all is its one form"));
        assert!(expect(&STEPS, "pieces: all").unwrap_err().contains("needs the torrent"));
    }

    #[test]
    fn expects_a_bitfield_of_the_right_length_with_spare_bits_zero() {
        let bf = format!("bitfield: {{ torrent: {T} }}");
        assert!(judge(&bf, &PeerMessage::Bitfield(vec![0x80])).is_ok());
        assert!(judge(&bf, &PeerMessage::Bitfield(vec![0x84]))
            .unwrap_err()
            .contains("spare bits set"));
        // A peer that announces its pieces otherwise has no bitfield to judge.
        assert!(judge(&bf, &PeerMessage::HaveAll).is_ok());
        assert!(judge(&bf, &PeerMessage::Have(1)).is_ok());
        assert!(judge(&bf, &PeerMessage::Choke)
            .unwrap_err()
            .contains("a choke message, not a bitfield"));
        assert!(!skips(&bf, &PeerMessage::Have(1)));
        assert!(!skips(&bf, &PeerMessage::HaveAll));
        assert!(expect(&STEPS, &format!("bitfield: {{ torrent: {T} }}\ntorrent: {T}"))
            .unwrap_err()
            .contains("torrent goes inside"));
    }

    #[test]
    fn expects_messages_by_name_reading_past_what_comes_any_time() {
        assert!(judge("message: unchoke", &PeerMessage::Unchoke).is_ok());
        assert!(judge("message: not_interested", &PeerMessage::NotInterested).is_ok());
        assert_eq!(
            judge("message: unchoke", &PeerMessage::Choke).unwrap_err(),
            "a choke message, not unchoke"
        );
        assert!(!skips("message: unchoke", &PeerMessage::Unchoke));
        assert!(!skips("message: have", &PeerMessage::Have(1)));
        for m in [
            PeerMessage::KeepAlive,
            PeerMessage::Have(1),
            PeerMessage::Port(1),
            PeerMessage::Bitfield(vec![0]),
            PeerMessage::AllowedFast(1),
            PeerMessage::Interested,
        ] {
            assert!(skips("message: unchoke", &m), "{m:?}");
        }
        assert!(!skips("message: unchoke", &PeerMessage::Choke));
        assert!(expect(&STEPS, "message: hello").unwrap_err().contains("not a peer wire message"));
        assert!(judge("have: 3", &PeerMessage::Have(3)).is_ok());
        assert_eq!(judge("have: 3", &PeerMessage::Have(2)).unwrap_err(), "have 2, not have 3");
    }

    #[test]
    fn expects_a_pieces_exact_bytes_and_says_where_wrong_ones_came_from() {
        let data = sample();
        let want = format!("piece: {{ index: 1, begin: 16384, length: 16384, torrent: {T}, file: {F} }}");
        let piece = |index: u32, begin: u32, bytes: &[u8]| PeerMessage::Piece {
            index,
            begin,
            data: bytes.to_vec(),
        };
        let block = |i: usize, b: usize, l: usize| data[i * 32768 + b..i * 32768 + b + l].to_vec();
        assert!(judge(&want, &piece(1, 16384, &block(1, 16384, 16384))).is_ok());
        let e = judge(&want, &piece(1, 16384, &block(2, 16384, 16384))).unwrap_err();
        assert!(
            e.contains("they are the bytes of piece 2 begin 16384 (an index off by one?)"),
            "{e}"
        );
        assert!(e.contains("differ, the first at offset 0"), "{e}");
        let mut corrupt = block(1, 16384, 16384);
        corrupt[100] ^= 0xff;
        let e = judge(&want, &piece(1, 16384, &corrupt)).unwrap_err();
        assert!(
            e.contains("1 of 16384 bytes differ, the first at offset 100") && e.contains("no other block"),
            "{e}"
        );
        let e = judge(&want, &piece(2, 16384, &block(1, 16384, 16384))).unwrap_err();
        assert!(
            e.contains("piece 2 begin 16384, not piece 1 begin 16384; its bytes are those of piece 1"),
            "{e}"
        );
        let e = judge(&want, &piece(1, 16384, &block(1, 16384, 100))).unwrap_err();
        assert_eq!(e, "the block is 100 bytes, not 16384 (the bytes they share are right)");
        assert_eq!(
            judge(&want, &PeerMessage::Choke).unwrap_err(),
            "the peer choked us: it will not answer the requests it had (BEP 3)"
        );
        let asked = Block {
            index: 1,
            begin: 16384,
            length: 16384,
        };
        assert!(!skips(&want, &PeerMessage::Reject(asked)));
        assert!(judge(&want, &PeerMessage::Reject(asked)).unwrap_err().contains("rejected"));
        assert!(skips(&want, &PeerMessage::Reject(Block { index: 0, ..asked })));
        assert!(skips(&want, &PeerMessage::Unchoke) && skips(&want, &PeerMessage::Bitfield(vec![0xf8])));
        assert!(!skips(&want, &PeerMessage::Choke));
        let any = format!(
            "piece: {{ any_of: [{{ index: 0, begin: 0, length: 16384 }}, {{ index: 4, begin: 16384, length: 2544 }}], torrent: {T}, file: {F} }}"
        );
        assert!(judge(&any, &piece(4, 16384, &data[4 * 32768 + 16384..])).is_ok());
        assert!(judge(&any, &piece(0, 0, &block(0, 0, 16384))).is_ok());
        assert!(judge(&any, &piece(1, 0, &block(0, 0, 16384)))
            .unwrap_err()
            .contains("not piece 0 begin 0 or piece 4 begin 16384"));
    }

    #[test]
    fn rejects_piece_expectations_that_cannot_hold_at_load() {
        let err = |yaml: &str| expect(&STEPS, yaml).unwrap_err();
        assert!(err(&format!("piece: {{ index: 9, begin: 0, length: 1, torrent: {T}, file: {F} }}")).contains("past the last"));
        assert!(err(&format!("piece: {{ index: 0, begin: 0, length: 1, torrent: {T} }}")).contains("(file: FILE)"));
        assert!(err(&format!("piece: {{ any_of: [], torrent: {T}, file: {F} }}")).contains("at least one"));
        assert!(err(&format!("piece: {{ index: 0, any_of: [], torrent: {T}, file: {F} }}")).contains("either one block"));
        let multi = "../fixtures/bittorrent/multi.torrent";
        assert!(err(&format!(
            "piece: {{ index: 0, begin: 0, length: 1, torrent: {multi}, file: ../fixtures/bittorrent/multi/a.txt }}"
        ))
        .contains("holds"));
        let ok = format!(
            "piece: {{ index: 0, begin: 0, length: 1, torrent: {multi}, file: [../fixtures/bittorrent/multi/a.txt, ../fixtures/bittorrent/multi/sub/b.bin] }}"
        );
        assert!(expect(&STEPS, &ok).is_ok());
        let swapped = format!(
            "piece: {{ index: 0, begin: 0, length: 1, torrent: {multi}, file: [../fixtures/bittorrent/multi/sub/b.bin, ../fixtures/bittorrent/multi/a.txt] }}"
        );
        assert!(err(&swapped).contains("does not have the SHA-1"));
    }
}
