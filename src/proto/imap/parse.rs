//! IMAP wire syntax (RFC 9051 §2.2, §4, §7, §9): lines with literals, and a lenient parser for
//! the responses in them.
//!
//! Framing is strict (a peer that cannot be framed cannot be tested further); the token parser is
//! lenient and reports what it could not make sense of, so a response with a stray parenthesis is
//! still shown and matched as text while the structure problem becomes a SHOULD finding.

use std::ops::Range;

use crate::proto::{escape_bytes, CodecError};

/// Longest line (without its literals) the codec frames.
pub const MAX_LINE: usize = 64 << 10;
/// Largest literal the codec accepts; the same cap as a connection's buffer.
pub const MAX_LITERAL: usize = 16 << 20;
/// Literals longer than this are cut short in summaries.
const PREVIEW: usize = 60;

/// One response or command as it was sent: text with the literals between its pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Raw {
    /// Text pieces without line endings or literal markers; one more than `literals`.
    pub texts: Vec<Vec<u8>>,
    /// Each literal's marker as written (`{11}`, `{11+}`, `~{11}`).
    pub markers: Vec<String>,
    /// Each literal's octets.
    pub literals: Vec<Vec<u8>>,
    /// Whether some line ended in a bare LF.
    pub bare_lf: bool,
    /// Bytes of the input used.
    pub len: usize,
}

/// Frames the next response (`client` false) or command from `buf`: a line, and while a line
/// ends in a literal marker, the literal's octets and the line continuing after them.
pub fn scan(buf: &[u8], client: bool) -> Result<Option<Raw>, CodecError> {
    // Ranges first: a big literal arriving in small reads is rescanned often but copied once.
    let mut texts: Vec<Range<usize>> = Vec::new();
    let mut markers = Vec::new();
    let mut literals: Vec<Range<usize>> = Vec::new();
    let mut bare_lf = false;
    let mut pos = 0;
    loop {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            if buf.len() - pos > MAX_LINE {
                return Err(CodecError {
                    offset: pos + MAX_LINE,
                    reason: format!("a line longer than {} KiB", MAX_LINE >> 10),
                });
            }
            return Ok(None);
        };
        if nl > MAX_LINE {
            return Err(CodecError {
                offset: pos + MAX_LINE,
                reason: format!("a line longer than {} KiB", MAX_LINE >> 10),
            });
        }
        let mut end = pos + nl;
        if end > pos && buf[end - 1] == b'\r' {
            end -= 1;
        } else {
            bare_lf = true;
        }
        let next = pos + nl + 1;
        let line = &buf[pos..end];
        match literal_marker(line, client).map_err(|(at, reason)| CodecError { offset: pos + at, reason })? {
            Some(Marker { at, len: n, text }) => {
                texts.push(pos..pos + at);
                markers.push(text);
                if buf.len() < next + n {
                    return Ok(None);
                }
                literals.push(next..next + n);
                pos = next + n;
            }
            None => {
                texts.push(pos..end);
                return Ok(Some(Raw {
                    texts: texts.into_iter().map(|r| buf[r].to_vec()).collect(),
                    markers,
                    literals: literals.into_iter().map(|r| buf[r].to_vec()).collect(),
                    bare_lf,
                    len: next,
                }));
            }
        }
    }
}

/// A literal announced at the end of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// Where the marker starts in the line.
    pub at: usize,
    /// The literal's length in octets.
    pub len: usize,
    /// The marker as written (`{11}`, `{11+}`, `~{11}`).
    pub text: String,
}

