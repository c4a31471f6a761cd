//! The HTTP/2 server actor: an origin the harness plays for a client under test, over cleartext
//! with prior knowledge (RFC 9113 §3.3). It serves a folder read when the suite loads, answers
//! `POST /echo` with the request's body and anything else with 404, and keeps the rules it
//! checks: it sends its SETTINGS first, acknowledges the client's SETTINGS and PINGs, stays inside
//! the client's flow-control windows and SETTINGS_MAX_FRAME_SIZE, and encodes every field block
//! with HPACK (RFC 7541), by default as literals without indexing.
//!
//! ```yaml
//! actors:
//!   - name: srv
//!     http2: { root: ../fixtures/www }
//! cases:
//!   - steps:
//!       - serve: { actors: [srv], faults: { srv: [padding] }, with: { srv: {
//!           settings: { INITIAL_WINDOW_SIZE: 1024 },   # the actor's SETTINGS (default MAX_CONCURRENT_STREAMS 100)
//!           respond: false,                            # the first request gets only the injected frames
//!           inject: [ { at: request, frame: PING, data: "12345678" },
//!                     { at: request, frame: DATA, stream: request, flags: [END_STREAM], data: "x" } ] } } }
//! ```
//! `inject` takes frames written as `send:` writes them (`payload:` and `length:` to break a
//! rule on purpose), each sent at a point of the connection: `start` (before the actor's
//! SETTINGS), `settings` (after them; the default), `request` (the first request has arrived),
//! `headers` (after the first response's HEADERS) and `response` (after the first response);
//! `if: push-disabled` sends the frame only to a client that set SETTINGS_ENABLE_PUSH to 0;
//! `stream: request` is the first request's stream, `size: over-max` a payload one octet over
//! the client's SETTINGS_MAX_FRAME_SIZE.
//!
//! It judges the client (every finding is a MUST of RFC 9113, reported through
//! `ActorLog::violation`, and answered as a server answers it: GOAWAY or RST_STREAM): the
//! preface, SETTINGS first, the codec's MUST findings on each frame (field names, pseudo-header
//! fields, frame sizes, flags), odd and increasing stream identifiers, the actor's flow-control
//! windows and SETTINGS_MAX_CONCURRENT_STREAMS once the client acknowledged them, and the
//! acknowledgement of the actor's SETTINGS and PING, which it waits for (at most `ACK_WAIT`)
//! before it answers.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep_until, timeout, Instant};

use super::codec::{Block, Body, H2Frame, Http2Codec, Kind};
use super::hpack::{encode_string, integer};
use super::steps::{frame_bytes, parse_frame, FrameSpec};
use crate::proto::common::actor::{ActorHandle, ActorKind, ActorLog, ActorOptions, ActorSpec, Bound};
use crate::proto::{Codec, Direction, Framer, Level, Transport};
use crate::syntax::{Data, LoadCx, Node, Vars};

/// A connection with nothing to read for this long is closed (RFC 9113 §9.1: a server may close
/// idle connections).
const IDLE: Duration = Duration::from_secs(10);
/// A write to a client that does not read fails after this long.
const WRITE: Duration = Duration::from_secs(10);
/// How long the actor waits for the acknowledgement of its SETTINGS or PING before it says the
/// client never sent one (RFC 9113 §6.5.3: "immediately"; §6.7: "MUST send a PING frame in
/// response").
const ACK_WAIT: Duration = Duration::from_secs(2);
/// How long the actor waits, once half a receive window is used, before it opens it again: data
/// a client sends past the window meanwhile is caught, not credited by an update already sent.
const WINDOW_PAUSE: Duration = Duration::from_millis(100);
/// The largest request body kept.
const MAX_BODY: usize = 16 << 20;
/// The most bytes read from `root` when the suite loads.
const MAX_ROOT: usize = 8 << 20;
/// Connections served at once; more are closed at once.
const MAX_CONNS: usize = 16;
/// Largest default window (RFC 9113 §6.9.2) and window (§6.9.1).
const DEFAULT_WINDOW: i64 = 65_535;
const MAX_WINDOW: i64 = 0x7fff_ffff;
/// The actor's own SETTINGS_MAX_FRAME_SIZE (the default, RFC 9113 §6.5.2).
const OWN_MAX_FRAME: usize = 16_384;
/// How long a response waits for the client's window, or a request for its end, before the
/// actor says so (`ActorLog::hint`, shown when the case fails).
const STALL: Duration = Duration::from_secs(1);
/// Bytes of padding the `padding` fault adds.
const PAD: usize = 8;

/// The `http2:` actor vocabulary.
pub static ACTOR: ActorKind = ActorKind {
    key: "http2",
    faults: &[
        ("padding", "pads every DATA and HEADERS frame with 8 octets (RFC 9113 §6.1, §6.2)"),
        (
            "continuation",
            "splits every field block into HEADERS and CONTINUATION frames of 8 octets (RFC 9113 §6.10)",
        ),
        ("huffman", "Huffman-codes every string literal (RFC 7541 §5.2)"),
        (
            "indexed",
            "adds fields to the dynamic table and sends them again by index (RFC 7541 §6.1, §6.2.1)",
        ),
        (
            "size-update",
            "opens the first field block with dynamic table size updates to 0 and back (RFC 7541 §4.2, §6.3)",
        ),
        ("one-byte-data", "sends every body in DATA frames of one octet"),
        (
            "early-hints",
            "sends a 103 (Early Hints) before each final response (RFC 9113 §8.1)",
        ),
        ("trailers", "ends every response with a trailer section (RFC 9113 §8.1)"),
        (
            "goaway",
            "sends GOAWAY with NO_ERROR once every request it received is answered (RFC 9113 §6.8)",
        ),
        (
            "ping",
            "sends a PING after its SETTINGS and answers nothing until the client acknowledges it (RFC 9113 §6.7)",
        ),
        (
            "early-response",
            "answers a POST as soon as its HEADERS arrive (with the file at its path, as a GET), then RST_STREAM NO_ERROR (RFC 9113 §8.1)",
        ),
        (
            "push",
            "promises /notes.txt with PUSH_PROMISE before each response, when the client allows push (RFC 9113 §8.4)",
        ),
    ],
    parse,
    options: Some(parse_options),
};

/// A declared HTTP/2 actor: the files it serves, by path.
#[derive(Debug)]
struct H2Actor {
    files: Arc<HashMap<String, Vec<u8>>>,
}

