//! Findings in the editor: read and placed after a review or analyze run, published as
//! diagnostics for the command path (a custom request only returns them: requests never apply
//! anything), kept anchored through `didChange`, and acted on through code actions and the
//! `claude.applyFinding` / `claude.dismissFinding` commands.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::base::error::{ErrorKind, ServerError};
use crate::engine::pipeline::ActionOutcome;
use crate::lsp_server::from_proto;
use crate::lsp_server::state::ServerState;
use crate::model::edits::{self, EditCapabilities};
use crate::model::findings::{
    self, FileText, Finding, FixError, PlaceOptions, Publication, Reviewed, Splice, read_report,
    summary_text, to_diagnostic,
};
use crate::model::prompt::{self, Action, ReviewScope};
use crate::protocol::lsp::request::ApplyWorkspaceEdit;
use crate::protocol::lsp::{
    ApplyWorkspaceEditParams, CodeAction, CodeActionKind, CodeActionOrCommand, Command, Diagnostic,
    DocumentChanges, OneOf, OptionalVersionedTextDocumentIdentifier, Range,
    TextDocumentContentChangeEvent, TextDocumentEdit, TextEdit, Uri, WorkspaceEdit,
};
use crate::protocol::lsp_ext::{ActionParams, FindingRef, commands};

/// The document a run looked at, as it was when the run started.
pub struct RunTarget<'a> {
    pub path: &'a Path,
    pub workspace: &'a Path,
    pub text: &'a str,
}

/// A review or analyze run's findings, placed, and the answer to show with them.
#[derive(Debug, Clone)]
pub struct Collected {
    /// The summary, then what could not be placed or read.
    pub text: String,
    pub findings: Vec<Finding>,
}

/// Reads and places the findings of a review or analyze run (`None` for the other actions).
/// Structured output that is not a findings report is an error: nothing is published then.
pub fn collect(
    state: &ServerState,
    action: Action,
    params: &ActionParams,
    target: &RunTarget,
    outcome: &ActionOutcome,
) -> Result<Option<Collected>, ServerError> {
    if !matches!(action, Action::Review | Action::Analyze) {
        return Ok(None);
    }
    let mut report = read_report(outcome.result.structured_output.as_ref(), &outcome.text)
        .map_err(|err| {
            ServerError::new(
                ErrorKind::STRUCTURED_OUTPUT_FAILED,
                err.to_string(),
                "nothing was published; run it again",
            )
        })?;
    if action == Action::Analyze && report.source == findings::ReportSource::PlainText {
        // An explanation with no findings is a whole answer: a note about the missing format
        // would only lengthen it.
        report.notes.clear();
    }
    let options = PlaceOptions {
        workspace: target.workspace,
        encoding: state.encoding(),
        min_severity: (action == Action::Review)
            .then(|| from_proto::action_options(&params.options).review.min_severity),
    };
    let placement =
        findings::place(&report.findings, &options, &mut |path| file_text(state, path, target));
    tracing::info!(
        source = ?report.source,
        placed = placement.placed.len(),
        unplaced = placement.unplaced.len(),
        left_out = placement.left_out,
        "{action} findings"
    );
    let text = summary_text(&report, &placement);
    let findings = placement.placed.into_iter().map(|(_, finding)| finding).collect();
    Ok(Some(Collected { text, findings }))
}

/// What Claude saw of `path` (the target: the text the run started from; other files: the disk)
/// and what it holds now (the open buffer, else the disk).
fn file_text(state: &ServerState, path: &Path, target: &RunTarget) -> Option<FileText> {
    let open = open_document(state, path);
    let disk = || std::fs::read_to_string(path).ok();
    let seen = if path == target.path { Some(target.text.to_owned()) } else { disk() };
    let (uri, current) = match open {
        Some((uri, text, _)) => (uri, Some(text)),
        None => (edits::path_to_uri(path).ok()?, disk()),
    };
    let seen = seen.or_else(|| current.clone())?;
    let current = current.unwrap_or_else(|| seen.clone());
    Some(FileText { uri, seen, current })
}

