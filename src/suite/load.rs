//! Turns a suite file into the model, reporting every problem with its location.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use super::model::*;
use crate::proto::{self, Transport};
use crate::syntax::yaml::{self, Data, Node};
use crate::syntax::{did_you_mean, first_line, parse_hex, unescape, Diagnostic, Fields, LoadCx, Loc, ReadError, SourceFile, SuiteErrors};

/// Every step keyword, for suggestions and the README.
pub const STEP_KEYWORDS: &[&str] = &[
    "connect",
    "listen",
    "accept",
    "start",
    "send",
    "expect",
    "collect",
    "close",
    "shutdown",
    "switch",
    "starttls",
    "parallel",
    "repeat",
    "expect_output",
    "expect_exit",
    "serve",
    "saw",
    "expect_file",
];
const STEP_MODIFIERS: &[&str] = &["on", "timeout", "when", "premise", "rule", "resend"];
const SUITE_KEYS: &[&str] = &[
    "suite",
    "title",
    "description",
    "protocol",
    "role",
    "transport",
    "port",
    "reference",
    "reference_options",
    "timeout",
    "actors",
    "instances",
    "cases",
];
const CASE_KEYS: &[&str] = &["id", "title", "rfc", "points", "tags", "hidden", "needs", "steps"];
const EXPECT_KEYS: &[&str] = &[
    "line",
    "lines",
    "regex",
    "raw",
    "hex",
    "fill",
    "size",
    "file",
    "closed",
    "silence",
    "open_unless_announced",
    "capture",
    "not_before",
];

/// Reads and loads the suite at `path`.
pub fn load_file(path: &Path) -> Result<Suite, SuiteErrors> {
    let text = crate::syntax::read_source(path, "suite").map_err(|e| {
        let (message, help) = match e {
            ReadError::Unreadable(m) => (m, "check the path, or run `wirecheck list` to see the suites"),
            ReadError::TooLarge(m) => (m, "one suite per protocol or lab; move groups of cases into suites of their own"),
        };
        let source = Arc::new(SourceFile {
            path: path.to_path_buf(),
            text: String::new(),
        });
        SuiteErrors(vec![Diagnostic {
            source,
            loc: Loc { line: 0, col: 0, len: 0 },
            message,
            help: Some(help.into()),
        }])
    })?;
    load_str(path, text)
}

/// Loads a suite from `text`; `path` is used in messages.
pub fn load_str(path: &Path, text: String) -> Result<Suite, SuiteErrors> {
    let source = Arc::new(SourceFile {
        path: path.to_path_buf(),
        text,
    });
    let mut ld = LoadCx::new(source.clone());
    let root = match yaml::parse(&source.text) {
        Ok(n) => n,
        Err((loc, msg)) => {
            ld.err_at(loc, format!("YAML syntax: {msg}"), None);
            return Err(SuiteErrors(ld.into_errors()));
        }
    };
    let suite = ld.suite(&root);
    if let Some(suite) = &suite {
        for d in super::lint::lint(suite) {
            ld.push(d);
        }
    }
    match suite {
        Some(s) if ld.error_count() == 0 => Ok(s),
        _ => Err(SuiteErrors(ld.into_errors())),
    }
}

/// Parsing context for steps: the suite's protocol decides defaults.
struct StepCtx {
    transport: Transport,
    proto: &'static dyn proto::Protocol,
    /// Protocol of each connection (and `listener:NAME`) opened so far, in file order.
    conns: std::cell::RefCell<std::collections::HashMap<String, &'static dyn proto::Protocol>>,
    /// The connection steps use by default (the last one opened).
    last: std::cell::RefCell<Option<String>>,
    /// The `on:` of the step being parsed.
    on: std::cell::RefCell<Option<String>>,
    /// The suite's actors: name and protocol.
    actors: Vec<(String, &'static dyn proto::Protocol)>,
}

impl StepCtx {
    /// The protocol of the connection the current step uses.
    fn step_proto(&self) -> &'static dyn proto::Protocol {
        let name = self.on.borrow().clone().or_else(|| self.last.borrow().clone());
        name.and_then(|n| self.conns.borrow().get(&n).copied()).unwrap_or(self.proto)
    }

    fn opened(&self, name: &str, p: &'static dyn proto::Protocol) {
        self.conns.borrow_mut().insert(name.to_string(), p);
        *self.last.borrow_mut() = Some(name.to_string());
    }
}

impl LoadCx {
    fn suite(&mut self, root: &Node) -> Option<Suite> {
        let f = self.fields(root, SUITE_KEYS, "the suite")?;
        let name = match f.get("suite") {
            Some(n) => self.string(n, "suite")?,
            None => {
                self.err_help(root, "the suite has no name", "add 'suite: NAME' at the top");
                return None;
            }
        };
        let title = match f.get("title") {
            Some(n) => self.string(n, "title").unwrap_or_default(),
            None => name.clone(),
        };
        let proto_node = f.get("protocol");
        let protocol = match proto_node {
            Some(n) => {
                let p = self.string(n, "protocol")?;
                if proto::find(&p).is_none() {
                    let known: Vec<&str> = proto::all().iter().map(|p| p.name()).collect();
                    let help = did_you_mean(&p, known.iter().copied()).unwrap_or_else(|| format!("known protocols: {}", known.join(", ")));
                    self.err_help(n, format!("unknown protocol '{p}'"), help);
                    return None;
                }
                p
            }
            None => {
                self.err_help(root, "the suite has no protocol", "add e.g. 'protocol: line'");
                return None;
            }
        };
        let proto = proto::find(&protocol)?;
        let role = match f.get("role") {
            None => Role::Server,
            Some(n) if n.is_keyword("server") => Role::Server,
            Some(n) if n.is_keyword("client") => Role::Client,
            Some(n) => {
                self.err_help(
                    n,
                    "role must be 'server' or 'client'",
                    "server: the target is a server; client: the target is a client",
                );
                Role::Server
            }
        };
        let transport = match f.get("transport") {
            Some(n) => self.transport(n).unwrap_or(proto.transport()),
            None => proto.transport(),
        };
        let port = f.get("port").and_then(|n| self.number::<u16>(n, "port"));
        let reference = f.get("reference").and_then(|n| self.string(n, "reference"));
        let mut reference_options = BTreeMap::new();
        if let Some(n) = f.get("reference_options") {
            match &n.data {
                Data::Map(pairs) => {
                    for (k, v) in pairs {
                        if let (Some(k), Some(v)) = (k.as_str(), v.as_str()) {
                            reference_options.insert(k.to_string(), v.to_string());
                        } else {
                            self.err(k, "reference_options are 'key: value' pairs");
                        }
                    }
                }
                _ => self.err(n, "reference_options must be a mapping"),
            }
        }
        let timeout = match f.get("timeout") {
            Some(n) => self.duration(n, "timeout").unwrap_or(Duration::from_secs(2)),
            None => Duration::from_secs(2),
        };
        let actors = match f.get("actors") {
            Some(n) => self.actors(n),
            None => Vec::new(),
        };
        let instances = match f.get("instances") {
            None => Instances::PerCase,
            Some(n) if n.is_keyword("per-case") => Instances::PerCase,
            Some(n) if n.is_keyword("shared") => Instances::Shared,
            Some(n) => {
                self.err_help(n, "instances must be 'per-case' or 'shared'", "per-case: each case starts the program afresh and cases run side by side; shared: one instance serves the cases one at a time");
                Instances::PerCase
            }
        };
        let ctx = StepCtx {
            transport,
            proto,
            conns: Default::default(),
            last: Default::default(),
            on: Default::default(),
            actors: actors.iter().map(|a| (a.name.clone(), proto::find_or_raw(&a.protocol))).collect(),
        };
        let mut cases = Vec::new();
        match f.get("cases") {
            Some(Node {
                data: Data::Seq(items), ..
            }) => {
                for item in items {
                    if let Some(c) = self.case(item, &ctx) {
                        cases.push(c);
                    }
                }
            }
            Some(n) => self.err(n, "cases must be a list"),
            None => self.err_help(root, "the suite has no cases", "add 'cases:' with a list of cases"),
        }
        Some(Suite {
            name,
            title,
            protocol,
            role,
            transport,
            port,
            reference,
            reference_options,
            timeout,
            actors,
            instances,
            cases,
            source: self.source_arc(),
        })
    }