fn parse(node: &Node, cx: &mut LoadCx) -> Option<Arc<dyn ActorSpec>> {
    let f = cx.fields(node, &["root"], "an HTTP/2 server actor")?;
    let Some(n) = f.get("root") else {
        cx.err_help(
            node,
            "an HTTP/2 actor needs the folder it serves",
            "e.g. http2: { root: ../fixtures/www }",
        );
        return None;
    };
    let written = cx.string(n, "root")?;
    // Read now, like every file a suite names: a case never touches the disk.
    let dir = cx
        .source()
        .path
        .parent()
        .map(|d| d.join(&written))
        .unwrap_or_else(|| written.clone().into());
    let mut files = HashMap::new();
    let mut total = 0;
    if let Err(why) = read_tree(&dir, "", 0, &mut files, &mut total) {
        cx.err_help(
            n,
            format!("{}: {why}", dir.display()),
            "paths are relative to the suite file's folder",
        );
        return None;
    }
    Some(Arc::new(H2Actor { files: Arc::new(files) }))
}

fn read_tree(dir: &Path, at: &str, depth: usize, files: &mut HashMap<String, Vec<u8>>, total: &mut usize) -> Result<(), String> {
    if depth > 8 {
        return Err("folders nest deeper than 8".into());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read the folder: {e}"))?;
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let path = format!("{at}/{name}");
        let meta = std::fs::metadata(e.path()).map_err(|err| format!("{}: {err}", e.path().display()))?;
        if meta.is_dir() {
            read_tree(&e.path(), &path, depth + 1, files, total)?;
        } else if meta.is_file() {
            *total += meta.len() as usize;
            if *total > MAX_ROOT {
                return Err(format!("the files add up to more than {MAX_ROOT} bytes"));
            }
            let bytes = std::fs::read(e.path()).map_err(|err| format!("{}: {err}", e.path().display()))?;
            files.insert(path, bytes);
        }
    }
    Ok(())
}

/// Where an injected frame goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Start,
    Settings,
    Request,
    Headers,
    Response,
}

/// A frame a case injects.
#[derive(Debug)]
struct Inject {
    at: At,
    /// On the first request's stream instead of the written one.
    on_request: bool,
    /// A payload one octet longer than the client's SETTINGS_MAX_FRAME_SIZE (`size: over-max`).
    over_max: bool,
    /// Only when the client disabled push (`if: push-disabled`).
    push_disabled: bool,
    frame: FrameSpec,
}

/// A case's options (`serve: { with: { srv: {...} } }`).
#[derive(Debug)]
struct Options {
    /// The actor's SETTINGS frame, in place of its default.
    settings: Option<FrameSpec>,
    /// Whether the first request gets the actor's own response.
    respond: bool,
    inject: Vec<Inject>,
}

fn scalar(text: &str, like: &Node) -> Node {
    Node {
        data: Data::Scalar {
            text: text.into(),
            quoted: false,
        },
        loc: like.loc,
    }
}

fn parse_options(node: &Node, cx: &mut LoadCx) -> Option<ActorOptions> {
    let f = cx.fields(node, &["settings", "respond", "inject"], "HTTP/2 actor options")?;
    let mut o = Options {
        settings: None,
        respond: true,
        inject: Vec::new(),
    };
    if let Some(s) = f.get("settings") {
        // Written as a SETTINGS frame's `settings:` mapping, built by the same code.
        let frame = Node {
            data: Data::Map(vec![
                (scalar("frame", s), scalar("SETTINGS", s)),
                (scalar("settings", s), s.clone()),
            ]),
            loc: s.loc,
        };
        o.settings = Some(parse_frame(&frame, cx)?);
    }
    if let Some(r) = f.get("respond") {
        o.respond = cx.boolean(r, "respond")?;
    }
    if let Some(list) = f.get("inject") {
        let Data::Seq(items) = &list.data else {
            cx.err_help(
                list,
                "inject is a list of frames",
                "e.g. inject: [ { at: request, frame: PING, data: \"12345678\" } ]",
            );
            return None;
        };
        for item in items {
            let Data::Map(pairs) = &item.data else {
                cx.err_help(item, "an injected frame is a mapping", "e.g. { at: start, frame: PING }");
                return None;
            };
            let mut at = At::Settings;
            let mut on_request = false;
            let mut over_max = false;
            let mut push_disabled = false;
            let mut rest = Vec::new();
            for (k, v) in pairs {
                match k.as_str() {
                    Some("at") => {
                        at = match v.as_str() {
                            Some("start") => At::Start,
                            Some("settings") => At::Settings,
                            Some("request") => At::Request,
                            Some("headers") => At::Headers,
                            Some("response") => At::Response,
                            _ => {
                                cx.err_help(
                                    v,
                                    "not a point of the connection",
                                    "at: start, settings, request, headers or response",
                                );
                                return None;
                            }
                        }
                    }
                    Some("stream") if v.is_keyword("request") => on_request = true,
                    Some("size") if v.is_keyword("over-max") => over_max = true,
                    Some("if") if v.is_keyword("push-disabled") => push_disabled = true,
                    Some("if") => {
                        cx.err_help(v, "not a condition", "if: push-disabled (the client's SETTINGS_ENABLE_PUSH is 0)");
                        return None;
                    }
                    _ => rest.push((k.clone(), v.clone())),
                }
            }
            if on_request && matches!(at, At::Start | At::Settings) {
                cx.err_help(
                    item,
                    "stream: request names the first request's stream, which is not known yet at this point",
                    "inject it at: request, headers or response",
                );
                return None;
            }
            let frame = parse_frame(
                &Node {
                    data: Data::Map(rest),
                    loc: item.loc,
                },
                cx,
            )?;
            o.inject.push(Inject {
                at,
                on_request,
                over_max,
                push_disabled,
                frame,
            });
        }
    }
    Some(Arc::new(o))
}

/// The faults a case switched on.
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    padding: bool,
    continuation: bool,
    huffman: bool,
    indexed: bool,
    size_update: bool,
    one_byte: bool,
    early_hints: bool,
    trailers: bool,
    goaway: bool,
    ping: bool,
    early_response: bool,
    push: bool,
}

impl Faults {
    fn of(names: &[String]) -> Faults {
        let on = |n: &str| names.iter().any(|f| f == n);
        Faults {
            padding: on("padding"),
            continuation: on("continuation"),
            huffman: on("huffman"),
            indexed: on("indexed"),
            size_update: on("size-update"),
            one_byte: on("one-byte-data"),
            early_hints: on("early-hints"),
            trailers: on("trailers"),
            goaway: on("goaway"),
            ping: on("ping"),
            early_response: on("early-response"),
            push: on("push"),
        }
    }
}

/// What every connection of one started actor shares.
struct Server {
    files: Arc<HashMap<String, Vec<u8>>>,
    faults: Faults,
    options: Option<Arc<Options>>,
    log: Arc<dyn ActorLog>,
}

