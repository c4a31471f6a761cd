//! Loopback tests of the `http2` reference server, with `h2`'s client for
//! HTTP/2 and raw bytes for HTTP/1.1. Test names start with `http2_`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use h2::client::{self, SendRequest};
use h2::RecvStream;
use http::{HeaderMap, Method, Request};
use reference_servers::{start_server, Error, Options, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::timeout;

/// Upper bound for any single wait in these tests.
const LIMIT: Duration = Duration::from_secs(10);
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn www() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/www")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(www().join(name)).expect("fixture")
}

async fn try_start(pairs: &[(&str, &str)]) -> Result<RunningServer, Error> {
    let mut options: Options = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    options.entry("root".to_owned()).or_insert_with(|| www().display().to_string());
    timeout(LIMIT, start_server("http2", SocketAddr::from(([127, 0, 0, 1], 0)), &options))
        .await
        .expect("start_server timed out")
}

async fn start(pairs: &[(&str, &str)]) -> RunningServer {
    try_start(pairs).await.expect("start_server failed")
}

async fn tcp(server: &RunningServer) -> TcpStream {
    timeout(LIMIT, TcpStream::connect(server.local_addr()))
        .await
        .expect("connect timed out")
        .expect("connect")
}

/// An HTTP/2 client over a new connection (prior knowledge), with `builder`'s settings.
async fn connect_with(server: &RunningServer, builder: &client::Builder) -> SendRequest<Bytes> {
    let io = tcp(server).await;
    let (send, connection) = timeout(LIMIT, builder.handshake::<_, Bytes>(io))
        .await
        .expect("handshake timed out")
        .expect("handshake");
    tokio::spawn(connection);
    timeout(LIMIT, send.ready()).await.expect("ready timed out").expect("ready")
}

async fn connect(server: &RunningServer) -> SendRequest<Bytes> {
    connect_with(server, &client::Builder::new()).await
}

fn request(server: &RunningServer, method: Method, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", server.local_addr()))
        .body(())
        .expect("request")
}

#[derive(Debug)]
struct Got {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("visible ASCII"))
    }
}

/// Reads a body to its end, giving the window back as it goes.
async fn read_body(mut body: RecvStream) -> Vec<u8> {
    let mut all = Vec::new();
    while let Some(chunk) = timeout(LIMIT, body.data()).await.expect("body timed out") {
        let chunk = chunk.expect("body");
        let _ = body.flow_control().release_capacity(chunk.len());
        all.extend_from_slice(&chunk);
    }
    all
}

async fn exchange(client: &mut SendRequest<Bytes>, request: Request<()>, body: Option<Bytes>) -> Got {
    let (response, mut sending) = client.send_request(request, body.is_none()).expect("send_request");
    if let Some(body) = body {
        sending.send_data(body, true).expect("send_data");
    }
    let response = timeout(LIMIT, response).await.expect("response timed out").expect("response");
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    Got {
        status,
        headers: parts.headers,
        body: read_body(body).await,
    }
}

async fn get(server: &RunningServer, path: &str) -> Got {
    let mut client = connect(server).await;
    exchange(&mut client, request(server, Method::GET, path), None).await
}

/// Sends raw bytes, then the end of what the client sends, and reads until the server closes.
async fn raw(server: &RunningServer, bytes: &[u8]) -> Vec<u8> {
    let mut stream = tcp(server).await;
    timeout(LIMIT, stream.write_all(bytes))
        .await
        .expect("write timed out")
        .expect("write");
    let _ = stream.shutdown().await;
    let mut all = Vec::new();
    let _ = timeout(LIMIT, stream.read_to_end(&mut all)).await.expect("server did not close");
    all
}

fn split_http1(response: &[u8]) -> (String, Vec<u8>) {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head");
    (String::from_utf8_lossy(&response[..end]).into_owned(), response[end + 4..].to_vec())
}

#[tokio::test]
async fn http2_get_index_over_prior_knowledge() {
    let server = start(&[]).await;
    let got = get(&server, "/index.html").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, fixture("index.html"));
    assert_eq!(got.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(got.header("content-length"), Some(got.body.len().to_string().as_str()));
    assert!(got.header("date").is_some());
    let root = get(&server, "/").await;
    assert_eq!((root.status, root.body), (200, fixture("index.html")));
    let image = get(&server, "/image.bin").await;
    assert_eq!(image.header("content-type"), Some("application/octet-stream"));
    assert!(image.body == fixture("image.bin"), "image.bin differs");
}

