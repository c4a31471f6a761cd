//! Grading: assignment files, the build gate, scoring, per-platform reports, rosters and shards.
//!
//! `wirecheck grade` copies a submission into a temporary folder, runs the assignment's build,
//! runs each part's suite through the ordinary runner (`run::run`) against the started program,
//! and scores every planned case; reports list every case whatever happened. As root on Linux
//! each submission is graded by a worker process in a sandbox of its own (`worker`, `run::jail`).

pub mod assignment;
pub mod build;
pub mod formats;
pub mod grader;
pub mod roster;
pub mod score;
pub mod worker;
pub mod workspace;
