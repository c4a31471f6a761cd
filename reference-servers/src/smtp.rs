//! `smtp`: an SMTP server (RFC 5321) that delivers to the local mail store,
//! the oracle for the `smtp` suite and the textbook's "Sample SMTP interaction":
//!
//! ```text
//! S: 220 hamburger.edu ESMTP wirecheck
//! C: HELO crepes.fr
//! S: 250 hamburger.edu Hello crepes.fr, pleased to meet you
//! C: MAIL FROM: <alice@crepes.fr>
//! S: 250 alice@crepes.fr... Sender ok
//! C: RCPT TO: <bob@hamburger.edu>
//! S: 250 bob@hamburger.edu ... Recipient ok
//! C: DATA
//! S: 354 Enter mail, end with "." on a line by itself
//! C: Do you like ketchup?
//! C: How about pickles?
//! C: .
//! S: 250 Message accepted for delivery
//! C: QUIT
//! S: 221 hamburger.edu closing connection
//! ```
//!
//! Choices where RFC 5321 leaves room, made for the strict side so that a
//! suite proven against this server does not pass a sloppy one:
//! - MAIL before HELO/EHLO is 503; paths need their angle brackets (a space
//!   after the colon is tolerated, as in the slides); MAIL parameters need EHLO;
//! - no relaying: a recipient outside `domain` or not in `passwd` is 550, and
//!   so is one without a domain, except `<postmaster>` (§4.5.1 requires it);
//! - DATA without recipients is 503; the message ends only at CRLF.CRLF (a
//!   bare LF is kept as part of the line); a line over 1000 octets (§4.5.3.1.6)
//!   or a message over `max_size` is read to its end, then refused (500, 552);
//! - command lines may end in CRLF or a bare LF and are limited to 512 octets;
//! - an idle connection gets `421` and is closed; so does a command or message
//!   incomplete `line_timeout` after its first byte, and the idlest connection
//!   when a newcomer finds `max_connections` open (see `guard`); a dropped one
//!   delivers nothing of the transaction it was in.
//!
//! Option `with=pop3,imap` starts those servers too, on 127.0.0.1 and sharing
//! this server's store: SMTP in, POP3 or IMAP out. They get this server's TLS
//! options too.
//!
//! TLS (see `tls`): `tls=implicit` is SMTPS (RFC 8314), TLS from the first byte;
//! `tls=starttls` offers STARTTLS (RFC 3207) in the EHLO reply of the clear-text
//! session, and `require_tls=yes` then answers 530 to every command but NOOP,
//! EHLO, STARTTLS and QUIT until the client has started TLS (RFC 3207 §4).
//!
//! The `fault` option switches on deliberate bugs (`FAULTS`), so the harness can
//! prove that its cases catch them; none is ever on in a real run.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

use crate::guard::{self, Goodbye, Limits, Reason, Stream};
use crate::tls::{self, Offer, ServerTls};

use crate::maildir::{self, Store};
use crate::{parse_count, parse_duration, Error, OptionSet, Options, RunningServer, Transport};

/// The name suites and the CLI use for this server.
pub(crate) const NAME: &str = "smtp";
/// `fault`: deliberate bugs for proving the suite (see `FAULTS`); none by default.
const OPTIONS: &[&str] = &[
    "seed",
    "maildir",
    "idle",
    "domain",
    "max_size",
    "greeting_delay",
    "with",
    "fault",
    guard::OPTIONS[0],
    guard::OPTIONS[1],
    tls::OPTIONS[0],
    tls::OPTIONS[1],
    tls::OPTIONS[2],
    tls::REQUIRE,
];
/// RFC 5321 §4.5.3.1.4: a command line, CRLF included.
const MAX_COMMAND_LINE: usize = 512;
/// RFC 5321 §4.5.3.1.6: a text line, CRLF included.
const MAX_TEXT_LINE: usize = 1000;
/// RFC 5321 §4.5.3.1.8: the recipients a server must accept at least.
const MAX_RECIPIENTS: usize = 100;
/// The most `max_size` may be, since a message is kept in memory until it is delivered.
const LARGEST_MAX_SIZE: u64 = 256 << 20;
/// See `tcp_upper::LINGER`.
const LINGER: Duration = Duration::from_secs(1);

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `no-unstuff`: data lines are stored without removing the leading "." of dot-stuffing.
    NoUnstuff,
    /// `starttls-runs-pipelined`: commands that arrived in clear text after STARTTLS, before
    /// the handshake, are executed after it (the command injection of CVE-2011-0411).
    StartTlsRunsPipelined,
    /// `starttls-again`: STARTTLS is still advertised after TLS began, and a second one is
    /// answered 220 (the session then goes on, reset, without a second handshake).
    StartTlsAgain,
    /// `starttls-keeps-ehlo`: the EHLO from before STARTTLS still counts after it, so MAIL
    /// is accepted without a new EHLO.
    StartTlsKeepsEhlo,
}

