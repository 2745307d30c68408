//! End to end, claude-lsp beside its peers in one run (issue 16): the pinned CLI driven directly
//! (the floor), claude-lsp at default settings and with `warmPool` 0, `claude -p`, and the ACP
//! adapter `@agentclientprotocol/claude-agent-acp` (pinned in tests/cli), all on the fake API.
//!
//! The cases are interleaved: each round runs every case once, in the order of [`CASES`], and
//! before every request all the process trees are idle. Per case: p50 and p90 of the time to the
//! first model text and to the answer, and the CPU per request (user + sys of the case's process
//! tree, reaped children included, from just before the request until the tree is idle again:
//! the work a request sets off after its answer, such as a pool refill, counts). After the run,
//! each tree's RSS and PSS. Then bursts of 8 requests at once, each on a new server at default
//! settings: when the 4th and the 8th answers arrive, and the most CLIs that ran at once.

use std::fmt::Write as _;
use std::fs;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use claude_lsp::base::process::{ChildProcess, ProcessSpec};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};

use crate::support::cli::{StreamJsonCli, TestHome, all_processes, expected_cli_version, real_cli};
use crate::support::fake_api::{Block, CLI_ENV_TO_REMOVE, FakeApi, RecordedRequest, Script, Turn};
use crate::support::frame::{read_frame, write_frame};
use crate::support::lsp_client::file_uri;
use crate::{LIB, WAIT};

const ANSWER: &str = "The function adds two numbers.";
/// How the answer starts: a progress report that starts so shows the model's text.
const ANSWER_START: &str = "The function";
const PROMPT: &str = "Explain what lib.rs does.";
/// /proc counts CPU time in USER_HZ ticks, which Linux fixes at 100 per second for user space.
const TICK: Duration = Duration::from_millis(10);
const ACP_ADAPTER: &str =
    "tests/cli/node_modules/@agentclientprotocol/claude-agent-acp/dist/index.js";
const ACP_ADAPTER_VERSION: &str = "0.101.0";

/// The model: for a prompt its words first (and, with the findings tool offered, an empty
/// report); after the report's tool result alone, a short close. A follow-up prompt arrives in
/// the same user message as the last turn's tool result (the CLI ends a findings turn at the
/// report and sends its result with the next prompt): that is a prompt, answered in one call.
fn scripted_answer(request: &RecordedRequest) -> Turn {
    let after_tool = request.messages().last().is_some_and(|message| {
        message["content"].as_array().is_some_and(|blocks| {
            blocks.iter().any(|block| block["type"] == "tool_result")
                && !blocks.iter().any(|block| block["type"] == "text")
        })
    });
    if after_tool {
        Turn::text("Done.")
    } else if request.tool_names().iter().any(|tool| tool == "StructuredOutput") {
        Turn::reply(vec![
            Block::Text(ANSWER.to_owned()),
            Block::ToolUse {
                name: "StructuredOutput".to_owned(),
                input: json!({"findings": [], "summary": ANSWER}),
            },
        ])
    } else {
        Turn::text(ANSWER)
    }
}

// ---- process trees ----------------------------------------------------------------------------

/// Fields of /proc/<pid>/stat after the command name, as CPU time (`first..first + count`).
fn stat_time(pid: &str, first: usize, count: usize) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(first)
        .take(count)
        .filter_map(|value| value.parse::<u64>().ok())
        .sum();
    TICK * u32::try_from(ticks).unwrap()
}

/// One process's CPU: its own and that of the children it reaped (utime, stime, cutime,
/// cstime: fields 14–17 of proc(5), 11–14 after the name).
fn process_cpu(pid: u32) -> Duration {
    stat_time(&pid.to_string(), 11, 4)
}

/// CPU of this bench's reaped children (cutime, cstime): a `claude -p` is measured so once it
/// has exited.
fn reaped_children_cpu() -> Duration {
    stat_time("self", 13, 2)
}

