//! IMAP framing (RFC 9051; RFC 3501 for IMAP4rev1).
//!
//! Server to client, a message is a *response group*: the greeting alone, then every untagged
//! response up to and including the tagged completion or command continuation request that ends
//! it (RFC 9051 §2.2.2). A command a server cannot tie to a tag may be answered by an untagged
//! BAD alone (§7.1.3); the codec learns from [`Codec::peer_sent`] which commands were sent and
//! lets such a BAD end the group when the oldest unanswered line had no valid tag. Client to
//! server, a message is one command with its literals.

use std::collections::VecDeque;
use std::sync::Arc;

use super::parse::{self, Body, Raw};
use crate::proto::{Codec, CodecError, Finding, Frame, Level, Message};

/// Which kind of response a line starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `* ...`
    Untagged,
    /// `tag OK|NO|BAD ...`, with the tag.
    Tagged(String),
    /// `+ ...`, a command continuation request.
    Continuation,
}

/// One server response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Untagged, tagged or continuation.
    pub kind: Kind,
    /// The parsed content after `* `, `tag ` or `+ `.
    pub body: Body,
    /// The content after `* `, `tag ` or `+ ` as text, literals inline after their `{n}`.
    pub text: String,
    /// The whole response as text.
    pub line: String,
    /// The response for transcripts (one line, long literals cut short).
    pub summary: String,
}

/// What ends a response group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The group is the connection's greeting.
    Greeting,
    /// A tagged OK, NO or BAD.
    Tagged,
    /// A `+` command continuation request.
    Continuation,
    /// An untagged BAD answering a line that had no valid tag.
    UntaggedBad,
    /// The connection closed after these untagged responses.
    Eof,
}

/// A response group: what the server said in answer to one command (or its greeting).
#[derive(Debug, Clone)]
pub struct Group {
    /// The responses in order; the last one ends the group unless `end` is `Eof`.
    pub responses: Vec<Response>,
    /// What ended it.
    pub end: End,
    /// Tags of the commands sent on this connection and not yet answered when the group ended.
    pub pending_tags: Vec<String>,
    /// A tagged OK answering STARTTLS: the TLS handshake starts after it (RFC 9051 §6.2.1).
    pub starts_tls: bool,
}

impl Group {
    /// The response that ends the group (the greeting, the tagged line, the `+` line, the BAD).
    pub fn completion(&self) -> Option<&Response> {
        match self.end {
            End::Eof => None,
            _ => self.responses.last(),
        }
    }

    /// The untagged responses (for a greeting group, the greeting itself).
    pub fn untagged(&self) -> impl Iterator<Item = &Response> {
        self.responses.iter().filter(|r| r.kind == Kind::Untagged)
    }
}

/// A client command, for transcripts.
#[derive(Debug, Clone)]
pub struct Command {
    /// The tag, if the line starts with a valid one.
    pub tag: Option<String>,
    /// The command as text, literals inline.
    pub text: String,
}

/// Frames server responses into response groups.
#[derive(Default)]
pub struct ResponseCodec {
    greeted: bool,
    peer: Peer,
    /// The selected mailbox's size as the server announced it (EXISTS, less each EXPUNGE).
    exists: Option<u64>,
}

/// Follows the mailbox size through a group: a message number the server uses must exist when
/// the response is sent (RFC 9051 §2.3.1.2), so an EXPUNGE renumbers the messages after it.
fn track_size(exists: &mut Option<u64>, r: &Response, findings: &mut Vec<Finding>) {
    if r.kind != Kind::Untagged {
        return;
    }
    let (Some(n), Some(k)) = (r.body.number(), r.body.keyword()) else {
        return;
    };
    match (k.as_str(), *exists) {
        ("EXISTS", _) => *exists = Some(n),
        ("EXPUNGE" | "FETCH", Some(size)) if n == 0 || n > size => findings.push(must(
            if k == "EXPUNGE" { "RFC 9051 §7.5.1" } else { "RFC 9051 §2.3.1.2" },
            format!(
                "'{}' names message {n}, but the mailbox has {size} (each EXPUNGE renumbers the messages after it)",
                r.summary
            ),
        )),
        ("EXPUNGE", Some(size)) => *exists = Some(size - 1),
        _ => {}
    }
}

fn should(rule: &'static str, text: String) -> Finding {
    Finding {
        level: Level::Should,
        rule,
        text,
    }
}

