//! `http2-client`: an HTTP/2 client (RFC 9113) over cleartext with prior knowledge, done right;
//! the oracle for the `http2-client` suite. Its command-line arguments:
//!
//! ```text
//! get PATH LOCAL [PATH LOCAL ...]   a GET for every PATH, concurrently on one connection, each
//!                                   response body saved byte for byte as LOCAL
//! post PATH FILE LOCAL              a POST of FILE's bytes to PATH, the response body saved as LOCAL
//! ```
//!
//! One connection, opened with the client preface at once (prior knowledge, RFC 9113 §3.3); the
//! requests start once the server's SETTINGS are in force (its SETTINGS_MAX_CONCURRENT_STREAMS,
//! window and frame sizes), each on its own stream. SETTINGS_ENABLE_PUSH is 0. Flow control is
//! kept both ways: an upload waits for the window, and every DATA frame received is given back
//! with WINDOW_UPDATE as it is read. The exit code is 0 when every response is complete and 2xx;
//! 1 otherwise: a 4xx or 5xx, a stream reset, a malformed response (§8.1.1: a client MUST NOT
//! accept one; RST_STREAM PROTOCOL_ERROR), a connection error (ours: GOAWAY with the code RFC 9113
//! names, then close, §5.4.1; or the server's GOAWAY with an error code), or no end within
//! `timeout`. A complete response followed by RST_STREAM NO_ERROR is kept (§8.1). A request the
//! server did not process (above the last stream of a GOAWAY with NO_ERROR, or refused with
//! REFUSED_STREAM) is sent again on a new connection, up to `MAX_ATTEMPTS` connections in all
//! (§8.7). Each body is saved once its response is complete, whatever its status; errors are
//! printed as `error: ...`.
//!
//! `h2` does the protocol; `relay.rs` sits between it and the socket, checks the server's frames
//! and plays the faults (see there why).
//!
//! Options: `timeout` (the whole run, 10s), `max_body` (octets a response body or an upload may
//! have, 64 MiB) and `fault`: deliberate bugs (comma-separated, none by default) that the
//! suite's proofs switch on (`fault.rs`), and `tls_ca`: the PEM file of the CA to trust, for
//! HTTP/2 over TLS to the server `localhost` with ALPN `h2` (RFC 9113 §3.2) instead of prior
//! knowledge over cleartext. TLS sits between the relay and the socket, so the relay (and every
//! fault it plays) sees the same frames either way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use h2::SendStream;
use http::{Method, Request};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use crate::tls::{self, ClientStream};
use crate::{parse_count, parse_duration, Error, OptionSet, Options};

mod fault;
mod fields;
mod frame;
mod relay;

use fault::{Fault, Faults};
use relay::{Relay, Report};

/// The name suites and the CLI use for this client.
pub(crate) const NAME: &str = "http2-client";
const OPTIONS: &[&str] = &["timeout", "max_body", "fault", tls::CA];

/// What the requests say they are.
const USER_AGENT: &str = "wirecheck-reference/1";
/// Room for the framing overhead of buffered DATA frames (h2 counts 256 octets less the payload
/// for each small one): every octet of both default windows in a frame of its own.
const DATA_FRAME_BUDGET: usize = 2 * relay::DEFAULT_WINDOW as usize * 256;
/// How long, once the requests are done, h2 and the relay get to say goodbye (GOAWAY, close).
const GOODBYE: Duration = Duration::from_secs(1);

/// One request of the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Req {
    method: Method,
    path: String,
    /// The file to upload, for a POST.
    upload: Option<PathBuf>,
    local: PathBuf,
}

/// `get PATH LOCAL [PATH LOCAL ...] | post PATH FILE LOCAL` as requests.
fn parse_args(args: &[String]) -> Result<Vec<Req>, String> {
    const USAGE: &str = "expected get PATH LOCAL [PATH LOCAL ...] | post PATH FILE LOCAL";
    let path = |p: &String| {
        // The path goes in :path as it is: origin-form, with nothing HTTP forbids (RFC 9113 §8.3.1).
        if !p.starts_with('/') || p.bytes().any(|b| b <= b' ' || b == 0x7f) {
            Err(format!("path {p:?} must start with / and have no spaces or control characters"))
        } else {
            Ok(p.clone())
        }
    };
    let file = |p: &String| match p.is_empty() {
        true => Err("empty local path".to_owned()),
        false => Ok(PathBuf::from(p)),
    };
    match args {
        [verb, rest @ ..] if verb == "get" && !rest.is_empty() && rest.len() % 2 == 0 => rest
            .chunks(2)
            .map(|pair| {
                Ok(Req {
                    method: Method::GET,
                    path: path(&pair[0])?,
                    upload: None,
                    local: file(&pair[1])?,
                })
            })
            .collect(),
        [verb, to, from, out] if verb == "post" => Ok(vec![Req {
            method: Method::POST,
            path: path(to)?,
            upload: Some(file(from)?),
            local: file(out)?,
        }]),
        _ => Err(USAGE.to_owned()),
    }
}

