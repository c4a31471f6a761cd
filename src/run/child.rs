//! What wirecheck keeps about the children it starts, shared by `process` (programs under
//! test) and `sandbox` (`useradd`, and naming the limit that ended a program): how a child
//! ended, and the registry of the children tokio reaps, which a sweep must not take for orphans.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use nix::sys::signal::Signal;

/// How a program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit status {c}"),
            Exit::Signal(s) => {
                let name = Signal::try_from(*s).map(|s| s.as_str()).unwrap_or("?");
                write!(f, "signal {s} ({name})")
            }
        }
    }
}

/// Pids of the programs wirecheck started and tokio will reap: not orphans to kill or reap.
/// Counted, because a reaped pid may be reused by the next program before its old entry goes.
static ROOTS: Mutex<Option<HashMap<i32, usize>>> = Mutex::new(None);

/// Held while a program is forked and registered, and while a sweep looks for orphans: a
/// child that is not yet registered must not be taken for an adopted orphan. Also held by
/// anything else that runs a child of wirecheck (`sandbox::ensure_user`'s `useradd`).
pub(crate) fn spawn_lock() -> MutexGuard<'static, Option<HashMap<i32, usize>>> {
    ROOTS.lock().unwrap_or_else(|e| e.into_inner())
}
