//! The state the session handle and its tasks share.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64};

use serde_json::Value;
use tokio::sync::{oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::turn_tracker::TurnTracker;
use crate::base::process::StderrTail;
use crate::base::secrets::redact_with;
use crate::claude::errors::ClaudeError;

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ExitInfo {
    pub(super) code: Option<i32>,
}

pub(super) enum WriteCommand {
    Line {
        bytes: Vec<u8>,
        written: Option<oneshot::Sender<io::Result<()>>>,
    },
    /// Close stdin: the CLI finishes its turn, then exits.
    Close,
}

type Pending = oneshot::Sender<Result<Value, String>>;

/// State shared by the session handle and its tasks.
pub(super) struct Shared {
    pub(super) pid: u32,
    pub(super) stderr: StderrTail,
    /// Secret values from the child's environment, redacted from every error text.
    pub(super) secrets: Vec<String>,
    pub(super) state: Mutex<State>,
    pub(super) next_request: AtomicU64,
    pub(super) next_turn: AtomicU64,
    pub(super) shutting_down: AtomicBool,
    /// Set by the reader when stdout ends: the error every later call gets.
    pub(super) closed: watch::Sender<Option<ClaudeError>>,
    pub(super) exit: watch::Receiver<Option<ExitInfo>>,
    /// True while a turn runs.
    pub(super) busy: watch::Sender<bool>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) turn: Option<TurnTracker>,
    pub(super) pending: HashMap<String, Pending>,
    pub(super) handlers: HashMap<String, AbortHandle>,
    pub(super) session_id: Option<String>,
    pub(super) cli_version: Option<String>,
    /// A failure the CLI reported before any turn ran (an unknown `--resume` id).
    pub(super) early_failure: Option<ClaudeError>,
    pub(super) last_output: Option<Instant>,
}

impl Shared {
    pub(super) fn closed_error(&self) -> Option<ClaudeError> {
        self.closed.borrow().clone()
    }

    pub(super) fn redact(&self, text: &str) -> String {
        redact_with(text, &self.secrets).into_owned()
    }
}
