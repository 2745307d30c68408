//! The OS sandbox end to end: the real CLI (`CLAUDE_LSP_TEST_CLI_VERSION=newest|oldest`) runs the
//! Bash commands a hostile model asks for — ones the argument checks let through — and the
//! sandbox (bubblewrap + socat, configured by claude-lsp through `--settings`) contains them.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::cli::cli_version_label;
use crate::support::lsp_client::full_capabilities;
use crate::support::plan::{Plan, bash, script};
use crate::support::workspace::{Workspace, cli_cwd};

const LIB: &str = "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";
const SECRET: &str = "PRIVATE-KEY-MATERIAL-7f3a";
const ENV_SECRET: &str = "svc-token-0b9e2c";

async fn start(plans: Vec<Plan>, settings: Value) -> Workspace {
    Workspace::start(&[("src/lib.rs", LIB)], script(plans), full_capabilities(), settings).await
}

/// A private key in the CLI's home (the test HOME).
fn plant_secret(ws: &Workspace) -> PathBuf {
    let ssh = ws.home.path().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("id_rsa"), SECRET).unwrap();
    ssh.join("id_rsa")
}

/// Every request the model received, as text.
fn everything_sent(ws: &Workspace) -> String {
    ws.api.requests().iter().map(|request| request.body.to_string()).collect()
}

