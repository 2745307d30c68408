//! Review delivery (`delivery: "review"`): a command run's changes are not applied but proposed
//! hunk by hunk. Each hunk is an Information diagnostic where it lands (files created, deleted
//! or renamed: where the run was started), offered as code actions — apply or discard it, or
//! every change of its run — through `claude.applyChange` / `claude.discardChange`. Hunks follow
//! the user's edits elsewhere; one an edit touches is withdrawn, and the user is told.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::base::error::{ErrorKind, ServerError};
use crate::lsp_server::handlers::findings::{self, current_text, open_document, publish_file};
use crate::lsp_server::state::ServerState;
use crate::model::documents::exact_text;
use crate::model::edits::{self, FileChange};
use crate::model::findings::splices_between;
use crate::model::hunks::{Hunk, Proposal, Taken, change_of, last_line, to_diagnostic};
use crate::model::prompt::Action;
use crate::protocol::lsp::request::ApplyWorkspaceEdit;
use crate::protocol::lsp::{
    ApplyWorkspaceEditParams, CodeAction, CodeActionKind, CodeActionOrCommand, Command, Diagnostic,
    DocumentChangeOperation, DocumentChanges, MessageType, OneOf,
    OptionalVersionedTextDocumentIdentifier, Position, Range, TextDocumentContentChangeEvent,
    TextDocumentEdit, TextEdit, Uri, WorkspaceEdit,
};
use crate::protocol::lsp_ext::{ActionParams, ChangeRef, commands};

/// Shows a finished command run's `changes` (rebased onto the buffers) as hunks to review.
pub async fn propose(
    state: &ServerState,
    action: Action,
    run_id: &str,
    params: &ActionParams,
    changes: &[FileChange],
) {
    let encoding = state.encoding();
    let label = action.to_string();
    let Ok(anchor_path) = edits::uri_to_path(&params.text_document.uri) else { return };
    let anchor_line = params.range.map_or(0, |range| range.start.line);
    let anchor = Range::new(Position::new(anchor_line, 0), Position::new(anchor_line, 0));
    let mut shown: Vec<(PathBuf, Uri, Vec<Hunk>)> = Vec::new();
    let mut overlapped = 0;
    for change in changes {
        let FileChange::Modified { path, before, after } = change else {
            let hunk = Hunk::new(run_id, &label, anchor, Proposal::File(change.clone()));
            shown.push((anchor_path.clone(), params.text_document.uri.clone(), vec![hunk]));
            continue;
        };
        let Ok(uri) = shown_uri(state, path) else { continue };
        // The user may have typed since the run's result was rebased onto the buffer.
        let current = current_text(state, path).map(|(text, _)| text).unwrap_or_default();
        let to_current = if current == *before {
            Vec::new()
        } else {
            splices_between(before, &current, encoding)
        };
        let mut hunks = Vec::new();
        for edit in edits::line_hunks(before, after, encoding) {
            let old_text = exact_text(before, edit.range, encoding).unwrap_or_default();
            let proposal = Proposal::Text { old_text, new_text: edit.new_text };
            let moved = to_current.iter().try_fold(edit.range, |range, splice| splice.shift(range));
            match moved {
                Some(range) => hunks.push(Hunk::new(run_id, &label, range, proposal)),
                None => overlapped += 1,
            }
        }
        shown.push((path.clone(), uri, hunks));
    }
    let count: usize = shown.iter().map(|(_, _, hunks)| hunks.len()).sum();
    let mut published: Vec<(PathBuf, Uri)> = Vec::new();
    for (path, uri, hunks) in shown {
        state.hunks().add(path.clone(), uri.clone(), hunks);
        if !published.iter().any(|(p, _)| *p == path) {
            published.push((path, uri));
        }
    }
    for (path, uri) in published {
        publish_file(state, &path, uri).await;
    }
    if count == 0 {
        let message = format!(
            "Claude: the {action} changes overlapped what you typed during the run; nothing was \
             proposed"
        );
        state.client.show_message(MessageType::WARNING, message).await;
        return;
    }
    let mut message = format!(
        "Claude: {count} proposed change{} from {action} to review: apply or discard {} with \
         the code actions on {}",
        plural(count),
        if count == 1 { "it" } else { "them" },
        if count == 1 { "its diagnostic" } else { "their diagnostics" },
    );
    if overlapped > 0 {
        message.push_str(&format!(
            "; {overlapped} more overlapped what you typed during the run and {} left out",
            if overlapped == 1 { "was" } else { "were" }
        ));
    }
    state.client.show_message(MessageType::INFO, message).await;
}

