//! Reporters: results flow here as cases finish (console, JSON, JUnit); `escape` makes what a
//! program wrote inert in every report.

pub(crate) mod console;
pub mod escape;
mod json;
mod junit;

use std::path::{Path, PathBuf};

pub use console::{failure_text, not_applicable_text, Console};
pub use json::{case_json, Json, SCHEMA};
pub use junit::Junit;

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

/// A `--report FORMAT:PATH` argument.
#[derive(Debug, Clone)]
pub struct ReportSpec {
    /// json or junit.
    pub format: String,
    /// Where to write; `-` is stdout.
    pub path: PathBuf,
}

/// Report formats `--report` accepts.
pub const FORMATS: &[&str] = &["json", "junit"];

impl std::str::FromStr for ReportSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (format, path) = s
            .split_once(':')
            .ok_or_else(|| format!("'{s}' is not FORMAT:PATH (e.g. json:results.json, junit:-)"))?;
        if !FORMATS.contains(&format) {
            let hint = crate::suite::did_you_mean(format, FORMATS.iter().copied()).unwrap_or_default();
            return Err(format!("unknown report format '{format}' (known: {}) {hint}", FORMATS.join(", ")));
        }
        if path.is_empty() {
            return Err(format!("'{s}' has no path; use '-' for stdout"));
        }
        Ok(ReportSpec {
            format: format.to_string(),
            path: PathBuf::from(path),
        })
    }
}

impl ReportSpec {
    /// The reporter for this spec.
    pub fn reporter(&self) -> Box<dyn Reporter> {
        match self.format.as_str() {
            "json" => Box::new(Json::new(self.path.clone())),
            _ => Box::new(Junit::new(self.path.clone())),
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
