//! Judgements over everything a player asked the DASH origin actor (`saw:` steps that read the
//! actor's [`Record`]), the playback the harness estimates from it, and the figures reports show.
//! The rules and numbers are `docs/dash.md`'s ("Requesting", "Adapting", "What the harness
//! measures").
//!
//! ```yaml
//! - saw: { actor: origin, mpd_first: true }          # the MPD is the first request
//! - saw: { actor: origin, init_before_media: true }  # each representation's init before its media
//! - saw: { actor: origin, in_order: true }           # positions in order, once each (a failed one again)
//! - saw: { actor: origin, all_segments: true }       # every position downloaded
//! - saw: { actor: origin, only_listed: true }        # nothing the MPD does not list
//! - saw: { actor: origin, ranges: true }             # single files asked by range, never whole
//! - saw: { actor: origin, below_throughput: { factor: 2 } }
//! - saw: { actor: origin, adapts_down: { within: 3 } }
//! - saw: { actor: origin, adapts_up: { within: 5 } }
//! - saw: { actor: origin, top_when_fits: { from: 5 } }
//! - saw: { actor: origin, no_stall: { max: 0.5s } }
//! - saw: { actor: origin, failover: { from: 127.0.0.3 } }  # positions that host failed, got elsewhere
//! ```

use std::net::IpAddr;
use std::time::Duration;

use super::media::What;
use super::record::{Delivery, Record};
use crate::proto::common::actor::ActorLog;
use crate::proto::steps::Received;
use crate::proto::{Message, Mismatch, RenderCx, StructuredExpect};
use crate::syntax::{Data, LoadCx, Node, Template};

/// The expect keys this file reads.
pub const KEYS: &[&str] = &[
    "mpd_first",
    "init_before_media",
    "in_order",
    "all_segments",
    "only_listed",
    "ranges",
    "below_throughput",
    "adapts_down",
    "adapts_up",
    "top_when_fits",
    "no_stall",
    "failover",
    "redirects_followed",
    "served_by",
    "host_field",
];

/// One media position as the player got it.
#[derive(Debug, Clone, Copy)]
pub struct Download {
    /// Position, 0-based.
    pub position: usize,
    /// Representation index.
    pub rep: usize,
    /// Its @bandwidth.
    pub bandwidth: u64,
    /// Requested, seconds from the actor's start.
    pub at: f64,
    /// Last byte written.
    pub done: f64,
}

/// The playback the harness estimates (docs/dash.md "What the harness measures").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Playback {
    /// From the MPD request to the end of the first media segment.
    pub startup: Option<f64>,
    /// Seconds stalled after the start.
    pub rebuffering: f64,
    /// The largest single stall, and the position it was at.
    pub worst_stall: Option<(f64, usize)>,
    /// Mean @bandwidth over the positions, bit/s.
    pub average: f64,
    /// Representation changes between consecutive positions.
    pub switches: usize,
    /// Sum of |change|, bit/s.
    pub switch_size: f64,
    /// The linear QoE: sum of bitrates - sum of |changes| - mu x rebuffering (Mbit/s, seconds).
    pub qoe: f64,
    /// Positions played, in order (up to the first one missing).
    pub played: usize,
}

/// The first completed 2xx download of each media position, by position.
pub fn downloads(r: &Record) -> Vec<Download> {
    let mut out: Vec<Download> = Vec::new();
    for d in &r.deliveries {
        let (What::Media(rep, position), Some(done)) = (d.what, d.done) else {
            continue;
        };
        if !(200..300).contains(&d.status) || d.method != "GET" || out.iter().any(|o| o.position == position) {
            continue;
        }
        out.push(Download {
            position,
            rep,
            bandwidth: r.presentation.reps[rep].bandwidth,
            at: d.at.as_secs_f64(),
            done: done.as_secs_f64(),
        });
    }
    out.sort_by_key(|d| d.position);
    out
}

