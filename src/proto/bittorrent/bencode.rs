//! Bencode (BEP 3): a lenient decoder that keeps every value's byte span and notes where the
//! input is not canonical, and the canonical encoder.
//!
//! Written here rather than taken from a crate: the harness must read what a peer sent even when
//! it breaks the rules (unsorted or repeated keys, leading zeros, `i-0e`), say where it did, and
//! hash an info dictionary's bytes exactly as they appear in a file (the info-hash); the bencode
//! crates either refuse non-canonical input or lose the positions.

use std::fmt::Write as _;

/// How deep lists and dictionaries may nest: input nests boundedly, so decoding never overflows
/// the stack whatever a peer sends.
pub const MAX_DEPTH: usize = 64;

/// A decoded value with the bytes it spans in its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// What it is.
    pub kind: Kind,
    /// Its first byte's offset in the input.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
}

/// The four bencode types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `i42e`. Integers beyond 64 bits are an error: nothing BitTorrent counts needs more.
    Int(i64),
    /// `4:spam`: raw bytes, not necessarily UTF-8.
    Bytes(Vec<u8>),
    /// `l...e`.
    List(Vec<Value>),
    /// `d...e`: pairs in the order they appear (duplicates kept, so findings can name them).
    Dict(Vec<(Vec<u8>, Value)>),
}

/// Where bencode breaks a rule of BEP 3 without being unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noncanonical {
    /// Offset of the offending byte.
    pub offset: usize,
    /// What is wrong, in a few words.
    pub what: String,
}

/// Bytes that are not bencode (or not yet all of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ends inside a value: more bytes may complete it.
    Incomplete,
    /// The byte at `offset` cannot be bencode.
    Invalid {
        /// Offset of the offending byte.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Incomplete => f.write_str("bencode cut short"),
            DecodeError::Invalid { offset, reason } => write!(f, "byte {offset}: {reason}"),
        }
    }
}

impl Value {
    /// The bytes of a byte string.
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// A byte string as text, when it is UTF-8.
    pub fn str(&self) -> Option<&str> {
        self.bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// An integer's value.
    pub fn int(&self) -> Option<i64> {
        match self.kind {
            Kind::Int(i) => Some(i),
            _ => None,
        }
    }

    /// A list's items.
    pub fn list(&self) -> Option<&[Value]> {
        match &self.kind {
            Kind::List(l) => Some(l),
            _ => None,
        }
    }

    /// A dictionary's pairs, in the order they appear.
    pub fn dict(&self) -> Option<&[(Vec<u8>, Value)]> {
        match &self.kind {
            Kind::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The value of `key` in a dictionary (the first, when a key is repeated).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.dict()?.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v)
    }

    /// The value as canonical bencode (keys sorted, repeated keys kept once: the first).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(self, &mut out);
        out
    }

    /// The value in one line for transcripts: byte strings as text when printable, else as hex
    /// (20-byte ones, info-hashes and peer ids, in full; longer ones cut).
    pub fn render(&self) -> String {
        let mut s = String::new();
        render_into(self, &mut s);
        s
    }
}

fn encode_into(v: &Value, out: &mut Vec<u8>) {
    match &v.kind {
        Kind::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
        Kind::Bytes(b) => encode_bytes(b, out),
        Kind::List(items) => {
            out.push(b'l');
            items.iter().for_each(|i| encode_into(i, out));
            out.push(b'e');
        }
        Kind::Dict(pairs) => {
            let mut sorted: Vec<&(Vec<u8>, Value)> = Vec::with_capacity(pairs.len());
            for p in pairs {
                if !sorted.iter().any(|q| q.0 == p.0) {
                    sorted.push(p);
                }
            }
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(b'd');
            for (k, v) in sorted {
                encode_bytes(k, out);
                encode_into(v, out);
            }
            out.push(b'e');
        }
    }
}

/// Appends `b` as a bencode byte string.
pub fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

/// Builds bencode by hand in canonical form: what the harness sends and its actors answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Build {
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Build>),
    /// A dictionary; written with its keys sorted whatever the order here.
    Dict(Vec<(Vec<u8>, Build)>),
}

