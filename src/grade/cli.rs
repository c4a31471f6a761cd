//! `wirecheck grade` and `wirecheck merge`: arguments and handlers (main.rs only dispatches).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;

use super::assignment::{self, Assignment};
use super::formats::{console_text, live_line, Audience, Format, ReportSpec};
use super::grader::{self, GradeOptions};
use super::roster::{self, Entry, Roster, Shard};
use super::score::Grade;

/// Arguments of `wirecheck grade`.
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
    /// tap, prairielearn, classroom, markdown. Without a path it goes into --out.
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
    /// Linux, as root: grade inside a fresh network namespace (only loopback).
    #[arg(long)]
    pub isolate: bool,
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

/// Examples for `wirecheck grade --help`.
pub const GRADE_HELP: &str = "\
Exit status: 0 every case passed; 1 a case did not pass; 2 a usage or assignment error (with its
location); 3 the build failed or the program could not be started. With --submissions: 0 once
every submission is graded and the roster written.

Examples:
  wirecheck grade ci/assignments/webserver.yaml --submission WebServer.py --student
  wirecheck grade ci/assignments/webserver.yaml --submission alice/ --report gradescope:results.json
  wirecheck grade ci/assignments/proxy.yaml --submissions class/ --jobs 2 --report junit --out grades
  wirecheck grade ci/assignments/proxy.yaml --submissions class/ --shard 2/4 --out grades-2
  wirecheck merge grades-*/roster.json --out grades";

fn load(path: &Path) -> Option<Assignment> {
    match assignment::load_file(path) {
        Ok(a) => Some(a),
        Err(e) => {
            eprint!("{e}");
            eprintln!("error: the assignment above has errors; fix them and run again");
            None
        }
    }
}

/// Where a report goes, after checking it overwrites nothing the user gave.
fn report_path(spec: &ReportSpec, out: &Path, protected: &[PathBuf]) -> Result<PathBuf, String> {
    let path = spec.path.clone().unwrap_or_else(|| out.join(spec.format.default_file()));
    if path == Path::new("-") {
        return Ok(path);
    }
    let abs = absolute(&path);
    for p in protected {
        let p = absolute(p);
        if abs == p || abs.starts_with(&p) && p.is_dir() {
            return Err(format!(
                "refusing to write the {:?} report to {}: it is inside {}, which wirecheck was given to read",
                spec.format,
                path.display(),
                p.display()
            ));
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

fn options(a: &Assignment, args: &GradeArgs, live: bool) -> GradeOptions {
    let user = match args.user.as_deref() {
        Some("inherit") => None,
        Some(u) => Some(u.to_string()),
        None => a.user.clone(),
    };
    GradeOptions {
        seed: args.seed.unwrap_or_else(grader::random_seed),
        retries: args.retries.unwrap_or(a.retries),
        user,
        live: live
            .then(|| Arc::new(|c: &super::score::GradedCase| print(&live_line(c))) as Arc<dyn Fn(&super::score::GradedCase) + Send + Sync>),
    }
}

fn submission_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// `wirecheck grade`.
pub async fn cmd_grade(args: GradeArgs) -> i32 {
    if args.jobs == 0 {
        eprintln!("error: --jobs must be at least 1");
        return 2;
    }
    let Some(a) = load(&args.assignment) else { return 2 };
    match (&args.submission, &args.submissions) {
        (Some(s), _) => grade_one(&a, &args, s).await,
        (None, Some(dir)) => grade_many(&a, &args, dir).await,
        (None, None) => {
            eprintln!("error: give --submission PATH or --submissions DIR");
            2
        }
    }
}

async fn grade_one(a: &Assignment, args: &GradeArgs, submission: &Path) -> i32 {
    if !submission.exists() {
        eprintln!("error: no submission at {}", submission.display());
        return 2;
    }
    if args.shard.is_some() {
        eprintln!("error: --shard slices --submissions; with one --submission there is nothing to slice");
        return 2;
    }
    let audience = if args.student { Audience::Student } else { Audience::Staff };
    let protected = [submission.to_path_buf(), args.assignment.clone()];
    let mut targets = Vec::new();
    for r in &args.reports {
        match report_path(r, &args.out, &protected) {
            Ok(p) => targets.push((r.format, p)),
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        }
    }
    let stdout_taken = targets.iter().any(|(_, p)| p == Path::new("-"));
    let opts = options(a, args, !stdout_taken);
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
            args.assignment.display(),
            opts.seed,
            a.suites_sha256
        ));
    }
    let interrupted = crate::run::interrupted();
    tokio::pin!(interrupted);
    let (g, code) = tokio::select! {
        biased;
        signal = &mut interrupted => {
            let mut g = shared.lock().unwrap_or_else(|e| e.into_inner()).clone();
            grader::mark_unrun(&mut g, &format!("not run (grading was stopped by {signal})"));
            eprintln!("wirecheck: stopped by {signal}; programs killed, partial results written");
            (g, 130)
        }
        g = grader::grade(a, submission, &opts, shared.clone()) => {
            let code = if !g.build.ok || !g.target_errors.is_empty() { 3 } else if g.all_passed() { 0 } else { 1 };
            (g, code)
        }
    };
    if let Err(e) = write_reports(&g, &targets, audience) {
        eprintln!("error: {e}");
        return 2;
    }
    if !stdout_taken {
        print(&console_text(&g, audience, false));
    }
    code
}

