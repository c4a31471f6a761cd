//! The Dialogue: every byte each side sent, per connection and direction, with times.
//!
//! A live run records one; (later) decoding a capture produces one per conversation. Messages
//! are framed from the raw bytes by the protocol's codec only when rendered, so a live run and
//! a capture of it go through the same framing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::proto::Transport;
use crate::proto::{escape_bytes, Context, Direction, Frame, Framer, Protocol};

/// One connection (or UDP socket) of a dialogue.
#[derive(Debug, Clone, Serialize)]
pub struct ConnInfo {
    /// Index in `Dialogue::connections`.
    pub id: usize,
    /// Name from the suite (`c`, `srv`, `c#3` inside a concurrent repeat).
    pub name: String,
    /// tcp or udp.
    pub transport: Transport,
    /// The protocol spoken on it.
    pub protocol: String,
    /// Whether the harness is the client on this connection.
    pub harness_is_client: bool,
    /// Decoded from a capture file: there is no harness on it.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub captured: bool,
    /// A conversation of one of the case's actors (the harness serves it by rules).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub actor: bool,
    /// The harness's address.
    pub local: Option<SocketAddr>,
    /// The target's address.
    pub peer: Option<SocketAddr>,
}

#[cfg(test)]
impl ConnInfo {
    /// A TCP `line` connection named `c` where the harness is the client, for unit tests.
    pub(crate) fn test_tcp(captured: bool) -> ConnInfo {
        ConnInfo {
            id: 0,
            name: "c".into(),
            transport: Transport::Tcp,
            protocol: "line".into(),
            harness_is_client: true,
            captured,
            actor: false,
            local: None,
            peer: None,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The connection was opened (or the UDP socket bound).
    Open,
    /// Bytes went one way (for UDP: one datagram).
    Data {
        /// Which way.
        dir: Direction,
        /// The bytes.
        #[serde(serialize_with = "ser_bytes")]
        bytes: Vec<u8>,
    },
    /// One side closed its write half (FIN).
    Closed {
        /// Who closed: the sender of the FIN.
        dir: Direction,
    },
    /// The connection was reset.
    Reset,
    /// A connection attempt was refused.
    Refused,
    /// Bytes of one direction are missing (a decoded capture lost or cut them).
    Gap {
        /// Which way.
        dir: Direction,
        /// How many bytes are missing.
        len: u64,
    },
    /// Bytes of one direction the capture did not keep (its snap length cut the packets that
    /// carried them): they were sent, so the message they belong to is not judged.
    Cut {
        /// Which way.
        dir: Direction,
        /// How many bytes were not captured.
        len: u64,
    },
    /// TLS began on the connection (from its first byte, or after a STARTTLS): what the handshake
    /// settled (version, cipher suite, ALPN, server name). The bytes around it are plaintext.
    Tls {
        /// The handshake in a few words.
        text: String,
    },
    /// Something worth knowing that is not traffic (a capture decoder's remark).
    Note {
        /// The remark.
        text: String,
    },
    /// A figure an actor measured (a DASH player's QoE so far, the bandwidth it offered): with
    /// `series`, one value of a quantity over time, which reports chart; otherwise a total whose
    /// last value reports show.
    Figure {
        /// What it measures, with its unit ("rebuffering s").
        name: String,
        /// The value.
        value: f64,
        /// Whether it is one sample of a series over time.
        series: bool,
    },
}

/// One event with its time since the case started.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Microseconds since the case started.
    pub t_us: u64,
    /// Connection index.
    pub conn: usize,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Everything a case sent and received.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Dialogue {
    /// Connections in the order they were opened.
    pub connections: Vec<ConnInfo>,
    /// Events in time order.
    pub events: Vec<Event>,
}

fn ser_bytes<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(2))?;
    match std::str::from_utf8(b) {
        Ok(text) => m.serialize_entry("text", text)?,
        Err(_) => m.serialize_entry("hex", &b.iter().map(|x| format!("{x:02x}")).collect::<String>())?,
    }
    m.serialize_entry("len", &b.len())?;
    m.end()
}

