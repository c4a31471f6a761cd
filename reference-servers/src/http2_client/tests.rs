//! The client against the reference HTTP/2 server, and against a scripted server on a loopback
//! socket for what no well-behaved server does: each check of the server's frames and each fault.

use std::collections::BTreeMap;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::frame::*;
use super::*;

/// How long a scripted server waits for the client's next frame.
const WAIT: Duration = Duration::from_secs(5);

/// Runs the client with `fault` and `args`, in `dir`'s files; returns its exit code and lines.
async fn client(server: SocketAddr, fault: &str, args: &[&str]) -> (i32, Vec<String>) {
    let mut opts = Options::new();
    opts.insert("timeout".into(), "3s".into());
    if !fault.is_empty() {
        opts.insert("fault".into(), fault.into());
    }
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let code = run(server, &opts, &args, tx).await.unwrap();
    let mut lines = Vec::new();
    while let Ok(line) = rx.try_recv() {
        lines.push(line);
    }
    (code, lines)
}

fn path(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).display().to_string()
}

fn www(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/www").join(name)).unwrap()
}

#[tokio::test]
async fn against_the_reference_server() {
    let server = crate::start_server("http2", "127.0.0.1:0".parse().unwrap(), &Options::new())
        .await
        .unwrap();
    let addr = server.local_addr();
    let dir = tempfile::tempdir().unwrap();
    let (img, idx) = (path(&dir, "image.bin"), path(&dir, "index.html"));
    let (code, lines) = client(addr, "", &["get", "/image.bin", &img, "/index.html", &idx]).await;
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(std::fs::read(&img).unwrap(), www("image.bin"));
    assert_eq!(std::fs::read(&idx).unwrap(), www("index.html"));

    let (code, lines) = client(addr, "", &["get", "/nosuch", &path(&dir, "404")]).await;
    assert_eq!(code, 1, "{lines:?}");
    let (code, lines) = client(addr, "ignores-status", &["get", "/nosuch", &path(&dir, "404")]).await;
    assert_eq!(code, 0, "{lines:?}");

    // An upload larger than the first windows: it waits for WINDOW_UPDATE, and comes back whole.
    let upload = path(&dir, "up.bin");
    std::fs::write(&upload, (0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>()).unwrap();
    let echoed = path(&dir, "echoed.bin");
    let (code, lines) = client(addr, "", &["post", "/echo", &upload, &echoed]).await;
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(std::fs::read(&echoed).unwrap(), std::fs::read(&upload).unwrap());

    // The faults that this server catches with a connection error. (It takes a PING before the
    // client's SETTINGS, so settings-not-first is left to the scripted server below.)
    for fault in ["no-preface", "even-stream-ids", "big-frames", "ignore-flow-control"] {
        let args = ["post", "/echo", &upload, &echoed];
        let (code, lines) = client(addr, fault, &args).await;
        assert_eq!(code, 1, "{fault}: {lines:?}");
    }
    let (code, lines) = client(
        addr,
        "one-connection-per-request",
        &["get", "/image.bin", &img, "/index.html", &idx],
    )
    .await;
    assert_eq!(code, 0, "{lines:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_options_and_arguments() {
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = Options::from([("fault".to_owned(), "nosuch".to_owned())]);
    let err = run(addr, &opts, &["get".into(), "/".into(), "x".into()], tx.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("the faults are no-preface, "), "{err}");
    for args in [
        &["get"][..],
        &["get", "/a"],
        &["get", "a", "b"],
        &["post", "/a", "b"],
        &["put", "/a", "b"],
    ] {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        assert!(run(addr, &Options::new(), &args, tx.clone()).await.is_err(), "{args:?}");
    }
    let args: Vec<String> = ["post", "/echo", "/nonexistent/file", "out"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(run(addr, &Options::new(), &args, tx).await.unwrap(), 1);
}

/// A scripted HTTP/2 server: one connection, frames read and written by hand.
struct Peer {
    tcp: tokio::net::TcpStream,
    frames: Frames,
    decoder: fluke_hpack::Decoder<'static>,
    /// Every frame the client sent, in order.
    seen: Vec<Frame>,
}

impl Peer {
    /// Accepts the client's connection and reads its preface (which must be there).
    async fn accept(listener: &TcpListener) -> Peer {
        let (tcp, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
        let mut peer = Peer {
            tcp,
            frames: Frames::default(),
            decoder: fluke_hpack::Decoder::new(),
            seen: Vec::new(),
        };
        let mut preface = [0; 24];
        timeout(WAIT, peer.tcp.read_exact(&mut preface)).await.unwrap().unwrap();
        assert_eq!(&preface[..], PREFACE);
        peer
    }

    /// The client's next frame; None when it closed (or after `WAIT`).
    async fn next(&mut self) -> Option<Frame> {
        let mut buf = [0; 16 << 10];
        loop {
            if let Next::Frame(f) = self.frames.next(1 << 24) {
                self.seen.push(f.clone());
                return Some(f);
            }
            match timeout(WAIT, self.tcp.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => self.frames.push(&buf[..n]),
                _ => return None,
            }
        }
    }

    /// The client's next frame of `kind`, the others before it skipped.
    async fn next_of(&mut self, kind: u8) -> Option<Frame> {
        while let Some(f) = self.next().await {
            if f.kind == kind {
                return Some(f);
            }
        }
        None
    }

    async fn send(&mut self, frames: &[Frame]) {
        let bytes: Vec<u8> = frames.iter().flat_map(Frame::bytes).collect();
        self.send_bytes(&bytes).await;
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.tcp.write_all(bytes).await;
    }

    /// SETTINGS with `settings`, the client's SETTINGS acknowledged, until its ACK of ours.
    async fn handshake(&mut self, settings: &[(u16, u32)]) {
        self.send(&[Frame::new(SETTINGS, 0, 0, settings_payload(settings))]).await;
        loop {
            let f = self.next_of(SETTINGS).await.expect("the client's SETTINGS and ACK");
            if f.has(ACK) {
                return;
            }
            self.send(&[Frame::new(SETTINGS, ACK, 0, Vec::new())]).await;
        }
    }

    /// The next request: its stream and fields.
    async fn request(&mut self) -> (u32, BTreeMap<String, String>) {
        let f = self.next_of(HEADERS).await.expect("a request");
        assert!(f.has(END_HEADERS), "the client's field blocks fit one frame");
        let fields = self.decoder.decode(&f.payload).unwrap();
        let fields = fields
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()));
        (f.stream, fields.collect())
    }

    /// The names of a HEADERS frame's fields, in order (it was decoded once already: literals only).
    fn decoder_fields(&mut self, f: &Frame) -> Vec<String> {
        let fields = fluke_hpack::Decoder::new().decode(&f.payload).unwrap();
        fields.into_iter().map(|(n, _)| String::from_utf8(n).unwrap()).collect()
    }

    /// Reads until the client's GOAWAY (or its close), then closes, as a server does.
    async fn finish(mut self) {
        while self.next().await.is_some_and(|f| f.kind != GOAWAY) {}
        let _ = self.tcp.shutdown().await;
    }

    /// The client's next GOAWAY's error code, or None when it closed without one.
    async fn goaway(&mut self) -> Option<u32> {
        self.next_of(GOAWAY).await.and_then(|f| f.word(4))
    }
}

/// What a scripted server sends, given the stream of the request.
type Answer = Box<dyn Fn(u32) -> Vec<u8> + Send + Sync>;

/// A response head as a HEADERS frame.
fn head(stream: u32, fields: &[(&str, &str)], end_stream: bool) -> Vec<u8> {
    let fields: Vec<Field> = fields.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect();
    header_frames(stream, &literal_block(&fields), end_stream, DEFAULT_MAX_FRAME)
}

/// A whole response: 200, content-length, the body in one DATA frame.
fn response(stream: u32, body: &[u8]) -> Vec<u8> {
    let len = body.len().to_string();
    let mut out = head(stream, &[(":status", "200"), ("content-length", &len)], false);
    out.extend_from_slice(&Frame::new(DATA, END_STREAM, stream, body.to_vec()).bytes());
    out
}

/// Starts the client (`fault`, `args`) against a scripted server; returns the listener's end
/// and the client's task.
async fn scripted(fault: &str, args: &[&str]) -> (TcpListener, tokio::task::JoinHandle<(i32, Vec<String>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (fault, args) = (fault.to_owned(), args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    let task = tokio::spawn(async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        client(addr, &fault, &args).await
    });
    (listener, task)
}

/// One GET of `/` answered by `answer` (given the stream), then the client's GOAWAY code (or
/// None) and its exit code and lines.
async fn one_get(fault: &str, answer: impl FnOnce(u32) -> Vec<u8>) -> (Option<u32>, i32, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let out = path(&dir, "out");
    let (listener, task) = scripted(fault, &["get", "/", &out]).await;
    let mut peer = Peer::accept(&listener).await;
    peer.handshake(&[]).await;
    let (stream, _) = peer.request().await;
    peer.send_bytes(&answer(stream)).await;
    let goaway = peer.goaway().await;
    // Closed, as a server does after GOAWAY: the client need not wait for it.
    drop(peer);
    let (code, lines) = task.await.unwrap();
    (goaway, code, lines)
}

#[tokio::test]
async fn a_request_looks_like_this() {
    let dir = tempfile::tempdir().unwrap();
    let out = path(&dir, "out");
    let (listener, task) = scripted("", &["get", "/a?b=c", &out]).await;
    let mut peer = Peer::accept(&listener).await;
    let client_settings = peer.next().await.unwrap();
    assert_eq!(client_settings.kind, SETTINGS, "SETTINGS first");
    assert!(settings(&client_settings.payload).contains(&(SETTINGS_ENABLE_PUSH, 0)));
    peer.handshake(&[]).await;
    let (stream, fields) = peer.request().await;
    assert_eq!(stream, 1);
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(names, [":authority", ":method", ":path", ":scheme", "accept", "user-agent"]);
    assert_eq!(
        (fields[":method"].as_str(), fields[":path"].as_str(), fields[":scheme"].as_str()),
        ("GET", "/a?b=c", "http")
    );
    assert!(peer.seen.last().unwrap().has(END_STREAM), "a GET ends its stream with its HEADERS");
    // A PING is answered, with its payload.
    peer.send(&[Frame::new(PING, 0, 0, b"pingpong".to_vec())]).await;
    let ack = peer.next_of(PING).await.unwrap();
    assert!(ack.has(ACK) && ack.payload == b"pingpong");
    peer.send_bytes(&response(stream, b"hello")).await;
    assert_eq!(peer.goaway().await, Some(NO_ERROR), "the client says goodbye");
    drop(peer);
    let (code, lines) = task.await.unwrap();
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(std::fs::read(&out).unwrap(), b"hello");
}

#[tokio::test]
async fn connection_errors_get_the_code_rfc_9113_names() {
    let data = |s: u32, n: usize| Frame::new(DATA, 0, s, vec![0; n]).bytes();
    let cases: Vec<(&str, u32, Answer)> = vec![
        (
            "PING of 7",
            FRAME_SIZE_ERROR,
            Box::new(|_| Frame::new(PING, 0, 0, vec![0; 7]).bytes()),
        ),
        (
            "PING on a stream",
            PROTOCOL_ERROR,
            Box::new(|s| Frame::new(PING, 0, s, vec![0; 8]).bytes()),
        ),
        (
            "SETTINGS of 5",
            FRAME_SIZE_ERROR,
            Box::new(|_| Frame::new(SETTINGS, 0, 0, vec![0; 5]).bytes()),
        ),
        (
            "ENABLE_PUSH 1",
            PROTOCOL_ERROR,
            Box::new(|_| Frame::new(SETTINGS, 0, 0, settings_payload(&[(2, 1)])).bytes()),
        ),
        (
            "window size",
            FLOW_CONTROL_ERROR,
            Box::new(|_| Frame::new(SETTINGS, 0, 0, settings_payload(&[(4, 1 << 31)])).bytes()),
        ),
        (
            "frame size",
            PROTOCOL_ERROR,
            Box::new(|_| Frame::new(SETTINGS, 0, 0, settings_payload(&[(5, 100)])).bytes()),
        ),
        ("oversized", FRAME_SIZE_ERROR, Box::new(move |s| data(s, 20_000))),
        ("DATA on 0", PROTOCOL_ERROR, Box::new(move |_| data(0, 1))),
        ("DATA on idle", PROTOCOL_ERROR, Box::new(move |_| data(5, 1))),
        ("HEADERS on 0", PROTOCOL_ERROR, Box::new(|_| head(0, &[(":status", "200")], true))),
        (
            "bad HPACK",
            COMPRESSION_ERROR,
            Box::new(|s| Frame::new(HEADERS, END_HEADERS, s, vec![0xbe]).bytes()),
        ),
        (
            "after END_STREAM",
            STREAM_CLOSED,
            Box::new(move |s| [response(s, b"x"), data(s, 1)].concat()),
        ),
        ("WINDOW_UPDATE 0", PROTOCOL_ERROR, Box::new(|_| window_update(0, 0).bytes())),
        (
            "window overflow",
            FLOW_CONTROL_ERROR,
            Box::new(|_| window_update(0, 0x7fff_ffff).bytes()),
        ),
        (
            "RST of 3",
            FRAME_SIZE_ERROR,
            Box::new(|s| Frame::new(RST_STREAM, 0, s, vec![0; 3]).bytes()),
        ),
        (
            "PRIORITY of 4",
            FRAME_SIZE_ERROR,
            Box::new(|s| Frame::new(PRIORITY, 0, s, vec![0; 4]).bytes()),
        ),
        (
            "lone CONTINUATION",
            PROTOCOL_ERROR,
            Box::new(|s| Frame::new(CONTINUATION, END_HEADERS, s, vec![]).bytes()),
        ),
        (
            "PING inside a block",
            PROTOCOL_ERROR,
            Box::new(|s| {
                [
                    Frame::new(HEADERS, 0, s, vec![]).bytes(),
                    Frame::new(PING, 0, 0, vec![0; 8]).bytes(),
                ]
                .concat()
            }),
        ),
        (
            "padding",
            PROTOCOL_ERROR,
            Box::new(|s| Frame::new(DATA, PADDED, s, vec![9, 0, 0]).bytes()),
        ),
        (
            "PUSH_PROMISE",
            PROTOCOL_ERROR,
            Box::new(|s| Frame::new(PUSH_PROMISE, END_HEADERS, s, vec![0, 0, 0, 2]).bytes()),
        ),
    ];
    for (what, code, answer) in cases {
        let (goaway, exit, lines) = one_get("", answer).await;
        assert_eq!((goaway, exit), (Some(code), 1), "{what}: {lines:?}");
    }
}

#[tokio::test]
async fn data_beyond_the_window_is_a_flow_control_error() {
    // With WINDOW_UPDATE held back (the fault) the window is 65,535 for certain, however fast
    // h2 reads: the fifth frame of 16,000 goes past it.
    let (goaway, exit, lines) = one_get("no-window-update", |s| {
        let mut out = head(s, &[(":status", "200")], false);
        for _ in 0..5 {
            out.extend_from_slice(&Frame::new(DATA, 0, s, vec![0; 16_000]).bytes());
        }
        out
    })
    .await;
    assert_eq!((goaway, exit), (Some(FLOW_CONTROL_ERROR), 1), "{lines:?}");
}

#[tokio::test]
async fn wrong_error_code_and_lenient() {
    let bad_ping = |s: u32| [Frame::new(PING, 0, 0, vec![0; 7]).bytes(), response(s, b"hi")].concat();
    let (goaway, exit, lines) = one_get("wrong-error-code", bad_ping).await;
    assert_eq!((goaway, exit), (Some(FLOW_CONTROL_ERROR), 1), "{lines:?}");
    // lenient: the bad frame is dropped, the response taken, the goodbye a normal one.
    let (goaway, exit, lines) = one_get("lenient", bad_ping).await;
    assert_eq!((goaway, exit), (Some(NO_ERROR), 0), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("ignored (lenient)")), "{lines:?}");
}

/// One GET answered by `answer`; then what the client did: the RST_STREAM code it sent on the
/// stream (if any), its exit code and lines.
async fn judged(fault: &str, answer: impl FnOnce(u32) -> Vec<u8>) -> (Option<u32>, i32, Vec<String>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let out = path(&dir, "out");
    let (listener, task) = scripted(fault, &["get", "/", &out]).await;
    let mut peer = Peer::accept(&listener).await;
    peer.handshake(&[]).await;
    let (stream, _) = peer.request().await;
    peer.send_bytes(&answer(stream)).await;
    // Until the client's GOAWAY, then closed, as a server does.
    while peer.next().await.is_some_and(|f| f.kind != GOAWAY) {}
    let _ = peer.tcp.shutdown().await;
    let (code, lines) = task.await.unwrap();
    let reset = peer
        .seen
        .iter()
        .find(|f| f.kind == RST_STREAM && f.stream == stream)
        .and_then(|f| f.word(0));
    (reset, code, lines, std::fs::read(&out).unwrap_or_default())
}

#[tokio::test]
async fn malformed_responses_are_stream_errors() {
    let data = |s: u32, body: &[u8]| Frame::new(DATA, END_STREAM, s, body.to_vec()).bytes();
    let cases: Vec<(&str, Answer)> = vec![
        (
            "uppercase",
            Box::new(move |s| {
                [
                    head(s, &[(":status", "200"), ("Content-Type", "text/plain")], false),
                    data(s, b"ok"),
                ]
                .concat()
            }),
        ),
        (
            "connection",
            Box::new(move |s| [head(s, &[(":status", "200"), ("connection", "close")], false), data(s, b"ok")].concat()),
        ),
        (
            "no status",
            Box::new(move |s| [head(s, &[("date", "x")], false), data(s, b"ok")].concat()),
        ),
        (
            "two statuses",
            Box::new(move |s| [head(s, &[(":status", "200"), (":status", "200")], false), data(s, b"ok")].concat()),
        ),
        (
            "request pseudo",
            Box::new(move |s| [head(s, &[(":status", "200"), (":path", "/")], false), data(s, b"ok")].concat()),
        ),
        (
            "pseudo last",
            Box::new(move |s| [head(s, &[("date", "x"), (":status", "200")], false), data(s, b"ok")].concat()),
        ),
        (
            "length",
            Box::new(move |s| [head(s, &[(":status", "200"), ("content-length", "5")], false), data(s, b"ok")].concat()),
        ),
        ("DATA first", Box::new(move |s| data(s, b"ok"))),
        (
            "trailers go on",
            Box::new(move |s| {
                let t = head(s, &[("x-t", "1")], false);
                let body = Frame::new(DATA, 0, s, b"o".to_vec()).bytes();
                [head(s, &[(":status", "200")], false), body, t, data(s, b"k")].concat()
            }),
        ),
    ];
    for (what, answer) in &cases {
        let (reset, code, lines, _) = judged("", answer).await;
        assert_eq!((reset, code), (Some(PROTOCOL_ERROR), 1), "{what}: {lines:?}");
        assert!(lines.iter().any(|l| l.contains("malformed response")), "{what}: {lines:?}");
        let (reset, code, lines, body) = judged("accepts-malformed", answer).await;
        assert_eq!(reset, None, "{what} (accepts-malformed): {lines:?}");
        if *what != "DATA first" {
            assert_eq!((code, body.as_slice()), (0, &b"ok"[..]), "{what} (accepts-malformed): {lines:?}");
        }
    }
}

#[tokio::test]
async fn legal_variations_are_taken() {
    let cases: Vec<(&str, Answer)> = vec![
        (
            "informational first",
            Box::new(|s| [head(s, &[(":status", "103"), ("link", "</a>")], false), response(s, b"ok")].concat()),
        ),
        (
            "trailers",
            Box::new(|s| {
                let start = head(s, &[(":status", "200"), ("content-length", "2")], false);
                [
                    start,
                    Frame::new(DATA, 0, s, b"ok".to_vec()).bytes(),
                    head(s, &[("x-sum", "1")], true),
                ]
                .concat()
            }),
        ),
        (
            "padding and an unknown frame",
            Box::new(|s| {
                let padded = Frame::new(DATA, END_STREAM | PADDED, s, [&[3][..], b"ok", &[0, 0, 0]].concat()).bytes();
                let unknown = Frame::new(0xfa, 0xff, s, vec![1, 2, 3]).bytes();
                [head(s, &[(":status", "200")], false), unknown, padded].concat()
            }),
        ),
        (
            "continuation",
            Box::new(|s| {
                let block = literal_block(&[(b":status".to_vec(), b"200".to_vec()), (b"x-long".to_vec(), vec![b'a'; 100])]);
                let (a, b) = block.split_at(10);
                let frames = [
                    Frame::new(HEADERS, 0, s, a.to_vec()).bytes(),
                    Frame::new(CONTINUATION, END_HEADERS, s, b.to_vec()).bytes(),
                ];
                [frames.concat(), Frame::new(DATA, END_STREAM, s, b"ok".to_vec()).bytes()].concat()
            }),
        ),
        (
            "reset after the end",
            Box::new(|s| [response(s, b"ok"), rst_stream(s, NO_ERROR).bytes()].concat()),
        ),
    ];
    for (what, answer) in &cases {
        let (reset, code, lines, body) = judged("", answer).await;
        assert_eq!((reset, code, body.as_slice()), (None, 0, &b"ok"[..]), "{what}: {lines:?}");
    }
}

#[tokio::test]
async fn pushes_are_refused_unless_accepted() {
    let push = |s: u32| {
        let promise = [&[0, 0, 0, 2][..], &literal_block(&[(b":method".to_vec(), b"GET".to_vec())])].concat();
        let mut out = Frame::new(PUSH_PROMISE, END_HEADERS, s, promise).bytes();
        out.extend_from_slice(&response(s, b"ok"));
        out.extend_from_slice(&response(2, b"pushed"));
        out
    };
    let (goaway, code, lines) = one_get("", push).await;
    assert_eq!((goaway, code), (Some(PROTOCOL_ERROR), 1), "{lines:?}");
    let (goaway, code, lines) = one_get("accepts-push", push).await;
    assert_eq!((goaway, code), (Some(NO_ERROR), 0), "{lines:?}");
}

#[tokio::test]
async fn a_reset_after_a_complete_response_keeps_it_unless_discards_on_reset() {
    for (fault, want) in [("", 0), ("discards-on-reset", 1)] {
        let dir = tempfile::tempdir().unwrap();
        let (upload, out) = (path(&dir, "up"), path(&dir, "out"));
        std::fs::write(&upload, vec![1; 100_000]).unwrap();
        let (listener, task) = scripted(fault, &["post", "/echo", &upload, &out]).await;
        let mut peer = Peer::accept(&listener).await;
        peer.handshake(&[]).await;
        let (stream, fields) = peer.request().await;
        assert_eq!((fields[":method"].as_str(), fields["content-length"].as_str()), ("POST", "100000"));
        // The first window's worth arrives; the server answers early and stops the upload.
        let mut got = 0;
        while got < 65_535 {
            got += peer.next_of(DATA).await.unwrap().payload.len();
        }
        peer.send_bytes(&[response(stream, b"early"), rst_stream(stream, NO_ERROR).bytes()].concat())
            .await;
        peer.finish().await;
        let (code, lines) = task.await.unwrap();
        assert_eq!(code, want, "{fault}: {lines:?}");
        assert_eq!(got, 65_535, "the upload kept to the window");
        if want == 0 {
            assert_eq!(std::fs::read(&out).unwrap(), b"early");
        }
    }
}

#[tokio::test]
async fn uploads_keep_to_the_windows_and_frame_size_unless_told_not_to() {
    for fault in ["", "ignore-flow-control", "big-frames"] {
        let dir = tempfile::tempdir().unwrap();
        let (upload, out) = (path(&dir, "up"), path(&dir, "out"));
        std::fs::write(&upload, vec![1; 50_000]).unwrap();
        let (listener, task) = scripted(fault, &["post", "/echo", &upload, &out]).await;
        let mut peer = Peer::accept(&listener).await;
        // A window of 20,000 for each stream; the connection's stays 65,535.
        peer.handshake(&[(SETTINGS_INITIAL_WINDOW_SIZE, 20_000)]).await;
        let (stream, _) = peer.request().await;
        let mut sizes = Vec::new();
        let mut got = 0;
        let limit = if fault == "ignore-flow-control" { 50_000 } else { 20_000 };
        while got < limit {
            let f = peer.next_of(DATA).await.unwrap();
            got += f.payload.len();
            sizes.push(f.payload.len());
        }
        match fault {
            "" => assert!(got == 20_000 && sizes.iter().all(|n| *n <= 16_384), "{sizes:?}"),
            "big-frames" => assert_eq!(sizes, [20_000]),
            _ => assert_eq!(got, 50_000, "{sizes:?}"),
        }
        if fault != "ignore-flow-control" {
            peer.send(&[window_update(stream, 30_000)]).await;
            while got < 50_000 {
                got += peer.next_of(DATA).await.unwrap().payload.len();
            }
        }
        assert!(peer.seen.last().unwrap().has(END_STREAM));
        peer.send_bytes(&response(stream, b"done")).await;
        peer.finish().await;
        let (code, lines) = task.await.unwrap();
        assert_eq!(code, 0, "{fault}: {lines:?}");
    }
}

#[tokio::test]
async fn concurrent_streams_keep_to_the_server_limit_unless_told_not_to() {
    for (fault, want) in [("", 1), ("ignores-max-streams", 3)] {
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<String> = (0..3).flat_map(|i| [format!("/{i}"), path(&dir, &i.to_string())]).collect();
        let mut all = vec!["get"];
        all.extend(args.iter().map(String::as_str));
        let (listener, task) = scripted(fault, &all).await;
        let mut peer = Peer::accept(&listener).await;
        peer.handshake(&[(SETTINGS_MAX_CONCURRENT_STREAMS, 1)]).await;
        let mut most = 0;
        if want == 3 {
            // All three come without any answer.
            let mut open = Vec::new();
            for _ in 0..3 {
                open.push(peer.request().await.0);
            }
            most = open.len();
            for s in open {
                peer.send_bytes(&response(s, b"x")).await;
            }
        } else {
            for answered in 0..3 {
                let (s, _) = peer.request().await;
                // A PING round trip: whatever the client had sent before its ACK is here now.
                peer.send(&[Frame::new(PING, 0, 0, b"barrier!".to_vec())]).await;
                while !peer.next_of(PING).await.expect("the PING's ACK").has(ACK) {}
                let requests = peer.seen.iter().filter(|f| f.kind == HEADERS).count();
                most = most.max(requests - answered);
                peer.send_bytes(&response(s, b"x")).await;
            }
        }
        peer.finish().await;
        let (code, lines) = task.await.unwrap();
        assert_eq!((code, most), (0, want), "{fault}: {lines:?}");
    }
}

#[tokio::test]
async fn the_frame_faults_show_on_the_wire() {
    // (fault, what the server sees)
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (path(&dir, "a"), path(&dir, "b"));
    for fault in [
        "",
        "no-settings-ack",
        "no-ping-ack",
        "even-stream-ids",
        "reused-stream-id",
        "no-end-stream",
        "uppercase-names",
        "connection-header",
        "no-scheme",
        "pseudo-after-regular",
    ] {
        let (listener, task) = scripted(fault, &["get", "/a", &a, "/b", &b]).await;
        let mut peer = Peer::accept(&listener).await;
        peer.send(&[Frame::new(SETTINGS, 0, 0, Vec::new()), Frame::new(PING, 0, 0, b"12345678".to_vec())])
            .await;
        let (s1, f1) = peer.request().await;
        let (s2, _) = peer.request().await;
        let first = peer.seen.iter().find(|f| f.kind == HEADERS).unwrap().clone();
        let acked = peer.seen.iter().any(|f| f.kind == SETTINGS && f.has(ACK));
        let pinged = peer.seen.iter().any(|f| f.kind == PING && f.has(ACK));
        peer.send_bytes(&[response(s1, b"1"), response(s2, b"2")].concat()).await;
        let first_fields = peer.decoder_fields(&first);
        peer.finish().await;
        let _ = task.await.unwrap();
        let names: Vec<&str> = f1.keys().map(String::as_str).collect();
        match fault {
            "" => {
                assert!(acked && pinged && (s1, s2) == (1, 3) && first.has(END_STREAM));
                assert_eq!(names, [":authority", ":method", ":path", ":scheme", "accept", "user-agent"]);
            }
            "no-settings-ack" => assert!(!acked && pinged),
            "no-ping-ack" => assert!(acked && !pinged),
            "even-stream-ids" => assert_eq!((s1, s2), (2, 4)),
            "reused-stream-id" => assert_eq!((s1, s2), (1, 1)),
            "no-end-stream" => assert!(!first.has(END_STREAM)),
            "uppercase-names" => assert!(names.contains(&"User-Agent"), "{names:?}"),
            "connection-header" => assert_eq!(f1.get("connection").map(String::as_str), Some("keep-alive")),
            "no-scheme" => assert!(!names.contains(&":scheme")),
            _ => {
                assert_eq!(first_fields.last().map(String::as_str), Some(":path"), "{first_fields:?}");
            }
        }
    }
}

#[tokio::test]
async fn settings_not_first_and_no_preface() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { client(addr, "settings-not-first", &["get", "/", "unused"]).await });
    let mut peer = Peer::accept(&listener).await;
    let first = peer.next().await.unwrap();
    assert_eq!((first.kind, first.payload.as_slice()), (PING, &b"wirechk!"[..]));
    drop(peer);
    assert_eq!(task.await.unwrap().0, 1);

    let task = tokio::spawn(async move { client(addr, "no-preface", &["get", "/", "unused"]).await });
    let (mut tcp, _) = listener.accept().await.unwrap();
    let mut first = [0; 9];
    tcp.read_exact(&mut first).await.unwrap();
    assert_eq!(first[3], SETTINGS, "SETTINGS with no preface before it");
    drop(tcp);
    assert_eq!(task.await.unwrap().0, 1);
}

