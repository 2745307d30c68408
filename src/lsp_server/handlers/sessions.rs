//! Conversations and usage on the LSP side: `claude/sessions`, `claude/session`, `claude/usage`,
//! the `claude.continue` and `claude.showUsage` commands, the `Claude: refine…` code actions,
//! and the checks before and the bookkeeping after every run (session index, usage ledger,
//! the `claude/usage` notification, the regions an edit produced).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::base::error::ServerError;
use crate::engine::run::Books;
use crate::lsp_server::state::ServerState;
use crate::lsp_server::{from_proto, to_proto};
use crate::model::edits::{self, FileChange};
use crate::model::prompt::{Action, instruction_comments};
use crate::model::regions::{ProducedRegion, produced_lines};
use crate::model::sessions::{
    Loaded, SessionRecord, check_session_id, session_not_found, summarize,
};
use crate::model::transcripts;
use crate::model::usage::{self, RunUsage, UsageCounts, UsageLedger};
use crate::protocol::lsp::{
    CodeAction, CodeActionKind, CodeActionOrCommand, Command, MessageType, Position, Range,
    TextDocumentContentChangeEvent, TextDocumentIdentifier, Uri,
};
use crate::protocol::lsp_ext::{
    ActionOptions, ActionParams, ContinueParams, LastRun, SessionDetail, SessionInfo,
    SessionParams, SessionsParams, SessionsResult, UsageParams, UsageReport, WorkspaceUsage,
    commands, requests,
};

/// `claude/sessions` lists at most this many unless asked for more.
const DEFAULT_LIMIT: usize = 100;
/// Refine actions offered at one place (one per conversation, newest first).
const MAX_REFINE_ACTIONS: usize = 3;

/// `claude/sessions`.
pub async fn sessions(
    state: &ServerState,
    params: SessionsParams,
) -> Result<SessionsResult, ServerError> {
    let workspaces = match &params.uri {
        Some(uri) => vec![workspace_of(state, uri)?],
        None => state.workspace_folders(),
    };
    let mut found = Vec::new();
    for workspace in workspaces {
        let loaded = state.sessions.sessions(&workspace);
        show_warnings(state, &loaded.warnings).await;
        found.extend(loaded.value);
    }
    let wanted_path = params.uri.as_ref().and_then(|uri| edits::uri_to_path(uri).ok());
    let wanted_action = params.action.map(from_proto::action);
    found.retain(|session| {
        wanted_action.is_none_or(|action| session.action == action)
            && wanted_path.as_ref().is_none_or(|wanted| {
                edits::uri_to_path(&session.uri).is_ok_and(|path| path == *wanted)
            })
    });
    found.sort_by(|a, b| b.ended_at.cmp(&a.ended_at));
    found.truncate(params.limit.unwrap_or(DEFAULT_LIMIT));
    let sessions = found.into_iter().map(|record| session_info(state, record)).collect();
    Ok(SessionsResult { sessions })
}

/// `claude/session`: one conversation with its messages from the CLI's transcript.
pub async fn session(
    state: &ServerState,
    params: SessionParams,
) -> Result<SessionDetail, ServerError> {
    check_session_id(&params.session_id)?;
    let record = find_session(state, &params.session_id, None)
        .await
        .ok_or_else(|| session_not_found(&params.session_id, "it is not in the session index"))?;
    let transcript = transcripts::cli_config_dir(&state.settings().env)
        .and_then(|dir| transcripts::find_transcript(&dir, &record.id));
    let messages = match transcript {
        Some(path) => transcripts::read_transcript(&path).map_err(|err| {
            ServerError::file_access(format!(
                "cannot read the transcript {} of conversation {}: {err}",
                path.display(),
                record.id
            ))
        })?,
        None => Vec::new(),
    };
    let messages = messages.into_iter().map(to_proto::transcript_message).collect();
    Ok(SessionDetail { info: session_info(state, record), messages })
}

/// `claude/usage`.
pub async fn usage(state: &ServerState, params: UsageParams) -> Result<UsageReport, ServerError> {
    let ledgers = ledgers(state, params.uri.as_ref()).await?;
    Ok(usage_report(state, &ledgers, None))
}

