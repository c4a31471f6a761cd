//! The HTTP origin actor: an HTTP/1.1 origin server the harness plays, serving configured paths
//! (and, optionally, a folder) to whatever asks, as often as it asks. It keeps the rules it
//! checks: every response has Date (RFC 9110 §6.6.1) and a Content-Length, conditional requests
//! are answered 304 by the validators the path has (RFC 9110 §13.1.1, §13.1.3, §13.2.2), and a
//! 304 carries no Content-Length (RFC 9110 §8.6) but the fields RFC 9110 §15.4.5 names. Cases
//! count what it saw with `saw:` (`method`, `target`, `headers` of the request).
//!
//! ```yaml
//! actors:
//!   - name: origin
//!     http:
//!       folder: ../fixtures/www           # optional: GET /x serves folder/x
//!       paths:
//!         /fresh: { headers: { Cache-Control: max-age=60 }, body: "fresh\n" }
//!         /dated: { headers: { Expires: "@+60", Last-Modified: "@-3600" }, body: "..." }
//!         /twice: [ { body: "one\n" }, { body: "two\n" } ]   # successive responses; the last repeats
//! ```
//! A header value `@+N` / `@-N` is the HTTP-date N seconds after / before the response is sent;
//! `{{Name}}` in a body is the request's `Name` field (a response that varies on it).
//! Unsafe methods (POST, PUT, DELETE, PATCH) to any path get `200` with `done`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::parse::{HttpMessage, StartLine};
use crate::proto::common::actor::{ActorHandle, ActorKind, ActorLog, ActorSpec, Bound};
use crate::proto::{Codec, Direction, Framer, Transport};
use crate::syntax::{Data, LoadCx, Node};

/// A connection that sends nothing for this long is closed (RFC 9112 §9.8 lets a server close
/// idle connections).
const IDLE: Duration = Duration::from_secs(15);
/// Largest request the actor reads.
const MAX_REQUEST: usize = 1 << 20;

/// The `http:` actor vocabulary.
pub static ACTOR: ActorKind = ActorKind {
    key: "http",
    faults: &[
        ("stall", "reads each request and never answers (a stalled origin)"),
        ("close", "reads each request and closes the connection without an answer"),
    ],
    parse,
    options: None,
};

/// One configured response.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// What an origin serves.
#[derive(Debug, Clone)]
struct Origin {
    folder: Option<PathBuf>,
    folder_files: HashMap<String, Vec<u8>>,
    paths: HashMap<String, Vec<Reply>>,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn parse(node: &Node, cx: &mut LoadCx) -> Option<Arc<dyn ActorSpec>> {
    let f = cx.fields(node, &["folder", "paths"], "an HTTP origin actor")?;
    let mut origin = Origin {
        folder: None,
        folder_files: HashMap::new(),
        paths: HashMap::new(),
    };
    if let Some(n) = f.get("folder") {
        // Read at load time, like every file a suite names: a case never touches the disk.
        let written = cx.string(n, "folder")?;
        let dir = cx
            .source()
            .path
            .parent()
            .map(|d| d.join(&written))
            .unwrap_or_else(|| PathBuf::from(&written));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            cx.err_help(
                n,
                format!("no folder {}", dir.display()),
                "paths are relative to the suite file's folder",
            );
            return None;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_file() {
                if let (Some(name), Ok(bytes)) = (p.file_name().and_then(|s| s.to_str()), std::fs::read(&p)) {
                    if bytes.len() <= crate::syntax::MAX_FIXTURE {
                        origin.folder_files.insert(format!("/{name}"), bytes);
                    }
                }
            }
        }
        origin.folder = Some(dir);
    }
    if let Some(p) = f.get("paths") {
        let pairs = cx.mapping(
            p,
            "paths must be a mapping of path to response",
            "e.g. paths: { /fresh: { body: hi } }",
        )?;
        for (k, v) in pairs {
            let path = cx.string(k, "a path")?;
            if !path.starts_with('/') {
                cx.err_help(k, format!("'{path}' is not a path"), "paths start with '/': /page?x=1");
                return None;
            }
            let items: Vec<&Node> = match &v.data {
                Data::Seq(s) => s.iter().collect(),
                _ => vec![v],
            };
            let mut replies = Vec::new();
            for i in items {
                replies.push(reply(i, cx)?);
            }
            if replies.is_empty() {
                cx.err(v, "a path needs at least one response");
                return None;
            }
            origin.paths.insert(path, replies);
        }
    }
    Some(Arc::new(origin))
}

