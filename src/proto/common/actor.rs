//! Actors: peers the harness plays by rules instead of by script (a DNS hierarchy, an HTTP
//! origin). A suite declares them once (`actors:`); a case starts them (`serve:`), each on its own
//! address, and asserts over what they saw (`saw:`). A protocol offers an actor through
//! [`crate::proto::Protocol::actor`]: a key (`dns:`), a parser for its declaration, the faults a
//! case may switch on, and `start`, which binds and serves until the case drops the handle.
//!
//! Actors answer whatever arrives, in any order, any number of times: that is what lets a suite
//! accept every legal behaviour of a client (priming queries, retries, parallel queries) while it
//! still judges the outcome.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::proto::codec::{Direction, Transport};
use crate::syntax::{LoadCx, Node};

/// Where an actor writes what it saw and sent: the runner records it into the case's dialogue, so
/// actor traffic shows in transcripts, captures and reports like any connection.
pub trait ActorLog: Send + Sync {
    /// A new conversation with `peer` (a TCP connection, or the first datagram from a UDP peer);
    /// returns its id.
    fn open(&self, transport: Transport, local: SocketAddr, peer: SocketAddr) -> usize;
    /// Bytes that went one way on conversation `conv`.
    fn data(&self, conv: usize, dir: Direction, bytes: &[u8]);
    /// The conversation ended (TCP): the peer closed it, or the actor after it did.
    fn closed(&self, conv: usize);
    /// The peer reset the conversation (TCP: it closed with the actor's bytes unread), which the
    /// wire shows as a reset, not a FIN.
    fn reset(&self, conv: usize) {
        self.closed(conv)
    }
    /// The actor ended the conversation on its own (an FTP server after QUIT or its 421): what
    /// the wire shows is the actor's FIN (or a reset, when the peer's bytes were still unread).
    fn closed_by_actor(&self, conv: usize) {
        self.closed(conv)
    }
    /// The peer broke a rule the actor checks (an HTTP/2 client's MUST): `text` says which, with
    /// the rule and the fix. The case fails with it even when every step held.
    fn violation(&self, conv: usize, text: &str) {
        let _ = (conv, text);
    }
    /// Something the actor noticed that may explain a failure without breaking a rule itself (a
    /// download stalled on the peer's flow-control window): shown only when the case fails.
    fn hint(&self, conv: usize, text: &str) {
        let _ = (conv, text);
    }
    /// A conversation in another protocol than the actor's own (an FTP data connection carries
    /// raw bytes), opened by the peer or, with `actor_connected`, by the actor; `saw:` does not
    /// count its messages.
    fn open_other(&self, transport: Transport, local: SocketAddr, peer: SocketAddr, protocol: &str, actor_connected: bool) -> usize {
        let _ = (protocol, actor_connected);
        self.open(transport, local, peer)
    }
    /// TLS began on conversation `conv` (`--tls`): what the handshake settled.
    fn tls(&self, conv: usize, handshake: &str) {
        let _ = (conv, handshake);
    }
    /// A figure the actor measured on conversation `conv` (see `EventKind::Figure`): a sample of a
    /// series over time, or (`series` false) a total so far.
    fn figure(&self, conv: usize, name: &str, value: f64, series: bool) {
        let _ = (conv, name, value, series);
    }
    /// A file the peer handed over (an FTP upload): the runner keeps it in the case's folder as
    /// `ACTOR/NAME`, where `expect_file` finds it. `name` is a plain file name.
    fn stored(&self, name: &str, bytes: &[u8]) {
        let _ = (name, bytes);
    }
}

/// A declared actor, ready to start (one per `actors:` entry; shared by every case).
pub trait ActorSpec: std::fmt::Debug + Send + Sync {
    /// Transports it serves on its address (a DNS server: both).
    fn transports(&self) -> &'static [Transport];
    /// The port its protocol's servers listen on (53, 80): used in a private network namespace,
    /// where a program under test may reach its peers with its stock settings.
    fn well_known_port(&self) -> u16;
    /// Starts serving on `addr` with the named `faults` switched on; sockets are already bound.
    /// The returned handle stops every task when dropped.
    fn start(&self, sockets: Bound, faults: &[String], log: Arc<dyn ActorLog>) -> ActorHandle;
    /// Starts serving with a case's own options too (`serve: { with: { NAME: {...} } }`, parsed
    /// by [`ActorKind::options`]); an actor without options starts as [`ActorSpec::start`] does.
    fn start_with(&self, sockets: Bound, faults: &[String], options: Option<&ActorOptions>, log: Arc<dyn ActorLog>) -> ActorHandle {
        let _ = options;
        self.start(sockets, faults, log)
    }
}

/// A case's options for one actor, as its [`ActorKind::options`] parsed them (frames an HTTP/2
/// actor injects); only that actor's own code looks inside.
pub type ActorOptions = Arc<dyn std::any::Any + Send + Sync>;

