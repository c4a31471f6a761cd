//! HTTP/2's rules over a whole connection (RFC 9113), for `wirecheck check`: each side's first
//! frame is SETTINGS, SETTINGS are acknowledged, streams are opened with rising identifiers of the
//! opener's parity, and a stream a side has closed gets no more of its frames.
//!
//! Only what a side does with its own streams is judged: frames of the two sides cross on the
//! wire, so what one side sends after the other closed a stream (WINDOW_UPDATE, RST_STREAM, §5.1)
//! is never held against it. WINDOW_UPDATE, PING, PRIORITY and SETTINGS may come at any time.

use std::collections::BTreeSet;

use super::codec::{flags, Body, H2Frame, Kind};
use crate::proto::{Direction, Exchange, Finding, Level, Message};

/// Streams remembered per set; the oldest are forgotten past this, bounding memory.
const MAX_STREAMS: usize = 4096;

/// The frame a message carries, if it is an HTTP/2 frame (not the preface).
pub fn frame(m: &Message) -> Option<&H2Frame> {
    m.detail.as_ref()?.downcast_ref::<H2Frame>().filter(|f| f.body != Body::Preface)
}

fn remember(set: &mut BTreeSet<(usize, u32)>, key: (usize, u32)) {
    set.insert(key);
    while set.len() > MAX_STREAMS {
        set.pop_first();
    }
}

/// Findings over one HTTP/2 connection.
pub fn conversation(conv: &[Exchange<'_>]) -> Vec<Finding> {
    let side = |d: Direction| usize::from(d == Direction::ServerToClient);
    let who = ["the client", "the server"];
    let mut out = Vec::new();
    let mut must = |rule: &'static str, dir: Direction, text: String| {
        out.push(Finding {
            level: Level::Must,
            rule,
            text: format!("{} {text}", dir.arrow()),
        })
    };
    let mut first = [true; 2];
    // Per side: SETTINGS sent, ACKs sent, and the other side's SETTINGS it had seen by its last frame.
    let (mut settings, mut acks, mut seen_by_last) = ([0usize; 2], [0usize; 2], [0usize; 2]);
    let mut closed = [false; 2];
    let mut error_goaway = [false; 2];
    let mut last_opened = [0u32; 2];
    // (side, stream): opened by that side's HEADERS or promise; ended (END_STREAM); reset by it.
    let (mut opened, mut ended, mut reset) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut any_opened: BTreeSet<(usize, u32)> = BTreeSet::new();
    for ex in conv {
        let (dir, m) = match ex {
            Exchange::Message(d, m) => (*d, *m),
            Exchange::Closed(d) => {
                closed[side(*d)] = true;
                continue;
            }
            Exchange::Unframed(_) => continue,
        };
        let Some(f) = frame(m) else { continue };
        let (me, peer) = (side(dir), 1 - side(dir));
        if std::mem::take(&mut first[me]) && f.kind != Kind::Settings {
            must(
                "RFC 9113 §3.4",
                dir,
                format!(
                    "{}'s first frame is {}: its connection preface MUST be a SETTINGS frame",
                    who[me],
                    f.kind.name()
                ),
            );
        }
        if f.kind == Kind::Settings {
            if f.has(flags::ACK) {
                acks[me] += 1;
            } else {
                settings[me] += 1;
            }
        }
        seen_by_last[me] = settings[peer];
        if let Body::GoAway { code, .. } = f.body {
            error_goaway[me] |= code != 0;
        }
        let s = f.stream;
        if s == 0 {
            continue;
        }
        // A side's own closed streams (RFC 9113 §5.1).
        if reset.contains(&(me, s)) && f.kind != Kind::Priority {
            must(
                "RFC 9113 §5.1",
                dir,
                format!(
                    "{} on stream {s} after {} reset it: only PRIORITY may follow on a closed stream",
                    f.kind.name(),
                    who[me]
                ),
            );
        } else if ended.contains(&(me, s)) && matches!(f.kind, Kind::Data | Kind::Headers) {
            must(
                "RFC 9113 §5.1",
                dir,
                format!(
                    "{} on stream {s} after {} ended it with END_STREAM: a half-closed (local) stream carries no more DATA or HEADERS",
                    f.kind.name(),
                    who[me]
                ),
            );
        }
        match (&f.body, f.kind) {
            (_, Kind::Headers) if !opened.contains(&(me, s)) && !any_opened.contains(&(0, s)) && me == 0 => {
                // A new stream from the client (RFC 9113 §5.1.1).
                if s % 2 == 0 {
                    must(
                        "RFC 9113 §5.1.1",
                        dir,
                        format!("the client opened stream {s}: client streams MUST be odd"),
                    );
                } else if s <= last_opened[me] {
                    must(
                        "RFC 9113 §5.1.1",
                        dir,
                        format!(
                            "the client opened stream {s} after stream {}: new streams MUST have rising identifiers",
                            last_opened[me]
                        ),
                    );
                }
                last_opened[me] = last_opened[me].max(s);
                remember(&mut opened, (me, s));
                remember(&mut any_opened, (0, s));
            }
            (Body::PushPromise { promised, .. }, _) if me == 1 => {
                let p = *promised;
                if p % 2 == 1 || p == 0 {
                    must(
                        "RFC 9113 §5.1.1",
                        dir,
                        format!("the server promised stream {p}: server streams MUST be even"),
                    );
                } else if p <= last_opened[me] {
                    must(
                        "RFC 9113 §5.1.1",
                        dir,
                        format!(
                            "the server promised stream {p} after stream {}: new streams MUST have rising identifiers",
                            last_opened[me]
                        ),
                    );
                }
                last_opened[me] = last_opened[me].max(p);
                remember(&mut any_opened, (0, p));
            }
            (_, Kind::Headers) => remember(&mut any_opened, (0, s)),
            (_, Kind::Data) if !any_opened.contains(&(0, s)) => must(
                "RFC 9113 §5.1",
                dir,
                format!("DATA on stream {s}, which no HEADERS or PUSH_PROMISE opened: an idle stream gets HEADERS or PRIORITY only"),
            ),
            _ => {}
        }
        if f.ends_stream() {
            remember(&mut ended, (me, s));
        }
        if f.kind == Kind::RstStream {
            remember(&mut reset, (me, s));
        }
    }
    // Each SETTINGS is acknowledged (RFC 9113 §6.5.3): judged of a side that went on sending after
    // the SETTINGS reached it and then closed, unless it was tearing the connection down on an error.
    for me in 0..2 {
        let dir = if me == 0 {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        if closed[me] && !error_goaway[me] && acks[me] < seen_by_last[me] {
            must(
                "RFC 9113 §6.5.3",
                dir,
                format!(
                    "{} acknowledged {} of the {} SETTINGS frames it received before its last frame: each MUST be answered with a SETTINGS ACK",
                    who[me], acks[me], seen_by_last[me]
                ),
            );
        }
    }
    out
}