/// Playback over `downloads` (by position) of `segment`-second segments, `top` the highest
/// @bandwidth; `mpd_at` when the MPD was asked for.
pub fn playback(downloads: &[Download], segment: f64, top: u64, mpd_at: Option<f64>) -> Playback {
    let mut p = Playback::default();
    let Some(first) = downloads.first().filter(|d| d.position == 0) else {
        return p;
    };
    p.startup = mpd_at.map(|m| (first.done - m).max(0.0));
    let start = first.done;
    let mut stalls = 0.0;
    let mut prev: Option<u64> = None;
    let mut sum = 0.0;
    for (k, d) in downloads.iter().enumerate() {
        if d.position != k {
            break;
        }
        let due = start + k as f64 * segment + stalls;
        if d.done > due {
            let s = d.done - due;
            stalls += s;
            if p.worst_stall.is_none_or(|(w, _)| s > w) {
                p.worst_stall = Some((s, k));
            }
        }
        if let Some(b) = prev.filter(|b| *b != d.bandwidth) {
            p.switches += 1;
            p.switch_size += (b as f64 - d.bandwidth as f64).abs();
        }
        prev = Some(d.bandwidth);
        sum += d.bandwidth as f64;
        p.played += 1;
    }
    p.rebuffering = stalls;
    p.average = if p.played > 0 { sum / p.played as f64 } else { 0.0 };
    let mu = top as f64 / 1e6;
    p.qoe = sum / 1e6 - p.switch_size / 1e6 - mu * stalls;
    p
}

/// The playback of a record so far.
pub fn playback_of(r: &Record) -> Playback {
    let top = r.presentation.reps.iter().map(|x| x.bandwidth).max().unwrap_or(0);
    let mpd_at = r.deliveries.iter().find(|d| d.what == What::Mpd).map(|d| d.at.as_secs_f64());
    playback(&downloads(r), r.presentation.segment, top, mpd_at)
}

/// Logs a record's figures after a download completed: the offered and chosen rates (as samples
/// over time) and the playback's figures so far.
pub fn figures(r: &Record, conv: usize, log: &dyn ActorLog) {
    let Some(last) = r.deliveries.iter().rev().find(|d| d.done.is_some()) else {
        return;
    };
    if let What::Media(rep, _) = last.what {
        log.figure(conv, "chosen kbit/s", r.presentation.reps[rep].bandwidth as f64 / 1000.0, true);
        if let Some(o) = r.offered(last.at) {
            log.figure(conv, "offered kbit/s", o as f64 / 1000.0, true);
        }
        if let Some(t) = throughput(last) {
            log.figure(conv, "measured kbit/s", t / 1000.0, true);
        }
        let p = playback_of(r);
        log.figure(conv, "segments", p.played as f64, false);
        if let Some(s) = p.startup {
            log.figure(conv, "startup s", s, false);
        }
        log.figure(conv, "rebuffering s", p.rebuffering, false);
        log.figure(conv, "average kbit/s", p.average / 1000.0, false);
        log.figure(conv, "switches", p.switches as f64, false);
        log.figure(conv, "switch size kbit/s", p.switch_size / 1000.0, false);
        log.figure(conv, "QoE", p.qoe, false);
    }
}

/// A download's throughput in bit/s: its bytes over the time from its request to its last byte.
fn throughput(d: &Delivery) -> Option<f64> {
    let done = d.done?;
    let secs = done.saturating_sub(d.at).as_secs_f64().max(1e-4);
    (d.bytes > 0).then(|| d.bytes as f64 * 8.0 / secs)
}

#[derive(Debug, Clone)]
enum Rule {
    MpdFirst,
    InitBeforeMedia,
    InOrder,
    AllSegments,
    OnlyListed,
    Ranges,
    BelowThroughput(f64),
    AdaptsDown(usize),
    AdaptsUp(usize),
    TopWhenFits(usize),
    NoStall(Duration),
    Failover(IpAddr),
    RedirectsFollowed,
    ServedBy(Vec<IpAddr>),
    HostField(String, Vec<IpAddr>),
}

/// One judgement.
#[derive(Debug)]
pub struct Judgement {
    rule: Rule,
}

