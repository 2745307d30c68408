//! The three tasks of a process: the supervisor, the writer, and the reader that routes each
//! message and answers the CLI's control requests.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::events::RunEvent;
use super::shared::{ExitInfo, Shared, WriteCommand};
use crate::base::process::{ChildProcess, Stop};
use crate::claude::control::ControlHandler;
use crate::claude::errors::{ClaudeError, classify_exit, classify_result};
use crate::claude::lines::{LineError, MessageReader};
use crate::claude::protocol::{self, ControlRequestKind, Message, SystemMessage};

/// After the process exits, output still in the pipe is read for this long.
pub(super) const EXIT_DRAIN: Duration = Duration::from_secs(2);
/// After stdout closes, the exit status is awaited this long.
pub(super) const EXIT_WAIT: Duration = Duration::from_secs(5);

/// Owns the child: reports its exit, forwards signals to its group, and kills the group when the
/// session is dropped.
pub(super) async fn supervise(
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
pub(super) async fn write_lines(
    mut stdin: ChildStdin,
    mut commands: mpsc::UnboundedReceiver<WriteCommand>,
) {
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
pub(super) async fn read_messages(
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

pub(super) async fn handle_control_request(
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
