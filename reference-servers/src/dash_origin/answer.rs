//! What each request gets: files by GET and HEAD with their ranges, the CORS preflight by
//! OPTIONS, 405 for the rest, and the CORS fields on every response.

use std::fs::Metadata;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::fault::{Fault, Faults};
use super::files;
use super::range::{self, Selection};
use super::request::{list_members, Head};
use super::response::{Body, Response};

/// The methods served, for Allow and Access-Control-Allow-Methods.
const METHODS: &str = "GET, HEAD, OPTIONS";
/// Response fields a page may read besides the CORS-safelisted ones (Fetch standard): a player
/// needs Content-Range to place a range and Content-Length to measure throughput.
const EXPOSED: &str = "Content-Length, Content-Range, Date";
/// How long a browser may keep a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";
/// Request fields a preflight may ask for that the answer allows: the CORS-safelisted request
/// headers of the Fetch standard, which a browser may still list, and Range, which a player needs.
const ALLOWED_REQUEST_FIELDS: &[&str] = &["accept", "accept-language", "content-language", "content-type", "range"];

/// What every connection serves from.
#[derive(Debug)]
pub(super) struct Site {
    /// The served folder, canonical, so containment is a prefix check.
    pub root: PathBuf,
    /// Deliberate bugs (see `fault`).
    pub faults: Faults,
}

/// The response to `head`, CORS fields included.
pub(super) async fn answer(site: &Site, head: &Head) -> Response {
    let faults = site.faults;
    let response = match head.method.as_str() {
        "GET" => get(site, head, false).await,
        "HEAD" if !faults.has(Fault::NoHead) => get(site, head, true).await,
        "OPTIONS" if !faults.has(Fault::NoPreflight) => preflight(head, faults),
        _ => Response::status(405).with("Allow", allow(faults)),
    };
    with_cors(response, faults)
}

/// The methods this server (with its faults) says it allows.
fn allow(faults: Faults) -> String {
    let methods: Vec<&str> = METHODS
        .split(", ")
        .filter(|m| !((*m == "HEAD" && faults.has(Fault::NoHead)) || (*m == "OPTIONS" && faults.has(Fault::NoPreflight))))
        .collect();
    methods.join(", ")
}

/// Adds the fields that let a page on another origin read the response (Fetch standard, CORS
/// protocol), or, with the fault `no-cors`, takes away every Access-Control-* field.
pub(super) fn with_cors(mut response: Response, faults: Faults) -> Response {
    if faults.has(Fault::NoCors) {
        response.fields.retain(|(name, _)| !name.starts_with("Access-Control-"));
        return response;
    }
    response.fields.push(("Access-Control-Allow-Origin", "*".to_owned()));
    if !faults.has(Fault::NoExpose) {
        response.fields.push(("Access-Control-Expose-Headers", EXPOSED.to_owned()));
    }
    response
}

/// A CORS preflight (Fetch standard, CORS-preflight fetch): 204 allowing the methods and Range,
/// for any target, since it asks about the server's policy and not about a file.
fn preflight(head: &Head, faults: Faults) -> Response {
    if head.target != "*" {
        if let Err(status) = files::segments(&head.target, faults.has(Fault::Traversal)) {
            return Response::status(status);
        }
    }
    Response::empty(204)
        .with("Allow", allow(faults))
        .with("Access-Control-Allow-Methods", METHODS)
        .with("Access-Control-Allow-Headers", allowed_headers(head))
        .with("Access-Control-Max-Age", PREFLIGHT_MAX_AGE)
}

