//! The run's outcome as `claude-lsp run` prints it: the answer and its findings, a unified diff,
//! or one JSON object.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::apply::apply_changes;
use super::args::{FormatArg, RunArgs};
use super::failure::{Failure, exit};
use super::progress_view::ProgressView;
use crate::engine::pipeline::{ActionOutcome, ActionRequest};
use crate::engine::run::RunAnswer;
use crate::model::documents::PositionEncoding;
use crate::model::edits::{self, EditCapabilities, FileChange};
use crate::model::findings::{self, FileText, Finding, PlaceOptions};
use crate::model::prompt::Action;
use crate::protocol::lsp::WorkspaceEdit;
use crate::protocol::lsp_ext::{self, RunMetadata};
use crate::report;

/// A successful run as `run` reports it.
pub(super) struct Rendered {
    session_id: String,
    /// The answer's words (the model's, or the findings' summary).
    text: String,
    /// What goes to stdout.
    pub(super) output: String,
}

impl RunAnswer for Rendered {
    fn session_id(&self) -> &str {
        &self.session_id
    }

    fn text(&self) -> &str {
        &self.text
    }
}

/// The run's outcome as `run` reports it, the edits applied first with `--apply` (after the
/// engine checked that they stay inside the workspace).
pub(super) fn render(
    args: &RunArgs,
    request: &ActionRequest,
    outcome: ActionOutcome,
    view: &ProgressView,
) -> Result<Rendered, Failure> {
    let session_id = outcome.result.session_id.clone();
    let workspace = &request.workspace;
    let diff = unified_diff(&outcome.changes, workspace);
    let applied = if args.apply && !outcome.changes.is_empty() {
        view.status("Applying the edits");
        apply_changes(&outcome.changes)?;
        true
    } else {
        false
    };
    let format = args.output_format();
    let json = format == FormatArg::Json;
    let encoding = if json { PositionEncoding::Utf16 } else { PositionEncoding::Utf32 };
    let (text, findings) = match request.action {
        Action::Analyze | Action::Review => {
            let (text, findings) = collect_findings(request, &outcome, encoding)?;
            (text, Some(findings))
        }
        Action::Generate | Action::Refactor => (outcome.text.clone(), None),
    };
    if json {
        let edit = workspace_edit(&outcome.changes)?;
        let result = JsonResult {
            action: report::action(request.action),
            session_id: outcome.result.session_id.clone(),
            text,
            files: outcome
                .changes
                .iter()
                .map(|change| ChangedPath::new(change, workspace))
                .collect(),
            diff: (!outcome.changes.is_empty()).then_some(diff),
            edit,
            applied,
            findings: findings.map(|found| found.iter().map(report::finding).collect()),
            metadata: report::run_metadata(&outcome.result, outcome.cached),
        };
        let mut json = serde_json::to_string_pretty(&result).map_err(|err| Failure {
            code: exit::RUN_FAILED,
            message: err.to_string(),
            hint: String::new(),
        })?;
        json.push('\n');
        return Ok(Rendered { session_id, text: result.text, output: json });
    }
    let mut out = String::new();
    match findings {
        Some(findings) if format == FormatArg::Markdown => {
            out.push_str(&findings::markdown_answer(&text, &findings, workspace));
        }
        Some(findings) => out.push_str(&findings::plain_answer(&text, &findings, workspace)),
        // In Markdown, the model's words and the diff make one document.
        None if format == FormatArg::Markdown => {
            let text = text.trim();
            if !text.is_empty() {
                out.push_str(text);
                out.push_str("\n\n");
            }
            match outcome.changes.is_empty() {
                true => out.push_str("No files were changed.\n"),
                false => out.push_str(&crate::model::prompt::fenced(&diff, "diff")),
            }
            if applied {
                out.push_str(&format!("\nApplied to {} file(s).\n", outcome.changes.len()));
            }
        }
        None => {
            // The diff is the result; the model's words about it go to stderr.
            if !text.trim().is_empty() {
                eprintln!("{}", text.trim_end());
            }
            if outcome.changes.is_empty() {
                eprintln!("claude-lsp: no files were changed");
            } else if applied {
                eprintln!("claude-lsp: applied the edits to {} file(s)", outcome.changes.len());
            }
            out.push_str(&diff);
        }
    }
    Ok(Rendered { session_id, text, output: out })
}