/// The open document at `path`: its URI as the client spells it, its text and version.
pub fn open_document(state: &ServerState, path: &Path) -> Option<(Uri, String, i32)> {
    let documents = state.documents.read();
    documents
        .iter()
        .find(|doc| edits::uri_to_path(doc.uri()).is_ok_and(|p| p == path))
        .map(|doc| (doc.uri().clone(), doc.text(), doc.version()))
}

/// The current text of `path`: the open buffer, else the disk.
pub fn current_text(
    state: &ServerState,
    path: &Path,
) -> Result<(String, Option<i32>), ServerError> {
    if let Some((_, text, version)) = open_document(state, path) {
        return Ok((text, Some(version)));
    }
    std::fs::read_to_string(path)
        .map(|text| (text, None))
        .map_err(|err| ServerError::file_access(format!("cannot read {}: {err}", path.display())))
}

/// What a run with `params` looked at.
fn reviewed(state: &ServerState, action: Action, params: &ActionParams) -> Option<Reviewed> {
    let path = edits::uri_to_path(&params.text_document.uri).ok()?;
    let selection = params.range.filter(|range| range.start != range.end);
    let options = from_proto::action_options(&params.options);
    let scope = match (action, options.review.scope) {
        (Action::Review, scope) => scope,
        (_, Some(scope)) if scope.is_tree() => Some(scope),
        _ => None,
    };
    let scope = scope.unwrap_or(if selection.is_some() {
        ReviewScope::Selection
    } else {
        ReviewScope::File
    });
    Some(match (scope, selection) {
        (ReviewScope::Changes, _) => Reviewed::Changes { workspace: state.workspace_for(&path) },
        (ReviewScope::Folder | ReviewScope::Workspace, _) => {
            let workspace = state.workspace_for(&path);
            let directory =
                prompt::scope_directory(&options, &workspace, &path, path.is_dir()).ok()?;
            Reviewed::Tree { root: directory.map_or(workspace.clone(), |dir| workspace.join(dir)) }
        }
        (ReviewScope::Selection, Some(range)) => {
            // A selection of whole lines ends at column 0 of the line after them.
            let end = if range.end.character == 0 && range.end.line > range.start.line {
                range.end.line - 1
            } else {
                range.end.line
            };
            Reviewed::Lines { path, start: range.start.line, end }
        }
        _ => Reviewed::File { path },
    })
}

/// Stores and publishes a command run's findings: they replace what an earlier run of the same
/// region reported, and the target file is published even when it has none left.
pub async fn publish_run(
    state: &ServerState,
    action: Action,
    params: &ActionParams,
    findings: &[Finding],
) {
    let Some(reviewed) = reviewed(state, action, params) else { return };
    let with_paths = findings
        .iter()
        .filter_map(|finding| Some((edits::uri_to_path(&finding.uri).ok()?, finding.clone())))
        .collect();
    let publications = state.findings().replace(&reviewed, &params.text_document.uri, with_paths);
    // Findings in files the editor does not have open stand for the text on disk.
    for publication in &publications {
        if !publication.findings.is_empty()
            && open_document(state, &publication.path).is_none()
            && let Ok(text) = std::fs::read_to_string(&publication.path)
        {
            state.findings().note_closed_text(&publication.path, &text);
        }
    }
    publish(state, publications).await;
}

/// The editor opened `uri` with `text`: findings placed on other text go.
pub async fn did_open(state: &ServerState, uri: &Uri, text: &str) {
    let Ok(path) = edits::uri_to_path(uri) else { return };
    let publication = state.findings().opened(&path, text);
    publish(state, publication.into_iter().collect()).await;
}

/// The editor closed `uri`, which held `text`: its findings stand for that text from now on.
pub fn did_close(state: &ServerState, uri: &Uri, text: &str) {
    if let Ok(path) = edits::uri_to_path(uri) {
        state.findings().note_closed_text(&path, text);
    }
}