impl ActorSpec for H2Actor {
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }

    fn well_known_port(&self) -> u16 {
        80
    }

    fn start(&self, sockets: Bound, faults: &[String], log: Arc<dyn ActorLog>) -> ActorHandle {
        self.start_with(sockets, faults, None, log)
    }

    fn start_with(&self, sockets: Bound, faults: &[String], options: Option<&ActorOptions>, log: Arc<dyn ActorLog>) -> ActorHandle {
        let Some(listener) = sockets.tcp else {
            return ActorHandle::default();
        };
        let tls = sockets.tls;
        let srv = Arc::new(Server {
            files: self.files.clone(),
            faults: Faults::of(faults),
            options: options.and_then(|o| o.clone().downcast::<Options>().ok()),
            log,
        });
        let (open_tx, open_rx) = tokio::sync::watch::channel(0usize);
        let open_tx = Arc::new(open_tx);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                while conns.try_join_next().is_some() {}
                if conns.len() >= MAX_CONNS {
                    continue;
                }
                let Ok(local) = stream.local_addr() else { continue };
                let (srv, open_tx, tls) = (srv.clone(), open_tx.clone(), tls.clone());
                open_tx.send_modify(|n| *n += 1);
                conns.spawn(async move {
                    let conv = srv.log.open(Transport::Tcp, local, peer);
                    let Some(stream) = crate::proto::common::actor::secure(stream, tls, conv, srv.log.as_ref()).await else {
                        srv.log.closed_by_actor(conv);
                        open_tx.send_modify(|n| *n -= 1);
                        return;
                    };
                    let peer_closed = Conn::new(srv.clone(), conv, stream).run().await;
                    match peer_closed {
                        true => srv.log.closed(conv),
                        false => srv.log.closed_by_actor(conv),
                    }
                    open_tx.send_modify(|n| *n -= 1);
                });
            }
        });
        ActorHandle::counting(vec![task], open_rx)
    }
}

/// A response under way.
#[derive(Debug, Default)]
struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    sent: usize,
    head_sent: bool,
    done: bool,
}

/// One stream the client opened (or the actor reserved for a push).
#[derive(Debug, Default)]
struct Stream {
    method: String,
    path: String,
    authority: String,
    body: Vec<u8>,
    /// The client's side ended (END_STREAM), or was reset.
    remote_done: bool,
    reset: bool,
    /// Receive window the actor gave for it, and bytes taken since the last WINDOW_UPDATE.
    recv_window: i64,
    recv_taken: i64,
    /// The client's window for the actor's DATA.
    send_window: i64,
    response: Option<Response>,
    /// No response of the actor's own (`respond: false`).
    held: bool,
    /// Pushed by the actor.
    pushed: bool,
}

impl Stream {
    fn closed(&self) -> bool {
        self.reset || (self.remote_done && self.response.as_ref().is_some_and(|r| r.done))
    }
}

/// Why a connection ends early.
enum Stop {
    /// The socket failed or the peer closed it.
    Gone,
    /// The actor ended it (a GOAWAY went out first).
    Ended,
}

/// One connection.
struct Conn {
    srv: Arc<Server>,
    conv: usize,
    rd: tokio::io::ReadHalf<crate::tls::Stream>,
    wr: tokio::io::WriteHalf<crate::tls::Stream>,
    /// The scheme of the requests it promises (`https` over TLS, RFC 9113 §8.3.1).
    scheme: &'static str,
    framer: Framer,
    out: Vec<u8>,
    got_preface: bool,
    got_settings: bool,
    /// SETTINGS frames the actor sent and the ACKs that came back.
    settings_sent: u32,
    acks: u32,
    /// The actor's PING waiting for its ACK.
    ping: Option<Vec<u8>>,
    /// When the ACKs the actor waits for are late.
    gate_until: Instant,
    // The client's settings.
    peer_max_frame: usize,
    peer_window: i64,
    peer_table: usize,
    peer_push: bool,
    // The actor's settings, in force once acknowledged.
    own_window: i64,
    own_max_streams: Option<u32>,
    send_conn: i64,
    recv_conn: i64,
    recv_conn_taken: i64,
    update_at: Option<Instant>,
    streams: BTreeMap<u32, Stream>,
    last_stream: u32,
    next_push: u32,
    /// A header block under way: its stream, and whether its HEADERS ended the stream.
    head: Option<(u32, bool)>,
    first_request: Option<u32>,
    injected: Vec<At>,
    first_done: bool,
    /// The HPACK dynamic table the actor's encoder keeps (newest first; only with `indexed`) and
    /// its maximum size, as last announced to the client.
    table: std::collections::VecDeque<(String, String)>,
    table_max: usize,
    blocks_sent: u32,
    goaway_sent: bool,
    /// The last stream a graceful GOAWAY of the actor's named: later ones are not served.
    goaway_last: Option<u32>,
    goaway_got: bool,
    /// Since when a response has waited for the client's flow-control window, and since when a
    /// request has been open without its end; each is told once (`ActorLog::hint`).
    window_stall: Option<Instant>,
    open_request: Option<(u32, Instant)>,
    hinted: Vec<&'static str>,
}

impl Conn {
    fn new(srv: Arc<Server>, conv: usize, stream: crate::tls::Stream) -> Conn {
        let scheme = if stream.is_tls() { "https" } else { "http" };
        let (rd, wr) = tokio::io::split(stream);
        Conn {
            srv,
            conv,
            scheme,
            rd,
            wr,
            framer: Framer::new(Box::new(Http2Codec::new(true)) as Box<dyn Codec>),
            out: Vec::new(),
            got_preface: false,
            got_settings: false,
            settings_sent: 0,
            acks: 0,
            ping: None,
            gate_until: Instant::now() + ACK_WAIT,
            peer_max_frame: OWN_MAX_FRAME,
            peer_window: DEFAULT_WINDOW,
            peer_table: 4096,
            peer_push: true,
            own_window: DEFAULT_WINDOW,
            own_max_streams: None,
            send_conn: DEFAULT_WINDOW,
            recv_conn: DEFAULT_WINDOW,
            recv_conn_taken: 0,
            update_at: None,
            streams: BTreeMap::new(),
            last_stream: 0,
            next_push: 2,
            head: None,
            first_request: None,
            injected: Vec::new(),
            first_done: false,
            table: std::collections::VecDeque::new(),
            table_max: 4096,
            blocks_sent: 0,
            goaway_sent: false,
            goaway_last: None,
            goaway_got: false,
            window_stall: None,
            open_request: None,
            hinted: Vec::new(),
        }
    }

    fn options(&self) -> Option<Arc<Options>> {
        self.srv.options.clone()
    }

    /// Serves the connection; true when the peer closed it.
    async fn run(mut self) -> bool {
        let r = self.serve().await;
        let _ = self.flush().await;
        match r {
            Err(Stop::Gone) => true,
            _ => {
                // Let the client read the GOAWAY: half-close, then read until it closes.
                let _ = timeout(WRITE, self.wr.shutdown()).await;
                let mut buf = vec![0u8; 16 * 1024];
                let until = Instant::now() + IDLE;
                loop {
                    match tokio::time::timeout_at(until, self.rd.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => self.srv.log.data(self.conv, Direction::ClientToServer, &buf[..n]),
                        Ok(_) => return true,
                        Err(_) => return false,
                    }
                }
            }
        }
    }