/// Access-Control-Allow-Headers for a preflight: what Access-Control-Request-Headers asked for
/// when every name is allowed (plus Range), else just Range, which the browser then compares
/// with what it wanted to send.
fn allowed_headers(head: &Head) -> String {
    let asked = list_members(head.values("access-control-request-headers"));
    let acceptable = !asked.is_empty() && asked.iter().all(|name| ALLOWED_REQUEST_FIELDS.contains(&name.as_str()));
    if !acceptable {
        return "Range".to_owned();
    }
    let mut names: Vec<String> = Vec::new();
    for name in asked {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if !names.iter().any(|name| name == "range") {
        names.push("range".to_owned());
    }
    names.join(", ")
}

/// GET, or HEAD (`head_only`): the file, a range of it, 416, or why there is none. HEAD reads
/// Range too, so that its fields are the ones GET would have (RFC 9110 §9.3.2).
async fn get(site: &Site, head: &Head, head_only: bool) -> Response {
    let faults = site.faults;
    let climb = faults.has(Fault::Traversal);
    let found = match files::segments(&head.target, climb) {
        Ok(segments) => files::open(&site.root, &segments, climb).await,
        Err(status) => Err(status),
    };
    let (file, meta, path) = match found {
        Ok(found) => found,
        Err(404) if faults.has(Fault::No404) => {
            return Response {
                status: 200,
                fields: vec![("Content-Type", "application/octet-stream".to_owned())],
                body: Body::Bytes(Vec::new()),
                hangs_up: false,
            }
        }
        Err(status) => return Response::status(status),
    };
    let len = meta.len();
    let last_modified = last_modified(&meta);
    let selection = if faults.has(Fault::BrokenRanges) {
        Selection::Whole
    } else {
        selection(head, len, last_modified, faults)
    };
    let selection = match selection {
        Selection::Unsatisfiable if faults.has(Fault::No416) => Selection::Whole,
        other => other,
    };
    let content_type = files::content_type(&path, faults.has(Fault::WrongContentType));
    let mut fields = vec![
        ("Content-Type", content_type.to_owned()),
        ("Accept-Ranges", "bytes".to_owned()),
        ("Last-Modified", httpdate::fmt_http_date(last_modified)),
    ];
    if faults.has(Fault::NoAcceptRanges) {
        fields.retain(|(n, _)| *n != "Accept-Ranges");
    }
    if faults.has(Fault::TextMode) && matches!(selection, Selection::Whole) {
        // The bug: the file read as text and written with CR LF line ends.
        let mut bytes = Vec::new();
        let mut file = file;
        if tokio::io::AsyncReadExt::read_to_end(&mut file, &mut bytes).await.is_err() {
            return Response::status(500);
        }
        let mut text = Vec::with_capacity(bytes.len());
        for b in bytes {
            if b == b'\n' {
                text.push(b'\r');
            }
            text.push(b);
        }
        return Response {
            status: 200,
            fields,
            body: Body::Bytes(text),
            hangs_up: false,
        };
    }
    let (status, fields, start, sent) = match selection {
        Selection::Whole => (200, fields, 0, len),
        Selection::Part { first, last } => {
            let mut fields = fields;
            fields.push(("Content-Range", format!("bytes {first}-{last}/{len}")));
            let count = last - first + 1;
            // The fault: the range's end taken as exclusive, as in `last - first`.
            let sent = if faults.has(Fault::RangeOffByOne) { count - 1 } else { count };
            (206, fields, first, sent)
        }
        Selection::Unsatisfiable => {
            return Response::status(416)
                .with("Accept-Ranges", "bytes")
                .with("Content-Range", format!("bytes */{len}"));
        }
    };
    let lies = faults.has(Fault::WrongLength) && !head_only && files::is_media(&path);
    Response {
        status,
        fields,
        body: Body::File {
            file,
            start,
            len: sent,
            announced: sent + u64::from(lies),
        },
        hangs_up: lies,
    }
}

/// What the request's Range selects, if If-Range (RFC 9110 §13.1.5) lets it apply: only a date
/// equal to Last-Modified does, since no entity-tag is ever sent.
fn selection(head: &Head, len: u64, last_modified: SystemTime, faults: super::fault::Faults) -> Selection {
    let ranges: Vec<&[u8]> = head.values("range").collect();
    // Range is not a list field: two of them is no valid Range at all.
    let [range] = ranges[..] else {
        return Selection::Whole;
    };
    let as_bytes;
    let range = match range.iter().position(|&b| b == b'=') {
        Some(eq) if faults.has(Fault::AnyUnit) && !range.starts_with(b"bytes=") => {
            as_bytes = [&b"bytes"[..], &range[eq..]].concat();
            &as_bytes[..]
        }
        _ => range,
    };
    let spec = range.strip_prefix(b"bytes=").unwrap_or_default();
    if faults.has(Fault::NoSuffix) && spec.trim_ascii_start().starts_with(b"-") {
        return Selection::Whole;
    }
    if faults.has(Fault::NoClamp) {
        let last = std::str::from_utf8(spec)
            .ok()
            .and_then(|s| s.split_once('-'))
            .and_then(|(_, b)| b.trim().parse::<u64>().ok());
        if last.is_some_and(|b| b >= len) {
            return Selection::Unsatisfiable;
        }
    }
    let conditions: Vec<&[u8]> = head.values("if-range").collect();
    match conditions[..] {
        [] => {}
        [condition] => {
            let date = std::str::from_utf8(condition)
                .ok()
                .and_then(|text| httpdate::parse_http_date(text.trim()).ok());
            if date != Some(last_modified) {
                return Selection::Whole;
            }
        }
        _ => return Selection::Whole,
    }
    range::select(range, len)
}

/// The file's modification time in whole seconds, never later than now (RFC 9110 §8.8.2.1: not
/// after the response's Date).
fn last_modified(meta: &Metadata) -> SystemTime {
    let seconds = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let modified = meta.modified().map_or(0, seconds);
    UNIX_EPOCH + Duration::from_secs(modified.min(seconds(SystemTime::now())))
}
