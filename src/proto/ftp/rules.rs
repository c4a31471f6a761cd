//! FTP's conversation rules: the greeting (RFC 959 §5.4: 120 then 220, or 220, or 421), then one
//! final reply per command, a 1xx preliminary reply allowed before it only where §5.4 lists one.
//! Then the data connections: which announcement (227, 229, PORT, EPRT) each came through and
//! which command used it, and the order rules between a transfer's replies and its data
//! connection (150 before the data, 226 after the close, 425 only without one, 426 on abort).

use std::net::IpAddr;

use super::codec::{parse_eprt_arg, parse_epsv, parse_pasv, parse_port_arg, FtpMessage};
use crate::proto::rules::{greeting_then_one_reply_each, GreetingRules, Turn};
use crate::proto::{DataChannel, Direction, Exchange, Finding, Level, Message, Transfer};

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
    // Only a conversation judged from its middle pairs by reply kinds, and FTP's is not.
    answers: |_, _| false,
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

/// Commands that move a file or a listing over a data connection (RFC 959 §4.1.3; MLSD: RFC
/// 3659 §7).
const TRANSFERS: &[&str] = &["RETR", "STOR", "STOU", "APPE", "LIST", "NLST", "MLSD"];

/// A command's replies: its 1xx preliminary one and its final one, as (code, index).
#[derive(Debug, Clone, Copy, Default)]
struct Replies {
    preliminary: Option<(u16, usize)>,
    last: Option<(u16, usize)>,
}

impl Replies {
    /// Whether the server took the command on (a 1xx, or a 2xx without one).
    fn accepted(&self) -> bool {
        self.preliminary.is_some() || self.last.is_some_and(|(c, _)| (200..300).contains(&c))
    }
}

