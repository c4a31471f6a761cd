//! The `http-proxy` reference server against a scripted origin: a tokio
//! listener in this file that records every request it receives and answers
//! each with canned bytes chosen by the test.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reference_servers::{start_server, Error, Options, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};

/// Upper bound for any single wait in these tests.
const LIMIT: Duration = Duration::from_secs(5);
/// The origin_timeout of the stall test.
const ORIGIN_TIMEOUT: Duration = Duration::from_millis(300);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn proxy(pairs: &[(&str, &str)]) -> RunningServer {
    let opts: Options = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    timeout(LIMIT, start_server("http-proxy", loopback(), &opts))
        .await
        .expect("start_server timed out")
        .expect("start_server failed")
}

// ------------------------------------------------------------ scripted origin

/// One request as the origin received it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

impl Seen {
    fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    fn path(&self) -> &str {
        self.request_line().split(' ').nth(1).unwrap_or_default()
    }

    /// Every value of header `name`, in order.
    fn headers(&self, name: &str) -> Vec<&str> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).first().copied()
    }
}

/// What the origin does with a request.
enum Answer {
    /// Write these bytes, then close.
    Bytes(Vec<u8>),
    /// Never answer (the connection stays open until the test ends).
    Stall,
}

fn answer(text: &str) -> Answer {
    Answer::Bytes(text.as_bytes().to_vec())
}

struct Origin {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _task: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Origin {
    /// Starts an origin that answers each request with `script(request)`.
    async fn start(script: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind(loopback()).await.expect("bind origin");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (script, log) = (Arc::new(script), seen.clone());
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (script, log) = (script.clone(), log.clone());
                connections.spawn(async move {
                    let mut stream = stream;
                    let Some(request) = read_request(&mut stream).await else {
                        return;
                    };
                    log.lock().unwrap().push(request.clone());
                    match script(&request) {
                        Answer::Bytes(bytes) => {
                            let _ = stream.write_all(&bytes).await;
                            let _ = stream.shutdown().await;
                        }
                        Answer::Stall => std::future::pending::<()>().await,
                    }
                });
            }
        });
        Origin {
            addr,
            seen,
            _task: AbortOnDrop(task),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one request head and its Content-Length body (the proxy always frames upstream bodies so).
async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut seen = Seen { head, body: Vec::new() };
    let length: usize = seen.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = buf[end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    seen.body = body;
    Some(seen)
}

// ------------------------------------------------------------------ client

/// A response as the client received it.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    fn count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count()
    }
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(proxy: &RunningServer) -> Client {
        let stream = timeout(LIMIT, TcpStream::connect(proxy.local_addr())).await.unwrap().unwrap();
        Client { stream, buf: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        timeout(LIMIT, self.stream.write_all(bytes)).await.unwrap().unwrap();
    }

    /// Reads one response, which must be framed by exactly one Content-Length (or have no body).
    async fn response(&mut self, head_request: bool) -> Reply {
        timeout(LIMIT, self.read_response(head_request)).await.expect("no response in time")
    }

    async fn read_response(&mut self, head_request: bool) -> Reply {
        let (status, headers, used) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut fields);
            if let httparse::Status::Complete(used) = response.parse(&self.buf).expect("response head parses") {
                let headers = response.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect();
                break (response.code.unwrap(), headers, used);
            }
            self.fill().await;
        };
        self.buf.drain(..used);
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        assert_eq!(reply.count("transfer-encoding"), 0, "{reply:?}");
        if head_request || status == 304 || status == 204 {
            return reply;
        }
        assert_eq!(reply.count("content-length"), 1, "{reply:?}");
        let length: usize = reply.header("content-length").unwrap().parse().unwrap();
        while self.buf.len() < length {
            self.fill().await;
        }
        reply.body = self.buf.drain(..length).collect();
        reply
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "proxy closed the connection mid-response");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// True if the proxy closes the connection (without sending anything more).
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(timeout(LIMIT, self.stream.read_to_end(&mut rest)).await, Ok(Ok(0)))
    }
}

