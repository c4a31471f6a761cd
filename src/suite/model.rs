//! The suite model: what a YAML suite says, with the location of every step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use crate::proto::Transport;
use crate::syntax::{Loc, SourceFile, Template};

/// Which side the harness plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The target is a server; the harness is its client.
    Server,
    /// The target is a client; the harness is its server.
    Client,
}

/// One loaded suite.
#[derive(Debug)]
pub struct Suite {
    /// Short name (`tcp-upper`), used in test names and `--case` globs.
    pub name: String,
    /// Human title.
    pub title: String,
    /// Protocol codec name (`line`, `datagram`, ...).
    pub protocol: String,
    /// Whether the target is a server or a client.
    pub role: Role,
    /// Default transport of `connect`/`listen`.
    pub transport: Transport,
    /// Default port of a student's server.
    pub port: Option<u16>,
    /// Bundled reference implementation, if any.
    pub reference: Option<String>,
    /// Options handed to the reference implementation.
    pub reference_options: BTreeMap<String, String>,
    /// Default per-step timeout.
    pub timeout: Duration,
    /// The cases, in file order.
    pub cases: Vec<Case>,
    /// The file the suite came from.
    pub source: Arc<SourceFile>,
}

/// One test case.
#[derive(Debug)]
pub struct Case {
    /// Unique id within the suite.
    pub id: String,
    /// Human title.
    pub title: String,
    /// What the case checks (RFC section or seed slide).
    pub rfc: Option<String>,
    /// Points for grading.
    pub points: f64,
    /// Tags for `--tag`.
    pub tags: Vec<String>,
    /// Hidden from students when grading.
    pub hidden: bool,
    /// Needs its own, newly started target.
    pub fresh_server: bool,
    /// The script.
    pub steps: Vec<Step>,
    /// Where the case starts.
    pub loc: Loc,
}

/// One step with its options and location.
#[derive(Debug)]
pub struct Step {
    /// What to do.
    pub kind: StepKind,
    /// Connection to use (`on:`); default: the most recently opened one.
    pub on: Option<String>,
    /// Per-step timeout override.
    pub timeout: Option<Duration>,
    /// `when: { var: value }`: the step runs only when the variable has this value (ASCII case
    /// ignored), so a script can follow either of the legal paths a peer may take.
    pub when: Option<(String, Template)>,
    /// `premise:` (expect steps only): what the case needs of the program, in the RFC's words. A
    /// message that arrives but does not match makes the case not applicable (`n/a`) instead of
    /// failed; a timeout, a close or a MUST finding still fails it.
    pub premise: Option<Arc<String>>,
    /// Where the step's keyword is.
    pub loc: Loc,
}

/// The step vocabulary.
#[derive(Debug)]
pub enum StepKind {
    /// Open a connection to the target (or to `to`).
    Connect {
        /// Connection name.
        name: String,
        /// tcp or udp.
        transport: Transport,
        /// Address to connect to instead of the target.
        to: Option<Template>,
        /// The step passes only if the connection is refused.
        refused: bool,
        /// Protocol of this connection, if not the suite's.
        protocol: Option<String>,
    },
    /// Open a listening socket on 127.0.0.1, port 0.
    Listen {
        /// Listener name (`${name.port}`).
        name: String,
        /// tcp or udp.
        transport: Transport,
        /// Protocol of its connections, if not the suite's.
        protocol: Option<String>,
        /// Address to bind (default 127.0.0.1; any 127.x.y.z for a hierarchy of servers).
        host: Option<Template>,
        /// Port to bind (default 0: any free port).
        port: Option<Template>,
    },
    /// Accept a connection on a TCP listener.
    Accept {
        /// Listener name.
        listener: String,
        /// Name of the accepted connection.
        name: String,
        /// The step passes only if no connection arrives within its timeout.
        none: bool,
    },
    /// Start the target client (client-role suites), with `{port}` the listener's port.
    Start {
        /// Listener whose port the client is given as `{port}`.
        listener: Option<String>,
        /// The program is itself a server: give it a free port as `{listen_port}` and wait until it listens there.
        listen: Option<Transport>,
    },
    /// Write bytes.
    Send(Payload),
    /// Check what arrives.
    Expect(Expect),
    /// Receive for a fixed time and check how many messages came and what each says.
    Collect(Collect),
    /// Close our side fully.
    Close,
    /// Half-close: shutdown our write side (the peer reads EOF).
    Shutdown,
    /// Branches that run at the same time.
    Parallel(Vec<Vec<Step>>),
    /// Steps run several times, with a counter variable.
    Repeat(Repeat),
    /// Check the target's stdout.
    ExpectOutput(OutputExpect),
    /// Wait for the target to exit and check its status.
    ExpectExit(ExitExpect),
}

/// Whether `pred` holds for any of `steps`, nested ones (parallel branches, repeat bodies) included.
pub fn any_step(steps: &[Step], pred: &dyn Fn(&StepKind) -> bool) -> bool {
    steps.iter().any(|s| {
        pred(&s.kind)
            || match &s.kind {
                StepKind::Parallel(branches) => branches.iter().any(|b| any_step(b, pred)),
                StepKind::Repeat(r) => any_step(&r.steps, pred),
                _ => false,
            }
    })
}

