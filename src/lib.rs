//! claude-lsp: the Claude Code agent behind the Language Server Protocol.
//!
//! See ARCHITECTURE.md for the code map and the invariants every module keeps.

pub mod activity;
pub mod answers;
pub mod audit;
pub mod claude;
pub mod conversations;
pub mod doctor;
pub mod documents;
pub mod edits;
pub mod error;
pub mod findings;
pub mod git;
pub mod handlers;
pub mod headless;
pub mod logging;
pub mod lsp;
pub mod lsp_ext;
pub mod metrics;
pub mod path_style;
pub mod permissions;
pub mod pipeline;
pub mod platform;
pub mod pool;
pub mod process;
pub mod prompt;
pub mod regions;
pub mod retry;
pub mod sandbox;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod sessions;
pub mod settings;
pub mod staging;
pub mod state;
pub mod time;
pub mod transport;
pub mod usage;
