//! The `wirecheck` command line: run, list, serve, decode, grade, merge.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use wirecheck::report::{Console, Fanout, ReportSpec};
use wirecheck::run::sandbox::{self, Limits, RunAs, Sandbox};
use wirecheck::run::{self, Reporter, RunOptions, TargetSpec};
use wirecheck::suite::{self, Suite};

const AFTER_HELP: &str = "\
Exit status: 0 every selected case passed; 1 a case failed; 2 a usage, suite or capture-file
error (with its location); 3 the target could not be started or reached.

Examples:
  wirecheck run                                   every suite against the bundled reference servers
  wirecheck run tcp-upper --exec 'python3 server.py {port}'
  wirecheck run udp-pinger --exec 'python3 client.py 127.0.0.1 {port}'
  wirecheck run tcp-upper --target 127.0.0.1:12000 --case 'split-*'
  wirecheck run tcp-upper --exec 'python3 server.py {port}' --limit cpu=2s --limit memory=256M
      --limit processes=64 --user wirecheck-sandbox --cwd alice/ --isolate   (as root: confined)
  wirecheck run --report junit:results.xml --report json:-
  wirecheck run http --capture captures/          one pcapng per case, open them in Wireshark
  wirecheck list --format json
  wirecheck serve tcp-upper --port 12000";

#[derive(Parser)]
#[command(name = "wirecheck", version, about = "Conformance tests for application-layer protocols (Kurose & Ross ch. 2)", after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run suites against a target (default: the bundled reference servers).
    #[command(after_help = AFTER_HELP)]
    Run(RunArgs),
    /// List suites and their cases (ids, tags, points).
    List {
        /// Suite names (under suites/) or paths; none means all.
        suites: Vec<String>,
        /// Output format.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Run one reference server on its own, to poke with nc, telnet or your own client.
    #[command(
        after_help = "Examples:\n  wirecheck serve tcp-upper --port 12000\n  wirecheck serve udp-pinger --port 12000 --option loss=0.5 --option seed=7\n  wirecheck serve socket-timeout --option timeout=10s\n  wirecheck serve dns --zone fixtures/dns/example.test.zone --port 5353   (then: dig @127.0.0.1 -p 5353 example.test A)"
    )]
    Serve {
        /// Server name (see `wirecheck serve --list`).
        #[arg(required_unless_present = "list")]
        name: Option<String>,
        /// Port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Server option KEY=VALUE (repeatable).
        #[arg(long = "option", value_name = "KEY=VALUE")]
        options: Vec<String>,
        /// A zone file for the dns server (same as --option zone=FILE).
        #[arg(long, value_name = "FILE")]
        zone: Option<String>,
        /// List the servers and exit.
        #[arg(long)]
        list: bool,
    },
    /// Print the transcript of every conversation in a pcap or pcapng capture.
    #[command(after_help = "Examples:\n  wirecheck decode trace.pcap\n  wirecheck decode trace.pcapng --port 8888=http --format json")]
    Decode {
        /// The capture file (pcap or pcapng).
        capture: PathBuf,
        /// Output format.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
        /// Frame conversations on port N with protocol PROTO (repeatable), e.g. 8888=http.
        #[arg(long = "port", value_name = "N=PROTO")]
        ports: Vec<String>,
    },
    /// Grade submissions against an assignment (ci/assignments/*.yaml) and write reports for grading platforms.
    #[command(after_help = wirecheck::grade::cli::GRADE_HELP)]
    Grade(wirecheck::grade::cli::GradeArgs),
    /// Combine the roster.json files of `grade --shard` jobs into one roster.
    #[command(after_help = "Example:\n  wirecheck merge shard-1/roster.json shard-2/roster.json --out grades")]
    Merge(wirecheck::grade::cli::MergeArgs),
    /// Check a capture: each protocol's passive rules, a suite case's expectations, or a stored transcript.
    #[command(after_help = CHECK_HELP)]
    Check(CheckArgs),
}

