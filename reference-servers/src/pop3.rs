//! `pop3`: a POP3 server (RFC 1939, with RFC 2449 CAPA) over the local mail
//! store, the oracle for the `pop3` suite and the slides' session:
//!
//! ```text
//! S: +OK POP3 server ready
//! C: user bob
//! S: +OK
//! C: pass hungry
//! S: +OK user successfully logged on
//! C: list
//! S: +OK 2 messages (1410 octets)
//! S: 1 498
//! S: 2 912
//! S: .
//! C: retr 1
//! S: +OK 498 octets
//! S: <message 1 contents>
//! S: .
//! C: dele 1
//! S: +OK message 1 deleted
//! C: quit
//! S: +OK POP3 server signing off
//! ```
//!
//! The maildrop is the user's INBOX: `new/` and `cur/` together, in delivery
//! order, fixed when the session logs in. Choices where the RFCs leave room:
//! - USER says `+OK` to any name, so that it does not reveal which accounts
//!   exist; a wrong password (or an unknown user) is `-ERR` and USER is needed again;
//! - the maildrop is locked for the session (`-ERR maildrop already locked`
//!   for a second one); messages are never moved from `new/` to `cur/`, so
//!   IMAP still sees them as new; only QUIT removes deleted messages;
//! - a command with arguments it does not take is `-ERR`; a line over 255
//!   octets (RFC 2449 §4) is `-ERR` and dropped; lines may end in CRLF or LF;
//! - APOP and AUTH are not offered; CAPA lists USER, TOP, UIDL, PIPELINING;
//! - an idle session is closed without a reply and without deleting anything
//!   (RFC 1939 §3 wants at least 10 minutes; `idle` defaults to 60s, as for the
//!   other reference servers, so a stuck suite does not wait that long); so is
//!   a command still incomplete `line_timeout` after its first byte, and the
//!   idlest session when a newcomer finds `max_connections` open (see `guard`).
//!
//! TLS (see `tls`): `tls=implicit` is POP3S (RFC 8314), TLS from the first byte;
//! `tls=starttls` offers STLS (RFC 2595 §4) in CAPA until TLS has begun, and
//! `require_tls=yes` then refuses USER, PASS and APOP with `-ERR` (and leaves
//! USER out of CAPA) until it has. The `fault` option switches on deliberate
//! bugs (`FAULTS`) so the harness can prove its cases catch them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::guard::{self, Goodbye, Limits, Reason, Stream};
use crate::tls::{self, Offer, ServerTls};

use crate::maildir::{self, MaildropLock, MessageFile, Store, MAX_MESSAGE_FILE};
use crate::smtp::{parse_domain, LineConn};
use crate::{parse_duration, Error, OptionSet, Options, RunningServer, Transport};

/// The name suites and the CLI use for this server.
pub(crate) const NAME: &str = "pop3";
const OPTIONS: &[&str] = &[
    "seed",
    "maildir",
    "idle",
    "domain",
    "fault",
    guard::OPTIONS[0],
    guard::OPTIONS[1],
    tls::OPTIONS[0],
    tls::OPTIONS[1],
    tls::OPTIONS[2],
    tls::REQUIRE,
];

/// RFC 2449 §4: a command line, CRLF included.
const MAX_COMMAND_LINE: usize = 255;

const WRONG_STATE: &str = "-ERR command not valid in this state";

/// One deliberate bug, for proving the suite's cases; none is ever on in a real run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `starttls-runs-pipelined`: commands that arrived in clear text after STLS, before the
    /// handshake, are executed after it (the command injection of CVE-2011-0411).
    StartTlsRunsPipelined,
    /// `starttls-again`: STLS is still in CAPA after TLS began, and a second STLS is answered
    /// `+OK` (the session then goes on without a second handshake).
    StartTlsAgain,
    /// `stls-after-login`: STLS is accepted in the TRANSACTION state too.
    StlsAfterLogin,
}

/// Each fault's name, as the `fault` option takes it.
const FAULTS: &[(&str, Fault)] = &[
    ("starttls-runs-pipelined", Fault::StartTlsRunsPipelined),
    ("starttls-again", Fault::StartTlsAgain),
    ("stls-after-login", Fault::StlsAfterLogin),
];

/// The faults switched on.
type Faults = crate::faults::Set<Fault>;

