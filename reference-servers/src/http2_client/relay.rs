//! The relay between `h2` and the server's socket. `h2` writes and reads frames through an
//! in-memory pipe; the relay reads whole frames on both sides and passes them on, and on the way:
//!
//! - it checks every frame of the server for the connection errors RFC 9113 names, with the code
//!   it names (`h2` answers many of them with PROTOCOL_ERROR where the RFC says FRAME_SIZE_ERROR,
//!   FLOW_CONTROL_ERROR, COMPRESSION_ERROR or STREAM_CLOSED), writes the GOAWAY itself and closes;
//! - it judges every response (§8.1.1: a client MUST NOT accept a malformed one) and answers a
//!   malformed one with a stream error, RST_STREAM PROTOCOL_ERROR, which `h2` is told as well;
//! - it decodes every field block with its own HPACK decoders and sends each on as literals
//!   without indexing, to the server and to `h2` alike, so neither side's table depends on the
//!   other and a block can be edited, dropped or reordered: that is how the header faults are
//!   played, and how a response `h2` must not see (an informational one, a push) is left out;
//! - it plays the frame-level faults (`fault.rs`).
//!
//! Stream ids: `h2` numbers its streams 1, 3, 5 ...; on the wire they are the same unless
//! `even-stream-ids` or `reused-stream-id` says otherwise, and the relay maps them both ways.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

use crate::tls::ClientStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::fault::{Fault, Faults};
use super::fields::{self, Part};
use super::frame::*;

/// Bytes the pipe to `h2` holds each way.
const PIPE: usize = 1 << 20;
/// Bytes per read.
const READ: usize = 64 << 10;
/// A field block longer than this (across CONTINUATION frames) is refused.
const MAX_BLOCK: usize = 1 << 20;
/// After a GOAWAY of its own the relay reads on for this long, so that closing the socket with
/// unread bytes does not reset the connection before the server has read the GOAWAY.
const DRAIN: Duration = Duration::from_secs(1);
/// The payload of the PING `settings-not-first` sends first; its ACK is not for `h2`.
const OWN_PING: &[u8; 8] = b"wirechk!";
/// Windows before any SETTINGS or WINDOW_UPDATE (RFC 9113 §6.9.2); `h2` is built with these.
pub(super) const DEFAULT_WINDOW: u32 = 65_535;
/// SETTINGS_HEADER_TABLE_SIZE before SETTINGS say otherwise (RFC 9113 §6.5.2); h2 keeps it.
const DEFAULT_TABLE_SIZE: usize = 4096;
/// `ENHANCE_YOUR_CALM`, for a field block past `MAX_BLOCK`.
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// How far the connection has got, for the requests waiting to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// The server's SETTINGS have not been taken in yet.
    Starting,
    /// `h2` has acknowledged the server's SETTINGS: the limits in them are in force.
    Settled,
    /// The connection ended before that.
    Closed,
}

/// What the relay saw that the requests' outcome depends on.
#[derive(Debug, Default)]
pub(super) struct Report {
    /// The connection error the relay answered with GOAWAY: why, in words.
    pub(super) error: Option<String>,
    /// The error code of the server's GOAWAY, if one came.
    pub(super) goaway: Option<u32>,
    /// `h2` stream ids whose complete response was followed by RST_STREAM NO_ERROR (§8.1).
    pub(super) reset_after_end: HashSet<u32>,
    /// Things worth telling the user: stream errors, frames the faults let through.
    pub(super) notes: Vec<String>,
}

/// A running relay.
pub(super) struct Relay {
    tasks: JoinSet<()>,
    /// What it saw.
    pub(super) report: Arc<Mutex<Report>>,
    phase: watch::Receiver<Phase>,
}

impl Relay {
    /// Starts relaying between `server` (TCP, or TLS over it) and the returned pipe end, which is for `h2`.
    pub(super) fn start(server: ClientStream, faults: Faults) -> (DuplexStream, Relay) {
        let (h2_end, relay_end) = tokio::io::duplex(PIPE);
        let (from_h2, to_h2) = tokio::io::split(relay_end);
        let (from_server, to_server) = tokio::io::split(server);
        let report = Arc::new(Mutex::new(Report::default()));
        let conn = Arc::new(Mutex::new(Conn::new(faults, report.clone())));
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (phase_tx, phase) = watch::channel(Phase::Starting);
        let phase_tx = Arc::new(phase_tx);
        let mut tasks = JoinSet::new();
        tasks.spawn(outgoing(from_h2, to_server, ctl_rx, conn.clone(), phase_tx.clone()));
        tasks.spawn(incoming(from_server, to_h2, ctl_tx, conn, phase_tx));
        (h2_end, Relay { tasks, report, phase })
    }

    /// Waits until the server's SETTINGS are in force (true) or the connection is gone (false).
    pub(super) async fn settled(&mut self) -> bool {
        let phase = self.phase.wait_for(|p| *p != Phase::Starting).await;
        phase.is_ok_and(|p| *p == Phase::Settled)
    }

    /// Lets the relay finish its work for up to `grace`, then stops it.
    pub(super) async fn finish(mut self, grace: Duration) {
        let _ = tokio::time::timeout(grace, async { while self.tasks.join_next().await.is_some() {} }).await;
        self.tasks.abort_all();
    }
}

/// What the incoming side asks the outgoing side to write to the server.
enum Ctl {
    /// Frames to send.
    Send(Vec<u8>),
    /// A GOAWAY, after which the connection is closed for writing.
    Close(Vec<u8>),
}

/// Who reset a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reset {
    None,
    /// The server did (RST_STREAM received).
    ByServer,
    /// The client did (`h2`, or the relay for a stream error).
    ByClient,
}

