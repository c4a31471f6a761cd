//! Assignment files (`ci/assignments/*.yaml`, documented in `ci/assignments/README.md`): which
//! suites and cases make up a lab, their points, tiers and visibility, how a submission is built
//! and started, its budgets and limits. Loaded with the suite loader's helpers, so every problem is
//! reported as `file:line:col` with a suggestion.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::run::sandbox::Limits;
use crate::suite::{self, Suite};
use crate::syntax::{self, Data, Diagnostic, LoadCx, Loc, Node, SourceFile, SuiteErrors};

/// Who may see a case's details (Gradescope's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Always shown.
    Visible,
    /// Never shown to students (only "hidden case passed/failed").
    Hidden,
    /// Shown once the due date has passed.
    AfterDueDate,
    /// Shown once the grades are published.
    AfterPublished,
}

impl Visibility {
    /// The word used in assignment files and Gradescope's `visibility`.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Visible => "visible",
            Visibility::Hidden => "hidden",
            Visibility::AfterDueDate => "after_due_date",
            Visibility::AfterPublished => "after_published",
        }
    }
}

const VISIBILITIES: &[&str] = &["visible", "hidden", "after_due_date", "after_published"];

/// A case's tier: MUST-tier cases are the requirements, SHOULD-tier ones the recommendations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Weighted by `weights.must`.
    Must,
    /// Weighted by `weights.should` (0: run and reported, worth nothing).
    Should,
}

/// How tiers and SHOULD findings count.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Weights {
    /// Multiplies the points of MUST-tier cases.
    pub must: f64,
    /// Multiplies the points of SHOULD-tier cases.
    pub should: f64,
    /// Fraction of a passing case's points lost when it reported SHOULD findings (warnings).
    pub should_findings: f64,
}

/// The build gate.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// Shell command run in the submission's copy (`{dir}`, `{main}`, `{fixtures}` filled in).
    pub command: String,
    /// How long it may take.
    pub timeout: Duration,
}

/// Time budgets.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// The most one case may take.
    pub case: Duration,
    /// The most all cases of one submission may take; cases not started by then are "not run".
    pub total: Duration,
    /// The grading platform's limit, checked against the build timeout and the budgets at load.
    pub platform: Option<Duration>,
}

/// One suite (or a slice of it) with the command that starts the submission for it.
#[derive(Debug)]
pub struct Part {
    /// Unique within the assignment; test names are `PART::CASE`.
    pub name: String,
    /// The suite.
    pub suite: Arc<Suite>,
    /// Only cases with one of these tags (empty: all).
    pub tags: Vec<String>,
    /// Only cases whose id matches one of these globs (empty: all).
    pub case_globs: Vec<glob::Pattern>,
    /// The start command, with `{port}` and the grader's placeholders.
    pub start: String,
    /// Patterns naming the file `{main}` stands for (first that matches exactly one file).
    pub main: Vec<String>,
    /// The graded cases, in suite order.
    pub cases: Vec<PlannedCase>,
}

/// A case as the assignment grades it.
#[derive(Debug, Clone)]
pub struct PlannedCase {
    /// Index in the suite.
    pub index: usize,
    /// The case id.
    pub id: String,
    /// Points before the tier weight.
    pub points: f64,
    /// Points available (points × tier weight).
    pub max_score: f64,
    /// Who sees its details.
    pub visibility: Visibility,
    /// Its tier.
    pub tier: Tier,
    /// Listed in the part's `require:`: the program must offer the case's premise (`n/a` fails).
    pub required: bool,
}

/// A loaded assignment.
#[derive(Debug)]
pub struct Assignment {
    /// Short name.
    pub name: String,
    /// Human title.
    pub title: String,
    /// The file (path and text).
    pub source: Arc<SourceFile>,
    /// Default `{main}` patterns.
    pub main: Vec<String>,
    /// Paths under the fixtures folder copied for each submission into `{fixtures}`.
    pub fixtures: Vec<String>,
    /// The fixtures folder they are copied from (absolute).
    pub fixtures_dir: PathBuf,
    /// The build gate, if any.
    pub build: Option<BuildSpec>,
    /// Tier weights.
    pub weights: Weights,
    /// Multiplies every step timeout.
    pub timeout_scale: f64,
    /// How long a started program has to open its port.
    pub ready_timeout: Duration,
    /// Re-runs of a failed case (a pass on a re-run makes it `flaky`).
    pub retries: u32,
    /// Fraction of its points a flaky case earns.
    pub flaky_credit: f64,
    /// Time budgets.
    pub budget: Budget,
    /// Resource limits for every program started from the submission.
    pub limits: Limits,
    /// The unprivileged user programs run as when wirecheck runs as root (None: as wirecheck).
    pub user: Option<String>,
    /// Gradescope's `stdout_visibility` (`hidden` or `visible`).
    pub stdout_visibility: String,
    /// The parts.
    pub parts: Vec<Part>,
    /// sha256 of the assignment file.
    pub sha256: String,
    /// sha256 over the suite files used (name and bytes, sorted by name): proves a regrade ran the same tests.
    pub suites_sha256: String,
}