impl From<Fault> for u32 {
    fn from(f: Fault) -> u32 {
        f as u32
    }
}

/// Parses the `fault` option: fault names separated by commas.
fn parse_faults(text: &str) -> Result<Faults, String> {
    Faults::parse(text, FAULTS)
}

/// What every session shares.
struct Config {
    store: Store,
    idle: Duration,
    faults: Faults,
    tls: Option<ServerTls>,
}

/// Checks the options, opens the store, binds, and starts serving.
pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let idle = opts.get("idle", "60s", parse_duration)?;
    let mut limits = Limits::from_options(&opts)?;
    let faults = opts.get("fault", "", parse_faults)?;
    let tls = tls::server_options(&opts, Offer::Mail, &[])?;
    limits.implicit_tls = ServerTls::implicit(tls.as_ref());
    // Accepted so that one set of options fits every mail server; POP3 has no use for it.
    opts.get("domain", "hamburger.edu", parse_domain)?;
    let (store, temporary) = maildir::open(&opts)?;
    let server_socket = TcpListener::bind(bind).await?;
    let local_addr = server_socket.local_addr()?;
    let config = Arc::new(Config { store, idle, faults, tls });
    let server = async move {
        serve(server_socket, config, limits).await;
        drop(temporary);
    };
    Ok(RunningServer::spawn(local_addr, Transport::Tcp, server))
}

/// Serves every connection within `limits` (see `guard`).
async fn serve(server_socket: TcpListener, config: Arc<Config>, limits: Limits) {
    guard::serve(server_socket, limits, goodbye(), move |stream, _peer| {
        let config = config.clone();
        async move { handle(stream, &config).await }
    })
    .await;
}

/// RFC 1939 §3: when the autologout timer expires the server closes
/// "without removing any messages or sending any response to the client";
/// a connection cut for trickling a command or for being the idlest at the
/// cap is closed the same way. A newcomer turned away gets a `-ERR`
/// greeting instead of `+OK`, which is all POP3 has for "not now".
fn goodbye() -> Goodbye {
    Arc::new(|reason| match reason {
        Reason::Slow | Reason::Evicted => None,
        Reason::Busy => Some(b"-ERR too many connections, try again later\r\n".to_vec()),
    })
}

/// One POP3 session. Dropping it (connection gone, idle, server stopped)
/// releases the maildrop lock and deletes nothing.
async fn handle(stream: Stream, config: &Config) {
    let mut conn = LineConn::new(stream, config.idle);
    if conn.send("+OK POP3 server ready").await.is_err() {
        return;
    }
    let mut session = Session {
        store: &config.store,
        config,
        user: None,
        maildrop: None,
        tls: conn.is_tls(),
    };
    loop {
        let (reply, after) = match conn.read_line(MAX_COMMAND_LINE, true).await {
            Ok(Some(line)) => {
                let line = line.to_vec();
                session.command(&line).await
            }
            Ok(None) => (b"-ERR line too long\r\n".to_vec(), After::Next),
            Err(_) => return,
        };
        if conn.send_bytes(&reply).await.is_err() {
            return;
        }
        match after {
            After::Next => {}
            After::Quit => return conn.close().await,
            After::StartTls => {
                if !session.tls {
                    let Some(tls) = ServerTls::starttls(config.tls.as_ref()) else {
                        return; // unreachable: STLS gets +OK only when offered
                    };
                    // RFC 2595 §4: "A TLS negotiation begins immediately after the CRLF at the
                    // end of the +OK response from the server." Whatever the client pipelined
                    // behind STLS came in clear text before it: dropped, never run over TLS
                    // (the command injection of CVE-2011-0411), unless the fault keeps it.
                    let keep = config.faults.has(Fault::StartTlsRunsPipelined);
                    if conn.start_tls(&tls.acceptor, keep).await.is_err() {
                        return;
                    }
                }
                session.secured();
            }
        }
    }
}

/// What the connection does after sending a reply.
enum After {
    /// Read the next command.
    Next,
    /// Close.
    Quit,
    /// The TLS handshake (STLS).
    StartTls,
}

/// The TRANSACTION state's view of the maildrop.
struct Maildrop {
    _lock: MaildropLock,
    messages: Vec<Entry>,
}

struct Entry {
    file: MessageFile,
    deleted: bool,
}

