//! SMTP's conversation rules: the greeting, then one reply per command and per mail content
//! (RFC 5321 §4.2, §4.3.2); a BDAT command and its chunk get one reply together (RFC 3030 §2).

use super::codec::SmtpMessage;
use crate::proto::rules::{greeting_then_one_reply_each, one_reply_each_from_middle, GreetingRules, Turn};
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
    answers,
};

/// Replies only one command gets: 354 (DATA), 221 (QUIT), a multi-line 250 (EHLO, or EXPN's
/// list), 220 after the greeting (STARTTLS), 334 (AUTH).
fn answers(command: &Message, reply: &Message) -> bool {
    let (Some(SmtpMessage::Command { verb, .. }), Some(SmtpMessage::Reply { code, lines, .. })) =
        (SmtpMessage::of(command), SmtpMessage::of(reply))
    else {
        return false;
    };
    match (verb.as_str(), code) {
        ("DATA", 354) | ("QUIT", 221) | ("STARTTLS", 220) | ("AUTH", 334) => true,
        ("EHLO" | "EXPN", 250) => lines.len() > 1,
        _ => false,
    }
}

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

/// Findings over an SMTP conversation captured from its middle.
pub fn from_middle(conv: &[Exchange<'_>]) -> Vec<Finding> {
    one_reply_each_from_middle(conv, turn, &RULES)
}
