//! WebSocket (RFC 6455) after an HTTP/1.1 `101 Switching Protocols` to `Upgrade: websocket`:
//! one message per frame, each direction's codec judging what one frame shows and `rules.rs` the
//! closing handshake. Framed in captures and transcripts; no suite speaks it yet.

pub mod codec;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, Direction, Exchange, Finding, Protocol, Steps};
pub use codec::{WebSocketCodec, WsFrame};

/// The `websocket` protocol.
pub struct WebSocket;

impl Protocol for WebSocket {
    fn name(&self) -> &'static str {
        "websocket"
    }
    fn line_ending(&self) -> &'static [u8] {
        b""
    }
    fn codec(&self, dir: Direction) -> Box<dyn Codec> {
        Box::new(WebSocketCodec::new(dir))
    }
    fn steps(&self) -> &'static Steps {
        &steps::STEPS
    }
    fn conversation_rules(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        rules::conversation(conv)
    }
}
