//! How an untrusted program under test is confined: resource limits, the user it runs as, its folder.
//!
//! The types are the contract between the grader (which fills them from an assignment) and the
//! process launcher (which applies them when it spawns a program); see `Program::spawn`.
//!
//! What each part does, and why it is done where it is:
//! - [`Limits`] become `setrlimit` calls in the child between `fork` and `exec` (so they bind the
//!   program and everything it starts, never wirecheck), set before privileges are dropped so root
//!   may raise a hard limit.
//! - [`RunAs::User`] drops to that user (supplementary groups cleared, then gid, then uid) in the
//!   same place; the user is looked up *before* `fork`, because `getpwnam` is not
//!   async-signal-safe. Only root can switch users, so for anyone else it is ignored.
//! - [`explain`] turns how a program ended (a signal, a line of stderr) into the limit that
//!   stopped it, for the failure report.
//! - [`isolate_network`] moves wirecheck and all it starts into a private network namespace.
//!
//! Killing everything a program started (even what left its process group with `setsid`) is
//! `process`'s job: wirecheck is a child subreaper, see `process::Program::kill`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::resource::Resource;

use super::child::{spawn_lock, Exit};

/// Resource limits applied (setrlimit) to every program a target starts; `None` leaves a limit as inherited.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// CPU time per process (RLIMIT_CPU, whole seconds, rounded up): SIGXCPU at the limit, SIGKILL a second later.
    pub cpu: Option<Duration>,
    /// Address space in bytes (RLIMIT_AS): allocations beyond it fail (Python: MemoryError).
    pub memory: Option<u64>,
    /// Processes of the user the program runs as (RLIMIT_NPROC): `fork` fails with EAGAIN beyond it.
    ///
    /// The kernel counts every process of the *real uid*, not of the program, and ignores the
    /// limit for root: it only bites when the program runs as an unprivileged user
    /// ([`RunAs::User`], best a dedicated one such as [`DEDICATED_USER`] that nothing else uses).
    /// Run as your own user, your shell, editor and wirecheck itself count against it.
    pub processes: Option<u64>,
    /// Open file descriptors (RLIMIT_NOFILE): `open`/`accept` fail with EMFILE beyond it.
    pub open_files: Option<u64>,
    /// Largest file the program may write, in bytes (RLIMIT_FSIZE): SIGXFSZ, or EFBIG where it is ignored (Python).
    pub file_size: Option<u64>,
    /// Disk space of the whole submission in the grading sandbox: the size of its private
    /// `/tmp` tmpfs, which holds its copy and all it writes (ENOSPC beyond it). Grading only.
    #[serde(default)]
    pub disk: Option<u64>,
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

/// The user wirecheck creates (when root and asked for it by name) to run untrusted programs as.
///
/// A dedicated user makes RLIMIT_NPROC count only the programs under test, and keeps them from
/// signalling or reading anything of another user's processes. It is created with
/// `useradd --system --no-create-home --shell /usr/sbin/nologin wirecheck-sandbox`.
pub const DEDICATED_USER: &str = "wirecheck-sandbox";

/// The keys `--limit KEY=VALUE` accepts, with an example value each (for messages and help).
pub const LIMIT_KEYS: &str = "cpu=2s, memory=256M, processes=64, open-files=256, file-size=10M";

