//! SMTP (RFC 5321): replies (three-digit codes, multi-line `250-`), commands, and DATA content.
//!
//! Structured expect keys: on replies `code` (250, [250, 251], 2xx), `text` (a regex any reply
//! line must match), `multiline`; on commands (the harness playing the server) `command`, `args`
//! (a regex), and `data` (the message after un-stuffing: `line`, `regex`, `file`); `capture`
//! takes `{ var: regex-with-a-group }` over the reply or command text.

use std::path::PathBuf;
use std::sync::Arc;

use regex::Regex;

use super::text::{apply_captures, line, mismatch, parse_captures};
use super::{
    escape_bytes, Codec, CodecError, Direction, Exchange, Finding, Frame, Level, Message, Mismatch, Protocol, RenderCx, StructuredExpect,
};
use crate::suite::{Data, LoadCx, Node, Template, Transport};

/// Longest line framed (RFC 5321 §4.5.3.1 allows 1000 with CRLF; anything far beyond is a flood).
/// Largest DATA content framed.
const MAX_DATA: usize = 64 << 20;

/// The `smtp` protocol.
pub struct Smtp;

/// A parsed SMTP message.
#[derive(Debug, Clone)]
pub enum SmtpMessage {
    /// A server reply.
    Reply {
        /// The code of the reply.
        code: u16,
        /// The text of each line (after the code and separator).
        lines: Vec<String>,
    },
    /// A client command line.
    Command {
        /// The verb, upper-cased.
        verb: String,
        /// Everything after the verb and one space.
        args: String,
    },
    /// The message content after DATA, un-stuffed, without the final `.` line.
    Data {
        /// The content with CRLF line endings.
        content: Vec<u8>,
    },
}

impl Protocol for Smtp {
    fn conversation_rules(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        let mut out = Vec::new();
        // The greeting, then one reply per command and per mail content (RFC 5321 §4.2, §4.3.2).
        let (mut asked, mut replies) = (1usize, 0usize);
        for ex in conv {
            let Exchange::Message(dir, m) = ex else { continue };
            match (dir, m.detail.as_ref().and_then(|d| d.downcast_ref::<SmtpMessage>())) {
                (Direction::ClientToServer, Some(SmtpMessage::Command { .. } | SmtpMessage::Data { .. })) => asked += 1,
                (Direction::ServerToClient, Some(SmtpMessage::Reply { code, .. })) => {
                    replies += 1;
                    if replies == 1 && ![220, 554].contains(code) {
                        out.push(Finding {
                            level: Level::Must,
                            rule: "RFC 5321 §3.1, §4.3.2",
                            text: format!("the greeting is {code}, not 220 (or 554)"),
                        });
                    } else if replies > asked {
                        out.push(Finding {
                            level: Level::Must,
                            rule: "RFC 5321 §4.2",
                            text: format!(
                                "reply {replies} ({}) answers no command: every command gets exactly one reply",
                                m.text
                            ),
                        });
                        break;
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn name(&self) -> &'static str {
        "smtp"
    }
    fn transport(&self) -> Transport {
        Transport::Tcp
    }
    fn line_ending(&self) -> &'static [u8] {
        b"\r\n"
    }
    fn codec(&self, dir: Direction) -> Box<dyn Codec> {
        match dir {
            Direction::ServerToClient => Box::new(ReplyCodec),
            Direction::ClientToServer => Box::new(CommandCodec::default()),
        }
    }
    fn expect_keys(&self) -> &'static [&'static str] {
        &["code", "text", "multiline", "command", "args", "data"]
    }
    fn parse_expect(&self, node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
        parse_expect(node, cx)
    }
}

/// The finding for a line that ends in a bare LF.
fn bare_lf() -> Finding {
    Finding {
        level: Level::Should,
        rule: "RFC 5321 §2.3.8",
        text: "a line ends in a bare LF; SMTP lines end in CRLF".into(),
    }
}

/// Frames replies: lines `ddd-text` up to the line `ddd text` (or `ddd`).
pub struct ReplyCodec;

impl Codec for ReplyCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let mut pos = 0;
        let mut lines = Vec::new();
        let mut findings = Vec::new();
        let mut code = None;
        loop {
            let Some((l, used, lf)) = line(&buf[pos..])? else {
                if eof && (pos < buf.len() || !lines.is_empty()) {
                    return Err(CodecError {
                        offset: buf.len(),
                        reason: "the connection closed in the middle of a reply".into(),
                    });
                }
                return Ok(Frame::Incomplete);
            };
            if lf && findings.is_empty() {
                findings.push(bare_lf());
            }
            let digits = l.len() >= 3 && l[..3].iter().all(u8::is_ascii_digit) && (b'2'..=b'5').contains(&l[0]);
            if !digits || l.get(3).is_some_and(|&b| b != b' ' && b != b'-') {
                return Err(CodecError {
                    offset: pos,
                    reason: format!(
                        "not an SMTP reply line (three digits, then space or '-'): \"{}\"",
                        escape_bytes(l, 120)
                    ),
                });
            }
            let c = (l[0] - b'0') as u16 * 100 + (l[1] - b'0') as u16 * 10 + (l[2] - b'0') as u16;
            if code.is_some_and(|first| first != c) {
                findings.push(Finding {
                    level: Level::Must,
                    rule: "RFC 5321 §4.2.1",
                    text: format!("a multi-line reply changes its code from {} to {c}", code.unwrap_or(0)),
                });
            }
            code.get_or_insert(c);
            lines.push(String::from_utf8_lossy(l.get(4..).unwrap_or(&[])).into_owned());
            pos += used;
            if l.get(3) != Some(&b'-') {
                break;
            }
        }
        let code = code.unwrap_or(0);
        let text = lines
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{code}{}{t}", if i + 1 < lines.len() { "-" } else { " " }))
            .collect::<Vec<_>>()
            .join("\n");
        let summary = text.replace('\n', "\n  ");
        Ok(Frame::Message(
            Message {
                text,
                summary,
                findings,
                detail: Some(Arc::new(SmtpMessage::Reply { code, lines })),
            },
            pos,
        ))
    }
}

