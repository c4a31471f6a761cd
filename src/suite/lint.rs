//! Checks a loaded suite for mistakes the YAML shape cannot catch.

use std::collections::{HashMap, HashSet};

use super::model::*;
use crate::proto::Transport;
use crate::syntax::Template;
use crate::syntax::{did_you_mean, Diagnostic, Loc};

/// Variables every case has.
/// Variables every case has: `scheme` is `https` under `--tls`, else `http`; `ca`, `cert` and
/// `key` are the run's certificate files.
pub const BUILTIN_VARS: &[&str] = &["target.host", "target.port", "suite", "case", "scheme", "ca", "cert", "key"];

/// Duplicate ids, variables used before they are set, unknown connections, cases that check nothing.
pub fn lint(suite: &Suite) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut seen: HashMap<&str, u32> = HashMap::new();
    let err = |loc: Loc, message: String, help: Option<String>| Diagnostic {
        source: suite.source.clone(),
        loc,
        message,
        help,
    };
    for case in &suite.cases {
        if let Some(first) = seen.insert(&case.id, case.loc.line) {
            out.push(err(
                case.loc,
                format!("duplicate case id '{}'", case.id),
                Some(format!("first used on line {first}; ids must be unique in a suite")),
            ));
        }
        if case.id.is_empty() || !case.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            out.push(err(
                case.loc,
                format!("bad case id '{}'", case.id),
                Some("ids use letters, digits, '-', '_' and '.'".into()),
            ));
        }
        let mut scope = Scope {
            vars: BUILTIN_VARS.iter().map(|s| s.to_string()).collect(),
            conns: HashSet::new(),
            problems: Vec::new(),
        };
        scope.steps(&case.steps);
        for (loc, message, help) in scope.problems {
            out.push(err(loc, message, help));
        }
        if !case.steps.iter().any(checks_something) {
            out.push(err(
                case.loc,
                format!("case '{}' checks nothing", case.id),
                Some("add an expect, collect, expect_output or expect_exit step".into()),
            ));
        }
    }
    out
}

fn checks_something(step: &Step) -> bool {
    match &step.kind {
        StepKind::Expect(_)
        | StepKind::Collect(_)
        | StepKind::ExpectOutput(_)
        | StepKind::ExpectExit(_)
        | StepKind::ExpectFile(_)
        | StepKind::Saw(_) => true,
        StepKind::Connect { refused, .. } => *refused,
        StepKind::Accept { none, .. } => *none,
        StepKind::Parallel(branches) => branches.iter().flatten().any(checks_something),
        StepKind::Repeat(r) => r.steps.iter().any(checks_something),
        _ => false,
    }
}

struct Scope {
    vars: HashSet<String>,
    conns: HashSet<String>,
    problems: Vec<(Loc, String, Option<String>)>,
}

impl Scope {
    fn steps(&mut self, steps: &[Step]) {
        for s in steps {
            self.step(s);
        }
    }

    fn uses(&mut self, loc: Loc, t: &Template) {
        for v in t.vars() {
            if !self.vars.contains(v) && !v.starts_with("target.") {
                let help = did_you_mean(v, self.vars.iter().map(String::as_str))
                    .unwrap_or_else(|| "set it first with a capture, a listen step or a repeat var".into());
                self.problems
                    .push((loc, format!("variable '${{{v}}}' is used before it is set"), Some(help)));
            }
        }
    }

    fn payload(&mut self, loc: Loc, p: &Payload) {
        match p {
            Payload::Lines(ls) => ls.iter().for_each(|t| self.uses(loc, t)),
            Payload::Raw(t) => self.uses(loc, t),
            Payload::Pieces(ps) => {
                for piece in ps {
                    if let Piece::Data(d) = piece {
                        self.payload(loc, d);
                    }
                }
            }
            Payload::Structured(st) => st.templates().into_iter().for_each(|t| self.uses(loc, t)),
            Payload::Hex(_) | Payload::Fill { .. } => {}
        }
    }

