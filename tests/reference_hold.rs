//! The reference servers stay available under abuse: with 300 slowloris
//! connections (a byte at a time, never finishing a line) and 2000 silent
//! ones open, a normal client is still served within a second, by every TCP
//! reference. A line that trickles in is cut off with the protocol's goodbye;
//! at the connection cap the idlest connection is closed (with the goodbye)
//! for a newcomer; and the proxy reference refuses destinations that are not
//! loopback with a 403, without connecting to them.
//!
//! Timing is scaled down from the attack as measured (a byte every 5 s): the
//! slowloris clients here send a byte every second, and the goodbye test sets
//! the references' `line_timeout` to 1 s instead of the default 10 s, so the
//! whole file runs in well under a minute. The flood test uses the default
//! limits: it is the connection cap (closing the connections idle longest)
//! that lets the normal client in, whatever the timeouts.
//!
//! The references run in this test's process (`reference_servers::start_server`),
//! so the attack's sockets and the servers' count against one descriptor
//! limit: the soft limit is raised to the hard one, and the silent
//! connections are scaled down (and the scale printed) if even that is short.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reference_servers::{start_server, Options, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};

/// The attack as measured.
const SLOWLORIS: usize = 300;
const SILENT: usize = 2000;
/// How often a slowloris client sends its next byte (scaled down from 5 s).
const TRICKLE: Duration = Duration::from_secs(1);
/// What "still served" means.
const SERVED_WITHIN: Duration = Duration::from_secs(1);
/// How long a measurement may run before it counts as "not served" (so a failure is measured, not hung).
const MEASURE_LIMIT: Duration = Duration::from_secs(10);
/// Upper bound for one attacking connect: a connect the server's backlog does not take is given up.
const CONNECT_LIMIT: Duration = Duration::from_secs(2);
/// Connects in flight at once while opening the attack.
const CONNECT_BATCH: usize = 200;
/// Descriptors kept free for everything else (the servers' files, the runtime).
const SPARE_FDS: u64 = 256;

fn opts(pairs: &[(&str, &str)]) -> Options {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn start(name: &str, pairs: &[(&str, &str)]) -> RunningServer {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    timeout(Duration::from_secs(10), start_server(name, loopback, &opts(pairs)))
        .await
        .unwrap_or_else(|_| panic!("{name}: start_server timed out"))
        .unwrap_or_else(|e| panic!("{name}: start_server failed: {e}"))
}

/// Raises the soft descriptor limit to the hard one; returns how many silent
/// connections fit (each costs two descriptors here: the client's and the server's).
fn silent_connections_that_fit() -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return SILENT;
    };
    let limit = if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    let room = limit.saturating_sub(SPARE_FDS) / 2;
    let fit = usize::try_from(room).unwrap_or(usize::MAX).saturating_sub(SLOWLORIS + 1);
    if fit < SILENT {
        eprintln!("descriptor limit {limit}: {fit} silent connections instead of {SILENT}");
    }
    fit.min(SILENT)
}