/// Frames commands, and after `DATA` and a 354 reply the content up to CRLF.CRLF.
#[derive(Default)]
pub struct CommandCodec {
    /// A DATA command was framed and its reply is not known yet.
    data_asked: bool,
    /// The server said 354: the next message is the content.
    in_data: bool,
    /// Reply bytes seen, not yet a whole line.
    reply_buf: Vec<u8>,
}

impl Codec for CommandCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        if self.in_data {
            return self.decode_data(buf, eof);
        }
        let Some((l, used, lf)) = line(buf)? else {
            if eof && !buf.is_empty() {
                return Err(CodecError {
                    offset: buf.len(),
                    reason: "the connection closed in the middle of a command".into(),
                });
            }
            return Ok(Frame::Incomplete);
        };
        let text = String::from_utf8_lossy(l).into_owned();
        let (verb, args) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.to_string()),
            None => (text.to_ascii_uppercase(), String::new()),
        };
        if verb == "DATA" {
            self.data_asked = true;
        }
        let findings = if lf { vec![bare_lf()] } else { Vec::new() };
        let summary = format!("\"{}\"", escape_bytes(l, 200));
        Ok(Frame::Message(
            Message {
                text,
                summary,
                findings,
                detail: Some(Arc::new(SmtpMessage::Command { verb, args })),
            },
            used,
        ))
    }

    fn peer_sent(&mut self, bytes: &[u8]) {
        self.reply_buf.extend_from_slice(bytes);
        while let Some(i) = self.reply_buf.iter().position(|&b| b == b'\n') {
            let l: Vec<u8> = self.reply_buf.drain(..=i).collect();
            if self.data_asked && l.len() >= 4 && l[3] != b'-' {
                self.data_asked = false;
                self.in_data = l.starts_with(b"354");
            }
        }
    }
}

impl CommandCodec {
    fn decode_data(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        // The content ends with a line that is exactly "." (RFC 5321 §4.1.1.4: CRLF.CRLF).
        let mut pos = 0;
        let mut content = Vec::new();
        let mut lines = 0;
        loop {
            let Some(rel) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
                if buf.len() > MAX_DATA {
                    return Err(CodecError {
                        offset: MAX_DATA,
                        reason: "DATA content over the size limit".into(),
                    });
                }
                if eof {
                    return Err(CodecError {
                        offset: buf.len(),
                        reason: "the connection closed before the end of DATA (a line with only \".\" after CRLF)".into(),
                    });
                }
                return Ok(Frame::Incomplete);
            };
            let l = &buf[pos..pos + rel];
            pos += rel + 2;
            if l == b"." {
                break;
            }
            // RFC 5321 §4.5.2: a leading "." was added by the sender; remove one.
            content.extend_from_slice(l.strip_prefix(b".").unwrap_or(l));
            content.extend_from_slice(b"\r\n");
            lines += 1;
        }
        self.in_data = false;
        let text = String::from_utf8_lossy(&content).into_owned();
        let summary = format!(
            "DATA content, {lines} lines, {} bytes: \"{}\"",
            content.len(),
            escape_bytes(&content, 200)
        );
        Ok(Frame::Message(
            Message {
                text,
                summary,
                findings: Vec::new(),
                detail: Some(Arc::new(SmtpMessage::Data { content })),
            },
            pos,
        ))
    }
}

