//! `wirecheck run`: the arguments, their resolution into [`RunConfig`], and the run.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::error::UsageError;
use super::{last_run, load};
use crate::report::{Console, Fanout, ReportSpec, RunInfo};
use crate::run::sandbox::{self, Limits, RunAs, Sandbox};
use crate::run::{self, Reporter, RunOptions, TargetSpec};
use crate::suite::{self, Suite};

/// Arguments of `wirecheck run`, as given.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Suite names (under suites/) or paths; none means every suite.
    pub suites: Vec<String>,
    /// Test a server already running at HOST:PORT.
    #[arg(long, conflicts_with = "exec", value_name = "HOST:PORT")]
    pub target: Option<String>,
    /// Start this command as the target; {port} is replaced by a free port (the harness's, for client suites).
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// Only cases with this tag (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only cases whose id or suite::id matches this glob (repeatable).
    #[arg(long = "case", value_name = "GLOB")]
    pub cases: Vec<String>,
    /// Only the cases that failed the last time they ran from this folder against this target.
    #[arg(long)]
    pub failed: bool,
    /// Also write a report (repeatable; '-' is stdout): json (schema wirecheck.run/1), junit, html
    /// (one page, a ladder diagram per case), markdown, tap, gradescope, prairielearn, classroom.
    /// E.g. --report html:report.html --report junit:junit.xml
    #[arg(long = "report", value_name = "FORMAT:PATH")]
    pub reports: Vec<ReportSpec>,
    /// Cases at once (default: 48 against the bundled references, which mostly wait on sockets; 1 for --exec/--target).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Multiply every step timeout (e.g. 3 on a slow grading machine).
    #[arg(long, default_value_t = 1.0)]
    pub timeout_scale: f64,
    /// How long an --exec target has to open its port.
    #[arg(long, default_value = "10s", value_parser = suite::parse_duration)]
    pub ready_timeout: Duration,
    /// Show the dialogue of passing cases too.
    #[arg(long, short)]
    pub verbose: bool,
    /// Capture every case on the loopback (libpcap; needs root or CAP_NET_RAW) into DIR/<suite>/<case>.pcapng,
    /// and check that the capture shows what the sockets recorded.
    #[arg(long, value_name = "DIR")]
    pub capture: Option<PathBuf>,
    /// Confine --exec programs (repeatable): cpu=2s, memory=256M, processes=64, open-files=256, file-size=10M.
    #[arg(long = "limit", value_name = "KEY=VALUE", value_parser = parse_limit)]
    pub limits: Vec<String>,
    /// Run --exec programs as this user (root only; `wirecheck-sandbox` is created when missing).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// The folder --exec programs run in (default: the current one).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Run in a private network namespace with its own loopback (Linux, root): the programs
    /// under test reach nothing outside, and nothing outside reaches them.
    #[arg(long)]
    pub isolate: bool,
    /// Speak TLS on every connection to the target, and serve TLS to client programs (which
    /// trust the run's CA, given to them as {ca}; a server started with --exec gets {cert} and
    /// {key}). The dialogue above TLS is the same as in plain text.
    #[arg(long, help_heading = "TLS")]
    pub tls: bool,
    /// Trust the CA certificates in this PEM file (default: the CA the run made for the
    /// bundled references and --exec servers).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure", help_heading = "TLS")]
    pub ca: Option<PathBuf>,
    /// Take any server certificate (a self-signed one of a server you run yourself).
    #[arg(long, help_heading = "TLS")]
    pub insecure: bool,
    /// The server name to ask for (SNI) and check the certificate against (default: localhost).
    #[arg(long, value_name = "NAME", help_heading = "TLS")]
    pub sni: Option<String>,
    /// ALPN protocols to offer, comma-separated (default: the suite's: h2 for http2, http/1.1 for http).
    #[arg(long, value_name = "LIST", value_delimiter = ',', help_heading = "TLS")]
    pub alpn: Option<Vec<String>>,
    /// Append the run's TLS secrets to FILE (the SSLKEYLOGFILE format Wireshark reads).
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub keylog: Option<PathBuf>,
}

