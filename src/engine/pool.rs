//! The warm pool: `claude` processes spawned and initialized before a request needs them.
//!
//! Starting the CLI costs 0.35–0.9 s of CPU and wall time before it can take a turn
//! (cli-protocol.md §8; `benches/speed.rs`). So the server keeps `warmPool` processes per key
//! started and initialized ahead of need, and a new run takes one instead of spawning. What is
//! left is the CLI's own start of a first turn (about 0.1 s to the first token on the pinned
//! versions, measured on the raw CLI) and claude-lsp's part (tens of ms).
//!
//! **What a warm process is bound to.** Everything on its command line and in its environment is
//! fixed at spawn: working directory, `--tools`, `--append-system-prompt` (the per-action rules),
//! model, MCP config, and so on. The pool therefore keys processes by the *whole spawn*
//! (`PoolKey`: binary, argv, cwd, environment, `initialize` request), derived from the very
//! [`SessionConfig`] a run would spawn with. A warm process serves a run only if it was spawned
//! exactly as that run would spawn its own, whatever the config holds now or gains later. In
//! practice the keys are (workspace, read-only profile) for analyze/review and (mirror slot 0,
//! edit profile) for generate/refactor, per settings: the addendum depends on the profile only.
//! The one part of a run that is not on the command line, its control handler (the run's
//! sandbox, its way to ask the user), is re-bound when the process is taken ([`RebindableHandler`]).
//!
//! **A process serves one conversation at a time, then is cleared for the next.** A process
//! that ran a turn holds that turn's context. After its run it either stays with its
//! conversation for a follow-up (conversations.rs; its key is refilled in the background at
//! once), or, when nobody keeps it, it is *given back*: cleared with `/clear` (no API call; the
//! CLI starts a new session, forgets the earlier turns and resets its cost totals) and returned
//! to its key if the key has room, or in place of a fresh process there (which then stops). A
//! conversation's process that is released later (idle timeout, least recently used) is given
//! back the same way. A used process answers its next first turn 2–3× sooner than a freshly
//! started one (README, "Speed"), and giving it back costs no spawn. So no fresh process is
//! started for a place a used process is coming back to: a conversation that keeps a process
//! first lets go of the one it evicts (which takes its place in the key at once), and only then
//! asks for a refill, which starts what is still missing.
//!
//! **Runs waiting for a slot** (the scheduler's queue) come first: while any wait, nothing is
//! started (the CPU is theirs), a finished run's process is given back rather than kept by its
//! conversation, and the key keeps a place for each waiting run, so the next run takes a process
//! cleared in 15–40 ms instead of spawning one. A burst then runs at most `maxConcurrent` CLIs
//! plus the idle ones. A process is never given back when its run failed or was cancelled, when the
//! conversation ran a tool that leaves state in the process (Bash: its shell and background
//! tasks; any tool but the file, web and structured-output ones), when its working directory
//! was replaced, or after [`MAX_USES`] conversations (its memory grows with use). Resumed runs
//! (`--resume`) and runs with a fixed `--session-id` are never pooled.
//!
//! **Bounded.** At most `warmPool` processes per key and [`MAX_KEYS`] keys (the least recently
//! used key is dropped first), so at most `warmPool × MAX_KEYS` idle processes; each is stopped
//! after `poolIdleSecs` unused. An idle, initialized CLI holds about 170 MB RSS (README, "Speed").
//! A process that died, or whose working directory was replaced since it started (a mirror
//! recreated), is discarded when found, never handed out.
//!
//! **Idle memory budget** (`maxIdleMemoryMb`): the idle processes, the pool's and those live
//! conversations keep ([`IdleHolder`]), together hold at most that much RSS, each measured with
//! its process tree (`/proc`; on other systems nothing is measured and there is no budget).
//! Whenever one becomes idle, the least recently used go first until the rest fit.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::claude::args::CliOptions;
use crate::claude::control::{ControlHandler, InitializeRequest, RebindableHandler};
use crate::claude::errors::ClaudeError;
use crate::claude::session::{ClaudeSession, SessionConfig};
use crate::engine::permissions::tools::{EDIT_TOOLS, READ_TOOLS};
use crate::model::usage::CliTotals;

/// The most keys the pool keeps processes for; the least recently used one goes first.
pub const MAX_KEYS: usize = 4;
/// The most conversations one process serves; then it is replaced by a fresh one (an idle CLI
/// grows from ~170 MB to ~240 MB over its first thirty turns: cli-protocol.md §8).
pub const MAX_USES: u32 = 10;
/// How long `/clear` may take before a given-back process is shut down instead (it takes
/// 15–40 ms).
const CLEAR_TIMEOUT: Duration = Duration::from_secs(10);
/// How long preparing a warm process's next turn may take (it takes 15–60 ms).
const PREPARE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a warm process may take to answer `initialize` (a cold start takes under a second).
const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(30);

/// The pool's settings: `warmPool` and `poolIdleSecs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Warm processes kept per key; 0 disables the pool.
    pub per_key: usize,
    /// A warm process unused for this long is stopped.
    pub idle: Duration,
}

impl PoolLimits {
    pub fn from_settings(settings: &crate::model::settings::Settings) -> Self {
        Self { per_key: settings.warm_pool, idle: Duration::from_secs(settings.pool_idle_secs) }
    }
}

/// What the pool holds and how it has been used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Initialized processes waiting for a run.
    pub warm: usize,
    /// Processes being started, or cleared after a run.
    pub filling: usize,
    /// Runs served by a warm process.
    pub hits: u64,
    /// Runs that had to spawn their own process.
    pub misses: u64,
    /// Used processes cleared and returned for another run.
    pub recycled: u64,
    /// CLI processes started, by fills and by runs that found none warm.
    pub started: u64,
    /// Started processes stopped without serving a run: a start cancelled or a fresh process
    /// displaced by a used one coming back, one beyond the limits, one unused for `poolIdleSecs`.
    pub discarded: u64,
}

