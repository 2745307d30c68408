//! The command line of `claude-lsp run`: clap's value types and their model counterparts.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::model::prompt::{Action, Depth, ReviewScope, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActionArg {
    Generate,
    Analyze,
    Refactor,
    Review,
}

impl From<ActionArg> for Action {
    fn from(action: ActionArg) -> Self {
        match action {
            ActionArg::Generate => Action::Generate,
            ActionArg::Analyze => Action::Analyze,
            ActionArg::Refactor => Action::Refactor,
            ActionArg::Review => Action::Review,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    Selection,
    File,
    /// The workspace's uncommitted changes (`git diff HEAD` plus untracked files).
    Changes,
    /// Every file of the target folder (or the target file's folder), listed for the agent.
    Folder,
    /// Every file of the workspace, listed for the agent.
    Workspace,
}

impl From<ScopeArg> for ReviewScope {
    fn from(scope: ScopeArg) -> Self {
        match scope {
            ScopeArg::Selection => ReviewScope::Selection,
            ScopeArg::File => ReviewScope::File,
            ScopeArg::Changes => ReviewScope::Changes,
            ScopeArg::Folder => ReviewScope::Folder,
            ScopeArg::Workspace => ReviewScope::Workspace,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DepthArg {
    Quick,
    Normal,
    Deep,
}

impl From<DepthArg> for Depth {
    fn from(depth: DepthArg) -> Self {
        match depth {
            DepthArg::Quick => Depth::Quick,
            DepthArg::Normal => Depth::Normal,
            DepthArg::Deep => Depth::Deep,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeverityArg {
    Error,
    Warning,
    Info,
    Hint,
}

impl From<SeverityArg> for Severity {
    fn from(severity: SeverityArg) -> Self {
        match severity {
            SeverityArg::Error => Severity::Error,
            SeverityArg::Warning => Severity::Warning,
            SeverityArg::Info => Severity::Info,
            SeverityArg::Hint => Severity::Hint,
        }
    }
}

/// How the result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// The answer and `path:line:col:` findings, or a unified diff.
    Text,
    /// The answer and findings as Markdown, or the diff in a fenced block.
    Markdown,
    /// One JSON object.
    Json,
}

/// `claude-lsp run <action> <path>[:line[:col][-line[:col]]] …`
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// What to do.
    #[arg(value_enum)]
    pub action: ActionArg,
    /// The file, optionally with a 1-based selection: `src/lib.rs:12`, `src/lib.rs:12-20`,
    /// `src/lib.rs:12:5-14:1` (columns count characters; the end is exclusive). A review of
    /// `--scope changes` also takes a directory.
    pub target: String,
    /// The instruction (required for generate and refactor).
    #[arg(short = 'm', long = "message", value_name = "INSTRUCTION")]
    pub instruction: Option<String>,
    /// What a review looks at (default: the selection when given, else the file); analyze
    /// takes `folder` and `workspace` too.
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
    /// How thorough an analysis or review is.
    #[arg(long, value_enum)]
    pub depth: Option<DepthArg>,
    /// Also look at the tests (analyze; in a folder or workspace scope, keep test files in it).
    #[arg(long)]
    pub include_tests: bool,
    /// Report findings at least this severe (review; default: info).
    #[arg(long, value_enum)]
    pub min_severity: Option<SeverityArg>,
    /// Ask for a fix with each finding (review).
    #[arg(long)]
    pub fix: bool,
    /// The model of this run (default: the `model` setting).
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Write the edits to disk (generate, refactor).
    #[arg(long)]
    pub apply: bool,
    /// How to print the result (default: text).
    #[arg(long, value_enum, conflicts_with = "json")]
    pub format: Option<FormatArg>,
    /// Print the result as one JSON object (the same as `--format json`).
    #[arg(long)]
    pub json: bool,
    /// The workspace root (default: the git repository of the target, else the current
    /// directory when it holds the target, else the target's directory).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Settings as the editor would send them: a JSON object, or `@FILE` holding one.
    #[arg(long, value_name = "JSON|@FILE")]
    pub settings: Option<String>,
    /// The `claude` executable (default: the `cliPath` setting, `CLAUDE_LSP_CLI`, then search).
    #[arg(long, value_name = "PATH")]
    pub cli: Option<PathBuf>,
    /// Run even when the result cache holds an answer for an unchanged analyze or review.
    #[arg(long)]
    pub no_cache: bool,
}

impl RunArgs {
    pub(super) fn output_format(&self) -> FormatArg {
        if self.json { FormatArg::Json } else { self.format.unwrap_or(FormatArg::Text) }
    }
}
