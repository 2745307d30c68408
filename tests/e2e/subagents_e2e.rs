//! Subagents are contained like the agent itself. The main agent hands a task to a custom
//! subagent of the `agents` setting through the CLI's subagent tool (`Task`, `Agent` in newer
//! CLIs); the subagent, recognized by its own system prompt, then tries to write outside the
//! workspace, to escape through Bash, and to change the user's files. Nothing lands outside, a
//! read-only run changes nothing, and an edit run's changes arrive only as its `WorkspaceEdit`.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::fake_api::{RecordedRequest, Script, Turn};
use crate::support::lsp_client::full_capabilities;
use crate::support::plan::bash;
use crate::support::workspace::{Workspace, cli_cwd, git};

const LIB: &str = "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";
const SUBAGENT_PROMPT: &str = "You are the project's helper subagent (marker 9d41).";
/// Begins the task the main agent gives the subagent, followed by `cwd=<dir>;`.
const TASK: &str = "SUBAGENT-TASK";
const SUBAGENT_DONE: &str = "subagent finished";

/// The settings: one subagent that may read, write, edit and run commands.
fn settings() -> Value {
    json!({
        "agents": {"helper": {
            "description": "Helps with the code", "prompt": SUBAGENT_PROMPT,
            "tools": ["Read", "Write", "Edit", "Bash"],
        }},
    })
}

fn is_subagent(request: &RecordedRequest) -> bool {
    request.system_text().contains(SUBAGENT_PROMPT)
}

/// The tool that runs subagents, among those the request offers.
fn subagent_tool(request: &RecordedRequest) -> Option<&'static str> {
    let tools = request.tool_names();
    ["Task", "Agent"].into_iter().find(|name| tools.iter().any(|t| t == name))
}

/// The main agent hands the subagent its working directory and ends with the subagent's report;
/// the subagent makes `calls`, one per turn (`{cwd}` and `{outside}` in strings replaced), then
/// answers.
fn script(outside: &Path, calls: Vec<(&'static str, Value)>) -> Script {
    let outside = outside.to_string_lossy().into_owned();
    Script::from_fn(move |request| {
        if is_subagent(request) {
            let conversation = Value::Array(request.messages().to_vec()).to_string();
            let Some(cwd) = conversation
                .split_once(&format!("{TASK} cwd="))
                .and_then(|(_, rest)| rest.split_once(';'))
                .map(|(cwd, _)| cwd.to_owned())
            else {
                return Turn::text("the subagent got no task");
            };
            let step = request.messages().iter().filter(|m| m["role"] == "assistant").count();
            return match calls.get(step) {
                Some((tool, input)) => {
                    let input =
                        input.to_string().replace("{cwd}", &cwd).replace("{outside}", &outside);
                    Turn::tool_use(*tool, serde_json::from_str(&input).unwrap())
                }
                None => Turn::text(SUBAGENT_DONE),
            };
        }
        let Some(tool) = subagent_tool(request) else {
            return Turn::text(format!(
                "no tool to run subagents among {:?}",
                request.tool_names()
            ));
        };
        if request.has_tool_result_for(tool) {
            let report = request.tool_results_for(tool).join("\n");
            return Turn::text(format!("main agent done; the subagent said: {report}"));
        }
        let task = format!("{TASK} cwd={};", cli_cwd(request));
        Turn::tool_use(
            tool,
            json!({"description": "Help", "prompt": task, "subagent_type": "helper", "run_in_background": false}),
        )
    })
}

/// The subagent's last request: the results of all its tool calls are in it.
fn last_subagent_request(ws: &Workspace) -> RecordedRequest {
    ws.api.requests().into_iter().rfind(is_subagent).expect("the subagent never reached the API")
}

/// Files in `dir`, by name.
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// What the subagent tries: a file outside the workspace, a shell command writing there, then
/// an edit of src/lib.rs (`a + b` becomes `sum`) and a new file src/new.rs.
fn calls(sum: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("Write", json!({"file_path": "{outside}/written-by-subagent.txt", "content": "escaped"})),
        ("Bash", bash("touch {outside}/touched-by-subagent.txt")),
        ("Read", json!({"file_path": "{cwd}/src/lib.rs"})),
        (
            "Edit",
            json!({"file_path": "{cwd}/src/lib.rs", "old_string": "a + b", "new_string": sum}),
        ),
        ("Write", json!({"file_path": "{cwd}/src/new.rs", "content": "// new\n"})),
    ]
}