/// Sockets bound for an actor before it starts (bound by the runner, so that every actor of a case
/// shares one port, as name servers share port 53).
#[derive(Debug, Default)]
pub struct Bound {
    /// The UDP socket, when the actor serves UDP.
    pub udp: Option<tokio::net::UdpSocket>,
    /// The TCP listener, when the actor serves TCP.
    pub tcp: Option<tokio::net::TcpListener>,
    /// Under `--tls`, the server configuration every TCP connection is accepted with.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// How long a client has to finish a TLS handshake with an actor.
pub const TLS_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(5);

/// An accepted connection, in TLS when `tls` says so; None when the handshake failed (the
/// failure logged as a violation of conversation `conv`: a client under `--tls` must finish it).
pub async fn secure(
    stream: tokio::net::TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    conv: usize,
    log: &dyn ActorLog,
) -> Option<crate::tls::Stream> {
    let mut s = crate::tls::Stream::Plain(stream);
    if let Some(cfg) = tls {
        match s.accept_tls(cfg, tokio::time::Instant::now() + TLS_HANDSHAKE).await {
            Ok(h) => log.tls(conv, &h.to_string()),
            Err(e) => {
                log.violation(
                    conv,
                    &format!("{e} (the client was to speak TLS from its first byte, trusting the run's CA)"),
                );
                return None;
            }
        }
    }
    Some(s)
}

/// A running actor: its tasks end when this is dropped.
#[derive(Debug, Default)]
pub struct ActorHandle {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    open: Option<tokio::sync::watch::Receiver<usize>>,
    record: Option<ActorRecord>,
}

/// What an actor keeps of a case for `saw:` judgements that need more than the messages it
/// received (when a DASH origin wrote each response's last byte); only that protocol's own
/// judgements look inside.
pub type ActorRecord = Arc<dyn std::any::Any + Send + Sync>;

impl ActorHandle {
    /// A handle owning `tasks`.
    pub fn new(tasks: Vec<tokio::task::JoinHandle<()>>) -> ActorHandle {
        ActorHandle {
            tasks,
            open: None,
            record: None,
        }
    }

    /// A handle owning `tasks` whose actor counts its open conversations in `open`, so the runner
    /// can let it finish reading what a program sent before it exited ([`ActorHandle::settle`]).
    pub fn counting(tasks: Vec<tokio::task::JoinHandle<()>>, open: tokio::sync::watch::Receiver<usize>) -> ActorHandle {
        ActorHandle {
            tasks,
            open: Some(open),
            record: None,
        }
    }

    /// The same handle, keeping `record` for the case's judgements.
    pub fn with_record(mut self, record: ActorRecord) -> ActorHandle {
        self.record = Some(record);
        self
    }

    /// What the actor keeps for judgements, when it keeps anything.
    pub fn record(&self) -> Option<&ActorRecord> {
        self.record.as_ref()
    }

    /// A receiver of the open-conversation count, marked seen, for an actor that counts them: its
    /// `changed()` completes at the next change.
    pub fn open_watch(&self) -> Option<tokio::sync::watch::Receiver<usize>> {
        self.open.clone().map(|mut o| {
            o.borrow_and_update();
            o
        })
    }

    /// How many conversations are open now, for an actor that counts them.
    pub fn open_now(&self) -> Option<usize> {
        self.open.as_ref().map(|o| *o.borrow())
    }

    /// Waits until the actor has no open conversation, or `until`: what a program sent before it
    /// closed has then been read and judged. Actors that do not count return at once.
    pub async fn settle(&self, until: tokio::time::Instant) {
        let Some(mut open) = self.open.clone() else { return };
        let _ = tokio::time::timeout_at(until, open.wait_for(|n| *n == 0)).await;
    }

    /// Stops every task and waits until they are gone, so their sockets are closed and the next
    /// case can bind the same well-known port (an abort alone only schedules the drop).
    pub async fn stop(mut self) {
        for t in std::mem::take(&mut self.tasks) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for ActorHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A protocol's actor vocabulary: the key its declarations use and how to read them.
pub struct ActorKind {
    /// The key of a declaration (`dns:` in `actors: [{ name: root, dns: {...} }]`).
    pub key: &'static str,
    /// The faults a case may switch on (`serve: { faults: { auth: silent } }`), each with what it
    /// does, for error messages and the README.
    pub faults: &'static [(&'static str, &'static str)],
    /// Reads a declaration's body; records problems in `cx` with their location.
    pub parse: fn(&Node, &mut LoadCx) -> Option<Arc<dyn ActorSpec>>,
    /// Reads a case's options for one of its actors (`serve: { with: { NAME: {...} } }`), when
    /// the actor takes any.
    pub options: Option<fn(&Node, &mut LoadCx) -> Option<ActorOptions>>,
}