/// Everything that makes two spawns interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    binary: PathBuf,
    args: Vec<OsString>,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    initialize: String,
}

impl PoolKey {
    fn of(config: &SessionConfig, initialize: &InitializeRequest) -> Self {
        let mut options = config.options.clone();
        // The driver always sets this at spawn; the key must describe the real command line.
        options.permission_prompt_tool_stdio = true;
        Self {
            binary: config.binary.clone(),
            args: options.to_args(),
            cwd: config.cwd.clone(),
            env: config.env.clone(),
            initialize: initialize.to_request().to_string(),
        }
    }
}

/// A run that continues a conversation, or pins a session id, needs a process of its own.
fn is_poolable(options: &CliOptions) -> bool {
    options.resume.is_none()
        && options.session_id.is_none()
        && !options.continue_session
        && !options.fork_session
}

/// Whether a conversation that called `tool` leaves its process fit for another conversation
/// once cleared: the file tools, the web tools and structured answers act through the file
/// system or the network only. Bash keeps a shell (its working directory, background tasks);
/// anything else is unknown, so not trusted.
pub fn leaves_no_state(tool: &str) -> bool {
    const STATELESS: &[&str] = &["WebFetch", "WebSearch", "StructuredOutput"];
    READ_TOOLS.iter().chain(EDIT_TOOLS).chain(STATELESS).any(|stateless| *stateless == tool)
}

/// Whether a cleared process would start its next run with part of `--max-budget-usd` spent:
/// older CLIs (2.1.197) keep their cost totals across `/clear`, and the budget counts them.
fn spends_an_earlier_budget(totals: &CliTotals, options: &CliOptions) -> bool {
    options.max_budget_usd.is_some() && totals.cost_usd > 0.0
}

/// The directory a process was started in, as the file system knows it: a directory removed and
/// created again at the same path is a different directory.
fn directory_identity(path: &Path) -> Option<(u64, u64)> {
    crate::base::platform::file_identity(path)
}

/// An initialized process waiting for a run.
struct WarmProcess {
    id: u64,
    session: ClaudeSession,
    handler: Arc<RebindableHandler>,
    cwd_identity: Option<(u64, u64)>,
    idle_since: Instant,
    /// Conversations it has served.
    uses: u32,
    /// Its running cost totals (zero unless the CLI keeps them across `/clear`).
    totals: CliTotals,
}

impl WarmProcess {
    fn usable(&self, cwd: &Path) -> bool {
        self.session.is_alive()
            && !self.session.is_busy()
            && self.cwd_identity.is_some()
            && directory_identity(cwd) == self.cwd_identity
    }
}

/// How to spawn more processes for a key.
#[derive(Clone)]
struct Template {
    config: SessionConfig,
    initialize: InitializeRequest,
}

struct KeyEntry {
    template: Template,
    ready: VecDeque<WarmProcess>,
    /// Places being filled: fresh processes starting, and used ones being cleared.
    filling: usize,
    /// The fresh processes still starting (by process id), each cancellable: a used process
    /// that comes back takes such a place rather than be shut down.
    starting: Vec<(u64, CancellationToken)>,
    last_used: Instant,
}

impl KeyEntry {
    /// A ready process that never ran a turn (a used one may take its place).
    fn has_fresh(&self) -> bool {
        self.ready.iter().any(|process| process.uses == 0)
    }

    /// Make room for a used process coming back: there is a free place (runs waiting for a slot
    /// count as places: each will want a process), a fresh ready process it will displace, or a
    /// fresh process still starting, which is cancelled here (a used process answers its first
    /// turn sooner, and it is ready now).
    fn make_room(&mut self, places: usize) -> bool {
        if self.ready.len() + self.filling < places || self.has_fresh() {
            return true;
        }
        match self.starting.pop() {
            Some((_, start)) => {
                start.cancel();
                true
            }
            None => false,
        }
    }
}

struct PoolState {
    limits: PoolLimits,
    /// `maxIdleMemoryMb` in bytes.
    idle_memory_budget: Option<u64>,
    keys: HashMap<PoolKey, KeyEntry>,
    /// Workspaces warmed already (so only the first didOpen of a workspace fills).
    seen_workspaces: HashSet<PathBuf>,
}

struct Inner {
    state: Mutex<PoolState>,
    /// Signalled whenever a fill ends, so requests waiting for one look again.
    fill_done: Notify,
    closed: CancellationToken,
    /// Fills and background shutdowns; [`WarmPool::shutdown`] waits for all of them.
    tasks: TaskTracker,
    next_id: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    recycled: AtomicU64,
    started: AtomicU64,
    discarded: AtomicU64,
    /// How many runs wait in the scheduler's queue (none when nothing was connected).
    waiting_runs: std::sync::OnceLock<Box<dyn Fn() -> usize + Send + Sync>>,
    /// The other idle processes the memory budget covers (live conversations').
    idle_elsewhere: std::sync::OnceLock<Weak<dyn IdleHolder>>,
}

/// An idle CLI process the pool does not hold (a live conversation's), as the idle memory budget
/// sees it.
#[derive(Debug, Clone)]
pub struct IdleProcess {
    /// What its holder knows it by.
    pub handle: String,
    pub pid: u32,
    pub idle_since: Instant,
}

