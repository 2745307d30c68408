//! The real `claude-lsp` binary over stdio (issue 5): no CLI survives the server being SIGKILLed
//! or exiting with runs in flight, waiting requests cost little memory, and no secret reaches
//! the client or the log file.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use claude_lsp::base::process::{ChildProcess, ProcessSpec};
use rustix::process::Signal;
use serde_json::{Map, Value, json};
use tokio::io::BufReader;
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::Notify;

use crate::support::cli::{
    ProcInfo, TestHome, children_of, lasting_zombies, leftover_processes, real_cli,
    remaining_processes, wait_for_process,
};
use crate::support::fake_api::{
    CLI_ENV_TO_REMOVE, DUMMY_API_KEY, FakeApi, RecordedRequest, Script, Turn,
};
use crate::support::frame::{read_frame, write_frame};
use crate::support::lsp_client::file_uri;
use crate::support::wait::{eventually, poll};

const LIB: &str = "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";
const WAIT: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Inbox {
    /// Every response per request id (more than one would be a bug).
    responses: HashMap<i64, Vec<Value>>,
    notifications: Vec<Value>,
    /// Every message body the server wrote, as text.
    raw: String,
}

/// `claude-lsp` as a child process, spoken to over its stdin/stdout.
struct StdioServer {
    child: ChildProcess,
    /// `None` once the test closed it.
    stdin: Arc<tokio::sync::Mutex<Option<ChildStdin>>>,
    inbox: Arc<Mutex<Inbox>>,
    arrived: Arc<Notify>,
    next_id: i64,
}

impl StdioServer {
    /// Start the binary and initialize it with `settings` for a workspace at `root`.
    async fn start(root: &Path, settings: Value) -> Self {
        let spec = CLI_ENV_TO_REMOVE
            .iter()
            .chain(&["ANTHROPIC_API_KEY", "CLAUDE_LSP_LOG"])
            .fold(ProcessSpec::new(env!("CARGO_BIN_EXE_claude-lsp"), root), |spec, key| {
                spec.env_remove(key)
            })
            .piped_stdin();
        let mut child = spec.spawn().unwrap();
        let stdin = Arc::new(tokio::sync::Mutex::new(child.take_stdin()));
        let stdout = child.take_stdout().unwrap();
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let arrived = Arc::new(Notify::new());
        tokio::spawn(read_loop(
            stdout,
            stdin.clone(),
            inbox.clone(),
            arrived.clone(),
            settings.clone(),
        ));
        let mut server = Self { child, stdin, inbox, arrived, next_id: 1 };
        let root_uri = file_uri(root);
        let id = server
            .send_request(
                "initialize",
                json!({
                    "processId": null,
                    "rootUri": root_uri,
                    "capabilities": {"window": {"workDoneProgress": true},
                                     "workspace": {"configuration": true, "applyEdit": true}},
                    "initializationOptions": settings,
                    "workspaceFolders": [{"uri": root_uri, "name": "ws"}],
                }),
            )
            .await;
        server.response(id).await.expect("initialize failed");
        server.notify("initialized", json!({})).await;
        server
    }

    fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Close the server's input, as an editor that goes away does.
    async fn close_stdin(&self) {
        self.stdin.lock().await.take();
    }

    async fn write(&self, message: Value) {
        let body = serde_json::to_vec(&message).unwrap();
        let mut stdin = self.stdin.lock().await;
        write_frame(stdin.as_mut().expect("stdin was closed"), &body).await.unwrap();
    }

    async fn notify(&self, method: &str, params: Value) {
        self.write(json!({"jsonrpc": "2.0", "method": method, "params": params})).await;
    }

    async fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.write(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        id
    }

