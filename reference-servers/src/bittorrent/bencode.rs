//! Writing bencode (BEP 3): what the tracker answers.
//!
//! Written here rather than with `bendy`'s encoder because the tracker's `unsorted-keys` fault
//! must write dictionary keys out of order, which that encoder refuses to do; one small encoder
//! serves both orders. (Reading `.torrent` files does use `bendy`: see `metainfo`.)

use std::collections::BTreeMap;

/// A bencoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    /// `i<n>e`
    Int(i64),
    /// `<length>:<bytes>`
    Bytes(Vec<u8>),
    /// `l...e`
    List(Vec<Value>),
    /// `d...e`, keys as raw bytes (a scrape's keys are binary info-hashes).
    Dict(BTreeMap<Vec<u8>, Value>),
}

/// The order dictionary keys are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyOrder {
    /// Sorted as raw byte strings: the only canonical form (BEP 3).
    Sorted,
    /// Reverse-sorted: the `unsorted-keys` fault.
    Reversed,
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

    /// A non-negative count, saturating at `i64::MAX`.
    pub(super) fn count(n: u64) -> Value {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// The encoding of this value with keys in `order`.
    pub(super) fn encode(&self, order: KeyOrder) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(order, &mut out);
        out
    }

    // Recursion is bounded: the tracker builds its values itself, three levels at most.
    fn write(&self, order: KeyOrder, out: &mut Vec<u8>) {
        match self {
            Value::Int(n) => out.extend_from_slice(format!("i{n}e").as_bytes()),
            Value::Bytes(bytes) => write_bytes(bytes, out),
            Value::List(items) => {
                out.push(b'l');
                for item in items {
                    item.write(order, out);
                }
                out.push(b'e');
            }
            Value::Dict(pairs) => {
                out.push(b'd');
                let mut write_pair = |(key, value): (&Vec<u8>, &Value)| {
                    write_bytes(key, out);
                    value.write(order, out);
                };
                match order {
                    KeyOrder::Sorted => pairs.iter().for_each(&mut write_pair),
                    KeyOrder::Reversed => pairs.iter().rev().for_each(&mut write_pair),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_canonical_bencode() {
        let value = Value::dict([
            ("peers", Value::List(vec![Value::bytes(&b"ab"[..]), Value::Int(-3)])),
            ("interval", Value::count(1800)),
            ("complete", Value::Int(0)),
        ]);
        assert_eq!(value.encode(KeyOrder::Sorted), b"d8:completei0e8:intervali1800e5:peersl2:abi-3eee");
        assert_eq!(
            value.encode(KeyOrder::Reversed),
            b"d5:peersl2:abi-3ee8:intervali1800e8:completei0ee"
        );
    }

    #[test]
    fn binary_keys_sort_as_bytes() {
        let mut files = BTreeMap::new();
        files.insert(vec![0xff, 0x00], Value::Int(1));
        files.insert(vec![0x10], Value::Int(2));
        assert_eq!(Value::Dict(files).encode(KeyOrder::Sorted), b"d1:\x10i2e2:\xff\x00i1ee");
    }
}
