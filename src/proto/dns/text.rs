//! DNS text forms: mnemonics for classes, opcodes and rcodes (type mnemonics are the wire
//! format's), names and records in master file syntax (RFC 1035 §5.1, RFC 3597 §5 for unknown
//! types), and dig-like renderings.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::wire::{rtype, type_from, type_name, DnsMessage, Mnemonics, Name, RData, Record, CLASS_IN, FLAGS, MAX_LABEL, MAX_NAME};

const CLASSES: Mnemonics = Mnemonics {
    generic: "CLASS",
    table: &[(CLASS_IN, "IN"), (3, "CH"), (4, "HS"), (254, "NONE"), (255, "ANY")],
};
const RCODES: Mnemonics = Mnemonics {
    generic: "RCODE",
    table: &[
        (0, "NOERROR"),
        (1, "FORMERR"),
        (2, "SERVFAIL"),
        (3, "NXDOMAIN"),
        (4, "NOTIMP"),
        (5, "REFUSED"),
        (6, "YXDOMAIN"),
        (7, "YXRRSET"),
        (8, "NXRRSET"),
        (9, "NOTAUTH"),
        (10, "NOTZONE"),
        (16, "BADVERS"),
    ],
};
const OPCODES: Mnemonics = Mnemonics {
    generic: "OPCODE",
    table: &[(0, "QUERY"), (1, "IQUERY"), (2, "STATUS"), (4, "NOTIFY"), (5, "UPDATE")],
};

/// A class's mnemonic, or `CLASS5`.
pub fn class_name(c: u16) -> String {
    CLASSES.name(c)
}

/// A class from its mnemonic, `CLASSn` or a number.
pub fn class_from(s: &str) -> Option<u16> {
    CLASSES.number(s)
}

/// An RCODE's name (dig's spelling), or `RCODE23`.
pub fn rcode_name(r: u16) -> String {
    RCODES.name(r)
}

/// An RCODE from its name or number.
pub fn rcode_from(s: &str) -> Option<u16> {
    RCODES.number(s).filter(|&r| r < 4096)
}

/// An OPCODE's name, or `OPCODE15`.
pub fn opcode_name(o: u8) -> String {
    OPCODES.name(o as u16)
}

/// An OPCODE from its name or number.
pub fn opcode_from(s: &str) -> Option<u8> {
    OPCODES.number(s).filter(|&o| o < 16).map(|o| o as u8)
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.labels.is_empty() {
            return f.write_str(".");
        }
        for l in &self.labels {
            for &b in l {
                match b {
                    b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => write!(f, "\\{}", b as char)?,
                    0x21..=0x7e => f.write_char(b as char)?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            f.write_char('.')?;
        }
        Ok(())
    }
}

/// Reads `\X` and `\DDD` escapes (RFC 1035 §5.1) from `s`, splitting at unescaped `split`.
fn unescape_split(s: &str, split: Option<u8>) -> Result<Vec<Vec<u8>>, String> {
    let b = s.as_bytes();
    let mut parts = vec![Vec::new()];
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let digits = b.get(i + 1..i + 4).filter(|d| d.iter().all(u8::is_ascii_digit));
                if let Some(d) = digits {
                    let v: u32 = std::str::from_utf8(d).unwrap_or("").parse().unwrap_or(256);
                    let v = u8::try_from(v)
                        .map_err(|_| format!("'\\{}' is not a byte (\\DDD is at most \\255)", String::from_utf8_lossy(d)))?;
                    if let Some(p) = parts.last_mut() {
                        p.push(v);
                    }
                    i += 4;
                } else if let Some(&c) = b.get(i + 1) {
                    if let Some(p) = parts.last_mut() {
                        p.push(c);
                    }
                    i += 2;
                } else {
                    return Err("a lone '\\' at the end".into());
                }
            }
            c if Some(c) == split => {
                parts.push(Vec::new());
                i += 1;
            }
            c => {
                if let Some(p) = parts.last_mut() {
                    p.push(c);
                }
                i += 1;
            }
        }
    }
    Ok(parts)
}