/// One stream the client opened, by its id on the wire.
#[derive(Debug)]
struct Stream {
    /// Its id in `h2`.
    h2: u32,
    /// Flow-control windows: what the server lets us send, what we let it send (§6.9).
    send: i64,
    recv: i64,
    /// The final response head has come (informational ones do not count).
    head: bool,
    content_length: Option<u64>,
    received: u64,
    server_ended: bool,
    reset: Reset,
}

/// What both directions share.
struct Conn {
    faults: Faults,
    streams: BTreeMap<u32, Stream>,
    /// Streams the server promised (only with `accepts-push`).
    promised: HashSet<u32>,
    send_conn: i64,
    send_initial: i64,
    recv_conn: i64,
    recv_initial: i64,
    /// The server's SETTINGS_MAX_FRAME_SIZE.
    server_max_frame: usize,
    /// The relay has found a connection error: its GOAWAY is the last frame to go.
    closing: bool,
    report: Arc<Mutex<Report>>,
}

impl Conn {
    fn new(faults: Faults, report: Arc<Mutex<Report>>) -> Conn {
        Conn {
            faults,
            streams: BTreeMap::new(),
            promised: HashSet::new(),
            send_conn: DEFAULT_WINDOW.into(),
            send_initial: DEFAULT_WINDOW.into(),
            recv_conn: DEFAULT_WINDOW.into(),
            recv_initial: DEFAULT_WINDOW.into(),
            server_max_frame: DEFAULT_MAX_FRAME,
            closing: false,
            report,
        }
    }

    fn has(&self, fault: Fault) -> bool {
        self.faults.has(fault)
    }

    /// The wire id of `h2`'s stream `id`.
    fn wire_id(&self, id: u32) -> u32 {
        if id == 0 {
            return 0;
        }
        let mut wire = id;
        if self.has(Fault::ReusedStreamId) && id == 3 {
            wire = 1;
        }
        if self.has(Fault::EvenStreamIds) {
            wire += 1;
        }
        wire
    }

    fn note(&self, text: String) {
        if let Ok(mut report) = self.report.lock() {
            report.notes.push(text);
        }
    }
}