/// `root` and every process below it. Zombies count: their time moves to the parent when reaped.
pub fn tree(root: u32) -> Vec<u32> {
    let all = all_processes();
    let mut members = vec![root];
    let mut next = 0;
    while let Some(&parent) = members.get(next) {
        members.extend(all.iter().filter(|process| process.ppid == parent).map(|p| p.pid));
        next += 1;
    }
    members
}

pub fn tree_cpu(root: u32) -> Duration {
    tree(root).into_iter().map(process_cpu).sum()
}

/// Resident and proportional set size of a tree, in MB (from /proc/<pid>/smaps_rollup).
pub fn tree_memory(root: u32) -> (f64, f64) {
    let (mut rss_kb, mut pss_kb) = (0.0, 0.0);
    for pid in tree(root) {
        let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        for line in rollup.lines() {
            let kb = |rest: &str| rest.trim().trim_end_matches("kB").trim().parse().unwrap_or(0.0);
            if let Some(rest) = line.strip_prefix("Rss:") {
                rss_kb += kb(rest);
            } else if let Some(rest) = line.strip_prefix("Pss:") {
                pss_kb += kb(rest);
            }
        }
    }
    (rss_kb / 1024.0, pss_kb / 1024.0)
}

/// Wait until the trees under `roots` used at most one clock tick of CPU in half a second (an
/// idle process's timer may land on a tick): nothing left over competes with the next request.
pub async fn idle(roots: &[u32]) {
    let deadline = Instant::now() + WAIT;
    let total = || roots.iter().map(|&root| tree_cpu(root)).sum::<Duration>();
    let mut last = total();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = total();
        if now.saturating_sub(last) <= TICK {
            return;
        }
        assert!(Instant::now() < deadline, "the process trees {roots:?} never went idle");
        last = now;
    }
}

/// `work` on idle trees, and the CPU the tree under `root` (else this bench's reaped children)
/// used for it until every tree is idle again.
async fn with_cpu<T>(
    roots: &[u32],
    root: Option<u32>,
    work: impl Future<Output = T>,
) -> (T, Duration) {
    let cpu = || root.map_or_else(reaped_children_cpu, tree_cpu);
    idle(roots).await;
    let before = cpu();
    let out = work.await;
    idle(roots).await;
    (out, cpu().saturating_sub(before))
}

// ---- the peers --------------------------------------------------------------------------------

struct Timing {
    first_text: Duration,
    answer: Duration,
}

/// Model text in a CLI stream-json message: a streamed delta, or a whole text block.
fn has_text(message: &Value) -> bool {
    let streamed =
        message["type"] == "stream_event" && message["event"]["delta"]["type"] == "text_delta";
    let block = message["type"] == "assistant"
        && message["message"]["content"]
            .as_array()
            .is_some_and(|blocks| blocks.iter().any(|block| block["type"] == "text"));
    streamed || block
}

/// One turn on a CLI the bench drives itself in stream-json mode: the floor.
async fn cli_turn(cli: &mut StreamJsonCli, prompt: &str) -> Timing {
    let started = Instant::now();
    cli.send_user(prompt).await;
    let mut first_text = None;
    loop {
        let message = cli.next_message(WAIT).await.expect("the CLI ended mid-turn");
        if first_text.is_none() && has_text(&message) {
            first_text = Some(started.elapsed());
        }
        if message["type"] == "result" {
            let first_text = first_text.expect("no text before the result");
            return Timing { first_text, answer: started.elapsed() };
        }
    }
}

/// `claude -p` spawned for the request, as a script would run it (streaming, like the server).
async fn claude_p(workspace: &Path, home: &TestHome, api: &FakeApi) -> Timing {
    let spec = CLI_ENV_TO_REMOVE
        .iter()
        .fold(ProcessSpec::new(real_cli(), workspace), |spec, key| spec.env_remove(key))
        .args(["-p", PROMPT, "--output-format", "stream-json", "--verbose"])
        .arg("--include-partial-messages")
        .envs(api.cli_env(home.path()));
    let started = Instant::now();
    let mut child = spec.spawn().unwrap();
    let mut lines = BufReader::new(child.take_stdout().unwrap()).lines();
    let mut first_text = None;
    let answer = loop {
        let line = lines.next_line().await.unwrap().expect("the CLI ended before its result");
        let message: Value = serde_json::from_str(&line).unwrap();
        if first_text.is_none() && has_text(&message) {
            first_text = Some(started.elapsed());
        }
        if message["type"] == "result" {
            break started.elapsed();
        }
    };
    child.wait().await.unwrap();
    Timing { first_text: first_text.expect("no text before the result"), answer }
}