struct Session<'a> {
    store: &'a Store,
    config: &'a Config,
    /// The connection speaks TLS.
    tls: bool,
    /// The name given with USER (AUTHORIZATION state).
    user: Option<String>,
    /// Set once logged in: the TRANSACTION state.
    maildrop: Option<Maildrop>,
}

/// A single-line reply.
fn line(text: &str) -> Vec<u8> {
    format!("{text}\r\n").into_bytes()
}

impl Session<'_> {
    fn has(&self, fault: Fault) -> bool {
        self.config.faults.has(fault)
    }

    /// STLS is offered: configured, and TLS not begun.
    fn offers_stls(&self) -> bool {
        ServerTls::starttls(self.config.tls.as_ref()).is_some() && (!self.tls || self.has(Fault::StartTlsAgain))
    }

    /// `require_tls=yes` and TLS not begun: no password goes in clear text.
    fn refuses_clear_text(&self) -> bool {
        ServerTls::starttls(self.config.tls.as_ref()).is_some_and(|tls| tls.require) && !self.tls
    }

    /// RFC 2449 §5 CAPA, with STLS (RFC 2595 §4) while it is offered and allowed (AUTHORIZATION state).
    fn capa(&self) -> Vec<u8> {
        let mut reply = b"+OK Capability list follows\r\n".to_vec();
        if !self.refuses_clear_text() {
            reply.extend_from_slice(b"USER\r\n");
        }
        reply.extend_from_slice(b"TOP\r\nUIDL\r\nPIPELINING\r\n");
        if self.offers_stls() && (self.maildrop.is_none() || self.has(Fault::StlsAfterLogin)) {
            reply.extend_from_slice(b"STLS\r\n");
        }
        reply.extend_from_slice(b"IMPLEMENTATION wirecheck\r\n.\r\n");
        reply
    }

    /// RFC 2595 §4 STLS: "Arguments: none. Restrictions: Only permitted in AUTHORIZATION state."
    fn stls(&self, args: &[&str], logged_in: bool) -> (Vec<u8>, After) {
        let reply = if ServerTls::starttls(self.config.tls.as_ref()).is_none() {
            "-ERR unknown command"
        } else if !args.is_empty() {
            "-ERR STLS takes no arguments"
        } else if logged_in && !self.has(Fault::StlsAfterLogin) {
            WRONG_STATE
        } else if self.tls && !self.has(Fault::StartTlsAgain) {
            // RFC 2595 §4: "A -ERR response MAY result if a security layer is already active."
            "-ERR TLS already active"
        } else {
            return (line("+OK Begin TLS negotiation"), After::StartTls);
        };
        (line(reply), After::Next)
    }

    /// After the handshake: the session stays in (or goes back to) its first state. Once TLS
    /// has begun the client "MUST discard cached information about server capabilities"
    /// (RFC 2595 §4), and a USER given in clear text is forgotten as well.
    fn secured(&mut self) {
        self.tls = true;
        self.user = None;
    }

    /// Answers one command line, and says what the connection does next.
    async fn command(&mut self, text: &[u8]) -> (Vec<u8>, After) {
        let text = String::from_utf8_lossy(text);
        let (verb, rest) = text.split_once(' ').unwrap_or((&text, ""));
        let args: Vec<&str> = rest.split_whitespace().collect();
        let verb = verb.to_ascii_uppercase();
        let logged_in = self.maildrop.is_some();
        let reply = match (verb.as_str(), logged_in) {
            ("CAPA", _) if args.is_empty() => self.capa(),
            ("CAPA" | "QUIT", _) if !args.is_empty() => line("-ERR too many arguments"),
            ("QUIT", false) => return (line("+OK POP3 server signing off"), After::Quit),
            ("QUIT", true) => return (self.update(), After::Quit),
            ("STLS", _) => return self.stls(&args, logged_in),
            ("USER" | "PASS" | "APOP", false) if self.refuses_clear_text() => line("-ERR TLS required first: use STLS"),
            ("USER", false) => self.user_command(&args),
            // RFC 1939 §7: the one argument of PASS may contain spaces.
            ("PASS", false) => self.pass(rest),
            ("APOP", false) => line("-ERR APOP not supported"),
            ("USER" | "PASS" | "APOP", true) => line(WRONG_STATE),
            ("STAT" | "LIST" | "RETR" | "TOP" | "DELE" | "NOOP" | "RSET" | "UIDL", false) => line(WRONG_STATE),
            (_, true) => match &mut self.maildrop {
                Some(maildrop) => transaction(maildrop, &verb, &args).await,
                None => line(WRONG_STATE),
            },
            (_, false) => line("-ERR unknown command"),
        };
        (reply, After::Next)
    }

    fn user_command(&mut self, args: &[&str]) -> Vec<u8> {
        let [name] = args else {
            return line("-ERR usage: USER name");
        };
        self.user = Some((*name).to_owned());
        line("+OK")
    }

    /// RFC 1939 §7 PASS; on success the session enters TRANSACTION.
    fn pass(&mut self, password: &str) -> Vec<u8> {
        // Whatever happens next, a new attempt starts with USER again.
        let Some(user) = self.user.take() else {
            return line("-ERR USER first");
        };
        if !self.store.check_password(&user, password) {
            return line("-ERR invalid password");
        }
        let Some(lock) = self.store.lock(&user) else {
            return line("-ERR maildrop already locked");
        };
        let Ok(files) = self.store.list_inbox(&user) else {
            return line("-ERR unable to open maildrop");
        };
        let messages = files.into_iter().map(|file| Entry { file, deleted: false }).collect();
        self.maildrop = Some(Maildrop { _lock: lock, messages });
        line("+OK user successfully logged on")
    }

    /// RFC 1939 §6: removes the messages marked deleted, then releases the
    /// lock before the reply, so a client that reads the reply can log in again.
    fn update(&mut self) -> Vec<u8> {
        let Some(maildrop) = self.maildrop.take() else {
            return line("+OK POP3 server signing off");
        };
        let failed = maildrop
            .messages
            .iter()
            .filter(|entry| entry.deleted)
            .filter(|entry| match std::fs::remove_file(&entry.file.path) {
                Ok(()) => false,
                // Removed by someone else (IMAP's EXPUNGE, say): gone is what was asked for.
                Err(e) => e.kind() != std::io::ErrorKind::NotFound,
            })
            .count();
        drop(maildrop);
        if failed == 0 {
            line("+OK POP3 server signing off")
        } else {
            line(&format!("-ERR {failed} deleted messages not removed"))
        }
    }
}