/// The URI a document is shown under: the client's own spelling when it is open.
fn shown_uri(state: &ServerState, path: &Path) -> Result<Uri, edits::EditError> {
    match open_document(state, path) {
        Some((uri, _, _)) => Ok(uri),
        None => edits::path_to_uri(path),
    }
}

/// The code actions on the proposed changes at `range` of `uri`: those whose diagnostics the
/// client sent, and any other on the lines `range` covers.
pub fn code_actions(
    state: &ServerState,
    uri: &Uri,
    range: Range,
    diagnostics: &[Diagnostic],
) -> Vec<CodeActionOrCommand> {
    let Ok(path) = edits::uri_to_path(uri) else { return Vec::new() };
    let wanted: Vec<&str> =
        diagnostics.iter().filter_map(change_of).map(|(_, change)| change).collect();
    let lines = range.start.line..=last_line(range);
    let here: Vec<Hunk> = state
        .hunks()
        .in_file(&path)
        .into_iter()
        .filter(|hunk| {
            wanted.contains(&hunk.id.as_str())
                || (hunk.range.start.line <= *lines.end()
                    && *lines.start() <= last_line(hunk.range))
        })
        .collect();
    let several = here.len() > 1;
    let mut actions = Vec::new();
    for hunk in &here {
        let named = |title: &str| {
            if several { format!("{title} — {}", hunk.lines()) } else { title.to_owned() }
        };
        let reference = ChangeRef { run_id: hunk.run_id.clone(), change_id: Some(hunk.id.clone()) };
        let diagnostic = Some(vec![to_diagnostic(hunk)]);
        actions.push(action(
            &named("Claude: apply this change"),
            commands::APPLY_CHANGE,
            &reference,
            diagnostic.clone(),
        ));
        actions.push(action(
            &named("Claude: discard this change"),
            commands::DISCARD_CHANGE,
            &reference,
            diagnostic,
        ));
    }
    let mut runs: Vec<&Hunk> = Vec::new();
    for hunk in &here {
        if !runs.iter().any(|seen| seen.run_id == hunk.run_id) {
            runs.push(hunk);
        }
    }
    let several_runs = runs.len() > 1;
    for hunk in runs {
        let named = |title: &str| {
            if several_runs { format!("{title} ({})", hunk.label) } else { title.to_owned() }
        };
        let reference = ChangeRef { run_id: hunk.run_id.clone(), change_id: None };
        actions.push(action(
            &named("Claude: apply all changes from this run"),
            commands::APPLY_CHANGE,
            &reference,
            None,
        ));
        actions.push(action(
            &named("Claude: discard all"),
            commands::DISCARD_CHANGE,
            &reference,
            None,
        ));
    }
    actions
}

fn action(
    title: &str,
    command: &str,
    reference: &ChangeRef,
    diagnostics: Option<Vec<Diagnostic>>,
) -> CodeActionOrCommand {
    CodeActionOrCommand::CodeAction(CodeAction {
        title: title.to_owned(),
        kind: Some(CodeActionKind::QUICKFIX),
        diagnostics,
        command: Some(Command {
            title: title.to_owned(),
            command: command.to_owned(),
            arguments: Some(vec![json!(reference)]),
        }),
        ..CodeAction::default()
    })
}

