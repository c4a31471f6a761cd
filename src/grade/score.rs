//! A graded submission: every planned case with its status and score, whatever happened (a build
//! that failed, a budget that ran out, an interrupted run all still list every case).

use std::sync::Arc;
use std::time::Duration;

use super::assignment::{Assignment, Tier, Visibility};
use crate::run::{CaseResult, Verdict};

/// A case's outcome in a grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every step held.
    Passed,
    /// A step did not hold.
    Failed,
    /// The case could not run against the program (it did not start, or could not be reached).
    Error,
    /// Failed, then passed on a re-run: its own verdict, not a pass.
    Flaky,
    /// Never ran (the build failed, the time budget ran out, grading was interrupted).
    NotRun,
    /// The program does not offer what the case needs (its premise): no points lost, and its
    /// points leave the total. Under the part's `require:` it is `Failed` instead.
    #[serde(rename = "n/a")]
    NotApplicable,
}

impl Status {
    /// Passed, or did not apply: nothing lost.
    pub fn is_ok(self) -> bool {
        matches!(self, Status::Passed | Status::NotApplicable)
    }

    /// The word reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Error => "error",
            Status::Flaky => "flaky",
            Status::NotRun => "not run",
            Status::NotApplicable => "n/a",
        }
    }
}

/// One graded case.
#[derive(Debug, Clone)]
pub struct GradedCase {
    /// `PART::CASE`, unique in the assignment.
    pub name: String,
    /// `P.K`: part and case position, 1-based (Gradescope's `number`).
    pub number: String,
    /// The suite's name.
    pub suite: String,
    /// The case id.
    pub id: String,
    /// The case's title.
    pub title: String,
    /// What it checks.
    pub rfc: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Who sees its details.
    pub visibility: Visibility,
    /// Its tier.
    pub tier: Tier,
    /// The assignment requires its premise (`require:`): `n/a` counts as failed.
    pub required: bool,
    /// The outcome.
    pub status: Status,
    /// Points earned.
    pub score: f64,
    /// Points available (0 when the case does not apply).
    pub max_score: f64,
    /// Points the assignment planned for it (`max_score` unless it does not apply).
    pub worth: f64,
    /// Why it did not pass, in a sentence (the failure message or why it did not run).
    pub reason: Option<String>,
    /// The last attempt that did not pass, which reports render as the failure block (step,
    /// expected/got, dialogue, stderr tail); never shown for hidden cases.
    pub failed: Option<Arc<CaseResult>>,
    /// SHOULD findings.
    pub warnings: Vec<String>,
    /// Runs it took (1 plus re-runs).
    pub attempts: u32,
    /// Wall time of the last attempt.
    pub duration: Duration,
    /// The last attempt's raw result (dialogue, failure), for the JSON report.
    pub result: Option<Arc<CaseResult>>,
}

/// How the build gate went.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BuildOutcome {
    /// The command run (None: the assignment has no build).
    pub command: Option<String>,
    /// Whether it succeeded (true when there is none).
    pub ok: bool,
    /// Why it failed, in a sentence.
    pub error: Option<String>,
    /// The tail of its output (stdout then stderr).
    pub output: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// A graded submission.
#[derive(Debug, Clone)]
pub struct Grade {
    /// The assignment's name.
    pub assignment: String,
    /// The assignment's title.
    pub title: String,
    /// The submission as named on the command line (a folder or file name).
    pub submission: String,
    /// Every planned case, in assignment order.
    pub cases: Vec<GradedCase>,
    /// The build gate.
    pub build: BuildOutcome,
    /// Problems starting the program, per part (shown to the student: they are about their program).
    pub target_errors: Vec<String>,
    /// Problems of the grading itself (copying the submission, a missing file), shown to all.
    pub notes: Vec<String>,
    /// The seed every random choice came from.
    pub seed: u64,
    /// sha256 of the assignment file.
    pub assignment_sha256: String,
    /// sha256 of the suite files used.
    pub suites_sha256: String,
    /// Wall time of the whole grade.
    pub duration: Duration,
    /// Whether the total time budget ran out.
    pub budget_exhausted: bool,
    /// The wirecheck version that graded.
    pub version: &'static str,
    /// Gradescope's `stdout_visibility` from the assignment.
    pub stdout_visibility: String,
}

impl Grade {
    /// Points earned.
    pub fn score(&self) -> f64 {
        round(self.cases.iter().map(|c| c.score).sum())
    }

    /// Points available.
    pub fn max_score(&self) -> f64 {
        round(self.cases.iter().map(|c| c.max_score).sum())
    }

    /// Cases that did not pass (failed, error, flaky, not run); `n/a` ones lost nothing.
    pub fn lost(&self) -> impl Iterator<Item = &GradedCase> {
        self.cases.iter().filter(|c| !c.status.is_ok())
    }

    /// Cases that do not apply (their points left the total).
    pub fn not_applicable(&self) -> impl Iterator<Item = &GradedCase> {
        self.cases.iter().filter(|c| c.status == Status::NotApplicable)
    }

    /// Whether everything passed or did not apply (the `--student` exit status).
    pub fn all_passed(&self) -> bool {
        self.build.ok && self.cases.iter().all(|c| c.status.is_ok())
    }
}