/// One GET for `url` on a fresh connection.
async fn get(proxy: &RunningServer, url: &str) -> Reply {
    let mut client = Client::connect(proxy).await;
    client.send(format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await;
    client.response(false).await
}

fn ok(headers: &str, body: &str) -> Answer {
    answer(&format!("HTTP/1.1 200 OK\r\n{headers}Content-Length: {}\r\n\r\n{body}", body.len()))
}

// ------------------------------------------------------------------- tests

#[tokio::test]
async fn absolute_form_is_forwarded_in_origin_form_with_host_and_via() {
    let origin = Origin::start(|_| {
        answer(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close, X-Origin-Hop\r\nX-Origin-Hop: 1\r\n\
             Keep-Alive: timeout=1\r\nContent-Length: 5\r\n\r\nhello",
        )
    })
    .await;
    let proxy = proxy(&[]).await;
    let mut client = Client::connect(&proxy).await;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: wrong.example\r\nUser-Agent: wirecheck-test\r\nProxy-Connection: keep-alive\r\n\
         Connection: X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\n\
         X-End: kept\r\n\r\n",
        origin.url("/hello?x=1")
    );
    client.send(request.as_bytes()).await;
    let reply = client.response(false).await;
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(reply.header("via").as_deref(), Some("1.1 wirecheck-proxy"));
    assert_eq!(reply.header("content-type").as_deref(), Some("text/plain"));
    assert!(
        reply.header("x-origin-hop").is_none() && reply.header("keep-alive").is_none(),
        "{reply:?}"
    );

    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.request_line(), "GET /hello?x=1 HTTP/1.1");
    assert_eq!(seen.headers("host"), [origin.addr.to_string()]);
    assert_eq!(seen.header("via"), Some("1.1 wirecheck-proxy"));
    assert_eq!(seen.header("user-agent"), Some("wirecheck-test"));
    assert_eq!(seen.header("x-end"), Some("kept"));
    assert_eq!(seen.header("connection"), Some("close"));
    for hop in ["proxy-connection", "x-hop", "keep-alive", "te", "proxy-authorization"] {
        assert!(seen.header(hop).is_none(), "{hop} was forwarded:\n{}", seen.head);
    }
}

#[tokio::test]
async fn headers_and_bodies_are_relayed_byte_exact() {
    let binary: Vec<u8> = (0..=255u8).cycle().take(4 * 256).collect();
    let binary_response = {
        let mut bytes = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            binary.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&binary);
        bytes
    };
    let origin = Origin::start(move |request| match request.path() {
        "/binary" => Answer::Bytes(binary_response.clone()),
        _ => answer(
            "HTTP/1.1 200 Fine Thanks\r\nContent-Type: text/html; charset=iso-8859-1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
             x-lower-case: Mixed  Value\r\nContent-Length: 14\r\n\r\nline 1\r\nline 2",
        ),
    })
    .await;
    let proxy = proxy(&[]).await;

    let text = get(&proxy, &origin.url("/text")).await;
    assert_eq!(text.status, 200);
    assert_eq!(text.body, b"line 1\r\nline 2");
    let relayed: Vec<(&str, &[u8])> = text.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    assert_eq!(
        relayed[..4],
        [
            ("Content-Type", &b"text/html; charset=iso-8859-1"[..]),
            ("Set-Cookie", b"a=1"),
            ("Set-Cookie", b"b=2"),
            ("x-lower-case", b"Mixed  Value"),
        ]
    );
    assert_eq!(text.count("content-length"), 1);

    let reply = get(&proxy, &origin.url("/binary")).await;
    assert_eq!(reply.header("content-type").as_deref(), Some("application/octet-stream"));
    assert_eq!(reply.body, binary);
}

