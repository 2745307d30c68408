//! The protocol extensions claude-lsp adds to LSP: custom requests, commands, notifications and
//! their parameter types. docs/lsp-extensions.md is the prose version; editors/vscode/src/lsp_ext.ts
//! mirrors it. Change all three together.

use serde::{Deserialize, Serialize};

use crate::engine::pipeline::ActionOutcome;
use crate::engine::run::RunAnswer;
pub use crate::model::findings::{Category, Finding, FindingFix, RelatedLocation};
use crate::model::prompt::{Action, ActionOptions};
pub use crate::model::prompt::{Depth, ReviewScope, Severity};
use crate::protocol::lsp::{
    Diagnostic, NumberOrString, Range, TextDocumentIdentifier, Uri, WorkspaceEdit,
};

pub const GENERATE: &str = "claude/generate";
pub const ANALYZE: &str = "claude/analyze";
pub const REFACTOR: &str = "claude/refactor";
pub const REVIEW: &str = "claude/review";
/// Request: the conversations of a workspace (the session index).
pub const SESSIONS: &str = "claude/sessions";
/// Request: one conversation, with its messages from the CLI's transcript.
pub const SESSION: &str = "claude/session";
pub const USAGE: &str = "claude/usage";
pub const RUNS: &str = "claude/runs";
/// Request: counters and histograms (requests, durations, queue wait, retries, tokens, cost),
/// the queue and the circuit breaker; the result is `metrics::MetricsReport`.
pub const METRICS: &str = "claude/metrics";
/// Request: the newest entries of the permission audit log.
pub const AUDIT: &str = "claude/audit";
/// Request: what an action would cost, before running it (an estimate).
pub const ESTIMATE: &str = "claude/estimate";

/// Notification: the agent's full stream, for rich clients.
pub const OUTPUT_NOTIFICATION: &str = "claude/output";
/// Notification: usage totals after each run, for status bars.
pub const USAGE_NOTIFICATION: &str = "claude/usageChanged";
/// The same notification under its old name, which is also the `claude/usage` request's: still
/// sent for one release, for clients that listen to it.
#[deprecated = "listen to USAGE_NOTIFICATION (`claude/usageChanged`)"]
pub const DEPRECATED_USAGE_NOTIFICATION: &str = "claude/usage";

/// Every custom request, as advertised in `experimental.claudeLsp.requests`.
pub const REQUESTS: &[&str] = &[
    GENERATE, ANALYZE, REFACTOR, REVIEW, RUNS, METRICS, AUDIT, SESSIONS, SESSION, USAGE, ESTIMATE,
];

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
    pub const APPLY_CHANGE: &str = "claude.applyChange";
    pub const DISCARD_CHANGE: &str = "claude.discardChange";

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
        APPLY_CHANGE,
        DISCARD_CHANGE,
    ];
}

/// Parameters of the four action requests and commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionParams {
    #[schemars(with = "crate::protocol::lsp::schema::TextDocumentIdentifier")]
    pub text_document: TextDocumentIdentifier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::protocol::lsp::schema::Range>")]
    pub range: Option<Range>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// With `sessionId`: branch a new conversation off that one instead of continuing it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fork: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::protocol::lsp::schema::ProgressToken>")]
    pub work_done_token: Option<NumberOrString>,
    /// Diagnostics in the range (from the editor) for the agent to see.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<crate::protocol::lsp::schema::Diagnostic>")]
    pub diagnostics: Vec<Diagnostic>,
    /// depth / includeTests (analyze), minSeverity / scope / fix (review), directory (generate).
    #[serde(flatten)]
    pub options: ActionOptions,
    /// Run even when the result cache holds an answer for these inputs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_cache: bool,
}

/// `claude/estimate` parameters: the action and its parameters, as for the action's request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EstimateParams {
    /// `generate`, `analyze`, `refactor` or `review`.
    pub action: String,
    #[serde(flatten)]
    pub params: ActionParams,
}

/// `claude/estimate` result: an estimate, never a promise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EstimateResult {
    /// The first API call's input: the prompt (characters / 4) plus the CLI's own system
    /// prompt and tools (a fixed overhead, measured once).
    pub input_tokens: u64,
    /// The run's `model` option, else the `model` setting; absent: the CLI's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The price table entry used (unknown models and the default: Sonnet).
    pub priced_as: String,
    /// One turn with a short answer.
    pub cost_usd_low: f64,
    /// Three turns over the same context with a long answer.
    pub cost_usd_high: f64,
    /// The same in words, for a status line or quick pick.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileAction {
    Created,
    Modified,
    Deleted,
    Renamed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChangedFile {
    #[schemars(with = "crate::protocol::lsp::schema::Uri")]
    pub uri: Uri,
    pub action: FileAction,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// Answered from the result cache: the inputs are unchanged, no API call was made (the
    /// counts above are then zero).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
}

/// The result of the four action requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionResult {
    pub session_id: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::protocol::lsp::schema::WorkspaceEdit>")]
    pub edit: Option<WorkspaceEdit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<Vec<Finding>>,
    pub files: Vec<ChangedFile>,
    pub metadata: RunMetadata,
}

