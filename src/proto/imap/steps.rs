//! Structured IMAP expectations: checks on one response group (see the module docs of `imap`).
//!
//! ```yaml
//! - expect: { greeting: OK }                  # the greeting: OK, PREAUTH or BYE (or a list of them)
//! - expect: { status: OK }                    # the tagged completion; its tag must be one the harness
//!                                             # sent and has not seen answered yet
//! - expect:
//!     tag: a2                                 # exactly this tag instead
//!     status: [NO, BAD]                       # OK, NO or BAD, or a list
//!     code: READ-WRITE                        # the completion's [CODE ..]: its first words, any case;
//!                                             # or { name: APPENDUID, value: '..', capture: var }
//!     text: { regex: 'completed' }            # the completion's text after the code: exact, or { regex }
//!     continuation: true                      # instead of status: the group ends with a '+' request
//!     untagged:                               # each is present among the untagged responses, any order
//!       - 2 EXISTS                            # tokens as written: atoms in any case, "quoted" exactly,
//!                                             # lists of atoms as sets; a status response ignores its text
//!                                             # (`BYE`, `OK [READ-WRITE]`)
//!       - { regex: '^FLAGS \(' }              # on the response after '* '; named groups are captured
//!       - { code: UIDVALIDITY, capture: v }   # an untagged status with [UIDVALIDITY ..]; value: '${v}' checks it
//!       - { fetch: 1, items: { FLAGS: { contains: '\Seen' }, UID: { capture: uid }, RFC822.SIZE: '498',
//!           'BODY[]': { length: '${size}', regex: '(?m)^Subject: ' } } }
//!       - { search: [1, 3] }                  # * SEARCH (or * ESEARCH .. ALL) with exactly these numbers
//!       - { regex: '^\d+ EXPUNGE$', count: 2 }    # exactly this many responses match
//!     absent: [ { regex: 'FETCH' } ]          # no untagged response matches any of these
//! ```
//!
//! A FETCH item takes a value (compared as tokens, as above) or a mapping of checks: `equals`,
//! `contains` / `lacks` (flags, one or a list), `regex`, `length` (octets), `file` (the exact
//! octets of a file), `capture`, `absent: true`. Several FETCH responses for one message are
//! merged, the later item winning. Extra untagged responses are always allowed (RFC 9051 §7).

use regex::Regex;

use super::codec::{End, Group, Kind, Response};
use super::parse::{self, Body, Code, Token};
use crate::proto::{Message, Mismatch, RenderCx, Steps, StructuredExpect};
use crate::syntax::{Data, Fixture, LoadCx, Node, Template};

/// Keys of a structured IMAP expect.
pub const EXPECT_KEYS: &[&str] = &["greeting", "tag", "status", "code", "text", "continuation", "untagged", "absent"];

const ITEM_KEYS: &[&str] = &["regex", "code", "fetch", "search", "count", "value", "capture", "items"];
const VALUE_KEYS: &[&str] = &["equals", "contains", "lacks", "regex", "length", "file", "capture", "absent"];

/// A regex with the names of its named groups (they become variables).
#[derive(Debug)]
struct Pattern {
    template: Template,
    names: Vec<String>,
}

#[derive(Debug)]
enum TextCheck {
    Exact(Template),
    Regex(Pattern),
}

#[derive(Debug)]
struct CodeCheck {
    /// The code's first words (`UIDVALIDITY`, `READ-WRITE`, `UIDVALIDITY 42`).
    name: Template,
    value: Option<Template>,
    capture: Option<String>,
}

#[derive(Debug, Default)]
struct ValueCheck {
    equals: Option<Template>,
    contains: Vec<Template>,
    lacks: Vec<Template>,
    regex: Option<Pattern>,
    length: Option<Template>,
    file: Option<Fixture>,
    capture: Option<String>,
    absent: bool,
}

#[derive(Debug)]
enum ItemKind {
    Tokens(Template),
    Regex(Pattern),
    Code(CodeCheck),
    Fetch { msg: Template, items: Vec<(String, ValueCheck)> },
    Search(Vec<Template>),
}

#[derive(Debug)]
struct Item {
    kind: ItemKind,
    count: Option<usize>,
}

/// Checks on one IMAP response group.
#[derive(Debug, Default)]
struct ImapExpect {
    greeting: Option<Vec<String>>,
    tag: Option<Template>,
    status: Option<Vec<String>>,
    continuation: bool,
    code: Option<CodeCheck>,
    text: Option<TextCheck>,
    untagged: Vec<Item>,
    absent: Vec<Item>,
}

fn pattern(node: &Node, cx: &mut LoadCx) -> Option<Pattern> {
    let template = cx.regex(node)?;
    let probe = template.vars().map(|v| (v.to_string(), "x".to_string())).collect();
    let names = Regex::new(&template.render_regex(&probe).unwrap_or_default())
        .map(|re| re.capture_names().flatten().map(str::to_string).collect())
        .unwrap_or_default();
    Some(Pattern { template, names })
}

