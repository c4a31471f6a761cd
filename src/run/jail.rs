//! One submission's sandbox: the process that grades it runs in PID, mount, network, IPC and UTS
//! namespaces of its own (Linux, root), the way bubblewrap and nsjail confine a program, so
//! that what one submission does cannot reach another or outlive its grading.
//!
//! Why a whole grading process, not just the program: the harness talks to the program over
//! the loopback, so both must be in one network namespace, and a network namespace belongs to
//! a process (and the threads it starts afterwards). So `wirecheck grade` starts one worker
//! process per submission (`grade-worker`), and the worker enters the namespaces before its
//! runtime's threads exist. What the namespaces give:
//! - PID: the worker is process 1 of its namespace. It sees only its own programs, they see
//!   nothing of the grader or of other submissions (no `kill`, no `/proc/N/cmdline`), and when
//!   the worker ends the kernel kills every process left in the namespace, however it detached,
//!   double-forked or renamed itself.
//! - mount: a new `/proc` (of the namespace), a private `/tmp` on a tmpfs of a fixed size (the
//!   disk quota: the copy of the submission and everything the program writes live there; the
//!   same tmpfs backs `/dev/shm` and `/var/tmp`), and once the submission is copied, empty
//!   read-only mounts over the original submission folder and the reports folder ([`hide`]).
//! - network: a loopback of its own, so concurrent submissions cannot reach each other's ports.
//! - IPC, UTS: no shared System V objects; a host name of its own.
//!
//! The programs run as a user of their own per concurrent job, with no new privileges
//! (`PR_SET_NO_NEW_PRIVS`, in [`super::sandbox::Confinement::apply`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::mount::{mount, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// The disk quota when the assignment sets none: the size of the submission's private `/tmp`.
pub const DEFAULT_DISK: u64 = 512 * 1024 * 1024;

/// The exit status of a worker that could not enter its namespaces (the grader then says so
/// once and grades without them).
pub const NO_JAIL: i32 = 97;

/// Why the namespaces could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source} (needs Linux and root with CAP_SYS_ADMIN, e.g. not a container started without it)")]
pub struct JailError {
    /// The step that failed.
    pub what: String,
    /// The system's error.
    #[source]
    pub source: nix::Error,
}

fn step(what: impl Into<String>) -> impl FnOnce(nix::Error) -> JailError {
    let what = what.into();
    move |source| JailError { what, source }
}

/// The inner process's pid, for the outer one's signal handler.
static INNER: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: nix::libc::c_int) {
    let pid = INNER.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe {
            nix::libc::kill(pid, sig);
        }
    }
}

/// Enters new namespaces with a private `/tmp` of `disk` bytes. Call before any thread exists.
///
/// The calling process stays outside as a waiter: it forwards SIGINT, SIGTERM and SIGHUP to the
/// process inside and exits as that one does (this function does not return there). The
/// process inside returns Ok as process 1 of the new PID namespace, with its mounts made; if
/// the waiter dies, the kernel kills it (`PR_SET_PDEATHSIG`), and with it the namespace.
///
/// `keep` are paths grading reads (the project, the assignment, the submission): where one lies
/// under `/tmp`, `/var/tmp` or `/dev/shm`, it is mounted again at its own path on the private
/// one, so a project checked out under `/tmp` still works.
pub fn enter(disk: u64, keep: &[PathBuf]) -> Result<(), JailError> {
    let flags =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWPID;
    nix::sched::unshare(flags).map_err(step("unshare (new namespaces)"))?;
    // SAFETY: no thread exists yet (the caller's contract), so the child may do anything.
    match unsafe { fork() }.map_err(step("fork (the namespace's first process)"))? {
        ForkResult::Parent { child } => wait_and_exit(child),
        ForkResult::Child => {
            // (getppid is 0 in a new PID namespace, so the race with a waiter that died first
            // cannot be checked here; the waiter only waits, and its reader's pipe ends too.)
            // SAFETY: prctl with integer arguments only.
            unsafe {
                nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL, 0, 0, 0);
            }
            inside(disk, keep)
        }
    }
}

/// The waiter outside: forwards the signals that stop a grading, then exits as the inside did.
fn wait_and_exit(child: Pid) -> ! {
    INNER.store(child.as_raw(), Ordering::SeqCst);
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only loads an atomic and calls kill.
        let _ = unsafe { signal::signal(sig, SigHandler::Handler(forward)) };
    }
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => std::process::exit(128 + sig as i32),
            Err(nix::Error::EINTR) | Ok(_) => continue,
            Err(_) => std::process::exit(1),
        }
    }
}