/// Why a program could not be confined as asked; every message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A `--limit KEY=VALUE` (or assignment limit) that does not parse.
    #[error("--limit '{given}': {reason} (accepted: {LIMIT_KEYS}; sizes take K, M or G, durations s or ms)")]
    BadLimit {
        /// What was given.
        given: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The user to run as does not exist.
    #[error(
        "user '{0}' does not exist: create it (useradd --system --no-create-home --shell /usr/sbin/nologin {0}) or use '{DEDICATED_USER}', which wirecheck creates when missing"
    )]
    NoSuchUser(String),
    /// The user to run as is root, which confines nothing.
    #[error("user '{0}' is root (uid 0): name an unprivileged user such as '{DEDICATED_USER}'")]
    RootUser(String),
    /// Looking up or creating the user failed.
    #[error("cannot set up user '{name}': {reason}")]
    User {
        /// The user.
        name: String,
        /// What failed.
        reason: String,
    },
    /// The program's folder does not exist.
    #[error("the program's folder {0} does not exist")]
    NoFolder(PathBuf),
    /// The user cannot enter or read the program's folder.
    #[error(
        "user '{user}' cannot {what} {path}, so the program could not read its files: copy the submission into a folder that user owns (wirecheck::run::sandbox::prepare_dir does), or make it readable (chmod o+rx on {path} and every folder above it, chmod -R o+rX on the submission)"
    )]
    Unreadable {
        /// The user.
        user: String,
        /// The folder that is in the way.
        path: PathBuf,
        /// "enter" (no x on a folder above) or "read" (no r+x on the folder itself).
        what: &'static str,
    },
    /// Copying a submission for the user failed.
    #[error("cannot prepare a copy of {path} for the program: {source}")]
    Prepare {
        /// What was being copied.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The program could not be started.
    #[error("cannot start '{command}': {reason}")]
    Spawn {
        /// The command.
        command: String,
        /// Why (with the limit that explains it, when one does).
        reason: String,
    },
    /// `--isolate` was refused by the kernel for want of privileges.
    #[error("--isolate needs root (CAP_SYS_ADMIN) to create a network namespace: run wirecheck as root (sudo), or drop --isolate")]
    IsolateNotPermitted,
    /// `--isolate` on a system without network namespaces.
    #[error("--isolate needs Linux network namespaces, which this system does not have: drop --isolate")]
    IsolateUnsupported,
    /// `--isolate` failed otherwise.
    #[error("--isolate: {what} failed: {source}")]
    Isolate {
        /// The step that failed.
        what: &'static str,
        /// The error.
        source: nix::Error,
    },
}

/// Parses a size: a number with an optional K, M or G suffix (binary: 1K = 1024; `KiB`, `MB`,
/// lower case and a trailing `B` are accepted too).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("'{s}' is not a size"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix("ib").or_else(|| unit.strip_suffix('b')).unwrap_or(&unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        u => return Err(format!("unknown size unit '{u}' in '{s}' (use K, M or G)")),
    };
    let bytes = n * mult as f64;
    if !(1.0..=(1u64 << 50) as f64).contains(&bytes) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(bytes as u64)
}

