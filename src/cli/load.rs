//! What several commands read before they do anything: suites (by name or path) and capture
//! files, their problems as [`UsageError`]s.

use std::path::Path;
use std::sync::Arc;

use super::error::UsageError;
use crate::capture::{self, Capture};
use crate::suite::{self, Suite};

/// Loads the suites `names` give (none: every suite); every file's diagnostics are collected.
pub fn suites(names: &[String]) -> Result<Vec<Arc<Suite>>, UsageError> {
    let mut loaded = Vec::new();
    let mut failed = Vec::new();
    for p in suite::resolve(names)? {
        match suite::load_file(&p) {
            Ok(s) => loaded.push(Arc::new(s)),
            Err(e) => failed.push(e),
        }
    }
    if failed.is_empty() {
        Ok(loaded)
    } else {
        Err(UsageError::Suites(failed))
    }
}

/// The `--port N=PROTO` choices of `decode` and `check`.
pub fn capture_options(ports: &[String]) -> Result<capture::Options, UsageError> {
    capture::Options::from_args(ports).map_err(UsageError::CapturePorts)
}

/// Decodes a capture file, printing its warnings (what the decoder had to skip or guess).
pub fn capture(path: &Path, opts: &capture::Options) -> Result<Capture, UsageError> {
    let cap = capture::decode_file(path, opts).map_err(|source| UsageError::CaptureFile {
        path: path.to_path_buf(),
        source,
    })?;
    for w in &cap.warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    Ok(cap)
}