const CHECK_HELP: &str = "\
Without --suite, every conversation is checked against its protocol's passive rules: each message
well-formed (the codec's MUST findings), no sender closing mid-message, and rules over the whole
conversation (HTTP: one final response per request; SMTP/POP3: one reply per command, greeting
first; DNS: response ids match a query). SHOULD findings are warnings.

With --suite (and --case), the capture replays the target's side of the dialogue to the case's
steps, so the verdict is the one `wirecheck run` would give for the same bytes (server suites).

Exit status: 0 clean; 1 a rule, expectation or snapshot failed; 2 a usage or capture-file error.

Examples:
  wirecheck check my-server.pcapng
  wirecheck check trace.pcap --port 8888=http --format json
  wirecheck check smtp-client.pcapng --port 2525=smtp --side client
  wirecheck check run.pcapng --suite http --case conditional-get-304
  wirecheck check run.pcapng --snapshot expected.txt     (make one with: wirecheck decode run.pcapng > expected.txt)";

#[derive(clap::Args)]
struct CheckArgs {
    /// The capture file (pcap or pcapng).
    capture: PathBuf,
    /// Frame conversations on port N with protocol PROTO (repeatable), e.g. 8888=http.
    #[arg(long = "port", value_name = "N=PROTO")]
    ports: Vec<String>,
    /// Check the capture against this suite's cases instead of the passive rules.
    #[arg(long)]
    suite: Option<String>,
    /// With --suite: only this case (id or glob).
    #[arg(long, requires = "suite")]
    case: Option<String>,
    /// Whose messages the passive rules judge.
    #[arg(long, value_enum, default_value = "server")]
    side: wirecheck::capture::check::Side,
    /// Compare the decoded transcript with this file (as `wirecheck decode` prints it).
    #[arg(long, value_name = "FILE", conflicts_with = "suite")]
    snapshot: Option<PathBuf>,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Suite names (under suites/) or paths; none means every suite.
    suites: Vec<String>,
    /// Test a server already running at HOST:PORT.
    #[arg(long, conflicts_with = "exec", value_name = "HOST:PORT")]
    target: Option<String>,
    /// Start this command as the target; {port} is replaced by a free port (the harness's, for client suites).
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// Only cases with this tag (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Only cases whose id or suite::id matches this glob (repeatable).
    #[arg(long = "case", value_name = "GLOB")]
    cases: Vec<String>,
    /// Also write a report: json:PATH or junit:PATH ('-' is stdout).
    #[arg(long = "report", value_name = "FORMAT:PATH")]
    reports: Vec<ReportSpec>,
    /// Cases at once (default: cores for reference servers, 1 for --exec/--target).
    #[arg(long, short = 'j')]
    jobs: Option<usize>,
    /// Multiply every step timeout (e.g. 3 on a slow grading machine).
    #[arg(long, default_value_t = 1.0)]
    timeout_scale: f64,
    /// How long an --exec target has to open its port.
    #[arg(long, default_value = "10s", value_parser = parse_dur)]
    ready_timeout: Duration,
    /// Show the dialogue of passing cases too.
    #[arg(long, short)]
    verbose: bool,
    /// Capture every case on the loopback (libpcap; needs root or CAP_NET_RAW) into DIR/<suite>/<case>.pcapng,
    /// and check that the capture shows what the sockets recorded.
    #[arg(long, value_name = "DIR")]
    capture: Option<PathBuf>,
    /// Confine --exec programs (repeatable): cpu=2s, memory=256M, processes=64, open-files=256, file-size=10M.
    #[arg(long = "limit", value_name = "KEY=VALUE", value_parser = parse_limit)]
    limits: Vec<String>,
    /// Run --exec programs as this user (root only; `wirecheck-sandbox` is created when missing).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// The folder --exec programs run in (default: the current one).
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Run in a private network namespace with its own loopback (Linux, root): the programs
    /// under test reach nothing outside, and nothing outside reaches them.
    #[arg(long)]
    isolate: bool,
}

/// Starts the loopback capture for `--capture DIR`; without permission the run goes on without it.
fn start_capture(dir: PathBuf) -> Option<run::capture::CaptureSink> {
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("warning: --capture: cannot create {}: {e}; running without capture", dir.display());
        return None;
    }
    match wirecheck::capture::live::LiveCapture::start() {
        Ok(live) => Some(run::capture::CaptureSink { dir, live: Arc::new(live) }),
        Err(e) => {
            eprintln!("warning: --capture: {e}; running without capture (results come from the sockets alone)");
            None
        }
    }
}

