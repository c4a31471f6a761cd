//! `ftp`: an FTP server (RFC 959, with RFC 2428 EPSV/EPRT, RFC 3659
//! SIZE/MDTM/REST, RFC 2389 FEAT/OPTS) over one folder, the oracle for FTP
//! suites:
//!
//! ```text
//! S: 220 wirecheck FTP reference ready
//! C: USER bob
//! S: 331 Password required for bob
//! C: PASS hungry
//! S: 230 User bob logged in
//! C: PASV
//! S: 227 Entering Passive Mode (127,0,0,1,195,80)
//! C: RETR lines.txt
//! S: 150 Opening ASCII mode data connection for /lines.txt
//! S: 226 Transfer complete
//! C: QUIT
//! S: 221 Goodbye
//! ```
//!
//! Options: `root` (default `fixtures/ftp/`, see its `README.md`), `users` (a
//! file of `user:password` lines, `*` for any password; default anonymous and
//! `ftp` with any password, and the seeds' `bob`/`hungry`), `writable`
//! (default false), `idle` (60s), `max_file_size` (octets, 16 MiB),
//! `pasv_ports` (`LOW-HIGH`; default any free port), `data_timeout` (how long
//! a data connection may take to open, 10s), `fault` (deliberate bugs, none
//! by default; see below), and the guard's `max_connections` and
//! `line_timeout`. Choices where
//! the RFCs leave room, made for the strict and safe side:
//! - every path stays inside the root: `..` above it, and any path whose
//!   symlinks lead outside it (or nowhere), is 550; absolute paths start at
//!   the root;
//! - USER says 331 to any name, so it does not reveal which accounts exist;
//!   three failed logins end the connection with 421 (RFC 2577 §5);
//! - PORT and EPRT must name the control connection's peer and a port from
//!   1024 up, else 504 (the bounce attack, RFC 2577 §3); a passive data
//!   connection from another host is refused and waited past;
//! - the default TYPE is A (RFC 959): RETR turns bare LF into CRLF, STOR turns
//!   CRLF into LF; REST counts octets of the file, in either TYPE; SIZE counts
//!   what RETR would send in the current TYPE (RFC 3659 §4);
//! - uploads are refused with 550 unless `writable=true`, and then go to a
//!   temporary copy of the root; RNTO and MKD never replace what exists;
//! - STAT with a path answers 212 for a folder and 213 for a file;
//! - REST holds until the next RETR or STOR (or APPE, LIST, NLST, which drop it);
//! - ABOR during a transfer gets 426 then 226; other commands sent during a
//!   transfer are answered after it. Since the control connection is read
//!   for ABOR meanwhile, the guard counts a session in a transfer as waiting
//!   for its client: at the cap it may be the one closed;
//! - a line over 4096 octets is 500 and dropped; an idle session gets 421 and
//!   is closed, as is one trickling a command past `line_timeout` or the
//!   idlest when a newcomer finds `max_connections` open (see `guard`).
//!
//! With `tls=implicit` (and `tls_cert`, `tls_key`; see `tls`) it is implicit
//! FTPS: the control connection is TLS from its first byte, and data
//! connections stay clear, which RFC 4217 §9 makes the default until PROT P:
//! PBSZ 0 and PROT C are answered 200, PROT P 536 (no protected data here).
//!
//! The `fault` option switches on deliberate bugs (`fault.rs`), so the
//! harness can prove that its suite's cases catch them.

use std::collections::VecDeque;
use std::future::Future;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};

use crate::guard::{self, Goodbye, Limits, Reason, Stream};
use crate::smtp::{LineConn, Stop};
use crate::tls::{self, Offer, ServerTls};
use crate::{parse_count, parse_duration, Error, OptionSet, Options, RunningServer, Transport};

mod fault;

use fault::{Fault, Faults};

/// The name suites and the CLI use for this server.
pub(crate) const NAME: &str = "ftp";
const OPTIONS: &[&str] = &[
    "root",
    "users",
    "writable",
    "idle",
    "max_file_size",
    "pasv_ports",
    "data_timeout",
    "fault",
    guard::OPTIONS[0],
    guard::OPTIONS[1],
    tls::OPTIONS[0],
    tls::OPTIONS[1],
    tls::OPTIONS[2],
];

/// The default root, relative to the current directory.
const DEFAULT_ROOT: &str = "fixtures/ftp";
/// The repository's FTP root, for a default root when run from elsewhere (e.g. `cargo test`).
const CHECKOUT_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/ftp");

/// A command line, CRLF included; longer ones are answered 500 and dropped.
const MAX_COMMAND_LINE: usize = 4096;
/// Failed PASS attempts before the connection is closed (RFC 2577 §5).
const MAX_LOGIN_FAILURES: u32 = 3;
/// A `users` file bigger than this is refused at start.
const MAX_USERS_FILE: u64 = 1 << 20;
/// Entries listed at most per LIST, NLST or STAT, so a huge folder cannot take all memory.
const MAX_LISTING: usize = 10_000;
/// Commands read while a transfer runs and kept for after it; more wait in the socket.
const MAX_QUEUED: usize = 16;
/// Bytes per read and write on a data connection.
const CHUNK: usize = 64 << 10;
/// Seconds in about six months: `ls -l` shows a year instead of a time for older files.
const HALF_YEAR: i64 = 182 * 86_400;

const NEED_LOGIN: &str = "530 Please login with USER and PASS";
const READ_ONLY: &str = "550 Permission denied: this server is read-only";
const NO_FILE: &str = "550 No such file or folder";

/// Everything a session needs from the options.
struct Config {
    /// The served folder, canonical.
    root: PathBuf,
    /// The folder named by `root`, canonical: the served one unless that is a writable copy.
    origin: PathBuf,
    /// Accounts; a password of `None` accepts any (anonymous).
    users: Vec<(String, Option<String>)>,
    writable: bool,
    idle: Duration,
    data_timeout: Duration,
    max_file_size: u64,
    pasv_ports: Option<(u16, u16)>,
    faults: Faults,
    /// Ends the whole server (the fault `crash-on-disconnect`).
    crash: Arc<tokio::sync::Notify>,
}

impl Config {
    fn has(&self, fault: Fault) -> bool {
        self.faults.has(fault)
    }
}