/// Holds idle CLI processes outside the pool that the idle memory budget also covers.
pub trait IdleHolder: Send + Sync {
    fn idle_processes(&self) -> Vec<IdleProcess>;
    /// Stop idle process `handle` (it does not fit in the budget).
    fn stop_idle(&self, handle: &str);
}

impl Inner {
    /// Shut a process down in the background; the pool's shutdown waits for it.
    fn retire(&self, session: ClaudeSession) {
        self.tasks.spawn(session.shutdown());
    }

    /// Retire a warm process, counting it as discarded when it never served a run.
    fn retire_warm(&self, process: WarmProcess) {
        if process.uses == 0 {
            self.discarded.fetch_add(1, Ordering::Relaxed);
        }
        self.retire(process.session);
    }

    /// Runs waiting for a slot: while there are any, the pool starts nothing (the CPU is theirs,
    /// and the processes of runs that finish go to them), and keeps a used process for each.
    fn runs_waiting(&self) -> usize {
        self.waiting_runs.get().map_or(0, |waiting| waiting())
    }
}

/// The pool. Cloning gives another handle to the same pool.
#[derive(Clone)]
pub struct WarmPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WarmPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmPool").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl WarmPool {
    pub fn new(limits: PoolLimits) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(PoolState {
                    limits,
                    idle_memory_budget: None,
                    keys: HashMap::new(),
                    seen_workspaces: HashSet::new(),
                }),
                fill_done: Notify::new(),
                closed: CancellationToken::new(),
                tasks: TaskTracker::new(),
                next_id: AtomicU64::new(1),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                recycled: AtomicU64::new(0),
                started: AtomicU64::new(0),
                discarded: AtomicU64::new(0),
                waiting_runs: std::sync::OnceLock::new(),
                idle_elsewhere: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Tell the pool how many runs wait for a slot (the scheduler's queue); set once.
    pub fn count_waiting_runs(&self, waiting: impl Fn() -> usize + Send + Sync + 'static) {
        let _ = self.inner.waiting_runs.set(Box::new(waiting));
    }

    /// Runs waiting for a slot now: a finished run's process should go to them, not stay idle.
    pub fn runs_waiting(&self) -> usize {
        self.inner.runs_waiting()
    }

    /// Let the idle memory budget cover `holder`'s idle processes too; set once.
    pub fn share_idle_memory_with(&self, holder: Weak<dyn IdleHolder>) {
        let _ = self.inner.idle_elsewhere.set(holder);
    }

    /// Apply `maxIdleMemoryMb` (`None`: no budget), at once.
    pub fn set_idle_memory_budget(&self, megabytes: Option<u64>) {
        self.inner.state.lock().idle_memory_budget = megabytes.map(|mb| mb.saturating_mul(1 << 20));
        self.check_idle_memory();
    }

    /// An idle process was added: stop the least recently used idle ones until all fit in the
    /// budget (in the background: measuring reads `/proc`).
    pub fn check_idle_memory(&self) {
        check_idle_memory(&self.inner);
    }

    /// True when runs should go through the pool: it keeps processes and is not shut down.
    pub fn is_enabled(&self) -> bool {
        !self.inner.closed.is_cancelled() && self.inner.state.lock().limits.per_key > 0
    }

    /// Apply new `warmPool` / `poolIdleSecs` values. Processes beyond a lowered `warmPool` are
    /// stopped; a raised one fills on the next use.
    pub fn set_limits(&self, limits: PoolLimits) {
        let surplus: Vec<WarmProcess> = {
            let mut state = self.inner.state.lock();
            state.limits = limits;
            let mut surplus = Vec::new();
            for entry in state.keys.values_mut() {
                while entry.ready.len() > limits.per_key {
                    surplus.extend(entry.ready.pop_back());
                }
            }
            surplus
        };
        for process in surplus {
            self.inner.retire_warm(process);
        }
    }

    /// Stop every warm process and forget every key (the settings they were spawned with
    /// changed). Fills under way discard their process when they finish.
    pub fn clear(&self) {
        let drained: Vec<WarmProcess> = {
            let mut state = self.inner.state.lock();
            state.seen_workspaces.clear();
            state.keys.drain().flat_map(|(_, entry)| entry.ready).collect()
        };
        for process in drained {
            self.inner.retire_warm(process);
        }
    }

    /// True the first time `workspace` is seen (since the pool was created or cleared).
    pub fn first_sight(&self, workspace: &Path) -> bool {
        self.inner.state.lock().seen_workspaces.insert(workspace.to_path_buf())
    }

    /// Top the key of `template` up to `warmPool` processes, in the background.
    pub fn fill(&self, template: SessionConfig) {
        self.fill_with(template, InitializeRequest::default());
    }

    /// [`WarmPool::fill`] for processes that need a particular `initialize` request (hooks,
    /// SDK MCP servers); the request is part of the key.
    /// Nothing starts while runs wait for a slot: they would compete with it for the CPU, and
    /// each run that finishes hands its process to the next (see [`Returnable::give_back`]).
    pub fn fill_with(&self, config: SessionConfig, initialize: InitializeRequest) {
        if !is_poolable(&config.options)
            || self.inner.closed.is_cancelled()
            || self.inner.runs_waiting() > 0
        {
            return;
        }
        let key = PoolKey::of(&config, &initialize);
        let template = Template { config, initialize };
        let (missing, evicted) = {
            let mut state = self.inner.state.lock();
            let per_key = state.limits.per_key;
            if per_key == 0 {
                return;
            }
            let now = Instant::now();
            let entry = state.keys.entry(key.clone()).or_insert_with(|| KeyEntry {
                template: template.clone(),
                ready: VecDeque::new(),
                filling: 0,
                starting: Vec::new(),
                last_used: now,
            });
            // The latest run's handler is the best guess for whatever the process meets before
            // it is taken.
            entry.template = template.clone();
            entry.last_used = now;
            let missing = per_key.saturating_sub(entry.ready.len() + entry.filling);
            entry.filling += missing;
            let starts: Vec<(u64, CancellationToken)> = (0..missing)
                .map(|_| {
                    (self.inner.next_id.fetch_add(1, Ordering::Relaxed), CancellationToken::new())
                })
                .collect();
            entry.starting.extend(starts.iter().cloned());
            (starts, evict_least_recent(&mut state))
        };
        for process in evicted {
            self.inner.retire_warm(process);
        }
        for (id, start) in missing {
            let fill = fill_one(self.inner.clone(), key.clone(), template.clone(), id, start);
            self.inner.tasks.spawn(fill);
        }
    }

    /// A process for a new run with `config`: a warm one of the same key (its handler re-bound
    /// to `config.handler`), else a freshly spawned one. When a fill for the key is under way
    /// (or a used process is being cleared for it), waiting for it beats starting another.
    pub async fn acquire(
        &self,
        config: SessionConfig,
        initialize: &InitializeRequest,
        cancel: &CancellationToken,
    ) -> Result<PooledSession, ClaudeError> {
        let poolable = is_poolable(&config.options);
        let key = PoolKey::of(&config, initialize);
        let template = Template { config, initialize: initialize.clone() };
        if poolable
            && let Some(process) = self.take_warm(&key, &template.config.cwd, cancel).await?
        {
            process.handler.bind(template.config.handler.clone());
            self.inner.hits.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                pid = process.session.pid(),
                uses = process.uses,
                "a warm Claude Code process serves the run"
            );
            let returnable = Returnable {
                pool: self.clone(),
                key,
                template,
                handler: process.handler,
                cwd_identity: process.cwd_identity,
                uses: process.uses,
                refill_owed: true,
            };
            return Ok(PooledSession {
                session: process.session,
                warm: true,
                totals: process.totals,
                returnable: Some(returnable),
            });
        }
        self.inner.misses.fetch_add(1, Ordering::Relaxed);
        let handler = RebindableHandler::new(template.config.handler.clone());
        let cwd_identity = directory_identity(&template.config.cwd);
        let config = SessionConfig {
            handler: handler.clone() as Arc<dyn ControlHandler>,
            ..template.config.clone()
        };
        let session = ClaudeSession::spawn(config).await?;
        self.inner.started.fetch_add(1, Ordering::Relaxed);
        if *initialize != InitializeRequest::default()
            && let Err(err) = session.initialize(initialize.clone(), INITIALIZE_TIMEOUT).await
        {
            self.inner.retire(session);
            return Err(err);
        }
        let returnable = poolable.then(|| Returnable {
            pool: self.clone(),
            key,
            template,
            handler,
            cwd_identity,
            uses: 0,
            refill_owed: true,
        });
        Ok(PooledSession { session, warm: false, totals: CliTotals::default(), returnable })
    }

    /// Stop filling and shut every process down, waiting (bounded by the driver's shutdown
    /// ladder) until they are gone. Runs that hold a process finish it themselves.
    pub async fn shutdown(&self) {
        self.inner.closed.cancel();
        let drained: Vec<WarmProcess> = {
            let mut state = self.inner.state.lock();
            state.keys.drain().flat_map(|(_, entry)| entry.ready).collect()
        };
        for process in drained {
            self.inner.retire(process.session);
        }
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    pub fn stats(&self) -> PoolStats {
        let state = self.inner.state.lock();
        PoolStats {
            warm: state.keys.values().map(|entry| entry.ready.len()).sum(),
            filling: state.keys.values().map(|entry| entry.filling).sum(),
            hits: self.inner.hits.load(Ordering::Relaxed),
            misses: self.inner.misses.load(Ordering::Relaxed),
            recycled: self.inner.recycled.load(Ordering::Relaxed),
            started: self.inner.started.load(Ordering::Relaxed),
            discarded: self.inner.discarded.load(Ordering::Relaxed),
        }
    }

    /// Process ids of the warm processes, for diagnostics and tests.
    pub fn warm_pids(&self) -> Vec<u32> {
        let state = self.inner.state.lock();
        state.keys.values().flat_map(|entry| entry.ready.iter().map(|p| p.session.pid())).collect()
    }

    /// Wait until no fill is under way (each fill ends within the `initialize` timeout).
    pub async fn settled(&self) {
        loop {
            let notified = self.inner.fill_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.stats().filling == 0 {
                return;
            }
            notified.await;
        }
    }

    /// A usable warm process of `key`; waits for a fill under way rather than starting another
    /// process beside it: that start would do the same work on a busier machine and be
    /// discarded or kept idle. Each fill ends within its own timeouts, so the wait is bounded.
    async fn take_warm(
        &self,
        key: &PoolKey,
        cwd: &Path,
        cancel: &CancellationToken,
    ) -> Result<Option<WarmProcess>, ClaudeError> {
        loop {
            let notified = self.inner.fill_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (found, stale, filling) = self.take_ready(key, cwd);
            for process in stale {
                self.inner.retire_warm(process);
            }
            if found.is_some() || filling == 0 {
                return Ok(found);
            }
            tokio::select! {
                () = &mut notified => {}
                () = cancel.cancelled() => return Err(ClaudeError::Cancelled),
            }
        }
    }

    /// The first usable warm process of `key`, the unusable ones met on the way, and how many
    /// fills for the key are under way.
    fn take_ready(
        &self,
        key: &PoolKey,
        cwd: &Path,
    ) -> (Option<WarmProcess>, Vec<WarmProcess>, usize) {
        let mut state = self.inner.state.lock();
        let Some(entry) = state.keys.get_mut(key) else { return (None, Vec::new(), 0) };
        entry.last_used = Instant::now();
        let mut stale = Vec::new();
        while let Some(process) = entry.ready.pop_front() {
            if process.usable(cwd) {
                return (Some(process), stale, entry.filling);
            }
            tracing::debug!(
                pid = process.session.pid(),
                "discarding a warm process that died or lost its directory"
            );
            stale.push(process);
        }
        (None, stale, entry.filling)
    }
}

