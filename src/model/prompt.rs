//! Workspace-scoped prompts for the four actions, the system prompt addendum, and the scan for
//! instruction comments (`claude: …`, `TODO: …`) behind the cheap code actions.
//!
//! Everything here is pure: text in, text out. The user's instruction is embedded verbatim and
//! never sanitized: the prompt travels to the CLI as JSON data on stdin, never through a shell.
//! Every embedded block is fenced with a backtick run longer than any inside it, so no content
//! (a Markdown file, a diff, the instruction) can close its block early.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::base::error::ServerError;
use crate::base::paths::normalize;
use crate::base::text::lsp_lines;
use crate::model::scope::ScopeFiles;
use crate::protocol::lsp;

/// Files up to this many lines (and [`MAX_FILE_BYTES`]) are shown whole; longer ones are shown
/// as a window around the selection.
pub const MAX_FILE_LINES: usize = 2_000;
/// Files up to this many bytes (and [`MAX_FILE_LINES`]) are shown whole (~30k tokens).
pub const MAX_FILE_BYTES: usize = 120_000;
/// The most lines a window of a long file shows.
pub const WINDOW_LINES: usize = 400;
/// The most bytes a window of a long file (or a long selection or diff) shows.
pub const WINDOW_BYTES: usize = 40_000;
/// Lines longer than this are cut inside a window (minified code would otherwise fill it).
pub const MAX_LINE_CHARS: usize = 1_000;

/// The four actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Generate,
    Analyze,
    Refactor,
    Review,
}

impl Action {
    /// Whether the action changes files (and so runs in the staging mirror with edit tools).
    pub fn is_edit(self) -> bool {
        matches!(self, Action::Generate | Action::Refactor)
    }

    fn name(self) -> &'static str {
        match self {
            Action::Generate => "generate",
            Action::Analyze => "analyze",
            Action::Refactor => "refactor",
            Action::Review => "review",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How thorough an analysis is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Depth {
    Quick,
    #[default]
    Normal,
    Deep,
}

/// What a review looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewScope {
    Selection,
    File,
    /// The workspace's uncommitted changes.
    Changes,
    /// Every file of a folder (`directory`, default: the target's folder): listed, not inlined.
    Folder,
    /// Every file of the workspace: listed, not inlined.
    Workspace,
}

impl ReviewScope {
    /// Whether the scope is a folder or the workspace, which the prompt lists instead of showing.
    pub fn is_tree(self) -> bool {
        matches!(self, ReviewScope::Folder | ReviewScope::Workspace)
    }
}

/// Finding severities, most severe first (so `a <= b` means "a is at least as severe as b").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
    Hint,
}

impl Severity {
    const ALL: [Severity; 4] = [Severity::Error, Severity::Warning, Severity::Info, Severity::Hint];

    fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::Hint => "hint",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnalyzeOptions {
    pub depth: Depth,
    /// Also look at the tests covering the code.
    pub include_tests: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewOptions {
    /// Findings less severe than this are not reported (default: info, so hints are left out).
    pub min_severity: Severity,
    /// `None`: the selection when there is one, else the file. Analyze reads `folder` and
    /// `workspace` from here too.
    pub scope: Option<ReviewScope>,
    /// Ask for a replacement text with each finding.
    pub fix: bool,
}

impl Default for ReviewOptions {
    fn default() -> Self {
        Self { min_severity: Severity::Info, scope: None, fix: false }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Where new files go (generate), or the folder of a `folder` scope (analyze, review):
    /// relative to the workspace root.
    pub directory: Option<String>,
}

/// The per-action options (each action reads its own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionOptions {
    pub analyze: AnalyzeOptions,
    pub review: ReviewOptions,
    pub generate: GenerateOptions,
    /// The model of this run (default: the `model` setting).
    pub model: Option<String>,
}

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

/// The limits on how much text a prompt embeds. Tests shrink them to keep snapshots readable.
#[derive(Debug, Clone, Copy)]
struct TextLimits {
    max_file_lines: usize,
    max_file_bytes: usize,
    window_lines: usize,
    window_bytes: usize,
    max_line_chars: usize,
    /// False: name the file, the selection and the changes, and let the agent read them.
    inline_text: bool,
}

impl TextLimits {
    const DEFAULT: TextLimits = TextLimits {
        max_file_lines: MAX_FILE_LINES,
        max_file_bytes: MAX_FILE_BYTES,
        window_lines: WINDOW_LINES,
        window_bytes: WINDOW_BYTES,
        max_line_chars: MAX_LINE_CHARS,
        inline_text: true,
    };
    const REFERENCES: TextLimits = TextLimits { inline_text: false, ..TextLimits::DEFAULT };
}

/// Builds the user prompt of one run.
pub fn build_prompt(ctx: &PromptContext) -> Result<String, PromptError> {
    build_prompt_with(ctx, &TextLimits::DEFAULT)
}

/// The prompt of one run with files referenced instead of inlined: the agent reads what it
/// needs. For a run whose prompt is over the model's context window; `None` when it would be no
/// smaller than [`build_prompt`]'s.
pub fn build_reference_prompt(ctx: &PromptContext) -> Result<Option<String>, PromptError> {
    let full = build_prompt(ctx)?;
    let references = build_prompt_with(ctx, &TextLimits::REFERENCES)?;
    Ok((references.len() < full.len()).then_some(references))
}

/// Appended to the CLI's system prompt: the rules every run of `action` follows.
pub fn system_prompt_addendum(action: Action) -> String {
    let mut text = String::from(
        "You are running inside claude-lsp, which connects the user's code editor to Claude Code \
         through the Language Server Protocol.",
    );
    text.push_str(if action.is_edit() {
        " The user sees your final answer and your changes in the editor.\n\n"
    } else {
        " The user sees your final answer in the editor.\n\n"
    });
    text.push_str(
        "- Work only inside the workspace (your current working directory) and any additional \
         directories you were given. Never read, create, change or delete paths outside them, \
         and do not use commands, links or `..` paths that reach outside them.\n",
    );
    if action.is_edit() {
        text.push_str(
            "- Make every change by editing files in place: the Edit tool for existing files, the \
             Write tool for new ones. Do not just print code in your answer: the editor collects \
             your edits from disk and shows them to the user as a reviewable change.\n\
             - Do not commit, stage, stash or reset anything with git.\n",
        );
    } else {
        text.push_str(
            "- This task is read-only: do not create, change or delete any file, and do not run \
             commands that change anything.\n",
        );
    }
    text.push_str(
        "- Refer to code as `relative/path:line` (1-based lines). Write your final answer in \
         Markdown and keep it to the point.\n",
    );
    text
}

fn build_prompt_with(ctx: &PromptContext, limits: &TextLimits) -> Result<String, PromptError> {
    let instruction = ctx.instruction.filter(|text| !text.trim().is_empty());
    if ctx.action.is_edit() && instruction.is_none() {
        return Err(PromptError::MissingInstruction { action: ctx.action });
    }
    if let Some(scope) = ctx.options.review.scope.filter(|scope| scope.is_tree()) {
        return build_scope_prompt(ctx, scope, instruction);
    }
    let relative = display_path(&relative_to_workspace(ctx.workspace_root, ctx.file_path)?);
    let document = Document::new(ctx.text);
    let selection =
        ctx.selection.as_ref().map(|selection| document.check(selection)).transpose()?;
    let scope = match (ctx.action, ctx.options.review.scope, &selection) {
        (Action::Review, Some(ReviewScope::Selection), None) => {
            return Err(PromptError::MissingSelection);
        }
        (Action::Review, Some(scope), _) => Some(scope),
        (Action::Review, None, Some(_)) => Some(ReviewScope::Selection),
        (Action::Review, None, None) => Some(ReviewScope::File),
        _ => None,
    };
    let changes = match scope {
        Some(ReviewScope::Changes) => match ctx.changes_diff {
            None => return Err(PromptError::MissingChanges),
            Some(diff) if diff.trim().is_empty() => return Err(PromptError::NoChanges),
            Some(diff) => Some(diff),
        },
        _ => None,
    };
    let directory = match (ctx.action, &ctx.options.generate.directory) {
        (Action::Generate, Some(directory)) => workspace_directory(directory)?,
        _ => None,
    };
    // The selection a review of the whole file or of the changes does not look at.
    let selection =
        selection.filter(|_| !matches!(scope, Some(ReviewScope::File | ReviewScope::Changes)));

    let file = FileView { relative: &relative, language_id: ctx.language_id, document: &document };
    let mut prompt = String::new();
    push_header(&mut prompt, ctx.action);
    push_workspace(&mut prompt, ctx.edit_root.unwrap_or(ctx.workspace_root));
    match changes {
        Some(diff) => push_changes(&mut prompt, diff, limits),
        None => {
            push_file(&mut prompt, &file, ctx.action, selection.as_ref(), limits);
            if let Some(selection) = &selection {
                push_selection(&mut prompt, &file, selection, limits);
            }
        }
    }
    push_diagnostics(&mut prompt, ctx.diagnostics);
    if let Some(instruction) = instruction {
        push_instruction(&mut prompt, instruction);
    }
    let target = Target { relative: &relative, selection: selection.as_ref() };
    match ctx.action {
        Action::Generate => push_generate_task(&mut prompt, &target, directory.as_deref()),
        Action::Refactor => push_refactor_task(&mut prompt, &target),
        Action::Analyze => {
            push_analyze_task(&mut prompt, &target, &ctx.options.analyze, instruction.is_some())
        }
        Action::Review => push_review_task(&mut prompt, &target, scope, &ctx.options.review),
    }
    Ok(prompt)
}

/// What the task sections talk about.
struct Target<'a> {
    relative: &'a str,
    selection: Option<&'a CheckedSelection<'a>>,
}

impl Target<'_> {
    /// "the selected code (lines 3–5 of `a.rs`)" or "`a.rs`".
    fn describe(&self) -> String {
        match self.selection {
            Some(selection) => {
                format!("the selected code ({} of `{}`)", selection.lines_label(), self.relative)
            }
            None => format!("`{}`", self.relative),
        }
    }
}

