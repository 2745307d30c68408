//! One live stream-json CLI process: turns, control requests both ways, and a bounded shutdown.
//!
//! Three tasks per process:
//! - a writer that owns stdin and writes lines in the order they were queued (the only writer,
//!   so lines never interleave);
//! - a reader that owns stdout and routes each message: answers to host requests go to whoever
//!   waits for them, CLI requests get their own handler task (so a slow permission prompt never
//!   blocks an MCP call), cancels abort those tasks, and the rest becomes [`RunEvent`]s of the
//!   current [`Turn`];
//! - a supervisor that owns the child, reports its exit, and signals its process group on request.
//!   Dropping the session closes the supervisor's channel, which kills the group.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::base::process::{ChildProcess, ProcessSpec, StderrTail, Stop};

use super::args::{CliOptions, PermissionMode};
use super::control::{ControlHandler, InitializeRequest};
use super::errors::{ClaudeError, classify_exit, classify_result};
use super::lines::{LineError, MessageReader};
use super::protocol::{
    self, ContentBlock, ControlRequestKind, Delta, Message, ResultMessage, ResultSubtype,
    StreamEventKind, SystemMessage, UserContent,
};
use crate::base::secrets::{is_secret_name, redact_with};

/// Each rung of the shutdown ladder waits this long.
const SHUTDOWN_STEP: Duration = Duration::from_secs(2);
/// How long a host → CLI control request may take (interrupt answers in milliseconds).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// Writing one line can block only while the CLI does not read its stdin.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// After the process exits, output still in the pipe is read for this long.
const EXIT_DRAIN: Duration = Duration::from_secs(2);
/// After stdout closes, the exit status is awaited this long.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Clone)]
pub struct SessionConfig {
    pub binary: PathBuf,
    pub options: CliOptions,
    pub cwd: PathBuf,
    /// Added to the inherited environment (e.g. `ANTHROPIC_BASE_URL`, `CLAUDE_CODE_MAX_RETRIES`).
    pub env: Vec<(String, String)>,
    pub handler: Arc<dyn ControlHandler>,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Environment values may be API keys: show the names only.
        let env: Vec<&str> = self.env.iter().map(|(key, _)| key.as_str()).collect();
        f.debug_struct("SessionConfig")
            .field("binary", &self.binary)
            .field("options", &self.options)
            .field("cwd", &self.cwd)
            .field("env", &env)
            .finish_non_exhaustive()
    }
}

/// Limits of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// The whole turn.
    pub timeout: Duration,
    /// No output (and no permission question pending) for this long.
    pub idle_timeout: Option<Duration>,
}

/// Token counts of a turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_creation_tokens: u64,
}

impl Usage {
    /// Each count the larger of the two: the later report of one API response never counts less.
    pub fn max_each(&self, other: &Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.max(other.input_tokens),
            output_tokens: self.output_tokens.max(other.output_tokens),
            cache_read_tokens: self.cache_read_tokens.max(other.cache_read_tokens),
            cache_creation_tokens: self.cache_creation_tokens.max(other.cache_creation_tokens),
        }
    }

    /// Add another API response's counts.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_creation_tokens += other.cache_creation_tokens;
    }
}

impl From<&protocol::ResultUsage> for Usage {
    fn from(usage: &protocol::ResultUsage) -> Self {
        Usage {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_read_tokens: usage.cache_read_input_tokens,
            cache_creation_tokens: usage.cache_creation_input_tokens,
        }
    }
}

/// An API `usage` object (a missing or odd count is 0).
fn usage_of(value: &Value) -> Usage {
    Usage::from(&protocol::ResultUsage::deserialize(value).unwrap_or_default())
}

/// A finished turn.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub session_id: String,
    /// The final answer (`result.result`; for structured output, its JSON text).
    pub text: String,
    pub structured_output: Option<Value>,
    pub usage: Usage,
    pub cost_usd: f64,
    pub num_turns: u32,
    pub duration_ms: u64,
    pub model: Option<String>,
    /// `[{tool_name, tool_use_id, tool_input}]` for every denied tool call.
    pub permission_denials: Vec<Value>,
    /// The whole `result` line.
    pub raw: Value,
}

/// What happens during a turn, in order. The last event is always `Finished`.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    Init {
        session_id: String,
        model: Option<String>,
        cli_version: Option<String>,
    },
    /// A piece of answer text (needs `include_partial_messages`).
    TextDelta(String),
    ThinkingDelta(String),
    /// A complete text block.
    Text(String),
    Thinking(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// `structured` is the tool's structured result (an Edit's patch, a Read's file, …).
    ToolResult {
        tool_use_id: String,
        content: String,
        is_error: bool,
        structured: Option<Value>,
    },
    ApiRetry {
        attempt: u32,
        max_retries: u32,
        delay_ms: u64,
        status: Option<u16>,
        error: Option<String>,
    },
    /// Background task progress (`task_started`, `task_notification`, …).
    Task {
        subtype: String,
        description: Option<String>,
    },
    /// What one API response of the turn used, as far as the stream told so far: sent at its
    /// start (input and cache tokens) and again at its end (the output tokens). The last figures
    /// for a `message_id` count; the turn's `result` has the totals.
    ApiUsage {
        message_id: String,
        model: Option<String>,
        usage: Usage,
    },
    /// A message of a kind this driver does not model, raw.
    Other(Value),
    /// The `result` of a turn that failed (just before its `Finished(Err)`): what the process
    /// had spent by then, which a failed turn costs too.
    FailedResult(Box<RunResult>),
    Finished(Result<RunResult, ClaudeError>),
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ExitInfo {
    code: Option<i32>,
}

enum WriteCommand {
    Line {
        bytes: Vec<u8>,
        written: Option<oneshot::Sender<io::Result<()>>>,
    },
    /// Close stdin: the CLI finishes its turn, then exits.
    Close,
}

type Pending = oneshot::Sender<Result<Value, String>>;

/// State shared by the session handle and its tasks.
struct Shared {
    pid: u32,
    stderr: StderrTail,
    /// Secret values from the child's environment, redacted from every error text.
    secrets: Vec<String>,
    state: Mutex<State>,
    next_request: AtomicU64,
    next_turn: AtomicU64,
    shutting_down: AtomicBool,
    /// Set by the reader when stdout ends: the error every later call gets.
    closed: watch::Sender<Option<ClaudeError>>,
    exit: watch::Receiver<Option<ExitInfo>>,
    /// True while a turn runs.
    busy: watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    turn: Option<TurnTracker>,
    pending: HashMap<String, Pending>,
    handlers: HashMap<String, AbortHandle>,
    session_id: Option<String>,
    cli_version: Option<String>,
    /// A failure the CLI reported before any turn ran (an unknown `--resume` id).
    early_failure: Option<ClaudeError>,
    last_output: Option<Instant>,
}

impl Shared {
    fn closed_error(&self) -> Option<ClaudeError> {
        self.closed.borrow().clone()
    }

    fn redact(&self, text: &str) -> String {
        redact_with(text, &self.secrets).into_owned()
    }
}

/// One live `claude -p --input-format stream-json` process.
pub struct ClaudeSession {
    shared: Arc<Shared>,
    writer: mpsc::UnboundedSender<WriteCommand>,
    /// Dropping this makes the supervisor kill the process group.
    signals: mpsc::UnboundedSender<Stop>,
}

impl std::fmt::Debug for ClaudeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaudeSession").field("pid", &self.shared.pid).finish_non_exhaustive()
    }
}