/// Checks one `--limit KEY=VALUE` while clap parses, so a bad one is a usage error naming the flag.
fn parse_limit(s: &str) -> Result<String, String> {
    match Limits::default().set(s) {
        Ok(()) => Ok(s.to_string()),
        // clap names the flag and the value already.
        Err(sandbox::SandboxError::BadLimit { reason, .. }) => {
            Err(format!("{reason} (accepted: {}; sizes take K, M or G)", sandbox::LIMIT_KEYS))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn parse_dur(s: &str) -> Result<Duration, String> {
    suite::parse_duration(s)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A network namespace belongs to the thread that makes it and the threads it starts after:
    // enter it before the runtime's threads exist.
    let isolate = match &cli.command {
        Command::Run(args) => args.isolate,
        Command::Grade(args) => args.isolate,
        _ => false,
    };
    if isolate {
        if let Err(e) = sandbox::isolate_network() {
            eprintln!("error: --isolate: {e}");
            return ExitCode::from(2);
        }
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = rt.block_on(async {
        match cli.command {
            Command::Run(args) => cmd_run(args).await,
            Command::List { suites, format } => cmd_list(&suites, &format),
            Command::Serve {
                name,
                port,
                mut options,
                list,
                zone,
            } => {
                options.extend(zone.map(|z| format!("zone={z}")));
                cmd_serve(name, port, options, list).await
            }
            Command::Decode { capture, format, ports } => cmd_decode(&capture, &format, &ports),
            Command::Check(args) => cmd_check(args).await,
            Command::Grade(args) => wirecheck::grade::cli::cmd_grade(args).await,
            Command::Merge(args) => wirecheck::grade::cli::cmd_merge(args),
        }
    });
    // Background tasks (pipes of killed targets) must not keep the process alive.
    rt.shutdown_timeout(Duration::from_millis(200));
    ExitCode::from(code as u8)
}

/// Loads suites, printing every problem; None means exit 2.
fn load(names: &[String]) -> Option<Vec<Arc<Suite>>> {
    let paths = match suite::resolve(names) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return None;
        }
    };
    let mut suites = Vec::new();
    let mut failed = false;
    for p in paths {
        match suite::load_file(&p) {
            Ok(s) => suites.push(Arc::new(s)),
            Err(e) => {
                eprint!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        eprintln!("error: the suites above have errors; fix them and run again");
        return None;
    }
    Some(suites)
}

async fn cmd_run(args: RunArgs) -> i32 {
    let Some(suites) = load(&args.suites) else { return 2 };
    let mut globs = Vec::new();
    for c in &args.cases {
        match glob::Pattern::new(c) {
            Ok(g) => globs.push(g),
            Err(e) => {
                eprintln!("error: --case '{c}': {e}");
                return 2;
            }
        }
    }
    if !(args.timeout_scale > 0.0 && args.timeout_scale <= 100.0) {
        eprintln!("error: --timeout-scale must be between 0 and 100");
        return 2;
    }
    let target = match (args.target, args.exec) {
        (Some(t), _) => TargetSpec::Addr(t),
        (_, Some(c)) => TargetSpec::Exec(c),
        _ => TargetSpec::Reference,
    };
    let mut limits = Limits::default();
    for l in &args.limits {
        if let Err(e) = limits.set(l) {
            eprintln!("error: {e}");
            return 2;
        }
    }
    if args.user.is_some() && !sandbox::is_root() {
        eprintln!("wirecheck: note: --user is ignored: only root can run programs as another user");
    }
    if limits.processes.is_some() && (args.user.is_none() || !sandbox::is_root()) {
        eprintln!(
            "wirecheck: note: --limit processes counts every process of the user the program runs as, and root is exempt: use it as root with --user {}",
            sandbox::DEDICATED_USER
        );
    }
    let sandbox = Sandbox {
        limits,
        run_as: args.user.map_or(RunAs::Inherit, RunAs::User),
        cwd: args.cwd,
    };
    // A user that does not exist or cannot read the folder is a usage error, found before any case runs.
    if matches!(target, TargetSpec::Exec(_)) {
        if let Err(e) = sandbox.check() {
            eprintln!("error: {e}");
            return 2;
        }
    }
    let opts = RunOptions {
        target,
        jobs: args.jobs,
        timeout_scale: args.timeout_scale,
        tags: args.tags,
        case_globs: globs,
        ready_timeout: args.ready_timeout,
        capture: args.capture.and_then(start_capture),
        sandbox,
        ..RunOptions::default()
    };
    let selected: usize = suites
        .iter()
        .map(|s| s.cases.iter().filter(|c| run::selected(&opts, s, c)).count())
        .sum();
    if selected == 0 {
        eprintln!("error: no case matches the --tag/--case filters (see `wirecheck list`)");
        return 2;
    }
    let stdout_taken = args.reports.iter().any(|r| r.path == std::path::Path::new("-"));
    let mut reporters: Vec<Box<dyn Reporter>> = Vec::new();
    if !stdout_taken {
        reporters.push(Box::new(Console::new(args.verbose)));
    }
    reporters.extend(args.reports.iter().map(ReportSpec::reporter));
    let mut fan = Fanout(reporters);
    // Install the handlers before any target starts, so no signal can slip in between.
    let interrupted = run::interrupted();
    tokio::pin!(interrupted);
    let summary = tokio::select! {
        biased;
        signal = &mut interrupted => {
            // Dropping the run future drops every target, which kills their process groups.
            eprintln!("wirecheck: stopped by {signal}; targets killed");
            return 130;
        }
        s = run::run(&suites, &opts, &mut fan) => s,
    };
    if let Err(e) = fan.finish(&summary) {
        eprintln!("error: cannot write a report: {e}");
        return 2;
    }
    if stdout_taken {
        eprintln!(
            "wirecheck: {} passed, {} failed; {} of {} points",
            summary.passed, summary.failed, summary.points, summary.max_points
        );
        for e in &summary.target_errors {
            eprintln!("error: {e}");
        }
    }
    summary.exit_code()
}

fn cmd_list(names: &[String], format: &str) -> i32 {
    let Some(suites) = load(names) else { return 2 };
    if format == "json" {
        let doc: Vec<_> = suites
            .iter()
            .map(|s| {
                serde_json::json!({
                    "suite": s.name, "title": s.title, "file": s.source.path.display().to_string(),
                    "protocol": s.protocol, "role": s.role, "port": s.port, "reference": s.reference,
                    "max_points": s.max_points(),
                    "cases": s.cases.iter().map(|c| serde_json::json!({
                        "id": c.id, "title": c.title, "rfc": c.rfc, "tags": c.tags, "points": c.points,
                        "hidden": c.hidden, "fresh_server": c.fresh_server,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        // A closed pipe (`| head`) ends the listing quietly.
        use std::io::Write;
        let _ = writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        );
        return 0;
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for s in &suites {
        let _ = writeln!(
            out,
            "{} — {} ({} cases, {} points, {} role, {})",
            s.name,
            s.title,
            s.cases.len(),
            s.max_points(),
            if s.role == suite::Role::Server { "server" } else { "client" },
            s.source.path.display()
        );
        for c in &s.cases {
            let tags = if c.tags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", c.tags.join(", "))
            };
            if writeln!(out, "  {}::{:<32} {:>4} pts{tags}  {}", s.name, c.id, c.points, c.title).is_err() {
                return 0;
            }
        }
    }
    0
}

async fn cmd_serve(name: Option<String>, port: u16, options: Vec<String>, list: bool) -> i32 {
    if list {
        for (n, d) in reference_servers::servers() {
            println!("{n:<16} {d}");
        }
        return 0;
    }
    let name = name.unwrap_or_default();
    let mut opts = reference_servers::Options::new();
    for o in options {
        match o.split_once('=') {
            Some((k, v)) => {
                opts.insert(k.to_string(), v.to_string());
            }
            None => {
                eprintln!("error: --option '{o}' is not KEY=VALUE");
                return 2;
            }
        }
    }
    let server = match reference_servers::start_server(&name, std::net::SocketAddr::from(([127, 0, 0, 1], port)), &opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return if matches!(e, reference_servers::Error::Io(_)) { 3 } else { 2 };
        }
    };
    println!(
        "{name} listening on {} ({:?}); Ctrl-C stops it",
        server.local_addr(),
        server.transport()
    );
    let stop = run::interrupted();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if server.is_finished() {
                    println!("{name} stopped by itself");
                    break;
                }
            }
        }
    }
    server.shutdown().await;
    0
}

/// Decodes a capture for `decode` and `check`, printing its problems; Err is the exit status.
fn load_capture(path: &std::path::Path, ports: &[String]) -> Result<wirecheck::capture::Capture, i32> {
    use wirecheck::capture;
    let opts = capture::Options::from_args(ports).map_err(|e| {
        eprintln!("error: {e}");
        2
    })?;
    let cap = capture::decode_file(path, &opts).map_err(|e| {
        eprintln!("error: {}: {e}", path.display());
        2
    })?;
    for w in &cap.warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    Ok(cap)
}

async fn cmd_check(args: CheckArgs) -> i32 {
    let cap = match load_capture(&args.capture, &args.ports) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(suite) = &args.suite {
        return check_against_suite(&args, suite, &cap).await;
    }
    if let Some(snap) = &args.snapshot {
        return check_snapshot(snap, &cap);
    }
    let checked = wirecheck::capture::check::check(&cap, args.side);
    let failed = checked.iter().filter(|c| c.failed()).count();
    if args.format == "json" {
        let doc = serde_json::json!({"capture": args.capture, "conversations": checked, "failed": failed});
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
                let level = if v.level == wirecheck::proto::Level::Must {
                    "MUST"
                } else {
                    "SHOULD"
                };
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
async fn check_against_suite(args: &CheckArgs, name: &str, cap: &wirecheck::capture::Capture) -> i32 {
    use wirecheck::capture::replay::{self, Replay};
    let Some(suites) = load(&[name.to_string()]) else { return 2 };
    let Some(suite) = suites.into_iter().next() else { return 2 };
    if suite.role == suite::Role::Client {
        eprintln!(
            "error: the suite '{}' tests a client; `check --suite` replays a captured server (check a client's capture with --side client)",
            suite.name
        );
        return 2;
    }
    let port = args
        .ports
        .iter()
        .find_map(|p| p.split_once('=').and_then(|(n, _)| n.trim().parse().ok()));
    let convs = replay::pick(&cap.conversations, suite.transport, port);
    if convs.is_empty() {
        eprintln!(
            "error: {}: no conversation to replay (give the server's port with --port N={})",
            args.capture.display(),
            suite.protocol
        );
        return 2;
    }
    let globs = match args.case.as_deref().map(glob::Pattern::new).transpose() {
        Ok(g) => g.into_iter().collect(),
        Err(e) => {
            eprintln!("error: --case: {e}");
            return 2;
        }
    };
    let n = convs.len();
    let server = convs[0].server;
    let replay = match Replay::start(convs).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the replay: {e}");
            return 2;
        }
    };
    let opts = RunOptions {
        target: TargetSpec::Addr(replay.addr.to_string()),
        // Conversations are handed out in order: cases must open them in the order they were captured.
        jobs: Some(1),
        case_globs: globs,
        ..RunOptions::default()
    };
    let chosen: Vec<_> = suite.cases.iter().filter(|c| run::selected(&opts, &suite, c)).collect();
    if chosen.is_empty() {
        eprintln!(
            "error: no case of '{}' matches --case (see `wirecheck list {}`)",
            suite.name, suite.name
        );
        return 2;
    }
    // A case where the target also connects to the harness (a proxy to its origin) needs the
    // target's other side too, which a replay of one port cannot play.
    if let Some(c) = chosen
        .iter()
        .find(|c| suite::any_step(&c.steps, &|k| matches!(k, suite::StepKind::Listen { .. })))
    {
        eprintln!(
            "error: {}::{} has the target connect back to the harness (listen); such cases cannot be replayed from a capture, run them live",
            suite.name, c.id
        );
        return 2;
    }
    eprintln!("wirecheck check: replaying {n} conversation(s) of {server} to {}", suite.name);
    let mut reporters: Vec<Box<dyn Reporter>> = Vec::new();
    if args.format == "json" {
        match "json:-".parse::<ReportSpec>() {
            Ok(spec) => reporters.push(spec.reporter()),
            Err(e) => eprintln!("error: {e}"),
        }
    } else {
        reporters.push(Box::new(Console::new(false)));
    }
    let mut fan = Fanout(reporters);
    let summary = run::run(&[suite], &opts, &mut fan).await;
    if let Err(e) = fan.finish(&summary) {
        eprintln!("error: cannot write a report: {e}");
        return 2;
    }
    let extra = *replay.extra.lock().unwrap_or_else(|e| e.into_inner());
    if extra > 0 {
        eprintln!("note: the case(s) opened {extra} connection(s) more than the capture holds; they got no answer");
    }
    summary.exit_code()
}

fn check_snapshot(snap: &std::path::Path, cap: &wirecheck::capture::Capture) -> i32 {
    let want = match std::fs::read_to_string(snap) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "error: {}: {e} (make a snapshot with `wirecheck decode CAPTURE > {}`)",
                snap.display(),
                snap.display()
            );
            return 2;
        }
    };
    let got = cap.text();
    if got == want {
        println!("wirecheck check: the transcript matches {}", snap.display());
        return 0;
    }
    println!(
        "wirecheck check: the transcript differs from {} (- snapshot, + capture):",
        snap.display()
    );
    let diff = similar::TextDiff::from_lines(&want, &got);
    print!("{}", diff.unified_diff().context_radius(3));
    1
}

fn cmd_decode(path: &std::path::Path, format: &str, ports: &[String]) -> i32 {
    use std::io::Write;
    let cap = match load_capture(path, ports) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut out = std::io::stdout().lock();
    if format == "json" {
        let doc: Vec<_> = cap
            .conversations
            .iter()
            .map(|c| {
                serde_json::json!({
                    "transport": c.transport, "client": c.client.to_string(), "server": c.server.to_string(),
                    "protocol": c.protocol, "packets": c.packets, "truncated": c.truncated, "start_us": c.start_us,
                    "dialogue": c.dialogue, "transcript": c.transcript(),
                })
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return 0;
    }
    for c in &cap.conversations {
        // A closed pipe (`| head`) ends the output quietly.
        if write!(out, "== {}\n{}", c.header(), c.transcript()).is_err() {
            return 0;
        }
    }
    0
}