/// Checks the options, prepares the root, binds, and starts serving.
pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let idle = opts.get("idle", "60s", parse_duration)?;
    let data_timeout = opts.get("data_timeout", "10s", parse_duration)?;
    let faults = opts.get("fault", "", fault::parse)?;
    let mut limits = Limits::from_options(&opts)?;
    limits.implicit_tls = ServerTls::implicit(tls::server_options(&opts, Offer::Implicit, &[])?.as_ref());
    if faults.has(Fault::SingleClient) {
        // The fault: one slot, so the next client waits until this one leaves.
        limits.max_connections = 1;
        limits.queue = true;
    }
    let max_file_size = opts.get("max_file_size", "16777216", |v| parse_count(v, 0, u64::MAX))?;
    let writable = opts.get("writable", "false", parse_bool)?;
    let pasv_ports = match opts.given("pasv_ports") {
        Some(ports) => Some(opts.parse("pasv_ports", ports, parse_ports)?),
        None => None,
    };
    let users = match opts.given("users") {
        Some(file) => opts.parse("users", file, |f| read_users(Path::new(f)))?,
        None => default_users(),
    };
    let root = match opts.given("root") {
        Some(root) => opts.parse("root", root, |r| directory(Path::new(r)))?,
        None => directory(Path::new(DEFAULT_ROOT))
            .or_else(|_| directory(Path::new(CHECKOUT_ROOT)))
            .map_err(|why| Error::BadOption {
                server: NAME.to_owned(),
                key: "root".to_owned(),
                value: DEFAULT_ROOT.to_owned(),
                why,
            })?,
    };
    // Uploads land in a copy that lives exactly as long as the server task,
    // so neither the fixtures nor a folder someone named are ever changed.
    let origin = root.clone();
    let (root, temporary) = if writable {
        let copy = tempfile::Builder::new().prefix("wirecheck-ftp-").tempdir()?;
        copy_tree(&root, copy.path(), 0)?;
        (copy.path().canonicalize()?, Some(copy))
    } else {
        (root, None)
    };
    let crash = Arc::new(tokio::sync::Notify::new());
    let config = Arc::new(Config {
        root,
        origin,
        users,
        writable,
        idle,
        data_timeout,
        max_file_size,
        pasv_ports,
        faults,
        crash: crash.clone(),
    });
    let server_socket = TcpListener::bind(bind).await?;
    let local_addr = server_socket.local_addr()?;
    let server = async move {
        let serve = guard::serve(server_socket, limits, goodbye(), move |stream, peer| {
            let config = config.clone();
            async move { handle(stream, peer, &config).await }
        });
        // Dropping the accept loop drops every session with it, as a crashed process would.
        tokio::select! {
            () = serve => {}
            () = crash.notified() => {}
        }
        drop(temporary);
    };
    Ok(RunningServer::spawn(local_addr, Transport::Tcp, server))
}

/// RFC 959 §5.4: 421 is the reply for a service closing its control
/// connection, and may be the first reply a newcomer gets.
fn goodbye() -> Goodbye {
    Arc::new(|reason| {
        let words: &[u8] = match reason {
            Reason::Slow => b"421 Command did not arrive complete in time, closing control connection\r\n",
            Reason::Evicted => b"421 Closing idle control connection to make room\r\n",
            Reason::Busy => b"421 Too many connections, try again later\r\n",
        };
        Some(words.to_vec())
    })
}

/// `true` or `false`.
pub(crate) fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// `LOW-HIGH`, both from 1024 up.
fn parse_ports(text: &str) -> Result<(u16, u16), String> {
    const WHY: &str = "expected a port range such as 50000-50100 (from 1024 up)";
    let (low, high) = text.trim().split_once('-').ok_or(WHY)?;
    let low: u16 = low.trim().parse().map_err(|_| WHY)?;
    let high: u16 = high.trim().parse().map_err(|_| WHY)?;
    if low < 1024 || low > high {
        return Err(WHY.to_owned());
    }
    Ok((low, high))
}

/// The seed accounts, as in the mail store: `bob`/`hungry`, plus anonymous.
fn default_users() -> Vec<(String, Option<String>)> {
    vec![
        ("anonymous".to_owned(), None),
        ("ftp".to_owned(), None),
        ("bob".to_owned(), Some("hungry".to_owned())),
    ]
}

/// `user:password` lines; `#` starts a comment; a password `*` accepts any.
fn read_users(path: &Path) -> Result<Vec<(String, Option<String>)>, String> {
    let size = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?.len();
    if size > MAX_USERS_FILE {
        return Err(format!("larger than {MAX_USERS_FILE} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut users = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, password)) = line.split_once(':') else {
            return Err(format!("line {}: expected user:password", number + 1));
        };
        let password = (password != "*").then(|| password.to_owned());
        users.push((user.to_owned(), password));
    }
    if users.is_empty() {
        return Err("no user:password lines".to_owned());
    }
    Ok(users)
}

/// `path` made canonical, if it is a directory.
fn directory(path: &Path) -> Result<PathBuf, String> {
    let canonical = path.canonicalize().map_err(|e| format!("expected a directory: {e}"))?;
    if !canonical.is_dir() {
        return Err("expected a directory".to_owned());
    }
    Ok(canonical)
}

/// Copies the files and folders of `from` into `to`; symlinks are left
/// behind, since a copied link could lead anywhere.
fn copy_tree(from: &Path, to: &Path, depth: usize) -> std::io::Result<()> {
    if depth > 32 {
        return Err(std::io::Error::other("root nested deeper than 32 folders"));
    }
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            std::fs::create_dir(&target)?;
            copy_tree(&entry.path(), &target, depth + 1)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// One control connection.
async fn handle(stream: Stream, peer: SocketAddr, config: &Config) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let mut conn = LineConn::new(stream, config.idle);
    if !config.has(Fault::NoGreeting) && conn.send("220 wirecheck FTP reference ready").await.is_err() {
        return;
    }
    let mut session = Session::new(config, peer, local, conn.is_tls());
    // Commands that arrived during a transfer, answered after it (`None`: a line too long).
    let mut queued: VecDeque<Option<Vec<u8>>> = VecDeque::new();
    loop {
        let read = match queued.pop_front() {
            Some(line) => Ok(line),
            None if config.has(Fault::OneRecv) => conn.read_chunk().await.map(Some),
            None => conn.read_line(MAX_COMMAND_LINE, true).await.map(|line| line.map(<[u8]>::to_vec)),
        };
        let line = match read {
            Ok(line) => line,
            Err(Stop::Idle) => {
                let _ = conn.send("421 Idle timeout, closing control connection").await;
                return conn.close().await;
            }
            Err(Stop::Gone) => {
                if config.has(Fault::CrashOnDisconnect) {
                    config.crash.notify_one();
                }
                return;
            }
        };
        let action = match line {
            Some(line) => session.command(&line).await,
            None if config.has(Fault::CrashOnGarbage) => Action::Hangup,
            None => Action::Reply("500 Command line too long".to_owned()),
        };
        let transferred = matches!(action, Action::Transfer(_));
        let sent = match action {
            Action::Reply(reply) => conn.send(&reply).await,
            Action::Close(reply) => {
                if conn.send(&reply).await.is_ok() {
                    conn.close().await;
                }
                return;
            }
            Action::Transfer(job) => session.transfer(&mut conn, *job, &mut queued).await,
            Action::Hangup => return,
        };
        if sent.is_err() {
            return;
        }
        if transferred && config.has(Fault::CloseAfterTransfer) {
            return conn.close().await;
        }
    }
}

/// What a command leads to.
enum Action {
    /// A reply (lines joined by CRLF, without the last CRLF).
    Reply(String),
    /// A last reply, then the connection is closed.
    Close(String),
    /// A transfer over the data connection.
    Transfer(Box<Job>),
    /// The connection dropped without a word, as by a handler that crashed (faults only).
    Hangup,
}

/// A transfer, prepared (file opened, listing made) before the 150.
enum Job {
    Send {
        file: File,
        name: String,
        offset: u64,
    },
    Listing(Vec<u8>),
    Receive {
        file: File,
        path: PathBuf,
        /// Bytes already in the file before this upload (APPE, REST).
        before: u64,
        /// Removed again if the upload fails before it starts or is too large.
        created: bool,
    },
}

impl Job {
    fn what(&self) -> String {
        match self {
            Job::Send { name, .. } => format!("for {name}"),
            Job::Listing(_) => "for the listing".to_owned(),
            Job::Receive { path, .. } => format!("for {}", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()),
        }
    }

    /// Undoes what preparing did, when no byte could be transferred.
    async fn abandon(self) {
        if let Job::Receive {
            file, path, created: true, ..
        } = self
        {
            drop(file);
            let _ = tokio::fs::remove_file(path).await;
        }
    }
}

/// How the next data connection is to be made.
enum Data {
    None,
    /// PASV or EPSV: the client connects here.
    Passive(TcpListener),
    /// PORT or EPRT: the server connects there.
    Active(SocketAddr),
}

/// A path inside the root.
struct Place {
    /// As the client sees it, from `/`.
    shown: String,
    /// On disk: the canonical parent folder joined with the last name (so a
    /// symlink itself, not what it points to, is what DELE or RNFR acts on).
    path: PathBuf,
    /// What the path leads to, if anything (symlinks followed, and proven inside the root).
    meta: Option<std::fs::Metadata>,
}

impl Place {
    fn is_dir(&self) -> bool {
        self.meta.as_ref().is_some_and(std::fs::Metadata::is_dir)
    }

    fn is_file(&self) -> bool {
        self.meta.as_ref().is_some_and(std::fs::Metadata::is_file)
    }
}

struct Session<'a> {
    config: &'a Config,
    peer: SocketAddr,
    local: SocketAddr,
    /// The name given with USER, waiting for PASS.
    user: Option<String>,
    /// Who is logged in.
    logged_in: Option<String>,
    failures: u32,
    /// The working folder, as names below the root.
    cwd: Vec<String>,
    ascii: bool,
    data: Data,
    /// After EPSV ALL, only EPSV may set up a data connection (RFC 2428 §4).
    epsv_all: bool,
    /// The offset REST gave, until the transfer it is for.
    rest: Option<u64>,
    rename_from: Option<PathBuf>,
    /// The control connection speaks TLS (implicit FTPS).
    secure: bool,
    /// PBSZ has been accepted (RFC 4217 §9: it comes before PROT).
    pbsz: bool,
}

