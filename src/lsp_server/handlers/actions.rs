//! The four actions, as custom requests (result returned, nothing applied) and as commands
//! (answered at once; the result is delivered later through applyEdit / showMessage /
//! showDocument).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::base::error::{ErrorKind, ServerError};
use crate::base::secrets::{self, StreamRedactor};
use crate::claude::session::RunResult;
use crate::engine::metrics::TokenCounts;
use crate::engine::pipeline::{ActionOutcome, ActionRequest, Activity, OutputKind};
use crate::engine::run::{Books, RunAnswer, RunEnd, RunRequest};
use crate::engine::scheduler::{Slot, TicketEvent};
use crate::lsp_server::handlers::findings;
use crate::lsp_server::handlers::progress::Progress;
use crate::lsp_server::handlers::sessions;
use crate::lsp_server::handlers::show::open_in_editor;
use crate::lsp_server::state::{ClientInfo, RunEntry, ServerState, Snapshot};
use crate::lsp_server::{from_proto, to_proto};
use crate::model::activity::compact_count;
use crate::model::answers::write_answer;
use crate::model::documents::{Document, DocumentStore};
use crate::model::edits::{self, FileChange};
use crate::model::findings::Finding;
use crate::model::prompt::{Action, PromptDiagnostic, ReviewScope, Selection};
use crate::model::settings::Delivery;
use crate::protocol::lsp::request::ApplyWorkspaceEdit;
use crate::protocol::lsp::{ApplyWorkspaceEditParams, MessageType, Uri, WorkspaceEdit};
use crate::protocol::lsp_ext::{
    ActionParams, ActionResult, OutputKind as WireKind, OutputParams, RunStarted, requests,
};

/// A run's answer as the LSP face holds it: returned as an [`ActionResult`], or applied and
/// shown by a command.
struct RunReport {
    session_id: String,
    text: String,
    edit: Option<WorkspaceEdit>,
    findings: Option<Vec<Finding>>,
    /// The changes the edit makes (rebased onto the open buffers).
    changes: Vec<FileChange>,
    /// The CLI's result: turns, tokens, cost (the run's own), model.
    run: RunResult,
    /// Answered from the result cache: no API call was made.
    cached: bool,
    /// Answered before the CLI ended the turn: its usage reaches the metrics with its books.
    books_pending: bool,
}

impl RunAnswer for RunReport {
    fn session_id(&self) -> &str {
        &self.session_id
    }

    fn text(&self) -> &str {
        &self.text
    }
}

/// The report as the action requests answer it.
fn action_result(report: &RunReport) -> ActionResult {
    ActionResult {
        session_id: report.session_id.clone(),
        text: report.text.clone(),
        edit: report.edit.clone(),
        findings: report
            .findings
            .as_ref()
            .map(|found| found.iter().map(to_proto::finding).collect()),
        files: report.changes.iter().filter_map(to_proto::changed_file).collect(),
        metadata: to_proto::run_metadata(&report.run, report.cached),
    }
}