/// `h2`'s frames to the server.
async fn outgoing(
    mut from_h2: ReadHalf<DuplexStream>,
    mut to_server: WriteHalf<ClientStream>,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
    conn: Arc<Mutex<Conn>>,
    phase: Arc<watch::Sender<Phase>>,
) {
    let mut out = Outgoing {
        frames: Frames::default(),
        decoder: fluke_hpack::Decoder::new(),
        block: None,
        preface_done: false,
        settings_sent: false,
        acked: false,
    };
    let mut buf = vec![0; READ];
    let mut ctl_open = true;
    loop {
        tokio::select! {
            biased;
            // Nothing of the relay's goes before h2's preface and SETTINGS, the connection's
            // first bytes (RFC 9113 §3.4), even when the server's first frame is already wrong.
            msg = ctl.recv(), if ctl_open && out.settings_sent => match msg {
                Some(Ctl::Send(bytes)) => {
                    if to_server.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Some(Ctl::Close(bytes)) => {
                    let _ = to_server.write_all(&bytes).await;
                    let _ = to_server.shutdown().await;
                    return;
                }
                None => ctl_open = false,
            },
            n = from_h2.read(&mut buf) => {
                let n = match n {
                    Ok(0) | Err(_) => {
                        // h2 is done (after its GOAWAY) or gone: so is the client's side, once
                        // what the incoming side still has to say is written (its GOAWAY), after
                        // SETTINGS if h2 let go before sending them (§3.4: they come first).
                        let mut last = Vec::new();
                        while let Ok(Ctl::Send(bytes) | Ctl::Close(bytes)) = ctl.try_recv() {
                            if !out.settings_sent {
                                out.settings_sent = true;
                                let push_off = settings_payload(&[(SETTINGS_ENABLE_PUSH, 0)]);
                                last.extend_from_slice(&Frame::new(SETTINGS, 0, 0, push_off).bytes());
                            }
                            last.extend_from_slice(&bytes);
                        }
                        let _ = to_server.write_all(&last).await;
                        let _ = to_server.shutdown().await;
                        return;
                    }
                    Ok(n) => n,
                };
                out.frames.push(&buf[..n]);
                let bytes = {
                    let Ok(mut conn) = conn.lock() else { return };
                    out.process(&mut conn)
                };
                if to_server.write_all(&bytes).await.is_err() {
                    return;
                }
                // Only now: the requests that wait for this must go on the wire after the ACK,
                // where the server sees that the client knew its limits when it opened them.
                if out.acked && *phase.borrow() == Phase::Starting {
                    phase.send_replace(Phase::Settled);
                }
            }
        }
    }
}

/// The outgoing side's own state.
struct Outgoing {
    frames: Frames,
    /// Decodes `h2`'s field blocks (its encoder indexes; the server never sees those indexes).
    decoder: fluke_hpack::Decoder<'static>,
    /// A field block under way: (`h2` stream id, flags of its HEADERS, bytes so far).
    block: Option<(u32, u8, Vec<u8>)>,
    preface_done: bool,
    /// h2's first SETTINGS has gone to the server: the relay's own frames may follow.
    settings_sent: bool,
    /// h2 has acknowledged the server's SETTINGS (so it applies their limits).
    acked: bool,
}

impl Outgoing {
    /// Everything complete in the buffer, turned into what goes to the server.
    fn process(&mut self, conn: &mut Conn) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.preface_done {
            let Some(preface) = self.frames.take(PREFACE.len()) else {
                return out;
            };
            self.preface_done = true;
            if !conn.has(Fault::NoPreface) {
                out.extend_from_slice(&preface);
            }
            if conn.has(Fault::SettingsNotFirst) {
                out.extend_from_slice(&Frame::new(PING, 0, 0, OWN_PING.to_vec()).bytes());
            }
        }
        // h2 writes frames no larger than 16 MiB; anything bigger would be a bug here.
        while let Next::Frame(frame) = self.frames.next(1 << 24) {
            if conn.closing && self.settings_sent {
                // After a connection error only the relay's GOAWAY goes out, not what h2 says
                // once it learns the connection is gone.
                continue;
            }
            self.settings_sent |= frame.kind == SETTINGS;
            self.frame(conn, frame, &mut out);
        }
        out
    }

    /// One frame of h2's, mapped to its wire stream id and changed as the faults say.
    fn frame(&mut self, conn: &mut Conn, mut f: Frame, out: &mut Vec<u8>) {
        let h2_id = f.stream;
        f.stream = conn.wire_id(h2_id);
        match f.kind {
            HEADERS => {
                let Some(mut body) = f.unpadded().map(<[u8]>::to_vec) else { return };
                if f.has(PRIORITY_FLAG) {
                    body.drain(..5.min(body.len()));
                }
                self.block = Some((h2_id, f.flags, body));
                if f.has(END_HEADERS) {
                    self.finish_block(conn, out);
                }
                return;
            }
            CONTINUATION => {
                if let Some((_, _, block)) = &mut self.block {
                    block.extend_from_slice(&f.payload);
                }
                if f.has(END_HEADERS) {
                    self.finish_block(conn, out);
                }
                return;
            }
            DATA => {
                let len = f.payload.len() as i64;
                conn.send_conn -= len;
                if let Some(s) = conn.streams.get_mut(&f.stream) {
                    s.send -= len;
                }
            }
            WINDOW_UPDATE => {
                if conn.has(Fault::NoWindowUpdate) {
                    return;
                }
                let inc = i64::from(f.word(0).unwrap_or(0) & 0x7fff_ffff);
                if f.stream == 0 {
                    conn.recv_conn += inc;
                } else if let Some(s) = conn.streams.get_mut(&f.stream) {
                    s.recv += inc;
                }
            }
            SETTINGS if f.has(ACK) => {
                self.acked = true;
                if conn.has(Fault::NoSettingsAck) {
                    return;
                }
            }
            SETTINGS => {
                for (id, value) in settings(&f.payload) {
                    if id == SETTINGS_INITIAL_WINDOW_SIZE {
                        conn.recv_initial = value.into();
                    }
                }
            }
            PING if f.has(ACK) && conn.has(Fault::NoPingAck) => return,
            RST_STREAM => {
                if let Some(s) = conn.streams.get_mut(&f.stream) {
                    s.reset = Reset::ByClient;
                }
            }
            GOAWAY if conn.has(Fault::WrongErrorCode) && f.word(4).is_some_and(|code| code != NO_ERROR) => {
                let wrong = wrong_code(f.word(4).unwrap_or(PROTOCOL_ERROR));
                f.payload[4..8].copy_from_slice(&wrong.to_be_bytes());
            }
            _ => {}
        }
        out.extend_from_slice(&f.bytes());
    }

    /// A whole field block of `h2`'s: decoded, edited by the faults, sent as literals.
    fn finish_block(&mut self, conn: &mut Conn, out: &mut Vec<u8>) {
        let Some((h2_id, flags, block)) = self.block.take() else { return };
        let wire = conn.wire_id(h2_id);
        let Some(fields) = decode(&mut self.decoder, &block) else {
            // Not something h2 does; the server would fail to decode what follows as well.
            conn.note(format!("error: h2's field block for stream {h2_id} does not decode"));
            out.extend_from_slice(&goaway(0, 0x2).bytes());
            return;
        };
        let fields = fields::edit_request(fields, conn.faults);
        let (send, recv) = (conn.send_initial, conn.recv_initial);
        // The first HEADERS opens the stream; with `reused-stream-id` the wire id is taken already.
        conn.streams.entry(wire).or_insert(Stream {
            h2: h2_id,
            send,
            recv,
            head: false,
            content_length: None,
            received: 0,
            server_ended: false,
            reset: Reset::None,
        });
        let end_stream = flags & END_STREAM != 0 && !conn.has(Fault::NoEndStream);
        out.extend_from_slice(&header_frames(wire, &literal_block(&fields), end_stream, conn.server_max_frame));
    }
}

/// A connection error: the code RFC 9113 names, and why.
#[derive(Debug)]
struct ConnError {
    code: u32,
    why: String,
}

fn conn_error(code: u32, why: impl Into<String>) -> ConnError {
    ConnError { code, why: why.into() }
}

/// What one frame of the server comes to.
#[derive(Debug, Default)]
struct Out {
    to_h2: Vec<u8>,
    to_server: Vec<u8>,
}

impl Out {
    fn h2(bytes: Vec<u8>) -> Out {
        Out {
            to_h2: bytes,
            to_server: Vec::new(),
        }
    }
}