fn reply(node: &Node, cx: &mut LoadCx) -> Option<Reply> {
    let f = cx.fields(node, &["status", "headers", "body", "body_file"], "a response")?;
    let status = match f.get("status") {
        Some(n) => cx.number::<u16>(n, "status")?,
        None => 200,
    };
    if !(200..=599).contains(&status) {
        cx.err(
            node,
            format!("status {status}: an origin actor answers with a final status (200-599)"),
        );
        return None;
    }
    let mut headers = Vec::new();
    if let Some(h) = f.get("headers") {
        for (k, v) in cx.mapping(h, "headers must be a mapping", "e.g. headers: { Cache-Control: max-age=60 }")? {
            let name = cx.string(k, "a header name")?;
            if ["content-length", "transfer-encoding", "connection"].contains(&name.to_ascii_lowercase().as_str()) {
                cx.err_help(
                    k,
                    format!("the actor sets {name} itself"),
                    "it frames every response with Content-Length",
                );
                return None;
            }
            let value = match &v.data {
                Data::Null => String::new(), // `Date: null`: leave the field out
                _ => cx.string(v, "a header value")?,
            };
            headers.push((name, value));
        }
    }
    let body = match (f.get("body"), f.get("body_file")) {
        (Some(b), None) => cx.string(b, "body")?.into_bytes(),
        (None, Some(b)) => cx.fixture(b, "body_file")?.bytes.to_vec(),
        (None, None) => Vec::new(),
        (Some(_), Some(b)) => {
            cx.err(b, "body or body_file, not both");
            return None;
        }
    };
    Some(Reply { status, headers, body })
}

/// `@+N` / `@-N` as an HTTP-date relative to now; anything else as written.
fn header_value(v: &str) -> String {
    let rel = |s: &str, sign: i64| s.parse::<i64>().ok().map(|n| n * sign);
    let offset = v
        .strip_prefix("@+")
        .and_then(|s| rel(s, 1))
        .or_else(|| v.strip_prefix("@-").and_then(|s| rel(s, -1)));
    match offset {
        Some(secs) => {
            let now = SystemTime::now();
            let t = if secs >= 0 {
                now + Duration::from_secs(secs as u64)
            } else {
                now - Duration::from_secs(secs.unsigned_abs())
            };
            httpdate::fmt_http_date(t)
        }
        None => v.to_string(),
    }
}

/// Whether `If-None-Match` lists `etag` (weak comparison, RFC 9110 §8.8.3.2) or `*`.
fn none_match(list: &str, etag: &str) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    list.split(',').any(|t| t.trim() == "*" || opaque(t) == opaque(etag))
}

