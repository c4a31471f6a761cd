//! `run --failed`: the cases that did not pass the last time they ran from this folder against
//! the same target (pytest's `--lf`). Each run records its verdicts in the user's cache folder
//! (`$XDG_CACHE_HOME/wirecheck/last-run.json`, else `~/.cache/...`), never in the folder it runs
//! in: a student's working tree is theirs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::run::{CaseResult, Reporter, Summary, Verdict};

/// Records kept, one per folder and target; the oldest go first.
const MAX_RECORDS: usize = 64;

/// What one folder's runs against one target left failing.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Record {
    /// `suite::case` of every case whose last verdict was fail or error.
    failed: BTreeSet<String>,
    /// Seconds since the epoch of the last run, to drop the oldest records.
    at: u64,
}

/// The file, by folder and target.
type Records = BTreeMap<String, Record>;

/// Where the records live: the cache folder of the user running wirecheck.
fn file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("wirecheck").join("last-run.json"))
}

/// The record's key: the folder run from and the target (`--exec CMD`, `--target ADDR`, or the
/// references), so two programs tested from one folder keep their own failures.
pub fn key(exec: Option<&str>, target: Option<&str>) -> String {
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
    let target = match (exec, target) {
        (Some(cmd), _) => format!("exec {cmd}"),
        (None, Some(addr)) => format!("target {addr}"),
        (None, None) => "references".to_string(),
    };
    format!("{cwd}\n{target}")
}

fn read() -> Records {
    file()
        .and_then(|f| std::fs::read(f).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The cases that failed last time under `key`: None when no run under it is recorded.
pub fn failed(key: &str) -> Option<Vec<String>> {
    read().remove(key).map(|r| r.failed.into_iter().collect())
}

/// A reporter that updates the record under its key when the run finishes: cases that ran now
/// take their new verdict, the others keep theirs.
pub struct LastRun {
    key: String,
    now_failed: Vec<String>,
    now_passed: Vec<String>,
}

impl LastRun {
    /// Records under `key`.
    pub fn new(key: String) -> LastRun {
        LastRun {
            key,
            now_failed: Vec::new(),
            now_passed: Vec::new(),
        }
    }
}

impl Reporter for LastRun {
    fn case_finished(&mut self, r: &CaseResult) {
        match r.verdict {
            Verdict::Fail | Verdict::Error => self.now_failed.push(r.name()),
            Verdict::Pass | Verdict::NotApplicable => self.now_passed.push(r.name()),
        }
    }

    fn finish(&mut self, _summary: &Summary) -> std::io::Result<()> {
        // A cache the user cannot write is no reason to fail a run: --failed then says so.
        let Some(path) = file() else { return Ok(()) };
        let mut records = read();
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let record = records.entry(self.key.clone()).or_default();
        record.at = at;
        for name in &self.now_passed {
            record.failed.remove(name);
        }
        record.failed.extend(self.now_failed.drain(..));
        while records.len() > MAX_RECORDS {
            let oldest = records.iter().min_by_key(|(_, r)| r.at).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => records.remove(&k),
                None => break,
            };
        }
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(&path));
        let tmp = path.with_extension(format!("json.{}", std::process::id()));
        let written = serde_json::to_vec_pretty(&records)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(())
    }
}