/// The server's frames to `h2`.
async fn incoming(
    mut from_server: ReadHalf<ClientStream>,
    mut to_h2: WriteHalf<DuplexStream>,
    ctl: mpsc::UnboundedSender<Ctl>,
    conn: Arc<Mutex<Conn>>,
    phase: Arc<watch::Sender<Phase>>,
) {
    let mut decoder = fluke_hpack::Decoder::new();
    // The client's SETTINGS_HEADER_TABLE_SIZE is the default: a size update past it is a
    // COMPRESSION_ERROR (RFC 7541 §6.3).
    decoder.set_max_allowed_table_size(DEFAULT_TABLE_SIZE);
    let mut inc = Incoming {
        frames: Frames::default(),
        decoder,
        block: None,
        started: false,
        settings_seen: false,
    };
    let mut buf = vec![0; READ];
    let mut h2_open = true;
    let stop = 'read: loop {
        let n = match from_server.read(&mut buf).await {
            Ok(0) | Err(_) => break None,
            Ok(n) => n,
        };
        inc.frames.push(&buf[..n]);
        loop {
            let (verdict, lenient) = {
                let Ok(mut conn) = conn.lock() else { break 'read None };
                let verdict = match inc.frames.next(DEFAULT_MAX_FRAME) {
                    Next::More => break,
                    Next::Oversized(len) => {
                        if conn.has(Fault::Lenient) {
                            inc.frames.skip_oversized(len);
                        }
                        Err(conn_error(
                            FRAME_SIZE_ERROR,
                            format!(
                                "a frame of {len} octets, over the client's SETTINGS_MAX_FRAME_SIZE of {DEFAULT_MAX_FRAME} (RFC 9113 §4.2)"
                            ),
                        ))
                    }
                    Next::Frame(frame) => inc.frame(&mut conn, frame),
                };
                (verdict, conn.has(Fault::Lenient))
            };
            match verdict {
                Ok(out) => {
                    if !out.to_server.is_empty() {
                        let _ = ctl.send(Ctl::Send(out.to_server));
                    }
                    if h2_open && !out.to_h2.is_empty() && to_h2.write_all(&out.to_h2).await.is_err() {
                        h2_open = false;
                    }
                }
                Err(error) if lenient => {
                    if let Ok(conn) = conn.lock() {
                        conn.note(format!("ignored (lenient): {}", error.why));
                    }
                }
                Err(error) => break 'read Some(error),
            }
        }
    };
    if let Some(error) = &stop {
        let code = match conn.lock() {
            Ok(mut conn) => {
                conn.closing = true;
                let code = if conn.has(Fault::WrongErrorCode) {
                    wrong_code(error.code)
                } else {
                    error.code
                };
                if let Ok(mut report) = conn.report.lock() {
                    report.error = Some(format!("{} (GOAWAY {})", error.why, code_name(code)));
                }
                code
            }
            Err(_) => error.code,
        };
        // The last stream the client processed that the server opened: none (§6.8). Queued
        // before h2 is told the connection is gone, so that the outgoing side has it in hand
        // when h2 lets go.
        let _ = ctl.send(Ctl::Close(goaway(0, code).bytes()));
    }
    let _ = to_h2.shutdown().await;
    drop(to_h2);
    phase.send_if_modified(|p| {
        let starting = *p == Phase::Starting;
        if starting {
            *p = Phase::Closed;
        }
        starting
    });
    if stop.is_none() {
        return;
    }
    // Read on (and throw away) until the server closes, for a while: see DRAIN.
    let _ = tokio::time::timeout(DRAIN, async { while matches!(from_server.read(&mut buf).await, Ok(n) if n > 0) {} }).await;
}

/// The name of an error code (RFC 9113 §7).
pub(super) fn code_name(code: u32) -> String {
    const NAMES: &[&str] = &[
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("0x{code:x}"), |name| (*name).to_owned())
}

/// A field block of the server's under way.
struct Block {
    stream: u32,
    /// A PUSH_PROMISE's block (only with `accepts-push`): decoded for the table, then dropped.
    push: bool,
    end_stream: bool,
    bytes: Vec<u8>,
}

/// The incoming side's own state.
struct Incoming {
    frames: Frames,
    /// Decodes the server's field blocks: the server's encoder table lives here.
    decoder: fluke_hpack::Decoder<'static>,
    block: Option<Block>,
    /// The server's first frame has come.
    started: bool,
    /// A SETTINGS frame (not an ACK) of the server's has been passed on.
    settings_seen: bool,
}

