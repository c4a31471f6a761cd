//! HTTP/2 connections. `h2` does the protocol (frames, HPACK, flow control,
//! stream states); this file decides what each stream is answered and when.
//!
//! Interleaving comes from two things together. Each response body is handed
//! to h2 at most 16 KiB at a time, and only as much as the flow-control
//! window allows (`reserve_capacity`, then `poll_capacity`); and h2 writes one
//! DATA frame (at most SETTINGS_MAX_FRAME_SIZE, 16 KiB unless the client
//! allows more) from the stream at the head of its queue of streams with data
//! to send, then puts that stream at the back. So frames of concurrent
//! responses go out in turn and a small response waits for at most one frame
//! of each other stream, never for a whole large one.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use h2::server::{self, SendResponse};
use h2::{Reason, RecvStream, SendStream};
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Method, Request, Response, Uri};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};

use super::fault::Fault;
use super::site::{self, Body, Reply, Resource, MAX_ECHO};
use super::Config;

/// SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 §6.5.2).
const MAX_CONCURRENT_STREAMS: u32 = 100;
/// SETTINGS_MAX_HEADER_LIST_SIZE, HPACK-decoded; h2 also caps the CONTINUATION frames that carry it.
const MAX_HEADER_LIST_SIZE: u32 = 16 << 10;
/// Streams the client reset before they were accepted, held at once; past it the connection is
/// closed with ENHANCE_YOUR_CALM (the "rapid reset" attack, CVE-2023-44487).
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams this server had to reset for the client's protocol errors, before it closes the
/// connection with ENHANCE_YOUR_CALM.
const MAX_LOCAL_ERROR_RESETS: usize = 256;
/// Locally reset streams whose late frames are still ignored rather than treated as errors.
const MAX_CONCURRENT_RESETS: usize = 50;
/// Streams being answered at once. A stream the client resets stops counting against
/// MAX_CONCURRENT_STREAMS at once while its task may take a moment to notice, so resetting
/// streams as fast as they open cannot pile up tasks past this.
const MAX_HANDLERS: usize = 2 * MAX_CONCURRENT_STREAMS as usize;
/// Largest piece of a body handed to h2 at once: one DATA frame at the default maximum frame size.
const CHUNK: usize = 16 << 10;
/// How long a connection told to go away (GOAWAY) has to finish before it is dropped.
const GOAWAY_WAIT: Duration = Duration::from_secs(1);
/// Streams of the whole server being answered at once: each may hold an open file, an HTML
/// page (up to 256 KiB) or an echo (up to 1 MiB in, the same out) while its client takes its
/// time, so this bounds descriptors and memory however many connections are full of streams.
/// Others wait for a place, up to `idle`, then get 503.
pub(super) const MAX_IN_FLIGHT: usize = 512;

/// Serves one HTTP/2 connection, `io` starting with the client's preface.
pub(super) async fn serve<T>(io: T, config: &Arc<Config>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut builder = server::Builder::new();
    builder
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        .max_concurrent_reset_streams(MAX_CONCURRENT_RESETS);
    let Ok(Ok(mut connection)) = timeout(config.line_timeout, builder.handshake::<T, Bytes>(io)).await else {
        return;
    };
    // Aborted with this future: a connection that ends takes its streams' tasks with it.
    let mut handlers = JoinSet::new();
    let (mut whole, mut sending) = (Queue::default(), Queue::default());
    let idle = tokio::time::sleep(config.idle);
    tokio::pin!(idle);
    let mut answered = 0u32;
    loop {
        tokio::select! {
            accepted = connection.accept() => match accepted {
                Some(Ok((request, mut respond))) => {
                    answered += 1;
                    if answered > 1 && config.faults.has(Fault::FirstStreamOnly) {
                        respond.send_reset(Reason::CANCEL);
                        continue;
                    }
                    if handlers.len() >= MAX_HANDLERS {
                        respond.send_reset(Reason::REFUSED_STREAM);
                        continue;
                    }
                    // Places in the queues are taken here, in the order the streams arrived,
                    // not when their tasks first run, which is in no particular order.
                    let whole = config.faults.has(Fault::OneAtATime).then(|| whole.join());
                    let sending = (!config.interleave).then(|| sending.join());
                    handlers.spawn(answer(request, respond, config.clone(), whole, sending));
                }
                // A connection error has been sent to the client (GOAWAY) by h2; or the client is done.
                Some(Err(_)) | None => return,
            },
            Some(_) = handlers.join_next(), if !handlers.is_empty() => {
                if handlers.is_empty() {
                    idle.as_mut().reset(Instant::now() + config.idle);
                }
            }
            () = &mut idle, if handlers.is_empty() => break,
        }
    }
    // RFC 9113 §6.8: GOAWAY first, so the client knows no stream was cut off.
    connection.graceful_shutdown();
    let _ = timeout(GOAWAY_WAIT, async { while let Some(Ok(_)) = connection.accept().await {} }).await;
}

