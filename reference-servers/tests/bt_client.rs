//! Loopback tests of the `bt-client` reference: a small swarm made here (an HTTP tracker that
//! answers compact peers with interval 1, seeders with different piece sets, a leecher) shares
//! `fixtures/bittorrent/swarm.bin`, and each test checks what the client did on the wire.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reference_servers::{run_client, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};

/// The whole client run in any test ends within this, or the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(15);
/// Any single read of the swarm's peers.
const READ_LIMIT: Duration = Duration::from_secs(10);
const PIECE: usize = 16384;
const PIECES: usize = 64;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bittorrent").join(name);
    std::fs::read(path).expect("fixture")
}

fn swarm_bin() -> Arc<Vec<u8>> {
    Arc::new(fixture("swarm.bin"))
}

fn info_hash() -> [u8; 20] {
    let hex = "59d7abb991f4aa70b30e43407cdfed730440d525";
    let mut out = [0u8; 20];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

/// swarm.torrent with `announce` pointing at `url`: `info` is the last key of the fixture's
/// (canonical) dictionary, so its bytes are kept as they are and the info-hash stays the same.
fn torrent_for(url: &str, dir: &Path) -> PathBuf {
    let original = fixture("swarm.torrent");
    let at = original.windows(7).position(|w| w == b"4:infod").expect("info key");
    let mut out = format!("d8:announce{}:{url}", url.len()).into_bytes();
    out.extend_from_slice(&original[at..]);
    let path = dir.join("swarm.torrent");
    std::fs::write(&path, out).expect("write torrent");
    path
}

fn opts(pairs: &[(&str, &str)]) -> Options {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn frame(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    out.push(id);
    out.extend_from_slice(payload);
    out
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// One message (id, payload) from `stream`, `None` at its end; keep-alives are skipped.
async fn read_message(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    loop {
        let mut len = [0u8; 4];
        timeout(READ_LIMIT, stream.read_exact(&mut len)).await.ok()?.ok()?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            continue;
        }
        assert!(len <= 1 << 20, "a message of {len} bytes");
        let mut body = vec![0u8; len];
        timeout(READ_LIMIT, stream.read_exact(&mut body)).await.ok()?.ok()?;
        let id = body.remove(0);
        return Some((id, body));
    }
}

fn handshake(peer_id: &[u8; 20]) -> Vec<u8> {
    let mut out = b"\x13BitTorrent protocol\0\0\0\0\0\0\0\0".to_vec();
    out.extend_from_slice(&info_hash());
    out.extend_from_slice(peer_id);
    out
}

// ------------------------------------------------------------------ tracker

/// What the tracker answers.
#[derive(Clone, Copy)]
enum Answer {
    /// The peers in `Tracker::peers`, interval 1.
    Peers,
    /// No peers to the first announce, then `Peers`.
    NoneAtFirst,
    /// A `failure reason`.
    Failure(&'static str),
}

/// The query of every announce, percent-decoded, in order.
type AnnounceLog = Arc<Mutex<Vec<HashMap<String, Vec<u8>>>>>;

struct Tracker {
    url: String,
    log: AnnounceLog,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    _task: JoinHandle<()>,
}

impl Tracker {
    async fn start(answer: Answer) -> Tracker {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tracker");
        let addr = listener.local_addr().expect("addr");
        let log: AnnounceLog = Arc::default();
        let peers: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let (log2, peers2) = (log.clone(), peers.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, peers) = (log2.clone(), peers2.clone());
                tokio::spawn(async move {
                    let _ = timeout(READ_LIMIT, serve_announce(stream, answer, log, peers)).await;
                });
            }
        });
        Tracker {
            url: format!("http://{addr}/announce"),
            log,
            peers,
            _task: task,
        }
    }

    fn events(&self) -> Vec<String> {
        let log = self.log.lock().expect("log");
        log.iter()
            .map(|q| {
                q.get("event")
                    .map_or("(none)".to_owned(), |e| String::from_utf8_lossy(e).into_owned())
            })
            .collect()
    }

    fn query(&self, n: usize) -> HashMap<String, Vec<u8>> {
        self.log.lock().expect("log")[n].clone()
    }

    /// The client's listening port, from its first announce (waited for, bounded).
    async fn client_port(&self) -> u16 {
        let deadline = Instant::now() + READ_LIMIT;
        loop {
            if let Some(q) = self.log.lock().expect("log").first() {
                return String::from_utf8_lossy(&q["port"]).parse().expect("port");
            }
            assert!(Instant::now() < deadline, "no announce");
            sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn serve_announce(mut stream: TcpStream, answer: Answer, log: AnnounceLog, peers: Arc<Mutex<Vec<SocketAddr>>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        assert!(head.len() < 8192, "announce head too long");
    }
    let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_owned();
    let target = line.split(' ').nth(1).unwrap_or("");
    let query: HashMap<String, Vec<u8>> = target
        .split_once('?')
        .map_or("", |(_, q)| q)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect();
    let first = {
        let mut log = log.lock().expect("log");
        log.push(query);
        log.len() == 1
    };
    let body = match answer {
        Answer::Failure(reason) => format!("d14:failure reason{}:{reason}e", reason.len()).into_bytes(),
        Answer::NoneAtFirst if first => b"d8:intervali1e5:peers0:e".to_vec(),
        Answer::Peers | Answer::NoneAtFirst => {
            let peers = peers.lock().expect("peers").clone();
            let mut body = format!("d8:intervali1e5:peers{}:", peers.len() * 6).into_bytes();
            for peer in peers {
                let SocketAddr::V4(v4) = peer else { continue };
                body.extend_from_slice(&v4.ip().octets());
                body.extend_from_slice(&v4.port().to_be_bytes());
            }
            body.push(b'e');
            body
        }
    };
    let mut reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
    reply.extend_from_slice(&body);
    let _ = stream.write_all(&reply).await;
    let _ = stream.shutdown().await;
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

// ------------------------------------------------------------------ seeders

/// How an in-test seeder behaves.
#[derive(Clone)]
struct Seed {
    have: Vec<bool>,
    /// This piece is served with its first byte flipped.
    corrupt: Option<u32>,
    /// How long after `interested` the unchoke comes.
    unchoke_after: Duration,
    /// Pause before each block (blocks go out one after another).
    serve_every: Duration,
    /// Pause before the first block, on top of `serve_every`.
    hold: Duration,
    /// False: requests are recorded and never answered.
    answers: bool,
}

impl Seed {
    fn pieces(range: std::ops::RangeInclusive<usize>) -> Seed {
        Seed {
            have: (0..PIECES).map(|i| range.contains(&i)).collect(),
            corrupt: None,
            unchoke_after: Duration::ZERO,
            serve_every: Duration::ZERO,
            hold: Duration::ZERO,
            answers: true,
        }
    }

    fn all() -> Seed {
        Seed::pieces(0..=PIECES - 1)
    }
}

/// What a seeder saw of the client.
#[derive(Default, Debug)]
struct SeedLog {
    /// Piece index of every request, in order.
    requests: Vec<u32>,
    cancels: Vec<u32>,
    haves: Vec<u32>,
    /// Requests not yet answered or cancelled, and the most there ever were.
    pending: BTreeSet<(u32, u32)>,
    max_pending: usize,
}

struct Seeder {
    addr: SocketAddr,
    log: Arc<Mutex<SeedLog>>,
    _task: JoinHandle<()>,
}

impl Seeder {
    async fn start(seed: Seed, data: Arc<Vec<u8>>) -> Seeder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind seeder");
        let addr = listener.local_addr().expect("addr");
        let log: Arc<Mutex<SeedLog>> = Arc::default();
        let log2 = log.clone();
        // A peer keeps its id across connections.
        let peer_id = next_peer_id();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(seed_connection(stream, seed.clone(), data.clone(), log2.clone(), peer_id));
            }
        });
        Seeder { addr, log, _task: task }
    }

    fn requests(&self) -> Vec<u32> {
        self.log.lock().expect("log").requests.clone()
    }
}