/// A size for people: `1 MiB`, `256 MiB`, `1.5 GiB`, `100 bytes`.
pub fn format_size(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size {
            let v = bytes as f64 / size as f64;
            return if bytes % size == 0 {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}

impl Limits {
    /// Sets one limit from `KEY=VALUE` (`cpu=2s`, `memory=256M`, `processes=64`,
    /// `open-files=256`, `file-size=10M`), as `--limit` gives it.
    pub fn set(&mut self, assignment: &str) -> Result<(), SandboxError> {
        let bad = |reason: String| SandboxError::BadLimit {
            given: assignment.to_string(),
            reason,
        };
        let (key, value) = assignment.split_once('=').ok_or_else(|| bad("not KEY=VALUE".into()))?;
        let count = |v: &str| -> Result<u64, SandboxError> {
            match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(bad(format!("'{v}' is not a positive whole number"))),
            }
        };
        match key.trim().replace('_', "-").as_str() {
            "cpu" => {
                let d = crate::suite::parse_duration(value).map_err(bad)?;
                if d.is_zero() {
                    return Err(bad("a CPU limit of 0 would stop every program at once".into()));
                }
                self.cpu = Some(d);
            }
            "memory" | "mem" => self.memory = Some(parse_size(value).map_err(bad)?),
            "processes" | "procs" | "nproc" => self.processes = Some(count(value)?),
            "open-files" | "files" | "nofile" => self.open_files = Some(count(value)?),
            "file-size" | "fsize" => self.file_size = Some(parse_size(value).map_err(bad)?),
            "disk" => self.disk = Some(parse_size(value).map_err(bad)?),
            k => return Err(bad(format!("unknown limit '{k}'"))),
        }
        Ok(())
    }

    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// The CPU limit in whole seconds as RLIMIT_CPU applies it (rounded up, at least 1).
    pub fn cpu_seconds(&self) -> Option<u64> {
        self.cpu.map(|d| d.as_secs_f64().ceil().max(1.0) as u64)
    }

    /// (resource, soft, hard) for every limit set. RLIMIT_CPU's hard limit is a second above the
    /// soft one so the program gets SIGXCPU (nameable, catchable) before the kernel's SIGKILL.
    fn rlimits(&self) -> Vec<(Resource, u64, u64)> {
        let mut out = Vec::new();
        if let Some(s) = self.cpu_seconds() {
            out.push((Resource::RLIMIT_CPU, s, s + 1));
        }
        let same = |r, v: Option<u64>| v.map(|v| (r, v, v));
        out.extend(same(Resource::RLIMIT_AS, self.memory));
        out.extend(same(Resource::RLIMIT_NPROC, self.processes));
        out.extend(same(Resource::RLIMIT_NOFILE, self.open_files));
        out.extend(same(Resource::RLIMIT_FSIZE, self.file_size));
        out
    }
}

/// A user's ids, looked up before `fork` (the child may only make async-signal-safe calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// The user id.
    pub uid: u32,
    /// The primary group id (the only group the program keeps).
    pub gid: u32,
}