/// Runs `method` on src/lib.rs, the subagent making `calls` and the user answering a permission
/// question with `answer`; the workspace, the result and the subagent's last request.
async fn run(
    method: &str,
    outside: &Path,
    calls: Vec<(&'static str, Value)>,
    answer: Option<&str>,
) -> (Workspace, Value, RecordedRequest) {
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        script(outside, calls),
        full_capabilities(),
        settings(),
    )
    .await;
    ws.client.set_behaviour(|b| b.message_action = answer.map(str::to_owned));
    let result = ws.act(method, "src/lib.rs", "Let the helper do it.").await.unwrap();
    let text = result["text"].as_str().unwrap();
    assert!(text.starts_with("main agent done") && text.contains(SUBAGENT_DONE), "{text}");
    let subagent = last_subagent_request(&ws);
    (ws, result, subagent)
}

/// The results of the subagent's calls to each tool, for a failure message.
fn tool_results(request: &RecordedRequest) -> String {
    ["Read", "Write", "Edit", "Bash"]
        .map(|tool| format!("{tool}: {:?}", request.tool_results_for(tool)))
        .join("\n")
}

#[tokio::test]
async fn a_subagent_in_a_read_only_run_writes_nothing_inside_or_outside_the_workspace() {
    let outside = tempfile::tempdir().unwrap();
    let mut tries = calls("a - b");
    tries.push(("Bash", bash("echo overwritten > src/lib.rs")));
    // The command is allowed when asked: then the OS sandbox is what keeps the workspace unchanged.
    let (ws, result, subagent) =
        run("claude/analyze", outside.path(), tries, Some("Allow once")).await;

    // A read-only run gives its subagents no tool that writes; claude-lsp denies the command
    // outside the workspace; the OS sandbox keeps the one it allowed from writing the workspace.
    let results = tool_results(&subagent);
    let writes = [subagent.tool_results_for("Write"), subagent.tool_results_for("Edit")].concat();
    assert_eq!(writes.len(), 3, "{results}");
    assert!(writes.iter().all(|text| text.contains("No such tool available")), "{results}");
    let commands = subagent.tool_results_for("Bash");
    assert!(commands[0].contains("outside the workspace"), "{results}");
    assert!(commands[1].contains("Read-only file system"), "{results}");
    assert_eq!(entries(outside.path()), Vec::<String>::new(), "nothing written outside");
    assert_eq!(ws.read("src/lib.rs"), LIB, "{results}");
    assert_eq!(git(ws.root(), &["status", "--porcelain"]).await, "", "the workspace is unchanged");
    assert!(result.get("edit").is_none_or(Value::is_null), "a read-only run has no edit: {result}");
    ws.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_subagents_edits_in_a_refactor_arrive_only_as_the_workspace_edit() {
    let outside = tempfile::tempdir().unwrap();
    let (ws, result, subagent) =
        run("claude/refactor", outside.path(), calls("a.wrapping_add(b)"), None).await;

    // claude-lsp decided the subagent's calls as the agent's: the escapes denied with the reason,
    // the edits inside the mirror allowed.
    let results = tool_results(&subagent);
    let writes = subagent.tool_results_for("Write");
    assert!(writes[0].contains("outside the workspace"), "{results}");
    assert!(subagent.tool_results_for("Bash")[0].contains("outside the workspace"), "{results}");
    assert!(!writes[1].contains("error"), "{results}");
    // The subagent worked in the staging mirror, not in the workspace.
    let mirror = cli_cwd(&ws.api.requests().into_iter().find(|r| !is_subagent(r)).unwrap());
    assert_ne!(Path::new(&mirror), ws.root());
    assert_eq!(entries(outside.path()), Vec::<String>::new(), "nothing written outside");

    // Its edits are the run's WorkspaceEdit, and the disk is untouched.
    let (lib, new) = (ws.uri("src/lib.rs"), ws.uri("src/new.rs"));
    assert_eq!(
        result["files"],
        json!([{"uri": lib, "action": "modified"}, {"uri": new, "action": "created"}]),
        "{result}"
    );
    let edit = result["edit"].to_string();
    assert!(edit.contains("wrapping_add") && edit.contains("// new"), "{edit}");
    assert_eq!(ws.read("src/lib.rs"), LIB);
    assert!(!ws.path("src/new.rs").exists());
    assert_eq!(git(ws.root(), &["status", "--porcelain"]).await, "", "the workspace is unchanged");
    ws.drain().await;
    ws.client.finish().await;
}
