//! Server-side retries of transient API failures, continuing the same session.
//!
//! The CLI runs with a small `CLAUDE_CODE_MAX_RETRIES` (`maxRetriesCli`), so an outage reaches
//! the server in seconds instead of after the CLI's three minutes of backoff. A run that then
//! fails with 429, 529/overloaded, 5xx or a connection error is retried up to `maxRetries` times
//! with exponential backoff and full jitter (at least the API's `retry-after`). A retry resumes
//! the session the failed attempt started (`--resume`), in the same working directory (the
//! caller keeps its staging lease across attempts), and asks the model to continue: tool calls
//! that completed stay done, and nothing is lost. With `fallbackModel` set, a retry after an
//! overload uses that model. A 401 seen in `system/api_retry` stops the attempt at once: a bad
//! key never gets better by waiting.
//!
//! Besides those retries, a run gets one recovery of each of two kinds, counted in the metrics
//! as `recoveries`: an API call that hung (the idle timeout) or a CLI that died mid-run resumes
//! its session at once; a context over the model's window (`prompt is too long`) is compacted
//! with the CLI's own `/compact` when the run has a conversation to compact, or else the run
//! starts over with the smaller prompt the caller offers (files referenced, not inlined).
//!
//! The caller drives the loop, so how a CLI process is obtained stays in the caller's hands:
//!
//! ```text
//! let mut retry = RetryLoop::new(policy, resilience, limits);
//! let result = loop {
//!     let attempt = retry.start(&cancel, &mut report).await?;
//!     let outcome = run_once(attempt.configure(config.clone()), attempt.prompt(&prompt),
//!         attempt.limits(), attempt.cancel(), |event| attempt.observe(event)).await;
//!     if let Some(result) = retry.finish(attempt, outcome)? { break result; }
//! };
//! ```

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::base::error::ServerError;
use crate::claude::errors::{ClaudeError, rejects_credentials};
use crate::claude::session::{RunEvent, RunLimits, RunResult, SessionConfig};
use crate::engine::breaker::{Admission, ApiOutcome, CircuitBreaker};
use crate::engine::metrics::Metrics;
use crate::model::settings::Settings;

/// What a resumed attempt says to the model. The failed attempt's prompt is already in the
/// session, so it is not sent again.
pub const CONTINUE_PROMPT: &str = "Your previous response was cut off by a temporary error. \
Continue the task from where you stopped; do not repeat steps that already completed.";

/// The first retry waits up to this long; each further retry doubles it.
const BASE_DELAY: Duration = Duration::from_secs(1);
/// No single wait is longer than this (except what the API's `retry-after` demands).
const MAX_DELAY: Duration = Duration::from_secs(30);

/// How often and how patiently to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`maxRetries`).
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The model for retries after an overload (`fallbackModel`).
    pub fallback_model: Option<String>,
}

impl RetryPolicy {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            max_retries: settings.max_retries,
            base_delay: BASE_DELAY,
            max_delay: MAX_DELAY,
            fallback_model: settings.fallback_model.clone(),
        }
    }
}

/// The wait before retry number `retry` (1-based): uniform in `[0, min(max, base · 2^(retry-1))]`
/// ("full jitter": many clients failing together do not come back together).
pub fn backoff_delay(retry: u32, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exponent = retry.saturating_sub(1).min(31);
    let ceiling = base.saturating_mul(1u32 << exponent).min(max);
    let ceiling_secs = ceiling.as_secs_f64();
    if ceiling_secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(rng.random_range(0.0..=ceiling_secs))
}

/// The server-wide parts a run reports to: the circuit breaker and the metrics. The default
/// (no circuit, no metrics) suits a single headless run.
#[derive(Debug, Clone, Default)]
pub struct Resilience {
    pub circuit: Option<Arc<CircuitBreaker>>,
    pub metrics: Option<Arc<Metrics>>,
}

/// Whether a failure means the API is (temporarily) unavailable, as the circuit sees it.
pub fn api_outcome(outcome: &Result<RunResult, ClaudeError>) -> ApiOutcome {
    match outcome {
        Ok(_) => ApiOutcome::Success,
        Err(err) if err.is_retryable() => ApiOutcome::Failure(short_reason(err)),
        Err(_) => ApiOutcome::Neutral,
    }
}