    fn conn_used(&mut self, step: &Step) {
        if let Some(on) = &step.on {
            if !self.conns.contains(on) {
                let help = did_you_mean(on, self.conns.iter().map(String::as_str))
                    .unwrap_or_else(|| "open it first with connect, listen or accept".into());
                self.problems
                    .push((step.loc, format!("no connection named '{on}' is open here"), Some(help)));
            }
        } else if self.conns.is_empty() && needs_connection(&step.kind) {
            self.problems.push((
                step.loc,
                format!("'{}' needs a connection, but none is open", step.kind.keyword()),
                Some("add a connect (or listen and accept) step before it".into()),
            ));
        }
    }

    fn define_groups(&mut self, step: &Step, t: &Template) {
        let probe = t.vars().map(|v| (v.to_string(), "x".to_string())).collect();
        if let Ok(re) = regex::Regex::new(&t.render_regex(&probe).unwrap_or_default()) {
            for name in re.capture_names().flatten() {
                self.define_captured(step, name);
            }
        }
    }

    fn define_captured(&mut self, step: &Step, name: &str) {
        self.vars.insert(name.to_string());
        if let Some(on) = &step.on {
            self.vars.insert(format!("{on}.{name}"));
        }
        for c in &self.conns {
            self.vars.insert(format!("{c}.{name}"));
        }
    }

    fn step(&mut self, step: &Step) {
        let loc = step.loc;
        if let Some((var, want)) = &step.when {
            self.uses(loc, want);
            if let Ok(t) = Template::parse(&format!("${{{var}}}")) {
                self.uses(loc, &t);
            }
        }
        match &step.kind {
            StepKind::Connect { name, to, from, .. } => {
                for t in to.iter().chain(from.iter()) {
                    self.uses(loc, t);
                }
                self.vars.insert(format!("{name}.local"));
                self.conns.insert(name.clone());
            }
            StepKind::Listen {
                name,
                transport,
                host,
                port,
                ..
            } => {
                for t in host.iter().chain(port.iter()) {
                    self.uses(loc, t);
                }
                for v in ["port", "host", "addr"] {
                    self.vars.insert(format!("{name}.{v}"));
                }
                // A UDP listener is itself the conversation: steps use it directly.
                if *transport == Transport::Udp {
                    self.conns.insert(name.clone());
                }
                self.conns.insert(format!("listener:{name}"));
            }
            StepKind::Accept { listener, name, .. } => {
                if !self.conns.contains(&format!("listener:{listener}")) {
                    self.problems.push((
                        loc,
                        format!("no listener named '{listener}'"),
                        Some("add a 'listen' step first".into()),
                    ));
                }
                self.conns.insert(name.clone());
            }
            StepKind::Start { listen, args, .. } => {
                for a in args {
                    if let StartArg::Word(t) = a {
                        self.uses(loc, t);
                    }
                }
                if listen.is_some() {
                    self.vars.insert("program.port".into());
                    self.vars.insert("program.addr".into());
                }
            }
            StepKind::Send(p) => {
                self.conn_used(step);
                self.payload(loc, p);
            }
            StepKind::Expect(e) => {
                self.conn_used(step);
                match &e.what {
                    ExpectWhat::Line(t) => self.uses(loc, t),
                    ExpectWhat::Lines(ts) => ts.iter().for_each(|t| self.uses(loc, t)),
                    ExpectWhat::Regex(t) => {
                        self.uses(loc, t);
                        self.define_groups(step, t);
                    }
                    ExpectWhat::Bytes(p) => self.payload(loc, p),
                    ExpectWhat::Closed | ExpectWhat::Silence(_) | ExpectWhat::OpenUnlessAnnounced(_) => {}
                    ExpectWhat::Structured(st) => {
                        st.templates().into_iter().for_each(|t| self.uses(loc, t));
                        for name in st.captures() {
                            self.define_captured(step, &name);
                        }
                    }
                }
                for (name, _) in &e.captures {
                    self.define_captured(step, name);
                }
            }
            StepKind::Collect(c) => {
                self.conn_used(step);
                if let Some(t) = &c.each {
                    self.uses(loc, t);
                }
                c.some.iter().for_each(|t| self.uses(loc, t));
            }
            StepKind::Close if step.on.as_ref().is_some_and(|n| self.conns.contains(&format!("listener:{n}"))) => {}
            StepKind::Close | StepKind::Shutdown | StepKind::StartTls | StepKind::Switch(_) => self.conn_used(step),
            StepKind::Parallel(branches) => {
                let before = (self.vars.clone(), self.conns.clone());
                let mut vars = before.0.clone();
                let mut conns = before.1.clone();
                for b in branches {
                    self.vars = before.0.clone();
                    self.conns = before.1.clone();
                    self.steps(b);
                    vars.extend(self.vars.drain());
                    conns.extend(self.conns.drain());
                }
                self.vars = vars;
                self.conns = conns;
            }
            StepKind::Repeat(r) => {
                let had = self.vars.insert(r.var.clone());
                let conns = self.conns.clone();
                self.steps(&r.steps);
                if !had {
                    self.vars.remove(&r.var);
                }
                if r.concurrent {
                    // Each concurrent iteration's connections are its own.
                    self.conns = conns;
                }
            }
            StepKind::ExpectOutput(o) => match o {
                OutputExpect::Regex(t) => self.uses(loc, t),
                OutputExpect::Sequence(ts) => ts.iter().for_each(|t| self.uses(loc, t)),
            },
            StepKind::ExpectExit(_) | StepKind::ExpectFile(_) => {}
            StepKind::Serve(s) => {
                for name in &s.actors {
                    for v in ["port", "host", "addr"] {
                        self.vars.insert(format!("{name}.{v}"));
                    }
                }
            }
            StepKind::Saw(s) => s.spec.templates().into_iter().for_each(|t| self.uses(loc, t)),
        }
    }
}

