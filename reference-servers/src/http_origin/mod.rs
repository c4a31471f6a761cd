//! `http`: an HTTP/1.1 origin server (RFC 9110, RFC 9112), the oracle for
//! the HTTP suites and for the textbook's "web server" assignment.
//!
//! The web root, `fixtures/www/`, holds only what is served; the suites
//! compare bodies byte for byte against these files:
//!
//! | file | what it is for |
//! |---|---|
//! | `index.html` | ~500-byte page titled "wirecheck test page", linking to `sub/page.html`; also served for `/` |
//! | `utf8.html` | ~280-byte page of non-ASCII UTF-8 text: Content-Length counts bytes |
//! | `image.bin` | 300,000 bytes of xorshift32 output (seed 0x2545F491, top byte of each step): every byte value, NUL, CR and LF included |
//! | `notes.txt` | a few lines of text/plain |
//! | `styled.html`, `style.css` | a page whose one linked asset is the stylesheet (what `http2` pushes with `push=true`) |
//! | `sub/page.html`, `sub/index.html` | a page in a subdirectory, and that directory's index (for `/sub/` and the `/sub` redirect) |
//!
//! Endpoints besides the files: `GET /moved` (301 to `/index.html`),
//! `GET /cookie` (the slides' cookie example), `POST /echo` (the body back),
//! and `PUT`/`GET`/`DELETE /uploads/<name>` (kept in the `uploads`
//! directory, never under the root). `OPTIONS` is implemented: 200 with the
//! resource's `Allow` (the whole server's for `OPTIONS *`).
//!
//! Choices where the RFCs leave room, all made for the strict side so that a
//! suite proven against this server does not pass a sloppy one:
//! - the request line must use single spaces (RFC 9112 §3 allows lenient
//!   word splitting); bare LF line endings in the head are accepted (§2.2);
//! - chunked framing must use CRLF; extensions and trailers are checked, then dropped;
//! - an unknown method (including TRACE, CONNECT, PATCH) is 501, a method
//!   some resource supports is 405 elsewhere, with `Allow`;
//! - `..` after percent-decoding is 403 rather than resolved; so is a path
//!   that leaves the root through a symlink;
//! - a 304 carries ETag, Last-Modified, Cache-Control and Date but no Content-Length;
//! - `Expect: 100-continue` gets `100 Continue` only when the body will be
//!   used; otherwise the final response comes at once and the connection is
//!   closed, since the client may or may not send the body;
//! - any other expectation is 417, a transfer coding other than chunked is 501;
//! - a request stalled mid-way for `idle`, or not complete `line_timeout`
//!   after its first byte (a trickle), gets 408; an idle connection between
//!   requests is just closed, and so is the idlest one when a newcomer finds
//!   `max_connections` open (see `guard`);
//! - every response says `HTTP/1.1`; after 400, 408, 413, 414, 417, 431, 505
//!   and a framing 501, the response says `Connection: close` and the
//!   connection is closed.
//!
//! With `tls=implicit` (and `tls_cert`, `tls_key`) it is an HTTPS origin: every
//! connection is TLS from its first byte, with ALPN `http/1.1` (see `tls`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::guard::{self, Goodbye, Limits, Reason, Stream};
use crate::tls::{self, Offer, ServerTls};
use crate::{parse_duration, Error, OptionSet, Options, RunningServer, Transport};

mod request;
mod response;
mod routes;

use request::{Conn, Framing, Stop, Version};
use response::{send, Response};
use routes::Site;

