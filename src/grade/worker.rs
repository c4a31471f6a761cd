//! One submission graded in a sandbox of its own (`run::jail`): the hidden `grade-worker`
//! command that grades inside it, and the side of `wirecheck grade` that starts a worker per
//! submission and reads back what it sends.
//!
//! The worker sends one JSON object per line on its stdout: a `live` line per finished case
//! (when the grader prints them) and, last, `done` with every report already rendered, the
//! roster row and the console text, so nothing of the grade has to cross back as data
//! structures, and the grader writes the files in its own view of the disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::assignment::{self, Assignment};
use super::formats::{console_text, live_line, Audience, Format};
use super::grader::{self, GradeOptions, LiveFn};
use super::roster::Entry;
use super::score::{Grade, GradedCase};
use crate::run::jail;
use crate::run::sandbox::{self, SandboxError};

/// Arguments of the hidden `wirecheck grade-worker` (started by `wirecheck grade` only).
#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// The assignment file.
    #[arg(long)]
    pub assignment: Option<PathBuf>,
    /// The submission.
    #[arg(long)]
    pub submission: Option<PathBuf>,
    /// The seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Re-runs of a failed case.
    #[arg(long, default_value_t = 0)]
    pub retries: u32,
    /// The user the programs run as.
    #[arg(long)]
    pub user: Option<String>,
    /// Report formats to render.
    #[arg(long = "report")]
    pub formats: Vec<Format>,
    /// Render for a student.
    #[arg(long)]
    pub student: bool,
    /// Send a line per finished case.
    #[arg(long)]
    pub live: bool,
    /// Paths to hide once the submission is copied.
    #[arg(long)]
    pub hide: Vec<PathBuf>,
    /// Size of the private /tmp, in bytes.
    #[arg(long, default_value_t = jail::DEFAULT_DISK)]
    pub disk: u64,
    /// Paths grading reads, kept visible where they lie under a folder the sandbox replaces.
    #[arg(long)]
    pub keep: Vec<PathBuf>,
    /// Only enter the sandbox and exit 0 (whether it can be made here).
    #[arg(long)]
    pub probe: bool,
}

/// What a worker sends, one per line.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Message {
    /// A case finished: its console line.
    Live(String),
    /// The grade is done.
    Done(Done),
}

/// A finished grade as the grader uses it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Done {
    /// The roster row.
    pub entry: Entry,
    /// Each report format's name and rendered text.
    pub reports: Vec<(String, String)>,
    /// What a one-submission grading prints at the end.
    pub console: String,
    /// The exit status of a one-submission grading.
    pub code: i32,
    /// Why it scored what it did when that is not its cases' doing (for the roster line).
    pub why: String,
}

impl Done {
    /// Renders `g` for `formats` and `audience`.
    pub fn of(g: &Grade, formats: &[Format], audience: Audience) -> Done {
        let entry = Entry::from_grade(g);
        let why = match (&g.build.ok, g.target_errors.first()) {
            (false, _) => format!(
                "; build failed: {}",
                first_line(g.build.error.as_deref().unwrap_or(&g.build.output))
            ),
            (true, Some(err)) => format!("; the program did not start: {}", first_line(err)),
            (true, None) if entry.failed.is_empty() => String::new(),
            (true, None) => format!("; not passed: {}", entry.failed.join(", ")),
        };
        Done {
            reports: formats
                .iter()
                .map(|f| (f.name().to_string(), String::from_utf8_lossy(&f.render(g, audience)).into_owned()))
                .collect(),
            console: console_text(g, audience, false),
            code: if !g.build.ok || !g.target_errors.is_empty() {
                3
            } else if g.all_passed() {
                0
            } else {
                1
            },
            entry,
            why,
        }
    }

    /// The rendered report of `f`.
    pub fn report(&self, f: Format) -> &[u8] {
        self.reports
            .iter()
            .find(|(n, _)| n == f.name())
            .map_or(&[][..], |(_, text)| text.as_bytes())
    }
}

/// The first non-empty line of `text`, shortened for a one-line summary.
pub fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("(no output)");
    let line = crate::report::escape::visible_controls(line);
    match line.char_indices().nth(160) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.into_owned(),
    }
}

