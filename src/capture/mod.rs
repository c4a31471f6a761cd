//! Capture decoding: a pcap or pcapng file → one [`Dialogue`] per conversation.
//!
//! `file` streams packets, `packet` strips link, IP and transport headers, `defrag` reassembles
//! IPv4 and IPv6 fragments, `tcp` puts each connection's bytes in order. Every conversation becomes a
//! Dialogue of raw bytes, framed by a protocol codec only when rendered, exactly like a live run.

pub mod check;
pub mod compare;
pub mod defrag;
pub mod file;
pub mod live;
pub mod packet;
pub mod replay;
pub mod tcp;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::dialogue::{ConnInfo, Dialogue, Event, EventKind};
use crate::proto::{self, DataChannel, Direction, Exchange, Framer, Message, Protocol, Transport};

use crate::proto::KeyLog;
pub use file::{FileError, RawPacket, Secrets};
use std::sync::Arc;

/// What the user told the decoder.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--port N=proto`: conversations with this port (either side) speak that protocol.
    pub ports: Vec<(u16, String)>,
    /// `--keylog FILE`: TLS secrets to decrypt with, besides the file's own.
    pub keylog: Option<Arc<KeyLog>>,
}

impl Options {
    /// Parses `N=proto` pairs, checking the protocol exists.
    pub fn from_args(args: &[String]) -> Result<Options, String> {
        let mut ports = Vec::new();
        for a in args {
            let (n, p) = a.split_once('=').ok_or_else(|| format!("--port '{a}' is not N=PROTO"))?;
            let n: u16 = n.trim().parse().map_err(|_| format!("--port '{a}': '{n}' is not a port number"))?;
            if crate::proto::find(p.trim()).is_none() {
                let names: Vec<_> = crate::proto::all().iter().map(|p| p.name()).collect();
                return Err(format!("--port '{a}': unknown protocol '{p}' (known: {})", names.join(", ")));
            }
            ports.push((n, p.trim().to_string()));
        }
        Ok(Options { ports, keylog: None })
    }

    fn user(&self, port: u16) -> Option<&str> {
        self.ports.iter().find(|(n, _)| *n == port).map(|(_, p)| p.as_str())
    }
}

/// One conversation of a capture.
#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    /// 1-based, in the order of the conversations' first packets.
    pub number: usize,
    /// tcp or udp.
    pub transport: Transport,
    /// The SYN sender, else the side with the ephemeral port.
    pub client: SocketAddr,
    /// The other side.
    pub server: SocketAddr,
    /// The interface and VLANs it was seen on.
    pub scope: Scope,
    /// The protocol its bytes are framed with.
    pub protocol: String,
    /// Packets that belonged to it.
    pub packets: usize,
    /// Whether the capture cut some of its packets (snaplen).
    pub truncated: bool,
    /// Capture time of its first packet, microseconds since the epoch.
    pub start_us: u64,
    /// What each side sent; event times are microseconds since the capture's first packet.
    pub dialogue: Dialogue,
    /// For a data connection: the control conversation and the command it belongs to.
    pub data_of: Option<DataOf>,
    /// TLS secrets its records are decrypted with (`--keylog` and the file's own).
    #[serde(skip)]
    pub keys: Option<Arc<KeyLog>>,
    /// What its protocol carries from the start, when `--port` named one for a conversation that
    /// opens in TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inside: Option<&'static str>,
}

/// Where a data connection came from: the control conversation that announced its address, and
/// the command that used it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataOf {
    /// The control conversation's number.
    pub control: usize,
    /// The index of the announcing message among the control conversation's exchanges (its
    /// messages, closes and unframed bytes, in order), as `Protocol::data_channels` counts them.
    pub announced_at: usize,
    /// The announcing message's first line (`227 Entering Passive Mode (…)`, `PORT …`).
    pub announced: String,
    /// The command that used it (`RETR robots.txt`), when the capture shows one.
    pub command: Option<String>,
}

impl Conversation {
    /// `tcp 10.0.0.1:51234 -> 10.0.0.2:80 (http), 12 packets`.
    pub fn header(&self) -> String {
        format!(
            "{} {} -> {} ({}), {} packet{}{}{}",
            self.transport,
            self.client,
            self.server,
            self.protocol,
            self.packets,
            if self.packets == 1 { "" } else { "s" },
            self.scope.label(),
            if self.truncated { ", truncated by the capture" } else { "" }
        )
    }

    /// The transcript, framed with the conversation's protocol; a data connection's bytes are
    /// counted and hashed, not framed.
    pub fn transcript(&self) -> String {
        match &self.data_of {
            Some(of) => self.data_transcript(of),
            None => self
                .dialogue
                .transcript_with(proto::find_or_raw(&self.protocol), false, &self.context()),
        }
    }

    /// What its codecs are told besides its bytes: the TLS keys, and what TLS carries.
    pub fn context(&self) -> proto::Context {
        proto::Context {
            keys: self.keys.clone(),
            inside: self.inside,
            ..proto::Context::default()
        }
    }

