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

/// Largest key log file read (a key log holds a few lines per connection).
const MAX_KEYLOG: u64 = 64 << 20;

/// The `--port N=PROTO` and `--keylog FILE` choices of `decode` and `check`.
pub fn capture_options(ports: &[String], keylog: Option<&Path>) -> Result<capture::Options, UsageError> {
    let mut opts = capture::Options::from_args(ports).map_err(UsageError::CapturePorts)?;
    if let Some(path) = keylog {
        let bad = |reason: String| UsageError::KeyLog {
            path: path.to_path_buf(),
            reason,
        };
        let size = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?.len();
        if size > MAX_KEYLOG {
            return Err(bad(format!("{size} bytes, over the {MAX_KEYLOG} a key log may have")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let log = crate::proto::KeyLog::parse(&text).map_err(|e| bad(e.to_string()))?;
        opts.keylog = Some(std::sync::Arc::new(log));
    }
    Ok(opts)
}

/// The exit status of a capture decoded up to damage in the file (cut short or corrupt): what came
/// before it was decoded and printed or judged.
pub const DAMAGED: i32 = 4;

/// Says where `cap`'s file is damaged, if it is; `code` is the command's status otherwise, which
/// a damaged file turns into [`DAMAGED`] unless it already failed.
pub fn damage_status(path: &Path, cap: &Capture, code: i32) -> i32 {
    let Some(e) = &cap.damage else { return code };
    eprintln!("damaged: {}: {e}; everything before it is decoded", path.display());
    if code == 0 {
        DAMAGED
    } else {
        code
    }
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