impl Origin {
    /// The response to `req` (the `n`th request for its path), as bytes, and whether the
    /// connection closes after it.
    fn answer(&self, req: &HttpMessage, counts: &Mutex<HashMap<String, usize>>) -> (Vec<u8>, bool) {
        let StartLine::Request { method, target } = &req.start else {
            return (Vec::new(), true);
        };
        let close = req.has_token("Connection", "close") || (req.version == (1, 0) && !req.has_token("Connection", "keep-alive"));
        let path = match target.strip_prefix("http://") {
            // absolute-form (RFC 9112 §3.2.2): a server MUST accept it
            Some(rest) => rest.find('/').map(|i| rest[i..].to_string()).unwrap_or_else(|| "/".into()),
            None => target.clone(),
        };
        let mut reply = if ["POST", "PUT", "DELETE", "PATCH"].contains(&method.as_str()) {
            Reply {
                status: 200,
                headers: vec![("Content-Type".into(), "text/plain".into())],
                body: b"done\n".to_vec(),
            }
        } else if let Some(replies) = self.paths.get(&path) {
            let n = {
                let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
                let n = c.entry(path.clone()).or_insert(0);
                *n += 1;
                *n
            };
            replies[(n - 1).min(replies.len() - 1)].clone()
        } else if let Some(bytes) = self.folder_files.get(path.split('?').next().unwrap_or("")) {
            Reply {
                status: 200,
                headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                body: bytes.clone(),
            }
        } else {
            Reply {
                status: 404,
                headers: vec![("Content-Type".into(), "text/plain".into())],
                body: b"not found\n".to_vec(),
            }
        };
        // `{{Name}}` in a text body: the request's field (a response that varies on it). Binary
        // bodies are sent as they are.
        if let Some(mut text) = std::str::from_utf8(&reply.body)
            .ok()
            .filter(|t| t.contains("{{"))
            .map(str::to_string)
        {
            while let Some(start) = text.find("{{") {
                let Some(len) = text[start..].find("}}") else { break };
                let name = text[start + 2..start + len].to_string();
                text.replace_range(start..start + len + 2, &req.field(&name).unwrap_or_default());
            }
            reply.body = text.into_bytes();
        }
        let headers: Vec<(String, String)> = reply.headers.iter().map(|(k, v)| (k.clone(), header_value(v))).collect();
        let get = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        let safe = method == "GET" || method == "HEAD";
        let not_modified = safe
            && reply.status == 200
            && match (req.field("If-None-Match"), get("ETag")) {
                (Some(list), Some(etag)) => none_match(&list, &etag),
                (Some(_), None) => false,
                (None, _) => match (req.field("If-Modified-Since"), get("Last-Modified")) {
                    (Some(ims), Some(lm)) => match (httpdate::parse_http_date(&ims), httpdate::parse_http_date(&lm)) {
                        (Ok(ims), Ok(lm)) => lm <= ims,
                        _ => false,
                    },
                    _ => false,
                },
            };
        let mut out = Vec::new();
        let status = if not_modified { 304 } else { reply.status };
        out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
        if get("Date").is_none() && !reply.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("Date")) {
            out.extend_from_slice(format!("Date: {}\r\n", httpdate::fmt_http_date(SystemTime::now())).as_bytes());
        }
        // RFC 9110 §15.4.5: a 304 carries the fields a 200 would have had among Cache-Control,
        // Content-Location, Date, ETag, Expires and Vary; never a Content-Length of its own.
        const IN_304: &[&str] = &[
            "cache-control",
            "content-location",
            "date",
            "etag",
            "expires",
            "vary",
            "last-modified",
        ];
        for (k, v) in &headers {
            if v.is_empty() || (not_modified && !IN_304.contains(&k.to_ascii_lowercase().as_str())) {
                continue;
            }
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        if !not_modified {
            out.extend_from_slice(format!("Content-Length: {}\r\n", reply.body.len()).as_bytes());
        }
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !not_modified && method != "HEAD" {
            out.extend_from_slice(&reply.body);
        }
        (out, close)
    }
}

