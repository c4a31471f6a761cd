//! FTP control-connection framing (RFC 959): replies (three-digit codes, multi-line `123-` up to
//! the line `123 `), commands (a verb and an optional argument), and the parsers of the data
//! addresses a command or reply carries (PORT, 227, EPRT, 229; RFC 2428).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use crate::proto::codec::{command_line, line};
use crate::proto::{escape_bytes, Codec, CodecError, Finding, Frame, Level, Message};

/// Longest multi-line reply framed: a reply that never closes is a flood, not a reply.
const MAX_REPLY: usize = 1 << 20;

/// A parsed FTP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FtpMessage {
    /// A server reply.
    Reply {
        /// The code of the reply.
        code: u16,
        /// The text of each line: the first and last without their code and separator, the lines
        /// between as they came.
        lines: Vec<String>,
    },
    /// A server line that does not start with a reply code.
    NoCode {
        /// The line as it came.
        line: String,
    },
    /// A client command.
    Command {
        /// The verb, upper-cased.
        verb: String,
        /// Everything after the verb and one space, if there was a space.
        arg: Option<String>,
    },
}

impl FtpMessage {
    /// The parsed form of a message this codec framed.
    pub fn of(m: &Message) -> Option<&FtpMessage> {
        m.detail.as_ref().and_then(|d| d.downcast_ref::<FtpMessage>())
    }
}

/// RFC 959 predates MUST/SHOULD, but defines both directions' lines as ending in the Telnet
/// end-of-line (RFC 854: CR LF "must" be used for a new line), so a bare LF breaks the syntax.
fn bare_lf(rule: &'static str) -> Finding {
    Finding {
        level: Level::Must,
        rule,
        text: "a line ends in a bare LF; FTP lines end in CRLF (the Telnet end-of-line)".into(),
    }
}

/// The code of a reply line that starts with three digits followed by a space, a `-` or nothing.
fn code_of(l: &[u8]) -> Option<(u16, bool)> {
    if l.len() < 3 || !l[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = (l[0] - b'0') as u16 * 100 + (l[1] - b'0') as u16 * 10 + (l[2] - b'0') as u16;
    match l.get(3) {
        None | Some(b' ') => Some((code, false)),
        Some(b'-') => Some((code, true)),
        Some(_) => None,
    }
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Frames replies: `123 text`, or `123-first` ... any lines ... `123 last` (RFC 959 §4.2).
pub struct ReplyCodec;

impl Codec for ReplyCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let mut findings = Vec::new();
        let mut raw = Vec::new();
        let mut lines = Vec::new();
        let mut pos = 0;
        let mut code = None;
        let mut lf_seen = false;
        loop {
            let Some((l, used, lf)) = line(&buf[pos..])? else {
                if pos > MAX_REPLY {
                    return Err(CodecError {
                        offset: pos,
                        reason: format!("a multi-line reply still open after {MAX_REPLY} bytes"),
                    });
                }
                if eof && !buf.is_empty() {
                    return Err(CodecError {
                        offset: buf.len(),
                        reason: "the connection closed in the middle of a reply".into(),
                    });
                }
                return Ok(Frame::Incomplete);
            };
            if lf && !lf_seen {
                lf_seen = true;
                findings.push(bare_lf("RFC 959 §4.2"));
            }
            pos += used;
            raw.push(text_of(l));
            let Some(first) = code else {
                let Some((c, more)) = code_of(l) else {
                    findings.push(Finding {
                        level: Level::Must,
                        rule: "RFC 959 §4.2",
                        text: format!(
                            "a reply line without a code: a reply starts with three digits and a space or '-': \"{}\"",
                            escape_bytes(l, 120)
                        ),
                    });
                    let line = raw.remove(0);
                    let summary = format!("\"{}\"", escape_bytes(l, 200));
                    let m = Message {
                        text: line.clone(),
                        summary,
                        findings,
                        detail: Some(Arc::new(FtpMessage::NoCode { line })),
                    };
                    return Ok(Frame::Message(m, pos));
                };
                if !(1..=5).contains(&(c / 100)) {
                    findings.push(Finding {
                        level: Level::Must,
                        rule: "RFC 959 §4.2.1",
                        text: format!("reply code {c:03}: the first digit of a reply code is 1 to 5"),
                    });
                }
                code = Some(c);
                lines.push(text_of(l.get(4..).unwrap_or_default()));
                if more {
                    continue;
                }
                break;
            };
            // RFC 959 §4.2 ends a multi-line reply at a line starting with its code and a space; a
            // line in between that starts with digits "must" be padded. A line that looks like the
            // end of a reply with another code is therefore taken as the (wrong) end: waiting for a
            // line that may never come would hide the mistake behind a timeout.
            match code_of(l) {
                Some((c, false)) => {
                    if c != first {
                        findings.push(Finding {
                            level: Level::Must,
                            rule: "RFC 959 §4.2",
                            text: format!(
                                "a multi-line reply begun with {first:03} ends with a {c:03} line; its last line starts with the same code"
                            ),
                        });
                    }
                    lines.push(text_of(l.get(4..).unwrap_or_default()));
                    break;
                }
                _ => lines.push(text_of(l)),
            }
        }
        let code = code.unwrap_or_default();
        let text = raw.join("\n");
        let summary = text.replace('\n', "\n  ");
        Ok(Frame::Message(
            Message {
                text,
                summary,
                findings,
                detail: Some(Arc::new(FtpMessage::Reply { code, lines })),
            },
            pos,
        ))
    }
}