    /// `RETR a -> data <listener> <- <connector>, 77 bytes, sha256 …`, then the events with each
    /// direction's bytes as one count.
    fn data_transcript(&self, of: &DataOf) -> String {
        use sha2::{Digest, Sha256};
        let dirs = [Direction::ClientToServer, Direction::ServerToClient];
        let mut totals = [0u64; 2];
        let mut hashes = [Sha256::new(), Sha256::new()];
        for e in &self.dialogue.events {
            if let EventKind::Data { dir, bytes } = &e.kind {
                let i = usize::from(*dir == Direction::ServerToClient);
                totals[i] += bytes.len() as u64;
                hashes[i].update(bytes);
            }
        }
        let hex = |h: Sha256| h.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>();
        let sent: Vec<String> = dirs
            .iter()
            .zip(totals)
            .zip(hashes)
            .filter(|((_, n), _)| *n > 0)
            .map(|((d, n), h)| (d, n, hex(h)))
            .map(|(d, n, h)| match totals.iter().filter(|t| **t > 0).count() {
                1 => format!("{n} bytes, sha256 {h}"),
                _ => format!("{n} bytes {}, sha256 {h}", d.arrow()),
            })
            .collect();
        let sent = if sent.is_empty() { "0 bytes".to_string() } else { sent.join("; ") };
        let command = of.command.as_deref().unwrap_or("(no transfer command)");
        let name = self.dialogue.connections.first().map_or("c", |c| c.name.as_str());
        let mut s = format!(
            "{name:<6}     {command} -> data {} <- {}, {sent} (conversation {}, announced by \"{}\")\n",
            self.server, self.client, of.control, of.announced
        );
        let mut shown = [false; 2];
        for e in &self.dialogue.events {
            let (dir, text) = match &e.kind {
                EventKind::Open => (None, format!("open {}", self.transport)),
                EventKind::Data { dir, .. } => {
                    let i = usize::from(*dir == Direction::ServerToClient);
                    if std::mem::replace(&mut shown[i], true) {
                        continue;
                    }
                    (Some(*dir), format!("{} bytes", totals[i]))
                }
                EventKind::Closed { dir } => (Some(*dir), "close".into()),
                EventKind::Reset => (None, "reset".into()),
                EventKind::Refused => (None, "connection refused".into()),
                EventKind::Gap { dir, len } => (Some(*dir), format!("gap: {len} bytes missing")),
                EventKind::Cut { dir, len } => (Some(*dir), format!("cut by the capture: {len} bytes not captured")),
                EventKind::Note { text } => (None, format!("note: {text}")),
                EventKind::Tls { text } => (None, format!("tls: {text}")),
                EventKind::Figure { name, value, .. } => (None, format!("figure: {name} {value}")),
            };
            s.push_str(&format!("{name:<6} {} {text}\n", dir.map_or("   ", Direction::arrow)));
        }
        s
    }
}

/// A decoded capture.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    /// Conversations in the order their first packet appears.
    pub conversations: Vec<Conversation>,
    /// Packets read.
    pub packets: u64,
    /// Packets that were not IP, TCP or UDP (ARP, ICMP, …).
    pub skipped: u64,
    /// Remarks that did not stop decoding (`packet 17: …`).
    pub warnings: Vec<String>,
    /// Where the file is damaged (cut short, or a packet that cannot be read or decoded):
    /// decoding stopped there, and the conversations hold everything before it.
    pub damage: Option<FileError>,
}

impl Capture {
    /// Every conversation: a `== header` line, then its transcript.
    pub fn text(&self) -> String {
        self.conversations
            .iter()
            .map(|c| format!("== {}\n{}", c.header(), c.transcript()))
            .collect()
    }
}

struct Conv {
    number: usize,
    scope: Scope,
    last_ts: Duration,
    transport: Transport,
    client: SocketAddr,
    server: SocketAddr,
    packets: usize,
    truncated: bool,
    first_ts: Duration,
    tcp: tcp::TcpConn,
    udp: Vec<(Duration, EventKind)>,
    /// Followed as a control conversation: its protocol announces data connections.
    control: Option<Box<Control>>,
    /// Its protocol was found to open no data connections.
    not_control: bool,
    /// A data connection: where it came from.
    data_of: Option<DataOf>,
    /// What its control conversation's protocol calls data connections.
    data_label: Option<&'static str>,
}

/// Exchanges of a control conversation kept for its protocol's `data_channels`: a data connection
/// opens a few messages after its announcement, so the recent ones are enough and memory stays
/// bounded however long the session.
const WINDOW: usize = 256;

/// A control conversation framed as its packets come, so a data connection is tied to its
/// announcement when it opens: the announcement always comes before the data connection's SYN,
/// while the control conversation itself is usually over only after its data connections.
struct Control {
    proto: &'static dyn Protocol,
    /// One framer per direction (`Direction` as index 0 client, 1 server).
    framers: [Option<Framer>; 2],
    /// Directions the capture cut, until a message frames again (as in `Dialogue::frames`,
    /// what does not frame meanwhile is no exchange).
    resync: [bool; 2],
    /// How many of the reassembler's events are framed.
    seen: usize,
    /// The latest exchanges, with their times; `first` is the oldest one's index in the whole
    /// conversation.
    window: VecDeque<(Duration, Owned)>,
    first: usize,
    /// Exchanges came since `channels` was last brought up to date.
    stale: bool,
    /// Announcements seen (at most `WINDOW`), oldest first, indices counted over the whole
    /// conversation.
    channels: VecDeque<Announced>,
}

