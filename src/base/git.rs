//! Every git command the server runs goes through [`Git`], and the uncommitted changes of a
//! repository as text for a review prompt.
//!
//! A repository can name programs for git to run (`core.fsmonitor`, hooks, `diff.external`,
//! textconv and filter drivers, `core.sshCommand`, pagers, editors), and the environment can
//! point git at another repository or config (`GIT_DIR`, `GIT_CONFIG_*`, …). So every call:
//! - inherits no `GIT_*` variable from the server's environment;
//! - turns repository-controlled execution off with `-c` overrides (`core.fsmonitor=false`,
//!   `core.hooksPath=/dev/null`, `core.sshCommand`/`core.askPass` = `false`, no credential
//!   helper, `protocol.allow=never`: no call talks to a remote, no pager, no editor, no prompt,
//!   no automatic gc or maintenance);
//! - diffs only through [`Git::diff`] (`--no-ext-diff --no-textconv`: `diff.external` cannot be
//!   reset with `-c`, an empty value makes git run "");
//! - reads no system attributes file (`GIT_ATTR_NOSYSTEM`).
//!
//! What remains in the user's own repository ([`Git::new`]): filter drivers (`filter.<x>.*`)
//! that the user's config defines and the user's `.gitattributes` select run when git rehashes
//! a file, as they do in the user's own `git status`. Private repositories ([`Git::private`],
//! the staging mirrors) read no user or system config at all, so no driver is defined there and
//! attributes an agent writes into a mirror select nothing that runs.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::base::process::ProcessSpec;

/// Budget for one ordinary git call (status, reset, diff, …).
const GIT_TIMEOUT: Duration = Duration::from_secs(120);
/// Untracked files larger than this are named but not inlined.
const MAX_UNTRACKED_BYTES: u64 = 256 * 1024;

/// Overrides on every call: nothing the repository configures runs, nothing waits for a user.
const HARDENING: &[&str] = &[
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.sshCommand=false",
    "core.askPass=false",
    "credential.helper=",
    "protocol.allow=never",
    "core.pager=cat",
    "core.editor=true",
    "sequence.editor=true",
    "gc.auto=0",
    "maintenance.auto=false",
    "core.quotepath=off",
    "advice.detachedHead=false",
];

/// Variables that would point a git started by the server (or by the agent, through the CLI)
/// at another repository, index, object store or config.
pub const REPOSITORY_OVERRIDES: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_ATTR_SOURCE",
    "GIT_EXEC_PATH",
    "GIT_TEMPLATE_DIR",
];

/// `spec` without the inherited variables that redirect git (for processes that may run git).
pub fn without_repository_overrides(spec: ProcessSpec) -> ProcessSpec {
    REPOSITORY_OVERRIDES.iter().fold(spec, |spec, key| spec.env_remove(*key))
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git ({message})")]
    Unavailable { message: String },
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
}

/// One git invocation, built like a [`ProcessSpec`]: options first, then the subcommand.
#[derive(Debug)]
pub struct Git {
    spec: ProcessSpec,
    shown_args: Vec<OsString>,
    timeout: Duration,
    allowed_exit_codes: Vec<i32>,
}

impl Git {
    /// git in `cwd`, on the repository git discovers there (the user's).
    pub fn new(cwd: &Path) -> Self {
        let mut spec = ProcessSpec::new("git", cwd);
        for (key, _) in std::env::vars_os() {
            if key.as_encoded_bytes().starts_with(b"GIT_") {
                spec = spec.env_remove(key);
            }
        }
        let spec = HARDENING
            .iter()
            .fold(spec, |spec, setting| spec.args(["-c", setting]))
            .arg("--no-pager")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("GIT_ATTR_NOSYSTEM", "1")
            .env("GIT_PAGER", "cat")
            .env("GIT_EDITOR", "true")
            .env("GIT_SEQUENCE_EDITOR", "true");
        Self { spec, shown_args: Vec::new(), timeout: GIT_TIMEOUT, allowed_exit_codes: vec![0] }
    }

    /// git on a repository the server owns: `git_dir` with `work_tree`, never discovered, and no
    /// config but the repository's own (no user or system config, no attributes file).
    pub fn private(git_dir: &Path, work_tree: &Path) -> Self {
        let mut git = Self::new(work_tree);
        git.spec = git
            .spec
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args(["-c", "core.attributesFile=/dev/null", "-c", "core.bare=false"])
            .arg(prefixed("--git-dir=", git_dir))
            .arg(prefixed("--work-tree=", work_tree));
        git
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        let arg = arg.into();
        self.shown_args.push(arg.clone());
        self.spec = self.spec.arg(arg);
        self
    }

