//! Targets: the bundled reference, a given address, or a program we start (`--exec`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use super::child::Exit;
use super::process::{Output, Program};
use super::ready;
use super::sandbox::{self, Sandbox, SandboxError};
use crate::suite::{Role, Suite, Transport};

/// What the user asked to test.
#[derive(Debug, Clone)]
pub enum TargetSpec {
    /// The suite's bundled reference implementation.
    Reference,
    /// A server already running at this address (the command line resolved `--target HOST:PORT`).
    Addr(SocketAddr),
    /// A command to start, with `{port}` (and `{host}`) filled in.
    Exec(String),
}

/// Reference options that name files or folders; relative ones are relative to the suite file.
pub const PATH_OPTIONS: &[&str] = &[
    "root", "uploads", "zone", "zones", "store", "seed", "maildir", "message", "users", "torrents", "torrent", "dir",
];

/// A target that could not be started or reached (exit status 3).
#[derive(Debug, Clone, thiserror::Error)]
pub enum TargetError {
    /// A client-role suite was given an address: only a program we start can be a client.
    #[error("suite '{suite}' tests a client: give it with --exec \"CMD {{port}}\", not --target")]
    ClientAtAddress {
        /// The suite.
        suite: String,
    },
    /// A client-role suite without `--exec` and without a bundled reference client.
    #[error("suite '{suite}' has no reference client; use --exec")]
    NoReferenceClient {
        /// The suite.
        suite: String,
    },
    /// A server-role suite without `--target`/`--exec` and without a bundled reference server.
    #[error("suite '{suite}' has no reference server; use --target or --exec")]
    NoReferenceServer {
        /// The suite.
        suite: String,
    },
    /// The bundled reference server refused its options or could not bind.
    #[error("the reference server '{name}' did not start: {source}")]
    ReferenceServer {
        /// The server's name.
        name: String,
        /// Why.
        #[source]
        source: Arc<reference_servers::Error>,
    },
    /// Nothing is bound to the loopback port `--target` names (seen without connecting).
    #[error(
        "nothing listens on {transport} {addr} (no socket is bound to port {port} in wirecheck's network namespace): start the server first, or check the port",
        port = addr.port()
    )]
    NothingListens {
        /// The suite's transport.
        transport: Transport,
        /// The address given.
        addr: SocketAddr,
    },
    /// No port was free for an `--exec` program.
    #[error("no free port: {0}")]
    NoFreePort(#[source] Arc<std::io::Error>),
    /// The `--exec` command could not be started (or confined) at all.
    #[error(transparent)]
    Spawn(Arc<SandboxError>),
    /// The `--exec` program ended before it bound its port.
    #[error(
        "the target exited ({exit}{}) before it opened {}\n--- program output (stderr, last lines, verbatim) ---\n{stderr_tail}",
        limit_note(limit.as_deref()),
        socket(*transport, *port, command)
    )]
    ExitedBeforeReady {
        /// How it ended.
        exit: Exit,
        /// The sandbox limit that explains the end, if one does.
        limit: Option<String>,
        /// The suite's transport.
        transport: Transport,
        /// The port it was given as `{port}`.
        port: u16,
        /// The command line, placeholders filled.
        command: String,
        /// The end of its stderr.
        stderr_tail: String,
    },
    /// The `--exec` program did not bind its port within `--ready-timeout` (it was killed).
    #[error(
        "the target never opened {} within {ready_timeout:?}{}\n--- program output (stderr, last lines, verbatim) ---\n{stderr_tail}",
        socket(*transport, *port, command),
        elsewhere_hint(*transport, *port, elsewhere, "port")
    )]
    NeverReady {
        /// The suite's transport.
        transport: Transport,
        /// The port it was given as `{port}`.
        port: u16,
        /// The command line, placeholders filled.
        command: String,
        /// `--ready-timeout`.
        ready_timeout: Duration,
        /// The ports it listens on instead, if any.
        elsewhere: Vec<u16>,
        /// The end of its stderr.
        stderr_tail: String,
    },
}