/// Files changed on disk (`workspace/didChangeWatchedFiles`): the findings of those the editor
/// does not have open go, unless the text is still the one they were placed on.
pub async fn files_changed(state: &ServerState, uris: impl IntoIterator<Item = Uri>) {
    let mut publications = Vec::new();
    for uri in uris {
        let Ok(path) = edits::uri_to_path(&uri) else { continue };
        // Most changed files have no findings: nothing to read for them.
        if !state.findings().touches(&path) || open_document(state, &path).is_some() {
            continue;
        }
        let text = std::fs::read_to_string(&path).ok();
        publications.extend(state.findings().changed_on_disk(&path, text.as_deref()));
    }
    publish(state, publications).await;
}

async fn publish(state: &ServerState, publications: Vec<Publication>) {
    for Publication { path, uri, findings } in publications {
        publish_diagnostics(state, &path, uri, &findings).await;
    }
}

/// Publishes the diagnostics of `path` again, after its proposed changes changed.
pub async fn publish_file(state: &ServerState, path: &Path, uri: Uri) {
    let findings = state.findings().findings_in(path);
    publish_diagnostics(state, path, uri, &findings).await;
}

/// A document's diagnostics are its findings and the proposed changes shown in it: publishing
/// one kind replaces the other too, so both always go together.
async fn publish_diagnostics(state: &ServerState, path: &Path, uri: Uri, findings: &[Finding]) {
    let related_information = state.client_info().related_information;
    let mut diagnostics: Vec<Diagnostic> =
        findings.iter().map(|finding| to_diagnostic(finding, related_information)).collect();
    diagnostics.extend(state.hunks().in_file(path).iter().map(crate::model::hunks::to_diagnostic));
    let version = open_document(state, path).map(|(_, _, version)| version);
    state.client.publish_diagnostics(uri, diagnostics, version).await;
}

/// The text before a `didChange` that replaces the whole document, when findings there need
/// it to follow the change (call before applying the change).
pub fn text_before_change(
    state: &ServerState,
    uri: &Uri,
    changes: &[TextDocumentContentChangeEvent],
) -> Option<String> {
    if changes.iter().all(|change| change.range.is_some()) {
        return None;
    }
    let path = edits::uri_to_path(uri).ok()?;
    if !state.findings().touches(&path) && !state.hunks().touches(&path) {
        return None;
    }
    state.documents.read().get(uri).map(|doc| doc.text())
}

/// Moves the findings of a changed document along with the change (call after applying it):
/// an edit above a finding moves it, an edit touching it removes it. `before` is
/// [`text_before_change`]'s answer.
pub async fn did_change(
    state: &ServerState,
    uri: &Uri,
    changes: &[TextDocumentContentChangeEvent],
    before: Option<String>,
) {
    let Ok(path) = edits::uri_to_path(uri) else { return };
    if !state.findings().touches(&path) {
        return;
    }
    let splices = splices(state, uri, changes, before.as_deref());
    let publications = state.findings().apply_splices(&path, &splices);
    publish(state, publications).await;
}

/// A `didChange` (already applied) as splices. `before` is [`text_before_change`]'s answer.
pub fn splices(
    state: &ServerState,
    uri: &Uri,
    changes: &[TextDocumentContentChangeEvent],
    before: Option<&str>,
) -> Vec<Splice> {
    let encoding = state.encoding();
    match before {
        Some(before) => {
            let Some(after) = state.documents.read().get(uri).map(|doc| doc.text()) else {
                return Vec::new();
            };
            findings::splices_between(before, &after, encoding)
        }
        None => changes
            .iter()
            .filter_map(|change| Some(Splice::new(change.range?, &change.text, encoding)))
            .collect(),
    }
}

