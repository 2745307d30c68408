//! One action run, independent of any editor: prompt → CLI (in the workspace, or in a staging
//! mirror for edit actions) → the text, the changed files and the usage. `run.rs` wraps it in the
//! guarantees every face gets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::base::error::{ErrorKind, ServerError};
use crate::claude::args::CliOptions;
use crate::claude::control::InitializeRequest;
use crate::claude::control::RebindableHandler;
use crate::claude::discover::CliBinary;
use crate::claude::errors::{ClaudeError, rejects_credentials};
use crate::claude::session::{
    ClaudeSession, RunEvent, RunLimits, RunResult, SessionConfig, run_turn,
};
use crate::engine::conversations::{Conversations, LiveTurn, ProcessKey};
use crate::engine::permissions::{self, PermissionGate, PermissionServices, Policy, tool_profile};
use crate::engine::pool::{self, Returnable, WarmPool};
use crate::engine::result_cache::ResultCache;
use crate::engine::retry::{Resilience, RetryLoop, RetryPolicy};
use crate::engine::staging::{StagingManager, StagingSettings};
use crate::model::activity::{self, TextProgress};
use crate::model::edits::FileChange;
use crate::model::prompt::{
    self, Action, ActionOptions, PromptContext, PromptDiagnostic, Selection,
};
use crate::model::sessions;
use crate::model::settings::Settings;
use crate::model::usage::{self, CliTotals, RunUsage};

/// How long a new process may take to answer `initialize`.
const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(30);
/// The agent's streamed text updates progress at most this often.
const TEXT_PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Everything a run needs to know about what the user asked.
#[derive(Debug, Clone)]
pub struct ActionRequest {
    pub action: Action,
    pub workspace: PathBuf,
    /// Absolute path of the target file.
    pub file: PathBuf,
    pub language_id: String,
    /// The buffer's text: unsaved text wins over the disk.
    pub text: String,
    pub selection: Option<Selection>,
    pub instruction: Option<String>,
    pub diagnostics: Vec<PromptDiagnostic>,
    pub options: ActionOptions,
    /// `git diff HEAD` + untracked files, for a review of uncommitted changes.
    pub changes_diff: Option<String>,
    /// Unsaved text of every open document in the workspace (absolute path, text).
    pub overlays: Vec<(PathBuf, String)>,
    /// Continue this conversation (its live process when it has one, else `--resume`).
    pub resume: Option<String>,
    /// With `resume`: branch a new conversation off it (`--fork-session`) instead.
    pub fork: bool,
}

impl Runner {
    /// What a run of `request` will likely cost, before it starts: an estimate from the
    /// prompt's size and the model's price (model/usage.rs).
    pub fn estimate(&self, request: &ActionRequest) -> Result<usage::CostEstimate, ServerError> {
        let prompt = request.prompt(None)?;
        let edit = request.action.is_edit();
        Ok(usage::estimate(prompt.chars().count(), edit, self.settings.model.as_deref()))
    }
}

impl ActionRequest {
    /// The prompt the agent gets; `edit_root`: the staging mirror an edit action works in.
    pub fn prompt(&self, edit_root: Option<&Path>) -> Result<String, ServerError> {
        prompt::build_prompt(&PromptContext {
            action: self.action,
            workspace_root: &self.workspace,
            file_path: &self.file,
            language_id: &self.language_id,
            text: &self.text,
            selection: self.selection.clone(),
            diagnostics: &self.diagnostics,
            instruction: self.instruction.as_deref(),
            edit_root,
            options: self.options.clone(),
            changes_diff: self.changes_diff.as_deref(),
        })
        .map_err(ServerError::from)
    }
}

/// What the user sees of a run as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Activity {
    /// A one-line progress message ("Reading src/lib.rs").
    Status(String),
    /// The line the agent is writing, so far: a status the next one replaces (a log of
    /// finished steps leaves it out).
    Writing(String),
    /// A piece of the full stream, for `claude/output`.
    Output { kind: OutputKind, text: String, tool: Option<String> },
    /// The CLI named the run's conversation (at the start of every turn): its session id, and
    /// the working directory it runs in (the staging mirror for edit actions).
    Session { id: String, cwd: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Text,
    Thinking,
    ToolUse,
    ToolResult,
}

