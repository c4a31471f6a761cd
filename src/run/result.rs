//! What a run produces: each case's result, the run's totals, and the reporters they go to
//! (shared by the runner and `--capture`, which adds to a result before it is reported).

use std::sync::Arc;
use std::time::Duration;

use super::case::Failure;
use super::target::TargetError;
use crate::dialogue::Dialogue;
use crate::proto;
use crate::suite::{Case, Suite};

/// A case's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every step held.
    Pass,
    /// A step did not hold.
    Fail,
    /// The case could not run (the target could not be started or reached).
    Error,
    /// The program does not offer what the case needs (a `premise:` step's message arrived but did
    /// not match): not a failure, and its points leave the total.
    #[serde(rename = "n/a")]
    NotApplicable,
}

impl Verdict {
    /// The word reports use: `pass`, `fail`, `error`, `n/a`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
            Verdict::NotApplicable => "n/a",
        }
    }
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The suite.
    pub suite: Arc<Suite>,
    /// Index of the case in the suite.
    pub index: usize,
    /// The verdict.
    pub verdict: Verdict,
    /// Points earned.
    pub points: f64,
    /// Wall time.
    pub duration: Duration,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// Everything sent and received.
    pub dialogue: Dialogue,
    /// The last of the target's stderr, for failures of programs we started.
    pub stderr_tail: Option<String>,
    /// SHOULD-level findings: reported, worth no points.
    pub warnings: Vec<String>,
}

impl CaseResult {
    /// The case.
    pub fn case(&self) -> &Case {
        &self.suite.cases[self.index]
    }

    /// Why the case does not apply: the premise that did not hold (`n/a` results only).
    pub fn premise(&self) -> Option<&str> {
        match self.verdict {
            Verdict::NotApplicable => self.failure.as_ref().and_then(|f| f.premise.as_deref()).map(String::as_str),
            _ => None,
        }
    }

    /// Points the case is worth in this run: none when it does not apply.
    pub fn max_points(&self) -> f64 {
        match self.verdict {
            Verdict::NotApplicable => 0.0,
            _ => self.case().points,
        }
    }

    /// `suite::case`.
    pub fn name(&self) -> String {
        format!("{}::{}", self.suite.name, self.case().id)
    }

    /// The dialogue as a transcript (with times when `times`).
    pub fn transcript(&self, times: bool) -> String {
        match proto::find(&self.suite.protocol) {
            Some(p) => self.dialogue.transcript(p, times),
            None => String::new(),
        }
    }
}

/// Totals of a run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases that could not run.
    pub errors: usize,
    /// Cases that do not apply (a premise the program does not offer); not failures.
    pub not_applicable: usize,
    /// Points earned.
    pub points: f64,
    /// Points available (cases that do not apply are left out).
    pub max_points: f64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Targets that could not be started or reached (in reports: their messages).
    #[serde(serialize_with = "messages")]
    pub target_errors: Vec<TargetError>,
}

impl Summary {
    /// Exit status per the CLI contract: 0 all passed, 1 a case failed, 3 a target failed.
    pub fn exit_code(&self) -> i32 {
        if !self.target_errors.is_empty() {
            3
        } else if self.failed > 0 || self.errors > 0 {
            1
        } else {
            0
        }
    }
}

/// Receives results as cases finish (console, JSON, JUnit ...).
pub trait Reporter: Send {
    /// The run is about to start `total` cases.
    fn start(&mut self, _total: usize) {}
    /// A case finished.
    fn case_finished(&mut self, result: &CaseResult);
    /// The run is over; write files now.
    fn finish(&mut self, summary: &Summary) -> std::io::Result<()>;
}

/// Serializes errors as their messages: reports carry the text, not the structure.
fn messages<S: serde::Serializer>(errors: &[TargetError], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(errors.iter().map(ToString::to_string))
}
