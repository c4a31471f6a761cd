//! The DNS wire format (RFC 1035 §4, RFC 6891 OPT, RFC 3596 AAAA, RFC 2782 SRV): a parser that
//! checks every bound and names the offending byte, an encoder with name compression, and the
//! tables of header flags and type mnemonics that the text forms and suite steps share.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::proto::{CodecError, Finding, Level};

/// Longest name on the wire, length octets and the root included (RFC 1035 §2.3.4).
pub const MAX_NAME: usize = 255;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL: usize = 63;
/// Most compression pointers followed in one name; a legal message needs far fewer.
pub const MAX_JUMPS: usize = 128;
/// The fixed header (RFC 1035 §4.1.1).
pub const HEADER_LEN: usize = 12;

/// Record and query types this codec knows by name.
pub mod rtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Name server.
    pub const NS: u16 = 2;
    /// Canonical name.
    pub const CNAME: u16 = 5;
    /// Start of authority.
    pub const SOA: u16 = 6;
    /// Domain name pointer.
    pub const PTR: u16 = 12;
    /// Mail exchange.
    pub const MX: u16 = 15;
    /// Text strings.
    pub const TXT: u16 = 16;
    /// IPv6 address (RFC 3596).
    pub const AAAA: u16 = 28;
    /// Service location (RFC 2782).
    pub const SRV: u16 = 33;
    /// EDNS pseudo-record (RFC 6891).
    pub const OPT: u16 = 41;
    /// Every type (queries only).
    pub const ANY: u16 = 255;
}

/// Numbers with mnemonics; the others have a generic form like `TYPE1234` (RFC 3597 §5).
#[derive(Debug)]
pub struct Mnemonics {
    /// The prefix of the generic form.
    pub generic: &'static str,
    /// The numbers that have a mnemonic.
    pub table: &'static [(u16, &'static str)],
}

impl Mnemonics {
    /// `v`'s mnemonic, or its generic form.
    pub fn name(&self, v: u16) -> String {
        match self.table.iter().find(|(n, _)| *n == v) {
            Some((_, s)) => s.to_string(),
            None => format!("{}{v}", self.generic),
        }
    }

    /// A number from its mnemonic in any case, its generic form or decimal.
    pub fn number(&self, s: &str) -> Option<u16> {
        if let Some((n, _)) = self.table.iter().find(|(_, m)| m.eq_ignore_ascii_case(s)) {
            return Some(*n);
        }
        let upper = s.to_ascii_uppercase();
        upper.strip_prefix(self.generic).unwrap_or(&upper).parse().ok()
    }
}

/// Type mnemonics, also of types whose RDATA this codec keeps raw.
pub const TYPES: Mnemonics = Mnemonics {
    generic: "TYPE",
    table: &[
        (rtype::A, "A"),
        (rtype::NS, "NS"),
        (rtype::CNAME, "CNAME"),
        (rtype::SOA, "SOA"),
        (rtype::PTR, "PTR"),
        (13, "HINFO"),
        (rtype::MX, "MX"),
        (rtype::TXT, "TXT"),
        (rtype::AAAA, "AAAA"),
        (rtype::SRV, "SRV"),
        (rtype::OPT, "OPT"),
        (43, "DS"),
        (46, "RRSIG"),
        (47, "NSEC"),
        (48, "DNSKEY"),
        (252, "AXFR"),
        (rtype::ANY, "ANY"),
    ],
};

/// A type's mnemonic, or `TYPE1234` (RFC 3597 §5).
pub fn type_name(t: u16) -> String {
    TYPES.name(t)
}

/// A type from its mnemonic, `TYPEn` or a number.
pub fn type_from(s: &str) -> Option<u16> {
    TYPES.number(s)
}

/// The Internet class.
pub const CLASS_IN: u16 = 1;

/// A domain name as labels, in the case they arrived in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Name {
    /// The labels, leftmost first; empty for the root.
    pub labels: Vec<Vec<u8>>,
}

impl Name {
    /// The root name.
    pub fn root() -> Name {
        Name { labels: Vec::new() }
    }

    /// Equal ignoring ASCII case (RFC 4343 §3).
    pub fn eq_ignore_case(&self, other: &Name) -> bool {
        self.labels.len() == other.labels.len() && self.labels.iter().zip(&other.labels).all(|(a, b)| a.eq_ignore_ascii_case(b))
    }

    /// Octets on the wire without compression.
    pub fn wire_len(&self) -> usize {
        self.labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1
    }

    /// The same name in lower case (the canonical form of RFC 4034 §6.2).
    pub fn lowercase(&self) -> Name {
        Name {
            labels: self.labels.iter().map(|l| l.to_ascii_lowercase()).collect(),
        }
    }
}

/// One entry of the question section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// QNAME.
    pub name: Name,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
}