impl Build {
    /// A byte string from text.
    pub fn text(s: &str) -> Build {
        Build::Bytes(s.as_bytes().to_vec())
    }

    /// A dictionary from `(key, value)` pairs.
    pub fn dict<const N: usize>(pairs: [(&str, Build); N]) -> Build {
        Build::Dict(pairs.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v)).collect())
    }

    /// Canonical bencode: keys sorted by their raw bytes (BEP 3).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Build::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Build::Bytes(b) => encode_bytes(b, out),
            Build::List(items) => {
                out.push(b'l');
                items.iter().for_each(|i| i.encode_into(out));
                out.push(b'e');
            }
            Build::Dict(pairs) => {
                let mut sorted: Vec<_> = pairs.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                out.push(b'd');
                for (k, v) in sorted {
                    encode_bytes(k, out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }
}

fn render_into(v: &Value, s: &mut String) {
    match &v.kind {
        Kind::Int(i) => {
            let _ = write!(s, "{i}");
        }
        Kind::Bytes(b) => s.push_str(&render_bytes(b)),
        Kind::List(items) => {
            s.push('[');
            for (n, i) in items.iter().enumerate() {
                if n > 0 {
                    s.push_str(", ");
                }
                if s.len() > 2000 {
                    s.push('…');
                    break;
                }
                render_into(i, s);
            }
            s.push(']');
        }
        Kind::Dict(pairs) => {
            s.push('{');
            for (n, (k, v)) in pairs.iter().enumerate() {
                if n > 0 {
                    s.push_str(", ");
                }
                if s.len() > 2000 {
                    s.push('…');
                    break;
                }
                s.push_str(&render_bytes(k));
                s.push_str(": ");
                render_into(v, s);
            }
            s.push('}');
        }
    }
}

/// A byte string for transcripts: quoted text when printable, else `0x` and hex (cut after 64
/// bytes, with the length).
pub fn render_bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(t) if t.chars().all(|c| !c.is_control()) && t.len() <= 200 => format!("{t:?}"),
        _ if b.len() <= 64 => format!("0x{}", hex(b)),
        _ => format!("0x{}… ({} bytes)", hex(&b[..32]), b.len()),
    }
}

/// Lowercase hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().fold(String::with_capacity(b.len() * 2), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// Bytes from hex (two digits a byte, whitespace ignored), or None when it is not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

/// Decodes the one value that starts `buf`: the value, the bytes it used (what follows is not
/// read), and where it is not canonical.
pub fn decode_prefix(buf: &[u8]) -> Result<(Value, usize, Vec<Noncanonical>), DecodeError> {
    let mut d = Decoder { buf, notes: Vec::new() };
    let v = d.value(0, 0)?;
    let used = v.end;
    Ok((v, used, d.notes))
}

/// Decodes `buf` as exactly one value; bytes after it are an error.
pub fn decode(buf: &[u8]) -> Result<(Value, Vec<Noncanonical>), DecodeError> {
    let (v, used, notes) = decode_prefix(buf)?;
    if used != buf.len() {
        return Err(DecodeError::Invalid {
            offset: used,
            reason: format!("{} bytes after the value", buf.len() - used),
        });
    }
    Ok((v, notes))
}

struct Decoder<'a> {
    buf: &'a [u8],
    notes: Vec<Noncanonical>,
}

impl<'a> Decoder<'a> {
    fn invalid<T>(&self, offset: usize, reason: impl Into<String>) -> Result<T, DecodeError> {
        Err(DecodeError::Invalid {
            offset,
            reason: reason.into(),
        })
    }

