//! What a session runs, and the limits of one run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::claude::args::CliOptions;
use crate::claude::control::ControlHandler;

/// What to run.
#[derive(Clone)]
pub struct SessionConfig {
    pub binary: PathBuf,
    pub options: CliOptions,
    pub cwd: PathBuf,
    /// Added to the inherited environment (e.g. `ANTHROPIC_BASE_URL`, `CLAUDE_CODE_MAX_RETRIES`).
    pub env: Vec<(String, String)>,
    pub handler: Arc<dyn ControlHandler>,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Environment values may be API keys: show the names only.
        let env: Vec<&str> = self.env.iter().map(|(key, _)| key.as_str()).collect();
        f.debug_struct("SessionConfig")
            .field("binary", &self.binary)
            .field("options", &self.options)
            .field("cwd", &self.cwd)
            .field("env", &env)
            .finish_non_exhaustive()
    }
}

/// Limits of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// The whole turn.
    pub timeout: Duration,
    /// No output (and no permission question pending) for this long.
    pub idle_timeout: Option<Duration>,
}
