//! POP3 (RFC 1939, RFC 2449): `+OK`/`-ERR` responses, multi-line bodies ending in `.`, byte-stuffing.
//!
//! Whether a `+OK` opens a multi-line body depends on the command it answers (LIST and UIDL
//! without an argument, RETR, TOP, CAPA), which the response codec learns from `peer_sent`.
//! Structured expect keys: `status` (+OK or -ERR), `text` (a regex on the status line),
//! `multiline`, `body` (after un-stuffing: `file`, `line`, `regex`, `lines`, `length`) and
//! `capture` (`{ var: regex-with-a-group }` over the status line and body).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use regex::Regex;

use super::text::{apply_captures, line, mismatch, parse_captures};
use super::{
    escape_bytes, Codec, CodecError, Direction, Exchange, Finding, Frame, Level, Message, Mismatch, Protocol, RenderCx, StructuredExpect,
};
use crate::suite::{Data, LoadCx, Node, Template, Transport};

const MAX_BODY: usize = 64 << 20;

/// The `pop3` protocol.
pub struct Pop3;

/// A parsed POP3 response or command.
#[derive(Debug, Clone)]
pub enum Pop3Message {
    /// A server response.
    Response {
        /// `+OK` (true) or `-ERR`.
        ok: bool,
        /// The text after the status indicator.
        text: String,
        /// The multi-line body after un-stuffing (CRLF endings), if any.
        body: Option<Vec<u8>>,
    },
    /// A SASL continuation request (`+ base64`) during AUTH (RFC 5034 §4).
    Continuation {
        /// The text after `+ `.
        text: String,
    },
    /// A client command.
    Command {
        /// The keyword, upper-cased.
        keyword: String,
        /// The arguments.
        args: Vec<String>,
    },
}

impl Protocol for Pop3 {
    fn conversation_rules(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        let mut out = Vec::new();
        // The greeting, then one response per command (RFC 1939 §3, §4).
        let (mut asked, mut responses) = (1usize, 0usize);
        for ex in conv {
            let Exchange::Message(dir, m) = ex else { continue };
            match (dir, m.detail.as_ref().and_then(|d| d.downcast_ref::<Pop3Message>())) {
                (Direction::ClientToServer, Some(_)) => asked += 1,
                (Direction::ServerToClient, Some(Pop3Message::Response { ok, .. })) => {
                    responses += 1;
                    if responses == 1 && !ok {
                        out.push(Finding {
                            level: Level::Must,
                            rule: "RFC 1939 §4",
                            text: "the greeting is -ERR, not +OK".into(),
                        });
                    } else if responses > asked {
                        out.push(Finding {
                            level: Level::Must,
                            rule: "RFC 1939 §3",
                            text: format!(
                                "response {responses} ({}) answers no command (an unterminated or unstuffed multi-line body reads this way)",
                                m.text
                            ),
                        });
                        break;
                    }
                }
                (Direction::ServerToClient, Some(Pop3Message::Continuation { .. })) => responses += 1,
                _ => {}
            }
        }
        out
    }

    fn name(&self) -> &'static str {
        "pop3"
    }
    fn transport(&self) -> Transport {
        Transport::Tcp
    }
    fn line_ending(&self) -> &'static [u8] {
        b"\r\n"
    }
    fn codec(&self, dir: Direction) -> Box<dyn Codec> {
        match dir {
            Direction::ServerToClient => Box::new(ResponseCodec::default()),
            Direction::ClientToServer => Box::new(CommandCodec),
        }
    }
    fn expect_keys(&self) -> &'static [&'static str] {
        &["status", "text", "multiline", "body"]
    }
    fn parse_expect(&self, node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
        parse_expect(node, cx)
    }
}

/// Frames responses; knows which ones carry a multi-line body from the commands sent.
#[derive(Default)]
pub struct ResponseCodec {
    /// For each command sent and not yet answered: does a +OK to it carry a body?
    pending: VecDeque<bool>,
    cmd_buf: Vec<u8>,
    greeted: bool,
    /// Inside an AUTH exchange: the client's lines are SASL responses, not commands.
    sasl: bool,
}

