//! The driver for the real `claude` CLI: discovery, arguments, the stream-json process, the
//! control protocol, typed messages and errors.
//!
//! - `discover`: find the binary and check its version.
//! - [`args`]: typed command-line flags.
//! - [`lines`] and [`protocol`]: stdout framing (no line cap) and the typed messages.
//! - [`control`]: what the host answers to the CLI (permissions, hooks, SDK MCP servers).
//! - [`session`]: one live process, its turns, and [`session::run_once`] for one-shot runs.
//! - [`errors`]: typed errors, their classification from CLI output, secret redaction.

pub mod args;
pub mod control;
pub(crate) mod discover;
pub mod errors;
pub mod lines;
pub mod protocol;
pub mod session;
