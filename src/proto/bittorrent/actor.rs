//! The swarm actor: the peers of a torrent, played by the harness for a BitTorrent client under
//! test. Each peer listens on its own loopback address, on the port every actor of the case
//! shares (the tracker actor names them there), and behaves as its declaration says: which
//! pieces it has, how fast it uploads, when it unchokes, which piece it corrupts, when it leaves
//! or joins. It speaks the peer wire with the protocol's own codec and encoder.
//!
//! ```yaml
//! actors:
//!   - name: swarm
//!     host: 127.0.0.11                    # the first peer's address (the runner binds it)
//!     bittorrent:
//!       torrent: ../fixtures/bittorrent/swarm.torrent
//!       file: ../fixtures/bittorrent/swarm.bin     # the torrent's content
//!       peers:
//!         - { host: 127.0.0.11 }                     # every piece, as fast as it can, unchokes when asked
//!         - host: 127.0.0.12
//!           have: "0-40,42-63"      # all (default), none, even, odd, or ranges of piece indexes
//!           rate: 32k               # bytes per second it uploads (k = 1024)
//!           unchoke: 500ms          # interested (default: as soon as the client says so), never, or a delay
//!           corrupt: [9]            # pieces it sends with one byte flipped
//!           leave_after: 8          # blocks it sends before it closes and stops listening
//!           cut_mid_piece: true     # ... the last one cut off halfway through its piece message
//!           join_after: 2s          # listens only from then on
//!           info_hash: "0123…"      # answers handshakes with another torrent's info-hash
//!           max_requests: 10        # requests the client may keep outstanding (sent as BEP 10 reqq)
//!           download: true          # asks the client for the pieces it lacks, once unchoked
//! ```
//! A case may give its own peers: `serve: { actors: [swarm], with: { swarm: { peers: [...] } } }`.
//!
//! What a peer holds against the client (the case fails): a handshake for another torrent, more
//! requests outstanding than `max_requests`, a block the client uploads with the wrong bytes.
//! What it notes to explain a failure: requests while choked, for pieces it does not have, or
//! over 16 KiB (each is passed over, as BEP 3 has it), and encrypted handshakes it drops at once
//! (clients that try the encrypted handshake first fall back to the plain one).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout, Instant};

use super::bencode::Build;
use super::codec::{Block, PeerCodec, PeerMessage};
use super::metainfo::{Metainfo, BLOCK};
use super::steps::wire;
use crate::proto::common::actor::{ActorHandle, ActorKind, ActorLog, ActorOptions, ActorSpec, Bound};
use crate::proto::{Codec, Direction, Frame, Transport};
use crate::syntax::{Data, LoadCx, Node};

/// A client's handshake must arrive within this.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// A connection with nothing read for this long is closed (BEP 3 peers send keep-alives every
/// two minutes; a case is over long before).
const IDLE: Duration = Duration::from_secs(60);
/// A write to a client that does not read fails after this long.
const WRITE: Duration = Duration::from_secs(20);
/// Requests a peer keeps queued, whatever `max_requests` says: past it, more are dropped.
const MAX_QUEUE: usize = 1024;
/// Connections a peer serves at once.
const MAX_CONNECTIONS: usize = 16;
/// Most peers a swarm declares.
const MAX_PEERS: usize = 32;

/// The `bittorrent:` actor vocabulary.
pub static ACTOR: ActorKind = ActorKind {
    key: "bittorrent",
    faults: &[],
    parse,
    options: Some(parse_options),
};

/// When a peer unchokes the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unchoke {
    /// As soon as the client says it is interested.
    Interested,
    /// Never.
    Never,
    /// Once the client is interested and this long has passed since the handshake.
    After(Duration),
}

/// One declared peer.
#[derive(Debug, Clone)]
struct PeerSpec {
    host: IpAddr,
    have: Vec<bool>,
    rate: Option<u64>,
    unchoke: Unchoke,
    corrupt: Vec<u32>,
    leave_after: Option<u32>,
    cut_mid_piece: bool,
    join_after: Option<Duration>,
    info_hash: Option<[u8; 20]>,
    max_requests: Option<usize>,
    download: bool,
}

