//! The CLI driver against the real pinned `claude` CLI (`CLAUDE_LSP_TEST_CLI_VERSION=newest|oldest`)
//! talking to the fake Anthropic API. These fail, never skip, when the CLI is missing.
// Helpers outside #[test] fns unwrap too: a failed setup step is a failed test.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::cli::{
    ProcInfo, TestHome, expected_cli_version, leftover_processes, live_processes, real_cli,
};
use crate::support::fake_api::{CLI_ENV_TO_REMOVE, FakeApi, Script, Turn};
use crate::support::wait::eventually;
use claude_lsp::base::process::ProcessSpec;
use claude_lsp::claude::args::{CliOptions, Effort, PermissionMode};
use claude_lsp::claude::control::{
    ControlHandler, InitializeRequest, PermissionDecision, mcp_method_not_found,
};
use claude_lsp::claude::errors::ClaudeError;
use claude_lsp::claude::protocol::CanUseToolRequest;
use claude_lsp::claude::session::{
    ClaudeSession, RunEvent, RunLimits, RunResult, SessionConfig, run_once,
};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Each real CLI needs ~300 MB and most of a core to start: run a few at a time, so the
/// "within a few seconds" checks measure the driver, not the queue for the CPU.
static CLI_SLOTS: Semaphore = Semaphore::const_new(3);

const LIMITS: RunLimits = RunLimits { timeout: Duration::from_secs(90), idle_timeout: None };

/// A temporary project, a home for the CLI's state, and the fake API.
struct Bench {
    fake: FakeApi,
    home: TestHome,
    project: tempfile::TempDir,
}

impl Bench {
    async fn start(script: impl Into<Script>) -> Self {
        let project = tempfile::Builder::new().prefix("claude-lsp-project-").tempdir().unwrap();
        Self { fake: FakeApi::start(script).await, home: TestHome::new(), project }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.project.path().join(name)
    }

    fn config(&self, handler: Arc<dyn ControlHandler>) -> SessionConfig {
        let mut env = self.fake.cli_env(self.home.path());
        // A developer's own credentials and model overrides must not reach the CLI under test.
        for key in CLI_ENV_TO_REMOVE {
            if !matches!(*key, "CLAUDECODE" | "CLAUDE_CODE_ENTRYPOINT") {
                env.push(((*key).to_owned(), String::new()));
            }
        }
        SessionConfig {
            binary: real_cli(),
            options: CliOptions { include_partial_messages: true, ..CliOptions::default() },
            cwd: self.project.path().to_owned(),
            env,
            handler,
        }
    }

    /// No CLI process of this bench (found by its HOME) is left, within a few seconds.
    async fn assert_no_cli_left(&self) {
        let home = self.home.path().display().to_string();
        let cli = real_cli();
        let survivors = leftover_processes(
            |p| p.runs(&cli) && p.env_var("HOME").as_deref() == Some(home.as_str()),
            Duration::from_secs(5),
        )
        .await;
        assert!(survivors.is_empty(), "CLI processes left behind: {survivors:#?}");
    }
}

/// Answers permissions with `decide`, records every request, and serves the SDK MCP server
/// `lsp` with one tool, `echo`.
struct TestHandler {
    decide: Box<dyn Fn(&CanUseToolRequest) -> PermissionDecision + Send + Sync>,
    asked: Mutex<Vec<CanUseToolRequest>>,
    mcp_methods: Mutex<Vec<String>>,
}

impl TestHandler {
    fn new(
        decide: impl Fn(&CanUseToolRequest) -> PermissionDecision + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            decide: Box::new(decide),
            asked: Mutex::new(Vec::new()),
            mcp_methods: Mutex::new(Vec::new()),
        })
    }

    fn allow_all() -> Arc<Self> {
        Self::new(|_| PermissionDecision::allow())
    }

    fn asked_tools(&self) -> Vec<String> {
        self.asked.lock().unwrap().iter().map(|r| r.tool_name.clone()).collect()
    }
}

