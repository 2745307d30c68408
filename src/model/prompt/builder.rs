//! The user prompt of one run, with the files inlined or referenced.

use super::context::{PromptContext, PromptError};
use super::document::Document;
use super::limits::TextLimits;
use super::options::{Action, ReviewScope};
use super::scope_prompt::build_scope_prompt;
use super::sections::{
    FileView, Target, push_changes, push_diagnostics, push_file, push_header, push_instruction,
    push_selection, push_workspace,
};
use super::tasks::{push_analyze_task, push_generate_task, push_refactor_task, push_review_task};
use super::workspace_paths::{display_path, relative_to_workspace, workspace_directory};

/// Builds the user prompt of one run.
pub fn build_prompt(ctx: &PromptContext) -> Result<String, PromptError> {
    build_prompt_with(ctx, &TextLimits::DEFAULT)
}

/// The prompt of one run with files referenced instead of inlined: the agent reads what it
/// needs. For a run whose prompt is over the model's context window; `None` when it would be no
/// smaller than [`build_prompt`]'s.
pub fn build_reference_prompt(ctx: &PromptContext) -> Result<Option<String>, PromptError> {
    let full = build_prompt(ctx)?;
    let references = build_prompt_with(ctx, &TextLimits::REFERENCES)?;
    Ok((references.len() < full.len()).then_some(references))
}

/// The prompt with text embedded within `limits` (the tests shrink them).
pub(super) fn build_prompt_with(
    ctx: &PromptContext,
    limits: &TextLimits,
) -> Result<String, PromptError> {
    let instruction = ctx.instruction.filter(|text| !text.trim().is_empty());
    if ctx.action.is_edit() && instruction.is_none() {
        return Err(PromptError::MissingInstruction { action: ctx.action });
    }
    if let Some(scope) = ctx.options.review.scope.filter(|scope| scope.is_tree()) {
        return build_scope_prompt(ctx, scope, instruction);
    }
    let relative = display_path(&relative_to_workspace(ctx.workspace_root, ctx.file_path)?);
    let document = Document::new(ctx.text);
    let selection =
        ctx.selection.as_ref().map(|selection| document.check(selection)).transpose()?;
    let scope = match (ctx.action, ctx.options.review.scope, &selection) {
        (Action::Review, Some(ReviewScope::Selection), None) => {
            return Err(PromptError::MissingSelection);
        }
        (Action::Review, Some(scope), _) => Some(scope),
        (Action::Review, None, Some(_)) => Some(ReviewScope::Selection),
        (Action::Review, None, None) => Some(ReviewScope::File),
        _ => None,
    };
    let changes = match scope {
        Some(ReviewScope::Changes) => match ctx.changes_diff {
            None => return Err(PromptError::MissingChanges),
            Some(diff) if diff.trim().is_empty() => return Err(PromptError::NoChanges),
            Some(diff) => Some(diff),
        },
        _ => None,
    };
    let directory = match (ctx.action, &ctx.options.generate.directory) {
        (Action::Generate, Some(directory)) => workspace_directory(directory)?,
        _ => None,
    };
    // The selection a review of the whole file or of the changes does not look at.
    let selection =
        selection.filter(|_| !matches!(scope, Some(ReviewScope::File | ReviewScope::Changes)));

    let file = FileView { relative: &relative, language_id: ctx.language_id, document: &document };
    let mut prompt = String::new();
    push_header(&mut prompt, ctx.action);
    push_workspace(&mut prompt, ctx.edit_root.unwrap_or(ctx.workspace_root));
    match changes {
        Some(diff) => push_changes(&mut prompt, diff, limits),
        None => {
            push_file(&mut prompt, &file, ctx.action, selection.as_ref(), limits);
            if let Some(selection) = &selection {
                push_selection(&mut prompt, &file, selection, limits);
            }
        }
    }
    push_diagnostics(&mut prompt, ctx.diagnostics);
    if let Some(instruction) = instruction {
        push_instruction(&mut prompt, instruction);
    }
    let target = Target { relative: &relative, selection: selection.as_ref() };
    match ctx.action {
        Action::Generate => push_generate_task(&mut prompt, &target, directory.as_deref()),
        Action::Refactor => push_refactor_task(&mut prompt, &target),
        Action::Analyze => {
            push_analyze_task(&mut prompt, &target, &ctx.options.analyze, instruction.is_some())
        }
        Action::Review => push_review_task(&mut prompt, &target, scope, &ctx.options.review),
    }
    Ok(prompt)
}
