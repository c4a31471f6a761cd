//! The HTTP/2 server actor driven frame by frame: it serves a client that keeps the rules, and
//! names the rule a client breaks (through `ActorLog::violation`); its case options are read
//! with located errors.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};
use wirecheck::proto::actor::{ActorHandle, ActorLog, ActorSpec, Bound};
use wirecheck::proto::http2::steps::{frame_bytes, header_block};
use wirecheck::proto::http2::{Body, H2Frame, Http2Codec, Kind, PREFACE};
use wirecheck::proto::{Codec, Direction, Framer, Transport};
use wirecheck::syntax::{yaml, LoadCx, SourceFile};

/// How long a test waits for the actor.
const WAIT: Duration = Duration::from_secs(5);

/// Keeps the violations the actor reports.
#[derive(Default)]
struct Log {
    next: AtomicUsize,
    violations: Mutex<Vec<String>>,
}

impl ActorLog for Log {
    fn open(&self, _: Transport, _: SocketAddr, _: SocketAddr) -> usize {
        self.next.fetch_add(1, Ordering::SeqCst)
    }
    fn data(&self, _: usize, _: Direction, _: &[u8]) {}
    fn closed(&self, _: usize) {}
    fn violation(&self, _: usize, text: &str) {
        self.violations.lock().unwrap().push(text.to_string());
    }
}

fn cx(text: &str) -> (yaml::Node, LoadCx) {
    let source = Arc::new(SourceFile {
        path: "suites/t.yaml".into(),
        text: text.into(),
    });
    (yaml::parse(text).unwrap(), LoadCx::new(source))
}

async fn start(faults: &[&str]) -> (ActorHandle, SocketAddr, Arc<Log>) {
    let (node, mut cx) = cx("root: ../fixtures/www\n");
    let spec: Arc<dyn ActorSpec> = (wirecheck::proto::http2::actor::ACTOR.parse)(&node, &mut cx).unwrap();
    assert_eq!(cx.error_count(), 0);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Log::default());
    let faults: Vec<String> = faults.iter().map(|f| f.to_string()).collect();
    let bound = Bound {
        udp: None,
        tcp: Some(listener),
        tls: None,
    };
    (spec.start(bound, &faults, log.clone()), addr, log)
}

fn get(stream: u32, path: &str) -> Vec<u8> {
    let fields: Vec<(String, String)> = [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", path)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    frame_bytes(1, 0x5, stream, &header_block(&fields), None)
}

/// Reads the actor's frames until `done` says so or the connection ends; answers its SETTINGS.
async fn read_until(c: &mut TcpStream, mut done: impl FnMut(&H2Frame) -> bool) -> Vec<H2Frame> {
    let mut framer = Framer::new(Box::new(Http2Codec::new(false)) as Box<dyn Codec>);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    let until = Instant::now() + WAIT;
    loop {
        while let Ok(Some(m)) = framer.next(false) {
            let f = m.detail.as_ref().unwrap().downcast_ref::<H2Frame>().unwrap().clone();
            if f.kind == Kind::Settings && !f.has(1) {
                c.write_all(&frame_bytes(4, 1, 0, &[], None)).await.unwrap();
            }
            let stop = done(&f);
            out.push(f);
            if stop {
                return out;
            }
        }
        match tokio::time::timeout_at(until, c.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => framer.push(&buf[..n]),
            _ => return out,
        }
    }
}

#[tokio::test]
async fn serves_a_client_that_keeps_the_rules() {
    let (_h, addr, log) = start(&["padding", "huffman", "continuation"]).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame_bytes(4, 0, 0, &[], None));
    hello.extend(get(1, "/notes.txt"));
    c.write_all(&hello).await.unwrap();
    let frames = read_until(&mut c, |f| f.kind == Kind::Data && f.has(1)).await;
    let body: Vec<u8> = frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::Data { data, .. } => Some(data.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(body, std::fs::read("fixtures/www/notes.txt").unwrap());
    assert!(frames.iter().any(|f| f.kind == Kind::Continuation), "{frames:?}");
    let status = frames
        .iter()
        .find_map(|f| f.fields().and_then(|fs| fs.iter().find(|(k, _)| k == ":status").cloned()));
    assert_eq!(status, Some((":status".to_string(), "200".to_string())));
    assert!(log.violations.lock().unwrap().is_empty(), "{:?}", log.violations.lock().unwrap());
}

#[tokio::test]
async fn indexes_fields_in_its_dynamic_table_as_the_client_decodes_them() {
    let (_h, addr, log) = start(&["indexed", "huffman", "size-update"]).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame_bytes(4, 0, 0, &[], None));
    hello.extend(get(1, "/notes.txt"));
    hello.extend(get(3, "/index.html"));
    c.write_all(&hello).await.unwrap();
    let mut ended = 0;
    let frames = read_until(&mut c, |f| {
        ended += usize::from(f.kind == Kind::Data && f.has(1));
        ended == 2
    })
    .await;
    let heads: Vec<(usize, Vec<(String, String)>)> = frames
        .iter()
        .filter(|f| f.kind == Kind::Headers)
        .map(|f| (f.length, f.fields().expect("decoded").to_vec()))
        .collect();
    assert_eq!(heads.len(), 2, "{frames:?}");
    for (_, fields) in &heads {
        assert!(
            fields.contains(&("x-served-by".to_string(), "wirecheck http2 actor".to_string())),
            "{fields:?}"
        );
        assert!(fields.contains(&(":status".to_string(), "200".to_string())), "{fields:?}");
    }
    // The second block refers to the entries the first one added: it is shorter.
    assert!(heads[1].0 < heads[0].0, "{heads:?}");
    assert!(log.violations.lock().unwrap().is_empty());
}

