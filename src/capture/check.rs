//! Passive rules over a decoded capture (`wirecheck check`): what each message's codec found
//! (MUST / SHOULD), bytes no codec could frame, a sender that closed mid-message (unless the
//! capture cut that message: `What::Cut`), each
//! protocol's rules over the whole conversation (`Protocol::conversation_rules`), and over a
//! control conversation together with its data connections (`Protocol::transfer_rules`).

use serde::Serialize;

use crate::dialogue::{EventKind, What};
use crate::proto::{Direction, Exchange, Level, Transfer};

use super::{Capture, Conversation};

/// Whose messages are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Side {
    /// What servers sent, and the conversation rules (which are about servers). A harness's
    /// deliberate garbage or a client hanging up mid-message is not held against the server.
    Server,
    /// What clients sent (a student's SMTP or HTTP client).
    Client,
    /// Both.
    Both,
}

impl Side {
    fn judges(self, dir: Option<Direction>) -> bool {
        matches!(
            (self, dir),
            (Side::Both, _) | (Side::Server, Some(Direction::ServerToClient)) | (Side::Client, Some(Direction::ClientToServer))
        )
    }
}

/// One broken rule in one conversation.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// MUST (fails the check) or SHOULD (a warning).
    pub level: Level,
    /// The rule, e.g. "RFC 9112 §6.3".
    pub rule: String,
    /// What was seen.
    pub text: String,
}

/// The verdict on one conversation.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// The conversation's header line (`tcp a -> b (http), 12 packets`).
    pub conversation: String,
    /// Messages framed.
    pub messages: usize,
    /// Broken rules, in the order met.
    pub violations: Vec<Violation>,
}

impl Checked {
    /// Whether any MUST was broken.
    pub fn failed(&self) -> bool {
        self.violations.iter().any(|v| v.level == Level::Must)
    }
}

/// Applies the passive rules to every conversation of `cap`, judging `side`.
pub fn check(cap: &Capture, side: Side) -> Vec<Checked> {
    cap.conversations.iter().map(|c| check_conversation(cap, c, side)).collect()
}

/// What `data` did, as its control conversation's rules see it.
fn transfer(data: &Conversation, channel: usize) -> Transfer {
    let evs = &data.dialogue.events;
    let first = |f: &dyn Fn(&EventKind) -> bool| evs.iter().find(|e| f(&e.kind)).map(|e| e.t_us);
    Transfer {
        channel,
        conversation: data.number,
        opened_us: evs.first().map_or(0, |e| e.t_us),
        first_byte_us: first(&|k| matches!(k, EventKind::Data { .. })),
        closed_us: first(&|k| matches!(k, EventKind::Closed { .. } | EventKind::Reset)),
        refused: first(&|k| matches!(k, EventKind::Refused)).is_some(),
        bytes: evs
            .iter()
            .map(|e| match &e.kind {
                EventKind::Data { bytes, .. } => bytes.len() as u64,
                _ => 0,
            })
            .sum(),
    }
}

