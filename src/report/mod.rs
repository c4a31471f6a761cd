//! Reporters: results flow here as cases finish (console, JSON, JUnit, and the grade formats
//! through `graded`); `html` and `ladder` draw the HTML page; `escape` makes what a program wrote
//! inert in every report.

pub(crate) mod console;
pub mod escape;
pub mod figures;
mod graded;
pub mod html;
mod json;
mod junit;
pub mod ladder;
pub mod swarm;

use std::path::{Path, PathBuf};

pub use console::{failure_text, not_applicable_text, Console};
pub use graded::{Graded, RunInfo};
pub use json::{case_json, Json, SCHEMA};
pub use junit::Junit;

use crate::grade::formats::Format;
use crate::run::{CaseResult, Reporter, Summary};

/// Sends every event to several reporters.
#[derive(Default)]
pub struct Fanout(pub Vec<Box<dyn Reporter>>);

impl Reporter for Fanout {
    fn start(&mut self, total: usize) {
        self.0.iter_mut().for_each(|r| r.start(total));
    }
    fn case_finished(&mut self, result: &CaseResult) {
        self.0.iter_mut().for_each(|r| r.case_finished(result));
    }
    fn finish(&mut self, summary: &Summary) -> std::io::Result<()> {
        for r in &mut self.0 {
            r.finish(summary)?;
        }
        Ok(())
    }
}

/// A `--report FORMAT:PATH` argument of `wirecheck run`.
#[derive(Debug, Clone)]
pub struct ReportSpec {
    /// The format.
    pub format: RunFormat,
    /// Where to write; `-` is stdout.
    pub path: PathBuf,
}

/// A report format of `wirecheck run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFormat {
    /// The run's own JSON schema (`wirecheck.run/1`).
    Json,
    /// The run's own JUnit XML (one testsuite per suite).
    Junit,
    /// A format of `wirecheck grade`, rendered from the run's results.
    Graded(Format),
}

/// Report formats `wirecheck run --report` accepts: its own json and junit, then every other
/// format of `wirecheck grade`.
pub const FORMATS: &[&str] = &[
    "json",
    "junit",
    "html",
    "markdown",
    "tap",
    "gradescope",
    "prairielearn",
    "classroom",
];

impl std::str::FromStr for ReportSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (format, path) = s
            .split_once(':')
            .ok_or_else(|| format!("'{s}' is not FORMAT:PATH (e.g. json:results.json, html:report.html, junit:-)"))?;
        let format = match format {
            "json" => RunFormat::Json,
            "junit" => RunFormat::Junit,
            f => match f.parse::<Format>() {
                Ok(g) if FORMATS.contains(&f) => RunFormat::Graded(g),
                _ => {
                    let hint = crate::suite::did_you_mean(f, FORMATS.iter().copied()).unwrap_or_default();
                    return Err(format!("unknown report format '{f}' (known: {}) {hint}", FORMATS.join(", ")));
                }
            },
        };
        if path.is_empty() {
            return Err(format!("'{s}' has no path; use '-' for stdout"));
        }
        Ok(ReportSpec {
            format,
            path: PathBuf::from(path),
        })
    }
}

impl ReportSpec {
    /// The reporter for this spec; `run` names the suites and the target for the grade formats.
    pub fn reporter(&self, run: &RunInfo) -> Box<dyn Reporter> {
        match self.format {
            RunFormat::Json => Box::new(Json::new(self.path.clone())),
            RunFormat::Junit => Box::new(Junit::new(self.path.clone())),
            RunFormat::Graded(f) => Box::new(Graded::new(f, self.path.clone(), run.clone())),
        }
    }
}

/// Writes `bytes` to `path` (or stdout for `-`) atomically: a temp file renamed into place.
pub fn write_output(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        return out.flush();
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
