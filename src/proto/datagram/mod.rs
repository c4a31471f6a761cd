//! UDP datagrams: each datagram is one message, its whole payload the text.

pub mod codec;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, Direction, Protocol, Steps, Transport};
pub use codec::DatagramCodec;

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
    fn steps(&self) -> &'static Steps {
        &steps::STEPS
    }
}
