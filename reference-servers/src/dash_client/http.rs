//! The player's HTTP/1.1 client (RFC 9112): GET with an optional `Range`, one persistent
//! connection per host and port, Content-Length, chunked and close-delimited bodies, redirects
//! followed. Every wait is bounded: 2 s without a byte fails the request, which is what lets the
//! player move on to the next BaseURL.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use super::dns::Resolver;
use super::mpd::ByteRange;
use super::url::{Target, Url};

/// Connecting, sending, or waiting for the next byte of an answer.
pub(super) const WAIT: Duration = Duration::from_secs(2);
/// The largest body taken (a whole file, when a server ignores a range).
pub(super) const MAX_BODY: usize = 64 << 20;
/// A response's head, or one line of a chunked body's framing.
const MAX_HEAD: usize = 64 * 1024;
/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// A successful (2xx) answer.
#[derive(Debug)]
pub(super) struct Fetched {
    /// The bytes asked for: the range's, when a server answered a range request with the whole
    /// file.
    pub(super) body: Vec<u8>,
    /// Body bytes that came over the wire, for the throughput.
    pub(super) received: usize,
    /// When the (first) request was about to be sent.
    pub(super) sent: Instant,
    /// When its last byte arrived.
    pub(super) done: Instant,
    /// The URL that answered, when a redirect led there.
    pub(super) redirected: Option<Url>,
}

/// How far the body of the request under way has come, for a watcher running beside it (the
/// player's abandonment check); every field is 0 until a response's body starts.
#[derive(Debug)]
pub(super) struct Progress {
    origin: Instant,
    /// Microseconds from `origin` to when the request under way was sent.
    sent_us: AtomicU64,
    /// Body bytes received so far.
    received: AtomicU64,
    /// The body's length, when its head gave it.
    expected: AtomicU64,
}

impl Progress {
    /// Progress of no request yet.
    pub(super) fn new() -> Progress {
        Progress {
            origin: Instant::now(),
            sent_us: AtomicU64::new(0),
            received: AtomicU64::new(0),
            expected: AtomicU64::new(0),
        }
    }

    fn begin(&self) {
        let us = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.sent_us.store(us, Ordering::Relaxed);
        self.received.store(0, Ordering::Relaxed);
        self.expected.store(0, Ordering::Relaxed);
    }

    fn body(&self, received: usize, expected: Option<usize>) {
        self.received.store(received as u64, Ordering::Relaxed);
        if let Some(n) = expected {
            self.expected.store(n as u64, Ordering::Relaxed);
        }
    }

    /// (seconds since the request under way was sent, body bytes so far, body length if known).
    pub(super) fn now(&self) -> (f64, u64, Option<u64>) {
        let sent = Duration::from_micros(self.sent_us.load(Ordering::Relaxed));
        let elapsed = self.origin.elapsed().saturating_sub(sent).as_secs_f64();
        let expected = self.expected.load(Ordering::Relaxed);
        (elapsed, self.received.load(Ordering::Relaxed), (expected > 0).then_some(expected))
    }
}

/// A response as read off the connection.
struct Response {
    status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

/// Why an exchange failed.
enum Failure {
    /// A reused connection was closed before any byte of the answer: the server dropped an idle
    /// connection (RFC 9112 §9.3.1), so the request may go again on a new one.
    Stale(String),
    /// Nothing came back on the connection within `WAIT` (or the request could not be sent):
    /// on a new connection, the next address of the name is tried.
    Silent(String),
    /// Anything else.
    Failed(String),
}

/// One connection and the bytes read past the last response.
struct Conn {
    stream: TcpStream,
    /// The address connected to.
    peer: SocketAddr,
    buf: Vec<u8>,
}

/// The client: its idle persistent connections, by host and port.
pub(super) struct Client {
    idle: HashMap<(String, u16), Conn>,
    /// `no-host` fault: false omits the Host field.
    send_host: bool,
    /// `--dns`: host names are asked of this resolver instead of the system's.
    dns: Option<Resolver>,
    /// `first-address-only` fault: only a name's first address is tried.
    first_address_only: bool,
    /// `host-is-address` fault: the Host field names the address connected to.
    host_is_address: bool,
}

impl Client {
    /// A client with no connection yet; `send_host: false` is the `no-host` fault.
    pub(super) fn new(send_host: bool) -> Client {
        Client {
            idle: HashMap::new(),
            send_host,
            dns: None,
            first_address_only: false,
            host_is_address: false,
        }
    }

