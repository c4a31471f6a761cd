//! Structured BitTorrent tracker steps: announces and scrapes over HTTP (BEP 3, BEP 23, BEP 48)
//! and over UDP (BEP 15), each built for the connection's transport when it is sent.
//!
//! ```yaml
//! # HTTP (TCP): a GET with Host and Connection: close (keep_alive: true leaves that out).
//! - send: { announce: { torrent: ../fixtures/bittorrent/sample.torrent, port: 6001, event: started } }
//!   # info_hash: <40 hex> instead of torrent; peer_id (default "-WC0001-" and the port in 12 digits),
//!   # port (6881), uploaded (0), downloaded (0), left (the torrent's length, else 0), compact (1);
//!   # event, numwant, ip, key only when given; path (/announce); omit: [port] leaves parameters
//!   # out; raw_query: "info_hash=%zz" sends the query as written. Values are sent byte by byte,
//!   # unreserved bytes as they are and the rest as %XX.
//! - send: { scrape: { info_hash: [../fixtures/bittorrent/sample.torrent, "<40 hex>"], path: /scrape } }
//! - expect:
//!     status: 200
//!     interval: { min: 1 }               # or a number; complete, incomplete, downloaded alike
//!     peers: { count: 1, include: ["127.0.0.1:6001"], exclude: ["127.0.0.1:6002"] }  # either form
//!     compact: true                      # only where a case asks for it (BEP 23 lets a tracker choose)
//!     failure: true                      # or false, or a regex the failure reason matches
//!     files: { ../fixtures/bittorrent/sample.torrent: { complete: 1, downloaded: 0, incomplete: 0 },
//!              "<40 hex>": { absent: true } }
//!     capture: { every: interval, first: "peers[0]" }
//! # UDP (BEP 15): connect, then announce or scrape with the connection id it gave.
//! - send: { connect: { transaction: 4660 } }
//! - expect: { connected: { transaction: 4660 }, capture: { cid: connection } }
//! - send: { announce: { connection: "${cid}", transaction: 1, torrent: ..., port: 6001, event: started, numwant: 50 } }
//! - expect: { announced: { transaction: 1, interval: { min: 1 }, peers: { count: 0 }, seeders: 0, leechers: 1 } }
//! - send: { scrape: { connection: "${cid}", transaction: 2, info_hash: [...] } }
//! - expect: { scraped: { transaction: 2, files: { "<40 hex>": { seeders: 0, completed: 0, leechers: 1 } } } }
//! - expect: { error: { transaction: 1, message: "unknown" } }
//! ```
//! A UDP reply's transaction id is checked against `transaction` when given, else against the
//! requests sent on the connection. Capture paths: status, interval, complete, incomplete,
//! downloaded, failure, peers[N], peer_count; over UDP connection, transaction, interval,
//! seeders, leechers, message, peers[N], peer_count.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use regex::Regex;

use super::codec::{
    encode_query, event_name, peers_text, udp_line, Answer, Peer, Tracker, TrackerResponse, Udp, UdpAnnounce, UdpFrame, CONNECT_MAGIC,
};
use crate::proto::bittorrent::bencode::{hex, unhex};
use crate::proto::bittorrent::metainfo::Metainfo;
use crate::proto::{Message, Mismatch, RenderCx, Steps, StructuredExpect, StructuredSend, Transport};
use crate::syntax::{Data, LoadCx, Loc, Node, Template, Vars};

/// Keys of a structured tracker send.
pub const SEND_KEYS: &[&str] = &["announce", "scrape", "connect"];
/// Keys that make an expect a tracker one (`capture` is allowed with them).
pub const EXPECT_KEYS: &[&str] = &[
    "status",
    "interval",
    "peers",
    "compact",
    "complete",
    "incomplete",
    "downloaded",
    "failure",
    "files",
    "connected",
    "announced",
    "scraped",
    "error",
    "refused",
    "or_refused",
    "or_silence",
    "announce",
];

/// The structured `send:`/`expect:` keys of the tracker protocol.
pub static STEPS: Steps = Steps {
    send_keys: SEND_KEYS,
    expect_keys: EXPECT_KEYS,
    parse_send,
    parse_expect,
};

/// Announce parameters, in the order they are sent.
const PARAMS: &[&str] = &[
    "peer_id",
    "port",
    "uploaded",
    "downloaded",
    "left",
    "event",
    "compact",
    "numwant",
    "ip",
    "key",
];
/// Keys only an HTTP request has.
const TCP_ONLY: &[&str] = &["compact", "path", "omit", "raw_query", "keep_alive"];
/// Keys only a BEP 15 request has.
const UDP_ONLY: &[&str] = &["connection", "transaction"];

/// An info-hash as a step names it: hex (maybe `${var}`), or read from a torrent at load.
#[derive(Debug, Clone)]
enum HashSrc {
    Hex(Template),
    Torrent { path: String, hash: [u8; 20] },
}

impl HashSrc {
    fn bytes(&self, vars: &Vars) -> Result<Vec<u8>, String> {
        match self {
            HashSrc::Torrent { hash, .. } => Ok(hash.to_vec()),
            HashSrc::Hex(t) => {
                let s = t.render(vars)?;
                unhex(&s).ok_or_else(|| format!("info_hash '{s}' is not hex"))
            }
        }
    }

    fn shown(&self) -> String {
        match self {
            HashSrc::Hex(t) => t.as_literal().unwrap_or("${..}").to_string(),
            HashSrc::Torrent { path, hash } => format!("{} ({path})", hex(hash)),
        }
    }
}

/// A number a UDP request carries: decimal or `0x` hex, after `${var}`s are filled.
fn number(s: &str) -> Result<u64, String> {
    let t = s.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    }
    .map_err(|_| format!("'{s}' is not a number (decimal or 0x hex)"))
}

fn number_in<T: TryFrom<u64>>(s: &str, what: &str) -> Result<T, String> {
    T::try_from(number(s)?).map_err(|_| format!("{what} {s} is out of range"))
}

#[derive(Debug)]
enum SendKind {
    Announce,
    Scrape,
    Connect,
}

/// An announce, scrape or connect, built for the connection's transport.
#[derive(Debug)]
struct TrackerSend {
    kind: SendKind,
    /// The info-hashes (one for an announce).
    hashes: Vec<HashSrc>,
    /// The torrent's total length: `left` when not given.
    total: Option<u64>,
    /// Parameters given, by name.
    params: Vec<(&'static str, Template)>,
    omit: Vec<String>,
    raw_query: Option<Template>,
    path: Option<Template>,
    keep_alive: bool,
    connection: Option<Template>,
    transaction: Option<Template>,
    protocol_id: Option<Template>,
    /// Keys given that only one transport has, for the error when used on the other.
    tcp_keys: Vec<&'static str>,
    udp_keys: Vec<&'static str>,
}

impl TrackerSend {
    fn param(&self, name: &str) -> Option<&Template> {
        self.params.iter().find(|(n, _)| *n == name).map(|(_, t)| t)
    }

    fn value(&self, name: &str, vars: &Vars) -> Result<Option<String>, String> {
        self.param(name).map(|t| t.render(vars)).transpose()
    }

    /// The announce's parameters with their defaults, in the order they are sent.
    fn announce_params(&self, vars: &Vars) -> Result<Vec<(String, Vec<u8>)>, String> {
        let mut out = Vec::new();
        if let Some(h) = self.hashes.first() {
            out.push(("info_hash".to_string(), h.bytes(vars)?));
        }
        let port = self.value("port", vars)?.unwrap_or_else(|| "6881".into());
        for name in PARAMS {
            let v = match (self.value(name, vars)?, *name) {
                (Some(v), _) => Some(v),
                (None, "peer_id") => Some(default_peer_id(&port)),
                (None, "port") => Some(port.clone()),
                (None, "uploaded" | "downloaded") => Some("0".into()),
                (None, "left") => Some(self.total.unwrap_or(0).to_string()),
                (None, "compact") => Some("1".into()),
                (None, _) => None,
            };
            if let Some(v) = v {
                out.push((name.to_string(), v.into_bytes()));
            }
        }
        out.retain(|(n, _)| !self.omit.contains(n));
        Ok(out)
    }

