//! The one place child processes are spawned (clippy bans `Command::new` everywhere else).
//!
//! Every child:
//! - runs with an explicit working directory and explicit environment additions;
//! - leads its own process group, so a group signal reaches the helpers it starts (the CLI's Bash
//!   tool starts its own *session*, which only an interrupt reaches: see cli-protocol.md §6.4);
//! - gets `SIGKILL` when the server dies, even by `SIGKILL` (Linux parent-death signal);
//! - has stderr drained on its own task into a bounded tail (a full pipe would deadlock it);
//! - is killed, with its group, when its handle is dropped.
//!
//! That is Linux; [`crate::base::platform`] holds the OS-specific parts and what they are on macOS
//! (a watchdog in the group) and Windows (a Job Object per child).
//!
//! The parent-death signal (`PR_SET_PDEATHSIG`) fires when the *thread* that spawned the child
//! exits, not only the process. Tokio's worker threads (and `block_on`'s thread) live as long as
//! the runtime, so spawning from async code is safe. A `spawn_blocking` thread is not: the
//! blocking pool retires idle threads after ten seconds, and that would SIGKILL every child the
//! thread started. So never call [`ProcessSpec::spawn`] (or `output`) from `spawn_blocking` or
//! from a short-lived `std::thread`; spawn from a task and hand the blocking work the handles.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStdin, ChildStdout};

pub use crate::base::platform::Stop;
use crate::base::platform::{self, ProcessTree};

/// How much of a child's stderr is kept for error reports.
const STDERR_TAIL_BYTES: usize = 16 * 1024;
/// How long an exited child's stderr may take to reach the tail.
const STDERR_FINISH_WAIT: Duration = Duration::from_millis(200);

/// What to run. Built with typed calls; there is no shell and no string splicing anywhere.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    program: PathBuf,
    args: Vec<OsString>,
    cwd: PathBuf,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
    stdin: bool,
}

impl ProcessSpec {
    pub fn new(program: impl Into<PathBuf>, cwd: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            cwd: cwd.into(),
            env: Vec::new(),
            env_remove: Vec::new(),
            stdin: false,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.env.extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env_remove.push(key.into());
        self
    }

    /// Give the child a piped stdin (otherwise it reads from /dev/null).
    pub fn piped_stdin(mut self) -> Self {
        self.stdin = true;
        self
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    pub fn arguments(&self) -> &[OsString] {
        &self.args
    }

    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// Start the child. Its stdout is piped; stderr is drained into [`ChildProcess::stderr_tail`].
    pub fn spawn(&self) -> io::Result<ChildProcess> {
        let (program, args) = platform::guarded_argv(&self.program, &self.args);
        #[allow(clippy::disallowed_methods)] // this is the wrapper
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .current_dir(&self.cwd)
            .stdin(if self.stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for key in &self.env_remove {
            command.env_remove(key);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        platform::prepare_command(&mut command);
        let mut child = command.spawn().map_err(|err| {
            io::Error::new(err.kind(), format!("cannot start {}: {err}", self.program.display()))
        })?;
        let pid =
            child.id().ok_or_else(|| io::Error::other("child exited before it was tracked"))?;
        let tree = ProcessTree::adopt(&child, pid)?;
        let stderr_tail = StderrTail::default();
        let stderr_drained = child
            .stderr
            .take()
            .map(|stderr| tokio::spawn(drain_stderr(stderr, stderr_tail.clone(), pid)));
        Ok(ChildProcess { child, pid, tree, stderr_tail, stderr_drained })
    }

    /// Run to completion and collect stdout (stderr goes to the tail), killing the child's group
    /// if it outlives `timeout`.
    pub async fn output(&self, timeout: Duration) -> io::Result<ProcessOutput> {
        let mut child = self.spawn()?;
        let mut stdout = child.take_stdout().ok_or_else(|| io::Error::other("stdout not piped"))?;
        let run = async {
            let mut buf = Vec::new();
            stdout.read_to_end(&mut buf).await?;
            let status = child.wait().await?;
            Ok::<_, io::Error>((buf, status))
        };
        let (stdout, status) = match tokio::time::timeout(timeout, run).await {
            Ok(result) => result?,
            Err(_) => {
                child.kill_group();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} did not finish within {timeout:?}", self.program.display()),
                ));
            }
        };
        Ok(ProcessOutput { status, stdout, stderr: child.stderr_tail() })
    }
}

/// The result of [`ProcessSpec::output`].
#[derive(Debug)]
pub struct ProcessOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// A running child. Dropping it kills the child's whole process group.
#[derive(Debug)]
pub struct ChildProcess {
    child: Child,
    pid: u32,
    tree: ProcessTree,
    stderr_tail: StderrTail,
    stderr_drained: Option<tokio::task::JoinHandle<()>>,
}

impl ChildProcess {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The last bytes the child wrote to stderr, lossily decoded.
    pub fn stderr_tail(&self) -> String {
        self.stderr_tail.text()
    }

    /// A handle to the stderr tail that outlives the child handle.
    pub fn stderr_handle(&self) -> StderrTail {
        self.stderr_tail.clone()
    }