#[tokio::test]
async fn request_bodies_are_forwarded() {
    let origin = Origin::start(|_| answer("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")).await;
    let proxy = proxy(&[]).await;
    let body: Vec<u8> = (0..=255u8).collect();
    let mut client = Client::connect(&proxy).await;

    let mut request = format!("POST {} HTTP/1.1\r\nContent-Length: 256\r\n\r\n", origin.url("/upload")).into_bytes();
    request.extend_from_slice(&body);
    client.send(&request).await;
    assert_eq!(client.response(false).await.status, 201);

    // Chunked from the client, re-framed with a Content-Length for the origin.
    let mut request = format!("PUT {} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n80\r\n", origin.url("/upload")).into_bytes();
    request.extend_from_slice(&body[..128]);
    request.extend_from_slice(b"\r\n80;ext=1\r\n");
    request.extend_from_slice(&body[128..]);
    request.extend_from_slice(b"\r\n0\r\nX-Trailer: t\r\n\r\n");
    client.send(&request).await;
    assert_eq!(client.response(false).await.status, 201);

    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    for (request, method) in seen.iter().zip(["POST", "PUT"]) {
        assert_eq!(request.request_line(), format!("{method} /upload HTTP/1.1"));
        assert_eq!(request.header("content-length"), Some("256"));
        assert!(request.header("transfer-encoding").is_none());
        assert_eq!(request.body, body);
    }
}

#[tokio::test]
async fn error_statuses_pass_through() {
    let origin = Origin::start(|request| match request.path() {
        "/missing" => answer("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found"),
        _ => answer("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"),
    })
    .await;
    let proxy = proxy(&[]).await;
    let missing = get(&proxy, &origin.url("/missing")).await;
    assert_eq!((missing.status, missing.body.as_slice()), (404, &b"not found"[..]));
    assert_eq!(missing.header("via").as_deref(), Some("1.1 wirecheck-proxy"));
    let broken = get(&proxy, &origin.url("/broken")).await;
    assert_eq!((broken.status, broken.body.as_slice()), (500, &b"oops"[..]));
}

#[tokio::test]
async fn origin_form_and_foreign_schemes_are_refused() {
    let origin = Origin::start(|_| ok("", "never")).await;
    let proxy = proxy(&[]).await;
    let mut client = Client::connect(&proxy).await;
    client
        .send(format!("GET /path HTTP/1.1\r\nHost: {}\r\n\r\n", origin.addr).as_bytes())
        .await;
    let reply = client.response(false).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("content-type").as_deref(), Some("text/plain; charset=utf-8"));
    assert!(!reply.body.is_empty());
    // The connection survives a well-formed but unusable request.
    client.send(b"GET https://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n").await;
    assert_eq!(client.response(false).await.status, 501);
    assert!(origin.seen().is_empty());
}

#[tokio::test]
async fn garbage_gets_400_and_a_close_and_the_proxy_lives_on() {
    let origin = Origin::start(|_| ok("", "alive")).await;
    let proxy = proxy(&[]).await;
    for garbage in [
        &b"\x00\xff\xfe garbage\r\n\r\n"[..],
        b"GET http://a/ HTTP/9.9\r\n\r\n",
        b"GET  HTTP/1.1\r\n\r\n",
    ] {
        let mut client = Client::connect(&proxy).await;
        client.send(garbage).await;
        assert_eq!(client.response(false).await.status, 400, "{garbage:?}");
        assert!(client.closed().await);
    }
    let mut client = Client::connect(&proxy).await;
    client.send(&vec![b'A'; 20 * 1024]).await;
    assert_eq!(client.response(false).await.status, 431);
    assert_eq!(get(&proxy, &origin.url("/")).await.body, b"alive");
}