#[tokio::test]
async fn one_connection_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (path(&dir, "a"), path(&dir, "b"));
    let (listener, task) = scripted("one-connection-per-request", &["get", "/a", &a, "/b", &b]).await;
    let mut peers = Vec::new();
    for _ in 0..2 {
        let mut peer = Peer::accept(&listener).await;
        peer.handshake(&[]).await;
        let (s, _) = peer.request().await;
        peer.send_bytes(&response(s, b"x")).await;
        peers.push(peer.finish());
    }
    for peer in peers {
        peer.await;
    }
    assert_eq!(task.await.unwrap().0, 0);
}

/// Threads of their own, as the harness runs it: the server's frame may be judged before h2's
/// first bytes have reached the relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_first_frame_is_answered_after_the_preface_and_settings() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { client(addr, "", &["get", "/", "unused"]).await });
    let (mut tcp, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    // At once, before the client's first bytes can have been read: a PING, not SETTINGS.
    tcp.write_all(&Frame::new(PING, 0, 0, vec![0; 8]).bytes()).await.unwrap();
    let mut peer = Peer {
        tcp,
        frames: Frames::default(),
        decoder: fluke_hpack::Decoder::new(),
        seen: Vec::new(),
    };
    let mut preface = [0; 24];
    timeout(WAIT, peer.tcp.read_exact(&mut preface)).await.unwrap().unwrap();
    assert_eq!(&preface[..], PREFACE);
    assert_eq!(peer.next().await.map(|f| f.kind), Some(SETTINGS));
    assert_eq!(peer.goaway().await, Some(PROTOCOL_ERROR));
    drop(peer);
    assert_eq!(task.await.unwrap().0, 1);
}

