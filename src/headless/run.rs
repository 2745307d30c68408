//! `claude-lsp run`: one action without an editor, through the same pipeline the language server
//! uses (prompt, staging mirror, sandbox, retries). Progress goes to stderr (a spinner on a
//! terminal, plain lines otherwise); the result goes to stdout as a unified diff (generate,
//! refactor), the answer and its findings (analyze, review), or JSON (`--json`). `--apply`
//! writes the edits to disk, refusing (and writing nothing) when a file changed in a way that
//! conflicts with them.
//!
//! Exit codes ([`exit`]): 0 success, 1 the run failed, 2 bad arguments or target, 3 Claude Code is
//! missing, unsupported or not logged in, 4 the edits were refused (a conflict, or a change
//! outside the workspace), 5 the daily budget is spent, 130 interrupted.
//!
//! The run goes through the engine as an editor's does (engine/run.rs): the same budget,
//! containment check, session index, usage ledger and audit log, in the same cache dir.

use parking_lot::Mutex;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::base::error::{ErrorKind, ServerError};
use crate::claude::discover::{DiscoverOptions, discover};
use crate::engine::background::Background;
use crate::engine::permissions::PermissionServices;
use crate::engine::pipeline::{ActionOutcome, ActionRequest, Activity, Runner};
use crate::engine::result_cache::{CacheLimits, ResultCache};
use crate::engine::run::{Books, RunAnswer, RunFailure, RunRequest};
use crate::engine::staging::StagingManager;
use crate::model::documents::{Document, PositionEncoding};
use crate::model::edits::{self, EditCapabilities, FileChange};
use crate::model::findings::{self, FileText, Finding, PlaceOptions};
use crate::model::prompt::{
    Action, ActionOptions, AnalyzeOptions, Depth, ReviewOptions, ReviewScope, Selection, Severity,
};
use crate::model::sessions::SessionStore;
use crate::model::settings::{Settings, parse_settings};
use crate::protocol::lsp::{Position, Range, WorkspaceEdit};
use crate::protocol::lsp_ext::{self, RunMetadata};
use crate::report;

/// The process exit codes of `claude-lsp run` (also documented in the README).
pub mod exit {
    pub const SUCCESS: u8 = 0;
    /// The run itself failed (API error, timeout, the model's output unusable, …).
    pub const RUN_FAILED: u8 = 1;
    /// Bad arguments, or a target that cannot be read or lies outside the workspace.
    pub const USAGE: u8 = 2;
    /// Claude Code is missing, too old, or not logged in.
    pub const SETUP: u8 = 3;
    /// The edits were refused: a file changed meanwhile in a conflicting way, or a change leads
    /// out of the workspace (through a symlink, say). Nothing was written.
    pub const NOT_APPLIED: u8 = 4;
    /// A budget is spent: today's `dailyBudgetUsd` (before the run, or during it) or `maxBudgetUsd`.
    pub const BUDGET: u8 = 5;
    /// Stopped with Ctrl-C; nothing was applied.
    pub const INTERRUPTED: u8 = 130;
}

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
    fn output_format(&self) -> FormatArg {
        if self.json { FormatArg::Json } else { self.format.unwrap_or(FormatArg::Text) }
    }
}

/// Why `run` stopped, with its exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
    hint: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self { code: exit::USAGE, message: message.into(), hint: String::new() }
    }

    fn from_server(err: ServerError) -> Self {
        let code = match err.kind {
            kind if kind == ErrorKind::CANCELLED => exit::INTERRUPTED,
            kind if kind == ErrorKind::CLI_NOT_FOUND
                || kind == ErrorKind::CLI_TOO_OLD
                || kind == ErrorKind::AUTH_FAILED =>
            {
                exit::SETUP
            }
            kind if kind == ErrorKind::INVALID_PARAMS || kind == ErrorKind::FILE_ACCESS => {
                exit::USAGE
            }
            kind if kind == ErrorKind::EDIT_CONFLICT || kind == ErrorKind::SANDBOX_VIOLATION => {
                exit::NOT_APPLIED
            }
            kind if kind == ErrorKind::BUDGET_EXCEEDED => exit::BUDGET,
            _ => exit::RUN_FAILED,
        };
        Self { code, message: err.message, hint: err.hint }
    }
}

