//! Running a case's actors (`serve:`): their sockets bound on one shared port (as name servers
//! share port 53), their traffic recorded into the case's dialogue, and what they saw counted
//! for `saw:` with the protocol's own matcher.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::folder::CaseFolder;
use crate::dialogue::{ConnInfo, EventKind, Recorder};
use crate::proto::actor::{ActorHandle, ActorLog, ActorOptions, Bound};
use crate::proto::steps::Received;
use crate::proto::{Direction, Framer, Message, Protocol, RenderCx, StructuredExpect, Transport};
use crate::suite::ActorDecl;

/// How many times a free port shared by every actor is looked for before giving up.
const PORT_TRIES: usize = 32;
/// Messages an actor keeps for `saw:` (what a flooding client sends past this is not counted).
const MAX_SEEN: usize = 10_000;

/// One incoming message an actor saw, as bytes.
#[derive(Debug, Clone)]
struct Seen {
    conv: usize,
    transport: Transport,
    bytes: Vec<u8>,
    /// The actor's own address on the conversation (a swarm's peers each have theirs).
    local: SocketAddr,
    /// When it arrived, from the actor's start.
    at: std::time::Duration,
}

/// A started actor of a case; its tasks stop when this is dropped.
pub struct RunningActor {
    /// Its name.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    protocol: &'static dyn Protocol,
    seen: Arc<Mutex<Vec<Seen>>>,
    judged: Arc<Mutex<Judged>>,
    handle: ActorHandle,
    /// Woken whenever the actor logs something (`saw:` waits on it instead of polling).
    changed: Arc<tokio::sync::Notify>,
}

/// What an actor found in its conversations: the rules the peer broke (first few kept), and
/// which conversations the peer closed.
#[derive(Debug, Default)]
struct Judged {
    violations: Vec<String>,
    hints: Vec<String>,
    peer_closed: Vec<usize>,
    opened: usize,
}

/// Violations an actor keeps (the first is what a case's failure says).
const MAX_VIOLATIONS: usize = 8;

/// Of one conversation: its transport (None for one in another protocol: not counted), whether
/// the actor opened it, and the actor's address on it.
type ConvMeta = (Option<Transport>, bool, Option<SocketAddr>);

/// Records an actor's conversations into the case's dialogue, and keeps its incoming messages.
struct Log {
    rec: Recorder,
    name: String,
    protocol: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Per conversation id: its transport (None for one in another protocol: not counted), and
    /// whether the actor opened it. Actors say which way bytes went by their part in the protocol
    /// (an FTP server's RETR data goes to the client), the dialogue by TCP's: a connection the
    /// actor opened has them flipped.
    convs: Mutex<Vec<ConvMeta>>,
    folder: Arc<CaseFolder>,
    /// When the actor started: `saw:` judgements read arrival times from it.
    started: tokio::time::Instant,
    judged: Arc<Mutex<Judged>>,
    changed: Arc<tokio::sync::Notify>,
}

impl Log {
    fn open_as(&self, transport: Transport, local: SocketAddr, peer: SocketAddr, protocol: &str, actor_connected: bool) -> usize {
        let own = protocol == self.protocol;
        self.judged.lock().unwrap_or_else(|e| e.into_inner()).opened += 1;
        let id = self.rec.open(ConnInfo {
            id: 0,
            name: match own {
                true => self.name.clone(),
                false => format!("{}.{protocol}", self.name),
            },
            transport,
            protocol: protocol.to_string(),
            harness_is_client: actor_connected,
            captured: false,
            actor: true,
            local: Some(local),
            peer: Some(peer),
        });
        let mut t = self.convs.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() <= id {
            t.resize(id + 1, (None, false, None));
        }
        t[id] = (own.then_some(transport), actor_connected, Some(local));
        drop(t);
        self.changed.notify_waiters();
        id
    }
}

impl ActorLog for Log {
    fn open(&self, transport: Transport, local: SocketAddr, peer: SocketAddr) -> usize {
        self.open_as(transport, local, peer, &self.protocol.clone(), false)
    }