/// An exchange as the control conversation keeps it.
enum Owned {
    Message(Direction, Message),
    Closed(Direction),
    Unframed(Direction),
}

/// One announcement of a data address.
struct Announced {
    t: Duration,
    channel: DataChannel,
    text: String,
    command: Option<String>,
}

fn side(dir: Direction) -> usize {
    usize::from(dir == Direction::ServerToClient)
}

impl Control {
    fn new(proto: &'static dyn Protocol) -> Control {
        Control {
            proto,
            framers: [None, None],
            resync: [false, false],
            seen: 0,
            window: VecDeque::new(),
            first: 0,
            stale: false,
            channels: VecDeque::new(),
        }
    }

    fn push(&mut self, t: Duration, ex: Owned) {
        self.window.push_back((t, ex));
        if self.window.len() > WINDOW {
            self.window.pop_front();
            self.first += 1;
        }
        self.stale = true;
    }

    /// Frames one direction's whole messages; bytes the codec rejects end that stream's framing,
    /// as in `Dialogue::frames`, so exchanges are counted the same way.
    fn drain(&mut self, dir: Direction, t: Duration, eof: bool) {
        loop {
            let Some(framer) = self.framers[side(dir)].as_mut() else { return };
            match framer.next(eof) {
                Ok(Some(m)) => {
                    self.resync[side(dir)] = false;
                    self.push(t, Owned::Message(dir, m));
                }
                Ok(None) => return,
                Err(_) => {
                    framer.take_all();
                    if !self.resync[side(dir)] {
                        self.push(t, Owned::Unframed(dir));
                    }
                    return;
                }
            }
        }
    }

    /// Frames the reassembler's events not seen yet.
    fn feed(&mut self, events: &[(Duration, EventKind)]) {
        for (t, ev) in events.get(self.seen..).unwrap_or_default() {
            match ev {
                EventKind::Data { dir, bytes } => {
                    let proto = self.proto;
                    let other = dir.opposite();
                    // As `Dialogue::frames` does: after a cut, a new segment starts afresh.
                    if self.resync[side(*dir)] {
                        if let Some(f) = self.framers[side(*dir)].as_mut() {
                            f.take_all();
                        }
                    }
                    self.framers[side(other)]
                        .get_or_insert_with(|| Framer::new(proto.codec_on(other, Transport::Tcp)))
                        .peer_sent(bytes);
                    self.framers[side(*dir)]
                        .get_or_insert_with(|| Framer::new(proto.codec_on(*dir, Transport::Tcp)))
                        .push(bytes);
                    self.drain(*dir, *t, false);
                }
                EventKind::Closed { dir } => {
                    self.drain(*dir, *t, true);
                    self.push(*t, Owned::Closed(*dir));
                }
                EventKind::Gap { dir, .. } => {
                    self.drain(*dir, *t, true);
                    self.framers[side(*dir)] = None;
                }
                EventKind::Cut { dir, .. } => {
                    self.framers[side(*dir)] = None;
                    self.resync[side(*dir)] = true;
                }
                _ => {}
            }
        }
        self.seen = events.len();
    }

    /// Asks the protocol for the announcements in the window and records what is new.
    fn refresh(&mut self) {
        if !self.stale {
            return;
        }
        self.stale = false;
        let exchanges: Vec<Exchange<'_>> = self
            .window
            .iter()
            .map(|(_, ex)| match ex {
                Owned::Message(d, m) => Exchange::Message(*d, m),
                Owned::Closed(d) => Exchange::Closed(*d),
                Owned::Unframed(d) => Exchange::Unframed(*d),
            })
            .collect();
        let line = |i: usize| match exchanges.get(i) {
            Some(Exchange::Message(_, m)) => m.text.lines().next().unwrap_or_default().to_string(),
            _ => String::new(),
        };
        for mut ch in self.proto.data_channels(&exchanges) {
            let text = line(ch.at);
            let command = ch.command.map(line);
            let t = self.window[ch.at].0;
            ch.at += self.first;
            ch.command = ch.command.map(|c| c + self.first);
            match self.channels.iter_mut().find(|a| a.channel.at == ch.at) {
                Some(a) => {
                    a.command = command.or(a.command.take());
                    a.channel = ch;
                }
                None => {
                    let at = self.channels.partition_point(|a| a.channel.at < ch.at);
                    self.channels.insert(
                        at,
                        Announced {
                            t,
                            channel: ch,
                            text,
                            command,
                        },
                    );
                }
            }
        }
        while self.channels.len() > WINDOW {
            self.channels.pop_front();
        }
    }
}