fn must(rule: &'static str, text: String) -> Finding {
    Finding {
        level: Level::Must,
        rule,
        text,
    }
}

/// Classifies one framed response; a line that is no response at all cannot be framed further.
fn response(raw: &Raw, offset: usize, greeting: bool, findings: &mut Vec<Finding>) -> Result<Response, CodecError> {
    let first = &raw.texts[0];
    let summary = raw.summary();
    let (kind, skip) = if first.starts_with(b"* ") {
        (Kind::Untagged, 2)
    } else if first.first() == Some(&b'+') {
        if first.len() > 1 && first[1] != b' ' {
            findings.push(should(
                "RFC 9051 §7.5",
                format!("a continuation request without a space after '+': {summary}"),
            ));
        }
        (Kind::Continuation, 1 + usize::from(first.get(1) == Some(&b' ')))
    } else {
        let sp = first.iter().position(|&b| b == b' ');
        let status = sp.map(|i| {
            let rest = &first[i + 1..];
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end]).to_ascii_uppercase()
        });
        match (sp, status) {
            (Some(i), Some(st)) if parse::valid_tag(&first[..i]) && parse::STATUSES.contains(&st.as_str()) => {
                if !["OK", "NO", "BAD"].contains(&st.as_str()) {
                    findings.push(must(
                        "RFC 9051 §7.1",
                        format!("a tagged {st}: a command completes with a tagged OK, NO or BAD ({summary})"),
                    ));
                }
                (Kind::Tagged(String::from_utf8_lossy(&first[..i]).into_owned()), i + 1)
            }
            _ => {
                return Err(CodecError {
                    offset,
                    reason: format!(
                        "not an IMAP response: \"{}\" (a response is '* ...', '+ ...' or 'tag OK|NO|BAD ...')",
                        parse::display(first, 120)
                    ),
                })
            }
        }
    };
    let body = if kind == Kind::Continuation {
        Body {
            human: raw.text_from(skip),
            ..Body::default()
        }
    } else {
        parse::body(raw, skip)
    };
    if greeting {
        let ok = kind == Kind::Untagged && matches!(body.status.as_deref(), Some("OK" | "PREAUTH" | "BYE"));
        if !ok {
            findings.push(must(
                "RFC 9051 §7.1",
                format!("the greeting is '* OK', '* PREAUTH' or '* BYE', not: {summary}"),
            ));
        }
    }
    if let Some(why) = &body.malformed {
        if kind == Kind::Untagged {
            findings.push(should("RFC 9051 §9", format!("a malformed untagged response ({why}): {summary}")));
        }
    }
    Ok(Response {
        kind,
        text: raw.text_from(skip),
        line: raw.text_from(0),
        summary,
        body,
    })
}

impl Codec for ResponseCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let mut pos = 0;
        let mut responses = Vec::new();
        let mut findings = Vec::new();
        let mut bare_lf = false;
        let mut exists = self.exists;
        let end = loop {
            let raw = match parse::scan(&buf[pos..], false) {
                Ok(Some(raw)) => raw,
                Ok(None) if !eof => return Ok(Frame::Incomplete),
                Ok(None) if !responses.is_empty() => break End::Eof,
                Ok(None) if pos == buf.len() => return Ok(Frame::Incomplete),
                Ok(None) => {
                    return Err(CodecError {
                        offset: buf.len(),
                        reason: "the connection closed in the middle of a response".into(),
                    })
                }
                Err(e) => {
                    return Err(CodecError {
                        offset: pos + e.offset,
                        reason: e.reason,
                    })
                }
            };
            let r = response(&raw, pos, !self.greeted, &mut findings)?;
            track_size(&mut exists, &r, &mut findings);
            bare_lf |= raw.bare_lf;
            pos += raw.len;
            let kind = r.kind.clone();
            let untagged_bad = r.kind == Kind::Untagged && r.body.status.as_deref() == Some("BAD");
            responses.push(r);
            if !self.greeted {
                break End::Greeting;
            }
            match kind {
                Kind::Tagged(_) => break End::Tagged,
                Kind::Continuation => break End::Continuation,
                Kind::Untagged if untagged_bad && self.peer.front_malformed() => break End::UntaggedBad,
                Kind::Untagged => {}
            }
        };
        if bare_lf {
            findings.insert(
                0,
                should("RFC 9051 §2.2", "a line ends in a bare LF; IMAP lines end in CRLF".into()),
            );
        }
        let pending_tags = self.peer.tags();
        let starts_tls = match (&end, responses.last()) {
            (
                End::Tagged,
                Some(
                    r @ Response {
                        kind: Kind::Tagged(tag), ..
                    },
                ),
            ) => r.body.status.as_deref() == Some("OK") && self.peer.is_starttls(tag),
            _ => false,
        };
        self.greeted = true;
        self.exists = exists;
        match (end, responses.last().map(|r| &r.kind)) {
            (End::Tagged, Some(Kind::Tagged(tag))) => self.peer.answered(Some(tag)),
            (End::UntaggedBad, _) => self.peer.answered(None),
            _ => {}
        }
        let text = responses.iter().map(|r| r.line.as_str()).collect::<Vec<_>>().join("\n");
        let mut summary = responses.iter().map(|r| r.summary.as_str()).collect::<Vec<_>>().join("\n");
        if end == End::Eof {
            summary.push_str(" (no completion before the close)");
        }
        let group = Group {
            responses,
            end,
            pending_tags,
            starts_tls,
        };
        Ok(Frame::Message(
            Message {
                text,
                summary,
                findings,
                detail: Some(Arc::new(group)),
            },
            pos,
        ))
    }

    fn peer_sent(&mut self, bytes: &[u8]) {
        self.peer.feed(bytes);
    }

    fn joined_late(&mut self) {
        // What came first is not the greeting (a capture begun mid-connection, or the
        // conversation going on after STARTTLS).
        self.greeted = true;
    }
}