/// Frames command lines: `VERB` or `VERB argument` (RFC 959 §5.3).
pub struct CommandCodec;

impl Codec for CommandCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let Some((l, used, lf)) = command_line(buf, eof)? else {
            return Ok(Frame::Incomplete);
        };
        let text = text_of(after_telnet_commands(l));
        let (verb, arg) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), Some(a.to_string())),
            None => (text.to_ascii_uppercase(), None),
        };
        let findings = if lf { vec![bare_lf("RFC 959 §5.3.1")] } else { Vec::new() };
        let summary = format!("\"{}\"", escape_bytes(l, 200));
        Ok(Frame::Message(
            Message {
                text,
                summary,
                findings,
                detail: Some(Arc::new(FtpMessage::Command { verb, arg })),
            },
            used,
        ))
    }
}

/// The line after the Telnet commands that may lead it: a client aborting a transfer sends IAC IP
/// and IAC DM before ABOR (RFC 959 §4.1.3), and those bytes are no part of the verb.
fn after_telnet_commands(mut l: &[u8]) -> &[u8] {
    const IAC: u8 = 255;
    loop {
        l = match l {
            // WILL, WONT, DO and DONT name an option in a third byte.
            [IAC, 251..=254, _, rest @ ..] => rest,
            [IAC, 240..=250, rest @ ..] => rest,
            _ => return l,
        };
    }
}

/// A reply on the wire: one line, or the first line with `-`, the lines between (one starting
/// with a digit padded with a space, RFC 959 §4.2), and the last with the code again.
pub fn reply_bytes(code: u16, lines: &[&str]) -> Vec<u8> {
    let mut out = String::new();
    match lines {
        [] => out.push_str(&format!("{code:03} \r\n")),
        [one] => out.push_str(&format!("{code:03} {one}\r\n")),
        [first, middle @ .., last] => {
            out.push_str(&format!("{code:03}-{first}\r\n"));
            for m in middle {
                if m.starts_with(|c: char| c.is_ascii_digit()) {
                    out.push(' ');
                }
                out.push_str(m);
                out.push_str("\r\n");
            }
            out.push_str(&format!("{code:03} {last}\r\n"));
        }
    }
    out.into_bytes()
}

/// A command on the wire: the verb, and the argument after one space.
pub fn command_bytes(verb: &str, arg: Option<&str>) -> Vec<u8> {
    match arg {
        Some(a) => format!("{verb} {a}\r\n").into_bytes(),
        None => format!("{verb}\r\n").into_bytes(),
    }
}

/// `h1,h2,h3,h4,p1,p2` (RFC 959 §4.1.2, PORT) as an address; each number 0 to 255.
fn six_numbers(s: &str) -> Option<SocketAddrV4> {
    let number = |x: &str| x.bytes().all(|c| c.is_ascii_digit()).then(|| x.parse::<u8>().ok()).flatten();
    let n: Vec<u8> = s.split(',').map(number).collect::<Option<_>>()?;
    let [h1, h2, h3, h4, p1, p2] = n[..] else { return None };
    Some(SocketAddrV4::new(
        Ipv4Addr::new(h1, h2, h3, h4),
        u16::from(p1) * 256 + u16::from(p2),
    ))
}