/// Parses a name; every name is absolute (a trailing dot is optional, `.` is the root).
pub fn parse_name(s: &str) -> Result<Name, String> {
    let s = s.trim();
    if s == "." {
        return Ok(Name::root());
    }
    if s.is_empty() {
        return Err("an empty name (the root is '.')".into());
    }
    if s == "@" {
        return Err("'@' needs an origin; write the full name".into());
    }
    let mut labels = unescape_split(s, Some(b'.'))?;
    if labels.len() > 1 && labels.last().is_some_and(Vec::is_empty) {
        labels.pop();
    }
    if labels.iter().any(Vec::is_empty) {
        return Err(format!("'{s}' has an empty label"));
    }
    if let Some(l) = labels.iter().find(|l| l.len() > MAX_LABEL) {
        return Err(format!("a label of {} octets in '{s}' (at most {MAX_LABEL})", l.len()));
    }
    let name = Name { labels };
    if name.wire_len() > MAX_NAME {
        return Err(format!("'{s}' is {} octets on the wire (at most {MAX_NAME})", name.wire_len()));
    }
    Ok(name)
}

fn char_string(s: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in s {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

/// RDATA in master file syntax.
pub fn rdata_text(r: &Record) -> String {
    match &r.data {
        RData::A(a) => a.to_string(),
        RData::Aaaa(a) => a.to_string(),
        RData::Name(n) => n.to_string(),
        RData::Mx { preference, exchange } => format!("{preference} {exchange}"),
        RData::Txt(strings) => strings.iter().map(|s| char_string(s)).collect::<Vec<_>>().join(" "),
        RData::Soa {
            mname,
            rname,
            serial,
            refresh,
            retry,
            expire,
            minimum,
        } => format!("{mname} {rname} {serial} {refresh} {retry} {expire} {minimum}"),
        RData::Srv {
            priority,
            weight,
            port,
            target,
        } => format!("{priority} {weight} {port} {target}"),
        RData::Raw(b) if b.is_empty() => "\\# 0".into(),
        RData::Raw(b) => format!("\\# {} {}", b.len(), b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
    }
}

/// A record as one master file line: `name TTL CLASS TYPE RDATA`.
pub fn record_text(r: &Record) -> String {
    format!(
        "{} {} {} {} {}",
        r.name,
        r.ttl,
        class_name(r.class),
        type_name(r.rtype),
        rdata_text(r)
    )
}

/// A record read from text, whose TTL may be left out (an expectation then ignores it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    /// The record (TTL 3600 when none was given).
    pub rec: Record,
    /// Whether a TTL was written.
    pub ttl_given: bool,
}

impl RecordSpec {
    /// The record as written: no TTL when none was given.
    pub fn text(&self) -> String {
        let r = &self.rec;
        match self.ttl_given {
            true => record_text(r),
            false => format!("{} {} {} {}", r.name, class_name(r.class), type_name(r.rtype), rdata_text(r)),
        }
    }

    /// Whether `got` is this record: names in any case, RDATA compared in canonical form.
    pub fn matches(&self, got: &Record) -> bool {
        let w = &self.rec;
        w.name.eq_ignore_case(&got.name)
            && w.rtype == got.rtype
            && w.class == got.class
            && (!self.ttl_given || w.ttl == got.ttl)
            && super::wire::canonical_rdata(&w.data) == super::wire::canonical_rdata(&got.data)
    }
}

/// Splits master file text into tokens; quoted strings stay one token (quotes kept).
fn tokens(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut t = String::new();
        if c == '"' {
            t.push(chars.next().unwrap_or('"'));
            loop {
                match chars.next() {
                    Some('\\') => {
                        t.push('\\');
                        t.push(chars.next().ok_or("a lone '\\' at the end")?);
                    }
                    Some('"') => {
                        t.push('"');
                        break;
                    }
                    Some(c) => t.push(c),
                    None => return Err("an unterminated quoted string".into()),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                t.push(c);
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        t.push(n);
                    }
                }
            }
        }
        if t == "(" || t == ")" || t.starts_with(';') {
            return Err("write the record on one line, without parentheses or comments".into());
        }
        out.push(t);
    }
    Ok(out)
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{what} '{s}' is not a number in range"))
}

