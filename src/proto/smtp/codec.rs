//! SMTP framing (RFC 5321): replies (three-digit codes, multi-line `250-`), commands, the
//! DATA content after a 354, un-stuffed, and the chunks that follow BDAT (RFC 3030).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::proto::codec::{command_line, line, MAX_LINE};
use crate::proto::{escape_bytes, Codec, CodecError, Finding, Frame, Level, Message};

/// Largest DATA content framed.
const MAX_DATA: usize = 64 << 20;

/// Largest piece of a BDAT chunk framed as one message: a chunk may announce any size, and a
/// bigger one is framed in pieces rather than held whole.
pub const MAX_CHUNK_PIECE: usize = 1 << 20;

/// A parsed SMTP message.
#[derive(Debug, Clone)]
pub enum SmtpMessage {
    /// A server reply.
    Reply {
        /// The code of the reply.
        code: u16,
        /// The text of each line (after the code and separator).
        lines: Vec<String>,
        /// A 220 answering STARTTLS: the TLS handshake starts after it (RFC 3207 §4).
        starts_tls: bool,
    },
    /// A client command line.
    Command {
        /// The verb, upper-cased.
        verb: String,
        /// Everything after the verb and one space.
        args: String,
    },
    /// The message content after DATA, un-stuffed, without the final `.` line.
    Data {
        /// The content with CRLF line endings.
        content: Vec<u8>,
    },
    /// Octets of the chunk a BDAT command announced (RFC 3030 §2), or a piece of a chunk over
    /// [`MAX_CHUNK_PIECE`]; taken as they are, with no stuffing and no end line.
    Chunk {
        /// The octets.
        content: Vec<u8>,
        /// Where they start in their chunk.
        offset: u64,
        /// The size the BDAT command announced.
        size: u64,
    },
}

impl SmtpMessage {
    /// The parsed form of a message this codec framed.
    pub fn of(m: &Message) -> Option<&SmtpMessage> {
        m.detail.as_ref().and_then(|d| d.downcast_ref::<SmtpMessage>())
    }
}

/// The finding for a line that ends in a bare LF.
fn bare_lf() -> Finding {
    Finding {
        level: Level::Should,
        rule: "RFC 5321 §2.3.8",
        text: "a line ends in a bare LF; SMTP lines end in CRLF".into(),
    }
}

/// Frames replies: lines `ddd-text` up to the line `ddd text` (or `ddd`). From the client's
/// lines (`peer_sent`) it knows a 220 that answers STARTTLS: the reply to the command waiting
/// first, when that is STARTTLS (commands pipelined behind it get no answer in clear, RFC 3207 §4).
#[derive(Default)]
pub struct ReplyCodec {
    /// The client's line under way.
    partial: Vec<u8>,
    /// The client's commands waiting for a reply, oldest first: whether each is STARTTLS.
    waiting: std::collections::VecDeque<bool>,
    /// After a 354: the client's lines are message content up to the "." line.
    in_data: bool,
}

/// Commands remembered while their replies are outstanding.
const MAX_WAITING: usize = 1024;

