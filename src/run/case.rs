//! Runs one case's steps: the interpreter behind every suite keyword.

// A step returns its whole explanation (`Failure`: where, what was expected and what came, the
// hints) by value; it is built at most once per case, so its size is never on a hot path.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::Instant;

use super::child::Exit;
use super::conn::{Conn, RecvError, SendError, TcpConn};
use super::process::Program;
use super::target::{Launcher, TargetError};
use crate::dialogue::{ConnInfo, EventKind, Recorder};
use crate::proto::{escape_bytes, Level, Protocol, RenderCx};
use crate::suite::*;
use crate::syntax::unescape;

/// Why a case failed: the step, what was expected and what came.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Failure {
    /// What went wrong, in a sentence.
    pub message: String,
    /// The failing step's location.
    pub loc: Option<Loc>,
    /// The failing step's keyword.
    pub keyword: Option<&'static str>,
    /// The key inside the step whose check failed (a header's own line), when narrower (boxed:
    /// rarely set, and `Failure` travels in every step's `Result`).
    pub at: Option<Box<Loc>>,
    /// What the step expected.
    pub expected: Option<String>,
    /// What arrived instead.
    pub got: Option<String>,
    /// Likely causes the record shows, in plain words with the rule and the fix.
    pub hints: Vec<String>,
    /// The failing step was a send the program cut short by going away.
    #[serde(skip)]
    pub send_cut_short: bool,
    /// The failing step waited its whole timeout and the program sent nothing at all: a program
    /// that hangs (the runner then gives the suite's later cases instances of their own).
    #[serde(skip)]
    pub silent_timeout: bool,
    /// The server under test exited by itself, with status 0, during the case.
    #[serde(skip)]
    pub server_exited_cleanly: bool,
    /// Set when the step that did not hold carries a `premise:` and the message arrived but did
    /// not match (or was not this protocol's at all): the program does not offer what the case
    /// needs, so the case does not apply.
    /// (Shared with the step: a thin pointer keeps `Failure` small.)
    #[serde(skip)]
    pub premise: Option<Arc<String>>,
    /// The failing step's own `rule:` (the rule it checks, quoted), when it has one.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "rule_text")]
    pub rule: Option<Arc<String>>,
    /// When the step failed, in the dialogue's clock (microseconds since the case started): where
    /// a ladder diagram marks it, before the closes the harness makes afterwards.
    #[serde(skip)]
    pub t_us: Option<u64>,
}

fn rule_text<S: serde::Serializer>(rule: &Option<Arc<String>>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(rule.as_deref().map(String::as_str).unwrap_or_default())
}

impl Failure {
    fn at(step: &Step, message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            loc: Some(step.loc),
            keyword: Some(step.kind.keyword()),
            rule: step.rule.clone(),
            ..Failure::default()
        }
    }

    /// A mismatch of a message that arrived: with a `premise:` on the step, the case does not apply.
    fn unmet(mut self, step: &Step) -> Failure {
        self.premise = step.premise.clone();
        self
    }

    fn with(mut self, expected: impl Into<String>, got: impl Into<String>) -> Failure {
        self.expected = Some(expected.into());
        self.got = Some(got.into());
        self
    }
}

/// A send that failed; one the program cut short by going away is marked, for the hints.
fn send_failure(step: &Step, e: SendError) -> Failure {
    let mut f = Failure::at(step, e.to_string());
    f.send_cut_short = matches!(e, SendError::PeerGone { .. });
    f
}

/// Messages one structured expectation reads past (`StructuredExpect::skips`) before it judges
/// the next one anyway.
const MAX_PASSED_OVER: usize = 1000;

/// What a case runs against: fixed for the whole case.
pub struct Env {
    /// The suite.
    pub suite: Arc<Suite>,
    /// Its protocol.
    pub proto: &'static dyn Protocol,
    /// The target's address (server-role suites).
    pub target: Option<SocketAddr>,
    /// Named extra addresses of a bundled target (`${target.pop3}`).
    pub extra: Vec<(String, SocketAddr)>,
    /// The target program, if it is one we run (for expect_output / expect_exit).
    pub program: tokio::sync::Mutex<Option<Arc<Program>>>,
    /// Starts the target client (client-role suites), or why there is none.
    pub launcher: Option<Result<Launcher, TargetError>>,
    /// Multiplies every timeout.
    pub scale: f64,
    /// The dialogue being recorded.
    pub rec: Recorder,
    /// Index of the next stdout line `expect_output` looks at.
    pub output_pos: std::sync::Mutex<usize>,
    /// SHOULD-level findings in messages the case read (they cost no points).
    pub warnings: std::sync::Mutex<Vec<String>>,
    /// Actors listen on their well-known ports (under --isolate), not a free shared one.
    pub well_known_ports: bool,
    /// The case's own folder (files a client saves, files actors were handed).
    pub folder: Arc<super::folder::CaseFolder>,
    /// TLS for the suite's run (`--tls`, `starttls:`), or why it could not be set up.
    pub tls: Result<Arc<crate::tls::Setup>, String>,
}

impl Env {
    fn render_cx<'a>(&'a self, vars: &'a Vars, transport: Transport, local: Option<SocketAddr>) -> RenderCx<'a> {
        let base_dir = self.suite.source.path.parent().unwrap_or(std::path::Path::new("."));
        RenderCx {
            vars,
            base_dir,
            transport,
            local,
        }
    }

    /// Records SHOULD findings as warnings; returns the MUST ones.
    fn triage(&self, msg: &crate::proto::Message) -> Vec<String> {
        let mut must = Vec::new();
        let mut w = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        for f in &msg.findings {
            match f.level {
                Level::Must => must.push(f.to_string()),
                Level::Should => {
                    let text = f.to_string();
                    if !w.contains(&text) {
                        w.push(text);
                    }
                }
            }
        }
        must
    }
}

/// Per-branch state: connections and variables.
#[derive(Default)]
pub struct Ctx {
    conns: HashMap<String, Conn>,
    /// Connections whose peer announced that they end (the protocol's `announces_close`), and why.
    closing: HashMap<String, &'static str>,
    listeners: HashMap<String, (TcpListener, SocketAddr)>,
    vars: Vars,
    /// What the expectation that captured an address says of it, for when connecting there is refused.
    if_refused: HashMap<SocketAddr, String>,
    last: Option<String>,
    last_listener: Option<String>,
    suffix: String,
    /// Protocol of each connection and listener that is not the suite's.
    protos: HashMap<String, &'static dyn Protocol>,
    /// The case's running actors (shared with parallel branches; stopped when the case ends).
    actors: Arc<std::sync::Mutex<Vec<super::actors::RunningActor>>>,
    /// The connection whose end (a close or an error) the step after the current one expects.
    end_expected: Option<String>,
}

type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'a>>;