/// A run every option of which has been checked: what `wirecheck run` does, before it starts.
#[derive(Debug)]
pub struct RunConfig {
    /// The loaded suites.
    pub suites: Vec<Arc<Suite>>,
    /// How to run them; `capture` is left to [`execute`], which starts it.
    pub options: RunOptions,
    /// `--capture DIR`.
    pub capture_dir: Option<PathBuf>,
    /// `--report` outputs.
    pub reports: Vec<ReportSpec>,
    /// `--verbose`.
    pub verbose: bool,
    /// Options that are accepted but do less than asked (printed before the run).
    pub notes: Vec<String>,
    /// Where the run's verdicts are recorded for a later `--failed` (none: not recorded).
    pub record: Option<String>,
}

impl RunArgs {
    /// Checks every option, loads the suites and resolves `--target`: nothing runs yet.
    pub fn resolve(mut self) -> Result<RunConfig, UsageError> {
        let suites = load::suites(&self.suites)?;
        let tls = tls_options(&self.tls_args(), &suites)?;
        let record = last_run::key(self.exec.as_deref(), self.target.as_deref());
        if self.failed {
            match last_run::failed(&record) {
                None => return Err(UsageError::NoLastRun),
                Some(names) if names.is_empty() => return Err(UsageError::NothingFailed),
                // Exact names: a case id holds no glob characters.
                Some(names) if self.cases.is_empty() => self.cases = names,
                // With --case too: the failed cases among those it picks.
                Some(names) => {
                    let picked: Vec<glob::Pattern> = self.cases.iter().filter_map(|c| glob::Pattern::new(c).ok()).collect();
                    self.cases = names
                        .into_iter()
                        .filter(|n| {
                            picked
                                .iter()
                                .any(|g| g.matches(n) || n.rsplit("::").next().is_some_and(|id| g.matches(id)))
                        })
                        .collect();
                    if self.cases.is_empty() {
                        return Err(UsageError::NothingSelected);
                    }
                }
            }
        }
        let case_globs = self
            .cases
            .iter()
            .map(|c| glob::Pattern::new(c).map_err(|source| UsageError::CaseGlob { given: c.clone(), source }))
            .collect::<Result<Vec<_>, _>>()?;
        if !(self.timeout_scale > 0.0 && self.timeout_scale <= 100.0) {
            return Err(UsageError::TimeoutScale);
        }
        let target = match (self.target, self.exec) {
            (Some(t), _) => TargetSpec::Addr(resolve_target(&t)?),
            (_, Some(c)) => TargetSpec::Exec(c),
            _ => TargetSpec::Reference,
        };
        let mut limits = Limits::default();
        for l in &self.limits {
            limits.set(l)?;
        }
        let mut notes = Vec::new();
        if limits.disk.take().is_some() {
            notes.push(
                "--limit disk is ignored by run: it sizes the private /tmp of a graded submission (wirecheck grade, as root)".to_string(),
            );
        }
        if self.user.is_some() && !sandbox::is_root() {
            notes.push("--user is ignored: only root can run programs as another user".to_string());
        }
        if limits.processes.is_some() && (self.user.is_none() || !sandbox::is_root()) {
            notes.push(format!(
                "--limit processes counts every process of the user the program runs as, and root is exempt: use it as root with --user {}",
                sandbox::DEDICATED_USER
            ));
        }
        let sandbox = Sandbox {
            limits,
            run_as: self.user.map_or(RunAs::Inherit, RunAs::User),
            cwd: self.cwd,
        };
        // A user that does not exist or cannot read the folder is a usage error, found before any case runs.
        if matches!(target, TargetSpec::Exec(_)) {
            sandbox.check()?;
        }
        let options = RunOptions {
            tls,
            target,
            jobs: self.jobs,
            timeout_scale: self.timeout_scale,
            tags: self.tags,
            case_globs,
            ready_timeout: self.ready_timeout,
            sandbox,
            // In a private network namespace the actors own port 53, as real name servers do, so
            // a resolver is tested with its stock settings.
            well_known_ports: self.isolate,
            ..RunOptions::default()
        };
        let selected = suites.iter().any(|s| s.cases.iter().any(|c| run::selected(&options, s, c)));
        if !selected {
            return Err(UsageError::NothingSelected);
        }
        Ok(RunConfig {
            suites,
            options,
            capture_dir: self.capture,
            reports: self.reports,
            verbose: self.verbose,
            notes,
            record: Some(record),
        })
    }
}

