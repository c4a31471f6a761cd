//! The origin over real loopback sockets, speaking raw bytes: the spec's rules on the fixtures,
//! then one test per fault showing it changes what it should.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::NAME;
use crate::{start_server, Error, Options, RunningServer};

/// Upper bound for any single wait in these tests.
const LIMIT: Duration = Duration::from_secs(5);
const MPD: &str = "/testsrc/video.mpd";
const SEGMENT: &str = "/testsrc/seg-0-1.m4s";
const ONDEMAND: &str = "/ondemand/od-0.mp4";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/dash")
}

fn fixture(target: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(target.trim_start_matches('/'))).expect("fixture")
}

async fn try_start(pairs: &[(&str, &str)]) -> Result<RunningServer, Error> {
    let opts: Options = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    timeout(LIMIT, start_server(NAME, SocketAddr::from(([127, 0, 0, 1], 0)), &opts))
        .await
        .expect("start_server timed out")
}

/// The origin over the fixtures, with `fault` (may be empty).
async fn start(fault: &str) -> RunningServer {
    let root = fixtures().display().to_string();
    try_start(&[("root", &root), ("fault", fault)]).await.expect("server starts")
}

#[derive(Debug)]
struct Reply {
    status: u16,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
    /// Whether as many bytes came as Content-Length said (the connection ended first otherwise).
    complete: bool,
}

impl Reply {
    fn field(&self, name: &str) -> Option<&str> {
        let mut values = self.fields.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let value = values.next().map(|(_, v)| v.as_str());
        assert!(values.next().is_none(), "{name} sent twice");
        value
    }

    fn length(&self) -> Option<u64> {
        self.field("content-length").map(|v| v.parse().expect("numeric Content-Length"))
    }

