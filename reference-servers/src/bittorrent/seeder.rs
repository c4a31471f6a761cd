//! `bt-seeder`: a peer that has every piece of one torrent and uploads it (BEP 3 peer wire).
//!
//! Options: `torrent` (the `.torrent` file), `dir` (the folder holding its data: `DIR/<name>`
//! for a single file, `DIR/<name>/<path...>` for several; by default the torrent's own folder),
//! `idle` (a peer silent that long, with nothing being sent to it, is dropped; default 180s,
//! since peers send keep-alives every two minutes), `fault`, and `guard`'s `max_connections` and
//! `line_timeout`. The data is read, and checked against the torrent's piece hashes, at start.
//!
//! One connection:
//! - the peer's handshake (`19`, "BitTorrent protocol", 8 reserved bytes, info-hash, peer id),
//!   within `HANDSHAKE_TIME`: a wrong protocol string or another torrent's info-hash closes the
//!   connection; otherwise our handshake goes back as soon as the info-hash is read (BEP 3),
//!   with reserved bytes all zero (no extensions, no DHT) and a peer id `-WR0001-` and 12 digits;
//! - then a bitfield: every piece, spare bits zero;
//! - `interested` gets `unchoke` (once); a `request` while choked is dropped (BEP 3), else it is
//!   queued and answered in order with a `piece` of the exact bytes; `cancel` removes a request
//!   still queued; messages that arrive together are all read before anything more is sent, so
//!   a request and its cancel in one segment never let the piece out;
//! - a request of length 0, over `MAX_BLOCK` (16 KiB), or outside its piece, and a fixed-size
//!   message of the wrong size, close the connection; so does a message announced longer than
//!   `MAX_MESSAGE` (1 MiB + 13);
//! - keep-alive, `choke`, `unchoke`, `not interested`, `have`, `bitfield`, `piece`, `port` and
//!   unknown ids are read past (their payload skipped, never buffered whole).
//!
//! The `fault` option switches on deliberate bugs (`FAULTS`), so the harness can prove that its
//! cases catch them; none is ever on in a real run.

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::{timeout, Instant};

use super::metainfo::{self, Metainfo};
use crate::guard::{self, Limits, Stream};
use crate::{parse_duration, Error, OptionSet, Options, RunningServer, Transport};

/// The name suites and the CLI use for this server.
pub(crate) const NAME: &str = "bt-seeder";
const OPTIONS: &[&str] = &["torrent", "dir", "idle", "fault", guard::OPTIONS[0], guard::OPTIONS[1]];

/// The protocol string of the handshake.
const PSTR: &[u8; 19] = b"BitTorrent protocol";
/// The largest block a request may ask for (the limit every client keeps to).
const MAX_BLOCK: u32 = 16 << 10;
/// The longest message read past; longer announced lengths close the connection.
const MAX_MESSAGE: u32 = (1 << 20) + 13;
/// The largest block taken even with the `truncates-big-requests` fault.
const MAX_UNCHECKED_BLOCK: u32 = 1 << 20;
/// The most data a torrent may hold: it is served from memory.
const MAX_DATA: u64 = 256 << 20;
/// How long a peer has for its handshake.
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);
/// Requests queued at once; a peer that asks for more is dropped.
const MAX_QUEUE: usize = 1024;

const KEEP_ALIVE_LEN: u32 = 0;
const UNCHOKE: u8 = 1;
const INTERESTED: u8 = 2;
const BITFIELD: u8 = 5;
const REQUEST: u8 = 6;
const PIECE: u8 = 7;
const CANCEL: u8 = 8;

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `spare-bits-set`: the bitfield's spare bits (past the last piece) are ones.
    SpareBitsSet,
    /// `off-by-one-index`: a request for piece i is answered with piece i+1's bytes.
    OffByOneIndex,
    /// `never-unchokes`: `interested` is never answered with `unchoke`.
    NeverUnchokes,
    /// `truncates-big-requests`: a request over 16 KiB (up to 1 MiB) is not refused but answered
    /// with its first 16 KiB, as a fixed-size buffer would.
    NoSizeCheck,
    /// `accepts-any-info-hash`: the handshake is answered whatever its info-hash, echoing it.
    AcceptsAnyInfoHash,
    /// `corrupt-piece`: the first byte of piece 1 is flipped.
    CorruptPiece,
    /// `no-range-check`: a request outside its piece gets zeros where there is no data.
    NoRangeCheck,
    /// `no-bitfield`: neither a bitfield nor haves are sent.
    NoBitfield,
    /// `closes-on-keepalive`: a keep-alive closes the connection.
    ClosesOnKeepalive,
    /// `ignores-pstr`: a handshake is answered whatever its first 20 bytes say.
    IgnoresPstr,
    /// `wrong-info-hash`: its own handshake carries the info-hash with its bytes reversed.
    WrongInfoHash,
}