impl ControlHandler for TestHandler {
    fn can_use_tool(&self, request: CanUseToolRequest) -> BoxFuture<'static, PermissionDecision> {
        let decision = (self.decide)(&request);
        self.asked.lock().unwrap().push(request);
        Box::pin(async move { decision })
    }

    fn mcp_message(
        &self,
        server_name: String,
        message: Value,
    ) -> BoxFuture<'static, Option<Value>> {
        let method = message["method"].as_str().unwrap_or_default().to_owned();
        self.mcp_methods.lock().unwrap().push(format!("{server_name}:{method}"));
        let result = match method.as_str() {
            "initialize" => Some(json!({
                "protocolVersion": "2024-11-05",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "lsp", "version": "0.1"},
            })),
            "tools/list" => Some(json!({"tools": [{
                "name": "echo",
                "description": "echo text",
                "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
            }]})),
            "tools/call" => {
                let text = message["params"]["arguments"]["text"].as_str().unwrap_or_default();
                Some(json!({"content": [{"type": "text", "text": format!("echo: {text}")}]}))
            }
            _ => None,
        };
        let reply = match (result, message.get("id")) {
            (Some(result), Some(id)) => Some(json!({"jsonrpc": "2.0", "id": id, "result": result})),
            _ => mcp_method_not_found(&message),
        };
        Box::pin(async move { reply })
    }
}

/// Run one turn through `run_once`, collecting events.
async fn run(
    config: SessionConfig,
    prompt: &str,
    limits: RunLimits,
    cancel: CancellationToken,
) -> (Result<RunResult, ClaudeError>, Vec<RunEvent>, Duration) {
    let _slot = CLI_SLOTS.acquire().await.unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let started = Instant::now();
    let result = run_once(config, prompt, limits, cancel, move |event| {
        sink.lock().unwrap().push(event.clone());
    })
    .await;
    let elapsed = started.elapsed();
    let events = events.lock().unwrap().clone();
    (result, events, elapsed)
}

