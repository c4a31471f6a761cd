//! Structured DNS steps. On TCP the two-byte length prefix is added to what is sent.
//!
//! ```yaml
//! # A query (defaults: id 4242, type A, class IN, opcode QUERY, rd false, no EDNS):
//! - send: { query: { id: 4242, name: www.example.test, type: A, class: IN, rd: true, opcode: QUERY,
//!                    flags: { cd: true }, edns: { size: 1232, do: false, version: 0 } } }   # or edns: true
//! # A response, from a harness playing a server (qr set; every other flag clear unless named):
//! - send: { response: { id: "${q.id}", question: { name: "${q.name}", type: A }, flags: { aa: true, rd: true },
//!                       rcode: NOERROR, answer: ["www.example.test. 300 IN A 192.0.2.80"], authority: [],
//!                       additional: [], edns: true } }
//! # Records are master-file lines: "name [ttl] [class] type rdata" (TTL 3600 and class IN when left
//! # out; unknown types as "TYPE99 \# 2 abcd"); every value may use ${vars}.
//! - expect:
//!     id: 4242                          # or "${q.id}"
//!     opcode: QUERY                     # a name or a number
//!     rcode: NXDOMAIN                   # a name, a number, or a list of them
//!     flags: { qr: true, aa: true, tc: false, rd: true }   # only the named flags are checked
//!     truncated: true                   # the same as flags: { tc: true }
//!     truncated: allowed                # TC may be set (a responder may cap its UDP size below the
//!                                       # requestor's, RFC 6891 §6.2.5); if it is, the sections, counts
//!                                       # and TTLs are not checked (a truncated message is incomplete)
//!     question: { name: www.example.test, type: A, class: IN, exact_case: false }   # the echoed question
//!     question_count: 1
//!     answer: ["www.example.test. 300 IN A 192.0.2.80", "www.example.test. IN A 192.0.2.81"]
//!     # exactly these records in any order; a record without a TTL matches any TTL; names in any case
//!     authority: [...]                  # likewise; additional: [...] (the OPT record is not in it)
//!     answer_contains: [...]            # these among others (also authority_contains, additional_contains)
//!     answer_count: 2                   # also authority_count, additional_count (OPT not counted)
//!     ttl: { min: 1, max: 300 }         # every answer's TTL; or ttl: 300
//!     edns: { size: { min: 512 }, do: false, version: 0 }   # an OPT record like this; edns: false for none
//!     query: { name: www.example.test, type: A, class: IN, rd: false, exact_case: false }
//!     # the harness as a server: a query (QR=0) asking this
//!     capture: { qid: id, addr: "answer[0].rdata" }
//!     # paths: id, opcode, rcode, flags, question.name, question.type, question.class, edns.size,
//!     # answer_count (and the other counts), answer[N] (the record's text), answer[N].name, .ttl,
//!     # .class, .type, .rdata; likewise authority[N] and additional[N]
//! ```
//!
//! On a mismatch, "expected" and "got" are both dig-like renderings of the message, the expected
//! one built from the received message with every checked field replaced by what was expected;
//! the lines that differ start with `>>`.

use super::codec::{for_transport, DnsFrame};
use super::text::{self, parse_name, parse_record, RecordSpec, SECTIONS};
use super::wire::{type_from, type_name, DnsMessage, Edns, Flag, Name, Question, Record, AD, CD, CLASS_IN, FLAGS, QR, RD, TC};
use crate::proto::{Message, Mismatch, RenderCx, Steps, StructuredExpect, StructuredSend};
use crate::syntax::{Data, LoadCx, Node, Template, Vars};

/// Keys of a structured DNS send.
pub const SEND_KEYS: &[&str] = &["query", "response"];
/// Keys that make an expect a DNS one (`capture` is allowed with them).
pub const EXPECT_KEYS: &[&str] = &[
    "id",
    "opcode",
    "rcode",
    "flags",
    "truncated",
    "question",
    "question_count",
    "answer",
    "authority",
    "additional",
    "answer_contains",
    "authority_contains",
    "additional_contains",
    "answer_count",
    "authority_count",
    "additional_count",
    "ttl",
    "edns",
    "query",
];

/// A value checked at load time when literal, and again at run time after `${var}`s are filled.
#[derive(Debug, Clone)]
struct Val<T> {
    tmpl: Template,
    parse: fn(&str) -> Result<T, String>,
}

impl<T> Val<T> {
    fn get(&self, vars: &Vars) -> Result<T, String> {
        let s = self.tmpl.render(vars)?;
        (self.parse)(&s)
    }

    fn shown(&self) -> String {
        self.tmpl.as_literal().map_or_else(|| "${..}".to_string(), str::to_string)
    }
}

fn p_u16(s: &str) -> Result<u16, String> {
    s.trim().parse().map_err(|_| format!("'{s}' is not a number from 0 to 65535"))
}
fn p_type(s: &str) -> Result<u16, String> {
    type_from(s.trim()).ok_or_else(|| format!("'{s}' is not a record type (A, AAAA, MX, TYPE99, ...)"))
}
fn p_class(s: &str) -> Result<u16, String> {
    text::class_from(s.trim()).ok_or_else(|| format!("'{s}' is not a class (IN, CH, CLASS5, ...)"))
}
fn p_name(s: &str) -> Result<Name, String> {
    parse_name(s)
}
fn p_record(s: &str) -> Result<RecordSpec, String> {
    parse_record(s)
}

fn val<T>(node: &Node, what: &str, parse: fn(&str) -> Result<T, String>, cx: &mut LoadCx, help: &str) -> Option<Val<T>> {
    let tmpl = cx.template(node, what)?;
    if let Some(lit) = tmpl.as_literal() {
        if let Err(e) = parse(lit) {
            cx.err_help(node, format!("{what}: {e}"), help);
            return None;
        }
    }
    Some(Val { tmpl, parse })
}

fn opt_val<T>(
    f: &crate::syntax::Fields,
    key: &str,
    parse: fn(&str) -> Result<T, String>,
    cx: &mut LoadCx,
    help: &str,
) -> Option<Option<Val<T>>> {
    match f.get(key) {
        Some(n) => Some(Some(val(n, key, parse, cx, help)?)),
        None => Some(None),
    }
}

fn records(node: &Node, what: &str, cx: &mut LoadCx) -> Option<Vec<Val<RecordSpec>>> {
    let items: Vec<&Node> = match &node.data {
        Data::Seq(items) => items.iter().collect(),
        Data::Null => Vec::new(),
        Data::Scalar { .. } => vec![node],
        Data::Map(_) => {
            cx.err_help(
                node,
                format!("{what} is a list of records"),
                "e.g. [\"www.example.test. 300 IN A 192.0.2.80\"]",
            );
            return None;
        }
    };
    items
        .into_iter()
        .map(|n| {
            val(
                n,
                "a record",
                p_record,
                cx,
                "a record is 'name [ttl] [class] type rdata', e.g. 'www.example.test. 300 IN A 192.0.2.80'",
            )
        })
        .collect()
}

fn flags_map(node: &Node, cx: &mut LoadCx) -> Option<Vec<(Flag, bool)>> {
    let names: Vec<&str> = FLAGS.iter().map(|f| f.name).collect();
    let f = cx.fields(node, &names, "flags")?;
    let mut out = Vec::new();
    for flag in FLAGS {
        if let Some(n) = f.get(flag.name) {
            out.push((flag, cx.boolean(n, flag.name)?));
        }
    }
    Some(out)
}

fn rcode_val(node: &Node, cx: &mut LoadCx) -> Option<u16> {
    match node.as_str().and_then(text::rcode_from) {
        Some(r) => Some(r),
        None => {
            cx.err_help(
                node,
                "not an RCODE",
                "NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, or a number",
            );
            None
        }
    }
}