/// The data address of a 227 reply. Its format is "not well standardized" (RFC 1123 §4.1.2.6):
/// the client scans for the first digit of `h1,h2,h3,h4,p1,p2`, in parentheses or not.
pub fn parse_pasv(text: &str) -> Option<SocketAddrV4> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        // The longest run of digits and commas from here, and whether it has five commas.
        let end = b[i..]
            .iter()
            .position(|c| !c.is_ascii_digit() && *c != b',')
            .map_or(b.len(), |e| i + e);
        let run = text[i..end].trim_end_matches(',');
        let parts: Vec<&str> = run.split(',').collect();
        if parts.len() >= 6 && parts[..6].iter().all(|p| !p.is_empty()) {
            // The first six numbers decide: one over 255 is not an address, not a reason to look on.
            return six_numbers(&parts[..6].join(","));
        }
        i = end.max(i + 1);
    }
    None
}

/// The port of a 229 reply: `(<d><d><d>port<d>)` with one delimiter from ASCII 33 to 126
/// (RFC 2428 §3).
pub fn parse_epsv(text: &str) -> Option<u16> {
    text.match_indices('(').find_map(|(i, _)| {
        let rest = &text[i + 1..];
        let inner = &rest[..rest.find(')')?];
        let d = inner.chars().next()?;
        if !(33..=126).contains(&(d as u32)) || d.is_ascii_digit() {
            return None;
        }
        let body = inner.strip_prefix(&d.to_string().repeat(3))?.strip_suffix(d)?;
        body.parse::<u16>()
            .ok()
            .filter(|&p| p > 0 && body.bytes().all(|c| c.is_ascii_digit()))
    })
}

/// The address of a PORT argument, `h1,h2,h3,h4,p1,p2` (RFC 959 §4.1.2).
pub fn parse_port_arg(arg: &str) -> Option<SocketAddrV4> {
    six_numbers(arg.trim())
}

/// The address of an EPRT argument, `<d>1<d>132.235.1.2<d>6275<d>` or `<d>2<d>::1<d>6275<d>`,
/// the delimiter one character from ASCII 33 to 126 (RFC 2428 §2).
pub fn parse_eprt_arg(arg: &str) -> Option<SocketAddr> {
    let arg = arg.trim();
    let d = arg.chars().next()?;
    if !(33..=126).contains(&(d as u32)) || d.is_ascii_alphanumeric() {
        return None;
    }
    let body = arg.strip_prefix(d)?.strip_suffix(d)?;
    let parts: Vec<&str> = body.split(d).collect();
    let [family, host, port] = parts[..] else { return None };
    if !port.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let port = port.parse::<u16>().ok().filter(|&p| p > 0)?;
    match family {
        "1" => Some(SocketAddr::new(host.parse::<Ipv4Addr>().ok()?.into(), port)),
        "2" => Some(SocketAddr::new(host.parse::<Ipv6Addr>().ok()?.into(), port)),
        _ => None,
    }
}

/// The PORT argument for `addr` (RFC 959 §4.1.2).
pub fn port_arg(addr: SocketAddrV4) -> String {
    let [h1, h2, h3, h4] = addr.ip().octets();
    let (p1, p2) = (addr.port() / 256, addr.port() % 256);
    format!("{h1},{h2},{h3},{h4},{p1},{p2}")
}