/// A declared swarm: the torrent, its content, and the peers.
struct Swarm {
    torrent: Arc<Metainfo>,
    content: Arc<[u8]>,
    peers: Vec<PeerSpec>,
}

impl std::fmt::Debug for Swarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swarm")
            .field("torrent", &self.torrent.name)
            .field("peers", &self.peers.len())
            .finish()
    }
}

/// A case's own peers (`with: { swarm: { peers: [...] } }`).
struct Options {
    peers: Vec<PeerSpec>,
}

fn parse(node: &Node, cx: &mut LoadCx) -> Option<Arc<dyn ActorSpec>> {
    let f = cx.fields(node, &["torrent", "file", "peers"], "a swarm actor")?;
    let (Some(t), Some(d)) = (f.get("torrent"), f.get("file")) else {
        cx.err_help(
            node,
            "a swarm needs 'torrent' and 'file'",
            "e.g. bittorrent: { torrent: ../fixtures/bittorrent/swarm.torrent, file: ../fixtures/bittorrent/swarm.bin, peers: [{ host: 127.0.0.11 }] }",
        );
        return None;
    };
    let fixture = cx.fixture(t, "torrent")?;
    let torrent = match Metainfo::parse(&fixture.bytes) {
        Ok(m) => m,
        Err(e) => {
            cx.err(t, format!("{} is not a torrent: {e}", fixture.display()));
            return None;
        }
    };
    let content = cx.fixture(d, "file")?;
    if content.bytes.len() as u64 != torrent.total_length() {
        cx.err(
            d,
            format!(
                "{} holds {} bytes; the torrent describes {}",
                content.display(),
                content.bytes.len(),
                torrent.total_length()
            ),
        );
        return None;
    }
    if let Some(bad) = (0..torrent.piece_count()).find(|&i| {
        let len = torrent.piece_len(i).unwrap_or(0) as u32;
        !torrent.block(&content.bytes, i, 0, len).is_ok_and(|b| torrent.verifies(i, b))
    }) {
        cx.err(
            d,
            format!("piece {bad} of {} does not match the torrent's SHA-1", content.display()),
        );
        return None;
    }
    let peers = match f.get("peers") {
        Some(p) => parse_peers(p, torrent.piece_count(), cx)?,
        None => {
            cx.err_help(
                node,
                "a swarm needs 'peers'",
                "e.g. peers: [{ host: 127.0.0.11 }, { host: 127.0.0.12, rate: 32k }]",
            );
            return None;
        }
    };
    Some(Arc::new(Swarm {
        torrent: Arc::new(torrent),
        content: content.bytes,
        peers,
    }))
}

fn parse_options(node: &Node, cx: &mut LoadCx) -> Option<ActorOptions> {
    let f = cx.fields(node, &["peers"], "swarm options")?;
    let Some(p) = f.get("peers") else {
        cx.err_help(
            node,
            "swarm options give 'peers'",
            "e.g. with: { swarm: { peers: [{ host: 127.0.0.11 }] } }",
        );
        return None;
    };
    // The piece count is the declared torrent's; ranges are checked against it when it starts.
    let peers = parse_peers(p, u32::MAX, cx)?;
    Some(Arc::new(Options { peers }))
}

fn parse_peers(node: &Node, pieces: u32, cx: &mut LoadCx) -> Option<Vec<PeerSpec>> {
    let Data::Seq(items) = &node.data else {
        cx.err_help(node, "peers is a list", "e.g. peers: [{ host: 127.0.0.11 }, { host: 127.0.0.12 }]");
        return None;
    };
    if items.is_empty() || items.len() > MAX_PEERS {
        cx.err(node, format!("a swarm has 1 to {MAX_PEERS} peers"));
        return None;
    }
    let mut out: Vec<PeerSpec> = Vec::new();
    for item in items {
        let p = parse_peer(item, pieces, cx)?;
        if out.iter().any(|q| q.host == p.host) {
            cx.err(item, format!("two peers on {}: each peer has an address of its own", p.host));
            return None;
        }
        out.push(p);
    }
    Some(out)
}

