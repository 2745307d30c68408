//! Helix as the client: every Claude action must be reachable with what Helix 25.07 offers — code
//! actions, `:lsp-workspace-command`, `$/progress`, `workspace/applyEdit`, diagnostics and
//! `window/showMessage` — and no custom request, no `window/showDocument`.
//!
//! The client below replays Helix 25.07.1 (the latest release): its `initialize` capabilities
//! (helix-lsp/src/client.rs, `Client::initialize`), its code-action flow (helix-term
//! commands/lsp.rs: the request carries the diagnostics overlapping the selection, `only` unset,
//! `triggerKind` Invoked; a picked action without an `edit` is first resolved when the server
//! offers `resolveProvider` — ours does not — then its `command` is executed), its `:lsp-workspace-command` (no arguments from the picker; typed
//! arguments are a stream of JSON values) and its 20-second request timeout. Helix checks the
//! `version` of a `TextDocumentEdit` against the document exactly, and its documents start at
//! version 0. The in-process server runs the real CLI against the fake API.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use claude_lsp::lsp_server::server::ServerOptions;

use crate::support::cli::{cli_sessions, real_cli};
use crate::support::fake_api::{RecordedRequest, Script, Turn};
use crate::support::lsp_client::{TestClient, apply_edits};
use crate::support::wait::eventually;
use crate::support::workspace::{Workspace, cli_cwd};

/// Helix's default `timeout` for a language server request.
const HELIX_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Helix 25.07.1's client capabilities, as `initialize` sends them (default editor config, so
/// snippets on).
fn helix_capabilities() -> Value {
    json!({
        "workspace": {
            "configuration": true,
            "didChangeConfiguration": {"dynamicRegistration": false},
            "workspaceFolders": true,
            "applyEdit": true,
            "symbol": {"dynamicRegistration": false},
            "executeCommand": {"dynamicRegistration": false},
            "inlayHint": {"refreshSupport": false},
            "workspaceEdit": {
                "documentChanges": true,
                "resourceOperations": ["create", "rename", "delete"],
                "failureHandling": "abort",
                "normalizesLineEndings": false,
            },
            "didChangeWatchedFiles": {"dynamicRegistration": true, "relativePatternSupport": false},
            "fileOperations": {"willRename": true, "didRename": true},
        },
        "textDocument": {
            "completion": {
                "completionItem": {
                    "snippetSupport": true,
                    "resolveSupport": {"properties": ["documentation", "detail", "additionalTextEdits"]},
                    "insertReplaceSupport": true,
                    "deprecatedSupport": true,
                    "tagSupport": {"valueSet": [1]},
                },
                "completionItemKind": {},
            },
            "hover": {"contentFormat": ["markdown"]},
            "signatureHelp": {
                "signatureInformation": {
                    "documentationFormat": ["markdown"],
                    "parameterInformation": {"labelOffsetSupport": true},
                    "activeParameterSupport": true,
                },
            },
            "rename": {"dynamicRegistration": false, "prepareSupport": true, "honorsChangeAnnotations": false},
            "formatting": {"dynamicRegistration": false},
            "codeAction": {
                "codeActionLiteralSupport": {"codeActionKind": {"valueSet": [
                    "", "quickfix", "refactor", "refactor.extract", "refactor.inline",
                    "refactor.rewrite", "source", "source.organizeImports",
                ]}},
                "isPreferredSupport": true,
                "disabledSupport": true,
                "dataSupport": true,
                "resolveSupport": {"properties": ["edit", "command"]},
            },
            "publishDiagnostics": {"versionSupport": true, "tagSupport": {"valueSet": [1, 2]}},
            "inlayHint": {"dynamicRegistration": false},
        },
        "window": {"workDoneProgress": true},
        "general": {"positionEncodings": ["utf-8", "utf-32", "utf-16"]},
    })
}

const RECURSIVE: &str = "\
// claude: make this iterative
fn sum(n: u64) -> u64 {
    if n == 0 { 0 } else { n + sum(n - 1) }
}

