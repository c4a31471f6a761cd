//! `http-proxy`: the textbook's web proxy lab, grown up to RFC 9111.
//!
//! ```python
//! while 1:
//!     tcpCliSock, addr = tcpSerSock.accept()
//!     message = tcpCliSock.recv(1024)
//!     filename = message.split()[1].partition("/")[2]
//!     try:                       # cache hit: send the stored copy
//!         f = open(filename[1:], "r")
//!         ...
//!     except IOError:            # miss: ask the web server, keep a copy, relay
//!         c = socket(AF_INET, SOCK_STREAM)
//!         c.connect((hostn, 80))
//!         ...
//! ```
//!
//! Clients send requests in absolute-form (`GET http://host:port/path HTTP/1.1`);
//! each goes to the origin in origin-form over a connection of its own
//! (`Connection: close`) with `Host` from the URI, hop-by-hop fields dropped
//! and `Via` added. Responses are read whole (bounded), then relayed with a
//! Content-Length whatever their framing was. Client connections are
//! persistent and each is served by its own task.
//!
//! The cache is a shared cache keyed by the normalized URI (GET only), one
//! stored response per URI. Where RFC 9111 leaves a choice:
//! - heuristic freshness is off, so responses with only a validator are
//!   revalidated on every use;
//! - conditional (`If-*`), `Range`, `Authorization` and `no-store` requests,
//!   HEAD and every other method bypass the cache (forwarded, answer not
//!   stored) — so a client's own conditional request is answered by the origin;
//! - stale responses are never served: a failed revalidation is relayed
//!   (a 5xx as is, no answer as 502/504), keeping the stored response for next time;
//! - a successful unsafe request (POST, PUT, DELETE...) invalidates its URI only,
//!   not Location/Content-Location;
//! - `private="field"` and `no-cache="field"` count as their unqualified forms;
//! - requests for the same URI are not collapsed: concurrent misses each go to the origin.
//!
//! Only loopback origins are reached (option `allow`: other ranges, see
//! `allow.rs`); a request for anywhere else, by name or by number, is
//! answered 403 without a connection being made.
//!
//! A request for the proxy's own address cannot loop: it arrives in
//! origin-form, which the proxy answers with 400.
//!
//! With `tls=implicit` (and `tls_cert`, `tls_key`) the proxy's own port speaks
//! TLS from the first byte (ALPN `http/1.1`); its requests to origins stay
//! plain HTTP.

mod allow;
mod cache;
mod message;
mod upstream;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::{timeout, Instant};

use self::allow::Allow;
use self::cache::{Cache, Directives, Entry};
use self::message::{
    has, parse_request_head, request_framing, tokens, write_head, Conn, Framing, ReadError, Request, Response, MAX_BODY, TRANSFER_LIMIT,
};
use self::upstream::{Exchange, Gateway, Target};
use crate::guard::{self, Goodbye, Limits, Reason, Stream};
use crate::tls::{self, Offer, ServerTls};
use crate::{parse_count, parse_duration, Error, OptionSet, Options, RunningServer, Transport};

pub(crate) const NAME: &str = "http-proxy";
const OPTIONS: &[&str] = &[
    "idle",
    "max_entries",
    "max_object",
    "origin_timeout",
    "allow",
    guard::OPTIONS[0],
    guard::OPTIONS[1],
    tls::OPTIONS[0],
    tls::OPTIONS[1],
    tls::OPTIONS[2],
];

/// The received-by pseudonym in `Via` (RFC 9110 §7.6.3).
const VIA_NAME: &str = "wirecheck-proxy";
/// See `tcp_upper::linger`.
const LINGER: Duration = Duration::from_secs(1);
/// Methods whose success does not invalidate the cache (RFC 9110 §9.2.1).
const SAFE_METHODS: &[&str] = &["GET", "HEAD", "OPTIONS", "TRACE"];
/// Preconditions (RFC 9110 §13.1): a request with one is passed to the origin untouched.
const CONDITIONALS: &[&str] = &["if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range"];

struct Proxy {
    origin_timeout: Duration,
    allow: Allow,
    idle: Duration,
    cache: Mutex<Cache>,
}

pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let origin_timeout = opts.get("origin_timeout", "5s", parse_duration)?;
    let idle = opts.get("idle", "10s", parse_duration)?;
    let mut limits = Limits::from_options(&opts)?;
    limits.implicit_tls = ServerTls::implicit(tls::server_options(&opts, Offer::Implicit, &[tls::HTTP11])?.as_ref());
    let max_entries = opts.get("max_entries", "1000", |v| parse_count(v, 0, 1_000_000))?;
    let max_object = opts.get("max_object", "10MiB", parse_size)?;
    let allow = opts.get("allow", allow::LOOPBACK, Allow::parse)?;
    let proxy = Proxy {
        origin_timeout,
        allow,
        idle,
        // At most a million, so the cast cannot truncate.
        cache: Mutex::new(Cache::new(max_entries as usize, max_object)),
    };
    let listener = TcpListener::bind(bind).await?;
    let local_addr = listener.local_addr()?;
    Ok(RunningServer::spawn(
        local_addr,
        Transport::Tcp,
        serve(listener, Arc::new(proxy), limits),
    ))
}