#[derive(Debug, Clone)]
pub struct ActionOutcome {
    pub text: String,
    /// Files the run changed, with workspace paths (edit actions only).
    pub changes: Vec<FileChange>,
    /// `result.cost_usd` is the run's own cost (the CLI reports a process's running total).
    pub result: RunResult,
    /// What the run used, per model too.
    pub usage: RunUsage,
    /// Answered from the result cache (result_cache.rs): no API call, no cost.
    pub cached: bool,
}

/// The long-lived parts a run uses.
pub struct Runner {
    pub cli: CliBinary,
    pub settings: Settings,
    pub staging: Arc<StagingManager>,
    /// Who answers permission questions, the session grants, the audit log.
    pub permissions: PermissionServices,
    /// Warm CLI processes for new conversations; `None`: every run spawns its own.
    pub pool: Option<WarmPool>,
    /// The circuit breaker and metrics retries report to (default: none, for a lone run).
    pub resilience: Resilience,
    /// Live conversations: a follow-up goes to its conversation's idle process, and a finished
    /// run's process waits there for the next turn. `None`: every process ends with its run.
    pub conversations: Option<Arc<Conversations>>,
    /// The session index and usage ledger every run is recorded in (and budgeted against).
    pub sessions: Arc<sessions::SessionStore>,
    /// Earlier analyze and review answers by their inputs; `None`: no cache.
    pub results: Option<ResultCache>,
}

impl Runner {
    /// The pipeline alone; the faces run [`Runner::execute`] (run.rs), which adds the budget,
    /// the containment check and the books.
    pub(super) async fn run(
        &self,
        request: &ActionRequest,
        cancel: CancellationToken,
        on_activity: &mut (dyn FnMut(Activity) + Send),
    ) -> Result<ActionOutcome, ServerError> {
        permissions::check_bash_sandbox(&self.settings)?;
        // One turn at a time per conversation: a second follow-up waits for the first.
        let _turn = match (&request.resume, &self.conversations) {
            (Some(id), Some(conversations)) => Some(tokio::select! {
                turn = conversations.turn(id) => turn,
                () = cancel.cancelled() => return Err(ServerError::cancelled()),
            }),
            _ => None,
        };
        let may_edit = request.action.is_edit();
        let lease = if may_edit {
            on_activity(Activity::Status("Preparing the staging workspace".to_owned()));
            let staging_settings = StagingSettings {
                max_copy_bytes: self.settings.staging_max_copy_mb.saturating_mul(1024 * 1024),
                ..StagingSettings::default()
            };
            let acquire =
                self.staging.acquire(&request.workspace, &request.overlays, &staging_settings);
            Some(tokio::select! {
                lease = acquire => lease.map_err(|err| {
                    ServerError::new(ErrorKind::STAGING_FAILED, err.to_string(),
                        "the edit could not be staged; nothing was changed")
                })?,
                () = cancel.cancelled() => return Err(ServerError::cancelled()),
            })
        } else {
            None
        };
        let cwd = lease.as_ref().map_or(request.workspace.as_path(), |lease| lease.root());
        let prompt = request.prompt(lease.as_ref().map(|lease| lease.root()))?;

        let config = self.session_config(request, cwd, may_edit);
        let to_user_path =
            |path: &str| display_path(path, cwd, lease.as_ref().map(|l| l.workspace()));
        let limits = RunLimits {
            timeout: self.settings.timeout(),
            idle_timeout: Some(self.settings.idle_timeout()),
        };
        let map_text = |text: &str| match &lease {
            Some(lease) => lease.map_text(text),
            None => text.to_owned(),
        };
        // Transient API failures are retried here, inside the staging lease, so a retry resumes
        // the session in the same mirror with the edits the failed attempt made (retry.rs).
        let policy = RetryPolicy::from_settings(&self.settings);
        let mut retry = RetryLoop::new(policy, self.resilience.clone(), limits);
        let mut usage = RunUsage::default();
        let mut text_progress = TextProgress::new(TEXT_PROGRESS_INTERVAL);
        let result = loop {
            let attempt =
                retry.start(&cancel, &mut |status| on_activity(Activity::Status(status))).await?;
            let config = attempt.configure(config.clone());
            let prompt = attempt.prompt(&prompt);
            let outcome = self
                .run_cli(request, config, prompt, attempt.limits(), attempt.cancel(), |event| {
                    attempt.observe(event);
                    if let RunEvent::Init { session_id, .. } = event {
                        on_activity(Activity::Session {
                            id: session_id.clone(),
                            cwd: cwd.to_path_buf(),
                        });
                    }
                    for activity in activities(event, &to_user_path, &map_text, &mut text_progress)
                    {
                        on_activity(activity);
                    }
                })
                .await
                .map(|(result, run_usage)| {
                    usage = run_usage;
                    result
                });
            if let Some(result) = retry.finish(attempt, outcome)? {
                break result;
            }
        };

        let changes = match &lease {
            Some(lease) => lease.changes().await.map_err(|err| {
                ServerError::new(
                    ErrorKind::STAGING_FAILED,
                    err.to_string(),
                    "the run's edits could not be read back; nothing was changed",
                )
            })?,
            None => Vec::new(),
        };
        Ok(ActionOutcome { text: map_text(&result.text), changes, result, usage, cached: false })
    }

