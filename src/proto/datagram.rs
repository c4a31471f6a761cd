//! UDP datagrams: each datagram is one message, its whole payload the text.

use super::{escape_bytes, Codec, CodecError, Direction, Frame, Message, Protocol};
use crate::suite::Transport;

/// The `datagram` protocol.
pub struct Datagram;

impl Protocol for Datagram {
    fn name(&self) -> &'static str {
        "datagram"
    }
    fn transport(&self) -> Transport {
        Transport::Udp
    }
    fn line_ending(&self) -> &'static [u8] {
        b""
    }
    fn codec(&self, _dir: Direction) -> Box<dyn Codec> {
        Box::new(DatagramCodec)
    }
}

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
    fn one_datagram_is_one_message_even_empty() {
        let Frame::Message(m, used) = DatagramCodec.decode(b"PING 1", false).unwrap() else {
            panic!()
        };
        assert_eq!((m.text.as_str(), used), ("PING 1", 6));
        let Frame::Message(m, used) = DatagramCodec.decode(b"", false).unwrap() else {
            panic!()
        };
        assert_eq!((m.text.as_str(), used), ("", 0));
    }
}
