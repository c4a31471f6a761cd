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
//! served concurrently. At most `MAX_CONNECTIONS` are served at once; while
//! all of them are busy the server stops accepting, so further clients wait
//! in the kernel's listen backlog (just as they would queue for the
//! textbook's one-at-a-time server) instead of being refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;

use crate::{parse_duration, uppercase, Error, OptionSet, Options, RunningServer, Transport};

pub(crate) const NAME: &str = "tcp-upper";
const OPTIONS: &[&str] = &["idle"];

/// Connections served at once.
const MAX_CONNECTIONS: usize = 256;
/// Longest sentence (newline included) that gets a reply.
const MAX_SENTENCE: u64 = 1 << 20;
/// How long to keep draining a connection after replying (see `linger`).
const LINGER: Duration = Duration::from_secs(1);
/// Pause after a failed accept, so e.g. running out of file descriptors
/// does not turn into a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let idle = opts.get("idle", "30s", parse_duration)?;
    let server_socket = TcpListener::bind(bind).await?;
    let local_addr = server_socket.local_addr()?;
    Ok(RunningServer::spawn(local_addr, Transport::Tcp, serve(server_socket, idle)))
}

async fn serve(server_socket: TcpListener, idle: Duration) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Owning the connection tasks here means aborting the server aborts them.
    let mut connections = JoinSet::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // unreachable: the semaphore is never closed
        };
        let connection_socket = match server_socket.accept().await {
            Ok((socket, _addr)) => socket,
            Err(_) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        connections.spawn(async move {
            handle(connection_socket, idle).await;
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(mut connection_socket: TcpStream, idle: Duration) {
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
async fn read_sentence(connection_socket: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
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
async fn linger(mut connection_socket: TcpStream) {
    let mut rest = (&mut connection_socket).take(MAX_SENTENCE);
    let _ = timeout(LINGER, tokio::io::copy(&mut rest, &mut tokio::io::sink())).await;
}
