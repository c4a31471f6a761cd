//! The tracker actor: an HTTP tracker (BEP 3) or a UDP tracker (BEP 15) the harness plays for a
//! BitTorrent client under test, naming the swarm's peers. It frames requests with the protocol's
//! own codec and answers in canonical bencode (HTTP) or BEP 15's datagrams (UDP).
//!
//! ```yaml
//! actors:
//!   - name: tracker
//!     host: 127.0.0.2
//!     bt_tracker:
//!       torrent: ../fixtures/bittorrent/swarm.torrent
//!       interval: 1                  # seconds between regular announces (BEP 3 `interval`)
//!       peers: [127.0.0.11, { host: 127.0.0.12, from: 2s }]   # named from `from` on (churn)
//!       compact: false               # answer with a list of dictionaries (BEP 23: a tracker MAY)
//!       udp: true                    # a BEP 15 tracker on UDP (the torrent's URL is udp://...)
//! ```
//! A case may give its own `peers` and `compact` (`serve: { with: { tracker: {...} } }`).
//!
//! When it starts it writes the torrent with its own announce URL as `swarm.torrent` into the
//! case's folder (`tracker/swarm.torrent` for an actor named `tracker`): the info dictionary's
//! bytes are kept as they are, so the info-hash does not change. The peers are named at the
//! port every actor of the case shares (6881 under `--isolate`, where the tracker is on 6969).
//! Announces for another info-hash get a `failure reason` (over UDP, an error datagram).
//!
//! Over UDP it answers a connect with a fresh connection id, which announces and scrapes must
//! carry for two minutes after (BEP 15: "Trackers should accept the connection ID until two
//! minutes after it has been sent"); a request with any other id gets an error.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep, timeout, Instant};

use super::codec::{parse_udp, HttpTrackerCodec, Peer, Tracker, Udp, UdpScrapeEntry, CONNECT_MAGIC};
use crate::proto::bittorrent::bencode::{self, Build};
use crate::proto::bittorrent::metainfo::Metainfo;
use crate::proto::common::actor::{ActorHandle, ActorKind, ActorLog, ActorOptions, ActorSpec, Bound};
use crate::proto::{Codec, Direction, Frame, Transport};
use crate::syntax::{Data, LoadCx, Node};

/// A request head longer than this closes the connection.
const MAX_REQUEST: usize = 16 * 1024;
/// A connection with no request for this long is closed.
const IDLE: Duration = Duration::from_secs(10);
/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// The port the swarm's peers listen on under `--isolate` (the tracker is then on 6969).
const PEER_WELL_KNOWN: u16 = 6881;
/// How long a UDP connection id is accepted after it was given (BEP 15).
const CONNECTION_ID_LIFE: Duration = Duration::from_secs(120);
/// Connection ids remembered at once; the oldest is forgotten first.
const MAX_CONNECTION_IDS: usize = 1024;
/// UDP clients whose datagrams are logged as conversations of their own; later ones share the last.
const MAX_UDP_CLIENTS: usize = 256;
/// The longest datagram read (BEP 15's largest request, a scrape of 74 torrents, is 1,496 bytes).
const MAX_DATAGRAM: usize = 2048;

/// The `bt_tracker:` actor vocabulary.
pub static ACTOR: ActorKind = ActorKind {
    key: "bt_tracker",
    faults: &[("failure", "answers every announce with a failure reason (BEP 3)")],
    parse,
    options: Some(parse_options),
};

/// A peer the tracker names, from `from` on.
#[derive(Debug, Clone)]
struct Named {
    host: IpAddr,
    from: Duration,
}

/// A declared tracker.
#[derive(Debug)]
struct TrackerActor {
    /// The torrent file's bytes, and where its `announce` value and the key before it sit.
    torrent: Arc<[u8]>,
    info_hash: [u8; 20],
    interval: i64,
    peers: Vec<Named>,
    compact: bool,
    /// BEP 15 on UDP instead of HTTP.
    udp: bool,
}

