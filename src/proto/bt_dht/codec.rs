//! KRPC (BEP 5): one bencoded dictionary per UDP datagram, a query (`y: q`), a response
//! (`y: r`) or an error (`y: e`), each with the transaction id `t` its answer copies.
//!
//! Every datagram frames as one message, readable or not: a node that sends something that is
//! not KRPC gets a MUST finding naming what is wrong, so a case fails with the reason rather than
//! with "nothing arrived".

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use crate::proto::bittorrent::bencode::{self, Kind, Value};
use crate::proto::{escape_bytes, Codec, CodecError, Finding, Frame, Level, Message};

/// The rule every finding here cites.
pub const BEP5: &str = "BEP 5 (KRPC)";
/// Bytes of one compact node info: node id, IPv4 address, port (BEP 5).
pub const NODE_INFO: usize = 26;
/// Bytes of one compact peer info: IPv4 address and port (BEP 5).
pub const PEER_INFO: usize = 6;
/// K, the size of a bucket and of a `nodes` answer (BEP 5: "currently eight").
pub const K: usize = 8;

/// A node of a `nodes` answer: its id and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The 20-byte node id.
    pub id: [u8; 20],
    /// Where it listens.
    pub addr: SocketAddrV4,
}

/// What a KRPC message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind3 {
    /// `y: q` with its method name (`q`), or None when `q` is missing or not text.
    Query(Option<String>),
    /// `y: r`.
    Response,
    /// `y: e` with its code and message, when they have the shape BEP 5 gives them.
    Error(Option<i64>, Option<String>),
    /// Any other `y` (or none), as written.
    Other(Option<Vec<u8>>),
}

/// A KRPC message, read leniently: what a check needs, with the dictionary kept whole.
#[derive(Debug, Clone)]
pub struct Krpc {
    /// The transaction id, when there is one.
    pub t: Option<Vec<u8>>,
    /// Query, response, error or something else.
    pub kind: Kind3,
    /// The arguments of a query (`a`) or the values of a response (`r`).
    pub body: Option<Value>,
    /// The client version string (`v`), when given.
    pub v: Option<Vec<u8>>,
    /// BEP 43's read-only flag (`ro`) of a query, when given.
    pub ro: Option<i64>,
}

impl Krpc {
    /// The byte string at `key` of the query's arguments or the response's values.
    pub fn bytes(&self, key: &str) -> Option<&[u8]> {
        self.body.as_ref()?.get(key)?.bytes()
    }

    /// The integer at `key` of the arguments or values.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.body.as_ref()?.get(key)?.int()
    }

    /// The sender's node id, when it is 20 bytes.
    pub fn id(&self) -> Option<[u8; 20]> {
        self.bytes("id").and_then(|b| b.try_into().ok())
    }

    /// The method of a query.
    pub fn method(&self) -> Option<&str> {
        match &self.kind {
            Kind3::Query(m) => m.as_deref(),
            _ => None,
        }
    }

    /// The nodes of a response, read as compact node info (whole entries only).
    pub fn nodes(&self) -> Option<Vec<NodeInfo>> {
        self.bytes("nodes").map(compact_nodes)
    }

    /// The peers of a `get_peers` response's `values` (6-byte entries only).
    pub fn values(&self) -> Option<Vec<SocketAddrV4>> {
        let list = self.body.as_ref()?.get("values")?.list()?;
        Some(list.iter().filter_map(|v| v.bytes()).filter_map(compact_peer).collect())
    }
}

/// Compact node info (BEP 5), the whole entries of `b`.
pub fn compact_nodes(b: &[u8]) -> Vec<NodeInfo> {
    b.chunks_exact(NODE_INFO)
        .filter_map(|c| {
            let id: [u8; 20] = c[..20].try_into().ok()?;
            let addr = compact_peer(&c[20..])?;
            Some(NodeInfo { id, addr })
        })
        .collect()
}

/// A compact peer (IPv4 address and port, network order), when `b` is 6 bytes.
pub fn compact_peer(b: &[u8]) -> Option<SocketAddrV4> {
    let b: [u8; PEER_INFO] = b.try_into().ok()?;
    Some(SocketAddrV4::new(
        Ipv4Addr::new(b[0], b[1], b[2], b[3]),
        u16::from_be_bytes([b[4], b[5]]),
    ))
}