/// Whether a +OK to this command line is multi-line (RFC 1939 §5, RFC 2449 §5).
fn multi_line(cmd: &str) -> bool {
    let mut words = cmd.split_whitespace();
    let kw = words.next().unwrap_or("").to_ascii_uppercase();
    let has_arg = words.next().is_some();
    match kw.as_str() {
        "RETR" | "TOP" | "CAPA" => true,
        // AUTH without a mechanism lists the mechanisms (a common extension; RFC 5034 leaves it out).
        "LIST" | "UIDL" | "AUTH" => !has_arg,
        _ => false,
    }
}

impl Codec for ResponseCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let closed = |what: &str| CodecError {
            offset: buf.len(),
            reason: format!("the connection closed in the middle of {what}"),
        };
        let Some((first, mut pos, lf)) = line(buf)? else {
            return if eof && !buf.is_empty() {
                Err(closed("a response"))
            } else {
                Ok(Frame::Incomplete)
            };
        };
        if self.greeted && (first == b"+" || first.starts_with(b"+ ")) {
            // RFC 5034 §4: the server asks for the next SASL response; the AUTH is still pending.
            self.sasl = true;
            let text = String::from_utf8_lossy(first.get(2..).unwrap_or(&[])).into_owned();
            return Ok(Frame::Message(
                Message {
                    text: format!("+ {text}"),
                    summary: format!("+ {text}").trim_end().to_string(),
                    findings: Vec::new(),
                    detail: Some(Arc::new(Pop3Message::Continuation { text })),
                },
                pos,
            ));
        }
        let (ok, rest) = if let Some(r) = first.strip_prefix(b"+OK") {
            (true, r)
        } else if let Some(r) = first.strip_prefix(b"-ERR") {
            (false, r)
        } else {
            return Err(CodecError {
                offset: 0,
                reason: format!("a POP3 response starts with +OK or -ERR: \"{}\"", escape_bytes(first, 120)),
            });
        };
        let mut findings = Vec::new();
        if lf {
            findings.push(Finding {
                level: Level::Should,
                rule: "RFC 1939 §3",
                text: "a line ends in a bare LF; POP3 lines end in CRLF".into(),
            });
        }
        if !rest.is_empty() && rest[0] != b' ' {
            findings.push(Finding {
                level: Level::Should,
                rule: "RFC 1939 §3",
                text: "no space after the status indicator".into(),
            });
        }
        let text = String::from_utf8_lossy(rest).trim_start().to_string();
        let wants_body = if self.greeted {
            self.pending.front().copied().unwrap_or(false)
        } else {
            false
        };
        let mut body = None;
        if ok && wants_body {
            let mut b = Vec::new();
            loop {
                let Some((l, used, _)) = line(&buf[pos..])? else {
                    if buf.len() > MAX_BODY {
                        return Err(CodecError {
                            offset: MAX_BODY,
                            reason: "a multi-line response over the size limit".into(),
                        });
                    }
                    return if eof {
                        Err(closed("a multi-line response (no line with only \".\")"))
                    } else {
                        Ok(Frame::Incomplete)
                    };
                };
                pos += used;
                if l == b"." {
                    break;
                }
                if l.starts_with(b".")
                    && !l.starts_with(b"..")
                    && findings.iter().all(|f: &Finding| f.rule != "RFC 1939 §3 (byte-stuffing)")
                {
                    findings.push(Finding {
                        level: Level::Must,
                        rule: "RFC 1939 §3 (byte-stuffing)",
                        text: format!("a line beginning with \".\" is not byte-stuffed: \"{}\"", escape_bytes(l, 80)),
                    });
                }
                b.extend_from_slice(l.strip_prefix(b".").unwrap_or(l));
                b.extend_from_slice(b"\r\n");
            }
            body = Some(b);
        }
        if self.greeted {
            self.pending.pop_front();
        }
        self.greeted = true;
        self.sasl = false;
        let status = if ok { "+OK" } else { "-ERR" };
        let mut summary = format!("{status} {text}").trim_end().to_string();
        let mut full_text = summary.clone();
        if let Some(b) = &body {
            let lines = b.split(|&c| c == b'\n').count() - 1;
            summary.push_str(&format!("\n  ({lines} lines, {} bytes): \"{}\"", b.len(), escape_bytes(b, 200)));
            full_text.push('\n');
            full_text.push_str(&String::from_utf8_lossy(b));
        }
        Ok(Frame::Message(
            Message {
                text: full_text,
                summary,
                findings,
                detail: Some(Arc::new(Pop3Message::Response { ok, text, body })),
            },
            pos,
        ))
    }

    fn peer_sent(&mut self, bytes: &[u8]) {
        self.cmd_buf.extend_from_slice(bytes);
        while let Some(i) = self.cmd_buf.iter().position(|&b| b == b'\n') {
            let l: Vec<u8> = self.cmd_buf.drain(..=i).collect();
            // A SASL response answers a continuation; it is not a command awaiting a response of its own.
            if !self.sasl {
                self.pending.push_back(multi_line(&String::from_utf8_lossy(&l)));
            }
        }
    }
}