fn tool_results(events: &[RunEvent]) -> Vec<(String, bool, Option<Value>)> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::ToolResult { content, is_error, structured, .. } => {
                Some((content.clone(), *is_error, structured.clone()))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn help_lists_every_flag_we_emit() {
    let everything = CliOptions {
        model: Some("m".into()),
        fallback_model: Some("f".into()),
        max_turns: Some(1),
        max_budget_usd: Some(1.0),
        permission_mode: Some(PermissionMode::Plan),
        allowed_tools: vec!["Read".into()],
        disallowed_tools: vec!["Bash".into()],
        tools: Some(vec!["Read".into()]),
        system_prompt: Some("s".into()),
        append_system_prompt: Some("a".into()),
        agents: Some(json!({"t": {"description": "d", "prompt": "p"}})),
        json_schema: Some(json!({"type": "object"})),
        mcp_config: Some(json!({"mcpServers": {}})),
        strict_mcp_config: true,
        add_dirs: vec!["/tmp".into()],
        resume: Some("r".into()),
        continue_session: true,
        fork_session: true,
        session_id: Some("8a4a1c1e-1111-4222-8333-944455556666".into()),
        include_partial_messages: true,
        setting_sources: Some(vec!["user".into()]),
        no_session_persistence: true,
        effort: Some(Effort::High),
        permission_prompt_tool_stdio: true,
        settings: Some(json!({"sandbox": {"enabled": true}})),
    };
    let output = ProcessSpec::new(real_cli(), std::env::temp_dir())
        .arg("--help")
        .output(Duration::from_secs(30))
        .await
        .unwrap();
    assert!(output.status.success(), "{}", output.stderr);
    let help = String::from_utf8(output.stdout).unwrap();
    // Hidden flags the official SDKs pass; they are exercised by the other tests here.
    let hidden = ["--max-turns", "--permission-prompt-tool"];
    let flags: Vec<String> = everything
        .to_args()
        .into_iter()
        .map(|arg| arg.to_string_lossy().into_owned())
        .filter(|arg| arg.starts_with('-') && !hidden.contains(&arg.as_str()))
        .collect();
    assert_eq!(flags.len(), 27, "{flags:?}");
    for flag in flags {
        let listed = [" ", ",", "\n"].iter().any(|end| help.contains(&format!("  {flag}{end}")))
            || help.contains(&format!(", {flag} "));
        assert!(listed, "{flag} is not in `claude --help` of {}", expected_cli_version());
    }
    for mode in [
        PermissionMode::AcceptEdits,
        PermissionMode::Plan,
        PermissionMode::BypassPermissions,
        PermissionMode::DontAsk,
    ] {
        assert!(
            help.contains(&format!("\"{}\"", mode.as_str())),
            "{mode:?} is not a listed choice"
        );
    }
    for effort in [Effort::Low, Effort::Medium, Effort::High, Effort::XHigh, Effort::Max] {
        assert!(help.contains(effort.as_str()), "{effort:?} is not a listed effort level");
    }
}

#[tokio::test]
async fn a_plain_answer_streams_and_a_warm_process_answers_fast() {
    let bench = Bench::start(Turn::text("Hello from the fake API.")).await;
    let _slot = CLI_SLOTS.acquire().await.unwrap();
    let spawned = Instant::now();
    let session = ClaudeSession::spawn(bench.config(TestHandler::allow_all())).await.unwrap();
    let mut turn = session.send("hi").await.unwrap();
    let mut events = Vec::new();
    let mut init_after = None;
    while let Some(event) = turn.next().await {
        if matches!(event, RunEvent::Init { .. }) {
            init_after = Some(spawned.elapsed());
        }
        events.push(event);
    }
    let cold_result_after = spawned.elapsed();
    let Some(RunEvent::Finished(Ok(result))) = events.last() else { panic!("{events:#?}") };
    assert_eq!(result.text, "Hello from the fake API.");
    assert_eq!(result.num_turns, 1);
    assert_eq!(result.usage.output_tokens, 5);
    let RunEvent::Init { session_id, cli_version, .. } = &events[0] else { panic!("{events:#?}") };
    assert_eq!(cli_version.as_deref(), Some(expected_cli_version()));
    assert_eq!(&result.session_id, session_id);
    let deltas: String = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::TextDelta(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, "Hello from the fake API.");
    assert!(events.contains(&RunEvent::Text("Hello from the fake API.".into())));
    assert_eq!(bench.fake.requests().len(), 1);
    assert_eq!(session.cli_version().as_deref(), Some(expected_cli_version()));

    let mut warm = Vec::new();
    for _ in 0..5 {
        let sent = Instant::now();
        session.send("again").await.unwrap().finish().await.unwrap();
        warm.push(sent.elapsed());
    }
    warm.sort();
    eprintln!(
        "CLI {}: spawn→init {:?}, spawn→first result {cold_result_after:?}, warm send→result median {:?} (min {:?}, max {:?})",
        expected_cli_version(),
        init_after.unwrap(),
        warm[warm.len() / 2],
        warm[0],
        warm[warm.len() - 1],
    );
    assert!(warm[warm.len() / 2] < Duration::from_secs(2), "warm turns are slow: {warm:?}");
    let pid = session.pid();
    session.shutdown().await;
    assert!(live_processes().iter().all(|p| p.pid != pid), "the CLI outlived shutdown");
}

#[tokio::test]
async fn read_then_edit_changes_the_file_and_reports_the_patch() {
    let project = tempfile::Builder::new().prefix("claude-lsp-project-").tempdir().unwrap();
    let file = project.path().join("main.rs");
    std::fs::write(&file, "fn main() {\n    println!(\"hello\");\n}\n").unwrap();
    let path = file.display().to_string();
    let bench = Bench {
        fake: FakeApi::start(vec![
            Turn::tool_use("Read", json!({"file_path": path})),
            Turn::tool_use(
                "Edit",
                json!({"file_path": path, "old_string": "hello", "new_string": "hi"}),
            ),
            Turn::text("Done editing."),
        ])
        .await,
        home: TestHome::new(),
        project,
    };
    let handler = TestHandler::allow_all();
    let (result, events, _) =
        run(bench.config(handler.clone()), "edit it", LIMITS, CancellationToken::new()).await;
    assert_eq!(result.unwrap().text, "Done editing.");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "fn main() {\n    println!(\"hi\");\n}\n");
    let tools: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::ToolUse { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(tools, ["Read", "Edit"]);
    let results = tool_results(&events);
    assert_eq!(results.len(), 2, "{results:#?}");
    assert!(results[0].0.contains("hello"), "{results:#?}");
    let patch = results[1].2.as_ref().expect("the Edit result carries its structured patch");
    assert_eq!(patch["newString"], "hi");
    assert!(patch["structuredPatch"].as_array().is_some_and(|hunks| !hunks.is_empty()), "{patch}");
    // Read needs no permission; the edit asked.
    assert_eq!(handler.asked_tools(), ["Edit"]);
}

/// A Bash call the model makes, with `decide` answering its permission request.
async fn bash_permission_run(
    file_name: &str,
    decide: impl Fn(&CanUseToolRequest) -> PermissionDecision + Send + Sync + 'static,
) -> (Bench, Arc<TestHandler>, Result<RunResult, ClaudeError>) {
    let project = tempfile::Builder::new().prefix("claude-lsp-project-").tempdir().unwrap();
    let target = project.path().join(file_name);
    let command = format!("touch {}", target.display());
    let bench = Bench {
        fake: FakeApi::start(vec![
            Turn::tool_use("Bash", json!({"command": command, "description": "create a file"})),
            Turn::text("Finished."),
        ])
        .await,
        home: TestHome::new(),
        project,
    };
    let handler = TestHandler::new(decide);
    let (result, _, _) =
        run(bench.config(handler.clone()), "make a file", LIMITS, CancellationToken::new()).await;
    (bench, handler, result)
}

#[tokio::test]
async fn can_use_tool_allow_runs_the_tool() {
    let (bench, handler, result) =
        bash_permission_run("allowed.txt", |_| PermissionDecision::allow()).await;
    assert_eq!(result.unwrap().text, "Finished.");
    assert!(bench.path("allowed.txt").exists());
    let asked = handler.asked.lock().unwrap();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].tool_name, "Bash");
    assert!(asked[0].input["command"].as_str().unwrap().starts_with("touch "));
    assert!(asked[0].tool_use_id.is_some());
}