    async fn serve(&mut self) -> Result<(), Stop> {
        self.inject(At::Start, None);
        let settings = match self
            .options()
            .and_then(|o| o.settings.as_ref().map(|s| s.bytes(None, &Vars::new())))
        {
            Some(Ok(b)) => b,
            _ => frame_bytes(4, 0, 0, &[0, 3, 0, 0, 0, 100], None),
        };
        // The values the actor itself keeps to.
        for p in settings.get(9..).unwrap_or_default().chunks_exact(6) {
            let v = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
            match u16::from_be_bytes([p[0], p[1]]) {
                3 => self.own_max_streams = Some(v),
                4 => self.own_window = i64::from(v),
                _ => {}
            }
        }
        self.out.extend_from_slice(&settings);
        self.settings_sent += 1;
        self.inject(At::Settings, None);
        if self.srv.faults.ping {
            let data = b"wirechk!".to_vec();
            self.out.extend(frame_bytes(6, 0, 0, &data, None));
            self.ping = Some(data);
        }
        self.gate_until = Instant::now() + ACK_WAIT;
        self.flush().await?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            self.pump();
            self.flush().await?;
            let gate_open = self.gate_open();
            let idle = Instant::now() + IDLE;
            let mut wake = idle;
            if let Some(u) = self.update_at {
                wake = wake.min(u);
            }
            if !gate_open && !self.goaway_got {
                wake = wake.min(self.gate_until);
            }
            if let Some(t) = self.window_stall {
                wake = wake.min(t + STALL);
            }
            if let Some((_, t)) = self.open_request {
                wake = wake.min(t + STALL);
            }
            tokio::select! {
                r = self.rd.read(&mut buf) => {
                    let n = match r {
                        Ok(n) if n > 0 => n,
                        _ => return Err(Stop::Gone),
                    };
                    self.srv.log.data(self.conv, Direction::ClientToServer, &buf[..n]);
                    self.framer.push(&buf[..n]);
                    self.read_frames()?;
                }
                _ = sleep_until(wake) => {
                    let now = Instant::now();
                    if self.update_at.is_some_and(|u| u <= now) {
                        self.send_updates();
                    }
                    if !self.gate_open() && !self.goaway_got && self.gate_until <= now {
                        let (code, text) = match self.acks < self.settings_sent {
                            true => (4, format!(
                                "no SETTINGS frame with the ACK flag came back within {} s of the actor's SETTINGS; RFC 9113 §6.5.3: \
                                 upon receiving a SETTINGS frame the recipient MUST immediately emit a SETTINGS frame with the ACK flag set. \
                                 Fix: answer every SETTINGS frame without ACK with an empty SETTINGS frame with ACK",
                                ACK_WAIT.as_secs()
                            )),
                            false => (0, format!(
                                "no PING with the ACK flag came back within {} s of the actor's PING; RFC 9113 §6.7: receivers of a PING \
                                 frame that does not include an ACK flag MUST send a PING frame with the ACK flag set in response, with an \
                                 identical frame payload. Fix: echo each PING's 8 octets back with ACK",
                                ACK_WAIT.as_secs()
                            )),
                        };
                        return Err(self.fail(code, text));
                    }
                    self.notice(now);
                    if now >= idle {
                        return Err(Stop::Ended);
                    }
                }
            }
        }
    }

    /// Tells (once each) what keeps a case from going on: a response waiting for the client's
    /// window, a request that never ends.
    fn notice(&mut self, now: Instant) {
        if self.window_stall.is_some_and(|t| now >= t + STALL) && !self.hinted.contains(&"window") {
            self.hinted.push("window");
            let left: usize = self
                .streams
                .values()
                .filter_map(|s| s.response.as_ref().filter(|_| !s.reset))
                .map(|r| r.body.len() - r.sent)
                .sum();
            let text = format!(
                "{left} octets of response wait for the client's flow-control window, used up for {} s: \
                 RFC 9113 §6.9: a receiver that wants more data sends WINDOW_UPDATE (its window starts at 65535 \
                 octets, §6.9.2). Fix: send WINDOW_UPDATE for the stream and the connection as DATA is read",
                STALL.as_secs()
            );
            self.srv.log.hint(self.conv, &text);
        }
        if let Some((id, t)) = self.open_request {
            if now >= t + STALL && !self.hinted.contains(&"end") {
                self.hinted.push("end");
                let text = format!(
                    "the request on stream {id} has not ended after {} s (no END_STREAM), so the actor still waits \
                     for it: RFC 9113 §8.1: a request's last frame carries END_STREAM (the HEADERS frame of a \
                     request without content). Fix: set END_STREAM on the last frame of every request",
                    STALL.as_secs()
                );
                self.srv.log.hint(self.conv, &text);
            }
        }
    }

    fn gate_open(&self) -> bool {
        self.acks >= self.settings_sent && self.ping.is_none()
    }

    /// Records a rule the client broke, and ends the connection with GOAWAY and `code`.
    fn fail(&mut self, code: u32, text: String) -> Stop {
        self.srv.log.violation(self.conv, &text);
        if !self.goaway_sent {
            let mut payload = self.last_stream.to_be_bytes().to_vec();
            payload.extend_from_slice(&code.to_be_bytes());
            payload.extend_from_slice(text.split(';').next().unwrap_or_default().as_bytes());
            self.out.extend(frame_bytes(7, 0, 0, &payload, None));
            self.goaway_sent = true;
        }
        Stop::Ended
    }

    async fn flush(&mut self) -> Result<(), Stop> {
        if self.out.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.out);
        // The codec learns the actor's SETTINGS (its MAX_FRAME_SIZE) as the client does.
        self.framer.peer_sent(&bytes);
        self.srv.log.data(self.conv, Direction::ServerToClient, &bytes);
        // Under TLS the last records of a write wait for a flush.
        let write = async {
            self.wr.write_all(&bytes).await?;
            self.wr.flush().await
        };
        match timeout(WRITE, write).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Stop::Gone),
        }
    }

    /// Queues the frames injected at `at` (once per point).
    fn inject(&mut self, at: At, stream: Option<u32>) {
        if self.injected.contains(&at) {
            return;
        }
        self.injected.push(at);
        let Some(o) = self.options() else { return };
        for i in o.inject.iter().filter(|i| i.at == at && !(i.push_disabled && self.peer_push)) {
            let on = if i.on_request { stream } else { None };
            let Ok(mut bytes) = i.frame.bytes(on, &Vars::new()) else { continue };
            if i.over_max {
                // Too large for this client whatever it announced (RFC 9113 §4.2).
                let (kind, flags, id) = (bytes[3], bytes[4], u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]));
                bytes = frame_bytes(kind, flags, id, &vec![b'x'; self.peer_max_frame + 1], None);
            }
            match i.frame.kind() {
                // Injected DATA uses the client's windows like any other.
                0 => {
                    let len = bytes.len().saturating_sub(9) as i64;
                    self.send_conn -= len;
                    let id = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff;
                    if let Some(s) = self.streams.get_mut(&id) {
                        s.send_window -= len;
                    }
                }
                // The actor waits for the acknowledgement of an injected SETTINGS or PING as of
                // its own (a client that is answered at once may close before it acknowledges).
                4 if valid_settings(&bytes) => {
                    self.settings_sent += 1;
                    self.gate_until = Instant::now() + ACK_WAIT;
                }
                6 if bytes[4] & 1 == 0 && bytes.len() == 17 && bytes[5] & 0x7f == 0 && bytes[6..9] == [0, 0, 0] => {
                    self.ping = Some(bytes[9..17].to_vec());
                    self.gate_until = Instant::now() + ACK_WAIT;
                }
                _ => {}
            }
            self.out.extend(bytes);
        }
    }

    fn read_frames(&mut self) -> Result<(), Stop> {
        loop {
            let m = match self.framer.next(false) {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let text = match self.got_preface {
                        false => format!("{}. Fix: send the 24 octets of the preface first, then a SETTINGS frame", e.reason),
                        true => format!("the client's frames could not be read further: {}", e.reason),
                    };
                    return Err(self.fail(1, text));
                }
            };
            let Some(f) = m.detail.as_ref().and_then(|d| d.downcast_ref::<H2Frame>()).cloned() else {
                return Ok(());
            };
            if let Some(bad) = m.findings.iter().find(|f| f.level == Level::Must) {
                let code = match bad.rule {
                    "RFC 9113 §4.2" => 6,
                    "RFC 9113 §4.3" => 9,
                    _ => 1,
                };
                let text = format!("{} in {}: {} ({}, a MUST)", f.kind.name(), frame_where(&f), bad.text, bad.rule);
                return Err(self.fail(code, text));
            }
            self.frame(f)?;
        }
    }

    fn frame(&mut self, f: H2Frame) -> Result<(), Stop> {
        if matches!(f.body, Body::Preface) {
            self.got_preface = true;
            return Ok(());
        }
        if !self.got_settings {
            if f.kind != Kind::Settings || f.has(1) {
                return Err(self.fail(
                    1,
                    format!(
                        "the first frame after the preface is {}, not SETTINGS; RFC 9113 §3.4: the client connection preface \
                         MUST be followed by a SETTINGS frame. Fix: send SETTINGS (it may be empty) right after the preface",
                        f.kind.name()
                    ),
                ));
            }
            self.got_settings = true;
        }
        match (&f.kind, &f.body) {
            (Kind::Settings, Body::Settings(values)) if !f.has(1) => {
                for (id, v) in values {
                    match id {
                        1 => self.peer_table = *v as usize,
                        2 => self.peer_push = *v == 1,
                        4 => {
                            let delta = i64::from(*v) - self.peer_window;
                            self.peer_window = i64::from(*v);
                            for s in self.streams.values_mut() {
                                s.send_window += delta;
                            }
                        }
                        5 => self.peer_max_frame = *v as usize,
                        _ => {}
                    }
                }
                self.out.extend(frame_bytes(4, 1, 0, &[], None));
            }
            (Kind::Settings, _) => {
                self.acks += 1;
                if self.acks == 1 {
                    // The actor's INITIAL_WINDOW_SIZE binds the client from here (RFC 9113 §6.9.2).
                    let delta = self.own_window - DEFAULT_WINDOW;
                    for s in self.streams.values_mut() {
                        s.recv_window += delta;
                    }
                }
            }
            (Kind::Ping, Body::Ping(data)) => {
                if f.has(1) {
                    if self.ping.as_deref() == Some(data.as_slice()) {
                        self.ping = None;
                    }
                } else {
                    self.out.extend(frame_bytes(6, 1, 0, data, None));
                }
            }
            (Kind::GoAway, Body::GoAway { code, .. }) => {
                self.goaway_got = true;
                if *code != 0 {
                    // The client ended the connection with an error: nothing more goes out, and
                    // the actor closes its side, as a server does, so a client that waits for
                    // the close after its GOAWAY is not left waiting.
                    self.goaway_sent = true;
                    return Err(Stop::Ended);
                }
            }
            (Kind::WindowUpdate, Body::WindowUpdate(inc)) => {
                let w = match f.stream {
                    0 => Some(&mut self.send_conn),
                    id => self.streams.get_mut(&id).map(|s| &mut s.send_window),
                };
                if let Some(w) = w {
                    *w += i64::from(*inc);
                    if *w > MAX_WINDOW {
                        return Err(self.fail(
                            3,
                            format!(
                                "a WINDOW_UPDATE on stream {} takes the actor's window past 2^31-1; RFC 9113 §6.9.1: a sender MUST NOT \
                                 allow a flow-control window to exceed 2^31-1 octets",
                                f.stream
                            ),
                        ));
                    }
                }
            }
            (Kind::RstStream, _) => {
                if let Some(s) = self.streams.get_mut(&f.stream) {
                    s.reset = true;
                }
            }
            (Kind::Headers, Body::Headers { block, .. }) => {
                let end = f.has(1);
                self.headers(f.stream, end)?;
                match block {
                    Block::Continues(_) => self.head = Some((f.stream, end)),
                    _ => self.head_done(f.stream, end, block)?,
                }
            }
            (Kind::Continuation, Body::Continuation(block)) => {
                if let Some((id, end)) = self.head {
                    if !matches!(block, Block::Continues(_)) {
                        self.head = None;
                        self.head_done(id, end, block)?;
                    }
                }
            }
            (Kind::Data, Body::Data { .. }) => self.data(&f)?,
            _ => {}
        }
        Ok(())
    }

    /// A HEADERS frame opens a stream (or carries trailers on an open one).
    fn headers(&mut self, id: u32, end: bool) -> Result<(), Stop> {
        if let Some(s) = self.streams.get(&id) {
            if s.remote_done && !s.reset {
                return Err(self.fail(
                    5,
                    format!(
                        "a HEADERS frame on stream {id}, which the client had already ended (or whose identifier it reuses); \
                         RFC 9113 §5.1.1: the identifier of a new stream MUST be numerically greater than all streams the \
                         initiating endpoint has opened. Fix: give each request the next odd stream identifier"
                    ),
                ));
            }
            if !end && !s.reset {
                return Err(self.fail(
                    1,
                    format!(
                        "a second HEADERS frame on stream {id} without END_STREAM; RFC 9113 §8.1: a trailer section is sent \
                         in a HEADERS frame that MUST carry END_STREAM"
                    ),
                ));
            }
            return Ok(());
        }
        if id % 2 == 0 {
            return Err(self.fail(
                1,
                format!(
                    "a request on stream {id}, an even identifier; RFC 9113 §5.1.1: streams initiated by a client MUST use \
                     odd-numbered stream identifiers. Fix: number requests 1, 3, 5 ..."
                ),
            ));
        }
        if id <= self.last_stream {
            return Err(self.fail(
                1,
                format!(
                    "a request on stream {id} after stream {}; RFC 9113 §5.1.1: the identifier of a newly established \
                     stream MUST be numerically greater than all streams that the initiating endpoint has opened. Fix: \
                     never reuse a stream identifier; give each request the next odd one",
                    self.last_stream
                ),
            ));
        }
        self.last_stream = id;
        // Streams the client opened knowing the limit count against it (RFC 9113 §5.1.2).
        if let (Some(max), true) = (self.own_max_streams, self.acks >= 1) {
            let active = self.streams.values().filter(|s| !s.closed() && !s.pushed).count() as u32;
            if active >= max {
                return Err(self.fail(
                    1,
                    format!(
                        "stream {id} opened while {active} streams were active, after the client acknowledged \
                         SETTINGS_MAX_CONCURRENT_STREAMS = {max}; RFC 9113 §5.1.2: an endpoint MUST NOT exceed the limit set \
                         by its peer. Fix: wait for a stream to close before opening another"
                    ),
                ));
            }
        }
        let window = if self.acks >= 1 { self.own_window } else { DEFAULT_WINDOW };
        self.streams.insert(
            id,
            Stream {
                recv_window: window,
                send_window: self.peer_window,
                // Past the last stream of the actor's GOAWAY: not processed, so a client may
                // retry it elsewhere (RFC 9113 §6.8); its frames are passed over.
                reset: self.goaway_last.is_some_and(|last| id > last),
                ..Stream::default()
            },
        );
        Ok(())
    }

    /// A request's (or trailer section's) field block arrived whole.
    fn head_done(&mut self, id: u32, end: bool, block: &Block) -> Result<(), Stop> {
        let fields = match block {
            Block::Fields(f) => f.clone(),
            Block::Undecoded(why) => {
                return Err(self.fail(
                    9,
                    format!(
                        "the field block on stream {id} cannot be decoded: {why}; RFC 7541 §2.3 / RFC 9113 §4.3: the client's \
                         HPACK encoding is wrong"
                    ),
                ))
            }
            Block::Continues(_) => return Ok(()),
        };
        let early = self.srv.faults.early_response;
        let Some(s) = self.streams.get_mut(&id) else { return Ok(()) };
        if s.method.is_empty() {
            let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap_or_default();
            s.method = get(":method");
            s.path = get(":path");
            s.authority = get(":authority");
        }
        if end {
            s.remote_done = true;
        }
        let remote_done = s.remote_done;
        self.open_request = match (remote_done, self.open_request) {
            (true, Some((open, _))) if open == id => None,
            (false, None) => Some((id, Instant::now())),
            (_, other) => other,
        };
        let Some(s) = self.streams.get_mut(&id) else { return Ok(()) };
        let post_early = early && s.method == "POST" && !s.remote_done;
        if s.remote_done || post_early {
            self.request_complete(id, post_early);
        }
        Ok(())
    }

    fn data(&mut self, f: &H2Frame) -> Result<(), Stop> {
        let len = f.length as i64;
        self.recv_conn -= len;
        self.recv_conn_taken += len;
        if self.recv_conn < 0 {
            return Err(self.fail(
                3,
                format!(
                    "DATA on stream {} takes the connection's flow-control window below 0 (by {} octets); RFC 9113 §6.9.1: a \
                     sender MUST NOT send a flow-controlled frame with a length that exceeds the space available in either of \
                     the flow-control windows advertised by the receiver. Fix: count what you send and wait for WINDOW_UPDATE",
                    f.stream, -self.recv_conn
                ),
            ));
        }
        let Some(s) = self.streams.get_mut(&f.stream) else {
            return Err(self.fail(
                1,
                format!(
                    "DATA on stream {}, which the client never opened; RFC 9113 §5.1: a frame other than HEADERS or PRIORITY \
                     on an idle stream MUST be treated as a connection error PROTOCOL_ERROR. Fix: send a request's DATA \
                     on the stream its HEADERS opened",
                    f.stream
                ),
            ));
        };
        if s.reset {
            // Frames after the actor's RST_STREAM are ignored (RFC 9113 §5.1), their window given back.
            self.schedule_update();
            return Ok(());
        }
        if s.remote_done {
            return Err(self.fail(
                5,
                format!(
                    "DATA on stream {} after the client ended it; RFC 9113 §5.1: a half-closed (local) stream cannot be \
                     used for sending frames other than WINDOW_UPDATE, PRIORITY and RST_STREAM",
                    f.stream
                ),
            ));
        }
        s.recv_window -= len;
        s.recv_taken += len;
        if s.recv_window < 0 {
            let over = -s.recv_window;
            return Err(self.fail(
                3,
                format!(
                    "DATA on stream {} goes {over} octets past the stream's flow-control window; RFC 9113 §6.9.1: a sender MUST \
                     NOT send a flow-controlled frame with a length that exceeds the space available in either of the \
                     flow-control windows advertised by the receiver. Fix: count each stream's window (SETTINGS_INITIAL_WINDOW_SIZE, \
                     then WINDOW_UPDATE) and stop at 0",
                    f.stream
                ),
            ));
        }
        if let Body::Data { data, .. } = &f.body {
            if s.body.len() + data.len() <= MAX_BODY {
                s.body.extend_from_slice(data);
            }
        }
        let ended = f.has(1);
        if ended {
            s.remote_done = true;
            let answered = s.response.is_some();
            if !answered {
                self.request_complete(f.stream, false);
            }
        }
        // A request whose body still comes is not stalled: its clock starts again.
        if self.open_request.is_some_and(|(id, _)| id == f.stream) {
            self.open_request = (!ended).then(|| (f.stream, Instant::now()));
        }
        self.schedule_update();
        Ok(())
    }

    /// Opens receive windows half used, after `WINDOW_PAUSE`.
    fn schedule_update(&mut self) {
        let half_stream = self.own_window.max(1) / 2;
        let due = self.recv_conn_taken >= DEFAULT_WINDOW / 2
            || self.streams.values().any(|s| !s.remote_done && s.recv_taken >= half_stream.max(1));
        if due && self.update_at.is_none() {
            self.update_at = Some(Instant::now() + WINDOW_PAUSE);
        }
    }

    fn send_updates(&mut self) {
        self.update_at = None;
        if self.recv_conn_taken > 0 {
            self.out
                .extend(frame_bytes(8, 0, 0, &(self.recv_conn_taken as u32).to_be_bytes(), None));
            self.recv_conn += self.recv_conn_taken;
            self.recv_conn_taken = 0;
        }
        let mut frames = Vec::new();
        for (id, s) in self.streams.iter_mut() {
            if s.recv_taken > 0 && !s.remote_done && !s.reset {
                frames.extend(frame_bytes(8, 0, *id, &(s.recv_taken as u32).to_be_bytes(), None));
                s.recv_window += s.recv_taken;
            }
            s.recv_taken = 0;
        }
        self.out.extend(frames);
    }

    /// A request can be answered: its response is made.
    fn request_complete(&mut self, id: u32, early: bool) {
        let first = self.first_request.is_none();
        if first {
            self.first_request = Some(id);
        }
        let respond = !first || self.options().is_none_or(|o| o.respond);
        let files = self.srv.files.clone();
        let Some(s) = self.streams.get_mut(&id) else { return };
        let path = s.path.split('?').next().unwrap_or_default().to_string();
        let (status, content_type, body) = match (s.method.as_str(), files.get(&path)) {
            ("POST", _) if path == "/echo" && !early => (200, "application/octet-stream", s.body.clone()),
            ("GET" | "HEAD", Some(b)) => (200, content_type(&path), b.clone()),
            ("POST", Some(b)) if early => (200, content_type(&path), b.clone()),
            _ => (404, "text/plain", b"not found\n".to_vec()),
        };
        let body = if s.method == "HEAD" { Vec::new() } else { body };
        s.held = !respond;
        s.response = Some(Response {
            status,
            content_type,
            body,
            ..Response::default()
        });
        if !respond {
            if let Some(r) = s.response.as_mut() {
                r.done = true;
            }
        }
        if first {
            self.inject(At::Request, Some(id));
        }
        if self.srv.faults.push && self.peer_push && !early {
            self.promise(id);
        }
    }

    /// PUSH_PROMISE of /notes.txt on stream `id`, and the pushed stream.
    fn promise(&mut self, id: u32) {
        let Some(body) = self.srv.files.get("/notes.txt").cloned() else {
            return;
        };
        let authority = self.streams.get(&id).map(|s| s.authority.clone()).unwrap_or_default();
        let promised = self.next_push;
        self.next_push += 2;
        let fields = [
            (":method", "GET".to_string()),
            (":scheme", self.scheme.to_string()),
            (":authority", authority),
            (":path", "/notes.txt".to_string()),
        ];
        let mut payload = promised.to_be_bytes().to_vec();
        payload.extend(self.block(&fields));
        self.out.extend(frame_bytes(5, 0x4, id, &payload, None));
        self.streams.insert(
            promised,
            Stream {
                method: "GET".into(),
                path: "/notes.txt".into(),
                remote_done: true,
                send_window: self.peer_window,
                pushed: true,
                response: Some(Response {
                    status: 200,
                    content_type: "text/plain",
                    body,
                    ..Response::default()
                }),
                ..Stream::default()
            },
        );
    }

    /// A field block as the faults ask (literals without indexing by default).
    fn block(&mut self, fields: &[(&str, String)]) -> Vec<u8> {
        let faults = self.srv.faults;
        let mut out = Vec::new();
        // The client's SETTINGS_HEADER_TABLE_SIZE bounds the table (RFC 7541 §4.2); a change is
        // announced at the start of the next block (RFC 9113 §4.3.1: after a reduction the
        // client MUST see one).
        let want = self.peer_table.min(4096);
        if self.blocks_sent == 0 && faults.size_update {
            integer(&mut out, 0x20, 5, 0);
            integer(&mut out, 0x20, 5, want);
            self.table_max = want;
            self.table.clear();
        } else if want != self.table_max {
            integer(&mut out, 0x20, 5, want);
            self.table_max = want;
            self.evict();
        }
        self.blocks_sent += 1;
        for (name, value) in fields {
            let entry = (name.to_string(), value.clone());
            if faults.indexed {
                if let Some(i) = self.table.iter().position(|e| *e == entry) {
                    // An indexed field line from the dynamic table (RFC 7541 §6.1, §2.3.3).
                    integer(&mut out, 0x80, 7, 62 + i);
                    continue;
                }
                if 32 + name.len() + value.len() <= self.table_max {
                    // A literal with incremental indexing, new name (RFC 7541 §6.2.1).
                    out.push(0x40);
                    encode_string(&mut out, name.as_bytes(), faults.huffman);
                    encode_string(&mut out, value.as_bytes(), faults.huffman);
                    self.table.push_front(entry);
                    self.evict();
                    continue;
                }
            }
            out.push(0x00);
            encode_string(&mut out, name.as_bytes(), faults.huffman);
            encode_string(&mut out, value.as_bytes(), faults.huffman);
        }
        out
    }

    /// Drops the oldest entries until the table fits its maximum (RFC 7541 §4.4).
    fn evict(&mut self) {
        let size = |t: &std::collections::VecDeque<(String, String)>| t.iter().map(|(n, v)| 32 + n.len() + v.len()).sum::<usize>();
        while size(&self.table) > self.table_max {
            self.table.pop_back();
        }
    }

    /// A HEADERS frame (and CONTINUATIONs, with the fault) carrying `block`.
    fn headers_frames(&mut self, id: u32, block: Vec<u8>, end_stream: bool) {
        let faults = self.srv.faults;
        let end = if end_stream { 1 } else { 0 };
        let room = self.peer_max_frame - if faults.padding { PAD + 1 } else { 0 };
        let piece = if faults.continuation { 8 } else { room };
        let mut chunks: Vec<&[u8]> = block.chunks(piece.max(1)).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let n = chunks.len();
        for (i, c) in chunks.into_iter().enumerate() {
            let last = if i + 1 == n { 0x4 } else { 0 };
            if i == 0 {
                self.out.extend(padded(1, end | last, id, c, faults.padding));
            } else {
                self.out.extend(frame_bytes(9, last, id, c, None));
            }
        }
    }

    /// Sends what the windows allow: each answered stream in turn gets its HEADERS, then one
    /// DATA frame per round, so the responses of concurrent streams are interleaved.
    fn pump(&mut self) {
        if !self.gate_open() {
            return;
        }
        loop {
            let mut progress = false;
            let ids: Vec<u32> = self.streams.keys().copied().collect();
            for id in ids {
                progress |= self.step_stream(id);
            }
            if !progress {
                break;
            }
        }
        let waiting = self
            .streams
            .values()
            .any(|s| !s.reset && !s.held && s.response.as_ref().is_some_and(|r| r.head_sent && !r.done && r.sent < r.body.len()));
        self.window_stall = match (waiting, self.window_stall) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => Some(Instant::now()),
        };
    }

    /// One step of one stream's response; whether anything went out.
    fn step_stream(&mut self, id: u32) -> bool {
        let faults = self.srv.faults;
        let peer_max = self.peer_max_frame;
        let Some(s) = self.streams.get(&id) else { return false };
        let Some(r) = s.response.as_ref() else { return false };
        if r.done || s.reset || s.held {
            return false;
        }
        if !r.head_sent {
            let (status, ctype, len) = (r.status, r.content_type, r.body.len());
            if faults.early_hints && !s.pushed {
                let b = self.block(&[(":status", "103".into()), ("link", "</style.css>; rel=preload".into())]);
                self.headers_frames(id, b, false);
            }
            let mut fields = vec![
                (":status", status.to_string()),
                ("content-type", ctype.to_string()),
                ("content-length", len.to_string()),
            ];
            if faults.indexed {
                // The same in every response: the second one sends it by index.
                fields.push(("x-served-by", "wirecheck http2 actor".to_string()));
            }
            let b = self.block(&fields);
            let end = len == 0 && !faults.trailers;
            self.headers_frames(id, b, end);
            let Some(r) = self.streams.get_mut(&id).and_then(|s| s.response.as_mut()) else {
                return true;
            };
            r.head_sent = true;
            if end {
                r.done = true;
                self.response_done(id);
            } else if Some(id) == self.first_request {
                self.inject(At::Headers, Some(id));
            }
            return true;
        }
        let overhead = if faults.padding { PAD as i64 + 1 } else { 0 };
        let left = (r.body.len() - r.sent) as i64;
        let room = (peer_max as i64 - overhead)
            .min(self.send_conn - overhead)
            .min(s.send_window - overhead);
        let size = left.min(room).min(if faults.one_byte { 1 } else { i64::MAX });
        if left > 0 && size <= 0 {
            return false;
        }
        let size = size.max(0) as usize;
        let chunk = r.body[r.sent..r.sent + size].to_vec();
        let last = r.sent + size == r.body.len();
        let end = if last && !faults.trailers { 1 } else { 0 };
        self.out.extend(padded(0, end, id, &chunk, faults.padding));
        let used = size as i64 + overhead;
        self.send_conn -= used;
        let Some(s) = self.streams.get_mut(&id) else { return true };
        s.send_window -= used;
        let Some(r) = s.response.as_mut() else { return true };
        r.sent += size;
        if last {
            if faults.trailers {
                let b = self.block(&[("x-checksum", format!("{}", chunk_sum(&self.streams, id)))]);
                self.headers_frames(id, b, true);
            }
            if let Some(r) = self.streams.get_mut(&id).and_then(|s| s.response.as_mut()) {
                r.done = true;
            }
            self.response_done(id);
        }
        true
    }

    /// A response went out whole.
    fn response_done(&mut self, id: u32) {
        if self.srv.faults.early_response && self.streams.get(&id).is_some_and(|s| !s.remote_done) {
            // RFC 9113 §8.1: a complete response before the request is; the client stops sending.
            self.out.extend(frame_bytes(3, 0, id, &0u32.to_be_bytes(), None));
            if let Some(s) = self.streams.get_mut(&id) {
                s.reset = true;
            }
        }
        if Some(id) == self.first_request && !self.first_done {
            self.first_done = true;
            self.inject(At::Response, Some(id));
        }
        let all_done = self
            .streams
            .values()
            .all(|s| s.response.as_ref().is_some_and(|r| r.done) || s.reset);
        if self.srv.faults.goaway && all_done && !self.goaway_sent {
            let mut payload = self.last_stream.to_be_bytes().to_vec();
            payload.extend_from_slice(&0u32.to_be_bytes());
            self.out.extend(frame_bytes(7, 0, 0, &payload, None));
            self.goaway_sent = true;
            self.goaway_last = Some(self.last_stream);
        }
    }
}