impl Codec for ReplyCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let mut pos = 0;
        let mut lines = Vec::new();
        let mut findings = Vec::new();
        let mut code = None;
        loop {
            let Some((l, used, lf)) = line(&buf[pos..])? else {
                if eof && (pos < buf.len() || !lines.is_empty()) {
                    return Err(CodecError {
                        offset: buf.len(),
                        reason: "the connection closed in the middle of a reply".into(),
                    });
                }
                return Ok(Frame::Incomplete);
            };
            if lf && findings.is_empty() {
                findings.push(bare_lf());
            }
            let digits = l.len() >= 3 && l[..3].iter().all(u8::is_ascii_digit) && (b'2'..=b'5').contains(&l[0]);
            if !digits || l.get(3).is_some_and(|&b| b != b' ' && b != b'-') {
                return Err(CodecError {
                    offset: pos,
                    reason: format!(
                        "not an SMTP reply line (three digits, then space or '-'): \"{}\"",
                        escape_bytes(l, 120)
                    ),
                });
            }
            let c = (l[0] - b'0') as u16 * 100 + (l[1] - b'0') as u16 * 10 + (l[2] - b'0') as u16;
            if code.is_some_and(|first| first != c) {
                findings.push(Finding {
                    level: Level::Must,
                    rule: "RFC 5321 §4.2.1",
                    text: format!("a multi-line reply changes its code from {} to {c}", code.unwrap_or(0)),
                });
            }
            code.get_or_insert(c);
            lines.push(String::from_utf8_lossy(l.get(4..).unwrap_or(&[])).into_owned());
            pos += used;
            if l.get(3) != Some(&b'-') {
                break;
            }
        }
        let code = code.unwrap_or(0);
        // The greeting answers no command; every later reply answers the oldest one waiting.
        let answered = self.waiting.pop_front();
        if code == 354 {
            self.in_data = true;
        }
        let text = lines
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{code}{}{t}", if i + 1 < lines.len() { "-" } else { " " }))
            .collect::<Vec<_>>()
            .join("\n");
        let summary = text.replace('\n', "\n  ");
        Ok(Frame::Message(
            Message {
                text,
                summary,
                findings,
                detail: Some(Arc::new(SmtpMessage::Reply {
                    code,
                    lines,
                    starts_tls: code == 220 && answered == Some(true),
                })),
            },
            pos,
        ))
    }

    fn peer_sent(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let l: Vec<u8> = self.partial.drain(..=i).collect();
            let l = l.trim_ascii();
            if self.in_data {
                // The "." that ends the content waits for the reply that takes the message.
                if l == b"." {
                    self.in_data = false;
                    self.waiting.push_back(false);
                }
            } else if self.waiting.len() < MAX_WAITING {
                self.waiting.push_back(l.eq_ignore_ascii_case(b"STARTTLS"));
            }
        }
        if self.partial.len() > MAX_LINE {
            self.partial.clear();
        }
    }
}

/// Messages remembered while their replies are outstanding; a client that sends more without
/// reading any is flooding, and only the newest matter for finding DATA's reply.
const MAX_UNANSWERED: usize = 1024;

/// Frames commands, and after `DATA` and a 354 reply the content up to CRLF.CRLF.
///
/// Content begins when the server has answered DATA with 354 (RFC 5321 §4.1.1.4), which the codec
/// learns from the replies (`peer_sent`); bytes after DATA wait for that reply. When no reply was
/// ever seen (a capture of the client's side only) or the client closed first, what follows DATA
/// is taken for the content it was meant to be.
#[derive(Default)]
pub struct CommandCodec {
    /// For each message framed and not answered yet, oldest first: whether it was DATA.
    unanswered: VecDeque<bool>,
    /// The server said 354: the next message is the content.
    in_data: bool,
    /// The client sent bytes after DATA before DATA's reply came.
    early: bool,
    /// Replies were seen, so DATA's reply can be waited for.
    heard: bool,
    /// The first reply came (the greeting, unless a command came first).
    greeted: bool,
    /// The conversation's start was not seen: a 354 may answer a DATA never seen.
    late: bool,
    /// Reply bytes seen, not yet a whole line.
    reply_buf: Vec<u8>,
    /// The BDAT chunk under way: its announced size and how many of its octets are framed.
    chunk: Option<(u64, u64)>,
}

/// The chunk size of `BDAT <size> [LAST]` (RFC 3030 §2: `bdat-cmd ::= "BDAT" SP chunk-size [ SP end-marker ] CR LF`).
fn chunk_size(args: &str) -> Option<u64> {
    let mut words = args.split(' ');
    let size = words.next().filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))?;
    match (words.next(), words.next()) {
        (None, _) => size.parse().ok(),
        (Some(last), None) if last.eq_ignore_ascii_case("LAST") => size.parse().ok(),
        _ => None,
    }
}