    /// `actors:`: a list of `{ name, host, <protocol>: {...} }`, each protocol's key from its
    /// actor vocabulary.
    fn actors(&mut self, n: &Node) -> Vec<ActorDecl> {
        let Data::Seq(items) = &n.data else {
            self.err_help(
                n,
                "actors must be a list",
                "e.g. actors: [{ name: root, host: 127.0.0.2, dns: { zones: [root.zone] } }]",
            );
            return Vec::new();
        };
        let kinds: Vec<(&'static dyn proto::Protocol, &'static proto::actor::ActorKind)> =
            proto::all().iter().filter_map(|p| Some((*p, p.actor()?))).collect();
        let mut keys = vec!["name", "host"];
        keys.extend(kinds.iter().map(|(_, k)| k.key));
        let mut out: Vec<ActorDecl> = Vec::new();
        for item in items {
            let Some(f) = self.fields(item, &keys, "an actor") else { continue };
            let Some(name) = f.get("name").and_then(|n| self.string(n, "name")) else {
                self.err_help(item, "the actor has no name", "add 'name: root'");
                continue;
            };
            if out.iter().any(|a| a.name == name) {
                self.err(item, format!("two actors are named '{name}'"));
                continue;
            }
            let host = match f.get("host") {
                Some(h) => match self.string(h, "host").map(|s| s.parse::<std::net::IpAddr>()) {
                    Some(Ok(ip)) if ip.is_loopback() => ip,
                    Some(_) => {
                        self.err_help(h, "an actor listens on a loopback address", "e.g. host: 127.0.0.2");
                        continue;
                    }
                    None => continue,
                },
                None => std::net::IpAddr::from([127, 0, 0, 1]),
            };
            let chosen: Vec<_> = kinds.iter().filter(|(_, k)| f.get(k.key).is_some()).collect();
            let [(p, kind)] = chosen.as_slice() else {
                let names: Vec<&str> = kinds.iter().map(|(_, k)| k.key).collect();
                self.err_help(
                    item,
                    "an actor is one kind of peer",
                    format!("give exactly one of: {}", names.join(", ")),
                );
                continue;
            };
            let body = f.get(kind.key).expect("chosen by key");
            let Some(spec) = (kind.parse)(body, self) else { continue };
            out.push(ActorDecl {
                name,
                host,
                protocol: p.name().to_string(),
                spec,
                loc: item.loc,
            });
        }
        out
    }

    /// `serve: all`, `serve: [a, b]`, or `serve: { actors: ..., faults: { a: silent }, with: { a: {...} } }`.
    /// `args: [get, "${name}", { out: got.bin }, { file: ../fixtures/x }]`.
    fn start_args(&mut self, v: &Node) -> Option<Vec<StartArg>> {
        let Data::Seq(items) = &v.data else {
            self.err_help(v, "args is a list", "e.g. args: [get, binary.bin, { out: got.bin }]");
            return None;
        };
        let mut out = Vec::new();
        for item in items {
            let arg = match &item.data {
                Data::Map(_) => {
                    let f = self.fields(item, &["out", "file"], "an argument")?;
                    match (f.get("out"), f.get("file")) {
                        (Some(n), None) => {
                            let name = self.string(n, "out")?;
                            if super::model::in_case_folder(&name) {
                                StartArg::Out(name)
                            } else {
                                self.err_help(
                                    n,
                                    format!("'{name}' is not a path inside the case's folder"),
                                    "a relative path without '..', e.g. out: got.bin",
                                );
                                return None;
                            }
                        }
                        (None, Some(n)) => {
                            let fixture = self.fixture(n, "file")?;
                            let dir = self.source().path.parent().unwrap_or(std::path::Path::new("."));
                            let full = dir.join(&fixture.path);
                            StartArg::File(std::fs::canonicalize(&full).unwrap_or(full))
                        }
                        _ => {
                            self.err_help(
                                item,
                                "an argument is a word, { out: NAME } or { file: PATH }",
                                "e.g. { out: got.bin }",
                            );
                            return None;
                        }
                    }
                }
                _ => StartArg::Word(self.template(item, "an argument")?),
            };
            out.push(arg);
        }
        Some(out)
    }