/// Whether wirecheck runs as root (and so can switch users and create namespaces).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Looks up `name` in the user database (None: no such user).
pub fn lookup_user(name: &str) -> Result<Option<Ids>, SandboxError> {
    match nix::unistd::User::from_name(name) {
        Ok(u) => Ok(u.map(|u| Ids {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        })),
        Err(e) => Err(SandboxError::User {
            name: name.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Makes sure user `name` exists, creating it as a system user without a home or a login shell
/// (`useradd --system --no-create-home --shell /usr/sbin/nologin NAME`) when it is missing.
/// Needs root. Meant for [`DEDICATED_USER`]: a user only untrusted programs run as.
pub fn ensure_user(name: &str) -> Result<Ids, SandboxError> {
    if let Some(ids) = lookup_user(name)? {
        return Ok(ids);
    }
    let err = |reason: String| SandboxError::User {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name.starts_with('-') || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(err("not a valid user name".into()));
    }
    // No target may be killed-as-an-orphan while useradd runs as our child (process::sweep).
    let out = {
        let _lock = spawn_lock();
        std::process::Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name])
            .stdin(std::process::Stdio::null())
            .output()
    };
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => return Err(err(format!("useradd failed: {}", String::from_utf8_lossy(&o.stderr).trim()))),
        Err(e) => return Err(err(format!("cannot run useradd ({e}); create the user by hand"))),
    }
    lookup_user(name)?.ok_or_else(|| err("useradd succeeded but the user is still unknown".into()))
}

impl RunAs {
    /// The ids to switch to: None when inheriting or when not root (only root can switch).
    /// Creates [`DEDICATED_USER`] when it is named and missing; refuses root and unknown users.
    pub fn resolve(&self) -> Result<Option<Ids>, SandboxError> {
        let RunAs::User(name) = self else { return Ok(None) };
        if !is_root() {
            return Ok(None);
        }
        let ids = match lookup_user(name)? {
            Some(ids) => ids,
            None if name == DEDICATED_USER => ensure_user(name)?,
            None => return Err(SandboxError::NoSuchUser(name.clone())),
        };
        if ids.uid == 0 {
            return Err(SandboxError::RootUser(name.clone()));
        }
        Ok(Some(ids))
    }

    /// The user's name, for messages.
    pub fn name(&self) -> Option<&str> {
        match self {
            RunAs::Inherit => None,
            RunAs::User(n) => Some(n),
        }
    }
}

/// What the child applies between `fork` and `exec`, all of it computed before `fork`.
#[derive(Debug, Clone, Default)]
pub struct Confinement {
    rlimits: Vec<(Resource, u64, u64)>,
    ids: Option<Ids>,
}

impl Confinement {
    /// The user the program will run as, if it switches.
    pub fn ids(&self) -> Option<Ids> {
        self.ids
    }

    /// Forbids new privileges, applies the limits, then drops to the user. Runs in the forked
    /// child: only async-signal-safe calls (prctl, setrlimit, setgroups, setgid, setuid), no
    /// allocation.
    pub fn apply(&self) -> std::io::Result<()> {
        // No set-uid program (su, sudo, ping) raises what the program can do.
        // SAFETY: prctl with integer arguments only.
        if unsafe { nix::libc::prctl(nix::libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        for &(resource, soft, hard) in &self.rlimits {
            nix::sys::resource::setrlimit(resource, soft, hard)?;
        }
        if let Some(ids) = self.ids {
            // Groups first (needs root), then the gid (needs root), then the uid (after which
            // nothing can be changed back).
            // SAFETY: plain syscalls with no pointers but a null list of length 0.
            unsafe {
                if nix::libc::setgroups(0, std::ptr::null()) != 0 || nix::libc::setgid(ids.gid) != 0 || nix::libc::setuid(ids.uid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

impl Sandbox {
    /// Checks the sandbox can be applied and computes what the child will do: resolves (and,
    /// for [`DEDICATED_USER`], creates) the user, checks that user can enter and read the
    /// program's folder, clamps limits a non-root wirecheck could not raise.
    pub fn prepare(&self) -> Result<Confinement, SandboxError> {
        if let Some(cwd) = &self.cwd {
            if !cwd.is_dir() {
                return Err(SandboxError::NoFolder(cwd.clone()));
            }
        }
        let ids = self.run_as.resolve()?;
        if let (Some(ids), Some(name)) = (ids, self.run_as.name()) {
            let dir = match &self.cwd {
                Some(d) => d.clone(),
                None => std::env::current_dir().map_err(|e| SandboxError::Prepare {
                    path: PathBuf::from("."),
                    source: e,
                })?,
            };
            check_readable(&dir, ids).map_err(|(path, what)| SandboxError::Unreadable {
                user: name.to_string(),
                path,
                what,
            })?;
        }
        let root = is_root();
        let rlimits = self
            .limits
            .rlimits()
            .into_iter()
            .map(|(r, soft, hard)| {
                // Without privileges a hard limit can only be lowered: keep within the current one.
                match (root, nix::sys::resource::getrlimit(r)) {
                    (false, Ok((_, cur_hard))) => (r, soft.min(cur_hard), hard.min(cur_hard)),
                    _ => (r, soft, hard),
                }
            })
            .collect();
        Ok(Confinement { rlimits, ids })
    }

    /// Whether [`Sandbox::prepare`] would succeed (for an early usage error).
    pub fn check(&self) -> Result<(), SandboxError> {
        self.prepare().map(|_| ())
    }
}

/// Whether a process with `ids` (and no supplementary groups) may enter every folder down to
/// `dir` and read `dir`; if not, the folder in the way and what it lacks. Mode bits only (ACLs
/// are not consulted): a denial here is a denial for the program too, save an ACL grant.
fn check_readable(dir: &Path, ids: Ids) -> Result<(), (PathBuf, &'static str)> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let allowed = |p: &Path, want: u32| -> bool {
        let Ok(m) = std::fs::metadata(p) else { return false };
        let mode = m.permissions().mode();
        let bits = if m.uid() == ids.uid {
            mode >> 6
        } else if m.gid() == ids.gid {
            mode >> 3
        } else {
            mode
        };
        bits & want == want
    };
    for a in dir.ancestors().collect::<Vec<_>>().into_iter().rev() {
        let (want, what) = if a == dir { (0o5, "read") } else { (0o1, "enter") };
        if !allowed(a, want) {
            return Err((a.to_path_buf(), what));
        }
    }
    Ok(())
}

/// A private copy of a submission that the program's user owns; removed when dropped.
#[derive(Debug)]
pub struct PreparedDir {
    dir: tempfile::TempDir,
}

impl PreparedDir {
    /// The copy's folder: give it as [`Sandbox::cwd`].
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Copies the folder `src` to a new temporary folder owned (recursively) by the user of
/// `run_as`, so a program that runs as that user can read (and write) its submission wherever
/// the original lies. Symbolic links are copied as links, never followed: a submission that
/// links to `/etc/shadow` must not get root to copy the file for it. Other special files
/// (fifos, devices, sockets) are left out. With [`RunAs::Inherit`] or when not root the copy
/// keeps wirecheck's owner.
pub fn prepare_dir(src: &Path, run_as: &RunAs) -> Result<PreparedDir, SandboxError> {
    let ids = run_as.resolve()?;
    let wrap = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SandboxError::Prepare { path, source }
    };
    if !src.is_dir() {
        return Err(SandboxError::NoFolder(src.to_path_buf()));
    }
    let dir = tempfile::Builder::new().prefix("wirecheck-").tempdir().map_err(wrap(src))?;
    copy_tree(src, dir.path(), ids).map_err(wrap(src))?;
    if let Some(ids) = ids {
        std::os::unix::fs::lchown(dir.path(), Some(ids.uid), Some(ids.gid)).map_err(wrap(dir.path()))?;
    }
    Ok(PreparedDir { dir })
}

fn copy_tree(src: &Path, dst: &Path, ids: Option<Ids>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&from)?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if ft.is_dir() {
            std::fs::create_dir(&to)?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(meta.permissions().mode() & 0o777 | 0o700))?;
            copy_tree(&from, &to, ids)?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to)?;
            // No set-id bits on a copy root made.
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(meta.permissions().mode() & 0o777 | 0o600))?;
        } else {
            continue;
        }
        if let Some(ids) = ids {
            std::os::unix::fs::lchown(&to, Some(ids.uid), Some(ids.gid))?;
        }
    }
    Ok(())
}

/// Which limit stopped a program, from how it ended and the end of its stderr; None when no
/// limit that was set explains it. Only limits that were set are named: a MemoryError without
/// a memory limit is the program's own business.
///
/// Signals say it outright (SIGXCPU, SIGXFSZ); otherwise the error text does, because most
/// runtimes catch the failed system call and die with a message instead (Python ignores
/// SIGXFSZ and raises `OSError: File too large`, turns a failed allocation into `MemoryError`
/// and a failed fork into `BlockingIOError`). A SIGKILL is the CPU limit's only when the program
/// used that much CPU (`cpu_used`, read as it ended): no limit of the sandbox sends SIGKILL
/// otherwise, so one that came earlier was sent by a process, and the report says so. Neither a
/// SIGKILL nor a SIGSEGV is blamed on the memory limit (RLIMIT_AS makes allocations fail; it
/// kills nothing).
pub fn explain(exit: Option<Exit>, stderr_tail: &str, limits: &Limits, cpu_used: Option<Duration>) -> Option<String> {
    use nix::sys::signal::Signal;
    let sig = match exit {
        Some(Exit::Signal(s)) => Signal::try_from(s).ok(),
        // A shell between wirecheck and the program (`sh -c`, a pyenv shim) reports a child
        // killed by signal N as status 128+N.
        Some(Exit::Code(c)) if c > 128 => Signal::try_from(c - 128).ok(),
        _ => None,
    };
    let cpu = limits.cpu_seconds().map(|s| format!("CPU time limit ({s}s) exceeded"));
    let fsize = limits.file_size.map(|b| format!("file size limit ({}) exceeded", format_size(b)));
    let memory = limits
        .memory
        .map(|b| format!("memory limit ({}) exceeded (allocation failed)", format_size(b)));
    let procs = limits.processes.map(|n| format!("process limit ({n}) reached (fork failed)"));
    let files = limits.open_files.map(|n| format!("open files limit ({n}) reached"));
    match sig {
        Some(Signal::SIGXCPU) => return cpu,
        Some(Signal::SIGXFSZ) => return fsize,
        _ => {}
    }
    let text = stderr_tail.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    // What shells print for a child killed by SIGXCPU or SIGXFSZ.
    if cpu.is_some() && has(&["cpu time limit exceeded"]) {
        return cpu;
    }
    if fsize.is_some() && has(&["file size limit exceeded"]) {
        return fsize;
    }
    if fsize.is_some() && has(&["file too large", "efbig"]) {
        return fsize;
    }
    if memory.is_some()
        && has(&[
            "memoryerror",
            "cannot allocate memory",
            "bad_alloc",
            "out of memory",
            "outofmemoryerror",
            "memory allocation of",
            "enomem",
        ])
    {
        return memory;
    }
    if procs.is_some()
        && has(&["resource temporarily unavailable", "blockingioerror", "eagain"])
        && has(&["fork", "thread", "spawn", "popen", "multiprocessing"])
    {
        return procs;
    }
    if files.is_some() && has(&["too many open files", "emfile"]) {
        return files;
    }
    match (sig, limits.cpu_seconds(), cpu_used) {
        // The hard CPU limit (a second after SIGXCPU, for a program that ignored it).
        (Some(Signal::SIGKILL), Some(s), Some(used)) if used.as_secs_f64() + 0.05 >= s as f64 => cpu,
        (Some(Signal::SIGKILL), ..) => Some(format!(
            "killed by SIGKILL that a process sent (the program itself or another){}, not by a limit of the sandbox",
            match cpu_used {
                Some(used) => format!(" after {:.1}s of CPU", used.as_secs_f64()),
                None => String::new(),
            }
        )),
        _ => None,
    }
}

/// Moves wirecheck into a new network namespace with only a loopback interface, brought up,
/// so that the programs it starts can reach nothing but each other and the harness (and
/// nothing outside can reach them). Call it before any thread exists (before the tokio
/// runtime): a namespace belongs to the thread that creates it and to threads created after.
/// Linux only, and needs root (CAP_SYS_ADMIN).
pub fn isolate_network() -> Result<(), SandboxError> {
    #[cfg(target_os = "linux")]
    {
        use nix::errno::Errno;
        use nix::sched::{unshare, CloneFlags};
        match unshare(CloneFlags::CLONE_NEWNET) {
            Ok(()) => {}
            Err(Errno::EPERM) => return Err(SandboxError::IsolateNotPermitted),
            Err(Errno::EINVAL | Errno::ENOSYS) => return Err(SandboxError::IsolateUnsupported),
            Err(e) => {
                return Err(SandboxError::Isolate {
                    what: "unshare(CLONE_NEWNET)",
                    source: e,
                })
            }
        }
        loopback_up()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(SandboxError::IsolateUnsupported)
    }
}

/// Sets IFF_UP on `lo` with the SIOCGIFFLAGS/SIOCSIFFLAGS ioctls (a new namespace's loopback
/// starts down), without depending on the `ip` binary.
#[cfg(target_os = "linux")]
pub(crate) fn loopback_up() -> Result<(), SandboxError> {
    use nix::errno::Errno;
    use nix::libc;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    /// `struct ifreq`: the name, then a 24-byte union of which we use the flags.
    #[repr(C)]
    struct IfReq {
        name: [libc::c_char; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let fail = |what| move |source| SandboxError::Isolate { what, source };
    // SAFETY: socket(2) with constant arguments; the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    let fd = match Errno::result(raw) {
        // SAFETY: a fresh fd nobody else owns.
        Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
        Err(e) => return Err(fail("socket")(e)),
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    for (d, s) in req.name.iter_mut().zip(b"lo") {
        *d = *s as libc::c_char;
    }
    // SAFETY: `req` is a valid, writable ifreq (40 bytes) for the duration of each call.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) }).map_err(fail("SIOCGIFFLAGS on lo"))?;
    req.flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: as above.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) }).map_err(fail("SIOCSIFFLAGS on lo"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("10m"), Ok(10 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5T").unwrap_err().contains("unknown size unit"));
        assert!(parse_size("0").is_err());
        assert_eq!(format_size(1 << 20), "1 MiB");
        assert_eq!(format_size(256 << 20), "256 MiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
        assert_eq!(format_size(100), "100 bytes");
    }

    #[test]
    fn limits_parse_from_key_value() {
        let mut l = Limits::default();
        for a in [
            "cpu=2s",
            "memory=256M",
            "processes=64",
            "open-files=256",
            "file-size=10M",
            "disk=64M",
        ] {
            l.set(a).unwrap();
        }
        assert_eq!(
            l,
            Limits {
                cpu: Some(Duration::from_secs(2)),
                memory: Some(256 << 20),
                processes: Some(64),
                open_files: Some(256),
                file_size: Some(10 << 20),
                disk: Some(64 << 20),
            }
        );
        l.set("cpu=1500ms").unwrap();
        assert_eq!(l.cpu_seconds(), Some(2), "RLIMIT_CPU has whole seconds: round up");
        let e = Limits::default().set("colour=3").unwrap_err().to_string();
        assert!(e.contains("unknown limit 'colour'") && e.contains("cpu=2s"), "{e}");
        let e = Limits::default().set("cpu=fast").unwrap_err().to_string();
        assert!(e.contains("--limit 'cpu=fast'"), "{e}");
        assert!(Limits::default().set("processes=-1").is_err());
        assert!(Limits::default().set("memory").is_err());
    }

    #[test]
    fn rlimits_give_sigxcpu_a_second_before_sigkill() {
        let l = Limits {
            cpu: Some(Duration::from_secs(2)),
            file_size: Some(1 << 20),
            ..Limits::default()
        };
        assert_eq!(
            l.rlimits(),
            vec![(Resource::RLIMIT_CPU, 2, 3), (Resource::RLIMIT_FSIZE, 1 << 20, 1 << 20)]
        );
    }

    #[test]
    fn explain_names_the_limit() {
        let all = Limits {
            cpu: Some(Duration::from_secs(2)),
            memory: Some(256 << 20),
            processes: Some(64),
            open_files: Some(256),
            file_size: Some(1 << 20),
            disk: None,
        };
        let sig = |s: nix::sys::signal::Signal| Some(Exit::Signal(s as i32));
        use nix::sys::signal::Signal::*;
        let e = |exit, tail: &str| explain(exit, tail, &all, None);
        assert_eq!(e(sig(SIGXCPU), "").as_deref(), Some("CPU time limit (2s) exceeded"));
        assert_eq!(e(sig(SIGXFSZ), "").as_deref(), Some("file size limit (1 MiB) exceeded"));
        assert_eq!(
            e(Some(Exit::Code(128 + 24)), "").as_deref(),
            Some("CPU time limit (2s) exceeded"),
            "sh's 128+SIGXCPU"
        );
        assert_eq!(
            e(None, "sh: 1: CPU time limit exceeded").as_deref(),
            Some("CPU time limit (2s) exceeded")
        );
        assert_eq!(
            e(Some(Exit::Code(1)), "OSError: [Errno 27] File too large").as_deref(),
            Some("file size limit (1 MiB) exceeded")
        );
        assert_eq!(
            e(Some(Exit::Code(1)), "Traceback ...\nMemoryError").as_deref(),
            Some("memory limit (256 MiB) exceeded (allocation failed)")
        );
        // A crash is the program's, limit or not.
        assert_eq!(e(sig(SIGSEGV), "").as_deref(), None);
        assert_eq!(
            e(
                Some(Exit::Code(1)),
                "    pid = os.fork()\nBlockingIOError: [Errno 11] Resource temporarily unavailable"
            )
            .as_deref(),
            Some("process limit (64) reached (fork failed)")
        );
        assert_eq!(
            e(None, "OSError: [Errno 24] Too many open files").as_deref(),
            Some("open files limit (256) reached")
        );
        // A non-blocking socket's EAGAIN is not a fork failure.
        assert_eq!(
            e(Some(Exit::Code(1)), "BlockingIOError: [Errno 11] Resource temporarily unavailable"),
            None
        );
        // Limits that were not set explain nothing.
        let none = Limits::default();
        assert_eq!(explain(sig(SIGXCPU), "MemoryError", &none, None), None);
        assert_eq!(explain(Some(Exit::Code(0)), "", &all, None), None);
        let cpu_only = Limits {
            cpu: Some(Duration::from_secs(1)),
            ..Limits::default()
        };
        assert_eq!(
            explain(sig(SIGKILL), "", &cpu_only, Some(Duration::from_millis(2000))).as_deref(),
            Some("CPU time limit (1s) exceeded")
        );
        // A SIGKILL before the program used its CPU time came from someone else.
        let outside =
            "killed by SIGKILL that a process sent (the program itself or another) after 0.2s of CPU, not by a limit of the sandbox";
        assert_eq!(
            explain(sig(SIGKILL), "", &cpu_only, Some(Duration::from_millis(200))).as_deref(),
            Some(outside)
        );
        assert_eq!(
            explain(sig(SIGKILL), "", &all, Some(Duration::from_millis(200))).as_deref(),
            Some(outside)
        );
    }

    #[test]
    fn readable_check_follows_mode_bits() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("sub");
        std::fs::create_dir(&inner).unwrap();
        let someone = Ids { uid: 54321, gid: 54321 };
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o755)).unwrap();
        // /tmp and the folders above it are traversable; dir has x for others: inner is readable.
        assert_eq!(check_readable(&inner, someone), Ok(()));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(check_readable(&inner, someone), Err((dir.path().canonicalize().unwrap(), "enter")));
        assert_eq!(
            check_readable(dir.path(), someone),
            Err((dir.path().canonicalize().unwrap(), "read"))
        );
    }

    #[test]
    fn prepared_copy_keeps_links_as_links_and_belongs_to_the_user() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("server.py"), "print(1)\n").unwrap();
        std::fs::create_dir(src.path().join("www")).unwrap();
        std::fs::write(src.path().join("www/index.html"), "<p>hi</p>").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("leak")).unwrap();
        std::fs::set_permissions(src.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let nobody = lookup_user("nobody").ok().flatten();
        let run_as = match nobody {
            Some(_) if is_root() => RunAs::User("nobody".into()),
            _ => {
                eprintln!("prepare_dir: not root or no user 'nobody': checking the copy without a change of owner");
                RunAs::Inherit
            }
        };
        let copy = prepare_dir(src.path(), &run_as).unwrap();
        let p = copy.path();
        assert_eq!(std::fs::read_to_string(p.join("www/index.html")).unwrap(), "<p>hi</p>");
        let link = std::fs::symlink_metadata(p.join("leak")).unwrap();
        assert!(link.file_type().is_symlink(), "a link must stay a link");
        if let (RunAs::User(_), Some(ids)) = (&run_as, nobody) {
            for f in [
                p.to_path_buf(),
                p.join("server.py"),
                p.join("www"),
                p.join("www/index.html"),
                p.join("leak"),
            ] {
                let m = std::fs::symlink_metadata(&f).unwrap();
                assert_eq!((m.uid(), m.gid()), (ids.uid, ids.gid), "{}", f.display());
            }
            assert_eq!(check_readable(p, ids), Ok(()));
        }
        let path = p.to_path_buf();
        drop(copy);
        assert!(!path.exists());
    }
}