/// A shared, clonable recorder that steps append to.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    inner: Arc<Mutex<Dialogue>>,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            inner: Arc::default(),
        }
    }

    /// Registers a connection and returns its id.
    pub fn open(&self, mut info: ConnInfo) -> usize {
        let mut d = self.lock();
        info.id = d.connections.len();
        let id = info.id;
        d.connections.push(info);
        drop(d);
        self.event(id, EventKind::Open);
        id
    }

    /// Appends an event now.
    pub fn event(&self, conn: usize, kind: EventKind) {
        let t_us = self.start.elapsed().as_micros() as u64;
        self.lock().events.push(Event { t_us, conn, kind });
    }

    /// Time since the case started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// A copy of what was recorded so far.
    pub fn snapshot(&self) -> Dialogue {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Dialogue> {
        // A panic elsewhere must not hide the record of what happened.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// One rendered transcript item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Microseconds since the case started.
    pub t_us: u64,
    /// Connection name.
    pub conn: String,
    /// Direction, for messages and closes.
    pub dir: Option<Direction>,
    /// The rendering.
    pub text: String,
}

/// One framed piece of a dialogue: a message with its parsed form, or an event.
#[derive(Debug, Clone)]
pub struct Framed {
    /// Microseconds since the case started.
    pub t_us: u64,
    /// Connection index.
    pub conn: usize,
    /// Direction, for messages, closes and gaps.
    pub dir: Option<Direction>,
    /// What it is.
    pub what: What,
}

/// What a [`Framed`] piece is.
#[derive(Debug, Clone)]
pub enum What {
    /// A message the codec framed.
    Message(crate::proto::Message),
    /// Bytes the codec rejected: its error and the bytes.
    Undecodable(String, Vec<u8>),
    /// Bytes left unframed when the dialogue ended (the sender stopped mid-message).
    Incomplete(Vec<u8>),
    /// The sender closed its side (FIN).
    Closed,
    /// Where the capture cut a direction's bytes, and bytes that could not be framed until the
    /// stream was found again after it: shown, never judged.
    Cut(String),
    /// Anything else (open, reset, gap, note), as the transcript shows it.
    Event(String),
}

impl Framed {
    /// The transcript text of this piece.
    pub fn text(&self) -> String {
        match &self.what {
            What::Message(m) => m.summary.clone(),
            What::Undecodable(e, b) => format!("undecodable ({e}): \"{}\"", escape_bytes(b, 200)),
            What::Incomplete(b) => format!("incomplete: \"{}\"", escape_bytes(b, 200)),
            What::Closed => "close".into(),
            What::Cut(t) | What::Event(t) => t.clone(),
        }
    }
}

impl Dialogue {
    /// Frames the recorded bytes with `proto`'s codec into transcript items.
    pub fn items(&self, proto: &dyn Protocol) -> Vec<Item> {
        self.items_with(proto, &Context::default())
    }

    /// [`Dialogue::items`], each connection's codecs told `base` (TLS keys, what TLS carries).
    pub fn items_with(&self, proto: &dyn Protocol, base: &Context) -> Vec<Item> {
        let name = |c: usize| self.connections.get(c).map(|i| i.name.clone()).unwrap_or_default();
        self.frames_with(proto, base)
            .into_iter()
            .map(|f| Item {
                t_us: f.t_us,
                conn: name(f.conn),
                dir: f.dir,
                text: f.text(),
            })
            .collect()
    }

    /// Whether the capture of connection `conn` began after the connection did: bytes came
    /// before any handshake was seen, or, in a protocol whose server greets first, the client
    /// spoke first (the greeting is not in the capture, so replies are paired from what follows).
    pub fn joined_late(&self, conn: usize) -> bool {
        let Some(info) = self.connections.get(conn).filter(|c| c.captured && c.transport == Transport::Tcp) else {
            return false;
        };
        let mut own = self.events.iter().filter(|e| e.conn == conn);
        let began_unseen = own
            .clone()
            .find(|e| !matches!(e.kind, EventKind::Note { .. }))
            .is_some_and(|e| matches!(e.kind, EventKind::Data { .. } | EventKind::Closed { .. } | EventKind::Gap { .. }));
        let mut ungreeted = || {
            crate::proto::find(&info.protocol).is_some_and(|p| p.server_greets())
                && own
                    .find_map(|e| match &e.kind {
                        EventKind::Data { dir, .. } => Some(*dir),
                        _ => None,
                    })
                    .is_some_and(|dir| dir == Direction::ClientToServer)
        };
        began_unseen || ungreeted()
    }

    /// Frames the recorded bytes with each connection's codec (`proto` when it names none).
    pub fn frames(&self, proto: &dyn Protocol) -> Vec<Framed> {
        self.frames_with(proto, &Context::default())
    }

    /// What a codec of connection `conn` is told besides its bytes.
    fn context(&self, conn: usize, base: &Context) -> Context {
        let info = self.connections.get(conn);
        let server = info.and_then(|i| match i.captured || i.harness_is_client {
            true => i.peer,
            false => i.local,
        });
        Context {
            server_port: server.map(|a| a.port()),
            ..base.clone()
        }
    }

    /// [`Dialogue::frames`], each connection's codecs told `base` (TLS keys to decrypt with, what
    /// TLS carries) and their server port. A live run's connections never go over to a protocol
    /// that carries others (TLS): the harness recorded what is inside it.
    pub fn frames_with(&self, proto: &dyn Protocol, base: &Context) -> Vec<Framed> {
        let late: Vec<usize> = (0..self.connections.len()).filter(|&c| self.joined_late(c)).collect();
        let contexts: Vec<Context> = (0..self.connections.len()).map(|c| self.context(c, base)).collect();
        let live: Vec<bool> = self.connections.iter().map(|c| !c.captured).collect();
        let fresh = |conn: usize, p: &dyn Protocol, dir: Direction| {
            let mut codec = p.codec_on(dir, Transport::Tcp);
            if let Some(cx) = contexts.get(conn) {
                codec.context(cx);
            }
            if late.contains(&conn) {
                codec.joined_late();
            }
            Framer::new(codec)
        };
        let switch = |conn: usize, from: &dyn Protocol, to: &dyn Protocol| {
            let mut cx = contexts.get(conn).cloned().unwrap_or_default();
            if to.carries_others() {
                cx.carried = Some(from.name()).filter(|_| !from.carries_others());
                cx.inside = None;
            }
            cx
        };
        let mut streams: HashMap<(usize, Direction), Framer> = HashMap::new();
        let mut datagrams: HashMap<(usize, Direction), Box<dyn crate::proto::Codec>> = HashMap::new();
        // Directions a capture cut: their next bytes may start inside a message, so what does
        // not frame is not judged until a message frames again.
        let mut resync: std::collections::HashSet<(usize, Direction)> = std::collections::HashSet::new();
        let mut current: HashMap<usize, &dyn Protocol> = HashMap::new();
        // A data connection (FTP's) carries a file, not messages: its bytes each way are counted
        // and hashed, and shown once, when that direction ends.
        let mut counted: HashMap<(usize, Direction), (u64, sha2::Sha256)> = HashMap::new();
        let count_line = |(n, h): (u64, sha2::Sha256)| {
            use sha2::Digest;
            let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            What::Event(format!("{n} bytes, sha256 {hex}"))
        };
        let mut out = Vec::new();
        for ev in &self.events {
            let info = self.connections.get(ev.conn);
            let mut push = |dir, what| {
                out.push(Framed {
                    t_us: ev.t_us,
                    conn: ev.conn,
                    dir,
                    what,
                })
            };
            if info.is_some_and(|i| crate::proto::is_data_protocol(&i.protocol)) {
                match &ev.kind {
                    EventKind::Data { dir, bytes } => {
                        use sha2::Digest;
                        let (n, h) = counted.entry((ev.conn, *dir)).or_default();
                        *n += bytes.len() as u64;
                        h.update(bytes);
                    }
                    EventKind::Closed { dir } => {
                        if let Some(c) = counted.remove(&(ev.conn, *dir)) {
                            push(Some(*dir), count_line(c));
                        }
                        push(Some(*dir), What::Closed);
                    }
                    EventKind::Open => {
                        let who = match info.is_some_and(|i| i.harness_is_client) {
                            true => "harness is client",
                            false => "harness is server",
                        };
                        push(None, What::Event(format!("open tcp ({who})")));
                    }
                    _ => {}
                }
                continue;
            }
            // Each connection is framed with its own protocol (a suite may speak several), or the
            // one a message of it handed the connection over to.
            let proto = match current.get(&ev.conn) {
                Some(p) => *p,
                None => info.and_then(|i| crate::proto::find(&i.protocol)).unwrap_or(proto),
            };
            match &ev.kind {
                EventKind::Open => {
                    let text = match info {
                        Some(i) if i.captured => format!("open {}", i.transport),
                        Some(i) if i.harness_is_client => format!("open {} (harness is client)", i.transport),
                        Some(i) => format!("open {} (harness is server)", i.transport),
                        None => "open".into(),
                    };
                    push(None, What::Event(text));
                }
                EventKind::Data { dir, bytes } => {
                    let udp = info.is_some_and(|i| i.transport == Transport::Udp);
                    if udp {
                        // One codec per side for the whole conversation, told what the other
                        // side sent: most datagram protocols frame each alone, but QUIC's
                        // Initial keys come from the client's first datagram (RFC 9001 §5.2).
                        datagrams
                            .entry((ev.conn, dir.opposite()))
                            .or_insert_with(|| proto.codec_on(dir.opposite(), Transport::Udp))
                            .peer_sent(bytes);
                        let codec = datagrams
                            .entry((ev.conn, *dir))
                            .or_insert_with(|| proto.codec_on(*dir, Transport::Udp));
                        let cut = resync.remove(&(ev.conn, *dir));
                        match codec.decode(bytes, true) {
                            Ok(Frame::Message(m, _)) => push(Some(*dir), What::Message(m)),
                            Err(e) if cut => push(Some(*dir), What::Cut(format!("not framed, cut by the capture: {e}"))),
                            Err(e) => push(Some(*dir), What::Undecodable(e.to_string(), bytes.clone())),
                            _ => push(Some(*dir), What::Event(format!("datagram \"{}\"", escape_bytes(bytes, 200)))),
                        }
                        continue;
                    }
                    let other = dir.opposite();
                    streams
                        .entry((ev.conn, other))
                        .or_insert_with(|| fresh(ev.conn, proto, other))
                        .peer_sent(bytes);
                    let mut proto = proto;
                    let mut first = true;
                    let mut cut = resync.remove(&(ev.conn, *dir));
                    // Still looking for the stream after a cut: what is held did not frame, and a
                    // new segment is the likeliest place for a message to start.
                    if let Some(held) = streams
                        .get_mut(&(ev.conn, *dir))
                        .filter(|f| cut && !f.pending().is_empty())
                        .map(Framer::take_all)
                    {
                        push(Some(*dir), after_cut(What::Undecodable(String::new(), held), &mut cut));
                    }
                    let live = live.get(ev.conn).copied().unwrap_or(false);
                    loop {
                        let framer = streams.entry((ev.conn, *dir)).or_insert_with(|| fresh(ev.conn, proto, *dir));
                        if std::mem::take(&mut first) {
                            framer.push(bytes);
                        }
                        let step = frame_next(framer, false, proto, live, |w| push(Some(*dir), after_cut(w, &mut cut)));
                        if let Next::HandsOver(next) = step {
                            hand_over(&mut streams, ev.conn, *dir, next, &switch(ev.conn, proto, next));
                            current.insert(ev.conn, next);
                            proto = next;
                        }
                        // Bytes the other side sent may have waited for this message (SMTP
                        // content sent before the 354 is content once the 354 came), and come
                        // before the next one.
                        while let Some(framer) = streams.get_mut(&(ev.conn, other)).filter(|f| !f.pending().is_empty()) {
                            let Some(next) = drain(framer, false, proto, live, |w| push(Some(other), w)) else {
                                break;
                            };
                            hand_over(&mut streams, ev.conn, other, next, &switch(ev.conn, proto, next));
                            current.insert(ev.conn, next);
                            proto = next;
                        }
                        if matches!(step, Next::Nothing) {
                            break;
                        }
                    }
                    if cut {
                        resync.insert((ev.conn, *dir));
                    }
                }
                EventKind::Closed { dir } => {
                    let mut proto = proto;
                    let mut cut = resync.contains(&(ev.conn, *dir));
                    let live = live.get(ev.conn).copied().unwrap_or(false);
                    while let Some(framer) = streams.get_mut(&(ev.conn, *dir)) {
                        let Some(next) = drain(framer, true, proto, live, |w| push(Some(*dir), after_cut(w, &mut cut))) else {
                            break;
                        };
                        hand_over(&mut streams, ev.conn, *dir, next, &switch(ev.conn, proto, next));
                        current.insert(ev.conn, next);
                        proto = next;
                    }
                    push(Some(*dir), What::Closed);
                }
                EventKind::Reset => push(None, What::Event("reset".into())),
                EventKind::Refused => push(None, What::Event("connection refused".into())),
                EventKind::Gap { dir, len } => {
                    // Framing cannot continue across missing bytes: flush what was buffered and
                    // start the direction afresh.
                    if let Some(mut framer) = streams.remove(&(ev.conn, *dir)) {
                        let live = live.get(ev.conn).copied().unwrap_or(false);
                        drain(&mut framer, true, proto, live, |w| push(Some(*dir), w));
                    }
                    push(Some(*dir), What::Event(format!("gap: {len} bytes missing")));
                }
                EventKind::Cut { dir, len } => {
                    // What the codec holds of the message under way stays unframed and unjudged:
                    // its rest was sent, only not captured.
                    let held = streams.remove(&(ev.conn, *dir)).map(|mut f| f.take_all()).unwrap_or_default();
                    let text = match held.len() {
                        0 => format!("cut by the capture: {len} bytes not captured"),
                        n => format!(
                            "cut by the capture: {len} bytes not captured, after {n} bytes of a message (\"{}\")",
                            escape_bytes(&held, 80)
                        ),
                    };
                    push(Some(*dir), What::Cut(text));
                    resync.insert((ev.conn, *dir));
                }
                EventKind::Note { text } => push(None, What::Event(format!("note: {text}"))),
                EventKind::Tls { text } => push(None, What::Event(format!("tls: {text}"))),
                // Figures are read by reports (`report::figures`), not shown as traffic.
                EventKind::Figure { .. } => {}
            }
        }
        let mut left: Vec<_> = counted.into_iter().collect();
        left.sort_by_key(|((c, d), _)| (*c, *d == Direction::ServerToClient));
        for ((c, dir), totals) in left {
            out.push(Framed {
                t_us: self.events.last().map_or(0, |e| e.t_us),
                conn: c,
                dir: Some(dir),
                what: count_line(totals),
            });
        }
        // Bytes still unframed at the end were never completed by the peer.
        let mut rest: Vec<_> = streams.into_iter().filter(|(_, f)| !f.pending().is_empty()).collect();
        rest.sort_by_key(|((c, _), _)| *c);
        for ((c, dir), mut framer) in rest {
            let held = framer.take_all();
            let what = match resync.contains(&(c, dir)) {
                true => What::Cut(format!(
                    "not framed after the cut: {} bytes (\"{}\")",
                    held.len(),
                    escape_bytes(&held, 80)
                )),
                false => What::Incomplete(held),
            };
            out.push(Framed {
                t_us: self.events.last().map_or(0, |e| e.t_us),
                conn: c,
                dir: Some(dir),
                what,
            });
        }
        out
    }

    /// The transcript in a form that is the same on every run, for snapshots: each connection
    /// (by name) and direction on its own, since the interleaving of connections and of the two
    /// directions depends on scheduling; ports, dates, times, DNS ids, ETags and other
    /// generated values replaced by placeholders.
    pub fn stable_transcript(&self, proto: &dyn Protocol) -> String {
        let mut groups: std::collections::BTreeMap<(String, &'static str), Vec<String>> = std::collections::BTreeMap::new();
        // An actor answers whatever arrives, from as many source ports and with as many retries
        // as the program's timing makes: what is stable is the set of distinct messages it saw and
        // sent, not their number or its conversations.
        let actors: std::collections::HashSet<&str> = self.connections.iter().filter(|c| c.actor).map(|c| c.name.as_str()).collect();
        for it in self.items(proto) {
            let is_actor = actors.contains(it.conn.as_str());
            let Some(side) = it.dir.map(Direction::arrow).or((!is_actor).then_some("events")) else {
                continue;
            };
            // Whether a client closes its connection to an actor before the case ends is timing.
            if is_actor && matches!(it.text.as_str(), "close" | "reset") {
                continue;
            }
            let conn_proto = self
                .connections
                .iter()
                .find(|c| c.name == it.conn)
                .and_then(|c| crate::proto::find(&c.protocol))
                .unwrap_or(proto);
            if conn_proto.snapshot_skips(&it.text) || (is_actor && conn_proto.actor_snapshot_skips(&it.text)) {
                continue;
            }
            let texts = groups.entry((it.conn, side)).or_default();
            let text = conn_proto.snapshot_line(&normalize(&it.text));
            if !is_actor || !texts.contains(&text) {
                texts.push(text);
            }
        }
        for ((conn, side), texts) in groups.iter_mut() {
            if actors.contains(conn.as_str()) {
                texts.sort();
                continue;
            }
            // Sub-streams that interleave (HTTP/2 streams) in an order scheduling decides:
            // each keeps its own order, the streams follow one another.
            let info = self.connections.iter().find(|c| c.name == *conn);
            let p = info.and_then(|c| crate::proto::find(&c.protocol)).unwrap_or(proto);
            texts.sort_by_key(|t| p.interleaved_key(t).unwrap_or(0));
            // How the peer cut what it sent is its choice at the moment; what the harness sent
            // is the case's, and stays as sent.
            let peer = info.map_or(Direction::ServerToClient, |c| match c.harness_is_client {
                true => Direction::ServerToClient,
                false => Direction::ClientToServer,
            });
            if *side != peer.arrow() {
                // A query asked again while the peer learns (`retry`) shows once where the
                // protocol says its count is timing.
                if p.snapshot_dedup_sent() {
                    texts.dedup();
                }
                continue;
            }
            let mut merged: Vec<String> = Vec::with_capacity(texts.len());
            for t in texts.drain(..) {
                match merged.last().and_then(|last| p.snapshot_merge(last, &t)) {
                    Some(m) => *merged.last_mut().expect("merged with the last") = m,
                    None => merged.push(t),
                }
            }
            *texts = merged;
        }
        let mut s = String::new();
        for ((conn, side), texts) in groups {
            s.push_str(&format!("{conn} {side}\n"));
            for t in texts {
                s.push_str(&format!("  {}\n", t.replace('\n', "\n  ")));
            }
        }
        s
    }

    /// Renders the transcript, one line per item; `times` adds `+12.3ms` stamps.
    pub fn transcript(&self, proto: &dyn Protocol, times: bool) -> String {
        self.transcript_with(proto, times, &Context::default())
    }

    /// [`Dialogue::transcript`], each connection's codecs told `base` (see [`Dialogue::frames_with`]).
    pub fn transcript_with(&self, proto: &dyn Protocol, times: bool, base: &Context) -> String {
        let mut s = String::new();
        for it in self.items_with(proto, base) {
            if times {
                s.push_str(&format!("{:>9.1}ms ", it.t_us as f64 / 1000.0));
            }
            let arrow = it.dir.map_or("   ", Direction::arrow);
            let pad = if times { " ".repeat(23) } else { " ".repeat(11) };
            let text = it.text.replace('\n', &format!("\n{pad}"));
            s.push_str(&format!("{:<6} {arrow} {text}\n", it.conn));
        }
        s
    }
}

/// Replaces what differs from run to run (ports, dates, clock readings, generated ids) with placeholders.
pub fn normalize(text: &str) -> String {
    static RULES: std::sync::OnceLock<Vec<(regex::Regex, &'static str)>> = std::sync::OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (r"\b(127\.\d+\.\d+\.\d+|\[::1\]|localhost):\d+", "$1:PORT"),
            (
                r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d (GMT|[+-]\d{4})",
                "DATE",
            ),
            (r"\b\d{1,2}-\w{3}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}", "DATE"),
            // Seconds since the epoch with a fraction (the pinger's timestamps).
            (r"\b1\d{9}\.\d+", "TIME"),
            (r"\bid: \d+", "id: ID"),
            (r"\b(UIDVALIDITY|APPENDUID|COPYUID) \d+", "$1 N"),
            (r#"(?i)\b(ETag|If-None-Match|If-Match): (W/)?"[^"]*""#, r#"$1: "ETAG""#),
            // A cache's Age counts the seconds a response has been stored (RFC 9111 §5.1).
            (r"(?mi)^(\s*Age): \d+", "$1: AGE"),
            // A dig-style record's TTL counts down in a cache.
            (r"(?m)^(\s*\S+\.)\s+\d+\s+(IN|CH|HS)\s", "$1 TTL $2 "),
            // FTP data ports are whatever was free: PORT and 227's h1,h2,h3,h4,p1,p2 (RFC 959
            // §4.1.2), EPRT's |1|host|port| and 229's (|||port|) (RFC 2428).
            (r"\b(\d{1,3},\d{1,3},\d{1,3},\d{1,3}),\d{1,3},\d{1,3}\b", "$1,P1,P2"),
            (r"\|([12])\|([0-9a-fA-F.:]+)\|\d+\|", "|$1|$2|PORT|"),
            (r"\(\|\|\|\d+\|\)", "(|||PORT|)"),
            // A listing's and MDTM's times are the files' (those of the checkout).
            (
                r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d ( \d{4}|\d\d:\d\d)\b",
                "MTIME",
            ),
            (r"(?m)^213 \d{14}(\.\d+)?$", "213 MTIME"),
            // BitTorrent peer ids end in random characters (Azureus style, -XX0000- first), and
            // a UDP tracker's connection ids are random (BEP 15).
            (r"-([A-Za-z]{2})(\d{4})-[0-9A-Za-z]{12}", "-$1$2-PEERIDPEERID"),
            (r"\bcid 0x[0-9a-f]+", "cid CID"),
            // A listing's permission bits follow the checkout's umask, and a folder's size its
            // file system (4096 on ext4, other numbers on tmpfs or btrfs).
            (
                r#"(?m)(^|[\s"])d[-rwxsStT]{9}(\s+\d+\s+\S+\s+\S+\s+)\d+(\s+MTIME)"#,
                "${1}dMODE${2}SIZE${3}",
            ),
            (
                r#"(?m)(^|[\s"])([-l])[-rwxsStT]{9}(\s+\d+\s+\S+\s+\S+\s+\d+\s+MTIME)"#,
                "${1}${2}MODE${3}",
            ),
        ]
        .into_iter()
        .map(|(re, to)| (regex::Regex::new(re).expect("a valid pattern"), to))
        .collect()
    });
    let mut out = text.to_string();
    for (re, to) in rules {
        if re.is_match(&out) {
            out = re.replace_all(&out, *to).into_owned();
        }
    }
    out
}

/// What framing one message gave.
enum Next {
    /// No whole message (or bytes the codec rejected, which end the stream's framing).
    Nothing,
    /// A message.
    Framed,
    /// A message that hands the connection to this protocol.
    HandsOver(&'static dyn Protocol),
}

/// Frames the next whole message `framer` holds; `live`: on a connection a live run recorded,
/// which never goes over to a protocol that carries others (the harness recorded what is inside).
fn frame_next(framer: &mut Framer, eof: bool, proto: &dyn Protocol, live: bool, mut push: impl FnMut(What)) -> Next {
    match framer.next(eof) {
        Ok(Some(m)) => {
            let next = crate::proto::hands_over(proto, &m).filter(|n| !(live && n.carries_others()));
            push(What::Message(m));
            next.map_or(Next::Framed, Next::HandsOver)
        }
        Ok(None) => Next::Nothing,
        Err(e) => {
            push(What::Undecodable(e.to_string(), framer.take_all()));
            Next::Nothing
        }
    }
}

/// Frames every whole message `framer` holds; bytes its codec rejects end the stream's framing.
/// Stops after a message that hands the connection to another protocol, and returns that one.
fn drain(framer: &mut Framer, eof: bool, proto: &dyn Protocol, live: bool, mut push: impl FnMut(What)) -> Option<&'static dyn Protocol> {
    loop {
        match frame_next(framer, eof, proto, live, &mut push) {
            Next::Nothing => return None,
            Next::Framed => {}
            Next::HandsOver(next) => return Some(next),
        }
    }
}

/// A framed piece of a direction the capture cut (`cut`): bytes that do not frame are where the
/// stream is not found yet, shown but not judged; the first message found ends that.
fn after_cut(w: What, cut: &mut bool) -> What {
    match w {
        What::Undecodable(_, b) if *cut => What::Cut(format!(
            "not framed after the cut: {} bytes (\"{}\")",
            b.len(),
            escape_bytes(&b, 80)
        )),
        What::Message(m) => {
            *cut = false;
            What::Message(m)
        }
        other => other,
    }
}

/// Gives both directions of connection `conn` codecs of `next`, told `cx`, keeping their unframed
/// bytes: what each side sent after the switch is framed by `next` and told to the other side's codec.
fn hand_over(streams: &mut HashMap<(usize, Direction), Framer>, conn: usize, dir: Direction, next: &dyn Protocol, cx: &Context) {
    let mut rest = Vec::new();
    for d in [dir, dir.opposite()] {
        let pending = streams.remove(&(conn, d)).map(|mut f| f.take_all()).unwrap_or_default();
        let mut codec = next.codec_on(d, Transport::Tcp);
        codec.context(cx);
        let mut f = Framer::new(codec);
        f.push(&pending);
        streams.insert((conn, d), f);
        rest.push(pending);
    }
    for (d, bytes) in [(dir.opposite(), &rest[0]), (dir, &rest[1])] {
        if let Some(f) = streams.get_mut(&(conn, d)) {
            f.peer_sent(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_replaces_what_changes_between_runs() {
        let t = "Host: 127.0.0.1:40123\nDate: Sat, 21 Nov 2026 20:28:29 GMT\nETag: \"18ea-1fa\"\n\
                 ;; id: 4711\n  www.example.test. 299 IN A 10.0.0.1\nPing 3 1795292919.843008\n* OK [UIDVALIDITY 1795292912]";
        assert_eq!(
            normalize(t),
            "Host: 127.0.0.1:PORT\nDate: DATE\nETag: \"ETAG\"\n;; id: ID\n  www.example.test. TTL IN A 10.0.0.1\nPing 3 TIME\n* OK [UIDVALIDITY N]"
        );
        assert_eq!(
            normalize("PORT 127,0,0,1,195,80\n227 Entering Passive Mode (127,0,0,1,4,1).\nEPRT |1|127.0.0.1|50000|\n229 ok (|||6446|)\n-rw-r--r-- 1 ftp ftp 123 Dec  6 16:32 lines.txt\n\"drwxrwxr-x 1 ftp ftp   60 Jan 15  2025 pub\"\n213 20261206163200"),
            "PORT 127,0,0,1,P1,P2\n227 Entering Passive Mode (127,0,0,1,P1,P2).\nEPRT |1|127.0.0.1|PORT|\n229 ok (|||PORT|)\n-MODE 1 ftp ftp 123 MTIME lines.txt\n\"dMODE 1 ftp ftp   SIZE MTIME pub\"\n213 MTIME"
        );
        // What a case checks stays: status codes, sizes, names.
        assert_eq!(
            normalize("HTTP/1.1 304 Not Modified\nContent-Length: 506"),
            "HTTP/1.1 304 Not Modified\nContent-Length: 506"
        );
    }
    use crate::proto;

    #[test]
    fn frames_split_stream_into_lines() {
        let rec = Recorder::new();
        let c = rec.open(ConnInfo::test_tcp(false));
        let data = |dir, b: &[u8]| EventKind::Data { dir, bytes: b.to_vec() };
        rec.event(c, data(Direction::ClientToServer, b"hel"));
        rec.event(c, data(Direction::ClientToServer, b"lo\n"));
        rec.event(c, data(Direction::ServerToClient, b"HELLO\nPART"));
        rec.event(
            c,
            EventKind::Closed {
                dir: Direction::ServerToClient,
            },
        );
        let t = rec.snapshot().transcript(proto::find("line").unwrap(), false);
        assert_eq!(
            t,
            "c          open tcp (harness is client)\nc      C→S \"hello\"\nc      S→C \"HELLO\"\nc      S→C \"PART\" (no line ending)\nc      S→C close\n"
        );
        let json = serde_json::to_string(&rec.snapshot()).unwrap();
        assert!(
            json.contains(r#""kind":"data","dir":"c2s","bytes":{"text":"hel","len":3}"#),
            "{json}"
        );
    }

    /// A captured conversation: `plain` exchanged in clear first, then the TLS session's records.
    fn tls_dialogue(protocol: &str, port: u16, plain: &[(Direction, &[u8])], tls: &crate::proto::tls::testing::Session) -> Dialogue {
        let mut info = ConnInfo::test_tcp(true);
        info.protocol = protocol.into();
        info.local = Some("10.0.0.1:40000".parse().unwrap());
        info.peer = Some(format!("10.0.0.2:{port}").parse().unwrap());
        let mut events = vec![Event {
            t_us: 0,
            conn: 0,
            kind: EventKind::Open,
        }];
        let chunks = plain.iter().map(|(d, b)| (*d, b.to_vec())).chain(tls.chunks.iter().cloned());
        for (i, (dir, bytes)) in chunks.enumerate() {
            events.push(Event {
                t_us: i as u64 + 1,
                conn: 0,
                kind: EventKind::Data { dir, bytes },
            });
        }
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            events.push(Event {
                t_us: 1000,
                conn: 0,
                kind: EventKind::Closed { dir },
            });
        }
        Dialogue {
            connections: vec![info],
            events,
        }
    }

    fn keys(text: &str) -> Context {
        Context {
            keys: Some(Arc::new(crate::proto::KeyLog::parse(text).unwrap())),
            ..Context::default()
        }
    }

    fn musts(d: &Dialogue, k: &Context) -> Vec<String> {
        d.frames_with(proto::find("tls").unwrap(), k)
            .iter()
            .flat_map(|f| match &f.what {
                What::Message(m) => m
                    .findings
                    .iter()
                    .filter(|x| x.level == crate::proto::Level::Must)
                    .map(|x| x.to_string())
                    .collect(),
                What::Undecodable(e, _) => vec![e.clone()],
                _ => Vec::new(),
            })
            .collect()
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: mail.example\r\n\r\n";
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn tls_records_decrypt_with_the_key_log_for_every_aead_suite_of_tls12_and_tls13() {
        use rustls::crypto::ring::cipher_suite as cs;
        let suites = [
            (
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                "TLS 1.2, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            ),
            (
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                "TLS 1.2, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            ),
            (
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                "TLS 1.2, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            ),
            (cs::TLS13_AES_128_GCM_SHA256, "TLS 1.3, TLS_AES_128_GCM_SHA256"),
            (cs::TLS13_AES_256_GCM_SHA384, "TLS 1.3, TLS_AES_256_GCM_SHA384"),
            (cs::TLS13_CHACHA20_POLY1305_SHA256, "TLS 1.3, TLS_CHACHA20_POLY1305_SHA256"),
        ];
        for (suite, hello) in suites {
            let s = crate::proto::tls::testing::session(suite, Some("http/1.1"), &[GET, GET], &[OK, OK]);
            // ALPN, not the port (8443 names nothing), says the data is HTTP.
            let d = tls_dialogue("tls", 8443, &[], &s);
            let k = keys(&s.keylog);
            let t = d.transcript_with(proto::find("tls").unwrap(), false, &k);
            assert!(t.contains(&format!("TLS ServerHello: {hello}")), "{t}");
            assert!(t.contains("SNI mail.example; ALPN [http/1.1]; supported TLS 1."), "{t}");
            assert!(t.contains("CN=rcgen self signed cert"), "{t}");
            assert_eq!(t.matches("C→S GET / HTTP/1.1").count(), 2, "{t}");
            assert_eq!(t.matches("S→C HTTP/1.1 200 OK").count(), 2, "{t}");
            assert!(t.contains("TLS alert: warning close_notify"), "{t}");
            assert!(!t.contains("not decrypted") && !t.contains("application data,"), "{t}");
            assert!(musts(&d, &k).is_empty(), "{:?}\n{t}", musts(&d, &k));

            // Without the key log: the records, by size.
            let plain = d.transcript(proto::find("tls").unwrap(), false);
            assert!(plain.contains("TLS application data, "), "{plain}");
            assert!(!plain.contains("GET /"), "{plain}");
            assert!(musts(&d, &Context::default()).is_empty(), "{plain}");

            // A key log for the same connection with other secrets: a note, never garbage.
            let wrong: String = s
                .keylog
                .lines()
                .map(|l| {
                    let (head, secret) = l.rsplit_once(' ').unwrap();
                    let flipped: String = secret.chars().map(|c| if c == '0' { '1' } else { '0' }).collect();
                    format!("{head} {flipped}\n")
                })
                .collect();
            let w = keys(&wrong);
            let t = d.transcript_with(proto::find("tls").unwrap(), false, &w);
            assert!(t.contains("not decrypted: a record did not decrypt"), "{t}");
            assert!(!t.contains("GET /") && !t.contains("undecodable"), "{t}");
            assert!(musts(&d, &w).is_empty(), "{t}");
        }
    }

    #[test]
    fn tls_decrypts_the_same_whatever_the_segments() {
        let suite = rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
        let s = crate::proto::tls::testing::session(suite, Some("http/1.1"), &[GET, GET], &[OK, OK]);
        let k = keys(&s.keylog);
        let whole = tls_dialogue("tls", 443, &[], &s).transcript_with(proto::find("tls").unwrap(), false, &k);
        let pieces = crate::proto::tls::testing::Session {
            chunks: s
                .chunks
                .iter()
                .flat_map(|(d, b)| b.chunks(7).map(|p| (*d, p.to_vec())).collect::<Vec<_>>())
                .collect(),
            keylog: s.keylog.clone(),
        };
        let split = tls_dialogue("tls", 443, &[], &pieces).transcript_with(proto::find("tls").unwrap(), false, &k);
        assert_eq!(split, whole);
        assert_eq!(whole.matches("GET / HTTP/1.1").count(), 2, "{whole}");
    }

    #[test]
    fn tls13_key_updates_move_each_direction_to_its_next_secret() {
        let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
        let s = crate::proto::tls::testing::session_updating(suite, Some("http/1.1"), &[GET, GET, GET], &[OK, OK, OK], true);
        let d = tls_dialogue("tls", 443, &[], &s);
        let t = d.transcript_with(proto::find("tls").unwrap(), false, &keys(&s.keylog));
        assert_eq!(t.matches("TLS KeyUpdate: update_not_requested").count(), 4, "{t}");
        assert_eq!(t.matches("C→S GET / HTTP/1.1").count(), 3, "{t}");
        assert_eq!(t.matches("S→C HTTP/1.1 200 OK").count(), 3, "{t}");
        assert!(!t.contains("not decrypted"), "{t}");
    }

    #[test]
    fn tls_after_starttls_is_shown_as_tls_and_decrypted_as_the_protocol_it_began_in() {
        use rustls::crypto::ring::cipher_suite as cs;
        let (c, s) = (Direction::ClientToServer, Direction::ServerToClient);
        let plain: [(Direction, &[u8]); 5] = [
            (s, b"220 mx.example ESMTP\r\n"),
            (c, b"EHLO client.example\r\n"),
            (s, b"250-mx.example\r\n250 STARTTLS\r\n"),
            (c, b"STARTTLS\r\n"),
            (s, b"220 2.0.0 Ready to start TLS\r\n"),
        ];
        for suite in [cs::TLS13_AES_128_GCM_SHA256, cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256] {
            let tls = crate::proto::tls::testing::session(
                suite,
                None,
                &[b"EHLO client.example\r\n", b"QUIT\r\n"],
                &[b"250-mx.example\r\n250 AUTH PLAIN\r\n", b"221 bye\r\n"],
            );
            let d = tls_dialogue("smtp", 25, &plain, &tls);
            let t = d.transcript(proto::find("smtp").unwrap(), false);
            assert!(t.contains("S→C 220 2.0.0 Ready to start TLS\nc      C→S TLS ClientHello"), "{t}");
            assert!(t.contains("TLS application data, "), "{t}");
            assert_eq!(t.matches("EHLO").count(), 1, "{t}");
            let k = keys(&tls.keylog);
            let t = d.transcript_with(proto::find("smtp").unwrap(), false, &k);
            assert!(t.contains("TLS decrypted: smtp inside"), "{t}");
            assert_eq!(t.matches("C→S \"EHLO client.example\"").count(), 2, "{t}");
            assert!(
                t.contains("250 AUTH PLAIN") && t.contains("C→S \"QUIT\"") && t.contains("S→C 221 bye"),
                "{t}"
            );
            assert!(!t.contains("undecodable"), "{t}");
        }
    }
}