/// Where a packet was seen: the pcapng interface and the VLAN ids of its tags, outermost first.
/// The same addresses in two scopes are two networks, so two conversations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Scope {
    /// pcapng interface id (0 in pcap files).
    pub interface: u32,
    /// 802.1Q VLAN ids, outermost first.
    pub vlans: Vec<u16>,
}

impl Scope {
    /// `, vlan 100/200, interface 1`: what tells apart conversations with the same addresses.
    fn label(&self) -> String {
        let mut s = String::new();
        if !self.vlans.is_empty() {
            let ids: Vec<String> = self.vlans.iter().map(u16::to_string).collect();
            s.push_str(&format!(", vlan {}", ids.join("/")));
        }
        if self.interface != 0 {
            s.push_str(&format!(", interface {}", self.interface));
        }
        s
    }
}

/// (scope, is TCP, lower address, higher address).
type Key = (Scope, bool, SocketAddr, SocketAddr);

fn key(scope: &Scope, t: Transport, a: SocketAddr, b: SocketAddr) -> Key {
    let tcp = t == Transport::Tcp;
    if a <= b {
        (scope.clone(), tcp, a, b)
    } else {
        (scope.clone(), tcp, b, a)
    }
}

/// Decodes the capture at `path`, with the TLS secrets its Decryption Secrets Blocks carry.
pub fn decode_file(path: &Path, opts: &Options) -> Result<Capture, FileError> {
    let reader = file::open(path)?;
    let secrets = reader.secrets();
    let mut convs = Vec::new();
    let mut cap = decode_each_with(reader, opts, Some(secrets), |c| convs.push(c))?;
    convs.sort_by_key(|c| c.number);
    cap.conversations = convs;
    Ok(cap)
}

/// Decodes a stream of packets, holding every conversation until the end (in the order their
/// first packets came).
pub fn decode(packets: impl Iterator<Item = Result<RawPacket, FileError>>, opts: &Options) -> Result<Capture, FileError> {
    let mut convs = Vec::new();
    let mut cap = decode_each(packets, opts, |c| convs.push(c))?;
    convs.sort_by_key(|c| c.number);
    cap.conversations = convs;
    Ok(cap)
}

/// How many packets pass between looks for conversations that are over.
const SWEEP_EVERY: u64 = 1024;
/// Finished connections remembered at most (to recognise their stray packets).
const MAX_DONE: usize = 100_000;
/// Any conversation silent this long (capture time) is handed over as it stands.
const IDLE_LIMIT: Duration = Duration::from_secs(120);

/// Decodes a stream of packets, handing each conversation to `each` once it is over, so memory
/// stays bounded by the conversations open at once, not by the file. Returns the capture's
/// counts, warnings and damage (its `conversations` empty); a damaged file is decoded up to the
/// damage, every conversation then handed over as it stands.
pub fn decode_each(
    packets: impl Iterator<Item = Result<RawPacket, FileError>>,
    opts: &Options,
    each: impl FnMut(Conversation),
) -> Result<Capture, FileError> {
    decode_each_with(packets, opts, None, each)
}

/// [`decode_each`], with the TLS key logs a pcapng file's Decryption Secrets Blocks carry
/// (`CaptureReader::secrets`), added to `opts.keylog` as they are read.
pub fn decode_each_with(
    packets: impl Iterator<Item = Result<RawPacket, FileError>>,
    opts: &Options,
    secrets: Option<Secrets>,
    mut each: impl FnMut(Conversation),
) -> Result<Capture, FileError> {
    let mut d = Decoder {
        opts,
        secrets,
        keys: (0, opts.keylog.clone()),
        convs: Vec::new(),
        index: HashMap::new(),
        by_hosts: HashMap::new(),
        slot_of: HashMap::new(),
        done: HashMap::new(),
        defrag: defrag::Defrag::default(),
        cap: Capture::default(),
        first: None,
        last: Duration::ZERO,
        next_number: 1,
    };
    for p in packets {
        // Damage ends the reading, not the decoding: what came before it is handed over whole.
        let p = match p {
            Ok(p) => p,
            Err(e @ FileError::Packet { .. }) => {
                d.cap.damage = Some(e);
                break;
            }
            Err(e) => return Err(e),
        };
        d.cap.packets += 1;
        d.first.get_or_insert(p.ts);
        d.last = d.last.max(p.ts);
        if let Err(reason) = d.packet(&p) {
            d.cap.damage = Some(FileError::Packet {
                number: p.number,
                offset: p.offset,
                reason,
            });
            break;
        }
        if d.cap.packets % SWEEP_EVERY == 0 {
            d.sweep(false, &mut each);
        }
    }
    d.sweep(true, &mut each);
    Ok(d.finish())
}

