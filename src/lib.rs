//! claude-lsp: the Claude Code agent behind the Language Server Protocol.
//!
//! The crate is layered; each layer uses only the layers below it (ARCHITECTURE.md has the
//! picture, `tests/architecture.rs` enforces it):
//!
//! - [`lsp_server`], [`headless`]: the faces — LSP over stdio, and `claude-lsp run` / `doctor`.
//! - `report`: what both faces put out about a run (action, findings, metadata), in wire form.
//! - [`engine`]: one run from request to outcome, and the processes, queue and stores behind it.
//! - [`model`]: pure data and logic — actions, documents, prompts, findings, edits, settings,
//!   the session, usage and audit stores.
//! - [`claude`]: the driver of the real `claude` CLI.
//! - [`base`]: processes, git, secrets, time, the error table, logging.
//! - [`protocol`]: the wire types and method names (a leaf: LSP's types and serde, nothing else).

pub mod base;
pub mod claude;
pub mod engine;
pub mod headless;
pub mod lsp_server;
pub mod model;
pub mod protocol;
pub(crate) mod report;