impl Incoming {
    /// Judges one frame of the server: what goes on to `h2` and back to the server, or the
    /// connection error it is.
    fn frame(&mut self, conn: &mut Conn, f: Frame) -> Result<Out, ConnError> {
        let name = kind_name(f.kind);
        if !self.started {
            if f.kind != SETTINGS || f.has(ACK) {
                let why = format!("the server's first frame is {name}, not SETTINGS (RFC 9113 §3.4)");
                if !conn.has(Fault::Lenient) {
                    return Err(conn_error(PROTOCOL_ERROR, why));
                }
                // Nothing is wrong with the frame itself: `lenient` takes it as it comes.
                conn.note(format!("ignored (lenient): {why}"));
            }
            self.started = true;
        }
        if conn.has(Fault::StrictUnknown) {
            if let Some(what) = unknown(&f) {
                return Err(conn_error(PROTOCOL_ERROR, format!("{what}, which this client does not know")));
            }
        }
        if let Some(block) = &self.block {
            if f.kind != CONTINUATION || f.stream != block.stream {
                return Err(conn_error(
                    PROTOCOL_ERROR,
                    format!(
                        "{name} on stream {} inside the field block of stream {} (RFC 9113 §6.10)",
                        f.stream, block.stream
                    ),
                ));
            }
        }
        let on_zero = |allowed: bool| match (allowed, f.stream == 0) {
            (true, false) => Err(conn_error(
                PROTOCOL_ERROR,
                format!("{name} on stream {}, not 0 (RFC 9113 §6)", f.stream),
            )),
            (false, true) => Err(conn_error(PROTOCOL_ERROR, format!("{name} on stream 0 (RFC 9113 §6)"))),
            _ => Ok(()),
        };
        let length = |ok: bool, section: &str| match ok {
            true => Ok(()),
            false => Err(conn_error(
                FRAME_SIZE_ERROR,
                format!("{name} with a payload of {} octets (RFC 9113 {section})", f.payload.len()),
            )),
        };
        match f.kind {
            DATA => {
                on_zero(false)?;
                self.data(conn, f)
            }
            HEADERS => {
                on_zero(false)?;
                // `no-padding`: the pad length and the padding are read as part of the block.
                let unpadded = if conn.has(Fault::NoPadding) {
                    Some(&f.payload[..])
                } else {
                    f.unpadded()
                };
                let Some(mut body) = unpadded else { return Err(padding(&name)) };
                if f.has(PRIORITY_FLAG) {
                    body = body
                        .get(5..)
                        .ok_or_else(|| conn_error(FRAME_SIZE_ERROR, "HEADERS too short for its priority (RFC 9113 §6.2)"))?;
                }
                let push = conn.promised.contains(&f.stream);
                match conn.streams.get(&f.stream) {
                    None if !push => return Err(idle(&name, f.stream)),
                    Some(s) if s.server_ended => return Err(after_end(&name, f.stream)),
                    _ => {}
                }
                self.block = Some(Block {
                    stream: f.stream,
                    push,
                    end_stream: f.has(END_STREAM),
                    bytes: body.to_vec(),
                });
                if f.has(END_HEADERS) {
                    return self.finish_block(conn);
                }
                Ok(Out::default())
            }
            CONTINUATION if conn.has(Fault::NoContinuation) => Err(conn_error(
                PROTOCOL_ERROR,
                format!("CONTINUATION on stream {}, which this client does not take", f.stream),
            )),
            CONTINUATION => {
                let Some(block) = &mut self.block else {
                    return Err(conn_error(
                        PROTOCOL_ERROR,
                        "CONTINUATION without a field block under way (RFC 9113 §6.10)",
                    ));
                };
                if block.bytes.len() + f.payload.len() > MAX_BLOCK {
                    return Err(conn_error(ENHANCE_YOUR_CALM, format!("a field block over {MAX_BLOCK} octets")));
                }
                block.bytes.extend_from_slice(&f.payload);
                if f.has(END_HEADERS) {
                    return self.finish_block(conn);
                }
                Ok(Out::default())
            }
            PRIORITY if conn.has(Fault::NoPriority) => Err(conn_error(
                PROTOCOL_ERROR,
                format!("PRIORITY on stream {}, which this client does not take", f.stream),
            )),
            PRIORITY => {
                on_zero(false)?;
                length(f.payload.len() == 5, "§6.3")?;
                Ok(Out::default())
            }
            RST_STREAM => {
                on_zero(false)?;
                length(f.payload.len() == 4, "§6.4")?;
                if conn.promised.contains(&f.stream) {
                    return Ok(Out::default());
                }
                let code = f.word(0).unwrap_or(0);
                let report = conn.report.clone();
                let Some(s) = conn.streams.get_mut(&f.stream) else {
                    return Err(idle(&name, f.stream));
                };
                if s.reset != Reset::None {
                    // §5.4.2: never a RST_STREAM in answer to one.
                    return Ok(Out::default());
                }
                if code == NO_ERROR && s.server_ended {
                    if let Ok(mut report) = report.lock() {
                        report.reset_after_end.insert(s.h2);
                    }
                }
                s.reset = Reset::ByServer;
                Ok(Out::h2(rst_stream(s.h2, code).bytes()))
            }
            SETTINGS => {
                on_zero(true)?;
                if f.has(ACK) {
                    length(f.payload.is_empty(), "§6.5")?;
                    return Ok(Out::h2(f.bytes()));
                }
                length(f.payload.len() % 6 == 0, "§6.5")?;
                self.settings(conn, &f)
            }
            PUSH_PROMISE => {
                on_zero(false)?;
                if !conn.has(Fault::AcceptsPush) {
                    return Err(conn_error(
                        PROTOCOL_ERROR,
                        "PUSH_PROMISE although the client's SETTINGS_ENABLE_PUSH is 0 (RFC 9113 §6.6, §8.4)",
                    ));
                }
                let Some(body) = f.unpadded() else { return Err(padding(&name)) };
                let Some(promised) = body.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff) else {
                    return Err(conn_error(
                        FRAME_SIZE_ERROR,
                        "PUSH_PROMISE too short for its stream id (RFC 9113 §6.6)",
                    ));
                };
                conn.promised.insert(promised);
                conn.note(format!("ignored (accepts-push): PUSH_PROMISE of stream {promised}"));
                self.block = Some(Block {
                    stream: f.stream,
                    push: true,
                    end_stream: false,
                    bytes: body[4..].to_vec(),
                });
                if f.has(END_HEADERS) {
                    return self.finish_block(conn);
                }
                Ok(Out::default())
            }
            PING => {
                on_zero(true)?;
                length(f.payload.len() == 8, "§6.7")?;
                if f.has(ACK) && f.payload == OWN_PING {
                    return Ok(Out::default());
                }
                Ok(Out::h2(f.bytes()))
            }
            GOAWAY => {
                on_zero(true)?;
                length(f.payload.len() >= 8, "§6.8")?;
                let last = f.word(0).unwrap_or(0) & 0x7fff_ffff;
                let code = f.word(4).unwrap_or(0);
                if let Ok(mut report) = conn.report.lock() {
                    report.goaway = Some(code);
                }
                // h2 learns the last stream by its own numbering.
                let h2_last = conn.streams.range(..=last).map(|(_, s)| s.h2).max().unwrap_or(0);
                let mut payload = f.payload.clone();
                payload[..4].copy_from_slice(&h2_last.to_be_bytes());
                Ok(Out::h2(Frame::new(GOAWAY, f.flags, 0, payload).bytes()))
            }
            WINDOW_UPDATE => {
                length(f.payload.len() == 4, "§6.9")?;
                self.window_update(conn, &f)
            }
            // §4.1, §5.5: frames of unknown types are ignored (never inside a field block).
            _ => Ok(Out::default()),
        }
    }

    fn data(&mut self, conn: &mut Conn, mut f: Frame) -> Result<Out, ConnError> {
        if conn.has(Fault::NoPadding) {
            // The pad length and the padding are taken for content: h2 is told so.
            f.flags &= !PADDED;
        }
        let Some(body) = f.unpadded() else { return Err(padding("DATA")) };
        let body = body.len() as u64;
        let flow = f.payload.len() as i64;
        conn.recv_conn -= flow;
        if conn.recv_conn < 0 {
            return Err(conn_error(
                FLOW_CONTROL_ERROR,
                format!(
                    "DATA beyond the connection's flow-control window, by {} octets (RFC 9113 §6.9.1)",
                    -conn.recv_conn
                ),
            ));
        }
        if conn.promised.contains(&f.stream) {
            return Ok(give_back(conn, flow, Out::default()));
        }
        let Some(s) = conn.streams.get_mut(&f.stream) else {
            return Err(idle("DATA", f.stream));
        };
        if s.server_ended {
            return Err(after_end("DATA", f.stream));
        }
        match s.reset {
            Reset::ByClient => return Ok(give_back(conn, flow, Out::default())),
            Reset::ByServer => {
                let wire = f.stream;
                let out = stream_error(
                    conn,
                    wire,
                    STREAM_CLOSED,
                    format!("DATA on stream {wire} after its RST_STREAM (RFC 9113 §5.1)"),
                );
                return Ok(give_back(conn, flow, out));
            }
            Reset::None => {}
        }
        s.recv -= flow;
        if s.recv < 0 {
            return Err(conn_error(
                FLOW_CONTROL_ERROR,
                format!(
                    "DATA beyond stream {}'s flow-control window, by {} octets (RFC 9113 §6.9.1)",
                    f.stream, -s.recv
                ),
            ));
        }
        if !s.head {
            let wire = f.stream;
            if conn.has(Fault::AcceptsMalformed) {
                return Ok(give_back(conn, flow, Out::default()));
            }
            let out = malformed(conn, wire, "DATA before the response's HEADERS (RFC 9113 §8.1)".to_owned());
            return Ok(give_back(conn, flow, out));
        }
        s.received += body;
        let end = f.has(END_STREAM);
        if end {
            s.server_ended = true;
        }
        if let Some(declared) = s.content_length {
            if s.received > declared || end && s.received != declared {
                let (wire, got) = (f.stream, s.received);
                let why = format!("content-length {declared}, but the DATA carried {got} octets (RFC 9113 §8.1.1)");
                let out = malformed(conn, wire, why);
                return Ok(give_back(conn, flow, out));
            }
        }
        Ok(Out::h2(Frame::new(DATA, f.flags, s.h2, f.payload).bytes()))
    }

    fn settings(&mut self, conn: &mut Conn, f: &Frame) -> Result<Out, ConnError> {
        let first = !self.settings_seen;
        let mut forward = Vec::new();
        for (id, value) in settings(&f.payload) {
            match id {
                SETTINGS_ENABLE_PUSH if value > 1 => {
                    return Err(conn_error(
                        PROTOCOL_ERROR,
                        format!("SETTINGS_ENABLE_PUSH of {value} (RFC 9113 §6.5.2)"),
                    ));
                }
                SETTINGS_ENABLE_PUSH if value == 1 => {
                    return Err(conn_error(
                        PROTOCOL_ERROR,
                        "SETTINGS_ENABLE_PUSH of 1 from a server (RFC 9113 §6.5.2: a client MUST treat it as a PROTOCOL_ERROR)",
                    ));
                }
                SETTINGS_INITIAL_WINDOW_SIZE => {
                    let value = i64::from(value);
                    if value > MAX_WINDOW {
                        return Err(conn_error(
                            FLOW_CONTROL_ERROR,
                            format!("SETTINGS_INITIAL_WINDOW_SIZE of {value}, over 2^31-1 (RFC 9113 §6.5.2)"),
                        ));
                    }
                    let delta = value - conn.send_initial;
                    conn.send_initial = value;
                    for (id, s) in &mut conn.streams {
                        s.send += delta;
                        if s.send > MAX_WINDOW {
                            return Err(conn_error(
                                FLOW_CONTROL_ERROR,
                                format!("SETTINGS_INITIAL_WINDOW_SIZE takes stream {id}'s window over 2^31-1 (RFC 9113 §6.9.2)"),
                            ));
                        }
                    }
                    if conn.has(Fault::IgnoreFlowControl) {
                        continue;
                    }
                }
                SETTINGS_MAX_FRAME_SIZE => {
                    if !(16_384..=16_777_215).contains(&value) {
                        return Err(conn_error(
                            PROTOCOL_ERROR,
                            format!("SETTINGS_MAX_FRAME_SIZE of {value}, outside 2^14 to 2^24-1 (RFC 9113 §6.5.2)"),
                        ));
                    }
                    conn.server_max_frame = value as usize;
                    if conn.has(Fault::BigFrames) {
                        continue;
                    }
                }
                SETTINGS_ENABLE_CONNECT_PROTOCOL if value > 1 => {
                    return Err(conn_error(
                        PROTOCOL_ERROR,
                        format!("SETTINGS_ENABLE_CONNECT_PROTOCOL of {value} (RFC 8441 §3)"),
                    ));
                }
                SETTINGS_MAX_CONCURRENT_STREAMS if conn.has(Fault::IgnoresMaxStreams) => continue,
                _ => {}
            }
            forward.push((id, value));
        }
        self.settings_seen = true;
        let mut to_h2 = Vec::new();
        // The lies that make h2 itself break the rules: the largest frames it may send, and
        // windows so wide that it never waits (with no WINDOW_UPDATE of the server's passed on).
        if conn.has(Fault::BigFrames) {
            forward.push((SETTINGS_MAX_FRAME_SIZE, 16_777_215));
        }
        if conn.has(Fault::IgnoreFlowControl) {
            forward.push((SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW as u32));
            if first {
                to_h2.extend_from_slice(&window_update(0, MAX_WINDOW as u32 - DEFAULT_WINDOW).bytes());
            }
        }
        to_h2.extend_from_slice(&Frame::new(SETTINGS, 0, 0, settings_payload(&forward)).bytes());
        Ok(Out::h2(to_h2))
    }

    fn window_update(&mut self, conn: &mut Conn, f: &Frame) -> Result<Out, ConnError> {
        let inc = f.word(0).unwrap_or(0) & 0x7fff_ffff;
        let pass = !conn.has(Fault::IgnoreFlowControl);
        if f.stream == 0 {
            if inc == 0 {
                return Err(conn_error(PROTOCOL_ERROR, "WINDOW_UPDATE of 0 for the connection (RFC 9113 §6.9)"));
            }
            conn.send_conn += i64::from(inc);
            if conn.send_conn > MAX_WINDOW {
                return Err(conn_error(
                    FLOW_CONTROL_ERROR,
                    "WINDOW_UPDATE takes the connection's window over 2^31-1 (RFC 9113 §6.9.1)",
                ));
            }
            return Ok(if pass { Out::h2(f.bytes()) } else { Out::default() });
        }
        if conn.promised.contains(&f.stream) {
            return Ok(Out::default());
        }
        let wire = f.stream;
        let Some(s) = conn.streams.get_mut(&wire) else {
            return Err(idle("WINDOW_UPDATE", wire));
        };
        if s.reset != Reset::None {
            return Ok(Out::default());
        }
        if inc == 0 {
            return Ok(stream_error(
                conn,
                wire,
                PROTOCOL_ERROR,
                format!("WINDOW_UPDATE of 0 for stream {wire} (RFC 9113 §6.9)"),
            ));
        }
        s.send += i64::from(inc);
        if s.send > MAX_WINDOW {
            return Ok(stream_error(
                conn,
                wire,
                FLOW_CONTROL_ERROR,
                format!("WINDOW_UPDATE takes stream {wire}'s window over 2^31-1 (RFC 9113 §6.9.1)"),
            ));
        }
        let h2 = s.h2;
        Ok(if pass {
            Out::h2(window_update(h2, inc).bytes())
        } else {
            Out::default()
        })
    }

    /// A whole field block of the server's: decoded (its table lives here), judged, and passed
    /// on to h2 as literals, or answered with a stream error.
    fn finish_block(&mut self, conn: &mut Conn) -> Result<Out, ConnError> {
        let Some(block) = self.block.take() else {
            return Ok(Out::default());
        };
        if let Some(uses) = uses(&block.bytes) {
            let refused = [
                (uses.huffman && conn.has(Fault::NoHuffman), "a Huffman-coded string"),
                (uses.dynamic && conn.has(Fault::NoDynamicTable), "the dynamic table"),
                (uses.size_update && conn.has(Fault::NoSizeUpdate), "a dynamic table size update"),
            ];
            if let Some((_, what)) = refused.iter().find(|(refused, _)| *refused) {
                return Err(conn_error(
                    COMPRESSION_ERROR,
                    format!(
                        "the field block on stream {} uses {what}, which this client cannot decode",
                        block.stream
                    ),
                ));
            }
        }
        let fields = decode(&mut self.decoder, &block.bytes).ok_or_else(|| {
            conn_error(
                COMPRESSION_ERROR,
                format!("the field block on stream {} does not decode (RFC 9113 §4.3)", block.stream),
            )
        })?;
        let wire = block.stream;
        if block.push || conn.promised.contains(&wire) {
            return Ok(Out::default());
        }
        let accept = conn.has(Fault::AcceptsMalformed);
        let (final_1xx, no_trailers) = (conn.has(Fault::Final1xx), conn.has(Fault::NoTrailers));
        let Some(s) = conn.streams.get_mut(&wire) else {
            return Err(idle("HEADERS", wire));
        };
        match s.reset {
            Reset::ByClient => return Ok(Out::default()),
            Reset::ByServer => {
                return Ok(stream_error(
                    conn,
                    wire,
                    STREAM_CLOSED,
                    format!("HEADERS on stream {wire} after its RST_STREAM (RFC 9113 §5.1)"),
                ));
            }
            Reset::None => {}
        }
        let part = if s.head { Part::Trailers } else { Part::Head };
        let judged = fields::judge_response(&fields, part);
        if let Some(why) = &judged.malformed {
            if !accept {
                return Ok(malformed(conn, wire, why.clone()));
            }
            conn.note(format!("accepted (accepts-malformed): stream {wire}: {why}"));
        }
        let Some(s) = conn.streams.get_mut(&wire) else {
            return Ok(Out::default());
        };
        let end_stream = block.end_stream;
        match part {
            Part::Head => {
                let status = judged.status.unwrap_or(200);
                if (100..200).contains(&status) && status != 101 && !final_1xx {
                    if !end_stream {
                        // A client may ignore informational responses (RFC 9110 §15.2); h2 needs only the final one.
                        return Ok(Out::default());
                    }
                    if !accept {
                        return Ok(malformed(
                            conn,
                            wire,
                            format!("the informational {status} ends the stream (RFC 9113 §8.1)"),
                        ));
                    }
                }
                s.head = true;
                // A 304's content-length is that of the representation it did not send (RFC 9110 §8.6).
                s.content_length = judged.content_length.filter(|_| !accept && status != 304);
            }
            Part::Trailers if !end_stream => {
                if !accept {
                    return Ok(malformed(conn, wire, "trailers without END_STREAM (RFC 9113 §8.1)".to_owned()));
                }
                // Taken for a header section in the middle of the body, and left out (h2 has no
                // place for one): the DATA after it goes on into the body.
                return Ok(Out::default());
            }
            Part::Trailers if no_trailers => {
                return Ok(stream_error(
                    conn,
                    wire,
                    PROTOCOL_ERROR,
                    format!("HEADERS after the body on stream {wire}, which this client does not take"),
                ));
            }
            Part::Trailers => {}
        }
        if end_stream {
            s.server_ended = true;
            if let Some(declared) = s.content_length.filter(|n| *n != s.received) {
                let why = format!(
                    "content-length {declared}, but the DATA carried {} octets (RFC 9113 §8.1.1)",
                    s.received
                );
                return Ok(malformed(conn, wire, why));
            }
        }
        Ok(Out::h2(header_frames(
            s.h2,
            &literal_block(&judged.fields),
            end_stream,
            DEFAULT_MAX_FRAME,
        )))
    }
}

