//! The DASH origin actor: an HTTP/1.1 origin that serves a presentation (`media.rs`) under the
//! addressing scheme a case chooses, through a link whose rate follows a schedule, from one or
//! more hosts that may fail. It keeps the rules it checks: Date and Content-Length on every
//! response, ranges answered 206 with Content-Range (RFC 9110 §14.4, §15.3.7) or 416, the MPD as
//! `application/dash+xml`, CORS fields so a browser player may read what it fetched.
//!
//! It records every request with when it arrived and when its last byte was written
//! ([`Record`]); `judge.rs` reads that record for `saw:`, and each download's figures (the
//! bandwidth offered, the bitrate asked for, QoE so far) go into the case's dialogue for reports.
//!
//! ```yaml
//! actors:
//!   - name: origin
//!     host: 127.0.0.2
//!     dash:
//!       media: ../fixtures/dash/testsrc/video.mpd          # real media, or:
//!       # synthetic: { rates: [40k, 80k, 160k, 320k], segments: 40, duration: 0.5 }
//!       path: /video.mpd                                  # where the MPD is (default)
//! serve:
//!   actors: [origin]
//!   with:
//!     origin:
//!       addressing: number            # number | time | list | list-ranges | base
//!       start_number: 5               # number: @startNumber; width: 5 for $Number%05d$
//!       segments: 6                   # only the first 6
//!       bandwidth: [{ rate: 1.6M, for: 6s }, { rate: 60k, for: 10s }, { rate: 1.6M }]
//!       nodes: [127.0.0.3]            # more hosts it serves on, at the same port
//!       base_urls: ["http://127.0.0.3:{port}/a/", "http://127.0.0.2:{port}/"]
//!       fail: { host: 127.0.0.3, after: 3, with: 503 }   # 503 | 404 | close | silence
//!       redirect: { from: 127.0.0.2, to: "http://127.0.0.5:{port}/" }  # segments: 302 to a node
//! ```
//! The bandwidth is one link shared by every connection and host (the player's access link),
//! starting at the first request; without `bandwidth` the actor sends as fast as it can.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::codec::{DashCodec, MPD_TYPE};
use super::media::{self, Layout, LayoutOptions, Presentation, Scheme, What};
pub use super::record::{Delivery, Record};
use crate::proto::common::actor::{ActorHandle, ActorKind, ActorLog, ActorOptions, ActorSpec, Bound};
use crate::proto::http::{HttpMessage, StartLine};
use crate::proto::{Codec, Direction, Framer, Transport};
use crate::syntax::{Data, LoadCx, Node};

/// A connection that sends nothing for this long is closed (RFC 9112 §9.8).
const IDLE: Duration = Duration::from_secs(15);
/// Largest request the actor reads.
const MAX_REQUEST: usize = 64 * 1024;
/// Slowest rate a schedule may set: anything slower is a stall, which `fail` plays.
const MIN_RATE: u64 = 1000;
/// Most requests recorded (a player in a loop would otherwise grow the record without end).
const MAX_RECORDED: usize = 10_000;

/// The `dash:` actor vocabulary.
pub static ACTOR: ActorKind = ActorKind {
    key: "dash",
    faults: &[],
    parse,
    options: Some(parse_options),
};

/// A host's failure: after serving `after` media segments, it answers every request so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// `503 Service Unavailable`.
    Unavailable,
    /// `404 Not Found`.
    NotFound,
    /// Closes the connection without an answer.
    Close,
    /// Reads and never answers.
    Silence,
}

/// One host's failure.
#[derive(Debug, Clone, Copy)]
pub struct Fail {
    /// The host.
    pub host: IpAddr,
    /// Media segments it serves first.
    pub after: usize,
    /// What it does then.
    pub with: FailMode,
}

/// A case's options (every key optional; the declaration's are the defaults).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The addressing scheme.
    pub scheme: Option<Scheme>,
    /// `@startNumber`.
    pub start_number: Option<u64>,
    /// `$Number%0Nd$` width.
    pub width: Option<usize>,
    /// Only the first N segments.
    pub segments: Option<usize>,
    /// (how long, bit/s) steps; the last lasts for ever (its duration is ignored).
    pub bandwidth: Option<Vec<(Option<Duration>, u64)>>,
    /// More hosts to serve on.
    pub nodes: Option<Vec<IpAddr>>,
    /// MPD-level BaseURLs, `{port}` to be filled in.
    pub base_urls: Option<Vec<String>>,
    /// Host failures.
    pub fail: Option<Vec<Fail>>,
    /// A host that answers every segment request with a 302 to another (a CDN's redirect).
    pub redirect: Option<Redirect>,
}