/// Inside: mounts the namespace's own `/proc`, the private `/tmp` (and `/dev/shm`, `/var/tmp`
/// on it), brings the loopback up and names the host.
fn inside(disk: u64, keep: &[PathBuf]) -> Result<(), JailError> {
    // Nothing mounted here propagates back to the host.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).map_err(step("making / private"))?;
    let plain = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(Some("proc"), "/proc", Some("proc"), plain | MsFlags::MS_NOEXEC, None::<&str>).map_err(step("mounting /proc"))?;
    let opts = format!("size={disk},mode=1777");
    cover(Path::new("/tmp"), keep, || {
        mount(Some("tmpfs"), "/tmp", Some("tmpfs"), plain, Some(opts.as_str())).map_err(step("mounting a private /tmp"))
    })?;
    for (dir, on) in [(".shm", "/dev/shm"), (".var-tmp", "/var/tmp")] {
        if !Path::new(on).is_dir() {
            continue;
        }
        let backing = Path::new("/tmp").join(dir);
        std::fs::create_dir(&backing).map_err(|e| JailError {
            what: format!("creating {}", backing.display()),
            source: nix::Error::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            &backing,
            nix::sys::stat::Mode::from_bits_truncate(0o1777),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(step(format!("chmod {}", backing.display())))?;
        cover(Path::new(on), keep, || {
            mount(Some(&backing), on, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(step(format!("mounting {on}")))
        })?;
    }
    // SAFETY: no thread exists yet, so changing the environment races with nothing.
    unsafe {
        std::env::set_var("TMPDIR", "/tmp");
    }
    super::sandbox::loopback_up().map_err(|e| JailError {
        what: format!("bringing the loopback up ({e})"),
        source: nix::Error::EPERM,
    })?;
    let _ = nix::unistd::sethostname("wirecheck-sandbox");
    Ok(())
}

/// Mounts something over `dir` (`over`), then mounts each of `keep` that lay under it again at
/// its own path, reached through a descriptor of the folder as it was.
fn cover(dir: &Path, keep: &[PathBuf], over: impl FnOnce() -> Result<(), JailError>) -> Result<(), JailError> {
    let mut under: Vec<&Path> = keep
        .iter()
        .filter_map(|k| k.strip_prefix(dir).ok())
        .filter(|rel| !rel.as_os_str().is_empty())
        .collect();
    // A path inside another kept one is already in sight through it; making a mount point for
    // it there would write into the real folder.
    under.sort();
    under.dedup();
    let outer: Vec<&Path> = under.clone();
    under.retain(|rel| !outer.iter().any(|o| o != rel && rel.starts_with(o)));
    let old = std::fs::File::open(dir).map_err(|e| JailError {
        what: format!("opening {}", dir.display()),
        source: nix::Error::from_raw(e.raw_os_error().unwrap_or(0)),
    })?;
    over()?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&old);
    for rel in under {
        let from = PathBuf::from(format!("/proc/self/fd/{fd}")).join(rel);
        let to = dir.join(rel);
        let made = match std::fs::metadata(&from) {
            Ok(m) if m.is_dir() => std::fs::create_dir_all(&to),
            // A new, empty file to mount on, never an existing one opened for writing.
            Ok(_) => to
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|_| std::fs::OpenOptions::new().write(true).create_new(true).open(&to).map(|_| ())),
            Err(_) => continue,
        };
        made.map_err(|e| JailError {
            what: format!("making {}", to.display()),
            source: nix::Error::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
        mount(Some(&from), &to, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).map_err(step(format!(
            "mounting {} again on the private {}",
            to.display(),
            dir.display()
        )))?;
    }
    Ok(())
}

/// Covers each path with something empty and read-only: a folder with an empty tmpfs, a file
/// with `/dev/null`. Used once the submission is copied, so its original, the other
/// submissions next to it and the reports folder are out of the program's sight.
pub fn hide(paths: &[PathBuf]) -> Result<(), String> {
    for p in paths {
        let meta = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(_) => continue,
        };
        let done = if meta.is_dir() {
            let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount(Some("tmpfs"), p.as_path(), Some("tmpfs"), ro, Some("size=4k,mode=0555"))
        } else {
            mount(Some("/dev/null"), p.as_path(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
        };
        done.map_err(|e| format!("cannot hide {}: {e}", p.display()))?;
    }
    Ok(())
}

/// `p` made absolute, so the worker finds it whatever folder it starts in.
pub fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf()))
}