/// A compact peer's 6 bytes.
pub fn compact_addr(a: SocketAddrV4) -> [u8; PEER_INFO] {
    let ip = a.ip().octets();
    let port = a.port().to_be_bytes();
    [ip[0], ip[1], ip[2], ip[3], port[0], port[1]]
}

/// XOR distance of two ids (BEP 5: "distance(A,B) = |A xor B|"), comparable as bytes.
pub fn distance(a: &[u8; 20], b: &[u8; 20]) -> [u8; 20] {
    let mut d = [0u8; 20];
    for i in 0..20 {
        d[i] = a[i] ^ b[i];
    }
    d
}

fn must(text: impl Into<String>) -> Finding {
    Finding {
        level: Level::Must,
        rule: BEP5,
        text: text.into(),
    }
}

/// Reads one datagram: None when it is not a bencoded dictionary at all (with the reason).
pub fn parse(b: &[u8]) -> Result<(Krpc, Vec<Finding>), String> {
    let (v, noncanonical) = bencode::decode(b).map_err(|e| format!("not bencode: {e}"))?;
    let Some(_) = v.dict() else {
        return Err("not a bencoded dictionary".into());
    };
    let mut findings = Vec::new();
    if let Some(n) = noncanonical.first() {
        // BEP 3 fixes the encoding: a peer that cannot rely on it may not read the message.
        findings.push(Finding {
            level: Level::Must,
            rule: "BEP 3 (bencoding)",
            text: format!("not canonical bencode at byte {}: {}", n.offset, n.what),
        });
    }
    let t = match v.get("t") {
        Some(t) => match t.bytes() {
            Some(b) => Some(b.to_vec()),
            None => {
                findings.push(must("the transaction id `t` is not a string"));
                None
            }
        },
        None => {
            findings.push(must("no transaction id `t`: \"Every message has a key \"t\" with a string value\""));
            None
        }
    };
    let y = v.get("y").and_then(|y| y.bytes()).map(<[u8]>::to_vec);
    let kind = match y.as_deref() {
        Some(b"q") => {
            let q = v.get("q").and_then(|q| q.str()).map(str::to_string);
            if q.is_none() {
                findings.push(must("a query without its method name `q`"));
            }
            Kind3::Query(q)
        }
        Some(b"r") => Kind3::Response,
        Some(b"e") => {
            let e = v.get("e").and_then(|e| e.list());
            let code = e.and_then(|l| l.first()).and_then(Value::int);
            let msg = e
                .and_then(|l| l.get(1))
                .and_then(|m| m.bytes())
                .map(|m| String::from_utf8_lossy(m).into_owned());
            match e {
                Some(l) if l.len() == 2 && code.is_some() && msg.is_some() => {}
                _ => findings.push(must(
                    "an error's `e` is not a list of an integer code and a string message: \"The value is a list. The first element is an integer representing the error code. The second element is a string containing the error message\"",
                )),
            }
            if let Some(c) = code {
                if !(201..=204).contains(&c) {
                    findings.push(Finding {
                        level: Level::Should,
                        rule: BEP5,
                        text: format!("error code {c} is none of BEP 5's 201 to 204"),
                    });
                }
            }
            Kind3::Error(code, msg)
        }
        other => {
            findings.push(must(match other {
                Some(_) => "`y` is none of q (query), r (response) and e (error)",
                None => "no message type `y`",
            }));
            Kind3::Other(other.map(<[u8]>::to_vec))
        }
    };
    let body_key = match kind {
        Kind3::Query(_) => Some("a"),
        Kind3::Response => Some("r"),
        _ => None,
    };
    let body = body_key.and_then(|k| v.get(k)).cloned();
    if let Some(k) = body_key {
        match &body {
            Some(b) if b.dict().is_some() => {}
            Some(_) => findings.push(must(format!("`{k}` is not a dictionary"))),
            None => findings.push(must(format!(
                "no `{k}` dictionary: a {} carries its {} in it",
                if k == "a" { "query" } else { "response" },
                if k == "a" { "arguments" } else { "return values" }
            ))),
        }
    }
    let msg = Krpc {
        t,
        kind,
        body,
        v: v.get("v").and_then(|v| v.bytes()).map(<[u8]>::to_vec),
        ro: v.get("ro").and_then(Value::int),
    };
    if matches!(msg.kind, Kind3::Query(_) | Kind3::Response) && msg.body.as_ref().is_some_and(|b| b.dict().is_some()) {
        match msg.bytes("id") {
            Some(id) if id.len() == 20 => {}
            Some(id) => findings.push(must(format!("the node id is {} bytes, not 20", id.len()))),
            None => findings.push(must("no node `id`: every query and response carries the sender's id")),
        }
    }
    check_values(&msg, &mut findings);
    Ok((msg, findings))
}

