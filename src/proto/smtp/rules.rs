//! SMTP's conversation rules: the greeting, then one reply per command and per mail content
//! (RFC 5321 §4.2, §4.3.2); a BDAT command and its chunk get one reply together (RFC 3030 §2).

use super::codec::SmtpMessage;
use crate::proto::rules::{greeting_then_one_reply_each, GreetingRules, Turn};
use crate::proto::{Direction, Exchange, Finding, Message};

const RULES: GreetingRules = GreetingRules {
    greeting_rule: "RFC 5321 §3.1, §4.3.2",
    bad_greeting: |m| {
        let code = match SmtpMessage::of(m) {
            Some(SmtpMessage::Reply { code, .. }) => code.to_string(),
            _ => m.text.clone(),
        };
        format!("the greeting is {code}, not 220 (or 554)")
    },
    reply_rule: "RFC 5321 §4.2",
    extra_reply: |n, m| format!("reply {n} ({}) answers no command: every command gets exactly one reply", m.text),
};

fn turn(dir: Direction, m: &Message) -> Turn {
    match (dir, SmtpMessage::of(m)) {
        (Direction::ClientToServer, Some(SmtpMessage::Command { .. } | SmtpMessage::Data { .. })) => Turn::Ask,
        (Direction::ServerToClient, Some(SmtpMessage::Reply { code, .. })) => Turn::Answer {
            greeting_ok: [220, 554].contains(code),
        },
        _ => Turn::Other,
    }
}

/// Findings over one SMTP conversation.
pub fn conversation(conv: &[Exchange<'_>]) -> Vec<Finding> {
    greeting_then_one_reply_each(conv, turn, &RULES)
}
