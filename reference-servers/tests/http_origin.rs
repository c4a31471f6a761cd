//! Loopback tests of the `http` reference server, speaking raw bytes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use reference_servers::{start_server, Error, Options, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// Upper bound for any single wait in these tests.
const LIMIT: Duration = Duration::from_secs(5);

fn www() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/www")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(www().join(name)).expect("fixture")
}

fn opts(pairs: &[(&str, &str)]) -> Options {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn try_start(pairs: &[(&str, &str)]) -> Result<RunningServer, Error> {
    let root = www();
    let mut options = opts(pairs);
    options.entry("root".to_owned()).or_insert_with(|| root.display().to_string());
    timeout(LIMIT, start_server("http", SocketAddr::from(([127, 0, 0, 1], 0)), &options))
        .await
        .expect("start_server timed out")
}

async fn start(pairs: &[(&str, &str)]) -> RunningServer {
    try_start(pairs).await.expect("start_server failed")
}

#[derive(Debug)]
struct Reply {
    status: u16,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn field(&self, name: &str) -> Option<&str> {
        let mut values = self.fields.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let value = values.next().map(|(_, v)| v.as_str());
        assert!(values.next().is_none(), "{name} sent twice");
        value
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(server: &RunningServer) -> Client {
        let stream = timeout(LIMIT, TcpStream::connect(server.local_addr()))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client { stream, buf: Vec::new() }
    }

    async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        timeout(LIMIT, self.stream.write_all(bytes.as_ref()))
            .await
            .expect("write timed out")
            .expect("write");
    }

    async fn more(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        let n = timeout(LIMIT, self.stream.read(&mut chunk))
            .await
            .expect("no reply in time")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads one response; `to_head` says the request was HEAD (no body whatever Content-Length says).
    async fn reply_to(&mut self, to_head: bool) -> Reply {
        loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut slots);
            match parsed.parse(&self.buf).expect("malformed response") {
                httparse::Status::Complete(used) => {
                    let status = parsed.code.expect("status");
                    assert_eq!(parsed.version, Some(1), "responses are HTTP/1.1");
                    let fields: Vec<(String, String)> = parsed
                        .headers
                        .iter()
                        .map(|h| (h.name.to_owned(), String::from_utf8(h.value.to_vec()).expect("ASCII field")))
                        .collect();
                    let length = fields
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .map(|(_, v)| v.parse::<usize>().expect("Content-Length"));
                    let body_len = if to_head || status < 200 || status == 204 || status == 304 {
                        assert!(
                            !matches!(status, 100..=199 | 204 | 304) || length.is_none(),
                            "{status} with Content-Length"
                        );
                        0
                    } else {
                        length.expect("every response with a body has Content-Length")
                    };
                    while self.buf.len() < used + body_len {
                        assert!(self.more().await > 0, "connection closed mid-body");
                    }
                    let body = self.buf[used..used + body_len].to_vec();
                    self.buf.drain(..used + body_len);
                    return Reply { status, fields, body };
                }
                httparse::Status::Partial => assert!(self.more().await > 0, "connection closed before a response"),
            }
        }
    }

    async fn reply(&mut self) -> Reply {
        self.reply_to(false).await
    }

    /// True once the server has closed (EOF or reset) without sending anything more.
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        let _ = timeout(LIMIT, self.stream.read_to_end(&mut rest))
            .await
            .expect("server did not close the connection");
        self.buf.is_empty() && rest.is_empty()
    }
}

/// One request on a fresh connection.
async fn exchange(server: &RunningServer, request: impl AsRef<[u8]>) -> Reply {
    let mut client = Client::connect(server).await;
    client.send(request).await;
    client.reply().await
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// The response was sent with `Connection: close` and the connection then closed.
async fn refused(server: &RunningServer, request: impl AsRef<[u8]>, status: u16) {
    let mut client = Client::connect(server).await;
    client.send(request).await;
    let reply = client.reply().await;
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.field("Connection"), Some("close"));
    assert_eq!(reply.field("Content-Type"), Some("text/plain; charset=utf-8"));
    assert!(reply.text().starts_with(&status.to_string()));
    assert!(client.closed().await);
}