/// Each fault's name, as the `fault` option takes it.
const FAULTS: &[(&str, Fault)] = &[
    ("no-unstuff", Fault::NoUnstuff),
    ("starttls-runs-pipelined", Fault::StartTlsRunsPipelined),
    ("starttls-again", Fault::StartTlsAgain),
    ("starttls-keeps-ehlo", Fault::StartTlsKeepsEhlo),
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

/// What every connection needs to know.
#[derive(Debug)]
struct Config {
    domain: String,
    max_size: u64,
    idle: Duration,
    greeting_delay: Duration,
    store: Store,
    /// Deliberate bugs (see `FAULTS`).
    faults: Faults,
    /// TLS, implicit or offered with STARTTLS.
    tls: Option<ServerTls>,
}

/// What the server task owns besides its listener. Fields drop in order:
/// the bundled servers stop before their shared temporary store is removed.
struct Keep {
    _bundled: Vec<RunningServer>,
    _temporary: Option<tempfile::TempDir>,
}

/// Checks the options, opens the store, binds, starts any bundled servers, and starts serving.
pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let idle = opts.get("idle", "60s", parse_duration)?;
    let mut limits = Limits::from_options(&opts)?;
    let domain = opts.get("domain", "hamburger.edu", parse_domain)?;
    let max_size = opts.get("max_size", "10485760", |v| parse_count(v, 1, LARGEST_MAX_SIZE))?;
    let greeting_delay = opts.get("greeting_delay", "0ms", parse_delay)?;
    let with = opts.get("with", "", parse_with)?;
    let faults = opts.get("fault", "", parse_faults)?;
    let tls = tls::server_options(&opts, Offer::Mail, &[])?;
    limits.implicit_tls = ServerTls::implicit(tls.as_ref());
    let (store, temporary) = maildir::open(&opts)?;

    let server_socket = TcpListener::bind(bind).await?;
    let local_addr = server_socket.local_addr()?;
    let mut bundled = Vec::new();
    let mut extra_addrs = Vec::new();
    for name in with {
        let Some(maildir) = store.root().to_str() else {
            return Err(Error::BadOption {
                server: NAME.to_owned(),
                key: "with".to_owned(),
                value: name.to_owned(),
                why: format!("the store's path {} is not UTF-8, so it cannot be shared", store.root().display()),
            });
        };
        let mut shared = Options::from([("maildir".to_owned(), maildir.to_owned())]);
        for key in tls::OPTIONS.into_iter().chain([tls::REQUIRE]) {
            if let Some(value) = opts.given(key) {
                shared.insert(key.to_owned(), value.to_owned());
            }
        }
        let server = start_bundled(name, shared).await?;
        extra_addrs.push((name.to_owned(), server.local_addr()));
        bundled.push(server);
    }
    let keep = Keep {
        _bundled: bundled,
        _temporary: temporary,
    };
    let config = Arc::new(Config {
        domain,
        max_size,
        idle,
        greeting_delay,
        store,
        faults,
        tls,
    });
    let server = async move {
        serve(server_socket, config, limits).await;
        drop(keep);
    };
    Ok(RunningServer::spawn_with_extras(local_addr, Transport::Tcp, extra_addrs, server))
}

/// Starts server `name` on 127.0.0.1 with `opts`, through the registry, so
/// that this module does not depend on the IMAP server's.
///
/// `start_server` is what calls `start`, so its future would contain itself:
/// the box breaks the cycle, and doing it in a separate function with a
/// declared `Send` type keeps the compiler from having to prove `start`'s
/// future `Send` while it is still working out what that future is.
fn start_bundled(name: &'static str, opts: Options) -> Pin<Box<dyn Future<Output = Result<RunningServer, Error>> + Send>> {
    Box::pin(async move { crate::start_server(name, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), &opts).await })
}

