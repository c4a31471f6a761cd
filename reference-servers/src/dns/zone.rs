//! Zone files (RFC 1035 §5, "master files") and looking names up in a zone
//! (RFC 1034 §4.3.2, with wildcards as RFC 4592 has them).
//!
//! The parser reads the subset the fixtures use, and says `file:line: why`
//! for anything else:
//! - `$ORIGIN name.` and `$TTL ttl` (RFC 2308 §4); `$INCLUDE` is refused;
//! - `@` for the origin, names relative to the origin, a blank owner for
//!   "the previous owner";
//! - TTL and class optional and in either order (class IN only), TTLs in
//!   seconds or with units (`1h30m`);
//! - parentheses to continue an entry over lines, `;` comments, quoted strings
//!   with `\"`, `\\` and `\DDD` escapes;
//! - types A AAAA NS CNAME MX TXT SOA PTR SRV.
//!
//! A zone must make sense, or it is not loaded: exactly one SOA, at the apex;
//! every owner at or below it; a CNAME alone at its name (RFC 1034 §3.6.2);
//! the same TTL for every record of an RRset (RFC 2181 §5.2); nothing but
//! addresses (glue) below a delegation; `*` only as the leftmost label.
//! Duplicate records are merged (RFC 2181 §5).

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::label_count;

/// Zone files larger than this are refused (they are read into memory).
const MAX_ZONE_FILE: u64 = 16 << 20;
/// The largest TTL, RFC 2181 §8.
const MAX_TTL: u64 = (1 << 31) - 1;

/// The records of one type at one name.
#[derive(Debug, Clone)]
pub(crate) struct RRset {
    pub rtype: RecordType,
    pub records: Vec<Record>,
}

/// One zone: its apex SOA and every name in it.
#[derive(Debug)]
pub(crate) struct Zone {
    origin: Name,
    soa: Record,
    /// Every owner name, and every empty non-terminal (a name with no records
    /// but with names below it, such as `_tcp` above `_sip._tcp`), with its
    /// RRsets in file order. `Name` compares case-insensitively.
    nodes: BTreeMap<Name, Vec<RRset>>,
}

/// What a zone says about a name and type.
#[derive(Debug)]
pub(crate) enum Lookup<'a> {
    /// The records (for a wildcard match, still with the wildcard's owner).
    Records(Vec<&'a Record>),
    /// The name has a CNAME and the type asked for is not CNAME.
    Cname(&'a Record),
    /// The name exists, without records of that type.
    NoData,
    /// The name does not exist.
    NxDomain,
    /// The name is at or below a zone cut: the NS records there, and the
    /// addresses of those name servers that the zone holds (glue).
    Referral { ns: &'a [Record], glue: Vec<&'a Record> },
}

impl Zone {
    /// The apex.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The SOA record as it goes into the authority section of a negative
    /// answer: with TTL min(SOA TTL, SOA MINIMUM) (RFC 2308 §3).
    pub fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        if let RData::SOA(data) = self.soa.data() {
            soa.set_ttl(self.soa.ttl().min(data.minimum()));
        }
        soa
    }

    /// Looks `name` (at or below the apex) up for `qtype` (RFC 1034 §4.3.2 step 3).
    pub fn lookup(&self, name: &Name, qtype: RecordType) -> Lookup<'_> {
        if let Some(ns) = self.delegation(name) {
            let glue = ns
                .iter()
                .filter_map(|record| record.data().as_ns())
                .flat_map(|target| self.addresses(&target.0))
                .collect();
            return Lookup::Referral { ns, glue };
        }
        let rrsets = match self.nodes.get(name) {
            Some(rrsets) => rrsets,
            None => match self.wildcard(name) {
                Some(rrsets) => rrsets,
                None => return Lookup::NxDomain,
            },
        };
        if qtype == RecordType::ANY {
            let all: Vec<&Record> = rrsets.iter().flat_map(|set| &set.records).collect();
            return if all.is_empty() { Lookup::NoData } else { Lookup::Records(all) };
        }
        if let Some(set) = rrsets.iter().find(|set| set.rtype == qtype) {
            return Lookup::Records(set.records.iter().collect());
        }
        match rrsets.iter().find(|set| set.rtype == RecordType::CNAME) {
            Some(set) => Lookup::Cname(&set.records[0]),
            None => Lookup::NoData,
        }
    }

    /// The A and AAAA records at `name`, if the zone has any (delegations ignored:
    /// this is where glue is found).
    pub fn addresses(&self, name: &Name) -> Vec<&Record> {
        let Some(rrsets) = self.nodes.get(name) else {
            return Vec::new();
        };
        let addresses = rrsets.iter().filter(|set| matches!(set.rtype, RecordType::A | RecordType::AAAA));
        addresses.flat_map(|set| &set.records).collect()
    }

    /// True if `name` is at or below a zone cut of this zone (not its apex).
    pub fn is_delegated(&self, name: &Name) -> bool {
        self.delegation(name).is_some()
    }

    /// The NS records of the highest zone cut between the apex (exclusive) and `name` (inclusive).
    fn delegation(&self, name: &Name) -> Option<&[Record]> {
        let apex_labels = label_count(&self.origin);
        let labels = label_count(name);
        (apex_labels + 1..=labels).find_map(|n| {
            let rrsets = self.nodes.get(&name.trim_to(n))?;
            rrsets
                .iter()
                .find(|set| set.rtype == RecordType::NS)
                .map(|set| set.records.as_slice())
        })
    }

    /// RFC 4592 §3.3.1: for a name that does not exist, the wildcard at its
    /// closest encloser (the longest existing ancestor), if there is one.
    fn wildcard(&self, name: &Name) -> Option<&Vec<RRset>> {
        let mut encloser = name.base_name();
        while !self.nodes.contains_key(&encloser) {
            if label_count(&encloser) <= label_count(&self.origin) {
                return None;
            }
            encloser = encloser.base_name();
        }
        self.nodes.get(&encloser.prepend_label("*").ok()?)
    }
}