fn needs_connection(kind: &StepKind) -> bool {
    matches!(
        kind,
        StepKind::Send(_)
            | StepKind::Expect(_)
            | StepKind::Collect(_)
            | StepKind::Close
            | StepKind::Shutdown
            | StepKind::StartTls
            | StepKind::Switch(_)
    )
}

#[cfg(test)]
mod tests {
    use crate::suite::load_str;
    use std::path::Path;

    fn errors(text: &str) -> String {
        load_str(Path::new("s.yaml"), text.to_string())
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn duplicate_ids_and_empty_cases() {
        let e = errors(
            "suite: t\nprotocol: line\ncases:\n  - id: a\n    steps: [connect: c, expect: closed]\n  - id: a\n    steps: [connect: c]\n",
        );
        assert!(e.contains("6:9: error: duplicate case id 'a'"), "{e}");
        assert!(e.contains("case 'a' checks nothing"), "{e}");
    }

    #[test]
    fn variable_before_capture() {
        let e = errors("suite: t\nprotocol: line\ncases:\n  - id: a\n    steps:\n      - connect: c\n      - send: 'x ${tok}'\n      - expect: { regex: 'tok=(?P<tok>\\w+)' }\n");
        assert!(e.contains("7:9: error: variable '${tok}' is used before it is set"), "{e}");
        let ok = errors("suite: t\nprotocol: line\ncases:\n  - id: a\n    steps:\n      - connect: c\n      - expect: { regex: 'tok=(?P<tok>\\w+)' }\n      - send: 'x ${tok} ${c.tok}'\n      - expect: closed\n");
        assert_eq!(ok, "");
    }

    #[test]
    fn unknown_connection_and_bad_tag() {
        let e = errors("suite: t\nprotocol: line\ncases:\n  - id: a\n    tags: [Core]\n    steps:\n      - connect: c\n      - expect: closed\n        on: d\n");
        assert!(e.contains("no connection named 'd'"), "{e}");
        assert!(e.contains("bad tag 'Core'"), "{e}");
    }
}
