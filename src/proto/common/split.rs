//! A codec frames a byte stream the same way however the bytes arrive: all at once, or cut
//! anywhere into segments (what TCP does to a socket's reads and to a capture's packets). The
//! live runner and the capture decoder see the same conversation in different segments, so a
//! codec whose framing followed the segments would make them disagree. The oracle of the codec
//! property test (`tests/codec_properties.rs`) and of the fuzz targets (`fuzz/`).

use super::codec::{Codec, Framer, Message};

/// One item of a framing, as two framings of the same bytes are compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// A message: its text, its rendering and its findings.
    Message(String, String, Vec<String>),
    /// The offset of the byte the codec rejected (its words may quote what it had seen so far).
    Error(usize),
    /// A run of opaque bytes, shown as they arrive (see [`OPAQUE`]).
    Opaque,
    /// Bytes left unframed at the end.
    Left(usize),
}

/// Messages that are opaque bytes, shown as they arrive (a codec cannot frame what it cannot
/// read): consecutive ones are one run, however many segments brought it.
pub const OPAQUE: &[&str] = &["encrypted or not BitTorrent"];

fn item(m: Message) -> Framing {
    if m.findings.is_empty() && OPAQUE.iter().any(|p| m.text.starts_with(p)) {
        return Framing::Opaque;
    }
    Framing::Message(m.text, m.summary, m.findings.iter().map(|f| format!("{f:?}")).collect())
}

/// Frames `bytes` with `codec`, fed in the pieces the offsets `cuts` make (any order; offsets
/// past the end wrap), then at the end of the stream.
pub fn frame_in_pieces(codec: Box<dyn Codec>, bytes: &[u8], cuts: &[usize]) -> Vec<Framing> {
    let mut framer = Framer::new(codec);
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.push(bytes.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Vec<Framing> = Vec::new();
    let push = |out: &mut Vec<Framing>, f: Framing| {
        if !(f == Framing::Opaque && out.last() == Some(&Framing::Opaque)) {
            out.push(f);
        }
    };
    let mut at = 0;
    for (i, cut) in cuts.iter().enumerate() {
        framer.push(&bytes[at..*cut]);
        at = *cut;
        let eof = i + 1 == cuts.len();
        // Framed as more may come after every piece, then once more at the end of the stream.
        for end in if eof { &[false, true][..] } else { &[false][..] } {
            loop {
                match framer.next(*end) {
                    Ok(Some(m)) => push(&mut out, item(m)),
                    Ok(None) => break,
                    Err(e) => {
                        push(&mut out, Framing::Error(e.offset));
                        return out;
                    }
                }
            }
        }
    }
    out.push(Framing::Left(framer.pending().len()));
    out
}

/// Whether `bytes` frame the same in the pieces `cuts` makes as all at once; Err says where not.
/// `codec` makes a fresh codec each time.
pub fn same_in_pieces(codec: &dyn Fn() -> Box<dyn Codec>, bytes: &[u8], cuts: &[usize]) -> Result<(), String> {
    let whole = frame_in_pieces(codec(), bytes, &[]);
    let pieces = frame_in_pieces(codec(), bytes, cuts);
    if whole == pieces {
        return Ok(());
    }
    let first = whole
        .iter()
        .zip(&pieces)
        .position(|(a, b)| a != b)
        .unwrap_or(whole.len().min(pieces.len()));
    Err(format!(
        "framed differently when cut at {cuts:?}: item {first}: whole {:?}, in pieces {:?}",
        whole.get(first),
        pieces.get(first)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{self, Direction, Transport};

    #[test]
    fn a_codec_that_frames_by_segment_is_caught() {
        // `datagram` frames whatever arrives as one message: the oracle must see that.
        let p = proto::find_or_raw("datagram");
        let codec = || p.codec_on(Direction::ClientToServer, Transport::Tcp);
        assert!(same_in_pieces(&codec, b"abcdef", &[3]).is_err());
        let smtp = proto::find_or_raw("smtp");
        let codec = || smtp.codec_on(Direction::ClientToServer, Transport::Tcp);
        assert_eq!(same_in_pieces(&codec, b"EHLO a\r\nMAIL FROM:<a@b>\r\n", &[1, 5, 9, 10]), Ok(()));
    }
}