/// Drop the least recently used keys beyond [`MAX_KEYS`]; returns their processes.
fn evict_least_recent(state: &mut PoolState) -> Vec<WarmProcess> {
    let mut evicted = Vec::new();
    while state.keys.len() > MAX_KEYS {
        let oldest =
            state.keys.iter().min_by_key(|(_, entry)| entry.last_used).map(|(key, _)| key.clone());
        let Some(entry) = oldest.and_then(|key| state.keys.remove(&key)) else { break };
        evicted.extend(entry.ready);
    }
    evicted
}

/// Spawn and initialize one process for `key`, then offer it to the pool.
async fn fill_one(
    inner: Arc<Inner>,
    key: PoolKey,
    template: Template,
    id: u64,
    start_cancelled: CancellationToken,
) {
    let handler = RebindableHandler::new(template.config.handler.clone());
    let config =
        SessionConfig { handler: handler.clone() as Arc<dyn ControlHandler>, ..template.config };
    let cwd_identity = directory_identity(&config.cwd);
    let spawned = std::sync::atomic::AtomicBool::new(false);
    let start = async {
        let session = ClaudeSession::spawn(config).await?;
        inner.started.fetch_add(1, Ordering::Relaxed);
        spawned.store(true, Ordering::Relaxed);
        session.initialize(template.initialize, INITIALIZE_TIMEOUT).await?;
        prepare_next_turn(&session).await;
        Ok::<_, ClaudeError>(session)
    };
    // A cancelled start drops the half-started process, which kills it.
    let started = tokio::select! {
        started = start => started,
        () = inner.closed.cancelled() => Err(ClaudeError::Cancelled),
        () = start_cancelled.cancelled() => Err(ClaudeError::Cancelled),
    };
    let (rejected, idle) = {
        let mut state = inner.state.lock();
        let per_key = state.limits.per_key;
        let idle = state.limits.idle;
        let mut entry = state.keys.get_mut(&key);
        if let Some(entry) = entry.as_deref_mut() {
            entry.starting.retain(|(starting, _)| *starting != id);
        }
        match (started, entry) {
            (Ok(session), Some(entry)) => {
                entry.filling = entry.filling.saturating_sub(1);
                if entry.ready.len() < per_key && !inner.closed.is_cancelled() {
                    tracing::debug!(pid = session.pid(), "a warm Claude Code process is ready");
                    let idle_since = Instant::now();
                    entry.ready.push_back(WarmProcess {
                        id,
                        session,
                        handler,
                        cwd_identity,
                        idle_since,
                        uses: 0,
                        totals: CliTotals::default(),
                    });
                    (None, Some(idle))
                } else {
                    (Some(session), None)
                }
            }
            // The key was cleared or evicted while the process started.
            (Ok(session), None) => (Some(session), None),
            (Err(err), entry) => {
                if let Some(entry) = entry {
                    entry.filling = entry.filling.saturating_sub(1);
                }
                if err == ClaudeError::Cancelled {
                    if spawned.load(Ordering::Relaxed) {
                        inner.discarded.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    tracing::warn!(error = %err, "could not start a warm Claude Code process");
                }
                (None, None)
            }
        }
    };
    if let Some(session) = rejected {
        inner.discarded.fetch_add(1, Ordering::Relaxed);
        inner.retire(session);
    }
    if let Some(idle) = idle {
        tokio::spawn(expire_when_idle(Arc::downgrade(&inner), key, id, idle));
        check_idle_memory(&inner);
    }
    inner.fill_done.notify_waiters();
}

/// [`WarmPool::check_idle_memory`].
fn check_idle_memory(inner: &Arc<Inner>) {
    let Some(budget) = inner.state.lock().idle_memory_budget else { return };
    let inner = inner.clone();
    inner.tasks.clone().spawn(async move {
        let measured = tokio::task::spawn_blocking(move || keep_idle_memory_within(&inner, budget));
        if let Err(err) = measured.await {
            tracing::warn!(%err, "could not measure the idle processes' memory");
        }
    });
}

/// Who holds an idle process, for the budget.
enum Holder {
    Pool(PoolKey, u64),
    Elsewhere(String),
}

/// Stop idle processes, least recently used first, until the rest hold at most `budget` bytes.
/// Runs on a blocking thread.
fn keep_idle_memory_within(inner: &Arc<Inner>, budget: u64) {
    let mut idle: Vec<(Instant, u32, Holder)> = {
        let state = inner.state.lock();
        state
            .keys
            .iter()
            .flat_map(|(key, entry)| {
                entry.ready.iter().map(|process| {
                    let holder = Holder::Pool(key.clone(), process.id);
                    (process.idle_since, process.session.pid(), holder)
                })
            })
            .collect()
    };
    let elsewhere = inner.idle_elsewhere.get().and_then(Weak::upgrade);
    if let Some(elsewhere) = &elsewhere {
        idle.extend(
            elsewhere.idle_processes().into_iter().map(|process| {
                (process.idle_since, process.pid, Holder::Elsewhere(process.handle))
            }),
        );
    }
    idle.sort_by_key(|(since, _, _)| *since);
    let sizes: Vec<Option<u64>> =
        idle.iter().map(|(_, pid, _)| crate::base::platform::tree_rss_bytes(*pid)).collect();
    let mut total: u64 = sizes.iter().flatten().sum();
    for ((_, pid, holder), size) in idle.into_iter().zip(sizes) {
        if total <= budget {
            break;
        }
        // Not measurable (gone, or no `/proc` here): not counted, not stopped.
        let Some(size) = size else { continue };
        total -= size;
        tracing::info!(
            pid,
            rss_mb = size >> 20,
            "stopping an idle Claude Code process: maxIdleMemoryMb"
        );
        match holder {
            Holder::Pool(key, id) => {
                let stopped = inner.state.lock().keys.get_mut(&key).and_then(|entry| {
                    let index = entry.ready.iter().position(|process| process.id == id)?;
                    entry.ready.remove(index)
                });
                if let Some(process) = stopped {
                    inner.retire_warm(process);
                }
            }
            Holder::Elsewhere(handle) => {
                if let Some(elsewhere) = &elsewhere {
                    elsewhere.stop_idle(&handle);
                }
            }
        }
    }
}

/// Let a warm process build its next turn's request ahead of it (best effort: a CLI that cannot
/// is only a little slower to start that turn).
async fn prepare_next_turn(session: &ClaudeSession) {
    if let Err(err) = session.prepare_next_turn(PREPARE_TIMEOUT).await {
        tracing::debug!(pid = session.pid(), error = %err, "could not prepare the next turn");
    }
}

/// Stop the warm process `id` once it has been idle for `poolIdleSecs`. Holds the pool weakly, so
/// a dropped pool is not kept alive by its timers.
async fn expire_when_idle(pool: Weak<Inner>, key: PoolKey, id: u64, mut wait: Duration) {
    loop {
        let closed = match pool.upgrade() {
            Some(inner) => inner.closed.clone(),
            None => return,
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = closed.cancelled() => return,
        }
        let Some(inner) = pool.upgrade() else { return };
        let expired = {
            let mut state = inner.state.lock();
            let idle = state.limits.idle;
            let Some(entry) = state.keys.get_mut(&key) else { return };
            let Some(index) = entry.ready.iter().position(|process| process.id == id) else {
                return;
            };
            let idle_for = entry.ready[index].idle_since.elapsed();
            if idle_for < idle {
                // poolIdleSecs was raised since the timer started.
                wait = idle - idle_for;
                None
            } else {
                entry.ready.remove(index)
            }
        };
        if let Some(process) = expired {
            tracing::debug!(
                pid = process.session.pid(),
                "stopping a warm process unused for poolIdleSecs"
            );
            inner.retire_warm(process);
            return;
        }
    }
}

/// A process taken from the pool (or spawned for want of one) for one new conversation.
pub struct PooledSession {
    session: ClaudeSession,
    warm: bool,
    /// The process's running cost totals before the run.
    totals: CliTotals,
    /// How it goes back; `None` for runs the pool does not serve.
    returnable: Option<Returnable>,
}

impl std::fmt::Debug for PooledSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledSession")
            .field("pid", &self.session.pid())
            .field("warm", &self.warm)
            .finish_non_exhaustive()
    }
}