/// A normal client's exchange with one reference.
#[derive(Clone, Copy, Debug)]
enum Exchange {
    /// tcp-upper: a line, uppercased back.
    Upper,
    /// A greeting starting with the first, then a command whose reply starts with the third.
    Greeted(&'static str, &'static str, &'static str),
    /// An HTTP request for `/` with this Host; the reply starts with `HTTP/1.1 200`.
    Http(&'static str),
    /// An HTTP request for this path (a tracker's scrape); the reply starts with `HTTP/1.1 200`.
    HttpPath(&'static str),
    /// A BitTorrent handshake for the torrent in this file; the reply is a handshake for it.
    BtHandshake(&'static str),
    /// A DNS query over TCP for example.test A; the reply is an answer to it.
    Dns,
}

/// One request/response in the protocol, on a fresh connection; `Err` says what went wrong.
async fn exchange(server: SocketAddr, how: Exchange, proxy_to: Option<SocketAddr>) -> Result<(), String> {
    let stream = TcpStream::connect(server).await.map_err(|e| format!("connect: {e}"))?;
    exchange_on(stream, how, proxy_to).await
}

/// One request/response in the protocol on `stream`, already connected.
async fn exchange_on(mut stream: TcpStream, how: Exchange, proxy_to: Option<SocketAddr>) -> Result<(), String> {
    match how {
        Exchange::Upper => {
            stream.write_all(b"hello\n").await.map_err(|e| e.to_string())?;
            expect_start(&mut stream, b"HELLO\n").await
        }
        Exchange::Greeted(greeting, command, reply) => {
            expect_start(&mut stream, greeting.as_bytes()).await?;
            stream.write_all(command.as_bytes()).await.map_err(|e| e.to_string())?;
            expect_start(&mut stream, reply.as_bytes()).await
        }
        Exchange::Http(host) => {
            let target = match proxy_to {
                Some(origin) => format!("http://{origin}/"),
                None => "/".to_owned(),
            };
            let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
            stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
            expect_start(&mut stream, b"HTTP/1.1 200").await
        }
        Exchange::HttpPath(path) => {
            let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
            stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
            expect_start(&mut stream, b"HTTP/1.1 200").await
        }
        Exchange::BtHandshake(torrent) => {
            let meta = std::fs::read(common::root().join(torrent)).map_err(|e| e.to_string())?;
            let hash = wirecheck::proto::bittorrent::metainfo::Metainfo::parse(&meta)?.info_hash;
            let mut hello = b"\x13BitTorrent protocol\0\0\0\0\0\0\0\0".to_vec();
            hello.extend_from_slice(&hash);
            hello.extend_from_slice(b"-WC0001-reference-hd");
            stream.write_all(&hello).await.map_err(|e| e.to_string())?;
            let mut back = [0u8; 48];
            stream
                .read_exact(&mut back)
                .await
                .map_err(|e| format!("reading the handshake: {e}"))?;
            (back[..20] == hello[..20] && back[28..48] == hash)
                .then_some(())
                .ok_or_else(|| format!("not a handshake for the torrent: {back:02x?}"))
        }
        Exchange::Dns => {
            let query = dns_query(0x4242);
            stream.write_all(&query).await.map_err(|e| e.to_string())?;
            let mut prefix = [0u8; 2];
            stream
                .read_exact(&mut prefix)
                .await
                .map_err(|e| format!("reading the length: {e}"))?;
            let mut reply = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
            stream.read_exact(&mut reply).await.map_err(|e| format!("reading the reply: {e}"))?;
            // Same id, QR set, RCODE 0 (NOERROR), one answer or more.
            let ok = reply.len() > 12 && reply[..2] == [0x42, 0x42] && reply[2] & 0x80 != 0 && reply[3] & 0x0f == 0 && reply[7] > 0;
            ok.then_some(()).ok_or_else(|| format!("not an answer to the query: {reply:02x?}"))
        }
    }
}

/// A TCP-framed query for `example.test. A IN`.
fn dns_query(id: u16) -> Vec<u8> {
    let mut message = Vec::new();
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in ["example", "test"] {
        message.push(label.len() as u8);
        message.extend_from_slice(label.as_bytes());
    }
    message.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&message);
    framed
}

/// Reads until what arrived starts with `expected` (or cannot).
async fn expect_start(stream: &mut TcpStream, expected: &[u8]) -> Result<(), String> {
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("closed after {:?}", String::from_utf8_lossy(&got)));
        }
        got.extend_from_slice(&chunk[..n]);
    }
    if got.starts_with(expected) {
        Ok(())
    } else {
        Err(format!(
            "expected {:?}, got {:?}",
            String::from_utf8_lossy(expected),
            String::from_utf8_lossy(&got)
        ))
    }
}

/// Opens `n` connections to `server`, `CONNECT_BATCH` at a time; returns those that connected.
async fn open(server: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut opened = Vec::with_capacity(n);
    let mut pending = JoinSet::new();
    for _ in 0..n {
        if pending.len() >= CONNECT_BATCH {
            if let Some(Ok(Some(stream))) = pending.join_next().await {
                opened.push(stream);
            }
        }
        pending.spawn(async move { timeout(CONNECT_LIMIT, TcpStream::connect(server)).await.ok()?.ok() });
    }
    while let Some(done) = pending.join_next().await {
        if let Ok(Some(stream)) = done {
            opened.push(stream);
        }
    }
    opened
}

