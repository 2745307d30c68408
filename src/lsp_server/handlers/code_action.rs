//! Code actions: cheap to list (no CLI call); each carries a command that starts the run.

use serde_json::json;

use crate::lsp_server::state::ServerState;
use crate::model::prompt::{InstructionKind, instruction_comments};
use crate::protocol::lsp::{
    CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams, CodeActionResponse, Command,
    Diagnostic, Range, TextDocumentIdentifier,
};
use crate::protocol::lsp_ext::{
    ActionOptions, ActionParams, AnalyzeOptions, Depth, ReviewScope, Severity, commands,
};

const FIX_DIAGNOSTICS: &str =
    "Fix the diagnostics listed above, with the smallest change that addresses their cause.";

/// Presets offered on a non-empty selection: (title, command, instruction).
const PRESETS: &[(&str, &str, &str)] = &[
    ("simplify", commands::REFACTOR, "Simplify the selected code without changing its behaviour."),
    (
        "add documentation",
        commands::REFACTOR,
        "Add documentation comments to the selected code, in the language's usual doc style.",
    ),
    (
        "add tests",
        commands::GENERATE,
        "Write tests for the selected code, in the project's existing test style and location.",
    ),
];

pub fn code_actions(state: &ServerState, params: CodeActionParams) -> Option<CodeActionResponse> {
    let uri = params.text_document.uri;
    let text = state.documents.read().get(&uri).map(|doc| doc.text())?;
    let range = params.range;
    let document = TextDocumentIdentifier { uri };
    let base = ActionParams {
        text_document: document,
        range: None,
        instruction: None,
        session_id: None,
        fork: false,
        work_done_token: None,
        diagnostics: Vec::new(),
        options: ActionOptions::default(),
        no_cache: false,
    };
    let selection = ActionParams { range: Some(range), ..base.clone() };
    let has_selection = range.start != range.end;
    let mut actions = Vec::new();
    // Apply / fix / dismiss on the findings here come first: they are about this exact spot.
    let on_findings = crate::lsp_server::handlers::findings::code_actions(
        state,
        &base.text_document.uri,
        range,
        &params.context.diagnostics,
    );
    actions.extend(on_findings);
    // So are the changes a run proposed here for review.
    actions.extend(crate::lsp_server::handlers::review::code_actions(
        state,
        &base.text_document.uri,
        range,
        &params.context.diagnostics,
    ));
    // Refining what a conversation wrote here continues that conversation.
    actions.extend(crate::lsp_server::handlers::sessions::refine_actions(
        state,
        &base.text_document.uri,
        range,
        &text,
    ));

    for comment in instruction_comments(&text, selected_lines(range)) {
        let instruction = match comment.kind {
            InstructionKind::Claude => comment.instruction.clone(),
            InstructionKind::Todo => format!("Do this TODO: {}", comment.instruction),
            InstructionKind::Fixme => format!("Fix this FIXME: {}", comment.instruction),
        };
        let instruction = format!(
            "{instruction}\n(This comes from the instruction comment on line {}; remove that comment when done.)",
            comment.line + 1
        );
        let line_range = Range::new(
            crate::protocol::lsp::Position::new(comment.line, 0),
            crate::protocol::lsp::Position::new(comment.line + 1, 0),
        );
        let params = ActionParams {
            range: Some(if has_selection { range } else { line_range }),
            instruction: Some(instruction),
            ..base.clone()
        };
        actions.push(action(
            &format!("Claude: {}", comment.instruction),
            CodeActionKind::REFACTOR_REWRITE,
            commands::REFACTOR,
            &params,
        ));
    }

    if has_selection {
        for (title, command, instruction) in PRESETS {
            let params =
                ActionParams { instruction: Some((*instruction).to_owned()), ..selection.clone() };
            actions.push(action(
                &format!("Claude: {title}"),
                CodeActionKind::REFACTOR_REWRITE,
                command,
                &params,
            ));
        }
    }

    let diagnostics: Vec<Diagnostic> = params
        .context
        .diagnostics
        .into_iter()
        .filter(|d| d.source.as_deref() != Some("claude"))
        .collect();
    if !diagnostics.is_empty() {
        let params = ActionParams {
            range: Some(range),
            instruction: Some(FIX_DIAGNOSTICS.to_owned()),
            diagnostics,
            ..base.clone()
        };
        actions.push(action(
            "Claude: fix diagnostics",
            CodeActionKind::QUICKFIX,
            commands::REFACTOR,
            &params,
        ));
    }

    if has_selection {
        let review = with_scope(&selection, ReviewScope::Selection);
        actions.push(action(
            "Claude: review selection",
            CodeActionKind::SOURCE,
            commands::REVIEW,
            &review,
        ));
        actions.push(action(
            "Claude: explain selection",
            CodeActionKind::SOURCE,
            commands::ANALYZE,
            &selection,
        ));
    }
    let file = with_scope(&base, ReviewScope::File);
    actions.push(action("Claude: review file", CodeActionKind::SOURCE, commands::REVIEW, &file));
    let changes = with_scope(&base, ReviewScope::Changes);
    actions.push(action(
        "Claude: review my changes",
        CodeActionKind::SOURCE,
        commands::REVIEW,
        &changes,
    ));
    actions.push(action("Claude: analyze file", CodeActionKind::SOURCE, commands::ANALYZE, &base));
    // The common options, for editors without a way to pass them (Helix, Zed).
    for (title, command, params) in option_variants(&base) {
        actions.push(action(title, CodeActionKind::SOURCE, command, &params));
    }

    if let Some(only) = &params.context.only {
        actions.retain(|a| match a {
            CodeActionOrCommand::CodeAction(a) => a.kind.as_ref().is_some_and(|kind| {
                only.iter().any(|wanted| kind.as_str().starts_with(wanted.as_str()))
            }),
            CodeActionOrCommand::Command(_) => true,
        });
    }
    Some(actions)
}