/// The file to upload, if it is a readable file of at most `max` octets.
fn read_upload(path: &std::path::Path, max: u64) -> Result<Bytes, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() || meta.len() > max {
        return Err(format!("{shown} is not a file of at most {max} octets"));
    }
    std::fs::read(path)
        .map(Bytes::from)
        .map_err(|e| format!("cannot read {shown}: {e}"))
}

/// A complete response.
#[derive(Debug)]
struct Got {
    status: u16,
    body: Bytes,
}

/// Runs the client; 0 when every response is complete and 2xx.
pub(crate) async fn run(server: SocketAddr, opts: &Options, args: &[String], out: UnboundedSender<String>) -> Result<i32, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let wait = opts.get("timeout", "10s", parse_duration)?;
    let max_body = opts.get("max_body", "67108864", |v| parse_count(v, 0, u64::MAX))?;
    let faults = opts.get("fault", "", fault::parse)?;
    let tls = tls::client_options(&opts, &[tls::H2])?;
    // A closed output channel only means nobody is listening any more.
    let print = move |line: String| {
        let _ = out.send(line);
    };
    let reqs = parse_args(args).map_err(|why| Error::BadArgs {
        client: NAME.to_owned(),
        why,
    })?;
    // An upload that cannot be read is found before the server is bothered.
    let mut uploads = Vec::new();
    for req in &reqs {
        match req.upload.as_deref().map(|path| read_upload(path, max_body)).transpose() {
            Ok(body) => uploads.push(body),
            Err(why) => {
                print(format!("error: {why}"));
                return Ok(1);
            }
        }
    }
    let limits = Limits {
        max_body: usize::try_from(max_body).unwrap_or(usize::MAX),
        faults,
        scheme: if tls.is_some() { "https" } else { "http" },
        wait,
    };
    // One connection for all, or (fault) one each, side by side.
    let jobs = reqs.iter().zip(uploads).enumerate().map(|(i, (req, body))| Job {
        at: i,
        method: req.method.clone(),
        path: req.path.clone(),
        body,
    });
    let groups: Vec<Vec<Job>> = match faults.has(Fault::OneConnectionPerRequest) {
        true => jobs.map(|job| vec![job]).collect(),
        false => vec![jobs.collect()],
    };
    let mut connections = JoinSet::new();
    for group in groups {
        connections.spawn(connection(server, group, limits, tls.clone(), 1));
    }
    let mut results: Vec<Option<Result<Got, String>>> = reqs.iter().map(|_| None).collect();
    let mut failed = false;
    let all = async {
        while let Some(done) = connections.join_next().await {
            let Ok(done) = done else { continue };
            for (i, result) in done.results {
                results[i] = Some(result);
            }
            for note in done.notes {
                print(note);
            }
            if !done.retry.is_empty() {
                print(format!(
                    "{} request(s) the server did not process, sent again on a new connection",
                    done.retry.len()
                ));
                connections.spawn(connection(server, done.retry, limits, tls.clone(), done.attempt + 1));
            }
            if let Some(why) = done.failure {
                print(format!("error: {why}"));
                failed = true;
            }
        }
    };
    if timeout(wait, all).await.is_err() {
        connections.abort_all();
        print(format!("error: not done within {wait:?}"));
        failed = true;
    }
    for (req, result) in reqs.iter().zip(results) {
        let (method, path, local) = (&req.method, &req.path, req.local.display());
        match result {
            Some(Ok(got)) => {
                if let Err(e) = tokio::fs::write(&req.local, &got.body).await {
                    print(format!("error: cannot write {local}: {e}"));
                    failed = true;
                    continue;
                }
                print(format!(
                    "{method} {path}: {}, {} octets saved as {local}",
                    got.status,
                    got.body.len()
                ));
                if !(200..300).contains(&got.status) && !faults.has(Fault::IgnoresStatus) {
                    print(format!("error: {method} {path}: status {}", got.status));
                    failed = true;
                }
            }
            Some(Err(why)) => {
                print(format!("error: {method} {path}: {why}"));
                failed = true;
            }
            None => failed = true,
        }
    }
    Ok(i32::from(failed))
}

/// What every request needs to know.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_body: usize,
    faults: Faults,
    /// `:scheme`: `https` over TLS (RFC 9113 §8.3.1).
    scheme: &'static str,
    /// The whole run's time, which bounds a connection's setup too.
    wait: Duration,
}

