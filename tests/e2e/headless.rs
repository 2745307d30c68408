//! `claude-lsp run` end to end: the real binary, the real CLI, the fake API. The same scripted
//! refactor gives the same edit as the LSP path; `--apply` writes it; a review of uncommitted
//! changes takes a directory; bad input gets its documented exit code. The engine's guarantees
//! hold as in the editor: a change out of the workspace is refused, the daily budget counts, and
//! the runs are in the session index and usage ledger an editor's server reads.
use std::path::Path;
use std::time::Duration;

use claude_lsp::base::process::{ProcessOutput, ProcessSpec};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use claude_lsp::lsp_server::server::ServerOptions;

use crate::support::cli::{TestHome, real_cli};
use crate::support::fake_api::{CLI_ENV_TO_REMOVE, FakeApi, RecordedRequest, Script, Turn};
use crate::support::lsp_client::{TestClient, full_capabilities};
use crate::support::workspace::{Workspace, cli_cwd, git_repo};

const LIB: &str = "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Read the file, rename `add` to `sum` in it, then say so.
fn rename_script(request: &RecordedRequest) -> Turn {
    let path = format!("{}/src/lib.rs", cli_cwd(request));
    match request.turn_index() {
        0 => Turn::tool_use("Read", json!({"file_path": path})),
        1 => Turn::tool_use(
            "Edit",
            json!({"file_path": path, "old_string": "fn add(a: i32", "new_string": "fn sum(a: i32"}),
        ),
        _ => Turn::text("Renamed add to sum."),
    }
}

/// `claude-lsp <args>` in `cwd`, pointed at the fake API with state under `home` (and a cache
/// dir of its own), none of the developer's Anthropic variables inherited.
fn claude_lsp(cwd: &Path, api: &FakeApi, home: &TestHome, args: &[&str]) -> ProcessSpec {
    CLI_ENV_TO_REMOVE
        .iter()
        .chain(&["ANTHROPIC_API_KEY", "CLAUDE_LSP_CLI", "CLAUDE_LSP_LOG"])
        .fold(ProcessSpec::new(env!("CARGO_BIN_EXE_claude-lsp"), cwd), |spec, key| {
            spec.env_remove(key)
        })
        .args(args.iter().copied())
        .envs(api.cli_env(home.path()))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
}

async fn run(spec: ProcessSpec) -> ProcessOutput {
    spec.output(RUN_TIMEOUT).await.unwrap()
}

fn stdout(output: &ProcessOutput) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn run_gives_the_lsp_edit_and_apply_writes_it() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Script::from_fn(rename_script),
        full_capabilities(),
        json!({"warmPool": 0}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let lsp = ws
        .client
        .request_json(
            "claude/refactor",
            json!({"textDocument": {"uri": uri}, "instruction": "rename add to sum"}),
        )
        .await
        .unwrap();
    ws.client.take_notifications("$/progress");
    ws.client.take_notifications("claude/output");
    ws.client.take_notifications("claude/usage");
    ws.client.take_notifications("claude/usageChanged");
    let cli = real_cli().display().to_string();

    let json_run =
        ["run", "refactor", "src/lib.rs", "-m", "rename add to sum", "--json", "--cli", &cli];
    let output = run(claude_lsp(ws.root(), &ws.api, &ws.home, &json_run)).await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", output.stderr);
    let result: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(result["edit"], lsp["edit"], "the headless edit differs from the LSP one");
    assert_eq!(result["files"], json!([{"path": "src/lib.rs", "action": "modified"}]));
    assert_eq!(result["text"], "Renamed add to sum.");
    assert_eq!(result["applied"], false);
    assert_eq!(result["metadata"]["numTurns"], 3);
    assert_eq!(ws.read("src/lib.rs"), LIB, "without --apply nothing is written");
    // Progress went to stderr, as plain lines (stderr is not a terminal here).
    assert!(output.stderr.contains("claude-lsp: Editing src/lib.rs"), "{}", output.stderr);

    let apply_run =
        ["run", "refactor", "src/lib.rs:1-3", "-m", "rename add to sum", "--apply", "--cli", &cli];
    let output = run(claude_lsp(ws.root(), &ws.api, &ws.home, &apply_run)).await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", output.stderr);
    let diff = stdout(&output);
    assert_eq!(diff, result["diff"].as_str().unwrap(), "the same edit prints the same diff");
    assert!(
        diff.contains("-fn add(a: i32, b: i32) -> i32 {\n+fn sum(a: i32, b: i32) -> i32 {\n"),
        "{diff}"
    );
    assert_eq!(ws.read("src/lib.rs"), LIB.replace("fn add", "fn sum"));
    // The printed diff is a real patch: it reverses cleanly out of the written file.
    let diff_file = ws.home.path().join("change.diff");
    std::fs::write(&diff_file, &diff).unwrap();
    let check = ProcessSpec::new("git", ws.root())
        .args(["apply", "--check", "-R"])
        .arg(&diff_file)
        .output(RUN_TIMEOUT)
        .await
        .unwrap();
    assert!(check.status.success(), "git apply -R --check: {}", check.stderr);
    ws.client.finish().await;
}