    fn http(&self, cx: &RenderCx) -> Result<Vec<u8>, String> {
        if let Some(k) = self.udp_keys.first() {
            return Err(format!(
                "'{k}' is a UDP tracker (BEP 15) key, and this connection is TCP: an HTTP tracker request has none"
            ));
        }
        let (default_path, params) = match self.kind {
            SendKind::Connect => {
                return Err("connect is a UDP tracker (BEP 15) request; over TCP announce and scrape are HTTP GETs".into());
            }
            SendKind::Announce => ("/announce", self.announce_params(cx.vars)?),
            SendKind::Scrape => {
                let hashes = self
                    .hashes
                    .iter()
                    .map(|h| Ok(("info_hash".to_string(), h.bytes(cx.vars)?)))
                    .collect::<Result<Vec<_>, String>>()?;
                ("/scrape", hashes)
            }
        };
        let path = match &self.path {
            Some(p) => p.render(cx.vars)?,
            None => default_path.to_string(),
        };
        let query = match &self.raw_query {
            Some(q) => q.render(cx.vars)?,
            None => encode_query(&params),
        };
        let target = if query.is_empty() { path } else { format!("{path}?{query}") };
        let host = match (cx.vars.get("target.host"), cx.vars.get("target.port")) {
            (Some(h), Some(p)) if h.contains(':') => format!("[{h}]:{p}"),
            (Some(h), Some(p)) => format!("{h}:{p}"),
            _ => "127.0.0.1".into(),
        };
        let close = if self.keep_alive { "" } else { "Connection: close\r\n" };
        Ok(format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{close}\r\n").into_bytes())
    }

    fn udp(&self, cx: &RenderCx) -> Result<Vec<u8>, String> {
        if let Some(k) = self.tcp_keys.first() {
            return Err(format!(
                "'{k}' is an HTTP tracker key, and this connection is UDP: a BEP 15 request has none"
            ));
        }
        let render = |t: &Option<Template>| t.as_ref().map(|t| t.render(cx.vars)).transpose();
        let transaction =
            |default: u32| -> Result<u32, String> { render(&self.transaction)?.map_or(Ok(default), |s| number_in(&s, "transaction")) };
        let connection = || -> Result<u64, String> {
            match render(&self.connection)? {
                Some(s) => number(&s),
                None => Err("a UDP announce or scrape needs connection: the id a connected reply gave \
                             (capture it: expect: { connected: {}, capture: { cid: connection } }, then connection: \"${cid}\")"
                    .into()),
            }
        };
        let msg = match self.kind {
            SendKind::Connect => Udp::Connect {
                protocol_id: render(&self.protocol_id)?.map_or(Ok(CONNECT_MAGIC), |s| number(&s))?,
                transaction: transaction(0x1234)?,
            },
            SendKind::Scrape => Udp::Scrape {
                connection: connection()?,
                transaction: transaction(2)?,
                info_hashes: self
                    .hashes
                    .iter()
                    .map(|h| twenty(&h.bytes(cx.vars)?, "info_hash"))
                    .collect::<Result<_, _>>()?,
            },
            SendKind::Announce => {
                let p = self.announce_params(cx.vars)?;
                let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| String::from_utf8_lossy(v).into_owned());
                let num = |n: &str, default: u64| get(n).map_or(Ok(default), |s| number(&s));
                let event = match get("event").as_deref() {
                    None => 0,
                    Some(e) => match (0..4).find(|&i| event_name(i) == e.trim()) {
                        Some(i) => i,
                        None => number_in(e, "event")?,
                    },
                };
                let ip = match get("ip") {
                    None => 0,
                    Some(s) => match s.trim().parse::<Ipv4Addr>() {
                        Ok(a) => u32::from(a),
                        Err(_) => number_in(&s, "ip")?,
                    },
                };
                let numwant = match get("numwant") {
                    None => -1,
                    Some(s) => s
                        .trim()
                        .parse::<i32>()
                        .map_err(|_| format!("numwant '{s}' is not a 32-bit number"))?,
                };
                Udp::Announce(UdpAnnounce {
                    connection: connection()?,
                    transaction: transaction(1)?,
                    info_hash: twenty(
                        &p.iter().find(|(k, _)| k == "info_hash").map(|(_, v)| v.clone()).unwrap_or_default(),
                        "info_hash",
                    )?,
                    peer_id: twenty(&get("peer_id").unwrap_or_default().into_bytes(), "peer_id")?,
                    downloaded: num("downloaded", 0)?,
                    left: num("left", 0)?,
                    uploaded: num("uploaded", 0)?,
                    event,
                    ip,
                    key: get("key").map_or(Ok(0), |s| number_in(&s, "key"))?,
                    numwant,
                    port: get("port").map_or(Ok(6881), |s| number_in(&s, "port"))?,
                })
            }
        };
        Ok(msg.encode())
    }
}

fn twenty(b: &[u8], what: &str) -> Result<[u8; 20], String> {
    <[u8; 20]>::try_from(b).map_err(|_| format!("a BEP 15 {what} is 20 bytes, not {}", b.len()))
}

/// The peer id a step that names none sends: the harness's prefix and the port, so two peers
/// of one case differ when their ports do.
fn default_peer_id(port: &str) -> String {
    let digits: String = port.chars().filter(char::is_ascii_digit).collect();
    format!("-WC0001-{:0>12}", &digits[digits.len().saturating_sub(12)..])
}

impl StructuredSend for TrackerSend {
    fn render(&self, cx: &RenderCx) -> Result<Vec<u8>, String> {
        match cx.transport {
            Transport::Udp => self.udp(cx),
            _ => self.http(cx),
        }
    }

    fn templates(&self) -> Vec<&Template> {
        let mut t: Vec<&Template> = self.params.iter().map(|(_, t)| t).collect();
        t.extend(self.hashes.iter().filter_map(|h| match h {
            HashSrc::Hex(t) => Some(t),
            HashSrc::Torrent { .. } => None,
        }));
        t.extend(
            [&self.raw_query, &self.path, &self.connection, &self.transaction, &self.protocol_id]
                .into_iter()
                .flatten(),
        );
        t
    }
}

/// A 40-hex info-hash, a `${var}`, or a torrent file read now.
fn hash_src(node: &Node, cx: &mut LoadCx) -> Option<HashSrc> {
    let s = cx.string(node, "an info_hash")?;
    if s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) || s.contains("${") {
        return Some(HashSrc::Hex(cx.template(node, "info_hash")?));
    }
    torrent(node, cx).map(|(hash, _)| HashSrc::Torrent { path: s, hash })
}

/// The info-hash and total length of the torrent file `node` names.
fn torrent(node: &Node, cx: &mut LoadCx) -> Option<([u8; 20], u64)> {
    let f = cx.fixture(node, "torrent")?;
    match Metainfo::parse(&f.bytes) {
        Ok(m) => Some((m.info_hash, m.total_length())),
        Err(e) => {
            cx.err_help(
                node,
                format!("{} is not a torrent: {e}", f.display()),
                "an info_hash is 40 hex digits or the path of a .torrent file",
            );
            None
        }
    }
}

fn list(node: &Node) -> Vec<&Node> {
    match &node.data {
        Data::Seq(items) => items.iter().collect(),
        Data::Null => Vec::new(),
        _ => vec![node],
    }
}