/// Record data of the types this codec understands; anything else stays raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// A (class IN).
    A(Ipv4Addr),
    /// AAAA (class IN).
    Aaaa(Ipv6Addr),
    /// NS, CNAME or PTR: one name (the record's type says which).
    Name(Name),
    /// MX.
    Mx {
        /// PREFERENCE.
        preference: u16,
        /// EXCHANGE.
        exchange: Name,
    },
    /// TXT: one or more character strings.
    Txt(Vec<Vec<u8>>),
    /// SOA.
    Soa {
        /// MNAME.
        mname: Name,
        /// RNAME.
        rname: Name,
        /// SERIAL.
        serial: u32,
        /// REFRESH.
        refresh: u32,
        /// RETRY.
        retry: u32,
        /// EXPIRE.
        expire: u32,
        /// MINIMUM (the negative-caching TTL, RFC 2308 §4).
        minimum: u32,
    },
    /// SRV (class IN).
    Srv {
        /// Priority.
        priority: u16,
        /// Weight.
        weight: u16,
        /// Port.
        port: u16,
        /// Target.
        target: Name,
    },
    /// Any other type, or a known type in a class it is not defined for.
    Raw(Vec<u8>),
}

/// A resource record (RFC 1035 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name.
    pub name: Name,
    /// TYPE.
    pub rtype: u16,
    /// CLASS.
    pub class: u16,
    /// TTL in seconds.
    pub ttl: u32,
    /// RDATA.
    pub data: RData,
}

/// The EDNS0 OPT pseudo-record, decoded (RFC 6891 §6.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size (the OPT record's CLASS).
    pub udp_size: u16,
    /// EDNS version.
    pub version: u8,
    /// The DO bit (RFC 3225).
    pub dnssec_ok: bool,
    /// The other 15 flag bits (zero unless defined later).
    pub z: u16,
    /// Options as (code, data).
    pub options: Vec<(u16, Vec<u8>)>,
}

impl Default for Edns {
    fn default() -> Edns {
        Edns {
            udp_size: 1232,
            version: 0,
            dnssec_ok: false,
            z: 0,
            options: Vec::new(),
        }
    }
}

/// A whole DNS message; the OPT record is kept apart in `edns`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsMessage {
    /// ID.
    pub id: u16,
    /// QR: a response.
    pub qr: bool,
    /// OPCODE (4 bits).
    pub opcode: u8,
    /// AA: authoritative answer.
    pub aa: bool,
    /// TC: truncated.
    pub tc: bool,
    /// RD: recursion desired.
    pub rd: bool,
    /// RA: recursion available.
    pub ra: bool,
    /// Z: the reserved bit.
    pub z: bool,
    /// AD: authentic data (RFC 4035 §3.2.3).
    pub ad: bool,
    /// CD: checking disabled (RFC 4035 §3.2.2).
    pub cd: bool,
    /// RCODE, with the upper 8 bits from the OPT record when there is one (RFC 6891 §6.1.3).
    pub rcode: u16,
    /// The question section.
    pub questions: Vec<Question>,
    /// The answer section.
    pub answer: Vec<Record>,
    /// The authority section.
    pub authority: Vec<Record>,
    /// The additional section, without the OPT record.
    pub additional: Vec<Record>,
    /// The OPT record, if any.
    pub edns: Option<Edns>,
}

/// A header flag bit (RFC 1035 §4.1.1, RFC 4035 §3.2 for AD and CD) and the field it sets.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// dig's spelling, which is also the key in suites.
    pub name: &'static str,
    /// The bit in the header's flags word (bytes 2 and 3).
    pub mask: u16,
    /// What the bit says when set.
    pub description: &'static str,
    get: fn(&DnsMessage) -> bool,
    set: fn(&mut DnsMessage, bool),
}

impl Flag {
    /// Whether the flag is set in `m`.
    pub fn get(&self, m: &DnsMessage) -> bool {
        (self.get)(m)
    }

    /// Sets or clears the flag in `m`.
    pub fn set(&self, m: &mut DnsMessage, on: bool) {
        (self.set)(m, on)
    }
}

// The bit is the flag's identity; the accessors are fn pointers, whose addresses are not.
impl PartialEq for Flag {
    fn eq(&self, other: &Flag) -> bool {
        self.mask == other.mask
    }
}

impl Eq for Flag {}

// One line per flag: dig's name is the field's name, so the accessors cannot pair the wrong field.
macro_rules! flag {
    ($field:ident, $mask:expr, $description:expr) => {
        Flag {
            name: stringify!($field),
            mask: $mask,
            description: $description,
            get: |m| m.$field,
            set: |m, on| m.$field = on,
        }
    };
}

/// QR: the message is a response.
pub const QR: Flag = flag!(qr, 0x8000, "a response, not a query");
/// AA: an authoritative answer.
pub const AA: Flag = flag!(aa, 0x0400, "an authoritative answer");
/// TC: truncated.
pub const TC: Flag = flag!(tc, 0x0200, "truncated to fit the transport");
/// RD: recursion desired.
pub const RD: Flag = flag!(rd, 0x0100, "recursion desired");
/// RA: recursion available.
pub const RA: Flag = flag!(ra, 0x0080, "recursion available");
/// Z: the reserved bit.
pub const Z: Flag = flag!(z, 0x0040, "reserved, zero in every message");
/// AD: authentic data (RFC 4035 §3.2.3).
pub const AD: Flag = flag!(ad, 0x0020, "authentic data, validated by the resolver");
/// CD: checking disabled (RFC 4035 §3.2.2).
pub const CD: Flag = flag!(cd, 0x0010, "checking disabled: the client validates");
/// Every header flag, in wire order (which is also the order dig prints them in).
pub const FLAGS: [Flag; 8] = [QR, AA, TC, RD, RA, Z, AD, CD];