/// Reads and checks the zone file at `path`; errors read `path:line: why`.
pub(crate) fn load(path: &Path) -> Result<Zone, String> {
    let mut text = String::new();
    let read = std::fs::File::open(path).and_then(|file| file.take(MAX_ZONE_FILE + 1).read_to_string(&mut text));
    match read {
        Err(err) => return Err(format!("{}: cannot read: {err}", path.display())),
        Ok(len) if len as u64 > MAX_ZONE_FILE => return Err(format!("{}: larger than {MAX_ZONE_FILE} octets", path.display())),
        Ok(_) => {}
    }
    parse(&text).map_err(|(line, why)| format!("{}:{line}: {why}", path.display()))
}

/// A problem with the zone text: the line, and why.
type ParseError = (usize, String);

/// Parses zone file text.
pub(crate) fn parse(text: &str) -> Result<Zone, ParseError> {
    let mut origin: Option<Name> = None;
    let mut default_ttl: Option<u32> = None;
    let mut owner: Option<Name> = None;
    let mut records = Vec::new();
    for entry in entries(text)? {
        let at = |why: String| (entry.line, why);
        let mut tokens = entry.tokens.iter().peekable();
        if !entry.blank_owner {
            let first = tokens.next().expect("entries have tokens");
            if first.text.starts_with('$') && !first.quoted {
                let args: Vec<&Token> = tokens.collect();
                let [arg] = args[..] else {
                    return Err(at(format!("{} takes one argument", first.text)));
                };
                match first.text.to_ascii_uppercase().as_str() {
                    "$ORIGIN" => {
                        let name = Name::from_ascii(&arg.text).map_err(|err| at(format!("bad name `{}`: {err}", arg.text)))?;
                        if !name.is_fqdn() {
                            return Err(at(format!("$ORIGIN `{}` must be absolute (end with `.`)", arg.text)));
                        }
                        origin = Some(name);
                    }
                    "$TTL" => default_ttl = Some(ttl(&arg.text).map_err(at)?),
                    "$INCLUDE" => return Err(at("$INCLUDE is not supported".to_owned())),
                    _ => return Err(at(format!("unknown directive {}", first.text))),
                }
                continue;
            }
            owner = Some(name(&first.text, origin.as_ref()).map_err(at)?);
        }
        let Some(owner) = owner.clone() else {
            return Err(at("no owner name: the first record must start in the first column".to_owned()));
        };
        let (mut record_ttl, mut class) = (None, None);
        let rtype = loop {
            let Some(token) = tokens.next() else {
                return Err(at("missing record type".to_owned()));
            };
            let upper = token.text.to_ascii_uppercase();
            if record_ttl.is_none() && upper.starts_with(|c: char| c.is_ascii_digit()) {
                record_ttl = Some(ttl(&token.text).map_err(at)?);
            } else if class.is_none() && matches!(upper.as_str(), "IN" | "CH" | "CS" | "HS") {
                if upper != "IN" {
                    return Err(at(format!("class {upper}: only IN is supported")));
                }
                class = Some(());
            } else {
                break record_type(&upper).map_err(at)?;
            }
        };
        let Some(record_ttl) = record_ttl.or(default_ttl) else {
            return Err(at("no TTL: give one, or set $TTL first".to_owned()));
        };
        let args: Vec<&Token> = tokens.collect();
        let rdata = rdata(rtype, &args, origin.as_ref()).map_err(|why| at(format!("{rtype}: {why}")))?;
        records.push((entry.line, Record::from_rdata(owner, record_ttl, rdata)));
    }
    build(records)
}

