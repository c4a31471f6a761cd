//! What a request target names and what each method does to it.

use std::fs::Metadata;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;

use super::request::Head;
use super::response::{Body, Response};

/// Methods that some resource here supports; any other gets 501, these get 405 where not allowed.
const KNOWN_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"];
/// Longest upload name (a common file-name limit).
const MAX_UPLOAD_NAME: usize = 255;

/// What the server serves: canonical directories plus the cookie counter.
#[derive(Debug)]
pub(super) struct Site {
    root: PathBuf,
    uploads: PathBuf,
    next_visitor: AtomicU64,
}

impl Site {
    /// `root` and `uploads` must already be canonical, so containment checks are prefix checks.
    pub(super) fn new(root: PathBuf, uploads: PathBuf) -> Self {
        Site {
            root,
            uploads,
            next_visitor: AtomicU64::new(1),
        }
    }
}

/// What a request target names.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Resource {
    /// `OPTIONS *`: the server as a whole.
    Server,
    /// `/echo`: POST gets its body back.
    Echo,
    /// `/cookie`: the slides' cookie example.
    Cookie,
    /// `/moved`: a permanent redirect to `/index.html`.
    Moved,
    /// Whatever follows `/uploads/`, percent-decoded; only valid names can exist.
    Upload(String),
    /// A path under the root.
    File {
        segments: Vec<String>,
        trailing_slash: bool,
        /// The path as sent, for redirects.
        raw_path: String,
        query: Option<String>,
    },
}

impl Resource {
    fn allow(&self) -> &'static str {
        match self {
            Resource::Server => "GET, HEAD, POST, PUT, DELETE, OPTIONS",
            Resource::Echo => "POST, OPTIONS",
            Resource::Upload(_) => "GET, HEAD, PUT, DELETE, OPTIONS",
            Resource::Cookie | Resource::Moved | Resource::File { .. } => "GET, HEAD, OPTIONS",
        }
    }

    /// Whether the request's body is used (otherwise it is read and dropped, or the connection closed).
    pub(super) fn takes_body(&self, method: &str) -> bool {
        matches!((self, method), (Resource::Echo, "POST") | (Resource::Upload(_), "PUT"))
    }
}

/// Interprets the method and request-target: 501 for an unknown method,
/// 400 for a malformed target, 403 for one that climbs out with `..`.
pub(super) fn resource(method: &str, target: &str) -> Result<Resource, u16> {
    if !KNOWN_METHODS.contains(&method) {
        return Err(501);
    }
    if target == "*" {
        return if method == "OPTIONS" { Ok(Resource::Server) } else { Err(400) };
    }
    let path_and_query = if target.starts_with('/') {
        target.to_owned()
    } else {
        absolute_form_path(target).ok_or(400_u16)?
    };
    if path_and_query.contains('#') {
        return Err(400);
    }
    let (raw_path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (path_and_query.as_str(), None),
    };
    // Decoded once: `%252e` stays a literal `%2e`, as it must.
    let decoded = percent_decode(raw_path)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(400_u16)?;
    if decoded.contains(['\0', '\\']) {
        return Err(400);
    }
    let segments: Vec<String> = decoded
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .map(str::to_owned)
        .collect();
    // Refused rather than resolved: no client needs `..` after the
    // normalisation RFC 3986 §5.2.4 has it do, so anything left is probing.
    if segments.iter().any(|s| s == "..") {
        return Err(403);
    }
    Ok(match decoded.as_str() {
        "/echo" => Resource::Echo,
        "/cookie" => Resource::Cookie,
        "/moved" => Resource::Moved,
        _ => match decoded.strip_prefix("/uploads/") {
            Some(name) => Resource::Upload(name.to_owned()),
            None => Resource::File {
                segments,
                trailing_slash: decoded.ends_with('/'),
                raw_path: raw_path.to_owned(),
                query,
            },
        },
    })
}

/// The path (and query) of an absolute-form target, which an origin server
/// must accept (RFC 9112 §3.2.2); the authority is not checked against Host.
fn absolute_form_path(target: &str) -> Option<String> {
    let scheme_end = target.find("://")?;
    if !["http", "https"].iter().any(|s| s.eq_ignore_ascii_case(&target[..scheme_end])) {
        return None;
    }
    let rest = &target[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    if authority_end == 0 || rest[..authority_end].contains('@') {
        return None;
    }
    let path = &rest[authority_end..];
    Some(if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    })
}