/// A case's own peers and form.
struct Options {
    peers: Option<Vec<Named>>,
    compact: Option<bool>,
}

fn parse(node: &Node, cx: &mut LoadCx) -> Option<Arc<dyn ActorSpec>> {
    let f = cx.fields(node, &["torrent", "interval", "peers", "compact", "udp"], "a tracker actor")?;
    let Some(t) = f.get("torrent") else {
        cx.err_help(
            node,
            "a tracker needs 'torrent'",
            "e.g. bt_tracker: { torrent: ../fixtures/bittorrent/swarm.torrent, interval: 1, peers: [127.0.0.11] }",
        );
        return None;
    };
    let fixture = cx.fixture(t, "torrent")?;
    let meta = match Metainfo::parse(&fixture.bytes) {
        Ok(m) => m,
        Err(e) => {
            cx.err(t, format!("{} is not a torrent: {e}", fixture.display()));
            return None;
        }
    };
    let interval = match f.get("interval") {
        Some(n) => cx.number::<i64>(n, "interval").filter(|i| *i > 0).or_else(|| {
            cx.err(n, "interval is a whole number of seconds above 0");
            None
        })?,
        None => 1800,
    };
    let peers = match f.get("peers") {
        Some(p) => parse_peers(p, cx)?,
        None => Vec::new(),
    };
    let compact = match f.get("compact") {
        Some(c) => cx.boolean(c, "compact")?,
        None => true,
    };
    let udp = match f.get("udp") {
        Some(u) => cx.boolean(u, "udp")?,
        None => false,
    };
    Some(Arc::new(TrackerActor {
        torrent: fixture.bytes,
        info_hash: meta.info_hash,
        interval,
        peers,
        compact,
        udp,
    }))
}

fn parse_options(node: &Node, cx: &mut LoadCx) -> Option<ActorOptions> {
    let f = cx.fields(node, &["peers", "compact"], "tracker options")?;
    let peers = match f.get("peers") {
        Some(p) => Some(parse_peers(p, cx)?),
        None => None,
    };
    let compact = match f.get("compact") {
        Some(c) => Some(cx.boolean(c, "compact")?),
        None => None,
    };
    Some(Arc::new(Options { peers, compact }))
}

fn parse_peers(node: &Node, cx: &mut LoadCx) -> Option<Vec<Named>> {
    let Data::Seq(items) = &node.data else {
        cx.err_help(
            node,
            "peers is a list of addresses",
            "e.g. peers: [127.0.0.11, { host: 127.0.0.12, from: 2s }]",
        );
        return None;
    };
    let mut out = Vec::new();
    for item in items {
        let (h, from) = match &item.data {
            Data::Map(_) => {
                let f = cx.fields(item, &["host", "from"], "a peer")?;
                let Some(h) = f.get("host") else {
                    cx.err_help(item, "a peer needs 'host'", "e.g. { host: 127.0.0.12, from: 2s }");
                    return None;
                };
                let from = match f.get("from") {
                    Some(d) => cx.duration(d, "from")?,
                    None => Duration::ZERO,
                };
                (h, from)
            }
            _ => (item, Duration::ZERO),
        };
        match h.as_str().map(str::parse::<IpAddr>) {
            Some(Ok(host)) => out.push(Named { host, from }),
            _ => {
                cx.err_help(h, "a peer's host is an IP address", "e.g. 127.0.0.11");
                return None;
            }
        }
    }
    Some(out)
}

