//! Sessions, conversations, usage and budgets end to end: an in-process claude-lsp, the real
//! CLI, the fake API.
use std::path::PathBuf;

use claude_lsp::lsp_server::server::ServerOptions;
use serde_json::{Value, json};

use crate::support::cli::{cli_sessions, processes_running, real_cli};
use crate::support::fake_api::{RecordedRequest, Script, Turn};
use crate::support::lsp_client::{TestClient, full_capabilities as plain_capabilities};
use crate::support::wait::eventually;
use crate::support::workspace::{Workspace, cli_cwd};
use claude_lsp::protocol::lsp::ExecuteCommandParams;
use claude_lsp::protocol::lsp::request::ExecuteCommand;

const LIB: &str = "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";

/// No warm pool: the processes a test sees are the ones its runs started.
fn settings(extra: Value) -> Value {
    let mut settings = json!({"warmPool": 0});
    settings.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    settings
}

/// A full client with a status bar: it asks for `claude/usageChanged` after each run.
fn full_capabilities() -> Value {
    let mut capabilities = plain_capabilities();
    capabilities["experimental"] = json!({"claudeLsp": {"usageNotifications": true}});
    capabilities
}

fn range(sl: u32, sc: u32, el: u32, ec: u32) -> Value {
    json!({"start": {"line": sl, "character": sc}, "end": {"line": el, "character": ec}})
}

/// A refactor that renames `add` (read, edit, answer), then, when continued, swaps the
/// operands (read, edit, answer): the turn index counts the conversation's earlier turns.
fn rename_then_swap(request: &RecordedRequest) -> Turn {
    let path = format!("{}/src/lib.rs", cli_cwd(request));
    match request.turn_index() {
        0 | 3 => Turn::tool_use("Read", json!({"file_path": path})),
        1 => Turn::tool_use(
            "Edit",
            json!({"file_path": path, "old_string": "fn add(a: i32", "new_string": "fn sum(a: i32"}),
        ),
        2 => Turn::text("Renamed add to sum."),
        4 => Turn::tool_use(
            "Edit",
            json!({"file_path": path, "old_string": "    a + b", "new_string": "    b + a"}),
        ),
        _ => Turn::text("Swapped the operands."),
    }
}

/// The pids of the CLI processes started for this test (they carry its HOME).
fn our_clis(ws: &Workspace) -> Vec<u32> {
    cli_sessions(ws.home.path()).into_iter().map(|process| process.pid).collect()
}

async fn sessions(client: &mut TestClient, params: Value) -> Vec<Value> {
    let listed = client.request_json("claude/sessions", params).await.unwrap();
    listed["sessions"].as_array().unwrap().clone()
}

/// Stop the server (its live processes with it) and start a new one on the same cache dir,
/// CLI home and fake API: what an editor restart looks like.
async fn restart(ws: &mut Workspace, extra: Value) {
    let fresh = TestClient::start(ServerOptions {
        cache_dir: ws.cache_dir().to_path_buf(),
        ..ServerOptions::default()
    });
    let old = std::mem::replace(&mut ws.client, fresh);
    old.drain().await;
    old.finish().await;
    let options = ws.settings_section(settings(extra));
    let root = ws.root().to_path_buf();
    ws.client.initialize(&root, full_capabilities(), options).await;
}

/// The CLI's transcripts of conversation `id` (one per project folder it was continued in).
fn transcripts(ws: &Workspace, id: &str) -> Vec<PathBuf> {
    let projects = ws.home.config_dir().join("projects");
    std::fs::read_dir(projects)
        .unwrap()
        .map(|entry| entry.unwrap().path().join(format!("{id}.jsonl")))
        .filter(|path| path.exists())
        .collect()
}

fn index_dir(ws: &Workspace) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(ws.cache_dir().join("sessions"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "one workspace, one index: {dirs:?}");
    dirs[0].clone()
}

/// The CLI's working directory as of a request: a conversation continued elsewhere keeps its
/// first environment block and newer CLIs add an "Environment update" naming the new one.
fn current_cli_cwd(request: &RecordedRequest) -> String {
    const MARKER: &str = "Primary working directory: ";
    let body = request.body.to_string();
    let start =
        body.rfind(MARKER).unwrap_or_else(|| panic!("no working directory in {body:.2000}"))
            + MARKER.len();
    let rest = &body[start..];
    let end = rest.find(['\\', '"', ' ']).unwrap_or(rest.len());
    rest[..end].trim_end_matches('/').to_owned()
}

