//! The runner: selects cases, leases targets, runs cases concurrently, hands results to reporters.

mod actors;
pub mod capture;
mod case;
pub mod child;
mod conn;
mod diagnose;
mod folder;
pub mod jail;
pub mod process;
pub mod quic;
pub mod ready;
mod result;
pub mod sandbox;
mod target;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

pub use case::Failure;
use case::{run_case, Env};
use child::Exit;
pub use result::{CaseResult, Reporter, Summary, Verdict};
pub use target::{Launcher, SuiteTarget, TargetError, TargetSpec};

use crate::dialogue::{Dialogue, Recorder};
use crate::proto;
use crate::suite::{Case, Role, Suite};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// What to test.
    pub target: TargetSpec,
    /// Cases at once (default: the number of cores for reference targets, 1 for a student's program).
    pub jobs: Option<usize>,
    /// Multiplies every step timeout.
    pub timeout_scale: f64,
    /// Only cases with one of these tags (empty: all).
    pub tags: Vec<String>,
    /// Only cases whose `suite::case` or id matches one of these globs (empty: all).
    pub case_globs: Vec<glob::Pattern>,
    /// How long a started target has to open its port.
    pub ready_timeout: Duration,
    /// How programs started as targets are confined (limits, user, folder).
    pub sandbox: sandbox::Sandbox,
    /// `--capture DIR`: record each case on the loopback, save it and check it against the sockets.
    pub capture: Option<capture::CaptureSink>,
    /// The most one case may take; a case still running then fails (grading's per-case budget).
    pub case_budget: Option<Duration>,
    /// No case starts after this instant (grading's total budget); cases not started are not reported.
    pub deadline: Option<Instant>,
    /// Actors listen on their protocols' well-known ports (53, 80): in a private network
    /// namespace, where a program with stock settings reaches them. Otherwise on a free port they share.
    pub well_known_ports: bool,
    /// Every server case against an instance of the program started for it (grading's re-runs of
    /// failed cases): side by side, except in `instances: shared` suites, which take turns.
    pub fresh_each: bool,
    /// TLS: `--tls` and what the harness trusts and offers.
    pub tls: TlsOptions,
}

/// How a run speaks TLS (`--tls`, `--ca`, `--insecure`, `--sni`, `--alpn`, `--keylog`).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Every connection to the target (and every connection a client program makes to the
    /// harness) is TLS from its first byte.
    pub on: bool,
    /// What the harness trusts as a client; None: the run's own CA (the references' certificate).
    pub trust: Option<crate::tls::Trust>,
    /// The server name asked for (SNI); None: `localhost`.
    pub sni: Option<String>,
    /// ALPN protocols offered; None: the suite's protocol's own (`h2`, `http/1.1`, or none).
    pub alpn: Option<Vec<String>>,
    /// Where the run's secrets are kept (and written, for `--keylog FILE`).
    pub keylog: Option<Arc<crate::tls::KeyLog>>,
}

impl TlsOptions {
    /// The TLS setup for a suite of protocol `proto`, with the run's certificates and key log.
    pub fn setup(
        &self,
        proto: &dyn proto::Protocol,
        certs: &Result<Arc<crate::tls::RunCerts>, String>,
        keylog: &Arc<crate::tls::KeyLog>,
    ) -> Result<Arc<crate::tls::Setup>, String> {
        let certs = certs.clone()?;
        let alpn: Vec<String> = match &self.alpn {
            Some(a) => a.clone(),
            None => proto.alpn().iter().map(|s| s.to_string()).collect(),
        };
        let trust = self.trust.clone().unwrap_or_else(|| certs.trust());
        let sni = self.sni.as_deref().unwrap_or(crate::tls::SERVER_NAME);
        let client = crate::tls::ClientTls::new(&trust, sni, &alpn, keylog.clone()).map_err(|e| e.to_string())?;
        let server = certs.server_config(&alpn, keylog.clone()).map_err(|e| e.to_string())?;
        Ok(Arc::new(crate::tls::Setup {
            on: self.on,
            client,
            server,
            certs,
            keylog: keylog.clone(),
        }))
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            target: TargetSpec::Reference,
            jobs: None,
            timeout_scale: 1.0,
            tags: Vec::new(),
            case_globs: Vec::new(),
            ready_timeout: Duration::from_secs(10),
            sandbox: sandbox::Sandbox::default(),
            capture: None,
            case_budget: None,
            deadline: None,
            well_known_ports: false,
            fresh_each: false,
            tls: TlsOptions::default(),
        }
    }
}