    /// `expect_file: { path: got.bin, file: ../fixtures/ftp/binary.bin }` (or `sha256:`, `absent: true`).
    fn expect_file(&mut self, v: &Node) -> Option<FileExpect> {
        let f = self.fields(v, &["path", "file", "sha256", "absent"], "expect_file")?;
        let Some(p) = f.get("path") else {
            self.err_help(
                v,
                "expect_file needs 'path'",
                "e.g. expect_file: { path: got.bin, file: ../fixtures/ftp/binary.bin }",
            );
            return None;
        };
        let path = self.string(p, "path")?;
        if !super::model::in_case_folder(&path) {
            self.err_help(
                p,
                format!("'{path}' is not a path inside the case's folder"),
                "a relative path without '..', e.g. got.bin or srv/up.bin",
            );
            return None;
        }
        let want = match (f.get("file"), f.get("sha256"), f.get("absent")) {
            (Some(n), None, None) => FileWant::Same(self.fixture(n, "file")?),
            (None, Some(n), None) => {
                let h = self.string(n, "sha256")?.to_ascii_lowercase();
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    self.err(n, "sha256 is 64 hex digits");
                    return None;
                }
                FileWant::Sha256(h)
            }
            (None, None, Some(n)) if n.is_keyword("true") => FileWant::Absent,
            _ => {
                self.err_help(
                    v,
                    "expect_file takes one of file, sha256 or absent: true",
                    "e.g. expect_file: { path: got.bin, file: ../fixtures/ftp/binary.bin }",
                );
                return None;
            }
        };
        Some(FileExpect { path, want })
    }

    fn serve(&mut self, v: &Node, ctx: &StepCtx) -> Option<StepKind> {
        if ctx.actors.is_empty() {
            self.err_help(
                v,
                "this suite declares no actors",
                "declare them under 'actors:' at the top of the suite",
            );
            return None;
        }
        let (which, faults, with) = match &v.data {
            Data::Map(_) => {
                let f = self.fields(v, &["actors", "faults", "with"], "serve")?;
                (f.get("actors"), f.get("faults"), f.get("with"))
            }
            _ => (Some(v), None, None),
        };
        let all: Vec<String> = ctx.actors.iter().map(|(n, _)| n.clone()).collect();
        let mut actors = match which {
            None => all.clone(),
            Some(n) if n.is_keyword("all") => all.clone(),
            Some(Node {
                data: Data::Seq(items), ..
            }) => {
                let mut names = Vec::new();
                for i in items {
                    let name = self.string(i, "an actor's name")?;
                    if !all.contains(&name) {
                        let help = did_you_mean(&name, all.iter().map(String::as_str))
                            .unwrap_or_else(|| format!("the suite's actors: {}", all.join(", ")));
                        self.err_help(i, format!("no actor named '{name}'"), help);
                        return None;
                    }
                    names.push(name);
                }
                names
            }
            Some(n) => {
                self.err_help(n, "serve takes 'all' or a list of actor names", "e.g. serve: [root, tld, auth]");
                return None;
            }
        };
        actors.sort_by_key(|a| all.iter().position(|x| x == a));
        let mut out = Vec::new();
        if let Some(fnode) = faults {
            let pairs = self.mapping(fnode, "faults must be a mapping", "e.g. faults: { auth: silent }")?;
            for (k, v) in pairs {
                let name = self.string(k, "an actor's name")?;
                let Some((_, p)) = ctx.actors.iter().find(|(n, _)| *n == name) else {
                    self.err_help(
                        k,
                        format!("no actor named '{name}'"),
                        format!("the suite's actors: {}", all.join(", ")),
                    );
                    return None;
                };
                if !actors.contains(&name) {
                    self.err(k, format!("'{name}' is not among the actors this step starts"));
                    return None;
                }
                let known = p.actor().map(|a| a.faults).unwrap_or_default();
                let items: Vec<&Node> = match &v.data {
                    Data::Seq(s) => s.iter().collect(),
                    _ => vec![v],
                };
                let mut list = Vec::new();
                for i in items {
                    let fault = self.string(i, "a fault")?;
                    if !known.iter().any(|(f, _)| *f == fault) {
                        let names: Vec<String> = known.iter().map(|(f, what)| format!("{f} ({what})")).collect();
                        self.err_help(
                            i,
                            format!("no fault '{fault}' for a {} actor", p.name()),
                            format!("faults: {}", names.join("; ")),
                        );
                        return None;
                    }
                    list.push(fault);
                }
                out.push((name, list));
            }
        }
        let mut options = Vec::new();
        if let Some(wnode) = with {
            let pairs = self.mapping(wnode, "with must be a mapping", "e.g. with: { srv: { inject: [...] } }")?;
            for (k, v) in pairs {
                let name = self.string(k, "an actor's name")?;
                let Some((_, p)) = ctx.actors.iter().find(|(n, _)| *n == name) else {
                    self.err_help(
                        k,
                        format!("no actor named '{name}'"),
                        format!("the suite's actors: {}", all.join(", ")),
                    );
                    return None;
                };
                if !actors.contains(&name) {
                    self.err(k, format!("'{name}' is not among the actors this step starts"));
                    return None;
                }
                let Some(parse) = p.actor().and_then(|a| a.options) else {
                    self.err(k, format!("a {} actor takes no options", p.name()));
                    return None;
                };
                options.push((name, parse(v, self)?));
            }
        }
        Some(StepKind::Serve(Serve {
            actors,
            faults: out,
            options,
        }))
    }

    /// `saw: { actor: NAME, count: N | { min, max }, over: udp|tcp, <the protocol's expect keys> }`.
    fn saw(&mut self, v: &Node, ctx: &StepCtx) -> Option<StepKind> {
        let Data::Map(pairs) = &v.data else {
            self.err_help(
                v,
                "saw takes a mapping",
                "e.g. saw: { actor: auth, count: { max: 1 }, query: { name: www.example.test } }",
            );
            return None;
        };
        let Some(name_node) = pairs.iter().find(|(k, _)| k.as_str() == Some("actor")).map(|(_, v)| v) else {
            self.err_help(
                v,
                "saw needs 'actor'",
                "e.g. saw: { actor: auth, query: { name: www.example.test } }",
            );
            return None;
        };
        let actor = self.string(name_node, "an actor's name")?;
        let Some((_, p)) = ctx.actors.iter().find(|(n, _)| *n == actor) else {
            let all: Vec<&str> = ctx.actors.iter().map(|(n, _)| n.as_str()).collect();
            self.err_help(
                name_node,
                format!("no actor named '{actor}'"),
                format!("the suite's actors: {}", all.join(", ")),
            );
            return None;
        };
        let (mut min, mut max, mut over) = (1, None, None);
        if let Some((_, c)) = pairs.iter().find(|(k, _)| k.as_str() == Some("count")) {
            match &c.data {
                Data::Map(_) => {
                    let f = self.fields(c, &["min", "max"], "count")?;
                    min = f.get("min").and_then(|n| self.number(n, "min")).unwrap_or(0);
                    max = f.get("max").and_then(|n| self.number(n, "max"));
                }
                _ => {
                    let n: u32 = self.number(c, "count")?;
                    (min, max) = (n, Some(n));
                }
            }
        }
        if let Some((_, o)) = pairs.iter().find(|(k, _)| k.as_str() == Some("over")) {
            over = Some(self.transport(o)?);
        }
        // An actor that answers on several addresses (a swarm's peers): only what came to one.
        let mut host = None;
        if let Some((_, h)) = pairs.iter().find(|(k, _)| k.as_str() == Some("host")) {
            match h.as_str().map(str::parse::<std::net::IpAddr>) {
                Some(Ok(ip)) => host = Some(ip),
                _ => {
                    self.err_help(
                        h,
                        "host must be an IP address",
                        "e.g. host: 127.0.0.12, one of the actor's addresses",
                    );
                    return None;
                }
            }
        }
        let rest: Vec<(Node, Node)> = pairs
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), Some("actor" | "count" | "over" | "host")))
            .cloned()
            .collect();
        let matcher = Node {
            data: Data::Map(rest),
            loc: v.loc,
        };
        let spec = (p.steps().parse_expect)(&matcher, self)?;
        Some(StepKind::Saw(Saw {
            actor,
            spec,
            min,
            max,
            over,
            host,
        }))
    }

    fn transport(&mut self, n: &Node) -> Option<Transport> {
        if n.is_keyword("tcp") {
            Some(Transport::Tcp)
        } else if n.is_keyword("udp") {
            Some(Transport::Udp)
        } else {
            self.err(n, "transport must be 'tcp' or 'udp'");
            None
        }
    }

    fn case(&mut self, node: &Node, ctx: &StepCtx) -> Option<Case> {
        let f = self.fields(node, CASE_KEYS, "a case")?;
        let Some(id_node) = f.get("id") else {
            self.err_help(node, "the case has no id", "add 'id: some-name'");
            return None;
        };
        let id = self.string(id_node, "id")?;
        let title = match f.get("title") {
            Some(n) => self.string(n, "title").unwrap_or_default(),
            None => id.clone(),
        };
        let rfc = f.get("rfc").and_then(|n| self.string(n, "rfc"));
        let points = f.get("points").and_then(|n| self.number::<f64>(n, "points")).unwrap_or(1.0);
        let mut tags = Vec::new();
        match f.get("tags") {
            Some(Node {
                data: Data::Seq(items), ..
            }) => {
                for t in items {
                    if let Some(s) = self.string(t, "a tag") {
                        if !valid_tag(&s) {
                            self.err_help(
                                t,
                                format!("bad tag '{s}'"),
                                "tags are lowercase words: letters, digits, '-' and '_'",
                            );
                        }
                        tags.push(s);
                    }
                }
            }
            Some(n) => self.err_help(n, "tags must be a list", "write tags: [core, slow]"),
            None => {}
        }
        let hidden = f.get("hidden").and_then(|n| self.boolean(n, "hidden")).unwrap_or(false);
        let mut fresh_server = false;
        if let Some(n) = f.get("needs") {
            let items = match &n.data {
                Data::Seq(items) => items.iter().collect(),
                _ => vec![n],
            };
            for item in items {
                if item.is_keyword("fresh-server") {
                    fresh_server = true;
                } else {
                    let got = item.as_str().unwrap_or("");
                    let help = did_you_mean(got, ["fresh-server"]).unwrap_or_else(|| "the only need is 'fresh-server'".into());
                    self.err_help(item, format!("unknown need '{got}'"), help);
                }
            }
        }
        let steps = match f.get("steps") {
            Some(n) => self.steps(n, ctx),
            None => {
                self.err_help(node, format!("case '{id}' has no steps"), "add 'steps:' with a list of steps");
                Vec::new()
            }
        };
        Some(Case {
            id,
            title,
            rfc,
            points,
            tags,
            hidden,
            fresh_server,
            steps,
            loc: id_node.loc,
        })
    }

    fn steps(&mut self, node: &Node, ctx: &StepCtx) -> Vec<Step> {
        let Data::Seq(items) = &node.data else {
            self.err(node, format!("steps must be a list, found {}", node.kind()));
            return Vec::new();
        };
        items.iter().filter_map(|n| self.step(n, ctx)).collect()
    }

    fn step(&mut self, node: &Node, ctx: &StepCtx) -> Option<Step> {
        // A bare word is a step with no argument: `- close`, `- start`.
        if let Some(word) = node.as_str() {
            let kind = match word {
                "close" => StepKind::Close,
                "shutdown" => StepKind::Shutdown,
                "starttls" => StepKind::StartTls,
                "start" => StepKind::Start {
                    listener: None,
                    listen: None,
                    args: Vec::new(),
                },
                _ => {
                    let help = did_you_mean(word, STEP_KEYWORDS.iter().copied())
                        .unwrap_or_else(|| format!("steps are: {}", STEP_KEYWORDS.join(", ")));
                    self.err_help(node, format!("unknown step '{word}'"), help);
                    return None;
                }
            };
            return Some(Step {
                kind,
                on: None,
                timeout: None,
                when: None,
                premise: None,
                rule: None,
                resend: None,
                loc: node.loc,
            });
        }
        let Data::Map(pairs) = &node.data else {
            self.err(
                node,
                format!("a step must be a mapping like '- send: hello', found {}", node.kind()),
            );
            return None;
        };
        let mut keyword: Option<(&Node, &Node)> = None;
        let mut on = None;
        let mut timeout = None;
        let mut when = None;
        let mut premise: Option<(&Node, String)> = None;
        let mut rule = None;
        let mut resend = None;
        for (k, v) in pairs {
            let name = k.as_str().unwrap_or("");
            if STEP_KEYWORDS.contains(&name) {
                if let Some((first, _)) = keyword {
                    let first = first.as_str().unwrap_or("").to_string();
                    self.err_help(
                        k,
                        format!("a step does one thing: '{first}' and '{name}' in one step"),
                        "split them into two '- ' items",
                    );
                    return None;
                }
                keyword = Some((k, v));
            } else if name == "on" {
                on = self.string(v, "on");
            } else if name == "timeout" {
                timeout = self.duration(v, "timeout");
            } else if name == "when" {
                when = Some(self.when(v)?);
            } else if name == "premise" {
                premise = self.string(v, "premise").map(|p| (k, p));
            } else if name == "resend" {
                resend = self.duration(v, "resend");
            } else if name == "rule" {
                rule = self.string(v, "rule").map(Arc::new);
            } else {
                let known = STEP_KEYWORDS.iter().chain(STEP_MODIFIERS).copied();
                let help = did_you_mean(name, known).unwrap_or_else(|| format!("steps are: {}", STEP_KEYWORDS.join(", ")));
                let what = if pairs.len() == 1 { "step" } else { "step key" };
                self.err_help(k, format!("unknown {what} '{name}'"), help);
                return None;
            }
        }
        let Some((k, v)) = keyword else {
            self.err_help(node, "this step has no action", format!("steps are: {}", STEP_KEYWORDS.join(", ")));
            return None;
        };
        *ctx.on.borrow_mut() = on.clone();
        let kind = self.step_kind(k.as_str().unwrap_or(""), v, ctx)?;
        if matches!(kind, StepKind::Close | StepKind::Shutdown | StepKind::StartTls) && on.is_none() {
            on = v.as_str().map(str::to_string);
        }
        if let Some((pk, p)) = &premise {
            self.check_premise(pk, p, &kind);
        }
        Some(Step {
            kind,
            on,
            timeout,
            when,
            premise: premise.map(|(_, p)| Arc::new(p)),
            rule,
            resend,
            loc: k.loc,
        })
    }

    /// `when: { var: value }`: one variable and the value it must have.
    fn when(&mut self, v: &Node) -> Option<(String, crate::syntax::Template)> {
        let pairs = self.mapping(v, "when must be a mapping", "e.g. when: { verb: RSET }")?;
        let [(name, value)] = pairs else {
            self.err_help(v, "when names one variable", "e.g. when: { verb: RSET }");
            return None;
        };
        Some((self.string(name, "a variable name")?, self.template(value, "when")?))
    }

    /// A premise names what the case needs, on an expectation a message can miss: not on other
    /// steps, not on `closed` or `silence` (nothing arrives there to lack a feature).
    fn check_premise(&mut self, k: &Node, premise: &str, kind: &StepKind) {
        match kind {
            _ if premise.trim().is_empty() => self.err_help(
                k,
                "the premise is empty",
                "name what the case needs, with the RFC's word for it: premise: \"ETag (RFC 9110 §8.8.3)\"",
            ),
            StepKind::Expect(e) if matches!(e.what, ExpectWhat::Closed | ExpectWhat::Silence(_)) => self.err_help(
                k,
                "a premise needs a message to check: not on 'expect: closed' or 'silence'",
                "put it on the expect that reads the reply offering the feature",
            ),
            // A handshake that does not happen: the server took the bytes that followed its
            // go-ahead for the start of TLS, as the STARTTLS RFCs let it.
            StepKind::Expect(_) | StepKind::Saw(_) | StepKind::StartTls => {}
            other => self.err_help(
                k,
                format!("'premise' goes on an expect, saw or starttls step, not on '{}'", other.keyword()),
                "put it on the expect that reads the reply offering the feature",
            ),
        }
    }

    fn step_kind(&mut self, keyword: &str, v: &Node, ctx: &StepCtx) -> Option<StepKind> {
        Some(match keyword {
            "connect" => self.connect(v, ctx)?,
            "listen" => self.listen(v, ctx)?,
            "accept" => self.accept(v, ctx)?,
            "start" => match &v.data {
                Data::Null => StepKind::Start {
                    listener: None,
                    listen: None,
                    args: Vec::new(),
                },
                Data::Map(_) => {
                    let f = self.fields(v, &["listener", "listen", "args"], "start")?;
                    StepKind::Start {
                        listener: match f.get("listener") {
                            Some(n) => Some(self.string(n, "listener")?),
                            None => None,
                        },
                        listen: match f.get("listen") {
                            Some(n) => Some(self.transport(n)?),
                            None => None,
                        },
                        args: match f.get("args") {
                            Some(n) => self.start_args(n)?,
                            None => Vec::new(),
                        },
                    }
                }
                _ => StepKind::Start {
                    listener: Some(self.string(v, "start")?),
                    listen: None,
                    args: Vec::new(),
                },
            },
            "expect_file" => StepKind::ExpectFile(self.expect_file(v)?),
            "send" => StepKind::Send(self.payload(v, true, ctx)?),
            "serve" => self.serve(v, ctx)?,
            "saw" => self.saw(v, ctx)?,
            "expect" => StepKind::Expect(self.expect(v, ctx)?),
            "collect" => {
                let f = self.fields(v, &["for", "min", "max", "each", "some"], "collect")?;
                let duration = match f.get("for") {
                    Some(n) => self.duration(n, "for")?,
                    None => {
                        self.err_help(v, "collect needs 'for'", "e.g. collect: { for: 1s, min: 1 }");
                        return None;
                    }
                };
                StepKind::Collect(Collect {
                    duration,
                    min: f.get("min").and_then(|n| self.number(n, "min")).unwrap_or(0),
                    max: f.get("max").and_then(|n| self.number(n, "max")).unwrap_or(usize::MAX),
                    each: match f.get("each") {
                        Some(n) => Some(self.regex(n)?),
                        None => None,
                    },
                    some: match f.get("some") {
                        Some(Node {
                            data: Data::Seq(items), ..
                        }) => items.iter().map(|i| self.regex(i)).collect::<Option<_>>()?,
                        Some(n) => vec![self.regex(n)?],
                        None => Vec::new(),
                    },
                })
            }
            "close" | "shutdown" | "starttls" => {
                // `- close: c` names the connection; it is the same as `on: c`.
                if !matches!(v.data, Data::Null) {
                    self.string(v, keyword)?;
                }
                match keyword {
                    "close" => StepKind::Close,
                    "shutdown" => StepKind::Shutdown,
                    _ => StepKind::StartTls,
                }
            }
            "switch" => {
                // Later steps on this connection are read with the new protocol's vocabulary.
                let to = self.protocol(v)?;
                let name = ctx.on.borrow().clone().or_else(|| ctx.last.borrow().clone());
                let Some(name) = name else {
                    self.err_help(v, "switch needs a connection to switch", "open one first with 'connect:'");
                    return None;
                };
                ctx.opened(&name, to);
                StepKind::Switch(to.name().to_string())
            }
            "parallel" => {
                let Data::Seq(branches) = &v.data else {
                    self.err_help(v, "parallel takes a list of branches", "each branch is a list of steps");
                    return None;
                };
                let mut out = Vec::new();
                for b in branches {
                    let steps = match &b.data {
                        Data::Map(_) => {
                            let f = self.fields(b, &["steps"], "a parallel branch")?;
                            match f.get("steps") {
                                Some(s) => self.steps(s, ctx),
                                None => Vec::new(),
                            }
                        }
                        _ => self.steps(b, ctx),
                    };
                    out.push(steps);
                }
                StepKind::Parallel(out)
            }
            "repeat" => {
                let f = self.fields(v, &["times", "from", "to", "var", "concurrent", "steps"], "repeat")?;
                let (from, to) = match (f.get("times"), f.get("from"), f.get("to")) {
                    (Some(t), None, None) => (1, self.number::<i64>(t, "times")?),
                    (None, Some(a), Some(b)) => (self.number(a, "from")?, self.number(b, "to")?),
                    _ => {
                        self.err_help(
                            v,
                            "repeat needs 'times' or 'from' and 'to'",
                            "e.g. repeat: { times: 10, steps: [...] }",
                        );
                        return None;
                    }
                };
                if to < from || to - from >= 1_000_000 {
                    self.err(v, "repeat count must be between 1 and 1000000");
                    return None;
                }
                let var = f.get("var").and_then(|n| self.string(n, "var")).unwrap_or_else(|| "i".into());
                let concurrent = f.get("concurrent").and_then(|n| self.boolean(n, "concurrent")).unwrap_or(false);
                let steps = match f.get("steps") {
                    Some(s) => self.steps(s, ctx),
                    None => {
                        self.err(v, "repeat needs 'steps'");
                        return None;
                    }
                };
                StepKind::Repeat(Repeat {
                    from,
                    to,
                    var,
                    concurrent,
                    steps,
                })
            }
            "expect_output" => match &v.data {
                Data::Map(_) => {
                    let f = self.fields(v, &["regex", "sequence"], "expect_output")?;
                    match (f.get("regex"), f.get("sequence")) {
                        (Some(r), None) => StepKind::ExpectOutput(OutputExpect::Regex(self.regex(r)?)),
                        (
                            None,
                            Some(Node {
                                data: Data::Seq(items), ..
                            }),
                        ) => {
                            let pats: Option<Vec<_>> = items.iter().map(|n| self.regex(n)).collect();
                            StepKind::ExpectOutput(OutputExpect::Sequence(pats?))
                        }
                        _ => {
                            self.err_help(
                                v,
                                "expect_output takes 'regex' or 'sequence' (a list of regexes)",
                                "e.g. expect_output: { regex: 'RTT' }",
                            );
                            return None;
                        }
                    }
                }
                _ => StepKind::ExpectOutput(OutputExpect::Regex(self.regex(v)?)),
            },
            "expect_exit" => {
                if v.is_keyword("nonzero") {
                    StepKind::ExpectExit(ExitExpect::Nonzero)
                } else if let Some(code) = v.as_str().and_then(|s| s.parse().ok()) {
                    StepKind::ExpectExit(ExitExpect::Code(code))
                } else {
                    self.err_help(v, "expect_exit takes an exit code or 'nonzero'", "e.g. expect_exit: 0");
                    return None;
                }
            }
            _ => unreachable!("keyword list and match agree"),
        })
    }

    fn connect(&mut self, v: &Node, ctx: &StepCtx) -> Option<StepKind> {
        let (name, transport, to, from, refused, protocol) = match &v.data {
            Data::Map(_) => {
                let f = self.fields(v, &["name", "transport", "to", "from", "refused", "protocol"], "connect")?;
                let protocol = match f.get("protocol") {
                    Some(n) => Some(self.protocol(n)?),
                    None => None,
                };
                let default = protocol.map_or(ctx.transport, |p| p.transport());
                (
                    f.get("name").and_then(|n| self.string(n, "name")).unwrap_or_else(|| "c".into()),
                    f.get("transport").and_then(|n| self.transport(n)).unwrap_or(default),
                    match f.get("to") {
                        Some(n) => Some(self.template(n, "to")?),
                        None => None,
                    },
                    match f.get("from") {
                        Some(n) => Some(self.template(n, "from")?),
                        None => None,
                    },
                    f.get("refused").and_then(|n| self.boolean(n, "refused")).unwrap_or(false),
                    protocol,
                )
            }
            Data::Null => ("c".into(), ctx.transport, None, None, false, None),
            _ => (self.string(v, "connect")?, ctx.transport, None, None, false, None),
        };
        ctx.opened(&name, protocol.unwrap_or(ctx.proto));
        Some(StepKind::Connect {
            name,
            transport,
            to,
            from,
            refused,
            protocol: protocol.map(|p| p.name().to_string()),
        })
    }

    fn listen(&mut self, v: &Node, ctx: &StepCtx) -> Option<StepKind> {
        let (mut host, mut port) = (None, None);
        let (name, transport, protocol) = match &v.data {
            Data::Map(_) => {
                let f = self.fields(v, &["name", "transport", "protocol", "host", "port"], "listen")?;
                let protocol = match f.get("protocol") {
                    Some(n) => Some(self.protocol(n)?),
                    None => None,
                };
                if let Some(h) = f.get("host") {
                    host = Some(self.template(h, "host")?);
                }
                if let Some(p) = f.get("port") {
                    port = Some(self.template(p, "port")?);
                }
                let default = protocol.map_or(ctx.transport, |p| p.transport());
                (
                    f.get("name").and_then(|n| self.string(n, "name")).unwrap_or_else(|| "srv".into()),
                    f.get("transport").and_then(|n| self.transport(n)).unwrap_or(default),
                    protocol,
                )
            }
            Data::Null => ("srv".into(), ctx.transport, None),
            _ => (self.string(v, "listen")?, ctx.transport, None),
        };
        let p = protocol.unwrap_or(ctx.proto);
        ctx.conns.borrow_mut().insert(format!("listener:{name}"), p);
        if transport == Transport::Udp {
            ctx.opened(&name, p);
        }
        Some(StepKind::Listen {
            name,
            transport,
            protocol: protocol.map(|p| p.name().to_string()),
            host,
            port,
        })
    }

    fn accept(&mut self, v: &Node, ctx: &StepCtx) -> Option<StepKind> {
        let kind = match &v.data {
            Data::Map(_) => {
                let f = self.fields(v, &["from", "name", "none"], "accept")?;
                let listener = f.get("from").and_then(|n| self.string(n, "from")).unwrap_or_else(|| "srv".into());
                let name = f.get("name").and_then(|n| self.string(n, "name")).unwrap_or_else(|| "c".into());
                let none = f.get("none").and_then(|n| self.boolean(n, "none")).unwrap_or(false);
                StepKind::Accept { listener, name, none }
            }
            _ => StepKind::Accept {
                listener: "srv".into(),
                name: self.string(v, "accept")?,
                none: false,
            },
        };
        if let StepKind::Accept {
            listener,
            name,
            none: false,
        } = &kind
        {
            let p = ctx
                .conns
                .borrow()
                .get(&format!("listener:{listener}"))
                .copied()
                .unwrap_or(ctx.proto);
            ctx.opened(name, p);
        }
        Some(kind)
    }

    /// A `protocol:` value: a known protocol, with a suggestion when misspelt.
    fn protocol(&mut self, n: &Node) -> Option<&'static dyn proto::Protocol> {
        let name = self.string(n, "protocol")?;
        match proto::find(&name) {
            Some(p) => Some(p),
            None => {
                let known: Vec<&str> = proto::all().iter().map(|p| p.name()).collect();
                let help = did_you_mean(&name, known.iter().copied()).unwrap_or_else(|| format!("known protocols: {}", known.join(", ")));
                self.err_help(n, format!("unknown protocol '{name}'"), help);
                None
            }
        }
    }

    /// A payload: a line, a list of lines, or a mapping with one byte form.
    fn payload(&mut self, v: &Node, lines_ok: bool, ctx: &StepCtx) -> Option<Payload> {
        match &v.data {
            Data::Scalar { .. } if lines_ok => Some(Payload::Lines(vec![self.template(v, "a line")?])),
            Data::Seq(items) if lines_ok => {
                let lines: Option<Vec<_>> = items.iter().map(|n| self.template(n, "a line")).collect();
                Some(Payload::Lines(lines?))
            }
            Data::Map(pairs) => {
                let p = ctx.step_proto();
                let structured = p.steps().send_keys;
                if pairs.iter().any(|(k, _)| structured.contains(&k.as_str().unwrap_or(""))) {
                    return (p.steps().parse_send)(v, self).map(|s| Payload::Structured(Arc::from(s)));
                }
                let mut known = vec!["line", "lines", "raw", "hex", "fill", "size", "file", "pieces"];
                known.extend_from_slice(structured);
                let f = self.fields(v, &known, "send")?;
                self.payload_fields(v, &f)
            }
            _ => {
                self.err_help(
                    v,
                    format!("cannot send {}", v.kind()),
                    "send a line, a list of lines, or one of raw:, hex:, fill:, pieces:",
                );
                None
            }
        }
    }

    fn payload_fields(&mut self, v: &Node, f: &Fields) -> Option<Payload> {
        let forms = ["line", "lines", "raw", "hex", "fill", "file", "pieces"];
        let (form, n) = self.one_of(v, f, &forms, "give exactly one of", "e.g. { raw: \"GET /\\r\\n\" }")?;
        Some(match form {
            "line" => Payload::Lines(vec![self.template(n, "line")?]),
            "lines" => match &n.data {
                Data::Seq(items) => Payload::Lines(items.iter().map(|i| self.template(i, "a line")).collect::<Option<_>>()?),
                _ => {
                    self.err(n, "lines must be a list");
                    return None;
                }
            },
            "raw" => {
                let t = self.template(n, "raw")?;
                if let Some(lit) = t.as_literal() {
                    if let Err(e) = unescape(lit) {
                        self.err_help(n, e, "escapes are \\r \\n \\t \\0 \\\\ and \\xHH");
                        return None;
                    }
                }
                Payload::Raw(t)
            }
            "hex" => match n.as_str().map(parse_hex) {
                Some(Ok(b)) => Payload::Hex(b),
                _ => {
                    self.err_help(n, "hex must be pairs of hex digits", "e.g. hex: \"de ad be ef\"");
                    return None;
                }
            },
            // Read now, like every file a suite names: a missing one is a load error, not a
            // failed case. A data connection's bytes (FTP) compare with it byte for byte.
            "file" => Payload::Hex(self.fixture(n, "file")?.bytes.to_vec()),
            "fill" => {
                let pattern = self.string(n, "fill")?;
                let pattern = match unescape(&pattern) {
                    Ok(p) if !p.is_empty() => p,
                    _ => {
                        self.err(n, "fill needs a non-empty pattern");
                        return None;
                    }
                };
                let Some(size_node) = f.get("size") else {
                    self.err_help(v, "fill needs 'size'", "e.g. { fill: abc, size: 65536 }");
                    return None;
                };
                let size: usize = self.number(size_node, "size")?;
                if size > 64 << 20 {
                    self.err(size_node, "size is at most 64 MiB");
                    return None;
                }
                Payload::Fill { pattern, size }
            }
            "pieces" => {
                let Data::Seq(items) = &n.data else {
                    self.err(n, "pieces must be a list");
                    return None;
                };
                let mut pieces = Vec::new();
                for item in items {
                    match &item.data {
                        Data::Map(pairs) if pairs.len() == 1 && pairs[0].0.as_str() == Some("pause") => {
                            pieces.push(Piece::Pause(self.duration(&pairs[0].1, "pause")?));
                        }
                        Data::Map(_) => {
                            let pf = self.fields(item, &["line", "lines", "raw", "hex", "fill", "size", "pause"], "a piece")?;
                            pieces.push(Piece::Data(self.payload_fields(item, &pf)?));
                        }
                        Data::Scalar { .. } => {
                            let t = self.template(item, "a piece")?;
                            pieces.push(Piece::Data(Payload::Raw(t)));
                        }
                        _ => {
                            self.err(item, "a piece is text, a mapping like { hex: .. }, or { pause: 100ms }");
                            return None;
                        }
                    }
                }
                Payload::Pieces(pieces)
            }
            _ => return None,
        })
    }

    fn expect(&mut self, v: &Node, ctx: &StepCtx) -> Option<Expect> {
        let plain = |what| Expect {
            what,
            captures: Vec::new(),
            not_before: None,
        };
        match &v.data {
            _ if v.is_keyword("closed") => Some(plain(ExpectWhat::Closed)),
            Data::Scalar { .. } => Some(plain(ExpectWhat::Line(self.template(v, "a line")?))),
            Data::Seq(items) => {
                let lines: Option<Vec<_>> = items.iter().map(|n| self.template(n, "a line")).collect();
                Some(plain(ExpectWhat::Lines(lines?)))
            }
            Data::Map(pairs) => {
                let p = ctx.step_proto();
                let structured = p.steps().expect_keys;
                if pairs.iter().any(|(k, _)| structured.contains(&k.as_str().unwrap_or(""))) {
                    let spec = (p.steps().parse_expect)(v, self)?;
                    return Some(plain(ExpectWhat::Structured(spec)));
                }
                let mut known = EXPECT_KEYS.to_vec();
                known.extend_from_slice(structured);
                let f = self.fields(v, &known, "expect")?;
                let forms = [
                    "line",
                    "lines",
                    "regex",
                    "raw",
                    "hex",
                    "fill",
                    "file",
                    "closed",
                    "silence",
                    "open_unless_announced",
                ];
                let (form, n) = self.one_of(v, &f, &forms, "expect one thing: one of", "e.g. expect: { regex: '^HELLO' }")?;
                let what = match form {
                    "line" => ExpectWhat::Line(self.template(n, "line")?),
                    "lines" => match &n.data {
                        Data::Seq(items) => ExpectWhat::Lines(items.iter().map(|i| self.template(i, "a line")).collect::<Option<_>>()?),
                        _ => {
                            self.err(n, "lines must be a list");
                            return None;
                        }
                    },
                    "regex" => ExpectWhat::Regex(self.regex(n)?),
                    "raw" | "hex" | "fill" | "file" => ExpectWhat::Bytes(self.payload_fields(v, &f)?),
                    "closed" => {
                        if !self.boolean(n, "closed")? {
                            self.err_help(
                                n,
                                "closed: false checks nothing",
                                "use silence: 300ms to check the connection stays open",
                            );
                            return None;
                        }
                        ExpectWhat::Closed
                    }
                    "silence" => ExpectWhat::Silence(self.duration(n, "silence")?),
                    "open_unless_announced" => ExpectWhat::OpenUnlessAnnounced(self.duration(n, "open_unless_announced")?),
                    _ => return None,
                };
                let mut captures = Vec::new();
                if let Some(c) = f.get("capture") {
                    match &c.data {
                        Data::Map(pairs) => {
                            for (k, pat) in pairs {
                                let name = self.string(k, "a variable name")?;
                                let re = match pat.as_str().map(Regex::new) {
                                    Some(Ok(re)) if re.captures_len() >= 2 => re,
                                    Some(Ok(_)) => {
                                        self.err_help(
                                            pat,
                                            "the capture regex has no group",
                                            "put what to keep in parentheses: 'port (\\d+)'",
                                        );
                                        return None;
                                    }
                                    Some(Err(e)) => {
                                        self.err_help(pat, "invalid regex", first_line(&e.to_string()));
                                        return None;
                                    }
                                    None => {
                                        self.err(pat, "a capture is 'name: regex'");
                                        return None;
                                    }
                                };
                                captures.push((name, re));
                            }
                        }
                        _ => {
                            self.err_help(c, "capture must be a mapping", "e.g. capture: { port: 'port (\\d+)' }");
                            return None;
                        }
                    }
                }
                let not_before = match f.get("not_before") {
                    Some(n) => Some(self.duration(n, "not_before")?),
                    None => None,
                };
                Some(Expect {
                    what,
                    captures,
                    not_before,
                })
            }
            _ => {
                self.err_help(
                    v,
                    "expect needs something to expect",
                    "e.g. expect: HELLO, expect: closed, expect: { silence: 300ms }",
                );
                None
            }
        }
    }
}

