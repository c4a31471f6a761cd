//! What every codec fuzz target runs: the input as one side of a conversation, cut into pieces,
//! must frame as it does all at once (`wirecheck::proto::split`), and must not panic; a UDP
//! codec gets the input as one datagram.
//!
//! Input layout (so a crash file reads back by hand): byte 0 bit 0 is the side (0 client, 1
//! server); byte 1 is how many cuts follow (at most 15), each a big-endian u16 offset; the rest
//! is the stream.

use wirecheck::proto::{self, split, Direction, Transport};

/// The side, the cut offsets and the bytes of a fuzz input.
pub fn parse(data: &[u8]) -> (Direction, Vec<usize>, &[u8]) {
    let dir = match data.first().map(|b| b & 1) {
        Some(1) => Direction::ServerToClient,
        _ => Direction::ClientToServer,
    };
    let n = data.get(1).map_or(0, |b| usize::from(b % 16));
    let cuts_end = (2 + 2 * n).min(data.len());
    let cuts = data.get(2..cuts_end).unwrap_or(&[]).chunks_exact(2).map(|c| usize::from(u16::from_be_bytes([c[0], c[1]]))).collect();
    (dir, cuts, data.get(cuts_end..).unwrap_or(&[]))
}

/// A stream codec of `protocol` on TCP: the pieces frame as the whole.
pub fn stream(protocol: &str, data: &[u8]) {
    let p = proto::find(protocol).unwrap_or_else(|| panic!("no protocol {protocol}"));
    let (dir, cuts, bytes) = parse(data);
    let codec = || p.codec_on(dir, Transport::Tcp);
    if let Err(e) = split::same_in_pieces(&codec, bytes, &cuts) {
        panic!("{protocol} {dir:?}: {e}");
    }
}

/// A datagram codec of `protocol` on UDP: one datagram, framed at the end of input, no panic.
pub fn datagram(protocol: &str, data: &[u8]) {
    let p = proto::find(protocol).unwrap_or_else(|| panic!("no protocol {protocol}"));
    let (dir, _, bytes) = parse(data);
    let mut codec = p.codec_on(dir, Transport::Udp);
    let _ = codec.decode(bytes, true);
}
