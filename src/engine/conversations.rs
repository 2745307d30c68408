//! Live conversations: after a successful run its CLI process stays alive, idle, keyed by the
//! conversation's session id, so the next turn of that conversation (continue, refine) goes to
//! it: no spawn (~0.9 s and ~300 MB, cli-protocol.md §8), and the CLI keeps what it has read.
//!
//! A process serves a follow-up only when it was started for the same working directory,
//! action and settings (its tools, system prompt and sandbox root are fixed at spawn); any
//! other follow-up lets it go and resumes the conversation in a new process. Idle processes are
//! let go after `sessionIdleSecs`; at most `liveSessions` stay idle (the least recently used goes
//! first); all close on shutdown. A process let go returns to the warm pool, cleared, when it
//! can serve another run ([`LiveTurn::release`]); otherwise it shuts down.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

use crate::claude::control::RebindableHandler;
use crate::claude::session::ClaudeSession;
use crate::engine::pool::{IdleHolder, Returnable};
use crate::model::prompt::Action;
use crate::model::usage::CliTotals;

/// What a CLI process was started for; a follow-up must match it to use the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessKey {
    pub cwd: PathBuf,
    pub action: Action,
    /// The run's model (`--model`): a per-run `model` option differs from the setting's.
    pub model: Option<String>,
    /// `Settings::hash_for_pool`: the settings that shape the argv and environment.
    pub settings: u64,
}

/// A conversation's idle process, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveProcess {
    pub pid: u32,
    pub idle_secs: u64,
}

/// A conversation's process between turns.
pub struct LiveTurn {
    pub session: ClaudeSession,
    pub handler: Arc<RebindableHandler>,
    /// The process's running cost totals, to measure the next turn's own share.
    pub totals: CliTotals,
    /// How the process goes back to the warm pool once the conversation lets it go.
    pub returnable: Option<Returnable>,
    /// No tool of the conversation left state in the process (`pool::leaves_no_state`).
    pub clean: bool,
}

impl LiveTurn {
    /// The conversation lets the process go: back to the warm pool (cleared) when it can serve
    /// another run, else shut down. The pool counts it as coming back before this returns.
    pub fn release(self) {
        match self.returnable {
            Some(returnable) => returnable.give_back(self.session, self.clean),
            None => {
                tokio::spawn(self.session.shutdown());
            }
        }
    }
}

struct IdleProcess {
    turn: LiveTurn,
    key: ProcessKey,
    /// The working directory as the file system knows it: a mirror removed and made again at
    /// the same path is another directory, which the idle process does not see.
    cwd_identity: Option<(u64, u64)>,
    since: Instant,
    /// Tells this stay apart from a later one of the same conversation (for its idle timer).
    generation: u64,
}

#[derive(Default)]
pub struct Conversations {
    idle: Mutex<HashMap<String, IdleProcess>>,
    /// One turn at a time per conversation.
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    generations: AtomicU64,
}

impl std::fmt::Debug for Conversations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversations").field("idle", &self.idle.lock().len()).finish()
    }
}