/// Parses a byte count such as `65536`, `512KiB` or `10MiB`, at most `MAX_BODY`.
fn parse_size(text: &str) -> Result<usize, String> {
    let why = || format!("expected a size of at most {MAX_BODY} bytes, such as 65536, 512KiB or 10MiB");
    let text = text.trim();
    let (number, unit) = if let Some(n) = text.strip_suffix("MiB") {
        (n, 1 << 20)
    } else if let Some(n) = text.strip_suffix("KiB") {
        (n, 1 << 10)
    } else {
        (text, 1)
    };
    let number: usize = number.trim().parse().map_err(|_| why())?;
    number.checked_mul(unit).filter(|&n| n <= MAX_BODY).ok_or_else(why)
}

/// Serves every client connection within `limits` (see `guard`).
async fn serve(listener: TcpListener, proxy: Arc<Proxy>, limits: Limits) {
    guard::serve(listener, limits, goodbye(), move |stream, _addr| {
        serve_client(stream, proxy.clone())
    })
    .await;
}

/// RFC 9110 §15.5.9: 408 for a request that did not arrive complete in time,
/// then close (RFC 9112 §9.6); a connection with no request under way is
/// owed nothing and is just closed.
fn goodbye() -> Goodbye {
    Arc::new(|reason| {
        (reason == Reason::Slow).then(|| {
            let response = own(408, "the request did not arrive complete in time");
            render(Reply::Own(response), "GET", 1, false)
        })
    })
}

/// Answers one client's requests in order until it closes, idles, or breaks the protocol.
async fn serve_client(stream: Stream, proxy: Arc<Proxy>) {
    let mut client = Conn::new(stream, proxy.idle);
    loop {
        let request = match read_request(&mut client, proxy.idle).await {
            Ok(Some(request)) => request,
            Ok(None) | Err(None) => return,
            Err(Some(refusal)) => {
                let bytes = render(Reply::Own(refusal), "GET", 1, false);
                if client.send(&bytes, Instant::now() + proxy.idle).await.is_ok() {
                    linger(client).await;
                }
                return;
            }
        };
        let keep_alive = persistent(&request);
        let reply = proxy.respond(&request).await;
        let bytes = render(reply, &request.method, request.minor, keep_alive);
        if client.send(&bytes, Instant::now() + TRANSFER_LIMIT).await.is_err() {
            return;
        }
        if !keep_alive {
            linger(client).await;
            return;
        }
    }
}

/// The next request, head and body; `Ok(None)` when the client is done;
/// `Err` with the response to send before closing, if any is owed.
async fn read_request(client: &mut Conn, idle: Duration) -> Result<Option<Request>, Option<Response>> {
    let head = client.read_head(Instant::now() + idle, parse_request_head).await;
    let mut request = match head {
        Ok(Some(request)) => request,
        Ok(None) => return Ok(None),
        // Silence between requests is the normal end of a persistent connection.
        Err(ReadError::Timeout) if client.nothing_pending() => return Err(None),
        Err(error) => return Err(refusal(error, 431)),
    };
    let framing = request_framing(&request.headers).map_err(|e| refusal(e, 413))?;
    if framing == Framing::Empty {
        return Ok(Some(request));
    }
    if matches!(framing, Framing::Length(len) if len > MAX_BODY) {
        return Err(refusal(ReadError::TooLarge, 413));
    }
    // The body is read before the origin is contacted, so the proxy itself
    // says "go ahead" rather than leave the client waiting (RFC 9110 §10.1.1).
    if request.minor == 1 && tokens(&request.headers, "expect").iter().any(|e| e == "100-continue") && framing != Framing::Length(0) {
        client
            .send(b"HTTP/1.1 100 Continue\r\n\r\n", Instant::now() + idle)
            .await
            .map_err(|_| None)?;
    }
    let body = client.read_body(framing, Instant::now() + TRANSFER_LIMIT, MAX_BODY).await;
    request.body = Some(body.map_err(|e| refusal(e, 413))?);
    Ok(Some(request))
}