/// A few words naming a transient failure, for progress and the circuit's message.
pub fn short_reason(err: &ClaudeError) -> String {
    match err {
        ClaudeError::RateLimited { .. } => "rate limited (429)".to_owned(),
        ClaudeError::Overloaded { .. } => "API overloaded (529)".to_owned(),
        ClaudeError::ApiError { status: Some(status), .. } => format!("API error {status}"),
        ClaudeError::ApiError { status: None, .. } => "cannot reach the API".to_owned(),
        other => other.kind().replace('_', " "),
    }
}

/// What a run whose context overflows can fall back on, once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextFallback {
    /// The run continues an earlier conversation, which `/compact` can shrink.
    pub continues_conversation: bool,
    /// The caller has a smaller prompt (files referenced instead of inlined).
    pub smaller_prompt: bool,
}

/// What an attempt says to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Say {
    /// The run's prompt.
    Original,
    /// [`CONTINUE_PROMPT`], in the resumed session.
    Continue,
    /// The smaller prompt of [`ContextFallback`].
    Smaller,
}

/// One run's retry state. See the module docs for the loop it drives.
pub struct RetryLoop {
    policy: RetryPolicy,
    resilience: Resilience,
    /// The run's overall deadline (`timeoutSecs` covers every attempt and every wait).
    deadline: Instant,
    total_timeout: Duration,
    idle_timeout: Option<Duration>,
    attempts: u32,
    /// The session the attempts so far started; the next attempt resumes it.
    session_id: Option<String>,
    use_fallback: bool,
    /// The wait before the next attempt and why.
    backoff: Option<(Duration, String)>,
    context: ContextFallback,
    /// The one recovery from a full context was used.
    context_recovered: bool,
    /// The one recovery from a hung call or a crashed CLI was used.
    fault_recovered: bool,
    /// What the next attempt says, when a recovery chose it.
    next_say: Option<Say>,
    /// The next attempt compacts its conversation before it says anything.
    next_compacts: bool,
    /// A recovery's announcement, reported as the next attempt starts.
    announce: Option<String>,
}

impl RetryLoop {
    pub fn new(policy: RetryPolicy, resilience: Resilience, limits: RunLimits) -> Self {
        Self {
            policy,
            resilience,
            deadline: Instant::now() + limits.timeout,
            total_timeout: limits.timeout,
            idle_timeout: limits.idle_timeout,
            attempts: 0,
            session_id: None,
            use_fallback: false,
            backoff: None,
            context: ContextFallback::default(),
            context_recovered: false,
            fault_recovered: false,
            next_say: None,
            next_compacts: false,
            announce: None,
        }
    }

    /// What the run can fall back on when its context overflows.
    pub fn with_context_fallback(mut self, context: ContextFallback) -> Self {
        self.context = context;
        self
    }

    fn total_attempts(&self) -> u32 {
        self.policy.max_retries.saturating_add(1)
    }

