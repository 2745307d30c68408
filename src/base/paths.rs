//! Where claude-lsp keeps its files.

use std::path::PathBuf;

/// The default cache dir (mirrors, answers, the session index, the usage ledger, the audit log):
/// the user's cache dir + `claude-lsp`. The server and `claude-lsp run` share it, so a headless
/// run shows up in an editor's `claude/sessions` and `claude/usage`.
pub fn default_cache_dir() -> PathBuf {
    dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("claude-lsp")
}