fn reply(text: impl Into<String>) -> Action {
    Action::Reply(text.into())
}

/// `"path"` with inner quotes doubled (RFC 959 Appendix II).
fn quoted(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

impl<'a> Session<'a> {
    fn new(config: &'a Config, peer: SocketAddr, local: SocketAddr, secure: bool) -> Self {
        Session {
            config,
            peer,
            local,
            user: None,
            logged_in: None,
            failures: 0,
            cwd: Vec::new(),
            ascii: true,
            data: Data::None,
            epsv_all: false,
            rest: None,
            rename_from: None,
            secure,
            pbsz: false,
        }
    }

    fn has(&self, fault: Fault) -> bool {
        self.config.has(fault)
    }

    /// PBSZ (RFC 2228), which over TLS carries 0 (RFC 4217 §9): 200, naming the size used.
    fn pbsz_command(&mut self, arg: &str) -> Action {
        if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
            return reply("501 Syntax: PBSZ 0");
        }
        self.pbsz = true;
        reply("200 PBSZ=0")
    }

    /// PROT (RFC 2228): only C (clear, the default until PROT, RFC 4217 §9) is served; P gets
    /// RFC 2228's 536, "Requested PROT level not supported by mechanism"; PROT before PBSZ is
    /// out of sequence (503).
    fn prot(&mut self, arg: &str) -> Action {
        if !self.pbsz {
            return reply("503 PBSZ first");
        }
        match arg.to_ascii_uppercase().as_str() {
            "C" => reply("200 Protection level set to Clear"),
            "P" | "S" | "E" => reply("536 Requested PROT level not supported by mechanism: data connections are clear"),
            _ => reply("504 PROT takes C, S, E or P"),
        }
    }

    /// Answers one command line.
    async fn command(&mut self, line: &[u8]) -> Action {
        let action = self.answer(line).await;
        match action {
            Action::Reply(text) if self.has(Fault::Errors450) && text.starts_with("550") => Action::Reply(format!("450{}", &text[3..])),
            action => action,
        }
    }

    /// Answers one command line, but for the fault `errors-450`, which rewrites the answer.
    async fn answer(&mut self, line: &[u8]) -> Action {
        // A client interrupting a transfer may send Telnet IP and Synch (RFC 959 §4.1.3) before ABOR.
        let start = line.iter().position(|b| (0x20..0x80).contains(b)).unwrap_or(line.len());
        let line = &line[start..];
        let (text, clean) = match std::str::from_utf8(line) {
            Ok(text) => (text.to_owned(), true),
            Err(_) => (String::from_utf8_lossy(line).into_owned(), false),
        };
        let (verb, arg) = text.split_once(' ').unwrap_or((&text, ""));
        let verb = if self.has(Fault::CaseSensitive) {
            verb.to_owned()
        } else {
            verb.to_ascii_uppercase()
        };
        let rename_from = self.rename_from.take();
        let no_verb = verb.is_empty() || verb.len() > 4 || !verb.bytes().all(|b| b.is_ascii_alphabetic());
        if (no_verb || !clean) && self.has(Fault::CrashOnGarbage) {
            return Action::Hangup;
        }
        if no_verb && self.has(Fault::Unknown200) {
            return reply("200 OK");
        }
        if no_verb {
            return reply("500 Unknown command");
        }
        if !clean {
            return reply("501 Arguments must be UTF-8");
        }
        // A CR or NUL in a file name would break every listing that shows it.
        if arg.chars().any(char::is_control) {
            return reply("501 Arguments may not contain control characters");
        }
        if self.has(Fault::SplitOnSpaces) && arg.contains(' ') {
            return reply("501 Too many arguments");
        }
        if self.has(Fault::TextbookOnly) && !fault::TEXTBOOK.contains(&verb.as_str()) {
            return reply(format!("502 {verb} not implemented"));
        }
        let logged_in = self.logged_in.is_some() || self.has(Fault::No530);
        match verb.as_str() {
            "USER" => self.user_command(arg),
            "PASS" => self.pass(arg),
            "QUIT" if self.has(Fault::QuitNoClose) => reply("221 Goodbye"),
            "QUIT" => Action::Close("221 Goodbye".to_owned()),
            "NOOP" => reply("200 NOOP ok"),
            "ACCT" => reply("202 ACCT not needed here"),
            "SYST" => reply("215 UNIX Type: L8"),
            // RFC 4217: a server that takes PBSZ and PROT lists them in FEAT.
            "FEAT" if self.secure => {
                reply("211-Extensions supported:\r\n EPRT\r\n EPSV\r\n MDTM\r\n PBSZ\r\n PROT\r\n REST STREAM\r\n SIZE\r\n UTF8\r\n211 End")
            }
            "FEAT" => reply("211-Extensions supported:\r\n EPRT\r\n EPSV\r\n MDTM\r\n REST STREAM\r\n SIZE\r\n UTF8\r\n211 End"),
            "PBSZ" if self.secure => self.pbsz_command(arg),
            "PROT" if self.secure => self.prot(arg),
            "OPTS" => opts(arg),
            "HELP" => reply(
                "214-The following commands are recognized:\r\n \
                 ABOR ACCT ALLO APPE CDUP CWD  DELE EPRT EPSV FEAT HELP LIST MDTM MKD\r\n \
                 MODE NLST NOOP OPTS PASS PASV PORT PWD  QUIT REST RETR RMD  RNFR RNTO\r\n \
                 SIZE STAT STOR STRU SYST TYPE USER XCUP XCWD XMKD XPWD XRMD\r\n\
                 214 Help OK",
            ),
            "REIN" | "SMNT" | "STOU" | "SITE" | "AUTH" | "PBSZ" | "PROT" | "ADAT" | "CCC" | "MIC" | "CONF" | "ENC" | "LANG" | "MLST"
            | "MLSD" | "LPRT" | "LPSV" | "HOST"
                if self.has(Fault::Unknown200) =>
            {
                reply("200 OK")
            }
            "REIN" | "SMNT" | "STOU" | "SITE" | "AUTH" | "PBSZ" | "PROT" | "ADAT" | "CCC" | "MIC" | "CONF" | "ENC" | "LANG" | "MLST"
            | "MLSD" | "LPRT" | "LPSV" | "HOST" => reply(format!("502 {verb} not implemented")),
            "CWD" | "XCWD" | "CDUP" | "XCUP" | "PWD" | "XPWD" | "TYPE" | "MODE" | "STRU" | "PASV" | "EPSV" | "PORT" | "EPRT" | "LIST"
            | "NLST" | "RETR" | "STOR" | "APPE" | "DELE" | "MKD" | "XMKD" | "RMD" | "XRMD" | "RNFR" | "RNTO" | "SIZE" | "MDTM" | "REST"
            | "STAT" | "ABOR" | "ALLO"
                if !logged_in =>
            {
                reply(NEED_LOGIN)
            }
            "CWD" | "XCWD" => self.cwd_command(arg),
            "CDUP" | "XCUP" => self.cwd_command(".."),
            "PWD" | "XPWD" => reply(format!("257 {} is the current folder", self.quoted(&shown(&self.cwd)))),
            "TYPE" => self.type_command(arg),
            "MODE" => letter(arg, "S", "BC", "MODE", self.has(Fault::NoSyntaxErrors)),
            "STRU" => letter(arg, "F", "RP", "STRU", self.has(Fault::NoSyntaxErrors)),
            "ALLO" => reply("202 ALLO not needed here"),
            "PASV" => self.passive(false, arg).await,
            "EPSV" => self.passive(true, arg).await,
            "PORT" => self.port(arg),
            "EPRT" => self.eprt(arg),
            "LIST" | "NLST" => {
                if !self.has(Fault::RestSticky) {
                    self.rest = None;
                }
                self.list(arg, verb == "NLST")
            }
            "RETR" => self.retr(arg).await,
            "STOR" | "APPE" => self.stor(arg, verb == "APPE").await,
            "DELE" => self.dele(arg).await,
            "MKD" | "XMKD" => self.mkd(arg).await,
            "RMD" | "XRMD" => self.rmd(arg).await,
            "RNFR" => self.rnfr(arg),
            "RNTO" => self.rnto(arg, rename_from).await,
            "SIZE" => self.size(arg).await,
            "MDTM" => self.mdtm(arg),
            "REST" => match arg.trim().parse::<u64>() {
                Ok(offset) => {
                    self.rest = Some(offset);
                    reply(format!("350 Restarting at {offset}. Send STOR or RETR"))
                }
                Err(_) => reply("501 REST needs a number of octets"),
            },
            "STAT" => self.stat(arg),
            "ABOR" => {
                // No transfer is running (one that is reads ABOR itself): drop a waiting setup.
                self.data = Data::None;
                reply("226 ABOR successful, no transfer in progress")
            }
            _ if self.has(Fault::Unknown200) => reply("200 OK"),
            _ => reply("500 Unknown command"),
        }
    }

    /// `"path"` as 257 replies give it, or bare with the fault `no-quotes`.
    fn quoted(&self, path: &str) -> String {
        if self.has(Fault::NoQuotes) {
            path.to_owned()
        } else {
            quoted(path)
        }
    }

    /// The REST offset for this transfer; it is used up unless the fault `rest-sticky` keeps it.
    fn take_rest(&mut self) -> Option<u64> {
        if self.has(Fault::RestSticky) {
            self.rest
        } else {
            self.rest.take()
        }
    }

    fn user_command(&mut self, arg: &str) -> Action {
        let name = arg.trim();
        if name.is_empty() && !self.has(Fault::NoSyntaxErrors) {
            return reply("501 USER needs a name");
        }
        if self.has(Fault::NoPassword) {
            self.logged_in = Some(name.to_owned());
            return reply(format!("230 User {name} logged in"));
        }
        self.logged_in = None;
        self.user = Some(name.to_owned());
        if self.is_anonymous(name) {
            reply("331 Anonymous login ok, send your email address as password")
        } else {
            reply(format!("331 Password required for {name}"))
        }
    }

    fn is_anonymous(&self, name: &str) -> bool {
        self.config.users.iter().any(|(user, password)| user == name && password.is_none())
    }

    fn pass(&mut self, password: &str) -> Action {
        if self.logged_in.is_some() {
            return reply("503 Already logged in");
        }
        let Some(name) = self.user.take() else {
            if self.has(Fault::No503) {
                return reply("530 Login incorrect");
            }
            return reply("503 Login with USER first");
        };
        let known = self
            .config
            .users
            .iter()
            .any(|(user, expected)| user == &name && expected.as_deref().is_none_or(|expected| expected == password));
        if known {
            let words = format!("230 User {name} logged in");
            self.logged_in = Some(name);
            return reply(words);
        }
        self.failures += 1;
        if self.failures >= MAX_LOGIN_FAILURES {
            return Action::Close("421 Too many failed logins, closing control connection".to_owned());
        }
        reply("530 Login incorrect")
    }

    /// Where `arg` leads from the working folder, as names below the root;
    /// `None` if it climbs above the root (with the fault `traversal`, names
    /// that climb begin with `..`).
    fn names(&self, arg: &str) -> Option<Vec<String>> {
        let mut names = if arg.starts_with('/') { Vec::new() } else { self.cwd.clone() };
        for name in arg.split('/') {
            match name {
                "" | "." => {}
                ".." if self.has(Fault::Traversal) && names.last().is_none_or(|last| last == "..") => names.push("..".to_owned()),
                ".." => {
                    names.pop()?;
                }
                name => names.push(name.to_owned()),
            }
        }
        Some(names)
    }

    /// The place `arg` names, if it is inside the root (existing or not).
    fn place(&self, arg: &str) -> Option<Place> {
        if self.has(Fault::Traversal) {
            if let Some(place) = self.escape(arg) {
                return Some(place);
            }
        }
        let names = if self.has(Fault::BasenameOnly) {
            let last = arg.rsplit('/').find(|name| !["", ".", ".."].contains(name));
            last.map(|name| vec![name.to_owned()]).unwrap_or_default()
        } else {
            self.names(arg)?
        };
        let root = &self.config.root;
        let Some((last, parents)) = names.split_last() else {
            return Some(Place {
                shown: "/".to_owned(),
                path: root.clone(),
                meta: std::fs::metadata(root).ok(),
            });
        };
        let parent = parents.iter().fold(root.clone(), |path, name| path.join(name));
        let parent = parent.canonicalize().ok().filter(|p| p.starts_with(root) && p.is_dir())?;
        let path = parent.join(last);
        let meta = match path.canonicalize() {
            Ok(target) if target.starts_with(root) => Some(std::fs::metadata(&target).ok()?),
            Ok(_) => return None,
            Err(e) if e.kind() == ErrorKind::NotFound && std::fs::symlink_metadata(&path).is_err() => None,
            // A dangling symlink among them: writing through it could create a file anywhere.
            Err(_) => return None,
        };
        Some(Place {
            shown: shown(&names),
            path,
            meta,
        })
    }

    /// Where `arg` leads when it is not confined (the fault `traversal`), if it
    /// leaves the root: an absolute path is the machine's own, and `..` climbs
    /// from the folder `root` named, as from a server serving it in place.
    fn escape(&self, arg: &str) -> Option<Place> {
        let (shown, path) = if arg.starts_with('/') {
            (arg.to_owned(), PathBuf::from(arg))
        } else {
            let names = self.names(arg)?;
            let ups = names.iter().take_while(|name| *name == "..").count();
            if ups == 0 {
                return None;
            }
            let mut base = self.config.origin.clone();
            for _ in 0..ups {
                base.pop();
            }
            (shown(&names), names[ups..].iter().fold(base, |path, name| path.join(name)))
        };
        Some(Place {
            shown,
            meta: std::fs::metadata(&path).ok(),
            path,
        })
    }

    /// The existing place `arg` names, or the reply that says why not.
    fn existing(&self, arg: &str) -> Result<Place, Action> {
        if arg.is_empty() {
            return Err(reply("501 A path is needed"));
        }
        match self.place(arg) {
            Some(place) if place.meta.is_some() => Ok(place),
            _ => Err(reply(NO_FILE)),
        }
    }

    fn cwd_command(&mut self, arg: &str) -> Action {
        if arg.is_empty() {
            return reply("501 CWD needs a path");
        }
        match (self.place(arg), self.names(arg)) {
            (Some(place), Some(names)) if place.is_dir() => {
                self.cwd = names;
                reply(format!("250 Working folder is now {}", quoted(&place.shown)))
            }
            _ => reply("550 No such folder"),
        }
    }

    fn type_command(&mut self, arg: &str) -> Action {
        let words: Vec<String> = arg.split_whitespace().map(str::to_ascii_uppercase).collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words[..] {
            ["A"] | ["A", "N"] => {
                self.ascii = !self.has(Fault::TypeSwapped);
                reply("200 Type set to A")
            }
            ["I"] => {
                self.ascii = self.has(Fault::TypeSwapped);
                reply("200 Type set to I")
            }
            _ if self.has(Fault::NoSyntaxErrors) => reply(format!("200 Type set to {}", arg.trim())),
            ["A", "T" | "C"] | ["E"] | ["E", "N" | "T" | "C"] | ["L", _] => reply("504 Only TYPE A and I are supported"),
            _ => reply("501 TYPE needs A or I"),
        }
    }

    async fn passive(&mut self, extended: bool, arg: &str) -> Action {
        let arg = arg.trim();
        if !extended && self.epsv_all {
            return reply("503 Only EPSV after EPSV ALL");
        }
        let local = self.local.ip().to_canonical();
        if extended {
            if arg.eq_ignore_ascii_case("ALL") {
                self.epsv_all = !self.has(Fault::EpsvAllIgnored);
                return reply("200 EPSV ALL ok");
            }
            let family = if local.is_ipv4() { "1" } else { "2" };
            if !arg.is_empty() && arg != family {
                return if arg == "1" || arg == "2" {
                    reply(format!("522 Network protocol not supported, use ({family})"))
                } else {
                    reply("501 EPSV takes 1, 2 or ALL")
                };
            }
        } else if !arg.is_empty() {
            return reply("501 PASV takes no arguments");
        }
        if !extended && !local.is_ipv4() {
            return reply("425 PASV is IPv4 only, use EPSV");
        }
        self.listen(local, extended).await
    }

    async fn listen(&mut self, ip: IpAddr, extended: bool) -> Action {
        self.data = Data::None;
        let Some(listener) = bind_data(ip, self.config.pasv_ports).await else {
            return reply("425 Cannot open a passive data port");
        };
        let Ok(addr) = listener.local_addr() else {
            return reply("425 Cannot open a passive data port");
        };
        self.data = Data::Passive(listener);
        let port = addr.port();
        match (extended, ip) {
            (true, _) if self.has(Fault::EpsvBarePort) => reply(format!("229 Entering Extended Passive Mode ({port})")),
            (true, _) => reply(format!("229 Entering Extended Passive Mode (|||{port}|)")),
            (false, IpAddr::V4(v4)) => {
                let [a, b, c, d] = v4.octets();
                reply(format!("227 Entering Passive Mode ({a},{b},{c},{d},{},{})", port >> 8, port & 0xff))
            }
            (false, IpAddr::V6(_)) => reply("425 PASV is IPv4 only, use EPSV"),
        }
    }

    fn port(&mut self, arg: &str) -> Action {
        if self.epsv_all {
            return reply("503 Only EPSV after EPSV ALL");
        }
        let numbers: Option<Vec<u8>> = arg.trim().split(',').map(|n| n.trim().parse::<u8>().ok()).collect();
        let Some([a, b, c, d, high, low]) = numbers.as_deref().and_then(|n| <[u8; 6]>::try_from(n).ok()) else {
            if self.has(Fault::NoSyntaxErrors) {
                return reply("200 PORT command successful");
            }
            return reply("501 PORT needs h1,h2,h3,h4,p1,p2");
        };
        let addr = SocketAddr::from(([a, b, c, d], u16::from_be_bytes([high, low])));
        self.active(addr, "200 PORT command successful")
    }

    fn eprt(&mut self, arg: &str) -> Action {
        if self.epsv_all {
            return reply("503 Only EPSV after EPSV ALL");
        }
        let arg = arg.trim();
        if self.has(Fault::NoSyntaxErrors) {
            // The fault: the address and port are read wherever they are, the rest unchecked.
            let fields: Vec<&str> = arg.split(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != ':').collect();
            let ip = fields.iter().find_map(|f| f.parse::<IpAddr>().ok());
            let port = fields.iter().rev().find_map(|f| f.parse::<u16>().ok());
            if let (Some(ip), Some(port)) = (ip, port) {
                return self.active(SocketAddr::new(ip, port), "200 EPRT command successful");
            }
            return reply("200 EPRT command successful");
        }
        let Some(delimiter) = arg.chars().next().filter(|c| ('!'..='~').contains(c)) else {
            return reply("501 EPRT needs |protocol|address|port|");
        };
        let fields: Vec<&str> = arg.split(delimiter).collect();
        let ["", protocol, address, port, ""] = fields[..] else {
            return reply("501 EPRT needs |protocol|address|port|");
        };
        let ip: IpAddr = match (protocol, address.parse()) {
            ("1", Ok(ip @ IpAddr::V4(_))) | ("2", Ok(ip @ IpAddr::V6(_))) => ip,
            ("1" | "2", _) => return reply("501 EPRT address does not match its protocol"),
            _ => return reply("522 Network protocol not supported, use (1,2)"),
        };
        let Ok(port) = port.parse::<u16>() else {
            return reply("501 EPRT port must be a number up to 65535");
        };
        self.active(SocketAddr::new(ip, port), "200 EPRT command successful")
    }

    /// RFC 2577 §3: a data connection only to the client itself, and not to a privileged port.
    fn active(&mut self, addr: SocketAddr, ok: &str) -> Action {
        if self.has(Fault::PortIgnored) {
            return reply(ok);
        }
        self.data = Data::None;
        let checked = !self.has(Fault::BounceAllowed);
        if checked && addr.ip().to_canonical() != self.peer.ip().to_canonical() {
            return reply("504 Data connections go only to the client's own address");
        }
        if checked && addr.port() < 1024 {
            return reply("504 Data connections go only to ports from 1024 up");
        }
        self.data = Data::Active(addr);
        reply(ok)
    }

    fn list(&mut self, arg: &str, names_only: bool) -> Action {
        // `ls` options some clients send (LIST -la): accepted and ignored.
        let path = arg
            .split(' ')
            .skip_while(|word| word.starts_with('-'))
            .collect::<Vec<_>>()
            .join(" ");
        let place = match path.as_str() {
            _ if self.has(Fault::ListIgnoresPath) => self.place("."),
            "" => self.place("."),
            path => self.place(path),
        };
        let Some(place) = place.filter(|p| p.meta.is_some()) else {
            return reply(NO_FILE);
        };
        if self.has(Fault::ListFoldersOnly) && !place.is_dir() {
            return reply("550 Not a folder");
        }
        let lines = match self.entries(&place) {
            Ok(lines) => lines,
            Err(error) => return error,
        };
        let mut listing = Vec::new();
        for (name, meta) in lines {
            let line = if names_only { name } else { long_line(&name, &meta) };
            listing.extend_from_slice(line.as_bytes());
            listing.extend_from_slice(b"\r\n");
        }
        Action::Transfer(Box::new(Job::Listing(listing)))
    }

    /// The entries of a folder, by name (or the one file), with what each leads to;
    /// entries that lead outside the root are left out.
    fn entries(&self, place: &Place) -> Result<Vec<(String, std::fs::Metadata)>, Action> {
        let Some(meta) = &place.meta else {
            return Err(reply(NO_FILE));
        };
        if !meta.is_dir() {
            let name = place.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            return Ok(vec![(name, meta.clone())]);
        }
        let Ok(read) = std::fs::read_dir(&place.path) else {
            return Err(reply("550 Cannot read the folder"));
        };
        let mut entries = Vec::new();
        for entry in read.flatten().take(MAX_LISTING) {
            let path = entry.path();
            let inside = path.canonicalize().is_ok_and(|target| target.starts_with(&self.config.root));
            if let (true, Ok(meta)) = (inside, std::fs::metadata(&path)) {
                entries.push((entry.file_name().to_string_lossy().into_owned(), meta));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    async fn retr(&mut self, arg: &str) -> Action {
        let offset = match self.take_rest() {
            Some(offset) if self.has(Fault::RestOffByOne) => offset + 1,
            offset => offset.unwrap_or(0),
        };
        let place = match self.existing(arg) {
            Ok(place) => place,
            Err(error) => return error,
        };
        if !place.is_file() {
            return reply("550 Not a plain file");
        }
        match File::open(&place.path).await {
            Ok(file) => Action::Transfer(Box::new(Job::Send {
                file,
                name: place.shown,
                offset,
            })),
            Err(_) => reply("550 Cannot open the file"),
        }
    }

    async fn stor(&mut self, arg: &str, append: bool) -> Action {
        let offset = self.take_rest().unwrap_or(0);
        // The fault `appe-overwrites`: APPE opens the file for writing from its start, not creating it.
        let overwrite = append && self.has(Fault::AppeOverwrites);
        let append = append && !overwrite;
        if !self.config.writable {
            return reply(READ_ONLY);
        }
        if arg.is_empty() {
            return reply("501 A path is needed");
        }
        let Some(place) = self.place(arg) else {
            return reply("553 File name not allowed");
        };
        if place.meta.as_ref().is_some_and(|m| !m.is_file()) || place.path == self.config.root {
            return reply("553 Not a plain file");
        }
        let existed = place.meta.is_some();
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create(!overwrite);
        if append {
            options.append(true);
        } else if offset == 0 && !overwrite && !self.has(Fault::StorNoTruncate) {
            options.truncate(true);
        }
        let Ok(mut file) = options.open(&place.path).await else {
            return reply("553 Cannot create the file");
        };
        let before = if append {
            file.metadata().await.map(|m| m.len()).unwrap_or(0)
        } else {
            offset
        };
        if !append && offset > 0 && file.seek(std::io::SeekFrom::Start(offset)).await.is_err() {
            return reply("554 Cannot restart at that offset");
        }
        if before > self.config.max_file_size {
            return reply("552 The file is already at the size limit");
        }
        Action::Transfer(Box::new(Job::Receive {
            file,
            path: place.path,
            before,
            created: !existed,
        }))
    }

    async fn dele(&mut self, arg: &str) -> Action {
        if !self.config.writable {
            return reply(READ_ONLY);
        }
        if self.has(Fault::DeleIgnored) {
            return reply(format!("250 Deleted {arg}"));
        }
        let place = match self.existing(arg) {
            Ok(place) => place,
            Err(error) => return error,
        };
        if place.is_dir() {
            return reply("550 A folder: use RMD");
        }
        match tokio::fs::remove_file(&place.path).await {
            Ok(()) => reply(format!("250 Deleted {}", place.shown)),
            Err(_) => reply("550 Cannot delete the file"),
        }
    }

    async fn mkd(&mut self, arg: &str) -> Action {
        if !self.config.writable {
            return reply(READ_ONLY);
        }
        if arg.is_empty() {
            return reply("501 A path is needed");
        }
        let Some(place) = self.place(arg) else {
            return reply("550 Folder name not allowed");
        };
        if place.meta.is_some() || place.path == self.config.root {
            return reply("550 Already exists");
        }
        match tokio::fs::create_dir(&place.path).await {
            Ok(()) => reply(format!("257 {} created", self.quoted(&place.shown))),
            Err(_) => reply("550 Cannot create the folder"),
        }
    }

    async fn rmd(&mut self, arg: &str) -> Action {
        if !self.config.writable {
            return reply(READ_ONLY);
        }
        if self.has(Fault::RmdRmtree) {
            if let Some(place) = self.place(arg).filter(|place| place.path != self.config.root) {
                let _ = tokio::fs::remove_dir_all(&place.path).await;
            }
            return reply(format!("250 Removed {arg}"));
        }
        let place = match self.existing(arg) {
            Ok(place) => place,
            Err(error) => return error,
        };
        if !place.is_dir() || place.path == self.config.root {
            return reply("550 Not a folder that can be removed");
        }
        if self.place(".").is_some_and(|cwd| cwd.path.starts_with(&place.path)) {
            return reply("550 The working folder is inside it");
        }
        match tokio::fs::remove_dir(&place.path).await {
            Ok(()) => reply(format!("250 Removed {}", place.shown)),
            Err(_) => reply("550 Cannot remove the folder (is it empty?)"),
        }
    }

    fn rnfr(&mut self, arg: &str) -> Action {
        if !self.config.writable {
            return reply(READ_ONLY);
        }
        if self.has(Fault::RnfrNo350) {
            self.rename_from = self.place(arg).map(|place| place.path);
            return reply("250 Ready for RNTO");
        }
        let place = match self.existing(arg) {
            Ok(place) => place,
            Err(error) => return error,
        };
        if place.path == self.config.root {
            return reply("550 The root cannot be renamed");
        }
        self.rename_from = Some(place.path);
        reply("350 Ready for RNTO")
    }

    async fn rnto(&mut self, arg: &str, from: Option<PathBuf>) -> Action {
        let Some(from) = from else {
            if self.has(Fault::No503) {
                return reply("550 Rename failed");
            }
            return reply("503 RNFR first");
        };
        if arg.is_empty() {
            return reply("501 A path is needed");
        }
        let Some(to) = self.place(arg) else {
            return reply("553 File name not allowed");
        };
        if to.meta.is_some() || to.path == self.config.root {
            return reply("553 Already exists");
        }
        if to.path.starts_with(&from) {
            return reply("553 A folder cannot move into itself");
        }
        match tokio::fs::rename(&from, &to.path).await {
            Ok(()) => reply(format!("250 Renamed to {}", to.shown)),
            Err(_) => reply("550 Cannot rename"),
        }
    }

    async fn size(&self, arg: &str) -> Action {
        let place = match self.existing(arg) {
            Ok(place) => place,
            Err(error) => return error,
        };
        let Some(meta) = place.meta.as_ref().filter(|m| m.is_file()) else {
            return reply("550 Not a plain file");
        };
        if !self.ascii && !self.has(Fault::SizeAscii) {
            return reply(format!("213 {}", meta.len()));
        }
        match ascii_size(&place.path).await {
            Some(size) => reply(format!("213 {size}")),
            None => reply("550 Cannot read the file"),
        }
    }

    fn mdtm(&self, arg: &str) -> Action {
        let place = match self.existing(arg) {
            Ok(place) => place,
            Err(error) => return error,
        };
        let Some(meta) = place.meta.as_ref().filter(|m| m.is_file()) else {
            return reply("550 Not a plain file");
        };
        let (year, month, day, hour, minute, second) = civil(mtime(meta));
        reply(format!("213 {year:04}{month:02}{day:02}{hour:02}{minute:02}{second:02}"))
    }

    fn stat(&self, arg: &str) -> Action {
        if arg.trim().is_empty() {
            let user = self.logged_in.as_deref().unwrap_or("nobody");
            let kind = if self.ascii { "ASCII" } else { "BINARY (IMAGE)" };
            let data = match self.data {
                Data::None => "No data connection set up",
                Data::Passive(_) => "Passive data port open",
                Data::Active(_) => "Active data connection set up",
            };
            return reply(format!(
                "211-FTP server status:\r\n Connected from {}\r\n Logged in as {user}\r\n TYPE: {kind}; STRU: File; MODE: Stream\r\n {data}\r\n211 End of status",
                self.peer.ip()
            ));
        }
        let place = match self.existing(arg.trim_start_matches("-la ").trim_start_matches("-l ")) {
            Ok(place) => place,
            Err(error) => return error,
        };
        let code = if place.is_dir() { 212 } else { 213 };
        let entries = match self.entries(&place) {
            Ok(entries) => entries,
            Err(error) => return error,
        };
        let mut text = format!("{code}-Status of {}:\r\n", place.shown);
        for (name, meta) in entries {
            // A leading space keeps a line from looking like the reply's last (RFC 959 §4.2).
            text.push(' ');
            text.push_str(&long_line(&name, &meta));
            text.push_str("\r\n");
        }
        text.push_str(&format!("{code} End of status"));
        reply(text)
    }

    /// Runs a transfer: 150, the data connection, then 226 (or why not).
    async fn transfer(&mut self, conn: &mut LineConn, job: Job, queued: &mut VecDeque<Option<Vec<u8>>>) -> Result<(), Stop> {
        let setup = std::mem::replace(&mut self.data, Data::None);
        if matches!(setup, Data::None) {
            job.abandon().await;
            if self.config.has(Fault::No425) {
                return Err(Stop::Gone);
            }
            return conn.send("425 Use PORT, PASV, EPRT or EPSV first").await;
        }
        let mode = if self.ascii { "ASCII" } else { "BINARY" };
        conn.send(&format!("150 Opening {mode} mode data connection {}", job.what()))
            .await?;
        let (client, ascii, config) = (self.peer.ip(), self.ascii, self.config);
        // Watched from the 150 on, so an ABOR also ends the wait for a data connection.
        let work = async move {
            let Some(data) = open_data(setup, client, config.data_timeout).await else {
                job.abandon().await;
                return "425 Cannot open data connection".to_owned();
            };
            run_job(data, job, ascii, config).await
        };
        let words = watch_control(conn, work, queued).await?;
        conn.send(&words).await
    }
}

/// `/a/b` for the names `[a, b]`.
fn shown(names: &[String]) -> String {
    format!("/{}", names.join("/"))
}

/// RFC 2389 §4: OPTS takes a command name and that command's options.
fn opts(arg: &str) -> Action {
    let words: Vec<String> = arg.split_whitespace().map(str::to_ascii_uppercase).collect();
    match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["UTF8", "ON"] | ["UTF8"] => reply("200 Always in UTF8 mode"),
        ["UTF8", ..] => reply("501 Only OPTS UTF8 ON"),
        [] => reply("501 OPTS needs a command name"),
        _ => reply("501 No options for that command"),
    }
}

/// MODE and STRU: the one letter supported, the letters known but not supported (504), or 501;
/// any letter is taken when `unchecked` (the fault `no-syntax-errors`).
fn letter(arg: &str, supported: &str, known: &str, command: &str, unchecked: bool) -> Action {
    let arg = arg.trim().to_ascii_uppercase();
    if arg == supported || unchecked {
        reply(format!("200 {command} set to {arg}"))
    } else if arg.len() == 1 && known.contains(&arg) {
        reply(format!("504 Only {command} {supported} is supported"))
    } else {
        reply(format!("501 {command} needs one letter"))
    }
}

/// A passive data listener on `ip`: any free port, or one from `range`.
async fn bind_data(ip: IpAddr, range: Option<(u16, u16)>) -> Option<TcpListener> {
    let Some((low, high)) = range else {
        return TcpListener::bind((ip, 0)).await.ok();
    };
    let count = u32::from(high - low) + 1;
    // Starting somewhere random spreads sessions over the range.
    let first = fastrand::u32(0..count);
    for step in 0..count {
        let port = low as u32 + (first + step) % count;
        if let Ok(listener) = TcpListener::bind((ip, port as u16)).await {
            return Some(listener);
        }
    }
    None
}

/// Makes the data connection: accepts the client's (only from `client`), or connects to it.
async fn open_data(setup: Data, client: IpAddr, wait: Duration) -> Option<TcpStream> {
    let deadline = Instant::now() + wait;
    match setup {
        Data::None => None,
        Data::Active(addr) => timeout(wait, TcpStream::connect(addr)).await.ok()?.ok(),
        Data::Passive(listener) => loop {
            let (stream, from) = tokio::time::timeout_at(deadline, listener.accept()).await.ok()?.ok()?;
            // RFC 2577 §3: a connection from anyone else could steal the file.
            if from.ip().to_canonical() == client.to_canonical() {
                return Some(stream);
            }
        },
    }
}

/// Runs `work` while reading the control connection: ABOR stops it (426,
/// then 226); other commands wait in `queued` until it ends. The words are
/// the final reply.
async fn watch_control(
    conn: &mut LineConn,
    work: impl Future<Output = String>,
    queued: &mut VecDeque<Option<Vec<u8>>>,
) -> Result<String, Stop> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            words = &mut work => return Ok(words),
            line = conn.read_line(MAX_COMMAND_LINE, true), if queued.len() < MAX_QUEUED => match line {
                Ok(Some(line)) if is_abor(line) => {
                    return Ok("426 Connection closed; transfer aborted\r\n226 ABOR successful".to_owned());
                }
                Ok(line) => queued.push_back(line.map(<[u8]>::to_vec)),
                // A quiet control connection is normal during a long transfer.
                Err(Stop::Idle) => {}
                Err(Stop::Gone) => return Err(Stop::Gone),
            },
        }
    }
}