/// Every in-test peer's id is its own (a client drops a second connection from the same id).
fn next_peer_id() -> [u8; 20] {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut peer_id = *b"-TS0000-000000000000";
    peer_id[8..].copy_from_slice(format!("{n:012}").as_bytes());
    peer_id
}

async fn seed_connection(mut stream: TcpStream, seed: Seed, data: Arc<Vec<u8>>, log: Arc<Mutex<SeedLog>>, peer_id: [u8; 20]) {
    let mut theirs = [0u8; 68];
    if timeout(READ_LIMIT, stream.read_exact(&mut theirs)).await.is_err() || theirs[28..48] != info_hash() {
        return;
    }
    let mut bits = vec![0u8; PIECES.div_ceil(8)];
    for (i, has) in seed.have.iter().enumerate() {
        if *has {
            bits[i / 8] |= 0x80 >> (i % 8);
        }
    }
    let mut hello = handshake(&peer_id);
    hello.extend_from_slice(&frame(5, &bits));
    let (mut read, mut write) = stream.into_split();
    if write.write_all(&hello).await.is_err() {
        return;
    }
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if write.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    // Blocks go out one at a time, each after `serve_every`, unless cancelled meanwhile.
    let (serve_tx, mut serve_rx) = mpsc::unbounded_channel::<(u32, u32, u32)>();
    let (log2, out2, seed2) = (log.clone(), out_tx.clone(), seed.clone());
    let server = tokio::spawn(async move {
        sleep(seed2.hold).await;
        while let Some((index, begin, length)) = serve_rx.recv().await {
            sleep(seed2.serve_every).await;
            if !log2.lock().expect("log").pending.remove(&(index, begin)) {
                continue;
            }
            let start = index as usize * PIECE + begin as usize;
            let mut block = data[start..start + length as usize].to_vec();
            if seed2.corrupt == Some(index) {
                block[0] ^= 0xff;
            }
            let mut payload = index.to_be_bytes().to_vec();
            payload.extend_from_slice(&begin.to_be_bytes());
            payload.extend_from_slice(&block);
            let _ = out2.send(frame(7, &payload));
        }
    });
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 4];
        match timeout(READ_LIMIT, read.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            continue;
        }
        assert!(len <= 1 << 16, "a message of {len} bytes from the client");
        buf.resize(len, 0);
        if !matches!(timeout(READ_LIMIT, read.read_exact(&mut buf)).await, Ok(Ok(_))) {
            break;
        }
        let (id, payload) = (buf[0], &buf[1..]);
        match id {
            2 => {
                let (out, delay) = (out_tx.clone(), seed.unchoke_after);
                tokio::spawn(async move {
                    sleep(delay).await;
                    let _ = out.send(frame(1, &[]));
                });
            }
            4 => log.lock().expect("log").haves.push(be32(payload, 0)),
            6 => {
                let (index, begin, length) = (be32(payload, 0), be32(payload, 4), be32(payload, 8));
                {
                    let mut log = log.lock().expect("log");
                    log.requests.push(index);
                    log.pending.insert((index, begin));
                    log.max_pending = log.max_pending.max(log.pending.len());
                }
                if seed.answers {
                    let _ = serve_tx.send((index, begin, length));
                }
            }
            8 => {
                let mut log = log.lock().expect("log");
                let (index, begin) = (be32(payload, 0), be32(payload, 4));
                log.cancels.push(index);
                log.pending.remove(&(index, begin));
            }
            _ => {}
        }
    }
    server.abort();
    writer.abort();
}