/// The TRANSACTION state's commands (RFC 1939 §5 and TOP, UIDL of §7).
async fn transaction(maildrop: &mut Maildrop, verb: &str, args: &[&str]) -> Vec<u8> {
    let messages = &mut maildrop.messages;
    let live = || messages.iter().enumerate().filter(|(_, entry)| !entry.deleted);
    match (verb, args) {
        ("STAT", []) => {
            let (count, octets) = live().fold((0, 0), |(n, total), (_, entry)| (n + 1, total + entry.file.size));
            line(&format!("+OK {count} {octets}"))
        }
        ("LIST", []) => {
            let (count, octets) = live().fold((0, 0), |(n, total), (_, entry)| (n + 1, total + entry.file.size));
            let mut reply = line(&format!("+OK {count} messages ({octets} octets)"));
            for (index, entry) in live() {
                reply.extend_from_slice(format!("{} {}\r\n", index + 1, entry.file.size).as_bytes());
            }
            reply.extend_from_slice(b".\r\n");
            reply
        }
        ("LIST", [k]) => match find(messages, k) {
            Ok((n, entry)) => line(&format!("+OK {n} {}", entry.file.size)),
            Err(error) => error,
        },
        ("UIDL", []) => {
            let mut reply = line("+OK unique-id listing follows");
            for (index, entry) in live() {
                reply.extend_from_slice(format!("{} {}\r\n", index + 1, entry.file.unique).as_bytes());
            }
            reply.extend_from_slice(b".\r\n");
            reply
        }
        ("UIDL", [k]) => match find(messages, k) {
            Ok((n, entry)) => line(&format!("+OK {n} {}", entry.file.unique)),
            Err(error) => error,
        },
        ("RETR", [k]) => match find(messages, k) {
            Ok((_, entry)) => match read_message(&entry.file).await {
                Some(message) => {
                    let mut reply = line(&format!("+OK {} octets", entry.file.size));
                    stuff(&message, &mut reply);
                    reply
                }
                None => line("-ERR message is no longer available"),
            },
            Err(error) => error,
        },
        ("TOP", [k, lines]) => {
            let Ok(lines) = lines.parse::<usize>() else {
                return line("-ERR usage: TOP msg n, with n a number of lines");
            };
            match find(messages, k) {
                Ok((_, entry)) => match read_message(&entry.file).await {
                    Some(message) => {
                        let mut reply = line("+OK top of message follows");
                        stuff(top(&message, lines), &mut reply);
                        reply
                    }
                    None => line("-ERR message is no longer available"),
                },
                Err(error) => error,
            }
        }
        ("DELE", [k]) => match find(messages, k) {
            Ok((n, _)) => {
                messages[n - 1].deleted = true;
                line(&format!("+OK message {n} deleted"))
            }
            Err(error) => error,
        },
        ("NOOP", []) => line("+OK"),
        ("RSET", []) => {
            messages.iter_mut().for_each(|entry| entry.deleted = false);
            let octets: u64 = messages.iter().map(|entry| entry.file.size).sum();
            line(&format!("+OK maildrop has {} messages ({octets} octets)", messages.len()))
        }
        ("STAT" | "LIST" | "UIDL" | "RETR" | "TOP" | "DELE" | "NOOP" | "RSET", _) => line("-ERR wrong number of arguments"),
        _ => line("-ERR unknown command"),
    }
}

