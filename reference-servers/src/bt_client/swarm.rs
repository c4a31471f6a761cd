//! The download itself: one task that owns every decision (which block to ask whom for, whom to
//! unchoke, when to announce), fed by the connections' events. Connections only move bytes
//! (`wire.rs`), so the state below is never shared and needs no lock.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sha1::{Digest, Sha1};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::task::JoinSet;
use tokio::time::{interval, interval_at, sleep_until, timeout, Instant, MissedTickBehavior};

use super::metainfo::Torrent;
use super::tracker::{self, Announce, AnnounceError, Reply};
use super::udp_tracker;
use super::wire::{self, Event, Msg, Opened, BLOCK};
use super::{Fault, Faults};

/// Connections at once (open or being opened), both directions together.
const MAX_PEERS: usize = 30;
/// Requests waiting for an answer from one peer.
const MAX_OUTSTANDING: usize = 10;
/// Peers unchoked for their upload rate (K&R 2.5: four), besides the optimistic one.
const UNCHOKE_SLOTS: usize = 4;
/// One announce, from connecting to the tracker to its reply.
const ANNOUNCE_WAIT: Duration = Duration::from_secs(10);
/// The announces at the end (completed, stopped): the file is already written.
const FINAL_ANNOUNCE_WAIT: Duration = Duration::from_secs(5);
/// A `started` announce that got no answer is tried again after this.
const ANNOUNCE_RETRY: Duration = Duration::from_secs(2);
/// Re-announce bounds: a tracker's `interval` outside them is taken as the nearest.
const MIN_INTERVAL: u64 = 1;
const MAX_INTERVAL: u64 = 1800;
/// A request unanswered for this long is asked of someone else (the peer may still answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How often requests are checked for that.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// A peer whose blocks were in this many pieces that failed their hash is dropped, and not taken
/// back: otherwise a peer that always sends a piece corrupt, and is its only holder, would be asked
/// for it again and again until the client gives up.
const MAX_STRIKES: u32 = 3;
/// At the end, connections are given this long to close with a FIN before they are aborted.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// What the command line and the options ask for.
pub(super) struct Config {
    /// The torrent to download.
    pub(super) torrent: Torrent,
    /// Where its file (or folder) is written.
    pub(super) out_dir: PathBuf,
    /// `--rechoke`: seconds between choking rounds.
    pub(super) rechoke: Duration,
    /// `--optimistic`: seconds between optimistic unchoke rotations.
    pub(super) optimistic: Duration,
    /// No piece verified for this long: give up.
    pub(super) stall: Duration,
    /// Deliberate bugs.
    pub(super) faults: Faults,
}

/// One block of a piece.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    /// Nobody has been asked for it.
    Missing,
    /// These peers have been asked (more than one in the end game).
    Asked(Vec<u64>),
    /// Its bytes are in `data` (the piece may still fail its hash).
    Have,
}

#[derive(Debug)]
struct Piece {
    blocks: Vec<Block>,
    /// Peers whose blocks make up what is in `data` now.
    suppliers: Vec<u64>,
    /// Peers that supplied a copy that failed the hash: asked again only when no one else has it.
    bad: Vec<u64>,
    verified: bool,
}

struct Peer {
    tx: mpsc::Sender<Msg>,
    peer_id: [u8; 20],
    /// Where we connected to, for a peer we opened the connection to.
    addr: Option<SocketAddr>,
    has: Vec<bool>,
    /// Any message so far (a bitfield is only allowed first, BEP 3).
    spoke: bool,
    am_choking: bool,
    am_interested: bool,
    choking_us: bool,
    interested: bool,
    /// Our requests it has not answered: (piece, block, when).
    asked: Vec<(usize, usize, Instant)>,
    /// Bytes of blocks it sent us since the last choking round: its upload rate to us.
    got: u64,
    /// Pieces it had a part in that failed their hash.
    strikes: u32,
}