/// The name suites and the CLI use for this server.
pub(crate) const NAME: &str = "http";
const OPTIONS: &[&str] = &[
    "idle",
    "root",
    "uploads",
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

/// Checks the options, binds, and starts serving.
pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let idle = opts.get("idle", "10s", parse_duration)?;
    let mut limits = Limits::from_options(&opts)?;
    limits.implicit_tls = ServerTls::implicit(tls::server_options(&opts, Offer::Implicit, &[tls::HTTP11])?.as_ref());
    let root = match opts.given("root") {
        Some(root) => opts.parse("root", root, |r| directory(Path::new(r), false))?,
        None => directory(Path::new(DEFAULT_ROOT), false)
            .or_else(|_| directory(Path::new(CHECKOUT_ROOT), false))
            .map_err(|why| Error::BadOption {
                server: NAME.to_owned(),
                key: "root".to_owned(),
                value: DEFAULT_ROOT.to_owned(),
                why,
            })?,
    };
    // A default uploads directory lives exactly as long as the server task,
    // which owns it: aborting the task removes the directory.
    let (uploads, temporary) = match opts.given("uploads") {
        Some(dir) => (opts.parse("uploads", dir, |d| directory(Path::new(d), true))?, None),
        None => {
            let temporary = tempfile::Builder::new().prefix("wirecheck-uploads-").tempdir()?;
            (temporary.path().canonicalize()?, Some(temporary))
        }
    };
    let site = Arc::new(Site::new(root, uploads));
    let server_socket = TcpListener::bind(bind).await?;
    let local_addr = server_socket.local_addr()?;
    let server = async move {
        serve(server_socket, site, idle, limits).await;
        drop(temporary);
    };
    Ok(RunningServer::spawn(local_addr, Transport::Tcp, server))
}

/// `path` made canonical, if it is a directory (created first if `create`).
fn directory(path: &Path, create: bool) -> Result<PathBuf, String> {
    if create {
        std::fs::create_dir_all(path).map_err(|e| format!("cannot create directory: {e}"))?;
    }
    let canonical = path.canonicalize().map_err(|e| format!("expected a directory: {e}"))?;
    if !canonical.is_dir() {
        return Err("expected a directory".to_owned());
    }
    Ok(canonical)
}

/// Serves every connection within `limits` (see `guard`).
async fn serve(server_socket: TcpListener, site: Arc<Site>, idle: Duration, limits: Limits) {
    guard::serve(server_socket, limits, goodbye(), move |stream, _addr| {
        let site = site.clone();
        async move { handle(stream, &site, idle).await }
    })
    .await;
}

/// RFC 9110 §15.5.9: 408 when a request did not arrive complete in time, with
/// `Connection: close` since the server is closing (RFC 9112 §9.6). A
/// connection with no request under way is owed nothing and is just closed
/// (RFC 9112 §9.5), like one between requests that idles out.
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

/// Serves requests on one connection, in order, until either side is done with it.
async fn handle(stream: Stream, site: &Site, idle: Duration) {
    let mut conn = Conn::new(stream, idle);
    loop {
        let head = match conn.read_head().await {
            Ok(head) => head,
            Err(stop) => return refuse(conn, stop).await,
        };
        let resource = routes::resource(&head.method, &head.target);
        let takes_body = resource.as_ref().is_ok_and(|r| r.takes_body(&head.method));
        let mut close = !head.keep_alive;
        let body = if head.framing != Framing::None && head.expect_continue && !takes_body {
            // The client is waiting to hear whether to send the body; it may
            // send it anyway, so the connection cannot be reused.
            close = true;
            Vec::new()
        } else {
            match conn.read_body(head.framing, head.expect_continue).await {
                Ok(body) => body,
                Err(stop) => return refuse(conn, stop).await,
            }
        };
        let response = match resource {
            Ok(resource) => routes::respond(site, &head, resource, body).await,
            Err(status) => Response::status(status),
        };
        close |= response.closes();
        let connection = match (close, head.version) {
            (true, _) => Some("close"),
            (false, Version::Http10) => Some("keep-alive"),
            (false, Version::Http11) => None,
        };
        if send(&mut conn, response, head.method == "HEAD", connection).await.is_err() {
            return;
        }
        if close {
            return conn.close().await;
        }
    }
}

/// Ends a connection whose request could not be read, answering first if there is someone to answer.
async fn refuse(mut conn: Conn, stop: Stop) {
    if let Stop::Respond(status) = stop {
        if send(&mut conn, Response::status(status), false, Some("close")).await.is_ok() {
            conn.close().await;
        }
    }
}
