//! Admission of runs: who may start a CLI run now, who waits, and who is refused.
//!
//! - [`Scheduler`]: at most `maxConcurrent` runs at once. The rest wait in a queue that is first
//!   come, first served within a workspace and round robin between workspaces, so one workspace
//!   that fires 50 requests cannot starve another. An optional token bucket per workspace
//!   (`requestsPerMinute`, bursts of up to a minute's worth) delays a run before it joins the
//!   queue. A waiting run reports `Queued (n ahead)` and can be cancelled (drop its [`Ticket`]).
//! - [`CircuitBreaker`]: closed → open after N consecutive API failures within a window → after a
//!   cooldown, half-open: one probe run goes through; its success closes the circuit, its failure
//!   opens it again. While open, new runs fail at once with the cause and when it retries.
//!
//! The time-dependent parts take the current instant as a parameter, so tests control time.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::base::error::{ErrorKind, ServerError};

/// A bucket that has been full this long is forgotten (it would be full again anyway).
const IDLE_BUCKET: Duration = Duration::from_secs(120);

/// Decides which waiting run gets a free slot.
pub struct Scheduler {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Bumped on every change of the queue, so waiters recompute their position.
    changed: watch::Sender<u64>,
}

struct State {
    limit: usize,
    running: usize,
    next_id: u64,
    /// Workspaces with waiters, in the order they are served next.
    rotation: VecDeque<PathBuf>,
    /// Waiting tickets per workspace, oldest first.
    queues: HashMap<PathBuf, VecDeque<u64>>,
    /// Tickets that got a slot but have not picked it up yet.
    granted: HashSet<u64>,
    requests_per_minute: Option<u32>,
    buckets: HashMap<PathBuf, Bucket>,
}

/// Counts for `claude/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerStats {
    pub max_concurrent: usize,
    pub running: usize,
    pub queued: usize,
}

impl Shared {
    fn notify(&self) {
        self.changed.send_modify(|version| *version = version.wrapping_add(1));
    }

    fn release_slot(&self) {
        let mut state = self.state.lock();
        state.running = state.running.saturating_sub(1);
        state.dispatch();
        drop(state);
        self.notify();
    }
}

impl State {
    /// Hand free slots to waiters: round robin over workspaces, FIFO within one.
    fn dispatch(&mut self) {
        while self.running < self.limit {
            let Some(workspace) = self.rotation.pop_front() else { return };
            let Some(queue) = self.queues.get_mut(&workspace) else { continue };
            let Some(id) = queue.pop_front() else {
                self.queues.remove(&workspace);
                continue;
            };
            if queue.is_empty() {
                self.queues.remove(&workspace);
            } else {
                self.rotation.push_back(workspace);
            }
            self.granted.insert(id);
            self.running += 1;
        }
    }

    /// How many waiters will be served before ticket `id` of `workspace`.
    fn ahead_of(&self, workspace: &Path, id: u64) -> Option<usize> {
        let index = self.queues.get(workspace)?.iter().position(|&queued| queued == id)?;
        let own_turn = self.rotation.iter().position(|ws| ws == workspace)?;
        let ahead = self
            .rotation
            .iter()
            .enumerate()
            .map(|(turn, ws)| {
                let len = self.queues.get(ws).map_or(0, VecDeque::len);
                // Every workspace gets one slot per round; this ticket is served in round `index`.
                let earlier_rounds = len.min(index);
                let same_round_before = usize::from(turn < own_turn && len > index);
                earlier_rounds + same_round_before
            })
            .sum();
        Some(ahead)
    }

    fn remove_waiter(&mut self, workspace: &Path, id: u64) {
        let Some(queue) = self.queues.get_mut(workspace) else { return };
        queue.retain(|&queued| queued != id);
        if queue.is_empty() {
            self.queues.remove(workspace);
            self.rotation.retain(|ws| ws != workspace);
        }
    }

    fn queued(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }
}

impl Scheduler {
    pub fn new(max_concurrent: usize) -> Self {
        let state = State {
            limit: max_concurrent.max(1),
            running: 0,
            next_id: 1,
            rotation: VecDeque::new(),
            queues: HashMap::new(),
            granted: HashSet::new(),
            requests_per_minute: None,
            buckets: HashMap::new(),
        };
        Self { shared: Arc::new(Shared { state: Mutex::new(state), changed: watch::channel(0).0 }) }
    }

    /// Change `maxConcurrent`. A lower limit lets running runs finish; a higher one starts
    /// waiters at once.
    pub fn set_max_concurrent(&self, max_concurrent: usize) {
        let mut state = self.shared.state.lock();
        state.limit = max_concurrent.max(1);
        state.dispatch();
        drop(state);
        self.shared.notify();
    }

