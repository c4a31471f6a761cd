//! The folder a submission is graded in: a temporary copy of the submission (the original is never
//! modified, whatever the program does) next to a copy of the fixtures it may read or change.

use std::path::{Path, PathBuf};

/// Most bytes copied from one submission: a folder bigger than this is not a lab submission.
pub const MAX_BYTES: u64 = 200 * 1024 * 1024;
/// Most files copied from one submission.
pub const MAX_FILES: usize = 10_000;

/// A submission's temporary copy; removed when dropped.
pub struct Workspace {
    /// Holds `submission/` and `fixtures/`.
    pub tmp: tempfile::TempDir,
    /// The copy of the submission (`{dir}`).
    pub dir: PathBuf,
    /// The copy of the fixtures (`{fixtures}`).
    pub fixtures: PathBuf,
    /// The submitted file when a single file was submitted.
    pub single_file: Option<PathBuf>,
}

impl Workspace {
    /// Copies `submission` (a folder, or a file graded as a folder holding just it) and the
    /// `fixtures` (paths under `fixtures_dir`) into a new temporary folder.
    pub fn new(submission: &Path, fixtures_dir: &Path, fixtures: &[String]) -> Result<Workspace, String> {
        let tmp = tempfile::Builder::new()
            .prefix("wirecheck-grade-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary folder: {e}"))?;
        let dir = tmp.path().join("submission");
        let fx = tmp.path().join("fixtures");
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        std::fs::create_dir_all(&fx).map_err(|e| format!("cannot create {}: {e}", fx.display()))?;
        let meta = std::fs::metadata(submission).map_err(|e| format!("cannot read the submission {}: {e}", submission.display()))?;
        let mut budget = Budget::default();
        let single_file = if meta.is_file() {
            let name = submission
                .file_name()
                .ok_or_else(|| format!("{} has no file name", submission.display()))?;
            let to = dir.join(name);
            copy_file(submission, &to, &mut budget)?;
            Some(to)
        } else {
            copy_tree(submission, &dir, &mut budget)?;
            None
        };
        let mut fx_budget = Budget::default();
        for f in fixtures {
            let from = fixtures_dir.join(f);
            let to = fx.join(f);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            if from.is_dir() {
                std::fs::create_dir_all(&to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
                copy_tree(&from, &to, &mut fx_budget)?;
            } else {
                copy_file(&from, &to, &mut fx_budget)?;
            }
        }
        Ok(Workspace {
            tmp,
            dir,
            fixtures: fx,
            single_file,
        })
    }