fn parse_peer(node: &Node, pieces: u32, cx: &mut LoadCx) -> Option<PeerSpec> {
    let keys = [
        "host",
        "have",
        "rate",
        "unchoke",
        "corrupt",
        "leave_after",
        "cut_mid_piece",
        "join_after",
        "info_hash",
        "max_requests",
        "download",
    ];
    let f = cx.fields(node, &keys, "a peer")?;
    let Some(h) = f.get("host") else {
        cx.err_help(
            node,
            "a peer needs 'host'",
            "e.g. { host: 127.0.0.12 }: a loopback address of its own",
        );
        return None;
    };
    let host: IpAddr = match h.as_str().map(str::parse) {
        Some(Ok(ip)) => ip,
        _ => {
            cx.err_help(h, "host must be an IP address", "e.g. host: 127.0.0.12");
            return None;
        }
    };
    let n = if pieces == u32::MAX { 1 << 16 } else { pieces as usize };
    let have = match f.get("have") {
        None => vec![true; n],
        Some(v) => parse_have(v, n, cx)?,
    };
    let rate = match f.get("rate") {
        None => None,
        Some(v) => Some(parse_rate(v, cx)?),
    };
    let unchoke = match f.get("unchoke") {
        None => Unchoke::Interested,
        Some(v) if v.is_keyword("interested") => Unchoke::Interested,
        Some(v) if v.is_keyword("never") => Unchoke::Never,
        Some(v) => Unchoke::After(cx.duration(v, "unchoke")?),
    };
    let corrupt = match f.get("corrupt") {
        None => Vec::new(),
        Some(v) => match &v.data {
            Data::Seq(items) => items.iter().map(|i| cx.number::<u32>(i, "a piece index")).collect::<Option<_>>()?,
            _ => {
                cx.err_help(v, "corrupt is a list of piece indexes", "e.g. corrupt: [9]");
                return None;
            }
        },
    };
    let info_hash = match f.get("info_hash") {
        None => None,
        Some(v) => match v
            .as_str()
            .and_then(super::bencode::unhex)
            .and_then(|b| <[u8; 20]>::try_from(b).ok())
        {
            Some(h) => Some(h),
            None => {
                cx.err_help(
                    v,
                    "info_hash is 40 hex digits",
                    "e.g. info_hash: \"0123456789abcdef0123456789abcdef01234567\"",
                );
                return None;
            }
        },
    };
    let flag = |cx: &mut LoadCx, key: &str| f.get(key).map(|v| cx.boolean(v, key)).unwrap_or(Some(false));
    Some(PeerSpec {
        host,
        have,
        rate,
        unchoke,
        corrupt,
        leave_after: match f.get("leave_after") {
            Some(v) => Some(cx.number(v, "leave_after")?),
            None => None,
        },
        cut_mid_piece: flag(cx, "cut_mid_piece")?,
        join_after: match f.get("join_after") {
            Some(v) => Some(cx.duration(v, "join_after")?),
            None => None,
        },
        info_hash,
        max_requests: match f.get("max_requests") {
            Some(v) => Some(cx.number(v, "max_requests")?),
            None => None,
        },
        download: flag(cx, "download")?,
    })
}

/// `all`, `none`, or ranges of indexes (`"0-40,42-63"`), as a flag per piece.
fn parse_have(v: &Node, n: usize, cx: &mut LoadCx) -> Option<Vec<bool>> {
    if v.is_keyword("all") {
        return Some(vec![true; n]);
    }
    if v.is_keyword("none") {
        return Some(vec![false; n]);
    }
    if v.is_keyword("even") || v.is_keyword("odd") {
        let odd = v.is_keyword("odd");
        return Some((0..n).map(|i| (i % 2 == 1) == odd).collect());
    }
    let text = cx.string(v, "have")?;
    let mut have = vec![false; n];
    for part in text.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        match (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
            (Ok(a), Ok(b)) if a <= b && b < n => have[a..=b].iter_mut().for_each(|h| *h = true),
            _ => {
                cx.err_help(
                    v,
                    format!("'{part}' is not a range of piece indexes below {n}"),
                    "e.g. have: \"0-40,42-63\", or all, none, even, odd",
                );
                return None;
            }
        }
    }
    Some(have)
}

