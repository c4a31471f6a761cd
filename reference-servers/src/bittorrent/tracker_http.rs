//! The HTTP side of `bt-tracker` (BEP 3 "Trackers", BEP 23, BEP 48): `GET /announce?...` and
//! `GET /scrape?...`, answered `200` with a bencoded `text/plain` body (a failure too, as
//! `failure reason`), keys sorted.
//!
//! HTTP as far as a tracker needs it (RFC 9112): the head (at most `MAX_HEAD` bytes) parsed by
//! `httparse`; HTTP/1.1 connections persist unless `Connection: close`, HTTP/1.0 ones close
//! unless `Connection: keep-alive`; a request with a body, a missing or repeated Host (HTTP/1.1),
//! or a malformed head gets 400, another version 505, a head too large 431 (each closing the
//! connection); another path 404, another method than GET or HEAD 405. Every response carries
//! Date, Content-Type and Content-Length.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use super::bencode::{KeyOrder, Value};
use super::swarm::{Announce, Event, Family, Fault, Id, Reply, Tracker};
use crate::guard::{Goodbye, Reason, Stream};

/// The largest request head read (request line and fields).
const MAX_HEAD: usize = 8 << 10;
/// The most header fields a request may have.
const MAX_FIELDS: usize = 64;

/// RFC 9110 §15.5.9: 408 for a request that did not arrive complete in time; a connection with
/// no request under way is just closed (RFC 9112 §9.5).
pub(super) fn goodbye() -> Goodbye {
    Arc::new(|reason| (reason == Reason::Slow).then(|| response(408, b"the request did not arrive complete in time\n", true, false)))
}

/// What the server needs of one request head.
#[derive(Debug)]
struct Head {
    method: String,
    target: String,
    /// HTTP/1.`minor`.
    minor: u8,
    hosts: usize,
    close: bool,
    keep_alive: bool,
    has_body: bool,
}

enum Parsed {
    Complete(Head, usize),
    Partial,
    /// A status to answer with before closing.
    Invalid(u16),
}

fn parse_head(bytes: &[u8]) -> Parsed {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut request = httparse::Request::new(&mut fields);
    let used = match request.parse(bytes) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid(431),
        Err(httparse::Error::Version) => return Parsed::Invalid(505),
        Err(_) => return Parsed::Invalid(400),
    };
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version) else {
        return Parsed::Invalid(400);
    };
    let mut head = Head {
        method: method.to_owned(),
        target: target.to_owned(),
        minor,
        hosts: 0,
        close: false,
        keep_alive: false,
        has_body: false,
    };
    for field in request.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("host") {
            head.hosts += 1;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in String::from_utf8_lossy(field.value).split(',') {
                let token = token.trim();
                head.close |= token.eq_ignore_ascii_case("close");
                head.keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || (name.eq_ignore_ascii_case("content-length") && field.value.trim_ascii() != b"0")
        {
            head.has_body = true;
        }
    }
    Parsed::Complete(head, used)
}

/// Serves requests on one connection, in order, until either side is done with it.
pub(super) async fn serve_connection(mut stream: Stream, peer: SocketAddr, tracker: Arc<Tracker>, idle: Duration) {
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let (head, used) = loop {
            match parse_head(&buffer) {
                Parsed::Complete(head, used) => break (head, used),
                Parsed::Invalid(status) => {
                    let _ = send(&mut stream, &response(status, b"bad request\n", true, false), idle).await;
                    return;
                }
                Parsed::Partial if buffer.len() >= MAX_HEAD => {
                    let _ = send(&mut stream, &response(431, b"request head too large\n", true, false), idle).await;
                    return;
                }
                Parsed::Partial => {}
            }
            let mut chunk = [0u8; 2048];
            let room = (MAX_HEAD - buffer.len()).min(chunk.len());
            match timeout(idle, stream.read(&mut chunk[..room])).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => buffer.extend_from_slice(&chunk[..n]),
                Err(_) => {
                    // Between requests an idle connection is owed nothing; mid-request it is late.
                    if !buffer.is_empty() {
                        let _ = send(&mut stream, &response(408, b"request timeout\n", true, false), idle).await;
                    }
                    return;
                }
            }
        };
        buffer.drain(..used);
        let persistent = if head.minor == 1 {
            !head.close
        } else {
            head.keep_alive && !head.close
        };
        let (status, body, close) = if (head.minor == 1 && head.hosts != 1) || head.hosts > 1 {
            (400, b"one Host field, please (RFC 9112 section 3.2)\n".to_vec(), true)
        } else if head.has_body {
            (400, b"a tracker request has no body\n".to_vec(), true)
        } else {
            let (status, body) = route(&head, peer.ip(), &tracker);
            (status, body, !persistent)
        };
        let head_only = head.method == "HEAD";
        if send(&mut stream, &response(status, &body, close, head_only), idle).await.is_err() || close {
            return;
        }
    }
}