/// The response owed for an unreadable request; `too_large` is 431 for heads, 413 for bodies.
fn refusal(error: ReadError, too_large: u16) -> Option<Response> {
    match error {
        ReadError::Closed => None,
        ReadError::Timeout => Some(own(408, "request not received in time")),
        ReadError::TooLarge if too_large == 431 => Some(own(431, "request head over 16 KiB or 100 fields")),
        ReadError::TooLarge => Some(own(413, "request body over 10 MiB")),
        ReadError::Malformed(why) => Some(own(400, why)),
        ReadError::UnknownCoding => Some(own(501, "only the chunked transfer coding is supported")),
    }
}

/// RFC 9112 §9.3: HTTP/1.1 persists unless told to close; HTTP/1.0 only if asked to keep alive.
fn persistent(request: &Request) -> bool {
    let connection = tokens(&request.headers, "connection");
    if connection.iter().any(|t| t == "close") {
        false
    } else {
        request.minor >= 1 || connection.iter().any(|t| t == "keep-alive")
    }
}

/// What goes back to the client.
enum Reply {
    /// Made by the proxy itself (errors): no Via.
    Own(Response),
    /// Straight from the origin.
    Relayed(Response),
    /// From the cache, with its age in seconds.
    Cached(Response, u64),
}

impl Proxy {
    fn cache(&self) -> MutexGuard<'_, Cache> {
        // Nothing panics while holding the lock; if it ever did, the cache is still consistent enough to use.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn respond(&self, request: &Request) -> Reply {
        let target = match Target::parse(&request.method, &request.target) {
            Ok(target) => target,
            Err((status, why)) => return Reply::Own(own(status, why)),
        };
        let key = target.cache_key();
        if !bypasses_cache(request) {
            return self.respond_from_cache(request, &target, key).await;
        }
        let outcome = self.forward(request, &target, &[]).await;
        if let Ok(exchange) = &outcome {
            // RFC 9111 §4.4: a successful unsafe request invalidates the stored response for its URI.
            if !SAFE_METHODS.contains(&request.method.as_str()) && (200..400).contains(&exchange.response.status) {
                self.cache().remove(&key);
            }
        }
        match outcome {
            Ok(exchange) => Reply::Relayed(exchange.response),
            Err(failure) => Reply::Own(self.gateway_error(failure)),
        }
    }

    /// A GET that may be answered from the cache: fresh hit, revalidation, or miss.
    async fn respond_from_cache(&self, request: &Request, target: &Target, key: String) -> Reply {
        let stored = self.cache().lookup(&key, &request.headers);
        if let Some(entry) = stored.as_ref().filter(|entry| entry.usable_for(&request.headers)) {
            let (response, age) = entry.serve();
            return Reply::Cached(response, age);
        }
        if Directives::of(&request.headers).has("only-if-cached") {
            return Reply::Own(own(504, "not in the cache, and the request says only-if-cached"));
        }
        if let Some(mut entry) = stored {
            let conditions = entry.conditions();
            if !conditions.is_empty() {
                match self.forward(request, target, &conditions).await {
                    Ok(answer) if answer.response.status == 304 && entry.validated_by(&answer.response) => {
                        entry.freshen(&answer);
                        let (response, age) = entry.serve();
                        self.cache().put(key, entry);
                        return Reply::Cached(response, age);
                    }
                    // A 304 about some other representation: ask again, unconditionally.
                    Ok(answer) if answer.response.status == 304 => {}
                    outcome => return self.relay_and_store(key, request, outcome),
                }
            }
        }
        let outcome = self.forward(request, target, &[]).await;
        self.relay_and_store(key, request, outcome)
    }

    fn relay_and_store(&self, key: String, request: &Request, outcome: Result<Exchange, Gateway>) -> Reply {
        let exchange = match outcome {
            Ok(exchange) => exchange,
            Err(failure) => return Reply::Own(self.gateway_error(failure)),
        };
        // A 5xx says nothing about the stored response (RFC 9111 §4.3.3): keep it for next time.
        if exchange.response.status < 500 {
            self.cache().put(key, Entry::new(&exchange, &request.headers));
        }
        Reply::Relayed(exchange.response)
    }

    async fn forward(&self, request: &Request, target: &Target, conditions: &[(&str, Vec<u8>)]) -> Result<Exchange, Gateway> {
        upstream::exchange(target, request, conditions, self.origin_timeout, &self.allow).await
    }

    fn gateway_error(&self, failure: Gateway) -> Response {
        match failure {
            Gateway::Unreachable(why) => own(502, &format!("cannot connect to the origin {why}")),
            Gateway::Forbidden(why) => own(403, &why),
            Gateway::Timeout => own(504, &format!("the origin did not respond within {:?}", self.origin_timeout)),
            Gateway::Bad(why) => own(502, &format!("bad response from the origin: {why}")),
        }
    }
}