/// Checks the records and makes them a zone.
fn build(records: Vec<(usize, Record)>) -> Result<Zone, ParseError> {
    let mut soas = records.iter().filter(|(_, record)| record.record_type() == RecordType::SOA);
    let Some((_, soa)) = soas.next() else {
        let last = records.last().map_or(1, |(line, _)| *line);
        return Err((last, "no SOA record: a zone needs one, at its apex".to_owned()));
    };
    if let Some((line, _)) = soas.next() {
        return Err((*line, "a second SOA record: a zone has exactly one".to_owned()));
    }
    let origin = soa.name().clone();
    let mut zone = Zone {
        origin: origin.clone(),
        soa: soa.clone(),
        nodes: BTreeMap::new(),
    };
    // Where each RRset was first seen, for error messages.
    let mut first_line: BTreeMap<(Name, u16), usize> = BTreeMap::new();
    for (line, record) in records {
        let name = record.name().clone();
        if !origin.zone_of(&name) {
            return Err((line, format!("{name} is outside the zone {origin}")));
        }
        if name.iter().skip(1).any(|label| label == b"*") {
            return Err((line, format!("{name}: `*` may only be the leftmost label")));
        }
        let rtype = record.record_type();
        let rrsets = zone.nodes.entry(name.clone()).or_default();
        let clash = rrsets
            .iter()
            .find(|set| (set.rtype == RecordType::CNAME) != (rtype == RecordType::CNAME));
        if let Some(other) = clash {
            return Err((
                line,
                format!("{name} has a CNAME and a {}: a CNAME must be alone (RFC 1034 §3.6.2)", other.rtype),
            ));
        }
        match rrsets.iter_mut().find(|set| set.rtype == rtype) {
            None => rrsets.push(RRset {
                rtype,
                records: vec![record],
            }),
            Some(set) => {
                let seen = first_line.get(&(name.clone(), u16::from(rtype))).copied().unwrap_or(line);
                if set.records[0].ttl() != record.ttl() {
                    return Err((
                        line,
                        format!("TTL differs from the {rtype} record on line {seen}: one TTL per RRset (RFC 2181 §5.2)"),
                    ));
                }
                if rtype == RecordType::CNAME && set.records[0].data() != record.data() {
                    return Err((line, format!("{name} already has a CNAME (line {seen})")));
                }
                if !set.records.iter().any(|known| known.data() == record.data()) {
                    set.records.push(record);
                }
            }
        }
        // Every ancestor up to the apex exists too (as an empty non-terminal if nothing else).
        let mut ancestor = name.clone();
        while label_count(&ancestor) > label_count(&origin) {
            ancestor = ancestor.base_name();
            zone.nodes.entry(ancestor.clone()).or_default();
        }
        first_line.entry((name, u16::from(rtype))).or_insert(line);
    }
    // Nothing but NS at a zone cut, and nothing but addresses below one.
    for ((name, rtype), line) in &first_line {
        let rtype = RecordType::from(*rtype);
        let cut_above = zone.delegation(&name.base_name()).is_some();
        let at_cut = *name != origin && zone.nodes[name].iter().any(|set| set.rtype == RecordType::NS);
        if (at_cut && rtype != RecordType::NS) || (cut_above && !matches!(rtype, RecordType::A | RecordType::AAAA)) {
            return Err((
                *line,
                format!("{name} {rtype} is hidden by a delegation: only NS at a zone cut, only glue below one"),
            ));
        }
    }
    Ok(zone)
}

/// Reads an owner or a domain name in record data.
fn name(text: &str, origin: Option<&Name>) -> Result<Name, String> {
    if text == "@" {
        return origin.cloned().ok_or_else(|| "`@` with no $ORIGIN set".to_owned());
    }
    let name = Name::from_ascii(text).map_err(|err| format!("bad name `{text}`: {err}"))?;
    if name.is_fqdn() {
        return Ok(name);
    }
    let Some(origin) = origin else {
        return Err(format!("relative name `{text}` with no $ORIGIN set"));
    };
    name.append_domain(origin).map_err(|err| format!("bad name `{text}`: {err}"))
}