/// A command line sent and not yet answered.
#[derive(Debug)]
struct Pending {
    id: u64,
    tag: Option<String>,
    /// A valid tag, a space and a command name: anything else may get an untagged BAD.
    well_formed: bool,
    /// The command is STARTTLS.
    starttls: bool,
}

/// A literal the client announced and has not finished sending.
#[derive(Debug)]
struct Literal {
    id: u64,
    left: usize,
    total: usize,
    sync: bool,
}

/// Follows the commands the client sent, as far as a response parser needs: their tags, in order.
/// Tags are known as soon as the first line is sent, before a synchronizing literal goes out.
#[derive(Debug, Default)]
struct Peer {
    buf: Vec<u8>,
    pending: VecDeque<Pending>,
    literal: Option<Literal>,
    /// The command whose next line continues it (after a literal).
    continuing: Option<u64>,
    next_id: u64,
}

impl Peer {
    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        loop {
            if let Some(l) = &mut self.literal {
                let k = l.left.min(self.buf.len());
                self.buf.drain(..k);
                l.left -= k;
                if l.left > 0 {
                    return;
                }
                self.literal = None;
                continue;
            }
            let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > parse::MAX_LINE {
                    self.buf.clear();
                }
                return;
            };
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let id = match self.continuing {
                Some(id) => id,
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let sp = line.iter().position(|&b| b == b' ');
                    let tag = &line[..sp.unwrap_or(line.len())];
                    let valid = parse::valid_tag(tag);
                    self.pending.push_back(Pending {
                        id,
                        tag: valid.then(|| String::from_utf8_lossy(tag).into_owned()),
                        well_formed: valid && sp.is_some_and(|i| line.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic())),
                        starttls: sp.is_some_and(|i| line[i + 1..].trim_ascii().eq_ignore_ascii_case(b"STARTTLS")),
                    });
                    id
                }
            };
            match parse::literal_marker(&line, true) {
                Ok(Some(m)) => {
                    self.literal = Some(Literal {
                        id,
                        left: m.len,
                        total: m.len,
                        sync: !m.text.ends_with("+}"),
                    });
                    self.continuing = Some(id);
                }
                _ => self.continuing = None,
            }
        }
    }

    fn front_malformed(&self) -> bool {
        self.pending.front().is_some_and(|p| !p.well_formed)
    }

    /// Whether the command tagged `tag` is STARTTLS.
    fn is_starttls(&self, tag: &str) -> bool {
        self.pending.iter().any(|p| p.starttls && p.tag.as_deref() == Some(tag))
    }

    fn tags(&self) -> Vec<String> {
        self.pending.iter().filter_map(|p| p.tag.clone()).collect()
    }

    /// A completion arrived for `tag` (None: an untagged BAD for the oldest malformed line).
    fn answered(&mut self, tag: Option<&str>) {
        let idx = match tag {
            Some(t) => self.pending.iter().position(|p| p.tag.as_deref() == Some(t)),
            None => self.pending.front().filter(|p| !p.well_formed).map(|_| 0),
        };
        let Some(idx) = idx else { return };
        let id = self.pending[idx].id;
        // Lines before it that got no answer were ignored by the server (e.g. empty lines).
        let mut i = 0;
        self.pending.retain(|p| {
            let keep = i > idx || (i < idx && p.well_formed);
            i += 1;
            keep
        });
        // A command refused before its synchronizing literal was sent: the client sends no literal.
        if self.literal.as_ref().is_some_and(|l| l.id == id && l.sync && l.left == l.total) {
            self.literal = None;
            self.continuing = None;
        }
    }
}

