//! `wirecheck grade` and `wirecheck merge`: the arguments, their resolution into a
//! [`GradeConfig`] (every option checked before a submission is copied or built), and the runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;

use super::error::UsageError;
use crate::grade::assignment::{self, Assignment};
use crate::grade::formats::{live_line, Audience, Format, ReportSpec};
use crate::grade::grader::{self, GradeOptions, LiveFn};
use crate::grade::roster::{self, Entry, Roster, Shard};
use crate::grade::score::{self, Grade, GradedCase};
use crate::grade::worker::{self, submission_name, Done, Jail};
use crate::run::jail;
use crate::run::sandbox::RunAs;

/// Arguments of `wirecheck grade`, as given.
#[derive(clap::Args, Debug)]
pub struct GradeArgs {
    /// The assignment file (see ci/assignments/README.md).
    pub assignment: PathBuf,
    /// One submission: a folder, or a single file graded as a folder holding just it.
    #[arg(long, conflicts_with = "submissions", required_unless_present = "submissions")]
    pub submission: Option<PathBuf>,
    /// A folder of submissions: every subfolder (or file) is one.
    #[arg(long, value_name = "DIR")]
    pub submissions: Option<PathBuf>,
    /// Write a report: FORMAT or FORMAT:PATH ('-' is stdout); formats: gradescope, junit, json,
    /// tap, prairielearn, classroom, markdown, html (one page with each case's dialogue drawn).
    /// Without a path it goes into --out (html: report.html).
    #[arg(long = "report", value_name = "FORMAT[:PATH]")]
    pub reports: Vec<ReportSpec>,
    /// Folder for reports without a path (one subfolder per submission with --submissions) and the roster.
    #[arg(long, value_name = "DIR", default_value = "grades")]
    pub out: PathBuf,
    /// Show hidden cases only as passed/failed everywhere (for students running it themselves);
    /// exit status 1 if anything did not pass.
    #[arg(long)]
    pub student: bool,
    /// Submissions graded at once (with --submissions); each gets its own ports.
    #[arg(long, short = 'j', default_value_t = 1)]
    pub jobs: usize,
    /// Grade only slice K of N of --submissions (a CI matrix job); `merge` combines the rosters.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// The seed every random choice comes from (default: random; printed in every report).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Re-run a failed case up to N times; a pass on a re-run is reported as flaky (default: the assignment's).
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// The unprivileged user programs run as when wirecheck runs as root ('inherit': as wirecheck;
    /// default: the assignment's `user:`, else nobody).
    #[arg(long)]
    pub user: Option<String>,
    /// Linux, as root: grade inside a fresh network namespace (only loopback). Implied by the
    /// sandbox, which gives every submission a network of its own.
    #[arg(long)]
    pub isolate: bool,
    /// Grade in this process, without a sandbox per submission (as root, each submission is
    /// otherwise graded in its own PID, mount and network namespaces, as its own user, with a
    /// private /tmp of `limits.disk`).
    #[arg(long)]
    pub no_sandbox: bool,
}

/// Arguments of `wirecheck merge`.
#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Shard rosters (roster.json) to combine.
    #[arg(required = true)]
    pub rosters: Vec<PathBuf>,
    /// Folder to write the combined roster.json and roster.csv into.
    #[arg(long, value_name = "DIR", default_value = "grades")]
    pub out: PathBuf,
}

/// A grading every option of which has been checked: what `wirecheck grade` does, before it starts.
pub struct GradeConfig {
    /// The loaded assignment.
    pub assignment: Assignment,
    /// Its file, as given.
    pub assignment_path: PathBuf,
    /// Who reads the reports.
    pub audience: Audience,
    /// Seed, re-runs, user; `live` is set for one submission printing to the terminal.
    pub options: GradeOptions,
    /// `--out`.
    pub out: PathBuf,
    /// One submission or a folder of them.
    pub submissions: Submissions,
    /// Whether each submission is graded in a sandbox of its own.
    pub jail: Jail,
}

