//! One connection's bytes: reading whole commands (lines plus the literals
//! they announce, RFC 9051 §4.3 and RFC 7888 LITERAL+) within the line,
//! literal and idle limits, and buffered writing of responses.

use std::time::Duration;

use std::io::Cursor;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Chain, ReadHalf, WriteHalf};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::fault::{Fault, Faults};
use super::parse::is_tag;
use crate::guard::Stream;
use crate::tls;

/// Longest line (CRLF included) of a command; literals do not count.
pub(super) const MAX_LINE: usize = 8 * 1024;
/// Largest literal.
pub(super) const MAX_LITERAL: usize = 10 * 1024 * 1024;
/// Largest whole command, lines and literals together.
const MAX_COMMAND: usize = MAX_LITERAL + 64 * 1024;
/// Buffered output beyond this is written out before more is added (FETCH of many messages).
const FLUSH_AT: usize = 64 * 1024;
/// How long to wait for the client to close after our last response (see `tcp_upper::linger`).
const LINGER: Duration = Duration::from_secs(1);

/// What came in.
#[derive(Debug)]
pub(super) enum Input {
    /// A whole command, CRLF removed, literals in place.
    Command(Vec<u8>),
    /// Something that gets a BAD without being parsed; `tag` is `*` when none could be read.
    Refused {
        /// The tag to answer with.
        tag: String,
        /// The text of the BAD.
        why: &'static str,
        /// Whether the connection must be closed after answering (the client is still sending).
        fatal: bool,
    },
}

/// Why no more commands will come.
#[derive(Debug)]
pub(super) enum Gone {
    /// The client was silent for too long.
    Idle,
    /// EOF, a reset, or a write that failed.
    Closed,
}

/// A connection: buffered reader, writer, and pending output.
pub(super) struct Conn {
    /// Bytes to read before the socket's (what the fault `starttls-runs-pipelined` keeps
    /// across a handshake; otherwise empty), then the socket.
    reader: BufReader<Chain<Cursor<Vec<u8>>, ReadHalf<Stream>>>,
    writer: WriteHalf<Stream>,
    out: Vec<u8>,
    idle: Duration,
    /// Deliberate bugs (see `fault.rs`).
    faults: Faults,
}

impl Conn {
    /// Wraps `stream`; every wait for the client is bounded by `idle`.
    pub(super) fn new(stream: Stream, idle: Duration, faults: Faults) -> Conn {
        Conn::with_pending(stream, idle, faults, Vec::new())
    }

    fn with_pending(stream: Stream, idle: Duration, faults: Faults, pending: Vec<u8>) -> Conn {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = tokio::io::split(stream);
        Conn {
            reader: BufReader::new(Cursor::new(pending).chain(reader)),
            writer,
            out: Vec::new(),
            idle,
            faults,
        }
    }

    /// The TLS handshake after STARTTLS's OK (flushed by the caller). What was read and not
    /// used, which the client pipelined in clear text behind STARTTLS, is dropped (`keep`:
    /// the fault that runs it after the handshake instead).
    pub(super) async fn start_tls(self, acceptor: &TlsAcceptor, keep: bool) -> Result<Conn, Gone> {
        let Conn {
            reader,
            writer,
            idle,
            faults,
            ..
        } = self;
        let mut pending = Vec::new();
        if keep {
            pending.extend_from_slice(reader.buffer());
            let cursor = reader.get_ref().get_ref().0;
            let at = usize::try_from(cursor.position()).unwrap_or(usize::MAX).min(cursor.get_ref().len());
            pending.extend_from_slice(&cursor.get_ref()[at..]);
        }
        let (_, read_half) = reader.into_inner().into_inner();
        let mut stream = read_half.unsplit(writer);
        if stream.start_tls(acceptor, tls::handshake_limit(idle)).await.is_err() {
            return Err(Gone::Closed);
        }
        Ok(Conn::with_pending(stream, idle, faults, pending))
    }

