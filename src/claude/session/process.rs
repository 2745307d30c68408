//! The process: [`ClaudeSession`] starts the CLI and its tasks, sends turns and control
//! requests, and shuts it down; [`Turn`] hands out one turn's events.

use parking_lot::Mutex;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use super::config::SessionConfig;
use super::events::{RunEvent, RunResult};
use super::shared::{Shared, State, WriteCommand};
use super::tasks::{EXIT_DRAIN, EXIT_WAIT, read_messages, supervise, write_lines};
use super::turn_tracker::TurnTracker;
use crate::base::process::{ProcessSpec, Stop};
use crate::base::secrets::{is_secret_name, redact_with};
use crate::claude::args::PermissionMode;
use crate::claude::control::InitializeRequest;
use crate::claude::errors::ClaudeError;
use crate::claude::protocol;

/// Each rung of the shutdown ladder waits this long.
pub(super) const SHUTDOWN_STEP: Duration = Duration::from_secs(2);
/// How long a host → CLI control request may take (interrupt answers in milliseconds).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// Writing one line can block only while the CLI does not read its stdin.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

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
    pub(super) fn active_within(&self, window: Duration) -> bool {
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

    pub(super) async fn drain(&mut self) -> Result<RunResult, ClaudeError> {
        while self.next().await.is_some() {}
        self.finished.clone().unwrap_or_else(|| {
            Err(ClaudeError::Protocol { message: "the turn ended without a result".into() })
        })
    }
}