/// Cancels its token when dropped: a cancelled request's future is dropped by tower-lsp, and the
/// run (on its own task, so it can shut the CLI down properly) must stop with it.
struct CancelOnDrop(CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// `claude/<action>`: run and return the result; never apply anything.
pub async fn request(
    state: Arc<ServerState>,
    action: Action,
    params: ActionParams,
) -> Result<ActionResult, ServerError> {
    let run_id = new_run_id();
    let cancel = CancellationToken::new();
    let _guard = CancelOnDrop(cancel.clone());
    let snapshot = state.snapshot();
    let task = tokio::spawn(execute(state, snapshot, action, params, run_id, cancel));
    let report =
        task.await.map_err(|err| ServerError::internal(format!("the run failed: {err}")))??;
    Ok(action_result(&report))
}

/// `claude.<action>` command: start the run in the background and answer at once.
pub fn command(state: Arc<ServerState>, action: Action, params: ActionParams) -> RunStarted {
    let run_id = new_run_id();
    let started = RunStarted { run_id: run_id.clone() };
    let snapshot = state.snapshot();
    tokio::spawn(async move {
        let cancel = CancellationToken::new();
        let outcome = execute(
            state.clone(),
            snapshot.clone(),
            action,
            params.clone(),
            run_id.clone(),
            cancel,
        )
        .await;
        // The command path publishes findings as diagnostics; a request only returns them.
        if let Ok(RunReport { findings: Some(found), .. }) = &outcome {
            findings::publish_run(&state, action, &params, found).await;
        }
        deliver(&state, &snapshot, action, &params, &run_id, outcome).await;
    });
    started
}

fn new_run_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The document a run targets, as it was when the run started.
struct Target {
    uri: Uri,
    path: PathBuf,
    workspace: PathBuf,
    language_id: String,
    text: String,
}

async fn execute(
    state: Arc<ServerState>,
    snapshot: Snapshot,
    action: Action,
    params: ActionParams,
    run_id: String,
    cancel: CancellationToken,
) -> Result<RunReport, ServerError> {
    let started = Instant::now();
    let target = match target(&state, &snapshot, &params) {
        Ok(target) => target,
        Err(err) => {
            let result = Err(err);
            record_metrics(&state, action, started.elapsed(), &result);
            return result;
        }
    };
    let started_at = now_rfc3339();
    state.register_run(
        run_id.clone(),
        RunEntry {
            action,
            uri: target.uri.clone(),
            started_at,
            cancel: cancel.clone(),
            progress_token: None,
        },
    );
    let run = RunInputs {
        snapshot: &snapshot,
        action,
        params: &params,
        target: &target,
        run_id: &run_id,
    };
    let result = run_with_progress(&state, run, cancel).await;
    state.finish_run(&run_id);
    record_metrics(&state, action, started.elapsed(), &result);
    result
}

/// What a run works on, fixed when it starts.
#[derive(Clone, Copy)]
struct RunInputs<'a> {
    snapshot: &'a Snapshot,
    action: Action,
    params: &'a ActionParams,
    target: &'a Target,
    run_id: &'a str,
}

async fn run_with_progress(
    state: &Arc<ServerState>,
    run: RunInputs<'_>,
    cancel: CancellationToken,
) -> Result<RunReport, ServerError> {
    let RunInputs { snapshot, action, params, target, run_id } = run;
    let info = &snapshot.client;
    let title = format!("Claude: {action}");
    let progress = Progress::begin(
        &state.client,
        params.work_done_token.clone(),
        info.progress_create,
        &title,
        |token| state.set_run_progress_token(run_id, token.clone()),
    )
    .await;

    let (mut end, slot) = run_pipeline(state, run, &progress, cancel).await;
    // A run that answered before its CLI ended the turn keeps its slot until then: that CLI
    // still runs, and a run waiting for a slot then gets its process instead of starting one.
    let slot = if end.late.is_some() { slot } else { None };
    if let Ok(report) = &mut end.result {
        report.books_pending = end.late.is_some();
        output_answer(state, run_id, &progress, report, &target.workspace).await;
    }
    sessions::after_run(state, &target.workspace, &end.books).await;
    if let Some(late) = end.late {
        let output = OutputSender::new(state, run_id, &progress);
        after_late_books(state, target.workspace.clone(), late, output, slot);
    }
    let result = end.result;
    let summary = match &result {
        Ok(report) => summary(report),
        Err(err) if err.kind == ErrorKind::CANCELLED => "Cancelled; nothing was applied".to_owned(),
        Err(err) => format!("Failed: {}", err.message),
    };
    progress.end(summary).await;
    result
}