    /// Wait out the backoff (reporting it), pass the circuit breaker, and start the next attempt.
    pub async fn start(
        &mut self,
        cancel: &CancellationToken,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<Attempt, ServerError> {
        let recovers = self.announce.is_some();
        if let Some(announcement) = self.announce.take() {
            report(announcement);
        }
        if let Some((delay, reason)) = self.backoff.take() {
            let secs = delay.as_secs_f64().ceil().max(1.0);
            report(format!(
                "Retrying in {secs:.0} s (attempt {}/{}): {reason}",
                self.attempts + 1,
                self.total_attempts()
            ));
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => return Err(ServerError::cancelled()),
            }
        }
        if cancel.is_cancelled() {
            return Err(ServerError::cancelled());
        }
        let admission = match &self.resilience.circuit {
            Some(circuit) => Some(circuit.admit().map_err(|open| open.to_error())?),
            None => None,
        };
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(
                ClaudeError::Timeout { after: self.total_timeout, idle: false }.server_error()
            );
        }
        self.attempts += 1;
        let model = match (&self.policy.fallback_model, self.use_fallback) {
            (Some(model), true) => Some(model.clone()),
            _ => None,
        };
        let resume = self.session_id.clone();
        let say = self.next_say.take().unwrap_or(match resume {
            Some(_) => Say::Continue,
            None => Say::Original,
        });
        Ok(Attempt {
            number: self.attempts,
            resume,
            say,
            compacts: std::mem::take(&mut self.next_compacts),
            recovers,
            model,
            limits: RunLimits { timeout: remaining, idle_timeout: self.idle_timeout },
            run_cancel: cancel.clone(),
            cancel: cancel.child_token(),
            observed: Mutex::new(Observed::default()),
            admission,
        })
    }

    /// Judge an attempt: `Ok(Some(result))` when the run succeeded, `Ok(None)` when it will be
    /// retried (call [`RetryLoop::start`] again), else the run's final error.
    pub fn finish(
        &mut self,
        attempt: Attempt,
        outcome: Result<RunResult, ClaudeError>,
    ) -> Result<Option<RunResult>, ServerError> {
        let Attempt { number, resume, say, recovers, run_cancel, observed, admission, .. } =
            attempt;
        let observed = observed.into_inner();
        if observed.session_id.is_some() {
            self.session_id = observed.session_id;
        }
        let outcome = match (outcome, observed.auth_failure) {
            // We stopped the attempt because the API refused the credentials.
            (Err(ClaudeError::Cancelled), Some(message)) if !run_cancel.is_cancelled() => {
                Err(ClaudeError::AuthFailed { message })
            }
            // The attempt's limit was what was left of the run's: report the run's limit.
            (Err(ClaudeError::Timeout { idle: false, .. }), _) => {
                Err(ClaudeError::Timeout { after: self.total_timeout, idle: false })
            }
            (outcome, _) => outcome,
        };
        if let (Some(circuit), Some(admission)) = (&self.resilience.circuit, admission) {
            circuit.record(admission, api_outcome(&outcome));
        }
        let err = match outcome {
            Ok(result) => return Ok(Some(result)),
            Err(err) => err,
        };
        let has_history = resume.is_some() || observed.used_tools;
        if let Some(announcement) = self.recover(&err, has_history, say) {
            tracing::info!(attempt = number, error = %err, "recovering: {announcement}");
            if let Some(metrics) = &self.resilience.metrics {
                metrics.record_recovery(err.kind());
            }
            self.announce = Some(announcement);
            return Ok(None);
        }
        let attempts_left = number < self.total_attempts();
        let may_start_over = attempts_left || recovers;
        if resume.is_some() && matches!(err, ClaudeError::SessionNotFound { .. }) && may_start_over
        {
            // The failed attempt's session was not saved (a CLI killed before it wrote its
            // transcript): start over rather than give up.
            tracing::info!("the session to resume is gone; retrying from the start");
            self.session_id = None;
            self.backoff = Some((Duration::ZERO, "starting over".to_owned()));
            return Ok(None);
        }
        if !err.is_retryable() || !attempts_left {
            return Err(final_error(&err, number));
        }
        let mut delay =
            backoff_delay(number, self.policy.base_delay, self.policy.max_delay, &mut rand::rng());
        if let ClaudeError::RateLimited { retry_after: Some(after), .. } = &err {
            delay = delay.max(*after);
        }
        if Instant::now() + delay >= self.deadline {
            return Err(final_error(&err, number));
        }
        if matches!(err, ClaudeError::Overloaded { .. }) && self.policy.fallback_model.is_some() {
            self.use_fallback = true;
        }
        let reason = short_reason(&err);
        tracing::info!(attempt = number, delay_ms = delay.as_millis() as u64, %reason, "retrying the run");
        if let Some(metrics) = &self.resilience.metrics {
            metrics.record_retry(err.kind());
        }
        self.backoff = Some((delay, reason));
        Ok(None)
    }
}

