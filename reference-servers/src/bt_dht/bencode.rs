//! Bencode (BEP 3) for KRPC messages: a reader that takes one whole datagram and a writer
//! that always sorts dictionary keys.
//!
//! Own code rather than `bendy`: the reader must refuse nesting beyond `MAX_DEPTH` before it
//! recurses, hand back unknown keys untouched, and never fail loudly on peer data; a hundred
//! lines do that with nothing to configure.

use std::collections::BTreeMap;

/// Lists and dictionaries nested deeper than this make a datagram unreadable: a KRPC message
/// needs three levels (message, arguments, a list of values), and the bound keeps the
/// recursive reader's stack small whatever a peer sends.
pub(super) const MAX_DEPTH: usize = 8;

/// A bencoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    /// `i<n>e`
    Int(i64),
    /// `<length>:<bytes>`
    Bytes(Vec<u8>),
    /// `l...e`
    List(Vec<Value>),
    /// `d...e`, keys as raw bytes; a `BTreeMap` writes them sorted, as canonical bencode wants.
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    /// A dictionary of `pairs` (text keys).
    pub(super) fn dict<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Dict(pairs.into_iter().map(|(key, value)| (key.as_bytes().to_vec(), value)).collect())
    }

    /// A byte string.
    pub(super) fn bytes(bytes: impl Into<Vec<u8>>) -> Value {
        Value::Bytes(bytes.into())
    }

    /// The value at `key`, if this is a dictionary that has it.
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(pairs) => pairs.get(key.as_bytes()),
            _ => None,
        }
    }

    /// The bytes of a byte string.
    pub(super) fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The number of an integer.
    pub(super) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// True for a dictionary.
    pub(super) fn is_dict(&self) -> bool {
        matches!(self, Value::Dict(_))
    }

    /// The encoding of this value, keys sorted.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    // Recursion is bounded: values written are built by the node itself, three levels at most.
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(n) => out.extend_from_slice(format!("i{n}e").as_bytes()),
            Value::Bytes(bytes) => write_bytes(bytes, out),
            Value::List(items) => {
                out.push(b'l');
                items.iter().for_each(|item| item.write(out));
                out.push(b'e');
            }
            Value::Dict(pairs) => {
                out.push(b'd');
                for (key, value) in pairs {
                    write_bytes(key, out);
                    value.write(out);
                }
                out.push(b'e');
            }
        }
    }
}

fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{}:", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

/// The one value `input` holds, or None when it is not exactly one well-formed value (trailing
/// bytes, integers with leading zeros or `-0`, duplicate keys, non-string keys, nesting deeper
/// than `MAX_DEPTH`). Keys out of order are accepted: nothing is lost by reading them.
pub(super) fn decode(input: &[u8]) -> Option<Value> {
    let mut reader = Reader { input, at: 0 };
    let value = reader.value(0)?;
    (reader.at == input.len()).then_some(value)
}

/// A position in the datagram being read.
struct Reader<'a> {
    input: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        match self.peek()? {
            b'i' => {
                self.at += 1;
                let digits = self.until(b'e')?;
                parse_int(digits).map(Value::Int)
            }
            b'0'..=b'9' => self.string().map(Value::Bytes),
            b'l' if depth < MAX_DEPTH => {
                self.at += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.at += 1;
                Some(Value::List(items))
            }
            b'd' if depth < MAX_DEPTH => {
                self.at += 1;
                let mut pairs = BTreeMap::new();
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return None;
                    }
                    let key = self.string()?;
                    let value = self.value(depth + 1)?;
                    if pairs.insert(key, value).is_some() {
                        return None;
                    }
                }
                self.at += 1;
                Some(Value::Dict(pairs))
            }
            _ => None,
        }
    }

    /// The bytes up to `end` (not included), stepping past it.
    fn until(&mut self, end: u8) -> Option<&[u8]> {
        let rest = self.input.get(self.at..)?;
        let len = rest.iter().position(|&b| b == end)?;
        self.at += len + 1;
        rest.get(..len)
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        let digits = self.until(b':')?;
        let len = usize::try_from(parse_int(digits)?).ok()?;
        let end = self.at.checked_add(len)?;
        let bytes = self.input.get(self.at..end)?.to_vec();
        self.at = end;
        Some(bytes)
    }
}

/// A canonical decimal integer: digits with an optional `-`, no leading zeros, no `-0`.
fn parse_int(digits: &[u8]) -> Option<i64> {
    let magnitude = digits.strip_prefix(b"-").unwrap_or(digits);
    let canonical = match magnitude {
        [] => false,
        [b'0'] => magnitude.len() == digits.len(),
        [first, ..] => *first != b'0' && magnitude.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sorts_keys() {
        let value = decode(b"d1:zi-3e1:al2:ab0:ee").expect("valid");
        assert_eq!(value.encode(), b"d1:al2:ab0:e1:zi-3ee");
        assert_eq!(value.get("z").and_then(Value::as_int), Some(-3));
    }

    #[test]
    fn refuses_what_is_not_one_canonical_value() {
        for bad in [
            &b""[..],
            b"i03e",
            b"i-0e",
            b"ie",
            b"i1",
            b"5:abc",
            b"d1:ai1e1:ai2ee",
            b"di1ei2ee",
            b"le ",
            b"x",
            b"01:a",
            b"18446744073709551616:a",
            b"d1:a",
        ] {
            assert_eq!(decode(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}{}", "l".repeat(MAX_DEPTH), "e".repeat(MAX_DEPTH));
        assert!(decode(ok.as_bytes()).is_some());
        let deep = format!("{}{}", "l".repeat(MAX_DEPTH + 1), "e".repeat(MAX_DEPTH + 1));
        assert_eq!(decode(deep.as_bytes()), None);
        assert_eq!(decode("l".repeat(100_000).as_bytes()), None);
    }
}
