//! From a request-target to a file under the root, and the file's media type.

use std::fs::Metadata;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use tokio::fs::File;

/// The path segments a request-target names, percent-decoded once: 400 for a malformed target,
/// 403 for one that climbs with `..` (unless `climb`, the fault `traversal`). The query is ignored.
pub(super) fn segments(target: &str, climb: bool) -> Result<Vec<String>, u16> {
    let path_and_query = if target.starts_with('/') {
        target
    } else {
        absolute_form_path(target).ok_or(400_u16)?
    };
    if path_and_query.contains('#') {
        return Err(400);
    }
    let raw_path = path_and_query.split_once('?').map_or(path_and_query, |(path, _)| path);
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
    // Refused rather than resolved: a client has already removed the dot-segments RFC 3986
    // §5.2.4 would, so one left after decoding is probing.
    if !climb && segments.iter().any(|s| s == "..") {
        return Err(403);
    }
    Ok(segments)
}

/// The path of an absolute-form target, which an origin server must accept (RFC 9112 §3.2.2);
/// the authority is not checked against Host.
fn absolute_form_path(target: &str) -> Option<&str> {
    let scheme_end = target.find("://")?;
    if !["http", "https"].iter().any(|s| s.eq_ignore_ascii_case(&target[..scheme_end])) {
        return None;
    }
    let rest = &target[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    if authority_end == 0 || rest[..authority_end].contains('@') {
        return None;
    }
    match &rest[authority_end..] {
        "" => Some("/"),
        path if path.starts_with('/') => Some(path),
        // `http://host?q`: the path is empty, that is `/`.
        _ => Some("/"),
    }
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
            // Two hex digits make at most 255.
            out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    Some(out)
}

/// A regular file found under `root` (canonical) by `segments`, opened, with its metadata and
/// real path: 404 if there is none, 403 if it resolves (through a symlink) outside the root.
/// With `climb` (the fault `traversal`) the path is opened as joined, unchecked.
pub(super) async fn open(root: &Path, segments: &[String], climb: bool) -> Result<(File, Metadata, PathBuf), u16> {
    let joined: PathBuf = segments.iter().fold(root.to_path_buf(), |path, s| path.join(s));
    let real = if climb {
        joined
    } else {
        let real = tokio::fs::canonicalize(&joined).await.map_err(|e| io_status(&e))?;
        if !real.starts_with(root) {
            return Err(403);
        }
        real
    };
    // Checked before opening too: opening a FIFO would wait for a writer that never comes.
    if !tokio::fs::metadata(&real).await.map_err(|e| io_status(&e))?.is_file() {
        return Err(404);
    }
    let file = File::open(&real).await.map_err(|e| io_status(&e))?;
    // The metadata of what was opened, so a file swapped in meanwhile cannot change the length.
    let meta = file.metadata().await.map_err(|e| io_status(&e))?;
    if !meta.is_file() {
        return Err(404);
    }
    Ok((file, meta, real))
}

fn io_status(error: &std::io::Error) -> u16 {
    match error.kind() {
        ErrorKind::PermissionDenied => 403,
        _ => 404,
    }
}

/// The media type for `path`'s extension: DASH Annex C for the MPD, RFC 4337 and the
/// `video/iso.segment` registration for the media; with `mpd_as_xml` (the fault
/// `wrong-content-type`) the MPD is generic XML.
pub(super) fn content_type(path: &Path, mpd_as_xml: bool) -> &'static str {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match extension.as_str() {
        "mpd" if mpd_as_xml => "text/xml",
        "mpd" => "application/dash+xml",
        "mp4" => "video/mp4",
        "m4s" => "video/iso.segment",
        _ => "application/octet-stream",
    }
}

/// Whether `path` is media (`.m4s`, `.mp4`), where the fault `wrong-length` strikes.
pub(super) fn is_media(path: &Path) -> bool {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    matches!(extension.as_str(), "m4s" | "mp4")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(target: &str) -> Result<Vec<String>, u16> {
        segments(target, false)
    }

    #[test]
    fn targets() {
        assert_eq!(names("/testsrc/video.mpd"), Ok(vec!["testsrc".to_owned(), "video.mpd".to_owned()]));
        assert_eq!(names("/a/./b//c?x=/../y"), Ok(vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]));
        assert_eq!(names("/a%20b"), Ok(vec!["a b".to_owned()]));
        assert_eq!(names("/%252e%252e/x"), Ok(vec!["%2e%2e".to_owned(), "x".to_owned()]));
        assert_eq!(names("HTTP://example.com:80/x.mpd"), Ok(vec!["x.mpd".to_owned()]));
        assert_eq!(names("http://example.com?q"), Ok(vec![]));
        assert_eq!(names("/"), Ok(vec![]));
        for bad in [
            "*",
            "x.mpd",
            "ftp://x/",
            "http:///x",
            "http://u@x/",
            "/a#b",
            "/%zz",
            "/%4",
            "/%00",
            "/a%5cb",
            "/%ff",
        ] {
            assert_eq!(names(bad), Err(400), "{bad}");
        }
        for climbing in [
            "/..",
            "/../x",
            "/%2e%2e/x",
            "/%2E%2E%2Fx",
            "/..%2fx",
            "/a/../../x",
            "/.%2e/x",
            "http://x/../y",
        ] {
            assert_eq!(names(climbing), Err(403), "{climbing}");
        }
        assert_eq!(segments("/../x", true), Ok(vec!["..".to_owned(), "x".to_owned()]));
    }

    #[test]
    fn media_types() {
        assert_eq!(content_type(Path::new("a/video.mpd"), false), "application/dash+xml");
        assert_eq!(content_type(Path::new("a/video.MPD"), true), "text/xml");
        assert_eq!(content_type(Path::new("od-0.mp4"), false), "video/mp4");
        assert_eq!(content_type(Path::new("seg-0-1.m4s"), false), "video/iso.segment");
        assert_eq!(content_type(Path::new("make.sh"), false), "application/octet-stream");
        assert_eq!(content_type(Path::new("mpd"), false), "application/octet-stream");
        assert!(is_media(Path::new("x.m4s")) && is_media(Path::new("x.mp4")) && !is_media(Path::new("x.mpd")));
    }
}
