//! The sections every prompt is made of: the header, the workspace, the file, the selection,
//! the changes, the diagnostics and the instruction.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

use super::code_blocks::{fenced, number_width, numbered};
use super::context::PromptDiagnostic;
use super::document::{CheckedSelection, Document};
use super::limits::{TextLimits, prefix_within, shown_line};
use super::options::Action;
use crate::base::text::lsp_lines;

/// What the task sections talk about.
pub(super) struct Target<'a> {
    pub(super) relative: &'a str,
    pub(super) selection: Option<&'a CheckedSelection<'a>>,
}

impl Target<'_> {
    /// "the selected code (lines 3–5 of `a.rs`)" or "`a.rs`".
    pub(super) fn describe(&self) -> String {
        match self.selection {
            Some(selection) => {
                format!("the selected code ({} of `{}`)", selection.lines_label(), self.relative)
            }
            None => format!("`{}`", self.relative),
        }
    }
}

pub(super) struct FileView<'a> {
    pub(super) relative: &'a str,
    pub(super) language_id: &'a str,
    pub(super) document: &'a Document<'a>,
}

impl FileView<'_> {
    /// The fence info string: the language id when it is a plain word.
    fn fence_tag(&self) -> &str {
        let plain = !self.language_id.is_empty()
            && self.language_id.chars().all(|c| c.is_ascii_alphanumeric() || "_+#.-".contains(c));
        if plain { self.language_id } else { "" }
    }
}

pub(super) fn push_header(prompt: &mut String, action: Action) {
    prompt.push_str(match action {
        Action::Generate => {
            "# Task: generate code\n\nWrite new code in this workspace as the user asks in the \
             instruction below.\n"
        }
        Action::Refactor => {
            "# Task: refactor\n\nRefactor existing code in this workspace as the user asks in the \
             instruction below.\n"
        }
        Action::Analyze => {
            "# Task: analyze code\n\nAnalyze code in this workspace and explain what you find.\n"
        }
        Action::Review => {
            "# Task: code review\n\nReview code in this workspace and report the problems you \
             find.\n"
        }
    });
}

pub(super) fn push_workspace(prompt: &mut String, root: &Path) {
    let _ = write!(
        prompt,
        "\n## Workspace\n\nThe workspace root is your current working directory, `{}`. Paths in \
         this prompt are relative to it. Work only inside it: do not read, create, change or \
         delete anything outside it.\n",
        root.display()
    );
}

pub(super) fn push_file(
    prompt: &mut String,
    file: &FileView,
    action: Action,
    selection: Option<&CheckedSelection>,
    limits: &TextLimits,
) {
    let document = file.document;
    let count = document.lines.len();
    let _ = write!(
        prompt,
        "\n## File\n\n`{}` (language `{}`, {count} {}{})\n",
        file.relative,
        file.language_id,
        if count == 1 { "line" } else { "lines" },
        match document.line_ending() {
            Some(ending) => format!(", {ending} line endings"),
            None => String::new(),
        }
    );
    if count == 0 {
        prompt.push_str("\nThe file is empty.\n");
        return;
    }
    if !limits.inline_text {
        let _ = write!(
            prompt,
            "\nIts text is not included here, to keep the prompt within the context window: read \
             `{}` with the Read tool, in parts if it is long{}.\n",
            file.relative,
            if action.is_edit() { "" } else { " (the editor's unsaved changes are not on disk)" }
        );
        return;
    }
    let _ = write!(prompt, "\n### Current text of `{}`\n\n", file.relative);
    prompt.push_str("This is the editor's text of the file, unsaved changes included. ");
    prompt.push_str(if action.is_edit() {
        "The file in the working directory holds exactly this text. "
    } else {
        "It may be newer than the file on disk: trust this text. "
    });
    prompt.push_str("The line numbers are for reference only and are not part of the file.\n");

    let whole = count <= limits.max_file_lines && document.text.len() <= limits.max_file_bytes;
    let shown = if whole {
        0..count
    } else {
        let focus = selection.map_or(0..=0, |selection| selection.start..=selection.end);
        document.window(focus, limits)
    };
    if !whole {
        let _ = write!(
            prompt,
            "\nThe file is truncated here: it has {count} lines and only lines {}–{} are shown. \
             Use the Read tool for the rest.\n",
            shown.start + 1,
            shown.end
        );
    }
    let max_line_chars = (!whole).then_some(limits.max_line_chars);
    let width = number_width(count);
    let body =
        numbered(shown.clone().map(|index| (index, document.lines[index])), width, max_line_chars);
    prompt.push('\n');
    prompt.push_str(&fenced(&body, file.fence_tag()));
}