/// Reads one of [`KEYS`] from a `saw:` mapping.
pub fn parse(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    let f = cx.fields(node, KEYS, "a DASH judgement")?;
    let (key, v) = KEYS.iter().find_map(|k| f.get(k).map(|v| (*k, v)))?;
    let flag = |cx: &mut LoadCx| -> Option<()> {
        match cx.boolean(v, key)? {
            true => Some(()),
            false => {
                cx.err_help(
                    v,
                    format!("{key}: false judges nothing"),
                    format!("write {key}: true, or leave the step out"),
                );
                None
            }
        }
    };
    let sub = |cx: &mut LoadCx, name: &str, example: &str| -> Option<Node> {
        let g = cx.fields(v, &[name], key)?;
        match g.get(name) {
            Some(n) => Some(n.clone()),
            None => {
                cx.err_help(v, format!("{key} needs {name}"), format!("e.g. {key}: {{ {example} }}"));
                None
            }
        }
    };
    let rule = match key {
        "mpd_first" => flag(cx).map(|_| Rule::MpdFirst)?,
        "init_before_media" => flag(cx).map(|_| Rule::InitBeforeMedia)?,
        "in_order" => flag(cx).map(|_| Rule::InOrder)?,
        "all_segments" => flag(cx).map(|_| Rule::AllSegments)?,
        "only_listed" => flag(cx).map(|_| Rule::OnlyListed)?,
        "ranges" => flag(cx).map(|_| Rule::Ranges)?,
        "below_throughput" => {
            let n = sub(cx, "factor", "factor: 2")?;
            let x: f64 = cx.number(&n, "factor")?;
            if !(x >= 1.0 && x.is_finite()) {
                cx.err(&n, "a factor of 1 or more");
                return None;
            }
            Rule::BelowThroughput(x)
        }
        "adapts_down" => {
            let n = sub(cx, "within", "within: 3")?;
            Rule::AdaptsDown(cx.number(&n, "within")?)
        }
        "adapts_up" => {
            let n = sub(cx, "within", "within: 5")?;
            Rule::AdaptsUp(cx.number(&n, "within")?)
        }
        "top_when_fits" => {
            let n = sub(cx, "from", "from: 5")?;
            Rule::TopWhenFits(cx.number(&n, "from")?)
        }
        "no_stall" => {
            let n = sub(cx, "max", "max: 0.5s")?;
            Rule::NoStall(cx.duration(&n, "max")?)
        }
        "redirects_followed" => flag(cx).map(|_| Rule::RedirectsFollowed)?,
        "served_by" => Rule::ServedBy(cx.addresses(v, "served_by")?),
        "host_field" => match &v.data {
            Data::Map(_) => {
                let g = cx.fields(v, &["name", "on"], "host_field")?;
                let Some(n) = g.get("name") else {
                    cx.err_help(
                        v,
                        "host_field needs name",
                        "e.g. host_field: { name: a1105.kingcdn.test, on: [127.0.0.5] }",
                    );
                    return None;
                };
                let on = match g.get("on") {
                    Some(o) => cx.addresses(o, "on")?,
                    None => Vec::new(),
                };
                Rule::HostField(cx.string(n, "name")?, on)
            }
            _ => Rule::HostField(cx.string(v, "host_field")?, Vec::new()),
        },
        "failover" => {
            let n = sub(cx, "from", "from: 127.0.0.3")?;
            match n.as_str().map(str::parse::<IpAddr>) {
                Some(Ok(ip)) => Rule::Failover(ip),
                _ => {
                    cx.err(&n, "the address of the host that fails");
                    return None;
                }
            }
        }
        _ => return None,
    };
    if matches!(rule, Rule::AdaptsDown(0) | Rule::AdaptsUp(0) | Rule::TopWhenFits(0)) {
        if let Data::Map(_) = v.data {
            cx.err(v, "a count of 1 or more");
        }
        return None;
    }
    Some(Box::new(Judgement { rule }))
}

fn fail(message: impl Into<String>, expected: impl Into<String>, got: impl Into<String>) -> Option<Result<String, Mismatch>> {
    Some(Err(Mismatch {
        message: message.into(),
        expected: expected.into(),
        got: got.into(),
        at: None,
    }))
}

fn kbit(b: u64) -> String {
    format!("{} kbit/s", b / 1000)
}