#[tokio::test]
async fn the_parser_faults_refuse_what_is_legal() {
    let ok_head = |s: u32| head(s, &[(":status", "200")], false);
    let data = |s: u32, flags: u8, body: &[u8]| Frame::new(DATA, flags, s, body.to_vec()).bytes();
    let with_block = |block: &'static [u8]| -> Answer {
        Box::new(move |s| {
            [
                Frame::new(HEADERS, END_HEADERS, s, block.to_vec()).bytes(),
                data(s, END_STREAM, b"ok"),
            ]
            .concat()
        })
    };
    // (fault, a legal answer that a client with the fault gets wrong)
    let cases: Vec<(&str, Answer)> = vec![
        (
            "no-padding",
            Box::new(move |s| {
                let h = head(s, &[(":status", "200"), ("content-length", "2")], false);
                [h, data(s, END_STREAM | PADDED, &[1, b'o', b'k', 0])].concat()
            }),
        ),
        (
            "no-continuation",
            Box::new(move |s| {
                let block = literal_block(&[(b":status".to_vec(), b"200".to_vec())]);
                let (a, b) = block.split_at(3);
                let frames = [
                    Frame::new(HEADERS, 0, s, a.to_vec()).bytes(),
                    Frame::new(CONTINUATION, END_HEADERS, s, b.to_vec()).bytes(),
                ];
                [frames.concat(), data(s, END_STREAM, b"ok")].concat()
            }),
        ),
        // :status 200 as a literal without indexing, the value Huffman-coded (RFC 7541 §5.2).
        ("no-huffman", with_block(&[0x08, 0x82, 0x10, 0x01])),
        // ... as a literal with incremental indexing (§6.2.1).
        ("no-dynamic-table", with_block(&[0x48, 0x03, b'2', b'0', b'0'])),
        // ... after a dynamic table size update to 0 (§6.3).
        ("no-size-update", with_block(&[0x20, 0x08, 0x03, b'2', b'0', b'0'])),
        (
            "strict-unknown",
            Box::new(move |s| [Frame::new(0xfa, 0, 0, vec![]).bytes(), ok_head(s), data(s, END_STREAM, b"ok")].concat()),
        ),
        (
            "strict-unknown",
            Box::new(move |s| [ok_head(s), data(s, END_STREAM | 0x40, b"ok")].concat()),
        ),
        (
            "strict-unknown",
            Box::new(move |s| {
                let mut frame = data(s, END_STREAM, b"ok");
                frame[5] |= 0x80;
                [ok_head(s), frame].concat()
            }),
        ),
        (
            "strict-unknown",
            Box::new(move |s| {
                [
                    Frame::new(SETTINGS, 0, 0, settings_payload(&[(0x77, 1)])).bytes(),
                    ok_head(s),
                    data(s, END_STREAM, b"ok"),
                ]
                .concat()
            }),
        ),
        (
            "no-priority",
            Box::new(move |s| {
                [
                    Frame::new(PRIORITY, 0, s, vec![0, 0, 0, 0, 15]).bytes(),
                    ok_head(s),
                    data(s, END_STREAM, b"ok"),
                ]
                .concat()
            }),
        ),
        (
            "final-1xx",
            Box::new(move |s| [head(s, &[(":status", "103")], false), ok_head(s), data(s, END_STREAM, b"ok")].concat()),
        ),
        (
            "no-trailers",
            Box::new(move |s| [ok_head(s), data(s, 0, b"ok"), head(s, &[("x-sum", "1")], true)].concat()),
        ),
        (
            "goaway-fails",
            Box::new(move |s| [ok_head(s), data(s, END_STREAM, b"ok"), goaway(s, NO_ERROR).bytes()].concat()),
        ),
        (
            "first-data-only",
            Box::new(move |s| [ok_head(s), data(s, 0, b"o"), data(s, END_STREAM, b"k")].concat()),
        ),
    ];
    for (fault, answer) in &cases {
        let (_, code, lines, body) = judged("", answer).await;
        assert_eq!((code, body.as_slice()), (0, &b"ok"[..]), "{fault}, without it: {lines:?}");
        let (_, code, lines, body) = judged(fault, answer).await;
        assert!(code != 0 || body != b"ok", "{fault}: {lines:?}");
    }
}