/// The message numbered `k` (1-based), if it exists and is not marked deleted.
fn find<'m>(messages: &'m [Entry], k: &str) -> Result<(usize, &'m Entry), Vec<u8>> {
    if k.is_empty() || k.len() > 9 || !k.bytes().all(|b| b.is_ascii_digit()) {
        return Err(line("-ERR invalid message number"));
    }
    let n: usize = k.parse().map_err(|_| line("-ERR invalid message number"))?;
    match n.checked_sub(1).and_then(|i| messages.get(i)) {
        Some(entry) if entry.deleted => Err(line(&format!("-ERR message {n} already deleted"))),
        Some(entry) => Ok((n, entry)),
        None => Err(line("-ERR no such message")),
    }
}

async fn read_message(file: &MessageFile) -> Option<Vec<u8>> {
    if file.size > MAX_MESSAGE_FILE {
        return None;
    }
    tokio::fs::read(&file.path).await.ok()
}

/// The header section, the blank line after it, and the first `lines` lines
/// of the body (RFC 1939 §7 TOP). A message without a blank line is all header.
fn top(message: &[u8], lines: usize) -> &[u8] {
    let body_start = if message.starts_with(b"\r\n") {
        2
    } else {
        match message.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(blank) => blank + 4,
            None => return message,
        }
    };
    let mut end = body_start;
    for _ in 0..lines {
        match message[end..].windows(2).position(|w| w == b"\r\n") {
            Some(crlf) => end += crlf + 2,
            None => return message,
        }
    }
    &message[..end]
}

/// Appends `message` byte-stuffed (RFC 1939 §3: a line starting with "."
/// gets another), ending in CRLF, then the terminating ".".
fn stuff(message: &[u8], out: &mut Vec<u8>) {
    out.reserve(message.len() + message.len() / 64 + 5);
    let mut line_start = true;
    let mut previous = 0u8;
    for &byte in message {
        if line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        line_start = previous == b'\r' && byte == b'\n';
        previous = byte;
    }
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuffed(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        stuff(message, &mut out);
        out
    }

    #[test]
    fn byte_stuffing() {
        assert_eq!(stuffed(b".a\r\nb\r\n.\r\n"), b"..a\r\nb\r\n..\r\n.\r\n");
        assert_eq!(stuffed(b"a\n.b"), b"a\n.b\r\n.\r\n");
        assert_eq!(stuffed(b""), b".\r\n");
    }

    #[test]
    fn top_lines() {
        let message = b"A: 1\r\nB: 2\r\n\r\none\r\ntwo\r\nthree";
        assert_eq!(top(message, 0), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(top(message, 2), b"A: 1\r\nB: 2\r\n\r\none\r\ntwo\r\n");
        assert_eq!(top(message, 3), message);
        assert_eq!(top(message, 99), message);
        assert_eq!(top(b"A: 1\r\n", 1), b"A: 1\r\n");
        assert_eq!(top(b"\r\nbody\r\n", 0), b"\r\n");
    }
}
