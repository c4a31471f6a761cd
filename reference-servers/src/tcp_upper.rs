//! `tcp-upper`: the textbook's TCPServer, done right.
//!
//! ```python
//! while True:
//!     connectionSocket, addr = serverSocket.accept()
//!     sentence = connectionSocket.recv(1024).decode()
//!     capitalizedSentence = sentence.upper()
//!     connectionSocket.send(capitalizedSentence.encode())
//!     connectionSocket.close()
//! ```
//!
//! Unlike the textbook, a "sentence" is everything up to the first newline
//! (or EOF), not whatever one `recv` happened to return, and connections are
//! served concurrently, within the limits of `guard` (options
//! `max_connections`, `line_timeout`): at the cap the connection that has
//! waited longest for its sentence is closed, so silent or trickling clients
//! cannot shut a new one out. With `tls=implicit` (and `tls_cert`, `tls_key`)
//! every connection is TLS from its first byte (see `tls`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::timeout;

use crate::guard::{self, Limits, Stream};
use crate::tls::{self, Offer, ServerTls};
use crate::{parse_duration, uppercase, Error, OptionSet, Options, RunningServer, Transport};

pub(crate) const NAME: &str = "tcp-upper";
const OPTIONS: &[&str] = &[
    "idle",
    guard::OPTIONS[0],
    guard::OPTIONS[1],
    tls::OPTIONS[0],
    tls::OPTIONS[1],
    tls::OPTIONS[2],
];

/// Longest sentence (newline included) that gets a reply.
const MAX_SENTENCE: u64 = 1 << 20;
/// How long to keep draining a connection after replying (see `linger`).
const LINGER: Duration = Duration::from_secs(1);

pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let idle = opts.get("idle", "30s", parse_duration)?;
    let mut limits = Limits::from_options(&opts)?;
    limits.implicit_tls = ServerTls::implicit(tls::server_options(&opts, Offer::Implicit, &[])?.as_ref());
    let server_socket = TcpListener::bind(bind).await?;
    let local_addr = server_socket.local_addr()?;
    Ok(RunningServer::spawn(local_addr, Transport::Tcp, serve(server_socket, idle, limits)))
}

async fn serve(server_socket: TcpListener, idle: Duration, limits: Limits) {
    // The sentence is the only thing said: there is no goodbye to say.
    guard::serve(server_socket, limits, guard::silent(), move |connection_socket, _addr| {
        handle(connection_socket, idle)
    })
    .await;
}

async fn handle(mut connection_socket: Stream, idle: Duration) {
    let sentence = match timeout(idle, read_sentence(&mut connection_socket)).await {
        Ok(Ok(Some(sentence))) => sentence,
        // Idle, reset, oversized or silent: close without a reply.
        _ => return,
    };
    let capitalized_sentence = uppercase(&sentence);
    let sent = timeout(idle, connection_socket.write_all(&capitalized_sentence)).await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    let _ = connection_socket.shutdown().await;
    linger(connection_socket).await;
}

/// Reads up to and including the first `\n`, or to EOF. `None` when the
/// peer sent nothing at all or more than `MAX_SENTENCE` bytes.
async fn read_sentence(connection_socket: &mut Stream) -> std::io::Result<Option<Vec<u8>>> {
    let mut reader = BufReader::new(connection_socket).take(MAX_SENTENCE + 1);
    let mut sentence = Vec::new();
    reader.read_until(b'\n', &mut sentence).await?;
    if sentence.is_empty() || sentence.len() as u64 > MAX_SENTENCE {
        return Ok(None);
    }
    Ok(Some(sentence))
}

/// Closing a socket that still has unread input makes the kernel send a
/// RST, which can destroy the reply before the client has read it. So after
/// shutting down our side, discard whatever the client still sends until it
/// closes too, within bounds.
async fn linger(mut connection_socket: Stream) {
    let mut rest = (&mut connection_socket).take(MAX_SENTENCE);
    let _ = timeout(LINGER, tokio::io::copy(&mut rest, &mut tokio::io::sink())).await;
}
