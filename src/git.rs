//! The uncommitted changes of a repository, as text for a review prompt.

use std::path::Path;
use std::time::Duration;

use crate::process::ProcessSpec;

const GIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Untracked files larger than this are named but not inlined.
const MAX_UNTRACKED_BYTES: u64 = 256 * 1024;

/// `git diff HEAD` plus every untracked, not ignored file shown as an addition.
pub async fn uncommitted_changes(workspace: &Path) -> Result<String, String> {
    let diff = git(workspace, &["diff", "HEAD", "--no-color", "--no-ext-diff"]).await;
    // A repository without commits has no HEAD: everything staged or not is new.
    let mut text = match diff {
        Ok(diff) => diff,
        Err(_) => git(workspace, &["diff", "--cached", "--no-color", "--no-ext-diff"]).await?,
    };
    let untracked = git(workspace, &["ls-files", "--others", "--exclude-standard", "-z"]).await?;
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

async fn git(cwd: &Path, args: &[&str]) -> Result<String, String> {
    let spec = ProcessSpec::new("git", cwd)
        .args(["-c", "core.quotepath=off"])
        .args(args.iter().copied())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_PAGER", "cat");
    let output = spec.output(GIT_TIMEOUT).await.map_err(|err| format!("git failed: {err}"))?;
    if !output.status.success() {
        return Err(format!("git {} failed: {}", args.join(" "), output.stderr.trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
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
}