fn opcode_val(node: &Node, cx: &mut LoadCx) -> Option<u8> {
    match node.as_str().and_then(text::opcode_from) {
        Some(o) => Some(o),
        None => {
            cx.err_help(
                node,
                "not an OPCODE",
                "QUERY, IQUERY, STATUS, NOTIFY, UPDATE, or a number from 0 to 15",
            );
            None
        }
    }
}

#[derive(Debug, Clone)]
struct EdnsSend {
    size: u16,
    dnssec_ok: bool,
    version: u8,
}

fn edns_send(node: &Node, cx: &mut LoadCx) -> Option<Option<EdnsSend>> {
    let dflt = Edns::default();
    if let Data::Scalar { .. } = node.data {
        return Some(cx.boolean(node, "edns")?.then_some(EdnsSend {
            size: dflt.udp_size,
            dnssec_ok: false,
            version: 0,
        }));
    }
    let f = cx.fields(node, &["size", "do", "version"], "edns")?;
    Some(Some(EdnsSend {
        size: match f.get("size") {
            Some(n) => cx.number(n, "size")?,
            None => dflt.udp_size,
        },
        dnssec_ok: match f.get("do") {
            Some(n) => cx.boolean(n, "do")?,
            None => false,
        },
        version: match f.get("version") {
            Some(n) => cx.number(n, "version")?,
            None => 0,
        },
    }))
}

#[derive(Debug, Clone)]
struct QSpec {
    name: Val<Name>,
    qtype: Val<u16>,
    qclass: Val<u16>,
}

impl QSpec {
    fn get(&self, vars: &Vars) -> Result<Question, String> {
        Ok(Question {
            name: self.name.get(vars)?,
            qtype: self.qtype.get(vars)?,
            qclass: self.qclass.get(vars)?,
        })
    }
}

const TYPE_HELP: &str = "a type like A, AAAA, MX, TXT or TYPE99";
const NAME_HELP: &str = "a name like www.example.test (the trailing dot is optional)";

fn qspec(f: &crate::syntax::Fields, node: &Node, cx: &mut LoadCx) -> Option<QSpec> {
    let Some(name) = f.get("name") else {
        cx.err_help(node, "a question needs 'name'", "e.g. { name: www.example.test, type: A }");
        return None;
    };
    Some(QSpec {
        name: val(name, "name", p_name, cx, NAME_HELP)?,
        qtype: opt_val(f, "type", p_type, cx, TYPE_HELP)?.unwrap_or(Val {
            tmpl: Template::literal("A"),
            parse: p_type,
        }),
        qclass: opt_val(f, "class", p_class, cx, "IN, CH, HS or CLASSn")?.unwrap_or(Val {
            tmpl: Template::literal("IN"),
            parse: p_class,
        }),
    })
}

/// A query or response built from a mapping.
#[derive(Debug)]
struct DnsSend {
    id: Val<u16>,
    qr: bool,
    opcode: u8,
    flags: Vec<(Flag, bool)>,
    rcode: u16,
    question: Option<QSpec>,
    sections: [Vec<Val<RecordSpec>>; 3],
    edns: Option<EdnsSend>,
}

/// The structured `send:`/`expect:` keys of DNS.
pub static STEPS: Steps = Steps {
    send_keys: SEND_KEYS,
    expect_keys: EXPECT_KEYS,
    parse_send,
    parse_expect,
};

/// Keys of `send: { query: {..} }`.
const QUERY_KEYS: &[&str] = &["id", "name", "type", "class", "opcode", "rd", "cd", "ad", "flags", "edns"];
/// Keys of `send: { response: {..} }`.
const RESPONSE_KEYS: &[&str] = &[
    "id",
    "opcode",
    "flags",
    "rcode",
    "question",
    "answer",
    "authority",
    "additional",
    "edns",
];
/// The record sections' keys, in wire order.
const SECTION_KEYS: [&str; 3] = ["answer", "authority", "additional"];