fn is_abor(line: &[u8]) -> bool {
    let start = line.iter().position(|b| (0x20..0x80).contains(b)).unwrap_or(line.len());
    line[start..].trim_ascii().eq_ignore_ascii_case(b"ABOR")
}

/// Moves the bytes of `job` over `data`; the reply that ends the transfer.
async fn run_job(mut data: TcpStream, job: Job, ascii: bool, config: &Config) -> String {
    let idle = config.idle;
    match job {
        Job::Listing(listing) => match timeout(idle, data.write_all(&listing)).await {
            Ok(Ok(())) => finish(data).await,
            _ => "426 Connection closed; transfer aborted".to_owned(),
        },
        Job::Send { file, offset, .. } => send_file(data, file, offset, ascii, idle).await,
        Job::Receive {
            file,
            path,
            before,
            created,
        } => {
            let limit = config.max_file_size.saturating_sub(before);
            let words = receive_file(&mut data, file, limit, ascii, idle).await;
            if words.starts_with("552") && created {
                let _ = tokio::fs::remove_file(&path).await;
            }
            words
        }
    }
}

/// Closes the data connection, which marks the end of the file (RFC 959 §3.3), then says so.
async fn finish(mut data: TcpStream) -> String {
    let _ = data.shutdown().await;
    drop(data);
    "226 Transfer complete".to_owned()
}

