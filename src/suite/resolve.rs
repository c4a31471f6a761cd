//! Finds suite files: a name (`tcp-upper`) under the suites folder, or a path.

use std::path::{Path, PathBuf};

/// A suite argument that names nothing.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No file and no suite of that name.
    #[error("no suite named '{name}' (looked for {tried}){hint}")]
    NotFound {
        /// What the user gave.
        name: String,
        /// Where we looked.
        tried: String,
        /// A suggestion.
        hint: String,
    },
    /// The suites folder is missing.
    #[error("no suites folder found (looked in ./suites, $WIRECHECK_SUITES and {0}); pass suite files by path")]
    NoSuitesDir(String),
}

/// The suites folder: `$WIRECHECK_SUITES`, `./suites`, or the one this binary was built with.
pub fn suites_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("WIRECHECK_SUITES").map(PathBuf::from),
        Some(PathBuf::from("suites")),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("suites")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_dir())
}

/// Every `*.yaml` suite in the folder, sorted by name.
fn all_suites(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    out.sort();
    out
}

/// Resolves suite arguments to files; no arguments means every suite.
pub fn resolve(args: &[String]) -> Result<Vec<PathBuf>, ResolveError> {
    let dir = suites_dir();
    if args.is_empty() {
        let dir = dir.ok_or_else(|| ResolveError::NoSuitesDir(env!("CARGO_MANIFEST_DIR").into()))?;
        return Ok(all_suites(&dir));
    }
    let mut out = Vec::new();
    for a in args {
        let p = PathBuf::from(a);
        if p.is_file() {
            out.push(p);
            continue;
        }
        let Some(dir) = &dir else {
            return Err(ResolveError::NotFound {
                name: a.clone(),
                tried: a.clone(),
                hint: String::new(),
            });
        };
        let named = dir.join(format!("{a}.yaml"));
        if named.is_file() {
            out.push(relative(&named));
            continue;
        }
        let known: Vec<String> = all_suites(dir)
            .iter()
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        let hint = super::did_you_mean(a, known.iter().map(String::as_str))
            .map(|h| format!("; {h}"))
            .unwrap_or_else(|| format!("; suites: {}", known.join(", ")));
        return Err(ResolveError::NotFound {
            name: a.clone(),
            tried: format!("{a} and {}", named.display()),
            hint,
        });
    }
    Ok(out)
}

/// Shows paths under the current folder without the folder, as users typed them.
fn relative(p: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(&cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| p.to_path_buf())
}
