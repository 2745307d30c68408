//! The protocol extensions claude-lsp adds to LSP: custom requests, commands, notifications and
//! their parameter types. docs/lsp-extensions.md is the prose version; editors/vscode/src/lsp_ext.ts
//! mirrors it. Change all three together.
//!
//! A leaf, like rust-analyzer's `lsp/ext.rs`: these are the wire types only, built on LSP's own
//! ([`crate::protocol::lsp`]) and serde. The faces convert the domain's values to and from them
//! (`lsp_server::to_proto`, `lsp_server::from_proto`, and `report` for what both faces put out),
//! so a change in the domain cannot change the wire unnoticed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
/// the queue, the circuit breaker and the warm pool; the result is [`MetricsReport`].
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

/// The custom requests and notifications as types, as in rust-analyzer's `lsp/ext.rs`: each
/// names its method, parameters and result, so the server's handlers and the tests' client take
/// exactly these shapes. Requests whose parameters may be left out take an `Option`.
pub mod requests {
    use crate::protocol::lsp::notification::Notification;
    use crate::protocol::lsp::request::Request;

    use super::*;

    macro_rules! request {
        ($(#[$doc:meta])* $name:ident, $method:expr, $params:ty => $result:ty) => {
            $(#[$doc])*
            #[derive(Debug)]
            pub enum $name {}

            impl Request for $name {
                type Params = $params;
                type Result = $result;
                const METHOD: &'static str = $method;
            }
        };
    }

    macro_rules! notification {
        ($(#[$doc:meta])* $name:ident, $method:expr, $params:ty) => {
            $(#[$doc])*
            #[derive(Debug)]
            pub enum $name {}

            impl Notification for $name {
                type Params = $params;
                const METHOD: &'static str = $method;
            }
        };
    }

    request!(Generate, GENERATE, ActionParams => ActionResult);
    request!(Analyze, ANALYZE, ActionParams => ActionResult);
    request!(Refactor, REFACTOR, ActionParams => ActionResult);
    request!(Review, REVIEW, ActionParams => ActionResult);
    request!(
        /// The runs in progress.
        Runs, RUNS, Option<serde_json::Value> => RunsResult
    );
    request!(Metrics, METRICS, Option<serde_json::Value> => MetricsReport);
    request!(Audit, AUDIT, Option<AuditParams> => AuditResult);
    request!(Sessions, SESSIONS, Option<SessionsParams> => SessionsResult);
    request!(Session, SESSION, SessionParams => SessionDetail);
    request!(Usage, USAGE, Option<UsageParams> => UsageReport);
    request!(
        /// What an action would cost, before running it.
        Estimate, ESTIMATE, EstimateParams => EstimateResult
    );

    notification!(
        /// The agent's full stream, for rich clients.
        Output, OUTPUT_NOTIFICATION, OutputParams
    );
    notification!(
        /// Usage totals after each run, for status bars.
        UsageChanged, USAGE_NOTIFICATION, UsageReport
    );
    #[allow(deprecated)] // sent on purpose, for one release
    mod deprecated {
        use super::*;
        notification!(
            /// [`UsageChanged`] under its old name, for clients of the previous release.
            DeprecatedUsageChanged, DEPRECATED_USAGE_NOTIFICATION, UsageReport
        );
    }
    pub use deprecated::DeprecatedUsageChanged;
}

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

/// The four actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Generate,
    Analyze,
    Refactor,
    Review,
}

/// How thorough an analysis is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Depth {
    Quick,
    #[default]
    Normal,
    Deep,
}

/// What a review looks at; analyze takes `folder` and `workspace` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReviewScope {
    Selection,
    File,
    /// The workspace's uncommitted changes.
    Changes,
    /// Every file of a folder (`directory`, default: the target's folder): listed, not inlined.
    Folder,
    /// Every file of the workspace: listed, not inlined.
    Workspace,
}

/// Finding severities, most severe first (so `a <= b` means "a is at least as severe as b").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
    Hint,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalyzeOptions {
    pub depth: Depth,
    /// Also look at the tests covering the code.
    pub include_tests: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ReviewOptions {
    /// Findings less severe than this are not reported (default: info, so hints are left out).
    pub min_severity: Severity,
    /// `None`: the selection when there is one, else the file. Analyze reads `folder` and
    /// `workspace` from here too.
    pub scope: Option<ReviewScope>,
    /// Ask for a replacement text with each finding.
    pub fix: bool,
}

impl Default for ReviewOptions {
    fn default() -> Self {
        Self { min_severity: Severity::Info, scope: None, fix: false }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct GenerateOptions {
    /// Where new files go (generate), or the folder of a `folder` scope (analyze, review):
    /// relative to the workspace root.
    pub directory: Option<String>,
}

/// The per-action options. Flattened, so it reads the flat `ActionParams` fields
/// (`depth`, `includeTests`, `minSeverity`, `scope`, `fix`, `directory`, `model`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ActionOptions {
    #[serde(flatten)]
    pub analyze: AnalyzeOptions,
    #[serde(flatten)]
    pub review: ReviewOptions,
    #[serde(flatten)]
    pub generate: GenerateOptions,
    /// The model of this run (default: the `model` setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
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

/// A finding of review/analyze, placed in its file (`range` in the negotiated encoding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Names the finding in `claude.applyFinding` / `claude.dismissFinding` (and in the
    /// diagnostic's `data.findingId`).
    pub id: String,
    #[schemars(with = "crate::protocol::lsp::schema::Uri")]
    pub uri: Uri,
    #[schemars(with = "crate::protocol::lsp::schema::Range")]
    pub range: Range,
    pub severity: Severity,
    pub category: Category,
    pub title: String,
    pub explanation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// Checked against the code: `oldText` is exactly the text at `range`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<FindingFix>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<RelatedLocation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindingFix {
    pub old_text: String,
    pub new_text: String,
}

/// Another place that matters to a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RelatedLocation {
    #[schemars(with = "crate::protocol::lsp::schema::Uri")]
    pub uri: Uri,
    #[schemars(with = "crate::protocol::lsp::schema::Range")]
    pub range: Range,
    pub message: String,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Bug,
    Security,
    Performance,
    Correctness,
    Maintainability,
    Style,
    Test,
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
    pub record: SessionRecord,
    /// Its CLI process, while one is kept alive for the next turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveProcess>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Error,
    Cancelled,
}

/// One run (turn) of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    pub started_at: String,
    pub ended_at: String,
    pub outcome: Outcome,
    /// The answer's first line, or the error.
    pub summary: String,
    pub usage: RunUsage,
}

/// One conversation. Its first run named the action, document and range; later runs (continue,
/// refine) are appended to `runs`, and the totals add up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    pub id: String,
    pub action: Action,
    #[schemars(with = "crate::protocol::lsp::schema::Uri")]
    pub uri: Uri,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::protocol::lsp::schema::Range>")]
    pub range: Option<Range>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    pub started_at: String,
    pub ended_at: String,
    /// How the latest run ended.
    pub outcome: Outcome,
    /// The latest run's summary.
    pub summary: String,
    /// All runs of the conversation added up.
    pub usage: UsageCounts,
    pub workspace: PathBuf,
    /// The staging mirror the CLI ran in (edit actions); else it ran in the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<PathBuf>,
    /// The conversation this one was forked from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default)]
    pub runs: Vec<RunRecord>,
}

