//! One action run, independent of any editor: prompt → CLI (in the workspace, or in a staging
//! mirror for edit actions) → the text, the changed files and the usage. `run.rs` wraps it in the
//! guarantees every face gets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{OwnedMutexGuard, oneshot};
use tokio_util::sync::CancellationToken;

use crate::base::error::{ErrorKind, ServerError};
use crate::claude::args::CliOptions;
use crate::claude::control::InitializeRequest;
use crate::claude::control::RebindableHandler;
use crate::claude::discover::CliBinary;
use crate::claude::errors::{ClaudeError, rejects_credentials};
use crate::claude::session::{
    ClaudeSession, OpenTurn, RunEvent, RunLimits, RunResult, SessionConfig, TurnStep, Usage,
    run_turn, run_turn_until,
};
use crate::engine::background::Background;
use crate::engine::breaker::CircuitBreaker;
use crate::engine::conversations::{Conversations, LiveTurn, ProcessKey};
use crate::engine::permissions::{self, PermissionGate, PermissionServices, Policy, tool_profile};
use crate::engine::pool::{self, Returnable, WarmPool};
use crate::engine::result_cache::ResultCache;
use crate::engine::retry::{self, ContextFallback, Resilience, RetryLoop, RetryPolicy};
use crate::engine::scope;
use crate::engine::staging::{StagingManager, StagingSettings};
use crate::model::activity::{self, TextProgress};
use crate::model::edits::FileChange;
use crate::model::prompt::{
    self, Action, ActionOptions, PromptContext, PromptDiagnostic, Selection,
};
use crate::model::scope::{ScopeFiles, ScopeProgress};
use crate::model::settings::Settings;
use crate::model::usage::{self, CliTotals, RunUsage, UsageCounts};
use crate::model::{sessions, transcripts};

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

