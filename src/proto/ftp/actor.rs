//! The FTP server actor: an RFC 959 server the harness plays for a client under test (with RFC
//! 2428 EPSV/EPRT and RFC 3659 SIZE/MDTM/REST), serving a folder read when the suite loads. It
//! answers whatever legal sequence a client sends, in active mode (PORT/EPRT: the actor connects
//! to the client) and passive mode (PASV/EPSV: the client connects to the actor), and keeps what
//! the client uploads in memory for the case, handing each finished upload to the runner.
//!
//! ```yaml
//! actors:
//!   - name: srv
//!     ftp:
//!       root: ../fixtures/ftp     # served read-only, subfolders included
//! ```
//! Users are `anonymous` (any password) and `bob` with password `hungry`. Choices where the RFCs
//! leave room:
//! - TYPE A is the default (RFC 959 §3.1.1.1): RETR turns a bare LF into CRLF, STOR turns CRLF
//!   into LF; TYPE I sends the bytes as they are. SIZE counts the file's bytes, REST too;
//! - PORT and EPRT name the client's own address, else 501 (the bounce attack, RFC 2577 §3);
//! - an active data connection is opened before the 150, so a client that is not listening gets
//!   a 425 that says where the actor tried; a passive one is waited for after the 150;
//! - the served files are read-only: an upload takes a plain name in the current folder, and only
//!   uploads may be deleted;
//! - a command sent before the greeting gets 421 and the connection closes (RFC 959 §5.4: the
//!   client waits for 220).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{sleep, timeout, Instant};

use super::codec::{parse_eprt_arg, parse_port_arg, reply_bytes, CommandCodec, FtpMessage};
use crate::proto::common::actor::{ActorHandle, ActorKind, ActorLog, ActorSpec, Bound};
use crate::proto::{Codec, Direction, Frame, Transport};
use crate::syntax::{LoadCx, Node};

/// A control connection with no command for this long is closed with 421 (RFC 959 §5.4 lists
/// 421 for a server closing the connection).
const IDLE: Duration = Duration::from_secs(10);
/// How long a data connection may take to open, either way.
const DATA_OPEN: Duration = Duration::from_secs(5);
/// A data connection that moves no byte for this long is given up (426).
const DATA_IDLE: Duration = Duration::from_secs(10);
/// A write to a client that does not read fails after this long.
const WRITE: Duration = Duration::from_secs(10);
/// Longest command line: RFC 959 sets none, and a line past this is a flood, not a command.
const MAX_COMMAND: usize = 4096;
/// Bytes of commands kept unread while a transfer runs (only ABOR is looked for meanwhile).
const MAX_PENDING: usize = 64 * 1024;
/// Largest upload kept, and the most all uploads of a case may hold together.
const MAX_UPLOAD: usize = 16 << 20;
const MAX_UPLOADS: usize = 32 << 20;
/// Most bytes, entries and folder depth read from `root` when the suite loads.
const MAX_ROOT: usize = 8 << 20;
const MAX_ENTRIES: usize = 10_000;
const MAX_DEPTH: usize = 16;
/// Control connections served at once; one more is told 421 and closed.
const MAX_SESSIONS: usize = 64;
/// Fault timings: a slow greeting, pieces of a split reply, pieces of slow data.
const SLOW_GREETING: Duration = Duration::from_millis(600);
const SPLIT_PIECE: usize = 3;
const SPLIT_PAUSE: Duration = Duration::from_millis(20);
const SLOW_CHUNK: usize = 512;
const SLOW_PAUSE: Duration = Duration::from_millis(5);
/// The modification time every file has (MDTM, LIST): fixed, so transcripts do not vary.
const MTIME: &str = "20240101120000";
const LIST_TIME: &str = "Jan  1  2024";

/// The `ftp:` actor vocabulary.
pub static ACTOR: ActorKind = ActorKind {
    key: "ftp",
    faults: &[
        (
            "multiline",
            "sends the greeting, 230, 150 and 226 as multi-line replies, legal by RFC 959 §4.2",
        ),
        ("split", "writes every reply in 3-byte pieces 20 ms apart: TCP is a byte stream"),
        ("slow-greeting", "sends the 220 greeting after 600 ms"),
        (
            "slow-data",
            "writes data connections in 512-byte chunks 5 ms apart, so one read gets part of a file",
        ),
        (
            "user-230",
            "answers USER with 230 at once, no password needed, legal by RFC 959 §5.4; a later PASS gets 503",
        ),
        ("refuse-login", "answers every PASS with 530"),
        (
            "refuse-data",
            "answers RETR, STOR, APPE, LIST and NLST with 425 and opens no data connection",
        ),
        ("disk-full", "answers STOR and APPE with 452, insufficient storage space"),
        (
            "no-extended",
            "answers EPSV and EPRT with 502, like a server older than RFC 2428: clients fall back to PASV and PORT",
        ),
        (
            "pasv-bare",
            "writes the 227 reply without parentheses; RFC 1123 §4.1.2.6: the client scans for the numbers",
        ),
        ("close-early", "closes the control connection with 421 right after the 230"),
        (
            "fail-after-data",
            "ends every transfer with 451 (local error in processing) instead of 226, after the data connection closed",
        ),
    ],
    parse,
    options: None,
};

/// The folder an actor serves, read when the suite loaded: files by absolute path (`/pub/a.txt`)
/// and every folder (`/` included).
struct Tree {
    files: BTreeMap<String, Arc<Vec<u8>>>,
    dirs: BTreeSet<String>,
}

/// A declared FTP actor.
#[derive(Clone)]
struct FtpActor {
    tree: Arc<Tree>,
}

impl std::fmt::Debug for FtpActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpActor")
            .field("files", &self.tree.files.len())
            .field("dirs", &self.tree.dirs.len())
            .finish()
    }
}

fn parse(node: &Node, cx: &mut LoadCx) -> Option<Arc<dyn ActorSpec>> {
    let f = cx.fields(node, &["root"], "an FTP server actor")?;
    let Some(n) = f.get("root") else {
        cx.err_help(
            node,
            "an FTP actor needs the folder it serves",
            "e.g. ftp: { root: ../fixtures/ftp }",
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
    if !dir.is_dir() {
        cx.err_help(
            n,
            format!("no folder {}", dir.display()),
            "paths are relative to the suite file's folder",
        );
        return None;
    }
    let mut tree = Tree {
        files: BTreeMap::new(),
        dirs: BTreeSet::from(["/".to_string()]),
    };
    let mut total = 0;
    if let Err(why) = read_tree(&dir, "", 0, &mut tree, &mut total) {
        cx.err(n, format!("{}: {why}", dir.display()));
        return None;
    }
    Some(Arc::new(FtpActor { tree: Arc::new(tree) }))
}

/// Reads `dir` into `tree` under the served path `at` (`""` for the root).
fn read_tree(dir: &Path, at: &str, depth: usize, tree: &mut Tree, total: &mut usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("folders nest deeper than {MAX_DEPTH}"));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            return Err(format!("{}: a name that is not UTF-8", e.path().display()));
        };
        if name.chars().any(char::is_control) {
            return Err(format!("{}: a name with a control character", e.path().display()));
        }
        let path = format!("{at}/{name}");
        if tree.files.len() + tree.dirs.len() >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} files and folders"));
        }
        let meta = std::fs::metadata(e.path()).map_err(|err| format!("{}: {err}", e.path().display()))?;
        if meta.is_dir() {
            tree.dirs.insert(path.clone());
            read_tree(&e.path(), &path, depth + 1, tree, total)?;
        } else if meta.is_file() {
            *total += meta.len() as usize;
            if *total > MAX_ROOT {
                return Err(format!(
                    "the files add up to more than {MAX_ROOT} bytes, the most an FTP actor serves"
                ));
            }
            let bytes = std::fs::read(e.path()).map_err(|err| format!("{}: {err}", e.path().display()))?;
            tree.files.insert(path, Arc::new(bytes));
        }
    }
    Ok(())
}

/// The faults a case switched on.
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    multiline: bool,
    split: bool,
    slow_greeting: bool,
    slow_data: bool,
    user_230: bool,
    refuse_login: bool,
    refuse_data: bool,
    disk_full: bool,
    no_extended: bool,
    pasv_bare: bool,
    close_early: bool,
    fail_after_data: bool,
}

impl Faults {
    fn of(names: &[String]) -> Faults {
        let on = |n: &str| names.iter().any(|f| f == n);
        Faults {
            multiline: on("multiline"),
            split: on("split"),
            slow_greeting: on("slow-greeting"),
            slow_data: on("slow-data"),
            user_230: on("user-230"),
            refuse_login: on("refuse-login"),
            refuse_data: on("refuse-data"),
            disk_full: on("disk-full"),
            no_extended: on("no-extended"),
            pasv_bare: on("pasv-bare"),
            close_early: on("close-early"),
            fail_after_data: on("fail-after-data"),
        }
    }
}

/// What every session of one started actor shares: the served folder, the case's uploads (by
/// absolute path) and where traffic is recorded.
struct Server {
    tree: Arc<Tree>,
    faults: Faults,
    uploads: Mutex<BTreeMap<String, Arc<Vec<u8>>>>,
    log: Arc<dyn ActorLog>,
}

