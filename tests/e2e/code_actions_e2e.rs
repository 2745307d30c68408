//! Code actions end to end (issue 3, item 8): listed cheaply — no CLI, no model — with titles
//! starting `Claude: `, each carrying a `claude.*` command whose arguments, executed through
//! `workspace/executeCommand`, run the right action. The in-process server runs the real CLI
//! against the fake API.
//!
//! tests/helix_client.rs already runs the `claude:` instruction comment, `add tests`, `review
//! file` and `analyze file` from Helix's menu; this file covers the rest of the list and runs
//! `fix diagnostics` and the `simplify` preset.

use serde_json::{Value, json};

use crate::support::cli::cli_sessions;
use crate::support::fake_api::{RecordedRequest, Script, Turn};
use crate::support::lsp_client::{TestClient, apply_edits, full_capabilities};
use crate::support::workspace::{Workspace, cli_cwd};

const SOURCE: &str = "\
// claude: extract the magic number into a constant
fn area(r: f64) -> f64 {
    3.14159 * r * r
}

fn parse(s: &str) -> i32 {
    // TODO: handle overflow
    let unused = 1;
    s.parse().unwrap() // FIXME: panics on bad input
}
";

const UNUSED: &str = "unused variable: `unused`";

fn range(sl: u32, sc: u32, el: u32, ec: u32) -> Value {
    json!({"start": {"line": sl, "character": sc}, "end": {"line": el, "character": ec}})
}

/// The diagnostic rust-analyzer would show on line 8.
fn unused_variable() -> Value {
    json!({
        "range": range(7, 8, 7, 14), "severity": 2, "source": "rustc",
        "code": "unused_variables", "message": UNUSED,
    })
}

/// A workspace holding `src/lib.rs` = SOURCE, open at version 1.
async fn workspace(script: impl Into<Script>, warm_pool: u32) -> (Workspace, String) {
    let ws = Workspace::start(
        &[("src/lib.rs", SOURCE)],
        script,
        full_capabilities(),
        json!({"warmPool": warm_pool}),
    )
    .await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, SOURCE).await;
    (ws, uri)
}

async fn code_actions(
    client: &mut TestClient,
    uri: &str,
    range: Value,
    diagnostics: Value,
    only: Option<Value>,
) -> Vec<Value> {
    let mut context = json!({"diagnostics": diagnostics, "triggerKind": 1});
    if let Some(only) = only {
        context["only"] = only;
    }
    let result = client
        .request_json(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri}, "range": range, "context": context}),
        )
        .await
        .unwrap();
    result.as_array().cloned().unwrap_or_else(|| panic!("no code actions: {result}"))
}

fn titles(actions: &[Value]) -> Vec<&str> {
    actions.iter().filter_map(|action| action["title"].as_str()).collect()
}

fn find<'a>(actions: &'a [Value], title: &str) -> &'a Value {
    actions
        .iter()
        .find(|action| action["title"] == title)
        .unwrap_or_else(|| panic!("no code action {title:?} in {:#?}", titles(actions)))
}

/// The action's command name and its one argument (the action params).
fn command(action: &Value) -> (&str, &Value) {
    let command = &action["command"];
    let arguments = command["arguments"].as_array().expect("the command has no arguments");
    assert_eq!(arguments.len(), 1, "{action:#}");
    assert_eq!(command["title"], action["title"], "{action:#}");
    (command["command"].as_str().expect("no command name"), &arguments[0])
}

