//! Passive rules over a decoded capture (`wirecheck check`): what each message's codec found
//! (MUST / SHOULD), bytes no codec could frame, a sender that closed mid-message, and each
//! protocol's rules over the whole conversation (`Protocol::conversation_rules`).

use serde::Serialize;

use crate::dialogue::What;
use crate::proto::{Direction, Exchange, Level};

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
    cap.conversations.iter().map(|c| check_conversation(c, side)).collect()
}

fn check_conversation(conv: &Conversation, side: Side) -> Checked {
    let proto = crate::proto::find_or_raw(&conv.protocol);
    let frames = conv.dialogue.frames(proto);
    let mut violations = Vec::new();
    let mut messages = 0;
    let closed = |dir: Direction| frames.iter().any(|f| f.dir == Some(dir) && matches!(f.what, What::Closed));
    let mut switched = false;
    for f in &frames {
        if switched {
            break;
        }
        if let What::Message(m) = &f.what {
            switched = proto.switches_protocol(m);
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
                rule: format!("{} message syntax", conv.protocol),
                text: format!("{arrow} cannot be framed: {e}"),
            }),
            // A sender that closed with half a message sent broke the framing; a capture that
            // simply ends (no FIN) says nothing either way.
            What::Incomplete(b) if f.dir.is_some_and(closed) => violations.push(Violation {
                level: Level::Must,
                rule: format!("{} message framing", conv.protocol),
                text: format!(
                    "{arrow} the sender closed the connection in the middle of a message ({} bytes unterminated: \"{}\")",
                    b.len(),
                    crate::proto::escape_bytes(b, 120)
                ),
            }),
            _ => {}
        }
    }
    let exchanges: Vec<Exchange<'_>> = frames
        .iter()
        .take_while(|f| !matches!(&f.what, What::Message(m) if proto.switches_protocol(m)))
        .filter_map(|f| match (&f.what, f.dir) {
            (What::Message(m), Some(d)) => Some(Exchange::Message(d, m)),
            (What::Closed, Some(d)) => Some(Exchange::Closed(d)),
            (What::Undecodable(..) | What::Incomplete(_), Some(d)) => Some(Exchange::Unframed(d)),
            _ => None,
        })
        .collect();
    let rules = if side == Side::Client {
        Vec::new()
    } else {
        proto.conversation_rules(&exchanges)
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
