//! The loading context every YAML reader shares (suites, assignment files, protocol steps):
//! typed helpers that record each problem with its `file:line:col` instead of stopping.

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use super::diagnostic::{did_you_mean, Diagnostic};
use super::source::{Loc, SourceFile};
use super::template::{Template, Vars};
use super::yaml::{Data, Node};

/// Loading context: the file and the problems found so far; protocol plug-ins parse their
/// structured steps with its helpers so their errors point into the suite too.
pub struct LoadCx {
    source: Arc<SourceFile>,
    errors: Vec<Diagnostic>,
}

/// Largest file a suite may name: fixtures are read whole when the suite loads.
pub const MAX_FIXTURE: usize = 64 << 20;

/// A file a suite names, read when the suite loaded.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The path as the suite wrote it (relative to the suite file's folder), for messages.
    pub path: std::path::PathBuf,
    /// The file's bytes.
    pub bytes: Arc<[u8]>,
}

impl Fixture {
    /// The path as written, for messages.
    pub fn display(&self) -> std::path::Display<'_> {
        self.path.display()
    }
}

/// A mapping whose keys were checked against a known list.
pub struct Fields<'a> {
    pairs: &'a [(Node, Node)],
}

impl<'a> Fields<'a> {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.pairs.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }
}

impl LoadCx {
    /// A context for another YAML file that shares these helpers and their `file:line:col`
    /// errors (the grader's assignment files).
    pub fn new(source: Arc<SourceFile>) -> LoadCx {
        LoadCx {
            source,
            errors: Vec::new(),
        }
    }

    /// The problems found so far, in the order found.
    pub fn into_errors(self) -> Vec<Diagnostic> {
        self.errors
    }

