//! Target programs: spawned in their own process group, confined by a `Sandbox`, output kept
//! (bounded), killed whole, with everything they started.
//!
//! "Killed whole" cannot rely on the process group alone: a child may `setsid()` (or
//! `setpgid`) its way out of it, and a double fork hands it to init, out of reach of any
//! parent-child walk. So wirecheck makes itself a *child subreaper* (`PR_SET_CHILD_SUBREAPER`):
//! an orphan anywhere below it is re-parented to wirecheck instead of init, and stays in its
//! process tree. Every program is also started with `WIRECHECK_PROGRAM=<tag>` in its
//! environment, inherited by what it starts. Killing a program (see [`sweep`]) SIGKILLs, until
//! none is left (bounded): its process group, its descendants, every process with its tag, and
//! every orphan wirecheck adopted that lost its tag (it cannot be told apart); dead orphans are reaped.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::{watch, Notify};

use super::child::{spawn_lock, Exit};
use super::sandbox::{Sandbox, SandboxError};

/// Most output kept per stream; beyond it the oldest lines are dropped.
const MAX_KEPT: usize = 1 << 20;

/// A program's output stream, kept as lines, capped in bytes.
#[derive(Default)]
pub struct Output {
    inner: Mutex<OutputInner>,
    changed: Notify,
}

#[derive(Default)]
struct OutputInner {
    lines: Vec<String>,
    partial: Vec<u8>,
    kept: usize,
    dropped_lines: usize,
    closed: bool,
}

impl Output {
    /// Appends bytes read from the stream.
    pub fn push(&self, chunk: &[u8]) {
        let mut g = self.lock();
        g.partial.extend_from_slice(chunk);
        while let Some(i) = g.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = g.partial.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).trim_end_matches('\r').to_string();
            g.kept += line.len() + 1;
            g.lines.push(line);
        }
        if g.partial.len() > 64 * 1024 {
            let line = String::from_utf8_lossy(&std::mem::take(&mut g.partial)).into_owned();
            g.kept += line.len();
            g.lines.push(line);
        }
        while g.kept > MAX_KEPT && !g.lines.is_empty() {
            let l = g.lines.remove(0);
            g.kept -= l.len() + 1;
            g.dropped_lines += 1;
        }
        drop(g);
        self.changed.notify_waiters();
    }

    /// Marks the stream ended (flushing a last unterminated line).
    pub fn close(&self) {
        let mut g = self.lock();
        if !g.partial.is_empty() {
            let line = String::from_utf8_lossy(&std::mem::take(&mut g.partial)).into_owned();
            g.lines.push(line);
        }
        g.closed = true;
        drop(g);
        self.changed.notify_waiters();
    }

    /// Appends one whole line (for in-process programs).
    pub fn push_line(&self, line: &str) {
        self.push(format!("{line}\n").as_bytes());
    }

    /// Lines so far (dropped ones excluded) and whether the stream ended.
    pub fn lines(&self) -> (Vec<String>, bool) {
        let g = self.lock();
        (g.lines.clone(), g.closed)
    }

    /// Index of the first kept line in the whole stream (lines dropped for size come before it).
    pub fn first_index(&self) -> usize {
        self.lock().dropped_lines
    }

    /// The last `max` bytes of output, for failure reports.
    pub fn tail(&self, max: usize) -> String {
        let g = self.lock();
        let mut out: Vec<&str> = Vec::new();
        let mut size = 0;
        for l in g.lines.iter().rev() {
            if size + l.len() > max {
                break;
            }
            size += l.len() + 1;
            out.push(l);
        }
        out.reverse();
        let mut s = out.join("\n");
        if !g.partial.is_empty() {
            s.push('\n');
            s.push_str(&String::from_utf8_lossy(&g.partial));
        }
        s
    }

    /// Waits (until `deadline`) for the stream to end.
    pub async fn closed(&self, deadline: tokio::time::Instant) {
        while !self.lock().closed && tokio::time::Instant::now() < deadline {
            self.changed(deadline).await;
        }
    }

    /// Waits until the stream changes or `deadline`.
    pub async fn changed(&self, deadline: tokio::time::Instant) {
        let _ = tokio::time::timeout_at(deadline, self.changed.notified()).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutputInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running target: a process group, or an in-process reference program.
pub struct Program {
    /// What was started, for messages.
    pub label: String,
    /// Its standard output.
    pub stdout: Arc<Output>,
    /// Its standard error.
    pub stderr: Arc<Output>,
    exit: watch::Receiver<Option<Exit>>,
    /// The CPU time its first process used, set as it ends.
    cpu: Arc<std::sync::Mutex<Option<Duration>>>,
    group: Option<Group>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A started program's process group (its leader is the `sh` we started, pid = pgid) and its
/// environment tag; everything it started is killed (SIGKILL) when dropped, whatever happened before.
struct Group {
    pid: Pid,
    tag: String,
}

impl Drop for Group {
    fn drop(&mut self) {
        let left = sweep(self.pid.as_raw(), &self.tag, std::time::Instant::now() + Duration::from_secs(2));
        if !left.is_empty() {
            eprintln!("wirecheck: warning: processes {left:?} survived SIGKILL for 2 s (uninterruptible sleep?)");
        }
    }
}

/// The environment variable that tags every process a program starts (see the module docs).
pub const TAG_VAR: &str = "WIRECHECK_PROGRAM";

/// Makes wirecheck the child subreaper (once): orphans of its programs come back to it, not
/// to init, however they detach (`setsid`, double fork).
fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(target_os = "linux")]
        // SAFETY: prctl with integer arguments only.
        unsafe {
            nix::libc::prctl(nix::libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
    });
}

