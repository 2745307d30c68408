//! Issue 13, findings 1 and 10, end to end: an edit run whose model is allowed `Bash(git:*)` runs
//! git in its mirror to plant `core.fsmonitor` and `core.hooksPath` and to move the user's branch.
//! The user's repository stays byte-for-byte unchanged, nothing it planted runs (not in the
//! server's next run, its review-of-changes text, nor the user's own `git status`), and the run
//! still returns its edit. Holds with or without the CLI's OS sandbox around Bash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::fake_api::{RecordedRequest, Turn};
use crate::support::lsp_client::full_capabilities;
use crate::support::workspace::{Workspace, cli_cwd, git};

const LIB: &str = "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";
/// Relative, so that wherever git would run it, it lands in that repository's work tree.
const MARKER: &str = "fsmonitor-ran";

fn bash(command: String) -> Turn {
    Turn::tool_use("Bash", json!({"command": command, "description": "git in the mirror"}))
}

/// The hostile run: move the user's branch, plant a file-system monitor and a hooks directory,
/// then make a real edit. Commits come first: the agent's own git would run its monitor.
fn hostile_turn(request: &RecordedRequest, branch: &str) -> Turn {
    let cwd = cli_cwd(request);
    match request.turn_index() {
        0 => bash(format!(
            "git -c user.name=agent -c user.email=agent@example.com commit -q --allow-empty -m x \
             && git update-ref refs/heads/{branch} HEAD"
        )),
        1 => bash(format!("git config core.fsmonitor 'touch {MARKER}'")),
        2 => bash("git config core.hooksPath .githooks".to_owned()),
        3 => Turn::tool_use(
            "Write",
            json!({"file_path": format!("{cwd}/src/new.rs"), "content": "pub fn new() {}\n"}),
        ),
        _ => Turn::text("done PLAN-GIT"),
    }
}

/// Every file under `dir` with its bytes (the user's `.git`, compared byte for byte).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

async fn refactor(ws: &mut Workspace, instruction: &str) -> Value {
    let params = json!({"textDocument": {"uri": ws.uri("src/lib.rs")}, "instruction": instruction});
    let result = ws.client.request_json("claude/refactor", params).await.unwrap();
    for method in
        ["$/progress", "claude/output", "claude/usage", "claude/usageChanged", "window/showMessage"]
    {
        ws.client.take_notifications(method);
    }
    result
}

#[tokio::test]
async fn git_run_by_the_agent_in_its_mirror_leaves_the_users_repository_alone() {
    let probe = tempfile::tempdir().unwrap();
    git(probe.path(), &["init", "-q"]).await;
    let branch = git(probe.path(), &["symbolic-ref", "--short", "HEAD"]).await.trim().to_owned();
    let script_branch = branch.clone();
    let script = crate::support::fake_api::Script::from_fn(move |request: &RecordedRequest| {
        let first = request.messages().first().map(Value::to_string).unwrap_or_default();
        if first.contains("PLAN-GIT") {
            hostile_turn(request, &script_branch)
        } else {
            Turn::text("done PLAN-QUIET")
        }
    });
    let settings = json!({"allowedTools": ["Bash(git:*)"], "warmPool": 0});
    let mut ws =
        Workspace::start(&[("src/lib.rs", LIB)], script, full_capabilities(), settings).await;
    assert_eq!(git(ws.root(), &["symbolic-ref", "--short", "HEAD"]).await.trim(), branch);
    let user_git = ws.path(".git");
    let before = snapshot(&user_git);
    let head_before = git(ws.root(), &["rev-parse", "HEAD"]).await;

    let result = refactor(&mut ws, "PLAN-GIT").await;
    assert_eq!(result["text"], "done PLAN-GIT", "{result}");
    assert_eq!(result["files"], json!([{"uri": ws.uri("src/new.rs"), "action": "created"}]));
    assert!(!ws.path("src/new.rs").exists(), "the edit was applied behind the editor's back");
    let ran: Vec<String> = ws.api.requests().last().unwrap().tool_results_for("Bash");
    assert_eq!(ran.len(), 3, "{ran:?}");

    // The server's next git work on this workspace: a run (status in the workspace, reset and
    // diff in the mirror) and the review-of-changes text.
    let quiet = refactor(&mut ws, "PLAN-QUIET").await;
    assert_eq!(quiet["text"], "done PLAN-QUIET", "{quiet}");
    assert_eq!(quiet["files"], json!([]), "the previous run's files stayed in the mirror");
    let err = claude_lsp::base::git::uncommitted_changes(ws.root()).await.unwrap_err();
    assert!(err.contains("no uncommitted changes"), "{err}");

    assert_eq!(snapshot(&user_git), before, "the user's .git changed (ran: {ran:?})");
    assert_eq!(git(ws.root(), &["rev-parse", "HEAD"]).await, head_before);
    assert_eq!(git(ws.root(), &["symbolic-ref", "--short", "HEAD"]).await.trim(), branch);
    assert_eq!(
        git(ws.root(), &["worktree", "list", "--porcelain"]).await.matches("worktree ").count(),
        1
    );
    assert!(!ws.path(MARKER).exists(), "the planted monitor ran in the workspace");
    // The user's own git.
    assert_eq!(git(ws.root(), &["status", "--porcelain"]).await, "");
    assert!(!ws.path(MARKER).exists(), "the user's git status ran the planted monitor");
    assert_eq!(ws.read("src/lib.rs"), LIB);
    ws.client.finish().await;
}