/// `redirect: { from: HOST, to: URL }`: segment requests to `from` are answered `302 Found` with
/// `Location: URL` + the segment's path (`{port}` in URL is the case's port).
#[derive(Debug, Clone)]
pub struct Redirect {
    /// The host that redirects.
    pub from: IpAddr,
    /// Where to: an absolute URL ending in `/`.
    pub to: String,
}

impl Options {
    fn over(&self, base: &Options) -> Options {
        Options {
            scheme: self.scheme.or(base.scheme),
            start_number: self.start_number.or(base.start_number),
            width: self.width.or(base.width),
            segments: self.segments.or(base.segments),
            bandwidth: self.bandwidth.clone().or_else(|| base.bandwidth.clone()),
            nodes: self.nodes.clone().or_else(|| base.nodes.clone()),
            base_urls: self.base_urls.clone().or_else(|| base.base_urls.clone()),
            fail: self.fail.clone().or_else(|| base.fail.clone()),
            redirect: self.redirect.clone().or_else(|| base.redirect.clone()),
        }
    }
}

/// A declared DASH origin.
#[derive(Debug, Clone)]
struct Origin {
    presentation: Arc<Presentation>,
    path: String,
    defaults: Options,
}

fn rate(cx: &mut LoadCx, n: &Node) -> Option<u64> {
    let s = match &n.data {
        Data::Scalar { .. } => n.as_str().unwrap_or_default().trim().to_string(),
        _ => {
            cx.err(n, "a rate in bit/s: 400000, 400k, 1.6M");
            return None;
        }
    };
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1e3),
        Some('M' | 'm') => (&s[..s.len() - 1], 1e6),
        Some('G' | 'g') => (&s[..s.len() - 1], 1e9),
        _ => (s.as_str(), 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v * mult >= MIN_RATE as f64 && v * mult <= 1e11 => Some((v * mult) as u64),
        _ => {
            cx.err_help(
                n,
                format!("'{s}' is not a rate of at least {MIN_RATE} bit/s"),
                "e.g. 400000, 400k, 1.6M",
            );
            None
        }
    }
}

const OPTION_KEYS: &[&str] = &[
    "addressing",
    "start_number",
    "width",
    "segments",
    "bandwidth",
    "nodes",
    "base_urls",
    "fail",
    "redirect",
];