/// Reply codes accepted: exact codes and whole classes (`4xx`).
#[derive(Debug)]
struct CodeMatch {
    codes: Vec<u16>,
    classes: Vec<u16>,
}

impl CodeMatch {
    fn accepts(&self, code: u16) -> bool {
        self.codes.contains(&code) || self.classes.contains(&(code / 100))
    }
}

/// `250` or `2xx`.
fn code_item(n: &Node, cx: &mut LoadCx, m: &mut CodeMatch) -> Option<()> {
    match n.as_str() {
        Some(s) if s.len() == 3 && s.ends_with("xx") && (b'2'..=b'5').contains(&s.as_bytes()[0]) => {
            m.classes.push((s.as_bytes()[0] - b'0') as u16)
        }
        _ => m.codes.push(cx.number::<u16>(n, "a reply code (250) or class (2xx)")?),
    }
    Some(())
}

#[derive(Debug)]
enum DataCheck {
    Line(Template),
    Regex(Template),
    File(PathBuf),
}

/// Checks on a reply, a command or DATA content.
#[derive(Debug)]
struct SmtpExpect {
    code: Option<CodeMatch>,
    text: Option<Template>,
    multiline: Option<bool>,
    command: Option<Vec<String>>,
    args: Option<Template>,
    data: Vec<DataCheck>,
    captures: Vec<(String, Regex)>,
}

fn parse_expect(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    let f = cx.fields(
        node,
        &["code", "text", "multiline", "command", "args", "data", "capture"],
        "an SMTP expect",
    )?;
    let code = match f.get("code") {
        None => None,
        Some(n) => {
            let mut m = CodeMatch {
                codes: Vec::new(),
                classes: Vec::new(),
            };
            match &n.data {
                Data::Seq(items) => {
                    for i in items {
                        code_item(i, cx, &mut m)?;
                    }
                }
                _ => code_item(n, cx, &mut m)?,
            }
            Some(m)
        }
    };
    let text = match f.get("text") {
        Some(n) => Some(cx.regex(n)?),
        None => None,
    };
    let multiline = match f.get("multiline") {
        Some(n) => Some(cx.boolean(n, "multiline")?),
        None => None,
    };
    let command = match f.get("command") {
        None => None,
        Some(n) => Some(match &n.data {
            Data::Seq(items) => items
                .iter()
                .map(|i| cx.string(i, "a command").map(|s| s.to_ascii_uppercase()))
                .collect::<Option<Vec<_>>>()?,
            _ => vec![cx.string(n, "command")?.to_ascii_uppercase()],
        }),
    };
    let args = match f.get("args") {
        Some(n) => Some(cx.regex(n)?),
        None => None,
    };
    let mut data = Vec::new();
    if let Some(d) = f.get("data") {
        let df = cx.fields(d, &["line", "regex", "file"], "a DATA check")?;
        if let Some(l) = df.get("line") {
            data.push(DataCheck::Line(cx.template(l, "line")?));
        }
        if let Some(r) = df.get("regex") {
            data.push(DataCheck::Regex(cx.regex(r)?));
        }
        if let Some(p) = df.get("file") {
            let p = PathBuf::from(cx.string(p, "file")?);
            data.push(DataCheck::File(p));
        }
    }
    let captures = match f.get("capture") {
        Some(c) => parse_captures(c, cx, "id: 'queued as (\\w+)'")?,
        None => Vec::new(),
    };
    Some(Box::new(SmtpExpect {
        code,
        text,
        multiline,
        command,
        args,
        data,
        captures,
    }))
}

