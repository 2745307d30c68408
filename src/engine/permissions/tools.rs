//! The CLI's built-in tools by what they touch.

/// Tools every run may use: reading and searching.
pub const READ_TOOLS: &[&str] = &["Read", "Grep", "Glob"];
/// Tools that change files; only edit runs get them, and only inside their mirror.
pub const EDIT_TOOLS: &[&str] = &["Edit", "Write", "MultiEdit", "NotebookEdit"];
/// Tools that hand a task to a subagent (newer CLIs call `Task` `Agent`); only runs with the
/// `agents` setting get them. Each tool call a subagent makes goes through the gate too.
pub const DELEGATE_TOOLS: &[&str] = &["Task", "Agent"];