    fn cors_fields(&self) -> Vec<&(String, String)> {
        self.fields
            .iter()
            .filter(|(n, _)| n.to_ascii_lowercase().starts_with("access-control-"))
            .collect()
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
        Client { stream, buf: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Sends `method target` with Host and the `extra` fields, and reads the reply.
    async fn ask(&mut self, method: &str, target: &str, extra: &[(&str, &str)]) -> Reply {
        let mut request = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (name, value) in extra {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        self.send(request.as_bytes()).await;
        self.reply(method == "HEAD").await
    }

    /// More bytes into `buf`; false at the end of the connection.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let n = timeout(LIMIT, self.stream.read(&mut chunk))
            .await
            .expect("read timed out")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Reads one response; its content unless `head_only` (or 204).
    async fn reply(&mut self, head_only: bool) -> Reply {
        let (status, fields, used) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut slots);
            if let httparse::Status::Complete(used) = response.parse(&self.buf).expect("a valid response head") {
                let fields = response
                    .headers
                    .iter()
                    .map(|f| (f.name.to_owned(), String::from_utf8_lossy(f.value).into_owned()))
                    .collect::<Vec<_>>();
                break (response.code.expect("status"), fields, used);
            }
            assert!(
                self.fill().await,
                "closed before a whole head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        self.buf.drain(..used);
        let mut reply = Reply {
            status,
            fields,
            body: Vec::new(),
            complete: true,
        };
        if head_only || status == 204 {
            return reply;
        }
        let length = usize::try_from(reply.length().expect("Content-Length")).expect("length");
        while self.buf.len() < length {
            if !self.fill().await {
                reply.complete = false;
                break;
            }
        }
        reply.body = self.buf.drain(..length.min(self.buf.len())).collect();
        reply
    }

    /// Whether the server closes the connection (within `LIMIT`) without sending anything more.
    async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        matches!(timeout(LIMIT, self.stream.read(&mut chunk)).await, Ok(Ok(0)) | Ok(Err(_))) && self.buf.is_empty()
    }
}

/// One request on a connection of its own.
async fn ask(server: &RunningServer, method: &str, target: &str, extra: &[(&str, &str)]) -> Reply {
    Client::connect(server).await.ask(method, target, extra).await
}

fn assert_cors(reply: &Reply) {
    assert_eq!(reply.field("access-control-allow-origin"), Some("*"), "{reply:?}");
    let exposed = reply
        .field("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in ["content-length", "content-range", "date"] {
        assert!(exposed.contains(name), "{name} not exposed: {reply:?}");
    }
}

// ---------------------------------------------------------------- the origin's rules

#[tokio::test]
async fn the_mpd_is_application_dash_xml() {
    let server = start("").await;
    let reply = ask(&server, "GET", MPD, &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.field("content-type"), Some("application/dash+xml"));
    assert_eq!(reply.body, fixture(MPD));
    assert!(reply.field("date").is_some_and(|d| httpdate::parse_http_date(d).is_ok()));
    assert_eq!(reply.field("accept-ranges"), Some("bytes"));
    assert!(reply.field("last-modified").is_some());
}

#[tokio::test]
async fn get_sends_the_whole_file_with_its_length_and_type() {
    let server = start("").await;
    for (target, content_type) in [
        (SEGMENT, "video/iso.segment"),
        (ONDEMAND, "video/mp4"),
        ("/make.sh", "application/octet-stream"),
    ] {
        let reply = ask(&server, "GET", target, &[]).await;
        let file = fixture(target);
        assert_eq!(reply.status, 200, "{target}");
        assert_eq!(reply.length(), Some(file.len() as u64), "{target}");
        assert_eq!(reply.body, file, "{target}");
        assert_eq!(reply.field("content-type"), Some(content_type), "{target}");
        assert_cors(&reply);
    }
}

#[tokio::test]
async fn head_has_the_fields_of_get_and_no_content() {
    let server = start("").await;
    for extra in [&[][..], &[("Range", "bytes=10-19")][..]] {
        let mut client = Client::connect(&server).await;
        let head = client.ask("HEAD", ONDEMAND, extra).await;
        // The next reply parses right after the head only if no content followed it.
        let get = client.ask("GET", ONDEMAND, extra).await;
        let without_date = |reply: &Reply| {
            let mut fields: Vec<(String, String)> = reply
                .fields
                .iter()
                .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
                .cloned()
                .collect();
            fields.sort();
            fields
        };
        assert_eq!(head.status, get.status);
        assert_eq!(without_date(&head), without_date(&get));
        assert!(head.field("date").is_some());
    }
}

#[tokio::test]
async fn each_range_form_is_206_with_its_bytes() {
    let server = start("").await;
    let file = fixture(ONDEMAND);
    let len = file.len();
    let clamped = format!("bytes={}-99999999", len - 10);
    let cases = [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, len - 1),
        ("bytes=-100", len - 100, len - 1),
        ("bytes=1000-1000", 1000, 1000),
        (clamped.as_str(), len - 10, len - 1),
    ];
    let mut client = Client::connect(&server).await;
    for (range, first, last) in cases {
        let reply = client.ask("GET", ONDEMAND, &[("Range", range)]).await;
        assert_eq!(reply.status, 206, "{range}");
        assert_eq!(
            reply.field("content-range"),
            Some(&*format!("bytes {first}-{last}/{len}")),
            "{range}"
        );
        assert_eq!(reply.length(), Some((last - first + 1) as u64), "{range}");
        assert_eq!(reply.body, &file[first..=last], "{range}");
        assert_eq!(reply.field("content-type"), Some("video/mp4"));
        assert_cors(&reply);
    }
}

#[tokio::test]
async fn an_unsatisfiable_range_is_416() {
    let server = start("").await;
    let len = fixture(SEGMENT).len();
    let mut client = Client::connect(&server).await;
    for range in [
        format!("bytes={len}-"),
        format!("bytes={}-{}", len + 5, len + 10),
        "bytes=-0".to_owned(),
    ] {
        let reply = client.ask("GET", SEGMENT, &[("Range", &range)]).await;
        assert_eq!(reply.status, 416, "{range}");
        assert_eq!(reply.field("content-range"), Some(&*format!("bytes */{len}")), "{range}");
        assert_cors(&reply);
    }
    assert_eq!(client.ask("GET", MPD, &[]).await.status, 200, "the connection goes on");
}

#[tokio::test]
async fn an_invalid_range_or_several_are_answered_with_the_whole_file() {
    let server = start("").await;
    let file = fixture(SEGMENT);
    let mut client = Client::connect(&server).await;
    for range in ["bytes=5-2", "bytes=abc", "items=0-1", "bytes 0-1", "bytes=0-1,5-9"] {
        let reply = client.ask("GET", SEGMENT, &[("Range", range)]).await;
        assert_eq!(reply.status, 200, "{range}");
        assert_eq!(reply.field("content-range"), None, "{range}");
        assert_eq!(reply.body, file, "{range}");
    }
}

#[tokio::test]
async fn if_range_with_another_validator_gets_the_whole_file() {
    let server = start("").await;
    let first = ask(&server, "GET", SEGMENT, &[]).await;
    let date = first.field("last-modified").expect("Last-Modified").to_owned();
    let range = [("Range", "bytes=0-9"), ("If-Range", &*date)];
    assert_eq!(ask(&server, "GET", SEGMENT, &range).await.status, 206);
    let stale = [("Range", "bytes=0-9"), ("If-Range", "Thu, 01 Jan 1970 00:00:00 GMT")];
    assert_eq!(ask(&server, "GET", SEGMENT, &stale).await.status, 200);
    let etag = [("Range", "bytes=0-9"), ("If-Range", "\"x\"")];
    assert_eq!(ask(&server, "GET", SEGMENT, &etag).await.status, 200);
}

#[tokio::test]
async fn options_is_a_cors_preflight() {
    let server = start("").await;
    let preflight = [
        ("Origin", "http://player.example"),
        ("Access-Control-Request-Method", "GET"),
        ("Access-Control-Request-Headers", "range"),
    ];
    let reply = ask(&server, "OPTIONS", SEGMENT, &preflight).await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.length(), None, "RFC 9110 §8.6: no Content-Length on 204");
    assert_cors(&reply);
    let methods = reply.field("access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("GET") && methods.contains("HEAD"), "{methods}");
    let headers = reply.field("access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
    assert!(headers.contains("range"), "{headers}");
    assert!(reply.field("access-control-max-age").is_some());

    let asked = [
        ("Access-Control-Request-Method", "GET"),
        ("Access-Control-Request-Headers", "accept, range"),
    ];
    let reply = ask(&server, "OPTIONS", "/nonexistent.m4s", &asked).await;
    assert_eq!(reply.status, 204, "a preflight is about the policy, not the file");
    assert_eq!(reply.field("access-control-allow-headers"), Some("accept, range"));
    let custom = [
        ("Access-Control-Request-Method", "GET"),
        ("Access-Control-Request-Headers", "x-custom"),
    ];
    let reply = ask(&server, "OPTIONS", SEGMENT, &custom).await;
    assert_eq!(reply.field("access-control-allow-headers"), Some("Range"));
}

#[tokio::test]
async fn a_missing_file_is_404_with_a_body() {
    let server = start("").await;
    for target in ["/testsrc/seg-9-1.m4s", "/testsrc", "/"] {
        let reply = ask(&server, "GET", target, &[]).await;
        assert_eq!(reply.status, 404, "{target}");
        assert_eq!(reply.body, b"404 Not Found\n", "{target}");
        assert_eq!(reply.field("content-type"), Some("text/plain; charset=utf-8"));
        assert_cors(&reply);
    }
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let server = start("").await;
    for method in ["POST", "PUT", "DELETE", "BREW"] {
        let reply = ask(&server, method, MPD, &[]).await;
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.field("allow"), Some("GET, HEAD, OPTIONS"), "{method}");
        assert_cors(&reply);
    }
}

#[tokio::test]
async fn nothing_outside_the_root_is_served() {
    let outside = tempfile::tempdir().expect("tempdir");
    let root = outside.path().join("root");
    std::fs::create_dir(&root).expect("root");
    std::fs::write(outside.path().join("secret.txt"), "secret").expect("secret");
    std::fs::write(root.join("video.mpd"), "<MPD/>").expect("mpd");
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("link.mpd")).expect("symlink");
    let server = try_start(&[("root", &root.display().to_string())]).await.expect("server starts");
    assert_eq!(ask(&server, "GET", "/video.mpd", &[]).await.status, 200);
    for target in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/x/../../secret.txt",
        "/..%2fsecret.txt",
        "/link.mpd",
    ] {
        let reply = ask(&server, "GET", target, &[]).await;
        assert_eq!(reply.status, 403, "{target}");
        assert!(!reply.body.starts_with(b"secret"), "{target}");
    }
}

