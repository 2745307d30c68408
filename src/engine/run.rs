//! One run with every guarantee, the same for each face (the LSP handlers and `claude-lsp run`):
//! the daily budget (`dailyBudgetUsd`), the pipeline (staging, prompt, CLI, retries; each
//! permission decision goes to the audit log as it is made), the containment check of the
//! changes, the face's own finish (a `WorkspaceEdit`, files written to disk), and then the run's
//! place in the books: the session index and the usage ledger. An analyze or review whose inputs
//! are unchanged is answered from the result cache instead (result_cache.rs): no API call, nothing
//! to record. A findings run may answer before its CLI finished the turn (pipeline.rs):
//! its books are then written when the CLI's `result` arrives, in the background.

use std::path::{Path, PathBuf};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::base::error::{ErrorKind, ServerError};
use crate::claude::session::{RunResult, Usage};
use crate::engine::permissions::check_changes_inside;
use crate::engine::pipeline::{ActionOutcome, ActionRequest, Activity, Finishing, Runner, TurnEnd};
use crate::engine::result_cache::{self, CacheInputs, CachedAnswer, ResultCache};
use crate::model::prompt;
use crate::model::scope::ScopeFiles;
use crate::model::sessions::{FinishedRun, Outcome, Recorded, SessionStore, summarize};
use crate::model::settings::Settings;
use crate::model::usage::{DAILY_BUDGET_HINT, RunUsage, check_daily_budget};
use crate::protocol::lsp::{Range, Uri};

/// A run to execute: what the pipeline needs, and what the session index records besides.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub action: ActionRequest,
    /// The target as the face names it (the editor's spelling of the URI).
    pub uri: Uri,
    pub range: Option<Range>,
    /// When the user asked (before any wait in the queue), RFC 3339.
    pub started_at: String,
    /// Run even when the result cache holds an answer (the request's `noCache`).
    pub no_cache: bool,
}

/// What a face made of a run, as the session index records it.
pub trait RunAnswer {
    fn session_id(&self) -> &str;
    /// The answer's text: its first line is the run's summary.
    fn text(&self) -> &str;
}

/// Why a run failed, in a face's terms (a JSON-RPC error, an exit code).
pub trait RunFailure: From<ServerError> {
    fn message(&self) -> &str;
    fn is_cancelled(&self) -> bool;
}

/// How a run ended, and what the books say after it.
#[derive(Debug)]
pub struct RunEnd<T, E> {
    pub result: Result<T, E>,
    /// Empty when the books come `late`.
    pub books: Books,
    /// The books of a run that answered before its CLI finished the turn: they are written
    /// when it has (or failed, or the server shut down).
    pub late: Option<oneshot::Receiver<Books>>,
}

/// A run's place in the books.
#[derive(Debug, Default)]
pub struct Books {
    /// What the run spent, when the CLI reported a result (whatever became of its answer).
    pub usage: Option<RunUsage>,
    /// The run's conversation and the workspace's ledger once the run was recorded; `None` when
    /// it never reached the CLI or could not be recorded.
    pub recorded: Option<Recorded>,
    /// Problems with the index or ledger files, for the user to see.
    pub warnings: Vec<String>,
    /// The CLI failed ending the turn of a run that had already answered (crashed, or its
    /// `result` was an error): the answer stands, the failure is reported.
    pub failed_after_answer: Option<ServerError>,
}

impl<T, E> RunEnd<T, E> {
    /// A run that failed before it reached the engine (a bad request): nothing to record.
    pub fn failed(err: E) -> Self {
        Self { result: Err(err), books: Books::default(), late: None }
    }
}

