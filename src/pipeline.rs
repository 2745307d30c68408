//! One action run, independent of any editor: prompt → CLI (in the workspace, or in a staging
//! mirror for edit actions) → the text, the changed files and the usage. The LSP handlers and the
//! headless `claude-lsp run` both drive this.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::activity;
use crate::claude::discover::CliBinary;
use crate::claude::errors::ClaudeError;
use crate::claude::session::{RunEvent, RunLimits, RunResult, SessionConfig, run_once};
use crate::claude::args::CliOptions;
use crate::edits::FileChange;
use crate::error::{ErrorKind, ServerError};
use crate::permissions::{Sandbox, tool_profile};
use crate::prompt::{self, Action, ActionOptions, PromptContext, PromptDiagnostic, Selection};
use crate::settings::Settings;
use crate::staging::{StagingManager, StagingSettings};

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
    /// Continue this conversation.
    pub resume: Option<String>,
}

/// What the user sees of a run as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Activity {
    /// A one-line progress message ("Reading src/lib.rs").
    Status(String),
    /// A piece of the full stream, for `claude/output`.
    Output { kind: OutputKind, text: String, tool: Option<String> },
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
    pub result: RunResult,
}

/// The long-lived parts a run uses.
pub struct Runner {
    pub cli: CliBinary,
    pub settings: Settings,
    pub staging: Arc<StagingManager>,
}

impl Runner {
    pub async fn run(
        &self,
        request: &ActionRequest,
        cancel: CancellationToken,
        on_activity: &mut (dyn FnMut(Activity) + Send),
    ) -> Result<ActionOutcome, ServerError> {
        let may_edit = request.action.is_edit();
        let lease = if may_edit {
            on_activity(Activity::Status("Preparing the staging workspace".to_owned()));
            let staging_settings = StagingSettings {
                max_copy_bytes: self.settings.staging_max_copy_mb.saturating_mul(1024 * 1024),
                ..StagingSettings::default()
            };
            let acquire = self.staging.acquire(&request.workspace, &request.overlays, &staging_settings);
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
        let prompt = prompt::build_prompt(&PromptContext {
            action: request.action,
            workspace_root: &request.workspace,
            file_path: &request.file,
            language_id: &request.language_id,
            text: &request.text,
            selection: request.selection.clone(),
            diagnostics: &request.diagnostics,
            instruction: request.instruction.as_deref(),
            edit_root: lease.as_ref().map(|lease| lease.root()),
            options: request.options.clone(),
            changes_diff: request.changes_diff.as_deref(),
        })
        .map_err(ServerError::from)?;

        let config = self.session_config(request, cwd, may_edit);
        let to_user_path = |path: &str| display_path(path, cwd, lease.as_ref().map(|l| l.workspace()));
        let limits = RunLimits {
            timeout: self.settings.timeout(),
            idle_timeout: Some(self.settings.idle_timeout()),
        };
        let map_text = |text: &str| match &lease {
            Some(lease) => lease.map_text(text),
            None => text.to_owned(),
        };
        let result = run_once(config, &prompt, limits, cancel, |event| {
            for activity in activities(event, &to_user_path, &map_text) {
                on_activity(activity);
            }
        })
        .await
        .map_err(|err| claude_error(&err))?;

        let changes = match &lease {
            Some(lease) => lease.changes().await.map_err(|err| {
                ServerError::new(ErrorKind::STAGING_FAILED, err.to_string(),
                    "the run's edits could not be read back; nothing was changed")
            })?,
            None => Vec::new(),
        };
        Ok(ActionOutcome { text: map_text(&result.text), changes, result })
    }

    fn session_config(&self, request: &ActionRequest, cwd: &Path, may_edit: bool) -> SessionConfig {
        let settings = &self.settings;
        let mut append = prompt::system_prompt_addendum(request.action);
        if let Some(extra) = &settings.append_system_prompt {
            append.push_str("\n\n");
            append.push_str(extra);
        }
        let options = CliOptions {
            model: settings.model.clone(),
            fallback_model: settings.fallback_model.clone(),
            max_turns: settings.max_turns,
            max_budget_usd: settings.max_budget_usd,
            allowed_tools: settings.allowed_tools.clone(),
            disallowed_tools: settings.disallowed_tools.clone(),
            tools: Some(tool_profile(may_edit)),
            append_system_prompt: Some(append),
            add_dirs: settings.additional_directories.clone(),
            resume: request.resume.clone(),
            include_partial_messages: true,
            permission_prompt_tool_stdio: true,
            ..CliOptions::default()
        };
        SessionConfig {
            binary: self.cli.path.clone(),
            options,
            cwd: cwd.to_path_buf(),
            env: settings.cli_env(),
            handler: Arc::new(Sandbox::new(cwd, &settings.additional_directories, may_edit)),
        }
    }
}

/// The activities one CLI event shows the user.
fn activities(
    event: &RunEvent,
    to_user_path: &dyn Fn(&str) -> String,
    map_text: &dyn Fn(&str) -> String,
) -> Vec<Activity> {
    let output = |kind, text: String, tool: Option<String>| Activity::Output { kind, text, tool };
    match event {
        RunEvent::TextDelta(text) => vec![output(OutputKind::Text, map_text(text), None)],
        RunEvent::ThinkingDelta(text) => vec![output(OutputKind::Thinking, map_text(text), None)],
        RunEvent::Text(text) => activity::describe_text(&map_text(text))
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

/// The client-facing form of a CLI error: its kind maps onto the error table.
pub fn claude_error(err: &ClaudeError) -> ServerError {
    let kind = match err.kind() {
        "not_logged_in" | "auth_failed" => ErrorKind::AUTH_FAILED,
        "cancelled" => ErrorKind::CANCELLED,
        "io" => ErrorKind::PROCESS_CRASHED,
        other => ErrorKind::by_name(other).unwrap_or(ErrorKind::API_ERROR),
    };
    ServerError::new(kind, err.to_string(), err.hint())
}