/// A rate in bytes per second: `48k` (k = 1024), `2048`.
fn parse_rate(v: &Node, cx: &mut LoadCx) -> Option<u64> {
    let text = cx.string(v, "rate")?;
    let (digits, mult) = match text.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1024),
        None => (text.as_str(), 1),
    };
    match digits.trim().parse::<u64>() {
        Ok(n) if n > 0 => Some(n * mult),
        _ => {
            cx.err_help(v, "rate is bytes per second above 0", "e.g. rate: 48k (k = 1024 bytes)");
            None
        }
    }
}

impl ActorSpec for Swarm {
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }

    fn well_known_port(&self) -> u16 {
        6881
    }

    fn start(&self, sockets: Bound, faults: &[String], log: Arc<dyn ActorLog>) -> ActorHandle {
        self.start_with(sockets, faults, None, log)
    }

    fn start_with(&self, sockets: Bound, _faults: &[String], options: Option<&ActorOptions>, log: Arc<dyn ActorLog>) -> ActorHandle {
        let mut peers = match options.and_then(|o| o.clone().downcast::<Options>().ok()) {
            Some(o) => o.peers.clone(),
            None => self.peers.clone(),
        };
        let n = self.torrent.piece_count() as usize;
        for p in &mut peers {
            p.have.resize(n, false);
        }
        let Some(listener) = sockets.tcp else {
            return ActorHandle::default();
        };
        let Ok(bound) = listener.local_addr() else {
            return ActorHandle::default();
        };
        let (open_tx, open_rx) = tokio::sync::watch::channel(0usize);
        let open = Arc::new(open_tx);
        let mut first = Some(listener);
        let mut tasks = Vec::new();
        for spec in peers {
            let addr = SocketAddr::new(spec.host, bound.port());
            // The runner bound the actor's own host; the other peers bind theirs on its port.
            let mine = match first.as_ref().and_then(|l| l.local_addr().ok()) {
                Some(a) if a.ip() == spec.host => first.take(),
                _ => None,
            };
            let peer = Arc::new(Peer {
                spec,
                torrent: self.torrent.clone(),
                content: self.content.clone(),
                log: log.clone(),
                open: open.clone(),
                sent_blocks: std::sync::atomic::AtomicU32::new(0),
                gone: tokio::sync::watch::channel(false).0,
            });
            tasks.push(tokio::spawn(peer.listen(addr, mine)));
        }
        ActorHandle::counting(tasks, open_rx)
    }
}

/// One peer of the swarm while it runs.
struct Peer {
    spec: PeerSpec,
    torrent: Arc<Metainfo>,
    content: Arc<[u8]>,
    log: Arc<dyn ActorLog>,
    open: Arc<tokio::sync::watch::Sender<usize>>,
    /// Blocks sent over every connection, for `leave_after`.
    sent_blocks: std::sync::atomic::AtomicU32,
    /// True once the peer has left the swarm: its listener and its connections close.
    gone: tokio::sync::watch::Sender<bool>,
}