#[tokio::test]
async fn connections_persist() {
    let server = start("").await;
    let mut client = Client::connect(&server).await;
    let first = client.ask("GET", MPD, &[]).await;
    assert_eq!(first.field("connection"), None);
    let second = client.ask("GET", SEGMENT, &[]).await;
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(second.body, fixture(SEGMENT));
    // Pipelined, with a small body a GET should not have, which is skipped.
    client
        .send(b"GET /testsrc/init-0.m4s HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /testsrc/init-1.m4s HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(client.reply(false).await.body, fixture("/testsrc/init-0.m4s"));
    assert_eq!(client.reply(false).await.body, fixture("/testsrc/init-1.m4s"));
    let last = client.ask("GET", MPD, &[("Connection", "close")]).await;
    assert_eq!(last.field("connection"), Some("close"));
    assert!(client.closed().await);
}

#[tokio::test]
async fn http_1_0_closes_unless_asked_to_keep_alive() {
    let server = start("").await;
    let mut client = Client::connect(&server).await;
    client
        .send(b"GET /testsrc/video.mpd HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let reply = client.reply(false).await;
    assert_eq!(reply.field("connection"), Some("keep-alive"));
    client.send(b"GET /testsrc/video.mpd HTTP/1.0\r\n\r\n").await;
    assert_eq!(client.reply(false).await.status, 200);
    assert!(client.closed().await);
}

#[tokio::test]
async fn a_malformed_request_is_400_then_closed() {
    let server = start("").await;
    for request in [
        &b"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00",
        b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let mut client = Client::connect(&server).await;
        client.send(request).await;
        let reply = client.reply(false).await;
        assert_eq!(reply.status, 400, "{:?}", String::from_utf8_lossy(request));
        assert_eq!(reply.field("connection"), Some("close"));
        assert!(reply.field("date").is_some() && reply.length().is_some());
        assert!(client.closed().await);
    }
}

#[tokio::test]
async fn a_head_too_large_is_refused() {
    let server = start("").await;
    let mut client = Client::connect(&server).await;
    let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "y".repeat(super::request::MAX_HEAD));
    client.send(big.as_bytes()).await;
    assert_eq!(client.reply(false).await.status, 431);
    assert!(client.closed().await);
}

#[tokio::test]
async fn the_default_root_is_the_dash_fixtures() {
    let server = try_start(&[]).await.expect("server starts");
    assert_eq!(ask(&server, "GET", MPD, &[]).await.body, fixture(MPD));
    let err = try_start(&[("fault", "nosuch")])
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("nosuch") && err.contains("traversal"), "{err}");
    assert!(try_start(&[("root", "/nonexistent/dash")]).await.is_err());
    assert!(try_start(&[("colour", "blue")]).await.is_err());
}

