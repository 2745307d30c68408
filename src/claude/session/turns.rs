//! Running a turn to its end within its limits: a timeout or cancel interrupts it and leaves the
//! process usable; [`run_once`] is a whole process for one turn.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::{RunLimits, SessionConfig};
use super::events::{RunEvent, RunResult};
use super::process::{ClaudeSession, SHUTDOWN_STEP, Turn};
use crate::claude::errors::ClaudeError;

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

// `clear` is a turn, so it lives with the turn drivers: the process does not depend on them.
impl ClaudeSession {
    /// Start a new conversation in this process (the `/clear` command, answered without an API
    /// call): the next turn sees none of the earlier ones and gets a new session id. Newer CLIs
    /// also start their cost totals (and so `--max-budget-usd`) again from zero; 2.1.197 keeps
    /// them. The result's totals tell which.
    pub async fn clear(&self, timeout: Duration) -> Result<RunResult, ClaudeError> {
        let limits = RunLimits { timeout, idle_timeout: None };
        run_turn(self, "/clear", limits, &CancellationToken::new(), &mut |_| {}).await
    }
}
