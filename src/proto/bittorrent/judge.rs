//! Judgements over everything a client sent a whole swarm (`saw:` steps that read the swarm
//! actor's record at once): which pieces it asked for first, whom it unchoked and when, whether
//! every request kept to the block size. One message at a time cannot tell these.
//!
//! ```yaml
//! - saw: { actor: swarm, rarest_first: { piece: 41, within: 4 } }
//!   # piece 41 is among the first 4 distinct pieces the client requested (from any peer)
//! - saw: { actor: swarm, unchokes: { top: [127.0.0.11, ...], rest: [127.0.0.15, ...], after: 3s } }
//!   # from 3 s after the client's first message to its last (or its first `not interested` to
//!   # one of these peers: from then on that peer's rate is not its speed), each `top` peer is unchoked at
//!   # least half the time and longer than any `rest` peer (sampled every 50 ms; a rate measured
//!   # over one short period is a block or two, so a top peer may lose a round now and then);
//!   # with `optimistic:` instead:
//!   #   at-most-one: at most one `rest` peer unchoked at a time (95% of the samples: a rechoke's
//!   #                messages go one by one), some: a `rest` peer unchoked at some point,
//!   #   rotates: two different `rest` peers unchoked at some point
//! - saw: { actor: swarm, requests: { length: { max: 16384 } } }   # every request
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::codec::PeerMessage;
use crate::proto::steps::Received;
use crate::proto::{Message, Mismatch, RenderCx, StructuredExpect};
use crate::syntax::{Data, LoadCx, Node, Template};

/// How often the unchoked set is sampled.
const SAMPLE: Duration = Duration::from_millis(50);
/// A top peer must be unchoked at least this share of the time.
const TOP_SHARE: f64 = 0.5;
/// Samples with two `rest` peers unchoked at once that are let go (a rechoke's messages).
const OVERLAP_SHARE: f64 = 0.05;
/// The shortest window the choking is judged over.
const MIN_WINDOW: Duration = Duration::from_secs(1);

/// The expect keys this file reads.
pub const KEYS: &[&str] = &["rarest_first", "unchokes", "requests"];

/// Reads one of [`KEYS`] from a `saw:` mapping.
pub fn parse(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    let f = cx.fields(node, KEYS, "a swarm judgement")?;
    if let Some(n) = f.get("rarest_first") {
        let g = cx.fields(n, &["piece", "within"], "rarest_first")?;
        let (Some(p), Some(w)) = (g.get("piece"), g.get("within")) else {
            cx.err_help(
                n,
                "rarest_first needs piece and within",
                "e.g. rarest_first: { piece: 41, within: 4 }",
            );
            return None;
        };
        return Some(Box::new(RarestFirst {
            piece: cx.number(p, "piece")?,
            within: cx.number(w, "within")?,
        }));
    }
    if let Some(n) = f.get("unchokes") {
        let g = cx.fields(n, &["top", "rest", "after", "optimistic"], "unchokes")?;
        let hosts = |cx: &mut LoadCx, key: &str| -> Option<Vec<IpAddr>> {
            let Some(Node {
                data: Data::Seq(items), ..
            }) = g.get(key)
            else {
                cx.err_help(
                    n,
                    format!("unchokes needs '{key}', a list of peer addresses"),
                    "e.g. top: [127.0.0.11, 127.0.0.12]",
                );
                return None;
            };
            items
                .iter()
                .map(|i| match i.as_str().map(str::parse::<IpAddr>) {
                    Some(Ok(ip)) => Some(ip),
                    _ => {
                        cx.err(i, "a peer's IP address");
                        None
                    }
                })
                .collect()
        };
        let top = hosts(cx, "top")?;
        let rest = hosts(cx, "rest")?;
        let after = match g.get("after") {
            Some(a) => cx.duration(a, "after")?,
            None => Duration::ZERO,
        };
        let optimistic = match g.get("optimistic") {
            None => Optimistic::Top,
            Some(o) if o.is_keyword("at-most-one") => Optimistic::AtMostOne,
            Some(o) if o.is_keyword("some") => Optimistic::Some,
            Some(o) if o.is_keyword("rotates") => Optimistic::Rotates,
            Some(o) => {
                cx.err_help(
                    o,
                    "optimistic is at-most-one, some or rotates",
                    "leave it out to judge the top peers",
                );
                return None;
            }
        };
        return Some(Box::new(Unchokes {
            top,
            rest,
            after,
            optimistic,
        }));
    }
    if let Some(n) = f.get("requests") {
        let g = cx.fields(n, &["length"], "requests")?;
        let Some(l) = g.get("length") else {
            cx.err_help(n, "requests needs length", "e.g. requests: { length: { max: 16384 } }");
            return None;
        };
        let h = cx.fields(l, &["max"], "length")?;
        let Some(m) = h.get("max") else {
            cx.err_help(l, "length needs max", "e.g. length: { max: 16384 }");
            return None;
        };
        return Some(Box::new(AllRequests {
            max_length: cx.number(m, "max")?,
        }));
    }
    None
}