#[tokio::test]
async fn can_use_tool_deny_keeps_the_tool_from_running() {
    let (bench, _, result) =
        bash_permission_run("denied.txt", |_| PermissionDecision::deny("denied by test")).await;
    let result = result.unwrap();
    assert!(!bench.path("denied.txt").exists());
    assert_eq!(result.permission_denials.len(), 1, "{:?}", result.permission_denials);
    assert_eq!(result.permission_denials[0]["tool_name"], "Bash");
    let last = bench.fake.requests().pop().unwrap();
    assert!(
        last.tool_results_for("Bash").iter().any(|r| r.contains("denied by test")),
        "{:?}",
        last.tool_results_for("Bash")
    );
}

#[tokio::test]
async fn can_use_tool_allow_with_updated_input_runs_the_rewritten_call() {
    let (bench, _, result) = bash_permission_run("rewritten.txt", |_| PermissionDecision::Allow {
        updated_input: Some(json!({"command": "echo rewritten-by-host", "description": "echo"})),
        updated_permissions: None,
    })
    .await;
    assert_eq!(result.unwrap().text, "Finished.");
    assert!(!bench.path("rewritten.txt").exists(), "the original touch ran");
    let last = bench.fake.requests().pop().unwrap();
    assert!(
        last.tool_results_for("Bash").iter().any(|r| r.contains("rewritten-by-host")),
        "{:?}",
        last.tool_results_for("Bash")
    );
}

#[tokio::test]
async fn a_panicking_handler_still_answers_and_the_turn_goes_on() {
    // The "handler bug" panic message in the test output is expected: the driver catches it.
    let (bench, _, result) = bash_permission_run("panicked.txt", |_| panic!("handler bug")).await;
    assert_eq!(result.unwrap().text, "Finished.");
    assert!(!bench.path("panicked.txt").exists());
    let last = bench.fake.requests().pop().unwrap();
    let answers = last.tool_results_for("Bash");
    assert!(answers.iter().any(|r| r.contains("the host failed to answer")), "{answers:?}");
}