// ------------------------------------------------------------------ the client

struct Run {
    code: i32,
    lines: Vec<String>,
    /// The file the client wrote, if it did.
    saved: Option<Vec<u8>>,
}

/// Starts the client on a torrent announcing to `tracker`, in a folder of its own.
fn spawn_client(tracker: &Tracker, pairs: &[(&str, &str)], extra: &[&str]) -> JoinHandle<Run> {
    let dir = tempfile::tempdir().expect("tempdir");
    let torrent = torrent_for(&tracker.url, dir.path());
    let out_dir = dir.path().join("out");
    let mut args = vec![torrent.display().to_string(), out_dir.display().to_string()];
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut options = opts(&[("stall", "8s")]);
    options.extend(opts(pairs));
    tokio::spawn(async move {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let server: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let code = timeout(RUN_LIMIT, run_client("bt-client", server, &options, &args, tx))
            .await
            .expect("the client did not end in time")
            .expect("the client started");
        let mut lines = Vec::new();
        while let Ok(line) = rx.try_recv() {
            lines.push(line);
        }
        let saved = std::fs::read(out_dir.join("swarm.bin")).ok();
        drop(dir);
        Run { code, lines, saved }
    })
}

async fn run(tracker: &Tracker, pairs: &[(&str, &str)], extra: &[&str]) -> Run {
    spawn_client(tracker, pairs, extra).await.expect("client task")
}