/// The torrent's bytes with `announce` set to `url` and `announce-list` left out; every other
/// value, the info dictionary above all, is copied byte for byte.
fn with_announce(torrent: &[u8], url: &str) -> Option<Vec<u8>> {
    let (root, _) = bencode::decode(torrent).ok()?;
    let pairs = root.dict()?;
    let mut out = vec![b'd'];
    let mut placed = false;
    let put_announce = |out: &mut Vec<u8>| {
        bencode::encode_bytes(b"announce", out);
        bencode::encode_bytes(url.as_bytes(), out);
    };
    for (k, v) in pairs {
        if k.as_slice() == b"announce-list" {
            continue;
        }
        if !placed && k.as_slice() >= b"announce".as_slice() {
            put_announce(&mut out);
            placed = true;
            if k.as_slice() == b"announce" {
                continue;
            }
        }
        bencode::encode_bytes(k, &mut out);
        out.extend_from_slice(&torrent[v.start..v.end]);
    }
    if !placed {
        put_announce(&mut out);
    }
    out.push(b'e');
    Some(out)
}

impl ActorSpec for TrackerActor {
    fn transports(&self) -> &'static [Transport] {
        match self.udp {
            true => &[Transport::Udp],
            false => &[Transport::Tcp],
        }
    }

    fn well_known_port(&self) -> u16 {
        6969
    }

    fn start(&self, sockets: Bound, faults: &[String], log: Arc<dyn ActorLog>) -> ActorHandle {
        self.start_with(sockets, faults, None, log)
    }

    fn start_with(&self, sockets: Bound, faults: &[String], options: Option<&ActorOptions>, log: Arc<dyn ActorLog>) -> ActorHandle {
        let addr = match (&sockets.tcp, &sockets.udp) {
            (Some(l), _) => l.local_addr(),
            (None, Some(u)) => u.local_addr(),
            (None, None) => return ActorHandle::default(),
        };
        let Ok(addr) = addr else {
            return ActorHandle::default();
        };
        let opts = options.and_then(|o| o.clone().downcast::<Options>().ok());
        // Written before anything else: the client under test is started with it.
        let scheme = if self.udp { "udp" } else { "http" };
        if let Some(t) = with_announce(&self.torrent, &format!("{scheme}://{addr}/announce")) {
            log.stored("swarm.torrent", &t);
        }
        let peer_port = if addr.port() == self.well_known_port() {
            PEER_WELL_KNOWN
        } else {
            addr.port()
        };
        let srv = Arc::new(Server {
            info_hash: self.info_hash,
            interval: self.interval,
            peers: opts.as_ref().and_then(|o| o.peers.clone()).unwrap_or_else(|| self.peers.clone()),
            compact: opts.as_ref().and_then(|o| o.compact).unwrap_or(self.compact),
            failure: faults.iter().any(|f| f == "failure"),
            peer_port,
            started: Instant::now(),
            log,
        });
        if let Some(sock) = sockets.udp {
            return ActorHandle::new(vec![tokio::spawn(async move { srv.serve_udp(sock, addr).await })]);
        }
        let Some(listener) = sockets.tcp else {
            return ActorHandle::default();
        };
        let task = tokio::spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, from)) = listener.accept().await else {
                    sleep(Duration::from_millis(10)).await;
                    continue;
                };
                while sessions.try_join_next().is_some() {}
                if sessions.len() >= MAX_CONNECTIONS {
                    continue;
                }
                let srv = srv.clone();
                sessions.spawn(async move { srv.session(stream, addr, from).await });
            }
        });
        ActorHandle::new(vec![task])
    }
}

struct Server {
    info_hash: [u8; 20],
    interval: i64,
    peers: Vec<Named>,
    compact: bool,
    failure: bool,
    peer_port: u16,
    started: Instant,
    log: Arc<dyn ActorLog>,
}