fn read_options(f: &crate::syntax::Fields, cx: &mut LoadCx) -> Option<Options> {
    let mut o = Options::default();
    if let Some(n) = f.get("addressing") {
        let s = cx.string(n, "addressing")?;
        match Scheme::parse(&s) {
            Some(sc) => o.scheme = Some(sc),
            None => {
                cx.err_help(n, format!("no addressing scheme '{s}'"), format!("one of {}", Scheme::NAMES));
                return None;
            }
        }
    }
    if let Some(n) = f.get("start_number") {
        o.start_number = Some(cx.number(n, "start_number")?);
    }
    if let Some(n) = f.get("width") {
        let w: usize = cx.number(n, "width")?;
        if !(1..=12).contains(&w) {
            cx.err(n, "a width from 1 to 12 digits");
            return None;
        }
        o.width = Some(w);
    }
    if let Some(n) = f.get("segments") {
        let s: usize = cx.number(n, "segments")?;
        if s == 0 {
            cx.err(n, "at least one segment");
            return None;
        }
        o.segments = Some(s);
    }
    if let Some(n) = f.get("bandwidth") {
        let Data::Seq(items) = &n.data else {
            cx.err_help(n, "bandwidth is a list of steps", "e.g. [{ rate: 1.6M, for: 6s }, { rate: 60k }]");
            return None;
        };
        let mut steps = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let g = cx.fields(it, &["rate", "for"], "a bandwidth step")?;
            let Some(r) = g.get("rate") else {
                cx.err_help(it, "a bandwidth step needs a rate", "e.g. { rate: 1.6M, for: 6s }");
                return None;
            };
            let r = rate(cx, r)?;
            let d = match g.get("for") {
                Some(d) => Some(cx.duration(d, "for")?),
                None if i + 1 < items.len() => {
                    cx.err(it, "every step but the last says how long it lasts ('for: 6s')");
                    return None;
                }
                None => None,
            };
            steps.push((d, r));
        }
        if steps.is_empty() {
            cx.err(n, "at least one step");
            return None;
        }
        o.bandwidth = Some(steps);
    }
    if let Some(n) = f.get("nodes") {
        o.nodes = Some(cx.addresses(n, "nodes")?);
    }
    if let Some(n) = f.get("base_urls") {
        let Data::Seq(items) = &n.data else {
            cx.err_help(n, "base_urls is a list of URLs", "e.g. [\"http://127.0.0.3:{port}/a/\", \"b/\"]");
            return None;
        };
        let urls: Option<Vec<String>> = items.iter().map(|i| cx.string(i, "a BaseURL")).collect();
        o.base_urls = Some(urls?);
    }
    if let Some(n) = f.get("fail") {
        let list: Vec<&Node> = match &n.data {
            Data::Seq(items) => items.iter().collect(),
            _ => vec![n],
        };
        let mut fails = Vec::new();
        for it in list {
            let g = cx.fields(it, &["host", "after", "with"], "a failure")?;
            let (Some(h), Some(w)) = (g.get("host"), g.get("with")) else {
                cx.err_help(it, "a failure needs host and with", "e.g. { host: 127.0.0.3, after: 3, with: 503 }");
                return None;
            };
            let host = match h.as_str().map(str::parse::<IpAddr>) {
                Some(Ok(ip)) => ip,
                _ => {
                    cx.err(h, "an IP address");
                    return None;
                }
            };
            let after = match g.get("after") {
                Some(a) => cx.number(a, "after")?,
                None => 0,
            };
            let with = match cx.string(w, "with")?.as_str() {
                "503" => FailMode::Unavailable,
                "404" => FailMode::NotFound,
                "close" => FailMode::Close,
                "silence" => FailMode::Silence,
                other => {
                    cx.err_help(w, format!("no failure '{other}'"), "one of 503, 404, close, silence");
                    return None;
                }
            };
            fails.push(Fail { host, after, with });
        }
        o.fail = Some(fails);
    }
    if let Some(n) = f.get("redirect") {
        let g = cx.fields(n, &["from", "to"], "redirect")?;
        let (Some(fr), Some(to)) = (g.get("from"), g.get("to")) else {
            cx.err_help(
                n,
                "redirect needs from and to",
                "e.g. redirect: { from: 127.0.0.2, to: \"http://127.0.0.5:{port}/\" }",
            );
            return None;
        };
        let from = match fr.as_str().map(str::parse::<IpAddr>) {
            Some(Ok(ip)) => ip,
            _ => {
                cx.err(fr, "the address of the host that redirects");
                return None;
            }
        };
        let to_s = cx.string(to, "to")?;
        if url::Url::parse(&to_s.replace("{port}", "1")).is_err() || !to_s.ends_with('/') {
            cx.err(to, "an absolute URL ending in / (e.g. http://127.0.0.5:{port}/)");
            return None;
        }
        o.redirect = Some(Redirect { from, to: to_s });
    }
    Some(o)
}

