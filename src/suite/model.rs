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
    /// Actors the cases can start (`actors:`), in file order.
    pub actors: Vec<ActorDecl>,
    /// Whether the cases of a program under test (`--exec`) may move to instances of their own
    /// once the shared one hangs (`per-case`, the default), or must all share one (`shared`: the
    /// program keeps files or state the cases share).
    pub instances: Instances,
    /// The cases, in file order.
    pub cases: Vec<Case>,
    /// The file the suite came from.
    pub source: Arc<SourceFile>,
}

/// How a suite's cases share the program under test (`instances:`). Either way one instance
/// serves the cases one at a time while it answers (starting a program per case would cost more
/// than the cases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Instances {
    /// Once a case waits out a timeout in silence, the later cases each start their own
    /// instance on its own port and run side by side: a program that hangs costs a few rounds
    /// of timeouts, not one per case.
    PerCase,
    /// Every case against the one instance (restarted when it dies), one at a time.
    Shared,
}

/// An actor a suite declares: a peer the harness plays by rules (`actors:`).
#[derive(Debug)]
pub struct ActorDecl {
    /// Its name (`${root.port}`, `saw: { actor: root }`).
    pub name: String,
    /// The loopback address it listens on (name servers: 127.0.0.2 and up).
    pub host: std::net::IpAddr,
    /// The protocol whose actor it is.
    pub protocol: String,
    /// The parsed declaration, ready to start.
    pub spec: Arc<dyn crate::proto::actor::ActorSpec>,
    /// Where it is declared.
    pub loc: Loc,
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
    /// The rule this step checks, quoted from its RFC, when narrower than the case's `rfc:`: a
    /// failure here names it on the `checks:` line.
    pub rule: Option<Arc<String>>,
    /// `resend: 1s` (UDP expects): while waiting, send the connection's last datagram again at
    /// this interval, as a stub resolver does (RFC 1035 §4.2.1).
    pub resend: Option<Duration>,
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
        /// The local address to connect from (a loopback address of its own: a second peer as
        /// the target sees it), instead of the system's choice.
        from: Option<Template>,
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
        /// Command-line arguments for this case, appended to the command (or where it says `{args}`).
        args: Vec<StartArg>,
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
    /// TLS starts on the connection now (after the protocol's STARTTLS exchange the case has
    /// scripted): the harness is the client on a connection it opened, the server on one it
    /// accepted; the dialogue goes on over TLS.
    StartTls,
    /// The connection carries on in another protocol (named) from the byte after the message
    /// that handed it over (HTTP/1.1's 101 to `Upgrade: h2c`): later steps on it use that
    /// protocol's vocabulary and codecs.
    Switch(String),
    /// Branches that run at the same time.
    Parallel(Vec<Vec<Step>>),
    /// Steps run several times, with a counter variable.
    Repeat(Repeat),
    /// Check the target's stdout.
    ExpectOutput(OutputExpect),
    /// Wait for the target to exit and check its status.
    ExpectExit(ExitExpect),
    /// Start the suite's actors (all, or the named ones), with faults switched on per actor.
    Serve(Serve),
    /// Check what an actor saw: how many of its incoming messages match.
    Saw(Saw),
    /// Check a file in the case's folder: one the program saved, or one an actor was handed.
    ExpectFile(FileExpect),
}

/// Whether `rel` names something inside a case's folder: relative, without `..`.
pub fn in_case_folder(rel: &str) -> bool {
    use std::path::{Component, Path};
    !rel.is_empty() && Path::new(rel).components().all(|c| matches!(c, Component::Normal(_)))
}

/// One command-line argument of a `start` step.
#[derive(Debug)]
pub enum StartArg {
    /// A word, with `${var}`s.
    Word(crate::syntax::Template),
    /// `{ out: NAME }`: the path of NAME in the case's folder (where the program saves a file).
    Out(String),
    /// `{ file: PATH }`: a file of the suite's, by its absolute path (checked when the suite loads).
    File(std::path::PathBuf),
}

/// An `expect_file:` step.
#[derive(Debug)]
pub struct FileExpect {
    /// The file, relative to the case's folder (`got.bin`, `srv/up.bin` for actor `srv`).
    pub path: String,
    /// What it must hold.
    pub want: FileWant,
}

/// What an `expect_file` wants.
#[derive(Debug)]
pub enum FileWant {
    /// Exactly the bytes of a suite fixture (`file:`).
    Same(crate::syntax::Fixture),
    /// Bytes whose SHA-256 is this (lowercase hex).
    Sha256(String),
    /// No such file.
    Absent,
}

/// A `serve:` step.
#[derive(Debug)]
pub struct Serve {
    /// The actors to start, by name, in the suite's order.
    pub actors: Vec<String>,
    /// Faults switched on, per actor.
    pub faults: Vec<(String, Vec<String>)>,
    /// The case's own options, per actor (`with:`), as the actor's protocol parsed them.
    pub options: Vec<(String, crate::proto::actor::ActorOptions)>,
}

/// A `saw:` step.
#[derive(Debug)]
pub struct Saw {
    /// The actor whose record is checked.
    pub actor: String,
    /// The protocol's matcher for one message.
    pub spec: Box<dyn crate::proto::StructuredExpect>,
    /// At least this many messages match.
    pub min: u32,
    /// At most this many (none: no upper bound).
    pub max: Option<u32>,
    /// Only messages that came over this transport.
    pub over: Option<Transport>,
    /// Only messages that came to this address of the actor's (one peer of a swarm).
    pub host: Option<std::net::IpAddr>,
}

/// The first of `steps` (nested ones included, in order) for which `pred` holds.
pub fn first_step<'a>(steps: &'a [Step], pred: &dyn Fn(&StepKind) -> bool) -> Option<&'a Step> {
    steps.iter().find_map(|s| {
        if pred(&s.kind) {
            return Some(s);
        }
        match &s.kind {
            StepKind::Parallel(branches) => branches.iter().find_map(|b| first_step(b, pred)),
            StepKind::Repeat(r) => first_step(&r.steps, pred),
            _ => None,
        }
    })
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
    /// Bytes as given: from hex digits, or a file's (`file:`, read when the suite loads).
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
    /// Each of these must match some message's text, in any order (a listing's names).
    pub some: Vec<Template>,
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
            StepKind::StartTls => "starttls",
            StepKind::Switch(_) => "switch",
            StepKind::Parallel(_) => "parallel",
            StepKind::Repeat(_) => "repeat",
            StepKind::ExpectOutput(_) => "expect_output",
            StepKind::ExpectExit(_) => "expect_exit",
            StepKind::ExpectFile(_) => "expect_file",
            StepKind::Serve(_) => "serve",
            StepKind::Saw(_) => "saw",
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
