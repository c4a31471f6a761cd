//! Conversation rules more than one protocol keeps, written once.

use super::codec::{Direction, Exchange, Finding, Level, Message};

/// What one message is in a greeting-then-one-reply-per-command dialogue.
pub enum Turn {
    /// A command (or mail content) that asks for one reply.
    Ask,
    /// A reply; `greeting_ok` says whether it would be an acceptable greeting.
    Answer {
        /// Whether this reply may open the session.
        greeting_ok: bool,
    },
    /// A server message that is counted as a reply but never judged (a POP3 continuation).
    Counted,
    /// Anything else: not counted.
    Other,
}

/// How a line protocol words its greeting and reply rules.
pub struct GreetingRules {
    /// The rule a bad greeting breaks, e.g. "RFC 5321 §3.1, §4.3.2".
    pub greeting_rule: &'static str,
    /// The finding's text for a bad greeting.
    pub bad_greeting: fn(&Message) -> String,
    /// The rule an extra reply breaks, e.g. "RFC 5321 §4.2".
    pub reply_rule: &'static str,
    /// The finding's text for reply number `n` that answers no command.
    pub extra_reply: fn(usize, &Message) -> String,
    /// Whether `reply` is one only `command` gets (SMTP: a 354 answers DATA): where a
    /// conversation captured from its middle pairs replies with commands again.
    pub answers: fn(command: &Message, reply: &Message) -> bool,
}

/// The server greets first, then answers each command exactly once (SMTP, POP3): a bad greeting
/// and the first reply that answers nothing are MUST findings.
pub fn greeting_then_one_reply_each(
    conv: &[Exchange<'_>],
    turn: impl Fn(Direction, &Message) -> Turn,
    rules: &GreetingRules,
) -> Vec<Finding> {
    let mut out = Vec::new();
    // The greeting is the reply to connecting.
    let (mut asked, mut replies) = (1usize, 0usize);
    for ex in conv {
        let Exchange::Message(dir, m) = ex else { continue };
        match turn(*dir, m) {
            Turn::Ask => asked += 1,
            Turn::Counted => replies += 1,
            Turn::Answer { greeting_ok } => {
                replies += 1;
                if replies == 1 && !greeting_ok {
                    out.push(Finding {
                        level: Level::Must,
                        rule: rules.greeting_rule,
                        text: (rules.bad_greeting)(m),
                    });
                } else if replies > asked {
                    out.push(Finding {
                        level: Level::Must,
                        rule: rules.reply_rule,
                        text: (rules.extra_reply)(replies, m),
                    });
                    break;
                }
            }
            Turn::Other => {}
        }
    }
    out
}

/// [`greeting_then_one_reply_each`] over a conversation whose start the capture missed: the
/// greeting and the replies to commands sent before the capture are not there, so nothing is
/// judged until a reply only one waiting command can get (`answers`) pairs the two sides again;
/// the commands before that one were answered, or were never seen. From there on each command
/// gets exactly one reply.
pub fn one_reply_each_from_middle(
    conv: &[Exchange<'_>],
    turn: impl Fn(Direction, &Message) -> Turn,
    rules: &GreetingRules,
) -> Vec<Finding> {
    let mut waiting: std::collections::VecDeque<&Message> = std::collections::VecDeque::new();
    let (mut synced, mut replies) = (false, 0usize);
    for ex in conv {
        let Exchange::Message(dir, m) = ex else { continue };
        match turn(*dir, m) {
            Turn::Ask => waiting.push_back(m),
            Turn::Answer { .. } | Turn::Counted => {
                replies += 1;
                if synced {
                    if waiting.pop_front().is_none() {
                        return vec![Finding {
                            level: Level::Must,
                            rule: rules.reply_rule,
                            text: (rules.extra_reply)(replies, m),
                        }];
                    }
                } else if let Some(i) = waiting.iter().position(|c| (rules.answers)(c, m)) {
                    waiting.drain(..=i);
                    synced = true;
                }
            }
            Turn::Other => {}
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: GreetingRules = GreetingRules {
        greeting_rule: "G",
        bad_greeting: |m| format!("bad greeting {}", m.text),
        reply_rule: "R",
        extra_reply: |n, m| format!("reply {n} ({}) answers nothing", m.text),
        answers: |c, r| c.text == "data" && r.text == "go",
    };

    fn turn(dir: Direction, m: &Message) -> Turn {
        match (dir, m.text.as_str()) {
            (Direction::ClientToServer, _) => Turn::Ask,
            (_, "cont") => Turn::Counted,
            (_, t) => Turn::Answer { greeting_ok: t == "hi" },
        }
    }

    fn run(msgs: &[(Direction, &str)]) -> Vec<String> {
        let ms: Vec<Message> = msgs.iter().map(|(_, t)| Message::plain(t.to_string(), t.to_string())).collect();
        let conv: Vec<Exchange> = msgs.iter().zip(&ms).map(|((d, _), m)| Exchange::Message(*d, m)).collect();
        greeting_then_one_reply_each(&conv, turn, &RULES)
            .into_iter()
            .map(|f| format!("{}: {}", f.rule, f.text))
            .collect()
    }

    #[test]
    fn a_greeting_and_one_reply_per_command_pass() {
        use Direction::*;
        assert!(run(&[
            (ServerToClient, "hi"),
            (ClientToServer, "a"),
            (ServerToClient, "ok"),
            (ServerToClient, "cont")
        ])
        .is_empty());
        assert!(run(&[(ServerToClient, "hi"), (ClientToServer, "a"), (ServerToClient, "ok")]).is_empty());
    }

    fn run_from_middle(msgs: &[(Direction, &str)]) -> Vec<String> {
        let ms: Vec<Message> = msgs.iter().map(|(_, t)| Message::plain(t.to_string(), t.to_string())).collect();
        let conv: Vec<Exchange> = msgs.iter().zip(&ms).map(|((d, _), m)| Exchange::Message(*d, m)).collect();
        one_reply_each_from_middle(&conv, turn, &RULES)
            .into_iter()
            .map(|f| format!("{}: {}", f.rule, f.text))
            .collect()
    }

    #[test]
    fn from_the_middle_replies_pair_again_at_a_reply_only_one_command_gets() {
        use Direction::*;
        // No greeting, and replies to commands the capture never saw: nothing to judge.
        assert!(run_from_middle(&[
            (ServerToClient, "ok"),
            (ClientToServer, "a"),
            (ServerToClient, "ok"),
            (ServerToClient, "ok"),
            (ClientToServer, "data"),
            (ServerToClient, "ok"),
            (ServerToClient, "go"),
            (ClientToServer, "b"),
            (ServerToClient, "ok"),
        ])
        .is_empty());
        // Once paired, an extra reply is one.
        assert_eq!(
            run_from_middle(&[
                (ClientToServer, "data"),
                (ServerToClient, "go"),
                (ClientToServer, "b"),
                (ServerToClient, "ok"),
                (ServerToClient, "again")
            ]),
            ["R: reply 3 (again) answers nothing"]
        );
    }

    #[test]
    fn a_bad_greeting_and_an_extra_reply_are_findings() {
        use Direction::*;
        assert_eq!(run(&[(ServerToClient, "no")]), ["G: bad greeting no"]);
        assert_eq!(
            run(&[
                (ServerToClient, "hi"),
                (ClientToServer, "a"),
                (ServerToClient, "ok"),
                (ServerToClient, "again"),
                (ServerToClient, "more")
            ]),
            ["R: reply 3 (again) answers nothing"]
        );
    }
}
