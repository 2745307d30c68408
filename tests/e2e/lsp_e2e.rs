//! The language server end to end: an in-process claude-lsp, the real CLI, the fake API.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::cli::{cli_sessions, real_cli};
use crate::support::fake_api::{Gate, RecordedRequest, Turn};
use crate::support::lsp_client::{
    TestClient, apply_edits, full_capabilities, minimal_capabilities,
};
use crate::support::wait::eventually;
use crate::support::workspace::{Workspace, cli_cwd};
use claude_lsp::protocol::lsp::notification::DidChangeConfiguration;
use claude_lsp::protocol::lsp::request::ExecuteCommand;
use claude_lsp::protocol::lsp::{DidChangeConfigurationParams, ExecuteCommandParams};
use claude_lsp::protocol::lsp_ext::{SessionParams, requests};

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
        crate::support::fake_api::Script::from_fn(script),
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
        .request_json(
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
    assert!(
        ws.client.server_requests("workspace/applyEdit").is_empty(),
        "a custom request returns its edit and never applies it"
    );
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
        crate::support::fake_api::Script::from_fn(script),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let new_uri = ws.uri("src/hello.rs");
    let result = ws
        .client
        .request_json(
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
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn an_edit_after_an_emoji_on_a_crlf_line_lands_at_the_utf16_position() {
    let text = "let s = \"😀\"; let x = 1;\r\nlet y = 2;\r\n";
    let script = edit_script("main.rs", "let x = 1;", "let x = 41;", "Done.");
    let mut ws = Workspace::start(
        &[("main.rs", text)],
        crate::support::fake_api::Script::from_fn(script),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("main.rs");
    ws.client.did_open(&uri, "rust", 1, text).await;
    let result = ws
        .client
        .request_json(
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
    ws.client.drain().await;
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
        crate::support::fake_api::Script::from_fn(script),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, LIB).await;
    for method in ["claude/analyze", "claude/review"] {
        let result = ws
            .client
            .request_json(method, json!({"textDocument": {"uri": uri}, "range": range(1, 0, 1, 9)}))
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
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn every_custom_request_answers_with_the_type_the_protocol_declares() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::text("It adds two numbers."),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let params = serde_json::from_value(json!({"textDocument": {"uri": uri}})).unwrap();
    // `request::<R>` fails unless the answer parses as `R::Result`.
    let analyzed = ws.client.request::<requests::Analyze>(params).await.unwrap();
    assert!(analyzed.text.starts_with("It adds two numbers."), "{analyzed:?}");
    assert!(analyzed.metadata.num_turns >= 1, "{analyzed:?}");
    let runs = ws.client.request::<requests::Runs>(None).await.unwrap();
    assert!(runs.runs.is_empty(), "{runs:?}");
    let metrics = ws.client.request::<requests::Metrics>(None).await.unwrap();
    assert_eq!(metrics.metrics.requests.total, 1, "{metrics:?}");
    let session_id = analyzed.session_id.clone();
    let sessions = ws.client.request::<requests::Sessions>(None).await.unwrap();
    assert!(sessions.sessions.iter().any(|s| s.record.id == session_id), "{sessions:?}");
    // The live CLI writes its transcript as it goes: wait until the answer is in it.
    eventually("the transcript holds the answer", async || {
        let session = SessionParams { session_id: session_id.clone() };
        let detail = ws.client.request::<requests::Session>(session).await.unwrap();
        detail.messages.iter().any(|m| m.text.starts_with("It adds two numbers.")).then_some(())
    })
    .await;
    let usage = ws.client.request::<requests::Usage>(None).await.unwrap();
    assert_eq!(usage.today.runs, 1, "{usage:?}");
    ws.client.request::<requests::Audit>(None).await.unwrap();
    ws.client.drain().await;
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
            crate::support::fake_api::Script::from_fn(script),
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
        ws.client.drain().await;
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
    let home = ws.home.path().to_path_buf();
    let ours = || cli_sessions(&home).len();
    assert_eq!(ours(), 1, "the run's CLI should be running");
    ws.client.cancel(id).await;
    let err = TestClient::answer(answer).await.unwrap_err();
    assert_eq!(err["code"], -32800, "{err}");
    let progress = ws.client.progress_until_end(&json!("c1")).await;
    assert_eq!(progress.last().unwrap()["message"], "Cancelled; nothing was applied");
    eventually("the cancelled run's CLI is gone", async || (ours() == 0).then_some(())).await;
    assert!(ws.client.server_requests("workspace/applyEdit").is_empty());
    assert_eq!(ws.read("src/lib.rs"), LIB);
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_minimal_client_gets_a_changes_map_and_no_progress() {
    let script = edit_script("src/lib.rs", "fn add(a: i32", "fn sum(a: i32", "Renamed.");
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        crate::support::fake_api::Script::from_fn(script),
        minimal_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let result = ws
        .client
        .request_json(
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
    // Nor is it asked to watch files it cannot watch for a server.
    assert!(ws.client.server_requests("client/registerCapability").is_empty());
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn the_refactor_command_answers_at_once_and_delivers_through_apply_edit() {
    let script = edit_script("src/lib.rs", "fn add(a: i32", "fn sum(a: i32", "Renamed add to sum.");
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        crate::support::fake_api::Script::from_fn(script),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, LIB).await;
    let started = ws
        .client
        .request_json(
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
    save_transcript(&ws.client);
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
    ws.client.drain().await;
    ws.client.finish().await;
}

/// A workspace whose model streams its answer for 20 s, and `claude.analyze` started there as a
/// command: returns the run id.
async fn slow_background_analyze() -> (Workspace, Value) {
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
        .request_json(
            "workspace/executeCommand",
            json!({"command": "claude.analyze", "arguments": [{"textDocument": {"uri": uri}}]}),
        )
        .await
        .unwrap();
    (ws, started["runId"].clone())
}

#[tokio::test]
async fn the_cancel_command_stops_a_background_run() {
    let (mut ws, run_id) = slow_background_analyze().await;
    ws.api.wait_for_requests(1, Duration::from_secs(30)).await;
    let cancelled = ws
        .client
        .request_json(
            "workspace/executeCommand",
            json!({"command": "claude.cancel", "arguments": [{"runId": run_id}]}),
        )
        .await
        .unwrap();
    assert_eq!(cancelled, json!({"cancelled": 1}));
    let message = ws.client.next_notification("window/showMessage").await;
    assert_eq!(message["message"], "Claude: analyze cancelled; nothing was applied");
    ws.client.drain().await;
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
        .request_json("claude/refactor", json!({"textDocument": {"uri": uri}}))
        .await
        .unwrap_err();
    assert_eq!(missing["data"]["kind"], "invalid_params", "{missing}");
    assert!(missing["message"].as_str().unwrap().contains("instruction"));
    let gone = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": ws.uri("nope.rs")}}))
        .await
        .unwrap_err();
    assert_eq!(gone["data"]["kind"], "file_access", "{gone}");
    let garbage =
        ws.client.request_json("claude/analyze", json!({"textDocument": 7})).await.unwrap_err();
    assert_eq!(garbage["code"], -32602, "{garbage}");
    let unknown = ws
        .client
        .request::<ExecuteCommand>(ExecuteCommandParams {
            command: "claude.nope".to_owned(),
            ..ExecuteCommandParams::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown["data"]["kind"], "invalid_params");
    assert!(ws.api.requests().is_empty(), "bad requests must not reach the model");
    ws.client.drain().await;
    ws.client.finish().await;
}

/// Every LSP message so far, written to the file `CLAUDE_LSP_TEST_TRANSCRIPT` names (for the
/// record of one run; nothing happens when it is unset).
fn save_transcript(client: &TestClient) {
    if let Some(path) = std::env::var_os("CLAUDE_LSP_TEST_TRANSCRIPT").filter(|p| !p.is_empty()) {
        std::fs::write(&path, client.transcript())
            .unwrap_or_else(|err| panic!("cannot write the transcript to {path:?}: {err}"));
    }
}

#[tokio::test]
async fn cancelling_from_the_progress_bar_stops_a_background_run() {
    let (ws, _) = slow_background_analyze().await;
    // Cancel as soon as the bar exists: before the run has even reached the CLI.
    let token =
        ws.client.wait_for_server_request("window/workDoneProgress/create").await["token"].clone();
    ws.client.notify_json("window/workDoneProgress/cancel", json!({"token": token})).await;
    let message = ws.client.next_notification("window/showMessage").await;
    assert_eq!(message["message"], "Claude: analyze cancelled; nothing was applied");
    let progress = ws.client.progress_until_end(&token).await;
    assert_eq!(progress.last().unwrap()["message"], "Cancelled; nothing was applied");
    ws.client.drain().await;
    ws.client.finish().await;
}

/// Wait until the fake API has received a request satisfying `pred`; returns it.
async fn wait_for_api_request(
    ws: &Workspace,
    what: &str,
    pred: impl Fn(&RecordedRequest) -> bool,
) -> RecordedRequest {
    ws.api.wait_for_request(what, crate::support::wait::WAIT, pred).await
}

#[tokio::test]
async fn after_a_cancelled_refactor_the_mirror_serves_the_next_one_without_the_cancelled_edit() {
    const CANCELLED: &str = "make add subtract";
    // The cancelled run edits the mirror, then its model never answers again; the next run
    // renames `add`.
    let script = |request: &RecordedRequest| {
        let path = format!("{}/src/lib.rs", cli_cwd(request));
        let cancelled_run = request.all_text().contains(CANCELLED);
        match (cancelled_run, request.turn_index()) {
            (_, 0) => Turn::tool_use("Read", json!({"file_path": path})),
            (true, 1) => Turn::tool_use(
                "Edit",
                json!({"file_path": path, "old_string": "a + b", "new_string": "a - b"}),
            ),
            (true, _) => Turn::Hang,
            (false, 1) => Turn::tool_use(
                "Edit",
                json!({"file_path": path, "old_string": "fn add(a: i32", "new_string": "fn sum(a: i32"}),
            ),
            (false, _) => Turn::text("Renamed add to sum."),
        }
    };
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        crate::support::fake_api::Script::from_fn(script),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, LIB).await;

    let (id, answer) = ws
        .client
        .start_request(
            "claude/refactor",
            json!({
                "textDocument": {"uri": uri}, "instruction": CANCELLED, "workDoneToken": "first",
            }),
        )
        .await;
    // The request after the Edit: the edit is on the mirror's disk, and the model hangs.
    let hanging = wait_for_api_request(&ws, "the cancelled run's third turn", |r| {
        r.all_text().contains(CANCELLED) && r.turn_index() == 2
    })
    .await;
    let mirror = cli_cwd(&hanging);
    assert_ne!(mirror, ws.root().display().to_string(), "edit runs belong in the mirror");
    let mirrored = std::fs::read_to_string(format!("{mirror}/src/lib.rs")).unwrap();
    assert!(
        mirrored.contains("a - b"),
        "the cancelled run's edit is not in the mirror: {mirrored}"
    );

    ws.client.cancel(id).await;
    let err = TestClient::answer(answer).await.unwrap_err();
    assert_eq!(err["code"], -32800, "{err}");
    // The run has let go of its mirror once its progress ends.
    let progress = ws.client.progress_until_end(&json!("first")).await;
    assert_eq!(progress.last().unwrap()["message"], "Cancelled; nothing was applied");

    let result = ws
        .client
        .request_json(
            "claude/refactor",
            json!({
                "textDocument": {"uri": uri}, "instruction": "rename add to sum",
                "workDoneToken": "second",
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        result["edit"],
        json!({"documentChanges": [{
            "textDocument": {"uri": uri, "version": 1},
            "edits": [{"range": range(0, 3, 0, 6), "newText": "sum"}],
        }]}),
        "the cancelled run's edit leaked into the next result"
    );
    assert_eq!(result["files"], json!([{"uri": uri, "action": "modified"}]));
    let second: Vec<RecordedRequest> =
        ws.api.requests().into_iter().filter(|r| !r.all_text().contains(CANCELLED)).collect();
    assert_eq!(cli_cwd(&second[0]), mirror, "the next run should reuse the same mirror");
    let read = second
        .iter()
        .flat_map(|r| r.tool_results_for("Read"))
        .next()
        .expect("the next run read the file");
    assert!(
        read.contains("a + b") && !read.contains("a - b"),
        "the agent saw a stale mirror: {read}"
    );
    assert_eq!(ws.read("src/lib.rs"), LIB, "a run must never write the user's files");
    assert!(ws.client.server_requests("workspace/applyEdit").is_empty());
    let progress = ws.client.progress_until_end(&json!("second")).await;
    assert_progress_well_formed(&progress, &["Editing src/lib.rs"]);
    ws.client.drain().await;
    ws.client.finish().await;
}

/// An analysis answered the way the server asks for it: one call of the CLI's StructuredOutput
/// tool with the Markdown `summary` and no findings.
fn analysis(summary: &'static str) -> crate::support::fake_api::Script {
    crate::support::fake_api::Script::from_fn(move |request: &RecordedRequest| {
        match request.turn_index() {
            0 => Turn::tool_use("StructuredOutput", json!({"summary": summary, "findings": []})),
            _ => Turn::text("Done."),
        }
    })
}

/// `claude/metrics`' view of `maxConcurrent`: the scheduler's limit as it is now.
async fn max_concurrent(client: &mut TestClient) -> Value {
    let metrics = client.request_json("claude/metrics", json!(null)).await.unwrap();
    metrics["scheduler"]["maxConcurrent"].clone()
}

/// Every `window/showMessage` so far, each `(type, message)`, waiting for at least `count`.
async fn messages(client: &TestClient, count: usize) -> Vec<(Value, String)> {
    let mut found = Vec::new();
    for _ in 0..count {
        let message = client.next_notification("window/showMessage").await;
        found.push((message["type"].clone(), message["message"].as_str().unwrap().to_owned()));
    }
    found.extend(
        client
            .take_notifications("window/showMessage")
            .into_iter()
            .map(|m| (m["type"].clone(), m["message"].as_str().unwrap().to_owned())),
    );
    found
}

#[tokio::test]
async fn bad_settings_warn_by_name_and_fall_back_while_good_ones_apply() {
    const MARKER: &str = "Always answer like a pirate (settings marker 7f3a).";
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        analysis("It adds two numbers."),
        full_capabilities(),
        json!({"maxConcurrent": "lots", "bogusSetting": true}),
    )
    .await;
    let warnings = messages(&ws.client, 2).await;
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    for (field, detail) in [("claude.maxConcurrent", "using 4"), ("claude.bogusSetting", "unknown")]
    {
        let warning = warnings.iter().find(|(_, text)| text.contains(field));
        let (kind, text) =
            warning.unwrap_or_else(|| panic!("no warning names {field}: {warnings:#?}"));
        assert_eq!(kind, &json!(2), "a settings problem is a warning: {text}");
        assert!(text.contains(detail), "{text}");
    }
    assert_eq!(max_concurrent(&mut ws.client).await, 4, "the default replaces the bad value");
    // The server keeps working with the rest of the settings (the CLI path, the fake API).
    let uri = ws.uri("src/lib.rs");
    let analyzed = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": uri}}))
        .await
        .unwrap();
    assert_eq!(analyzed["text"], "It adds two numbers.");
    assert!(!ws.api.requests()[0].system_text().contains(MARKER));

    // didChangeConfiguration: the server pulls the `claude` section; one bad field warns, the
    // good ones apply.
    ws.change_settings(json!({
        "warmPool": 0, "maxConcurrent": 2, "appendSystemPrompt": MARKER, "timeoutSecs": "soon",
    }))
    .await;
    let warnings = messages(&ws.client, 1).await;
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let (kind, text) = &warnings[0];
    assert_eq!(kind, &json!(2));
    assert!(text.contains("claude.timeoutSecs") && text.contains("using 300"), "{text}");
    assert_eq!(
        ws.client.server_requests("workspace/configuration"),
        [json!({"items": [{"section": "claude"}]})]
    );
    assert_eq!(max_concurrent(&mut ws.client).await, 2);
    let analyzed = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": uri}}))
        .await
        .unwrap();
    assert_eq!(analyzed["text"], "It adds two numbers.");
    let last = ws.api.requests().pop().unwrap();
    assert!(last.system_text().contains(MARKER), "appendSystemPrompt did not reach the CLI");
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_client_without_workspace_configuration_pushes_its_settings() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::text("unused"),
        minimal_capabilities(),
        json!({"warmPool": 0}),
    )
    .await;
    let pushed = json!({"claude": {
        "cliPath": real_cli(), "maxConcurrent": 3, "warmPool": 0, "logLevel": "loud",
    }});
    ws.client
        .notify::<DidChangeConfiguration>(DidChangeConfigurationParams { settings: pushed })
        .await;
    let warnings = messages(&ws.client, 1).await;
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].1.contains("claude.logLevel"), "{warnings:#?}");
    assert!(ws.client.server_requests("workspace/configuration").is_empty());
    assert_eq!(max_concurrent(&mut ws.client).await, 3);
    ws.client.finish().await;
}

const LONG_ANSWER: &str = "\
## What `add` does

It returns the sum of its two arguments. Nothing else happens: no allocation, no I/O.

## Caveats

In a debug build an overflowing sum panics; in a release build it wraps around. Callers that \
add untrusted numbers should use `checked_add` and decide what an overflow means for them.";

#[tokio::test]
async fn a_long_answer_arrives_as_a_document_or_as_a_message_when_documents_are_unsupported() {
    for can_show_documents in [true, false] {
        let capabilities =
            if can_show_documents { full_capabilities() } else { minimal_capabilities() };
        let mut ws = Workspace::start(
            &[("src/lib.rs", LIB)],
            analysis(LONG_ANSWER),
            capabilities,
            json!({}),
        )
        .await;
        let uri = ws.uri("src/lib.rs");
        ws.client
            .request_json(
                "workspace/executeCommand",
                json!({"command": "claude.analyze", "arguments": [{"textDocument": {"uri": uri}}]}),
            )
            .await
            .unwrap();
        if can_show_documents {
            let shown = ws.client.wait_for_server_request("window/showDocument").await;
            assert_eq!(shown["takeFocus"], true, "{shown}");
            assert_ne!(shown["external"], true, "{shown}");
            let uri: claude_lsp::protocol::lsp::Uri =
                shown["uri"].as_str().unwrap().parse().unwrap();
            let path = claude_lsp::model::edits::uri_to_path(&uri).unwrap();
            assert_eq!(path.extension().and_then(|e| e.to_str()), Some("md"), "{shown}");
            assert!(path.starts_with(ws.cache_dir()), "{shown}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), LONG_ANSWER);
            assert!(ws.client.take_notifications("window/showMessage").is_empty());
        } else {
            let message = ws.client.next_notification("window/showMessage").await;
            assert_eq!(message["type"], 3, "{message}");
            assert_eq!(message["message"], format!("Claude (analyze):\n{LONG_ANSWER}"));
            assert!(ws.client.server_requests("window/showDocument").is_empty());
        }
        // No findings: the command path clears the file's Claude diagnostics.
        let published = ws.client.next_notification("textDocument/publishDiagnostics").await;
        assert_eq!(published["diagnostics"], json!([]), "{published}");
        ws.client.drain().await;
        ws.client.finish().await;
    }
}

#[tokio::test]
async fn stale_out_of_order_and_malformed_changes_are_refused_and_the_server_goes_on() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        analysis("It adds two numbers."),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 3, LIB).await;
    // Older and equal versions: refused.
    ws.client.did_change(&uri, 2, json!([{"text": "stale text v2"}])).await;
    ws.client.did_change(&uri, 3, json!([{"text": "stale text v3"}])).await;
    // A document never opened, and params that are not a change at all.
    ws.client.did_change(&ws.uri("src/other.rs"), 9, json!([{"text": "never opened"}])).await;
    ws.client
        .notify_json(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri}, "contentChanges": 7}),
        )
        .await;
    // A position past the end is clamped to it: accepted, at the next version.
    ws.client
        .did_change(&uri, 4, json!([{"range": range(99, 0, 99, 0), "text": "// tail\n"}]))
        .await;

    let analyzed = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": uri}}))
        .await
        .unwrap();
    assert_eq!(analyzed["text"], "It adds two numbers.");
    let prompt = ws.api.requests()[0].all_text();
    let expected =
        "   1 | fn add(a: i32, b: i32) -> i32 {\n   2 |     a + b\n   3 | }\n   4 | // tail\n";
    assert!(prompt.contains(expected), "the agent saw the wrong buffer: {prompt}");

    // A range whose end is before its start: refused, all or nothing (the first change too).
    // The editor applied it, so the server's copy is now behind: the user is told, and runs on
    // the file are refused until the whole text comes again.
    let reversed = json!([
        {"range": range(0, 0, 0, 0), "text": "half applied "},
        {"range": range(2, 0, 1, 0), "text": "x"},
    ]);
    ws.client.did_change(&uri, 5, reversed).await;
    let warning = ws.client.next_notification("window/showMessage").await;
    assert_eq!(warning["type"], 2, "{warning}");
    let said = warning["message"].as_str().unwrap();
    assert!(said.contains("src/lib.rs") && said.contains("reopen"), "{said}");
    let refused = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": uri}}))
        .await
        .unwrap_err();
    assert_eq!(refused["data"]["kind"], "file_access", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("out of date"), "{refused}");
    assert_eq!(ws.api.requests().len(), 1, "a run on an out-of-date copy reached the model");
    let whole = format!("{LIB}// tail\n// resynced\n");
    ws.client.did_change(&uri, 6, json!([{"text": whole}])).await;
    ws.client.request_json("claude/analyze", json!({"textDocument": {"uri": uri}})).await.unwrap();
    let prompt = ws.api.requests().last().unwrap().all_text();
    assert!(
        prompt.contains("   5 | // resynced\n"),
        "the whole text did not bring it back: {prompt}"
    );

    // The change to a document never opened opened nothing: there is no such file to analyze.
    let never_opened = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": ws.uri("src/other.rs")}}))
        .await
        .unwrap_err();
    assert_eq!(never_opened["data"]["kind"], "file_access", "{never_opened}");
    for refused in ["stale text", "half applied", "never opened"] {
        assert!(!prompt.contains(refused), "a refused change reached the buffer: {refused}");
    }
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn new_files_for_a_client_without_resource_operations_are_refused_and_nothing_applied() {
    let script = |request: &RecordedRequest| {
        let root = cli_cwd(request);
        match request.turn_index() {
            0 => Turn::tool_use("Read", json!({"file_path": format!("{root}/src/lib.rs")})),
            1 => Turn::tool_use(
                "Edit",
                json!({"file_path": format!("{root}/src/lib.rs"),
                       "old_string": "fn add(a: i32", "new_string": "pub fn add(a: i32"}),
            ),
            2 => Turn::tool_use(
                "Write",
                json!({"file_path": format!("{root}/src/hello.rs"), "content": "pub fn hello() {}\n"}),
            ),
            _ => Turn::text("Made add public and added src/hello.rs."),
        }
    };
    // documentChanges, but no create/rename/delete.
    let mut capabilities = full_capabilities();
    capabilities["workspace"]["workspaceEdit"] = json!({"documentChanges": true});
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        crate::support::fake_api::Script::from_fn(script),
        capabilities,
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let params = json!({"textDocument": {"uri": uri}, "instruction": "add hello in a new file"});
    let err = ws.client.request_json("claude/generate", params.clone()).await.unwrap_err();
    assert_eq!(err["code"], -32017, "{err}");
    assert_eq!(err["data"]["kind"], "unsupported_by_client", "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("resourceOperations"), "{message}");
    assert!(message.contains(&ws.path("src/hello.rs").display().to_string()), "{message}");

    // The command path says so in a message, and applies nothing, not even the edit to lib.rs.
    ws.client
        .request_json(
            "workspace/executeCommand",
            json!({"command": "claude.generate", "arguments": [params]}),
        )
        .await
        .unwrap();
    let shown = ws.client.next_notification("window/showMessage").await;
    assert_eq!(shown["type"], 1, "{shown}");
    assert!(shown["message"].as_str().unwrap().contains("src/hello.rs"), "{shown}");
    assert!(ws.client.server_requests("workspace/applyEdit").is_empty());
    assert!(!ws.path("src/hello.rs").exists());
    assert_eq!(ws.read("src/lib.rs"), LIB);
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_workspace_outside_git_is_mirrored_by_a_copy_and_one_too_big_is_refused_clearly() {
    for too_big in [false, true] {
        let script = edit_script("src/lib.rs", "fn add(a: i32", "fn sum(a: i32", "Renamed.");
        let big = "x".repeat(1_200_000);
        let mut files = vec![("src/lib.rs", LIB)];
        if too_big {
            files.push(("data.txt", big.as_str()));
        }
        let mut ws = Workspace::start(
            &files,
            crate::support::fake_api::Script::from_fn(script),
            full_capabilities(),
            json!({"stagingMaxCopyMb": 1}),
        )
        .await;
        // Not a repository any more: the mirror must be a plain copy.
        std::fs::remove_dir_all(ws.path(".git")).unwrap();
        let uri = ws.uri("src/lib.rs");
        let result = ws
            .client
            .request_json(
                "claude/refactor",
                json!({"textDocument": {"uri": uri}, "instruction": "rename add to sum"}),
            )
            .await;
        if too_big {
            let err = result.unwrap_err();
            assert_eq!(err["data"]["kind"], "staging_failed", "{err}");
            assert!(err["message"].as_str().unwrap().contains("stagingMaxCopyMb"), "{err}");
            assert!(ws.api.requests().is_empty(), "nothing should reach the model");
        } else {
            let result = result.unwrap();
            assert_eq!(
                result["edit"],
                json!({"documentChanges": [{
                    "textDocument": {"uri": uri, "version": null},
                    "edits": [{"range": range(0, 3, 0, 6), "newText": "sum"}],
                }]})
            );
            assert_ne!(cli_cwd(&ws.api.requests()[0]), ws.root().display().to_string());
        }
        assert_eq!(ws.read("src/lib.rs"), LIB);
        assert!(
            !ws.path(".git").exists(),
            "the server must not turn the workspace into a repository"
        );
        ws.client.drain().await;
        ws.client.finish().await;
    }
}

#[tokio::test]
async fn a_long_answer_streams_into_progress_line_by_line() {
    let chunks: Vec<String> = [
        "The function ",
        "adds two numbers.\n",
        "It never ",
        "overflows ",
        "in practice.\n",
        "Done",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::slow_text(chunks, Duration::from_millis(500)),
        full_capabilities(),
        json!({}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    let result = ws
        .client
        .request_json(
            "claude/analyze",
            json!({"textDocument": {"uri": uri}, "workDoneToken": "s1"}),
        )
        .await
        .unwrap();
    assert!(result["text"].as_str().unwrap().starts_with("The function adds two numbers."));
    let progress = ws.client.progress_until_end(&json!("s1")).await;
    let reports: Vec<&str> = progress.iter().filter_map(|v| v["message"].as_str()).collect();
    // Lines after the first show as they are written, not only the answer's first line once it
    // is complete (which is all a client saw before streaming).
    assert!(reports.contains(&"The function adds two numbers."), "{reports:#?}");
    let later = ["It never overflows", "It never overflows in practice."];
    assert!(reports.iter().any(|r| later.contains(r)), "no later line in {reports:#?}");
    assert!(
        !reports.iter().any(|r| r.ends_with("The funct")),
        "a word shown in part: {reports:#?}"
    );
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn initialize_advertises_every_custom_request_and_nothing_the_server_does_not_do() {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut client = TestClient::start(claude_lsp::lsp_server::server::ServerOptions {
        cache_dir: cache.path().to_path_buf(),
        ..Default::default()
    });
    let options = json!({"cliPath": real_cli(), "warmPool": 0});
    let result = client.initialize(root.path(), full_capabilities(), options).await;
    let capabilities = &result["capabilities"];

    // Every action is complete when listed: nothing to resolve, and resolving is not served.
    assert!(capabilities["codeActionProvider"].get("resolveProvider").is_none(), "{result:#}");
    let resolve = client.request_json("codeAction/resolve", json!({"title": "Claude: x"})).await;
    assert_eq!(resolve.unwrap_err()["code"], -32601);
    // Nothing happens on a save: the client is not asked to send didSave.
    let sync = &capabilities["textDocumentSync"];
    assert_eq!(sync["change"], 2, "{sync}");
    assert!(sync.get("save").is_none(), "{sync}");

    // The custom requests, `claude/audit` among them, and each of them is served: bad or
    // missing params are refused as such, never as an unknown method.
    let requests: Vec<&str> = capabilities["experimental"]["claudeLsp"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for expected in ["claude/generate", "claude/usage", "claude/metrics", "claude/audit"] {
        assert!(requests.contains(&expected), "{expected} is not advertised: {requests:?}");
    }
    for method in requests {
        if let Err(error) = client.request_json(method, json!({"sessionId": 7})).await {
            assert_ne!(error["code"], -32601, "{method} is advertised but not served: {error}");
        }
    }
    client.finish().await;
}

#[tokio::test]
async fn removing_a_workspace_folder_removes_its_mirror_and_keeps_the_others() {
    let script = |request: &RecordedRequest| {
        let file = if request.all_text().contains("in-sub") { "src/lib.rs" } else { "lib.rs" };
        edit_script(file, "fn add(a: i32", "fn sum(a: i32", "Renamed.")(request)
    };
    let files = [("lib.rs", LIB), ("sub/src/lib.rs", LIB)];
    let mut ws = Workspace::start(
        &files,
        crate::support::fake_api::Script::from_fn(script),
        full_capabilities(),
        json!({"warmPool": 0}),
    )
    .await;
    let sub = ws.uri("sub");
    let folder = json!([{"uri": sub, "name": "sub"}]);
    ws.client
        .notify_json(
            "workspace/didChangeWorkspaceFolders",
            json!({"event": {"added": folder, "removed": []}}),
        )
        .await;
    // One run in each folder: each gets its mirror.
    ws.act("claude/refactor", "sub/src/lib.rs", "rename add, in-sub").await.unwrap();
    ws.act("claude/refactor", "lib.rs", "rename add, at the root").await.unwrap();
    let mirrors: Vec<String> = ws.api.requests().iter().map(cli_cwd).collect();
    let (sub_mirror, root_mirror) = (mirrors[0].clone(), mirrors.last().unwrap().clone());
    assert_ne!(sub_mirror, root_mirror);
    for mirror in [&sub_mirror, &root_mirror] {
        assert!(std::path::Path::new(mirror).starts_with(ws.cache_dir()), "{mirror}");
        assert!(std::path::Path::new(mirror).is_dir(), "{mirror}");
    }

    ws.client
        .notify_json(
            "workspace/didChangeWorkspaceFolders",
            json!({"event": {"added": [], "removed": folder}}),
        )
        .await;
    eventually("the removed folder's mirror is gone", async || {
        (!std::path::Path::new(&sub_mirror).exists()).then_some(())
    })
    .await;
    assert!(std::path::Path::new(&root_mirror).is_dir(), "the root's mirror went too");
    ws.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_run_delivers_as_the_settings_it_started_with_say() {
    let gate = Gate::default();
    let held = gate.clone();
    let edit = edit_script("src/lib.rs", "fn add(a: i32", "fn sum(a: i32", "Renamed.");
    // The last turn waits until the settings have changed.
    let script = move |request: &RecordedRequest| match request.turn_index() {
        2 => Turn::held(&held, edit(request)),
        _ => edit(request),
    };
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        crate::support::fake_api::Script::from_fn(script),
        full_capabilities(),
        json!({"warmPool": 0}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, LIB).await;
    let params = json!({"textDocument": {"uri": uri}, "instruction": "rename add to sum"});
    let started = ws
        .client
        .request_json(
            "workspace/executeCommand",
            json!({"command": "claude.refactor", "arguments": [params]}),
        )
        .await
        .unwrap();
    assert!(started["runId"].is_string(), "{started}");
    ws.api.wait_for_requests(3, Duration::from_secs(60)).await;

    // Mid-run the user switches to reviewing changes; the server has taken it once the
    // scheduler reports the new limit that came with it.
    ws.change_settings(json!({"warmPool": 0, "maxConcurrent": 3, "delivery": "review"})).await;
    eventually("the new settings apply", async || {
        (max_concurrent(&mut ws.client).await == 3).then_some(())
    })
    .await;
    gate.open();

    // The run started under `delivery: "apply"`: its edit arrives as one applyEdit, no hunks.
    let applied = ws.client.wait_for_server_request("workspace/applyEdit").await;
    let edits = &applied["edit"]["documentChanges"][0]["edits"];
    assert_eq!(
        apply_edits(LIB, edits.as_array().unwrap()),
        LIB.replace("fn add(a: i32", "fn sum(a: i32")
    );
    let message = ws.client.next_notification("window/showMessage").await;
    assert_eq!(message["message"], "Claude: Renamed.");
    let hunks = ws.client.take_notifications("textDocument/publishDiagnostics");
    assert!(hunks.iter().all(|d| d["diagnostics"] == json!([])), "{hunks:#?}");
    ws.client.drain().await;
    ws.client.finish().await;
}
