//! Work a run leaves behind after its answer: a findings run answers from the CLI's
//! `StructuredOutput` call while the CLI still finishes its turn (pipeline.rs), and the run's
//! books are written when that turn's `result` arrives (run.rs). The tasks are tracked, so
//! shutdown stops them (their turns are interrupted, their processes retired) and waits for them.
//! Until its books are written, what such a run spent is held here, so the daily budget of the
//! next run counts it.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The tasks that finish runs already answered.
#[derive(Debug, Clone, Default)]
pub struct Background {
    tasks: TaskTracker,
    closing: CancellationToken,
    unbooked: Arc<Unbooked>,
}

/// The cost of answered runs not yet in the usage ledger, by hold.
#[derive(Debug, Default)]
struct Unbooked {
    next: AtomicU64,
    costs: Mutex<HashMap<u64, (PathBuf, f64)>>,
}

/// A run's cost counted against its workspace's daily budget until dropped (once the ledger
/// has it).
#[derive(Debug)]
pub struct Held {
    id: u64,
    unbooked: Arc<Unbooked>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.unbooked.costs.lock().remove(&self.id);
    }
}

impl Background {
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Cancelled at shutdown: a background turn stops at once.
    pub fn closing(&self) -> CancellationToken {
        self.closing.child_token()
    }

    /// Count `cost_usd` of a run in `workspace` as spent until the returned hold is dropped.
    pub fn hold(&self, workspace: &Path, cost_usd: f64) -> Held {
        let id = self.unbooked.next.fetch_add(1, Ordering::Relaxed);
        self.unbooked.costs.lock().insert(id, (workspace.to_path_buf(), cost_usd));
        Held { id, unbooked: self.unbooked.clone() }
    }

    /// What runs in `workspace` spent that the usage ledger does not hold yet.
    pub fn unbooked_usd(&self, workspace: &Path) -> f64 {
        let costs = self.unbooked.costs.lock();
        costs.values().filter(|(held, _)| held == workspace).map(|(_, cost)| cost).sum()
    }

    /// Stop every background task and wait for them (each ends within the turn's stop ladder).
    pub async fn shutdown(&self) {
        self.closing.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_cost_counts_for_its_workspace_until_dropped() {
        let background = Background::default();
        let (one, two) = (Path::new("/one"), Path::new("/two"));
        let first = background.hold(one, 0.25);
        let second = background.hold(one, 0.5);
        let other = background.hold(two, 1.0);
        assert_eq!(background.unbooked_usd(one), 0.75);
        drop(first);
        assert_eq!(background.unbooked_usd(one), 0.5);
        drop((second, other));
        assert_eq!((background.unbooked_usd(one), background.unbooked_usd(two)), (0.0, 0.0));
    }
}