impl Conversations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wait until conversation `id` runs no turn, and hold it until the guard drops: a second
    /// follow-up waits for the first instead of racing it on the same transcript.
    pub async fn turn(&self, id: &str) -> OwnedMutexGuard<()> {
        let mutex = {
            let mut turns = self.turns.lock();
            // Forget conversations nobody holds or waits for.
            turns.retain(|_, mutex| Arc::strong_count(mutex) > 1);
            turns.entry(id.to_owned()).or_default().clone()
        };
        mutex.lock_owned().await
    }

    /// The idle process of conversation `id`, when it is alive and was started for `key`. A
    /// process that cannot serve `key` is shut down.
    pub async fn take(&self, id: &str, key: &ProcessKey) -> Option<LiveTurn> {
        let idle = self.idle.lock().remove(id)?;
        let session = &idle.turn.session;
        if idle.key == *key
            && idle.cwd_identity.is_some()
            && idle.cwd_identity == directory_identity(&key.cwd)
            && session.is_alive()
            && !session.is_busy()
        {
            tracing::debug!(session = id, pid = session.pid(), "continuing in the live process");
            return Some(idle.turn);
        }
        tracing::debug!(session = id, "the live process cannot serve this turn; letting it go");
        idle.turn.release();
        None
    }

    /// Keep `session` for conversation `id`'s next turn. It closes after `idle_for` unless used
    /// again; beyond `max_idle` idle processes the least recently used one closes.
    pub fn keep(
        self: &Arc<Self>,
        id: String,
        turn: LiveTurn,
        key: ProcessKey,
        idle_for: Duration,
        max_idle: usize,
    ) {
        if max_idle == 0 || !turn.session.is_alive() {
            turn.release();
            return;
        }
        let mut turn = turn;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let cwd_identity = directory_identity(&key.cwd);
        // Make room first: the processes let go go back to the pool before the refill below.
        let closing = {
            let mut idle = self.idle.lock();
            let mut closing: Vec<LiveTurn> =
                idle.remove(&id).map(|old| old.turn).into_iter().collect();
            while idle.len() >= max_idle {
                let oldest = idle
                    .iter()
                    .min_by_key(|(_, process)| process.since)
                    .map(|(oldest, _)| oldest.clone());
                match oldest.and_then(|oldest| idle.remove(&oldest)) {
                    Some(evicted) => closing.push(evicted.turn),
                    None => break,
                }
            }
            closing
        };
        for turn in closing {
            turn.release();
        }
        // The pool lost this process to the conversation: replace it for the next new run,
        // unless a process let go above is already on its way back to the same key.
        if let Some(returnable) = &mut turn.returnable {
            returnable.refill();
        }
        let stay = IdleProcess { turn, key, cwd_identity, since: Instant::now(), generation };
        self.idle.lock().insert(id.clone(), stay);
        let conversations: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(idle_for).await;
            if let Some(conversations) = conversations.upgrade() {
                conversations.close_if_unused(&id, generation).await;
            }
        });
    }

    async fn close_if_unused(&self, id: &str, generation: u64) {
        let expired = {
            let mut idle = self.idle.lock();
            match idle.get(id) {
                Some(process) if process.generation == generation => idle.remove(id),
                _ => None,
            }
        };
        if let Some(process) = expired {
            let pid = process.turn.session.pid();
            tracing::debug!(session = id, pid, "letting go of an idle conversation's process");
            process.turn.release();
        }
    }

    /// The idle process of conversation `id`, if it has one.
    /// A turn of conversation `id` runs, or ends in the background after its answer (a findings
    /// run's): a follow-up waits for it and continues in its process.
    pub fn has_turn(&self, id: &str) -> bool {
        self.turns.lock().get(id).is_some_and(|mutex| Arc::strong_count(mutex) > 1)
    }

    pub fn live(&self, id: &str) -> Option<LiveProcess> {
        let idle = self.idle.lock();
        let process = idle.get(id).filter(|process| process.turn.session.is_alive())?;
        Some(LiveProcess {
            pid: process.turn.session.pid(),
            idle_secs: process.since.elapsed().as_secs(),
        })
    }

    /// Close every idle process (server shutdown).
    pub async fn close_all(&self) {
        let all: Vec<IdleProcess> = self.idle.lock().drain().map(|(_, process)| process).collect();
        futures::future::join_all(all.into_iter().map(|process| process.turn.session.shutdown()))
            .await;
    }
}

/// The idle memory budget (`maxIdleMemoryMb`) covers the live conversations' processes.
impl IdleHolder for Conversations {
    fn idle_processes(&self) -> Vec<crate::engine::pool::IdleProcess> {
        let idle = self.idle.lock();
        idle.iter()
            .map(|(id, process)| crate::engine::pool::IdleProcess {
                handle: id.clone(),
                pid: process.turn.session.pid(),
                idle_since: process.since,
            })
            .collect()
    }

    /// The process goes, not back to the pool: it is over the memory budget.
    fn stop_idle(&self, handle: &str) {
        let Some(process) = self.idle.lock().remove(handle) else { return };
        let LiveTurn { session, returnable, .. } = process.turn;
        match returnable {
            Some(returnable) => returnable.retire(session),
            None => {
                tokio::spawn(session.shutdown());
            }
        }
    }
}

