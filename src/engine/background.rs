//! Work a run leaves behind after its answer: a findings run answers from the CLI's
//! `StructuredOutput` call while the CLI still finishes its turn (pipeline.rs), and the run's
//! books are written when that turn's `result` arrives (run.rs). The tasks are tracked, so
//! shutdown stops them (their turns are interrupted, their processes retired) and waits for them.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The tasks that finish runs already answered.
#[derive(Debug, Clone, Default)]
pub struct Background {
    tasks: TaskTracker,
    closing: CancellationToken,
}

impl Background {
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Cancelled at shutdown: a background turn stops at once.
    pub fn closing(&self) -> CancellationToken {
        self.closing.child_token()
    }

    /// Stop every background task and wait for them (each ends within the turn's stop ladder).
    pub async fn shutdown(&self) {
        self.closing.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}
