//! Grades one submission: copy, build gate, each part through the runner, re-runs, budgets.
//! The grade in progress lives behind a shared lock so that an interrupted grading can still
//! write every case (the unfinished ones marked).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::assignment::Assignment;
use super::score::{self, BuildOutcome, Grade, GradedCase, Status};
use super::workspace::Workspace;
use crate::run::sandbox::{RunAs, Sandbox};
use crate::run::{self, CaseResult, Reporter, RunOptions, Summary, TargetSpec};

/// The most failed cases of a server suite re-run at once, each on its own instance.
const RETRY_JOBS: usize = 16;

/// Why a case has not run while grading is under way (what an interrupted grade shows).
pub const UNFINISHED: &str = "not run (grading did not finish)";

/// Called with each case as it finishes (the live console line).
pub type LiveFn = Arc<dyn Fn(&GradedCase) + Send + Sync>;

/// Choices the command line makes for a grading run.
#[derive(Clone)]
pub struct GradeOptions {
    /// The seed (printed in every report, passed as `{seed}`).
    pub seed: u64,
    /// Re-runs of a failed case (the assignment's `retries` unless given).
    pub retries: u32,
    /// The user programs run as when wirecheck runs as root (None: as wirecheck).
    pub user: Option<String>,
    /// Called as each case finishes (the live console line); must not show hidden details.
    pub live: Option<LiveFn>,
    /// Called once the submission is copied, before anything of it runs (the sandbox hides the
    /// original and the reports folder then); an error stops the grade.
    pub after_copy: Option<AfterCopy>,
}

/// See [`GradeOptions::after_copy`].
pub type AfterCopy = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// A grade that has not started: every case not run.
pub fn initial(a: &Assignment, submission: &str, seed: u64) -> Grade {
    Grade {
        assignment: a.name.clone(),
        title: a.title.clone(),
        submission: submission.to_string(),
        cases: score::planned(a, UNFINISHED),
        build: BuildOutcome {
            ok: true,
            ..BuildOutcome::default()
        },
        target_errors: Vec::new(),
        notes: Vec::new(),
        seed,
        assignment_sha256: a.sha256.clone(),
        suites_sha256: a.suites_sha256.clone(),
        duration: Duration::ZERO,
        budget_exhausted: false,
        version: env!("CARGO_PKG_VERSION"),
        stdout_visibility: a.stdout_visibility.clone(),
    }
}

/// A shared grade in progress.
pub type Shared = Arc<Mutex<Grade>>;

fn lock(g: &Shared) -> std::sync::MutexGuard<'_, Grade> {
    g.lock().unwrap_or_else(|e| e.into_inner())
}

/// Marks every case still not run with `reason` (the build failed, the budget ran out ...).
pub fn mark_unrun(g: &mut Grade, reason: &str) {
    for c in &mut g.cases {
        if c.status == Status::NotRun {
            c.reason = Some(reason.to_string());
        }
    }
}