impl PooledSession {
    pub fn session(&self) -> &ClaudeSession {
        &self.session
    }

    /// True when the process was started ahead of the run.
    pub fn was_warm(&self) -> bool {
        self.warm
    }

    /// The process's running cost totals before the run: what its result's totals are measured
    /// from (a CLI that keeps its totals across `/clear` reports every conversation's cost).
    pub fn totals(&self) -> &CliTotals {
        &self.totals
    }

    /// The process, its running totals, and how it goes back to the pool (for a conversation
    /// that keeps it).
    pub fn into_parts(self) -> (ClaudeSession, CliTotals, Option<Returnable>) {
        (self.session, self.totals, self.returnable)
    }

    /// The run is over and nobody keeps the process: see [`Returnable::give_back`].
    pub fn give_back(self, clean: bool) {
        match self.returnable {
            Some(returnable) => returnable.give_back(self.session, clean),
            None => {
                tokio::spawn(self.session.shutdown());
            }
        }
    }

    /// The run failed: shut the process down, see [`Returnable::retire`].
    pub fn finish(self) {
        match self.returnable {
            Some(returnable) => returnable.retire(self.session),
            None => {
                tokio::spawn(self.session.shutdown());
            }
        }
    }
}

/// What the pool needs to take a used process back: its key, how to replace it, and whether the
/// key is still owed a replacement for it.
pub struct Returnable {
    pool: WarmPool,
    key: PoolKey,
    template: Template,
    /// The process's own handler, re-bound to each run it serves.
    handler: Arc<RebindableHandler>,
    cwd_identity: Option<(u64, u64)>,
    /// Conversations served before this one.
    uses: u32,
    /// The key lost this process when a run took it, and has not been topped up since.
    refill_owed: bool,
}