/// How a JSON-RPC peer on a child's stdio frames its messages.
#[derive(Clone, Copy)]
enum Framing {
    /// LSP's `Content-Length` headers.
    Lsp,
    /// ACP's one message per line.
    Lines,
}

/// A JSON-RPC peer on a child's stdio.
struct Rpc {
    child: ChildProcess,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    framing: Framing,
    next_id: i64,
}

impl Rpc {
    fn spawn(spec: &ProcessSpec, framing: Framing) -> Self {
        let mut child = spec.spawn().unwrap();
        let stdin = child.take_stdin().unwrap();
        let stdout = BufReader::new(child.take_stdout().unwrap());
        Self { child, stdin, stdout, framing, next_id: 1 }
    }

    async fn send(&mut self, message: Value) {
        let text = message.to_string();
        match self.framing {
            Framing::Lsp => write_frame(&mut self.stdin, text.as_bytes()).await.unwrap(),
            Framing::Lines => {
                self.stdin.write_all(format!("{text}\n").as_bytes()).await.unwrap();
                self.stdin.flush().await.unwrap();
            }
        }
    }

    async fn read(&mut self) -> Value {
        let body = match self.framing {
            Framing::Lsp => read_frame(&mut self.stdout).await,
            Framing::Lines => {
                let mut line = String::new();
                let read = self.stdout.read_line(&mut line).await.unwrap();
                (read > 0).then(|| line.into_bytes())
            }
        };
        let body = body.unwrap_or_else(|| {
            panic!("the peer's output ended; stderr: {}", self.child.stderr_tail())
        });
        serde_json::from_slice(&body).unwrap()
    }

    /// Answer a request of the peer as a client that offers nothing more does.
    async fn decline(&mut self, request_id: Value) {
        let refused = json!({"code": -32601, "message": "not offered by this client"});
        let reply = match self.framing {
            Framing::Lsp => json!({"jsonrpc": "2.0", "id": request_id, "result": null}),
            Framing::Lines => json!({"jsonrpc": "2.0", "id": request_id, "error": refused}),
        };
        self.send(reply).await;
    }

    /// Send a request and read until its response, showing `on_notification` each
    /// notification on the way. The peer's own requests get null from an LSP client (this one
    /// has no configuration to give) and an error from an ACP client (this one offers no file
    /// system, terminal or permission prompts).
    async fn request(
        &mut self,
        method: &str,
        params: Value,
        mut on_notification: impl FnMut(&Value),
    ) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        loop {
            let message = self.read().await;
            match (message.get("method"), message.get("id")) {
                (Some(_), Some(request_id)) => self.decline(request_id.clone()).await,
                (Some(_), None) => on_notification(&message),
                (None, _) if message["id"] == id => {
                    let result = message.get("result");
                    return result.cloned().unwrap_or_else(|| panic!("{method}: {message}"));
                }
                (None, _) => {}
            }
        }
    }
}

/// A `claude-lsp` process spoken to over its stdio.
pub struct LspServer {
    rpc: Rpc,
}

