//! Admission of runs: who may start a CLI run now and who waits (the circuit breaker, which
//! refuses runs while the API keeps failing, is breaker.rs).
//!
//! [`Scheduler`]: at most `maxConcurrent` runs at once. The rest wait in a queue that is first
//! come, first served within a workspace and round robin between workspaces, so one workspace
//! that fires 50 requests cannot starve another. An optional token bucket per workspace
//! (`requestsPerMinute`, bursts of up to a minute's worth) delays a run before it joins the
//! queue. A waiting run reports `Queued (n ahead)` and can be cancelled (drop its [`Ticket`]).
//!
//! The time-dependent parts take the current instant as a parameter, so tests control time.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

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

    /// How many runs wait for a slot, readable from anywhere (the warm pool starts nothing
    /// while any do).
    pub fn waiting_runs(&self) -> impl Fn() -> usize + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.state.lock().queued()
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
}
