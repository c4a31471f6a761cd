//! Why a command line cannot run (exit status 2), one variant per cause; printed once, by
//! [`UsageError::report`], as `error: ...` (suite and assignment diagnostics first).

use std::path::PathBuf;

use crate::grade::formats::Format;
use crate::run::sandbox::SandboxError;
use crate::suite::{ResolveError, SuiteErrors};

/// The exit status of a usage, suite or capture-file error.
pub const USAGE: i32 = 2;

/// A command line that names something that does not exist, or options that do not fit.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// A suite argument names no suite.
    #[error(transparent)]
    NoSuite(#[from] ResolveError),
    /// Suite files that do not load (their diagnostics are printed first).
    #[error("the suites above have errors; fix them and run again")]
    Suites(Vec<SuiteErrors>),
    /// `--target` without a port.
    #[error("--target '{given}': no port; write HOST:PORT, e.g. 127.0.0.1:12000")]
    TargetNoPort {
        /// What was given.
        given: String,
    },
    /// `--target` with a port that is not one.
    #[error("--target '{given}': '{port}' is not a port (1 to 65535); write HOST:PORT, e.g. 127.0.0.1:12000")]
    TargetBadPort {
        /// What was given.
        given: String,
        /// The part after the last ':'.
        port: String,
    },
    /// `--target` with a host name that does not resolve.
    #[error("--target '{given}': cannot resolve host '{host}': {source}")]
    TargetUnresolved {
        /// What was given.
        given: String,
        /// The host part.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// `--target` with a host name that resolves to no address.
    #[error("--target '{given}': host '{host}' has no address")]
    TargetNoAddress {
        /// What was given.
        given: String,
        /// The host part.
        host: String,
    },
    /// A `--case` glob that does not parse.
    #[error("--case '{given}': {source}")]
    CaseGlob {
        /// What was given.
        given: String,
        /// Why it is not a glob.
        #[source]
        source: glob::PatternError,
    },
    /// `--timeout-scale` out of range.
    #[error("--timeout-scale must be between 0 and 100")]
    TimeoutScale,
    /// `--limit`, `--user` or `--cwd` cannot be applied.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The `--tag`/`--case` filters leave no case.
    #[error("no case matches the --tag/--case filters (see `wirecheck list`)")]
    NothingSelected,
    /// `grade --submissions` on a folder with nothing in it.
    #[error("no submissions in {}: put each one there as a file or a folder", dir.display())]
    NoSubmissions {
        /// The folder.
        dir: PathBuf,
    },
    /// `run --failed` with no earlier run recorded from this folder against this target.
    #[error("--failed: no earlier run from this folder against this target is recorded; run once without --failed")]
    NoLastRun,
    /// `run --failed` when the last run left nothing failing.
    #[error("--failed: every case passed the last time it ran from this folder against this target; nothing to re-run")]
    NothingFailed,
    /// A `serve --option` that is not KEY=VALUE.
    #[error("--option '{0}' is not KEY=VALUE")]
    ServerOption(String),
    /// `--port N=PROTO` arguments that do not parse.
    #[error("{0}")]
    CapturePorts(String),
    /// `--keylog FILE` that cannot be read, or a line of it that is not a key log's.
    #[error("--keylog {}: {reason}", path.display())]
    KeyLog {
        /// The key log file.
        path: PathBuf,
        /// Why (with the line number when a line is bad).
        reason: String,
    },
    /// A capture file that cannot be read or decoded.
    #[error("{}: {source}", path.display())]
    CaptureFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::capture::FileError,
    },
    /// `check --suite` with a suite that tests a client.
    #[error("the suite '{suite}' tests a client; `check --suite` replays a captured server (check a client's capture with --side client)")]
    ClientSuite {
        /// The suite.
        suite: String,
    },
    /// `check --suite --case` matching no case of the suite.
    #[error("no case of '{suite}' matches --case (see `wirecheck list {suite}`)")]
    NoCaseMatches {
        /// The suite.
        suite: String,
    },
    /// `check --suite` picking a case in which the target connects back to the harness.
    #[error(
        "{suite}::{case} has the target connect back to the harness (listen); such cases cannot be replayed from a capture, run them live"
    )]
    CaseListens {
        /// The suite.
        suite: String,
        /// The case.
        case: String,
    },
    /// `check --suite` on a capture with no conversation of the suite's transport.
    #[error("{}: no conversation to replay (give the server's port with --port N={protocol})", capture.display())]
    NothingToReplay {
        /// The capture file.
        capture: PathBuf,
        /// The suite's protocol.
        protocol: String,
    },
    /// The replay's listener could not be opened.
    #[error("cannot start the replay: {0}")]
    Replay(#[source] std::io::Error),
    /// `check --snapshot` with a file that cannot be read.
    #[error("{}: {source} (make a snapshot with `wirecheck decode CAPTURE > {}`)", path.display(), path.display())]
    Snapshot {
        /// The snapshot file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `grade --jobs 0`.
    #[error("--jobs must be at least 1")]
    NoJobs,
    /// An assignment file that does not load (its diagnostics are printed first).
    #[error("the assignment above has errors; fix them and run again")]
    Assignment(SuiteErrors),
    /// `grade` without a submission.
    #[error("give --submission PATH or --submissions DIR")]
    NoSubmissionGiven,
    /// `grade --submission` naming nothing.
    #[error("no submission at {}", .0.display())]
    NoSubmission(PathBuf),
    /// `grade --shard` with one `--submission`.
    #[error("--shard slices --submissions; with one --submission there is nothing to slice")]
    ShardOfOne,
    /// A report that would overwrite what wirecheck was given to read.
    #[error(
        "refusing to write the {format:?} report to {}: it is inside {}, which wirecheck was given to read",
        path.display(),
        input.display()
    )]
    ReportOverInput {
        /// The report's format.
        format: Format,
        /// Where it would go.
        path: PathBuf,
        /// The input it would land in.
        input: PathBuf,
    },
    /// `grade --submissions` with a report path (each submission gets its own folder).
    #[error("with --submissions, give report formats without a path ('{0:?}' has one): each submission's reports go to --out/SUBMISSION/")]
    ReportPathForMany(Format),
    /// `grade --submissions DIR` that cannot be listed.
    #[error("cannot list {}: {source}", dir.display())]
    Submissions {
        /// The folder.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `grade --out` inside the submissions folder.
    #[error(
        "--out {} is inside the submissions folder {}; reports would be graded as submissions",
        out.display(),
        dir.display()
    )]
    OutInsideSubmissions {
        /// `--out`.
        out: PathBuf,
        /// `--submissions`.
        dir: PathBuf,
    },
    /// A `merge` input that is not a roster.
    #[error("{}: {reason}", path.display())]
    Roster {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        reason: String,
    },
    /// `merge` writing over one of its inputs.
    #[error("merging into {} would overwrite an input roster; choose another --out", .0.display())]
    MergeOverInput(PathBuf),
    /// Rosters that cannot be combined.
    #[error("{0}")]
    Merge(String),
    /// TLS options that cannot be used (a CA file, a suite without TCP, a key log file).
    #[error("{0}")]
    Tls(String),
}

impl UsageError {
    /// Prints the error (after the diagnostics it stands for) to stderr; the exit status.
    pub fn report(&self) -> i32 {
        match self {
            UsageError::Suites(all) => all.iter().for_each(|e| eprint!("{e}")),
            UsageError::Assignment(e) => eprint!("{e}"),
            // Nothing to re-run is good news, not a usage error.
            UsageError::NothingFailed => {
                eprintln!("wirecheck: {self}");
                return 0;
            }
            _ => {}
        }
        eprintln!("error: {self}");
        USAGE
    }
}