fn check_values(msg: &Krpc, findings: &mut Vec<Finding>) {
    let Some(body) = msg.body.as_ref() else { return };
    for key in ["target", "info_hash"] {
        if let Some(b) = body.get(key) {
            if b.bytes().map(<[u8]>::len) != Some(20) {
                findings.push(must(format!("`{key}` is not a 20-byte string")));
            }
        }
    }
    if let Some(n) = body.get("nodes") {
        match n.bytes() {
            Some(b) if b.len() % NODE_INFO == 0 => {}
            Some(b) => findings.push(must(format!(
                "`nodes` is {} bytes, not a whole number of 26-byte compact node infos",
                b.len()
            ))),
            None => findings.push(must("`nodes` is not a string of compact node infos")),
        }
    }
    if let Some(v) = body.get("values") {
        match v.list() {
            Some(l) if l.iter().all(|p| p.bytes().map(<[u8]>::len) == Some(PEER_INFO)) => {}
            Some(_) => findings.push(must("a `values` entry is not a 6-byte compact peer (IPv4 address and port)")),
            None => findings.push(must("`values` is not a list of compact peers")),
        }
    }
    if let Some(t) = body.get("token") {
        if t.bytes().is_none() {
            findings.push(must("`token` is not a string"));
        }
    }
}

/// A byte string for a transcript: printable text quoted, else hex.
pub fn show(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(t) if !t.is_empty() && t.bytes().all(|c| c.is_ascii_graphic() || c == b' ') => format!("{t:?}"),
        _ => format!("0x{}", bencode::hex(b)),
    }
}

fn short_id(b: &[u8]) -> String {
    bencode::hex(b).chars().take(8).collect()
}

/// One line for a message: what it is, then its keys in a fixed order. Tokens show their
/// length only: a node makes them from a secret, so their bytes differ on every run.
pub fn line(m: &Krpc) -> String {
    let t = m.t.as_deref().map_or("-".to_string(), show);
    let mut s = match &m.kind {
        Kind3::Query(q) => format!("query {} t={t}", q.as_deref().unwrap_or("?")),
        Kind3::Response => format!("response t={t}"),
        Kind3::Error(c, msg) => format!(
            "error t={t} {} {}",
            c.map_or("?".into(), |c| c.to_string()),
            msg.as_deref().map_or("?".into(), |m| format!("{m:?}"))
        ),
        Kind3::Other(y) => format!("message y={} t={t}", y.as_deref().map_or("-".into(), show)),
    };
    if let Some(ro) = &m.ro {
        s.push_str(&format!(" ro={ro}"));
    }
    let Some(body) = m.body.as_ref().and_then(|b| b.dict()) else {
        return s;
    };
    for (k, v) in body {
        let key = String::from_utf8_lossy(k);
        let text = match (key.as_ref(), &v.kind) {
            ("id" | "target" | "info_hash", Kind::Bytes(b)) if b.len() == 20 => bencode::hex(b),
            ("token", Kind::Bytes(b)) => format!("<{} bytes>", b.len()),
            ("nodes", Kind::Bytes(b)) if b.len() % NODE_INFO == 0 => {
                let list: Vec<String> = compact_nodes(b).iter().map(|n| format!("{}@{}", short_id(&n.id), n.addr)).collect();
                format!("[{}]", list.join(" "))
            }
            ("values", Kind::List(l)) => {
                let list: Vec<String> = l
                    .iter()
                    .map(|p| match p.bytes().and_then(compact_peer) {
                        Some(a) => a.to_string(),
                        None => p.render(),
                    })
                    .collect();
                format!("[{}]", list.join(" "))
            }
            (_, Kind::Bytes(b)) => show(b),
            _ => v.render(),
        };
        s.push_str(&format!(" {key}={text}"));
    }
    s
}

