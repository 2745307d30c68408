//! Folder and workspace scopes end to end: the prompt lists the files (it does not inline them),
//! the real CLI's scripted model reads files that are not open, progress counts them, their
//! findings become diagnostics, and those go when the files change.

use serde_json::{Value, json};

use crate::support::fake_api::{RecordedRequest, Script, Turn};
use crate::support::lsp_client::full_capabilities;
use crate::support::workspace::{Workspace, cli_cwd};

const UTIL: &str = "pub fn load(path: &str) -> String {\n    std::fs::read_to_string(path).unwrap_or_default()\n}\n";
const EXTRA: &str = "pub fn half(n: u32) -> u32 {\n    n / 0\n}\n";
const LIB: &str = "pub mod extra;\npub mod util;\n";
const TEST: &str = "#[test]\nfn it_works() {}\n";

const DIAGNOSTICS: &str = "textDocument/publishDiagnostics";

fn findings() -> Value {
    json!({
        "findings": [
            {
                "path": "src/util.rs", "startLine": 2, "endLine": 2, "severity": "warning",
                "category": "correctness", "title": "Errors are silently ignored",
                "explanation": "A missing file reads as empty.", "snippet": "unwrap_or_default()",
            },
            {
                "path": "src/extra.rs", "startLine": 2, "endLine": 2, "severity": "error",
                "category": "bug", "title": "Division by zero",
                "explanation": "This always panics.", "snippet": "n / 0",
            },
        ],
        "summary": "Two problems in two files.",
    })
}

/// The model reads util.rs, then extra.rs (neither is open), then reports.
fn reading_script() -> Script {
    Script::from_fn(|request: &RecordedRequest| {
        let root = cli_cwd(request);
        match request.turn_index() {
            0 => Turn::tool_use("Read", json!({"file_path": format!("{root}/src/util.rs")})),
            1 => Turn::tool_use("Read", json!({"file_path": format!("{root}/src/extra.rs")})),
            _ => Turn::tool_use("StructuredOutput", findings()),
        }
    })
}

async fn start() -> Workspace {
    Workspace::start(
        &[
            ("src/lib.rs", LIB),
            ("src/util.rs", UTIL),
            ("src/extra.rs", EXTRA),
            ("src/tests/it.rs", TEST),
            ("README.md", "# Project\n"),
        ],
        reading_script(),
        full_capabilities(),
        json!({}),
    )
    .await
}

#[tokio::test]
async fn a_folder_review_reads_unopened_files_and_publishes_their_findings() {
    let mut ws = start().await;
    // The command names the folder itself (as an explorer's context menu does).
    let started = ws
        .client
        .request_json(
            "workspace/executeCommand",
            json!({"command": "claude.review", "arguments": [{
                "textDocument": {"uri": ws.uri("src")}, "scope": "folder", "minSeverity": "warning",
            }]}),
        )
        .await
        .unwrap();
    assert!(started["runId"].is_string(), "{started}");

    let util_uri = ws.uri("src/util.rs");
    let extra_uri = ws.uri("src/extra.rs");
    let util = ws.client.wait_for_notification(DIAGNOSTICS, |p| p["uri"] == util_uri).await;
    let extra = ws.client.wait_for_notification(DIAGNOSTICS, |p| p["uri"] == extra_uri).await;
    assert_eq!(
        util["diagnostics"][0]["message"].as_str().unwrap().lines().next(),
        Some("Errors are silently ignored")
    );
    assert_eq!(util["diagnostics"][0]["range"]["start"]["line"], 1);
    assert_eq!(extra["diagnostics"][0]["severity"], 1);
    assert_eq!(extra["diagnostics"][0]["range"]["start"], json!({"line": 1, "character": 4}));

    // The prompt lists the files of src/ (tests left out) and inlines none of them.
    let prompt = ws.api.requests()[0].last_user_text();
    assert!(prompt.contains("This review covers the folder `src/`: 3 files"), "{prompt}");
    assert!(prompt.contains("src/extra.rs\nsrc/lib.rs\nsrc/util.rs\n"), "{prompt}");
    assert!(prompt.contains("1 test files are left out"), "{prompt}");
    assert!(!prompt.contains("README.md"), "outside the folder: {prompt}");
    assert!(!prompt.contains("unwrap_or_default") && !prompt.contains("n / 0"), "{prompt}");

    // Progress counted the files in scope as the agent read them.
    ws.client.settle().await;
    let reports: Vec<String> = ws
        .client
        .take_notifications("$/progress")
        .iter()
        .filter_map(|p| p["value"]["message"].as_str().map(str::to_owned))
        .collect();
    for expected in ["Reading src/util.rs (1 of 3 files)", "Reading src/extra.rs (2 of 3 files)"] {
        assert!(reports.iter().any(|r| r == expected), "no {expected:?} in {reports:#?}");
    }

    // Opening util.rs with other text than the review saw clears its findings; opening it as
    // it is keeps them.
    ws.client.did_open(&util_uri, "rust", 1, &UTIL.replace("path", "file")).await;
    let cleared = ws.client.wait_for_notification(DIAGNOSTICS, |p| p["uri"] == util_uri).await;
    assert_eq!(cleared["diagnostics"], json!([]));
    // extra.rs changes on disk while closed: the watched-file event clears it.
    std::fs::write(ws.path("src/extra.rs"), EXTRA.replace("n / 0", "n / 2")).unwrap();
    ws.client
        .notify_json(
            "workspace/didChangeWatchedFiles",
            json!({"changes": [{"uri": extra_uri, "type": 2}]}),
        )
        .await;
    let cleared = ws.client.wait_for_notification(DIAGNOSTICS, |p| p["uri"] == extra_uri).await;
    assert_eq!(cleared["diagnostics"], json!([]));
    ws.drain().await;
    ws.client.take_notifications("window/showMessage");
    ws.client.finish().await;
}

#[tokio::test]
async fn a_workspace_analysis_with_tests_lists_every_file_and_uses_the_runs_model() {
    let mut ws = start().await;
    let result = ws
        .client
        .request_json(
            "claude/analyze",
            json!({
                "textDocument": {"uri": ws.uri("src/lib.rs")}, "scope": "workspace",
                "includeTests": true, "depth": "deep", "model": "claude-haiku-4-5",
            }),
        )
        .await
        .unwrap();
    let paths: Vec<&str> =
        result["findings"].as_array().unwrap().iter().map(|f| f["uri"].as_str().unwrap()).collect();
    assert_eq!(paths, [ws.uri("src/util.rs"), ws.uri("src/extra.rs")]);
    let request = &ws.api.requests()[0];
    assert_eq!(request.model(), Some("claude-haiku-4-5"));
    let prompt = request.last_user_text();
    assert!(prompt.contains("This analysis covers the whole workspace: 5 files"), "{prompt}");
    assert!(
        prompt.contains("README.md\nsrc/extra.rs\nsrc/lib.rs\nsrc/tests/it.rs\nsrc/util.rs\n"),
        "{prompt}"
    );
    assert!(prompt.contains("- Be thorough: read every file in scope"), "{prompt}");
    // A request returns findings; it publishes nothing.
    ws.client.settle().await;
    assert!(ws.client.take_notifications(DIAGNOSTICS).is_empty());
    ws.drain().await;
    ws.client.finish().await;
}