impl LspServer {
    /// Start the release server on `workspace` with the pinned CLI on the fake API and
    /// `settings` (otherwise the defaults), and initialize it.
    pub async fn start(workspace: &Path, home: &TestHome, api: &FakeApi, settings: Value) -> Self {
        let spec = CLI_ENV_TO_REMOVE
            .iter()
            .fold(ProcessSpec::new(env!("CARGO_BIN_EXE_claude-lsp"), workspace), |spec, key| {
                spec.env_remove(key)
            })
            .env("XDG_CACHE_HOME", home.path().join("cache"))
            .piped_stdin();
        let mut rpc = Rpc::spawn(&spec, Framing::Lsp);
        let env: serde_json::Map<String, Value> = api.cli_env_setting(home.path());
        let mut options = json!({"cliPath": real_cli(), "env": env});
        options.as_object_mut().unwrap().extend(settings.as_object().unwrap().clone());
        let root = file_uri(workspace);
        let params = json!({"processId": null, "rootUri": root, "capabilities": {}, "initializationOptions": options});
        rpc.request("initialize", params, |_| {}).await;
        rpc.send(json!({"jsonrpc": "2.0", "method": "initialized", "params": {}})).await;
        Self { rpc }
    }

    pub fn pid(&self) -> u32 {
        self.rpc.child.pid()
    }

    /// `claude/analyze` of lib.rs, continuing `session_id` if given: the timing and the
    /// conversation's id.
    async fn analyze(&mut self, workspace: &Path, session_id: Option<&str>) -> (Timing, String) {
        let token = format!("speed-{}", self.rpc.next_id);
        let uri = file_uri(&workspace.join("lib.rs"));
        // The same request each time, so the result cache would answer it with no CLI: every
        // sample is a real run (`noCache`), as the peers' are.
        let mut params =
            json!({"textDocument": {"uri": uri}, "workDoneToken": token, "noCache": true});
        if let Some(id) = session_id {
            params["sessionId"] = json!(id);
        }
        let started = Instant::now();
        let mut first_text = None;
        let result = self
            .rpc
            .request("claude/analyze", params, |message| {
                let progress = &message["params"];
                let model_text = message["method"] == "$/progress"
                    && progress["token"] == token.as_str()
                    && progress["value"]["kind"] == "report"
                    && progress["value"]["message"]
                        .as_str()
                        .is_some_and(|text| text.starts_with(ANSWER_START));
                if model_text && first_text.is_none() {
                    first_text = Some(started.elapsed());
                }
            })
            .await;
        let answer = started.elapsed();
        assert!(result["text"].as_str().is_some_and(|text| text.contains("adds two numbers")));
        let timing = Timing { first_text: first_text.expect("no model text in progress"), answer };
        (timing, result["sessionId"].as_str().unwrap().to_owned())
    }

    /// `n` different `claude/analyze` requests of lib.rs sent at once: when each answer
    /// arrived, counted from the first send, in the order they arrived.
    async fn burst(&mut self, workspace: &Path, n: usize) -> Vec<Duration> {
        let uri = file_uri(&workspace.join("lib.rs"));
        let started = Instant::now();
        let mut waiting = Vec::new();
        for k in 0..n {
            let id = self.rpc.next_id;
            self.rpc.next_id += 1;
            let instruction = format!("part {k}");
            let params =
                json!({"textDocument": {"uri": uri}, "instruction": instruction, "noCache": true});
            let request =
                json!({"jsonrpc": "2.0", "id": id, "method": "claude/analyze", "params": params});
            self.rpc.send(request).await;
            waiting.push(json!(id));
        }
        let mut answered = Vec::new();
        while !waiting.is_empty() {
            let message = self.rpc.read().await;
            match (message.get("method"), message.get("id")) {
                (Some(_), Some(request_id)) => self.rpc.decline(request_id.clone()).await,
                (None, Some(id)) if waiting.contains(id) => {
                    assert!(message["result"]["text"].is_string(), "{message}");
                    waiting.retain(|waiting| waiting != id);
                    answered.push(started.elapsed());
                }
                _ => {}
            }
        }
        answered
    }

    pub async fn stop(mut self) {
        self.rpc.request("shutdown", Value::Null, |_| {}).await;
        self.rpc.send(json!({"jsonrpc": "2.0", "method": "exit"})).await;
        tokio::time::timeout(WAIT, self.rpc.child.wait()).await.unwrap().unwrap();
    }
}