/// The usage ledger of the workspace of `uri`, else of every workspace folder.
async fn ledgers(
    state: &ServerState,
    uri: Option<&Uri>,
) -> Result<Vec<(PathBuf, UsageLedger)>, ServerError> {
    let workspaces = match uri {
        Some(uri) => vec![workspace_of(state, uri)?],
        None => state.workspace_folders(),
    };
    let mut ledgers = Vec::new();
    for workspace in workspaces {
        let loaded = state.sessions.usage(&workspace);
        show_warnings(state, &loaded.warnings).await;
        ledgers.push((workspace, loaded.value));
    }
    Ok(ledgers)
}

/// `claude.showUsage`: the report, also shown as a message.
pub async fn show_usage(state: &ServerState) -> Result<UsageReport, ServerError> {
    let ledgers = ledgers(state, None).await?;
    let all = merged(&ledgers);
    let count = |usage: UsageCounts| {
        format!(
            "${:.4} ({} run{}, {} tokens)",
            usage.cost_usd,
            usage.runs,
            if usage.runs == 1 { "" } else { "s" },
            crate::model::activity::compact_count(usage.tokens())
        )
    };
    let mut message =
        format!("Claude usage today: {}; in all: {}", count(all.day(&today())), count(all.total()));
    if let Some(budget) = state.settings().daily_budget_usd {
        message.push_str(&format!("; daily budget ${budget:.2}"));
    }
    state.client.show_message(MessageType::INFO, message).await;
    Ok(usage_report(state, &ledgers, None))
}

fn merged(ledgers: &[(PathBuf, UsageLedger)]) -> UsageLedger {
    let mut all = UsageLedger::default();
    for (_, ledger) in ledgers {
        all.merge(ledger);
    }
    all
}

/// Today (UTC), `YYYY-MM-DD`.
fn today() -> String {
    crate::base::time::day(crate::base::time::now_secs())
}

/// `claude.continue`: the next turn of a conversation as the conversation's action and its
/// parameters (the caller starts it as a background command).
pub async fn continuation(
    state: &ServerState,
    params: ContinueParams,
) -> Result<(Action, ActionParams), ServerError> {
    check_session_id(&params.session_id)?;
    let Some(instruction) = params.instruction.filter(|text| !text.trim().is_empty()) else {
        return Err(ServerError::invalid_params(
            "claude.continue needs an instruction: say what to change (editors with an input box \
             ask for it; elsewhere write it as a `claude: …` comment in the code and pick \
             `Claude: refine: …`)",
        ));
    };
    let hint = params.text_document.as_ref().map(|document| &document.uri);
    let record = find_session(state, &params.session_id, hint)
        .await
        .ok_or_else(|| session_not_found(&params.session_id, "it is not in the session index"))?;
    let action_params = ActionParams {
        text_document: params
            .text_document
            .unwrap_or_else(|| TextDocumentIdentifier { uri: record.uri.clone() }),
        range: params.range,
        instruction: Some(instruction),
        session_id: Some(record.id.clone()),
        fork: params.fork,
        work_done_token: params.work_done_token,
        diagnostics: Vec::new(),
        options: ActionOptions::default(),
        no_cache: false,
    };
    Ok((record.action, action_params))
}

/// Before a run: the conversation it continues must exist (the engine checks the budget).
pub async fn check_before_run(
    state: &ServerState,
    workspace: &Path,
    session_id: Option<&str>,
) -> Result<(), ServerError> {
    if let Some(id) = session_id {
        check_session_id(id)?;
        // A conversation whose last turn still ends in the background may have no transcript
        // or index entry yet: its process serves the follow-up.
        let live = state.conversations.live(id).is_some() || state.conversations.has_turn(id);
        if !live {
            check_resumable(state, workspace, id).await?;
        }
    }
    Ok(())
}

/// A conversation without a live process is resumed from the CLI's transcript: say so clearly
/// when it is gone, instead of letting the CLI fail later.
async fn check_resumable(
    state: &ServerState,
    workspace: &Path,
    id: &str,
) -> Result<(), ServerError> {
    let Some(config_dir) = transcripts::cli_config_dir(&state.settings().env) else {
        // No home directory to look in: the CLI will say whether it knows the conversation.
        return Ok(());
    };
    if transcripts::find_transcript(&config_dir, id).is_some() {
        return Ok(());
    }
    let loaded = state.sessions.sessions(workspace);
    show_warnings(state, &loaded.warnings).await;
    let why = if loaded.value.iter().any(|session| session.id == id) {
        format!("its transcript is gone from {} (deleted?)", config_dir.join("projects").display())
    } else {
        "it is not in this workspace's session index and Claude Code has no transcript of it"
            .to_owned()
    };
    Err(session_not_found(id, &why))
}

