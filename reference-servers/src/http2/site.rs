//! What a request names and what is answered, the same for both HTTP versions.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::fs::File;
use tokio::io::AsyncReadExt;

/// Largest `POST /echo` body (else 413).
pub(crate) const MAX_ECHO: u64 = 1 << 20;
/// HTML files up to this size are read whole, so a page can be searched for an asset to push.
const MAX_SCANNED: u64 = 256 << 10;

/// The canonical folder that is served.
#[derive(Debug)]
pub(crate) struct Site {
    root: PathBuf,
}

impl Site {
    /// `root` must already be canonical, so containment checks are prefix checks.
    pub(crate) fn new(root: PathBuf) -> Self {
        Site { root }
    }
}

/// What a request target names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    /// `/echo`: POST gets its body back.
    Echo,
    /// A path under the root.
    File {
        segments: Vec<String>,
        trailing_slash: bool,
        /// The path as sent, for redirects.
        raw_path: String,
    },
}

impl Resource {
    fn allow(&self) -> &'static str {
        match self {
            Resource::Echo => "POST",
            Resource::File { .. } => "GET, HEAD",
        }
    }
}

/// What follows the response head.
#[derive(Debug)]
pub(crate) enum Body {
    /// Bytes in memory.
    Bytes(Bytes),
    /// An open file and the length promised in Content-Length.
    File(File, u64),
}

/// A response, whichever version carries it.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The status code.
    pub status: u16,
    /// Header fields besides Date and Content-Length, which each version adds.
    pub fields: Vec<(&'static str, String)>,
    /// The content (a HEAD response leaves it out, keeping its length).
    pub body: Body,
}

impl Reply {
    /// `status` with a one-line text/plain body naming it, like `404 Not Found\n`.
    pub(crate) fn status(status: u16) -> Self {
        Reply {
            status,
            fields: vec![("content-type", "text/plain; charset=utf-8".to_owned())],
            body: Body::Bytes(Bytes::from(format!("{status} {}\n", reason(status)))),
        }
    }

    /// 200 with the request body back.
    pub(crate) fn echo(body: Bytes) -> Self {
        Reply {
            status: 200,
            fields: vec![("content-type", "application/octet-stream".to_owned())],
            body: Body::Bytes(body),
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.fields.push((name, value.into()));
        self
    }

    /// The Content-Length of the body.
    pub(crate) fn len(&self) -> u64 {
        match &self.body {
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::File(_, len) => *len,
        }
    }

    /// The page itself, if this is an HTML page in memory (every one up to `MAX_SCANNED` is).
    pub(crate) fn page(&self) -> Option<&[u8]> {
        let html = self.fields.iter().any(|(n, v)| *n == "content-type" && v.starts_with("text/html"));
        match &self.body {
            Body::Bytes(bytes) if html && self.status == 200 => Some(bytes),
            _ => None,
        }
    }
}

/// The reason phrase of every status this server sends.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Interprets a request target (origin-form; HTTP/1.1's absolute-form too):
/// 400 when malformed, 403 when it climbs out with `..`.
pub(crate) fn resource(target: &str) -> Result<Resource, u16> {
    let path_and_query = if target.starts_with('/') {
        target.to_owned()
    } else {
        absolute_form_path(target).ok_or(400_u16)?
    };
    if path_and_query.contains('#') {
        return Err(400);
    }
    let raw_path = path_and_query.split_once('?').map_or(path_and_query.as_str(), |(path, _)| path);
    // Decoded once: `%252e` stays a literal `%2e`.
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
    // Refused rather than resolved, as the `http` origin does: no client needs it.
    if segments.iter().any(|s| s == "..") {
        return Err(403);
    }
    if decoded == "/echo" {
        return Ok(Resource::Echo);
    }
    Ok(Resource::File {
        segments,
        trailing_slash: decoded.ends_with('/'),
        raw_path: raw_path.to_owned(),
    })
}

/// The path (and query) of an absolute-form target (RFC 9112 §3.2.2).
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

/// The answer to `method` on `resource`, for everything but `POST /echo`, whose body the caller reads.
pub(crate) async fn respond(site: &Site, method: &str, resource: Resource) -> Reply {
    let allowed = resource.allow();
    if !allowed.split(", ").any(|m| m == method) {
        return Reply::status(405).with("allow", allowed);
    }
    match resource {
        Resource::File {
            segments,
            trailing_slash,
            raw_path,
        } => get_file(site, segments, trailing_slash, &raw_path)
            .await
            .unwrap_or_else(Reply::status),
        // Only POST is allowed on it, and that is the caller's.
        Resource::Echo => Reply::status(500),
    }
}

async fn get_file(site: &Site, mut segments: Vec<String>, trailing_slash: bool, raw_path: &str) -> Result<Reply, u16> {
    let (mut path, mut meta) = find(&site.root, &segments).await?;
    if meta.is_dir() {
        if !trailing_slash {
            return Ok(Reply::status(301).with("location", format!("{raw_path}/")));
        }
        segments.push("index.html".to_owned());
        (path, meta) = find(&site.root, &segments).await?;
    } else if trailing_slash {
        return Err(404);
    }
    if !meta.is_file() {
        return Err(404);
    }
    let mut file = File::open(&path).await.map_err(|e| io_status(&e))?;
    let content_type = content_type(&path);
    let len = meta.len();
    let body = if content_type.starts_with("text/html") && len <= MAX_SCANNED {
        let mut page = Vec::with_capacity(len as usize);
        (&mut file)
            .take(MAX_SCANNED)
            .read_to_end(&mut page)
            .await
            .map_err(|e| io_status(&e))?;
        Body::Bytes(Bytes::from(page))
    } else {
        Body::File(file, len)
    };
    Ok(Reply {
        status: 200,
        fields: vec![("content-type", content_type.to_owned())],
        body,
    })
}

/// Resolves `segments` under `base` (canonical), following symlinks, and
/// refuses with 403 whatever ends up outside `base`.
async fn find(base: &Path, segments: &[String]) -> Result<(PathBuf, std::fs::Metadata), u16> {
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
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// The path to push with a page at `page_path`: its first `<img src>` or `<link href>`,
/// resolved against the page, if it is on this server (no scheme, no authority).
pub(crate) fn asset_to_push(page_path: &str, page: &[u8]) -> Option<String> {
    let link = first_asset(page)?;
    if link.is_empty() || link.starts_with("//") || link.starts_with('#') {
        return None;
    }
    // A scheme (`https:`, `data:`) comes before any `/`, `?` or `#`.
    let before_path = &link[..link.find(['/', '?', '#']).unwrap_or(link.len())];
    if before_path.contains(':') {
        return None;
    }
    let link = link.split('#').next().unwrap_or_default();
    if link.starts_with('/') {
        return Some(link.to_owned());
    }
    let page_path = page_path.split('?').next().unwrap_or_default();
    let folder = &page_path[..page_path.rfind('/').map_or(0, |at| at + 1)];
    Some(format!("{folder}{link}"))
}

/// The value of the first `<img src=...>` or `<link href=...>` in `page`.
fn first_asset(page: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(page).to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = text[from..].find('<').map(|at| from + at) {
        let tag = &text[at + 1..];
        let end = tag.find('>').map_or(text.len(), |end| at + 1 + end);
        let attribute = if is_tag(tag, "img") {
            Some("src")
        } else if is_tag(tag, "link") {
            Some("href")
        } else {
            None
        };
        if let Some((begin, end)) = attribute.and_then(|name| attribute_value(&text[at + 1..end], name)) {
            // Lower-cased to search (ASCII only, so offsets hold); the value is taken as written.
            let original = String::from_utf8_lossy(page);
            return original.get(at + 1 + begin..at + 1 + end).map(str::to_owned);
        }
        from = at + 1;
    }
    None
}

fn is_tag(tag: &str, name: &str) -> bool {
    tag.strip_prefix(name)
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_whitespace() || c == '/'))
}