/// The literal announced at the end of `line`, if any; a malformed marker is an error with its
/// offset in the line.
pub fn literal_marker(line: &[u8], client: bool) -> Result<Option<Marker>, (usize, String)> {
    if !line.ends_with(b"}") {
        return Ok(None);
    }
    let Some(open) = line.iter().rposition(|&b| b == b'{') else {
        return Ok(None);
    };
    let inner = &line[open + 1..line.len() - 1];
    // Text that merely ends in braces ("{here}") is not a literal; digits and '+' are one.
    if !inner.iter().all(|b| b.is_ascii_digit() || *b == b'+') {
        return Ok(None);
    }
    let (digits, plus) = match inner.strip_suffix(b"+") {
        Some(d) => (d, true),
        None => (inner, false),
    };
    let start = if open > 0 && line[open - 1] == b'~' { open - 1 } else { open };
    let marker = String::from_utf8_lossy(&line[start..]).into_owned();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err((
            open,
            format!("bad literal syntax '{marker}' (a literal is {{n}} then CRLF and n octets)"),
        ));
    }
    if plus && !client {
        return Err((
            open,
            format!("a non-synchronizing literal '{marker}' from the server (only clients send {{n+}})"),
        ));
    }
    let n = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<usize>().ok())
        .filter(|n| *n <= MAX_LITERAL)
        .ok_or_else(|| (open, format!("literal '{marker}' is larger than {} MiB", MAX_LITERAL >> 20)))?;
    Ok(Some(Marker {
        at: start,
        len: n,
        text: marker,
    }))
}

impl Raw {
    /// The text with literals inline after their markers (lossy UTF-8), from byte `skip` of the
    /// first piece.
    pub fn text_from(&self, skip: usize) -> String {
        let mut s = String::new();
        for (i, t) in self.texts.iter().enumerate() {
            let t = if i == 0 { &t[skip.min(t.len())..] } else { &t[..] };
            s.push_str(&String::from_utf8_lossy(t));
            if let (Some(m), Some(l)) = (self.markers.get(i), self.literals.get(i)) {
                s.push_str(m);
                s.push_str(&String::from_utf8_lossy(l));
            }
        }
        s
    }

    /// One line for transcripts: control characters escaped, long literals cut short.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (i, t) in self.texts.iter().enumerate() {
            s.push_str(&display(t, 400));
            if let (Some(m), Some(l)) = (self.markers.get(i), self.literals.get(i)) {
                if l.len() <= PREVIEW {
                    s.push_str(&format!("{m} \"{}\"", display(l, PREVIEW)));
                } else {
                    s.push_str(&format!(
                        "{m} \"{}…\" ({} bytes)",
                        display(&l[..24], 40).trim_end_matches('\u{fffd}'),
                        l.len()
                    ));
                }
            }
        }
        s
    }
}

/// Text for transcripts and messages: control characters escaped as `escape_bytes` does, but
/// backslashes left alone, since IMAP flags (`\Seen`) are full of them; long text cut short.
pub fn display(b: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(b);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            '\\' => out.push(c),
            c if c.is_control() || c == '\u{fffd}' => out.push_str(&escape_bytes(c.to_string().as_bytes(), 8)),
            c => out.push(c),
        }
    }
    out
}

/// A value in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An atom, including flags (`\Seen`) and section specs (`BODY[HEADER]<0>`).
    Atom(String),
    /// A number.
    Number(u64),
    /// A quoted string, unescaped.
    Quoted(String),
    /// A literal's octets.
    Literal(Vec<u8>),
    /// NIL.
    Nil,
    /// A parenthesized list.
    List(Vec<Token>),
}

impl Token {
    /// The text of a string-like value (atom, quoted, literal, number); None for NIL and lists.
    pub fn string(&self) -> Option<String> {
        match self {
            Token::Atom(a) => Some(a.clone()),
            Token::Number(n) => Some(n.to_string()),
            Token::Quoted(q) => Some(q.clone()),
            Token::Literal(l) => Some(String::from_utf8_lossy(l).into_owned()),
            Token::Nil | Token::List(_) => None,
        }
    }