fn main() {
    println!(\"{}\", sum(10)); // prints 55 — «ünïcödé» keeps byte and char offsets apart
}
";

const ITERATIVE_BODY: &str = "fn sum(n: u64) -> u64 {\n    (1..=n).sum()\n}\n";

fn iterative() -> String {
    RECURSIVE.replace(
        "// claude: make this iterative\nfn sum(n: u64) -> u64 {\n    if n == 0 { 0 } else { n + sum(n - 1) }\n}\n",
        ITERATIVE_BODY,
    )
}

/// The review's answer: one call of the CLI's StructuredOutput tool (the server asks for a schema).
fn findings_answer() -> Turn {
    Turn::tool_use(
        "StructuredOutput",
        json!({
            "summary": "One real problem.",
            "findings": [{
                "path": "src/lib.rs", "startLine": 3, "endLine": 3,
                "severity": "warning", "category": "bug",
                "title": "Deep recursion overflows the stack for large n",
                "explanation": "Each call adds a stack frame.",
                "snippet": "n + sum(n - 1)",
            }],
        }),
    )
}

const TESTS: &str = "#[test]\nfn sums() {\n    assert_eq!(demo::sum(10), 55);\n}\n";

const ANALYSIS: &str = "`sum` adds the numbers 1..=n recursively.";

/// One fake model for every action, told apart by the task in the prompt: a refactor reads the
/// file then edits it, a review reports one finding, an analysis answers in text.
fn model(request: &RecordedRequest) -> Turn {
    let conversation = request.all_text();
    if conversation.contains("- Review ") {
        return match request.turn_index() {
            0 => findings_answer(),
            _ => Turn::text("Reviewed."),
        };
    }
    if conversation.contains("- Analyze ") {
        return Turn::text(ANALYSIS);
    }
    if conversation.contains("Write tests for the selected code") {
        return match request.turn_index() {
            0 => Turn::tool_use(
                "Write",
                json!({"file_path": format!("{}/tests/sum.rs", cli_cwd(request)), "content": TESTS}),
            ),
            _ => Turn::text("Added tests/sum.rs."),
        };
    }
    let path = format!("{}/src/lib.rs", cli_cwd(request));
    match request.turn_index() {
        0 => Turn::tool_use("Read", json!({"file_path": path})),
        1 => Turn::tool_use(
            "Edit",
            json!({
                "file_path": path,
                "old_string": "// claude: make this iterative\nfn sum(n: u64) -> u64 {\n    if n == 0 { 0 } else { n + sum(n - 1) }\n}\n",
                "new_string": ITERATIVE_BODY,
            }),
        ),
        _ => Turn::text("Made `sum` iterative."),
    }
}

/// Start a workspace holding `src/lib.rs` and open it the way Helix does (version 0).
async fn helix_workspace(script: impl Into<Script>) -> (Workspace, String) {
    // Helix sends its `config` table as initializationOptions; the server reads the `claude`
    // section of it (settings merged over the test's CLI path and fake API environment).
    let ws = Workspace::start(
        &[("src/lib.rs", RECURSIVE)],
        script,
        helix_capabilities(),
        json!({"warmPool": 0}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 0, RECURSIVE).await;
    (ws, uri)
}

/// A request as Helix sends it: Helix gives up after 20 seconds.
async fn helix_request(client: &mut TestClient, method: &str, params: Value) -> Value {
    let started = Instant::now();
    let (_, answer) = client.start_request(method, params).await;
    let answer = tokio::time::timeout(HELIX_REQUEST_TIMEOUT, TestClient::answer(answer))
        .await
        .unwrap_or_else(|_| panic!("{method} took longer than Helix's 20 s request timeout"));
    let result = answer.unwrap_or_else(|err| panic!("{method} failed: {err}"));
    assert!(started.elapsed() < HELIX_REQUEST_TIMEOUT);
    result
}

fn position(line: u32, character: u32) -> Value {
    json!({"line": line, "character": character})
}

/// What Helix sends for `space a` with the cursor (a one-character selection) at
/// `line`:`character`, with the diagnostics that overlap it.
async fn code_actions(
    client: &mut TestClient,
    uri: &str,
    line: u32,
    character: u32,
    diagnostics: Value,
) -> Vec<Value> {
    let result = helix_request(
        client,
        "textDocument/codeAction",
        json!({
            "textDocument": {"uri": uri},
            "range": {"start": position(line, character), "end": position(line, character + 1)},
            "context": {"diagnostics": diagnostics, "triggerKind": 1},
        }),
    )
    .await;
    result.as_array().cloned().unwrap_or_else(|| panic!("no code actions: {result}"))
}

fn titles(actions: &[Value]) -> Vec<&str> {
    actions.iter().filter_map(|action| action["title"].as_str()).collect()
}

fn find_action<'a>(actions: &'a [Value], title: &str) -> &'a Value {
    actions
        .iter()
        .find(|action| action["title"] == title)
        .unwrap_or_else(|| panic!("no code action {title:?} in {:#?}", titles(actions)))
}

/// Pick `action` in Helix's code-action menu: with no `resolveProvider` Helix resolves nothing
/// and executes the action's command. Returns the command's result.
async fn pick(client: &mut TestClient, action: &Value) -> Value {
    assert!(action.get("edit").is_none(), "a Claude action must not carry a precomputed edit");
    let command = action["command"].clone();
    assert!(command.is_object(), "the action carries no command: {action}");
    helix_request(client, "workspace/executeCommand", command).await
}

