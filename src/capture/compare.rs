//! Does a capture of a case show what the harness's sockets recorded?
//!
//! For each connection of the live Dialogue, the capture's conversation between the same two
//! addresses is rendered as a transcript in the live connection's own terms (its name, its
//! protocol, the harness's side) and compared item by item with the live transcript. What the
//! harness sent must all be on the wire. What it received must be the start of what the wire
//! carried: bytes that arrived after the case's last read (or that were still in flight when it
//! ended) were never read, so the capture's incoming data is cut at what the harness read.

use std::net::SocketAddr;

use crate::dialogue::{ConnInfo, Dialogue, Event, EventKind};
use crate::proto::{Direction, Protocol};

use super::{Capture, Conversation};

/// A captured conversation's events, with what a protocol that carries others (TLS) carried in
/// place of its records when the capture's keys open them: the live record holds what is inside.
fn opened(c: &Conversation) -> Vec<Event> {
    let p = crate::proto::find_or_raw(&c.protocol);
    let mut cx = c.context();
    // TLS from the first byte, or from the ClientHello that follows a STARTTLS go-ahead: the
    // events before it are as the protocol had them, those from it on are opened.
    let (start, carrier) = if p.carries_others() {
        (0, p)
    } else {
        let carriers: Vec<&'static dyn crate::proto::Protocol> =
            crate::proto::all().iter().copied().filter(|q| q.carries_others()).collect();
        let hello = c.dialogue.events.iter().enumerate().find_map(|(i, e)| match &e.kind {
            EventKind::Data {
                dir: Direction::ClientToServer,
                bytes,
            } => carriers
                .iter()
                .find(|q| q.detect(crate::proto::Transport::Tcp, bytes, &[]))
                .map(|q| (i, *q)),
            _ => None,
        });
        match hello {
            Some(found) => {
                cx.carried = Some(p.name());
                found
            }
            None => return c.dialogue.events.clone(),
        }
    };
    let after = &c.dialogue.events[start..];
    let chunks: Vec<(Direction, &[u8])> = after
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Data { dir, bytes } => Some((*dir, bytes.as_slice())),
            _ => None,
        })
        .collect();
    let Some(pieces) = carrier.open(&chunks, &cx) else {
        return c.dialogue.events.clone();
    };
    let mut pieces = pieces.into_iter().peekable();
    let mut out = c.dialogue.events[..start].to_vec();
    let mut chunk = 0;
    // A side's close_notify is its close, as the harness read it; its FIN later is not another.
    let mut ended: Vec<Direction> = Vec::new();
    for e in after {
        if !matches!(e.kind, EventKind::Data { .. }) {
            if !matches!(&e.kind, EventKind::Closed { dir } if ended.contains(dir)) {
                out.push(e.clone());
            }
            continue;
        }
        while let Some((_, dir, bytes)) = pieces.next_if(|(i, ..)| *i == chunk) {
            let kind = if bytes.is_empty() {
                if ended.contains(&dir) {
                    continue;
                }
                ended.push(dir);
                EventKind::Closed { dir }
            } else {
                EventKind::Data { dir, bytes }
            };
            out.push(Event { kind, ..e.clone() });
        }
        chunk += 1;
    }
    out
}

/// One connection whose capture differs from the live record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The connection's name in the case.
    pub conn: String,
    /// What differs.
    pub text: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection {}: {}", self.conn, self.text)
    }
}

/// The live connection `i` as a dialogue of its own.
fn live_part(live: &Dialogue, i: usize) -> Dialogue {
    Dialogue {
        connections: vec![ConnInfo {
            id: 0,
            ..live.connections[i].clone()
        }],
        events: live
            .events
            .iter()
            .filter(|e| e.conn == i)
            .map(|e| Event { conn: 0, ..e.clone() })
            .collect(),
    }
}

/// The transcript items of one direction of a one-connection dialogue. Directions are compared
/// apart: the sockets record an arrival when the harness reads it, the wire when it was sent.
fn messages(d: &Dialogue, proto: &dyn Protocol, dir: Direction) -> Vec<String> {
    d.items(proto)
        .into_iter()
        .filter(|it| it.dir == Some(dir))
        .map(|it| it.text)
        .collect()
}