impl From<ServerError> for Failure {
    fn from(err: ServerError) -> Self {
        Self::from_server(err)
    }
}

impl RunFailure for Failure {
    fn message(&self) -> &str {
        &self.message
    }

    fn is_cancelled(&self) -> bool {
        self.code == exit::INTERRUPTED
    }
}

/// Run the `run` subcommand; returns the process exit code.
pub async fn main(args: RunArgs) -> u8 {
    let view = ProgressView::start();
    let cancel = CancellationToken::new();
    let on_interrupt = cancel.clone();
    let interrupt = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt.cancel();
        }
    });
    let mut late = None;
    let outcome = execute(&args, &view, cancel.clone(), &mut late).await;
    view.finish();
    let code = match outcome {
        Ok(output) => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(output.as_bytes()).and_then(|()| stdout.flush()) {
                Ok(()) => exit::SUCCESS,
                // A closed pipe (`| head`) is the reader's choice, not a failure of the run.
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => exit::SUCCESS,
                Err(err) => {
                    eprintln!("claude-lsp: cannot write the result: {err}");
                    exit::RUN_FAILED
                }
            }
        }
        Err(failure) => {
            let message = crate::claude::errors::redact(&failure.message).into_owned();
            eprintln!("claude-lsp: error: {message}");
            if !failure.hint.is_empty() {
                eprintln!("claude-lsp: hint: {}", failure.hint);
            }
            failure.code
        }
    };
    if let Some(late) = late {
        late.wait(&cancel).await;
    }
    interrupt.abort();
    code
}

/// A run that answered before its CLI finished the turn: the answer is out, the books are
/// written once the CLI is done (Ctrl-C stops it).
struct LateBooks {
    background: Background,
    books: tokio::sync::oneshot::Receiver<Books>,
}

impl LateBooks {
    async fn wait(self, cancel: &CancellationToken) {
        let Self { background, books } = self;
        tokio::select! {
            books = books => {
                let books = books.unwrap_or_default();
                for warning in books.warnings {
                    eprintln!("claude-lsp: warning: {warning}");
                }
                if let Some(err) = books.failed_after_answer {
                    let message = err.message;
                    eprintln!("claude-lsp: the CLI failed after the answer was written: {message}");
                }
            }
            () = cancel.cancelled() => {}
        }
        background.shutdown().await;
    }
}

