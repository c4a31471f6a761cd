//! `wirecheck run --report FORMAT:PATH` for the formats `wirecheck grade` writes (html, markdown,
//! tap, gradescope, prairielearn, classroom): the run's results become a grade
//! (`grade::score::from_run`) and the grade's own formatter renders it, so each format has one
//! implementation for both commands. A run has no students: every case shows in full.

use std::path::PathBuf;
use std::sync::Arc;

use crate::grade::formats::{Audience, Format};
use crate::grade::score;
use crate::run::{CaseResult, Reporter, Summary};
use crate::suite::Suite;

/// What a run's grade-shaped reports say about the run as a whole.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// The suites, in the order the run takes them: the report lists cases in this order.
    pub suites: Vec<Arc<Suite>>,
    /// What was tested, in words (`--exec "python3 server.py {port}"`).
    pub target: String,
}

impl RunInfo {
    /// The report's title: `wirecheck run: SUITE, SUITE ...` (the first few named).
    pub fn title(&self) -> String {
        let names: Vec<&str> = self.suites.iter().map(|s| s.name.as_str()).collect();
        let shown = names.iter().take(4).copied().collect::<Vec<_>>().join(", ");
        match names.len() {
            0..=4 => format!("wirecheck run: {shown}"),
            n => format!("wirecheck run: {shown} and {} more suites", n - 4),
        }
    }
}

/// Collects results and renders one grade format at the end.
pub struct Graded {
    format: Format,
    path: PathBuf,
    run: RunInfo,
    results: Vec<Arc<CaseResult>>,
}

impl Graded {
    /// A reporter writing `format` to `path` (`-` for stdout).
    pub fn new(format: Format, path: PathBuf, run: RunInfo) -> Graded {
        Graded {
            format,
            path,
            run,
            results: Vec::new(),
        }
    }
}

impl Reporter for Graded {
    fn case_finished(&mut self, r: &CaseResult) {
        self.results.push(Arc::new(r.clone()));
    }

    fn finish(&mut self, summary: &Summary) -> std::io::Result<()> {
        // Cases finish in any order when several run at once: list them as the suites have them.
        let place = |r: &CaseResult| {
            let s = self.run.suites.iter().position(|s| Arc::ptr_eq(s, &r.suite)).unwrap_or(usize::MAX);
            (s, r.index)
        };
        self.results.sort_by_key(|r| place(r));
        let g = score::from_run(&self.results, summary, &self.run.title(), &self.run.target);
        super::write_output(&self.path, &self.format.render(&g, Audience::Staff))
    }
}