async fn send(stream: &mut Stream, bytes: &[u8], idle: Duration) -> Result<(), ()> {
    match timeout(idle, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

fn response(status: u16, body: &[u8], close: bool, head_only: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "HTTP Version Not Supported",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nDate: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
        httpdate::fmt_http_date(SystemTime::now()),
        body.len()
    );
    if status == 405 {
        head.push_str("Allow: GET, HEAD\r\n");
    }
    head.push_str(if close { "Connection: close\r\n\r\n" } else { "\r\n" });
    let mut out = head.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// The status and body for a well-formed request.
fn route(head: &Head, source: IpAddr, tracker: &Tracker) -> (u16, Vec<u8>) {
    // The absolute form (RFC 9112 §3.2.2) names the same resource as the origin form.
    let target = match head.target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |at| &rest[at..]),
        None => head.target.as_str(),
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let answer: fn(&str, IpAddr, &Tracker) -> Vec<u8> = match path {
        "/announce" => announce,
        "/scrape" => scrape,
        _ => return (404, b"not found: a tracker has /announce and /scrape\n".to_vec()),
    };
    if head.method != "GET" && head.method != "HEAD" {
        return (405, b"a tracker answers GET\n".to_vec());
    }
    (200, answer(query, source, tracker))
}

/// One query parameter: its name, and its value's bytes (`None` when its escapes are broken).
type Param = (String, Option<Vec<u8>>);

/// The parameters of a query string, `+` taken as itself (RFC 3986; BEP 3 escapes binary values).
fn params(query: &str) -> Vec<Param> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key).map_or_else(|| key.to_owned(), |k| String::from_utf8_lossy(&k).into_owned());
            (key, percent_decode(value))
        })
        .collect()
}

/// `%XX` escapes decoded; `None` for a `%` not followed by two hex digits. By hand because the
/// `percent-encoding` crate passes broken escapes through, and a tracker must tell them apart.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = bytes.get(at + 1..at + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    Some(out)
}

/// The first value of `key`: `None` when absent, `Some(None)` when its escapes are broken.
fn first<'a>(params: &'a [Param], key: &str) -> Option<Option<&'a [u8]>> {
    params.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_deref())
}

fn id(params: &[Param], key: &str) -> Result<Id, String> {
    match first(params, key) {
        None => Err(format!("missing {key}")),
        Some(value) => value
            .and_then(|bytes| Id::try_from(bytes).ok())
            .ok_or_else(|| format!("invalid {key}: not 20 bytes")),
    }
}

fn text<'a>(params: &'a [Param], key: &str) -> Result<Option<&'a str>, String> {
    match first(params, key) {
        None => Ok(None),
        Some(value) => value
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .map(Some)
            .ok_or_else(|| format!("invalid {key}")),
    }
}

fn number(params: &[Param], key: &str) -> Result<Option<u64>, String> {
    text(params, key)?
        .map(|t| t.parse::<u64>().map_err(|_| format!("invalid {key}: not a non-negative integer")))
        .transpose()
}