/// Where in `tag` (byte offsets) the value of attribute `name` is.
fn attribute_value(tag: &str, name: &str) -> Option<(usize, usize)> {
    let base = tag.as_ptr() as usize;
    let mut rest = tag;
    while let Some(at) = rest.find(name) {
        let preceded = rest[..at].ends_with(|c: char| c.is_ascii_whitespace());
        let after = rest[at + name.len()..].trim_start();
        rest = &rest[at + name.len()..];
        if !preceded {
            continue;
        }
        let Some(value) = after.strip_prefix('=').map(str::trim_start) else {
            continue;
        };
        let (start, len) = match value.chars().next() {
            Some(quote @ ('"' | '\'')) => (1, value[1..].find(quote)?),
            _ => (0, value.find(|c: char| c.is_ascii_whitespace()).unwrap_or(value.len())),
        };
        let begin = value.as_ptr() as usize - base + start;
        return Some((begin, begin + len));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(segments: &[&str], trailing_slash: bool, raw_path: &str) -> Resource {
        Resource::File {
            segments: segments.iter().map(|s| s.to_string()).collect(),
            trailing_slash,
            raw_path: raw_path.to_owned(),
        }
    }

    #[test]
    fn targets() {
        assert_eq!(resource("/"), Ok(file(&[], true, "/")));
        assert_eq!(
            resource("/sub/./page.html?x=1"),
            Ok(file(&["sub", "page.html"], false, "/sub/./page.html"))
        );
        assert_eq!(resource("/a%20b"), Ok(file(&["a b"], false, "/a%20b")));
        assert_eq!(resource("http://h:80/sub?q"), Ok(file(&["sub"], false, "/sub")));
        assert_eq!(resource("/echo"), Ok(Resource::Echo));
        assert_eq!(resource("/echo?x"), Ok(Resource::Echo));
        for bad in ["*", "", "h:80", "ftp://x/", "/a#b", "/%zz", "/%00", "/a%5cb", "/%ff"] {
            assert_eq!(resource(bad), Err(400), "{bad}");
        }
        for climbing in ["/..", "/../secret.txt", "/%2e%2e/x", "/a/../../x", "/.%2e/x"] {
            assert_eq!(resource(climbing), Err(403), "{climbing}");
        }
    }

    #[test]
    fn assets_to_push() {
        let page = b"<html><head><LINK rel=stylesheet HREF=\"Style.css\"><img src='x.png'></head>";
        assert_eq!(asset_to_push("/sub/page.html", page).as_deref(), Some("/sub/Style.css"));
        let img = b"<p><a href=\"a.html\">a</a><img alt=\"src\" src=/pics/i.png>";
        assert_eq!(asset_to_push("/", img).as_deref(), Some("/pics/i.png"));
        let both = b"<img data-src=\"no\" src=\"one.png\"><link href=\"two.css\">";
        assert_eq!(asset_to_push("/p?q=1", both).as_deref(), Some("/one.png"));
        for elsewhere in [
            &b"<img src=\"https://example.com/x.png\">"[..],
            b"<img src=\"//example.com/x.png\">",
            b"<img src=\"data:image/png;base64,AA\">",
            b"<img src=\"\">",
            b"<imgsrc=\"x.png\">",
            b"<a href=\"x.html\">",
            b"",
        ] {
            assert_eq!(asset_to_push("/", elsewhere), None, "{}", String::from_utf8_lossy(elsewhere));
        }
    }
}