async fn execute(
    args: &RunArgs,
    view: &ProgressView,
    cancel: CancellationToken,
    late: &mut Option<LateBooks>,
) -> Result<String, Failure> {
    let action = Action::from(args.action);
    let mut settings = load_settings(args.settings.as_deref())?;
    if let Some(cli) = &args.cli {
        // Relative to where the user typed it.
        settings.cli_path = Some(std::path::absolute(cli).unwrap_or_else(|_| cli.clone()));
    }
    let cwd = std::env::current_dir()
        .map_err(|err| Failure::usage(format!("cannot read the current directory: {err}")))?;
    let spec = parse_target(&args.target, &cwd)?;
    let options = run_options(args, action)?;
    let scope = options.review.scope;
    let tree = scope.is_some_and(ReviewScope::is_tree);
    let workspace = match &args.workspace {
        Some(dir) => dir.canonicalize().map_err(|err| {
            Failure::usage(format!("the workspace {} cannot be used: {err}", dir.display()))
        })?,
        None => find_workspace(&spec.path, &cwd).await,
    };
    if !spec.path.starts_with(&workspace) {
        return Err(Failure::usage(format!(
            "{} is not inside the workspace {}",
            spec.path.display(),
            workspace.display()
        )));
    }
    let changes_diff = match scope {
        Some(ReviewScope::Changes) => {
            view.status("Collecting the uncommitted changes");
            let diff =
                crate::base::git::uncommitted_changes(&workspace).await.map_err(|err| Failure {
                    code: exit::RUN_FAILED,
                    message: err,
                    hint: "a review of the changes needs a git repository with changes".to_owned(),
                })?;
            Some(diff)
        }
        _ => None,
    };
    let file = match (&changes_diff, spec.path.is_dir()) {
        (_, false) => spec.path.clone(),
        // A folder or workspace scope lists the folder's files: the folder itself is the target.
        (None, true) if tree => spec.path.clone(),
        (Some(diff), true) => first_changed_file(diff, &workspace)
            .ok_or_else(|| Failure::usage("the uncommitted changes name no text file to review"))?,
        (None, true) => {
            return Err(Failure::usage(format!(
                "{} is a directory: name a file (only --scope changes, folder or workspace take a directory)",
                spec.path.display()
            )));
        }
    };
    let text = match std::fs::read(&file) {
        // A folder scope's prompt shows no file.
        _ if tree => String::new(),
        Ok(bytes) => String::from_utf8(bytes)
            .map_err(|_| Failure::usage(format!("{} is not UTF-8 text", file.display())))?,
        // A review of changes may anchor on a file the changes delete.
        Err(_) if changes_diff.is_some() => String::new(),
        Err(err) => return Err(Failure::usage(format!("cannot read {}: {err}", file.display()))),
    };
    let selection = spec.range.map(|range| range.selection(&text)).transpose()?;
    // The run counts from here in the session index, as an editor's does from its request.
    let started_at = crate::base::time::rfc3339(crate::base::time::now_secs());
    let request = ActionRequest {
        action,
        workspace: workspace.clone(),
        file: file.clone(),
        language_id: crate::model::documents::language_from_path(&file),
        text: text.clone(),
        selection,
        instruction: args.instruction.clone(),
        diagnostics: Vec::new(),
        options,
        changes_diff,
        overlays: Vec::new(),
        resume: None,
        fork: false,
    };
    if action.is_edit() && args.instruction.as_deref().is_none_or(|i| i.trim().is_empty()) {
        return Err(Failure::usage(format!("{action} needs an instruction: -m \"…\"")));
    }

    view.status("Looking for Claude Code");
    let discovery = DiscoverOptions::from_env(settings.cli_path.clone(), Some(workspace.clone()));
    let cli = discover(&discovery).await.map_err(|err| Failure::from_server(err.server_error()))?;
    let cache_dir = crate::base::paths::default_cache_dir();
    let runner = Runner {
        cli,
        settings,
        staging: Arc::new(StagingManager::new(cache_dir.clone())),
        permissions: PermissionServices {
            audit: Some(Arc::new(crate::model::audit::AuditLog::new(&cache_dir))),
            ..PermissionServices::default()
        },
        pool: None,
        resilience: crate::engine::retry::Resilience::default(),
        conversations: None,
        sessions: Arc::new(SessionStore::new(&cache_dir)),
        results: Some(ResultCache::new(&cache_dir, CacheLimits::default())),
        background: Background::default(),
    };
    let uri = edits::path_to_uri(&file)
        .map_err(|err| Failure::usage(format!("{}: {err}", file.display())))?;
    let request =
        RunRequest { action: request, uri, range: None, started_at, no_cache: args.no_cache };
    let mut on_activity = |activity: Activity| match activity {
        Activity::Status(message) => view.status(&message),
        Activity::Writing(message) => view.writing(&message),
        _ => {}
    };
    let finish = |outcome| render(args, &request.action, outcome, view);
    let end = runner.execute(&request, cancel, &mut on_activity, finish).await;
    for warning in &end.books.warnings {
        eprintln!("claude-lsp: warning: {warning}");
    }
    *late = end.late.map(|books| LateBooks { background: runner.background.clone(), books });
    end.result.map(|rendered| rendered.output)
}

/// The run's options from the flags, each refused where its action does not use it.
fn run_options(args: &RunArgs, action: Action) -> Result<ActionOptions, Failure> {
    let scope = args.scope.map(ReviewScope::from);
    let reads = matches!(action, Action::Analyze | Action::Review);
    match scope {
        Some(scope) if scope.is_tree() && !reads => {
            return Err(Failure::usage("--scope folder and workspace apply to analyze and review"));
        }
        Some(scope) if !scope.is_tree() && action != Action::Review => {
            return Err(Failure::usage("--scope selection, file and changes apply to review only"));
        }
        _ => {}
    }
    let only = |given: bool, flag: &str, wanted: bool, actions: &str| {
        if given && !wanted {
            Err(Failure::usage(format!("{flag} applies to {actions}, not {action}")))
        } else {
            Ok(())
        }
    };
    only(args.apply, "--apply", action.is_edit(), "generate and refactor")?;
    only(args.depth.is_some(), "--depth", reads, "analyze and review")?;
    only(args.include_tests, "--include-tests", reads, "analyze and review")?;
    only(args.min_severity.is_some(), "--min-severity", action == Action::Review, "review")?;
    only(args.fix, "--fix", action == Action::Review, "review")?;
    only(args.no_cache, "--no-cache", reads, "analyze and review")?;
    if args.model.as_deref().is_some_and(|model| model.trim().is_empty()) {
        return Err(Failure::usage("--model names no model"));
    }
    Ok(ActionOptions {
        analyze: AnalyzeOptions {
            depth: args.depth.map(Depth::from).unwrap_or_default(),
            include_tests: args.include_tests,
        },
        review: ReviewOptions {
            min_severity: args.min_severity.map_or(Severity::Info, Severity::from),
            scope,
            fix: args.fix,
        },
        generate: Default::default(),
        model: args.model.clone(),
    })
}