impl ClaudeSession {
    /// Start the CLI. Nothing is sent yet; the CLI writes nothing until the first line arrives.
    pub async fn spawn(config: SessionConfig) -> Result<Self, ClaudeError> {
        let SessionConfig { binary, mut options, cwd, env, handler } = config;
        // A handler is always there to answer, so ask it instead of denying silently.
        options.permission_prompt_tool_stdio = true;
        options.validate()?;
        if !cwd.is_dir() {
            return Err(ClaudeError::InvalidOptions {
                message: format!("the working directory {} does not exist", cwd.display()),
            });
        }
        let secrets: Vec<String> = env
            .iter()
            .filter(|(key, _)| is_secret_name(key))
            .map(|(_, value)| value.clone())
            .collect();
        // The agent's git must find the repository of its working directory (the mirror).
        let spec = crate::base::git::without_repository_overrides(ProcessSpec::new(&binary, &cwd))
            .args(options.to_args())
            // Older CLIs refuse to start inside another Claude Code session.
            .env_remove("CLAUDECODE")
            // Node flags meant for the editor must not reach the CLI.
            .env_remove("NODE_OPTIONS")
            .env("CLAUDE_CODE_ENTRYPOINT", "sdk-rust-claude-lsp")
            .envs(env.into_iter().filter(|(key, _)| key != "CLAUDECODE"))
            .piped_stdin();
        let mut child = spec.spawn().map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => ClaudeError::CliNotFound {
                searched: vec![format!("{} (not found)", binary.display())],
            },
            _ => ClaudeError::Io { message: redact_with(&err.to_string(), &secrets).into_owned() },
        })?;
        let (Some(stdin), Some(stdout)) = (child.take_stdin(), child.take_stdout()) else {
            return Err(ClaudeError::Io {
                message: "the CLI's stdin or stdout is not piped".into(),
            });
        };
        let pid = child.pid();
        tracing::debug!(pid, binary = %binary.display(), cwd = %cwd.display(), "started the Claude Code CLI");

        let (exit_tx, exit_rx) = watch::channel(None);
        let (signals, signal_rx) = mpsc::unbounded_channel();
        let (writer, write_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            pid,
            stderr: child.stderr_handle(),
            secrets,
            state: Mutex::new(State::default()),
            next_request: AtomicU64::new(1),
            next_turn: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            closed: watch::channel(None).0,
            exit: exit_rx,
            busy: watch::channel(false).0,
        });
        tokio::spawn(supervise(child, signal_rx, exit_tx));
        tokio::spawn(write_lines(stdin, write_rx));
        tokio::spawn(read_messages(shared.clone(), stdout, writer.clone(), handler));
        Ok(Self { shared, writer, signals })
    }

    /// Send `initialize` (hooks, SDK MCP servers, schema, prompts) and return the CLI's answer.
    pub async fn initialize(
        &self,
        request: InitializeRequest,
        timeout: Duration,
    ) -> Result<Value, ClaudeError> {
        request.validate()?;
        self.control(request.to_request(), timeout).await
    }

    /// Start a turn: write one user line. The turn's events arrive on the returned [`Turn`].
    pub async fn send(&self, prompt: &str) -> Result<Turn, ClaudeError> {
        let turn_id = self.shared.next_turn.fetch_add(1, Ordering::Relaxed);
        let events = {
            let mut state = self.shared.state.lock();
            if let Some(err) = state.early_failure.clone().or_else(|| self.shared.closed_error()) {
                return Err(err);
            }
            if state.turn.is_some() {
                return Err(ClaudeError::Busy);
            }
            let (tx, rx) = mpsc::unbounded_channel();
            state.turn = Some(TurnTracker::new(turn_id, tx, state.session_id.clone()));
            rx
        };
        self.shared.busy.send_replace(true);
        if let Err(err) = self.write(protocol::user_message(prompt)).await {
            // The turn never started; unless the reader already ended it, take it back.
            let mut state = self.shared.state.lock();
            if state.turn.as_ref().is_some_and(|turn| turn.id == turn_id) {
                state.turn = None;
                self.shared.busy.send_replace(false);
            }
            return Err(err);
        }
        Ok(Turn { events, finished: None })
    }

    /// Stop the running turn. It ends with `Finished(Err(Cancelled))`; the session stays usable.
    pub async fn interrupt(&self) -> Result<(), ClaudeError> {
        if let Some(turn) = self.shared.state.lock().turn.as_mut() {
            turn.interrupted = true;
        }
        self.control(json!({"subtype": "interrupt"}), CONTROL_TIMEOUT).await.map(drop)
    }

    /// Start a new conversation in this process (the `/clear` command, answered without an API
    /// call): the next turn sees none of the earlier ones and gets a new session id. Newer CLIs
    /// also start their cost totals (and so `--max-budget-usd`) again from zero; 2.1.197 keeps
    /// them. The result's totals tell which.
    pub async fn clear(&self, timeout: Duration) -> Result<RunResult, ClaudeError> {
        let limits = RunLimits { timeout, idle_timeout: None };
        run_turn(self, "/clear", limits, &CancellationToken::new(), &mut |_| {}).await
    }

    /// Have the CLI build what its next turn sends (system prompt, tool definitions, the
    /// workspace's git context) ahead of it: the `get_context_usage` control request, answered
    /// without an API call. A warm process then starts its first turn about 10 ms sooner.
    pub async fn prepare_next_turn(&self, timeout: Duration) -> Result<(), ClaudeError> {
        self.control(json!({"subtype": "get_context_usage"}), timeout).await.map(drop)
    }

    /// Switch the model for the next turns; `None` returns to the default.
    pub async fn set_model(&self, model: Option<&str>) -> Result<(), ClaudeError> {
        let mut request = json!({"subtype": "set_model"});
        if let (Some(model), Some(map)) = (model, request.as_object_mut()) {
            map.insert("model".into(), model.into());
        }
        self.control(request, CONTROL_TIMEOUT).await.map(drop)
    }

    pub async fn set_permission_mode(&self, mode: PermissionMode) -> Result<(), ClaudeError> {
        let request = json!({"subtype": "set_permission_mode", "mode": mode.as_str()});
        self.control(request, CONTROL_TIMEOUT).await.map(drop)
    }

    /// End the process: interrupt a running turn and wait for its result, close stdin, wait,
    /// SIGTERM the group, wait, SIGKILL. Every step is bounded; the whole ladder takes at most
    /// about ten seconds.
    pub async fn shutdown(self) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        // A turn that was already interrupted had its chance to end; do not wait twice.
        let interrupted =
            self.shared.state.lock().turn.as_ref().is_some_and(|turn| turn.interrupted);
        if self.is_busy() && self.is_alive() && !interrupted {
            if let Ok(Ok(())) = tokio::time::timeout(SHUTDOWN_STEP, self.interrupt()).await {
                self.wait_idle(SHUTDOWN_STEP).await;
            }
        }
        let _ = self.writer.send(WriteCommand::Close);
        if self.wait_exit(SHUTDOWN_STEP).await {
            return;
        }
        tracing::debug!(
            pid = self.shared.pid,
            "the CLI did not exit after stdin closed; sending SIGTERM"
        );
        let _ = self.signals.send(Stop::Terminate);
        if self.wait_exit(SHUTDOWN_STEP).await {
            return;
        }
        tracing::debug!(pid = self.shared.pid, "the CLI ignored SIGTERM; sending SIGKILL");
        let _ = self.signals.send(Stop::Kill);
        self.wait_exit(SHUTDOWN_STEP).await;
    }

    pub fn pid(&self) -> u32 {
        self.shared.pid
    }

    pub fn is_alive(&self) -> bool {
        self.shared.exit.borrow().is_none()
    }

    /// True while a turn runs.
    pub fn is_busy(&self) -> bool {
        *self.shared.busy.borrow()
    }

    /// The session id from the latest `system/init`.
    pub fn session_id(&self) -> Option<String> {
        self.shared.state.lock().session_id.clone()
    }

    /// The CLI version from the latest `system/init`.
    pub fn cli_version(&self) -> Option<String> {
        self.shared.state.lock().cli_version.clone()
    }

    /// The last part of the CLI's stderr, secrets redacted.
    pub fn stderr_tail(&self) -> String {
        self.shared.redact(&self.shared.stderr.text())
    }

    /// Send a control request and wait for its answer.
    async fn control(&self, request: Value, timeout: Duration) -> Result<Value, ClaudeError> {
        let subtype = request.get("subtype").and_then(Value::as_str).unwrap_or("?").to_owned();
        let n = self.shared.next_request.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("req_{n}_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.shared.state.lock();
            if let Some(err) = self.shared.closed_error() {
                return Err(err);
            }
            state.pending.insert(request_id.clone(), tx);
        }
        if let Err(err) = self.write(protocol::control_request(&request_id, request)).await {
            self.shared.state.lock().pending.remove(&request_id);
            return Err(err);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(message))) => Err(ClaudeError::Protocol {
                message: format!(
                    "Claude Code rejected the {subtype} request: {}",
                    self.shared.redact(&message)
                ),
            }),
            Ok(Err(_)) => {
                Err(self.shared.closed_error().unwrap_or_else(|| ClaudeError::Protocol {
                    message: format!("the session ended before answering the {subtype} request"),
                }))
            }
            Err(_) => {
                self.shared.state.lock().pending.remove(&request_id);
                Err(ClaudeError::Timeout { after: timeout, idle: false })
            }
        }
    }

    /// Queue one line and wait until it is written.
    async fn write(&self, message: Value) -> Result<(), ClaudeError> {
        let (written, done) = oneshot::channel();
        let command =
            WriteCommand::Line { bytes: protocol::encode_line(&message), written: Some(written) };
        if self.writer.send(command).is_err() {
            return Err(self.input_closed().await);
        }
        match tokio::time::timeout(WRITE_TIMEOUT, done).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Err(_) => Err(ClaudeError::Timeout { after: WRITE_TIMEOUT, idle: true }),
            Ok(Ok(Err(_)) | Err(_)) => Err(self.input_closed().await),
        }
    }

    /// The error for a write that failed: most likely the process died, and its exit explains why
    /// better than a broken pipe does.
    async fn input_closed(&self) -> ClaudeError {
        self.wait_closed(EXIT_WAIT + EXIT_DRAIN).await.unwrap_or_else(|| ClaudeError::Io {
            message: "cannot write to the Claude Code process: its input is closed".into(),
        })
    }

    async fn wait_closed(&self, timeout: Duration) -> Option<ClaudeError> {
        let mut closed = self.shared.closed.subscribe();
        let waited = tokio::time::timeout(timeout, closed.wait_for(Option::is_some)).await;
        waited.ok().and_then(Result::ok).and_then(|err| err.clone())
    }

    async fn wait_idle(&self, timeout: Duration) {
        let mut busy = self.shared.busy.subscribe();
        let _ = tokio::time::timeout(timeout, busy.wait_for(|busy| !busy)).await;
    }

    /// True once the process has exited (within `timeout`).
    async fn wait_exit(&self, timeout: Duration) -> bool {
        let mut exit = self.shared.exit.clone();
        matches!(tokio::time::timeout(timeout, exit.wait_for(Option::is_some)).await, Ok(Ok(_)))
    }

    /// True if the CLI wrote something or a control request is being answered within `window`.
    fn active_within(&self, window: Duration) -> bool {
        let state = self.shared.state.lock();
        !state.handlers.is_empty() || state.last_output.is_some_and(|at| at.elapsed() < window)
    }
}