/// The code actions on the findings at `range` of the document `uri`: those whose diagnostics
/// the client sent, and any other whose range meets `range`.
pub fn code_actions(
    state: &ServerState,
    uri: &Uri,
    range: Range,
    diagnostics: &[Diagnostic],
) -> Vec<CodeActionOrCommand> {
    let Ok(path) = edits::uri_to_path(uri) else { return Vec::new() };
    let wanted: Vec<&str> = diagnostics.iter().filter_map(findings::finding_id).collect();
    let in_range: Vec<Finding> = state
        .findings()
        .findings_in(&path)
        .into_iter()
        // Anywhere on a flagged line, not only on the flagged text: a cursor at the start of
        // the line (or a client that sends no diagnostics) finds the fix too.
        .filter(|finding| {
            wanted.contains(&finding.id.as_str())
                || (finding.range.start.line <= range.end.line
                    && range.start.line <= finding.range.end.line)
        })
        .collect();
    if in_range.is_empty() {
        return Vec::new();
    }
    let info = state.client_info();
    let current = current_text(state, &path).ok();
    let several = in_range.len() > 1;
    let mut actions = Vec::new();
    for finding in &in_range {
        let diagnostic = to_diagnostic(finding, info.related_information);
        let reference = FindingRef { uri: uri.clone(), finding_id: Some(finding.id.clone()) };
        let named = |title: &str| {
            if several { format!("{title} — {}", finding.title) } else { title.to_owned() }
        };
        if finding.fix.is_some() {
            let title = format!("Claude: apply fix — {}", finding.title);
            let checked = current.as_ref().map(|(text, version)| {
                findings::fix_edit(finding, text, info.encoding)
                    .map(|edit| workspace_edit(uri, *version, edit, &info.edits))
            });
            let mut action = match checked {
                // The fix still matches the code: the editor applies it directly.
                Some(Ok(edit)) => CodeAction { edit: Some(edit), ..CodeAction::default() },
                // It does not: the command explains why when chosen.
                _ => CodeAction {
                    command: Some(command(&title, commands::APPLY_FINDING, json!(reference))),
                    ..CodeAction::default()
                },
            };
            action.title = title;
            action.kind = Some(CodeActionKind::QUICKFIX);
            action.diagnostics = Some(vec![diagnostic.clone()]);
            action.is_preferred = Some(true);
            actions.push(CodeActionOrCommand::CodeAction(action));
        }
        // `claude.refactor`'s ActionParams, on the finding's range.
        let refactor = json!({
            "textDocument": {"uri": uri},
            "range": finding.range,
            "instruction": fix_instruction(finding),
            "diagnostics": [diagnostic],
        });
        actions.push(quick_fix(
            &named("Claude: fix with Claude"),
            commands::REFACTOR,
            refactor,
            &diagnostic,
        ));
        actions.push(quick_fix(
            &named("Claude: dismiss finding"),
            commands::DISMISS_FINDING,
            json!(reference),
            &diagnostic,
        ));
    }
    let all = FindingRef { uri: uri.clone(), finding_id: None };
    let title = "Claude: dismiss all findings in this file";
    let action = CodeAction {
        title: title.to_owned(),
        kind: Some(CodeActionKind::QUICKFIX),
        command: Some(command(title, commands::DISMISS_FINDING, json!(all))),
        ..CodeAction::default()
    };
    actions.push(CodeActionOrCommand::CodeAction(action));
    actions
}

fn fix_instruction(finding: &Finding) -> String {
    let mut instruction = format!(
        "Fix this problem, which a code review found in the selected code:\n\n{}\n\n{}",
        finding.title, finding.explanation
    );
    if let Some(suggestion) = &finding.suggestion {
        instruction.push_str(&format!("\n\nSuggested fix: {suggestion}"));
    }
    instruction.push_str("\n\nChange only what the fix needs.");
    instruction
}

fn command(title: &str, name: &str, argument: Value) -> Command {
    Command { title: title.to_owned(), command: name.to_owned(), arguments: Some(vec![argument]) }
}

fn quick_fix(
    title: &str,
    name: &str,
    argument: Value,
    diagnostic: &Diagnostic,
) -> CodeActionOrCommand {
    CodeActionOrCommand::CodeAction(CodeAction {
        title: title.to_owned(),
        kind: Some(CodeActionKind::QUICKFIX),
        diagnostics: Some(vec![diagnostic.clone()]),
        command: Some(command(title, name, argument)),
        ..CodeAction::default()
    })
}