#[tokio::test]
async fn apply_writes_nothing_when_the_file_changed_in_the_way() {
    // The model takes its time to edit, so the file can change under the run.
    let script = |request: &RecordedRequest| match request.turn_index() {
        1 => Turn::delayed(Duration::from_millis(2000), rename_script(request)),
        _ => rename_script(request),
    };
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir(ws.path().join("src")).unwrap();
    std::fs::write(ws.path().join("src/lib.rs"), LIB).unwrap();
    let api = FakeApi::start(Script::from_fn(script)).await;
    let home = TestHome::new();
    let cli = real_cli().display().to_string();
    let args = ["run", "refactor", "src/lib.rs", "-m", "rename", "--apply", "--cli", &cli];
    let mut child = claude_lsp(ws.path(), &api, &home, &args).spawn().unwrap();
    let mut out = child.take_stdout().unwrap();
    api.wait_for_requests(2, RUN_TIMEOUT).await;
    let theirs = LIB.replace("fn add(a: i32", "pub fn add(a: i64");
    std::fs::write(ws.path().join("src/lib.rs"), &theirs).unwrap();
    let mut printed = Vec::new();
    out.read_to_end(&mut printed).await.unwrap();
    let status = tokio::time::timeout(RUN_TIMEOUT, child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(4), "stderr: {}", child.stderr_tail());
    assert!(child.stderr_tail().contains("overlap"), "{}", child.stderr_tail());
    assert!(printed.is_empty(), "nothing is printed as applied");
    assert_eq!(std::fs::read_to_string(ws.path().join("src/lib.rs")).unwrap(), theirs);
}

#[tokio::test]
async fn a_review_of_uncommitted_changes_takes_the_directory() {
    let ws = Workspace::start(
        &[("src/lib.rs", LIB), ("README.md", "# demo\n")],
        Turn::text("The new function is fine."),
        full_capabilities(),
        json!({"warmPool": 0}),
    )
    .await;
    std::fs::write(ws.path("src/lib.rs"), format!("{LIB}fn twice(x: i32) -> i32 {{ x * 2 }}\n"))
        .unwrap();
    let cli = real_cli().display().to_string();
    let args = ["run", "review", ".", "--scope", "changes", "--cli", &cli];
    let output = run(claude_lsp(ws.root(), &ws.api, &ws.home, &args)).await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", output.stderr);
    assert!(stdout(&output).starts_with("The new function is fine."), "{}", stdout(&output));
    let request = &ws.api.requests()[0];
    assert!(
        request.all_text().contains("+fn twice(x: i32) -> i32 { x * 2 }"),
        "the diff was not sent"
    );
    assert_eq!(cli_cwd(request), ws.root().display().to_string(), "a review runs in the workspace");
    ws.client.finish().await;
}