/// Whether an injected SETTINGS frame is one a client must acknowledge: no ACK flag, on stream 0,
/// whole parameters, and values a server may send (RFC 9113 §6.5, §6.5.2). A broken one is a
/// connection error the client answers instead, so the actor does not wait for its ACK.
fn valid_settings(frame: &[u8]) -> bool {
    let payload = &frame[9..];
    frame[4] & 1 == 0
        && frame[5..9] == [0, 0, 0, 0]
        && payload.len() % 6 == 0
        && payload.chunks_exact(6).all(|p| {
            let v = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
            match u16::from_be_bytes([p[0], p[1]]) {
                2 => v == 0,
                4 => v <= 0x7fff_ffff,
                5 => (16_384..=16_777_215).contains(&v),
                _ => true,
            }
        })
}

/// The sum of a response body's octets, for the trailer field the `trailers` fault sends.
fn chunk_sum(streams: &BTreeMap<u32, Stream>, id: u32) -> u64 {
    streams
        .get(&id)
        .and_then(|s| s.response.as_ref())
        .map(|r| r.body.iter().map(|b| u64::from(*b)).sum())
        .unwrap_or(0)
}

/// A DATA or HEADERS frame, padded with `PAD` octets when `pad`.
fn padded(kind: u8, flags: u8, stream: u32, payload: &[u8], pad: bool) -> Vec<u8> {
    if !pad {
        return frame_bytes(kind, flags, stream, payload, None);
    }
    let mut p = vec![PAD as u8];
    p.extend_from_slice(payload);
    p.resize(p.len() + PAD, 0);
    frame_bytes(kind, flags | 0x8, stream, &p, None)
}