impl std::fmt::Debug for Returnable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Returnable")
            .field("cwd", &self.key.cwd)
            .field("uses", &self.uses)
            .field("refill_owed", &self.refill_owed)
            .finish_non_exhaustive()
    }
}

impl Returnable {
    /// A conversation keeps the process for its next turn: top its key up now, so the next new
    /// run finds a warm process.
    pub fn refill(&mut self) {
        if std::mem::take(&mut self.refill_owed) {
            let Template { config, initialize } = self.template.clone();
            self.pool.fill_with(config, initialize);
        }
    }

    /// Nobody needs the process any more. When it can serve another run (`clean`: its
    /// conversation ran no tool that leaves state in it; alive; its directory unchanged; under
    /// [`MAX_USES`]) and its key has room, clear it (`/clear`) and return it to the key in the
    /// background. Otherwise shut it down, and top the key up if it is still owed a process.
    ///
    /// Its place in the key is taken here, before this returns, so a refill asked for right
    /// after (a conversation that keeps another process) sees the process coming back and
    /// starts none: no fresh process is started only to be displaced.
    pub fn give_back(self, session: ClaudeSession, clean: bool) {
        let inner = self.pool.inner.clone();
        let reserved = self.reserve_place(&session, clean);
        inner.tasks.spawn(recycle(self, session, reserved));
    }

