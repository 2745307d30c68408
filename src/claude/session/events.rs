//! What a turn reports: its events in order, its token counts, and its result.

use serde::Deserialize;
use serde_json::Value;

use crate::claude::errors::ClaudeError;
use crate::claude::protocol;

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
pub(super) fn usage_of(value: &Value) -> Usage {
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