#[tokio::test]
async fn interrupt_mid_stream_cancels_and_the_same_process_answers_next() {
    let bench = Bench::start(Script::from_fn(|request| {
        if request.last_user_text().contains("second") {
            Turn::text("Second answer.")
        } else {
            Turn::slow_text((0..40).map(|i| format!("chunk{i} ")), Duration::from_millis(150))
        }
    }))
    .await;
    let _slot = CLI_SLOTS.acquire().await.unwrap();
    let session = ClaudeSession::spawn(bench.config(TestHandler::allow_all())).await.unwrap();
    let mut turn = session.send("first, slowly").await.unwrap();
    loop {
        match turn.next().await {
            Some(RunEvent::TextDelta(_)) => break,
            Some(RunEvent::Finished(result)) => panic!("finished before streaming: {result:?}"),
            Some(_) => {}
            None => panic!("no events"),
        }
    }
    let interrupted = Instant::now();
    session.interrupt().await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), turn.finish()).await.unwrap();
    assert_eq!(outcome, Err(ClaudeError::Cancelled));
    assert!(
        interrupted.elapsed() < Duration::from_secs(3),
        "interrupt took {:?}",
        interrupted.elapsed()
    );
    assert!(!session.is_busy());

    let pid = session.pid();
    let second = session.send("second question").await.unwrap().finish().await.unwrap();
    assert_eq!(second.text, "Second answer.");
    assert_eq!(session.pid(), pid);
    assert!(session.is_alive());
    session.shutdown().await;
}

#[tokio::test]
async fn cancel_during_a_long_bash_call_leaves_no_process_behind() {
    // 2.1.330 refuses a command that starts with a long `sleep`; after an echo it runs.
    let bench = Bench::start(vec![
        Turn::tool_use(
            "Bash",
            json!({"command": "echo waiting && sleep 30", "description": "wait"}),
        ),
        Turn::text("Slept."),
    ])
    .await;
    let cancel = CancellationToken::new();
    let config = bench.config(TestHandler::allow_all());
    let mut run_task = tokio::spawn(run(config, "wait", LIMITS, cancel.clone()));
    // Find the CLI and the `sleep 30` it started, remember them, then cancel.
    let home = bench.home.path().display().to_string();
    let cli_binary = real_cli();
    let (cli, sleep) = eventually("the CLI runs `sleep 30`", async || {
        if run_task.is_finished() {
            panic!("the run ended before `sleep 30` started: {:?}", (&mut run_task).await);
        }
        let processes = live_processes();
        let clis: Vec<u32> = processes
            .iter()
            .filter(|p| p.runs(&cli_binary) && p.env_var("HOME").as_deref() == Some(home.as_str()))
            .map(|p| p.pid)
            .collect();
        let sleep = processes.iter().find(|p| {
            p.cmdline.iter().map(String::as_str).eq(["sleep", "30"])
                && descends_from(p.pid, &clis, &processes)
        });
        Some((*clis.first()?, sleep?.pid))
    })
    .await;
    let cancelled = Instant::now();
    cancel.cancel();
    let (result, _, _) = run_task.await.unwrap();
    assert_eq!(result, Err(ClaudeError::Cancelled));
    assert!(cancelled.elapsed() < Duration::from_secs(10), "cancel took {:?}", cancelled.elapsed());
    let survivors =
        leftover_processes(|p| p.pid == cli || p.pid == sleep, Duration::from_secs(5)).await;
    assert!(survivors.is_empty(), "left behind: {survivors:#?}");
}

/// True if an ancestor of `pid` is one of `ancestors`.
fn descends_from(pid: u32, ancestors: &[u32], processes: &[ProcInfo]) -> bool {
    let mut current = pid;
    for _ in 0..64 {
        let Some(process) = processes.iter().find(|p| p.pid == current) else { return false };
        if ancestors.contains(&process.ppid) {
            return true;
        }
        current = process.ppid;
    }
    false
}