/// Helix's `:lsp-workspace-command <name> <json…>`: the rest of the line is a stream of JSON
/// values; none at all sends no `arguments`.
async fn workspace_command(client: &mut TestClient, typed: &str) -> Value {
    let (name, rest) = typed.split_once(' ').unwrap_or((typed, ""));
    let arguments: Vec<Value> = serde_json::Deserializer::from_str(rest)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|err| panic!("Helix would refuse {typed:?}: {err}"));
    let mut params = json!({"command": name});
    if !arguments.is_empty() {
        params["arguments"] = Value::Array(arguments);
    }
    helix_request(client, "workspace/executeCommand", params).await
}

/// The progress of the run the server started for a command: it creates the token itself
/// (Helix announces workDoneProgress) and reports begin → … → end on it.
async fn server_created_progress(client: &TestClient, runs_before: usize) -> Vec<Value> {
    let token = eventually("the server creates a progress token", async || {
        let created = client.server_requests("window/workDoneProgress/create");
        created.get(runs_before).map(|create| create["token"].clone())
    })
    .await;
    let values = client.progress_until_end(&token).await;
    assert_eq!(values.first().unwrap()["kind"], "begin", "{values:#?}");
    assert_eq!(values.first().unwrap()["cancellable"], true, "{values:#?}");
    values
}

#[tokio::test]
async fn initialize_negotiates_utf8_and_lists_every_command_for_the_picker() {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut client = TestClient::start(ServerOptions {
        cache_dir: cache.path().to_path_buf(),
        ..ServerOptions::default()
    });
    // Helix sends its `config` table as it is, settings under `claude` (editors/helix/languages.toml).
    let options = json!({"claude": {"cliPath": real_cli(), "warmPool": 0}});
    let result = client.initialize(root.path(), helix_capabilities(), options).await;
    let capabilities = &result["capabilities"];
    assert_eq!(capabilities["positionEncoding"], "utf-8", "Helix offers utf-8 first");
    // Helix applies an action as listed: nothing to resolve.
    assert!(capabilities["codeActionProvider"].get("resolveProvider").is_none());
    // Helix has no window/showDocument: long answers are read as a hover.
    assert_eq!(capabilities["hoverProvider"], true);
    let commands: Vec<&str> = capabilities["executeCommandProvider"]["commands"]
        .as_array()
        .expect("no executeCommandProvider: Helix could run no command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for command in [
        "claude.generate",
        "claude.analyze",
        "claude.refactor",
        "claude.review",
        "claude.continue",
        "claude.cancel",
        "claude.applyFinding",
        "claude.dismissFinding",
        "claude.showUsage",
        "claude.applyChange",
        "claude.discardChange",
    ] {
        assert!(commands.contains(&command), "{command} is not offered to :lsp-workspace-command");
    }
    // Helix watches files for servers that register: changes and deletions on disk, so findings
    // of files that are not open go when their file changes.
    let registration = client.wait_for_server_request("client/registerCapability").await;
    assert_eq!(
        registration["registrations"],
        json!([{
            "id": "claude-lsp/watched-files",
            "method": "workspace/didChangeWatchedFiles",
            "registerOptions": {"watchers": [{"globPattern": "**/*", "kind": 6}]},
        }])
    );
    client.finish().await;
}

#[tokio::test]
async fn an_instruction_comment_becomes_a_code_action_whose_edit_arrives_by_apply_edit() {
    let (mut ws, uri) = helix_workspace(Script::from_fn(model)).await;
    let actions = code_actions(&mut ws.client, &uri, 0, 3, json!([])).await;
    let listed = titles(&actions);
    for expected in [
        "Claude: make this iterative",
        "Claude: review file",
        "Claude: review my changes",
        "Claude: analyze file",
    ] {
        assert!(listed.contains(&expected), "{expected:?} missing from {listed:#?}");
    }
    assert!(listed.iter().all(|title| title.starts_with("Claude: ")), "{listed:#?}");
    // Every action is reachable from the menu (Helix's cursor is a one-character selection, so
    // the selection presets are offered too: "add tests" is a generate).
    let mut commands: Vec<&str> =
        actions.iter().filter_map(|action| action["command"]["command"].as_str()).collect();
    commands.sort_unstable();
    commands.dedup();
    for command in ["claude.analyze", "claude.generate", "claude.refactor", "claude.review"] {
        assert!(commands.contains(&command), "no code action runs {command}: {commands:?}");
    }
    assert!(ws.api.requests().is_empty(), "listing code actions must not call the model");

    let started = pick(&mut ws.client, find_action(&actions, "Claude: make this iterative")).await;
    assert!(started["runId"].as_str().is_some_and(|id| !id.is_empty()), "{started}");

    let progress = server_created_progress(&ws.client, 0).await;
    assert_eq!(progress.first().unwrap()["title"], "Claude: refactor");
    let apply = ws.client.wait_for_server_request("workspace/applyEdit").await;
    assert_eq!(apply["label"], "Claude: refactor");
    let changes =
        apply["edit"]["documentChanges"].as_array().expect("Helix asked for documentChanges");
    assert_eq!(changes.len(), 1, "{apply:#}");
    // Helix refuses an edit whose version is not the document's: it opened at 0 and nobody typed.
    assert_eq!(changes[0]["textDocument"], json!({"uri": uri, "version": 0}));
    let edited = apply_edits(RECURSIVE, changes[0]["edits"].as_array().unwrap());
    assert_eq!(edited, iterative());
    assert_eq!(ws.read("src/lib.rs"), RECURSIVE, "the user's file changes only when Helix saves");
    let message = ws.client.next_notification("window/showMessage").await;
    assert_eq!(message["message"], "Claude: Made `sum` iterative.");
    ws.client.take_notifications("claude/output");
    ws.client.finish().await;
}