/// `None` for a `%` not followed by two hex digits.
fn percent_decode(raw: &str) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = bytes.get(at + 1..at + 3)?;
            let digit = |b: u8| (b as char).to_digit(16);
            out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    Some(out)
}

/// Produces the response to a request for `resource`, its body already read.
pub(super) async fn respond(site: &Site, head: &Head, resource: Resource, body: Vec<u8>) -> Response {
    let method = head.method.as_str();
    if method == "OPTIONS" {
        // RFC 9110 §9.3.7: no content, so Content-Length: 0.
        return Response {
            status: 200,
            fields: vec![("Allow", resource.allow().to_owned())],
            body: Body::Bytes(Vec::new()),
        };
    }
    if !resource.allow().split(", ").any(|m| m == method) {
        return Response::status(405).with("Allow", resource.allow());
    }
    match resource {
        Resource::Echo => Response {
            status: 200,
            fields: vec![("Content-Type", "text/plain; charset=utf-8".to_owned())],
            body: Body::Bytes(body),
        },
        Resource::Cookie => cookie(site, head),
        Resource::Moved => Response::status(301).with("Location", "/index.html"),
        Resource::Upload(name) => match method {
            "PUT" => put_upload(site, &name, body).await,
            "DELETE" => delete_upload(site, &name).await,
            _ => get_upload(site, head, &name).await.unwrap_or_else(Response::status),
        },
        Resource::File {
            segments,
            trailing_slash,
            raw_path,
            query,
        } => get_file(site, head, segments, trailing_slash, &raw_path, query.as_deref())
            .await
            .unwrap_or_else(Response::status),
        // `OPTIONS *` was answered above, and nothing else is allowed on it.
        Resource::Server => Response::status(405).with("Allow", "OPTIONS"),
    }
}

async fn get_file(
    site: &Site,
    head: &Head,
    mut segments: Vec<String>,
    trailing_slash: bool,
    raw_path: &str,
    query: Option<&str>,
) -> Result<Response, u16> {
    let (mut path, mut meta) = find(&site.root, &segments).await?;
    if meta.is_dir() {
        if !trailing_slash {
            let location = match query {
                Some(query) => format!("{raw_path}/?{query}"),
                None => format!("{raw_path}/"),
            };
            return Ok(Response::status(301).with("Location", location));
        }
        segments.push("index.html".to_owned());
        (path, meta) = find(&site.root, &segments).await?;
    } else if trailing_slash {
        return Err(404);
    }
    if !meta.is_file() {
        return Err(404);
    }
    let file = File::open(&path).await.map_err(|e| io_status(&e))?;
    Ok(representation(head, file, &meta, content_type(&path), "max-age=60"))
}

async fn get_upload(site: &Site, head: &Head, name: &str) -> Result<Response, u16> {
    if !is_upload_name(name) {
        return Err(404);
    }
    let (path, meta) = find(&site.uploads, &[name.to_owned()]).await?;
    if !meta.is_file() {
        return Err(404);
    }
    let file = File::open(&path).await.map_err(|e| io_status(&e))?;
    // Uploads change under the same URL, so caches must revalidate.
    Ok(representation(head, file, &meta, "application/octet-stream", "no-cache"))
}

/// Resolves `segments` under `base` (canonical), following symlinks, and
/// refuses with 403 whatever ends up outside `base`.
async fn find(base: &Path, segments: &[String]) -> Result<(PathBuf, Metadata), u16> {
    let path: PathBuf = segments.iter().fold(base.to_path_buf(), |path, s| path.join(s));
    let real = tokio::fs::canonicalize(&path).await.map_err(|e| io_status(&e))?;
    if !real.starts_with(base) {
        return Err(403);
    }
    let meta = tokio::fs::metadata(&real).await.map_err(|e| io_status(&e))?;
    Ok((real, meta))
}

fn io_status(error: &std::io::Error) -> u16 {
    match error.kind() {
        ErrorKind::PermissionDenied => 403,
        _ => 404,
    }
}