/// What the listener and the announces tell the swarm.
enum Control {
    Incoming(TcpStream),
    Announced(Option<&'static str>, Result<Reply, AnnounceError>),
}

/// How the download loop ended.
enum Ending {
    Complete,
    Stalled,
    Refused(String),
    /// The `exits-when-peer-leaves` fault: a peer went.
    Crashed(String),
}

struct Swarm {
    t: Torrent,
    faults: Faults,
    our_id: [u8; 20],
    listen: SocketAddr,
    data: Vec<u8>,
    pieces: Vec<Piece>,
    verified: usize,
    /// The pieces in the order they were verified (for the `arrival-order` fault).
    verified_order: Vec<usize>,
    verified_bytes: u64,
    availability: Vec<u32>,
    peers: BTreeMap<u64, Peer>,
    /// Connections opened or accepted that have not finished their handshakes, by where we connected.
    pending: BTreeMap<u64, Option<SocketAddr>>,
    /// Connection tasks that have not said `Left` yet.
    live: BTreeSet<u64>,
    /// Peer ids dropped for `MAX_STRIKES`: refused if they come back.
    banned: BTreeSet<[u8; 20]>,
    /// The addresses we had dialled them at: not dialled again.
    banned_addrs: BTreeSet<SocketAddr>,
    next_id: u64,
    uploaded: u64,
    downloaded: u64,
    /// Unchoked for their rate in the last choking round.
    regular: Vec<u64>,
    optimistic: Option<u64>,
    last_progress: Instant,
    announcing: bool,
    next_announce: Option<Instant>,
    /// The tracker has answered our `started`.
    started: bool,
    interval: Duration,
    max_message: usize,
    events_tx: mpsc::Sender<Event>,
    control_tx: mpsc::Sender<Control>,
    tasks: JoinSet<()>,
    out: UnboundedSender<String>,
    /// Why the download ends now (the `exits-when-peer-leaves` fault).
    crashed: Option<String>,
}

/// Downloads the torrent, writes it, and returns the exit code.
pub(super) async fn download(cfg: Config, out: UnboundedSender<String>) -> i32 {
    let say = |line: String| {
        let _ = out.send(line);
    };
    let listener = match TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await {
        Ok(listener) => listener,
        Err(e) => {
            say(format!("error: cannot listen for peers: {e}"));
            return 1;
        }
    };
    let listen = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            say(format!("error: cannot listen for peers: {e}"));
            return 1;
        }
    };
    let (events_tx, mut events_rx) = mpsc::channel(1024);
    let (control_tx, mut control_rx) = mpsc::channel(64);
    let n = cfg.torrent.pieces();
    let mut swarm = Swarm::new(cfg.torrent, cfg.faults, listen, events_tx, control_tx.clone(), out.clone());
    swarm.tasks.spawn(accept_loop(listener, control_tx));

    let start = Instant::now();
    let mut rechoke = interval_at(start + cfg.rechoke, cfg.rechoke);
    rechoke.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut optimistic = interval_at(start + cfg.optimistic, cfg.optimistic);
    optimistic.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut housekeeping = interval(HOUSEKEEPING);
    let ending = loop {
        if swarm.verified == n {
            break Ending::Complete;
        }
        if let Some(why) = swarm.crashed.take() {
            break Ending::Crashed(why);
        }
        let announce_at = swarm.next_announce.filter(|_| !swarm.announcing);
        let stall_at = swarm.last_progress + cfg.stall;
        tokio::select! {
            Some(event) = events_rx.recv() => swarm.on_event(event),
            Some(control) = control_rx.recv() => {
                if let Err(why) = swarm.on_control(control) {
                    break Ending::Refused(why);
                }
            }
            _ = rechoke.tick() => swarm.rechoke(),
            _ = optimistic.tick() => swarm.rotate_optimistic(),
            _ = housekeeping.tick() => swarm.housekeeping(),
            _ = sleep_until(announce_at.unwrap_or(stall_at)), if announce_at.is_some() => swarm.start_announce(),
            _ = sleep_until(stall_at) => break Ending::Stalled,
        }
    };
    let mut rx = (events_rx, control_rx);
    let code = match ending {
        Ending::Crashed(why) => {
            say(format!("error: {why}"));
            1
        }
        Ending::Refused(why) => {
            say(format!("error: the tracker refused: {why}"));
            1
        }
        Ending::Stalled => {
            say(format!(
                "error: no piece verified for {:?} ({} of {n} pieces); giving up",
                cfg.stall, swarm.verified
            ));
            swarm.final_announce(&mut rx, Some("stopped")).await;
            1
        }
        Ending::Complete => match write_output(&swarm.t, &swarm.file_bytes(), &cfg.out_dir).await {
            Err(why) => {
                say(format!("error: {why}"));
                swarm.final_announce(&mut rx, Some("stopped")).await;
                1
            }
            Ok(()) => {
                let refused = swarm.final_announce(&mut rx, Some("completed")).await;
                swarm.final_announce(&mut rx, Some("stopped")).await;
                match refused {
                    Some(why) => {
                        say(format!("error: the tracker refused: {why}"));
                        1
                    }
                    None => {
                        say(format!("saved {} ({} bytes, {n} pieces)", swarm.t.name, swarm.t.total));
                        0
                    }
                }
            }
        },
    };
    swarm.close(&mut rx).await;
    code
}

/// One announce to the torrent's tracker: HTTP, or UDP (BEP 15) for a udp:// URL, unless
/// `http_only` (the fault of that name).
async fn announce(params: &Announce, wait: Duration, http_only: bool) -> Result<Reply, AnnounceError> {
    match params.url.starts_with("udp://") {
        true if http_only => Err(AnnounceError::Broken(format!("announce URL {:?} is not http://", params.url))),
        true => udp_tracker::announce(params, wait).await,
        false => tracker::announce(params, wait).await,
    }
}

/// A peer id in Azureus style: our client's tag, then random characters (BEP 20).
fn peer_id() -> [u8; 20] {
    let mut id = *b"-WR0001-000000000000";
    for byte in &mut id[8..] {
        *byte = fastrand::alphanumeric() as u8;
    }
    id
}

async fn accept_loop(listener: TcpListener, control: mpsc::Sender<Control>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if control.send(Control::Incoming(stream)).await.is_err() {
                    return;
                }
            }
            // Out of file descriptors and the like: wait a little rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Writes the download under `out_dir`: the file `<name>`, or the folder `<name>` with its files.
async fn write_output(t: &Torrent, data: &[u8], out_dir: &std::path::Path) -> Result<(), String> {
    let fail = |path: &std::path::Path, e: std::io::Error| format!("cannot write {}: {e}", path.display());
    tokio::fs::create_dir_all(out_dir).await.map_err(|e| fail(out_dir, e))?;
    let mut offset = 0usize;
    for file in &t.files {
        let mut path = out_dir.join(&t.name);
        for part in &file.path {
            path.push(part);
        }
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| fail(parent, e))?;
        }
        let end = offset + usize::try_from(file.length).unwrap_or(usize::MAX);
        let bytes = data.get(offset..end).ok_or("the files are longer than the download")?;
        tokio::fs::write(&path, bytes).await.map_err(|e| fail(&path, e))?;
        offset = end;
    }
    Ok(())
}