    /// The answer to request `id`: Ok(result) or Err(error).
    async fn response(&self, id: i64) -> Result<Value, Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let arrived = self.arrived.notified();
            if let Some(response) =
                self.inbox.lock().unwrap().responses.get(&id).and_then(|all| all.first().cloned())
            {
                return match response.get("error") {
                    Some(error) => Err(error.clone()),
                    None => Ok(response["result"].clone()),
                };
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("no answer to request {id} within {WAIT:?}");
            }
        }
    }

    async fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.send_request(method, params).await;
        self.response(id).await
    }

    /// Poll `claude/metrics` until `done` holds for it.
    async fn wait_for_metrics(&mut self, done: impl Fn(&Value) -> bool) -> Value {
        eventually("claude/metrics reaches the expected state", async || {
            let report = self.request("claude/metrics", json!({})).await.unwrap();
            done(&report).then_some(report)
        })
        .await
    }

    /// Wait for a notification with `method` whose params satisfy `pred` (received at any time
    /// so far).
    async fn wait_for_notification(&self, method: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let arrived = self.arrived.notified();
            let found = self
                .inbox
                .lock()
                .unwrap()
                .notifications
                .iter()
                .find(|n| n["method"] == method && pred(&n["params"]))
                .cloned();
            if let Some(notification) = found {
                return notification["params"].clone();
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("no {method} notification within {WAIT:?}");
            }
        }
    }

    fn raw_output(&self) -> String {
        self.inbox.lock().unwrap().raw.clone()
    }

    /// Ids that got more than one response.
    fn answered_twice(&self) -> Vec<i64> {
        let inbox = self.inbox.lock().unwrap();
        inbox.responses.iter().filter(|(_, all)| all.len() > 1).map(|(id, _)| *id).collect()
    }

    /// The server's resident memory in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// The CLI processes the server runs now.
    fn clis(&self) -> Vec<u32> {
        let cli = real_cli();
        children_of(self.pid()).into_iter().filter(|p| p.runs(&cli)).map(|p| p.pid).collect()
    }

    async fn wait_exit(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the server did not exit")
            .unwrap()
    }
}

async fn read_loop(
    stdout: ChildStdout,
    stdin: Arc<tokio::sync::Mutex<Option<ChildStdin>>>,
    inbox: Arc<Mutex<Inbox>>,
    arrived: Arc<Notify>,
    settings: Value,
) {
    let mut reader = BufReader::new(stdout);
    while let Some(body) = read_frame(&mut reader).await {
        let body = String::from_utf8(body).unwrap();
        let message: Value = serde_json::from_str(&body).unwrap();
        let is_request = message.get("id").is_some() && message.get("method").is_some();
        {
            let mut inbox = inbox.lock().unwrap();
            inbox.raw.push_str(&body);
            inbox.raw.push('\n');
            if message.get("method").is_none() {
                let id = message["id"].as_i64().unwrap_or(-1);
                inbox.responses.entry(id).or_default().push(message.clone());
            } else if !is_request {
                inbox.notifications.push(message.clone());
            }
        }
        if is_request {
            // Answer as an editor would: settings for workspace/configuration, else null.
            let result = match message["method"].as_str() {
                Some("workspace/configuration") => json!([settings]),
                _ => Value::Null,
            };
            let reply = serde_json::to_vec(
                &json!({"jsonrpc": "2.0", "id": message["id"], "result": result}),
            )
            .unwrap();
            let mut stdin = stdin.lock().await;
            let Some(stdin) = stdin.as_mut() else { continue };
            // The server may be gone already (a test that kills it).
            let _ = write_frame(stdin, &reply).await;
        }
        arrived.notify_waiters();
    }
}

/// A temp workspace with `src/lib.rs`, and the settings pointing the server at `api`.
struct Setup {
    dir: tempfile::TempDir,
    home: TestHome,
    api: FakeApi,
}

impl Setup {
    async fn new(script: impl Into<Script>) -> Self {
        let dir = tempfile::Builder::new().prefix("claude-lsp-proc-").tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), LIB).unwrap();
        Self { dir, home: TestHome::new(), api: FakeApi::start(script).await }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    fn log_file(&self) -> PathBuf {
        self.home.path().join("claude-lsp.log")
    }

    fn settings(&self, extra: Value) -> Value {
        let env: Map<String, Value> = self
            .api
            .cli_env(self.home.path())
            .into_iter()
            .map(|(key, value)| (key, Value::String(value)))
            .collect();
        let mut settings = json!({
            "cliPath": real_cli(), "env": env, "warmPool": 0,
            "logFile": self.log_file(), "logLevel": "debug",
        });
        settings.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        settings
    }

    fn analyze(&self, instruction: &str) -> Value {
        json!({"textDocument": {"uri": file_uri(&self.root().join("src/lib.rs"))}, "instruction": instruction})
    }
}