/// The events of one turn.
#[derive(Debug)]
pub struct Turn {
    events: mpsc::UnboundedReceiver<RunEvent>,
    finished: Option<Result<RunResult, ClaudeError>>,
}

impl Turn {
    /// The next event; `Finished` is the last one, `None` after it.
    pub async fn next(&mut self) -> Option<RunEvent> {
        if self.finished.is_some() {
            return None;
        }
        let event = self.events.recv().await.unwrap_or_else(|| {
            RunEvent::Finished(Err(ClaudeError::Protocol {
                message: "the session ended without finishing the turn".into(),
            }))
        });
        if let RunEvent::Finished(result) = &event {
            self.finished = Some(result.clone());
        }
        Some(event)
    }

    /// Wait for the end of the turn, dropping the remaining events.
    pub async fn finish(mut self) -> Result<RunResult, ClaudeError> {
        self.drain().await
    }

    async fn drain(&mut self) -> Result<RunResult, ClaudeError> {
        while self.next().await.is_some() {}
        self.finished.clone().unwrap_or_else(|| {
            Err(ClaudeError::Protocol { message: "the turn ended without a result".into() })
        })
    }
}

/// Follows one turn: turns CLI messages into [`RunEvent`]s and the `result` into a [`RunResult`].
struct TurnTracker {
    id: u64,
    events: mpsc::UnboundedSender<RunEvent>,
    /// The host asked to interrupt: an execution error is then a cancellation.
    interrupted: bool,
    synthetic_error: Option<String>,
    last_retry_delay: Option<Duration>,
    texts: Vec<String>,
    model: Option<String>,
    session_id: Option<String>,
    /// The API response being streamed: its id, model and usage from `message_start`.
    streaming: Option<(String, Option<String>, Usage)>,
}