    /// Change `requestsPerMinute` (`None`: no limit). Buckets start over full.
    pub fn set_requests_per_minute(&self, requests_per_minute: Option<u32>) {
        let mut state = self.shared.state.lock();
        if state.requests_per_minute != requests_per_minute {
            state.requests_per_minute = requests_per_minute;
            state.buckets.clear();
        }
    }

    /// Ask for a slot for a run in `workspace`. Await [`Ticket::next_event`] until it is ready;
    /// dropping the ticket gives up its place (or its slot, if one was already granted).
    pub fn enqueue(&self, workspace: &Path) -> Ticket {
        let mut state = self.shared.state.lock();
        let id = state.next_id;
        state.next_id += 1;
        let rate_limited_until = match state.requests_per_minute {
            Some(per_minute) => {
                let now = Instant::now();
                state.buckets.retain(|_, bucket| !bucket.idle_since(now, IDLE_BUCKET));
                let bucket = state
                    .buckets
                    .entry(workspace.to_path_buf())
                    .or_insert_with(|| Bucket::full(per_minute, now));
                bucket.reserve(now)
            }
            None => None,
        };
        drop(state);
        let mut ticket = Ticket {
            shared: self.shared.clone(),
            changes: self.shared.changed.subscribe(),
            id,
            workspace: workspace.to_path_buf(),
            phase: Phase::RateLimited { until: rate_limited_until, reported: false },
            last_reported: None,
        };
        if rate_limited_until.is_none() {
            ticket.join_queue();
        }
        ticket
    }

    pub fn stats(&self) -> SchedulerStats {
        let state = self.shared.state.lock();
        SchedulerStats {
            max_concurrent: state.limit,
            running: state.running,
            queued: state.queued(),
        }
    }
}

/// What a waiting ticket has to say.
#[derive(Debug)]
pub enum TicketEvent {
    /// Still waiting; the text is for the progress bar.
    Waiting(String),
    /// The run may start; it holds the slot until the [`Slot`] is dropped.
    Ready(Slot),
}

enum Phase {
    /// Waiting for the workspace's token bucket (`until: None` means a token was free).
    RateLimited {
        until: Option<Instant>,
        reported: bool,
    },
    Queued,
    Done,
}

/// A run's place in line.
pub struct Ticket {
    shared: Arc<Shared>,
    changes: watch::Receiver<u64>,
    id: u64,
    workspace: PathBuf,
    phase: Phase,
    last_reported: Option<usize>,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").field("id", &self.id).field("workspace", &self.workspace).finish()
    }
}

impl Ticket {
    /// The next change: a new queue position, or the slot. Cancel-safe: dropping the future
    /// keeps the ticket's place. After `Ready`, it never returns again.
    pub async fn next_event(&mut self) -> TicketEvent {
        loop {
            match &mut self.phase {
                Phase::RateLimited { until: Some(until), reported } => {
                    let until = *until;
                    if !*reported {
                        *reported = true;
                        let secs =
                            until.saturating_duration_since(Instant::now()).as_secs_f64().ceil();
                        return TicketEvent::Waiting(format!(
                            "Rate limited (requestsPerMinute): starting in {secs:.0} s"
                        ));
                    }
                    tokio::time::sleep_until(until).await;
                    self.join_queue();
                }
                Phase::RateLimited { until: None, .. } => self.join_queue(),
                Phase::Queued => {
                    self.changes.borrow_and_update();
                    let ahead = {
                        let mut state = self.shared.state.lock();
                        if state.granted.remove(&self.id) {
                            self.phase = Phase::Done;
                            return TicketEvent::Ready(Slot { shared: self.shared.clone() });
                        }
                        state.ahead_of(&self.workspace, self.id)
                    };
                    if let Some(ahead) = ahead
                        && self.last_reported != Some(ahead)
                    {
                        self.last_reported = Some(ahead);
                        return TicketEvent::Waiting(format!("Queued ({ahead} ahead)"));
                    }
                    // The sender lives in `shared`, which this ticket keeps alive.
                    let _ = self.changes.changed().await;
                }
                Phase::Done => std::future::pending::<()>().await,
            }
        }
    }