/// Compares every connection of `live` with its conversation in `cap`.
pub fn compare(live: &Dialogue, cap: &Capture) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for (i, info) in live.connections.iter().enumerate() {
        let proto = crate::proto::find_or_raw(&info.protocol);
        let mine = live_part(live, i);
        let mut report = |text: String| {
            out.push(Mismatch {
                conn: info.name.clone(),
                text,
            })
        };
        // A protocol whose requests are answered by other peers than the one asked (a ring's
        // owner of a key answers the origin; the ring actor routes among its nodes in-process and
        // sends on one node's socket for another) spreads one live connection over conversations
        // the capture keeps apart: not compared, until the comparison follows a routed request.
        if proto.answers_from_elsewhere() {
            continue;
        }
        let refused = mine.events.iter().any(|e| matches!(e.kind, EventKind::Refused));
        let Some(local) = info.local else {
            if refused {
                let peer = info.peer;
                let seen = cap.conversations.iter().any(|c| {
                    Some(c.server) == peer
                        && c.dialogue
                            .events
                            .iter()
                            .any(|e| matches!(e.kind, EventKind::Reset | EventKind::Refused))
                });
                if !seen {
                    report("refused, but the capture shows no reset from the target's port".into());
                }
            }
            continue;
        };
        if info.transport == crate::proto::Transport::Quic {
            // QUIC's packets are protected: without keys, only that they are there compares.
            let seen = cap.conversations.iter().any(|c| {
                c.transport == crate::proto::Transport::Udp
                    && (c.client == local || c.server == local)
                    && info.peer.is_none_or(|p| c.client == p || c.server == p)
            });
            if !seen && mine.events.iter().any(|e| matches!(e.kind, EventKind::Data { .. })) {
                report(format!(
                    "no QUIC packets between {local} and {} in the capture",
                    peer_text(info.peer)
                ));
            }
            continue;
        }
        let convs: Vec<_> = cap
            .conversations
            .iter()
            .filter(|c| c.transport == info.transport && (c.client == local || c.server == local))
            .filter(|c| info.peer.is_none_or(|p| c.client == p || c.server == p))
            .collect();
        if convs.is_empty() {
            if mine.events.iter().any(|e| matches!(e.kind, EventKind::Data { .. })) {
                report(format!("no packets between {local} and {} in the capture", peer_text(info.peer)));
            }
            continue;
        }
        // Each captured event, seen from the live connection: which way, relative to the harness.
        let outgoing = if info.harness_is_client {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        let mut events: Vec<(u64, EventKind)> = Vec::new();
        for c in &convs {
            let sender = |d: Direction| -> SocketAddr {
                match d {
                    Direction::ClientToServer => c.client,
                    Direction::ServerToClient => c.server,
                }
            };
            let orient = |d: Direction| if sender(d) == local { outgoing } else { outgoing.opposite() };
            for e in &opened(c) {
                let t = c.start_us + e.t_us;
                let kind = match &e.kind {
                    EventKind::Data { dir, bytes } => EventKind::Data {
                        dir: orient(*dir),
                        bytes: bytes.clone(),
                    },
                    EventKind::Closed { dir } => EventKind::Closed { dir: orient(*dir) },
                    EventKind::Gap { dir, len } => EventKind::Gap {
                        dir: orient(*dir),
                        len: *len,
                    },
                    EventKind::Cut { dir, len } => EventKind::Cut {
                        dir: orient(*dir),
                        len: *len,
                    },
                    other => other.clone(),
                };
                events.push((t, kind));
            }
        }
        events.sort_by_key(|(t, _)| *t);
        let received: usize = mine
            .events
            .iter()
            .map(|e| match &e.kind {
                EventKind::Data { dir, bytes } if *dir != outgoing => bytes.len(),
                _ => 0,
            })
            .sum();
        let saw = |f: &dyn Fn(&EventKind) -> bool| mine.events.iter().any(|e| f(&e.kind));
        let saw_eof = saw(&|k| matches!(k, EventKind::Closed { dir } if *dir != outgoing));
        let saw_shutdown = saw(&|k| matches!(k, EventKind::Closed { dir } if *dir == outgoing));
        let saw_reset = saw(&|k| matches!(k, EventKind::Reset));
        // Cut the wire's incoming side at what the harness read, and keep the connection events
        // the harness itself observed (a FIN after its last read, or its own close at the end
        // of the case, is on the wire but not in its record).
        let mut left = received;
        let mut kept = Vec::new();
        let mut fin_out = false;
        // The other way round: the harness saw bytes waiting as it closed and recorded a reset,
        // but they were taken in the meantime (TLS reads ahead of what a step asked for) and the
        // kernel sent FIN: on the wire, its FIN stands where its record has the reset.
        let wire_reset = events.iter().any(|(_, k)| matches!(k, EventKind::Reset));
        let fin_for_reset = saw_reset && !saw_shutdown && !wire_reset;
        // Whether the harness's FIN is on the wire at all: a reset before it was the peer's.
        let wire_fin_out = events
            .iter()
            .any(|(_, k)| matches!(k, EventKind::Closed { dir } if *dir == outgoing));
        // Over TLS the peer's close_notify is an end of stream the harness records as a close,
        // and the TCP connection may then end in a reset rather than a FIN (the peer closed with
        // bytes of the harness's unread): that reset is the close on the wire.
        let wire_fin_in = events
            .iter()
            .any(|(_, k)| matches!(k, EventKind::Closed { dir } if *dir != outgoing));
        let mut fin_in = false;
        for (t, kind) in events {
            if saw_eof && !wire_fin_in && !fin_in && matches!(kind, EventKind::Reset) {
                fin_in = true;
                kept.push(Event {
                    t_us: t,
                    conn: 0,
                    kind: EventKind::Closed { dir: outgoing.opposite() },
                });
            }
            fin_out |= matches!(kind, EventKind::Closed { dir } if dir == outgoing);
            // The harness's close races with bytes still arriving: when they land between its
            // look at the socket and the close itself, the kernel resets instead of sending FIN.
            // (Only when no FIN of the harness's is on the wire: a peer that resets just as the
            // harness closes puts its reset before the harness's FIN.)
            if saw_shutdown && !fin_out && !wire_fin_out && matches!(kind, EventKind::Reset) {
                fin_out = true;
                kept.push(Event {
                    t_us: t,
                    conn: 0,
                    kind: EventKind::Closed { dir: outgoing },
                });
            }
            let keep = match kind {
                EventKind::Data { dir, bytes } if dir != outgoing => {
                    if left == 0 {
                        None
                    } else {
                        let n = bytes.len().min(left);
                        left -= n;
                        Some(EventKind::Data {
                            dir,
                            bytes: bytes[..n].to_vec(),
                        })
                    }
                }
                EventKind::Closed { dir } if dir != outgoing => saw_eof.then_some(EventKind::Closed { dir }),
                EventKind::Closed { .. } if fin_for_reset => Some(EventKind::Reset),
                EventKind::Closed { dir } => saw_shutdown.then_some(EventKind::Closed { dir }),
                EventKind::Reset => saw_reset.then_some(EventKind::Reset),
                EventKind::Open | EventKind::Note { .. } | EventKind::Tls { .. } | EventKind::Figure { .. } => None,
                other => Some(other),
            };
            if let Some(kind) = keep {
                kept.push(Event { t_us: t, conn: 0, kind });
            }
        }
        let wire = Dialogue {
            connections: vec![ConnInfo { id: 0, ..info.clone() }],
            events: kept,
        };
        for dir in [outgoing, outgoing.opposite()] {
            let a = messages(&mine, proto, dir);
            let b = messages(&wire, proto, dir);
            if a != b {
                report(first_difference(dir, &a, &b));
            }
        }
    }
    out
}

