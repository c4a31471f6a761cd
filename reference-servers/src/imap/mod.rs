//! `imap`: an IMAP4rev1/IMAP4rev2 server (RFC 3501, RFC 9051) for a subset
//! of the protocol, on the mail store the SMTP and POP3 servers share
//! (`fixtures/mail/STORE-FORMAT.md`): what SMTP delivers into `new/` shows up
//! here at the next SELECT or NOOP.
//!
//! Commands: CAPABILITY, NOOP, LOGOUT, LOGIN; LIST, CREATE, DELETE, RENAME,
//! SELECT, EXAMINE, STATUS, APPEND; CHECK, CLOSE, UNSELECT, EXPUNGE,
//! [UID] FETCH, [UID] STORE, [UID] SEARCH. Literals may be synchronizing or
//! LITERAL+ (RFC 7888).
//!
//! Choices where the RFCs leave room:
//! - behaviour is IMAP4rev1's (the default of a server that offers both, RFC
//!   9051 Appendix E): `* n RECENT` and `[UNSEEN n]` on SELECT, `* SEARCH`
//!   rather than ESEARCH; there is no ENABLE, so no switching to rev2 rules;
//! - no SASL, so AUTHENTICATE is refused; LOGIN over the plain connection is
//!   allowed (and LOGINDISABLED not advertised) unless `require_tls=yes`;
//! - flags are the five that Maildir file names can hold; keywords and
//!   unknown `\` flags in STORE and APPEND are accepted and ignored, which
//!   PERMANENTFLAGS (without `\*`) announces;
//! - INTERNALDATE is the file's mtime, shown in UTC (`+0000`);
//! - FETCH FULL, BODY and BODYSTRUCTURE, numbered body sections, and the date
//!   keys of SEARCH get BAD: not supported;
//! - a message number beyond the mailbox, or `*` in an empty one, is a BAD;
//! - EXPUNGE reports numbers in ascending order, each already shifted by the
//!   ones before it (`* 3 EXPUNGE` twice for messages 3 and 4);
//! - a fetch that sets \Seen includes FLAGS only when the flags changed;
//! - APPEND stores into `cur/` with the given flags; the message is \Recent
//!   only for this session, and only if the mailbox is selected here;
//! - mailboxes below INBOX, and names outside printable ASCII or with `/`,
//!   `\`, `*`, `%`, are refused; DELETE of a mailbox with inferiors is
//!   `NO [HASCHILDREN]`;
//! - a line is at most 8 KiB, a literal at most 10 MiB: the first gets a
//!   BAD, the second a `BAD [TOOBIG]` (and, for a LITERAL+ literal whose
//!   octets are already on the way, BYE and close); a line ending in a bare
//!   LF gets a BAD; a client silent for `idle` gets `* BYE Autologout`, and so
//!   does one whose command is incomplete `line_timeout` after its first byte
//!   or the idlest one when a newcomer finds `max_connections` open (see `guard`).
//!
//! TLS (see `tls`): `tls=implicit` is IMAPS (RFC 8314), TLS from the first
//! byte; `tls=starttls` advertises STARTTLS (RFC 3501 §6.2.1, RFC 9051 §6.2.1)
//! in the not authenticated state until TLS has begun, and `require_tls=yes`
//! then advertises LOGINDISABLED and answers LOGIN and AUTHENTICATE with
//! `NO [PRIVACYREQUIRED]` until it has.
//!
//! The `fault` option switches on deliberate bugs (`fault.rs`), so the
//! harness can prove that its suite's cases catch them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::guard::{self, Goodbye, Limits, Reason, Stream};
use crate::tls::{self, Offer, ServerTls};
use crate::{parse_duration, Error, OptionSet, Options, RunningServer, Transport};

mod fault;
mod fetch;
mod mailbox;
mod message;
mod parse;
mod reply;
mod session;
mod store;
mod wire;

use fault::{Fault, Faults};
use reply::Reply;
use session::Session;
use store::Store;
use wire::{tag_of, Conn, Gone, Input};