/// A 200 with the file, or a 304 if the client's copy is current (RFC 9110 §13.2.2, GET and HEAD only).
fn representation(head: &Head, file: File, meta: &Metadata, content_type: &str, cache_control: &str) -> Response {
    let len = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // RFC 9110 §8.8.2.1: never later than the response's Date.
    let last_modified = mtime.min(now);
    let etag = format!("\"{len:x}-{mtime:x}\"");
    let last_modified_text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(last_modified));
    if not_modified(head, &etag, last_modified) {
        return Response::empty(304)
            .with("ETag", etag)
            .with("Last-Modified", last_modified_text)
            .with("Cache-Control", cache_control);
    }
    Response {
        status: 200,
        fields: vec![
            ("Content-Type", content_type.to_owned()),
            ("Last-Modified", last_modified_text),
            ("ETag", etag),
            ("Cache-Control", cache_control.to_owned()),
        ],
        body: Body::File(file, len),
    }
}

/// If-None-Match wins over If-Modified-Since when both are present; an
/// If-Modified-Since that is not exactly one valid HTTP-date is ignored.
fn not_modified(head: &Head, etag: &str, last_modified: u64) -> bool {
    let tags: Vec<&[u8]> = head.values("if-none-match").collect();
    if !tags.is_empty() {
        return tags.iter().any(|value| none_match_hits(value, etag));
    }
    let dates: Vec<&[u8]> = head.values("if-modified-since").collect();
    let [date] = dates[..] else {
        return false;
    };
    let since = std::str::from_utf8(date)
        .ok()
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    since.is_some_and(|since| since.as_secs() >= last_modified)
}

/// Whether an If-None-Match value (`*` or a list of entity-tags) matches
/// `etag` by weak comparison (RFC 9110 §8.8.3.2). Parsing stops at the first
/// malformed member, keeping what matched before it.
fn none_match_hits(value: &[u8], etag: &str) -> bool {
    let ours = etag.trim_start_matches("W/").as_bytes();
    let mut rest = value.trim_ascii();
    if rest == b"*" {
        return true;
    }
    loop {
        rest = rest.trim_ascii_start();
        while let Some(after) = rest.strip_prefix(b",") {
            rest = after.trim_ascii_start();
        }
        if rest.is_empty() {
            return false;
        }
        let tag = rest.strip_prefix(b"W/").unwrap_or(rest);
        let Some(open) = tag.strip_prefix(b"\"") else {
            return false;
        };
        let Some(close) = open.iter().position(|&b| b == b'"') else {
            return false;
        };
        if &tag[..close + 2] == ours {
            return true;
        }
        rest = &open[close + 1..];
    }
}

/// The slides' cookie example: a visitor is known by an `id` this server issued.
fn cookie(site: &Site, head: &Head) -> Response {
    let issued = site.next_visitor.load(Ordering::SeqCst);
    let known = head
        .values("cookie")
        .flat_map(|value| value.split(|&b| b == b';'))
        .filter_map(|pair| {
            let (name, value) = std::str::from_utf8(pair).ok()?.split_once('=')?;
            let value = value.trim();
            // `u64::from_str` would also take a leading `+`.
            if name.trim() != "id" || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            value.parse::<u64>().ok()
        })
        .find(|id| (1..issued).contains(id));
    match known {
        Some(id) => Response::text(200, format!("welcome back, visitor {id}\n")),
        None => {
            let id = site.next_visitor.fetch_add(1, Ordering::SeqCst);
            Response::text(200, "welcome, new visitor\n").with("Set-Cookie", format!("id={id}; Path=/"))
        }
    }
}

/// `[A-Za-z0-9._-]+`, not starting with a dot: no separators, no hidden files, nothing to climb with.
fn is_upload_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_UPLOAD_NAME
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Writes a temporary file and renames it into place, so readers never see
/// half an upload and a symlink planted under the name is replaced, not followed.
async fn put_upload(site: &Site, name: &str, body: Vec<u8>) -> Response {
    if !is_upload_name(name) {
        return Response::status(400);
    }
    let path = site.uploads.join(name);
    let existed = tokio::fs::symlink_metadata(&path).await.is_ok();
    let temp = site.uploads.join(format!(".put-{:016x}", fastrand::u64(..)));
    let written = async {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&temp).await?;
        file.write_all(&body).await?;
        // tokio writes in the background; flushing waits for it.
        file.flush().await?;
        drop(file);
        tokio::fs::rename(&temp, &path).await
    };
    if written.await.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
        return Response::status(500);
    }
    if existed {
        Response::empty(204)
    } else {
        Response::status(201).with("Location", format!("/uploads/{name}"))
    }
}