/// The connection window taken by a DATA frame `h2` does not see, given back to the server
/// (unless `no-window-update`), added to `out`.
fn give_back(conn: &mut Conn, flow: i64, mut out: Out) -> Out {
    if flow > 0 && !conn.has(Fault::NoWindowUpdate) {
        conn.recv_conn += flow;
        out.to_server.extend_from_slice(&window_update(0, flow as u32).bytes());
    }
    out
}

/// A stream error (RFC 9113 §5.4.2): RST_STREAM to the server, and to h2 as if the server had
/// reset the stream, so that its request fails. Later frames on it are dropped.
fn stream_error(conn: &mut Conn, wire: u32, code: u32, why: String) -> Out {
    if conn.has(Fault::Lenient) {
        // The frame is dropped, and the stream goes on as if it had not come.
        conn.note(format!("ignored (lenient): {why}"));
        return Out::default();
    }
    let Some(s) = conn.streams.get_mut(&wire) else {
        return Out::default();
    };
    s.reset = Reset::ByClient;
    let h2 = s.h2;
    conn.note(format!("error: stream {wire}: {why} (RST_STREAM {})", code_name(code)));
    Out {
        to_h2: rst_stream(h2, code).bytes(),
        to_server: rst_stream(wire, code).bytes(),
    }
}