fn parse(node: &Node, cx: &mut LoadCx) -> Option<Arc<dyn ActorSpec>> {
    let mut keys = vec!["media", "synthetic", "path"];
    keys.extend_from_slice(OPTION_KEYS);
    let f = cx.fields(node, &keys, "a DASH origin")?;
    let presentation = match (f.get("media"), f.get("synthetic")) {
        (Some(m), None) => {
            let mpd = cx.fixture(m, "media")?;
            let text = String::from_utf8_lossy(&mpd.bytes).to_string();
            let dir = mpd.path.parent().map(|d| d.to_path_buf()).unwrap_or_default();
            let mut failed = false;
            let read = |rel: &str| {
                let p = dir.join(rel);
                let got = cx.fixture_at(m, &p.to_string_lossy()).map(|f| f.bytes);
                failed |= got.is_none();
                got
            };
            match Presentation::from_mpd(&text, read) {
                Ok(p) => p,
                Err(e) => {
                    if !failed {
                        cx.err(m, format!("{}: {e}", mpd.display()));
                    }
                    return None;
                }
            }
        }
        (None, Some(s)) => {
            let g = cx.fields(s, &["rates", "segments", "duration"], "synthetic media")?;
            let (Some(Node { data: Data::Seq(rs), .. }), Some(n)) = (g.get("rates"), g.get("segments")) else {
                cx.err_help(
                    s,
                    "synthetic media needs rates and segments",
                    "e.g. synthetic: { rates: [40k, 80k, 160k, 320k], segments: 40, duration: 0.5 }",
                );
                return None;
            };
            let rates: Option<Vec<u64>> = rs.iter().map(|r| rate(cx, r)).collect();
            let mut rates = rates?;
            rates.sort_unstable();
            let segments: usize = cx.number(n, "segments")?;
            let duration: f64 = match g.get("duration") {
                Some(d) => cx.number(d, "duration")?,
                None => 1.0,
            };
            if rates.is_empty() || !(1..=10_000).contains(&segments) || !(0.1..=60.0).contains(&duration) {
                cx.err(s, "one rate or more, 1 to 10000 segments, a duration from 0.1 to 60 seconds");
                return None;
            }
            Presentation::synthetic(&rates, segments, duration)
        }
        _ => {
            cx.err_help(
                node,
                "a DASH origin needs media (an MPD of real media) or synthetic",
                "e.g. dash: { media: ../fixtures/dash/testsrc/video.mpd }",
            );
            return None;
        }
    };
    let path = match f.get("path") {
        Some(p) => {
            let s = cx.string(p, "path")?;
            if !s.starts_with('/') || s.contains('?') || s.ends_with('/') {
                cx.err(p, "the MPD's path: absolute, a file, no query (e.g. /video.mpd)");
                return None;
            }
            s
        }
        None => "/video.mpd".into(),
    };
    let defaults = read_options(&f, cx)?;
    Some(Arc::new(Origin {
        presentation: Arc::new(presentation),
        path,
        defaults,
    }))
}

fn parse_options(node: &Node, cx: &mut LoadCx) -> Option<ActorOptions> {
    let f = cx.fields(node, OPTION_KEYS, "a DASH origin's options")?;
    let o = read_options(&f, cx)?;
    Some(Arc::new(o))
}

/// The link every response goes through: a FIFO at the schedule's rate.
struct Link {
    schedule: Vec<(Duration, u64)>,
    start: Mutex<Option<Instant>>,
    free_at: Mutex<Instant>,
}

impl Link {
    /// The first request starts the schedule's clock.
    fn begin(&self) -> Instant {
        *self
            .start
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Instant::now)
    }

    fn rate_at(&self, rel: Duration) -> (u64, Option<Duration>) {
        let i = self.schedule.iter().rposition(|(from, _)| *from <= rel).unwrap_or(0);
        (self.schedule[i].1, self.schedule.get(i + 1).map(|s| s.0))
    }

    /// When `n` bytes queued now have crossed the link (None: unlimited).
    fn reserve(&self, n: usize) -> Option<Instant> {
        if self.schedule.is_empty() {
            return None;
        }
        let start = self.begin();
        let mut free = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
        let mut t = (*free).max(Instant::now());
        let mut bits = n as f64 * 8.0;
        loop {
            let (rate, until) = self.rate_at(t - start);
            let secs = bits / rate as f64;
            match until {
                Some(end) if start + end < t + Duration::from_secs_f64(secs) => {
                    let span = (start + end).saturating_duration_since(t).as_secs_f64();
                    bits -= span * rate as f64;
                    t = start + end;
                }
                _ => {
                    t += Duration::from_secs_f64(secs);
                    break;
                }
            }
        }
        *free = t;
        Some(t)
    }

    /// Bytes per write: about 50 ms of the current rate.
    fn chunk(&self) -> usize {
        let start = self.begin();
        match self.schedule.is_empty() {
            true => 64 * 1024,
            false => ((self.rate_at(Instant::now() - start).0 / 8 / 20) as usize).clamp(256, 16 * 1024),
        }
    }
}