    /// One turn, in the right process, then the process's fate: after a successful turn it
    /// stays alive for the conversation's next turn (conversations.rs) or, when nobody keeps
    /// it, goes back to the warm pool (pool.rs); after a failed one it ends.
    async fn run_cli(
        &self,
        request: &ActionRequest,
        config: SessionConfig,
        prompt: &str,
        limits: RunLimits,
        cancel: CancellationToken,
        mut on_event: impl FnMut(&RunEvent) + Send,
    ) -> Result<(RunResult, RunUsage), ClaudeError> {
        if cancel.is_cancelled() {
            return Err(ClaudeError::Cancelled);
        }
        let key = ProcessKey {
            cwd: config.cwd.clone(),
            action: request.action,
            settings: self.settings.hash_for_pool(),
        };
        // A retry resumes its failed attempt's session: that shows in `config`, not in `request`.
        let process = match config.options.resume.clone() {
            Some(id) => self.continue_conversation(&id, config, &key).await?,
            None => self.new_conversation(config, &cancel).await?,
        };
        let mut process = process;
        let mut clean = process.clean;
        let mut observe = |event: &RunEvent| {
            if let RunEvent::ToolUse { name, .. } = event
                && !pool::leaves_no_state(name)
            {
                clean = false;
            }
            on_event(event);
        };
        let outcome = run_turn(&process.session, prompt, limits, &cancel, &mut observe).await;
        process.clean = clean;
        match outcome {
            Ok(mut result) => {
                let (usage, totals) = usage::run_usage(&result, &process.totals);
                result.cost_usd = usage.counts.cost_usd;
                self.keep_for_next_turn(&result.session_id, process, key, totals).await;
                Ok((result, usage))
            }
            Err(err) => {
                process.close().await;
                Err(err)
            }
        }
    }

    /// A new conversation: a warm process when the pool has one that matches (issue 8), else a
    /// new one.
    async fn new_conversation(
        &self,
        mut config: SessionConfig,
        cancel: &CancellationToken,
    ) -> Result<TurnProcess, ClaudeError> {
        let handler = RebindableHandler::new(config.handler.clone());
        config.handler = handler.clone();
        let initialize = permissions::hook_registration(&self.settings);
        let (session, totals, returnable) = match self.pool.as_ref().filter(|p| p.is_enabled()) {
            Some(pool) => pool.acquire(config, &initialize, cancel).await?.into_parts(),
            None => (spawn_initialized(config, initialize).await?, CliTotals::default(), None),
        };
        Ok(TurnProcess { session, returnable, handler, totals, clean: true })
    }

    /// The next turn of conversation `id`: its live process when it has one that fits (no
    /// spawn), else a new process resuming its transcript (`--resume`, `--fork-session`).
    async fn continue_conversation(
        &self,
        id: &str,
        mut config: SessionConfig,
        key: &ProcessKey,
    ) -> Result<TurnProcess, ClaudeError> {
        let run_handler = config.handler.clone();
        if !config.options.fork_session
            && let Some(conversations) = &self.conversations
            && let Some(live) = conversations.take(id, key).await
        {
            live.handler.bind(run_handler);
            let LiveTurn { session, handler, totals, returnable, clean } = live;
            return Ok(TurnProcess { session, returnable, handler, totals, clean });
        }
        let handler = RebindableHandler::new(run_handler);
        config.handler = handler.clone();
        let totals = self.prepare_resume(id, &config.cwd).await;
        let initialize = permissions::hook_registration(&self.settings);
        let session = spawn_initialized(config, initialize).await?;
        Ok(TurnProcess { session, returnable: None, handler, totals, clean: true })
    }