struct Decoder<'o> {
    opts: &'o Options,
    /// The file's key logs, as its reader finds them.
    secrets: Option<Secrets>,
    /// The keys conversations are decrypted with: `--keylog`'s and the first `n` of the file's.
    keys: (usize, Option<Arc<KeyLog>>),
    /// Open conversations; a slot empties when its conversation is handed over.
    convs: Vec<Option<Conv>>,
    index: HashMap<Key, usize>,
    /// Open TCP conversations by their two hosts (numbers): where a data connection looks for its
    /// control conversation.
    by_hosts: HashMap<Hosts, Vec<usize>>,
    /// Open conversations' slots by number.
    slot_of: HashMap<usize, usize>,
    /// Connections handed over, with their last packet's time: stray ACKs after the end are
    /// theirs, not new conversations.
    done: HashMap<Key, Duration>,
    next_number: usize,
    defrag: defrag::Defrag,
    cap: Capture,
    first: Option<Duration>,
    last: Duration,
}

impl Decoder<'_> {
    fn packet(&mut self, p: &RawPacket) -> Result<(), String> {
        let cut = p.data.len() < p.orig_len as usize;
        let (ip_bytes, scope) = match packet::link_tagged(p.linktype, &p.data) {
            Ok((packet::Link::Ip(b), vlans)) => (
                b,
                Scope {
                    interface: p.interface,
                    vlans,
                },
            ),
            Ok((packet::Link::NotIp, _)) => {
                self.cap.skipped += 1;
                return Ok(());
            }
            // A cut frame is forgiven; a link type nobody can read is an error however short.
            Err(e) if cut && packet::supported(p.linktype) => return self.cut_short(p, e),
            Err(e) => return Err(e),
        };
        let ip = match packet::ip(ip_bytes) {
            Ok(ip) => ip,
            Err(e) if cut => return self.cut_short(p, e),
            Err(e) => return Err(e),
        };
        let whole;
        let mut fragments = 1;
        let (payload, claimed) = match ip.fragment {
            Some(f) => {
                let k = (ip.src, ip.dst, ip.proto, f.id);
                let overlap = match ip.src {
                    IpAddr::V4(_) => defrag::Overlap::FirstWins,
                    IpAddr::V6(_) => defrag::Overlap::Discard,
                };
                match self.defrag.add(k, f.offset, f.more, ip.payload, p.ts, overlap) {
                    Some((w, n)) => {
                        fragments = n;
                        whole = w;
                        (&whole[..], whole.len())
                    }
                    None => return Ok(()),
                }
            }
            None => (ip.payload, ip.claimed_len),
        };
        let cut = cut || claimed > payload.len();
        match packet::transport(ip.proto, payload, claimed)? {
            None => self.cut_short(p, "transport header cut by the capture".into()),
            Some(packet::Transport::Other) => {
                self.cap.skipped += 1;
                Ok(())
            }
            Some(packet::Transport::Tcp(seg)) => {
                let src = SocketAddr::new(ip.src, seg.sport);
                let dst = SocketAddr::new(ip.dst, seg.dport);
                let Some(i) = self.conv_tcp(&scope, src, dst, &seg, p.ts) else {
                    self.cap.skipped += 1;
                    return Ok(());
                };
                let c = self.convs[i].as_mut().expect("indexed conversations are open");
                c.last_ts = c.last_ts.max(p.ts);
                c.packets += fragments;
                c.truncated |= cut;
                let dir = if src == c.client {
                    Direction::ClientToServer
                } else {
                    Direction::ServerToClient
                };
                c.tcp.segment(dir, &seg, p.ts);
                Ok(())
            }
            Some(packet::Transport::Udp(u)) => {
                let src = SocketAddr::new(ip.src, u.sport);
                let dst = SocketAddr::new(ip.dst, u.dport);
                // Ports that say who serves decide; otherwise the first sender is the client (ephemeral
                // ports are not always above the server's).
                let decisive = self.server_score(u.sport) >= 0x10000 || self.server_score(u.dport) >= 0x10000;
                let i = self.conv(&scope, Transport::Udp, src, dst, (!decisive).then_some(true), p.ts);
                let c = self.convs[i].as_mut().expect("indexed conversations are open");
                c.last_ts = c.last_ts.max(p.ts);
                c.packets += fragments;
                c.truncated |= cut || u.truncated;
                let dir = if src == c.client {
                    Direction::ClientToServer
                } else {
                    Direction::ServerToClient
                };
                if u.truncated {
                    let len = u64::from(u.missing);
                    c.udp.push((p.ts, EventKind::Cut { dir, len }));
                }
                c.udp.push((p.ts, EventKind::Data { dir, bytes: u.payload }));
                Ok(())
            }
        }
    }

    fn cut_short(&mut self, p: &RawPacket, why: String) -> Result<(), String> {
        self.cap.skipped += 1;
        self.cap.warnings.push(format!(
            "packet {}: cut by the capture ({} of {} bytes): {why}",
            p.number,
            p.data.len(),
            p.orig_len
        ));
        Ok(())
    }

    /// The conversation a segment belongs to; None for a stray ACK of one already handed over.
    fn conv_tcp(&mut self, scope: &Scope, src: SocketAddr, dst: SocketAddr, seg: &packet::TcpSegment, ts: Duration) -> Option<usize> {
        let k = key(scope, Transport::Tcp, src, dst);
        // Late ACKs, a retransmitted FIN, bytes in flight behind a reset: the connection they
        // belonged to is over and handed over; only a SYN starts a new one on these addresses.
        if !seg.syn && !self.index.contains_key(&k) && self.done.contains_key(&k) {
            return None;
        }
        if let Some(&i) = self.index.get(&k) {
            let c = self.convs[i].as_mut().expect("indexed conversations are open");
            if !seg.syn || seg.ack {
                return Some(i);
            }
            if src == c.client {
                if !c.tcp.is_new_syn(seg.seq) {
                    return Some(i);
                }
            } else if !c.tcp.is_used() && !c.tcp.syn_seen() {
                // Only bare ACKs so far, and the port guess had the roles the wrong way round.
                std::mem::swap(&mut c.client, &mut c.server);
                return Some(i);
            }
            // A new connection on the same addresses.
            self.index.remove(&k);
        }
        // A SYN names the client; a SYN-ACK the server.
        let client_hint = match (seg.syn, seg.ack) {
            (true, false) => Some(true),
            (true, true) => Some(false),
            _ => None,
        };
        let i = self.conv(scope, Transport::Tcp, src, dst, client_hint, ts);
        self.link(i, client_hint.is_some());
        Some(i)
    }

    /// Ties a new TCP conversation to the announcement it answers: the latest one before it, by
    /// an open control conversation between the same two hosts, of the address and port one of
    /// its ends listens on. `roles_known`: a SYN said who connected (else the ends may swap).
    fn link(&mut self, slot: usize, roles_known: bool) {
        let Some(c) = self.convs[slot].as_ref() else { return };
        let (client, server, t, scope) = (c.client, c.server, c.first_ts, c.scope.clone());
        // The user's `--port` frames it as they said.
        if self.opts.user(client.port()).or(self.opts.user(server.port())).is_some() {
            return;
        }
        let mut best: Option<(Duration, DataOf, &'static str, bool)> = None;
        for n in self
            .by_hosts
            .get(&hosts(&scope, client.ip(), server.ip()))
            .cloned()
            .unwrap_or_default()
        {
            let Some(cs) = self.slot_of.get(&n).copied().filter(|&cs| cs != slot) else {
                continue;
            };
            let Some(ctl) = self.convs[cs].as_mut() else { continue };
            if !make_control(self.opts, ctl) {
                continue;
            }
            let (cc, cserver) = (ctl.client, ctl.server);
            let Some(control) = ctl.control.as_mut() else { continue };
            control.feed(&ctl.tcp.events);
            control.refresh();
            for a in control.channels.iter().filter(|a| a.t <= t) {
                let listener = match a.channel.announced_by {
                    Direction::ServerToClient => cserver,
                    Direction::ClientToServer => cc,
                };
                let swap = if server.ip() == listener.ip() && server.port() == a.channel.port {
                    false
                } else if !roles_known && client.ip() == listener.ip() && client.port() == a.channel.port {
                    true
                } else {
                    continue;
                };
                if best.as_ref().is_none_or(|(bt, ..)| a.t >= *bt) {
                    let of = DataOf {
                        control: n,
                        announced_at: a.channel.at,
                        announced: a.text.clone(),
                        command: a.command.clone(),
                    };
                    let label = control.proto.data_protocol().unwrap_or_default();
                    best = Some((a.t, of, label, swap));
                }
            }
        }
        let Some((_, of, label, swap)) = best else { return };
        let Some(c) = self.convs[slot].as_mut() else { return };
        if swap {
            std::mem::swap(&mut c.client, &mut c.server);
        }
        c.data_of = Some(of);
        c.data_label = Some(label);
    }

    /// The command that used announcement `at` of control conversation `control`, if it is open
    /// and shows one by now.
    fn command_of(&mut self, control: usize, at: usize) -> Option<String> {
        let c = self.convs[*self.slot_of.get(&control)?].as_mut()?;
        let ctl = c.control.as_mut()?;
        ctl.feed(&c.tcp.events);
        ctl.refresh();
        ctl.channels.iter().find(|a| a.channel.at == at)?.command.clone()
    }

    /// The conversation of `src`→`dst`, created if new; `src_is_client` when the packet says.
    fn conv(&mut self, scope: &Scope, t: Transport, src: SocketAddr, dst: SocketAddr, src_is_client: Option<bool>, ts: Duration) -> usize {
        let k = key(scope, t, src, dst);
        if let Some(&i) = self.index.get(&k) {
            return i;
        }
        let src_client = src_is_client.unwrap_or_else(|| self.server_score(dst.port()) >= self.server_score(src.port()));
        let (client, server) = if src_client { (src, dst) } else { (dst, src) };
        self.next_number += 1;
        self.convs.push(Some(Conv {
            number: self.next_number - 1,
            scope: scope.clone(),
            last_ts: ts,
            transport: t,
            client,
            server,
            packets: 0,
            truncated: false,
            first_ts: ts,
            tcp: tcp::TcpConn::new(),
            udp: Vec::new(),
            control: None,
            not_control: false,
            data_of: None,
            data_label: None,
        }));
        let slot = self.convs.len() - 1;
        self.index.insert(k, slot);
        self.slot_of.insert(self.next_number - 1, slot);
        if t == Transport::Tcp {
            self.by_hosts
                .entry(hosts(scope, src.ip(), dst.ip()))
                .or_default()
                .push(self.next_number - 1);
        }
        slot
    }

    /// How much a port looks like a server's (ties: the lower port is the server's).
    fn server_score(&self, port: u16) -> u32 {
        let class = if self.opts.user(port).is_some() {
            3
        } else if proto::by_port(port).is_some() {
            2
        } else if port < 1024 {
            1
        } else {
            0
        };
        class * 0x10000 + (0xffff - u32::from(port))
    }

    /// Hands over the conversations that are over (`all`: every one, at the end of the file).
    fn sweep(&mut self, all: bool, each: &mut impl FnMut(Conversation)) {
        let now = self.last;
        for slot in 0..self.convs.len() {
            let over = self.convs[slot].as_ref().is_some_and(|c| {
                let quiet = now.saturating_sub(c.last_ts);
                all || quiet > IDLE_LIMIT || (c.transport == Transport::Tcp && c.tcp.is_finished())
            });
            if !over {
                continue;
            }
            let mut c = self.convs[slot].take().expect("checked above");
            let k = key(&c.scope, c.transport, c.client, c.server);
            if self.index.get(&k) == Some(&slot) {
                self.index.remove(&k);
            }
            if c.transport == Transport::Tcp && !all {
                self.done.insert(k, c.last_ts);
            }
            // At the end of the file the last packet's time closes every open stream.
            let end = if all { now } else { c.last_ts };
            if c.transport == Transport::Tcp {
                c.tcp.flush(end);
                if let Some(hs) = self.by_hosts.get_mut(&hosts(&c.scope, c.client.ip(), c.server.ip())) {
                    hs.retain(|n| *n != c.number);
                }
            }
            if let Some(ctl) = c.control.as_mut() {
                // Its data connections still open learn their commands from the whole session.
                ctl.feed(&c.tcp.events);
                ctl.refresh();
                for d in self.convs.iter_mut().flatten() {
                    if let Some(of) = d.data_of.as_mut().filter(|of| of.control == c.number) {
                        if let Some(a) = ctl.channels.iter().find(|a| a.channel.at == of.announced_at) {
                            of.command = a.command.clone().or(of.command.take());
                        }
                    }
                }
            }
            if let Some((control, at)) = c.data_of.as_ref().map(|of| (of.control, of.announced_at)) {
                if let Some(cmd) = self.command_of(control, at) {
                    c.data_of.as_mut().expect("just read").command = Some(cmd);
                }
            }
            each(self.complete(c));
        }
        self.convs.retain(Option::is_some);
        // Slots moved: renumber the indexes.
        self.index = self
            .convs
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (key(&c.scope, c.transport, c.client, c.server), i)))
            .collect();
        self.slot_of = self
            .convs
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (c.number, i)))
            .collect();
        self.by_hosts.retain(|_, v| !v.is_empty());
        self.done.retain(|_, t| now.saturating_sub(*t) <= IDLE_LIMIT);
        if self.done.len() > MAX_DONE {
            // A flood of short connections: forget the oldest half (their strays become notes).
            let mut times: Vec<Duration> = self.done.values().copied().collect();
            times.sort_unstable();
            let cut = times[times.len() / 2];
            self.done.retain(|_, t| *t > cut);
        }
    }

    fn finish(mut self) -> Capture {
        if self.defrag.unfinished() + self.defrag.dropped > 0 {
            self.cap.warnings.push(format!(
                "{} fragmented IP datagram(s) never completed",
                self.defrag.unfinished() + self.defrag.dropped
            ));
        }
        if self.defrag.overlapped > 0 {
            self.cap.warnings.push(format!(
                "{} fragmented IPv6 datagram(s) discarded for overlapping fragments (RFC 8200 §4.5)",
                self.defrag.overlapped
            ));
        }
        self.cap
    }

    /// The keys known now: `--keylog`'s and the file's blocks read so far (a bad block is a
    /// warning, and its lines before the bad one are used).
    fn keys(&mut self) -> Option<Arc<KeyLog>> {
        let texts: Vec<String> = match &self.secrets {
            Some(s) => s
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(self.keys.0..)
                .unwrap_or_default()
                .to_vec(),
            None => Vec::new(),
        };
        if !texts.is_empty() {
            let mut log = self.keys.1.as_deref().cloned().unwrap_or_default();
            for t in &texts {
                if let Err(e) = log.extend(t) {
                    self.cap.warnings.push(format!("decryption secrets block: {e}"));
                }
            }
            self.keys = (self.keys.0 + texts.len(), Some(Arc::new(log)));
        }
        self.keys.1.clone()
    }

    /// A conversation as the caller sees it (its TCP streams flushed).
    fn complete(&mut self, mut c: Conv) -> Conversation {
        let first = self.first.unwrap_or_default();
        let mut evs = match c.transport {
            // The sweep flushed it at `end`.
            Transport::Tcp => std::mem::take(&mut c.tcp.events),
            // A capture holds packets: its QUIC is UDP until decrypted.
            Transport::Udp | Transport::Quic => std::mem::take(&mut c.udp),
        };
        if c.truncated {
            evs.insert(
                0,
                (
                    c.first_ts,
                    EventKind::Note {
                        text: "some packets were cut by the capture's snaplen".into(),
                    },
                ),
            );
        }
        // Stable: per direction the reassembler already keeps times non-decreasing.
        evs.sort_by_key(|(t, _)| *t);
        let (protocol, inside) = match c.data_label {
            Some(label) => (label.to_string(), None),
            None => protocol_of(self.opts, &c, &evs),
        };
        let dialogue = Dialogue {
            connections: vec![ConnInfo {
                id: 0,
                name: "c".into(),
                transport: c.transport,
                protocol: protocol.clone(),
                harness_is_client: true,
                captured: true,
                actor: false,
                local: Some(c.client),
                peer: Some(c.server),
            }],
            events: evs
                .into_iter()
                .map(|(t, kind)| Event {
                    t_us: t.saturating_sub(first).as_micros() as u64,
                    conn: 0,
                    kind,
                })
                .collect(),
        };
        Conversation {
            number: c.number,
            transport: c.transport,
            client: c.client,
            server: c.server,
            scope: c.scope,
            protocol,
            packets: c.packets,
            truncated: c.truncated,
            start_us: c.first_ts.as_micros() as u64,
            dialogue,
            data_of: c.data_of,
            keys: self.keys(),
            inside,
        }
    }
}