struct FileView<'a> {
    relative: &'a str,
    language_id: &'a str,
    document: &'a Document<'a>,
}

impl FileView<'_> {
    /// The fence info string: the language id when it is a plain word.
    fn fence_tag(&self) -> &str {
        let plain = !self.language_id.is_empty()
            && self.language_id.chars().all(|c| c.is_ascii_alphanumeric() || "_+#.-".contains(c));
        if plain { self.language_id } else { "" }
    }
}

fn push_header(prompt: &mut String, action: Action) {
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

fn push_workspace(prompt: &mut String, root: &Path) {
    let _ = write!(
        prompt,
        "\n## Workspace\n\nThe workspace root is your current working directory, `{}`. Paths in \
         this prompt are relative to it. Work only inside it: do not read, create, change or \
         delete anything outside it.\n",
        root.display()
    );
}

fn push_file(
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

fn push_selection(
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

fn push_changes(prompt: &mut String, diff: &str, limits: &TextLimits) {
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

fn push_diagnostics(prompt: &mut String, diagnostics: &[PromptDiagnostic]) {
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

fn push_instruction(prompt: &mut String, instruction: &str) {
    prompt.push_str("\n## Instruction\n\nThe user's instruction, verbatim:\n\n");
    prompt.push_str(&fenced(instruction, "text"));
}

fn push_generate_task(prompt: &mut String, target: &Target, directory: Option<&str>) {
    prompt.push_str("\n## What to do\n\n");
    match target.selection {
        Some(selection) => {
            let _ = writeln!(
                prompt,
                "- The selection ({} of `{}`) marks where the code belongs: replace the selected \
                 text when it is a placeholder or a comment describing the code, otherwise add the \
                 code there.",
                selection.lines_label(),
                target.relative
            );
        }
        None => {
            let _ = writeln!(
                prompt,
                "- Add the code to `{}` where it fits best, or to new files when the instruction \
                 asks for them.",
                target.relative
            );
        }
    }
    if let Some(directory) = directory {
        let _ = writeln!(
            prompt,
            "- Put new files in `{directory}/` (relative to the workspace root); create the \
             directory if it does not exist."
        );
    }
    prompt.push_str(
        "- Follow the conventions of the surrounding code: style, naming, error handling, \
         imports.\n",
    );
    push_edit_rules(prompt);
}

fn push_refactor_task(prompt: &mut String, target: &Target) {
    prompt.push_str("\n## What to do\n\n");
    let _ = writeln!(
        prompt,
        "- Refactor {}. Change other code only where the refactoring requires it (callers, \
         imports, declarations).",
        target.describe()
    );
    prompt.push_str("- Keep the behaviour the same unless the instruction asks for a change.\n");
    push_edit_rules(prompt);
}

fn push_edit_rules(prompt: &mut String) {
    prompt.push_str(
        "- Make the changes by editing the files in place: the Edit tool for existing files, the \
         Write tool for new ones. Do not just print the code: the editor picks up your edits from \
         disk and shows them to the user for review.\n\
         - Do not commit, stage, stash or reset anything with git.\n\
         - When you are done, answer with a short summary of what you changed.\n",
    );
}

fn push_analyze_task(
    prompt: &mut String,
    target: &Target,
    options: &AnalyzeOptions,
    has_instruction: bool,
) {
    prompt.push_str("\n## What to do\n\n");
    let _ = writeln!(prompt, "- Analyze {}.", target.describe());
    prompt.push_str(if has_instruction {
        "- Answer the user's instruction above.\n"
    } else {
        "- Explain what the code does and how, and point out problems you notice: bugs, unhandled \
         edge cases and errors, performance.\n"
    });
    prompt.push_str(match options.depth {
        Depth::Quick => {
            "- Be quick: the most important points only, without exploring other files.\n"
        }
        Depth::Normal => "- Read related code in other files where it helps the answer.\n",
        Depth::Deep => {
            "- Be thorough: trace callers and callees across the workspace, and consider edge \
             cases, error handling, concurrency and performance.\n"
        }
    });
    if options.include_tests {
        prompt.push_str(
            "- Also find the tests that cover this code, and say which behaviour they leave \
             untested.\n",
        );
    }
    prompt.push_str(
        "- This is a read-only task: do not create, change or delete any file.\n\
         - Report each problem you find as a finding (format below).\n",
    );
    push_findings_format(
        prompt,
        target.relative,
        false,
        "your whole answer, in Markdown, referring to code as `path:line`.",
    );
}

fn push_review_task(
    prompt: &mut String,
    target: &Target,
    scope: Option<ReviewScope>,
    options: &ReviewOptions,
) {
    prompt.push_str("\n## What to do\n\n");
    match scope {
        Some(ReviewScope::Changes) => prompt.push_str(
            "- Review the uncommitted changes above. Read the changed files where you need more \
             context, but report problems in the changed lines only.\n",
        ),
        _ => {
            let _ = writeln!(prompt, "- Review {}.", target.describe());
        }
    }
    push_review_criteria(prompt, options);
    prompt.push_str(
        "- This is a read-only task: do not create, change or delete any file.\n\
         - Report each problem as a finding (format below).\n",
    );
    push_findings_format(
        prompt,
        target.relative,
        options.fix,
        "a short overall assessment, in Markdown.",
    );
}

/// What a review looks for, and the least severity it reports.
fn push_review_criteria(prompt: &mut String, options: &ReviewOptions) {
    prompt.push_str(
        "- Look for bugs, security problems, missing error handling, race conditions, performance \
         problems and unclear code. Do not report matters of taste.\n",
    );
    if options.min_severity == Severity::Hint {
        prompt.push_str("- Report findings of every severity.\n");
    } else {
        let names: Vec<&str> = Severity::ALL.iter().map(|severity| severity.name()).collect();
        let _ = writeln!(
            prompt,
            "- Report only findings of severity `{}` or more severe (from most to least \
             severe: {}).",
            options.min_severity.name(),
            names.join(", ")
        );
    }
}

/// The prompt of a folder or workspace scope: the files are listed, and the agent reads the
/// ones it needs, so the prompt stays small however many there are.
fn build_scope_prompt(
    ctx: &PromptContext,
    scope: ReviewScope,
    instruction: Option<&str>,
) -> Result<String, PromptError> {
    let scope_name = if scope == ReviewScope::Folder { "folder" } else { "workspace" };
    if !matches!(ctx.action, Action::Analyze | Action::Review) {
        return Err(PromptError::ScopeNotForAction(scope_name));
    }
    let files = ctx.scope_files.ok_or(PromptError::MissingScopeFiles)?;
    let place = match &files.directory {
        Some(directory) => format!("the folder `{directory}/`"),
        None => "the whole workspace".to_owned(),
    };
    if files.total == 0 {
        return Err(PromptError::EmptyScope(place));
    }
    let mut prompt = String::new();
    push_header(&mut prompt, ctx.action);
    push_workspace(&mut prompt, ctx.workspace_root);
    let _ = write!(
        prompt,
        "\n## Files in scope\n\nThis {} covers {place}: {} file{}",
        if ctx.action == Action::Review { "review" } else { "analysis" },
        files.total,
        if files.total == 1 { "" } else { "s" },
    );
    if files.from_git {
        prompt.push_str(" (tracked, and untracked ones `.gitignore` does not exclude)");
    }
    prompt.push('.');
    if files.tests_left_out > 0 {
        let _ = write!(prompt, " {} test files are left out.", files.tests_left_out);
    }
    prompt.push_str(
        " The files are listed, not shown: read each one you need with the Read tool.\n\n",
    );
    prompt.push_str(&fenced(&files.listed.join("\n"), "text"));
    let unlisted = files.total - files.listed.len();
    if unlisted > 0 {
        let _ = writeln!(
            prompt,
            "\n…and {unlisted} more files, not listed here: find them with the Glob tool."
        );
    }
    if let Some(instruction) = instruction {
        push_instruction(&mut prompt, instruction);
    }
    prompt.push_str("\n## What to do\n\n");
    let analyze = &ctx.options.analyze;
    match ctx.action {
        Action::Review => {
            let _ = writeln!(prompt, "- Review the code of {place}.");
        }
        _ => {
            let _ = writeln!(prompt, "- Analyze the code of {place}.");
            prompt.push_str(if instruction.is_some() {
                "- Answer the user's instruction above.\n"
            } else {
                "- Explain what the code does and how it fits together, and point out problems \
                 you notice: bugs, unhandled edge cases and errors, performance.\n"
            });
        }
    }
    prompt.push_str(match analyze.depth {
        Depth::Quick => {
            "- Be quick: read only the files most likely to matter (entry points, the largest \
             or most complex files) and report the most important points.\n"
        }
        Depth::Normal => {
            "- Read the files that matter, one at a time; skip generated, vendored and data \
             files.\n"
        }
        Depth::Deep => {
            "- Be thorough: read every file in scope, and trace how they call each other.\n"
        }
    });
    if analyze.include_tests {
        prompt.push_str(
            "- The tests are in scope too: look at them, and say which behaviour they leave \
             untested.\n",
        );
    }
    if ctx.action == Action::Review {
        push_review_criteria(&mut prompt, &ctx.options.review);
    }
    prompt.push_str(
        "- Report problems in the files in scope only, each with its own file's `path`.\n\
         - This is a read-only task: do not create, change or delete any file.\n\
         - Report each problem as a finding (format below).\n",
    );
    let example = files.listed.first().map_or("src/lib.rs", String::as_str);
    let (fix, summary) = match ctx.action {
        Action::Review => (ctx.options.review.fix, "a short overall assessment, in Markdown."),
        _ => (false, "your whole answer, in Markdown, referring to code as `path:line`."),
    };
    push_findings_format(&mut prompt, example, fix, summary);
    Ok(prompt)
}

/// The fields of the example finding after its path.
const EXAMPLE_FINDING_FIELDS: &str = concat!(
    r#""startLine": 12, "endLine": 14, "severity": "warning", "category": "bug", "#,
    r#""title": "Short name of the problem", "#,
    r#""explanation": "What is wrong and why it matters", "#,
    r#""snippet": "the code of lines 12-14, copied exactly", "suggestion": "How to fix it""#,
);

/// The example report the prompt shows (for tests that check it against the parser).
#[cfg(test)]
pub(crate) fn findings_example(fix: bool) -> serde_json::Value {
    let mut prompt = String::new();
    push_findings_format(&mut prompt, "dir/a \"quoted\".rs", fix, "the answer.");
    let start = prompt.find("```json\n").unwrap_or(0) + "```json\n".len();
    let end = start + prompt[start..].find("\n```").unwrap_or(0);
    serde_json::from_str(&prompt[start..end]).unwrap_or_default()
}

/// How findings come back: the structured output the server turns into diagnostics (the CLI's
/// StructuredOutput tool, see `findings::schema`), or the same object in a fenced block.
fn push_findings_format(prompt: &mut String, example_path: &str, fix: bool, summary: &str) {
    let example_path = serde_json::Value::from(example_path);
    let (fix_field, fix_rule) = if fix {
        (
            r#", "fix": {"oldText": "the exact code to replace", "newText": "its replacement"}"#,
            "Give every finding you can fix a `fix`: `oldText` is the exact current code to \
             replace, copied character for character (indentation included), and `newText` is \
             the code that replaces it.",
        )
    } else {
        ("", "Leave out `fix`.")
    };
    let example = format!(
        r#"{{"findings": [{{"path": {example_path}, {EXAMPLE_FINDING_FIELDS}{fix_field}}}], "summary": "…"}}"#
    );
    let _ = write!(
        prompt,
        "\n## Findings format\n\nReturn your result as structured output (the StructuredOutput \
         tool), in exactly this shape:\n\n{}\n\n\
         - `path` is relative to the workspace root; lines are 1-based and inclusive.\n\
         - `severity` is one of error, warning, info, hint; `category` is one of bug, security, \
         performance, correctness, maintainability, style, test.\n\
         - `snippet` is how the editor finds the spot: copy the code the finding is about \
         character for character from the file (a line or a few, enough to be unique nearby).\n\
         - {fix_rule}\n\
         - Optional: `startColumn` and `endColumn` (1-based) narrow the spot; `related` lists \
         other places that matter, as `[{{\"path\": …, \"line\": …, \"message\": …}}]`.\n\
         - `summary`: {summary}\n\
         - With nothing to report, `findings` is an empty list. If you have no StructuredOutput \
         tool, end your answer with this object in one fenced `json` block instead.\n",
        fenced(&example, "json").trim_end()
    );
}

/// The text of the file, split into LSP lines.
struct Document<'a> {
    text: &'a str,
    /// The lines shown: a final line break does not start another line.
    lines: Vec<&'a str>,
}

/// A selection checked against the document, with its last line corrected.
struct CheckedSelection<'a> {
    /// 0-based, inclusive.
    start: usize,
    end: usize,
    text: &'a str,
}

impl CheckedSelection<'_> {
    fn lines_label(&self) -> String {
        if self.start == self.end {
            format!("line {}", self.start + 1)
        } else {
            format!("lines {}–{}", self.start + 1, self.end + 1)
        }
    }
}

impl<'a> Document<'a> {
    fn new(text: &'a str) -> Self {
        let mut lines: Vec<&str> = lsp_lines(text).collect();
        if lines.last() == Some(&"") {
            lines.pop();
        }
        Self { text, lines }
    }

    /// "CRLF" or "CR" when the file does not use plain `\n`, so edits keep its endings.
    fn line_ending(&self) -> Option<&'static str> {
        let (mut crlf, mut cr, mut lf) = (false, false, false);
        let bytes = self.text.as_bytes();
        for at in memchr::memchr2_iter(b'\n', b'\r', bytes) {
            match (bytes[at], bytes.get(at + 1)) {
                (b'\r', Some(b'\n')) => crlf = true,
                (b'\r', _) => cr = true,
                // The `\n` of a `\r\n` was counted with its `\r`.
                (_, _) if at > 0 && bytes[at - 1] == b'\r' => {}
                _ => lf = true,
            }
        }
        match (crlf, cr, lf) {
            (false, false, _) => None,
            (true, false, false) => Some("CRLF"),
            (false, true, false) => Some("CR"),
            _ => Some("mixed"),
        }
    }

    fn check<'s>(&self, selection: &'s Selection) -> Result<CheckedSelection<'s>, PromptError> {
        // LSP counts the empty line after a final line break (the cursor can be there).
        let lsp_line_count = lsp_lines(self.text).count();
        let last_line = lsp_line_count - 1;
        let start = selection.start_line as usize;
        if selection.start_line > selection.end_line || start > last_line {
            return Err(PromptError::InvalidSelection {
                start_line: selection.start_line,
                end_line: selection.end_line,
                line_count: lsp_line_count,
            });
        }
        // A selection of whole lines ends at column 0 of the next line, which is not selected.
        let ends_with_break = selection.text.ends_with(['\n', '\r']);
        let end = if ends_with_break && selection.end_line > selection.start_line {
            selection.end_line as usize - 1
        } else {
            selection.end_line as usize
        };
        Ok(CheckedSelection { start, end: end.min(last_line), text: &selection.text })
    }

    /// The lines to show of a long file: the focus first, then alternately the lines above and
    /// below it, within the window's line and byte budgets.
    fn window(&self, focus: RangeInclusive<usize>, limits: &TextLimits) -> std::ops::Range<usize> {
        let last = self.lines.len().saturating_sub(1);
        let focus_start = (*focus.start()).min(last);
        let focus_end = (*focus.end()).min(last);
        // What a line costs once numbered and, if too long, cut.
        let cost =
            |index: usize| shown_line(self.lines[index], Some(limits.max_line_chars)).len() + 8;
        let mut start = focus_start;
        let mut end = focus_start + 1;
        let mut bytes = cost(focus_start);
        let fits = |bytes: usize, lines: usize| {
            lines <= limits.window_lines && bytes <= limits.window_bytes
        };
        while end <= focus_end && fits(bytes + cost(end), end - start + 1) {
            bytes += cost(end);
            end += 1;
        }
        loop {
            let mut grew = false;
            if start > 0 && fits(bytes + cost(start - 1), end - start + 1) {
                start -= 1;
                bytes += cost(start);
                grew = true;
            }
            if end < self.lines.len() && fits(bytes + cost(end), end - start + 1) {
                bytes += cost(end);
                end += 1;
                grew = true;
            }
            if !grew {
                break;
            }
        }
        start..end
    }
}

