//! The POP3 vocabulary. Structured expect keys: `status` (+OK or -ERR), `text` (a regex on the
//! status line), `multiline`, `body` (after un-stuffing: `file`, `line`, `regex`, `lines`, `length`)
//! and `capture` (`{ var: regex-with-a-group }` over the status line and body).

use regex::Regex;

use super::codec::Pop3Message;
use crate::proto::steps::{apply_captures, mismatch, parse_captures};
use crate::proto::{Message, Mismatch, RenderCx, Steps, StructuredExpect};
use crate::syntax::{Data, Fixture, LoadCx, Node, Template};

/// The structured `expect:` keys of POP3.
pub static STEPS: Steps = Steps {
    send_keys: &[],
    expect_keys: &["status", "text", "multiline", "body"],
    parse_send: Steps::NONE.parse_send,
    parse_expect,
};

#[derive(Debug, Default)]
struct BodyCheck {
    file: Option<Fixture>,
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
    let text = cx.optional(&f, "text", LoadCx::regex)?;
    let multiline = cx.optional(&f, "multiline", |cx, n| cx.boolean(n, "multiline"))?;
    let body = match f.get("body") {
        None => None,
        Some(b) => {
            let bf = cx.fields(b, &["file", "line", "lines", "regex", "length"], "a body check")?;
            let mut check = BodyCheck::default();
            if let Some(p) = bf.get("file") {
                check.file = Some(cx.fixture(p, "file")?);
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
        let Some(Pop3Message::Response { ok, text, body, .. }) = detail else {
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
                let want = &p.bytes;
                if **want != **b {
                    return Err(Mismatch {
                        message: format!("the body differs from {} (after un-stuffing)", p.display()),
                        expected: String::from_utf8_lossy(want).into_owned(),
                        got: text.into_owned(),
                        at: None,
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
                        at: None,
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
                        at: None,
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