/// Whether `case` of `suite` is selected by the tag and glob filters.
pub fn selected(opts: &RunOptions, suite: &Suite, case: &Case) -> bool {
    let tag_ok = opts.tags.is_empty() || case.tags.iter().any(|t| opts.tags.contains(t));
    let full = format!("{}::{}", suite.name, case.id);
    let glob_ok = opts.case_globs.is_empty() || opts.case_globs.iter().any(|g| g.matches(&full) || g.matches(&case.id));
    tag_ok && glob_ok
}

/// Cases run at once against the bundled references when `--jobs` is not given.
pub const REFERENCE_JOBS: usize = 48;

/// Cases run at once under `--capture` when `--jobs` is not given.
pub const CAPTURE_JOBS: usize = 4;

/// Cases run at once against a program `--exec` starts, when `--jobs` is not given (each then
/// with an instance of its own): few enough that a 2-core grading machine keeps every case's
/// timing.
pub const EXEC_JOBS: usize = 8;

/// Runs the selected cases of `suites`, reporting each as it finishes.
pub async fn run(suites: &[Arc<Suite>], opts: &RunOptions, reporter: &mut dyn Reporter) -> Summary {
    let started = Instant::now();
    // One CA and leaf per run, made in a few milliseconds; STARTTLS cases need them without --tls.
    let certs = crate::tls::RunCerts::generate().map(Arc::new).map_err(|e| e.to_string());
    // A captured run's sink holds the key log the run writes to.
    let keylog = match (&opts.tls.keylog, &opts.capture) {
        (Some(k), _) => k.clone(),
        (None, Some(sink)) => sink.keylog.clone(),
        (None, None) => Arc::default(),
    };
    let targets: Vec<Arc<SuiteTarget>> = suites
        .iter()
        .map(|s| {
            let proto = proto::find(&s.protocol).expect("the loader checked the protocol");
            Arc::new(
                SuiteTarget::new(s.clone(), opts.target.clone(), opts.ready_timeout)
                    .with_sandbox(opts.sandbox.clone())
                    .fresh_each(opts.fresh_each)
                    .with_tls(opts.tls.setup(proto, &certs, &keylog)),
            )
        })
        .collect();
    let mut work = Vec::new();
    for (si, s) in suites.iter().enumerate() {
        for (ci, c) in s.cases.iter().enumerate() {
            if selected(opts, s, c) {
                work.push((si, ci));
            }
        }
    }
    let jobs = opts.jobs.unwrap_or(match opts.target {
        // One server at an address may serve one client at a time by design: one case at a time.
        TargetSpec::Addr(_) => 1,
        // Server cases take turns on one instance (`SuiteTarget::turn`) until it hangs; then
        // they start their own and run side by side, so a program that hangs costs a few rounds
        // of timeouts, not one per case. A client program is started per case anyway.
        TargetSpec::Exec(_) => EXEC_JOBS,
        // Cases against the references spend their time waiting on sockets and timers, not on
        // the CPU: 549 cases take 23 s at 2 at a time on 2 cores, 3.4 s at 48.
        TargetSpec::Reference => REFERENCE_JOBS,
    });
    // One libpcap handle sees every case's packets: at 48 cases at once its buffer overflows and
    // drops some (the capture then differs from the sockets), so a captured run goes slower.
    let jobs = match (opts.jobs, &opts.capture) {
        (None, Some(_)) => jobs.min(CAPTURE_JOBS),
        _ => jobs,
    };
    // Actors on their well-known ports (53, 80) are one set per machine: cases that start them
    // cannot run side by side.
    let jobs = match opts.well_known_ports && suites.iter().any(|s| !s.actors.is_empty()) {
        true => 1,
        false => jobs,
    };
    reporter.start(work.len());
    let mut summary = Summary::default();
    let deadline = opts.deadline;
    let mut results = futures::stream::iter(work)
        // Pulled only when a slot frees up, so this checks the deadline as each case is about to start.
        .take_while(move |_| std::future::ready(deadline.is_none_or(|d| Instant::now() < d)))
        .map(|(si, ci)| {
            let suite = suites[si].clone();
            let target = targets[si].clone();
            async move {
                let Some(sink) = &opts.capture else {
                    return run_one(&target, suite, ci, opts).await;
                };
                let start = sink.live.begin_case();
                let keys_from = sink.keylog.mark();
                let (mut result, target_error) = run_one(&target, suite, ci, opts).await;
                sink.finish_case(start, keys_from, &mut result).await;
                (result, target_error)
            }
        })
        .buffer_unordered(jobs.max(1));
    while let Some((result, target_error)) = results.next().await {
        summary.max_points += result.max_points();
        summary.points += result.points;
        match result.verdict {
            Verdict::Pass => summary.passed += 1,
            Verdict::Fail => summary.failed += 1,
            Verdict::Error => summary.errors += 1,
            Verdict::NotApplicable => summary.not_applicable += 1,
        }
        if let Some(e) = target_error {
            if !summary.target_errors.iter().any(|known| known.to_string() == e.to_string()) {
                summary.target_errors.push(e);
            }
        }
        reporter.case_finished(&result);
    }
    drop(results);
    for t in &targets {
        t.stop().await;
    }
    summary.duration_ms = started.elapsed().as_millis() as u64;
    summary
}