impl Runner {
    /// Run `request` to the end: refuse it when the workspace has spent its daily budget, run
    /// the pipeline, refuse changes that lead out of the workspace, let `finish` turn the
    /// outcome into the face's answer (its error counts as the run's), and record the run in
    /// the session index and the usage ledger. `on_activity` sees the run as it goes.
    pub async fn execute<T: RunAnswer, E: RunFailure>(
        &self,
        request: &RunRequest,
        cancel: CancellationToken,
        on_activity: &mut (dyn FnMut(Activity) + Send),
        finish: impl FnOnce(ActionOutcome) -> Result<T, E>,
    ) -> RunEnd<T, E> {
        let mut warnings = Vec::new();
        // A folder or workspace scope's files, listed once: the cache key, the estimate and the
        // prompt all name them.
        let scope_files = match self.scope_files(&request.action, on_activity).await {
            Ok(files) => files,
            Err(err) => return RunEnd::failed(E::from(err)),
        };
        let cache = self.cache_slot(request, scope_files.as_ref()).await;
        if let Some((cache, key)) = &cache
            && let Some(hit) = cache.get(key)
        {
            on_activity(Activity::Status(format!(
                "Cached: the inputs are unchanged since {}; no API call",
                hit.created_at
            )));
            let result = finish(cached_outcome(hit));
            return RunEnd { result, books: Books { warnings, ..Books::default() }, late: None };
        }
        // What the run will likely cost, as its first word (an estimate: model/usage.rs).
        if let Ok(estimate) = self.estimate(&request.action, scope_files.as_ref()) {
            on_activity(Activity::Status(estimate.describe()));
        }
        let mut seen: Option<(String, PathBuf)> = None;
        let mut spent = RunUsage::default();
        let mut finishing = None;
        let outcome = match self.check_budget(&request.action.workspace, &mut warnings) {
            Err(err) => Err(err),
            Ok(day_left) => {
                let mut watch = |activity: Activity| {
                    if let Activity::Session { id, cwd } = &activity {
                        // Rebuilt from its components: no trailing `/` (a mirror root can carry one).
                        seen = Some((id.clone(), cwd.components().collect()));
                    }
                    on_activity(activity);
                };
                let scope_files = scope_files.as_ref();
                let action = &request.action;
                let outcome =
                    self.run(action, scope_files, cancel, &mut watch, day_left, &mut spent).await;
                outcome
                    .map(|(outcome, rest)| {
                        finishing = rest;
                        outcome
                    })
                    .map_err(|err| self.day_budget_error(err, day_left))
            }
        };
        // A failed run is in the books with what it spent too: the next run's budget knows it.
        let usage = match &outcome {
            Ok(outcome) => Some(outcome.usage.clone()),
            Err(_) => (spent != RunUsage::default()).then_some(spent),
        };
        let result = outcome
            .and_then(|outcome| {
                check_changes_inside(&request.action.workspace, &outcome.changes)?;
                Ok(outcome)
            })
            .map_err(E::from)
            .and_then(|outcome| {
                let kept =
                    cache.as_ref().map(|slot| (slot, outcome.text.clone(), outcome.result.clone()));
                let answer = finish(outcome)?;
                // Only an answer the face could use is worth giving again.
                if let Some(((cache, key), text, result)) = kept
                    && let Err(err) = cache.put(key, &text, &result)
                {
                    tracing::warn!(%err, "could not keep the answer in the result cache");
                }
                Ok(answer)
            });
        let run = self.finished_run(request, seen, &result);
        match finishing {
            None => {
                let recorded = run.and_then(|mut run| {
                    run.usage = usage.clone().unwrap_or_default();
                    record(&self.sessions, &run, &mut warnings)
                });
                let books = Books { usage, recorded, warnings, failed_after_answer: None };
                RunEnd { result, books, late: None }
            }
            Some(finishing) => {
                let (spent, workspace) = (usage.unwrap_or_default(), &request.action.workspace);
                let late = self.record_later(run, spent, finishing, workspace, warnings);
                RunEnd { result, books: Books::default(), late: Some(late) }
            }
        }
    }

    /// The books of a run that answered while its CLI still finished the turn: written once
    /// the turn's `result` says what the run spent (`spent`: its earlier attempts). Until then
    /// what is known of its cost counts against the daily budget; a turn that ended without a
    /// `result` is booked with that.
    fn record_later(
        &self,
        run: Option<FinishedRun>,
        spent: RunUsage,
        finishing: Finishing,
        workspace: &Path,
        mut warnings: Vec<String>,
    ) -> oneshot::Receiver<Books> {
        let (report, books) = oneshot::channel();
        let sessions = self.sessions.clone();
        let Finishing { known, end } = finishing;
        let held = self.background.hold(workspace, spent.counts.cost_usd + known.counts.cost_usd);
        self.background.spawn(async move {
            let end = end.await.unwrap_or(TurnEnd { usage: None, error: None });
            let mut usage = spent;
            usage.add_attempt(end.usage.as_ref().unwrap_or(&known));
            let failed_after_answer = end.error.map(|err| {
                tracing::warn!(%err, "the CLI failed ending a turn after the run had answered");
                err.server_error()
            });
            let recorded = run.and_then(|mut run| {
                run.usage = usage.clone();
                run.ended_at = crate::base::time::rfc3339(crate::base::time::now_secs());
                record(&sessions, &run, &mut warnings)
            });
            drop(held);
            let books = Books { usage: Some(usage), recorded, warnings, failed_after_answer };
            let _ = report.send(books);
        });
        books
    }