fn peer_message(m: &Message) -> Option<&PeerMessage> {
    m.detail.as_ref().and_then(|d| d.downcast_ref::<PeerMessage>())
}

fn fail(message: String, expected: String, got: String) -> Option<Result<String, Mismatch>> {
    Some(Err(Mismatch {
        message,
        expected,
        got,
        at: None,
    }))
}

/// Piece `piece` (held by few peers) is among the first `within` pieces requested.
#[derive(Debug)]
struct RarestFirst {
    piece: u32,
    within: usize,
}

/// Every request is at most `max_length` bytes.
#[derive(Debug)]
struct AllRequests {
    max_length: u32,
}

/// What `unchokes` judges besides the top peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Optimistic {
    /// The top peers stay unchoked.
    Top,
    /// At most one `rest` peer at a time.
    AtMostOne,
    /// Some `rest` peer unchoked at some point.
    Some,
    /// Two different `rest` peers, over time.
    Rotates,
}

/// Whom the client unchoked, and when.
#[derive(Debug)]
struct Unchokes {
    top: Vec<IpAddr>,
    rest: Vec<IpAddr>,
    after: Duration,
    optimistic: Optimistic,
}

/// A judgement only: a single message means nothing to it.
fn no_single(describe: String, msg: &Message) -> Result<Vec<(String, String)>, Mismatch> {
    Err(crate::proto::steps::mismatch(
        "this judgement reads a whole swarm's record: use it in a saw step",
        describe,
        msg,
    ))
}