#[tokio::test]
async fn a_sigkilled_server_leaves_no_cli_behind_and_waiting_requests_cost_little() {
    let setup = Setup::new(Turn::Hang).await;
    let mut server =
        StdioServer::start(&setup.root(), setup.settings(json!({"maxConcurrent": 2}))).await;
    for n in 0..2 {
        server.send_request("claude/analyze", setup.analyze(&format!("running-{n}"))).await;
    }
    setup.api.wait_for_requests(2, WAIT).await;
    let running = server.clis();
    assert_eq!(running.len(), 2, "one CLI per running request: {running:?}");
    let before = server.rss_kib();

    for n in 0..200 {
        server.send_request("claude/analyze", setup.analyze(&format!("queued-{n}"))).await;
    }
    server.wait_for_metrics(|m| m["scheduler"]["queued"] == 200).await;
    // Waiting requests spawn nothing and hold little memory.
    assert_eq!(server.clis(), running, "a queued request started a CLI");
    let grown_mib = server.rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 32, "200 waiting requests took {grown_mib} MiB");

    server.child.signal_group(Signal::KILL);
    let status = server.wait_exit().await;
    assert_eq!(status.signal(), Some(Signal::KILL.as_raw()), "{status:?}");
    // The parent-death signal takes every CLI with the server.
    let survivors = leftover_processes(|p| running.contains(&p.pid), Duration::from_secs(20)).await;
    assert!(survivors.is_empty(), "CLI processes survived the server: {survivors:#?}");
}

#[tokio::test]
async fn exit_with_runs_in_flight_stops_every_cli_and_logs_the_metrics() {
    let setup = Setup::new(Turn::Hang).await;
    let mut server =
        StdioServer::start(&setup.root(), setup.settings(json!({"maxConcurrent": 2}))).await;
    let instructions = ["run-one", "run-two", "run-three"];
    let mut ids = Vec::new();
    for instruction in instructions {
        ids.push(server.send_request("claude/analyze", setup.analyze(instruction)).await);
    }
    let reached = setup.api.wait_for_requests(2, WAIT).await;
    let running = server.clis();
    assert_eq!(running.len(), 2);

    // Cancel a running one while the server is up: its CLI ends and is reaped (no zombie child
    // of the server), and the queued run takes the slot. (Requests are served concurrently, so
    // which two got the slots first is not known in advance.)
    let started = |instruction: &str| reached.iter().any(|r| r.all_text().contains(instruction));
    let cancelled = instructions.iter().position(|i| started(i)).unwrap();
    let queued = instructions.iter().position(|i| !started(i)).unwrap();
    server.notify("$/cancelRequest", json!({"id": ids[cancelled]})).await;
    assert_eq!(server.response(ids[cancelled]).await.unwrap_err()["code"], -32800);
    let after = setup.api.wait_for_requests(3, WAIT).await;
    assert!(after[2].all_text().contains(instructions[queued]), "the queued run did not start");
    let still_there = async || {
        let remaining = remaining_processes();
        running.iter().copied().filter(|pid| remaining.iter().any(|p| p.pid == *pid)).collect()
    };
    let left: Vec<u32> =
        poll(Duration::from_secs(20), still_there, |left: &Vec<u32>| left.len() < running.len())
            .await;
    assert_eq!(left.len(), 1, "the cancelled run's CLI is still there: {left:?}");
    let zombies = lasting_zombies(server.pid(), Duration::from_secs(20)).await;
    assert!(zombies.is_empty(), "the server left children unreaped: {zombies:#?}");
    let running: Vec<u32> = server.clis();
    assert_eq!(running.len(), 2, "{running:?}");

    server.request("shutdown", Value::Null).await.unwrap();
    server.notify("exit", Value::Null).await;
    server.wait_exit().await;
    let survivors = leftover_processes(|p| running.contains(&p.pid), Duration::from_secs(20)).await;
    assert!(survivors.is_empty(), "CLI processes survived the exit: {survivors:#?}");
    // Every request was answered once before the server went (cancelled: by us, or by the
    // shutdown).
    for id in ids {
        let error = server.response(id).await.unwrap_err();
        assert_eq!(error["code"], -32800, "{error}");
    }
    assert!(server.answered_twice().is_empty(), "{:?}", server.answered_twice());
    let log = std::fs::read_to_string(setup.log_file()).unwrap();
    assert!(log.contains("metrics at shutdown: requests "), "{log}");
}