    /// Wait for the child to exit. On return the stderr tail holds everything the child wrote,
    /// so error reports built from it are complete.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        self.finish_stderr().await;
        Ok(status)
    }

    /// The drain task may still hold the child's last bytes after it exits. A grandchild can keep
    /// the pipe open, so the wait is bounded. Cancel-safe: an interrupted wait is resumed later.
    async fn finish_stderr(&mut self) {
        if let Some(drained) = self.stderr_drained.as_mut() {
            let _ = tokio::time::timeout(STDERR_FINISH_WAIT, drained).await;
            self.stderr_drained = None;
        }
    }

    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// End the child's process group (it is the group's leader), or its job on Windows.
    pub fn stop_group(&self, stop: Stop) {
        self.tree.stop(stop);
    }

    /// Send `signal` to the child's process group.
    #[cfg(unix)]
    pub fn signal_group(&self, signal: rustix::process::Signal) {
        self.tree.signal(signal);
    }

    pub fn kill_group(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop_group(Stop::Kill);
        }
    }

    /// SIGTERM the group, wait up to `grace`, then SIGKILL it. Returns the exit status.
    pub async fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Ok(status);
        }
        self.stop_group(Stop::Terminate);
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => {
                // The leader is gone; anything left in its group goes with it.
                self.stop_group(Stop::Kill);
                status
            }
            Err(_) => {
                self.stop_group(Stop::Kill);
                self.child.wait().await
            }
        };
        self.finish_stderr().await;
        status
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // kill_on_drop only reaches the leader; take the group with it. Tokio reaps the zombie.
        self.kill_group();
    }
}

/// A bounded buffer of a child's most recent stderr output.
#[derive(Debug, Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<u8>>>);

impl StderrTail {
    fn push(&self, bytes: &[u8]) {
        let mut tail = self.0.lock();
        tail.extend(bytes);
        let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
        tail.drain(..excess);
    }

    pub fn text(&self) -> String {
        let tail = self.0.lock();
        let (a, b) = tail.as_slices();
        let mut bytes = Vec::with_capacity(a.len() + b.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

async fn drain_stderr(mut stderr: impl AsyncRead + Unpin, tail: StderrTail, pid: u32) {
    let mut buf = vec![0u8; 8192];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tracing::debug!(pid, stderr = %String::from_utf8_lossy(&buf[..n]).trim_end(), "child stderr");
                tail.push(&buf[..n]);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn sh(script: &str) -> ProcessSpec {
        ProcessSpec::new("/bin/sh", "/").arg("-c").arg(script)
    }

    /// The macOS guard of `platform`, run here: when the parent goes, the watchdog takes the child's group.
    #[tokio::test]
    async fn the_watchdog_kills_the_group_when_the_parent_dies() {
        let parent = ProcessSpec::new("/bin/sleep", "/").arg("60").spawn().unwrap();
        let guarded = ProcessSpec::new("/bin/sh", "/")
            .arg("-c")
            .arg(crate::base::platform::PARENT_WATCHDOG)
            .arg("sh")
            .arg(parent.pid().to_string())
            .arg("/bin/sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let child = guarded.pid() as i32;
        assert!(crate::base::platform::process_is_alive(guarded.pid()));
        drop(parent);
        assert!(wait_until_gone(child).await, "the guarded child outlived its parent");
    }

    #[tokio::test]
    async fn output_collects_stdout_and_stderr_tail() {
        let out =
            sh("echo out; echo err >&2; exit 3").output(Duration::from_secs(10)).await.unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stderr, "err\n");
    }

    #[tokio::test]
    async fn stderr_tail_is_bounded_and_never_blocks_the_child() {
        // 1 MB of stderr would fill a 64 KiB pipe and hang a child whose stderr nobody reads.
        let mut child =
            sh("head -c 1048576 /dev/zero | tr '\\0' x >&2; echo done").spawn().unwrap();
        let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap();
        assert!(status.unwrap().success());
        assert!(child.stderr_tail().len() <= STDERR_TAIL_BYTES);
    }

    #[tokio::test]
    async fn after_wait_the_tail_holds_the_last_words() {
        // The last line is written just before exit, behind a burst the drain is still reading:
        // a crash report built right after wait() must include it.
        for _ in 0..20 {
            let mut child = sh(
                "head -c 200000 /dev/zero | tr '\\0' x >&2; echo; echo 'last words' >&2; exit 4",
            )
            .spawn()
            .unwrap();
            let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap();
            assert_eq!(status.unwrap().code(), Some(4));
            assert!(child.stderr_tail().ends_with("last words\n"), "the tail lost the last line");
        }
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let marker = tempfile::tempdir().unwrap();
        let pidfile = marker.path().join("grandchild.pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let err = sh(&script).output(Duration::from_millis(500)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let grandchild: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        assert!(wait_until_gone(grandchild).await, "grandchild {grandchild} survived");
    }

    #[tokio::test]
    async fn drop_kills_the_group() {
        let child = sh("sleep 60").spawn().unwrap();
        let pid = child.pid() as i32;
        drop(child);
        assert!(wait_until_gone(pid).await);
    }

    #[tokio::test]
    async fn terminate_escalates_to_kill() {
        use std::os::unix::process::ExitStatusExt;
        use tokio::io::AsyncBufReadExt;
        // The child says when it ignores SIGTERM; only then is the escalation what ends it.
        let mut child = sh("trap '' TERM; echo ignoring; sleep 60").spawn().unwrap();
        let stdout = child.take_stdout().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ignoring"));
        let status = child.terminate(Duration::from_millis(200)).await.unwrap();
        assert_eq!(status.signal(), Some(rustix::process::Signal::KILL.as_raw()), "{status:?}");
    }

    #[tokio::test]
    async fn missing_program_names_it() {
        let err = ProcessSpec::new("/nonexistent/claude", "/").spawn().unwrap_err();
        assert!(err.to_string().contains("/nonexistent/claude"), "{err}");
    }

    /// True once `pid` no longer runs (a zombie counts as gone).
    pub(crate) async fn wait_until_gone(pid: i32) -> bool {
        for _ in 0..100 {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat) if stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')) => {
                    return true;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        false
    }
}
