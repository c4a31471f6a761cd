//! Many submissions: the roster (one row per submission, CSV and JSON), deterministic shards for
//! a CI matrix, and merging shard rosters back into one.

use std::path::{Path, PathBuf};

use super::score::Grade;

/// The schema identifier of roster.json.
pub const SCHEMA: &str = "wirecheck.roster/1";

/// One submission's row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// The submission's folder (or file) name.
    pub submission: String,
    /// Points earned.
    pub score: f64,
    /// Points available.
    pub max: f64,
    /// Names of the cases that did not pass.
    pub failed: Vec<String>,
    /// Wall time in seconds.
    pub duration_s: f64,
    /// Whether the build gate passed.
    pub build_ok: bool,
    /// `graded`, `build failed` (no case ran), `did not start` (the program could not be started
    /// or reached), or `out of time` (the time budget ran out before every case ran).
    #[serde(default = "graded")]
    pub status: String,
}

fn graded() -> String {
    "graded".into()
}

impl Entry {
    /// The row for a grade.
    pub fn from_grade(g: &Grade) -> Entry {
        Entry {
            submission: g.submission.clone(),
            score: g.score(),
            max: g.max_score(),
            failed: g.cases.iter().filter(|c| !c.status.is_ok()).map(|c| c.name.clone()).collect(),
            duration_s: (g.duration.as_secs_f64() * 1000.0).round() / 1000.0,
            build_ok: g.build.ok,
            status: match () {
                _ if !g.build.ok => "build failed",
                _ if !g.target_errors.is_empty() => "did not start",
                _ if g.budget_exhausted => "out of time",
                _ => "graded",
            }
            .into(),
        }
    }
}

/// A roster: what was graded, with what, and each submission's row (sorted by submission).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Roster {
    /// [`SCHEMA`].
    pub schema: String,
    /// The assignment's name.
    pub assignment: String,
    /// sha256 of the assignment file.
    pub assignment_sha256: String,
    /// sha256 of the suite files.
    pub suites_sha256: String,
    /// The seed.
    pub seed: u64,
    /// `K/N` when this roster is one shard; None for a whole (or merged) roster.
    pub shard: Option<String>,
    /// The rows.
    pub submissions: Vec<Entry>,
}

impl Roster {
    /// The CSV: `submission,score,max,status,build,failed,duration_s` (failed cases separated by
    /// `;`; build `ok` or `failed`).
    pub fn csv(&self) -> String {
        let mut out = String::from("submission,score,max,status,build,failed,duration_s\n");
        for e in &self.submissions {
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                csv_field(&e.submission),
                e.score,
                e.max,
                e.status,
                if e.build_ok { "ok" } else { "failed" },
                csv_field(&e.failed.join(";")),
                e.duration_s
            ));
        }
        out
    }

    /// Writes `roster.json` and `roster.csv` into `dir` (atomically each).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let mut json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        json.push(b'\n');
        crate::report::write_output(&dir.join("roster.json"), &json)?;
        crate::report::write_output(&dir.join("roster.csv"), self.csv().as_bytes())
    }
}

/// Quotes a CSV field when it needs it (RFC 4180); a leading `=+-@` is neutralised so a
/// spreadsheet never runs a submission's name as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// A `--shard K/N` argument: the K-th of N slices (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1..=n.
    pub k: usize,
    /// Number of slices.
    pub n: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let (k, n) = s.split_once('/').ok_or_else(|| format!("'{s}' is not K/N (e.g. 2/4)"))?;
        let k: usize = k.trim().parse().map_err(|_| format!("'{s}': K is not a number"))?;
        let n: usize = n.trim().parse().map_err(|_| format!("'{s}': N is not a number"))?;
        if n == 0 || k == 0 || k > n {
            return Err(format!("'{s}': need 1 <= K <= N"));
        }
        Ok(Shard { k, n })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

/// The submissions in `dir`: every subfolder (and file that is not hidden), sorted by name.
pub fn submissions(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir() || t.is_file()))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// The slice of `all` (sorted) for `shard`: every N-th from the K-th, so slices are disjoint,
/// cover everything, and differ in size by at most one. The same folder gives the same slices on
/// every machine of a CI matrix.
pub fn shard<T: Clone>(all: &[T], shard: Shard) -> Vec<T> {
    all.iter()
        .enumerate()
        .filter(|(i, _)| i % shard.n == shard.k - 1)
        .map(|(_, x)| x.clone())
        .collect()
}

/// Combines shard rosters: same assignment and suites, no submission twice.
pub fn merge(rosters: &[(PathBuf, Roster)]) -> Result<Roster, String> {
    let Some((first_path, first)) = rosters.first() else {
        return Err("no rosters to merge".into());
    };
    let mut out = Roster {
        shard: None,
        submissions: Vec::new(),
        ..first.clone()
    };
    for (path, r) in rosters {
        if r.schema != SCHEMA {
            return Err(format!("{}: schema '{}' is not {SCHEMA}", path.display(), r.schema));
        }
        for (what, a, b) in [
            ("assignment", &r.assignment, &first.assignment),
            ("assignment_sha256", &r.assignment_sha256, &first.assignment_sha256),
            ("suites_sha256", &r.suites_sha256, &first.suites_sha256),
        ] {
            if a != b {
                return Err(format!(
                    "{} and {} were graded differently ({what}: {a} vs {b}); merge only shards of one grading",
                    path.display(),
                    first_path.display()
                ));
            }
        }
        for e in &r.submissions {
            if out.submissions.iter().any(|x| x.submission == e.submission) {
                return Err(format!("{}: submission '{}' is in two rosters", path.display(), e.submission));
            }
            out.submissions.push(e.clone());
        }
    }
    out.submissions.sort_by(|a, b| a.submission.cmp(&b.submission));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_and_cover_everything() {
        let all: Vec<u32> = (0..50).collect();
        for n in 1..=7 {
            let mut seen: Vec<u32> = (1..=n).flat_map(|k| shard(&all, Shard { k, n })).collect();
            seen.sort();
            assert_eq!(seen, all, "n={n}");
        }
    }

    #[test]
    fn shard_arguments_are_checked() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { k: 2, n: 4 }));
        assert!("0/4".parse::<Shard>().is_err());
        assert!("5/4".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("plain"), "plain");
    }
}