fn send(m: &Message) {
    let mut out = std::io::stdout().lock();
    if let Ok(line) = serde_json::to_string(m) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// A submission's name as reports show it: its folder or file name.
pub fn submission_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// `wirecheck grade-worker`, inside its sandbox (the caller entered it before the runtime).
pub async fn work(args: WorkerArgs) -> i32 {
    if args.probe {
        return 0;
    }
    let (Some(path), Some(submission), Some(user)) = (&args.assignment, &args.submission, &args.user) else {
        eprintln!("error: grade-worker needs --assignment, --submission and --user (it is started by wirecheck grade)");
        return 2;
    };
    let a = match assignment::load_file(path) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let audience = if args.student { Audience::Student } else { Audience::Staff };
    let live: Option<LiveFn> = match args.live {
        true => Some(Arc::new(|c: &GradedCase| send(&Message::Live(live_line(c))))),
        false => None,
    };
    let hide = args.hide.clone();
    let opts = GradeOptions {
        seed: args.seed,
        retries: args.retries,
        user: Some(user.clone()),
        live,
        after_copy: Some(Arc::new(move || jail::hide(&hide))),
    };
    let shared = Arc::new(Mutex::new(grader::initial(&a, &submission_name(submission), args.seed)));
    let interrupted = crate::run::interrupted();
    let (g, code) = tokio::select! {
        biased;
        signal = interrupted => {
            let mut g = shared.lock().unwrap_or_else(|e| e.into_inner()).clone();
            grader::mark_unrun(&mut g, &format!("not run (grading was stopped by {signal})"));
            (g, Some(130))
        }
        g = grader::grade(&a, submission, &opts, shared.clone()) => (g, None),
    };
    let mut done = Done::of(&g, &args.formats, audience);
    if let Some(c) = code {
        done.code = c;
    }
    let code = done.code;
    send(&Message::Done(done));
    code
}

/// How the grader starts workers: the sandbox works here, or why not.
#[derive(Debug, Clone)]
pub enum Jail {
    /// Each submission is graded in a worker in its own sandbox.
    On {
        /// Size of each submission's private /tmp.
        disk: u64,
        /// Paths the programs must not see (the submissions, the reports folder).
        hide: Vec<PathBuf>,
    },
    /// Graded in this process (not root, not Linux, `--no-sandbox`, or the kernel refused).
    Off,
}

/// The user of concurrent job `slot` (1-based) in the sandbox.
pub fn job_user(slot: usize) -> String {
    format!("wirecheck-job{slot}")
}

/// The wirecheck program workers run: this one, or, for a program that links the library (a
/// benchmark in `target/release/examples/`), the `wirecheck` beside it or one folder up.
pub fn exe() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find wirecheck's own program: {e}"))?;
    if me.file_name().is_some_and(|n| n.to_string_lossy().starts_with("wirecheck")) {
        return Ok(me);
    }
    let near = [me.parent(), me.parent().and_then(Path::parent)];
    let found = near.into_iter().flatten().map(|d| d.join("wirecheck")).find(|p| p.is_file());
    found.ok_or_else(|| {
        format!(
            "{} is not wirecheck, and no wirecheck program is beside it to grade in",
            me.display()
        )
    })
}

/// Whether the sandbox can be made here: a worker that only enters it. Err says why not.
pub fn probe() -> Result<(), String> {
    if !sandbox::is_root() {
        return Err("not root: namespaces and a user per job need root".into());
    }
    let exe = exe()?;
    let out = std::process::Command::new(exe)
        .args(["grade-worker", "--probe"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start a grading worker: {e}"))?;
    match out.status.code() {
        Some(0) => Ok(()),
        _ => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    }
}

/// Creates the users of `jobs` concurrent jobs when missing.
pub fn ensure_job_users(jobs: usize) -> Result<(), SandboxError> {
    for slot in 1..=jobs {
        sandbox::ensure_user(&job_user(slot))?;
    }
    Ok(())
}

/// Called with a finished case's console line.
pub type LineFn = Arc<dyn Fn(&str) + Send + Sync>;

/// One submission to grade in a worker.
pub struct Job<'a> {
    /// The assignment (already loaded here, for the budget and the grade a failed worker leaves).
    pub assignment: &'a Assignment,
    /// Its file.
    pub assignment_path: &'a Path,
    /// The submission.
    pub submission: &'a Path,
    /// Seed and re-runs.
    pub opts: &'a GradeOptions,
    /// The concurrent job's slot (its user).
    pub slot: usize,
    /// Reports to render.
    pub formats: &'a [Format],
    /// Who reads them.
    pub audience: Audience,
    /// Called with each finished case's console line.
    pub live: Option<LineFn>,
    /// The size of the private /tmp.
    pub disk: u64,
    /// What to hide.
    pub hide: &'a [PathBuf],
}

/// Reads a worker's messages until its grade (None: it ended without one).
async fn read_done(out: BufReader<tokio::process::ChildStdout>, live: Option<LineFn>) -> Option<Done> {
    let mut lines = out.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match serde_json::from_str::<Message>(&line) {
            Ok(Message::Live(l)) => {
                if let Some(f) = &live {
                    f(&l);
                }
            }
            Ok(Message::Done(d)) => return Some(d),
            Err(_) => {}
        }
    }
    None
}