async fn send_file(mut data: TcpStream, mut file: File, offset: u64, ascii: bool, idle: Duration) -> String {
    // In TYPE A the offset still counts octets of the file, not of what is sent.
    if offset > 0 && file.seek(std::io::SeekFrom::Start(offset)).await.is_err() {
        return "451 Cannot seek to the restart offset".to_owned();
    }
    let mut buf = vec![0u8; CHUNK];
    let mut out = Vec::with_capacity(if ascii { CHUNK * 2 } else { 0 });
    let mut after_cr = false;
    loop {
        let n = match file.read(&mut buf).await {
            Ok(0) => return finish(data).await,
            Ok(n) => n,
            Err(_) => return "451 Local error reading the file".to_owned(),
        };
        let bytes = if ascii {
            out.clear();
            after_cr = to_crlf(&buf[..n], after_cr, &mut out);
            &out[..]
        } else {
            &buf[..n]
        };
        if !matches!(timeout(idle, data.write_all(bytes)).await, Ok(Ok(()))) {
            return "426 Connection closed; transfer aborted".to_owned();
        }
    }
}

async fn receive_file(data: &mut TcpStream, mut file: File, limit: u64, ascii: bool, idle: Duration) -> String {
    let mut buf = vec![0u8; CHUNK];
    let mut out = Vec::with_capacity(CHUNK);
    let mut held_cr = false;
    let mut written: u64 = 0;
    loop {
        let n = match timeout(idle, data.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return "426 Connection closed; transfer aborted".to_owned(),
        };
        out.clear();
        if ascii {
            held_cr = to_lf(&buf[..n], held_cr, n == 0, &mut out);
        } else {
            out.extend_from_slice(&buf[..n]);
        }
        written += out.len() as u64;
        if written > limit {
            return "552 Exceeded the storage allocation (max_file_size)".to_owned();
        }
        if file.write_all(&out).await.is_err() {
            return "451 Local error writing the file".to_owned();
        }
        if n == 0 {
            return match file.flush().await {
                Ok(()) => "226 Transfer complete".to_owned(),
                Err(_) => "451 Local error writing the file".to_owned(),
            };
        }
    }
}