/// A host name: letters, digits, `-` and `.`.
pub(crate) fn parse_domain(text: &str) -> Result<String, String> {
    let ok = !text.is_empty() && text.len() <= 255 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok {
        Ok(text.to_owned())
    } else {
        Err("expected a domain name such as hamburger.edu".to_owned())
    }
}

/// Like `parse_duration`, but zero (`0ms`, `0s`) is allowed.
fn parse_delay(text: &str) -> Result<Duration, String> {
    let number = text.trim().trim_end_matches(['m', 's']);
    if number.trim().parse::<f64>() == Ok(0.0) && text.trim() != number {
        return Ok(Duration::ZERO);
    }
    parse_duration(text)
}

/// `pop3`, `imap` or both, comma-separated.
fn parse_with(text: &str) -> Result<Vec<&'static str>, String> {
    let mut names = Vec::new();
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let name = match part {
            "pop3" => "pop3",
            "imap" => "imap",
            _ => return Err("expected a comma-separated list of pop3 and imap".to_owned()),
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Serves every connection within `limits` (see `guard`).
async fn serve(server_socket: TcpListener, config: Arc<Config>, limits: Limits) {
    let goodbye = goodbye(config.domain.clone());
    guard::serve(server_socket, limits, goodbye, move |stream, peer| {
        let config = config.clone();
        async move { handle(stream, peer.ip(), &config).await }
    })
    .await;
}

/// RFC 5321 §3.8: a server that must close says 421 first ("Service not
/// available, closing transmission channel"), and a client treats it as a
/// temporary failure; the text says which limit was hit.
fn goodbye(domain: String) -> Goodbye {
    Arc::new(move |reason| {
        let why = match reason {
            Reason::Slow => "Command or message not completed in time",
            Reason::Evicted => "Too many connections; this one was idle longest",
            Reason::Busy => "Too many connections, try again later",
        };
        Some(format!("421 {domain} Service not available, closing transmission channel: {why}\r\n").into_bytes())
    })
}

/// One SMTP session, from greeting to QUIT (or a drop, or an idle timeout).
async fn handle(stream: Stream, peer: IpAddr, config: &Config) {
    let mut conn = LineConn::new(stream, config.idle);
    if !config.greeting_delay.is_zero() {
        tokio::time::sleep(config.greeting_delay).await;
    }
    if conn.send(&format!("220 {} ESMTP wirecheck", config.domain)).await.is_err() {
        return;
    }
    let mut session = Session {
        config,
        peer,
        helo: None,
        mail: None,
        tls: conn.is_tls(),
    };
    loop {
        let reply = match conn.read_line(MAX_COMMAND_LINE, true).await {
            Ok(Some(line)) => {
                let line = line.to_vec();
                match session.command(&line) {
                    Step::Reply(reply) => reply,
                    Step::Data(reply) => {
                        if conn.send(&reply).await.is_err() {
                            return;
                        }
                        match receive_data(&mut conn, config.max_size, config.faults.has(Fault::NoUnstuff)).await {
                            Ok(data) => session.finish_data(data).await,
                            Err(stop) => return idle_or_gone(conn, stop, config).await,
                        }
                    }
                    Step::StartTls(reply) => {
                        if conn.send(&reply).await.is_err() {
                            return;
                        }
                        if !session.tls {
                            let Some(tls) = ServerTls::starttls(config.tls.as_ref()) else {
                                return; // unreachable: STARTTLS is answered 220 only when offered
                            };
                            // RFC 3207 §4.2: "The server MUST discard any knowledge obtained from
                            // the client ... which was not obtained from the TLS negotiation
                            // itself." Commands pipelined behind STARTTLS were sent in clear text
                            // before the handshake: they are dropped, never run over TLS (the
                            // command injection of CVE-2011-0411), unless the fault keeps them.
                            let keep = config.faults.has(Fault::StartTlsRunsPipelined);
                            if conn.start_tls(&tls.acceptor, keep).await.is_err() {
                                return; // a failed handshake: nothing more can be said
                            }
                        }
                        session.secured();
                        continue;
                    }
                    Step::Quit(reply) => {
                        if conn.send(&reply).await.is_ok() {
                            conn.close().await;
                        }
                        return;
                    }
                }
            }
            Ok(None) => "500 Line too long".to_owned(),
            Err(stop) => return idle_or_gone(conn, stop, config).await,
        };
        if conn.send(&reply).await.is_err() {
            return;
        }
    }
}

/// RFC 5321 §4.5.3.2: a server that gives up on an idle client says 421 first.
async fn idle_or_gone(mut conn: LineConn, stop: Stop, config: &Config) {
    if stop == Stop::Idle
        && conn
            .send(&format!("421 {} Idle timeout, closing connection", config.domain))
            .await
            .is_ok()
    {
        conn.close().await;
    }
}

/// The message text after DATA, or why it will not be delivered.
enum Data {
    Message(Vec<u8>),
    LineTooLong,
    TooBig,
}

/// Reads the message up to CRLF.CRLF, removing the dot-stuffing (RFC 5321 §4.5.2).
async fn receive_data(conn: &mut LineConn, max_size: u64, keep_stuffing: bool) -> Result<Data, Stop> {
    let mut message = Vec::new();
    let mut size: u64 = 0;
    let mut line_too_long = false;
    loop {
        let Some(line) = conn.read_line(MAX_TEXT_LINE, false).await? else {
            line_too_long = true;
            continue;
        };
        if line == b"." {
            break;
        }
        let line = if keep_stuffing {
            line
        } else {
            line.strip_prefix(b".").unwrap_or(line)
        };
        size += line.len() as u64 + 2;
        // Past the limit the rest is only read, so that the reply lands after the terminator.
        if size <= max_size {
            message.extend_from_slice(line);
            message.extend_from_slice(b"\r\n");
        }
    }
    Ok(if size > max_size {
        Data::TooBig
    } else if line_too_long {
        Data::LineTooLong
    } else {
        Data::Message(message)
    })
}

/// The client's HELO or EHLO.
#[derive(Debug)]
struct Helo {
    name: String,
    extended: bool,
}

/// A mail transaction: MAIL, then RCPTs.
#[derive(Debug)]
struct Mail {
    recipients: Vec<String>,
}

/// What the connection does after a command.
enum Step {
    Reply(String),
    /// Send this 354, then read the message.
    Data(String),
    /// Send this 221, then close.
    Quit(String),
    /// Send this 220, then the TLS handshake (RFC 3207 §4).
    StartTls(String),
}

struct Session<'a> {
    config: &'a Config,
    peer: IpAddr,
    helo: Option<Helo>,
    mail: Option<Mail>,
    /// The connection speaks TLS.
    tls: bool,
}