fn cost(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("not a cost: {value}"))
}

#[tokio::test]
async fn refining_a_refactor_continues_its_conversation_in_the_live_process() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Script::from_fn(rename_then_swap),
        full_capabilities(),
        settings(json!({})),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let home = ws.home.path().to_path_buf();
    ws.client.did_open(&uri, "rust", 1, LIB).await;

    let first = ws
        .client
        .request_json(
            "claude/refactor",
            json!({
                "textDocument": {"uri": uri}, "range": range(0, 0, 2, 1),
                "instruction": "rename add to sum", "workDoneToken": "r1",
            }),
        )
        .await
        .unwrap();
    let session = first["sessionId"].as_str().unwrap().to_owned();
    let end = ws.client.progress_until_end(&json!("r1")).await.pop().unwrap();
    assert!(
        end["message"]
            .as_str()
            .unwrap()
            .ends_with(&format!("${:.4}", cost(&first["metadata"]["costUsd"]))),
        "{end}"
    );
    let live = our_clis(&ws);
    assert_eq!(live.len(), 1, "the conversation's process stays alive for its next turn");
    let listed = sessions(&mut ws.client, json!({"uri": uri})).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], session.as_str());
    assert_eq!(listed[0]["live"]["pid"], live[0]);
    assert_eq!(listed[0]["action"], "refactor");
    assert_eq!(listed[0]["instruction"], "rename add to sum");
    assert_eq!(listed[0]["outcome"], "success");
    assert_eq!(listed[0]["summary"], "Renamed add to sum.");
    assert_eq!(listed[0]["range"], range(0, 0, 2, 1));
    let mirror = cli_cwd(&ws.api.requests()[0]);
    assert_eq!(listed[0]["mirror"], mirror.trim_end_matches('/'));

    // The editor applies the edit; the line it wrote now offers to refine it.
    ws.client.did_change(&uri, 2, json!([{"range": range(0, 3, 0, 6), "text": "sum"}])).await;
    let actions = ws.client.request_json("textDocument/codeAction", json!({
        "textDocument": {"uri": uri}, "range": range(0, 4, 0, 4), "context": {"diagnostics": []},
    })).await.unwrap();
    let refine = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|action| action["title"] == "Claude: refine… (Renamed add to sum.)")
        .unwrap_or_else(|| panic!("no refine action in {actions:#}"));
    assert_eq!(refine["command"]["command"], "claude.continue");
    let mut arguments = refine["command"]["arguments"][0].clone();
    assert_eq!(
        arguments,
        json!({"sessionId": session, "textDocument": {"uri": uri}, "range": range(0, 0, 1, 0)})
    );
    // What an editor plugin does with `Claude: refine…`: ask for the instruction.
    arguments["instruction"] = json!("swap the operands");
    let started = ws
        .client
        .request_json(
            "workspace/executeCommand",
            json!({
                "command": "claude.continue", "arguments": [arguments],
            }),
        )
        .await
        .unwrap();
    assert!(started["runId"].as_str().is_some(), "{started}");
    let apply = ws.client.wait_for_server_request("workspace/applyEdit").await;
    assert_eq!(
        apply["edit"]["documentChanges"][0]["edits"],
        json!([
            {"range": range(1, 4, 1, 5), "newText": "b"}, {"range": range(1, 8, 1, 9), "newText": "a"},
        ])
    );
    let message = ws.client.next_notification("window/showMessage").await;
    assert_eq!(message["message"], "Claude: Swapped the operands.");

    let requests = ws.api.requests();
    assert_eq!(requests.len(), 6);
    let follow_up = &requests[3];
    assert_eq!(follow_up.turn_index(), 3, "the follow-up carries the earlier turns");
    assert!(follow_up.all_text().contains("rename add to sum"), "{}", follow_up.all_text());
    assert!(follow_up.all_text().contains("Renamed add to sum."));
    assert!(follow_up.last_user_text().contains("swap the operands"));
    assert_eq!(cli_cwd(follow_up), mirror, "the same mirror");
    assert_eq!(our_clis(&ws), live, "the follow-up went to the live process: nothing was spawned");

    let listed = sessions(&mut ws.client, json!({})).await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["id"], session.as_str());
    assert_eq!(listed[0]["runs"].as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["runs"][1]["instruction"].as_str().unwrap(), "swap the operands");
    assert_eq!(listed[0]["summary"], "Swapped the operands.");
    assert_eq!(listed[0]["live"]["pid"], live[0]);
    // Six API calls of the same size: the follow-up costs what the first run did, not the
    // process's running total.
    let usage = ws.client.take_notifications("claude/usageChanged");
    assert_eq!(usage.len(), 2, "{usage:#?}");
    // For one release the old name carries the same reports.
    assert_eq!(ws.client.take_notifications("claude/usage"), usage);
    let (one, two) = (cost(&usage[0]["lastRun"]["costUsd"]), cost(&usage[1]["lastRun"]["costUsd"]));
    assert!(one > 0.0 && (one - two).abs() < 1e-9, "{one} vs {two}");
    assert!((cost(&usage[1]["total"]["costUsd"]) - one - two).abs() < 1e-9);
    assert_eq!(usage[1]["lastRun"]["sessionId"], session.as_str());

    // The live CLI writes its transcript as it goes: read it once the last answer is there.
    let messages = eventually("the transcript holds the last answer", async || {
        let detail =
            ws.client.request_json("claude/session", json!({"sessionId": session})).await.unwrap();
        let messages = detail["messages"].as_array().unwrap().clone();
        messages.iter().any(|m| m["text"] == "Swapped the operands.").then_some(messages)
    })
    .await;
    let users: Vec<&Value> = messages.iter().filter(|m| m["role"] == "user").collect();
    assert_eq!(users.len(), 2, "{messages:#?}");
    assert!(users[0]["text"].as_str().unwrap().contains("rename add to sum"));
    assert!(users[1]["text"].as_str().unwrap().contains("swap the operands"));
    let tools: Vec<&Value> =
        messages.iter().flat_map(|m| m["tools"].as_array().into_iter().flatten()).collect();
    assert_eq!(tools, [&json!("Read"), &json!("Edit"), &json!("Read"), &json!("Edit")]);
    assert!(
        messages.iter().any(|m| m["role"] == "assistant" && m["text"] == "Swapped the operands.")
    );
    ws.client.drain().await;
    let Workspace { client, .. } = ws;
    client.finish().await;
    let home = home.display().to_string();
    let ours = || {
        processes_running(&real_cli())
            .iter()
            .any(|p| p.env_var("HOME").as_deref() == Some(home.as_str()))
    };
    eventually("the live process closes at shutdown", async || (!ours()).then_some(())).await;
}