#[tokio::test]
async fn fresh_response_is_served_from_the_cache_with_age() {
    let origin = Origin::start(|_| ok("Cache-Control: max-age=60\r\nETag: \"v1\"\r\n", "cached body")).await;
    let proxy = proxy(&[]).await;
    let first = get(&proxy, &origin.url("/cached")).await;
    let second = get(&proxy, &origin.url("/cached")).await;
    assert_eq!(origin.seen().len(), 1, "the second request must not reach the origin");
    assert_eq!((second.status, second.body.as_slice()), (200, &b"cached body"[..]));
    assert_eq!(second.body, first.body);
    let age: u64 = second.header("age").expect("a cache hit has Age").parse().unwrap();
    assert!(age <= 60, "Age {age}");
    assert_eq!(second.header("etag").as_deref(), Some("\"v1\""));
    assert_eq!(second.header("via").as_deref(), Some("1.1 wirecheck-proxy"));
    // The client can insist on the origin.
    let mut client = Client::connect(&proxy).await;
    client
        .send(format!("GET {} HTTP/1.1\r\nCache-Control: no-cache\r\n\r\n", origin.url("/cached")).as_bytes())
        .await;
    assert_eq!(client.response(false).await.body, b"cached body");
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].header("if-none-match"), Some("\"v1\""));
}

#[tokio::test]
async fn no_store_and_private_are_not_cached() {
    let origin = Origin::start(|request| match request.path() {
        "/no-store" => ok("Cache-Control: no-store, max-age=60\r\n", "secret"),
        _ => ok("Cache-Control: private, max-age=60\r\n", "mine"),
    })
    .await;
    let proxy = proxy(&[]).await;
    for path in ["/no-store", "/no-store", "/private", "/private"] {
        assert_eq!(get(&proxy, &origin.url(path)).await.status, 200);
    }
    assert_eq!(origin.seen().len(), 4);
}

#[tokio::test]
async fn stale_response_is_revalidated_with_if_none_match() {
    let origin = Origin::start(|request| match request.header("if-none-match") {
        Some("\"v1\"") => answer("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=0\r\nX-Version: 2\r\n\r\n"),
        _ => ok("ETag: \"v1\"\r\nCache-Control: max-age=0\r\nX-Version: 1\r\n", "original body"),
    })
    .await;
    let proxy = proxy(&[]).await;
    let first = get(&proxy, &origin.url("/page")).await;
    assert_eq!(first.header("x-version").as_deref(), Some("1"));
    let second = get(&proxy, &origin.url("/page")).await;
    assert_eq!((second.status, second.body.as_slice()), (200, &b"original body"[..]));
    assert_eq!(
        second.header("x-version").as_deref(),
        Some("2"),
        "stored headers are updated from the 304"
    );
    assert!(second.header("age").is_some());
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].header("if-none-match").is_none());
    assert_eq!(seen[1].header("if-none-match"), Some("\"v1\""));
    assert_eq!(seen[1].request_line(), "GET /page HTTP/1.1");
}

#[tokio::test]
async fn last_modified_only_is_revalidated_with_if_modified_since() {
    const MODIFIED: &str = "Tue, 15 Nov 1994 12:45:26 GMT";
    let origin = Origin::start(|request| match request.header("if-modified-since") {
        Some(MODIFIED) => answer("HTTP/1.1 304 Not Modified\r\n\r\n"),
        _ => ok(&format!("Last-Modified: {MODIFIED}\r\n"), "dated body"),
    })
    .await;
    let proxy = proxy(&[]).await;
    for _ in 0..3 {
        let reply = get(&proxy, &origin.url("/dated")).await;
        assert_eq!((reply.status, reply.body.as_slice()), (200, &b"dated body"[..]));
    }
    let seen = origin.seen();
    assert_eq!(seen.len(), 3, "without explicit freshness every use is revalidated");
    assert!(seen[0].header("if-modified-since").is_none());
    for request in &seen[1..] {
        assert_eq!(request.header("if-modified-since"), Some(MODIFIED));
        assert!(request.header("if-none-match").is_none());
    }
}