/// What to say about a program that never opened `port`: where it listens instead (a port
/// written into the program, the commonest cause), or that it must use the one it was given.
fn elsewhere_hint(transport: Transport, port: u16, elsewhere: &[u16], placeholder: &str) -> String {
    let list = elsewhere.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    match elsewhere {
        [] => format!("; it must listen on the port it is given as {{{placeholder}}}"),
        [_] => format!(
            ": the program listens on {transport} port {list}, not on the port it was given ({port}); read the port from the command line ({{{placeholder}}})"
        ),
        _ => format!(
            ": the program listens on {transport} ports {list}, not on the port it was given ({port}); read the port from the command line ({{{placeholder}}})"
        ),
    }
}

/// Why a client (or a server a case starts with `start: {listen: ...}`) could not be started;
/// the case fails at its `start` step with this.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// No port was free for the program's `{listen_port}`.
    #[error("no free port: {0}")]
    NoFreePort(#[source] std::io::Error),
    /// The command could not be started (or confined) at all.
    #[error(transparent)]
    Spawn(#[from] SandboxError),
    /// The program ended before it bound `{listen_port}`.
    #[error(
        "the program ended ({exit}{}) before it listened on {transport} port {port}: {stderr_tail}",
        limit_note(limit.as_deref())
    )]
    EndedBeforeListening {
        /// How it ended.
        exit: Exit,
        /// The sandbox limit that explains the end, if one does.
        limit: Option<String>,
        /// The transport it was to listen on.
        transport: Transport,
        /// Its `{listen_port}`.
        port: u16,
        /// The end of its stderr.
        stderr_tail: String,
    },
    /// The program did not bind `{listen_port}` before the step's deadline.
    #[error("'{command}' did not listen on {transport} port {port} in time{}", elsewhere_hint(*transport, *port, elsewhere, "listen_port"))]
    NotListening {
        /// The command line, placeholders filled.
        command: String,
        /// The transport it was to listen on.
        transport: Transport,
        /// Its `{listen_port}`.
        port: u16,
        /// The ports it listens on instead, if any.
        elsewhere: Vec<u16>,
    },
    /// The bundled reference server refused its options or could not bind.
    #[error("the reference server '{name}' did not start: {source}")]
    ReferenceServer {
        /// The server's name.
        name: String,
        /// Why.
        #[source]
        source: reference_servers::Error,
    },
}

/// ", sandbox: LIMIT" when a sandbox limit explains how a program ended (else nothing).
fn limit_note(limit: Option<&str>) -> String {
    limit.map_or_else(String::new, |why| format!(", sandbox: {why}"))
}

/// "a tcp socket bound to port N by 'CMD'": what an `--exec` target has to open.
fn socket(transport: Transport, port: u16, command: &str) -> String {
    format!("a {transport} socket bound to port {port} by '{command}'")
}

/// One running server instance that cases connect to.
pub struct Instance {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Other listeners a bundled reference started (`pop3`, `imap` next to `smtp`), as `${target.NAME}`.
    pub extra: Vec<(String, SocketAddr)>,
    /// The program, for expect_output / expect_exit and crash reports.
    pub program: Option<Arc<Program>>,
    server: Arc<Mutex<Option<reference_servers::RunningServer>>>,
}

impl Instance {
    /// Whether it still runs and still has its port; a program that let go of its port is given
    /// a moment to exit so the next case gets a restarted target, not a dying one.
    pub async fn alive(&self, transport: Transport) -> bool {
        let Some(p) = &self.program else { return true };
        if p.exited().is_some() {
            return false;
        }
        let Some(pgid) = p.pgid() else { return true };
        if !ready::supported() || ready::ready_addr(pgid, self.addr.port(), transport).is_some() {
            return true;
        }
        p.wait(Instant::now() + Duration::from_secs(1)).await;
        false
    }

