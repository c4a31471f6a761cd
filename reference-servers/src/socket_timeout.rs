//! `socket-timeout`: the "socket timeouts" slide (the shepherd boy and the
//! wolf) from the 8th edition.
//!
//! ```python
//! counter = 0
//! while counter < 3:
//!     connectionSocket, addr = serverSocket.accept()
//!     connectionSocket.settimeout(10)
//!     try:
//!         wolf_location = connectionSocket.recv(1024).decode()
//!         send_hunter(wolf_location)
//!         connectionSocket.send('hunter sent')
//!     except timeout:
//!         counter += 1
//!     connectionSocket.close()
//! ```
//!
//! Connections are served one at a time, exactly like the slide: that is
//! the lesson (a silent client holds everyone else up for the whole
//! timeout). After `strikes` silent connections the listener is dropped, so
//! further connects are refused, and the server task ends.
//!
//! With `tls=implicit` the handshake comes first, within the same `timeout`: a
//! client that never starts one is as silent as one that never reports; one
//! whose handshake fails is gone, like a client that closed without a word.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use crate::guard::Stream;
use crate::tls::{self, Offer, ServerTls};
use crate::{parse_count, parse_duration, Error, OptionSet, Options, RunningServer, Transport};

pub(crate) const NAME: &str = "socket-timeout";
const OPTIONS: &[&str] = &["strikes", "timeout", tls::OPTIONS[0], tls::OPTIONS[1], tls::OPTIONS[2]];

/// Like the slide's `recv(1024)`.
const MAX_REPORT: usize = 1024;
/// See `guard::ACCEPT_BACKOFF`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let wait = opts.get("timeout", "10s", parse_duration)?;
    let strikes = opts.get("strikes", "3", |v| parse_count(v, 1, u32::MAX.into()))?;
    let implicit = ServerTls::implicit(tls::server_options(&opts, Offer::Implicit, &[])?.as_ref());
    let server_socket = TcpListener::bind(bind).await?;
    let local_addr = server_socket.local_addr()?;
    Ok(RunningServer::spawn(
        local_addr,
        Transport::Tcp,
        serve(server_socket, wait, strikes, implicit),
    ))
}

async fn serve(server_socket: TcpListener, wait: Duration, strikes: u64, implicit: Option<TlsAcceptor>) {
    let mut counter = 0;
    while counter < strikes {
        let mut connection_socket = match server_socket.accept().await {
            Ok((socket, _addr)) => Stream::plain(socket),
            Err(_) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Some(acceptor) = &implicit {
            match connection_socket.start_tls(acceptor, wait).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    counter += 1;
                    continue;
                }
                Err(_) => continue,
            }
        }
        let mut wolf_location = Vec::new();
        let outcome = timeout(wait, read_report(&mut connection_socket, &mut wolf_location)).await;
        if !wolf_location.is_empty() {
            // Whatever arrived in time counts, newline or not: the slide's
            // recv(1024) would have returned it.
            let _ = timeout(wait, connection_socket.write_all(b"hunter sent\n")).await;
        } else if outcome.is_err() {
            counter += 1;
        }
        // Otherwise the peer closed (or reset) without a word: the slide's
        // recv returns b'' then, which is not a timeout.
        let _ = connection_socket.shutdown().await;
    }
    // Returning drops `server_socket`: from now on connects are refused.
}

/// Reads into `wolf_location` until a newline, EOF, or `MAX_REPORT` bytes.
async fn read_report(connection_socket: &mut Stream, wolf_location: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; MAX_REPORT];
    while wolf_location.len() < MAX_REPORT {
        let room = MAX_REPORT - wolf_location.len();
        let n = connection_socket.read(&mut chunk[..room]).await?;
        if n == 0 {
            break;
        }
        wolf_location.extend_from_slice(&chunk[..n]);
        if chunk[..n].contains(&b'\n') {
            break;
        }
    }
    Ok(())
}