impl Server {
    fn uploads(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Vec<u8>>>> {
        self.uploads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A file's bytes, an upload first (an upload never shadows a served file: STOR refuses it).
    fn file(&self, path: &str) -> Option<Arc<Vec<u8>>> {
        self.uploads().get(path).cloned().or_else(|| self.tree.files.get(path).cloned())
    }

    fn is_dir(&self, path: &str) -> bool {
        self.tree.dirs.contains(path)
    }

    /// The entries of folder `dir`, by name: whether each is a folder, and its size.
    fn entries(&self, dir: &str) -> Vec<(String, bool, usize)> {
        let uploads = self.uploads();
        let files = self.tree.files.iter().chain(uploads.iter());
        let mut out: Vec<(String, bool, usize)> = files
            .filter(|(p, _)| parent(p) == dir)
            .map(|(p, b)| (name_of(p).to_string(), false, b.len()))
            .collect();
        out.extend(
            self.tree
                .dirs
                .iter()
                .filter(|d| d.as_str() != "/" && parent(d) == dir)
                .map(|d| (name_of(d).to_string(), true, 4096)),
        );
        out.sort();
        out
    }
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `arg` taken from folder `cwd`, with `.` and `..` applied (`..` at the root stays there, as
/// in a chroot).
fn resolve(cwd: &str, arg: &str) -> String {
    let mut parts: Vec<&str> = if arg.starts_with('/') {
        Vec::new()
    } else {
        cwd.split('/').filter(|s| !s.is_empty()).collect()
    };
    for p in arg.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A bare LF becomes CRLF (NVT-ASCII, RFC 959 §3.1.1.1); a CRLF stays as it is.
fn to_crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 16);
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

/// CRLF becomes LF (an ASCII upload stored the Unix way).
fn from_crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for (i, &c) in b.iter().enumerate() {
        if c == b'\r' && b.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(c);
    }
    out
}

/// Client text quoted in a reply: control characters would break the reply's framing.
fn quoted(s: &str) -> String {
    let mut out: String = s.chars().take(200).map(|c| if c.is_control() { '?' } else { c }).collect();
    if s.chars().count() > 200 {
        out.push_str("...");
    }
    out
}

/// A `ls -l` line, with the fixed time every file has.
fn long_line(name: &str, dir: bool, size: usize) -> String {
    let mode = if dir { "drwxr-xr-x" } else { "-rw-r--r--" };
    format!("{mode} 1 ftp ftp {size:>10} {LIST_TIME} {name}")
}

impl ActorSpec for FtpActor {
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }

    fn well_known_port(&self) -> u16 {
        21
    }

    fn start(&self, sockets: Bound, faults: &[String], log: Arc<dyn ActorLog>) -> ActorHandle {
        let Some(listener) = sockets.tcp else {
            return ActorHandle::default();
        };
        let tls = sockets.tls;
        let srv = Arc::new(Server {
            tree: self.tree.clone(),
            faults: Faults::of(faults),
            uploads: Mutex::new(BTreeMap::new()),
            log,
        });
        // Counted so the case's end waits for a session to log its last reply (the 221 a
        // client reads before the actor's write has returned).
        let (open_tx, open_rx) = tokio::sync::watch::channel(0usize);
        let task = tokio::spawn(async move {
            // Dropping the set (when the handle aborts this task) aborts every session.
            let mut sessions = tokio::task::JoinSet::new();
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(a) => a,
                    Err(_) => {
                        // Out of descriptors, or a connection reset before it was accepted:
                        // neither ends the actor.
                        sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                while sessions.try_join_next().is_some() {}
                let Ok(local) = stream.local_addr() else { continue };
                let (srv, tls) = (srv.clone(), tls.clone());
                let full = sessions.len() >= MAX_SESSIONS;
                open_tx.send_modify(|n| *n += 1);
                let open_tx = open_tx.clone();
                sessions.spawn(async move {
                    let _open = Open(open_tx);
                    let conv = srv.log.open(Transport::Tcp, local, peer);
                    // Implicit FTPS under --tls: the control connection only; data connections
                    // stay clear, as RFC 4217 §9 has them until a PROT P.
                    let Some(stream) = crate::proto::common::actor::secure(stream, tls, conv, srv.log.as_ref()).await else {
                        srv.log.closed_by_actor(conv);
                        return;
                    };
                    let (rd, wr) = tokio::io::split(stream);
                    let mut s = Session::new(srv, conv, rd, wr, local, peer);
                    let peer_closed = match full {
                        true => {
                            let _ = s.reply(421, "Too many connections; try again later").await;
                            false
                        }
                        false => s.run().await,
                    };
                    let _ = timeout(WRITE, s.wr.shutdown()).await;
                    match peer_closed {
                        true => s.srv.log.closed(conv),
                        false => s.srv.log.closed_by_actor(conv),
                    }
                });
            }
        });
        ActorHandle::counting(vec![task], open_rx)
    }
}

/// One open session in the actor's count, until its task ends.
struct Open(tokio::sync::watch::Sender<usize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Where the next transfer's data connection comes from.
enum DataSetup {
    None,
    /// PORT or EPRT: the actor connects to `addr`; `said` is the command as the client wrote it.
    Active {
        addr: SocketAddr,
        said: String,
    },
    /// PASV or EPSV: the client connects here.
    Passive(TcpListener),
}

/// What the session does after a command.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Go,
    Quit,
}

/// What the control connection brought next.
enum Next {
    Command(String, Option<String>),
    TooLong,
    Idle,
    Closed,
}

/// What a transfer moves once its data connection is open.
enum Work {
    Send(Vec<u8>),
    Receive,
}

/// A data connection opened before the 150 (active) or to be accepted after it (passive).
enum Opening {
    Connected(TcpStream),
    Accept(TcpListener),
}

/// Records the data connection's close however its transfer ends, finished or aborted.
struct DataConv {
    log: Arc<dyn ActorLog>,
    conv: usize,
}

impl Drop for DataConv {
    fn drop(&mut self) {
        self.log.closed(self.conv);
    }
}

/// One control connection.
struct Session {
    srv: Arc<Server>,
    conv: usize,
    rd: tokio::io::ReadHalf<crate::tls::Stream>,
    wr: tokio::io::WriteHalf<crate::tls::Stream>,
    local: SocketAddr,
    peer: SocketAddr,
    inbuf: Vec<u8>,
    /// The rest of an overlong line is being dropped.
    skipping: bool,
    user: Option<String>,
    logged_in: bool,
    cwd: String,
    ascii: bool,
    data: DataSetup,
    rest: usize,
    rnfr: bool,
    epsv_all: bool,
    /// The client closed the control connection (rather than the actor ending the session).
    peer_gone: bool,
}

impl Session {
    fn new(
        srv: Arc<Server>,
        conv: usize,
        rd: tokio::io::ReadHalf<crate::tls::Stream>,
        wr: tokio::io::WriteHalf<crate::tls::Stream>,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Session {
        Session {
            srv,
            conv,
            rd,
            wr,
            local,
            peer,
            inbuf: Vec::new(),
            skipping: false,
            user: None,
            logged_in: false,
            cwd: "/".into(),
            ascii: true,
            data: DataSetup::None,
            rest: 0,
            rnfr: false,
            epsv_all: false,
            peer_gone: false,
        }
    }

    /// Serves the session; true when it ended because the client closed the connection.
    async fn run(&mut self) -> bool {
        if self.greet().await == Flow::Quit {
            return self.peer_gone;
        }
        loop {
            let flow = match self.next_command().await {
                Next::Command(verb, arg) => self.command(&verb, arg.as_deref()).await,
                Next::TooLong => {
                    self.reply(500, &format!("Line too long: a command ends in CRLF within {MAX_COMMAND} bytes"))
                        .await
                }
                Next::Idle => {
                    let _ = self
                        .reply(421, &format!("No command for {} s; closing the control connection", IDLE.as_secs()))
                        .await;
                    Flow::Quit
                }
                Next::Closed => {
                    self.peer_gone = true;
                    Flow::Quit
                }
            };
            if flow == Flow::Quit {
                return self.peer_gone;
            }
        }
    }

    async fn greet(&mut self) -> Flow {
        if self.srv.faults.slow_greeting {
            tokio::select! {
                _ = sleep(SLOW_GREETING) => {}
                got = self.fill() => {
                    if !got {
                        self.peer_gone = true;
                        return Flow::Quit;
                    }
                    let _ = self
                        .reply(421, "Closing: command before the greeting (RFC 959 §5.4: wait for 220)")
                        .await;
                    return Flow::Quit;
                }
            }
        }
        self.banner(
            220,
            "wirecheck FTP actor ready",
            &["Welcome to the wirecheck FTP actor.", "Users: anonymous, bob.", "Ready."],
        )
        .await
    }

    /// One read from the control connection into the buffer; false at its end. Cancel-safe: bytes
    /// are kept only once a read has returned them.
    async fn fill(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        match self.rd.read(&mut buf).await {
            Ok(n) if n > 0 => {
                self.srv.log.data(self.conv, Direction::ClientToServer, &buf[..n]);
                self.inbuf.extend_from_slice(&buf[..n]);
                true
            }
            _ => false,
        }
    }

    async fn next_command(&mut self) -> Next {
        loop {
            if let Some(n) = self.take_line() {
                return n;
            }
            match timeout(IDLE, self.fill()).await {
                Err(_) => return Next::Idle,
                Ok(false) => return Next::Closed,
                Ok(true) => {}
            }
        }
    }

    /// The next complete line of the buffer, parsed by the protocol's own command codec.
    fn take_line(&mut self) -> Option<Next> {
        if self.skipping {
            match self.inbuf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.inbuf.drain(..=i);
                    self.skipping = false;
                }
                None => {
                    self.inbuf.clear();
                    return None;
                }
            }
        }
        match self.inbuf.iter().position(|&b| b == b'\n') {
            Some(i) if i > MAX_COMMAND => {
                self.inbuf.drain(..=i);
                Some(Next::TooLong)
            }
            Some(i) => {
                let line: Vec<u8> = self.inbuf.drain(..=i).collect();
                Some(match command_of(&line) {
                    Some((verb, arg)) => Next::Command(verb, arg),
                    None => Next::Command(String::new(), None),
                })
            }
            None if self.inbuf.len() > MAX_COMMAND => {
                self.inbuf.clear();
                self.skipping = true;
                Some(Next::TooLong)
            }
            None => None,
        }
    }

    /// Writes `bytes` to the client (in pieces under `split`) and records them.
    async fn send(&mut self, bytes: &[u8]) -> Flow {
        let pieces: Vec<&[u8]> = if self.srv.faults.split {
            bytes.chunks(SPLIT_PIECE).collect()
        } else {
            vec![bytes]
        };
        let n = pieces.len();
        for (i, p) in pieces.into_iter().enumerate() {
            match timeout(WRITE, self.wr.write_all(p)).await {
                Ok(Ok(())) => self.srv.log.data(self.conv, Direction::ServerToClient, p),
                _ => return Flow::Quit,
            }
            // Under TLS the last records of a write wait for a flush (a piece must leave now).
            if !matches!(timeout(WRITE, self.wr.flush()).await, Ok(Ok(()))) {
                return Flow::Quit;
            }
            if i + 1 < n {
                sleep(SPLIT_PAUSE).await;
            }
        }
        Flow::Go
    }

    async fn reply(&mut self, code: u16, text: &str) -> Flow {
        self.send(&reply_bytes(code, &[text])).await
    }

    async fn reply_lines(&mut self, code: u16, lines: &[&str]) -> Flow {
        self.send(&reply_bytes(code, lines)).await
    }

    /// A reply that the `multiline` fault sends as `lines` instead of one line.
    async fn banner(&mut self, code: u16, one: &str, lines: &[&str]) -> Flow {
        if self.srv.faults.multiline {
            self.reply_lines(code, lines).await
        } else {
            self.reply(code, one).await
        }
    }

    async fn logged_in(&mut self, user: &str) -> Flow {
        self.logged_in = true;
        self.user = Some(user.to_string());
        let text = format!("User {} logged in", quoted(user));
        if self
            .banner(230, &text, &["Welcome.", "Files are read-only; uploads are kept.", &text])
            .await
            == Flow::Quit
        {
            return Flow::Quit;
        }
        if self.srv.faults.close_early {
            let _ = self.reply(421, "Service not available, closing the control connection").await;
            return Flow::Quit;
        }
        Flow::Go
    }

    async fn command(&mut self, verb: &str, arg: Option<&str>) -> Flow {
        const BEFORE_LOGIN: &[&str] = &["USER", "PASS", "QUIT", "FEAT", "SYST", "HELP", "NOOP", "OPTS", "AUTH"];
        const NOT_IMPLEMENTED: &[&str] = &[
            "AUTH", "ALLO", "SITE", "SMNT", "REIN", "STOU", "MLSD", "MLST", "LANG", "CLNT", "PBSZ", "PROT", "CCC",
        ];
        let arg_text = arg.unwrap_or("").trim_end_matches(' ');
        if verb != "RNTO" && verb != "RNFR" {
            self.rnfr = false;
        }
        if !KNOWN.contains(&verb) && !NOT_IMPLEMENTED.contains(&verb) {
            let shown = if verb.is_empty() {
                "(an empty line)".to_string()
            } else {
                quoted(verb)
            };
            return self.reply(500, &format!("Unknown command {shown}")).await;
        }
        if !self.logged_in && !BEFORE_LOGIN.contains(&verb) {
            return self.reply(530, "Please log in with USER and PASS first").await;
        }
        if NOT_IMPLEMENTED.contains(&verb) {
            if verb == "ALLO" {
                return self.reply(202, "No storage allocation needed").await;
            }
            return self.reply(502, &format!("{verb} not implemented")).await;
        }
        match verb {
            "USER" => self.user_cmd(arg_text).await,
            "PASS" => self.pass(arg_text).await,
            "ACCT" => self.reply(202, "No account needed").await,
            "SYST" => self.reply(215, "UNIX Type: L8").await,
            "FEAT" => {
                let mut lines = vec!["Features:"];
                if !self.srv.faults.no_extended {
                    lines.extend(["EPRT", "EPSV"]);
                }
                lines.extend(["MDTM", "PASV", "REST STREAM", "SIZE", "UTF8", "End"]);
                self.reply_lines(211, &lines).await
            }
            "OPTS" => {
                if arg_text.eq_ignore_ascii_case("UTF8 ON") || arg_text.eq_ignore_ascii_case("UTF8") {
                    self.reply(200, "Always in UTF8 mode").await
                } else {
                    self.reply(501, &format!("Option not understood: {}", quoted(arg_text))).await
                }
            }
            "NOOP" => self.reply(200, "NOOP ok").await,
            "HELP" => {
                self.reply_lines(
                    214,
                    &[
                        "The following commands are recognized:",
                        "ABOR ACCT APPE CDUP CWD DELE EPRT EPSV FEAT HELP LIST MDTM MKD MODE NLST NOOP OPTS",
                        "PASS PASV PORT PWD QUIT REST RETR RMD RNFR RNTO SIZE STAT STOR STRU SYST TYPE USER",
                        "Help OK",
                    ],
                )
                .await
            }
            "QUIT" => {
                let _ = self.reply(221, "Goodbye").await;
                Flow::Quit
            }
            "PWD" | "XPWD" => {
                let text = format!("\"{}\" is the current directory", self.cwd.replace('"', "\"\""));
                self.reply(257, &text).await
            }
            "CWD" | "XCWD" if arg_text.is_empty() => self.reply(501, "CWD needs a folder").await,
            "CWD" | "XCWD" => {
                let to = resolve(&self.cwd, arg_text);
                if self.srv.is_dir(&to) {
                    self.cwd = to;
                    self.reply(250, "Directory successfully changed").await
                } else {
                    self.reply(550, &format!("No such directory: {}", quoted(arg_text))).await
                }
            }
            "CDUP" | "XCUP" => {
                self.cwd = resolve(&self.cwd, "..");
                self.reply(250, "Directory successfully changed").await
            }
            "TYPE" => self.type_cmd(arg_text).await,
            "MODE" => match arg_text.to_ascii_uppercase().as_str() {
                "S" => self.reply(200, "Mode set to S").await,
                "" => self.reply(501, "MODE needs an argument").await,
                _ => self.reply(504, "Only MODE S (stream) is supported").await,
            },
            "STRU" => match arg_text.to_ascii_uppercase().as_str() {
                "F" => self.reply(200, "Structure set to F").await,
                "" => self.reply(501, "STRU needs an argument").await,
                _ => self.reply(504, "Only STRU F (file) is supported").await,
            },
            "PORT" => self.port(arg_text).await,
            "EPRT" => self.eprt(arg_text).await,
            "PASV" => self.pasv(false, arg_text).await,
            "EPSV" => self.pasv(true, arg_text).await,
            "RETR" => self.retr(arg_text).await,
            "STOR" => self.stor(arg_text, false).await,
            "APPE" => self.stor(arg_text, true).await,
            "LIST" => self.list(arg_text, false).await,
            "NLST" => self.list(arg_text, true).await,
            "SIZE" => match self.srv.file(&resolve(&self.cwd, arg_text)) {
                Some(b) => self.reply(213, &b.len().to_string()).await,
                None => self.reply(550, &format!("No such file: {}", quoted(arg_text))).await,
            },
            "MDTM" => match self.srv.file(&resolve(&self.cwd, arg_text)) {
                Some(_) => self.reply(213, MTIME).await,
                None => self.reply(550, &format!("No such file: {}", quoted(arg_text))).await,
            },
            "REST" => match arg_text.parse::<usize>() {
                Ok(n) if arg_text.bytes().all(|b| b.is_ascii_digit()) => {
                    self.rest = n;
                    self.reply(350, &format!("Restarting at {n}. Send RETR to resume")).await
                }
                _ => self.reply(501, "REST needs a byte count").await,
            },
            "STAT" => self.stat(arg_text).await,
            "ABOR" => {
                // No transfer runs here (one that does watches for ABOR itself): drop a set-up one.
                self.data = DataSetup::None;
                self.reply(226, "No transfer to abort").await
            }
            "DELE" => {
                let path = resolve(&self.cwd, arg_text);
                let removed = self.srv.uploads().remove(&path).is_some();
                if removed {
                    self.reply(250, "File deleted").await
                } else if self.srv.tree.files.contains_key(&path) {
                    self.reply(550, "Permission denied: the served files are read-only").await
                } else {
                    self.reply(550, &format!("No such file: {}", quoted(arg_text))).await
                }
            }
            "MKD" | "XMKD" | "RMD" | "XRMD" => self.reply(550, "Permission denied: the served folder is read-only").await,
            "RNFR" => {
                let path = resolve(&self.cwd, arg_text);
                if self.srv.file(&path).is_some() || self.srv.is_dir(&path) {
                    self.rnfr = true;
                    self.reply(350, "Ready for RNTO").await
                } else {
                    self.reply(550, &format!("No such file: {}", quoted(arg_text))).await
                }
            }
            "RNTO" => {
                if !std::mem::take(&mut self.rnfr) {
                    self.reply(503, "RNFR first").await
                } else {
                    self.reply(550, "Permission denied: the served folder is read-only").await
                }
            }
            _ => self.reply(502, &format!("{verb} not implemented")).await,
        }
    }

    async fn user_cmd(&mut self, name: &str) -> Flow {
        if name.is_empty() {
            return self.reply(501, "USER needs a user name").await;
        }
        if self.srv.faults.user_230 {
            return self.logged_in(name).await;
        }
        self.logged_in = false;
        self.user = Some(name.to_string());
        if name.eq_ignore_ascii_case("anonymous") {
            self.reply(331, "Anonymous login ok, send any password").await
        } else {
            self.reply(331, &format!("Password required for {}", quoted(name))).await
        }
    }

    async fn pass(&mut self, password: &str) -> Flow {
        if self.logged_in {
            let why = if self.srv.faults.user_230 {
                "Already logged in: USER got 230, so no PASS is needed (RFC 959 §5.4)"
            } else {
                "Already logged in"
            };
            return self.reply(503, why).await;
        }
        let Some(user) = self.user.take() else {
            return self.reply(503, "Login with USER first").await;
        };
        let ok = user.eq_ignore_ascii_case("anonymous") || (user == "bob" && password == "hungry");
        if self.srv.faults.refuse_login || !ok {
            return self
                .reply(530, "Login incorrect (users: anonymous with any password, bob with hungry)")
                .await;
        }
        self.logged_in(&user).await
    }

    async fn type_cmd(&mut self, arg: &str) -> Flow {
        let words: Vec<String> = arg.split_whitespace().map(str::to_ascii_uppercase).collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words[..] {
            ["A"] | ["A", "N"] => {
                self.ascii = true;
                self.reply(200, "Switching to ASCII mode").await
            }
            ["I"] | ["L", "8"] => {
                self.ascii = false;
                self.reply(200, "Switching to Binary mode").await
            }
            [] => self.reply(501, "TYPE needs an argument: A or I").await,
            _ => self.reply(504, &format!("TYPE {} not supported: use A or I", quoted(arg))).await,
        }
    }

    /// RFC 2577 §3: a data connection goes only to the client itself.
    fn bounce(&self, addr: SocketAddr, what: &str) -> Option<String> {
        let (want, got) = (self.peer.ip().to_canonical(), addr.ip().to_canonical());
        (want != got).then(|| {
            format!("{what} names {got}, but the client is {want}: data connections go only to the client's own address (RFC 2577 §3)")
        })
    }

    async fn port(&mut self, arg: &str) -> Flow {
        self.data = DataSetup::None;
        if self.epsv_all {
            return self.reply(503, "Only EPSV after EPSV ALL (RFC 2428 §4)").await;
        }
        let Some(addr) = parse_port_arg(arg).filter(|a| a.port() != 0) else {
            return self
                .reply(
                    501,
                    &format!(
                        "PORT needs h1,h2,h3,h4,p1,p2 (six numbers 0-255; port = p1*256+p2), not {}",
                        quoted(arg)
                    ),
                )
                .await;
        };
        let addr = SocketAddr::V4(addr);
        if let Some(why) = self.bounce(addr, "PORT") {
            return self.reply(501, &why).await;
        }
        self.data = DataSetup::Active {
            addr,
            said: format!("PORT {}", quoted(arg)),
        };
        self.reply(200, &format!("PORT command successful: data connections go to {addr}"))
            .await
    }

    async fn eprt(&mut self, arg: &str) -> Flow {
        self.data = DataSetup::None;
        if self.srv.faults.no_extended {
            return self.reply(502, "EPRT not implemented").await;
        }
        if self.epsv_all {
            return self.reply(503, "Only EPSV after EPSV ALL (RFC 2428 §4)").await;
        }
        let Some(addr) = parse_eprt_arg(arg) else {
            let family = arg.chars().nth(1);
            if family.is_some_and(|c| c.is_ascii_digit() && c != '1' && c != '2') {
                return self.reply(522, "Network protocol not supported, use (1,2)").await;
            }
            return self
                .reply(501, &format!("EPRT needs |1|ip|port| or |2|ip6|port|, not {}", quoted(arg)))
                .await;
        };
        if let Some(why) = self.bounce(addr, "EPRT") {
            return self.reply(501, &why).await;
        }
        self.data = DataSetup::Active {
            addr,
            said: format!("EPRT {}", quoted(arg)),
        };
        self.reply(200, &format!("EPRT command successful: data connections go to {addr}"))
            .await
    }

    async fn pasv(&mut self, extended: bool, arg: &str) -> Flow {
        self.data = DataSetup::None;
        if extended && self.srv.faults.no_extended {
            return self.reply(502, "EPSV not implemented").await;
        }
        let ip = self.local.ip();
        if extended {
            match arg.to_ascii_uppercase().as_str() {
                "ALL" => {
                    self.epsv_all = true;
                    return self.reply(200, "EPSV ALL ok").await;
                }
                "" => {}
                "1" if ip.is_ipv4() => {}
                "2" if ip.is_ipv6() => {}
                "1" | "2" => {
                    let family = if ip.is_ipv4() { "(1)" } else { "(2)" };
                    return self.reply(522, &format!("Network protocol not supported, use {family}")).await;
                }
                _ => return self.reply(501, "EPSV takes nothing, 1, 2 or ALL").await,
            }
        } else if self.epsv_all {
            return self.reply(503, "Only EPSV after EPSV ALL (RFC 2428 §4)").await;
        }
        self.listen(extended, ip).await
    }

    async fn listen(&mut self, extended: bool, ip: IpAddr) -> Flow {
        let listener = match TcpListener::bind(SocketAddr::new(ip, 0)).await {
            Ok(l) => l,
            Err(e) => return self.reply(425, &format!("Cannot open a passive data port: {e}")).await,
        };
        let port = match listener.local_addr() {
            Ok(a) => a.port(),
            Err(e) => return self.reply(425, &format!("Cannot open a passive data port: {e}")).await,
        };
        self.data = DataSetup::Passive(listener);
        if extended {
            return self.reply(229, &format!("Entering Extended Passive Mode (|||{port}|)")).await;
        }
        let IpAddr::V4(v4) = ip else {
            return self.reply(425, "PASV is IPv4 only; use EPSV").await;
        };
        let [a, b, c, d] = v4.octets();
        let numbers = format!("{a},{b},{c},{d},{},{}", port >> 8, port & 0xff);
        if self.srv.faults.pasv_bare {
            self.reply(227, &format!("Entering Passive Mode {numbers}")).await
        } else {
            self.reply(227, &format!("Entering Passive Mode ({numbers}).")).await
        }
    }

    async fn stat(&mut self, arg: &str) -> Flow {
        if arg.is_empty() {
            let user = format!("Logged in as {}", quoted(self.user.as_deref().unwrap_or("")));
            let connected = format!("Connected from {}", self.peer);
            let mode = format!("TYPE: {}", if self.ascii { "ASCII" } else { "BINARY" });
            let data = match self.data {
                DataSetup::None => "No data connection set up",
                DataSetup::Active { .. } => "Active data connection set up (PORT/EPRT)",
                DataSetup::Passive(_) => "Passive data connection set up (PASV/EPSV)",
            };
            return self
                .reply_lines(211, &["FTP server status:", &connected, &user, &mode, data, "End of status"])
                .await;
        }
        let path = resolve(&self.cwd, arg);
        let (code, lines) = if self.srv.is_dir(&path) {
            let lines: Vec<String> = self.srv.entries(&path).into_iter().map(|(n, d, s)| long_line(&n, d, s)).collect();
            (212, lines)
        } else if let Some(b) = self.srv.file(&path) {
            (213, vec![long_line(name_of(&path), false, b.len())])
        } else {
            return self.reply(550, &format!("No such file: {}", quoted(arg))).await;
        };
        let head = format!("Status of {}:", quoted(arg));
        let mut all: Vec<&str> = vec![&head];
        all.extend(lines.iter().map(String::as_str));
        all.push("End of status");
        self.reply_lines(code, &all).await
    }

    /// The first checks every transfer command makes: a data connection set up, and no
    /// `refuse-data` fault. Takes the setup: each transfer uses its own.
    async fn take_setup(&mut self) -> Result<DataSetup, Flow> {
        let setup = std::mem::replace(&mut self.data, DataSetup::None);
        if matches!(setup, DataSetup::None) {
            return Err(self.reply(425, "Use PORT or PASV first").await);
        }
        if self.srv.faults.refuse_data {
            return Err(self.reply(425, "Cannot open data connection").await);
        }
        Ok(setup)
    }

    async fn retr(&mut self, arg: &str) -> Flow {
        let offset = std::mem::take(&mut self.rest);
        let setup = match self.take_setup().await {
            Ok(s) => s,
            Err(flow) => return flow,
        };
        let path = resolve(&self.cwd, arg);
        let Some(file) = self.srv.file(&path) else {
            let why = if self.srv.is_dir(&path) {
                "Not a plain file"
            } else {
                "No such file"
            };
            return self.reply(550, &format!("{why}: {}", quoted(arg))).await;
        };
        if offset > file.len() {
            return self
                .reply(554, &format!("REST {offset} is past the end of the file ({} bytes)", file.len()))
                .await;
        }
        let part = &file[offset..];
        let bytes = if self.ascii { to_crlf(part) } else { part.to_vec() };
        let mode = if self.ascii { "ASCII" } else { "BINARY" };
        let what = format!("Opening {mode} mode data connection for {} ({} bytes)", quoted(arg), bytes.len());
        self.transfer(setup, Work::Send(bytes), &what, None).await
    }

    async fn list(&mut self, arg: &str, names_only: bool) -> Flow {
        // RFC 3659 §5.3: REST is for the transfer command right after it; a listing drops it.
        self.rest = 0;
        let setup = match self.take_setup().await {
            Ok(s) => s,
            Err(flow) => return flow,
        };
        // `ls` options some clients send (LIST -la) are accepted and ignored.
        let path_arg = arg.split(' ').skip_while(|w| w.starts_with('-')).collect::<Vec<_>>().join(" ");
        let path = resolve(&self.cwd, &path_arg);
        let entries = if self.srv.is_dir(&path) {
            self.srv.entries(&path)
        } else if let Some(b) = self.srv.file(&path) {
            vec![(name_of(&path).to_string(), false, b.len())]
        } else {
            return self.reply(550, &format!("No such file or directory: {}", quoted(&path_arg))).await;
        };
        let mut listing = Vec::new();
        for (name, dir, size) in entries {
            let line = if names_only { name } else { long_line(&name, dir, size) };
            listing.extend_from_slice(line.as_bytes());
            listing.extend_from_slice(b"\r\n");
        }
        self.transfer(setup, Work::Send(listing), "Here comes the directory listing", None)
            .await
    }

    async fn stor(&mut self, arg: &str, append: bool) -> Flow {
        self.rest = 0;
        let setup = match self.take_setup().await {
            Ok(s) => s,
            Err(flow) => return flow,
        };
        if self.srv.faults.disk_full {
            return self.reply(452, "Insufficient storage space").await;
        }
        if arg.is_empty() {
            return self.reply(501, "STOR needs a file name").await;
        }
        if arg.contains('/') || arg.contains("..") || arg == "." || arg.chars().any(char::is_control) {
            return self
                .reply(
                    553,
                    &format!("File name not allowed: {} (give a plain name, no '/' or '..')", quoted(arg)),
                )
                .await;
        }
        let path = resolve(&self.cwd, arg);
        if self.srv.tree.files.contains_key(&path) || self.srv.is_dir(&path) {
            return self
                .reply(
                    550,
                    &format!("Permission denied: {} is served read-only; upload under another name", quoted(arg)),
                )
                .await;
        }
        self.transfer(setup, Work::Receive, "Ok to send data", Some((arg.to_string(), path, append)))
            .await
    }

    /// Opens the data connection (an active one before the 150), moves the bytes while watching
    /// the control connection for ABOR, closes it, and answers 226 (or why not).
    async fn transfer(&mut self, setup: DataSetup, work: Work, what: &str, upload: Option<(String, String, bool)>) -> Flow {
        let opening = match setup {
            DataSetup::None => return self.reply(425, "Use PORT or PASV first").await,
            DataSetup::Passive(l) => Opening::Accept(l),
            DataSetup::Active { addr, said } => match connect(self.local.ip(), addr).await {
                Ok(s) => Opening::Connected(s),
                Err(why) => {
                    let hint = if said.starts_with("PORT") {
                        "; p1,p2 are the high and low byte of the port"
                    } else {
                        ""
                    };
                    return self
                        .reply(425, &format!("Cannot open data connection to {addr} ({said}): {why}{hint}"))
                        .await;
                }
            },
        };
        if self.banner(150, what, &[what, "Data follows on the data connection."]).await == Flow::Quit {
            return Flow::Quit;
        }
        // Boxed so that an ABOR can drop it, closing the data connection, before the 426.
        let mut job = Box::pin(data_job(
            opening,
            self.peer.ip(),
            work,
            self.srv.log.clone(),
            self.srv.faults.slow_data,
        ));
        let mut control_open = true;
        let outcome = loop {
            let watch = control_open && self.inbuf.len() < MAX_PENDING;
            tokio::select! {
                r = &mut job => break r,
                got = self.fill(), if watch => {
                    if !got {
                        // A client may close its side after its last command (RETR, QUIT): the
                        // transfer goes on, and the commands read are answered after it.
                        control_open = false;
                        continue;
                    }
                    if self.take_abor() {
                        drop(job);
                        if self.reply(426, "Connection closed; transfer aborted").await == Flow::Quit {
                            return Flow::Quit;
                        }
                        return self.reply(226, "ABOR successful").await;
                    }
                }
            }
        };
        match outcome {
            // The transfer's bytes all went, but the server says it failed (RFC 959 §5.4: RETR,
            // STOR may end in 451): the client must not take the close for success.
            Ok(_) if self.srv.faults.fail_after_data => self.reply(451, "Requested action aborted: local error in processing").await,
            Ok(received) => {
                if let (Some((name, path, append)), Some(raw)) = (upload, received) {
                    let bytes = if self.ascii { from_crlf(&raw) } else { raw };
                    if let Err(flow) = self.keep_upload(&name, &path, bytes, append).await {
                        return flow;
                    }
                }
                self.banner(226, "Transfer complete", &["Closing data connection.", "Transfer complete"])
                    .await
            }
            Err((code, why)) => self.reply(code, &why).await,
        }
    }

    /// Keeps an upload for later RETR and LIST in this case, and hands it to the runner.
    async fn keep_upload(&mut self, name: &str, path: &str, bytes: Vec<u8>, append: bool) -> Result<(), Flow> {
        let kept = {
            let mut uploads = self.srv.uploads();
            let mut whole = match uploads.get(path) {
                Some(old) if append => old.as_ref().clone(),
                _ => Vec::new(),
            };
            whole.extend_from_slice(&bytes);
            let others: usize = uploads.iter().filter(|(p, _)| *p != path).map(|(_, b)| b.len()).sum();
            if whole.len() > MAX_UPLOAD || others + whole.len() > MAX_UPLOADS {
                None
            } else {
                let whole = Arc::new(whole);
                uploads.insert(path.to_string(), whole.clone());
                Some(whole)
            }
        };
        match kept {
            Some(whole) => {
                self.srv.log.stored(name, &whole);
                Ok(())
            }
            None => Err(self.reply(552, "Exceeded storage allocation").await),
        }
    }

    /// Whether the buffer holds an ABOR line; if so it is taken out, the other lines stay.
    fn take_abor(&mut self) -> bool {
        let mut start = 0;
        while let Some(i) = self.inbuf[start..].iter().position(|&b| b == b'\n') {
            let end = start + i + 1;
            if command_of(&self.inbuf[start..end]).is_some_and(|(v, _)| v == "ABOR") {
                self.inbuf.drain(start..end);
                return true;
            }
            start = end;
        }
        false
    }
}

/// Every verb the actor answers (others get 500).
const KNOWN: &[&str] = &[
    "USER", "PASS", "ACCT", "SYST", "FEAT", "OPTS", "PWD", "XPWD", "CWD", "XCWD", "CDUP", "XCUP", "TYPE", "MODE", "STRU", "PORT", "EPRT",
    "PASV", "EPSV", "RETR", "STOR", "APPE", "LIST", "NLST", "SIZE", "MDTM", "REST", "NOOP", "HELP", "STAT", "ABOR", "DELE", "MKD", "XMKD",
    "RMD", "XRMD", "RNFR", "RNTO", "QUIT",
];

/// A command line (with its ending) as verb and argument, by the protocol's own codec.
fn command_of(line: &[u8]) -> Option<(String, Option<String>)> {
    match CommandCodec.decode(line, true) {
        Ok(Frame::Message(m, _)) => match FtpMessage::of(&m) {
            Some(FtpMessage::Command { verb, arg }) => Some((verb.clone(), arg.clone())),
            _ => None,
        },
        _ => None,
    }
}

/// An active data connection from the actor's own address to `addr`; why not, in words.
async fn connect(ip: IpAddr, addr: SocketAddr) -> Result<TcpStream, String> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| e.to_string())?;
    if ip.is_ipv4() == addr.is_ipv4() {
        socket.bind(SocketAddr::new(ip, 0)).map_err(|e| e.to_string())?;
    }
    match timeout(DATA_OPEN, socket.connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err("nothing listens there".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", DATA_OPEN.as_secs())),
    }
}

