//! `http2`: an HTTP/2 origin server (RFC 9113) over cleartext, the oracle the
//! HTTP/2 suites run against. The framing, HPACK and flow control are the
//! `h2` crate's; this module decides what to answer and in what order.
//!
//! One port speaks both versions. A connection whose first bytes are the
//! HTTP/2 preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, "prior knowledge",
//! RFC 9113 §3.3) is HTTP/2; anything else is HTTP/1.1, one request per
//! connection (`h1.rs`), unless it asks for `Upgrade: h2c` (`upgrade.rs`):
//! then a 101 and HTTP/2, the request answered on stream 1. A start that is
//! the preface's request line (`PRI * HTTP/2.0`) and then goes wrong is an
//! HTTP/2 client's invalid preface, answered with GOAWAY PROTOCOL_ERROR (§3.4).
//!
//! What is served (`site.rs`): GET and HEAD of the files under `root`
//! (default `fixtures/www`, as for `http`), confined to it with symlinks
//! resolved; `POST /echo` sends the request body back (up to 1 MiB, else
//! 413); other methods are 405 with `Allow`.
//!
//! The textbook's point about HTTP/2 (K&R 2.2.5) is that a large object no
//! longer holds up small ones: each response goes out in DATA frames of at
//! most 16 KiB, and frames of the streams with data to send take turns
//! (`interleave`, on by default; `stream.rs`). With `interleave=false` each
//! response is sent whole, in the order the requests came, which is HTTP/1.1's
//! head-of-line blocking over HTTP/2.
//!
//! Options: `root`, `idle` (an HTTP/2 connection with no stream open for this
//! long is sent GOAWAY and closed; an HTTP/1.1 one that sends nothing is
//! closed), `interleave` (`true`/`false`), `push` (`true`: an HTML page's
//! first `<img src>` or `<link href>` is pushed when the client allows it),
//! `fault` (`fault.rs`), and `guard`'s `max_connections` and `line_timeout`.
//! Each stream's request body must arrive within `line_timeout`, a response
//! that gets no flow-control window for `idle` is reset, and at most 512
//! streams of the whole server are answered at once (`stream::MAX_IN_FLIGHT`).
//!
//! With `tls=implicit` (and `tls_cert`, `tls_key`) every connection is TLS and
//! ALPN (RFC 7301) offers `h2` then `http/1.1`: `h2` is HTTP/2, whose client
//! must then start with the preface (RFC 9113 §3.3; anything else is an invalid
//! preface, §3.4); `http/1.1` is the HTTP/1.1 path without `Upgrade: h2c`,
//! which is for cleartext only (RFC 9113 §3.1); a client that names no protocol
//! gets the same sniffing by first bytes as over cleartext.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::timeout;

use crate::guard::{self, Goodbye, Limits, Reason, Stream};
use crate::tls::{self, Offer, ServerTls};
use crate::{parse_duration, Error, OptionSet, Options, RunningServer, Transport};

mod check;
mod fault;
mod h1;
pub(crate) mod site;
mod stream;
mod upgrade;

use fault::Faults;
use site::Site;

/// The name suites and the CLI use for this server.
pub(crate) const NAME: &str = "http2";
const OPTIONS: &[&str] = &[
    "root",
    "idle",
    "interleave",
    "push",
    "fault",
    guard::OPTIONS[0],
    guard::OPTIONS[1],
    tls::OPTIONS[0],
    tls::OPTIONS[1],
    tls::OPTIONS[2],
];

/// The default root, relative to the current directory.
const DEFAULT_ROOT: &str = "fixtures/www";
/// The repository's web root, for a default root when run from elsewhere (e.g. `cargo test`).
const CHECKOUT_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/www");

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes asked of the socket per read while telling the versions apart.
const SNIFF_READ: usize = 4096;

/// What every connection of one server shares.
#[derive(Debug)]
struct Config {
    site: Site,
    idle: Duration,
    line_timeout: Duration,
    interleave: bool,
    push: bool,
    faults: Faults,
    /// Places for streams being answered (`stream::MAX_IN_FLIGHT`).
    in_flight: Semaphore,
    /// Held by the connection being served, with the fault `one-connection`.
    one_connection: tokio::sync::Mutex<()>,
}

/// Checks the options, binds, and starts serving.
pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let idle = opts.get("idle", "10s", parse_duration)?;
    let mut limits = Limits::from_options(&opts)?;
    limits.implicit_tls = ServerTls::implicit(tls::server_options(&opts, Offer::Implicit, &[tls::H2, tls::HTTP11])?.as_ref());
    let interleave = opts.get("interleave", "true", parse_bool)?;
    let push = opts.get("push", "false", parse_bool)?;
    let faults = opts.get("fault", "", fault::parse)?;
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
    let config = Arc::new(Config {
        site: Site::new(root),
        idle,
        line_timeout: limits.line_timeout,
        interleave,
        push,
        faults,
        in_flight: Semaphore::new(stream::MAX_IN_FLIGHT),
        one_connection: tokio::sync::Mutex::new(()),
    });
    let server_socket = TcpListener::bind(bind).await?;
    let local_addr = server_socket.local_addr()?;
    let server = guard::serve(server_socket, limits, goodbye(), move |stream, _addr| {
        let config = config.clone();
        async move { handle(stream, config).await }
    });
    Ok(RunningServer::spawn(local_addr, Transport::Tcp, server))
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// `path` made canonical, if it is a directory.
fn directory(path: &Path) -> Result<PathBuf, String> {
    let canonical = path.canonicalize().map_err(|e| format!("expected a directory: {e}"))?;
    if !canonical.is_dir() {
        return Err("expected a directory".to_owned());
    }
    Ok(canonical)
}