/// Two hosts of one scope, in a fixed order.
type Hosts = (Scope, IpAddr, IpAddr);

/// Two hosts of `scope` in a fixed order.
fn hosts(scope: &Scope, a: IpAddr, b: IpAddr) -> Hosts {
    if a <= b {
        (scope.clone(), a, b)
    } else {
        (scope.clone(), b, a)
    }
}

/// Whether `c` is followed as a control conversation, starting to follow it if its protocol (as
/// far as its bytes so far tell) opens data connections.
fn make_control(opts: &Options, c: &mut Conv) -> bool {
    if c.control.is_some() {
        return true;
    }
    if c.not_control || c.data_of.is_some() || c.transport != Transport::Tcp {
        return false;
    }
    match proto::find(&protocol_of(opts, c, &c.tcp.events).0) {
        Some(p) if p.data_protocol().is_some() => {
            c.control = Some(Box::new(Control::new(p)));
            true
        }
        _ => {
            // A port decides for good; detection reads each side's first bytes, so it decides
            // once both have spoken.
            let ports = [c.client.port(), c.server.port()];
            let by_port = ports.iter().any(|&p| opts.user(p).is_some() || proto::by_port(p).is_some());
            let spoke = |d: Direction| {
                c.tcp
                    .events
                    .iter()
                    .any(|(_, e)| matches!(e, EventKind::Data { dir, .. } if *dir == d))
            };
            c.not_control = by_port || (spoke(Direction::ClientToServer) && spoke(Direction::ServerToClient));
            false
        }
    }
}

