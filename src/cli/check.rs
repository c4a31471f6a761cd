//! `wirecheck check`: a capture judged by each protocol's passive rules, by a suite's cases
//! (its server side replayed to them), or against a stored transcript.

use std::path::PathBuf;
use std::sync::Arc;

use super::error::UsageError;
use super::load;
use crate::capture::check::Side;
use crate::capture::replay::{self, Replay};
use crate::capture::{self, Capture};
use crate::report::{Console, Fanout, Json};
use crate::run::{self, Reporter, RunOptions, TargetSpec};
use crate::suite::{self, Suite};

/// Arguments of `wirecheck check`, as given.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The capture file (pcap or pcapng).
    pub capture: PathBuf,
    /// Frame conversations on port N with protocol PROTO (repeatable), e.g. 8888=http.
    #[arg(long = "port", value_name = "N=PROTO")]
    pub ports: Vec<String>,
    /// Decrypt TLS with this key log (SSLKEYLOGFILE format), besides the secrets the capture
    /// itself holds (pcapng Decryption Secrets Blocks).
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<PathBuf>,
    /// Check the capture against this suite's cases instead of the passive rules.
    #[arg(long)]
    pub suite: Option<String>,
    /// With --suite: only this case (id or glob).
    #[arg(long, requires = "suite")]
    pub case: Option<String>,
    /// Whose messages the passive rules judge.
    #[arg(long, value_enum, default_value = "server")]
    pub side: Side,
    /// Compare the decoded transcript with this file (as `wirecheck decode` prints it).
    #[arg(long, value_name = "FILE", conflicts_with = "suite")]
    pub snapshot: Option<PathBuf>,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

/// A check every option of which has been checked; the capture is decoded when it runs.
#[derive(Debug)]
pub struct CheckConfig {
    /// The capture file.
    pub capture: PathBuf,
    /// How to frame it (`--port`).
    pub capture_options: capture::Options,
    /// `--format json`.
    pub json: bool,
    /// What the capture is checked against.
    pub against: Against,
}

/// What `check` judges a capture by.
#[derive(Debug)]
pub enum Against {
    /// The protocols' passive rules, for one side's messages.
    Rules(Side),
    /// A server suite's cases, the capture replaying the server.
    Suite {
        /// The suite (server role).
        suite: Arc<Suite>,
        /// `--case`, as a glob.
        case_globs: Vec<glob::Pattern>,
        /// The server's port, when `--port` names one.
        server_port: Option<u16>,
    },
    /// A transcript as `wirecheck decode` prints it.
    Snapshot {
        /// The file.
        path: PathBuf,
        /// Its text.
        text: String,
    },
}

impl CheckArgs {
    /// Checks every option and loads what they name (suite, snapshot); the capture waits.
    pub fn resolve(self) -> Result<CheckConfig, UsageError> {
        let capture_options = load::capture_options(&self.ports, self.keylog.as_deref())?;
        let against = match (self.suite, self.snapshot) {
            (Some(name), _) => {
                // One name is one file: an empty list cannot happen, and would mean no case.
                let suite = load::suites(std::slice::from_ref(&name))?
                    .pop()
                    .ok_or(UsageError::NoCaseMatches { suite: name })?;
                if suite.role == suite::Role::Client {
                    return Err(UsageError::ClientSuite { suite: suite.name.clone() });
                }
                let case_globs = match &self.case {
                    Some(c) => vec![glob::Pattern::new(c).map_err(|source| UsageError::CaseGlob { given: c.clone(), source })?],
                    None => Vec::new(),
                };
                let selection = RunOptions {
                    case_globs: case_globs.clone(),
                    ..RunOptions::default()
                };
                let chosen: Vec<_> = suite.cases.iter().filter(|c| run::selected(&selection, &suite, c)).collect();
                if chosen.is_empty() {
                    return Err(UsageError::NoCaseMatches { suite: suite.name.clone() });
                }
                // A case where the target also connects to the harness (a proxy to its origin) needs the
                // target's other side too, which a replay of one port cannot play.
                if let Some(c) = chosen
                    .iter()
                    .find(|c| suite::any_step(&c.steps, &|k| matches!(k, suite::StepKind::Listen { .. })))
                {
                    return Err(UsageError::CaseListens {
                        suite: suite.name.clone(),
                        case: c.id.clone(),
                    });
                }
                let server_port = capture_options.ports.first().map(|(n, _)| *n);
                Against::Suite {
                    suite,
                    case_globs,
                    server_port,
                }
            }
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) => Against::Snapshot { path, text },
                Err(source) => return Err(UsageError::Snapshot { path, source }),
            },
            (None, None) => Against::Rules(self.side),
        };
        Ok(CheckConfig {
            capture: self.capture,
            capture_options,
            json: self.format == "json",
            against,
        })
    }
}