// ---------------------------------------------------------------- faults

#[tokio::test]
async fn fault_wrong_content_type() {
    let server = start("wrong-content-type").await;
    assert_eq!(ask(&server, "GET", MPD, &[]).await.field("content-type"), Some("text/xml"));
    assert_eq!(
        ask(&server, "GET", SEGMENT, &[]).await.field("content-type"),
        Some("video/iso.segment")
    );
}

#[tokio::test]
async fn fault_broken_ranges() {
    let server = start("broken-ranges").await;
    let reply = ask(&server, "GET", SEGMENT, &[("Range", "bytes=0-9")]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, fixture(SEGMENT));
    assert_eq!(reply.field("accept-ranges"), Some("bytes"), "it still claims ranges");
}

#[tokio::test]
async fn fault_range_off_by_one() {
    let server = start("range-off-by-one").await;
    let file = fixture(SEGMENT);
    let mut client = Client::connect(&server).await;
    let reply = client.ask("GET", SEGMENT, &[("Range", "bytes=10-19")]).await;
    assert_eq!(reply.status, 206);
    assert_eq!(reply.field("content-range"), Some(&*format!("bytes 10-19/{}", file.len())));
    assert_eq!(reply.body, &file[10..19], "nine bytes, not ten");
    assert_eq!(client.ask("GET", MPD, &[]).await.status, 200, "the framing itself is intact");
}

