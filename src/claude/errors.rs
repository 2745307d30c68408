//! Typed errors of the CLI driver and their classification from CLI output. Their texts pass
//! through the server's one redaction (`crate::base::secrets`).

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use crate::base::error::{ErrorKind, ServerError};

use super::protocol::{ResultMessage, ResultSubtype};
pub use crate::base::secrets::redact;

/// How to install the CLI, repeated in every "not found" message.
pub const INSTALL_HINT: &str = "npm install -g @anthropic-ai/claude-code";

/// Everything that can go wrong while finding, starting or talking to the `claude` CLI.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClaudeError {
    #[error(
        "Claude Code CLI not found: install it with `{INSTALL_HINT}` or set the `cliPath` setting. Looked in: {}.",
        searched.join("; ")
    )]
    CliNotFound { searched: Vec<String> },

    #[error(
        "Claude Code CLI {found} at {} is too old (minimum {minimum}). Update it with `{INSTALL_HINT}`.",
        path.display()
    )]
    CliTooOld { found: String, minimum: String, path: PathBuf },

    #[error(
        "Claude Code is not logged in. Run `claude` once and use /login, or set ANTHROPIC_API_KEY."
    )]
    NotLoggedIn,

    #[error("authentication failed: {message}")]
    AuthFailed { message: String },

    #[error("rate limited by the Anthropic API{}: {message}", retry_after_text(*retry_after))]
    RateLimited { retry_after: Option<Duration>, message: String },

    #[error("the Anthropic API is overloaded: {message}")]
    Overloaded { message: String },

    #[error("API error{}: {message}", status.map(|s| format!(" {s}")).unwrap_or_default())]
    ApiError { status: Option<u16>, message: String },

    #[error("the prompt is too long: {message}")]
    PromptTooLong { message: String },

    #[error("stopped after reaching the maximum number of turns ({turns})")]
    MaxTurns { turns: u32 },

    #[error("stopped after reaching the budget: {message}")]
    BudgetExceeded { message: String },

    #[error("no valid structured output: {message}")]
    StructuredOutputFailed { message: String },

    #[error("no conversation found with session ID {session_id}")]
    SessionNotFound { session_id: String },

    #[error("the Claude Code run failed: {message}")]
    ExecutionFailed { message: String },

    #[error("invalid CLI options: {message}")]
    InvalidOptions { message: String },

    #[error("the session is already running a turn")]
    Busy,

    #[error("{} after {after:?}", if *idle { "no output from Claude Code" } else { "timed out" })]
    Timeout { after: Duration, idle: bool },

    #[error("cancelled")]
    Cancelled,

    #[error("Claude Code exited unexpectedly{}{}", code_text(*code), stderr_text(stderr_tail))]
    ProcessCrashed { code: Option<i32>, stderr_tail: String },

    #[error("protocol error talking to Claude Code: {message}")]
    Protocol { message: String },

    #[error("I/O error: {message}")]
    Io { message: String },
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default()
}

fn code_text(code: Option<i32>) -> String {
    code.map(|c| format!(" with code {c}")).unwrap_or_else(|| " (killed by a signal)".to_owned())
}

fn stderr_text(stderr_tail: &str) -> String {
    let tail = stderr_tail.trim();
    if tail.is_empty() { String::new() } else { format!(": {}", redact(tail)) }
}

impl ClaudeError {
    /// The client-facing form of a CLI error: its kind maps onto the error table.
    pub fn server_error(&self) -> ServerError {
        let kind = match self.kind() {
            "not_logged_in" | "auth_failed" => ErrorKind::AUTH_FAILED,
            "cancelled" => ErrorKind::CANCELLED,
            "io" | "execution_failed" => ErrorKind::PROCESS_CRASHED,
            "invalid_options" => ErrorKind::INVALID_PARAMS,
            "busy" => ErrorKind::INTERNAL,
            other => ErrorKind::by_name(other).unwrap_or(ErrorKind::API_ERROR),
        };
        ServerError::new(kind, self.to_string(), self.hint())
    }

