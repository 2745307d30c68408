//! `claude-lsp run`: one action without an editor, through the same pipeline the language server
//! uses (prompt, staging mirror, sandbox, retries). Progress goes to stderr (a spinner on a
//! terminal, plain lines otherwise); the result goes to stdout as a unified diff (generate,
//! refactor), the answer and its findings (analyze, review), or JSON (`--json`). `--apply`
//! writes the edits to disk, refusing (and writing nothing) when a file changed in a way that
//! conflicts with them.
//!
//! Exit codes ([`exit`]): 0 success, 1 the run failed, 2 bad arguments or target, 3 Claude Code is
//! missing, unsupported or not logged in, 4 the edits were refused (a conflict, or a change
//! outside the workspace), 5 the daily budget is spent, 130 interrupted.
//!
//! The run goes through the engine as an editor's does (engine/run.rs): the same budget,
//! containment check, session index, usage ledger and audit log, in the same cache dir.
//!
//! * `args`: the command line (`RunArgs`) and its clap value types.
//! * `execute`: the run from arguments to exit code, through the engine.
//! * `target`: the `path[:line[:col][-line[:col]]]` target and the selection it names.
//! * `render`: the outcome as text, Markdown, a unified diff or JSON.
//! * `apply`: `--apply`, the edits written to disk or, on a conflict, nothing at all.
//! * `failure`: why a run stopped, and the exit codes.
//! * `progress_view`: the progress on stderr.

mod apply;
mod args;
mod execute;
mod failure;
mod progress_view;
mod render;
mod target;
#[cfg(test)]
mod tests;

pub use args::{ActionArg, DepthArg, FormatArg, RunArgs, ScopeArg, SeverityArg};
pub use execute::main;
pub use failure::exit;