// ------------------------------------------------------------- static files

#[tokio::test]
async fn serves_files_with_exact_bytes_and_metadata() {
    let server = start(&[]).await;
    for (path, file, content_type) in [
        ("/index.html", "index.html", "text/html; charset=utf-8"),
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/utf8.html", "utf8.html", "text/html; charset=utf-8"),
        ("/notes.txt?ignored=1", "notes.txt", "text/plain; charset=utf-8"),
        ("/sub/page.html", "sub/page.html", "text/html; charset=utf-8"),
        ("/sub/", "sub/index.html", "text/html; charset=utf-8"),
        ("/image.bin", "image.bin", "application/octet-stream"),
        ("/%69mage.bin", "image.bin", "application/octet-stream"),
    ] {
        let reply = exchange(&server, get(path)).await;
        let bytes = fixture(file);
        assert_eq!(reply.status, 200, "{path}");
        assert!(reply.body == bytes, "{path}: body differs from fixtures/www/{file}");
        assert_eq!(reply.field("Content-Type"), Some(content_type), "{path}");
        assert_eq!(reply.field("Content-Length"), Some(bytes.len().to_string().as_str()));
        assert_eq!(reply.field("Server"), Some("wirecheck-reference"));
        assert_eq!(reply.field("Cache-Control"), Some("max-age=60"));
        assert_eq!(reply.field("Connection"), None);
        let date = reply.field("Date").expect("Date");
        let parsed = httpdate::parse_http_date(date).expect("HTTP-date");
        assert_eq!(httpdate::fmt_http_date(parsed), date, "Date is an IMF-fixdate");
        let mtime = std::fs::metadata(www().join(file)).unwrap().modified().unwrap();
        let secs = mtime.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(reply.field("ETag"), Some(format!("\"{:x}-{secs:x}\"", bytes.len()).as_str()));
        assert_eq!(reply.field("Last-Modified"), Some(httpdate::fmt_http_date(mtime).as_str()));
    }
    let image = fixture("image.bin");
    assert_eq!(image.len(), 300_000);
    assert!((0..=255u8).all(|b| image.contains(&b)), "image.bin has every byte value");
}

#[tokio::test]
async fn head_has_the_get_headers_and_no_body() {
    let server = start(&[]).await;
    let mut client = Client::connect(&server).await;
    for path in ["/image.bin", "/missing"] {
        // If HEAD sent a body, the GET's reply would not parse.
        client
            .send(format!(
                "HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\nGET {path} HTTP/1.1\r\nHost: t\r\n\r\n"
            ))
            .await;
        let head = client.reply_to(true).await;
        let get = client.reply().await;
        assert_eq!(head.status, get.status);
        let without_date = |r: &Reply| r.fields.iter().filter(|(n, _)| n != "Date").cloned().collect::<Vec<_>>();
        assert_eq!(without_date(&head), without_date(&get));
        assert_eq!(head.field("Content-Length"), Some(get.body.len().to_string().as_str()));
    }
    client.send(get("/notes.txt")).await;
    assert_eq!(client.reply().await.body, fixture("notes.txt"));
}

#[tokio::test]
async fn not_found_and_redirects() {
    let server = start(&[]).await;
    let mut client = Client::connect(&server).await;
    for path in ["/nope.html", "/sub/nope", "/index.html/", "/%252e%252e/index.html"] {
        client.send(get(path)).await;
        let reply = client.reply().await;
        assert_eq!((reply.status, reply.text().as_str()), (404, "404 Not Found\n"), "{path}");
        assert_eq!(reply.field("Connection"), None, "a 404 keeps the connection");
    }
    for (path, location) in [("/moved", "/index.html"), ("/sub", "/sub/"), ("/sub?a=b", "/sub/?a=b")] {
        client.send(get(path)).await;
        let reply = client.reply().await;
        assert_eq!(reply.status, 301, "{path}");
        assert_eq!(reply.field("Location"), Some(location));
        assert_eq!(reply.text(), "301 Moved Permanently\n");
    }
    client
        .send("GET http://example.com/index.html HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await;
    assert_eq!(client.reply().await.body, fixture("index.html"), "absolute-form target");
}

// -------------------------------------------------------------- bad requests

#[tokio::test]
async fn malformed_requests_get_400_and_close() {
    let server = start(&[]).await;
    for request in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nX-Folded: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 1x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET /%zz HTTP/1.1\r\nHost: test\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        refused(&server, request, 400).await;
    }
}