    /// Host names are resolved by `resolver` (`--dns`).
    pub(super) fn with_dns(mut self, resolver: Resolver) -> Client {
        self.dns = Some(resolver);
        self
    }

    /// The `first-address-only` and `host-is-address` faults.
    pub(super) fn with_quirks(mut self, first_address_only: bool, host_is_address: bool) -> Client {
        self.first_address_only = first_address_only;
        self.host_is_address = host_is_address;
        self
    }

    /// GETs `url` (only `range` of it, if given), following redirects; anything but a 2xx at the
    /// end is an error. `progress`, if given, follows each response's body as it comes.
    pub(super) async fn get(&mut self, url: &Url, range: Option<ByteRange>, progress: Option<&Progress>) -> Result<Fetched, String> {
        let sent = Instant::now();
        let mut url = url.clone();
        let mut redirected = None;
        for _ in 0..=MAX_REDIRECTS {
            let target = url.target()?;
            let response = self.exchange(&target, range, progress).await.map_err(|e| format!("{url}: {e}"))?;
            let status = response.status;
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let location = response.location.ok_or_else(|| format!("{url}: {status} without Location"))?;
                // RFC 9110 §10.2.2: a reference, resolved against the URL asked for.
                url = url
                    .resolve(&location)
                    .map_err(|e| format!("{url}: {status} to a bad Location: {e}"))?;
                redirected = Some(url.clone());
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(format!("{url}: status {status}"));
            }
            let received = response.body.len();
            let body = match (range, status) {
                (Some(range), 200) => slice(response.body, range).map_err(|e| format!("{url}: {e}"))?,
                _ => response.body,
            };
            return Ok(Fetched {
                body,
                received,
                sent,
                done: Instant::now(),
                redirected,
            });
        }
        Err(format!("{url}: more than {MAX_REDIRECTS} redirects"))
    }

    /// One request and its response, on the idle connection to that host if there is one (a
    /// stale one is replaced), else on a new one to each of the host's addresses in turn until
    /// one answers (RFC 1123 §2.3).
    async fn exchange(&mut self, target: &Target, range: Option<ByteRange>, progress: Option<&Progress>) -> Result<Response, String> {
        let key = (target.host.clone(), target.port);
        if let Some(conn) = self.idle.remove(&key) {
            let request = self.request(target, range, conn.peer);
            match self.exchange_on(conn, &key, &request, progress).await {
                Ok(response) => return Ok(response),
                Err(Failure::Stale(_)) => {}
                Err(Failure::Silent(why) | Failure::Failed(why)) => return Err(why),
            }
        }
        let mut addresses = self.addresses(&target.host, target.port).await?;
        if self.first_address_only {
            addresses.truncate(1);
        }
        let mut last = format!("{} has no address", target.host);
        for addr in addresses {
            let conn = match connect(addr).await {
                Ok(conn) => conn,
                Err(why) => {
                    last = why;
                    continue;
                }
            };
            let request = self.request(target, range, addr);
            match self.exchange_on(conn, &key, &request, progress).await {
                Ok(response) => return Ok(response),
                Err(Failure::Stale(why) | Failure::Silent(why)) => last = format!("{addr}: {why}"),
                Err(Failure::Failed(why)) => return Err(why),
            }
        }
        Err(last)
    }

    /// The addresses of `host`: itself if it is an IP address, else the `--dns` server's answer
    /// or the system's.
    async fn addresses(&mut self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if let Some(dns) = &mut self.dns {
            let found = dns.lookup(host).await?;
            return Ok(found.into_iter().map(|ip| SocketAddr::new(ip.into(), port)).collect());
        }
        let found = timeout(WAIT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| format!("cannot resolve {host} within {WAIT:?}"))?
            .map_err(|e| format!("cannot resolve {host}: {e}"))?;
        Ok(found.collect())
    }

