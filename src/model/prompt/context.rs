//! What a prompt is built from, and why it cannot be built.

use std::path::{Path, PathBuf};

use super::options::{Action, ActionOptions};
use crate::base::error::ServerError;
use crate::model::scope::ScopeFiles;
use crate::protocol::lsp;

/// The user's selection: 0-based lines `start_line..=end_line` and the selected text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub start_line: u32,
    pub end_line: u32,
    pub text: String,
}

/// A diagnostic the editor shows in the range, as the prompt tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptDiagnostic {
    /// 0-based.
    pub line: u32,
    pub severity: &'static str,
    pub source: Option<String>,
    pub message: String,
}

impl PromptDiagnostic {
    pub fn from_lsp(diagnostic: &lsp::Diagnostic) -> Self {
        let severity = match diagnostic.severity {
            Some(lsp::DiagnosticSeverity::ERROR) => "error",
            Some(lsp::DiagnosticSeverity::WARNING) => "warning",
            Some(lsp::DiagnosticSeverity::INFORMATION) => "info",
            Some(lsp::DiagnosticSeverity::HINT) => "hint",
            _ => "diagnostic",
        };
        Self {
            line: diagnostic.range.start.line,
            severity,
            source: diagnostic.source.clone(),
            message: diagnostic.message.clone(),
        }
    }
}

/// Everything a prompt is built from.
#[derive(Debug, Clone)]
pub struct PromptContext<'a> {
    pub action: Action,
    /// Absolute.
    pub workspace_root: &'a Path,
    /// Absolute, inside the workspace.
    pub file_path: &'a Path,
    pub language_id: &'a str,
    /// The editor's text of the file (unsaved changes win over the disk).
    pub text: &'a str,
    pub selection: Option<Selection>,
    /// The diagnostics in the range.
    pub diagnostics: &'a [PromptDiagnostic],
    pub instruction: Option<&'a str>,
    /// The staging mirror's root, for edit actions: the agent's working directory, where it
    /// edits. The real workspace path is then never shown, so the agent cannot edit it.
    pub edit_root: Option<&'a Path>,
    pub options: ActionOptions,
    /// For a review of uncommitted changes: `git diff HEAD` plus the untracked files.
    pub changes_diff: Option<&'a str>,
    /// For a folder or workspace scope: the files in it.
    pub scope_files: Option<&'a ScopeFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    #[error("{action} needs an instruction: say what to {action}")]
    MissingInstruction { action: Action },
    #[error("{} is not an absolute path", path.display())]
    RelativePath { path: PathBuf },
    #[error("{} is not inside the workspace {}", file.display(), workspace.display())]
    OutsideWorkspace { file: PathBuf, workspace: PathBuf },
    #[error(
        "the selection (lines {} to {}) is not inside the document, which has {line_count} lines",
        start_line + 1,
        end_line + 1
    )]
    InvalidSelection { start_line: u32, end_line: u32, line_count: usize },
    #[error("a review of the selection needs a selection (a range)")]
    MissingSelection,
    #[error("a review of the changes needs the uncommitted changes, and none were given")]
    MissingChanges,
    #[error("there are no uncommitted changes to review")]
    NoChanges,
    #[error("the directory {directory:?} {reason}")]
    InvalidDirectory { directory: String, reason: &'static str },
    #[error("a {0} scope applies to analyze and review only")]
    ScopeNotForAction(&'static str),
    #[error("a folder or workspace scope needs its list of files")]
    MissingScopeFiles,
    #[error("there are no files to look at in {0}")]
    EmptyScope(String),
}

impl From<PromptError> for ServerError {
    fn from(err: PromptError) -> Self {
        match err {
            PromptError::OutsideWorkspace { .. } => ServerError::new(
                crate::base::error::ErrorKind::FILE_ACCESS,
                err.to_string(),
                "open the file from inside a workspace folder",
            ),
            _ => ServerError::invalid_params(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_errors_become_server_errors_of_the_right_kind() {
        let outside = ServerError::from(PromptError::OutsideWorkspace {
            file: "/a".into(),
            workspace: "/b".into(),
        });
        assert_eq!(outside.kind, crate::base::error::ErrorKind::FILE_ACCESS);
        let missing =
            ServerError::from(PromptError::MissingInstruction { action: Action::Generate });
        assert_eq!(missing.kind, crate::base::error::ErrorKind::INVALID_PARAMS);
        assert_eq!(missing.message, "generate needs an instruction: say what to generate");
    }

    #[test]
    fn diagnostics_convert_from_lsp() {
        let diagnostic = lsp::Diagnostic {
            range: lsp::Range::new(lsp::Position::new(4, 2), lsp::Position::new(5, 0)),
            severity: Some(lsp::DiagnosticSeverity::WARNING),
            source: Some("clippy".into()),
            message: "needless borrow".into(),
            ..lsp::Diagnostic::default()
        };
        assert_eq!(
            PromptDiagnostic::from_lsp(&diagnostic),
            PromptDiagnostic {
                line: 4,
                severity: "warning",
                source: Some("clippy".into()),
                message: "needless borrow".into()
            }
        );
        let unknown = lsp::Diagnostic { severity: None, ..diagnostic };
        assert_eq!(PromptDiagnostic::from_lsp(&unknown).severity, "diagnostic");
    }
}