    fn join_queue(&mut self) {
        let mut state = self.shared.state.lock();
        let queue = state.queues.entry(self.workspace.clone()).or_default();
        queue.push_back(self.id);
        if queue.len() == 1 {
            state.rotation.push_back(self.workspace.clone());
        }
        state.dispatch();
        drop(state);
        self.phase = Phase::Queued;
        self.shared.notify();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        match self.phase {
            Phase::RateLimited { until, .. } => {
                if until.is_some() {
                    let mut state = self.shared.state.lock();
                    if let Some(bucket) = state.buckets.get_mut(&self.workspace) {
                        bucket.refund();
                    }
                }
            }
            Phase::Queued => {
                let mut state = self.shared.state.lock();
                if state.granted.remove(&self.id) {
                    // Granted but never picked up: the slot goes to the next in line.
                    state.running = state.running.saturating_sub(1);
                } else {
                    state.remove_waiter(&self.workspace, self.id);
                }
                state.dispatch();
                drop(state);
                self.shared.notify();
            }
            Phase::Done => {}
        }
    }
}

/// Permission to run one CLI run; the slot frees when this is dropped.
pub struct Slot {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.release_slot();
    }
}

/// A token bucket holding up to a minute's worth of requests, refilled continuously. Tokens go
/// negative for reservations, so waiters are served in the order they asked.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(per_minute: u32, now: Instant) -> Self {
        let capacity = f64::from(per_minute.max(1));
        Self { capacity, per_second: capacity / 60.0, tokens: capacity, updated: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.updated = now;
    }

    /// Take a token: `None` if one was free, else when the reserved one becomes available.
    fn reserve(&mut self, now: Instant) -> Option<Instant> {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            return None;
        }
        Some(now + Duration::from_secs_f64(-self.tokens / self.per_second))
    }

    /// Give back a reservation that was not used (its run was cancelled while waiting).
    fn refund(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.capacity);
    }

    fn idle_since(&self, now: Instant, idle: Duration) -> bool {
        let mut probe = *self;
        probe.refill(now);
        probe.tokens >= probe.capacity && now.saturating_duration_since(self.updated) >= idle
    }
}

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

    fn ws(name: &str) -> PathBuf {
        PathBuf::from(format!("/ws/{name}"))
    }

    /// The next event of a ticket that must not be ready yet.
    async fn waiting(ticket: &mut Ticket) -> String {
        match ticket.next_event().await {
            TicketEvent::Waiting(message) => message,
            TicketEvent::Ready(_) => panic!("{ticket:?} got a slot too early"),
        }
    }

    /// Drive `ticket` until its slot arrives.
    async fn ready(ticket: &mut Ticket) -> Slot {
        loop {
            if let TicketEvent::Ready(slot) = ticket.next_event().await {
                return slot;
            }
        }
    }

    fn is_granted(ticket: &Ticket) -> bool {
        ticket.shared.state.lock().granted.contains(&ticket.id)
    }

    #[tokio::test]
    async fn at_most_max_concurrent_slots_are_handed_out() {
        let scheduler = Scheduler::new(2);
        let mut tickets: Vec<Ticket> = (0..4).map(|_| scheduler.enqueue(&ws("a"))).collect();
        let first = ready(&mut tickets[0]).await;
        let _second = ready(&mut tickets[1]).await;
        assert_eq!(waiting(&mut tickets[2]).await, "Queued (0 ahead)");
        assert_eq!(waiting(&mut tickets[3]).await, "Queued (1 ahead)");
        assert_eq!(scheduler.stats(), SchedulerStats { max_concurrent: 2, running: 2, queued: 2 });
        drop(first);
        let _third = ready(&mut tickets[2]).await;
        assert_eq!(waiting(&mut tickets[3]).await, "Queued (0 ahead)");
        assert_eq!(scheduler.stats().running, 2);
    }

    #[tokio::test]
    async fn workspaces_take_turns_and_each_is_first_come_first_served() {
        let scheduler = Scheduler::new(1);
        let running = scheduler.enqueue(&ws("a"));
        let mut a: Vec<Ticket> = (0..3).map(|_| scheduler.enqueue(&ws("a"))).collect();
        let mut b = scheduler.enqueue(&ws("b"));
        // b arrived last but is served second: one turn per workspace per round.
        assert_eq!(waiting(&mut b).await, "Queued (1 ahead)");
        assert_eq!(waiting(&mut a[2]).await, "Queued (3 ahead)");
        drop(running);
        assert!(is_granted(&a[0]));
        let slot = ready(&mut a[0]).await;
        drop(slot);
        assert!(is_granted(&b) && !is_granted(&a[1]));
        let slot = ready(&mut b).await;
        drop(slot);
        assert!(is_granted(&a[1]));
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_the_queue_and_others_move_up() {
        let scheduler = Scheduler::new(1);
        let _running = scheduler.enqueue(&ws("a"));
        let mut first = scheduler.enqueue(&ws("a"));
        let mut second = scheduler.enqueue(&ws("a"));
        assert_eq!(waiting(&mut first).await, "Queued (0 ahead)");
        assert_eq!(waiting(&mut second).await, "Queued (1 ahead)");
        drop(first);
        assert_eq!(waiting(&mut second).await, "Queued (0 ahead)");
        assert_eq!(scheduler.stats().queued, 1);
    }

    #[tokio::test]
    async fn a_slot_granted_to_a_cancelled_waiter_is_passed_on() {
        let scheduler = Scheduler::new(1);
        let running = scheduler.enqueue(&ws("a"));
        let first = scheduler.enqueue(&ws("b"));
        let mut second = scheduler.enqueue(&ws("c"));
        drop(running);
        assert!(is_granted(&first));
        drop(first);
        let _slot = ready(&mut second).await;
        assert_eq!(scheduler.stats(), SchedulerStats { max_concurrent: 1, running: 1, queued: 0 });
    }

    #[tokio::test]
    async fn raising_the_limit_starts_waiters_at_once() {
        let scheduler = Scheduler::new(1);
        let _running = scheduler.enqueue(&ws("a"));
        let mut waiter = scheduler.enqueue(&ws("a"));
        assert_eq!(waiting(&mut waiter).await, "Queued (0 ahead)");
        scheduler.set_max_concurrent(2);
        let _slot = ready(&mut waiter).await;
        assert_eq!(scheduler.stats().running, 2);
    }

    #[tokio::test]
    async fn two_hundred_waiters_are_all_served_exactly_once() {
        let scheduler = Arc::new(Scheduler::new(4));
        let served = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for n in 0..200u32 {
            let scheduler = scheduler.clone();
            let served = served.clone();
            tasks.push(tokio::spawn(async move {
                let mut ticket = scheduler.enqueue(&ws(&format!("w{}", n % 3)));
                let _slot = ready(&mut ticket).await;
                let running = scheduler.stats().running;
                served.lock().push((n, running));
                tokio::task::yield_now().await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let served = served.lock();
        let mut ids: Vec<u32> = served.iter().map(|(n, _)| *n).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..200).collect::<Vec<_>>());
        assert!(served.iter().all(|(_, running)| *running <= 4), "over the limit: {served:?}");
        assert_eq!(scheduler.stats(), SchedulerStats { max_concurrent: 4, running: 0, queued: 0 });
    }

    #[test]
    fn the_token_bucket_allows_a_minutes_burst_then_spaces_runs_out() {
        let t0 = Instant::now();
        let mut bucket = Bucket::full(2, t0);
        assert_eq!(bucket.reserve(t0), None);
        assert_eq!(bucket.reserve(t0), None);
        assert_eq!(bucket.reserve(t0), Some(t0 + Duration::from_secs(30)));
        // Reservations queue up behind each other.
        assert_eq!(bucket.reserve(t0), Some(t0 + Duration::from_secs(60)));
        // A minute later one token is free again (two were reserved ahead of it).
        let later = t0 + Duration::from_secs(120);
        assert_eq!(bucket.reserve(later), None);
        assert!(!bucket.idle_since(later, IDLE_BUCKET));
        assert!(bucket.idle_since(later + Duration::from_secs(180), IDLE_BUCKET));
    }

    #[test]
    fn a_cancelled_reservation_gives_its_token_back() {
        let t0 = Instant::now();
        let mut bucket = Bucket::full(1, t0);
        assert_eq!(bucket.reserve(t0), None);
        assert_eq!(bucket.reserve(t0), Some(t0 + Duration::from_secs(60)));
        bucket.refund();
        assert_eq!(bucket.reserve(t0), Some(t0 + Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn a_rate_limited_ticket_says_so_waits_and_then_queues() {
        let scheduler = Scheduler::new(10);
        // 60 a minute: a burst of 60, then one a second.
        scheduler.set_requests_per_minute(Some(60));
        let burst: Vec<Ticket> = (0..60).map(|_| scheduler.enqueue(&ws("a"))).collect();
        assert_eq!(scheduler.stats().running, 10);
        drop(burst);
        let mut limited = scheduler.enqueue(&ws("a"));
        assert_eq!(
            waiting(&mut limited).await,
            "Rate limited (requestsPerMinute): starting in 1 s"
        );
        let _slot = ready(&mut limited).await;
        // Another workspace has its own bucket.
        let mut other = scheduler.enqueue(&ws("b"));
        assert!(matches!(other.next_event().await, TicketEvent::Ready(_)));
    }

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
