//! Suites: the YAML model, loading with `file:line:col` errors, the linter and `${var}` templates.

mod diagnostic;
mod lint;
mod load;
mod model;
mod resolve;
mod template;
pub mod yaml;

pub use diagnostic::{did_you_mean, Diagnostic, SuiteErrors};
pub use lint::BUILTIN_VARS;
pub use load::{load_file, load_str, parse_duration, parse_hex, unescape, Fields, LoadCx, STEP_KEYWORDS};
pub use model::*;
pub use resolve::{resolve, suites_dir, ResolveError};
pub use template::{Template, Vars};
pub use yaml::{Data, Node};
