//! Framing for text lines: one line per message, LF or CRLF, a final unterminated line at EOF.

use crate::proto::{escape_bytes, Codec, CodecError, Frame, Message};

/// Longest line the codec frames; a peer that sends more without a newline is flooding.
pub const MAX_LINE: usize = 1 << 20;

/// Frames one line per message; at EOF a final unterminated line is a message too.
pub struct LineCodec;

impl Codec for LineCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let (line, used) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1),
            None if eof && !buf.is_empty() => (buf, buf.len()),
            None if buf.len() > MAX_LINE => {
                return Err(CodecError {
                    offset: MAX_LINE,
                    reason: format!("no line ending within {MAX_LINE} bytes"),
                })
            }
            None => return Ok(Frame::Incomplete),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line).into_owned();
        let ending = if used == buf.len() && !buf.ends_with(b"\n") {
            " (no line ending)"
        } else {
            ""
        };
        let summary = format!("\"{}\"{ending}", escape_bytes(line, 200));
        Ok(Frame::Message(Message::plain(text, summary), used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(buf: &[u8], eof: bool) -> Frame {
        LineCodec.decode(buf, eof).unwrap()
    }

    #[test]
    fn parses_lf_and_crlf_lines() {
        let Frame::Message(m, used) = dec(b"HELLO\r\nnext", false) else {
            panic!()
        };
        assert_eq!((m.text.as_str(), used), ("HELLO", 7));
        let Frame::Message(m, used) = dec(b"a\nb\n", false) else { panic!() };
        assert_eq!((m.text.as_str(), used), ("a", 2));
    }

    #[test]
    fn parses_non_utf8_lossily() {
        let Frame::Message(m, _) = dec(b"h\xffi\n", false) else { panic!() };
        assert_eq!(m.text, "h\u{fffd}i");
    }

    #[test]
    fn incomplete_until_the_ending_unless_eof() {
        assert!(matches!(dec(b"HEL", false), Frame::Incomplete));
        let Frame::Message(m, used) = dec(b"HEL", true) else { panic!() };
        assert_eq!((m.text.as_str(), used), ("HEL", 3));
        assert!(m.summary.contains("no line ending"));
        assert!(matches!(dec(b"", true), Frame::Incomplete));
    }

    #[test]
    fn rejects_overlong_lines() {
        let big = vec![b'a'; MAX_LINE + 1];
        assert_eq!(LineCodec.decode(&big, false).unwrap_err().offset, MAX_LINE);
    }

    #[test]
    fn round_trip_sent_lines_frame_back() {
        for ending in [&b"\n"[..], b"\r\n"] {
            let mut wire = b"hello world".to_vec();
            wire.extend_from_slice(ending);
            let Frame::Message(m, used) = dec(&wire, false) else { panic!() };
            assert_eq!((m.text.as_str(), used), ("hello world", wire.len()));
        }
    }
}