/// One text edit of one document, pinned to its version when the client takes
/// `documentChanges` and the document is open.
fn workspace_edit(
    uri: &Uri,
    version: Option<i32>,
    edit: TextEdit,
    caps: &EditCapabilities,
) -> WorkspaceEdit {
    if caps.document_changes {
        let edit = TextDocumentEdit {
            text_document: OptionalVersionedTextDocumentIdentifier { uri: uri.clone(), version },
            edits: vec![OneOf::Left(edit)],
        };
        WorkspaceEdit {
            document_changes: Some(DocumentChanges::Edits(vec![edit])),
            ..WorkspaceEdit::default()
        }
    } else {
        WorkspaceEdit {
            changes: Some(HashMap::from([(uri.clone(), vec![edit])])),
            ..WorkspaceEdit::default()
        }
    }
}

/// `claude.applyFinding`: the finding's fix, checked against the current text, through
/// `workspace/applyEdit`. Answers `{applied}`; a fix that no longer matches is an error saying so.
pub async fn apply_finding(
    state: &ServerState,
    reference: FindingRef,
) -> Result<Value, ServerError> {
    let id = reference.finding_id.as_deref().ok_or_else(|| {
        ServerError::invalid_params(format!("{} needs a findingId", commands::APPLY_FINDING))
    })?;
    let path = finding_path(&reference.uri)?;
    let finding =
        state.findings().get(&path, id).ok_or_else(|| unknown_finding(id, &reference.uri))?;
    let info = state.client_info();
    let (text, version) = current_text(state, &path)?;
    let edit = findings::fix_edit(&finding, &text, info.encoding).map_err(|err| match err {
        FixError::NoFix => ServerError::invalid_params(format!(
            "the finding “{}” has no fix; use “Claude: fix with Claude”",
            finding.title
        )),
        FixError::Changed { .. } => ServerError::new(
            ErrorKind::EDIT_CONFLICT,
            format!(
                "the code of the finding “{}” changed since the review; nothing was applied",
                finding.title
            ),
            "run the review again",
        ),
    })?;
    let params = ApplyWorkspaceEditParams {
        label: Some(format!("Claude: apply fix — {}", finding.title)),
        edit: workspace_edit(&reference.uri, version, edit, &info.edits),
    };
    let response = state
        .client
        .send_request::<ApplyWorkspaceEdit>(params)
        .await
        .map_err(|err| ServerError::internal(format!("workspace/applyEdit failed: {err}")))?;
    if !response.applied {
        return Ok(json!({ "applied": false, "failureReason": response.failure_reason }));
    }
    // The editor's didChange usually removes it first; a closed file sends none.
    let (_, publication) = state.findings().dismiss(&path, Some(id));
    publish(state, publication.into_iter().collect()).await;
    Ok(json!({ "applied": true }))
}

/// `claude.dismissFinding`: one finding, or (no `findingId`) every finding of the file.
/// Answers `{dismissed: n}`; an id that is already gone dismisses nothing.
pub async fn dismiss_finding(
    state: &ServerState,
    reference: FindingRef,
) -> Result<Value, ServerError> {
    let path = finding_path(&reference.uri)?;
    let (dismissed, publication) = state.findings().dismiss(&path, reference.finding_id.as_deref());
    publish(state, publication.into_iter().collect()).await;
    Ok(json!({ "dismissed": dismissed }))
}

fn finding_path(uri: &Uri) -> Result<PathBuf, ServerError> {
    edits::uri_to_path(uri).map_err(|err| ServerError::invalid_params(err.to_string()))
}

fn unknown_finding(id: &str, uri: &Uri) -> ServerError {
    ServerError::invalid_params(format!(
        "there is no finding {id} in {}: it was fixed, dismissed or replaced by a newer run",
        uri.as_str()
    ))
}
