//! Where a YAML value came from: the file and the position in it.

use std::path::{Path, PathBuf};

/// A suite file's path (as the user named it) and text, kept for error snippets.
#[derive(Debug)]
pub struct SourceFile {
    /// Path as shown to the user (relative where possible).
    pub path: PathBuf,
    /// The whole file.
    pub text: String,
}

/// A position in a suite file: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Loc {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
    /// Length of the marked text in characters (at least 1 when shown).
    #[serde(skip)]
    pub len: u32,
}

/// The largest suite or assignment file read: real ones are a few hundred kilobytes, and the
/// whole text is kept (for snippets) beside the tree built from it.
pub const MAX_SOURCE: u64 = 16 << 20;

/// Why a suite or assignment file was not read; each says so in full.
#[derive(Debug)]
pub enum ReadError {
    /// Missing, unreadable or not UTF-8.
    Unreadable(String),
    /// Over [`MAX_SOURCE`].
    TooLarge(String),
}

/// Reads a suite or assignment file (`what` names which in messages), refusing one over
/// [`MAX_SOURCE`] before reading it.
pub fn read_source(path: &Path, what: &str) -> Result<String, ReadError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| ReadError::Unreadable(format!("cannot read the {what} file: {e}")))?;
    let too_big = |size: u64| {
        ReadError::TooLarge(format!(
            "the {what} file is {} ({size} bytes), over the {} limit for suite and assignment files; split it into smaller files",
            mib(size),
            mib(MAX_SOURCE)
        ))
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if size > MAX_SOURCE {
        return Err(too_big(size));
    }
    // The length may be unknown (a pipe) or grow while read: never read past the limit.
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_SOURCE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Unreadable(format!("cannot read the {what} file: {e}")))?;
    if bytes.len() as u64 > MAX_SOURCE {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        ReadError::Unreadable(format!(
            "cannot read the {what} file: it is not UTF-8 text (invalid bytes at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}