/// TYPE A out: a bare LF becomes CRLF. `after_cr`: the previous chunk ended in CR.
fn to_crlf(bytes: &[u8], mut after_cr: bool, out: &mut Vec<u8>) -> bool {
    for &byte in bytes {
        if byte == b'\n' && !after_cr {
            out.push(b'\r');
        }
        out.push(byte);
        after_cr = byte == b'\r';
    }
    after_cr
}

/// TYPE A in: CRLF becomes LF; a lone CR stays. A CR ending a chunk is held
/// back (`held`) until the next shows whether LF follows; `last` flushes it.
fn to_lf(bytes: &[u8], mut held: bool, last: bool, out: &mut Vec<u8>) -> bool {
    for &byte in bytes {
        if held && byte != b'\n' {
            out.push(b'\r');
        }
        held = false;
        if byte == b'\r' {
            held = true;
        } else {
            out.push(byte);
        }
    }
    if held && last {
        out.push(b'\r');
        held = false;
    }
    held
}

/// What RETR sends of `path` in TYPE A.
async fn ascii_size(path: &Path) -> Option<u64> {
    let mut file = File::open(path).await.ok()?;
    let mut buf = vec![0u8; CHUNK];
    let mut size: u64 = 0;
    let mut after_cr = false;
    loop {
        let n = file.read(&mut buf).await.ok()?;
        if n == 0 {
            return Some(size);
        }
        for &byte in &buf[..n] {
            size += if byte == b'\n' && !after_cr { 2 } else { 1 };
            after_cr = byte == b'\r';
        }
    }
}