#[tokio::test]
async fn client_conditionals_and_head_are_forwarded() {
    let origin = Origin::start(
        |request| match (request.request_line().starts_with("HEAD"), request.header("if-none-match")) {
            (true, _) => answer("HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n\r\n"),
            (false, Some(_)) => answer("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"),
            (false, None) => ok("ETag: \"v1\"\r\nCache-Control: max-age=60\r\n", "x"),
        },
    )
    .await;
    let proxy = proxy(&[]).await;
    let mut client = Client::connect(&proxy).await;
    client.send(format!("HEAD {} HTTP/1.1\r\n\r\n", origin.url("/h")).as_bytes()).await;
    let head = client.response(true).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length").as_deref(),
        Some("1234"),
        "HEAD keeps the origin's length"
    );
    client
        .send(format!("GET {} HTTP/1.1\r\nIf-None-Match: \"v1\"\r\n\r\n", origin.url("/h")).as_bytes())
        .await;
    assert_eq!(client.response(false).await.status, 304);
    assert_eq!(origin.seen().len(), 2);
    assert_eq!(origin.seen()[0].request_line(), "HEAD /h HTTP/1.1");
}

#[tokio::test]
async fn chunked_response_is_relayed_with_content_length() {
    let origin = Origin::start(|_| {
        answer(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n\
             5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Sum: 12\r\n\r\n",
        )
    })
    .await;
    let proxy = proxy(&[]).await;
    let reply = get(&proxy, &origin.url("/chunked")).await;
    assert_eq!(reply.body, b"hello, world");
    assert_eq!(reply.header("content-length").as_deref(), Some("12"));
    assert!(reply.header("trailer").is_none());
}

#[tokio::test]
async fn close_delimited_response_is_relayed() {
    let origin = Origin::start(|_| answer("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the origin closes\r\n")).await;
    let proxy = proxy(&[]).await;
    let reply = get(&proxy, &origin.url("/eof")).await;
    assert_eq!(reply.body, b"until the origin closes\r\n");
    assert_eq!(reply.header("content-length").as_deref(), Some("25"));
    assert_eq!(reply.header("via").as_deref(), Some("1.0 wirecheck-proxy"));
}

#[tokio::test]
async fn malformed_or_truncated_origin_responses_are_502() {
    let origin = Origin::start(|request| match request.path() {
        "/garbage" => answer("SMTP ready\r\n\r\n"),
        "/short" => answer("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nnot 100 bytes"),
        _ => answer(""),
    })
    .await;
    let proxy = proxy(&[]).await;
    for path in ["/garbage", "/short", "/silent-close"] {
        let reply = get(&proxy, &origin.url(path)).await;
        assert_eq!(reply.status, 502, "{path}");
    }
}

#[tokio::test]
async fn unreachable_origin_is_502() {
    // Bound but not listening: connects are refused, and no other test can take the port meanwhile.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(loopback()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let proxy = proxy(&[]).await;
    let reply = get(&proxy, &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.header("content-type").as_deref(), Some("text/plain; charset=utf-8"));
    assert!(String::from_utf8_lossy(&reply.body).contains("Bad Gateway"));
}

#[tokio::test]
async fn stalled_origin_is_504_while_other_clients_are_served() {
    let origin = Origin::start(|request| match request.path() {
        "/stall" => Answer::Stall,
        _ => ok("", "prompt"),
    })
    .await;
    let proxy = proxy(&[("origin_timeout", "300ms")]).await;
    let started = Instant::now();
    let stalled = async {
        let reply = get(&proxy, &origin.url("/stall")).await;
        (reply, started.elapsed())
    };
    let healthy = async {
        // Only once the stalled request has reached the origin.
        while origin.seen().is_empty() {
            tokio::task::yield_now().await;
        }
        let reply = get(&proxy, &origin.url("/fast")).await;
        (reply, started.elapsed())
    };
    let ((stalled, stalled_after), (healthy, healthy_after)) = timeout(LIMIT, async { tokio::join!(stalled, healthy) }).await.unwrap();
    assert_eq!(stalled.status, 504);
    assert!(stalled_after >= ORIGIN_TIMEOUT - Duration::from_millis(50), "{stalled_after:?}");
    assert!(stalled_after < ORIGIN_TIMEOUT * 4, "{stalled_after:?}");
    assert_eq!(healthy.body, b"prompt");
    assert!(
        healthy_after < stalled_after,
        "healthy {healthy_after:?}, stalled {stalled_after:?}"
    );
}