/// Keeps each connection trickling `byte` every `TRICKLE` until `stop`, reading (and dropping)
/// whatever the server says; returns how many the server closed.
fn trickle(streams: Vec<TcpStream>, byte: u8, stop: Arc<AtomicBool>) -> JoinSet<bool> {
    let mut tasks = JoinSet::new();
    for stream in streams {
        let stop = stop.clone();
        tasks.spawn(async move {
            let (mut reader, mut writer) = stream.into_split();
            let reading = tokio::spawn(async move {
                let mut sink = Vec::new();
                // Ends at the server's close (or reset).
                let _ = reader.read_to_end(&mut sink).await;
            });
            while !stop.load(Ordering::Relaxed) {
                if writer.write_all(&[byte]).await.is_err() || reading.is_finished() {
                    reading.abort();
                    return true;
                }
                tokio::time::sleep(TRICKLE).await;
            }
            reading.abort();
            false
        });
    }
    tasks
}

/// One TCP reference, and how a normal client and a slowloris client talk to it.
struct Reference {
    name: &'static str,
    options: &'static [(&'static str, &'static str)],
    exchange: Exchange,
    /// The byte a slowloris client sends over and over: never the end of a line or message.
    trickle: u8,
    /// The first bytes of the goodbye a trickling client gets, if the protocol has one.
    goodbye: Option<&'static str>,
}

const REFERENCES: &[Reference] = &[
    Reference {
        name: "tcp-upper",
        options: &[],
        exchange: Exchange::Upper,
        trickle: b'a',
        goodbye: None,
    },
    Reference {
        name: "smtp",
        options: &[],
        exchange: Exchange::Greeted("220 ", "NOOP\r\n", "250 "),
        trickle: b'a',
        goodbye: Some("421 "),
    },
    Reference {
        name: "pop3",
        options: &[],
        exchange: Exchange::Greeted("+OK", "CAPA\r\n", "+OK"),
        trickle: b'a',
        // RFC 1939 §3: an autologout closes "without ... sending any response".
        goodbye: None,
    },
    Reference {
        name: "imap",
        options: &[],
        exchange: Exchange::Greeted("* OK", "a1 NOOP\r\n", "a1 OK"),
        trickle: b'a',
        goodbye: Some("* BYE "),
    },
    Reference {
        name: "ftp",
        options: &[],
        exchange: Exchange::Greeted("220 ", "NOOP\r\n", "200 "),
        trickle: b'a',
        goodbye: Some("421 "),
    },
    Reference {
        name: "http",
        options: &[],
        exchange: Exchange::Http("localhost"),
        trickle: b'a',
        goodbye: Some("HTTP/1.1 408 "),
    },
    Reference {
        name: "http-proxy",
        options: &[],
        exchange: Exchange::Http("localhost"),
        trickle: b'a',
        goodbye: Some("HTTP/1.1 408 "),
    },
    Reference {
        name: "http2",
        options: &[],
        // HTTP/1.1 and HTTP/2 share its port: a normal HTTP/1.1 client is still served.
        exchange: Exchange::Http("localhost"),
        trickle: b'a',
        goodbye: Some("HTTP/1.1 408 "),
    },
    Reference {
        name: "bt-tracker",
        options: &[],
        exchange: Exchange::HttpPath("/scrape"),
        trickle: b'a',
        goodbye: Some("HTTP/1.1 408 "),
    },
    Reference {
        name: "bt-seeder",
        options: &[("torrent", "fixtures/bittorrent/sample.torrent")],
        exchange: Exchange::BtHandshake("fixtures/bittorrent/sample.torrent"),
        // The handshake's first byte, its length prefix (19), then the same again: never a
        // complete handshake. BEP 3 has no goodbye: the connection is closed.
        trickle: 0x13,
        goodbye: None,
    },
    Reference {
        name: "dns",
        options: &[("zone", "fixtures/dns/example.test.zone")],
        exchange: Exchange::Dns,
        // A length prefix of 0x0101, then the 257 bytes it announces, one by one.
        trickle: 0x01,
        goodbye: None,
    },
];