/// Parses `send: { announce: {...} }`, `{ scrape: {...} }` or `{ connect: {...} }`.
pub fn parse_send(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredSend>> {
    let mut keys = SEND_KEYS.to_vec();
    keys.push("keep_alive");
    let top = cx.fields(node, &keys, "a tracker send")?;
    let (which, body) = cx.one_of(
        node,
        &top,
        SEND_KEYS,
        "a tracker send is one of",
        "e.g. send: { announce: { torrent: ../fixtures/bittorrent/sample.torrent, port: 6001 } }",
    )?;
    let (kind, known): (SendKind, Vec<&str>) = match which {
        "announce" => {
            let mut k = vec!["torrent", "info_hash"];
            k.extend_from_slice(PARAMS);
            k.extend_from_slice(TCP_ONLY);
            k.extend_from_slice(UDP_ONLY);
            (SendKind::Announce, k)
        }
        "scrape" => (
            SendKind::Scrape,
            vec![
                "info_hash",
                "torrent",
                "path",
                "raw_query",
                "keep_alive",
                "connection",
                "transaction",
            ],
        ),
        _ => (SendKind::Connect, vec!["transaction", "protocol_id"]),
    };
    let empty = Node {
        data: Data::Map(Vec::new()),
        loc: body.loc,
    };
    let body = if matches!(body.data, Data::Null) { &empty } else { body };
    let f = cx.fields(body, &known, &format!("a tracker {which}"))?;
    let tmpl = |key: &str, cx: &mut LoadCx| -> Option<Option<Template>> { cx.optional(&f, key, |cx, n| cx.template(n, key)) };
    let mut send = TrackerSend {
        kind,
        hashes: Vec::new(),
        total: None,
        params: Vec::new(),
        omit: Vec::new(),
        raw_query: tmpl("raw_query", cx)?,
        path: tmpl("path", cx)?,
        keep_alive: false,
        connection: tmpl("connection", cx)?,
        transaction: tmpl("transaction", cx)?,
        protocol_id: tmpl("protocol_id", cx)?,
        tcp_keys: TCP_ONLY.iter().copied().filter(|k| f.get(k).is_some()).collect(),
        udp_keys: UDP_ONLY.iter().copied().filter(|k| f.get(k).is_some()).collect(),
    };
    for (key, t) in [("transaction", &send.transaction), ("protocol_id", &send.protocol_id)] {
        if let (Some(lit), Some(n)) = (t.as_ref().and_then(Template::as_literal), f.get(key)) {
            if let Err(e) = number(lit) {
                cx.err(n, format!("{key}: {e}"));
                return None;
            }
        }
    }
    for k in [top.get("keep_alive"), f.get("keep_alive")].into_iter().flatten() {
        send.keep_alive |= cx.boolean(k, "keep_alive")?;
    }
    for name in PARAMS {
        if let Some(n) = f.get(name) {
            send.params.push((name, cx.template(n, name)?));
        }
    }
    match (f.get("torrent"), f.get("info_hash"), &send.kind) {
        (Some(_), Some(h), SendKind::Announce) => {
            cx.err_help(
                h,
                "give torrent or info_hash, not both",
                "torrent: sends the torrent's info-hash, and its length as left",
            );
            return None;
        }
        (Some(t), None, SendKind::Announce) => {
            let (hash, total) = torrent(t, cx)?;
            send.hashes.push(HashSrc::Torrent {
                path: t.as_str().unwrap_or_default().to_string(),
                hash,
            });
            send.total = Some(total);
        }
        (None, Some(h), SendKind::Announce) => send.hashes.push(hash_src(h, cx)?),
        (t, h, SendKind::Scrape) => {
            for n in [t, h].into_iter().flatten().flat_map(list) {
                send.hashes.push(hash_src(n, cx)?);
            }
        }
        (None, None, SendKind::Announce) if send.raw_query.is_none() && !send.udp_keys.is_empty() => {
            cx.err_help(
                body,
                "a UDP announce needs the torrent",
                "add torrent: <file> or info_hash: <40 hex>",
            );
            return None;
        }
        _ => {}
    }
    if let Some(o) = f.get("omit") {
        for n in list(o) {
            let name = cx.string(n, "a parameter name")?;
            if name != "info_hash" && !PARAMS.contains(&name.as_str()) {
                cx.err_help(
                    n,
                    format!("'{name}' is not an announce parameter"),
                    format!("omit takes: info_hash, {}", PARAMS.join(", ")),
                );
                return None;
            }
            send.omit.push(name);
        }
    }
    if let Some(q) = f.get("raw_query") {
        let also: Vec<&str> = ["torrent", "info_hash", "omit"]
            .iter()
            .chain(PARAMS)
            .copied()
            .filter(|k| f.get(k).is_some())
            .collect();
        if !also.is_empty() {
            cx.err_help(
                q,
                format!("raw_query sends the query as written, so {} would not be sent", also.join(", ")),
                "write every parameter into raw_query, or use the parameters and omit",
            );
            return None;
        }
    }
    Some(Box::new(send))
}

/// A number that must hold: exactly, or within `min`..`max`.
#[derive(Debug, Clone, Copy)]
struct Range {
    min: Option<i64>,
    max: Option<i64>,
}

impl Range {
    fn holds(&self, v: i64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }

    fn text(&self) -> String {
        match (self.min, self.max) {
            (Some(a), Some(b)) if a == b => a.to_string(),
            (Some(a), Some(b)) => format!("{a} to {b}"),
            (Some(a), None) => format!("at least {a}"),
            (None, Some(b)) => format!("at most {b}"),
            (None, None) => "any number".into(),
        }
    }
}

fn range(node: &Node, what: &str, cx: &mut LoadCx) -> Option<Range> {
    match &node.data {
        Data::Map(_) => {
            let f = cx.fields(node, &["min", "max"], what)?;
            Some(Range {
                min: cx.optional(&f, "min", |cx, n| cx.number(n, "min"))?,
                max: cx.optional(&f, "max", |cx, n| cx.number(n, "max"))?,
            })
        }
        _ => {
            let v = cx.number(node, what)?;
            Some(Range {
                min: Some(v),
                max: Some(v),
            })
        }
    }
}

#[derive(Debug)]
struct PeersCheck {
    count: Option<Range>,
    include: Vec<Template>,
    exclude: Vec<Template>,
}

fn peers_check(node: &Node, cx: &mut LoadCx) -> Option<PeersCheck> {
    if !matches!(node.data, Data::Map(_)) {
        return Some(PeersCheck {
            count: Some(range(node, "peers", cx)?),
            include: Vec::new(),
            exclude: Vec::new(),
        });
    }
    let f = cx.fields(node, &["count", "include", "exclude"], "a peers check")?;
    let addrs = |key: &str, cx: &mut LoadCx| -> Option<Vec<Template>> {
        f.get(key).map_or(Some(Vec::new()), |n| {
            list(n).into_iter().map(|a| cx.template(a, "a peer address")).collect()
        })
    };
    Some(PeersCheck {
        count: cx.optional(&f, "count", |cx, n| range(n, "count", cx))?,
        include: addrs("include", cx)?,
        exclude: addrs("exclude", cx)?,
    })
}

#[derive(Debug)]
enum FailureCheck {
    Present(bool),
    Regex(Template),
}

/// One torrent of a scrape answer, as a case expects it.
#[derive(Debug)]
struct FileCheck {
    hash: HashSrc,
    loc: Loc,
    complete: Option<Range>,
    downloaded: Option<Range>,
    incomplete: Option<Range>,
    absent: bool,
}

fn files_check(node: &Node, udp: bool, cx: &mut LoadCx) -> Option<Vec<FileCheck>> {
    let pairs = cx.mapping(
        node,
        "files must be a mapping of info-hash (or torrent file) to counts",
        "e.g. files: { ../fixtures/bittorrent/sample.torrent: { complete: 1, downloaded: 0, incomplete: 0 } }",
    )?;
    let names: &[&str] = if udp {
        &["seeders", "completed", "leechers", "complete", "downloaded", "incomplete", "absent"]
    } else {
        &["complete", "downloaded", "incomplete", "absent"]
    };
    let mut out = Vec::new();
    for (k, v) in pairs {
        let hash = hash_src(k, cx)?;
        let f = cx.fields(v, names, "a file's counts")?;
        let either = |a: &str, b: &str, cx: &mut LoadCx| -> Option<Option<Range>> {
            match f.get(a).or(f.get(b)) {
                Some(n) => Some(Some(range(n, a, cx)?)),
                None => Some(None),
            }
        };
        let absent = match f.get("absent") {
            Some(n) => {
                if !cx.boolean(n, "absent")? {
                    cx.err(n, "absent: false checks nothing; give the counts instead");
                    return None;
                }
                true
            }
            None => false,
        };
        out.push(FileCheck {
            hash,
            loc: k.loc,
            complete: either("complete", "seeders", cx)?,
            downloaded: either("downloaded", "completed", cx)?,
            incomplete: either("incomplete", "leechers", cx)?,
            absent,
        });
    }
    Some(out)
}

/// What a UDP reply must be.
#[derive(Debug)]
enum UdpWant {
    Connected,
    Announced {
        interval: Option<Range>,
        peers: Option<PeersCheck>,
        seeders: Option<Range>,
        leechers: Option<Range>,
    },
    Scraped {
        files: Vec<FileCheck>,
    },
    Error {
        message: Option<Template>,
    },
}

#[derive(Debug)]
struct UdpCheck {
    want: UdpWant,
    transaction: Option<Template>,
    loc: Loc,
}

fn udp_check(key: &'static str, node: &Node, cx: &mut LoadCx) -> Option<UdpCheck> {
    let empty = Node {
        data: Data::Map(Vec::new()),
        loc: node.loc,
    };
    let node = if matches!(node.data, Data::Null) { &empty } else { node };
    let known: &[&str] = match key {
        "connected" => &["transaction"],
        "announced" => &["transaction", "interval", "peers", "seeders", "leechers"],
        "scraped" => &["transaction", "files"],
        _ => &["transaction", "message"],
    };
    let f = cx.fields(node, known, &format!("a UDP {key} check"))?;
    let transaction = cx.optional(&f, "transaction", |cx, n| cx.template(n, "transaction"))?;
    if let (Some(lit), Some(n)) = (transaction.as_ref().and_then(Template::as_literal), f.get("transaction")) {
        if let Err(e) = number_in::<u32>(lit, "transaction") {
            cx.err(n, e);
            return None;
        }
    }
    let r = |k: &str, cx: &mut LoadCx| cx.optional(&f, k, |cx, n| range(n, k, cx));
    let want = match key {
        "connected" => UdpWant::Connected,
        "announced" => UdpWant::Announced {
            interval: r("interval", cx)?,
            peers: cx.optional(&f, "peers", |cx, n| peers_check(n, cx))?,
            seeders: r("seeders", cx)?,
            leechers: r("leechers", cx)?,
        },
        "scraped" => UdpWant::Scraped {
            files: match f.get("files") {
                Some(n) => files_check(n, true, cx)?,
                None => Vec::new(),
            },
        },
        _ => UdpWant::Error {
            message: cx.optional(&f, "message", |cx, n| cx.regex(n))?,
        },
    };
    Some(UdpCheck {
        want,
        transaction,
        loc: node.loc,
    })
}

/// What a capture path reads.
const CAPTURE_PATHS: &[&str] = &[
    "status",
    "interval",
    "complete",
    "incomplete",
    "downloaded",
    "failure",
    "peer_count",
    "connection",
    "transaction",
    "seeders",
    "leechers",
    "message",
];

fn capture_path(node: &Node, cx: &mut LoadCx) -> Option<String> {
    let s = cx.string(node, "a capture path")?;
    let peer = s
        .strip_prefix("peers[")
        .and_then(|r| r.strip_suffix(']'))
        .is_some_and(|n| n.parse::<usize>().is_ok());
    if peer || CAPTURE_PATHS.contains(&s.as_str()) {
        return Some(s);
    }
    cx.err_help(
        node,
        format!("'{s}' is not a capture path"),
        format!("capture paths: {}, peers[N]", CAPTURE_PATHS.join(", ")),
    );
    None
}

/// Checks on one tracker answer.
#[derive(Debug)]
struct TrackerExpect {
    status: Option<Vec<u16>>,
    interval: Option<Range>,
    peers: Option<PeersCheck>,
    compact: Option<bool>,
    complete: Option<Range>,
    incomplete: Option<Range>,
    downloaded: Option<Range>,
    failure: Option<FailureCheck>,
    files: Option<Vec<FileCheck>>,
    udp: Option<UdpCheck>,
    captures: Vec<(String, String)>,
    /// `refused: true`: the answer refuses the request (a 4xx status, or a failure reason).
    refused: bool,
    /// `or_refused: true`: a refusal meets this expectation too, whatever its other keys say.
    or_refused: bool,
    /// `or_silence: 1s`: no answer within this while meets it too (a UDP tracker may drop
    /// what it will not serve).
    or_silence: Option<std::time::Duration>,
    /// Where each key is written, so a failure points at its line.
    at: Vec<(&'static str, Loc)>,
}

/// Parses `expect: { status, interval, peers, compact, ..., connected | announced | scraped | error, capture }`.
pub fn parse_expect(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    // What a client under test sent the tracker actor (saw steps).
    if let Data::Map(pairs) = &node.data {
        if pairs.iter().any(|(k, _)| k.as_str() == Some("announce")) {
            return parse_announce_seen(node, cx);
        }
    }
    let mut keys = EXPECT_KEYS.to_vec();
    keys.push("capture");
    let f = cx.fields(node, &keys, "a tracker expect")?;
    let udp_keys: Vec<&'static str> = ["connected", "announced", "scraped", "error"]
        .into_iter()
        .filter(|k| f.get(k).is_some())
        .collect();
    let http_keys: Vec<&'static str> = EXPECT_KEYS[..9].iter().copied().filter(|k| f.get(k).is_some()).collect();
    if udp_keys.len() > 1 || (!udp_keys.is_empty() && !http_keys.is_empty()) {
        cx.err_help(
            node,
            format!(
                "one expect reads one answer: {} cannot all hold",
                [udp_keys.clone(), http_keys].concat().join(", ")
            ),
            "over UDP expect one of connected, announced, scraped, error; over HTTP status, interval, peers, ...",
        );
        return None;
    }
    let udp = match udp_keys.first() {
        Some(k) => Some(udp_check(k, f.get(k)?, cx)?),
        None => None,
    };
    let status = match f.get("status") {
        Some(n) => Some(
            list(n)
                .into_iter()
                .map(
                    |s| match s.as_str().and_then(|t| t.parse::<u16>().ok()).filter(|c| (100..600).contains(c)) {
                        Some(c) => Some(c),
                        None => {
                            cx.err_help(s, "a status is a code from 100 to 599", "e.g. status: 200, or status: [200, 400]");
                            None
                        }
                    },
                )
                .collect::<Option<Vec<u16>>>()?,
        ),
        None => None,
    };
    let compact = match f.get("compact") {
        Some(n) if n.is_keyword("any") => None,
        Some(n) => Some(cx.boolean(n, "compact (true, false or any)")?),
        None => None,
    };
    let failure = match f.get("failure") {
        Some(n) if n.is_keyword("true") || n.is_keyword("false") => Some(FailureCheck::Present(cx.boolean(n, "failure")?)),
        Some(n) => Some(FailureCheck::Regex(cx.regex(n)?)),
        None => None,
    };
    let r = |k: &str, cx: &mut LoadCx| cx.optional(&f, k, |cx, n| range(n, k, cx));
    let captures = match f.get("capture") {
        Some(c) => {
            let pairs = cx.mapping(
                c,
                "capture must be a mapping of variable to path",
                "e.g. capture: { every: interval, cid: connection }",
            )?;
            pairs
                .iter()
                .map(|(k, v)| Some((cx.string(k, "a variable name")?, capture_path(v, cx)?)))
                .collect::<Option<Vec<_>>>()?
        }
        None => Vec::new(),
    };
    let flag = |cx: &mut LoadCx, k: &str| match f.get(k) {
        Some(n) => cx.boolean(n, k),
        None => Some(false),
    };
    let refused = flag(cx, "refused")?;
    let or_refused = flag(cx, "or_refused")?;
    let or_silence = match f.get("or_silence") {
        Some(n) => Some(cx.duration(n, "or_silence")?),
        None => None,
    };
    Some(Box::new(TrackerExpect {
        refused,
        or_refused,
        or_silence,
        status,
        interval: r("interval", cx)?,
        peers: cx.optional(&f, "peers", |cx, n| peers_check(n, cx))?,
        compact,
        complete: r("complete", cx)?,
        incomplete: r("incomplete", cx)?,
        downloaded: r("downloaded", cx)?,
        failure,
        files: cx.optional(&f, "files", |cx, n| files_check(n, false, cx))?,
        udp,
        captures,
        at: EXPECT_KEYS.iter().filter_map(|k| f.get(k).map(|n| (*k, n.loc))).collect(),
    }))
}

fn fail(message: impl Into<String>, expected: impl Into<String>, got: &Message) -> Mismatch {
    crate::proto::steps::mismatch(message, expected, got)
}

/// Whether a peer's address is the one written (an IPv4-mapped IPv6 address is its IPv4 one).
fn same_addr(peer: &str, want: &str) -> bool {
    let norm = |s: &str| {
        s.parse::<SocketAddr>().ok().map(|a| match a.ip() {
            IpAddr::V6(v6) => SocketAddr::new(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4), a.port()),
            IpAddr::V4(_) => a,
        })
    };
    match (norm(peer), norm(want)) {
        (Some(a), Some(b)) => a == b,
        _ => peer.eq_ignore_ascii_case(want),
    }
}

impl TrackerExpect {
    fn loc(&self, key: &str) -> Option<Loc> {
        self.at.iter().find(|(k, _)| *k == key).map(|(_, l)| *l)
    }

    fn at(&self, key: &str, m: Mismatch) -> Mismatch {
        match self.loc(key) {
            Some(l) => m.at(l),
            None => m,
        }
    }

    fn count(&self, key: &str, what: &str, want: &Option<Range>, have: Option<i64>, why: &str, msg: &Message) -> Result<(), Mismatch> {
        let Some(want) = want else { return Ok(()) };
        match have {
            Some(v) if want.holds(v) => Ok(()),
            Some(v) => Err(self.at(
                key,
                fail(format!("{what} is {v}, expected {}: {why}", want.text()), self.describe(), msg),
            )),
            None => Err(self.at(
                key,
                fail(
                    format!("the answer has no {what} (an integer), expected {}: {why}", want.text()),
                    self.describe(),
                    msg,
                ),
            )),
        }
    }

    fn peers(&self, key: &str, check: &Option<PeersCheck>, peers: &[Peer], cx: &RenderCx, msg: &Message) -> Result<(), Mismatch> {
        let Some(check) = check else { return Ok(()) };
        let shown = peers_text(peers);
        if let Some(r) = &check.count {
            if !r.holds(peers.len() as i64) {
                return Err(self.at(
                    key,
                    fail(
                        format!(
                            "the answer lists {} peer(s) ({shown}), expected {}: a tracker lists the other peers that announced \
                             this torrent (BEP 3), at most numwant of them; check that every peer announced the same info_hash \
                             and that a stopped one was removed",
                            peers.len(),
                            r.text()
                        ),
                        self.describe(),
                        msg,
                    ),
                ));
            }
        }
        for t in &check.include {
            let want = t.render(cx.vars).map_err(|e| fail(e, "", msg))?;
            if !peers.iter().any(|p| same_addr(&p.addr, &want)) {
                return Err(self.at(
                    key,
                    fail(
                        format!(
                            "{want} is not among the peers ({shown}): a tracker lists each peer that announced the torrent at the \
                             address it announced from (or its ip parameter) and the port parameter it sent (BEP 3)"
                        ),
                        self.describe(),
                        msg,
                    ),
                ));
            }
        }
        for t in &check.exclude {
            let want = t.render(cx.vars).map_err(|e| fail(e, "", msg))?;
            if peers.iter().any(|p| same_addr(&p.addr, &want)) {
                return Err(self.at(
                    key,
                    fail(
                        format!(
                            "{want} is among the peers ({shown}), and this case expects it not to be: a peer that announced \
                             event=stopped has left the swarm, and a peer of another torrent is not in this one's (BEP 3)"
                        ),
                        self.describe(),
                        msg,
                    ),
                ));
            }
        }
        Ok(())
    }

    fn files(
        &self,
        key: &str,
        checks: &[FileCheck],
        have: &[(Vec<u8>, [Option<i64>; 3])],
        cx: &RenderCx,
        msg: &Message,
    ) -> Result<(), Mismatch> {
        for c in checks {
            let hash = c.hash.bytes(cx.vars).map_err(|e| fail(e, "", msg))?;
            let entry = have.iter().find(|(h, _)| *h == hash);
            let listed: Vec<String> = have.iter().map(|(h, _)| hex(h)).collect();
            let listed = if listed.is_empty() { "none".to_string() } else { listed.join(", ") };
            let err = |text: String| Err(fail(text, self.describe(), msg).at(c.loc));
            match (entry, c.absent) {
                (Some(_), true) => {
                    return err(format!(
                        "the scrape answer has an entry for {}, and this case expects none: a tracker reports only the torrents it knows",
                        c.hash.shown()
                    ))
                }
                (None, true) => continue,
                (None, false) => {
                    return err(format!(
                        "the scrape answer has no entry for {} (it has: {listed}): files is keyed by the raw 20-byte info-hash \
                         of each torrent asked for (BEP 48)",
                        c.hash.shown()
                    ))
                }
                (Some((_, counts)), false) => {
                    for ((want, have), name) in [&c.complete, &c.downloaded, &c.incomplete].into_iter().zip(counts).zip([
                        "complete (seeders)",
                        "downloaded (completed)",
                        "incomplete (leechers)",
                    ]) {
                        let Some(want) = want else { continue };
                        if !have.is_some_and(|v| want.holds(v)) {
                            let v = have.map_or("missing".to_string(), |v| v.to_string());
                            return err(format!(
                                "{name} of {} is {v}, expected {}: BEP 48 counts the peers with left=0, the event=completed \
                                 announces, and the peers still downloading",
                                c.hash.shown(),
                                want.text()
                            ));
                        }
                    }
                }
            }
        }
        let _ = key;
        Ok(())
    }

    fn check_http(&self, r: &TrackerResponse, msg: &Message, cx: &RenderCx) -> Result<(), Mismatch> {
        // A refusal: a client error status (RFC 9110 §15.5), or BEP 3's failure reason.
        let is_refusal = (400..500).contains(&r.http.status().unwrap_or(0)) || matches!(r.answer, Answer::Failure(_));
        if self.refused || (self.or_refused && is_refusal) {
            return match is_refusal {
                true => Ok(()),
                false => Err(self.at(
                    "refused",
                    fail(
                        "the tracker served a request it should refuse: answer a 'failure reason' (BEP 3) or a 4xx status",
                        self.describe(),
                        msg,
                    ),
                )),
            };
        }
        if let Some(codes) = &self.status {
            let status = r.http.status().unwrap_or(0);
            if !codes.contains(&status) {
                let want: Vec<String> = codes.iter().map(u16::to_string).collect();
                return Err(self.at(
                    "status",
                    fail(format!("status {status}, expected {}", want.join(" or ")), self.describe(), msg),
                ));
            }
        }
        let reason = match &r.answer {
            Answer::Failure(t) => Some(t.as_str()),
            _ => None,
        };
        match (&self.failure, reason) {
            (Some(FailureCheck::Present(true) | FailureCheck::Regex(_)), None) => {
                return Err(self.at(
                    "failure",
                    fail(
                        "the answer has no 'failure reason': a tracker that refuses a request (an info_hash it does not know, \
                         a parameter missing) answers a bencoded dictionary with 'failure reason', a human-readable string (BEP 3)",
                        self.describe(),
                        msg,
                    ),
                ))
            }
            (Some(FailureCheck::Present(false)), Some(t)) => {
                return Err(self.at(
                    "failure",
                    fail(format!("the tracker refused: failure reason {t:?}"), self.describe(), msg),
                ))
            }
            (Some(FailureCheck::Regex(re)), Some(t)) => {
                let p = re.render_regex(cx.vars).map_err(|e| fail(e, "", msg))?;
                let ok = Regex::new(&p).map_err(|e| fail(e.to_string(), "", msg))?.is_match(t);
                if !ok {
                    return Err(self.at(
                        "failure",
                        fail(format!("the failure reason {t:?} does not match /{p}/"), self.describe(), msg),
                    ));
                }
            }
            _ => {}
        }
        let announce_keys = ["interval", "peers", "compact", "complete", "incomplete", "downloaded"];
        let asked: Vec<&str> = announce_keys.iter().copied().filter(|k| self.loc(k).is_some()).collect();
        if let Some(first) = asked.first() {
            let a = match (&r.answer, reason) {
                (Answer::Announce(a), _) => a,
                (_, Some(t)) => {
                    return Err(self.at(
                        first,
                        fail(
                            format!("the tracker refused the announce: failure reason {t:?}, where an announce answer was expected"),
                            self.describe(),
                            msg,
                        ),
                    ))
                }
                _ => {
                    return Err(self.at(
                        first,
                        fail(
                            "not an announce answer: a tracker answers an announce with a bencoded dictionary holding interval \
                             and peers, or failure reason (BEP 3)",
                            self.describe(),
                            msg,
                        ),
                    ))
                }
            };
            self.count(
                "interval",
                "interval",
                &self.interval,
                a.interval,
                "BEP 3's interval is the seconds a client waits between regular announces",
                msg,
            )?;
            self.count(
                "complete",
                "complete",
                &self.complete,
                a.complete,
                "complete counts the seeders, the peers that announced left=0 (BEP 48's counts, which announces carry too)",
                msg,
            )?;
            self.count(
                "incomplete",
                "incomplete",
                &self.incomplete,
                a.incomplete,
                "incomplete counts the leechers, the peers with bytes left",
                msg,
            )?;
            self.count(
                "downloaded",
                "downloaded",
                &self.downloaded,
                a.downloaded,
                "downloaded counts the announces with event=completed",
                msg,
            )?;
            if let Some(want) = self.compact {
                let have = a.compact;
                if have != Some(want) {
                    let got = match have {
                        Some(true) => "a compact string",
                        Some(false) => "a list of dictionaries",
                        None => "no peers key at all",
                    };
                    let wanted = match want {
                        true => "the compact form, a string of 6 bytes a peer (BEP 23), which this case asked for with compact=1",
                        false => "a list of dictionaries with ip, port and peer id (BEP 3), which this case asked for with compact=0",
                    };
                    return Err(self.at(
                        "compact",
                        fail(format!("the peers came as {got}, expected {wanted}"), self.describe(), msg),
                    ));
                }
            }
            if self.peers.is_some() && a.compact.is_none() {
                return Err(self.at(
                    "peers",
                    fail(
                        "the answer has no peers: BEP 3 requires it in every announce answer that is not a failure",
                        self.describe(),
                        msg,
                    ),
                ));
            }
            self.peers("peers", &self.peers, &a.peers, cx, msg)?;
        }
        if let Some(files) = &self.files {
            let have: Vec<(Vec<u8>, [Option<i64>; 3])> = match (&r.answer, reason) {
                (Answer::Scrape(f), _) => f
                    .iter()
                    .map(|f| (f.info_hash.clone(), [f.complete, f.downloaded, f.incomplete]))
                    .collect(),
                (_, Some(t)) => {
                    return Err(self.at(
                        "files",
                        fail(
                            format!("the tracker refused the scrape: failure reason {t:?}"),
                            self.describe(),
                            msg,
                        ),
                    ))
                }
                _ => {
                    return Err(self.at(
                        "files",
                        fail(
                            "not a scrape answer: BEP 48's answer is a dictionary with files, keyed by info-hash",
                            self.describe(),
                            msg,
                        ),
                    ))
                }
            };
            self.files("files", files, &have, cx, msg)?;
        }
        Ok(())
    }

    fn check_udp(&self, u: &UdpFrame, msg: &Message, cx: &RenderCx) -> Result<(), Mismatch> {
        let Some(check) = &self.udp else {
            return Err(fail(
                "a UDP tracker datagram, where this expect checks an HTTP tracker answer (status, interval, peers ...): \
                 over UDP expect connected, announced, scraped or error",
                self.describe(),
                msg,
            ));
        };
        let err = |text: String| Err(fail(text, self.describe(), msg).at(check.loc));
        let tid = u.msg.transaction();
        match &check.transaction {
            Some(t) => {
                let s = t.render(cx.vars).map_err(|e| fail(e, "", msg))?;
                let want: u32 = number_in(&s, "transaction").map_err(|e| fail(e, "", msg))?;
                if tid != want {
                    return err(format!(
                        "transaction id {tid:#x}, expected {want:#x}: a reply carries the transaction id of the request it \
                         answers (BEP 15), so a client can match them"
                    ));
                }
            }
            None if u.matched == Some(false) => {
                return err(format!(
                    "transaction id {tid:#x} is none of the requests sent on this connection: a reply carries the transaction \
                     id of the request it answers (BEP 15)"
                ));
            }
            None => {}
        }
        let want_name = match &check.want {
            UdpWant::Connected => "a connect reply (action 0)",
            UdpWant::Announced { .. } => "an announce reply (action 1)",
            UdpWant::Scraped { .. } => "a scrape reply (action 2)",
            UdpWant::Error { .. } => "an error reply (action 3)",
        };
        match (&check.want, &u.msg) {
            (UdpWant::Connected, Udp::Connected { .. }) => Ok(()),
            (
                UdpWant::Announced {
                    interval,
                    peers,
                    seeders,
                    leechers,
                },
                Udp::Announced {
                    interval: i,
                    leechers: l,
                    seeders: s,
                    peers: p,
                    ..
                },
            ) => {
                let why = "BEP 15's announce reply carries interval, leechers and seeders";
                for (what, want, have) in [("interval", interval, i), ("seeders", seeders, s), ("leechers", leechers, l)] {
                    if let Some(w) = want {
                        if !w.holds(i64::from(*have)) {
                            return err(format!("{what} is {have}, expected {}: {why}", w.text()));
                        }
                    }
                }
                self.peers("announced", peers, p, cx, msg).map_err(|m| m.at(check.loc))
            }
            (UdpWant::Scraped { files }, Udp::Scraped { files: have, .. }) => {
                if files.is_empty() {
                    return Ok(());
                }
                if u.asked.is_empty() {
                    return err(
                        "which torrent each entry is for is not known: no scrape with this transaction id was sent on this \
                         connection (BEP 15's entries follow the info-hashes asked, in order)"
                            .into(),
                    );
                }
                if have.len() != u.asked.len() {
                    return err(format!(
                        "{} entries for the {} info-hashes asked: BEP 15's scrape reply has one (seeders, completed, leechers) for each, in order",
                        have.len(),
                        u.asked.len()
                    ));
                }
                let paired: Vec<(Vec<u8>, [Option<i64>; 3])> = u
                    .asked
                    .iter()
                    .zip(have)
                    .map(|(h, e)| {
                        (
                            h.to_vec(),
                            [Some(e.seeders.into()), Some(e.completed.into()), Some(e.leechers.into())],
                        )
                    })
                    .collect();
                self.files("scraped", files, &paired, cx, msg)
            }
            (UdpWant::Error { message }, Udp::Error { message: text, .. }) => {
                if let Some(re) = message {
                    let p = re.render_regex(cx.vars).map_err(|e| fail(e, "", msg))?;
                    if !Regex::new(&p).map_err(|e| fail(e.to_string(), "", msg))?.is_match(text) {
                        return err(format!("the error message {text:?} does not match /{p}/"));
                    }
                }
                Ok(())
            }
            (_, Udp::Error { message, .. }) => err(format!("the tracker answered error {message:?}, where {want_name} was expected")),
            (_, Udp::Short { .. }) => err(format!("{} is cut short, where {want_name} was expected", udp_line(&u.msg))),
            (_, other) if !other.is_reply() => err(format!("a request ({}), where {want_name} was expected", udp_line(other))),
            (_, other) => err(format!(
                "action {} ({}), where {want_name} was expected: a reply's action is its request's (BEP 15)",
                other.action(),
                udp_line(other)
            )),
        }
    }

    /// The value a capture path reads from the message, when it has one.
    fn capture(&self, path: &str, t: &Tracker) -> Option<String> {
        let peer_n = |peers: &[Peer]| -> Option<String> {
            let n: usize = path.strip_prefix("peers[")?.strip_suffix(']')?.parse().ok()?;
            peers.get(n).map(|p| p.addr.clone())
        };
        match t {
            Tracker::Response(r) => {
                let a = match &r.answer {
                    Answer::Announce(a) => Some(a),
                    _ => None,
                };
                match path {
                    "status" => r.http.status().map(|s| s.to_string()),
                    "failure" => match &r.answer {
                        Answer::Failure(t) => Some(t.clone()),
                        _ => None,
                    },
                    "interval" => a?.interval.map(|v| v.to_string()),
                    "complete" => a?.complete.map(|v| v.to_string()),
                    "incomplete" => a?.incomplete.map(|v| v.to_string()),
                    "downloaded" => a?.downloaded.map(|v| v.to_string()),
                    "peer_count" => Some(a?.peers.len().to_string()),
                    _ => peer_n(&a?.peers),
                }
            }
            Tracker::Udp(u) => match (&u.msg, path) {
                (m, "transaction") => Some(m.transaction().to_string()),
                (Udp::Connected { connection, .. }, "connection") => Some(format!("{connection:#018x}")),
                (Udp::Announced { interval, .. }, "interval") => Some(interval.to_string()),
                (Udp::Announced { seeders, .. }, "seeders") => Some(seeders.to_string()),
                (Udp::Announced { leechers, .. }, "leechers") => Some(leechers.to_string()),
                (Udp::Announced { peers, .. }, "peer_count") => Some(peers.len().to_string()),
                (Udp::Announced { peers, .. }, _) => peer_n(peers),
                (Udp::Error { message, .. }, "message") => Some(message.clone()),
                _ => None,
            },
            Tracker::Request(_) => None,
        }
    }
}

impl StructuredExpect for TrackerExpect {
    fn check(&self, msg: &Message, cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        let Some(t) = msg.detail.as_ref().and_then(|d| d.downcast_ref::<Tracker>()) else {
            return Err(fail("not a tracker message", self.describe(), msg));
        };
        match t {
            Tracker::Response(r) if self.udp.is_none() => self.check_http(r, msg, cx)?,
            Tracker::Response(_) => {
                return Err(fail(
                    "an HTTP answer, where this expect checks a UDP tracker reply (BEP 15): is the connection UDP?",
                    self.describe(),
                    msg,
                ))
            }
            Tracker::Udp(u) => self.check_udp(u, msg, cx)?,
            Tracker::Request(r) => {
                return Err(fail(
                    format!(
                        "a request ({}), where an answer from the tracker was expected",
                        msg.text.lines().next().unwrap_or(&r.path)
                    ),
                    self.describe(),
                    msg,
                ))
            }
        }
        let mut out = Vec::new();
        for (var, path) in &self.captures {
            match self.capture(path, t) {
                Some(v) => out.push((var.clone(), v)),
                None => {
                    return Err(fail(
                        format!("nothing to capture into '{var}': the answer has no {path}"),
                        self.describe(),
                        msg,
                    ))
                }
            }
        }
        Ok(out)
    }

    fn templates(&self) -> Vec<&Template> {
        fn peers(p: &Option<PeersCheck>) -> Vec<&Template> {
            p.iter().flat_map(|p| p.include.iter().chain(&p.exclude)).collect()
        }
        fn hashes(files: &[FileCheck]) -> Vec<&Template> {
            files
                .iter()
                .filter_map(|f| match &f.hash {
                    HashSrc::Hex(t) => Some(t),
                    HashSrc::Torrent { .. } => None,
                })
                .collect()
        }
        let mut t: Vec<&Template> = Vec::new();
        t.extend(peers(&self.peers));
        if let Some(FailureCheck::Regex(r)) = &self.failure {
            t.push(r);
        }
        if let Some(files) = &self.files {
            t.extend(hashes(files));
        }
        if let Some(u) = &self.udp {
            t.extend(u.transaction.iter());
            match &u.want {
                UdpWant::Announced { peers: p, .. } => t.extend(peers(p)),
                UdpWant::Scraped { files } => t.extend(hashes(files)),
                UdpWant::Error { message } => t.extend(message.iter()),
                UdpWant::Connected => {}
            }
        }
        t
    }

    fn captures(&self) -> Vec<String> {
        self.captures.iter().map(|(v, _)| v.clone()).collect()
    }

    fn describe(&self) -> String {
        let mut out = self.describe_answer();
        if self.or_refused {
            out.push_str(", or a refusal (a failure reason, or a 4xx status)");
        }
        if let Some(d) = self.or_silence {
            out.push_str(&format!(", or no answer within {d:?}"));
        }
        out
    }

    fn holds_after(&self) -> Option<std::time::Duration> {
        self.or_silence
    }
}

impl TrackerExpect {
    fn describe_answer(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.refused {
            parts.push("a refusal (a failure reason, or a 4xx status)".into());
        }
        if let Some(s) = &self.status {
            parts.push(format!("status {}", s.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ")));
        }
        match &self.failure {
            Some(FailureCheck::Present(true)) => parts.push("a failure reason".into()),
            Some(FailureCheck::Present(false)) => parts.push("no failure reason".into()),
            Some(FailureCheck::Regex(r)) => parts.push(format!("a failure reason matching /{}/", r.as_literal().unwrap_or("${..}"))),
            None => {}
        }
        for (name, r) in [
            ("interval", &self.interval),
            ("complete", &self.complete),
            ("incomplete", &self.incomplete),
            ("downloaded", &self.downloaded),
        ] {
            if let Some(r) = r {
                parts.push(format!("{name} {}", r.text()));
            }
        }
        let describe_peers = |p: &PeersCheck| {
            let mut s = match &p.count {
                Some(r) => format!("{} peer(s)", r.text()),
                None => "peers".to_string(),
            };
            let lit = |v: &[Template]| {
                v.iter()
                    .map(|t| t.as_literal().unwrap_or("${..}").to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            if !p.include.is_empty() {
                s.push_str(&format!(" including {}", lit(&p.include)));
            }
            if !p.exclude.is_empty() {
                s.push_str(&format!(" but not {}", lit(&p.exclude)));
            }
            s
        };
        if let Some(p) = &self.peers {
            parts.push(describe_peers(p));
        }
        if let Some(c) = self.compact {
            parts.push(if c {
                "compact peers".into()
            } else {
                "peers as dictionaries".into()
            });
        }
        let describe_files = |files: &[FileCheck]| {
            files
                .iter()
                .map(|f| {
                    if f.absent {
                        return format!("no entry for {}", f.hash.shown());
                    }
                    let counts: Vec<String> = [
                        ("complete", &f.complete),
                        ("downloaded", &f.downloaded),
                        ("incomplete", &f.incomplete),
                    ]
                    .iter()
                    .filter_map(|(n, r)| r.as_ref().map(|r| format!("{n} {}", r.text())))
                    .collect();
                    format!("{}: {}", f.hash.shown(), counts.join(", "))
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        if let Some(files) = &self.files {
            parts.push(format!("files {}", describe_files(files)));
        }
        if let Some(u) = &self.udp {
            let tid = u
                .transaction
                .as_ref()
                .map_or(String::new(), |t| format!(" tid {}", t.as_literal().unwrap_or("${..}")));
            parts.push(match &u.want {
                UdpWant::Connected => format!("connected{tid}"),
                UdpWant::Announced {
                    interval,
                    peers,
                    seeders,
                    leechers,
                } => {
                    let mut s = format!("announced{tid}");
                    for (n, r) in [("interval", interval), ("seeders", seeders), ("leechers", leechers)] {
                        if let Some(r) = r {
                            s.push_str(&format!(" {n} {}", r.text()));
                        }
                    }
                    if let Some(p) = peers {
                        s.push_str(&format!(" {}", describe_peers(p)));
                    }
                    s
                }
                UdpWant::Scraped { files } if files.is_empty() => format!("scraped{tid}"),
                UdpWant::Scraped { files } => format!("scraped{tid} {}", describe_files(files)),
                UdpWant::Error { message: Some(m) } => format!("error{tid} matching /{}/", m.as_literal().unwrap_or("${..}")),
                UdpWant::Error { message: None } => format!("error{tid}"),
            });
            return format!("a UDP tracker reply: {}", parts.join(", "));
        }
        if parts.is_empty() {
            return "a tracker answer".into();
        }
        format!("a tracker answer with {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::codec::{HttpTrackerCodec, UdpScrapeEntry, UdpTrackerCodec};
    use super::*;
    use crate::proto::bittorrent::bencode::Build;
    use crate::proto::steps::testing::{expect, send};
    use crate::proto::{Codec, Direction, Frame};

    const SAMPLE: &str = "978d8983bd506915a578f583b1e9a3ff32c1c7b2";
    const MULTI: &str = "2175addea59de6998d3a0877a7b958d6bd662235";
    /// The fixtures, as a suite in suites/ names them.
    const TORRENT: &str = "../fixtures/bittorrent/sample.torrent";

    fn vars() -> Vars {
        HashMap::from([
            ("target.host".to_string(), "127.0.0.1".to_string()),
            ("target.port".to_string(), "6969".to_string()),
            ("cid".to_string(), "0x0000000000000abc".to_string()),
        ])
    }

    fn render(yaml: &str, transport: Transport) -> Result<Vec<u8>, String> {
        let s = send(&STEPS, yaml)?;
        let v = vars();
        s.render(&RenderCx {
            vars: &v,
            base_dir: std::path::Path::new("suites"),
            transport,
            local: None,
        })
    }

    fn text(yaml: &str) -> String {
        String::from_utf8(render(yaml, Transport::Tcp).unwrap()).unwrap()
    }

    #[test]
    fn an_announce_from_a_torrent_fills_in_the_defaults() {
        let wire = text(&format!("announce: {{ torrent: {TORRENT}, port: 6001, event: started }}"));
        assert_eq!(
            wire,
            "GET /announce?info_hash=%97%8D%89%83%BDPi%15%A5x%F5%83%B1%E9%A3%FF2%C1%C7%B2&peer_id=-WC0001-000000006001\
             &port=6001&uploaded=0&downloaded=0&left=150000&event=started&compact=1 HTTP/1.1\r\nHost: 127.0.0.1:6969\r\n\
             Connection: close\r\n\r\n"
        );
        let (m, _) = frame(Direction::ClientToServer, wire.as_bytes(), None);
        assert_eq!(
            m.text,
            format!(
                "announce info_hash {SAMPLE} peer_id \"-WC0001-000000006001\" port 6001 uploaded 0 downloaded 0 left 150000 \
                 event started compact 1"
            )
        );
    }

    #[test]
    fn an_announce_can_omit_parameters_or_send_a_raw_query() {
        let wire = text(&format!(
            "announce: {{ info_hash: {MULTI}, omit: [port, compact], numwant: 5, left: 0, keep_alive: true, path: /t/announce }}"
        ));
        assert!(wire.starts_with("GET /t/announce?info_hash=%21u%AD"), "{wire}");
        assert!(wire.contains("&uploaded=0&downloaded=0&left=0&numwant=5 HTTP/1.1\r\n"), "{wire}");
        assert!(!wire.contains("port=") && !wire.contains("Connection"), "{wire}");
        let wire = text("announce: { raw_query: \"info_hash=%zz&port=1\" }");
        assert!(wire.starts_with("GET /announce?info_hash=%zz&port=1 HTTP/1.1\r\n"), "{wire}");
        assert!(send(&STEPS, "announce: { raw_query: x, port: 1 }")
            .unwrap_err()
            .contains("raw_query sends the query as written"));
        assert!(send(&STEPS, &format!("announce: {{ info_hash: {MULTI}, omit: [bogus] }}"))
            .unwrap_err()
            .contains("not an announce parameter"));
        assert!(send(&STEPS, "announce: { torrent: nope.torrent }").unwrap_err().contains("no file"));
    }

    #[test]
    fn a_scrape_names_torrents_by_file_or_hex() {
        let wire = text(&format!("scrape: {{ info_hash: [{TORRENT}, {MULTI}] }}"));
        assert!(wire.starts_with("GET /scrape?info_hash=%97%8D"), "{wire}");
        let (m, _) = frame(Direction::ClientToServer, wire.as_bytes(), None);
        assert_eq!(m.text, format!("scrape info_hash {SAMPLE} {MULTI}"));
    }

    #[test]
    fn udp_requests_are_bep_15_packets() {
        let connect = render("connect: { transaction: 4660 }", Transport::Udp).unwrap();
        assert_eq!(
            connect,
            [&0x41727101980u64.to_be_bytes()[..], &[0, 0, 0, 0, 0, 0, 0x12, 0x34]].concat()
        );
        let a = render(
            &format!(
                "announce: {{ connection: \"${{cid}}\", transaction: 1, torrent: {TORRENT}, port: 6001, event: started, numwant: 50 }}"
            ),
            Transport::Udp,
        )
        .unwrap();
        let (m, _) = frame(Direction::ClientToServer, &a, Some(Transport::Udp));
        assert_eq!(
            m.text,
            format!(
                "announce cid 0x0000000000000abc tid 0x1 info_hash {SAMPLE} peer_id \"-WC0001-000000006001\" uploaded 0 \
                 downloaded 0 left 150000 event started port 6001 numwant 50"
            )
        );
        let s = render(&format!("scrape: {{ connection: 7, info_hash: [{MULTI}] }}"), Transport::Udp).unwrap();
        assert_eq!(s.len(), 36);
        // Keys of the other transport, and a missing connection id, are errors when sent.
        let e = render("connect: {}", Transport::Tcp).unwrap_err();
        assert!(e.contains("UDP tracker (BEP 15) request"), "{e}");
        let e = render(&format!("announce: {{ torrent: {TORRENT} }}"), Transport::Udp).unwrap_err();
        assert!(e.contains("needs connection"), "{e}");
        let e = render(
            &format!("announce: {{ torrent: {TORRENT}, compact: 0, connection: 1 }}"),
            Transport::Udp,
        )
        .unwrap_err();
        assert!(e.contains("'compact' is an HTTP tracker key"), "{e}");
        let e = render(&format!("announce: {{ torrent: {TORRENT}, connection: 1 }}"), Transport::Tcp).unwrap_err();
        assert!(e.contains("'connection' is a UDP tracker"), "{e}");
        assert!(send(&STEPS, "connect: { transaction: lots }").unwrap_err().contains("not a number"));
    }

    /// Frames `bytes` with the protocol's codec, the harness's request having gone first.
    fn frame(dir: Direction, bytes: &[u8], udp: Option<Transport>) -> (Message, usize) {
        let mut c: Box<dyn Codec> = match udp {
            Some(_) => Box::new(UdpTrackerCodec::new(dir)),
            None => Box::new(HttpTrackerCodec::new(dir)),
        };
        if dir == Direction::ServerToClient && udp.is_none() {
            c.peer_sent(b"GET /announce?info_hash=a HTTP/1.1\r\n\r\nGET /scrape HTTP/1.1\r\n\r\n");
        }
        match c.decode(bytes, true).unwrap() {
            Frame::Message(m, used) => (m, used),
            Frame::Incomplete => panic!("incomplete"),
        }
    }

    fn answer(body: Build) -> Message {
        let body = body.encode();
        let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        r.extend(body);
        frame(Direction::ServerToClient, &r, None).0
    }

    fn scrape_answer(body: Build) -> Message {
        let body = body.encode();
        let mut c = HttpTrackerCodec::new(Direction::ServerToClient);
        c.peer_sent(b"GET /scrape HTTP/1.1\r\n\r\n");
        let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        r.extend(body);
        match c.decode(&r, true).unwrap() {
            Frame::Message(m, _) => m,
            Frame::Incomplete => panic!(),
        }
    }

    fn check(yaml: &str, m: &Message) -> Result<Vec<(String, String)>, Mismatch> {
        let e = expect(&STEPS, yaml).unwrap_or_else(|e| panic!("{e}"));
        let v = vars();
        e.check(
            m,
            &RenderCx {
                vars: &v,
                base_dir: std::path::Path::new("suites"),
                transport: Transport::Tcp,
                local: None,
            },
        )
    }

    fn peers_dicts(addrs: &[(&str, i64)]) -> Build {
        Build::List(
            addrs
                .iter()
                .map(|(ip, port)| {
                    Build::dict([
                        ("ip", Build::text(ip)),
                        ("port", Build::Int(*port)),
                        ("peer id", Build::text("-WC0001-000000000001")),
                    ])
                })
                .collect(),
        )
    }

    #[test]
    fn peers_are_checked_in_either_form() {
        let compact = answer(Build::dict([
            ("interval", Build::Int(1800)),
            ("complete", Build::Int(1)),
            ("incomplete", Build::Int(0)),
            ("peers", Build::Bytes(vec![127, 0, 0, 1, 0x17, 0x71])),
        ]));
        let dicts = answer(Build::dict([
            ("interval", Build::Int(1800)),
            ("peers", peers_dicts(&[("127.0.0.1", 6001)])),
        ]));
        let want =
            "{ status: 200, interval: { min: 1 }, peers: { count: 1, include: [\"127.0.0.1:6001\"], exclude: [\"127.0.0.1:6002\"] } }";
        for m in [&compact, &dicts] {
            check(want, m).unwrap();
        }
        check("{ complete: 1, incomplete: 0, compact: true }", &compact).unwrap();
        let e = check("{ compact: true }", &dicts).unwrap_err();
        assert!(
            e.message.contains("list of dictionaries") && e.message.contains("BEP 23"),
            "{}",
            e.message
        );
        let e = check("{ peers: { include: [\"127.0.0.1:6002\"] } }", &compact).unwrap_err();
        assert!(
            e.message.starts_with("127.0.0.1:6002 is not among the peers (127.0.0.1:6001)"),
            "{}",
            e.message
        );
        assert!(e.at.is_some());
        let e = check("{ peers: { exclude: [\"127.0.0.1:6001\"] } }", &dicts).unwrap_err();
        assert!(e.message.contains("event=stopped"), "{}", e.message);
        let e = check("{ peers: { count: { min: 2 } } }", &compact).unwrap_err();
        assert!(
            e.message
                .starts_with("the answer lists 1 peer(s) (127.0.0.1:6001), expected at least 2"),
            "{}",
            e.message
        );
        let e = check("{ interval: { max: 60 } }", &compact).unwrap_err();
        assert!(
            e.message.starts_with("interval is 1800, expected at most 60: BEP 3"),
            "{}",
            e.message
        );
        let caps = check(
            "{ interval: 1800, capture: { every: interval, first: \"peers[0]\", n: peer_count } }",
            &dicts,
        )
        .unwrap();
        assert_eq!(
            caps,
            [
                ("every".into(), "1800".into()),
                ("first".into(), "127.0.0.1:6001".into()),
                ("n".into(), "1".into())
            ]
        );
        assert!(check("{ capture: { p: \"peers[3]\" } , status: 200 }", &dicts)
            .unwrap_err()
            .message
            .contains("no peers[3]"));
        assert!(expect(&STEPS, "{ status: 200, capture: { x: nonsense } }")
            .unwrap_err()
            .contains("not a capture path"));
        assert!(expect(&STEPS, "{ status: 700 }")
            .unwrap_err()
            .contains("a status is a code from 100 to 599"));
    }

    #[test]
    fn failures_are_expected_or_refused() {
        let refused = answer(Build::dict([("failure reason", Build::text("unknown torrent"))]));
        check("{ failure: true }", &refused).unwrap();
        check("{ failure: \"^unknown\" }", &refused).unwrap();
        assert!(check("{ failure: \"^nope\" }", &refused)
            .unwrap_err()
            .message
            .contains("does not match"));
        let e = check("{ interval: { min: 1 } }", &refused).unwrap_err();
        assert!(
            e.message.contains("refused the announce: failure reason \"unknown torrent\""),
            "{}",
            e.message
        );
        let fine = answer(Build::dict([("interval", Build::Int(1800)), ("peers", Build::Bytes(vec![]))]));
        let e = check("{ failure: true }", &fine).unwrap_err();
        assert!(
            e.message.contains("no 'failure reason'") && e.message.contains("BEP 3"),
            "{}",
            e.message
        );
        check("{ failure: false, peers: { count: 0 } }", &fine).unwrap();
        assert!(check("{ failure: false }", &refused).unwrap_err().message.contains("refused"));
    }

    #[test]
    fn scrape_files_are_found_by_torrent_or_hash() {
        let stats = |c, d, i| {
            Build::dict([
                ("complete", Build::Int(c)),
                ("downloaded", Build::Int(d)),
                ("incomplete", Build::Int(i)),
            ])
        };
        let m = scrape_answer(Build::dict([(
            "files",
            Build::Dict(vec![(unhex(SAMPLE).unwrap(), stats(1, 0, 2))]),
        )]));
        check(
            &format!("{{ files: {{ {TORRENT}: {{ complete: 1, downloaded: 0, incomplete: 2 }}, \"{MULTI}\": {{ absent: true }} }} }}"),
            &m,
        )
        .unwrap();
        let e = check(&format!("{{ files: {{ \"{SAMPLE}\": {{ incomplete: {{ max: 1 }} }} }} }}"), &m).unwrap_err();
        assert!(
            e.message
                .starts_with(&format!("incomplete (leechers) of {SAMPLE} is 2, expected at most 1")),
            "{}",
            e.message
        );
        let e = check(&format!("{{ files: {{ \"{MULTI}\": {{ complete: 0 }} }} }}"), &m).unwrap_err();
        assert!(
            e.message.contains(&format!("no entry for {MULTI} (it has: {SAMPLE})")),
            "{}",
            e.message
        );
    }

    fn udp_reply(sent: &[Udp], reply: &Udp) -> Message {
        let mut c = UdpTrackerCodec::new(Direction::ServerToClient);
        for s in sent {
            c.peer_sent(&s.encode());
        }
        match c.decode(&reply.encode(), true).unwrap() {
            Frame::Message(m, _) => m,
            Frame::Incomplete => panic!(),
        }
    }

    #[test]
    fn udp_replies_are_checked_with_their_transaction() {
        let connect = Udp::Connect {
            protocol_id: CONNECT_MAGIC,
            transaction: 4660,
        };
        let m = udp_reply(
            std::slice::from_ref(&connect),
            &Udp::Connected {
                transaction: 4660,
                connection: 0xabc,
            },
        );
        let caps = check("{ connected: { transaction: 4660 }, capture: { cid: connection } }", &m).unwrap();
        assert_eq!(caps, [("cid".to_string(), "0x0000000000000abc".to_string())]);
        check("{ connected: {} }", &m).unwrap();
        let wrong = udp_reply(
            std::slice::from_ref(&connect),
            &Udp::Connected {
                transaction: 4661,
                connection: 0xabc,
            },
        );
        let e = check("{ connected: {} }", &wrong).unwrap_err();
        assert!(
            e.message.contains("0x1235 is none of the requests sent") && e.message.contains("BEP 15"),
            "{}",
            e.message
        );
        let e = check("{ connected: { transaction: 4660 } }", &wrong).unwrap_err();
        assert!(e.message.starts_with("transaction id 0x1235, expected 0x1234"), "{}", e.message);
        let err = udp_reply(
            std::slice::from_ref(&connect),
            &Udp::Error {
                transaction: 4660,
                message: "go away".into(),
            },
        );
        assert!(check("{ connected: {} }", &err).unwrap_err().message.contains("error \"go away\""));
        check("{ error: { transaction: 4660, message: away } }", &err).unwrap();
        let scrape = Udp::Scrape {
            connection: 1,
            transaction: 2,
            info_hashes: vec![<[u8; 20]>::try_from(unhex(SAMPLE).unwrap()).unwrap()],
        };
        let m = udp_reply(
            &[scrape],
            &Udp::Scraped {
                transaction: 2,
                files: vec![UdpScrapeEntry {
                    seeders: 1,
                    completed: 0,
                    leechers: 0,
                }],
            },
        );
        check(
            &format!("{{ scraped: {{ transaction: 2, files: {{ {TORRENT}: {{ seeders: 1, completed: 0, leechers: 0 }} }} }} }}"),
            &m,
        )
        .unwrap();
        let e = check(&format!("{{ scraped: {{ files: {{ {TORRENT}: {{ seeders: 2 }} }} }} }}"), &m).unwrap_err();
        assert!(e.message.contains("complete (seeders)"), "{}", e.message);
        let announced = udp_reply(
            &[],
            &Udp::Announced {
                transaction: 1,
                interval: 1800,
                leechers: 1,
                seeders: 0,
                peers: super::super::codec::compact_peers(&[127, 0, 0, 1, 0x17, 0x71], 6),
            },
        );
        check("{ announced: { transaction: 1, interval: { min: 1 }, peers: { count: 1, include: [\"127.0.0.1:6001\"] }, seeders: 0, leechers: 1 } }", &announced).unwrap();
        let e = check("{ announced: { seeders: 1 } }", &announced).unwrap_err();
        assert!(e.message.starts_with("seeders is 0, expected 1"), "{}", e.message);
        // An HTTP expect does not read a UDP reply, nor the other way round.
        assert!(check("{ interval: 1 }", &announced)
            .unwrap_err()
            .message
            .contains("over UDP expect"));
        let http = answer(Build::dict([("interval", Build::Int(1)), ("peers", Build::Bytes(vec![]))]));
        assert!(check("{ announced: {} }", &http).unwrap_err().message.contains("UDP tracker reply"));
        assert!(expect(&STEPS, "{ announced: {}, interval: 1 }")
            .unwrap_err()
            .contains("one expect reads one answer"));
    }
}

/// An announce a client sent: `saw: { actor: tracker, announce: { event: started, torrent: FILE, left: 0 } }`.
#[derive(Debug)]
struct AnnounceSeen {
    /// `started`, `completed`, `stopped`, or `none` (a regular announce: no event, or empty).
    event: Option<String>,
    info_hash: Option<[u8; 20]>,
    left: Option<u64>,
}

fn parse_announce_seen(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    let f = cx.fields(node, &["announce"], "an announce a client sent")?;
    let v = f.get("announce")?;
    if matches!(v.data, Data::Null) {
        return Some(Box::new(AnnounceSeen {
            event: None,
            info_hash: None,
            left: None,
        }));
    }
    let g = cx.fields(v, &["event", "torrent", "left"], "an announce")?;
    let event = match g.get("event") {
        Some(e) => {
            let e = cx.string(e, "event")?;
            if !["started", "completed", "stopped", "none"].contains(&e.as_str()) {
                cx.err_help(
                    g.get("event")?,
                    format!("'{e}' is no announce event"),
                    "started, completed, stopped, or none (a regular announce)",
                );
                return None;
            }
            Some(e)
        }
        None => None,
    };
    let info_hash = match g.get("torrent") {
        Some(t) => {
            let fixture = cx.fixture(t, "torrent")?;
            match Metainfo::parse(&fixture.bytes) {
                Ok(m) => Some(m.info_hash),
                Err(e) => {
                    cx.err(t, format!("{} is not a torrent: {e}", fixture.display()));
                    return None;
                }
            }
        }
        None => None,
    };
    let left = match g.get("left") {
        Some(l) => Some(cx.number::<u64>(l, "left")?),
        None => None,
    };
    Some(Box::new(AnnounceSeen { event, info_hash, left }))
}

impl StructuredExpect for AnnounceSeen {
    fn check(&self, msg: &Message, _cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        // What the announce says, over HTTP (query parameters) or UDP (BEP 15's fields).
        let (event, info_hash, left): (Option<String>, Option<Vec<u8>>, Option<u64>) =
            match msg.detail.as_ref().and_then(|d| d.downcast_ref::<Tracker>()) {
                Some(Tracker::Request(r)) if r.ask == super::codec::Ask::Announce => (
                    r.param("event")
                        .map(|e| String::from_utf8_lossy(e).into_owned())
                        .filter(|e| !e.is_empty()),
                    r.param("info_hash").map(<[u8]>::to_vec),
                    r.param("left")
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(|v| v.parse::<u64>().ok()),
                ),
                Some(Tracker::Udp(u)) => match &u.msg {
                    super::codec::Udp::Announce(a) => (
                        Some(super::codec::event_name(a.event)).filter(|e| e != "none"),
                        Some(a.info_hash.to_vec()),
                        Some(a.left),
                    ),
                    _ => return Err(fail("not an announce", self.describe(), msg)),
                },
                _ => return Err(fail("not an announce", self.describe(), msg)),
            };
        if let Some(want) = &self.event {
            let same = match event.as_deref() {
                None => want == "none",
                Some(g) => g == want,
            };
            if !same {
                return Err(fail(format!("event {}", event.as_deref().unwrap_or("none")), self.describe(), msg));
            }
        }
        if let Some(h) = &self.info_hash {
            if info_hash.as_deref() != Some(h.as_slice()) {
                return Err(fail(
                    "the info_hash is not the torrent's: the SHA-1 of the info dictionary's bytes as they are in the .torrent file (BEP 3)",
                    self.describe(),
                    msg,
                ));
            }
        }
        if let Some(l) = self.left {
            if left != Some(l) {
                return Err(fail(
                    format!("left {}", left.map_or("missing".to_string(), |g| g.to_string())),
                    self.describe(),
                    msg,
                ));
            }
        }
        Ok(Vec::new())
    }
    fn templates(&self) -> Vec<&Template> {
        Vec::new()
    }
    fn captures(&self) -> Vec<String> {
        Vec::new()
    }
    fn describe(&self) -> String {
        let mut parts = vec!["an announce".to_string()];
        if let Some(e) = &self.event {
            parts.push(format!("event {e}"));
        }
        if let Some(h) = &self.info_hash {
            parts.push(format!("info_hash {}", hex(h)));
        }
        if let Some(l) = self.left {
            parts.push(format!("left {l}"));
        }
        parts.join(", ")
    }
}