    /// A stable snake_case name, sent to clients as `data.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CliNotFound { .. } => "cli_not_found",
            Self::CliTooOld { .. } => "cli_too_old",
            Self::NotLoggedIn => "not_logged_in",
            Self::AuthFailed { .. } => "auth_failed",
            Self::RateLimited { .. } => "rate_limited",
            Self::Overloaded { .. } => "overloaded",
            Self::ApiError { .. } => "api_error",
            Self::PromptTooLong { .. } => "prompt_too_long",
            Self::MaxTurns { .. } => "max_turns",
            Self::BudgetExceeded { .. } => "budget_exceeded",
            Self::StructuredOutputFailed { .. } => "structured_output_failed",
            Self::SessionNotFound { .. } => "session_not_found",
            Self::ExecutionFailed { .. } => "execution_failed",
            Self::InvalidOptions { .. } => "invalid_options",
            Self::Busy => "busy",
            Self::Timeout { .. } => "timeout",
            Self::Cancelled => "cancelled",
            Self::ProcessCrashed { .. } => "process_crashed",
            Self::Protocol { .. } => "protocol",
            Self::Io { .. } => "io",
        }
    }

    /// One line telling the user what to do about it.
    pub fn hint(&self) -> String {
        match self {
            Self::CliNotFound { .. } => format!(
                "Install Claude Code with `{INSTALL_HINT}`, or point the `cliPath` setting at the `claude` binary."
            ),
            Self::CliTooOld { minimum, .. } => {
                format!("Update Claude Code to {minimum} or newer with `{INSTALL_HINT}`.")
            }
            Self::NotLoggedIn => {
                "Run `claude` in a terminal and log in with /login, or set ANTHROPIC_API_KEY.".to_owned()
            }
            Self::AuthFailed { .. } => {
                "Check your API key or log in again with `claude` then /login.".to_owned()
            }
            Self::RateLimited { retry_after: Some(after), .. } => {
                format!("Rate limited; try again in {} s.", after.as_secs().max(1))
            }
            Self::RateLimited { retry_after: None, .. } => {
                "Rate limited; wait a moment and try again.".to_owned()
            }
            Self::Overloaded { .. } => {
                "The API is overloaded; try again shortly or set a `fallbackModel`.".to_owned()
            }
            Self::ApiError { status: Some(status), .. } if *status >= 500 => {
                "The API had a server error; try again in a moment.".to_owned()
            }
            Self::ApiError { .. } => {
                "The API rejected the request; check the model name and your network.".to_owned()
            }
            Self::PromptTooLong { .. } => {
                "Select less code or start a new session; the conversation is too long.".to_owned()
            }
            Self::MaxTurns { .. } => "Raise the `maxTurns` setting or narrow the request.".to_owned(),
            Self::BudgetExceeded { .. } => "Raise the `maxBudgetUsd` setting.".to_owned(),
            Self::StructuredOutputFailed { .. } => {
                "The model did not produce valid structured output; try again.".to_owned()
            }
            Self::SessionNotFound { .. } => {
                "That session no longer exists on this machine; start a new one.".to_owned()
            }
            Self::ExecutionFailed { .. } => "Try again; see the log for details.".to_owned(),
            Self::InvalidOptions { .. } => "Fix the setting named in the message.".to_owned(),
            Self::Busy => "Wait for the running request to finish or cancel it.".to_owned(),
            Self::Timeout { idle: true, .. } => {
                "Claude Code stopped producing output; try again.".to_owned()
            }
            Self::Timeout { idle: false, .. } => {
                "Raise the `timeoutSecs` setting or narrow the request.".to_owned()
            }
            Self::Cancelled => "The request was cancelled.".to_owned(),
            Self::ProcessCrashed { .. } => {
                "Claude Code exited unexpectedly; run `claude-lsp doctor` to check the installation."
                    .to_owned()
            }
            Self::Protocol { .. } => {
                "Claude Code sent something unexpected; check that its version is supported.".to_owned()
            }
            Self::Io { .. } => "Check file permissions and disk space.".to_owned(),
        }
    }

    /// Whether trying the same request again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Overloaded { .. } => true,
            Self::ApiError { status: Some(status), .. } => *status >= 500 || *status == 408,
            // No HTTP status means the request never got an answer: a connection failure.
            Self::ApiError { status: None, .. } => true,
            _ => false,
        }
    }
}

impl From<std::io::Error> for ClaudeError {
    fn from(err: std::io::Error) -> Self {
        Self::Io { message: redact(&err.to_string()).into_owned() }
    }
}