    async fn exchange_on(
        &mut self,
        mut conn: Conn,
        key: &(String, u16),
        request: &[u8],
        progress: Option<&Progress>,
    ) -> Result<Response, Failure> {
        if let Some(p) = progress {
            p.begin();
        }
        match timeout(WAIT, conn.stream.write_all(request)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Failure::Stale(format!("send: {e}"))),
            Err(_) => return Err(Failure::Silent(format!("could not send within {WAIT:?}"))),
        }
        let (response, reusable) = conn.read_response(progress).await?;
        if reusable && conn.buf.is_empty() {
            self.idle.insert(key.clone(), conn);
        }
        Ok(response)
    }

    /// The request's bytes; `peer` is the address it goes to.
    fn request(&self, target: &Target, range: Option<ByteRange>, peer: SocketAddr) -> Vec<u8> {
        let mut request = format!("GET {} HTTP/1.1\r\n", target.target);
        if self.send_host && self.host_is_address {
            request.push_str(&format!("Host: {peer}\r\n"));
        } else if self.send_host {
            request.push_str(&format!("Host: {}\r\n", target.host_field));
        }
        if let Some(range) = range {
            request.push_str(&format!("Range: bytes={}-{}\r\n", range.first, range.last));
        }
        request.push_str("User-Agent: wirecheck-dash-client\r\n\r\n");
        request.into_bytes()
    }
}

/// The bytes of `range` out of a whole file.
pub(super) fn slice(mut body: Vec<u8>, range: ByteRange) -> Result<Vec<u8>, String> {
    let first = usize::try_from(range.first).unwrap_or(usize::MAX);
    if first >= body.len() {
        return Err(format!(
            "bytes {}-{} are past the end of a {}-byte file",
            range.first,
            range.last,
            body.len()
        ));
    }
    let end = usize::try_from(range.last).unwrap_or(usize::MAX).saturating_add(1).min(body.len());
    body.truncate(end);
    body.drain(..first);
    Ok(body)
}

/// A connection to one address, within `WAIT`.
async fn connect(addr: SocketAddr) -> Result<Conn, String> {
    let stream = timeout(WAIT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("no connection to {addr} within {WAIT:?}"))?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    Ok(Conn {
        stream,
        peer: addr,
        buf: Vec::new(),
    })
}

/// How a response's body ends (RFC 9112 §6.3).
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    Close,
}

impl Conn {
    /// Reads more bytes into `buf`; 0 at the end of the stream.
    async fn fill(&mut self) -> Result<usize, String> {
        let mut chunk = [0u8; 16 * 1024];
        match timeout(WAIT, self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Ok(Err(e)) => Err(format!("read: {e}")),
            Err(_) => Err(format!("no byte within {WAIT:?}")),
        }
    }

    /// The next response (after any 1xx) and whether the connection can carry another request.
    async fn read_response(&mut self, progress: Option<&Progress>) -> Result<(Response, bool), Failure> {
        let mut first = true;
        loop {
            let Head {
                status,
                len: head_len,
                location,
                framing,
                keep,
            } = loop {
                if let Some(head) = parse_head(&self.buf).map_err(Failure::Failed)? {
                    break head;
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(Failure::Failed(format!("a response head over {MAX_HEAD} bytes")));
                }
                match self.fill().await {
                    Ok(0) if first && self.buf.is_empty() => return Err(Failure::Stale("the connection was closed".to_owned())),
                    Ok(0) => return Err(Failure::Failed("the connection closed in the middle of a response".to_owned())),
                    Ok(_) => {}
                    Err(e) if first && self.buf.is_empty() && !e.starts_with("no byte") => return Err(Failure::Stale(e)),
                    Err(e) if first && self.buf.is_empty() => return Err(Failure::Silent(e)),
                    Err(e) => return Err(Failure::Failed(e)),
                }
            };
            first = false;
            self.buf.drain(..head_len);
            if (100..200).contains(&status) {
                if status == 101 {
                    return Err(Failure::Failed("101 Switching Protocols to a GET".to_owned()));
                }
                continue;
            }
            let framing = match status {
                204 | 304 => Framing::Empty,
                _ => framing,
            };
            let reusable = keep && !matches!(framing, Framing::Close);
            let body = self.body(framing, progress).await.map_err(Failure::Failed)?;
            return Ok((Response { status, location, body }, reusable));
        }
    }