/// How many of `lines` fit in `budget` bytes (at least one), and whether that is fewer than
/// all. Lines count as [`shown_line`] shows them.
fn prefix_within(lines: &[&str], budget: usize, max_line_chars: Option<usize>) -> (usize, bool) {
    let mut bytes = 0;
    for (index, line) in lines.iter().enumerate() {
        bytes += shown_line(line, max_line_chars).len() + 1;
        if bytes > budget && index > 0 {
            return (index, true);
        }
    }
    (lines.len(), false)
}

/// `line`, cut after `max_chars` characters with a note saying so.
fn shown_line(line: &str, max_chars: Option<usize>) -> Cow<'_, str> {
    match max_chars.and_then(|max| line.char_indices().nth(max)) {
        Some((cut, _)) => Cow::Owned(format!(
            "{} … [line cut: {} characters]",
            &line[..cut],
            line.chars().count()
        )),
        None => Cow::Borrowed(line),
    }
}

/// Width of the line number column: at least 4, so `  12 | code`.
fn number_width(line_count: usize) -> usize {
    line_count.to_string().len().max(4)
}

/// `  12 | code` lines, 1-based; lines longer than `max_line_chars` are cut.
fn numbered<'l>(
    lines: impl Iterator<Item = (usize, &'l str)>,
    width: usize,
    max_line_chars: Option<usize>,
) -> String {
    let mut out = String::new();
    for (index, line) in lines {
        let _ = write!(out, "{:>width$} |", index + 1);
        if !line.is_empty() {
            out.push(' ');
            out.push_str(&shown_line(line, max_line_chars));
        }
        out.push('\n');
    }
    out
}

