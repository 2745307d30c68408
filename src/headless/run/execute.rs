//! The run from its arguments to the exit code: settings, target and workspace, then the
//! engine's `Runner::execute`, the result printed and the late books awaited.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::args::RunArgs;
use super::failure::{Failure, exit};
use super::progress_view::ProgressView;
use super::render::render;
use super::target::parse_target;
use crate::claude::discover::{DiscoverOptions, discover};
use crate::engine::background::Background;
use crate::engine::permissions::PermissionServices;
use crate::engine::pipeline::{ActionRequest, Activity, Runner};
use crate::engine::result_cache::{CacheLimits, ResultCache};
use crate::engine::run::{Books, RunRequest};
use crate::engine::staging::StagingManager;
use crate::model::edits;
use crate::model::prompt::{
    Action, ActionOptions, AnalyzeOptions, Depth, ReviewOptions, ReviewScope, Severity,
};
use crate::model::sessions::SessionStore;
use crate::model::settings::{Settings, parse_settings};

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