    fn value(&mut self, at: usize, depth: usize) -> Result<Value, DecodeError> {
        let Some(&b) = self.buf.get(at) else {
            return Err(DecodeError::Incomplete);
        };
        match b {
            b'i' => {
                let (i, end) = self.int(at + 1, b'e')?;
                Ok(Value {
                    kind: Kind::Int(i),
                    start: at,
                    end,
                })
            }
            b'0'..=b'9' => {
                let (bytes, end) = self.bytes(at)?;
                Ok(Value {
                    kind: Kind::Bytes(bytes.to_vec()),
                    start: at,
                    end,
                })
            }
            b'l' | b'd' if depth >= MAX_DEPTH => self.invalid(at, format!("nested deeper than {MAX_DEPTH}")),
            b'l' => {
                let mut items = Vec::new();
                let mut pos = at + 1;
                loop {
                    match self.buf.get(pos) {
                        None => return Err(DecodeError::Incomplete),
                        Some(b'e') => break,
                        Some(_) => {
                            let v = self.value(pos, depth + 1)?;
                            pos = v.end;
                            items.push(v);
                        }
                    }
                }
                Ok(Value {
                    kind: Kind::List(items),
                    start: at,
                    end: pos + 1,
                })
            }
            b'd' => {
                let mut pairs: Vec<(Vec<u8>, Value)> = Vec::new();
                let mut pos = at + 1;
                loop {
                    match self.buf.get(pos) {
                        None => return Err(DecodeError::Incomplete),
                        Some(b'e') => break,
                        Some(b'0'..=b'9') => {
                            let (key, after) = self.bytes(pos)?;
                            let key = key.to_vec();
                            if let Some((prev, _)) = pairs.last() {
                                if pairs.iter().any(|(k, _)| *k == key) {
                                    self.note(pos, format!("key {} repeated", render_bytes(&key)));
                                } else if *prev > key {
                                    self.note(
                                        pos,
                                        format!("key {} after {}: keys must be sorted", render_bytes(&key), render_bytes(prev)),
                                    );
                                }
                            }
                            let v = self.value(after, depth + 1)?;
                            pos = v.end;
                            pairs.push((key, v));
                        }
                        Some(_) => return self.invalid(pos, "a dictionary key must be a byte string"),
                    }
                }
                Ok(Value {
                    kind: Kind::Dict(pairs),
                    start: at,
                    end: pos + 1,
                })
            }
            _ => self.invalid(at, format!("0x{b:02x} starts no bencode value (i, l, d or a digit)")),
        }
    }

    fn note(&mut self, offset: usize, what: String) {
        self.notes.push(Noncanonical { offset, what });
    }