#[tokio::test]
async fn code_actions_are_listed_without_the_cli_and_carry_the_right_commands() {
    // No warm pool: any CLI process or API request would be the code actions' doing.
    let (mut ws, uri) = workspace(Turn::text("unused"), 0).await;
    let selection = range(0, 0, 9, 1);
    let actions =
        code_actions(&mut ws.client, &uri, selection.clone(), json!([unused_variable()]), None)
            .await;
    let listed = titles(&actions);
    assert!(listed.iter().all(|title| title.starts_with("Claude: ")), "{listed:#?}");
    for action in &actions {
        assert!(action.get("edit").is_none(), "no action may carry a precomputed edit: {action}");
        assert_eq!(
            action["command"]["command"].as_str().map(|c| c.starts_with("claude.")),
            Some(true)
        );
    }
    let document = json!({"uri": uri});

    // Instruction comments in the range, in the selection's range.
    let (name, args) = command(find(&actions, "Claude: extract the magic number into a constant"));
    assert_eq!(name, "claude.refactor");
    assert_eq!((&args["textDocument"], &args["range"]), (&document, &selection));
    let instruction = args["instruction"].as_str().unwrap();
    assert!(instruction.starts_with("extract the magic number into a constant"), "{instruction}");
    assert!(instruction.contains("line 1"), "{instruction}");
    let (name, args) = command(find(&actions, "Claude: handle overflow"));
    assert_eq!(name, "claude.refactor");
    let instruction = args["instruction"].as_str().unwrap();
    assert!(instruction.starts_with("Do this TODO: handle overflow"), "{instruction}");
    assert!(instruction.contains("line 7"), "{instruction}");
    let (name, args) = command(find(&actions, "Claude: panics on bad input"));
    assert_eq!(name, "claude.refactor");
    let instruction = args["instruction"].as_str().unwrap();
    assert!(instruction.starts_with("Fix this FIXME: panics on bad input"), "{instruction}");

    // The presets, on the selection.
    for (title, expected_command, expected_words) in [
        ("Claude: simplify", "claude.refactor", "Simplify the selected code"),
        ("Claude: add documentation", "claude.refactor", "Add documentation comments"),
        ("Claude: add tests", "claude.generate", "Write tests for the selected code"),
    ] {
        let action = find(&actions, title);
        assert_eq!(action["kind"], "refactor.rewrite", "{action:#}");
        let (name, args) = command(action);
        assert_eq!(name, expected_command, "{title}");
        assert_eq!(args["range"], selection, "{title}");
        assert!(args["instruction"].as_str().unwrap().contains(expected_words), "{title}: {args}");
    }

    // Fix diagnostics: a quick fix carrying the diagnostics for the prompt.
    let fix = find(&actions, "Claude: fix diagnostics");
    assert_eq!(fix["kind"], "quickfix");
    let (name, args) = command(fix);
    assert_eq!(name, "claude.refactor");
    assert_eq!(args["diagnostics"], json!([unused_variable()]));
    assert!(args["instruction"].as_str().unwrap().contains("Fix the diagnostics"), "{args}");

    // Review and explain the selection; review and analyze the file.
    let (name, args) = command(find(&actions, "Claude: review selection"));
    assert_eq!(
        (name, &args["range"], &args["scope"]),
        ("claude.review", &selection, &json!("selection"))
    );
    let (name, args) = command(find(&actions, "Claude: explain selection"));
    assert_eq!((name, &args["range"]), ("claude.analyze", &selection));
    assert!(args.get("instruction").is_none(), "{args}");
    let (name, args) = command(find(&actions, "Claude: review file"));
    assert_eq!((name, &args["scope"]), ("claude.review", &json!("file")));
    assert!(args.get("range").is_none(), "{args}");
    let (name, args) = command(find(&actions, "Claude: review my changes"));
    assert_eq!((name, &args["scope"]), ("claude.review", &json!("changes")));
    let (name, args) = command(find(&actions, "Claude: analyze file"));
    assert_eq!(name, "claude.analyze");
    assert_eq!(args["textDocument"], document);
    assert!(args.get("range").is_none() && args.get("instruction").is_none(), "{args}");

    // A cursor (empty range) on line 3, no diagnostics: nothing about a selection, no fix, no
    // instruction comment (none on that line).
    let at_cursor = code_actions(&mut ws.client, &uri, range(2, 4, 2, 4), json!([]), None).await;
    let listed = titles(&at_cursor);
    assert_eq!(
        listed,
        [
            "Claude: review file",
            "Claude: review my changes",
            "Claude: analyze file",
            "Claude: review file (warnings and up)",
            "Claude: review file with fixes",
            "Claude: review folder",
            "Claude: review workspace",
            "Claude: analyze file deeply, with its tests",
            "Claude: analyze folder",
        ],
        "{at_cursor:#?}"
    );
    // The variants carry their options as ActionParams fields.
    let option = |title: &str, field: &str| command(find(&at_cursor, title)).1[field].clone();
    assert_eq!(option("Claude: review file (warnings and up)", "minSeverity"), "warning");
    assert_eq!(option("Claude: review file with fixes", "fix"), true);
    assert_eq!(option("Claude: review folder", "scope"), "folder");
    assert_eq!(option("Claude: review workspace", "scope"), "workspace");
    assert_eq!(option("Claude: analyze file deeply, with its tests", "depth"), "deep");
    assert_eq!(option("Claude: analyze file deeply, with its tests", "includeTests"), true);
    assert_eq!(command(find(&at_cursor, "Claude: analyze folder")).0, "claude.analyze");
    // A cursor on the comment's line: the instruction targets that line.
    let on_comment = code_actions(&mut ws.client, &uri, range(6, 7, 6, 7), json!([]), None).await;
    let (_, args) = command(find(&on_comment, "Claude: handle overflow"));
    assert_eq!(args["range"], range(6, 0, 7, 0));
    // Whole lines selected end at character 0 of the next line, which is not selected: its
    // comment is not offered.
    let whole_line = code_actions(&mut ws.client, &uri, range(5, 0, 6, 0), json!([]), None).await;
    let listed = titles(&whole_line);
    assert!(!listed.contains(&"Claude: handle overflow"), "{listed:#?}");
    assert!(listed.contains(&"Claude: simplify"), "{listed:#?}");
    // Claude's own findings are fixed by their own actions, not by "fix diagnostics".
    let ours =
        json!([{"range": range(7, 8, 7, 14), "severity": 2, "source": "claude", "message": "x"}]);
    let with_ours = code_actions(&mut ws.client, &uri, range(7, 8, 7, 14), ours, None).await;
    assert!(!titles(&with_ours).contains(&"Claude: fix diagnostics"), "{with_ours:#?}");
    // `only` filters by kind.
    let quickfixes = code_actions(
        &mut ws.client,
        &uri,
        selection.clone(),
        json!([unused_variable()]),
        Some(json!(["quickfix"])),
    )
    .await;
    assert_eq!(titles(&quickfixes), ["Claude: fix diagnostics"]);
    // Each action is complete as listed: resolving is not offered, and asking runs nothing.
    let resolved = ws
        .client
        .request_json("codeAction/resolve", find(&actions, "Claude: simplify").clone())
        .await;
    assert_eq!(resolved.unwrap_err()["code"], -32601);

    let ours = cli_sessions(ws.home.path()).len();
    assert_eq!(ours, 0, "listing code actions started a CLI");
    assert!(ws.api.all_requests().is_empty(), "listing code actions reached the API");
    ws.client.finish().await;
}