/// Each fault's name, as the `fault` option takes it.
const FAULTS: &[(&str, Fault)] = &[
    ("spare-bits-set", Fault::SpareBitsSet),
    ("off-by-one-index", Fault::OffByOneIndex),
    ("never-unchokes", Fault::NeverUnchokes),
    ("truncates-big-requests", Fault::NoSizeCheck),
    ("accepts-any-info-hash", Fault::AcceptsAnyInfoHash),
    ("corrupt-piece", Fault::CorruptPiece),
    ("no-range-check", Fault::NoRangeCheck),
    ("no-bitfield", Fault::NoBitfield),
    ("ignores-pstr", Fault::IgnoresPstr),
    ("wrong-info-hash", Fault::WrongInfoHash),
    ("closes-on-keepalive", Fault::ClosesOnKeepalive),
];

/// The faults switched on.
type Faults = crate::faults::Set<Fault>;

impl From<Fault> for u32 {
    fn from(f: Fault) -> u32 {
        f as u32
    }
}

/// The torrent and its data, shared by every connection.
#[derive(Debug)]
struct Seeder {
    meta: Metainfo,
    /// Every file's bytes, in torrent order.
    data: Vec<u8>,
    peer_id: [u8; 20],
    idle: Duration,
    faults: Faults,
}

/// Checks the options, reads and checks the data, binds, and starts serving.
pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let idle = opts.get("idle", "180s", parse_duration)?;
    let faults = opts.get("fault", "", |v| Faults::parse(v, FAULTS))?;
    let limits = Limits::from_options(&opts)?;
    let Some(torrent) = opts.given("torrent") else {
        return Err(Error::BadOption {
            server: NAME.to_owned(),
            key: "torrent".to_owned(),
            value: String::new(),
            why: "give the torrent to serve: torrent=FILE (and dir=DIR, the folder holding its data)".to_owned(),
        });
    };
    let meta = opts.parse("torrent", torrent, |path| metainfo::load(Path::new(path)))?;
    let dir = match opts.given("dir") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(torrent).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    };
    let mut data = opts.parse("dir", &dir.display().to_string(), |_| read_data(&meta, &dir))?;
    if faults.has(Fault::CorruptPiece) {
        // Piece 1's first byte; a torrent of one piece has its own first byte flipped.
        let at = if meta.piece_count() > 1 {
            usize::try_from(meta.piece_length).unwrap_or(0)
        } else {
            0
        };
        if let Some(byte) = data.get_mut(at) {
            *byte ^= 0xff;
        }
    }
    let mut peer_id = *b"-WR0001-000000000000";
    for digit in &mut peer_id[8..] {
        *digit = b'0' + fastrand::u8(0..10);
    }
    let seeder = Arc::new(Seeder {
        meta,
        data,
        peer_id,
        idle,
        faults,
    });
    let listener = TcpListener::bind(bind).await?;
    let local_addr = listener.local_addr()?;
    let server = guard::serve(listener, limits, guard::silent(), move |stream, _peer| {
        serve_peer(stream, seeder.clone())
    });
    Ok(RunningServer::spawn(local_addr, Transport::Tcp, server))
}

/// Reads the torrent's files from `dir` and checks them against its piece hashes.
fn read_data(meta: &Metainfo, dir: &Path) -> Result<Vec<u8>, String> {
    if meta.total_length > MAX_DATA {
        return Err(format!(
            "the torrent holds {} bytes; at most {MAX_DATA} are served",
            meta.total_length
        ));
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.total_length).unwrap_or(0));
    for file in &meta.files {
        let mut path = dir.join(&meta.name);
        path.extend(&file.path);
        let opened = std::fs::File::open(&path).map_err(|err| format!("cannot open {}: {err}", path.display()))?;
        let before = data.len();
        opened
            .take(file.length + 1)
            .read_to_end(&mut data)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        let read = (data.len() - before) as u64;
        if read != file.length {
            return Err(format!(
                "{} has {}{read} bytes where the torrent says {}",
                path.display(),
                if read > file.length { "more than " } else { "" },
                file.length
            ));
        }
    }
    let piece_length = usize::try_from(meta.piece_length).map_err(|_| "the piece length is too large".to_owned())?;
    for (index, (piece, hash)) in data.chunks(piece_length).zip(&meta.pieces).enumerate() {
        if Sha1::digest(piece).as_slice() != hash {
            return Err(format!("piece {index} does not match the torrent's hash {}", metainfo::hex(hash)));
        }
    }
    Ok(data)
}