/// The model reads src/b.rs (a file no one named), then reports a finding in it.
fn folder_review_script(request: &RecordedRequest) -> Turn {
    match request.turn_index() {
        0 => Turn::tool_use("Read", json!({"file_path": format!("{}/src/b.rs", cli_cwd(request))})),
        _ => Turn::tool_use(
            "StructuredOutput",
            json!({"findings": [
                {"path": "src/b.rs", "startLine": 1, "endLine": 1, "severity": "warning",
                 "category": "bug", "title": "Wrong sign", "explanation": "It subtracts.",
                 "snippet": "a - b", "suggestion": "Add instead.",
                 "fix": {"oldText": "a - b", "newText": "a + b"}},
                {"path": "src/b.rs", "startLine": 1, "endLine": 1, "severity": "info",
                 "category": "style", "title": "Terse", "explanation": "Below the minimum.",
                 "snippet": "a - b"},
            ], "summary": "One bug in src/."}),
        ),
    }
}

#[tokio::test]
async fn a_folder_review_with_every_option_lists_the_folder_and_prints_markdown() {
    let ws = git_repo(&[
        ("src/a.rs", LIB),
        (
            "src/b.rs",
            "fn add(a: i32, b: i32) -> i32 { a - b }
",
        ),
        (
            "src/a_test.rs",
            "#[test]
fn t() {}
",
        ),
        (
            "docs/guide.md",
            "# Guide
",
        ),
    ])
    .await;
    let api = FakeApi::start(Script::from_fn(folder_review_script)).await;
    let home = TestHome::new();
    let cli = real_cli().display().to_string();
    let args = [
        "run",
        "review",
        "src",
        "--scope",
        "folder",
        "--min-severity",
        "warning",
        "--fix",
        "--depth",
        "deep",
        "--include-tests",
        "--model",
        "claude-haiku-4-5",
        "--format",
        "markdown",
        "--cli",
        &cli,
    ];
    let output = run(claude_lsp(ws.path(), &api, &home, &args)).await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", output.stderr);
    assert_eq!(
        stdout(&output),
        "One bug in src/.\n\n## Findings\n\n- **Wrong sign** `src/b.rs:1` (warning, bug)\n  \
         It subtracts.\n  *Suggestion:* Add instead.\n"
    );
    let request = &api.requests()[0];
    assert_eq!(request.model(), Some("claude-haiku-4-5"));
    let prompt = request.last_user_text();
    assert!(prompt.contains("This review covers the folder `src/`: 3 files"), "{prompt}");
    assert!(prompt.contains("src/a.rs\nsrc/a_test.rs\nsrc/b.rs\n"), "{prompt}");
    assert!(!prompt.contains("a - b") && !prompt.contains("docs/guide.md"), "{prompt}");
    assert!(prompt.contains("Give every finding you can fix a `fix`"), "{prompt}");
    assert!(prompt.contains("- Be thorough: read every file in scope"), "{prompt}");

    // The same run as JSON: the fix comes with the finding; a workspace scope lists docs/ too.
    let args = ["run", "review", ".", "--scope", "workspace", "--format", "json", "--cli", &cli];
    let output = run(claude_lsp(ws.path(), &api, &home, &args)).await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", output.stderr);
    let result: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(result["findings"][0]["fix"]["newText"], "a + b");
    assert_eq!(result["findings"].as_array().unwrap().len(), 2, "info is the default minimum");
    let prompt = api.requests().last().unwrap().all_text();
    assert!(prompt.contains("the whole workspace: 3 files"), "{prompt}");
    assert!(prompt.contains("docs/guide.md\nsrc/a.rs\nsrc/b.rs\n"), "{prompt}");
}