async fn swarm_of(answer: Answer, seeds: Vec<Seed>) -> (Tracker, Vec<Seeder>) {
    let data = swarm_bin();
    let tracker = Tracker::start(answer).await;
    let mut seeders = Vec::new();
    for seed in seeds {
        let seeder = Seeder::start(seed, data.clone()).await;
        tracker.peers.lock().expect("peers").push(seeder.addr);
        seeders.push(seeder);
    }
    (tracker, seeders)
}

/// Waits (bounded) until `done` holds: what the client wrote last may still be on its way.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        sleep(Duration::from_millis(10)).await;
    }
}

fn piece_range(data: &[u8], i: usize) -> &[u8] {
    &data[i * PIECE..(i + 1) * PIECE]
}

// ------------------------------------------------------------------ tests

/// Three seeders with different piece sets; piece 63 only A has, so A is asked for it first.
/// Every seeder unchokes only after 300 ms, so all three bitfields are in by the first request.
fn rare_piece_swarm() -> Vec<Seed> {
    let mut a = Seed::pieces(0..=39);
    a.have[63] = true;
    let b = Seed::pieces(20..=62);
    let mut c = Seed::pieces(0..=62);
    c.corrupt = Some(10);
    let mut seeds = vec![a, b, c];
    for seed in &mut seeds {
        seed.unchoke_after = Duration::from_millis(300);
    }
    seeds
}

#[tokio::test]
async fn downloads_the_swarm_asking_for_the_rare_piece_first() {
    let (tracker, seeders) = swarm_of(Answer::Peers, rare_piece_swarm()).await;
    let result = run(&tracker, &[], &[]).await;
    assert_eq!(result.code, 0, "{:?}", result.lines);
    assert!(result.saved.as_deref() == Some(&swarm_bin()[..]), "the file is not swarm.bin");
    assert!(
        result
            .lines
            .iter()
            .any(|l| l.starts_with("saved swarm.bin (1048576 bytes, 64 pieces)")),
        "{:?}",
        result.lines
    );
    // Piece 63 is the rarest (one holder); every other piece has two or three.
    assert_eq!(
        seeders[0].requests().first(),
        Some(&63),
        "A's requests: {:?}",
        seeders[0].requests()
    );
    // Every seeder heard a `have` for every piece it lacks... and for the others too (to every peer).
    for seeder in &seeders {
        let haves = || seeder.log.lock().expect("log").haves.iter().copied().collect::<BTreeSet<u32>>();
        eventually(&format!("a have for every piece: {:?}", haves()), || haves().len() == PIECES).await;
    }
    // C's piece 10 is corrupt: the file being swarm.bin shows it never got in. Whether C's copy
    // was ever completed (and failed its hash) is scheduling: asked of C, it may have been
    // finished from A first, in the end game; `a_peer_whose_piece_keeps_failing_is_dropped`
    // holds the failure itself.
}

#[tokio::test]
async fn sequential_asks_for_piece_zero_first() {
    let (tracker, seeders) = swarm_of(Answer::Peers, rare_piece_swarm()).await;
    let result = run(&tracker, &[("fault", "sequential")], &[]).await;
    assert_eq!(result.code, 0, "{:?}", result.lines);
    assert_eq!(seeders[0].requests().first(), Some(&0), "A's requests: {:?}", seeders[0].requests());
}