/// The run through the engine (budget, pipeline, containment, the books), its activity
/// forwarded to the editor, its outcome made a [`RunReport`]; and the scheduler's slot it ran
/// in (none when it failed before it got one).
async fn run_pipeline(
    state: &Arc<ServerState>,
    run: RunInputs<'_>,
    progress: &Progress,
    cancel: CancellationToken,
) -> (RunEnd<RunReport, ServerError>, Option<Slot>) {
    let RunInputs { snapshot, action, params, target, run_id } = run;
    let started_at = now_rfc3339();
    let prepared = async {
        let runner = state.runner(snapshot).await?;
        let request = action_request(state, snapshot, action, params, target).await?;
        let slot = wait_for_slot(state, &target.workspace, progress, &cancel).await?;
        Ok::<_, ServerError>((runner, request, slot))
    };
    let (mut runner, request, slot) = match prepared.await {
        Ok(prepared) => prepared,
        Err(err) => return (RunEnd::failed(err), None),
    };
    let request = RunRequest {
        action: request,
        uri: target.uri.clone(),
        range: params.range,
        started_at,
        no_cache: params.no_cache,
    };

    // Activities are reported from a sync callback; forward them in order on one task.
    let (tx, mut rx) = mpsc::unbounded_channel::<Activity>();
    // Permission questions go to this editor and say "Waiting for your permission" in progress.
    runner.permissions.prompter =
        Some(crate::lsp_server::handlers::permissions::prompter(state, tx.downgrade()));
    let mut output = OutputSender::new(state, run_id, progress);
    let forward = async {
        while let Some(activity) = rx.recv().await {
            match activity {
                Activity::Status(message) | Activity::Writing(message) => {
                    progress.report(message).await;
                }
                Activity::Output { kind, text, tool } => output.send(kind, &text, tool).await,
                Activity::Session { .. } => {}
            }
        }
        output.flush().await;
    };
    // The outcome as the editor gets it: findings placed, edits rebased onto its buffers.
    let finish = |outcome: ActionOutcome| {
        let run_target = findings::RunTarget {
            path: &target.path,
            workspace: &target.workspace,
            text: &target.text,
        };
        let collected = findings::collect(state, action, params, &run_target, &outcome)?;
        let mut report = run_report(state, &snapshot.client, outcome)?;
        if let Some(collected) = collected {
            report.text = collected.text;
            report.findings = Some(collected.findings);
        }
        // The answer may quote a key the agent read or was told: never hand it to the client.
        report.text = secrets::redacted(&report.text);
        Ok(report)
    };
    let run = async {
        // Moving the sender in means the forwarder ends when the run is done.
        let mut on_activity = move |activity: Activity| {
            let _ = tx.send(activity);
        };
        runner.execute(&request, cancel.clone(), &mut on_activity, finish).await
    };
    let (end, ()) = tokio::join!(run, forward);
    (end, Some(slot))
}

/// `claude/estimate`: the action's prompt built as for a run, priced; nothing runs.
pub async fn estimate(
    state: &ServerState,
    params: crate::protocol::lsp_ext::EstimateParams,
) -> Result<crate::protocol::lsp_ext::EstimateResult, ServerError> {
    let action: Action = serde_json::from_value(serde_json::Value::String(params.action.clone()))
        .map_err(|_| {
        ServerError::invalid_params(format!(
            "unknown action {:?}: one of generate, analyze, refactor, review",
            params.action
        ))
    })?;
    let snapshot = state.snapshot();
    let target = target(state, &snapshot, &params.params)?;
    let runner = state.runner(&snapshot).await?;
    let request = action_request(state, &snapshot, action, &params.params, &target).await?;
    let scope_files = runner.scope_files(&request, &mut |_| {}).await?;
    Ok(crate::lsp_server::to_proto::estimate(&runner.estimate(&request, scope_files.as_ref())?))
}

/// A run that answered before its CLI finished the turn (a findings run): once the engine wrote
/// its books, its usage goes into the metrics (its answer carried only what was known then) and
/// the client hears of it, as after any run. A failure of the rest of the turn is the run's
/// last `claude/output` item. The run's `slot` frees when the turn has ended.
fn after_late_books(
    state: &Arc<ServerState>,
    workspace: PathBuf,
    late: tokio::sync::oneshot::Receiver<Books>,
    output: OutputSender,
    slot: Option<Slot>,
) {
    let state = state.clone();
    tokio::spawn(async move {
        let books = late.await;
        drop(slot);
        let Ok(books) = books else { return };
        if let Some(err) = &books.failed_after_answer {
            let text = format!("The CLI failed after the answer was sent: {}", err.message);
            output.emit_error(text).await;
        }
        if let Some(usage) = &books.usage {
            let counts = &usage.counts;
            let tokens = TokenCounts {
                input: counts.input_tokens,
                output: counts.output_tokens,
                cache_read: counts.cache_read_tokens,
            };
            state.metrics.record_usage(tokens, counts.cost_usd);
        }
        sessions::after_run(&state, &workspace, &books).await;
    });
}