#[tokio::test]
async fn generated_files_arrive_as_create_file_operations_helix_supports() {
    let (mut ws, uri) = helix_workspace(Script::from_fn(model)).await;
    let actions = code_actions(&mut ws.client, &uri, 1, 3, json!([])).await;
    pick(&mut ws.client, find_action(&actions, "Claude: add tests")).await;
    let progress = server_created_progress(&ws.client, 0).await;
    assert_eq!(progress.first().unwrap()["title"], "Claude: generate");
    let apply = ws.client.wait_for_server_request("workspace/applyEdit").await;
    let new_uri = ws.uri("tests/sum.rs");
    let changes = apply["edit"]["documentChanges"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{apply:#}");
    assert_eq!((&changes[0]["kind"], &changes[0]["uri"]), (&json!("create"), &json!(new_uri)));
    assert_ne!(
        changes[0]["options"]["overwrite"], true,
        "an existing file must never be clobbered"
    );
    assert_eq!(
        changes[1],
        json!({"textDocument": {"uri": new_uri, "version": null},
               "edits": [{"range": {"start": position(0, 0), "end": position(0, 0)}, "newText": TESTS}]})
    );
    assert!(!ws.path("tests/sum.rs").exists(), "the file appears when Helix applies the edit");
    ws.client.take_notifications("window/showMessage");
    ws.client.take_notifications("claude/output");
    ws.client.finish().await;
}

#[tokio::test]
async fn a_review_reports_findings_as_diagnostics_that_code_actions_can_dismiss() {
    let (mut ws, uri) = helix_workspace(Script::from_fn(model)).await;
    let actions = code_actions(&mut ws.client, &uri, 2, 4, json!([])).await;
    pick(&mut ws.client, find_action(&actions, "Claude: review file")).await;
    server_created_progress(&ws.client, 0).await;

    let published = ws
        .client
        .wait_for_notification("textDocument/publishDiagnostics", |params| {
            params["uri"] == uri && params["diagnostics"].as_array().is_some_and(|d| !d.is_empty())
        })
        .await;
    let diagnostics = published["diagnostics"].as_array().unwrap().clone();
    assert_eq!(diagnostics.len(), 1, "{published:#}");
    let finding = &diagnostics[0];
    assert_eq!(finding["source"], "claude");
    assert_eq!(finding["severity"], 2, "warning");
    assert_eq!(finding["range"]["start"]["line"], 2);
    assert!(finding["message"].as_str().unwrap().contains("Deep recursion"), "{finding}");

    // With the cursor at the start of the flagged line, off the flagged text, Helix sends no
    // diagnostic: the finding's actions are offered all the same.
    let on_line = code_actions(&mut ws.client, &uri, 2, 0, json!([])).await;
    assert!(titles(&on_line).contains(&"Claude: dismiss finding"), "{:#?}", titles(&on_line));
    // Helix sends the diagnostics under the cursor with the code-action request.
    let on_finding = code_actions(&mut ws.client, &uri, 2, 4, json!([finding])).await;
    let listed = titles(&on_finding);
    assert!(listed.contains(&"Claude: fix with Claude"), "{listed:#?}");
    assert!(listed.contains(&"Claude: dismiss all findings in this file"), "{listed:#?}");
    pick(&mut ws.client, find_action(&on_finding, "Claude: dismiss finding")).await;
    let cleared = ws
        .client
        .wait_for_notification("textDocument/publishDiagnostics", |params| params["uri"] == uri)
        .await;
    assert_eq!(cleared["diagnostics"], json!([]), "{cleared:#}");
    ws.client.take_notifications("window/showMessage");
    ws.client.take_notifications("claude/output");
    ws.client.finish().await;
}

#[tokio::test]
async fn code_action_variants_carry_the_common_options_to_the_model() {
    let (mut ws, uri) = helix_workspace(Script::from_fn(model)).await;
    let actions = code_actions(&mut ws.client, &uri, 2, 4, json!([])).await;
    pick(&mut ws.client, find_action(&actions, "Claude: review file (warnings and up)")).await;
    server_created_progress(&ws.client, 0).await;
    let published = ws
        .client
        .wait_for_notification("textDocument/publishDiagnostics", |params| params["uri"] == uri)
        .await;
    assert_eq!(published["diagnostics"][0]["severity"], 2, "{published:#}");
    let prompt = ws.api.requests()[0].last_user_text();
    assert!(prompt.contains("Report only findings of severity `warning` or more"), "{prompt}");

    // The folder variant lists the file's folder for the agent instead of showing the file.
    pick(&mut ws.client, find_action(&actions, "Claude: review folder")).await;
    let reviewed = ws
        .api
        .wait_for_request("the folder review", Duration::from_secs(60), |request| {
            request.last_user_text().contains("## Files in scope")
        })
        .await;
    let prompt = reviewed.last_user_text();
    assert!(prompt.contains("This review covers the folder `src/`: 1 file"), "{prompt}");
    assert!(prompt.contains("```text\nsrc/lib.rs\n```"), "{prompt}");
    assert!(!prompt.contains("n + sum(n - 1)"), "the file is not inlined: {prompt}");
    ws.client.settle().await;
    ws.client.take_notifications("textDocument/publishDiagnostics");
    ws.client.take_notifications("window/showMessage");
    ws.client.take_notifications("claude/output");
    ws.client.take_notifications("$/progress");
    ws.client.finish().await;
}

#[tokio::test]
async fn an_analysis_answers_with_show_message_because_helix_cannot_show_documents() {
    let (mut ws, uri) = helix_workspace(Script::from_fn(model)).await;
    let actions = code_actions(&mut ws.client, &uri, 1, 3, json!([])).await;
    pick(&mut ws.client, find_action(&actions, "Claude: analyze file")).await;
    server_created_progress(&ws.client, 0).await;
    let message = ws
        .client
        .wait_for_notification("window/showMessage", |params| {
            params["message"].as_str().is_some_and(|text| text.contains(ANALYSIS))
        })
        .await;
    assert_eq!(message["type"], 3, "an answer is information: {message}");
    assert!(
        ws.client.server_requests("window/showDocument").is_empty(),
        "Helix 25.07 does not announce window/showDocument"
    );
    assert!(
        ws.client.server_requests("workspace/applyEdit").is_empty(),
        "an analysis edits nothing"
    );
    ws.client.take_notifications("textDocument/publishDiagnostics");
    ws.client.take_notifications("claude/output");
    ws.client.finish().await;
}

/// An answer of several paragraphs, as an analysis of real code tends to be.
const LONG_ANALYSIS: &str = "`sum` adds the numbers 1..=n recursively, one stack frame per number.\n\n\
    For large n it overflows the stack; an iterative sum or the closed form n*(n+1)/2 avoids it.\n\n\
    The function is pure, so either change keeps every caller working.";

#[tokio::test]
async fn a_long_analysis_is_announced_on_one_line_and_read_whole_as_a_hover() {
    let (mut ws, uri) = helix_workspace(Turn::text(LONG_ANALYSIS)).await;
    // `space a` on lines 1-3 (the function), then "analyze selection".
    let typed = format!(
        r#"claude.analyze {{"textDocument": {{"uri": "{uri}"}}, "range": {{"start": {{"line": 1, "character": 0}}, "end": {{"line": 3, "character": 1}}}}}}"#
    );
    workspace_command(&mut ws.client, &typed).await;
    server_created_progress(&ws.client, 0).await;
    let message = ws.client.next_notification("window/showMessage").await;
    let text = message["message"].as_str().unwrap();
    // One line that Helix's status line can hold, saying where the rest is.
    assert!(!text.contains('\n'), "{text}");
    assert!(text.starts_with("Claude (analyze): `sum` adds the numbers"), "{text}");
    assert!(text.ends_with("hover over the selected code to read the whole answer"), "{text}");
    assert!(text.chars().count() <= 160, "{} characters: {text}", text.chars().count());

    // Helix's `space k` on the analysed code: the whole answer, as markdown.
    let hover = |line: u32| json!({"textDocument": {"uri": uri}, "position": position(line, 2)});
    let shown = helix_request(&mut ws.client, "textDocument/hover", hover(2)).await;
    assert_eq!(shown["contents"]["kind"], "markdown", "{shown}");
    let value = shown["contents"]["value"].as_str().unwrap();
    assert!(value.contains(LONG_ANALYSIS), "{value}");
    // Off the analysed lines there is nothing to show.
    let elsewhere = helix_request(&mut ws.client, "textDocument/hover", hover(6)).await;
    assert_eq!(elsewhere, Value::Null);
    // Two lines typed above the function: the answer moves with its code.
    ws.client
        .did_change(
            &uri,
            1,
            json!([{"range": {"start": position(0, 0), "end": position(0, 0)}, "text": "//\n//\n"}]),
        )
        .await;
    let moved = helix_request(&mut ws.client, "textDocument/hover", hover(5)).await;
    assert!(moved["contents"]["value"].as_str().unwrap().contains(LONG_ANALYSIS), "{moved}");
    assert_eq!(helix_request(&mut ws.client, "textDocument/hover", hover(1)).await, Value::Null);
    assert!(ws.client.server_requests("window/showDocument").is_empty());
    ws.client.drain().await;
    ws.client.take_notifications("textDocument/publishDiagnostics");
    ws.client.finish().await;
}

#[tokio::test]
async fn a_missing_cli_says_how_to_install_it_before_where_it_looked() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", RECURSIVE)],
        Turn::text("unused"),
        helix_capabilities(),
        json!({"warmPool": 0, "cliPath": "/nonexistent/claude"}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 0, RECURSIVE).await;
    let typed = format!(r#"claude.analyze {{"textDocument": {{"uri": "{uri}"}}}}"#);
    workspace_command(&mut ws.client, &typed).await;
    let message = ws.client.next_notification("window/showMessage").await;
    assert_eq!(message["type"], 1, "an error: {message}");
    let text = message["message"].as_str().unwrap();
    // Helix cuts the status line at the terminal's width: the fix comes first.
    let fix = "install it with `npm install -g @anthropic-ai/claude-code`";
    let at = text.find(fix).unwrap_or_else(|| panic!("no install hint in {text:?}"));
    assert!(at < 60, "the install hint starts at character {at}: {text}");
    assert!(text.find("Looked in").is_some_and(|looked| looked > at), "{text}");
    ws.client.drain().await;
    ws.client.take_notifications("window/showMessage");
    ws.client.finish().await;
}

#[tokio::test]
async fn workspace_commands_typed_in_helix_run_and_cancel() {
    // The model never answers: the run stays in flight until cancelled.
    let (mut ws, uri) = helix_workspace(Turn::Hang).await;
    let typed = format!(
        r#"claude.refactor {{"textDocument": {{"uri": "{uri}"}}, "instruction": "make sum iterative"}}"#
    );
    let started = workspace_command(&mut ws.client, &typed).await;
    assert!(started["runId"].as_str().is_some(), "{started}");
    ws.api.wait_for_requests(1, Duration::from_secs(60)).await;
    let home = ws.home.path().to_path_buf();
    let ours = || cli_sessions(&home).len();
    assert_eq!(ours(), 1, "the run's CLI should be running");

    // From the picker: no arguments at all.
    let cancelled = workspace_command(&mut ws.client, "claude.cancel").await;
    assert_eq!(cancelled, json!({"cancelled": 1}));
    let progress = server_created_progress(&ws.client, 0).await;
    assert_eq!(progress.last().unwrap()["message"], "Cancelled; nothing was applied");
    eventually("the cancelled run's CLI is gone", async || (ours() == 0).then_some(())).await;
    assert!(ws.client.server_requests("workspace/applyEdit").is_empty());

    let usage = workspace_command(&mut ws.client, "claude.showUsage").await;
    assert!(usage.is_object(), "{usage}");
    ws.client.take_notifications("window/showMessage");
    ws.client.take_notifications("claude/output");
    ws.client.take_notifications("claude/usage");
    ws.client.take_notifications("claude/usageChanged");
    ws.client.finish().await;
}

/// Five one-line functions, apart: a refactor changing each body is five hunks.
const FIVE: &str = "fn one() -> u32 { 1 }\n\nfn two() -> u32 { 2 }\n\nfn three() -> u32 { 3 }\n\nfn four() -> u32 { 4 }\n\nfn five() -> u32 { 5 }\n";

fn five_times_ten() -> String {
    FIVE.replace("{ 1 }", "{ 10 }")
        .replace("{ 2 }", "{ 20 }")
        .replace("{ 3 }", "{ 30 }")
        .replace("{ 4 }", "{ 40 }")
        .replace("{ 5 }", "{ 50 }")
}

/// The refactor reads `src/lib.rs`, then writes it with every number times ten.
fn times_ten_model(request: &RecordedRequest) -> Turn {
    let path = format!("{}/src/lib.rs", cli_cwd(request));
    match request.turn_index() {
        0 => Turn::tool_use("Read", json!({"file_path": path})),
        1 => Turn::tool_use("Write", json!({"file_path": path, "content": five_times_ten()})),
        _ => Turn::text("Multiplied every number by ten."),
    }
}

/// The proposed changes published for `uri` once there are `count` of them.
async fn proposed_changes(client: &TestClient, uri: &str, count: usize) -> Vec<Value> {
    let published = client
        .wait_for_notification("textDocument/publishDiagnostics", |params| {
            params["uri"] == uri
                && params["diagnostics"].as_array().is_some_and(|d| d.len() == count)
        })
        .await;
    published["diagnostics"].as_array().unwrap().clone()
}

fn line_of(diagnostic: &Value) -> u64 {
    diagnostic["range"]["start"]["line"].as_u64().unwrap()
}

#[tokio::test]
async fn review_delivery_offers_each_hunk_as_code_actions_that_apply_or_discard_it_alone() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", FIVE)],
        Script::from_fn(times_ten_model),
        helix_capabilities(),
        json!({"warmPool": 0, "delivery": "review"}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 0, FIVE).await;
    let typed = format!(
        r#"claude.refactor {{"textDocument": {{"uri": "{uri}"}}, "instruction": "multiply every number by ten"}}"#
    );
    workspace_command(&mut ws.client, &typed).await;
    server_created_progress(&ws.client, 0).await;

    // One Information diagnostic per hunk, where it lands, quoting the proposed line.
    let diagnostics = proposed_changes(&ws.client, &uri, 5).await;
    let lines: Vec<u64> = diagnostics.iter().map(line_of).collect();
    assert_eq!(lines, [0, 2, 4, 6, 8], "{diagnostics:#?}");
    for (diagnostic, number) in diagnostics.iter().zip(["10", "20", "30", "40", "50"]) {
        assert_eq!(diagnostic["severity"], 3, "information: {diagnostic}");
        assert_eq!(diagnostic["source"], "claude");
        let message = diagnostic["message"].as_str().unwrap();
        assert!(message.contains(&format!("{{ {number} }}")), "{message}");
        assert!(
            diagnostic["data"]["runId"].is_string() && diagnostic["data"]["changeId"].is_string()
        );
    }
    let told = ws
        .client
        .wait_for_notification("window/showMessage", |params| {
            params["message"].as_str().is_some_and(|text| text.contains("5 proposed changes"))
        })
        .await;
    assert_eq!(told["type"], 3, "{told}");
    assert!(ws.client.server_requests("workspace/applyEdit").is_empty(), "nothing applied yet");

    // `space a` on the first function, with its diagnostic.
    let actions = code_actions(&mut ws.client, &uri, 0, 3, json!([diagnostics[0]])).await;
    let listed = titles(&actions);
    for expected in [
        "Claude: apply this change",
        "Claude: discard this change",
        "Claude: apply all changes from this run",
        "Claude: discard all",
    ] {
        assert!(listed.contains(&expected), "{expected:?} missing from {listed:#?}");
    }
    let applied = pick(&mut ws.client, find_action(&actions, "Claude: apply this change")).await;
    assert_eq!(applied, json!({"applied": true, "changes": 1}));
    let apply = ws.client.wait_for_server_request("workspace/applyEdit").await;
    let changes = apply["edit"]["documentChanges"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{apply:#}");
    assert_eq!(changes[0]["textDocument"], json!({"uri": uri, "version": 0}));
    let edits = changes[0]["edits"].as_array().unwrap();
    assert_eq!(edits.len(), 1, "that hunk only: {apply:#}");
    let text = apply_edits(FIVE, edits);
    assert_eq!(text, FIVE.replace("{ 1 }", "{ 10 }"));
    // Helix applies it and says so.
    ws.client
        .did_change(&uri, 1, json!([{"range": edits[0]["range"], "text": edits[0]["newText"]}]))
        .await;
    let diagnostics = proposed_changes(&ws.client, &uri, 4).await;
    assert_eq!(diagnostics.iter().map(line_of).collect::<Vec<_>>(), [2, 4, 6, 8]);

    // Discard the second: its diagnostic goes, nothing is applied.
    let actions = code_actions(&mut ws.client, &uri, 2, 3, json!([diagnostics[0]])).await;
    let discarded =
        pick(&mut ws.client, find_action(&actions, "Claude: discard this change")).await;
    assert_eq!(discarded, json!({"discarded": 1}));
    let diagnostics = proposed_changes(&ws.client, &uri, 3).await;
    assert_eq!(diagnostics.iter().map(line_of).collect::<Vec<_>>(), [4, 6, 8]);

    // Typing inside the third withdraws it, with a message; a line typed at the top moves the rest.
    ws.client
        .did_change(
            &uri,
            2,
            json!([{"range": {"start": position(4, 18), "end": position(4, 19)}, "text": "33"}]),
        )
        .await;
    let withdrawn = ws
        .client
        .wait_for_notification("window/showMessage", |params| {
            params["message"].as_str().is_some_and(|text| text.contains("withdrawn"))
        })
        .await;
    assert_eq!(withdrawn["type"], 2, "a warning: {withdrawn}");
    assert!(withdrawn["message"].as_str().unwrap().contains("line 5"), "{withdrawn}");
    let diagnostics = proposed_changes(&ws.client, &uri, 2).await;
    assert_eq!(diagnostics.iter().map(line_of).collect::<Vec<_>>(), [6, 8]);
    ws.client
        .did_change(&uri, 3, json!([{"range": {"start": position(0, 0), "end": position(0, 0)}, "text": "// top\n"}]))
        .await;
    let diagnostics = proposed_changes(&ws.client, &uri, 2).await;
    assert_eq!(diagnostics.iter().map(line_of).collect::<Vec<_>>(), [7, 9]);
    let current = format!("// top\n{}", text.replace("{ 3 }", "{ 33 }"));

    // Apply all that is left: one edit, both hunks at their new places, on Helix's version.
    let actions = code_actions(&mut ws.client, &uri, 9, 3, json!([])).await;
    let all =
        pick(&mut ws.client, find_action(&actions, "Claude: apply all changes from this run"))
            .await;
    assert_eq!(all, json!({"applied": true, "changes": 2}));
    let applies = ws.client.server_requests("workspace/applyEdit");
    assert_eq!(applies.len(), 2);
    let changes = applies[1]["edit"]["documentChanges"].as_array().unwrap();
    assert_eq!(changes[0]["textDocument"], json!({"uri": uri, "version": 3}));
    let edits = changes[0]["edits"].as_array().unwrap();
    assert_eq!(edits.len(), 2, "{:#}", applies[1]);
    let expected = format!(
        "// top\n{}",
        FIVE.replace("{ 1 }", "{ 10 }")
            .replace("{ 3 }", "{ 33 }")
            .replace("{ 4 }", "{ 40 }")
            .replace("{ 5 }", "{ 50 }")
    );
    assert_eq!(apply_edits(&current, edits), expected);
    proposed_changes(&ws.client, &uri, 0).await;
    assert_eq!(ws.read("src/lib.rs"), FIVE, "the user's file changes only when Helix saves");
    // Nothing is left to apply.
    let again =
        helix_request_error(&mut ws.client, find_action(&actions, "Claude: discard all")).await;
    assert!(again["message"].as_str().unwrap().contains("no proposed change"), "{again}");

    ws.client.take_notifications("window/showMessage");
    ws.client.take_notifications("textDocument/publishDiagnostics");
    ws.client.take_notifications("claude/output");
    ws.client.finish().await;
}

/// Pick `action` expecting the command to fail: its JSON-RPC error.
async fn helix_request_error(client: &mut TestClient, action: &Value) -> Value {
    let (_, answer) =
        client.start_request("workspace/executeCommand", action["command"].clone()).await;
    TestClient::answer(answer).await.expect_err("the command should fail")
}

#[tokio::test]
async fn in_review_delivery_a_new_file_is_one_change_shown_where_the_run_started() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", RECURSIVE)],
        Script::from_fn(model),
        helix_capabilities(),
        json!({"warmPool": 0, "delivery": "review"}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 0, RECURSIVE).await;
    let actions = code_actions(&mut ws.client, &uri, 1, 3, json!([])).await;
    pick(&mut ws.client, find_action(&actions, "Claude: add tests")).await;
    server_created_progress(&ws.client, 0).await;
    let proposed = proposed_changes(&ws.client, &uri, 1).await;
    assert_eq!(line_of(&proposed[0]), 1, "at the start of the run's range: {proposed:#?}");
    let message = proposed[0]["message"].as_str().unwrap();
    assert!(message.contains("proposes creating"), "{message}");
    assert!(message.contains("tests/sum.rs") && message.contains("demo::sum(10)"), "{message}");
    assert!(!ws.path("tests/sum.rs").exists(), "nothing is created before it is applied");

    let actions = code_actions(&mut ws.client, &uri, 1, 0, json!([proposed[0]])).await;
    let applied = pick(&mut ws.client, find_action(&actions, "Claude: apply this change")).await;
    assert_eq!(applied, json!({"applied": true, "changes": 1}));
    let apply = ws.client.wait_for_server_request("workspace/applyEdit").await;
    let new_uri = ws.uri("tests/sum.rs");
    let changes = apply["edit"]["documentChanges"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{apply:#}");
    assert_eq!((&changes[0]["kind"], &changes[0]["uri"]), (&json!("create"), &json!(new_uri)));
    assert_eq!(changes[1]["edits"][0]["newText"], TESTS);
    proposed_changes(&ws.client, &uri, 0).await;
    ws.client.take_notifications("window/showMessage");
    ws.client.take_notifications("textDocument/publishDiagnostics");
    ws.client.take_notifications("claude/output");
    ws.client.finish().await;
}