/// The findings of an analyze/review answer, placed in their files as they are on disk.
fn collect_findings(
    request: &ActionRequest,
    outcome: &ActionOutcome,
    encoding: PositionEncoding,
) -> Result<(String, Vec<Finding>), Failure> {
    let report = findings::read_report(outcome.result.structured_output.as_ref(), &outcome.text)
        .map_err(|err| Failure {
            code: exit::RUN_FAILED,
            message: err.to_string(),
            hint: "run it again".to_owned(),
        })?;
    let options = PlaceOptions {
        workspace: &request.workspace,
        encoding,
        min_severity: (request.action == Action::Review)
            .then_some(request.options.review.min_severity),
    };
    let mut text_of = |path: &Path| {
        let current = std::fs::read_to_string(path).ok();
        let seen = if path == request.file { Some(request.text.clone()) } else { current.clone() };
        let seen = seen.or_else(|| current.clone())?;
        Some(FileText {
            uri: edits::path_to_uri(path).ok()?,
            current: current.unwrap_or_else(|| seen.clone()),
            seen,
        })
    };
    let placement = findings::place(&report.findings, &options, &mut text_of);
    let text = findings::summary_text(&report, &placement);
    Ok((text, placement.placed.into_iter().map(|(_, finding)| finding).collect()))
}

/// The edits as the language server would send them to a client with every capability (LSP
/// positions: 0-based, UTF-16), so scripts can hand them to any LSP tooling.
fn workspace_edit(changes: &[FileChange]) -> Result<Option<WorkspaceEdit>, Failure> {
    if changes.is_empty() {
        return Ok(None);
    }
    let caps =
        EditCapabilities { document_changes: true, create: true, rename: true, delete: true };
    edits::build_workspace_edit(changes, &caps, PositionEncoding::Utf16, &|_| None)
        .map(Some)
        .map_err(|err| Failure {
            code: exit::RUN_FAILED,
            message: err.to_string(),
            hint: String::new(),
        })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonResult {
    action: lsp_ext::Action,
    session_id: String,
    text: String,
    files: Vec<ChangedPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diff: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edit: Option<WorkspaceEdit>,
    applied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    findings: Option<Vec<lsp_ext::Finding>>,
    metadata: RunMetadata,
}

#[derive(Serialize)]
struct ChangedPath {
    /// Relative to the workspace.
    path: String,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
}

impl ChangedPath {
    fn new(change: &FileChange, workspace: &Path) -> Self {
        let (path, action, from) = match change {
            FileChange::Modified { path, .. } => (path, "modified", None),
            FileChange::Created { path, .. } => (path, "created", None),
            FileChange::Deleted { path, .. } => (path, "deleted", None),
            FileChange::Renamed { from, to, .. } => {
                (to, "renamed", Some(relative(from, workspace)))
            }
        };
        Self { path: relative(path, workspace), action, from }
    }
}

fn relative(path: &Path, workspace: &Path) -> String {
    path.strip_prefix(workspace).unwrap_or(path).display().to_string()
}

/// The changes as a git-style unified diff (`git apply` takes it from the workspace root).
pub(super) fn unified_diff(changes: &[FileChange], workspace: &Path) -> String {
    let mut out = String::new();
    for change in changes {
        let (old_name, new_name, before, after, header) = match change {
            FileChange::Modified { path, before, after } => {
                let name = relative(path, workspace);
                (Some(name.clone()), Some(name), before.as_str(), after.as_str(), None)
            }
            FileChange::Created { path, content } => (
                None,
                Some(relative(path, workspace)),
                "",
                content.as_str(),
                Some("new file mode 100644\n".to_owned()),
            ),
            FileChange::Deleted { path, before } => (
                Some(relative(path, workspace)),
                None,
                before.as_str(),
                "",
                Some("deleted file mode 100644\n".to_owned()),
            ),
            FileChange::Renamed { from, to, before, after } => {
                let (from, to) = (relative(from, workspace), relative(to, workspace));
                let header = format!("rename from {from}\nrename to {to}\n");
                (Some(from), Some(to), before.as_str(), after.as_str(), Some(header))
            }
        };
        let a =
            old_name.as_ref().map_or_else(|| "/dev/null".to_owned(), |name| format!("a/{name}"));
        let b =
            new_name.as_ref().map_or_else(|| "/dev/null".to_owned(), |name| format!("b/{name}"));
        let git_a =
            old_name.as_ref().or(new_name.as_ref()).map_or_else(String::new, |n| format!("a/{n}"));
        let git_b =
            new_name.as_ref().or(old_name.as_ref()).map_or_else(String::new, |n| format!("b/{n}"));
        let _ = writeln!(out, "diff --git {git_a} {git_b}");
        if let Some(header) = header {
            out.push_str(&header);
        }
        if before != after {
            let diff = similar::TextDiff::from_lines(before, after);
            out.push_str(&diff.unified_diff().context_radius(3).header(&a, &b).to_string());
        }
    }
    out
}
