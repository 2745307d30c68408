//! The circuit breaker: closed → open after N consecutive API failures within a window → after a
//! cooldown, half-open: one probe run goes through; its success closes the circuit, its failure
//! opens it again. While open, new runs fail at once with the cause and when it retries.
//!
//! The time-dependent parts take the current instant as a parameter, so tests control time.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::base::error::{ErrorKind, ServerError};

/// When the circuit opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitConfig {
    /// Consecutive API failures that open the circuit.
    pub failure_threshold: u32,
    /// Only failures this recent count.
    pub window: Duration,
    /// How long the circuit stays open before a probe run may go through.
    pub cooldown: Duration,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(30),
        }
    }
}

/// The result of an API call attempt, as far as the circuit cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiOutcome {
    /// The API answered.
    Success,
    /// The API failed in a way that suggests it is down (429, 529, 5xx, connection): the text
    /// names the failure.
    Failure(String),
    /// Says nothing about the API (cancelled, timed out, a bad request, a tool error).
    Neutral,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CircuitPhase {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct CircuitState {
    config: CircuitConfig,
    phase: CircuitPhase,
    /// Times of the consecutive failures since the last success.
    failures: VecDeque<Instant>,
    cause: Option<String>,
    times_opened: u64,
}

/// Fails runs fast while the API is down. See the module docs.
#[derive(Debug)]
pub struct CircuitBreaker {
    state: Mutex<CircuitState>,
}

/// Why a run was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitOpen {
    pub cause: String,
    /// Until a probe may go through (zero while a probe is running).
    pub retry_in: Duration,
    /// True when a probe run is checking whether the API is back.
    pub probing: bool,
}

impl CircuitOpen {
    pub fn to_error(&self) -> ServerError {
        let secs = self.retry_in.as_secs_f64().ceil().max(1.0);
        let (message, hint) = if self.probing {
            (
                format!(
                    "Claude requests are paused: the Anthropic API kept failing ({}); a test request is checking whether it is back",
                    self.cause
                ),
                "Try again in a few seconds.".to_owned(),
            )
        } else {
            (
                format!(
                    "Claude requests are paused: the Anthropic API kept failing ({}); the server tries it again in {secs:.0} s",
                    self.cause
                ),
                format!("Wait {secs:.0} s and run the action again; nothing was sent."),
            )
        };
        ServerError::new(ErrorKind::CIRCUIT_OPEN, message, hint)
    }
}

/// The circuit for `claude/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitSnapshot {
    /// `closed`, `open` or `halfOpen`.
    pub state: &'static str,
    pub consecutive_failures: usize,
    pub times_opened: u64,
    pub retry_in_secs: Option<u64>,
    pub cause: Option<String>,
}

/// Permission to make one attempt. Record its outcome with [`CircuitBreaker::record`]; an
/// admission dropped unrecorded counts as [`ApiOutcome::Neutral`].
#[derive(Debug)]
pub struct Admission {
    breaker: Arc<CircuitBreaker>,
    probe: bool,
    recorded: bool,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.settle(self.probe, ApiOutcome::Neutral, Instant::now());
        }
    }
}

impl CircuitBreaker {
    pub fn new(config: CircuitConfig) -> Self {
        Self {
            state: Mutex::new(CircuitState {
                config,
                phase: CircuitPhase::Closed,
                failures: VecDeque::new(),
                cause: None,
                times_opened: 0,
            }),
        }
    }

    pub fn set_config(&self, config: CircuitConfig) {
        self.state.lock().config = config;
    }