#[tokio::test]
async fn after_a_restart_the_index_is_there_and_a_follow_up_resumes_in_the_same_mirror() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Script::from_fn(rename_then_swap),
        full_capabilities(),
        settings(json!({})),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let first = ws
        .client
        .request_json(
            "claude/refactor",
            json!({
                "textDocument": {"uri": uri}, "instruction": "rename add to sum",
            }),
        )
        .await
        .unwrap();
    let session = first["sessionId"].as_str().unwrap().to_owned();

    restart(&mut ws, json!({})).await;
    assert!(our_clis(&ws).is_empty(), "the old server's processes are gone");
    let listed = sessions(&mut ws.client, json!({})).await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["id"], session.as_str());
    assert!(listed[0].get("live").is_none());

    // The disk still has `fn add`: the follow-up's mirror is synced from it, and the agent
    // (scripted) swaps the operands there.
    let second = ws.client.request_json("claude/refactor", json!({
        "textDocument": {"uri": uri}, "instruction": "swap the operands", "sessionId": session,
    })).await.unwrap();
    assert_eq!(second["sessionId"], session.as_str(), "--resume keeps the conversation");
    assert_eq!(second["text"], "Swapped the operands.");
    let requests = ws.api.requests();
    let resumed = &requests[3];
    assert_eq!(resumed.turn_index(), 3);
    assert!(resumed.all_text().contains("rename add to sum"));
    assert_eq!(cli_cwd(resumed), cli_cwd(&requests[0]), "resumed in the conversation's mirror");
    let listed = sessions(&mut ws.client, json!({"action": "refactor"})).await;
    assert_eq!(listed[0]["runs"].as_array().unwrap().len(), 2);
    assert!(sessions(&mut ws.client, json!({"action": "review"})).await.is_empty());
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_read_only_follow_up_of_an_edit_conversation_continues_it_from_the_workspace() {
    let script = |request: &RecordedRequest| match request.turn_index() {
        0..=2 => rename_then_swap(request),
        _ => Turn::text("It renames add to sum."),
    };
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Script::from_fn(script),
        full_capabilities(),
        settings(json!({})),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let first = ws
        .client
        .request_json(
            "claude/refactor",
            json!({
                "textDocument": {"uri": uri}, "instruction": "rename add to sum",
            }),
        )
        .await
        .unwrap();
    let session = first["sessionId"].as_str().unwrap().to_owned();
    let edit_process = our_clis(&ws);
    assert_eq!(edit_process.len(), 1);

    // Its live process runs in the mirror with edit tools: it cannot serve an analyze, so the
    // conversation moves to a new process in the workspace (older CLIs find a conversation only
    // under their working directory: the transcript goes along).
    let next = ws.client.request_json("claude/analyze", json!({
        "textDocument": {"uri": uri}, "instruction": "what did you change?", "sessionId": session,
    })).await.unwrap();
    assert_eq!(next["sessionId"], session.as_str());
    let requests = ws.api.requests();
    let follow_up = &requests[3];
    assert_eq!(follow_up.turn_index(), 3);
    assert!(follow_up.all_text().contains("rename add to sum"));
    let workspace = ws.root().canonicalize().unwrap().display().to_string();
    assert_eq!(current_cli_cwd(follow_up), workspace);
    let now = our_clis(&ws);
    assert_eq!(now.len(), 1, "the mirror's process closed, the workspace's stays: {now:?}");
    assert_ne!(now, edit_process);
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_fork_gets_a_new_conversation_that_remembers_its_parent() {
    let script = |request: &RecordedRequest| Turn::text(format!("answer {}", request.turn_index()));
    // A client without a status bar: it did not ask for usage notifications.
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Script::from_fn(script),
        plain_capabilities(),
        settings(json!({})),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let first = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": uri}}))
        .await
        .unwrap();
    let parent = first["sessionId"].as_str().unwrap().to_owned();
    let parent_calls = ws.api.requests().len();
    let fork = ws.client.request_json("claude/analyze", json!({
        "textDocument": {"uri": uri}, "instruction": "and the edge cases?", "sessionId": parent, "fork": true,
    })).await.unwrap();
    let child = fork["sessionId"].as_str().unwrap().to_owned();
    assert_ne!(child, parent, "--fork-session starts a new conversation");
    let forked = &ws.api.requests()[parent_calls];
    assert_eq!(forked.turn_index(), parent_calls, "the fork carries the parent's turns");
    assert!(forked.all_text().contains("answer 0"));
    assert!(forked.last_user_text().contains("and the edge cases?"));

    let listed = sessions(&mut ws.client, json!({})).await;
    let find = |id: &str| {
        listed
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {listed:#?}"))
            .clone()
    };
    assert_eq!(find(&child)["parent"], parent.as_str());
    assert!(find(&parent).get("parent").is_none());
    assert_eq!(find(&parent)["runs"].as_array().unwrap().len(), 1, "the parent is unchanged");
    assert!(ws.client.take_notifications("claude/usage").is_empty(), "not asked for");
    assert!(ws.client.take_notifications("claude/usageChanged").is_empty(), "not asked for");
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn usage_totals_are_the_sum_of_the_runs() {
    let script = |request: &RecordedRequest| Turn::text(format!("answer {}", request.turn_index()));
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Script::from_fn(script),
        full_capabilities(),
        settings(json!({"dailyBudgetUsd": 100})),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let mut results = Vec::new();
    let first = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": uri}}))
        .await
        .unwrap();
    let session = first["sessionId"].clone();
    results.push(first);
    // A follow-up in the live process, whose CLI reports running totals.
    results.push(
        ws.client
            .request_json(
                "claude/analyze",
                json!({
                    "textDocument": {"uri": uri}, "instruction": "more", "sessionId": session,
                }),
            )
            .await
            .unwrap(),
    );
    results.push(
        ws.client
            .request_json("claude/review", json!({"textDocument": {"uri": uri}}))
            .await
            .unwrap(),
    );

    let sum = |key: &str| results.iter().map(|r| cost(&r["metadata"][key])).sum::<f64>();
    let report = ws.client.request_json("claude/usage", json!({})).await.unwrap();
    for (total_key, metadata_key) in [
        ("costUsd", "costUsd"),
        ("inputTokens", "inputTokens"),
        ("outputTokens", "outputTokens"),
        ("turns", "numTurns"),
    ] {
        assert!(
            (cost(&report["total"][total_key]) - sum(metadata_key)).abs() < 1e-9,
            "{total_key}: {report:#} vs {results:#?}"
        );
    }
    assert_eq!(report["total"]["runs"], 3);
    assert_eq!(report["today"], report["total"]);
    assert_eq!(report["byDay"][report["day"].as_str().unwrap()], report["total"]);
    let by_model: f64 =
        report["byModel"].as_object().unwrap().values().map(|m| cost(&m["costUsd"])).sum();
    assert!((by_model - cost(&report["total"]["costUsd"])).abs() < 1e-9, "{report:#}");
    assert_eq!(report["dailyBudgetUsd"], 100.0);
    assert_eq!(report["workspaces"].as_array().unwrap().len(), 1);
    // One API call each: the same cost each.
    let costs: Vec<f64> = results.iter().map(|r| cost(&r["metadata"]["costUsd"])).collect();
    assert!(costs.iter().all(|c| *c > 0.0 && (c - costs[0]).abs() < 1e-9), "{costs:?}");
    let for_file = ws.client.request_json("claude/usage", json!({"uri": uri})).await.unwrap();
    assert_eq!(for_file["total"], report["total"]);

    // After each run, for status bars.
    let notes = ws.client.take_notifications("claude/usageChanged");
    assert_eq!(notes.len(), 3);
    assert_eq!(ws.client.take_notifications("claude/usage"), notes);
    assert_eq!(notes[2]["total"], report["total"]);
    let shown = ws
        .client
        .request::<ExecuteCommand>(ExecuteCommandParams {
            command: "claude.showUsage".to_owned(),
            ..ExecuteCommandParams::default()
        })
        .await
        .unwrap()
        .expect("claude.showUsage returns the report");
    assert_eq!(shown["total"], report["total"]);
    let message = ws.client.next_notification("window/showMessage").await;
    assert!(message["message"].as_str().unwrap().starts_with("Claude usage today: $"), "{message}");
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_daily_budget_stops_the_next_run_before_it_starts() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::text("fine"),
        full_capabilities(),
        // The result cache would answer the repeated run for nothing: only a run that would
        // reach the API is refused.
        settings(json!({"dailyBudgetUsd": 0.00001, "resultCache": false})),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    // One call costs more than the whole day: the run stops after it.
    let stopped = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": uri}}))
        .await
        .unwrap_err();
    assert_eq!(stopped["data"]["kind"], "budget_exceeded", "{stopped}");
    assert!(stopped["message"].as_str().unwrap().contains("dailyBudgetUsd"), "{stopped}");
    let calls = ws.api.requests().len();
    assert_eq!(calls, 1);
    let err = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": uri}}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], -32009, "{err}");
    assert_eq!(err["data"]["kind"], "budget_exceeded");
    assert!(err["message"].as_str().unwrap().contains("daily budget of $0.0000"), "{err}");
    assert!(err["data"]["hint"].as_str().unwrap().contains("dailyBudgetUsd"));
    assert_eq!(ws.api.requests().len(), calls, "the refused run never reached the API");
    // Commands say so too.
    ws.client
        .request_json(
            "workspace/executeCommand",
            json!({
                "command": "claude.review", "arguments": [{"textDocument": {"uri": uri}}],
            }),
        )
        .await
        .unwrap();
    let message = ws.client.next_notification("window/showMessage").await;
    assert!(message["message"].as_str().unwrap().contains("daily budget"), "{message}");
    assert_eq!(ws.api.requests().len(), calls);
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_corrupt_index_is_moved_aside_and_rebuilt_with_a_warning() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::text("fine"),
        full_capabilities(),
        settings(json!({})),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let run = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": uri}}))
        .await
        .unwrap();
    let dir = index_dir(&ws);
    let index = dir.join("index.jsonl");
    let mut damaged = std::fs::read(&index).unwrap();
    damaged.extend_from_slice(b"{\"id\": \"cut off in the mid\n\x00\x01garbage\n");
    std::fs::write(&index, &damaged).unwrap();
    std::fs::write(dir.join("usage.json"), "not json at all").unwrap();

    restart(&mut ws, json!({})).await;
    let listed = sessions(&mut ws.client, json!({})).await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["id"], run["sessionId"]);
    let warning = ws.client.next_notification("window/showMessage").await;
    let text = warning["message"].as_str().unwrap();
    assert_eq!(warning["type"], 2, "a warning: {warning}");
    assert!(text.contains("was damaged: 1 session(s) recovered, 2 unreadable line(s)"), "{text}");
    let kept: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("index.jsonl.corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "the damaged file is kept aside");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), damaged);
    // The usage totals come back from the index.
    let report = ws.client.request_json("claude/usage", json!({})).await.unwrap();
    assert!(
        (cost(&report["total"]["costUsd"]) - cost(&run["metadata"]["costUsd"])).abs() < 1e-9,
        "{report:#}"
    );
    let warning = ws.client.next_notification("window/showMessage").await;
    assert!(
        warning["message"].as_str().unwrap().contains("rebuilt from the session index"),
        "{warning}"
    );
    // And the server keeps recording (a real run, not the cached answer).
    let again = json!({"textDocument": {"uri": uri}, "noCache": true});
    ws.client.request_json("claude/analyze", again).await.unwrap();
    assert_eq!(sessions(&mut ws.client, json!({})).await.len(), 2);
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn unknown_and_deleted_conversations_get_clear_errors() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::text("fine"),
        full_capabilities(),
        settings(json!({})),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let unknown = "00000000-0000-4000-8000-000000000000";
    let err = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": uri}, "sessionId": unknown}))
        .await
        .unwrap_err();
    assert_eq!(err["data"]["kind"], "session_not_found", "{err}");
    assert_eq!(err["code"], -32020);
    assert!(err["message"].as_str().unwrap().contains(unknown));
    let err = ws
        .client
        .request_json(
            "claude/analyze",
            json!({"textDocument": {"uri": uri}, "sessionId": "../../etc"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err["data"]["kind"], "invalid_params", "{err}");
    let err =
        ws.client.request_json("claude/session", json!({"sessionId": unknown})).await.unwrap_err();
    assert_eq!(err["data"]["kind"], "session_not_found", "{err}");
    let err = ws.client.request_json("workspace/executeCommand", json!({
        "command": "claude.continue", "arguments": [{"sessionId": unknown, "instruction": "go on"}],
    })).await.unwrap_err();
    assert_eq!(err["data"]["kind"], "session_not_found", "{err}");
    assert!(ws.api.requests().is_empty(), "nothing reached the model");

    // A conversation whose transcript was deleted, with no live process to fall back on.
    let run = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": uri}}))
        .await
        .unwrap();
    let session = run["sessionId"].as_str().unwrap().to_owned();
    let err = ws
        .client
        .request_json(
            "workspace/executeCommand",
            json!({
                "command": "claude.continue", "arguments": [{"sessionId": session}],
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err["data"]["kind"], "invalid_params", "an instruction is required: {err}");
    let calls = ws.api.requests().len();
    restart(&mut ws, json!({})).await;
    for transcript in transcripts(&ws, &session) {
        std::fs::remove_file(transcript).unwrap();
    }
    let err = ws
        .client
        .request_json(
            "claude/analyze",
            json!({
                "textDocument": {"uri": uri}, "sessionId": session, "instruction": "go on",
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err["data"]["kind"], "session_not_found", "{err}");
    assert!(err["message"].as_str().unwrap().contains("transcript is gone"), "{err}");
    let detail =
        ws.client.request_json("claude/session", json!({"sessionId": session})).await.unwrap();
    assert_eq!(detail["messages"], json!([]), "the index still knows it; the transcript is gone");
    assert_eq!(ws.api.requests().len(), calls);
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn an_idle_conversation_closes_after_session_idle_secs() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::text("fine"),
        full_capabilities(),
        settings(json!({"sessionIdleSecs": 1})),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let run = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": uri}}))
        .await
        .unwrap();
    eventually("the idle process closes", async || our_clis(&ws).is_empty().then_some(())).await;
    let listed = sessions(&mut ws.client, json!({})).await;
    assert_eq!(listed[0]["id"], run["sessionId"]);
    assert!(listed[0].get("live").is_none(), "{listed:#?}");
    // The conversation goes on in a new process.
    let next = ws
        .client
        .request_json(
            "claude/analyze",
            json!({
                "textDocument": {"uri": uri}, "instruction": "again", "sessionId": run["sessionId"],
            }),
        )
        .await
        .unwrap();
    assert_eq!(next["sessionId"], run["sessionId"]);
    let calls = ws.api.requests();
    let resumed = calls.iter().find(|r| r.last_user_text().contains("again")).unwrap();
    assert!(resumed.turn_index() > 0, "the new process resumed the conversation");
    ws.client.drain().await;
    ws.client.finish().await;
}