/// A TTL: seconds, or a sum of numbers with units `1w2d3h4m5s` (RFC 2308 §4's BIND notation).
fn ttl(text: &str) -> Result<u32, String> {
    let why = || format!("bad TTL `{text}`: expected seconds such as 3600, or 1h30m");
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(digit)))
                    .ok_or_else(why)?,
            );
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604800,
            _ => return Err(why()),
        };
        total = total.saturating_add(number.take().ok_or_else(why)?.saturating_mul(unit));
    }
    total = total.saturating_add(number.unwrap_or(0));
    if text.is_empty() || total > MAX_TTL {
        return Err(why());
    }
    Ok(total as u32)
}

/// The record types the parser knows.
fn record_type(upper: &str) -> Result<RecordType, String> {
    Ok(match upper {
        "A" => RecordType::A,
        "AAAA" => RecordType::AAAA,
        "NS" => RecordType::NS,
        "CNAME" => RecordType::CNAME,
        "MX" => RecordType::MX,
        "TXT" => RecordType::TXT,
        "SOA" => RecordType::SOA,
        "PTR" => RecordType::PTR,
        "SRV" => RecordType::SRV,
        _ => {
            return Err(format!(
                "unsupported record type `{upper}` (known: A, AAAA, NS, CNAME, MX, TXT, SOA, PTR, SRV)"
            ))
        }
    })
}

/// Reads the RDATA of a `rtype` record from its tokens (RFC 1035 §3.3, RFC 3596, RFC 2782).
fn rdata(rtype: RecordType, args: &[&Token], origin: Option<&Name>) -> Result<RData, String> {
    let expect = |n: usize, what: &str| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("expected {what}, got {} field(s)", args.len()))
        }
    };
    let number = |token: &Token| {
        token
            .text
            .parse::<u16>()
            .map_err(|_| format!("`{}` is not a number from 0 to 65535", token.text))
    };
    let domain = |token: &Token| name(&token.text, origin);
    Ok(match rtype {
        RecordType::A => {
            expect(1, "an IPv4 address")?;
            RData::A(A(args[0]
                .text
                .parse::<Ipv4Addr>()
                .map_err(|_| format!("bad IPv4 address `{}`", args[0].text))?))
        }
        RecordType::AAAA => {
            expect(1, "an IPv6 address")?;
            RData::AAAA(AAAA(
                args[0]
                    .text
                    .parse::<Ipv6Addr>()
                    .map_err(|_| format!("bad IPv6 address `{}`", args[0].text))?,
            ))
        }
        RecordType::NS => {
            expect(1, "a name server's name")?;
            RData::NS(NS(domain(args[0])?))
        }
        RecordType::CNAME => {
            expect(1, "the canonical name")?;
            RData::CNAME(CNAME(domain(args[0])?))
        }
        RecordType::PTR => {
            expect(1, "a domain name")?;
            RData::PTR(PTR(domain(args[0])?))
        }
        RecordType::MX => {
            expect(2, "a preference and a mail exchange")?;
            RData::MX(MX::new(number(args[0])?, domain(args[1])?))
        }
        RecordType::SRV => {
            expect(4, "priority, weight, port and target")?;
            RData::SRV(SRV::new(number(args[0])?, number(args[1])?, number(args[2])?, domain(args[3])?))
        }
        RecordType::TXT => {
            if args.is_empty() {
                return Err("expected one or more strings".to_owned());
            }
            if let Some(long) = args.iter().find(|token| token.bytes.len() > 255) {
                return Err(format!("a string of {} octets; at most 255 fit (RFC 1035 §3.3)", long.bytes.len()));
            }
            RData::TXT(TXT::from_bytes(args.iter().map(|token| token.bytes.as_slice()).collect()))
        }
        RecordType::SOA => {
            expect(7, "mname rname serial refresh retry expire minimum")?;
            let serial = args[2].text.parse::<u32>().map_err(|_| format!("bad serial `{}`", args[2].text))?;
            let time = |token: &Token| ttl(&token.text).map(|seconds| seconds as i32);
            let (refresh, retry, expire) = (time(args[3])?, time(args[4])?, time(args[5])?);
            RData::SOA(SOA::new(
                domain(args[0])?,
                domain(args[1])?,
                serial,
                refresh,
                retry,
                expire,
                ttl(&args[6].text)?,
            ))
        }
        _ => return Err("unsupported".to_owned()),
    })
}

