//! HTTP/1.1 on the HTTP/2 port, for clients without prior knowledge: one
//! request per connection, answered with `Connection: close` (RFC 9112 §9.6),
//! the same files and `/echo` as over HTTP/2. A request body is taken only by
//! Content-Length; chunked ones get 411 so the client can send a length.
//!
//! A body-less request with `Upgrade: h2c` switches the connection to HTTP/2
//! (`upgrade.rs`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use super::site::{self, Body, Reply, Resource, MAX_ECHO};
use super::upgrade;
use super::Config;
use crate::guard::Stream;

/// Longest request head (else 431).
const MAX_HEAD: usize = 16 << 10;
/// Most header field lines (else 431).
const MAX_FIELDS: usize = 100;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 << 10;
/// Bytes read from a file per write.
const FILE_CHUNK: usize = 64 << 10;
/// How long the client is given to close after the response, so unread request bytes do not
/// turn the close into a reset that destroys the response before it is read.
const LINGER: Duration = Duration::from_secs(1);
/// Bytes discarded at most while lingering.
const LINGER_DRAIN: u64 = 64 << 10;

/// A request head, owned.
#[derive(Debug)]
struct Head {
    method: String,
    target: String,
    http11: bool,
    fields: Vec<(String, Vec<u8>)>,
}

impl Head {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Serves the one request on `stream`, whose first bytes (`buf`) have been read already.
pub(super) async fn serve(mut stream: Stream, mut buf: Vec<u8>, config: &Arc<Config>) {
    let (head, used) = loop {
        match parse(&buf) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) if buf.len() >= MAX_HEAD => return finish(stream, Reply::status(431), false, config).await,
            Ok(None) => {}
            Err(status) => return finish(stream, Reply::status(status), false, config).await,
        }
        let mut more = vec![0; READ_CHUNK];
        match timeout(config.idle, stream.read(&mut more)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&more[..n]),
            Err(_) => return finish(stream, Reply::status(408), false, config).await,
            Ok(_) => return,
        }
    };
    buf.drain(..used);
    // h2c is HTTP/2 over cleartext (RFC 9113 §3.1): over TLS the Upgrade is ignored.
    if let (Ok(length), false) = (checked_length(&head), stream.is_tls()) {
        if let Some(offer) = upgrade::offered(&head.method, &head.target, &head.fields, length) {
            return upgrade::switch(stream, offer, buf, config).await;
        }
    }
    let reply = match checked_length(&head) {
        Err(status) => Reply::status(status),
        Ok(length) => match site::resource(&head.target) {
            Ok(Resource::Echo) if head.method == "POST" => echo(&mut stream, &head, length, buf, config).await,
            Ok(resource) => site::respond(&config.site, &head.method, resource).await,
            Err(status) => Reply::status(status),
        },
    };
    finish(stream, reply, head.method == "HEAD", config).await;
}

/// The head, and how many bytes of `buf` it took, if it is complete; else the status that refuses it.
fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, u16> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut request = httparse::Request::new(&mut fields);
    match request.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(used)) => Ok(Some((
            Head {
                method: request.method.unwrap_or_default().to_owned(),
                target: request.path.unwrap_or_default().to_owned(),
                http11: request.version == Some(1),
                fields: request.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect(),
            },
            used,
        ))),
        Err(httparse::Error::TooManyHeaders) => Err(431),
        // Anything but HTTP/1.0 and 1.1, the preface's `HTTP/2.0` included once it is not the preface.
        Err(httparse::Error::Version) => Err(505),
        Err(_) => Err(400),
    }
}

/// The body's length (0 without one), or the status that refuses the head's framing or Host.
fn checked_length(head: &Head) -> Result<u64, u16> {
    // RFC 9112 §3.2: exactly one Host in an HTTP/1.1 request.
    if head.http11 && head.values("host").count() != 1 {
        return Err(400);
    }
    if let Some(codings) = head.values("transfer-encoding").last() {
        let last = codings.rsplit(|&b| b == b',').next().unwrap_or_default().trim_ascii();
        return Err(if last.eq_ignore_ascii_case(b"chunked") { 411 } else { 501 });
    }
    let mut length = None;
    for value in head.values("content-length") {
        for item in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            let parsed = std::str::from_utf8(item)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(400_u16)?;
            // RFC 9112 §6.3: differing lengths are unrecoverable.
            if length.is_some_and(|l| l != parsed) {
                return Err(400);
            }
            length = Some(parsed);
        }
    }
    Ok(length.unwrap_or(0))
}