    /// Take a place in the key for `session` when it can serve another run; counted as a fill,
    /// so a run that finds the key empty waits for it rather than spawning.
    fn reserve_place(&self, session: &ClaudeSession, clean: bool) -> bool {
        let inner = &self.pool.inner;
        let reusable = clean
            && self.uses + 1 < MAX_USES
            && session.is_alive()
            && !session.is_busy()
            && self.cwd_identity.is_some()
            && directory_identity(&self.key.cwd) == self.cwd_identity;
        if !reusable || inner.closed.is_cancelled() {
            return false;
        }
        let waiting = inner.runs_waiting();
        let mut state = inner.state.lock();
        let places = state.limits.per_key + waiting;
        let Some(entry) = state.keys.get_mut(&self.key) else { return false };
        let room = entry.make_room(places);
        entry.filling += usize::from(room);
        room
    }

    /// The process must end (its run failed, was cancelled, or timed out): shut it down, then
    /// top the key up if it is still owed a process (after the shutdown, so the replacement does
    /// not compete with the run for the CPU).
    pub fn retire(self, session: ClaudeSession) {
        let inner = self.pool.inner.clone();
        let mut returnable = self;
        inner.tasks.spawn(async move {
            session.shutdown().await;
            returnable.refill();
        });
    }
}