/// Runs one case against its suite's target.
pub async fn run_one(target: &SuiteTarget, suite: Arc<Suite>, index: usize, opts: &RunOptions) -> (CaseResult, Option<TargetError>) {
    let case = &suite.cases[index];
    // Cases sharing one instance of the program take turns; `own`: an instance of the case's
    // own. The case's time starts with its turn.
    let (turn, own) = target.turn(case).await;
    let started = Instant::now();
    let rec = Recorder::new();
    let proto = proto::find(&suite.protocol).expect("the loader checked the protocol");
    let fail = |msg: String| CaseResult {
        suite: suite.clone(),
        index,
        verdict: Verdict::Error,
        points: 0.0,
        duration: started.elapsed(),
        failure: Some(Failure {
            message: msg,
            ..Failure::default()
        }),
        dialogue: Dialogue::default(),
        stderr_tail: None,
        warnings: Vec::new(),
    };
    let (instance, launcher) = match suite.role {
        Role::Server => match target.lease(own).await {
            Ok(i) => (Some(i), None),
            Err(e) => return (fail(e.to_string()), Some(e)),
        },
        // Only a `start` step needs the client: a suite where the harness plays both sides runs without one.
        Role::Client => (None, Some(target.launcher())),
    };
    // The program under test writes in the case's folder: it belongs to the user it runs as.
    let owner = match &launcher {
        Some(Ok(target::Launcher::Exec(_, sandbox))) => sandbox.run_as.resolve().ok().flatten(),
        _ => None,
    };
    let env = Env {
        suite: suite.clone(),
        proto,
        target: instance.as_ref().map(|i| i.addr),
        extra: instance.as_ref().map(|i| i.extra.clone()).unwrap_or_default(),
        program: tokio::sync::Mutex::new(instance.as_ref().and_then(|i| i.program.clone())),
        launcher,
        scale: opts.timeout_scale,
        rec: rec.clone(),
        output_pos: std::sync::Mutex::new(0),
        warnings: std::sync::Mutex::default(),
        well_known_ports: opts.well_known_ports,
        folder: Arc::new(folder::CaseFolder::new(owner)),
        tls: target.tls(),
    };
    let was_running = instance
        .as_ref()
        .and_then(|i| i.program.as_ref())
        .is_some_and(|p| p.exited().is_none());
    let outcome = match opts.case_budget {
        Some(budget) => match tokio::time::timeout(budget, run_case(&env, case)).await {
            Ok(o) => o,
            Err(_) => Err(Failure {
                message: format!("the case ran out of its time budget ({budget:?})"),
                ..Failure::default()
            }),
        },
        None => run_case(&env, case).await,
    };
    let program = env.program.lock().await.take();
    let mut failure = outcome.err();
    let mut stderr_tail = None;
    // A program that ended during the case is broken, whatever premise the failing step had.
    let mut ended = false;
    if let Some(p) = &program {
        if failure.is_some() {
            // A crashing program is still exiting and writing its traceback: give it a moment.
            let dying = match &instance {
                Some(i) => !i.alive(suite.transport).await,
                None => p.exited().is_some(),
            };
            if dying {
                p.stderr.closed(tokio::time::Instant::now() + Duration::from_millis(500)).await;
            }
        }
        if let (Some(f), Some(exit)) = (failure.as_mut(), p.exited()) {
            if was_running || suite.role == Role::Client {
                // A server that ended, or a client that crashed; a client may exit 0 when done.
                ended = was_running || exit != Exit::Code(0);
                f.message.push_str(&format!(" (the target ended with {exit} during this case)"));
            }
            f.server_exited_cleanly = was_running && suite.role == Role::Server && exit == child::Exit::Code(0);
        }
        if let Some(f) = failure.as_mut() {
            let tail = p.stderr.tail(2000);
            // Name the sandbox limit that stopped the program (programs we started only: the
            // limits apply to nothing else).
            if p.pgid().is_some() {
                if let Some(why) = sandbox::explain(p.exited(), &tail, &opts.sandbox.limits, p.cpu_used()) {
                    f.message.push_str(&format!(" — sandbox: {why}"));
                }
            }
            if !tail.trim().is_empty() {
                stderr_tail = Some(tail);
            }
        }
    }
    // A client we started belongs to this case alone; so does a fresh server.
    if suite.role == Role::Client {
        if let Some(p) = program.and_then(|p| Arc::try_unwrap(p).ok()) {
            p.kill().await;
        }
    } else {
        drop(program);
    }
    if own {
        if let Some(i) = instance {
            i.stop().await;
        }
    } else if turn.is_some() && failure.as_ref().is_some_and(|f| f.silent_timeout) {
        target.note_silence();
    }
    drop(turn);
    let dialogue = rec.snapshot();
    if let Some(f) = failure.as_mut() {
        let failed = diagnose::Failed {
            expected: f.expected.as_deref(),
            send_cut_short: f.send_cut_short,
            server_exited_cleanly: f.server_exited_cleanly,
        };
        // What the case found first (an actor's verdict on the program) stays ahead of the hints.
        let found = std::mem::take(&mut f.hints);
        f.hints = found.into_iter().chain(diagnose::hints(&dialogue, failed)).collect();
    }
    let verdict = match &failure {
        None => Verdict::Pass,
        Some(f) if f.premise.is_some() && !ended => Verdict::NotApplicable,
        Some(_) => Verdict::Fail,
    };
    let result = CaseResult {
        suite: suite.clone(),
        index,
        verdict,
        points: if verdict == Verdict::Pass { case.points } else { 0.0 },
        duration: started.elapsed(),
        failure,
        dialogue,
        stderr_tail,
        warnings: env.warnings.lock().map(|w| w.clone()).unwrap_or_default(),
    };
    (result, None)
}

/// Resolves on Ctrl-C or SIGTERM (a CI job cancelled, a grading platform's timeout), naming the signal. The handlers are
/// registered when this is called, not when the future is first polled.
pub fn interrupted() -> impl std::future::Future<Output = &'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(int) => "Ctrl-C",
            _ = wait(term) => "SIGTERM",
        }
    }
}