/// What is graded, with where its reports go.
#[derive(Debug)]
pub enum Submissions {
    /// `--submission PATH`.
    One {
        /// The submission.
        path: PathBuf,
        /// Each report's format and file (`-` is stdout).
        reports: Vec<(Format, PathBuf)>,
    },
    /// `--submissions DIR`.
    Many {
        /// The folder.
        dir: PathBuf,
        /// How many submissions it holds.
        total: usize,
        /// The ones this job grades (its `--shard`).
        picked: Vec<PathBuf>,
        /// `--shard`.
        shard: Option<Shard>,
        /// Report formats, written to `--out/SUBMISSION/`.
        formats: Vec<Format>,
        /// `--jobs`.
        jobs: usize,
    },
}

impl GradeArgs {
    /// Checks every option and loads the assignment: nothing is copied, built or run yet.
    pub fn resolve(self) -> Result<GradeConfig, UsageError> {
        if self.jobs == 0 {
            return Err(UsageError::NoJobs);
        }
        let a = assignment::load_file(&self.assignment).map_err(UsageError::Assignment)?;
        let user = match self.user.as_deref() {
            Some("inherit") => None,
            Some(u) => Some(u.to_string()),
            None => a.user.clone(),
        };
        // The grader switches to the user only as root; an unknown one would fail every submission.
        if let Some(u) = &user {
            RunAs::User(u.clone()).resolve()?;
        }
        let audience = if self.student { Audience::Student } else { Audience::Staff };
        let submissions = match (&self.submission, &self.submissions) {
            (Some(s), _) => self.one(s)?,
            (None, Some(dir)) => self.many(dir)?,
            (None, None) => return Err(UsageError::NoSubmissionGiven),
        };
        let live: Option<LiveFn> = match &submissions {
            Submissions::One { reports, .. } if !reports.iter().any(|(_, p)| p == Path::new("-")) => {
                Some(Arc::new(|c: &GradedCase| print(&live_line(c))))
            }
            _ => None,
        };
        let options = GradeOptions {
            seed: self.seed.unwrap_or_else(grader::random_seed),
            retries: self.retries.unwrap_or(a.retries),
            user,
            live,
            after_copy: None,
        };
        let jail = self.jail(&a, &submissions);
        Ok(GradeConfig {
            assignment: a,
            assignment_path: self.assignment,
            audience,
            options,
            out: self.out,
            submissions,
            jail,
        })
    }

    /// The sandbox if it can be made here; if not, says once what is not applied and why.
    fn jail(&self, a: &Assignment, submissions: &Submissions) -> Jail {
        if self.no_sandbox {
            return Jail::Off;
        }
        if let Err(why) = worker::probe() {
            eprintln!(
                "note: grading without a sandbox per submission ({why}): programs run in this process's namespaces, see each other's processes and files, and share one network; run as root on Linux for it, or pass --no-sandbox to silence this"
            );
            return Jail::Off;
        }
        // What a program must not see: the original submissions and where reports go. Never a
        // folder that holds what grading itself reads (the current folder, the assignment,
        // wirecheck): hiding one would hide the suites and fixtures.
        let keep: Vec<PathBuf> = [
            std::env::current_dir().ok(),
            Some(self.assignment.clone()),
            std::env::current_exe().ok(),
        ]
        .into_iter()
        .flatten()
        .map(|p| absolute(&p))
        .collect();
        let given = match submissions {
            Submissions::One { path, .. } => path.clone(),
            Submissions::Many { dir, .. } => dir.clone(),
        };
        let hide = [given, self.out.clone()]
            .iter()
            .map(|p| absolute(p))
            .filter(|p| !keep.iter().any(|k| k.starts_with(p)))
            .collect();
        Jail::On {
            disk: a.limits.disk.unwrap_or(jail::DEFAULT_DISK),
            hide,
        }
    }

