//! Protocol plug-ins: a sans-IO codec that frames messages, and how to render them.
//!
//! A codec never touches a socket or a clock. The live runner, the transcript renderer and (later)
//! the capture decoder all feed it bytes, so one framing serves every mode.

pub mod datagram;
pub mod dns;
pub mod http;
pub mod imap;
pub mod line;
pub mod pop3;
pub mod smtp;
pub mod text;

use crate::suite::{LoadCx, Node, Template, Transport, Vars};

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
    /// The other way.
    pub fn opposite(self) -> Direction {
        match self {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        }
    }

    /// Arrow for transcripts.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::ClientToServer => "C→S",
            Direction::ServerToClient => "S→C",
        }
    }
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A MUST was broken: the expectation reading this message fails.
    Must,
    /// A SHOULD was not followed: a warning that costs no points.
    Should,
}

/// A deviation from the RFC noticed while framing a message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// MUST or SHOULD.
    pub level: Level,
    /// The rule, e.g. "RFC 9112 §2.2".
    pub rule: &'static str,
    /// What was seen.
    pub text: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.level {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
        };
        write!(f, "{} ({level}): {}", self.rule, self.text)
    }
}

/// One framed message.
#[derive(Debug, Clone)]
pub struct Message {
    /// The text generic matchers see (a line without its ending, a datagram, an HTTP start line).
    pub text: String,
    /// Rendering for transcripts; may span lines (continuation lines are indented).
    pub summary: String,
    /// RFC deviations noticed while framing.
    pub findings: Vec<Finding>,
    /// The protocol's parsed form, for its structured matchers.
    pub detail: Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>,
}

impl Message {
    /// A message with no findings and no parsed form.
    pub fn plain(text: String, summary: String) -> Message {
        Message {
            text,
            summary,
            findings: Vec::new(),
            detail: None,
        }
    }
}

/// What a codec makes of the bytes it was given.
#[derive(Debug)]
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
    /// Bytes that went the other way on this connection (a response parser needs to know a
    /// request was HEAD); called in the order the bytes were sent.
    fn peer_sent(&mut self, _bytes: &[u8]) {}
}

/// One step of a whole conversation, for rules that no single message shows.
#[derive(Debug, Clone, Copy)]
pub enum Exchange<'a> {
    /// A framed message, and who sent it.
    Message(Direction, &'a Message),
    /// That side closed (FIN).
    Closed(Direction),
    /// Bytes that side sent which did not frame as a message (garbage, or cut short).
    Unframed(Direction),
}

/// A protocol: its framing, its defaults and its transcript style.
pub trait Protocol: Send + Sync {
    /// Rules over a whole conversation (every request answered once, reply ids matching their
    /// queries), for `wirecheck check`; per-message rules are the codec's findings.
    fn conversation_rules(&self, _conv: &[Exchange<'_>]) -> Vec<Finding> {
        Vec::new()
    }
    /// Whether this message hands the connection over to another protocol (HTTP 101 Switching
    /// Protocols): what follows is not this protocol's to judge.
    fn switches_protocol(&self, _m: &Message) -> bool {
        false
    }
    /// Name used in suites (`protocol: line`).
    fn name(&self) -> &'static str;
    /// Default transport of `connect` and `listen`.
    fn transport(&self) -> Transport;
    /// Appended to each line of `send: [lines]`.
    fn line_ending(&self) -> &'static [u8];
    /// A fresh decoder for one direction of one connection.
    fn codec(&self, dir: Direction) -> Box<dyn Codec>;
    /// A decoder for one direction of a connection over `transport` (DNS frames TCP with a length
    /// prefix and UDP by datagram); by default the same as `codec`.
    fn codec_on(&self, dir: Direction, _transport: Transport) -> Box<dyn Codec> {
        self.codec(dir)
    }
    /// Keys of a structured `send:` mapping (an HTTP request: method, target, headers ...).
    fn send_keys(&self) -> &'static [&'static str] {
        &[]
    }
    /// Keys of a structured `expect:` mapping (status, headers, body ...).
    fn expect_keys(&self) -> &'static [&'static str] {
        &[]
    }
    /// Parses a structured `send:` mapping (called only when it has one of `send_keys`).
    fn parse_send(&self, _node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredSend>> {
        cx.err(_node, format!("protocol '{}' has no structured send", self.name()));
        None
    }
    /// Parses a structured `expect:` mapping (called only when it has one of `expect_keys`).
    fn parse_expect(&self, _node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
        cx.err(_node, format!("protocol '{}' has no structured expect", self.name()));
        None
    }
}

/// What structured steps see at run time.
pub struct RenderCx<'a> {
    /// Variables of the case.
    pub vars: &'a Vars,
    /// The suite file's folder: file references are relative to it.
    pub base_dir: &'a std::path::Path,
    /// The transport of the connection the step uses (DNS adds a length prefix on TCP).
    pub transport: Transport,
}

/// Why a structured expectation does not hold.
#[derive(Debug, Clone)]
pub struct Mismatch {
    /// What is wrong, in a sentence.
    pub message: String,
    /// What was expected.
    pub expected: String,
    /// What arrived.
    pub got: String,
}

/// A protocol message built from a suite mapping.
pub trait StructuredSend: std::fmt::Debug + Send + Sync {
    /// The bytes to send.
    fn render(&self, cx: &RenderCx) -> Result<Vec<u8>, String>;
    /// Templates it uses (the linter checks their variables).
    fn templates(&self) -> Vec<&Template>;
}

/// A check of a framed message built from a suite mapping.
pub trait StructuredExpect: std::fmt::Debug + Send + Sync {
    /// Checks `msg`; returns the variables it captures.
    fn check(&self, msg: &Message, cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch>;
    /// Templates it uses.
    fn templates(&self) -> Vec<&Template>;
    /// Variables it sets.
    fn captures(&self) -> Vec<String>;
    /// A short description of what it expects (for "expected:" when nothing arrives).
    fn describe(&self) -> String;
}

static PROTOCOLS: &[&dyn Protocol] = &[
    &line::Line,
    &line::LineCrlf,
    &datagram::Datagram,
    &http::Http,
    &smtp::Smtp,
    &pop3::Pop3,
    &imap::Imap,
    &dns::Dns,
];

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