#[tokio::test]
async fn bad_input_gets_a_clear_message_and_its_exit_code() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("lib.rs"), LIB).unwrap();
    let api = FakeApi::start(Turn::text("unused")).await;
    let home = TestHome::new();
    let cli = real_cli().display().to_string();
    let cases: [(&[&str], i32, &str); 12] = [
        (&["run", "refactor", "lib.rs", "--cli", &cli], 2, "refactor needs an instruction"),
        (&["run", "analyze", "missing.rs", "--cli", &cli], 2, "missing.rs"),
        (
            &["run", "analyze", "lib.rs:9", "--cli", &cli],
            2,
            "line 9 is past the end of the file (3 lines)",
        ),
        (&["run", "analyze", "lib.rs:3-1", "--cli", &cli], 2, "the range ends before it starts"),
        (
            &["run", "analyze", "lib.rs", "--apply", "--cli", &cli],
            2,
            "--apply applies to generate and refactor",
        ),
        (
            &["run", "analyze", "lib.rs", "--cli", "/nonexistent/claude"],
            3,
            "Claude Code CLI not found",
        ),
        (&["run", "analyze", "lib.rs", "--fix"], 2, "--fix applies to review, not analyze"),
        (&["run", "analyze", "lib.rs", "--min-severity", "error"], 2, "--min-severity applies"),
        (&["run", "refactor", "lib.rs", "-m", "x", "--depth", "deep"], 2, "--depth applies"),
        (&["run", "generate", "lib.rs", "-m", "x", "--no-cache"], 2, "--no-cache applies"),
        (
            &["run", "generate", ".", "-m", "x", "--scope", "folder"],
            2,
            "--scope folder and workspace apply to analyze and review",
        ),
        (&["run", "analyze", "lib.rs", "--model", " "], 2, "--model names no model"),
    ];
    for (args, code, message) in cases {
        let output = run(claude_lsp(ws.path(), &api, &home, args)).await;
        assert_eq!(output.status.code(), Some(code), "{args:?}: {}", output.stderr);
        assert!(output.stderr.contains(message), "{args:?}: {}", output.stderr);
        assert!(output.stdout.is_empty(), "{args:?} printed a result");
    }
    assert!(api.requests().is_empty(), "bad input must not reach the model");
    let unknown = run(claude_lsp(ws.path(), &api, &home, &["run", "explain", "lib.rs"])).await;
    assert_eq!(unknown.status.code(), Some(2), "clap reports usage errors with 2");
}

#[tokio::test]
async fn ctrl_c_stops_the_run_leaves_no_cli_and_exits_130() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("lib.rs"), LIB).unwrap();
    // The model never answers: only the interrupt ends this run.
    let api = FakeApi::start(Turn::Hang).await;
    let home = TestHome::new();
    let cli = real_cli().display().to_string();
    let args = ["run", "analyze", "lib.rs", "--cli", &cli];
    let mut child = claude_lsp(ws.path(), &api, &home, &args).spawn().unwrap();
    api.wait_for_requests(1, RUN_TIMEOUT).await;
    child.signal_group(rustix::process::Signal::INT);
    let status = tokio::time::timeout(RUN_TIMEOUT, child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(130), "stderr: {}", child.stderr_tail());
    assert!(child.stderr_tail().contains("cancelled"), "{}", child.stderr_tail());
    let home_text = home.path().display().to_string();
    let survivors = crate::support::cli::leftover_processes(
        |p| p.runs(&real_cli()) && p.env_var("HOME").as_deref() == Some(home_text.as_str()),
        Duration::from_secs(10),
    )
    .await;
    assert!(survivors.is_empty(), "a CLI survived the interrupt: {survivors:?}");
}

