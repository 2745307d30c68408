//! A finding placed in its file, and how the editor shows it (a diagnostic) and applies its fix.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::model::documents::{PositionEncoding, exact_text};
use crate::model::edits;
use crate::model::prompt::Severity;
use crate::protocol::lsp::{
    Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString, Range,
    TextEdit, Uri,
};

/// The `source` of every diagnostic claude-lsp publishes.
pub const SOURCE: &str = "claude";

/// A finding of review/analyze, placed in its file (`range` in the negotiated encoding).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Names the finding in `claude.applyFinding` / `claude.dismissFinding` (and in the
    /// diagnostic's `data.findingId`).
    pub id: String,
    pub uri: Uri,
    pub range: Range,
    pub severity: Severity,
    pub category: Category,
    pub title: String,
    pub explanation: String,
    pub suggestion: Option<String>,
    /// Checked against the code: `old_text` is exactly the text at `range`.
    pub fix: Option<FindingFix>,
    pub related: Vec<RelatedLocation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingFix {
    pub old_text: String,
    pub new_text: String,
}

/// Another place that matters to a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedLocation {
    pub uri: Uri,
    pub range: Range,
    pub message: String,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Bug,
        Category::Security,
        Category::Performance,
        Category::Correctness,
        Category::Maintainability,
        Category::Style,
        Category::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Bug => "bug",
            Category::Security => "security",
            Category::Performance => "performance",
            Category::Correctness => "correctness",
            Category::Maintainability => "maintainability",
            Category::Style => "style",
            Category::Test => "test",
        }
    }
}

pub(super) fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
        Severity::Hint => "hint",
    }
}

/// A finding as a diagnostic: `source` claude, `code` its category, `data.findingId` its id.
/// Without client support for related information, the related locations go in the message.
pub fn to_diagnostic(finding: &Finding, related_information: bool) -> Diagnostic {
    let severity = match finding.severity {
        Severity::Error => DiagnosticSeverity::ERROR,
        Severity::Warning => DiagnosticSeverity::WARNING,
        Severity::Info => DiagnosticSeverity::INFORMATION,
        Severity::Hint => DiagnosticSeverity::HINT,
    };
    let mut message = finding.title.clone();
    if !finding.explanation.is_empty() {
        let _ = write!(message, "\n\n{}", finding.explanation);
    }
    if let Some(suggestion) = &finding.suggestion {
        let _ = write!(message, "\n\nSuggestion: {suggestion}");
    }
    let related = if related_information {
        let related: Vec<DiagnosticRelatedInformation> = finding
            .related
            .iter()
            .map(|related| DiagnosticRelatedInformation {
                location: Location { uri: related.uri.clone(), range: related.range },
                message: crate::base::secrets::redacted(&related.message),
            })
            .collect();
        (!related.is_empty()).then_some(related)
    } else {
        for related in &finding.related {
            let place = edits::uri_to_path(&related.uri)
                .map_or_else(|_| related.uri.as_str().to_owned(), |p| p.display().to_string());
            let _ = write!(
                message,
                "\n\nSee also {place}:{}: {}",
                related.range.start.line + 1,
                related.message
            );
        }
        None
    };
    Diagnostic {
        range: finding.range,
        severity: Some(severity),
        code: Some(NumberOrString::String(finding.category.as_str().to_owned())),
        source: Some(SOURCE.to_owned()),
        // The model wrote it: a secret it quoted is not shown in the editor's problem list.
        message: crate::base::secrets::redacted(&message),
        related_information: related,
        data: Some(json!({ "findingId": finding.id })),
        ..Diagnostic::default()
    }
}

/// The id of the finding behind a diagnostic claude-lsp published.
pub fn finding_id(diagnostic: &Diagnostic) -> Option<&str> {
    if diagnostic.source.as_deref() != Some(SOURCE) {
        return None;
    }
    diagnostic.data.as_ref()?.get("findingId")?.as_str()
}

/// Checks a finding's fix against the current `text` of its file: the edit that applies it, or
/// why it cannot be applied.
pub fn fix_edit(
    finding: &Finding,
    text: &str,
    encoding: PositionEncoding,
) -> Result<TextEdit, FixError> {
    let fix = finding.fix.as_ref().ok_or(FixError::NoFix)?;
    match exact_text(text, finding.range, encoding) {
        Some(found) if found == fix.old_text => {}
        found => return Err(FixError::Changed { found: found.unwrap_or_default() }),
    }
    Ok(TextEdit { range: finding.range, new_text: fix.new_text.clone() })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FixError {
    #[error("this finding has no fix")]
    NoFix,
    #[error("the code at the finding changed since the review")]
    Changed { found: String },
}