fn valid_tag(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::parse_duration;

    fn load(text: &str) -> Result<Suite, String> {
        load_str(Path::new("suites/t.yaml"), text.to_string()).map_err(|e| e.to_string())
    }

    const HEAD: &str = "suite: t\nprotocol: line\ncases:\n  - id: a\n    steps:\n";

    #[test]
    fn switch_changes_the_vocabulary_of_its_connection() {
        let upgrade = "suite: t\nprotocol: http2\ncases:\n  - id: a\n    steps:\n      - connect: { name: c, protocol: http }\n      - send: { method: GET, target: / }\n      - expect: { status: 101 }\n";
        // After the switch, HTTP/2's frames are the vocabulary; before it, HTTP/1.1's messages.
        let s = load(&format!("{upgrade}      - switch: http2\n      - send: {{ preface: true }}\n")).unwrap();
        assert!(matches!(&s.cases[0].steps[3].kind, StepKind::Switch(p) if p == "http2"));
        let e = load(&format!("{upgrade}      - send: {{ preface: true }}\n")).unwrap_err();
        assert!(e.contains("preface"), "{e}");
        let e = load(&format!("{upgrade}      - switch: htp2\n")).unwrap_err();
        assert!(e.contains("unknown protocol 'htp2'") && e.contains("http2"), "{e}");
        let e = load("suite: t\nprotocol: http2\ncases:\n  - id: a\n    steps:\n      - switch: http2\n").unwrap_err();
        assert!(e.contains("switch needs a connection"), "{e}");
    }

    #[test]
    fn loads_steps_with_locations() {
        let s = load(&format!(
            "{HEAD}      - connect: c\n      - send: hello\n      - expect: HELLO\n      - expect: closed\n"
        ))
        .unwrap();
        let steps = &s.cases[0].steps;
        assert_eq!(steps.len(), 4);
        assert_eq!((steps[1].loc.line, steps[1].loc.col), (7, 9));
        assert!(matches!(
            steps[3].kind,
            StepKind::Expect(Expect {
                what: ExpectWhat::Closed,
                ..
            })
        ));
    }

    #[test]
    fn file_form_reads_the_bytes_when_the_suite_loads() {
        let s = load(&format!(
            "{HEAD}      - connect: c\n      - send: {{ file: ../fixtures/ftp/lines.txt }}\n      - expect: {{ file: ../fixtures/ftp/lines.txt }}\n"
        ))
        .unwrap();
        let want = std::fs::read("fixtures/ftp/lines.txt").unwrap();
        assert!(matches!(&s.cases[0].steps[1].kind, StepKind::Send(Payload::Hex(b)) if *b == want));
        assert!(
            matches!(&s.cases[0].steps[2].kind, StepKind::Expect(Expect { what: ExpectWhat::Bytes(Payload::Hex(b)), .. }) if *b == want)
        );
        let e = load(&format!(
            "{HEAD}      - connect: c\n      - expect: {{ file: ../fixtures/ftp/missing.bin }}\n"
        ))
        .unwrap_err();
        assert!(e.contains("no file") && e.contains(":7:"), "{e}");
    }

    #[test]
    fn collect_some_takes_one_regex_or_a_list() {
        let s = load(&format!(
            "{HEAD}      - connect: c\n      - collect: {{ for: 1s, some: ['a\\.txt', pub] }}\n      - collect: {{ for: 1s, some: x }}\n"
        ))
        .unwrap();
        assert!(matches!(&s.cases[0].steps[1].kind, StepKind::Collect(c) if c.some.len() == 2));
        assert!(matches!(&s.cases[0].steps[2].kind, StepKind::Collect(c) if c.some.len() == 1));
        assert!(load(&format!("{HEAD}      - connect: c\n      - collect: {{ for: 1s, some: ['('] }}\n")).is_err());
    }

    #[test]
    fn misspelt_step_gets_location_and_suggestion() {
        let e = load(&format!("{HEAD}      - connect: c\n      - expcet: HELLO\n")).unwrap_err();
        assert!(e.starts_with("suites/t.yaml:7:9: error: unknown step 'expcet'"), "{e}");
        assert!(e.contains("^^^^^^ did you mean 'expect'?"), "{e}");
    }

    #[test]
    fn misspelt_key_gets_suggestion() {
        let e = load("suite: t\nprotocol: line\ncases:\n  - id: a\n    tilte: x\n    steps: [expect: closed]\n").unwrap_err();
        assert!(e.contains("5:5: error: unknown key 'tilte' in a case"), "{e}");
        assert!(e.contains("did you mean 'title'?"), "{e}");
        let e = load("suite: t\nprotocl: line\ncases: []\n").unwrap_err();
        assert!(e.contains("did you mean 'protocol'?"), "{e}");
    }

    #[test]
    fn a_missing_fixture_is_a_located_load_error() {
        let e = load(
            "suite: t\nprotocol: http\ncases:\n  - id: a\n    steps:\n      - connect: c\n      - send: { method: POST, target: /, body_file: no-such-file.bin }\n",
        )
        .unwrap_err();
        assert!(e.contains("suites/t.yaml:7:53: error: no file suites/no-such-file.bin"), "{e}");
        assert!(e.contains("paths are relative to the suite file's folder"), "{e}");
    }

    #[test]
    fn templates_inside_structured_steps_are_linted() {
        // The IMAP vocabulary declares ${m}; the linter sees it used before anything sets it.
        let e = load(
            "suite: t\nprotocol: imap\ncases:\n  - id: a\n    steps:\n      - connect: c\n      - expect: { status: OK, untagged: [{ fetch: '${m}', items: { UID: { capture: uid } } }] }\n",
        )
        .unwrap_err();
        assert!(e.contains("${m}") || e.contains("'m'"), "{e}");
    }

    #[test]
    fn premise_is_a_modifier_of_expect_and_saw_steps() {
        let s = load(&format!(
            "{HEAD}      - connect: c\n      - expect: {{ regex: ETAG }}\n        premise: an ETag (RFC 9110 §8.8.3)\n"
        ))
        .unwrap();
        assert_eq!(
            s.cases[0].steps[1].premise.as_deref().map(String::as_str),
            Some("an ETag (RFC 9110 §8.8.3)")
        );
        assert_eq!(s.cases[0].premises(), ["an ETag (RFC 9110 §8.8.3)"]);
        let e = load(&format!("{HEAD}      - connect: c\n        premise: ETag\n      - expect: x\n")).unwrap_err();
        assert!(
            e.contains("7:9: error: 'premise' goes on an expect, saw or starttls step, not on 'connect'"),
            "{e}"
        );
        let e = load(&format!(
            "{HEAD}      - connect: c\n      - expect: closed\n        premise: ETag\n"
        ))
        .unwrap_err();
        assert!(e.contains("not on 'expect: closed' or 'silence'"), "{e}");
        let e = load(&format!("{HEAD}      - connect: c\n      - expect: x\n        premise: ' '\n")).unwrap_err();
        assert!(e.contains("the premise is empty"), "{e}");
        let e = load(&format!("{HEAD}      - connect: c\n      - expect: x\n        premsie: ETag\n")).unwrap_err();
        assert!(e.contains("did you mean 'premise'?"), "{e}");
    }

    #[test]
    fn unknown_protocol_is_an_error() {
        let e = load("suite: t\nprotocol: lien\ncases: []\n").unwrap_err();
        assert!(e.contains("2:11: error: unknown protocol 'lien'"), "{e}");
        assert!(e.contains("did you mean 'line'?"), "{e}");
    }

    #[test]
    fn payload_forms() {
        let s = load(&format!(
            "{HEAD}      - connect: c\n      - send: {{ pieces: [\"hel\", {{ pause: 50ms }}, {{ hex: '6c 6f' }}] }}\n      - send: {{ fill: ab, size: 5 }}\n      - expect: {{ raw: \"X\\r\\n\" }}\n"
        ))
        .unwrap();
        let StepKind::Send(Payload::Pieces(p)) = &s.cases[0].steps[1].kind else {
            panic!()
        };
        assert_eq!(p.len(), 3);
        assert!(matches!(p[1], Piece::Pause(d) if d == Duration::from_millis(50)));
    }

    #[test]
    fn durations_escapes_hex() {
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert!(parse_duration("3").is_err());
        assert_eq!(unescape("a\\r\\n\\x41").unwrap(), b"a\r\nA");
        assert!(unescape("\\q").is_err());
        assert_eq!(parse_hex("de ad").unwrap(), vec![0xde, 0xad]);
        assert!(parse_hex("abc").is_err());
    }
}