/// Runs `case`; returns its failure, if any. The dialogue is in `env.rec`.
pub async fn run_case(env: &Env, case: &Case) -> Result<(), Failure> {
    let mut ctx = Ctx::default();
    ctx.vars.insert("suite".into(), env.suite.name.clone());
    ctx.vars.insert("case".into(), case.id.clone());
    if let Some(t) = env.target {
        ctx.vars.insert("target.host".into(), t.ip().to_string());
        ctx.vars.insert("target.port".into(), t.port().to_string());
    }
    // The request scheme that matches the connection (RFC 9113 §8.3.1: :scheme of the target URI).
    let tls_on = env.tls.as_ref().is_ok_and(|t| t.on);
    ctx.vars.insert("scheme".into(), if tls_on { "https" } else { "http" }.into());
    // The run's certificate files, for a program's command line (`{ca}`) and for steps (`${ca}`).
    if let Ok(tls) = &env.tls {
        for (k, p) in [("ca", &tls.certs.ca), ("cert", &tls.certs.cert), ("key", &tls.certs.key)] {
            ctx.vars.insert(k.into(), p.to_string_lossy().into_owned());
        }
    }
    for (name, a) in &env.extra {
        ctx.vars.insert(format!("target.{name}"), a.to_string());
        ctx.vars.insert(format!("target.{name}.host"), a.ip().to_string());
        ctx.vars.insert(format!("target.{name}.port"), a.port().to_string());
    }
    let r = ctx.steps(env, &case.steps).await.map_err(|mut f| {
        f.t_us = Some(env.rec.elapsed().as_micros() as u64);
        f
    });
    ctx.close_all(env);
    // The actors stop with the case (branches share them, so only the case's own context does),
    // and their ports are free again before the next case starts. Before that each reads what
    // its peers sent last: a rule broken there fails the case too.
    let actors = std::mem::take(&mut *ctx.actors.lock().unwrap_or_else(|e| e.into_inner()));
    let settle = Instant::now() + SETTLE;
    let (mut broken, mut noticed) = (Vec::new(), Vec::new());
    for a in actors {
        a.settle(settle).await;
        broken.extend(a.violations().into_iter().map(|v| (a.name.clone(), v)));
        noticed.extend(a.hints().into_iter().map(|h| format!("{}: {h}", a.name)));
        a.stop().await;
    }
    let said = |(name, v): &(String, String)| format!("{name} saw the program break a rule: {v}");
    match r {
        Err(mut f) => {
            f.hints.extend(broken.iter().map(said));
            f.hints.extend(noticed);
            Err(f)
        }
        Ok(()) => match broken.first() {
            None => Ok(()),
            Some(first) => {
                let serve = first_step(&case.steps, &|k| matches!(k, StepKind::Serve(_)));
                let mut f = match serve {
                    Some(step) => Failure::at(step, said(first)),
                    None => Failure {
                        message: said(first),
                        ..Failure::default()
                    },
                };
                f.hints.extend(broken.iter().skip(1).map(said));
                Err(f)
            }
        },
    }
}

/// How long an actor may take to read what a program sent before it exited.
const SETTLE: Duration = Duration::from_secs(2);

