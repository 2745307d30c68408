//! A run's answer and its findings as text: the summary shown in the editor, and the plain and
//! Markdown forms of the headless output.

use std::fmt::Write as _;
use std::path::Path;

use super::finding::{Finding, severity_name};
use super::place::Placement;
use super::report::Report;
use crate::model::edits;

/// The answer shown to the user: the summary, then what could not be placed or read.
pub fn summary_text(report: &Report, placement: &Placement) -> String {
    let mut text = report.summary.clone();
    let mut push_paragraph = |paragraph: &str| {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(paragraph);
    };
    if !placement.unplaced.is_empty() {
        let count = placement.unplaced.len();
        let heading = if count == 1 {
            "**1 finding could not be located in the code:**".to_owned()
        } else {
            format!("**{count} findings could not be located in the code:**")
        };
        push_paragraph(&format!("{heading}\n\n{}", placement.unplaced.join("\n")));
    }
    if placement.fixes_dropped > 0 {
        push_paragraph(&format!(
            "_{} fix{} did not match the code exactly and {} left out._",
            placement.fixes_dropped,
            if placement.fixes_dropped == 1 { "" } else { "es" },
            if placement.fixes_dropped == 1 { "was" } else { "were" },
        ));
    }
    for note in &report.notes {
        push_paragraph(&format!("_{note}_"));
    }
    text
}

/// An answer and its findings as plain text (the headless output, the editor's output channel):
/// the answer, then each finding as `path:line:col: severity [category] title` with its
/// explanation and suggestion indented. Paths are relative to `workspace`.
pub fn plain_answer(text: &str, findings: &[Finding], workspace: &Path) -> String {
    let mut out = String::new();
    let text = text.trim_end();
    if !text.is_empty() {
        out.push_str(text);
        out.push('\n');
    }
    if !findings.is_empty() {
        out.push('\n');
    }
    for finding in findings {
        let path = shown_path(finding, workspace);
        let _ = writeln!(
            out,
            "{path}:{}:{}: {} [{}] {}",
            finding.range.start.line + 1,
            finding.range.start.character + 1,
            severity_name(finding.severity),
            finding.category.as_str(),
            finding.title
        );
        for line in finding.explanation.lines() {
            let _ = writeln!(out, "    {line}");
        }
        if let Some(suggestion) = &finding.suggestion {
            let _ = writeln!(out, "    suggestion: {suggestion}");
        }
    }
    out
}

/// An answer and its findings as Markdown (`claude-lsp run --format markdown`): the answer,
/// then a `## Findings` list, each finding with its place, severity, category, explanation and
/// suggestion.
pub fn markdown_answer(text: &str, findings: &[Finding], workspace: &Path) -> String {
    let mut out = String::new();
    let text = text.trim();
    if !text.is_empty() {
        out.push_str(text);
        out.push_str("\n\n");
    }
    if findings.is_empty() {
        out.push_str("No findings.\n");
        return out;
    }
    out.push_str("## Findings\n\n");
    for finding in findings {
        let _ = writeln!(
            out,
            "- **{}** `{}:{}` ({}, {})",
            finding.title,
            shown_path(finding, workspace),
            finding.range.start.line + 1,
            severity_name(finding.severity),
            finding.category.as_str(),
        );
        for line in finding.explanation.lines() {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(suggestion) = &finding.suggestion {
            let _ = writeln!(out, "  *Suggestion:* {suggestion}");
        }
    }
    out
}

/// A finding's file, relative to `workspace` when inside it.
fn shown_path(finding: &Finding, workspace: &Path) -> String {
    edits::uri_to_path(&finding.uri)
        .map(|path| path.strip_prefix(workspace).map(Path::to_path_buf).unwrap_or(path))
        .map_or_else(|_| finding.uri.as_str().to_owned(), |path| path.display().to_string())
}
