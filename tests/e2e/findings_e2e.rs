//! Review and analyze findings end to end: the real CLI's StructuredOutput tool scripted through
//! the fake API, placement, diagnostics, anchoring while the user types, fixes and dismissal.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::cli::{cli_sessions, leftover_processes};
use crate::support::fake_api::{RecordedRequest, Script, Turn};
use crate::support::lsp_client::{TestClient, full_capabilities};
use crate::support::wait::eventually;
use crate::support::workspace::Workspace;

const LIB: &str = "\
use std::collections::HashMap;

pub fn parse_port(text: &str) -> u16 {
    text.trim().parse().unwrap()
}

pub fn count(words: &[&str]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for word in words {
        *counts.entry(word.to_string()).or_insert(0) += 1;
    }
    counts
}
";

const UTIL: &str = "\
pub fn load(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
";

const DIAGNOSTICS: &str = "textDocument/publishDiagnostics";

fn range(sl: u32, sc: u32, el: u32, ec: u32) -> Value {
    json!({"start": {"line": sl, "character": sc}, "end": {"line": el, "character": ec}})
}

/// The model's answer: one call of the CLI's StructuredOutput tool.
fn structured(findings: Value, summary: &str) -> Turn {
    Turn::tool_use("StructuredOutput", json!({"findings": findings, "summary": summary}))
}

/// A bug on line 4 of lib.rs, quoted exactly, with a related place in util.rs.
fn port_bug(with_fix: bool) -> Value {
    let mut finding = json!({
        "path": "src/lib.rs", "startLine": 4, "endLine": 4, "severity": "error", "category": "bug",
        "title": "Panics on a bad port", "explanation": "`unwrap` panics when the text is not a number.",
        "suggestion": "Return a Result.", "snippet": "text.trim().parse().unwrap()",
        "related": [{"path": "src/util.rs", "line": 2, "message": "errors are swallowed here instead"}],
    });
    if with_fix {
        finding["fix"] = json!({"oldText": "text.trim().parse().unwrap()", "newText": "text.trim().parse().unwrap_or(8080)"});
    }
    finding
}

/// A finding whose line numbers are off by three (the code is on line 10).
fn off_by_three() -> Value {
    json!({
        "path": "src/lib.rs", "startLine": 7, "endLine": 7, "severity": "warning", "category": "performance",
        "title": "Allocates per word", "explanation": "`to_string` allocates even for words already counted.",
        "snippet": "word.to_string()",
    })
}

/// A finding in util.rs, which the editor does not have open.
fn util_finding(with_fix: bool) -> Value {
    let mut finding = json!({
        "path": "src/util.rs", "startLine": 2, "endLine": 2, "severity": "info", "category": "correctness",
        "title": "Errors are silently ignored", "explanation": "A missing file reads as empty.",
        "snippet": "unwrap_or_default()",
    });
    if with_fix {
        finding["fix"] =
            json!({"oldText": "unwrap_or_default()", "newText": "expect(\"readable file\")"});
    }
    finding
}

/// Quotes code the file does not have: it must be reported, not placed.
fn ghost() -> Value {
    json!({
        "path": "src/lib.rs", "startLine": 30, "endLine": 31, "severity": "warning", "category": "bug",
        "title": "Ghost function", "explanation": "It does not exist.", "snippet": "fn missing()",
    })
}

/// Below the default minimum severity of a review (info).
fn nitpick() -> Value {
    json!({
        "path": "src/lib.rs", "startLine": 1, "endLine": 1, "severity": "hint", "category": "style",
        "title": "Nitpick", "explanation": "Taste.",
    })
}

fn all_findings(with_fix: bool) -> Value {
    json!([port_bug(with_fix), off_by_three(), util_finding(with_fix), ghost(), nitpick()])
}

async fn start(script: impl Into<Script>) -> Workspace {
    Workspace::start(
        &[("src/lib.rs", LIB), ("src/util.rs", UTIL)],
        script,
        full_capabilities(),
        json!({}),
    )
    .await
}

/// Start `claude.review` (the command path) on lib.rs, open at version 1.
async fn review_command(ws: &mut Workspace, extra: Value) {
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, LIB).await;
    let mut params = json!({"textDocument": {"uri": uri}});
    params.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let started = ws
        .client
        .request_json(
            "workspace/executeCommand",
            json!({"command": "claude.review", "arguments": [params]}),
        )
        .await
        .unwrap();
    assert!(started["runId"].is_string(), "{started}");
}