/// Parses `name [ttl] [class] type rdata` (TTL and class in either order, RFC 1035 §5.1).
pub fn parse_record(s: &str) -> Result<RecordSpec, String> {
    let toks = tokens(s)?;
    let mut it = toks.iter().map(String::as_str).peekable();
    let name = parse_name(it.next().ok_or("an empty record")?)?;
    let mut ttl = None;
    let mut class = None;
    let rt = loop {
        let t = it
            .next()
            .ok_or_else(|| format!("'{s}' has no type (e.g. 'www.example.test. 300 IN A 192.0.2.80')"))?;
        if ttl.is_none() && t.bytes().all(|b| b.is_ascii_digit()) {
            ttl = Some(num::<u32>(t, "TTL")?);
        } else if class.is_none() && class_from(t).is_some() && !t.bytes().all(|b| b.is_ascii_digit()) {
            class = class_from(t);
        } else if let Some(rt) = type_from(t).filter(|_| !t.bytes().all(|b| b.is_ascii_digit())) {
            break rt;
        } else {
            return Err(format!("'{t}' is not a TTL, a class or a type"));
        }
    };
    let args: Vec<&str> = it.collect();
    let class = class.unwrap_or(CLASS_IN);
    let data = rdata_from(rt, class, &args)?;
    Ok(RecordSpec {
        rec: Record {
            name,
            rtype: rt,
            class,
            ttl: ttl.unwrap_or(3600),
            data,
        },
        ttl_given: ttl.is_some(),
    })
}

/// RDATA in the generic form `\# LENGTH HEX` (RFC 3597 §5); `args` starts with the `\#`.
fn generic_rdata(args: &[&str]) -> Result<RData, String> {
    let len: usize = num(args.get(1).ok_or("'\\#' needs a length")?, "the RDATA length")?;
    let hex: String = args[2..].concat();
    let bytes = crate::syntax::parse_hex(&hex)?;
    if bytes.len() != len {
        return Err(format!("'\\# {len}' but {} bytes of hex follow", bytes.len()));
    }
    Ok(RData::Raw(bytes))
}

/// TXT RDATA: one or more strings, quoted or bare.
fn txt_from(args: &[&str]) -> Result<RData, String> {
    if args.is_empty() {
        return Err("TXT RDATA needs at least one string".into());
    }
    let mut strings = Vec::new();
    for a in args {
        let inner = a.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(a);
        let s = unescape_split(inner, None)?.concat();
        if s.len() > 255 {
            return Err(format!("a TXT string of {} octets (at most 255)", s.len()));
        }
        strings.push(s);
    }
    Ok(RData::Txt(strings))
}

fn rdata_from(rt: u16, class: u16, args: &[&str]) -> Result<RData, String> {
    if args.first() == Some(&"\\#") {
        return generic_rdata(args);
    }
    let want = |n: usize, form: &str| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("{} RDATA is '{form}' ({n} fields), got {}", type_name(rt), args.len()))
        }
    };
    Ok(match (rt, class) {
        (rtype::A, CLASS_IN) => {
            want(1, "ADDRESS")?;
            RData::A(
                args[0]
                    .parse::<Ipv4Addr>()
                    .map_err(|_| format!("'{}' is not an IPv4 address", args[0]))?,
            )
        }
        (rtype::AAAA, CLASS_IN) => {
            want(1, "ADDRESS")?;
            RData::Aaaa(
                args[0]
                    .parse::<Ipv6Addr>()
                    .map_err(|_| format!("'{}' is not an IPv6 address", args[0]))?,
            )
        }
        (rtype::NS | rtype::CNAME | rtype::PTR, _) => {
            want(1, "NAME")?;
            RData::Name(parse_name(args[0])?)
        }
        (rtype::MX, _) => {
            want(2, "PREFERENCE EXCHANGE")?;
            RData::Mx {
                preference: num(args[0], "PREFERENCE")?,
                exchange: parse_name(args[1])?,
            }
        }
        (rtype::TXT, _) => txt_from(args)?,
        (rtype::SOA, _) => {
            want(7, "MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM")?;
            RData::Soa {
                mname: parse_name(args[0])?,
                rname: parse_name(args[1])?,
                serial: num(args[2], "SERIAL")?,
                refresh: num(args[3], "REFRESH")?,
                retry: num(args[4], "RETRY")?,
                expire: num(args[5], "EXPIRE")?,
                minimum: num(args[6], "MINIMUM")?,
            }
        }
        (rtype::SRV, CLASS_IN) => {
            want(4, "PRIORITY WEIGHT PORT TARGET")?;
            RData::Srv {
                priority: num(args[0], "PRIORITY")?,
                weight: num(args[1], "WEIGHT")?,
                port: num(args[2], "PORT")?,
                target: parse_name(args[3])?,
            }
        }
        _ => {
            return Err(format!(
                "write {} RDATA in the generic form '\\# LENGTH HEX' (RFC 3597 §5)",
                type_name(rt)
            ))
        }
    })
}