impl Session<'_> {
    fn has(&self, fault: Fault) -> bool {
        self.config.faults.has(fault)
    }

    /// STARTTLS is offered here and now: configured, and TLS not begun (RFC 3207 §4.2: "A
    /// server MUST NOT return the STARTTLS extension in response to an EHLO command received
    /// after a TLS handshake has completed.").
    fn offers_starttls(&self) -> bool {
        ServerTls::starttls(self.config.tls.as_ref()).is_some() && (!self.tls || self.has(Fault::StartTlsAgain))
    }

    /// RFC 3207 §4: a server that requires TLS "SHOULD return the reply code 530 Must issue a
    /// STARTTLS command first to every command other than NOOP, EHLO, STARTTLS, or QUIT".
    fn needs_tls_first(&self, verb: &str) -> bool {
        let required = ServerTls::starttls(self.config.tls.as_ref()).is_some_and(|tls| tls.require);
        required && !self.tls && !matches!(verb, "NOOP" | "EHLO" | "STARTTLS" | "QUIT")
    }

    /// RFC 3207 §4 STARTTLS, up to the 220.
    fn starttls(&mut self, args: &str) -> Step {
        let reply = if self.tls && !self.has(Fault::StartTlsAgain) {
            // RFC 3207 §4.2: STARTTLS is not offered once TLS is active, so a second is out of
            // sequence; so is one on an implicit-TLS (SMTPS) connection.
            "503 TLS already active"
        } else if ServerTls::starttls(self.config.tls.as_ref()).is_none() {
            "502 Command not implemented"
        } else if !args.is_empty() {
            // RFC 3207 §4: STARTTLS takes no parameters; the reply it names is this one.
            "501 Syntax error (no parameters allowed)"
        } else {
            return Step::StartTls("220 Ready to start TLS".to_owned());
        };
        Step::Reply(reply.to_owned())
    }

    /// After the handshake (RFC 3207 §4.2): "the SMTP protocol is reset to the initial state
    /// (the state in SMTP after a server issues a 220 service ready greeting). The server MUST
    /// discard any knowledge obtained from the client, such as the argument to the EHLO
    /// command, which was not obtained from the TLS negotiation itself."
    fn secured(&mut self) {
        self.tls = true;
        self.mail = None;
        if !self.has(Fault::StartTlsKeepsEhlo) {
            self.helo = None;
        }
    }

    /// Answers one command line (without its line ending).
    fn command(&mut self, line: &[u8]) -> Step {
        let text = String::from_utf8_lossy(line);
        let (verb, args) = text.split_once(' ').unwrap_or((&text, ""));
        let args = args.trim();
        let verb = verb.to_ascii_uppercase();
        if self.needs_tls_first(&verb) {
            return Step::Reply("530 Must issue a STARTTLS command first".to_owned());
        }
        let reply = match verb.as_str() {
            "HELO" => self.helo(args, false),
            "EHLO" => self.helo(args, true),
            "MAIL" => self.mail(args),
            "RCPT" => self.rcpt(args),
            "DATA" => return self.data(args),
            "STARTTLS" => return self.starttls(args),
            "RSET" if args.is_empty() => {
                self.mail = None;
                "250 OK".to_owned()
            }
            "RSET" => "501 Syntax: RSET".to_owned(),
            "NOOP" => "250 OK".to_owned(),
            "VRFY" => self.vrfy(args),
            "HELP" => "214 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT".to_owned(),
            "QUIT" if args.is_empty() => return Step::Quit(format!("221 {} closing connection", self.config.domain)),
            "QUIT" => "501 Syntax: QUIT".to_owned(),
            "EXPN" | "TURN" | "SEND" | "SOML" | "SAML" => "502 Command not implemented".to_owned(),
            _ => "500 Command unrecognized".to_owned(),
        };
        Step::Reply(reply)
    }

    /// RFC 5321 §4.1.1.1; a second HELO/EHLO also resets the transaction.
    fn helo(&mut self, args: &str, extended: bool) -> String {
        if args.is_empty() || args.contains(char::is_whitespace) {
            return format!("501 Syntax: {} hostname", if extended { "EHLO" } else { "HELO" });
        }
        let name: String = args.chars().map(|c| if c.is_ascii_graphic() { c } else { '?' }).collect();
        let domain = &self.config.domain;
        let reply = if extended {
            let starttls = if self.offers_starttls() { "250-STARTTLS\r\n" } else { "" };
            format!(
                "250-{domain} greets {name}\r\n250-SIZE {}\r\n250-8BITMIME\r\n250-PIPELINING\r\n{starttls}250 HELP",
                self.config.max_size
            )
        } else {
            format!("250 {domain} Hello {name}, pleased to meet you")
        };
        self.helo = Some(Helo { name, extended });
        self.mail = None;
        reply
    }

    /// RFC 5321 §4.1.1.2, with RFC 1870 SIZE and RFC 6152 BODY.
    fn mail(&mut self, args: &str) -> String {
        let Some(helo) = &self.helo else {
            return "503 Send HELO or EHLO first".to_owned();
        };
        if self.mail.is_some() {
            return "503 Sender already specified".to_owned();
        }
        let Some((path, params)) = split_path(args, "FROM:") else {
            return "501 Syntax: MAIL FROM:<address>".to_owned();
        };
        if !path.is_empty() && mailbox(path).is_none() {
            return "501 Syntax: MAIL FROM:<address>".to_owned();
        }
        for param in params.split_whitespace() {
            if !helo.extended {
                return format!("555 {param} needs EHLO");
            }
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            match key.to_ascii_uppercase().as_str() {
                "SIZE" => match value.parse::<u64>() {
                    Ok(size) if size > self.config.max_size => {
                        return "552 Message size exceeds fixed maximum message size".to_owned();
                    }
                    Ok(_) => {}
                    Err(_) => return "501 Syntax: SIZE=<octets>".to_owned(),
                },
                "BODY" if value.eq_ignore_ascii_case("7BIT") || value.eq_ignore_ascii_case("8BITMIME") => {}
                "BODY" => return "501 Syntax: BODY=7BIT or BODY=8BITMIME".to_owned(),
                _ => return format!("555 Unsupported parameter {param}"),
            }
        }
        self.mail = Some(Mail { recipients: Vec::new() });
        let shown = if path.is_empty() { "<>" } else { path };
        format!("250 {shown}... Sender ok")
    }

    /// RFC 5321 §4.1.1.3: local accounts only, no relaying.
    fn rcpt(&mut self, args: &str) -> String {
        let Some(mail) = &mut self.mail else {
            return "503 Need MAIL before RCPT".to_owned();
        };
        let Some((path, params)) = split_path(args, "TO:") else {
            return "501 Syntax: RCPT TO:<address>".to_owned();
        };
        if let Some(param) = params.split_whitespace().next() {
            return format!("555 Unsupported parameter {param}");
        }
        let config = self.config;
        let account = if path.eq_ignore_ascii_case("postmaster") {
            config.store.postmaster()
        } else {
            let Some((local, domain)) = mailbox(path) else {
                return if path.is_empty() || path.contains(['@', ' ']) {
                    "501 Syntax: RCPT TO:<address>".to_owned()
                } else {
                    format!("550 {path}... Domain required")
                };
            };
            if !domain.eq_ignore_ascii_case(&config.domain) {
                return format!("550 {path}... Relaying denied");
            }
            config.store.account(local).or_else(|| {
                local
                    .eq_ignore_ascii_case("postmaster")
                    .then(|| config.store.postmaster())
                    .flatten()
            })
        };
        let Some(account) = account else {
            return format!("550 {path}... User unknown");
        };
        if !mail.recipients.contains(&account) {
            if mail.recipients.len() >= MAX_RECIPIENTS {
                return "452 Too many recipients".to_owned();
            }
            mail.recipients.push(account);
        }
        format!("250 {path} ... Recipient ok")
    }

    /// RFC 5321 §4.1.1.4, up to the 354.
    fn data(&mut self, args: &str) -> Step {
        let reply = if !args.is_empty() {
            "501 Syntax: DATA"
        } else if self.mail.is_none() {
            "503 Need MAIL before DATA"
        } else if self.mail.as_ref().is_some_and(|mail| mail.recipients.is_empty()) {
            "503 Need RCPT before DATA"
        } else {
            return Step::Data("354 Enter mail, end with \".\" on a line by itself".to_owned());
        };
        Step::Reply(reply.to_owned())
    }

    /// Delivers (or refuses) what DATA received; either way the transaction is over.
    async fn finish_data(&mut self, data: Data) -> String {
        let recipients = self.mail.take().map(|mail| mail.recipients).unwrap_or_default();
        let message = match data {
            Data::Message(message) => message,
            Data::TooBig => return "552 Message size exceeds fixed maximum message size".to_owned(),
            Data::LineTooLong => return "500 Line too long".to_owned(),
        };
        let (helo, protocol) = match &self.helo {
            Some(helo) => (helo.name.as_str(), if helo.extended { "ESMTP" } else { "SMTP" }),
            None => ("unknown", "SMTP"), // unreachable: DATA needs MAIL, which needs HELO
        };
        // RFC 3848: the "with" of a message received over TLS ends in S.
        let protocol = match (protocol, self.tls) {
            ("ESMTP", true) => "ESMTPS",
            (protocol, _) => protocol,
        };
        let peer = match self.peer {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("IPv6:{ip}"),
        };
        // RFC 5321 §4.4: the trace line goes first; RFC 5322 wants a numeric zone, not httpdate's "GMT".
        let date = httpdate::fmt_http_date(SystemTime::now()).replace(" GMT", " +0000");
        let received = format!(
            "Received: from {helo} ([{peer}]) by {} with {protocol}; {date}\r\n",
            self.config.domain
        );
        let mut stored = received.into_bytes();
        stored.extend_from_slice(&message);
        let store = self.config.store.clone();
        let delivered =
            tokio::task::spawn_blocking(move || recipients.iter().try_for_each(|user| store.deliver(user, &stored).map(drop))).await;
        match delivered {
            Ok(Ok(())) => "250 Message accepted for delivery".to_owned(),
            _ => "451 Requested action aborted: local error in processing".to_owned(),
        }
    }

    /// RFC 5321 §3.5.1.
    fn vrfy(&self, args: &str) -> String {
        if args.is_empty() {
            return "501 Syntax: VRFY <user>".to_owned();
        }
        let name = args.trim_start_matches('<').trim_end_matches('>');
        let local = match name.rsplit_once('@') {
            Some((local, domain)) if domain.eq_ignore_ascii_case(&self.config.domain) => local,
            Some(_) => return "550 User unknown".to_owned(),
            None => name,
        };
        match self.config.store.account(local) {
            Some(user) => format!("250 <{user}@{}>", self.config.domain),
            None => "550 User unknown".to_owned(),
        }
    }
}

