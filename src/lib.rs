//! claude-lsp: the Claude Code agent behind the Language Server Protocol.
//!
//! See ARCHITECTURE.md for the code map and the invariants every module keeps.

pub mod activity;
pub mod claude;
pub mod documents;
pub mod edits;
pub mod error;
pub mod git;
pub mod handlers;
pub mod logging;
pub mod lsp;
pub mod lsp_ext;
pub mod permissions;
pub mod pipeline;
pub mod process;
pub mod prompt;
pub mod server;
pub mod settings;
pub mod staging;
pub mod state;
pub mod time;

