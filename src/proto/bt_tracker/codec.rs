//! BitTorrent tracker framing, sans-IO.
//!
//! Over TCP (BEP 3, BEP 23, BEP 48) the HTTP/1 codec frames each message and this one renders
//! it again: a `GET /announce?...` as its decoded parameters, a response by its bencoded body
//! (gzip undone) read as the answer to the request it follows, learnt through `peer_sent` the
//! way HTTP learns a HEAD. Over UDP (BEP 15) one datagram is one message, told apart by its
//! action field and its direction.

use std::collections::VecDeque;
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use percent_encoding::{percent_decode, percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::proto::bittorrent::bencode::{self, Value};
use crate::proto::http::{self, HttpCodec, HttpMessage, StartLine};
use crate::proto::{Codec, CodecError, Direction, Finding, Frame, Level, Message};

/// Most bytes a compressed body may inflate to: a tracker's answer is a few kilobytes, and a
/// body that inflates past this is a bomb, not an answer.
pub const MAX_INFLATED: usize = 1 << 20;

/// The protocol id a BEP 15 connect request opens with.
pub const CONNECT_MAGIC: u64 = 0x0417_2710_1980;

/// The bytes RFC 3986 §2.3 leaves unreserved: everything else in a query value is sent as `%XX`.
pub const QUERY_ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// What an HTTP request asks a tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// `GET .../announce?...` (BEP 3).
    Announce,
    /// `GET .../scrape?...` (BEP 48).
    Scrape,
    /// Anything else: rendered as HTTP renders it.
    Other,
}

/// A peer in an answer: its address as `ip:port` (`[v6]:port`), and its id when the list of
/// dictionaries gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// `ip:port`.
    pub addr: String,
    /// The `peer id` of the dictionary form.
    pub peer_id: Option<Vec<u8>>,
}

/// An HTTP request to a tracker.
#[derive(Debug, Clone)]
pub struct TrackerRequest {
    /// What it asks.
    pub ask: Ask,
    /// The request-target's path (no query).
    pub path: String,
    /// The query's parameters in order, percent-decoded.
    pub params: Vec<(String, Vec<u8>)>,
    /// The HTTP message itself.
    pub http: HttpMessage,
}

impl TrackerRequest {
    /// The first value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

/// An announce answer's fields (BEP 3, BEP 23, BEP 7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnounceReply {
    /// `interval`, when an integer.
    pub interval: Option<i64>,
    /// `complete` (seeders).
    pub complete: Option<i64>,
    /// `incomplete` (leechers).
    pub incomplete: Option<i64>,
    /// `downloaded`, which some trackers add.
    pub downloaded: Option<i64>,
    /// `peers` and `peers6` together, in order.
    pub peers: Vec<Peer>,
    /// Whether `peers` came compact (a string, BEP 23) or as a list of dictionaries; None without `peers`.
    pub compact: Option<bool>,
}

/// One torrent of a scrape answer (BEP 48).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeFile {
    /// The key: the raw 20-byte info-hash.
    pub info_hash: Vec<u8>,
    /// `complete` (seeders).
    pub complete: Option<i64>,
    /// `downloaded` (completed downloads).
    pub downloaded: Option<i64>,
    /// `incomplete` (leechers).
    pub incomplete: Option<i64>,
}

/// What a tracker's bencoded body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `failure reason`, as text.
    Failure(String),
    /// An announce answer.
    Announce(AnnounceReply),
    /// A scrape answer's `files`.
    Scrape(Vec<ScrapeFile>),
    /// A body that is none of those (not bencode, too big, or the answer to another request).
    Other,
}

/// An HTTP response from a tracker.
#[derive(Debug, Clone)]
pub struct TrackerResponse {
    /// What the request it answers asked (guessed from the body when that request was not seen).
    pub answers: Ask,
    /// The body with its Content-Encoding undone.
    pub body: Vec<u8>,
    /// The body decoded, when it is bencode.
    pub bencode: Option<Value>,
    /// What the body says.
    pub answer: Answer,
    /// The HTTP message itself.
    pub http: HttpMessage,
}

/// A BEP 15 announce request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpAnnounce {
    /// The connection id a connect reply gave.
    pub connection: u64,
    /// The transaction id.
    pub transaction: u32,
    /// The info-hash.
    pub info_hash: [u8; 20],
    /// The peer id.
    pub peer_id: [u8; 20],
    /// Bytes downloaded.
    pub downloaded: u64,
    /// Bytes left.
    pub left: u64,
    /// Bytes uploaded.
    pub uploaded: u64,
    /// 0 none, 1 completed, 2 started, 3 stopped.
    pub event: u32,
    /// The IPv4 address to announce (0: the sender's).
    pub ip: u32,
    /// The key.
    pub key: u32,
    /// How many peers are wanted (-1: the tracker's default).
    pub numwant: i32,
    /// The peer's port.
    pub port: u16,
}

/// One torrent of a BEP 15 scrape reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpScrapeEntry {
    /// Seeders.
    pub seeders: u32,
    /// Completed downloads.
    pub completed: u32,
    /// Leechers.
    pub leechers: u32,
}

/// A BEP 15 datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Udp {
    /// A connect request.
    Connect {
        /// Its protocol id (0x41727101980 when right).
        protocol_id: u64,
        /// The transaction id.
        transaction: u32,
    },
    /// An announce request.
    Announce(UdpAnnounce),
    /// A scrape request.
    Scrape {
        /// The connection id.
        connection: u64,
        /// The transaction id.
        transaction: u32,
        /// The info-hashes asked for.
        info_hashes: Vec<[u8; 20]>,
    },
    /// A connect reply.
    Connected {
        /// The transaction id.
        transaction: u32,
        /// The connection id given.
        connection: u64,
    },
    /// An announce reply.
    Announced {
        /// The transaction id.
        transaction: u32,
        /// Seconds until the next announce.
        interval: u32,
        /// Leechers.
        leechers: u32,
        /// Seeders.
        seeders: u32,
        /// The peers.
        peers: Vec<Peer>,
    },
    /// A scrape reply.
    Scraped {
        /// The transaction id.
        transaction: u32,
        /// One entry per info-hash asked, in order.
        files: Vec<UdpScrapeEntry>,
    },
    /// An error reply.
    Error {
        /// The transaction id.
        transaction: u32,
        /// The message.
        message: String,
    },
    /// A datagram shorter than its action needs: only its header could be read.
    Short {
        /// Its action.
        action: u32,
        /// Its transaction id.
        transaction: u32,
        /// Whether it is a reply.
        reply: bool,
    },
}

impl Udp {
    /// The transaction id.
    pub fn transaction(&self) -> u32 {
        match self {
            Udp::Connect { transaction, .. }
            | Udp::Scrape { transaction, .. }
            | Udp::Connected { transaction, .. }
            | Udp::Announced { transaction, .. }
            | Udp::Scraped { transaction, .. }
            | Udp::Error { transaction, .. }
            | Udp::Short { transaction, .. } => *transaction,
            Udp::Announce(a) => a.transaction,
        }
    }

    /// The action field: 0 connect, 1 announce, 2 scrape, 3 error.
    pub fn action(&self) -> u32 {
        match self {
            Udp::Connect { .. } | Udp::Connected { .. } => 0,
            Udp::Announce(_) | Udp::Announced { .. } => 1,
            Udp::Scrape { .. } | Udp::Scraped { .. } => 2,
            Udp::Error { .. } => 3,
            Udp::Short { action, .. } => *action,
        }
    }