/// Argument of `claude.applyFinding` and `claude.dismissFinding`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindingRef {
    #[schemars(with = "crate::protocol::lsp::schema::Uri")]
    pub uri: Uri,
    /// Required to apply; absent to dismiss every finding in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding_id: Option<String>,
}

/// Argument of `claude.applyChange` and `claude.discardChange`: a proposed change of a run
/// delivered for review (`delivery: "review"`), as its diagnostic's `data` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRef {
    pub run_id: String,
    /// Absent: every change of the run still waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_id: Option<String>,
}

/// What an action command answers at once; the work goes on in the background.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunStarted {
    pub run_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancelParams {
    #[serde(default)]
    pub run_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContinueParams {
    pub session_id: String,
    /// Required; editors with an input box ask the user for it when a code action leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// Default: the conversation's document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::protocol::lsp::schema::TextDocumentIdentifier>")]
    pub text_document: Option<TextDocumentIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::protocol::lsp::schema::Range>")]
    pub range: Option<Range>,
    /// Branch a new conversation off this one instead of continuing it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fork: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::protocol::lsp::schema::ProgressToken>")]
    pub work_done_token: Option<NumberOrString>,
}

/// `claude/sessions` parameters: filters, all optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionsParams {
    /// Conversations about this document (default: every workspace folder's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::protocol::lsp::schema::Uri>")]
    pub uri: Option<Uri>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// At most this many, newest first (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionsResult {
    pub sessions: Vec<SessionInfo>,
}

/// One conversation of the session index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    #[serde(flatten)]
    pub record: crate::model::sessions::SessionRecord,
    /// Its CLI process, while one is kept alive for the next turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<crate::engine::conversations::LiveProcess>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionParams {
    pub session_id: String,
}

/// `claude/session` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDetail {
    #[serde(flatten)]
    pub info: SessionInfo,
    /// The conversation's messages, from the CLI's transcript (empty when it has none).
    pub messages: Vec<crate::model::transcripts::TranscriptMessage>,
}

/// `claude/usage` parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageParams {
    /// The workspace of this document only (default: every workspace folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::protocol::lsp::schema::Uri>")]
    pub uri: Option<Uri>,
}

/// `claude/usage` result and `claude/usageChanged` notification: totals, by UTC day and by model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    /// Today (UTC), `YYYY-MM-DD`.
    pub day: String,
    pub today: crate::model::usage::UsageCounts,
    pub total: crate::model::usage::UsageCounts,
    pub by_day: std::collections::BTreeMap<String, crate::model::usage::UsageCounts>,
    pub by_model: std::collections::BTreeMap<String, crate::model::usage::UsageCounts>,
    pub workspaces: Vec<WorkspaceUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_budget_usd: Option<f64>,
    /// Today's cost per hour since today's first run (at least one hour).
    pub burn_rate_usd_per_hour: f64,
    /// Today's cost plus the burn rate over the hours left today (UTC).
    pub projected_today_usd: f64,
    /// A cheaper model that served runs of the same action about as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cheaper_model: Option<ModelSuggestion>,
    /// In the notification: the run that just ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
}

/// For the action and model with the most runs: a model that ran the same action at most half as
/// dear on average with a success rate within 10 points (each with at least 3 runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelSuggestion {
    pub action: String,
    pub model: String,
    pub cheaper_model: String,
    pub runs: u64,
    pub cheaper_runs: u64,
    pub avg_cost_usd: f64,
    pub cheaper_avg_cost_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceUsage {
    #[schemars(with = "crate::protocol::lsp::schema::Uri")]
    pub uri: Uri,
    pub today: crate::model::usage::UsageCounts,
    pub total: crate::model::usage::UsageCounts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    pub session_id: String,
    #[serde(flatten)]
    pub usage: crate::model::usage::RunUsage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OutputKind {
    Text,
    Thinking,
    ToolUse,
    ToolResult,
    Result,
}

/// `claude/output` notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputParams {
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::protocol::lsp::schema::ProgressToken>")]
    pub token: Option<NumberOrString>,
    pub kind: OutputKind,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    pub run_id: String,
    pub action: Action,
    #[schemars(with = "crate::protocol::lsp::schema::Uri")]
    pub uri: Uri,
    pub started_at: String,
}

/// `claude/audit` parameters: how many of the newest entries, of which conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// `claude/audit` result: permission decisions, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditResult {
    pub entries: Vec<crate::model::audit::AuditEntry>,
}

impl ActionOutcome {
    /// What the run took, as both faces report it.
    pub fn metadata(&self) -> RunMetadata {
        let result = &self.result;
        RunMetadata {
            duration_ms: result.duration_ms,
            num_turns: result.num_turns,
            input_tokens: result.usage.input_tokens,
            output_tokens: result.usage.output_tokens,
            cache_read_tokens: result.usage.cache_read_tokens,
            cost_usd: result.cost_usd,
            model: result.model.clone(),
            cached: self.cached,
        }
    }
}

impl RunAnswer for ActionResult {
    fn session_id(&self) -> &str {
        &self.session_id
    }

    fn text(&self) -> &str {
        &self.text
    }
}