/// The name suites and the CLI use for this server.
pub(crate) const NAME: &str = "imap";
/// `fault`: deliberate bugs for proving the suite (see `fault.rs`); none by default.
const OPTIONS: &[&str] = &[
    "idle",
    "maildir",
    "seed",
    "fault",
    guard::OPTIONS[0],
    guard::OPTIONS[1],
    tls::OPTIONS[0],
    tls::OPTIONS[1],
    tls::OPTIONS[2],
    tls::REQUIRE,
];

/// The default seed store, relative to the current directory.
const DEFAULT_SEED: &str = "fixtures/mail/store";
/// The repository's seed store, for a default seed when run from elsewhere (e.g. `cargo test`).
const CHECKOUT_SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/mail/store");

/// Checks the options, prepares the store, binds, and starts serving.
pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let idle = opts.get("idle", "60s", parse_duration)?;
    let faults = opts.get("fault", "", fault::parse)?;
    let mut limits = Limits::from_options(&opts)?;
    let tls = tls::server_options(&opts, Offer::Mail, &[])?;
    limits.implicit_tls = ServerTls::implicit(tls.as_ref());
    if faults.has(Fault::SingleClient) {
        // The fault: one slot, so the next client waits until this one leaves.
        limits.max_connections = 1;
        limits.queue = true;
    }
    // A seeded store lives exactly as long as the server task, which owns it.
    let (root, temporary) = match (opts.given("maildir"), opts.given("seed")) {
        (Some(maildir), Some(_)) => {
            return Err(Error::BadOption {
                server: NAME.to_owned(),
                key: "maildir".to_owned(),
                value: maildir.to_owned(),
                why: "maildir and seed cannot both be given".to_owned(),
            })
        }
        (Some(maildir), None) => (opts.parse("maildir", maildir, |d| directory(Path::new(d)))?, None),
        (None, seed) => {
            let seed = match seed {
                Some(seed) => opts.parse("seed", seed, |s| directory(Path::new(s)))?,
                None => directory(Path::new(DEFAULT_SEED))
                    .or_else(|_| directory(Path::new(CHECKOUT_SEED)))
                    .map_err(|why| Error::BadOption {
                        server: NAME.to_owned(),
                        key: "seed".to_owned(),
                        value: DEFAULT_SEED.to_owned(),
                        why,
                    })?,
            };
            let temporary = tempfile::Builder::new().prefix("wirecheck-imap-").tempdir()?;
            copy_tree(&seed, temporary.path())?;
            (temporary.path().canonicalize()?, Some(temporary))
        }
    };
    let store = Arc::new(Store::new(root));
    let server_socket = TcpListener::bind(bind).await?;
    let local_addr = server_socket.local_addr()?;
    let server = async move {
        serve(server_socket, store, idle, faults, tls, limits).await;
        drop(temporary);
    };
    Ok(RunningServer::spawn(local_addr, Transport::Tcp, server))
}

/// `path` made canonical, if it is a directory.
fn directory(path: &Path) -> Result<PathBuf, String> {
    let canonical = path.canonicalize().map_err(|e| format!("expected a directory: {e}"))?;
    if !canonical.is_dir() {
        return Err("expected a directory".to_owned());
    }
    Ok(canonical)
}

/// Copies directories and plain files (keeping their mtimes, i.e. INTERNALDATEs); symlinks are skipped.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
            let modified = entry.metadata()?.modified()?;
            std::fs::File::options().write(true).open(&target)?.set_modified(modified)?;
        }
    }
    Ok(())
}

/// Serves every connection within `limits` (see `guard`).
async fn serve(server_socket: TcpListener, store: Arc<Store>, idle: Duration, faults: Faults, tls: Option<ServerTls>, limits: Limits) {
    guard::serve(server_socket, limits, goodbye(), move |stream, _addr| {
        handle(stream, store.clone(), idle, faults, tls.clone())
    })
    .await;
}

