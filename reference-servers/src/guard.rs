//! What every TCP reference server shares to stay available to a normal
//! client while others abuse it:
//!
//! - a cap on open connections (`max_connections`). When it is reached, the
//!   connection that has waited longest for its client without getting a
//!   complete message (silent since its greeting, or trickling a line a byte
//!   at a time) is closed to make room, so slowloris or silent connections
//!   cannot shut a new client out. Only when no connection is waiting for its
//!   client (every one is being answered) is the newcomer turned away.
//! - a bound on how long a command line, request or message may take to
//!   arrive once its first byte has (`line_timeout`), so a client trickling
//!   bytes cannot keep a slot by never going quite idle.
//!
//! Idleness between messages stays each server's own `idle` timeout, with its
//! own goodbye. Which goodbye a closed connection gets here is the server's
//! choice (`Goodbye`), since only it knows its protocol's words.
//!
//! A connection's progress is observed, not reported: `Stream` wraps the
//! socket and notes when bytes arrive, when the server waits for more, and
//! when it answers (an answer ends the message being read). So a server only
//! swaps `TcpStream` for `Stream` and its parsing does not change.
//!
//! TLS sits above the observation (`tls::Layer` over the observed socket), so a
//! handshake is a message like any other: a silent client before its ClientHello
//! can make room, a trickled one is cut. A server with implicit TLS
//! (`Limits::implicit_tls`) has every connection's handshake done here before
//! its handler runs; a connection that speaks TLS gets no goodbye in clear text
//! (its words would be garbage inside TLS), only the close.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};

use tokio_rustls::TlsAcceptor;

use crate::tls::{self, Layer};
use crate::{parse_count, parse_duration, Error, OptionSet};

/// The option names every guarded server accepts, besides its own.
pub(crate) const OPTIONS: [&str; 2] = ["max_connections", "line_timeout"];

/// Default `max_connections`.
const DEFAULT_MAX_CONNECTIONS: &str = "256";
/// Default `line_timeout`: ten times the longest pause the project's suites
/// put inside one message, and short enough that a trickle is cut soon.
const DEFAULT_LINE_TIMEOUT: &str = "10s";
/// How long a goodbye may take to write, and how long the reader is then
/// given to close before the socket is (see `tcp_upper::linger`).
const GOODBYE_WAIT: Duration = Duration::from_secs(1);
/// Bytes discarded at most while lingering after a goodbye.
const GOODBYE_DRAIN: u64 = 64 << 10;
/// Pause after a failed accept, so e.g. running out of file descriptors
/// does not turn into a busy loop.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How many connections a server keeps and how long a message may take.
#[derive(Clone)]
pub(crate) struct Limits {
    /// Connections open at once; see the module documentation for what happens at the cap.
    pub max_connections: usize,
    /// How long a message may take to arrive once its first byte has.
    pub line_timeout: Duration,
    /// At the cap, let newcomers wait in the listen backlog instead of making room
    /// (the IMAP fault `single-client`, whose point is a server that makes clients queue).
    pub queue: bool,
    /// With implicit TLS: the handshake every connection starts with, done before its handler runs.
    pub implicit_tls: Option<TlsAcceptor>,
}

impl Limits {
    /// Reads `max_connections` and `line_timeout` from `opts`, with their defaults.
    pub(crate) fn from_options(opts: &OptionSet<'_>) -> Result<Limits, Error> {
        let max_connections = opts.get("max_connections", DEFAULT_MAX_CONNECTIONS, |v| parse_count(v, 1, 65_536))?;
        let line_timeout = opts.get("line_timeout", DEFAULT_LINE_TIMEOUT, parse_duration)?;
        Ok(Limits {
            // At most 65 536, so the cast cannot truncate.
            max_connections: max_connections as usize,
            line_timeout,
            queue: false,
            implicit_tls: None,
        })
    }
}

/// Why the guard closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// A message began but did not complete within `line_timeout`.
    Slow,
    /// Closed to make room for a new connection: it had waited longest for its client.
    Evicted,
    /// A new connection turned away at the cap: no open one was waiting for its client.
    Busy,
}

/// What a server says before the guard closes one of its connections (`None`: close without a word).
pub(crate) type Goodbye = Arc<dyn Fn(Reason) -> Option<Vec<u8>> + Send + Sync>;

