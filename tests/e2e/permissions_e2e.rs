//! Permissions end to end: the real CLI (`CLAUDE_LSP_TEST_CLI_VERSION=newest|oldest`) scripted by
//! the fake API to call tools, an in-process claude-lsp deciding every call (path sandbox, rules,
//! questions to the editor), and the audit log recording each decision.

use std::path::{Path, PathBuf};
use std::time::Duration;

use claude_lsp::base::process::ProcessSpec;
use serde_json::{Value, json};

use crate::support::cli::cli_version_label;
use crate::support::fake_api::RecordedRequest;
use crate::support::lsp_client::full_capabilities;
use crate::support::plan::{Plan, bash, script};
use crate::support::workspace::{Workspace, cli_cwd};

const LIB: &str = "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";

async fn start(
    files: &[(&str, &str)],
    plans: Vec<Plan>,
    capabilities: Value,
    settings: Value,
) -> Workspace {
    Workspace::start(files, script(plans), capabilities, settings).await
}

/// The final request of the run: every tool result of the conversation is in it.
fn last_request(ws: &Workspace) -> RecordedRequest {
    ws.api.requests().pop().expect("the model was never called")
}

/// The audit entries of the conversation, through `claude/audit`.
async fn audit(ws: &mut Workspace, session_id: &str) -> Vec<Value> {
    let result = ws
        .client
        .request_json("claude/audit", json!({"sessionId": session_id, "limit": 100}))
        .await
        .unwrap();
    result["entries"].as_array().unwrap().clone()
}

fn decisions(entries: &[Value]) -> Vec<(String, String, String)> {
    entries
        .iter()
        .map(|e| {
            let text = |key: &str| e[key].as_str().unwrap_or("").to_owned();
            (text("tool"), text("decision"), text("by"))
        })
        .collect()
}

async fn git(dir: &Path, args: &[&str]) {
    let out = ProcessSpec::new("git", dir)
        .args(args.iter().copied())
        .output(Duration::from_secs(30))
        .await
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", out.stderr);
}

fn triple(tool: &str, decision: &str, by: &str) -> (String, String, String) {
    (tool.to_owned(), decision.to_owned(), by.to_owned())
}

