//! Structured DASH steps: HTTP's requests and responses (a DASH origin is an HTTP origin), plus
//! `mpd:` (the body read as an MPD: how many representations and segments, which addressing) and
//! `same_as:` (the body is a presentation file's bytes, or the slice a 206 names), and the
//! judgements of `judge.rs` for `saw:` over the origin actor.
//!
//! ```yaml
//! - expect: { status: 200, headers: { Content-Type: application/dash+xml }, mpd: { representations: 4, segments: 16 } }
//! - expect: { status: 206, same_as: { folder: ../fixtures/dash, path: "ondemand/od-${r}.mp4" } }
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use super::codec::is_mpd;
use super::mpd;
use crate::proto::http::{self, HttpMessage};
use crate::proto::steps::mismatch;
use crate::proto::{Message, Mismatch, RenderCx, Steps, StructuredExpect};
use crate::syntax::{Data, LoadCx, Node, Template};

/// Keys of a structured DASH expect besides HTTP's.
const OWN_KEYS: &[&str] = &["mpd", "same_as"];
/// Most files `same_as` reads from one folder.
const MAX_FOLDER_FILES: usize = 2000;

/// Every expect key: HTTP's, this file's and the judgements'.
static EXPECT_KEYS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    let mut k: Vec<&'static str> = http::steps::EXPECT_KEYS.to_vec();
    k.extend_from_slice(OWN_KEYS);
    k.extend_from_slice(super::judge::KEYS);
    k
});

/// The structured `send:`/`expect:` keys of the DASH protocol.
pub static STEPS: std::sync::LazyLock<Steps> = std::sync::LazyLock::new(|| Steps {
    send_keys: http::steps::SEND_KEYS,
    expect_keys: EXPECT_KEYS.as_slice(),
    parse_send: http::steps::parse_send,
    parse_expect,
});

/// What `mpd:` checks.
#[derive(Debug, Default)]
struct MpdCheck {
    representations: Option<usize>,
    segments: Option<usize>,
    addressing: Option<String>,
}

/// `same_as:`: a folder read at load, and which file of it (a template).
#[derive(Debug)]
struct SameAs {
    folder: String,
    files: Arc<HashMap<String, Arc<[u8]>>>,
    path: Template,
    /// The path as written, for messages.
    shown: String,
}

#[derive(Debug)]
struct DashExpect {
    http: Option<Box<dyn StructuredExpect>>,
    mpd: Option<MpdCheck>,
    same_as: Option<SameAs>,
}

fn only(node: &Node, keep: &[&str]) -> Node {
    let Data::Map(pairs) = &node.data else { return node.clone() };
    Node {
        data: Data::Map(
            pairs
                .iter()
                .filter(|(k, _)| k.as_str().is_some_and(|k| keep.contains(&k)))
                .cloned()
                .collect(),
        ),
        loc: node.loc,
    }
}

fn read_folder(cx: &mut LoadCx, node: &Node, written: &str) -> Option<HashMap<String, Arc<[u8]>>> {
    let root = cx.source().path.parent().map(|d| d.join(written)).unwrap_or_else(|| written.into());
    let mut out = HashMap::new();
    let mut stack = vec![(root.clone(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                cx.err_help(
                    node,
                    format!("cannot read the folder {} ({e})", dir.display()),
                    "paths are relative to the suite file's folder",
                );
                return None;
            }
        };
        let mut names: Vec<_> = entries.filter_map(Result::ok).collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let name = e.file_name().to_string_lossy().to_string();
            let r = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push((e.path(), r)),
                Ok(t) if t.is_file() => {
                    if out.len() >= MAX_FOLDER_FILES {
                        cx.err(node, format!("{} holds over {MAX_FOLDER_FILES} files", root.display()));
                        return None;
                    }
                    let f = cx.fixture_at(node, &format!("{written}/{r}"))?;
                    out.insert(r, f.bytes);
                }
                _ => {}
            }
        }
    }
    Some(out)
}