    /// Stops the instance (kills an exec'd program's whole process group).
    pub async fn stop(self: Arc<Self>) {
        if let Some(s) = self.server.lock().await.take() {
            s.shutdown().await;
        }
        if let Ok(me) = Arc::try_unwrap(self) {
            if let Some(p) = me.program.and_then(|p| Arc::try_unwrap(p).ok()) {
                p.kill().await;
            }
        }
    }
}

/// Starts the target client of a client-role suite.
#[derive(Clone)]
pub enum Launcher {
    /// The bundled reference client.
    Reference {
        /// Its name.
        name: String,
        /// Its options.
        options: reference_servers::Options,
    },
    /// A command with `{port}`, and how to confine it.
    Exec(String, Sandbox),
}

impl Launcher {
    /// Starts the program under test, telling it the harness listens on `port`; with `listen`, it is a
    /// server given a free port of its own, and this returns once it listens there (or fails).
    /// `args` (a case's `start: { args }`) go where the command says `{args}`, else at its end.
    pub async fn launch(
        &self,
        port: u16,
        listen: Option<Transport>,
        args: &[String],
        vars: &crate::suite::Vars,
        deadline: Instant,
    ) -> Result<(Program, Option<SocketAddr>), LaunchError> {
        let listen = match listen {
            Some(t) => Some((t, free_port(t).map_err(LaunchError::NoFreePort)?)),
            None => None,
        };
        let listen_port = listen.map_or(0, |(_, p)| p);
        match self {
            Launcher::Exec(cmd, sandbox) => {
                let cmd = with_args(&fill(cmd, port, listen_port, vars), args);
                let program = Program::spawn(&cmd, sandbox)?;
                let Some((transport, port)) = listen else {
                    return Ok((program, None));
                };
                match wait_ready(&program, port, transport, deadline).await {
                    Ok(addr) => Ok((program, Some(addr))),
                    Err(NotReady::Exited(exit)) => {
                        let stderr_tail = program.stderr.tail(1000);
                        Err(LaunchError::EndedBeforeListening {
                            exit,
                            limit: sandbox::explain(Some(exit), &stderr_tail, &sandbox.limits, program.cpu_used()),
                            transport,
                            port,
                            stderr_tail,
                        })
                    }
                    Err(NotReady::TimedOut(elsewhere)) => Err(LaunchError::NotListening {
                        command: cmd,
                        transport,
                        port,
                        elsewhere,
                    }),
                }
            }
            Launcher::Reference { name, options } if listen.is_some() => {
                // A case's `start` arguments reach a reference server through `{args}` in its options.
                let options: reference_servers::Options = options
                    .iter()
                    .map(|(k, v)| (k.clone(), fill(v, port, listen_port, vars).replace("{args}", &args.join(" "))))
                    .collect();
                // In-process, the server picks its own port (it can retry until UDP and TCP agree).
                let bind = SocketAddr::from(([127, 0, 0, 1], 0));
                let server =
                    reference_servers::start_server(name, bind, &options)
                        .await
                        .map_err(|source| LaunchError::ReferenceServer {
                            name: name.clone(),
                            source,
                        })?;
                let addr = server.local_addr();
                let (tx, rx) = watch::channel(None);
                // The task owns the server: aborting it (when the case's program is dropped) stops the server.
                let task = tokio::spawn(async move {
                    while !server.is_finished() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    let _ = tx.send(Some(Exit::Code(0)));
                });
                Ok((
                    Program::in_process(format!("reference server {name}"), rx, task, Arc::default(), Arc::default()),
                    Some(addr),
                ))
            }
            Launcher::Reference { name, options } => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
                let (exit_tx, exit_rx) = watch::channel(None);
                let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
                let stdout = Arc::new(Output::default());
                let stderr = Arc::new(Output::default());
                let out = stdout.clone();
                let err = stderr.clone();
                let options: reference_servers::Options =
                    options.iter().map(|(k, v)| (k.clone(), fill(v, port, listen_port, vars))).collect();
                let name2 = name.clone();
                let args = args.to_vec();
                let task = tokio::spawn(async move {
                    let pump = tokio::spawn(async move {
                        while let Some(l) = rx.recv().await {
                            out.push_line(&l);
                        }
                        out.close();
                    });
                    let code = match reference_servers::run_client(&name2, addr, &options, &args, tx).await {
                        Ok(c) => c,
                        Err(e) => {
                            err.push_line(&e.to_string());
                            1
                        }
                    };
                    err.close();
                    let _ = pump.await;
                    let _ = exit_tx.send(Some(Exit::Code(code)));
                });
                Ok((
                    Program::in_process(format!("reference client {name}"), exit_rx, task, stdout, stderr),
                    None,
                ))
            }
        }
    }
}

