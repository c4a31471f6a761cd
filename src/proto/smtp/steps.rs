//! The SMTP vocabulary.
//!
//! Structured expect keys: on replies `code` (250, [250, 251], 2xx), `text` (a regex any reply
//! line must match), `multiline`; on commands (the harness playing the server) `command`, `args`
//! (a regex), and `data` (the message after un-stuffing: `line`, `regex`, `file`; `data: {}` takes
//! any message, for a client that sends its own); `capture`
//! takes `{ var: regex-with-a-group }` over the reply or command text.

use regex::Regex;

use super::codec::SmtpMessage;
use crate::proto::steps::{apply_captures, mismatch, parse_captures};
use crate::proto::{Message, Mismatch, RenderCx, Steps, StructuredExpect};
use crate::syntax::{Data, Fixture, LoadCx, Node, Template};

/// The structured `expect:` keys of SMTP.
pub static STEPS: Steps = Steps {
    send_keys: &[],
    expect_keys: &["code", "text", "absent", "multiline", "command", "args", "data"],
    parse_send: Steps::NONE.parse_send,
    parse_expect,
};

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
    File(Fixture),
}

/// Checks on a reply, a command or DATA content.
#[derive(Debug)]
struct SmtpExpect {
    code: Option<CodeMatch>,
    text: Option<Template>,
    /// No line of the reply matches (an extension a server must not offer any more).
    absent: Option<Template>,
    multiline: Option<bool>,
    command: Option<Vec<String>>,
    args: Option<Template>,
    /// DATA content is expected (with `data` checks, or none for any message).
    wants_data: bool,
    data: Vec<DataCheck>,
    captures: Vec<(String, Regex)>,
}

fn parse_expect(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    let f = cx.fields(
        node,
        &["code", "text", "absent", "multiline", "command", "args", "data", "capture"],
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
    let text = cx.optional(&f, "text", LoadCx::regex)?;
    let absent = cx.optional(&f, "absent", LoadCx::regex)?;
    let multiline = cx.optional(&f, "multiline", |cx, n| cx.boolean(n, "multiline"))?;
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
    let args = cx.optional(&f, "args", LoadCx::regex)?;
    let mut data = Vec::new();
    let wants_data = f.get("data").is_some();
    if let Some(d) = f.get("data") {
        let df = cx.fields(d, &["line", "regex", "file"], "a DATA check")?;
        if let Some(l) = df.get("line") {
            data.push(DataCheck::Line(cx.template(l, "line")?));
        }
        if let Some(r) = df.get("regex") {
            data.push(DataCheck::Regex(cx.regex(r)?));
        }
        if let Some(p) = df.get("file") {
            data.push(DataCheck::File(cx.fixture(p, "file")?));
        }
    }
    let captures = match f.get("capture") {
        Some(c) => parse_captures(c, cx, "id: 'queued as (\\w+)'")?,
        None => Vec::new(),
    };
    Some(Box::new(SmtpExpect {
        code,
        text,
        absent,
        multiline,
        command,
        args,
        wants_data,
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
            SmtpMessage::Reply { code, lines, .. } => {
                if self.command.is_some() || self.wants_data {
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
                if let Some(t) = &self.absent {
                    let re = regex(t)?;
                    if let Some(l) = lines.iter().find(|l| re.is_match(l)) {
                        return Err(mismatch(
                            format!("the reply line \"{l}\" matches /{}/, which must not be there", re.as_str()),
                            self.describe(),
                            msg,
                        ));
                    }
                }
            }
            SmtpMessage::Command { verb, args } => {
                if self.code.is_some() {
                    return Err(mismatch("a client command came where a reply was expected", self.describe(), msg));
                }
                if self.wants_data {
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
            SmtpMessage::Data { content } | SmtpMessage::Chunk { content, .. } => {
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
                            let want = &p.bytes;
                            if **want != **content {
                                return Err(Mismatch {
                                    message: format!("the message differs from {}", p.display()),
                                    expected: String::from_utf8_lossy(want).into_owned(),
                                    got: text.into_owned(),
                                    at: None,
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
        if let Some(t) = &self.absent {
            parts.push(format!("no line matching /{}/", t.as_literal().unwrap_or("..")));
        }
        if self.multiline == Some(true) {
            parts.push("multi-line".into());
        }
        if self.wants_data && self.data.is_empty() {
            parts.push("DATA content".into());
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
