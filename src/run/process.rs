//! Target programs: spawned in their own process group, output kept (bounded), killed whole.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::{watch, Notify};

/// Most output kept per stream; beyond it the oldest lines are dropped.
const MAX_KEPT: usize = 1 << 20;

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
    group: Option<Group>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A process group that is killed (SIGKILL) when dropped, whatever happened before.
struct Group(Pid);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = killpg(self.0, Signal::SIGKILL);
        // SIGKILL is delivered asynchronously: wait (bounded) until no member is left running,
        // so "killed" means gone by the time the harness moves on or exits.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !super::ready::group_members(self.0.as_raw()).is_empty() && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
    }
}

impl Program {
    /// Runs `command` with `sh -c` in a new process group, output captured.
    pub fn spawn(command: &str, cwd: Option<&std::path::Path>) -> std::io::Result<Program> {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let mut child = cmd.spawn()?;
        let pid = child.id().ok_or_else(|| std::io::Error::other("the child exited at once"))?;
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
        let task = tokio::spawn(async move {
            let status = child.wait().await;
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
            group: Some(Group(Pid::from_raw(pid as i32))),
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
            group: None,
            task: Some(task),
        }
    }

    /// The process group id, for readiness checks.
    pub fn pgid(&self) -> Option<i32> {
        self.group.as_ref().map(|g| g.0.as_raw())
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
            let _ = killpg(group.0, Signal::SIGTERM);
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
        let p = Program::spawn("trap '' TERM; sleep 30 & sleep 30; wait", None).unwrap();
        let pgid = p.pgid().unwrap();
        p.kill().await;
        let left = super::super::ready::group_members(pgid);
        assert!(left.is_empty(), "process group {pgid} still has members {left:?}");
    }
}