/// `claude.applyChange`: one proposed change (or every one of its run) through
/// `workspace/applyEdit`, exactly as proposed at its place in the current text. A change whose
/// lines were edited since is withdrawn instead. Answers `{applied, changes}`.
pub async fn apply_change(state: &ServerState, reference: ChangeRef) -> Result<Value, ServerError> {
    // Out of the store before the edit goes out: the editor's didChange for it must not read as
    // the user's edit overlapping it.
    let taken = take(state, &reference).await?;
    let encoding = state.encoding();
    let (ready, stale): (Vec<Taken>, Vec<Taken>) = taken.into_iter().partition(|taken| {
        matches!(taken.hunk.proposal, Proposal::File(_))
            || current_text(state, &taken.path)
                .is_ok_and(|(text, _)| taken.hunk.edit_of(&text, encoding).is_some())
    });
    let stale: Vec<Hunk> = stale.into_iter().map(|taken| taken.hunk).collect();
    tell_withdrawn(state, &stale, "its code changed since the run").await;
    if ready.is_empty() {
        return Err(ServerError::new(
            ErrorKind::EDIT_CONFLICT,
            "the code of this proposed change was edited since the run; it was withdrawn",
            "run the action again",
        ));
    }
    let edit = match workspace_edit(state, &ready) {
        Ok(edit) => edit,
        Err(err) => {
            restore(state, ready).await;
            return Err(err);
        }
    };
    let count = ready.len();
    let label = match &reference.change_id {
        Some(_) => format!("Claude: apply change ({})", ready[0].hunk.label),
        None => format!("Claude: apply all changes ({})", ready[0].hunk.label),
    };
    let params = ApplyWorkspaceEditParams { label: Some(label), edit };
    match state.client.send_request::<ApplyWorkspaceEdit>(params).await {
        Ok(response) if response.applied => Ok(json!({ "applied": true, "changes": count })),
        Ok(response) => {
            restore(state, ready).await;
            Ok(json!({ "applied": false, "failureReason": response.failure_reason }))
        }
        Err(err) => {
            restore(state, ready).await;
            Err(ServerError::internal(format!("workspace/applyEdit failed: {err}")))
        }
    }
}

/// `claude.discardChange`: one proposed change, or every one of its run. Answers `{discarded}`.
pub async fn discard_change(
    state: &ServerState,
    reference: ChangeRef,
) -> Result<Value, ServerError> {
    let taken = take(state, &reference).await?;
    Ok(json!({ "discarded": taken.len() }))
}

/// Takes the changes `reference` names out of the store and publishes their documents again.
async fn take(state: &ServerState, reference: &ChangeRef) -> Result<Vec<Taken>, ServerError> {
    let taken = state.hunks().take(&reference.run_id, reference.change_id.as_deref());
    if taken.is_empty() {
        return Err(ServerError::invalid_params(format!(
            "there is no proposed change {} of run {}: it was applied, discarded or withdrawn",
            reference.change_id.as_deref().unwrap_or("left"),
            reference.run_id
        )));
    }
    publish_documents(state, &taken).await;
    Ok(taken)
}

/// Puts back changes whose edit the editor did not apply.
async fn restore(state: &ServerState, taken: Vec<Taken>) {
    state.hunks().restore(taken.clone());
    publish_documents(state, &taken).await;
}

async fn publish_documents(state: &ServerState, taken: &[Taken]) {
    let mut done: Vec<&Path> = Vec::new();
    for Taken { path, uri, .. } in taken {
        if !done.contains(&path.as_path()) {
            done.push(path);
            publish_file(state, path, uri.clone()).await;
        }
    }
}