    /// Whether the tracker sent it.
    pub fn is_reply(&self) -> bool {
        match self {
            Udp::Connect { .. } | Udp::Announce(_) | Udp::Scrape { .. } => false,
            Udp::Short { reply, .. } => *reply,
            _ => true,
        }
    }

    /// The datagram's bytes (BEP 15's layouts, big-endian). A short one has only its header.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Udp::Connect { protocol_id, transaction } => {
                out.extend(protocol_id.to_be_bytes());
                out.extend(0u32.to_be_bytes());
                out.extend(transaction.to_be_bytes());
            }
            Udp::Announce(a) => {
                out.extend(a.connection.to_be_bytes());
                out.extend(1u32.to_be_bytes());
                out.extend(a.transaction.to_be_bytes());
                out.extend(a.info_hash);
                out.extend(a.peer_id);
                out.extend(a.downloaded.to_be_bytes());
                out.extend(a.left.to_be_bytes());
                out.extend(a.uploaded.to_be_bytes());
                out.extend(a.event.to_be_bytes());
                out.extend(a.ip.to_be_bytes());
                out.extend(a.key.to_be_bytes());
                out.extend(a.numwant.to_be_bytes());
                out.extend(a.port.to_be_bytes());
            }
            Udp::Scrape {
                connection,
                transaction,
                info_hashes,
            } => {
                out.extend(connection.to_be_bytes());
                out.extend(2u32.to_be_bytes());
                out.extend(transaction.to_be_bytes());
                info_hashes.iter().for_each(|h| out.extend(h));
            }
            Udp::Connected { transaction, connection } => {
                out.extend(0u32.to_be_bytes());
                out.extend(transaction.to_be_bytes());
                out.extend(connection.to_be_bytes());
            }
            Udp::Announced {
                transaction,
                interval,
                leechers,
                seeders,
                peers,
            } => {
                out.extend(1u32.to_be_bytes());
                out.extend(transaction.to_be_bytes());
                out.extend(interval.to_be_bytes());
                out.extend(leechers.to_be_bytes());
                out.extend(seeders.to_be_bytes());
                for p in peers {
                    if let Ok(a) = p.addr.parse::<std::net::SocketAddr>() {
                        match a.ip() {
                            std::net::IpAddr::V4(ip) => out.extend(ip.octets()),
                            std::net::IpAddr::V6(ip) => out.extend(ip.octets()),
                        }
                        out.extend(a.port().to_be_bytes());
                    }
                }
            }
            Udp::Scraped { transaction, files } => {
                out.extend(2u32.to_be_bytes());
                out.extend(transaction.to_be_bytes());
                for f in files {
                    out.extend(f.seeders.to_be_bytes());
                    out.extend(f.completed.to_be_bytes());
                    out.extend(f.leechers.to_be_bytes());
                }
            }
            Udp::Error { transaction, message } => {
                out.extend(3u32.to_be_bytes());
                out.extend(transaction.to_be_bytes());
                out.extend(message.as_bytes());
            }
            Udp::Short {
                action,
                transaction,
                reply,
            } => {
                if !reply {
                    out.extend(0u64.to_be_bytes());
                }
                out.extend(action.to_be_bytes());
                out.extend(transaction.to_be_bytes());
            }
        }
        out
    }
}

/// What a framed tracker message carries for structured checks.
#[derive(Debug, Clone)]
pub enum Tracker {
    /// An HTTP request.
    Request(TrackerRequest),
    /// An HTTP response.
    Response(TrackerResponse),
    /// A BEP 15 datagram.
    Udp(UdpFrame),
}

/// A BEP 15 datagram with what the requests sent on its conversation tell of it.
#[derive(Debug, Clone)]
pub struct UdpFrame {
    /// The datagram.
    pub msg: Udp,
    /// For a reply, whether its transaction id is one a request sent on this conversation had;
    /// None when those requests are unknown (a capture's datagrams are framed one by one).
    pub matched: Option<bool>,
    /// For a scrape reply, the info-hashes the scrape with its transaction id asked for, in
    /// order: BEP 15's entries follow them and do not name them.
    pub asked: Vec<[u8; 20]>,
}

fn must(rule: &'static str, text: impl Into<String>) -> Finding {
    Finding {
        level: Level::Must,
        rule,
        text: text.into(),
    }
}

/// An info-hash or peer id for a transcript: quoted when it is printable text, else hex.
pub fn id_text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(t) if !t.is_empty() && t.chars().all(|c| !c.is_control() && c != '\u{fffd}') => format!("{t:?}"),
        _ => bencode::hex(b),
    }
}

/// Another parameter's value: as it is when it is a plain word, quoted when it is other text,
/// `0x` and hex when it is binary.
fn value_text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(t) if !t.is_empty() && t.bytes().all(|c| c.is_ascii_graphic() && c != b'"') => t.to_string(),
        Ok(t) if t.chars().all(|c| !c.is_control()) => format!("{t:?}"),
        _ => format!("0x{}", bencode::hex(b)),
    }
}