#[tokio::test]
async fn an_inherited_git_dir_is_not_followed_when_reviewing_changes() {
    let ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::text("Reviewed."),
        full_capabilities(),
        json!({"warmPool": 0}),
    )
    .await;
    std::fs::write(ws.path("src/lib.rs"), format!("{LIB}fn ours() {{}}\n")).unwrap();
    // Another repository, named by the environment the server was started with.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("lib.rs"), "fn theirs() {}\n").unwrap();
    for args in [&["init", "-q"][..], &["add", "-A"], &["commit", "-qm", "OTHER-REPOSITORY-COMMIT"]]
    {
        let output = ProcessSpec::new("git", other.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args.iter().copied())
            .output(RUN_TIMEOUT)
            .await
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {}", output.stderr);
    }
    std::fs::write(other.path().join("lib.rs"), "fn OTHER_REPOSITORY_CHANGE() {}\n").unwrap();

    let cli = real_cli().display().to_string();
    let args = ["run", "review", ".", "--scope", "changes", "--cli", &cli];
    let spec = claude_lsp(ws.root(), &ws.api, &ws.home, &args)
        .env("GIT_DIR", other.path().join(".git"))
        .env("GIT_WORK_TREE", other.path());
    let output = run(spec).await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", output.stderr);
    let prompt = ws.api.requests()[0].all_text();
    assert!(prompt.contains("+fn ours() {}"), "the workspace's diff was not sent");
    for theirs in ["OTHER_REPOSITORY_CHANGE", "OTHER-REPOSITORY-COMMIT"] {
        assert!(!prompt.contains(theirs), "{theirs} reached the model: {prompt:.3000}");
    }
    ws.client.finish().await;
}

#[tokio::test]
async fn apply_refuses_a_change_that_leads_out_of_the_workspace_through_a_symlink() {
    let ws = git_repo(&[("src/lib.rs", LIB)]).await;
    let root = ws.path().canonicalize().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let outside_dir = outside.path().canonicalize().unwrap();
    let (link, target) = (root.join("link"), outside_dir.clone());
    // The agent edits lib.rs and writes `link/escape.txt` in its mirror, where `link` is a plain
    // directory. Before it answers, `link` appears in the workspace as a symlink to a directory
    // outside: the written file would land there.
    let script = move |request: &RecordedRequest| {
        let cwd = cli_cwd(request);
        match request.turn_index() {
            0 => Turn::tool_use(
                "Edit",
                json!({
                    "file_path": format!("{cwd}/src/lib.rs"),
                    "old_string": "fn add(a: i32", "new_string": "fn sum(a: i32",
                }),
            ),
            1 => Turn::tool_use(
                "Write",
                json!({"file_path": format!("{cwd}/link/escape.txt"), "content": "escaped\n"}),
            ),
            _ => {
                if !link.exists() {
                    std::os::unix::fs::symlink(&target, &link).unwrap();
                }
                Turn::text("Done.")
            }
        }
    };
    let api = FakeApi::start(Script::from_fn(script)).await;
    let home = TestHome::new();
    let cli = real_cli().display().to_string();
    let args = ["run", "refactor", "src/lib.rs", "-m", "rename", "--apply", "--cli", &cli];
    let output = run(claude_lsp(&root, &api, &home, &args)).await;
    assert_eq!(output.status.code(), Some(4), "stderr: {}", output.stderr);
    assert!(output.stderr.contains("outside the workspace"), "{}", output.stderr);
    assert!(output.stdout.is_empty(), "nothing is printed as the result: {}", stdout(&output));
    assert!(
        api.requests()[2].has_tool_result_for("Write"),
        "the write happened in the mirror, so only the containment check stopped it"
    );
    assert!(!outside_dir.join("escape.txt").exists(), "a file was written outside");
    assert_eq!(std::fs::read_to_string(root.join("src/lib.rs")).unwrap(), LIB);
}

/// `claude-lsp run analyze` with `settings`, in the workspace, with the cache dir under `home`.
async fn analyze(root: &Path, api: &FakeApi, home: &TestHome, settings: &str) -> ProcessOutput {
    let cli = real_cli().display().to_string();
    let args = ["run", "analyze", "src/lib.rs", "--settings", settings, "--cli", &cli];
    run(claude_lsp(root, api, home, &args)).await
}