#[tokio::test]
async fn bash_escapes_from_an_edit_run_write_nothing_outside_the_mirror_and_read_no_secret() {
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().canonicalize().unwrap();
    let home_marker = "escaped-into-home.txt";
    let commands = [
        format!("sh -c 'echo x > {}/sh.txt'", out.display()),
        format!("python3 -c \"open('{}/py.txt','w').write('x')\"", out.display()),
        "touch $PWD/../escaped-parent.txt".to_owned(),
        format!("cd && touch {home_marker}"),
        "sh -c 'cat $HOME/.ssh/id_rsa'".to_owned(),
        "sh -c 'echo token=$MY_SERVICE_TOKEN'".to_owned(),
        // Inside the mirror: allowed, and it becomes the edit.
        "echo inside > src/ok.rs".to_owned(),
    ];
    let calls = commands.iter().map(|command| ("Bash", bash(command))).collect();
    let plans = vec![Plan { marker: "PLAN-ESCAPE", calls }];
    let settings = json!({"allowedTools": ["Bash"], "env": {"MY_SERVICE_TOKEN": ENV_SECRET}});
    let mut ws = start(plans, settings).await;
    let secret = plant_secret(&ws);
    let result = ws.act("claude/refactor", "src/lib.rs", "PLAN-ESCAPE").await.unwrap();
    assert!(result["text"].as_str().unwrap().starts_with("done PLAN-ESCAPE"), "{result}");

    let last = ws.api.requests().pop().unwrap();
    let mirror = PathBuf::from(cli_cwd(&last));
    let results = last.tool_results_for("Bash");
    assert_eq!(results.len(), commands.len(), "every command ran: {results:?}");
    assert!(!out.join("sh.txt").exists(), "sh wrote outside: {results:?}");
    assert!(!out.join("py.txt").exists(), "python wrote outside: {results:?}");
    assert!(!mirror.join("../escaped-parent.txt").exists(), "$PWD/.. was written: {results:?}");
    assert!(!ws.home.path().join(home_marker).exists(), "cd && touch wrote home: {results:?}");
    assert!(!everything_sent(&ws).contains(SECRET), "the secret reached the API: {results:?}");
    assert!(!everything_sent(&ws).contains(ENV_SECRET), "the env secret reached the API");
    assert_eq!(std::fs::read_to_string(secret).unwrap(), SECRET);
    // The user's files change only through the edit, which holds the one write inside.
    assert_eq!(ws.read("src/lib.rs"), LIB);
    assert!(!ws.path("src/ok.rs").exists());
    let created = json!([{"uri": ws.uri("src/ok.rs"), "action": "created"}]);
    assert_eq!(result["files"], created, "{results:?}");
    ws.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn analyze_with_bash_allowed_writes_nothing_even_in_the_workspace() {
    let plans = vec![Plan {
        marker: "PLAN-WRITE",
        calls: vec![
            ("Bash", bash("touch {cwd}/written.txt")),
            ("Bash", bash("sh -c 'echo hijacked > src/lib.rs'")),
            ("Bash", bash("cat src/lib.rs")),
        ],
    }];
    let mut ws = start(plans, json!({"allowedTools": ["Bash"]})).await;
    let result = ws.act("claude/analyze", "src/lib.rs", "PLAN-WRITE").await.unwrap();
    let last = ws.api.requests().pop().unwrap();
    let results = last.tool_results_for("Bash");
    assert_eq!(results.len(), 3, "{result}");
    assert!(!ws.path("written.txt").exists(), "{results:?}");
    assert_eq!(ws.read("src/lib.rs"), LIB, "{results:?}");
    if cli_version_label() == "newest" {
        // Reading the workspace still works.
        assert!(results[2].contains("pub fn add"), "{results:?}");
    } else {
        // 2.1.197's sandbox cannot set itself up in a read-only working directory (it mounts
        // over files such as `.gitconfig` there): it fails closed, and no command runs.
        assert!(results.iter().all(|r| r.contains("Read-only file system")), "{results:?}");
    }
    ws.drain().await;
    ws.client.finish().await;
}

/// A PATH without bubblewrap and socat (the shell tools the commands need stay reachable).
fn path_without_sandbox(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["sh", "bash", "touch", "cat", "env"] {
        let target = Path::new("/usr/bin").join(tool);
        let target = if target.exists() { target } else { Path::new("/bin").join(tool) };
        std::os::unix::fs::symlink(target, bin.join(tool)).unwrap();
    }
    bin.display().to_string()
}

#[tokio::test]
async fn without_a_sandbox_bash_is_refused_unless_the_user_opts_out() {
    let tools = tempfile::tempdir().unwrap();
    let env = json!({"PATH": path_without_sandbox(tools.path())});
    let plans =
        || vec![Plan { marker: "PLAN-NOSANDBOX", calls: vec![("Bash", bash("touch ran.txt"))] }];

    // A rule allows Bash: the run is refused before anything starts.
    let mut ws = start(plans(), json!({"env": env, "allowedTools": ["Bash"]})).await;
    let err = ws.act("claude/refactor", "src/lib.rs", "PLAN-NOSANDBOX").await.unwrap_err();
    assert_eq!(err["code"], -32021, "{err}");
    assert_eq!(err["data"]["kind"], "sandbox_unavailable", "{err}");
    let hint = err["data"]["hint"].as_str().unwrap();
    assert!(
        hint.contains("bubblewrap") && hint.contains("dangerouslyAllowUnsandboxedBash"),
        "{hint}"
    );
    assert!(ws.api.requests().is_empty());
    ws.drain().await;
    ws.client.finish().await;

    // No rule: the user is never asked, and the model hears why.
    let mut ws = start(plans(), json!({"env": env})).await;
    let result = ws.act("claude/analyze", "src/lib.rs", "PLAN-NOSANDBOX").await.unwrap();
    let refusal = ws.api.requests().pop().unwrap().tool_results_for("Bash").concat();
    assert!(refusal.contains("cannot be sandboxed"), "{refusal} / {result}");
    assert!(ws.client.server_requests("window/showMessageRequest").is_empty());
    assert!(!ws.path("ran.txt").exists());
    ws.drain().await;
    ws.client.finish().await;

    // Opted out: Bash runs, unsandboxed.
    let settings =
        json!({"env": env, "allowedTools": ["Bash"], "dangerouslyAllowUnsandboxedBash": true});
    let mut ws = start(plans(), settings).await;
    let result = ws.act("claude/refactor", "src/lib.rs", "PLAN-NOSANDBOX").await.unwrap();
    assert_eq!(result["files"], json!([{"uri": ws.uri("ran.txt"), "action": "created"}]));
    ws.drain().await;
    ws.client.finish().await;
}