/// The announce a query string describes, or the failure reason saying what is wrong with it.
fn read_announce(params: &[Param], source: IpAddr) -> Result<Announce, String> {
    let info_hash = id(params, "info_hash")?;
    let peer_id = id(params, "peer_id")?;
    let port = match text(params, "port")? {
        None => return Err("missing port".to_owned()),
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|&port| port != 0)
            .ok_or("invalid port: not a number from 1 to 65535")?,
    };
    for key in ["uploaded", "downloaded"] {
        number(params, key)?;
    }
    let left = number(params, "left")?;
    let event = match first(params, "event") {
        Some(Some(b"started")) => Event::Started,
        Some(Some(b"completed")) => Event::Completed,
        Some(Some(b"stopped")) => Event::Stopped,
        _ => Event::None,
    };
    let numwant = match text(params, "numwant")? {
        None => None,
        Some(n) => match n.parse::<i64>() {
            // Some clients send -1 for "the tracker's default", as BEP 15 does.
            Ok(n) if n < 0 => None,
            Ok(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            Err(_) => return Err("invalid numwant: not an integer".to_owned()),
        },
    };
    // A host name is not resolved: only a literal address is honored.
    let ip = text(params, "ip").ok().flatten().and_then(|ip| ip.parse::<IpAddr>().ok());
    Ok(Announce {
        info_hash,
        peer_id,
        port,
        left,
        event,
        ip,
        source,
        numwant,
        family: Family::Any,
    })
}

fn order(tracker: &Tracker) -> KeyOrder {
    if tracker.has(Fault::UnsortedKeys) {
        KeyOrder::Reversed
    } else {
        KeyOrder::Sorted
    }
}

fn failure(reason: &str, tracker: &Tracker) -> Vec<u8> {
    Value::dict([("failure reason", Value::bytes(reason.as_bytes()))]).encode(order(tracker))
}

/// The body answering `GET /announce?query`.
fn announce(query: &str, source: IpAddr, tracker: &Tracker) -> Vec<u8> {
    let params = params(query);
    let announce = match read_announce(&params, source) {
        Ok(announce) => announce,
        Err(reason) if reason.contains("info_hash") && tracker.has(Fault::NoParamCheck) => {
            return Value::dict([
                ("interval", Value::Int(i64::from(tracker.interval()))),
                ("peers", Value::bytes(&b""[..])),
            ])
            .encode(order(tracker))
        }
        Err(reason) => return failure(&reason, tracker),
    };
    match tracker.announce(&announce) {
        Ok(reply) => {
            let compact = first(&params, "compact") == Some(Some(&b"1"[..]));
            let with_ids = first(&params, "no_peer_id") != Some(Some(&b"1"[..]));
            announce_body(&reply, compact, with_ids, tracker).encode(order(tracker))
        }
        Err(reason) => failure(reason, tracker),
    }
}

fn announce_body(reply: &Reply, compact: bool, with_ids: bool, tracker: &Tracker) -> Value {
    let mut body = BTreeMap::new();
    let mut put = |key: &str, value: Value| {
        body.insert(key.as_bytes().to_vec(), value);
    };
    put("interval", Value::count(u64::from(reply.interval)));
    put("complete", Value::count(reply.complete));
    put("incomplete", Value::count(reply.incomplete));
    if compact {
        let little_endian = tracker.has(Fault::PortLittleEndian);
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for peer in &reply.peers {
            let port = if little_endian {
                peer.port.to_le_bytes()
            } else {
                peer.port.to_be_bytes()
            };
            let out = match peer.ip {
                IpAddr::V4(ip) => {
                    v4.extend_from_slice(&ip.octets());
                    &mut v4
                }
                IpAddr::V6(ip) => {
                    v6.extend_from_slice(&ip.octets());
                    &mut v6
                }
            };
            out.extend_from_slice(&port);
        }
        // BEP 7: IPv6 peers in `peers6`, only when there are some.
        if !v6.is_empty() {
            put("peers6", Value::Bytes(v6));
        }
        put("peers", Value::Bytes(v4));
    } else {
        let peers = reply
            .peers
            .iter()
            .map(|peer| {
                let mut dict = vec![
                    ("ip", Value::bytes(peer.ip.to_string())),
                    ("port", Value::count(u64::from(peer.port))),
                ];
                if with_ids {
                    dict.push(("peer id", Value::bytes(&peer.id[..])));
                }
                Value::dict(dict)
            })
            .collect();
        put("peers", Value::List(peers));
    }
    Value::Dict(body)
}