impl Server {
    async fn session(&self, mut stream: tokio::net::TcpStream, local: SocketAddr, from: SocketAddr) {
        let conv = self.log.open(Transport::Tcp, local, from);
        let mut codec = HttpTrackerCodec::new(Direction::ClientToServer);
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 4096];
        loop {
            let req = loop {
                match codec.decode(&buf, false) {
                    Ok(Frame::Message(m, used)) => {
                        buf.drain(..used);
                        break Some(m);
                    }
                    Ok(Frame::Incomplete) if buf.len() < MAX_REQUEST => {}
                    _ => break None,
                }
                match timeout(IDLE, stream.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => {
                        self.log.data(conv, Direction::ClientToServer, &chunk[..n]);
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    Ok(Ok(_)) => {
                        self.log.closed(conv);
                        return;
                    }
                    _ => {
                        let _ = stream.shutdown().await;
                        self.log.closed_by_actor(conv);
                        return;
                    }
                }
            };
            let Some(req) = req else {
                let resp = http(400, "text/plain", b"not a tracker request\n", true);
                let _ = self.write(&mut stream, conv, &resp).await;
                let _ = stream.shutdown().await;
                self.log.closed_by_actor(conv);
                return;
            };
            let request = req.detail.as_ref().and_then(|d| d.downcast_ref::<Tracker>()).and_then(|t| match t {
                Tracker::Request(r) => Some(r.clone()),
                _ => None,
            });
            let close = request
                .as_ref()
                .is_none_or(|r| r.http.version < (1, 1) || r.http.has_token("Connection", "close"));
            let resp = match request {
                Some(r) if r.ask == super::codec::Ask::Announce => http(200, "text/plain", &self.announce(&r, from), close),
                _ => http(404, "text/plain", b"this tracker serves /announce only\n", close),
            };
            if !self.write(&mut stream, conv, &resp).await || close {
                let _ = stream.shutdown().await;
                self.log.closed_by_actor(conv);
                return;
            }
        }
    }

    async fn write(&self, stream: &mut tokio::net::TcpStream, conv: usize, bytes: &[u8]) -> bool {
        match timeout(IDLE, stream.write_all(bytes)).await {
            Ok(Ok(())) => {
                self.log.data(conv, Direction::ServerToClient, bytes);
                true
            }
            _ => false,
        }
    }