/// One `WorkspaceEdit` for `ready` (sorted by document): files created, deleted or renamed as
/// the run proposed them, then each document's text hunks, pinned to its open version.
fn workspace_edit(state: &ServerState, ready: &[Taken]) -> Result<WorkspaceEdit, ServerError> {
    let info = state.client_info();
    let files: Vec<FileChange> = ready
        .iter()
        .filter_map(|taken| match &taken.hunk.proposal {
            Proposal::File(change) => Some(change.clone()),
            Proposal::Text { .. } => None,
        })
        .collect();
    let mut edit = if files.is_empty() {
        WorkspaceEdit::default()
    } else {
        edits::build_workspace_edit(&files, &info.edits, info.encoding, &|_| None).map_err(
            |err| {
                ServerError::new(
                    ErrorKind::UNSUPPORTED_BY_CLIENT,
                    err.to_string(),
                    "your editor cannot apply this kind of change",
                )
            },
        )?
    };
    let mut documents: Vec<(Uri, Option<i32>, Vec<TextEdit>)> = Vec::new();
    for taken in ready {
        let Proposal::Text { new_text, .. } = &taken.hunk.proposal else { continue };
        let text_edit = TextEdit { range: taken.hunk.range, new_text: new_text.clone() };
        match documents.last_mut() {
            Some((uri, _, edits)) if *uri == taken.uri => edits.push(text_edit),
            _ => {
                let version = open_document(state, &taken.path).map(|(_, _, version)| version);
                documents.push((taken.uri.clone(), version, vec![text_edit]));
            }
        }
    }
    if info.edits.document_changes {
        let mut operations = match edit.document_changes.take() {
            Some(DocumentChanges::Operations(operations)) => operations,
            _ => Vec::new(),
        };
        operations.extend(documents.into_iter().map(|(uri, version, edits)| {
            DocumentChangeOperation::Edit(TextDocumentEdit {
                text_document: OptionalVersionedTextDocumentIdentifier { uri, version },
                edits: edits.into_iter().map(OneOf::Left).collect(),
            })
        }));
        edit.document_changes = Some(DocumentChanges::Operations(operations));
    } else {
        edit.changes = Some(documents.into_iter().map(|(uri, _, edits)| (uri, edits)).collect());
    }
    Ok(edit)
}

/// The proposed changes of a document that changed, moved along (call after the store applied
/// the change, before the findings are published, then [`after_change`]).
pub struct Followed {
    path: PathBuf,
    uri: Uri,
    withdrawn: Vec<Hunk>,
}

/// Moves the proposed changes of `uri` through a `didChange`; those it touches are withdrawn.
/// `before` is `findings::text_before_change`'s answer.
pub fn follow_change(
    state: &ServerState,
    uri: &Uri,
    changes: &[TextDocumentContentChangeEvent],
    before: Option<&str>,
) -> Option<Followed> {
    let path = edits::uri_to_path(uri).ok()?;
    if !state.hunks().touches(&path) {
        return None;
    }
    let splices = findings::splices(state, uri, changes, before);
    let (changed, withdrawn) = state.hunks().apply_splices(&path, &splices);
    changed.then(|| Followed { path, uri: uri.clone(), withdrawn })
}

/// Publishes what [`follow_change`] moved and tells the user what it withdrew.
pub async fn after_change(state: &ServerState, followed: Option<Followed>) {
    let Some(Followed { path, uri, withdrawn }) = followed else { return };
    publish_file(state, &path, uri).await;
    tell_withdrawn(state, &withdrawn, "your edit overlapped it").await;
}

/// `didOpen`: the changes proposed for a closed file must still read as they did on disk.
pub async fn opened(state: &ServerState, uri: &Uri, text: &str) {
    let Ok(path) = edits::uri_to_path(uri) else { return };
    let withdrawn = state.hunks().check_text(&path, text, state.encoding());
    if !withdrawn.is_empty() {
        publish_file(state, &path, uri.clone()).await;
        tell_withdrawn(state, &withdrawn, "the file differs from what the run changed").await;
    }
}

async fn tell_withdrawn(state: &ServerState, withdrawn: &[Hunk], why: &str) {
    let Some(first) = withdrawn.first() else { return };
    let message = if withdrawn.len() == 1 {
        format!(
            "Claude: the proposed change at {} ({}) was withdrawn: {why}",
            first.lines(),
            first.label
        )
    } else {
        let places: Vec<String> = withdrawn.iter().map(Hunk::lines).collect();
        format!(
            "Claude: {} proposed changes ({}) were withdrawn: {why}",
            withdrawn.len(),
            places.join(", ")
        )
    };
    state.client.show_message(MessageType::WARNING, message).await;
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