#[tokio::test]
async fn secrets_reach_neither_the_client_nor_the_log() {
    const ENV_SECRET: &str = "plain-secret-value-4711";
    const BEARER: &str = "bearer-token-value.0815";
    let script = |request: &RecordedRequest| {
        if request.all_text().contains("fail-with-secrets") {
            // An API error that quotes the secrets: it reaches the client as an error.
            return Turn::error(
                400,
                "invalid_request_error",
                &format!(
                    "bad request from key {DUMMY_API_KEY} with token {ENV_SECRET} (Bearer {BEARER})"
                ),
            );
        }
        match request.turn_index() {
            0 => Turn::tool_use(
                "Read",
                json!({"file_path": format!("{}/src/secrets.txt", crate::support::workspace::cli_cwd(request))}),
            ),
            _ => Turn::text(format!(
                "The key is {DUMMY_API_KEY}, the token {ENV_SECRET}, and Authorization: Bearer {BEARER} done."
            )),
        }
    };
    let setup = Setup::new(Script::from_fn(script)).await;
    std::fs::write(
        setup.root().join("src/secrets.txt"),
        format!("api_key = {DUMMY_API_KEY}\ntoken = {ENV_SECRET}\n"),
    )
    .unwrap();
    let mut settings = setup.settings(json!({"maxConcurrent": 2, "logLevel": "trace"}));
    settings["env"]["MY_SERVICE_TOKEN"] = json!(ENV_SECRET);
    let mut server = StdioServer::start(&setup.root(), settings).await;
    let mut params = setup.analyze("print the secrets");
    params["workDoneToken"] = json!("s1");
    let result = server.request("claude/analyze", params).await.unwrap();
    assert!(result["text"].as_str().unwrap().contains("[REDACTED]"), "{result}");
    // The error paths: a ResponseError, and a failed command's window/showMessage.
    let mut params = setup.analyze("fail-with-secrets");
    params["workDoneToken"] = json!("s2");
    let error = server.request("claude/analyze", params).await.unwrap_err();
    assert!(error["message"].as_str().unwrap().contains("[REDACTED]"), "{error}");
    let command =
        json!({"command": "claude.analyze", "arguments": [setup.analyze("fail-with-secrets")]});
    server.request("workspace/executeCommand", command).await.unwrap();
    // MessageType 1: an error.
    let failure = server.wait_for_notification("window/showMessage", |p| p["type"] == 1).await;
    assert!(failure["message"].as_str().unwrap().contains("[REDACTED]"), "{failure}");
    server.request("shutdown", Value::Null).await.unwrap();
    server.notify("exit", Value::Null).await;
    server.wait_exit().await;

    let received = server.raw_output();
    let log = std::fs::read_to_string(setup.log_file()).unwrap();
    for secret in [DUMMY_API_KEY, "0000dummy", ENV_SECRET, BEARER] {
        assert!(!received.contains(secret), "{secret} reached the client:\n{received}");
        assert!(!log.contains(secret), "{secret} reached the log:\n{log}");
    }
    // The texts did flow, redacted: in the stream, the tool result and the progress.
    let outputs: Vec<Value> = server
        .inbox
        .lock()
        .unwrap()
        .notifications
        .iter()
        .filter(|n| n["method"] == "claude/output")
        .map(|n| n["params"].clone())
        .collect();
    assert!(
        outputs.iter().any(
            |o| o["kind"] == "toolResult" && o["text"].as_str().unwrap().contains("[REDACTED]")
        )
    );
    let streamed: String =
        outputs.iter().filter(|o| o["kind"] == "text").filter_map(|o| o["text"].as_str()).collect();
    assert!(streamed.contains("The key is [REDACTED], the token [REDACTED]"), "{streamed}");
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "the log is empty: {log}");
}