impl Swarm {
    fn new(
        t: Torrent,
        faults: Faults,
        listen: SocketAddr,
        events_tx: mpsc::Sender<Event>,
        control_tx: mpsc::Sender<Control>,
        out: UnboundedSender<String>,
    ) -> Swarm {
        let n = t.pieces();
        Swarm {
            faults,
            our_id: peer_id(),
            listen,
            data: vec![0; usize::try_from(t.total).unwrap_or(0)],
            pieces: (0..n)
                .map(|i| Piece {
                    blocks: vec![Block::Missing; t.piece_len(i).div_ceil(u64::from(BLOCK)) as usize],
                    suppliers: Vec::new(),
                    bad: Vec::new(),
                    verified: false,
                })
                .collect(),
            verified: 0,
            verified_order: Vec::new(),
            verified_bytes: 0,
            availability: vec![0; n],
            peers: BTreeMap::new(),
            pending: BTreeMap::new(),
            live: BTreeSet::new(),
            banned: BTreeSet::new(),
            banned_addrs: BTreeSet::new(),
            next_id: 0,
            uploaded: 0,
            downloaded: 0,
            regular: Vec::new(),
            optimistic: None,
            last_progress: Instant::now(),
            announcing: false,
            next_announce: Some(Instant::now()),
            started: false,
            interval: Duration::from_secs(MAX_INTERVAL),
            // A piece message of a whole block, or our bitfield's size: nothing longer is legal.
            max_message: (BLOCK as usize + 9).max(n.div_ceil(8) + 1),
            events_tx,
            control_tx,
            tasks: JoinSet::new(),
            out,
            crashed: None,
            t,
        }
    }