/// The guard times messages only until a connection turns out to be HTTP/2
/// (`Stream::untimed`), so its only words are HTTP/1.1's: 408 for a request
/// that did not arrive in time, as the `http` origin says it.
fn goodbye() -> Goodbye {
    Arc::new(|reason| {
        (reason == Reason::Slow).then(|| {
            let body = "the request did not arrive complete in time\n";
            format!(
                "HTTP/1.1 408 Request Timeout\r\nDate: {}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
                httpdate::fmt_http_date(std::time::SystemTime::now()),
                body.len()
            )
            .into_bytes()
        })
    })
}

/// Tells HTTP/2 with prior knowledge from HTTP/1.1 by the first bytes, then serves the connection.
async fn handle(mut stream: Stream, config: Arc<Config>) {
    // h2 writes small frames as they come (SETTINGS, its ACK, a HEADERS): with Nagle each waits
    // for the client's delayed ACK of the one before.
    let _ = stream.set_nodelay(true);
    let _one = match config.faults.has(fault::Fault::OneConnection) {
        true => Some(config.one_connection.lock().await),
        false => None,
    };
    let alpn = stream.alpn().map(<[u8]>::to_vec);
    if alpn.as_deref() == Some(tls::HTTP11) {
        return h1::serve(stream, Vec::new(), &config).await;
    }
    let mut first = Vec::new();
    let sniffed = timeout(config.idle, sniff(&mut stream, &mut first)).await;
    let sniffed = match sniffed {
        // RFC 9113 §3.3: a client that chose h2 in ALPN MUST start with the preface.
        Ok(Ok(Sniffed::Http1)) if alpn.as_deref() == Some(tls::H2) => Ok(Ok(Sniffed::BadPreface)),
        other => other,
    };
    match sniffed {
        Ok(Ok(Sniffed::BadPreface)) => {
            // RFC 9113 §3.4: an invalid preface is a connection error PROTOCOL_ERROR.
            let goaway = [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            let _ = timeout(config.line_timeout, stream.write_all(&goaway)).await;
        }
        Ok(Ok(Sniffed::Http2)) => {
            // From here h2 reads frames, and a client may rightly send one the server has no
            // answer to (a SETTINGS ack, a WINDOW_UPDATE); `stream.rs` bounds streams and idleness.
            stream.untimed();
            stream::serve(check::FrameCheck::new(Rewind::new(first, stream), config.faults), &config).await;
        }
        Ok(Ok(Sniffed::Http1)) => h1::serve(stream, first, &config).await,
        // Silent for `idle`, gone, or broken before saying anything: nobody to answer.
        Ok(Err(_)) | Err(_) => {}
    }
}

/// What a connection's first bytes are.
#[derive(Debug, PartialEq, Eq)]
enum Sniffed {
    /// The HTTP/2 preface.
    Http2,
    /// Anything that is not its start.
    Http1,
    /// `PRI * HTTP/2.0\r\n` and then not the rest of the preface: an HTTP/2 client's mistake.
    BadPreface,
}

/// The preface's request line: a client that sends it speaks HTTP/2.
const PRI_LINE: usize = 16;

/// Reads until the bytes in `first` are the whole preface or cannot be its start.
async fn sniff(stream: &mut Stream, first: &mut Vec<u8>) -> io::Result<Sniffed> {
    loop {
        let n = first.len().min(PREFACE.len());
        if first[..n] != PREFACE[..n] {
            let pri = first.len() >= PRI_LINE && first[..PRI_LINE] == PREFACE[..PRI_LINE];
            return Ok(if pri { Sniffed::BadPreface } else { Sniffed::Http1 });
        }
        if n == PREFACE.len() {
            return Ok(Sniffed::Http2);
        }
        let before = first.len();
        first.resize(before + SNIFF_READ, 0);
        let got = stream.read(&mut first[before..]).await;
        first.truncate(before + got.as_ref().map_or(0, |n| *n));
        if got? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// A stream that gives back the bytes already read from it before reading more, so the
/// HTTP/2 or HTTP/1.1 code sees the connection from its first byte.
#[derive(Debug)]
struct Rewind<S> {
    first: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Rewind<S> {
    fn new(first: Vec<u8>, inner: S) -> Self {
        Rewind { first, at: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.first.len() {
            let n = buf.remaining().min(this.first.len() - this.at);
            buf.put_slice(&this.first[this.at..this.at + n]);
            this.at += n;
            if this.at == this.first.len() {
                this.first = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rewind_replays_what_was_read_first() {
        let (mut a, b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, b" world").await.unwrap();
        drop(a);
        let mut rewound = Rewind::new(b"hello".to_vec(), b);
        let mut all = Vec::new();
        rewound.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"hello world");
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("true"), Ok(true));
        assert_eq!(parse_bool(" false "), Ok(false));
        assert!(parse_bool("yes").is_err());
    }
}