/// A malformed response: a stream error of type PROTOCOL_ERROR (RFC 9113 §8.1.1).
fn malformed(conn: &mut Conn, wire: u32, why: String) -> Out {
    let Some(s) = conn.streams.get_mut(&wire) else {
        return Out::default();
    };
    s.reset = Reset::ByClient;
    let h2 = s.h2;
    conn.note(format!(
        "error: stream {wire}: malformed response: {why} (RST_STREAM PROTOCOL_ERROR)"
    ));
    Out {
        to_h2: rst_stream(h2, PROTOCOL_ERROR).bytes(),
        to_server: rst_stream(wire, PROTOCOL_ERROR).bytes(),
    }
}

fn padding(name: &str) -> ConnError {
    conn_error(
        PROTOCOL_ERROR,
        format!("{name} whose padding is as long as its payload (RFC 9113 §6.1, §6.2)"),
    )
}

fn idle(name: &str, stream: u32) -> ConnError {
    conn_error(
        PROTOCOL_ERROR,
        format!("{name} on stream {stream}, which the client never opened (RFC 9113 §5.1: idle)"),
    )
}

fn after_end(name: &str, stream: u32) -> ConnError {
    conn_error(
        STREAM_CLOSED,
        format!("{name} on stream {stream} after the server's END_STREAM (RFC 9113 §5.1)"),
    )
}