/// Seconds since the epoch (negative before it) of the last modification.
fn mtime(meta: &std::fs::Metadata) -> i64 {
    match meta.modified().unwrap_or(UNIX_EPOCH).duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// (year, month, day, hour, minute, second) in UTC of `secs` since the epoch
/// (the proleptic Gregorian calendar, after Howard Hinnant's `civil_from_days`).
fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The permission bits `ls -l` shows.
#[cfg(unix)]
fn mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode()
}

/// The permission bits `ls -l` shows, made up from what the platform tells.
#[cfg(not(unix))]
fn mode(meta: &std::fs::Metadata) -> u32 {
    let read_write = if meta.permissions().readonly() { 0o444 } else { 0o644 };
    if meta.is_dir() {
        read_write | 0o111
    } else {
        read_write
    }
}

/// One `ls -l` line: type and mode, links, owner, group, size, date, name.
fn long_line(name: &str, meta: &std::fs::Metadata) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mode = mode(meta);
    let mut kind = String::with_capacity(10);
    kind.push(if meta.is_dir() { 'd' } else { '-' });
    for (bit, letter) in [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o40, 'r'),
        (0o20, 'w'),
        (0o10, 'x'),
        (0o4, 'r'),
        (0o2, 'w'),
        (0o1, 'x'),
    ] {
        kind.push(if mode & bit != 0 { letter } else { '-' });
    }
    let modified = mtime(meta);
    let (year, month, day, hour, minute, _) = civil(modified);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let month = MONTHS[(month - 1) as usize];
    let when = if (now - modified).abs() < HALF_YEAR {
        format!("{month} {day:>2} {hour:02}:{minute:02}")
    } else {
        format!("{month} {day:>2}  {year}")
    };
    format!("{kind} 1 ftp ftp {:>10} {when} {name}", meta.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings() {
        let mut out = Vec::new();
        let cr = to_crlf(b"a\nb\r\nc\r", false, &mut out);
        assert!(cr);
        to_crlf(b"\nd\n", cr, &mut out);
        assert_eq!(out, b"a\r\nb\r\nc\r\nd\r\n");

        let mut out = Vec::new();
        let held = to_lf(b"a\r\nb\r", false, false, &mut out);
        assert!(held);
        let held = to_lf(b"\nc\rd\r", held, false, &mut out);
        to_lf(b"", held, true, &mut out);
        assert_eq!(out, b"a\nb\nc\rd\r");
    }

    #[test]
    fn dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil(1_700_000_000), (2023, 11, 14, 22, 13, 20));
        assert_eq!(civil(-1), (1969, 12, 31, 23, 59, 59));
    }

    #[test]
    fn options() {
        assert_eq!(parse_ports("50000-50010"), Ok((50000, 50010)));
        assert!(parse_ports("80-90").is_err());
        assert!(parse_ports("6000-5000").is_err());
        assert_eq!(parse_bool("true"), Ok(true));
        assert!(parse_bool("yes").is_err());
    }

    #[test]
    fn abor_with_telnet_bytes() {
        assert!(is_abor(b"\xff\xf4\xff\xf2ABOR"));
        assert!(is_abor(b"abor "));
        assert!(!is_abor(b"ABORT"));
    }
}