/// The query `params` percent-encoded byte by byte: unreserved bytes as they are, every other
/// `%XX` (BEP 3: info_hash and peer_id are raw bytes, "almost certainly" escaped).
pub fn encode_query(params: &[(String, Vec<u8>)]) -> String {
    params
        .iter()
        .map(|(n, v)| {
            format!(
                "{}={}",
                percent_encode(n.as_bytes(), QUERY_ESCAPED),
                percent_encode(v, QUERY_ESCAPED)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A request-target's path and its query's parameters, percent-decoded (a `%` not followed by
/// two hex digits is kept as it is). `+` is not a space here: BEP 3 escapes bytes, not forms.
pub fn split_target(target: &str) -> (String, Vec<(String, Vec<u8>)>) {
    // An absolute-form target (to a proxy) still names the same path.
    let target = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (
                String::from_utf8_lossy(&percent_decode(n.as_bytes()).collect::<Vec<u8>>()).into_owned(),
                percent_decode(v.as_bytes()).collect(),
            )
        })
        .collect();
    (path.to_string(), params)
}

/// What a GET to `path` asks: BEP 48 finds the scrape URL by replacing `announce` in the last
/// path component with `scrape`, so the last component says which.
pub fn ask_of(method: &str, path: &str) -> Ask {
    let last = path.rsplit('/').next().unwrap_or("");
    match method {
        "GET" if last.starts_with("announce") => Ask::Announce,
        "GET" if last.starts_with("scrape") => Ask::Scrape,
        _ => Ask::Other,
    }
}

/// Parameters shown first, in this order; the rest follow in the order they came.
const ANNOUNCE_ORDER: &[&str] = &[
    "info_hash",
    "peer_id",
    "port",
    "uploaded",
    "downloaded",
    "left",
    "event",
    "compact",
    "numwant",
];

/// The request's line: `announce info_hash <hex> peer_id "..." port 6001 ...` or `scrape info_hash <hex> <hex>`;
/// a parameter given more than once has its values after one name.
fn request_line(r: &TrackerRequest) -> String {
    let mut names: Vec<&str> = ANNOUNCE_ORDER
        .iter()
        .copied()
        .filter(|n| r.params.iter().any(|(p, _)| p == n))
        .collect();
    for (n, _) in &r.params {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    let mut s = String::from(match r.ask {
        Ask::Scrape => "scrape",
        _ => "announce",
    });
    for n in names {
        s.push(' ');
        s.push_str(&value_text(n.as_bytes()));
        for (_, v) in r.params.iter().filter(|(p, _)| p == n) {
            s.push(' ');
            s.push_str(&match n {
                "info_hash" => bencode::hex(v),
                "peer_id" => id_text(v),
                _ => value_text(v),
            });
        }
    }
    s
}

/// An HTTP message's own rendering, the request-target's query left out (the first line has it
/// decoded), as the lines under the tracker's.
fn http_lines(m: &HttpMessage) -> String {
    let mut m = m.clone();
    if let StartLine::Request { target, .. } = &mut m.start {
        if let Some(q) = target.find('?') {
            target.truncate(q);
            target.push_str("?…");
        }
    }
    http::render(&m)
}

/// A peer's address from its IP and port.
fn addr(ip: std::net::IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// Peers from a compact string of `size`-byte entries (BEP 23: 4 address bytes then 2 port
/// bytes; BEP 7 and BEP 15 over IPv6: 16 then 2); a cut entry at the end is left out.
pub fn compact_peers(b: &[u8], size: usize) -> Vec<Peer> {
    b.chunks_exact(size)
        .map(|c| {
            let (ip, port) = c.split_at(size - 2);
            let port = u16::from_be_bytes([port[0], port[1]]);
            let ip = match <[u8; 4]>::try_from(ip) {
                Ok(v4) => std::net::IpAddr::V4(Ipv4Addr::from(v4)),
                Err(_) => std::net::IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).unwrap_or([0; 16]))),
            };
            Peer {
                addr: addr(ip, port),
                peer_id: None,
            }
        })
        .collect()
}

/// Peers as a transcript shows them: `ip:port`, `(peer id)` after it when given.
pub fn peers_text(peers: &[Peer]) -> String {
    if peers.is_empty() {
        return "none".into();
    }
    peers
        .iter()
        .map(|p| match &p.peer_id {
            Some(id) => format!("{} ({})", p.addr, id_text(id)),
            None => p.addr.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads `peers` (either form) and `peers6` of an announce answer, with the findings their
/// forms break.
fn read_peers(d: &Value, findings: &mut Vec<Finding>) -> (Vec<Peer>, Option<bool>) {
    let mut peers = Vec::new();
    let mut compact = None;
    match d.get("peers").map(|v| &v.kind) {
        Some(bencode::Kind::Bytes(b)) => {
            compact = Some(true);
            if b.len() % 6 != 0 {
                findings.push(must(
                    "BEP 23",
                    format!(
                        "the compact peers string is {} bytes, not a multiple of 6 (4 address bytes and 2 port bytes a peer)",
                        b.len()
                    ),
                ));
            }
            peers.extend(compact_peers(b, 6));
        }
        Some(bencode::Kind::List(items)) => {
            compact = Some(false);
            for (i, item) in items.iter().enumerate() {
                let ip = item.get("ip").and_then(Value::str);
                let port = item.get("port").and_then(Value::int).and_then(|p| u16::try_from(p).ok());
                match (ip, port) {
                    (Some(ip), Some(port)) => peers.push(Peer {
                        addr: match ip.parse::<std::net::IpAddr>() {
                            Ok(a) => addr(a, port),
                            Err(_) => format!("{ip}:{port}"),
                        },
                        peer_id: item.get("peer id").and_then(Value::bytes).map(<[u8]>::to_vec),
                    }),
                    _ => findings.push(must(
                        "BEP 3",
                        format!(
                            "peer {i} of the list is {}: each is a dictionary with ip (a string) and port (an integer)",
                            item.render()
                        ),
                    )),
                }
            }
        }
        Some(_) => findings.push(must(
            "BEP 3",
            "peers is neither a list of dictionaries nor a compact string (BEP 23)",
        )),
        None => {}
    }
    if let Some(b) = d.get("peers6").and_then(Value::bytes) {
        if b.len() % 18 != 0 {
            findings.push(must(
                "BEP 7",
                format!(
                    "the compact peers6 string is {} bytes, not a multiple of 18 (16 address bytes and 2 port bytes a peer)",
                    b.len()
                ),
            ));
        }
        peers.extend(compact_peers(b, 18));
    }
    (peers, compact)
}

/// The body with its Content-Encoding undone, at most [`MAX_INFLATED`] bytes: Err(finding)
/// when it does not decode, Ok(None) when it is too big or in an encoding not undone here.
fn content_decoded(m: &HttpMessage) -> Result<Option<Vec<u8>>, Finding> {
    let coding = m.field("Content-Encoding").unwrap_or_default().trim().to_ascii_lowercase();
    let reader: Box<dyn Read + '_> = match coding.as_str() {
        "" | "identity" => return Ok(Some(m.body.clone())),
        // RFC 9110 §8.4.1.3: x-gzip is gzip.
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(m.body.as_slice())),
        "deflate" => Box::new(flate2::read::ZlibDecoder::new(m.body.as_slice())),
        _ => return Ok(None),
    };
    let mut out = Vec::new();
    match reader.take(MAX_INFLATED as u64 + 1).read_to_end(&mut out) {
        Ok(_) if out.len() > MAX_INFLATED => Ok(None),
        Ok(_) => Ok(Some(out)),
        Err(e) => Err(must(
            "RFC 9110 §8.4.1",
            format!("the body says Content-Encoding {coding} but does not decode as that: {e}"),
        )),
    }
}

/// What a body without a request to go by answers: its keys tell.
fn guess(v: &Value) -> Ask {
    if v.get("files").is_some() {
        Ask::Scrape
    } else if v.get("interval").is_some() || v.get("peers").is_some() || v.get("failure reason").is_some() {
        Ask::Announce
    } else {
        Ask::Other
    }
}

/// Reads a response's body as a tracker's answer: the answer, its first line, and the findings.
fn read_answer(m: &HttpMessage, asked: Option<Ask>) -> (TrackerResponse, Option<String>, Vec<Finding>) {
    let status = m.status().unwrap_or(0);
    let mut findings = Vec::new();
    let mut resp = TrackerResponse {
        answers: asked.unwrap_or(Ask::Other),
        body: Vec::new(),
        bencode: None,
        answer: Answer::Other,
        http: m.clone(),
    };
    let body = match content_decoded(m) {
        Ok(Some(b)) => b,
        Ok(None) => {
            let line = (asked.is_some_and(|a| a != Ask::Other)).then(|| {
                format!(
                    "{status} body not decoded (Content-Encoding {}, or over {} KiB inflated)",
                    m.field("Content-Encoding").unwrap_or_default(),
                    MAX_INFLATED >> 10
                )
            });
            return (resp, line, findings);
        }
        Err(f) => {
            findings.push(f);
            return (resp, None, findings);
        }
    };
    let decoded = bencode::decode(&body);
    resp.body = body;
    let (v, notes) = match decoded {
        Ok((v, notes)) if v.dict().is_some() => (v, notes),
        other => {
            let asks = asked.unwrap_or(Ask::Other);
            // A 4xx or 5xx (or another request's answer) may be anything; an answer to an
            // announce or a scrape is a bencoded dictionary (BEP 3).
            if asks != Ask::Other && (200..300).contains(&status) {
                let why = match other {
                    Ok((v, _)) => format!("bencode but not a dictionary ({})", v.render()),
                    Err(e) => format!("not bencode ({e})"),
                };
                findings.push(must(
                    "BEP 3",
                    format!("the body is {why}: a tracker answers with a bencoded dictionary"),
                ));
                resp.answers = asks;
                let line = format!("{status} not bencode: {}", http::body_summary(&resp.body));
                return (resp, Some(line), findings);
            }
            return (resp, None, findings);
        }
    };
    let asks = asked.unwrap_or_else(|| guess(&v));
    resp.answers = asks;
    if !notes.is_empty() {
        let list: Vec<String> = notes.iter().take(3).map(|n| format!("byte {}: {}", n.offset, n.what)).collect();
        findings.push(must(
            "BEP 3",
            format!(
                "the bencoded body is not canonical ({}{}): keys must be strings and appear in sorted order, integers have no leading zeros",
                list.join("; "),
                if notes.len() > 3 { "; …" } else { "" }
            ),
        ));
    }
    let line;
    if let Some(reason) = v.get("failure reason") {
        let text = reason.str().map_or_else(|| reason.render(), str::to_string);
        line = format!("{status} failure reason {}", bencode::render_bytes(text.as_bytes()));
        resp.answer = Answer::Failure(text);
    } else if asks == Ask::Announce {
        let (peers, compact) = read_peers(&v, &mut findings);
        let int = |k: &str| v.get(k).and_then(Value::int);
        let missing: Vec<&str> = [("interval", int("interval").is_none()), ("peers", v.get("peers").is_none())]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(k, _)| *k)
            .collect();
        if !missing.is_empty() {
            findings.push(must(
                "BEP 3",
                format!(
                    "an announce answer without 'failure reason' has 'interval' (an integer) and 'peers'; this one lacks {}",
                    missing.join(" and ")
                ),
            ));
        }
        let mut parts = Vec::new();
        for k in ["interval", "min interval", "complete", "incomplete", "downloaded"] {
            if let Some(x) = v.get(k) {
                parts.push(format!("{k} {}", x.render()));
            }
        }
        for (k, x) in v.dict().unwrap_or_default() {
            let known = [
                "interval",
                "min interval",
                "complete",
                "incomplete",
                "downloaded",
                "peers",
                "peers6",
            ];
            if !known.iter().any(|n| n.as_bytes() == k.as_slice()) {
                parts.push(format!("{} {}", String::from_utf8_lossy(k), x.render()));
            }
        }
        if v.get("peers").is_some() || v.get("peers6").is_some() {
            parts.push(format!("peers {}", peers_text(&peers)));
        }
        line = format!("{status} announce: {}", parts.join(", "));
        resp.answer = Answer::Announce(AnnounceReply {
            interval: int("interval"),
            complete: int("complete"),
            incomplete: int("incomplete"),
            downloaded: int("downloaded"),
            peers,
            compact,
        });
    } else if asks == Ask::Scrape {
        let mut files = Vec::new();
        let mut parts = Vec::new();
        match v.get("files").and_then(Value::dict) {
            Some(pairs) if !pairs.is_empty() => {
                for (hash, stats) in pairs {
                    let int = |k: &str| stats.get(k).and_then(Value::int);
                    let f = ScrapeFile {
                        info_hash: hash.clone(),
                        complete: int("complete"),
                        downloaded: int("downloaded"),
                        incomplete: int("incomplete"),
                    };
                    let mut s = bencode::hex(hash);
                    for k in ["complete", "downloaded", "incomplete"] {
                        if let Some(x) = stats.get(k) {
                            s.push_str(&format!(" {k} {}", x.render()));
                        }
                    }
                    parts.push(s);
                    files.push(f);
                }
            }
            Some(_) => parts.push("no files".into()),
            None => parts.push("no files dictionary".into()),
        }
        for (k, x) in v.dict().unwrap_or_default() {
            if k != b"files" {
                parts.push(format!("{} {}", String::from_utf8_lossy(k), x.render()));
            }
        }
        line = format!("{status} scrape: {}", parts.join(", "));
        resp.answer = Answer::Scrape(files);
    } else {
        line = format!("{status} {}", v.render());
    }
    resp.bencode = Some(v);
    (resp, Some(line), findings)
}

/// Frames HTTP tracker requests (client to server) or responses, on top of the HTTP/1 codec.
pub struct HttpTrackerCodec {
    http: HttpCodec,
    request: bool,
    /// What the requests sent the other way asked, oldest first, until answered.
    asked: VecDeque<Ask>,
    peer_buf: Vec<u8>,
}

impl HttpTrackerCodec {
    /// A codec for requests (`dir` client to server) or responses.
    pub fn new(dir: Direction) -> HttpTrackerCodec {
        let request = dir == Direction::ClientToServer;
        HttpTrackerCodec {
            http: HttpCodec::new(request),
            request,
            asked: VecDeque::new(),
            peer_buf: Vec::new(),
        }
    }
}

impl Codec for HttpTrackerCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let (m, used) = match self.http.decode(buf, eof)? {
            Frame::Incomplete => return Ok(Frame::Incomplete),
            Frame::Message(m, used) => (m, used),
        };
        let Some(h) = m.detail.as_ref().and_then(|d| d.downcast_ref::<HttpMessage>()).cloned() else {
            return Ok(Frame::Message(m, used));
        };
        let mut findings = m.findings.clone();
        let (line, detail) = match &h.start {
            StartLine::Request { method, target } => {
                let (path, params) = split_target(target);
                let r = TrackerRequest {
                    ask: ask_of(method, &path),
                    path,
                    params,
                    http: h.clone(),
                };
                ((r.ask != Ask::Other).then(|| request_line(&r)), Tracker::Request(r))
            }
            StartLine::Response { status, .. } => {
                // An interim response answers nothing yet (RFC 9110 §15.2).
                let interim = (100..200).contains(status) && *status != 101;
                let asked = match interim {
                    true => self.asked.front().copied(),
                    false => self.asked.pop_front(),
                };
                let (resp, line, f) = read_answer(&h, asked);
                findings.extend(f);
                (line.filter(|_| !interim), Tracker::Response(resp))
            }
        };
        let (text, summary) = match line {
            Some(l) => (l.clone(), format!("{l}\n  {}", http_lines(&h))),
            None => (m.text.clone(), m.summary.clone()),
        };
        Ok(Frame::Message(
            Message {
                text,
                summary,
                findings,
                detail: Some(Arc::new(detail)),
            },
            used,
        ))
    }

    fn peer_sent(&mut self, bytes: &[u8]) {
        self.http.peer_sent(bytes);
        if self.request {
            return;
        }
        self.peer_buf.extend_from_slice(bytes);
        let mut requests = HttpCodec::new(true);
        loop {
            match requests.decode(&self.peer_buf, false) {
                Ok(Frame::Message(m, used)) => {
                    let ask = match m.detail.as_ref().and_then(|d| d.downcast_ref::<HttpMessage>()).map(|h| &h.start) {
                        Some(StartLine::Request { method, target }) => ask_of(method, &split_target(target).0),
                        _ => Ask::Other,
                    };
                    self.asked.push_back(ask);
                    self.peer_buf.drain(..used);
                }
                Ok(Frame::Incomplete) => break,
                Err(_) => {
                    // Deliberately malformed requests still get one response each, as in HTTP's codec.
                    self.asked.push_back(Ask::Other);
                    self.peer_buf.clear();
                    break;
                }
            }
        }
    }
}

