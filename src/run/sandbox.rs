//! How an untrusted program under test is confined: resource limits, the user it runs as, its folder.
//!
//! The types are the contract between the grader (which fills them from an assignment) and the
//! process launcher (which applies them when it spawns a program); see `Program::spawn`.

use std::path::PathBuf;
use std::time::Duration;

/// Resource limits applied (setrlimit) to every program a target starts; `None` leaves a limit as inherited.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// CPU time per process (RLIMIT_CPU).
    pub cpu: Option<Duration>,
    /// Address space in bytes (RLIMIT_AS).
    pub memory: Option<u64>,
    /// Processes of the user the program runs as (RLIMIT_NPROC).
    pub processes: Option<u64>,
    /// Open file descriptors (RLIMIT_NOFILE).
    pub open_files: Option<u64>,
    /// Largest file the program may write, in bytes (RLIMIT_FSIZE).
    pub file_size: Option<u64>,
}

/// Who runs the program.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RunAs {
    /// Whoever runs wirecheck (the default when not root).
    #[default]
    Inherit,
    /// A named unprivileged user (used only when wirecheck runs as root).
    User(String),
}

/// Everything about how a started program is confined.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    /// Resource limits.
    pub limits: Limits,
    /// The user it runs as.
    pub run_as: RunAs,
    /// Its working folder (None: wirecheck's).
    pub cwd: Option<PathBuf>,
}