/// Each command's replies, by the command's index; replies answer commands in the order sent.
fn replies(conv: &[Exchange<'_>]) -> Vec<Replies> {
    let mut out = vec![Replies::default(); conv.len()];
    // The greeting answers the connection, not a command.
    let mut pending: std::collections::VecDeque<Option<usize>> = [None].into();
    for (i, ex) in conv.iter().enumerate() {
        let Exchange::Message(dir, m) = ex else { continue };
        match (dir, FtpMessage::of(m)) {
            (Direction::ClientToServer, Some(FtpMessage::Command { .. })) => pending.push_back(Some(i)),
            (Direction::ServerToClient, Some(FtpMessage::Reply { code, .. })) => {
                let Some(&front) = pending.front() else { continue };
                if *code >= 200 {
                    pending.pop_front();
                }
                if let Some(c) = front {
                    let r = &mut out[c];
                    if *code >= 200 {
                        r.last = Some((*code, i));
                    } else if r.preliminary.is_none() {
                        r.preliminary = Some((*code, i));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The data connections a control conversation announced: 227 and 229 replies (the server
/// listens), PORT and EPRT commands (the client listens). Each is used by the first transfer
/// command after it, before the next announcement, that the server took on (else the first
/// one): a RETR of a missing file leaves the address for the next one.
pub fn data_channels(conv: &[Exchange<'_>]) -> Vec<DataChannel> {
    let replies = replies(conv);
    let mut out: Vec<DataChannel> = Vec::new();
    let mut commands: Vec<usize> = Vec::new();
    let settle = |ch: &mut DataChannel, commands: &[usize]| {
        ch.command = commands
            .iter()
            .copied()
            .find(|&i| replies[i].accepted())
            .or(commands.first().copied());
    };
    for (i, ex) in conv.iter().enumerate() {
        let Exchange::Message(dir, m) = ex else { continue };
        let announced = match (dir, FtpMessage::of(m)) {
            (Direction::ClientToServer, Some(FtpMessage::Command { verb, arg })) => match (verb.as_str(), arg) {
                ("PORT", Some(a)) => parse_port_arg(a).map(|a| (Some(IpAddr::V4(*a.ip())), a.port())),
                ("EPRT", Some(a)) => parse_eprt_arg(a).map(|a| (Some(a.ip()), a.port())),
                (v, _) => {
                    if TRANSFERS.contains(&v) {
                        commands.push(i);
                    }
                    None
                }
            },
            (Direction::ServerToClient, Some(FtpMessage::Reply { code: 227, .. })) => {
                parse_pasv(&m.text).map(|a| (Some(IpAddr::V4(*a.ip())), a.port()))
            }
            // EPSV names no address: the server's own (RFC 2428 §3).
            (Direction::ServerToClient, Some(FtpMessage::Reply { code: 229, .. })) => parse_epsv(&m.text).map(|p| (None, p)),
            _ => None,
        };
        if let Some((host, port)) = announced {
            if let Some(last) = out.last_mut() {
                settle(last, &commands);
            }
            commands.clear();
            out.push(DataChannel {
                at: i,
                announced_by: *dir,
                host,
                port,
                command: None,
            });
        }
    }
    if let Some(last) = out.last_mut() {
        settle(last, &commands);
    }
    out
}

/// Two connections' packets can pass each other between their sender and the capture point (in
/// the NetBSD sample the data arrives 41 µs before the 150 sent ahead of it): orders across
/// connections closer than this are not judged.
const CROSSING_US: u64 = 10_000;

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

/// The order rules between each transfer command's replies and its data connections (RFC 959
/// §5.4: 125 or 150, then 226 or 250, 425, 426 or 451; §4.1.3: an aborted transfer is answered
/// 426, then ABOR 226). `times` are the exchanges' capture times, on the transfers' clock.
pub fn transfers(conv: &[Exchange<'_>], times: &[u64], transfers: &[Transfer]) -> Vec<Finding> {
    let replies = replies(conv);
    let channels = data_channels(conv);
    let at = |j: usize| times.get(j).copied().unwrap_or_default();
    let first_line = |j: usize| match conv.get(j) {
        Some(Exchange::Message(_, m)) => m.text.lines().next().unwrap_or_default().to_string(),
        _ => String::new(),
    };
    let aborts: Vec<usize> = conv
        .iter()
        .enumerate()
        .filter(|(_, ex)| {
            matches!(ex, Exchange::Message(Direction::ClientToServer, m)
                if matches!(FtpMessage::of(m), Some(FtpMessage::Command { verb, .. }) if verb == "ABOR"))
        })
        .map(|(i, _)| i)
        .collect();
    let mut out = Vec::new();
    for (i, ex) in conv.iter().enumerate() {
        let Exchange::Message(Direction::ClientToServer, m) = ex else {
            continue;
        };
        let Some(FtpMessage::Command { verb, .. }) = FtpMessage::of(m) else {
            continue;
        };
        if !TRANSFERS.contains(&verb.as_str()) {
            continue;
        }
        let mut report = |rule: &'static str, text: String| {
            out.push(Finding {
                level: Level::Must,
                rule,
                text: format!("{}: {text}", m.text),
            })
        };
        let r = replies[i];
        let used: Vec<&DataChannel> = channels.iter().filter(|c| c.command == Some(i)).collect();
        let data: Vec<&Transfer> = transfers
            .iter()
            .filter(|t| channels.get(t.channel).is_some_and(|c| c.command == Some(i)))
            .collect();
        let done = r.last.filter(|(c, _)| [226, 250].contains(c));
        let first_byte = data.iter().filter_map(|d| d.first_byte_us.map(|b| (b, d.conversation))).min();
        match (r.preliminary, first_byte, done) {
            (None, Some((_, n)), _) => report(
                "RFC 959 §5.4",
                format!("data flowed on the data connection (conversation {n}) with no 150 or 125 reply before it"),
            ),
            (None, None, Some((code, _))) => report(
                "RFC 959 §5.4",
                format!("a {code} reply with no 150 or 125 before it: a transfer is announced before its data flows"),
            ),
            (Some((code, j)), Some((b, n)), _) if at(j) > b + CROSSING_US => report(
                "RFC 959 §5.4",
                format!(
                    "data flowed on the data connection (conversation {n}) {} before the {code} reply that announces it",
                    ms(at(j) - b)
                ),
            ),
            _ => {}
        }
        if let Some((code, j)) = done {
            for d in &data {
                let n = d.conversation;
                match d.closed_us {
                    None => report(
                        "RFC 959 §5.4",
                        format!("{code} while the data connection (conversation {n}) is still open: 226 and 250 come after it closes"),
                    ),
                    Some(c) if c > at(j) + CROSSING_US => report(
                        "RFC 959 §5.4",
                        format!(
                            "{code} came {} before the data connection (conversation {n}) closed: 226 and 250 come after it closes",
                            ms(c - at(j))
                        ),
                    ),
                    _ => {}
                }
            }
        }
        match r.last {
            Some((425, _)) => {
                for d in data.iter().filter(|d| d.bytes > 0) {
                    report(
                        "RFC 959 §5.4",
                        format!(
                            "425 (can't open data connection), yet the data connection (conversation {}) carried {} bytes",
                            d.conversation, d.bytes
                        ),
                    );
                }
            }
            // Only a capture that holds some data connection of the session shows this one
            // missing; one filtered to the control port holds none.
            _ if data.iter().all(|d| d.refused) && !transfers.is_empty() && (r.preliminary.is_some() || done.is_some()) => {
                if let Some(ch) = used.first() {
                    let code = r.preliminary.or(done).map_or(0, |(c, _)| c);
                    report(
                        "RFC 959 §5.4",
                        format!(
                            "answered {code}, but no data connection came to port {} (announced by \"{}\"): without one the reply is 425",
                            ch.port,
                            first_line(ch.at)
                        ),
                    );
                }
            }
            _ => {}
        }
        // ABOR while the transfer is under way (its final reply not yet sent, its data
        // connection still open) aborts it: 426 for the transfer, then 226 for ABOR. A server
        // closes the data connection as ABOR arrives, so a close just after it is no excuse.
        let pending_at = |a: usize| a > i && r.last.is_none_or(|(_, j)| j > a);
        if let Some(&a) = aborts.iter().find(|&&a| pending_at(a)) {
            let open = data.iter().find(|d| d.opened_us <= at(a) && d.closed_us.is_none_or(|c| c > at(a)));
            if let (Some(d), Some((code, _))) = (open, done) {
                report(
                    "RFC 959 §4.1.3",
                    format!(
                        "ABOR came while the data connection (conversation {}) was open, yet the transfer was answered {code}: an aborted transfer is answered 426, then ABOR 226",
                        d.conversation
                    ),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ftp::{CommandCodec, ReplyCodec};
    use crate::proto::{Codec, Frame};

    /// The findings over a conversation written as `S: line` / `C: line` rows.
    fn check(rows: &[&str]) -> Vec<String> {
        let msgs = messages(rows);
        let conv: Vec<Exchange> = msgs.iter().map(|(d, m)| Exchange::Message(*d, m)).collect();
        conversation(&conv).into_iter().map(|f| format!("{}: {}", f.rule, f.text)).collect()
    }

    /// The messages of `S: line` / `C: line` rows (`|` separates a reply's lines).
    fn messages(rows: &[&str]) -> Vec<(Direction, Message)> {
        rows.iter()
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
            .collect()
    }

    #[test]
    fn data_channels_come_from_227_229_port_and_eprt_and_go_to_the_transfer_taken_on() {
        let msgs = messages(&[
            "S: 220 hi",
            "C: PASV",
            "S: 227 Entering Passive Mode (10,0,0,2,117,49).",
            "C: RETR missing",
            "S: 550 no such file",
            "C: RETR there",
            "S: 150 opening",
            "S: 226 done",
            "C: EPSV",
            "S: 229 Entering Extended Passive Mode (!!!30002!)",
            "C: PORT 10,0,0,1,117,51",
            "S: 200 ok",
            "C: NLST",
            "S: 150 here",
            "S: 226 sent",
            "C: EPRT !2!::1!30004!",
            "S: 200 ok",
        ]);
        let conv: Vec<Exchange> = msgs.iter().map(|(d, m)| Exchange::Message(*d, m)).collect();
        use Direction::*;
        let ch = |at, announced_by, host: Option<&str>, port, command| DataChannel {
            at,
            announced_by,
            host: host.map(|h| h.parse().unwrap()),
            port,
            command,
        };
        assert_eq!(
            data_channels(&conv),
            [
                ch(2, ServerToClient, Some("10.0.0.2"), 30001, Some(5)),
                // EPSV names no address, and PORT came before any transfer used it.
                ch(9, ServerToClient, None, 30002, None),
                ch(10, ClientToServer, Some("10.0.0.1"), 30003, Some(12)),
                ch(15, ClientToServer, Some("::1"), 30004, None),
            ]
        );
    }

    /// The transfer findings of `rows` (times: the row's index in ms) with one data connection
    /// through the first channel: (opened, first byte, closed) in ms.
    fn transfer_findings(rows: &[&str], data: Option<(u64, Option<u64>, Option<u64>)>) -> Vec<String> {
        let msgs = messages(rows);
        let conv: Vec<Exchange> = msgs.iter().map(|(d, m)| Exchange::Message(*d, m)).collect();
        let times: Vec<u64> = (0..conv.len() as u64).map(|i| i * 1000).collect();
        let data: Vec<Transfer> = data
            .into_iter()
            .map(|(open, first, closed)| Transfer {
                channel: 0,
                conversation: 2,
                opened_us: open * 1000,
                first_byte_us: first.map(|t| t * 1000),
                closed_us: closed.map(|t| t * 1000),
                refused: false,
                bytes: u64::from(first.is_some()) * 77,
            })
            .collect();
        transfers(&conv, &times, &data).into_iter().map(|f| f.text).collect()
    }

    #[test]
    fn transfer_order_rules_allow_what_crosses_on_the_way_and_find_the_rest() {
        let session = |last: &'static str| {
            [
                "S: 220 hi",
                "C: PASV",
                "S: 227 (10,0,0,2,117,49)",
                "C: RETR a",
                "S: 150 opening",
                "S: 226 done",
                "C: QUIT",
                "S: 221 bye",
            ]
            .map(|r| if r == "S: 226 done" { last } else { r })
        };
        // Data and its close between the 150 (4 ms) and the 226 (5 ms); the first byte 4 ms
        // before the 150 is more than crossing allows, 1 µs less would be too.
        assert!(transfer_findings(&session("S: 226 done"), Some((3, Some(4), Some(5)))).is_empty());
        assert_eq!(
            transfer_findings(&session("S: 226 done"), Some((3, Some(3), Some(5)))),
            Vec::<String>::new(),
            "1 ms early is within crossing"
        );
        let f = transfer_findings(&session("S: 226 done"), Some((3, Some(4), Some(60))));
        assert_eq!(
            f,
            ["RETR a: 226 came 55.0 ms before the data connection (conversation 2) closed: 226 and 250 come after it closes"]
        );
        let f = transfer_findings(&session("S: 226 done"), Some((3, Some(4), None)));
        assert!(
            f[0].contains("226 while the data connection (conversation 2) is still open"),
            "{f:?}"
        );
        let f = transfer_findings(&session("S: 425 no connection"), Some((3, Some(4), Some(5))));
        assert_eq!(
            f,
            ["RETR a: 425 (can't open data connection), yet the data connection (conversation 2) carried 77 bytes"]
        );
        // Without any data connection in the capture, a missing one is not judged.
        assert!(transfer_findings(&session("S: 226 done"), None).is_empty());
        let no_150 = ["S: 220 hi", "C: PASV", "S: 227 (10,0,0,2,117,49)", "C: RETR a", "S: 226 done"];
        assert_eq!(
            transfer_findings(&no_150, None),
            ["RETR a: a 226 reply with no 150 or 125 before it: a transfer is announced before its data flows"]
        );
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