/// Opens (or takes) the data connection, records it, and moves the bytes: sends `Send` and
/// closes, or reads until the client closes. `Ok(Some(bytes))` for an upload.
async fn data_job(
    opening: Opening,
    client: IpAddr,
    work: Work,
    log: Arc<dyn ActorLog>,
    slow: bool,
) -> Result<Option<Vec<u8>>, (u16, String)> {
    let (mut stream, actor_connected) = match opening {
        Opening::Connected(s) => (s, true),
        Opening::Accept(l) => (accept_from(&l, client).await?, false),
    };
    let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) else {
        return Err((426, "Connection closed; transfer aborted".into()));
    };
    let conv = DataConv {
        conv: log.open_other(Transport::Tcp, local, peer, super::DATA, actor_connected),
        log: log.clone(),
    };
    let broken = |e: String| (426, format!("Connection closed; transfer aborted: {e}"));
    match work {
        Work::Send(bytes) => {
            let pieces: Vec<&[u8]> = if slow {
                bytes.chunks(SLOW_CHUNK).collect()
            } else {
                bytes.chunks(64 * 1024).collect()
            };
            for (i, p) in pieces.iter().enumerate() {
                if slow && i > 0 {
                    sleep(SLOW_PAUSE).await;
                }
                match timeout(DATA_IDLE, stream.write_all(p)).await {
                    Ok(Ok(())) => log.data(conv.conv, Direction::ServerToClient, p),
                    Ok(Err(e)) => return Err(broken(e.to_string())),
                    Err(_) => return Err(broken(format!("the client read nothing for {} s", DATA_IDLE.as_secs()))),
                }
            }
            // RFC 959 §3.3: in stream mode the close of the data connection ends the file.
            let _ = timeout(DATA_IDLE, stream.shutdown()).await;
            drop(stream);
            drop(conv);
            Ok(None)
        }
        Work::Receive => {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match timeout(DATA_IDLE, stream.read(&mut buf)).await {
                    Ok(Ok(0)) => break,
                    Ok(Ok(n)) => {
                        log.data(conv.conv, Direction::ClientToServer, &buf[..n]);
                        if got.len() + n > MAX_UPLOAD {
                            return Err((552, format!("Exceeded storage allocation: an upload is at most {MAX_UPLOAD} bytes")));
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                    Ok(Err(e)) => return Err(broken(e.to_string())),
                    Err(_) => return Err(broken(format!("no data for {} s", DATA_IDLE.as_secs()))),
                }
            }
            drop(stream);
            drop(conv);
            Ok(Some(got))
        }
    }
}