/// Splits `FROM:<path> params` (or `TO:...`) into the path without its
/// brackets and the parameters. The slides' `FROM: <path>` is accepted too.
fn split_path<'t>(args: &'t str, keyword: &str) -> Option<(&'t str, &'t str)> {
    let head = args.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = args[keyword.len()..].trim_start_matches(' ');
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    let (path, params) = (&rest[..end], &rest[end + 1..]);
    if !(params.is_empty() || params.starts_with(' ')) {
        return None;
    }
    Some((path, params.trim()))
}

/// `local@domain` from a path (dropping an obsolete source route, RFC 5321 §4.1.2), if it looks like one.
fn mailbox(path: &str) -> Option<(&str, &str)> {
    let path = if path.starts_with('@') { path.split_once(':')?.1 } else { path };
    let (local, domain) = path.rsplit_once('@')?;
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b','));
    (plain(local) && plain(domain)).then_some((local, domain))
}

/// Why reading from a connection stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The client closed the connection (or it broke).
    Gone,
    /// Nothing arrived for the idle timeout.
    Idle,
}

/// A connection read line by line from one buffer, so that pipelined
/// commands are answered in order, with every read bounded in time and size.
/// POP3 reads its commands the same way.
pub(crate) struct LineConn {
    stream: Stream,
    idle: Duration,
    buf: Vec<u8>,
    /// Where the next line starts in `buf`.
    start: usize,
    /// How far `buf` has been searched for a line ending.
    scanned: usize,
    /// The line being read is already over its limit (kept here, not in
    /// `read_line`, so that a read dropped midway, as FTP does when a transfer
    /// ends, does not later serve the tail of a long line as a line of its own).
    too_long: bool,
}