/// Parses `send: { query: {..} }` or `send: { response: {..} }`.
pub fn parse_send(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredSend>> {
    let f = cx.fields(node, SEND_KEYS, "a DNS send")?;
    let (inner, response) = match (f.get("query"), f.get("response")) {
        (Some(q), None) => (q, false),
        (None, Some(r)) => (r, true),
        _ => {
            cx.err_help(node, "give query or response, not both", "one message per send");
            return None;
        }
    };
    let f = match response {
        false => cx.fields(inner, QUERY_KEYS, "a DNS query")?,
        true => cx.fields(inner, RESPONSE_KEYS, "a DNS response")?,
    };
    let id = opt_val(&f, "id", p_u16, cx, "an ID from 0 to 65535, or \"${var}\"")?.unwrap_or(Val {
        tmpl: Template::literal("4242"),
        parse: p_u16,
    });
    let opcode = match f.get("opcode") {
        Some(n) => opcode_val(n, cx)?,
        None => 0,
    };
    let flags = send_flags(&f, cx)?;
    let rcode = match f.get("rcode") {
        Some(n) => rcode_val(n, cx)?,
        None => 0,
    };
    let question = send_question(&f, inner, response, cx)?;
    let sections = send_sections(&f, cx)?;
    let edns = match f.get("edns") {
        Some(n) => edns_send(n, cx)?,
        None => None,
    };
    if edns.is_none() && rcode > 15 {
        cx.err(
            f.get("rcode").unwrap_or(inner),
            "an RCODE above 15 needs an OPT record: add edns: true",
        );
        return None;
    }
    Some(Box::new(DnsSend {
        id,
        qr: response,
        opcode,
        flags,
        rcode,
        question,
        sections,
        edns,
    }))
}

/// The flags a send sets: a query's `rd`, `cd` and `ad` shorthands, then `flags: {..}`.
fn send_flags(f: &crate::syntax::Fields, cx: &mut LoadCx) -> Option<Vec<(Flag, bool)>> {
    let mut flags = Vec::new();
    for flag in [RD, CD, AD] {
        if let Some(n) = f.get(flag.name) {
            flags.push((flag, cx.boolean(n, flag.name)?));
        }
    }
    if let Some(n) = f.get("flags") {
        flags.extend(flags_map(n, cx)?);
    }
    Some(flags)
}

/// The question a send carries: a query's is its own fields; a response's is `question:`, if any.
fn send_question(f: &crate::syntax::Fields, inner: &Node, response: bool, cx: &mut LoadCx) -> Option<Option<QSpec>> {
    if !response {
        return Some(Some(qspec(f, inner, cx)?));
    }
    match f.get("question") {
        Some(q) => {
            let qf = cx.fields(q, &["name", "type", "class"], "a question")?;
            Some(Some(qspec(&qf, q, cx)?))
        }
        None => Some(None),
    }
}

/// The records a send puts in each section.
fn send_sections(f: &crate::syntax::Fields, cx: &mut LoadCx) -> Option<[Vec<Val<RecordSpec>>; 3]> {
    let mut sections: [Vec<Val<RecordSpec>>; 3] = Default::default();
    for (i, key) in SECTION_KEYS.iter().enumerate() {
        if let Some(n) = f.get(key) {
            sections[i] = records(n, key, cx)?;
        }
    }
    Some(sections)
}

impl DnsSend {
    fn message(&self, vars: &Vars) -> Result<DnsMessage, String> {
        let mut m = DnsMessage {
            id: self.id.get(vars)?,
            qr: self.qr,
            opcode: self.opcode,
            rcode: self.rcode,
            ..DnsMessage::default()
        };
        for (flag, on) in &self.flags {
            flag.set(&mut m, *on);
        }
        if let Some(q) = &self.question {
            m.questions.push(q.get(vars)?);
        }
        for (i, recs) in self.sections.iter().enumerate() {
            let out = match i {
                0 => &mut m.answer,
                1 => &mut m.authority,
                _ => &mut m.additional,
            };
            for r in recs {
                out.push(r.get(vars)?.rec);
            }
        }
        m.edns = self.edns.as_ref().map(|e| Edns {
            udp_size: e.size,
            version: e.version,
            dnssec_ok: e.dnssec_ok,
            ..Edns::default()
        });
        Ok(m)
    }
}

impl StructuredSend for DnsSend {
    fn render(&self, cx: &RenderCx) -> Result<Vec<u8>, String> {
        Ok(for_transport(super::wire::emit(&self.message(cx.vars)?), cx.transport))
    }

    fn templates(&self) -> Vec<&Template> {
        let mut t = vec![&self.id.tmpl];
        if let Some(q) = &self.question {
            t.extend([&q.name.tmpl, &q.qtype.tmpl, &q.qclass.tmpl]);
        }
        t.extend(self.sections.iter().flatten().map(|r| &r.tmpl));
        t
    }
}

#[derive(Debug)]
struct QCheck {
    name: Option<Val<Name>>,
    qtype: Option<Val<u16>>,
    qclass: Option<Val<u16>>,
    exact_case: bool,
}

#[derive(Debug, Default)]
struct SectionCheck {
    exact: Option<Vec<Val<RecordSpec>>>,
    contains: Vec<Val<RecordSpec>>,
    count: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
struct Range {
    min: u64,
    max: u64,
}

impl Range {
    fn holds(&self, v: u64) -> bool {
        (self.min..=self.max).contains(&v)
    }
    fn text(&self) -> String {
        match (self.min, self.max) {
            (a, b) if a == b => a.to_string(),
            (a, u64::MAX) => format!(">={a}"),
            (0, b) => format!("<={b}"),
            (a, b) => format!("{a}..{b}"),
        }
    }
}

/// The OPT record an expect asks for; a field left out is not checked.
#[derive(Debug, Default)]
struct EdnsWant {
    size: Option<Range>,
    dnssec_ok: Option<bool>,
    version: Option<u8>,
}

#[derive(Debug)]
enum EdnsCheck {
    Absent,
    Present(EdnsWant),
}

#[derive(Debug, Clone)]
enum Part {
    Id,
    Opcode,
    Rcode,
    Flags,
    QName,
    QType,
    QClass,
    EdnsSize,
    Count(usize),
    Rec(usize, usize, Option<&'static str>),
}

/// Checks on one DNS message.
#[derive(Debug)]
struct DnsExpect {
    id: Option<Val<u16>>,
    opcode: Option<u8>,
    rcode: Option<Vec<u16>>,
    flags: Vec<(Flag, bool)>,
    /// `truncated: allowed`: a message with TC set passes without its sections checked.
    tc_allowed: bool,
    question: Option<QCheck>,
    question_count: Option<usize>,
    sections: [SectionCheck; 3],
    ttl: Option<Range>,
    edns: Option<EdnsCheck>,
    captures: Vec<(String, Part)>,
}

fn range(node: &Node, what: &str, cx: &mut LoadCx) -> Option<Range> {
    match &node.data {
        Data::Map(_) => {
            let f = cx.fields(node, &["min", "max"], what)?;
            let min = match f.get("min") {
                Some(n) => cx.number(n, "min")?,
                None => 0,
            };
            let max = match f.get("max") {
                Some(n) => cx.number(n, "max")?,
                None => u64::MAX,
            };
            Some(Range { min, max })
        }
        _ => {
            let v = cx.number(node, what)?;
            Some(Range { min: v, max: v })
        }
    }
}

fn capture_part(node: &Node, cx: &mut LoadCx) -> Option<Part> {
    let s = cx.string(node, "a capture path")?;
    let part = match s.as_str() {
        "id" => Some(Part::Id),
        "opcode" => Some(Part::Opcode),
        "rcode" => Some(Part::Rcode),
        "flags" => Some(Part::Flags),
        "question.name" => Some(Part::QName),
        "question.type" => Some(Part::QType),
        "question.class" => Some(Part::QClass),
        "edns.size" => Some(Part::EdnsSize),
        "answer_count" => Some(Part::Count(0)),
        "authority_count" => Some(Part::Count(1)),
        "additional_count" => Some(Part::Count(2)),
        other => (|| {
            let (sec, rest) = other.split_once('[')?;
            let si = SECTION_KEYS.iter().position(|x| *x == sec)?;
            let (idx, field) = rest.split_once(']')?;
            let idx: usize = idx.parse().ok()?;
            let field = match field {
                "" => None,
                ".name" => Some("name"),
                ".ttl" => Some("ttl"),
                ".class" => Some("class"),
                ".type" => Some("type"),
                ".rdata" => Some("rdata"),
                _ => return None,
            };
            Some(Part::Rec(si, idx, field))
        })(),
    };
    if part.is_none() {
        cx.err_help(
            node,
            format!("'{s}' is not a capture path"),
            "id, rcode, opcode, flags, question.name, question.type, question.class, edns.size, answer_count, \
             answer[0], answer[0].rdata (.name .ttl .class .type; also authority[N], additional[N])",
        );
    }
    part
}

fn qcheck(qf: &crate::syntax::Fields, cx: &mut LoadCx) -> Option<QCheck> {
    Some(QCheck {
        name: opt_val(qf, "name", p_name, cx, NAME_HELP)?,
        qtype: opt_val(qf, "type", p_type, cx, TYPE_HELP)?,
        qclass: opt_val(qf, "class", p_class, cx, "IN, CH, HS or CLASSn")?,
        exact_case: match qf.get("exact_case") {
            Some(b) => cx.boolean(b, "exact_case")?,
            None => false,
        },
    })
}

/// Parses `expect: { id, rcode, flags, question, answer, ..., capture }`.
pub fn parse_expect(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    let mut keys = EXPECT_KEYS.to_vec();
    keys.push("capture");
    let f = cx.fields(node, &keys, "a DNS expect")?;
    let id = opt_val(&f, "id", p_u16, cx, "an ID from 0 to 65535, or \"${var}\"")?;
    let opcode = match f.get("opcode") {
        Some(n) => Some(opcode_val(n, cx)?),
        None => None,
    };
    let rcode = match f.get("rcode") {
        Some(n) => Some(rcodes(n, cx)?),
        None => None,
    };
    let tc_allowed = f.get("truncated").is_some_and(|n| n.is_keyword("allowed"));
    let mut flags = expect_flags(&f, cx)?;
    let question = expect_question(&f, &mut flags, cx)?;
    let question_count = match f.get("question_count") {
        Some(n) => Some(cx.number(n, "question_count")?),
        None => None,
    };
    let sections = [
        section_check(&f, SECTION_KEYS[0], cx)?,
        section_check(&f, SECTION_KEYS[1], cx)?,
        section_check(&f, SECTION_KEYS[2], cx)?,
    ];
    let ttl = match f.get("ttl") {
        Some(n) => Some(range(n, "ttl", cx)?),
        None => None,
    };
    let edns = match f.get("edns") {
        Some(n) => Some(edns_check(n, cx)?),
        None => None,
    };
    let captures = match f.get("capture") {
        Some(c) => capture_map(c, cx)?,
        None => Vec::new(),
    };
    Some(Box::new(DnsExpect {
        id,
        opcode,
        rcode,
        flags,
        tc_allowed,
        question,
        question_count,
        sections,
        ttl,
        edns,
        captures,
    }))
}

/// One RCODE or a list of them.
fn rcodes(node: &Node, cx: &mut LoadCx) -> Option<Vec<u16>> {
    match &node.data {
        Data::Seq(items) => items.iter().map(|n| rcode_val(n, cx)).collect(),
        _ => Some(vec![rcode_val(node, cx)?]),
    }
}

/// Sets `flag` in an expect's list, replacing what an earlier key said about it.
fn put_flag(flags: &mut Vec<(Flag, bool)>, flag: Flag, on: bool) {
    flags.retain(|(f, _)| *f != flag);
    flags.push((flag, on));
}

/// The flags an expect checks: `flags: {..}`, then `truncated`.
fn expect_flags(f: &crate::syntax::Fields, cx: &mut LoadCx) -> Option<Vec<(Flag, bool)>> {
    let mut flags = match f.get("flags") {
        Some(n) => flags_map(n, cx)?,
        None => Vec::new(),
    };
    if let Some(n) = f.get("truncated").filter(|n| !n.is_keyword("allowed")) {
        let on = match n.as_str() {
            Some("true" | "yes") => true,
            Some("false" | "no") => false,
            _ => {
                cx.err_help(
                    n,
                    "truncated must be true, false or allowed",
                    "allowed: TC may be set, and then the sections are not checked (RFC 6891 §6.2.5)",
                );
                return None;
            }
        };
        put_flag(&mut flags, TC, on);
    }
    Some(flags)
}

/// `question` (of a response) or `query` (a query received, which also checks QR, RD and CD).
fn expect_question(f: &crate::syntax::Fields, flags: &mut Vec<(Flag, bool)>, cx: &mut LoadCx) -> Option<Option<QCheck>> {
    match (f.get("question"), f.get("query")) {
        (Some(_), Some(q)) => {
            cx.err_help(
                q,
                "give question (in a response) or query (a query received), not both",
                "query checks the question too",
            );
            None
        }
        (Some(n), None) => {
            let qf = cx.fields(n, &["name", "type", "class", "exact_case"], "a question")?;
            Some(Some(qcheck(&qf, cx)?))
        }
        (None, Some(n)) => Some(Some(query_check(n, flags, cx)?)),
        (None, None) => Some(None),
    }
}

/// `query: {..}`: the question, and the flags a query has.
fn query_check(n: &Node, flags: &mut Vec<(Flag, bool)>, cx: &mut LoadCx) -> Option<QCheck> {
    let qf = cx.fields(n, &["name", "type", "class", "exact_case", "rd", "cd"], "a query")?;
    let q = qcheck(&qf, cx)?;
    put_flag(flags, QR, false);
    for flag in [RD, CD] {
        if let Some(b) = qf.get(flag.name) {
            let on = cx.boolean(b, flag.name)?;
            put_flag(flags, flag, on);
        }
    }
    Some(q)
}

/// `sec`, `sec_contains` and `sec_count` for one record section.
fn section_check(f: &crate::syntax::Fields, sec: &str, cx: &mut LoadCx) -> Option<SectionCheck> {
    let mut check = SectionCheck::default();
    if let Some(n) = f.get(sec) {
        check.exact = Some(records(n, sec, cx)?);
    }
    let key = format!("{sec}_contains");
    if let Some(n) = f.get(&key) {
        if check.exact.is_some() {
            cx.err_help(n, format!("give {sec} (exactly these) or {key} (these among others), not both"), "");
            return None;
        }
        check.contains = records(n, &key, cx)?;
    }
    if let Some(n) = f.get(&format!("{sec}_count")) {
        check.count = Some(cx.number(n, "a count")?);
    }
    Some(check)
}

/// `edns: true`, `edns: false`, or the fields the OPT record must have.
fn edns_check(n: &Node, cx: &mut LoadCx) -> Option<EdnsCheck> {
    if let Data::Scalar { .. } = n.data {
        return Some(match cx.boolean(n, "edns")? {
            true => EdnsCheck::Present(EdnsWant::default()),
            false => EdnsCheck::Absent,
        });
    }
    let ef = cx.fields(n, &["size", "do", "version"], "edns")?;
    Some(EdnsCheck::Present(EdnsWant {
        size: match ef.get("size") {
            Some(s) => Some(range(s, "size", cx)?),
            None => None,
        },
        dnssec_ok: match ef.get("do") {
            Some(b) => Some(cx.boolean(b, "do")?),
            None => None,
        },
        version: match ef.get("version") {
            Some(v) => Some(cx.number(v, "version")?),
            None => None,
        },
    }))
}

/// `capture: { var: path, .. }`.
fn capture_map(c: &Node, cx: &mut LoadCx) -> Option<Vec<(String, Part)>> {
    let Data::Map(pairs) = &c.data else {
        cx.err_help(
            c,
            "capture must be a mapping of variable to path",
            "e.g. capture: { qid: id, addr: \"answer[0].rdata\" }",
        );
        return None;
    };
    let mut captures = Vec::new();
    for (k, v) in pairs {
        let name = cx.string(k, "a variable name")?;
        captures.push((name, capture_part(v, cx)?));
    }
    Some(captures)
}

/// Pairs expected records with received ones, each used once (Kuhn's augmenting paths: a record
/// without a TTL must not take the one a TTL-specific record needs).
fn pair(want: &[RecordSpec], got: &[Record]) -> Vec<Option<usize>> {
    let ok: Vec<Vec<bool>> = want.iter().map(|w| got.iter().map(|g| w.matches(g)).collect()).collect();
    let mut owner: Vec<Option<usize>> = vec![None; got.len()];
    fn augment(w: usize, ok: &[Vec<bool>], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
        for g in 0..owner.len() {
            if ok[w][g] && !seen[g] {
                seen[g] = true;
                if owner[g].is_none_or(|o| augment(o, ok, owner, seen)) {
                    owner[g] = Some(w);
                    return true;
                }
            }
        }
        false
    }
    for w in 0..want.len() {
        let mut seen = vec![false; got.len()];
        augment(w, &ok, &mut owner, &mut seen);
    }
    let mut out = vec![None; want.len()];
    for (g, o) in owner.iter().enumerate() {
        if let Some(w) = o {
            out[*w] = Some(g);
        }
    }
    out
}

/// Two dig-like renderings built side by side; `true` marks a line that differs.
#[derive(Default)]
struct Views {
    want: Vec<(bool, String)>,
    got: Vec<(bool, String)>,
}

impl Views {
    fn line(&mut self, want: Option<String>, got: Option<String>) {
        let differ = want != got;
        if let Some(w) = want {
            self.want.push((differ, w));
        }
        if let Some(g) = got {
            self.got.push((differ, g));
        }
    }

    fn both(&mut self, s: String) {
        self.line(Some(s.clone()), Some(s));
    }

    fn text(lines: &[(bool, String)]) -> String {
        lines
            .iter()
            .map(|(d, l)| format!("{}{l}", if *d { ">> " } else { "   " }))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn mm(message: String, views: &Views) -> Mismatch {
    Mismatch {
        message,
        expected: Views::text(&views.want),
        got: Views::text(&views.got),
        at: None,
    }
}

fn setup_err(e: String) -> Mismatch {
    Mismatch {
        message: e,
        expected: String::new(),
        got: String::new(),
        at: None,
    }
}

/// One record section's expected records, each paired with the received record it matched.
#[derive(Default)]
struct Paired {
    want: Vec<RecordSpec>,
    /// Whether the section must hold nothing else.
    exact: bool,
    pairs: Vec<Option<usize>>,
}

impl Paired {
    /// The expected records that no received one matched.
    fn missing(&self) -> impl Iterator<Item = &RecordSpec> {
        self.want.iter().zip(&self.pairs).filter(|(_, g)| g.is_none()).map(|(w, _)| w)
    }

    /// Whether received record `g` matched an expected one.
    fn matched(&self, g: usize) -> bool {
        self.pairs.contains(&Some(g))
    }
}

/// What a check has found so far: the problems in the order found, and the renderings.
#[derive(Default)]
struct Report {
    problems: Vec<String>,
    views: Views,
}

impl QCheck {
    /// The question expected, built from the one received; problems for what differs.
    fn check(&self, got: Option<&Question>, vars: &Vars, problems: &mut Vec<String>) -> Result<Question, Mismatch> {
        let mut q = got.cloned().unwrap_or(Question {
            name: Name::root(),
            qtype: super::wire::rtype::A,
            qclass: CLASS_IN,
        });
        let mut bad = Vec::new();
        if let Some(n) = &self.name {
            let wn = n.get(vars).map_err(setup_err)?;
            self.check_name(got, wn, &mut q, &mut bad, problems);
        }
        if let Some(t) = &self.qtype {
            let wt = t.get(vars).map_err(setup_err)?;
            if got.is_none_or(|g| g.qtype != wt) {
                bad.push(format!("type {}", type_name(wt)));
                q.qtype = wt;
            }
        }
        if let Some(c) = &self.qclass {
            let wc = c.get(vars).map_err(setup_err)?;
            if got.is_none_or(|g| g.qclass != wc) {
                bad.push(format!("class {}", text::class_name(wc)));
                q.qclass = wc;
            }
        }
        problems.extend(question_problem(got, &q, &bad));
        Ok(q)
    }

    /// The name; one that differs only in case is its own problem, not a wrong question.
    fn check_name(&self, got: Option<&Question>, wn: Name, q: &mut Question, bad: &mut Vec<String>, problems: &mut Vec<String>) {
        let same = match self.exact_case {
            true => got.is_some_and(|g| g.name == wn),
            false => got.is_some_and(|g| g.name.eq_ignore_case(&wn)),
        };
        if same {
            return;
        }
        match got {
            Some(g) if g.name.eq_ignore_case(&wn) => {
                problems.push(format!("the question's name came back as {}, not in the case asked ({wn})", g.name))
            }
            _ => bad.push(format!("name {wn}")),
        }
        q.name = wn;
    }
}

/// What is wrong with the question received, given the parts of it that were not as expected.
fn question_problem(got: Option<&Question>, want: &Question, bad: &[String]) -> Option<String> {
    match got {
        None => Some(format!(
            "no question section, expected {}",
            text::question_line(want).trim_start_matches(';')
        )),
        Some(g) if !bad.is_empty() => Some(format!(
            "the question is {}, expected {}",
            text::question_line(g).trim_start_matches(';'),
            bad.join(", ")
        )),
        Some(_) => None,
    }
}

impl EdnsWant {
    /// The OPT record expected, built from the one received; problems for what differs.
    fn check(&self, got: Option<&Edns>, problems: &mut Vec<String>) -> Edns {
        let mut e = got.cloned().unwrap_or_default();
        match got {
            None => problems.push("no OPT record (RFC 6891 §7: a responder answers EDNS with EDNS)".into()),
            Some(got) => {
                if let Some(r) = self.size.filter(|r| !r.holds(got.udp_size as u64)) {
                    problems.push(format!("EDNS UDP payload size {}, expected {}", got.udp_size, r.text()));
                    e.udp_size = r.min.min(u16::MAX as u64) as u16;
                }
                if let Some(d) = self.dnssec_ok.filter(|d| got.dnssec_ok != *d) {
                    problems.push(format!("the DO bit is {}, expected {}", got.dnssec_ok as u8, d as u8));
                }
                if let Some(ver) = self.version.filter(|v| got.version != *v) {
                    problems.push(format!("EDNS version {}, expected {ver}", got.version));
                }
            }
        }
        if let Some(d) = self.dnssec_ok {
            e.dnssec_ok = d;
        }
        if let Some(ver) = self.version {
            e.version = ver;
        }
        e
    }
}

/// A record's line with the expected TTL range in place of its TTL.
fn with_ttl(r: &Record, t: Range) -> String {
    format!(
        "{} {} {} {} {}",
        r.name,
        t.text(),
        text::class_name(r.class),
        type_name(r.rtype),
        text::rdata_text(r)
    )
}

/// The problems as one message; a response's also shows the query it answers.
fn failure_message(problems: &[String], query: Option<&DnsMessage>) -> String {
    let mut message = problems.join("; ");
    if let Some(q) = query {
        let asked = q
            .questions
            .first()
            .map(|x| text::question_line(x).trim_start_matches(';').to_string());
        message.push_str(&format!(
            " — the query: id {}, {}, flags: {}",
            q.id,
            asked.unwrap_or_else(|| "no question".into()),
            Some(text::flags_text(q)).filter(|f| !f.is_empty()).unwrap_or_else(|| "none".into())
        ));
    }
    message
}

impl DnsExpect {
    /// Each section's expected records with `${var}`s filled, paired with those of `m`.
    fn resolve(&self, m: &DnsMessage, vars: &Vars) -> Result<[Paired; 3], Mismatch> {
        let mut out: [Paired; 3] = Default::default();
        for (i, s) in self.sections.iter().enumerate() {
            let (list, exact) = match &s.exact {
                Some(e) => (e, true),
                None => (&s.contains, false),
            };
            let want: Vec<RecordSpec> = list.iter().map(|r| r.get(vars)).collect::<Result<_, _>>().map_err(setup_err)?;
            let pairs = pair(&want, text::section(m, i));
            out[i] = Paired { want, exact, pairs };
        }
        Ok(out)
    }

    fn capture(&self, part: &Part, m: &DnsMessage) -> Option<String> {
        let q = m.questions.first();
        Some(match part {
            Part::Id => m.id.to_string(),
            Part::Opcode => text::opcode_name(m.opcode),
            Part::Rcode => text::rcode_name(m.rcode),
            Part::Flags => text::flags_text(m),
            Part::QName => q?.name.to_string(),
            Part::QType => type_name(q?.qtype),
            Part::QClass => text::class_name(q?.qclass),
            Part::EdnsSize => m.edns.as_ref()?.udp_size.to_string(),
            Part::Count(i) => text::section(m, *i).len().to_string(),
            Part::Rec(si, idx, field) => {
                let r = text::section(m, *si).get(*idx)?;
                match field {
                    None => text::record_text(r),
                    Some("name") => r.name.to_string(),
                    Some("ttl") => r.ttl.to_string(),
                    Some("class") => text::class_name(r.class),
                    Some("type") => type_name(r.rtype),
                    Some(_) => text::rdata_text(r),
                }
            }
        })
    }

    /// The message's DNS frame, which the codec attaches to every message it decodes.
    fn frame<'m>(&self, msg: &'m Message) -> Result<&'m DnsFrame, Mismatch> {
        msg.detail
            .as_ref()
            .and_then(|d| d.downcast_ref::<DnsFrame>())
            .ok_or_else(|| Mismatch {
                message: "not a DNS message".into(),
                expected: self.describe(),
                got: msg.summary.clone(),
                at: None,
            })
    }

    /// ID, opcode and status, and the header line of the renderings.
    fn check_header(&self, m: &DnsMessage, want: &mut DnsMessage, vars: &Vars, r: &mut Report) -> Result<(), Mismatch> {
        if let Some(id) = &self.id {
            want.id = id.get(vars).map_err(setup_err)?;
            if want.id != m.id {
                r.problems
                    .push(format!("id {}, expected {} (a response carries its query's ID)", m.id, want.id));
            }
        }
        if let Some(o) = self.opcode {
            want.opcode = o;
            if o != m.opcode {
                r.problems
                    .push(format!("opcode {}, expected {}", text::opcode_name(m.opcode), text::opcode_name(o)));
            }
        }
        self.check_rcode(m, want, r);
        r.views.line(Some(text::header_line(want)), Some(text::header_line(m)));
        Ok(())
    }

    /// The status: any of those listed; the expected rendering shows the first.
    fn check_rcode(&self, m: &DnsMessage, want: &mut DnsMessage, r: &mut Report) {
        let Some(rs) = &self.rcode else { return };
        if !rs.contains(&m.rcode) {
            if let Some(&first) = rs.first() {
                want.rcode = first;
            }
            let names: Vec<String> = rs.iter().map(|r| text::rcode_name(*r)).collect();
            r.problems
                .push(format!("status {}, expected {}", text::rcode_name(m.rcode), names.join(" or ")));
        }
    }

    /// The flags named; the others are not checked.
    fn check_flags(&self, m: &DnsMessage, want: &mut DnsMessage, r: &mut Report) {
        for (flag, on) in &self.flags {
            flag.set(want, *on);
            if flag.get(m) != *on {
                let what = match flag {
                    f if *f == QR && !on => "a response (QR=1) where a query was expected".to_string(),
                    _ => format!(
                        "{} is {}, expected {}",
                        flag.name,
                        if *on { "clear" } else { "set" },
                        if *on { "set" } else { "clear" }
                    ),
                };
                r.problems.push(what);
            }
        }
    }

    /// The number of questions, when given.
    fn check_question_count(&self, m: &DnsMessage, r: &mut Report) {
        if let Some(n) = self.question_count {
            if n != m.questions.len() {
                r.problems.push(format!("{} questions, expected {n}", m.questions.len()));
            }
        }
    }

    /// Section `i` (answer, authority or additional): records it lacks, records it should not
    /// have, and its count.
    fn check_section(&self, i: usize, m: &DnsMessage, s: &Paired, r: &mut Report) {
        let got = text::section(m, i);
        let name = SECTIONS[i].to_ascii_lowercase();
        let missing: Vec<String> = s.missing().map(RecordSpec::text).collect();
        if !missing.is_empty() {
            r.problems.push(format!("the {name} section lacks {}", missing.join(", ")));
        }
        if s.exact {
            let extra: Vec<String> = (0..got.len())
                .filter(|g| !s.matched(*g))
                .map(|g| text::record_text(&got[g]))
                .collect();
            if !extra.is_empty() {
                r.problems.push(format!("the {name} section also has {}", extra.join(", ")));
            }
        }
        if let Some(n) = self.sections[i].count {
            if n != got.len() {
                r.problems.push(format!("{} {name} records, expected {n}", got.len()));
            }
        }
    }

    /// The counts the expected rendering shows: as received, except where something was expected.
    fn want_counts(&self, m: &DnsMessage, sections: &[Paired; 3]) -> [usize; 4] {
        let mut counts = text::counts(m);
        if let Some(n) = self.question_count {
            counts[0] = n;
        } else if self.question.is_some() && m.questions.is_empty() {
            counts[0] = 1;
        }
        for (i, s) in sections.iter().enumerate() {
            counts[i + 1] = match self.sections[i].count {
                Some(n) => n,
                None if s.exact => s.want.len(),
                None => text::section(m, i).len() + s.missing().count(),
            };
        }
        let opt = match &self.edns {
            Some(EdnsCheck::Absent) => false,
            Some(EdnsCheck::Present(_)) => true,
            None => m.edns.is_some(),
        };
        counts[3] += opt as usize;
        counts
    }

    /// The OPT record, and the OPT pseudosection of the renderings.
    fn check_edns(&self, m: &DnsMessage, r: &mut Report) {
        let want = match &self.edns {
            None => m.edns.clone(),
            Some(EdnsCheck::Absent) => {
                if m.edns.is_some() {
                    r.problems.push("an OPT record, expected none".into());
                }
                None
            }
            Some(EdnsCheck::Present(w)) => Some(w.check(m.edns.as_ref(), &mut r.problems)),
        };
        if want.is_some() || m.edns.is_some() {
            r.views.both(";; OPT PSEUDOSECTION:".into());
            r.views
                .line(want.as_ref().map(text::edns_line), m.edns.as_ref().map(text::edns_line));
        }
    }

    /// The question, and the question section of the renderings.
    fn check_question(&self, m: &DnsMessage, vars: &Vars, r: &mut Report) -> Result<(), Mismatch> {
        let mut want: Vec<String> = m.questions.iter().map(text::question_line).collect();
        if let Some(qc) = &self.question {
            let line = text::question_line(&qc.check(m.questions.first(), vars, &mut r.problems)?);
            match want.first_mut() {
                Some(first) => *first = line,
                None => want.push(line),
            }
        }
        if self.question_count == Some(0) {
            want.clear();
        }
        if !want.is_empty() || !m.questions.is_empty() {
            r.views.both(";; QUESTION SECTION:".into());
            for i in 0..want.len().max(m.questions.len()) {
                r.views.line(want.get(i).cloned(), m.questions.get(i).map(text::question_line));
            }
        }
        Ok(())
    }

    /// Section `i` in the renderings, and the answers whose TTL is out of range.
    fn show_section(&self, i: usize, m: &DnsMessage, s: &Paired, r: &mut Report) {
        let got = text::section(m, i);
        if got.is_empty() && s.want.is_empty() {
            return;
        }
        r.views.both(format!(";; {} SECTION:", SECTIONS[i]));
        for (gi, rec) in got.iter().enumerate() {
            let line = text::record_text(rec);
            match self.ttl.filter(|t| i == 0 && !t.holds(rec.ttl as u64)) {
                Some(t) => {
                    r.problems.push(format!("TTL {} outside {} in {line}", rec.ttl, t.text()));
                    r.views.line(Some(with_ttl(rec, t)), Some(line));
                }
                None if s.exact && !s.matched(gi) => r.views.line(None, Some(line)),
                None => r.views.both(line),
            }
        }
        for w in s.missing() {
            r.views.line(Some(w.text()), None);
        }
    }

    /// The captured values; a path the message lacks fails the check.
    fn captured(&self, m: &DnsMessage, views: &Views) -> Result<Vec<(String, String)>, Mismatch> {
        self.captures
            .iter()
            .map(|(var, part)| match self.capture(part, m) {
                Some(val) => Ok((var.clone(), val)),
                None => Err(mm(
                    format!("nothing to capture into '{var}': the message has no {}", part_text(part)),
                    views,
                )),
            })
            .collect()
    }
}

fn part_text(p: &Part) -> String {
    match p {
        Part::Id => "id".into(),
        Part::Opcode => "opcode".into(),
        Part::Rcode => "rcode".into(),
        Part::Flags => "flags".into(),
        Part::QName => "question.name".into(),
        Part::QType => "question.type".into(),
        Part::QClass => "question.class".into(),
        Part::EdnsSize => "edns.size".into(),
        Part::Count(i) => format!("{}_count", SECTIONS[*i].to_ascii_lowercase()),
        Part::Rec(si, idx, f) => format!(
            "{}[{idx}]{}",
            SECTIONS[*si].to_ascii_lowercase(),
            f.map(|f| format!(".{f}")).unwrap_or_default()
        ),
    }
}

impl StructuredExpect for DnsExpect {
    fn check(&self, msg: &Message, cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        let frame = self.frame(msg)?;
        let m = &frame.msg;
        let mut r = Report::default();
        // The expected rendering is the received message with every checked field as expected,
        // so that only the lines that differ are marked.
        let mut want = m.clone();
        self.check_header(m, &mut want, cx.vars, &mut r)?;
        self.check_flags(m, &mut want, &mut r);
        self.check_question_count(m, &mut r);
        // `truncated: allowed` and TC set: what came is incomplete by design, so only the header,
        // the question and EDNS are checked.
        let cut = self.tc_allowed && TC.get(m);
        let sections = if cut { Default::default() } else { self.resolve(m, cx.vars)? };
        for (i, s) in sections.iter().enumerate().filter(|_| !cut) {
            self.check_section(i, m, s, &mut r);
        }
        let counts = if cut { text::counts(m) } else { self.want_counts(m, &sections) };
        r.views
            .line(Some(text::flags_line(&want, counts)), Some(text::flags_line(m, text::counts(m))));
        self.check_edns(m, &mut r);
        self.check_question(m, cx.vars, &mut r)?;
        for (i, s) in sections.iter().enumerate().filter(|_| !cut) {
            self.show_section(i, m, s, &mut r);
        }
        if !r.problems.is_empty() {
            return Err(mm(failure_message(&r.problems, frame.query.as_ref()), &r.views));
        }
        self.captured(m, &r.views)
    }

    fn templates(&self) -> Vec<&Template> {
        let mut t: Vec<&Template> = self.id.iter().map(|v| &v.tmpl).collect();
        if let Some(q) = &self.question {
            t.extend(q.name.iter().map(|v| &v.tmpl));
            t.extend(q.qtype.iter().map(|v| &v.tmpl));
            t.extend(q.qclass.iter().map(|v| &v.tmpl));
        }
        for s in &self.sections {
            t.extend(s.exact.iter().flatten().chain(&s.contains).map(|v| &v.tmpl));
        }
        t
    }

    fn captures(&self) -> Vec<String> {
        self.captures.iter().map(|(n, _)| n.clone()).collect()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        let query = self.flags.iter().any(|(f, on)| *f == QR && !on);
        if let Some(id) = &self.id {
            parts.push(format!("id {}", id.shown()));
        }
        if let Some(rs) = &self.rcode {
            parts.push(format!(
                "status {}",
                rs.iter().map(|r| text::rcode_name(*r)).collect::<Vec<_>>().join(" or ")
            ));
        }
        if !self.flags.is_empty() {
            let f: Vec<String> = self
                .flags
                .iter()
                .map(|(f, on)| format!("{}{}", if *on { "+" } else { "-" }, f.name))
                .collect();
            parts.push(format!("flags {}", f.join(" ")));
        }
        if let Some(q) = &self.question {
            let name = q.name.as_ref().map_or("?".into(), Val::shown);
            let ty = q.qtype.as_ref().map_or("?".into(), Val::shown);
            parts.push(format!("question {name} {ty}"));
        }
        for (i, s) in self.sections.iter().enumerate() {
            let sec = SECTIONS[i].to_ascii_lowercase();
            if let Some(e) = &s.exact {
                let recs: Vec<String> = e.iter().map(Val::shown).collect();
                parts.push(format!("{sec} [{}]", recs.join(", ")));
            }
            if !s.contains.is_empty() {
                let recs: Vec<String> = s.contains.iter().map(Val::shown).collect();
                parts.push(format!("{sec} with [{}]", recs.join(", ")));
            }
            if let Some(n) = s.count {
                parts.push(format!("{n} {sec} records"));
            }
        }
        match &self.edns {
            Some(EdnsCheck::Absent) => parts.push("no OPT record".into()),
            Some(EdnsCheck::Present(_)) => parts.push("an OPT record".into()),
            None => {}
        }
        format!("a DNS {} with {}", if query { "query" } else { "response" }, parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::emit;
    use super::*;
    use crate::proto::Transport;
    use crate::proto::{Codec, Direction, Frame};

    use crate::proto::steps::testing;

    /// The structured steps of a list of `- send: ...` / `- expect: ...` lines, at the indexes a
    /// case gives them after its `connect` (index 0).
    #[derive(Debug)]
    struct Parsed(Vec<Option<Parsed1>>);
    #[derive(Debug)]
    enum Parsed1 {
        Send(std::sync::Arc<dyn StructuredSend>),
        Expect(Box<dyn StructuredExpect>),
    }

    fn suite(steps: &str) -> Result<Parsed, String> {
        let mut out = vec![None];
        for line in steps.lines() {
            let line = line.trim_start().trim_start_matches("- ");
            if let Some(y) = line.strip_prefix("send: ") {
                out.push(Some(Parsed1::Send(std::sync::Arc::from(testing::send(&STEPS, y)?))));
            } else if let Some(y) = line.strip_prefix("expect: ") {
                out.push(Some(Parsed1::Expect(testing::expect(&STEPS, y)?)));
            } else {
                return Err(format!("not a send or expect step: {line}"));
            }
        }
        Ok(Parsed(out))
    }

    fn send_of(s: &Parsed, i: usize) -> std::sync::Arc<dyn StructuredSend> {
        match &s.0[i] {
            Some(Parsed1::Send(st)) => st.clone(),
            _ => panic!("step {i} is not a send"),
        }
    }

    fn expect_of(s: &Parsed, i: usize) -> &dyn StructuredExpect {
        match &s.0[i] {
            Some(Parsed1::Expect(e)) => e.as_ref(),
            _ => panic!("step {i} is not an expect"),
        }
    }

    fn cx(vars: &Vars, transport: Transport) -> RenderCx<'_> {
        RenderCx {
            vars,
            base_dir: std::path::Path::new("."),
            transport,
            local: None,
        }
    }

    fn decode(bytes: &[u8], dir: Direction) -> Message {
        let mut c = crate::proto::dns::DnsCodec::new(dir, Transport::Udp);
        match c.decode(bytes, true).unwrap() {
            Frame::Message(m, _) => m,
            Frame::Incomplete => panic!(),
        }
    }

    fn response(records: &[&str], rcode: u16) -> DnsMessage {
        let mut m = DnsMessage {
            id: 4242,
            qr: true,
            aa: true,
            rcode,
            questions: vec![Question {
                name: parse_name("www.example.test").unwrap(),
                qtype: 1,
                qclass: 1,
            }],
            ..DnsMessage::default()
        };
        m.answer = records.iter().map(|r| parse_record(r).unwrap().rec).collect();
        m
    }

    #[test]
    fn a_query_send_renders_with_a_length_prefix_on_tcp() {
        let s = suite("      - send: { query: { id: 7, name: www.example.test, type: AAAA, rd: true, edns: { size: 4096, do: true } } }\n      - expect: { rcode: NOERROR }\n").unwrap();
        let st = send_of(&s, 1);
        let vars = Vars::new();
        let udp = st.render(&cx(&vars, Transport::Udp)).unwrap();
        let tcp = st.render(&cx(&vars, Transport::Tcp)).unwrap();
        assert_eq!(&tcp[..2], &(udp.len() as u16).to_be_bytes());
        assert_eq!(&tcp[2..], &udp[..]);
        let m = super::super::wire::parse(&udp).unwrap().msg;
        assert_eq!((m.id, m.rd, m.qr, m.questions[0].qtype), (7, true, false, 28));
        assert_eq!(m.edns.map(|e| (e.udp_size, e.dnssec_ok)), Some((4096, true)));
    }

    #[test]
    fn a_response_send_uses_captured_variables() {
        let s = suite(concat!(
            "      - expect: { query: { name: www.example.test, type: A }, capture: { qid: id, qn: question.name } }\n",
            "      - send: { response: { id: \"${qid}\", question: { name: \"${qn}\", type: A }, flags: { aa: true },",
            " answer: [\"${qn} 60 IN A 192.0.2.1\"], edns: true } }\n"
        ))
        .unwrap();
        let q = DnsMessage {
            id: 999,
            questions: response(&[], 0).questions,
            ..DnsMessage::default()
        };
        let mut vars = Vars::new();
        let caps = expect_of(&s, 1)
            .check(&decode(&emit(&q), Direction::ClientToServer), &cx(&vars, Transport::Udp))
            .unwrap();
        vars.extend(caps);
        assert_eq!(vars["qn"], "www.example.test.");
        let bytes = send_of(&s, 2).render(&cx(&vars, Transport::Udp)).unwrap();
        let m = super::super::wire::parse(&bytes).unwrap().msg;
        assert_eq!((m.id, m.qr, m.aa, m.answer.len(), m.edns.is_some()), (999, true, true, 1, true));
    }

    #[test]
    fn truncated_allowed_takes_tc_without_sections_but_not_a_short_answer_without_tc() {
        let s = suite("      - expect: { id: 4242, rcode: NOERROR, truncated: allowed, answer_count: 2, ttl: 300 }\n").unwrap();
        let e = expect_of(&s, 1);
        let vars = Vars::new();
        let check = |m: &DnsMessage| e.check(&decode(&emit(m), Direction::ServerToClient), &cx(&vars, Transport::Udp));
        let whole = response(
            &["www.example.test. 300 IN A 192.0.2.80", "www.example.test. 300 IN A 192.0.2.81"],
            0,
        );
        check(&whole).unwrap();
        let mut cut = response(&[], 0);
        cut.tc = true;
        check(&cut).unwrap();
        let short = response(&["www.example.test. 300 IN A 192.0.2.80"], 0);
        let mm = check(&short).unwrap_err();
        assert!(mm.message.contains("1 answer records, expected 2"), "{}", mm.message);
        let mut wrong = response(&[], 2);
        wrong.tc = true;
        assert!(check(&wrong).is_err(), "the header is still checked");
        let err = suite("      - expect: { truncated: maybe }\n").unwrap_err();
        assert!(err.contains("truncated must be true, false or allowed"), "{err}");
    }

    #[test]
    fn answers_match_as_sets_and_mismatches_mark_the_lines() {
        let s = suite(concat!(
            "      - send: { query: { name: www.example.test } }\n",
            "      - expect: { id: 4242, rcode: NOERROR, flags: { qr: true, aa: true }, question: { name: WWW.example.test, type: A },",
            " answer: [\"www.example.test. IN A 192.0.2.81\", \"www.example.test. 300 IN A 192.0.2.80\"], ttl: { min: 1, max: 300 } }\n"
        ))
        .unwrap();
        let e = expect_of(&s, 2);
        let vars = Vars::new();
        let good = response(
            &["www.example.test. 300 IN A 192.0.2.80", "www.example.test. 300 IN A 192.0.2.81"],
            0,
        );
        e.check(&decode(&emit(&good), Direction::ServerToClient), &cx(&vars, Transport::Udp))
            .unwrap();
        let mut bad = response(
            &["www.example.test. 300 IN A 192.0.2.80", "www.example.test. 300 IN A 192.0.2.99"],
            3,
        );
        bad.aa = false;
        let mm = e
            .check(&decode(&emit(&bad), Direction::ServerToClient), &cx(&vars, Transport::Udp))
            .unwrap_err();
        assert!(mm.message.contains("status NXDOMAIN, expected NOERROR"), "{}", mm.message);
        assert!(mm.message.contains("aa is clear, expected set"), "{}", mm.message);
        assert!(mm.message.contains("lacks www.example.test. IN A 192.0.2.81"), "{}", mm.message);
        assert!(
            mm.message.contains("also has www.example.test. 300 IN A 192.0.2.99"),
            "{}",
            mm.message
        );
        assert_eq!(
            mm.expected,
            [
                ">> ;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 4242",
                ">> ;; flags: qr aa; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 0",
                "   ;; QUESTION SECTION:",
                "   ;www.example.test. IN A",
                "   ;; ANSWER SECTION:",
                "   www.example.test. 300 IN A 192.0.2.80",
                ">> www.example.test. IN A 192.0.2.81",
            ]
            .join("\n")
        );
        assert_eq!(
            mm.got,
            [
                ">> ;; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 4242",
                ">> ;; flags: qr; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 0",
                "   ;; QUESTION SECTION:",
                "   ;www.example.test. IN A",
                "   ;; ANSWER SECTION:",
                "   www.example.test. 300 IN A 192.0.2.80",
                ">> www.example.test. 300 IN A 192.0.2.99",
            ]
            .join("\n")
        );
    }

    #[test]
    fn contains_counts_ttl_edns_and_case() {
        let s = suite(concat!(
            "      - send: { query: { name: WwW.ExAmPlE.TeSt } }\n",
            "      - expect: { question: { name: WwW.ExAmPlE.TeSt, exact_case: true }, answer_contains: [\"www.example.test. A 192.0.2.80\"],",
            " answer_count: 1, ttl: 60, edns: { size: { min: 512 } }, truncated: false }\n"
        ))
        .unwrap();
        let e = expect_of(&s, 2);
        let vars = Vars::new();
        let mut r = response(&["www.example.test. 300 IN A 192.0.2.80"], 0);
        r.edns = Some(Edns::default());
        let mm = e
            .check(&decode(&emit(&r), Direction::ServerToClient), &cx(&vars, Transport::Udp))
            .unwrap_err();
        assert!(
            mm.message
                .contains("came back as www.example.test., not in the case asked (WwW.ExAmPlE.TeSt.)"),
            "{}",
            mm.message
        );
        assert!(mm.message.contains("TTL 300 outside 60"), "{}", mm.message);
        assert!(mm.expected.contains(">> www.example.test. 60 IN A 192.0.2.80"), "{}", mm.expected);
        r.questions[0].name = parse_name("WwW.ExAmPlE.TeSt").unwrap();
        r.answer[0].ttl = 60;
        e.check(&decode(&emit(&r), Direction::ServerToClient), &cx(&vars, Transport::Udp))
            .unwrap();
        r.edns = None;
        let mm = e
            .check(&decode(&emit(&r), Direction::ServerToClient), &cx(&vars, Transport::Udp))
            .unwrap_err();
        assert!(mm.message.contains("no OPT record"), "{}", mm.message);
        assert!(mm.expected.contains(">> ; EDNS: version: 0"), "{}", mm.expected);
    }

    #[test]
    fn captures_read_records_and_fail_when_absent() {
        let s = suite(concat!(
            "      - send: { query: { name: www.example.test } }\n",
            "      - expect: { rcode: 0, capture: { a: \"answer[0].rdata\", t: \"answer[0].ttl\", r: rcode, x: \"answer[1]\" } }\n"
        ))
        .unwrap();
        let e = expect_of(&s, 2);
        let vars = Vars::new();
        let r = response(&["www.example.test. 300 IN A 192.0.2.80"], 0);
        let mm = e
            .check(&decode(&emit(&r), Direction::ServerToClient), &cx(&vars, Transport::Udp))
            .unwrap_err();
        assert!(mm.message.contains("no answer[1]"), "{}", mm.message);
        let r = response(
            &["www.example.test. 300 IN A 192.0.2.80", "www.example.test. 300 IN A 192.0.2.81"],
            0,
        );
        let caps = e
            .check(&decode(&emit(&r), Direction::ServerToClient), &cx(&vars, Transport::Udp))
            .unwrap();
        assert_eq!(caps[0], ("a".to_string(), "192.0.2.80".to_string()));
        assert_eq!(caps[1].1, "300");
        assert_eq!(caps[2].1, "NOERROR");
        assert_eq!(caps[3].1, "www.example.test. 300 IN A 192.0.2.81");
    }

    #[test]
    fn load_errors_point_at_the_value() {
        let e = suite("      - send: { query: { name: www.example.test, type: AX } }\n").unwrap_err();
        assert!(e.contains("t.yaml:1:42: error: type: 'AX' is not a record type"), "{e}");
        let e = suite("      - expect: { answer: [\"www.example.test. 300 IN A 1.2.3\"] }\n").unwrap_err();
        assert!(e.contains("is not an IPv4 address"), "{e}");
        let e = suite("      - expect: { rcode: NXDOMIAN }\n").unwrap_err();
        assert!(e.contains("not an RCODE"), "{e}");
        let e = suite("      - expect: { rcode: NOERROR, capture: { x: answer.rdata } }\n").unwrap_err();
        assert!(e.contains("not a capture path"), "{e}");
        let e = suite("      - expect: { rcode: NOERROR, flags: { qa: true } }\n").unwrap_err();
        assert!(e.contains("did you mean"), "{e}");
    }

    #[test]
    fn a_query_expect_rejects_a_response() {
        let s = suite("      - expect: { query: { name: www.example.test, rd: false } }\n").unwrap();
        let e = expect_of(&s, 1);
        let vars = Vars::new();
        let r = response(&[], 0);
        let mm = e
            .check(&decode(&emit(&r), Direction::ClientToServer), &cx(&vars, Transport::Udp))
            .unwrap_err();
        assert!(
            mm.message.contains("a response (QR=1) where a query was expected"),
            "{}",
            mm.message
        );
        assert!(e.describe().starts_with("a DNS query"), "{}", e.describe());
    }
}
