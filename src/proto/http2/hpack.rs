//! HPACK (RFC 7541) for one direction of a connection: the dynamic table lives as long as the
//! connection, so every header block is decoded in the order it was sent.
//!
//! The table and the string decoding are `fluke-hpack`'s. Each block is first walked here, without
//! decoding its strings, because that crate unwraps the integer of a dynamic table size update
//! (a block ending in a cut one panics), accepts a size update after a field line, and refuses a
//! block made only of size updates, which RFC 7541 §4.2 allows.

use fluke_hpack::decoder::{DecoderError, IntegerDecodingError, StringDecodingError};

/// The table size a decoder starts with, and the least a peer may allow (RFC 9113 §6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// Integers longer than this many bytes are refused, as `fluke-hpack` refuses them (RFC 7541 §5.1
/// lets a decoder bound them).
const MAX_INT_BYTES: usize = 5;

/// Why a field block could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    /// The block breaks RFC 7541: a COMPRESSION_ERROR (RFC 9113 §4.3).
    #[error("{0}")]
    Malformed(String),
    /// An earlier block failed, so the dynamic table is no longer the sender's.
    #[error("not decoded: the dynamic table was lost at an earlier error")]
    Lost,
}

/// A decoded field block: names and values as sent, in order.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// One direction's HPACK decoder.
pub struct Hpack {
    decoder: fluke_hpack::Decoder<'static>,
    /// The largest table the receiver allowed (SETTINGS_HEADER_TABLE_SIZE, RFC 7541 §4.2).
    max_table: usize,
    lost: bool,
}

impl Default for Hpack {
    fn default() -> Self {
        Hpack::new()
    }
}

impl Hpack {
    /// A decoder with an empty dynamic table of the default size.
    pub fn new() -> Hpack {
        Hpack {
            decoder: fluke_hpack::Decoder::new(),
            max_table: DEFAULT_TABLE_SIZE,
            lost: false,
        }
    }

    /// The receiver allowed a table of `size` bytes. Any value it ever advertised is allowed: a
    /// capture cannot tell when the sender saw the SETTINGS, and a smaller one later only binds
    /// the sender once acknowledged.
    pub fn allow_table(&mut self, size: usize) {
        self.max_table = self.max_table.max(size);
    }

    /// Marks the table as lost: a header block never reached it, so later ones cannot be decoded.
    pub fn lose(&mut self) {
        self.lost = true;
    }

    /// Decodes one whole field block (HEADERS or PUSH_PROMISE with its CONTINUATIONs, joined).
    pub fn decode(&mut self, block: &[u8]) -> Result<Fields, HpackError> {
        if self.lost {
            return Err(HpackError::Lost);
        }
        let result = walk(block, self.max_table).and_then(|has_fields| {
            self.decoder.set_max_allowed_table_size(self.max_table);
            if has_fields {
                return self.decoder.decode(block).map_err(describe);
            }
            // Only size updates: the crate wants a field after them, so one is added and dropped
            // (index 2, `:method: GET`, from the static table, which leaves the dynamic table alone).
            let mut padded = block.to_vec();
            padded.push(0x82);
            self.decoder.decode(&padded).map_err(describe).map(|mut f| {
                f.pop();
                f
            })
        });
        if result.is_err() {
            self.lost = true;
        }
        result
    }
}

fn describe(e: DecoderError) -> HpackError {
    HpackError::Malformed(match e {
        DecoderError::HeaderIndexOutOfBounds => "an index past the static and dynamic tables (RFC 7541 §2.3.3)".into(),
        DecoderError::IntegerDecodingError(IntegerDecodingError::NotEnoughOctets)
        | DecoderError::StringDecodingError(StringDecodingError::NotEnoughOctets) => {
            "a representation cut short by the end of the block (RFC 7541 §5)".into()
        }
        DecoderError::IntegerDecodingError(e) => format!("a malformed integer, {e:?} (RFC 7541 §5.1)"),
        DecoderError::StringDecodingError(StringDecodingError::HuffmanDecoderError(e)) => {
            format!("a malformed Huffman string, {e:?} (RFC 7541 §5.2)")
        }
        DecoderError::InvalidMaxDynamicSize => "a table size update over the allowed maximum (RFC 7541 §6.3)".into(),
        DecoderError::SizeUpdateAtEnd => "a table size update with no field after it".into(),
    })
}