#[tokio::test]
async fn http2_head_has_the_length_and_no_body() {
    let server = start(&[]).await;
    let mut client = connect(&server).await;
    let got = exchange(&mut client, request(&server, Method::HEAD, "/notes.txt"), None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-length"), Some(fixture("notes.txt").len().to_string().as_str()));
    assert_eq!(got.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(got.body.is_empty());
}

#[tokio::test]
async fn http2_missing_files_and_other_methods() {
    let server = start(&[]).await;
    let mut client = connect(&server).await;
    let missing = exchange(&mut client, request(&server, Method::GET, "/nope.html"), None).await;
    assert_eq!((missing.status, missing.body.as_slice()), (404, &b"404 Not Found\n"[..]));
    let put = exchange(&mut client, request(&server, Method::PUT, "/index.html"), Some(Bytes::from("x"))).await;
    assert_eq!((put.status, put.header("allow")), (405, Some("GET, HEAD")));
    let delete = exchange(&mut client, request(&server, Method::DELETE, "/nope"), None).await;
    assert_eq!((delete.status, delete.header("allow")), (405, Some("GET, HEAD")));
    let get_echo = exchange(&mut client, request(&server, Method::GET, "/echo"), None).await;
    assert_eq!((get_echo.status, get_echo.header("allow")), (405, Some("POST")));
    let folder = exchange(&mut client, request(&server, Method::GET, "/sub"), None).await;
    assert_eq!((folder.status, folder.header("location")), (301, Some("/sub/")));
    let index = exchange(&mut client, request(&server, Method::GET, "/sub/"), None).await;
    assert_eq!((index.status, index.body), (200, fixture("sub/index.html")));
}

#[tokio::test]
async fn http2_paths_stay_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("in.txt"), "inside\n").unwrap();
    std::fs::write(dir.path().join("secret"), "outside\n").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
    std::os::unix::fs::symlink(root.join("in.txt"), root.join("inlink")).unwrap();
    let server = start(&[("root", root.to_str().unwrap())]).await;
    let mut client = connect(&server).await;
    for (path, status) in [
        ("/in.txt", 200),
        ("/inlink", 200),
        ("/link", 403),
        ("/%2e%2e/secret", 403),
        ("/a/%2E%2E/%2e%2e/secret", 403),
        ("/%00", 400),
    ] {
        let got = exchange(&mut client, request(&server, Method::GET, path), None).await;
        assert_eq!(got.status, status, "{path}");
        assert!(!got.body.starts_with(b"outside"), "{path}");
    }
}