/// Requests remembered per conversation, to tell whether a reply's transaction id is one sent.
const REMEMBERED: usize = 64;

/// Frames BEP 15 datagrams of one direction: requests from the client, replies from the tracker.
pub struct UdpTrackerCodec {
    dir: Direction,
    /// Transaction ids of the requests the client sent, with a scrape's info-hashes, newest last.
    sent: VecDeque<(u32, Vec<[u8; 20]>)>,
    /// Whether any request was seen going the other way (a capture's codec sees none).
    told: bool,
}

impl UdpTrackerCodec {
    /// A codec for datagrams travelling `dir`.
    pub fn new(dir: Direction) -> UdpTrackerCodec {
        UdpTrackerCodec {
            dir,
            sent: VecDeque::new(),
            told: false,
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map_or(0, u64::from_be_bytes)
}

fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2).map_or(0, |s| u16::from_be_bytes([s[0], s[1]]))
}

fn twenty(b: &[u8], at: usize) -> [u8; 20] {
    b.get(at..at + 20).and_then(|s| <[u8; 20]>::try_from(s).ok()).unwrap_or([0; 20])
}

/// The name BEP 15 gives an announce's event number.
pub fn event_name(e: u32) -> String {
    match e {
        0 => "none".into(),
        1 => "completed".into(),
        2 => "started".into(),
        3 => "stopped".into(),
        n => n.to_string(),
    }
}