/// `content` in a fenced block whose fence is longer than any backtick run inside it.
pub fn fenced(content: &str, tag: &str) -> String {
    let longest_run = content.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run.max(2) + 1);
    let mut block = format!("{fence}{tag}\n{content}");
    if !content.ends_with('\n') {
        block.push('\n');
    }
    let _ = writeln!(block, "{fence}");
    block
}

/// The file's path relative to the workspace root, both taken lexically (`.` and `..` resolved).
fn relative_to_workspace(root: &Path, file: &Path) -> Result<PathBuf, PromptError> {
    for path in [root, file] {
        if !path.is_absolute() {
            return Err(PromptError::RelativePath { path: path.to_path_buf() });
        }
    }
    let outside = || PromptError::OutsideWorkspace {
        file: file.to_path_buf(),
        workspace: root.to_path_buf(),
    };
    let (Some(root_normal), Some(file_normal)) = (normalize(root), normalize(file)) else {
        return Err(outside());
    };
    match file_normal.strip_prefix(&root_normal) {
        Ok(relative) if relative.as_os_str().is_empty() => Err(outside()),
        Ok(relative) => Ok(relative.to_path_buf()),
        Err(_) => Err(outside()),
    }
}

/// A path as shown in prompts: `/`-separated.
fn display_path(path: &Path) -> String {
    path.components()
        .map(|component| component.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// A `directory` option (generate's new files, a folder scope): relative, inside the workspace,
/// `/`-separated; `None` for the root.
pub fn workspace_directory(directory: &str) -> Result<Option<String>, PromptError> {
    let invalid =
        |reason| PromptError::InvalidDirectory { directory: directory.to_owned(), reason };
    let path = Path::new(directory.trim());
    if path.has_root() {
        return Err(invalid("must be relative to the workspace root"));
    }
    let normal = normalize(path).ok_or_else(|| invalid("must stay inside the workspace"))?;
    let shown = display_path(&normal);
    Ok((!shown.is_empty()).then_some(shown))
}

/// The folder a `scope` looks at, workspace-relative (`None`: the whole workspace). A folder
/// scope takes the `directory` option, else the target when it is a folder, else the target's
/// folder; any other scope has none.
pub fn scope_directory(
    options: &ActionOptions,
    workspace: &Path,
    target: &Path,
    target_is_dir: bool,
) -> Result<Option<String>, PromptError> {
    if options.review.scope != Some(ReviewScope::Folder) {
        return Ok(None);
    }
    if let Some(directory) = &options.generate.directory {
        return workspace_directory(directory);
    }
    let folder = if target_is_dir { target } else { target.parent().unwrap_or(target) };
    match relative_to_workspace(workspace, folder) {
        Ok(relative) => Ok(Some(display_path(&relative))),
        // The target's folder is the workspace root.
        Err(PromptError::OutsideWorkspace { .. }) if normalize(folder) == normalize(workspace) => {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// An instruction found in a comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstructionComment {
    /// 0-based.
    pub line: u32,
    pub instruction: String,
    pub kind: InstructionKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstructionKind {
    /// `claude: …`
    Claude,
    /// `TODO: …` or `TODO(name): …`
    Todo,
    /// `FIXME: …` or `FIXME(name): …`
    Fixme,
}

/// Comment openers of common languages, longest first where one starts another.
const COMMENT_MARKERS: [&str; 8] = ["<!--", "/*", "(*", "//", "--", "#", ";", "%"];
/// Closers cut from the end of an instruction.
const COMMENT_CLOSERS: [&str; 4] = ["*/", "-->", "*)", "-}"];
const KEYWORDS: [(&str, InstructionKind); 3] = [
    ("claude", InstructionKind::Claude),
    ("todo", InstructionKind::Todo),
    ("fixme", InstructionKind::Fixme),
];

/// Finds `claude: …`, `TODO: …` and `FIXME: …` (any case; TODO and FIXME may carry a
/// `(name)`) at the start of a comment on the 0-based `lines` of `text`. Comments start with
/// `//`, `#`, `--`, `/*`, `<!--`, `(*`, `;`, `%`, or a leading `*` (inside a block comment).
/// A marker inside a string literal on the same line does not start a comment, so `"TODO: x"` in
/// code is not found; a line inside a multi-line comment or string without a marker is not
/// found either.
pub fn instruction_comments(text: &str, lines: RangeInclusive<u32>) -> Vec<InstructionComment> {
    let (first, last) = (*lines.start(), *lines.end());
    if first > last {
        return Vec::new();
    }
    lsp_lines(text)
        .enumerate()
        .skip(first as usize)
        .take((last - first) as usize + 1)
        .filter_map(|(index, line)| {
            let (kind, instruction) = instruction_in_line(line)?;
            Some(InstructionComment { line: u32::try_from(index).ok()?, instruction, kind })
        })
        .collect()
}

fn instruction_in_line(line: &str) -> Option<(InstructionKind, String)> {
    let indent = line.len() - line.trim_start().len();
    let body = &line[indent..];
    if body.starts_with('*') && !body.starts_with("*/") {
        if let Some(found) = instruction_after_marker(&body[1..]) {
            return Some(found);
        }
    }
    let bytes = line.as_bytes();
    let mut quote = None;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if let Some(open) = quote {
            if byte == b'\\' {
                at += 2;
                continue;
            }
            if byte == open {
                quote = None;
            }
            at += 1;
            continue;
        }
        match byte {
            b'"' | b'`' => quote = Some(byte),
            // A lone apostrophe (a Rust lifetime, a Lisp quote, prose) opens no string.
            b'\'' if memchr::memchr(b'\'', &bytes[at + 1..]).is_some() => quote = Some(byte),
            _ => {
                // Compared as bytes: `at` may be inside a multi-byte character. Markers are
                // ASCII, so the end of a matched one is a character boundary.
                let rest = &bytes[at..];
                if let Some(marker) =
                    COMMENT_MARKERS.iter().find(|marker| rest.starts_with(marker.as_bytes()))
                {
                    if let Some(found) = instruction_after_marker(&line[at + marker.len()..]) {
                        return Some(found);
                    }
                    at += marker.len();
                    continue;
                }
            }
        }
        at += 1;
    }
    None
}

/// The instruction when the comment text right after a marker starts with a keyword and a colon.
fn instruction_after_marker(comment: &str) -> Option<(InstructionKind, String)> {
    // Repeated or decorated markers: `///`, `//!`, `/**`, `##`, `;;;`, `---`.
    let text = comment.trim_start_matches(['/', '*', '!', '#', ';', '%', '-']).trim_start();
    let (kind, rest) = KEYWORDS.iter().find_map(|(keyword, kind)| {
        let head = text.get(..keyword.len())?;
        head.eq_ignore_ascii_case(keyword).then(|| (*kind, &text[keyword.len()..]))
    })?;
    let rest = match (kind, rest.strip_prefix('(')) {
        (InstructionKind::Todo | InstructionKind::Fixme, Some(owner)) => {
            &owner[owner.find(')')? + 1..]
        }
        _ => rest,
    };
    let mut instruction = rest.strip_prefix(':')?.trim();
    while let Some(stripped) =
        COMMENT_CLOSERS.iter().find_map(|closer| instruction.strip_suffix(closer))
    {
        instruction = stripped.trim_end();
    }
    (!instruction.is_empty()).then(|| (kind, instruction.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    const ROOT: &str = "/home/u/proj";
    const FILE: &str = "/home/u/proj/src/lib.rs";
    const MIRROR: &str = "/home/u/.cache/claude-lsp/mirrors/proj-1a2b";

    const RUST: &str = "use std::collections::HashMap;\n\
        \n\
        /// Counts words.\n\
        pub fn count(text: &str) -> HashMap<String, usize> {\n\
        \x20   let mut counts = HashMap::new();\n\
        \x20   for word in text.split(' ') {\n\
        \x20       *counts.entry(word.to_string()).or_insert(0) += 1;\n\
        \x20   }\n\
        \x20   counts\n\
        }\n\
        \n\
        pub fn top(counts: &HashMap<String, usize>) -> Option<&String> {\n\
        \x20   counts.iter().max_by_key(|(_, n)| *n).map(|(w, _)| w)\n\
        }\n";

    fn context(action: Action) -> PromptContext<'static> {
        PromptContext {
            action,
            workspace_root: Path::new(ROOT),
            file_path: Path::new(FILE),
            language_id: "rust",
            text: RUST,
            selection: None,
            diagnostics: &[],
            instruction: None,
            edit_root: action.is_edit().then_some(Path::new(MIRROR)),
            options: ActionOptions::default(),
            changes_diff: None,
            scope_files: None,
        }
    }

    /// Lines 6–8 (1-based) of `RUST`, selected as whole lines (ending at column 0 of line 9).
    fn loop_selection() -> Option<Selection> {
        let text: String = RUST.lines().skip(5).take(3).map(|line| format!("{line}\n")).collect();
        Some(Selection { start_line: 5, end_line: 8, text })
    }

    fn build(ctx: &PromptContext) -> String {
        build_prompt(ctx).unwrap()
    }

    fn small_limits() -> TextLimits {
        TextLimits {
            max_file_lines: 20,
            max_file_bytes: 10_000,
            window_lines: 7,
            window_bytes: 10_000,
            max_line_chars: 30,
            inline_text: true,
        }
    }

    #[test]
    fn generate_at_the_selection_with_a_directory() {
        let mut ctx = context(Action::Generate);
        ctx.selection = Some(Selection { start_line: 10, end_line: 11, text: "\n".into() });
        ctx.instruction = Some("Add a function that returns the words sorted by count.");
        ctx.options.generate.directory = Some("src/stats/".into());
        insta::assert_snapshot!(build(&ctx));
    }

    #[test]
    fn generate_without_selection() {
        let mut ctx = context(Action::Generate);
        ctx.instruction = Some("Add unit tests for `count`.");
        insta::assert_snapshot!(build(&ctx));
    }

    #[test]
    fn refactor_selection_with_diagnostics() {
        let diagnostics = [
            PromptDiagnostic {
                line: 6,
                severity: "warning",
                source: Some("clippy".into()),
                message: "this allocates a String for every word\nconsider `entry_ref`".into(),
            },
            PromptDiagnostic {
                line: 7,
                severity: "hint",
                source: None,
                message: "unnecessary braces".into(),
            },
        ];
        let mut ctx = context(Action::Refactor);
        ctx.selection = loop_selection();
        ctx.diagnostics = &diagnostics;
        ctx.instruction = Some("Use split_whitespace and avoid the allocation.");
        insta::assert_snapshot!(build(&ctx));
    }

    #[test]
    fn refactor_whole_file_with_crlf_text() {
        let crlf = RUST.replace('\n', "\r\n");
        let mut ctx = context(Action::Refactor);
        ctx.text = &crlf;
        ctx.instruction = Some("Rename `count` to `word_counts`.");
        let prompt = build(&ctx);
        assert!(!prompt.contains('\r'), "the numbered text must not carry CRs");
        insta::assert_snapshot!(prompt);
    }

    #[test]
    fn analyze_file_quickly_without_instruction() {
        let mut ctx = context(Action::Analyze);
        ctx.options.analyze.depth = Depth::Quick;
        insta::assert_snapshot!(build(&ctx));
    }

    #[test]
    fn analyze_selection_deeply_with_tests_and_instruction() {
        let mut ctx = context(Action::Analyze);
        ctx.selection = loop_selection();
        ctx.instruction = Some("Why is this slow on large inputs?");
        ctx.options.analyze = AnalyzeOptions { depth: Depth::Deep, include_tests: true };
        insta::assert_snapshot!(build(&ctx));
    }

    #[test]
    fn review_selection_with_fixes_and_min_severity() {
        let mut ctx = context(Action::Review);
        ctx.selection = loop_selection();
        ctx.options.review =
            ReviewOptions { min_severity: Severity::Warning, scope: None, fix: true };
        insta::assert_snapshot!(build(&ctx));
    }

    #[test]
    fn review_file_with_an_instruction() {
        let diagnostics = [PromptDiagnostic {
            line: 12,
            severity: "error",
            source: Some("rustc".into()),
            message: "mismatched types".into(),
        }];
        let mut ctx = context(Action::Review);
        // The file scope ignores the selection.
        ctx.selection = loop_selection();
        ctx.diagnostics = &diagnostics;
        ctx.instruction = Some("Focus on panics.");
        ctx.options.review = ReviewOptions {
            min_severity: Severity::Hint,
            scope: Some(ReviewScope::File),
            fix: false,
        };
        insta::assert_snapshot!(build(&ctx));
    }

    #[test]
    fn review_changes_embeds_the_diff() {
        let diff = "diff --git a/README.md b/README.md\n\
            --- a/README.md\n\
            +++ b/README.md\n\
            @@ -1,3 +1,6 @@\n\
            \x20# proj\n\
            +\n\
            +````sh\n\
            +cargo run\n\
            +````\n\
            \n\
            untracked file: src/new.rs\n\
            +pub fn new() {}\n";
        let mut ctx = context(Action::Review);
        ctx.options.review.scope = Some(ReviewScope::Changes);
        ctx.changes_diff = Some(diff);
        let prompt = build(&ctx);
        assert!(
            prompt.contains("`````diff\n"),
            "the fence must be longer than the diff's ```` run"
        );
        insta::assert_snapshot!(prompt);
    }

    #[test]
    fn a_reference_prompt_names_the_file_selection_and_changes_instead_of_inlining_them() {
        let mut ctx = context(Action::Refactor);
        ctx.instruction = Some("use a BTreeMap");
        ctx.selection = loop_selection();
        let full = build(&ctx);
        let references = build_reference_prompt(&ctx).unwrap().unwrap();
        assert!(references.len() < full.len());
        assert!(full.contains("*counts.entry"), "{full}");
        assert!(!references.contains("*counts.entry"), "{references}");
        assert!(references.contains("read `src/lib.rs` with the Read tool"), "{references}");
        assert!(references.contains("lines 6–8 of `src/lib.rs`: read those lines"), "{references}");
        assert!(references.contains("use a BTreeMap"), "the instruction stays: {references}");

        let mut review = context(Action::Review);
        review.options.review.scope = Some(ReviewScope::Changes);
        let diff = "diff --git a/README.md b/README.md\n+x\ndiff --git a/src/new.rs b/src/new.rs\n\
                    new file (untracked)\n+pub fn new() {}\nnew file (untracked, binary or large): logo.png\n";
        review.changes_diff = Some(diff);
        let references = build_reference_prompt(&review).unwrap().unwrap();
        assert!(!references.contains("pub fn new"), "{references}");
        for name in ["README.md", "src/new.rs", "logo.png"] {
            assert!(references.contains(&format!("- `{name}`\n")), "{name}: {references}");
        }

        // Nothing inlined, nothing to save: no smaller prompt.
        let mut empty = context(Action::Analyze);
        empty.text = "";
        assert_eq!(build_reference_prompt(&empty).unwrap(), None);
    }

    #[test]
    fn truncated_file_shows_a_window_around_the_selection() {
        let text: String = (1..=60)
            .map(|n| {
                if n == 33 {
                    format!("let long = \"{}\";\n", "x".repeat(80))
                } else {
                    format!("line {n}\n")
                }
            })
            .collect();
        let mut ctx = context(Action::Refactor);
        ctx.text = &text;
        ctx.selection =
            Some(Selection { start_line: 31, end_line: 32, text: "line 32\nlet long".into() });
        ctx.instruction = Some("Tidy up.");
        insta::assert_snapshot!(build_prompt_with(&ctx, &small_limits()).unwrap());
    }

    #[test]
    fn markdown_with_backticks_gets_a_longer_fence() {
        let text = "# Notes\n\n```rust\nfn main() {}\n```\n\nInline `code` too.\n";
        let mut ctx = context(Action::Analyze);
        ctx.file_path = Path::new("/home/u/proj/docs/notes.md");
        ctx.language_id = "markdown";
        ctx.text = text;
        insta::assert_snapshot!(build(&ctx));
    }

    #[test]
    fn a_cursor_without_selected_text_is_named_as_such() {
        let mut ctx = context(Action::Generate);
        ctx.selection = Some(Selection { start_line: 10, end_line: 10, text: String::new() });
        ctx.instruction = Some("Add a `bottom` function.");
        let prompt = build(&ctx);
        assert!(
            prompt.contains("## Cursor\n\nThe cursor is on line 11 of `src/lib.rs`.\n"),
            "{prompt}"
        );
    }

    #[test]
    fn system_prompt_addenda() {
        insta::assert_snapshot!("addendum_edit", system_prompt_addendum(Action::Refactor));
        insta::assert_snapshot!("addendum_read_only", system_prompt_addendum(Action::Review));
        assert_eq!(
            system_prompt_addendum(Action::Generate),
            system_prompt_addendum(Action::Refactor)
        );
        assert_eq!(system_prompt_addendum(Action::Analyze), system_prompt_addendum(Action::Review));
    }

    #[test]
    fn edit_actions_need_an_instruction() {
        for action in [Action::Generate, Action::Refactor] {
            for instruction in [None, Some(""), Some(" \n\t")] {
                let mut ctx = context(action);
                ctx.instruction = instruction;
                assert_eq!(build_prompt(&ctx), Err(PromptError::MissingInstruction { action }));
            }
        }
        assert_eq!(
            PromptError::MissingInstruction { action: Action::Refactor }.to_string(),
            "refactor needs an instruction: say what to refactor"
        );
        for action in [Action::Analyze, Action::Review] {
            assert!(build_prompt(&context(action)).is_ok(), "{action}");
        }
    }

    #[test]
    fn the_instruction_arrives_verbatim() {
        let hostile = "; rm -rf ~ $(whoami) `id` \\n \"quoted\" 'single' <!-- --> ${HOME} %s {{x}}\n  indented";
        for action in [Action::Generate, Action::Analyze, Action::Refactor, Action::Review] {
            let mut ctx = context(action);
            ctx.instruction = Some(hostile);
            let prompt = build(&ctx);
            assert!(prompt.contains(&format!("```text\n{hostile}\n```\n")), "{prompt}");
        }
    }

    #[test]
    fn fences_outgrow_every_backtick_run_inside() {
        for run in 0..9 {
            let content = format!("a {} b", "`".repeat(run));
            let block = fenced(&content, "text");
            let fence_len = block.chars().take_while(|c| *c == '`').count();
            assert!(fence_len >= 3 && fence_len > run, "run {run}: {block}");
            assert!(block.ends_with(&format!("\n{}\n", "`".repeat(fence_len))));
        }
        let mut ctx = context(Action::Refactor);
        ctx.instruction = Some("Wrap it in ```` fences ``````");
        assert!(build(&ctx).contains("```````text\nWrap it in ```` fences ``````\n```````\n"));
    }

    #[test]
    fn an_edit_prompt_never_names_the_real_workspace() {
        let mut ctx = context(Action::Refactor);
        ctx.instruction = Some("Tidy up.");
        let prompt = build(&ctx);
        assert!(!prompt.contains(ROOT), "{prompt}");
        assert!(prompt.contains(&format!("current working directory, `{MIRROR}`")));
        let read_only = build(&context(Action::Analyze));
        assert!(read_only.contains(&format!("current working directory, `{ROOT}`")));
    }

    #[test]
    fn files_must_be_inside_the_workspace() {
        let cases = [
            (
                "/home/u/other/lib.rs",
                PromptError::OutsideWorkspace {
                    file: "/home/u/other/lib.rs".into(),
                    workspace: ROOT.into(),
                },
            ),
            (
                "/home/u/proj/../secret.rs",
                PromptError::OutsideWorkspace {
                    file: "/home/u/proj/../secret.rs".into(),
                    workspace: ROOT.into(),
                },
            ),
            (
                "/home/u/projector/x.rs",
                PromptError::OutsideWorkspace {
                    file: "/home/u/projector/x.rs".into(),
                    workspace: ROOT.into(),
                },
            ),
            (
                "/home/u/proj",
                PromptError::OutsideWorkspace { file: ROOT.into(), workspace: ROOT.into() },
            ),
            ("src/lib.rs", PromptError::RelativePath { path: "src/lib.rs".into() }),
        ];
        for (file, expected) in cases {
            let mut ctx = context(Action::Analyze);
            ctx.file_path = Path::new(file);
            assert_eq!(build_prompt(&ctx), Err(expected), "{file}");
        }
        let mut ctx = context(Action::Analyze);
        ctx.file_path = Path::new("/home/u/proj/./src/../src/lib.rs");
        assert!(build(&ctx).contains("`src/lib.rs` (language `rust`"));
    }

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
    fn selections_are_checked_against_the_document() {
        let line_count = RUST.lines().count() + 1;
        for (start_line, end_line) in [(5, 4), (15, 15), (100, 120)] {
            let mut ctx = context(Action::Analyze);
            ctx.selection = Some(Selection { start_line, end_line, text: "x".into() });
            assert_eq!(
                build_prompt(&ctx),
                Err(PromptError::InvalidSelection { start_line, end_line, line_count }),
                "{start_line}..{end_line}"
            );
        }
        // The empty line after the final line break exists for LSP, and an end past the file is cut.
        let mut ctx = context(Action::Analyze);
        ctx.selection = Some(Selection { start_line: 14, end_line: 14, text: String::new() });
        assert!(build(&ctx).contains("The cursor is on line 15"));
        ctx.selection = Some(Selection { start_line: 12, end_line: 40, text: "    counts".into() });
        assert!(build(&ctx).contains("The user selected lines 13–15 of `src/lib.rs`"));
    }

    #[test]
    fn whole_line_selections_do_not_count_the_next_line() {
        let mut ctx = context(Action::Analyze);
        ctx.selection = loop_selection();
        let prompt = build(&ctx);
        assert!(prompt.contains("The user selected lines 6–8 of `src/lib.rs`:"), "{prompt}");
        assert!(prompt.contains("- Analyze the selected code (lines 6–8 of `src/lib.rs`)."));
    }

    #[test]
    fn review_scopes_need_their_inputs() {
        let mut ctx = context(Action::Review);
        ctx.options.review.scope = Some(ReviewScope::Selection);
        assert_eq!(build_prompt(&ctx), Err(PromptError::MissingSelection));
        ctx.options.review.scope = Some(ReviewScope::Changes);
        assert_eq!(build_prompt(&ctx), Err(PromptError::MissingChanges));
        ctx.changes_diff = Some(" \n");
        assert_eq!(build_prompt(&ctx), Err(PromptError::NoChanges));
    }

    #[test]
    fn the_directory_for_new_files_stays_in_the_workspace() {
        let cases = [
            ("/etc", Err("must be relative to the workspace root")),
            ("../elsewhere", Err("must stay inside the workspace")),
            ("src/../../x", Err("must stay inside the workspace")),
            ("src/./gen/../new/", Ok(Some("src/new"))),
            (".", Ok(None)),
            ("", Ok(None)),
        ];
        for (directory, expected) in cases {
            let expected = expected.map(|shown| shown.map(str::to_owned)).map_err(|reason| {
                PromptError::InvalidDirectory { directory: directory.to_owned(), reason }
            });
            assert_eq!(workspace_directory(directory), expected, "{directory}");
        }
        let mut ctx = context(Action::Generate);
        ctx.instruction = Some("x");
        ctx.options.generate.directory = Some("../up".into());
        assert_eq!(
            build_prompt(&ctx).unwrap_err().to_string(),
            "the directory \"../up\" must stay inside the workspace"
        );
        ctx.options.generate.directory = Some(".".into());
        assert!(!build(&ctx).contains("Put new files in"));
    }

    #[test]
    fn long_files_are_truncated_with_the_default_limits() {
        let text: String = (1..=5_000).map(|n| format!("let v{n} = {n};\n")).collect();
        let mut ctx = context(Action::Analyze);
        ctx.text = &text;
        ctx.selection = Some(Selection {
            start_line: 2_999,
            end_line: 2_999,
            text: "let v3000 = 3000;".into(),
        });
        let prompt = build(&ctx);
        assert!(
            prompt.contains("it has 5000 lines and only lines 2800–3199 are shown"),
            "{}",
            &prompt[..2000]
        );
        assert!(prompt.contains("\n3000 | let v3000 = 3000;\n"));
        assert!(!prompt.contains("let v2799 ") && !prompt.contains("let v3200 "));
        assert!(prompt.len() < WINDOW_BYTES + 10_000);

        // Without a selection the window starts at the top.
        ctx.selection = None;
        assert!(build(&ctx).contains("only lines 1–400 are shown"));
    }

    #[test]
    fn a_file_of_few_huge_lines_is_cut_by_bytes() {
        let text: String = (0..200).map(|_| format!("{}\n", "m".repeat(5_000))).collect();
        let mut ctx = context(Action::Analyze);
        ctx.text = &text;
        let prompt = build(&ctx);
        assert!(
            prompt.contains("it has 200 lines and only lines 1–38 are shown"),
            "{}",
            &prompt[..1500]
        );
        assert!(prompt.contains(" … [line cut: 5000 characters]"));
        assert!(prompt.len() < WINDOW_BYTES + 5_000);
    }

    #[test]
    fn long_selections_and_diffs_are_cut() {
        let text: String = (1..=10_000).map(|n| format!("line {n}\n")).collect();
        let mut ctx = context(Action::Analyze);
        ctx.text = &text;
        ctx.selection = Some(Selection { start_line: 0, end_line: 10_000, text: text.clone() });
        let prompt = build(&ctx);
        let header = "The user selected lines 1–10000 of `src/lib.rs` (only its first 4110 of 10000 lines are shown):";
        assert!(
            prompt.contains(header),
            "{}",
            &prompt[prompt.find("## Selection").unwrap()..][..300]
        );
        assert!(prompt.contains(" 4110 | line 4110\n```\n") && !prompt.contains("line 4111\n"));

        let diff: String = (1..=50_000).map(|n| format!("+added {n}\n")).collect();
        let mut ctx = context(Action::Review);
        ctx.options.review.scope = Some(ReviewScope::Changes);
        ctx.changes_diff = Some(&diff);
        let prompt = build(&ctx);
        assert!(prompt.contains("(truncated to 10085 of its 50000 lines: "), "{}", &prompt[..1000]);
        assert!(prompt.len() < MAX_FILE_BYTES + 10_000);
    }

    #[test]
    fn a_huge_single_line_selection_or_diff_is_cut() {
        let minified = "m".repeat(1_000_000);
        let mut ctx = context(Action::Analyze);
        ctx.text = &minified;
        ctx.selection = Some(Selection { start_line: 0, end_line: 0, text: minified.clone() });
        let prompt = build(&ctx);
        assert!(prompt.len() < 20_000, "{}", prompt.len());
        assert_eq!(prompt.matches(" … [line cut: 1000000 characters]").count(), 2);

        let mut ctx = context(Action::Review);
        ctx.options.review.scope = Some(ReviewScope::Changes);
        let diff = format!("+{minified}\n+short\n");
        ctx.changes_diff = Some(&diff);
        let prompt = build(&ctx);
        assert!(
            prompt.contains("(truncated to 2 of its 2 lines, long lines cut: "),
            "{}",
            &prompt[..1000]
        );
        assert!(prompt.contains(" … [line cut: 1000001 characters]\n+short\n"));
    }

    #[test]
    fn the_findings_example_is_valid_json() {
        for fix in [false, true] {
            let example = findings_example(fix);
            let finding = &example["findings"][0];
            assert_eq!(finding["path"], "dir/a \"quoted\".rs");
            assert_eq!(
                (finding["startLine"].as_u64(), finding["endLine"].as_u64()),
                (Some(12), Some(14))
            );
            assert_eq!(finding.get("fix").is_some(), fix);
        }
    }

    #[test]
    fn empty_files_are_named_as_such() {
        let mut ctx = context(Action::Analyze);
        ctx.text = "";
        let prompt = build(&ctx);
        assert!(
            prompt.contains("`src/lib.rs` (language `rust`, 0 lines)\n\nThe file is empty.\n"),
            "{prompt}"
        );
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

    fn scope_of(directory: Option<&str>, count: usize, include_tests: bool) -> ScopeFiles {
        let files = (0..count).map(|n| format!("{}/f{n:03}.rs", directory.unwrap_or("src")));
        let tests = ["tests/it.rs".to_owned()];
        ScopeFiles::new(directory.map(str::to_owned), files.chain(tests), include_tests, true)
    }

    #[test]
    fn a_folder_review_lists_its_files_and_shows_none() {
        let scope = scope_of(Some("src"), 3, false);
        let mut ctx = context(Action::Review);
        ctx.options.review.scope = Some(ReviewScope::Folder);
        ctx.options.review.min_severity = Severity::Warning;
        ctx.scope_files = Some(&scope);
        let prompt = build(&ctx);
        assert!(
            prompt.contains("This review covers the folder `src/`: 3 files (tracked"),
            "{prompt}"
        );
        assert!(prompt.contains("1 test files are left out."), "{prompt}");
        assert!(prompt.contains("```text\nsrc/f000.rs\nsrc/f001.rs\nsrc/f002.rs\n```"), "{prompt}");
        assert!(prompt.contains("read each one you need with the Read tool"), "{prompt}");
        assert!(prompt.contains("severity `warning` or more severe"), "{prompt}");
        assert!(prompt.contains(r#""path": "src/f000.rs""#), "{prompt}");
        // The target file's text is not inlined.
        assert!(!prompt.contains("pub fn count"), "{prompt}");
        assert!(!prompt.contains("## File\n"), "{prompt}");
    }

    #[test]
    fn a_workspace_analysis_bounds_its_list_and_honours_depth_and_tests() {
        let scope = scope_of(None, crate::model::scope::MAX_LISTED_FILES + 5, true);
        let mut ctx = context(Action::Analyze);
        ctx.options.review.scope = Some(ReviewScope::Workspace);
        ctx.options.analyze = AnalyzeOptions { depth: Depth::Quick, include_tests: true };
        ctx.scope_files = Some(&scope);
        let prompt = build(&ctx);
        assert!(prompt.contains("This analysis covers the whole workspace: 306 files"), "{prompt}");
        assert!(prompt.contains("…and 6 more files, not listed here"), "{prompt}");
        assert!(prompt.contains("- Be quick: read only the files most likely to matter"));
        assert!(prompt.contains("- The tests are in scope too"));
        assert!(!prompt.contains("test files are left out"));
        // 300 names stay far below one file's worth of inlined text.
        assert!(prompt.len() < 12_000, "{}", prompt.len());
    }

    #[test]
    fn tree_scopes_need_their_files_and_a_reading_action() {
        let mut ctx = context(Action::Review);
        ctx.options.review.scope = Some(ReviewScope::Workspace);
        assert_eq!(build_prompt(&ctx), Err(PromptError::MissingScopeFiles));
        let empty = ScopeFiles::new(Some("docs".into()), Vec::new(), false, true);
        ctx.options.review.scope = Some(ReviewScope::Folder);
        ctx.scope_files = Some(&empty);
        assert_eq!(
            build_prompt(&ctx).unwrap_err().to_string(),
            "there are no files to look at in the folder `docs/`"
        );
        let mut generate = context(Action::Generate);
        generate.instruction = Some("x");
        generate.options.review.scope = Some(ReviewScope::Folder);
        assert_eq!(build_prompt(&generate), Err(PromptError::ScopeNotForAction("folder")));
    }

    #[test]
    fn a_folder_scope_defaults_to_the_targets_folder() {
        let root = Path::new(ROOT);
        let mut options = ActionOptions::default();
        let folder = |options: &ActionOptions, target: &str, is_dir| {
            scope_directory(options, root, Path::new(target), is_dir)
        };
        assert_eq!(folder(&options, FILE, false), Ok(None), "no folder scope");
        options.review.scope = Some(ReviewScope::Folder);
        assert_eq!(folder(&options, FILE, false), Ok(Some("src".into())));
        assert_eq!(folder(&options, "/home/u/proj/src/a", true), Ok(Some("src/a".into())));
        assert_eq!(folder(&options, "/home/u/proj/top.rs", false), Ok(None));
        assert_eq!(folder(&options, ROOT, true), Ok(None));
        options.generate.directory = Some("lib/".into());
        assert_eq!(folder(&options, FILE, false), Ok(Some("lib".into())));
        options.generate.directory = Some("../x".into());
        assert!(folder(&options, FILE, false).is_err());
    }

    #[test]
    fn actions_name_themselves() {
        let all = [Action::Generate, Action::Analyze, Action::Refactor, Action::Review];
        let names: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["generate", "analyze", "refactor", "review"]);
        assert_eq!(
            serde_json::to_value(all).unwrap(),
            json!(["generate", "analyze", "refactor", "review"])
        );
        assert_eq!(serde_json::from_value::<Action>(json!("review")).unwrap(), Action::Review);
        let edits: Vec<bool> = all.iter().map(|action| action.is_edit()).collect();
        assert_eq!(edits, [true, false, true, false]);
        assert!(Severity::Error < Severity::Hint);
    }

    #[test]
    fn lsp_lines_follow_the_lsp_line_breaks() {
        let lines: Vec<&str> = lsp_lines("a\nb\r\nc\rd\n").collect();
        assert_eq!(lines, ["a", "b", "c", "d", ""]);
        assert_eq!(lsp_lines("").collect::<Vec<_>>(), [""]);
        assert_eq!(lsp_lines("\r\n\r\n").collect::<Vec<_>>(), ["", "", ""]);
        assert_eq!(Document::new("x\r\ny\r\n").line_ending(), Some("CRLF"));
        assert_eq!(Document::new("x\ny\r\n").line_ending(), Some("mixed"));
        assert_eq!(Document::new("x\ny\n").line_ending(), None);
        assert_eq!(Document::new("x\ry\r").line_ending(), Some("CR"));
        assert_eq!(Document::new("x\r\ny\r").line_ending(), Some("mixed"));
        assert_eq!(Document::new("no break").line_ending(), None);
    }

    fn found(text: &str) -> Vec<(u32, InstructionKind, String)> {
        instruction_comments(text, 0..=u32::MAX)
            .into_iter()
            .map(|comment| (comment.line, comment.kind, comment.instruction))
            .collect()
    }

    #[test]
    fn instruction_comments_across_languages() {
        use InstructionKind::{Claude, Fixme, Todo};
        let cases: &[(&str, Option<(InstructionKind, &str)>)] = &[
            ("// claude: make this async", Some((Claude, "make this async"))),
            ("    // Claude: extract a helper", Some((Claude, "extract a helper"))),
            ("/// TODO: document the panics", Some((Todo, "document the panics"))),
            ("//! FIXME: crate docs are stale", Some((Fixme, "crate docs are stale"))),
            ("# TODO(alice): handle None", Some((Todo, "handle None"))),
            ("// FIXME(bob): race on close", Some((Fixme, "race on close"))),
            ("// TODO(unclosed: x", None),
            ("// claude(x): owners are for TODO and FIXME", None),
            ("## fixme: lowercase works too", Some((Fixme, "lowercase works too"))),
            ("-- TODO: add an index", Some((Todo, "add an index"))),
            ("/* TODO: free the buffer */", Some((Todo, "free the buffer"))),
            ("/** claude: add docs */", Some((Claude, "add docs"))),
            (" * TODO: inside a block comment", Some((Todo, "inside a block comment"))),
            ("<!-- claude: add alt text -->", Some((Claude, "add alt text"))),
            ("; TODO: save the registers", Some((Todo, "save the registers"))),
            (";;; FIXME: elisp", Some((Fixme, "elisp"))),
            ("% TODO: cite the paper", Some((Todo, "cite the paper"))),
            ("(* TODO: tail recursion *)", Some((Todo, "tail recursion"))),
            ("let x = 1; // TODO: overflow?", Some((Todo, "overflow?"))),
            ("x = f(\"a#b\")  # FIXME: quote handling", Some((Fixme, "quote handling"))),
            ("url = \"http://example.com\"  # TODO: config", Some((Todo, "config"))),
            ("fn f<'a>(x: &'a str) {} // TODO: lifetimes", Some((Todo, "lifetimes"))),
            ("let c = '\"'; // TODO: char", Some((Todo, "char"))),
            ("#[derive(Debug)] // claude: derive Clone", Some((Claude, "derive Clone"))),
            ("*ptr = 0; // TODO: null check", Some((Todo, "null check"))),
            ("// TODO:no space", Some((Todo, "no space"))),
            (
                "// claude: use `?` here; don't \"unwrap\"",
                Some((Claude, "use `?` here; don't \"unwrap\"")),
            ),
            // Not instructions:
            ("let s = \"TODO: not a comment\";", None),
            ("let s = \"// TODO: inside a string\";", None),
            ("let s = 'x // TODO: single quotes';", None),
            ("let s = `${a} // TODO: template`;", None),
            ("let s = \"escaped \\\" // TODO: still a string\";", None),
            ("s = \"unterminated // TODO: x", None),
            ("todo!(\"TODO: later\")", None),
            ("// this is not a TODO: mid-sentence", None),
            ("// TODO fix without a colon", None),
            ("// TODOS: plural", None),
            ("// TODO:", None),
            ("// TODO: */", None),
            ("#include <todo.h>", None),
            ("TODO: no comment marker", None),
            ("see http://host/TODO: path", None),
            ("*/", None),
            ("", None),
        ];
        for (line, expected) in cases {
            let expected: Vec<_> = expected
                .iter()
                .map(|(kind, instruction)| (0, *kind, (*instruction).to_owned()))
                .collect();
            assert_eq!(found(line), expected, "{line:?}");
        }
    }

    #[test]
    fn instruction_comments_respect_the_line_range() {
        let text = "// claude: one\r\nfn a() {}\r\n# TODO: three\n// FIXME: four\r// claude: five";
        assert_eq!(
            instruction_comments(text, 0..=4),
            [
                InstructionComment {
                    line: 0,
                    instruction: "one".into(),
                    kind: InstructionKind::Claude
                },
                InstructionComment {
                    line: 2,
                    instruction: "three".into(),
                    kind: InstructionKind::Todo
                },
                InstructionComment {
                    line: 3,
                    instruction: "four".into(),
                    kind: InstructionKind::Fixme
                },
                InstructionComment {
                    line: 4,
                    instruction: "five".into(),
                    kind: InstructionKind::Claude
                },
            ]
        );
        let lines: Vec<u32> = instruction_comments(text, 1..=3).iter().map(|c| c.line).collect();
        assert_eq!(lines, [2, 3]);
        let reversed = RangeInclusive::new(3, 1);
        assert_eq!(instruction_comments(text, reversed), []);
        assert_eq!(instruction_comments(text, 10..=20), []);
        assert_eq!(instruction_comments("", 0..=0), []);
        assert_eq!(serde_json::to_value(InstructionKind::Fixme).unwrap(), json!("fixme"));
    }

    #[test]
    fn instruction_comments_handle_non_ascii_text() {
        assert_eq!(
            found("// claude: übersetze «das» — bitte"),
            [(0, InstructionKind::Claude, "übersetze «das» — bitte".to_owned())]
        );
        assert_eq!(found("let s = \"é\"; # TODO: ñ"), [(0, InstructionKind::Todo, "ñ".to_owned())]);
        assert_eq!(found("日本語 // TODO: 直す"), [(0, InstructionKind::Todo, "直す".to_owned())]);
    }
}