/// How many of the client's first bytes are read for a protocol's fixed preface.
const PREFACE_BYTES: usize = 64;

/// The protocol a conversation is framed with: `--port` (TLS carrying it, when the conversation
/// opens with a ClientHello), else a client preface that names one (HTTP/2's), else the
/// well-known port, else a guess; and what that protocol carries, when `--port` said.
fn protocol_of(opts: &Options, c: &Conv, evs: &[(Duration, EventKind)]) -> (String, Option<&'static str>) {
    let (s, cl) = (c.server.port(), c.client.port());
    // The preface may arrive over several segments.
    let mut opening = Vec::new();
    for (_, e) in evs {
        if opening.len() >= PREFACE_BYTES {
            break;
        }
        if let EventKind::Data {
            dir: Direction::ClientToServer,
            bytes,
        } = e
        {
            opening.extend_from_slice(&bytes[..bytes.len().min(PREFACE_BYTES - opening.len())]);
        }
    }
    if let Some(p) = opts.user(s).or_else(|| opts.user(cl)) {
        return match (proto::carrier(c.transport, &opening), proto::find(p)) {
            (Some(carrier), Some(inner)) if !inner.carries_others() => (carrier.name().to_string(), Some(inner.name())),
            _ => (p.to_string(), None),
        };
    }
    if let Some(p) = proto::by_preface(&opening) {
        return (p.name().to_string(), None);
    }
    if let Some(p) = proto::by_port(s).or_else(|| proto::by_port(cl)) {
        return (p.name().to_string(), None);
    }
    let first_of = |want: Direction| {
        evs.iter().find_map(|(_, e)| match e {
            EventKind::Data { dir, bytes } if *dir == want => Some(bytes.as_slice()),
            _ => None,
        })
    };
    let first = evs.iter().find_map(|(_, e)| match e {
        EventKind::Data { bytes, .. } => Some(bytes.as_slice()),
        _ => None,
    });
    let p = proto::identify(
        c.transport,
        first_of(Direction::ClientToServer),
        first_of(Direction::ServerToClient),
        first,
    );
    (p.name().to_string(), None)
}