fn directory_identity(path: &Path) -> Option<(u64, u64)> {
    crate::base::platform::file_identity(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claude::args::CliOptions;
    use crate::claude::control::DenyAll;
    use crate::claude::session::SessionConfig;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in CLI that stays alive, silent, until its stdin closes.
    fn idle_cli(dir: &std::path::Path) -> SessionConfig {
        let script = dir.join("claude");
        std::fs::write(&script, "#!/bin/sh\nexec cat >/dev/null\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        SessionConfig {
            binary: script,
            options: CliOptions::default(),
            cwd: dir.to_path_buf(),
            env: Vec::new(),
            handler: Arc::new(DenyAll),
        }
    }

    fn turn(session: ClaudeSession, totals: CliTotals) -> LiveTurn {
        LiveTurn {
            session,
            handler: RebindableHandler::new(Arc::new(DenyAll)),
            totals,
            returnable: None,
            clean: true,
        }
    }

    fn key(dir: &std::path::Path, action: Action) -> ProcessKey {
        ProcessKey { cwd: dir.to_path_buf(), action, model: None, settings: 7 }
    }

    async fn eventually(what: &str, check: impl Fn() -> bool) {
        for _ in 0..200 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("never happened: {what}");
    }

    #[tokio::test]
    async fn a_kept_process_serves_the_same_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let conversations = Arc::new(Conversations::new());
        let session = ClaudeSession::spawn(idle_cli(dir.path())).await.unwrap();
        let pid = session.pid();
        let totals = CliTotals { cost_usd: 0.5, ..CliTotals::default() };
        let hour = Duration::from_secs(3600);
        conversations.keep(
            "s".into(),
            turn(session, totals.clone()),
            key(dir.path(), Action::Refactor),
            hour,
            4,
        );
        assert_eq!(conversations.live("s").map(|live| live.pid), Some(pid));

        let taken = conversations.take("s", &key(dir.path(), Action::Refactor)).await.unwrap();
        assert_eq!((taken.session.pid(), taken.totals), (pid, totals));
        assert!(conversations.live("s").is_none());
        assert!(conversations.take("s", &key(dir.path(), Action::Refactor)).await.is_none());
        taken.session.shutdown().await;
    }

    #[tokio::test]
    async fn a_process_started_for_something_else_is_closed_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let conversations = Arc::new(Conversations::new());
        let session = ClaudeSession::spawn(idle_cli(dir.path())).await.unwrap();
        let probe = ClaudeSession::spawn(idle_cli(dir.path())).await.unwrap();
        let hour = Duration::from_secs(3600);
        conversations.keep(
            "s".into(),
            turn(session, CliTotals::default()),
            key(dir.path(), Action::Refactor),
            hour,
            4,
        );
        assert!(conversations.take("s", &key(dir.path(), Action::Analyze)).await.is_none());
        assert!(conversations.live("s").is_none());

        // A follow-up that asks for another model (the run's `model` option) is not served by
        // a process spawned with the first one's `--model`.
        let haiku = ProcessKey {
            model: Some("claude-haiku-4-5".into()),
            ..key(dir.path(), Action::Review)
        };
        conversations.keep("t".into(), turn(probe, CliTotals::default()), haiku.clone(), hour, 4);
        assert!(conversations.take("t", &key(dir.path(), Action::Review)).await.is_none());
        assert!(conversations.live("t").is_none());
    }

    #[tokio::test]
    async fn idle_processes_close_after_their_time_and_beyond_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let conversations = Arc::new(Conversations::new());
        let hour = Duration::from_secs(3600);
        for id in ["a", "b", "c"] {
            let session = ClaudeSession::spawn(idle_cli(dir.path())).await.unwrap();
            conversations.keep(
                id.into(),
                turn(session, CliTotals::default()),
                key(dir.path(), Action::Refactor),
                hour,
                2,
            );
        }
        assert!(conversations.live("a").is_none(), "the least recently used one closes");
        assert!(conversations.live("b").is_some() && conversations.live("c").is_some());

        let session = ClaudeSession::spawn(idle_cli(dir.path())).await.unwrap();
        let short = Duration::from_millis(50);
        conversations.keep(
            "d".into(),
            turn(session, CliTotals::default()),
            key(dir.path(), Action::Review),
            short,
            8,
        );
        eventually("the idle timer closes d", || conversations.live("d").is_none()).await;

        conversations.close_all().await;
        assert!(conversations.live("b").is_none() && conversations.live("c").is_none());
    }

    #[tokio::test]
    async fn turns_of_one_conversation_take_turns() {
        let conversations = Arc::new(Conversations::new());
        let first = conversations.turn("s").await;
        let waiting = {
            let conversations = conversations.clone();
            tokio::spawn(async move { conversations.turn("s").await })
        };
        let other = conversations.turn("t").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a second turn of s must wait");
        drop(first);
        drop(waiting.await.unwrap());
        drop(other);
        drop(conversations.turn("s").await);
        assert!(conversations.turns.lock().len() <= 1);
    }
}