/// Streams in the order they arrived, for the orders that make them wait for each other.
#[derive(Debug, Default)]
struct Queue {
    last: Option<oneshot::Receiver<()>>,
}

impl Queue {
    fn join(&mut self) -> Turn {
        let (mine, next) = oneshot::channel();
        Turn {
            before: self.last.replace(next),
            _mine: mine,
        }
    }
}

/// A place in a `Queue`: its turn comes when every place before it has been dropped.
#[derive(Debug)]
struct Turn {
    before: Option<oneshot::Receiver<()>>,
    /// Dropped with the turn, which tells the next one its turn has come.
    _mine: oneshot::Sender<()>,
}

impl Turn {
    /// Cancel-safe: a wait given up on leaves the place as it was.
    async fn wait(&mut self) {
        if let Some(before) = &mut self.before {
            // Nothing is ever sent: the sender's drop is the signal.
            let _ = before.await;
            self.before = None;
        }
    }
}

/// Answers one stream; `whole` (fault `one-at-a-time`) waits for the earlier streams before
/// anything, `sending` (`interleave=false`) before its response goes out.
async fn answer(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    config: Arc<Config>,
    mut whole: Option<Turn>,
    mut sending: Option<Turn>,
) {
    if let Some(turn) = &mut whole {
        turn.wait().await;
    }
    let Ok(Ok(_place)) = timeout(config.idle, config.in_flight.acquire()).await else {
        return send_reply(&mut respond, Reply::status(503), false, config.idle).await;
    };
    let (parts, body) = request.into_parts();
    if config.faults.has(Fault::StrictFields) && (parts.headers.contains_key("te") || parts.headers.contains_key("priority")) {
        return respond.send_reset(Reason::PROTOCOL_ERROR);
    }
    let method = parts.method.as_str();
    let target = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let reply = match site::resource(target) {
        Ok(Resource::Echo) if method == "POST" => match read_body(body, &parts.headers, config.line_timeout).await {
            Ok(body) => Reply::echo(body),
            Err(status) => Reply::status(status),
        },
        Ok(resource) => site::respond(&config.site, method, resource).await,
        Err(status) => Reply::status(status),
    };
    let reply = match reply {
        Reply { status: 404, fields, body } if config.faults.has(Fault::No404) => Reply { status: 200, fields, body },
        reply => reply,
    };
    if let Some(turn) = &mut sending {
        turn.wait().await;
    }
    let pushed = match reply.page() {
        Some(page) if config.push && !config.faults.has(Fault::NoPush) && parts.method == Method::GET => {
            match site::asset_to_push(parts.uri.path(), page) {
                Some(path) => promise(&mut respond, &parts.uri, &path, &config).await,
                None => None,
            }
        }
        _ => None,
    };
    let head_only = parts.method == Method::HEAD && !config.faults.has(Fault::HeadBody);
    let main = send_reply(&mut respond, reply, head_only, config.idle);
    let Some((mut promised, asset)) = pushed else {
        return main.await;
    };
    let push = async {
        let Some(head) = response_head(&asset) else {
            return promised.send_reset(Reason::INTERNAL_ERROR);
        };
        let empty = asset.len() == 0;
        if let Ok(out) = promised.send_response(head, empty) {
            if !empty {
                send_body(out, asset.body, config.idle).await;
            }
        }
    };
    if config.interleave {
        tokio::join!(main, push);
    } else {
        main.await;
        push.await;
    }
}

/// Sends `reply` (its head only for HEAD) on a stream the client opened.
async fn send_reply(respond: &mut SendResponse<Bytes>, reply: Reply, head_only: bool, idle: Duration) {
    let Some(head) = response_head(&reply) else {
        return respond.send_reset(Reason::INTERNAL_ERROR);
    };
    let empty = head_only || reply.len() == 0;
    if let Ok(out) = respond.send_response(head, empty) {
        if !empty {
            send_body(out, reply.body, idle).await;
        }
    }
}

