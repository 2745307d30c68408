//! The CLI's built-in tools by what they touch.

/// Tools every run may use: reading and searching.
pub const READ_TOOLS: &[&str] = &["Read", "Grep", "Glob"];
/// Tools that change files; only edit runs get them, and only inside their mirror.
pub const EDIT_TOOLS: &[&str] = &["Edit", "Write", "MultiEdit", "NotebookEdit"];