    /// The octets of a string-like value.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match self {
            Token::Literal(l) => Some(l.clone()),
            other => other.string().map(String::into_bytes),
        }
    }

    /// The value as it would be written (lists in parentheses, strings quoted, literals inline).
    pub fn render(&self) -> String {
        match self {
            Token::Atom(a) => a.clone(),
            Token::Number(n) => n.to_string(),
            Token::Quoted(q) => format!("\"{}\"", q.replace('\\', "\\\\").replace('"', "\\\"")),
            Token::Literal(l) => format!("{{{}}}{}", l.len(), String::from_utf8_lossy(l)),
            Token::Nil => "NIL".into(),
            Token::List(items) => format!("({})", items.iter().map(Token::render).collect::<Vec<_>>().join(" ")),
        }
    }
}

/// Compares tokens as IMAP does: atoms and keywords without regard to case, strings exactly
/// when the expected side is quoted (an atom, quoted string and literal with the same text are
/// the same astring), and a list of atoms (flags) as a set, since flags have no order.
pub fn same(want: &Token, got: &Token) -> bool {
    match (want, got) {
        (Token::Nil, Token::Nil) => true,
        (Token::Number(a), Token::Number(b)) => a == b,
        (Token::List(a), Token::List(b)) if a.iter().all(|t| matches!(t, Token::Atom(_))) => {
            a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| same(x, y))) && b.iter().all(|y| a.iter().any(|x| same(x, y)))
        }
        (Token::List(a), Token::List(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y)),
        (Token::Atom(a), g) => g.string().is_some_and(|s| s.eq_ignore_ascii_case(a)),
        (w, g) => match (w.bytes(), g.bytes()) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
    }
}

/// A walk over text pieces with literals between them.
struct Cursor<'a> {
    texts: &'a [Vec<u8>],
    literals: &'a [Vec<u8>],
    seg: usize,
    pos: usize,
}

enum At<'a> {
    Byte(u8),
    Literal(&'a [u8]),
    End,
}

impl<'a> Cursor<'a> {
    fn at(&self) -> At<'a> {
        let t = &self.texts[self.seg];
        if self.pos < t.len() {
            At::Byte(t[self.pos])
        } else if let Some(l) = self.literals.get(self.seg) {
            At::Literal(l)
        } else {
            At::End
        }
    }

    fn bump(&mut self) {
        if self.pos < self.texts[self.seg].len() {
            self.pos += 1;
        } else if self.seg < self.literals.len() {
            self.seg += 1;
            self.pos = 0;
        }
    }

    fn skip_spaces(&mut self) {
        while matches!(self.at(), At::Byte(b' ')) {
            self.bump();
        }
    }

    /// Everything from here to the end as text, literals inline.
    fn rest(&mut self) -> String {
        let mut s = String::new();
        loop {
            match self.at() {
                At::End => return s,
                At::Byte(_) => {
                    let t = &self.texts[self.seg][self.pos..];
                    s.push_str(&String::from_utf8_lossy(t));
                    self.pos += t.len();
                }
                At::Literal(l) => {
                    s.push_str(&format!("{{{}}}{}", l.len(), String::from_utf8_lossy(l)));
                    self.bump();
                }
            }
        }
    }
}

const MAX_DEPTH: usize = 64;

/// Parses values up to the end (depth 0) or the closing parenthesis of a list.
fn tokens(cur: &mut Cursor, depth: usize) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    loop {
        cur.skip_spaces();
        match cur.at() {
            At::End if depth > 0 => return Err("a '(' is never closed".into()),
            At::End => return Ok(out),
            At::Byte(b')') if depth == 0 => return Err("a ')' closes nothing".into()),
            At::Byte(b')') => {
                cur.bump();
                return Ok(out);
            }
            At::Byte(b'(') => {
                if depth >= MAX_DEPTH {
                    return Err("lists nested too deeply".into());
                }
                cur.bump();
                out.push(Token::List(tokens(cur, depth + 1)?));
            }
            At::Byte(b'"') => {
                cur.bump();
                out.push(Token::Quoted(quoted(cur)?));
            }
            At::Literal(l) => {
                out.push(Token::Literal(l.to_vec()));
                cur.bump();
            }
            At::Byte(_) => out.push(atom(cur)?),
        }
    }
}