/// True if the request is passed to the origin without looking in the cache or storing the answer.
fn bypasses_cache(request: &Request) -> bool {
    let headers = &request.headers;
    request.method != "GET"
        || has(headers, "authorization")
        || has(headers, "range")
        || CONDITIONALS.iter().any(|name| has(headers, name))
        || Directives::of(headers).has("no-store")
}

/// A short text/plain response made by the proxy.
fn own(status: u16, text: &str) -> Response {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let body = format!("{status} {reason}: {text}\n").into_bytes();
    Response {
        minor: 1,
        status,
        reason: reason.to_owned(),
        headers: vec![
            (
                "Date".to_owned(),
                httpdate::fmt_http_date(std::time::SystemTime::now()).into_bytes(),
            ),
            ("Content-Type".to_owned(), b"text/plain; charset=utf-8".to_vec()),
            // Kept as is when the body is not sent (a HEAD request).
            ("Content-Length".to_owned(), body.len().to_string().into_bytes()),
        ],
        body: Arc::from(body),
    }
}

/// The bytes of `reply` as an answer to a `method` request from an HTTP/1.`minor` client.
fn render(reply: Reply, method: &str, minor: u8, keep_alive: bool) -> Vec<u8> {
    let (response, age, via) = match reply {
        Reply::Own(response) => (response, None, None),
        Reply::Relayed(response) => {
            let via = format!("1.{} {VIA_NAME}", response.minor);
            (response, None, Some(via))
        }
        Reply::Cached(response, age) => {
            let via = format!("1.{} {VIA_NAME}", response.minor);
            (response, Some(age.to_string()), Some(via))
        }
    };
    let with_body = method != "HEAD" && response.status >= 200 && response.status != 204 && response.status != 304;
    // Whatever framing the origin used, the client gets a Content-Length;
    // without a body, the origin's Content-Length (the GET's size) stands.
    let length = with_body.then(|| response.body.len().to_string());
    let connection = match (keep_alive, minor) {
        (false, _) => Some("close"),
        (true, 0) => Some("keep-alive"),
        (true, _) => None,
    };
    let fields = response
        .headers
        .iter()
        .filter(|(name, _)| !(with_body && name.eq_ignore_ascii_case("content-length")))
        .map(|(name, value)| (name.as_str(), value.as_slice()))
        .chain(age.iter().map(|age| ("Age", age.as_bytes())))
        .chain(via.iter().map(|via| ("Via", via.as_bytes())))
        .chain(length.iter().map(|length| ("Content-Length", length.as_bytes())))
        .chain(connection.map(|c| ("Connection", c.as_bytes())));
    let mut out = Vec::with_capacity(response.body.len() + 512);
    write_head(&mut out, &format!("HTTP/1.1 {} {}", response.status, response.reason), fields);
    out.extend_from_slice(b"\r\n");
    if with_body {
        out.extend_from_slice(&response.body);
    }
    out
}

/// See `tcp_upper::linger`: closing with unread input would reset the connection and could destroy the last response.
async fn linger(client: Conn) {
    let mut stream = client.stream;
    let _ = stream.shutdown().await;
    let mut rest = (&mut stream).take(MAX_BODY as u64);
    let _ = timeout(LINGER, tokio::io::copy(&mut rest, &mut tokio::io::sink())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size(" 65536 "), Ok(65536));
        assert_eq!(parse_size("0"), Ok(0));
        for bad in ["", "11MiB", "1GiB", "-1", "1.5MiB", "10 MB", "99999999999999999999MiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn persistence() {
        let request = |minor, connection: Option<&str>| Request {
            method: "GET".into(),
            target: "http://h/".into(),
            minor,
            headers: connection
                .map(|c| ("Connection".to_owned(), c.as_bytes().to_vec()))
                .into_iter()
                .collect(),
            body: None,
        };
        assert!(persistent(&request(1, None)));
        assert!(!persistent(&request(1, Some("Close"))));
        assert!(!persistent(&request(0, None)));
        assert!(persistent(&request(0, Some("Keep-Alive"))));
    }

    #[test]
    fn rendering() {
        let mut response = own(502, "x");
        response.minor = 0;
        let text = String::from_utf8(render(Reply::Cached(response.clone(), 7), "GET", 0, true)).unwrap();
        assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{text}");
        assert!(text.contains("\r\nAge: 7\r\nVia: 1.0 wirecheck-proxy\r\nContent-Length: 19\r\nConnection: keep-alive\r\n\r\n502 "));
        assert_eq!(text.matches("Content-Length").count(), 1);
        let head = String::from_utf8(render(Reply::Own(response), "HEAD", 1, false)).unwrap();
        assert!(head.ends_with("Content-Length: 19\r\nConnection: close\r\n\r\n"), "{head}");
    }
}