/// After a run (recorded by the engine): show what went wrong with the books, and send the
/// `claude/usage` notification when the run spent something.
pub async fn after_run(state: &ServerState, workspace: &Path, books: &Books) {
    show_warnings(state, &books.warnings).await;
    let (Some(recorded), Some(usage)) = (&books.recorded, &books.usage) else { return };
    // Only to clients that asked for it (a status bar): others would just log it.
    if state.client_info().usage_notifications {
        let ledgers = [(workspace.to_path_buf(), recorded.ledger.clone())];
        let report = usage_report(state, &ledgers, Some((&recorded.session.id, usage)));
        state.client.send_notification::<requests::DeprecatedUsageChanged>(report.clone()).await;
        state.client.send_notification::<requests::UsageChanged>(report).await;
    }
}

/// The totals of `ledgers`, and in the notification the run (conversation, usage) that just
/// ended.
fn usage_report(
    state: &ServerState,
    ledgers: &[(PathBuf, UsageLedger)],
    last_run: Option<(&str, &RunUsage)>,
) -> UsageReport {
    let now = crate::base::time::now_secs();
    let day = crate::base::time::day(now);
    let all = merged(ledgers);
    let mut workspaces = Vec::new();
    let mut runs = Vec::new();
    for (workspace, ledger) in ledgers {
        runs.extend(run_samples(&state.sessions.sessions(workspace).value));
        if let Ok(uri) = edits::path_to_uri(workspace) {
            workspaces.push(WorkspaceUsage {
                uri,
                today: to_proto::usage_counts(ledger.day(&day)),
                total: to_proto::usage_counts(ledger.total()),
            });
        }
    }
    let today = all.day(&day);
    let forecast = usage::forecast(today.cost_usd, &runs, &day, now);
    UsageReport {
        burn_rate_usd_per_hour: forecast.burn_rate_usd_per_hour,
        projected_today_usd: forecast.projected_today_usd,
        cheaper_model: usage::cheaper_model(&runs).map(to_proto::model_suggestion),
        today: to_proto::usage_counts(today),
        total: to_proto::usage_counts(all.total()),
        by_day: to_proto::usage_by(all.by_day()),
        by_model: to_proto::usage_by(all.by_model()),
        day,
        workspaces,
        daily_budget_usd: state.settings().daily_budget_usd,
        last_run: last_run.map(|(session_id, usage)| LastRun {
            session_id: session_id.to_owned(),
            usage: to_proto::run_usage(usage.clone()),
        }),
    }
}

/// Every run of the session index, as the forecast and the model suggestion read it.
fn run_samples(sessions: &[crate::model::sessions::SessionRecord]) -> Vec<usage::RunSample> {
    sessions
        .iter()
        .flat_map(|session| &session.runs)
        .map(|run| usage::RunSample {
            action: run.action.to_string(),
            model: run.usage.model.clone(),
            success: run.outcome == crate::model::sessions::Outcome::Success,
            cost_usd: run.usage.counts.cost_usd,
            started_at: run.started_at.clone(),
        })
        .collect()
}

/// The regions an edit will produce, to offer `Claude: refine…` on them once it is applied.
/// `changes` are the edit's final file changes (rebased onto the buffers).
pub fn expect_regions(state: &ServerState, session_id: &str, label: &str, changes: &[FileChange]) {
    let label = summarize(label);
    for change in changes {
        let (path, before, after) = match change {
            FileChange::Modified { path, before, after } => (path, before.as_str(), after),
            FileChange::Created { path, content } => (path, "", content),
            _ => continue,
        };
        let regions = produced_lines(before, after)
            .into_iter()
            .map(|(start_line, end_line)| ProducedRegion {
                session_id: session_id.to_owned(),
                label: label.clone(),
                start_line,
                end_line,
            })
            .collect();
        let current = open_text(state, path);
        state.regions.expect(path.clone(), after.clone(), regions, current.as_deref());
    }
}

/// The text of the open document at `path`.
fn open_text(state: &ServerState, path: &Path) -> Option<String> {
    let documents = state.documents.read();
    let document = documents
        .iter()
        .find(|doc| edits::uri_to_path(doc.uri()).is_ok_and(|doc_path| doc_path == path))?;
    Some(document.text())
}