/// `cmd` with `args` quoted for `sh -c`: where it says `{args}`, else appended.
fn with_args(cmd: &str, args: &[String]) -> String {
    let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
    let quoted = quoted.join(" ");
    if cmd.contains("{args}") {
        return cmd.replace("{args}", &quoted);
    }
    match quoted.is_empty() {
        true => cmd.to_string(),
        false => format!("{cmd} {quoted}"),
    }
}

/// One word for `sh`, whatever it holds: plain words as they are, the rest in single quotes.
fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Whether something is bound to `port`, reading the kernel's tables up to three times: they
/// are read in pieces, and a row can slip between two pieces while other sockets come and go.
async fn bound_on_a_second_look(port: u16, transport: Transport) -> bool {
    for _ in 0..3 {
        if !ready::bound_sockets(port, transport).is_empty() {
            return true;
        }
        // No wait: another read is another pass over the table, which is what can differ.
        tokio::task::yield_now().await;
    }
    false
}

/// Fills `{port}`, `{host}`, `{listen_port}` and `{NAME}` for every case variable (`{root.host}`).
fn fill(cmd: &str, port: u16, listen_port: u16, vars: &crate::suite::Vars) -> String {
    let mut out = cmd
        .replace("{port}", &port.to_string())
        .replace("{host}", "127.0.0.1")
        .replace("{listen_port}", &listen_port.to_string());
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// The target of one suite in one run: started lazily, restarted after a crash.
pub struct SuiteTarget {
    suite: Arc<Suite>,
    spec: TargetSpec,
    ready_timeout: Duration,
    sandbox: Sandbox,
    shared: Mutex<Option<Arc<Instance>>>,
    fatal: std::sync::Mutex<Option<TargetError>>,
    /// The turns of cases that share one program instance (or one server at an address).
    turns: tokio::sync::Semaphore,
    /// A case waited out a timeout on the shared instance in silence: it hangs.
    hanging: std::sync::atomic::AtomicBool,
    /// Every server case gets an instance of its own (`RunOptions::fresh_each`).
    fresh_each: bool,
    /// TLS for this suite's run, or why there is none.
    tls: Result<Arc<crate::tls::Setup>, String>,
}

impl SuiteTarget {
    /// A target for `suite`; nothing starts until a case needs it.
    pub fn new(suite: Arc<Suite>, spec: TargetSpec, ready_timeout: Duration) -> SuiteTarget {
        let suite_protocol = suite.protocol.clone();
        SuiteTarget {
            suite,
            spec,
            ready_timeout,
            sandbox: Sandbox::default(),
            shared: Mutex::new(None),
            fatal: std::sync::Mutex::new(None),
            turns: tokio::sync::Semaphore::new(1),
            hanging: std::sync::atomic::AtomicBool::new(false),
            fresh_each: false,
            // Certificates of its own until a run gives it the run's (`with_tls`): a suite's
            // reference options may name them ({cert}), STARTTLS cases use them.
            tls: match crate::proto::find(&suite_protocol) {
                Some(p) => super::TlsOptions::default().setup(
                    p,
                    &crate::tls::RunCerts::generate().map(Arc::new).map_err(|e| e.to_string()),
                    &Arc::default(),
                ),
                None => Err(format!("no protocol named {suite_protocol}")),
            },
        }
    }

    /// Speaks TLS as `tls` says (the references are started with the run's certificate under
    /// `--tls`, and given the CA to trust when they are clients).
    pub fn with_tls(mut self, tls: Result<Arc<crate::tls::Setup>, String>) -> SuiteTarget {
        self.tls = tls;
        self
    }

    /// This suite's TLS setup.
    pub fn tls(&self) -> Result<Arc<crate::tls::Setup>, String> {
        self.tls.clone()
    }

    /// Confines the programs this target starts (`--exec`) with `sandbox`.
    pub fn with_sandbox(mut self, sandbox: Sandbox) -> SuiteTarget {
        self.sandbox = sandbox;
        self
    }

    /// Starts the program afresh for every server case (`RunOptions::fresh_each`).
    pub fn fresh_each(mut self, on: bool) -> SuiteTarget {
        self.fresh_each = on;
        self
    }

    /// The launcher for client-role suites.
    pub fn launcher(&self) -> Result<Launcher, TargetError> {
        match &self.spec {
            TargetSpec::Exec(c) => Ok(Launcher::Exec(c.clone(), self.sandbox.clone())),
            TargetSpec::Addr(_) => Err(TargetError::ClientAtAddress {
                suite: self.suite.name.clone(),
            }),
            TargetSpec::Reference => match &self.suite.reference {
                Some(name) => Ok(Launcher::Reference {
                    name: name.clone(),
                    options: self.reference_options(),
                }),
                None => Err(TargetError::NoReferenceClient {
                    suite: self.suite.name.clone(),
                }),
            },
        }
    }

    /// Waits for `case`'s turn, and says whether it runs against an instance of its own
    /// (started for it, stopped after it). One instance of a student's server, or one server at an
    /// address, may serve one client at a time by design: cases take turns (a case that needs a
    /// fresh server too, with its own). Once the shared instance of a TCP server in a `per-case`
    /// suite hangs (`note_silence`), every later case gets its own and they run side by side. The
    /// bundled references serve many clients: no turns.
    pub async fn turn(&self, case: &crate::suite::Case) -> (Option<tokio::sync::SemaphorePermit<'_>>, bool) {
        use std::sync::atomic::Ordering;
        let takes_turns = match self.spec {
            TargetSpec::Reference => false,
            // A client program is started per case, and many at once compete for the CPU that
            // their timing cases measure: they take turns too.
            TargetSpec::Addr(_) | TargetSpec::Exec(_) => true,
        };
        if !takes_turns {
            return (None, case.fresh_server);
        }
        let server_we_start = matches!(self.spec, TargetSpec::Exec(_)) && self.suite.role == crate::suite::Role::Server;
        let own_allowed = server_we_start && self.suite.instances == crate::suite::Instances::PerCase;
        if self.fresh_each && server_we_start {
            return match own_allowed {
                true => (None, true),
                false => (self.turns.acquire().await.ok(), true),
            };
        }
        // Only a TCP server's silence says it hangs: a UDP server that answers another address
        // than the client's is silent too, and is buggy, not hung.
        let may_move = own_allowed && self.suite.transport == crate::suite::Transport::Tcp;
        if may_move && self.hanging.load(Ordering::Relaxed) {
            return (None, true);
        }
        let permit = self.turns.acquire().await.ok();
        // The shared instance may have been found hanging while this case waited for its turn.
        if may_move && self.hanging.load(Ordering::Relaxed) {
            return (None, true);
        }
        (permit, case.fresh_server)
    }

    /// A case on the shared instance waited out a timeout and got nothing at all: the program
    /// hangs, and in a `per-case` suite the later cases start instances of their own.
    pub fn note_silence(&self) {
        self.hanging.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// An instance to run a case against: the shared one (restarted if it died) or a fresh one.
    pub async fn lease(&self, fresh: bool) -> Result<Arc<Instance>, TargetError> {
        if let Some(e) = self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Err(e);
        }
        let r = if fresh {
            self.start().await
        } else {
            let mut shared = self.shared.lock().await;
            let alive = match shared.as_ref() {
                Some(i) => i.alive(self.suite.transport).await,
                None => false,
            };
            if !alive {
                if let Some(old) = shared.take() {
                    old.stop().await;
                }
                match self.start().await {
                    Ok(i) => *shared = Some(i),
                    Err(e) => return Err(self.set_fatal(e)),
                }
            }
            Ok(shared.clone().expect("set above"))
        };
        r.map_err(|e| self.set_fatal(e))
    }

    fn set_fatal(&self, e: TargetError) -> TargetError {
        *self.fatal.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.clone());
        e
    }

    /// Stops the shared instance.
    pub async fn stop(&self) {
        if let Some(i) = self.shared.lock().await.take() {
            i.stop().await;
        }
    }

    /// The suite's reference options, with path-valued ones made relative to the suite file.
    fn reference_options(&self) -> reference_servers::Options {
        let dir = self.suite.source.path.parent().unwrap_or(std::path::Path::new("."));
        let mut opts = self.suite.reference_options.clone();
        if let Ok(tls) = &self.tls {
            let files = [("{ca}", &tls.certs.ca), ("{cert}", &tls.certs.cert), ("{key}", &tls.certs.key)];
            for v in opts.values_mut() {
                for (name, path) in files {
                    *v = v.replace(name, &path.to_string_lossy());
                }
            }
            if tls.on {
                match self.suite.role {
                    Role::Server => {
                        opts.insert("tls".into(), "implicit".into());
                        opts.insert("tls_cert".into(), tls.certs.cert.to_string_lossy().into_owned());
                        opts.insert("tls_key".into(), tls.certs.key.to_string_lossy().into_owned());
                    }
                    Role::Client => {
                        opts.insert("tls_ca".into(), tls.certs.ca.to_string_lossy().into_owned());
                    }
                }
            }
        }
        for (k, v) in opts.iter_mut() {
            // Option names are the servers' own (the pinger's `seed` is a number, the mail servers' a
            // folder): a relative value is a path only if it names something next to the suite.
            if PATH_OPTIONS.contains(&k.as_str()) && std::path::Path::new(v.as_str()).is_relative() && dir.join(&*v).exists() {
                *v = dir.join(&*v).to_string_lossy().into_owned();
            }
        }
        opts
    }

    async fn start(&self) -> Result<Arc<Instance>, TargetError> {
        debug_assert_eq!(self.suite.role, Role::Server);
        match &self.spec {
            TargetSpec::Reference => {
                let name = self.suite.reference.as_deref().ok_or_else(|| TargetError::NoReferenceServer {
                    suite: self.suite.name.clone(),
                })?;
                let server = reference_servers::start_server(name, SocketAddr::from(([127, 0, 0, 1], 0)), &self.reference_options())
                    .await
                    .map_err(|e| TargetError::ReferenceServer {
                        name: name.to_string(),
                        source: Arc::new(e),
                    })?;
                let addr = server.local_addr();
                let extra = server.extra_addrs().to_vec();
                let server = Arc::new(Mutex::new(Some(server)));
                // expect_exit works on a reference server too: it "exits" when it stops by itself.
                let (tx, rx) = watch::channel(None);
                let watched = server.clone();
                let task = tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        if watched.lock().await.as_ref().is_none_or(|s| s.is_finished()) {
                            let _ = tx.send(Some(Exit::Code(0)));
                            return;
                        }
                    }
                });
                let program = Program::in_process(format!("reference server {name}"), rx, task, Arc::default(), Arc::default());
                Ok(Arc::new(Instance {
                    addr,
                    extra,
                    program: Some(Arc::new(program)),
                    server,
                }))
            }
            TargetSpec::Addr(addr) => {
                let addr = *addr;
                // On this machine we can tell, without a connection that would cost the server
                // one, whether anything listens there at all (in this network namespace: with
                // --isolate a server outside is unreachable, and reported so).
                let transport = self.suite.transport;
                if addr.ip().is_loopback() && ready::supported() && !bound_on_a_second_look(addr.port(), transport).await {
                    return Err(TargetError::NothingListens { transport, addr });
                }
                Ok(Arc::new(Instance {
                    addr,
                    extra: Vec::new(),
                    program: None,
                    server: Arc::default(),
                }))
            }
            TargetSpec::Exec(cmd) => self.start_exec(cmd).await,
        }
    }

    async fn start_exec(&self, cmd: &str) -> Result<Arc<Instance>, TargetError> {
        let transport = self.suite.transport;
        let port = free_port(transport).map_err(|e| TargetError::NoFreePort(Arc::new(e)))?;
        // A server started for --tls (or for STARTTLS cases) is given the run's certificate.
        let mut vars = crate::suite::Vars::default();
        if let Ok(tls) = &self.tls {
            for (k, p) in [("ca", &tls.certs.ca), ("cert", &tls.certs.cert), ("key", &tls.certs.key)] {
                vars.insert(k.into(), p.to_string_lossy().into_owned());
            }
        }
        let command = fill(cmd, port, port, &vars);
        let program = Program::spawn(&command, &self.sandbox).map_err(|e| TargetError::Spawn(Arc::new(e)))?;
        match wait_ready(&program, port, transport, Instant::now() + self.ready_timeout).await {
            Ok(addr) => Ok(Arc::new(Instance {
                addr,
                extra: Vec::new(),
                program: Some(Arc::new(program)),
                server: Arc::default(),
            })),
            Err(NotReady::Exited(exit)) => {
                let stderr_tail = program.stderr.tail(2000);
                Err(TargetError::ExitedBeforeReady {
                    exit,
                    limit: sandbox::explain(Some(exit), &stderr_tail, &self.sandbox.limits, program.cpu_used()),
                    transport,
                    port,
                    command,
                    stderr_tail,
                })
            }
            Err(NotReady::TimedOut(elsewhere)) => {
                let stderr_tail = program.stderr.tail(2000);
                program.kill().await;
                Err(TargetError::NeverReady {
                    transport,
                    port,
                    command,
                    ready_timeout: self.ready_timeout,
                    elsewhere,
                    stderr_tail,
                })
            }
        }
    }
}