/// A goodbye that says nothing, for protocols without one.
pub(crate) fn silent() -> Goodbye {
    Arc::new(|_| None)
}

/// What the guard knows of one connection.
#[derive(Debug)]
struct Activity {
    state: Mutex<State>,
    /// Signalled when a deadline may have appeared (the server began waiting mid-message).
    changed: Notify,
    /// Signalled when the connection is chosen to make room.
    evict: Notify,
}

#[derive(Debug)]
struct State {
    /// The server is waiting for the client's bytes (its last read found none).
    waiting: bool,
    /// When the first byte after the server's last answer arrived: a message is under way.
    started: Option<Instant>,
    /// When the server last answered (or accepted): older is idler.
    progress: Instant,
    /// Whether `line_timeout` applies: off once a protocol bounds its own messages.
    timed: bool,
    /// The connection speaks (or is starting to speak) TLS: no goodbye in clear text.
    encrypted: bool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            state: Mutex::new(State {
                waiting: false,
                started: None,
                progress: Instant::now(),
                timed: true,
                encrypted: false,
            }),
            changed: Notify::new(),
            evict: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is plain data, always consistent: a panic elsewhere cannot have broken it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self, pending: bool, got_bytes: bool) {
        let mut state = self.state();
        if got_bytes && state.started.is_none() {
            state.started = Some(Instant::now());
        }
        if pending && !state.waiting && state.started.is_some() {
            self.changed.notify_one();
        }
        state.waiting = pending;
    }

    fn wrote(&self) {
        let mut state = self.state();
        state.started = None;
        state.waiting = false;
        state.progress = Instant::now();
    }

    /// When the message under way runs out of time, if the server is waiting for it.
    fn deadline(&self, line_timeout: Duration) -> Option<Instant> {
        let state = self.state();
        match (state.timed, state.waiting, state.started) {
            (true, true, Some(started)) => Some(started + line_timeout),
            _ => None,
        }
    }

    /// Since when the connection has waited for its client, if it is waiting.
    fn idle_since(&self) -> Option<Instant> {
        let state = self.state();
        state.waiting.then_some(state.progress)
    }
}

/// A server's side of a TCP connection, observed by the guard (or not: `plain`), in clear
/// text or TLS (`start_tls`).
pub(crate) struct Stream {
    io: Layer<Watched>,
}

/// The TCP connection and what the guard knows of it.
pub(crate) struct Watched {
    inner: TcpStream,
    activity: Option<Arc<Activity>>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("tls", &self.io.is_tls()).finish_non_exhaustive()
    }
}

fn no_connection() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the TLS handshake failed")
}

impl Stream {
    /// A stream nobody watches, for connections a server opens itself (e.g. the proxy's to an origin).
    pub(crate) fn plain(inner: TcpStream) -> Stream {
        Stream {
            io: Layer::Plain(Watched { inner, activity: None }),
        }
    }

    fn watched(&self) -> Option<&Watched> {
        self.io.get_ref()
    }