    /// The file `{main}` stands for: the first pattern that matches exactly one file (relative
    /// paths, `/`-separated) wins; a pattern matching several is ambiguous and reported.
    pub fn find_main(&self, patterns: &[String]) -> Result<PathBuf, String> {
        let mut files = Vec::new();
        list_files(&self.dir, &self.dir, &mut files);
        files.sort();
        for p in patterns {
            let Ok(g) = glob::Pattern::new(p) else { continue };
            let hits: Vec<&String> = files.iter().filter(|f| g.matches(f)).collect();
            match hits.as_slice() {
                [] => continue,
                [one] => return Ok(self.dir.join(one)),
                many => {
                    return Err(format!(
                        "several submitted files match '{p}' ({}); the assignment cannot tell which one to run",
                        many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                }
            }
        }
        Err(format!(
            "no submitted file matches {} (submitted: {})",
            patterns.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(" or "),
            if files.is_empty() {
                "nothing".to_string()
            } else {
                files.join(", ")
            }
        ))
    }

    /// Gives the copies to `user` so a program running as that user can read and write them
    /// (only meaningful as root; the temporary folder is private to wirecheck's user otherwise).
    pub fn hand_to(&self, user: &str) -> Result<(), String> {
        let u = nix::unistd::User::from_name(user)
            .map_err(|e| format!("cannot look up the user '{user}': {e}"))?
            .ok_or_else(|| format!("no user '{user}' on this machine; set 'user:' in the assignment or pass --user"))?;
        let mut all = vec![self.tmp.path().to_path_buf()];
        let mut files = Vec::new();
        list_all(self.tmp.path(), &mut files);
        all.extend(files);
        for p in all {
            nix::unistd::chown(&p, Some(u.uid), Some(u.gid)).map_err(|e| format!("cannot give {} to '{user}': {e}", p.display()))?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Budget {
    bytes: u64,
    files: usize,
}

fn copy_file(from: &Path, to: &Path, budget: &mut Budget) -> Result<(), String> {
    let n = std::fs::copy(from, to).map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
    budget.bytes += n;
    budget.files += 1;
    if budget.bytes > MAX_BYTES || budget.files > MAX_FILES {
        return Err(format!(
            "the submission is too large to grade (more than {} MiB or {MAX_FILES} files)",
            MAX_BYTES / (1024 * 1024)
        ));
    }
    Ok(())
}

/// Copies a folder's files and folders; symbolic links are skipped (they could point anywhere
/// on the grading machine, and a lab submission has no need for them).
fn copy_tree(from: &Path, to: &Path, budget: &mut Budget) -> Result<(), String> {
    let entries = std::fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let ty = e.file_type().map_err(|err| format!("cannot read {}: {err}", e.path().display()))?;
        let target = to.join(e.file_name());
        if ty.is_dir() {
            std::fs::create_dir_all(&target).map_err(|err| format!("cannot create {}: {err}", target.display()))?;
            copy_tree(&e.path(), &target, budget)?;
        } else if ty.is_file() {
            copy_file(&e.path(), &target, budget)?;
        }
    }
    Ok(())
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => list_files(root, &p, out),
            Ok(t) if t.is_file() => {
                if let Ok(rel) = p.strip_prefix(root) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
            _ => {}
        }
    }
}

fn list_all(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            list_all(&p, out);
        }
        out.push(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_a_folder_and_finds_main_by_pattern_order() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("server.py"), "print(1)").unwrap();
        std::fs::write(src.path().join("helper.py"), "").unwrap();
        std::fs::create_dir(src.path().join("sub")).unwrap();
        std::fs::write(src.path().join("sub/notes.txt"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("link")).unwrap();
        let fx = tempfile::tempdir().unwrap();
        std::fs::create_dir(fx.path().join("www")).unwrap();
        std::fs::write(fx.path().join("www/index.html"), "hi").unwrap();
        let ws = Workspace::new(src.path(), fx.path(), &["www".into()]).unwrap();
        assert!(ws.dir.join("sub/notes.txt").is_file());
        assert!(!ws.dir.join("link").exists(), "symlinks are not copied");
        assert_eq!(std::fs::read_to_string(ws.fixtures.join("www/index.html")).unwrap(), "hi");
        assert_eq!(
            ws.find_main(&["server.py".into(), "*.py".into()]).unwrap(),
            ws.dir.join("server.py")
        );
        let err = ws.find_main(&["*.py".into()]).unwrap_err();
        assert!(err.contains("helper.py, server.py"), "{err}");
        let err = ws.find_main(&["*.c".into()]).unwrap_err();
        assert!(err.contains("no submitted file matches '*.c'"), "{err}");
        // Writing into the copy leaves the original alone.
        std::fs::write(ws.dir.join("server.py"), "changed").unwrap();
        assert_eq!(std::fs::read_to_string(src.path().join("server.py")).unwrap(), "print(1)");
    }

    #[test]
    fn a_single_file_is_graded_as_a_folder_holding_it() {
        let src = tempfile::tempdir().unwrap();
        let f = src.path().join("lab.py");
        std::fs::write(&f, "x").unwrap();
        let ws = Workspace::new(&f, src.path(), &[]).unwrap();
        assert_eq!(ws.single_file.as_deref(), Some(ws.dir.join("lab.py").as_path()));
        assert_eq!(ws.find_main(&["*.py".into()]).unwrap(), ws.dir.join("lab.py"));
    }
}