/// The TLS arguments of a command, as given.
#[derive(Debug, Clone, Default)]
pub struct TlsArgs {
    /// `--tls`.
    pub on: bool,
    /// `--ca FILE`.
    pub ca: Option<PathBuf>,
    /// `--insecure`.
    pub insecure: bool,
    /// `--sni NAME`.
    pub sni: Option<String>,
    /// `--alpn LIST`.
    pub alpn: Option<Vec<String>>,
    /// `--keylog FILE`.
    pub keylog: Option<PathBuf>,
}

impl RunArgs {
    fn tls_args(&self) -> TlsArgs {
        TlsArgs {
            on: self.tls,
            ca: self.ca.clone(),
            insecure: self.insecure,
            sni: self.sni.clone(),
            alpn: self.alpn.clone(),
            keylog: self.keylog.clone(),
        }
    }
}

/// Checks the TLS arguments: the CA file reads, the server name is one, the suites run over TCP.
pub fn tls_options(a: &TlsArgs, suites: &[Arc<Suite>]) -> Result<run::TlsOptions, UsageError> {
    use crate::tls::{KeyLog, Trust};
    if a.on {
        // DNS over TLS (RFC 7858) and DTLS are other protocols than the suites check.
        let udp: Vec<&str> = suites
            .iter()
            .filter(|s| crate::proto::find(&s.protocol).is_some_and(|p| p.transport() == crate::proto::Transport::Udp))
            .map(|s| s.name.as_str())
            .collect();
        if !udp.is_empty() {
            return Err(UsageError::Tls(format!(
                "--tls: {} run over UDP, which has no TLS here; run the TCP suites with --tls and these without",
                udp.join(", ")
            )));
        }
        if let Some((s, why)) = suites.iter().find_map(|s| Some((s, crate::proto::find(&s.protocol)?.no_tls()?))) {
            return Err(UsageError::Tls(format!(
                "--tls: {} cannot run over TLS: {why}; run it without --tls",
                s.name
            )));
        }
    }
    let trust = match (&a.ca, a.insecure) {
        (Some(f), _) => Some(Trust::from_pem_file(f).map_err(|e| UsageError::Tls(format!("--ca {e}")))?),
        (None, true) => Some(Trust::Anything),
        (None, false) => None,
    };
    if let Some(n) = &a.sni {
        if rustls_pki_types::ServerName::try_from(n.as_str()).is_err() {
            return Err(UsageError::Tls(format!("--sni '{n}' is not a host name or an address")));
        }
    }
    if let Some(list) = &a.alpn {
        if let Some(bad) = list.iter().find(|p| p.is_empty() || p.len() > 255) {
            return Err(UsageError::Tls(format!(
                "--alpn: '{bad}' is not a protocol id (1 to 255 bytes, RFC 7301 §3.1), e.g. --alpn h2,http/1.1"
            )));
        }
    }
    let keylog = match &a.keylog {
        Some(f) => Some(std::sync::Arc::new(
            KeyLog::to_file(f).map_err(|e| UsageError::Tls(format!("--keylog {}: {e}", f.display())))?,
        )),
        None => None,
    };
    Ok(run::TlsOptions {
        on: a.on,
        trust,
        sni: a.sni.clone(),
        alpn: a.alpn.clone(),
        keylog,
    })
}

/// The address of `--target HOST:PORT`: a literal address, or the first one the host name
/// resolves to.
pub fn resolve_target(given: &str) -> Result<SocketAddr, UsageError> {
    if let Ok(addr) = given.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let no_port = || UsageError::TargetNoPort { given: given.to_string() };
    // A bare address (`::1` has colons of its own) has no port to split off.
    if given.parse::<IpAddr>().is_ok() {
        return Err(no_port());
    }
    let (host, port) = given.rsplit_once(':').ok_or_else(no_port)?;
    if port.is_empty() {
        return Err(no_port());
    }
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => {
            return Err(UsageError::TargetBadPort {
                given: given.to_string(),
                port: port.to_string(),
            })
        }
    };
    let unresolved = |source| UsageError::TargetUnresolved {
        given: given.to_string(),
        host: host.to_string(),
        source,
    };
    if host.is_empty() {
        return Err(unresolved(std::io::Error::new(std::io::ErrorKind::InvalidInput, "no host name")));
    }
    let host_only = host.trim_start_matches('[').trim_end_matches(']');
    (host_only, port)
        .to_socket_addrs()
        .map_err(unresolved)?
        .next()
        .ok_or_else(|| UsageError::TargetNoAddress {
            given: given.to_string(),
            host: host.to_string(),
        })
}