/// A request's or cancel's block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    index: u32,
    begin: u32,
    length: u32,
}

/// A message from the peer, as far as the seeder cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Incoming {
    KeepAlive,
    Interested,
    Request(Block),
    Cancel(Block),
    /// Anything else, read past.
    Ignored,
}

/// Why a connection is closed on the peer's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Violation {
    /// A length over `MAX_MESSAGE`.
    TooLong,
    /// A message whose size its id fixes came with another.
    WrongSize,
}

/// Splits the peer's bytes into messages without holding any payload it does not need.
#[derive(Debug, Default)]
struct Framer {
    buffer: Vec<u8>,
    /// Bytes of an ignored message still to throw away.
    skip: usize,
}

impl Framer {
    fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole message; `Ok(None)` until more bytes have come.
    fn next(&mut self) -> Result<Option<Incoming>, Violation> {
        if self.skip > 0 {
            let gone = self.skip.min(self.buffer.len());
            self.buffer.drain(..gone);
            self.skip -= gone;
            if self.skip > 0 {
                return Ok(None);
            }
        }
        let Some(length) = self.buffer.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])) else {
            return Ok(None);
        };
        if length == KEEP_ALIVE_LEN {
            self.buffer.drain(..4);
            return Ok(Some(Incoming::KeepAlive));
        }
        if length > MAX_MESSAGE {
            return Err(Violation::TooLong);
        }
        let Some(&id) = self.buffer.get(4) else {
            return Ok(None);
        };
        let fixed = match id {
            INTERESTED => Some(1),
            REQUEST | CANCEL => Some(13),
            _ => None,
        };
        let whole = 4 + length as usize;
        match fixed {
            Some(size) if length != size => Err(Violation::WrongSize),
            Some(_) => {
                let Some(message) = self.buffer.get(5..whole) else {
                    return Ok(None);
                };
                let word = |at: usize| u32::from_be_bytes([message[at], message[at + 1], message[at + 2], message[at + 3]]);
                let incoming = match id {
                    INTERESTED => Incoming::Interested,
                    _ => {
                        let block = Block {
                            index: word(0),
                            begin: word(4),
                            length: word(8),
                        };
                        if id == REQUEST {
                            Incoming::Request(block)
                        } else {
                            Incoming::Cancel(block)
                        }
                    }
                };
                self.buffer.drain(..whole);
                Ok(Some(incoming))
            }
            None => {
                self.skip = whole;
                let gone = self.skip.min(self.buffer.len());
                self.buffer.drain(..gone);
                self.skip -= gone;
                Ok(Some(Incoming::Ignored))
            }
        }
    }
}

/// What the writer sends next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Unchoke,
    Piece(Block),
}

/// One connection's state, shared by its reader and its writer.
#[derive(Debug)]
struct Session {
    queue: VecDeque<Out>,
    unchoked: bool,
    /// The peer closed its side: the writer sends what is queued, then ends.
    finished: bool,
    last_write: Instant,
}