/// The error a `result` line stands for, or `None` when the turn succeeded.
///
/// `synthetic_error` is the top-level `error` of the CLI's synthetic assistant message (API
/// failures), when the turn had one. API failures arrive as `subtype: "success"` with
/// `is_error: true`, so this branches on `is_error` first.
pub fn classify_result(
    result: &ResultMessage,
    synthetic_error: Option<&str>,
) -> Option<ClaudeError> {
    let subtype = result.subtype_kind();
    if !result.is_error && subtype == ResultSubtype::Success {
        return None;
    }
    let message = redact(&result_message_text(result)).into_owned();
    let aborted = result.terminal_reason.as_deref().is_some_and(|r| r.starts_with("aborted"));
    match subtype {
        ResultSubtype::ErrorMaxTurns => {
            return Some(ClaudeError::MaxTurns { turns: max_turns_from(result) });
        }
        ResultSubtype::ErrorMaxBudgetUsd => return Some(ClaudeError::BudgetExceeded { message }),
        ResultSubtype::ErrorMaxStructuredOutputRetries => {
            return Some(ClaudeError::StructuredOutputFailed { message });
        }
        ResultSubtype::ErrorDuringExecution if aborted => return Some(ClaudeError::Cancelled),
        _ => {}
    }
    if let Some(session_id) = missing_session_id(&message) {
        return Some(ClaudeError::SessionNotFound { session_id });
    }
    if message.contains("Not logged in") {
        return Some(ClaudeError::NotLoggedIn);
    }
    if result.terminal_reason.as_deref() == Some("prompt_too_long")
        || message.contains("Prompt is too long")
    {
        return Some(ClaudeError::PromptTooLong { message });
    }
    match (result.api_error_status, synthetic_error) {
        (status, error) if rejects_credentials(status, error) => {
            Some(ClaudeError::AuthFailed { message })
        }
        (Some(429), _) | (None, Some("rate_limit")) => {
            Some(ClaudeError::RateLimited { retry_after: None, message })
        }
        (Some(529), _) | (None, Some("overloaded")) => Some(ClaudeError::Overloaded { message }),
        (Some(status), _) => Some(ClaudeError::ApiError { status: Some(status), message }),
        (None, Some(_)) => Some(ClaudeError::ApiError { status: None, message }),
        (None, None) if subtype == ResultSubtype::Success => {
            // `is_error` without an HTTP status or synthetic error: an API failure before any
            // answer (connection refused, DNS) also looks like this.
            Some(ClaudeError::ApiError { status: None, message })
        }
        (None, None) => Some(ClaudeError::ExecutionFailed { message }),
    }
}

/// The error a process exit without a `result` stands for, from its exit code and stderr.
pub fn classify_exit(code: Option<i32>, stderr_tail: &str) -> ClaudeError {
    let stderr = redact(stderr_tail);
    if let Some(session_id) = missing_session_id(&stderr) {
        return ClaudeError::SessionNotFound { session_id };
    }
    if stderr.contains("Not logged in") {
        return ClaudeError::NotLoggedIn;
    }
    if let Some(line) = stderr.lines().map(str::trim).find(|line| {
        line.starts_with("error: unknown option")
            || line.starts_with("error: option")
            || line.contains("is already in use")
            || line.contains("requires a valid session ID")
            || line.contains("is not valid JSON")
    }) {
        return ClaudeError::InvalidOptions { message: line.to_owned() };
    }
    ClaudeError::ProcessCrashed { code, stderr_tail: stderr.trim().to_owned() }
}

/// The text that best explains a failed result: its errors, else its result text, else its subtype.
fn result_message_text(result: &ResultMessage) -> String {
    let errors: Vec<&str> = result
        .errors
        .iter()
        .map(String::as_str)
        // The CLI leaks internal diagnostics into `errors` for aborted turns.
        .filter(|e| !e.starts_with("[ede_diagnostic]"))
        .collect();
    if !errors.is_empty() {
        return errors.join("; ");
    }
    match result.result.as_deref() {
        Some(text) if !text.trim().is_empty() => text.trim().to_owned(),
        _ => result.subtype.clone(),
    }
}