/// `didOpen`: an expected edit may arrive as the opening text.
pub fn document_opened(state: &ServerState, uri: &Uri, text: &str) {
    if let Ok(path) = edits::uri_to_path(uri) {
        state.regions.opened(&path, text);
    }
}

/// `didChange` (after the store applied it): move produced regions along.
pub fn document_changed(
    state: &ServerState,
    uri: &Uri,
    changes: &[TextDocumentContentChangeEvent],
) {
    if let Ok(path) = edits::uri_to_path(uri) {
        state
            .regions
            .changed(&path, changes, || state.documents.read().get(uri).map(|doc| doc.text()));
    }
}

/// `didClose`.
pub fn document_closed(state: &ServerState, uri: &Uri) {
    if let Ok(path) = edits::uri_to_path(uri) {
        state.regions.closed(&path);
    }
}

/// `Claude: refine…` on each conversation that wrote code in `range` (newest first), and
/// `Claude: refine: <instruction>` for instruction comments there.
pub fn refine_actions(
    state: &ServerState,
    uri: &Uri,
    range: Range,
    text: &str,
) -> Vec<CodeActionOrCommand> {
    let Ok(path) = edits::uri_to_path(uri) else { return Vec::new() };
    let mut regions = state.regions.at(&path, range.start.line..=range.end.line);
    let mut seen = Vec::new();
    regions.retain(|region| {
        let first = !seen.contains(&region.session_id);
        seen.push(region.session_id.clone());
        first
    });
    regions.truncate(MAX_REFINE_ACTIONS);
    let comments = instruction_comments(text, range.start.line..=range.end.line);
    let mut actions = Vec::new();
    for region in regions {
        let region_range =
            Range::new(Position::new(region.start_line, 0), Position::new(region.end_line + 1, 0));
        let base = ContinueParams {
            session_id: region.session_id.clone(),
            instruction: None,
            text_document: Some(TextDocumentIdentifier { uri: uri.clone() }),
            range: Some(region_range),
            fork: false,
            work_done_token: None,
        };
        let label =
            if region.label.is_empty() { String::new() } else { format!(" ({})", region.label) };
        actions.push(refine_action(&format!("Claude: refine…{label}"), &base));
        for comment in &comments {
            let instruction = format!(
                "{}\n(This comes from the instruction comment on line {}; remove that comment when done.)",
                comment.instruction,
                comment.line + 1
            );
            let params = ContinueParams { instruction: Some(instruction), ..base.clone() };
            actions
                .push(refine_action(&format!("Claude: refine: {}", comment.instruction), &params));
        }
    }
    actions
}

fn refine_action(title: &str, params: &ContinueParams) -> CodeActionOrCommand {
    CodeActionOrCommand::CodeAction(CodeAction {
        title: title.to_owned(),
        kind: Some(CodeActionKind::REFACTOR_REWRITE),
        command: Some(Command {
            title: title.to_owned(),
            command: commands::CONTINUE.to_owned(),
            arguments: Some(vec![json!(params)]),
        }),
        ..CodeAction::default()
    })
}

/// The conversation `id`, from the index of the workspace of `hint` or of any workspace folder.
async fn find_session(state: &ServerState, id: &str, hint: Option<&Uri>) -> Option<SessionRecord> {
    let mut workspaces: Vec<PathBuf> =
        hint.and_then(|uri| workspace_of(state, uri).ok()).into_iter().collect();
    workspaces.extend(state.workspace_folders());
    workspaces.dedup();
    for workspace in workspaces {
        let Loaded { value, warnings } = state.sessions.sessions(&workspace);
        show_warnings(state, &warnings).await;
        if let Some(record) = value.into_iter().find(|session| session.id == id) {
            return Some(record);
        }
    }
    None
}

fn session_info(state: &ServerState, record: SessionRecord) -> SessionInfo {
    let live = state.conversations.live(&record.id);
    to_proto::session_info(record, live)
}

fn workspace_of(state: &ServerState, uri: &Uri) -> Result<PathBuf, ServerError> {
    let path =
        edits::uri_to_path(uri).map_err(|err| ServerError::invalid_params(err.to_string()))?;
    Ok(state.workspace_for(&path))
}

async fn show_warnings(state: &ServerState, warnings: &[String]) {
    for warning in warnings {
        state.client.show_message(MessageType::WARNING, format!("claude-lsp: {warning}")).await;
    }
}