/// Checks a block's structure (RFC 7541 §6) without decoding strings: every integer and length
/// inside the block, size updates first and within `max_table`. Says whether it has any field.
fn walk(block: &[u8], max_table: usize) -> Result<bool, HpackError> {
    let bad = |s: String| HpackError::Malformed(s);
    let (mut i, mut fields) = (0, false);
    while i < block.len() {
        let b = block[i];
        let rest = &block[i..];
        i += if b & 0x80 != 0 {
            fields = true;
            int(rest, 7)?.1
        } else if b & 0x40 != 0 {
            fields = true;
            literal(rest, 6)?
        } else if b & 0x20 != 0 {
            if fields {
                return Err(bad(
                    "a dynamic table size update after a field line: it MUST come at the beginning of the block (RFC 7541 §4.2)".into(),
                ));
            }
            let (size, n) = int(rest, 5)?;
            if size > max_table {
                return Err(bad(format!(
                    "a dynamic table size update to {size}, over the {max_table} the receiver allowed (RFC 7541 §6.3)"
                )));
            }
            n
        } else {
            fields = true;
            literal(rest, 4)?
        };
    }
    Ok(fields)
}

/// A literal field line (RFC 7541 §6.2): the name's index, or a name string, then a value string.
fn literal(b: &[u8], prefix: u8) -> Result<usize, HpackError> {
    let (index, mut n) = int(b, prefix)?;
    if index == 0 {
        n += string(&b[n..])?;
    }
    Ok(n + string(&b[n..])?)
}

/// A string literal's length (RFC 7541 §5.2), which must fit in the block.
fn string(b: &[u8]) -> Result<usize, HpackError> {
    let (len, n) = int(b, 7)?;
    if len > b.len() - n {
        return Err(HpackError::Malformed(format!(
            "a string of {len} bytes runs past the end of the block (RFC 7541 §5.2)"
        )));
    }
    Ok(n + len)
}

/// An integer with an N-bit prefix (RFC 7541 §5.1): its value and the bytes it used.
fn int(b: &[u8], prefix: u8) -> Result<(usize, usize), HpackError> {
    let cut = || HpackError::Malformed("a representation cut short by the end of the block (RFC 7541 §5.1)".into());
    let first = *b.first().ok_or_else(cut)?;
    let mask = (1usize << prefix) - 1;
    let mut value = usize::from(first) & mask;
    if value < mask {
        return Ok((value, 1));
    }
    for (k, &byte) in b.iter().enumerate().skip(1) {
        if k >= MAX_INT_BYTES {
            return Err(HpackError::Malformed(format!(
                "an integer longer than {MAX_INT_BYTES} bytes (RFC 7541 §5.1)"
            )));
        }
        value += usize::from(byte & 0x7f) << (7 * (k - 1));
        if byte & 0x80 == 0 {
            return Ok((value, k + 1));
        }
    }
    Err(cut())
}

/// The Huffman code of each octet, and of EOS last, as (code, length in bits): RFC 7541
/// Appendix B.
pub(crate) const HUFFMAN: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30),
];

/// `bytes` Huffman-coded (RFC 7541 §5.2), padded with the most significant bits of EOS (ones).
pub fn huffman(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let (mut acc, mut bits) = (0u64, 0u32);
    for &b in bytes {
        let (code, len) = HUFFMAN[usize::from(b)];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) | ((1u64 << (8 - bits)) - 1)) as u8);
    }
    out
}

