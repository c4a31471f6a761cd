//! The HTTP tracker protocol (BEP 3, compact peers BEP 23): one announce, a GET whose reply is a
//! bencoded dictionary. A udp:// tracker is `udp_tracker.rs`'s (BEP 15).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bendy::decoding::{Decoder, Object};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::metainfo::MAX_DEPTH;

/// A tracker's reply (head and body) larger than this is refused.
const MAX_REPLY: usize = 1 << 20;
/// Peers taken from one reply.
const MAX_PEERS: usize = 200;
/// What we ask for (BEP 3's usual default).
pub(super) const NUMWANT: u32 = 50;

/// One announce's parameters.
#[derive(Debug, Clone)]
pub(super) struct Announce {
    /// The torrent's `announce` URL.
    pub(super) url: String,
    /// SHA-1 of the info dictionary.
    pub(super) info_hash: [u8; 20],
    /// Ours.
    pub(super) peer_id: [u8; 20],
    /// Our listening TCP port.
    pub(super) port: u16,
    /// Bytes sent to peers so far.
    pub(super) uploaded: u64,
    /// Bytes received from peers so far.
    pub(super) downloaded: u64,
    /// Bytes still missing.
    pub(super) left: u64,
    /// `started`, `completed`, `stopped`, or none for a regular re-announce.
    pub(super) event: Option<&'static str>,
    /// The `compact-only` fault: a list of peer dictionaries is read as no peers.
    pub(super) compact_only: bool,
}

/// What the tracker said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reply {
    /// Seconds until the next announce, if given.
    pub(super) interval: Option<u64>,
    /// Other peers of the torrent.
    pub(super) peers: Vec<SocketAddr>,
}

/// Why an announce got no peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AnnounceError {
    /// The tracker refused, with this `failure reason`.
    Failure(String),
    /// No answer, or not one that is a tracker's.
    Broken(String),
}

/// Sends the announce and reads the reply, all within `wait`.
pub(super) async fn announce(a: &Announce, wait: Duration) -> Result<Reply, AnnounceError> {
    let broken = AnnounceError::Broken;
    let url = Url::parse(&a.url).map_err(broken)?;
    let request = request(a, &url);
    let exchange = async {
        let mut stream = connect(&url).await?;
        stream.write_all(request.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
        read_reply(&mut stream).await
    };
    let body = match timeout(wait, exchange).await {
        Err(_) => return Err(broken(format!("no answer from {} within {wait:?}", url.authority))),
        Ok(result) => result.map_err(broken)?,
    };
    parse_body(&body, a.compact_only)
}

/// An `http://host[:port]/path[?query]` URL.
#[derive(Debug, PartialEq, Eq)]
struct Url {
    host: String,
    port: u16,
    /// `host:port` as written, for Host.
    authority: String,
    /// The path and any query, `/` when there is none.
    target: String,
}

impl Url {
    fn parse(url: &str) -> Result<Url, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("announce URL {url:?} is neither http:// nor udp://"))?;
        let (authority, target) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let target = if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_owned()
        };
        // A request line with a space or a control character in it would be a different request.
        if authority.is_empty() || url.chars().any(|c| c.is_control() || c == ' ') {
            return Err(format!("bad announce URL {url:?}"));
        }
        let bad = || format!("bad host in announce URL {url:?}");
        let (host, port) = match authority.strip_prefix('[') {
            // An IPv6 literal: [addr] or [addr]:port (RFC 3986 §3.2.2).
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(bad)?;
                let port = match after {
                    "" => 80,
                    after => after.strip_prefix(':').and_then(|p| p.parse().ok()).ok_or_else(bad)?,
                };
                (host, port)
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
                None => (authority, 80),
            },
        };
        if host.is_empty() {
            return Err(bad());
        }
        let host = host.to_owned();
        Ok(Url {
            host,
            port,
            authority: authority.to_owned(),
            target,
        })
    }
}

