//! The protocol extensions claude-lsp adds to LSP: custom requests, commands, notifications and
//! their parameter types. docs/lsp-extensions.md is the prose version; editors/vscode/src/lsp_ext.ts
//! mirrors it. Change all three together.

use serde::{Deserialize, Serialize};

use crate::lsp::{Diagnostic, NumberOrString, Range, TextDocumentIdentifier, Uri, WorkspaceEdit};
use crate::prompt::{Action, ActionOptions};
pub use crate::prompt::{Depth, ReviewScope, Severity};

pub const GENERATE: &str = "claude/generate";
pub const ANALYZE: &str = "claude/analyze";
pub const REFACTOR: &str = "claude/refactor";
pub const REVIEW: &str = "claude/review";
pub const SESSIONS: &str = "claude/sessions";
pub const USAGE: &str = "claude/usage";
pub const RUNS: &str = "claude/runs";

/// Notification: the agent's full stream, for rich clients.
pub const OUTPUT_NOTIFICATION: &str = "claude/output";
/// Notification: usage totals after each run, for status bars.
pub const USAGE_NOTIFICATION: &str = "claude/usage";

pub mod commands {
    pub const GENERATE: &str = "claude.generate";
    pub const ANALYZE: &str = "claude.analyze";
    pub const REFACTOR: &str = "claude.refactor";
    pub const REVIEW: &str = "claude.review";
    pub const CONTINUE: &str = "claude.continue";
    pub const CANCEL: &str = "claude.cancel";
    pub const APPLY_FINDING: &str = "claude.applyFinding";
    pub const DISMISS_FINDING: &str = "claude.dismissFinding";
    pub const SHOW_USAGE: &str = "claude.showUsage";

    pub const ALL: &[&str] = &[
        GENERATE,
        ANALYZE,
        REFACTOR,
        REVIEW,
        CONTINUE,
        CANCEL,
        APPLY_FINDING,
        DISMISS_FINDING,
        SHOW_USAGE,
    ];
}

/// The request method or command name of an action.
pub fn action_method(action: Action) -> &'static str {
    match action {
        Action::Generate => GENERATE,
        Action::Analyze => ANALYZE,
        Action::Refactor => REFACTOR,
        Action::Review => REVIEW,
    }
}

/// Parameters of the four action requests and commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionParams {
    pub text_document: TextDocumentIdentifier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_done_token: Option<NumberOrString>,
    /// Diagnostics in the range (from the editor) for the agent to see.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
    /// depth / includeTests (analyze), minSeverity / scope / fix (review), directory (generate).
    #[serde(flatten)]
    pub options: ActionOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileAction {
    Created,
    Modified,
    Deleted,
    Renamed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangedFile {
    pub uri: Uri,
    pub action: FileAction,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMetadata {
    pub duration_ms: u64,
    pub num_turns: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cost_usd: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// The result of the four action requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionResult {
    pub session_id: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit: Option<WorkspaceEdit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<Vec<serde_json::Value>>,
    pub files: Vec<ChangedFile>,
    pub metadata: RunMetadata,
}

/// What an action command answers at once; the work goes on in the background.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStarted {
    pub run_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelParams {
    #[serde(default)]
    pub run_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContinueParams {
    pub session_id: String,
    pub instruction: String,
    #[serde(default)]
    pub text_document: Option<TextDocumentIdentifier>,
    #[serde(default)]
    pub range: Option<Range>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OutputKind {
    Text,
    Thinking,
    ToolUse,
    ToolResult,
    Result,
}

/// `claude/output` notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputParams {
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<NumberOrString>,
    pub kind: OutputKind,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    pub run_id: String,
    pub action: Action,
    pub uri: Uri,
    pub started_at: String,
}