    pub fn args<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        args.into_iter().fold(self, |command, arg| command.arg(arg))
    }

    /// The `diff` subcommand, with no external diff program and no textconv driver.
    pub fn diff(self) -> Self {
        self.args(["diff", "--no-ext-diff", "--no-textconv", "--no-color"])
    }

    pub fn timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// Exit codes besides 0 that mean success for this command.
    pub fn allow_exit_codes(mut self, codes: &[i32]) -> Self {
        self.allowed_exit_codes.extend_from_slice(codes);
        self
    }

    fn shown(&self) -> String {
        let args: Vec<String> =
            self.shown_args.iter().map(|arg| arg.to_string_lossy().into_owned()).collect();
        format!("git {}", args.join(" "))
    }

    fn spawn_error(&self, err: io::Error) -> GitError {
        if err.kind() == io::ErrorKind::NotFound {
            GitError::Unavailable { message: err.to_string() }
        } else {
            GitError::Failed { command: self.shown(), stderr: err.to_string() }
        }
    }

    /// Run; stdout on success (an allowed exit code), else the error with git's stderr.
    pub async fn run(self) -> Result<Vec<u8>, GitError> {
        let output = self.spec.output(self.timeout).await.map_err(|err| self.spawn_error(err))?;
        let code = output.status.code().unwrap_or(-1);
        if self.allowed_exit_codes.contains(&code) {
            Ok(output.stdout)
        } else {
            Err(GitError::Failed { command: self.shown(), stderr: output.stderr.trim().to_owned() })
        }
    }

    /// Run for an answer coded in the exit status: (code, stdout). Only a failure to run errs.
    pub async fn run_status(self) -> Result<(i32, Vec<u8>), GitError> {
        let output = self.spec.output(self.timeout).await.map_err(|err| self.spawn_error(err))?;
        Ok((output.status.code().unwrap_or(-1), output.stdout))
    }

    /// Run with `input` on stdin (written while stdout is read, so neither pipe can stall).
    pub async fn run_with_input(self, input: Vec<u8>) -> Result<Vec<u8>, GitError> {
        let shown = self.shown();
        let failed = |message: String| GitError::Failed { command: shown.clone(), stderr: message };
        let mut child =
            self.spec.clone().piped_stdin().spawn().map_err(|err| self.spawn_error(err))?;
        let stdin = child.take_stdin();
        let stdout = child.take_stdout();
        let (Some(mut stdin), Some(mut stdout)) = (stdin, stdout) else {
            return Err(failed("git's standard streams are not piped".into()));
        };
        let writer = async move {
            // A git that exits early closes the pipe; its exit status tells the story.
            let _ = stdin.write_all(&input).await;
            drop(stdin);
        };
        let reader = async {
            let mut buf = Vec::new();
            stdout.read_to_end(&mut buf).await.map(|_| buf)
        };
        let run = async {
            let ((), read) = tokio::join!(writer, reader);
            let status = child.wait().await?;
            Ok::<_, io::Error>((read?, status))
        };
        let (stdout, status) = match tokio::time::timeout(self.timeout, run).await {
            Ok(result) => result.map_err(|err| failed(err.to_string()))?,
            Err(_) => return Err(failed(format!("did not finish within {:?}", self.timeout))),
        };
        let code = status.code().unwrap_or(-1);
        if self.allowed_exit_codes.contains(&code) {
            Ok(stdout)
        } else {
            Err(failed(child.stderr_tail().trim().to_owned()))
        }
    }
}

pub(crate) fn prefixed(option: &str, path: &Path) -> OsString {
    let mut arg = OsString::from(option);
    arg.push(path);
    arg
}

/// The top directory of the repository whose working tree holds `dir`, canonical.
pub async fn toplevel(dir: &Path) -> Option<PathBuf> {
    let output = Git::new(dir).args(["rev-parse", "--show-toplevel"]).run().await.ok()?;
    let text = String::from_utf8_lossy(&output);
    PathBuf::from(text.trim_end_matches('\n')).canonicalize().ok()
}