const FIXED: &str = "\
// claude: extract the magic number into a constant
fn area(r: f64) -> f64 {
    3.14159 * r * r
}

fn parse(s: &str) -> i32 {
    // TODO: handle overflow
    s.parse().unwrap() // FIXME: panics on bad input
}
";

const SIMPLIFIED: &str = "\
// claude: extract the magic number into a constant
fn area(r: f64) -> f64 {
    std::f64::consts::PI * r * r
}

fn parse(s: &str) -> i32 {
    // TODO: handle overflow
    let unused = 1;
    s.parse().unwrap() // FIXME: panics on bad input
}
";

/// The fake model: reads the file, then makes the edit its task asks for.
fn model(request: &RecordedRequest) -> Turn {
    let conversation = request.all_text();
    let path = format!("{}/src/lib.rs", cli_cwd(request));
    let (old, new, done) = if conversation.contains("Fix the diagnostics") {
        ("    let unused = 1;\n", "", "Removed the unused variable.")
    } else {
        ("3.14159", "std::f64::consts::PI", "Used the PI constant.")
    };
    match request.turn_index() {
        0 => Turn::tool_use("Read", json!({"file_path": path})),
        1 => {
            Turn::tool_use("Edit", json!({"file_path": path, "old_string": old, "new_string": new}))
        }
        _ => Turn::text(done),
    }
}