pub(super) fn push_selection(
    prompt: &mut String,
    file: &FileView,
    selection: &CheckedSelection,
    limits: &TextLimits,
) {
    if selection.text.is_empty() {
        let _ = write!(
            prompt,
            "\n## Cursor\n\nThe cursor is on line {} of `{}`.\n",
            selection.start + 1,
            file.relative
        );
        return;
    }
    let _ = write!(
        prompt,
        "\n## Selection\n\nThe user selected {} of `{}`",
        selection.lines_label(),
        file.relative
    );
    if !limits.inline_text {
        prompt.push_str(": read those lines of the file.\n");
        return;
    }
    let lines = Document::new(selection.text).lines;
    // Lines the user selected are shown whole, unless the selection is too big for that.
    let max_line_chars =
        (selection.text.len() > limits.window_bytes).then_some(limits.max_line_chars);
    let (shown, truncated) = prefix_within(&lines, limits.window_bytes, max_line_chars);
    if truncated {
        let _ = write!(prompt, " (only its first {shown} of {} lines are shown)", lines.len());
    }
    prompt.push_str(":\n\n");
    let width = number_width(file.document.lines.len().max(selection.end + 1));
    let body = numbered(
        lines[..shown].iter().enumerate().map(|(offset, line)| (selection.start + offset, *line)),
        width,
        max_line_chars,
    );
    prompt.push_str(&fenced(&body, file.fence_tag()));
}

pub(super) fn push_changes(prompt: &mut String, diff: &str, limits: &TextLimits) {
    prompt.push_str(
        "\n## Uncommitted changes\n\nThe output of `git diff HEAD`, plus the untracked files",
    );
    if !limits.inline_text {
        prompt.push_str(
            ", is not included here, to keep the prompt within the context window. Read the \
             changed files:\n\n",
        );
        for name in changed_files(diff) {
            let _ = writeln!(prompt, "- `{name}`");
        }
        return;
    }
    if diff.len() <= limits.max_file_bytes {
        prompt.push_str(":\n\n");
        prompt.push_str(&fenced(diff, "diff"));
        return;
    }
    let lines = Document::new(diff).lines;
    let max_line_chars = Some(limits.max_line_chars);
    let (shown, _) = prefix_within(&lines, limits.max_file_bytes, max_line_chars);
    let body: Vec<Cow<str>> =
        lines[..shown].iter().map(|line| shown_line(line, max_line_chars)).collect();
    let cut =
        if body.iter().any(|line| matches!(line, Cow::Owned(_))) { ", long lines cut" } else { "" };
    let _ = write!(
        prompt,
        " (truncated to {shown} of its {} lines{cut}: read the changed files for the rest)",
        lines.len()
    );
    let body = body.join("\n");
    prompt.push_str(":\n\n");
    prompt.push_str(&fenced(&body, "diff"));
}

/// The files a review diff names (`diff --git a/x b/x`, untracked binary or large files).
fn changed_files(diff: &str) -> Vec<&str> {
    let mut names: Vec<&str> = diff
        .lines()
        .filter_map(|line| {
            line.strip_prefix("diff --git a/")
                .and_then(|rest| rest.rsplit_once(" b/").map(|(_, name)| name))
                .or_else(|| line.strip_prefix("new file (untracked, binary or large): "))
        })
        .collect();
    names.dedup();
    names
}

pub(super) fn push_diagnostics(prompt: &mut String, diagnostics: &[PromptDiagnostic]) {
    if diagnostics.is_empty() {
        return;
    }
    prompt.push_str("\n## Diagnostics\n\nThe editor shows these diagnostics in the range:\n\n");
    for diagnostic in diagnostics {
        let _ = write!(prompt, "- line {}, {}", diagnostic.line + 1, diagnostic.severity);
        if let Some(source) = &diagnostic.source {
            let _ = write!(prompt, " from {source}");
        }
        // Continuation lines are indented so they stay inside their list item.
        let message = lsp_lines(diagnostic.message.trim_end()).collect::<Vec<_>>().join("\n  ");
        let _ = writeln!(prompt, ": {message}");
    }
}

pub(super) fn push_instruction(prompt: &mut String, instruction: &str) {
    prompt.push_str("\n## Instruction\n\nThe user's instruction, verbatim:\n\n");
    prompt.push_str(&fenced(instruction, "text"));
}