fn quoted(cur: &mut Cursor) -> Result<String, String> {
    let mut s = Vec::new();
    loop {
        match cur.at() {
            At::Byte(b'"') => {
                cur.bump();
                return Ok(String::from_utf8_lossy(&s).into_owned());
            }
            At::Byte(b'\\') => {
                cur.bump();
                match cur.at() {
                    At::Byte(c @ (b'"' | b'\\')) => s.push(c),
                    _ => return Err("a quoted string escapes something other than '\"' or '\\'".into()),
                }
                cur.bump();
            }
            At::Byte(c) => {
                s.push(c);
                cur.bump();
            }
            At::Literal(_) | At::End => return Err("a quoted string is never closed".into()),
        }
    }
}

fn atom(cur: &mut Cursor) -> Result<Token, String> {
    let mut s = Vec::new();
    let mut brackets = 0usize;
    loop {
        match cur.at() {
            // Inside a section spec ("BODY[HEADER.FIELDS (FROM)]") spaces and parentheses belong to the atom.
            At::Byte(b'[') => brackets += 1,
            At::Byte(b']') if brackets > 0 => brackets -= 1,
            At::Byte(b' ' | b'(' | b')' | b'"') if brackets == 0 => break,
            At::Byte(c) if c < 0x20 || c == 0x7f => return Err(format!("a control character 0x{c:02x}")),
            At::Byte(_) => {}
            At::Literal(_) | At::End if brackets > 0 => return Err("a '[' is never closed".into()),
            At::Literal(_) | At::End => break,
        }
        if let At::Byte(c) = cur.at() {
            s.push(c);
        }
        cur.bump();
    }
    let s = String::from_utf8_lossy(&s).into_owned();
    Ok(if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        match s.parse() {
            Ok(n) => Token::Number(n),
            Err(_) => Token::Atom(s),
        }
    } else if s.eq_ignore_ascii_case("NIL") {
        Token::Nil
    } else {
        Token::Atom(s)
    })
}

/// A response code: `[UIDVALIDITY 3857529045]` is name UIDVALIDITY, value 3857529045.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// The code's name, uppercased.
    pub name: String,
    /// What follows the name, trimmed.
    pub value: String,
}

impl Code {
    /// The code as written between the brackets.
    pub fn text(&self) -> String {
        if self.value.is_empty() {
            self.name.clone()
        } else {
            format!("{} {}", self.name, self.value)
        }
    }
}

/// A response's content after `* `, `tag ` or `+ `.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    /// OK, NO, BAD, PREAUTH or BYE (uppercased) for a status response.
    pub status: Option<String>,
    /// The response code of a status response.
    pub code: Option<Code>,
    /// The human-readable text of a status response or continuation request.
    pub human: String,
    /// The values of any other response (`2 EXISTS`, `FLAGS (\Seen)`, `1 FETCH (...)`).
    pub tokens: Vec<Token>,
    /// Why the structure could not be parsed, if it could not.
    pub malformed: Option<String>,
}

impl Body {
    /// The leading number of `2 EXISTS`, `1 FETCH (..)`.
    pub fn number(&self) -> Option<u64> {
        match self.tokens.first() {
            Some(Token::Number(n)) => Some(*n),
            _ => None,
        }
    }

    /// The keyword: EXISTS of `2 EXISTS`, FLAGS of `FLAGS (..)`, the status of a status response.
    pub fn keyword(&self) -> Option<String> {
        if let Some(s) = &self.status {
            return Some(s.clone());
        }
        let i = usize::from(self.number().is_some());
        match self.tokens.get(i) {
            Some(Token::Atom(a)) => Some(a.to_ascii_uppercase()),
            _ => None,
        }
    }
}

/// Status words of status responses (RFC 9051 §7.1).
pub const STATUSES: &[&str] = &["OK", "NO", "BAD", "PREAUTH", "BYE"];