    fn open_other(&self, transport: Transport, local: SocketAddr, peer: SocketAddr, protocol: &str, actor_connected: bool) -> usize {
        self.open_as(transport, local, peer, protocol, actor_connected)
    }

    fn tls(&self, conv: usize, handshake: &str) {
        self.rec.event(
            conv,
            EventKind::Tls {
                text: handshake.to_string(),
            },
        );
    }

    fn stored(&self, name: &str, bytes: &[u8]) {
        // A name the actor should have refused, or a full disk, leaves the file out: the
        // `expect_file` step that looks for it then says it is missing.
        let _ = self.folder.keep(&self.name, name, bytes);
    }

    fn data(&self, conv: usize, dir: Direction, bytes: &[u8]) {
        let (transport, flip, local) = self
            .convs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(conv)
            .copied()
            .unwrap_or((None, false, None));
        let tcp_dir = match (flip, dir) {
            (false, d) => d,
            (true, Direction::ClientToServer) => Direction::ServerToClient,
            (true, Direction::ServerToClient) => Direction::ClientToServer,
        };
        self.rec.event(
            conv,
            EventKind::Data {
                dir: tcp_dir,
                bytes: bytes.to_vec(),
            },
        );
        if let (Direction::ClientToServer, Some(transport)) = (dir, transport) {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() < MAX_SEEN {
                seen.push(Seen {
                    conv,
                    transport,
                    bytes: bytes.to_vec(),
                    local: local.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
                    at: self.started.elapsed(),
                });
            }
        }
        self.changed.notify_waiters();
    }

    fn figure(&self, conv: usize, name: &str, value: f64, series: bool) {
        self.rec.event(
            conv,
            EventKind::Figure {
                name: name.to_string(),
                value,
                series,
            },
        );
    }

    fn violation(&self, _conv: usize, text: &str) {
        let mut j = self.judged.lock().unwrap_or_else(|e| e.into_inner());
        if j.violations.len() < MAX_VIOLATIONS && !j.violations.iter().any(|v| v == text) {
            j.violations.push(text.to_string());
        }
    }

    fn hint(&self, _conv: usize, text: &str) {
        let mut j = self.judged.lock().unwrap_or_else(|e| e.into_inner());
        if j.hints.len() < MAX_VIOLATIONS && !j.hints.iter().any(|h| h == text) {
            j.hints.push(text.to_string());
        }
    }

    fn closed(&self, conv: usize) {
        self.judged.lock().unwrap_or_else(|e| e.into_inner()).peer_closed.push(conv);
        self.rec.event(
            conv,
            EventKind::Closed {
                dir: Direction::ClientToServer,
            },
        );
        self.changed.notify_waiters();
    }

    fn reset(&self, conv: usize) {
        self.judged.lock().unwrap_or_else(|e| e.into_inner()).peer_closed.push(conv);
        self.rec.event(conv, EventKind::Reset);
        self.changed.notify_waiters();
    }

    fn closed_by_actor(&self, conv: usize) {
        let opened_it = self.convs.lock().unwrap_or_else(|e| e.into_inner()).get(conv).is_some_and(|c| c.1);
        let dir = match opened_it {
            true => Direction::ClientToServer,
            false => Direction::ServerToClient,
        };
        self.rec.event(conv, EventKind::Closed { dir });
    }
}