impl Codec for CommandCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        if let Some((size, done)) = self.chunk {
            return self.decode_chunk(buf, eof, size, done);
        }
        if self.in_data {
            return self.decode_data(buf, eof);
        }
        if self.unanswered.contains(&true) && !buf.is_empty() {
            if self.heard && !eof {
                self.early = true;
                if buf.len() > MAX_DATA {
                    return Err(CodecError {
                        offset: MAX_DATA,
                        reason: "DATA content over the size limit, sent before the reply to DATA".into(),
                    });
                }
                return Ok(Frame::Incomplete);
            }
            self.early |= self.heard;
            if let Some(d) = self.unanswered.iter_mut().rev().find(|d| **d) {
                *d = false;
            }
            self.in_data = true;
            return self.decode_data(buf, eof);
        }
        let Some((l, used, lf)) = command_line(buf, eof)? else {
            return Ok(Frame::Incomplete);
        };
        let text = String::from_utf8_lossy(l).into_owned();
        let (verb, args) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.to_string()),
            None => (text.to_ascii_uppercase(), String::new()),
        };
        let mut findings = if lf { vec![bare_lf()] } else { Vec::new() };
        if verb == "DATA" && used < buf.len() && self.heard {
            // Nothing told of a reply yet, so these bytes left the client before any reply to DATA.
            self.early = true;
        }
        self.asked(verb == "DATA");
        if verb == "BDAT" {
            // The chunk's octets follow the command line whatever the reply (RFC 3030 §2):
            // a server that refuses BDAT still reads them, so they are never commands.
            match chunk_size(&args) {
                Some(0) => {}
                Some(size) => self.chunk = Some((size, 0)),
                None => findings.push(Finding {
                    level: Level::Must,
                    rule: "RFC 3030 §2",
                    text: "BDAT takes a chunk size in octets, then optionally LAST".into(),
                }),
            }
        }
        let summary = format!("\"{}\"", escape_bytes(l, 200));
        Ok(Frame::Message(
            Message {
                text,
                summary,
                findings,
                detail: Some(Arc::new(SmtpMessage::Command { verb, args })),
            },
            used,
        ))
    }

    fn joined_late(&mut self) {
        self.greeted = true;
        self.late = true;
    }

    fn peer_sent(&mut self, bytes: &[u8]) {
        self.heard |= !bytes.is_empty();
        self.reply_buf.extend_from_slice(bytes);
        while let Some(i) = self.reply_buf.iter().position(|&b| b == b'\n') {
            let l: Vec<u8> = self.reply_buf.drain(..=i).collect();
            if l.len() < 4 || l[3] == b'-' {
                continue;
            }
            let code = &l[..3];
            if !std::mem::replace(&mut self.greeted, true) && [&b"220"[..], b"421", b"554"].contains(&code) {
                continue;
            }
            if code == b"354" {
                // Replies to commands pipelined before DATA may be missing; a 354 answers DATA only.
                if let Some(i) = self.unanswered.iter().position(|d| *d) {
                    self.unanswered.drain(..=i);
                    self.in_data = true;
                }
                self.in_data |= self.late;
                continue;
            }
            if self.unanswered.pop_front() == Some(true) {
                // DATA refused: the server reads whatever followed it as commands.
                self.early = false;
            }
        }
    }
}

impl CommandCodec {
    /// Records a message that expects a reply; `data` when it is DATA.
    fn asked(&mut self, data: bool) {
        self.unanswered.push_back(data);
        if self.unanswered.len() > MAX_UNANSWERED {
            self.unanswered.pop_front();
        }
    }

    /// The next piece of a BDAT chunk of `size` octets, `done` of them framed already.
    fn decode_chunk(&mut self, buf: &[u8], eof: bool, size: u64, done: u64) -> Result<Frame, CodecError> {
        let want = (size - done).min(MAX_CHUNK_PIECE as u64) as usize;
        if buf.len() < want {
            if eof {
                return Err(CodecError {
                    offset: buf.len(),
                    reason: format!(
                        "the connection closed {} octets into a BDAT chunk of {size}",
                        done + buf.len() as u64
                    ),
                });
            }
            return Ok(Frame::Incomplete);
        }
        let content = buf[..want].to_vec();
        self.chunk = ((done + want as u64) < size).then_some((size, done + want as u64));
        let text = String::from_utf8_lossy(&content).into_owned();
        let range = match want as u64 == size {
            true => String::new(),
            false => format!(", octets {} to {} of {size}", done + 1, done + want as u64),
        };
        let summary = format!("[{want} bytes of message data{range}]: \"{}\"", escape_bytes(&content, 200));
        Ok(Frame::Message(
            Message {
                text,
                summary,
                findings: Vec::new(),
                detail: Some(Arc::new(SmtpMessage::Chunk {
                    content,
                    offset: done,
                    size,
                })),
            },
            want,
        ))
    }