/// The next diagnostics published for `uri`, with each `data.findingId` checked and removed.
/// Returns (diagnostics, their finding ids, the version).
async fn next_diagnostics(client: &TestClient, uri: &str) -> (Vec<Value>, Vec<String>, Value) {
    let published = client.wait_for_notification(DIAGNOSTICS, |p| p["uri"] == uri).await;
    let mut ids = Vec::new();
    let mut diagnostics = published["diagnostics"].as_array().unwrap().clone();
    for diagnostic in &mut diagnostics {
        let id = diagnostic["data"]["findingId"].as_str().expect("a findingId").to_owned();
        assert_eq!(diagnostic["data"], json!({"findingId": id}));
        diagnostic.as_object_mut().unwrap().remove("data");
        ids.push(id);
    }
    (diagnostics, ids, published["version"].clone())
}

fn port_bug_diagnostic(ws: &Workspace) -> Value {
    json!({
        "range": range(3, 4, 3, 32),
        "severity": 1,
        "code": "bug",
        "source": "claude",
        "message": "Panics on a bad port\n\n`unwrap` panics when the text is not a number.\n\nSuggestion: Return a Result.",
        "relatedInformation": [{
            "location": {"uri": ws.uri("src/util.rs"), "range": range(1, 4, 1, 53)},
            "message": "errors are swallowed here instead",
        }],
    })
}

fn off_by_three_diagnostic() -> Value {
    json!({
        "range": range(9, 22, 9, 38),
        "severity": 2,
        "code": "performance",
        "source": "claude",
        "message": "Allocates per word\n\n`to_string` allocates even for words already counted.",
    })
}

fn util_diagnostic() -> Value {
    json!({
        "range": range(1, 34, 1, 53),
        "severity": 3,
        "code": "correctness",
        "source": "claude",
        "message": "Errors are silently ignored\n\nA missing file reads as empty.",
    })
}