#[derive(Debug)]
struct Shared {
    session: Mutex<Session>,
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Session> {
        // Plain data, consistent after every statement: a panic elsewhere cannot have broken it.
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How the reading side of a connection ended.
enum End {
    /// The peer closed its side.
    Eof,
    /// The seeder closes the connection.
    Close,
}

impl Seeder {
    fn has(&self, fault: Fault) -> bool {
        self.faults.has(fault)
    }

    /// Our handshake, for `info_hash`.
    fn handshake(&self, info_hash: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(68);
        out.push(19);
        out.extend_from_slice(PSTR);
        out.extend_from_slice(&[0; 8]);
        if self.has(Fault::WrongInfoHash) {
            out.extend(info_hash.iter().rev());
        } else {
            out.extend_from_slice(info_hash);
        }
        out.extend_from_slice(&self.peer_id);
        out
    }

    /// The bitfield message: every piece, high bit first, spare bits zero (BEP 3).
    fn bitfield(&self) -> Vec<u8> {
        let pieces = self.meta.piece_count();
        let mut bits = vec![0xffu8; pieces.div_ceil(8)];
        let spare = bits.len() * 8 - pieces;
        if let Some(last) = bits.last_mut() {
            if !self.has(Fault::SpareBitsSet) {
                *last &= 0xffu8 << spare;
            }
        }
        let mut out = Vec::with_capacity(5 + bits.len());
        out.extend_from_slice(&(1 + bits.len() as u32).to_be_bytes());
        out.push(BITFIELD);
        out.extend_from_slice(&bits);
        out
    }

    /// Whether a request may be served; `false` closes the connection.
    fn acceptable(&self, block: Block) -> bool {
        let largest = if self.has(Fault::NoSizeCheck) {
            MAX_UNCHECKED_BLOCK
        } else {
            MAX_BLOCK
        };
        if block.length == 0 || block.length > largest {
            return false;
        }
        let inside = self
            .meta
            .piece_len(u64::from(block.index))
            .is_some_and(|piece| u64::from(block.begin) + u64::from(block.length) <= piece);
        inside || self.has(Fault::NoRangeCheck)
    }

    /// The piece message answering `block`: the torrent's bytes, zeros where the block leaves
    /// its piece (only a fault lets such a request through).
    fn piece(&self, mut block: Block) -> Vec<u8> {
        if self.has(Fault::NoSizeCheck) {
            block.length = block.length.min(MAX_BLOCK);
        }
        let length = block.length as usize;
        let mut out = Vec::with_capacity(13 + length);
        out.extend_from_slice(&(9 + block.length).to_be_bytes());
        out.push(PIECE);
        out.extend_from_slice(&block.index.to_be_bytes());
        out.extend_from_slice(&block.begin.to_be_bytes());
        let body = out.len();
        out.resize(body + length, 0);
        let index = u64::from(block.index) + u64::from(self.has(Fault::OffByOneIndex));
        if let Some(piece) = self.meta.piece_len(index) {
            let begin = u64::from(block.begin);
            let end = (begin + u64::from(block.length)).min(piece);
            let start = index * self.meta.piece_length;
            if begin < end {
                let (from, to) = ((start + begin) as usize, (start + end) as usize);
                if let Some(bytes) = self.data.get(from..to) {
                    out[body..body + bytes.len()].copy_from_slice(bytes);
                }
            }
        }
        out
    }

    /// Acts on one message; `false` closes the connection.
    fn take(&self, incoming: Incoming, session: &mut Session) -> bool {
        match incoming {
            Incoming::KeepAlive => !self.has(Fault::ClosesOnKeepalive),
            Incoming::Interested => {
                if !session.unchoked && !self.has(Fault::NeverUnchokes) {
                    session.unchoked = true;
                    session.queue.push_back(Out::Unchoke);
                }
                true
            }
            Incoming::Request(block) => {
                if !self.acceptable(block) {
                    return false;
                }
                if session.unchoked {
                    if session.queue.len() >= MAX_QUEUE {
                        return false;
                    }
                    session.queue.push_back(Out::Piece(block));
                }
                true
            }
            Incoming::Cancel(block) => {
                if let Some(at) = session.queue.iter().position(|out| *out == Out::Piece(block)) {
                    session.queue.remove(at);
                }
                true
            }
            Incoming::Ignored => true,
        }
    }
}

/// One peer's connection, from its handshake to the close.
async fn serve_peer(mut stream: Stream, seeder: Arc<Seeder>) {
    let mut theirs = [0u8; 48];
    if !matches!(timeout(HANDSHAKE_TIME, stream.read_exact(&mut theirs)).await, Ok(Ok(_))) {
        return;
    }
    if (theirs[0] != 19 || theirs[1..20] != PSTR[..]) && !seeder.has(Fault::IgnoresPstr) {
        return;
    }
    let info_hash = &theirs[28..48];
    if info_hash != seeder.meta.info_hash && !seeder.has(Fault::AcceptsAnyInfoHash) {
        return;
    }
    let mut hello = seeder.handshake(info_hash);
    if !seeder.has(Fault::NoBitfield) {
        hello.extend_from_slice(&seeder.bitfield());
    }
    if !matches!(timeout(seeder.idle, stream.write_all(&hello)).await, Ok(Ok(()))) {
        return;
    }
    let mut peer_id = [0u8; 20];
    if !matches!(timeout(HANDSHAKE_TIME, stream.read_exact(&mut peer_id)).await, Ok(Ok(_))) {
        return;
    }
    // From here the peer sends messages the seeder does not answer (have, keep-alive): the
    // guard's timing of a message from its first byte to an answer no longer fits.
    stream.untimed();
    let shared = Shared {
        session: Mutex::new(Session {
            queue: VecDeque::new(),
            unchoked: false,
            finished: false,
            last_write: Instant::now(),
        }),
        wake: Notify::new(),
    };
    let (reader, writer) = tokio::io::split(stream);
    let writing = write_loop(writer, &seeder, &shared);
    tokio::pin!(writing);
    let end = tokio::select! {
        end = read_loop(reader, &seeder, &shared) => end,
        () = &mut writing => return,
    };
    if let End::Eof = end {
        shared.lock().finished = true;
        shared.wake.notify_one();
        let _ = timeout(seeder.idle, writing).await;
    }
}

async fn read_loop(mut reader: impl AsyncRead + Unpin, seeder: &Seeder, shared: &Shared) -> End {
    let mut framer = Framer::default();
    let mut chunk = vec![0u8; 16 << 10];
    loop {
        {
            // Everything that has arrived is taken under one lock before the writer looks again.
            let mut session = shared.lock();
            loop {
                match framer.next() {
                    Ok(None) => break,
                    Ok(Some(incoming)) => {
                        if !seeder.take(incoming, &mut session) {
                            return End::Close;
                        }
                    }
                    Err(_) => return End::Close,
                }
            }
        }
        shared.wake.notify_one();
        match timeout(seeder.idle, reader.read(&mut chunk)).await {
            Ok(Ok(0)) => return End::Eof,
            Ok(Ok(n)) => framer.push(&chunk[..n]),
            Ok(Err(_)) => return End::Close,
            // A peer busy downloading need not say anything.
            Err(_) if shared.lock().last_write.elapsed() < seeder.idle => {}
            Err(_) => return End::Close,
        }
    }
}

async fn write_loop(mut writer: impl AsyncWrite + Unpin, seeder: &Seeder, shared: &Shared) {
    loop {
        let next = {
            let mut session = shared.lock();
            match session.queue.pop_front() {
                Some(out) => Some(out),
                None if session.finished => return,
                None => None,
            }
        };
        let Some(out) = next else {
            // A wake-up given while nobody waited is kept (`notify_one`), so none is lost here.
            shared.wake.notified().await;
            continue;
        };
        let bytes = match out {
            Out::Unchoke => vec![0, 0, 0, 1, UNCHOKE],
            Out::Piece(block) => seeder.piece(block),
        };
        if !matches!(timeout(seeder.idle, writer.write_all(&bytes)).await, Ok(Ok(()))) {
            return;
        }
        shared.lock().last_write = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: u8, index: u32, begin: u32, length: u32) -> Vec<u8> {
        let mut out = 13u32.to_be_bytes().to_vec();
        out.push(id);
        for word in [index, begin, length] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out
    }

    #[test]
    fn frames_messages_and_skips_the_rest() {
        let mut framer = Framer::default();
        let mut bytes = vec![0, 0, 0, 0, 0, 0, 0, 1, INTERESTED];
        bytes.extend_from_slice(&[0, 0, 0, 5, 4, 0, 0, 0, 3]); // have 3
        bytes.extend_from_slice(&request(REQUEST, 1, 16384, 100));
        framer.push(&bytes[..3]);
        assert_eq!(framer.next(), Ok(None));
        framer.push(&bytes[3..20]);
        assert_eq!(framer.next(), Ok(Some(Incoming::KeepAlive)));
        assert_eq!(framer.next(), Ok(Some(Incoming::Interested)));
        assert_eq!(framer.next(), Ok(Some(Incoming::Ignored)));
        assert_eq!(framer.next(), Ok(None));
        framer.push(&bytes[20..]);
        let block = Block {
            index: 1,
            begin: 16384,
            length: 100,
        };
        assert_eq!(framer.next(), Ok(Some(Incoming::Request(block))));
        assert_eq!(framer.next(), Ok(None));
    }

    #[test]
    fn skips_a_long_message_without_keeping_it() {
        let mut framer = Framer::default();
        framer.push(&[0, 0, 0x40, 0x01, 99]);
        assert_eq!(framer.next(), Ok(Some(Incoming::Ignored)));
        framer.push(&[7; 10_000]);
        assert_eq!(framer.next(), Ok(None));
        assert!(framer.buffer.is_empty());
        let mut rest = vec![7; 0x4000 - 10_000];
        rest.extend_from_slice(&[0, 0, 0, 1, INTERESTED]);
        framer.push(&rest);
        assert_eq!(framer.next(), Ok(Some(Incoming::Interested)));
    }

    #[test]
    fn rejects_wrong_sizes_and_huge_lengths() {
        let mut framer = Framer::default();
        framer.push(&[0, 0, 0, 2, INTERESTED, 0]);
        assert_eq!(framer.next(), Err(Violation::WrongSize));
        let mut framer = Framer::default();
        framer.push(&(MAX_MESSAGE + 1).to_be_bytes());
        assert_eq!(framer.next(), Err(Violation::TooLong));
        let mut framer = Framer::default();
        let mut short = request(CANCEL, 0, 0, 0);
        short[3] = 12;
        framer.push(&short);
        assert_eq!(framer.next(), Err(Violation::WrongSize));
    }
}
