//! HTTP/2's rules over a whole connection (RFC 9113), for `wirecheck check`: each side's first
//! frame is SETTINGS, SETTINGS are acknowledged, streams are opened with rising identifiers of the
//! opener's parity, and a stream a side has closed gets no more of its frames.
//!
//! Only what a side does with its own streams is judged: frames of the two sides cross on the
//! wire, so what one side sends after the other closed a stream (WINDOW_UPDATE, RST_STREAM, §5.1)
//! is never held against it. WINDOW_UPDATE, PING, PRIORITY and SETTINGS may come at any time. A server pushes nothing once
//! the client disabled push.

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
    let mut push_enabled = true;
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
        if let (Body::Settings(params), 0) = (&f.body, me) {
            if let Some(&(_, v)) = params.iter().rev().find(|(id, _)| *id == 2) {
                push_enabled = v != 0;
            }
        }
        // The client's SETTINGS follow its preface, so a server has them before any request it
        // could push for: no crossing on the wire excuses a push after ENABLE_PUSH=0.
        if f.kind == Kind::PushPromise && me == 1 && !push_enabled {
            must(
                "RFC 9113 §8.4",
                dir,
                format!("PUSH_PROMISE on stream {} after the client set ENABLE_PUSH=0", f.stream),
            );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http2::codec::{Http2Codec, PREFACE};
    use crate::proto::{Codec, Frame};

    const C: Direction = Direction::ClientToServer;
    const S: Direction = Direction::ServerToClient;

    fn fr(kind: u8, flag_bits: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut b = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flag_bits];
        b.extend_from_slice(&stream.to_be_bytes());
        b.extend_from_slice(payload);
        b
    }

    /// A step of a scripted connection: a frame one side sent, or its close.
    enum Step {
        Send(Direction, Vec<u8>),
        Close(Direction),
    }
    use Step::*;

    fn settings(d: Direction) -> Step {
        Send(d, fr(4, 0, 0, b""))
    }
    fn ack(d: Direction) -> Step {
        Send(d, fr(4, 1, 0, b""))
    }
    /// HEADERS with one indexed field (`:method: GET` or `:status: 200`), so no table is involved.
    fn headers(d: Direction, stream: u32, end: bool) -> Step {
        let field = if d == C { 0x82 } else { 0x88 };
        Send(d, fr(1, 4 | u8::from(end), stream, &[field]))
    }
    fn data(d: Direction, stream: u32, end: bool) -> Step {
        Send(d, fr(0, u8::from(end), stream, b"x"))
    }

    /// The rules of what the conversation's rules find.
    fn judge(steps: Vec<Step>) -> Vec<String> {
        let mut codecs = [Http2Codec::new(true), Http2Codec::new(false)];
        let mut msgs = Vec::new();
        let Frame::Message(m, _) = codecs[0].decode(PREFACE, false).unwrap() else {
            panic!()
        };
        msgs.push((C, Some(m)));
        for step in steps {
            match step {
                Send(d, bytes) => {
                    let i = usize::from(d == S);
                    let Frame::Message(m, _) = codecs[i].decode(&bytes, false).unwrap() else {
                        panic!()
                    };
                    msgs.push((d, Some(m)));
                }
                Close(d) => msgs.push((d, None)),
            }
        }
        let conv: Vec<Exchange<'_>> = msgs
            .iter()
            .map(|(d, m)| match m {
                Some(m) => Exchange::Message(*d, m),
                None => Exchange::Closed(*d),
            })
            .collect();
        conversation(&conv).into_iter().map(|f| format!("{}: {}", f.rule, f.text)).collect()
    }

    fn opening() -> Vec<Step> {
        vec![settings(C), settings(S), ack(S), ack(C)]
    }

    #[test]
    fn parses_a_clean_connection_without_findings() {
        let mut s = opening();
        s.extend([
            headers(C, 1, true),
            headers(C, 3, true),
            Send(S, fr(8, 0, 0, &100u32.to_be_bytes())),
            headers(S, 1, false),
            data(S, 1, true),
            // Frames that cross a close on the wire are the other side's to tolerate.
            Send(C, fr(8, 0, 1, &100u32.to_be_bytes())),
            Send(C, fr(3, 0, 1, &8u32.to_be_bytes())),
            Send(C, fr(2, 0, 1, &[0, 0, 0, 0, 15])),
            headers(S, 3, false),
            Send(S, fr(3, 0, 3, &8u32.to_be_bytes())),
            Send(S, fr(2, 0, 3, &[0, 0, 0, 0, 15])),
            Send(S, fr(6, 0, 0, b"12345678")),
            Send(C, fr(6, 1, 0, b"12345678")),
            settings(S),
            ack(C),
            Close(C),
            Close(S),
        ]);
        assert_eq!(judge(s), Vec::<String>::new());
    }

    #[test]
    fn rejects_a_first_frame_that_is_not_settings() {
        let got = judge(vec![settings(C), Send(S, fr(8, 0, 0, &1u32.to_be_bytes())), settings(S)]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("RFC 9113 §3.4: S→C the server's first frame is WINDOW_UPDATE"),
            "{got:?}"
        );
        let got = judge(vec![headers(C, 1, true)]);
        assert!(
            got[0].starts_with("RFC 9113 §3.4: C→S the client's first frame is HEADERS"),
            "{got:?}"
        );
    }

    #[test]
    fn rejects_even_and_falling_client_streams_and_odd_promises() {
        let mut s = opening();
        s.extend([headers(C, 2, true), headers(C, 5, true), headers(C, 3, true)]);
        s.push(Send(S, fr(5, 4, 5, &[&3u32.to_be_bytes()[..], &[0x82]].concat())));
        let got = judge(s);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].contains("client streams MUST be odd"), "{got:?}");
        assert!(got[1].contains("opened stream 3 after stream 5"), "{got:?}");
        assert!(got[2].contains("server streams MUST be even"), "{got:?}");
    }

    #[test]
    fn rejects_frames_a_side_sends_on_streams_it_closed() {
        let mut s = opening();
        s.extend([
            headers(C, 1, true),
            data(C, 1, false),
            headers(S, 1, false),
            Send(S, fr(3, 0, 1, &0u32.to_be_bytes())),
            data(S, 1, true),
            data(S, 7, false),
        ]);
        let got = judge(s);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got[0].starts_with("RFC 9113 §5.1: C→S DATA on stream 1 after the client ended it"),
            "{got:?}"
        );
        assert!(
            got[1].starts_with("RFC 9113 §5.1: S→C DATA on stream 1 after the server reset it"),
            "{got:?}"
        );
        assert!(
            got[2].contains("DATA on stream 7, which no HEADERS or PUSH_PROMISE opened"),
            "{got:?}"
        );
    }

    #[test]
    fn rejects_a_push_after_the_client_disabled_it() {
        let promise = |p: u32| Send(S, fr(5, 4, 1, &[&p.to_be_bytes()[..], &[0x82]].concat()));
        let no_push = Send(C, fr(4, 0, 0, &[0, 2, 0, 0, 0, 0]));
        let got = judge(vec![no_push, settings(S), ack(S), headers(C, 1, true), promise(2)]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("RFC 9113 §8.4: S→C PUSH_PROMISE on stream 1 after the client set ENABLE_PUSH=0"),
            "{got:?}"
        );
        let mut s = opening();
        s.extend([headers(C, 1, true), promise(2)]);
        assert_eq!(judge(s), Vec::<String>::new());
    }

    #[test]
    fn rejects_settings_left_unacknowledged_by_a_side_that_went_on() {
        let got = judge(vec![settings(C), settings(S), headers(C, 1, true), headers(S, 1, true), Close(S)]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("RFC 9113 §6.5.3: S→C the server acknowledged 0 of the 1"),
            "{got:?}"
        );
        // Not once the server tore the connection down on an error, nor while it stays open.
        let goaway = Send(S, fr(7, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 1]));
        assert!(judge(vec![settings(C), settings(S), goaway, Close(S)]).is_empty());
        assert!(judge(vec![settings(C), settings(S), headers(C, 1, true), headers(S, 1, true)]).is_empty());
    }
}