#[tokio::test]
async fn http2_post_echo_and_its_limit() {
    let server = start(&[]).await;
    let mut client = connect(&server).await;
    let body: Bytes = (0..100_000_u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let echoed = exchange(&mut client, request(&server, Method::POST, "/echo"), Some(body.clone())).await;
    assert_eq!(echoed.status, 200);
    assert!(echoed.body == body, "the echo differs");
    assert_eq!(echoed.header("content-length"), Some("100000"));

    let mut too_big = request(&server, Method::POST, "/echo");
    too_big.headers_mut().insert("content-length", (2 << 20).into());
    let (response, _sending) = client.send_request(too_big, false).expect("send_request");
    let response = timeout(LIMIT, response).await.expect("response timed out").expect("response");
    assert_eq!(response.status(), 413, "refused from its declared length");

    // Undeclared: the server counts what arrives.
    let mut client = connect(&server).await;
    let big = Bytes::from(vec![b'x'; (1 << 20) + 1]);
    let (response, mut sending) = client
        .send_request(request(&server, Method::POST, "/echo"), false)
        .expect("send_request");
    sending.reserve_capacity(big.len());
    let _ = sending.send_data(big, true);
    let response = timeout(LIMIT, response).await.expect("response timed out").expect("response");
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn http2_http11_on_the_same_port() {
    let server = start(&[]).await;
    let response = raw(&server, b"GET /notes.txt HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    let (head, body) = split_http1(&response);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nConnection: close"), "{head}");
    assert!(head.contains("\r\nContent-Type: text/plain; charset=utf-8"), "{head}");
    assert_eq!(body, fixture("notes.txt"));

    let response = raw(&server, b"HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (head, body) = split_http1(&response);
    let length = fixture("index.html").len();
    assert!(head.contains(&format!("\r\nContent-Length: {length}")), "{head}");
    assert!(body.is_empty());

    let response = raw(&server, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(response.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
    let response = raw(&server, b"DELETE /index.html HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (head, _) = split_http1(&response);
    assert!(head.starts_with("HTTP/1.1 405 ") && head.contains("\r\nAllow: GET, HEAD"), "{head}");
    let response = raw(&server, b"GET / HTTP/1.1\r\n\r\n").await;
    assert!(response.starts_with(b"HTTP/1.1 400 "), "no Host");
    let response = raw(&server, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").await;
    let (head, body) = split_http1(&response);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, b"hello");
    let response = raw(&server, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n").await;
    assert!(response.starts_with(b"HTTP/1.1 505 "), "not the preface, not HTTP/1");
}

/// Reads one frame: (type, flags, stream, payload).
async fn read_frame(tcp: &mut TcpStream) -> (u8, u8, u32, Vec<u8>) {
    let mut head = [0u8; 9];
    timeout(LIMIT, tcp.read_exact(&mut head))
        .await
        .expect("frame in time")
        .expect("frame header");
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0; len];
    timeout(LIMIT, tcp.read_exact(&mut payload))
        .await
        .expect("payload in time")
        .expect("payload");
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    (head[3], head[4], stream, payload)
}

/// A GET on `stream` as HEADERS with END_STREAM, its fields literals without indexing.
fn get_frame(stream: u32, path: &str) -> Vec<u8> {
    let mut block = Vec::new();
    for (n, v) in [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "localhost"),
        (":path", path),
    ] {
        block.push(0);
        block.push(n.len() as u8);
        block.extend_from_slice(n.as_bytes());
        block.push(v.len() as u8);
        block.extend_from_slice(v.as_bytes());
    }
    let mut f = (block.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[1, 0x5]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(&block);
    f
}

#[tokio::test]
async fn http2_upgrade_to_h2c_answers_on_stream_1() {
    let server = start(&[]).await;
    let mut tcp = tcp(&server).await;
    // HTTP2-Settings: MAX_CONCURRENT_STREAMS 100 and ENABLE_PUSH 0.
    tcp.write_all(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAIAAAAA\r\n\r\n")
        .await
        .unwrap();
    let switching = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    let mut head = vec![0; switching.len()];
    timeout(LIMIT, tcp.read_exact(&mut head)).await.expect("101 in time").expect("101");
    assert_eq!(String::from_utf8_lossy(&head), String::from_utf8_lossy(switching));
    // RFC 7540 §3.5: the client's preface, with its SETTINGS, follows the 101.
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut decoder = fluke_hpack::Decoder::new();
    let (mut acks, mut body, mut status, mut second) = (0, Vec::new(), None, None);
    let mut asked_second = false;
    while second.is_none() {
        let (kind, flags, stream, payload) = read_frame(&mut tcp).await;
        match (kind, stream) {
            (0x4, 0) if flags & 1 == 1 => acks += 1,
            (0x4, 0) => tcp.write_all(b"\0\0\0\x04\x01\0\0\0\0").await.unwrap(),
            (0x1, 1) => {
                let fields = decoder.decode(&payload).expect("field block");
                status = fields.iter().find(|(n, _)| n == b":status").map(|(_, v)| v.clone());
            }
            (0x0, 1) => {
                body.extend_from_slice(&payload);
                if flags & 1 == 1 && !asked_second {
                    // The connection goes on: the next request is stream 3.
                    asked_second = true;
                    tcp.write_all(&get_frame(3, "/notes.txt")).await.unwrap();
                }
            }
            (0x1, 3) => {
                let fields = decoder.decode(&payload).expect("field block");
                second = fields.iter().find(|(n, _)| n == b":status").map(|(_, v)| v.clone());
            }
            _ => {}
        }
    }
    assert_eq!(status.as_deref(), Some(&b"200"[..]));
    assert_eq!(body, fixture("index.html"));
    assert_eq!(second.as_deref(), Some(&b"200"[..]));
    assert_eq!(
        acks, 1,
        "one ACK, for the client's one SETTINGS frame (the 101 acknowledges HTTP2-Settings)"
    );
}

#[tokio::test]
async fn http2_upgrade_with_a_body_is_answered_in_http11() {
    let server = start(&[]).await;
    let response = raw(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    let (head, body) = split_http1(&response);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "no 101 for a request with a body: {head}");
    assert_eq!(body, b"hello");
}

/// Requests `paths` at once on one connection and returns them in the order their responses ended.
async fn completion_order(server: &RunningServer, paths: &[&'static str]) -> Vec<&'static str> {
    let mut client = connect(server).await;
    let mut responses = JoinSet::new();
    for &path in paths {
        let (response, _) = client.send_request(request(server, Method::GET, path), true).expect("send_request");
        responses.spawn(async move {
            let response = timeout(LIMIT, response).await.expect("response timed out").expect("response");
            assert_eq!(response.status(), 200, "{path}");
            let body = read_body(response.into_body()).await;
            assert_eq!(body, fixture(path.trim_start_matches('/')), "{path}");
            path
        });
    }
    let mut order = Vec::new();
    while let Some(done) = timeout(LIMIT, responses.join_next()).await.expect("responses timed out") {
        order.push(done.expect("response task"));
    }
    order
}

const LARGE_FIRST: &[&str] = &["/image.bin", "/index.html", "/notes.txt", "/utf8.html"];

#[tokio::test]
async fn http2_small_objects_overtake_a_large_one() {
    let server = start(&[]).await;
    let order = completion_order(&server, LARGE_FIRST).await;
    eprintln!("interleaved: {order:?}");
    assert_eq!(order.last(), Some(&"/image.bin"), "the large object ends last: {order:?}");
}

#[tokio::test]
async fn http2_one_at_a_time_fault_blocks_small_objects() {
    let server = start(&[("fault", "one-at-a-time")]).await;
    let order = completion_order(&server, LARGE_FIRST).await;
    eprintln!("one at a time: {order:?}");
    assert_eq!(order, LARGE_FIRST, "served in the order requested");
}

#[tokio::test]
async fn http2_without_interleaving_a_large_object_blocks() {
    let server = start(&[("interleave", "false")]).await;
    let order = completion_order(&server, LARGE_FIRST).await;
    eprintln!("not interleaved: {order:?}");
    assert_eq!(order, LARGE_FIRST, "sent in the order requested");
}

/// A root with a page linking a stylesheet.
fn styled_site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let page = "<!DOCTYPE html>\n<html><head><link rel=\"stylesheet\" href=\"style.css\"></head>\n<body><img src=\"/missing.png\"></body></html>\n";
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/page.html"), page).unwrap();
    std::fs::write(dir.path().join("sub/style.css"), "body { color: navy }\n").unwrap();
    dir
}

/// The paths pushed with `page`, with their bodies.
async fn pushed_with(server: &RunningServer, builder: &client::Builder, page: &str) -> Vec<(String, Vec<u8>)> {
    let mut client = connect_with(server, builder).await;
    let (mut response, _) = client.send_request(request(server, Method::GET, page), true).expect("send_request");
    let mut promises = response.push_promises();
    let response = timeout(LIMIT, response).await.expect("response timed out").expect("response");
    assert_eq!(response.status(), 200);
    read_body(response.into_body()).await;
    let mut all = Vec::new();
    while let Some(promise) = timeout(LIMIT, promises.push_promise()).await.expect("push promises timed out") {
        let (request, response) = promise.expect("push promise").into_parts();
        assert_eq!(request.method(), Method::GET);
        assert_eq!(
            request.uri().authority().map(|a| a.as_str()),
            Some(server.local_addr().to_string().as_str())
        );
        let response = timeout(LIMIT, response).await.expect("pushed response timed out").expect("pushed");
        assert_eq!(response.status(), 200);
        all.push((request.uri().path().to_owned(), read_body(response.into_body()).await));
    }
    all
}

async fn pushed(server: &RunningServer, builder: &client::Builder) -> Vec<(String, Vec<u8>)> {
    pushed_with(server, builder, "/sub/page.html").await
}

#[tokio::test]
async fn http2_pushes_the_first_linked_asset_when_enabled() {
    let fixtures = start(&[("push", "true")]).await;
    let styled = pushed_with(&fixtures, &client::Builder::new(), "/styled.html").await;
    assert_eq!(styled, [("/style.css".to_owned(), fixture("style.css"))]);
    let plain = pushed_with(&fixtures, &client::Builder::new(), "/index.html").await;
    assert_eq!(plain, [], "a page that links no asset pushes nothing");

    let site = styled_site();
    let root = site.path().to_str().unwrap();
    let server = start(&[("root", root), ("push", "true")]).await;
    let css = b"body { color: navy }\n".to_vec();
    assert_eq!(pushed(&server, &client::Builder::new()).await, [("/sub/style.css".to_owned(), css)]);
    let mut no_push = client::Builder::new();
    no_push.enable_push(false);
    assert_eq!(pushed(&server, &no_push).await, [], "the client's SETTINGS_ENABLE_PUSH=0 is kept");

    let off = start(&[("root", root)]).await;
    assert_eq!(pushed(&off, &client::Builder::new()).await, [], "off by default");
    let faulty = start(&[("root", root), ("push", "true"), ("fault", "no-push")]).await;
    assert_eq!(pushed(&faulty, &client::Builder::new()).await, []);
}

#[tokio::test]
async fn http2_garbage_does_not_crash_it() {
    let server = start(&[]).await;
    let mut noise = Vec::new();
    let mut x: u32 = 0x2545_F491;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push((x >> 24) as u8);
    }
    let mut after_preface = PREFACE.to_vec();
    after_preface.extend_from_slice(&noise);
    // A SETTINGS frame claiming 16 MiB of payload, beyond the maximum frame size.
    let mut oversized = PREFACE.to_vec();
    oversized.extend_from_slice(&[0xff, 0xff, 0xff, 0x04, 0, 0, 0, 0, 0]);
    // HEADERS on stream 1 whose HPACK block is nonsense.
    let mut bad_hpack = PREFACE.to_vec();
    bad_hpack.extend_from_slice(&[0, 0, 0, 0x04, 0, 0, 0, 0, 0]);
    bad_hpack.extend_from_slice(&[0, 0, 4, 0x01, 0x05, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
    for garbage in [&noise, &after_preface, &oversized, &bad_hpack, &PREFACE[..10].to_vec()] {
        let answer = raw(&server, garbage).await;
        assert!(answer.len() < 1 << 16, "a bounded answer");
    }
    let got = get(&server, "/index.html").await;
    assert_eq!((got.status, got.body), (200, fixture("index.html")), "still serving");
}

#[tokio::test]
async fn http2_rapidly_reset_streams_do_not_stop_it() {
    let server = start(&[]).await;
    let mut client = connect(&server).await;
    for _ in 0..500 {
        let Ok(ready) = timeout(LIMIT, client.clone().ready()).await.expect("ready timed out") else {
            break; // told to calm down (GOAWAY): what the limit is for
        };
        client = ready;
        let Ok((response, _)) = client.send_request(request(&server, Method::GET, "/image.bin"), true) else {
            break;
        };
        // Dropping the response future resets the stream (RST_STREAM CANCEL).
        drop(response);
    }
    let got = get(&server, "/notes.txt").await;
    assert_eq!((got.status, got.body), (200, fixture("notes.txt")));
}

#[tokio::test]
async fn http2_an_idle_connection_is_sent_goaway() {
    let server = start(&[("idle", "300ms")]).await;
    let io = tcp(&server).await;
    let (send, connection) = timeout(LIMIT, client::handshake(io))
        .await
        .expect("handshake timed out")
        .expect("handshake");
    let connection = tokio::spawn(connection);
    let mut send: SendRequest<Bytes> = send;
    let got = exchange(&mut send, request(&server, Method::GET, "/notes.txt"), None).await;
    assert_eq!(got.status, 200);
    let ended = timeout(LIMIT, connection)
        .await
        .expect("the server did not end an idle connection")
        .expect("connection task");
    assert!(ended.is_ok(), "a graceful GOAWAY, not an error: {ended:?}");
}

#[tokio::test]
async fn http2_options_are_checked() {
    let unknown = try_start(&[("fault", "one-at-a-time,slow")]).await.unwrap_err().to_string();
    assert!(
        unknown.contains("\"slow\"") && unknown.contains("one-at-a-time, no-push"),
        "{unknown}"
    );
    assert!(try_start(&[("interleave", "maybe")]).await.is_err());
    assert!(try_start(&[("push", "1")]).await.is_err());
    assert!(try_start(&[("root", "/nonexistent/folder")]).await.is_err());
    assert!(try_start(&[("colour", "blue")]).await.is_err());
}
