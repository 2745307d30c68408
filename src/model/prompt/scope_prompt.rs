//! The prompt of a folder or workspace scope, which lists its files instead of showing them.

use std::fmt::Write as _;

use super::code_blocks::fenced;
use super::context::{PromptContext, PromptError};
use super::options::{Action, Depth, ReviewScope};
use super::sections::{push_header, push_instruction, push_workspace};
use super::tasks::{push_findings_format, push_review_criteria};

/// The prompt of a folder or workspace scope: the files are listed, and the agent reads the
/// ones it needs, so the prompt stays small however many there are.
pub(super) fn build_scope_prompt(
    ctx: &PromptContext,
    scope: ReviewScope,
    instruction: Option<&str>,
) -> Result<String, PromptError> {
    let scope_name = if scope == ReviewScope::Folder { "folder" } else { "workspace" };
    if !matches!(ctx.action, Action::Analyze | Action::Review) {
        return Err(PromptError::ScopeNotForAction(scope_name));
    }
    let files = ctx.scope_files.ok_or(PromptError::MissingScopeFiles)?;
    let place = match &files.directory {
        Some(directory) => format!("the folder `{directory}/`"),
        None => "the whole workspace".to_owned(),
    };
    if files.total == 0 {
        return Err(PromptError::EmptyScope(place));
    }
    let mut prompt = String::new();
    push_header(&mut prompt, ctx.action);
    push_workspace(&mut prompt, ctx.workspace_root);
    let _ = write!(
        prompt,
        "\n## Files in scope\n\nThis {} covers {place}: {} file{}",
        if ctx.action == Action::Review { "review" } else { "analysis" },
        files.total,
        if files.total == 1 { "" } else { "s" },
    );
    if files.from_git {
        prompt.push_str(" (tracked, and untracked ones `.gitignore` does not exclude)");
    }
    prompt.push('.');
    if files.tests_left_out > 0 {
        let _ = write!(prompt, " {} test files are left out.", files.tests_left_out);
    }
    prompt.push_str(
        " The files are listed, not shown: read each one you need with the Read tool.\n\n",
    );
    prompt.push_str(&fenced(&files.listed.join("\n"), "text"));
    let unlisted = files.total - files.listed.len();
    if unlisted > 0 {
        let _ = writeln!(
            prompt,
            "\n…and {unlisted} more files, not listed here: find them with the Glob tool."
        );
    }
    if let Some(instruction) = instruction {
        push_instruction(&mut prompt, instruction);
    }
    prompt.push_str("\n## What to do\n\n");
    let analyze = &ctx.options.analyze;
    match ctx.action {
        Action::Review => {
            let _ = writeln!(prompt, "- Review the code of {place}.");
        }
        _ => {
            let _ = writeln!(prompt, "- Analyze the code of {place}.");
            prompt.push_str(if instruction.is_some() {
                "- Answer the user's instruction above.\n"
            } else {
                "- Explain what the code does and how it fits together, and point out problems \
                 you notice: bugs, unhandled edge cases and errors, performance.\n"
            });
        }
    }
    prompt.push_str(match analyze.depth {
        Depth::Quick => {
            "- Be quick: read only the files most likely to matter (entry points, the largest \
             or most complex files) and report the most important points.\n"
        }
        Depth::Normal => {
            "- Read the files that matter, one at a time; skip generated, vendored and data \
             files.\n"
        }
        Depth::Deep => {
            "- Be thorough: read every file in scope, and trace how they call each other.\n"
        }
    });
    if analyze.include_tests {
        prompt.push_str(
            "- The tests are in scope too: look at them, and say which behaviour they leave \
             untested.\n",
        );
    }
    if ctx.action == Action::Review {
        push_review_criteria(&mut prompt, &ctx.options.review);
    }
    prompt.push_str(
        "- Report problems in the files in scope only, each with its own file's `path`.\n\
         - This is a read-only task: do not create, change or delete any file.\n\
         - Report each problem as a finding (format below).\n",
    );
    let example = files.listed.first().map_or("src/lib.rs", String::as_str);
    let (fix, summary) = match ctx.action {
        Action::Review => (ctx.options.review.fix, "a short overall assessment, in Markdown."),
        _ => (false, "your whole answer, in Markdown, referring to code as `path:line`."),
    };
    push_findings_format(&mut prompt, example, fix, summary);
    Ok(prompt)
}