/// The ACP adapter under node, spoken to over stdio (JSON-RPC, one message per line).
struct AcpAdapter {
    rpc: Rpc,
}

impl AcpAdapter {
    async fn start(workspace: &Path, home: &TestHome, api: &FakeApi) -> Self {
        let adapter = Path::new(env!("CARGO_MANIFEST_DIR")).join(ACP_ADAPTER);
        assert!(
            adapter.is_file(),
            "the ACP adapter is missing at {}: install it with `npm ci --prefix tests/cli`",
            adapter.display()
        );
        // As root with IS_SANDBOX set, the adapter asks the CLI for a bypass mode it refuses.
        let spec = CLI_ENV_TO_REMOVE
            .iter()
            .chain(&["IS_SANDBOX"])
            .fold(ProcessSpec::new("node", workspace).arg(adapter), |spec, key| {
                spec.env_remove(key)
            })
            .envs(api.cli_env(home.path()))
            .env("CLAUDE_CODE_EXECUTABLE", real_cli())
            .piped_stdin();
        let mut rpc = Rpc::spawn(&spec, Framing::Lines);
        let params = json!({"protocolVersion": 1, "clientCapabilities": {}});
        let info = rpc.request("initialize", params, |_| {}).await;
        assert_eq!(info["agentInfo"]["version"], ACP_ADAPTER_VERSION, "{info}");
        Self { rpc }
    }

    fn pid(&self) -> u32 {
        self.rpc.child.pid()
    }

    async fn new_session(&mut self, workspace: &Path) -> String {
        let params = json!({"cwd": workspace, "mcpServers": []});
        let session = self.rpc.request("session/new", params, |_| {}).await;
        session["sessionId"].as_str().unwrap().to_owned()
    }

    /// A prompt on `session`, timed from `since`, else from when it is sent.
    async fn prompt(&mut self, session: &str, since: Option<Instant>) -> Timing {
        // Taken here, not by the caller: a future's body runs when it is first polled, after
        // the wait for idle trees.
        let started = since.unwrap_or_else(Instant::now);
        let mut first_text = None;
        let params = json!({"sessionId": session, "prompt": [{"type": "text", "text": PROMPT}]});
        let result = self
            .rpc
            .request("session/prompt", params, |message| {
                let chunk = message["method"] == "session/update"
                    && message["params"]["update"]["sessionUpdate"] == "agent_message_chunk";
                if chunk && first_text.is_none() {
                    first_text = Some(started.elapsed());
                }
            })
            .await;
        let answer = started.elapsed();
        assert_eq!(result["stopReason"], "end_turn", "{result}");
        Timing { first_text: first_text.expect("no agent_message_chunk"), answer }
    }

    async fn close(&mut self, session: &str) {
        self.rpc.request("session/close", json!({"sessionId": session}), |_| {}).await;
    }
}

// ---- the comparison ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    CliLive,
    CliCleared,
    LspNew,
    LspFollowUp,
    LspSpawn,
    ClaudeP,
    AcpPrompt,
    AcpNewPrompt,
}

/// Every case, in the order each round runs them.
const CASES: [Case; 8] = [
    Case::CliLive,
    Case::CliCleared,
    Case::LspNew,
    Case::LspFollowUp,
    Case::LspSpawn,
    Case::ClaudeP,
    Case::AcpPrompt,
    Case::AcpNewPrompt,
];

impl Case {
    fn label(self) -> &'static str {
        match self {
            Self::CliLive => "floor: the CLI itself, a live stream-json process, next turn",
            Self::CliCleared => "floor: the CLI itself, a used process after `/clear`, first turn",
            Self::LspNew => "claude-lsp, **default settings**, new conversation (`claude/analyze`)",
            Self::LspFollowUp => "claude-lsp, default settings, follow-up turn with `sessionId`",
            Self::LspSpawn => "claude-lsp, `warmPool` 0 (CLI spawned per request)",
            Self::ClaudeP => "`claude -p … --output-format stream-json`",
            Self::AcpPrompt => "ACP adapter, first prompt on a session it created a round earlier",
            Self::AcpNewPrompt => "ACP adapter, `session/new` + first prompt",
        }
    }

    /// What the case is compared with: a follow-up with the CLI's own next turn, the rest with
    /// its first turn on a cleared process.
    fn floor(self) -> Case {
        if matches!(self, Self::LspFollowUp | Self::CliLive) {
            Self::CliLive
        } else {
            Self::CliCleared
        }
    }
}