/// RFC 9051 §7.1.5 (RFC 3501 §7.1.5): BYE announces an autologout, and as a
/// greeting it says the server will not take this client; the text says which.
fn goodbye() -> Goodbye {
    Arc::new(|reason| {
        let text = match reason {
            Reason::Slow => "* BYE Autologout; command not completed in time",
            Reason::Evicted => "* BYE Autologout; too many connections and this one was idle longest",
            Reason::Busy => "* BYE Too many connections, try again later",
        };
        Some(format!("{text}\r\n").into_bytes())
    })
}

/// Greets, then answers commands in order until LOGOUT, idleness, or the client going away.
async fn handle(stream: Stream, store: Arc<Store>, idle: Duration, faults: Faults, tls: Option<ServerTls>) {
    let mut session = Session::new(store, faults, tls.as_ref(), stream.is_tls());
    let mut conn = Conn::new(stream, idle, faults);
    conn.line(&format!("* OK [CAPABILITY {}] wirecheck IMAP ready", session.capabilities()));
    if conn.flush().await.is_err() {
        return;
    }
    loop {
        let command = match conn.read_command().await {
            Ok(Input::Command(command)) => command,
            Ok(Input::Refused { tag, why, fatal }) => {
                conn.line(&format!("{tag} BAD {why}"));
                if fatal {
                    conn.line("* BYE Too much data");
                    return conn.close().await;
                }
                if conn.flush().await.is_err() {
                    return;
                }
                continue;
            }
            Err(Gone::Idle) => {
                conn.line("* BYE Autologout; idle for too long");
                return conn.close().await;
            }
            Err(Gone::Closed) => return,
        };
        let Some(tag) = tag_of(&command).map(str::to_owned) else {
            if faults.has(Fault::CrashOnGarbage) {
                return; // the fault: the handler dies, dropping the connection
            }
            conn.line("* BAD Command lines start with a tag and a space");
            if conn.flush().await.is_err() {
                return;
            }
            continue;
        };
        let reply = match parse::command(&command[tag.len() + 1..], faults) {
            Ok(command) => match session.execute(&mut conn, command).await {
                Ok(reply) => reply,
                Err(_) => return,
            },
            Err(parse::Bad(why)) => Reply::Bad(why),
        };
        // Fault tag-echo: a fixed tag instead of the client's.
        let tag = if faults.has(Fault::TagEcho) { "A001".to_owned() } else { tag };
        match reply {
            Reply::Ok(text) => conn.line(&format!("{tag} OK {text}")),
            Reply::No(text) => conn.line(&format!("{tag} NO {text}")),
            Reply::Bad(text) => conn.line(&format!("{tag} BAD {text}")),
            Reply::Bye(text, ok) => {
                // Fault logout-no-bye: LOGOUT (the BYE with a tagged OK) closes without the BYE.
                if ok.is_none() || !faults.has(Fault::LogoutNoBye) {
                    conn.line(&format!("* BYE {text}"));
                }
                if let Some(ok) = ok {
                    conn.line(&format!("{tag} OK {ok}"));
                }
                return conn.close().await;
            }
            Reply::StartTls(text) => {
                conn.line(&format!("{tag} OK {text}"));
                if conn.flush().await.is_err() {
                    return;
                }
                if !session.tls() {
                    let Some(acceptor) = ServerTls::starttls(tls.as_ref()).map(|tls| tls.acceptor.clone()) else {
                        return; // unreachable: STARTTLS gets OK only when offered
                    };
                    // RFC 3501 §6.2.1: "A TLS negotiation begins immediately after the CRLF at
                    // the end of the tagged OK response from the server." What the client
                    // pipelined behind STARTTLS came in clear text before it: dropped, never run
                    // over TLS (the command injection of CVE-2011-0411), unless the fault keeps it.
                    let keep = faults.has(Fault::StartTlsRunsPipelined);
                    conn = match conn.start_tls(&acceptor, keep).await {
                        Ok(conn) => conn,
                        Err(_) => return,
                    };
                }
                session.secured();
                continue;
            }
        }
        if conn.flush().await.is_err() {
            return;
        }
    }
}