impl StructuredExpect for RarestFirst {
    fn check(&self, msg: &Message, _cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        no_single(self.describe(), msg)
    }
    fn templates(&self) -> Vec<&Template> {
        Vec::new()
    }
    fn captures(&self) -> Vec<String> {
        Vec::new()
    }
    fn describe(&self) -> String {
        format!("piece {} among the first {} pieces requested", self.piece, self.within)
    }
    fn judges(&self) -> bool {
        true
    }
    fn judge(&self, received: &[Received<'_>]) -> Option<Result<String, Mismatch>> {
        let mut order: Vec<u32> = Vec::new();
        for r in received {
            if let Some(PeerMessage::Request(b)) = peer_message(r.msg) {
                if !order.contains(&b.index) {
                    order.push(b.index);
                }
            }
        }
        let first: Vec<String> = order.iter().take(self.within.max(8)).map(u32::to_string).collect();
        match order.iter().position(|&p| p == self.piece) {
            Some(i) if i < self.within => Some(Ok(format!("piece {} was requested {}", self.piece, nth(i + 1)))),
            found => fail(
                format!(
                    "piece {} is the rarest (the fewest peers have it), yet the client asked for it {}: rarest first (K&R 2.5) asks for the pieces the fewest neighbours have before the others",
                    self.piece,
                    match found {
                        Some(i) => format!("only {}", nth(i + 1)),
                        None => "never".to_string(),
                    }
                ),
                self.describe(),
                format!("the first pieces requested: {}", if first.is_empty() { "none".into() } else { first.join(", ") }),
            ),
        }
    }
}

fn nth(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, x) if x != 11 => "st",
        (2, x) if x != 12 => "nd",
        (3, x) if x != 13 => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

impl StructuredExpect for AllRequests {
    fn check(&self, msg: &Message, _cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        no_single(self.describe(), msg)
    }
    fn templates(&self) -> Vec<&Template> {
        Vec::new()
    }
    fn captures(&self) -> Vec<String> {
        Vec::new()
    }
    fn describe(&self) -> String {
        format!("every request for at most {} bytes", self.max_length)
    }
    fn judges(&self) -> bool {
        true
    }
    fn judge(&self, received: &[Received<'_>]) -> Option<Result<String, Mismatch>> {
        let mut n = 0;
        for r in received {
            if let Some(PeerMessage::Request(b)) = peer_message(r.msg) {
                n += 1;
                if b.length > self.max_length {
                    return fail(
                        format!(
                            "the client asked {} for {} bytes at once (BEP 3: \"All current implementations use 2^14 (16 kiB), and close connections which request an amount greater than that\"): request blocks of 16 KiB",
                            r.local.ip(),
                            b.length
                        ),
                        self.describe(),
                        r.msg.summary.clone(),
                    );
                }
            }
        }
        if n == 0 {
            return fail("the client sent no request at all".into(), self.describe(), "no request".into());
        }
        Some(Ok(format!("{n} requests, none over {} bytes", self.max_length)))
    }
}

impl StructuredExpect for Unchokes {
    fn check(&self, msg: &Message, _cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        no_single(self.describe(), msg)
    }
    fn templates(&self) -> Vec<&Template> {
        Vec::new()
    }
    fn captures(&self) -> Vec<String> {
        Vec::new()
    }
    fn describe(&self) -> String {
        let top = list(&self.top);
        match self.optimistic {
            Optimistic::Top => format!(
                "{top} unchoked at least {:.0}% of the time, and longer than {}",
                TOP_SHARE * 100.0,
                list(&self.rest)
            ),
            Optimistic::AtMostOne => format!("at most one of {} unchoked at a time", list(&self.rest)),
            Optimistic::Some => format!("one of {} unchoked at some point (an optimistic unchoke)", list(&self.rest)),
            Optimistic::Rotates => format!("two different peers of {} unchoked over time", list(&self.rest)),
        }
    }
    fn judges(&self) -> bool {
        true
    }
    fn judge(&self, received: &[Received<'_>]) -> Option<Result<String, Mismatch>> {
        let (Some(first), Some(last)) = (received.iter().map(|r| r.at).min(), received.iter().map(|r| r.at).max()) else {
            return fail("the client sent the swarm nothing".into(), self.describe(), "nothing".into());
        };
        let from = first + self.after;
        // Once the client wants nothing more from one of these peers (not interested), that
        // peer's rate says nothing about its upload speed: the judging stops there.
        let watched_ips: Vec<IpAddr> = self.top.iter().chain(&self.rest).copied().collect();
        let last = received
            .iter()
            .filter(|r| r.at > from && watched_ips.contains(&r.local.ip()))
            .find(|r| matches!(peer_message(r.msg), Some(PeerMessage::NotInterested)))
            .map_or(last, |r| r.at);
        if last < from + MIN_WINDOW {
            return fail(
                format!(
                    "the client's exchange with the swarm lasted {:.1} s: too short to judge its choking after {:.1} s",
                    (last - first).as_secs_f64(),
                    self.after.as_secs_f64()
                ),
                self.describe(),
                format!("messages from {:.1} s to {:.1} s", first.as_secs_f64(), last.as_secs_f64()),
            );
        }
        // Each peer's unchoke state over time: one entry per choke or unchoke, per connection.
        let watched: Vec<IpAddr> = self.top.iter().chain(&self.rest).copied().collect();
        let mut changes: Vec<(Duration, usize, IpAddr, bool)> = Vec::new();
        for r in received {
            let ip = r.local.ip();
            if !watched.contains(&ip) {
                continue;
            }
            match peer_message(r.msg) {
                Some(PeerMessage::Unchoke) => changes.push((r.at, r.conv, ip, true)),
                Some(PeerMessage::Choke) => changes.push((r.at, r.conv, ip, false)),
                _ => {}
            }
        }
        changes.sort_by_key(|c| c.0);
        let mut state: BTreeMap<usize, (IpAddr, bool)> = BTreeMap::new();
        let mut next = 0;
        let (mut samples, mut overlap) = (0u32, 0u32);
        let mut top_on: BTreeMap<IpAddr, u32> = BTreeMap::new();
        let mut rest_seen: Vec<IpAddr> = Vec::new();
        let mut t = from;
        while t <= last {
            while next < changes.len() && changes[next].0 <= t {
                let (_, conv, ip, on) = changes[next];
                state.insert(conv, (ip, on));
                next += 1;
            }
            let on: Vec<IpAddr> = watched
                .iter()
                .copied()
                .filter(|ip| state.values().any(|(h, u)| h == ip && *u))
                .collect();
            samples += 1;
            for ip in &on {
                *top_on.entry(*ip).or_default() += 1;
                if !self.top.contains(ip) && !rest_seen.contains(ip) {
                    rest_seen.push(*ip);
                }
            }
            if on.iter().filter(|ip| self.rest.contains(ip)).count() > 1 {
                overlap += 1;
            }
            t += SAMPLE;
        }
        let window = format!(
            "from {:.1} s to {:.1} s after the client's first message",
            self.after.as_secs_f64(),
            (last - first).as_secs_f64()
        );
        let share = |ip: &IpAddr| f64::from(top_on.get(ip).copied().unwrap_or(0)) / f64::from(samples.max(1));
        let rest_max = self.rest.iter().map(share).fold(0.0, f64::max);
        let shares = || {
            self.top
                .iter()
                .chain(&self.rest)
                .map(|ip| format!("{ip} {:.0}%", share(ip) * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.optimistic {
            Optimistic::Top => match self.top.iter().find(|ip| share(ip) < TOP_SHARE || share(ip) <= rest_max) {
                None => Some(Ok(format!("unchoked share {window}: {}", shares()))),
                Some(ip) => fail(
                    format!(
                        "{ip}, one of the four peers uploading to the client fastest, was unchoked only {:.0}% of the time {window}: tit-for-tat (K&R 2.5) keeps the four fastest uploaders unchoked, here more than half the time and longer than any other peer",
                        share(ip) * 100.0
                    ),
                    self.describe(),
                    format!("unchoked share: {}", shares()),
                ),
            },
            Optimistic::AtMostOne => {
                if f64::from(overlap) <= OVERLAP_SHARE * f64::from(samples) {
                    Some(Ok(format!("at most one of the other peers unchoked {window}")))
                } else {
                    fail(
                        format!(
                            "two or more of the other peers ({}) were unchoked at once {:.0}% of the time {window}: beside the four fastest, K&R 2.5's choking unchokes one peer, the optimistic one",
                            list(&self.rest),
                            f64::from(overlap) * 100.0 / f64::from(samples.max(1))
                        ),
                        self.describe(),
                        format!("{overlap} of {samples} samples with two or more"),
                    )
                }
            }
            Optimistic::Some => match rest_seen.is_empty() {
                false => Some(Ok(format!("{} optimistically unchoked {window}", list(&rest_seen)))),
                true => fail(
                    format!(
                        "none of the other peers ({}) was ever unchoked {window}: K&R 2.5's optimistic unchoke gives one choked peer a chance every 30 s (here every --optimistic period)",
                        list(&self.rest)
                    ),
                    self.describe(),
                    "none of the other peers unchoked".into(),
                ),
            },
            Optimistic::Rotates => match rest_seen.len() >= 2 {
                true => Some(Ok(format!("{} optimistically unchoked in turn {window}", list(&rest_seen)))),
                false => fail(
                    format!(
                        "only {} of the other peers ({}) was unchoked {window}: the optimistic unchoke moves on to another choked peer every period",
                        if rest_seen.is_empty() { "none".to_string() } else { list(&rest_seen) },
                        list(&self.rest)
                    ),
                    self.describe(),
                    format!("unchoked: {}", if rest_seen.is_empty() { "none".to_string() } else { list(&rest_seen) }),
                ),
            },
        }
    }
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::codec::Block;
    use super::*;
    use std::net::SocketAddr;
    use std::sync::Arc;

    fn msg(m: PeerMessage) -> Message {
        Message {
            text: String::new(),
            summary: format!("{m:?}"),
            findings: Vec::new(),
            detail: Some(Arc::new(m)),
        }
    }

    fn at(ms: u64, host: u8, conv: usize, m: &Message) -> Received<'_> {
        Received {
            conv,
            local: SocketAddr::from(([127, 0, 0, host], 6881)),
            at: Duration::from_millis(ms),
            msg: m,
        }
    }

    fn req(index: u32) -> Message {
        msg(PeerMessage::Request(Block {
            index,
            begin: 0,
            length: 16384,
        }))
    }

    #[test]
    fn rarest_first_looks_at_the_first_distinct_pieces_requested() {
        let (a, b, c) = (req(3), req(41), req(3));
        let rf = RarestFirst { piece: 41, within: 2 };
        let got = rf.judge(&[at(0, 11, 0, &a), at(1, 12, 1, &c), at(2, 12, 1, &b)]).unwrap();
        assert!(got.is_ok(), "{got:?}");
        let rf = RarestFirst { piece: 41, within: 1 };
        let err = rf.judge(&[at(0, 11, 0, &a), at(2, 12, 1, &b)]).unwrap().unwrap_err();
        assert!(err.message.contains("only 2nd"), "{}", err.message);
        let err = rf.judge(&[at(0, 11, 0, &a)]).unwrap().unwrap_err();
        assert!(err.message.contains("never"), "{}", err.message);
    }

    #[test]
    fn every_request_is_judged_against_the_block_size() {
        let big = msg(PeerMessage::Request(Block {
            index: 0,
            begin: 0,
            length: 32768,
        }));
        let ok = req(1);
        let all = AllRequests { max_length: 16384 };
        assert!(all.judge(&[at(0, 11, 0, &ok)]).unwrap().is_ok());
        let err = all.judge(&[at(0, 11, 0, &ok), at(1, 11, 0, &big)]).unwrap().unwrap_err();
        assert!(err.message.contains("32768 bytes"), "{}", err.message);
        assert!(all.judge(&[]).unwrap().is_err());
    }

    #[test]
    fn unchokes_samples_who_is_unchoked_over_the_window() {
        let (on, off, have) = (msg(PeerMessage::Unchoke), msg(PeerMessage::Choke), msg(PeerMessage::Have(1)));
        let ip = |h: u8| IpAddr::from([127, 0, 0, h]);
        let judge = |optimistic, rec: &[Received<'_>]| {
            Unchokes {
                top: vec![ip(11)],
                rest: vec![ip(15), ip(16)],
                after: Duration::from_secs(1),
                optimistic,
            }
            .judge(rec)
            .unwrap()
        };
        // 11 unchoked all along; 15 then 16 take turns; the record runs to 4 s.
        let rec = [
            at(0, 11, 0, &on),
            at(0, 15, 1, &on),
            at(2000, 15, 1, &off),
            at(2000, 16, 2, &on),
            at(4000, 11, 0, &have),
        ];
        assert!(judge(Optimistic::Top, &rec).is_ok());
        assert!(judge(Optimistic::AtMostOne, &rec).is_ok());
        assert!(judge(Optimistic::Some, &rec).is_ok());
        assert!(judge(Optimistic::Rotates, &rec).is_ok());
        // 11 choked at 1.5 s; 15 and 16 both on from 2 s.
        let rec = [
            at(0, 11, 0, &on),
            at(1500, 11, 0, &off),
            at(0, 15, 1, &on),
            at(2000, 16, 2, &on),
            at(4000, 11, 0, &have),
        ];
        assert!(judge(Optimistic::Top, &rec).unwrap_err().message.contains("127.0.0.11"));
        assert!(judge(Optimistic::AtMostOne, &rec).is_err());
        // Only 15 ever, and a record too short to judge.
        let rec = [at(0, 11, 0, &on), at(0, 15, 1, &on), at(4000, 11, 0, &have)];
        assert!(judge(Optimistic::Rotates, &rec).is_err());
        let short = [at(0, 11, 0, &on), at(1500, 11, 0, &have)];
        assert!(judge(Optimistic::Top, &short).unwrap_err().message.contains("too short"));
    }
}