    fn one(&self, submission: &Path) -> Result<Submissions, UsageError> {
        if !submission.exists() {
            return Err(UsageError::NoSubmission(submission.to_path_buf()));
        }
        if self.shard.is_some() {
            return Err(UsageError::ShardOfOne);
        }
        let protected = [submission.to_path_buf(), self.assignment.clone()];
        let reports = self
            .reports
            .iter()
            .map(|r| Ok((r.format, report_path(r, &self.out, &protected)?)))
            .collect::<Result<_, UsageError>>()?;
        Ok(Submissions::One {
            path: submission.to_path_buf(),
            reports,
        })
    }

    fn many(&self, dir: &Path) -> Result<Submissions, UsageError> {
        if let Some(r) = self.reports.iter().find(|r| r.path.is_some()) {
            return Err(UsageError::ReportPathForMany(r.format));
        }
        let all = roster::submissions(dir).map_err(|source| UsageError::Submissions {
            dir: dir.to_path_buf(),
            source,
        })?;
        if absolute(&self.out).starts_with(absolute(dir)) {
            return Err(UsageError::OutInsideSubmissions {
                out: self.out.clone(),
                dir: dir.to_path_buf(),
            });
        }
        if all.is_empty() {
            return Err(UsageError::NoSubmissions { dir: dir.to_path_buf() });
        }
        let picked = match self.shard {
            Some(s) => roster::shard(&all, s),
            None => all.clone(),
        };
        let formats = if self.reports.is_empty() {
            vec![Format::Json]
        } else {
            self.reports.iter().map(|r| r.format).collect()
        };
        Ok(Submissions::Many {
            dir: dir.to_path_buf(),
            total: all.len(),
            picked,
            shard: self.shard,
            formats,
            jobs: self.jobs,
        })
    }
}

/// Where a report goes, after checking it overwrites nothing the user gave.
fn report_path(spec: &ReportSpec, out: &Path, protected: &[PathBuf]) -> Result<PathBuf, UsageError> {
    let path = spec.path.clone().unwrap_or_else(|| out.join(spec.format.default_file()));
    if path == Path::new("-") {
        return Ok(path);
    }
    let abs = absolute(&path);
    for p in protected {
        let p = absolute(p);
        if abs == p || abs.starts_with(&p) && p.is_dir() {
            return Err(UsageError::ReportOverInput {
                format: spec.format,
                path,
                input: p,
            });
        }
    }
    Ok(path)
}

/// The absolute, symlink-free form of a path that may not exist yet (its nearest existing
/// ancestor is resolved).
fn absolute(p: &Path) -> PathBuf {
    let p = std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf());
    let mut existing = p.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut out = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    for r in rest.iter().rev() {
        out.push(r);
    }
    out
}