impl Assignment {
    /// Points available in all.
    pub fn max_score(&self) -> f64 {
        self.parts.iter().flat_map(|p| &p.cases).map(|c| c.max_score).sum()
    }
}

const TOP_KEYS: &[&str] = &[
    "assignment",
    "title",
    "description",
    "main",
    "fixtures",
    "build",
    "weights",
    "visibility",
    "timeout_scale",
    "ready_timeout",
    "retries",
    "flaky_credit",
    "budget",
    "limits",
    "user",
    "gradescope",
    "parts",
];
const PART_KEYS: &[&str] = &[
    "suite",
    "name",
    "tags",
    "cases",
    "start",
    "main",
    "visibility",
    "tier",
    "per_case",
    "groups",
    "require",
];
const GROUP_KEYS: &[&str] = &["name", "tags", "cases", "points", "visibility", "tier"];
const PER_CASE_KEYS: &[&str] = &["points", "visibility", "tier"];
/// Placeholders the grader fills in a start or build command; the runner fills `{port}`, `{host}`,
/// `{listen_port}` and `{NAME.FIELD}` (a case's listeners, e.g. `{root.port}`).
pub const PLACEHOLDERS: &[&str] = &["dir", "main", "fixtures", "seed", "port", "host", "listen_port"];

/// Reads and loads an assignment file.
pub fn load_file(path: &Path) -> Result<Assignment, SuiteErrors> {
    let text = syntax::read_source(path, "assignment").map_err(|e| {
        let (message, help) = match e {
            syntax::ReadError::Unreadable(m) => (m, "assignments live in ci/assignments/ (see ci/assignments/README.md)"),
            syntax::ReadError::TooLarge(m) => (m, "an assignment names its suites; keep the cases in the suite files"),
        };
        SuiteErrors(vec![Diagnostic {
            source: Arc::new(SourceFile {
                path: path.to_path_buf(),
                text: String::new(),
            }),
            loc: Loc::default(),
            message,
            help: Some(help.into()),
        }])
    })?;
    load_str(path, text)
}

/// Loads an assignment from `text`; `path` is used in messages and to find relative suite paths.
pub fn load_str(path: &Path, text: String) -> Result<Assignment, SuiteErrors> {
    let sha256 = hex(&Sha256::digest(text.as_bytes()));
    let source = Arc::new(SourceFile {
        path: path.to_path_buf(),
        text,
    });
    let mut cx = LoadCx::new(source.clone());
    let root = match syntax::yaml::parse(&source.text) {
        Ok(n) => n,
        Err((loc, msg)) => {
            let mut d = diag(&source, loc, format!("YAML syntax: {msg}"));
            if source.text.trim().is_empty() {
                d.message = "the file is empty; an assignment starts with 'assignment: NAME'".into();
            }
            return Err(SuiteErrors(vec![d]));
        }
    };
    let mut suite_errors = Vec::new();
    let a = Loader {
        cx: &mut cx,
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        suite_errors: &mut suite_errors,
        sha256,
        source: source.clone(),
    }
    .assignment(&root);
    let mut errors = cx.into_errors();
    errors.extend(suite_errors);
    match a {
        Some(a) if errors.is_empty() => Ok(a),
        _ => Err(SuiteErrors(errors)),
    }
}