#[tokio::test]
async fn a_spent_daily_budget_refuses_the_next_headless_run() {
    let ws = git_repo(&[("src/lib.rs", LIB)]).await;
    let api = FakeApi::start(Turn::text("Looks fine.")).await;
    let home = TestHome::new();
    let budget = r#"{"dailyBudgetUsd": 0.00001}"#;
    // One call costs more than the whole day: the CLI, given what is left of it, stops the
    // first run after that call.
    let first = analyze(ws.path(), &api, &home, budget).await;
    assert_eq!(first.status.code(), Some(5), "stderr: {}", first.stderr);
    assert!(first.stderr.contains("what was left of today's budget"), "{}", first.stderr);
    let calls = api.requests().len();
    assert_eq!(calls, 1);

    // The same run again would be answered from the result cache, which spends nothing: only a
    // run that would reach the API is refused.
    let uncached = r#"{"dailyBudgetUsd": 0.00001, "resultCache": false}"#;
    let second = analyze(ws.path(), &api, &home, uncached).await;
    assert_eq!(second.status.code(), Some(5), "stderr: {}", second.stderr);
    assert!(second.stderr.contains("has reached the daily budget of $0.0000"), "{}", second.stderr);
    assert!(second.stderr.contains("dailyBudgetUsd"), "the hint names the setting");
    assert!(second.stdout.is_empty());
    assert_eq!(api.requests().len(), calls, "the refused run never reached the API");
}

#[tokio::test]
async fn headless_runs_show_in_the_usage_and_sessions_of_a_server_on_the_same_cache() {
    let ws = git_repo(&[("src/lib.rs", LIB)]).await;
    let root = ws.path().canonicalize().unwrap();
    let api = FakeApi::start(Script::from_fn(|request: &RecordedRequest| {
        if request.all_text().contains("rename add to sum") {
            rename_script(request)
        } else {
            Turn::text("Looks fine.")
        }
    }))
    .await;
    let home = TestHome::new();
    let cli = real_cli().display().to_string();
    let analyzed = analyze(&root, &api, &home, "{}").await;
    assert_eq!(analyzed.status.code(), Some(0), "stderr: {}", analyzed.stderr);
    let args =
        ["run", "refactor", "src/lib.rs", "-m", "rename add to sum", "--json", "--cli", &cli];
    let refactored = run(claude_lsp(&root, &api, &home, &args)).await;
    assert_eq!(refactored.status.code(), Some(0), "stderr: {}", refactored.stderr);
    let refactor: Value = serde_json::from_str(&stdout(&refactored)).unwrap();
    assert_eq!(refactor["files"], json!([{"path": "src/lib.rs", "action": "modified"}]));

    // An editor's server on the same workspace, with the cache dir `claude-lsp run` used.
    let mut client = TestClient::start(ServerOptions {
        cache_dir: home.path().join("cache/claude-lsp"),
        ..ServerOptions::default()
    });
    client.initialize(&root, full_capabilities(), json!({"warmPool": 0})).await;
    let usage = client.request_json("claude/usage", json!({})).await.unwrap();
    assert_eq!(usage["total"]["runs"], 2, "{usage}");
    assert_eq!(usage["today"]["runs"], 2, "{usage}");
    let cost = usage["total"]["costUsd"].as_f64().unwrap();
    assert!(cost > 0.0, "{usage}");
    let refactor_cost = refactor["metadata"]["costUsd"].as_f64().unwrap();
    assert!(refactor_cost > 0.0 && refactor_cost < cost, "{refactor} {usage}");

    let listed = client.request_json("claude/sessions", json!({})).await.unwrap();
    let sessions = listed["sessions"].as_array().unwrap();
    let mut actions: Vec<&str> = sessions.iter().map(|s| s["action"].as_str().unwrap()).collect();
    actions.sort_unstable();
    assert_eq!(actions, ["analyze", "refactor"], "{listed}");
    let recorded = sessions.iter().find(|s| s["action"] == "refactor").unwrap();
    assert_eq!(recorded["id"], refactor["sessionId"]);
    assert_eq!(recorded["uri"], crate::support::lsp_client::file_uri(&root.join("src/lib.rs")));
    assert_eq!(recorded["runs"][0]["instruction"], "rename add to sum");
    assert_eq!(recorded["runs"][0]["outcome"], "success");
    client.drain().await;
    client.finish().await;
}