/// Settings from `--settings`: inline JSON or `@FILE`. Warnings go to stderr, as an editor would
/// show them.
fn load_settings(arg: Option<&str>) -> Result<Settings, Failure> {
    let Some(arg) = arg else { return Ok(Settings::default()) };
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|err| {
            Failure::usage(format!("cannot read the settings file {path}: {err}"))
        })?,
        None => arg.to_owned(),
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|err| Failure::usage(format!("--settings is not valid JSON: {err}")))?;
    let (settings, warnings) = parse_settings(Some(&value));
    for warning in warnings {
        eprintln!("claude-lsp: settings: {warning}");
    }
    Ok(settings)
}

/// A 1-based position or range in a target argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TargetRange {
    start_line: u32,
    start_column: Option<u32>,
    end: Option<(u32, Option<u32>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TargetSpec {
    path: PathBuf,
    range: Option<TargetRange>,
}

/// `path[:line[:col][-line[:col]]]`, with `path` relative to `cwd`. A path that exists as written
/// (even with colons in its name) is taken whole.
fn parse_target(text: &str, cwd: &Path) -> Result<TargetSpec, Failure> {
    let resolve = |path: &str| -> Result<PathBuf, Failure> {
        let path = cwd.join(path);
        path.canonicalize().map_err(|err| Failure::usage(format!("{}: {err}", path.display())))
    };
    if text.is_empty() {
        return Err(Failure::usage("the target is empty: name a file"));
    }
    if cwd.join(text).exists() {
        return Ok(TargetSpec { path: resolve(text)?, range: None });
    }
    let Some((path, range)) = split_range(text) else {
        return Ok(TargetSpec { path: resolve(text)?, range: None });
    };
    let range = parse_range(range).map_err(|why| {
        Failure::usage(format!("{text:?}: {why} (expected path:line[:col][-line[:col]])"))
    })?;
    Ok(TargetSpec { path: resolve(path)?, range: Some(range) })
}

/// The path and the range text after the first `:` that starts a range.
fn split_range(text: &str) -> Option<(&str, &str)> {
    let index = text
        .char_indices()
        .filter(|(_, c)| *c == ':')
        .map(|(i, _)| i)
        .find(|i| text[i + 1..].starts_with(|c: char| c.is_ascii_digit()))?;
    Some((&text[..index], &text[index + 1..]))
}

fn parse_range(text: &str) -> Result<TargetRange, String> {
    let point = |text: &str| -> Result<(u32, Option<u32>), String> {
        let mut parts = text.split(':');
        let number = |part: Option<&str>, what: &str| -> Result<Option<u32>, String> {
            match part {
                None => Ok(None),
                Some(part) => match part.parse::<u32>() {
                    Ok(0) => Err(format!("{what} numbers start at 1")),
                    Ok(n) => Ok(Some(n)),
                    Err(_) => Err(format!("{part:?} is not a {what} number")),
                },
            }
        };
        let line =
            number(parts.next(), "line")?.ok_or_else(|| "a line number is missing".to_owned())?;
        let column = number(parts.next(), "column")?;
        if parts.next().is_some() {
            return Err("too many `:` parts".to_owned());
        }
        Ok((line, column))
    };
    let (start, end) = match text.split_once('-') {
        Some((start, end)) => (point(start)?, Some(point(end)?)),
        None => (point(text)?, None),
    };
    if let Some((end_line, _)) = end
        && end_line < start.0
    {
        return Err("the range ends before it starts".to_owned());
    }
    Ok(TargetRange { start_line: start.0, start_column: start.1, end })
}

impl TargetRange {
    /// The selected text: whole lines unless columns are given; `line` or `line:col` alone
    /// selects that line.
    fn selection(self, text: &str) -> Result<Selection, Failure> {
        // A document needs a URI; this one is never shown.
        let uri = edits::path_to_uri(Path::new("/selection"))
            .map_err(|err| Failure::usage(format!("cannot index the file: {err}")))?;
        let doc = Document::new(uri, String::new(), 0, text);
        let line_count = text.lines().count().max(1) as u32;
        let line_length = |line: u32| -> Result<u32, Failure> {
            if line > line_count {
                return Err(Failure::usage(format!(
                    "line {line} is past the end of the file ({line_count} lines)"
                )));
            }
            let chars = doc.line_text(line as usize - 1).map_or(0, |l| l.chars().count());
            Ok(chars as u32)
        };
        let column = |line: u32, column: u32| -> Result<u32, Failure> {
            let length = line_length(line)?;
            if column > length + 1 {
                return Err(Failure::usage(format!(
                    "line {line} has {length} characters; column {column} is past its end"
                )));
            }
            Ok(column - 1)
        };
        let (start, end) = match self.end {
            None => {
                let length = line_length(self.start_line)?;
                ((self.start_line, 0), (self.start_line, length))
            }
            Some((end_line, end_column)) => {
                let start_column = match self.start_column {
                    Some(c) => column(self.start_line, c)?,
                    None => 0,
                };
                let end_column = match end_column {
                    Some(c) => column(end_line, c)?,
                    None => line_length(end_line)?,
                };
                ((self.start_line, start_column), (end_line, end_column))
            }
        };
        if self.end.is_some() && end <= start {
            return Err(Failure::usage("the range is empty"));
        }
        let range =
            Range::new(Position::new(start.0 - 1, start.1), Position::new(end.0 - 1, end.1));
        Ok(Selection {
            start_line: range.start.line,
            end_line: range.end.line,
            text: doc.range_text(range, PositionEncoding::Utf32),
        })
    }
}

/// The default workspace: the target's git repository, else the current directory when it holds
/// the target, else the target's directory.
async fn find_workspace(target: &Path, cwd: &Path) -> PathBuf {
    let dir = if target.is_dir() { target } else { target.parent().unwrap_or(target) };
    if let Some(toplevel) = crate::base::git::toplevel(dir).await {
        return toplevel;
    }
    match cwd.canonicalize() {
        Ok(cwd) if target.starts_with(&cwd) => cwd,
        _ => dir.to_path_buf(),
    }
}

/// The first file a diff names that still exists, as an absolute path.
fn first_changed_file(diff: &str, workspace: &Path) -> Option<PathBuf> {
    diff.lines()
        .filter_map(|line| line.strip_prefix("+++ b/"))
        .map(|name| workspace.join(name.trim_end()))
        .find(|path| path.is_file())
}

/// A successful run as `run` reports it.
struct Rendered {
    session_id: String,
    /// The answer's words (the model's, or the findings' summary).
    text: String,
    /// What goes to stdout.
    output: String,
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
fn render(
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
fn unified_diff(changes: &[FileChange], workspace: &Path) -> String {
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

/// One file write of `--apply`, decided before anything is written.
enum FileWrite {
    Put { path: PathBuf, text: String },
    Remove { path: PathBuf },
}

/// Write the run's changes to disk. A file that changed since the run started is merged when
/// the changes do not overlap; otherwise nothing at all is written.
fn apply_changes(changes: &[FileChange]) -> Result<(), Failure> {
    let conflict = |path: &Path, why: &str| Failure {
        code: exit::NOT_APPLIED,
        message: format!("{}: {why}", path.display()),
        hint: "nothing was written; run it again".to_owned(),
    };
    let current = |path: &Path| std::fs::read_to_string(path).ok();
    let mut writes = Vec::new();
    for change in changes {
        match change {
            FileChange::Modified { path, before, after } => {
                let now =
                    current(path).ok_or_else(|| conflict(path, "it was deleted during the run"))?;
                let text = if now == *before {
                    after.clone()
                } else {
                    edits::merge3(before, after, &now).map_err(|err| {
                        conflict(
                            path,
                            &format!("it changed during the run and the edits overlap: {err}"),
                        )
                    })?
                };
                writes.push(FileWrite::Put { path: path.clone(), text });
            }
            FileChange::Created { path, content } => match current(path) {
                Some(now) if now == *content => {}
                Some(_) => {
                    return Err(conflict(
                        path,
                        "a different file was created there during the run",
                    ));
                }
                None => writes.push(FileWrite::Put { path: path.clone(), text: content.clone() }),
            },
            FileChange::Deleted { path, before } => match current(path) {
                Some(now) if now == *before => {
                    writes.push(FileWrite::Remove { path: path.clone() })
                }
                Some(_) => {
                    return Err(conflict(path, "it changed during the run; not deleting it"));
                }
                None => {}
            },
            FileChange::Renamed { from, to, before, after } => {
                if current(from).as_deref() != Some(before.as_str()) {
                    return Err(conflict(from, "it changed during the run; not renaming it"));
                }
                if to.exists() {
                    return Err(conflict(to, "a file was created there during the run"));
                }
                writes.push(FileWrite::Put { path: to.clone(), text: after.clone() });
                writes.push(FileWrite::Remove { path: from.clone() });
            }
        }
    }
    for write in writes {
        let written = match &write {
            FileWrite::Put { path, text } => path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(path, text))
                .map_err(|err| (path.clone(), err)),
            FileWrite::Remove { path } => {
                std::fs::remove_file(path).map_err(|err| (path.clone(), err))
            }
        };
        written.map_err(|(path, err)| Failure {
            code: exit::NOT_APPLIED,
            message: format!("cannot write {}: {err}", path.display()),
            hint: "some files may have been written; check `git status`".to_owned(),
        })?;
    }
    Ok(())
}

/// Progress on stderr: a spinner line redrawn in place on a terminal, one line per status
/// otherwise (logs, CI).
struct ProgressView {
    state: Arc<Mutex<ViewState>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

struct ViewState {
    status: String,
    started: Instant,
    frame: usize,
    terminal: bool,
}

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// Status lines are cut to this many characters so the spinner line never wraps.
const STATUS_WIDTH: usize = 100;

impl ProgressView {
    fn start() -> Self {
        let terminal = std::io::stderr().is_terminal();
        let state = Arc::new(Mutex::new(ViewState {
            status: "Starting".to_owned(),
            started: Instant::now(),
            frame: 0,
            terminal,
        }));
        let ticker = terminal.then(|| {
            let state = state.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tick.tick().await;
                    let mut state = state.lock();
                    state.frame = state.frame.wrapping_add(1);
                    state.draw();
                }
            })
        });
        Self { state, ticker }
    }

    fn status(&self, message: &str) {
        let line: String =
            message.lines().next().unwrap_or_default().chars().take(STATUS_WIDTH).collect();
        let mut state = self.state.lock();
        if state.status == line {
            return;
        }
        state.status = line;
        if state.terminal {
            state.draw();
        } else {
            eprintln!("claude-lsp: {}", state.status);
        }
    }

    /// The line the agent is writing: shown on the spinner line, left out of a log (the next
    /// status replaces it).
    fn writing(&self, message: &str) {
        if self.state.lock().terminal {
            self.status(message);
        }
    }

    /// Clear the spinner line.
    fn finish(&self) {
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
        let state = self.state.lock();
        if state.terminal {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
        }
    }
}

impl ViewState {
    fn draw(&self) {
        let mut stderr = std::io::stderr().lock();
        let spinner = SPINNER[self.frame % SPINNER.len()];
        let elapsed = self.started.elapsed().as_secs_f32();
        let _ = write!(stderr, "\r\x1b[2K{spinner} {elapsed:>5.1}s {}", self.status);
        let _ = stderr.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn range(text: &str) -> Result<TargetRange, String> {
        parse_range(text)
    }

    #[test]
    fn targets_split_at_the_first_numeric_colon() {
        assert_eq!(split_range("src/a.rs:12"), Some(("src/a.rs", "12")));
        assert_eq!(split_range("src/a.rs:12:5-14:1"), Some(("src/a.rs", "12:5-14:1")));
        assert_eq!(split_range("dir:x/a.rs:3"), Some(("dir:x/a.rs", "3")));
        assert_eq!(split_range("src/a.rs"), None);
    }

    #[test]
    fn ranges_parse_and_bad_ones_say_why() {
        assert_eq!(
            range("12").unwrap(),
            TargetRange { start_line: 12, start_column: None, end: None }
        );
        assert_eq!(
            range("12:5-14:1").unwrap(),
            TargetRange { start_line: 12, start_column: Some(5), end: Some((14, Some(1))) }
        );
        assert_eq!(
            range("3-7").unwrap(),
            TargetRange { start_line: 3, start_column: None, end: Some((7, None)) }
        );
        assert!(range("0").unwrap_err().contains("start at 1"));
        assert!(range("9-3").unwrap_err().contains("ends before"));
        assert!(range("1:2:3").unwrap_err().contains("too many"));
        assert!(range("4-x").unwrap_err().contains("not a line number"));
    }

    #[test]
    fn selections_take_whole_lines_or_exact_characters() {
        let text = "fn a() {}\nlet é = 1;\nlast\n";
        let whole = range("2").unwrap().selection(text).unwrap();
        assert_eq!((whole.start_line, whole.end_line, whole.text.as_str()), (1, 1, "let é = 1;"));
        let lines = range("1-2").unwrap().selection(text).unwrap();
        assert_eq!(lines.text, "fn a() {}\nlet é = 1;");
        let exact = range("2:5-2:6").unwrap().selection(text).unwrap();
        assert_eq!(exact.text, "é");
        let across = range("1:4-3:2").unwrap().selection(text).unwrap();
        assert_eq!(across.text, "a() {}\nlet é = 1;\nl");
        assert!(range("9").unwrap().selection(text).unwrap_err().message.contains("past the end"));
        assert!(
            range("2:40-3").unwrap().selection(text).unwrap_err().message.contains("column 40")
        );
    }

    #[test]
    fn the_diff_is_git_style_for_every_kind_of_change() {
        let ws = Path::new("/w");
        let changes = vec![
            FileChange::Modified {
                path: ws.join("a.rs"),
                before: "x\ny\n".into(),
                after: "x\nz\n".into(),
            },
            FileChange::Created { path: ws.join("new.rs"), content: "hi\n".into() },
            FileChange::Deleted { path: ws.join("old.rs"), before: "bye\n".into() },
        ];
        let expected = "\
diff --git a/a.rs b/a.rs
--- a/a.rs
+++ b/a.rs
@@ -1,2 +1,2 @@
 x
-y
+z
diff --git a/new.rs b/new.rs
new file mode 100644
--- /dev/null
+++ b/new.rs
@@ -0,0 +1 @@
+hi
diff --git a/old.rs b/old.rs
deleted file mode 100644
--- a/old.rs
+++ /dev/null
@@ -1 +0,0 @@
-bye
";
        assert_eq!(unified_diff(&changes, ws), expected);
    }

    #[test]
    fn apply_merges_a_disjoint_change_and_refuses_an_overlapping_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        let before = "one\ntwo\nthree\nfour\nfive\n";
        let change = FileChange::Modified {
            path: path.clone(),
            before: before.into(),
            after: before.replace("two", "TWO"),
        };
        std::fs::write(&path, before.replace("five", "FIVE")).unwrap();
        apply_changes(std::slice::from_ref(&change)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\nTWO\nthree\nfour\nFIVE\n");

        std::fs::write(&path, before.replace("two", "deux")).unwrap();
        let err = apply_changes(&[change]).unwrap_err();
        assert_eq!(err.code, exit::NOT_APPLIED);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before.replace("two", "deux"));
    }

    #[test]
    fn nothing_is_written_when_any_change_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let created = dir.path().join("sub/new.txt");
        let existing = dir.path().join("taken.txt");
        std::fs::write(&existing, "someone else's\n").unwrap();
        let changes = vec![
            FileChange::Created { path: created.clone(), content: "new\n".into() },
            FileChange::Created { path: existing, content: "ours\n".into() },
        ];
        assert_eq!(apply_changes(&changes).unwrap_err().code, exit::NOT_APPLIED);
        assert!(!created.exists());
    }
}