/// Rounds to 4 decimals, so split group points add up in reports.
pub fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Formats points without trailing zeros.
pub fn fmt_points(p: f64) -> String {
    let p = round(p);
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        let s = format!("{p:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Every planned case of `a`, not run, for `reason` (the starting point of every grade).
pub fn planned(a: &Assignment, reason: &str) -> Vec<GradedCase> {
    let mut out = Vec::new();
    for (pi, p) in a.parts.iter().enumerate() {
        for (k, c) in p.cases.iter().enumerate() {
            let case = &p.suite.cases[c.index];
            out.push(GradedCase {
                name: format!("{}::{}", p.name, c.id),
                number: format!("{}.{}", pi + 1, k + 1),
                suite: p.suite.name.clone(),
                id: c.id.clone(),
                title: case.title.clone(),
                rfc: case.rfc.clone(),
                tags: case.tags.clone(),
                visibility: c.visibility,
                tier: c.tier,
                required: c.required,
                status: Status::NotRun,
                score: 0.0,
                max_score: round(c.max_score),
                worth: round(c.max_score),
                reason: Some(reason.to_string()),
                failed: None,
                warnings: Vec::new(),
                attempts: 0,
                duration: Duration::ZERO,
                result: None,
            });
        }
    }
    out
}

/// Scores `g` from a runner result: the case's available points, less SHOULD findings' share.
pub fn record(a: &Assignment, g: &mut GradedCase, r: &CaseResult) {
    record_with(g, r, a.weights.should_findings, a.flaky_credit);
}

/// [`record`] with the assignment's two numbers given: the share of its points a passing case
/// with SHOULD findings loses, and the share a flaky one keeps.
fn record_with(g: &mut GradedCase, r: &CaseResult, should_findings: f64, flaky_credit: f64) {
    g.attempts += 1;
    g.duration = r.duration;
    g.warnings = r.warnings.clone();
    let passed = r.verdict == Verdict::Pass;
    g.status = match (r.verdict, g.status) {
        // A re-run that passes after a failure: flaky, not passed.
        (Verdict::Pass, Status::Failed | Status::Error | Status::Flaky) if g.attempts > 1 => Status::Flaky,
        (Verdict::Pass, _) => Status::Passed,
        (Verdict::Fail, _) => Status::Failed,
        (Verdict::Error, _) => Status::Error,
        (Verdict::NotApplicable, _) if g.required => Status::Failed,
        (Verdict::NotApplicable, _) => Status::NotApplicable,
    };
    // A case that does not apply is worth nothing either way: its points leave the total.
    g.max_score = match g.status {
        Status::NotApplicable => 0.0,
        _ => g.worth,
    };
    g.score = match g.status {
        Status::Passed => {
            let lost = if g.warnings.is_empty() { 0.0 } else { should_findings };
            round(g.max_score * (1.0 - lost))
        }
        Status::Flaky => round(g.max_score * flaky_credit),
        _ => 0.0,
    };
    let r = Arc::new(r.clone());
    if passed {
        if g.status == Status::Flaky {
            g.reason = Some(format!("failed, then passed on re-run {} (flaky)", g.attempts - 1));
        } else {
            g.reason = None;
            g.failed = None;
        }
    } else if let Some(premise) = r.premise() {
        g.reason = Some(if g.required {
            format!("the assignment requires {premise}, and the program does not offer it")
        } else {
            format!("n/a: the program does not offer {premise} (costs no points)")
        });
        g.failed = Some(r.clone());
    } else {
        g.reason = r.failure.as_ref().map(|f| f.message.clone());
        g.failed = Some(r.clone());
    }
    g.result = Some(r);
}

/// A `wirecheck run` as a grade, the shape every grade format reads, so `run --report` renders
/// with the same formatters as `grade --report`. `results` are in the order to list them; each
/// case is numbered `S.K` (its suite's place, its own) and visible, scored as the run scored it
/// (its points on a pass, SHOULD findings costing nothing). A run draws no seed: `seed` is 0.
pub fn from_run(results: &[Arc<CaseResult>], summary: &crate::run::Summary, title: &str, target: &str) -> Grade {
    let mut suites: Vec<&Arc<crate::suite::Suite>> = Vec::new();
    let mut cases = Vec::with_capacity(results.len());
    let mut per_suite: Vec<usize> = Vec::new();
    for r in results {
        let s = match suites.iter().position(|s| Arc::ptr_eq(s, &r.suite)) {
            Some(s) => s,
            None => {
                suites.push(&r.suite);
                per_suite.push(0);
                suites.len() - 1
            }
        };
        per_suite[s] += 1;
        let case = r.case();
        let mut g = GradedCase {
            name: r.name(),
            number: format!("{}.{}", s + 1, per_suite[s]),
            suite: r.suite.name.clone(),
            id: case.id.clone(),
            title: case.title.clone(),
            rfc: case.rfc.clone(),
            tags: case.tags.clone(),
            visibility: Visibility::Visible,
            tier: Tier::Must,
            required: false,
            status: Status::NotRun,
            score: 0.0,
            max_score: round(case.points),
            worth: round(case.points),
            reason: None,
            failed: None,
            warnings: Vec::new(),
            attempts: 0,
            duration: Duration::ZERO,
            result: None,
        };
        record_with(&mut g, r, 0.0, 0.0);
        cases.push(g);
    }
    Grade {
        assignment: "run".into(),
        title: title.to_string(),
        submission: target.to_string(),
        cases,
        build: BuildOutcome {
            ok: true,
            ..BuildOutcome::default()
        },
        target_errors: summary.target_errors.iter().map(ToString::to_string).collect(),
        notes: Vec::new(),
        seed: 0,
        assignment_sha256: String::new(),
        suites_sha256: super::assignment::suites_sha256(suites.iter().map(|s| s.as_ref())),
        duration: Duration::from_millis(summary.duration_ms),
        budget_exhausted: false,
        version: env!("CARGO_PKG_VERSION"),
        stdout_visibility: "visible".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_print_without_trailing_zeros() {
        assert_eq!(fmt_points(3.0), "3");
        assert_eq!(fmt_points(1.5), "1.5");
        assert_eq!(fmt_points(10.0 / 3.0), "3.3333");
    }
}
