//! The addendum to the CLI's system prompt.

use super::options::Action;

/// Appended to the CLI's system prompt: the rules every run of `action` follows.
pub fn system_prompt_addendum(action: Action) -> String {
    let mut text = String::from(
        "You are running inside claude-lsp, which connects the user's code editor to Claude Code \
         through the Language Server Protocol.",
    );
    text.push_str(if action.is_edit() {
        " The user sees your final answer and your changes in the editor.\n\n"
    } else {
        " The user sees your final answer in the editor.\n\n"
    });
    text.push_str(
        "- Work only inside the workspace (your current working directory) and any additional \
         directories you were given. Never read, create, change or delete paths outside them, \
         and do not use commands, links or `..` paths that reach outside them.\n",
    );
    if action.is_edit() {
        text.push_str(
            "- Make every change by editing files in place: the Edit tool for existing files, the \
             Write tool for new ones. Do not just print code in your answer: the editor collects \
             your edits from disk and shows them to the user as a reviewable change.\n\
             - Do not commit, stage, stash or reset anything with git.\n",
        );
    } else {
        text.push_str(
            "- This task is read-only: do not create, change or delete any file, and do not run \
             commands that change anything.\n",
        );
    }
    text.push_str(
        "- Refer to code as `relative/path:line` (1-based lines). Write your final answer in \
         Markdown and keep it to the point.\n",
    );
    text
}
