//! The build gate: the assignment's build command, run in the submission's copy with a timeout and
//! capped output. If it fails, every case scores 0 (and is still listed).

use std::time::{Duration, Instant};

use super::assignment::BuildSpec;
use super::score::BuildOutcome;
use crate::run::child::Exit;
use crate::run::process::Program;
use crate::run::sandbox::Sandbox;

/// Most build output kept in reports (the tail: compilers put the first error last often enough
/// that the end is the useful part).
pub const OUTPUT_TAIL: usize = 4000;

/// Runs `spec` (already filled in as `command`) in `dir`.
/// The build runs under the same sandbox as the program (limits, user, the submission's folder).
pub async fn build(spec: &BuildSpec, command: &str, sandbox: &Sandbox) -> BuildOutcome {
    let started = Instant::now();
    let mut out = BuildOutcome {
        command: Some(command.to_string()),
        ..BuildOutcome::default()
    };
    let program = match Program::spawn(command, sandbox) {
        Ok(p) => p,
        Err(e) => {
            out.error = Some(format!("cannot start the build '{command}': {e}"));
            return out;
        }
    };
    let exit = program.wait(tokio::time::Instant::now() + spec.timeout).await;
    // The pipes close when the group is gone; a short bounded wait keeps the last lines.
    let settle = tokio::time::Instant::now() + Duration::from_millis(300);
    program.stdout.closed(settle).await;
    program.stderr.closed(settle).await;
    out.output = join_tail(&program.stdout.tail(OUTPUT_TAIL / 2), &program.stderr.tail(OUTPUT_TAIL / 2));
    program.kill().await;
    out.duration_ms = started.elapsed().as_millis() as u64;
    match exit {
        Some(Exit::Code(0)) => out.ok = true,
        Some(e) => out.error = Some(format!("the build failed ({e})")),
        None => out.error = Some(format!("the build took longer than its {:?} timeout and was stopped", spec.timeout)),
    }
    out
}

fn join_tail(stdout: &str, stderr: &str) -> String {
    match (stdout.trim().is_empty(), stderr.trim().is_empty()) {
        (true, true) => String::new(),
        (false, true) => stdout.to_string(),
        (true, false) => stderr.to_string(),
        (false, false) => format!("{stdout}\n{stderr}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(timeout_ms: u64) -> BuildSpec {
        BuildSpec {
            command: String::new(),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    fn in_dir(d: &std::path::Path) -> Sandbox {
        Sandbox {
            cwd: Some(d.to_path_buf()),
            ..Sandbox::default()
        }
    }

    #[tokio::test]
    async fn a_failing_build_keeps_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let b = build(&spec(5000), "echo compiling; echo 'line 3: oops' >&2; exit 2", &in_dir(dir.path())).await;
        assert!(!b.ok);
        assert_eq!(b.error.as_deref(), Some("the build failed (exit status 2)"));
        assert!(b.output.contains("compiling") && b.output.contains("line 3: oops"), "{}", b.output);
    }

    #[tokio::test]
    async fn a_build_runs_in_the_folder_and_a_slow_one_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let b = build(&spec(5000), "touch built", &in_dir(dir.path())).await;
        assert!(b.ok, "{b:?}");
        assert!(dir.path().join("built").exists());
        let b = build(&spec(200), "sleep 30", &in_dir(dir.path())).await;
        assert!(!b.ok);
        assert!(b.error.unwrap().contains("timeout"));
        assert!(b.duration_ms < 5000);
    }
}