/// One case's running origin.
struct Running {
    layout: Layout,
    path: String,
    /// Where segment URLs resolve to: (the host, for an absolute BaseURL; any host otherwise,
    /// path prefix). Only the BaseURLs the MPD gives, or the MPD's folder when it gives none:
    /// a player that ignores a BaseURL asks for paths nothing is served at.
    prefixes: Vec<(Option<IpAddr>, String)>,
    fails: Vec<Fail>,
    /// (host, absolute URL prefix) of a redirecting host.
    redirect: Option<(IpAddr, String)>,
    link: Link,
    t0: Instant,
    record: Arc<Mutex<Record>>,
    /// Media segments served per host (for `fail: after`).
    served: Mutex<Vec<(IpAddr, usize)>>,
    log: Arc<dyn ActorLog>,
    open: tokio::sync::watch::Sender<usize>,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        302 => "Found",
        206 => "Partial Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// A single `bytes=` range of a body `len` long (RFC 9110 §14.1.2): Ok(None) when there is none
/// to honour (no field, another unit, several ranges, a form that does not parse), Err when it
/// cannot be satisfied.
fn range_of(field: Option<String>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = field else { return Ok(None) };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let r = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(first), Some(last)) if first <= last => (first, last.min(len.saturating_sub(1))),
        (Some(first), None) if b.is_empty() => (first, len.saturating_sub(1)),
        (None, Some(n)) if a.is_empty() && n > 0 => (len.saturating_sub(n), len.saturating_sub(1)),
        _ => return Ok(None),
    };
    if r.0 >= len {
        return Err(());
    }
    Ok(Some(r))
}