#[derive(Default)]
struct Samples {
    first_text: Vec<Duration>,
    answer: Vec<Duration>,
    cpu: Vec<Duration>,
}

impl Samples {
    fn add(&mut self, (timing, cpu): (Timing, Duration)) {
        self.first_text.push(timing.first_text);
        self.answer.push(timing.answer);
        self.cpu.push(cpu);
    }
}

/// Requests sent at once in a burst: twice the default `maxConcurrent` (4).
const BURST: usize = 8;

/// One burst: when its 4th and last answers arrived, and the most CLIs that ran at once.
struct Burst {
    fourth: Duration,
    last: Duration,
    most_clis: usize,
}

/// `count` bursts of [`BURST`] analyze requests, each on a new server at default settings once
/// its tree is idle (one warm process, no conversation yet), with the server's CLI processes
/// counted throughout.
async fn bursts(workspace: &Path, home: &TestHome, api: &FakeApi, count: usize) -> Vec<Burst> {
    let mut measured = Vec::new();
    for _ in 0..count {
        let mut server = LspServer::start(workspace, home, api, json!({})).await;
        let root = server.pid();
        idle(&[root]).await;
        let done = Arc::new(AtomicBool::new(false));
        let watching = done.clone();
        let watcher = tokio::spawn(async move {
            let mut most = 0;
            while !watching.load(Ordering::Relaxed) {
                most = most.max(running_clis(root));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            most
        });
        let answers = server.burst(workspace, BURST).await;
        done.store(true, Ordering::Relaxed);
        let most_clis = watcher.await.unwrap();
        measured.push(Burst { fourth: answers[3], last: answers[BURST - 1], most_clis });
        server.stop().await;
    }
    measured
}

/// The CLI processes `server` runs now: its live children.
fn running_clis(server: u32) -> usize {
    all_processes().iter().filter(|process| process.ppid == server && !process.is_zombie()).count()
}

/// How many Messages API calls the fake API has answered.
fn api_calls(api: &FakeApi) -> usize {
    api.requests().iter().filter(|request| request.is_messages()).count()
}

/// The `p`-th percentile (nearest rank) of `values`.
fn percentile(values: &[Duration], p: f64) -> Duration {
    assert!(!values.is_empty(), "no samples");
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1e3)
}