/// A request as it is sent.
#[derive(Debug, Clone)]
struct Job {
    /// Its place on the command line.
    at: usize,
    method: Method,
    path: String,
    body: Option<Bytes>,
}

/// How one connection went.
struct Done {
    /// Each request's outcome, by its place on the command line.
    results: Vec<(usize, Result<Got, String>)>,
    /// The connection error, if there was one.
    failure: Option<String>,
    notes: Vec<String>,
    /// Requests the server did not process (refused, or above its GOAWAY's last stream), to be
    /// sent again on a new connection (RFC 9113 §8.7).
    retry: Vec<Job>,
    /// Which connection this was for these requests: 1 the first, 2 the first retry ...
    attempt: u32,
}

/// How many connections a request is tried on.
const MAX_ATTEMPTS: u32 = 3;

/// Why a request failed.
#[derive(Debug)]
enum Fail {
    /// The server did not process it: it may be sent again (RFC 9113 §8.7).
    Unprocessed(String),
    /// Anything else.
    Failed(String),
}

impl From<h2::Error> for Fail {
    fn from(e: h2::Error) -> Fail {
        // A graceful GOAWAY that left the stream out, or RST_STREAM REFUSED_STREAM: both say
        // the request was not processed (§8.7).
        let left_out = e.is_go_away() && e.reason() == Some(h2::Reason::NO_ERROR);
        let refused = e.is_reset() && e.reason() == Some(h2::Reason::REFUSED_STREAM);
        match e.is_remote() && (left_out || refused) {
            true => Fail::Unprocessed(e.to_string()),
            false => Fail::Failed(e.to_string()),
        }
    }
}

impl From<String> for Fail {
    fn from(why: String) -> Fail {
        Fail::Failed(why)
    }
}

/// One connection carrying `reqs` concurrently.
async fn connection(server: SocketAddr, jobs: Vec<Job>, limits: Limits, tls: Option<TlsConnector>, attempt: u32) -> Done {
    let fail_all = |why: String| Done {
        results: jobs.iter().map(|job| (job.at, Err("no response".to_owned()))).collect(),
        failure: Some(why),
        notes: Vec::new(),
        retry: Vec::new(),
        attempt,
    };
    let stream = match ClientStream::connect(server, tls.as_ref(), limits.wait).await {
        Ok(stream) => stream,
        Err(why) => return fail_all(why),
    };
    // RFC 9113 §3.2: over TLS, HTTP/2 is what ALPN chose, or nothing.
    if tls.is_some() && stream.alpn() != Some(tls::H2) {
        return fail_all(format!(
            "the server did not choose h2 in ALPN (RFC 9113 §3.2) but {:?}",
            stream.alpn().map(String::from_utf8_lossy)
        ));
    }
    // Small frames (a SETTINGS ACK, a PING ACK, WINDOW_UPDATE) must not wait for Nagle.
    let _ = stream.tcp().set_nodelay(true);
    let (pipe, mut relay) = Relay::start(stream, limits.faults);
    let mut builder = h2::client::Builder::new();
    builder
        .enable_push(false)
        .initial_window_size(relay::DEFAULT_WINDOW)
        .initial_connection_window_size(relay::DEFAULT_WINDOW)
        // h2 ends a connection whose small DATA frames pile up faster than they are read (a
        // defence for servers); a body in one-octet frames is legal (RFC 9113 §6.1), and the
        // windows bound what can pile up anyway.
        .data_frame_budget(DATA_FRAME_BUDGET);
    let (send, h2_conn) = match builder.handshake::<_, Bytes>(pipe).await {
        Ok(pair) => pair,
        Err(e) => return fail_all(format!("HTTP/2 handshake: {e}")),
    };
    let driver = tokio::spawn(h2_conn);
    // The server's SETTINGS first (RFC 9113 §3.4 lets a client go on without them, but their
    // limits, SETTINGS_MAX_CONCURRENT_STREAMS above all, would then be learnt too late).
    let settled = relay.settled().await;
    let mut results = Vec::new();
    let mut retry = Vec::new();
    if settled {
        let authority = server.to_string();
        let mut streams = JoinSet::new();
        for job in jobs.iter().cloned() {
            let (send, authority, report) = (send.clone(), authority.clone(), relay.report.clone());
            streams.spawn(async move { (job.at, request(send, &authority, job, report, limits).await) });
        }
        while let Some(done) = streams.join_next().await {
            let Ok((at, result)) = done else { continue };
            let result = match result {
                Ok(got) => Ok(got),
                Err(Fail::Unprocessed(why)) if attempt < MAX_ATTEMPTS && !limits.faults.has(Fault::GoawayFails) => {
                    retry.extend(jobs.iter().filter(|job| job.at == at).cloned());
                    Err(why)
                }
                Err(Fail::Unprocessed(why) | Fail::Failed(why)) => Err(why),
            };
            results.push((at, result));
        }
    } else {
        results = jobs.iter().map(|job| (job.at, Err("no response".to_owned()))).collect();
    }
    // No more requests: h2 sends GOAWAY and closes once its streams are done.
    drop(send);
    let ended = timeout(GOODBYE, driver).await;
    let shared = relay.report.clone();
    relay.finish(GOODBYE).await;
    let report = std::mem::take(&mut *shared.lock().unwrap_or_else(|e| e.into_inner()));
    let failure = connection_failure(&report, settled, ended.ok().and_then(Result::ok));
    if let Some(code) = report.goaway.filter(|_| limits.faults.has(Fault::GoawayFails)) {
        let why = format!("the server sent GOAWAY {}", relay::code_name(code));
        results = results.into_iter().map(|(i, _)| (i, Err(why.clone()))).collect();
    }
    Done {
        results,
        failure,
        notes: report.notes,
        retry,
        attempt,
    }
}