/// The flags word of the header: every flag, the OPCODE and the low four bits of the RCODE.
fn flags_word(msg: &DnsMessage) -> u16 {
    let fields = ((msg.opcode as u16 & 0xf) << 11) | (msg.rcode & 0xf);
    FLAGS.iter().filter(|f| f.get(msg)).fold(fields, |w, f| w | f.mask)
}

/// A parsed message and what was odd about it.
#[derive(Debug)]
pub struct Parsed {
    /// The message.
    pub msg: DnsMessage,
    /// RFC deviations that did not stop the parse.
    pub findings: Vec<Finding>,
}

fn err(offset: usize, reason: impl Into<String>) -> CodecError {
    CodecError {
        offset,
        reason: reason.into(),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], CodecError> {
        if self.buf.len() - self.pos < n {
            return Err(err(
                self.pos,
                format!(
                    "{what} needs {n} bytes but the message ends {} bytes later",
                    self.buf.len() - self.pos
                ),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, CodecError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, CodecError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn name(&mut self) -> Result<Name, CodecError> {
        let (name, end) = read_name(self.buf, self.pos)?;
        self.pos = end;
        Ok(name)
    }
}

/// Reads the name at `start`, following compression pointers; returns it and the offset just
/// after it in the original position (after the first pointer, if any).
pub fn read_name(buf: &[u8], start: usize) -> Result<(Name, usize), CodecError> {
    let mut labels = Vec::new();
    let mut pos = start;
    // Where the labels being read began: a pointer must go before it, so every jump lands
    // strictly earlier than the last and no loop can form (RFC 1035 §4.1.4: a prior occurrence).
    let mut run_start = start;
    let mut end = None;
    let mut jumps = 0;
    let mut wire_len = 1;
    loop {
        let Some(&b) = buf.get(pos) else {
            return Err(err(pos, "the name runs past the end of the message"));
        };
        match b >> 6 {
            0 if b == 0 => {
                return Ok((Name { labels }, end.unwrap_or(pos + 1)));
            }
            0 => {
                let len = b as usize;
                if pos + 1 + len > buf.len() {
                    return Err(err(pos, format!("a {len}-byte label runs past the end of the message")));
                }
                wire_len += len + 1;
                if wire_len > MAX_NAME {
                    return Err(err(pos, format!("the name is longer than {MAX_NAME} octets (RFC 1035 §2.3.4)")));
                }
                labels.push(buf[pos + 1..pos + 1 + len].to_vec());
                pos += 1 + len;
            }
            3 => {
                let Some(&low) = buf.get(pos + 1) else {
                    return Err(err(pos, "a compression pointer cut off by the end of the message"));
                };
                let target = (((b & 0x3f) as usize) << 8) | low as usize;
                end.get_or_insert(pos + 2);
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return Err(err(pos, format!("more than {MAX_JUMPS} compression pointers in one name")));
                }
                if target >= run_start && target <= pos {
                    return Err(err(pos, format!("compression pointer loop (to byte {target}, inside this name)")));
                }
                if target > pos {
                    if target >= buf.len() {
                        return Err(err(
                            pos,
                            format!(
                                "compression pointer to byte {target}, past the end of the {}-byte message",
                                buf.len()
                            ),
                        ));
                    }
                    return Err(err(
                        pos,
                        format!("compression pointer forward to byte {target} (it must point back)"),
                    ));
                }
                if target < HEADER_LEN {
                    return Err(err(pos, format!("compression pointer into the header (byte {target})")));
                }
                pos = target;
                run_start = target;
            }
            _ => {
                return Err(err(
                    pos,
                    format!("label type 0x{:02x} is not defined (RFC 6891 §5: only 00 and 11)", b & 0xc0),
                ))
            }
        }
    }
}

/// Parses one whole message.
pub fn parse(buf: &[u8]) -> Result<Parsed, CodecError> {
    if buf.len() < HEADER_LEN {
        return Err(err(
            buf.len(),
            format!(
                "a DNS message starts with a {HEADER_LEN}-byte header; this one has {} bytes",
                buf.len()
            ),
        ));
    }
    let mut r = Reader { buf, pos: 0 };
    let (mut msg, counts) = header(&mut r)?;
    let mut findings = Vec::new();
    msg.questions = questions(&mut r, counts[0])?;
    let opts = record_sections(&mut r, counts, &mut msg, &mut findings)?;
    opt_record(opts, &mut msg, &mut findings)?;
    if r.pos < buf.len() {
        findings.push(Finding {
            level: Level::Should,
            rule: "RFC 1035 §4.1",
            text: format!(
                "{} bytes after the last record (byte {} on): the header's counts do not cover them",
                buf.len() - r.pos,
                r.pos
            ),
        });
    }
    Ok(Parsed { msg, findings })
}

/// The fixed header: a message with its ID, flags, OPCODE and RCODE set, and the four counts.
fn header(r: &mut Reader) -> Result<(DnsMessage, [u16; 4]), CodecError> {
    let id = r.u16("ID")?;
    let flags = r.u16("flags")?;
    let counts = [r.u16("QDCOUNT")?, r.u16("ANCOUNT")?, r.u16("NSCOUNT")?, r.u16("ARCOUNT")?];
    let mut msg = DnsMessage {
        id,
        opcode: ((flags >> 11) & 0xf) as u8,
        rcode: flags & 0xf,
        ..DnsMessage::default()
    };
    for f in &FLAGS {
        f.set(&mut msg, flags & f.mask != 0);
    }
    Ok((msg, counts))
}

/// The `count` entries of the question section.
fn questions(r: &mut Reader, count: u16) -> Result<Vec<Question>, CodecError> {
    let mut questions = Vec::new();
    for i in 0..count {
        if r.pos >= r.buf.len() {
            return Err(err(r.pos, format!("QDCOUNT is {count} but the message ends after {i} questions")));
        }
        let name = r.name()?;
        let qtype = r.u16("QTYPE")?;
        let qclass = r.u16("QCLASS")?;
        questions.push(Question { name, qtype, qclass });
    }
    Ok(questions)
}

/// The answer, authority and additional sections into `msg`; the additional section's OPT
/// records are returned instead, with their offsets.
fn record_sections(
    r: &mut Reader,
    counts: [u16; 4],
    msg: &mut DnsMessage,
    findings: &mut Vec<Finding>,
) -> Result<Vec<(usize, Record)>, CodecError> {
    let sections = [("ANCOUNT", "answer"), ("NSCOUNT", "authority"), ("ARCOUNT", "additional")];
    let mut opts: Vec<(usize, Record)> = Vec::new();
    for (si, (count_name, section)) in sections.iter().enumerate() {
        let count = counts[si + 1];
        for i in 0..count {
            if r.pos >= r.buf.len() {
                return Err(err(
                    r.pos,
                    format!("{count_name} is {count} but the message ends after {i} records"),
                ));
            }
            let at = r.pos;
            let rec = record(r)?;
            if rec.rtype == rtype::OPT {
                if si != 2 {
                    findings.push(Finding {
                        level: Level::Must,
                        rule: "RFC 6891 §6.1.1",
                        text: format!("an OPT record in the {section} section (it belongs in the additional section)"),
                    });
                } else {
                    opts.push((at, rec));
                    continue;
                }
            }
            match si {
                0 => msg.answer.push(rec),
                1 => msg.authority.push(rec),
                _ => msg.additional.push(rec),
            }
        }
    }
    Ok(opts)
}

/// The first OPT record (found at the offsets given) into `msg.edns` and the upper RCODE bits.
fn opt_record(opts: Vec<(usize, Record)>, msg: &mut DnsMessage, findings: &mut Vec<Finding>) -> Result<(), CodecError> {
    if opts.len() > 1 {
        findings.push(Finding {
            level: Level::Must,
            rule: "RFC 6891 §6.1.1",
            text: format!("{} OPT records (at most one; a responder answers FORMERR)", opts.len()),
        });
    }
    let Some((at, opt)) = opts.into_iter().next() else {
        return Ok(());
    };
    if !opt.name.labels.is_empty() {
        findings.push(Finding {
            level: Level::Must,
            rule: "RFC 6891 §6.1.2",
            text: format!("the OPT record at byte {at} is not owned by the root name"),
        });
    }
    let data: &[u8] = match &opt.data {
        RData::Raw(d) => d,
        _ => &[],
    };
    let options = edns_options(data, at)?;
    msg.rcode |= ((opt.ttl >> 24) as u16) << 4;
    msg.edns = Some(Edns {
        udp_size: opt.class,
        version: (opt.ttl >> 16) as u8,
        dnssec_ok: opt.ttl & 0x8000 != 0,
        z: (opt.ttl & 0x7fff) as u16,
        options,
    });
    Ok(())
}

/// The options in an OPT record's RDATA, as (code, data); errors are placed from `at`.
fn edns_options(data: &[u8], at: usize) -> Result<Vec<(u16, Vec<u8>)>, CodecError> {
    let mut options = Vec::new();
    let mut o = Reader { buf: data, pos: 0 };
    while o.pos < data.len() {
        let code = o.u16("an EDNS option code").map_err(|e| err(at + e.offset, e.reason))?;
        let len = o.u16("an EDNS option length").map_err(|e| err(at + e.offset, e.reason))?;
        let value = o.take(len as usize, "an EDNS option").map_err(|e| err(at + e.offset, e.reason))?;
        options.push((code, value.to_vec()));
    }
    Ok(options)
}

/// One resource record, whose RDATA must end where its RDLENGTH says.
fn record(r: &mut Reader) -> Result<Record, CodecError> {
    let name = r.name()?;
    let rtype = r.u16("TYPE")?;
    let class = r.u16("CLASS")?;
    let ttl = r.u32("TTL")?;
    let len_at = r.pos;
    let rdlength = r.u16("RDLENGTH")? as usize;
    let start = r.pos;
    if r.buf.len() - start < rdlength {
        return Err(err(
            len_at,
            format!(
                "RDLENGTH {rdlength} runs past the end of the message ({} bytes left)",
                r.buf.len() - start
            ),
        ));
    }
    let end = start + rdlength;
    // Names inside RDATA may point anywhere earlier, but their own bytes stay inside RDATA.
    let mut d = Reader {
        buf: &r.buf[..end],
        pos: start,
    };
    let data = rdata(&mut d, rtype, class, len_at)?;
    if d.pos != end {
        return Err(err(
            d.pos,
            format!(
                "RDLENGTH is {rdlength} but the {} fields end after {}",
                type_name(rtype),
                d.pos - start
            ),
        ));
    }
    r.pos = end;
    Ok(Record {
        name,
        rtype,
        class,
        ttl,
        data,
    })
}

/// The RDATA that `d` holds up to its end; `len_at` is where RDLENGTH is, for errors about it.
fn rdata(d: &mut Reader, rtype: u16, class: u16, len_at: usize) -> Result<RData, CodecError> {
    let rdlength = d.buf.len() - d.pos;
    Ok(match (rtype, class) {
        (rtype::A, CLASS_IN) => {
            fixed(rdlength, 4, "an A record", len_at)?;
            let b = d.take(4, "an IPv4 address")?;
            RData::A(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        }
        (rtype::AAAA, CLASS_IN) => {
            fixed(rdlength, 16, "an AAAA record", len_at)?;
            let b: [u8; 16] = d.take(16, "an IPv6 address")?.try_into().unwrap_or([0; 16]);
            RData::Aaaa(Ipv6Addr::from(b))
        }
        (rtype::NS | rtype::CNAME | rtype::PTR, _) => RData::Name(d.name()?),
        (rtype::MX, _) => RData::Mx {
            preference: d.u16("PREFERENCE")?,
            exchange: d.name()?,
        },
        (rtype::TXT, _) => txt(d, len_at)?,
        (rtype::SOA, _) => RData::Soa {
            mname: d.name()?,
            rname: d.name()?,
            serial: d.u32("SERIAL")?,
            refresh: d.u32("REFRESH")?,
            retry: d.u32("RETRY")?,
            expire: d.u32("EXPIRE")?,
            minimum: d.u32("MINIMUM")?,
        },
        (rtype::SRV, CLASS_IN) => RData::Srv {
            priority: d.u16("priority")?,
            weight: d.u16("weight")?,
            port: d.u16("port")?,
            target: d.name()?,
        },
        _ => RData::Raw(d.take(rdlength, "RDATA")?.to_vec()),
    })
}

/// TXT RDATA: the character-strings up to the end of `d`, at least one.
fn txt(d: &mut Reader, len_at: usize) -> Result<RData, CodecError> {
    let mut strings = Vec::new();
    while d.pos < d.buf.len() {
        let n = d.u8("a character-string length")? as usize;
        strings.push(d.take(n, "a character-string")?.to_vec());
    }
    if strings.is_empty() {
        return Err(err(len_at, "a TXT record needs at least one character-string (RDLENGTH 0)"));
    }
    Ok(RData::Txt(strings))
}

fn fixed(have: usize, want: usize, what: &str, at: usize) -> Result<(), CodecError> {
    if have == want {
        Ok(())
    } else {
        Err(err(at, format!("{what} has {want} bytes of RDATA, not {have}")))
    }
}

/// Writes messages, compressing names against earlier ones.
struct Encoder {
    out: Vec<u8>,
    /// Name suffixes already written, in their exact case (so the case a query used survives).
    seen: HashMap<Vec<Vec<u8>>, u16>,
}

impl Encoder {
    fn name(&mut self, n: &Name, compress: bool) {
        for i in 0..n.labels.len() {
            let suffix = &n.labels[i..];
            if compress {
                if let Some(&off) = self.seen.get(suffix) {
                    self.out.extend_from_slice(&(0xc000 | off).to_be_bytes());
                    return;
                }
            }
            if self.out.len() < 0x4000 && !self.seen.contains_key(suffix) {
                self.seen.insert(suffix.to_vec(), self.out.len() as u16);
            }
            let label = &n.labels[i];
            self.out.push(label.len() as u8);
            self.out.extend_from_slice(label);
        }
        self.out.push(0);
    }

    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    fn record(&mut self, r: &Record) {
        self.name(&r.name, true);
        self.u16(r.rtype);
        self.u16(r.class);
        self.u32(r.ttl);
        let len_at = self.out.len();
        self.u16(0);
        self.rdata(&r.data, true);
        let len = (self.out.len() - len_at - 2) as u16;
        self.out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
    }

    fn rdata(&mut self, d: &RData, compress: bool) {
        match d {
            RData::A(a) => self.out.extend_from_slice(&a.octets()),
            RData::Aaaa(a) => self.out.extend_from_slice(&a.octets()),
            RData::Name(n) => self.name(n, compress),
            RData::Mx { preference, exchange } => {
                self.u16(*preference);
                self.name(exchange, compress);
            }
            RData::Txt(strings) => {
                for s in strings {
                    self.out.push(s.len() as u8);
                    self.out.extend_from_slice(s);
                }
            }
            RData::Soa {
                mname,
                rname,
                serial,
                refresh,
                retry,
                expire,
                minimum,
            } => {
                self.name(mname, compress);
                self.name(rname, compress);
                for v in [serial, refresh, retry, expire, minimum] {
                    self.u32(*v);
                }
            }
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                self.u16(*priority);
                self.u16(*weight);
                self.u16(*port);
                // RFC 2782: "name compression is not to be used for this field".
                self.name(target, false);
            }
            RData::Raw(b) => self.out.extend_from_slice(b),
        }
    }
}

/// Encodes `msg`; an extended RCODE above 15 goes into the OPT record when there is one.
pub fn emit(msg: &DnsMessage) -> Vec<u8> {
    let mut e = Encoder {
        out: Vec::with_capacity(512),
        seen: HashMap::new(),
    };
    e.u16(msg.id);
    e.u16(flags_word(msg));
    e.u16(msg.questions.len() as u16);
    e.u16(msg.answer.len() as u16);
    e.u16(msg.authority.len() as u16);
    e.u16(msg.additional.len() as u16 + msg.edns.is_some() as u16);
    for q in &msg.questions {
        e.name(&q.name, true);
        e.u16(q.qtype);
        e.u16(q.qclass);
    }
    for r in msg.answer.iter().chain(&msg.authority).chain(&msg.additional) {
        e.record(r);
    }
    if let Some(x) = &msg.edns {
        let mut data = Vec::new();
        for (code, v) in &x.options {
            data.extend_from_slice(&code.to_be_bytes());
            data.extend_from_slice(&(v.len() as u16).to_be_bytes());
            data.extend_from_slice(v);
        }
        let ttl = ((msg.rcode >> 4) as u32 & 0xff) << 24 | (x.version as u32) << 16 | (x.dnssec_ok as u32) << 15 | (x.z as u32 & 0x7fff);
        e.record(&Record {
            name: Name::root(),
            rtype: rtype::OPT,
            class: x.udp_size,
            ttl,
            data: RData::Raw(data),
        });
    }
    e.out
}

/// RDATA in canonical form (uncompressed, names in lower case: RFC 4034 §6.2), for comparing
/// records whatever case or compression the sender used.
pub fn canonical_rdata(d: &RData) -> Vec<u8> {
    let lower = match d {
        RData::Name(n) => RData::Name(n.lowercase()),
        RData::Mx { preference, exchange } => RData::Mx {
            preference: *preference,
            exchange: exchange.lowercase(),
        },
        RData::Soa {
            mname,
            rname,
            serial,
            refresh,
            retry,
            expire,
            minimum,
        } => RData::Soa {
            mname: mname.lowercase(),
            rname: rname.lowercase(),
            serial: *serial,
            refresh: *refresh,
            retry: *retry,
            expire: *expire,
            minimum: *minimum,
        },
        RData::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::Srv {
            priority: *priority,
            weight: *weight,
            port: *port,
            target: target.lowercase(),
        },
        other => other.clone(),
    };
    let mut e = Encoder {
        out: Vec::new(),
        seen: HashMap::new(),
    };
    e.rdata(&lower, false);
    e.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name {
            labels: s.split('.').filter(|l| !l.is_empty()).map(|l| l.as_bytes().to_vec()).collect(),
        }
    }

    fn query(id: u16, qname: &str, qtype: u16) -> DnsMessage {
        DnsMessage {
            id,
            rd: true,
            questions: vec![Question {
                name: name(qname),
                qtype,
                qclass: CLASS_IN,
            }],
            ..DnsMessage::default()
        }
    }

    #[test]
    fn a_query_encodes_as_rfc_1035_says() {
        let b = emit(&query(0x1234, "www.example.test", rtype::A));
        let want: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x04test\x00\x00\x01\x00\x01";
        assert_eq!(b, want);
        assert_eq!(parse(&b).unwrap().msg, query(0x1234, "www.example.test", rtype::A));
    }

    #[test]
    fn names_compress_against_earlier_ones_in_their_case() {
        let mut m = query(1, "www.example.test", rtype::A);
        m.qr = true;
        m.answer.push(Record {
            name: name("www.example.test"),
            rtype: rtype::CNAME,
            class: CLASS_IN,
            ttl: 60,
            data: RData::Name(name("alias.example.test")),
        });
        m.answer.push(Record {
            name: name("WWW.example.test"),
            rtype: rtype::A,
            class: CLASS_IN,
            ttl: 60,
            data: RData::A(Ipv4Addr::new(192, 0, 2, 1)),
        });
        let b = emit(&m);
        // The answer's owner is a pointer to the question's name at byte 12.
        assert_eq!(&b[34..36], b"\xc0\x0c");
        // "alias" then a pointer to "example.test" (byte 16).
        assert_eq!(&b[46..54], b"\x05alias\xc0\x10");
        assert_eq!(parse(&b).unwrap().msg, m);
    }

    #[test]
    fn pointer_loops_forward_pointers_and_bounds_are_errors() {
        let mut q = emit(&query(7, "a", rtype::A));
        q.truncate(12);
        let mut self_loop = q.clone();
        self_loop.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01");
        let e = parse(&self_loop).unwrap_err();
        assert_eq!(e.to_string(), "byte 12: compression pointer loop (to byte 12, inside this name)");
        let mut two = q.clone();
        two.extend_from_slice(b"\x01a\xc0\x0c\x00\x01\x00\x01");
        assert!(parse(&two).unwrap_err().reason.contains("loop"));
        let mut fwd = q.clone();
        fwd.extend_from_slice(b"\xc0\x12\x00\x01\x00\x01\x01a\x00");
        assert!(parse(&fwd).unwrap_err().reason.contains("forward"));
        let mut out = q.clone();
        out.extend_from_slice(b"\xc3\xff\x00\x01\x00\x01");
        assert!(parse(&out).unwrap_err().reason.contains("past the end"));
        let mut hdr = q.clone();
        hdr.extend_from_slice(b"\xc0\x02\x00\x01\x00\x01");
        assert!(parse(&hdr).unwrap_err().reason.contains("header"));
        let mut bad = q.clone();
        bad.extend_from_slice(b"\x41a\x00\x00\x01\x00\x01");
        assert!(parse(&bad).unwrap_err().reason.contains("label type 0x40"));
    }

    #[test]
    fn a_chain_of_backward_pointers_is_bounded() {
        // 200 names, each a pointer to the one before: legal one by one, too long a chain.
        let mut m = emit(&DnsMessage::default());
        let first = m.len();
        m.extend_from_slice(b"\x01a\x00");
        let mut prev = first;
        for _ in 0..200 {
            let at = m.len();
            m.extend_from_slice(&(0xc000 | prev as u16).to_be_bytes());
            prev = at;
        }
        let qname_at = m.len();
        m.extend_from_slice(&(0xc000 | prev as u16).to_be_bytes());
        m.extend_from_slice(b"\x00\x01\x00\x01");
        let e = read_name(&m, qname_at).unwrap_err();
        assert!(e.reason.contains("more than 128"), "{e}");
    }

    #[test]
    fn long_names_and_short_messages_are_errors() {
        assert_eq!(
            parse(&[0; 5]).unwrap_err().to_string(),
            "byte 5: a DNS message starts with a 12-byte header; this one has 5 bytes"
        );
        let mut m = emit(&DnsMessage::default());
        m[5] = 1;
        for _ in 0..5 {
            m.push(60);
            m.extend_from_slice(&[b'x'; 60]);
        }
        m.push(0);
        m.extend_from_slice(b"\x00\x01\x00\x01");
        assert!(parse(&m).unwrap_err().reason.contains("longer than 255"));
        // Two questions announced, one present.
        let mut q = emit(&query(1, "a", rtype::A));
        q[5] = 2;
        assert_eq!(
            parse(&q).unwrap_err().to_string(),
            "byte 19: QDCOUNT is 2 but the message ends after 1 questions"
        );
        // A question cut inside QTYPE.
        let q = emit(&query(1, "a", rtype::A));
        assert!(parse(&q[..16]).unwrap_err().reason.contains("QTYPE"));
    }

    #[test]
    fn records_with_bad_lengths_are_errors() {
        let mut m = query(1, "a", rtype::A);
        m.answer.push(Record {
            name: name("a"),
            rtype: rtype::A,
            class: CLASS_IN,
            ttl: 1,
            data: RData::Raw(vec![1, 2, 3]),
        });
        assert!(parse(&emit(&m)).unwrap_err().reason.contains("4 bytes of RDATA, not 3"));
        m.answer[0].data = RData::A(Ipv4Addr::LOCALHOST);
        let b = emit(&m);
        assert!(parse(&b[..b.len() - 1]).unwrap_err().reason.contains("RDLENGTH 4 runs past"));
        let mut extra = b.clone();
        extra.extend_from_slice(b"junk");
        let p = parse(&extra).unwrap();
        assert_eq!((p.findings.len(), p.findings[0].level), (1, Level::Should));
        // An MX whose name ends after RDLENGTH.
        m.answer[0] = Record {
            name: name("a"),
            rtype: rtype::MX,
            class: CLASS_IN,
            ttl: 1,
            data: RData::Mx {
                preference: 10,
                exchange: name("mail"),
            },
        };
        let mut b = emit(&m);
        let len_at = b.len() - 10;
        b[len_at + 1] -= 2;
        assert!(parse(&b).is_err());
    }

    #[test]
    fn edns_extended_rcode_and_options() {
        let mut m = query(9, "example.test", rtype::SOA);
        m.qr = true;
        m.rcode = 16;
        m.edns = Some(Edns {
            udp_size: 4096,
            version: 0,
            dnssec_ok: true,
            z: 0,
            options: vec![(10, vec![1, 2, 3, 4, 5, 6, 7, 8])],
        });
        let b = emit(&m);
        assert_eq!(b[3] & 0xf, 0);
        assert_eq!(parse(&b).unwrap().msg, m);
        let mut two = b.clone();
        two[11] = 2;
        two.extend_from_slice(&b[b.len() - 23..]);
        assert!(parse(&two).unwrap().findings.iter().any(|f| f.level == Level::Must));
    }

    mod roundtrip {
        use super::super::*;
        use proptest::prelude::*;

        fn label() -> impl Strategy<Value = Vec<u8>> {
            // Few distinct labels so suffixes repeat and compression is exercised; some arbitrary.
            prop_oneof![
                3 => prop::sample::select(vec!["www", "WWW", "example", "test", "a", "mail"]).prop_map(|s| s.as_bytes().to_vec()),
                1 => prop::collection::vec(any::<u8>(), 1..=MAX_LABEL),
            ]
        }

        fn name() -> impl Strategy<Value = Name> {
            prop::collection::vec(label(), 0..4).prop_map(|labels| Name { labels })
        }

        fn rdata() -> impl Strategy<Value = (u16, u16, RData)> {
            prop_oneof![
                any::<[u8; 4]>().prop_map(|b| (rtype::A, CLASS_IN, RData::A(Ipv4Addr::from(b)))),
                any::<[u8; 16]>().prop_map(|b| (rtype::AAAA, CLASS_IN, RData::Aaaa(Ipv6Addr::from(b)))),
                (prop::sample::select(vec![rtype::NS, rtype::CNAME, rtype::PTR]), name()).prop_map(|(t, n)| (t, CLASS_IN, RData::Name(n))),
                (any::<u16>(), name()).prop_map(|(preference, exchange)| (rtype::MX, CLASS_IN, RData::Mx { preference, exchange })),
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..=255), 1..3).prop_map(|t| (rtype::TXT, 3, RData::Txt(t))),
                (name(), name(), any::<[u32; 5]>()).prop_map(|(mname, rname, v)| (
                    rtype::SOA,
                    CLASS_IN,
                    RData::Soa {
                        mname,
                        rname,
                        serial: v[0],
                        refresh: v[1],
                        retry: v[2],
                        expire: v[3],
                        minimum: v[4]
                    }
                )),
                (any::<[u16; 3]>(), name()).prop_map(|(v, target)| (
                    rtype::SRV,
                    CLASS_IN,
                    RData::Srv {
                        priority: v[0],
                        weight: v[1],
                        port: v[2],
                        target
                    }
                )),
                (1000u16..2000, any::<u16>(), prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(t, c, b)| (t, c, RData::Raw(b))),
            ]
        }

        fn record() -> impl Strategy<Value = Record> {
            (name(), any::<u32>(), rdata()).prop_map(|(name, ttl, (rtype, class, data))| Record {
                name,
                rtype,
                class,
                ttl,
                data,
            })
        }

        fn edns() -> impl Strategy<Value = Option<Edns>> {
            prop::option::of(
                (
                    any::<u16>(),
                    any::<u8>(),
                    any::<bool>(),
                    0u16..0x8000,
                    prop::collection::vec((any::<u16>(), prop::collection::vec(any::<u8>(), 0..8)), 0..3),
                )
                    .prop_map(|(udp_size, version, dnssec_ok, z, options)| Edns {
                        udp_size,
                        version,
                        dnssec_ok,
                        z,
                        options,
                    }),
            )
        }

        fn message() -> impl Strategy<Value = DnsMessage> {
            let sections = (
                prop::collection::vec((name(), any::<u16>(), any::<u16>()), 0..3),
                prop::collection::vec(record(), 0..4),
                prop::collection::vec(record(), 0..4),
                prop::collection::vec(record(), 0..4),
            );
            (any::<u16>(), any::<[bool; 9]>(), 0u8..16, 0u16..4096, sections, edns()).prop_map(
                |(id, f, opcode, rcode, (qs, an, ns, ar), edns)| {
                    DnsMessage {
                        id,
                        qr: f[0],
                        opcode,
                        aa: f[1],
                        tc: f[2],
                        rd: f[3],
                        ra: f[4],
                        z: f[5],
                        ad: f[6],
                        cd: f[7],
                        // Without an OPT record only the header's four bits exist.
                        rcode: if edns.is_some() { rcode } else { rcode & 0xf },
                        questions: qs
                            .into_iter()
                            .map(|(name, qtype, qclass)| Question { name, qtype, qclass })
                            .collect(),
                        answer: an,
                        authority: ns,
                        additional: ar,
                        edns,
                    }
                },
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(500))]
            #[test]
            fn emit_then_parse_gives_the_message_back(m in message()) {
                let bytes = emit(&m);
                let p = parse(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&p.msg, &m);
                prop_assert!(p.findings.is_empty(), "{:?}", p.findings);
            }

            #[test]
            fn any_bytes_parse_or_fail_without_panicking(b in prop::collection::vec(any::<u8>(), 0..300)) {
                if let Err(e) = parse(&b) {
                    prop_assert!(e.offset <= b.len());
                }
            }
        }
    }
}