    /// The result cache and this run's key in it, when the run may be answered from it (and
    /// its answer kept): the cache is on (`resultCache`), the request did not bypass it, and
    /// the run is one that can be cached (result_cache.rs). A folder or workspace scope's files
    /// are read for the key: the agent reads them, so their content is an input too.
    async fn cache_slot(
        &self,
        request: &RunRequest,
        scope_files: Option<&ScopeFiles>,
    ) -> Option<(&ResultCache, String)> {
        let cache = self.results.as_ref().filter(|_| self.settings.result_cache)?;
        if request.no_cache {
            return None;
        }
        let digest = match scope_files {
            Some(files) => {
                let (workspace, files) = (request.action.workspace.clone(), files.clone());
                let digest = tokio::task::spawn_blocking(move || {
                    result_cache::scope_digest(&workspace, &files)
                });
                Some(digest.await.ok()??)
            }
            None => None,
        };
        let scope = scope_files.zip(digest.as_deref());
        let key = cache_key(&request.action, scope, &self.settings, &self.cli.version.to_string())?;
        Some((cache, key))
    }

    /// Refuse a run when its workspace has spent today's `dailyBudgetUsd`; else what is left of
    /// it (`None`: no daily budget).
    fn check_budget(
        &self,
        workspace: &Path,
        warnings: &mut Vec<String>,
    ) -> Result<Option<f64>, ServerError> {
        let budget = self.settings.daily_budget_usd;
        if budget.is_none() {
            return Ok(None);
        }
        let loaded = self.sessions.usage(workspace);
        warnings.extend(loaded.warnings);
        let today = crate::base::time::day(crate::base::time::now_secs());
        // Runs that answered before their CLI ended the turn are not in the ledger yet.
        let unbooked = self.background.unbooked_usd(workspace);
        check_daily_budget(loaded.value.day(&today).cost_usd + unbooked, budget)
    }

    /// A run the CLI stopped at the budget: when that was what was left of the day's budget,
    /// the error says so.
    fn day_budget_error(&self, err: ServerError, day_left: Option<f64>) -> ServerError {
        let Some(left) = day_left else { return err };
        let day_was_the_limit = self.settings.max_budget_usd.is_none_or(|own| left < own);
        if err.kind != ErrorKind::BUDGET_EXCEEDED || !day_was_the_limit {
            return err;
        }
        let budget = self.settings.daily_budget_usd.unwrap_or(left);
        let message = format!(
            "the run stopped at what was left of today's budget, ${left:.4} of ${budget:.4} \
             (dailyBudgetUsd): {}",
            err.message
        );
        ServerError::new(ErrorKind::BUDGET_EXCEEDED, message, DAILY_BUDGET_HINT)
    }

    /// The run as the session index records it (its usage still to fill in). A run that never
    /// reached the CLI has no conversation to record.
    fn finished_run<T: RunAnswer, E: RunFailure>(
        &self,
        request: &RunRequest,
        seen: Option<(String, PathBuf)>,
        result: &Result<T, E>,
    ) -> Option<FinishedRun> {
        let (session_id, cwd) = match (result, seen) {
            (Ok(answer), seen) => (answer.session_id().to_owned(), seen.map(|(_, cwd)| cwd)),
            (Err(_), Some((id, cwd))) => (id, Some(cwd)),
            (Err(_), None) => return None,
        };
        let (outcome, summary) = match result {
            Ok(answer) => (Outcome::Success, summarize(answer.text())),
            Err(err) if err.is_cancelled() => (Outcome::Cancelled, "Cancelled".to_owned()),
            Err(err) => (Outcome::Error, summarize(err.message())),
        };
        let action = &request.action;
        let parent = action.resume.clone().filter(|resumed| action.fork && *resumed != session_id);
        Some(FinishedRun {
            session_id,
            parent,
            action: action.action,
            uri: request.uri.clone(),
            range: request.range,
            instruction: action.instruction.clone(),
            workspace: action.workspace.clone(),
            mirror: cwd.filter(|cwd| *cwd != action.workspace && action.action.is_edit()),
            started_at: request.started_at.clone(),
            ended_at: crate::base::time::rfc3339(crate::base::time::now_secs()),
            outcome,
            summary,
            usage: RunUsage::default(),
        })
    }
}

