//! Protocol plug-ins: a sans-IO codec that frames messages, and how to render them.
//!
//! A codec never touches a socket or a clock. The live runner, the transcript renderer and (later)
//! the capture decoder all feed it bytes, so one framing serves every mode.

pub mod datagram;
pub mod line;

use crate::suite::Transport;

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Direction {
    /// From the client to the server.
    #[serde(rename = "c2s")]
    ClientToServer,
    /// From the server to the client.
    #[serde(rename = "s2c")]
    ServerToClient,
}

impl Direction {
    /// Arrow for transcripts.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::ClientToServer => "C→S",
            Direction::ServerToClient => "S→C",
        }
    }
}

/// One framed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The text matchers see (a line without its ending, a datagram's payload as text).
    pub text: String,
    /// One-line rendering for transcripts.
    pub summary: String,
}

/// What a codec makes of the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole message yet: give more bytes.
    Incomplete,
    /// A message and how many bytes of the input it used.
    Message(Message, usize),
}

/// Bytes that cannot be framed, with the offset of the offending byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {offset}: {reason}")]
pub struct CodecError {
    /// Offset into the bytes given.
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

/// A sans-IO decoder for one direction of one connection.
pub trait Codec: Send + Sync {
    /// Frames the next message from `buf`; `eof` says no more bytes will come.
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError>;
}

/// A protocol: its framing, its defaults and its transcript style.
pub trait Protocol: Send + Sync {
    /// Name used in suites (`protocol: line`).
    fn name(&self) -> &'static str;
    /// Default transport of `connect` and `listen`.
    fn transport(&self) -> Transport;
    /// Appended to each line of `send: [lines]`.
    fn line_ending(&self) -> &'static [u8];
    /// A fresh decoder for one direction of one connection.
    fn codec(&self, dir: Direction) -> Box<dyn Codec>;
}

static PROTOCOLS: &[&dyn Protocol] = &[&line::Line, &line::LineCrlf, &datagram::Datagram];

/// Every protocol, for `protocol:` lookups and suggestions.
pub fn all() -> &'static [&'static dyn Protocol] {
    PROTOCOLS
}

/// The protocol called `name`.
pub fn find(name: &str) -> Option<&'static dyn Protocol> {
    PROTOCOLS.iter().copied().find(|p| p.name() == name)
}

/// Renders bytes as readable text for transcripts and failures: printable UTF-8 as is,
/// everything else escaped, long data cut in the middle.
pub fn escape_bytes(b: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(b);
    let mut out = String::new();
    let total = s.chars().count();
    let (head, tail) = if total > max { (max * 3 / 4, max / 4) } else { (total, 0) };
    for (i, c) in s.chars().enumerate() {
        if i == head && tail > 0 {
            out.push_str(&format!("…[{} more chars]…", total - head - tail));
        }
        if i >= head && i < total - tail {
            continue;
        }
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            '\u{fffd}' => out.push_str("\\x??"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_cuts_long_data() {
        assert_eq!(escape_bytes(b"a\r\n\x01", 80), "a\\r\\n\\x01");
        let long = vec![b'a'; 1000];
        let e = escape_bytes(&long, 40);
        assert!(e.contains("[960 more chars]"), "{e}");
    }

    #[test]
    fn registry_finds_protocols() {
        assert_eq!(find("line").unwrap().transport(), Transport::Tcp);
        assert_eq!(find("datagram").unwrap().transport(), Transport::Udp);
        assert!(find("nope").is_none());
    }
}