fn diag(source: &Arc<SourceFile>, loc: Loc, message: String) -> Diagnostic {
    Diagnostic {
        source: source.clone(),
        loc,
        message,
        help: None,
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 over suite files (file name and bytes, sorted by name, each file once): proves a regrade
/// ran the same tests; `wirecheck run`'s grade-shaped reports carry it too.
pub fn suites_sha256<'a>(suites: impl Iterator<Item = &'a Suite>) -> String {
    let mut files: Vec<(String, &str)> = suites
        .map(|s| {
            (
                s.source
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                s.source.text.as_str(),
            )
        })
        .collect();
    files.sort();
    files.dedup();
    let mut h = Sha256::new();
    for (n, text) in &files {
        h.update(n.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

struct Loader<'a> {
    cx: &'a mut LoadCx,
    dir: PathBuf,
    suite_errors: &'a mut Vec<Diagnostic>,
    sha256: String,
    source: Arc<SourceFile>,
}

/// A group or per-case rule, resolved to the cases it covers.
struct Rule {
    points: Option<f64>,
    group_total: bool,
    visibility: Option<Visibility>,
    tier: Option<Tier>,
}

impl Loader<'_> {
    fn assignment(&mut self, root: &Node) -> Option<Assignment> {
        let f = self.cx.fields(root, TOP_KEYS, "an assignment")?;
        let name = match f.get("assignment") {
            Some(n) => self.cx.string(n, "assignment").unwrap_or_default(),
            None => {
                self.cx
                    .err_help(root, "the assignment has no name", "start the file with 'assignment: NAME'");
                String::new()
            }
        };
        let title = f
            .get("title")
            .and_then(|n| self.cx.string(n, "title"))
            .unwrap_or_else(|| name.clone());
        let main = f.get("main").map(|n| self.strings(n, "main")).unwrap_or_default();
        let fixtures = f.get("fixtures").map(|n| self.strings(n, "fixtures")).unwrap_or_default();
        let fixtures_dir = suite::suites_dir()
            .and_then(|d| std::fs::canonicalize(d).ok())
            .and_then(|d| d.parent().map(|p| p.join("fixtures")))
            .unwrap_or_else(|| PathBuf::from("fixtures"));
        for (node, fx) in f.get("fixtures").into_iter().flat_map(seq_items).zip(&fixtures) {
            let p = Path::new(fx);
            if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                self.cx
                    .err(node, format!("fixture '{fx}' must be a path inside the fixtures folder"));
            } else if !fixtures_dir.join(p).exists() {
                self.cx.err(node, format!("no fixture '{fx}' in {}", fixtures_dir.display()));
            }
        }
        let build = f.get("build").and_then(|n| self.build(n));
        let weights = match f.get("weights") {
            Some(n) => self.weights(n)?,
            None => Weights {
                must: 1.0,
                should: 1.0,
                should_findings: 0.0,
            },
        };
        let visibility = f.get("visibility").and_then(|n| self.visibility(n)).unwrap_or(Visibility::Visible);
        let timeout_scale = f
            .get("timeout_scale")
            .and_then(|n| self.fraction(n, "timeout_scale", 0.01, 100.0))
            .unwrap_or(1.0);
        let ready_timeout = f
            .get("ready_timeout")
            .and_then(|n| self.cx.duration(n, "ready_timeout"))
            .unwrap_or(Duration::from_secs(10));
        let retries = f.get("retries").and_then(|n| self.cx.number::<u32>(n, "retries")).unwrap_or(0);
        if let Some(n) = f.get("retries").filter(|_| retries > 5) {
            self.cx.err_help(
                n,
                "retries must be at most 5",
                "a case that needs more retries is broken, not flaky",
            );
        }
        let flaky_credit = f
            .get("flaky_credit")
            .and_then(|n| self.fraction(n, "flaky_credit", 0.0, 1.0))
            .unwrap_or(0.0);
        let budget = match f.get("budget") {
            Some(n) => self.budget(n)?,
            None => Budget {
                case: Duration::from_secs(60),
                total: Duration::from_secs(15 * 60),
                platform: None,
            },
        };
        if let (Some(platform), Some(n)) = (budget.platform, f.get("budget")) {
            // Setup (copying, starting) takes a little: the gate plus the budgets must leave room.
            let needed = build.as_ref().map_or(Duration::ZERO, |b| b.timeout) + budget.total + budget.case + Duration::from_secs(30);
            if needed > platform {
                self.cx.err_help(
                    n,
                    format!(
                        "the budgets do not fit the platform's limit: build timeout + total + case + 30s setup = {needed:?} > {platform:?}"
                    ),
                    "lower budget.total or the build timeout, or raise budget.platform if the platform allows",
                );
            }
        }
        let limits = f.get("limits").map(|n| self.limits(n)).unwrap_or_default();
        let user = match f.get("user") {
            Some(n) if n.is_keyword("inherit") => None,
            Some(n) => self.cx.string(n, "user"),
            None => Some("nobody".to_string()),
        };
        let mut stdout_visibility = "hidden".to_string();
        if let Some(g) = f.get("gradescope") {
            if let Some(gf) = self.cx.fields(g, &["stdout_visibility"], "gradescope") {
                if let Some(n) = gf.get("stdout_visibility") {
                    match n.as_str() {
                        Some(v @ ("hidden" | "visible")) => stdout_visibility = v.to_string(),
                        _ => self
                            .cx
                            .err_help(n, "stdout_visibility must be hidden or visible", "Gradescope knows only these two"),
                    }
                }
            }
        }
        let mut parts = Vec::new();
        match f.get("parts") {
            Some(Node {
                data: Data::Seq(items), ..
            }) if !items.is_empty() => {
                for item in items {
                    if let Some(p) = self.part(item, visibility, &weights, &main) {
                        if parts.iter().any(|q: &Part| q.name == p.name) {
                            self.cx.err_help(
                                item,
                                format!("two parts are named '{}'", p.name),
                                "give one a 'name:' (test names are PART::CASE and must be unique)",
                            );
                        }
                        parts.push(p);
                    }
                }
            }
            Some(n) => self.cx.err(n, "parts must be a non-empty list of { suite, start, ... }"),
            None => self.cx.err_help(
                root,
                "the assignment has no parts",
                "add 'parts:' with at least one { suite: NAME, start: CMD }",
            ),
        }
        let suites_sha256 = suites_sha256(parts.iter().map(|p| p.suite.as_ref()));
        Some(Assignment {
            name,
            title,
            source: self.source.clone(),
            main,
            fixtures,
            fixtures_dir,
            build,
            weights,
            timeout_scale,
            ready_timeout,
            retries,
            flaky_credit,
            budget,
            limits,
            user,
            stdout_visibility,
            parts,
            sha256: self.sha256.clone(),
            suites_sha256,
        })
    }

    fn strings(&mut self, n: &Node, what: &str) -> Vec<String> {
        match &n.data {
            Data::Seq(items) => items.iter().filter_map(|i| self.cx.string(i, what)).collect(),
            Data::Scalar { .. } => self.cx.string(n, what).into_iter().collect(),
            _ => {
                self.cx.err(n, format!("{what} must be a list of text values"));
                Vec::new()
            }
        }
    }

    fn fraction(&mut self, n: &Node, what: &str, min: f64, max: f64) -> Option<f64> {
        let v: f64 = self.cx.number(n, what)?;
        if !(min..=max).contains(&v) {
            self.cx.err(n, format!("{what} must be between {min} and {max}"));
            return None;
        }
        Some(v)
    }

    fn build(&mut self, n: &Node) -> Option<BuildSpec> {
        let f = self.cx.fields(n, &["command", "timeout"], "build")?;
        let Some(c) = f.get("command") else {
            self.cx.err_help(
                n,
                "build has no command",
                "e.g. build: { command: \"python3 -m py_compile {main}\", timeout: 30s }",
            );
            return None;
        };
        let command = self.cx.string(c, "build command")?;
        self.placeholders(c, &command, false);
        let timeout = f
            .get("timeout")
            .and_then(|t| self.cx.duration(t, "build timeout"))
            .unwrap_or(Duration::from_secs(60));
        Some(BuildSpec { command, timeout })
    }

    /// Checks the `{...}` in a command: known grader or runner placeholders, or `{NAME.FIELD}`.
    fn placeholders(&mut self, n: &Node, cmd: &str, needs_port: bool) {
        let re = regex::Regex::new(r"\{([^{}\s]*)\}").expect("a valid regex");
        let mut has_port = false;
        for m in re.captures_iter(cmd) {
            let word = &m[1];
            has_port |= matches!(word, "port" | "listen_port") || word.ends_with(".port");
            if !PLACEHOLDERS.contains(&word) && !word.contains('.') {
                let help = suite::did_you_mean(word, PLACEHOLDERS.iter().copied())
                    .unwrap_or_else(|| format!("placeholders: {{{}}}", PLACEHOLDERS.join("}, {")));
                self.cx.err_help(n, format!("unknown placeholder '{{{word}}}'"), help);
            }
        }
        if needs_port && !has_port {
            self.cx.err_help(
                n,
                "the start command has no {port}",
                "the runner picks a free port per run and passes it as {port}",
            );
        }
    }

    fn weights(&mut self, n: &Node) -> Option<Weights> {
        let f = self.cx.fields(n, &["must", "should", "should_findings"], "weights")?;
        let mut get = |k: &str, d: f64, max: f64| {
            f.get(k)
                .and_then(|v| self.fraction(v, &format!("weights.{k}"), 0.0, max))
                .unwrap_or(d)
        };
        Some(Weights {
            must: get("must", 1.0, 100.0),
            should: get("should", 1.0, 100.0),
            should_findings: get("should_findings", 0.0, 1.0),
        })
    }

    fn budget(&mut self, n: &Node) -> Option<Budget> {
        let f = self.cx.fields(n, &["case", "total", "platform"], "budget")?;
        let case = f
            .get("case")
            .and_then(|v| self.cx.duration(v, "budget.case"))
            .unwrap_or(Duration::from_secs(60));
        let total = f
            .get("total")
            .and_then(|v| self.cx.duration(v, "budget.total"))
            .unwrap_or(Duration::from_secs(15 * 60));
        let platform = f.get("platform").and_then(|v| self.cx.duration(v, "budget.platform"));
        for (k, d) in [("case", case), ("total", total)] {
            if d.is_zero() {
                if let Some(v) = f.get(k) {
                    self.cx.err(v, format!("budget.{k} must be more than 0"));
                }
            }
        }
        Some(Budget { case, total, platform })
    }

    fn limits(&mut self, n: &Node) -> Limits {
        let Some(f) = self
            .cx
            .fields(n, &["cpu", "memory", "processes", "open_files", "file_size", "disk"], "limits")
        else {
            return Limits::default();
        };
        Limits {
            cpu: f.get("cpu").and_then(|v| self.cx.duration(v, "limits.cpu")),
            memory: f.get("memory").and_then(|v| self.size(v, "limits.memory")),
            processes: f.get("processes").and_then(|v| self.cx.number(v, "limits.processes")),
            open_files: f.get("open_files").and_then(|v| self.cx.number(v, "limits.open_files")),
            file_size: f.get("file_size").and_then(|v| self.size(v, "limits.file_size")),
            disk: f.get("disk").and_then(|v| self.size(v, "limits.disk")),
        }
    }

    fn size(&mut self, n: &Node, what: &str) -> Option<u64> {
        match n.as_str().map(parse_size) {
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => {
                self.cx
                    .err_help(n, format!("{what}: {e}"), "write a size like 512MiB, 64MB or 1GiB");
                None
            }
            None => {
                self.cx.err(n, format!("{what} must be a size like 512MiB"));
                None
            }
        }
    }

    fn visibility(&mut self, n: &Node) -> Option<Visibility> {
        let v = match n.as_str() {
            Some("visible") => Visibility::Visible,
            Some("hidden") => Visibility::Hidden,
            Some("after_due_date") => Visibility::AfterDueDate,
            Some("after_published") => Visibility::AfterPublished,
            other => {
                let got = other.unwrap_or("");
                let help = suite::did_you_mean(got, VISIBILITIES.iter().copied())
                    .unwrap_or_else(|| format!("one of: {}", VISIBILITIES.join(", ")));
                self.cx.err_help(n, format!("unknown visibility '{got}'"), help);
                return None;
            }
        };
        Some(v)
    }

    fn tier(&mut self, n: &Node) -> Option<Tier> {
        match n.as_str() {
            Some("must") => Some(Tier::Must),
            Some("should") => Some(Tier::Should),
            other => {
                let got = other.unwrap_or("");
                let help = suite::did_you_mean(got, ["must", "should"]).unwrap_or_else(|| "must or should".into());
                self.cx.err_help(n, format!("unknown tier '{got}'"), help);
                None
            }
        }
    }

    fn load_suite(&mut self, n: &Node) -> Option<Arc<Suite>> {
        let name = self.cx.string(n, "suite")?;
        // A path is relative to the assignment file; a bare name is a suite under the suites folder.
        let path = if name.ends_with(".yaml") || name.ends_with(".yml") || name.contains('/') {
            let p = self.dir.join(&name);
            if !p.is_file() {
                self.cx.err(n, format!("no suite file {}", p.display()));
                return None;
            }
            p
        } else {
            match suite::resolve(std::slice::from_ref(&name)) {
                Ok(mut p) if p.len() == 1 => p.remove(0),
                Ok(_) => {
                    self.cx.err(n, format!("'{name}' does not name one suite"));
                    return None;
                }
                Err(e) => {
                    self.cx.err(n, e.to_string());
                    return None;
                }
            }
        };
        match suite::load_file(&path) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                self.cx.err(n, format!("the suite '{name}' has errors (listed below)"));
                self.suite_errors.extend(e.0);
                None
            }
        }
    }

    fn part(&mut self, n: &Node, default_vis: Visibility, weights: &Weights, default_main: &[String]) -> Option<Part> {
        let f = self.cx.fields(n, PART_KEYS, "a part")?;
        let Some(sn) = f.get("suite") else {
            self.cx
                .err_help(n, "the part names no suite", "add 'suite: NAME' (see `wirecheck list`)");
            return None;
        };
        let suite = self.load_suite(sn);
        let start = match f.get("start") {
            Some(s) => {
                let cmd = self.cx.string(s, "start");
                if let Some(c) = &cmd {
                    self.placeholders(s, c, true);
                }
                cmd
            }
            None => {
                self.cx
                    .err_help(n, "the part has no start command", "e.g. start: \"python3 {main} {port}\"");
                None
            }
        };
        let suite = suite?;
        let name = f
            .get("name")
            .and_then(|v| self.cx.string(v, "name"))
            .unwrap_or_else(|| suite.name.clone());
        let tags = f.get("tags").map(|v| self.strings(v, "tags")).unwrap_or_default();
        let known_tags: Vec<&str> = suite.cases.iter().flat_map(|c| c.tags.iter().map(String::as_str)).collect();
        for (node, t) in f.get("tags").into_iter().flat_map(seq_items).zip(&tags) {
            if !known_tags.contains(&t.as_str()) {
                let help = suite::did_you_mean(t, known_tags.iter().copied())
                    .unwrap_or_else(|| "see `wirecheck list` for the suite's tags".into());
                self.cx
                    .err_help(node, format!("no case of suite '{}' has the tag '{t}'", suite.name), help);
            }
        }
        let case_globs = f.get("cases").map(|v| self.globs(v, &suite)).unwrap_or_default();
        let main = f
            .get("main")
            .map(|v| self.strings(v, "main"))
            .unwrap_or_else(|| default_main.to_vec());
        if main.is_empty() && start.as_deref().is_some_and(|s| s.contains("{main}")) {
            self.cx.err_help(
                n,
                "the start command uses {main} but no 'main:' patterns are given",
                "add main: [\"server.py\", \"*.py\"] to the part or the assignment",
            );
        }
        let selected = |c: &suite::Case| {
            (tags.is_empty() || c.tags.iter().any(|t| tags.contains(t)))
                && (case_globs.is_empty() || case_globs.iter().any(|g| g.matches(&c.id)))
        };
        let part_vis = f.get("visibility").and_then(|v| self.visibility(v));
        let part_tier = f.get("tier").and_then(|v| self.tier(v));
        let mut cases: Vec<PlannedCase> = suite
            .cases
            .iter()
            .enumerate()
            .filter(|(_, c)| selected(c))
            .map(|(i, c)| PlannedCase {
                index: i,
                id: c.id.clone(),
                points: c.points,
                max_score: 0.0,
                visibility: if c.hidden {
                    Visibility::Hidden
                } else {
                    part_vis.unwrap_or(default_vis)
                },
                tier: part_tier.unwrap_or(Tier::Must),
                required: false,
            })
            .collect();
        if cases.is_empty() {
            self.cx.err_help(
                n,
                format!("the part selects no case of suite '{}'", suite.name),
                "check its tags: and cases: against `wirecheck list`",
            );
        }
        // Groups first, then per-case settings: the more specific rule wins.
        if let Some(g) = f.get("groups") {
            match &g.data {
                Data::Seq(items) => {
                    for item in items {
                        self.group(item, &suite, &mut cases);
                    }
                }
                _ => self
                    .cx
                    .err(g, "groups must be a list of { name, tags or cases, points, visibility, tier }"),
            }
        }
        if let Some(pc) = f.get("per_case") {
            match &pc.data {
                Data::Map(pairs) => {
                    for (k, v) in pairs {
                        let id = k.as_str().unwrap_or("");
                        let Some(c) = cases.iter_mut().position(|c| c.id == id) else {
                            let known: Vec<&str> = suite.cases.iter().map(|c| c.id.as_str()).collect();
                            let why = if known.contains(&id) {
                                " (it exists but this part does not select it)"
                            } else {
                                ""
                            };
                            let help = suite::did_you_mean(id, known).unwrap_or_else(|| "see `wirecheck list`".into());
                            self.cx
                                .err_help(k, format!("no case '{id}' in this part of suite '{}'{why}", suite.name), help);
                            continue;
                        };
                        if let Some(rule) = self.rule(v, PER_CASE_KEYS, "a per_case entry", false) {
                            apply(&mut cases[c..=c], &rule, &suite);
                        }
                    }
                }
                _ => self
                    .cx
                    .err(pc, "per_case must be a mapping of case id to { points, visibility, tier }"),
            }
        }
        if let Some(r) = f.get("require") {
            self.require(r, &suite, &mut cases);
        }
        for c in &mut cases {
            c.max_score = c.points
                * match c.tier {
                    Tier::Must => weights.must,
                    Tier::Should => weights.should,
                };
        }
        Some(Part {
            name,
            suite,
            tags,
            case_globs,
            start: start?,
            main,
            cases,
        })
    }

    /// `require: [CASE, ...]` or `require: all`: the cases whose premise the program must offer
    /// (their `n/a` counts as failed). Each must be selected by the part and have a premise.
    fn require(&mut self, n: &Node, suite: &Suite, cases: &mut [PlannedCase]) {
        let has_premise = |i: usize| !suite.cases[i].premises().is_empty();
        if n.is_keyword("all") {
            for c in cases.iter_mut() {
                c.required = has_premise(c.index);
            }
            return;
        }
        let Data::Seq(items) = &n.data else {
            self.cx.err_help(
                n,
                "require must be a list of case ids, or 'all'",
                "e.g. require: [if-none-match-same]: those cases fail, not n/a, when the program lacks their premise",
            );
            return;
        };
        for item in items {
            let Some(id) = self.cx.string(item, "require") else { continue };
            let Some(c) = cases.iter_mut().find(|c| c.id == id) else {
                let known: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
                let help = suite::did_you_mean(&id, known).unwrap_or_else(|| "see `wirecheck list`".into());
                self.cx
                    .err_help(item, format!("no case '{id}' in this part of suite '{}'", suite.name), help);
                continue;
            };
            if !has_premise(c.index) {
                self.cx.err_help(
                    item,
                    format!("case '{id}' has no premise, so requiring it changes nothing"),
                    "only cases with a 'premise:' step can be n/a; see `wirecheck list`",
                );
                continue;
            }
            c.required = true;
        }
    }

    fn globs(&mut self, n: &Node, suite: &Suite) -> Vec<glob::Pattern> {
        let mut out = Vec::new();
        let items: Vec<&Node> = match &n.data {
            Data::Seq(items) => items.iter().collect(),
            _ => vec![n],
        };
        for item in items {
            let Some(s) = self.cx.string(item, "cases") else { continue };
            match glob::Pattern::new(&s) {
                Ok(g) if suite.cases.iter().any(|c| g.matches(&c.id)) => out.push(g),
                Ok(_) => {
                    let help =
                        suite::did_you_mean(&s, suite.cases.iter().map(|c| c.id.as_str())).unwrap_or_else(|| "see `wirecheck list`".into());
                    self.cx
                        .err_help(item, format!("'{s}' matches no case of suite '{}'", suite.name), help);
                }
                Err(e) => self.cx.err(item, format!("'{s}' is not a glob: {e}")),
            }
        }
        out
    }

    fn rule(&mut self, n: &Node, keys: &[&str], what: &str, group_total: bool) -> Option<Rule> {
        let f = self.cx.fields(n, keys, what)?;
        Some(Rule {
            points: f.get("points").and_then(|v| self.fraction(v, "points", 0.0, 10_000.0)),
            group_total,
            visibility: f.get("visibility").and_then(|v| self.visibility(v)),
            tier: f.get("tier").and_then(|v| self.tier(v)),
        })
    }

    fn group(&mut self, n: &Node, suite: &Suite, cases: &mut [PlannedCase]) {
        let Some(f) = self.cx.fields(n, GROUP_KEYS, "a group") else {
            return;
        };
        let tags = f.get("tags").map(|v| self.strings(v, "tags")).unwrap_or_default();
        let globs = f.get("cases").map(|v| self.globs(v, suite)).unwrap_or_default();
        if tags.is_empty() && globs.is_empty() {
            self.cx
                .err_help(n, "the group selects nothing", "give it tags: [...] or cases: [...]");
            return;
        }
        let Some(rule) = self.rule(n, GROUP_KEYS, "a group", true) else {
            return;
        };
        let idx: Vec<usize> = cases
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                let case = &suite.cases[c.index];
                case.tags.iter().any(|t| tags.contains(t)) || globs.iter().any(|g| g.matches(&c.id))
            })
            .map(|(i, _)| i)
            .collect();
        if idx.is_empty() {
            self.cx.err(n, "the group matches none of the part's cases");
            return;
        }
        let mut members: Vec<PlannedCase> = idx.iter().map(|&i| cases[i].clone()).collect();
        apply(&mut members, &rule, suite);
        for (&i, m) in idx.iter().zip(members) {
            cases[i] = m;
        }
    }
}