/// Run the code action titled `title` the way an editor does (executeCommand with its command),
/// and return the edit that arrives by applyEdit, applied to SOURCE, and the model's first
/// request.
async fn run_action(
    ws: &mut Workspace,
    uri: &str,
    actions: &[Value],
    title: &str,
) -> (String, RecordedRequest) {
    let action = find(actions, title);
    let started = ws
        .client
        .request_json("workspace/executeCommand", action["command"].clone())
        .await
        .unwrap();
    assert!(started["runId"].as_str().is_some_and(|id| !id.is_empty()), "{started}");
    let apply = ws.client.wait_for_server_request("workspace/applyEdit").await;
    assert_eq!(apply["label"], "Claude: refactor");
    let changes = apply["edit"]["documentChanges"].as_array().expect("documentChanges");
    assert_eq!(changes.len(), 1, "{apply:#}");
    assert_eq!(changes[0]["textDocument"], json!({"uri": uri, "version": 1}));
    let edited = apply_edits(SOURCE, changes[0]["edits"].as_array().unwrap());
    assert_eq!(
        ws.read("src/lib.rs"),
        SOURCE,
        "the user's file changes only when the editor applies"
    );
    let create = ws.client.server_requests("window/workDoneProgress/create");
    assert_eq!(create.len(), 1);
    let progress = ws.client.progress_until_end(&create[0]["token"]).await;
    assert_eq!(progress.first().unwrap()["title"], "Claude: refactor");
    assert_eq!(progress.last().unwrap()["kind"], "end");
    ws.client.take_notifications("claude/output");
    let first = ws.api.requests().into_iter().next().expect("the action reached the model");
    (edited, first)
}

#[tokio::test]
async fn fix_diagnostics_runs_a_refactor_whose_prompt_holds_the_diagnostic() {
    let (mut ws, uri) = workspace(Script::from_fn(model), 1).await;
    // A cursor on the diagnostic, as editors ask.
    let actions =
        code_actions(&mut ws.client, &uri, range(7, 10, 7, 10), json!([unused_variable()]), None)
            .await;
    assert!(ws.api.requests().is_empty(), "listing code actions must not call the model");
    let (edited, prompt) = run_action(&mut ws, &uri, &actions, "Claude: fix diagnostics").await;
    assert_eq!(edited, FIXED);
    let text = prompt.all_text();
    assert!(text.contains(UNUSED), "the diagnostic is not in the prompt: {text}");
    assert!(text.contains("line 8, warning"), "the diagnostic's line is not in the prompt: {text}");
    assert!(text.contains("Fix the diagnostics listed above"), "{text}");
    let message = ws.client.next_notification("window/showMessage").await;
    assert_eq!(message["message"], "Claude: Removed the unused variable.");
    ws.client.finish().await;
}

#[tokio::test]
async fn the_simplify_preset_runs_a_refactor_of_the_selection() {
    let (mut ws, uri) = workspace(Script::from_fn(model), 1).await;
    let selection = range(1, 0, 3, 1);
    let actions = code_actions(&mut ws.client, &uri, selection, json!([]), None).await;
    assert!(ws.api.requests().is_empty(), "listing code actions must not call the model");
    let (edited, prompt) = run_action(&mut ws, &uri, &actions, "Claude: simplify").await;
    assert_eq!(edited, SIMPLIFIED);
    let text = prompt.all_text();
    assert!(
        text.contains("Simplify the selected code without changing its behaviour."),
        "the preset's instruction is not in the prompt: {text}"
    );
    assert!(text.contains("3.14159 * r * r"), "the selection is not in the prompt: {text}");
    let message = ws.client.next_notification("window/showMessage").await;
    assert_eq!(message["message"], "Claude: Used the PI constant.");
    ws.client.finish().await;
}
