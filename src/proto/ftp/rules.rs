//! FTP's conversation rules: the greeting (RFC 959 §5.4: 120 then 220, or 220, or 421), then one
//! final reply per command, a 1xx preliminary reply allowed before it only where §5.4 lists one.

use super::codec::FtpMessage;
use crate::proto::rules::{greeting_then_one_reply_each, GreetingRules, Turn};
use crate::proto::{Direction, Exchange, Finding, Level, Message};

const RULES: GreetingRules = GreetingRules {
    greeting_rule: "RFC 959 §5.4",
    bad_greeting: |m| {
        let code = match FtpMessage::of(m) {
            Some(FtpMessage::Reply { code, .. }) => code.to_string(),
            _ => m.text.clone(),
        };
        format!("the greeting is {code}, not 220 (or 120 then 220, or 421)")
    },
    reply_rule: "RFC 959 §4.2",
    extra_reply: |n, m| {
        format!(
            "reply {n} ({}) answers no command: every command gets one final reply, after at most a 1xx preliminary one",
            m.text.lines().next().unwrap_or_default()
        )
    },
};

/// Commands §5.4 lists with a preliminary reply (125 or 150 before the transfer, 120 for REIN);
/// MLSD (RFC 3659 §7) transfers like LIST.
const PRELIMINARY: &[&str] = &["RETR", "STOR", "STOU", "APPE", "LIST", "NLST", "MLSD", "REIN"];

/// A preliminary reply is not the answer: the final reply to the same command still comes.
fn turn(dir: Direction, m: &Message) -> Turn {
    match (dir, FtpMessage::of(m)) {
        (Direction::ClientToServer, Some(FtpMessage::Command { .. })) => Turn::Ask,
        (Direction::ServerToClient, Some(FtpMessage::Reply { code, .. })) if *code >= 200 => Turn::Answer {
            greeting_ok: [220, 421].contains(code),
        },
        _ => Turn::Other,
    }
}