/// Reads `length` bytes of body (those in `buf` first) and sends them back.
async fn echo(stream: &mut Stream, head: &Head, length: u64, mut buf: Vec<u8>, config: &Config) -> Reply {
    if length > MAX_ECHO {
        return Reply::status(413);
    }
    let continue_expected = head.values("expect").any(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue"));
    // RFC 9110 §10.1.1: a client that asked may wait for this before sending the body.
    if head.http11 && continue_expected && (buf.len() as u64) < length {
        let interim = format!("HTTP/1.1 100 {}\r\n\r\n", site::reason(100));
        if !matches!(timeout(config.idle, stream.write_all(interim.as_bytes())).await, Ok(Ok(()))) {
            return Reply::status(408);
        }
    }
    // At most 1 MiB: the cast cannot truncate.
    let length = length as usize;
    while buf.len() < length {
        let mut more = vec![0; READ_CHUNK.min(length - buf.len())];
        match timeout(config.idle, stream.read(&mut more)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&more[..n]),
            _ => return Reply::status(408),
        }
    }
    buf.truncate(length);
    Reply::echo(buf.into())
}

/// Sends `reply` (its head only for HEAD), then closes the connection.
async fn finish(mut stream: Stream, reply: Reply, head_only: bool, config: &Config) {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nDate: {}\r\n",
        reply.status,
        site::reason(reply.status),
        httpdate::fmt_http_date(SystemTime::now())
    );
    for (name, value) in &reply.fields {
        head.push_str(&format!("{}: {value}\r\n", title_case(name)));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", reply.len()));
    let idle = config.idle;
    if !matches!(timeout(idle, stream.write_all(head.as_bytes())).await, Ok(Ok(()))) {
        return;
    }
    if !head_only {
        let written = match reply.body {
            Body::Bytes(bytes) => matches!(timeout(idle, stream.write_all(&bytes)).await, Ok(Ok(()))),
            Body::File(file, len) => copy_file(&mut stream, file, len, idle).await,
        };
        if !written {
            return;
        }
    }
    let _ = timeout(LINGER, stream.shutdown()).await;
    let mut rest = (&mut stream).take(LINGER_DRAIN);
    let _ = timeout(LINGER, tokio::io::copy(&mut rest, &mut tokio::io::sink())).await;
}

/// Writes `len` bytes of `file`, each piece within `idle`; false if that could not be done.
async fn copy_file(stream: &mut Stream, file: tokio::fs::File, len: u64, idle: Duration) -> bool {
    let mut file = file.take(len);
    let mut chunk = vec![0; FILE_CHUNK];
    let mut left = len;
    while left > 0 {
        let n = match file.read(&mut chunk).await {
            Ok(n) if n > 0 => n,
            _ => return false,
        };
        if !matches!(timeout(idle, stream.write_all(&chunk[..n])).await, Ok(Ok(()))) {
            return false;
        }
        left -= n as u64;
    }
    true
}

/// `content-type` as `Content-Type`, the way HTTP/1.1 field names are usually written.
fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(lines: &str) -> Head {
        let text = format!("{lines}\r\n\r\n");
        parse(text.as_bytes()).expect("parses").expect("complete").0
    }

    #[test]
    fn heads() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n").err(), Some(505));
        assert_eq!(parse(b"GET  / HTTP/1.1\r\n\r\n").err(), Some(400));
        assert_eq!(parse(b"\x00\x01\x02\r\n\r\n").err(), Some(400));
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(MAX_FIELDS + 1));
        assert_eq!(parse(many.as_bytes()).err(), Some(431));
    }

    #[test]
    fn lengths() {
        assert_eq!(checked_length(&head("GET / HTTP/1.1\r\nHost: x")), Ok(0));
        assert_eq!(checked_length(&head("GET / HTTP/1.0")), Ok(0));
        assert_eq!(checked_length(&head("GET / HTTP/1.1")), Err(400));
        assert_eq!(checked_length(&head("GET / HTTP/1.1\r\nHost: x\r\nHost: y")), Err(400));
        assert_eq!(checked_length(&head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5")), Ok(5));
        assert_eq!(checked_length(&head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5")), Ok(5));
        for bad in ["5, 6", "+5", "", "0x5", "99999999999999999999999"] {
            let text = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {bad}");
            assert_eq!(checked_length(&head(&text)), Err(400), "{bad}");
        }
        let chunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked";
        assert_eq!(checked_length(&head(chunked)), Err(411));
        let gzip = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip";
        assert_eq!(checked_length(&head(gzip)), Err(501));
    }

    #[test]
    fn field_names() {
        assert_eq!(title_case("content-type"), "Content-Type");
        assert_eq!(title_case("allow"), "Allow");
    }
}
