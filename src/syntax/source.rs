//! Where a YAML value came from: the file and the position in it.

use std::path::PathBuf;

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