/// `git diff HEAD` plus every untracked, not ignored file shown as an addition.
pub async fn uncommitted_changes(workspace: &Path) -> Result<String, String> {
    let text = |output: Vec<u8>| String::from_utf8_lossy(&output).into_owned();
    let diff = Git::new(workspace).diff().arg("HEAD").run().await;
    // A repository without commits has no HEAD: everything staged or not is new.
    let mut text = match diff {
        Ok(diff) => text(diff),
        Err(_) => Git::new(workspace)
            .diff()
            .arg("--cached")
            .run()
            .await
            .map(text)
            .map_err(|err| err.to_string())?,
    };
    let untracked = Git::new(workspace)
        .args(["ls-files", "--others", "--exclude-standard", "-z"])
        .run()
        .await
        .map_err(|err| err.to_string())?;
    let untracked = String::from_utf8_lossy(&untracked);
    for name in untracked.split('\0').filter(|name| !name.is_empty()) {
        let path = workspace.join(name);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let content = if size > MAX_UNTRACKED_BYTES {
            None
        } else {
            std::fs::read(&path).ok().and_then(|bytes| String::from_utf8(bytes).ok())
        };
        match content {
            Some(content) => {
                let lines: Vec<&str> = content.lines().collect();
                text.push_str(&format!(
                    "diff --git a/{name} b/{name}\nnew file (untracked)\n--- /dev/null\n+++ b/{name}\n@@ -0,0 +1,{} @@\n",
                    lines.len()
                ));
                for line in lines {
                    text.push('+');
                    text.push_str(line);
                    text.push('\n');
                }
            }
            None => text.push_str(&format!("new file (untracked, binary or large): {name}\n")),
        }
    }
    if text.trim().is_empty() {
        return Err("there are no uncommitted changes to review".to_owned());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sh(dir: &Path, script: &str) {
        let out = ProcessSpec::new("/bin/sh", dir)
            .args(["-c", script])
            .output(Duration::from_secs(30))
            .await
            .unwrap();
        assert!(out.status.success(), "{script}: {}", out.stderr);
    }

    #[tokio::test]
    async fn diff_and_untracked_files_are_included() {
        let dir = tempfile::tempdir().unwrap();
        sh(dir.path(), "git init -q && printf 'a\\nb\\n' > f.txt && printf 'x\\n' > .gitignore && git add . && git -c user.name=t -c user.email=t@t commit -qm init").await;
        sh(
            dir.path(),
            "printf 'a\\nB\\n' > f.txt && printf 'new\\n' > n.txt && printf 'skip\\n' > x",
        )
        .await;
        let text = uncommitted_changes(dir.path()).await.unwrap();
        assert!(text.contains("-b\n+B\n"), "{text}");
        assert!(text.contains("+++ b/n.txt\n@@ -0,0 +1,1 @@\n+new\n"), "{text}");
        assert!(!text.contains("skip"), "ignored file leaked: {text}");
    }

    #[tokio::test]
    async fn a_clean_tree_says_so() {
        let dir = tempfile::tempdir().unwrap();
        sh(dir.path(), "git init -q && echo a > f && git add . && git -c user.name=t -c user.email=t@t commit -qm init").await;
        let err = uncommitted_changes(dir.path()).await.unwrap_err();
        assert!(err.contains("no uncommitted changes"), "{err}");
    }

    #[tokio::test]
    async fn not_a_repository_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = uncommitted_changes(dir.path()).await.unwrap_err();
        assert!(err.contains("git"), "{err}");
    }

    /// A repository that configures every program git could run for it writes a marker.
    #[tokio::test]
    async fn repository_configured_programs_never_run() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("marker");
        let hooks = dir.path().join("hooks");
        std::fs::create_dir(&hooks).unwrap();
        let touch = format!("touch {}", marker.display());
        std::fs::write(hooks.join("post-index-change"), format!("#!/bin/sh\n{touch}\n")).unwrap();
        sh(&hooks, "chmod +x post-index-change").await;
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        sh(&repo, "git init -q && printf 'a\\n' > f.txt && printf '*.txt diff=x filter=x\\n' > .gitattributes && git add . && git -c user.name=t -c user.email=t@t commit -qm init").await;
        for (key, value) in [
            ("core.fsmonitor", touch.as_str()),
            ("core.hooksPath", hooks.to_str().unwrap()),
            ("diff.external", touch.as_str()),
            ("diff.x.textconv", touch.as_str()),
            ("diff.x.command", touch.as_str()),
            ("core.pager", touch.as_str()),
        ] {
            sh(&repo, &format!("git config {key} '{value}'")).await;
        }
        sh(&repo, "printf 'b\\n' > f.txt").await;
        let text = uncommitted_changes(&repo).await.unwrap();
        assert!(text.contains("-a\n+b\n"), "{text}");
        Git::new(&repo).args(["status", "--porcelain"]).run().await.unwrap();
        Git::new(&repo)
            .args(["update-index", "--refresh"])
            .allow_exit_codes(&[1])
            .run()
            .await
            .unwrap();
        assert!(!marker.exists(), "a program the repository configured ran");
    }
}
