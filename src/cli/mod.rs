//! The commands behind `wirecheck`'s command line. Each takes its arguments as clap parsed
//! them and first resolves them into checked options (suites loaded, `--target` resolved,
//! limits, users and report paths checked): a usage error exits 2 before any case, build or
//! replay starts. Then it runs and returns the exit status. `main.rs` holds the command
//! grammar, the `--isolate` step that must precede the runtime, and the dispatch.

pub mod check;
pub mod decode;
mod error;
pub mod grade;
pub mod last_run;
pub mod list;
mod load;
pub mod run;
pub mod serve;

pub use error::{UsageError, USAGE};
