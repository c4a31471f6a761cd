//! A case's own folder: where a client under test saves what it downloads (a `start` argument
//! `{ out: got.bin }`) and where an actor keeps what a client handed it (`ACTOR/NAME`), for
//! `expect_file` to read. It is made when a case first needs it, owned by the user the program
//! runs as, and removed with everything in it when the case ends: nothing a user gave is touched.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::sandbox::Ids;

/// The most an actor keeps of one file it was handed (what a flooding client sends past this is dropped).
pub const MAX_KEPT_FILE: usize = 64 << 20;

/// A case's folder, made on first use and removed on drop.
#[derive(Debug)]
pub struct CaseFolder {
    dir: OnceLock<Result<tempfile::TempDir, String>>,
    owner: Option<Ids>,
}

impl CaseFolder {
    /// A folder that, once made, belongs to `owner` (the user a program under test runs as).
    pub fn new(owner: Option<Ids>) -> CaseFolder {
        CaseFolder {
            dir: OnceLock::new(),
            owner,
        }
    }

    /// The folder, made now if it does not exist yet.
    pub fn path(&self) -> Result<&Path, String> {
        let made = self.dir.get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("wirecheck-case-")
                .tempdir()
                .map_err(|e| format!("cannot make the case's folder: {e}"))?;
            if let Some(ids) = self.owner {
                std::os::unix::fs::lchown(dir.path(), Some(ids.uid), Some(ids.gid))
                    .map_err(|e| format!("cannot give the case's folder to uid {}: {e}", ids.uid))?;
            }
            Ok(dir)
        });
        made.as_ref().map(|d| d.path()).map_err(Clone::clone)
    }

    /// `rel` inside the folder; a path that would leave it (absolute, `..`) is refused.
    pub fn join(&self, rel: &str) -> Result<PathBuf, String> {
        let p = Path::new(rel);
        if !crate::suite::in_case_folder(rel) {
            return Err(format!("'{rel}' is not a path inside the case's folder (no '..', not absolute)"));
        }
        Ok(self.path()?.join(p))
    }

    /// Keeps `bytes` as `actor/name` (an upload an actor received); a name that is not a plain
    /// file name is not kept.
    pub fn keep(&self, actor: &str, name: &str, bytes: &[u8]) -> Result<(), String> {
        if name.contains('/') || name == "." || name == ".." || name.is_empty() {
            return Err(format!("'{name}' is not a plain file name"));
        }
        let dir = self.join(actor)?;
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        let path = dir.join(name);
        std::fs::write(&path, &bytes[..bytes.len().min(MAX_KEPT_FILE)]).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_is_made_on_first_use_and_removed_on_drop() {
        let f = CaseFolder::new(None);
        let p = f.path().unwrap().to_path_buf();
        assert!(p.is_dir());
        f.keep("srv", "up.bin", b"abc").unwrap();
        assert_eq!(std::fs::read(p.join("srv/up.bin")).unwrap(), b"abc");
        drop(f);
        assert!(!p.exists());
    }

    #[test]
    fn paths_that_leave_the_folder_are_refused() {
        let f = CaseFolder::new(None);
        for bad in ["../x", "/etc/passwd", "a/../../b", ""] {
            assert!(f.join(bad).is_err(), "{bad}");
        }
        assert!(f.keep("srv", "../x", b"").is_err());
        assert!(f.join("a/b.txt").is_ok());
    }
}