    /// BEP 15 on one socket: a connect gets a connection id, an announce or scrape that carries a
    /// live one its answer, anything else an error (or, when it is not a request, nothing).
    async fn serve_udp(&self, sock: tokio::net::UdpSocket, local: SocketAddr) {
        let mut convs: HashMap<SocketAddr, usize> = HashMap::new();
        let mut ids: VecDeque<(u64, Instant)> = VecDeque::new();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                sleep(Duration::from_millis(10)).await;
                continue;
            };
            let conv = match convs.get(&from) {
                Some(c) => *c,
                None => {
                    let c = self.log.open(Transport::Udp, local, from);
                    if convs.len() < MAX_UDP_CLIENTS {
                        convs.insert(from, c);
                    }
                    c
                }
            };
            self.log.data(conv, Direction::ClientToServer, &buf[..n]);
            let Some(reply) = self.udp_reply(&buf[..n], from, &mut ids) else {
                continue;
            };
            let bytes = reply.encode();
            if sock.send_to(&bytes, from).await.is_ok() {
                self.log.data(conv, Direction::ServerToClient, &bytes);
            }
        }
    }

    /// The answer to one BEP 15 request, if it is one.
    fn udp_reply(&self, datagram: &[u8], from: SocketAddr, ids: &mut VecDeque<(u64, Instant)>) -> Option<Udp> {
        let (request, _) = parse_udp(datagram, Direction::ClientToServer).ok()?;
        let now = Instant::now();
        ids.retain(|(_, at)| now.duration_since(*at) < CONNECTION_ID_LIFE);
        let error = |transaction: u32, message: &str| Udp::Error {
            transaction,
            message: message.to_owned(),
        };
        let live = |id: u64| ids.iter().any(|(i, _)| *i == id);
        match request {
            Udp::Connect { protocol_id, transaction } if protocol_id == CONNECT_MAGIC => {
                // Unguessable, as BEP 15 means it to be (it stops address spoofing).
                let mut bytes = [0u8; 8];
                let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
                let connection = u64::from_be_bytes(bytes);
                if ids.len() >= MAX_CONNECTION_IDS {
                    ids.pop_front();
                }
                ids.push_back((connection, now));
                Some(Udp::Connected { transaction, connection })
            }
            Udp::Connect { transaction, .. } => Some(error(transaction, "a connect's protocol id is 0x41727101980 (BEP 15)")),
            Udp::Announce(a) if !live(a.connection) => Some(error(a.transaction, "unknown connection id: connect first (BEP 15)")),
            Udp::Scrape {
                connection, transaction, ..
            } if !live(connection) => Some(error(transaction, "unknown connection id: connect first (BEP 15)")),
            Udp::Announce(a) => {
                if self.failure {
                    return Some(error(a.transaction, "this tracker is closed (the case's fault)"));
                }
                if a.info_hash != self.info_hash {
                    return Some(error(a.transaction, "unknown torrent: this tracker serves one info-hash"));
                }
                let peers: Vec<Peer> = self
                    .named(from)
                    .into_iter()
                    .filter(|p| p.is_ipv4())
                    .map(|p| Peer {
                        addr: p.to_string(),
                        peer_id: None,
                    })
                    .collect();
                Some(Udp::Announced {
                    transaction: a.transaction,
                    interval: u32::try_from(self.interval).unwrap_or(u32::MAX),
                    leechers: 0,
                    seeders: u32::try_from(peers.len()).unwrap_or(u32::MAX),
                    peers,
                })
            }
            Udp::Scrape {
                transaction, info_hashes, ..
            } => {
                let seeders = u32::try_from(self.named(from).len()).unwrap_or(u32::MAX);
                let files = info_hashes
                    .iter()
                    .map(|h| UdpScrapeEntry {
                        seeders: if *h == self.info_hash { seeders } else { 0 },
                        completed: 0,
                        leechers: 0,
                    })
                    .collect();
                Some(Udp::Scraped { transaction, files })
            }
            _ => None,
        }
    }

    /// The peers named by now, less the asker itself.
    fn named(&self, from: SocketAddr) -> Vec<SocketAddr> {
        let now = self.started.elapsed();
        self.peers
            .iter()
            .filter(|p| p.from <= now)
            .map(|p| SocketAddr::new(p.host, self.peer_port))
            .filter(|a| *a != from)
            .collect()
    }

    /// The bencoded answer to an announce.
    fn announce(&self, r: &super::codec::TrackerRequest, from: SocketAddr) -> Vec<u8> {
        let failure = |why: &str| Build::dict([("failure reason", Build::text(why))]).encode();
        if self.failure {
            return failure("this tracker is closed (the case's fault)");
        }
        match r.param("info_hash") {
            Some(h) if h == self.info_hash => {}
            Some(h) if h.len() != 20 => return failure("info_hash is not 20 bytes"),
            Some(_) => return failure("unknown torrent: this tracker serves one info-hash"),
            None => return failure("no info_hash"),
        }
        let named = self.named(from);
        let wants_compact = r.param("compact").is_none_or(|c| c != b"0");
        let peers = if self.compact && wants_compact {
            let mut b = Vec::new();
            for a in &named {
                if let IpAddr::V4(v4) = a.ip() {
                    b.extend_from_slice(&v4.octets());
                    b.extend_from_slice(&a.port().to_be_bytes());
                }
            }
            Build::Bytes(b)
        } else {
            Build::List(
                named
                    .iter()
                    .map(|a| {
                        let id = crate::proto::bittorrent::actor::peer_id_of(a.ip());
                        Build::dict([
                            ("ip", Build::text(&a.ip().to_string())),
                            ("peer id", Build::Bytes(id.to_vec())),
                            ("port", Build::Int(i64::from(a.port()))),
                        ])
                    })
                    .collect(),
            )
        };
        // No complete/incomplete counts: they are optional (BEP 48), and this tracker does not
        // know which of its peers are seeders.
        Build::dict([("interval", Build::Int(self.interval)), ("peers", peers)]).encode()
    }
}