    /// The downloaded bytes as they go to the file: in piece order, or (the `arrival-order`
    /// fault) in the order the pieces were verified.
    fn file_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        if !self.has(Fault::ArrivalOrder) {
            return std::borrow::Cow::Borrowed(&self.data);
        }
        let mut bytes = Vec::with_capacity(self.data.len());
        for &i in &self.verified_order {
            let start = self.t.piece_offset(i) as usize;
            bytes.extend_from_slice(&self.data[start..start + self.t.piece_len(i) as usize]);
        }
        std::borrow::Cow::Owned(bytes)
    }

    fn say(&self, line: String) {
        let _ = self.out.send(line);
    }

    fn has(&self, fault: Fault) -> bool {
        self.faults.has(fault)
    }

    // ------------------------------------------------------------------ connections

    fn connect(&mut self, opened: Opened, addr: Option<SocketAddr>) {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, addr);
        self.live.insert(id);
        let (info_hash, our_id, max, events) = (self.t.info_hash, self.our_id, self.max_message, self.events_tx.clone());
        let trust = self.has(Fault::TrustsAnyHash);
        self.tasks
            .spawn(wire::connection(id, opened, info_hash, our_id, max, events, trust));
    }

    fn connections(&self) -> usize {
        self.peers.len() + self.pending.len()
    }

    /// Connects to the peers a tracker named that we are not connected to yet.
    fn connect_to(&mut self, addrs: &[SocketAddr]) {
        for &addr in addrs {
            if self.connections() >= MAX_PEERS {
                break;
            }
            let known = self.pending.values().any(|a| *a == Some(addr)) || self.peers.values().any(|p| p.addr == Some(addr));
            let banned = self.banned_addrs.contains(&addr);
            if addr == self.listen || addr.port() == 0 || addr.ip().is_unspecified() || known || banned {
                continue;
            }
            self.connect(Opened::ByUs(addr), Some(addr));
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Joined { id, peer_id, tx } => {
                let Some(addr) = self.pending.remove(&id) else { return };
                // Ourselves (the tracker listed our address), a peer already connected the other
                // way, or one banned: dropping `tx` closes this connection.
                let known = self.peers.values().any(|p| p.peer_id == peer_id);
                if peer_id == self.our_id || known || self.banned.contains(&peer_id) {
                    return;
                }
                let n = self.t.pieces();
                let peer = Peer {
                    tx,
                    peer_id,
                    addr,
                    has: vec![false; n],
                    spoke: false,
                    am_choking: true,
                    am_interested: false,
                    choking_us: true,
                    interested: false,
                    asked: Vec::new(),
                    got: 0,
                    strikes: 0,
                };
                self.peers.insert(id, peer);
                if self.verified > 0 {
                    let bits = self.bitfield();
                    self.send(id, Msg::Bitfield(bits));
                }
            }
            Event::Message { id, msg } => {
                if self.peers.contains_key(&id) {
                    if let Err(why) = self.on_message(id, msg) {
                        self.drop_peer(id, &why);
                    }
                }
            }
            Event::Left { id } => {
                self.live.remove(&id);
                self.pending.remove(&id);
                self.gone(id);
            }
        }
    }

    fn on_control(&mut self, control: Control) -> Result<(), String> {
        match control {
            Control::Incoming(stream) => {
                // Over the cap the stream is dropped: the peer sees its connection closed.
                if self.connections() < MAX_PEERS {
                    self.connect(Opened::ByPeer(stream), None);
                }
            }
            Control::Announced(event, result) => {
                self.announcing = false;
                match result {
                    Ok(reply) => {
                        self.started = true;
                        let secs = reply.interval.unwrap_or(MAX_INTERVAL).clamp(MIN_INTERVAL, MAX_INTERVAL);
                        self.interval = Duration::from_secs(secs);
                        self.next_announce = match self.has(Fault::IgnoresInterval) {
                            true => None,
                            false => Some(Instant::now() + self.interval),
                        };
                        self.connect_to(&reply.peers);
                    }
                    Err(AnnounceError::Failure(_)) if self.has(Fault::IgnoresFailure) => {
                        self.started = true;
                        self.next_announce = Some(Instant::now() + Duration::from_secs(MAX_INTERVAL));
                    }
                    Err(AnnounceError::Failure(reason)) => return Err(reason),
                    Err(AnnounceError::Broken(why)) => {
                        let again = if self.started { self.interval } else { ANNOUNCE_RETRY };
                        let what = event.unwrap_or("regular");
                        self.say(format!("tracker: {what} announce failed: {why}; again in {again:?}"));
                        self.next_announce = match self.started && self.has(Fault::IgnoresInterval) {
                            true => None,
                            false => Some(Instant::now() + again),
                        };
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends a connection we no longer want (it broke a rule); its requests go to others.
    fn drop_peer(&mut self, id: u64, why: &str) {
        if self.peers.contains_key(&id) {
            self.say(format!("dropped a peer: {why}"));
        }
        self.forget(id);
    }

    /// Removes a peer (dropping its queue closes its connection) and undoes what it counted for.
    fn forget(&mut self, id: u64) {
        let Some(peer) = self.peers.remove(&id) else { return };
        for (i, has) in peer.has.iter().enumerate() {
            if *has {
                self.availability[i] = self.availability[i].saturating_sub(1);
            }
        }
        for (piece, block, _) in peer.asked {
            self.unask(piece, block, id);
        }
        self.regular.retain(|&r| r != id);
        if self.optimistic == Some(id) {
            self.optimistic = None;
        }
        self.fill_all();
    }

    /// A peer whose connection ended (it closed, or broke off).
    fn gone(&mut self, id: u64) {
        if self.peers.contains_key(&id) && self.has(Fault::ExitsWhenPeerLeaves) {
            self.crashed = Some("a peer closed its connection".to_owned());
        }
        self.forget(id);
    }

    /// Queues a message to a peer; one whose queue is full is not reading, and is dropped.
    fn send(&mut self, id: u64, msg: Msg) {
        let Some(peer) = self.peers.get(&id) else { return };
        match peer.tx.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.drop_peer(id, "it does not read what we send"),
            // Its connection ended before its `Left` event got here.
            Err(mpsc::error::TrySendError::Closed(_)) => self.gone(id),
        }
    }

    fn bitfield(&self) -> Vec<u8> {
        let mut bits = vec![0u8; self.t.pieces().div_ceil(8)];
        for (i, piece) in self.pieces.iter().enumerate() {
            if piece.verified {
                bits[i / 8] |= 0x80 >> (i % 8);
            }
        }
        bits
    }

    // ------------------------------------------------------------------ messages

    fn on_message(&mut self, id: u64, msg: Msg) -> Result<(), String> {
        let n = self.t.pieces();
        let Some(peer) = self.peers.get_mut(&id) else { return Ok(()) };
        let first = !peer.spoke;
        peer.spoke = true;
        match msg {
            Msg::Choke => {
                // BEP 3: a choke drops every request the peer had from us.
                peer.choking_us = true;
                for (piece, block, _) in std::mem::take(&mut peer.asked) {
                    self.unask(piece, block, id);
                }
                self.fill_all();
            }
            Msg::Unchoke => {
                peer.choking_us = false;
                self.fill(id);
            }
            Msg::Interested => peer.interested = true,
            Msg::NotInterested => peer.interested = false,
            Msg::Have(index) => {
                let i = index as usize;
                if i >= n {
                    return Err(format!("have {index} of a torrent of {n} pieces"));
                }
                if !peer.has[i] {
                    peer.has[i] = true;
                    self.availability[i] += 1;
                }
                self.update_interest(id);
                self.fill(id);
            }
            Msg::Bitfield(bits) => {
                if !first {
                    return Err("a bitfield after other messages".to_owned());
                }
                if bits.len() != n.div_ceil(8) {
                    return Err(format!("a bitfield of {} bytes for {n} pieces", bits.len()));
                }
                // BEP 3: spare bits set are a reason to drop the connection.
                if (n..bits.len() * 8).any(|i| bits[i / 8] & (0x80 >> (i % 8)) != 0) {
                    return Err("a bitfield with spare bits set".to_owned());
                }
                for i in 0..n {
                    if bits[i / 8] & (0x80 >> (i % 8)) != 0 {
                        peer.has[i] = true;
                        self.availability[i] += 1;
                    }
                }
                self.update_interest(id);
                self.fill(id);
            }
            Msg::Request { index, begin, length } => self.serve(id, index, begin, length)?,
            Msg::Piece { index, begin, data } => self.on_block(id, index, begin, data)?,
            // A request of theirs already queued goes out anyway; cancels only save bandwidth.
            Msg::Cancel { .. } | Msg::KeepAlive | Msg::Other(_) => {}
        }
        Ok(())
    }

    /// Answers a peer's request with the block's bytes, if we unchoked it and have the piece.
    fn serve(&mut self, id: u64, index: u32, begin: u32, length: u32) -> Result<(), String> {
        let i = index as usize;
        if i >= self.t.pieces() || length == 0 || u64::from(begin) + u64::from(length) > self.t.piece_len(i) {
            return Err(format!("request {index} begin {begin} len {length}: outside the torrent"));
        }
        if length > BLOCK {
            return Err(format!("request of {length} bytes (at most {BLOCK})"));
        }
        let choked = self.peers.get(&id).is_none_or(|p| p.am_choking);
        // BEP 3: requests from a choked peer are not answered; nor for pieces not verified yet.
        if choked || !self.pieces[i].verified {
            return Ok(());
        }
        let start = (self.t.piece_offset(i) + u64::from(begin)) as usize;
        let Some(bytes) = self.data.get(start..start + length as usize) else {
            return Ok(());
        };
        let data = bytes.to_vec();
        self.uploaded += u64::from(length);
        self.send(id, Msg::Piece { index, begin, data });
        Ok(())
    }

    /// A block arrived: kept if we asked this peer for it and still need it; a complete piece is
    /// verified.
    fn on_block(&mut self, id: u64, index: u32, begin: u32, data: Vec<u8>) -> Result<(), String> {
        let i = index as usize;
        let b = (begin / BLOCK) as usize;
        let fits =
            i < self.t.pieces() && begin % BLOCK == 0 && b < self.pieces[i].blocks.len() && data.len() as u64 == self.block_len(i, b);
        if !fits {
            return Err(format!("piece {index} begin {begin} len {}: no block we ask for", data.len()));
        }
        let Some(peer) = self.peers.get_mut(&id) else { return Ok(()) };
        let Some(at) = peer.asked.iter().position(|&(p, q, _)| (p, q) == (i, b)) else {
            // Not asked of this peer (or given up on): not trusted, not counted.
            return Ok(());
        };
        peer.asked.swap_remove(at);
        peer.got += data.len() as u64;
        self.downloaded += data.len() as u64;
        let piece = &mut self.pieces[i];
        let others = match std::mem::replace(&mut piece.blocks[b], Block::Have) {
            Block::Asked(askers) => askers.into_iter().filter(|&a| a != id).collect(),
            Block::Have => {
                // A duplicate from the end game that crossed our cancel.
                self.fill(id);
                return Ok(());
            }
            Block::Missing => Vec::new(),
        };
        piece.suppliers.push(id);
        let start = (self.t.piece_offset(i) + u64::from(begin)) as usize;
        if let Some(slot) = self.data.get_mut(start..start + data.len()) {
            slot.copy_from_slice(&data);
        }
        // End game: the others asked for the same block are told not to bother.
        let length = data.len() as u32;
        for other in &others {
            if let Some(peer) = self.peers.get_mut(other) {
                peer.asked.retain(|&(p, q, _)| (p, q) != (i, b));
                if !self.has(Fault::NoCancel) {
                    self.send(*other, Msg::Cancel { index, begin, length });
                }
            }
        }
        if self.pieces[i].blocks.iter().all(|block| *block == Block::Have) {
            self.verify(i);
        }
        self.fill(id);
        for other in others {
            self.fill(other);
        }
        Ok(())
    }

    fn block_len(&self, piece: usize, block: usize) -> u64 {
        let begin = block as u64 * u64::from(BLOCK);
        self.t.piece_len(piece).saturating_sub(begin).min(u64::from(BLOCK))
    }

    /// Checks a complete piece against its SHA-1: kept and announced with `have`, or thrown away.
    fn verify(&mut self, i: usize) {
        let start = self.t.piece_offset(i) as usize;
        let len = self.t.piece_len(i) as usize;
        let hash: [u8; 20] = Sha1::digest(&self.data[start..start + len]).into();
        let piece = &mut self.pieces[i];
        if hash == self.t.hashes[i] || self.faults.has(Fault::NoVerify) {
            piece.verified = true;
            piece.suppliers.clear();
            self.verified += 1;
            self.verified_order.push(i);
            self.verified_bytes += len as u64;
            self.last_progress = Instant::now();
            let ids: Vec<u64> = self.peers.keys().copied().collect();
            for id in ids {
                if !self.has(Fault::NoHave) {
                    self.send(id, Msg::Have(i as u32));
                }
                self.update_interest(id);
            }
        } else {
            let mut suppliers = std::mem::take(&mut piece.suppliers);
            suppliers.sort_unstable();
            suppliers.dedup();
            piece.bad.extend(&suppliers);
            for block in &mut piece.blocks {
                *block = Block::Missing;
            }
            self.say(format!("piece {i} failed its SHA-1 check: fetching it again"));
            let strikes = !self.has(Fault::StickyPieces);
            for id in suppliers.into_iter().filter(|_| strikes) {
                let Some(peer) = self.peers.get_mut(&id) else { continue };
                peer.strikes += 1;
                if peer.strikes >= MAX_STRIKES {
                    self.banned.insert(peer.peer_id);
                    self.banned_addrs.extend(peer.addr);
                    self.drop_peer(
                        id,
                        &format!("its blocks were in {MAX_STRIKES} pieces that failed their SHA-1 check"),
                    );
                }
            }
            self.fill_all();
        }
    }

    /// Tells a peer `interested` or `not interested` when that changed: whether it has a piece we lack.
    fn update_interest(&mut self, id: u64) {
        let Some(peer) = self.peers.get(&id) else { return };
        let wants = peer.has.iter().zip(&self.pieces).any(|(has, piece)| *has && !piece.verified);
        if wants != peer.am_interested {
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.am_interested = wants;
            }
            if !self.has(Fault::NeverInterested) {
                self.send(id, if wants { Msg::Interested } else { Msg::NotInterested });
            }
        }
    }

    // ------------------------------------------------------------------ requests

    /// Forgets that `id` was asked for a block; a block nobody is asked for any more is missing again.
    fn unask(&mut self, piece: usize, block: usize, id: u64) {
        if let Some(Block::Asked(askers)) = self.pieces.get_mut(piece).and_then(|p| p.blocks.get_mut(block)) {
            askers.retain(|&a| a != id);
            if askers.is_empty() {
                self.pieces[piece].blocks[block] = Block::Missing;
            }
        }
    }

    fn fill_all(&mut self) {
        let ids: Vec<u64> = self.peers.keys().copied().collect();
        for id in ids {
            self.fill(id);
        }
    }

    /// Asks a peer that unchoked us for blocks until it has its share outstanding.
    fn fill(&mut self, id: u64) {
        let cap = match self.has(Fault::FloodsRequests) {
            true => usize::MAX,
            false => MAX_OUTSTANDING,
        };
        loop {
            let Some(peer) = self.peers.get(&id) else { return };
            if peer.choking_us || !peer.am_interested || peer.asked.len() >= cap {
                return;
            }
            let Some((i, b)) = self.pick(id) else { return };
            match &mut self.pieces[i].blocks[b] {
                Block::Asked(askers) => askers.push(id),
                block => *block = Block::Asked(vec![id]),
            }
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.asked.push((i, b, Instant::now()));
            }
            let begin = b as u32 * BLOCK;
            let length = match self.has(Fault::BigRequests) {
                true => 2 * BLOCK,
                false => self.block_len(i, b) as u32,
            };
            self.send(
                id,
                Msg::Request {
                    index: i as u32,
                    begin,
                    length,
                },
            );
        }
    }

    /// Whether `id` may be asked for piece `i`: not if its copy failed the hash, unless no other
    /// connected peer has the piece.
    fn allowed(&self, i: usize, id: u64) -> bool {
        if self.has(Fault::FixedShares) {
            let holders: Vec<u64> = self.peers.iter().filter(|(_, p)| p.has[i]).map(|(&o, _)| o).collect();
            return holders.get(i % holders.len().max(1)) == Some(&id);
        }
        let bad = &self.pieces[i].bad;
        if self.has(Fault::StickyPieces) {
            return bad.is_empty() || bad.contains(&id);
        }
        !bad.contains(&id) || !self.peers.iter().any(|(&o, p)| o != id && p.has[i] && !bad.contains(&o))
    }

    /// The next block to ask `id` for: a block of a piece already begun, else of the rarest piece
    /// it has (ties at random); in the end game (no block left that nobody was asked for) one
    /// asked of others.
    fn pick(&self, id: u64) -> Option<(usize, usize)> {
        let peer = self.peers.get(&id)?;
        let end_game = !self.has(Fault::NoEndGame) && self.pieces.iter().all(|p| p.verified || !p.blocks.contains(&Block::Missing));
        let wanted = |block: &Block| match block {
            Block::Missing => true,
            Block::Asked(askers) => end_game && !askers.contains(&id),
            Block::Have => false,
        };
        let sequential = self.has(Fault::Sequential);
        let mut best = Vec::new();
        let mut best_key = (u32::MAX, usize::MAX);
        for (i, piece) in self.pieces.iter().enumerate() {
            if !peer.has[i] || piece.verified || !piece.blocks.iter().any(wanted) || !self.allowed(i, id) {
                continue;
            }
            let key = if sequential {
                (0, i)
            } else {
                let begun = piece.blocks.iter().any(|b| *b != Block::Missing);
                (u32::from(!begun), self.availability[i] as usize)
            };
            if key < best_key {
                best_key = key;
                best.clear();
            }
            if key == best_key {
                best.push(i);
            }
        }
        let i = *best.get(fastrand::usize(..best.len().max(1)))?;
        let blocks = &self.pieces[i].blocks;
        // Within the piece: the first block nobody was asked for, else the one asked of fewest.
        let b = blocks.iter().position(|b| *b == Block::Missing).or_else(|| {
            (0..blocks.len()).filter(|&b| wanted(&blocks[b])).min_by_key(|&b| match &blocks[b] {
                Block::Asked(askers) => askers.len(),
                _ => 0,
            })
        })?;
        Some((i, b))
    }

    /// Requests unanswered for too long go to someone else.
    fn housekeeping(&mut self) {
        while self.tasks.try_join_next().is_some() {}
        if self.has(Fault::NoEndGame) {
            return;
        }
        let now = Instant::now();
        let mut expired = Vec::new();
        for (&id, peer) in &mut self.peers {
            peer.asked.retain(|&(piece, block, when)| {
                let old = now.duration_since(when) >= REQUEST_TIMEOUT;
                if old {
                    expired.push((piece, block, id));
                }
                !old
            });
        }
        if !expired.is_empty() {
            for (piece, block, id) in expired {
                self.unask(piece, block, id);
            }
            self.fill_all();
        }
    }

    // ------------------------------------------------------------------ choking

    /// A choking round (K&R 2.5): the 4 interested peers that sent us most since the last round
    /// are unchoked, with the optimistic one; every other peer is choked.
    fn rechoke(&mut self) {
        if !self.has(Fault::NeverUnchokes) {
            let mut interested: Vec<(u64, u64)> = self
                .peers
                .iter()
                .filter(|(_, p)| p.interested)
                .map(|(&id, p)| (id, p.got))
                .collect();
            // Shuffled first, so equal rates are ranked at random by the stable sort.
            fastrand::shuffle(&mut interested);
            interested.sort_by_key(|&(_, rate)| std::cmp::Reverse(rate));
            let slots = match self.has(Fault::UnchokesAll) {
                true => usize::MAX,
                false => UNCHOKE_SLOTS,
            };
            self.regular = interested.iter().take(slots).map(|&(id, _)| id).collect();
            let keep = self
                .optimistic
                .filter(|o| !self.regular.contains(o) && self.peers.get(o).is_some_and(|p| p.interested));
            self.optimistic = keep;
            if self.optimistic.is_none() {
                self.optimistic = self.optimistic_candidate(None);
            }
            self.apply_choking();
        }
        for peer in self.peers.values_mut() {
            peer.got = 0;
        }
    }

    /// Another optimistic unchoke: a random choked interested peer in place of the current one.
    fn rotate_optimistic(&mut self) {
        if self.has(Fault::NeverUnchokes) {
            return;
        }
        let current = self.optimistic;
        self.optimistic = self
            .optimistic_candidate(current)
            .or(current.filter(|c| self.peers.get(c).is_some_and(|p| p.interested) && !self.regular.contains(c)));
        self.apply_choking();
    }

    /// A random interested peer that is not unchoked for its rate (nor `not`, the one rotated out).
    fn optimistic_candidate(&self, not: Option<u64>) -> Option<u64> {
        let candidates: Vec<u64> = self
            .peers
            .iter()
            .filter(|(id, p)| p.interested && !self.regular.contains(id) && Some(**id) != not)
            .map(|(&id, _)| id)
            .collect();
        candidates.get(fastrand::usize(..candidates.len().max(1))).copied()
    }

    fn apply_choking(&mut self) {
        let changes: Vec<(u64, bool)> = self
            .peers
            .iter()
            .filter_map(|(&id, p)| {
                let unchoke = self.regular.contains(&id) || self.optimistic == Some(id);
                (unchoke == p.am_choking).then_some((id, unchoke))
            })
            .collect();
        for (id, unchoke) in changes {
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.am_choking = !unchoke;
            }
            self.send(id, if unchoke { Msg::Unchoke } else { Msg::Choke });
        }
    }

    // ------------------------------------------------------------------ tracker

    fn announce_params(&self, event: Option<&'static str>) -> Announce {
        Announce {
            url: self.t.announce.clone(),
            info_hash: self.t.info_hash,
            peer_id: self.our_id,
            port: self.listen.port(),
            uploaded: self.uploaded,
            downloaded: self.downloaded,
            left: self.t.total - self.verified_bytes,
            event,
            compact_only: self.has(Fault::CompactOnly),
        }
    }

    /// Starts the announce that is due (`started` until the tracker has answered one), in the background.
    fn start_announce(&mut self) {
        let event = if self.started || self.has(Fault::NoStarted) {
            None
        } else {
            Some("started")
        };
        let params = self.announce_params(event);
        let control = self.control_tx.clone();
        let http_only = self.has(Fault::HttpOnly);
        self.announcing = true;
        self.next_announce = None;
        self.tasks.spawn(async move {
            let result = announce(&params, ANNOUNCE_WAIT, http_only).await;
            let _ = control.send(Control::Announced(event, result)).await;
        });
    }

    /// An announce at the end (`completed`, `stopped`), waited for while the connections' events
    /// are read and dropped (so no connection blocks on a full queue). Returns the tracker's
    /// `failure reason`, if it gave one.
    async fn final_announce(
        &mut self,
        rx: &mut (mpsc::Receiver<Event>, mpsc::Receiver<Control>),
        event: Option<&'static str>,
    ) -> Option<String> {
        if event == Some("stopped") && self.has(Fault::NoStopped) {
            return None;
        }
        let params = self.announce_params(event);
        let announce = announce(&params, FINAL_ANNOUNCE_WAIT, self.has(Fault::HttpOnly));
        tokio::pin!(announce);
        let result = loop {
            tokio::select! {
                result = &mut announce => break result,
                Some(event) = rx.0.recv() => self.on_closing_event(event),
                Some(_) = rx.1.recv() => {}
            }
        };
        match result {
            Ok(_) => None,
            Err(AnnounceError::Failure(reason)) => Some(reason),
            Err(AnnounceError::Broken(why)) => {
                self.say(format!("tracker: {} announce failed: {why}", event.unwrap_or("regular")));
                None
            }
        }
    }

    /// While closing: a connection that has just joined is closed at once, one that ends is counted.
    fn on_closing_event(&mut self, event: Event) {
        if let Event::Left { id } = event {
            self.live.remove(&id);
        }
    }

    /// Closes every connection: their queues dropped, each writes what is queued, then a FIN;
    /// whatever is still open after `CLOSE_WAIT` is aborted.
    async fn close(&mut self, rx: &mut (mpsc::Receiver<Event>, mpsc::Receiver<Control>)) {
        self.peers.clear();
        self.pending.clear();
        let deadline = Instant::now() + CLOSE_WAIT;
        while !self.live.is_empty() {
            let event = tokio::select! {
                event = rx.0.recv() => event,
                Some(_) = rx.1.recv() => continue,
                _ = sleep_until(deadline) => break,
            };
            match event {
                Some(event) => self.on_closing_event(event),
                None => break,
            }
        }
        // Bounded: aborted tasks end at their next await.
        let _ = timeout(CLOSE_WAIT, self.tasks.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A swarm of `rates.len()` joined peers (all interested in us when `interested`), each
    /// having sent us `rates[i]` bytes this round; with each peer's queue to read what it was sent.
    fn swarm_with(rates: &[(u64, bool)], faults: Faults) -> (Swarm, Vec<mpsc::Receiver<Msg>>) {
        let torrent = Torrent {
            announce: "http://127.0.0.1:1/announce".into(),
            info_hash: [1; 20],
            name: "x".into(),
            piece_length: 16384,
            hashes: vec![[0; 20]; 4],
            files: vec![super::super::metainfo::FileEntry {
                path: Vec::new(),
                length: 65536,
            }],
            total: 65536,
        };
        let (events_tx, _) = mpsc::channel(1);
        let (control_tx, _) = mpsc::channel(1);
        let (out, _) = mpsc::unbounded_channel();
        let listen = SocketAddr::from(([127, 0, 0, 1], 1));
        let mut swarm = Swarm::new(torrent, faults, listen, events_tx, control_tx, out);
        let mut queues = Vec::new();
        for (i, &(rate, interested)) in rates.iter().enumerate() {
            let (tx, rx) = mpsc::channel(16);
            let mut peer_id = [0u8; 20];
            peer_id[0] = i as u8;
            swarm.pending.insert(i as u64, None);
            swarm.on_event(Event::Joined { id: i as u64, peer_id, tx });
            if interested {
                swarm.on_event(Event::Message {
                    id: i as u64,
                    msg: Msg::Interested,
                });
            }
            swarm.peers.get_mut(&(i as u64)).expect("joined").got = rate;
            queues.push(rx);
        }
        (swarm, queues)
    }

    fn sent(queue: &mut mpsc::Receiver<Msg>) -> Vec<Msg> {
        std::iter::from_fn(|| queue.try_recv().ok()).collect()
    }

    #[test]
    fn rechoke_unchokes_the_four_best_uploaders_and_one_optimistic() {
        // Peer 6 sent the most but is not interested; peers 0-3 are the best interested ones.
        let rates = [
            (600, true),
            (500, true),
            (400, true),
            (300, true),
            (200, true),
            (100, true),
            (900, false),
        ];
        let (mut swarm, mut queues) = swarm_with(&rates, Faults::default());
        swarm.rechoke();
        let got: Vec<Vec<Msg>> = queues.iter_mut().map(sent).collect();
        for (i, msgs) in got.iter().enumerate().take(4) {
            assert_eq!(msgs, &[Msg::Unchoke], "peer {i}");
        }
        let optimistic = swarm.optimistic.expect("an optimistic unchoke");
        assert!(optimistic == 4 || optimistic == 5, "{optimistic}");
        let other = 9 - optimistic as usize;
        assert_eq!(got[optimistic as usize], [Msg::Unchoke]);
        assert_eq!(got[other], []);
        assert_eq!(got[6], [], "a peer that is not interested stays choked");
        assert!(swarm.peers.values().all(|p| p.got == 0), "rates start again each round");

        // Rotation: the other choked interested peer takes the optimistic slot.
        swarm.rotate_optimistic();
        assert_eq!(swarm.optimistic, Some(other as u64));
        assert_eq!(sent(&mut queues[optimistic as usize]), [Msg::Choke]);
        assert_eq!(sent(&mut queues[other]), [Msg::Unchoke]);
        assert!(queues[..4].iter_mut().all(|q| sent(q).is_empty()));

        // A new round by rate: peer 5 (now 1000) is among the four, peer 3 (now 0) is not.
        for (id, rate) in [(0, 600), (1, 500), (2, 400), (3, 0), (4, 0), (5, 1000)] {
            swarm.peers.get_mut(&id).expect("peer").got = rate;
        }
        swarm.rechoke();
        let regular: BTreeSet<u64> = swarm.regular.iter().copied().collect();
        assert_eq!(regular, BTreeSet::from([0, 1, 2, 5]));
        let optimistic = swarm.optimistic.expect("optimistic");
        assert!(optimistic == 3 || optimistic == 4, "{optimistic}");
    }

    #[test]
    fn never_unchokes_unchokes_no_one() {
        let (mut swarm, mut queues) = swarm_with(
            &[(100, true), (0, true)],
            Faults::parse("never-unchokes", super::super::FAULTS).expect("fault"),
        );
        swarm.rechoke();
        swarm.rotate_optimistic();
        assert!(queues.iter_mut().all(|q| sent(q).is_empty()));
    }

    #[test]
    fn rejects_bad_bitfields_and_out_of_range_messages() {
        let (mut swarm, _queues) = swarm_with(&[(0, false), (0, false), (0, false), (0, false), (0, false)], Faults::default());
        // 4 pieces: one byte, the low four bits spare.
        assert!(swarm.on_message(0, Msg::Bitfield(vec![0xf1])).is_err());
        assert!(swarm.on_message(1, Msg::Bitfield(vec![0xf0, 0])).is_err());
        assert!(swarm.on_message(2, Msg::Have(4)).is_err());
        assert!(swarm.on_message(3, Msg::Have(1)).is_ok());
        assert!(swarm.on_message(3, Msg::Bitfield(vec![0xf0])).is_err(), "a bitfield after a have");
        assert!(swarm
            .on_message(
                4,
                Msg::Request {
                    index: 0,
                    begin: 0,
                    length: 32768
                }
            )
            .is_err());
        assert!(swarm
            .on_message(
                4,
                Msg::Request {
                    index: 3,
                    begin: 16000,
                    length: 1000
                }
            )
            .is_err());
        assert!(swarm
            .on_message(
                4,
                Msg::Piece {
                    index: 9,
                    begin: 0,
                    data: vec![0; 16384]
                }
            )
            .is_err());
        assert!(swarm
            .on_message(
                4,
                Msg::Piece {
                    index: 0,
                    begin: 0,
                    data: vec![0; 100]
                }
            )
            .is_err());
        assert!(
            swarm
                .on_message(
                    4,
                    Msg::Request {
                        index: 0,
                        begin: 0,
                        length: 16384
                    }
                )
                .is_ok(),
            "choked: ignored"
        );
    }
}