#[tokio::test]
async fn the_run_timeout_stops_a_run_the_api_never_answers() {
    let bench = Bench::start(Turn::Hang).await;
    let limits = RunLimits { timeout: Duration::from_secs(3), idle_timeout: None };
    let (result, _, elapsed) =
        run(bench.config(TestHandler::allow_all()), "hi", limits, CancellationToken::new()).await;
    assert_eq!(result, Err(ClaudeError::Timeout { after: Duration::from_secs(3), idle: false }));
    assert!(elapsed < Duration::from_secs(12), "took {elapsed:?}");
    bench.assert_no_cli_left().await;
}

/// Run a turn against an API that always fails with `turn`; return the error and the time taken.
async fn api_failure(turn: Turn) -> (ClaudeError, Duration) {
    let bench = Bench::start(turn).await;
    let (result, events, elapsed) =
        run(bench.config(TestHandler::allow_all()), "hi", LIMITS, CancellationToken::new()).await;
    assert!(!events.iter().any(|e| matches!(e, RunEvent::Text(_))), "{events:#?}");
    (result.unwrap_err(), elapsed)
}

#[tokio::test]
async fn http_401_is_auth_failed() {
    let (err, elapsed) = api_failure(Turn::unauthorized()).await;
    assert_eq!(err.kind(), "auth_failed", "{err:?}");
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("sk-ant-test"), "{err}");
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[tokio::test]
async fn http_429_is_rate_limited_with_the_retry_delay() {
    let (err, elapsed) = api_failure(Turn::rate_limited(1)).await;
    let ClaudeError::RateLimited { retry_after, .. } = &err else { panic!("{err:?}") };
    let retry_after = retry_after.expect("the announced retry delay");
    assert!(
        retry_after >= Duration::from_millis(900) && retry_after <= Duration::from_secs(2),
        "{retry_after:?}"
    );
    assert!(err.is_retryable());
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[tokio::test]
async fn http_529_is_overloaded() {
    let (err, elapsed) = api_failure(Turn::overloaded()).await;
    assert_eq!(err.kind(), "overloaded", "{err:?}");
    assert!(err.is_retryable());
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[tokio::test]
async fn http_500_is_a_retryable_api_error() {
    let (err, elapsed) = api_failure(Turn::server_error()).await;
    assert!(matches!(err, ClaudeError::ApiError { status: Some(500), .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[tokio::test]
async fn http_400_prompt_too_long_is_recognised() {
    let (err, elapsed) = api_failure(Turn::prompt_too_long()).await;
    assert_eq!(err.kind(), "prompt_too_long", "{err:?}");
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[tokio::test]
async fn resuming_an_unknown_session_says_so() {
    let bench = Bench::start(Turn::text("never")).await;
    let id = "8a4a1c1e-1111-4222-8333-944455556666";
    let mut config = bench.config(TestHandler::allow_all());
    config.options.resume = Some(id.into());
    let (result, _, elapsed) = run(config, "hi", LIMITS, CancellationToken::new()).await;
    let err = result.unwrap_err();
    assert_eq!(err, ClaudeError::SessionNotFound { session_id: id.into() });
    assert!(err.to_string().contains(id));
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
    assert!(bench.fake.requests().is_empty());
}

#[tokio::test]
async fn a_json_schema_yields_structured_output() {
    let bench = Bench::start(vec![
        Turn::tool_use("StructuredOutput", json!({"name": "x", "count": 3})),
        Turn::text("Done."),
    ])
    .await;
    let mut config = bench.config(TestHandler::allow_all());
    config.options.json_schema = Some(json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "count": {"type": "integer"}},
        "required": ["name", "count"],
    }));
    let (result, _, _) = run(config, "describe", LIMITS, CancellationToken::new()).await;
    let result = result.unwrap();
    assert_eq!(result.structured_output, Some(json!({"name": "x", "count": 3})));
    let first = &bench.fake.requests()[0];
    assert!(first.tool_names().iter().any(|t| t == "StructuredOutput"), "{:?}", first.tool_names());
}

#[tokio::test]
async fn an_sdk_mcp_tool_round_trips_through_the_handler() {
    let bench = Bench::start(vec![
        Turn::tool_use("mcp__lsp__echo", json!({"text": "ping"})),
        Turn::text("Echoed."),
    ])
    .await;
    let handler = TestHandler::allow_all();
    let _slot = CLI_SLOTS.acquire().await.unwrap();
    let session = ClaudeSession::spawn(bench.config(handler.clone())).await.unwrap();
    let init = InitializeRequest { sdk_mcp_servers: vec!["lsp".into()], ..Default::default() };
    let response = session.initialize(init, Duration::from_secs(30)).await.unwrap();
    assert!(response.is_object(), "{response}");
    let result = session.send("echo ping").await.unwrap().finish().await.unwrap();
    assert_eq!(result.text, "Echoed.");
    let requests = bench.fake.requests();
    // Offered to the model: in `tools` (2.1.197) or announced as a deferred tool (2.1.330).
    assert!(
        requests[0].body.to_string().contains("mcp__lsp__echo"),
        "{:?}",
        requests[0].tool_names()
    );
    let last = requests.last().unwrap();
    assert_eq!(last.tool_results_for("mcp__lsp__echo"), ["echo: ping"]);
    let methods = handler.mcp_methods.lock().unwrap().clone();
    for method in
        ["lsp:initialize", "lsp:notifications/initialized", "lsp:tools/list", "lsp:tools/call"]
    {
        assert!(methods.iter().any(|m| m == method), "{method} not seen in {methods:?}");
    }
    session.shutdown().await;
}

/// Never answers; notices when its pending answer is dropped (the CLI withdrew the request).
struct NeverAnswers {
    asked: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl ControlHandler for NeverAnswers {
    fn can_use_tool(&self, _: CanUseToolRequest) -> BoxFuture<'static, PermissionDecision> {
        self.asked.store(true, Ordering::SeqCst);
        let guard = SetOnDrop(self.dropped.clone());
        Box::pin(async move {
            let _guard = guard;
            futures::future::pending::<PermissionDecision>().await
        })
    }
}

#[tokio::test]
async fn interrupting_a_pending_permission_withdraws_it() {
    let bench = Bench::start(vec![
        Turn::tool_use("Bash", json!({"command": "touch never.txt", "description": "touch"})),
        Turn::text("unreachable"),
    ])
    .await;
    let asked = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    let handler = Arc::new(NeverAnswers { asked: asked.clone(), dropped: dropped.clone() });
    let _slot = CLI_SLOTS.acquire().await.unwrap();
    let session = ClaudeSession::spawn(bench.config(handler)).await.unwrap();
    let turn = session.send("touch it").await.unwrap();
    eventually("the CLI asks for permission", async || asked.load(Ordering::SeqCst).then_some(()))
        .await;
    session.interrupt().await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), turn.finish()).await.unwrap();
    assert_eq!(outcome, Err(ClaudeError::Cancelled));
    assert!(dropped.load(Ordering::SeqCst), "the withdrawn request's handler still runs");
    assert!(!bench.path("never.txt").exists());
    session.shutdown().await;
}

#[tokio::test]
async fn max_turns_stops_with_a_typed_error() {
    let bench = Bench::start(vec![
        Turn::tool_use("Bash", json!({"command": "echo one", "description": "echo"})),
        Turn::tool_use("Bash", json!({"command": "echo two", "description": "echo"})),
        Turn::text("never"),
    ])
    .await;
    let mut config = bench.config(TestHandler::allow_all());
    config.options.max_turns = Some(1);
    let (result, _, _) = run(config, "go", LIMITS, CancellationToken::new()).await;
    assert_eq!(result, Err(ClaudeError::MaxTurns { turns: 1 }));
}

#[tokio::test]
async fn model_and_permission_mode_can_change_between_turns() {
    let bench = Bench::start(vec![Turn::text("ok")]).await;
    let _slot = CLI_SLOTS.acquire().await.unwrap();
    let session = ClaudeSession::spawn(bench.config(TestHandler::allow_all())).await.unwrap();
    session.set_permission_mode(PermissionMode::AcceptEdits).await.unwrap();
    session.set_model(Some("sonnet")).await.unwrap();
    let result = session.send("hi").await.unwrap().finish().await.unwrap();
    assert_eq!(result.text, "ok");
    let model = bench.fake.requests()[0].model().unwrap_or_default().to_owned();
    assert!(model.contains("sonnet"), "the request used {model}");
    session.shutdown().await;
}