async fn delete_upload(site: &Site, name: &str) -> Response {
    if !is_upload_name(name) {
        return Response::status(404);
    }
    match tokio::fs::remove_file(site.uploads.join(name)).await {
        Ok(()) => Response::empty(204),
        Err(e) if e.kind() == ErrorKind::NotFound => Response::status(404),
        Err(_) => Response::status(500),
    }
}

fn content_type(path: &Path) -> &'static str {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(segments: &[&str], trailing_slash: bool, raw_path: &str, query: Option<&str>) -> Resource {
        Resource::File {
            segments: segments.iter().map(|s| s.to_string()).collect(),
            trailing_slash,
            raw_path: raw_path.to_owned(),
            query: query.map(str::to_owned),
        }
    }

    #[test]
    fn targets() {
        assert_eq!(resource("GET", "/"), Ok(file(&[], true, "/", None)));
        assert_eq!(
            resource("GET", "/sub/./page.html?x=1"),
            Ok(file(&["sub", "page.html"], false, "/sub/./page.html", Some("x=1")))
        );
        assert_eq!(resource("GET", "/a%20b/"), Ok(file(&["a b"], true, "/a%20b/", None)));
        assert_eq!(
            resource("GET", "HTTP://Example.com:80/sub?q"),
            Ok(file(&["sub"], false, "/sub", Some("q")))
        );
        assert_eq!(resource("GET", "http://example.com"), Ok(file(&[], true, "/", None)));
        assert_eq!(resource("GET", "http://example.com?q"), Ok(file(&[], true, "/", Some("q"))));
        assert_eq!(resource("POST", "/echo"), Ok(Resource::Echo));
        assert_eq!(resource("PUT", "/uploads/a%2Fb"), Ok(Resource::Upload("a/b".to_owned())));
        assert_eq!(resource("OPTIONS", "*"), Ok(Resource::Server));
        assert_eq!(resource("BREW", "/"), Err(501));
        assert_eq!(resource("get", "/"), Err(501));
        for bad in [
            "*",
            "example.com:80",
            "ftp://x/",
            "http:///x",
            "http://u@x/",
            "/a#b",
            "/%zz",
            "/%4",
            "/%00",
            "/a%5cb",
            "/\\",
            "/%ff",
        ] {
            assert_eq!(resource("GET", bad), Err(400), "{bad}");
        }
        for climbing in [
            "/..",
            "/../x",
            "/%2e%2e/x",
            "/%2E%2E%2Fx",
            "/..%2fx",
            "/a/../../x",
            "/.%2e/x",
            "//../x",
            "http://x/../y",
            "/uploads/../x",
        ] {
            assert_eq!(resource("GET", climbing), Err(403), "{climbing}");
        }
        assert_eq!(
            resource("GET", "/%252e%252e/x"),
            Ok(file(&["%2e%2e", "x"], false, "/%252e%252e/x", None))
        );
    }

    #[test]
    fn entity_tags() {
        let ours = "\"1f4-65a1b2c3\"";
        assert!(none_match_hits(b"*", ours));
        assert!(none_match_hits(b"\"1f4-65a1b2c3\"", ours));
        assert!(none_match_hits(b"W/\"1f4-65a1b2c3\"", ours));
        assert!(none_match_hits(b"\"x\", ,W/\"a,b\" ,\"1f4-65a1b2c3\"", ours));
        assert!(!none_match_hits(b"\"1f4-65a1b2c4\"", ours));
        assert!(!none_match_hits(b"1f4-65a1b2c3", ours));
        assert!(!none_match_hits(b"\"1f4-65a1b2c3", ours));
        assert!(!none_match_hits(b"", ours));
    }

    #[test]
    fn upload_names() {
        for good in ["a", "notes.txt", "A-b_c.9", "x..y"] {
            assert!(is_upload_name(good), "{good}");
        }
        for bad in ["", ".hidden", "..", "a/b", "a b", "é", &"x".repeat(256)] {
            assert!(!is_upload_name(bad), "{bad}");
        }
    }
}