impl ActorSpec for Origin {
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }

    fn well_known_port(&self) -> u16 {
        80
    }

    fn start(&self, sockets: Bound, faults: &[String], log: Arc<dyn ActorLog>) -> ActorHandle {
        let origin = Arc::new(self.clone());
        let stall = faults.iter().any(|f| f == "stall");
        let close = faults.iter().any(|f| f == "close");
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let Some(listener) = sockets.tcp else {
            return ActorHandle::default();
        };
        let task = tokio::spawn(async move {
            let Ok(local) = listener.local_addr() else { return };
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut stream, from)) = listener.accept().await else { return };
                let (origin, log, counts) = (origin.clone(), log.clone(), counts.clone());
                conns.spawn(async move {
                    let conv = log.open(Transport::Tcp, local, from);
                    let mut framer = Framer::new(Box::new(super::codec::HttpCodec::new(true)) as Box<dyn Codec>);
                    let mut buf = vec![0u8; 64 * 1024];
                    'conn: loop {
                        let n = match tokio::time::timeout(IDLE, stream.read(&mut buf)).await {
                            Ok(Ok(n)) if n > 0 => n,
                            _ => break,
                        };
                        log.data(conv, Direction::ClientToServer, &buf[..n]);
                        framer.push(&buf[..n]);
                        if framer.pending().len() > MAX_REQUEST {
                            break;
                        }
                        while let Ok(Some(m)) = framer.next(false) {
                            let Some(req) = m.detail.as_ref().and_then(|d| d.downcast_ref::<HttpMessage>()) else {
                                break 'conn;
                            };
                            if close {
                                break 'conn;
                            }
                            if stall {
                                continue;
                            }
                            let (bytes, last) = origin.answer(req, &counts);
                            if stream.write_all(&bytes).await.is_err() {
                                break 'conn;
                            }
                            log.data(conv, Direction::ServerToClient, &bytes);
                            if last {
                                break 'conn;
                            }
                        }
                    }
                    log.closed(conv);
                });
            }
        });
        ActorHandle::new(vec![task])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> HttpMessage {
        let mut f = Framer::new(Box::new(super::super::codec::HttpCodec::new(true)));
        f.push(text.as_bytes());
        let m = f.next(true).unwrap().unwrap();
        m.detail.unwrap().downcast_ref::<HttpMessage>().unwrap().clone()
    }

    fn origin() -> Origin {
        let mut paths = HashMap::new();
        let etag = Reply {
            status: 200,
            headers: vec![("ETag".into(), "\"v1\"".into()), ("Cache-Control".into(), "max-age=0".into())],
            body: b"tagged\n".to_vec(),
        };
        paths.insert("/etag".to_string(), vec![etag]);
        let seq = |b: &str| Reply {
            status: 200,
            headers: vec![],
            body: b.as_bytes().to_vec(),
        };
        paths.insert("/seq".to_string(), vec![seq("one\n"), seq("two\n")]);
        Origin {
            folder: None,
            folder_files: HashMap::new(),
            paths,
        }
    }

    #[test]
    fn answers_with_date_length_and_successive_responses() {
        let (o, c) = (origin(), Mutex::new(HashMap::new()));
        let (a, close) = o.answer(&req("GET /seq HTTP/1.1\r\nHost: x\r\n\r\n"), &c);
        let a = String::from_utf8(a).unwrap();
        assert!(a.starts_with("HTTP/1.1 200 OK\r\nDate: ") && a.contains("Content-Length: 4\r\n") && a.ends_with("one\n"));
        assert!(!close);
        let (b, _) = o.answer(&req("GET http://x/seq HTTP/1.1\r\nHost: x\r\n\r\n"), &c);
        assert!(
            String::from_utf8(b).unwrap().ends_with("two\n"),
            "the last response repeats after the first"
        );
        let (n, close) = o.answer(&req("GET /none HTTP/1.0\r\n\r\n"), &c);
        assert!(
            String::from_utf8(n).unwrap().starts_with("HTTP/1.1 404") && close,
            "HTTP/1.0 closes"
        );
    }

    #[test]
    fn answers_a_matching_validator_with_304_and_no_length() {
        let (o, c) = (origin(), Mutex::new(HashMap::new()));
        let (a, _) = o.answer(&req("GET /etag HTTP/1.1\r\nHost: x\r\nIf-None-Match: W/\"v1\"\r\n\r\n"), &c);
        let a = String::from_utf8(a).unwrap();
        assert!(a.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{a}");
        assert!(
            a.contains("ETag: \"v1\"") && a.contains("Cache-Control: max-age=0") && !a.contains("Content-Length"),
            "{a}"
        );
        let (b, _) = o.answer(&req("GET /etag HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"v2\"\r\n\r\n"), &c);
        assert!(String::from_utf8(b).unwrap().ends_with("tagged\n"));
    }

    #[test]
    fn relative_dates_become_http_dates() {
        let v = header_value("@+60");
        let t = httpdate::parse_http_date(&v).unwrap();
        assert!(t > SystemTime::now() + Duration::from_secs(50));
        assert_eq!(header_value("max-age=60"), "max-age=60");
    }
}