/// 1xx replies where §5.4 allows none: as a greeting anything but 120, or to a command that
/// transfers nothing. Reported once, like the counting rule.
fn preliminaries(conv: &[Exchange<'_>]) -> Option<Finding> {
    // Commands not yet given their final reply, oldest first; the greeting answers the connection.
    let mut pending: std::collections::VecDeque<Option<&str>> = [None].into();
    for ex in conv {
        let Exchange::Message(dir, m) = ex else { continue };
        match (dir, FtpMessage::of(m)) {
            (Direction::ClientToServer, Some(FtpMessage::Command { verb, .. })) => pending.push_back(Some(verb)),
            (Direction::ServerToClient, Some(FtpMessage::Reply { code, .. })) if *code >= 200 => {
                pending.pop_front();
            }
            (Direction::ServerToClient, Some(FtpMessage::Reply { code, .. })) => {
                let bad = match pending.front() {
                    Some(None) => (*code != 120).then(|| "the greeting".to_string()),
                    Some(Some(verb)) => (!PRELIMINARY.contains(verb)).then(|| format!("the {verb} command")),
                    None => Some("no command".to_string()),
                };
                if let Some(what) = bad {
                    return Some(Finding {
                        level: Level::Should,
                        rule: "RFC 959 §5.4",
                        text: format!(
                            "a preliminary {code} reply to {what}: only the greeting (120) and transfers (RETR, STOR, LIST ...) have one"
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    None
}

/// Findings over one FTP control conversation.
pub fn conversation(conv: &[Exchange<'_>]) -> Vec<Finding> {
    let mut out = greeting_then_one_reply_each(conv, turn, &RULES);
    out.extend(preliminaries(conv));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ftp::{CommandCodec, ReplyCodec};
    use crate::proto::{Codec, Frame};

    /// The findings over a conversation written as `S: line` / `C: line` rows.
    fn check(rows: &[&str]) -> Vec<String> {
        let msgs: Vec<(Direction, Message)> = rows
            .iter()
            .map(|r| {
                let (dir, wire) = match r.split_at(3) {
                    ("S: ", w) => (Direction::ServerToClient, w),
                    (_, w) => (Direction::ClientToServer, w),
                };
                let wire = format!("{}\r\n", wire.replace('|', "\r\n"));
                let m = match dir {
                    Direction::ServerToClient => ReplyCodec.decode(wire.as_bytes(), true),
                    Direction::ClientToServer => CommandCodec.decode(wire.as_bytes(), true),
                };
                let Ok(Frame::Message(m, _)) = m else { panic!("{r}") };
                (dir, m)
            })
            .collect();
        let conv: Vec<Exchange> = msgs.iter().map(|(d, m)| Exchange::Message(*d, m)).collect();
        conversation(&conv).into_iter().map(|f| format!("{}: {}", f.rule, f.text)).collect()
    }

    #[test]
    fn a_session_with_preliminary_replies_to_transfers_passes() {
        let session = [
            "S: 120 soon",
            "S: 220 ready",
            "C: USER anonymous",
            "S: 331 password",
            "C: PASS x",
            "S: 230-hello|there|230 in",
            "C: PASV",
            "S: 227 Entering Passive Mode (127,0,0,1,4,1)",
            "C: RETR a",
            "S: 150 opening",
            "C: ABOR",
            "S: 426 aborted",
            "S: 226 abort done",
            "C: QUIT",
            "S: 221 bye",
        ];
        assert_eq!(check(&session), Vec::<String>::new());
        assert!(check(&["S: 421 busy"]).is_empty());
    }

    #[test]
    fn a_bad_greeting_an_extra_reply_and_a_stray_preliminary_are_findings() {
        assert_eq!(
            check(&["S: 200 hi"]),
            ["RFC 959 §5.4: the greeting is 200, not 220 (or 120 then 220, or 421)"]
        );
        let f = check(&["S: 220 hi", "C: NOOP", "S: 200 ok", "S: 200 again"]);
        assert_eq!(f.len(), 1);
        assert!(f[0].starts_with("RFC 959 §4.2: reply 3 (200 again) answers no command"), "{f:?}");
        let f = check(&["S: 220 hi", "C: CWD /", "S: 150 what", "S: 250 ok"]);
        assert_eq!(f, ["RFC 959 §5.4: a preliminary 150 reply to the CWD command: only the greeting (120) and transfers (RETR, STOR, LIST ...) have one"]);
        let f = check(&["S: 150 hi", "S: 220 ok"]);
        assert!(f[0].contains("preliminary 150 reply to the greeting"), "{f:?}");
    }
}

/// Whether a reply ends the control connection: 221 answers QUIT and the server closes (RFC 959
/// §4.1.1 QUIT, §5.4), 421 says the service is closing (RFC 959 §4.2).
pub fn announces_close(m: &crate::proto::Message) -> Option<&'static str> {
    // A multi-line reply (`221-` ... `221 `) announces it as well.
    if !matches!(m.text.as_bytes().get(3), Some(b' ' | b'-')) {
        return None;
    }
    match m.text.get(..3)? {
        "221" => Some("a 221 reply to QUIT: the server closes the control connection, RFC 959 §4.1.1"),
        "421" => Some("a 421 reply: the service is closing the control connection, RFC 959 §4.2"),
        _ => None,
    }
}

#[cfg(test)]
mod close_tests {
    use super::*;

    #[test]
    fn a_221_or_421_announces_the_close_and_other_replies_do_not() {
        let m = |t: &str| crate::proto::Message::plain(t.to_string(), t.to_string());
        assert!(announces_close(&m("221 Goodbye.")).is_some());
        assert!(announces_close(&m("421 Timeout.")).is_some());
        assert!(announces_close(&m("221-Thanks\n221 Goodbye.")).is_some());
        assert!(announces_close(&m("226 Transfer complete.")).is_none());
        assert!(announces_close(&m("2210 odd")).is_none());
    }
}