#[tokio::test]
async fn requests_the_server_did_not_process_go_again_on_a_new_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (path(&dir, "a"), path(&dir, "b"));
    let (listener, task) = scripted("", &["get", "/a", &a, "/b", &b]).await;
    let mut peer = Peer::accept(&listener).await;
    peer.handshake(&[]).await;
    let (s1, _) = peer.request().await;
    let _second = peer.request().await;
    // The first answered, the second left out by a graceful GOAWAY (RFC 9113 §6.8).
    peer.send_bytes(&[response(s1, b"a"), goaway(s1, NO_ERROR).bytes()].concat()).await;
    peer.finish().await;
    let mut peer = Peer::accept(&listener).await;
    peer.handshake(&[]).await;
    let (s, fields) = peer.request().await;
    assert_eq!(fields[":path"], "/b");
    // Refused this time (RST_STREAM REFUSED_STREAM, §8.7), then answered on a third connection.
    peer.send_bytes(&rst_stream(s, 0x7).bytes()).await;
    peer.finish().await;
    let mut peer = Peer::accept(&listener).await;
    peer.handshake(&[]).await;
    let (s, _) = peer.request().await;
    peer.send_bytes(&response(s, b"b")).await;
    peer.finish().await;
    let (code, lines) = task.await.unwrap();
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(
        (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap()),
        (b"a".to_vec(), b"b".to_vec())
    );
}