/// Add the run to its conversation in the session index and to the usage ledger. Failing to
/// record is a warning, never the run's failure.
fn record(
    sessions: &SessionStore,
    run: &FinishedRun,
    warnings: &mut Vec<String>,
) -> Option<Recorded> {
    match sessions.record(run) {
        Ok(recorded) => {
            warnings.extend(recorded.warnings);
            Some(recorded.value)
        }
        Err(err) => {
            let warning = format!(
                "could not record conversation {} in the session index under {}: {err}",
                run.session_id,
                sessions.workspace_dir(&run.workspace).display()
            );
            tracing::warn!("{warning}");
            warnings.push(warning);
            None
        }
    }
}

/// The result cache key of `action` (`None`: not cacheable, result_cache.rs): its prompt as the
/// run builds it, the options, the run's model, the spawn settings and, for a folder or
/// workspace scope, the digest of its files' content.
fn cache_key(
    action: &ActionRequest,
    scope: Option<(&ScopeFiles, &str)>,
    settings: &Settings,
    cli_version: &str,
) -> Option<String> {
    let context = action.prompt_context(None, scope.map(|(files, _)| files));
    let prompt = prompt::build_prompt(&context).ok()?;
    let model = action.model(settings);
    result_cache::key(&CacheInputs {
        action: action.action,
        workspace: &action.workspace,
        options: &action.options,
        follow_up: action.resume.is_some(),
        prompt: &prompt,
        model: model.as_deref(),
        scope_content: scope.map(|(_, digest)| digest),
        settings,
        cli_version,
    })
}

/// A cached answer as the outcome of a run that cost nothing.
fn cached_outcome(answer: CachedAnswer) -> ActionOutcome {
    let result = RunResult {
        session_id: answer.session_id,
        text: answer.text.clone(),
        structured_output: answer.structured_output,
        usage: Usage::default(),
        cost_usd: 0.0,
        num_turns: 0,
        duration_ms: 0,
        model: answer.model,
        permission_denials: Vec::new(),
        raw: serde_json::Value::Null,
    };
    ActionOutcome {
        text: answer.text,
        changes: Vec::new(),
        result,
        usage: RunUsage::default(),
        cached: true,
    }
}

impl RunFailure for ServerError {
    fn message(&self) -> &str {
        &self.message
    }

    fn is_cancelled(&self) -> bool {
        self.kind == ErrorKind::CANCELLED
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::prompt::{Action, ActionOptions, ReviewScope};

    fn review(options: ActionOptions) -> ActionRequest {
        ActionRequest {
            action: Action::Review,
            workspace: PathBuf::from("/ws"),
            file: PathBuf::from("/ws/src/lib.rs"),
            language_id: "rust".into(),
            text: "fn main() {}\n".into(),
            selection: None,
            instruction: None,
            diagnostics: Vec::new(),
            options,
            changes_diff: None,
            overlays: Vec::new(),
            resume: None,
            fork: false,
        }
    }

    #[test]
    fn another_scope_file_list_or_model_is_a_cache_miss() {
        let settings = Settings::default();
        let mut folder = ActionOptions::default();
        folder.review.scope = Some(ReviewScope::Folder);
        let request = review(folder.clone());
        let files = |names: &[&str]| {
            ScopeFiles::new(
                Some("src".into()),
                names.iter().map(|n| format!("src/{n}")),
                true,
                true,
            )
        };
        let (two, three) = (files(&["a.rs", "b.rs"]), files(&["a.rs", "b.rs", "c.rs"]));
        let key = |request: &ActionRequest, scope| cache_key(request, scope, &settings, "2.1.330");

        let base = key(&request, Some((&two, "digest"))).expect("a folder review is cached");
        assert_eq!(key(&request, Some((&two, "digest"))), Some(base.clone()));
        assert_ne!(key(&request, Some((&three, "digest"))).unwrap(), base, "another file list");
        assert_ne!(key(&request, Some((&two, "edited"))).unwrap(), base, "other content");
        assert_eq!(key(&request, None), None, "a folder scope without its files");

        let haiku = review(ActionOptions { model: Some("claude-haiku-4-5".into()), ..folder });
        assert_ne!(key(&haiku, Some((&two, "digest"))).unwrap(), base, "another run model");
        let file = review(ActionOptions::default());
        let opus = review(ActionOptions { model: Some("opus".into()), ..ActionOptions::default() });
        assert_ne!(key(&file, None).unwrap(), key(&opus, None).unwrap());
    }
}
