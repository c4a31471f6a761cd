//! Frames as bytes: reading them from a buffer, writing them, and field blocks as HPACK literals.
//! The relay's own small codec (the reference shares none of the harness's).

/// Frame types (RFC 9113 §6).
pub(super) const DATA: u8 = 0x0;
pub(super) const HEADERS: u8 = 0x1;
pub(super) const PRIORITY: u8 = 0x2;
pub(super) const RST_STREAM: u8 = 0x3;
pub(super) const SETTINGS: u8 = 0x4;
pub(super) const PUSH_PROMISE: u8 = 0x5;
pub(super) const PING: u8 = 0x6;
pub(super) const GOAWAY: u8 = 0x7;
pub(super) const WINDOW_UPDATE: u8 = 0x8;
pub(super) const CONTINUATION: u8 = 0x9;

/// Flags.
pub(super) const END_STREAM: u8 = 0x1;
pub(super) const ACK: u8 = 0x1;
pub(super) const END_HEADERS: u8 = 0x4;
pub(super) const PADDED: u8 = 0x8;
pub(super) const PRIORITY_FLAG: u8 = 0x20;

/// Error codes (RFC 9113 §7).
pub(super) const NO_ERROR: u32 = 0x0;
pub(super) const PROTOCOL_ERROR: u32 = 0x1;
pub(super) const FLOW_CONTROL_ERROR: u32 = 0x3;
pub(super) const STREAM_CLOSED: u32 = 0x5;
pub(super) const FRAME_SIZE_ERROR: u32 = 0x6;
pub(super) const COMPRESSION_ERROR: u32 = 0x9;

/// SETTINGS identifiers (§6.5.2).
pub(super) const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub(super) const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub(super) const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub(super) const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub(super) const SETTINGS_ENABLE_CONNECT_PROTOCOL: u16 = 0x8;

/// The default SETTINGS_MAX_FRAME_SIZE, the largest frame either side takes before SETTINGS say otherwise.
pub(super) const DEFAULT_MAX_FRAME: usize = 16_384;
/// The largest flow-control window (§6.9.1).
pub(super) const MAX_WINDOW: i64 = 0x7fff_ffff;

/// The client connection preface (§3.4).
pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Frame {
    pub(super) kind: u8,
    pub(super) flags: u8,
    pub(super) stream: u32,
    pub(super) payload: Vec<u8>,
    /// The reserved bit before the stream id was set (§4.1: it MUST be ignored on receipt).
    pub(super) reserved: bool,
}

impl Frame {
    /// A frame with these fields.
    pub(super) fn new(kind: u8, flags: u8, stream: u32, payload: Vec<u8>) -> Frame {
        Frame {
            kind,
            flags,
            stream,
            payload,
            reserved: false,
        }
    }