/// The flags that are set, in dig's order and spelling.
pub fn flags_text(m: &DnsMessage) -> String {
    FLAGS.iter().filter(|f| f.get(m)).map(|f| f.name).collect::<Vec<_>>().join(" ")
}

/// The header line of a dig rendering.
pub fn header_line(m: &DnsMessage) -> String {
    format!(
        ";; ->>HEADER<<- opcode: {}, status: {}, id: {}",
        opcode_name(m.opcode),
        rcode_name(m.rcode),
        m.id
    )
}

/// The flags and counts line of a dig rendering (the OPT record counts as additional, as on the wire).
pub fn flags_line(m: &DnsMessage, counts: [usize; 4]) -> String {
    format!(
        ";; flags: {}; QUERY: {}, ANSWER: {}, AUTHORITY: {}, ADDITIONAL: {}",
        flags_text(m),
        counts[0],
        counts[1],
        counts[2],
        counts[3]
    )
}

/// The EDNS line of a dig rendering.
pub fn edns_line(e: &super::wire::Edns) -> String {
    let mut s = format!(
        "; EDNS: version: {}, flags:{}; udp: {}",
        e.version,
        if e.dnssec_ok { " do" } else { "" },
        e.udp_size
    );
    for (code, v) in &e.options {
        let _ = write!(s, "; option {code}: {}", v.iter().map(|b| format!("{b:02x}")).collect::<String>());
    }
    s
}

/// A question line of a dig rendering.
pub fn question_line(q: &super::wire::Question) -> String {
    format!(";{} {} {}", q.name, class_name(q.qclass), type_name(q.qtype))
}

/// The section names, in wire order.
pub const SECTIONS: [&str; 3] = ["ANSWER", "AUTHORITY", "ADDITIONAL"];

/// The records of section `i` (0 answer, 1 authority, 2 additional).
pub fn section(m: &DnsMessage, i: usize) -> &[Record] {
    match i {
        0 => &m.answer,
        1 => &m.authority,
        _ => &m.additional,
    }
}

/// The counts of the four sections as the header carries them.
pub fn counts(m: &DnsMessage) -> [usize; 4] {
    [
        m.questions.len(),
        m.answer.len(),
        m.authority.len(),
        m.additional.len() + m.edns.is_some() as usize,
    ]
}

/// The message the way dig prints it, one line per item (empty sections left out).
pub fn dig(m: &DnsMessage) -> Vec<String> {
    let mut out = vec![header_line(m), flags_line(m, counts(m))];
    if let Some(e) = &m.edns {
        out.push(";; OPT PSEUDOSECTION:".into());
        out.push(edns_line(e));
    }
    if !m.questions.is_empty() {
        out.push(";; QUESTION SECTION:".into());
        out.extend(m.questions.iter().map(question_line));
    }
    for (i, title) in SECTIONS.iter().enumerate() {
        let recs = section(m, i);
        if !recs.is_empty() {
            out.push(format!(";; {title} SECTION:"));
            out.extend(recs.iter().map(record_text));
        }
    }
    out
}