    async fn body(&mut self, framing: Framing, progress: Option<&Progress>) -> Result<Vec<u8>, String> {
        let note = |received: usize, expected: Option<usize>| {
            if let Some(p) = progress {
                p.body(received, expected);
            }
        };
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) => {
                note(self.buf.len().min(n), Some(n));
                while self.buf.len() < n {
                    if self.fill().await? == 0 {
                        return Err(format!("the connection closed {} bytes into a {n}-byte body", self.buf.len()));
                    }
                    note(self.buf.len().min(n), Some(n));
                }
                self.take(n).await
            }
            Framing::Close => {
                while self.fill().await? > 0 {
                    if self.buf.len() > MAX_BODY {
                        return Err(format!("a body over {MAX_BODY} bytes"));
                    }
                    note(self.buf.len(), None);
                }
                Ok(std::mem::take(&mut self.buf))
            }
            Framing::Chunked => {
                let mut body = Vec::new();
                loop {
                    let line = self.line().await?;
                    let size_text = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(size_text, 16)
                        .ok()
                        .filter(|_| !size_text.starts_with('+'))
                        .ok_or_else(|| format!("bad chunk size {size_text:?}"))?;
                    if size == 0 {
                        // Trailer fields up to the empty line.
                        while !self.line().await?.is_empty() {}
                        return Ok(body);
                    }
                    if body.len().saturating_add(size) > MAX_BODY {
                        return Err(format!("a body over {MAX_BODY} bytes"));
                    }
                    body.extend_from_slice(&self.take(size).await?);
                    note(body.len(), None);
                    if !self.line().await?.is_empty() {
                        return Err("a chunk not followed by CRLF".to_owned());
                    }
                }
            }
        }
    }

    /// The next `n` bytes.
    async fn take(&mut self, n: usize) -> Result<Vec<u8>, String> {
        if n > MAX_BODY {
            return Err(format!("a body of {n} bytes (at most {MAX_BODY})"));
        }
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Err(format!("the connection closed {} bytes into a {n}-byte body", self.buf.len()));
            }
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// The next line of chunked framing, without its CRLF (a bare LF is taken too).
    async fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(at) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=at).collect();
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                return Ok(String::from_utf8_lossy(line).into_owned());
            }
            if self.buf.len() > MAX_HEAD {
                return Err("a chunk-size line too long".to_owned());
            }
            if self.fill().await? == 0 {
                return Err("the connection closed in a chunked body".to_owned());
            }
        }
    }
}

/// What a response's head says.
struct Head {
    status: u16,
    /// Its length in bytes.
    len: usize,
    location: Option<String>,
    framing: Framing,
    /// Whether the connection may carry another request after it (RFC 9112 §9.3).
    keep: bool,
}