impl TurnTracker {
    fn new(id: u64, events: mpsc::UnboundedSender<RunEvent>, session_id: Option<String>) -> Self {
        Self {
            id,
            events,
            interrupted: false,
            synthetic_error: None,
            last_retry_delay: None,
            texts: Vec::new(),
            model: None,
            session_id,
            streaming: None,
        }
    }

    fn emit(&self, event: RunEvent) {
        // The caller may have dropped its Turn; the turn still runs to its result.
        let _ = self.events.send(event);
    }

    /// Everything but `result` and control traffic.
    fn on_message(&mut self, message: Message) {
        match message {
            Message::System(SystemMessage::Init(init)) => {
                self.model = init.model.clone();
                self.session_id = Some(init.session_id.clone());
                self.emit(RunEvent::Init {
                    session_id: init.session_id,
                    model: init.model,
                    cli_version: init.claude_code_version,
                });
            }
            Message::System(SystemMessage::ApiRetry(retry)) => {
                let delay_ms = retry.retry_delay_ms.max(0.0).round() as u64;
                self.last_retry_delay = Some(Duration::from_millis(delay_ms));
                self.emit(RunEvent::ApiRetry {
                    attempt: retry.attempt,
                    max_retries: retry.max_retries,
                    delay_ms,
                    status: retry.error_status,
                    error: retry.error,
                });
            }
            Message::System(SystemMessage::Task(task)) => {
                self.emit(RunEvent::Task { subtype: task.subtype, description: task.description });
            }
            Message::System(SystemMessage::Other { raw, .. }) | Message::Unknown(raw) => {
                self.emit(RunEvent::Other(raw));
            }
            Message::System(SystemMessage::Status(_) | SystemMessage::CompactBoundary(_)) => {}
            Message::Assistant(assistant) => {
                if assistant.error.is_some() || assistant.is_synthetic() {
                    // The CLI's own report of an API failure: it becomes the turn's error.
                    self.synthetic_error = assistant.error.or(Some("unknown".to_owned()));
                    return;
                }
                let top_level = assistant.parent_tool_use_id.is_none();
                for block in assistant.message.content {
                    match block {
                        ContentBlock::Text { text } => {
                            if top_level {
                                self.texts.push(text.clone());
                            }
                            self.emit(RunEvent::Text(text));
                        }
                        ContentBlock::Thinking { thinking, .. } => {
                            self.emit(RunEvent::Thinking(thinking))
                        }
                        ContentBlock::ToolUse { id, name, input } => {
                            self.emit(RunEvent::ToolUse { id, name, input });
                        }
                        ContentBlock::ToolResult { .. } | ContentBlock::Other(_) => {}
                    }
                }
            }
            Message::User(user) => {
                if user.is_replay {
                    return;
                }
                let UserContent::Blocks(blocks) = user.message.content else { return };
                let results: Vec<_> = blocks
                    .into_iter()
                    .filter_map(|block| match block {
                        ContentBlock::ToolResult { tool_use_id, content, is_error } => {
                            Some((tool_use_id, content, is_error))
                        }
                        _ => None,
                    })
                    .collect();
                // The structured payload belongs to the line's single tool result.
                let mut structured = if results.len() == 1 { user.tool_use_result } else { None };
                for (tool_use_id, content, is_error) in results {
                    self.emit(RunEvent::ToolResult {
                        tool_use_id,
                        content: protocol::tool_result_text(&content),
                        is_error,
                        structured: structured.take(),
                    });
                }
            }
            Message::StreamEvent(event) => match event.event {
                StreamEventKind::ContentBlockDelta { delta: Delta::Text(text), .. } => {
                    self.emit(RunEvent::TextDelta(text));
                }
                StreamEventKind::ContentBlockDelta { delta: Delta::Thinking(thinking), .. } => {
                    self.emit(RunEvent::ThinkingDelta(thinking));
                }
                StreamEventKind::MessageStart { message } => {
                    let Some(id) = message.get("id").and_then(Value::as_str) else { return };
                    let model = message.get("model").and_then(Value::as_str).map(str::to_owned);
                    let usage = message.get("usage").map(usage_of).unwrap_or_default();
                    self.streaming = Some((id.to_owned(), model, usage));
                    self.emit_streaming_usage();
                }
                StreamEventKind::MessageDelta { usage: Some(delta), .. } => {
                    if let Some((_, _, usage)) = &mut self.streaming {
                        *usage = usage.max_each(&usage_of(&delta));
                        self.emit_streaming_usage();
                    }
                }
                StreamEventKind::Other(raw) => self.emit(RunEvent::Other(raw)),
                _ => {}
            },
            Message::Result(_)
            | Message::ControlRequest(_)
            | Message::ControlResponse(_)
            | Message::ControlCancelRequest { .. } => {}
        }
    }