/// Parses a response body from piece 0, byte `skip` of `raw`.
pub fn body(raw: &Raw, skip: usize) -> Body {
    let mut cur = Cursor {
        texts: &raw.texts,
        literals: &raw.literals,
        seg: 0,
        pos: skip.min(raw.texts[0].len()),
    };
    let first = &raw.texts[0][cur.pos..];
    let word_len = first.iter().position(|&b| b == b' ').unwrap_or(first.len());
    let word = String::from_utf8_lossy(&first[..word_len]).to_ascii_uppercase();
    if STATUSES.contains(&word.as_str()) {
        cur.pos += word_len;
        return status_body(word, &mut cur);
    }
    let mut b = Body::default();
    match tokens(&mut cur, 0) {
        Ok(t) => b.tokens = t,
        Err(e) => {
            b.malformed = Some(e);
            return b;
        }
    }
    b.malformed = shape(&b);
    b
}

fn status_body(status: String, cur: &mut Cursor) -> Body {
    let mut b = Body {
        status: Some(status),
        ..Body::default()
    };
    if matches!(cur.at(), At::Byte(b' ')) {
        cur.bump();
    }
    if matches!(cur.at(), At::Byte(b'[')) {
        let t = &cur.texts[cur.seg][cur.pos..];
        match t.iter().position(|&c| c == b']') {
            Some(close) => {
                let inner = String::from_utf8_lossy(&t[1..close]).into_owned();
                let (name, value) = inner.split_once(' ').unwrap_or((&inner, ""));
                b.code = Some(Code {
                    name: name.to_ascii_uppercase(),
                    value: value.trim().to_string(),
                });
                cur.pos += close + 1;
                if matches!(cur.at(), At::Byte(b' ')) {
                    cur.bump();
                }
            }
            None => b.malformed = Some("a response code '[' is never closed".into()),
        }
    }
    b.human = cur.rest();
    b
}

/// What is wrong with the shape of a parsed non-status response, if anything.
fn shape(b: &Body) -> Option<String> {
    match b.tokens.as_slice() {
        [] => Some("an empty response".into()),
        [Token::Number(_)] => Some("a number with no keyword after it (e.g. '2 EXISTS')".into()),
        [Token::Number(_), Token::Atom(k), rest @ ..] if k.eq_ignore_ascii_case("FETCH") => match rest {
            [Token::List(items)] if items.len() % 2 == 0 => None,
            [Token::List(_)] => Some("a FETCH list whose items are not name-value pairs".into()),
            _ => Some("FETCH is not followed by one parenthesized list".into()),
        },
        [Token::Number(_), Token::Atom(k), rest @ ..]
            if ["EXISTS", "EXPUNGE", "RECENT"].iter().any(|w| k.eq_ignore_ascii_case(w)) && !rest.is_empty() =>
        {
            Some(format!("{} takes nothing after it", k.to_ascii_uppercase()))
        }
        [Token::Number(_), other, ..] if !matches!(other, Token::Atom(_)) => Some("a number not followed by a keyword".into()),
        [first, ..] if !matches!(first, Token::Atom(_) | Token::Number(_)) => Some("a response that does not start with a keyword".into()),
        _ => None,
    }
}

/// Whether `tag` is a valid tag (RFC 9051 §9: 1*<any ASTRING-CHAR except "+">).
pub fn valid_tag(tag: &[u8]) -> bool {
    !tag.is_empty() && tag.iter().all(|&c| (0x21..0x7f).contains(&c) && !b"(){%*\"\\+".contains(&c))
}

/// Parses expected response text written in a suite (no literals) into a body.
pub fn parse_text(text: &str) -> Body {
    let raw = Raw {
        texts: vec![text.trim().as_bytes().to_vec()],
        ..Raw::default()
    };
    body(&raw, 0)
}