/// Applies a rule to the cases it covers; a group's points are its total, split in proportion to
/// the suite's points (equally when those are all zero).
fn apply(cases: &mut [PlannedCase], rule: &Rule, suite: &Suite) {
    if let Some(p) = rule.points {
        if rule.group_total {
            let base: f64 = cases.iter().map(|c| suite.cases[c.index].points).sum();
            let n = cases.len() as f64;
            // In hundredths, by largest remainder: the shares add up to the group's total exactly.
            let total = (p * 100.0).round() as i64;
            let raw: Vec<f64> = cases
                .iter()
                .map(|c| total as f64 * if base > 0.0 { suite.cases[c.index].points / base } else { 1.0 / n })
                .collect();
            let mut cents: Vec<i64> = raw.iter().map(|r| r.floor() as i64).collect();
            let mut order: Vec<usize> = (0..raw.len()).collect();
            order.sort_by(|&a, &b| (raw[b] - raw[b].floor()).total_cmp(&(raw[a] - raw[a].floor())).then(a.cmp(&b)));
            let left = total - cents.iter().sum::<i64>();
            for &i in order.iter().take(left.max(0) as usize) {
                cents[i] += 1;
            }
            for (c, cents) in cases.iter_mut().zip(cents) {
                c.points = cents as f64 / 100.0;
            }
        } else {
            for c in cases.iter_mut() {
                c.points = p;
            }
        }
    }
    for c in cases.iter_mut() {
        if let Some(v) = rule.visibility {
            c.visibility = v;
        }
        if let Some(t) = rule.tier {
            c.tier = t;
        }
    }
}