/// Frames client commands: one command line with its literals per message.
pub struct CommandCodec;

impl Codec for CommandCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let (text, summary, used, first) = match parse::scan(buf, true)? {
            Some(raw) => (raw.text_from(0), raw.summary(), raw.len, raw.texts[0].clone()),
            None if eof && !buf.is_empty() => {
                let r = parse::Raw {
                    texts: vec![buf.to_vec()],
                    ..Raw::default()
                };
                (r.text_from(0), format!("{} (no line ending)", r.summary()), buf.len(), buf.to_vec())
            }
            None => return Ok(Frame::Incomplete),
        };
        let tag = &first[..first.iter().position(|&b| b == b' ').unwrap_or(first.len())];
        let cmd = Command {
            tag: parse::valid_tag(tag).then(|| String::from_utf8_lossy(tag).into_owned()),
            text: text.clone(),
        };
        Ok(Frame::Message(
            Message {
                text,
                summary,
                findings: Vec::new(),
                detail: Some(Arc::new(cmd)),
            },
            used,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(c: &mut ResponseCodec, buf: &[u8], eof: bool) -> (Group, usize, Vec<Finding>, String, String) {
        match c.decode(buf, eof).unwrap() {
            Frame::Message(m, used) => {
                let g = m.detail.unwrap().downcast_ref::<Group>().unwrap().clone();
                (g, used, m.findings, m.text, m.summary)
            }
            Frame::Incomplete => panic!("incomplete"),
        }
    }

    fn greeted() -> ResponseCodec {
        let mut c = ResponseCodec::default();
        group(&mut c, b"* OK ready\r\n", false);
        c
    }

    #[test]
    fn parses_the_greeting_alone() {
        let mut c = ResponseCodec::default();
        let buf = b"* OK [CAPABILITY IMAP4rev1] hi\r\n* 1 EXISTS\r\na1 OK done\r\n";
        let (g, used, f, text, _) = group(&mut c, buf, false);
        assert_eq!((g.end, used, f.len()), (End::Greeting, 32, 0));
        assert_eq!(text, "* OK [CAPABILITY IMAP4rev1] hi");
        assert_eq!(g.completion().unwrap().body.code.as_ref().unwrap().name, "CAPABILITY");
        let (g, used, _, text, _) = group(&mut c, &buf[32..], false);
        assert_eq!((g.end, g.responses.len(), used), (End::Tagged, 2, buf.len() - 32));
        assert_eq!(text, "* 1 EXISTS\na1 OK done");
    }

    #[test]
    fn parses_groups_ending_at_tagged_or_continuation() {
        let mut c = greeted();
        c.peer_sent(b"a3 APPEND INBOX {11}\r\n");
        let buf = b"+ Ready for literal data\r\n";
        let (g, used, _, _, _) = group(&mut c, buf, false);
        assert_eq!(
            (g.end, used, g.pending_tags.clone()),
            (End::Continuation, buf.len(), vec!["a3".to_string()])
        );
        assert_eq!(g.completion().unwrap().body.human, "Ready for literal data");
        c.peer_sent(b"hello world\r\n");
        let (g, _, _, _, _) = group(&mut c, b"* 3 EXISTS\r\na3 OK APPEND completed\r\n", false);
        assert_eq!((g.end, g.pending_tags.clone()), (End::Tagged, vec!["a3".to_string()]));
        assert!(c.peer.pending.is_empty());
        assert!(matches!(c.decode(b"* 3 EXISTS\r\n", false).unwrap(), Frame::Incomplete));
    }

    #[test]
    fn incomplete_literals_split_at_every_byte() {
        let stream: &[u8] =
            b"* 1 FETCH (BODY[] {12}\r\nab\r\n{3}\r\nxyz UID 4 BODY[HEADER] {5}\r\nq\r\n\r\n)\r\n* 2 FETCH (FLAGS ())\r\na1 OK done\r\n";
        for cut in 0..stream.len() {
            let mut c = greeted();
            if cut < stream.len() {
                assert!(matches!(c.decode(&stream[..cut], false).unwrap(), Frame::Incomplete), "cut {cut}");
            }
            let (g, used, f, _, _) = group(&mut c, stream, false);
            assert_eq!((used, g.responses.len(), f.len()), (stream.len(), 3, 0), "cut {cut}");
            let items = parse::fetch_items(&g.responses[0].body);
            assert_eq!(items[0].1, parse::Token::Literal(b"ab\r\n{3}\r\nxyz".to_vec()));
            assert_eq!(items[2].1, parse::Token::Literal(b"q\r\n\r\n".to_vec()));
        }
    }

    #[test]
    fn incomplete_until_eof_ends_a_group_and_rejects_truncation() {
        let mut c = greeted();
        c.peer_sent(b"a1 NOOP\r\n");
        let buf = b"* BYE shutting down\r\n* OK";
        let (g, used, _, _, summary) = group(&mut c, buf, true);
        assert_eq!((g.end, used, g.completion().is_none()), (End::Eof, 21, true));
        assert!(summary.ends_with("(no completion before the close)"), "{summary}");
        let e = c.decode(&buf[used..], true).unwrap_err();
        assert!(e.reason.contains("middle of a response"), "{e}");
        assert!(matches!(c.decode(b"", true).unwrap(), Frame::Incomplete));
        let e = c.decode(b"* 1 FETCH (BODY[] {10}\r\nabc", true).unwrap_err();
        assert_eq!(e.offset, 27);
    }

    #[test]
    fn rejects_framing_errors_with_offsets() {
        let mut c = greeted();
        let e = c.decode(b"* 1 EXISTS\r\nhello there\r\n", false).unwrap_err();
        assert_eq!(e.offset, 12);
        assert!(e.reason.contains("not an IMAP response"), "{e}");
        let e = c.decode(b"* OK\r\n* x {+}\r\n", false).unwrap_err();
        assert_eq!(e.offset, 10);
        let e = c.decode(b"*OK\r\n", false).unwrap_err();
        assert_eq!(e.offset, 0);
    }

    #[test]
    fn parses_with_findings() {
        let mut c = ResponseCodec::default();
        let (_, _, f, _, _) = group(&mut c, b"* NO go away\n", false);
        assert_eq!(f.iter().map(|f| f.level).collect::<Vec<_>>(), [Level::Should, Level::Must]);
        assert!(f[0].text.contains("bare LF"));
        let (_, _, f, _, _) = group(&mut c, b"* FLAGS (\\Seen\r\na1 BYE x\r\n", false);
        assert_eq!(f.iter().map(|f| f.level).collect::<Vec<_>>(), [Level::Should, Level::Must]);
        assert!(f[0].text.contains("never closed"), "{}", f[0]);
        assert!(f[1].text.contains("tagged BYE"), "{}", f[1]);
        let (_, _, f, _, _) = group(&mut c, b"* BYE bye\r\na2 ok done\r\n", false);
        assert!(f.is_empty());
    }

    #[test]
    fn parses_message_numbers_that_must_exist() {
        let mut c = greeted();
        let (_, _, f, _, _) = group(&mut c, b"* 2 EXISTS\r\na OK\r\n", false);
        assert!(f.is_empty());
        let (_, _, f, _, _) = group(&mut c, b"* 2 EXPUNGE\r\n* 1 EXPUNGE\r\n* 0 RECENT\r\nb OK\r\n", false);
        assert!(f.is_empty(), "{f:?}");
        let (_, _, f, _, _) = group(&mut c, b"* 2 EXISTS\r\nc OK\r\n* 1 EXPUNGE\r\n* 2 EXPUNGE\r\nd OK\r\n", false);
        assert!(f.is_empty());
        let (_, _, f, _, _) = group(&mut c, b"* 1 EXPUNGE\r\n* 2 EXPUNGE\r\nd OK\r\n", false);
        assert_eq!(f.len(), 1);
        assert!(f[0].text.contains("names message 2, but the mailbox has 1"), "{}", f[0]);
        let (_, _, f, _, _) = group(&mut c, b"* 2 FETCH (FLAGS ())\r\ne OK\r\n", false);
        assert!(f[0].text.contains("message 2, but the mailbox has 1"), "{f:?}");
    }

    #[test]
    fn parses_an_untagged_bad_answering_a_line_without_a_tag() {
        let mut c = greeted();
        c.peer_sent(b"(((\r\n");
        let (g, _, _, _, _) = group(&mut c, b"* BAD what?\r\n", false);
        assert_eq!((g.end, g.pending_tags.len()), (End::UntaggedBad, 0));
        c.peer_sent(b"a1 NOOP\r\n");
        assert!(matches!(c.decode(b"* BAD [ALERT] hm\r\n", false).unwrap(), Frame::Incomplete));
        let (g, _, _, _, _) = group(&mut c, b"* BAD [ALERT] hm\r\na1 OK\r\n", false);
        assert_eq!(g.end, End::Tagged);
    }

    #[test]
    fn parses_peer_tags_through_literals() {
        let mut p = Peer::default();
        p.feed(b"a1 LOGIN {3}\r\n");
        assert_eq!(p.tags(), ["a1"]);
        p.feed(b"bob {6+}\r\nhun");
        p.feed(b"gry\r\na2 SELECT INBOX\r\nga");
        assert_eq!(p.tags(), ["a1", "a2"]);
        p.feed(b"rbage\r\n\r\n");
        assert_eq!(p.pending.len(), 4);
        assert!(!p.pending[2].well_formed && !p.pending[3].well_formed);
        p.answered(Some("garbage"));
        assert_eq!(p.tags(), ["a1", "a2"]);
        p.answered(Some("a2"));
        assert_eq!(p.tags(), ["a1"]);
        // A refused synchronizing literal is never sent: the next line is a new command.
        let mut p = Peer::default();
        p.feed(b"a3 APPEND nosuch {5}\r\n");
        p.answered(Some("a3"));
        p.feed(b"a4 NOOP\r\n");
        assert_eq!(p.tags(), ["a4"]);
    }

    #[test]
    fn round_trip_commands_frame_with_their_literals() {
        let mut c = CommandCodec;
        let buf = b"a1 LOGIN {3+}\r\nbob \"hungry\"\r\na2 NOOP\r\n";
        let Frame::Message(m, used) = c.decode(buf, false).unwrap() else {
            panic!()
        };
        assert_eq!((m.text.as_str(), used), ("a1 LOGIN {3+}bob \"hungry\"", 29));
        let cmd = m.detail.unwrap();
        assert_eq!(cmd.downcast_ref::<Command>().unwrap().tag.as_deref(), Some("a1"));
        assert!(matches!(c.decode(b"a3 APPEND x {5}\r\nab", false).unwrap(), Frame::Incomplete));
        let Frame::Message(m, _) = c.decode(b"a3 NOO", true).unwrap() else {
            panic!()
        };
        assert_eq!(m.summary, "a3 NOO (no line ending)");
    }

    #[test]
    fn parses_the_tagged_ok_to_starttls_as_the_start_of_tls_and_nothing_else() {
        let starts = |c: &mut ResponseCodec, r: &[u8]| match c.decode(r, false).unwrap() {
            Frame::Message(m, _) => m.detail.as_ref().unwrap().downcast_ref::<Group>().unwrap().starts_tls,
            Frame::Incomplete => panic!("incomplete"),
        };
        let mut c = ResponseCodec::default();
        assert!(!starts(&mut c, b"* OK ready\r\n"));
        c.peer_sent(b"a1 CAPABILITY\r\na2 STARTTLS\r\n");
        assert!(!starts(&mut c, b"* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n"));
        assert!(starts(&mut c, b"a2 OK Begin TLS negotiation now\r\n"));
        c.peer_sent(b"a3 starttls\r\n");
        assert!(!starts(&mut c, b"a3 NO not now\r\n"));
        // After STARTTLS no greeting comes: the first response is a reply.
        let mut late = ResponseCodec::default();
        late.joined_late();
        late.peer_sent(b"b1 CAPABILITY\r\n");
        let Frame::Message(m, _) = late.decode(b"* CAPABILITY IMAP4rev1\r\nb1 OK done\r\n", false).unwrap() else {
            panic!("incomplete")
        };
        assert!(m.findings.is_empty() && m.summary.contains("b1 OK"), "{m:?}");
    }
}