/// Wait in the scheduler's queue (reporting the position) for a slot to run the CLI in. Fails
/// at once while the circuit breaker is open, rather than queueing for nothing.
async fn wait_for_slot(
    state: &ServerState,
    workspace: &Path,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Slot, ServerError> {
    state.circuit.check().map_err(|open| open.to_error())?;
    let queued_at = Instant::now();
    let mut ticket = state.scheduler.enqueue(workspace);
    let slot = loop {
        tokio::select! {
            event = ticket.next_event() => match event {
                TicketEvent::Ready(slot) => break slot,
                TicketEvent::Waiting(message) => progress.report(message).await,
            },
            () = cancel.cancelled() => return Err(ServerError::cancelled()),
        }
    };
    state.metrics.record_queue_wait(queued_at.elapsed());
    Ok(slot)
}

/// Count an answered request in the metrics.
fn record_metrics(
    state: &ServerState,
    action: Action,
    duration: Duration,
    result: &Result<RunReport, ServerError>,
) {
    let outcome = match result {
        Ok(report) if report.books_pending => "success",
        Ok(report) => {
            let run = &report.run;
            let tokens = TokenCounts {
                input: run.usage.input_tokens,
                output: run.usage.output_tokens,
                cache_read: run.usage.cache_read_tokens,
            };
            state.metrics.record_usage(tokens, run.cost_usd);
            "success"
        }
        Err(err) => err.kind.name,
    };
    state.metrics.record_request(&action.to_string(), outcome, duration);
}

/// Sends `claude/output` with secrets redacted. Streamed text and thinking pass through a
/// [`StreamRedactor`] each, so a key split across two deltas never shows.
struct OutputSender {
    client: crate::protocol::lsp::Client,
    run_id: String,
    token: Option<crate::protocol::lsp::NumberOrString>,
    text: StreamRedactor,
    thinking: StreamRedactor,
}

impl OutputSender {
    fn new(state: &ServerState, run_id: &str, progress: &Progress) -> Self {
        Self {
            client: state.client.clone(),
            run_id: run_id.to_owned(),
            token: progress.token().cloned(),
            text: StreamRedactor::default(),
            thinking: StreamRedactor::default(),
        }
    }

    async fn send(&mut self, kind: OutputKind, text: &str, tool: Option<String>) {
        let text = match kind {
            OutputKind::Text => self.text.push(text),
            OutputKind::Thinking => self.thinking.push(text),
            OutputKind::ToolUse | OutputKind::ToolResult => {
                // A tool call ends the text before it: send what was held back first.
                self.flush().await;
                secrets::redacted(text)
            }
        };
        self.emit(kind, text, tool).await;
    }

    /// Send what the redactors still hold (the end of a block or of the stream).
    async fn flush(&mut self) {
        let text = self.text.flush();
        self.emit(OutputKind::Text, text, None).await;
        let thinking = self.thinking.flush();
        self.emit(OutputKind::Thinking, thinking, None).await;
    }

    async fn emit(&self, kind: OutputKind, text: String, tool: Option<String>) {
        if text.is_empty() {
            return;
        }
        self.notify(to_proto::output_kind(kind), text, tool).await;
    }

    /// The run failed after its answer.
    async fn emit_error(&self, text: String) {
        self.notify(WireKind::Error, secrets::redacted(&text), None).await;
    }

    async fn notify(&self, kind: WireKind, text: String, tool: Option<String>) {
        let params = OutputParams {
            run_id: self.run_id.clone(),
            token: self.token.clone(),
            kind,
            text,
            tool,
        };
        self.client.send_notification::<requests::Output>(params).await;
    }
}

/// The run's answer as its last `claude/output` item, as the user reads it: a review's or an
/// analyze's findings one per line (the CLI's own result is then the raw JSON report).
async fn output_answer(
    state: &ServerState,
    run_id: &str,
    progress: &Progress,
    result: &RunReport,
    workspace: &Path,
) {
    let text = match &result.findings {
        Some(found) => crate::model::findings::plain_answer(&result.text, found, workspace),
        None => result.text.clone(),
    };
    let params = OutputParams {
        run_id: run_id.to_owned(),
        token: progress.token().cloned(),
        kind: WireKind::Result,
        // The findings quote code, which may hold a key.
        text: secrets::redacted(&text),
        tool: None,
    };
    state.client.send_notification::<requests::Output>(params).await;
}

fn target(
    state: &ServerState,
    snapshot: &Snapshot,
    params: &ActionParams,
) -> Result<Target, ServerError> {
    let uri = params.text_document.uri.clone();
    let path =
        edits::uri_to_path(&uri).map_err(|err| ServerError::invalid_params(err.to_string()))?;
    let workspace = snapshot.workspace_for(&path);
    // A folder or workspace scope may name a folder: there is no text to read then.
    let scope = params.options.review.scope.map(from_proto::review_scope);
    if scope.is_some_and(ReviewScope::is_tree) && path.is_dir() {
        return Ok(Target {
            uri,
            path,
            workspace,
            language_id: String::new(),
            text: String::new(),
        });
    }
    let open = match open_document(&state.documents.read(), &path) {
        Some(doc) if doc.is_out_of_sync() => return Err(out_of_sync(&path)),
        doc => doc.map(|doc| (doc.language_id().to_owned(), doc.text())),
    };
    let (language_id, text) = match open {
        Some(open) => open,
        None => {
            let text = std::fs::read_to_string(&path).map_err(|err| {
                ServerError::file_access(format!("cannot read {}: {err}", path.display()))
            })?;
            (crate::model::documents::language_from_path(&path), text)
        }
    };
    Ok(Target { uri, path, workspace, language_id, text })
}

async fn action_request(
    state: &ServerState,
    snapshot: &Snapshot,
    action: Action,
    params: &ActionParams,
    target: &Target,
) -> Result<ActionRequest, ServerError> {
    if action.is_edit() && params.instruction.as_deref().is_none_or(|i| i.trim().is_empty()) {
        return Err(ServerError::invalid_params(format!(
            "{action} needs an instruction (the `instruction` parameter)"
        )));
    }
    sessions::check_before_run(state, &target.workspace, params.session_id.as_deref()).await?;
    let encoding = snapshot.client.encoding;
    let selection = match params.range {
        Some(range) if range.start != range.end => {
            let doc =
                Document::new(target.uri.clone(), target.language_id.clone(), 0, &target.text);
            if range.end < range.start {
                return Err(ServerError::invalid_params("the range ends before it starts"));
            }
            Some(Selection {
                start_line: range.start.line,
                end_line: range.end.line,
                text: doc.range_text(range, encoding),
            })
        }
        _ => None,
    };
    let options = from_proto::action_options(&params.options);
    let changes_diff = match (action, options.review.scope) {
        (Action::Review, Some(ReviewScope::Changes)) => {
            Some(crate::base::git::uncommitted_changes(&target.workspace).await.map_err(|err| {
                ServerError::new(
                    ErrorKind::FILE_ACCESS,
                    err,
                    "review of changes needs a git repository",
                )
            })?)
        }
        _ => None,
    };
    let overlays = open_documents(state)
        .into_iter()
        .filter(|(path, _)| path.starts_with(&target.workspace))
        .collect();
    Ok(ActionRequest {
        action,
        workspace: target.workspace.clone(),
        file: target.path.clone(),
        language_id: target.language_id.clone(),
        text: target.text.clone(),
        selection,
        instruction: params.instruction.clone(),
        diagnostics: params.diagnostics.iter().map(PromptDiagnostic::from_lsp).collect(),
        options,
        changes_diff,
        overlays,
        resume: params.session_id.clone(),
        fork: params.fork,
    })
}

/// The unsaved text of every open document: (path, text).
fn open_documents(state: &ServerState) -> Vec<(PathBuf, String)> {
    let documents = state.documents.read();
    documents
        .iter()
        .filter_map(|doc| Some((edits::uri_to_path(doc.uri()).ok()?, doc.text())))
        .collect()
}

/// The open document at `path`. Matched by path, not URI text: clients spell URIs differently.
fn open_document<'a>(documents: &'a DocumentStore, path: &Path) -> Option<&'a Document> {
    documents.iter().find(|doc| edits::uri_to_path(doc.uri()).is_ok_and(|p| p == path))
}