const ACTIONS: [&str; 4] = ["connect", "announce", "scrape", "error"];

/// Reads one BEP 15 datagram travelling `dir`: the message and the findings its length shows.
pub fn parse_udp(b: &[u8], dir: Direction) -> Result<(Udp, Vec<Finding>), CodecError> {
    let reply = dir == Direction::ServerToClient;
    let header = if reply { 8 } else { 16 };
    if b.len() < header {
        return Err(CodecError {
            offset: b.len(),
            reason: format!(
                "a datagram of {} bytes: every BEP 15 {} starts with {header} bytes ({})",
                b.len(),
                if reply { "reply" } else { "request" },
                if reply {
                    "action, transaction id"
                } else {
                    "connection id, action, transaction id"
                }
            ),
        });
    }
    let base = header - 8;
    let (action, transaction) = (be32(b, base), be32(b, base + 4));
    let who = if reply { "reply" } else { "request" };
    let Some(name) = ACTIONS.get(action as usize).filter(|_| reply || action < 3) else {
        return Err(CodecError {
            offset: base,
            reason: format!(
                "action {action} is none of BEP 15's ({})",
                if reply {
                    "0 connect, 1 announce, 2 scrape, 3 error"
                } else {
                    "0 connect, 1 announce, 2 scrape"
                }
            ),
        });
    };
    let need = match (reply, action) {
        (false, 0) => 16,
        (false, 1) => 98,
        (false, _) => 16,
        (true, 0) => 16,
        (true, 1) => 20,
        (true, _) => 8,
    };
    let mut findings = Vec::new();
    if b.len() < need {
        findings.push(must(
            "BEP 15",
            format!("a {name} {who} of {} bytes: BEP 15's layout has {need}", b.len()),
        ));
        return Ok((
            Udp::Short {
                action,
                transaction,
                reply,
            },
            findings,
        ));
    }
    let entries = |size: usize, what: &str, findings: &mut Vec<Finding>| {
        let rest = b.len() - need;
        if rest % size != 0 {
            findings.push(must(
                "BEP 15",
                format!("a {name} {who} of {} bytes: after its {need}-byte header come {what} of {size} bytes each, and {rest} is not a multiple of {size}", b.len()),
            ));
        }
    };
    let udp = match (reply, action) {
        (false, 0) => Udp::Connect {
            protocol_id: be64(b, 0),
            transaction,
        },
        (false, 1) => Udp::Announce(UdpAnnounce {
            connection: be64(b, 0),
            transaction,
            info_hash: twenty(b, 16),
            peer_id: twenty(b, 36),
            downloaded: be64(b, 56),
            left: be64(b, 64),
            uploaded: be64(b, 72),
            event: be32(b, 80),
            ip: be32(b, 84),
            key: be32(b, 88),
            numwant: be32(b, 92) as i32,
            port: be16(b, 96),
        }),
        (false, _) => {
            entries(20, "info-hashes", &mut findings);
            Udp::Scrape {
                connection: be64(b, 0),
                transaction,
                info_hashes: b[16..].chunks_exact(20).map(|c| twenty(c, 0)).collect(),
            }
        }
        (true, 0) => Udp::Connected {
            transaction,
            connection: be64(b, 8),
        },
        (true, 1) => {
            let rest = &b[20..];
            // Peers are 6 bytes each over IPv4 and 18 over IPv6 (BEP 15, by the announce's
            // address family, which a codec does not see): 6 unless only 18 fits.
            let size = if rest.len() % 6 != 0 && rest.len() % 18 == 0 { 18 } else { 6 };
            entries(size, "peers", &mut findings);
            Udp::Announced {
                transaction,
                interval: be32(b, 8),
                leechers: be32(b, 12),
                seeders: be32(b, 16),
                peers: compact_peers(rest, size),
            }
        }
        (true, 2) => {
            entries(12, "torrents (seeders, completed, leechers)", &mut findings);
            Udp::Scraped {
                transaction,
                files: b[8..]
                    .chunks_exact(12)
                    .map(|c| UdpScrapeEntry {
                        seeders: be32(c, 0),
                        completed: be32(c, 4),
                        leechers: be32(c, 8),
                    })
                    .collect(),
            }
        }
        (true, _) => Udp::Error {
            transaction,
            message: String::from_utf8_lossy(&b[8..]).into_owned(),
        },
    };
    if let Udp::Connect { protocol_id, .. } = udp {
        if protocol_id != CONNECT_MAGIC {
            findings.push(must(
                "BEP 15",
                format!("a connect request's protocol id is {CONNECT_MAGIC:#x}, not {protocol_id:#x}"),
            ));
        }
    }
    Ok((udp, findings))
}