fn frame_where(f: &H2Frame) -> String {
    match f.stream {
        0 => "the connection".into(),
        s => format!("stream {s}"),
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "css" => "text/css",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_frames_carry_their_pad_length() {
        let f = padded(0, 1, 1, b"ab", true);
        assert_eq!(&f[..9], &[0, 0, 11, 0, 0x9, 0, 0, 0, 1]);
        assert_eq!(f[9], PAD as u8);
        assert_eq!(&f[10..12], b"ab");
    }

    #[test]
    fn only_settings_a_client_must_acknowledge_are_waited_for() {
        let settings = |flags: u8, stream: u32, payload: &[u8]| frame_bytes(4, flags, stream, payload, None);
        assert!(valid_settings(&settings(0, 0, &[])));
        assert!(valid_settings(&settings(0, 0, &[0, 3, 0, 0, 0, 1, 0xf0, 0, 0, 0, 0, 7])));
        assert!(!valid_settings(&settings(1, 0, &[])), "an ACK");
        assert!(!valid_settings(&settings(0, 1, &[])), "on a stream");
        assert!(!valid_settings(&settings(0, 0, &[0, 3, 0, 0])), "a cut parameter");
        assert!(!valid_settings(&settings(0, 0, &[0, 2, 0, 0, 0, 1])), "ENABLE_PUSH=1 from a server");
        assert!(!valid_settings(&settings(0, 0, &[0, 4, 0x80, 0, 0, 0])), "a window of 2^31");
        assert!(!valid_settings(&settings(0, 0, &[0, 5, 0, 0, 0x3f, 0xff])), "MAX_FRAME_SIZE 16383");
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("/image.bin"), "application/octet-stream");
    }
}