#[tokio::test]
async fn structured_findings_become_exact_diagnostics_on_every_file() {
    let mut ws = start(structured(all_findings(false), "One real bug, one slow spot.")).await;
    review_command(&mut ws, json!({"scope": "file"})).await;

    let (lib, _, version) = next_diagnostics(&ws.client, &ws.uri("src/lib.rs")).await;
    assert_eq!(lib, vec![port_bug_diagnostic(&ws), off_by_three_diagnostic()]);
    assert_eq!(version, 1);
    // util.rs is not open: published all the same, without a version.
    let (util, _, version) = next_diagnostics(&ws.client, &ws.uri("src/util.rs")).await;
    assert_eq!(util, vec![util_diagnostic()]);
    assert_eq!(version, Value::Null);

    // The summary, with the finding that could not be located, opens as a document.
    let shown = ws.client.wait_for_server_request("window/showDocument").await;
    let path = url_path(shown["uri"].as_str().unwrap());
    let answer = std::fs::read_to_string(path).unwrap();
    assert!(answer.starts_with("One real bug, one slow spot.\n\n**1 finding could not be located in the code:**\n\n- **Ghost function** (warning, bug) at `src/lib.rs:30-31`"), "{answer}");
    assert!(answer.contains("the code it quotes is not in the file"), "{answer}");
    assert!(!answer.contains("Nitpick"), "below the minimum severity: {answer}");

    // The output channel reads the answer and its findings, not the CLI's JSON report.
    let outputs = ws.client.take_notifications("claude/output");
    let result = outputs.iter().find(|o| o["kind"] == "result");
    let text = result.and_then(|o| o["text"].as_str()).unwrap_or_else(|| panic!("{outputs:#?}"));
    assert!(text.starts_with("One real bug, one slow spot.\n"), "{text}");
    assert!(
        text.contains("\nsrc/lib.rs:4:5: error [bug] Panics on a bad port\n    `unwrap` panics"),
        "{text}"
    );
    assert!(!text.contains("\"findings\""), "{text}");

    // The CLI offered the model the StructuredOutput tool with exactly our schema.
    let request = &ws.api.requests()[0];
    let tool = request.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tool| tool["name"] == "StructuredOutput")
        .unwrap_or_else(|| panic!("no StructuredOutput tool in {:?}", request.tool_names()));
    assert_eq!(tool["input_schema"], claude_lsp::model::findings::schema());
    assert!(request.all_text().contains("## Findings format"));

    let progress = ws.client.take_notifications("$/progress");
    let end = progress.iter().find(|p| p["value"]["kind"] == "end").unwrap();
    assert!(end["value"]["message"].as_str().unwrap().starts_with("3 findings · "), "{end}");
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn the_review_request_returns_findings_and_publishes_nothing() {
    let mut ws = start(structured(json!([port_bug(true), ghost()]), "Summary.")).await;
    let uri = ws.uri("src/lib.rs");
    let result = ws
        .client
        .request_json("claude/review", json!({"textDocument": {"uri": uri}, "fix": true}))
        .await
        .unwrap();
    let findings = result["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{result:#}");
    let mut finding = findings[0].clone();
    assert!(finding["id"].as_str().unwrap().starts_with('f'));
    finding.as_object_mut().unwrap().remove("id");
    assert_eq!(
        finding,
        json!({
            "uri": uri, "range": range(3, 4, 3, 32), "severity": "error", "category": "bug",
            "title": "Panics on a bad port", "explanation": "`unwrap` panics when the text is not a number.",
            "suggestion": "Return a Result.",
            "fix": {"oldText": "text.trim().parse().unwrap()", "newText": "text.trim().parse().unwrap_or(8080)"},
            "related": [{"uri": ws.uri("src/util.rs"), "range": range(1, 4, 1, 53), "message": "errors are swallowed here instead"}],
        })
    );
    let text = result["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "Summary.\n\n**1 finding could not be located in the code:**\n\n- **Ghost function**"
        ),
        "{text}"
    );
    assert!(ws.client.take_notifications(DIAGNOSTICS).is_empty(), "a request never publishes");
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn findings_move_with_edits_above_them_and_go_when_their_code_is_edited() {
    let mut ws = start(structured(all_findings(false), "Summary.")).await;
    review_command(&mut ws, json!({})).await;
    let uri = ws.uri("src/lib.rs");
    let (_, ids, _) = next_diagnostics(&ws.client, &uri).await;

    // A line typed at the top moves both findings down.
    ws.client
        .did_change(&uri, 2, json!([{"range": range(0, 0, 0, 0), "text": "// header\n"}]))
        .await;
    let (moved, moved_ids, version) = next_diagnostics(&ws.client, &uri).await;
    assert_eq!(version, 2);
    assert_eq!(moved_ids, ids);
    assert_eq!(moved[0]["range"], range(4, 4, 4, 32));
    assert_eq!(moved[1]["range"], range(10, 22, 10, 38));

    // Typing inside the first finding removes it; the second stays where it is.
    ws.client.did_change(&uri, 3, json!([{"range": range(4, 8, 4, 8), "text": "_mut"}])).await;
    let (left, left_ids, _) = next_diagnostics(&ws.client, &uri).await;
    assert_eq!(left_ids, vec![ids[1].clone()]);
    assert_eq!(left[0]["range"], range(10, 22, 10, 38));

    // A whole-document sync is diffed: a line removed above moves the finding up.
    let text = format!("// header\n{}", LIB.replacen("use std::collections::HashMap;\n", "", 1))
        .replace("text.trim()", "text_mut.trim()");
    ws.client.did_change(&uri, 4, json!([{"text": text}])).await;
    let (synced, _, _) = next_diagnostics(&ws.client, &uri).await;
    assert_eq!(synced[0]["range"], range(9, 22, 9, 38));

    ws.client.wait_for_server_request("window/showDocument").await;
    ws.client.take_notifications(DIAGNOSTICS);
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn apply_fix_edits_exactly_the_quoted_code_and_refuses_when_it_changed() {
    let mut ws = start(structured(all_findings(true), "Summary.")).await;
    review_command(&mut ws, json!({"fix": true})).await;
    let uri = ws.uri("src/lib.rs");
    let (lib, ids, _) = next_diagnostics(&ws.client, &uri).await;
    let util_uri = ws.uri("src/util.rs");
    let (_, util_ids, _) = next_diagnostics(&ws.client, &util_uri).await;

    // The code action carries the checked edit, pinned to the document's version.
    let mut diagnostic = lib[0].clone();
    diagnostic["data"] = json!({"findingId": ids[0]});
    let actions = ws
        .client
        .request_json(
            "textDocument/codeAction",
            json!({
                "textDocument": {"uri": uri}, "range": range(3, 10, 3, 10),
                "context": {"diagnostics": [diagnostic]},
            }),
        )
        .await
        .unwrap();
    let expected_edit = json!({"documentChanges": [{
        "textDocument": {"uri": uri, "version": 1},
        "edits": [{"range": range(3, 4, 3, 32), "newText": "text.trim().parse().unwrap_or(8080)"}],
    }]});
    let apply = &actions[0];
    assert_eq!(apply["title"], "Claude: apply fix — Panics on a bad port");
    assert_eq!(apply["kind"], "quickfix");
    assert_eq!(apply["isPreferred"], true);
    assert_eq!(apply["edit"], expected_edit);
    let titles: Vec<&str> =
        actions.as_array().unwrap().iter().map(|a| a["title"].as_str().unwrap()).collect();
    assert_eq!(
        &titles[..4],
        [
            "Claude: apply fix — Panics on a bad port",
            "Claude: fix with Claude",
            "Claude: dismiss finding",
            "Claude: dismiss all findings in this file",
        ]
    );
    let fix_with_claude = &actions[1]["command"];
    assert_eq!(fix_with_claude["command"], "claude.refactor");
    assert_eq!(fix_with_claude["arguments"][0]["range"], range(3, 4, 3, 32));
    assert!(
        fix_with_claude["arguments"][0]["instruction"]
            .as_str()
            .unwrap()
            .contains("Panics on a bad port")
    );

    // The command applies the same edit through workspace/applyEdit, then drops the finding.
    let applied = ws
        .client
        .request_json(
            "workspace/executeCommand",
            json!({
                "command": "claude.applyFinding", "arguments": [{"uri": uri, "findingId": ids[0]}],
            }),
        )
        .await
        .unwrap();
    assert_eq!(applied, json!({"applied": true}));
    let request = ws.client.wait_for_server_request("workspace/applyEdit").await;
    assert_eq!(request["label"], "Claude: apply fix — Panics on a bad port");
    assert_eq!(request["edit"], expected_edit);
    let (left, left_ids, _) = next_diagnostics(&ws.client, &uri).await;
    assert_eq!(left_ids, vec![ids[1].clone()]);
    assert_eq!(left, vec![off_by_three_diagnostic()]);

    // util.rs changed on disk since the review: the fix is refused, saying so.
    std::fs::write(
        ws.path("src/util.rs"),
        UTIL.replace("unwrap_or_default()", "unwrap_or_else(|_| String::new())"),
    )
    .unwrap();
    let refused = ws.client.request_json("workspace/executeCommand", json!({
        "command": "claude.applyFinding", "arguments": [{"uri": util_uri, "findingId": util_ids[0]}],
    })).await.unwrap_err();
    assert_eq!(refused["data"]["kind"], "edit_conflict", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("changed since the review"), "{refused}");
    assert_eq!(ws.client.server_requests("workspace/applyEdit").len(), 1);

    // Without an id there is nothing to apply.
    let missing = ws
        .client
        .request_json(
            "workspace/executeCommand",
            json!({
                "command": "claude.applyFinding", "arguments": [{"uri": uri}],
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(missing["data"]["kind"], "invalid_params", "{missing}");

    ws.client.wait_for_server_request("window/showDocument").await;
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn dismissing_one_finding_then_all_of_a_file() {
    let mut ws = start(structured(all_findings(false), "Summary.")).await;
    review_command(&mut ws, json!({})).await;
    let uri = ws.uri("src/lib.rs");
    let (_, ids, _) = next_diagnostics(&ws.client, &uri).await;
    next_diagnostics(&ws.client, &ws.uri("src/util.rs")).await;

    // The code actions on the second finding offer its dismissal and the file's.
    let actions = ws.client.request_json("textDocument/codeAction", json!({
        "textDocument": {"uri": uri}, "range": range(9, 25, 9, 25), "context": {"diagnostics": []},
    })).await.unwrap();
    let dismiss = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"] == "Claude: dismiss finding")
        .unwrap();
    assert_eq!(dismiss["command"]["arguments"], json!([{"uri": uri, "findingId": ids[1]}]));
    assert!(
        actions
            .as_array()
            .unwrap()
            .iter()
            .all(|a| !a["title"].as_str().unwrap().starts_with("Claude: apply fix"))
    );
    let review_changes = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"] == "Claude: review my changes")
        .unwrap();
    assert_eq!(review_changes["command"]["command"], "claude.review");
    assert_eq!(review_changes["command"]["arguments"][0]["scope"], "changes");

    let dismissed = ws.client.request_json("workspace/executeCommand", json!({
        "command": "claude.dismissFinding", "arguments": [dismiss["command"]["arguments"][0]],
    })).await.unwrap();
    assert_eq!(dismissed, json!({"dismissed": 1}));
    let (left, left_ids, _) = next_diagnostics(&ws.client, &uri).await;
    assert_eq!((left.len(), left_ids), (1, vec![ids[0].clone()]));

    let dismissed = ws
        .client
        .request_json(
            "workspace/executeCommand",
            json!({
                "command": "claude.dismissFinding", "arguments": [{"uri": uri}],
            }),
        )
        .await
        .unwrap();
    assert_eq!(dismissed, json!({"dismissed": 1}));
    let (left, _, _) = next_diagnostics(&ws.client, &uri).await;
    assert!(left.is_empty());
    // Dismissing what is gone dismisses nothing and publishes nothing.
    let again = ws.client.request_json("workspace/executeCommand", json!({
        "command": "claude.dismissFinding", "arguments": [{"uri": uri, "findingId": ids[0]}],
    })).await.unwrap();
    assert_eq!(again, json!({"dismissed": 0}));

    ws.client.wait_for_server_request("window/showDocument").await;
    assert!(ws.client.take_notifications(DIAGNOSTICS).is_empty());
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_review_of_changes_sends_the_diff_and_publishes_on_the_changed_files() {
    let finding = json!({
        "path": "src/new.rs", "startLine": 1, "endLine": 1, "severity": "warning", "category": "test",
        "title": "Untested", "explanation": "Nothing tests this.", "snippet": "pub fn added()",
    });
    let mut ws = start(structured(json!([finding]), "Small change.")).await;
    std::fs::write(
        ws.path("src/lib.rs"),
        LIB.replace("    counts\n}", "    counts\n}\n\npub fn extra() {}"),
    )
    .unwrap();
    std::fs::write(ws.path("src/new.rs"), "pub fn added() {}\n").unwrap();
    let uri = ws.uri("src/lib.rs");
    let started = ws.client.request_json("workspace/executeCommand", json!({
        "command": "claude.review", "arguments": [{"textDocument": {"uri": uri}, "scope": "changes"}],
    })).await.unwrap();
    assert!(started["runId"].is_string());

    let (new, _, _) = next_diagnostics(&ws.client, &ws.uri("src/new.rs")).await;
    assert_eq!(new[0]["range"], range(0, 0, 0, 14));
    let prompt = ws.api.requests()[0].all_text();
    assert!(prompt.contains("## Uncommitted changes"), "{prompt:.3000}");
    assert!(prompt.contains("+pub fn extra() {}"), "the diff of lib.rs is missing: {prompt:.3000}");
    assert!(
        prompt.contains("+++ b/src/new.rs") && prompt.contains("+pub fn added() {}"),
        "the untracked file is missing: {prompt:.3000}"
    );
    let message = ws.client.next_notification("window/showMessage").await;
    assert_eq!(message["message"], "Claude: Small change.");
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn malformed_structured_output_is_a_clear_error_and_nothing_is_published() {
    // The CLI validates each StructuredOutput call against the schema and gives up after 5.
    let mut ws = start(structured(json!("not a list"), "Summary.")).await;
    review_command(&mut ws, json!({})).await;
    let message = ws.client.next_notification("window/showMessage").await;
    assert_eq!(message["type"], 1, "{message}");
    let text = message["message"].as_str().unwrap();
    assert!(text.to_lowercase().contains("structured output"), "{text}");
    assert!(ws.client.take_notifications(DIAGNOSTICS).is_empty(), "nothing may be published");
    ws.client.drain().await;

    let err = ws
        .client
        .request_json("claude/review", json!({"textDocument": {"uri": ws.uri("src/lib.rs")}}))
        .await
        .unwrap_err();
    assert_eq!(
        (err["code"].clone(), err["data"]["kind"].clone()),
        (json!(-32010), json!("structured_output_failed")),
        "{err}"
    );
    assert!(ws.client.take_notifications(DIAGNOSTICS).is_empty());
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_text_answer_falls_back_to_its_json_block_then_to_a_note() {
    let block = json!({"findings": [port_bug(false)]});
    let with_block = format!("Mostly fine.\n\n```json\n{block}\n```\n");
    // The CLI asks once more for the StructuredOutput tool, then takes the text as it is.
    let script = Script::from_fn(move |request: &RecordedRequest| {
        if request.all_text().contains("`src/util.rs`") {
            Turn::text("All good.")
        } else {
            Turn::text(with_block.clone())
        }
    });
    let mut ws = start(script).await;
    let result = ws
        .client
        .request_json("claude/review", json!({"textDocument": {"uri": ws.uri("src/lib.rs")}}))
        .await
        .unwrap();
    assert_eq!(result["text"], "Mostly fine.");
    let findings = result["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0]["range"], range(3, 4, 3, 32));

    let result = ws
        .client
        .request_json("claude/review", json!({"textDocument": {"uri": ws.uri("src/util.rs")}}))
        .await
        .unwrap();
    assert_eq!(result["findings"], json!([]));
    assert_eq!(
        result["text"],
        "All good.\n\n_Claude did not return its findings in the structured format, so none are shown as diagnostics._"
    );
    ws.client.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn analyze_depth_sets_the_effort_and_answers_with_findings() {
    let mut ws = start(structured(json!([off_by_three()]), "It counts words.")).await;
    let uri = ws.uri("src/lib.rs");
    // (Normal depth leaves the effort to the CLI's own default, which differs between versions.)
    for (depth, effort) in [("quick", "low"), ("deep", "high")] {
        let result = ws
            .client
            .request_json("claude/analyze", json!({"textDocument": {"uri": uri}, "depth": depth}))
            .await
            .unwrap();
        assert_eq!(result["text"], "It counts words.");
        assert_eq!(result["findings"][0]["range"], range(9, 22, 9, 38));
        let request = ws.api.requests().pop().unwrap();
        assert_eq!(request.body.pointer("/output_config/effort"), Some(&json!(effort)), "{depth}");
        assert!(request.tool_names().contains(&"StructuredOutput".to_owned()), "{depth}");
    }
    ws.client.drain().await;
    ws.client.finish().await;
}

/// The path of a `file://` URI written by the server (plain ASCII temp paths).
fn url_path(uri: &str) -> std::path::PathBuf {
    claude_lsp::model::edits::uri_to_path(&uri.parse().unwrap()).unwrap()
}

/// Project settings with a `Stop` hook that runs `first` at the end of the CLI's first turn in
/// this workspace, and lets every later turn end at once. The CLI runs Stop hooks after the
/// `StructuredOutput` call's tool result and before its `result` message (both pinned CLIs).
fn stop_hook_settings(first: &str) -> String {
    let once = "\"$CLAUDE_PROJECT_DIR/.claude/stopped-once\"";
    let command = format!("[ -e {once} ] && exit 0; touch {once}; {first}");
    json!({"hooks": {"Stop": [{"matcher": "*", "hooks": [{"type": "command", "command": command}]}]}})
        .to_string()
}

async fn start_with_stop_hook(script: impl Into<Script>, first: &str) -> Workspace {
    let settings = stop_hook_settings(first);
    Workspace::start(
        &[("src/lib.rs", LIB), ("src/util.rs", UTIL), (".claude/settings.json", &settings)],
        script,
        full_capabilities(),
        // Without live conversations a finished run's process goes back to the pool.
        json!({"warmPool": 1, "liveSessions": 0}),
    )
    .await
}

/// A Stop hook that holds the end of a turn until the test writes to its FIFO.
const HOLD_AT_STOP: &str = "mkfifo \"$CLAUDE_PROJECT_DIR/.claude/gate\" && cat \"$CLAUDE_PROJECT_DIR/.claude/gate\" >/dev/null";

/// Wait until the [`HOLD_AT_STOP`] hook holds the turn; its FIFO.
async fn held_at_stop(ws: &Workspace) -> PathBuf {
    let gate = ws.root().join(".claude/gate");
    eventually("the Stop hook holds the turn", async || gate.exists().then_some(())).await;
    gate
}

/// Let the turn [`HOLD_AT_STOP`] holds end.
async fn release(gate: PathBuf) {
    tokio::task::spawn_blocking(move || std::fs::write(gate, "go")).await.unwrap().unwrap();
}

/// The workspace's usage ledger, as `claude/usage` reports it.
async fn usage_total(ws: &mut Workspace) -> Value {
    let report = ws.client.request_json("claude/usage", json!({})).await.unwrap();
    report["total"].clone()
}

/// `claude/analyze` while a Stop hook holds the end of the CLI's turn: its answer must not
/// wait for that (the bound only turns a hang into a failure).
async fn answer_while_held(ws: &mut Workspace, params: Value) -> Value {
    let answer = ws.client.request_json("claude/analyze", params);
    let answer = tokio::time::timeout(HELD_BOUND, answer).await;
    answer.expect("the answer waited for the end of the CLI's turn").unwrap()
}

const HELD_BOUND: Duration = Duration::from_secs(60);

#[tokio::test]
async fn findings_arrive_while_the_cli_still_ends_its_turn_and_the_books_follow() {
    let mut ws =
        start_with_stop_hook(structured(json!([port_bug(false)]), "One bug."), HOLD_AT_STOP).await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, LIB).await;
    let result = answer_while_held(&mut ws, json!({"textDocument": {"uri": uri}})).await;
    assert!(result["text"].as_str().unwrap().starts_with("One bug."), "{result}");
    let findings = result["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{result}");
    assert_eq!(findings[0]["title"], "Panics on a bad port");
    // Its metadata says what the turn had used by then: the API call that gave the findings.
    let metadata = &result["metadata"];
    assert_eq!(metadata["numTurns"], 1, "{metadata}");
    assert!(metadata["inputTokens"].as_u64().unwrap() > 0, "{metadata}");
    assert!(metadata["outputTokens"].as_u64().unwrap() > 0, "{metadata}");
    assert!(metadata["costUsd"].as_f64().unwrap() > 0.0, "{metadata}");

    // The answer came while the turn was held: nothing in the books yet, the process not back.
    let gate = held_at_stop(&ws).await;
    assert_eq!(usage_total(&mut ws).await["runs"], 0, "recorded before the turn ended");
    let metrics = ws.client.request_json("claude/metrics", Value::Null).await.unwrap();
    assert_eq!(metrics["pool"]["recycled"], 0, "{metrics}");
    assert_eq!(metrics["tokens"]["input"], 0, "{metrics}");

    // Once the CLI ends the turn, the run is in the books with what it cost, the metrics count
    // its tokens, and its process is back in the pool.
    release(gate).await;
    let total = eventually("the run is recorded", async || {
        let total = usage_total(&mut ws).await;
        (total["runs"] == 1).then_some(total)
    })
    .await;
    assert!(total["costUsd"].as_f64().unwrap() > 0.0, "{total}");
    // The CLI made no API call after the findings: its figures are those the answer gave.
    assert_eq!(total["inputTokens"], metadata["inputTokens"], "{total}");
    assert_eq!(total["outputTokens"], metadata["outputTokens"], "{total}");
    let listed = ws.client.request_json("claude/sessions", json!({})).await.unwrap();
    let session = &listed["sessions"][0];
    assert_eq!(session["id"], result["sessionId"], "{listed}");
    let metrics = eventually("the process is back in the pool", async || {
        let metrics = ws.client.request_json("claude/metrics", Value::Null).await.unwrap();
        (metrics["pool"]["recycled"] == 1).then_some(metrics)
    })
    .await;
    assert_eq!(metrics["tokens"]["input"], total["inputTokens"], "{metrics}");
    assert!(metrics["costUsd"].as_f64().unwrap() > 0.0, "{metrics}");
    ws.client.drain_also(&[DIAGNOSTICS]).await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_cli_that_fails_after_the_answer_is_retired_not_reused() {
    // The Stop hook kills its CLI: the turn fails after the run had answered.
    let crash = "kill -9 $PPID";
    let mut ws =
        start_with_stop_hook(structured(json!([port_bug(false)]), "One bug."), crash).await;
    let home = ws.home.path().to_path_buf();
    let warm = eventually("one warm process", async || {
        let processes = cli_sessions(&home);
        (processes.len() == 1).then(|| processes[0].pid)
    })
    .await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, LIB).await;
    // No result cache: the second analyze is a real run.
    let params = json!({"textDocument": {"uri": uri}, "noCache": true});
    let first = ws.client.request_json("claude/analyze", params.clone()).await.unwrap();
    assert_eq!(first["findings"].as_array().unwrap().len(), 1, "{first}");

    // The failure is the run's last output item (and in the log).
    let failed = ws.client.wait_for_notification("claude/output", |p| p["kind"] == "error").await;
    let text = failed["text"].as_str().unwrap();
    assert!(text.starts_with("The CLI failed after the answer was sent"), "{failed}");

    // The run is in the session index once its turn failed, with what its API call cost (the
    // CLI died before it said); its process was not given back.
    let session = eventually("the run is recorded", async || {
        let listed = ws.client.request_json("claude/sessions", json!({})).await.unwrap();
        let sessions = listed["sessions"].as_array().unwrap().clone();
        sessions.into_iter().find(|s| s["id"] == first["sessionId"])
    })
    .await;
    assert_eq!(session["runs"][0]["outcome"], "success", "{session}");
    let usage = &session["runs"][0]["usage"];
    assert_eq!(usage["inputTokens"], first["metadata"]["inputTokens"], "{session}");
    assert!(usage["costUsd"].as_f64().unwrap() > 0.0, "{session}");
    let metrics = ws.client.request_json("claude/metrics", Value::Null).await.unwrap();
    assert_eq!(metrics["pool"]["recycled"], 0, "{metrics}");
    assert!(leftover_processes(|p| p.pid == warm, Duration::from_secs(10)).await.is_empty());

    // The next run gets another process, and ends its turn normally: that one comes back.
    let second = ws.client.request_json("claude/analyze", params).await.unwrap();
    assert_ne!(second["sessionId"], first["sessionId"]);
    eventually("the second run's process is back in the pool", async || {
        let metrics = ws.client.request_json("claude/metrics", Value::Null).await.unwrap();
        (metrics["pool"]["recycled"] == 1).then_some(())
    })
    .await;
    ws.client.drain_also(&[DIAGNOSTICS]).await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_run_still_ending_its_turn_counts_against_the_daily_budget() {
    // 100,000 input tokens: at any model's list price the call costs more than $0.02.
    let findings = structured(json!([port_bug(false)]), "One bug.").with_usage(100_000, 1_000);
    let mut ws = start_with_stop_hook(findings, HOLD_AT_STOP).await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, LIB).await;
    let params = json!({"textDocument": {"uri": uri}, "noCache": true});
    let first = answer_while_held(&mut ws, params.clone()).await;
    assert!(first["metadata"]["costUsd"].as_f64().unwrap() > 0.02, "{first}");
    let gate = held_at_stop(&ws).await;

    // A day's budget that one call overspends: the first run is not in the ledger yet, but
    // what it spent counts, so the next run is refused before it reaches the API.
    crate::resilience::reconfigure(&mut ws, 1, json!({"maxConcurrent": 3, "dailyBudgetUsd": 0.02}))
        .await;
    let calls = ws.api.requests().len();
    let refused = ws.client.request_json("claude/analyze", params.clone()).await.unwrap_err();
    assert_eq!(refused["data"]["kind"], "budget_exceeded", "{refused}");
    assert_eq!(ws.api.requests().len(), calls, "a run went to the API past the day's budget");

    // Once the CLI ended the turn, the ledger has the run and the next run is still refused.
    release(gate).await;
    eventually("the run is recorded", async || {
        (usage_total(&mut ws).await["runs"] == 1).then_some(())
    })
    .await;
    let refused = ws.client.request_json("claude/analyze", params).await.unwrap_err();
    assert_eq!(refused["data"]["kind"], "budget_exceeded", "{refused}");
    assert_eq!(ws.api.requests().len(), calls);
    ws.client.drain_also(&[DIAGNOSTICS, "window/showMessage"]).await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_run_still_ending_its_turn_holds_its_slot() {
    let findings = structured(json!([port_bug(false)]), "One bug.");
    let mut ws = start_with_stop_hook(findings, HOLD_AT_STOP).await;
    let one_slot = json!({"maxConcurrent": 1, "warmPool": 1, "liveSessions": 0});
    crate::resilience::reconfigure(&mut ws, 1, one_slot).await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, LIB).await;
    let params = json!({"textDocument": {"uri": uri}, "noCache": true});
    answer_while_held(&mut ws, params.clone()).await;
    let gate = held_at_stop(&ws).await;

    // Its CLI still runs, in the only slot: the next run waits in the queue, its API call with it.
    let calls = ws.api.requests().len();
    let (_, second) = ws.client.start_request("claude/analyze", params).await;
    let scheduler = eventually("the second run waits for the slot", async || {
        let metrics = ws.client.request_json("claude/metrics", Value::Null).await.unwrap();
        (metrics["scheduler"]["queued"] == 1).then(|| metrics["scheduler"].clone())
    })
    .await;
    assert_eq!(scheduler["running"], 1, "{scheduler}");
    assert_eq!(ws.api.requests().len(), calls, "a run went past maxConcurrent");

    // Once the turn has ended, the slot is free and the second run is answered.
    release(gate).await;
    let second = TestClient::answer(second).await.unwrap();
    assert_eq!(second["findings"].as_array().unwrap().len(), 1, "{second}");
    ws.client.drain_also(&[DIAGNOSTICS]).await;
    ws.client.finish().await;
}

#[tokio::test]
async fn shutdown_stops_a_turn_still_ending_after_its_answer() {
    let mut ws =
        start_with_stop_hook(structured(json!([port_bug(false)]), "One bug."), HOLD_AT_STOP).await;
    let home = ws.home.path().to_path_buf();
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, LIB).await;
    let params = json!({"textDocument": {"uri": uri}});
    let result = answer_while_held(&mut ws, params).await;
    assert_eq!(result["findings"].as_array().unwrap().len(), 1, "{result}");
    held_at_stop(&ws).await;

    // Shutdown stops the turn and every CLI, and still writes the run's books.
    ws.client.drain_also(&[DIAGNOSTICS]).await;
    ws.client.finish().await;
    let survivors = leftover_processes(
        |p| p.env_var("HOME").as_deref() == Some(home.to_str().unwrap()),
        Duration::from_secs(10),
    )
    .await;
    assert!(survivors.is_empty(), "processes survived the shutdown: {survivors:#?}");
}

#[tokio::test]
async fn a_follow_up_sent_while_the_turn_still_ends_continues_the_conversation() {
    let mut ws =
        start_with_stop_hook(structured(json!([port_bug(false)]), "One bug."), HOLD_AT_STOP).await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, LIB).await;
    let first = answer_while_held(&mut ws, json!({"textDocument": {"uri": uri}})).await;
    let gate = held_at_stop(&ws).await;

    // Neither in the index nor (for every CLI) in a transcript yet: the follow-up is accepted
    // and waits for the turn, then goes on in the same conversation.
    let params = json!({
        "textDocument": {"uri": uri}, "instruction": "follow-up-question",
        "sessionId": first["sessionId"],
    });
    let (_, follow_up) = ws.client.start_request("claude/analyze", params).await;
    release(gate).await;
    let second = TestClient::answer(follow_up).await.unwrap();
    assert_eq!(second["sessionId"], first["sessionId"], "{second}");
    let last = ws.api.requests().pop().unwrap();
    assert!(last.all_text().contains("follow-up-question"), "the follow-up was not asked");
    assert!(last.all_text().contains("Panics on a bad port"), "the follow-up saw the first turn");
    ws.client.drain_also(&[DIAGNOSTICS]).await;
    ws.client.finish().await;
}