impl RetryLoop {
    /// Prepare the one recovery `err` allows, if it allows one and it is still unused; returns
    /// what progress says about it. `has_history`: the failed attempt's session holds more than
    /// its prompt (it resumed one, or called tools); `said`: what the failed attempt said.
    fn recover(&mut self, err: &ClaudeError, has_history: bool, said: Say) -> Option<String> {
        match err {
            ClaudeError::Timeout { idle: true, .. } | ClaudeError::ProcessCrashed { .. }
                if !self.fault_recovered =>
            {
                self.fault_recovered = true;
                let what = match err {
                    ClaudeError::Timeout { .. } => "The API call hung",
                    _ => "Claude Code exited unexpectedly",
                };
                // Without a session to resume (it died before naming one) the run starts over.
                Some(match self.session_id {
                    Some(_) => format!("{what}: resuming the session"),
                    None => format!("{what}: starting again"),
                })
            }
            ClaudeError::PromptTooLong { .. } if !self.context_recovered => {
                let compactable = has_history || self.context.continues_conversation;
                if compactable && self.session_id.is_some() {
                    self.context_recovered = true;
                    self.next_compacts = true;
                    // A turn that got going continues; one that never got an answer is asked again.
                    self.next_say = Some(if has_history && said != Say::Continue {
                        Say::Continue
                    } else {
                        said
                    });
                    Some("Context too long: compacting the conversation, then retrying".to_owned())
                } else if self.context.smaller_prompt {
                    self.context_recovered = true;
                    // The failed session holds the prompt that was too long: start a new one.
                    self.session_id = None;
                    self.next_say = Some(Say::Smaller);
                    Some("Context too long: retrying with a smaller prompt".to_owned())
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

fn final_error(err: &ClaudeError, attempts: u32) -> ServerError {
    let mut error = err.server_error();
    if attempts > 1 {
        error.message.push_str(&format!(" (gave up after {attempts} attempts)"));
    }
    error
}

#[derive(Debug, Default)]
struct Observed {
    session_id: Option<String>,
    /// Set when the CLI reported a credentials failure; the attempt is then stopped.
    auth_failure: Option<String>,
    /// The attempt's session called a tool: it holds more than the prompt.
    used_tools: bool,
}

/// One attempt of a run: how to configure it, and a sink for its events.
#[derive(Debug)]
pub struct Attempt {
    number: u32,
    resume: Option<String>,
    say: Say,
    /// Compact the resumed conversation (`/compact`) before saying anything.
    compacts: bool,
    /// The attempt is a recovery (it does not count against `maxRetries`).
    recovers: bool,
    model: Option<String>,
    limits: RunLimits,
    run_cancel: CancellationToken,
    cancel: CancellationToken,
    observed: Mutex<Observed>,
    admission: Option<Admission>,
}

impl Attempt {
    /// The run's configuration adjusted for this attempt: resume the failed attempt's session,
    /// and switch to the fallback model after an overload.
    pub fn configure(&self, mut config: SessionConfig) -> SessionConfig {
        if let Some(session_id) = &self.resume {
            config.options.resume = Some(session_id.clone());
            config.options.fork_session = false;
            config.options.session_id = None;
            config.options.continue_session = false;
        }
        if let Some(model) = &self.model {
            config.options.model = Some(model.clone());
            // The CLI refuses a fallback equal to the model.
            config.options.fallback_model = None;
        }
        config
    }

    /// What to send: the original prompt, a request to continue when resuming, or the smaller
    /// prompt after the original one overflowed the context.
    pub fn prompt<'a>(&self, original: &'a str, smaller: &'a str) -> &'a str {
        match self.say {
            Say::Original => original,
            Say::Continue => CONTINUE_PROMPT,
            Say::Smaller => smaller,
        }
    }

    /// Whether to compact the conversation (the CLI's `/compact`) before sending the prompt.
    pub fn compacts_first(&self) -> bool {
        self.compacts
    }

    /// Limits for this attempt: what is left of the run's timeout.
    pub fn limits(&self) -> RunLimits {
        self.limits
    }

    /// Cancelled with the run, or by the attempt itself (a credentials failure).
    pub fn cancel(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Watch the attempt's events: the session id, and credentials failures the CLI would
    /// otherwise retry for minutes.
    pub fn observe(&self, event: &RunEvent) {
        match event {
            RunEvent::Init { session_id, .. } => {
                self.observed.lock().session_id = Some(session_id.clone());
            }
            RunEvent::ToolUse { .. } => self.observed.lock().used_tools = true,
            RunEvent::ApiRetry { status, error, .. }
                if rejects_credentials(*status, error.as_deref()) =>
            {
                let status = status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
                self.observed.lock().auth_failure =
                    Some(format!("the Anthropic API rejected the credentials{status}"));
                self.cancel.cancel();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::error::ErrorKind;
    use crate::engine::breaker::CircuitConfig;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use serde_json::Value;

    fn limits(secs: u64) -> RunLimits {
        RunLimits { timeout: Duration::from_secs(secs), idle_timeout: None }
    }

    /// Waits short enough for tests to sleep through them.
    fn policy(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            fallback_model: None,
        }
    }

    fn success(session_id: &str) -> RunResult {
        RunResult {
            session_id: session_id.into(),
            text: "done".into(),
            structured_output: None,
            usage: Default::default(),
            cost_usd: 0.0,
            num_turns: 1,
            duration_ms: 1,
            model: None,
            permission_denials: Vec::new(),
            raw: Value::Null,
        }
    }

    fn overloaded() -> ClaudeError {
        ClaudeError::Overloaded { message: "529 Overloaded".into() }
    }

    fn init(attempt: &Attempt, session_id: &str) {
        attempt.observe(&RunEvent::Init {
            session_id: session_id.into(),
            model: None,
            cli_version: None,
        });
    }

    async fn start(retry: &mut RetryLoop, reports: &mut Vec<String>) -> Attempt {
        let cancel = CancellationToken::new();
        let mut report = |message: String| reports.push(message);
        retry.start(&cancel, &mut report).await.unwrap()
    }

    #[test]
    fn backoff_is_full_jitter_under_an_exponential_ceiling() {
        let mut rng = StdRng::seed_from_u64(7);
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(30);
        for retry in 1..=8 {
            let ceiling = Duration::from_secs(1 << (retry - 1)).min(max);
            let delays: Vec<Duration> =
                (0..200).map(|_| backoff_delay(retry, base, max, &mut rng)).collect();
            assert!(delays.iter().all(|d| *d <= ceiling), "retry {retry}: {delays:?}");
            // Jitter spreads the waits over the whole range, down to almost nothing.
            assert!(delays.iter().any(|d| *d < ceiling / 4), "retry {retry}");
            assert!(delays.iter().any(|d| *d > ceiling * 3 / 4), "retry {retry}");
        }
        // Huge retry numbers neither overflow nor pass the cap.
        assert!(backoff_delay(100, base, max, &mut rng) <= max);
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_by_resuming_its_session() {
        let mut retry = RetryLoop::new(policy(3), Resilience::default(), limits(300));
        let mut reports = Vec::new();
        let first = start(&mut retry, &mut reports).await;
        assert_eq!((first.number, first.resume.as_deref()), (1, None));
        assert_eq!(first.prompt("do it", "smaller"), "do it");
        init(&first, "s-1");
        assert_eq!(retry.finish(first, Err(overloaded())).unwrap(), None);

        let second = start(&mut retry, &mut reports).await;
        assert_eq!((second.number, second.resume.as_deref()), (2, Some("s-1")));
        assert_eq!(second.prompt("do it", "smaller"), CONTINUE_PROMPT);
        assert_eq!(reports.len(), 1);
        assert!(
            reports[0].starts_with("Retrying in ")
                && reports[0].ends_with("s (attempt 2/4): API overloaded (529)"),
            "{reports:?}"
        );
        let done = retry.finish(second, Ok(success("s-1"))).unwrap();
        assert_eq!(done.map(|r| r.session_id), Some("s-1".to_owned()));
    }

    #[tokio::test]
    async fn retries_stop_after_max_retries_with_the_last_error() {
        let mut retry = RetryLoop::new(policy(2), Resilience::default(), limits(300));
        let mut reports = Vec::new();
        for _ in 0..2 {
            let attempt = start(&mut retry, &mut reports).await;
            assert_eq!(retry.finish(attempt, Err(overloaded())).unwrap(), None);
        }
        let last = start(&mut retry, &mut reports).await;
        let err = retry.finish(last, Err(overloaded())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::OVERLOADED);
        assert!(err.message.ends_with("(gave up after 3 attempts)"), "{err:?}");
    }

    #[tokio::test]
    async fn non_retryable_errors_fail_at_once() {
        for (err, kind) in [
            (ClaudeError::PromptTooLong { message: "too long".into() }, ErrorKind::PROMPT_TOO_LONG),
            (ClaudeError::BudgetExceeded { message: "$1".into() }, ErrorKind::BUDGET_EXCEEDED),
            (ClaudeError::NotLoggedIn, ErrorKind::AUTH_FAILED),
            (
                ClaudeError::Timeout { after: Duration::from_secs(5), idle: false },
                ErrorKind::TIMEOUT,
            ),
        ] {
            let mut retry = RetryLoop::new(policy(3), Resilience::default(), limits(300));
            let attempt = start(&mut retry, &mut Vec::new()).await;
            let error = retry.finish(attempt, Err(err)).unwrap_err();
            assert_eq!(error.kind, kind, "{error:?}");
            assert!(!error.message.contains("attempts"), "{error:?}");
        }
    }

    fn crashed() -> ClaudeError {
        ClaudeError::ProcessCrashed { code: None, stderr_tail: String::new() }
    }

    fn hung() -> ClaudeError {
        ClaudeError::Timeout { after: Duration::from_secs(3), idle: true }
    }

    fn too_long() -> ClaudeError {
        ClaudeError::PromptTooLong { message: "prompt is too long".into() }
    }

    fn tool_use(attempt: &Attempt) {
        attempt.observe(&RunEvent::ToolUse {
            id: "t".into(),
            name: "Read".into(),
            input: Value::Null,
        });
    }

    #[tokio::test]
    async fn a_hung_call_or_a_crash_resumes_the_session_once_even_without_retries_left() {
        let metrics = Arc::new(Metrics::new());
        let resilience = Resilience { circuit: None, metrics: Some(metrics.clone()) };
        let mut retry = RetryLoop::new(policy(0), resilience, limits(300));
        let mut reports = Vec::new();
        let first = start(&mut retry, &mut reports).await;
        init(&first, "s-1");
        assert_eq!(retry.finish(first, Err(hung())).unwrap(), None);
        let second = start(&mut retry, &mut reports).await;
        assert_eq!(reports, ["The API call hung: resuming the session"]);
        assert_eq!(
            (second.resume.as_deref(), second.prompt("do it", "x")),
            (Some("s-1"), CONTINUE_PROMPT)
        );
        assert!(!second.compacts_first());
        // The second fault fails the run, retryable, whatever the fault.
        let err = retry.finish(second, Err(crashed())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::PROCESS_CRASHED);
        assert!(
            err.kind.retryable && err.message.ends_with("(gave up after 2 attempts)"),
            "{err:?}"
        );
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.recoveries.by_reason, [("timeout".to_owned(), 1)].into());
        assert_eq!(snapshot.retries.total, 0);

        // A CLI that died before naming its session starts over.
        let mut retry = RetryLoop::new(policy(0), Resilience::default(), limits(300));
        let mut reports = Vec::new();
        let first = start(&mut retry, &mut reports).await;
        assert_eq!(retry.finish(first, Err(crashed())).unwrap(), None);
        let second = start(&mut retry, &mut reports).await;
        assert_eq!(reports, ["Claude Code exited unexpectedly: starting again"]);
        assert_eq!((second.resume.as_deref(), second.prompt("do it", "x")), (None, "do it"));
        let err = retry.finish(second, Err(hung())).unwrap_err();
        assert_eq!((err.kind, err.kind.retryable), (ErrorKind::TIMEOUT, true));

        // A CLI killed before it saved its session: the resume finds none and starts over.
        let mut retry = RetryLoop::new(policy(0), Resilience::default(), limits(300));
        let first = start(&mut retry, &mut Vec::new()).await;
        init(&first, "unsaved");
        assert_eq!(retry.finish(first, Err(crashed())).unwrap(), None);
        let second = start(&mut retry, &mut Vec::new()).await;
        let gone = ClaudeError::SessionNotFound { session_id: "unsaved".into() };
        assert_eq!(retry.finish(second, Err(gone)).unwrap(), None);
        let third = start(&mut retry, &mut Vec::new()).await;
        assert_eq!((third.resume.as_deref(), third.prompt("do it", "x")), (None, "do it"));
    }

    #[tokio::test]
    async fn a_new_conversation_too_long_for_the_context_starts_over_with_the_smaller_prompt() {
        let fallback = ContextFallback { continues_conversation: false, smaller_prompt: true };
        let mut retry = RetryLoop::new(policy(3), Resilience::default(), limits(300))
            .with_context_fallback(fallback);
        let mut reports = Vec::new();
        let first = start(&mut retry, &mut reports).await;
        init(&first, "s-1");
        assert_eq!(retry.finish(first, Err(too_long())).unwrap(), None);
        let second = start(&mut retry, &mut reports).await;
        assert_eq!(reports, ["Context too long: retrying with a smaller prompt"]);
        assert_eq!(second.resume.as_deref(), None, "the overflowing session is not resumed");
        assert_eq!(second.prompt("do it", "smaller"), "smaller");
        assert!(!second.compacts_first());
        let err = retry.finish(second, Err(too_long())).unwrap_err();
        assert_eq!((err.kind, err.kind.retryable), (ErrorKind::PROMPT_TOO_LONG, false));
        assert!(err.hint.contains("Select less"), "{err:?}");
    }

    #[tokio::test]
    async fn a_conversation_too_long_for_the_context_is_compacted_then_asked_again() {
        // A follow-up whose prompt overflowed: compact, then send the same prompt again.
        let fallback = ContextFallback { continues_conversation: true, smaller_prompt: true };
        let mut retry = RetryLoop::new(policy(3), Resilience::default(), limits(300))
            .with_context_fallback(fallback);
        let mut reports = Vec::new();
        let first = start(&mut retry, &mut reports).await;
        init(&first, "s-1");
        assert_eq!(retry.finish(first, Err(too_long())).unwrap(), None);
        let second = start(&mut retry, &mut reports).await;
        assert_eq!(reports, ["Context too long: compacting the conversation, then retrying"]);
        assert_eq!((second.resume.as_deref(), second.compacts_first()), (Some("s-1"), true));
        assert_eq!(second.prompt("do it", "smaller"), "do it");
        assert_eq!(
            retry.finish(second, Err(too_long())).unwrap_err().kind,
            ErrorKind::PROMPT_TOO_LONG
        );

        // A new conversation that overflowed after calling tools: compact, then continue.
        let mut retry = RetryLoop::new(policy(3), Resilience::default(), limits(300));
        let first = start(&mut retry, &mut Vec::new()).await;
        init(&first, "s-2");
        tool_use(&first);
        assert_eq!(retry.finish(first, Err(too_long())).unwrap(), None);
        let second = start(&mut retry, &mut Vec::new()).await;
        assert!(second.compacts_first());
        assert_eq!(second.prompt("do it", "smaller"), CONTINUE_PROMPT);
    }

    #[tokio::test]
    async fn a_prompt_too_long_with_nothing_to_fall_back_on_fails_at_once() {
        let mut retry = RetryLoop::new(policy(3), Resilience::default(), limits(300));
        let first = start(&mut retry, &mut Vec::new()).await;
        init(&first, "s-1");
        let err = retry.finish(first, Err(too_long())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::PROMPT_TOO_LONG);
        assert!(!err.message.contains("attempts"), "{err:?}");
    }

    #[tokio::test]
    async fn the_api_retry_after_is_a_lower_bound_for_the_wait() {
        let mut retry = RetryLoop::new(policy(3), Resilience::default(), limits(300));
        let attempt = start(&mut retry, &mut Vec::new()).await;
        let limited = ClaudeError::RateLimited {
            retry_after: Some(Duration::from_secs(20)),
            message: "slow down".into(),
        };
        assert_eq!(retry.finish(attempt, Err(limited)).unwrap(), None);
        let (delay, reason) = retry.backoff.clone().unwrap();
        assert_eq!((delay, reason.as_str()), (Duration::from_secs(20), "rate limited (429)"));
        // A retry-after beyond the run's deadline ends the run instead of waiting past it.
        let mut short = RetryLoop::new(policy(3), Resilience::default(), limits(10));
        let attempt = start(&mut short, &mut Vec::new()).await;
        let limited = ClaudeError::RateLimited {
            retry_after: Some(Duration::from_secs(20)),
            message: "slow down".into(),
        };
        assert_eq!(short.finish(attempt, Err(limited)).unwrap_err().kind, ErrorKind::RATE_LIMITED);
    }

    #[tokio::test]
    async fn a_credentials_failure_stops_the_attempt_and_is_not_retried() {
        let mut retry = RetryLoop::new(policy(3), Resilience::default(), limits(300));
        let attempt = start(&mut retry, &mut Vec::new()).await;
        let cancel = attempt.cancel();
        attempt.observe(&RunEvent::ApiRetry {
            attempt: 1,
            max_retries: 10,
            delay_ms: 500,
            status: Some(401),
            error: Some("authentication_failed".into()),
        });
        assert!(cancel.is_cancelled());
        let err = retry.finish(attempt, Err(ClaudeError::Cancelled)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::AUTH_FAILED);
        assert!(err.message.contains("HTTP 401"), "{err:?}");
        assert!(err.hint.contains("/login"), "{err:?}");
    }

    #[tokio::test]
    async fn a_cancelled_run_stays_cancelled() {
        let mut retry = RetryLoop::new(policy(3), Resilience::default(), limits(300));
        let cancel = CancellationToken::new();
        let attempt = retry.start(&cancel, &mut |_| {}).await.unwrap();
        cancel.cancel();
        assert!(attempt.cancel().is_cancelled(), "the attempt follows the run");
        let err = retry.finish(attempt, Err(ClaudeError::Cancelled)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::CANCELLED);
        assert_eq!(retry.start(&cancel, &mut |_| {}).await.unwrap_err().kind, ErrorKind::CANCELLED);
    }

    #[tokio::test]
    async fn overloads_switch_to_the_fallback_model() {
        let policy = RetryPolicy { fallback_model: Some("claude-haiku".into()), ..policy(3) };
        let mut retry = RetryLoop::new(policy, Resilience::default(), limits(300));
        let config = |attempt: &Attempt| {
            let options = crate::claude::args::CliOptions {
                model: Some("claude-opus".into()),
                fallback_model: Some("claude-haiku".into()),
                ..Default::default()
            };
            let config = SessionConfig {
                binary: "claude".into(),
                options,
                cwd: "/".into(),
                env: Vec::new(),
                handler: Arc::new(crate::claude::control::DenyAll),
            };
            attempt.configure(config).options
        };
        let first = start(&mut retry, &mut Vec::new()).await;
        assert_eq!(config(&first).model.as_deref(), Some("claude-opus"));
        init(&first, "s");
        assert_eq!(retry.finish(first, Err(overloaded())).unwrap(), None);
        let second = start(&mut retry, &mut Vec::new()).await;
        let options = config(&second);
        assert_eq!(options.model.as_deref(), Some("claude-haiku"));
        assert_eq!(options.fallback_model, None);
        assert_eq!(options.resume.as_deref(), Some("s"));
    }

    #[tokio::test]
    async fn the_run_timeout_covers_every_attempt_and_wait() {
        let mut retry = RetryLoop::new(policy(3), Resilience::default(), limits(10));
        let first = start(&mut retry, &mut Vec::new()).await;
        let first_limit = first.limits().timeout;
        assert!(first_limit <= Duration::from_secs(10) && first_limit > Duration::from_secs(9));
        // As if the first attempt took four seconds.
        retry.deadline -= Duration::from_secs(4);
        assert_eq!(retry.finish(first, Err(overloaded())).unwrap(), None);
        let second = start(&mut retry, &mut Vec::new()).await;
        assert!(second.limits().timeout <= Duration::from_secs(6));
        let err = retry
            .finish(
                second,
                Err(ClaudeError::Timeout { after: Duration::from_secs(5), idle: false }),
            )
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::TIMEOUT);
        assert!(err.message.contains("10s"), "{err:?}");
    }

    #[tokio::test]
    async fn a_missing_session_starts_over_without_resume() {
        let mut retry = RetryLoop::new(policy(3), Resilience::default(), limits(300));
        let first = start(&mut retry, &mut Vec::new()).await;
        init(&first, "lost");
        assert_eq!(retry.finish(first, Err(overloaded())).unwrap(), None);
        let second = start(&mut retry, &mut Vec::new()).await;
        let gone = ClaudeError::SessionNotFound { session_id: "lost".into() };
        assert_eq!(retry.finish(second, Err(gone)).unwrap(), None);
        let third = start(&mut retry, &mut Vec::new()).await;
        assert_eq!(third.resume.as_deref(), None);
        assert_eq!(third.prompt("original", "smaller"), "original");
    }

    #[tokio::test]
    async fn failures_feed_the_circuit_which_then_stops_retries() {
        let circuit = Arc::new(CircuitBreaker::new(CircuitConfig {
            failure_threshold: 2,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(30),
        }));
        let metrics = Arc::new(Metrics::new());
        let resilience =
            Resilience { circuit: Some(circuit.clone()), metrics: Some(metrics.clone()) };
        let mut retry = RetryLoop::new(policy(5), resilience, limits(300));
        for _ in 0..2 {
            let attempt = start(&mut retry, &mut Vec::new()).await;
            let failure = ClaudeError::ApiError { status: Some(500), message: "boom".into() };
            assert_eq!(retry.finish(attempt, Err(failure)).unwrap(), None);
        }
        let cancel = CancellationToken::new();
        let refused = retry.start(&cancel, &mut |_| {}).await.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::CIRCUIT_OPEN);
        assert!(refused.message.contains("API error 500"), "{refused:?}");
        assert_eq!(metrics.snapshot().retries.total, 2);
    }
}