/// Threads of their own: the frames are taken in while the request is still reading the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_in_one_octet_frames_arriving_at_once() {
    // Every frame at once, before the client can read any: h2's defence against floods of small
    // DATA frames must not take this legal framing (RFC 9113 §6.1) for one.
    let body = vec![b'x'; 60_000];
    let answer = |s: u32| {
        let mut out = head(s, &[(":status", "200")], false);
        for (i, b) in body.iter().enumerate() {
            let flags = if i + 1 == body.len() { END_STREAM } else { 0 };
            out.extend_from_slice(&Frame::new(DATA, flags, s, vec![*b]).bytes());
        }
        out
    };
    let (reset, code, lines, got) = judged("", answer).await;
    assert_eq!((reset, code, got.len()), (None, 0, 60_000), "{lines:?}");
}

#[tokio::test]
async fn lenient_takes_a_first_frame_that_is_not_settings() {
    for (fault, want) in [("", 1), ("lenient", 0)] {
        let dir = tempfile::tempdir().unwrap();
        let out = path(&dir, "out");
        let (listener, task) = scripted(fault, &["get", "/", &out]).await;
        let (mut tcp, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
        tcp.write_all(&Frame::new(PING, 0, 0, b"preface!".to_vec()).bytes()).await.unwrap();
        let mut peer = Peer {
            tcp,
            frames: Frames::default(),
            decoder: fluke_hpack::Decoder::new(),
            seen: Vec::new(),
        };
        let mut preface = [0; 24];
        timeout(WAIT, peer.tcp.read_exact(&mut preface)).await.unwrap().unwrap();
        if want == 0 {
            peer.handshake(&[]).await;
            let (s, _) = peer.request().await;
            peer.send_bytes(&response(s, b"ok")).await;
            assert!(peer.seen.iter().any(|f| f.kind == PING && f.has(ACK)), "the PING is answered");
        }
        peer.finish().await;
        let (code, lines) = task.await.unwrap();
        assert_eq!(code, want, "{fault}: {lines:?}");
    }
}