#[tokio::test]
async fn versions_methods_and_limits() {
    let server = start(&[]).await;
    refused(&server, "GET / HTTP/2.0\r\nHost: test\r\n\r\n", 505).await;
    refused(&server, "GET / HTTP/3.0\r\n\r\n", 505).await;
    refused(&server, format!("GET /{} HTTP/1.1\r\nHost: test\r\n\r\n", "a".repeat(9000)), 414).await;
    refused(
        &server,
        format!("GET / HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n", "b".repeat(20_000)),
        431,
    )
    .await;
    refused(
        &server,
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 20000000\r\n\r\n",
        413,
    )
    .await;

    let reply = exchange(&server, "GET / HTTP/1.7\r\nHost: test\r\n\r\n").await;
    assert_eq!(reply.status, 200, "1.x is served as 1.1");

    let mut client = Client::connect(&server).await;
    client.send("BREW /pot HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let reply = client.reply().await;
    assert_eq!((reply.status, reply.text().as_str()), (501, "501 Not Implemented\n"));
    for (method, path, allow) in [
        ("POST", "/index.html", "GET, HEAD, OPTIONS"),
        ("PUT", "/index.html", "GET, HEAD, OPTIONS"),
        ("DELETE", "/index.html", "GET, HEAD, OPTIONS"),
        ("GET", "/echo", "POST, OPTIONS"),
        ("POST", "/uploads/x", "GET, HEAD, PUT, DELETE, OPTIONS"),
    ] {
        client
            .send(format!("{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nhi"))
            .await;
        let reply = client.reply().await;
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.field("Allow"), Some(allow), "{method} {path}");
    }
    client.send("OPTIONS * HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let reply = client.reply().await;
    assert_eq!((reply.status, reply.field("Content-Length")), (200, Some("0")));
    assert_eq!(reply.field("Allow"), Some("GET, HEAD, POST, PUT, DELETE, OPTIONS"));
}

// ---------------------------------------------------------------- framing

#[tokio::test]
async fn a_request_split_byte_by_byte() {
    let server = start(&[]).await;
    let mut client = Client::connect(&server).await;
    for byte in get("/notes.txt").bytes() {
        client.send([byte]).await;
    }
    assert_eq!(client.reply().await.body, fixture("notes.txt"));
    // Bare LF line endings are accepted too (RFC 9112 §2.2).
    client.send("\r\nGET /index.html HTTP/1.1\nHost: test\n\n").await;
    assert_eq!(client.reply().await.body, fixture("index.html"));
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let server = start(&[]).await;
    let mut client = Client::connect(&server).await;
    client
        .send(format!("{}{}{}", get("/notes.txt"), get("/image.bin"), get("/sub/page.html")))
        .await;
    for file in ["notes.txt", "image.bin", "sub/page.html"] {
        assert!(client.reply().await.body == fixture(file), "{file} out of order");
    }
}

#[tokio::test]
async fn persistence_by_version_and_connection_field() {
    let server = start(&[]).await;

    let mut client = Client::connect(&server).await;
    for _ in 0..2 {
        client.send(get("/notes.txt")).await;
        assert_eq!(client.reply().await.status, 200);
    }
    client
        .send("GET /notes.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await;
    let reply = client.reply().await;
    assert_eq!((reply.status, reply.field("Connection")), (200, Some("close")));
    assert!(client.closed().await);

    let mut client = Client::connect(&server).await;
    client.send("GET /notes.txt HTTP/1.0\r\n\r\n").await;
    let reply = client.reply().await;
    assert_eq!((reply.status, reply.field("Connection")), (200, Some("close")));
    assert!(client.closed().await, "HTTP/1.0 closes by default");

    let mut client = Client::connect(&server).await;
    for _ in 0..2 {
        client.send("GET /notes.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await;
        let reply = client.reply().await;
        assert_eq!((reply.status, reply.field("Connection")), (200, Some("keep-alive")));
    }
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let server = start(&[("idle", "200ms")]).await;
    let began = Instant::now();
    let mut silent = Client::connect(&server).await;
    let mut after_one = Client::connect(&server).await;
    after_one.send(get("/notes.txt")).await;
    assert_eq!(after_one.reply().await.status, 200);
    let mut stalled = Client::connect(&server).await;
    stalled.send("GET /notes.txt HTTP/1.1\r\nHo").await;
    assert!(silent.closed().await);
    assert!(after_one.closed().await);
    assert!(began.elapsed() >= Duration::from_millis(200));
    let reply = stalled.reply().await;
    assert_eq!((reply.status, reply.field("Connection")), (408, Some("close")));
    assert!(stalled.closed().await);
}

#[tokio::test]
async fn a_client_leaving_mid_request_does_not_stop_the_server() {
    let server = start(&[]).await;
    for partial in [
        &b"GET /index.ht"[..],
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc",
    ] {
        let mut leaving = Client::connect(&server).await;
        leaving.send(partial).await;
        drop(leaving);
    }
    assert_eq!(exchange(&server, get("/index.html")).await.body, fixture("index.html"));
    assert!(!server.is_finished());
}

#[tokio::test]
async fn at_max_connections_the_idlest_makes_room() {
    let server = start(&[("max_connections", "1")]).await;
    let mut first = Client::connect(&server).await;
    first.send(get("/notes.txt")).await;
    assert_eq!(first.reply().await.status, 200);
    // The first client now waits idle on a persistent connection: it is closed for the newcomer.
    let mut second = Client::connect(&server).await;
    second.send(get("/notes.txt")).await;
    assert_eq!(second.reply().await.status, 200);
    let mut byte = [0u8; 1];
    let closed = timeout(Duration::from_secs(2), first.stream.read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the idle connection was not closed: {closed:?}"
    );
}

// ---------------------------------------------------------------- conditional GET

#[tokio::test]
async fn conditional_get() {
    let server = start(&[]).await;
    let mut client = Client::connect(&server).await;
    client.send(get("/index.html")).await;
    let full = client.reply().await;
    let etag = full.field("ETag").unwrap().to_owned();
    let last_modified = full.field("Last-Modified").unwrap().to_owned();

    let conditional = |fields: &str| format!("GET /index.html HTTP/1.1\r\nHost: test\r\n{fields}\r\n");
    for fields in [
        format!("If-None-Match: {etag}\r\n"),
        format!("If-None-Match: \"other\", W/{etag}\r\n"),
        "If-None-Match: *\r\n".to_owned(),
        format!("If-Modified-Since: {last_modified}\r\n"),
        "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n".to_owned(),
        format!("If-None-Match: {etag}\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n"),
    ] {
        client.send(conditional(&fields)).await;
        let reply = client.reply().await;
        assert_eq!(reply.status, 304, "{fields}");
        assert!(reply.body.is_empty() && reply.field("Content-Length").is_none());
        assert_eq!(reply.field("ETag"), Some(etag.as_str()));
        assert_eq!(reply.field("Last-Modified"), Some(last_modified.as_str()));
        assert_eq!(reply.field("Cache-Control"), Some("max-age=60"));
        assert!(reply.field("Date").is_some());
    }
    for fields in [
        "If-None-Match: \"other\"\r\n".to_owned(),
        "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n".to_owned(),
        "If-Modified-Since: yesterday\r\n".to_owned(),
        format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {last_modified}\r\n"),
    ] {
        client.send(conditional(&fields)).await;
        let reply = client.reply().await;
        assert_eq!(reply.status, 200, "{fields}");
        assert_eq!(reply.body, full.body);
    }
}

// ---------------------------------------------------------------- endpoints

#[tokio::test]
async fn cookie_flow() {
    let server = start(&[]).await;
    let mut client = Client::connect(&server).await;
    client.send(get("/cookie")).await;
    let first = client.reply().await;
    assert_eq!((first.status, first.text().as_str()), (200, "welcome, new visitor\n"));
    let set = first.field("Set-Cookie").expect("Set-Cookie");
    let id: u64 = set
        .strip_prefix("id=")
        .and_then(|rest| rest.strip_suffix("; Path=/"))
        .and_then(|n| n.parse().ok())
        .expect("id=<n>; Path=/");

    client
        .send(format!("GET /cookie HTTP/1.1\r\nHost: test\r\nCookie: a=b; id={id}; c=d\r\n\r\n"))
        .await;
    let again = client.reply().await;
    assert_eq!(again.text(), format!("welcome back, visitor {id}\n"));
    assert!(again.field("Set-Cookie").is_none());

    client.send("GET /cookie HTTP/1.1\r\nHost: test\r\nCookie: id=999999\r\n\r\n").await;
    let stranger = client.reply().await;
    assert_eq!(stranger.text(), "welcome, new visitor\n");
    assert_eq!(stranger.field("Set-Cookie"), Some(format!("id={}; Path=/", id + 1).as_str()));
}

#[tokio::test]
async fn echo_by_length_chunked_and_after_100_continue() {
    let server = start(&[]).await;
    let mut client = Client::connect(&server).await;
    let body = b"line one\r\nline two\n\x00\xff end";
    client
        .send(
            [
                format!("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
                body,
            ]
            .concat(),
        )
        .await;
    let reply = client.reply().await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.field("Content-Type"), Some("text/plain; charset=utf-8"));
    assert_eq!(reply.body, body);

    client
        .send(
            "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
             5;name=value\r\nhello\r\n7\r\n, world\r\nA ; q=\"x\"\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n",
        )
        .await;
    assert_eq!(client.reply().await.text(), "hello, world0123456789");

    client
        .send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        .await;
    assert_eq!(client.reply().await.status, 100);
    client.send("ping").await;
    assert_eq!(client.reply().await.text(), "ping");

    client.send("POST /echo HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let empty = client.reply().await;
    assert_eq!((empty.status, empty.field("Content-Length")), (200, Some("0")));
}

#[tokio::test]
async fn uploads_round_trip_outside_the_root() {
    let server = start(&[]).await;
    let name = format!("upload-test-{}.bin", std::process::id());
    let path = format!("/uploads/{name}");
    let mut client = Client::connect(&server).await;
    let put = |body: &str| format!("PUT {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}", body.len());

    client.send(put("first")).await;
    let created = client.reply().await;
    assert_eq!(created.status, 201);
    assert_eq!(created.field("Location"), Some(path.as_str()));
    client.send(put("second version")).await;
    let replaced = client.reply().await;
    assert_eq!((replaced.status, replaced.field("Content-Length")), (204, None));

    client.send(get(&path)).await;
    let fetched = client.reply().await;
    assert_eq!((fetched.status, fetched.text().as_str()), (200, "second version"));
    assert_eq!(fetched.field("Content-Type"), Some("application/octet-stream"));
    assert!(
        !www().join(&name).exists() && !www().join("uploads").exists(),
        "uploads land outside the root"
    );

    let delete = format!("DELETE {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    client.send(&delete).await;
    assert_eq!(client.reply().await.status, 204);
    client.send(&delete).await;
    assert_eq!(client.reply().await.status, 404);
    client.send(get(&path)).await;
    assert_eq!(client.reply().await.status, 404);

    refused(
        &server,
        "PUT /uploads/.hidden HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\n\r\nx",
        400,
    )
    .await;
    refused(
        &server,
        "PUT /uploads/a%2Fb HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\n\r\nx",
        400,
    )
    .await;
}

#[tokio::test]
async fn uploads_option_names_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = dir.path().join("up");
    let server = start(&[("uploads", uploads.to_str().unwrap())]).await;
    let reply = exchange(&server, "PUT /uploads/x.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok").await;
    assert_eq!(reply.status, 201);
    assert_eq!(std::fs::read(uploads.join("x.txt")).unwrap(), b"ok");
}

#[tokio::test]
async fn default_uploads_directory_goes_away_with_the_server() {
    let before: Vec<_> = uploads_dirs();
    let server = start(&[]).await;
    let reply = exchange(&server, "PUT /uploads/x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok").await;
    assert_eq!(reply.status, 201);
    let during: Vec<_> = uploads_dirs().into_iter().filter(|d| !before.contains(d)).collect();
    assert!(!during.is_empty(), "a temporary uploads directory exists while serving");
    server.shutdown().await;
    assert!(during.iter().all(|d| !d.exists()), "removed on shutdown");
}

fn uploads_dirs() -> Vec<PathBuf> {
    let entries = std::fs::read_dir(std::env::temp_dir()).unwrap();
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("wirecheck-uploads-")))
        .collect()
}

// ---------------------------------------------------------------- security

#[tokio::test]
async fn path_traversal_never_leaves_the_root() {
    const SECRET: &str = "TOP SECRET, outside the root";
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("index.html"), "inside").unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
    std::os::unix::fs::symlink(dir.path(), root.join("dirlink")).unwrap();
    let server = start(&[("root", root.to_str().unwrap())]).await;
    assert_eq!(exchange(&server, get("/index.html")).await.text(), "inside");

    for target in [
        "/../secret",
        "/%2e%2e/secret",
        "/%2E%2E%2Fsecret",
        "/..%2fsecret",
        "/sub/../../secret",
        "/%2e%2e%5csecret",
        "/..\\secret",
        "/.%2e/secret",
        "//../secret",
        "http://x/../secret",
        "/%252e%252e/secret",
        "/..%00/secret",
        "/link",
        "/dirlink/secret",
        "/dirlink/root/../secret",
    ] {
        let reply = exchange(&server, format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n")).await;
        assert!(matches!(reply.status, 400 | 403 | 404), "{target}: {}", reply.status);
        assert!(!reply.text().contains(SECRET), "{target} leaked the secret");
    }
}

// ---------------------------------------------------------------- options

#[tokio::test]
async fn bad_options_are_errors() {
    let err = try_start(&[("port", "80")]).await.err();
    assert!(matches!(err, Some(Error::UnknownOption { .. })), "{err:?}");
    for (key, value) in [
        ("idle", "10"),
        ("max_connections", "0"),
        ("root", "/nonexistent/www"),
        ("root", "/etc/hostname"),
    ] {
        let err = try_start(&[(key, value)]).await.err();
        assert!(
            matches!(&err, Some(Error::BadOption { key: k, .. }) if k == key),
            "{key}={value}: {err:?}"
        );
    }
}

#[tokio::test]
async fn default_root_is_the_repository_web_root() {
    let server = timeout(LIMIT, start_server("http", SocketAddr::from(([127, 0, 0, 1], 0)), &Options::new()))
        .await
        .expect("start_server timed out")
        .expect("starts without options");
    assert_eq!(exchange(&server, get("/index.html")).await.body, fixture("index.html"));
}

#[tokio::test]
async fn garbage_and_mangled_requests_never_stop_the_server() {
    let server = start(&[("idle", "300ms")]).await;
    let mut rng = fastrand::Rng::with_seed(9112);
    let valid = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n";
    for round in 0..200 {
        let input: Vec<u8> = if round % 2 == 0 {
            let len = rng.usize(1..300);
            (0..len).map(|_| rng.u8(..)).collect()
        } else {
            let mut mangled = valid.to_vec();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..mangled.len());
                mangled[at] = rng.u8(..);
            }
            mangled
        };
        let mut client = Client::connect(&server).await;
        client.send(&input).await;
        let _ = client.stream.shutdown().await;
        let mut reply = Vec::new();
        let _ = timeout(LIMIT, client.stream.read_to_end(&mut reply)).await.expect("no close");
        assert!(reply.is_empty() || reply.starts_with(b"HTTP/1.1 "), "{input:?} got {reply:?}");
    }
    assert_eq!(exchange(&server, get("/index.html")).await.body, fixture("index.html"));
}