/// An HPACK integer with an `n`-bit prefix whose other bits are `first` (RFC 7541 §5.1).
pub fn integer(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A string literal (RFC 7541 §5.2), Huffman-coded when `huff`.
pub fn encode_string(out: &mut Vec<u8>, bytes: &[u8], huff: bool) {
    match huff {
        true => {
            let h = huffman(bytes);
            integer(out, 0x80, 7, h.len());
            out.extend_from_slice(&h);
        }
        false => {
            integer(out, 0, 7, bytes.len());
            out.extend_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn text(fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(n, v)| (String::from_utf8_lossy(n).into(), String::from_utf8_lossy(v).into()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    /// RFC 7541 Appendix C.3 (requests without Huffman) and C.4 (with Huffman): three requests
    /// each, sharing one dynamic table.
    #[test]
    fn round_trip_rfc7541_c3_and_c4_requests() {
        let first = pairs(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ]);
        let second = [first.clone(), pairs(&[("cache-control", "no-cache")])].concat();
        let third = pairs(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ]);
        for wires in [
            [
                "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                "8286 84be 5808 6e6f 2d63 6163 6865",
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
            ],
            [
                "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                "8286 84be 5886 a8eb 1064 9cbf",
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
            ],
        ] {
            let mut h = Hpack::new();
            for (wire, want) in wires.iter().zip([&first, &second, &third]) {
                assert_eq!(&text(&h.decode(&hex(wire)).unwrap()), want, "{wire}");
            }
        }
    }

    /// RFC 7541 Appendix C.5 (responses without Huffman) and C.6 (with Huffman): a 256-byte
    /// table, so entries are evicted.
    #[test]
    fn round_trip_rfc7541_c5_and_c6_responses_with_eviction() {
        let r1 = pairs(&[
            (":status", "302"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("location", "https://www.example.com"),
        ]);
        let r2 = pairs(&[
            (":status", "307"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("location", "https://www.example.com"),
        ]);
        let r3 = pairs(&[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
            ("location", "https://www.example.com"),
            ("content-encoding", "gzip"),
            ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
        ]);
        for wires in [
            [
                "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                "4803 3330 37c1 c0bf",
                "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
            ],
            [
                "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
                "4883 640e ffc1 c0bf",
                "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
            ],
        ] {
            let mut h = Hpack::new();
            // The examples' table is 256 bytes: the first block starts with that size update.
            let mut sized = hex("3fe1 01");
            sized.extend(hex(wires[0]));
            assert_eq!(text(&h.decode(&sized).unwrap()), r1);
            assert_eq!(text(&h.decode(&hex(wires[1])).unwrap()), r2);
            assert_eq!(text(&h.decode(&hex(wires[2])).unwrap()), r3);
        }
    }

    /// RFC 7541 Appendix C.2: the four representations of a single field.
    #[test]
    fn parses_rfc7541_c2_field_representations() {
        let cases = [
            (
                "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
                ("custom-key", "custom-header"),
            ),
            ("040c 2f73 616d 706c 652f 7061 7468", (":path", "/sample/path")),
            ("1008 7061 7373 776f 7264 0673 6563 7265 74", ("password", "secret")),
            ("82", (":method", "GET")),
        ];
        for (wire, (n, v)) in cases {
            assert_eq!(text(&Hpack::new().decode(&hex(wire)).unwrap()), pairs(&[(n, v)]), "{wire}");
        }
    }

    #[test]
    fn parses_a_block_of_size_updates_only() {
        let mut h = Hpack::new();
        assert_eq!(h.decode(&[0x20, 0x3f, 0xe1, 0x1f]).unwrap(), Fields::new());
        assert_eq!(text(&h.decode(&[0x82]).unwrap()), pairs(&[(":method", "GET")]));
    }

    #[test]
    fn rejects_cut_and_misplaced_size_updates_and_then_stays_lost() {
        for bad in [
            &[0x82, 0x3f][..],
            &[0x3f, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x82, 0x20],
            &[0x3f, 0xe2, 0x1f],
        ] {
            let mut h = Hpack::new();
            assert!(matches!(h.decode(bad), Err(HpackError::Malformed(_))), "{bad:x?}");
            assert_eq!(h.decode(&[0x82]), Err(HpackError::Lost));
        }
        let mut h = Hpack::new();
        h.allow_table(65536);
        assert!(h.decode(&[0x3f, 0xe2, 0x1f, 0x82]).is_ok(), "4097 within an advertised 65536");
    }

    #[test]
    fn rejects_bad_indexes_strings_and_huffman() {
        for bad in [&[0x80][..], &[0xff, 0x80, 0x01], &[0x41, 0x05, b'a'], &[0x41, 0x81, 0xff], &[0x40]] {
            assert!(matches!(Hpack::new().decode(bad), Err(HpackError::Malformed(_))), "{bad:x?}");
        }
    }

    /// The hpack-test-case stories in fixtures/hpack/ (see its CREDITS.md): each story's cases
    /// share one decoder, as a connection's header blocks do.
    #[test]
    fn round_trip_hpack_test_case_stories() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hpack");
        let mut stories = 0;
        let mut cases = 0;
        for dir in std::fs::read_dir(&root).unwrap() {
            let dir = dir.unwrap().path();
            if !dir.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&dir).unwrap() {
                let file = file.unwrap().path();
                let story: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
                let mut h = Hpack::new();
                for (seq, case) in story["cases"].as_array().unwrap().iter().enumerate() {
                    if let Some(size) = case["header_table_size"].as_u64() {
                        h.allow_table(size as usize);
                    }
                    let want: Vec<(String, String)> = case["headers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .flat_map(|o| o.as_object().unwrap().iter())
                        .map(|(n, v)| (n.clone(), v.as_str().unwrap().to_string()))
                        .collect();
                    let got = h
                        .decode(&hex(case["wire"].as_str().unwrap()))
                        .unwrap_or_else(|e| panic!("{} case {seq}: {e}", file.display()));
                    assert_eq!(text(&got), want, "{} case {seq}", file.display());
                    cases += 1;
                }
                stories += 1;
            }
        }
        assert!(stories >= 28 && cases >= 175, "{stories} stories, {cases} cases");
    }

    proptest::proptest! {
        /// What `fluke-hpack`'s encoder makes of varied header lists (repeated names and values,
        /// so the dynamic table fills and evicts) decodes to the same lists, block after block.
        #[test]
        fn round_trip_encoded_header_lists(
            blocks in proptest::collection::vec(
                proptest::collection::vec(("[a-z:][a-z0-9-]{0,12}", "[ -~]{0,60}"), 0..12),
                1..12,
            ),
            table in proptest::option::of(0usize..8192),
        ) {
            let mut enc = fluke_hpack::Encoder::new();
            let mut h = Hpack::new();
            let mut first = true;
            for fields in &blocks {
                let mut wire = Vec::new();
                if let (Some(size), true) = (table, std::mem::take(&mut first)) {
                    // A size update, as an encoder sends after the peer's SETTINGS_HEADER_TABLE_SIZE.
                    enc.set_max_table_size(size);
                    h.allow_table(size);
                    wire.extend(fluke_hpack::encoder::encode_integer(size, 5));
                    wire[0] |= 0x20;
                }
                wire.extend(enc.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))));
                let got = h.decode(&wire).unwrap();
                proptest::prop_assert_eq!(text(&got), fields.clone());
            }
        }

        /// Random bytes never panic the decoder, whatever the table held before.
        #[test]
        fn never_panics_on_random_blocks(
            blocks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 1..6),
        ) {
            let mut h = Hpack::new();
            for b in &blocks {
                let _ = h.decode(b);
            }
        }
    }

    #[test]
    fn round_trip_huffman_strings() {
        // RFC 7541 C.4.1: "www.example.com" Huffman-coded.
        assert_eq!(
            huffman(b"www.example.com"),
            [0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff]
        );
        let mut block = vec![0x00];
        let value = b"h\xc3\xa9llo \x00\xff".to_vec();
        encode_string(&mut block, b"x-any", true);
        encode_string(&mut block, &value, true);
        let fields = Hpack::new().decode(&block).unwrap();
        assert_eq!(fields, vec![(b"x-any".to_vec(), value)]);
    }
}