    fn emit_streaming_usage(&self) {
        if let Some((message_id, model, usage)) = self.streaming.clone() {
            self.emit(RunEvent::ApiUsage { message_id, model, usage });
        }
    }

    /// The turn's outcome from its `result` line.
    fn outcome(&self, result: ResultMessage) -> Result<RunResult, ClaudeError> {
        let cancelled_by_us =
            self.interrupted && result.subtype_kind() == ResultSubtype::ErrorDuringExecution;
        let Some(err) = classify_result(&result, self.synthetic_error.as_deref()) else {
            return Ok(self.run_result(result));
        };
        self.emit(RunEvent::FailedResult(Box::new(self.run_result(result))));
        Err(match err {
            _ if cancelled_by_us => ClaudeError::Cancelled,
            ClaudeError::RateLimited { retry_after: None, message } => {
                ClaudeError::RateLimited { retry_after: self.last_retry_delay, message }
            }
            err => err,
        })
    }

    /// The `result` line's figures, whatever the turn's outcome.
    fn run_result(&self, result: ResultMessage) -> RunResult {
        let usage = result.usage.clone().unwrap_or_default();
        let model = self.model.clone().or_else(|| {
            result.model_usage.as_ref().and_then(|models| models.keys().next().cloned())
        });
        let session_id = if result.session_id.is_empty() {
            self.session_id.clone().unwrap_or_default()
        } else {
            result.session_id.clone()
        };
        RunResult {
            session_id,
            text: result.result.clone().unwrap_or_else(|| self.texts.join("\n\n")),
            structured_output: result.structured_output.clone(),
            usage: Usage::from(&usage),
            cost_usd: result.total_cost_usd,
            num_turns: result.num_turns,
            duration_ms: result.duration_ms,
            model,
            permission_denials: result.permission_denials.clone(),
            raw: result.raw,
        }
    }
}

/// Owns the child: reports its exit, forwards signals to its group, and kills the group when the
/// session is dropped.
async fn supervise(
    mut child: ChildProcess,
    mut signals: mpsc::UnboundedReceiver<Stop>,
    exit: watch::Sender<Option<ExitInfo>>,
) {
    loop {
        tokio::select! {
            status = child.wait() => {
                let code = status.ok().and_then(|status| status.code());
                tracing::debug!(pid = child.pid(), ?code, "the CLI exited");
                // Helpers left in its process group go with it.
                child.stop_group(Stop::Kill);
                exit.send_replace(Some(ExitInfo { code }));
                return;
            }
            signal = signals.recv() => match signal {
                Some(stop) => child.stop_group(stop),
                // The session was dropped: dropping `child` kills the group.
                None => return,
            },
        }
    }
}

/// The only writer of the CLI's stdin.
async fn write_lines(mut stdin: ChildStdin, mut commands: mpsc::UnboundedReceiver<WriteCommand>) {
    while let Some(command) = commands.recv().await {
        match command {
            WriteCommand::Line { bytes, written } => {
                let result = async {
                    stdin.write_all(&bytes).await?;
                    stdin.flush().await
                }
                .await;
                let failed = result.is_err();
                if let Some(written) = written {
                    let _ = written.send(result);
                }
                if failed {
                    // The pipe is broken; later commands fail when they find the channel closed.
                    return;
                }
            }
            WriteCommand::Close => return,
        }
    }
}

/// Reads and routes stdout until it ends, then ends the turn and every pending request.
async fn read_messages(
    shared: Arc<Shared>,
    stdout: ChildStdout,
    writer: mpsc::UnboundedSender<WriteCommand>,
    handler: Arc<dyn ControlHandler>,
) {
    let mut reader = MessageReader::new(stdout);
    let mut exit = shared.exit.clone();
    let mut drain_deadline: Option<Instant> = None;
    let mut cut_off: Option<usize> = None;
    let mut read_error: Option<String> = None;
    loop {
        let drain = async {
            match drain_deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            item = reader.next_message() => match item {
                Some(Ok(message)) => route(&shared, message, &writer, &handler),
                Some(Err(LineError::EofMidLine { partial })) => cut_off = Some(partial.len()),
                Some(Err(LineError::Io(err))) => read_error = Some(err.to_string()),
                None => break,
            },
            // A grandchild may hold stdout open after the CLI exits: read what is left, then stop.
            Ok(_) = exit.wait_for(Option::is_some), if drain_deadline.is_none() => {
                drain_deadline = Some(Instant::now() + EXIT_DRAIN);
            }
            () = drain => break,
        }
    }
    let code = {
        let mut exit = shared.exit.clone();
        match tokio::time::timeout(EXIT_WAIT, exit.wait_for(Option::is_some)).await {
            Ok(Ok(info)) => info.and_then(|info| info.code),
            _ => None,
        }
    };
    let error =
        end_of_output_error(&shared, code, cut_off, read_error, reader.diagnostics().text());
    tracing::debug!(pid = shared.pid, error = %error, "the CLI's output ended");
    let (turn, pending, handlers) = {
        let mut state = shared.state.lock();
        // Set under the lock that `send` and `control` check it under: nothing new can start.
        shared.closed.send_replace(Some(error.clone()));
        (state.turn.take(), std::mem::take(&mut state.pending), std::mem::take(&mut state.handlers))
    };
    if let Some(turn) = turn {
        turn.emit(RunEvent::Finished(Err(error)));
    }
    shared.busy.send_replace(false);
    // Dropping the senders wakes every waiter with "closed".
    drop(pending);
    for task in handlers.into_values() {
        task.abort();
    }
}

/// Why the output ended with no more results to come.
fn end_of_output_error(
    shared: &Shared,
    code: Option<i32>,
    cut_off: Option<usize>,
    read_error: Option<String>,
    diagnostics: String,
) -> ClaudeError {
    if shared.shutting_down.load(Ordering::SeqCst) {
        return ClaudeError::Cancelled;
    }
    let stderr = shared.redact(&shared.stderr.text());
    if let Some(message) = read_error {
        return ClaudeError::Io { message: format!("cannot read Claude Code's output: {message}") };
    }
    if code == Some(0) {
        // A clean exit with a turn still open: the CLI broke off its own output.
        let how = match cut_off {
            Some(bytes) => {
                format!("its output ended in the middle of a line ({bytes} bytes cut off)")
            }
            None => "it wrote no result".to_owned(),
        };
        let mut message = format!("Claude Code exited without finishing the turn: {how}");
        if !diagnostics.is_empty() {
            message.push_str(&format!("; unreadable output: {}", shared.redact(&diagnostics)));
        }
        return ClaudeError::Protocol { message };
    }
    classify_exit(code, &stderr)
}

