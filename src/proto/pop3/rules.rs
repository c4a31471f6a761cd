//! POP3's conversation rules: the greeting, then one response per command (RFC 1939 §3, §4).

use super::codec::{multi_line, Pop3Message};
use crate::proto::rules::{greeting_then_one_reply_each, one_reply_each_from_middle, GreetingRules, Turn};
use crate::proto::{Direction, Exchange, Finding, Message};

const RULES: GreetingRules = GreetingRules {
    greeting_rule: "RFC 1939 §4",
    bad_greeting: |_| "the greeting is -ERR, not +OK".into(),
    reply_rule: "RFC 1939 §3",
    extra_reply: |n, m| {
        format!(
            "response {n} ({}) answers no command (an unterminated or unstuffed multi-line body reads this way)",
            m.text
        )
    },
    answers,
};

/// Replies only some commands get: a multi-line body (RETR, TOP, CAPA, LIST and UIDL without an
/// argument) and a SASL challenge (AUTH).
fn answers(command: &Message, reply: &Message) -> bool {
    match Pop3Message::of(reply) {
        Some(Pop3Message::Response { body: Some(_), .. }) => multi_line(&command.text),
        Some(Pop3Message::Continuation { .. }) => {
            matches!(Pop3Message::of(command), Some(Pop3Message::Command { keyword, .. }) if keyword == "AUTH")
        }
        _ => false,
    }
}

fn turn(dir: Direction, m: &Message) -> Turn {
    match (dir, Pop3Message::of(m)) {
        (Direction::ClientToServer, Some(_)) => Turn::Ask,
        (Direction::ServerToClient, Some(Pop3Message::Response { ok, .. })) => Turn::Answer { greeting_ok: *ok },
        // A SASL challenge answers the AUTH line; the client's reply to it is counted as a command.
        (Direction::ServerToClient, Some(Pop3Message::Continuation { .. })) => Turn::Counted,
        _ => Turn::Other,
    }
}

/// Findings over one POP3 conversation.
pub fn conversation(conv: &[Exchange<'_>]) -> Vec<Finding> {
    greeting_then_one_reply_each(conv, turn, &RULES)
}

/// Findings over a POP3 conversation captured from its middle.
pub fn from_middle(conv: &[Exchange<'_>]) -> Vec<Finding> {
    one_reply_each_from_middle(conv, turn, &RULES)
}
