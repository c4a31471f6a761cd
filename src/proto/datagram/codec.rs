//! Framing for datagrams: each datagram is one message, its whole payload the text.

use crate::proto::{escape_bytes, Codec, CodecError, Frame, Message};

/// Takes the whole buffer as one message: callers hand it exactly one datagram.
pub struct DatagramCodec;

impl Codec for DatagramCodec {
    fn decode(&mut self, buf: &[u8], _eof: bool) -> Result<Frame, CodecError> {
        let text = String::from_utf8_lossy(buf).into_owned();
        let summary = format!("datagram {} bytes \"{}\"", buf.len(), escape_bytes(buf, 200));
        Ok(Frame::Message(Message::plain(text, summary), buf.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_datagram_as_one_message_even_empty() {
        let Frame::Message(m, used) = DatagramCodec.decode(b"PING 1", false).unwrap() else {
            panic!()
        };
        assert_eq!((m.text.as_str(), used), ("PING 1", 6));
        let Frame::Message(m, used) = DatagramCodec.decode(b"", false).unwrap() else {
            panic!()
        };
        assert_eq!((m.text.as_str(), used), ("", 0));
    }

    #[test]
    fn parses_binary_payloads_with_an_escaped_summary() {
        let Frame::Message(m, _) = DatagramCodec.decode(b"\x00\xff", false).unwrap() else {
            panic!()
        };
        assert!(m.summary.starts_with("datagram 2 bytes"), "{}", m.summary);
        assert!(m.summary.contains("\\x00"), "{}", m.summary);
    }

    #[test]
    fn round_trip_a_payload_is_its_own_text() {
        let Frame::Message(m, used) = DatagramCodec.decode(b"hello", true).unwrap() else {
            panic!()
        };
        assert_eq!((m.text.as_bytes(), used), (&b"hello"[..], 5));
    }
}