/// Route one message from the CLI.
fn route(
    shared: &Arc<Shared>,
    message: Message,
    writer: &mpsc::UnboundedSender<WriteCommand>,
    handler: &Arc<dyn ControlHandler>,
) {
    let mut state = shared.state.lock();
    state.last_output = Some(Instant::now());
    match message {
        Message::ControlResponse(response) => match state.pending.remove(&response.request_id) {
            Some(waiter) => {
                let _ = waiter.send(response.outcome);
            }
            None => {
                tracing::debug!(request_id = %response.request_id, "answer to an unknown or abandoned request")
            }
        },
        Message::ControlRequest(request) => {
            let request_id = request.request_id.clone();
            let task = tokio::spawn(answer_control_request(
                shared.clone(),
                request.request_id,
                request.request,
                handler.clone(),
                writer.clone(),
            ));
            // Inserted under the lock the task needs to remove itself, so it cannot finish first.
            state.handlers.insert(request_id, task.abort_handle());
        }
        Message::ControlCancelRequest { request_id } => {
            if let Some(task) = state.handlers.remove(&request_id) {
                tracing::debug!(%request_id, "the CLI withdrew its request");
                task.abort();
            }
        }
        Message::System(SystemMessage::Init(init)) => {
            state.session_id = Some(init.session_id.clone());
            state.cli_version = init.claude_code_version.clone();
            if let Some(turn) = state.turn.as_mut() {
                turn.on_message(Message::System(SystemMessage::Init(init)));
            }
        }
        Message::Result(result) => match state.turn.take() {
            Some(turn) => {
                let outcome = turn.outcome(result);
                if let Ok(result) = &outcome {
                    state.session_id = Some(result.session_id.clone());
                }
                turn.emit(RunEvent::Finished(outcome));
                shared.busy.send_replace(false);
            }
            None => {
                if let Some(err) = classify_result(&result, None) {
                    tracing::debug!(error = %err, "the CLI failed before any turn");
                    state.early_failure = Some(err);
                }
            }
        },
        message => match state.turn.as_mut() {
            Some(turn) => turn.on_message(message),
            None => tracing::trace!("ignoring output outside a turn"),
        },
    }
}

/// Answer one request from the CLI. Always answers (success or error), unless aborted by a
/// `control_cancel_request`, when nothing must be sent.
async fn answer_control_request(
    shared: Arc<Shared>,
    request_id: String,
    request: ControlRequestKind,
    handler: Arc<dyn ControlHandler>,
    writer: mpsc::UnboundedSender<WriteCommand>,
) {
    let answer = AssertUnwindSafe(handle_control_request(request, handler)).catch_unwind().await;
    let line = match answer {
        Ok(Ok(response)) => protocol::control_success(&request_id, response),
        Ok(Err(message)) => protocol::control_error(&request_id, &message),
        Err(_) => {
            tracing::error!(%request_id, "a control request handler panicked");
            protocol::control_error(&request_id, "the host failed to answer this request")
        }
    };
    shared.state.lock().handlers.remove(&request_id);
    let _ = writer.send(WriteCommand::Line { bytes: protocol::encode_line(&line), written: None });
}

async fn handle_control_request(
    request: ControlRequestKind,
    handler: Arc<dyn ControlHandler>,
) -> Result<Value, String> {
    match request {
        ControlRequestKind::CanUseTool(request) => {
            let input = request.input.clone();
            Ok(handler.can_use_tool(request).await.to_response(&input))
        }
        ControlRequestKind::HookCallback { callback_id, input, .. } => {
            Ok(handler.hook_callback(callback_id, input).await)
        }
        ControlRequestKind::McpMessage { server_name, message } => {
            // A notification gets an empty result: the CLI waits for an answer to every message.
            let reply = handler
                .mcp_message(server_name, message)
                .await
                .unwrap_or_else(|| json!({"jsonrpc": "2.0", "result": {}}));
            Ok(json!({"mcp_response": reply}))
        }
        ControlRequestKind::Other { subtype, .. } => {
            Err(format!("Unsupported control request subtype: {subtype}"))
        }
    }
}

/// Run one turn on a live session, streaming its events to `on_event`, within `limits`.
///
/// On cancellation or timeout the turn is interrupted and given a moment to end, so the session
/// can serve another turn; the returned error is `Cancelled` or `Timeout`.
pub async fn run_turn(
    session: &ClaudeSession,
    prompt: &str,
    limits: RunLimits,
    cancel: &CancellationToken,
    on_event: &mut (impl FnMut(&RunEvent) + Send),
) -> Result<RunResult, ClaudeError> {
    match run_turn_until(session, prompt, limits, cancel, on_event, |_| false).await? {
        TurnStep::Finished(result) => Ok(result),
        TurnStep::Answered(open) => open.finish(session, cancel, on_event).await,
    }
}

/// Where [`run_turn_until`] stopped.
#[derive(Debug)]
pub enum TurnStep {
    /// The turn ended with its `result`.
    Finished(RunResult),
    /// `answered` said the caller has what it needs; the turn goes on.
    Answered(OpenTurn),
}

/// [`run_turn`] that returns early, the turn still running, once `answered` accepts an event
/// (which `on_event` saw first). The caller then finishes it with [`OpenTurn::finish`], within
/// the same limits.
pub async fn run_turn_until(
    session: &ClaudeSession,
    prompt: &str,
    limits: RunLimits,
    cancel: &CancellationToken,
    on_event: &mut (impl FnMut(&RunEvent) + Send),
    answered: impl FnMut(&RunEvent) -> bool + Send,
) -> Result<TurnStep, ClaudeError> {
    if cancel.is_cancelled() {
        return Err(ClaudeError::Cancelled);
    }
    let turn = session.send(prompt).await?;
    let mut open = OpenTurn {
        turn,
        limits,
        deadline: Instant::now() + limits.timeout,
        idle_deadline: limits.idle_timeout.map(|idle| Instant::now() + idle),
    };
    match open.drive(session, cancel, on_event, answered).await {
        Some(result) => result.map(TurnStep::Finished),
        None => Ok(TurnStep::Answered(open)),
    }
}