#[tokio::test]
async fn pieces_are_asked_rarest_first_with_random_ties_unless_sequential() {
    for (fault, sequential) in [("", false), ("sequential", true)] {
        let (tracker, seeders) = swarm_of(Answer::Peers, vec![Seed::all()]).await;
        let result = run(&tracker, &[("fault", fault)], &[]).await;
        assert_eq!(result.code, 0, "{:?}", result.lines);
        assert_eq!(result.saved.as_deref(), Some(&swarm_bin()[..]));
        let requests = seeders[0].requests();
        let in_order: Vec<u32> = (0..PIECES as u32).collect();
        // All 64 equally rare: a random order (64! orders; this one is 1 of them).
        assert_eq!(requests == in_order, sequential, "{fault:?}: {requests:?}");
    }
}

#[tokio::test]
async fn a_corrupt_piece_is_fetched_again_from_another_peer_unless_no_verify() {
    for (fault, verifies) in [("", true), ("no-verify", false)] {
        // C serves everything at once, piece 5 corrupt; A unchokes only later.
        let mut c = Seed::all();
        c.corrupt = Some(5);
        let mut a = Seed::all();
        a.unchoke_after = Duration::from_millis(1500);
        let (tracker, seeders) = swarm_of(Answer::Peers, vec![c, a]).await;
        let result = run(&tracker, &[("fault", fault)], &[]).await;
        assert_eq!(result.code, 0, "{fault:?}: {:?}", result.lines);
        let saved = result.saved.expect("saved");
        let fives = |s: &Seeder| s.requests().iter().filter(|&&i| i == 5).count();
        assert_eq!(
            fives(&seeders[0]),
            1,
            "{fault:?}: C asked for piece 5 once: {:?}",
            seeders[0].requests()
        );
        let data = swarm_bin();
        if verifies {
            assert_eq!(&saved[..], &data[..]);
            assert_eq!(fives(&seeders[1]), 1, "A asked for piece 5 again: {:?}", seeders[1].requests());
            assert!(
                result.lines.iter().any(|l| l.contains("piece 5 failed its SHA-1 check")),
                "{:?}",
                result.lines
            );
        } else {
            assert_ne!(piece_range(&saved, 5), piece_range(&data, 5), "the corrupt piece is kept");
            let mut fixed = saved.clone();
            fixed[5 * PIECE] ^= 0xff;
            assert_eq!(&fixed[..], &data[..], "only piece 5's first byte differs");
            assert_eq!(fives(&seeders[1]), 0);
        }
    }
}

#[tokio::test]
async fn at_most_ten_requests_are_outstanding_unless_flooding() {
    for (fault, most) in [("", 10), ("floods-requests", PIECES)] {
        // Nothing is answered for 300 ms: every request the client will have out at once is in.
        let mut slow = Seed::all();
        slow.hold = Duration::from_millis(300);
        slow.serve_every = Duration::from_millis(5);
        let (tracker, seeders) = swarm_of(Answer::Peers, vec![slow]).await;
        let result = run(&tracker, &[("fault", fault)], &[]).await;
        assert_eq!(result.code, 0, "{fault:?}: {:?}", result.lines);
        assert_eq!(result.saved.as_deref(), Some(&swarm_bin()[..]));
        let max = seeders[0].log.lock().expect("log").max_pending;
        assert_eq!(max, most, "{fault:?}: most requests outstanding at once");
    }
}

#[tokio::test]
async fn end_game_asks_again_and_cancels_the_duplicates() {
    // B unchokes and takes requests but never answers them: its blocks come from A in the end game.
    let mut mute = Seed::all();
    mute.answers = false;
    let (tracker, seeders) = swarm_of(Answer::Peers, vec![Seed::all(), mute]).await;
    let started = Instant::now();
    let result = run(&tracker, &[], &[]).await;
    assert_eq!(result.code, 0, "{:?}", result.lines);
    assert_eq!(result.saved.as_deref(), Some(&swarm_bin()[..]));
    // Well before a request is given up on (20 s): the end game did it.
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    let mute = &seeders[1].log;
    let asked: BTreeSet<u32> = mute.lock().expect("log").requests.iter().copied().collect();
    assert!(!asked.is_empty(), "B was asked for nothing");
    let cancelled = || mute.lock().expect("log").cancels.iter().copied().collect::<BTreeSet<u32>>();
    eventually(
        &format!("every block asked of B ({asked:?}) cancelled once A sent it: {:?}", cancelled()),
        || cancelled() == asked,
    )
    .await;
}

