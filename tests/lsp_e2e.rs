#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The language server end to end: an in-process claude-lsp, the real CLI, the fake API.

mod support;

use std::time::Duration;

use serde_json::{Value, json};

use support::cli::{processes_running, real_cli};
use support::fake_api::{RecordedRequest, Turn};
use support::lsp_client::{TestClient, full_capabilities, minimal_capabilities};
use support::workspace::{Workspace, cli_cwd};

const LIB: &str = "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";

/// Read the file, then replace `old` with `new` in it, then say `done`.
fn edit_script(
    file: &'static str,
    old: &'static str,
    new: &'static str,
    done: &'static str,
) -> impl Fn(&RecordedRequest) -> Turn + Send + Sync + 'static {
    move |request| {
        let path = format!("{}/{file}", cli_cwd(request));
        match request.turn_index() {
            0 => Turn::tool_use("Read", json!({"file_path": path})),
            1 => Turn::tool_use(
                "Edit",
                json!({"file_path": path, "old_string": old, "new_string": new}),
            ),
            _ => Turn::text(done),
        }
    }
}

fn range(sl: u32, sc: u32, el: u32, ec: u32) -> Value {
    json!({"start": {"line": sl, "character": sc}, "end": {"line": el, "character": ec}})
}

/// begin → report… → end, with the reports naming what the agent did.
fn assert_progress_well_formed(values: &[Value], expected_reports: &[&str]) {
    assert_eq!(values.first().unwrap()["kind"], "begin", "{values:#?}");
    assert_eq!(values.last().unwrap()["kind"], "end", "{values:#?}");
    assert!(values[1..values.len() - 1].iter().all(|v| v["kind"] == "report"), "{values:#?}");
    let reports: Vec<&str> = values.iter().filter_map(|v| v["message"].as_str()).collect();
    for expected in expected_reports {
        assert!(reports.contains(expected), "no report {expected:?} in {reports:#?}");
    }
}