/// A request as a line: when, what, which representation.
fn shown(r: &Record, d: &Delivery) -> String {
    let what = match d.what {
        What::Mpd => "the MPD".to_string(),
        What::Init(i) => format!("representation {}'s initialization", r.presentation.reps[i].id),
        What::Index(i) => format!("representation {}'s segment index", r.presentation.reps[i].id),
        What::Media(i, k) => format!(
            "segment {} of representation {} ({})",
            k + 1,
            r.presentation.reps[i].id,
            kbit(r.presentation.reps[i].bandwidth)
        ),
        What::Whole(i) => format!("the whole file of representation {}", r.presentation.reps[i].id),
        What::Unknown => "nothing the MPD lists".to_string(),
    };
    let range = d.range.map(|(a, b)| format!(" bytes {a}-{b}")).unwrap_or_default();
    format!(
        "{:.2} s: {} {}{range} ({what}) from {} -> {}",
        d.at.as_secs_f64(),
        d.method,
        d.path,
        d.host,
        d.status
    )
}

/// Media requests, in the order they were sent.
fn media(r: &Record) -> Vec<(&Delivery, usize, usize)> {
    r.deliveries
        .iter()
        .filter(|d| d.method == "GET")
        .filter_map(|d| match d.what {
            What::Media(rep, k) => Some((d, rep, k)),
            _ => None,
        })
        .collect()
}