/// One row of `/proc`: what a sweep needs to know about a process.
struct ProcInfo {
    ppid: i32,
    pgrp: i32,
    zombie: bool,
}

fn proc_table() -> HashMap<i32, ProcInfo> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command (which may contain spaces and parentheses) start after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let (Ok(ppid), Ok(pgrp)) = (f[1].parse(), f[2].parse()) else {
            continue;
        };
        out.insert(
            pid,
            ProcInfo {
                ppid,
                pgrp,
                zombie: f[0] == "Z" || f[0] == "X",
            },
        );
    }
    out
}

/// The value of the tag variable in a process's (initial) environment.
fn tag_of(pid: i32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let key = format!("{TAG_VAR}=");
    env.split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(key.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Kills the program whose `sh` is `root` (also its process group id) and everything it
/// started, repeating until none is left or `deadline`: its process group, its descendants,
/// every process tagged `tag`, and every untagged orphan wirecheck adopted that it did not start
/// (one that dropped its tag cannot be attributed to a program, so any program's sweep kills
/// it: wirecheck starts no long-lived child of its own). Orphans tagged for another program
/// are left to that program's sweep. Adopted orphans that died are reaped. Returns the pids
/// still alive at the deadline (empty: all gone).
///
/// Each round SIGKILLs everything found; a process forked since the last scan is found by the
/// next one (a killed process forks no more), so a fork bomb is wiped out in a few rounds.
pub fn sweep(root: i32, tag: &str, deadline: std::time::Instant) -> Vec<i32> {
    let me = std::process::id() as i32;
    loop {
        let roots = spawn_lock();
        let registered = |pid: &i32| roots.as_ref().is_some_and(|r| r.contains_key(pid));
        let table = proc_table();
        // Once the root is reaped its pid can be reused, but not while any process still has it
        // as its process group id: so the group is ours while the root is unreaped or no
        // process has the root's pid.
        let group_ours = registered(&root) || !table.contains_key(&root);
        let mut victims: HashSet<i32> = table
            .iter()
            .filter(|(pid, p)| {
                let pid = **pid;
                pid != me
                    && ((group_ours && (pid == root || p.pgrp == root))
                        || match tag_of(pid) {
                            Some(t) => !p.zombie && t == tag,
                            // An adopted orphan that cannot be attributed (it dropped its tag).
                            None => p.ppid == me && !registered(&pid),
                        })
            })
            .map(|(pid, _)| *pid)
            .collect();
        // Descendants of any of them (fixed point: the table is a snapshot).
        loop {
            let more: Vec<i32> = table
                .iter()
                .filter(|(pid, p)| victims.contains(&p.ppid) && !victims.contains(pid) && **pid != me)
                .map(|(pid, _)| *pid)
                .collect();
            if more.is_empty() {
                break;
            }
            victims.extend(more);
        }
        if group_ours {
            let _ = killpg(Pid::from_raw(root), Signal::SIGKILL);
        }
        let mut alive = Vec::new();
        let mut reaped = 0;
        for &pid in &victims {
            let p = &table[&pid];
            if !p.zombie {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                alive.push(pid);
            } else if p.ppid == me && !registered(&pid) {
                // An adopted orphan that died: reap it, or it stays a zombie of wirecheck.
                let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
                reaped += 1;
            }
        }
        drop(roots);
        // Done when nothing is alive and no zombie was left to reap (the children of a process
        // are handed to us when it dies, so one more round finds the zombies among them). The
        // root's own zombie is tokio's to reap.
        if alive.is_empty() && reaped == 0 {
            return alive;
        }
        if std::time::Instant::now() >= deadline {
            alive.sort_unstable();
            return alive;
        }
        // SIGKILL is delivered asynchronously: wait until the victims have died, then look again.
        wait_exited(&alive, deadline);
    }
}

/// Waits (until `deadline`) for the processes `pids` to exit, on pidfds: no polling interval.
/// Where pidfds are missing (Linux before 5.3) it only yields, and the caller looks again.
fn wait_exited(pids: &[i32], deadline: std::time::Instant) {
    use nix::libc;
    let mut fds: Vec<libc::pollfd> = Vec::new();
    for &pid in pids {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        if fd >= 0 {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH) {
            std::thread::yield_now();
        }
    }
    // A pidfd is readable once its process has exited; wait until every one is.
    while !fds.is_empty() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `fds` is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n <= 0 {
            break;
        }
        fds.retain(|p| {
            let done = p.revents != 0;
            if done {
                // SAFETY: the descriptor was opened above and is closed once.
                unsafe { libc::close(p.fd) };
            }
            !done
        });
    }
    for p in fds {
        // SAFETY: as above, each remaining descriptor is closed once.
        unsafe { libc::close(p.fd) };
    }
}

static NEXT_TAG: AtomicU64 = AtomicU64::new(0);

/// Waits for `pid` to end without reaping it (WNOWAIT), then reads the CPU time it used from
/// its `/proc` entry, which stays until it is reaped. Blocking: run off the runtime.
fn cpu_at_exit(pid: i32) -> Option<Duration> {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    loop {
        match waitid(Id::Pid(Pid::from_raw(pid)), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(_) => break,
            Err(nix::Error::EINTR) => continue,
            Err(_) => return None,
        }
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis: state is field 3, then utime, stime and
    // the reaped children's cutime, cstime are 14 to 17 (the program is often a child of `sh`).
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = rest.get(11..15)?.iter().map(|f| f.parse::<u64>().ok()).sum::<Option<u64>>()?;
    // SAFETY: sysconf with a constant name.
    let hz = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) };
    (hz > 0).then(|| Duration::from_secs_f64(ticks as f64 / hz as f64))
}