/// A BEP 15 datagram as a transcript line.
pub fn udp_line(u: &Udp) -> String {
    match u {
        Udp::Connect { protocol_id, transaction } if *protocol_id == CONNECT_MAGIC => format!("connect tid {transaction:#x}"),
        Udp::Connect { protocol_id, transaction } => format!("connect tid {transaction:#x} protocol_id {protocol_id:#x}"),
        Udp::Announce(a) => {
            let mut s = format!(
                "announce cid {:#018x} tid {:#x} info_hash {} peer_id {} uploaded {} downloaded {} left {} event {} port {} numwant {}",
                a.connection,
                a.transaction,
                bencode::hex(&a.info_hash),
                id_text(&a.peer_id),
                a.uploaded,
                a.downloaded,
                a.left,
                event_name(a.event),
                a.port,
                a.numwant
            );
            if a.ip != 0 {
                s.push_str(&format!(" ip {}", Ipv4Addr::from(a.ip)));
            }
            if a.key != 0 {
                s.push_str(&format!(" key {:#x}", a.key));
            }
            s
        }
        Udp::Scrape {
            connection,
            transaction,
            info_hashes,
        } => {
            let hashes: Vec<String> = info_hashes.iter().map(|h| bencode::hex(h)).collect();
            format!("scrape cid {connection:#018x} tid {transaction:#x} info_hash {}", hashes.join(" "))
                .trim_end()
                .to_string()
        }
        Udp::Connected { transaction, connection } => format!("connected tid {transaction:#x} cid {connection:#018x}"),
        Udp::Announced {
            transaction,
            interval,
            leechers,
            seeders,
            peers,
        } => format!(
            "announced tid {transaction:#x} interval {interval} leechers {leechers} seeders {seeders} peers {}",
            peers_text(peers)
        ),
        Udp::Scraped { transaction, files } => {
            let f: Vec<String> = files
                .iter()
                .map(|f| format!("seeders {} completed {} leechers {}", f.seeders, f.completed, f.leechers))
                .collect();
            format!("scraped tid {transaction:#x} {}", f.join(", ")).trim_end().to_string()
        }
        Udp::Error { transaction, message } => format!("error tid {transaction:#x} {:?}", message),
        Udp::Short {
            action,
            transaction,
            reply,
        } => {
            let name = match (reply, *action) {
                (true, 0) => "connected",
                (true, 1) => "announced",
                (true, 2) => "scraped",
                (_, a) => ACTIONS.get(a as usize).copied().unwrap_or("?"),
            };
            format!("{name} tid {transaction:#x} (cut short)")
        }
    }
}

impl Codec for UdpTrackerCodec {
    fn decode(&mut self, buf: &[u8], _eof: bool) -> Result<Frame, CodecError> {
        let (udp, findings) = parse_udp(buf, self.dir)?;
        let line = udp_line(&udp);
        let tid = udp.transaction();
        let request = self.sent.iter().rev().find(|(t, _)| *t == tid);
        let matched = (udp.is_reply() && self.told).then_some(request.is_some());
        let asked = match (&udp, request) {
            (Udp::Scraped { .. }, Some((_, hashes))) => hashes.clone(),
            _ => Vec::new(),
        };
        Ok(Frame::Message(
            Message {
                text: line.clone(),
                summary: line,
                findings,
                detail: Some(Arc::new(Tracker::Udp(UdpFrame { msg: udp, matched, asked }))),
            },
            buf.len(),
        ))
    }

