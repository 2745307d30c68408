//! The "What to do" section of each action, and the findings format analyze and review answer in.

use std::fmt::Write as _;

use super::code_blocks::fenced;
use super::options::{AnalyzeOptions, Depth, ReviewOptions, ReviewScope, Severity};
use super::sections::Target;

pub(super) fn push_generate_task(prompt: &mut String, target: &Target, directory: Option<&str>) {
    prompt.push_str("\n## What to do\n\n");
    match target.selection {
        Some(selection) => {
            let _ = writeln!(
                prompt,
                "- The selection ({} of `{}`) marks where the code belongs: replace the selected \
                 text when it is a placeholder or a comment describing the code, otherwise add the \
                 code there.",
                selection.lines_label(),
                target.relative
            );
        }
        None => {
            let _ = writeln!(
                prompt,
                "- Add the code to `{}` where it fits best, or to new files when the instruction \
                 asks for them.",
                target.relative
            );
        }
    }
    if let Some(directory) = directory {
        let _ = writeln!(
            prompt,
            "- Put new files in `{directory}/` (relative to the workspace root); create the \
             directory if it does not exist."
        );
    }
    prompt.push_str(
        "- Follow the conventions of the surrounding code: style, naming, error handling, \
         imports.\n",
    );
    push_edit_rules(prompt);
}

pub(super) fn push_refactor_task(prompt: &mut String, target: &Target) {
    prompt.push_str("\n## What to do\n\n");
    let _ = writeln!(
        prompt,
        "- Refactor {}. Change other code only where the refactoring requires it (callers, \
         imports, declarations).",
        target.describe()
    );
    prompt.push_str("- Keep the behaviour the same unless the instruction asks for a change.\n");
    push_edit_rules(prompt);
}

fn push_edit_rules(prompt: &mut String) {
    prompt.push_str(
        "- Make the changes by editing the files in place: the Edit tool for existing files, the \
         Write tool for new ones. Do not just print the code: the editor picks up your edits from \
         disk and shows them to the user for review.\n\
         - Do not commit, stage, stash or reset anything with git.\n\
         - When you are done, answer with a short summary of what you changed.\n",
    );
}

pub(super) fn push_analyze_task(
    prompt: &mut String,
    target: &Target,
    options: &AnalyzeOptions,
    has_instruction: bool,
) {
    prompt.push_str("\n## What to do\n\n");
    let _ = writeln!(prompt, "- Analyze {}.", target.describe());
    prompt.push_str(if has_instruction {
        "- Answer the user's instruction above.\n"
    } else {
        "- Explain what the code does and how, and point out problems you notice: bugs, unhandled \
         edge cases and errors, performance.\n"
    });
    prompt.push_str(match options.depth {
        Depth::Quick => {
            "- Be quick: the most important points only, without exploring other files.\n"
        }
        Depth::Normal => "- Read related code in other files where it helps the answer.\n",
        Depth::Deep => {
            "- Be thorough: trace callers and callees across the workspace, and consider edge \
             cases, error handling, concurrency and performance.\n"
        }
    });
    if options.include_tests {
        prompt.push_str(
            "- Also find the tests that cover this code, and say which behaviour they leave \
             untested.\n",
        );
    }
    prompt.push_str(
        "- This is a read-only task: do not create, change or delete any file.\n\
         - Report each problem you find as a finding (format below).\n",
    );
    push_findings_format(
        prompt,
        target.relative,
        false,
        "your whole answer, in Markdown, referring to code as `path:line`.",
    );
}

pub(super) fn push_review_task(
    prompt: &mut String,
    target: &Target,
    scope: Option<ReviewScope>,
    options: &ReviewOptions,
) {
    prompt.push_str("\n## What to do\n\n");
    match scope {
        Some(ReviewScope::Changes) => prompt.push_str(
            "- Review the uncommitted changes above. Read the changed files where you need more \
             context, but report problems in the changed lines only.\n",
        ),
        _ => {
            let _ = writeln!(prompt, "- Review {}.", target.describe());
        }
    }
    push_review_criteria(prompt, options);
    prompt.push_str(
        "- This is a read-only task: do not create, change or delete any file.\n\
         - Report each problem as a finding (format below).\n",
    );
    push_findings_format(
        prompt,
        target.relative,
        options.fix,
        "a short overall assessment, in Markdown.",
    );
}