impl Program {
    /// Runs `command` with `sh -c` in a new process group, output captured, confined by
    /// `sandbox`: its limits set and its user switched to in the child before `exec`, in its
    /// folder (`sandbox.cwd`, else wirecheck's). Errors say what to do (an unknown user, a
    /// folder that user cannot read) or which limit kept the program from starting.
    pub fn spawn(command: &str, sandbox: &Sandbox) -> Result<Program, SandboxError> {
        let confinement = sandbox.prepare()?;
        become_subreaper();
        let tag = format!("{}-{}", std::process::id(), NEXT_TAG.fetch_add(1, Ordering::Relaxed));
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .env(TAG_VAR, &tag)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(d) = &sandbox.cwd {
            cmd.current_dir(d);
        }
        // SAFETY: `apply` makes only async-signal-safe calls (setrlimit, setgroups, setgid,
        // setuid) on data computed before the fork, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || confinement.apply());
        }
        let spawned = {
            let mut roots = spawn_lock();
            let r = cmd.spawn();
            if let Some(pid) = r.as_ref().ok().and_then(|c| c.id()) {
                *roots.get_or_insert_with(HashMap::new).entry(pid as i32).or_default() += 1;
            }
            r
        };
        let mut child = spawned.map_err(|e| SandboxError::Spawn {
            command: command.to_string(),
            reason: match (e.raw_os_error(), sandbox.limits.processes) {
                // execve fails with EAGAIN when the user already has as many processes as the
                // limit allows (the kernel checks it when the uid changes).
                (Some(nix::libc::EAGAIN), Some(n)) => format!(
                    "{e}: process limit ({n}) reached before it started: are processes of {} still running?",
                    sandbox
                        .run_as
                        .name()
                        .map_or("the user running wirecheck".to_string(), |u| format!("user '{u}'"))
                ),
                _ => e.to_string(),
            },
        })?;
        let pid = child.id().ok_or_else(|| SandboxError::Spawn {
            command: command.to_string(),
            reason: "the child exited at once".into(),
        })?;
        let stdout = Arc::new(Output::default());
        let stderr = Arc::new(Output::default());
        let pump = |mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>, out: Arc<Output>| {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                // A flooding target is read as fast as it writes (and mostly discarded) so it never blocks on a full pipe.
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    out.push(&buf[..n]);
                }
                out.close();
            })
        };
        let out_task = child.stdout.take().map(|s| pump(Box::new(s), stdout.clone()));
        let err_task = child.stderr.take().map(|s| pump(Box::new(s), stderr.clone()));
        let (tx, rx) = watch::channel(None);
        let cpu = Arc::new(std::sync::Mutex::new(None));
        let cpu_seen = cpu.clone();
        let task = tokio::spawn(async move {
            // The CPU time it used, read while it is a zombie (before tokio reaps it): what
            // tells the CPU limit's SIGKILL from a kill by someone else.
            let used = tokio::task::spawn_blocking(move || cpu_at_exit(pid as i32)).await.ok().flatten();
            *cpu_seen.lock().unwrap_or_else(|e| e.into_inner()) = used;
            let status = child.wait().await;
            // Reaped: no longer ours to skip in sweeps (its pid may be reused).
            if let Some(r) = spawn_lock().as_mut() {
                if let Some(n) = r.get_mut(&(pid as i32)) {
                    *n -= 1;
                    if *n == 0 {
                        r.remove(&(pid as i32));
                    }
                }
            }
            let exit = match status {
                Ok(st) => {
                    use std::os::unix::process::ExitStatusExt;
                    match (st.code(), st.signal()) {
                        (Some(c), _) => Exit::Code(c),
                        (None, Some(s)) => Exit::Signal(s),
                        _ => Exit::Code(-1),
                    }
                }
                Err(_) => Exit::Code(-1),
            };
            let _ = tx.send(Some(exit));
            // Keep reading until the pipes close (bounded: a forked child may hold them open).
            for t in [out_task, err_task].into_iter().flatten() {
                let _ = tokio::time::timeout(Duration::from_millis(500), t).await;
            }
        });
        Ok(Program {
            label: command.to_string(),
            stdout,
            stderr,
            exit: rx,
            cpu,
            group: Some(Group {
                pid: Pid::from_raw(pid as i32),
                tag,
            }),
            task: Some(task),
        })
    }

    /// An in-process program: `exit` is set by whoever runs it.
    pub fn in_process(
        label: String,
        exit: watch::Receiver<Option<Exit>>,
        task: tokio::task::JoinHandle<()>,
        stdout: Arc<Output>,
        stderr: Arc<Output>,
    ) -> Program {
        Program {
            label,
            stdout,
            stderr,
            exit,
            cpu: Arc::default(),
            group: None,
            task: Some(task),
        }
    }

    /// The process group id, for readiness checks.
    pub fn pgid(&self) -> Option<i32> {
        self.group.as_ref().map(|g| g.pid.as_raw())
    }

    /// The CPU time its first process and the children it reaped used, once it has ended
    /// (programs started with `spawn`).
    pub fn cpu_used(&self) -> Option<Duration> {
        *self.cpu.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How it ended, if it has.
    pub fn exited(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Waits (until `deadline`) for it to end.
    pub async fn wait(&self, deadline: tokio::time::Instant) -> Option<Exit> {
        let mut rx = self.exit.clone();
        let _ = tokio::time::timeout_at(deadline, rx.wait_for(|e| e.is_some())).await;
        self.exited()
    }

    /// Stops it: SIGTERM to the group, then SIGKILL after a grace period (always, for forked stragglers).
    pub async fn kill(mut self) {
        if let Some(group) = self.group.take() {
            let _ = killpg(group.pid, Signal::SIGTERM);
            self.wait(tokio::time::Instant::now() + Duration::from_millis(500)).await;
            drop(group);
            self.wait(tokio::time::Instant::now() + Duration::from_secs(2)).await;
        }
        if let Some(t) = self.task.take() {
            if self.group.is_none() && self.exited().is_none() {
                t.abort();
            }
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if self.group.is_none() {
            if let Some(t) = &self.task {
                t.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keeps_lines_and_tail() {
        let o = Output::default();
        o.push(b"one\ntw");
        o.push(b"o\r\nthree");
        let (lines, closed) = o.lines();
        assert_eq!((lines, closed), (vec!["one".to_string(), "two".to_string()], false));
        assert_eq!(o.tail(100), "one\ntwo\nthree");
        o.close();
        assert_eq!(o.lines().0.len(), 3);
    }

    #[test]
    fn output_is_capped() {
        let o = Output::default();
        let line = vec![b'x'; 1023];
        for _ in 0..2000 {
            o.push(&line);
            o.push(b"\n");
        }
        let (lines, _) = o.lines();
        assert!(lines.len() <= 1024 && o.first_index() >= 976, "{}", lines.len());
    }

    #[tokio::test]
    async fn kills_the_whole_group_even_when_term_is_ignored() {
        let p = Program::spawn("trap '' TERM; sleep 30 & sleep 30; wait", &Sandbox::default()).unwrap();
        let pgid = p.pgid().unwrap();
        p.kill().await;
        let left = super::super::ready::group_members(pgid);
        assert!(left.is_empty(), "process group {pgid} still has members {left:?}");
    }

    /// Live processes whose command line contains `marker`, and zombies whose parent is us.
    fn marked_and_zombies(marker: &str) -> (Vec<i32>, Vec<i32>) {
        let me = std::process::id() as i32;
        let (mut live, mut zombies) = (Vec::new(), Vec::new());
        for (pid, p) in proc_table() {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if p.zombie && p.ppid == me {
                zombies.push(pid);
            } else if !p.zombie && String::from_utf8_lossy(&cmd).contains(marker) {
                live.push(pid);
            }
        }
        (live, zombies)
    }

    #[tokio::test]
    async fn kills_what_left_the_group_with_setsid_and_a_double_fork() {
        let marker = format!("escape-marker-{}", std::process::id());
        // The child leaves the group and session, forks, and exits: the grandchild is an orphan
        // in a session of its own, found only as an adopted orphan / by its tag.
        let script = "import os, sys, time\n\
if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(30)\n    os._exit(0)\n\
time.sleep(30)\n";
        let p = Program::spawn(&format!("exec python3 -c '{script}' {marker}"), &Sandbox::default()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // Wait (bounded) for the orphan itself: a marked process adopted by us. Counting marked
        // processes races with the middle child's exit (an exiting process has no command line).
        let me = std::process::id() as i32;
        let adopted = || {
            let table = proc_table();
            marked_and_zombies(&marker)
                .0
                .into_iter()
                .any(|pid| table.get(&pid).is_some_and(|q| q.ppid == me && Some(pid) != p.pgid()))
        };
        while !adopted() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(adopted(), "no orphan was adopted: {:?}", marked_and_zombies(&marker));
        p.kill().await;
        let (live, zombies) = marked_and_zombies(&marker);
        assert!(live.is_empty(), "survivors: {live:?}");
        assert!(zombies.is_empty(), "adopted orphans left unreaped: {zombies:?}");
    }
}