impl Ctx {
    fn steps<'a>(&'a mut self, env: &'a Env, steps: &'a [Step]) -> StepFuture<'a> {
        Box::pin(async move {
            for (i, s) in steps.iter().enumerate() {
                self.end_expected = steps.get(i + 1).and_then(|next| self.expects_end(next));
                if let Some((var, want)) = &s.when {
                    let want = want.render(&self.vars).map_err(|e| Failure::at(s, e))?;
                    let have = self
                        .vars
                        .get(var)
                        .ok_or_else(|| Failure::at(s, format!("variable '{var}' is not set")))?;
                    if !have.eq_ignore_ascii_case(&want) {
                        continue;
                    }
                }
                self.step(env, s).await?;
            }
            Ok(())
        })
    }

    /// The connection `step` expects to end, when it is an expectation of a close or an error.
    fn expects_end(&self, step: &Step) -> Option<String> {
        let ends = match &step.kind {
            StepKind::Expect(e) => match &e.what {
                ExpectWhat::Closed => true,
                ExpectWhat::Structured(x) => x.expects_end(),
                _ => false,
            },
            _ => false,
        };
        ends.then(|| self.conn_name(step).ok()).flatten()
    }

    /// Whether the step after `step` expects `step`'s connection to end.
    fn end_expected_on(&self, step: &Step) -> bool {
        self.end_expected.is_some() && self.end_expected == self.conn_name(step).ok()
    }

    fn timeout(&self, env: &Env, step: &Step) -> Duration {
        step.timeout.unwrap_or(env.suite.timeout).mul_f64(env.scale)
    }

    fn conn_name(&self, step: &Step) -> Result<String, Failure> {
        step.on
            .clone()
            .or_else(|| self.last.clone())
            .ok_or_else(|| Failure::at(step, "no connection is open"))
    }

    fn conn(&mut self, step: &Step) -> Result<&mut Conn, Failure> {
        let name = self.conn_name(step)?;
        self.conns.get_mut(&name).ok_or_else(|| {
            Failure::at(
                step,
                format!("no connection named '{name}' is open (it was closed, or opened in another branch)"),
            )
        })
    }

    /// The harness's own address on the connection `step` uses (`NAME.local`, set at connect).
    fn local_of(&self, step: &Step) -> Option<SocketAddr> {
        let name = self.conn_name(step).ok()?;
        self.vars.get(&format!("{name}.local"))?.parse().ok()
    }

    fn render(&self, step: &Step, t: &Template) -> Result<String, Failure> {
        t.render(&self.vars).map_err(|e| Failure::at(step, e))
    }

    fn bytes(&self, env: &Env, step: &Step, p: &Payload) -> Result<Vec<u8>, Failure> {
        Ok(match p {
            Payload::Lines(lines) => {
                let ending = match self.conn_name(step) {
                    Ok(c) => self.proto_of(env, &c).line_ending(),
                    Err(_) => env.proto.line_ending(),
                };
                let mut out = Vec::new();
                for l in lines {
                    out.extend_from_slice(self.render(step, l)?.as_bytes());
                    out.extend_from_slice(ending);
                }
                out
            }
            Payload::Raw(t) => unescape(&self.render(step, t)?).map_err(|e| Failure::at(step, e))?,
            Payload::Hex(b) => b.clone(),
            Payload::Fill { pattern, size } => pattern.iter().copied().cycle().take(*size).collect(),
            Payload::Pieces(ps) => {
                let mut out = Vec::new();
                for p in ps {
                    if let Piece::Data(d) = p {
                        out.extend(self.bytes(env, step, d)?);
                    }
                }
                out
            }
            Payload::Structured(st) => st
                .render(&env.render_cx(&self.vars, self.transport_of(step), self.local_of(step)))
                .map_err(|e| Failure::at(step, e))?,
        })
    }

    fn register(&mut self, env: &Env, name: &str, conn: Conn) {
        self.conns.insert(name.to_string(), conn);
        self.closing.remove(name);
        self.last = Some(name.to_string());
        let _ = env;
    }

    /// The transport of the connection `step` uses (TCP when it has none yet).
    fn transport_of(&self, step: &Step) -> Transport {
        match self.conn_name(step).ok().and_then(|n| self.conns.get(&n)) {
            Some(Conn::Udp(_)) => Transport::Udp,
            Some(Conn::Quic(_)) => Transport::Quic,
            _ => Transport::Tcp,
        }
    }

    fn set_proto(&mut self, name: &str, protocol: Option<&str>) {
        match protocol.and_then(crate::proto::find) {
            Some(p) => {
                self.protos.insert(name.to_string(), p);
            }
            None => {
                self.protos.remove(name);
            }
        }
    }

    fn proto_of(&self, env: &Env, name: &str) -> &'static dyn Protocol {
        self.protos.get(name).copied().unwrap_or(env.proto)
    }

    fn info(
        &self,
        env: &Env,
        name: &str,
        transport: Transport,
        harness_is_client: bool,
        local: Option<SocketAddr>,
        peer: Option<SocketAddr>,
    ) -> ConnInfo {
        ConnInfo {
            id: 0,
            name: format!("{name}{}", self.suffix),
            transport,
            protocol: self.proto_of(env, name).name().to_string(),
            harness_is_client,
            captured: false,
            actor: false,
            local,
            peer,
        }
    }

    /// A UDP expect that timed out: when the reply went to another of the case's UDP ports, say
    /// so; otherwise name the port the reply should have come back to.
    fn udp_misdelivered(&mut self, step: &Step, mut f: Failure) -> Failure {
        let Ok(name) = self.conn_name(step) else { return f };
        let Some(here) = self.conns.get(&name).and_then(Conn::udp_client_local) else {
            return f;
        };
        let mut names: Vec<String> = self.conns.keys().filter(|n| **n != name).cloned().collect();
        names.sort();
        for other in names {
            let Some(c) = self.conns.get_mut(&other) else { continue };
            let Some(there) = c.udp_client_local() else { continue };
            if let Some(d) = c.take_unread().first() {
                f.message = format!(
                    "no reply came back to {here}, the port the request came from; a datagram ({}) arrived at {there}, \
                     the port of '{other}', instead: a UDP server answers the address recvfrom returned with the \
                     request (RFC 768: the source port is where a reply goes)",
                    escape_bytes(d, 60)
                );
                return f;
            }
        }
        f.message = format!(
            "no datagram came back to {here}, the port the request came from (a UDP server replies to the address \
             recvfrom returned; RFC 768)"
        );
        f
    }

    async fn serve(&mut self, env: &Env, step: &Step, s: &crate::suite::Serve) -> Result<(), Failure> {
        let decls: Vec<&crate::suite::ActorDecl> = s
            .actors
            .iter()
            .filter_map(|n| env.suite.actors.iter().find(|a| a.name == *n))
            .collect();
        // --tls in a client-role suite: the program's peers are the actors, and they serve TLS.
        let tls = match &env.tls {
            Ok(t) if t.on && env.suite.role == crate::suite::Role::Client => Some(t.server.clone()),
            _ => None,
        };
        let running = super::actors::start(&decls, &s.faults, &s.options, env.well_known_ports, &env.rec, &env.folder, tls)
            .await
            .map_err(|e| Failure::at(step, e))?;
        for a in &running {
            self.vars.insert(format!("{}.port", a.name), a.addr.port().to_string());
            self.vars.insert(format!("{}.host", a.name), a.addr.ip().to_string());
            self.vars.insert(format!("{}.addr", a.name), a.addr.to_string());
        }
        self.actors.lock().unwrap_or_else(|e| e.into_inner()).extend(running);
        Ok(())
    }

    async fn saw(&mut self, env: &Env, step: &Step, s: &crate::suite::Saw) -> Result<(), Failure> {
        // What a program sends may still be on its way into the actor: an open-ended count is
        // checked as messages come, a bounded one once the program's connections are gone (or
        // at the step's deadline); between counts the step waits for the actor's next change.
        let deadline = Instant::now() + self.timeout(env, step);
        if s.spec.judges() {
            return self.saw_judged(step, s, deadline).await;
        }
        let cx = env.render_cx(&self.vars, s.over.unwrap_or(Transport::Udp), None);
        let mut looked_again = false;
        let (n, all) = loop {
            // Registered before the count, so nothing the actor logs in between is missed.
            let (changes, mut open) = {
                let actors = self.actors.lock().unwrap_or_else(|e| e.into_inner());
                match actors.iter().find(|a| a.name == s.actor) {
                    Some(a) => (a.changes(), a.open_watch()),
                    None => {
                        return Err(Failure::at(
                            step,
                            format!("the actor '{}' is not running: start it with a 'serve' step first", s.actor),
                        ))
                    }
                }
            };
            let changed = changes.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (n, all, settled, counts) = {
                let actors = self.actors.lock().unwrap_or_else(|e| e.into_inner());
                let Some(a) = actors.iter().find(|a| a.name == s.actor) else {
                    return Err(Failure::at(
                        step,
                        format!("the actor '{}' is not running: start it with a 'serve' step first", s.actor),
                    ));
                };
                let (n, all) = a.count(s.spec.as_ref(), s.over, s.host, &cx);
                (n, all, a.settled(), a.counts_connections())
            };
            let enough = n >= s.min && s.max.is_none();
            // An actor that does not count its connections is judged on what it has now, except
            // for an open-ended count, which waits for messages until the step's deadline (a
            // node under test queries a DHT actor when its own timers say).
            let judged_now = !counts && s.max.is_some();
            if enough || settled || judged_now || Instant::now() >= deadline {
                // Settled short of the count: one more look once the actor's tasks have run, in
                // case the last bytes were logged just after its connection count fell to zero.
                if settled && !enough && !looked_again && Instant::now() < deadline {
                    looked_again = true;
                    tokio::task::yield_now().await;
                    continue;
                }
                break (n, all);
            }
            // Until the actor logs something or a connection of its opens or closes.
            let open_changed = async {
                match open.as_mut() {
                    Some(o) => {
                        let _ = o.changed().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = changed => {}
                _ = open_changed => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        };
        if n >= s.min && s.max.is_none_or(|m| n <= m) {
            return Ok(());
        }
        let want = match (s.min, s.max) {
            (lo, Some(hi)) if lo == hi => format!("exactly {lo}"),
            (0, Some(hi)) => format!("at most {hi}"),
            (lo, None) => format!("at least {lo}"),
            (lo, Some(hi)) => format!("{lo} to {hi}"),
        };
        let got = match all.is_empty() {
            true => "nothing".to_string(),
            false => all.join("\n"),
        };
        // With a premise, what the actor saw shows the program does not offer what the case needs.
        Err(Failure::at(
            step,
            format!("{} received {n} matching message(s); the case expects {want}", s.actor),
        )
        .with(format!("{want}: {}", s.spec.describe()), got)
        .unmet(step))
    }

    /// A `saw:` that judges everything the actor received at once: once the program's
    /// connections to it are gone (or at the step's deadline), so the whole exchange is there.
    async fn saw_judged(&mut self, step: &Step, s: &crate::suite::Saw, deadline: Instant) -> Result<(), Failure> {
        let not_running = || {
            Failure::at(
                step,
                format!("the actor '{}' is not running: start it with a 'serve' step first", s.actor),
            )
        };
        loop {
            let (changes, settled) = {
                let actors = self.actors.lock().unwrap_or_else(|e| e.into_inner());
                let a = actors.iter().find(|a| a.name == s.actor).ok_or_else(not_running)?;
                (a.changes(), a.settled() || !a.counts_connections())
            };
            if settled || Instant::now() >= deadline {
                break;
            }
            let changed = changes.notified();
            // The actor's connection count is not notified when it falls: look again soon.
            let _ = tokio::time::timeout_at(deadline.min(Instant::now() + Duration::from_millis(50)), changed).await;
        }
        let verdict = {
            let actors = self.actors.lock().unwrap_or_else(|e| e.into_inner());
            let a = actors.iter().find(|a| a.name == s.actor).ok_or_else(not_running)?;
            a.judge(s.spec.as_ref(), s.over, s.host)
        };
        match verdict {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(m)) => {
                let mut f = Failure::at(step, format!("{}: {}", s.actor, m.message)).with(m.expected, m.got);
                f.at = m.at.map(Box::new);
                Err(f.unmet(step))
            }
        }
    }

    fn close_all(&mut self, env: &Env) {
        let _ = env;
        for (_, c) in self.conns.drain() {
            c.close();
        }
        self.listeners.clear();
    }

    fn step<'a>(&'a mut self, env: &'a Env, step: &'a Step) -> StepFuture<'a> {
        Box::pin(async move {
            let deadline = Instant::now() + self.timeout(env, step);
            match &step.kind {
                StepKind::Connect {
                    name,
                    transport,
                    to,
                    from,
                    refused,
                    protocol,
                } => {
                    self.set_proto(name, protocol.as_deref());
                    let ends = Ends {
                        to: to.as_ref(),
                        from: from.as_ref(),
                    };
                    self.connect(env, step, name, *transport, ends, *refused, deadline).await
                }
                StepKind::Listen {
                    name,
                    transport,
                    protocol,
                    host,
                    port,
                } => {
                    self.set_proto(name, protocol.as_deref());
                    let host = match host {
                        Some(h) => self.render(step, h)?,
                        None => "127.0.0.1".into(),
                    };
                    let port = match port {
                        Some(p) => self.render(step, p)?,
                        None => "0".into(),
                    };
                    let bind: SocketAddr = format!("{host}:{port}")
                        .parse()
                        .map_err(|_| Failure::at(step, format!("'{host}:{port}' is not an address to listen on")))?;
                    self.listen(env, step, name, *transport, bind).await
                }
                StepKind::Accept { listener, name, none } => {
                    if let Some(p) = self.protos.get(listener).copied() {
                        self.protos.insert(name.clone(), p);
                    }
                    let (l, _) = self
                        .listeners
                        .get(listener)
                        .ok_or_else(|| Failure::at(step, format!("no listener named '{listener}'")))?;
                    if *none {
                        return match tokio::time::timeout_at(deadline, l.accept()).await {
                            Ok(Ok((_, peer))) => Err(Failure::at(
                                step,
                                format!("a connection arrived on '{listener}' from {peer}, expected none"),
                            )
                            .with("no connection", format!("a connection from {peer}"))),
                            _ => Ok(()),
                        };
                    }
                    // A client that exits without connecting fails the step now, not at the deadline.
                    let program = env.program.lock().await.clone();
                    let exited = async {
                        match &program {
                            Some(p) => p.wait(deadline).await,
                            None => std::future::pending().await,
                        }
                    };
                    let accepted = tokio::select! {
                        biased;
                        r = tokio::time::timeout_at(deadline, l.accept()) => r,
                        Some(exit) = exited => {
                            let tail = program.as_ref().map(|p| p.stderr.tail(1000)).unwrap_or_default();
                            return Err(Failure::at(step, format!("the program ended ({exit}) without connecting{}", if tail.is_empty() { String::new() } else { format!(": {tail}") })));
                        }
                    };
                    match accepted {
                        Err(_) => Err(Failure::at(
                            step,
                            format!("the target did not connect within {:?}", self.timeout(env, step)),
                        )),
                        Ok(Err(e)) => Err(Failure::at(step, format!("accept failed: {e}"))),
                        Ok(Ok((stream, peer))) => {
                            let info = self.info(env, name, Transport::Tcp, false, stream.local_addr().ok(), Some(peer));
                            let id = env.rec.open(info);
                            let proto = self.proto_of(env, name);
                            let mut conn = Conn::Tcp(TcpConn::new(id, stream, false, proto, env.rec.clone()));
                            // --tls: a client program connects to the harness's server in TLS
                            // (the suite's own protocol; data connections stay as they are).
                            if let Ok(tls) = &env.tls {
                                if tls.on && env.suite.role == crate::suite::Role::Client && proto.name() == env.proto.name() {
                                    if let Err(why) = conn.start_tls(tls, deadline).await {
                                        self.register(env, name, conn);
                                        return Err(Failure::at(step, format!("--tls: no TLS session with the program: {why}")));
                                    }
                                }
                            }
                            self.register(env, name, conn);
                            Ok(())
                        }
                    }
                }
                StepKind::Start { listener, listen, args } => self.start(env, step, listener.as_deref(), *listen, args, deadline).await,
                StepKind::ExpectFile(x) => expect_file(env, step, x),
                StepKind::Send(p) => self.send(env, step, p, deadline).await,
                StepKind::Expect(e) => match self.expect(env, step, e, deadline).await {
                    Err(f) if f.message.starts_with("timed out") => Err(self.udp_misdelivered(step, f)),
                    r => r,
                },
                StepKind::Collect(c) => self.collect(step, c).await,
                StepKind::Close if step.on.as_ref().is_some_and(|n| self.listeners.contains_key(n)) => {
                    // Closing a listener frees its port: nothing listens there any more.
                    self.listeners.remove(step.on.as_deref().unwrap_or_default());
                    Ok(())
                }
                StepKind::Close => {
                    let name = self.conn_name(step)?;
                    let c = self
                        .conns
                        .remove(&name)
                        .ok_or_else(|| Failure::at(step, format!("no connection named '{name}' is open")))?;
                    c.close();
                    Ok(())
                }
                StepKind::Shutdown => {
                    self.conn(step)?.shutdown().await;
                    Ok(())
                }
                StepKind::StartTls => {
                    let tls = env
                        .tls
                        .clone()
                        .map_err(|e| Failure::at(step, format!("TLS is not available: {e}")))?;
                    self.conn(step)?.start_tls(&tls, deadline).await.map(|_| ()).map_err(|why| {
                        let mut f = Failure::at(step, why);
                        f.premise = step.premise.clone();
                        f
                    })
                }
                StepKind::Switch(to) => self.conn(step)?.switch(to).map_err(|why| Failure::at(step, why)),
                StepKind::Parallel(branches) => self.parallel(env, branches).await,
                StepKind::Repeat(r) => self.repeat(env, r).await,
                StepKind::ExpectOutput(o) => self.expect_output(env, step, o, deadline).await,
                StepKind::ExpectExit(x) => self.expect_exit(env, step, *x, deadline).await,
                StepKind::Serve(s) => self.serve(env, step, s).await,
                StepKind::Saw(s) => self.saw(env, step, s).await,
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn connect(
        &mut self,
        env: &Env,
        step: &Step,
        name: &str,
        transport: Transport,
        ends: Ends<'_>,
        refused: bool,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let from: Option<std::net::IpAddr> = match ends.from {
            Some(t) => {
                let s = self.render(step, t)?;
                Some(s.parse().map_err(|_| {
                    Failure::at(
                        step,
                        format!("from: '{s}' is not an IP address (a loopback one of its own, e.g. 127.0.0.60)"),
                    )
                })?)
            }
            None => None,
        };
        let addr = match ends.to {
            Some(t) => {
                let s = self.render(step, t)?;
                match tokio::net::lookup_host(&s).await.ok().and_then(|mut a| a.next()) {
                    Some(a) => a,
                    None => return Err(Failure::at(step, format!("'{s}' is not an address (write HOST:PORT)"))),
                }
            }
            None => env.target.ok_or_else(|| {
                Failure::at(
                    step,
                    "there is no target to connect to: this suite's target is a client (use listen and accept)",
                )
            })?,
        };
        if transport == Transport::Quic {
            return self.connect_quic(env, step, name, addr, refused, deadline).await;
        }
        match transport {
            Transport::Tcp => match tokio::time::timeout_at(deadline, tcp_connect(addr, from)).await {
                Err(_) => Err(Failure::at(step, format!("connecting to {addr} timed out"))),
                // A listener that closes with our SYN still in its queue resets it: to a client
                // that expects the server to have stopped listening, that is the same refusal.
                Ok(Err(e))
                    if e.kind() == std::io::ErrorKind::ConnectionRefused
                        || (refused && e.kind() == std::io::ErrorKind::ConnectionReset) =>
                {
                    let info = self.info(env, name, transport, true, None, Some(addr));
                    let id = env.rec.open(info);
                    env.rec.event(id, EventKind::Refused);
                    if refused {
                        Ok(())
                    } else {
                        let why = match self.if_refused.get(&addr) {
                            Some(note) => format!("connection refused: nothing is listening on {addr}; {note}"),
                            None => format!("connection refused: nothing is listening on {addr} (did the server stop or crash?)"),
                        };
                        Err(Failure::at(step, why))
                    }
                }
                Ok(Err(e)) => Err(Failure::at(step, format!("cannot connect to {addr}: {e}"))),
                Ok(Ok(stream)) => {
                    if refused {
                        return Err(Failure::at(
                            step,
                            format!("expected the connection to {addr} to be refused, but it was accepted"),
                        )
                        .with("connection refused", "connection accepted"));
                    }
                    if let Ok(local) = stream.local_addr() {
                        self.vars.insert(format!("{name}.local"), local.to_string());
                    }
                    let info = self.info(env, name, transport, true, stream.local_addr().ok(), Some(addr));
                    let id = env.rec.open(info);
                    let mut conn = Conn::Tcp(TcpConn::new(id, stream, true, self.proto_of(env, name), env.rec.clone()));
                    // --tls: the target's own ports speak TLS from the first byte; addresses a
                    // reply announced (FTP data connections) stay as the protocol has them.
                    let to_target = env.target == Some(addr) || env.extra.iter().any(|(_, a)| *a == addr);
                    if let Ok(tls) = &env.tls {
                        if tls.on && to_target {
                            if let Err(why) = conn.start_tls(tls, deadline).await {
                                self.register(env, name, conn);
                                return Err(Failure::at(step, format!("--tls: no TLS session with {addr}: {why}")));
                            }
                        }
                    }
                    self.register(env, name, conn);
                    Ok(())
                }
            },
            Transport::Udp | Transport::Quic => {
                if refused {
                    return Err(Failure::at(step, "UDP has no connection to refuse; use expect silence"));
                }
                let bind: SocketAddr = match from {
                    Some(ip) => SocketAddr::new(ip, 0),
                    None if addr.is_ipv6() => "[::1]:0".parse().expect("constant address"),
                    None => "127.0.0.1:0".parse().expect("constant address"),
                };
                let sock = UdpSocket::bind(bind)
                    .await
                    .map_err(|e| Failure::at(step, format!("cannot open a UDP socket on {bind}: {e}")))?;
                let proto = self.proto_of(env, name);
                let any_source = proto.answers_from_elsewhere();
                if !any_source {
                    sock.connect(addr)
                        .await
                        .map_err(|e| Failure::at(step, format!("cannot address {addr}: {e}")))?;
                }
                if let Ok(local) = sock.local_addr() {
                    self.vars.insert(format!("{name}.local"), local.to_string());
                }
                let info = self.info(env, name, transport, true, sock.local_addr().ok(), Some(addr));
                let id = env.rec.open(info);
                let conn = match any_source {
                    true => Conn::udp_to(id, sock, addr, proto, env.rec.clone()),
                    false => Conn::udp(id, sock, true, true, proto, env.rec.clone()),
                };
                self.register(env, name, conn);
                Ok(())
            }
        }
    }

    /// A QUIC connection (`run/quic.rs`): the handshake with the protocol's ALPN, then streams.
    async fn connect_quic(
        &mut self,
        env: &Env,
        step: &Step,
        name: &str,
        addr: SocketAddr,
        refused: bool,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let proto = self.proto_of(env, name);
        let tls = env
            .tls
            .as_ref()
            .map_err(|why| Failure::at(step, format!("QUIC needs TLS, which is not set up: {why}")))?;
        match super::quic::connect(addr, tls, deadline).await {
            Err(why) if refused => {
                let _ = why;
                let id = env.rec.open(self.info(env, name, Transport::Quic, true, None, Some(addr)));
                env.rec.event(id, EventKind::Refused);
                Ok(())
            }
            Err(why) => Err(Failure::at(step, why)),
            Ok(_) if refused => Err(
                Failure::at(step, format!("expected the QUIC handshake with {addr} to fail, but it succeeded"))
                    .with("no connection", "a QUIC connection"),
            ),
            Ok((endpoint, conn)) => {
                let local = endpoint.local_addr().ok();
                let id = env.rec.open(self.info(env, name, Transport::Quic, true, local, Some(addr)));
                let mut q = super::quic::QuicConn::new(id, endpoint, conn, proto, env.rec.clone());
                q.settle(deadline).await;
                self.register(env, name, Conn::Quic(Box::new(q)));
                Ok(())
            }
        }
    }

    async fn listen(&mut self, env: &Env, step: &Step, name: &str, transport: Transport, bind: SocketAddr) -> Result<(), Failure> {
        let local = match transport {
            Transport::Tcp => {
                let l = TcpListener::bind(bind)
                    .await
                    .map_err(|e| Failure::at(step, format!("cannot listen: {e}")))?;
                let local = l.local_addr().map_err(|e| Failure::at(step, e.to_string()))?;
                self.listeners.insert(name.to_string(), (l, local));
                local
            }
            Transport::Udp | Transport::Quic => {
                let sock = UdpSocket::bind(bind)
                    .await
                    .map_err(|e| Failure::at(step, format!("cannot bind: {e}")))?;
                let local = sock.local_addr().map_err(|e| Failure::at(step, e.to_string()))?;
                let info = self.info(env, name, transport, false, Some(local), None);
                let id = env.rec.open(info);
                self.register(
                    env,
                    name,
                    Conn::udp(id, sock, false, false, self.proto_of(env, name), env.rec.clone()),
                );
                local
            }
        };
        self.last_listener = Some(name.to_string());
        self.vars.insert(format!("{name}.port"), local.port().to_string());
        self.vars.insert(format!("{name}.host"), local.ip().to_string());
        self.vars.insert(format!("{name}.addr"), local.to_string());
        Ok(())
    }

    async fn start(
        &mut self,
        env: &Env,
        step: &Step,
        listener: Option<&str>,
        listen: Option<Transport>,
        args: &[StartArg],
        deadline: Instant,
    ) -> Result<(), Failure> {
        let args = args
            .iter()
            .map(|a| match a {
                StartArg::Word(t) => t.render(&self.vars).map_err(|e| Failure::at(step, e)),
                StartArg::Out(name) => env
                    .folder
                    .join(name)
                    .map(|p| p.display().to_string())
                    .map_err(|e| Failure::at(step, e)),
                StartArg::File(p) => Ok(p.display().to_string()),
            })
            .collect::<Result<Vec<String>, Failure>>()?;
        // `{port}` is the harness's listener (a client under test connects there); a server under
        // test (`listen:`) also gets a free port of its own as `{listen_port}`.
        let port = match listener.map(str::to_string).or_else(|| self.last_listener.clone()) {
            Some(name) => self
                .vars
                .get(&format!("{name}.port"))
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| Failure::at(step, format!("no listener named '{name}'")))?,
            None if listen.is_some() => 0,
            None => return Err(Failure::at(step, "start needs a listener: add a listen step first")),
        };
        let launcher = match &env.launcher {
            Some(Ok(l)) => l,
            Some(Err(why)) => return Err(Failure::at(step, why.to_string())),
            None => return Err(Failure::at(step, "this suite's target is a server: there is no client to start")),
        };
        let (program, listening) = launcher
            .launch(port, listen, &args, &self.vars, deadline)
            .await
            .map_err(|e| Failure::at(step, e.to_string()))?;
        if let Some(addr) = listening {
            self.vars.insert("program.port".into(), addr.port().to_string());
            self.vars.insert("program.addr".into(), addr.to_string());
        }
        *env.program.lock().await = Some(Arc::new(program));
        *env.output_pos.lock().unwrap_or_else(|e| e.into_inner()) = 0;
        Ok(())
    }

    async fn send(&mut self, env: &Env, step: &Step, p: &Payload, deadline: Instant) -> Result<(), Failure> {
        // The harness keeps the rules it checks: nothing more on a connection the peer said it ends.
        if let Some(why) = self.conn_name(step).ok().and_then(|n| self.closing.get(&n)) {
            return Err(Failure::at(
                step,
                format!("the peer announced the end of this connection ({why}), so nothing more is sent on it: this step needs a connection that stays open"),
            ));
        }
        if let Payload::Pieces(pieces) = p {
            for piece in pieces {
                match piece {
                    Piece::Pause(d) => tokio::time::sleep(*d).await,
                    Piece::Data(d) => {
                        let bytes = self.bytes(env, step, d)?;
                        match self.conn(step)?.send(&bytes, deadline).await {
                            Err(SendError::PeerGone { .. }) if self.end_expected_on(step) => return Ok(()),
                            r => r.map_err(|e| send_failure(step, e))?,
                        }
                    }
                }
            }
            return Ok(());
        }
        let bytes = self.bytes(env, step, p)?;
        let flood = matches!(p, Payload::Structured(s) if s.flood());
        // A peer that ends the connection at the first bad byte, as the next step expects, may
        // be gone before the rest is written: that step reads how it ended.
        let end_expected = self.end_expected_on(step);
        match self.conn(step)?.send(&bytes, deadline).await {
            Err(SendError::PeerGone { .. }) if flood || end_expected => Ok(()),
            r => r.map_err(|e| send_failure(step, e)),
        }
    }

    async fn expect(&mut self, env: &Env, step: &Step, e: &Expect, deadline: Instant) -> Result<(), Failure> {
        let started = Instant::now();
        let waited = self.timeout(env, step);
        let recv_fail = |err: RecvError, expected: String| {
            let got = match &err {
                RecvError::Timeout { .. } => format!("nothing within {waited:?}"),
                _ => err.to_string(),
            };
            let silent = matches!(&err, RecvError::Timeout { partial } if partial.is_empty());
            let mut f = Failure::at(step, err.to_string()).with(expected, got);
            f.silent_timeout = silent;
            f
        };
        let text = match &e.what {
            ExpectWhat::Line(t) => {
                let want = self.render(step, t)?;
                let (m, at) = self
                    .conn(step)?
                    .message(deadline)
                    .await
                    .map_err(|err| recv_fail(err, quote(&want)))?;
                if m.text != want {
                    return Err(Failure::at(step, "the reply differs")
                        .with(quote(&want), quote(&m.text))
                        .unmet(step));
                }
                check_not_before(step, e, started, at)?;
                m.text
            }
            ExpectWhat::Lines(ts) => {
                let want: Vec<String> = ts.iter().map(|t| self.render(step, t)).collect::<Result<_, _>>()?;
                let mut got = Vec::new();
                for _ in &want {
                    match self.conn(step)?.message(deadline).await {
                        Ok((m, _)) => got.push(m.text),
                        Err(err) => return Err(recv_fail(err, want.join("\n")).with(want.join("\n"), got.join("\n"))),
                    }
                }
                if got != want {
                    return Err(Failure::at(step, "the lines differ")
                        .with(want.join("\n"), got.join("\n"))
                        .unmet(step));
                }
                got.join("\n")
            }
            ExpectWhat::Regex(t) => {
                let pattern = t.render_regex(&self.vars).map_err(|m| Failure::at(step, m))?;
                let re = Regex::new(&pattern).map_err(|err| Failure::at(step, format!("invalid regex: {err}")))?;
                let (m, at) = self
                    .conn(step)?
                    .message(deadline)
                    .await
                    .map_err(|err| recv_fail(err, format!("a message matching /{pattern}/")))?;
                let Some(caps) = re.captures(&m.text) else {
                    return Err(Failure::at(step, "the reply does not match")
                        .with(format!("/{pattern}/"), quote(&m.text))
                        .unmet(step));
                };
                check_not_before(step, e, started, at)?;
                for name in re.capture_names().flatten() {
                    if let Some(v) = caps.name(name) {
                        self.set_var(step, name, v.as_str());
                    }
                }
                m.text
            }
            ExpectWhat::Bytes(p) => {
                let want = self.bytes(env, step, p)?;
                let got = self
                    .conn(step)?
                    .bytes(want.len(), deadline)
                    .await
                    .map_err(|err| recv_fail(err, format!("{} bytes \"{}\"", want.len(), escape_bytes(&want, 200))))?;
                if got != want {
                    let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
                    return Err(Failure::at(step, format!("the bytes differ at offset {at}"))
                        .with(escape_bytes(&want, 300), escape_bytes(&got, 300))
                        .unmet(step));
                }
                String::from_utf8_lossy(&got).into_owned()
            }
            ExpectWhat::Closed => {
                match self.conn(step)?.closed(deadline).await {
                    Ok(Ok(())) => {}
                    Ok(Err(data)) => {
                        return Err(Failure::at(step, "expected the connection to close, but data arrived")
                            .with("close", format!("\"{}\"", escape_bytes(&data, 300))))
                    }
                    Err(RecvError::Timeout { .. }) => {
                        return Err(Failure::at(step, format!("the connection is still open after {waited:?}")).with("close", "still open"))
                    }
                    Err(err) => return Err(Failure::at(step, err.to_string())),
                }
                String::new()
            }
            ExpectWhat::Structured(spec) => {
                let mut passed_over: Vec<String> = Vec::new();
                // An expectation that nothing arriving meets waits its own while, not the step's.
                let quiet = spec.holds_after().map(|d| (Instant::now() + d).min(deadline));
                loop {
                    let (m, at) = loop {
                        let got = match self.conn(step)?.message_resending(quiet.unwrap_or(deadline), step.resend).await {
                            Err(RecvError::Closed { .. }) if spec.accepts_close() || quiet.is_some() => return Ok(()),
                            Err(RecvError::Timeout { .. }) if quiet.is_some() => return Ok(()),
                            Err(err) if !passed_over.is_empty() => {
                                let shown = passed_over.iter().rev().take(5).rev().cloned().collect::<Vec<_>>().join("\n");
                                return Err(Failure::at(
                                    step,
                                    format!(
                                        "{err}; before that it read past {} message(s) that were not what it waits for",
                                        passed_over.len()
                                    ),
                                )
                                .with(spec.describe(), shown));
                            }
                            got => got.map_err(|err| {
                                // A premise is unmet too when the answer is not framed as this
                                // protocol at all: an HTTP/2-only server answers HTTP/1.1 with frames.
                                let other_framing = matches!(err, RecvError::Malformed(_));
                                let f = recv_fail(err, spec.describe());
                                if other_framing {
                                    f.unmet(step)
                                } else {
                                    f
                                }
                            })?,
                        };
                        let must = env.triage(&got.0);
                        self.note_close(env, step, &got.0);
                        if !must.is_empty() {
                            return Err(Failure::at(step, format!("the message breaks the RFC: {}", must.join("; ")))
                                .with(spec.describe(), got.0.summary.clone()));
                        }
                        // Frames a peer may send at any time are read past, up to a bound: a peer
                        // that floods them still ends the step.
                        if spec.skips(&got.0) && passed_over.len() < MAX_PASSED_OVER {
                            passed_over.push(got.0.summary.clone());
                            continue;
                        }
                        break got;
                    };
                    match spec.check(&m, &env.render_cx(&self.vars, self.transport_of(step), self.local_of(step))) {
                        Ok(caps) => {
                            for (k, v) in caps {
                                if let Some(note) = v.parse().ok().and_then(|a| Some((a, spec.if_refused(a)?))) {
                                    self.if_refused.insert(note.0, note.1);
                                }
                                self.set_var(step, &k, &v);
                            }
                        }
                        Err(mm) => {
                            // An answer that follows what the peer has learnt so far (a DHT
                            // node's closest nodes) is asked again until it holds or time is up.
                            if let Some(every) = spec.retry().filter(|d| Instant::now() + *d < deadline) {
                                tokio::time::sleep(every).await;
                                self.conn(step)?
                                    .resend_last(deadline)
                                    .await
                                    .map_err(|e| Failure::at(step, e.to_string()))?;
                                continue;
                            }
                            let mut f = Failure::at(step, mm.message).with(mm.expected, mm.got).unmet(step);
                            f.at = mm.at.map(Box::new);
                            return Err(f);
                        }
                    }
                    check_not_before(step, e, started, at)?;
                    break m.text;
                }
            }
            ExpectWhat::OpenUnlessAnnounced(d) => {
                let announced = self.conn_name(step).ok().and_then(|n| self.closing.get(&n).copied());
                match self.conn(step)?.silence(Instant::now() + *d).await {
                    Ok(()) => {}
                    Err(RecvError::Closed { .. }) if announced.is_some() => {}
                    Err(err) => {
                        let why = match &err {
                            RecvError::Closed { .. } => "the connection closed although the last response did not announce it (RFC 9112 §9.3: persistent unless Connection: close or HTTP/1.0; §9.6: a server that closes MUST send close)".to_string(),
                            _ => err.to_string(),
                        };
                        let want = match announced {
                            Some(_) => format!("nothing for {d:?}, or the announced close"),
                            None => format!("the connection open and silent for {d:?}"),
                        };
                        return Err(Failure::at(step, why).with(want, err.to_string()));
                    }
                }
                String::new()
            }
            ExpectWhat::Silence(d) => {
                self.conn(step)?
                    .silence(Instant::now() + *d)
                    .await
                    .map_err(|err| Failure::at(step, err.to_string()).with(format!("silence for {d:?}"), err.to_string()))?;
                String::new()
            }
        };
        for (name, re) in &e.captures {
            match re.captures(&text).and_then(|c| c.get(1)) {
                Some(m) => self.set_var(step, name, m.as_str()),
                None => {
                    return Err(Failure::at(step, format!("nothing to capture into '{name}'"))
                        .with(format!("/{}/", re.as_str()), quote(&text))
                        .unmet(step))
                }
            }
        }
        Ok(())
    }

    /// Remembers that the peer ended the connection with `m`, when its protocol says so.
    fn note_close(&mut self, env: &Env, step: &Step, m: &crate::proto::Message) {
        if let Ok(name) = self.conn_name(step) {
            if let Some(why) = self.proto_of(env, &name).announces_close(m) {
                self.closing.insert(name, why);
            }
        }
    }

    fn set_var(&mut self, step: &Step, name: &str, value: &str) {
        self.vars.insert(name.to_string(), value.to_string());
        if let Ok(conn) = self.conn_name(step) {
            self.vars.insert(format!("{conn}.{name}"), value.to_string());
        }
    }

    async fn collect(&mut self, step: &Step, c: &Collect) -> Result<(), Failure> {
        let each = match &c.each {
            Some(t) => {
                let p = t.render_regex(&self.vars).map_err(|m| Failure::at(step, m))?;
                Some(Regex::new(&p).map_err(|e| Failure::at(step, format!("invalid regex: {e}")))?)
            }
            None => None,
        };
        let mut some = Vec::new();
        for t in &c.some {
            let p = t.render_regex(&self.vars).map_err(|m| Failure::at(step, m))?;
            some.push(Regex::new(&p).map_err(|e| Failure::at(step, format!("invalid regex: {e}")))?);
        }
        let mut seen = vec![false; some.len()];
        let until = Instant::now() + c.duration;
        let mut n = 0;
        loop {
            match self.conn(step)?.message(until).await {
                Ok((m, _)) => {
                    n += 1;
                    for (re, seen) in some.iter().zip(seen.iter_mut()) {
                        *seen |= re.is_match(&m.text);
                    }
                    if let Some(re) = &each {
                        if !re.is_match(&m.text) {
                            return Err(
                                Failure::at(step, format!("message {n} does not match")).with(format!("/{}/", re.as_str()), quote(&m.text))
                            );
                        }
                    }
                    if n > c.max {
                        return Err(Failure::at(step, format!("more than {} messages arrived", c.max))
                            .with(format!("at most {}", c.max), format!("{n} (and counting)")));
                    }
                }
                Err(RecvError::Timeout { .. }) | Err(RecvError::Closed { .. }) => break,
                Err(e) => return Err(Failure::at(step, e.to_string())),
            }
        }
        if n < c.min {
            return Err(Failure::at(step, format!("only {n} messages arrived in {:?}", c.duration))
                .with(format!("at least {}", c.min), n.to_string()));
        }
        if let Some(re) = some.iter().zip(&seen).find_map(|(re, seen)| (!seen).then_some(re)) {
            return Err(
                Failure::at(step, format!("none of the {n} messages matches")).with(format!("/{}/", re.as_str()), "no such message")
            );
        }
        Ok(())
    }

    async fn parallel(&mut self, env: &Env, branches: &[Vec<Step>]) -> Result<(), Failure> {
        let mut children = Vec::new();
        let mut fallback = self.last.clone();
        for b in branches {
            let mut child = Ctx {
                vars: self.vars.clone(),
                if_refused: self.if_refused.clone(),
                suffix: self.suffix.clone(),
                last_listener: self.last_listener.clone(),
                protos: self.protos.clone(),
                actors: self.actors.clone(),
                ..Ctx::default()
            };
            let mut names = Vec::new();
            named_conns(b, &mut names);
            for n in names {
                if let Some(c) = self.conns.remove(&n) {
                    child.conns.insert(n.clone(), c);
                }
                if let Some(l) = self.listeners.remove(&n) {
                    child.listeners.insert(n, l);
                }
            }
            // A branch that starts without naming a connection uses the one the case was on.
            if first_needs_conn(b) {
                if let Some(n) = fallback.take() {
                    if let Some(c) = self.conns.remove(&n) {
                        child.conns.insert(n.clone(), c);
                        child.last = Some(n);
                    }
                }
            }
            if let Some(l) = self.last_listener.clone() {
                if let Some(x) = self.listeners.remove(&l) {
                    child.listeners.insert(l, x);
                }
            }
            children.push(child);
        }
        let futs = children.into_iter().zip(branches).map(|(mut child, b)| async move {
            let r = child.steps(env, b).await;
            (child, r)
        });
        let results = futures::future::join_all(futs).await;
        let mut first_err = None;
        for (child, r) in results {
            self.vars.extend(child.vars);
            self.if_refused.extend(child.if_refused);
            self.protos.extend(child.protos);
            self.conns.extend(child.conns);
            self.listeners.extend(child.listeners);
            if child.last.is_some() {
                self.last = child.last;
            }
            // A branch that failed outright outweighs one whose premise did not hold.
            match (r, &first_err) {
                (Err(e), None) => first_err = Some(e),
                (Err(e), Some(f)) if f.premise.is_some() && e.premise.is_none() => first_err = Some(e),
                _ => {}
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn repeat(&mut self, env: &Env, r: &Repeat) -> Result<(), Failure> {
        if !r.concurrent {
            for i in r.from..=r.to {
                self.vars.insert(r.var.clone(), i.to_string());
                self.steps(env, &r.steps).await?;
            }
            return Ok(());
        }
        let futs = (r.from..=r.to).map(|i| {
            let mut child = Ctx {
                vars: self.vars.clone(),
                if_refused: self.if_refused.clone(),
                suffix: format!("{}#{i}", self.suffix),
                protos: self.protos.clone(),
                actors: self.actors.clone(),
                ..Ctx::default()
            };
            child.vars.insert(r.var.clone(), i.to_string());
            async move {
                let res = child.steps(env, &r.steps).await;
                child.close_all(env);
                res
            }
        });
        let results = futures::future::join_all(futs).await;
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }

    async fn program(&self, env: &Env, step: &Step) -> Result<Arc<Program>, Failure> {
        env.program.lock().await.clone().ok_or_else(|| {
            Failure::at(
                step,
                "there is no target program to check: run with --exec (or a reference), and in client-role suites add a start step",
            )
        })
    }

    async fn expect_output(&mut self, env: &Env, step: &Step, o: &OutputExpect, deadline: Instant) -> Result<(), Failure> {
        let program = self.program(env, step).await?;
        let out = &program.stdout;
        match o {
            OutputExpect::Regex(t) => {
                let pattern = t.render_regex(&self.vars).map_err(|m| Failure::at(step, m))?;
                let re = Regex::new(&pattern).map_err(|e| Failure::at(step, format!("invalid regex: {e}")))?;
                loop {
                    let (lines, closed) = out.lines();
                    let first = out.first_index();
                    let pos = *env.output_pos.lock().unwrap_or_else(|e| e.into_inner());
                    let skip = pos.saturating_sub(first);
                    if let Some(i) = lines.iter().skip(skip).position(|l| re.is_match(l)) {
                        *env.output_pos.lock().unwrap_or_else(|e| e.into_inner()) = first + skip + i + 1;
                        return Ok(());
                    }
                    if closed || Instant::now() >= deadline {
                        let why = if closed {
                            "the program's output ended"
                        } else {
                            "no such line in time"
                        };
                        return Err(Failure::at(step, format!("{why}: no output line matches /{pattern}/"))
                            .with(format!("a line matching /{pattern}/"), tail_lines(&lines, 20)));
                    }
                    out.changed(deadline).await;
                }
            }
            OutputExpect::Sequence(ts) => {
                let pats: Vec<Regex> = ts
                    .iter()
                    .map(|t| {
                        t.render_regex(&self.vars)
                            .map_err(|m| Failure::at(step, m))
                            .and_then(|p| Regex::new(&p).map_err(|e| Failure::at(step, e.to_string())))
                    })
                    .collect::<Result<_, _>>()?;
                // The sequence is judged on the whole output, so wait for the program to finish.
                program.wait(deadline).await;
                loop {
                    let (_, closed) = out.lines();
                    if closed || Instant::now() >= deadline {
                        break;
                    }
                    out.changed(deadline).await;
                }
                let (lines, _) = out.lines();
                let relevant: Vec<&String> = lines.iter().filter(|l| pats.iter().any(|p| p.is_match(l))).collect();
                let ok = relevant.len() == pats.len() && relevant.iter().zip(&pats).all(|(l, p)| p.is_match(l));
                if !ok {
                    let want = pats.iter().map(|p| format!("/{}/", p.as_str())).collect::<Vec<_>>().join("\n");
                    let got = relevant.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n");
                    return Err(Failure::at(
                        step,
                        format!(
                            "the output's matching lines ({} of them) do not follow the expected sequence of {}",
                            relevant.len(),
                            pats.len()
                        ),
                    )
                    .with(want, got));
                }
                Ok(())
            }
        }
    }

    async fn expect_exit(&mut self, env: &Env, step: &Step, x: ExitExpect, deadline: Instant) -> Result<(), Failure> {
        let program = self.program(env, step).await?;
        let want = match x {
            ExitExpect::Code(c) => format!("exit status {c}"),
            ExitExpect::Nonzero => "a non-zero exit status".into(),
        };
        match program.wait(deadline).await {
            None => Err(
                Failure::at(step, format!("the program is still running after {:?}", self.timeout(env, step))).with(want, "still running"),
            ),
            Some(got) => {
                let ok = match (x, got) {
                    (ExitExpect::Code(c), Exit::Code(g)) => c == g,
                    (ExitExpect::Nonzero, Exit::Code(g)) => g != 0,
                    _ => false,
                };
                if ok {
                    Ok(())
                } else {
                    Err(Failure::at(step, format!("the program ended with {got}")).with(want, got.to_string()))
                }
            }
        }
    }
}

fn check_not_before(step: &Step, e: &Expect, started: Instant, at: Instant) -> Result<(), Failure> {
    if let Some(min) = e.not_before {
        let took = at.saturating_duration_since(started);
        if took < min {
            return Err(Failure::at(
                step,
                format!("the message came too soon: after {took:.0?}, expected no sooner than {min:?}"),
            )
            .with(format!("≥ {min:?}"), format!("{took:.0?}")));
        }
    }
    Ok(())
}

fn quote(s: &str) -> String {
    format!("\"{}\"", escape_bytes(s.as_bytes(), 300))
}

fn tail_lines(lines: &[String], n: usize) -> String {
    let start = lines.len().saturating_sub(n);
    if lines.is_empty() {
        "(no output)".into()
    } else {
        lines[start..].join("\n")
    }
}

fn named_conns(steps: &[Step], out: &mut Vec<String>) {
    for s in steps {
        if let Some(on) = &s.on {
            out.push(on.clone());
        }
        match &s.kind {
            StepKind::Accept { listener, .. } => out.push(listener.clone()),
            StepKind::Parallel(bs) => bs.iter().for_each(|b| named_conns(b, out)),
            StepKind::Repeat(r) => named_conns(&r.steps, out),
            _ => {}
        }
    }
}

fn first_needs_conn(steps: &[Step]) -> bool {
    match steps.first() {
        Some(s) => {
            s.on.is_none()
                && matches!(
                    s.kind,
                    StepKind::Send(_)
                        | StepKind::Expect(_)
                        | StepKind::Collect(_)
                        | StepKind::Close
                        | StepKind::Shutdown
                        | StepKind::StartTls
                        | StepKind::Switch(_)
                )
        }
        None => false,
    }
}

/// `expect_file`: a file in the case's folder holds what the step wants (checked as it is now:
/// the step goes after the program's `expect_exit`).
fn expect_file(env: &Env, step: &Step, x: &FileExpect) -> Result<(), Failure> {
    let path = env.folder.join(&x.path).map_err(|e| Failure::at(step, e))?;
    let read = std::fs::File::open(&path).and_then(|f| {
        use std::io::Read;
        let mut bytes = Vec::new();
        f.take(super::folder::MAX_KEPT_FILE as u64 + 1).read_to_end(&mut bytes)?;
        Ok(bytes)
    });
    let got = match (read, &x.want) {
        (Err(e), FileWant::Absent) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        (Ok(_), FileWant::Absent) => {
            return Err(Failure::at(step, format!("{} exists; the case expects no such file", x.path)));
        }
        (Err(e), _) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::at(step, format!("{} was not saved: there is no such file", x.path)));
        }
        (Err(e), _) => return Err(Failure::at(step, format!("cannot read {}: {e}", x.path))),
        (Ok(b), _) => b,
    };
    let (want_len, want_hash, fixture) = match &x.want {
        FileWant::Same(f) => (Some(f.bytes.len()), sha256_hex(&f.bytes), Some(f)),
        FileWant::Sha256(h) => (None, h.clone(), None),
        FileWant::Absent => unreachable!("handled above"),
    };
    let got_hash = sha256_hex(&got);
    if got_hash == want_hash {
        return Ok(());
    }
    let what = match fixture {
        Some(f) => format!("the bytes of {} ({} bytes)", f.display(), f.bytes.len()),
        None => format!("sha256 {want_hash}"),
    };
    let mut message = format!("{} differs from {what}", x.path);
    if let Some(f) = fixture {
        let first = got.iter().zip(f.bytes.iter()).position(|(a, b)| a != b);
        message.push_str(&match (first, got.len().cmp(&f.bytes.len())) {
            (Some(i), _) => format!(
                ": they differ first at byte {i} (0x{:02x} where the file has 0x{:02x})",
                got[i], f.bytes[i]
            ),
            (None, std::cmp::Ordering::Less) => format!(
                ": {} of {} bytes were saved (the rest of the file is missing)",
                got.len(),
                f.bytes.len()
            ),
            (None, _) => format!(": {} bytes more than the file has were saved", got.len() - f.bytes.len()),
        });
        if got == to_crlf(&f.bytes) {
            message.push_str(
                "; it is the file with every LF turned into CR LF: it was transferred in ASCII mode (TYPE I first keeps the bytes)",
            );
        }
    }
    let _ = want_len;
    Err(Failure::at(step, message).with(
        format!("{} bytes, sha256 {want_hash}", want_len.map_or("?".into(), |n| n.to_string())),
        format!("{} bytes, sha256 {got_hash}", got.len()),
    ))
}

/// `bytes` as an ASCII-mode (NVT) transfer writes them: each bare LF as CR LF.
fn to_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a `connect` goes (`to`, else the target) and, when given, the address it comes from.
#[derive(Clone, Copy)]
struct Ends<'a> {
    to: Option<&'a Template>,
    from: Option<&'a Template>,
}

/// A TCP connection to `addr`, from `from` when given (a port of the system's choice).
async fn tcp_connect(addr: SocketAddr, from: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let Some(ip) = from else {
        return TcpStream::connect(addr).await;
    };
    let socket = match ip {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(addr).await
}