/// The head once `buf` holds a whole one.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("not an HTTP/1.1 response: {e}")),
    };
    let status = response.code.unwrap_or(0);
    let values = |name: &str| -> Vec<String> {
        response
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
            .collect()
    };
    let tokens = |name: &str| -> Vec<String> {
        values(name)
            .iter()
            .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()).collect::<Vec<_>>())
            .filter(|t| !t.is_empty())
            .collect()
    };
    let connection = tokens("connection");
    let keep = match response.version {
        Some(1) => !connection.iter().any(|t| t == "close"),
        _ => connection.iter().any(|t| t == "keep-alive"),
    };
    let codings = tokens("transfer-encoding");
    let framing = if !codings.is_empty() {
        // §6.3: chunked last is chunked; any other coding runs to the close.
        match codings.last().map(String::as_str) {
            Some("chunked") => Framing::Chunked,
            _ => Framing::Close,
        }
    } else {
        let lengths: Vec<String> = values("content-length")
            .iter()
            .flat_map(|v| v.split(',').map(|t| t.trim().to_owned()).collect::<Vec<_>>())
            .collect();
        match lengths.first() {
            None => Framing::Close,
            Some(first) => {
                if lengths.iter().any(|l| l != first) || first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("bad Content-Length {lengths:?}"));
                }
                let n = first
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= MAX_BODY)
                    .ok_or_else(|| format!("a body of {first} bytes (at most {MAX_BODY})"))?;
                Framing::Length(n)
            }
        }
    };
    let location = values("location").into_iter().next();
    Ok(Some(Head {
        status,
        len: head_len,
        location,
        framing,
        keep,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each connection's requests with the next canned replies (an empty
    /// one: silence), and reports the requests' heads.
    async fn serve(replies: Vec<Vec<&'static [u8]>>) -> (std::net::SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            for per_connection in replies {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    for reply in per_connection {
                        loop {
                            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head: Vec<u8> = buf.drain(..at + 4).collect();
                                let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
                                break;
                            }
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        if reply.is_empty() {
                            // Holds the connection open without a word.
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        if stream.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, rx)
    }

    fn url(addr: std::net::SocketAddr, path: &str) -> Url {
        Url::parse(&format!("http://{addr}{path}")).expect("url")
    }

    #[tokio::test]
    async fn bodies_ranges_and_reuse() {
        let (addr, mut heads) = serve(vec![vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.0 200 OK\r\n\r\nto the close",
        ]])
        .await;
        let mut client = Client::new(true);
        let got = client.get(&url(addr, "/a?q=1"), None, None).await.expect("first");
        assert_eq!(got.body, b"hello");
        let head = heads.recv().await.expect("head");
        assert!(
            head.starts_with("GET /a?q=1 HTTP/1.1\r\n") && head.contains(&format!("Host: {addr}\r\n")),
            "{head}"
        );
        let range = ByteRange { first: 2, last: 6 };
        let got = client.get(&url(addr, "/b"), Some(range), None).await.expect("chunked");
        assert_eq!(got.body, b"abcde");
        assert!(heads.recv().await.expect("head").contains("Range: bytes=2-6\r\n"));
        // A server that ignores the range: its bytes are cut out of the whole file.
        let got = client.get(&url(addr, "/c"), Some(range), None).await.expect("200 to a range");
        assert_eq!((got.body.as_slice(), got.received), (&b"23456"[..], 10));
        assert_eq!(client.get(&url(addr, "/d"), None, None).await.expect("204").body, b"");
        assert_eq!(client.get(&url(addr, "/e"), None, None).await.expect("1.0").body, b"to the close");
    }

    #[tokio::test]
    async fn redirects_and_errors() {
        let (addr, mut heads) = serve(vec![vec![
            b"HTTP/1.1 302 Found\r\nLocation: ../moved/x\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 503 Busy\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
        ]])
        .await;
        let mut client = Client::new(false);
        let got = client.get(&url(addr, "/a/b/c"), None, None).await.expect("redirect");
        assert_eq!(got.body, b"ok");
        assert_eq!(got.redirected, Some(url(addr, "/a/moved/x")));
        let first = heads.recv().await.expect("head");
        assert!(!first.contains("Host:"), "no-host: {first}");
        assert!(heads.recv().await.expect("head").starts_with("GET /a/moved/x "));
        assert!(client.get(&url(addr, "/gone"), None, None).await.expect_err("404").contains("404"));
        assert!(client.get(&url(addr, "/busy"), None, None).await.expect_err("503").contains("503"));
    }

    #[tokio::test]
    async fn a_stale_connection_is_replaced_and_silence_fails() {
        // The first connection answers once and closes; the second answers once and then says
        // nothing.
        let (addr, _heads) = serve(vec![
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"],
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb", b""],
        ])
        .await;
        let mut client = Client::new(true);
        assert_eq!(client.get(&url(addr, "/1"), None, None).await.expect("1").body, b"a");
        assert_eq!(client.get(&url(addr, "/2"), None, None).await.expect("retried").body, b"b");
        let started = Instant::now();
        let err = client.get(&url(addr, "/3"), None, None).await.expect_err("silence");
        assert!(err.contains("no byte"), "{err}");
        assert!(started.elapsed() >= WAIT && started.elapsed() < WAIT * 2);
    }

    #[test]
    fn heads() {
        let framing = |head: &[u8]| parse_head(head).map(|h| h.map(|h| (h.framing, h.keep)));
        assert!(matches!(
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n"),
            Ok(Some((Framing::Length(3), true)))
        ));
        assert!(framing(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n").is_err());
        assert!(framing(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(framing(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n").is_err());
        assert!(matches!(
            framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n"),
            Ok(Some((Framing::Chunked, true)))
        ));
        assert!(matches!(
            framing(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"),
            Ok(Some((Framing::Close, false)))
        ));
        assert!(matches!(framing(b"HTTP/1.1 200 OK\r\n"), Ok(None)));
        assert!(framing(b"SSH-2.0-x\r\n\r\n").is_err());
        assert_eq!(slice(b"0123".to_vec(), ByteRange { first: 2, last: 9 }), Ok(b"23".to_vec()));
        assert!(slice(b"0123".to_vec(), ByteRange { first: 4, last: 9 }).is_err());
    }
}