/// Turn the run's file changes (checked by the engine to stay inside the workspace) into one
/// WorkspaceEdit, rebasing onto whatever the user typed during the run (three-way merge), or
/// refusing on a conflict.
fn run_report(
    state: &ServerState,
    info: &ClientInfo,
    outcome: ActionOutcome,
) -> Result<RunReport, ServerError> {
    let mut rebased = Vec::with_capacity(outcome.changes.len());
    let mut versions = Vec::new();
    for change in &outcome.changes {
        rebased.push(rebase_onto_buffer(state, change, &mut versions)?);
    }
    let edit = if rebased.is_empty() {
        None
    } else {
        let open_version =
            |path: &Path| versions.iter().find(|(p, _)| p == path).map(|(_, version)| *version);
        let edit = edits::build_workspace_edit(&rebased, &info.edits, info.encoding, &open_version)
            .map_err(|err| {
                ServerError::new(
                    ErrorKind::UNSUPPORTED_BY_CLIENT,
                    err.to_string(),
                    "your editor cannot apply this kind of change; nothing was applied",
                )
            })?;
        Some(edit)
    };
    sessions::expect_regions(state, &outcome.result.session_id, &outcome.text, &rebased);
    Ok(RunReport {
        session_id: outcome.result.session_id.clone(),
        text: outcome.text,
        edit,
        findings: None,
        changes: rebased,
        run: outcome.result,
        cached: outcome.cached,
        books_pending: false,
    })
}

