//! Suites: the model, loading with `file:line:col` errors (on the `syntax` layer) and the linter.

mod lint;
mod load;
mod model;
mod resolve;

pub use crate::proto::Transport;
pub use crate::syntax::{did_you_mean, parse_duration, Diagnostic, Loc, SourceFile, SuiteErrors, Template, Vars};
pub use lint::BUILTIN_VARS;
pub use load::{load_file, load_str, STEP_KEYWORDS};
pub use model::*;
pub use resolve::{resolve, suites_dir, ResolveError};