impl Peer {
    async fn listen(self: Arc<Peer>, addr: SocketAddr, bound: Option<TcpListener>) {
        if let Some(d) = self.spec.join_after {
            sleep(d).await;
        }
        let listener = match bound {
            Some(l) => l,
            None => match bind(addr) {
                Ok(l) => l,
                Err(e) => {
                    self.log.hint(0, &format!("the swarm's peer {addr} could not listen: {e}"));
                    return;
                }
            },
        };
        let mut sessions = tokio::task::JoinSet::new();
        let mut gone = self.gone.subscribe();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = gone.wait_for(|g| *g) => break,
            };
            let Ok((stream, from)) = accepted else {
                sleep(Duration::from_millis(10)).await;
                continue;
            };
            while sessions.try_join_next().is_some() {}
            if sessions.len() >= MAX_CONNECTIONS {
                continue;
            }
            let me = self.clone();
            sessions.spawn(async move {
                me.open.send_modify(|n| *n += 1);
                let conv = me.log.open(Transport::Tcp, addr, from);
                match me.clone().session(stream, conv).await {
                    End::Client => me.log.closed(conv),
                    End::Reset => me.log.reset(conv),
                    End::Actor => me.log.closed_by_actor(conv),
                }
                me.open.send_modify(|n| *n = n.saturating_sub(1));
            });
        }
        // Leaving: no one can connect any more; the open sessions saw `left` too.
        drop(listener);
        while sessions.join_next().await.is_some() {}
    }

    /// Serves one connection; says who ended it, and how.
    async fn session(self: Arc<Peer>, stream: TcpStream, conv: usize) -> End {
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Option<PeerMessage>>(256);
        let log = self.log.clone();
        let reset = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let was_reset = reset.clone();
        // The reader frames what the client sends with the protocol's codec and hands each
        // message over; None when the client closed, or sent what is not the peer wire.
        let reader = tokio::spawn(async move {
            let mut codec = PeerCodec::new();
            let mut buf: Vec<u8> = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = match timeout(IDLE, rd.read(&mut chunk)).await {
                    Ok(Ok(0)) | Err(_) => break,
                    Ok(Err(_)) => {
                        was_reset.store(true, std::sync::atomic::Ordering::SeqCst);
                        break;
                    }
                    Ok(Ok(n)) => n,
                };
                log.data(conv, Direction::ClientToServer, &chunk[..n]);
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    match codec.decode(&buf, false) {
                        Ok(Frame::Message(m, used)) => {
                            buf.drain(..used);
                            let Some(pm) = m.detail.and_then(|d| d.downcast::<PeerMessage>().ok()) else {
                                continue;
                            };
                            if tx.send(Some((*pm).clone())).await.is_err() {
                                return;
                            }
                        }
                        Ok(Frame::Incomplete) => break,
                        Err(_) => {
                            let _ = tx.send(None).await;
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(None).await;
        });
        let by_peer = self.serve(&mut wr, &mut rx, conv).await;
        // Our FIN after every byte written; then what the client still sends is read until it
        // closes too (at most a second): closing with its bytes unread would reset the
        // connection, and the kernel would drop what the peer had written but not yet sent.
        let _ = timeout(Duration::from_secs(1), wr.shutdown()).await;
        if !by_peer {
            let drain = async { while let Some(Some(_)) = rx.recv().await {} };
            let _ = timeout(Duration::from_secs(1), drain).await;
        }
        reader.abort();
        match (by_peer, reset.load(std::sync::atomic::Ordering::SeqCst)) {
            (true, true) => End::Reset,
            (true, false) => End::Client,
            (false, _) => End::Actor,
        }
    }

    async fn write(&self, wr: &mut tokio::net::tcp::OwnedWriteHalf, conv: usize, bytes: &[u8]) -> bool {
        match timeout(WRITE, wr.write_all(bytes)).await {
            Ok(Ok(())) => {
                self.log.data(conv, Direction::ServerToClient, bytes);
                true
            }
            _ => false,
        }
    }

    /// The conversation after the accept: true when the client ended it.
    async fn serve(&self, wr: &mut tokio::net::tcp::OwnedWriteHalf, rx: &mut mpsc::Receiver<Option<PeerMessage>>, conv: usize) -> bool {
        let start = Instant::now();
        // The client's handshake first: clients that try an encrypted handshake (MSE) first
        // send bytes the codec does not take for the peer wire; the peer drops them at once, and
        // such clients then connect again in the clear.
        let hello = match timeout(HANDSHAKE, rx.recv()).await {
            Ok(Some(Some(m))) => m,
            Ok(_) => return true,
            Err(_) => return false,
        };
        let PeerMessage::Handshake { reserved, info_hash, .. } = hello else {
            if matches!(hello, PeerMessage::Opaque(_)) {
                self.log.hint(conv, "the client opened with bytes that are not the BitTorrent handshake (an encrypted handshake?): the peer closed that connection");
            }
            return false;
        };
        if info_hash != self.torrent.info_hash {
            self.log.violation(
                conv,
                &format!(
                    "the client's handshake names info-hash {}, not the torrent's {} (BEP 3: the SHA-1 of the bencoded info value)",
                    super::bencode::hex(&info_hash),
                    self.torrent.info_hash_hex()
                ),
            );
            return false;
        }
        // BEP 10 when both sides set its bit: the extension handshake tells the limit as reqq.
        let extended = reserved[5] & 0x10 != 0 && self.spec.max_requests.is_some();
        let mut ours = [0u8; 8];
        if extended {
            ours[5] |= 0x10;
        }
        let peer_id = peer_id_of(self.spec.host);
        let hs = PeerMessage::Handshake {
            reserved: ours,
            info_hash: self.spec.info_hash.unwrap_or(self.torrent.info_hash),
            peer_id,
        };
        if !self.write(wr, conv, &wire(&hs)).await {
            return false;
        }
        if extended {
            let reqq = self.spec.max_requests.unwrap_or(250) as i64;
            let payload = Build::dict([("m", Build::Dict(Vec::new())), ("reqq", Build::Int(reqq))]).encode();
            let m = PeerMessage::Extended { id: 0, payload };
            if !self.write(wr, conv, &wire(&m)).await {
                return false;
            }
        }
        if self.spec.have.iter().any(|h| *h) && !self.write(wr, conv, &wire(&PeerMessage::Bitfield(bits(&self.spec.have)))).await {
            return false;
        }
        let first_wait = self
            .spec
            .rate
            .map_or(Duration::ZERO, |r| Duration::from_secs_f64(f64::from(BLOCK) / r as f64));
        let mut s = State {
            client_has: vec![false; self.spec.have.len()],
            next_send: Instant::now() + first_wait,
            ..State::default()
        };
        let mut gone = self.gone.subscribe();
        loop {
            // What to do next: answer a queued request, ask for a piece, or wait for a message.
            if *gone.borrow() {
                return false;
            }
            let unchoke_due = match self.spec.unchoke {
                Unchoke::Interested => Some(start),
                Unchoke::Never => None,
                Unchoke::After(d) => Some(start + d),
            };
            if s.choking && s.interested {
                if let Some(at) = unchoke_due.filter(|at| *at <= Instant::now()) {
                    let _ = at;
                    s.choking = false;
                    if !self.write(wr, conv, &wire(&PeerMessage::Unchoke)).await {
                        return false;
                    }
                }
            }
            let wants = self.spec.have.iter().zip(&s.client_has).any(|(h, c)| !h && *c);
            if wants != s.am_interested {
                s.am_interested = wants;
                let m = if wants {
                    PeerMessage::Interested
                } else {
                    PeerMessage::NotInterested
                };
                if !self.write(wr, conv, &wire(&m)).await {
                    return false;
                }
            }
            if self.spec.download && !s.choked_by_client && s.asked.is_none() {
                if let Some(index) =
                    (0..s.client_has.len()).find(|&i| s.client_has[i] && !self.spec.have[i] && !s.got.contains(&(i as u32)))
                {
                    let len = self.torrent.piece_len(index as u32).unwrap_or(0).min(u64::from(BLOCK)) as u32;
                    let b = Block {
                        index: index as u32,
                        begin: 0,
                        length: len,
                    };
                    s.asked = Some(b);
                    if !self.write(wr, conv, &wire(&PeerMessage::Request(b))).await {
                        return false;
                    }
                }
            }
            // A rate-limited peer sends each block whole once the time its bytes take at that
            // rate has passed (messages never interleave, so it stays free to say interested
            // or read a cancel meanwhile).
            if !s.choking && !s.queue.is_empty() && s.next_send <= Instant::now() {
                if let Some(b) = s.queue.pop_front() {
                    match self.send_block(wr, conv, b).await {
                        Sent::Ok => {
                            if let Some(rate) = self.spec.rate {
                                let wait = Duration::from_secs_f64(f64::from(b.length) / rate as f64);
                                // No credit saved up while the peer had nothing to send.
                                let floor = Instant::now().checked_sub(wait).unwrap_or_else(Instant::now);
                                s.next_send = s.next_send.max(floor) + wait;
                            }
                            continue;
                        }
                        Sent::Closed => return false,
                    }
                }
            }
            // Nothing to send now: wait for the client, a delayed unchoke, or the next block's turn.
            let wake = match unchoke_due {
                Some(at) if s.choking && s.interested && at > Instant::now() => at,
                _ if !s.choking && !s.queue.is_empty() => s.next_send,
                _ => Instant::now() + IDLE,
            };
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = tokio::time::sleep_until(wake) => continue,
                _ = gone.wait_for(|g| *g) => return false,
            };
            let Some(Some(m)) = msg else { return true };
            if !self.take(m, conv, &mut s) {
                return false;
            }
        }
    }

    /// Applies a message from the client; false when the peer closes the connection over it.
    fn take(&self, m: PeerMessage, conv: usize, s: &mut State) -> bool {
        match m {
            PeerMessage::Interested => s.interested = true,
            PeerMessage::NotInterested => s.interested = false,
            PeerMessage::Choke => s.choked_by_client = true,
            PeerMessage::Unchoke => s.choked_by_client = false,
            PeerMessage::Have(i) => {
                if let Some(h) = s.client_has.get_mut(i as usize) {
                    *h = true;
                }
            }
            PeerMessage::Bitfield(b) => {
                for (i, h) in s.client_has.iter_mut().enumerate() {
                    *h = b.get(i / 8).is_some_and(|byte| byte & (0x80 >> (i % 8)) != 0);
                }
            }
            PeerMessage::HaveAll => s.client_has.iter_mut().for_each(|h| *h = true),
            PeerMessage::Request(b) => {
                if s.choking {
                    self.log.hint(
                        conv,
                        &format!(
                            "the client requested piece {} while this peer ({}) was choking it: BEP 3, \"no data will be sent until unchoking happens\"; the request was passed over",
                            b.index, self.spec.host
                        ),
                    );
                } else if !self.spec.have.get(b.index as usize).copied().unwrap_or(false) {
                    self.log.hint(
                        conv,
                        &format!(
                            "the client requested piece {} from a peer ({}) whose bitfield does not have it; the request was passed over",
                            b.index, self.spec.host
                        ),
                    );
                } else if b.length > BLOCK || b.length == 0 || self.torrent.block(&self.content, b.index, b.begin, b.length).is_err() {
                    self.log.hint(
                        conv,
                        &format!(
                            "the client requested {} bytes at {} of piece {}: not a block of it of at most 16 KiB (BEP 3); the peer closed the connection",
                            b.length, b.begin, b.index
                        ),
                    );
                    return false;
                } else if s.queue.len() < MAX_QUEUE {
                    s.queue.push_back(b);
                    if let Some(max) = self.spec.max_requests {
                        if s.queue.len() > max && !s.over_limit {
                            s.over_limit = true;
                            self.log.violation(
                                conv,
                                &format!(
                                    "the client kept more than {max} requests outstanding on one connection, the limit (the suite's rule, sent as BEP 10 reqq to clients that speak the extension protocol): keep a bounded pipeline per peer"
                                ),
                            );
                        }
                    }
                }
            }
            PeerMessage::Cancel(b) => s.queue.retain(|q| *q != b),
            PeerMessage::Piece { index, begin, data } => {
                let want = self.torrent.block(&self.content, index, begin, data.len() as u32);
                if s.asked.is_some_and(|a| a.index == index && a.begin == begin) {
                    s.asked = None;
                }
                match want {
                    Ok(w) if w == data.as_slice() => {
                        s.got.push(index);
                    }
                    _ => self.log.violation(
                        conv,
                        &format!(
                            "the client uploaded {} bytes at {begin} of piece {index} that are not the torrent's (BEP 3: a peer sends only pieces it has checked against their SHA-1)",
                            data.len()
                        ),
                    ),
                }
            }
            _ => {}
        }
        true
    }

    /// Sends one block whole (or half of it, when the peer leaves mid-piece).
    async fn send_block(&self, wr: &mut tokio::net::tcp::OwnedWriteHalf, conv: usize, b: Block) -> Sent {
        let Ok(data) = self.torrent.block(&self.content, b.index, b.begin, b.length) else {
            return Sent::Ok;
        };
        let mut data = data.to_vec();
        if self.spec.corrupt.contains(&b.index) {
            if let Some(x) = data.first_mut() {
                *x ^= 0xff;
            }
        }
        let bytes = wire(&PeerMessage::Piece {
            index: b.index,
            begin: b.begin,
            data,
        });
        let number = self.sent_blocks.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if self.spec.leave_after.is_some_and(|n| number > n) {
            if self.spec.cut_mid_piece {
                let _ = self.write(wr, conv, &bytes[..bytes.len() / 2]).await;
            }
            self.leave();
            return Sent::Closed;
        }
        match self.write(wr, conv, &bytes).await {
            true => Sent::Ok,
            false => Sent::Closed,
        }
    }

    /// The peer leaves the swarm: its listener and every connection close.
    fn leave(&self) {
        self.gone.send_replace(true);
    }
}