/// The body answering `GET /scrape?query` (BEP 48): `files` keyed by raw info-hash.
fn scrape(query: &str, _source: IpAddr, tracker: &Tracker) -> Vec<u8> {
    let params = params(query);
    let mut hashes = Vec::new();
    for (key, value) in &params {
        if key == "info_hash" {
            match value.as_deref().and_then(|bytes| Id::try_from(bytes).ok()) {
                Some(hash) => hashes.push(hash),
                None => return failure("invalid info_hash: not 20 bytes", tracker),
            }
        }
    }
    let files = tracker
        .scrape(&hashes, false)
        .into_iter()
        .map(|(hash, counts)| {
            let entry = Value::dict([
                ("complete", Value::count(counts.complete)),
                ("downloaded", Value::count(counts.downloaded)),
                ("incomplete", Value::count(counts.incomplete)),
            ]);
            (hash.to_vec(), entry)
        })
        .collect();
    Value::dict([("files", Value::Dict(files))]).encode(order(tracker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escaped_binary_values() {
        let params = params("info_hash=%97%8D%89a+b&peer_id=-WC0001-&empty&bad=%g1");
        assert_eq!(params[0].1.as_deref(), Some(&b"\x97\x8d\x89a+b"[..]));
        assert_eq!(params[2], ("empty".to_owned(), Some(Vec::new())));
        assert_eq!(params[3], ("bad".to_owned(), None));
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%41%42"), Some(b"AB".to_vec()));
    }

    #[test]
    fn rejects_announces_missing_what_they_need() {
        let source: IpAddr = [127, 0, 0, 1].into();
        let hash = "%AA".repeat(20);
        let ok = format!("info_hash={hash}&peer_id=-WC0001-000000000001&port=6001&left=5");
        let announce = read_announce(&params(&ok), source).unwrap();
        assert_eq!((announce.port, announce.left, announce.event), (6001, Some(5), Event::None));
        for (query, reason) in [
            ("peer_id=-WC0001-000000000001&port=1".to_owned(), "missing info_hash"),
            (
                format!("info_hash={hash}%AA&peer_id=-WC0001-000000000001&port=1"),
                "invalid info_hash",
            ),
            (format!("info_hash={hash}&port=1"), "missing peer_id"),
            (format!("info_hash={hash}&peer_id=short&port=1"), "invalid peer_id"),
            (format!("info_hash={hash}&peer_id=-WC0001-000000000001"), "missing port"),
            (format!("{ok}&port=0").replacen("port=6001&", "", 1), "invalid port"),
            (format!("{ok}&numwant=many"), "invalid numwant"),
        ] {
            let why = read_announce(&params(&query), source).unwrap_err();
            assert!(why.starts_with(reason), "{query}: {why}");
        }
    }

    #[test]
    fn parses_heads() {
        let Parsed::Complete(head, used) = parse_head(b"GET /announce?x=1 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET") else {
            panic!("a complete head");
        };
        assert_eq!((head.minor, head.keep_alive, head.hosts, used), (0, true, 0, 54));
        assert!(matches!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n"), Parsed::Partial));
        assert!(matches!(parse_head(b"GET / HTTP/2.0\r\n\r\n"), Parsed::Invalid(505)));
        assert!(matches!(parse_head(b"GET\x01 / HTTP/1.1\r\n\r\n"), Parsed::Invalid(400)));
    }
}
