//! Text lines over TCP: `line` (sends LF) and `line-crlf` (sends CRLF); both accept either ending.

pub mod codec;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, Direction, Protocol, Steps};
pub use codec::{LineCodec, MAX_LINE};

/// Lines ending in LF (CR before it is tolerated and stripped).
pub struct Line;

/// Lines ending in CRLF (a bare LF is still accepted when reading).
pub struct LineCrlf;

impl Protocol for Line {
    fn name(&self) -> &'static str {
        "line"
    }
    fn line_ending(&self) -> &'static [u8] {
        b"\n"
    }
    fn codec(&self, _dir: Direction) -> Box<dyn Codec> {
        Box::new(LineCodec)
    }
    fn steps(&self) -> &'static Steps {
        &steps::STEPS
    }
}

impl Protocol for LineCrlf {
    fn name(&self) -> &'static str {
        "line-crlf"
    }
    fn codec(&self, _dir: Direction) -> Box<dyn Codec> {
        Box::new(LineCodec)
    }
    fn steps(&self) -> &'static Steps {
        &steps::STEPS
    }
}

/// Whether the first bytes of a stream look like a text protocol (the registry's fallback when no
/// protocol claims a conversation).
pub fn looks_like_text(b: &[u8]) -> bool {
    let head = &b[..b.len().min(256)];
    !head.is_empty() && std::str::from_utf8(head).is_ok_and(|s| s.chars().all(|c| !c.is_control() || matches!(c, '\r' | '\n' | '\t')))
}