/// The message on one line: header, question, then each non-empty section.
pub fn one_line(m: &DnsMessage) -> String {
    let mut s = format!(
        "id: {}, opcode: {}, status: {}, flags: {}",
        m.id,
        opcode_name(m.opcode),
        rcode_name(m.rcode),
        flags_text(m)
    );
    for q in &m.questions {
        let _ = write!(s, " | {} {} {}", q.name, class_name(q.qclass), type_name(q.qtype));
    }
    for (i, title) in SECTIONS.iter().enumerate() {
        let recs = section(m, i);
        if !recs.is_empty() {
            let list: Vec<String> = recs.iter().map(record_text).collect();
            let _ = write!(s, " | {title}: {}", list.join(", "));
        }
    }
    if let Some(e) = &m.edns {
        let _ = write!(s, " | EDNS udp: {}{}", e.udp_size, if e.dnssec_ok { " do" } else { "" });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_with_escapes() {
        for s in ["www.example.test.", ".", "a\\.b.c.", "x\\032y.", "\\200.test."] {
            let n = parse_name(s).unwrap();
            assert_eq!(n.to_string(), s);
        }
        assert_eq!(parse_name("www.example.test").unwrap(), parse_name("www.example.test.").unwrap());
        assert!(parse_name("a..b").is_err());
        assert!(parse_name(&"x".repeat(64)).is_err());
        assert!(parse_name(&vec!["x".repeat(60); 5].join(".")).unwrap_err().contains("at most 255"));
    }

    #[test]
    fn records_parse_in_master_file_form() {
        let r = parse_record("www.example.test. 300 IN A 192.0.2.80").unwrap();
        assert_eq!(
            (r.rec.ttl, r.ttl_given, r.rec.data.clone()),
            (300, true, RData::A(Ipv4Addr::new(192, 0, 2, 80)))
        );
        assert_eq!(r.text(), "www.example.test. 300 IN A 192.0.2.80");
        let r = parse_record("example.test IN 60 MX 10 mail.example.test").unwrap();
        assert_eq!(r.text(), "example.test. 60 IN MX 10 mail.example.test.");
        let r = parse_record("www.example.test. A 192.0.2.80").unwrap();
        assert_eq!(r.text(), "www.example.test. IN A 192.0.2.80");
        let r = parse_record(r#"example.test. TXT "v=spf1 -all" "a \"q\"" bare"#).unwrap();
        assert_eq!(rdata_text(&r.rec), r#""v=spf1 -all" "a \"q\"" "bare""#);
        let r = parse_record("example.test. SOA ns1.example.test. hostmaster.example.test. 2026112101 7200 900 1209600 300").unwrap();
        assert!(matches!(r.rec.data, RData::Soa { minimum: 300, .. }));
        let r = parse_record("_sip._tcp.example.test. 3600 IN SRV 10 60 5060 sip.example.test.").unwrap();
        assert_eq!(rdata_text(&r.rec), "10 60 5060 sip.example.test.");
        let r = parse_record("x.test. 5 IN TYPE999 \\# 2 abcd").unwrap();
        assert_eq!(record_text(&r.rec), "x.test. 5 IN TYPE999 \\# 2 abcd");
        assert!(parse_record("x.test. 5 IN A 1.2.3").is_err());
        assert!(parse_record("x.test. 5 IN").is_err());
        assert!(parse_record("x.test. 5 IN HINFO a b").unwrap_err().contains("\\#"));
    }

    #[test]
    fn matching_ignores_case_and_missing_ttl() {
        let want = parse_record("WWW.Example.TEST. IN CNAME Alias.example.test.").unwrap();
        let got = parse_record("www.example.test. 30 IN CNAME alias.EXAMPLE.test.").unwrap();
        assert!(want.matches(&got.rec));
        let want = parse_record("www.example.test. 31 IN CNAME alias.example.test.").unwrap();
        assert!(!want.matches(&got.rec));
    }

    #[test]
    fn mnemonics_and_numbers() {
        assert_eq!(
            (type_from("aaaa"), type_from("TYPE28"), type_from("28")),
            (Some(28), Some(28), Some(28))
        );
        assert_eq!(
            (rcode_from("NXDOMAIN"), rcode_from("3"), rcode_name(23)),
            (Some(3), Some(3), "RCODE23".into())
        );
        assert_eq!(
            (opcode_from("QUERY"), opcode_from("15"), opcode_from("16")),
            (Some(0), Some(15), None)
        );
        assert_eq!(class_name(3), "CH");
    }
}