/// An HTTP/1.1 response with Date and Content-Length (RFC 9110 §6.6.1, §8.6).
fn http(status: u16, ctype: &str, body: &[u8], close: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        _ => "Not Found",
    };
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nDate: {date}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log that keeps nothing: `udp_reply` is judged by what it returns.
    struct NoLog;
    impl ActorLog for NoLog {
        fn open(&self, _: Transport, _: SocketAddr, _: SocketAddr) -> usize {
            0
        }
        fn data(&self, _: usize, _: Direction, _: &[u8]) {}
        fn closed(&self, _: usize) {}
    }

    fn server(failure: bool) -> Server {
        Server {
            info_hash: [7; 20],
            interval: 1,
            peers: vec![Named {
                host: "127.0.0.11".parse().unwrap(),
                from: Duration::ZERO,
            }],
            compact: true,
            failure,
            peer_port: 6881,
            started: Instant::now(),
            log: Arc::new(NoLog),
        }
    }

    fn announce(connection: u64, info_hash: [u8; 20]) -> Vec<u8> {
        Udp::Announce(super::super::codec::UdpAnnounce {
            connection,
            transaction: 9,
            info_hash,
            peer_id: [b'p'; 20],
            downloaded: 0,
            left: 10,
            uploaded: 0,
            event: 2,
            ip: 0,
            key: 1,
            numwant: -1,
            port: 7000,
        })
        .encode()
    }

    #[test]
    fn a_udp_announce_needs_the_connection_id_a_connect_gave() {
        let srv = server(false);
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut ids = VecDeque::new();
        let connect = Udp::Connect {
            protocol_id: CONNECT_MAGIC,
            transaction: 3,
        };
        let Some(Udp::Connected {
            transaction: 3,
            connection,
        }) = srv.udp_reply(&connect.encode(), from, &mut ids)
        else {
            panic!("no connected reply")
        };
        let refused = srv.udp_reply(&announce(connection ^ 1, [7; 20]), from, &mut ids);
        assert!(matches!(refused, Some(Udp::Error { transaction: 9, .. })), "{refused:?}");
        let Some(Udp::Announced {
            transaction: 9,
            interval: 1,
            peers,
            ..
        }) = srv.udp_reply(&announce(connection, [7; 20]), from, &mut ids)
        else {
            panic!("no announced reply")
        };
        assert_eq!(peers.iter().map(|p| p.addr.as_str()).collect::<Vec<_>>(), ["127.0.0.11:6881"]);
        let other = srv.udp_reply(&announce(connection, [8; 20]), from, &mut ids);
        assert!(matches!(other, Some(Udp::Error { .. })), "another torrent: {other:?}");
        let wrong_magic = Udp::Connect {
            protocol_id: 1,
            transaction: 4,
        };
        assert!(matches!(
            srv.udp_reply(&wrong_magic.encode(), from, &mut ids),
            Some(Udp::Error { transaction: 4, .. })
        ));
        // A reply's bytes sent to the tracker are no request: no answer.
        assert!(srv.udp_reply(&[0, 0, 0, 0, 0, 0, 0, 3], from, &mut ids).is_none());
    }

    #[test]
    fn the_failure_fault_answers_udp_announces_with_an_error() {
        let srv = server(true);
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut ids = VecDeque::from([(5u64, Instant::now())]);
        let reply = srv.udp_reply(&announce(5, [7; 20]), from, &mut ids);
        assert!(matches!(reply, Some(Udp::Error { transaction: 9, .. })), "{reply:?}");
    }

    #[test]
    fn the_torrent_gets_the_actors_announce_and_keeps_its_info_hash() {
        let bytes = std::fs::read(format!("{}/fixtures/bittorrent/swarm.torrent", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let before = Metainfo::parse(&bytes).unwrap();
        let after = Metainfo::parse(&with_announce(&bytes, "http://127.0.0.2:4000/announce").unwrap()).unwrap();
        assert_eq!(after.announce, "http://127.0.0.2:4000/announce");
        assert_eq!(after.info_hash, before.info_hash);
        assert!(after.findings.is_empty(), "{:?}", after.findings);
    }
}