fn words(node: &Node, allowed: &[&str], what: &str, cx: &mut LoadCx) -> Option<Vec<String>> {
    let items: Vec<&Node> = match &node.data {
        Data::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    let mut out = Vec::new();
    for n in items {
        let w = cx.string(n, what)?.to_ascii_uppercase();
        if !allowed.contains(&w.as_str()) {
            cx.err_help(
                n,
                format!("{what} '{w}' is not one of {}", allowed.join(", ")),
                format!("e.g. {what}: {} or {what}: [{}]", allowed[0], allowed[..2].join(", ")),
            );
            return None;
        }
        out.push(w);
    }
    Some(out)
}

fn text_check(node: &Node, what: &str, cx: &mut LoadCx) -> Option<TextCheck> {
    match &node.data {
        Data::Map(_) => {
            let f = cx.fields(node, &["regex"], what)?;
            match f.get("regex") {
                Some(r) => Some(TextCheck::Regex(pattern(r, cx)?)),
                None => {
                    cx.err_help(
                        node,
                        format!("{what} takes text or {{ regex: .. }}"),
                        "e.g. text: { regex: 'completed' }",
                    );
                    None
                }
            }
        }
        _ => Some(TextCheck::Exact(cx.template(node, what)?)),
    }
}

fn capture_name(node: &Node, cx: &mut LoadCx) -> Option<String> {
    let name = cx.string(node, "capture")?;
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if !ok {
        cx.err_help(
            node,
            format!("'{name}' is not a variable name"),
            "letters, digits, '_', '-' and '.'",
        );
        return None;
    }
    Some(name)
}

fn code_check(node: &Node, cx: &mut LoadCx) -> Option<CodeCheck> {
    match &node.data {
        Data::Map(_) => {
            let f = cx.fields(node, &["name", "value", "capture"], "a response code check")?;
            let Some(name) = f.get("name") else {
                cx.err_help(
                    node,
                    "a response code check needs 'name'",
                    "e.g. code: { name: APPENDUID, capture: appenduid }",
                );
                return None;
            };
            Some(CodeCheck {
                name: cx.template(name, "name")?,
                value: f
                    .get("value")
                    .map(|v| cx.template(v, "value"))
                    .map_or(Some(None), |t| t.map(Some))?,
                capture: f.get("capture").map(|c| capture_name(c, cx)).map_or(Some(None), |c| c.map(Some))?,
            })
        }
        _ => Some(CodeCheck {
            name: cx.template(node, "code")?,
            value: None,
            capture: None,
        }),
    }
}

fn templates_of(node: &Node, what: &str, cx: &mut LoadCx) -> Option<Vec<Template>> {
    match &node.data {
        Data::Seq(items) => items.iter().map(|i| cx.template(i, what)).collect(),
        _ => Some(vec![cx.template(node, what)?]),
    }
}

fn value_check(node: &Node, cx: &mut LoadCx) -> Option<ValueCheck> {
    if !matches!(node.data, Data::Map(_)) {
        return Some(ValueCheck {
            equals: Some(tokens_template(node, "a FETCH item value", true, cx)?),
            ..ValueCheck::default()
        });
    }
    let f = cx.fields(node, VALUE_KEYS, "a FETCH item check")?;
    let mut v = ValueCheck::default();
    if let Some(n) = f.get("equals") {
        v.equals = Some(tokens_template(n, "equals", true, cx)?);
    }
    if let Some(n) = f.get("contains") {
        v.contains = templates_of(n, "contains", cx)?;
    }
    if let Some(n) = f.get("lacks") {
        v.lacks = templates_of(n, "lacks", cx)?;
    }
    if let Some(n) = f.get("regex") {
        v.regex = Some(pattern(n, cx)?);
    }
    if let Some(n) = f.get("length") {
        let t = cx.template(n, "length")?;
        if t.as_literal().is_some_and(|l| l.parse::<usize>().is_err()) {
            cx.err_help(n, "length is a number of octets", "e.g. length: 498, or length: '${size}'");
            return None;
        }
        v.length = Some(t);
    }
    if let Some(n) = f.get("file") {
        v.file = Some(cx.fixture(n, "file")?);
    }
    if let Some(n) = f.get("capture") {
        v.capture = Some(capture_name(n, cx)?);
    }
    if let Some(n) = f.get("absent") {
        if !cx.boolean(n, "absent")? {
            cx.err(n, "absent: false checks nothing; leave it out");
            return None;
        }
        if f.get("equals").is_some() || !v.contains.is_empty() || v.regex.is_some() || v.length.is_some() || v.capture.is_some() {
            cx.err(n, "an absent item has no value to check");
            return None;
        }
        v.absent = true;
    }
    let checks = v.equals.is_some()
        || !v.contains.is_empty()
        || !v.lacks.is_empty()
        || v.regex.is_some()
        || v.length.is_some()
        || v.file.is_some()
        || v.capture.is_some()
        || v.absent;
    if !checks {
        cx.err_help(
            node,
            "a FETCH item check needs one of equals, contains, lacks, regex, length, file, capture, absent",
            "e.g. FLAGS: { contains: '\\Seen' }",
        );
        return None;
    }
    Some(v)
}

/// A template for an expected response (or one `value`); text without variables is parsed now
/// so a typo in a suite is reported when it loads.
fn tokens_template(node: &Node, what: &str, value: bool, cx: &mut LoadCx) -> Option<Template> {
    let t = cx.template(node, what)?;
    if let Some(lit) = t.as_literal() {
        let problem = if value {
            parse::parse_value(lit).err()
        } else {
            parse::parse_text(lit).malformed
        };
        if let Some(why) = problem {
            cx.err_help(
                node,
                format!("cannot read '{lit}' as IMAP response text: {why}"),
                "write it as on the wire, e.g. '2 EXISTS', 'FLAGS (\\Seen)', or use { regex: .. }",
            );
            return None;
        }
    }
    Some(t)
}

fn item(node: &Node, in_absent: bool, cx: &mut LoadCx) -> Option<Item> {
    if !matches!(node.data, Data::Map(_)) {
        return Some(Item {
            kind: ItemKind::Tokens(tokens_template(node, "an untagged response", false, cx)?),
            count: None,
        });
    }
    let f = cx.fields(node, ITEM_KEYS, "an untagged response check")?;
    let kinds: Vec<&str> = ["regex", "code", "fetch", "search"]
        .into_iter()
        .filter(|k| f.get(k).is_some())
        .collect();
    let [kind] = kinds.as_slice() else {
        cx.err_help(
            node,
            "an untagged response check takes one of regex, code, fetch, search",
            "e.g. { regex: '^FLAGS ' } or { fetch: 1, items: { UID: { capture: uid } } }",
        );
        return None;
    };
    let only = |key: &str, with: &str, cx: &mut LoadCx| -> bool {
        match f.get(key) {
            Some(n) if *kind != with => {
                cx.err(n, format!("'{key}' goes with '{with}', not '{kind}'"));
                false
            }
            _ => true,
        }
    };
    if !(only("value", "code", cx) && only("capture", "code", cx) && only("items", "fetch", cx)) {
        return None;
    }
    if in_absent {
        for key in ["count", "capture"] {
            if let Some(n) = f.get(key) {
                cx.err(n, format!("'{key}' means nothing in absent (nothing may match)"));
                return None;
            }
        }
    }
    let count = match f.get("count") {
        Some(n) if *kind == "fetch" => {
            cx.err(n, "count does not apply to fetch (FETCH responses for one message are merged)");
            return None;
        }
        Some(n) => Some(cx.number::<usize>(n, "count")?),
        None => None,
    };
    let v = f.get(kind)?;
    let kind = match *kind {
        "regex" => ItemKind::Regex(pattern(v, cx)?),
        "code" => ItemKind::Code(CodeCheck {
            name: cx.template(v, "code")?,
            value: f
                .get("value")
                .map(|n| cx.template(n, "value"))
                .map_or(Some(None), |t| t.map(Some))?,
            capture: f.get("capture").map(|n| capture_name(n, cx)).map_or(Some(None), |c| c.map(Some))?,
        }),
        "fetch" => {
            let msg = cx.template(v, "fetch")?;
            if msg.as_literal().is_some_and(|l| l.parse::<u64>().is_err()) {
                cx.err_help(v, "fetch takes a message sequence number", "e.g. fetch: 1");
                return None;
            }
            let mut items = Vec::new();
            if let Some(i) = f.get("items") {
                let pairs = cx.mapping(
                    i,
                    "items must be a mapping of FETCH item to check",
                    "e.g. items: { UID: { capture: uid } }",
                )?;
                for (k, val) in pairs {
                    let name = parse::normalize_item(&cx.string(k, "a FETCH item name")?);
                    if let Some(peek) = name.strip_prefix("BODY.PEEK") {
                        cx.err_help(
                            k,
                            format!("the server answers BODY.PEEK{peek} as BODY{peek}"),
                            format!("write BODY{peek}"),
                        );
                        return None;
                    }
                    items.push((name, value_check(val, cx)?));
                }
            }
            ItemKind::Fetch { msg, items }
        }
        "search" => {
            let Data::Seq(nums) = &v.data else {
                cx.err_help(v, "search takes a list of numbers", "e.g. search: [1, 3], or search: [] for none");
                return None;
            };
            let mut out = Vec::new();
            for n in nums {
                let t = cx.template(n, "a number")?;
                if t.as_literal().is_some_and(|l| l.parse::<u64>().is_err()) {
                    cx.err(n, "search numbers are message numbers or UIDs");
                    return None;
                }
                out.push(t);
            }
            ItemKind::Search(out)
        }
        _ => return None,
    };
    Some(Item { kind, count })
}

fn items(node: &Node, in_absent: bool, cx: &mut LoadCx) -> Option<Vec<Item>> {
    let Data::Seq(list) = &node.data else {
        cx.err_help(
            node,
            format!("{} takes a list", if in_absent { "absent" } else { "untagged" }),
            "e.g. untagged: [2 EXISTS, { regex: '^FLAGS ' }]",
        );
        return None;
    };
    list.iter().map(|n| item(n, in_absent, cx)).collect()
}

/// The structured `expect:` keys of IMAP.
pub static STEPS: Steps = Steps {
    send_keys: &[],
    expect_keys: EXPECT_KEYS,
    parse_send: Steps::NONE.parse_send,
    parse_expect,
};

/// Parses `expect: { greeting | status | continuation, tag, code, text, untagged, absent }`.
pub fn parse_expect(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn crate::proto::StructuredExpect>> {
    let f = cx.fields(node, EXPECT_KEYS, "an IMAP expect")?;
    let mut e = ImapExpect::default();
    if let Some(n) = f.get("greeting") {
        e.greeting = Some(words(n, &["OK", "PREAUTH", "BYE"], "greeting", cx)?);
    }
    if let Some(n) = f.get("status") {
        e.status = Some(words(n, &["OK", "NO", "BAD"], "status", cx)?);
    }
    if let Some(n) = f.get("continuation") {
        if !cx.boolean(n, "continuation")? {
            cx.err_help(
                n,
                "continuation: false checks nothing",
                "use status: OK to expect a tagged completion",
            );
            return None;
        }
        e.continuation = true;
    }
    let ends: Vec<&str> = ["greeting", "status", "continuation"]
        .into_iter()
        .filter(|k| f.get(k).is_some())
        .collect();
    if ends.len() > 1 {
        cx.err_help(
            f.get(ends[1])?,
            format!("'{}' and '{}' expect different ends of a response group", ends[0], ends[1]),
            "a group ends with the greeting, a tagged status, or a '+' continuation request",
        );
        return None;
    }
    if let Some(n) = f.get("tag") {
        if e.greeting.is_some() || e.continuation {
            cx.err(n, "the greeting and '+' requests have no tag");
            return None;
        }
        let t = cx.template(n, "tag")?;
        if t.as_literal().is_some_and(|l| !parse::valid_tag(l.as_bytes())) {
            cx.err_help(
                n,
                "not a valid IMAP tag",
                "a tag is letters, digits and punctuation other than ( ) { % * \" \\ +",
            );
            return None;
        }
        e.tag = Some(t);
    }
    if let Some(n) = f.get("code") {
        e.code = Some(code_check(n, cx)?);
    }
    if let Some(n) = f.get("text") {
        e.text = Some(text_check(n, "text", cx)?);
    }
    if let Some(n) = f.get("untagged") {
        e.untagged = items(n, false, cx)?;
    }
    if let Some(n) = f.get("absent") {
        e.absent = items(n, true, cx)?;
    }
    Some(Box::new(e))
}

fn mismatch(message: impl Into<String>, expected: impl Into<String>, got: impl Into<String>) -> Mismatch {
    Mismatch {
        message: message.into(),
        expected: expected.into(),
        got: got.into(),
        at: None,
    }
}

type Caps = Vec<(String, String)>;

/// Renders a template; a missing variable is a mismatch (the suite's fault, shown as such).
fn render(t: &Template, cx: &RenderCx) -> Result<String, Mismatch> {
    t.render(cx.vars).map_err(|e| mismatch(e, "", ""))
}

fn regex(p: &Pattern, cx: &RenderCx) -> Result<Regex, Mismatch> {
    let src = p.template.render_regex(cx.vars).map_err(|e| mismatch(e, "", ""))?;
    Regex::new(&src).map_err(|e| mismatch(format!("invalid regex: {e}"), "", ""))
}

fn regex_caps(re: &Regex, names: &[String], text: &str) -> Option<Caps> {
    let c = re.captures(text)?;
    Some(
        names
            .iter()
            .filter_map(|n| c.name(n).map(|m| (n.clone(), m.as_str().to_string())))
            .collect(),
    )
}

/// Whether `code` starts with the words of `want` (any case).
fn code_matches(code: &Code, want: &str) -> bool {
    let have = code.text();
    let have: Vec<&str> = have.split_whitespace().collect();
    let want: Vec<&str> = want.split_whitespace().collect();
    !want.is_empty() && want.len() <= have.len() && want.iter().zip(&have).all(|(a, b)| a.eq_ignore_ascii_case(b))
}

/// Checks a response code against `c`; Ok(None) if it does not match.
fn check_code(c: &CodeCheck, code: Option<&Code>, cx: &RenderCx) -> Result<Option<Caps>, Mismatch> {
    let Some(code) = code else { return Ok(None) };
    if !code_matches(code, &render(&c.name, cx)?) {
        return Ok(None);
    }
    if let Some(v) = &c.value {
        if !code.value.eq_ignore_ascii_case(render(v, cx)?.trim()) {
            return Ok(None);
        }
    }
    Ok(Some(c.capture.iter().map(|n| (n.clone(), code.value.clone())).collect()))
}

/// Parses expected text rendered at run time.
fn expected_body(t: &Template, cx: &RenderCx) -> Result<Body, Mismatch> {
    let text = render(t, cx)?;
    let b = parse::parse_text(&text);
    match &b.malformed {
        Some(why) => Err(mismatch(format!("cannot read '{text}' as IMAP response text: {why}"), "", "")),
        None => Ok(b),
    }
}

fn tokens_match(want: &Body, got: &Body) -> bool {
    match &want.status {
        Some(s) => {
            got.status.as_ref() == Some(s)
                && want.code.as_ref().is_none_or(|w| {
                    // Codes and their atoms are case-insensitive; spacing inside the brackets is not significant.
                    got.code.as_ref().is_some_and(|g| {
                        let words = |c: &Code| c.text().split_whitespace().map(str::to_ascii_uppercase).collect::<Vec<_>>();
                        words(g) == words(w)
                    })
                })
        }
        None => {
            got.status.is_none()
                && got.malformed.is_none()
                && want.tokens.len() == got.tokens.len()
                && want.tokens.iter().zip(&got.tokens).all(|(w, g)| parse::same(w, g))
        }
    }
}

/// The numbers of a `SEARCH` or `ESEARCH` response (RFC 9051 §7.3.4, RFC 3501 §7.2.5).
fn search_numbers(b: &Body) -> Option<Vec<u64>> {
    let (first, rest) = b.tokens.split_first()?;
    let Token::Atom(k) = first else { return None };
    if k.eq_ignore_ascii_case("SEARCH") {
        return rest
            .iter()
            .map(|t| match t {
                Token::Number(n) => Some(*n),
                _ => None,
            })
            .collect();
    }
    if !k.eq_ignore_ascii_case("ESEARCH") {
        return None;
    }
    let mut rest = rest;
    if let [Token::List(_), more @ ..] = rest {
        rest = more;
    }
    if let [Token::Atom(u), more @ ..] = rest {
        if u.eq_ignore_ascii_case("UID") {
            rest = more;
        }
    }
    let mut out = Vec::new();
    for pair in rest.chunks(2) {
        if let [Token::Atom(name), value] = pair {
            if name.eq_ignore_ascii_case("ALL") {
                out.extend(sequence_set(&value.string()?)?);
            }
        }
    }
    Some(out)
}

/// Expands `1:3,5` (at most 100000 numbers).
fn sequence_set(s: &str) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
        let (lo, hi) = (a.min(b), a.max(b));
        if hi - lo > 100_000 || out.len() > 100_000 {
            return None;
        }
        out.extend(lo..=hi);
    }
    Some(out)
}

