//! What every codec shares: messages, findings, the `Codec` trait and its errors.
//!
//! A codec never touches a socket or a clock. The live runner, the transcript renderer and the
//! capture decoder all feed it bytes, so one framing serves every mode.

/// Transport of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A TCP byte stream.
    Tcp,
    /// UDP datagrams.
    Udp,
    /// QUIC (RFC 9000) over UDP: a connection of streams, recorded as the QUIC frames that carry
    /// them (STREAM, RESET_STREAM, STOP_SENDING, CONNECTION_CLOSE), never as packets.
    Quic,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Quic => "quic",
        })
    }
}

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

/// What a message means to a swarm picture (a report's table of which peer sent which piece, and
/// whom the client unchoked when): only peer-to-peer protocols say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmEvent {
    /// A block of this piece.
    Block(u32),
    /// The sender unchoked the other side.
    Unchoke,
    /// The sender choked the other side.
    Choke,
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

/// What a codec may be told about its connection besides the bytes: a layer that carries another
/// protocol (TLS) frames what it decrypts with that one, and needs the secrets to decrypt.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The server's port, when known (TLS on 993 carries IMAP).
    pub server_port: Option<u16>,
    /// The protocol the connection spoke before a message handed it over to this one (SMTP's
    /// STARTTLS): what the carried bytes are again once decrypted.
    pub carried: Option<&'static str>,
    /// TLS secrets to decrypt with (a key log, or a capture's Decryption Secrets Blocks).
    pub keys: Option<std::sync::Arc<crate::proto::tls::KeyLog>>,
    /// What a carrying protocol carries from its start, when the user said (`--port N=PROTO` on
    /// a conversation that opens with a TLS ClientHello): its greeting is expected.
    pub inside: Option<&'static str>,
}

/// A sans-IO decoder for one direction of one connection.
pub trait Codec: Send + Sync {
    /// Frames the next message from `buf`; `eof` says no more bytes will come.
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError>;
    /// Bytes that went the other way on this connection (a response parser needs to know a
    /// request was HEAD); called in the order the bytes were sent.
    fn peer_sent(&mut self, _bytes: &[u8]) {}
    /// The connection's beginning was not seen (a capture that started mid-connection): what was
    /// said before, a greeting included, is unknown, and replies may answer commands never seen.
    fn joined_late(&mut self) {}
    /// What is known of the connection besides its bytes (see [`Context`]); given before any byte.
    fn context(&mut self, _cx: &Context) {}
}

/// One direction's unframed bytes and the codec that frames them. The live connection and the
/// transcript renderer both hold a stream this way, so they cannot frame it differently.
pub struct Framer {
    buf: Vec<u8>,
    codec: Box<dyn Codec>,
}

impl Framer {
    /// An empty buffer framed by `codec`.
    pub fn new(codec: Box<dyn Codec>) -> Framer {
        Framer { buf: Vec::new(), codec }
    }

    /// Bytes that arrived and are not part of a framed message yet.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// The buffer itself, for a socket to read into.
    pub fn buffer_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Adds bytes that arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Frames what is pending, and all that comes after, with `codec` (a connection handed over
    /// to another protocol).
    pub fn switch(&mut self, codec: Box<dyn Codec>) {
        self.codec = codec;
    }

    /// Tells the codec what went the other way (see [`Codec::peer_sent`]).
    pub fn peer_sent(&mut self, bytes: &[u8]) {
        self.codec.peer_sent(bytes);
    }

    /// The next whole message, its bytes removed; `Ok(None)` until one is complete. A message that
    /// used no bytes is not one: framing it again would never end.
    pub fn next(&mut self, eof: bool) -> Result<Option<Message>, CodecError> {
        match self.codec.decode(&self.buf, eof)? {
            Frame::Message(m, used) if used > 0 => {
                self.buf.drain(..used);
                Ok(Some(m))
            }
            _ => Ok(None),
        }
    }

    /// The first `n` pending bytes, taken unframed.
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        self.buf.drain(..n.min(self.buf.len())).collect()
    }