/// Frames client command lines.
pub struct CommandCodec;

impl Codec for CommandCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let Some((l, used, _)) = line(buf)? else {
            if eof && !buf.is_empty() {
                return Err(CodecError {
                    offset: buf.len(),
                    reason: "the connection closed in the middle of a command".into(),
                });
            }
            return Ok(Frame::Incomplete);
        };
        let text = String::from_utf8_lossy(l).into_owned();
        let mut words = text.split_whitespace();
        let keyword = words.next().unwrap_or("").to_ascii_uppercase();
        let args = words.map(str::to_string).collect();
        let summary = format!("\"{}\"", escape_bytes(l, 200));
        Ok(Frame::Message(
            Message {
                text,
                summary,
                findings: Vec::new(),
                detail: Some(Arc::new(Pop3Message::Command { keyword, args })),
            },
            used,
        ))
    }
}

#[derive(Debug, Default)]
struct BodyCheck {
    file: Option<PathBuf>,
    lines_exact: Vec<Template>,
    regex: Option<Template>,
    count: Option<usize>,
    length: Option<usize>,
}

/// Checks on a POP3 response.
#[derive(Debug)]
struct Pop3Expect {
    ok: Option<bool>,
    /// `status: +`: a SASL continuation request.
    continuation: bool,
    text: Option<Template>,
    multiline: Option<bool>,
    body: Option<BodyCheck>,
    captures: Vec<(String, Regex)>,
}

fn parse_expect(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    let f = cx.fields(node, &["status", "text", "multiline", "body", "capture"], "a POP3 expect")?;
    let mut continuation = false;
    let ok = match f.get("status") {
        None => None,
        Some(n) => match n.as_str().map(|s| s.to_ascii_uppercase()) {
            Some(s) if s == "+OK" || s == "OK" => Some(true),
            Some(s) if s == "-ERR" || s == "ERR" => Some(false),
            Some(s) if s == "+" => {
                continuation = true;
                None
            }
            _ => {
                cx.err_help(n, "status is +OK, -ERR or + (a SASL continuation)", "e.g. status: +OK");
                return None;
            }
        },
    };
    let text = match f.get("text") {
        Some(n) => Some(cx.regex(n)?),
        None => None,
    };
    let multiline = match f.get("multiline") {
        Some(n) => Some(cx.boolean(n, "multiline")?),
        None => None,
    };
    let body = match f.get("body") {
        None => None,
        Some(b) => {
            let bf = cx.fields(b, &["file", "line", "lines", "regex", "length"], "a body check")?;
            let mut check = BodyCheck::default();
            if let Some(p) = bf.get("file") {
                check.file = Some(PathBuf::from(cx.string(p, "file")?));
            }
            if let Some(l) = bf.get("line") {
                match &l.data {
                    Data::Seq(items) => {
                        for i in items {
                            check.lines_exact.push(cx.template(i, "a line")?);
                        }
                    }
                    _ => check.lines_exact.push(cx.template(l, "line")?),
                }
            }
            if let Some(r) = bf.get("regex") {
                check.regex = Some(cx.regex(r)?);
            }
            if let Some(n) = bf.get("lines") {
                check.count = Some(cx.number(n, "lines")?);
            }
            if let Some(n) = bf.get("length") {
                check.length = Some(cx.number(n, "length")?);
            }
            Some(check)
        }
    };
    let captures = match f.get("capture") {
        Some(c) => parse_captures(c, cx, "size: '^\\+OK (\\d+)'")?,
        None => Vec::new(),
    };
    Some(Box::new(Pop3Expect {
        ok,
        continuation,
        text,
        multiline,
        body,
        captures,
    }))
}