/// Checks one untagged response against a non-FETCH item; Ok(None) if it does not match.
fn match_one(kind: &ItemKind, r: &Response, cx: &RenderCx) -> Result<Option<Caps>, Mismatch> {
    Ok(match kind {
        ItemKind::Tokens(t) => tokens_match(&expected_body(t, cx)?, &r.body).then(Vec::new),
        ItemKind::Regex(p) => regex_caps(&regex(p, cx)?, &p.names, &r.text),
        ItemKind::Code(c) if r.body.status.is_some() => check_code(c, r.body.code.as_ref(), cx)?,
        ItemKind::Code(_) => None,
        ItemKind::Search(nums) => {
            let mut want = Vec::new();
            for t in nums {
                let s = render(t, cx)?;
                want.push(
                    s.trim()
                        .parse::<u64>()
                        .map_err(|_| mismatch(format!("search: '{s}' is not a number"), "", ""))?,
                );
            }
            want.sort_unstable();
            match search_numbers(&r.body) {
                Some(mut got) => {
                    got.sort_unstable();
                    (got == want).then(Vec::new)
                }
                None => None,
            }
        }
        ItemKind::Fetch { .. } => None,
    })
}

/// The merged FETCH items of message `n`, or None if there is no FETCH response for it.
fn fetched(g: &Group, n: u64) -> Option<Vec<(String, Token)>> {
    let mut merged: Vec<(String, Token)> = Vec::new();
    let mut any = false;
    for r in g.untagged() {
        if r.body.number() == Some(n) && r.body.keyword().as_deref() == Some("FETCH") {
            any = true;
            for (name, v) in parse::fetch_items(&r.body) {
                merged.retain(|(k, _)| *k != name);
                merged.push((name, v));
            }
        }
    }
    any.then_some(merged)
}