/// A word of a zone file.
#[derive(Debug)]
struct Token {
    /// As written (escapes kept, quotes removed): names are read from this.
    text: String,
    /// With `\X` and `\DDD` escapes resolved: character strings are read from this.
    bytes: Vec<u8>,
    quoted: bool,
}

/// One entry: a directive or a record, perhaps over several lines in parentheses.
#[derive(Debug)]
struct Entry {
    line: usize,
    /// The entry's first line starts with a blank: the owner is the previous one.
    blank_owner: bool,
    tokens: Vec<Token>,
}

/// Splits zone text into entries (RFC 1035 §5.1).
fn entries(text: &str) -> Result<Vec<Entry>, ParseError> {
    let mut entries = Vec::new();
    let mut current = Entry {
        line: 1,
        blank_owner: false,
        tokens: Vec::new(),
    };
    let mut line = 1;
    let mut open_paren: Option<usize> = None;
    let mut line_start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let starts_line = std::mem::replace(&mut line_start, false);
        match c {
            '\n' => {
                line += 1;
                line_start = true;
                if open_paren.is_none() {
                    let next = Entry {
                        line,
                        blank_owner: false,
                        tokens: Vec::new(),
                    };
                    let done = std::mem::replace(&mut current, next);
                    // A line of blanks and comments is no entry.
                    if !done.tokens.is_empty() {
                        entries.push(done);
                    }
                }
            }
            ';' => while chars.next_if(|&c| c != '\n').is_some() {},
            ' ' | '\t' | '\r' => {
                if starts_line && current.tokens.is_empty() && open_paren.is_none() {
                    current.blank_owner = true;
                }
            }
            '(' => {
                if open_paren.is_some() {
                    return Err((line, "nested `(`".to_owned()));
                }
                open_paren = Some(line);
            }
            ')' => {
                if open_paren.take().is_none() {
                    return Err((line, "`)` without `(`".to_owned()));
                }
            }
            '"' => {
                let (mut text, mut bytes) = (String::new(), Vec::new());
                loop {
                    match chars.next() {
                        None | Some('\n') => return Err((line, "unterminated quoted string".to_owned())),
                        Some('"') => break,
                        Some('\\') => escape(&mut chars, &mut text, &mut bytes).map_err(|why| (line, why))?,
                        Some(c) => push_char(c, &mut text, &mut bytes),
                    }
                }
                if current.tokens.is_empty() {
                    current.line = line;
                }
                current.tokens.push(Token { text, bytes, quoted: true });
            }
            c => {
                let (mut text, mut bytes) = (String::new(), Vec::new());
                let mut next = Some(c);
                while let Some(c) = next {
                    if c == '\\' {
                        escape(&mut chars, &mut text, &mut bytes).map_err(|why| (line, why))?;
                    } else {
                        push_char(c, &mut text, &mut bytes);
                    }
                    next = chars.next_if(|&c| !matches!(c, ' ' | '\t' | '\r' | '\n' | ';' | '(' | ')' | '"'));
                }
                if current.tokens.is_empty() {
                    current.line = line;
                }
                current.tokens.push(Token {
                    text,
                    bytes,
                    quoted: false,
                });
            }
        }
    }
    if let Some(opened) = open_paren {
        return Err((opened, "`(` is never closed".to_owned()));
    }
    if !current.tokens.is_empty() {
        entries.push(current);
    }
    Ok(entries)
}

