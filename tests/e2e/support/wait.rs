//! Waiting for what a test cannot be told about (a process in /proc, a file, server state read
//! through a request): probe until it holds. The deadlines only guard against hangs.

use std::time::{Duration, Instant};

/// How long any single wait may take before the test fails (runs of the real CLI included).
pub const WAIT: Duration = Duration::from_secs(60);

/// Time between two probes.
const INTERVAL: Duration = Duration::from_millis(20);

/// Probe until `done` holds for what `probe` found, or `timeout` has passed; returns what was
/// found last.
pub async fn poll<T>(
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let found = probe().await;
        if done(&found) || Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// Probe until `probe` finds something; panics, naming `what`, after [`WAIT`].
pub async fn eventually<T>(what: &str, probe: impl AsyncFnMut() -> Option<T>) -> T {
    poll(WAIT, probe, Option::is_some)
        .await
        .unwrap_or_else(|| panic!("timed out after {WAIT:?} waiting until {what}"))
}