impl Running {
    fn head(&self, status: u16, fields: &[(&str, String)], len: usize) -> Vec<u8> {
        let mut s = format!(
            "HTTP/1.1 {status} {}\r\nDate: {}\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Expose-Headers: Content-Length, Content-Range, Date\r\n",
            reason(status),
            httpdate::fmt_http_date(std::time::SystemTime::now())
        );
        for (n, v) in fields {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        s.push_str(&format!("Content-Length: {len}\r\n\r\n"));
        s.into_bytes()
    }

    /// The path relative to the base it was resolved against on this host; "" for the MPD.
    fn relative(&self, host: IpAddr, path: &str) -> Option<String> {
        if path == self.path {
            return Some(String::new());
        }
        self.prefixes
            .iter()
            .filter(|(h, _)| h.is_none_or(|h| h == host))
            .filter_map(|(_, p)| path.strip_prefix(p.as_str()))
            .filter(|r| !r.is_empty())
            .min_by_key(|r| r.len())
            .map(str::to_string)
    }

    fn failing(&self, host: IpAddr) -> Option<FailMode> {
        let served = self.served.lock().unwrap_or_else(|e| e.into_inner());
        let n = served.iter().find(|(h, _)| *h == host).map_or(0, |(_, n)| *n);
        self.fails.iter().find(|f| f.host == host && n >= f.after).map(|f| f.with)
    }

    fn note(&self, d: Delivery) -> usize {
        let mut r = self.record.lock().unwrap_or_else(|e| e.into_inner());
        if r.link_start.is_none() {
            r.link_start = Some(self.link.begin().saturating_duration_since(self.t0));
        }
        if r.deliveries.len() >= MAX_RECORDED {
            return usize::MAX;
        }
        r.deliveries.push(d);
        r.deliveries.len() - 1
    }

    fn finish(&self, i: usize, status: u16, bytes: u64, done: bool) {
        let mut r = self.record.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = r.deliveries.get_mut(i) {
            d.status = status;
            d.bytes = bytes;
            d.done = done.then(|| self.t0.elapsed());
        }
    }

    /// Writes `body` through the link, logging each piece; false when the connection went.
    async fn send_body(&self, stream: &mut TcpStream, conv: usize, body: &[u8]) -> bool {
        let mut at = 0;
        while at < body.len() {
            let n = self.link.chunk().min(body.len() - at);
            if let Some(when) = self.link.reserve(n) {
                tokio::time::sleep_until(when).await;
            }
            if stream.write_all(&body[at..at + n]).await.is_err() {
                return false;
            }
            self.log.data(conv, Direction::ServerToClient, &body[at..at + n]);
            at += n;
        }
        true
    }

    /// Answers one request; false when the connection is to close.
    async fn answer(&self, stream: &mut TcpStream, conv: usize, local: IpAddr, req: &HttpMessage) -> bool {
        let StartLine::Request { method, target } = &req.start else {
            return false;
        };
        let at = self.t0.elapsed();
        if req.version >= (1, 1) && req.values("Host").count() != 1 {
            self.log.violation(
                conv,
                &format!(
                    "{method} {target} has {} Host field(s); RFC 9112 §3.2: a client MUST send exactly one Host in an HTTP/1.1 request (the server answers 400)",
                    req.values("Host").count()
                ),
            );
            let body = b"400 Bad Request: no Host\n";
            let mut out = self.head(
                400,
                &[("Content-Type", "text/plain".into()), ("Connection", "close".into())],
                body.len(),
            );
            out.extend_from_slice(body);
            if stream.write_all(&out).await.is_ok() {
                self.log.data(conv, Direction::ServerToClient, &out);
            }
            return false;
        }
        self.link.begin();
        let path = target.split(['?', '#']).next().unwrap_or_default().to_string();
        let rel = self.relative(local, &path);
        let entry = rel.as_deref().and_then(|r| self.layout.files.get(r));
        let len = entry.map_or(self.layout.mpd.len(), |e| e.bytes.len()) as u64;
        let range = match (entry, req.field("Range"), method.as_str()) {
            (Some(_), r, "GET") => range_of(r, len),
            _ => Ok(None),
        };
        let what = match (&rel, entry) {
            (Some(r), _) if r.is_empty() => What::Mpd,
            (Some(r), Some(_)) => self.layout.what(r, range.ok().flatten()),
            _ => What::Unknown,
        };
        let idx = self.note(Delivery {
            host: local,
            path: path.clone(),
            host_field: req.field("Host"),
            method: method.clone(),
            range: range.ok().flatten(),
            what,
            status: 0,
            bytes: 0,
            at,
            done: None,
        });
        let segment = matches!(what, What::Init(_) | What::Index(_) | What::Media(..) | What::Whole(_));
        if let (Some((from, to)), true, Some(r)) = (&self.redirect, segment, rel.as_deref()) {
            if *from == local && method != "OPTIONS" {
                // RFC 9110 §15.4.3: a 302's Location is where the resource is for now.
                let location = format!("{to}{r}");
                let body = format!("302 Found: {location}\n");
                let mut out = self.head(302, &[("Location", location), ("Content-Type", "text/plain".into())], body.len());
                if method != "HEAD" {
                    out.extend_from_slice(body.as_bytes());
                }
                let ok = stream.write_all(&out).await.is_ok();
                self.log.data(conv, Direction::ServerToClient, &out);
                self.finish(idx, 302, 0, ok);
                return ok;
            }
        }
        if let Some(mode) = self.failing(local) {
            match mode {
                FailMode::Close => return false,
                FailMode::Silence => {
                    // Holds the connection without an answer until the player gives up on it.
                    let mut sink = [0u8; 1024];
                    while let Ok(Ok(n)) = tokio::time::timeout(IDLE, stream.read(&mut sink)).await {
                        if n == 0 {
                            break;
                        }
                    }
                    return false;
                }
                FailMode::Unavailable | FailMode::NotFound => {
                    let status = if mode == FailMode::NotFound { 404 } else { 503 };
                    let body = format!("{status} {}\n", reason(status));
                    let mut out = self.head(status, &[("Content-Type", "text/plain".into())], body.len());
                    out.extend_from_slice(body.as_bytes());
                    let ok = stream.write_all(&out).await.is_ok();
                    self.log.data(conv, Direction::ServerToClient, &out);
                    self.finish(idx, status, body.len() as u64, ok);
                    return ok;
                }
            }
        }
        let (status, fields, body): (u16, Vec<(&str, String)>, Vec<u8>) = match method.as_str() {
            "OPTIONS" => (
                204,
                vec![
                    ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS".into()),
                    ("Access-Control-Allow-Headers", "Range".into()),
                    ("Access-Control-Max-Age", "600".into()),
                ],
                Vec::new(),
            ),
            "GET" | "HEAD" => match (what, entry) {
                (What::Mpd, _) => (200, vec![("Content-Type", MPD_TYPE.into())], self.layout.mpd.clone().into_bytes()),
                (_, Some(e)) => {
                    let mut fields = vec![("Content-Type", e.content_type.to_string()), ("Accept-Ranges", "bytes".into())];
                    match range {
                        Ok(Some((a, b))) => {
                            fields.push(("Content-Range", format!("bytes {a}-{b}/{len}")));
                            (206, fields, e.bytes[a as usize..=b as usize].to_vec())
                        }
                        Ok(None) => (200, fields, e.bytes.to_vec()),
                        Err(()) => {
                            fields.push(("Content-Range", format!("bytes */{len}")));
                            (416, fields, Vec::new())
                        }
                    }
                }
                _ => (404, vec![("Content-Type", "text/plain".into())], b"404 Not Found\n".to_vec()),
            },
            _ => (
                405,
                vec![("Allow", "GET, HEAD, OPTIONS".into()), ("Content-Type", "text/plain".into())],
                b"405 Method Not Allowed\n".to_vec(),
            ),
        };
        let head_only = method == "HEAD" || status == 204;
        let mut head = self.head(status, &fields, if status == 204 { 0 } else { body.len() });
        if status == 204 {
            // RFC 9110 §8.6: no Content-Length in a 204.
            let text = String::from_utf8_lossy(&head).replace("Content-Length: 0\r\n", "");
            head = text.into_bytes();
        }
        if stream.write_all(&head).await.is_err() {
            self.finish(idx, status, 0, false);
            return false;
        }
        self.log.data(conv, Direction::ServerToClient, &head);
        let sent = if head_only {
            true
        } else {
            self.send_body(stream, conv, &body).await
        };
        let bytes = if head_only { 0 } else { body.len() as u64 };
        self.finish(idx, status, bytes, sent);
        if sent {
            if let What::Media(..) = what {
                let mut served = self.served.lock().unwrap_or_else(|e| e.into_inner());
                match served.iter_mut().find(|(h, _)| *h == local) {
                    Some(s) => s.1 += 1,
                    None => served.push((local, 1)),
                }
            }
            let r = self.record.lock().unwrap_or_else(|e| e.into_inner());
            super::judge::figures(&r, conv, self.log.as_ref());
        }
        sent
    }

    async fn serve(self: Arc<Running>, mut stream: TcpStream, local: SocketAddr, from: SocketAddr) {
        let conv = self.log.open(Transport::Tcp, local, from);
        self.open.send_modify(|n| *n += 1);
        let mut framer = Framer::new(Box::new(DashCodec::new(true)) as Box<dyn Codec>);
        let mut buf = vec![0u8; 16 * 1024];
        'conn: loop {
            let n = match tokio::time::timeout(IDLE, stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => break,
            };
            self.log.data(conv, Direction::ClientToServer, &buf[..n]);
            framer.push(&buf[..n]);
            if framer.pending().len() > MAX_REQUEST {
                break;
            }
            loop {
                match framer.next(false) {
                    Ok(Some(m)) => {
                        let Some(req) = m.detail.as_ref().and_then(|d| d.downcast_ref::<HttpMessage>()) else {
                            break 'conn;
                        };
                        let close = req.has_token("Connection", "close") || req.version < (1, 1);
                        if !self.answer(&mut stream, conv, local.ip(), req).await || close {
                            break 'conn;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        let body = b"400 Bad Request\n";
                        let mut out = self.head(
                            400,
                            &[("Content-Type", "text/plain".into()), ("Connection", "close".into())],
                            body.len(),
                        );
                        out.extend_from_slice(body);
                        if stream.write_all(&out).await.is_ok() {
                            self.log.data(conv, Direction::ServerToClient, &out);
                        }
                        break 'conn;
                    }
                }
            }
        }
        let _ = stream.shutdown().await;
        self.log.closed_by_actor(conv);
        self.open.send_modify(|n| *n = n.saturating_sub(1));
    }

    async fn listen(self: Arc<Running>, listener: TcpListener) {
        let Ok(local) = listener.local_addr() else { return };
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, from)) = listener.accept().await else { return };
            conns.spawn(self.clone().serve(stream, local, from));
        }
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
        self.start_with(sockets, faults, None, log)
    }

    fn start_with(&self, sockets: Bound, _faults: &[String], options: Option<&ActorOptions>, log: Arc<dyn ActorLog>) -> ActorHandle {
        let o = match options.and_then(|o| o.clone().downcast::<Options>().ok()) {
            Some(o) => o.over(&self.defaults),
            None => self.defaults.clone(),
        };
        let Some(listener) = sockets.tcp else {
            return ActorHandle::default();
        };
        let Ok(bound) = listener.local_addr() else {
            return ActorHandle::default();
        };
        let base_urls: Vec<String> = o
            .base_urls
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|u| u.replace("{port}", &bound.port().to_string()))
            .collect();
        let mpd_dir = self.path.rsplit_once('/').map_or("/".to_string(), |(d, _)| format!("{d}/"));
        let mut prefixes = Vec::new();
        for b in &base_urls {
            let absolute = url::Url::parse(b).is_ok();
            let abs = super::mpd::resolve(&format!("http://{bound}{}", self.path), b);
            if let Ok(u) = url::Url::parse(&abs) {
                let host = match (absolute, u.host()) {
                    (true, Some(url::Host::Ipv4(ip))) => Some(IpAddr::V4(ip)),
                    (true, Some(url::Host::Ipv6(ip))) => Some(IpAddr::V6(ip)),
                    _ => None,
                };
                let p = (host, u.path().to_string());
                if !prefixes.contains(&p) {
                    prefixes.push(p);
                }
            }
        }
        if prefixes.is_empty() {
            prefixes.push((None, mpd_dir));
        }
        let layout = media::layout(
            &self.presentation,
            &LayoutOptions {
                scheme: o.scheme.unwrap_or(Scheme::Number),
                start_number: o.start_number.unwrap_or(1),
                width: o.width,
                segments: o.segments,
                base_urls,
            },
        );
        let mut schedule = Vec::new();
        let mut from = Duration::ZERO;
        for (d, r) in o.bandwidth.clone().unwrap_or_default() {
            schedule.push((from, r));
            from += d.unwrap_or(Duration::ZERO);
        }
        let t0 = Instant::now();
        let record = Arc::new(Mutex::new(Record {
            presentation: self.presentation.clone(),
            layout: layout.clone(),
            schedule: schedule.clone(),
            link_start: None,
            deliveries: Vec::new(),
        }));
        let (open_tx, open_rx) = tokio::sync::watch::channel(0usize);
        let running = Arc::new(Running {
            layout,
            path: self.path.clone(),
            prefixes,
            fails: o.fail.clone().unwrap_or_default(),
            redirect: o
                .redirect
                .as_ref()
                .map(|r| (r.from, r.to.replace("{port}", &bound.port().to_string()))),
            link: Link {
                schedule,
                start: Mutex::new(None),
                free_at: Mutex::new(t0),
            },
            t0,
            record: record.clone(),
            served: Mutex::new(Vec::new()),
            log,
            open: open_tx,
        });
        let mut tasks = vec![tokio::spawn(running.clone().listen(listener))];
        for host in o.nodes.clone().unwrap_or_default() {
            if host == bound.ip() {
                continue;
            }
            let r = running.clone();
            tasks.push(tokio::spawn(async move {
                // A node whose address cannot be bound is one the player cannot reach: the case's
                // judgements then say what it did not get.
                if let Ok(l) = TcpListener::bind(SocketAddr::new(host, bound.port())).await {
                    r.listen(l).await;
                }
            }));
        }
        ActorHandle::counting(tasks, open_rx).with_record(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_as_rfc_9110_reads_them() {
        let r = |s: &str| range_of(Some(s.to_string()), 100);
        assert_eq!(r("bytes=0-9"), Ok(Some((0, 9))));
        assert_eq!(r("bytes=90-"), Ok(Some((90, 99))));
        assert_eq!(r("bytes=-10"), Ok(Some((90, 99))));
        assert_eq!(r("bytes=50-500"), Ok(Some((50, 99))));
        assert_eq!(r("bytes=100-"), Err(()));
        assert_eq!(r("bytes=0-1,5-6"), Ok(None));
        assert_eq!(r("items=0-1"), Ok(None));
        assert_eq!(r("bytes=9-1"), Ok(None));
        assert_eq!(range_of(None, 5), Ok(None));
    }

    #[tokio::test]
    async fn paces_bytes_by_the_schedule() {
        let link = Link {
            schedule: vec![(Duration::ZERO, 80_000), (Duration::from_millis(500), 8_000)],
            start: Mutex::new(None),
            free_at: Mutex::new(Instant::now()),
        };
        let t = link.begin();
        // 5000 bytes at 80 kbit/s is 0.5 s; 500 more at 8 kbit/s another 0.5 s.
        let end = link.reserve(5500).unwrap();
        let secs = (end - t).as_secs_f64();
        assert!((secs - 1.0).abs() < 0.02, "{secs}");
    }
}