/// Binds every actor of `decls` (each on its protocol's well-known port when `well_known`, else
/// all on one free port, as name servers share port 53) and starts them; `faults` are per actor.
pub async fn start(
    decls: &[&ActorDecl],
    faults: &[(String, Vec<String>)],
    options: &[(String, ActorOptions)],
    well_known: bool,
    rec: &Recorder,
    folder: &Arc<CaseFolder>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<Vec<RunningActor>, String> {
    let mut last_err = String::new();
    for _ in 0..if well_known { 1 } else { PORT_TRIES } {
        match bind_all(decls, well_known).await {
            Ok(bound) => {
                let mut out = Vec::new();
                for (decl, (addr, mut sockets)) in decls.iter().zip(bound) {
                    sockets.tls = tls.clone();
                    let protocol = crate::proto::find_or_raw(&decl.protocol);
                    let seen = Arc::new(Mutex::new(Vec::new()));
                    let judged = Arc::new(Mutex::new(Judged::default()));
                    let changed = Arc::new(tokio::sync::Notify::new());
                    let log = Arc::new(Log {
                        changed: changed.clone(),
                        judged: judged.clone(),
                        rec: rec.clone(),
                        name: decl.name.clone(),
                        protocol: decl.protocol.clone(),
                        seen: seen.clone(),
                        convs: Mutex::new(Vec::new()),
                        folder: folder.clone(),
                        started: tokio::time::Instant::now(),
                    });
                    let on = faults
                        .iter()
                        .find(|(n, _)| *n == decl.name)
                        .map(|(_, f)| f.as_slice())
                        .unwrap_or_default();
                    let with = options.iter().find(|(n, _)| *n == decl.name).map(|(_, o)| o);
                    let handle = decl.spec.start_with(sockets, on, with, log);
                    out.push(RunningActor {
                        name: decl.name.clone(),
                        addr,
                        protocol,
                        seen,
                        judged,
                        changed,
                        handle,
                    });
                }
                return Ok(out);
            }
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

async fn bind_all(decls: &[&ActorDecl], well_known: bool) -> Result<Vec<(SocketAddr, Bound)>, String> {
    let mut port = 0;
    let mut out = Vec::new();
    for d in decls {
        let mut bound = Bound::default();
        if well_known {
            port = d.spec.well_known_port();
        }
        let mut addr = SocketAddr::new(d.host, port);
        for t in d.spec.transports() {
            let what = |e: std::io::Error| format!("actor '{}' cannot listen on {t} {addr}: {e}", d.name);
            match t {
                Transport::Udp | Transport::Quic => {
                    let s = tokio::net::UdpSocket::bind(addr).await.map_err(what)?;
                    addr = s.local_addr().map_err(what)?;
                    bound.udp = Some(s);
                }
                Transport::Tcp => {
                    let s = tcp_listener(addr).map_err(what)?;
                    addr = s.local_addr().map_err(what)?;
                    bound.tcp = Some(s);
                }
            }
        }
        port = addr.port();
        out.push((addr, bound));
    }
    Ok(out)
}

/// A TCP listener with SO_REUSEADDR: the previous case's connections on the same fixed port (53
/// under --isolate) may still be in TIME_WAIT. On Linux it never lets two listeners share a port.
fn tcp_listener(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

impl RunningActor {
    /// Stops the actor and waits until its sockets are closed.
    pub async fn stop(self) {
        self.handle.stop().await;
    }

    /// Waits (until `until` at the latest) for the actor to finish reading its open
    /// conversations, so that what a program sent before it exited is counted and judged.
    pub async fn settle(&self, until: tokio::time::Instant) {
        self.handle.settle(until).await;
    }

    /// Whether the actor had a conversation and none is open any more (for an actor that counts
    /// them): a program that connected has gone, so what it sent is all there.
    pub fn settled(&self) -> bool {
        let opened = self.judged.lock().unwrap_or_else(|e| e.into_inner()).opened;
        opened > 0 && self.handle.open_now() == Some(0)
    }

    /// Notified whenever the actor logs something: `saw:` waits on it between counts.
    pub fn changes(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    /// The actor's open-conversation count to wait on, for an actor that counts them.
    pub fn open_watch(&self) -> Option<tokio::sync::watch::Receiver<usize>> {
        self.handle.open_watch()
    }

    /// Whether the actor counts its open connections (so `settled` can tell).
    pub fn counts_connections(&self) -> bool {
        self.handle.open_now().is_some()
    }

    /// What the actor noticed that may explain a failure (first first).
    pub fn hints(&self) -> Vec<String> {
        self.judged.lock().unwrap_or_else(|e| e.into_inner()).hints.clone()
    }

    /// The rules the peer broke, as the actor found them (first first).
    pub fn violations(&self) -> Vec<String> {
        self.judged.lock().unwrap_or_else(|e| e.into_inner()).violations.clone()
    }

    /// How many of the messages this actor received match `spec` (over `over` only, when given),
    /// and a one-line summary of each message it received, for the failure text.
    pub fn count(
        &self,
        spec: &dyn StructuredExpect,
        over: Option<Transport>,
        host: Option<std::net::IpAddr>,
        cx: &RenderCx,
    ) -> (u32, Vec<String>) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        seen.retain(|s| host.is_none_or(|h| s.local.ip() == h));
        // A TCP message may have come in several reads: each conversation is framed as one
        // stream; a UDP datagram is a message of its own.
        let mut streams: Vec<Seen> = Vec::new();
        for s in seen.into_iter().filter(|s| over.is_none_or(|t| t == s.transport)) {
            match streams.iter_mut().find(|x| x.conv == s.conv && s.transport == Transport::Tcp) {
                Some(x) => x.bytes.extend_from_slice(&s.bytes),
                None => streams.push(s),
            }
        }
        let peer_closed = self.judged.lock().unwrap_or_else(|e| e.into_inner()).peer_closed.clone();
        let (mut n, mut all) = (0, Vec::new());
        for s in &streams {
            let (mut matched, mut contradicted) = (false, false);
            for m in frame(self.protocol, s) {
                if spec.check(&m, cx).is_ok() {
                    n += 1;
                    matched = true;
                } else if !spec.skips(&m) {
                    contradicted = true;
                }
                all.push(format!("over {}: {}", s.transport, m.text));
            }
            // An expectation the connection's close meets (an HTTP/2 connection error: GOAWAY
            // first is a SHOULD, RFC 9113 §5.4.1) counts a conversation the peer closed without
            // sending a message that says otherwise (a GOAWAY with another code).
            if spec.accepts_close() && !matched && !contradicted && peer_closed.contains(&s.conv) {
                n += 1;
                all.push(format!("over {}: the peer closed the connection", s.transport));
            }
        }
        (n, all)
    }
}

impl RunningActor {
    /// Every message the actor received, in the order it arrived, each with its conversation,
    /// the actor's address on it and its arrival time (a TCP message takes the time of the read
    /// that completed it): what a `saw:` judgement over a whole exchange reads.
    pub fn judge(
        &self,
        spec: &dyn StructuredExpect,
        over: Option<Transport>,
        host: Option<std::net::IpAddr>,
    ) -> Option<Result<String, crate::proto::Mismatch>> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        seen.retain(|s| host.is_none_or(|h| s.local.ip() == h));
        let mut framers: Vec<(usize, Framer)> = Vec::new();
        let mut messages: Vec<(usize, SocketAddr, std::time::Duration, Message)> = Vec::new();
        for s in seen.into_iter().filter(|s| over.is_none_or(|t| t == s.transport)) {
            if s.transport != Transport::Tcp {
                messages.extend(frame(self.protocol, &s).into_iter().map(|m| (s.conv, s.local, s.at, m)));
                continue;
            }
            let i = match framers.iter().position(|(c, _)| *c == s.conv) {
                Some(i) => i,
                None => {
                    framers.push((s.conv, Framer::new(self.protocol.codec_on(Direction::ClientToServer, s.transport))));
                    framers.len() - 1
                }
            };
            let framer = &mut framers[i].1;
            framer.push(&s.bytes);
            while let Ok(Some(m)) = framer.next(false) {
                messages.push((s.conv, s.local, s.at, m));
            }
        }
        let received: Vec<Received<'_>> = messages
            .iter()
            .map(|(conv, local, at, msg)| Received {
                conv: *conv,
                local: *local,
                at: *at,
                msg,
            })
            .collect();
        spec.judge_record(&received, self.handle.record().map(|r| r.as_ref()))
    }
}

/// The messages in one received chunk, framed by the protocol's codec.
fn frame(p: &dyn Protocol, s: &Seen) -> Vec<Message> {
    let mut framer = Framer::new(p.codec_on(Direction::ClientToServer, s.transport));
    framer.push(&s.bytes);
    let mut out = Vec::new();
    while let Ok(Some(m)) = framer.next(true) {
        out.push(m);
    }
    out
}