fn parse_expect(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    let Data::Map(pairs) = &node.data else {
        cx.err(node, "a DASH expectation is a mapping");
        return None;
    };
    let has = |keys: &[&str]| pairs.iter().any(|(k, _)| k.as_str().is_some_and(|k| keys.contains(&k)));
    if has(super::judge::KEYS) {
        return super::judge::parse(node, cx);
    }
    let f = cx.fields(node, &EXPECT_KEYS, "a DASH expectation")?;
    let http_part = only(node, http::steps::EXPECT_KEYS);
    let http = match &http_part.data {
        Data::Map(p) if !p.is_empty() => Some(http::steps::parse_expect(&http_part, cx)?),
        _ => None,
    };
    let mpd = match f.get("mpd") {
        None => None,
        Some(n) => {
            let g = cx.fields(n, &["representations", "segments", "addressing"], "mpd")?;
            let mut c = MpdCheck::default();
            if let Some(v) = g.get("representations") {
                c.representations = Some(cx.number(v, "representations")?);
            }
            if let Some(v) = g.get("segments") {
                c.segments = Some(cx.number(v, "segments")?);
            }
            if let Some(v) = g.get("addressing") {
                let a = cx.string(v, "addressing")?;
                let known = ["template-number", "template-timeline", "segment-list", "segment-base", "single"];
                if !known.contains(&a.as_str()) {
                    cx.err_help(v, format!("no addressing '{a}'"), format!("one of {}", known.join(", ")));
                    return None;
                }
                c.addressing = Some(a);
            }
            Some(c)
        }
    };
    let same_as = match f.get("same_as") {
        None => None,
        Some(n) => {
            let g = cx.fields(n, &["folder", "path"], "same_as")?;
            let (Some(fo), Some(p)) = (g.get("folder"), g.get("path")) else {
                cx.err_help(
                    n,
                    "same_as needs folder and path",
                    "e.g. same_as: { folder: ../fixtures/dash, path: \"testsrc/seg-${r}-${n}.m4s\" }",
                );
                return None;
            };
            let folder = cx.string(fo, "folder")?;
            let files = read_folder(cx, fo, &folder)?;
            Some(SameAs {
                folder,
                files: Arc::new(files),
                path: cx.template(p, "path")?,
                shown: cx.string(p, "path")?,
            })
        }
    };
    Some(Box::new(DashExpect { http, mpd, same_as }))
}

fn content_range(h: &HttpMessage) -> Option<(u64, u64, u64)> {
    let v = h.field("Content-Range")?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, len) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?, len.trim().parse().ok()?))
}

impl DashExpect {
    fn check_mpd(&self, c: &MpdCheck, h: &HttpMessage, msg: &Message) -> Result<(), Mismatch> {
        if !is_mpd(h) {
            return Err(mismatch("the response carries no MPD", self.describe(), msg));
        }
        let text = String::from_utf8_lossy(&h.body);
        let m = mpd::parse(&text).map_err(|e| mismatch(format!("the MPD does not parse: {e}"), self.describe(), msg))?;
        let tracks = mpd::tracks(&m, "http://origin.invalid/")
            .map_err(|e| mismatch(format!("the MPD's segments cannot be listed: {e}"), self.describe(), msg))?;
        if let Some(n) = c.representations.filter(|n| *n != tracks.len()) {
            return Err(mismatch(
                format!("the MPD lists {} representations, not {n}", tracks.len()),
                self.describe(),
                msg,
            ));
        }
        if let Some(n) = c.segments {
            if let Some(t) = tracks.iter().find(|t| t.media.len() != n) {
                return Err(mismatch(
                    format!("representation {} has {} segments, not {n}", t.id, t.media.len()),
                    self.describe(),
                    msg,
                ));
            }
        }
        if let Some(a) = &c.addressing {
            if let Some(t) = tracks.iter().find(|t| t.addressing.name() != a) {
                return Err(mismatch(
                    format!("representation {} is addressed by {}, not {a}", t.id, t.addressing.name()),
                    self.describe(),
                    msg,
                ));
            }
        }
        Ok(())
    }