    fn decode_data(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        // The content ends with a line that is exactly "." (RFC 5321 §4.1.1.4: CRLF.CRLF).
        let mut pos = 0;
        let mut content = Vec::new();
        let mut lines = 0;
        loop {
            let Some(rel) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
                if buf.len() > MAX_DATA {
                    return Err(CodecError {
                        offset: MAX_DATA,
                        reason: "DATA content over the size limit".into(),
                    });
                }
                if eof {
                    return Err(CodecError {
                        offset: buf.len(),
                        reason: "the connection closed before the end of DATA (a line with only \".\" after CRLF)".into(),
                    });
                }
                return Ok(Frame::Incomplete);
            };
            let l = &buf[pos..pos + rel];
            pos += rel + 2;
            if l == b"." {
                break;
            }
            // RFC 5321 §4.5.2: a leading "." was added by the sender; remove one.
            content.extend_from_slice(l.strip_prefix(b".").unwrap_or(l));
            content.extend_from_slice(b"\r\n");
            lines += 1;
        }
        self.in_data = false;
        self.asked(false);
        let mut findings = Vec::new();
        if std::mem::take(&mut self.early) {
            findings.push(Finding {
                level: Level::Must,
                rule: "RFC 5321 §4.3.1, RFC 2920 §3.1",
                text: "the content was sent before the reply to DATA: \"the sender MUST wait for this response \
                       before sending further commands\" (RFC 5321 §4.3.1), and with PIPELINING \"DATA [...] can \
                       only appear as the last command in a group\" (RFC 2920 §3.1)"
                    .into(),
            });
        }
        let text = String::from_utf8_lossy(&content).into_owned();
        let summary = format!(
            "DATA content, {lines} lines, {} bytes: \"{}\"",
            content.len(),
            escape_bytes(&content, 200)
        );
        Ok(Frame::Message(
            Message {
                text,
                summary,
                findings,
                detail: Some(Arc::new(SmtpMessage::Data { content })),
            },
            pos,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(buf: &[u8]) -> (u16, Vec<String>, usize, Vec<Finding>) {
        match ReplyCodec::default().decode(buf, false).unwrap() {
            Frame::Message(m, used) => match m.detail.as_ref().unwrap().downcast_ref::<SmtpMessage>().unwrap() {
                SmtpMessage::Reply { code, lines, .. } => (*code, lines.clone(), used, m.findings),
                _ => panic!(),
            },
            Frame::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn parses_multi_line_replies_whole_and_incomplete_until_the_last_line() {
        let (code, lines, used, f) = reply(b"250-hamburger.edu\r\n250-SIZE 1000\r\n250 HELP\r\n221 bye\r\n");
        assert_eq!((code, lines.len(), used, f.len()), (250, 3, 44, 0));
        assert_eq!(lines[1], "SIZE 1000");
        assert!(matches!(
            ReplyCodec::default().decode(b"250-hamburger.edu\r\n250-SI", false).unwrap(),
            Frame::Incomplete
        ));
    }

    #[test]
    fn parses_bare_codes_and_rejects_malformed_replies() {
        let (code, lines, _, _) = reply(b"250\r\n");
        assert_eq!((code, lines), (250, vec![String::new()]));
        let (_, _, _, f) = reply(b"250-a\r\n251 b\r\n");
        assert_eq!(f[0].level, Level::Must);
        let (_, _, _, f) = reply(b"220 hi\n");
        assert_eq!(f[0].level, Level::Should);
        assert!(ReplyCodec::default().decode(b"hello\r\n", false).is_err());
        assert!(ReplyCodec::default().decode(b"250+x\r\n", false).is_err());
        assert!(ReplyCodec::default().decode(b"250-a\r\n", true).is_err());
    }

    fn frame(c: &mut CommandCodec, buf: &[u8]) -> (SmtpMessage, usize) {
        match c.decode(buf, false).unwrap() {
            Frame::Message(m, used) => (m.detail.unwrap().downcast_ref::<SmtpMessage>().unwrap().clone(), used),
            Frame::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn parses_data_content_after_354_as_one_unstuffed_message() {
        let mut c = CommandCodec::default();
        let (m, used) = frame(&mut c, b"mail FROM:<a@b>\r\n");
        assert!(matches!(m, SmtpMessage::Command { ref verb, ref args } if verb == "MAIL" && args == "FROM:<a@b>"));
        assert_eq!(used, 17);
        frame(&mut c, b"DATA\r\n");
        c.peer_sent(b"354 go ahead\r\n");
        let stream = b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n";
        let (m, used) = frame(&mut c, stream);
        let SmtpMessage::Data { content } = m else { panic!() };
        assert_eq!(content, b"Subject: x\r\n\r\n.leading dot\r\n");
        assert_eq!(used, 32);
        let (m, _) = frame(&mut c, &stream[used..]);
        assert!(matches!(m, SmtpMessage::Command { ref verb, .. } if verb == "QUIT"));
    }

    #[test]
    fn incomplete_data_refused_stays_in_command_mode_and_lf_dot_lf_is_not_an_end() {
        let mut c = CommandCodec::default();
        frame(&mut c, b"DATA\r\n");
        c.peer_sent(b"503 need RCPT\r\n");
        let (m, _) = frame(&mut c, b"QUIT\r\n");
        assert!(matches!(m, SmtpMessage::Command { .. }));
        frame(&mut c, b"DATA\r\n");
        c.peer_sent(b"354-first\r\n354 go\r\n");
        assert!(matches!(c.decode(b"body\n.\n", false).unwrap(), Frame::Incomplete));
        assert!(c.decode(b"body\n.\n", true).is_err());
        // Split at every position, the end is found once it has all arrived.
        let full = b"a\r\n..b\r\n.\r\n";
        for cut in 0..full.len() {
            let mut c = CommandCodec {
                in_data: true,
                ..CommandCodec::default()
            };
            assert!(matches!(c.decode(&full[..cut], false).unwrap(), Frame::Incomplete), "cut {cut}");
        }
    }

    #[test]
    fn parses_content_sent_before_the_354_as_content_once_the_354_comes() {
        let mut c = CommandCodec::default();
        c.peer_sent(b"220 hi\r\n");
        frame(&mut c, b"MAIL FROM:<a@b>\r\n");
        frame(&mut c, b"RCPT TO:<c@d>\r\n");
        let stream = b"DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
        let (_, used) = frame(&mut c, stream);
        let rest = &stream[used..];
        // The replies to MAIL and RCPT are not DATA's: still waiting.
        assert!(matches!(c.decode(rest, false).unwrap(), Frame::Incomplete));
        c.peer_sent(b"250 ok\r\n250 ok\r\n");
        assert!(matches!(c.decode(rest, false).unwrap(), Frame::Incomplete));
        c.peer_sent(b"354 go\r\n");
        let Frame::Message(m, used) = c.decode(rest, false).unwrap() else {
            panic!()
        };
        let Some(SmtpMessage::Data { content }) = SmtpMessage::of(&m) else {
            panic!()
        };
        assert_eq!(content, b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(
            (m.findings[0].level, m.findings[0].rule),
            (Level::Must, "RFC 5321 §4.3.1, RFC 2920 §3.1")
        );
        let (m, _) = frame(&mut c, &rest[used..]);
        assert!(matches!(m, SmtpMessage::Command { ref verb, .. } if verb == "QUIT"));
    }

    #[test]
    fn parses_content_after_a_354_the_client_waited_for_without_findings() {
        let mut c = CommandCodec::default();
        c.peer_sent(b"220 hi\r\n");
        frame(&mut c, b"DATA\r\n");
        c.peer_sent(b"354 go\r\n");
        let Frame::Message(m, _) = c.decode(b"x\r\n.\r\n", false).unwrap() else {
            panic!()
        };
        assert!(matches!(SmtpMessage::of(&m), Some(SmtpMessage::Data { .. })));
        assert!(m.findings.is_empty(), "{:?}", m.findings);
    }

    #[test]
    fn parses_lines_after_data_as_content_without_the_server_side_or_at_the_close() {
        // A capture of the client's side alone: no reply will tell, the content is what it meant.
        let mut c = CommandCodec::default();
        frame(&mut c, b"DATA\r\n");
        let (m, _) = frame(&mut c, b"RSET is text here\r\n.\r\n");
        assert!(matches!(m, SmtpMessage::Data { .. }));
        // The client closed before the reply came: nothing else can follow DATA.
        let mut c = CommandCodec::default();
        c.peer_sent(b"220 hi\r\n");
        frame(&mut c, b"DATA\r\n");
        let Frame::Message(m, _) = c.decode(b"x\r\n.\r\n", true).unwrap() else {
            panic!()
        };
        assert_eq!(m.findings.len(), 1);
        // A 354 that comes after the content was framed opens nothing more.
        c.peer_sent(b"354 go\r\n");
        assert!(matches!(frame(&mut c, b"QUIT\r\n").0, SmtpMessage::Command { .. }));
    }

    #[test]
    fn parses_bytes_after_a_refused_data_as_commands() {
        let mut c = CommandCodec::default();
        c.peer_sent(b"220 hi\r\n");
        let stream = b"DATA\r\nNOOP\r\n";
        let (_, used) = frame(&mut c, stream);
        assert!(matches!(c.decode(&stream[used..], false).unwrap(), Frame::Incomplete));
        c.peer_sent(b"554 no valid recipients\r\n");
        let (m, _) = frame(&mut c, &stream[used..]);
        assert!(matches!(m, SmtpMessage::Command { ref verb, .. } if verb == "NOOP"));
    }

    #[test]
    fn parses_content_after_a_354_to_a_data_the_capture_missed() {
        let mut c = CommandCodec::default();
        c.joined_late();
        c.peer_sent(b"354 go\r\n");
        let (m, used) = frame(&mut c, b"Subject: x\r\n.\r\nQUIT\r\n");
        assert!(matches!(m, SmtpMessage::Data { .. }));
        assert_eq!(used, 15);
    }

    /// Frames `stream` arriving in two parts cut at `cut`.
    fn frames_cut(stream: &[u8], cut: usize) -> Vec<String> {
        let mut f = crate::proto::Framer::new(Box::new(CommandCodec::default()));
        let mut out = Vec::new();
        for (part, eof) in [(&stream[..cut], false), (&stream[cut..], true)] {
            f.push(part);
            while let Some(m) = f.next(eof).unwrap() {
                out.push(match SmtpMessage::of(&m).unwrap() {
                    SmtpMessage::Chunk { offset, size, .. } => format!("chunk {offset}/{size} {}", m.text),
                    _ => m.text,
                });
            }
        }
        assert!(f.pending().is_empty(), "cut {cut}");
        out
    }

    #[test]
    fn parses_bdat_chunks_as_data_at_every_split() {
        // The chunks hold CRLFs, a "." line and command-like text: none of it is a command.
        let stream = b"BDAT 13\r\nQUIT\r\n.\r\nRSETBDAT 3 last\r\nx\r\nNOOP\r\nbdat 0 LAST\r\nQUIT\r\n";
        let want = [
            "BDAT 13",
            "chunk 0/13 QUIT\r\n.\r\nRSET",
            "BDAT 3 last",
            "chunk 0/3 x\r\n",
            "NOOP",
            "bdat 0 LAST",
            "QUIT",
        ];
        for cut in 0..=stream.len() {
            assert_eq!(frames_cut(stream, cut), want, "cut {cut}");
        }
    }

    #[test]
    fn parses_a_bdat_chunk_over_the_cap_in_pieces_and_renders_its_size() {
        let size = MAX_CHUNK_PIECE * 2 + 5;
        let mut c = CommandCodec::default();
        let cmd = format!("BDAT {size} LAST\r\n");
        frame(&mut c, cmd.as_bytes());
        let body = vec![b'a'; size];
        let mut at = 0;
        let mut pieces = Vec::new();
        while at < size {
            // Less than a piece waits; a piece never holds more than the cap.
            if size - at >= MAX_CHUNK_PIECE {
                assert!(matches!(c.decode(&body[at..at + 10], false).unwrap(), Frame::Incomplete));
            }
            let Frame::Message(m, used) = c.decode(&body[at..], false).unwrap() else {
                panic!("incomplete at {at}")
            };
            assert!(used <= MAX_CHUNK_PIECE);
            pieces.push(m.summary.split(']').next().unwrap().to_string());
            at += used;
        }
        assert_eq!(pieces.len(), 3);
        assert_eq!(
            pieces[2],
            format!("[5 bytes of message data, octets {} to {size} of {size}", size - 4)
        );
        let mut c = CommandCodec::default();
        frame(&mut c, b"BDAT 4 LAST\r\n");
        let Frame::Message(m, _) = c.decode(b"ab\r\n", false).unwrap() else {
            panic!()
        };
        assert_eq!(m.summary, "[4 bytes of message data]: \"ab\\r\\n\"");
        assert!(c.decode(b"QUIT\r\n", false).is_ok());
    }

    #[test]
    fn rejects_a_close_inside_a_bdat_chunk_and_flags_a_bad_size() {
        let mut c = CommandCodec::default();
        frame(&mut c, b"BDAT 10\r\n");
        assert!(matches!(c.decode(b"abc", false).unwrap(), Frame::Incomplete));
        assert!(c
            .decode(b"abc", true)
            .unwrap_err()
            .reason
            .contains("3 octets into a BDAT chunk of 10"));
        let mut c = CommandCodec::default();
        let Frame::Message(m, _) = c.decode(b"BDAT ten\r\nQUIT\r\n", false).unwrap() else {
            panic!()
        };
        assert_eq!(m.findings[0].rule, "RFC 3030 §2");
        let (m, _) = frame(&mut c, b"QUIT\r\n");
        assert!(matches!(m, SmtpMessage::Command { .. }));
    }

    #[test]
    fn round_trip_a_dot_stuffed_body_frames_back_unstuffed() {
        let body = b"line one\r\n.starts with a dot\r\n..two dots\r\n";
        let wire = crate::proto::codec::dot_stuff(body);
        let mut c = CommandCodec {
            in_data: true,
            ..CommandCodec::default()
        };
        let (m, used) = frame(&mut c, &wire);
        let SmtpMessage::Data { content } = m else { panic!() };
        assert_eq!((content.as_slice(), used), (&body[..], wire.len()));
    }

    #[test]
    fn parses_a_220_answering_starttls_as_the_start_of_tls_and_nothing_else() {
        let starts = |c: &mut ReplyCodec, reply: &[u8]| match c.decode(reply, false).unwrap() {
            Frame::Message(m, _) => matches!(SmtpMessage::of(&m), Some(SmtpMessage::Reply { starts_tls: true, .. })),
            Frame::Incomplete => panic!("incomplete"),
        };
        let mut c = ReplyCodec::default();
        // The greeting is a 220 too, but answers no STARTTLS.
        assert!(!starts(&mut c, b"220 mx ESMTP\r\n"));
        c.peer_sent(b"EHLO x\r\nSTART");
        assert!(!starts(&mut c, b"250 mx\r\n"));
        c.peer_sent(b"TLS\r\n");
        assert!(!starts(&mut c, b"454 4.7.0 TLS not available\r\n"));
        c.peer_sent(b"STARTTLS\r\n");
        assert!(starts(&mut c, b"220 2.0.0 Ready to start TLS\r\n"));
        c.peer_sent(b"NOOP\r\n");
        assert!(!starts(&mut c, b"220 hm\r\n"));
        // A command pipelined behind STARTTLS (an injection) does not hide the go-ahead.
        let mut c = ReplyCodec::default();
        assert!(!starts(&mut c, b"220 mx ESMTP\r\n"));
        c.peer_sent(b"STARTTLS\r\nQUIT\r\n");
        assert!(starts(&mut c, b"220 2.0.0 Ready to start TLS\r\n"));
        // Message content is no command: a "STARTTLS" line in it is answered by nothing.
        let mut c = ReplyCodec::default();
        assert!(!starts(&mut c, b"220 mx ESMTP\r\n"));
        c.peer_sent(b"DATA\r\n");
        assert!(!starts(&mut c, b"354 go\r\n"));
        c.peer_sent(b"STARTTLS\r\n.\r\n");
        assert!(!starts(&mut c, b"250 ok\r\n"));
        c.peer_sent(b"NOOP\r\n");
        assert!(!starts(&mut c, b"220 odd\r\n"));
    }
}