async fn connect(url: &Url) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = match url.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, url.port)],
        Err(_) => tokio::net::lookup_host((url.host.as_str(), url.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
            .collect(),
    };
    let mut last = format!("{} has no address", url.host);
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// The GET request (BEP 3's query parameters; compact=1 as BEP 23 asks).
fn request(a: &Announce, url: &Url) -> String {
    let mut query = format!(
        "info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}&compact=1&numwant={NUMWANT}",
        percent(&a.info_hash),
        percent(&a.peer_id),
        a.port,
        a.uploaded,
        a.downloaded,
        a.left
    );
    if let Some(event) = a.event {
        query.push_str("&event=");
        query.push_str(event);
    }
    let sep = if url.target.contains('?') { '&' } else { '?' };
    format!(
        "GET {}{sep}{query} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        url.target, url.authority
    )
}

/// URL-encodes raw bytes: unreserved characters as they are, the rest as %XX (RFC 3986 §2).
fn percent(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads the HTTP response to its end (Content-Length, chunked, or the close) and returns its
/// body when the status is 200; a tracker's `failure reason` is read whatever the status.
async fn read_reply(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REPLY {
            return Err(format!("the tracker's reply is over {MAX_REPLY} bytes"));
        }
        if let Some(reply) = complete_reply(&buf, n == 0)? {
            return Ok(reply);
        }
        if n == 0 {
            return Err("the tracker closed the connection in the middle of its reply".to_owned());
        }
    }
}

/// The body of a complete response in `buf`, `None` while more is to come.
fn complete_reply(buf: &[u8], eof: bool) -> Result<Option<Vec<u8>>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("not an HTTP response: {e}")),
    };
    let status = response.code.unwrap_or(0);
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let rest = &buf[head_len..];
    let body = if header("transfer-encoding").is_some_and(|te| te.ends_with("chunked")) {
        match dechunk(rest)? {
            Some(body) => body,
            None => return Ok(None),
        }
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| format!("bad Content-Length {length:?}"))?;
        match rest.len() >= length {
            true => rest[..length].to_vec(),
            false => return Ok(None),
        }
    } else if eof {
        rest.to_vec()
    } else {
        return Ok(None);
    };
    if status == 100 {
        return Err("the tracker answered 100 Continue to a GET".to_owned());
    }
    if status != 200 && failure_reason(&body).is_none() {
        return Err(format!("the tracker answered {status}"));
    }
    Ok(Some(body))
}

/// A chunked body's bytes once its last chunk has arrived (RFC 9112 §7.1).
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&rest[..eol]);
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            // Trailer fields, then the empty line.
            loop {
                let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                if eol == 0 {
                    return Ok(Some(body));
                }
                rest = &rest[eol + 2..];
            }
        }
        if rest.len() < size.saturating_add(2) {
            return Ok(None);
        }
        body.extend_from_slice(&rest[..size]);
        if &rest[size..size + 2] != b"\r\n" {
            return Err("a chunk not followed by CRLF".to_owned());
        }
        rest = &rest[size + 2..];
    }
}

fn failure_reason(body: &[u8]) -> Option<String> {
    let mut decoder = Decoder::new(body).with_max_depth(MAX_DEPTH);
    let Ok(Some(Object::Dict(mut dict))) = decoder.next_object() else {
        return None;
    };
    while let Ok(Some((key, value))) = dict.next_pair() {
        if let (b"failure reason", Object::Bytes(reason)) = (key, value) {
            return Some(String::from_utf8_lossy(reason).into_owned());
        }
    }
    None
}