#[tokio::test]
async fn two_clients_at_once() {
    let origin = Origin::start(|request| ok("", request.path())).await;
    let proxy = proxy(&[]).await;
    let mut first = Client::connect(&proxy).await;
    let request = format!("GET {} HTTP/1.1\r\n\r\n", origin.url("/first"));
    let (start, rest) = request.split_at(10);
    first.send(start.as_bytes()).await;
    // The second client is served while the first is mid-request.
    let second = get(&proxy, &origin.url("/second")).await;
    assert_eq!(second.body, b"/second");
    first.send(rest.as_bytes()).await;
    assert_eq!(first.response(false).await.body, b"/first");
}

#[tokio::test]
async fn client_connection_is_kept_alive() {
    let origin = Origin::start(|request| ok("", request.path())).await;
    let proxy = proxy(&[]).await;
    let mut client = Client::connect(&proxy).await;
    for path in ["/one", "/two"] {
        client.send(format!("GET {} HTTP/1.1\r\n\r\n", origin.url(path)).as_bytes()).await;
        let reply = client.response(false).await;
        assert_eq!(reply.body, path.as_bytes());
        assert!(reply.header("connection").is_none(), "{reply:?}");
    }
    // Pipelined, and the last one asks to close.
    let both = format!(
        "GET {} HTTP/1.1\r\n\r\nGET {} HTTP/1.1\r\nConnection: close\r\n\r\n",
        origin.url("/three"),
        origin.url("/four")
    );
    client.send(both.as_bytes()).await;
    assert_eq!(client.response(false).await.body, b"/three");
    let last = client.response(false).await;
    assert_eq!(
        (last.body.as_slice(), last.header("connection").as_deref()),
        (&b"/four"[..], Some("close"))
    );
    assert!(client.closed().await);

    // HTTP/1.0 without keep-alive: one request per connection.
    let mut client = Client::connect(&proxy).await;
    client.send(format!("GET {} HTTP/1.0\r\n\r\n", origin.url("/old")).as_bytes()).await;
    assert_eq!(client.response(false).await.body, b"/old");
    assert!(client.closed().await);
}

#[tokio::test]
async fn unsafe_request_invalidates_the_cached_response() {
    let origin = Origin::start(|request| match request.request_line().split(' ').next() {
        Some("POST") => answer("HTTP/1.1 204 No Content\r\n\r\n"),
        _ => ok("Cache-Control: max-age=60\r\n", "v"),
    })
    .await;
    let proxy = proxy(&[]).await;
    get(&proxy, &origin.url("/r")).await;
    get(&proxy, &origin.url("/r")).await;
    assert_eq!(origin.seen().len(), 1);
    let mut client = Client::connect(&proxy).await;
    client
        .send(format!("POST {} HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", origin.url("/r")).as_bytes())
        .await;
    assert_eq!(client.response(false).await.status, 204);
    get(&proxy, &origin.url("/r")).await;
    assert_eq!(origin.seen().len(), 3);
}

#[tokio::test]
async fn options_are_checked() {
    let proxy = proxy(&[
        ("origin_timeout", "1s"),
        ("idle", "2s"),
        ("max_entries", "5"),
        ("max_object", "64KiB"),
    ])
    .await;
    proxy.shutdown().await;
    let start = |key: &str, value: &str| {
        let opts = Options::from([(key.to_owned(), value.to_owned())]);
        async move { start_server("http-proxy", loopback(), &opts).await.err() }
    };
    assert!(matches!(start("origin-timeout", "1s").await, Some(Error::UnknownOption { .. })));
    for (key, value) in [
        ("origin_timeout", "0s"),
        ("idle", "10"),
        ("max_entries", "-1"),
        ("max_object", "11MiB"),
    ] {
        let err = start(key, value).await;
        assert!(
            matches!(&err, Some(Error::BadOption { key: k, .. }) if k == key),
            "{key}={value}: {err:?}"
        );
    }
}
