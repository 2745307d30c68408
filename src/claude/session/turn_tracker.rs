//! One turn's state: the CLI's messages become [`RunEvent`]s, its `result` a [`RunResult`].

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::events::{RunEvent, RunResult, Usage, usage_of};
use crate::claude::errors::{ClaudeError, classify_result};
use crate::claude::protocol::{
    self, ContentBlock, Delta, Message, ResultMessage, ResultSubtype, StreamEventKind,
    SystemMessage, UserContent,
};

/// Follows one turn: turns CLI messages into [`RunEvent`]s and the `result` into a [`RunResult`].
pub(super) struct TurnTracker {
    pub(super) id: u64,
    events: mpsc::UnboundedSender<RunEvent>,
    /// The host asked to interrupt: an execution error is then a cancellation.
    pub(super) interrupted: bool,
    synthetic_error: Option<String>,
    last_retry_delay: Option<Duration>,
    texts: Vec<String>,
    model: Option<String>,
    session_id: Option<String>,
    /// The API response being streamed: its id, model and usage from `message_start`.
    streaming: Option<(String, Option<String>, Usage)>,
}

impl TurnTracker {
    pub(super) fn new(
        id: u64,
        events: mpsc::UnboundedSender<RunEvent>,
        session_id: Option<String>,
    ) -> Self {
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

    pub(super) fn emit(&self, event: RunEvent) {
        // The caller may have dropped its Turn; the turn still runs to its result.
        let _ = self.events.send(event);
    }

    /// Everything but `result` and control traffic.
    pub(super) fn on_message(&mut self, message: Message) {
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
    pub(super) fn outcome(&self, result: ResultMessage) -> Result<RunResult, ClaudeError> {
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