    /// The frame as it goes on the wire.
    pub(super) fn bytes(&self) -> Vec<u8> {
        let len = self.payload.len() as u32;
        let mut out = Vec::with_capacity(9 + self.payload.len());
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(self.kind);
        out.push(self.flags);
        out.extend_from_slice(&(self.stream & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// True if `flag` is set.
    pub(super) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The first 32-bit word of the payload, reserved bit cleared (a WINDOW_UPDATE's increment).
    pub(super) fn word(&self, at: usize) -> Option<u32> {
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A DATA, HEADERS or PUSH_PROMISE payload without its padding; None when the padding is as
    /// long as the payload or longer (a PROTOCOL_ERROR, §6.1, §6.2, §6.6).
    pub(super) fn unpadded(&self) -> Option<&[u8]> {
        if !self.has(PADDED) {
            return Some(&self.payload);
        }
        let pad = *self.payload.first()? as usize;
        let end = self.payload.len().checked_sub(pad)?;
        if end < 1 {
            return None;
        }
        self.payload.get(1..end)
    }
}

/// A GOAWAY frame.
pub(super) fn goaway(last_stream: u32, code: u32) -> Frame {
    let mut p = last_stream.to_be_bytes().to_vec();
    p.extend_from_slice(&code.to_be_bytes());
    Frame::new(GOAWAY, 0, 0, p)
}

/// A RST_STREAM frame.
pub(super) fn rst_stream(stream: u32, code: u32) -> Frame {
    Frame::new(RST_STREAM, 0, stream, code.to_be_bytes().to_vec())
}

/// A WINDOW_UPDATE frame.
pub(super) fn window_update(stream: u32, increment: u32) -> Frame {
    Frame::new(WINDOW_UPDATE, 0, stream, increment.to_be_bytes().to_vec())
}

/// The (identifier, value) pairs of a SETTINGS payload whose length is a multiple of 6.
pub(super) fn settings(payload: &[u8]) -> Vec<(u16, u32)> {
    payload
        .chunks_exact(6)
        .map(|s| (u16::from_be_bytes([s[0], s[1]]), u32::from_be_bytes([s[2], s[3], s[4], s[5]])))
        .collect()
}

/// A SETTINGS payload of these pairs.
pub(super) fn settings_payload(pairs: &[(u16, u32)]) -> Vec<u8> {
    pairs
        .iter()
        .flat_map(|(id, v)| id.to_be_bytes().into_iter().chain(v.to_be_bytes()))
        .collect()
}

/// What a buffer of incoming bytes holds next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// More bytes are needed.
    More,
    /// A whole frame.
    Frame(Frame),
    /// A frame header announcing a payload longer than the largest allowed: its length.
    Oversized(usize),
}

/// Bytes read from one direction, cut into frames.
#[derive(Debug, Default)]
pub(super) struct Frames {
    buf: Vec<u8>,
    /// Payload bytes still to be thrown away (an oversized frame skipped).
    skip: usize,
}

impl Frames {
    /// Adds bytes read.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        let skipped = self.skip.min(bytes.len());
        self.skip -= skipped;
        self.buf.extend_from_slice(&bytes[skipped..]);
    }

    /// Takes `n` bytes off the front, if that many are there.
    pub(super) fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        (self.buf.len() >= n).then(|| self.buf.drain(..n).collect())
    }

    /// The next frame, if all of it is here; an oversized one is reported from its header alone.
    pub(super) fn next(&mut self, max: usize) -> Next {
        if self.buf.len() < 9 {
            return Next::More;
        }
        let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
        if len > max {
            return Next::Oversized(len);
        }
        if self.buf.len() < 9 + len {
            return Next::More;
        }
        let b = &self.buf;
        let frame = Frame {
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
            payload: b[9..9 + len].to_vec(),
            reserved: b[5] & 0x80 != 0,
        };
        self.buf.drain(..9 + len);
        Next::Frame(frame)
    }

    /// Throws the oversized frame at the front away, its payload as it arrives.
    pub(super) fn skip_oversized(&mut self, len: usize) {
        let here = (self.buf.len() - 9).min(len);
        self.buf.drain(..9 + here);
        self.skip = len - here;
    }
}

/// A field: name and value as bytes.
pub(super) type Field = (Vec<u8>, Vec<u8>);

/// The fields as an HPACK block of literals without indexing and without Huffman coding
/// (RFC 7541 §6.2.2): the decoder's table is never touched, so blocks can be dropped, edited or
/// reordered without the two sides' tables drifting apart.
pub(super) fn literal_block(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        integer(&mut out, 0, 7, name.len());
        out.extend_from_slice(name);
        integer(&mut out, 0, 7, value.len());
        out.extend_from_slice(value);
    }
    out
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), `first` holding the bits above it.
fn integer(out: &mut Vec<u8>, first: u8, n: u32, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// A field block as HEADERS and as many CONTINUATION frames as `max` (the receiver's largest
/// frame) makes it take; `end_stream` on the HEADERS.
pub(super) fn header_frames(stream: u32, block: &[u8], end_stream: bool, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pieces = block.chunks(max.max(1)).peekable();
    let mut kind = HEADERS;
    let mut flags = if end_stream { END_STREAM } else { 0 };
    if pieces.peek().is_none() {
        return Frame::new(HEADERS, flags | END_HEADERS, stream, Vec::new()).bytes();
    }
    while let Some(piece) = pieces.next() {
        if pieces.peek().is_none() {
            flags |= END_HEADERS;
        }
        out.extend_from_slice(&Frame::new(kind, flags, stream, piece.to_vec()).bytes());
        kind = CONTINUATION;
        flags = 0;
    }
    out
}

/// What an HPACK field block uses (RFC 7541 §6), for the decoder bugs the faults play.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Uses {
    /// A Huffman-coded string literal.
    pub(super) huffman: bool,
    /// The dynamic table: a literal with incremental indexing, or an index past the static table.
    pub(super) dynamic: bool,
    /// A dynamic table size update.
    pub(super) size_update: bool,
}

/// The entries of the static table (RFC 7541 Appendix A).
const STATIC_ENTRIES: usize = 61;

/// What `block` uses; None if it does not parse (the decoder then says why).
pub(super) fn uses(block: &[u8]) -> Option<Uses> {
    let mut uses = Uses::default();
    let mut at = 0;
    while at < block.len() {
        let (prefix, literal) = match block[at] {
            b if b & 0x80 != 0 => (7, false),
            b if b & 0x40 != 0 => {
                uses.dynamic = true;
                (6, true)
            }
            b if b & 0x20 != 0 => {
                uses.size_update = true;
                (5, false)
            }
            _ => (4, true),
        };
        let (index, next) = hpack_int(block, at, prefix)?;
        at = next;
        if prefix != 5 && index > STATIC_ENTRIES {
            uses.dynamic = true;
        }
        if literal {
            if index == 0 {
                at = hpack_string(block, at, &mut uses)?;
            }
            at = hpack_string(block, at, &mut uses)?;
        }
    }
    Some(uses)
}

/// An HPACK integer with an `n`-bit prefix at `at` (RFC 7541 §5.1): its value and where it ends.
fn hpack_int(block: &[u8], at: usize, n: u32) -> Option<(usize, usize)> {
    let max = (1usize << n) - 1;
    let mut value = usize::from(*block.get(at)?) & max;
    let mut at = at + 1;
    if value < max {
        return Some((value, at));
    }
    // At most four octets after the prefix: no value a peer has reason to send needs more,
    // and the decoder refuses more (it panics on a size update it refuses; see `decode`).
    for shift in [0, 7, 14, 21] {
        let b = *block.get(at)?;
        at += 1;
        value += usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((value, at));
        }
    }
    None
}