async fn grade_many(a: &Assignment, args: &GradeArgs, dir: &Path) -> i32 {
    if let Some(r) = args.reports.iter().find(|r| r.path.is_some()) {
        eprintln!(
            "error: with --submissions, give report formats without a path ('{:?}' has one): each submission's reports go to --out/SUBMISSION/",
            r.format
        );
        return 2;
    }
    let all = match roster::submissions(dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot list {}: {e}", dir.display());
            return 2;
        }
    };
    let out_abs = absolute(&args.out);
    if out_abs.starts_with(absolute(dir)) {
        eprintln!(
            "error: --out {} is inside the submissions folder {}; reports would be graded as submissions",
            args.out.display(),
            dir.display()
        );
        return 2;
    }
    let picked = match args.shard {
        Some(s) => roster::shard(&all, s),
        None => all.clone(),
    };
    let audience = if args.student { Audience::Student } else { Audience::Staff };
    let opts = options(a, args, false);
    let formats: Vec<Format> = if args.reports.is_empty() {
        vec![Format::Json]
    } else {
        args.reports.iter().map(|r| r.format).collect()
    };
    println!(
        "grading {} of {} submissions in {} with {} ({} at once; seed {}; suites sha256 {})",
        picked.len(),
        all.len(),
        dir.display(),
        args.assignment.display(),
        args.jobs,
        opts.seed,
        a.suites_sha256
    );
    let interrupted = crate::run::interrupted();
    tokio::pin!(interrupted);
    let mut entries: Vec<Entry> = Vec::new();
    let mut failed_writes = false;
    {
        let mut graded = futures::stream::iter(picked.iter())
            .map(|s| {
                let opts = opts.clone();
                async move {
                    let name = submission_name(s);
                    let shared = Arc::new(Mutex::new(grader::initial(a, &name, opts.seed)));
                    grader::grade(a, s, &opts, shared).await
                }
            })
            .buffer_unordered(args.jobs);
        loop {
            let g = tokio::select! {
                biased;
                signal = &mut interrupted => {
                    eprintln!("wirecheck: stopped by {signal}; {} of {} graded, no roster written", entries.len(), picked.len());
                    return 130;
                }
                g = graded.next() => match g { Some(g) => g, None => break },
            };
            let sub_out = args.out.join(&g.submission);
            let targets: Vec<(Format, PathBuf)> = formats.iter().map(|f| (*f, sub_out.join(f.default_file()))).collect();
            if let Err(e) = write_reports(&g, &targets, audience) {
                eprintln!("error: {e}");
                failed_writes = true;
            }
            let e = Entry::from_grade(&g);
            println!(
                "{}: {} of {} points{} ({:.1}s)",
                e.submission,
                super::score::fmt_points(e.score),
                super::score::fmt_points(e.max),
                if e.failed.is_empty() {
                    String::new()
                } else {
                    format!("; not passed: {}", e.failed.join(", "))
                },
                e.duration_s
            );
            entries.push(e);
        }
    }
    entries.sort_by(|x, y| x.submission.cmp(&y.submission));
    let r = Roster {
        schema: roster::SCHEMA.into(),
        assignment: a.name.clone(),
        assignment_sha256: a.sha256.clone(),
        suites_sha256: a.suites_sha256.clone(),
        seed: opts.seed,
        shard: args.shard.map(|s| s.to_string()),
        submissions: entries,
    };
    if let Err(e) = r.write(&args.out) {
        eprintln!("error: cannot write the roster into {}: {e}", args.out.display());
        return 2;
    }
    println!(
        "roster: {} and {}",
        args.out.join("roster.json").display(),
        args.out.join("roster.csv").display()
    );
    if failed_writes {
        2
    } else {
        0
    }
}

/// `wirecheck merge`.
pub fn cmd_merge(args: MergeArgs) -> i32 {
    let mut rosters = Vec::new();
    for p in &args.rosters {
        let r: Result<Roster, String> = std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("not a roster.json: {e}")));
        match r {
            Ok(r) => rosters.push((p.clone(), r)),
            Err(e) => {
                eprintln!("error: {}: {e}", p.display());
                return 2;
            }
        }
    }
    let protected: Vec<PathBuf> = args.rosters.iter().map(|p| absolute(p)).collect();
    for name in ["roster.json", "roster.csv"] {
        let target = absolute(&args.out.join(name));
        if protected.contains(&target) {
            eprintln!(
                "error: merging into {} would overwrite an input roster; choose another --out",
                target.display()
            );
            return 2;
        }
    }
    match roster::merge(&rosters) {
        Ok(r) => {
            if let Err(e) = r.write(&args.out) {
                eprintln!("error: cannot write into {}: {e}", args.out.display());
                return 2;
            }
            println!(
                "merged {} rosters: {} submissions into {}",
                rosters.len(),
                r.submissions.len(),
                args.out.join("roster.json").display()
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