/// A turn still running after [`run_turn_until`] returned, with its deadlines.
#[derive(Debug)]
pub struct OpenTurn {
    turn: Turn,
    limits: RunLimits,
    deadline: Instant,
    idle_deadline: Option<Instant>,
}

impl OpenTurn {
    /// Follow the turn to its `result`, as [`run_turn`] does.
    pub async fn finish(
        mut self,
        session: &ClaudeSession,
        cancel: &CancellationToken,
        on_event: &mut (impl FnMut(&RunEvent) + Send),
    ) -> Result<RunResult, ClaudeError> {
        let ended = self.drive(session, cancel, on_event, |_| false).await;
        ended.unwrap_or_else(|| {
            Err(ClaudeError::Protocol { message: "the turn stopped without a result".into() })
        })
    }

    /// Pass events to `on_event` until the turn ends (`Some`) or `answered` accepts one (`None`).
    async fn drive(
        &mut self,
        session: &ClaudeSession,
        cancel: &CancellationToken,
        on_event: &mut (impl FnMut(&RunEvent) + Send),
        mut answered: impl FnMut(&RunEvent) -> bool + Send,
    ) -> Option<Result<RunResult, ClaudeError>> {
        let limits = self.limits;
        let stopped = loop {
            let idle_deadline = self.idle_deadline;
            let idle = async {
                match idle_deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                () = cancel.cancelled() => break ClaudeError::Cancelled,
                () = tokio::time::sleep_until(self.deadline) => {
                    break ClaudeError::Timeout { after: limits.timeout, idle: false };
                }
                () = idle => {
                    let window = limits.idle_timeout.unwrap_or_default();
                    // Output that belongs to no event, or a permission question the user is
                    // still deciding, is not idleness.
                    if session.active_within(window) {
                        self.idle_deadline = Some(Instant::now() + window);
                        continue;
                    }
                    break ClaudeError::Timeout { after: window, idle: true };
                }
                event = self.turn.next() => match event {
                    Some(RunEvent::Finished(result)) => {
                        on_event(&RunEvent::Finished(result.clone()));
                        return Some(result);
                    }
                    Some(event) => {
                        self.idle_deadline = limits.idle_timeout.map(|idle| Instant::now() + idle);
                        on_event(&event);
                        if answered(&event) {
                            return None;
                        }
                    }
                    None => break ClaudeError::Protocol { message: "the turn ended twice".into() },
                },
            }
        };
        tracing::debug!(pid = session.pid(), reason = %stopped, "stopping the turn");
        if session.is_alive()
            && let Ok(Ok(())) = tokio::time::timeout(SHUTDOWN_STEP, session.interrupt()).await
        {
            let _ = tokio::time::timeout(SHUTDOWN_STEP, self.turn.drain()).await;
        }
        Some(Err(stopped))
    }
}