#[tokio::test]
async fn fault_no_416() {
    let server = start("no-416").await;
    let file = fixture(SEGMENT);
    let reply = ask(&server, "GET", SEGMENT, &[("Range", &format!("bytes={}-", file.len()))]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, file);
}

#[tokio::test]
async fn fault_head_body() {
    let server = start("head-body").await;
    let mut client = Client::connect(&server).await;
    client.send(b"HEAD /testsrc/video.mpd HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(client.reply(false).await.body, fixture(MPD), "the content follows the head");
}

#[tokio::test]
async fn fault_no_head() {
    let server = start("no-head").await;
    let reply = ask(&server, "HEAD", MPD, &[]).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.field("allow"), Some("GET, OPTIONS"));
    assert_eq!(ask(&server, "GET", MPD, &[]).await.status, 200);
}

#[tokio::test]
async fn fault_no_cors() {
    let server = start("no-cors").await;
    let reply = ask(&server, "GET", MPD, &[]).await;
    assert_eq!(reply.status, 200);
    assert!(reply.cors_fields().is_empty(), "{reply:?}");
    let reply = ask(&server, "OPTIONS", MPD, &[("Access-Control-Request-Method", "GET")]).await;
    assert_eq!(reply.status, 204);
    assert!(reply.cors_fields().is_empty(), "{reply:?}");
}

#[tokio::test]
async fn fault_no_preflight() {
    let server = start("no-preflight").await;
    let reply = ask(&server, "OPTIONS", MPD, &[("Access-Control-Request-Method", "GET")]).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.field("allow"), Some("GET, HEAD"));
    assert_eq!(reply.field("access-control-allow-methods"), None);
}

#[tokio::test]
async fn fault_no_expose() {
    let server = start("no-expose").await;
    let reply = ask(&server, "GET", MPD, &[]).await;
    assert_eq!(reply.field("access-control-allow-origin"), Some("*"));
    assert_eq!(reply.field("access-control-expose-headers"), None);
}

#[tokio::test]
async fn fault_wrong_length() {
    let server = start("wrong-length").await;
    let file = fixture(SEGMENT);
    let mut client = Client::connect(&server).await;
    let reply = client.ask("GET", SEGMENT, &[]).await;
    assert_eq!(reply.length(), Some(file.len() as u64 + 1));
    assert_eq!(reply.field("connection"), None);
    assert!(!reply.complete, "the connection ends a byte short");
    assert_eq!(reply.body, file);
    let reply = ask(&server, "GET", MPD, &[]).await;
    assert!(reply.complete && reply.body == fixture(MPD), "the MPD is served right");
    let reply = ask(&server, "HEAD", SEGMENT, &[]).await;
    assert_eq!(reply.length(), Some(file.len() as u64), "HEAD is right");
}

#[tokio::test]
async fn fault_no_404() {
    let server = start("no-404").await;
    let reply = ask(&server, "GET", "/testsrc/seg-9-1.m4s", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.length(), Some(0));
}

#[tokio::test]
async fn fault_closes_silently() {
    let server = start("closes-silently").await;
    let mut client = Client::connect(&server).await;
    let reply = client.ask("GET", MPD, &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.field("connection"), None);
    assert!(client.closed().await);
}

#[tokio::test]
async fn fault_traversal() {
    let outside = tempfile::tempdir().expect("tempdir");
    let root = outside.path().join("root");
    std::fs::create_dir(&root).expect("root");
    std::fs::write(outside.path().join("secret.txt"), "secret").expect("secret");
    let root = root.display().to_string();
    let server = try_start(&[("root", &root), ("fault", "traversal")]).await.expect("server starts");
    for target in ["/../secret.txt", "/%2e%2e/secret.txt"] {
        let reply = ask(&server, "GET", target, &[]).await;
        assert_eq!(reply.status, 200, "{target}");
        assert_eq!(reply.body, b"secret", "{target}");
    }
}