    /// Every pending byte, taken unframed.
    pub fn take_all(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
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

/// A data connection a control conversation announced (FTP: a 227 or 229 reply, a PORT or EPRT
/// command), with the command that used it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataChannel {
    /// The index of the announcing message in the conversation.
    pub at: usize,
    /// Who sent the announcement, and so listens for the connection: `ServerToClient` the
    /// server (FTP passive mode), `ClientToServer` the client (FTP active mode).
    pub announced_by: Direction,
    /// The address announced, when the message names one.
    pub host: Option<std::net::IpAddr>,
    /// The port announced.
    pub port: u16,
    /// The index of the command that used it, once one came.
    pub command: Option<usize>,
}

/// What a capture saw of one data connection, on the control conversation's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The channel it came through: an index into `Protocol::data_channels`' answer.
    pub channel: usize,
    /// Its conversation's number in the capture, for findings to name.
    pub conversation: usize,
    /// When its first packet went.
    pub opened_us: u64,
    /// When its first byte of data went, if one did.
    pub first_byte_us: Option<u64>,
    /// When it ended: the first FIN, or the reset.
    pub closed_us: Option<u64>,
    /// Whether the listener refused it.
    pub refused: bool,
    /// Bytes it carried, both ways together.
    pub bytes: u64,
}

/// Longest line framed; anything longer is a flood, not a line.
pub const MAX_LINE: usize = 64 * 1024;

/// One line: its bytes without the ending, the bytes used, and whether it ended in a bare LF.
pub type Line<'a> = (&'a [u8], usize, bool);

/// Splits off the first line of `buf` (LF-terminated; a CR before the LF is dropped).
pub fn line(buf: &[u8]) -> Result<Option<Line<'_>>, CodecError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let raw = &buf[..i];
            Ok(Some(match raw.strip_suffix(b"\r") {
                Some(l) => (l, i + 1, false),
                None => (raw, i + 1, true),
            }))
        }
        None if buf.len() > MAX_LINE => Err(CodecError {
            offset: MAX_LINE,
            reason: format!("no line ending within {MAX_LINE} bytes"),
        }),
        None => Ok(None),
    }
}

/// The next command line of a client (SMTP, POP3): like [`line`], but a close in the middle of
/// one is an error rather than a wait.
pub fn command_line(buf: &[u8], eof: bool) -> Result<Option<Line<'_>>, CodecError> {
    match line(buf)? {
        Some(l) => Ok(Some(l)),
        None if eof && !buf.is_empty() => Err(CodecError {
            offset: buf.len(),
            reason: "the connection closed in the middle of a command".into(),
        }),
        None => Ok(None),
    }
}

/// Emits a multi-line body the way SMTP DATA and POP3 send it: a line starting with `.` gets one
/// more, and a line holding only `.` ends it (RFC 5321 §4.5.2, RFC 1939 §3). `body` ends in CRLF.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut wire = Vec::with_capacity(body.len() + 8);
    for l in body.split_inclusive(|&b| b == b'\n') {
        if l.starts_with(b".") {
            wire.push(b'.');
        }
        wire.extend_from_slice(l);
    }
    wire.extend_from_slice(b".\r\n");
    wire
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

    /// Frames one line per message, for the framer's tests.
    struct Lines;
    impl Codec for Lines {
        fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
            match line(buf)? {
                Some((l, used, _)) => Ok(Frame::Message(
                    Message::plain(String::from_utf8_lossy(l).into(), String::new()),
                    used,
                )),
                None if eof && !buf.is_empty() => Err(CodecError {
                    offset: buf.len(),
                    reason: "cut".into(),
                }),
                None => Ok(Frame::Incomplete),
            }
        }
    }

    #[test]
    fn a_framer_keeps_what_did_not_frame_yet() {
        let mut f = Framer::new(Box::new(Lines));
        f.push(b"one\r\ntw");
        assert_eq!(f.next(false).unwrap().unwrap().text, "one");
        assert!(f.next(false).unwrap().is_none());
        assert_eq!(f.pending(), b"tw");
        f.push(b"o\nthree");
        assert_eq!(f.next(false).unwrap().unwrap().text, "two");
        assert_eq!(f.next(true).unwrap_err().offset, 5);
        assert_eq!(f.take(2), b"th");
        assert_eq!(f.take_all(), b"ree");
        assert!(f.pending().is_empty());
    }
}