#[tokio::test]
async fn announces_started_regularly_completed_and_stopped_unless_no_stopped() {
    for (fault, stopped) in [("", true), ("no-stopped", false)] {
        let mut slow = Seed::all();
        slow.serve_every = Duration::from_millis(25);
        let (tracker, _seeders) = swarm_of(Answer::Peers, vec![slow]).await;
        let result = run(&tracker, &[("fault", fault)], &[]).await;
        assert_eq!(result.code, 0, "{fault:?}: {:?}", result.lines);
        let events = tracker.events();
        assert_eq!(events.first().map(String::as_str), Some("started"), "{events:?}");
        // 64 blocks at 25 ms: over a second and a half, with interval 1.
        assert!(events.iter().any(|e| e == "(none)"), "no regular re-announce: {events:?}");
        let tail: Vec<&str> = events
            .iter()
            .rev()
            .take(if stopped { 2 } else { 1 })
            .rev()
            .map(String::as_str)
            .collect();
        let want: &[&str] = if stopped { &["completed", "stopped"] } else { &["completed"] };
        assert_eq!(tail, want, "{fault:?}: {events:?}");
        assert!(!stopped || events.iter().filter(|e| *e == "stopped").count() == 1);
        assert!(stopped || !events.iter().any(|e| e == "stopped"), "{events:?}");
        let first = tracker.query(0);
        assert_eq!(first["info_hash"], info_hash());
        assert_eq!(first["peer_id"].len(), 20);
        assert_eq!(first["left"], b"1048576");
        assert_eq!(first["compact"], b"1");
        let completed = tracker.query(events.iter().position(|e| e == "completed").expect("completed"));
        assert_eq!(completed["left"], b"0");
        assert_eq!(completed["downloaded"], b"1048576");
    }
}

#[tokio::test]
async fn learns_later_peers_by_re_announcing_unless_ignoring_the_interval() {
    for (fault, completes) in [("", true), ("ignores-interval", false)] {
        // The first answer has no peers: only a re-announce finds the seeder.
        let (tracker, _seeders) = swarm_of(Answer::NoneAtFirst, vec![Seed::all()]).await;
        let result = run(&tracker, &[("fault", fault), ("stall", "3s")], &[]).await;
        let events = tracker.events();
        if completes {
            assert_eq!(result.code, 0, "{:?}", result.lines);
            assert!(events.len() >= 3, "{events:?}");
        } else {
            assert_eq!(result.code, 1, "{:?}", result.lines);
            assert!(result.saved.is_none());
            assert_eq!(events, ["started", "stopped"], "only the first announce, then giving up");
            assert!(
                result.lines.iter().any(|l| l.starts_with("error: no piece verified")),
                "{:?}",
                result.lines
            );
        }
    }
}

#[tokio::test]
async fn a_failure_reason_ends_the_client_with_an_error() {
    let (tracker, _) = swarm_of(Answer::Failure("unknown torrent"), vec![]).await;
    let result = run(&tracker, &[], &[]).await;
    assert_eq!(result.code, 1);
    assert_eq!(result.lines, ["error: the tracker refused: unknown torrent"]);
    assert_eq!(tracker.events(), ["started"]);
}

/// A leecher that connects to the client, says interested, and once unchoked asks for a piece
/// the client announced with `have`. Returns (unchoked, haves seen, the piece's bytes right).
async fn leech(addr: SocketAddr, data: Arc<Vec<u8>>) -> (bool, usize, Option<bool>) {
    let mut stream = timeout(READ_LIMIT, TcpStream::connect(addr))
        .await
        .expect("connect")
        .expect("connect");
    let mut hello = handshake(&next_peer_id());
    hello.extend_from_slice(&frame(2, &[]));
    stream.write_all(&hello).await.expect("handshake");
    let mut theirs = [0u8; 68];
    timeout(READ_LIMIT, stream.read_exact(&mut theirs))
        .await
        .expect("handshake")
        .expect("handshake");
    assert_eq!(theirs[28..48], info_hash());
    let (mut unchoked, mut haves, mut asked, mut right) = (false, Vec::new(), false, None);
    while let Some((id, payload)) = read_message(&mut stream).await {
        match id {
            0 => unchoked = false,
            1 => unchoked = true,
            4 => haves.push(be32(&payload, 0)),
            5 => {
                for i in 0..PIECES {
                    if payload[i / 8] & (0x80 >> (i % 8)) != 0 {
                        haves.push(i as u32);
                    }
                }
            }
            7 => {
                let index = be32(&payload, 0) as usize;
                right = Some(payload[8..] == *piece_range(&data, index));
            }
            _ => {}
        }
        if unchoked && !asked {
            if let Some(&index) = haves.first() {
                let request: Vec<u8> = [index, 0, PIECE as u32].iter().flat_map(|n| n.to_be_bytes()).collect();
                stream.write_all(&frame(6, &request)).await.expect("request");
                asked = true;
            }
        }
    }
    (unchoked || right.is_some(), haves.len(), right)
}