/// The first connection to a passive port from the client's own address, within `DATA_OPEN`
/// (one from elsewhere is closed and waited past: RFC 2577 §3).
async fn accept_from(l: &TcpListener, client: IpAddr) -> Result<TcpStream, (u16, String)> {
    let deadline = Instant::now() + DATA_OPEN;
    let port = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    loop {
        match tokio::time::timeout_at(deadline, l.accept()).await {
            Ok(Ok((s, from))) if from.ip().to_canonical() == client.to_canonical() => return Ok(s),
            Ok(Ok(_)) => continue,
            Ok(Err(_)) => sleep(Duration::from_millis(10)).await,
            Err(_) => {
                return Err((
                    425,
                    format!(
                        "No data connection to {port} within {} s: connect to the address of the 227/229 reply",
                        DATA_OPEN.as_secs()
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncBufReadExt, BufReader};

    use super::super::codec::{eprt_arg, parse_epsv, parse_pasv, port_arg};
    use super::*;

    /// Every wait of a test.
    const T: Duration = Duration::from_secs(5);

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Call {
        Open(usize),
        Other {
            conv: usize,
            protocol: String,
            actor_connected: bool,
        },
        Data(usize, Direction, Vec<u8>),
        Closed(usize),
        Stored(String, Vec<u8>),
    }

    /// An `ActorLog` that keeps every call.
    #[derive(Default)]
    struct TestLog {
        calls: Mutex<Vec<Call>>,
        next: AtomicUsize,
    }

    impl ActorLog for TestLog {
        fn open(&self, _: Transport, _: SocketAddr, _: SocketAddr) -> usize {
            let id = self.next.fetch_add(1, Ordering::SeqCst);
            self.calls.lock().unwrap().push(Call::Open(id));
            id
        }
        fn data(&self, conv: usize, dir: Direction, bytes: &[u8]) {
            self.calls.lock().unwrap().push(Call::Data(conv, dir, bytes.to_vec()));
        }
        fn closed(&self, conv: usize) {
            self.calls.lock().unwrap().push(Call::Closed(conv));
        }
        fn open_other(&self, _: Transport, _: SocketAddr, _: SocketAddr, protocol: &str, actor_connected: bool) -> usize {
            let conv = self.next.fetch_add(1, Ordering::SeqCst);
            self.calls.lock().unwrap().push(Call::Other {
                conv,
                protocol: protocol.into(),
                actor_connected,
            });
            conv
        }
        fn stored(&self, name: &str, bytes: &[u8]) {
            self.calls.lock().unwrap().push(Call::Stored(name.into(), bytes.to_vec()));
        }
    }

    impl TestLog {
        fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap().clone()
        }
        /// The data conversations, with whether the actor connected.
        fn others(&self) -> Vec<(usize, bool)> {
            self.calls()
                .into_iter()
                .filter_map(|c| match c {
                    Call::Other {
                        conv,
                        protocol,
                        actor_connected,
                    } if protocol == crate::proto::ftp::DATA => Some((conv, actor_connected)),
                    _ => None,
                })
                .collect()
        }
        /// Each piece recorded on `conv` going `dir`.
        fn pieces(&self, conv: usize, dir: Direction) -> Vec<Vec<u8>> {
            self.calls()
                .into_iter()
                .filter_map(|c| match c {
                    Call::Data(c, d, b) if c == conv && d == dir => Some(b),
                    _ => None,
                })
                .collect()
        }
    }

    fn binary() -> Vec<u8> {
        (0..1000u32).map(|i| (i * 7 % 256) as u8).collect()
    }

    fn tree() -> Arc<Tree> {
        let mut files = BTreeMap::new();
        files.insert("/binary.bin".to_string(), Arc::new(binary()));
        // Long enough under slow-data (400 chunks 5 ms apart) for an ABOR to arrive mid-transfer.
        files.insert("/big.bin".to_string(), Arc::new(vec![7u8; 200 * SLOW_CHUNK]));
        files.insert("/lines.txt".to_string(), Arc::new(b"one\r\ntwo\nthree\n".to_vec()));
        files.insert("/pub/nested.txt".to_string(), Arc::new(b"nested\n".to_vec()));
        Arc::new(Tree {
            files,
            dirs: BTreeSet::from(["/".to_string(), "/pub".to_string()]),
        })
    }

    async fn start(faults: &[&str]) -> (ActorHandle, SocketAddr, Arc<TestLog>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(TestLog::default());
        let faults: Vec<String> = faults.iter().map(|f| f.to_string()).collect();
        let actor = FtpActor { tree: tree() };
        let bound = Bound {
            udp: None,
            tcp: Some(listener),
            tls: None,
        };
        (actor.start(bound, &faults, log.clone()), addr, log)
    }

    struct Client {
        rd: BufReader<tokio::net::tcp::OwnedReadHalf>,
        wr: tokio::net::tcp::OwnedWriteHalf,
    }

    impl Client {
        async fn connect(addr: SocketAddr) -> Client {
            let s = timeout(T, TcpStream::connect(addr)).await.unwrap().unwrap();
            let (rd, wr) = s.into_split();
            Client {
                rd: BufReader::new(rd),
                wr,
            }
        }

        /// Connects and reads the greeting.
        async fn greeted(addr: SocketAddr) -> Client {
            let mut c = Client::connect(addr).await;
            assert_eq!(c.reply().await.0, 220);
            c
        }

        async fn line(&mut self) -> String {
            let mut l = String::new();
            timeout(T, self.rd.read_line(&mut l)).await.unwrap().unwrap();
            assert!(l.ends_with("\r\n"), "a reply line ends in CRLF: {l:?}");
            l.truncate(l.len() - 2);
            l
        }

        /// One reply: its code and its lines joined by `\n`.
        async fn reply(&mut self) -> (u16, String) {
            let first = self.line().await;
            let code: u16 = first[..3].parse().unwrap();
            let mut text = first.clone();
            if first.as_bytes().get(3) == Some(&b'-') {
                loop {
                    let l = self.line().await;
                    text.push('\n');
                    text.push_str(&l);
                    if l.starts_with(&format!("{code} ")) {
                        break;
                    }
                }
            }
            (code, text)
        }

        async fn send(&mut self, bytes: &[u8]) {
            timeout(T, self.wr.write_all(bytes)).await.unwrap().unwrap();
        }

        async fn cmd(&mut self, line: &str) -> (u16, String) {
            self.send(format!("{line}\r\n").as_bytes()).await;
            self.reply().await
        }

        async fn login(&mut self) {
            assert_eq!(self.cmd("USER bob").await.0, 331);
            assert_eq!(self.cmd("PASS hungry").await.0, 230);
        }

        /// PASV, and a connection to the address it names.
        async fn pasv(&mut self) -> TcpStream {
            let (code, text) = self.cmd("PASV").await;
            assert_eq!(code, 227, "{text}");
            let addr = parse_pasv(&text).unwrap();
            timeout(T, TcpStream::connect(addr)).await.unwrap().unwrap()
        }

        /// The end of the connection: EOF within the bound.
        async fn closed(&mut self) {
            let mut rest = Vec::new();
            timeout(T, self.rd.read_to_end(&mut rest)).await.unwrap().unwrap();
            assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
        }
    }

    async fn read_all(mut s: TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        timeout(T, s.read_to_end(&mut got)).await.unwrap().unwrap();
        got
    }

    async fn write_all(mut s: TcpStream, bytes: &[u8]) {
        timeout(T, s.write_all(bytes)).await.unwrap().unwrap();
        timeout(T, s.shutdown()).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn serves_a_binary_file_over_pasv_byte_for_byte() {
        let (_h, addr, log) = start(&[]).await;
        let mut c = Client::greeted(addr).await;
        c.login().await;
        assert_eq!(c.cmd("TYPE I").await.0, 200);
        let data = c.pasv().await;
        let (code, text) = c.cmd("RETR binary.bin").await;
        assert_eq!(code, 150, "{text}");
        assert_eq!(read_all(data).await, binary());
        assert_eq!(c.reply().await.0, 226);
        let others = log.others();
        assert_eq!(others.len(), 1);
        let (conv, actor_connected) = others[0];
        assert!(!actor_connected, "the client connected in passive mode");
        assert_eq!(log.pieces(conv, Direction::ServerToClient).concat(), binary());
        assert!(log.calls().contains(&Call::Closed(conv)));
        let control = log.pieces(0, Direction::ClientToServer).concat();
        assert!(String::from_utf8_lossy(&control).contains("RETR binary.bin\r\n"));
        assert_eq!(c.cmd("QUIT").await.0, 221);
        c.closed().await;
    }

    #[tokio::test]
    async fn connects_to_the_address_of_port_and_eprt() {
        let (_h, addr, log) = start(&[]).await;
        let mut c = Client::greeted(addr).await;
        c.login().await;
        c.cmd("TYPE I").await;
        for extended in [false, true] {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let at = l.local_addr().unwrap();
            let SocketAddr::V4(v4) = at else { unreachable!() };
            let command = if extended {
                format!("EPRT {}", eprt_arg(at))
            } else {
                format!("PORT {}", port_arg(v4))
            };
            let (code, text) = c.cmd(&command).await;
            assert_eq!(code, 200, "{text}");
            assert!(text.contains(&at.to_string()), "{text}");
            c.send(b"RETR binary.bin\r\n").await;
            let (s, _) = timeout(T, l.accept()).await.unwrap().unwrap();
            assert_eq!(c.reply().await.0, 150);
            assert_eq!(read_all(s).await, binary());
            assert_eq!(c.reply().await.0, 226);
        }
        assert_eq!(log.others().iter().filter(|(_, a)| *a).count(), 2, "the actor connected");
    }

    #[tokio::test]
    async fn type_a_turns_lf_into_crlf_on_retr_and_crlf_into_lf_on_stor() {
        let (_h, addr, log) = start(&[]).await;
        let mut c = Client::greeted(addr).await;
        c.login().await;
        let data = c.pasv().await;
        assert_eq!(c.cmd("RETR lines.txt").await.0, 150);
        assert_eq!(read_all(data).await, b"one\r\ntwo\r\nthree\r\n");
        assert_eq!(c.reply().await.0, 226);
        let data = c.pasv().await;
        assert_eq!(c.cmd("STOR up.txt").await.0, 150);
        write_all(data, b"a\r\nb\r\n").await;
        assert_eq!(c.reply().await.0, 226);
        assert!(log.calls().contains(&Call::Stored("up.txt".into(), b"a\nb\n".to_vec())));
        assert_eq!(c.cmd("TYPE I").await.0, 200);
        let data = c.pasv().await;
        assert_eq!(c.cmd("RETR lines.txt").await.0, 150);
        assert_eq!(read_all(data).await, b"one\r\ntwo\nthree\n");
        assert_eq!(c.reply().await.0, 226);
    }

    #[tokio::test]
    async fn keeps_uploads_for_the_case_and_hands_them_over() {
        let (_h, addr, log) = start(&[]).await;
        let mut c = Client::greeted(addr).await;
        c.login().await;
        c.cmd("TYPE I").await;
        let data = c.pasv().await;
        assert_eq!(c.cmd("STOR up.bin").await.0, 150);
        write_all(data, &binary()).await;
        assert_eq!(c.reply().await.0, 226);
        assert!(log.calls().contains(&Call::Stored("up.bin".into(), binary())));
        let (conv, _) = log.others()[0];
        assert_eq!(log.pieces(conv, Direction::ClientToServer).concat(), binary());
        assert_eq!(c.cmd("SIZE up.bin").await, (213, "213 1000".to_string()));
        let data = c.pasv().await;
        c.cmd("APPE up.bin").await;
        write_all(data, b"+").await;
        assert_eq!(c.reply().await.0, 226);
        let data = c.pasv().await;
        assert_eq!(c.cmd("RETR up.bin").await.0, 150);
        assert_eq!(read_all(data).await, [binary(), b"+".to_vec()].concat());
        assert_eq!(c.reply().await.0, 226);
        let data = c.pasv().await;
        c.cmd("NLST").await;
        assert_eq!(read_all(data).await, b"big.bin\r\nbinary.bin\r\nlines.txt\r\npub\r\nup.bin\r\n");
        assert_eq!(c.reply().await.0, 226);
        assert_eq!(c.cmd("DELE up.bin").await.0, 250);
        assert_eq!(c.cmd("SIZE up.bin").await.0, 550);
        assert_eq!(c.cmd("DELE binary.bin").await.0, 550);
        for bad in ["../x", "a/b", ".."] {
            c.pasv().await;
            assert_eq!(c.cmd(&format!("STOR {bad}")).await.0, 553, "{bad}");
        }
        c.pasv().await;
        assert_eq!(c.cmd("STOR binary.bin").await.0, 550, "served files are read-only");
    }

    #[tokio::test]
    async fn lists_long_and_names_only_and_moves_between_folders() {
        let (_h, addr, _log) = start(&[]).await;
        let mut c = Client::greeted(addr).await;
        c.login().await;
        let data = c.pasv().await;
        assert_eq!(c.cmd("LIST").await.0, 150);
        let listing = String::from_utf8(read_all(data).await).unwrap();
        assert_eq!(c.reply().await.0, 226);
        let lines: Vec<&str> = listing.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 4, "{listing}");
        assert!(lines[1].starts_with("-rw-r--r--") && lines[1].ends_with(" 1000 Jan  1  2024 binary.bin"));
        assert!(lines[3].starts_with("drwxr-xr-x") && lines[3].ends_with(" pub"));
        assert!(!listing.replace("\r\n", "").contains('\n'));
        assert_eq!(c.cmd("CWD pub").await.0, 250);
        assert_eq!(c.cmd("PWD").await, (257, "257 \"/pub\" is the current directory".into()));
        let data = c.pasv().await;
        c.cmd("NLST").await;
        assert_eq!(read_all(data).await, b"nested.txt\r\n");
        assert_eq!(c.reply().await.0, 226);
        let data = c.pasv().await;
        c.cmd("LIST -la ../lines.txt").await;
        assert!(String::from_utf8(read_all(data).await).unwrap().ends_with(" lines.txt\r\n"));
        assert_eq!(c.reply().await.0, 226);
        assert_eq!(c.cmd("CDUP").await.0, 250);
        assert_eq!(c.cmd("CWD ../../..").await.0, 250, "above the root is the root");
        assert_eq!(c.cmd("XPWD").await.1, "257 \"/\" is the current directory");
        assert_eq!(c.cmd("CWD nowhere").await.0, 550);
        assert_eq!(c.cmd("CWD").await.0, 501);
        c.pasv().await;
        assert_eq!(c.cmd("LIST nowhere").await.0, 550);
    }

    #[tokio::test]
    async fn explains_data_connections_it_cannot_open() {
        let (_h, addr, log) = start(&[]).await;
        let mut c = Client::greeted(addr).await;
        c.login().await;
        assert_eq!(c.cmd("RETR binary.bin").await, (425, "425 Use PORT or PASV first".into()));
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let arg = format!("127,0,0,1,{},{}", port >> 8, port & 0xff);
        assert_eq!(c.cmd(&format!("PORT {arg}")).await.0, 200);
        let (code, text) = c.cmd("RETR binary.bin").await;
        assert_eq!(code, 425, "{text}");
        assert!(
            text.contains(&format!("127.0.0.1:{port} (PORT {arg}): nothing listens there")),
            "{text}"
        );
        assert!(text.contains("p1,p2 are the high and low byte"), "{text}");
        let (code, text) = c.cmd("PORT 10,0,0,1,4,1").await;
        assert_eq!(code, 501);
        assert!(text.contains("RFC 2577") && text.contains("10.0.0.1"), "{text}");
        assert_eq!(c.cmd("EPRT |1|10.0.0.1|1025|").await.0, 501);
        assert_eq!(c.cmd("EPRT |3|x|1025|").await.0, 522);
        assert_eq!(c.cmd("PORT 1,2,3").await.0, 501);
        assert!(log.others().is_empty());
    }

    #[tokio::test]
    async fn answers_housekeeping_and_keeps_the_order_of_login() {
        let (_h, addr, _log) = start(&[]).await;
        let mut c = Client::greeted(addr).await;
        assert_eq!(c.cmd("PWD").await.0, 530);
        assert_eq!(c.cmd("PASV").await.0, 530);
        assert_eq!(c.cmd("PASS x").await.0, 503);
        assert_eq!(c.cmd("SYST").await, (215, "215 UNIX Type: L8".into()));
        let (code, feat) = c.cmd("FEAT").await;
        assert_eq!(code, 211);
        for f in ["EPSV", "EPRT", "SIZE", "MDTM", "REST STREAM", "UTF8", "PASV"] {
            assert!(feat.lines().any(|l| l.trim() == f), "{f} in {feat}");
        }
        assert_eq!(c.cmd("OPTS UTF8 ON").await.0, 200);
        assert_eq!(c.cmd("HELP").await.0, 214);
        assert_eq!(c.cmd("noop").await.0, 200);
        assert_eq!(c.cmd("USER bob").await.0, 331);
        assert_eq!(c.cmd("PASS wrong").await.0, 530);
        assert_eq!(c.cmd("user anonymous").await.0, 331);
        assert_eq!(c.cmd("pass me@x").await.0, 230);
        assert_eq!(c.cmd("ACCT x").await.0, 202);
        assert_eq!(c.cmd("RNTO x").await.0, 503);
        assert_eq!(c.cmd("RNFR lines.txt").await.0, 350);
        assert_eq!(c.cmd("RNTO y").await.0, 550);
        assert_eq!(c.cmd("FROB").await.0, 500);
        assert_eq!(c.cmd("SITE CHMOD 600 x").await.0, 502);
        assert_eq!(c.cmd("TYPE E").await.0, 504);
        assert_eq!(c.cmd("TYPE L 8").await.0, 200);
        assert_eq!(c.cmd("TYPE A N").await.0, 200);
        assert_eq!(c.cmd("MODE S").await.0, 200);
        assert_eq!(c.cmd("MODE B").await.0, 504);
        assert_eq!(c.cmd("STRU F").await.0, 200);
        assert_eq!(c.cmd("SIZE binary.bin").await.1, "213 1000");
        assert_eq!(c.cmd("MDTM binary.bin").await.1, "213 20240101120000");
        assert_eq!(c.cmd("REST x").await.0, 501);
        assert_eq!(c.cmd("REST 990").await.0, 350);
        c.cmd("TYPE I").await;
        let data = c.pasv().await;
        assert_eq!(c.cmd("RETR binary.bin").await.0, 150);
        assert_eq!(read_all(data).await, binary()[990..]);
        assert_eq!(c.reply().await.0, 226);
        assert_eq!(c.cmd("STAT").await.0, 211);
        assert_eq!(c.cmd("STAT pub").await.0, 212);
        assert_eq!(c.cmd("ABOR").await.0, 226);
        assert_eq!(c.cmd("MKD new").await.0, 550);
        assert_eq!(c.cmd("RMD pub").await.0, 550);
        let (code, text) = c.cmd("EPSV").await;
        assert_eq!(code, 229);
        assert!(parse_epsv(&text).is_some());
        assert_eq!(c.cmd("EPSV ALL").await.0, 200);
        assert_eq!(c.cmd("PASV").await.0, 503);
        assert_eq!(c.cmd("QUIT").await.0, 221);
        c.closed().await;
    }

    #[tokio::test]
    async fn abor_during_a_transfer_closes_it_with_426_then_226() {
        let (_h, addr, log) = start(&["slow-data"]).await;
        let mut c = Client::greeted(addr).await;
        c.login().await;
        c.cmd("TYPE I").await;
        let mut data = c.pasv().await;
        assert_eq!(c.cmd("RETR big.bin").await.0, 150);
        let mut first = [0u8; 1];
        timeout(T, data.read_exact(&mut first)).await.unwrap().unwrap();
        c.send(b"\xff\xf4\xff\xf2ABOR\r\n").await;
        assert_eq!(c.reply().await.0, 426);
        assert_eq!(c.reply().await.0, 226);
        let rest = read_all(data).await;
        assert!(rest.len() + 1 < 200 * SLOW_CHUNK, "the transfer stopped early");
        let (conv, _) = log.others()[0];
        assert!(log.calls().contains(&Call::Closed(conv)));
        assert_eq!(c.cmd("NOOP").await.0, 200);
    }

    #[tokio::test]
    async fn a_client_that_closes_its_side_after_quit_still_gets_the_file() {
        let (_h, addr, _log) = start(&["slow-data"]).await;
        let mut c = Client::greeted(addr).await;
        c.login().await;
        c.cmd("TYPE I").await;
        let data = c.pasv().await;
        c.send(b"RETR big.bin\r\nQUIT\r\n").await;
        timeout(T, c.wr.shutdown()).await.unwrap().unwrap();
        assert_eq!(c.reply().await.0, 150);
        assert_eq!(read_all(data).await.len(), 200 * SLOW_CHUNK);
        assert_eq!(c.reply().await.0, 226);
        assert_eq!(c.reply().await.0, 221);
        c.closed().await;
    }

    #[tokio::test]
    async fn fault_multiline_sends_greeting_230_150_and_226_in_several_lines() {
        let (_h, addr, _log) = start(&["multiline"]).await;
        let mut c = Client::connect(addr).await;
        let (code, text) = c.reply().await;
        assert!(code == 220 && text.starts_with("220-") && text.lines().count() > 1, "{text}");
        assert_eq!(c.cmd("USER bob").await.0, 331);
        let (code, text) = c.cmd("PASS hungry").await;
        assert!(code == 230 && text.starts_with("230-"), "{text}");
        let data = c.pasv().await;
        let (code, text) = c.cmd("RETR lines.txt").await;
        assert!(code == 150 && text.starts_with("150-"), "{text}");
        read_all(data).await;
        let (code, text) = c.reply().await;
        assert!(code == 226 && text.starts_with("226-"), "{text}");
    }

    #[tokio::test]
    async fn fault_split_writes_replies_in_small_pieces() {
        let (_h, addr, log) = start(&["split"]).await;
        let mut c = Client::greeted(addr).await;
        assert_eq!(c.cmd("NOOP").await.0, 200);
        let pieces = log.pieces(0, Direction::ServerToClient);
        assert!(pieces.len() > 10 && pieces.iter().all(|p| p.len() <= SPLIT_PIECE), "{pieces:?}");
    }

    #[tokio::test]
    async fn fault_slow_greeting_answers_an_early_command_with_421() {
        let (_h, addr, _log) = start(&["slow-greeting"]).await;
        let began = Instant::now();
        let mut c = Client::greeted(addr).await;
        assert!(began.elapsed() >= Duration::from_millis(500));
        assert_eq!(c.cmd("NOOP").await.0, 200);
        let mut early = Client::connect(addr).await;
        early.send(b"USER bob\r\n").await;
        let (code, text) = early.reply().await;
        assert_eq!(code, 421);
        assert!(text.contains("command before the greeting (RFC 959 §5.4: wait for 220)"), "{text}");
        early.closed().await;
    }

    #[tokio::test]
    async fn fault_slow_data_writes_the_file_in_chunks() {
        let (_h, addr, log) = start(&["slow-data"]).await;
        let mut c = Client::greeted(addr).await;
        c.login().await;
        c.cmd("TYPE I").await;
        let data = c.pasv().await;
        c.cmd("RETR binary.bin").await;
        assert_eq!(read_all(data).await, binary());
        assert_eq!(c.reply().await.0, 226);
        let (conv, _) = log.others()[0];
        let pieces = log.pieces(conv, Direction::ServerToClient);
        assert!(pieces.len() == 2 && pieces[0].len() == SLOW_CHUNK, "{}", pieces.len());
    }

    #[tokio::test]
    async fn fault_user_230_and_refuse_login() {
        let (_h, addr, _log) = start(&["user-230"]).await;
        let mut c = Client::greeted(addr).await;
        assert_eq!(c.cmd("USER anonymous").await.0, 230);
        assert_eq!(c.cmd("PASS x").await.0, 503);
        assert_eq!(c.cmd("PWD").await.0, 257);
        let (_h, addr, _log) = start(&["refuse-login"]).await;
        let mut c = Client::greeted(addr).await;
        assert_eq!(c.cmd("USER bob").await.0, 331);
        assert_eq!(c.cmd("PASS hungry").await.0, 530);
        assert_eq!(c.cmd("PWD").await.0, 530);
    }

    #[tokio::test]
    async fn fault_refuse_data_and_disk_full() {
        let (_h, addr, log) = start(&["refuse-data"]).await;
        let mut c = Client::greeted(addr).await;
        c.login().await;
        for command in ["RETR binary.bin", "LIST", "NLST", "STOR x"] {
            c.pasv().await;
            assert_eq!(c.cmd(command).await.0, 425, "{command}");
        }
        assert!(log.others().is_empty());
        let (_h, addr, log) = start(&["disk-full"]).await;
        let mut c = Client::greeted(addr).await;
        c.login().await;
        for command in ["STOR x", "APPE x"] {
            c.pasv().await;
            assert_eq!(c.cmd(command).await.0, 452, "{command}");
        }
        assert!(!log.calls().iter().any(|c| matches!(c, Call::Stored(..))));
    }

    #[tokio::test]
    async fn fault_no_extended_and_pasv_bare() {
        let (_h, addr, _log) = start(&["no-extended", "pasv-bare"]).await;
        let mut c = Client::greeted(addr).await;
        c.login().await;
        assert_eq!(c.cmd("EPSV").await.0, 502);
        assert_eq!(c.cmd("EPRT |1|127.0.0.1|1025|").await.0, 502);
        assert!(!c.cmd("FEAT").await.1.contains("EPSV"));
        let (code, text) = c.cmd("PASV").await;
        assert_eq!(code, 227);
        assert!(
            !text.contains('(') && text.starts_with("227 Entering Passive Mode 127,0,0,1,"),
            "{text}"
        );
        let data = timeout(T, TcpStream::connect(parse_pasv(&text).unwrap())).await.unwrap().unwrap();
        assert_eq!(c.cmd("RETR pub/nested.txt").await.0, 150);
        assert_eq!(read_all(data).await, b"nested\r\n");
        assert_eq!(c.reply().await.0, 226);
    }

    #[tokio::test]
    async fn fault_close_early_says_421_after_the_230() {
        let (_h, addr, log) = start(&["close-early"]).await;
        let mut c = Client::greeted(addr).await;
        c.login().await;
        assert_eq!(c.reply().await.0, 421);
        c.closed().await;
        let closed = async {
            while !log.calls().contains(&Call::Closed(0)) {
                tokio::task::yield_now().await;
            }
        };
        timeout(T, closed).await.unwrap();
    }

    #[tokio::test]
    async fn fault_fail_after_data_ends_the_transfer_with_451_and_keeps_no_upload() {
        let (_h, addr, log) = start(&["fail-after-data"]).await;
        let mut c = Client::greeted(addr).await;
        c.login().await;
        assert_eq!(c.cmd("TYPE I").await.0, 200);
        let data = c.pasv().await;
        assert_eq!(c.cmd("RETR binary.bin").await.0, 150);
        assert_eq!(read_all(data).await, binary());
        assert_eq!(c.reply().await.0, 451);
        let mut data = c.pasv().await;
        assert_eq!(c.cmd("STOR up.bin").await.0, 150);
        data.write_all(b"abc").await.unwrap();
        drop(data);
        assert_eq!(c.reply().await.0, 451);
        assert!(
            !log.calls().iter().any(|call| matches!(call, Call::Stored(..))),
            "a failed upload is not kept"
        );
    }

    #[tokio::test]
    async fn garbage_never_stops_the_actor() {
        let (_h, addr, _log) = start(&[]).await;
        let mut c = Client::greeted(addr).await;
        let mut x: u32 = 0x2545_F491;
        let mut junk = Vec::new();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            junk.push((x >> 24) as u8);
        }
        c.send(&junk).await;
        for line in [
            "USER bob",
            "PASS hungry",
            "PORT 999,1,1,1,1,1",
            "PORT",
            "EPRT",
            "EPRT |2|::1|0|",
            "EPSV 7",
            "REST -1",
            "TYPE",
            "CWD",
            "RETR",
            "STOR",
            "LIST -",
            "SIZE",
            "STAT ../..",
            "RNFR",
            "\u{0}\u{1}",
            "OPTS",
            "APPE /",
            "RETR \u{7f}",
        ] {
            c.send(format!("{line}\r\n").as_bytes()).await;
        }
        c.send(b"\r\nNOOP\r\n").await;
        let ended = async {
            loop {
                let mut l = String::new();
                let n = c.rd.read_line(&mut l).await.unwrap();
                if n == 0 || l.starts_with("200 NOOP") {
                    return n;
                }
            }
        };
        assert!(timeout(T, ended).await.unwrap() > 0, "the session goes on");
        let mut again = Client::greeted(addr).await;
        assert_eq!(again.cmd("NOOP").await.0, 200);
    }

    #[tokio::test]
    async fn a_line_past_the_cap_gets_500_and_the_session_goes_on() {
        let (_h, addr, _log) = start(&[]).await;
        let mut c = Client::greeted(addr).await;
        c.send(&vec![b'A'; 100_000]).await;
        c.send(b"\r\n").await;
        let (code, text) = c.reply().await;
        assert_eq!(code, 500);
        assert!(text.contains("Line too long"), "{text}");
        assert_eq!(c.cmd("NOOP").await.0, 200);
    }

    fn declare(text: &str) -> Result<Arc<dyn ActorSpec>, String> {
        let source = Arc::new(crate::syntax::SourceFile {
            path: "suites/t.yaml".into(),
            text: text.to_string(),
        });
        let node = crate::syntax::yaml::parse(text).map_err(|(_, e)| e)?;
        let mut cx = LoadCx::new(source);
        match parse(&node, &mut cx) {
            Some(s) if cx.error_count() == 0 => Ok(s),
            _ => Err(crate::syntax::SuiteErrors(cx.into_errors()).to_string()),
        }
    }

    #[test]
    fn parses_a_declaration_with_subfolders() {
        let spec = declare("root: ../fixtures/ftp\n").unwrap();
        let d = format!("{spec:?}");
        assert!(d.contains("FtpActor") && !d.contains("files: 0"), "{d}");
        let e = declare("root: ../no/such/folder\n").unwrap_err();
        assert!(e.contains("no folder") && e.contains("1:"), "{e}");
        assert!(declare("{}\n").unwrap_err().contains("needs the folder"));
        assert!(declare("root: x\nzones: y\n").is_err());
    }

    #[test]
    fn rejects_a_root_over_the_size_cap() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/big"), vec![0u8; MAX_ROOT + 1]).unwrap();
        let e = declare(&format!("root: {}\n", dir.path().display())).unwrap_err();
        assert!(e.contains("more than"), "{e}");
    }

    #[test]
    fn every_declared_fault_switches_something() {
        for (name, _) in ACTOR.faults {
            let on = format!("{:?}", Faults::of(&[name.to_string()]));
            assert_ne!(on, format!("{:?}", Faults::default()), "{name}");
        }
    }

    #[test]
    fn resolves_paths_and_converts_line_endings() {
        assert_eq!(resolve("/pub", "../a/./b"), "/a/b");
        assert_eq!(resolve("/", "../../x"), "/x");
        assert_eq!(resolve("/pub", "/y"), "/y");
        assert_eq!(to_crlf(b"a\nb\r\nc"), b"a\r\nb\r\nc");
        assert_eq!(from_crlf(b"a\r\nb\rc\n"), b"a\nb\rc\n");
        assert_eq!(quoted("a\rb"), "a?b");
    }
}