fn flag_list(name: &str, v: &Token) -> Result<Vec<String>, String> {
    match v {
        Token::List(items) => Ok(items.iter().filter_map(Token::string).collect()),
        other => Err(format!("{name} is {}, not a list", other.render())),
    }
}

/// Checks one FETCH item; Err says why it does not hold.
fn check_value(name: &str, c: &ValueCheck, v: Option<&Token>, cx: &RenderCx) -> Result<Result<Caps, String>, Mismatch> {
    let v = match (v, c.absent) {
        (Some(v), true) => return Ok(Err(format!("{name} is present ({}), expected it absent", short(&v.render())))),
        (None, true) => return Ok(Ok(Vec::new())),
        (None, false) => return Ok(Err(format!("no {name} item"))),
        (Some(v), false) => v,
    };
    let text = v.string().unwrap_or_else(|| v.render());
    if let Some(t) = &c.equals {
        let text = render(t, cx)?;
        let want = parse::parse_value(&text).map_err(|why| mismatch(format!("cannot read '{text}' as an IMAP value: {why}"), "", ""))?;
        if !parse::same(&want, v) {
            return Ok(Err(format!("{name} is {}, expected {}", short(&v.render()), render(t, cx)?)));
        }
    }
    for (list, want_in) in [(&c.contains, true), (&c.lacks, false)] {
        for t in list {
            let flag = render(t, cx)?;
            let flags = match flag_list(name, v) {
                Ok(f) => f,
                Err(e) => return Ok(Err(e)),
            };
            if flags.iter().any(|f| f.eq_ignore_ascii_case(&flag)) != want_in {
                let how = if want_in { "does not contain" } else { "contains" };
                return Ok(Err(format!("{name} {} {how} {flag}", v.render())));
            }
        }
    }
    if let Some(t) = &c.length {
        let s = render(t, cx)?;
        let want: usize = s
            .trim()
            .parse()
            .map_err(|_| mismatch(format!("length: '{s}' is not a number"), "", ""))?;
        let have = v.bytes().map_or(0, |b| b.len());
        if v.bytes().is_none() || have != want {
            return Ok(Err(format!("{name} has {have} octets, expected {want}")));
        }
    }
    let mut caps = Vec::new();
    if let Some(p) = &c.regex {
        match regex_caps(&regex(p, cx)?, &p.names, &text) {
            Some(more) => caps.extend(more),
            None => {
                let src = p.template.render_regex(cx.vars).unwrap_or_default();
                return Ok(Err(format!("{name} ({}) does not match /{src}/", short(&text))));
            }
        }
    }
    if let Some(p) = &c.file {
        let want = &p.bytes[..];
        let have = &v.bytes().unwrap_or_default()[..];
        if want != have {
            let at = want
                .iter()
                .zip(have)
                .position(|(a, b)| a != b)
                .unwrap_or(want.len().min(have.len()));
            return Ok(Err(format!(
                "{name} differs from {} at octet {at} ({} octets, the file has {})",
                p.display(),
                have.len(),
                want.len()
            )));
        }
    }
    if let Some(var) = &c.capture {
        caps.push((var.clone(), text));
    }
    Ok(Ok(caps))
}