/// Grades `submission` into `shared` (which the caller made with [`initial`]) and returns the result.
pub async fn grade(a: &Assignment, submission: &Path, opts: &GradeOptions, shared: Shared) -> Grade {
    let started = Instant::now();
    let finish = |reason: Option<&str>| {
        let mut g = lock(&shared);
        if let Some(r) = reason {
            mark_unrun(&mut g, r);
        }
        g.duration = started.elapsed();
        g.clone()
    };
    let ws = match Workspace::new(submission, &a.fixtures_dir, &a.fixtures) {
        Ok(ws) => ws,
        Err(e) => {
            lock(&shared).notes.push(e.clone());
            return finish(Some(&format!("not run: {e}")));
        }
    };
    if let Some(hook) = &opts.after_copy {
        if let Err(e) = hook() {
            lock(&shared).notes.push(e.clone());
            return finish(Some(&format!("not run: {e}")));
        }
    }
    // Programs drop to `user` only when wirecheck runs as root; otherwise they run as wirecheck.
    let root = nix::unistd::geteuid().is_root();
    let run_as = match (&opts.user, root) {
        (Some(u), true) => {
            if let Err(e) = ws.hand_to(u) {
                lock(&shared).notes.push(e.clone());
                return finish(Some(&format!("not run: {e}")));
            }
            RunAs::User(u.clone())
        }
        _ => RunAs::Inherit,
    };
    let fill = |cmd: &str, main: Option<&Path>| {
        let mut s = cmd
            .replace("{dir}", &ws.dir.display().to_string())
            .replace("{fixtures}", &ws.fixtures.display().to_string())
            .replace("{seed}", &opts.seed.to_string());
        if let Some(m) = main {
            s = s.replace("{main}", &m.display().to_string());
        }
        s
    };
    if let Some(b) = &a.build {
        let main = if b.command.contains("{main}") {
            match ws.find_main(&a.main) {
                Ok(m) => Some(m),
                Err(e) => {
                    let mut g = lock(&shared);
                    g.build = BuildOutcome {
                        command: Some(b.command.clone()),
                        ok: false,
                        error: Some(e),
                        ..BuildOutcome::default()
                    };
                    drop(g);
                    return finish(Some("not run: the build failed"));
                }
            }
        } else {
            None
        };
        let sandbox = Sandbox {
            limits: a.limits.clone(),
            run_as: run_as.clone(),
            cwd: Some(ws.dir.clone()),
        };
        let outcome = super::build::build(b, &fill(&b.command, main.as_deref()), &sandbox).await;
        let ok = outcome.ok;
        lock(&shared).build = outcome;
        if !ok {
            return finish(Some("not run: the build failed"));
        }
    }
    let deadline = Instant::now() + a.budget.total;
    let mut offset = 0;
    for (pi, part) in a.parts.iter().enumerate() {
        let first = offset;
        offset += part.cases.len();
        let main = if part.start.contains("{main}") {
            match ws.find_main(&part.main) {
                Ok(m) => Some(m),
                Err(e) => {
                    let mut g = lock(&shared);
                    for c in &mut g.cases[first..offset] {
                        c.status = Status::Error;
                        c.reason = Some(e.clone());
                    }
                    g.target_errors.push(format!("{}: {e}", part.name));
                    continue;
                }
            }
        } else {
            None
        };
        let cmd = fill(&part.start, main.as_deref());
        let base = RunOptions {
            target: TargetSpec::Exec(cmd),
            // Cases run side by side, each against its own instance of the program, except in
            // suites whose cases share one (`instances: shared`), which take turns.
            jobs: None,
            timeout_scale: a.timeout_scale,
            tags: part.tags.clone(),
            case_globs: part.case_globs.clone(),
            ready_timeout: a.ready_timeout,
            sandbox: Sandbox {
                limits: a.limits.clone(),
                run_as: run_as.clone(),
                cwd: Some(ws.dir.clone()),
            },
            case_budget: Some(a.budget.case),
            deadline: Some(deadline),
            capture: None,
            // Student resolvers are given the hierarchy's address and port ({root.host} {root.port}).
            well_known_ports: false,
            fresh_each: false,
            tls: crate::run::TlsOptions::default(),
        };
        let mut collector = Collector {
            a,
            first,
            part: pi,
            shared: &shared,
            live: opts.live.as_deref(),
            answered: false,
        };
        let summary = run::run(std::slice::from_ref(&part.suite), &base, &mut collector).await;
        note_target_errors(&shared, &part.name, &summary);
        // Re-runs are for a case that failed by chance. A program that sent nothing in any case,
        // each on an instance of its own once the first hung, hangs every time: another round
        // of timeouts would tell nothing new.
        let hangs = !collector.answered && summary.passed + summary.failed > 0;
        if hangs && opts.retries > 0 {
            lock(&shared).notes.push(format!(
                "{}: the failed cases were not re-run: the program sent nothing in any of them (each waited its whole timeout)",
                part.name
            ));
        }
        // Re-runs: the failed cases again, each against a fresh start of the program (side by
        // side where the suite allows: a program that hangs costs a round of timeouts, not one
        // per case), until each passes or the retries are spent.
        let retries = if hangs { 0 } else { opts.retries };
        for _ in 0..retries {
            let failed: Vec<glob::Pattern> = {
                let g = lock(&shared);
                g.cases[first..offset]
                    .iter()
                    .filter(|c| c.status == Status::Failed)
                    .map(|c| glob::Pattern::new(&glob::Pattern::escape(&c.id)).expect("an escaped glob is valid"))
                    .collect()
            };
            if failed.is_empty() || Instant::now() >= deadline {
                break;
            }
            // A server suite's re-runs all start at once: each case has a fresh instance of its
            // own, and a program that hangs then costs one round of timeouts however many cases
            // failed (client programs keep the default: cases that judge timing start them).
            let jobs = match part.suite.role {
                crate::suite::Role::Server => Some(failed.len().clamp(1, RETRY_JOBS)),
                crate::suite::Role::Client => None,
            };
            let again = RunOptions {
                tags: Vec::new(),
                case_globs: failed,
                fresh_each: true,
                jobs,
                ..base.clone()
            };
            let s = run::run(std::slice::from_ref(&part.suite), &again, &mut collector).await;
            note_target_errors(&shared, &part.name, &s);
        }
    }
    if Instant::now() >= deadline {
        let left = lock(&shared).cases.iter().any(|c| c.status == Status::NotRun);
        if left {
            lock(&shared).budget_exhausted = true;
            return finish(Some(&format!("not run (the time budget of {:?} ran out)", a.budget.total)));
        }
    }
    finish(Some(UNFINISHED))
}

fn note_target_errors(shared: &Shared, part: &str, s: &Summary) {
    let mut g = lock(shared);
    for e in &s.target_errors {
        let e = format!("{part}: {e}");
        if !g.target_errors.contains(&e) {
            g.target_errors.push(e);
        }
    }
}

/// Scores results into the shared grade as the runner reports them.
struct Collector<'a> {
    a: &'a Assignment,
    first: usize,
    part: usize,
    shared: &'a Shared,
    live: Option<&'a (dyn Fn(&GradedCase) + Send + Sync)>,
    /// Some case got an answer from the program (it passed, or failed on something the program sent).
    answered: bool,
}

impl Reporter for Collector<'_> {
    fn case_finished(&mut self, r: &CaseResult) {
        let part = &self.a.parts[self.part];
        let Some(k) = part.cases.iter().position(|c| c.index == r.index) else {
            return;
        };
        self.answered |= r.failure.as_ref().is_none_or(|f| !f.silent_timeout);
        let mut g = lock(self.shared);
        let c = &mut g.cases[self.first + k];
        score::record(self.a, c, r);
        let shown = c.clone();
        drop(g);
        if let Some(f) = self.live {
            f(&shown);
        }
    }

    fn finish(&mut self, _summary: &Summary) -> std::io::Result<()> {
        Ok(())
    }
}

/// A seed from the clock and process id, for runs not given `--seed`.
pub fn random_seed() -> u64 {
    use sha2::{Digest, Sha256};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let h = Sha256::digest(format!("{}:{}", now.as_nanos(), std::process::id()).as_bytes());
    // 53 bits: exact in JSON numbers, so every report shows the seed as given back to --seed.
    u64::from_be_bytes(h[..8].try_into().unwrap_or([0; 8])) >> 11
}
