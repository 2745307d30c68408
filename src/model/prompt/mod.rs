//! Workspace-scoped prompts for the four actions, the system prompt addendum, and the scan for
//! instruction comments (`claude: …`, `TODO: …`) behind the cheap code actions.
//!
//! Everything here is pure: text in, text out. The user's instruction is embedded verbatim and
//! never sanitized: the prompt travels to the CLI as JSON data on stdin, never through a shell.
//! Every embedded block is fenced with a backtick run longer than any inside it, so no content
//! (a Markdown file, a diff, the instruction) can close its block early.
//!
//! - `options.rs`: the actions and their options; `context.rs`: what a prompt is built from, and
//!   its errors.
//! - `builder.rs`: the user prompt of a run, from `sections.rs` (file, selection, changes,
//!   diagnostics, instruction) and `tasks.rs` (what each action asks, the findings format);
//!   `scope_prompt.rs` for a folder or workspace, which lists its files instead.
//! - `limits.rs`, `document.rs`, `code_blocks.rs`: how much text is embedded, and how it is shown.
//! - `workspace_paths.rs`: paths relative to and inside the workspace.
//! - `system_prompt.rs`: the addendum to the CLI's system prompt.
//! - `instruction_comments.rs`: `claude: …` / `TODO: …` comments in the editor's text.

mod builder;
mod code_blocks;
mod context;
mod document;
mod instruction_comments;
mod limits;
mod options;
mod scope_prompt;
mod sections;
mod system_prompt;
mod tasks;
#[cfg(test)]
mod tests;
mod workspace_paths;

pub use builder::{build_prompt, build_reference_prompt};
pub use code_blocks::fenced;
pub use context::{PromptContext, PromptDiagnostic, Selection};
pub use instruction_comments::{InstructionKind, instruction_comments};
pub use options::{
    Action, ActionOptions, AnalyzeOptions, Depth, GenerateOptions, ReviewOptions, ReviewScope,
    Severity,
};
pub use system_prompt::system_prompt_addendum;
#[cfg(test)]
pub(crate) use tasks::findings_example;
pub use workspace_paths::scope_directory;