/// Parses one expected value written in a suite (`498`, `(\\Seen)`, `"text"`, `NIL`).
pub fn parse_value(text: &str) -> Result<Token, String> {
    let texts = vec![text.trim().as_bytes().to_vec()];
    let mut cur = Cursor {
        texts: &texts,
        literals: &[],
        seg: 0,
        pos: 0,
    };
    let mut t = tokens(&mut cur, 0)?;
    match t.len() {
        1 => Ok(t.remove(0)),
        0 => Err("an empty value".into()),
        n => Err(format!("{n} values where one is expected (put a list in parentheses)")),
    }
}

/// The FETCH items of a parsed `n FETCH (..)` response, names uppercased.
pub fn fetch_items(b: &Body) -> Vec<(String, Token)> {
    let mut out = Vec::new();
    if let [Token::Number(_), Token::Atom(k), Token::List(items)] = b.tokens.as_slice() {
        if k.eq_ignore_ascii_case("FETCH") {
            for pair in items.chunks(2) {
                if let [Token::Atom(name), value] = pair {
                    out.push((normalize_item(name), value.clone()));
                }
            }
        }
    }
    out
}

/// A FETCH item name as compared: uppercased, with single spaces.
pub fn normalize_item(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &[u8]) -> Raw {
        scan(s, false).unwrap().unwrap()
    }

    #[test]
    fn frames_lines_and_literals() {
        let r = raw(b"* 1 FETCH (BODY[] {5}\r\nhe\r\no UID 3)\r\nrest");
        assert_eq!(r.literals, vec![b"he\r\no".to_vec()]);
        assert_eq!(r.markers, vec!["{5}".to_string()]);
        assert_eq!(r.len, 37);
        assert_eq!(r.text_from(2), "1 FETCH (BODY[] {5}he\r\no UID 3)");
        let b = body(&r, 2);
        assert_eq!(b.malformed, None);
        let items = fetch_items(&b);
        assert_eq!(items[0], ("BODY[]".into(), Token::Literal(b"he\r\no".to_vec())));
        assert_eq!(items[1], ("UID".into(), Token::Number(3)));
    }

    #[test]
    fn marker_errors_and_text_braces() {
        assert!(scan(b"* OK look {here}\r\n", false).unwrap().is_some());
        let e = scan(b"* 1 FETCH (BODY[] {3+}\r\nabc)\r\n", false).unwrap_err();
        assert!(e.reason.contains("non-synchronizing"), "{e}");
        assert_eq!(e.offset, 18);
        assert!(scan(b"a APPEND x {3+}\r\nabc\r\n", true).unwrap().is_some());
        assert!(scan(b"* x {99999999999999999999}\r\n", false).is_err());
        assert!(scan(b"* x {+}\r\n", true).is_err());
        let r = raw(b"* 1 FETCH (BINARY[] ~{2}\r\nab)\r\n");
        assert_eq!(r.markers, vec!["~{2}".to_string()]);
        assert_eq!(r.texts[0], b"* 1 FETCH (BINARY[] ".to_vec());
    }

    #[test]
    fn long_lines_are_errors() {
        let mut long = vec![b'a'; MAX_LINE + 2];
        assert_eq!(scan(&long, false).unwrap_err().offset, MAX_LINE);
        long.extend_from_slice(b"\r\n");
        assert!(scan(&long, false).is_err());
    }

    #[test]
    fn status_bodies_have_codes_and_text() {
        let b = body(&raw(b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"), 2);
        assert_eq!(b.status.as_deref(), Some("OK"));
        assert_eq!(
            b.code,
            Some(Code {
                name: "UIDVALIDITY".into(),
                value: "3857529045".into()
            })
        );
        assert_eq!(b.human, "UIDs valid");
        let b = body(&raw(b"a1 ok\r\n"), 3);
        assert_eq!((b.status.as_deref(), b.human.as_str()), (Some("OK"), ""));
        let b = body(&raw(b"* OK [PERMANENTFLAGS (\\Seen \\*)] ok\r\n"), 2);
        assert_eq!(b.code.unwrap().value, "(\\Seen \\*)");
    }

    #[test]
    fn tokens_lists_strings_sections() {
        let b = parse_text(r#"LIST (\HasNoChildren) "/" "a \"b\"""#);
        assert_eq!(
            b.tokens,
            vec![
                Token::Atom("LIST".into()),
                Token::List(vec![Token::Atom("\\HasNoChildren".into())]),
                Token::Quoted("/".into()),
                Token::Quoted("a \"b\"".into())
            ]
        );
        let b = parse_text("1 FETCH (BODY[HEADER.FIELDS (FROM TO)]<0> NIL FLAGS ())");
        let items = fetch_items(&b);
        assert_eq!(items[0], ("BODY[HEADER.FIELDS (FROM TO)]<0>".into(), Token::Nil));
        assert_eq!(items[1], ("FLAGS".into(), Token::List(vec![])));
        assert_eq!(b.keyword().as_deref(), Some("FETCH"));
        assert_eq!(b.number(), Some(1));
    }

    #[test]
    fn malformed_structures_are_reported() {
        for (text, why) in [
            ("FLAGS (\\Seen", "never closed"),
            ("FLAGS \\Seen)", "closes nothing"),
            ("LIST () \"/ INBOX", "never closed"),
            ("2", "no keyword"),
            ("1 FETCH UID 3", "parenthesized"),
            ("1 FETCH (UID)", "pairs"),
            ("2 EXISTS 3", "nothing after"),
            ("OK [ALERT oops", "never closed"),
        ] {
            let m = parse_text(text).malformed.unwrap_or_default();
            assert!(m.contains(why), "{text}: {m}");
        }
        assert_eq!(parse_text("2 EXISTS").malformed, None);
    }

    #[test]
    fn comparison_follows_imap_rules() {
        let same_all = |a: &str, b: &str| {
            let (x, y) = (parse_text(a).tokens, parse_text(b).tokens);
            x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| same(p, q))
        };
        assert!(same_all("2 exists", "2 EXISTS"));
        assert!(same_all("LIST () \"/\" INBOX", "LIST () \"/\" \"INBOX\""));
        assert!(!same_all("X \"Inbox\"", "X \"INBOX\""));
        assert!(same_all("FLAGS (\\Seen \\Deleted)", "FLAGS (\\Deleted \\seen)"));
        assert!(!same_all("FLAGS (\\Seen)", "FLAGS (\\Seen \\Deleted)"));
        assert!(!same_all("STATUS X (MESSAGES 2 UNSEEN 1)", "STATUS X (UNSEEN 1 MESSAGES 2)"));
        assert!(!same_all("2 EXISTS", "3 EXISTS"));
    }

    #[test]
    fn valid_tags() {
        assert!(valid_tag(b"A001"));
        assert!(valid_tag(b"x.1"));
        assert!(valid_tag(b"a]"));
        assert!(!valid_tag(b"a+1"));
        assert!(!valid_tag(b"*"));
        assert!(!valid_tag(b""));
    }

    #[test]
    fn summary_cuts_long_literals() {
        let mut s = b"* 1 FETCH (BODY[] {100}\r\n".to_vec();
        s.extend(std::iter::repeat_n(b'x', 100));
        s.extend_from_slice(b")\r\n");
        let r = raw(&s);
        assert_eq!(r.summary(), "* 1 FETCH (BODY[] {100} \"xxxxxxxxxxxxxxxxxxxxxxxx…\" (100 bytes))");
        assert_eq!(raw(b"* FLAGS (\\Seen)\r\n").summary(), "* FLAGS (\\Seen)");
        assert_eq!(display(b"a\r\n\x01\\", 10), "a\\r\\n\\x01\\");
        assert_eq!(raw(b"* 1 FETCH (BODY[] {2}\r\nhi)\r\n").summary(), "* 1 FETCH (BODY[] {2} \"hi\")");
    }
}
