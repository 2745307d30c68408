//! The driver for the real `claude` CLI: discovery, arguments, the stream-json process, the
//! control protocol, typed messages and errors.
//!
//! - [`discover`]: find the binary and check its version.
//! - [`args`]: typed command-line flags.
//! - [`lines`] and [`protocol`]: stdout framing (no line cap) and the typed messages.
//! - [`control`]: what the host answers to the CLI (permissions, hooks, SDK MCP servers).
//! - [`session`]: one live process, its turns, and [`session::run_once`] for one-shot runs.
//! - [`errors`]: typed errors, their classification from CLI output, secret redaction.

pub mod args;
pub mod control;
pub mod discover;
pub mod errors;
pub mod lines;
pub mod protocol;
pub mod session;

pub use args::{CliOptions, Effort, PermissionMode};
pub use control::{
    CanUseToolRequest, ControlHandler, DenyAll, HookMatcher, InitializeRequest, PermissionDecision,
};
pub use discover::{CliBinary, CliVersion, DiscoverOptions, MIN_SUPPORTED_VERSION, discover};
pub use errors::{ClaudeError, classify_exit, classify_result, redact};
pub use session::{
    ClaudeSession, RunEvent, RunLimits, RunResult, SessionConfig, Turn, Usage, run_once, run_turn,
};