fn load_average() -> String {
    let loadavg = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Run `runs` measured rounds (after one unmeasured) and return the Markdown section.
pub async fn compare(runs: usize) -> String {
    let load_at_start = load_average();
    let api = FakeApi::start(Script::from_fn(scripted_answer)).await;
    let scratch = tempfile::Builder::new().prefix("claude-lsp-speed-ws-").tempdir().unwrap();
    let workspace = scratch.path();
    fs::write(workspace.join("lib.rs"), LIB).unwrap();
    // Each peer keeps its state (sessions, settings) in a home of its own.
    let homes: Vec<TestHome> = (0..6).map(|_| TestHome::new()).collect();
    let mut cli = StreamJsonCli::spawn(
        &real_cli(),
        workspace,
        &api.cli_env(homes[0].path()),
        &["--include-partial-messages"],
    );
    let mut default_server = LspServer::start(workspace, &homes[1], &api, json!({})).await;
    let spawn_settings = json!({"warmPool": 0});
    let mut spawning_server = LspServer::start(workspace, &homes[2], &api, spawn_settings).await;
    let mut acp = AcpAdapter::start(workspace, &homes[3], &api).await;
    let roots = [cli.pid(), default_server.pid(), spawning_server.pid(), acp.pid()];
    let mut samples: Vec<Samples> = CASES.iter().map(|_| Samples::default()).collect();
    // A session the adapter created, waiting a round for its first prompt as claude-lsp's warm
    // process does.
    let mut acp_session = acp.new_session(workspace).await;
    // The first round is not measured: CLI discovery, the OS page cache, first conversations.
    for round in 0..=runs {
        let mut measured = Vec::new();
        measured.push(with_cpu(&roots, Some(cli.pid()), cli_turn(&mut cli, PROMPT)).await);
        cli.send_user("/clear").await;
        cli.read_until_result(WAIT).await;
        measured.push(with_cpu(&roots, Some(cli.pid()), cli_turn(&mut cli, PROMPT)).await);

        let server = Some(default_server.pid());
        let calls = api_calls(&api);
        let ((new, session), cpu) =
            with_cpu(&roots, server, default_server.analyze(workspace, None)).await;
        measured.push((new, cpu));
        let ((follow_up, _), cpu) =
            with_cpu(&roots, server, default_server.analyze(workspace, Some(&session))).await;
        measured.push((follow_up, cpu));
        // Each is one model call, as the floors' turns are: the comparison is of like with like.
        assert_eq!(api_calls(&api) - calls, 2, "a new conversation and its follow-up");
        let server = Some(spawning_server.pid());
        let ((spawned, _), cpu) =
            with_cpu(&roots, server, spawning_server.analyze(workspace, None)).await;
        measured.push((spawned, cpu));

        measured.push(with_cpu(&roots, None, claude_p(workspace, &homes[4], &api)).await);

        let adapter = Some(acp.pid());
        let prompt = acp.prompt(&acp_session, None);
        measured.push(with_cpu(&roots, adapter, prompt).await);
        acp.close(&acp_session).await;
        let new_and_prompt = async {
            let started = Instant::now();
            let session = acp.new_session(workspace).await;
            let timing = acp.prompt(&session, Some(started)).await;
            acp.close(&session).await;
            timing
        };
        measured.push(with_cpu(&roots, adapter, new_and_prompt).await);
        acp_session = acp.new_session(workspace).await;

        if round > 0 {
            for (case, sample) in samples.iter_mut().zip(measured) {
                case.add(sample);
            }
        }
    }
    idle(&roots).await;
    let memory = [
        ("the CLI driven directly (both floors)", cli.pid(), 2),
        ("claude-lsp, default settings (new conversation + follow-up)", default_server.pid(), 2),
        ("claude-lsp, `warmPool` 0", spawning_server.pid(), 1),
        ("ACP adapter (sessions closed after their prompt)", acp.pid(), 2),
    ]
    .map(|(label, root, per_round)| (label, per_round * (runs + 1), tree_memory(root)));
    let bursts = bursts(workspace, &homes[5], &api, runs.div_ceil(3)).await;
    let load_at_end = load_average();

    acp.rpc.child.terminate(Duration::from_secs(5)).await.unwrap();
    default_server.stop().await;
    spawning_server.stop().await;
    cli.close_stdin();
    cli.wait(WAIT).await;

    render(&samples, &memory, &bursts, runs, [&load_at_start, &load_at_end])
}

fn render(
    samples: &[Samples],
    memory: &[(&str, usize, (f64, f64))],
    bursts: &[Burst],
    runs: usize,
    load: [&str; 2],
) -> String {
    let of = |case: Case| &samples[CASES.iter().position(|c| *c == case).unwrap()];
    let p50 = |values: &[Duration]| percentile(values, 0.5);
    let ratio = |slow: Duration, fast: Duration| slow.as_secs_f64() / fast.as_secs_f64();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| case | first text p50 / p90 | answer p50 / p90 | first text ÷ its floor (p50) | CPU per request p50 / p90 |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (case, measured) in CASES.iter().zip(samples) {
        let floor = p50(&of(case.floor()).first_text);
        let _ = writeln!(
            out,
            "| {} | {} / {} | {} / {} | {:.2}× | {:.2} s / {:.2} s |",
            case.label(),
            ms(p50(&measured.first_text)),
            ms(percentile(&measured.first_text, 0.9)),
            ms(p50(&measured.answer)),
            ms(percentile(&measured.answer, 0.9)),
            ratio(p50(&measured.first_text), floor),
            p50(&measured.cpu).as_secs_f64(),
            percentile(&measured.cpu, 0.9).as_secs_f64(),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "| process tree after the run | requests | RSS | PSS |");
    let _ = writeln!(out, "|---|---|---|---|");
    for (label, requests, (rss, pss)) in memory {
        let _ = writeln!(out, "| {label} | {requests} | {rss:.0} MB | {pss:.0} MB |");
    }
    let _ = writeln!(out, "| `claude -p` | {} | exits after each answer | |", runs + 1);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| burst of {BURST} `claude/analyze` at once, a new server at default settings (`maxConcurrent` 4, `warmPool` 1) | 4th answer | {BURST}th answer | {BURST}th ÷ 4th | most CLIs at once |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (n, burst) in bursts.iter().enumerate() {
        let _ = writeln!(
            out,
            "| burst {} | {} | {} | {:.2}× | {} |",
            n + 1,
            ms(burst.fourth),
            ms(burst.last),
            ratio(burst.last, burst.fourth),
            burst.most_clis
        );
    }
    let _ = writeln!(out);
    let mut burst_ratios: Vec<f64> =
        bursts.iter().map(|burst| ratio(burst.last, burst.fourth)).collect();
    burst_ratios.sort_by(f64::total_cmp);
    let most_clis = bursts.iter().map(|burst| burst.most_clis).max().unwrap_or(0);
    let first = |case: Case| p50(&of(case).first_text);
    let new = first(Case::LspNew);
    let _ = writeln!(
        out,
        "Issue 16's goals as this run measured them (p50): new conversation ÷ cleared floor {:.2}× (goal ≤ 1.15×); ACP first prompt ÷ new conversation {:.1}× (goal ≥ 3×); `claude -p` ÷ new conversation {:.1}× (goal ≥ 8×); follow-up ÷ live floor {:.2}× (goal ≤ 1.1×); CPU per new conversation {:.2} s (goal ≤ 0.35 s); burst of {BURST}: last ÷ 4th answer {:.2}× (median of the bursts; goal ≤ 2.2×), most CLIs at once {most_clis} (goal ≤ `maxConcurrent` + `warmPool` = 5).",
        ratio(new, first(Case::CliCleared)),
        ratio(first(Case::AcpPrompt), new),
        ratio(first(Case::ClaudeP), new),
        ratio(first(Case::LspFollowUp), first(Case::CliLive)),
        p50(&of(Case::LspNew).cpu).as_secs_f64(),
        burst_ratios[burst_ratios.len() / 2],
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Method: {runs} measured rounds after one unmeasured; each round runs every case once, in the order of the table, each request only once every process tree is idle (at most one clock tick of CPU in 0.5 s). Fake Anthropic API (tests/e2e/support/fake_api.rs, scripted one-turn answer) on loopback; pinned CLI {}; ACP adapter @agentclientprotocol/claude-agent-acp {ACP_ADAPTER_VERSION} on node, pointed at the same CLI (`CLAUDE_CODE_EXECUTABLE`). First text: claude-lsp's first `$/progress` report with model text, the CLI's first streamed text delta, the adapter's first `agent_message_chunk`. CPU per request: user + sys of the case's process tree, reaped children included (/proc/<pid>/stat utime, stime, cutime, cstime), from just before the request until every tree is idle again; for `claude -p` the bench's reaped-children time. Memory: RSS and PSS summed over the tree (/proc/<pid>/smaps_rollup). Load average (1, 5, 15 min) at start: {}; at end: {}.",
        expected_cli_version(),
        load[0],
        load[1]
    );
    out
}