    /// Refuse early (e.g. before queueing) when no attempt could be admitted now. Admits nothing.
    pub fn check(&self) -> Result<(), CircuitOpen> {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Result<(), CircuitOpen> {
        let state = self.state.lock();
        match state.phase {
            CircuitPhase::Open { until } if now < until => Err(state.refusal(false, now)),
            CircuitPhase::HalfOpen { probing: true } => Err(state.refusal(true, now)),
            _ => Ok(()),
        }
    }

    /// Admit one attempt; after the cooldown the first caller becomes the probe.
    pub fn admit(self: &Arc<Self>) -> Result<Admission, CircuitOpen> {
        self.admit_at(Instant::now())
    }

    fn admit_at(self: &Arc<Self>, now: Instant) -> Result<Admission, CircuitOpen> {
        let mut state = self.state.lock();
        let probe = match state.phase {
            CircuitPhase::Closed => false,
            CircuitPhase::Open { until } if now < until => {
                return Err(state.refusal(false, now));
            }
            CircuitPhase::HalfOpen { probing: true } => return Err(state.refusal(true, now)),
            CircuitPhase::Open { .. } | CircuitPhase::HalfOpen { probing: false } => {
                state.phase = CircuitPhase::HalfOpen { probing: true };
                tracing::info!("circuit half-open: probing the API with one run");
                true
            }
        };
        Ok(Admission { breaker: self.clone(), probe, recorded: false })
    }

    /// Record the outcome of an admitted attempt.
    pub fn record(&self, admission: Admission, outcome: ApiOutcome) {
        self.record_at(admission, outcome, Instant::now());
    }

    /// The outcome of an attempt already recorded a success when it answered, learned after:
    /// its CLI failed ending the turn (a findings run). It counts as a failed attempt's would.
    pub fn record_late(&self, outcome: ApiOutcome) {
        if matches!(outcome, ApiOutcome::Failure(_)) {
            self.settle(false, outcome, Instant::now());
        }
    }

    fn record_at(&self, mut admission: Admission, outcome: ApiOutcome, now: Instant) {
        admission.recorded = true;
        self.settle(admission.probe, outcome, now);
    }

    fn settle(&self, probe: bool, outcome: ApiOutcome, now: Instant) {
        let mut state = self.state.lock();
        match outcome {
            ApiOutcome::Success => {
                if state.phase != CircuitPhase::Closed {
                    tracing::info!("circuit closed: the API answers again");
                }
                state.phase = CircuitPhase::Closed;
                state.failures.clear();
            }
            ApiOutcome::Failure(cause) => {
                state.cause = Some(cause);
                let window = state.config.window;
                state.failures.push_back(now);
                while state.failures.front().is_some_and(|at| now.duration_since(*at) > window) {
                    state.failures.pop_front();
                }
                let threshold = state.config.failure_threshold.max(1) as usize;
                let open = match state.phase {
                    CircuitPhase::Closed => state.failures.len() >= threshold,
                    CircuitPhase::HalfOpen { .. } => probe,
                    CircuitPhase::Open { .. } => false,
                };
                if open {
                    state.phase = CircuitPhase::Open { until: now + state.config.cooldown };
                    state.times_opened += 1;
                    tracing::warn!(
                        cause = state.cause.as_deref().unwrap_or(""),
                        cooldown_secs = state.config.cooldown.as_secs(),
                        "circuit open: refusing new runs"
                    );
                }
            }
            ApiOutcome::Neutral => {
                if probe && state.phase == (CircuitPhase::HalfOpen { probing: true }) {
                    // The probe told us nothing: the next run probes instead.
                    state.phase = CircuitPhase::HalfOpen { probing: false };
                }
            }
        }
    }

    pub fn snapshot(&self) -> CircuitSnapshot {
        self.snapshot_at(Instant::now())
    }

    fn snapshot_at(&self, now: Instant) -> CircuitSnapshot {
        let state = self.state.lock();
        let (name, retry_in) = match state.phase {
            CircuitPhase::Closed => ("closed", None),
            CircuitPhase::Open { until } => {
                let left = until.saturating_duration_since(now);
                ("open", Some(left.as_secs_f64().ceil() as u64))
            }
            CircuitPhase::HalfOpen { .. } => ("halfOpen", None),
        };
        CircuitSnapshot {
            state: name,
            consecutive_failures: state.failures.len(),
            times_opened: state.times_opened,
            retry_in_secs: retry_in,
            cause: if name == "closed" { None } else { state.cause.clone() },
        }
    }
}

impl CircuitState {
    fn refusal(&self, probing: bool, now: Instant) -> CircuitOpen {
        let retry_in = match self.phase {
            CircuitPhase::Open { until } => until.saturating_duration_since(now),
            _ => Duration::ZERO,
        };
        CircuitOpen {
            cause: self.cause.clone().unwrap_or_else(|| "repeated API errors".to_owned()),
            retry_in,
            probing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, cooldown_secs: u64) -> Arc<CircuitBreaker> {
        Arc::new(CircuitBreaker::new(CircuitConfig {
            failure_threshold: threshold,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(cooldown_secs),
        }))
    }

    fn fail(breaker: &Arc<CircuitBreaker>, cause: &str, now: Instant) {
        let admission = breaker.admit_at(now).unwrap();
        breaker.record_at(admission, ApiOutcome::Failure(cause.to_owned()), now);
    }

    #[test]
    fn the_circuit_opens_after_consecutive_failures_and_probes_after_the_cooldown() {
        let breaker = breaker(3, 30);
        let t0 = Instant::now();
        fail(&breaker, "API overloaded (529)", t0);
        fail(&breaker, "API overloaded (529)", t0);
        assert_eq!(breaker.snapshot_at(t0).state, "closed");
        fail(&breaker, "API error 500", t0);
        let refused = breaker.admit_at(t0).unwrap_err();
        assert_eq!(refused.cause, "API error 500");
        assert_eq!(refused.retry_in, Duration::from_secs(30));
        assert!(breaker.check_at(t0).is_err());
        let error = refused.to_error();
        assert_eq!(error.kind, ErrorKind::CIRCUIT_OPEN);
        assert!(
            error.message.contains("API error 500") && error.message.contains("in 30 s"),
            "{error:?}"
        );
        let snapshot = breaker.snapshot_at(t0 + Duration::from_secs(10));
        assert_eq!((snapshot.state, snapshot.retry_in_secs), ("open", Some(20)));

        let later = t0 + Duration::from_secs(30);
        assert!(breaker.check_at(later).is_ok());
        let probe = breaker.admit_at(later).unwrap();
        assert_eq!(breaker.snapshot_at(later).state, "halfOpen");
        // Only the probe goes through until it reports.
        assert!(breaker.admit_at(later).unwrap_err().probing);
        assert!(breaker.check_at(later).is_err());
        breaker.record_at(probe, ApiOutcome::Success, later);
        let snapshot = breaker.snapshot_at(later);
        assert_eq!((snapshot.state, snapshot.times_opened), ("closed", 1));
        assert!(breaker.admit_at(later).is_ok());
    }

    #[test]
    fn a_failed_probe_opens_the_circuit_again_and_a_neutral_one_passes_the_probe_on() {
        let breaker = breaker(1, 10);
        let t0 = Instant::now();
        fail(&breaker, "API error 503", t0);
        let later = t0 + Duration::from_secs(10);
        let probe = breaker.admit_at(later).unwrap();
        drop(probe); // cancelled: says nothing about the API
        let probe = breaker.admit_at(later).unwrap();
        breaker.record_at(probe, ApiOutcome::Failure("API error 503".into()), later);
        let snapshot = breaker.snapshot_at(later);
        assert_eq!((snapshot.state, snapshot.times_opened), ("open", 2));
        assert!(breaker.admit_at(later + Duration::from_secs(9)).is_err());
    }

    #[test]
    fn a_failure_after_an_answered_attempt_counts_and_a_neutral_one_does_not() {
        let breaker = breaker(2, 10);
        let answered = breaker.admit().unwrap();
        breaker.record(answered, ApiOutcome::Success);
        breaker.record_late(ApiOutcome::Neutral);
        assert_eq!(breaker.snapshot().consecutive_failures, 0);
        breaker.record_late(ApiOutcome::Failure("API error 500".into()));
        breaker.record_late(ApiOutcome::Failure("API error 500".into()));
        let snapshot = breaker.snapshot();
        assert_eq!((snapshot.state, snapshot.cause.as_deref()), ("open", Some("API error 500")));
    }

    #[test]
    fn a_success_resets_the_count_and_old_failures_expire() {
        let breaker = breaker(2, 10);
        let t0 = Instant::now();
        fail(&breaker, "x", t0);
        let ok = breaker.admit_at(t0).unwrap();
        breaker.record_at(ok, ApiOutcome::Success, t0);
        fail(&breaker, "x", t0);
        let later = t0 + Duration::from_secs(61);
        fail(&breaker, "x", later);
        let snapshot = breaker.snapshot_at(later);
        assert_eq!((snapshot.state, snapshot.consecutive_failures), ("closed", 1));
    }
}