    /// See `TcpStream::local_addr`.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.watched().ok_or_else(no_connection)?.inner.local_addr()
    }

    /// Stops `line_timeout` on this connection, for a protocol that bounds its own messages
    /// from here on (HTTP/2, whose client may send a frame the server has no answer to).
    pub(crate) fn untimed(&self) {
        if let Some(activity) = self.watched().and_then(|w| w.activity.as_ref()) {
            activity.state().timed = false;
            // The watcher may be sleeping towards a deadline that no longer exists.
            activity.changed.notify_one();
        }
    }

    /// See `TcpStream::set_nodelay`.
    pub(crate) fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.watched().ok_or_else(no_connection)?.inner.set_nodelay(nodelay)
    }

    /// True once the connection speaks TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.io.is_tls()
    }

    /// The protocol ALPN settled on, if any.
    pub(crate) fn alpn(&self) -> Option<&[u8]> {
        self.io.alpn()
    }

    /// The server's side of a TLS handshake on this connection, within `within`; from here on
    /// everything is TLS. What the caller read before and did not use is its own to discard.
    /// On failure the stream is of no more use.
    pub(crate) async fn start_tls(&mut self, acceptor: &TlsAcceptor, within: Duration) -> io::Result<()> {
        let activity = self.watched().and_then(|w| w.activity.clone());
        if let Some(activity) = &activity {
            activity.state().encrypted = true;
        }
        self.io.upgrade(acceptor, within).await?;
        // The handshake's last flight was the client's: without this it would look like a
        // message under way that the server never answered.
        if let Some(activity) = &activity {
            activity.wrote();
        }
        Ok(())
    }
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Some(activity) = &this.activity {
            activity.read(poll.is_pending(), buf.filled().len() > before);
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let (Some(activity), Poll::Ready(Ok(n))) = (&this.activity, &poll) {
            if *n > 0 {
                activity.wrote();
            }
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The open connections, by number.
type Open = Arc<Mutex<HashMap<u64, Arc<Activity>>>>;

fn open_map(open: &Open) -> MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
    open.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes a connection out of the open set when its task ends, however it ends.
struct Registration {
    id: u64,
    open: Open,
}

impl Drop for Registration {
    fn drop(&mut self) {
        open_map(&self.open).remove(&self.id);
    }
}

/// Accepts connections on `listener` forever, running `handler` on each under `limits`;
/// connections the guard closes get `goodbye`'s words first.
pub(crate) async fn serve<H, F>(listener: TcpListener, limits: Limits, goodbye: Goodbye, handler: H)
where
    H: Fn(Stream, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    let handshake = tls::handshake_limit(limits.line_timeout);
    let open: Open = Arc::default();
    let queue = limits.queue.then(|| Arc::new(Semaphore::new(limits.max_connections)));
    // Owning the connection tasks here means aborting the server aborts them.
    let mut connections = JoinSet::new();
    let mut next_id: u64 = 0;
    loop {
        let slot = match &queue {
            Some(slots) => match slots.clone().acquire_owned().await {
                Ok(slot) => Some(slot),
                Err(_) => return, // unreachable: the semaphore is never closed
            },
            None => None,
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        if slot.is_none() && !make_room(&open, limits.max_connections) {
            // A TLS client would take clear-text words for a broken handshake: it gets the close.
            let words = goodbye(Reason::Busy).filter(|_| limits.implicit_tls.is_none());
            if let (Some(words), Ok(stream)) = (words, stream.into_std()) {
                // Written straight to the (non-blocking) socket: tokio's `try_write` would wait
                // for a readiness event a fresh socket has not had yet. A fresh socket has room
                // for a few bytes; if not, the newcomer just sees the close.
                let _ = std::io::Write::write(&mut &stream, &words);
            }
            continue;
        }
        // A second descriptor of the socket, so a goodbye can still be written
        // after the handler (which owns the first) has been stopped.
        let Ok((stream, spare)) = with_spare(stream) else {
            continue;
        };
        let activity = Arc::new(Activity::new());
        next_id += 1;
        open_map(&open).insert(next_id, activity.clone());
        let registration = Registration {
            id: next_id,
            open: open.clone(),
        };
        let mut stream = Stream {
            io: Layer::Plain(Watched {
                inner: stream,
                activity: Some(activity.clone()),
            }),
        };
        let (handler, implicit) = (handler.clone(), limits.implicit_tls.clone());
        let handled = async move {
            if let Some(acceptor) = implicit {
                // A failed or overdue handshake ends this connection quietly, never the server.
                if stream.start_tls(&acceptor, handshake).await.is_err() {
                    return;
                }
            }
            handler(stream, peer).await;
        };
        let goodbye = goodbye.clone();
        let line_timeout = limits.line_timeout;
        connections.spawn(guarded(handled, activity, line_timeout, spare, goodbye, registration, slot));
    }
}

/// Runs one connection's handler until it ends or the guard stops it.
async fn guarded(
    handled: impl Future<Output = ()>,
    activity: Arc<Activity>,
    line_timeout: Duration,
    spare: std::net::TcpStream,
    goodbye: Goodbye,
    registration: Registration,
    slot: Option<OwnedSemaphorePermit>,
) {
    let reason = tokio::select! {
        () = handled => return,
        reason = watch(&activity, line_timeout) => reason,
    };
    drop(registration);
    let encrypted = activity.state().encrypted;
    if let Some(words) = goodbye(reason).filter(|_| !encrypted) {
        say(spare, &words).await;
    }
    drop(slot);
}

/// Waits until the connection overruns `line_timeout` mid-message or is evicted.
async fn watch(activity: &Activity, line_timeout: Duration) -> Reason {
    loop {
        let deadline = activity.deadline(line_timeout);
        let overdue = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = activity.evict.notified() => return Reason::Evicted,
            () = activity.changed.notified() => {}
            () = overdue => {
                // The message may have completed just now: look again before closing.
                if activity.deadline(line_timeout).is_some_and(|d| d <= Instant::now()) {
                    return Reason::Slow;
                }
            }
        }
    }
}

/// Below the cap, or once the connection waiting longest for its client has
/// been told to go: true if a new connection may be served.
fn make_room(open: &Open, max_connections: usize) -> bool {
    let mut open = open_map(open);
    if open.len() < max_connections {
        return true;
    }
    let idlest = open
        .iter()
        .filter_map(|(id, activity)| activity.idle_since().map(|since| (since, *id)))
        .min();
    let Some((_, id)) = idlest else {
        return false;
    };
    if let Some(activity) = open.remove(&id) {
        activity.evict.notify_one();
    }
    true
}

fn with_spare(stream: TcpStream) -> io::Result<(TcpStream, std::net::TcpStream)> {
    let stream = stream.into_std()?;
    let spare = stream.try_clone()?;
    Ok((TcpStream::from_std(stream)?, spare))
}

/// Writes `words`, half-closes, and discards what the client still sends
/// for a moment, so that the close does not turn into a reset that destroys
/// the words before they are read. Everything is bounded.
async fn say(spare: std::net::TcpStream, words: &[u8]) {
    let Ok(mut stream) = TcpStream::from_std(spare) else {
        return;
    };
    if !matches!(timeout(GOODBYE_WAIT, stream.write_all(words)).await, Ok(Ok(()))) {
        return;
    }
    let _ = stream.shutdown().await;
    let mut rest = (&mut stream).take(GOODBYE_DRAIN);
    let _ = timeout(GOODBYE_WAIT, tokio::io::copy(&mut rest, &mut tokio::io::sink())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_timed_from_its_first_byte_while_the_server_waits() {
        let activity = Activity::new();
        let line = Duration::from_secs(10);
        activity.read(true, false);
        assert_eq!(activity.deadline(line), None, "nothing has arrived: idle, not slow");
        activity.read(false, true);
        assert_eq!(activity.deadline(line), None, "the server is busy with what arrived");
        activity.read(true, false);
        assert!(
            activity.deadline(line).is_some(),
            "a message is under way and the server waits for it"
        );
        activity.wrote();
        assert_eq!(activity.deadline(line), None, "an answer ends the message");
    }

    #[test]
    fn an_untimed_connection_has_no_message_deadline() {
        let activity = Activity::new();
        let line = Duration::from_secs(10);
        activity.read(false, true);
        activity.read(true, false);
        assert!(activity.deadline(line).is_some());
        activity.state().timed = false;
        assert_eq!(activity.deadline(line), None, "a frame the server need not answer is no trickle");
        assert!(activity.idle_since().is_some(), "it can still make room at the cap");
    }

    #[test]
    fn the_idlest_waiting_connection_makes_room() {
        let open: Open = Arc::default();
        let (older, newer, busy) = (Arc::new(Activity::new()), Arc::new(Activity::new()), Arc::new(Activity::new()));
        older.read(true, false);
        newer.wrote();
        newer.read(true, false);
        open_map(&open).insert(1, older);
        open_map(&open).insert(2, newer);
        open_map(&open).insert(3, busy);
        assert!(make_room(&open, 3));
        let left: Vec<u64> = {
            let mut ids: Vec<u64> = open_map(&open).keys().copied().collect();
            ids.sort_unstable();
            ids
        };
        assert_eq!(left, vec![2, 3]);
        assert!(make_room(&open, 4), "below the cap nothing is closed");
        open_map(&open).remove(&2);
        assert!(!make_room(&open, 1), "nobody waits for a client: the newcomer is turned away");
    }
}
