//! One live stream-json CLI process: turns, control requests both ways, and a bounded shutdown.
//!
//! Three tasks per process:
//! - a writer that owns stdin and writes lines in the order they were queued (the only writer,
//!   so lines never interleave);
//! - a reader that owns stdout and routes each message: answers to host requests go to whoever
//!   waits for them, CLI requests get their own handler task (so a slow permission prompt never
//!   blocks an MCP call), cancels abort those tasks, and the rest becomes [`RunEvent`]s of the
//!   current [`Turn`];
//! - a supervisor that owns the child, reports its exit, and signals its process group on request.
//!   Dropping the session closes the supervisor's channel, which kills the group.
//!
//! One concern per file:
//! - `config`: what to run ([`SessionConfig`]) and the limits of one run ([`RunLimits`]).
//! - `events`: what a turn reports: [`RunEvent`]s, [`Usage`], its [`RunResult`].
//! - `turn_tracker`: one turn's CLI messages as events, its `result` as the outcome.
//! - `shared`: the state the session handle and its tasks share.
//! - `tasks`: the supervisor, the writer, and the reader with its routing.
//! - `process`: [`ClaudeSession`] (spawn, turns, control requests, the shutdown ladder) and
//!   its [`Turn`] handle.
//! - `turns`: [`run_turn`], [`run_turn_until`] and [`run_once`]: a turn within its limits.

mod config;
mod events;
mod process;
mod shared;
mod tasks;
#[cfg(test)]
mod tests;
mod turn_tracker;
mod turns;

pub use config::{RunLimits, SessionConfig};
pub use events::{RunEvent, RunResult, Usage};
pub use process::{ClaudeSession, Turn};
pub use turns::{OpenTurn, TurnStep, run_once, run_turn, run_turn_until};