impl ActionRequest {
    /// What the prompt is built from. `edit_root`: the staging mirror an edit action works in;
    /// `scope_files`: the files of a folder or workspace scope.
    pub fn prompt_context<'a>(
        &'a self,
        edit_root: Option<&'a Path>,
        scope_files: Option<&'a ScopeFiles>,
    ) -> PromptContext<'a> {
        PromptContext {
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
            scope_files,
        }
    }

    /// The model this run asks for: its own `model` option, else the `model` setting (`None`:
    /// the CLI's default).
    pub fn model(&self, settings: &Settings) -> Option<String> {
        run_model(&self.options).or_else(|| settings.model.clone())
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

/// The CLI still finishing a turn whose answer was taken from its `StructuredOutput` call.
#[derive(Debug)]
pub struct Finishing {
    /// What the turn had used when it answered: the API responses streamed so far, at list
    /// prices (`usage::list_cost`). The run's figures until the CLI's `result` gives its own.
    pub known: RunUsage,
    /// How the rest of the turn went.
    pub end: oneshot::Receiver<TurnEnd>,
}

/// How a turn that went on after its answer ended.
#[derive(Debug)]
pub struct TurnEnd {
    /// What the whole turn cost, as the CLI's `result` said (`None`: it ended without one).
    pub usage: Option<RunUsage>,
    /// Why it failed, when it did (the run had answered: it is reported, not retried).
    pub error: Option<ClaudeError>,
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
    /// Where a findings run's CLI finishes its turn after the answer (and its books are
    /// written): shut down with the server.
    pub background: Background,
}

impl Runner {
    /// The pipeline alone; the faces run [`Runner::execute`] (run.rs), which adds the budget,
    /// the containment check and the books. `day_budget_left` caps the CLI's own budget
    /// (`--max-budget-usd`); `spent` adds up what every attempt cost, failed ones too. A
    /// findings run may answer before its CLI finished the turn: then [`Finishing`] tells what
    /// the rest of the turn cost.
    pub(super) async fn run(
        &self,
        request: &ActionRequest,
        scope_files: Option<&ScopeFiles>,
        cancel: CancellationToken,
        on_activity: &mut (dyn FnMut(Activity) + Send),
        day_budget_left: Option<f64>,
        spent: &mut RunUsage,
    ) -> Result<(ActionOutcome, Option<Finishing>), ServerError> {
        permissions::check_bash_sandbox(&self.settings)?;
        // One turn at a time per conversation: a second follow-up waits for the first (and for
        // a turn finishing in the background, which takes this guard along).
        let mut conversation_turn = match (&request.resume, &self.conversations) {
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
        let prompt_context =
            request.prompt_context(lease.as_ref().map(|lease| lease.root()), scope_files);
        let prompt = prompt::build_prompt(&prompt_context).map_err(ServerError::from)?;
        // For a prompt over the context window: the files referenced instead of inlined.
        let smaller_prompt =
            prompt::build_reference_prompt(&prompt_context).map_err(ServerError::from)?;
        // Reads of files in a folder or workspace scope count through it in progress.
        let mut scope_progress = scope_files.cloned().map(ScopeProgress::new);

        let mut config = self.session_config(request, cwd, may_edit);
        if let Some(left) = day_budget_left {
            // The CLI stops once the run has spent what is left of today's budget: the day
            // goes over by at most the API call that crossed it.
            let run_budget = config.options.max_budget_usd.map_or(left, |own| own.min(left));
            config.options.max_budget_usd = Some(run_budget);
        }
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
        let fallback = ContextFallback {
            continues_conversation: request.resume.is_some(),
            smaller_prompt: smaller_prompt.is_some(),
        };
        let mut retry =
            RetryLoop::new(policy, self.resilience.clone(), limits).with_context_fallback(fallback);
        let mut text_progress = TextProgress::new(TEXT_PROGRESS_INTERVAL);
        let mut finishing = None;
        let result = loop {
            let attempt =
                retry.start(&cancel, &mut |status| on_activity(Activity::Status(status))).await?;
            let config = attempt.configure(config.clone());
            let prompt = attempt.prompt(&prompt, smaller_prompt.as_deref().unwrap_or(&prompt));
            let turn = Turn {
                prompt,
                compact_first: attempt.compacts_first(),
                limits: attempt.limits(),
                cancel: attempt.cancel(),
                conversation_turn: &mut conversation_turn,
            };
            let outcome = self
                .run_cli(request, config, turn, spent, |event| {
                    attempt.observe(event);
                    if let RunEvent::Init { session_id, .. } = event {
                        on_activity(Activity::Session {
                            id: session_id.clone(),
                            cwd: cwd.to_path_buf(),
                        });
                    }
                    let shown = activities(
                        event,
                        &to_user_path,
                        &map_text,
                        &mut text_progress,
                        scope_progress.as_mut(),
                    );
                    for activity in shown {
                        on_activity(activity);
                    }
                })
                .await
                .map(|answer| {
                    finishing = answer.finishing;
                    answer.result
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
        let outcome = ActionOutcome {
            text: map_text(&result.text),
            changes,
            result,
            usage: spent.clone(),
            cached: false,
        };
        Ok((outcome, finishing))
    }

    /// One turn, in the right process, then the process's fate: after a successful turn it
    /// stays alive for the conversation's next turn (conversations.rs) or, when nobody keeps
    /// it, goes back to the warm pool (pool.rs); after a failed one it ends.
    ///
    /// A findings run answers as soon as the CLI accepted the model's `StructuredOutput` call
    /// (validated against the schema): the CLI ends its turn in the background (a user's `Stop`
    /// hook runs then), and only once its `result` arrived is the process kept or given back;
    /// when the rest of the turn fails, the process is retired.
    async fn run_cli(
        &self,
        request: &ActionRequest,
        config: SessionConfig,
        turn: Turn<'_>,
        spent: &mut RunUsage,
        mut on_event: impl FnMut(&RunEvent) + Send,
    ) -> Result<CliAnswer, ClaudeError> {
        let Turn { prompt, compact_first, limits, cancel, conversation_turn } = turn;
        if cancel.is_cancelled() {
            return Err(ClaudeError::Cancelled);
        }
        let key = ProcessKey {
            cwd: config.cwd.clone(),
            action: request.action,
            model: config.options.model.clone(),
            settings: self.settings.hash_for_pool(),
        };
        let answers_early = config.options.json_schema.is_some();
        // A retry resumes its failed attempt's session: that shows in `config`, not in `request`.
        let process = match config.options.resume.clone() {
            Some(id) => self.continue_conversation(&id, config, &key).await?,
            None => self.new_conversation(config, &cancel).await?,
        };
        let mut process = process;
        let mut watch = TurnWatch { clean: process.clean, ..TurnWatch::default() };
        let mut structured = StructuredAnswer::default();
        let mut observe = |event: &RunEvent| {
            watch.see(event);
            on_event(event);
        };
        let mut compacted = Ok(());
        if compact_first {
            // The CLI's own compaction: an API call that summarizes the conversation so far.
            let session = &process.session;
            compacted = run_turn(session, "/compact", limits, &cancel, &mut |_| {}).await.map(drop);
        }
        let started = Instant::now();
        let step = match compacted {
            Ok(()) => {
                let answered = |event: &RunEvent| answers_early && structured.accepts(event);
                let session = &process.session;
                run_turn_until(session, prompt, limits, &cancel, &mut observe, answered).await
            }
            Err(err) => Err(err),
        };
        process.clean = watch.clean;
        match step {
            Ok(TurnStep::Finished(mut result)) => {
                let (usage, totals) = usage::run_usage(&result, &process.totals);
                result.cost_usd = usage.counts.cost_usd;
                spent.add_attempt(&usage);
                self.keeper().keep(&result.session_id, process, key, totals);
                Ok(CliAnswer { result, finishing: None })
            }
            Ok(TurnStep::Answered(open)) => {
                let session_id = process.session.session_id().unwrap_or_default();
                let output = structured.accepted.take().unwrap_or_default();
                let known = watch.known_usage(started.elapsed());
                let result = answered_result(session_id.clone(), output, &known);
                // The conversation's next turn waits for this one to end in the background.
                let mut turns: Vec<OwnedMutexGuard<()>> =
                    conversation_turn.take().into_iter().collect();
                if let Some(conversations) = &self.conversations
                    && request.resume.as_deref() != Some(session_id.as_str())
                {
                    turns.push(conversations.turn(&session_id).await);
                }
                let (report, end) = oneshot::channel();
                let keeper = self.keeper();
                let circuit = self.resilience.circuit.clone();
                let closing = self.background.closing();
                self.background.spawn(async move {
                    let end =
                        finish_in_background(process, open, watch, key, keeper, circuit, closing)
                            .await;
                    drop(turns);
                    let _ = report.send(end);
                });
                Ok(CliAnswer { result, finishing: Some(Finishing { known, end }) })
            }
            Err(err) => {
                if let Some(failed) = watch.failed_result {
                    spent.add_attempt(&usage::run_usage(&failed, &process.totals).0);
                }
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
        let Some(config_dir) = transcripts::cli_config_dir(&self.settings.env) else {
            return CliTotals::default();
        };
        let (id, cwd) = (id.to_owned(), cwd.to_path_buf());
        let prepared = tokio::task::spawn_blocking(move || {
            transcripts::prepare_resume(&config_dir, &id, &cwd)
                .map(|transcript| transcript.map(|path| transcripts::transcript_cost_state(&path)))
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

    /// Where this runner's processes go after a successful turn.
    fn keeper(&self) -> Keeper {
        Keeper {
            pool: self.pool.clone(),
            conversations: self.conversations.clone(),
            idle_for: Duration::from_secs(self.settings.session_idle_secs),
            live_sessions: self.settings.live_sessions,
        }
    }

    /// What a run of `request` will likely cost, before it starts: an estimate from the
    /// prompt's size and the run's model's price (model/usage.rs). `scope_files`: the files of
    /// its folder or workspace scope, as [`Runner::scope_files`] lists them.
    pub fn estimate(
        &self,
        request: &ActionRequest,
        scope_files: Option<&ScopeFiles>,
    ) -> Result<usage::CostEstimate, ServerError> {
        let prompt = prompt::build_prompt(&request.prompt_context(None, scope_files))
            .map_err(ServerError::from)?;
        let model = request.model(&self.settings);
        Ok(usage::estimate(prompt.chars().count(), request.action.is_edit(), model.as_deref()))
    }

    /// The files of a folder or workspace scope (`None` for any other scope).
    pub async fn scope_files(
        &self,
        request: &ActionRequest,
        on_activity: &mut (dyn FnMut(Activity) + Send),
    ) -> Result<Option<ScopeFiles>, ServerError> {
        let options = &request.options;
        if request.action.is_edit() || !options.review.scope.is_some_and(|s| s.is_tree()) {
            return Ok(None);
        }
        let directory = prompt::scope_directory(
            options,
            &request.workspace,
            &request.file,
            request.file.is_dir(),
        )?;
        on_activity(Activity::Status("Listing the files in scope".to_owned()));
        let files = scope::files_in_scope(
            &request.workspace,
            directory.as_deref(),
            options.analyze.include_tests,
        )
        .await?;
        Ok(Some(files))
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
            Action::Analyze | Action::Review => crate::model::findings::analysis_limits(
                request.options.analyze.depth,
                settings.max_turns,
            ),
            _ => (settings.max_turns, None),
        };
        // Review and analyze answer with findings in this shape (the CLI's StructuredOutput tool).
        let report_findings = matches!(request.action, Action::Review | Action::Analyze);
        let options = CliOptions {
            model: request.model(settings),
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

/// What one attempt sends to the CLI, and within which limits.
struct Turn<'a> {
    prompt: &'a str,
    /// Compact the conversation (`/compact`) before the prompt.
    compact_first: bool,
    limits: RunLimits,
    cancel: CancellationToken,
    /// The run's hold on its conversation (a follow-up's): a turn that finishes in the
    /// background takes it along.
    conversation_turn: &'a mut Option<OwnedMutexGuard<()>>,
}

/// What one attempt answered.
struct CliAnswer {
    result: RunResult,
    /// The turn goes on in the background after an answer from its `StructuredOutput` call.
    finishing: Option<Finishing>,
}

/// The name of the tool the CLI offers for `--json-schema` answers.
const STRUCTURED_OUTPUT_TOOL: &str = "StructuredOutput";

/// Spots the CLI accepting the model's `StructuredOutput` call: the call, then a `tool_result`
/// for it that is not an error (the CLI checked the input against the schema; a rejected call
/// gets an error result, and the model tries again).
#[derive(Default)]
struct StructuredAnswer {
    calls: Vec<(String, Value)>,
    accepted: Option<Value>,
}

impl StructuredAnswer {
    fn accepts(&mut self, event: &RunEvent) -> bool {
        match event {
            RunEvent::ToolUse { id, name, input } if name == STRUCTURED_OUTPUT_TOOL => {
                self.calls.push((id.clone(), input.clone()));
                false
            }
            RunEvent::ToolResult { tool_use_id, is_error: false, .. } => {
                let Some(at) = self.calls.iter().position(|(id, _)| id == tool_use_id) else {
                    return false;
                };
                self.accepted = Some(self.calls.swap_remove(at).1);
                true
            }
            _ => false,
        }
    }
}

/// A run's result as its accepted `StructuredOutput` call gives it, before the CLI's `result`
/// (whose text is the same output as JSON): the usage `known` so far; the CLI's own figures
/// come with [`Finishing`].
fn answered_result(session_id: String, output: Value, known: &RunUsage) -> RunResult {
    let counts = &known.counts;
    RunResult {
        session_id,
        text: output.to_string(),
        structured_output: Some(output),
        usage: Usage {
            input_tokens: counts.input_tokens,
            output_tokens: counts.output_tokens,
            cache_read_tokens: counts.cache_read_tokens,
            cache_creation_tokens: counts.cache_creation_tokens,
        },
        cost_usd: counts.cost_usd,
        num_turns: u32::try_from(counts.turns).unwrap_or(u32::MAX),
        duration_ms: counts.duration_ms,
        model: known.model.clone(),
        permission_denials: Vec::new(),
        raw: Value::Null,
    }
}

/// What a turn's events say about its process and its cost.
#[derive(Default)]
struct TurnWatch {
    /// No tool the conversation ran left state in the process (`pool::leaves_no_state`).
    clean: bool,
    /// The `result` of a failed turn: what it cost.
    failed_result: Option<Box<RunResult>>,
    model: Option<String>,
    /// Each API response of the turn so far: its model and usage.
    api_calls: BTreeMap<String, (Option<String>, Usage)>,
}

impl TurnWatch {
    fn see(&mut self, event: &RunEvent) {
        match event {
            RunEvent::FailedResult(result) => self.failed_result = Some(result.clone()),
            RunEvent::ToolUse { name, .. } if !pool::leaves_no_state(name) => self.clean = false,
            RunEvent::Init { model, .. } => self.model.clone_from(model),
            RunEvent::ApiUsage { message_id, model, usage } => {
                let call = self.api_calls.entry(message_id.clone()).or_default();
                call.0.clone_from(model);
                call.1 = call.1.max_each(usage);
            }
            _ => {}
        }
    }

    /// What the turn used so far by its API responses (each an agent turn), priced at list
    /// prices: the CLI reports its own figures only with its `result`.
    fn known_usage(&self, took: Duration) -> RunUsage {
        let mut known = RunUsage { model: self.model.clone(), ..RunUsage::default() };
        for (model, tokens) in self.api_calls.values() {
            let model = model.as_ref().or(self.model.as_ref());
            let call = UsageCounts {
                runs: 1,
                turns: 1,
                input_tokens: tokens.input_tokens,
                output_tokens: tokens.output_tokens,
                cache_read_tokens: tokens.cache_read_tokens,
                cache_creation_tokens: tokens.cache_creation_tokens,
                cost_usd: usage::list_cost(tokens, model.map(String::as_str)),
                duration_ms: 0,
            };
            known.counts.add(&call);
            if let Some(model) = model {
                known.models.entry(model.clone()).or_default().add(&call);
            }
        }
        known.counts.runs = 1;
        known.counts.duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        known
    }
}

/// The rest of a turn whose answer the run already gave: followed to its `result` (within the
/// turn's limits, until shutdown), then the process is kept or given back like after any
/// turn, or retired when the turn failed. A failure counts in the circuit breaker as a failed
/// attempt's does (the attempt was recorded a success when it answered).
async fn finish_in_background(
    mut process: TurnProcess,
    open: OpenTurn,
    mut watch: TurnWatch,
    key: ProcessKey,
    keeper: Keeper,
    circuit: Option<Arc<CircuitBreaker>>,
    closing: CancellationToken,
) -> TurnEnd {
    let outcome = open.finish(&process.session, &closing, &mut |event| watch.see(event)).await;
    process.clean = watch.clean;
    if let (Some(circuit), Err(_)) = (&circuit, &outcome) {
        circuit.record_late(retry::api_outcome(&outcome));
    }
    match outcome {
        Ok(result) => {
            let (usage, totals) = usage::run_usage(&result, &process.totals);
            keeper.keep(&result.session_id, process, key, totals);
            TurnEnd { usage: Some(usage), error: None }
        }
        Err(err) => {
            let pid = process.session.pid();
            tracing::warn!(pid, %err, "the CLI did not end its turn after the run had answered: retiring it");
            let failed = watch.failed_result.take();
            let usage = failed.map(|failed| usage::run_usage(&failed, &process.totals).0);
            process.close().await;
            // Stopped by the server's shutdown: not a failure of the run.
            let error = (err != ClaudeError::Cancelled).then_some(err);
            TurnEnd { usage, error }
        }
    }
}

/// Where a process goes after a successful turn.
struct Keeper {
    pool: Option<WarmPool>,
    conversations: Option<Arc<Conversations>>,
    idle_for: Duration,
    live_sessions: usize,
}

impl Keeper {
    /// The conversation keeps the process for its next turn, or lets it go at once (no
    /// conversations here, `liveSessions` 0, or runs waiting for a slot: a process cleared and
    /// handed on spares them a start; a follow-up resumes in a new one).
    fn keep(&self, id: &str, process: TurnProcess, key: ProcessKey, totals: CliTotals) {
        let TurnProcess { session, returnable, handler, clean, .. } = process;
        let turn = LiveTurn { session, handler, totals, returnable, clean };
        let runs_waiting = self.pool.as_ref().is_some_and(|pool| pool.runs_waiting() > 0);
        let Some(conversations) = self.conversations.as_ref().filter(|_| !runs_waiting) else {
            turn.release();
            return;
        };
        conversations.keep(id.to_owned(), turn, key, self.idle_for, self.live_sessions);
        if let Some(pool) = &self.pool {
            pool.check_idle_memory();
        }
    }
}

/// The run's own `model` option, when it names one.
fn run_model(options: &ActionOptions) -> Option<String> {
    options.model.as_deref().map(str::trim).filter(|model| !model.is_empty()).map(str::to_owned)
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
    scope_progress: Option<&mut ScopeProgress>,
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
            let mut status = activity::describe_tool_use(name, input, to_user_path);
            let read = input.get("file_path").and_then(serde_json::Value::as_str);
            if let (Some(progress), "Read", Some(path)) = (scope_progress, name.as_str(), read)
                && let Some(count) = progress.read(&to_user_path(path).replace('\\', "/"))
            {
                status = format!("{status} {count}");
            }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call(id: &str, name: &str) -> RunEvent {
        RunEvent::ToolUse { id: id.to_owned(), name: name.to_owned(), input: json!({"id": id}) }
    }

    fn result(id: &str, is_error: bool) -> RunEvent {
        RunEvent::ToolResult {
            tool_use_id: id.to_owned(),
            content: String::new(),
            is_error,
            structured: None,
        }
    }

    #[test]
    fn only_a_structured_output_call_the_cli_accepted_is_the_answer() {
        let mut answer = StructuredAnswer::default();
        // Another tool's result, and a StructuredOutput call the schema rejected: no answer.
        assert!(!answer.accepts(&call("read", "Read")));
        assert!(!answer.accepts(&result("read", false)));
        assert!(!answer.accepts(&call("bad", STRUCTURED_OUTPUT_TOOL)));
        assert!(!answer.accepts(&result("bad", true)));
        assert!(!answer.accepts(&call("good", STRUCTURED_OUTPUT_TOOL)));
        assert!(answer.accepted.is_none(), "accepted before its tool result");
        assert!(answer.accepts(&result("good", false)));
        assert_eq!(answer.accepted, Some(json!({"id": "good"})));
    }

    fn api_usage(id: &str, input_tokens: u64, output_tokens: u64) -> RunEvent {
        RunEvent::ApiUsage {
            message_id: id.to_owned(),
            model: Some("claude-sonnet-4-5".to_owned()),
            usage: Usage { input_tokens, output_tokens, ..Usage::default() },
        }
    }

    #[test]
    fn an_answer_from_the_call_reports_the_usage_streamed_so_far() {
        let mut watch = TurnWatch::default();
        // Two API responses, each reported at its start and again at its end.
        for event in [
            api_usage("m1", 1_000, 1),
            api_usage("m1", 1_000, 200),
            api_usage("m2", 3_000, 1),
            api_usage("m2", 3_000, 50),
        ] {
            watch.see(&event);
        }
        let known = watch.known_usage(Duration::from_millis(7));
        let output = json!({"findings": [], "summary": "Fine."});
        let result = answered_result("s".into(), output.clone(), &known);
        assert_eq!(result.structured_output, Some(output.clone()));
        assert_eq!(serde_json::from_str::<Value>(&result.text).unwrap(), output);
        assert_eq!((result.num_turns, result.duration_ms), (2, 7));
        assert_eq!((result.usage.input_tokens, result.usage.output_tokens), (4_000, 250));
        // Sonnet: $3 in, $15 out per million tokens.
        let cost = (4_000.0 * 3.0 + 250.0 * 15.0) / 1e6;
        assert!((result.cost_usd - cost).abs() < 1e-12, "{}", result.cost_usd);
        assert_eq!(known.counts.runs, 1);
        assert_eq!(known.models["claude-sonnet-4-5"].turns, 2);
    }
}