/// What a review looks for, and the least severity it reports.
pub(super) fn push_review_criteria(prompt: &mut String, options: &ReviewOptions) {
    prompt.push_str(
        "- Look for bugs, security problems, missing error handling, race conditions, performance \
         problems and unclear code. Do not report matters of taste.\n",
    );
    if options.min_severity == Severity::Hint {
        prompt.push_str("- Report findings of every severity.\n");
    } else {
        let names: Vec<&str> = Severity::ALL.iter().map(|severity| severity.name()).collect();
        let _ = writeln!(
            prompt,
            "- Report only findings of severity `{}` or more severe (from most to least \
             severe: {}).",
            options.min_severity.name(),
            names.join(", ")
        );
    }
}

/// The fields of the example finding after its path.
const EXAMPLE_FINDING_FIELDS: &str = concat!(
    r#""startLine": 12, "endLine": 14, "severity": "warning", "category": "bug", "#,
    r#""title": "Short name of the problem", "#,
    r#""explanation": "What is wrong and why it matters", "#,
    r#""snippet": "the code of lines 12-14, copied exactly", "suggestion": "How to fix it""#,
);

/// The example report the prompt shows (for tests that check it against the parser).
#[cfg(test)]
pub(crate) fn findings_example(fix: bool) -> serde_json::Value {
    let mut prompt = String::new();
    push_findings_format(&mut prompt, "dir/a \"quoted\".rs", fix, "the answer.");
    let start = prompt.find("```json\n").unwrap_or(0) + "```json\n".len();
    let end = start + prompt[start..].find("\n```").unwrap_or(0);
    serde_json::from_str(&prompt[start..end]).unwrap_or_default()
}

/// How findings come back: the structured output the server turns into diagnostics (the CLI's
/// StructuredOutput tool, see `findings::schema`), or the same object in a fenced block.
pub(super) fn push_findings_format(
    prompt: &mut String,
    example_path: &str,
    fix: bool,
    summary: &str,
) {
    let example_path = serde_json::Value::from(example_path);
    let (fix_field, fix_rule) = if fix {
        (
            r#", "fix": {"oldText": "the exact code to replace", "newText": "its replacement"}"#,
            "Give every finding you can fix a `fix`: `oldText` is the exact current code to \
             replace, copied character for character (indentation included), and `newText` is \
             the code that replaces it.",
        )
    } else {
        ("", "Leave out `fix`.")
    };
    let example = format!(
        r#"{{"findings": [{{"path": {example_path}, {EXAMPLE_FINDING_FIELDS}{fix_field}}}], "summary": "…"}}"#
    );
    let _ = write!(
        prompt,
        "\n## Findings format\n\nReturn your result as structured output (the StructuredOutput \
         tool), in exactly this shape:\n\n{}\n\n\
         - `path` is relative to the workspace root; lines are 1-based and inclusive.\n\
         - `severity` is one of error, warning, info, hint; `category` is one of bug, security, \
         performance, correctness, maintainability, style, test.\n\
         - `snippet` is how the editor finds the spot: copy the code the finding is about \
         character for character from the file (a line or a few, enough to be unique nearby).\n\
         - {fix_rule}\n\
         - Optional: `startColumn` and `endColumn` (1-based) narrow the spot; `related` lists \
         other places that matter, as `[{{\"path\": …, \"line\": …, \"message\": …}}]`.\n\
         - `summary`: {summary}\n\
         - With nothing to report, `findings` is an empty list. If you have no StructuredOutput \
         tool, end your answer with this object in one fenced `json` block instead.\n",
        fenced(&example, "json").trim_end()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_findings_example_is_valid_json() {
        for fix in [false, true] {
            let example = findings_example(fix);
            let finding = &example["findings"][0];
            assert_eq!(finding["path"], "dir/a \"quoted\".rs");
            assert_eq!(
                (finding["startLine"].as_u64(), finding["endLine"].as_u64()),
                (Some(12), Some(14))
            );
            assert_eq!(finding.get("fix").is_some(), fix);
        }
    }
}
