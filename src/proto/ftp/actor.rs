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
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
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
            "sends the greeting, 230, 150 and 226 as multi-line replies (legal, RFC 959 §4.2)",
        ),
        ("split", "writes every reply in 3-byte pieces 20 ms apart (TCP is a byte stream)"),
        ("slow-greeting", "sends the 220 greeting after 600 ms"),
        (
            "slow-data",
            "writes data connections in 512-byte chunks 5 ms apart, so one read gets part of a file",
        ),
        (
            "user-230",
            "answers USER with 230 at once, no password needed (legal, RFC 959 §5.4); a later PASS gets 503",
        ),
        ("refuse-login", "answers every PASS with 530"),
        (
            "refuse-data",
            "answers RETR, STOR, APPE, LIST and NLST with 425 and opens no data connection",
        ),
        ("disk-full", "answers STOR and APPE with 452 (insufficient storage space)"),
        (
            "no-extended",
            "answers EPSV and EPRT with 502, like a server older than RFC 2428 (clients fall back to PASV and PORT)",
        ),
        (
            "pasv-bare",
            "writes the 227 reply without parentheses (RFC 1123 §4.1.2.6: the client scans for the numbers)",
        ),
        ("close-early", "closes the control connection with 421 right after the 230"),
    ],
    parse,
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
        let srv = Arc::new(Server {
            tree: self.tree.clone(),
            faults: Faults::of(faults),
            uploads: Mutex::new(BTreeMap::new()),
            log,
        });
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
                let srv = srv.clone();
                let full = sessions.len() >= MAX_SESSIONS;
                sessions.spawn(async move {
                    let conv = srv.log.open(Transport::Tcp, local, peer);
                    let (rd, wr) = stream.into_split();
                    let mut s = Session::new(srv, conv, rd, wr, local, peer);
                    if full {
                        let _ = s.reply(421, "Too many connections; try again later").await;
                    } else {
                        s.run().await;
                    }
                    let _ = timeout(WRITE, s.wr.shutdown()).await;
                    s.srv.log.closed(conv);
                });
            }
        });
        ActorHandle::new(vec![task])
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
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
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
}

impl Session {
    fn new(srv: Arc<Server>, conv: usize, rd: OwnedReadHalf, wr: OwnedWriteHalf, local: SocketAddr, peer: SocketAddr) -> Session {
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
        }
    }

    async fn run(&mut self) {
        if self.greet().await == Flow::Quit {
            return;
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
                Next::Closed => Flow::Quit,
            };
            if flow == Flow::Quit {
                return;
            }
        }
    }

    async fn greet(&mut self) -> Flow {
        if self.srv.faults.slow_greeting {
            tokio::select! {
                _ = sleep(SLOW_GREETING) => {}
                got = self.fill() => {
                    if !got {
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
                        // The client hung up: the transfer has no one to report to.
                        control_open = false;
                        break Err((426, String::new()));
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
        if !control_open {
            return Flow::Quit;
        }
        match outcome {
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
        conv: log.open_other(Transport::Tcp, local, peer, "raw", actor_connected),
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