impl StructuredExpect for SmtpExpect {
    fn check(&self, msg: &Message, cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        let Some(m) = msg.detail.as_ref().and_then(|d| d.downcast_ref::<SmtpMessage>()) else {
            return Err(mismatch("not an SMTP message", self.describe(), msg));
        };
        let regex = |t: &Template| -> Result<Regex, Mismatch> {
            let p = t.render_regex(cx.vars).map_err(|e| mismatch(e, "", msg))?;
            Regex::new(&p).map_err(|e| mismatch(e.to_string(), "", msg))
        };
        match m {
            SmtpMessage::Reply { code, lines } => {
                if self.command.is_some() || !self.data.is_empty() {
                    return Err(mismatch(
                        format!("a reply ({code}) came where a client command was expected"),
                        self.describe(),
                        msg,
                    ));
                }
                if let Some(c) = &self.code {
                    if !c.accepts(*code) {
                        return Err(mismatch(
                            format!("reply code {code}, expected {}", describe_code(c)),
                            self.describe(),
                            msg,
                        ));
                    }
                }
                if let Some(ml) = self.multiline {
                    if ml != (lines.len() > 1) {
                        let what = if ml { "a multi-line reply" } else { "a one-line reply" };
                        return Err(mismatch(
                            format!("expected {what}, got {} lines", lines.len()),
                            self.describe(),
                            msg,
                        ));
                    }
                }
                if let Some(t) = &self.text {
                    let re = regex(t)?;
                    if !lines.iter().any(|l| re.is_match(l)) {
                        return Err(mismatch(format!("no reply line matches /{}/", re.as_str()), self.describe(), msg));
                    }
                }
            }
            SmtpMessage::Command { verb, args } => {
                if self.code.is_some() {
                    return Err(mismatch("a client command came where a reply was expected", self.describe(), msg));
                }
                if !self.data.is_empty() {
                    return Err(mismatch(
                        format!("the command {verb} came where the DATA content was expected"),
                        self.describe(),
                        msg,
                    ));
                }
                if let Some(cs) = &self.command {
                    if !cs.contains(verb) {
                        return Err(mismatch(
                            format!("the command is {verb}, expected {}", cs.join(" or ")),
                            self.describe(),
                            msg,
                        ));
                    }
                }
                if let Some(a) = &self.args {
                    let re = regex(a)?;
                    if !re.is_match(args) {
                        return Err(mismatch(
                            format!("the arguments \"{args}\" do not match /{}/", re.as_str()),
                            self.describe(),
                            msg,
                        ));
                    }
                }
            }
            SmtpMessage::Data { content } => {
                if self.code.is_some() || self.command.is_some() {
                    return Err(mismatch(
                        "DATA content came where a command or reply was expected",
                        self.describe(),
                        msg,
                    ));
                }
                let text = String::from_utf8_lossy(content);
                for d in &self.data {
                    match d {
                        DataCheck::Line(t) => {
                            let want = t.render(cx.vars).map_err(|e| mismatch(e, "", msg))?;
                            if !text.split("\r\n").any(|l| l == want) {
                                return Err(mismatch(
                                    format!("the message has no line \"{want}\" (after un-stuffing)"),
                                    format!("a line \"{want}\""),
                                    msg,
                                ));
                            }
                        }
                        DataCheck::Regex(t) => {
                            let re = regex(t)?;
                            if !re.is_match(&text) {
                                return Err(mismatch(
                                    format!("the message does not match /{}/", re.as_str()),
                                    self.describe(),
                                    msg,
                                ));
                            }
                        }
                        DataCheck::File(p) => {
                            let want = std::fs::read(cx.base_dir.join(p))
                                .map_err(|e| mismatch(format!("cannot read {}: {e}", p.display()), "", msg))?;
                            if &want != content {
                                return Err(Mismatch {
                                    message: format!("the message differs from {}", p.display()),
                                    expected: String::from_utf8_lossy(&want).into_owned(),
                                    got: text.into_owned(),
                                });
                            }
                        }
                    }
                }
            }
        }
        apply_captures(&self.captures, msg, self.describe())
    }

    fn templates(&self) -> Vec<&Template> {
        let mut t: Vec<&Template> = self.text.iter().chain(self.args.iter()).collect();
        for d in &self.data {
            if let DataCheck::Line(x) | DataCheck::Regex(x) = d {
                t.push(x);
            }
        }
        t
    }

    fn captures(&self) -> Vec<String> {
        self.captures.iter().map(|(n, _)| n.clone()).collect()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = &self.code {
            parts.push(format!("reply {}", describe_code(c)));
        }
        if let Some(c) = &self.command {
            parts.push(format!("command {}", c.join(" or ")));
        }
        if let Some(t) = &self.text {
            parts.push(format!("a line matching /{}/", t.as_literal().unwrap_or("..")));
        }
        if self.multiline == Some(true) {
            parts.push("multi-line".into());
        }
        for d in &self.data {
            parts.push(match d {
                DataCheck::Line(t) => format!("DATA with the line \"{}\"", t.as_literal().unwrap_or("..")),
                DataCheck::Regex(_) => "DATA matching a regex".into(),
                DataCheck::File(p) => format!("DATA equal to {}", p.display()),
            });
        }
        parts.join(", ")
    }
}