/// Spawn a CLI, run one turn, and shut the process down, whatever happens.
pub async fn run_once(
    config: SessionConfig,
    prompt: &str,
    limits: RunLimits,
    cancel: CancellationToken,
    mut on_event: impl FnMut(&RunEvent) + Send,
) -> Result<RunResult, ClaudeError> {
    if cancel.is_cancelled() {
        return Err(ClaudeError::Cancelled);
    }
    let session = ClaudeSession::spawn(config).await?;
    let outcome = run_turn(&session, prompt, limits, &cancel, &mut on_event).await;
    session.shutdown().await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claude::protocol::parse_line;
    use pretty_assertions::assert_eq;

    /// Feed captured CLI output through a tracker, as the reader does for one turn.
    fn replay(fixture: &str, interrupted: bool) -> Vec<RunEvent> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tracker = TurnTracker::new(1, tx, None);
        tracker.interrupted = interrupted;
        for line in fixture.lines().filter(|l| !l.is_empty()) {
            match parse_line(line.as_bytes()).unwrap() {
                Message::Result(result) => {
                    let outcome = tracker.outcome(result);
                    tracker.emit(RunEvent::Finished(outcome));
                }
                message => tracker.on_message(message),
            }
        }
        drop(tracker);
        let mut events = Vec::new();
        while let Ok(event) = rx.try_recv() {
            events.push(event);
        }
        events
    }

    fn finished(events: &[RunEvent]) -> &Result<RunResult, ClaudeError> {
        match events.last() {
            Some(RunEvent::Finished(result)) => result,
            other => panic!("the last event is not Finished: {other:?}"),
        }
    }

    #[test]
    fn a_plain_turn_streams_deltas_and_finishes() {
        for fixture in [
            include_str!("testdata/plain_partial_newest.ndjson"),
            include_str!("testdata/plain_partial_oldest.ndjson"),
        ] {
            let events = replay(fixture, false);
            assert!(
                matches!(&events[0], RunEvent::Init { cli_version: Some(v), .. } if v.starts_with("2.1."))
            );
            let deltas: String = events
                .iter()
                .filter_map(|e| match e {
                    RunEvent::TextDelta(text) => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(deltas, "Hello there");
            assert!(events.contains(&RunEvent::ThinkingDelta("hmm".into())));
            assert!(events.contains(&RunEvent::Thinking("hmm".into())));
            assert!(events.contains(&RunEvent::Text("Hello there".into())));
            let result = finished(&events).as_ref().unwrap();
            assert_eq!(result.text, "Hello there");
            assert_eq!(
                result.usage,
                Usage { input_tokens: 10, output_tokens: 5, ..Usage::default() }
            );
            assert!(result.cost_usd > 0.0);
            assert_eq!(result.num_turns, 1);
            let RunEvent::Init { session_id, model, .. } = &events[0] else { unreachable!() };
            assert_eq!(&result.session_id, session_id);
            assert_eq!(&result.model, model);
        }
    }

    #[test]
    fn tool_calls_and_structured_results_become_events() {
        for fixture in [
            include_str!("testdata/edit_newest.ndjson"),
            include_str!("testdata/edit_oldest.ndjson"),
        ] {
            let events = replay(fixture, false);
            let tools: Vec<&str> = events
                .iter()
                .filter_map(|e| match e {
                    RunEvent::ToolUse { name, .. } => Some(name.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(tools, ["Read", "Edit"]);
            let results: Vec<(&str, bool, &Option<Value>)> = events
                .iter()
                .filter_map(|e| match e {
                    RunEvent::ToolResult { tool_use_id, is_error, structured, .. } => {
                        Some((tool_use_id.as_str(), *is_error, structured))
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(results.len(), 2);
            assert_eq!((results[0].0, results[0].1), ("toolu_01", false));
            let patch = results[1].2.as_ref().unwrap();
            assert_eq!(
                (patch["oldString"].as_str(), patch["newString"].as_str()),
                (Some("hello"), Some("hi"))
            );
            assert_eq!(finished(&events).as_ref().unwrap().text, "Done editing.");
        }
    }

    #[test]
    fn api_failures_finish_with_typed_errors() {
        for (fixture, kind) in [
            (include_str!("testdata/err_529_newest.ndjson"), "overloaded"),
            (include_str!("testdata/err_529_oldest.ndjson"), "overloaded"),
            (include_str!("testdata/err_400_newest.ndjson"), "prompt_too_long"),
        ] {
            let events = replay(fixture, false);
            let err = finished(&events).as_ref().unwrap_err();
            assert_eq!(err.kind(), kind, "{err}");
            // The synthetic message explains the error; it is not the model's text.
            assert!(!events.iter().any(|e| matches!(e, RunEvent::Text(_))));
        }
        let retry = replay(include_str!("testdata/err_529_newest.ndjson"), false);
        assert!(
            retry
                .iter()
                .any(|e| matches!(e, RunEvent::ApiRetry { status: Some(529), attempt: 1, .. }))
        );
    }

    #[test]
    fn each_api_response_reports_its_usage_at_its_start_and_end() {
        let fixture = [
            r#"{"type":"system","subtype":"init","session_id":"s"}"#,
            r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m1","model":"claude-haiku-4-5","usage":{"input_tokens":10,"cache_read_input_tokens":7,"output_tokens":1}}}}"#,
            r#"{"type":"stream_event","event":{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":42}}}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"s"}"#,
        ]
        .join("\n");
        let usage: Vec<_> = replay(&fixture, false)
            .into_iter()
            .filter_map(|event| match event {
                RunEvent::ApiUsage { message_id, model, usage } => Some((message_id, model, usage)),
                _ => None,
            })
            .collect();
        let at = |output_tokens| Usage {
            input_tokens: 10,
            output_tokens,
            cache_read_tokens: 7,
            ..Usage::default()
        };
        let model = Some("claude-haiku-4-5".to_owned());
        assert_eq!(usage, [("m1".into(), model.clone(), at(1)), ("m1".into(), model, at(42))]);
    }

    #[test]
    fn rate_limits_carry_the_announced_retry_delay() {
        let fixture = [
            r#"{"type":"system","subtype":"init","session_id":"s"}"#,
            r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":1,"retry_delay_ms":1000.4,"error_status":429,"error":"rate_limit"}"#,
            r#"{"type":"assistant","message":{"model":"<synthetic>","content":[{"type":"text","text":"API Error: Request rejected (429)"}]},"error":"rate_limit"}"#,
            r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"result":"API Error: Request rejected (429)"}"#,
        ]
        .join("\n");
        let events = replay(&fixture, false);
        assert_eq!(
            finished(&events),
            &Err(ClaudeError::RateLimited {
                retry_after: Some(Duration::from_millis(1000)),
                message: "API Error: Request rejected (429)".into()
            })
        );
    }

    #[test]
    fn an_interrupted_turn_is_cancelled() {
        let fixture = [
            r#"{"type":"system","subtype":"init","session_id":"s"}"#,
            r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"[Request interrupted by user]"}]}}"#,
            r#"{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["[ede_diagnostic] result_type=user"]}"#,
        ]
        .join("\n");
        assert_eq!(finished(&replay(&fixture, true)), &Err(ClaudeError::Cancelled));
        // Without our interrupt (and no aborted_* reason) it is a failure, not a cancel.
        assert_eq!(
            finished(&replay(&fixture, false)).as_ref().unwrap_err().kind(),
            "execution_failed"
        );
    }

    #[test]
    fn unknown_output_is_passed_on_raw_and_replays_are_dropped() {
        let fixture = [
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed"}}"#,
            r#"{"type":"system","subtype":"hologram"}"#,
            r#"{"type":"system","subtype":"task_started","description":"sleep"}"#,
            r#"{"type":"user","message":{"role":"user","content":"hi"},"isReplay":true}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"session_id":"s"}"#,
        ]
        .join("\n");
        let events = replay(&fixture, false);
        assert_eq!(
            events[..3],
            [
                RunEvent::Other(
                    json!({"type":"rate_limit_event","rate_limit_info":{"status":"allowed"}})
                ),
                RunEvent::Other(json!({"type":"system","subtype":"hologram"})),
                RunEvent::Task {
                    subtype: "task_started".into(),
                    description: Some("sleep".into())
                },
            ]
        );
        assert_eq!(events.len(), 4);
        assert_eq!(finished(&events).as_ref().unwrap().session_id, "s");
    }

    #[tokio::test]
    async fn handlers_answer_every_kind_of_request() {
        use crate::claude::control::DenyAll;
        use crate::claude::protocol::CanUseToolRequest;
        let handler: Arc<dyn ControlHandler> = Arc::new(DenyAll);
        let request = CanUseToolRequest {
            tool_name: "Bash".into(),
            input: json!({"command": "rm x"}),
            tool_use_id: None,
            permission_suggestions: vec![],
            blocked_path: None,
            raw: json!({}),
        };
        let denied =
            handle_control_request(ControlRequestKind::CanUseTool(request), handler.clone()).await;
        assert_eq!(denied.unwrap()["behavior"], "deny");
        let ack = handle_control_request(
            ControlRequestKind::McpMessage {
                server_name: "lsp".into(),
                message: json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            },
            handler.clone(),
        )
        .await;
        assert_eq!(ack, Ok(json!({"mcp_response": {"jsonrpc": "2.0", "result": {}}})));
        let hook = handle_control_request(
            ControlRequestKind::HookCallback {
                callback_id: "h".into(),
                input: json!({}),
                tool_use_id: None,
            },
            handler.clone(),
        )
        .await;
        assert_eq!(hook, Ok(json!({})));
        let other = handle_control_request(
            ControlRequestKind::Other { subtype: "elicitation".into(), raw: json!({}) },
            handler,
        )
        .await;
        assert_eq!(other, Err("Unsupported control request subtype: elicitation".into()));
    }
}