/// Sends `bytes` after the preface and SETTINGS (unless `bare`), reads until the connection ends,
/// and returns the violation the actor reported and the GOAWAY code it sent.
async fn broken(bare: bool, bytes: &[u8]) -> (String, Option<u32>) {
    let (_h, addr, log) = start(&[]).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    if !bare {
        out.extend_from_slice(PREFACE);
        out.extend(frame_bytes(4, 0, 0, &[], None));
    }
    out.extend_from_slice(bytes);
    c.write_all(&out).await.unwrap();
    let frames = read_until(&mut c, |f| f.kind == Kind::GoAway).await;
    let code = frames.iter().find_map(|f| match f.body {
        Body::GoAway { code, .. } => Some(code),
        _ => None,
    });
    let v = log.violations.lock().unwrap().first().cloned().unwrap_or_default();
    (v, code)
}

#[tokio::test]
async fn names_the_rule_a_client_breaks() {
    let (v, code) = broken(true, &frame_bytes(4, 0, 0, &[], None)).await;
    assert!(v.contains("RFC 9113 §3.4") && v.contains("preface"), "{v}");
    assert_eq!(code, Some(1));

    let (v, code) = broken(false, &get(2, "/notes.txt")).await;
    assert!(v.contains("odd-numbered"), "{v}");
    assert_eq!(code, Some(1));

    let mut two = get(3, "/notes.txt");
    two.extend(get(1, "/index.html"));
    let (v, _) = broken(false, &two).await;
    assert!(v.contains("numerically greater"), "{v}");

    // 70000 octets on a stream whose window is 65535.
    let mut post = frame_bytes(
        1,
        0x4,
        1,
        &header_block(&[
            (":method".into(), "POST".into()),
            (":scheme".into(), "http".into()),
            (":path".into(), "/echo".into()),
        ]),
        None,
    );
    for _ in 0..5 {
        post.extend(frame_bytes(0, 0, 1, &[b'x'; 14_000], None));
    }
    let (v, code) = broken(false, &post).await;
    assert!(v.contains("§6.9.1"), "{v}");
    assert_eq!(code, Some(3));

    let (v, code) = broken(false, &frame_bytes(0, 0, 1, &[b'x'; 16_385], None)).await;
    assert!(v.contains("RFC 9113 §4.2"), "{v}");
    assert_eq!(code, Some(6));

    let fields = vec![
        (":method".to_string(), "GET".to_string()),
        (":scheme".to_string(), "http".to_string()),
        (":path".to_string(), "/".to_string()),
        ("User-Agent".to_string(), "x".to_string()),
    ];
    let (v, _) = broken(false, &frame_bytes(1, 0x5, 1, &header_block(&fields), None)).await;
    assert!(v.contains("§8.2.1"), "{v}");
}

#[tokio::test]
async fn waits_for_the_settings_ack_and_says_when_none_comes() {
    let (_h, addr, log) = start(&[]).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame_bytes(4, 0, 0, &[], None));
    hello.extend(get(1, "/notes.txt"));
    c.write_all(&hello).await.unwrap();
    // Read without acknowledging anything.
    let mut all = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Ok(Ok(n)) = timeout(WAIT, c.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    let v = log.violations.lock().unwrap().first().cloned().unwrap_or_default();
    assert!(v.contains("RFC 9113 §6.5.3"), "{v}");
    // No response went out: SETTINGS, the ACK of the client's, then GOAWAY SETTINGS_TIMEOUT (4).
    let mut kinds = Vec::new();
    let mut rest = &all[..];
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        kinds.push((rest[3], rest.get(13..17).map(|c| c.to_vec())));
        rest = &rest[(9 + len).min(rest.len())..];
    }
    assert_eq!(kinds.iter().map(|k| k.0).collect::<Vec<_>>(), [4, 4, 7], "{all:?}");
    assert_eq!(kinds[2].1.as_deref(), Some(&[0, 0, 0, 4][..]));
}

#[test]
fn case_options_are_read_with_located_errors() {
    let parse = wirecheck::proto::http2::actor::ACTOR.options.unwrap();
    for (text, says) in [
        ("inject: [ { at: later, frame: PING } ]\n", "not a point of the connection"),
        ("inject: [ { at: start, frame: PING, stream: request } ]\n", "not known yet"),
        ("inject: [ { frame: NOPE } ]\n", "is not a frame type"),
        ("settings: { NOPE: 1 }\n", "is not a setting"),
        ("respond: maybe\n", "respond"),
        ("colour: red\n", "colour"),
    ] {
        let (node, mut cx) = cx(text);
        let got = parse(&node, &mut cx);
        let errors = cx.into_errors();
        assert!(got.is_none() || !errors.is_empty(), "{text}");
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            shown.iter().any(|e| e.contains(says) && e.contains("t.yaml:1:")),
            "{text}: {shown:?}"
        );
    }
    let (node, mut cx) = cx(
        "settings: { MAX_FRAME_SIZE: 16384 }\nrespond: false\ninject: [ { at: request, frame: DATA, stream: request, size: over-max } ]\n",
    );
    assert!(parse(&node, &mut cx).is_some() && cx.error_count() == 0);
}
