//! The structured step vocabulary: what a protocol's `steps.rs` implements so suites can write
//! `send:`/`expect:` as mappings (an HTTP request, an SMTP reply code) instead of raw lines.
//!
//! This is the only part of `proto` that reads YAML, and it does so through `syntax`, never
//! through the suite model: the loader calls down into it, nothing here calls up.

use std::net::SocketAddr;

use regex::Regex;

use super::codec::{Message, Transport};
use crate::syntax::{LoadCx, Loc, Node, Template, Vars};

/// A protocol's structured `send:`/`expect:` keys and their parsers: each `steps.rs` declares one.
pub struct Steps {
    /// Keys of a structured `send:` mapping (an HTTP request: method, target, headers ...).
    pub send_keys: &'static [&'static str],
    /// Keys of a structured `expect:` mapping (status, headers, body ...).
    pub expect_keys: &'static [&'static str],
    /// Parses a structured `send:` mapping (called only when it has one of `send_keys`).
    pub parse_send: fn(&Node, &mut LoadCx) -> Option<Box<dyn StructuredSend>>,
    /// Parses a structured `expect:` mapping (called only when it has one of `expect_keys`).
    pub parse_expect: fn(&Node, &mut LoadCx) -> Option<Box<dyn StructuredExpect>>,
}

impl Steps {
    /// No structured vocabulary: such a protocol's steps use the generic keywords only.
    pub const NONE: Steps = Steps {
        send_keys: &[],
        expect_keys: &[],
        parse_send: |n, cx| {
            cx.err(n, "this protocol has no structured send");
            None
        },
        parse_expect: |n, cx| {
            cx.err(n, "this protocol has no structured expect");
            None
        },
    };
}

/// What structured steps see at run time.
pub struct RenderCx<'a> {
    /// Variables of the case.
    pub vars: &'a Vars,
    /// The suite file's folder: file references are relative to it.
    pub base_dir: &'a std::path::Path,
    /// The transport of the connection the step uses (DNS adds a length prefix on TCP).
    pub transport: Transport,
    /// The harness's own address on that connection, when it has one (where a DHT lab's
    /// answers are to go: its messages name their origin).
    pub local: Option<SocketAddr>,
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
    /// The key in the suite whose check failed (a header's own line), when narrower than the step.
    pub at: Option<Loc>,
}

impl Mismatch {
    /// Points the mismatch at the suite key whose check failed.
    pub fn at(mut self, loc: Loc) -> Mismatch {
        self.at = Some(loc);
        self
    }
}

