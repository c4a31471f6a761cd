//! Pieces the line-oriented mail codecs (SMTP, POP3) share: splitting a line, regex captures.

use regex::Regex;

use super::{CodecError, Message, Mismatch};
use crate::suite::{Data, LoadCx, Node};

/// Longest line framed; anything longer is a flood, not a line.
pub const MAX_LINE: usize = 64 * 1024;

/// One line: its bytes without the ending, the bytes used, and whether it ended in a bare LF.
pub type Line<'a> = (&'a [u8], usize, bool);

/// Splits off the first line of `buf` (LF-terminated; a CR before the LF is dropped).
pub fn line(buf: &[u8]) -> Result<Option<Line<'_>>, CodecError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let raw = &buf[..i];
            Ok(Some(match raw.strip_suffix(b"\r") {
                Some(l) => (l, i + 1, false),
                None => (raw, i + 1, true),
            }))
        }
        None if buf.len() > MAX_LINE => Err(CodecError {
            offset: MAX_LINE,
            reason: format!("no line ending within {MAX_LINE} bytes"),
        }),
        None => Ok(None),
    }
}

/// Parses `capture: { var: regex-with-a-group }`.
pub fn parse_captures(c: &Node, cx: &mut LoadCx, example: &str) -> Option<Vec<(String, Regex)>> {
    let Data::Map(pairs) = &c.data else {
        cx.err_help(c, "capture must be a mapping", format!("e.g. capture: {{ {example} }}"));
        return None;
    };
    let mut out = Vec::new();
    for (k, v) in pairs {
        let name = cx.string(k, "a variable name")?;
        match v.as_str().map(Regex::new) {
            Some(Ok(re)) if re.captures_len() >= 2 => out.push((name, re)),
            _ => {
                cx.err_help(
                    v,
                    "a capture needs a valid regex with a group",
                    "put what to keep in parentheses: '(\\d+) octets'",
                );
                return None;
            }
        }
    }
    Some(out)
}

/// Applies captures to a message's text.
pub fn apply_captures(captures: &[(String, Regex)], msg: &Message, expected: String) -> Result<Vec<(String, String)>, Mismatch> {
    let mut out = Vec::new();
    for (name, re) in captures {
        match re.captures(&msg.text).and_then(|c| c.get(1)) {
            Some(v) => out.push((name.clone(), v.as_str().to_string())),
            None => {
                return Err(mismatch(
                    format!("nothing to capture into '{name}' with /{}/", re.as_str()),
                    expected,
                    msg,
                ))
            }
        }
    }
    Ok(out)
}

/// A mismatch whose "got" is the message as the transcript shows it.
pub fn mismatch(message: impl Into<String>, expected: impl Into<String>, got: &Message) -> Mismatch {
    Mismatch {
        message: message.into(),
        expected: expected.into(),
        got: got.summary.clone(),
    }
}