/// The lines a range covers. A selection of whole lines ends at character 0 of the line after
/// them (editors select lines that way): that line is not part of it.
fn selected_lines(range: Range) -> std::ops::RangeInclusive<u32> {
    let last = if range.end.character == 0 && range.end.line > range.start.line {
        range.end.line - 1
    } else {
        range.end.line
    };
    range.start.line..=last
}

/// The actions with their common options set: (title, command, params).
fn option_variants(base: &ActionParams) -> Vec<(&'static str, &'static str, ActionParams)> {
    let file = with_scope(base, ReviewScope::File);
    let mut warnings = file.clone();
    warnings.options.review.min_severity = Severity::Warning;
    let mut with_fixes = file;
    with_fixes.options.review.fix = true;
    let mut deep = base.clone();
    deep.options.analyze = AnalyzeOptions { depth: Depth::Deep, include_tests: true };
    vec![
        ("Claude: review file (warnings and up)", commands::REVIEW, warnings),
        ("Claude: review file with fixes", commands::REVIEW, with_fixes),
        ("Claude: review folder", commands::REVIEW, with_scope(base, ReviewScope::Folder)),
        ("Claude: review workspace", commands::REVIEW, with_scope(base, ReviewScope::Workspace)),
        ("Claude: analyze file deeply, with its tests", commands::ANALYZE, deep),
        ("Claude: analyze folder", commands::ANALYZE, with_scope(base, ReviewScope::Folder)),
    ]
}

fn with_scope(params: &ActionParams, scope: ReviewScope) -> ActionParams {
    let mut params = params.clone();
    params.options.review.scope = Some(scope);
    params
}

fn action(
    title: &str,
    kind: CodeActionKind,
    command: &str,
    params: &ActionParams,
) -> CodeActionOrCommand {
    CodeActionOrCommand::CodeAction(CodeAction {
        title: title.to_owned(),
        kind: Some(kind),
        command: Some(Command {
            title: title.to_owned(),
            command: command.to_owned(),
            arguments: Some(vec![json!(params)]),
        }),
        ..CodeAction::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::lsp::Position;

    fn range(sl: u32, sc: u32, el: u32, ec: u32) -> Range {
        Range::new(Position::new(sl, sc), Position::new(el, ec))
    }

    #[test]
    fn a_selection_of_whole_lines_leaves_out_the_line_it_ends_on() {
        assert_eq!(selected_lines(range(3, 0, 5, 0)), 3..=4);
        assert_eq!(selected_lines(range(3, 2, 5, 1)), 3..=5);
        // A cursor, or an empty line's selection, keeps its line.
        assert_eq!(selected_lines(range(4, 0, 4, 0)), 4..=4);
        // A reversed range covers nothing.
        assert!(selected_lines(range(5, 0, 3, 0)).is_empty());
    }
}