    fn peer_sent(&mut self, bytes: &[u8]) {
        if self.dir != Direction::ServerToClient {
            return;
        }
        self.told = true;
        if let Ok((u, _)) = parse_udp(bytes, Direction::ClientToServer) {
            if self.sent.len() == REMEMBERED {
                self.sent.pop_front();
            }
            let hashes = match &u {
                Udp::Scrape { info_hashes, .. } => info_hashes.clone(),
                _ => Vec::new(),
            };
            self.sent.push_back((u.transaction(), hashes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::bittorrent::bencode::Build;

    const HASH: &str = "978d8983bd506915a578f583b1e9a3ff32c1c7b2";

    fn hash() -> Vec<u8> {
        bencode::unhex(HASH).unwrap()
    }

    fn announce_request(extra: &str) -> Vec<u8> {
        let q = encode_query(&[
            ("info_hash".into(), hash()),
            ("peer_id".into(), b"-WC0001-000000000001".to_vec()),
            ("port".into(), b"6001".to_vec()),
            ("uploaded".into(), b"0".to_vec()),
            ("downloaded".into(), b"0".to_vec()),
            ("left".into(), b"150000".to_vec()),
            ("event".into(), b"started".to_vec()),
            ("compact".into(), b"1".to_vec()),
        ]);
        format!("GET /announce?{q}{extra} HTTP/1.1\r\nHost: 127.0.0.1:6969\r\nConnection: close\r\n\r\n").into_bytes()
    }

    fn response(body: &[u8], headers: &str) -> Vec<u8> {
        let mut r = format!("HTTP/1.1 200 OK\r\n{headers}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        r.extend_from_slice(body);
        r
    }

    fn one(c: &mut dyn Codec, buf: &[u8]) -> (Message, usize) {
        match c.decode(buf, false).unwrap() {
            Frame::Message(m, used) => (m, used),
            Frame::Incomplete => panic!("incomplete: {}", String::from_utf8_lossy(buf)),
        }
    }

    fn answer(m: &Message) -> &TrackerResponse {
        match m.detail.as_ref().unwrap().downcast_ref::<Tracker>().unwrap() {
            Tracker::Response(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn after(request: &[u8]) -> HttpTrackerCodec {
        let mut c = HttpTrackerCodec::new(Direction::ServerToClient);
        c.peer_sent(request);
        c
    }

    fn compact_answer() -> Vec<u8> {
        Build::dict([
            ("interval", Build::Int(1800)),
            ("complete", Build::Int(1)),
            ("incomplete", Build::Int(0)),
            ("peers", Build::Bytes(vec![127, 0, 0, 1, 0x17, 0x71, 127, 0, 0, 1, 0x17, 0x72])),
        ])
        .encode()
    }

    #[test]
    fn parses_an_announce_into_its_decoded_parameters() {
        let wire = announce_request("&numwant=50&key=ab%20c&no_peer_id=1");
        let (m, used) = one(&mut HttpTrackerCodec::new(Direction::ClientToServer), &wire);
        assert_eq!(used, wire.len());
        assert_eq!(
            m.text,
            format!(
                "announce info_hash {HASH} peer_id \"-WC0001-000000000001\" port 6001 uploaded 0 downloaded 0 left 150000 \
                 event started compact 1 numwant 50 key \"ab c\" no_peer_id 1"
            )
        );
        assert!(
            m.summary.contains("\n  GET /announce?… HTTP/1.1\n  Host: 127.0.0.1:6969"),
            "{}",
            m.summary
        );
        let Some(Tracker::Request(r)) = m.detail.as_ref().unwrap().downcast_ref::<Tracker>() else {
            panic!()
        };
        assert_eq!((r.ask, r.param("info_hash")), (Ask::Announce, Some(hash().as_slice())));
        // A binary peer id is hex; another request is HTTP's own rendering.
        let wire = b"GET /announce?peer_id=%00%01&info_hash=%41 HTTP/1.1\r\n\r\n";
        let (m, _) = one(&mut HttpTrackerCodec::new(Direction::ClientToServer), wire);
        assert_eq!(m.text, "announce info_hash 41 peer_id 0001");
        let (m, _) = one(
            &mut HttpTrackerCodec::new(Direction::ClientToServer),
            b"GET /favicon.ico HTTP/1.1\r\n\r\n",
        );
        assert_eq!(m.text, "GET /favicon.ico HTTP/1.1");
    }

    #[test]
    fn parses_a_scrape_and_its_answer() {
        let other = "2175addea59de6998d3a0877a7b958d6bd662235";
        let req = format!(
            "GET /scrape?info_hash=%97%8d%89%83%bd%50%69%15%a5%78%f5%83%b1%e9%a3%ff%32%c1%c7%b2&info_hash={} HTTP/1.1\r\n\r\n",
            encode_query(&[("x".into(), bencode::unhex(other).unwrap())]).trim_start_matches("x=")
        );
        let (m, _) = one(&mut HttpTrackerCodec::new(Direction::ClientToServer), req.as_bytes());
        assert_eq!(m.text, format!("scrape info_hash {HASH} {other}"));
        let stats = |c, d, i| {
            Build::dict([
                ("complete", Build::Int(c)),
                ("downloaded", Build::Int(d)),
                ("incomplete", Build::Int(i)),
            ])
        };
        let body = Build::dict([("files", Build::Dict(vec![(hash(), stats(1, 0, 0))]))]).encode();
        let (m, _) = one(&mut after(req.as_bytes()), &response(&body, ""));
        assert_eq!(m.text, format!("200 scrape: {HASH} complete 1 downloaded 0 incomplete 0"));
        assert!(m.findings.is_empty(), "{:?}", m.findings);
        let Answer::Scrape(files) = &answer(&m).answer else { panic!() };
        assert_eq!((files[0].info_hash.clone(), files[0].complete), (hash(), Some(1)));
    }

    #[test]
    fn parses_compact_and_dictionary_peers_and_failures() {
        let req = announce_request("");
        let (m, _) = one(&mut after(&req), &response(&compact_answer(), "Content-Type: text/plain\r\n"));
        assert_eq!(
            m.text,
            "200 announce: interval 1800, complete 1, incomplete 0, peers 127.0.0.1:6001 127.0.0.1:6002"
        );
        assert!(m.findings.is_empty(), "{:?}", m.findings);
        assert!(
            m.summary.contains("\n  HTTP/1.1 200 OK\n  Content-Type: text/plain"),
            "{}",
            m.summary
        );
        let peer = |ip: &str, port, id: &[u8]| {
            Build::dict([
                ("ip", Build::text(ip)),
                ("port", Build::Int(port)),
                ("peer id", Build::Bytes(id.to_vec())),
            ])
        };
        let body = Build::dict([
            ("interval", Build::Int(900)),
            (
                "peers",
                Build::List(vec![
                    peer("127.0.0.1", 6001, b"-WC0001-000000000001"),
                    peer("::1", 6002, &[0xff; 20]),
                ]),
            ),
        ])
        .encode();
        let (m, _) = one(&mut after(&req), &response(&body, ""));
        assert_eq!(
            m.text,
            format!(
                "200 announce: interval 900, peers 127.0.0.1:6001 (\"-WC0001-000000000001\") [::1]:6002 ({})",
                "ff".repeat(20)
            )
        );
        let Answer::Announce(a) = &answer(&m).answer else { panic!() };
        assert_eq!((a.compact, a.peers.len(), a.interval), (Some(false), 2, Some(900)));
        let body = Build::dict([("failure reason", Build::text("unknown torrent"))]).encode();
        let (m, _) = one(&mut after(&req), &response(&body, ""));
        assert_eq!(m.text, "200 failure reason \"unknown torrent\"");
        assert!(m.findings.is_empty());
        assert_eq!(answer(&m).answer, Answer::Failure("unknown torrent".into()));
    }

    #[test]
    fn parses_a_gzip_body() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&compact_answer()).unwrap();
        let body = gz.finish().unwrap();
        let (m, _) = one(&mut after(&announce_request("")), &response(&body, "Content-Encoding: gzip\r\n"));
        assert!(m.text.starts_with("200 announce: interval 1800"), "{}", m.text);
        assert_eq!(answer(&m).body, compact_answer());
        // Not gzip after all: said, not guessed at.
        let (m, _) = one(
            &mut after(&announce_request("")),
            &response(b"d1:ai1ee", "Content-Encoding: gzip\r\n"),
        );
        assert!(m.findings.iter().any(|f| f.rule.starts_with("RFC 9110")), "{:?}", m.findings);
    }

    #[test]
    fn rejects_a_gzip_bomb_without_inflating_it_all() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'0'; MAX_INFLATED + 10]).unwrap();
        let body = gz.finish().unwrap();
        let (m, _) = one(&mut after(&announce_request("")), &response(&body, "Content-Encoding: gzip\r\n"));
        assert!(m.text.starts_with("200 body not decoded"), "{}", m.text);
        assert!(m.findings.is_empty(), "{:?}", m.findings);
    }

    #[test]
    fn rejects_answers_that_break_bep_3_and_23() {
        let req = announce_request("");
        let rules = |body: &[u8]| -> Vec<(Level, &'static str, String)> {
            let (m, _) = one(&mut after(&req), &response(body, ""));
            m.findings.iter().map(|f| (f.level, f.rule, f.text.clone())).collect()
        };
        let unsorted = rules(b"d8:intervali1800e5:peers0:8:completei1ee");
        assert_eq!((unsorted[0].0, unsorted[0].1), (Level::Must, "BEP 3"));
        assert!(unsorted[0].2.contains("sorted"), "{unsorted:?}");
        let cut = rules(b"d8:intervali1800e5:peers7:\x7f\x00\x00\x01\x17\x71\x00e");
        assert_eq!(cut[0].1, "BEP 23");
        assert!(cut[0].2.contains("7 bytes"), "{cut:?}");
        let bare = rules(b"d8:completei1ee");
        assert!(bare[0].2.contains("lacks interval and peers"), "{bare:?}");
        let html = rules(b"<html>oops</html>");
        assert!(html[0].2.contains("not bencode"), "{html:?}");
        let (m, _) = one(&mut after(&req), &response(b"<html>oops</html>", ""));
        assert_eq!(m.text, "200 not bencode: \"<html>oops</html>\"");
        // A 404 may say what it likes.
        let mut c = after(&req);
        let (m, _) = one(&mut c, b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno");
        assert!(m.findings.is_empty() && m.text == "HTTP/1.1 404 Not Found", "{m:?}");
    }

    #[test]
    fn parses_a_response_without_its_request_by_its_keys() {
        let mut c = HttpTrackerCodec::new(Direction::ServerToClient);
        let (m, _) = one(&mut c, &response(&compact_answer(), ""));
        assert_eq!(answer(&m).answers, Ask::Announce);
        let (m, _) = one(&mut c, &response(b"d5:filesdee", ""));
        assert_eq!(m.text, "200 scrape: no files");
    }

    #[test]
    fn incomplete_http_messages_at_every_split() {
        let req = announce_request("&numwant=5");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &compact_answer()).unwrap();
        let resp = [
            response(&gz.finish().unwrap(), "Content-Encoding: gzip\r\n"),
            response(b"d14:failure reason3:nahe", ""),
        ]
        .concat();
        let fresh = |dir| {
            let mut c = HttpTrackerCodec::new(dir);
            c.peer_sent(&[req.clone(), req.clone()].concat());
            c
        };
        for (dir, stream) in [(Direction::ClientToServer, &req), (Direction::ServerToClient, &resp)] {
            let (whole, len) = one(&mut fresh(dir), stream);
            for cut in 0..len {
                let mut c = fresh(dir);
                assert!(
                    matches!(c.decode(&stream[..cut], false).unwrap(), Frame::Incomplete),
                    "cut at {cut}"
                );
                let (m, used) = one(&mut c, stream);
                assert_eq!((m.text.as_str(), used), (whole.text.as_str(), len), "cut at {cut}");
            }
        }
        let (first, len) = one(&mut fresh(Direction::ServerToClient), &resp);
        assert!(first.text.starts_with("200 announce: interval 1800"), "{}", first.text);
        let mut c = fresh(Direction::ServerToClient);
        one(&mut c, &resp);
        let (second, _) = one(&mut c, &resp[len..]);
        assert_eq!(second.text, "200 failure reason \"nah\"");
        assert!(c.decode(&resp[len..resp.len() - 1], true).is_err(), "a close inside the body");
    }

    #[test]
    fn round_trip_query_parameters_through_percent_encoding() {
        let params: Vec<(String, Vec<u8>)> = vec![
            ("info_hash".into(), (0..=255u8).step_by(13).collect()),
            ("peer_id".into(), b"-WC0001-a.b_c~d e+f%".to_vec()),
            ("event".into(), b"started".to_vec()),
        ];
        let q = encode_query(&params);
        assert!(q.contains("peer_id=-WC0001-a.b_c~d%20e%2Bf%25"), "{q}");
        assert_eq!(split_target(&format!("/announce?{q}")), ("/announce".to_string(), params));
    }

    fn udp(dir: Direction, b: &[u8]) -> (Udp, Message) {
        let (m, used) = one(&mut UdpTrackerCodec::new(dir), b);
        assert_eq!(used, b.len());
        let Some(Tracker::Udp(u)) = m.detail.as_ref().unwrap().downcast_ref::<Tracker>() else {
            panic!()
        };
        (u.msg.clone(), m)
    }

    #[test]
    fn round_trip_every_bep_15_message() {
        let c2s = [
            Udp::Connect {
                protocol_id: CONNECT_MAGIC,
                transaction: 0x1234,
            },
            Udp::Announce(UdpAnnounce {
                connection: 0x0123_4567_89ab_cdef,
                transaction: 1,
                info_hash: twenty(&hash(), 0),
                peer_id: *b"-WC0001-000000000001",
                downloaded: 0,
                left: 150000,
                uploaded: 0,
                event: 2,
                ip: 0,
                key: 7,
                numwant: 50,
                port: 6001,
            }),
            Udp::Scrape {
                connection: 5,
                transaction: 2,
                info_hashes: vec![twenty(&hash(), 0); 2],
            },
        ];
        let s2c = [
            Udp::Connected {
                transaction: 0x1234,
                connection: 0x0123_4567_89ab_cdef,
            },
            Udp::Announced {
                transaction: 1,
                interval: 1800,
                leechers: 1,
                seeders: 0,
                peers: compact_peers(&[127, 0, 0, 1, 0x17, 0x71], 6),
            },
            Udp::Scraped {
                transaction: 2,
                files: vec![UdpScrapeEntry {
                    seeders: 1,
                    completed: 0,
                    leechers: 2,
                }],
            },
            Udp::Error {
                transaction: 1,
                message: "unknown torrent".into(),
            },
        ];
        for (dir, msgs) in [(Direction::ClientToServer, &c2s[..]), (Direction::ServerToClient, &s2c[..])] {
            for u in msgs {
                let (got, m) = udp(dir, &u.encode());
                assert_eq!(&got, u);
                assert!(m.findings.is_empty(), "{:?}", m.findings);
            }
        }
        let lines: Vec<String> = c2s.iter().chain(&s2c).map(udp_line).collect();
        assert_eq!(
            lines,
            [
                "connect tid 0x1234".to_string(),
                format!(
                    "announce cid 0x0123456789abcdef tid 0x1 info_hash {HASH} peer_id \"-WC0001-000000000001\" uploaded 0 \
                     downloaded 0 left 150000 event started port 6001 numwant 50 key 0x7"
                ),
                format!("scrape cid 0x0000000000000005 tid 0x2 info_hash {HASH} {HASH}"),
                "connected tid 0x1234 cid 0x0123456789abcdef".into(),
                "announced tid 0x1 interval 1800 leechers 1 seeders 0 peers 127.0.0.1:6001".into(),
                "scraped tid 0x2 seeders 1 completed 0 leechers 2".into(),
                "error tid 0x1 \"unknown torrent\"".into(),
            ]
        );
    }

    #[test]
    fn parses_replies_matched_against_the_requests_sent() {
        let mut c = UdpTrackerCodec::new(Direction::ServerToClient);
        c.peer_sent(
            &Udp::Connect {
                protocol_id: CONNECT_MAGIC,
                transaction: 9,
            }
            .encode(),
        );
        let reply = |tid| {
            Udp::Connected {
                transaction: tid,
                connection: 1,
            }
            .encode()
        };
        let matched = |m: &Message| match m.detail.as_ref().unwrap().downcast_ref::<Tracker>() {
            Some(Tracker::Udp(u)) => u.matched,
            _ => panic!(),
        };
        assert_eq!(matched(&one(&mut c, &reply(9)).0), Some(true));
        assert_eq!(matched(&one(&mut c, &reply(8)).0), Some(false));
        assert_eq!(
            matched(&one(&mut UdpTrackerCodec::new(Direction::ServerToClient), &reply(8)).0),
            None
        );
    }

    #[test]
    fn rejects_wrong_lengths_and_short_datagrams() {
        // Too short for any header: not a BEP 15 message at all.
        assert!(UdpTrackerCodec::new(Direction::ServerToClient).decode(&[0; 7], true).is_err());
        assert!(UdpTrackerCodec::new(Direction::ClientToServer).decode(&[0; 15], true).is_err());
        let e = UdpTrackerCodec::new(Direction::ServerToClient)
            .decode(&[0, 0, 0, 9, 0, 0, 0, 1], true)
            .unwrap_err();
        assert!(e.reason.contains("action 9"), "{e}");
        // A reply shorter than its action needs.
        let (u, m) = udp(Direction::ServerToClient, &[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 7, 8]);
        assert_eq!(
            u,
            Udp::Short {
                action: 1,
                transaction: 1,
                reply: true
            }
        );
        assert_eq!(m.text, "announced tid 0x1 (cut short)");
        assert!(m.findings[0].text.contains("12 bytes: BEP 15's layout has 20"), "{:?}", m.findings);
        let (_, m) = udp(Direction::ServerToClient, &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert!(m.findings[0].text.contains("connect reply of 12 bytes"), "{:?}", m.findings);
        // Peers cut, scrape entries cut, info-hashes cut.
        let mut announced = Udp::Announced {
            transaction: 1,
            interval: 1,
            leechers: 0,
            seeders: 0,
            peers: vec![],
        }
        .encode();
        announced.extend([127, 0, 0, 1, 0x17]);
        let (_, m) = udp(Direction::ServerToClient, &announced);
        assert!(m.findings[0].text.contains("5 is not a multiple of 6"), "{:?}", m.findings);
        let (_, m) = udp(Direction::ServerToClient, &[0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1]);
        assert!(m.findings[0].text.contains("not a multiple of 12"), "{:?}", m.findings);
        let mut scrape = Udp::Scrape {
            connection: 1,
            transaction: 1,
            info_hashes: vec![],
        }
        .encode();
        scrape.extend([1; 19]);
        let (_, m) = udp(Direction::ClientToServer, &scrape);
        assert!(m.findings[0].text.contains("19 is not a multiple of 20"), "{:?}", m.findings);
        // A connect with the wrong protocol id.
        let (_, m) = udp(
            Direction::ClientToServer,
            &Udp::Connect {
                protocol_id: 1,
                transaction: 1,
            }
            .encode(),
        );
        assert!(m.findings[0].text.contains("0x41727101980, not 0x1"), "{:?}", m.findings);
        assert_eq!(m.text, "connect tid 0x1 protocol_id 0x1");
    }
}