/// What `strict-unknown` refuses in `f`: an unknown type, a flag its type does not define, the
/// reserved bit, an unknown SETTINGS identifier.
fn unknown(f: &Frame) -> Option<String> {
    let defined = match f.kind {
        DATA => END_STREAM | PADDED,
        HEADERS => END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG,
        SETTINGS | PING => ACK,
        PUSH_PROMISE => END_HEADERS | PADDED,
        CONTINUATION => END_HEADERS,
        _ => 0,
    };
    let name = kind_name(f.kind);
    if f.kind > CONTINUATION {
        return Some(name);
    }
    if f.flags & !defined != 0 {
        return Some(format!("{name} with flags 0x{:02x}", f.flags & !defined));
    }
    if f.reserved {
        return Some(format!("{name} with the reserved bit set"));
    }
    let unknown_setting = (f.kind == SETTINGS).then(|| settings(&f.payload).into_iter().find(|(id, _)| !(1..=9).contains(id)));
    unknown_setting.flatten().map(|(id, _)| format!("SETTINGS identifier 0x{id:x}"))
}

/// A frame type's name.
fn kind_name(kind: u8) -> String {
    const NAMES: &[&str] = &[
        "DATA",
        "HEADERS",
        "PRIORITY",
        "RST_STREAM",
        "SETTINGS",
        "PUSH_PROMISE",
        "PING",
        "GOAWAY",
        "WINDOW_UPDATE",
        "CONTINUATION",
    ];
    NAMES
        .get(kind as usize)
        .map_or_else(|| format!("a frame of type 0x{kind:x}"), |name| (*name).to_owned())
}

/// `wrong-error-code`'s code: a specific one other than the right one. (PROTOCOL_ERROR would not
/// do: RFC 9113 §5.4 lets it stand in for any more specific code.)
fn wrong_code(right: u32) -> u32 {
    if right == FLOW_CONTROL_ERROR {
        FRAME_SIZE_ERROR
    } else {
        FLOW_CONTROL_ERROR
    }
}