/// A `repeat:` block.
#[derive(Debug)]
pub struct Repeat {
    /// First counter value.
    pub from: i64,
    /// Last counter value (inclusive).
    pub to: i64,
    /// Counter variable name.
    pub var: String,
    /// Run the iterations at the same time, each with its own connections.
    pub concurrent: bool,
    /// The body.
    pub steps: Vec<Step>,
}

/// Bytes to send (or expect, for the byte forms).
#[derive(Debug, Clone)]
pub enum Payload {
    /// Lines; the protocol's line ending is appended to each.
    Lines(Vec<Template>),
    /// Text with backslash escapes, sent as is.
    Raw(Template),
    /// Bytes from hex digits.
    Hex(Vec<u8>),
    /// `pattern` repeated to exactly `size` bytes.
    Fill {
        /// The repeated pattern.
        pattern: Vec<u8>,
        /// Total size in bytes.
        size: usize,
    },
    /// Pieces written separately, with pauses between them.
    Pieces(Vec<Piece>),
    /// A protocol message built from a mapping (an HTTP request).
    Structured(Arc<dyn crate::proto::StructuredSend>),
}

/// One piece of a split send.
#[derive(Debug, Clone)]
pub enum Piece {
    /// Bytes to write.
    Data(Payload),
    /// Wait before the next piece.
    Pause(Duration),
}

/// An `expect:` step.
#[derive(Debug)]
pub struct Expect {
    /// What must arrive.
    pub what: ExpectWhat,
    /// Variables taken from the received message: name and regex with one group.
    pub captures: Vec<(String, Regex)>,
    /// The message must not arrive sooner than this after the step starts.
    pub not_before: Option<Duration>,
}

/// What an `expect:` checks.
#[derive(Debug)]
pub enum ExpectWhat {
    /// Next message equals this line (without its line ending).
    Line(Template),
    /// Next messages equal these lines, one each.
    Lines(Vec<Template>),
    /// Next message's text matches (named groups become variables).
    Regex(Template),
    /// Exactly these bytes arrive next (ignoring message framing).
    Bytes(Payload),
    /// The peer closes the connection (nothing else arrives first).
    Closed,
    /// Nothing arrives, and the connection stays open, for this long.
    Silence(Duration),
    /// Like `Silence`, but a close is also right when the last message read on the connection
    /// announced it (the protocol's `announces_close`: HTTP's `Connection: close` or HTTP/1.0).
    OpenUnlessAnnounced(Duration),
    /// The next message passes the protocol's structured check (an HTTP status, headers, body).
    Structured(Box<dyn crate::proto::StructuredExpect>),
}

/// A `collect:` step.
#[derive(Debug)]
pub struct Collect {
    /// How long to receive.
    pub duration: Duration,
    /// Fewest messages that must arrive.
    pub min: usize,
    /// Most messages that may arrive.
    pub max: usize,
    /// Each message's text must match this.
    pub each: Option<Template>,
}

/// An `expect_output:` step.
#[derive(Debug)]
pub enum OutputExpect {
    /// A later line of stdout matches.
    Regex(Template),
    /// The lines matching any of these patterns match them in this order, one for one.
    Sequence(Vec<Template>),
}

/// An `expect_exit:` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitExpect {
    /// Exit with this code.
    Code(i32),
    /// Exit with any non-zero code (not killed by a signal).
    Nonzero,
}

impl StepKind {
    /// The suite keyword of this step (used in messages and the JSON report).
    pub fn keyword(&self) -> &'static str {
        match self {
            StepKind::Connect { .. } => "connect",
            StepKind::Listen { .. } => "listen",
            StepKind::Accept { .. } => "accept",
            StepKind::Start { .. } => "start",
            StepKind::Send(_) => "send",
            StepKind::Expect(_) => "expect",
            StepKind::Collect(_) => "collect",
            StepKind::Close => "close",
            StepKind::Shutdown => "shutdown",
            StepKind::Parallel(_) => "parallel",
            StepKind::Repeat(_) => "repeat",
            StepKind::ExpectOutput(_) => "expect_output",
            StepKind::ExpectExit(_) => "expect_exit",
        }
    }
}

impl Case {
    /// The premises of the case's steps (nested ones included), in file order.
    pub fn premises(&self) -> Vec<&str> {
        fn walk<'a>(steps: &'a [Step], out: &mut Vec<&'a str>) {
            for s in steps {
                if let Some(p) = &s.premise {
                    out.push(p.as_str());
                }
                match &s.kind {
                    StepKind::Parallel(branches) => branches.iter().for_each(|b| walk(b, out)),
                    StepKind::Repeat(r) => walk(&r.steps, out),
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.steps, &mut out);
        out
    }
}

impl Suite {
    /// Total points of all cases.
    pub fn max_points(&self) -> f64 {
        self.cases.iter().map(|c| c.points).sum()
    }
}