/// A protocol message built from a suite mapping.
pub trait StructuredSend: std::fmt::Debug + Send + Sync {
    /// The bytes to send.
    fn render(&self, cx: &RenderCx) -> Result<Vec<u8>, String>;
    /// Templates it uses (the linter checks their variables).
    fn templates(&self) -> Vec<&Template>;
    /// A flood (HTTP/2's `times:`): the peer may lawfully close the connection before it has
    /// read it all (RFC 9113 §10.5), so a connection that goes while it is written is not a
    /// failure of the step; the next expectation reads what the peer said.
    fn flood(&self) -> bool {
        false
    }
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
    /// What to tell when connecting to `addr`, an address it captured, is refused: how the
    /// message carried it, so a mistake in writing it can be told from a server that stopped.
    fn if_refused(&self, _addr: SocketAddr) -> Option<String> {
        None
    }
    /// Whether `msg` is one the peer may send at any time and this expectation passes over
    /// (HTTP/2's SETTINGS, PING, WINDOW_UPDATE): the step reads the next message instead.
    fn skips(&self, _msg: &Message) -> bool {
        false
    }
    /// Whether the connection closing meets this expectation (an HTTP/2 connection error may
    /// be reported by closing, RFC 9113 §5.4.1).
    fn accepts_close(&self) -> bool {
        false
    }
    /// Whether this expectation is of the peer ending the connection or a stream (an error, a
    /// close): a send just before it that the peer cut short by going away is what the case
    /// looks for, not a failure (a peer may close at the first bad byte, before the rest is sent).
    fn expects_end(&self) -> bool {
        self.accepts_close()
    }
    /// An expectation met by nothing arriving (a request the peer must refuse: no answer is a
    /// refusal): it holds once this long passes, or the connection closes, with no message it
    /// does not skip; a message it does not skip is judged by `check`.
    fn holds_after(&self) -> Option<std::time::Duration> {
        None
    }
    /// For an answer that follows what the peer has learnt so far (the nodes a DHT node knows
    /// while it bootstraps): how long to wait before asking again when it does not hold yet. The
    /// step re-sends its connection's last datagram and reads again, until its timeout.
    fn retry(&self) -> Option<std::time::Duration> {
        None
    }
    /// Whether, in a `saw:` step, this expectation judges everything an actor received at once
    /// ([`StructuredExpect::judge`]) instead of counting the messages that match.
    fn judges(&self) -> bool {
        false
    }
    /// For a `saw:` step: a verdict over every message an actor received, in arrival order
    /// (which piece a client asked a swarm for first, whom it unchoked when). Ok holds a line
    /// on what was seen; None when this expectation only counts.
    fn judge(&self, _received: &[Received<'_>]) -> Option<Result<String, Mismatch>> {
        None
    }
    /// As [`StructuredExpect::judge`], with the record the actor kept of the case, if it keeps
    /// one (`ActorHandle::with_record`).
    fn judge_record(
        &self,
        received: &[Received<'_>],
        record: Option<&(dyn std::any::Any + Send + Sync)>,
    ) -> Option<Result<String, Mismatch>> {
        let _ = record;
        self.judge(received)
    }
}

/// One message an actor received, as a `saw:` judgement reads it.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The conversation it came on (one per TCP connection, or per UDP peer).
    pub conv: usize,
    /// The actor's own address on that conversation (each peer of a swarm has its own).
    pub local: SocketAddr,
    /// When it arrived, from the actor's start.
    pub at: std::time::Duration,
    /// The message, framed by the actor's protocol.
    pub msg: &'a Message,
}

/// Parses `capture: { var: regex-with-a-group }`.
pub fn parse_captures(c: &Node, cx: &mut LoadCx, example: &str) -> Option<Vec<(String, Regex)>> {
    let pairs = cx.mapping(c, "capture must be a mapping", format!("e.g. capture: {{ {example} }}"))?;
    let mut out = Vec::new();
    for (k, v) in pairs {
        let name = cx.string(k, "a variable name")?;
        match v.as_str().map(Regex::new) {
            Some(Ok(re)) if re.captures_len() >= 2 => out.push((name, re)),
            _ => {
                cx.err_help(
                    v,
                    "a capture needs a valid regex with a group",
                    "put what to keep in parentheses: '(\\d+) octets'",
                );
                return None;
            }
        }
    }
    Some(out)
}

/// Applies captures to a message's text.
pub fn apply_captures(captures: &[(String, Regex)], msg: &Message, expected: String) -> Result<Vec<(String, String)>, Mismatch> {
    let mut out = Vec::new();
    for (name, re) in captures {
        match re.captures(&msg.text).and_then(|c| c.get(1)) {
            Some(v) => out.push((name.clone(), v.as_str().to_string())),
            None => {
                return Err(mismatch(
                    format!("nothing to capture into '{name}' with /{}/", re.as_str()),
                    expected,
                    msg,
                ))
            }
        }
    }
    Ok(out)
}

/// A mismatch whose "got" is the message as the transcript shows it.
pub fn mismatch(message: impl Into<String>, expected: impl Into<String>, got: &Message) -> Mismatch {
    Mismatch {
        message: message.into(),
        expected: expected.into(),
        got: got.summary.clone(),
        at: None,
    }
}

/// Parsing one step's mapping the way the suite loader does, for the protocols' own unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use super::{Steps, StructuredExpect, StructuredSend};
    use crate::syntax::{yaml, LoadCx, Node, SourceFile, SuiteErrors};

    fn parse<T>(text: &str, f: impl FnOnce(&Node, &mut LoadCx) -> Option<T>) -> Result<T, String> {
        let source = Arc::new(SourceFile {
            path: "suites/t.yaml".into(),
            text: text.to_string(),
        });
        let node = yaml::parse(text).map_err(|(_, e)| e)?;
        let mut cx = LoadCx::new(source);
        let out = f(&node, &mut cx);
        match out {
            Some(v) if cx.error_count() == 0 => Ok(v),
            _ => Err(SuiteErrors(cx.into_errors()).to_string()),
        }
    }

    /// A structured `send:` written as YAML.
    pub fn send(steps: &Steps, text: &str) -> Result<Box<dyn StructuredSend>, String> {
        parse(text, |n, cx| (steps.parse_send)(n, cx))
    }

    /// A structured `expect:` written as YAML.
    pub fn expect(steps: &Steps, text: &str) -> Result<Box<dyn StructuredExpect>, String> {
        parse(text, |n, cx| (steps.parse_expect)(n, cx))
    }
}