impl Judgement {
    fn over(&self, r: &Record) -> Option<Result<String, Mismatch>> {
        let reps = &r.presentation.reps;
        let count = r.layout.count;
        let gets: Vec<&Delivery> = r.deliveries.iter().filter(|d| d.method == "GET").collect();
        let media = media(r);
        match &self.rule {
            Rule::MpdFirst => match gets.first() {
                Some(d) if d.what == What::Mpd => Some(Ok(format!("the MPD first, at {:.2} s", d.at.as_secs_f64()))),
                Some(d) => fail("the player's first request is not for the MPD", "the MPD, which lists every other URL", shown(r, d)),
                None => fail("the player asked the origin nothing", "a request for the MPD", "no request"),
            },
            Rule::InitBeforeMedia => {
                for (i, (d, rep, _)) in media.iter().enumerate() {
                    let before = r
                        .deliveries
                        .iter()
                        .take_while(|x| !std::ptr::eq(*x, *d))
                        .any(|x| x.what == What::Init(*rep) && (200..300).contains(&x.status));
                    if !before && !media[..i].iter().any(|(_, r2, _)| r2 == rep) {
                        return fail(
                            format!("representation {}'s media was asked for before its initialization segment", reps[*rep].id),
                            "its initialization segment first: a media segment cannot be decoded without it (ISO/IEC 23009-1 §5.3.9.5, §6.3.4.2)",
                            shown(r, d),
                        );
                    }
                }
                Some(Ok(format!("initialization first for each of {} representation(s) used", {
                    let mut u: Vec<usize> = media.iter().map(|m| m.1).collect();
                    u.dedup();
                    u.sort_unstable();
                    u.dedup();
                    u.len()
                })))
            }
            Rule::InOrder => {
                // Each request is the next position after the highest asked so far, or one asked
                // again because every earlier request for it failed.
                let mut highest: Option<usize> = None;
                for (i, (d, _, k)) in media.iter().enumerate() {
                    let next = highest.map_or(0, |h| h + 1);
                    let earlier: Vec<&Delivery> = media[..i].iter().filter(|m| m.2 == *k).map(|m| m.0).collect();
                    let retry = !earlier.is_empty() && earlier.iter().all(|e| !((200..300).contains(&e.status) && e.done.is_some()));
                    if *k == next || retry {
                        highest = Some(highest.map_or(*k, |h| h.max(*k)));
                        continue;
                    }
                    let why = match *k > next {
                        true => format!("segment {} was asked for before segment {}", k + 1, next + 1),
                        false => format!("segment {} was asked for again after it had arrived", k + 1),
                    };
                    return fail(
                        why,
                        format!("segment {} next: segments are played in order, each once (docs/dash.md, Requesting)", next + 1),
                        shown(r, d),
                    );
                }
                Some(Ok(format!("{} media requests in order", media.len())))
            }
            Rule::AllSegments => {
                let got = downloads(r);
                let missing: Vec<usize> = (0..count).filter(|k| !got.iter().any(|g| g.position == *k)).collect();
                match missing.first() {
                    None => Some(Ok(format!("all {count} segments downloaded"))),
                    Some(k) => fail(
                        format!("segment {} of {count} was never downloaded ({} missing)", k + 1, missing.len()),
                        "every segment of the presentation, each from some representation (docs/dash.md, Requesting)",
                        format!("{} of {count} downloaded", count - missing.len()),
                    ),
                }
            }
            Rule::OnlyListed => match r.deliveries.iter().find(|d| d.what == What::Unknown && d.method != "OPTIONS") {
                None => Some(Ok(format!("{} requests, all for what the MPD lists", r.deliveries.len()))),
                Some(d) => fail(
                    "the player asked for a URL the MPD does not list",
                    format!(
                        "only the MPD's URLs: {count} segments per representation, numbered and named as its addressing says (ISO/IEC 23009-1 §5.3.9)"
                    ),
                    shown(r, d),
                ),
            },
            Rule::Ranges => match gets.iter().find(|d| matches!(d.what, What::Whole(_))) {
                None => Some(Ok("every piece of a single file asked by its byte range".into())),
                Some(d) => fail(
                    "the player downloaded a whole representation file instead of the segment's byte range",
                    "Range: bytes=FIRST-LAST of the piece the MPD names (ISO/IEC 23009-1 §5.3.9.2-3, RFC 9110 §14.2)",
                    shown(r, d),
                ),
            },
            Rule::BelowThroughput(factor) => {
                for (i, (d, rep, _)) in media.iter().enumerate().skip(1) {
                    let before: Vec<f64> = r
                        .deliveries
                        .iter()
                        .filter(|x| x.done.is_some_and(|t| t <= d.at) && x.method == "GET")
                        .filter_map(throughput)
                        .collect();
                    let last3 = &before[before.len().saturating_sub(3)..];
                    let Some(best) = last3.iter().cloned().reduce(f64::max) else { continue };
                    let b = reps[*rep].bandwidth as f64;
                    if b > factor * best {
                        return fail(
                            format!("media request {} asked for {} with the last downloads at {:.0} kbit/s at best", i + 1, kbit(reps[*rep].bandwidth), best / 1000.0),
                            format!("at most {factor} x the best of the last three downloads' throughput (docs/dash.md, Adapting rule 1)"),
                            shown(r, d),
                        );
                    }
                }
                Some(Ok(format!("{} media requests within {factor} x the measured throughput", media.len())))
            }
            Rule::AdaptsDown(within) => {
                let mut judged = 0;
                for (at, _, low) in r.changes().into_iter().filter(|(_, from, to)| to < from) {
                    let in_use = media.iter().rev().find(|(d, ..)| d.at <= at).map(|m| reps[m.1].bandwidth);
                    if in_use.is_none_or(|b| b <= low) {
                        continue;
                    }
                    let end = r.changes().into_iter().map(|c| c.0).find(|t| *t > at);
                    let after: Vec<_> = media.iter().filter(|(d, ..)| d.at > at && end.is_none_or(|e| d.at < e)).collect();
                    judged += 1;
                    let from = within - 1;
                    let bad = if after.len() > from {
                        after[from..].iter().find(|m| reps[m.1].bandwidth > low)
                    } else {
                        // Fewer requests than that while the rate was low: at least one must fit.
                        (!after.iter().any(|m| reps[m.1].bandwidth <= low)).then(|| after.last()).flatten()
                    };
                    if let Some((d, rep, _)) = bad {
                        let n = after.iter().position(|m| std::ptr::eq(m.0, *d)).unwrap_or(0) + 1;
                        let message = match after.len() > from {
                            true => format!(
                                "the bandwidth fell to {} at {:.1} s; request {n} after the fall still asked for {}",
                                kbit(low),
                                at.as_secs_f64(),
                                kbit(reps[*rep].bandwidth)
                            ),
                            false => format!(
                                "the bandwidth fell to {} at {:.1} s; the player sent only {} request(s) while it lasted, none for a rate that fits (the last asked for {})",
                                kbit(low),
                                at.as_secs_f64(),
                                after.len(),
                                kbit(reps[*rep].bandwidth)
                            ),
                        };
                        return fail(
                            message,
                            format!("from the request {within} after the fall on, a representation that fits {} (docs/dash.md, Adapting rule 2)", kbit(low)),
                            shown(r, d),
                        );
                    }
                    if after.is_empty() {
                        return fail(
                            format!("the bandwidth fell to {} at {:.1} s and the player asked for nothing more while it lasted", kbit(low), at.as_secs_f64()),
                            "requests at a representation that fits the lower rate (docs/dash.md, Adapting rule 2)",
                            "no media request while the rate was low",
                        );
                    }
                }
                match judged {
                    0 => fail(
                        "no fall below the representation in use to judge",
                        "the bandwidth falling below the representation the player was using",
                        format!("{} media requests; the schedule's changes: {:?}", media.len(), r.changes()),
                    ),
                    n => Some(Ok(format!("down within {within} request(s) after {n} fall(s)"))),
                }
            }
            Rule::AdaptsUp(within) => {
                let top = reps.iter().map(|x| x.bandwidth).max().unwrap_or(0);
                let mut judged = 0;
                for (at, _, high) in r.changes().into_iter().filter(|(_, from, to)| to > from && *to >= 4 * top) {
                    let Some(in_use) = media.iter().rev().find(|(d, ..)| d.at <= at).map(|m| reps[m.1].bandwidth) else { continue };
                    if in_use == top {
                        continue;
                    }
                    let after: Vec<_> = media.iter().filter(|(d, ..)| d.at > at).take(*within).collect();
                    if after.len() < *within && after.last().is_some_and(|m| m.2 + 1 < r.layout.count) {
                        continue;
                    }
                    judged += 1;
                    if !after.iter().any(|m| reps[m.1].bandwidth > in_use) {
                        return fail(
                            format!(
                                "the bandwidth came back to {} at {:.1} s; {} request(s) later the player still asked for at most {}",
                                kbit(high),
                                at.as_secs_f64(),
                                after.len(),
                                kbit(in_use)
                            ),
                            format!("a higher representation than {} within {within} media requests (docs/dash.md, Adapting rule 3)", kbit(in_use)),
                            after.last().map_or("no media request after it".into(), |m| shown(r, m.0)),
                        );
                    }
                }
                match judged {
                    0 => fail(
                        "no recovery to judge",
                        "the bandwidth rising back to 4 x the top representation while the player was below the top, with segments left",
                        format!("{} media requests; the schedule's changes: {:?}", media.len(), r.changes()),
                    ),
                    _ => Some(Ok(format!("up within {within} requests after the recovery"))),
                }
            }
            Rule::TopWhenFits(from) => {
                let top = reps.len() - 1;
                if let Some((d, rep, _)) = media.iter().skip(from - 1).find(|m| m.1 != top) {
                    return fail(
                        format!("with bandwidth to spare the player asked for {}", kbit(reps[*rep].bandwidth)),
                        format!(
                            "the top representation ({}) from media request {from} on (docs/dash.md, Adapting rule 4)",
                            kbit(reps[top].bandwidth)
                        ),
                        shown(r, d),
                    );
                }
                if media.len() < *from {
                    return fail("too few media requests to judge", format!("at least {from}"), media.len().to_string());
                }
                Some(Ok(format!("the top representation from request {from} on")))
            }
            Rule::NoStall(max) => {
                let p = playback_of(r);
                if p.played == 0 {
                    return fail("nothing was played", "the first segment downloaded", "no media segment completed");
                }
                if p.rebuffering > max.as_secs_f64() {
                    let (s, k) = p.worst_stall.unwrap_or_default();
                    return fail(
                        format!("playback stalled {:.2} s in all; the longest stall ({s:.2} s) waited for segment {}", p.rebuffering, k + 1),
                        format!("at most {:.2} s of rebuffering when the lowest rate fits (docs/dash.md, Adapting rule 6)", max.as_secs_f64()),
                        format!("{} segments played, average {}", p.played, kbit(p.average as u64)),
                    );
                }
                Some(Ok(format!("{:.2} s of rebuffering over {} segments", p.rebuffering, p.played)))
            }
            Rule::ServedBy(hosts) => {
                let list = hosts.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" or ");
                if media.is_empty() {
                    return fail("no media request reached the origin's hosts", format!("media requests to {list}"), "none");
                }
                match media.iter().find(|(d, ..)| !hosts.contains(&d.host)) {
                    Some((d, ..)) => fail(
                        format!("a media segment was asked of {}, not of a CDN node", d.host),
                        format!("media from {list}: the addresses the name resolves to (K&R 2.6.3: the CDN's DNS picks the node)"),
                        shown(r, d),
                    ),
                    None => Some(Ok(format!("{} media requests, all to {list}", media.len()))),
                }
            }
            Rule::HostField(name, on) => {
                let judged: Vec<&Delivery> = r.deliveries.iter().filter(|d| on.is_empty() || on.contains(&d.host)).collect();
                if judged.is_empty() {
                    return fail("no request to judge", format!("requests with Host: {name}"), "none reached those hosts");
                }
                let bad = judged.iter().find(|d| {
                    let got = d.host_field.as_deref().unwrap_or_default();
                    let host = got.rsplit_once(':').map_or(got, |(h, _)| h);
                    !host.eq_ignore_ascii_case(name)
                });
                match bad {
                    Some(d) => fail(
                        format!("a request said Host: {}", d.host_field.as_deref().unwrap_or("(none)")),
                        format!(
                            "Host: {name}:PORT, the authority of the URL asked for, whatever address it went to (RFC 9110 §7.2: \"the target URI's authority component\")"
                        ),
                        shown(r, d),
                    ),
                    None => Some(Ok(format!("{} requests, each with Host: {name}", judged.len()))),
                }
            }
            Rule::RedirectsFollowed => {
                // A 302 is temporary (RFC 9110 §15.4.3): what a redirect pointed to is asked
                // after that redirect, and the next segment at the MPD's URL again.
                let redirected: Vec<&Delivery> = r.deliveries.iter().filter(|d| d.status == 302).collect();
                if redirected.is_empty() {
                    return fail("the origin redirected nothing", "segment requests the origin answers with 302", "no 302 sent");
                }
                let segments: Vec<&&Delivery> = gets
                    .iter()
                    .filter(|d| d.status != 302 && matches!(d.what, What::Init(_) | What::Index(_) | What::Media(..) | What::Whole(_)))
                    .collect();
                for d in &segments {
                    if !redirected.iter().any(|x| x.what == d.what && x.at <= d.at) {
                        return fail(
                            "a segment was asked at the redirect's target without being asked at its own URL first",
                            "each segment at the URL the MPD gives; a 302 answers only that request (RFC 9110 §15.4.3: \"the client ought to continue to use the target URI for future requests\")",
                            shown(r, d),
                        );
                    }
                }
                let followed = redirected.iter().filter(|x| segments.iter().any(|d| d.what == x.what && d.at >= x.at)).count();
                if followed < redirected.len() {
                    return fail(
                        format!("{} of {} redirects were not followed", redirected.len() - followed, redirected.len()),
                        "each 302 followed to its Location (RFC 9110 §15.4.3)",
                        format!("{followed} followed"),
                    );
                }
                Some(Ok(format!("{} redirects, each followed", redirected.len())))
            }
            Rule::Failover(host) => {
                let failed: Vec<(&Delivery, usize)> = media
                    .iter()
                    .filter(|(d, ..)| d.host == *host && !((200..300).contains(&d.status) && d.done.is_some()))
                    .map(|(d, _, k)| (*d, *k))
                    .collect();
                let Some((first, _)) = failed.first() else {
                    return fail(
                        format!("no request to {host} failed, so there was no failover to judge"),
                        format!("media requests to {host}, which fails"),
                        format!("{} media requests, none failed at {host}", media.len()),
                    );
                };
                let got = downloads(r);
                for (d, k) in &failed {
                    let elsewhere = r.deliveries.iter().any(|x| {
                        x.what == d.what && x.host != *host && x.done.is_some() && (200..300).contains(&x.status) && x.at >= d.at
                    });
                    if !elsewhere && !got.iter().any(|g| g.position == *k) {
                        return fail(
                            format!("segment {} failed at {host} and was never fetched from another BaseURL", k + 1),
                            "the same segment from the next BaseURL alternative (ISO/IEC 23009-1 §5.6.5; docs/dash.md, Reading the MPD)",
                            shown(r, d),
                        );
                    }
                }
                let later_there = media.iter().filter(|(d, ..)| d.host == *host && d.at > first.at + Duration::from_secs(2)).count();
                Some(Ok(format!(
                    "{} failed request(s) at {host} fetched elsewhere; {later_there} later request(s) went back to it",
                    failed.len()
                )))
            }
        }
    }
}