/// Most bytes of a worker's stderr kept for the note when it fails.
const STDERR_KEPT: usize = 4000;

/// Grades `job.submission` in a worker in its own sandbox. A worker that ends without a grade
/// (killed, crashed, over its time) leaves every case not run, with why, never a lost row.
/// `stop` fires when grading is interrupted: the worker is told (SIGTERM) and has a few
/// seconds to send what it graded so far.
pub async fn grade_in_jail(job: Job<'_>, stop: impl std::future::Future<Output = ()>) -> Done {
    let failed = |why: String| {
        let mut g = grader::initial(job.assignment, &submission_name(job.submission), job.opts.seed);
        grader::mark_unrun(&mut g, &format!("not run: {why}"));
        g.notes.push(why);
        Done::of(&g, job.formats, job.audience)
    };
    let exe = match exe() {
        Ok(e) => e,
        Err(e) => return failed(e),
    };
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("grade-worker")
        .arg("--assignment")
        .arg(jail::absolute(job.assignment_path))
        .arg("--submission")
        .arg(jail::absolute(job.submission))
        .args(["--seed", &job.opts.seed.to_string()])
        .args(["--retries", &job.opts.retries.to_string()])
        .args(["--user", &job_user(job.slot)])
        .args(["--disk", &job.disk.to_string()]);
    for f in job.formats {
        cmd.args(["--report", f.name()]);
    }
    for h in job.hide {
        cmd.arg("--hide").arg(h);
    }
    let here = std::env::current_dir().unwrap_or_default();
    let folder = job.assignment_path.parent().unwrap_or(Path::new("."));
    for k in [here.as_path(), folder, job.submission] {
        cmd.arg("--keep").arg(jail::absolute(k));
    }
    if job.audience == Audience::Student {
        cmd.arg("--student");
    }
    if job.live.is_some() {
        cmd.arg("--live");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot start the grading worker: {e}")),
    };
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return failed("the grading worker has no output pipes".into());
    };
    let errors = tokio::spawn(async move {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > STDERR_KEPT {
                kept.drain(..kept.len() - STDERR_KEPT);
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    });
    // The worker keeps its own budgets; this bound only stops a worker that broke.
    let bound = job.assignment.budget.platform.unwrap_or(job.assignment.budget.total * 2) + Duration::from_secs(60);
    let read = read_done(BufReader::new(stdout), job.live.clone());
    tokio::pin!(read);
    tokio::pin!(stop);
    let done = tokio::select! {
        r = tokio::time::timeout(bound, &mut read) => r.ok(),
        _ = &mut stop => {
            if let Some(pid) = child.id() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
            }
            tokio::time::timeout(Duration::from_secs(10), &mut read).await.ok()
        }
    };
    let finished = done.is_some();
    let done = done.flatten();
    if !finished {
        let _ = child.start_kill();
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let stderr = tokio::time::timeout(Duration::from_secs(2), errors)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    match done {
        Some(d) => d,
        None if !finished => failed(format!("the grading worker took longer than {bound:?} and was stopped")),
        None => {
            let how = match status {
                Ok(Ok(s)) => s.to_string(),
                _ => "did not end".into(),
            };
            failed(format!(
                "the grading worker ended ({how}) before the grade was done: {}",
                first_line(&stderr)
            ))
        }
    }
}
