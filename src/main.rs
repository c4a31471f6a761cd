//! The `wirecheck` command line: run, list, serve, decode, grade, merge, check, completions, man.

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use wirecheck::cli::{self, check::CheckArgs, decode::DecodeArgs, grade, list::ListArgs, run::RunArgs, serve::ServeArgs};
use wirecheck::run::sandbox;

const AFTER_HELP: &str = "\
Exit status: 0 every selected case passed; 1 a case failed; 2 a usage, suite or capture-file
error (with its location); 3 the target could not be started or reached; 4 (decode, check) a
damaged capture file (cut short or corrupt), decoded up to the damage, which is named.

Examples:
  wirecheck run                                   every suite against the bundled reference servers
  wirecheck run tcp-upper --exec 'python3 server.py {port}'
  wirecheck run udp-pinger --exec 'python3 client.py 127.0.0.1 {port}'
  wirecheck run tcp-upper --target 127.0.0.1:12000 --case 'split-*'
  wirecheck run tcp-upper --exec 'python3 server.py {port}' --failed   only what failed last time
  wirecheck run tcp-upper --exec 'python3 server.py {port}' --limit cpu=2s --limit memory=256M
      --limit processes=64 --user wirecheck-sandbox --cwd alice/ --isolate   (as root: confined)
  wirecheck run --report junit:results.xml --report json:-
  wirecheck run tcp-upper --exec 'python3 server.py {port}' --report html:report.html
      one page: summary, failure blocks, each case's dialogue as a ladder diagram
  wirecheck run http --report markdown:summary.md --report tap:-   (every grade format works)
  wirecheck run http --capture captures/          one pcapng per case, open them in Wireshark
  wirecheck run http --tls --exec 'python3 https_server.py {port} {cert} {key}'   over TLS, the run's certificate
  wirecheck run smtp --tls --target 127.0.0.1:465 --ca ca.pem --keylog keys.log
  wirecheck list --format json
  wirecheck list http --tag conditional
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
    List(ListArgs),
    /// Run one reference server on its own, to poke with nc, telnet or your own client.
    #[command(
        after_help = "Examples:\n  wirecheck serve tcp-upper --port 12000\n  wirecheck serve udp-pinger --port 12000 --option loss=0.5 --option seed=7\n  wirecheck serve socket-timeout --option timeout=10s\n  wirecheck serve dns --zone fixtures/dns/example.test.zone --port 5353   (then: dig @127.0.0.1 -p 5353 example.test A)\n  wirecheck serve ftp --root fixtures/ftp --port 2121   (then: curl ftp://127.0.0.1:2121/lines.txt)"
    )]
    Serve(ServeArgs),
    /// Print the transcript of every conversation in a pcap or pcapng capture.
    #[command(
        after_help = "Exit status: 0 decoded; 2 a usage error or a file that is no capture; 4 a damaged file (cut short or\ncorrupt): everything before the damage is printed, then the damage (packet number, byte offset).\n\nExamples:\n  wirecheck decode trace.pcap\n  wirecheck decode trace.pcapng --port 8888=http --format json\n  wirecheck decode https.pcapng --keylog sslkeys.log    (SSLKEYLOGFILE format)"
    )]
    Decode(DecodeArgs),
    /// Grade submissions against an assignment (ci/assignments/*.yaml) and write reports for grading platforms.
    #[command(after_help = GRADE_HELP)]
    Grade(grade::GradeArgs),
    /// Grade one submission inside its sandbox (started by `grade`, never by hand).
    #[command(hide = true)]
    GradeWorker(wirecheck::grade::worker::WorkerArgs),
    /// Combine the roster.json files of `grade --shard` jobs into one roster.
    #[command(after_help = "Example:\n  wirecheck merge shard-1/roster.json shard-2/roster.json --out grades")]
    Merge(grade::MergeArgs),
    /// Check a capture: each protocol's passive rules, a suite case's expectations, or a stored transcript.
    #[command(after_help = CHECK_HELP)]
    Check(CheckArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  wirecheck completions bash > ~/.local/share/bash-completion/completions/wirecheck\n  wirecheck completions zsh > ~/.zfunc/_wirecheck\n  wirecheck completions fish > ~/.config/fish/completions/wirecheck.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): wirecheck's, or one command's.
    #[command(after_help = "Examples:\n  wirecheck man > wirecheck.1 && man ./wirecheck.1\n  wirecheck man run > wirecheck-run.1")]
    Man {
        /// A command (run, grade, check, ...): its own page, with every option.
        command: Option<String>,
    },
}