    /// Queues raw bytes.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Queues `text` and CRLF.
    pub(super) fn line(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// Writes what is queued if there is a lot of it.
    pub(super) async fn flush_if_full(&mut self) -> Result<(), Gone> {
        if self.out.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes everything queued.
    pub(super) async fn flush(&mut self) -> Result<(), Gone> {
        let out = std::mem::take(&mut self.out);
        match timeout(self.idle, self.writer.write_all(&out)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone::Closed),
        }
    }

    /// Flushes, half-closes, and waits (briefly) for the client to close, so no RST destroys the last response.
    pub(super) async fn close(mut self) {
        if self.flush().await.is_err() {
            return;
        }
        let _ = self.writer.shutdown().await;
        let mut rest = (&mut self.reader).take(MAX_COMMAND as u64);
        let _ = timeout(LINGER, tokio::io::copy(&mut rest, &mut tokio::io::sink())).await;
    }

    /// Reads the next command, sending `+` continuations for synchronizing literals.
    pub(super) async fn read_command(&mut self) -> Result<Input, Gone> {
        let mut command = Vec::new();
        loop {
            let (line, too_long) = self.read_line().await?;
            // The tag is at the start of the command's first line.
            let first = if command.is_empty() { &line } else { &command };
            if too_long {
                return Ok(refused(first, "Line too long", false));
            }
            let Some(line) = line.strip_suffix(b"\r\n") else {
                return Ok(refused(first, "Lines must end with CRLF", false));
            };
            command.extend_from_slice(line);
            let Some((size, synchronizing)) = literal_size(line) else {
                return Ok(Input::Command(command));
            };
            if size > MAX_LITERAL || command.len() + size > MAX_COMMAND {
                // A client waiting for "+" sends nothing more of this command;
                // one using LITERAL+ is already sending the octets, and
                // skipping that many is not worth the wait.
                return Ok(refused(&command, "[TOOBIG] Literal too large", !synchronizing));
            }
            command.extend_from_slice(b"\r\n");
            // Fault no-continuation: the client waits for a '+' that never comes.
            if synchronizing && !self.faults.has(Fault::NoContinuation) {
                self.line("+ Ready for literal data");
                self.flush().await?;
            }
            let start = command.len();
            command.resize(start + size, 0);
            match timeout(self.idle, self.reader.read_exact(&mut command[start..])).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Err(Gone::Closed),
                Err(_) => return Err(Gone::Idle),
            }
        }
    }

    /// A line with its LF, and whether it was longer than `MAX_LINE`: then only its start is kept.
    async fn read_line(&mut self) -> Result<(Vec<u8>, bool), Gone> {
        let mut line = Vec::new();
        let mut too_long = false;
        loop {
            let chunk = match timeout(self.idle, self.reader.fill_buf()).await {
                Ok(Ok([])) | Ok(Err(_)) => return Err(Gone::Closed),
                Ok(Ok(chunk)) => chunk,
                Err(_) => return Err(Gone::Idle),
            };
            let (used, done) = match chunk.iter().position(|&b| b == b'\n') {
                // Fault one-recv: what one read returns is the line, whether it ends in LF or not.
                _ if self.faults.has(Fault::OneRecv) => (chunk.len(), true),
                Some(lf) => (lf + 1, true),
                None => (chunk.len(), false),
            };
            if !too_long {
                line.extend_from_slice(&chunk[..used]);
                if line.len() > MAX_LINE {
                    too_long = true;
                    // Keep the start: it holds the tag to answer with.
                    line.truncate(MAX_LINE);
                }
            }
            // Fault one-line-per-recv: the rest of the read (pipelined commands) is dropped.
            let dropped = if done && self.faults.has(Fault::OneLinePerRecv) {
                chunk.len()
            } else {
                used
            };
            self.reader.consume(dropped);
            if done {
                return Ok((line, too_long));
            }
        }
    }
}

/// `{n}` or `{n+}` at the end of a line: the size and whether it is synchronizing.
fn literal_size(line: &[u8]) -> Option<(usize, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let (digits, synchronizing) = match digits.strip_suffix(b"+") {
        Some(digits) => (digits, false),
        None => (digits, true),
    };
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((size, synchronizing))
}

/// A refusal answered with the tag at the start of `command`, if it has one.
fn refused(command: &[u8], why: &'static str, fatal: bool) -> Input {
    Input::Refused {
        tag: tag_of(command).unwrap_or("*").to_owned(),
        why,
        fatal,
    }
}

/// The tag of a command line, if it starts with one followed by a space.
pub(super) fn tag_of(command: &[u8]) -> Option<&str> {
    let space = command.iter().position(|&b| b == b' ')?;
    let tag = &command[..space];
    if is_tag(tag) {
        std::str::from_utf8(tag).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_sizes() {
        assert_eq!(literal_size(b"a LOGIN {3}"), Some((3, true)));
        assert_eq!(literal_size(b"a LOGIN {3+}"), Some((3, false)));
        assert_eq!(literal_size(b"a LOGIN {}"), None);
        assert_eq!(literal_size(b"a LOGIN {x}"), None);
        assert_eq!(literal_size(b"a LOGIN {9999999999999}"), None);
        assert_eq!(tag_of(b"a1 NOOP"), Some("a1"));
        assert_eq!(tag_of(b"NOOP"), None);
        assert_eq!(tag_of(b"+ NOOP"), None);
    }
}
