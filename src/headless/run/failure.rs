//! Why `claude-lsp run` stopped, and the process exit code that says so.

use crate::base::error::{ErrorKind, ServerError};
use crate::engine::run::RunFailure;

/// The process exit codes of `claude-lsp run` (also documented in the README).
pub mod exit {
    pub const SUCCESS: u8 = 0;
    /// The run itself failed (API error, timeout, the model's output unusable, …).
    pub const RUN_FAILED: u8 = 1;
    /// Bad arguments, or a target that cannot be read or lies outside the workspace.
    pub const USAGE: u8 = 2;
    /// Claude Code is missing, too old, or not logged in.
    pub const SETUP: u8 = 3;
    /// The edits were refused: a file changed meanwhile in a conflicting way, or a change leads
    /// out of the workspace (through a symlink, say). Nothing was written.
    pub const NOT_APPLIED: u8 = 4;
    /// A budget is spent: today's `dailyBudgetUsd` (before the run, or during it) or `maxBudgetUsd`.
    pub const BUDGET: u8 = 5;
    /// Stopped with Ctrl-C; nothing was applied.
    pub const INTERRUPTED: u8 = 130;
}

/// Why `run` stopped, with its exit code.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) code: u8,
    pub(super) message: String,
    pub(super) hint: String,
}

impl Failure {
    pub(super) fn usage(message: impl Into<String>) -> Self {
        Self { code: exit::USAGE, message: message.into(), hint: String::new() }
    }

    pub(super) fn from_server(err: ServerError) -> Self {
        let code = match err.kind {
            kind if kind == ErrorKind::CANCELLED => exit::INTERRUPTED,
            kind if kind == ErrorKind::CLI_NOT_FOUND
                || kind == ErrorKind::CLI_TOO_OLD
                || kind == ErrorKind::AUTH_FAILED =>
            {
                exit::SETUP
            }
            kind if kind == ErrorKind::INVALID_PARAMS || kind == ErrorKind::FILE_ACCESS => {
                exit::USAGE
            }
            kind if kind == ErrorKind::EDIT_CONFLICT || kind == ErrorKind::SANDBOX_VIOLATION => {
                exit::NOT_APPLIED
            }
            kind if kind == ErrorKind::BUDGET_EXCEEDED => exit::BUDGET,
            _ => exit::RUN_FAILED,
        };
        Self { code, message: err.message, hint: err.hint }
    }
}

impl From<ServerError> for Failure {
    fn from(err: ServerError) -> Self {
        Self::from_server(err)
    }
}

impl RunFailure for Failure {
    fn message(&self) -> &str {
        &self.message
    }

    fn is_cancelled(&self) -> bool {
        self.code == exit::INTERRUPTED
    }
}