fn short(s: &str) -> String {
    parse::display(s.as_bytes(), 80)
}

/// Checks a FETCH item against the group: Ok(Ok(caps)) if it holds, Ok(Err(why)) if not.
fn check_fetch(msg: &Template, items: &[(String, ValueCheck)], g: &Group, cx: &RenderCx) -> Result<Result<Caps, String>, Mismatch> {
    let s = render(msg, cx)?;
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| mismatch(format!("fetch: '{s}' is not a message number"), "", ""))?;
    let Some(merged) = fetched(g, n) else {
        return Ok(Err(format!("no FETCH response for message {n}")));
    };
    let mut caps = Vec::new();
    for (name, c) in items {
        let v = merged.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        match check_value(name, c, v, cx)? {
            Ok(more) => caps.extend(more),
            Err(why) => return Ok(Err(format!("message {n}: {why}"))),
        }
    }
    Ok(Ok(caps))
}

/// Checks an `untagged` item: Ok(Ok(caps)) if it holds, Ok(Err(why)) if not.
fn check_item(it: &Item, g: &Group, cx: &RenderCx) -> Result<Result<Caps, String>, Mismatch> {
    if let ItemKind::Fetch { msg, items } = &it.kind {
        return check_fetch(msg, items, g, cx);
    }
    let mut found = 0;
    let mut caps = None;
    for r in g.untagged() {
        if let Some(c) = match_one(&it.kind, r, cx)? {
            found += 1;
            caps.get_or_insert(c);
        }
    }
    let what = describe_item(it);
    Ok(match (it.count, caps) {
        (Some(n), _) if n != found => Err(format!("{found} untagged responses match {what}, expected {n}")),
        (_, Some(c)) => Ok(c),
        (Some(_), None) => Ok(Vec::new()),
        (None, None) => Err(format!("no untagged response matches {what}")),
    })
}

/// The first untagged response matching an `absent` item, described.
fn find_absent(it: &Item, g: &Group, cx: &RenderCx) -> Result<Option<String>, Mismatch> {
    if let ItemKind::Fetch { msg, items } = &it.kind {
        if check_fetch(msg, items, g, cx)?.is_err() {
            return Ok(None);
        }
        let n = render(msg, cx)?.trim().parse::<u64>().ok();
        let first = g
            .untagged()
            .find(|r| r.body.number() == n && r.body.keyword().as_deref() == Some("FETCH"));
        return Ok(first.map(|r| r.summary.clone()));
    }
    for r in g.untagged() {
        if match_one(&it.kind, r, cx)?.is_some() {
            return Ok(Some(r.summary.clone()));
        }
    }
    Ok(None)
}

fn code_templates(c: &CodeCheck) -> Vec<&Template> {
    std::iter::once(&c.name).chain(c.value.iter()).collect()
}

fn describe_end(g: &Group) -> String {
    match (g.end, g.completion()) {
        (End::Eof, _) | (_, None) => "the connection closed with no tagged response".into(),
        (End::Greeting, Some(r)) => format!("the greeting '{}'", short(&r.line)),
        (End::Continuation, Some(r)) => format!("a continuation request '{}'", short(&r.line)),
        (End::Tagged | End::UntaggedBad, Some(r)) => format!("'{}'", short(&r.line)),
    }
}

fn describe_item(it: &Item) -> String {
    let lit = |t: &Template| t.as_literal().map_or_else(|| "${..}".to_string(), str::to_string);
    let base = match &it.kind {
        ItemKind::Tokens(t) => format!("'{}'", lit(t)),
        ItemKind::Regex(p) => format!("/{}/", lit(&p.template)),
        ItemKind::Code(c) => format!(
            "[{}{}]",
            lit(&c.name),
            c.value.as_ref().map(|v| format!(" {}", lit(v))).unwrap_or_default()
        ),
        ItemKind::Fetch { msg, items } if items.is_empty() => format!("'{} FETCH'", lit(msg)),
        ItemKind::Fetch { msg, items } => {
            let names: Vec<&str> = items.iter().map(|(n, _)| n.as_str()).collect();
            format!("'{} FETCH ({})'", lit(msg), names.join(" "))
        }
        ItemKind::Search(nums) => format!("'SEARCH {}'", nums.iter().map(lit).collect::<Vec<_>>().join(" ")),
    };
    match it.count {
        Some(n) => format!("{base} ×{n}"),
        None => base,
    }
}