fn peer_text(p: Option<SocketAddr>) -> String {
    p.map_or_else(|| "anyone".into(), |p| p.to_string())
}

fn first_difference(dir: Direction, live: &[String], wire: &[String]) -> String {
    let show = |m: Option<&String>| match m {
        Some(t) => format!("{:?}", t.chars().take(300).collect::<String>()),
        None => "nothing".into(),
    };
    let i = live.iter().zip(wire).take_while(|(a, b)| a == b).count();
    format!(
        "{} item {} differs: the sockets recorded {} but the capture shows {} ({} items live, {} captured)",
        dir.arrow(),
        i + 1,
        show(live.get(i)),
        show(wire.get(i)),
        live.len(),
        wire.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Conversation;
    use crate::proto::Transport;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    fn data(t: u64, dir: Direction, b: &[u8]) -> Event {
        Event {
            t_us: t,
            conn: 0,
            kind: EventKind::Data { dir, bytes: b.to_vec() },
        }
    }

    fn closed(t: u64, dir: Direction) -> Event {
        Event {
            t_us: t,
            conn: 0,
            kind: EventKind::Closed { dir },
        }
    }

    fn reset(t: u64) -> Event {
        Event {
            t_us: t,
            conn: 0,
            kind: EventKind::Reset,
        }
    }

    fn info(captured: bool) -> ConnInfo {
        ConnInfo {
            local: Some(addr(40000)),
            peer: Some(addr(12000)),
            ..ConnInfo::test_tcp(captured)
        }
    }

    fn capture(events: Vec<Event>) -> Capture {
        Capture {
            conversations: vec![Conversation {
                number: 1,
                transport: Transport::Tcp,
                client: addr(40000),
                server: addr(12000),
                scope: Default::default(),
                protocol: "line".into(),
                packets: events.len(),
                truncated: false,
                start_us: 0,
                data_of: None,
                keys: None,
                inside: None,
                dialogue: Dialogue {
                    connections: vec![info(true)],
                    events,
                },
            }],
            ..Capture::default()
        }
    }

    const C2S: Direction = Direction::ClientToServer;
    const S2C: Direction = Direction::ServerToClient;

    #[test]
    fn same_bytes_in_other_pieces_and_unread_tail_agree() {
        let live = Dialogue {
            connections: vec![info(false)],
            events: vec![data(1, C2S, b"hello\n"), data(5, S2C, b"HELLO\n")],
        };
        // The wire split the request differently and carried a reply the harness never read.
        let cap = capture(vec![
            data(1, C2S, b"hel"),
            data(2, C2S, b"lo\n"),
            data(3, S2C, b"HELLO\nMORE\n"),
            closed(4, S2C),
        ]);
        assert_eq!(compare(&live, &cap), vec![]);
    }

    #[test]
    fn different_bytes_are_reported() {
        let live = Dialogue {
            connections: vec![info(false)],
            events: vec![data(1, C2S, b"hello\n"), data(5, S2C, b"HELLO\n")],
        };
        let cap = capture(vec![data(1, C2S, b"hellO\n"), data(3, S2C, b"HELLO\n")]);
        let m = compare(&live, &cap);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].text.contains("C→S item 1 differs"), "{}", m[0]);
    }

    #[test]
    fn a_close_the_wire_never_carried_is_reported() {
        let live = Dialogue {
            connections: vec![info(false)],
            events: vec![data(1, C2S, b"hello\n"), closed(2, S2C)],
        };
        let m = compare(&live, &capture(vec![data(1, C2S, b"hello\n")]));
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].text.contains("\"close\""), "{}", m[0]);
    }

    #[test]
    fn a_peer_reset_crossing_the_harness_close_is_not_a_second_close() {
        // The harness closed (its record); on the wire the peer's reset came first, then the
        // harness's FIN, then the peer's reset of that FIN.
        let live = Dialogue {
            connections: vec![info(false)],
            events: vec![closed(2, C2S)],
        };
        let cap = capture(vec![reset(1), closed(2, C2S), reset(3)]);
        assert_eq!(compare(&live, &cap), vec![]);
        // A reset the harness's close became (no FIN on the wire) still stands for its close.
        assert_eq!(compare(&live, &capture(vec![reset(1)])), vec![]);
    }

    #[test]
    fn a_reset_after_the_peers_tls_close_is_its_close_on_the_wire() {
        // The harness read the peer's close_notify (a close in its record); the peer's TCP
        // connection then ended in a reset, with no FIN.
        let live = Dialogue {
            connections: vec![info(false)],
            events: vec![data(1, S2C, b"BYE\n"), closed(2, S2C)],
        };
        assert_eq!(compare(&live, &capture(vec![data(1, S2C, b"BYE\n"), reset(3)])), vec![]);
        // With neither a FIN nor a reset on the wire, the recorded close is still reported.
        assert_eq!(compare(&live, &capture(vec![data(1, S2C, b"BYE\n")])).len(), 1);
    }

    #[test]
    fn missing_conversation_is_reported() {
        let live = Dialogue {
            connections: vec![info(false)],
            events: vec![data(1, C2S, b"hello\n")],
        };
        let m = compare(&live, &Capture::default());
        assert!(m[0].text.contains("no packets between"), "{m:?}");
    }
}