fn write_reports(g: &Grade, targets: &[(Format, PathBuf)], audience: Audience) -> Result<(), String> {
    for (f, path) in targets {
        crate::report::write_output(path, &f.render(g, audience)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn print(text: &str) {
    let mut out = anstream::stdout();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// `wirecheck grade`: resolves the arguments (exit 2 on a usage or assignment error), then grades.
pub async fn grade(args: GradeArgs) -> i32 {
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => return e.report(),
    };
    match &config.submissions {
        Submissions::One { path, reports } => grade_one(&config, path, reports).await,
        Submissions::Many {
            dir,
            total,
            picked,
            shard,
            formats,
            jobs,
        } => grade_many(&config, dir, *total, picked, *shard, formats, *jobs).await,
    }
}

async fn grade_one(config: &GradeConfig, submission: &Path, targets: &[(Format, PathBuf)]) -> i32 {
    let (a, opts, audience) = (&config.assignment, &config.options, config.audience);
    let stdout_taken = targets.iter().any(|(_, p)| p == Path::new("-"));
    let name = submission_name(submission);
    let shared = Arc::new(Mutex::new(grader::initial(a, &name, opts.seed)));
    // Written first, so a grading killed outright still leaves valid reports listing every case.
    let files: Vec<(Format, PathBuf)> = targets.iter().filter(|(_, p)| p != Path::new("-")).cloned().collect();
    if let Err(e) = write_reports(&shared.lock().unwrap_or_else(|e| e.into_inner()).clone(), &files, audience) {
        eprintln!("error: {e}");
        return 2;
    }
    if !stdout_taken {
        print(&format!(
            "grading {} with {} (seed {}, suites sha256 {})\n",
            submission.display(),
            config.assignment_path.display(),
            opts.seed,
            a.suites_sha256
        ));
    }
    let formats: Vec<Format> = targets.iter().map(|(f, _)| *f).collect();
    let done = match &config.jail {
        Jail::On { disk, hide } => {
            let live = opts.live.is_some().then(|| Arc::new(|l: &str| print(l)) as worker::LineFn);
            let job = worker::Job {
                assignment: a,
                assignment_path: &config.assignment_path,
                submission,
                opts,
                slot: 1,
                formats: &formats,
                audience,
                live,
                disk: *disk,
                hide,
            };
            if let Err(e) = worker::ensure_job_users(1) {
                eprintln!("error: {e}");
                return 2;
            }
            let stop = async {
                crate::run::interrupted().await;
            };
            worker::grade_in_jail(job, stop).await
        }
        Jail::Off => {
            let interrupted = crate::run::interrupted();
            tokio::pin!(interrupted);
            tokio::select! {
                biased;
                signal = &mut interrupted => {
                    let mut g = shared.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    grader::mark_unrun(&mut g, &format!("not run (grading was stopped by {signal})"));
                    let mut done = Done::of(&g, &formats, audience);
                    done.code = 130;
                    done
                }
                g = grader::grade(a, submission, opts, shared.clone()) => Done::of(&g, &formats, audience),
            }
        }
    };
    if done.code == 130 {
        eprintln!("wirecheck: stopped; programs killed, partial results written");
    }
    if let Err(e) = write_done(&done, targets) {
        eprintln!("error: {e}");
        return 2;
    }
    if !stdout_taken {
        print(&done.console);
    }
    done.code
}

fn write_done(done: &Done, targets: &[(Format, PathBuf)]) -> Result<(), String> {
    for (f, path) in targets {
        crate::report::write_output(path, done.report(*f)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

async fn grade_many(
    config: &GradeConfig,
    dir: &Path,
    total: usize,
    picked: &[PathBuf],
    shard: Option<Shard>,
    formats: &[Format],
    jobs: usize,
) -> i32 {
    let (a, opts, audience, out) = (&config.assignment, &config.options, config.audience, &config.out);
    println!(
        "grading {} of {} submissions in {} with {} ({} at once; seed {}; suites sha256 {})",
        picked.len(),
        total,
        dir.display(),
        config.assignment_path.display(),
        jobs,
        opts.seed,
        a.suites_sha256
    );
    let interrupted = crate::run::interrupted();
    tokio::pin!(interrupted);
    if matches!(config.jail, Jail::On { .. }) {
        if let Err(e) = worker::ensure_job_users(jobs) {
            eprintln!("error: {e}");
            return 2;
        }
        // The reports folder exists before any worker starts, so each one hides it: a folder
        // made later, when the first reports are written, would be in sight of the rest.
        if let Err(e) = std::fs::create_dir_all(out) {
            eprintln!("error: cannot create {}: {e}", out.display());
            return 2;
        }
    }
    // Each concurrent job has a slot, and in the sandbox the slot's own user.
    let slots = Arc::new(Mutex::new((1..=jobs).rev().collect::<Vec<usize>>()));
    let bar = progress(picked.len());
    let mut entries: Vec<Entry> = Vec::new();
    let mut failed_writes = false;
    {
        let mut graded = futures::stream::iter(picked.iter())
            .map(|s| {
                let (opts, slots) = (opts.clone(), slots.clone());
                async move {
                    let slot = slots.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or(1);
                    let done = match &config.jail {
                        Jail::On { disk, hide } => {
                            let job = worker::Job {
                                assignment: a,
                                assignment_path: &config.assignment_path,
                                submission: s,
                                opts: &opts,
                                slot,
                                formats,
                                audience,
                                live: None,
                                disk: *disk,
                                hide,
                            };
                            worker::grade_in_jail(job, std::future::pending()).await
                        }
                        Jail::Off => {
                            let name = submission_name(s);
                            let shared = Arc::new(Mutex::new(grader::initial(a, &name, opts.seed)));
                            Done::of(&grader::grade(a, s, &opts, shared).await, formats, audience)
                        }
                    };
                    slots.lock().unwrap_or_else(|e| e.into_inner()).push(slot);
                    done
                }
            })
            .buffer_unordered(jobs);
        loop {
            let g = tokio::select! {
                biased;
                signal = &mut interrupted => {
                    eprintln!("wirecheck: stopped by {signal}; {} of {} graded, no roster written", entries.len(), picked.len());
                    return 130;
                }
                g = graded.next() => match g { Some(g) => g, None => break },
            };
            let sub_out = out.join(&g.entry.submission);
            let targets: Vec<(Format, PathBuf)> = formats.iter().map(|f| (*f, sub_out.join(f.default_file()))).collect();
            if let Err(e) = write_done(&g, &targets) {
                eprintln!("error: {e}");
                failed_writes = true;
            }
            let (e, why) = (g.entry, g.why);
            let line = format!(
                "{}: {} of {} points{} ({:.1}s)",
                crate::report::escape::visible_controls(&e.submission),
                score::fmt_points(e.score),
                score::fmt_points(e.max),
                why,
                e.duration_s
            );
            match &bar {
                Some(b) => {
                    b.suspend(|| println!("{line}"));
                    b.inc(1);
                }
                None => println!("{line}"),
            }
            entries.push(e);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    entries.sort_by(|x, y| x.submission.cmp(&y.submission));
    let r = Roster {
        schema: roster::SCHEMA.into(),
        assignment: a.name.clone(),
        assignment_sha256: a.sha256.clone(),
        suites_sha256: a.suites_sha256.clone(),
        seed: opts.seed,
        shard: shard.map(|s| s.to_string()),
        submissions: entries,
    };
    if let Err(e) = r.write(out) {
        eprintln!("error: cannot write the roster into {}: {e}", out.display());
        return 2;
    }
    println!(
        "roster: {} and {}",
        out.join("roster.json").display(),
        out.join("roster.csv").display()
    );
    if failed_writes {
        2
    } else {
        0
    }
}

/// A progress bar for many submissions, on an interactive terminal only (a bar in a CI log is
/// noise).
fn progress(total: usize) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if total < 2 || !std::io::stderr().is_terminal() || std::env::var_os("CI").is_some() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {pos}/{len} submissions, {eta} left") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

impl MergeArgs {
    /// Reads every roster and checks the output overwrites none of them.
    pub fn resolve(&self) -> Result<Vec<(PathBuf, Roster)>, UsageError> {
        let mut rosters = Vec::new();
        for p in &self.rosters {
            let r: Result<Roster, String> = std::fs::read_to_string(p)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("not a roster.json: {e}")));
            match r {
                Ok(r) => rosters.push((p.clone(), r)),
                Err(reason) => return Err(UsageError::Roster { path: p.clone(), reason }),
            }
        }
        let protected: Vec<PathBuf> = self.rosters.iter().map(|p| absolute(p)).collect();
        for name in ["roster.json", "roster.csv"] {
            let target = absolute(&self.out.join(name));
            if protected.contains(&target) {
                return Err(UsageError::MergeOverInput(target));
            }
        }
        Ok(rosters)
    }
}

/// `wirecheck merge`: exit 0, or 2 when a roster cannot be read, combined or written.
pub fn merge(args: MergeArgs) -> i32 {
    let merged = args
        .resolve()
        .and_then(|rosters| roster::merge(&rosters).map(|r| (rosters.len(), r)).map_err(UsageError::Merge));
    let (count, r) = match merged {
        Ok(m) => m,
        Err(e) => return e.report(),
    };
    if let Err(e) = r.write(&args.out) {
        eprintln!("error: cannot write into {}: {e}", args.out.display());
        return 2;
    }
    println!(
        "merged {} rosters: {} submissions into {}",
        count,
        r.submissions.len(),
        args.out.join("roster.json").display()
    );
    0
}