    /// The integer from `at` up to `end_byte`, and the offset after it.
    fn int(&mut self, at: usize, end_byte: u8) -> Result<(i64, usize), DecodeError> {
        // 20 digits and a sign hold any i64; a longer run is not a number anything here counts.
        let rest = &self.buf[at.min(self.buf.len())..];
        let Some(len) = rest.iter().take(22).position(|&c| c == end_byte) else {
            if rest.len() >= 22 {
                return self.invalid(at, "a number of more than 20 digits");
            }
            if let Some(p) = rest.iter().position(|c| !(c.is_ascii_digit() || *c == b'-')) {
                return self.invalid(at + p, "not a digit");
            }
            return Err(DecodeError::Incomplete);
        };
        let text = &rest[..len];
        let digits = text.strip_prefix(b"-").unwrap_or(text);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return self.invalid(at, "not a number");
        }
        if digits.len() > 1 && digits[0] == b'0' {
            self.note(at, "a number with a leading zero".into());
        }
        if text == b"-0" {
            self.note(at, "i-0e: zero has no sign".into());
        }
        match std::str::from_utf8(text).ok().and_then(|t| t.parse::<i64>().ok()) {
            Some(i) => Ok((i, at + len + 1)),
            None => self.invalid(at, "a number beyond 64 bits"),
        }
    }

    fn bytes(&mut self, at: usize) -> Result<(&'a [u8], usize), DecodeError> {
        let (n, after) = self.int(at, b':')?;
        if self.buf.get(at) == Some(&b'-') {
            return self.invalid(at, "a negative string length");
        }
        let n = usize::try_from(n).map_err(|_| DecodeError::Invalid {
            offset: at,
            reason: "a string length beyond memory".into(),
        })?;
        match after.checked_add(n) {
            Some(end) if end <= self.buf.len() => {
                let buf: &'a [u8] = self.buf;
                Ok((&buf[after..end], end))
            }
            Some(_) => Err(DecodeError::Incomplete),
            None => self.invalid(at, "a string length beyond memory"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_type_with_spans() {
        let (v, notes) = decode(b"d3:cow3:moo4:spaml1:a1:bi-3eee").unwrap();
        assert!(notes.is_empty());
        assert_eq!(v.get("cow").unwrap().str(), Some("moo"));
        let spam = v.get("spam").unwrap();
        assert_eq!((spam.start, spam.end), (17, 29));
        assert_eq!(spam.list().unwrap()[2].int(), Some(-3));
        assert_eq!(v.render(), r#"{"cow": "moo", "spam": ["a", "b", -3]}"#);
    }

    #[test]
    fn round_trip_canonical_input_is_encoded_back_byte_for_byte() {
        for input in [
            &b"i0e"[..],
            b"0:",
            b"le",
            b"de",
            b"d1:ad1:bi1eee",
            b"l4:spami42ee",
            b"d4:info3:abc3:zzzi-7ee",
        ] {
            let (v, notes) = decode(input).unwrap();
            assert!(notes.is_empty(), "{notes:?}");
            assert_eq!(v.encode(), input);
        }
        let built = Build::dict([
            ("peers", Build::Bytes(vec![127, 0, 0, 1, 0x17, 0x71])),
            ("interval", Build::Int(1800)),
        ]);
        assert_eq!(built.encode(), b"d8:intervali1800e5:peers6:\x7f\x00\x00\x01\x17\x71e");
        assert_eq!(decode(&built.encode()).unwrap().0.encode(), built.encode());
    }

    #[test]
    fn parses_non_canonical_input_and_says_where() {
        let (v, notes) = decode(b"d1:bi1e1:ai2ee").unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].offset, 7);
        assert!(notes[0].what.contains("sorted"), "{notes:?}");
        assert_eq!(v.encode(), b"d1:ai2e1:bi1ee");
        let (_, notes) = decode(b"d1:ai1e1:ai2ee").unwrap();
        assert!(notes[0].what.contains("repeated"), "{notes:?}");
        let (_, notes) = decode(b"i03e").unwrap();
        assert!(notes[0].what.contains("leading zero"), "{notes:?}");
        let (_, notes) = decode(b"i-0e").unwrap();
        assert!(notes[0].what.contains("-0"), "{notes:?}");
        let (_, notes) = decode(b"03:abc").unwrap();
        assert!(notes[0].what.contains("leading zero"), "{notes:?}");
    }

    #[test]
    fn incomplete_at_every_cut_of_a_value() {
        let input = b"d8:intervali1800e5:peersld2:ip9:127.0.0.14:porti6881eeee";
        for cut in 0..input.len() {
            assert_eq!(decode_prefix(&input[..cut]).unwrap_err(), DecodeError::Incomplete, "cut at {cut}");
        }
        assert_eq!(decode_prefix(input).unwrap().1, input.len());
    }

    #[test]
    fn rejects_what_is_not_bencode() {
        for (input, offset) in [
            (&b"x"[..], 0),
            (b"i12a4e", 1),
            (b"ie", 1),
            (b"d i1ee", 1),
            (b"di1ei2ee", 1),
            (b"-3:abc", 0),
            (b"i99999999999999999999e", 1),
            (b"i1ei2e", 3),
        ] {
            match decode(input) {
                Err(DecodeError::Invalid { offset: o, .. }) => assert_eq!(o, offset, "{:?}", String::from_utf8_lossy(input)),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
            }
        }
    }

    #[test]
    fn rejects_nesting_past_the_limit_without_recursing_further() {
        let deep = [vec![b'l'; 10_000], vec![b'e'; 10_000]].concat();
        assert!(matches!(decode(&deep), Err(DecodeError::Invalid { offset, .. }) if offset == MAX_DEPTH));
    }

    #[test]
    fn renders_binary_strings_as_hex() {
        assert_eq!(render_bytes(&[0, 1, 0xff]), "0x0001ff");
        assert_eq!(render_bytes(b"-WC0001-"), "\"-WC0001-\"");
        assert!(render_bytes(&[0u8; 100]).ends_with("(100 bytes)"));
        assert_eq!(unhex("00 ff"), Some(vec![0, 255]));
        assert_eq!(unhex("0"), None);
    }
}