impl ImapExpect {
    /// Checks what ends the group; returns the completion's captures.
    fn check_end(&self, g: &Group, cx: &RenderCx, got: &str) -> Result<Caps, Mismatch> {
        let fail = |why: String| Err(mismatch(why, self.describe(), got));
        let done = g.completion();
        let status = done.and_then(|r| r.body.status.clone()).unwrap_or_default();
        if let Some(want) = &self.greeting {
            if g.end != End::Greeting {
                return fail(format!("expected the greeting, got {}", describe_end(g)));
            }
            if !want.contains(&status) {
                return fail(format!("the greeting is {}, expected {}", describe_end(g), want.join(" or ")));
            }
        } else if g.end == End::Greeting && (self.status.is_some() || self.continuation || self.tag.is_some()) {
            return fail(format!(
                "this is the server greeting ({}); expect it first with expect: {{ greeting: OK }}",
                short(&g.responses[0].line)
            ));
        }
        if self.continuation && g.end != End::Continuation {
            return fail(format!("expected a continuation request ('+ ...'), got {}", describe_end(g)));
        }
        if let Some(want) = &self.status {
            if !matches!(g.end, End::Tagged | End::UntaggedBad) {
                return fail(format!("expected a tagged {}, got {}", want.join(" or "), describe_end(g)));
            }
            if !want.contains(&status) {
                return fail(format!(
                    "the command completed with {}, expected {}",
                    describe_end(g),
                    want.join(" or ")
                ));
            }
        }
        let tag = match done.map(|r| &r.kind) {
            Some(Kind::Tagged(t)) => Some(t.as_str()),
            _ => None,
        };
        match (&self.tag, tag) {
            (Some(want), _) if matches!(g.end, End::Tagged | End::UntaggedBad) => {
                let want = render(want, cx)?;
                if tag != Some(want.as_str()) {
                    return fail(format!("the completion {} is not tagged '{want}'", describe_end(g)));
                }
            }
            (None, Some(t)) if !g.pending_tags.is_empty() && !g.pending_tags.iter().any(|p| p == t) => {
                return fail(format!(
                    "the completion is tagged '{t}', but the unanswered command{} tagged {} (a server echoes the client's tag)",
                    if g.pending_tags.len() == 1 { " was" } else { "s were" },
                    g.pending_tags.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", ")
                ));
            }
            _ => {}
        }
        let mut caps = Vec::new();
        if let Some(c) = &self.code {
            let code = done.and_then(|r| r.body.code.as_ref());
            match check_code(c, code, cx)? {
                Some(more) => caps.extend(more),
                None => {
                    let have = code.map_or("no response code".to_string(), |c| format!("[{}]", c.text()));
                    let want = render(&c.name, cx)?;
                    return fail(format!(
                        "the completion has {have}, expected [{want}{}]",
                        if c.value.is_some() { " ..." } else { "" }
                    ));
                }
            }
        }
        if let Some(t) = &self.text {
            let have = done.map(|r| r.body.human.clone()).unwrap_or_default();
            match t {
                TextCheck::Exact(w) => {
                    let w = render(w, cx)?;
                    if w != have {
                        return fail(format!("the completion's text is '{have}', expected '{w}'"));
                    }
                }
                TextCheck::Regex(p) => match regex_caps(&regex(p, cx)?, &p.names, &have) {
                    Some(more) => caps.extend(more),
                    None => {
                        let src = p.template.render_regex(cx.vars).unwrap_or_default();
                        return fail(format!("the completion's text '{have}' does not match /{src}/"));
                    }
                },
            }
        }
        Ok(caps)
    }
}

impl StructuredExpect for ImapExpect {
    fn check(&self, msg: &Message, cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        let Some(g) = msg.detail.as_ref().and_then(|d| d.downcast_ref::<Group>()) else {
            return Err(mismatch("not an IMAP response group", self.describe(), msg.summary.clone()));
        };
        let got = msg.summary.as_str();
        let mut caps = self.check_end(g, cx, got)?;
        for it in &self.untagged {
            match check_item(it, g, cx)? {
                Ok(more) => caps.extend(more),
                Err(why) => return Err(mismatch(why, self.describe(), got)),
            }
        }
        for it in &self.absent {
            if let Some(hit) = find_absent(it, g, cx)? {
                return Err(mismatch(
                    format!("an untagged response matches {}, which must be absent: {hit}", describe_item(it)),
                    self.describe(),
                    got,
                ));
            }
        }
        Ok(caps)
    }

    fn templates(&self) -> Vec<&Template> {
        let mut t: Vec<&Template> = Vec::new();
        t.extend(self.tag.iter());
        if let Some(c) = &self.code {
            t.extend(code_templates(c));
        }
        match &self.text {
            Some(TextCheck::Exact(x)) => t.push(x),
            Some(TextCheck::Regex(p)) => t.push(&p.template),
            None => {}
        }
        for it in self.untagged.iter().chain(&self.absent) {
            match &it.kind {
                ItemKind::Tokens(x) => t.push(x),
                ItemKind::Regex(p) => t.push(&p.template),
                ItemKind::Code(c) => t.extend(code_templates(c)),
                ItemKind::Search(nums) => t.extend(nums.iter()),
                ItemKind::Fetch { msg, items } => {
                    t.push(msg);
                    for (_, v) in items {
                        t.extend(v.equals.iter().chain(&v.contains).chain(&v.lacks).chain(v.length.iter()));
                        t.extend(v.regex.iter().map(|p| &p.template));
                    }
                }
            }
        }
        t
    }