/// The reply's dictionary: `failure reason`, or `interval` and `peers` (a compact string of
/// 6-byte entries, BEP 23, or a list of dictionaries with `ip` and `port`, BEP 3).
fn parse_body(body: &[u8], compact_only: bool) -> Result<Reply, AnnounceError> {
    if let Some(reason) = failure_reason(body) {
        return Err(AnnounceError::Failure(reason));
    }
    let bad = |e: bendy::decoding::Error| AnnounceError::Broken(format!("the tracker's reply is not bencode: {e}"));
    let mut decoder = Decoder::new(body).with_max_depth(MAX_DEPTH);
    let Some(Object::Dict(mut dict)) = decoder.next_object().map_err(bad)? else {
        return Err(AnnounceError::Broken("the tracker's reply is not a dictionary".to_owned()));
    };
    let mut reply = Reply {
        interval: None,
        peers: Vec::new(),
    };
    let mut saw_peers = false;
    while let Some((key, value)) = dict.next_pair().map_err(bad)? {
        match (key, value) {
            (b"interval", Object::Integer(n)) => reply.interval = n.parse().ok(),
            (b"peers", Object::Bytes(compact)) => {
                saw_peers = true;
                if compact.len() % 6 != 0 {
                    return Err(AnnounceError::Broken(format!(
                        "compact peers of {} bytes, not a multiple of 6",
                        compact.len()
                    )));
                }
                for entry in compact.chunks_exact(6).take(MAX_PEERS) {
                    let ip = IpAddr::from([entry[0], entry[1], entry[2], entry[3]]);
                    reply.peers.push(SocketAddr::new(ip, u16::from_be_bytes([entry[4], entry[5]])));
                }
            }
            (b"peers", Object::List(mut list)) => {
                saw_peers = true;
                while let Some(item) = list.next_object().map_err(bad)? {
                    let Object::Dict(mut peer) = item else { continue };
                    let (mut ip, mut port) = (None, None);
                    while let Some((key, value)) = peer.next_pair().map_err(bad)? {
                        match (key, value) {
                            (b"ip", Object::Bytes(v)) => ip = std::str::from_utf8(v).ok().and_then(|s| s.parse::<IpAddr>().ok()),
                            (b"port", Object::Integer(v)) => port = v.parse::<u16>().ok(),
                            _ => {}
                        }
                    }
                    // A host name instead of an address is skipped: BEP 3 allows it, loopback swarms never use it.
                    if let (Some(ip), Some(port)) = (ip, port) {
                        if reply.peers.len() < MAX_PEERS && !compact_only {
                            reply.peers.push(SocketAddr::new(ip, port));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    match saw_peers {
        true => Ok(reply),
        false => Err(AnnounceError::Broken("the tracker's reply has no `peers`".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let url = Url::parse("http://127.0.0.1:6969/announce").expect("url");
        assert_eq!((url.host.as_str(), url.port, url.target.as_str()), ("127.0.0.1", 6969, "/announce"));
        let url = Url::parse("http://tracker.example?x=1").expect("url");
        assert_eq!((url.port, url.target.as_str()), (80, "/?x=1"));
        let url = Url::parse("http://[::1]:7000/a").expect("url");
        assert_eq!((url.host.as_str(), url.port), ("::1", 7000));
        for bad in ["udp://127.0.0.1:6969", "http:///x", "http://a b/", "http://a/\r\nX: y"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trip_query() {
        let a = Announce {
            url: "http://127.0.0.1:1/announce?key=k".into(),
            info_hash: [0xab; 20],
            peer_id: *b"-WR0001-abcdefghijkl",
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: Some("started"),
            compact_only: false,
        };
        let url = Url::parse(&a.url).expect("url");
        let text = request(&a, &url);
        assert!(text.starts_with("GET /announce?key=k&info_hash=%AB%AB"), "{text}");
        assert!(text.contains(
            "&peer_id=-WR0001-abcdefghijkl&port=6881&uploaded=1&downloaded=2&left=3&compact=1&numwant=50&event=started HTTP/1.1\r\n"
        ));
        assert!(text.ends_with("Host: 127.0.0.1:1\r\nConnection: close\r\n\r\n"));
    }

    fn http(body: &[u8]) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn parses_replies() {
        let compact = http(b"d8:intervali1e5:peers12:\x7f\0\0\x01\x17\x71\x7f\0\0\x02\x17\x72e");
        let body = complete_reply(&compact, false).expect("ok").expect("complete");
        let reply = parse_body(&body, false).expect("reply");
        assert_eq!(reply.interval, Some(1));
        let peers: Vec<String> = reply.peers.iter().map(ToString::to_string).collect();
        assert_eq!(peers, ["127.0.0.1:6001", "127.0.0.2:6002"]);
        let dicts = b"d8:intervali2e5:peersld2:ip9:127.0.0.17:peer id20:-XX0000-0000000000004:porti6001eeee";
        let reply = parse_body(dicts, false).expect("reply");
        assert_eq!((reply.interval, reply.peers.len()), (Some(2), 1));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nd8:in\r\n13;x=y\r\ntervali1e5:peers0:e\r\n0\r\nX: 1\r\n\r\n";
        let body = complete_reply(chunked, false).expect("ok").expect("complete");
        assert_eq!(parse_body(&body, false).expect("reply").peers, []);
        let to_close = b"HTTP/1.0 200 OK\r\n\r\nd5:peers0:e";
        assert_eq!(complete_reply(to_close, false), Ok(None));
        assert!(complete_reply(to_close, true).expect("ok").is_some());
    }

    #[test]
    fn incomplete_replies_wait() {
        let whole = http(b"d5:peers0:e");
        for cut in 0..whole.len() {
            assert_eq!(complete_reply(&whole[..cut], false), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn rejects_failures_and_garbage() {
        let failure = http(b"d14:failure reason15:unknown torrente");
        let body = complete_reply(&failure, false).expect("ok").expect("complete");
        assert_eq!(parse_body(&body, false), Err(AnnounceError::Failure("unknown torrent".into())));
        assert!(complete_reply(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false).is_err());
        assert!(complete_reply(b"SSH-2.0-x\r\n\r\n", false).is_err());
        assert!(matches!(parse_body(b"d5:peers7:1234567e", false), Err(AnnounceError::Broken(_))));
        assert!(matches!(parse_body(b"d8:intervali1ee", false), Err(AnnounceError::Broken(_))));
        assert!(matches!(parse_body(b"le", false), Err(AnnounceError::Broken(_))));
        assert!(matches!(parse_body(&[b'l'; 5000], false), Err(AnnounceError::Broken(_))));
    }
}