/// Skips an HPACK string literal at `at` (RFC 7541 §5.2), noting whether it is Huffman-coded.
fn hpack_string(block: &[u8], at: usize, uses: &mut Uses) -> Option<usize> {
    uses.huffman |= *block.get(at)? & 0x80 != 0;
    let (len, at) = hpack_int(block, at, 7)?;
    let end = at.checked_add(len)?;
    (end <= block.len()).then_some(end)
}

/// Decodes a field block; None if it does not decode (a COMPRESSION_ERROR, RFC 9113 §4.3).
pub(super) fn decode(decoder: &mut fluke_hpack::Decoder<'static>, block: &[u8]) -> Option<Vec<Field>> {
    // The crate panics on a size update whose integer is cut or too long: walked first, such a
    // block never reaches it. What else might panic there is a decoding error too, caught.
    uses(block)?;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decoder.decode(block).ok())).unwrap_or(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_ones_are_seen_early() {
        let mut frames = Frames::default();
        let ping = Frame::new(PING, 0, 0, b"12345678".to_vec());
        let bytes = ping.bytes();
        frames.push(&bytes[..5]);
        assert_eq!(frames.next(DEFAULT_MAX_FRAME), Next::More);
        frames.push(&bytes[5..]);
        assert_eq!(frames.next(DEFAULT_MAX_FRAME), Next::Frame(ping.clone()));
        let big = Frame::new(DATA, 0, 1, vec![7; 20_000]).bytes();
        frames.push(&big[..100]);
        assert_eq!(frames.next(DEFAULT_MAX_FRAME), Next::Oversized(20_000));
        frames.skip_oversized(20_000);
        frames.push(&big[100..]);
        frames.push(&bytes);
        assert_eq!(frames.next(DEFAULT_MAX_FRAME), Next::Frame(ping));
    }

    #[test]
    fn literal_blocks_decode_and_leave_the_table_empty() {
        let fields: Vec<Field> = vec![(b":status".to_vec(), b"200".to_vec()), (b"x-long".to_vec(), vec![b'a'; 300])];
        let block = literal_block(&fields);
        let mut decoder = fluke_hpack::Decoder::new();
        assert_eq!(decode(&mut decoder, &block), Some(fields));
        // The next block that refers to the first dynamic entry (index 62) fails: there is none.
        assert_eq!(decode(&mut decoder, &[0xbe]), None);
        assert_eq!(decode(&mut decoder, &[0x3f]), None, "a cut integer is an error, not a panic");
    }

    #[test]
    fn header_blocks_are_split_at_the_frame_size() {
        let bytes = header_frames(3, &[1; 10], true, 4);
        let mut frames = Frames::default();
        frames.push(&bytes);
        let mut got = Vec::new();
        while let Next::Frame(f) = frames.next(16) {
            got.push((f.kind, f.flags, f.payload.len()));
        }
        assert_eq!(
            got,
            vec![(HEADERS, END_STREAM, 4), (CONTINUATION, 0, 4), (CONTINUATION, END_HEADERS, 2)]
        );
    }

    #[test]
    fn what_blocks_use() {
        let none = Uses::default();
        let with = |huffman, dynamic, size_update| Uses {
            huffman,
            dynamic,
            size_update,
        };
        // RFC 7541 C.3.1 (indexed, a literal with incremental indexing), C.4.1 (the same, Huffman).
        let c31 = b"\x82\x86\x84\x41\x0fwww.example.com";
        assert_eq!(uses(c31), Some(with(false, true, false)));
        let c41 = [
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(uses(&c41), Some(with(true, true, false)));
        assert_eq!(uses(&[0x20, 0x88]), Some(with(false, false, true)));
        assert_eq!(uses(&[0xbe]), Some(with(false, true, false)), "index 62");
        assert_eq!(uses(&literal_block(&[(b"a".to_vec(), b"b".to_vec())])), Some(none));
        assert_eq!(uses(&[0x00, 0x05, b'a']), None, "a string cut short");
        assert_eq!(uses(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), None, "an integer without end");
        assert_eq!(
            uses(&[0x3f, 0xff, 0xff, 0xff, 0x7f]),
            Some(with(false, false, true)),
            "four octets after the prefix"
        );
        assert_eq!(uses(&[0x3f, 0xff, 0xff, 0xff, 0xff, 0x01]), None, "five");
        let mut decoder = fluke_hpack::Decoder::new();
        assert_eq!(
            decode(&mut decoder, &[0x3f, 0xff, 0xff, 0xff, 0xff, 0x01]),
            None,
            "refused before the crate sees it"
        );
        assert_eq!(decode(&mut decoder, &[0x3f]), None);
    }

    #[test]
    fn padding() {
        let f = Frame::new(DATA, PADDED, 1, vec![2, b'a', b'b', 0, 0]);
        assert_eq!(f.unpadded(), Some(&b"ab"[..]));
        assert_eq!(Frame::new(DATA, PADDED, 1, vec![4, 0, 0, 0]).unpadded(), None);
        assert_eq!(Frame::new(DATA, PADDED, 1, vec![]).unpadded(), None);
    }
}