#[tokio::test]
async fn refactor_of_a_selection_returns_the_exact_workspace_edit_and_leaves_the_disk_alone() {
    let script = edit_script("src/lib.rs", "fn add(a: i32", "fn sum(a: i32", "Renamed add to sum.");
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        support::fake_api::Script::from_fn(script),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    // The buffer has unsaved text the disk lacks: the agent must see the buffer.
    let buffer = LIB.replace("    a + b\n", "    a + b // unsaved marker\n");
    ws.client.did_open(&uri, "rust", 3, &buffer).await;

    let result = ws
        .client
        .request(
            "claude/refactor",
            json!({
                "textDocument": {"uri": uri}, "range": range(0, 0, 2, 1),
                "instruction": "rename add to sum", "workDoneToken": "t1",
            }),
        )
        .await
        .unwrap();

    assert_eq!(
        result["edit"],
        json!({"documentChanges": [{
            "textDocument": {"uri": uri, "version": 3},
            "edits": [{"range": range(0, 3, 0, 6), "newText": "sum"}],
        }]})
    );
    assert_eq!(result["files"], json!([{"uri": uri, "action": "modified"}]));
    assert_eq!(result["text"], "Renamed add to sum.");
    assert!(result["sessionId"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(result["metadata"]["numTurns"], 3);
    assert_eq!(ws.read("src/lib.rs"), LIB, "a run must never write the user's files");
    let first = &ws.api.requests()[0];
    assert!(first.all_text().contains("unsaved marker"), "the agent did not see the buffer");
    assert!(first.all_text().contains("rename add to sum"));
    assert_ne!(cli_cwd(first), ws.root().display().to_string(), "edit runs belong in the mirror");

    let progress = ws.client.progress_until_end(&json!("t1")).await;
    assert_progress_well_formed(&progress, &["Reading src/lib.rs", "Editing src/lib.rs"]);
    let end = progress.last().unwrap()["message"].as_str().unwrap().to_owned();
    assert!(end.starts_with("1 edit in 1 file · 3 turns · "), "{end}");
    let outputs = ws.client.take_notifications("claude/output");
    assert!(outputs.iter().any(|o| o["kind"] == "toolUse" && o["tool"] == "Edit"), "{outputs:#?}");
    assert!(outputs.iter().any(|o| o["kind"] == "result" && o["text"] == "Renamed add to sum."));
    // The user sees workspace paths, never the staging mirror's (it lives in the cache dir).
    let mirror = ws.cache_dir().display().to_string();
    let leaked: Vec<&Value> = outputs
        .iter()
        .filter(|o| o["text"].as_str().is_some_and(|t| t.contains(&mirror)))
        .collect();
    assert!(leaked.is_empty(), "mirror paths shown to the user: {leaked:#?}");
    ws.client.finish().await;
}

#[tokio::test]
async fn generate_creating_a_file_yields_create_file_and_its_content() {
    let content = "pub fn hello() -> &'static str {\n    \"hi\"\n}\n";
    let script = move |request: &RecordedRequest| match request.turn_index() {
        0 => Turn::tool_use(
            "Write",
            json!({"file_path": format!("{}/src/hello.rs", cli_cwd(request)), "content": content}),
        ),
        _ => Turn::text("Created src/hello.rs."),
    };
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        support::fake_api::Script::from_fn(script),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let new_uri = ws.uri("src/hello.rs");
    let result = ws
        .client
        .request(
            "claude/generate",
            json!({
                "textDocument": {"uri": uri}, "instruction": "add a hello function in a new file",
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        result["edit"],
        json!({"documentChanges": [
            {"kind": "create", "uri": new_uri, "options": {"ignoreIfExists": false}},
            {"textDocument": {"uri": new_uri, "version": null},
             "edits": [{"range": range(0, 0, 0, 0), "newText": content}]},
        ]})
    );
    assert_eq!(result["files"], json!([{"uri": new_uri, "action": "created"}]));
    assert!(!ws.path("src/hello.rs").exists(), "the file must not exist until the editor applies");
    drain_progress(&ws.client);
    ws.client.finish().await;
}

#[tokio::test]
async fn an_edit_after_an_emoji_on_a_crlf_line_lands_at_the_utf16_position() {
    let text = "let s = \"😀\"; let x = 1;\r\nlet y = 2;\r\n";
    let script = edit_script("main.rs", "let x = 1;", "let x = 41;", "Done.");
    let mut ws = Workspace::start(
        &[("main.rs", text)],
        support::fake_api::Script::from_fn(script),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("main.rs");
    ws.client.did_open(&uri, "rust", 1, text).await;
    let result = ws
        .client
        .request(
            "claude/refactor",
            json!({
                "textDocument": {"uri": uri}, "instruction": "make x 41",
            }),
        )
        .await
        .unwrap();
    // "😀" is two UTF-16 code units, so "1" sits at character 22; "41" keeps the "1".
    assert_eq!(
        result["edit"]["documentChanges"][0]["edits"],
        json!([
            {"range": range(0, 22, 0, 22), "newText": "4"},
        ])
    );
    drain_progress(&ws.client);
    ws.client.finish().await;
}

#[tokio::test]
async fn analyze_and_review_run_read_only_in_the_real_workspace() {
    let script = |request: &RecordedRequest| {
        let text = if request.last_user_text().contains("review")
            || request.all_text().contains("Review")
        {
            "Looks fine."
        } else {
            "It adds two numbers."
        };
        Turn::text(text)
    };
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        support::fake_api::Script::from_fn(script),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, LIB).await;
    for method in ["claude/analyze", "claude/review"] {
        let result = ws
            .client
            .request(method, json!({"textDocument": {"uri": uri}, "range": range(1, 0, 1, 9)}))
            .await
            .unwrap();
        assert!(result.get("edit").is_none(), "{method}: {result}");
        assert!(!result["text"].as_str().unwrap().is_empty(), "{method}: {result}");
    }
    let requests = ws.api.requests();
    assert_eq!(cli_cwd(&requests[0]), ws.root().canonicalize().unwrap().display().to_string());
    let tools = requests[0].tool_names();
    assert!(tools.contains(&"Read".to_owned()), "{tools:?}");
    assert!(!tools.iter().any(|t| t == "Edit" || t == "Write"), "read-only run got {tools:?}");
    drain_progress(&ws.client);
    ws.client.finish().await;
}

#[tokio::test]
async fn typing_elsewhere_during_a_run_is_merged_and_typing_on_the_same_lines_conflicts() {
    for overlapping in [false, true] {
        let file = "src/lib.rs";
        let script = move |request: &RecordedRequest| {
            let path = format!("{}/{file}", cli_cwd(request));
            match request.turn_index() {
                0 => Turn::tool_use("Read", json!({"file_path": path})),
                // Answer slowly, so the user types while the agent is busy.
                1 => Turn::delayed(
                    Duration::from_millis(1500),
                    Turn::tool_use(
                        "Edit",
                        json!({"file_path": path, "old_string": "fn add(a: i32", "new_string": "fn sum(a: i32"}),
                    ),
                ),
                _ => Turn::text("Renamed."),
            }
        };
        let mut ws = Workspace::start(
            &[(file, LIB)],
            support::fake_api::Script::from_fn(script),
            full_capabilities(),
            json!({}),
        )
        .await;
        let uri = ws.uri(file);
        ws.client.did_open(&uri, "rust", 1, LIB).await;
        let (_, answer) = ws
            .client
            .start_request(
                "claude/refactor",
                json!({
                    "textDocument": {"uri": uri}, "instruction": "rename add to sum",
                }),
            )
            .await;
        ws.api.wait_for_requests(2, Duration::from_secs(30)).await;
        let typed = if overlapping {
            json!([{"range": range(0, 0, 0, 2), "text": "pub fn"}])
        } else {
            json!([{"range": range(1, 9, 1, 9), "text": " + 0"}])
        };
        ws.client.did_change(&uri, 2, typed).await;
        let result = TestClient::answer(answer).await;
        if overlapping {
            let err = result.unwrap_err();
            assert_eq!(err["code"], -32015, "{err}");
            assert_eq!(err["data"]["kind"], "edit_conflict");
        } else {
            let result = result.unwrap();
            assert_eq!(
                result["edit"],
                json!({"documentChanges": [{
                    "textDocument": {"uri": uri, "version": 2},
                    "edits": [{"range": range(0, 3, 0, 6), "newText": "sum"}],
                }]})
            );
        }
        drain_progress(&ws.client);
        ws.client.finish().await;
    }
}

#[tokio::test]
async fn cancelling_a_request_mid_run_kills_the_cli_and_applies_nothing() {
    let chunks: Vec<String> = (0..200).map(|i| format!("word{i} ")).collect();
    // No warm pool: the only CLI with this test's HOME is the run's own.
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::slow_text(chunks, Duration::from_millis(100)),
        full_capabilities(),
        json!({"warmPool": 0}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let (id, answer) = ws
        .client
        .start_request(
            "claude/refactor",
            json!({
                "textDocument": {"uri": uri}, "instruction": "anything", "workDoneToken": "c1",
            }),
        )
        .await;
    ws.api.wait_for_requests(1, Duration::from_secs(30)).await;
    let home = ws.home.path().display().to_string();
    let ours = || {
        processes_running(&real_cli())
            .into_iter()
            .filter(|p| p.env_var("HOME").as_deref() == Some(home.as_str()))
            .count()
    };
    assert_eq!(ours(), 1, "the run's CLI should be running");
    ws.client.cancel(id).await;
    let err = TestClient::answer(answer).await.unwrap_err();
    assert_eq!(err["code"], -32800, "{err}");
    let progress = ws.client.progress_until_end(&json!("c1")).await;
    assert_eq!(progress.last().unwrap()["message"], "Cancelled; nothing was applied");
    for _ in 0..100 {
        if ours() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ours(), 0, "a CLI survived the cancel");
    assert!(ws.client.server_requests("workspace/applyEdit").is_empty());
    assert_eq!(ws.read("src/lib.rs"), LIB);
    drain_progress(&ws.client);
    ws.client.finish().await;
}

#[tokio::test]
async fn a_minimal_client_gets_a_changes_map_and_no_progress() {
    let script = edit_script("src/lib.rs", "fn add(a: i32", "fn sum(a: i32", "Renamed.");
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        support::fake_api::Script::from_fn(script),
        minimal_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let result = ws
        .client
        .request(
            "claude/refactor",
            json!({
                "textDocument": {"uri": uri}, "instruction": "rename add to sum",
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        result["edit"],
        json!({"changes": {uri.clone(): [{"range": range(0, 3, 0, 6), "newText": "sum"}]}})
    );
    assert!(ws.client.take_notifications("$/progress").is_empty());
    assert!(ws.client.server_requests("window/workDoneProgress/create").is_empty());
    drain_progress(&ws.client);
    ws.client.finish().await;
}

#[tokio::test]
async fn the_refactor_command_answers_at_once_and_delivers_through_apply_edit() {
    let script = edit_script("src/lib.rs", "fn add(a: i32", "fn sum(a: i32", "Renamed add to sum.");
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        support::fake_api::Script::from_fn(script),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, LIB).await;
    let started = ws
        .client
        .request(
            "workspace/executeCommand",
            json!({
                "command": "claude.refactor",
                "arguments": [{"textDocument": {"uri": uri}, "instruction": "rename add to sum"}],
            }),
        )
        .await
        .unwrap();
    assert!(started["runId"].as_str().is_some());
    let apply = ws.client.wait_for_server_request("workspace/applyEdit").await;
    assert_eq!(apply["label"], "Claude: refactor");
    assert_eq!(
        apply["edit"]["documentChanges"][0]["edits"],
        json!([{"range": range(0, 3, 0, 6), "newText": "sum"}])
    );
    let message = ws.client.next_notification("window/showMessage").await;
    assert_eq!(message["message"], "Claude: Renamed add to sum.");
    // The server created the progress token itself and reported on it.
    let create = ws.client.server_requests("window/workDoneProgress/create");
    assert_eq!(create.len(), 1);
    let progress = ws.client.progress_until_end(&create[0]["token"]).await;
    assert_progress_well_formed(&progress, &["Editing src/lib.rs"]);
    drain_progress(&ws.client);
    ws.client.finish().await;
}

#[tokio::test]
async fn the_cancel_command_stops_a_background_run() {
    let chunks: Vec<String> = (0..200).map(|i| format!("w{i} ")).collect();
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::slow_text(chunks, Duration::from_millis(100)),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let started = ws
        .client
        .request(
            "workspace/executeCommand",
            json!({
                "command": "claude.analyze", "arguments": [{"textDocument": {"uri": uri}}],
            }),
        )
        .await
        .unwrap();
    ws.api.wait_for_requests(1, Duration::from_secs(30)).await;
    let cancelled = ws
        .client
        .request(
            "workspace/executeCommand",
            json!({
                "command": "claude.cancel", "arguments": [{"runId": started["runId"]}],
            }),
        )
        .await
        .unwrap();
    assert_eq!(cancelled, json!({"cancelled": 1}));
    let message = ws.client.next_notification("window/showMessage").await;
    assert_eq!(message["message"], "Claude: analyze cancelled; nothing was applied");
    drain_progress(&ws.client);
    ws.client.finish().await;
}

#[tokio::test]
async fn bad_params_get_clear_errors_and_the_server_keeps_serving() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::text("unused"),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let missing = ws
        .client
        .request("claude/refactor", json!({"textDocument": {"uri": uri}}))
        .await
        .unwrap_err();
    assert_eq!(missing["data"]["kind"], "invalid_params", "{missing}");
    assert!(missing["message"].as_str().unwrap().contains("instruction"));
    let gone = ws
        .client
        .request("claude/analyze", json!({"textDocument": {"uri": ws.uri("nope.rs")}}))
        .await
        .unwrap_err();
    assert_eq!(gone["data"]["kind"], "file_access", "{gone}");
    let garbage =
        ws.client.request("claude/analyze", json!({"textDocument": 7})).await.unwrap_err();
    assert_eq!(garbage["code"], -32602, "{garbage}");
    let unknown = ws
        .client
        .request("workspace/executeCommand", json!({"command": "claude.nope"}))
        .await
        .unwrap_err();
    assert_eq!(unknown["data"]["kind"], "invalid_params");
    assert!(ws.api.requests().is_empty(), "bad requests must not reach the model");
    drain_progress(&ws.client);
    ws.client.finish().await;
}

/// Progress, output and usage of runs a test does not examine.
fn drain_progress(client: &TestClient) {
    client.take_notifications("$/progress");
    client.take_notifications("claude/output");
    client.take_notifications("claude/usage");
}

#[tokio::test]
async fn cancelling_from_the_progress_bar_stops_a_background_run() {
    let chunks: Vec<String> = (0..200).map(|i| format!("w{i} ")).collect();
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::slow_text(chunks, Duration::from_millis(100)),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    ws.client
        .request(
            "workspace/executeCommand",
            json!({"command": "claude.analyze", "arguments": [{"textDocument": {"uri": uri}}]}),
        )
        .await
        .unwrap();
    // Cancel as soon as the bar exists: before the run has even reached the CLI.
    let token =
        ws.client.wait_for_server_request("window/workDoneProgress/create").await["token"].clone();
    ws.client.notify("window/workDoneProgress/cancel", json!({"token": token})).await;
    let message = ws.client.next_notification("window/showMessage").await;
    assert_eq!(message["message"], "Claude: analyze cancelled; nothing was applied");
    let progress = ws.client.progress_until_end(&token).await;
    assert_eq!(progress.last().unwrap()["message"], "Cancelled; nothing was applied");
    drain_progress(&ws.client);
    ws.client.finish().await;
}
