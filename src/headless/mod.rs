//! The headless face: `claude-lsp run` (one action without an editor) and `claude-lsp doctor`.

pub mod doctor;
pub mod run;