impl StructuredExpect for Judgement {
    fn check(&self, msg: &Message, _cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        Err(crate::proto::steps::mismatch(
            "this judgement reads everything the origin served: use it in a saw step",
            self.describe(),
            msg,
        ))
    }
    fn templates(&self) -> Vec<&Template> {
        Vec::new()
    }
    fn captures(&self) -> Vec<String> {
        Vec::new()
    }
    fn describe(&self) -> String {
        match &self.rule {
            Rule::MpdFirst => "the MPD first".into(),
            Rule::InitBeforeMedia => "each representation's initialization segment before its media".into(),
            Rule::InOrder => "media segments in order, each once".into(),
            Rule::AllSegments => "every segment downloaded".into(),
            Rule::OnlyListed => "only URLs the MPD lists".into(),
            Rule::Ranges => "byte ranges, never whole files".into(),
            Rule::BelowThroughput(f) => format!("no request above {f} x the measured throughput"),
            Rule::AdaptsDown(w) => format!("down within {w} requests after a fall"),
            Rule::AdaptsUp(w) => format!("up within {w} requests after a recovery"),
            Rule::TopWhenFits(f) => format!("the top representation from request {f} on"),
            Rule::NoStall(m) => format!("at most {:.2} s of rebuffering", m.as_secs_f64()),
            Rule::Failover(h) => format!("what {h} failed fetched from another BaseURL"),
            Rule::RedirectsFollowed => "each redirect followed, and each segment asked at its own URL first".into(),
            Rule::ServedBy(h) => format!("media from {}", h.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" or ")),
            Rule::HostField(n, _) => format!("Host: {n}:PORT on every request"),
        }
    }
    fn judges(&self) -> bool {
        true
    }
    fn judge(&self, _received: &[Received<'_>]) -> Option<Result<String, Mismatch>> {
        None
    }
    fn judge_record(
        &self,
        _received: &[Received<'_>],
        record: Option<&(dyn std::any::Any + Send + Sync)>,
    ) -> Option<Result<String, Mismatch>> {
        let Some(r) = record.and_then(|r| r.downcast_ref::<std::sync::Mutex<Record>>()) else {
            return fail(
                "this judgement reads a DASH origin's record",
                "a saw step over a dash actor",
                "an actor that keeps no such record",
            );
        };
        let r = r.lock().unwrap_or_else(|e| e.into_inner());
        self.over(&r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(position: usize, bandwidth: u64, at: f64, done: f64) -> Download {
        Download {
            position,
            rep: 0,
            bandwidth,
            at,
            done,
        }
    }

    #[test]
    fn estimates_stalls_and_qoe() {
        // Segment 1 done at 1.0 (playback starts), 2 due at 2.0 (done 1.5), 3 due at 3.0 but done
        // at 4.0: 1 s stall; 4 due at 5.0 (after the stall), done 4.5.
        let p = playback(
            &[
                d(0, 100_000, 0.5, 1.0),
                d(1, 200_000, 1.0, 1.5),
                d(2, 200_000, 1.5, 4.0),
                d(3, 100_000, 4.0, 4.5),
            ],
            1.0,
            400_000,
            Some(0.25),
        );
        assert_eq!(p.startup, Some(0.75));
        assert!((p.rebuffering - 1.0).abs() < 1e-9);
        assert_eq!(p.worst_stall.map(|w| w.1), Some(2));
        assert_eq!(p.switches, 2);
        assert!((p.switch_size - 200_000.0).abs() < 1e-9);
        assert!((p.average - 150_000.0).abs() < 1e-9);
        // 0.6 Mbit/s of bitrate - 0.2 of switching - 0.4 x 1 s.
        assert!((p.qoe - 0.0).abs() < 1e-9, "{}", p.qoe);
        assert_eq!(p.played, 4);
    }

    #[test]
    fn stops_at_the_first_missing_position() {
        let p = playback(&[d(0, 1, 0.0, 1.0), d(2, 1, 1.0, 2.0)], 1.0, 1, None);
        assert_eq!(p.played, 1);
        assert_eq!(playback(&[d(1, 1, 0.0, 1.0)], 1.0, 1, None), Playback::default());
    }
}