/// A conversation's idle process, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveProcess {
    pub pid: u32,
    pub idle_secs: u64,
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
    pub messages: Vec<TranscriptMessage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One message of a conversation, as the user would read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptMessage {
    pub role: Role,
    pub text: String,
    /// Tools the assistant called in this message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
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
    pub today: UsageCounts,
    pub total: UsageCounts,
    pub by_day: BTreeMap<String, UsageCounts>,
    pub by_model: BTreeMap<String, UsageCounts>,
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
    pub today: UsageCounts,
    pub total: UsageCounts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    pub session_id: String,
    #[serde(flatten)]
    pub usage: RunUsage,
}

/// Counts that add up: one run's, a session's, a day's or a model's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct UsageCounts {
    pub runs: u64,
    /// Agent turns (API round trips) as the CLI counts them.
    pub turns: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_creation_tokens: u64,
    pub cost_usd: f64,
    pub duration_ms: u64,
}

/// What one run used: its own share, never the process's running total.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunUsage {
    #[serde(flatten)]
    pub counts: UsageCounts,
    /// The model the run started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Per model (a run can use a fallback model or a small model for side tasks).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, UsageCounts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OutputKind {
    Text,
    Thinking,
    ToolUse,
    ToolResult,
    Result,
    // The run failed after its `result` item: a findings run whose CLI failed ending the turn.
    Error,
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