/// [`Returnable::give_back`]'s work once the process has its place (`reserved`): clear it and
/// return it to the key.
async fn recycle(mut returnable: Returnable, session: ClaudeSession, reserved: bool) {
    let inner = returnable.pool.inner.clone();
    if !reserved {
        session.shutdown().await;
        returnable.refill();
        return;
    }
    // Until a run takes it, the process answers as the key's latest run would.
    returnable.handler.bind(returnable.template.config.handler.clone());
    let clear = async {
        let cleared = session.clear(CLEAR_TIMEOUT).await?;
        prepare_next_turn(&session).await;
        Ok(cleared)
    };
    let cleared = tokio::select! {
        cleared = clear => cleared,
        () = inner.closed.cancelled() => Err(ClaudeError::Cancelled),
    };
    let cleared = cleared.map_err(|err| err.to_string()).and_then(|result| {
        let totals = CliTotals::from_result(&result.raw);
        if spends_an_earlier_budget(&totals, &returnable.template.config.options) {
            return Err(
                "the CLI keeps its cost totals across /clear, and runs have a budget".into()
            );
        }
        Ok(totals)
    });
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let (key, uses) = (returnable.key.clone(), returnable.uses);
    let waiting = inner.runs_waiting();
    let (rejected, idle) = {
        let mut state = inner.state.lock();
        let (places, idle) = (state.limits.per_key + waiting, state.limits.idle);
        match (cleared, state.keys.get_mut(&key)) {
            (Ok(totals), Some(entry)) => {
                entry.filling = entry.filling.saturating_sub(1);
                // A used process answers its first turn sooner than a fresh one: it takes a
                // fresh one's place rather than go.
                let displaced = if entry.ready.len() < places {
                    None
                } else {
                    entry.ready.iter().position(|p| p.uses == 0).and_then(|i| entry.ready.remove(i))
                };
                if entry.ready.len() < places && !inner.closed.is_cancelled() && session.is_alive()
                {
                    tracing::debug!(
                        pid = session.pid(),
                        uses = uses + 1,
                        "a used Claude Code process is cleared and warm again"
                    );
                    inner.recycled.fetch_add(1, Ordering::Relaxed);
                    entry.ready.push_back(WarmProcess {
                        id,
                        session,
                        handler: returnable.handler.clone(),
                        cwd_identity: returnable.cwd_identity,
                        idle_since: Instant::now(),
                        uses: uses + 1,
                        totals,
                    });
                    returnable.refill_owed = false;
                    if displaced.is_some() {
                        inner.discarded.fetch_add(1, Ordering::Relaxed);
                    }
                    (displaced.map(|fresh| fresh.session), Some(idle))
                } else {
                    if let Some(fresh) = displaced {
                        entry.ready.push_front(fresh);
                    }
                    (Some(session), None)
                }
            }
            (cleared, entry) => {
                if let Some(entry) = entry {
                    entry.filling = entry.filling.saturating_sub(1);
                }
                if let Err(why) = cleared {
                    tracing::debug!(why, "a used process cannot serve another run; stopping it");
                }
                (Some(session), None)
            }
        }
    };
    if let Some(session) = rejected {
        session.shutdown().await;
    }
    if idle.is_none() {
        // Its place may have kept a refill from starting: the key is owed a process.
        returnable.refill_owed = true;
    }
    // A process that did not make it back still owes its key a replacement.
    returnable.refill();
    if let Some(idle) = idle {
        tokio::spawn(expire_when_idle(Arc::downgrade(&inner), key, id, idle));
        check_idle_memory(&inner);
    }
    inner.fill_done.notify_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claude::control::DenyAll;

    fn config(cwd: &Path, tools: &[&str]) -> SessionConfig {
        SessionConfig {
            binary: PathBuf::from("/nonexistent/claude"),
            options: CliOptions {
                tools: Some(tools.iter().map(|t| (*t).to_owned()).collect()),
                ..CliOptions::default()
            },
            cwd: cwd.to_path_buf(),
            env: vec![("A".into(), "1".into())],
            handler: Arc::new(DenyAll),
        }
    }

    #[test]
    fn a_used_process_coming_back_takes_the_place_of_one_still_starting() {
        let template = Template {
            config: config(Path::new("/w"), &["Read"]),
            initialize: InitializeRequest::default(),
        };
        let start = CancellationToken::new();
        let mut entry = KeyEntry {
            template,
            ready: VecDeque::new(),
            filling: 1,
            starting: vec![(7, start.clone())],
            last_used: Instant::now(),
        };
        assert!(entry.make_room(1), "the place being filled is given to the used process");
        assert!(start.is_cancelled(), "the fresh start is stopped, not left to be discarded");
        assert!(entry.starting.is_empty());
        // A place being filled by another used process is not taken.
        assert!(!entry.make_room(1));
    }

    #[test]
    fn keys_cover_the_whole_spawn() {
        let init = InitializeRequest::default();
        let base = PoolKey::of(&config(Path::new("/w"), &["Read"]), &init);
        assert_eq!(base, PoolKey::of(&config(Path::new("/w"), &["Read"]), &init));
        assert_ne!(base, PoolKey::of(&config(Path::new("/x"), &["Read"]), &init));
        assert_ne!(base, PoolKey::of(&config(Path::new("/w"), &["Read", "Edit"]), &init));
        let mut other_env = config(Path::new("/w"), &["Read"]);
        other_env.env.push(("B".into(), "2".into()));
        assert_ne!(base, PoolKey::of(&other_env, &init));
        let hooked = InitializeRequest { sdk_mcp_servers: vec!["lsp".into()], ..init.clone() };
        assert_ne!(base, PoolKey::of(&config(Path::new("/w"), &["Read"]), &hooked));
        // The handler is re-bound on take, so it is not part of the key.
        let mut other_handler = config(Path::new("/w"), &["Read"]);
        other_handler.handler = Arc::new(DenyAll);
        assert_eq!(base, PoolKey::of(&other_handler, &init));
    }

    #[test]
    fn a_budget_is_never_spent_by_an_earlier_conversation() {
        let spent = CliTotals { cost_usd: 0.02, ..CliTotals::default() };
        let budget = CliOptions { max_budget_usd: Some(1.0), ..CliOptions::default() };
        assert!(spends_an_earlier_budget(&spent, &budget));
        assert!(!spends_an_earlier_budget(&CliTotals::default(), &budget), "totals reset");
        assert!(!spends_an_earlier_budget(&spent, &CliOptions::default()), "no budget");
    }

    #[test]
    fn conversations_are_never_pooled() {
        assert!(is_poolable(&CliOptions::default()));
        for options in [
            CliOptions { resume: Some("id".into()), ..CliOptions::default() },
            CliOptions { session_id: Some("id".into()), ..CliOptions::default() },
            CliOptions { continue_session: true, ..CliOptions::default() },
            CliOptions { fork_session: true, ..CliOptions::default() },
        ] {
            assert!(!is_poolable(&options), "{options:?}");
        }
    }

    #[test]
    fn a_recreated_directory_is_another_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror");
        std::fs::create_dir(&path).unwrap();
        let before = directory_identity(&path);
        assert!(before.is_some());
        assert_eq!(directory_identity(&path), before);
        // An open handle keeps the removed directory's inode allocated, as the cwd of a process
        // started in it does, so the new directory cannot reuse its number.
        let old = std::fs::File::open(&path).unwrap();
        std::fs::remove_dir(&path).unwrap();
        assert_eq!(directory_identity(&path), None);
        std::fs::create_dir(&path).unwrap();
        assert_ne!(directory_identity(&path), before);
        drop(old);
    }

    #[tokio::test]
    async fn a_disabled_or_closed_pool_fills_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let disabled = WarmPool::new(PoolLimits { per_key: 0, idle: Duration::from_secs(60) });
        assert!(!disabled.is_enabled());
        disabled.fill(config(dir.path(), &["Read"]));
        assert_eq!(disabled.stats(), PoolStats::default());

        let pool = WarmPool::new(PoolLimits { per_key: 1, idle: Duration::from_secs(60) });
        assert!(pool.is_enabled());
        pool.shutdown().await;
        assert!(!pool.is_enabled());
        pool.fill(config(dir.path(), &["Read"]));
        assert_eq!(pool.stats(), PoolStats::default());
    }

    #[tokio::test]
    async fn a_fill_that_cannot_spawn_leaves_nothing_behind_and_runs_get_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let pool = WarmPool::new(PoolLimits { per_key: 2, idle: Duration::from_secs(60) });
        pool.fill(config(dir.path(), &["Read"]));
        assert_eq!(pool.stats().filling, 2);
        pool.settled().await;
        assert_eq!(pool.stats(), PoolStats::default());
        let cancel = CancellationToken::new();
        let err = pool
            .acquire(config(dir.path(), &["Read"]), &InitializeRequest::default(), &cancel)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "cli_not_found", "{err}");
        assert_eq!(pool.stats().misses, 1);
        pool.shutdown().await;
    }

    #[tokio::test]
    async fn first_sight_is_once_per_workspace_until_cleared() {
        let pool = WarmPool::new(PoolLimits { per_key: 1, idle: Duration::from_secs(60) });
        assert!(pool.first_sight(Path::new("/w")));
        assert!(!pool.first_sight(Path::new("/w")));
        assert!(pool.first_sight(Path::new("/x")));
        pool.clear();
        assert!(pool.first_sight(Path::new("/w")));
    }
}