    /// Before a new process resumes conversation `id` in `cwd`: put its transcript where that
    /// CLI looks (older CLIs look only under their working directory), and read the cost totals
    /// the CLI will restore from it.
    async fn prepare_resume(&self, id: &str, cwd: &Path) -> CliTotals {
        let Some(config_dir) = sessions::cli_config_dir(&self.settings.env) else {
            return CliTotals::default();
        };
        let (id, cwd) = (id.to_owned(), cwd.to_path_buf());
        let prepared = tokio::task::spawn_blocking(move || {
            sessions::prepare_resume(&config_dir, &id, &cwd)
                .map(|transcript| transcript.map(|path| sessions::transcript_cost_state(&path)))
        })
        .await;
        match prepared {
            Ok(Ok(totals)) => totals.unwrap_or_default(),
            Ok(Err(err)) => {
                tracing::warn!(%err, "could not prepare the conversation's transcript for --resume");
                CliTotals::default()
            }
            Err(err) => {
                tracing::warn!(%err, "preparing the conversation's transcript failed");
                CliTotals::default()
            }
        }
    }

    /// After a successful turn: the conversation keeps the process for its next turn, or lets
    /// it go at once (no conversations here, or `liveSessions` 0).
    async fn keep_for_next_turn(
        &self,
        id: &str,
        process: TurnProcess,
        key: ProcessKey,
        totals: CliTotals,
    ) {
        let TurnProcess { session, returnable, handler, clean, .. } = process;
        let turn = LiveTurn { session, handler, totals, returnable, clean };
        let Some(conversations) = &self.conversations else {
            turn.release().await;
            return;
        };
        conversations.keep(
            id.to_owned(),
            turn,
            key,
            Duration::from_secs(self.settings.session_idle_secs),
            self.settings.live_sessions,
        );
    }

    /// What a new read-only run in `workspace` spawns (its config and `initialize` request): the
    /// warm pool keeps these ready. Edit runs spawn in a staging mirror, which exists only once a
    /// run created it; the pool learns their key from that first run.
    pub fn warm_template(&self, workspace: &Path) -> (SessionConfig, InitializeRequest) {
        let probe = ActionRequest {
            action: Action::Analyze,
            workspace: workspace.to_path_buf(),
            file: workspace.to_path_buf(),
            language_id: String::new(),
            text: String::new(),
            selection: None,
            instruction: None,
            diagnostics: Vec::new(),
            options: ActionOptions::default(),
            changes_diff: None,
            overlays: Vec::new(),
            resume: None,
            fork: false,
        };
        let config = self.session_config(&probe, workspace, false);
        (config, permissions::hook_registration(&self.settings))
    }

    fn session_config(&self, request: &ActionRequest, cwd: &Path, may_edit: bool) -> SessionConfig {
        let settings = &self.settings;
        let mut append = prompt::system_prompt_addendum(request.action);
        if let Some(extra) = &settings.append_system_prompt {
            append.push_str("\n\n");
            append.push_str(extra);
        }
        let (max_turns, effort) = match request.action {
            Action::Analyze => crate::model::findings::analysis_limits(
                request.options.analyze.depth,
                settings.max_turns,
            ),
            _ => (settings.max_turns, None),
        };
        // Review and analyze answer with findings in this shape (the CLI's StructuredOutput tool).
        let report_findings = matches!(request.action, Action::Review | Action::Analyze);
        let options = CliOptions {
            model: settings.model.clone(),
            fallback_model: settings.fallback_model.clone(),
            max_turns,
            effort,
            json_schema: report_findings.then(crate::model::findings::schema),
            max_budget_usd: settings.max_budget_usd,
            allowed_tools: settings.allowed_tools.clone(),
            disallowed_tools: settings.disallowed_tools.clone(),
            tools: Some(tool_profile(may_edit, settings, self.permissions.can_ask())),
            permission_mode: permissions::permission_mode(settings),
            mcp_config: settings
                .mcp_servers
                .clone()
                .map(|servers| serde_json::json!({"mcpServers": servers})),
            system_prompt: settings.system_prompt.clone(),
            append_system_prompt: Some(append),
            agents: settings.agents.clone(),
            add_dirs: settings.additional_directories.clone(),
            resume: request.resume.clone(),
            fork_session: request.fork && request.resume.is_some(),
            include_partial_messages: true,
            permission_prompt_tool_stdio: true,
            settings: crate::engine::sandbox::cli_settings(cwd, may_edit, settings),
            ..CliOptions::default()
        };
        SessionConfig {
            binary: self.cli.path.clone(),
            options,
            cwd: cwd.to_path_buf(),
            env: settings.cli_env(),
            handler: Arc::new(PermissionGate::new(
                Policy::new(cwd, settings, may_edit),
                self.permissions.clone(),
                &request.workspace,
                settings,
            )),
        }
    }
}