/// `wirecheck run`: resolves the arguments (exit 2 on a usage error), then runs.
pub async fn run(args: RunArgs) -> i32 {
    match args.resolve() {
        Ok(config) => execute(config).await,
        Err(e) => e.report(),
    }
}

/// Runs a resolved configuration: reports as cases finish, the exit status per the CLI contract.
pub async fn execute(config: RunConfig) -> i32 {
    for n in &config.notes {
        eprintln!("wirecheck: note: {n}");
    }
    // The capture and the run share one key log: each case's pcapng carries its secrets.
    let mut options = config.options;
    let keylog = options.tls.keylog.get_or_insert_with(Arc::default).clone();
    let opts = RunOptions {
        capture: config.capture_dir.and_then(|dir| start_capture(dir, keylog)),
        ..options
    };
    let stdout_taken = config.reports.iter().any(|r| r.path == Path::new("-"));
    let mut reporters: Vec<Box<dyn Reporter>> = Vec::new();
    if !stdout_taken {
        reporters.push(Box::new(Console::new(config.verbose)));
    }
    let info = RunInfo {
        suites: config.suites.clone(),
        target: describe_target(&opts.target),
    };
    reporters.extend(config.reports.iter().map(|r| r.reporter(&info)));
    if let Some(key) = config.record {
        reporters.push(Box::new(super::last_run::LastRun::new(key)));
    }
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
        s = run::run(&config.suites, &opts, &mut fan) => s,
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
            eprintln!("error: {}", crate::report::escape::visible_controls(&e.to_string()));
        }
    }
    summary.exit_code()
}

/// What a run tests, in words, for the reports that name it.
fn describe_target(t: &TargetSpec) -> String {
    match t {
        TargetSpec::Reference => "the bundled reference implementations".into(),
        TargetSpec::Addr(a) => format!("--target {a}"),
        TargetSpec::Exec(cmd) => format!("--exec {cmd}"),
    }
}

/// Starts the loopback capture for `--capture DIR`; without permission the run goes on without it.
fn start_capture(dir: PathBuf, keylog: Arc<crate::tls::KeyLog>) -> Option<run::capture::CaptureSink> {
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("warning: --capture: cannot create {}: {e}; running without capture", dir.display());
        return None;
    }
    match crate::capture::live::LiveCapture::start() {
        Ok(live) => Some(run::capture::CaptureSink {
            dir,
            live: Arc::new(live),
            keylog,
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_addresses_resolve_or_say_what_is_wrong() {
        assert_eq!(
            resolve_target("127.0.0.1:12000").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 12000))
        );
        assert_eq!(resolve_target("[::1]:80").unwrap().port(), 80);
        assert!(resolve_target("localhost:80").unwrap().ip().is_loopback());
        let msg = |s: &str| resolve_target(s).unwrap_err().to_string();
        for no_port in ["localhost", "127.0.0.1", "::1", "localhost:"] {
            assert_eq!(
                msg(no_port),
                format!("--target '{no_port}': no port; write HOST:PORT, e.g. 127.0.0.1:12000")
            );
        }
        assert!(msg("localhost:http").contains("'http' is not a port"), "{}", msg("localhost:http"));
        assert!(msg("localhost:0").contains("'0' is not a port"));
        assert!(msg("localhost:70000").contains("'70000' is not a port"));
        assert!(msg("nosuchhost.invalid:1").starts_with("--target 'nosuchhost.invalid:1': cannot resolve host 'nosuchhost.invalid'"));
        assert!(msg(":80").starts_with("--target ':80': cannot resolve host ''"));
    }
}