/// Why a started program is not ready to be tested.
enum NotReady {
    /// It ended first.
    Exited(Exit),
    /// The deadline passed; the ports it listens on instead, if any.
    TimedOut(Vec<u16>),
}

/// Waits until `program` has a `transport` socket bound to `port` (seen in the socket tables,
/// without a connection that would cost a one-client server its client), ends, or `deadline`
/// passes; the address it listens on.
async fn wait_ready(program: &Program, port: u16, transport: Transport, deadline: Instant) -> Result<SocketAddr, NotReady> {
    let pgid = program.pgid().unwrap_or(0);
    loop {
        if let Some(exit) = program.exited() {
            return Err(NotReady::Exited(exit));
        }
        let found = if ready::supported() {
            ready::ready_addr(pgid, port, transport)
        } else {
            poll_connect(port, transport).await
        };
        if let Some(addr) = found {
            return Ok(addr);
        }
        if Instant::now() >= deadline {
            let elsewhere = if ready::supported() {
                ready::ports_of(pgid, transport)
            } else {
                Vec::new()
            };
            return Err(NotReady::TimedOut(elsewhere));
        }
        // The socket tables have no change notification: look again shortly.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A port that was free a moment ago on both TCP and UDP (a DNS server wants both), bound to
/// port 0 and released: the program under test binds it next.
fn free_port(transport: Transport) -> std::io::Result<u16> {
    for _ in 0..32 {
        let port = match transport {
            Transport::Tcp => std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
            Transport::Udp | Transport::Quic => std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port(),
        };
        let other_free = match transport {
            Transport::Tcp => std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok(),
            Transport::Udp | Transport::Quic => std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        };
        if other_free {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no port free on both TCP and UDP"))
}

/// Fallback where the OS has no socket tables: a TCP connect probe (UDP cannot be probed).
async fn poll_connect(port: u16, transport: Transport) -> Option<SocketAddr> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match transport {
        Transport::Tcp => tokio::net::TcpStream::connect(addr).await.ok().map(|_| addr),
        Transport::Udp | Transport::Quic => Some(addr),
    }
}