    fn check_same(&self, s: &SameAs, h: &HttpMessage, msg: &Message, cx: &RenderCx) -> Result<(), Mismatch> {
        let path = s.path.render(cx.vars).map_err(|e| mismatch(e, self.describe(), msg))?;
        let Some(file) = s.files.get(path.trim_start_matches('/')) else {
            return Err(mismatch(
                format!("{}/{path} is not a file the suite has", s.folder),
                self.describe(),
                msg,
            ));
        };
        let len = file.len() as u64;
        let want = format!("{}/{path} ({len} bytes)", s.folder);
        match h.status() {
            Some(200) => {
                let declared = h.field("Content-Length").and_then(|v| v.trim().parse::<u64>().ok());
                if h.body.is_empty() && declared == Some(len) && len > 0 {
                    // A HEAD: the length is all there is to compare (RFC 9110 §9.3.2).
                    return Ok(());
                }
                if h.body.as_slice() != &file[..] {
                    return Err(mismatch(
                        format!("the body is {} bytes that are not {path}'s {len}", h.body.len()),
                        format!("{want}, byte for byte"),
                        msg,
                    ));
                }
                Ok(())
            }
            Some(206) => {
                let Some((a, b, total)) = content_range(h) else {
                    return Err(mismatch(
                        "a 206 without a Content-Range of the form bytes FIRST-LAST/LENGTH",
                        "Content-Range naming the bytes sent (RFC 9110 §15.3.7.1: a single-part 206 MUST carry Content-Range)",
                        msg,
                    ));
                };
                if total != len || a > b || b >= len {
                    return Err(mismatch(
                        format!("Content-Range says bytes {a}-{b}/{total}; {path} is {len} bytes"),
                        format!("a range within {len} bytes, with the file's complete length (RFC 9110 §14.4)"),
                        msg,
                    ));
                }
                if h.body.as_slice() != &file[a as usize..=b as usize] {
                    return Err(mismatch(
                        format!("the body ({} bytes) is not bytes {a}-{b} of {path}", h.body.len()),
                        format!("exactly the {} bytes Content-Range names (RFC 9110 §14.4)", b - a + 1),
                        msg,
                    ));
                }
                Ok(())
            }
            other => Err(mismatch(
                format!("status {}, not a 200 or 206 with the file", other.unwrap_or(0)),
                want,
                msg,
            )),
        }
    }
}

impl StructuredExpect for DashExpect {
    fn check(&self, msg: &Message, cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        let captured = match &self.http {
            Some(h) => h.check(msg, cx)?,
            None => Vec::new(),
        };
        let Some(h) = msg.detail.as_ref().and_then(|d| d.downcast_ref::<HttpMessage>()) else {
            return Err(mismatch("not an HTTP message", self.describe(), msg));
        };
        if let Some(c) = &self.mpd {
            self.check_mpd(c, h, msg)?;
        }
        if let Some(s) = &self.same_as {
            self.check_same(s, h, msg, cx)?;
        }
        Ok(captured)
    }
    fn templates(&self) -> Vec<&Template> {
        let mut t = self.http.as_ref().map(|h| h.templates()).unwrap_or_default();
        if let Some(s) = &self.same_as {
            t.push(&s.path);
        }
        t
    }
    fn captures(&self) -> Vec<String> {
        self.http.as_ref().map(|h| h.captures()).unwrap_or_default()
    }
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(h) = &self.http {
            parts.push(h.describe());
        }
        if let Some(c) = &self.mpd {
            let mut s = "an MPD".to_string();
            if let Some(n) = c.representations {
                s.push_str(&format!(" with {n} representations"));
            }
            if let Some(n) = c.segments {
                s.push_str(&format!(" of {n} segments"));
            }
            if let Some(a) = &c.addressing {
                s.push_str(&format!(" ({a})"));
            }
            parts.push(s);
        }
        if let Some(s) = &self.same_as {
            parts.push(format!("the bytes of {}/{}", s.folder, s.shown));
        }
        parts.join("; ")
    }
}