fn describe_code(c: &CodeMatch) -> String {
    let mut all: Vec<String> = c.codes.iter().map(u16::to_string).collect();
    all.extend(c.classes.iter().map(|k| format!("{k}xx")));
    all.join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(buf: &[u8]) -> (u16, Vec<String>, usize, Vec<Finding>) {
        match ReplyCodec.decode(buf, false).unwrap() {
            Frame::Message(m, used) => match m.detail.as_ref().unwrap().downcast_ref::<SmtpMessage>().unwrap() {
                SmtpMessage::Reply { code, lines } => (*code, lines.clone(), used, m.findings),
                _ => panic!(),
            },
            Frame::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn multi_line_replies_frame_whole() {
        let (code, lines, used, f) = reply(b"250-hamburger.edu\r\n250-SIZE 1000\r\n250 HELP\r\n221 bye\r\n");
        assert_eq!((code, lines.len(), used, f.len()), (250, 3, 44, 0));
        assert_eq!(lines[1], "SIZE 1000");
        assert!(matches!(
            ReplyCodec.decode(b"250-hamburger.edu\r\n250-SI", false).unwrap(),
            Frame::Incomplete
        ));
    }

    #[test]
    fn free_text_bare_code_and_findings() {
        let (code, lines, _, _) = reply(b"250\r\n");
        assert_eq!((code, lines), (250, vec![String::new()]));
        let (_, _, _, f) = reply(b"250-a\r\n251 b\r\n");
        assert_eq!(f[0].level, Level::Must);
        let (_, _, _, f) = reply(b"220 hi\n");
        assert_eq!(f[0].level, Level::Should);
        assert!(ReplyCodec.decode(b"hello\r\n", false).is_err());
        assert!(ReplyCodec.decode(b"250+x\r\n", false).is_err());
        assert!(ReplyCodec.decode(b"250-a\r\n", true).is_err());
    }

    fn frame(c: &mut CommandCodec, buf: &[u8]) -> (SmtpMessage, usize) {
        match c.decode(buf, false).unwrap() {
            Frame::Message(m, used) => (m.detail.unwrap().downcast_ref::<SmtpMessage>().unwrap().clone(), used),
            Frame::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn data_content_after_354_is_one_unstuffed_message() {
        let mut c = CommandCodec::default();
        let (m, used) = frame(&mut c, b"mail FROM:<a@b>\r\n");
        assert!(matches!(m, SmtpMessage::Command { ref verb, ref args } if verb == "MAIL" && args == "FROM:<a@b>"));
        assert_eq!(used, 17);
        frame(&mut c, b"DATA\r\n");
        c.peer_sent(b"354 go ahead\r\n");
        let stream = b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n";
        let (m, used) = frame(&mut c, stream);
        let SmtpMessage::Data { content } = m else { panic!() };
        assert_eq!(content, b"Subject: x\r\n\r\n.leading dot\r\n");
        assert_eq!(used, 32);
        let (m, _) = frame(&mut c, &stream[used..]);
        assert!(matches!(m, SmtpMessage::Command { ref verb, .. } if verb == "QUIT"));
    }

    #[test]
    fn data_refused_stays_in_command_mode_and_lf_dot_lf_is_not_an_end() {
        let mut c = CommandCodec::default();
        frame(&mut c, b"DATA\r\n");
        c.peer_sent(b"503 need RCPT\r\n");
        let (m, _) = frame(&mut c, b"QUIT\r\n");
        assert!(matches!(m, SmtpMessage::Command { .. }));
        frame(&mut c, b"DATA\r\n");
        c.peer_sent(b"354-first\r\n354 go\r\n");
        assert!(matches!(c.decode(b"body\n.\n", false).unwrap(), Frame::Incomplete));
        assert!(c.decode(b"body\n.\n", true).is_err());
        // Split at every position, the end is found once it has all arrived.
        let full = b"a\r\n..b\r\n.\r\n";
        for cut in 0..full.len() {
            let mut c = CommandCodec {
                in_data: true,
                ..CommandCodec::default()
            };
            assert!(matches!(c.decode(&full[..cut], false).unwrap(), Frame::Incomplete), "cut {cut}");
        }
    }
}
