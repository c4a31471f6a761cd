//! `dash-origin`: the DASH lab's origin (`docs/dash.md`, "The origin"), the oracle for the
//! `dash-server` suite. An HTTP/1.1 server (RFC 9110, RFC 9112) of the files under a folder,
//! by default `fixtures/dash/` (the presentation `testsrc/` and the on-demand `ondemand/`).
//!
//! - GET and HEAD (HEAD has GET's fields, Range included, and no content); OPTIONS is a CORS
//!   preflight, 204 for any target; any other method is 405 with `Allow: GET, HEAD, OPTIONS`.
//! - Content-Type by extension: `.mpd` `application/dash+xml`, `.mp4` `video/mp4`, `.m4s`
//!   `video/iso.segment`, anything else `application/octet-stream`.
//! - Every response has Date and, except the 204, Content-Length; files have
//!   `Accept-Ranges: bytes` and Last-Modified (no ETag, so an If-Range that is not that date
//!   turns a range request into a whole one).
//! - Ranges: one satisfiable `bytes=` range (`A-B`, `A-`, `-N`; B past the end clamps) is 206
//!   with `Content-Range: bytes A-B/LEN`; a Range of which nothing is satisfiable is 416 with
//!   `Content-Range: bytes */LEN`; several ranges get the whole file (200), and so does a Range
//!   that is not valid syntax or not in bytes (RFC 9110 §14.2: ignored).
//! - CORS on every response: `Access-Control-Allow-Origin: *` and
//!   `Access-Control-Expose-Headers: Content-Length, Content-Range, Date`.
//! - Only the root is served: the path is percent-decoded once, a `..` segment left after that
//!   is 403, and so is a path that resolves (through symlinks) outside the root; missing files
//!   and folders are 404.
//! - Persistent connections (RFC 9112 §9.3); a malformed request is answered (400, or 414, 431,
//!   505) with `Connection: close` and the connection closed. A request body (which GET and HEAD
//!   should not have) is read and dropped if small and length-delimited; otherwise the answer
//!   says `Connection: close`.
//! - Bounded: the head is at most 16 KiB, file content goes out 64 KiB at a time, a connection
//!   idle for `idle` between requests is closed, a request not complete `line_timeout` after its
//!   first byte gets 408, and at most `max_connections` are open (see `guard`).
//!
//! Options: `root` (the folder), `idle` (default 10s), `fault` (see `fault`), and the guard's
//! `max_connections` and `line_timeout`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::guard::{self, Goodbye, Limits, Reason, Stream};
use crate::{parse_duration, Error, OptionSet, Options, RunningServer, Transport};

mod answer;
mod fault;
mod files;
mod range;
mod request;
mod response;
#[cfg(test)]
mod tests;

use answer::Site;
use fault::{Fault, Faults};
use request::{Conn, Stop};
use response::{send, Response};

/// The name suites and the CLI use for this server.
pub(crate) const NAME: &str = "dash-origin";
const OPTIONS: &[&str] = &["root", "idle", "fault", guard::OPTIONS[0], guard::OPTIONS[1]];

/// The default root, relative to the current directory.
const DEFAULT_ROOT: &str = "fixtures/dash";
/// The repository's DASH fixtures, for a default root when run from elsewhere (e.g. `cargo test`).
const CHECKOUT_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/dash");

/// Checks the options, binds, and starts serving.
pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let idle = opts.get("idle", "10s", parse_duration)?;
    let faults = opts.get("fault", "", fault::parse)?;
    let limits = Limits::from_options(&opts)?;
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
    let site = Arc::new(Site { root, faults });
    let server_socket = TcpListener::bind(bind).await?;
    let local_addr = server_socket.local_addr()?;
    Ok(RunningServer::spawn(
        local_addr,
        Transport::Tcp,
        serve(server_socket, site, idle, limits),
    ))
}

/// `path` made canonical, if it is a directory.
fn directory(path: &Path) -> Result<PathBuf, String> {
    let canonical = path.canonicalize().map_err(|e| format!("expected a directory: {e}"))?;
    if !canonical.is_dir() {
        return Err("expected a directory".to_owned());
    }
    Ok(canonical)
}

/// Serves every connection within `limits` (see `guard`).
async fn serve(server_socket: TcpListener, site: Arc<Site>, idle: Duration, limits: Limits) {
    let goodbye = goodbye(site.faults);
    guard::serve(server_socket, limits, goodbye, move |stream, _addr| {
        let site = site.clone();
        async move { handle(stream, &site, idle).await }
    })
    .await;
}

/// RFC 9110 §15.5.9: 408 when a request did not arrive complete in time, with
/// `Connection: close` since the server is closing (RFC 9112 §9.6). A connection with no request
/// under way is owed nothing and is just closed (RFC 9112 §9.5).
fn goodbye(faults: Faults) -> Goodbye {
    Arc::new(move |reason| {
        (reason == Reason::Slow).then(|| {
            let response = answer::with_cors(Response::status(408), faults);
            let mut words = response::head(&response, Some("close")).into_bytes();
            if let response::Body::Bytes(body) = response.body {
                words.extend_from_slice(&body);
            }
            words
        })
    })
}

/// Serves requests on one connection, in order, until either side is done with it.
async fn handle(stream: Stream, site: &Site, idle: Duration) {
    let mut conn = Conn::new(stream, idle);
    loop {
        let head = match conn.read_head().await {
            Ok(head) => head,
            Err(stop) => return refuse(conn, stop, site.faults).await,
        };
        let body_read = match conn.skip_body(&head).await {
            Ok(read) => read,
            Err(stop) => return refuse(conn, stop, site.faults).await,
        };
        let response = answer::answer(site, &head).await;
        // A 400 is for a target that makes no sense: nothing says the next request would.
        let close = !head.keep_alive || !body_read || response.status == 400;
        let hang_up = close || response.hangs_up || site.faults.has(Fault::ClosesSilently);
        let connection = match (close, head.http10) {
            (true, _) => Some("close"),
            (false, true) => Some("keep-alive"),
            (false, false) => None,
        };
        let with_content = head.method != "HEAD" || site.faults.has(Fault::HeadBody);
        if send(&mut conn, response, with_content, connection).await.is_err() {
            return;
        }
        if hang_up {
            return conn.close().await;
        }
    }
}

/// Ends a connection whose request could not be read, answering first if there is someone to answer.
async fn refuse(mut conn: Conn, stop: Stop, faults: Faults) {
    if let Stop::Respond(status) = stop {
        let response = answer::with_cors(Response::status(status), faults);
        if send(&mut conn, response, true, Some("close")).await.is_ok() {
            conn.close().await;
        }
    }
}