/// `wirecheck check`: exit 0 clean, 1 a rule, expectation or snapshot failed, 2 a usage error or
/// a file that is no capture, 4 clean as far as a damaged file could be read.
pub async fn check(args: CheckArgs) -> i32 {
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => return e.report(),
    };
    let cap = match load::capture(&config.capture, &config.capture_options) {
        Ok(c) => c,
        Err(e) => return e.report(),
    };
    let code = match &config.against {
        Against::Rules(side) => check_rules(&config, *side, &cap),
        Against::Suite {
            suite,
            case_globs,
            server_port,
        } => match check_against_suite(&config, suite, case_globs, *server_port, &cap).await {
            Ok(code) => code,
            Err(e) => e.report(),
        },
        Against::Snapshot { path, text } => check_snapshot(path, text, &cap),
    };
    // Only what the file held up to its damage was judged.
    load::damage_status(&config.capture, &cap, code)
}

/// The passive rules: each conversation's violations, and how many broke a MUST.
fn check_rules(config: &CheckConfig, side: Side, cap: &Capture) -> i32 {
    let checked = capture::check::check(cap, side);
    let failed = checked.iter().filter(|c| c.failed()).count();
    if config.json {
        let damage = cap.damage.as_ref().map(ToString::to_string);
        let doc = serde_json::json!({"capture": config.capture, "conversations": checked, "failed": failed, "damage": damage});
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        use anstyle::AnsiColor;
        for c in &checked {
            let (word, style) = match (c.failed(), c.violations.is_empty()) {
                (true, _) => ("FAIL", AnsiColor::Red.on_default().bold()),
                (false, true) => ("ok  ", AnsiColor::Green.on_default().bold()),
                (false, false) => ("warn", AnsiColor::Yellow.on_default().bold()),
            };
            // anstream drops the colour for NO_COLOR and when stdout is not a terminal.
            anstream::println!("{style}{word}{style:#}  {} ({} messages)", c.conversation, c.messages);
            for v in &c.violations {
                let level = if v.level == crate::proto::Level::Must { "MUST" } else { "SHOULD" };
                println!("      {level} {}: {}", v.rule, v.text);
            }
        }
        println!(
            "wirecheck check: {} conversation(s), {failed} breaking a MUST ({} packets)",
            checked.len(),
            cap.packets
        );
    }
    i32::from(failed > 0)
}

/// `check --suite`: the capture's server side is replayed to the suite's cases (see capture::replay).
async fn check_against_suite(
    config: &CheckConfig,
    suite: &Arc<Suite>,
    case_globs: &[glob::Pattern],
    server_port: Option<u16>,
    cap: &Capture,
) -> Result<i32, UsageError> {
    let convs = replay::pick(&cap.conversations, suite.transport, server_port);
    if convs.is_empty() {
        return Err(UsageError::NothingToReplay {
            capture: config.capture.clone(),
            protocol: suite.protocol.clone(),
        });
    }
    let n = convs.len();
    let server = convs[0].server;
    let replay = Replay::start(convs).await.map_err(UsageError::Replay)?;
    let opts = RunOptions {
        target: TargetSpec::Addr(replay.addr),
        // Conversations are handed out in order: cases must open them in the order they were captured.
        jobs: Some(1),
        case_globs: case_globs.to_vec(),
        ..RunOptions::default()
    };
    eprintln!("wirecheck check: replaying {n} conversation(s) of {server} to {}", suite.name);
    let mut reporters: Vec<Box<dyn Reporter>> = Vec::new();
    if config.json {
        reporters.push(Box::new(Json::new("-".into())));
    } else {
        reporters.push(Box::new(Console::new(false)));
    }
    let mut fan = Fanout(reporters);
    let summary = run::run(std::slice::from_ref(suite), &opts, &mut fan).await;
    if let Err(e) = fan.finish(&summary) {
        eprintln!("error: cannot write a report: {e}");
        return Ok(2);
    }
    let extra = *replay.extra.lock().unwrap_or_else(|e| e.into_inner());
    if extra > 0 {
        eprintln!("note: the case(s) opened {extra} connection(s) more than the capture holds; they got no answer");
    }
    Ok(summary.exit_code())
}

/// `check --snapshot`: the decoded transcript against the stored one, a diff when they differ.
fn check_snapshot(path: &std::path::Path, want: &str, cap: &Capture) -> i32 {
    let got = cap.text();
    if got == want {
        println!("wirecheck check: the transcript matches {}", path.display());
        return 0;
    }
    println!(
        "wirecheck check: the transcript differs from {} (- snapshot, + capture):",
        path.display()
    );
    let diff = similar::TextDiff::from_lines(want, &got);
    print!("{}", diff.unified_diff().context_radius(3));
    1
}