/// Why the connection failed, if it did: a connection error either side named, or none at all.
fn connection_failure(report: &Report, settled: bool, h2_end: Option<Result<(), h2::Error>>) -> Option<String> {
    if let Some(why) = &report.error {
        return Some(format!("connection error: {why}"));
    }
    if let Some(code) = report.goaway.filter(|code| *code != 0) {
        return Some(format!("the server sent GOAWAY {}", relay::code_name(code)));
    }
    if let Some(Err(e)) = h2_end {
        if e.is_go_away() && e.reason() != Some(h2::Reason::NO_ERROR) {
            return Some(format!("connection error: {e}"));
        }
    }
    (!settled).then(|| "the connection ended before the server's SETTINGS".to_owned())
}

/// One request on its own stream: sent, its body uploaded within the windows, its response read.
async fn request(send: SendRequest<Bytes>, authority: &str, job: Job, report: Arc<Mutex<Report>>, limits: Limits) -> Result<Got, Fail> {
    let mut send = send.ready().await?;
    let mut head = Request::builder()
        .method(job.method)
        .uri(format!("{}://{authority}{}", limits.scheme, job.path))
        .header("user-agent", USER_AGENT)
        .header("accept", "*/*");
    let body = job.body.filter(|b| !b.is_empty());
    if let Some(body) = &body {
        head = head
            .header("content-type", "application/octet-stream")
            .header("content-length", body.len());
    }
    let head = head.body(()).map_err(|e| e.to_string())?;
    let (response, mut upload) = send.send_request(head, body.is_none())?;
    let id = u32::from(response.stream_id());
    let up = async {
        match body {
            Some(body) => send_body(&mut upload, body).await,
            None => Ok(()),
        }
    };
    let down = async {
        let response = response.await?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut got = BytesMut::new();
        let mut frames = 0;
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            // Given back at once: h2 sends WINDOW_UPDATE as the body is read (RFC 9113 §6.9).
            let _ = body.flow_control().release_capacity(chunk.len());
            // h2 hands over a body one DATA frame at a time.
            if limits.faults.has(Fault::FirstDataOnly) && frames > 0 {
                continue;
            }
            frames += 1;
            if got.len() + chunk.len() > limits.max_body {
                return Err(Fail::Failed(format!("a body over {} octets", limits.max_body)));
            }
            got.extend_from_slice(&chunk);
        }
        Ok(Got {
            status,
            body: got.freeze(),
        })
    };
    let (up, down) = tokio::join!(up, down);
    let got = down?;
    // A complete response stands even if the upload was cut short: the server may answer before
    // the request is complete and then reset the stream with NO_ERROR (RFC 9113 §8.1).
    let _ = up;
    let reset_after = report.lock().is_ok_and(|r| r.reset_after_end.contains(&id));
    if reset_after && limits.faults.has(Fault::DiscardsOnReset) {
        return Err(Fail::Failed(
            "RST_STREAM NO_ERROR after the response: response discarded".to_owned(),
        ));
    }
    Ok(got)
}

/// Sends `body` as the flow-control windows allow, the last piece with END_STREAM.
async fn send_body(upload: &mut SendStream<Bytes>, mut body: Bytes) -> Result<(), String> {
    while !body.is_empty() {
        // All of it is asked for: h2 cuts it into DATA frames of the size the server allows.
        upload.reserve_capacity(body.len());
        let n = loop {
            match upload.capacity() {
                0 => match std::future::poll_fn(|cx| upload.poll_capacity(cx)).await {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("the stream closed during the upload".to_owned()),
                },
                n => break n,
            }
        };
        let piece = body.split_to(n.min(body.len()));
        upload.send_data(piece, body.is_empty()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