#[tokio::test]
async fn writes_and_reads_outside_the_mirror_are_denied_and_nothing_is_created() {
    let outside = tempfile::tempdir().unwrap();
    let outside_dir = outside.path().canonicalize().unwrap();
    std::fs::write(outside_dir.join("secret.txt"), "OUTSIDE-SECRET").unwrap();
    let plans = vec![Plan {
        marker: "PLAN-ESCAPE",
        calls: vec![
            ("Read", json!({"file_path": "/etc/passwd"})),
            // (An Edit of /etc/passwd never gets this far: the CLI refuses to edit a file it has
            // not read.) A new file, so that a broken sandbox could not damage the machine.
            ("Write", json!({"file_path": "/etc/claude-lsp-sandbox-probe", "content": "escaped"})),
            ("Write", json!({"file_path": "{cwd}/../../escaped.txt", "content": "escaped"})),
            ("Write", json!({"file_path": "{cwd}/link/escape.txt", "content": "escaped"})),
            ("Read", json!({"file_path": "{cwd}/link/secret.txt"})),
            (
                "Write",
                json!({"file_path": "~/.ssh/authorized_keys", "content": "ssh-ed25519 AAAA attacker"}),
            ),
            ("Read", json!({"file_path": "~/.ssh/id_rsa"})),
            ("Bash", bash("cat ~/.ssh/id_rsa")),
            ("Write", json!({"file_path": "{cwd}/src/ok.rs", "content": "// inside\n"})),
        ],
    }];
    let mut ws = start(&[("src/lib.rs", LIB)], plans, full_capabilities(), json!({})).await;
    // A committed symlink reaches the mirror (a git worktree) as a symlink.
    std::os::unix::fs::symlink(&outside_dir, ws.path("link")).unwrap();
    git(ws.root(), &["add", "link"]).await;
    git(ws.root(), &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "link"]).await;
    let ssh = ws.home.path().join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    std::fs::write(ssh.join("id_rsa"), "PRIVATE-KEY-MATERIAL").unwrap();

    let uri = ws.uri("src/lib.rs");
    let result = ws
        .client
        .request_json(
            "claude/refactor",
            json!({"textDocument": {"uri": uri}, "instruction": "PLAN-ESCAPE"}),
        )
        .await
        .unwrap();
    assert!(result["text"].as_str().unwrap().starts_with("done PLAN-ESCAPE"), "{}", result["text"]);

    let last = last_request(&ws);
    let mirror = PathBuf::from(cli_cwd(&last));
    let all = last.all_text();
    for leaked in ["root:x:0:0", "OUTSIDE-SECRET", "PRIVATE-KEY-MATERIAL"] {
        assert!(!all.contains(leaked), "{leaked} reached the model: {all}");
    }
    let denials: Vec<String> = ["Read", "Write", "Bash"]
        .iter()
        .flat_map(|tool| last.tool_results_for(tool))
        .filter(|text| text.contains("outside the workspace"))
        .collect();
    assert_eq!(denials.len(), 8, "every escape is denied with its reason: {all}");
    assert!(!Path::new("/etc/claude-lsp-sandbox-probe").exists());
    assert!(!mirror.join("../../escaped.txt").exists());
    assert!(!outside_dir.join("escape.txt").exists());
    assert!(!ssh.join("authorized_keys").exists());
    assert_eq!(std::fs::read_to_string(ssh.join("id_rsa")).unwrap(), "PRIVATE-KEY-MATERIAL");
    // The one write inside the mirror becomes the edit, and the disk is untouched.
    assert_eq!(result["files"], json!([{"uri": ws.uri("src/ok.rs"), "action": "created"}]));
    assert!(!ws.path("src/ok.rs").exists());
    assert!(
        ws.client.server_requests("window/showMessageRequest").is_empty(),
        "escapes are never asked"
    );

    let entries = audit(&mut ws, result["sessionId"].as_str().unwrap()).await;
    let mut expected: Vec<_> = ["Read", "Write", "Write", "Write", "Read", "Write", "Read", "Bash"]
        .iter()
        .map(|tool| triple(tool, "deny", "policy"))
        .collect();
    expected.push(triple("Write", "allow", "policy"));
    assert_eq!(decisions(&entries), expected);
    assert!(entries.iter().all(|e| e["time"].as_str().is_some_and(|t| t.ends_with('Z'))));
    assert_eq!(entries[0]["input"], "/etc/passwd");
    // The audit speaks of the workspace, not of the mirror the run worked in.
    assert_eq!(entries[8]["input"], ws.path("src/ok.rs").display().to_string());
    assert_eq!(entries[8]["workspace"], ws.root().display().to_string());
    assert!(entries[0]["reason"].as_str().unwrap().contains("outside the workspace"));
    ws.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn read_only_runs_read_the_workspace_and_additional_directories_only() {
    let outside = tempfile::tempdir().unwrap();
    let outside_dir = outside.path().canonicalize().unwrap();
    std::fs::write(outside_dir.join("secret.txt"), "OUTSIDE-SECRET").unwrap();
    let docs = tempfile::tempdir().unwrap();
    let docs_dir = docs.path().canonicalize().unwrap();
    std::fs::write(docs_dir.join("guide.md"), "DOCS-CONTENT").unwrap();
    let plans = vec![Plan {
        marker: "PLAN-READ",
        calls: vec![
            ("Read", json!({"file_path": "{cwd}/src/lib.rs"})),
            ("Read", json!({"file_path": format!("{}/guide.md", docs_dir.display())})),
            ("Read", json!({"file_path": "{cwd}/link/secret.txt"})),
            ("Grep", json!({"pattern": "root", "path": "/etc"})),
            ("Glob", json!({"pattern": "/etc/**/*.conf"})),
            ("Write", json!({"file_path": "{cwd}/src/new.rs", "content": "x"})),
        ],
    }];
    let settings = json!({"additionalDirectories": [docs_dir]});
    let mut ws = start(&[("src/lib.rs", LIB)], plans, full_capabilities(), settings).await;
    std::os::unix::fs::symlink(&outside_dir, ws.path("link")).unwrap();
    let uri = ws.uri("src/lib.rs");
    let result = ws
        .client
        .request_json(
            "claude/analyze",
            json!({"textDocument": {"uri": uri}, "instruction": "PLAN-READ"}),
        )
        .await
        .unwrap();
    assert!(result["text"].as_str().unwrap().starts_with("done PLAN-READ"), "{}", result["text"]);
    let all = last_request(&ws).all_text();
    assert!(all.contains("a + b") && all.contains("DOCS-CONTENT"), "{all}");
    assert!(!all.contains("OUTSIDE-SECRET") && !all.contains("root:x:0:0"), "{all}");
    assert!(!ws.path("src/new.rs").exists());
    let entries = audit(&mut ws, result["sessionId"].as_str().unwrap()).await;
    assert_eq!(
        decisions(&entries),
        [
            triple("Read", "allow", "policy"),
            triple("Read", "allow", "policy"),
            triple("Read", "deny", "policy"),
            triple("Grep", "deny", "policy"),
            triple("Glob", "deny", "policy"),
        ]
    );
    // Write is not even offered to a read-only run, so it never reaches the gate.
    ws.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn bash_by_rule_by_session_grant_and_denied_by_rule() {
    let plans = vec![
        Plan {
            marker: "PLAN-SESSION",
            calls: vec![
                ("Bash", bash("echo rule-allowed")),
                ("Bash", bash("rm -f src/lib.rs")),
                ("Bash", bash("echo granted-for-session")),
                ("Bash", bash("echo granted-for-session")),
            ],
        },
        Plan { marker: "PLAN-CONTINUE", calls: vec![("Bash", bash("echo granted-for-session"))] },
    ];
    let settings = json!({
        "allowedTools": ["Bash(echo rule-allowed:*)"],
        "disallowedTools": ["Bash(rm:*)"],
    });
    let mut ws = start(&[("src/lib.rs", LIB)], plans, full_capabilities(), settings).await;
    ws.client.set_behaviour(|b| b.message_action = Some("Allow for this session".into()));
    let uri = ws.uri("src/lib.rs");
    let result = ws
        .client
        .request_json(
            "claude/analyze",
            json!({
                "textDocument": {"uri": uri}, "instruction": "PLAN-SESSION", "workDoneToken": "p1",
            }),
        )
        .await
        .unwrap();
    assert!(
        result["text"].as_str().unwrap().starts_with("done PLAN-SESSION"),
        "{}",
        result["text"]
    );
    let last = last_request(&ws);
    let outputs = last.tool_results_for("Bash");
    assert!(outputs[1].contains("denied by the rule `Bash(rm:*)`"), "{outputs:?}");
    let allowed = [&outputs[0], &outputs[2], &outputs[3]];
    if cli_version_label() == "newest" {
        assert!(outputs[0].contains("rule-allowed"), "{outputs:?}");
        assert!(
            outputs[2].contains("granted-for-session")
                && outputs[3].contains("granted-for-session"),
            "{outputs:?}"
        );
    } else {
        // The same decisions, but 2.1.197's sandbox cannot set itself up in a read-only working
        // directory: allowed commands fail closed there (sandbox_e2e.rs).
        assert!(allowed.iter().all(|o| o.contains("Read-only file system")), "{outputs:?}");
    }
    assert_eq!(ws.read("src/lib.rs"), LIB);

    let questions = ws.client.server_requests("window/showMessageRequest");
    assert_eq!(
        questions.len(),
        1,
        "only the un-ruled command is asked, and only once: {questions:#?}"
    );
    let expected =
        format!("Claude wants to run `echo granted-for-session` in {}", ws.root().display());
    assert_eq!(questions[0]["message"], expected);
    assert_eq!(questions[0]["type"], 2, "a warning");
    assert_eq!(
        questions[0]["actions"],
        json!([{"title": "Allow once"}, {"title": "Allow for this session"}, {"title": "Deny"}])
    );
    let progress = ws.client.progress_until_end(&json!("p1")).await;
    let waiting =
        format!("Waiting for your permission: {}", expected.trim_start_matches("Claude: "));
    assert!(progress.iter().any(|p| p["message"] == waiting), "{progress:#?}");

    // The grant belongs to the conversation: continuing it is not asked again.
    let session_id = result["sessionId"].as_str().unwrap().to_owned();
    let next = ws
        .client
        .request_json("claude/analyze", json!({
            "textDocument": {"uri": uri}, "instruction": "PLAN-CONTINUE", "sessionId": session_id,
        }))
        .await
        .unwrap();
    assert!(next["text"].as_str().unwrap().starts_with("done PLAN-CONTINUE"), "{}", next["text"]);
    assert_eq!(ws.client.server_requests("window/showMessageRequest").len(), 1);

    let entries = audit(&mut ws, &session_id).await;
    assert_eq!(
        decisions(&entries),
        [
            triple("Bash", "allow", "rule"),
            triple("Bash", "deny", "rule"),
            triple("Bash", "allow", "user"),
            triple("Bash", "allow", "session"),
            triple("Bash", "allow", "session"),
        ]
    );
    assert_eq!(entries[0]["rule"], "Bash(echo rule-allowed:*)");
    assert_eq!(entries[2]["rule"], "Bash(echo granted-for-session)");
    assert_eq!(entries[2]["input"], "echo granted-for-session");
    ws.drain().await;
    ws.client.finish().await;
}

/// One run whose two Bash calls are put to a user who answers `answer`.
async fn asked_twice(
    answer: Option<&str>,
    delay: Duration,
    settings: Value,
    capabilities: Value,
) -> (Workspace, Value) {
    let plans = vec![Plan {
        marker: "PLAN-ASK",
        calls: vec![("Bash", bash("touch asked-1.txt")), ("Bash", bash("touch asked-2.txt"))],
    }];
    let mut ws = start(&[("src/lib.rs", LIB)], plans, capabilities, settings).await;
    ws.client.set_behaviour(|b| {
        b.message_action = answer.map(str::to_owned);
        b.message_delay = delay;
    });
    let uri = ws.uri("src/lib.rs");
    let result = ws
        .client
        .request_json(
            "claude/analyze",
            json!({
                "textDocument": {"uri": uri}, "instruction": "PLAN-ASK", "workDoneToken": "ask",
            }),
        )
        .await
        .unwrap();
    assert!(result["text"].as_str().unwrap().starts_with("done PLAN-ASK"), "{}", result["text"]);
    (ws, result)
}

#[tokio::test]
async fn allow_once_asks_every_time() {
    let (mut ws, result) =
        asked_twice(Some("Allow once"), Duration::ZERO, json!({}), full_capabilities()).await;
    assert_eq!(ws.client.server_requests("window/showMessageRequest").len(), 2);
    // Allowed and run, in the OS sandbox of a read-only run: nothing is written.
    assert!(!ws.path("asked-1.txt").exists() && !ws.path("asked-2.txt").exists());
    let entries = audit(&mut ws, result["sessionId"].as_str().unwrap()).await;
    assert_eq!(
        decisions(&entries),
        [triple("Bash", "allow", "user"), triple("Bash", "allow", "user")]
    );
    assert!(entries.iter().all(|e| e.get("rule").is_none()), "{entries:#?}");
    ws.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn deny_runs_nothing() {
    let (mut ws, result) =
        asked_twice(Some("Deny"), Duration::ZERO, json!({}), full_capabilities()).await;
    assert_eq!(ws.client.server_requests("window/showMessageRequest").len(), 2);
    assert!(!ws.path("asked-1.txt").exists() && !ws.path("asked-2.txt").exists());
    let outputs = last_request(&ws).tool_results_for("Bash");
    assert!(outputs.iter().all(|o| o.contains("the user denied this call")), "{outputs:?}");
    let entries = audit(&mut ws, result["sessionId"].as_str().unwrap()).await;
    assert_eq!(
        decisions(&entries),
        [triple("Bash", "deny", "user"), triple("Bash", "deny", "user")]
    );
    ws.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn an_unanswered_question_times_out_and_denies() {
    let settings = json!({"permissionTimeoutSecs": 1});
    let (mut ws, result) =
        asked_twice(Some("Allow once"), Duration::from_secs(4), settings, full_capabilities())
            .await;
    assert!(!ws.path("asked-1.txt").exists() && !ws.path("asked-2.txt").exists());
    let outputs = last_request(&ws).tool_results_for("Bash");
    assert!(
        outputs.iter().all(|o| o.contains("did not answer the permission question within 1 s")),
        "{outputs:?}"
    );
    let progress = ws.client.progress_until_end(&json!("ask")).await;
    let messages: Vec<&str> = progress.iter().filter_map(|p| p["message"].as_str()).collect();
    assert!(messages.contains(&"No answer within 1 s: denied"), "{messages:#?}");
    assert!(messages.iter().any(|m| {
        m.starts_with("Waiting for your permission: Claude wants to run `touch asked-1.txt`")
    }));
    let entries = audit(&mut ws, result["sessionId"].as_str().unwrap()).await;
    assert_eq!(
        decisions(&entries),
        [triple("Bash", "deny", "timeout"), triple("Bash", "deny", "timeout")]
    );
    ws.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_client_that_cannot_ask_gets_a_denial_said_in_progress() {
    let mut capabilities = full_capabilities();
    capabilities["window"].as_object_mut().unwrap().remove("showMessage");
    // A rule for other commands puts Bash in the tool list; these calls still need a question.
    let settings = json!({"allowedTools": ["Bash(echo ok:*)"]});
    let (mut ws, result) =
        asked_twice(Some("Allow once"), Duration::ZERO, settings, capabilities).await;
    assert!(ws.client.server_requests("window/showMessageRequest").is_empty());
    assert!(!ws.path("asked-1.txt").exists());
    let outputs = last_request(&ws).tool_results_for("Bash");
    assert!(
        outputs[0].contains("allowedTools") && outputs[0].contains("`Bash(touch asked-1.txt)`"),
        "{outputs:?}"
    );
    let progress = ws.client.progress_until_end(&json!("ask")).await;
    assert!(
        progress.iter().any(|p| p["message"].as_str().is_some_and(|m| m
            .starts_with("Denied without asking (your editor cannot show permission questions"))),
        "{progress:#?}"
    );
    let entries = audit(&mut ws, result["sessionId"].as_str().unwrap()).await;
    assert_eq!(
        decisions(&entries),
        [triple("Bash", "deny", "noPrompt"), triple("Bash", "deny", "noPrompt")]
    );
    ws.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_hostile_instruction_reaches_the_model_verbatim_and_runs_nothing() {
    let canary = tempfile::tempdir().unwrap();
    let canary_dir = canary.path().canonicalize().unwrap().display().to_string();
    let instruction = format!(
        "PLAN-VERBATIM ; rm -rf ~/claude-lsp-no-such-dir $(touch {canary_dir}/subst) `touch {canary_dir}/tick` \
         && echo \"$HOME\" | tee {canary_dir}/pipe > /dev/null; '\"' \\\\ %s ${{PATH}} \n second line ☃"
    );
    let plans = vec![Plan { marker: "PLAN-VERBATIM", calls: Vec::new() }];
    let mut ws = start(&[("src/lib.rs", LIB)], plans, full_capabilities(), json!({})).await;
    let uri = ws.uri("src/lib.rs");
    let result = ws
        .client
        .request_json(
            "claude/refactor",
            json!({"textDocument": {"uri": uri}, "instruction": instruction}),
        )
        .await
        .unwrap();
    assert!(
        result["text"].as_str().unwrap().starts_with("done PLAN-VERBATIM"),
        "{}",
        result["text"]
    );
    let prompt = ws.api.requests()[0].last_user_text();
    assert!(prompt.contains(&instruction), "the instruction was altered on its way: {prompt}");
    let created: Vec<_> = std::fs::read_dir(&canary_dir).unwrap().collect();
    assert!(created.is_empty(), "something ran: {created:?}");
    ws.drain().await;
    ws.client.finish().await;
}

/// A minimal MCP server over stdio with one tool, `echo`.
const MCP_SERVER: &str = r#"#!/bin/sh
while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
  case "$line" in
    *'"method":"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2024-11-05","capabilities":{"tools":{}},"serverInfo":{"name":"probe","version":"1"}}}\n' "$id" ;;
    *'"method":"tools/list"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"echo","description":"Echo a text","inputSchema":{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}}]}}\n' "$id" ;;
    *'"method":"tools/call"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"probe says hi"}]}}\n' "$id" ;;
    *'"id":'*) printf '{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"no such method"}}\n' "$id" ;;
  esac
done
"#;

#[tokio::test]
async fn mcp_servers_reach_the_cli_and_their_tools_are_asked() {
    let server_dir = tempfile::tempdir().unwrap();
    let server = server_dir.path().join("probe.sh");
    std::fs::write(&server, MCP_SERVER).unwrap();
    let plans =
        vec![Plan { marker: "PLAN-MCP", calls: vec![("mcp__probe__echo", json!({"text": "hi"}))] }];
    let settings = json!({"mcpServers": {"probe": {"command": "/bin/sh", "args": [server]}}});
    let mut ws = start(&[("src/lib.rs", LIB)], plans, full_capabilities(), settings).await;
    ws.client.set_behaviour(|b| b.message_action = Some("Allow once".into()));
    let uri = ws.uri("src/lib.rs");
    let result = ws
        .client
        .request_json(
            "claude/analyze",
            json!({"textDocument": {"uri": uri}, "instruction": "PLAN-MCP"}),
        )
        .await
        .unwrap();
    assert!(result["text"].as_str().unwrap().starts_with("done PLAN-MCP"), "{}", result["text"]);
    let first = &ws.api.requests()[0];
    assert!(
        first.tool_names().contains(&"mcp__probe__echo".to_owned()),
        "{:?}",
        first.tool_names()
    );
    let questions = ws.client.server_requests("window/showMessageRequest");
    assert_eq!(questions.len(), 1);
    assert_eq!(
        questions[0]["message"],
        r#"Claude wants to use the MCP tool echo of probe with {"text":"hi"}"#
    );
    assert_eq!(last_request(&ws).tool_results_for("mcp__probe__echo"), ["probe says hi"]);
    let entries = audit(&mut ws, result["sessionId"].as_str().unwrap()).await;
    assert_eq!(decisions(&entries), [triple("mcp__probe__echo", "allow", "user")]);
    ws.drain().await;
    ws.client.finish().await;
}

/// A 410-character command whose harmless start hides what it really does (issue 13, finding 4).
fn hidden_tail_command() -> String {
    let head = "echo checking the build status ";
    let tail = " && git config core.fsmonitor 'touch pwned-by-fsmonitor' && touch pwned.txt";
    let command = format!("{head}{}{tail}", "=".repeat(410 - head.len() - tail.len()));
    assert_eq!(command.len(), 410);
    command
}

/// One analyze run whose Bash call is the long command; the user reads it whole, then denies.
/// Returns the workspace, the whole question and the two questions asked.
async fn long_command_read_then_denied(capabilities: Value) -> (Workspace, String, Vec<Value>) {
    let command = hidden_tail_command();
    let plans = vec![Plan { marker: "PLAN-LONG", calls: vec![("Bash", bash(&command))] }];
    let mut ws = start(&[("src/lib.rs", LIB)], plans, capabilities, json!({})).await;
    ws.client.set_behaviour(|b| {
        b.preferred_action = Some("Show the whole command".into());
        b.message_action = Some("Deny".into());
    });
    let uri = ws.uri("src/lib.rs");
    let result = ws
        .client
        .request_json(
            "claude/analyze",
            json!({"textDocument": {"uri": uri}, "instruction": "PLAN-LONG"}),
        )
        .await
        .unwrap();
    assert!(result["text"].as_str().unwrap().starts_with("done PLAN-LONG"), "{}", result["text"]);
    let whole = format!("Claude wants to run `{command}` in {}", ws.root().display());

    let questions = ws.client.server_requests("window/showMessageRequest");
    assert_eq!(questions.len(), 2, "{questions:#?}");
    let first = questions[0]["message"].as_str().unwrap();
    let more = whole.chars().count() - 300;
    assert!(first.starts_with(&whole[..300]), "{first}");
    assert!(first.contains(&format!("({more} more characters not shown")), "{first}");
    assert_eq!(
        questions[0]["actions"],
        json!([{"title": "Show the whole command"}, {"title": "Deny"}]),
        "nothing can be allowed before the whole command was shown"
    );
    assert_eq!(
        questions[1]["actions"],
        json!([{"title": "Allow once"}, {"title": "Allow for this session"}, {"title": "Deny"}])
    );

    // Denied: nothing of the command ran, and the user's repository is untouched.
    assert!(!ws.path("pwned.txt").exists() && !ws.path("pwned-by-fsmonitor").exists());
    assert!(!ws.read(".git/config").contains("fsmonitor"));
    let outputs = last_request(&ws).tool_results_for("Bash");
    assert!(outputs[0].contains("the user denied this call"), "{outputs:?}");
    let entries = audit(&mut ws, result["sessionId"].as_str().unwrap()).await;
    assert_eq!(decisions(&entries), [triple("Bash", "deny", "user")]);
    (ws, whole, questions)
}

#[tokio::test]
async fn a_long_command_is_shown_whole_as_a_document_before_it_can_be_allowed() {
    let (ws, whole, questions) = long_command_read_then_denied(full_capabilities()).await;
    let shown = ws.client.server_requests("window/showDocument");
    assert_eq!(shown.len(), 1, "{shown:#?}");
    let url = url::Url::parse(shown[0]["uri"].as_str().unwrap()).unwrap();
    let document = std::fs::read_to_string(url.to_file_path().unwrap()).unwrap();
    assert!(document.contains(&whole), "{document}");
    let again = questions[1]["message"].as_str().unwrap();
    assert!(again.contains("shown whole in the document just opened"), "{again}");
    ws.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn without_show_document_a_long_command_arrives_whole_as_a_message() {
    let mut capabilities = full_capabilities();
    capabilities["window"].as_object_mut().unwrap().remove("showDocument");
    let (ws, whole, questions) = long_command_read_then_denied(capabilities).await;
    assert!(ws.client.server_requests("window/showDocument").is_empty());
    let messages = ws.client.take_notifications("window/showMessage");
    let shown: Vec<&str> = messages
        .iter()
        .filter_map(|m| m["message"].as_str())
        .filter(|m| m.starts_with("Claude asks permission for:"))
        .collect();
    assert_eq!(shown.len(), 1, "{messages:#?}");
    assert!(shown[0].contains(&whole), "{}", shown[0]);
    let again = questions[1]["message"].as_str().unwrap();
    assert!(again.contains("shown whole in the message before this one"), "{again}");
    // The message names a file holding the whole command (status lines cut messages too).
    let saved = again.rsplit_once("also saved in ").unwrap().1.trim_end_matches(')');
    assert!(std::fs::read_to_string(saved).unwrap().contains(&whole));
    ws.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_domain_rule_reads_the_url_host_as_a_browser_does() {
    let url = "https://evil.com\\@good.com/x";
    let plans = vec![Plan {
        marker: "PLAN-FETCH",
        calls: vec![("WebFetch", json!({"url": url, "prompt": "summarize"}))],
    }];
    let settings = json!({"allowedTools": ["WebFetch(domain:good.com)"]});
    let mut ws = start(&[("src/lib.rs", LIB)], plans, full_capabilities(), settings).await;
    ws.client.set_behaviour(|b| b.message_action = Some("Deny".into()));
    let uri = ws.uri("src/lib.rs");
    let result = ws
        .client
        .request_json(
            "claude/analyze",
            json!({"textDocument": {"uri": uri}, "instruction": "PLAN-FETCH"}),
        )
        .await
        .unwrap();
    assert!(result["text"].as_str().unwrap().starts_with("done PLAN-FETCH"), "{}", result["text"]);
    // The rule for good.com does not cover a URL on evil.com: the user is asked, and denies.
    let questions = ws.client.server_requests("window/showMessageRequest");
    assert_eq!(questions.len(), 1, "{questions:#?}");
    // As the CLI passes it: 2.1.330 as written, 2.1.197 normalized (`https://evil.com/@good.com/x`);
    // either way the question names evil.com, the host the fetch goes to.
    let question = questions[0]["message"].as_str().unwrap();
    assert!(question.starts_with("Claude wants to fetch https://evil.com"), "{question}");
    let entries = audit(&mut ws, result["sessionId"].as_str().unwrap()).await;
    assert_eq!(decisions(&entries), [triple("WebFetch", "deny", "user")]);
    assert!(entries[0].get("rule").is_none(), "{entries:#?}");
    let outputs = last_request(&ws).tool_results_for("WebFetch");
    assert!(outputs[0].contains("the user denied this call"), "{outputs:?}");
    ws.drain().await;
    ws.client.finish().await;
}