impl StructuredExpect for Pop3Expect {
    fn check(&self, msg: &Message, cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        let detail = msg.detail.as_ref().and_then(|d| d.downcast_ref::<Pop3Message>());
        if let Some(Pop3Message::Continuation { .. }) = detail {
            return match self.continuation {
                true => Ok(Vec::new()),
                false => Err(mismatch("a SASL continuation request (+) came, not a status", self.describe(), msg)),
            };
        }
        let Some(Pop3Message::Response { ok, text, body }) = detail else {
            return Err(mismatch("not a POP3 response", self.describe(), msg));
        };
        if self.continuation {
            return Err(mismatch("expected a SASL continuation request (+)", self.describe(), msg));
        }
        let regex = |t: &Template| -> Result<Regex, Mismatch> {
            let p = t.render_regex(cx.vars).map_err(|e| mismatch(e, "", msg))?;
            Regex::new(&p).map_err(|e| mismatch(e.to_string(), "", msg))
        };
        if let Some(want) = self.ok {
            if want != *ok {
                let (w, g) = if want { ("+OK", "-ERR") } else { ("-ERR", "+OK") };
                return Err(mismatch(format!("{g}, expected {w}"), self.describe(), msg));
            }
        }
        if let Some(t) = &self.text {
            let re = regex(t)?;
            if !re.is_match(text) {
                return Err(mismatch(
                    format!("the status text \"{text}\" does not match /{}/", re.as_str()),
                    self.describe(),
                    msg,
                ));
            }
        }
        if let Some(ml) = self.multiline {
            if ml != body.is_some() {
                return Err(mismatch(
                    if ml {
                        "expected a multi-line response"
                    } else {
                        "expected a one-line response"
                    },
                    self.describe(),
                    msg,
                ));
            }
        }
        if let Some(check) = &self.body {
            let Some(b) = body else {
                return Err(mismatch("expected a multi-line body", self.describe(), msg));
            };
            let text = String::from_utf8_lossy(b);
            let lines: Vec<&str> = text
                .strip_suffix("\r\n")
                .unwrap_or(&text)
                .split("\r\n")
                .filter(|_| !b.is_empty())
                .collect();
            if let Some(p) = &check.file {
                let want =
                    std::fs::read(cx.base_dir.join(p)).map_err(|e| mismatch(format!("cannot read {}: {e}", p.display()), "", msg))?;
                if &want != b {
                    return Err(Mismatch {
                        message: format!("the body differs from {} (after un-stuffing)", p.display()),
                        expected: String::from_utf8_lossy(&want).into_owned(),
                        got: text.into_owned(),
                    });
                }
            }
            for l in &check.lines_exact {
                let want = l.render(cx.vars).map_err(|e| mismatch(e, "", msg))?;
                if !lines.contains(&want.as_str()) {
                    return Err(Mismatch {
                        message: format!("the body has no line \"{want}\" (after un-stuffing)"),
                        expected: format!("a line \"{want}\""),
                        got: lines.join("\n"),
                    });
                }
            }
            if let Some(r) = &check.regex {
                let re = regex(r)?;
                if !re.is_match(&text) {
                    return Err(mismatch(format!("the body does not match /{}/", re.as_str()), self.describe(), msg));
                }
            }
            if let Some(n) = check.count {
                if lines.len() != n {
                    return Err(Mismatch {
                        message: format!("the body has {} lines, expected {n}", lines.len()),
                        expected: format!("{n} lines"),
                        got: lines.join("\n"),
                    });
                }
            }
            if let Some(n) = check.length {
                if b.len() != n {
                    return Err(mismatch(
                        format!("the body has {} bytes, expected {n}", b.len()),
                        format!("{n} bytes"),
                        msg,
                    ));
                }
            }
        }
        apply_captures(&self.captures, msg, self.describe())
    }

    fn templates(&self) -> Vec<&Template> {
        let mut t: Vec<&Template> = self.text.iter().collect();
        if let Some(b) = &self.body {
            t.extend(b.lines_exact.iter());
            t.extend(b.regex.iter());
        }
        t
    }