/// A change to an open document is computed against the buffer as it is *now*: unchanged since
/// the run started → as is; changed → three-way merged, or a conflict error.
fn rebase_onto_buffer(
    state: &ServerState,
    change: &FileChange,
    versions: &mut Vec<(PathBuf, i32)>,
) -> Result<FileChange, ServerError> {
    let FileChange::Modified { path, before, after } = change else {
        return Ok(change.clone());
    };
    let documents = state.documents.read();
    let Some(doc) = open_document(&documents, path) else { return Ok(change.clone()) };
    if doc.is_out_of_sync() {
        return Err(out_of_sync(path));
    }
    let current = doc.text();
    versions.push((path.clone(), doc.version()));
    if current == *before {
        return Ok(change.clone());
    }
    let merged = edits::merge3(before, after, &current).map_err(|conflict| {
        ServerError::new(
            ErrorKind::EDIT_CONFLICT,
            format!("{} changed during the run and the edits overlap: {conflict}", path.display()),
            "nothing was applied; run the action again",
        )
    })?;
    Ok(FileChange::Modified { path: path.clone(), before: current, after: merged })
}

/// The server's copy of an open document missed a change (see `handlers::documents`): its text
/// is not what the user sees, so nothing may be built on it.
fn out_of_sync(path: &Path) -> ServerError {
    ServerError::new(
        ErrorKind::FILE_ACCESS,
        format!(
            "the server's copy of {} is out of date: the editor sent a change it could not apply",
            path.display()
        ),
        "close and reopen the file, then run the action again",
    )
}