/// `claude/runs` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunsResult {
    pub runs: Vec<RunInfo>,
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
    pub entries: Vec<AuditEntry>,
}

/// Allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    Allow,
    Deny,
}

/// Who or what made a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DecidedBy {
    /// claude-lsp's own policy: the action's tool profile and the path sandbox.
    Policy,
    /// An `allowedTools` / `disallowedTools` rule (named in `rule`).
    Rule,
    /// The user, answering the question just now.
    User,
    /// The user's earlier "Allow for this session" (the grant is named in `rule`).
    Session,
    /// The question went unanswered for `permissionTimeoutSecs`.
    Timeout,
    /// Nobody could be asked (the editor cannot show questions, or a headless run).
    NoPrompt,
    /// The `permissionMode` setting (`bypassPermissions` or `dontAsk`).
    Mode,
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// RFC 3339, UTC.
    pub time: String,
    /// The CLI conversation the call belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The workspace the run works on.
    pub workspace: String,
    pub tool: String,
    /// The command, path, URL or query of the call (shortened, secrets redacted).
    pub input: String,
    pub decision: Decision,
    pub by: DecidedBy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why, in words (the model sees this for a denial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The `claude/metrics` result: the metrics plus the scheduler's and the circuit's state now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsReport {
    #[serde(flatten)]
    pub metrics: MetricsSnapshot,
    pub scheduler: SchedulerStats,
    pub circuit: CircuitSnapshot,
    /// The warm pool: processes ready, being started or cleared, and how runs were served.
    pub pool: PoolStats,
}

/// Everything the metrics hold, at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSnapshot {
    pub uptime_secs: u64,
    pub requests: RequestCounts,
    /// From the start of a request to its answer (queue wait and retries included).
    pub duration_ms: HistogramSnapshot,
    /// Time spent waiting for a free slot (and for the rate limit).
    pub queue_wait_ms: HistogramSnapshot,
    pub retries: RetryCounts,
    /// Runs resumed after a hung API call or a crashed CLI, or retried smaller after the context
    /// overflowed (`byReason`: the error kind that was recovered from).
    pub recoveries: RetryCounts,
    pub tokens: TokenCounts,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    pub total: u64,
    /// action → outcome (`success`, `cancelled`, or an error kind) → count.
    pub by_action: BTreeMap<String, BTreeMap<String, u64>>,
}

/// A histogram as served: count, sum, max, estimated quantiles and the non-empty buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistogramSnapshot {
    pub count: u64,
    pub sum_ms: u64,
    pub max_ms: u64,
    /// Quantiles are the upper bound of the bucket they fall in (at most the max).
    pub p50_ms: u64,
    pub p90_ms: u64,
    pub p99_ms: u64,
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// Inclusive upper bound; absent for the last bucket (everything longer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub le_ms: Option<u64>,
    pub count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryCounts {
    pub total: u64,
    /// The error kind that caused the retry → count.
    pub by_reason: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenCounts {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerStats {
    pub max_concurrent: usize,
    pub running: usize,
    pub queued: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitSnapshot {
    /// `closed`, `open` or `halfOpen`.
    pub state: String,
    pub consecutive_failures: usize,
    pub times_opened: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolStats {
    /// Initialized processes waiting for a run.
    pub warm: usize,
    /// Processes being started, or cleared after a run.
    pub filling: usize,
    /// Runs served by a warm process.
    pub hits: u64,
    /// Runs that had to spawn their own process.
    pub misses: u64,
    /// Used processes cleared and returned for another run.
    pub recycled: u64,
    /// CLI processes started, by fills and by runs that found none warm.
    pub started: u64,
    /// Started processes stopped without serving a run: a start cancelled or a fresh process
    /// displaced by a used one coming back, one beyond the limits, one unused for `poolIdleSecs`.
    pub discarded: u64,
}