/// The options of `reference`, file names made absolute, plus `extra`.
fn options_of(reference: &Reference, extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, String)> {
    let mut pairs: Vec<(&'static str, String)> = reference
        .options
        .iter()
        .map(|&(key, value)| {
            let value = if value.starts_with("fixtures/") {
                common::root().join(value).display().to_string()
            } else {
                value.to_owned()
            };
            (key, value)
        })
        .collect();
    pairs.extend(extra.iter().map(|&(key, value)| (key, value.to_owned())));
    pairs
}

async fn start_reference(reference: &Reference, extra: &[(&'static str, &'static str)]) -> RunningServer {
    let pairs = options_of(reference, extra);
    let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    start(reference.name, &borrowed).await
}

/// The http reference, as the proxy's origin.
async fn origin() -> RunningServer {
    let root = common::root().join("fixtures/www").display().to_string();
    start("http", &[("root", &root)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_client_is_served_under_slowloris_and_silent_connections() {
    let silent = silent_connections_that_fit();
    let origin = origin().await;
    let mut failures = Vec::new();
    for reference in REFERENCES {
        let server = start_reference(reference, &[]).await;
        let addr = server.local_addr();
        let began = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let slowloris = open(addr, SLOWLORIS).await;
        let trickled = slowloris.len();
        let mut trickling = trickle(slowloris, reference.trickle, stop.clone());
        let quiet = open(addr, silent).await;
        let opened = began.elapsed();
        let proxy_to = (reference.name == "http-proxy").then(|| origin.local_addr());
        // The connect is the kernel's: with the backlog momentarily full of the attack's
        // connects, a SYN is dropped and retried after the 1 s initial RTO (RFC 6298), whatever
        // the server does. What the server owes is the service once it has the connection.
        let connecting = Instant::now();
        let connected = timeout(CONNECT_LIMIT * 2, TcpStream::connect(addr)).await;
        let connect_took = connecting.elapsed();
        let asked = Instant::now();
        let served = match connected {
            Ok(Ok(stream)) => timeout(MEASURE_LIMIT, exchange_on(stream, reference.exchange, proxy_to)).await,
            Ok(Err(e)) => Ok(Err(format!("connect: {e}"))),
            Err(_) => Ok(Err(format!("no connection within {:?}", CONNECT_LIMIT * 2))),
        };
        let took = asked.elapsed();
        stop.store(true, Ordering::Relaxed);
        let closed = timeout(TRICKLE * 3, async {
            let mut closed = 0;
            while let Some(done) = trickling.join_next().await {
                closed += usize::from(done.unwrap_or(false));
            }
            closed
        })
        .await
        .unwrap_or(0);
        trickling.abort_all();
        eprintln!(
            "{:<10} {trickled} slowloris + {} silent opened in {opened:.2?}; normal client: connected in {connect_took:.2?}, {} in {took:.2?}; slowloris closed by the server: {closed}",
            reference.name,
            quiet.len(),
            match &served {
                Ok(Ok(())) => "served".to_owned(),
                Ok(Err(why)) => format!("failed ({why})"),
                Err(_) => format!("not served within {MEASURE_LIMIT:?}"),
            },
        );
        match served {
            Ok(Ok(())) if took <= SERVED_WITHIN => {}
            Ok(Ok(())) => failures.push(format!("{}: served after {took:.2?}", reference.name)),
            Ok(Err(why)) => failures.push(format!("{}: {why}", reference.name)),
            Err(_) => failures.push(format!("{}: not served within {MEASURE_LIMIT:?}", reference.name)),
        }
        drop(quiet);
        server.shutdown().await;
    }
    origin.shutdown().await;
    assert!(
        failures.is_empty(),
        "a normal client was not served within {SERVED_WITHIN:?}:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_line_is_cut_off_with_the_protocols_goodbye() {
    const LINE_TIMEOUT: Duration = Duration::from_secs(1);
    let mut checks = JoinSet::new();
    for reference in REFERENCES {
        checks.spawn(async move {
            let server = start_reference(reference, &[("line_timeout", "1s")]).await;
            let mut stream = TcpStream::connect(server.local_addr()).await.expect("connect");
            let began = Instant::now();
            let mut said = Vec::new();
            let outcome = timeout(LINE_TIMEOUT + Duration::from_secs(4), async {
                loop {
                    let _ = stream.write_all(&[reference.trickle]).await;
                    let mut chunk = [0u8; 1024];
                    match timeout(Duration::from_millis(200), stream.read(&mut chunk)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => return,
                        Ok(Ok(n)) => said.extend_from_slice(&chunk[..n]),
                        Err(_) => {}
                    }
                }
            })
            .await;
            let took = began.elapsed();
            server.shutdown().await;
            let said = String::from_utf8_lossy(&said).into_owned();
            // Greetings come first; the goodbye is the last line.
            let last = said.trim_end().rsplit("\r\n").next().unwrap_or_default().to_owned();
            let last = if said.starts_with("HTTP/") { said.clone() } else { last };
            let mut problems = Vec::new();
            if outcome.is_err() {
                problems.push(format!("still open after {took:.2?}"));
            } else if took < LINE_TIMEOUT {
                problems.push(format!("closed after {took:.2?}, before the line timeout"));
            }
            if let Some(goodbye) = reference.goodbye {
                if !last.starts_with(goodbye) {
                    problems.push(format!("goodbye {last:?}, expected {goodbye:?}…"));
                }
            }
            eprintln!("{:<10} trickled line closed after {took:.2?}, last words {last:?}", reference.name);
            (reference.name, problems)
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = checks.join_next().await {
        let (name, problems) = done.expect("check task");
        failures.extend(problems.into_iter().map(|p| format!("{name}: {p}")));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A stand-in origin on loopback: counts the connections it gets, answers each with a 200.
async fn counting_origin() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match timeout(Duration::from_secs(2), stream.read(&mut chunk)).await {
                        Ok(Ok(n)) if n > 0 => head.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\norigin")
                    .await;
            });
        }
    });
    (addr, count, task)
}

/// Sends one absolute-form GET through `proxy`; returns the response.
async fn through(proxy: SocketAddr, uri: &str) -> String {
    timeout(Duration::from_secs(5), async {
        let mut stream = TcpStream::connect(proxy).await.expect("connect to the proxy");
        let request = format!("GET {uri} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        String::from_utf8_lossy(&response).into_owned()
    })
    .await
    .unwrap_or_else(|_| panic!("no response for {uri} within 5 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_forwards_only_to_loopback() {
    let (origin, connections, origin_task) = counting_origin().await;
    let proxy = start("http-proxy", &[]).await;
    let port = origin.port();
    // Not loopback, by address and by numeric spellings the resolver reads as addresses.
    for uri in [
        "http://10.0.0.1/".to_owned(),
        format!("http://192.168.1.1:{port}/"),
        "http://8.8.8.8/".to_owned(),
        format!("http://167772161:{port}/"), // 10.0.0.1 in decimal
        format!("http://0xa.0.0.1:{port}/"), // 10.0.0.1 in hex
        format!("http://[::ffff:10.0.0.1]:{port}/"),
        format!("http://[fe80::1]:{port}/"),
        format!("http://0.0.0.0:{port}/"), // reaches this host on Linux, so not loopback enough
    ] {
        let began = Instant::now();
        let response = through(proxy.local_addr(), &uri).await;
        assert!(response.starts_with("HTTP/1.1 403 "), "{uri}: {response}");
        assert!(
            response.contains("this reference proxy forwards only to loopback"),
            "{uri}: {response}"
        );
        // A connect attempt to 10.0.0.1 would have taken the origin timeout.
        assert!(began.elapsed() < Duration::from_secs(1), "{uri}: took {:?}", began.elapsed());
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0, "the origin was contacted");
    // Loopback is judged by the address, however it is spelt.
    for uri in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://2130706433:{port}/"), // 127.0.0.1 in decimal
        format!("http://0x7f.1:{port}/"),     // 127.0.0.1 in hex
        format!("http://[::ffff:127.0.0.1]:{port}/"),
    ] {
        let response = through(proxy.local_addr(), &uri).await;
        assert!(response.starts_with("HTTP/1.1 200 "), "{uri}: {response}");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 5);
    proxy.shutdown().await;

    // With an allow-list that leaves loopback out, even the loopback origin is refused, unconnected.
    let restricted = start("http-proxy", &[("allow", "10.0.0.0/8")]).await;
    let response = through(restricted.local_addr(), &format!("http://127.0.0.1:{port}/")).await;
    assert!(response.starts_with("HTTP/1.1 403 "), "{response}");
    assert!(response.contains("forwards only to 10.0.0.0/8"), "{response}");
    assert_eq!(connections.load(Ordering::SeqCst), 5, "the origin was contacted");
    restricted.shutdown().await;
    origin_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_idlest_connection_is_told_why_and_the_newcomer_served() {
    let mut checks = JoinSet::new();
    for reference in REFERENCES {
        checks.spawn(async move {
            let server = start_reference(reference, &[("max_connections", "1")]).await;
            let addr = server.local_addr();
            let outcome = timeout(Duration::from_secs(5), async {
                let mut idle = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
                // Greeted (if the protocol greets) and then idle: its server waits for it.
                let mut said = Vec::new();
                let mut chunk = [0u8; 1024];
                if matches!(reference.exchange, Exchange::Greeted(..)) {
                    let n = idle.read(&mut chunk).await.map_err(|e| format!("greeting: {e}"))?;
                    said.extend_from_slice(&chunk[..n]);
                }
                // Without a greeting nothing shows when the server has begun waiting for the
                // idle connection; until it has, the newcomer is turned away, so it retries (bounded).
                let mut attempts = 0;
                loop {
                    match exchange(addr, reference.exchange, None).await {
                        Ok(()) => break,
                        // An origin-form request is the proxy's 400: an answer all the same.
                        Err(why) if reference.name == "http-proxy" && why.contains("got \"HTTP/1.1 400") => break,
                        Err(_) if attempts < 50 => attempts += 1,
                        Err(why) => return Err(why),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = idle.read_to_end(&mut said).await;
                Ok::<String, String>(String::from_utf8_lossy(&said).into_owned())
            })
            .await;
            server.shutdown().await;
            let problem = match outcome {
                Err(_) => Some("the idle connection was not closed within 5 s".to_owned()),
                Ok(Err(why)) => Some(format!("the newcomer was not served: {why}")),
                Ok(Ok(said)) => {
                    let last = said.trim_end().rsplit("\r\n").next().unwrap_or_default().to_owned();
                    eprintln!("{:<10} the idle connection was closed, last words {last:?}", reference.name);
                    let expected = match reference.name {
                        "smtp" | "ftp" => Some("421 "),
                        "imap" => Some("* BYE "),
                        _ => None,
                    };
                    expected
                        .filter(|e| !last.starts_with(e))
                        .map(|e| format!("goodbye {last:?}, expected {e:?}…"))
                }
            };
            (reference.name, problem)
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = checks.join_next().await {
        let (name, problem) = done.expect("check task");
        failures.extend(problem.map(|p| format!("{name}: {p}")));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_is_turned_away_with_a_goodbye_when_no_connection_is_idle() {
    // A greeting delay keeps the only slot busy (the server is not yet waiting for its client).
    let server = start("smtp", &[("max_connections", "1"), ("greeting_delay", "2s")]).await;
    let _busy = TcpStream::connect(server.local_addr()).await.expect("connect");
    let said = timeout(Duration::from_secs(1), async {
        let mut newcomer = TcpStream::connect(server.local_addr()).await.expect("connect");
        let mut said = Vec::new();
        let _ = newcomer.read_to_end(&mut said).await;
        String::from_utf8_lossy(&said).into_owned()
    })
    .await
    .expect("the newcomer was neither served nor turned away within 1 s");
    assert!(said.starts_with("421 ") && said.contains("try again later"), "{said:?}");
    server.shutdown().await;
}