/// Frames each datagram as one KRPC message.
#[derive(Debug, Default)]
pub struct KrpcCodec;

impl Codec for KrpcCodec {
    fn decode(&mut self, buf: &[u8], _eof: bool) -> Result<Frame, CodecError> {
        let message = match parse(buf) {
            Ok((k, findings)) => {
                let text = line(&k);
                Message {
                    text: text.clone(),
                    summary: text,
                    findings,
                    detail: Some(Arc::new(k)),
                }
            }
            Err(why) => {
                let text = format!("datagram {} bytes \"{}\"", buf.len(), escape_bytes(buf, 120));
                Message {
                    text: text.clone(),
                    summary: text,
                    findings: vec![must(format!("not a KRPC message ({why}): every message is a bencoded dictionary"))],
                    detail: None,
                }
            }
        };
        Ok(Frame::Message(message, buf.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(b: &[u8]) -> Message {
        match KrpcCodec.decode(b, false).unwrap() {
            Frame::Message(m, used) => {
                assert_eq!(used, b.len());
                m
            }
            Frame::Incomplete => panic!("a datagram is always whole"),
        }
    }

    fn krpc(m: &Message) -> &Krpc {
        m.detail.as_ref().unwrap().downcast_ref::<Krpc>().unwrap()
    }

    #[test]
    fn reads_bep5_examples() {
        // The examples of BEP 5, byte for byte.
        let m = frame(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe");
        assert_eq!(m.summary, "query ping t=\"aa\" id=6162636465666768696a30313233343536373839");
        assert!(m.findings.is_empty(), "{:?}", m.findings);
        let m = frame(b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re");
        assert_eq!(krpc(&m).kind, Kind3::Response);
        let m = frame(b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee");
        assert_eq!(m.summary, "error t=\"aa\" 201 \"A Generic Error Ocurred\"");
        let m = frame(b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re");
        assert!(m.findings.is_empty(), "{:?}", m.findings);
        assert_eq!(krpc(&m).values().unwrap().len(), 2);
        assert!(m.summary.contains("token=<8 bytes>"), "{}", m.summary);
    }

    #[test]
    fn names_what_breaks_the_shape() {
        let m = frame(b"d1:ad2:id5:shorte1:q4:ping1:y1:qe");
        let texts: Vec<_> = m.findings.iter().map(|f| f.text.clone()).collect();
        assert!(texts.iter().any(|t| t.contains("no transaction id")), "{texts:?}");
        assert!(texts.iter().any(|t| t.contains("5 bytes, not 20")), "{texts:?}");
        let m = frame(b"d1:rd2:id20:abcdefghij01234567895:nodes3:abce1:t1:x1:y1:re");
        assert!(m.findings.iter().any(|f| f.text.contains("26-byte")), "{:?}", m.findings);
        let m = frame(b"d1:eli999ee1:t1:x1:y1:ee");
        assert!(m.findings.iter().any(|f| f.level == Level::Must), "{:?}", m.findings);
        let m = frame(b"not bencode");
        assert!(m.findings[0].text.contains("not a KRPC message"), "{:?}", m.findings);
        assert!(m.detail.is_none());
    }

    #[test]
    fn reads_compact_nodes_and_xor_distance() {
        let mut b = vec![0x80u8; 20];
        b.extend_from_slice(&[127, 0, 0, 2, 0x1a, 0xe1]);
        let n = compact_nodes(&b);
        assert_eq!(n[0].addr.to_string(), "127.0.0.2:6881");
        assert_eq!(compact_addr(n[0].addr), [127, 0, 0, 2, 0x1a, 0xe1]);
        let d = distance(&[0xf0; 20], &[0x0f; 20]);
        assert_eq!(d, [0xff; 20]);
    }
}
