//! The YAML layer every reader shares: a tree with a location on every node, `${var}` templates,
//! the loading context that records problems as `file:line:col` diagnostics, and their rendering.
//!
//! It knows nothing of suites or protocols, so the suite loader, the grader's assignment files and
//! each protocol's `steps.rs` build on it without depending on each other.

mod cx;
mod diagnostic;
mod source;
mod template;
pub mod yaml;

pub use cx::{first_line, parse_duration, parse_hex, unescape, Fields, Fixture, LoadCx, MAX_FIXTURE};
pub use diagnostic::{did_you_mean, snippet, Diagnostic, SuiteErrors};
pub use source::{read_source, Loc, ReadError, SourceFile, MAX_SOURCE};
pub use template::{Template, Vars};
pub use yaml::{Data, Node};