fn max_turns_from(result: &ResultMessage) -> u32 {
    // "Reached maximum number of turns (N)" names the limit; num_turns counts what ran.
    static TURNS: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"maximum number of turns \((\d+)\)").ok());
    TURNS
        .as_ref()
        .and_then(|re| result.errors.iter().find_map(|e| re.captures(e)))
        .and_then(|caps| caps.get(1))
        .and_then(|m| m.as_str().parse().ok())
        .unwrap_or(result.num_turns)
}

fn missing_session_id(text: &str) -> Option<String> {
    const MARKER: &str = "No conversation found with session ID:";
    let start = text.find(MARKER)? + MARKER.len();
    let id: String = text[start..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    Some(id)
}

/// The API refused the credentials (HTTP 401/403, or the CLI's `authentication_failed`): no
/// retry can help, however often the CLI would try.
pub fn rejects_credentials(status: Option<u16>, error: Option<&str>) -> bool {
    matches!(status, Some(401 | 403)) || error == Some("authentication_failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claude::protocol::{Message, parse_line};

    fn result(json: &str) -> ResultMessage {
        match parse_line(json.as_bytes()).unwrap() {
            Message::Result(result) => result,
            other => panic!("not a result: {other:?}"),
        }
    }

    #[test]
    fn success_is_not_an_error() {
        let r = result(r#"{"type":"result","subtype":"success","is_error":false,"result":"ok"}"#);
        assert_eq!(classify_result(&r, None), None);
    }

    #[test]
    fn api_statuses_map_to_typed_errors() {
        let cases = [
            (401, Some("authentication_failed"), "auth_failed"),
            (403, None, "auth_failed"),
            (429, Some("rate_limit"), "rate_limited"),
            (529, Some("server_error"), "overloaded"),
            (500, Some("server_error"), "api_error"),
            (404, Some("invalid_request"), "api_error"),
        ];
        for (status, synthetic, kind) in cases {
            let r = result(&format!(
                r#"{{"type":"result","subtype":"success","is_error":true,"api_error_status":{status},"terminal_reason":"api_error","result":"API Error: {status} boom"}}"#
            ));
            let err = classify_result(&r, synthetic).unwrap();
            assert_eq!(err.kind(), kind, "status {status}: {err}");
            assert!(err.to_string().contains("boom"), "{err}");
        }
    }

    #[test]
    fn api_failure_without_status_uses_the_synthetic_error() {
        let r = result(
            r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":null,"result":"Invalid API key"}"#,
        );
        assert_eq!(
            classify_result(&r, Some("authentication_failed")).unwrap().kind(),
            "auth_failed"
        );
        assert_eq!(classify_result(&r, Some("overloaded")).unwrap().kind(), "overloaded");
        assert_eq!(classify_result(&r, Some("rate_limit")).unwrap().kind(), "rate_limited");
        let connection = classify_result(&r, Some("server_error")).unwrap();
        assert_eq!(
            connection,
            ClaudeError::ApiError { status: None, message: "Invalid API key".into() }
        );
        assert!(connection.is_retryable());
    }

    #[test]
    fn prompt_too_long_is_recognised() {
        let r = result(
            r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":400,"terminal_reason":"prompt_too_long","result":"Prompt is too long"}"#,
        );
        let err = classify_result(&r, Some("invalid_request")).unwrap();
        assert_eq!(err.kind(), "prompt_too_long");
        assert!(!err.is_retryable());
    }

    #[test]
    fn not_logged_in_is_recognised() {
        let r = result(
            r#"{"type":"result","subtype":"success","is_error":true,"result":"Not logged in · Please run /login"}"#,
        );
        assert_eq!(classify_result(&r, None), Some(ClaudeError::NotLoggedIn));
    }

    #[test]
    fn error_subtypes_map_to_typed_errors() {
        let max_turns = result(
            r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":2,"terminal_reason":"max_turns","errors":["Reached maximum number of turns (1)"]}"#,
        );
        assert_eq!(classify_result(&max_turns, None), Some(ClaudeError::MaxTurns { turns: 1 }));
        let budget = result(
            r#"{"type":"result","subtype":"error_max_budget_usd","is_error":true,"errors":["Reached maximum budget ($0.0001)"]}"#,
        );
        assert_eq!(
            classify_result(&budget, None),
            Some(ClaudeError::BudgetExceeded {
                message: "Reached maximum budget ($0.0001)".into()
            })
        );
        let structured = result(
            r#"{"type":"result","subtype":"error_max_structured_output_retries","is_error":true,"errors":["Failed to provide valid structured output after 5 attempts"]}"#,
        );
        assert_eq!(classify_result(&structured, None).unwrap().kind(), "structured_output_failed");
    }

    #[test]
    fn aborted_turns_are_cancelled() {
        for reason in ["aborted_streaming", "aborted_tools"] {
            let r = result(&format!(
                r#"{{"type":"result","subtype":"error_during_execution","is_error":true,"terminal_reason":"{reason}","errors":["[ede_diagnostic] result_type=user"]}}"#
            ));
            assert_eq!(classify_result(&r, None), Some(ClaudeError::Cancelled));
        }
    }

    #[test]
    fn unknown_resume_names_the_session() {
        let r = result(
            r#"{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["No conversation found with session ID: 8a4a1c1e-1111-4222-8333-944455556666"]}"#,
        );
        let err = classify_result(&r, None).unwrap();
        assert_eq!(
            err,
            ClaudeError::SessionNotFound {
                session_id: "8a4a1c1e-1111-4222-8333-944455556666".into()
            }
        );
        assert!(err.to_string().contains("8a4a1c1e-1111-4222-8333-944455556666"));
    }

    #[test]
    fn other_execution_errors_keep_their_text() {
        let r = result(
            r#"{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["[ede_diagnostic] x","disk full"]}"#,
        );
        assert_eq!(
            classify_result(&r, None),
            Some(ClaudeError::ExecutionFailed { message: "disk full".into() })
        );
        let unknown_subtype =
            result(r#"{"type":"result","subtype":"error_brand_new","is_error":true}"#);
        assert_eq!(
            classify_result(&unknown_subtype, None),
            Some(ClaudeError::ExecutionFailed { message: "error_brand_new".into() })
        );
    }

    #[test]
    fn exit_without_result_is_classified_from_stderr() {
        assert_eq!(
            classify_exit(Some(1), "No conversation found with session ID: abc-123\n"),
            ClaudeError::SessionNotFound { session_id: "abc-123".into() }
        );
        assert_eq!(classify_exit(Some(1), "Not logged in"), ClaudeError::NotLoggedIn);
        assert_eq!(
            classify_exit(Some(1), "error: unknown option '--no-such-flag'\n"),
            ClaudeError::InvalidOptions {
                message: "error: unknown option '--no-such-flag'".into()
            }
        );
        let crashed = classify_exit(Some(3), "boom sk-ant-api03-SECRETSECRET\n");
        assert_eq!(
            crashed,
            ClaudeError::ProcessCrashed { code: Some(3), stderr_tail: "boom [REDACTED]".into() }
        );
        assert_eq!(
            crashed.to_string(),
            "Claude Code exited unexpectedly with code 3: boom [REDACTED]"
        );
        assert!(classify_exit(None, "").to_string().contains("signal"));
    }

    #[test]
    fn every_error_has_a_kind_hint_and_message() {
        let errors = [
            ClaudeError::CliNotFound {
                searched: vec!["PATH".into(), "~/.claude/local/claude".into()],
            },
            ClaudeError::CliTooOld {
                found: "2.0.1".into(),
                minimum: "2.1.197".into(),
                path: "/x/claude".into(),
            },
            ClaudeError::NotLoggedIn,
            ClaudeError::RateLimited {
                retry_after: Some(Duration::from_secs(3)),
                message: "slow".into(),
            },
            ClaudeError::Timeout { after: Duration::from_secs(5), idle: true },
            ClaudeError::Cancelled,
        ];
        for err in errors {
            assert!(!err.kind().is_empty());
            assert!(!err.hint().is_empty());
            assert!(!err.to_string().is_empty());
        }
        let not_found =
            ClaudeError::CliNotFound { searched: vec!["PATH (a:b)".into()] }.to_string();
        assert!(
            not_found.contains("PATH (a:b)") && not_found.contains(INSTALL_HINT),
            "{not_found}"
        );
        assert!(ClaudeError::Overloaded { message: String::new() }.is_retryable());
        assert!(!ClaudeError::AuthFailed { message: String::new() }.is_retryable());
        assert!(ClaudeError::ApiError { status: Some(502), message: String::new() }.is_retryable());
        assert!(
            !ClaudeError::ApiError { status: Some(400), message: String::new() }.is_retryable()
        );
    }
}