fn check_conversation(cap: &Capture, conv: &Conversation, side: Side) -> Checked {
    // A data connection's bytes are the file's, in no protocol's syntax; what its control
    // conversation said about it is judged there.
    if conv.data_of.is_some() {
        return Checked {
            conversation: conv.header(),
            messages: 0,
            violations: Vec::new(),
        };
    }
    let proto = crate::proto::find_or_raw(&conv.protocol);
    let frames = conv.dialogue.frames_with(proto, &conv.context());
    let mut violations = Vec::new();
    let mut messages = 0;
    let closed = |dir: Direction| frames.iter().any(|f| f.dir == Some(dir) && matches!(f.what, What::Closed));
    // A message may hand the connection to another protocol (HTTP/1.1's 101 to h2c): what
    // follows is judged by that one's codec findings and rules. One that hands it to none ends
    // the judging: the rest is no registered protocol's.
    let mut current = proto;
    let mut stopped = false;
    // Once the capture cut some bytes the conversation is no longer whole: the rules over all of
    // it see it up to the cut, and each message framed after it is still judged on its own.
    let mut cut = false;
    let mut segments: Vec<(&dyn crate::proto::Protocol, Vec<u64>, Vec<Exchange<'_>>)> = vec![(proto, Vec::new(), Vec::new())];
    for f in &frames {
        if stopped {
            break;
        }
        let mut switch = None;
        if let What::Message(m) = &f.what {
            switch = crate::proto::hands_over(current, m);
            stopped = switch.is_none() && current.switches_protocol(m);
        }
        cut |= matches!(f.what, What::Cut(_));
        let exchange = match (&f.what, f.dir) {
            _ if switch.is_some() || stopped || cut => None,
            (What::Message(m), Some(d)) => Some(Exchange::Message(d, m)),
            (What::Closed, Some(d)) => Some(Exchange::Closed(d)),
            (What::Undecodable(..) | What::Incomplete(_), Some(d)) => Some(Exchange::Unframed(d)),
            _ => None,
        };
        if let (Some(x), Some(seg)) = (exchange, segments.last_mut()) {
            seg.1.push(f.t_us);
            seg.2.push(x);
        }
        let name = current.name();
        if let Some(next) = switch {
            current = next;
            segments.push((next, Vec::new(), Vec::new()));
        }
        let arrow = f.dir.map_or("", |d| d.arrow());
        if !side.judges(f.dir) {
            messages += usize::from(matches!(f.what, What::Message(_)));
            continue;
        }
        match &f.what {
            What::Message(m) => {
                messages += 1;
                violations.extend(m.findings.iter().map(|x| Violation {
                    level: x.level,
                    rule: x.rule.to_string(),
                    text: format!("{arrow} {}: {}", m.text, x.text),
                }));
            }
            What::Undecodable(e, _) => violations.push(Violation {
                level: Level::Must,
                rule: format!("{name} message syntax"),
                text: format!("{arrow} cannot be framed: {e}"),
            }),
            // A sender that closed with half a message sent broke the framing; a capture that
            // simply ends (no FIN) says nothing either way.
            What::Incomplete(b) if f.dir.is_some_and(closed) => violations.push(Violation {
                level: Level::Must,
                rule: format!("{name} message framing"),
                text: format!(
                    "{arrow} the sender closed the connection in the middle of a message ({} bytes unterminated: \"{}\")",
                    b.len(),
                    crate::proto::escape_bytes(b, 120)
                ),
            }),
            _ => {}
        }
    }
    let rules = if side == Side::Client {
        Vec::new()
    } else {
        let mut rules = Vec::new();
        let late = conv.dialogue.joined_late(0);
        for (i, (p, times, exchanges)) in segments.iter().enumerate() {
            rules.extend(match i == 0 && late {
                true => p.conversation_rules_from_middle(exchanges),
                false => p.conversation_rules(exchanges),
            });
            if i == 0 && p.data_protocol().is_some() {
                let channels = p.data_channels(exchanges);
                let transfers: Vec<Transfer> = cap
                    .conversations
                    .iter()
                    .filter_map(|d| {
                        let of = d.data_of.as_ref().filter(|of| of.control == conv.number)?;
                        let channel = channels.iter().position(|c| c.at == of.announced_at)?;
                        Some(transfer(d, channel))
                    })
                    .collect();
                rules.extend(p.transfer_rules(exchanges, times, &transfers));
            }
        }
        rules
    };
    violations.extend(rules.into_iter().map(|x| Violation {
        level: x.level,
        rule: x.rule.to_string(),
        text: x.text,
    }));
    Checked {
        conversation: conv.header(),
        messages,
        violations,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::dialogue::{ConnInfo, Dialogue, Event};
    use crate::proto::tls::{testing, KeyLog};

    /// A captured SMTP conversation on port 25 that goes over to TLS after STARTTLS.
    fn starttls(server_inside: &[&[u8]]) -> (Capture, Arc<KeyLog>) {
        let (c, s) = (Direction::ClientToServer, Direction::ServerToClient);
        let plain: [(Direction, &[u8]); 5] = [
            (s, b"220 mx.example ESMTP\r\n"),
            (c, b"EHLO client.example\r\n"),
            (s, b"250-mx.example\r\n250 STARTTLS\r\n"),
            (c, b"STARTTLS\r\n"),
            (s, b"220 2.0.0 Ready to start TLS\r\n"),
        ];
        let suite = rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256;
        let tls = testing::session(suite, None, &[b"EHLO client.example\r\n", b"QUIT\r\n"], server_inside);
        let mut events = vec![Event {
            t_us: 0,
            conn: 0,
            kind: EventKind::Open,
        }];
        for (i, (dir, bytes)) in plain.iter().map(|(d, b)| (*d, b.to_vec())).chain(tls.chunks).enumerate() {
            events.push(Event {
                t_us: i as u64 + 1,
                conn: 0,
                kind: EventKind::Data { dir, bytes },
            });
        }
        let mut info = ConnInfo::test_tcp(true);
        info.protocol = "smtp".into();
        let conv = Conversation {
            number: 1,
            transport: crate::proto::Transport::Tcp,
            client: "10.0.0.1:40000".parse().unwrap(),
            server: "10.0.0.2:25".parse().unwrap(),
            scope: Default::default(),
            protocol: "smtp".into(),
            packets: 0,
            truncated: false,
            start_us: 0,
            dialogue: Dialogue {
                connections: vec![info],
                events,
            },
            data_of: None,
            keys: None,
            inside: None,
        };
        let keys = Arc::new(KeyLog::parse(&tls.keylog).unwrap());
        (
            Capture {
                conversations: vec![conv],
                ..Default::default()
            },
            keys,
        )
    }

    fn musts(cap: &Capture) -> Vec<String> {
        check(cap, Side::Both)
            .into_iter()
            .flat_map(|c| c.violations)
            .filter(|v| v.level == Level::Must)
            .map(|v| format!("{}: {}", v.rule, v.text))
            .collect()
    }

    #[test]
    fn what_starttls_carries_is_never_judged_as_smtp_unless_decrypted_then_by_smtp_rules() {
        let (mut cap, keys) = starttls(&[b"250-mx.example\r\n250 AUTH PLAIN\r\n", b"221 bye\r\n"]);
        assert!(musts(&cap).is_empty(), "{:?}", musts(&cap));
        cap.conversations[0].keys = Some(keys);
        assert!(musts(&cap).is_empty(), "{:?}", musts(&cap));
        assert!(check(&cap, Side::Both)[0].messages > 12);

        // Inside TLS the server answers QUIT twice: the SMTP rules see it once decrypted.
        let (mut cap, keys) = starttls(&[b"250-mx.example\r\n250 AUTH PLAIN\r\n", b"221 bye\r\n250 again\r\n"]);
        assert!(musts(&cap).is_empty(), "{:?}", musts(&cap));
        cap.conversations[0].keys = Some(keys);
        let m = musts(&cap);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].contains("250 again"), "{m:?}");
    }
}