/// How a connection ended.
enum End {
    /// The client closed it (FIN).
    Client,
    /// The client reset it.
    Reset,
    /// The peer closed it.
    Actor,
}

/// How sending a block went.
enum Sent {
    Ok,
    /// The peer closed the connection (it left, or the write failed).
    Closed,
}

/// What one connection knows.
#[derive(Debug)]
struct State {
    /// The peer is choking the client.
    choking: bool,
    /// The client said it is interested.
    interested: bool,
    /// The peer told the client it is interested.
    am_interested: bool,
    /// The client is choking the peer.
    choked_by_client: bool,
    /// The pieces the client announced.
    client_has: Vec<bool>,
    /// Requests to answer, in order.
    queue: VecDeque<Block>,
    /// The block the peer asked the client for (`download`), until it came.
    asked: Option<Block>,
    /// Pieces the client uploaded, checked.
    got: Vec<u32>,
    /// When a rate-limited peer may send its next block.
    next_send: Instant,
    /// The client went over `max_requests` (said once a connection).
    over_limit: bool,
}

impl Default for State {
    fn default() -> State {
        State {
            choking: true,
            interested: false,
            am_interested: false,
            choked_by_client: true,
            client_has: Vec::new(),
            queue: VecDeque::new(),
            asked: None,
            got: Vec::new(),
            next_send: Instant::now(),
            over_limit: false,
        }
    }
}

/// The peer id of the swarm's peer at `ip` (Azureus style, "WS"): the same in its handshake and
/// in the tracker's dictionary peer lists, and the same every run.
pub fn peer_id_of(ip: IpAddr) -> [u8; 20] {
    let mut id = *b"-WS0001-000000000000";
    let digits: Vec<u8> = ip.to_string().bytes().filter(u8::is_ascii_digit).collect();
    let take = digits.len().min(12);
    id[20 - take..].copy_from_slice(&digits[digits.len() - take..]);
    id
}

/// A bitfield: the high bit of the first byte is piece 0, spare bits zero (BEP 3).
fn bits(have: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; have.len().div_ceil(8)];
    for (i, h) in have.iter().enumerate() {
        if *h {
            out[i / 8] |= 0x80 >> (i % 8);
        }
    }
    out
}

/// A listener on `addr` with SO_REUSEADDR (the previous case's connections may linger).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfields_have_the_high_bit_first_and_zero_spare_bits() {
        assert_eq!(bits(&[true, false, true, true, true]), vec![0b1011_1000]);
        assert_eq!(bits(&[true; 9]), vec![0xff, 0x80]);
    }
}