#[tokio::test]
async fn unchokes_an_interested_peer_and_serves_it_unless_never_unchokes() {
    for (fault, unchokes) in [("", true), ("never-unchokes", false)] {
        let mut slow = Seed::all();
        slow.serve_every = Duration::from_millis(30);
        let (tracker, _seeders) = swarm_of(Answer::Peers, vec![slow]).await;
        let client = spawn_client(&tracker, &[("fault", fault)], &["--rechoke", "0.2", "--optimistic", "0.5"]);
        let port = tracker.client_port().await;
        let (unchoked, haves, right) = leech(SocketAddr::from(([127, 0, 0, 1], port)), swarm_bin()).await;
        let result = client.await.expect("client task");
        assert_eq!(result.code, 0, "{fault:?}: {:?}", result.lines);
        assert!(haves > 0, "{fault:?}: the leecher heard no have");
        assert_eq!(unchoked, unchokes, "{fault:?}");
        assert_eq!(right, unchokes.then_some(true), "{fault:?}: the piece served");
    }
}

#[tokio::test]
async fn a_peer_with_another_info_hash_is_ignored() {
    // A listener that answers with another torrent's handshake and a full bitfield.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let liar = listener.local_addr().expect("addr");
    let lies = tokio::spawn(async move {
        let mut served = 0;
        while let Ok(Ok((mut stream, _))) = timeout(READ_LIMIT, listener.accept()).await {
            let mut hello = b"\x13BitTorrent protocol\0\0\0\0\0\0\0\0".to_vec();
            hello.extend_from_slice(&[0x42; 20]);
            hello.extend_from_slice(b"-TX0000-000000000000");
            hello.extend_from_slice(&frame(5, &[0xff; 8]));
            let _ = stream.write_all(&hello).await;
            let mut sink = Vec::new();
            let _ = timeout(Duration::from_secs(2), stream.read_to_end(&mut sink)).await;
            served += 1;
        }
        served
    });
    let (tracker, seeders) = swarm_of(Answer::Peers, vec![Seed::all()]).await;
    tracker.peers.lock().expect("peers").insert(0, liar);
    let result = run(&tracker, &[], &[]).await;
    assert_eq!(result.code, 0, "{:?}", result.lines);
    assert_eq!(result.saved.as_deref(), Some(&swarm_bin()[..]));
    assert_eq!(seeders[0].requests().len(), PIECES);
    lies.abort();
}

#[tokio::test]
async fn a_peer_whose_piece_keeps_failing_is_dropped() {
    // The only holder of piece 5 always sends it corrupt: asked three times, then dropped for good.
    let mut c = Seed::all();
    c.corrupt = Some(5);
    let (tracker, seeders) = swarm_of(Answer::Peers, vec![c]).await;
    let result = run(&tracker, &[("stall", "2s")], &[]).await;
    assert_eq!(result.code, 1, "{:?}", result.lines);
    assert!(result.saved.is_none());
    let fives = seeders[0].requests().iter().filter(|&&i| i == 5).count();
    assert_eq!(fives, 3, "{:?}", seeders[0].requests());
    assert!(
        result
            .lines
            .iter()
            .any(|l| l.starts_with("dropped a peer: its blocks were in 3 pieces")),
        "{:?}",
        result.lines
    );
}