/// The EPRT argument for `addr` (RFC 2428 §2), with `|` as the delimiter.
pub fn eprt_arg(addr: SocketAddr) -> String {
    let family = if addr.is_ipv4() { 1 } else { 2 };
    format!("|{family}|{}|{}|", addr.ip(), addr.port())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn frames(c: &mut dyn Codec, mut buf: &[u8]) -> Vec<Message> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            match c.decode(buf, true).unwrap() {
                Frame::Message(m, used) => {
                    out.push(m);
                    buf = &buf[used..];
                }
                Frame::Incomplete => panic!("incomplete at eof"),
            }
        }
        out
    }

    fn reply(buf: &[u8]) -> (FtpMessage, String, usize, Vec<Finding>) {
        match ReplyCodec.decode(buf, false).unwrap() {
            Frame::Message(m, used) => (FtpMessage::of(&m).unwrap().clone(), m.text, used, m.findings),
            Frame::Incomplete => panic!("incomplete"),
        }
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_single_and_multi_line_replies_with_any_lines_between() {
        let (m, text, used, f) = reply(b"226 Transfer complete.\r\n221 bye\r\n");
        assert_eq!(
            m,
            FtpMessage::Reply {
                code: 226,
                lines: lines(&["Transfer complete."])
            }
        );
        assert_eq!((text.as_str(), used, f.len()), ("226 Transfer complete.", 24, 0));
        // RFC 959 §4.2's own example: a padded line of digits, and lines with no code at all.
        let wire = b"123-First line\r\nSecond line\r\n  234 A line beginning with numbers\r\n123 The last line\r\n";
        let (m, text, used, f) = reply(wire);
        let want = ["First line", "Second line", "  234 A line beginning with numbers", "The last line"];
        assert_eq!(
            m,
            FtpMessage::Reply {
                code: 123,
                lines: lines(&want)
            }
        );
        assert_eq!((used, f.len()), (wire.len(), 0));
        assert_eq!(
            text,
            "123-First line\nSecond line\n  234 A line beginning with numbers\n123 The last line"
        );
        // Lines repeating `230-`, and one starting with digits but no space, stay inside.
        let (m, _, _, f) = reply(b"230-\r\n230-welcome\r\n2024 was a year\r\n230 ok\r\n");
        assert_eq!(
            m,
            FtpMessage::Reply {
                code: 230,
                lines: lines(&["", "230-welcome", "2024 was a year", "ok"])
            }
        );
        assert!(f.is_empty());
        let (m, _, _, _) = reply(b"200\r\n");
        assert_eq!(
            m,
            FtpMessage::Reply {
                code: 200,
                lines: lines(&[""])
            }
        );
    }

    #[test]
    fn parses_commands_case_insensitively_with_an_optional_argument() {
        let cmd = |b: &[u8]| match CommandCodec.decode(b, false).unwrap() {
            Frame::Message(m, used) => (FtpMessage::of(&m).unwrap().clone(), m.text, used, m.findings),
            Frame::Incomplete => panic!("incomplete"),
        };
        let (m, text, used, f) = cmd(b"retr my file.txt\r\nQUIT\r\n");
        assert_eq!(
            m,
            FtpMessage::Command {
                verb: "RETR".into(),
                arg: Some("my file.txt".into())
            }
        );
        assert_eq!((text.as_str(), used, f.len()), ("retr my file.txt", 18, 0));
        let (m, _, _, _) = cmd(b"PASV\r\n");
        assert_eq!(
            m,
            FtpMessage::Command {
                verb: "PASV".into(),
                arg: None
            }
        );
        let (m, _, _, f) = cmd(b"Cwd /\n");
        assert_eq!(
            m,
            FtpMessage::Command {
                verb: "CWD".into(),
                arg: Some("/".into())
            }
        );
        assert_eq!((f[0].level, f[0].rule), (Level::Must, "RFC 959 §5.3.1"));
    }

    #[test]
    fn parses_abor_after_telnet_interrupt_and_synch() {
        let Frame::Message(m, used) = CommandCodec.decode(b"\xff\xf4\xff\xf2ABOR\r\n", false).unwrap() else {
            panic!()
        };
        assert_eq!(
            FtpMessage::of(&m).unwrap(),
            &FtpMessage::Command {
                verb: "ABOR".into(),
                arg: None
            }
        );
        assert_eq!((m.text.as_str(), used), ("ABOR", 10));
        assert!(m.summary.contains("\\x??"), "the transcript shows the bytes: {}", m.summary);
    }

    #[test]
    fn parses_bare_lf_replies_with_a_finding() {
        let (m, _, used, f) = reply(b"220-hi\n220 ready\n");
        assert_eq!(
            m,
            FtpMessage::Reply {
                code: 220,
                lines: lines(&["hi", "ready"])
            }
        );
        assert_eq!((used, f.len()), (17, 1));
        assert_eq!((f[0].level, f[0].rule), (Level::Must, "RFC 959 §4.2"));
    }

    #[test]
    fn rejects_lines_without_codes_codes_out_of_range_and_changed_codes() {
        let (m, text, used, f) = reply(b"hello\r\n220 hi\r\n");
        assert_eq!(m, FtpMessage::NoCode { line: "hello".into() });
        assert_eq!((text.as_str(), used), ("hello", 7));
        assert!(f[0].text.contains("without a code"), "{}", f[0]);
        let (_, _, _, f) = reply(b"220x\r\n");
        assert!(f[0].text.contains("without a code"));
        let (m, _, _, f) = reply(b"600 what\r\n");
        assert_eq!(
            m,
            FtpMessage::Reply {
                code: 600,
                lines: lines(&["what"])
            }
        );
        assert_eq!(f[0].rule, "RFC 959 §4.2.1");
        let (_, _, _, f) = reply(b"099 what\r\n");
        assert!(f[0].text.contains("099"), "{}", f[0]);
        let (m, _, used, f) = reply(b"230-welcome\r\n220 done\r\n230 late\r\n");
        assert_eq!(
            m,
            FtpMessage::Reply {
                code: 230,
                lines: lines(&["welcome", "done"])
            }
        );
        assert_eq!(used, 23);
        assert!(f[0].text.contains("begun with 230 ends with a 220"), "{}", f[0]);
        assert!(ReplyCodec.decode(b"230-a\r\nb\r\n", true).is_err());
        assert!(ReplyCodec.decode(b"230 a", true).is_err());
        assert!(CommandCodec.decode(b"USER a", true).is_err());
    }

    #[test]
    fn incomplete_until_the_closing_line() {
        assert!(matches!(
            ReplyCodec.decode(b"230-a\r\n230-b\r\n230 c", false).unwrap(),
            Frame::Incomplete
        ));
        assert!(matches!(ReplyCodec.decode(b"230-a\r\n", false).unwrap(), Frame::Incomplete));
        assert!(matches!(ReplyCodec.decode(b"", true).unwrap(), Frame::Incomplete));
        assert!(matches!(CommandCodec.decode(b"NOOP", false).unwrap(), Frame::Incomplete));
    }

    #[test]
    fn incomplete_at_every_split_then_the_same_messages() {
        let replies: &[u8] = b"220-Welcome\r\n  220 padded\r\n220-again\r\n220 ready\r\n331 pw\r\n230-\n x\r\n230 ok\r\n\
                               227 Entering Passive Mode (127,0,0,1,4,1)\r\nhello\r\n150-a\r\n226 b\r\n";
        let commands: &[u8] = b"USER anonymous\r\npass x@y\r\nPASV\nEPRT |2|::1|6275|\r\nRETR a b\r\nQUIT\r\n";
        type New = fn() -> Box<dyn Codec>;
        let codecs: [(&[u8], New); 2] = [(replies, || Box::new(ReplyCodec)), (commands, || Box::new(CommandCodec))];
        for (wire, new) in codecs {
            let whole: Vec<(String, usize)> = frames(new().as_mut(), wire)
                .iter()
                .map(|m| (m.summary.clone(), m.findings.len()))
                .collect();
            for cut in 0..=wire.len() {
                let mut c = new();
                let mut got = Vec::new();
                let mut buf = wire[..cut].to_vec();
                let mut next = |buf: &mut Vec<u8>, eof: bool, got: &mut Vec<(String, usize)>| {
                    while let Frame::Message(m, used) = c.decode(buf, eof).unwrap() {
                        got.push((m.summary.clone(), m.findings.len()));
                        buf.drain(..used);
                    }
                };
                next(&mut buf, false, &mut got);
                buf.extend_from_slice(&wire[cut..]);
                next(&mut buf, true, &mut got);
                assert_eq!(got, whole, "cut at {cut}");
                assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn parses_pasv_replies_with_or_without_parentheses() {
        let a = |s: &str| parse_pasv(s).map(|a| a.to_string());
        assert_eq!(a("227 Entering Passive Mode (127,0,0,1,200,15)."), Some("127.0.0.1:51215".into()));
        assert_eq!(
            a("Entering Passive Mode (199,233,217,249,221,90)"),
            Some("199.233.217.249:56666".into())
        );
        assert_eq!(a("227 =10,0,0,2,0,21"), Some("10.0.0.2:21".into()));
        assert_eq!(a("227 ok 192,168,1,1,4,1,9 trailing"), Some("192.168.1.1:1025".into()));
        assert_eq!(a("227 Passive 2 3,4 (1,2,3,4,5,6)"), Some("1.2.3.4:1286".into()));
    }

    #[test]
    fn rejects_pasv_replies_without_six_numbers_up_to_255() {
        for bad in [
            "227 Entering Passive Mode",
            "227 (127,0,0,1,200)",
            "227 (127,0,0,1,256,1)",
            "227 (1000,0,0,1,1,1)",
            "227 (1,,2,3,4,5)",
        ] {
            assert_eq!(parse_pasv(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_epsv_with_any_consistent_delimiter() {
        assert_eq!(parse_epsv("229 Entering Extended Passive Mode (|||6446|)"), Some(6446));
        assert_eq!(parse_epsv("Entering (!!!65535!)"), Some(65535));
        assert_eq!(parse_epsv("x (a) then (###21#)"), Some(21));
    }

    #[test]
    fn rejects_epsv_with_mixed_delimiters_or_bad_ports() {
        for bad in [
            "229 (||!6446|)",
            "229 (|||6446!)",
            "229 (|||65536|)",
            "229 (|||0|)",
            "229 (|||+1|)",
            "229 |||6446|",
            "229 (  6446 )",
            "229 (111161)",
        ] {
            assert_eq!(parse_epsv(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_port_and_eprt_arguments() {
        assert_eq!(parse_port_arg("132,235,1,2,24,131").unwrap().to_string(), "132.235.1.2:6275");
        assert_eq!(parse_eprt_arg("|1|132.235.1.2|6275|").unwrap().to_string(), "132.235.1.2:6275");
        assert_eq!(
            parse_eprt_arg("|2|1080::8:800:200C:417A|5282|").unwrap().to_string(),
            "[1080::8:800:200c:417a]:5282"
        );
        assert_eq!(parse_eprt_arg("!2!::1!21!").unwrap().to_string(), "[::1]:21");
    }

    #[test]
    fn rejects_bad_port_and_eprt_arguments() {
        for bad in ["132,235,1,2,24", "132,235,1,2,24,256", "a,b,c,d,e,f", "1,2,3,4,5,6,7"] {
            assert_eq!(parse_port_arg(bad), None, "{bad}");
        }
        for bad in [
            "|1|::1|21|",
            "|2|1.2.3.4|21|",
            "|3|1.2.3.4|21|",
            "|1|1.2.3.4|21!",
            "|1|1.2.3.4|0|",
            "|1|1.2.3.4|99999|",
            "1|1.2.3.4|21|1",
        ] {
            assert_eq!(parse_eprt_arg(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trip_data_addresses() {
        let v4: SocketAddrV4 = "10.1.2.3:65535".parse().unwrap();
        assert_eq!(parse_port_arg(&port_arg(v4)), Some(v4));
        assert_eq!(parse_pasv(&format!("227 Entering Passive Mode ({}).", port_arg(v4))), Some(v4));
        for a in ["10.1.2.3:21", "[::1]:6275", "[fe80::1]:1"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(parse_eprt_arg(&eprt_arg(a)), Some(a));
        }
    }

    /// Text of a reply line: printable ASCII, spaces and digits anywhere.
    fn text() -> impl Strategy<Value = String> {
        "[ -~]{0,20}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn round_trip_replies(code in 100u16..600, first in text(), middle in prop::collection::vec(text(), 0..4), last in text(), multi in any::<bool>()) {
            let mut ls: Vec<&str> = vec![&first];
            if multi {
                ls.extend(middle.iter().map(String::as_str));
                ls.push(&last);
            }
            let wire = reply_bytes(code, &ls);
            let (m, _, used, f) = reply(&wire);
            // The codec gives a padded line back as it came.
            let want: Vec<String> = ls.iter().enumerate().map(|(i, l)| {
                let padded = i > 0 && i + 1 < ls.len() && l.starts_with(|c: char| c.is_ascii_digit());
                if padded { format!(" {l}") } else { l.to_string() }
            }).collect();
            prop_assert_eq!(m, FtpMessage::Reply { code, lines: want });
            prop_assert_eq!(used, wire.len());
            prop_assert!(f.is_empty(), "{:?}", f);
        }

        #[test]
        fn round_trip_commands(verb in "[A-Za-z]{3,4}", arg in prop::option::of("[ -~]{0,30}")) {
            let wire = command_bytes(&verb, arg.as_deref());
            let Frame::Message(m, used) = CommandCodec.decode(&wire, false).unwrap() else { panic!() };
            prop_assert_eq!(FtpMessage::of(&m).unwrap(), &FtpMessage::Command { verb: verb.to_ascii_uppercase(), arg });
            prop_assert_eq!(used, wire.len());
        }

        #[test]
        fn rejects_or_frames_any_bytes_without_panicking(b in prop::collection::vec(any::<u8>(), 0..200), eof in any::<bool>()) {
            let _ = ReplyCodec.decode(&b, eof);
            let _ = CommandCodec.decode(&b, eof);
        }
    }
}