impl LineConn {
    /// True once the connection speaks TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// The server's side of a TLS handshake (STARTTLS, STLS), bounded by `idle`. What was
    /// read and not used yet, which the client pipelined in clear text behind its command,
    /// is discarded (`keep`: a fault that keeps it, to run it over TLS).
    pub(crate) async fn start_tls(&mut self, acceptor: &tokio_rustls::TlsAcceptor, keep: bool) -> Result<(), Stop> {
        if !keep {
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
            self.too_long = false;
        }
        match self.stream.start_tls(acceptor, tls::handshake_limit(self.idle)).await {
            Ok(()) => Ok(()),
            Err(_) => Err(Stop::Gone),
        }
    }

    /// Wraps an accepted connection; `idle` bounds every read and write.
    pub(crate) fn new(stream: Stream, idle: Duration) -> Self {
        LineConn {
            stream,
            idle,
            buf: Vec::with_capacity(4096),
            start: 0,
            scanned: 0,
            too_long: false,
        }
    }

    /// The next line without its ending: CRLF, or also a bare LF if
    /// `bare_lf`. `None` for a line longer than `max` octets (ending
    /// included), which is read to its end and dropped.
    pub(crate) async fn read_line(&mut self, max: usize, bare_lf: bool) -> Result<Option<&[u8]>, Stop> {
        loop {
            while let Some(offset) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let lf = self.scanned + offset;
                self.scanned = lf + 1;
                let crlf = lf > self.start && self.buf[lf - 1] == b'\r';
                if !crlf && !bare_lf {
                    continue; // a bare LF inside a CRLF-terminated line
                }
                let line_start = self.start;
                self.start = lf + 1;
                if std::mem::take(&mut self.too_long) || lf + 1 - line_start > max {
                    return Ok(None);
                }
                let end = if crlf { lf - 1 } else { lf };
                return Ok(Some(&self.buf[line_start..end]));
            }
            // Everything up to here has been searched; a long line's start can move past
            // the old mark below, which must not then be left behind it.
            self.scanned = self.buf.len();
            if self.buf.len() - self.start > max {
                // Keep the last byte: it may be the CR of the CRLF that ends the line.
                self.too_long = true;
                self.start = self.buf.len() - 1;
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.scanned -= self.start;
                self.start = 0;
            }
            self.buf.reserve(8192);
            match timeout(self.idle, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Stop::Gone),
                Ok(Ok(_)) => {}
                Err(_) => return Err(Stop::Idle),
            }
        }
    }

    /// What has arrived and not been read, or else what the next read brings,
    /// without a final line ending: how a server that takes each read for a
    /// whole command sees its input (the FTP fault `one-recv`).
    pub(crate) async fn read_chunk(&mut self) -> Result<Vec<u8>, Stop> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
            self.buf.reserve(8192);
            match timeout(self.idle, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Stop::Gone),
                Ok(Ok(_)) => {}
                Err(_) => return Err(Stop::Idle),
            }
        }
        let mut chunk = self.buf.split_off(self.start);
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        while chunk.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            chunk.pop();
        }
        Ok(chunk)
    }

    /// Sends `reply` (one or more lines, CRLF-separated) and a final CRLF.
    pub(crate) async fn send(&mut self, reply: &str) -> Result<(), Stop> {
        let mut bytes = Vec::with_capacity(reply.len() + 2);
        bytes.extend_from_slice(reply.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.send_bytes(&bytes).await
    }

    /// Sends `bytes` as they are.
    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        match timeout(self.idle, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Gone),
            Err(_) => Err(Stop::Idle),
        }
    }

    /// Closes after the last reply. Unread input would make the kernel
    /// reset the connection, which can destroy that reply before the client
    /// reads it, so input is drained (bounded) until the client closes too.
    pub(crate) async fn close(mut self) {
        let _ = self.stream.shutdown().await;
        let mut rest = (&mut self.stream).take(1 << 20);
        let _ = timeout(LINGER, tokio::io::copy(&mut rest, &mut tokio::io::sink())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(split_path("FROM:<alice@crepes.fr>", "FROM:"), Some(("alice@crepes.fr", "")));
        assert_eq!(split_path("from: <alice@crepes.fr>", "FROM:"), Some(("alice@crepes.fr", "")));
        assert_eq!(split_path("FROM:<> SIZE=10", "FROM:"), Some(("", "SIZE=10")));
        assert_eq!(split_path("FROM:alice@crepes.fr", "FROM:"), None);
        assert_eq!(split_path("FROM:<a@b>x", "FROM:"), None);
        assert_eq!(split_path("TO:<a@b>", "FROM:"), None);
        assert_eq!(split_path("FRÖM:<a@b>", "FROM:"), None);
        assert_eq!(mailbox("@relay.example:bob@hamburger.edu"), Some(("bob", "hamburger.edu")));
        assert_eq!(mailbox("bob"), None);
        assert_eq!(mailbox("bob@"), None);
    }

    #[tokio::test]
    async fn a_long_line_arriving_in_pieces_is_dropped_and_the_next_one_read() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let mut conn = LineConn::new(Stream::plain(server), Duration::from_secs(5));
        let (go_on, resume) = tokio::sync::oneshot::channel::<()>();
        let writer = tokio::spawn(async move {
            // Each piece is read on its own: the line outgrows the limit between reads.
            for piece in [vec![b'x'; 3000], vec![b'x'; 3000]] {
                client.write_all(&piece).await.expect("write");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = resume.await;
            client.write_all(b"x\r\nNOOP\r\n").await.expect("write");
            client
        });
        // A read dropped midway (FTP drops one when a transfer ends) loses nothing.
        assert!(timeout(Duration::from_millis(300), conn.read_line(4096, true)).await.is_err());
        let _ = go_on.send(());
        assert_eq!(conn.read_line(4096, true).await, Ok(None));
        assert_eq!(conn.read_line(4096, true).await, Ok(Some(&b"NOOP"[..])));
        drop(writer.await);
    }

    #[test]
    fn delays() {
        assert_eq!(parse_delay("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_delay("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_delay("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_delay("0").is_err());
        assert!(parse_delay("-1s").is_err());
    }
}