    /// Adds a problem found by another pass (the linter).
    pub fn push(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    /// How many problems were found so far.
    pub fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// The suite file being loaded (file references are relative to its folder).
    pub fn source(&self) -> &SourceFile {
        &self.source
    }

    /// The same file, shared (a loaded suite keeps it for error snippets).
    pub fn source_arc(&self) -> Arc<SourceFile> {
        self.source.clone()
    }

    /// Records a problem at `loc`.
    pub fn err_at(&mut self, loc: Loc, message: String, help: Option<String>) {
        self.errors.push(Diagnostic {
            source: self.source.clone(),
            loc,
            message,
            help,
        });
    }

    /// See the module docs: a helper for protocol plug-ins.
    pub fn err(&mut self, node: &Node, message: impl Into<String>) {
        self.err_at(node.loc, message.into(), None);
    }

    /// See the module docs: a helper for protocol plug-ins.
    pub fn err_help(&mut self, node: &Node, message: impl Into<String>, help: impl Into<String>) {
        self.err_at(node.loc, message.into(), Some(help.into()));
    }

    /// Checks `node` is a mapping with only `known` keys; unknown ones get a suggestion.
    /// See the module docs: a helper for protocol plug-ins.
    pub fn fields<'a>(&mut self, node: &'a Node, known: &[&str], what: &str) -> Option<Fields<'a>> {
        let Data::Map(pairs) = &node.data else {
            self.err(node, format!("{what} must be a mapping, found {}", node.kind()));
            return None;
        };
        for (k, _) in pairs {
            let name = k.as_str().unwrap_or("");
            if !known.contains(&name) {
                let help = did_you_mean(name, known.iter().copied()).unwrap_or_else(|| format!("{what} takes: {}", known.join(", ")));
                self.err_help(k, format!("unknown key '{name}' in {what}"), help);
            }
        }
        Some(Fields { pairs })
    }

    /// `f`'s value for `key` read with `read`: `Some(None)` when the key is absent, `None` when it
    /// is there but wrong (the problem is recorded).
    pub fn optional<T>(&mut self, f: &Fields, key: &str, read: impl FnOnce(&mut LoadCx, &Node) -> Option<T>) -> Option<Option<T>> {
        match f.get(key) {
            Some(n) => read(self, n).map(Some),
            None => Some(None),
        }
    }

    /// The one key of `forms` that `f` has, and its value; none or several is a problem at `node`:
    /// "`lead` a, b, c" with `help`.
    pub fn one_of<'a>(
        &mut self,
        node: &Node,
        f: &Fields<'a>,
        forms: &[&'static str],
        lead: &str,
        help: &str,
    ) -> Option<(&'static str, &'a Node)> {
        let given: Vec<&'static str> = forms.iter().copied().filter(|k| f.get(k).is_some()).collect();
        match given[..] {
            [one] => Some((one, f.get(one)?)),
            _ => {
                self.err_help(node, format!("{lead} {}", forms.join(", ")), help);
                None
            }
        }
    }

    /// The pairs of a mapping, in file order; anything else is recorded as `message` with `help`.
    pub fn mapping<'a>(&mut self, node: &'a Node, message: &str, help: impl Into<String>) -> Option<&'a [(Node, Node)]> {
        match &node.data {
            Data::Map(pairs) => Some(pairs),
            _ => {
                self.err_help(node, message, help);
                None
            }
        }
    }

    /// See the module docs: a helper for protocol plug-ins.
    pub fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.err(node, format!("{what} must be a text value, found {}", node.kind()));
                None
            }
        }
    }

    /// See the module docs: a helper for protocol plug-ins.
    pub fn template(&mut self, node: &Node, what: &str) -> Option<Template> {
        let s = self.string(node, what)?;
        match Template::parse(&s) {
            Ok(t) => Some(t),
            Err((_, msg)) => {
                self.err(node, msg);
                None
            }
        }
    }

    /// Reads the file a suite names (a body to send or compare with) relative to the suite file's
    /// folder, now: a missing or unreadable file is a located load error, not a failure mid-run.
    pub fn fixture(&mut self, node: &Node, what: &str) -> Option<Fixture> {
        let written = self.string(node, what)?;
        self.fixture_at(node, &written)
    }

    /// A list of IP addresses (`[127.0.0.5, 127.0.0.6]`): the hosts of actors a case names.
    pub fn addresses(&mut self, node: &Node, what: &str) -> Option<Vec<std::net::IpAddr>> {
        let Data::Seq(items) = &node.data else {
            self.err_help(node, format!("{what} is a list of addresses"), "e.g. [127.0.0.5, 127.0.0.6]");
            return None;
        };
        items
            .iter()
            .map(|i| match i.as_str().map(str::parse::<std::net::IpAddr>) {
                Some(Ok(ip)) => Some(ip),
                _ => {
                    self.err(i, "an IP address");
                    None
                }
            })
            .collect()
    }

    /// Reads the file at `written` (relative to the suite file's folder, as `fixture` does) for a
    /// key that names several files at once (a folder's files); a problem is located at `node`.
    pub fn fixture_at(&mut self, node: &Node, written: &str) -> Option<Fixture> {
        let path = std::path::PathBuf::from(written);
        let full = self.source.path.parent().map(|d| d.join(&path)).unwrap_or_else(|| path.clone());
        let too_big = |len: u64| len > MAX_FIXTURE as u64;
        match std::fs::metadata(&full) {
            Ok(m) if !m.is_file() => {
                self.err_help(
                    node,
                    format!("{} is not a file", full.display()),
                    "paths are relative to the suite file's folder",
                );
                return None;
            }
            Ok(m) if too_big(m.len()) => {
                self.err(
                    node,
                    format!("{} is {} bytes; a suite fixture is at most {MAX_FIXTURE}", full.display(), m.len()),
                );
                return None;
            }
            Ok(_) => {}
            Err(e) => {
                self.err_help(
                    node,
                    format!("no file {} ({e})", full.display()),
                    "paths are relative to the suite file's folder",
                );
                return None;
            }
        }
        match std::fs::read(&full) {
            Ok(bytes) => Some(Fixture {
                path,
                bytes: Arc::from(bytes),
            }),
            Err(e) => {
                self.err(node, format!("cannot read {}: {e}", full.display()));
                None
            }
        }
    }

    /// See the module docs: a helper for protocol plug-ins.
    pub fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.as_str() {
            Some("true" | "yes") => Some(true),
            Some("false" | "no") => Some(false),
            _ => {
                self.err(node, format!("{what} must be true or false"));
                None
            }
        }
    }

    /// See the module docs: a helper for protocol plug-ins.
    pub fn number<T: std::str::FromStr>(&mut self, node: &Node, what: &str) -> Option<T> {
        match node.as_str().and_then(|s| s.parse().ok()) {
            Some(v) => Some(v),
            None => {
                self.err(node, format!("{what} must be a number"));
                None
            }
        }
    }

    /// See the module docs: a helper for protocol plug-ins.
    pub fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        match node.as_str().map(parse_duration) {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                self.err_help(node, format!("{what}: {e}"), "write a duration like 300ms, 2s or 1.5s");
                None
            }
            None => {
                self.err(node, format!("{what} must be a duration like 300ms or 2s"));
                None
            }
        }
    }

    /// See the module docs: a helper for protocol plug-ins.
    pub fn regex(&mut self, node: &Node) -> Option<Template> {
        let t = self.template(node, "regex")?;
        // Variables are filled in at run time; check the pattern with a stand-in value now.
        let probe: Vars = t.vars().map(|v| (v.to_string(), "x".to_string())).collect();
        if let Err(e) = Regex::new(&t.render_regex(&probe).unwrap_or_default()) {
            self.err_help(node, "invalid regex", first_line(&e.to_string()));
            return None;
        }
        Some(t)
    }
}

/// The first line of a (multi-line) message.
pub fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

/// Parses `300ms`, `2s`, `1.5s`, `2m`, `250us`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("'{s}' is not a duration"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "us" | "µs" => n / 1_000_000.0,
        "" => return Err(format!("'{s}' has no unit")),
        u => return Err(format!("unknown unit '{u}'")),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Resolves `\r \n \t \0 \\ \xHH` in raw payloads.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let h: String = chars.by_ref().take(2).collect();
                let b = u8::from_str_radix(&h, 16).map_err(|_| format!("bad escape '\\x{h}'"))?;
                out.push(b);
            }
            Some(o) => return Err(format!("unknown escape '\\{o}'")),
            None => return Err("a lone '\\' at the end".into()),
        }
    }
    Ok(out)
}

/// Parses hex digits, ignoring spaces, colons and newlines.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s.bytes().filter(|b| !matches!(b, b' ' | b':' | b'\n' | b'\t')).collect();
    if digits.len() % 2 != 0 {
        return Err("an odd number of hex digits".into());
    }
    digits
        .chunks(2)
        .map(|p| {
            let pair = String::from_utf8_lossy(p);
            u8::from_str_radix(&pair, 16).map_err(|_| format!("'{pair}' is not a hex byte"))
        })
        .collect()
}