/// How the editor leaves while the agent's Bash command runs.
#[derive(Debug, Clone, Copy)]
enum Leave {
    Kill,
    ShutdownExit,
    CloseStdin,
}

/// A run whose Bash command sleeps for minutes, then the editor leaves: no process the agent
/// started remains, and after stdin closes the API hears nothing more.
async fn the_agents_command_ends_with_the_server(leave: Leave) {
    let marker = format!("claude-lsp-lifetime-{leave:?}-{}", std::process::id());
    let command = format!("python3 -c 'import time; time.sleep(200)' {marker}");
    let script = Script::from_fn(move |request: &RecordedRequest| {
        if request.has_tool_result_for("Bash") {
            Turn::text("done")
        } else {
            Turn::tool_use("Bash", json!({"command": command, "description": "sleep"}))
        }
    });
    let setup = Setup::new(script).await;
    let settings = setup.settings(json!({"allowedTools": ["Bash"]}));
    let mut server = StdioServer::start(&setup.root(), settings).await;
    // An edit run: its mirror is writable, so the sandbox sets up on every pinned CLI.
    let id = server.send_request("claude/refactor", setup.analyze("sleep")).await;
    let is_command = |p: &ProcInfo| p.cmdline.iter().any(|arg| arg == &marker);
    let sleeping = wait_for_process(is_command, WAIT).await;
    assert!(sleeping.is_some(), "the Bash command never started: {:?}", server.response(id).await);
    let asked = setup.api.requests().len();

    match leave {
        Leave::Kill => server.child.signal_group(Signal::KILL),
        Leave::ShutdownExit => {
            server.request("shutdown", Value::Null).await.unwrap();
            server.notify("exit", Value::Null).await;
        }
        Leave::CloseStdin => server.close_stdin().await,
    }
    server.wait_exit().await;
    let survivors = leftover_processes(is_command, WAIT).await;
    assert!(survivors.is_empty(), "the agent's command outlived the server: {survivors:#?}");
    if let Leave::CloseStdin = leave {
        assert_eq!(setup.api.requests().len(), asked, "the run went on after stdin closed");
    }
}

#[tokio::test]
async fn the_agents_command_dies_with_a_sigkilled_server() {
    the_agents_command_ends_with_the_server(Leave::Kill).await;
}

#[tokio::test]
async fn the_agents_command_ends_on_shutdown_and_exit() {
    the_agents_command_ends_with_the_server(Leave::ShutdownExit).await;
}

#[tokio::test]
async fn closing_stdin_cancels_the_run_at_once() {
    the_agents_command_ends_with_the_server(Leave::CloseStdin).await;
}

/// LSP's exit codes: 0 when `shutdown` came before `exit`, 1 when it did not.
#[tokio::test]
async fn the_exit_code_says_whether_shutdown_came_before_exit() {
    // No run starts: the API is never asked.
    let setup = Setup::new(Turn::text("unused")).await;
    let mut polite = StdioServer::start(&setup.root(), setup.settings(json!({}))).await;
    polite.request("shutdown", Value::Null).await.unwrap();
    polite.notify("exit", Value::Null).await;
    let status = polite.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{status:?}");

    let mut abrupt = StdioServer::start(&setup.root(), setup.settings(json!({}))).await;
    abrupt.notify("exit", Value::Null).await;
    let status = abrupt.wait_exit().await;
    assert_eq!(status.code(), Some(1), "{status:?}");
}