    fn captures(&self) -> Vec<String> {
        self.captures.iter().map(|(n, _)| n.clone()).collect()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.ok {
            Some(true) => parts.push("+OK".to_string()),
            Some(false) => parts.push("-ERR".to_string()),
            None => {}
        }
        if let Some(t) = &self.text {
            parts.push(format!("text matching /{}/", t.as_literal().unwrap_or("..")));
        }
        if let Some(b) = &self.body {
            if let Some(p) = &b.file {
                parts.push(format!("body equal to {}", p.display()));
            }
            for l in &b.lines_exact {
                parts.push(format!("a body line \"{}\"", l.as_literal().unwrap_or("..")));
            }
            if let Some(n) = b.count {
                parts.push(format!("{n} body lines"));
            }
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(c: &mut ResponseCodec, buf: &[u8], eof: bool) -> (bool, String, Option<Vec<u8>>, usize, Vec<Finding>) {
        match c.decode(buf, eof).unwrap() {
            Frame::Message(m, used) => match m.detail.as_ref().unwrap().downcast_ref::<Pop3Message>().unwrap() {
                Pop3Message::Response { ok, text, body } => (*ok, text.clone(), body.clone(), used, m.findings),
                _ => panic!(),
            },
            Frame::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn greeting_then_multi_line_list_per_the_seeds() {
        let mut c = ResponseCodec::default();
        let (ok, text, body, _, _) = resp(&mut c, b"+OK POP3 server ready\r\n", false);
        assert!(ok && text == "POP3 server ready" && body.is_none());
        c.peer_sent(b"list\r\nretr 1\r\nstat\r\n");
        let (_, _, body, used, _) = resp(&mut c, b"+OK 2 messages\r\n1 498\r\n2 912\r\n.\r\n", false);
        assert_eq!((body.unwrap(), used), (b"1 498\r\n2 912\r\n".to_vec(), 33));
        let (_, _, body, _, f) = resp(&mut c, b"+OK 3 octets\r\n..x\r\n.\r\n", false);
        assert_eq!((body.unwrap(), f.len()), (b".x\r\n".to_vec(), 0));
        let (_, text, body, _, _) = resp(&mut c, b"+OK 2 1410\r\n", false);
        assert_eq!((text.as_str(), body), ("2 1410", None));
    }

    #[test]
    fn sasl_continuations_keep_the_auth_pending() {
        let mut c = ResponseCodec::default();
        resp(&mut c, b"+OK hi\r\n", false);
        c.peer_sent(b"AUTH PLAIN\r\n");
        let Frame::Message(m, used) = c.decode(b"+ \r\n", false).unwrap() else {
            panic!()
        };
        assert!(matches!(
            m.detail.as_deref().and_then(|d| d.downcast_ref::<Pop3Message>()),
            Some(Pop3Message::Continuation { .. })
        ));
        assert_eq!(used, 4);
        c.peer_sent(b"AGJvYgBodW5ncnk=\r\n");
        let (ok, _, body, _, _) = resp(&mut c, b"+OK logged in\r\n", false);
        assert!(ok && body.is_none());
        c.peer_sent(b"LIST\r\n");
        let (_, _, body, _, _) = resp(&mut c, b"+OK 1 messages\r\n1 498\r\n.\r\n", false);
        assert_eq!(body.unwrap(), b"1 498\r\n");
    }

    #[test]
    fn errors_never_have_bodies_and_list_with_argument_is_one_line() {
        let mut c = ResponseCodec::default();
        resp(&mut c, b"+OK hi\r\n", false);
        c.peer_sent(b"RETR 9\r\nLIST 1\r\n");
        let (ok, _, body, _, _) = resp(&mut c, b"-ERR no such message\r\n", false);
        assert!(!ok && body.is_none());
        let (_, text, body, _, _) = resp(&mut c, b"+OK 1 498\r\n", false);
        assert_eq!((text.as_str(), body), ("1 498", None));
    }

    #[test]
    fn unstuffed_dot_lines_are_must_findings_and_bodies_wait_for_the_dot() {
        let mut c = ResponseCodec::default();
        resp(&mut c, b"+OK hi\r\n", false);
        c.peer_sent(b"RETR 1\r\n");
        let full = b"+OK\r\n.bad\r\nok\r\n.\r\n";
        for cut in 0..full.len() {
            let mut c2 = ResponseCodec {
                greeted: true,
                pending: [true].into(),
                ..ResponseCodec::default()
            };
            assert!(matches!(c2.decode(&full[..cut], false).unwrap(), Frame::Incomplete), "cut {cut}");
        }
        let (_, _, body, _, f) = resp(&mut c, full, false);
        assert_eq!(body.unwrap(), b"bad\r\nok\r\n");
        assert_eq!(f[0].level, Level::Must);
        assert!(ResponseCodec::default().decode(b"OK ready\r\n", false).is_err());
    }
}