/// Reads a request body of at most `MAX_ECHO` bytes, all of it within `limit`: else 413 or 408.
async fn read_body(mut body: RecvStream, headers: &HeaderMap, limit: Duration) -> Result<Bytes, u16> {
    // h2 itself resets a stream whose DATA disagrees with its content-length (RFC 9113 §8.1.1).
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_ECHO) {
        return Err(413);
    }
    let read = async {
        let mut got = BytesMut::new();
        while let Some(chunk) = body.data().await {
            // The client reset the stream: nobody will read the answer either.
            let chunk = chunk.map_err(|_| 400_u16)?;
            // Given back at once, so the client's window reopens as the body is read.
            let _ = body.flow_control().release_capacity(chunk.len());
            if (got.len() + chunk.len()) as u64 > MAX_ECHO {
                return Err(413);
            }
            got.extend_from_slice(&chunk);
        }
        Ok(got.freeze())
    };
    timeout(limit, read).await.unwrap_or(Err(408))
}

/// Promises the asset at `path` (RFC 9113 §8.4) on the stream being answered, if it is a file
/// that is there and the client accepts pushes; returns the promised stream and its response.
async fn promise(
    respond: &mut SendResponse<Bytes>,
    page: &Uri,
    path: &str,
    config: &Config,
) -> Option<(server::SendPushedResponse<Bytes>, Reply)> {
    let resource @ Resource::File { .. } = site::resource(path).ok()? else {
        return None;
    };
    let reply = site::respond(&config.site, "GET", resource).await;
    if reply.status != 200 {
        return None;
    }
    // The promised request names the page's origin (§8.4.1: an :authority the server is
    // authoritative for); a request that gave none has nothing to push under.
    let uri = Uri::builder()
        .scheme(page.scheme()?.clone())
        .authority(page.authority()?.clone())
        .path_and_query(path)
        .build()
        .ok()?;
    let request = Request::builder().method(Method::GET).uri(uri).body(()).ok()?;
    // h2 refuses when the client's SETTINGS_ENABLE_PUSH is 0 (§6.5.2): then nothing is pushed.
    let promised = respond.push_request(request).ok()?;
    Some((promised, reply))
}

/// The response's HEADERS: status, date (RFC 9110 §6.6.1), the reply's fields and content-length.
fn response_head(reply: &Reply) -> Option<Response<()>> {
    let mut head = Response::builder()
        .status(reply.status)
        .header("date", httpdate::fmt_http_date(SystemTime::now()));
    for (name, value) in &reply.fields {
        head = head.header(*name, value.as_str());
    }
    head.header("content-length", reply.len()).body(()).ok()
}

/// Sends `body` in DATA frames of at most `CHUNK` bytes as the flow-control window opens; a
/// stream that gets no window for `idle` is reset, and so is one whose file cannot be read.
async fn send_body(mut out: SendStream<Bytes>, body: Body, idle: Duration) {
    match body {
        Body::Bytes(mut rest) => {
            while !rest.is_empty() {
                let Some(n) = capacity(&mut out, rest.len(), idle).await else {
                    return;
                };
                let chunk = rest.split_to(n);
                if out.send_data(chunk, rest.is_empty()).is_err() {
                    return;
                }
            }
        }
        Body::File(mut file, len) => {
            let mut left = len;
            while left > 0 {
                let want = usize::try_from(left).unwrap_or(CHUNK);
                let Some(n) = capacity(&mut out, want, idle).await else {
                    return;
                };
                let mut chunk = vec![0; n];
                // A file cut short since its length was sent cannot keep the promise.
                if file.read_exact(&mut chunk).await.is_err() {
                    return out.send_reset(Reason::INTERNAL_ERROR);
                }
                left -= n as u64;
                if out.send_data(Bytes::from(chunk), left == 0).is_err() {
                    return;
                }
            }
        }
    }
}

/// Waits (up to `idle`) until the stream may send some of `want` bytes, at most `CHUNK`; `None`
/// when the stream is gone (reset by the client, or here after waiting too long).
async fn capacity(out: &mut SendStream<Bytes>, want: usize, idle: Duration) -> Option<usize> {
    let want = want.min(CHUNK);
    out.reserve_capacity(want);
    loop {
        let got = out.capacity();
        if got > 0 {
            return Some(got.min(want));
        }
        match timeout(idle, poll_fn(|cx| out.poll_capacity(cx))).await {
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return None,
            Err(_) => {
                out.send_reset(Reason::CANCEL);
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_come_in_the_order_they_were_taken() {
        let mut queue = Queue::default();
        let (mut first, mut second, mut third) = (queue.join(), queue.join(), queue.join());
        first.wait().await;
        let waiting = timeout(Duration::from_millis(20), second.wait()).await;
        assert!(waiting.is_err(), "the second waits while the first is held");
        drop(first);
        timeout(Duration::from_secs(5), second.wait()).await.expect("second's turn");
        drop(second);
        timeout(Duration::from_secs(5), third.wait()).await.expect("third's turn");
    }
}