const CHECK_HELP: &str = "\
Without --suite, every conversation is checked against its protocol's passive rules: each message
well-formed (the codec's MUST findings), no sender closing mid-message, and rules over the whole
conversation (HTTP: one final response per request; SMTP/POP3: one reply per command, greeting
first; DNS: response ids match a query). SHOULD findings are warnings. TLS (after STARTTLS too)
is shown as records and never judged as the protocol it carries; with --keylog (or the capture's
own Decryption Secrets Blocks) it is decrypted and judged as that protocol.

With --suite (and --case), the capture replays the target's side of the dialogue to the case's
steps, so the verdict is the one `wirecheck run` would give for the same bytes (server suites).

Exit status: 0 clean; 1 a rule, expectation or snapshot failed; 2 a usage error or a file that is
no capture; 4 clean as far as a damaged capture (cut short or corrupt) could be read: everything
before the damage is judged, and the damage named (packet number and byte offset).

Examples:
  wirecheck check my-server.pcapng
  wirecheck check trace.pcap --port 8888=http --format json
  wirecheck check smtp-client.pcapng --port 2525=smtp --side client
  wirecheck check https.pcapng --keylog sslkeys.log
  wirecheck check run.pcapng --suite http --case conditional-get-304
  wirecheck check run.pcapng --snapshot expected.txt     (make one with: wirecheck decode run.pcapng > expected.txt)";

/// Examples for `wirecheck grade --help`.
const GRADE_HELP: &str = "\
Exit status: 0 every case passed; 1 a case did not pass; 2 a usage or assignment error (with its
location); 3 the build failed or the program could not be started. With --submissions: 0 once
every submission is graded and the roster written.

Examples:
  wirecheck grade ci/assignments/webserver.yaml --submission WebServer.py --student
  wirecheck grade ci/assignments/webserver.yaml --submission alice/ --report gradescope:results.json
  wirecheck grade ci/assignments/webserver.yaml --submission alice/ --report html
      (grades/report.html; with --student, hidden cases show name, status and points only)
  wirecheck grade ci/assignments/proxy.yaml --submissions class/ --jobs 2 --report junit --out grades
  wirecheck grade ci/assignments/proxy.yaml --submissions class/ --shard 2/4 --out grades-2
  wirecheck merge grades-*/roster.json --out grades";

fn main() -> ExitCode {
    let parsed = Cli::parse();
    match &parsed.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "wirecheck", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man { command } => {
            let top = Cli::command();
            let page = match command {
                None => top,
                Some(name) => match top.find_subcommand(name) {
                    // A command's page is named as man names them: wirecheck-run(1).
                    Some(sub) => sub.clone().name(format!("wirecheck-{name}")).version(env!("CARGO_PKG_VERSION")),
                    None => {
                        let known: Vec<_> = top.get_subcommands().map(|c| c.get_name().to_string()).collect();
                        eprintln!("error: no command '{name}'; commands: {}", known.join(", "));
                        return ExitCode::from(cli::USAGE as u8);
                    }
                },
            };
            return match clap_mangen::Man::new(page).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write the manual page: {e}");
                    ExitCode::from(cli::USAGE as u8)
                }
            };
        }
        _ => {}
    }
    // A network namespace belongs to the thread that makes it and the threads it starts after:
    // enter it before the runtime's threads exist.
    let isolate = match &parsed.command {
        Command::Run(args) => args.isolate,
        Command::Grade(args) => args.isolate,
        _ => false,
    };
    if isolate {
        if let Err(e) = sandbox::isolate_network() {
            eprintln!("error: --isolate: {e}");
            return ExitCode::from(cli::USAGE as u8);
        }
    }
    // A grading worker enters its sandbox's namespaces while it is still one thread.
    if let Command::GradeWorker(args) = &parsed.command {
        if let Err(e) = wirecheck::run::jail::enter(args.disk, &args.keep) {
            eprintln!("error: the grading sandbox cannot be made: {e}");
            return ExitCode::from(wirecheck::run::jail::NO_JAIL as u8);
        }
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(cli::USAGE as u8);
        }
    };
    let code = rt.block_on(async {
        match parsed.command {
            Command::Run(args) => cli::run::run(args).await,
            Command::List(args) => cli::list::list(args),
            Command::Serve(args) => cli::serve::serve(args).await,
            Command::Decode(args) => cli::decode::decode(args),
            Command::Check(args) => cli::check::check(args).await,
            Command::Grade(args) => grade::grade(args).await,
            Command::Merge(args) => grade::merge(args),
            Command::GradeWorker(args) => wirecheck::grade::worker::work(args).await,
            Command::Completions { .. } | Command::Man { .. } => unreachable!("answered before the runtime starts"),
        }
    });
    // Background tasks (pipes of killed targets) must not keep the process alive.
    rt.shutdown_timeout(Duration::from_millis(200));
    ExitCode::from(code as u8)
}