fn seq_items(n: &Node) -> Vec<&Node> {
    match &n.data {
        Data::Seq(items) => items.iter().collect(),
        _ => vec![n],
    }
}

/// Parses `512MiB`, `64MB`, `1GiB`, `4096` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("'{s}' is not a size"))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" | "K" => 1024.0,
        "MiB" | "M" => 1024.0 * 1024.0,
        "GiB" | "G" => 1024.0 * 1024.0 * 1024.0,
        u => return Err(format!("unknown unit '{u}' (B, KB, MB, GB, KiB, MiB, GiB)")),
    };
    let v = n * mult;
    if !(1.0..=1e15).contains(&v) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Assignment, String> {
        load_str(Path::new("ci/assignments/x.yaml"), text.to_string()).map_err(|e| e.to_string())
    }

    const BASE: &str = "assignment: t\nmain: [\"*.py\"]\nparts:\n  - suite: tcp-upper\n    start: \"python3 {main} {port}\"\n";

    #[test]
    fn a_minimal_assignment_takes_the_suite_points() {
        let a = load(BASE).unwrap();
        assert_eq!(a.parts[0].name, "tcp-upper");
        assert_eq!(a.max_score(), a.parts[0].suite.max_points());
        assert_eq!(a.user.as_deref(), Some("nobody"));
        assert_eq!(a.suites_sha256.len(), 64);
    }

    #[test]
    fn unknown_keys_point_at_their_line_with_a_suggestion() {
        let err = load(&format!("{BASE}    per_case:\n      exact-reply: {{ pionts: 3 }}\n")).unwrap_err();
        assert!(err.contains("ci/assignments/x.yaml:7:22: error: unknown key 'pionts'"), "{err}");
        assert!(err.contains("did you mean 'points'?"), "{err}");
        let err = load(&format!("{BASE}    tag: [core]\n")).unwrap_err();
        assert!(
            err.contains("x.yaml:6:5: error: unknown key 'tag' in a part") && err.contains("did you mean 'tags'?"),
            "{err}"
        );
    }

    #[test]
    fn names_that_do_not_exist_are_errors() {
        let err = load(&format!("{BASE}    per_case:\n      exact-replay: {{ points: 3 }}\n")).unwrap_err();
        assert!(
            err.contains("no case 'exact-replay'") && err.contains("did you mean 'exact-reply'?"),
            "{err}"
        );
        let err = load(&format!("{BASE}    tags: [cor]\n")).unwrap_err();
        assert!(
            err.contains("no case of suite 'tcp-upper' has the tag 'cor'") && err.contains("'core'"),
            "{err}"
        );
        let err = load("assignment: t\nparts:\n  - suite: tcp-uper\n    start: \"x {port}\"\n").unwrap_err();
        assert!(err.contains("x.yaml:3:12") && err.contains("did you mean 'tcp-upper'?"), "{err}");
        let err = load("assignment: t\nparts:\n  - suite: tcp-upper\n    start: \"python3 {mian} {port}\"\n").unwrap_err();
        assert!(
            err.contains("unknown placeholder '{mian}'") && err.contains("did you mean 'main'?"),
            "{err}"
        );
        let err = load("assignment: t\nparts:\n  - suite: tcp-upper\n    start: \"python3 s.py 12000\"\n").unwrap_err();
        assert!(err.contains("the start command has no {port}"), "{err}");
    }

    #[test]
    fn require_names_cases_of_the_part_that_have_a_premise() {
        let premise = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/suites/premise.yaml");
        let head = format!("assignment: t\nmain: [\"*.py\"]\nparts:\n  - suite: {premise}\n    start: \"python3 {{main}} {{port}}\"\n");
        let a = load(&format!("{head}    require: [premise-not-offered]\n")).unwrap();
        let required: Vec<&str> = a.parts[0].cases.iter().filter(|c| c.required).map(|c| c.id.as_str()).collect();
        assert_eq!(required, ["premise-not-offered"]);
        let a = load(&format!("{head}    require: all\n")).unwrap();
        assert!(
            a.parts[0].cases.iter().all(|c| c.required),
            "every case of that suite has a premise"
        );
        let err = load(&format!("{head}    require: [premise-not-offerd]\n")).unwrap_err();
        assert!(err.contains("did you mean 'premise-not-offered'?"), "{err}");
        let err = load(&format!("{BASE}    require: [exact-reply]\n")).unwrap_err();
        assert!(
            err.contains("6:15: error: case 'exact-reply' has no premise, so requiring it changes nothing"),
            "{err}"
        );
        let err = load(&format!("{BASE}    require: exact-reply\n")).unwrap_err();
        assert!(err.contains("require must be a list of case ids, or 'all'"), "{err}");
    }

    #[test]
    fn groups_split_their_total_exactly_and_per_case_settings_win() {
        let a = load(&format!(
            "{BASE}    groups:\n      - {{ name: s, tags: [stream], points: 10, visibility: hidden, tier: should }}\n    per_case:\n      split-writes: {{ visibility: visible }}\n"
        ))
        .unwrap();
        let p = &a.parts[0];
        let stream: Vec<&PlannedCase> = p
            .cases
            .iter()
            .filter(|c| p.suite.cases[c.index].tags.contains(&"stream".to_string()))
            .collect();
        let total: f64 = stream.iter().map(|c| c.points).sum();
        assert!((total - 10.0).abs() < 1e-9, "{total}");
        assert!(stream.iter().all(|c| c.tier == Tier::Should && c.max_score == c.points));
        let split = p.cases.iter().find(|c| c.id == "split-writes").unwrap();
        assert_eq!(split.visibility, Visibility::Visible);
        assert!(stream
            .iter()
            .filter(|c| c.id != "split-writes")
            .all(|c| c.visibility == Visibility::Hidden));
        let weighted = load(&format!("{BASE}    tier: should\nweights: {{ should: 0 }}\n")).unwrap();
        assert_eq!(weighted.max_score(), 0.0, "SHOULD-tier cases may be worth nothing");
    }

    #[test]
    fn budgets_must_fit_the_platform() {
        let err = load(&format!("{BASE}budget: {{ case: 1m, total: 10m, platform: 10m }}\n")).unwrap_err();
        assert!(err.contains("the budgets do not fit the platform's limit"), "{err}");
        assert!(load(&format!("{BASE}budget: {{ case: 30s, total: 5m, platform: 10m }}\n")).is_ok());
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("64MB"), Ok(64_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn every_shipped_assignment_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/assignments");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "yaml") {
                load_file(&e.path()).unwrap_or_else(|err| panic!("{err}"));
                n += 1;
            }
        }
        assert!(n >= 6, "only {n} assignments");
    }
}