fn push_char(c: char, text: &mut String, bytes: &mut Vec<u8>) {
    text.push(c);
    let mut utf8 = [0u8; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
}

/// After a `\`: `\DDD` (a decimal octet) or `\X` (X itself). The escape stays in `text`.
fn escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, text: &mut String, bytes: &mut Vec<u8>) -> Result<(), String> {
    text.push('\\');
    match chars.next() {
        None | Some('\n') => Err("`\\` at the end of a line".to_owned()),
        Some(d) if d.is_ascii_digit() => {
            let digits: String = [Some(d), chars.next(), chars.next()].into_iter().flatten().collect();
            text.push_str(&digits);
            match digits.parse::<u8>() {
                Ok(octet) if digits.len() == 3 && digits.bytes().all(|b| b.is_ascii_digit()) => {
                    bytes.push(octet);
                    Ok(())
                }
                _ => Err(format!("bad escape `\\{digits}`: expected \\DDD with DDD from 000 to 255")),
            }
        }
        Some(c) => {
            text.push(c);
            let mut utf8 = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn fixtures_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/dns");
        for file in ["example.test.zone", "2.0.192.in-addr.arpa.zone", "networkutopia.com.zone"] {
            load(&dir.join(file)).unwrap();
        }
        let zone = load(&dir.join("example.test.zone")).unwrap();
        assert_eq!(zone.origin(), &n("example.test."));
        assert_eq!(zone.negative_soa().ttl(), 300);
        match zone.lookup(&n("WWW.example.test."), RecordType::A) {
            Lookup::Records(records) => {
                assert_eq!(records.len(), 2);
                assert!(records.iter().all(|r| r.ttl() == 300));
            }
            other => panic!("{other:?}"),
        }
        match zone.lookup(&n("big.example.test."), RecordType::TXT) {
            Lookup::Records(records) => assert_eq!(records.len(), 20),
            other => panic!("{other:?}"),
        }
        assert!(matches!(zone.lookup(&n("_tcp.example.test."), RecordType::A), Lookup::NoData));
        assert!(matches!(zone.lookup(&n("wild.example.test."), RecordType::A), Lookup::NoData));
        assert!(matches!(
            zone.lookup(&n("a.b.wild.example.test."), RecordType::A),
            Lookup::Records(_)
        ));
        assert!(matches!(zone.lookup(&n("x.y.example.test."), RecordType::A), Lookup::NxDomain));
        assert!(matches!(
            zone.lookup(&n("ns.sub.example.test."), RecordType::A),
            Lookup::Referral { .. }
        ));
        assert!(matches!(zone.lookup(&n("alias.example.test."), RecordType::A), Lookup::Cname(_)));
        assert!(matches!(
            zone.lookup(&n("alias.example.test."), RecordType::CNAME),
            Lookup::Records(_)
        ));
    }

    #[test]
    fn syntax() {
        let zone = parse(
            "$ORIGIN x.\n$TTL 1h\n@ IN SOA ns hostmaster ( 1 2 3\n 4 5m ) ; comment\n  NS ns\n   \n  ; indented comment\nns 60 IN A 10.0.0.1\n\
             t IN 120 TXT \"a \\\"q\\\" \\065\" plain\n",
        )
        .unwrap();
        assert_eq!(zone.negative_soa().ttl(), 300);
        match zone.lookup(&n("t.x."), RecordType::TXT) {
            Lookup::Records(records) => {
                assert_eq!(records[0].ttl(), 120);
                let txt = records[0].data().as_txt().unwrap();
                assert_eq!(txt.txt_data()[0].as_ref(), b"a \"q\" A");
                assert_eq!(txt.txt_data()[1].as_ref(), b"plain");
            }
            other => panic!("{other:?}"),
        }
        match zone.lookup(&n("x."), RecordType::NS) {
            Lookup::Records(records) => assert_eq!(records[0].data().as_ns().unwrap().0, n("ns.x.")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_have_lines() {
        let cases = [
            ("$ORIGIN x.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nw A 1.2.3\n", 4, "IPv4"),
            ("$ORIGIN x.\n@ 60 SOA a b 1 2 3 4 5\nw A 1.2.3.4\n", 3, "no TTL"),
            ("$ORIGIN x.\n$TTL 60\n@ SOA a b ( 1 2 3 4 5\n", 3, "never closed"),
            ("$ORIGIN x.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nc CNAME d\nc A 1.2.3.4\n", 5, "CNAME"),
            (
                "$ORIGIN x.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nw A 1.2.3.4\nw 30 A 1.2.3.5\n",
                5,
                "TTL differs",
            ),
            ("$ORIGIN x.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nw.y. A 1.2.3.4\n", 4, "outside"),
            ("$ORIGIN x.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nw HINFO a b\n", 4, "unsupported"),
            (
                "$ORIGIN x.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nd NS ns.d\nwww.d A 1.2.3.4\nd MX 1 m\n",
                6,
                "delegation",
            ),
            ("$ORIGIN x.\n$TTL 60\nw A 1.2.3.4\n", 3, "no SOA"),
            ("$INCLUDE other\n", 1, "not supported"),
        ];
        for (text, line, why) in cases {
            let (got_line, got_why) = parse(text).expect_err(text);
            assert_eq!(got_line, line, "{text}: {got_why}");
            assert!(got_why.contains(why), "{text}: {got_why}");
        }
    }
}