    fn captures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(c) = &self.code {
            out.extend(c.capture.clone());
        }
        if let Some(TextCheck::Regex(p)) = &self.text {
            out.extend(p.names.iter().cloned());
        }
        for it in &self.untagged {
            match &it.kind {
                ItemKind::Regex(p) => out.extend(p.names.iter().cloned()),
                ItemKind::Code(c) => out.extend(c.capture.clone()),
                ItemKind::Fetch { items, .. } => {
                    for (_, v) in items {
                        out.extend(v.capture.clone());
                        out.extend(v.regex.iter().flat_map(|p| p.names.iter().cloned()));
                    }
                }
                ItemKind::Tokens(_) | ItemKind::Search(_) => {}
            }
        }
        out
    }

    fn describe(&self) -> String {
        let lit = |t: &Template| t.as_literal().map_or_else(|| "${..}".to_string(), str::to_string);
        let mut s = if let Some(g) = &self.greeting {
            format!("the greeting * {}", g.join("|"))
        } else if self.continuation {
            "a continuation request (+)".to_string()
        } else {
            let tag = self.tag.as_ref().map_or_else(|| "<tag>".to_string(), lit);
            match &self.status {
                Some(st) => format!("{tag} {}", st.join("|")),
                None => "a response group".to_string(),
            }
        };
        if let Some(c) = &self.code {
            s.push_str(&format!(" [{}]", lit(&c.name)));
        }
        match &self.text {
            Some(TextCheck::Exact(t)) => s.push_str(&format!(" '{}'", lit(t))),
            Some(TextCheck::Regex(p)) => s.push_str(&format!(" /{}/", lit(&p.template))),
            None => {}
        }
        if !self.untagged.is_empty() {
            s.push_str(&format!(
                ", after untagged {}",
                self.untagged.iter().map(describe_item).collect::<Vec<_>>().join(", ")
            ));
        }
        if !self.absent.is_empty() {
            s.push_str(&format!(
                ", without {}",
                self.absent.iter().map(describe_item).collect::<Vec<_>>().join(", ")
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::proto::steps::testing;
    use crate::proto::{Codec, Frame};
    use crate::syntax::Vars;

    fn load(expect: &str) -> Result<Box<dyn StructuredExpect>, String> {
        testing::expect(&STEPS, expect)
    }

    /// The group the server sends after the greeting, in answer to `sent`.
    fn answer(sent: &str, reply: &str) -> Message {
        let mut c = crate::proto::imap::ResponseCodec::default();
        let Ok(Frame::Message(_, _)) = c.decode(b"* OK hi\r\n", false) else {
            panic!()
        };
        c.peer_sent(sent.as_bytes());
        match c.decode(reply.as_bytes(), true).unwrap() {
            Frame::Message(m, _) => m,
            Frame::Incomplete => panic!("incomplete"),
        }
    }

    fn run(expect: &str, sent: &str, reply: &str, vars: &[(&str, &str)]) -> Result<Vec<(String, String)>, String> {
        let e = load(expect).unwrap();
        let vars: Vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let cx = RenderCx {
            vars: &vars,
            base_dir: Path::new("suites"),
            transport: crate::proto::Transport::Tcp,
            local: None,
        };
        e.check(&answer(sent, reply), &cx).map_err(|m| m.message)
    }

    const SELECT: &str = "* 2 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
                          * OK [UIDVALIDITY 1700000000] UIDs valid\r\n* OK [UIDNEXT 3] next\r\na2 OK [READ-WRITE] SELECT completed\r\n";

    #[test]
    fn status_tag_code_and_untagged() {
        let e = "{ status: OK, code: READ-WRITE, untagged: [2 exists, 'FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)', \
                 { code: UIDVALIDITY, capture: v }, { regex: '^OK \\[UIDNEXT (?P<next>\\d+)\\]' }], absent: [1 EXPUNGE] }";
        let caps = run(e, "a2 SELECT INBOX\r\n", SELECT, &[]).unwrap();
        assert_eq!(caps, [("v".to_string(), "1700000000".to_string()), ("next".into(), "3".into())]);
        let e = "{ tag: a2, status: NO }";
        assert!(run(e, "a2 SELECT INBOX\r\n", SELECT, &[]).unwrap_err().contains("expected NO"));
        let e = "{ status: OK, untagged: [3 EXISTS] }";
        assert!(run(e, "a2 SELECT INBOX\r\n", SELECT, &[])
            .unwrap_err()
            .contains("no untagged response matches '3 EXISTS'"));
        let e = "{ status: OK, absent: [{ regex: RECENT }] }";
        assert!(run(e, "a2 SELECT INBOX\r\n", SELECT, &[]).unwrap_err().contains("0 RECENT"));
        let e = "{ status: OK, code: READ-ONLY }";
        assert!(run(e, "a2 SELECT INBOX\r\n", SELECT, &[]).unwrap_err().contains("has [READ-WRITE]"));
        let e = "{ status: OK, untagged: [{ code: UIDVALIDITY, value: '${v}' }] }";
        assert!(run(e, "a2 SELECT INBOX\r\n", SELECT, &[("v", "1700000000")]).is_ok());
        assert!(run(e, "a2 SELECT INBOX\r\n", SELECT, &[("v", "1")]).is_err());
    }

    #[test]
    fn default_tag_is_one_the_harness_sent() {
        let e = "{ status: OK }";
        assert!(run(e, "x.1 NOOP\r\n", "x.1 OK done\r\n", &[]).is_ok());
        let err = run(e, "x.1 NOOP\r\n", "X.1 OK done\r\n", &[]).unwrap_err();
        assert!(err.contains("tagged 'X.1'") && err.contains("'x.1'"), "{err}");
        assert!(run("{ tag: A001, status: OK }", "x.1 NOOP\r\n", "x.1 OK done\r\n", &[]).is_err());
        // Garbage with no valid tag may be answered by an untagged BAD alone.
        assert!(run("{ status: BAD }", "(((\r\n", "* BAD parse error\r\n", &[]).is_ok());
        assert!(run("{ status: [NO, BAD] }", "a1 FOO\r\n", "a1 BAD unknown\r\n", &[]).is_ok());
    }

    #[test]
    fn fetch_items() {
        let reply = "* 1 FETCH (UID 7 RFC822.SIZE 10 FLAGS (\\Seen))\r\n* 1 FETCH (BODY[] {10}\r\nhello\r\nwor)\r\na4 OK done\r\n";
        let e = "{ status: OK, untagged: [{ fetch: 1, items: { uid: { capture: uid }, RFC822.SIZE: { capture: size }, \
                 FLAGS: { contains: '\\seen', lacks: '\\Deleted' }, 'BODY[]': { length: '${size}', regex: '^hello\\r\\n' } } }] }";
        let caps = run(e, "a4 FETCH 1 (UID RFC822.SIZE FLAGS BODY[])\r\n", reply, &[("size", "10")]).unwrap();
        assert_eq!(caps, [("uid".to_string(), "7".to_string()), ("size".into(), "10".into())]);
        let bad = [
            ("{ fetch: 2 }", "no FETCH response for message 2"),
            ("{ fetch: 1, items: { FLAGS: { lacks: '\\Seen' } } }", "contains \\Seen"),
            ("{ fetch: 1, items: { 'BODY[]': { length: 12 } } }", "has 10 octets, expected 12"),
            ("{ fetch: 1, items: { UID: '8' } }", "UID is 7, expected 8"),
            ("{ fetch: 1, items: { FLAGS: '()' } }", "FLAGS is (\\Seen)"),
            ("{ fetch: 1, items: { ENVELOPE: { capture: x } } }", "no ENVELOPE item"),
            ("{ fetch: 1, items: { UID: { absent: true } } }", "UID is present"),
        ];
        for (item, why) in bad {
            let err = run(&format!("{{ status: OK, untagged: [{item}] }}"), "a4 FETCH 1 ALL\r\n", reply, &[]).unwrap_err();
            assert!(err.contains(why), "{item}: {err}");
        }
        let e = "{ status: OK, absent: [{ fetch: 1 }] }";
        assert!(run(e, "a5 STORE 1 +FLAGS.SILENT (\\Seen)\r\n", "a5 OK done\r\n", &[]).is_ok());
        assert!(run(e, "a5 STORE 1 +FLAGS (\\Seen)\r\n", "* 1 FETCH (FLAGS (\\Seen))\r\na5 OK\r\n", &[]).is_err());
    }

    #[test]
    fn search_and_counts() {
        let e = "{ status: OK, untagged: [{ search: [3, 1] }] }";
        assert!(run(e, "a SEARCH ALL\r\n", "* SEARCH 1 3\r\na OK\r\n", &[]).is_ok());
        assert!(run(e, "a SEARCH ALL\r\n", "* ESEARCH (TAG \"a\") ALL 1,3\r\na OK\r\n", &[]).is_ok());
        assert!(run(e, "a SEARCH ALL\r\n", "* SEARCH 1 2 3\r\na OK\r\n", &[]).is_err());
        let e = "{ status: OK, untagged: [{ search: [] }] }";
        assert!(run(e, "a SEARCH X\r\n", "* SEARCH\r\na OK\r\n", &[]).is_ok());
        assert!(run(e, "a SEARCH X\r\n", "* ESEARCH (TAG \"a\") UID\r\na OK\r\n", &[]).is_ok());
        let e = "{ status: OK, untagged: [{ regex: '^\\d+ EXPUNGE$', count: 2 }] }";
        assert!(run(e, "a EXPUNGE\r\n", "* 1 EXPUNGE\r\n* 1 EXPUNGE\r\na OK\r\n", &[]).is_ok());
        let err = run(e, "a EXPUNGE\r\n", "* 1 EXPUNGE\r\na OK\r\n", &[]).unwrap_err();
        assert!(err.contains("1 untagged responses match"), "{err}");
    }

    #[test]
    fn greeting_continuation_and_eof() {
        let e = load("{ greeting: [OK, PREAUTH], code: CAPABILITY }").unwrap();
        let mut c = crate::proto::imap::ResponseCodec::default();
        let Frame::Message(m, _) = c.decode(b"* OK [CAPABILITY IMAP4rev2] hi\r\n", false).unwrap() else {
            panic!()
        };
        let vars = Vars::new();
        let cx = RenderCx {
            vars: &vars,
            base_dir: Path::new("."),
            transport: crate::proto::Transport::Tcp,
            local: None,
        };
        assert!(e.check(&m, &cx).is_ok());
        let err = load("{ status: OK }").unwrap().check(&m, &cx).unwrap_err();
        assert!(err.message.contains("greeting: OK"), "{}", err.message);
        assert!(run("{ continuation: true }", "a APPEND INBOX {3}\r\n", "+ go ahead\r\n", &[]).is_ok());
        let err = run("{ continuation: true }", "a APPEND INBOX {3}\r\n", "a NO [TRYCREATE] no\r\n", &[]).unwrap_err();
        assert!(err.contains("expected a continuation request"), "{err}");
        assert!(run("{ status: OK, untagged: [BYE] }", "a LOGOUT\r\n", "* BYE bye\r\na OK done\r\n", &[]).is_ok());
        let err = run("{ status: OK, untagged: [BYE] }", "a LOGOUT\r\n", "* BYE bye\r\n", &[]).unwrap_err();
        assert!(err.contains("closed with no tagged response"), "{err}");
        assert!(run("{ untagged: [BYE] }", "a LOGOUT\r\n", "* BYE bye\r\n", &[]).is_ok());
        assert!(run(
            "{ status: OK, text: { regex: '(?i)^logout' } }",
            "a LOGOUT\r\n",
            "a OK Logout done\r\n",
            &[]
        )
        .is_ok());
    }

    #[test]
    fn load_errors_point_into_the_suite() {
        for (expect, want) in [
            ("{ stauts: OK }", "did you mean 'status'"),
            ("{ status: YES }", "status 'YES' is not one of OK, NO, BAD"),
            ("{ status: OK, continuation: true }", "expect different ends"),
            ("{ greeting: OK, tag: a1 }", "have no tag"),
            ("{ status: OK, untagged: ['FLAGS (\\Seen'] }", "cannot read"),
            ("{ status: OK, untagged: [{ regex: '(' }] }", "invalid regex"),
            (
                "{ status: OK, untagged: [{ fetch: 1, items: { 'BODY.PEEK[HEADER]': { length: 3 } } }] }",
                "write BODY[HEADER]",
            ),
            (
                "{ status: OK, untagged: [{ fetch: 1, items: { UID: { contans: x } } }] }",
                "did you mean 'contains'",
            ),
            ("{ status: OK, untagged: [{ regex: x, capture: y }] }", "'capture' goes with 'code'"),
            ("{ status: OK, untagged: [{ fetch: one }] }", "sequence number"),
            ("{ status: OK, absent: [{ code: ALERT, capture: y }] }", "means nothing in absent"),
            ("{ status: OK, untagged: [{ search: 1 }] }", "takes a list"),
            ("{ tag: 'a+1', status: OK }", "not a valid IMAP tag"),
            (
                "{ status: OK, untagged: [{ fetch: 1, items: { 'BODY[]': { file: nope.eml } } }] }",
                "no file",
            ),
        ] {
            let err = load(expect).unwrap_err();
            assert!(err.contains(want), "{expect}: {err}");
            assert!(err.contains("suites/t.yaml:1:"), "{expect}: {err}");
        }
    }

    #[test]
    fn captures_and_templates_are_declared() {
        let e = load("{ status: OK, code: { name: APPENDUID, capture: au }, untagged: [{ regex: '(?P<n>\\d+) EXISTS' }] }").unwrap();
        assert_eq!(e.captures(), ["au", "n"]);
        assert!(e.describe().contains("<tag> OK [APPENDUID]"), "{}", e.describe());
    }
}