/// The process a turn runs in.
struct TurnProcess {
    session: ClaudeSession,
    /// How it goes back to the warm pool; `None` for a process the pool did not provide.
    returnable: Option<Returnable>,
    /// The process's control handler, bound to the current run.
    handler: Arc<RebindableHandler>,
    /// The process's running cost totals before the turn.
    totals: CliTotals,
    /// No tool its conversation ran left state in the process (`pool::leaves_no_state`).
    clean: bool,
}

impl TurnProcess {
    /// The turn failed: the process ends (the pool refills its key).
    async fn close(self) {
        match self.returnable {
            Some(returnable) => returnable.retire(self.session),
            None => self.session.shutdown().await,
        }
    }
}

/// Spawn a CLI and send it `initialize` (the sandbox's hooks); a process that fails to
/// initialize is shut down.
async fn spawn_initialized(
    config: SessionConfig,
    initialize: InitializeRequest,
) -> Result<ClaudeSession, ClaudeError> {
    let session = ClaudeSession::spawn(config).await?;
    match session.initialize(initialize, INITIALIZE_TIMEOUT).await {
        Ok(_) => Ok(session),
        Err(err) => {
            session.shutdown().await;
            Err(err)
        }
    }
}

/// The activities one CLI event shows the user.
fn activities(
    event: &RunEvent,
    to_user_path: &dyn Fn(&str) -> String,
    map_text: &dyn Fn(&str) -> String,
    text_progress: &mut TextProgress,
) -> Vec<Activity> {
    let output = |kind, text: String, tool: Option<String>| Activity::Output { kind, text, tool };
    match event {
        RunEvent::TextDelta(text) => {
            let text = map_text(text);
            let status = text_progress.piece(&text, Instant::now()).map(Activity::Writing);
            status.into_iter().chain([output(OutputKind::Text, text, None)]).collect()
        }
        RunEvent::ThinkingDelta(text) => vec![output(OutputKind::Thinking, map_text(text), None)],
        RunEvent::Text(text) => text_progress
            .block(&map_text(text), Instant::now())
            .map(Activity::Status)
            .into_iter()
            .collect(),
        RunEvent::ToolUse { name, input, .. } => {
            let status = activity::describe_tool_use(name, input, to_user_path);
            vec![
                Activity::Status(status.clone()),
                output(OutputKind::ToolUse, status, Some(name.clone())),
            ]
        }
        RunEvent::ToolResult { content, is_error, .. } => {
            let text = if *is_error { format!("error: {content}") } else { content.clone() };
            vec![output(OutputKind::ToolResult, map_text(&text), None)]
        }
        // The run stops at once (retry.rs): announcing a retry would be wrong.
        RunEvent::ApiRetry { status, error, .. }
            if rejects_credentials(*status, error.as_deref()) =>
        {
            vec![Activity::Status("The Anthropic API rejected the credentials".to_owned())]
        }
        RunEvent::ApiRetry { attempt, max_retries, delay_ms, error, .. } => {
            let why = error.as_deref().unwrap_or("API error");
            vec![Activity::Status(format!(
                "{why}: retrying in {:.0} s (attempt {attempt}/{max_retries})",
                (*delay_ms as f64 / 1000.0).ceil()
            ))]
        }
        _ => Vec::new(),
    }
}

/// A path the CLI used, as the user knows it: relative to the workspace when inside it.
fn display_path(path: &str, cwd: &Path, workspace: Option<&Path>) -> String {
    let path = Path::new(path);
    match path.strip_prefix(cwd) {
        Ok(relative) => relative.display().to_string(),
        Err(_) => match workspace.and_then(|ws| path.strip_prefix(ws).ok()) {
            Some(relative) => relative.display().to_string(),
            None => path.display().to_string(),
        },
    }
}
