//! The `agents` and `systemPrompt` settings reach the real CLI: on its command line (read from
//! /proc) and, for the system prompt, in the request the fake API receives.

use serde_json::json;

use crate::support::cli::{live_processes, real_cli};
use crate::support::fake_api::{Script, Turn};
use crate::support::lsp_client::full_capabilities;
use crate::support::wait::eventually;
use crate::support::workspace::Workspace;

const LIB: &str = "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";
const SYSTEM_PROMPT: &str = "You are the project's terse Rust reviewer (marker 7f3a).";

#[tokio::test]
async fn agents_and_the_system_prompt_reach_the_cli() {
    let agents = json!({"tester": {
        "description": "Writes unit tests", "prompt": "Write focused unit tests.", "tools": ["Read"],
    }});
    let settings = json!({
        "systemPrompt": SYSTEM_PROMPT,
        // One good agent, one without a prompt: the bad one is dropped with a warning.
        "agents": {"tester": agents["tester"], "broken": {"description": "no prompt"}},
    });
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::text("It adds two numbers."),
        full_capabilities(),
        settings,
    )
    .await;
    let warning =
        ws.client.wait_for_notification("window/showMessage", |p| p["type"] == json!(2)).await;
    let text = warning["message"].as_str().unwrap();
    assert!(
        text.contains("claude.agents.broken") && text.contains("`prompt` is missing"),
        "{text}"
    );

    let uri = ws.uri("src/lib.rs");
    let analyzed = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": uri}}))
        .await
        .unwrap();
    assert_eq!(analyzed["text"], "It adds two numbers.");

    // The system prompt replaced the CLI's own (many kilobytes; only its one-line identity and
    // billing header stay); the action's instructions are appended to it.
    let system = ws.api.requests().pop().unwrap().system_text();
    assert!(system.contains(SYSTEM_PROMPT), "{system}");
    assert!(system.contains("You are running inside claude-lsp"), "{system}");
    assert!(system.len() < 2_000, "the CLI's own prompt is still there:\n{system}");

    // The argv of the CLI that ran (kept alive for the conversation's next turn, or the warm
    // pool's refill: both are spawned with the run's flags).
    let home = ws.home.path().to_string_lossy().into_owned();
    let cmdline = eventually("a CLI of this test is running", async || {
        live_processes()
            .into_iter()
            .find(|p| p.runs(&real_cli()) && p.env_var("HOME").as_deref() == Some(home.as_str()))
            .map(|p| p.cmdline)
    })
    .await;
    let value_of = |flag: &str| {
        let at = cmdline.iter().position(|arg| arg == flag);
        at.and_then(|at| cmdline.get(at + 1)).cloned()
    };
    assert_eq!(value_of("--system-prompt").as_deref(), Some(SYSTEM_PROMPT), "{cmdline:?}");
    let passed: serde_json::Value =
        serde_json::from_str(&value_of("--agents").expect("--agents on the command line")).unwrap();
    assert_eq!(passed, agents);
    // The agents are usable: the run's tools include the one that runs them.
    let tools = value_of("--tools").expect("--tools on the command line");
    assert!(tools.split(',').any(|tool| tool == "Task"), "{tools}");
    ws.drain().await;
    ws.client.finish().await;
}

const SUBAGENT_PROMPT: &str = "You write focused unit tests (marker 51c2).";

#[tokio::test]
async fn the_agent_hands_work_to_a_subagent_of_the_setting() {
    // The main agent calls the tool that runs subagents (`Task`, `Agent` in newer CLIs); the
    // subagent, recognized by its own system prompt, answers; then the main agent concludes.
    let script = Script::from_fn(|request| {
        let tools = request.tool_names();
        let delegate = ["Task", "Agent"].into_iter().find(|name| tools.iter().any(|t| t == name));
        if request.system_text().contains(SUBAGENT_PROMPT) {
            Turn::text("Subagent: two tests written.")
        } else if let Some(name) = delegate.filter(|name| request.has_tool_result_for(name)) {
            let results = request.tool_results_for(name).join("\n");
            Turn::text(format!("Delegated; the subagent said: {results}"))
        } else if let Some(name) = delegate {
            Turn::tool_use(
                name,
                json!({"description": "Write tests", "prompt": "Test add.", "subagent_type": "tester", "run_in_background": false}),
            )
        } else {
            Turn::text(format!("no tool to run subagents among {tools:?}"))
        }
    });
    let settings = json!({"agents": {"tester": {
        "description": "Writes unit tests", "prompt": SUBAGENT_PROMPT, "tools": ["Read"],
    }}});
    let mut ws =
        Workspace::start(&[("src/lib.rs", LIB)], script, full_capabilities(), settings).await;
    let uri = ws.uri("src/lib.rs");
    let analyzed = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": uri}}))
        .await
        .unwrap();
    let text = analyzed["text"].as_str().unwrap();
    assert!(text.contains("Subagent: two tests written."), "{text}");
    assert!(
        ws.api.requests().iter().any(|r| r.system_text().contains(SUBAGENT_PROMPT)),
        "the subagent never reached the API"
    );
    ws.drain().await;
    ws.client.finish().await;
}