fn summary(result: &RunReport) -> String {
    let run = &result.run;
    let mut parts = Vec::new();
    if let Some(edit) = &result.edit {
        let edits = count_edits(edit);
        let files = result.changes.len();
        parts.push(format!("{edits} edit{} in {files} file{}", plural(edits), plural(files)));
    }
    if let Some(found) = &result.findings {
        parts.push(format!("{} finding{}", found.len(), plural(found.len())));
    }
    parts.push(format!("{} turn{}", run.num_turns, plural(run.num_turns as usize)));
    parts.push(format!(
        "{} tokens",
        compact_count(run.usage.input_tokens + run.usage.output_tokens)
    ));
    parts.push(format!("${:.4}", run.cost_usd));
    if result.cached {
        parts.push("cached".to_owned());
    }
    parts.join(" · ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn count_edits(edit: &WorkspaceEdit) -> usize {
    use crate::protocol::lsp::{DocumentChangeOperation, DocumentChanges};
    let in_changes: usize = edit.changes.iter().flat_map(|c| c.values()).map(Vec::len).sum();
    let in_document_changes: usize = match &edit.document_changes {
        Some(DocumentChanges::Edits(edits)) => edits.iter().map(|e| e.edits.len()).sum(),
        Some(DocumentChanges::Operations(ops)) => ops
            .iter()
            .map(|op| match op {
                DocumentChangeOperation::Edit(e) => e.edits.len(),
                DocumentChangeOperation::Op(_) => 1,
            })
            .sum(),
        None => 0,
    };
    in_changes + in_document_changes
}

/// Deliver a command's result: edits through applyEdit (or, with `delivery: "review"`, as
/// hunks to review), text as a message or a document.
async fn deliver(
    state: &ServerState,
    snapshot: &Snapshot,
    action: Action,
    params: &ActionParams,
    run_id: &str,
    outcome: Result<RunReport, ServerError>,
) {
    let client = &state.client;
    let report = match outcome {
        Ok(report) => report,
        Err(err) if err.kind == ErrorKind::CANCELLED => {
            client
                .show_message(
                    MessageType::INFO,
                    format!("Claude: {action} cancelled; nothing was applied"),
                )
                .await;
            return;
        }
        Err(err) => {
            client.show_message(MessageType::ERROR, err.user_message()).await;
            return;
        }
    };
    // The settings the run started with: a change during the run applies to the next one.
    let review = snapshot.settings.delivery == Delivery::Review;
    if review && !report.changes.is_empty() {
        let changes = &report.changes;
        crate::lsp_server::handlers::review::propose(state, action, run_id, params, changes).await;
    } else if let Some(edit) = report.edit.clone() {
        let params = ApplyWorkspaceEditParams { label: Some(format!("Claude: {action}")), edit };
        match client.send_request::<ApplyWorkspaceEdit>(params).await {
            Ok(response) if response.applied => {}
            Ok(response) => {
                let why =
                    response.failure_reason.unwrap_or_else(|| "the editor refused it".to_owned());
                client
                    .show_message(
                        MessageType::WARNING,
                        format!("Claude: the {action} edit was not applied: {why}"),
                    )
                    .await;
            }
            Err(err) => {
                client
                    .show_message(
                        MessageType::ERROR,
                        format!("Claude: could not apply the {action} edit: {err}"),
                    )
                    .await;
            }
        }
    }
    show_text(state, &snapshot.client, action, params, run_id, &report.text).await;
}

/// Short answers as a message; long ones as a markdown document when the client can show one,
/// else as a hover over the code they are about (announced by a one-line message), else whole
/// in a message.
async fn show_text(
    state: &ServerState,
    info: &ClientInfo,
    action: Action,
    params: &ActionParams,
    run_id: &str,
    text: &str,
) {
    const SHORT: usize = 400;
    let client = &state.client;
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    let show_document = info.show_document;
    if !show_document && info.hover && !fits_a_status_line(text) {
        if let Ok(path) = edits::uri_to_path(&params.text_document.uri) {
            let lines = params.range.map(|range| (range.start.line, range.end.line));
            let answer = crate::model::answers::Answer { action, text: text.to_owned(), lines };
            state.answers.keep(path, answer);
            let about = if lines.is_some() { "the selected code" } else { "the file" };
            let message = format!(
                "Claude ({action}): {} — hover over {about} to read the whole answer",
                // Short enough to leave the hint room on a status line.
                crate::model::activity::headline(text, 72)
            );
            client.show_message(MessageType::INFO, message).await;
            return;
        }
    }
    if text.chars().count() <= SHORT && !text.contains("\n\n") {
        client.show_message(MessageType::INFO, format!("Claude: {text}")).await;
        return;
    }
    if show_document {
        match write_answer(&state.options.cache_dir, &format!("{action}-{run_id}.md"), text) {
            Ok(uri) if open_in_editor(client, &uri).await => return,
            Ok(_) => {}
            Err(err) => tracing::warn!(%err, "could not write the answer document"),
        }
    }
    client.show_message(MessageType::INFO, format!("Claude ({action}):\n{text}")).await;
}

/// Status lines (Helix's, Zed's) show one line, cut at the window's width.
const STATUS_LINE_CHARS: usize = 120;

fn fits_a_status_line(text: &str) -> bool {
    !text.contains('\n') && text.chars().count() <= STATUS_LINE_CHARS
}

fn now_rfc3339() -> String {
    crate::base::time::rfc3339(crate::base::time::now_secs())
}
