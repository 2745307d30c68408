//! Whole prompts, built through the public entry points: each action and scope, the limits on
//! embedded text, the checks on the context.

use std::path::Path;

use pretty_assertions::assert_eq;

use super::builder::{build_prompt, build_prompt_with, build_reference_prompt};
use super::code_blocks::fenced;
use super::context::{PromptContext, PromptDiagnostic, PromptError, Selection};
use super::limits::{MAX_FILE_BYTES, TextLimits, WINDOW_BYTES};
use super::options::{
    Action, ActionOptions, AnalyzeOptions, Depth, ReviewOptions, ReviewScope, Severity,
};
use super::system_prompt::system_prompt_addendum;
use super::workspace_paths::workspace_directory;
use crate::model::scope::ScopeFiles;

const ROOT: &str = "/home/u/proj";
const FILE: &str = "/home/u/proj/src/lib.rs";
const MIRROR: &str = "/home/u/.cache/claude-lsp/mirrors/proj-1a2b";

const RUST: &str = "use std::collections::HashMap;\n\
    \n\
    /// Counts words.\n\
    pub fn count(text: &str) -> HashMap<String, usize> {\n\
    \x20   let mut counts = HashMap::new();\n\
    \x20   for word in text.split(' ') {\n\
    \x20       *counts.entry(word.to_string()).or_insert(0) += 1;\n\
    \x20   }\n\
    \x20   counts\n\
    }\n\
    \n\
    pub fn top(counts: &HashMap<String, usize>) -> Option<&String> {\n\
    \x20   counts.iter().max_by_key(|(_, n)| *n).map(|(w, _)| w)\n\
    }\n";

fn context(action: Action) -> PromptContext<'static> {
    PromptContext {
        action,
        workspace_root: Path::new(ROOT),
        file_path: Path::new(FILE),
        language_id: "rust",
        text: RUST,
        selection: None,
        diagnostics: &[],
        instruction: None,
        edit_root: action.is_edit().then_some(Path::new(MIRROR)),
        options: ActionOptions::default(),
        changes_diff: None,
        scope_files: None,
    }
}

/// Lines 6–8 (1-based) of `RUST`, selected as whole lines (ending at column 0 of line 9).
fn loop_selection() -> Option<Selection> {
    let text: String = RUST.lines().skip(5).take(3).map(|line| format!("{line}\n")).collect();
    Some(Selection { start_line: 5, end_line: 8, text })
}

fn build(ctx: &PromptContext) -> String {
    build_prompt(ctx).unwrap()
}

fn small_limits() -> TextLimits {
    TextLimits {
        max_file_lines: 20,
        max_file_bytes: 10_000,
        window_lines: 7,
        window_bytes: 10_000,
        max_line_chars: 30,
        inline_text: true,
    }
}

#[test]
fn generate_at_the_selection_with_a_directory() {
    let mut ctx = context(Action::Generate);
    ctx.selection = Some(Selection { start_line: 10, end_line: 11, text: "\n".into() });
    ctx.instruction = Some("Add a function that returns the words sorted by count.");
    ctx.options.generate.directory = Some("src/stats/".into());
    insta::assert_snapshot!(build(&ctx));
}

#[test]
fn generate_without_selection() {
    let mut ctx = context(Action::Generate);
    ctx.instruction = Some("Add unit tests for `count`.");
    insta::assert_snapshot!(build(&ctx));
}

#[test]
fn refactor_selection_with_diagnostics() {
    let diagnostics = [
        PromptDiagnostic {
            line: 6,
            severity: "warning",
            source: Some("clippy".into()),
            message: "this allocates a String for every word\nconsider `entry_ref`".into(),
        },
        PromptDiagnostic {
            line: 7,
            severity: "hint",
            source: None,
            message: "unnecessary braces".into(),
        },
    ];
    let mut ctx = context(Action::Refactor);
    ctx.selection = loop_selection();
    ctx.diagnostics = &diagnostics;
    ctx.instruction = Some("Use split_whitespace and avoid the allocation.");
    insta::assert_snapshot!(build(&ctx));
}

#[test]
fn refactor_whole_file_with_crlf_text() {
    let crlf = RUST.replace('\n', "\r\n");
    let mut ctx = context(Action::Refactor);
    ctx.text = &crlf;
    ctx.instruction = Some("Rename `count` to `word_counts`.");
    let prompt = build(&ctx);
    assert!(!prompt.contains('\r'), "the numbered text must not carry CRs");
    insta::assert_snapshot!(prompt);
}

#[test]
fn analyze_file_quickly_without_instruction() {
    let mut ctx = context(Action::Analyze);
    ctx.options.analyze.depth = Depth::Quick;
    insta::assert_snapshot!(build(&ctx));
}

#[test]
fn analyze_selection_deeply_with_tests_and_instruction() {
    let mut ctx = context(Action::Analyze);
    ctx.selection = loop_selection();
    ctx.instruction = Some("Why is this slow on large inputs?");
    ctx.options.analyze = AnalyzeOptions { depth: Depth::Deep, include_tests: true };
    insta::assert_snapshot!(build(&ctx));
}

#[test]
fn review_selection_with_fixes_and_min_severity() {
    let mut ctx = context(Action::Review);
    ctx.selection = loop_selection();
    ctx.options.review = ReviewOptions { min_severity: Severity::Warning, scope: None, fix: true };
    insta::assert_snapshot!(build(&ctx));
}

#[test]
fn review_file_with_an_instruction() {
    let diagnostics = [PromptDiagnostic {
        line: 12,
        severity: "error",
        source: Some("rustc".into()),
        message: "mismatched types".into(),
    }];
    let mut ctx = context(Action::Review);
    // The file scope ignores the selection.
    ctx.selection = loop_selection();
    ctx.diagnostics = &diagnostics;
    ctx.instruction = Some("Focus on panics.");
    ctx.options.review =
        ReviewOptions { min_severity: Severity::Hint, scope: Some(ReviewScope::File), fix: false };
    insta::assert_snapshot!(build(&ctx));
}

#[test]
fn review_changes_embeds_the_diff() {
    let diff = "diff --git a/README.md b/README.md\n\
        --- a/README.md\n\
        +++ b/README.md\n\
        @@ -1,3 +1,6 @@\n\
        \x20# proj\n\
        +\n\
        +````sh\n\
        +cargo run\n\
        +````\n\
        \n\
        untracked file: src/new.rs\n\
        +pub fn new() {}\n";
    let mut ctx = context(Action::Review);
    ctx.options.review.scope = Some(ReviewScope::Changes);
    ctx.changes_diff = Some(diff);
    let prompt = build(&ctx);
    assert!(prompt.contains("`````diff\n"), "the fence must be longer than the diff's ```` run");
    insta::assert_snapshot!(prompt);
}

#[test]
fn a_reference_prompt_names_the_file_selection_and_changes_instead_of_inlining_them() {
    let mut ctx = context(Action::Refactor);
    ctx.instruction = Some("use a BTreeMap");
    ctx.selection = loop_selection();
    let full = build(&ctx);
    let references = build_reference_prompt(&ctx).unwrap().unwrap();
    assert!(references.len() < full.len());
    assert!(full.contains("*counts.entry"), "{full}");
    assert!(!references.contains("*counts.entry"), "{references}");
    assert!(references.contains("read `src/lib.rs` with the Read tool"), "{references}");
    assert!(references.contains("lines 6–8 of `src/lib.rs`: read those lines"), "{references}");
    assert!(references.contains("use a BTreeMap"), "the instruction stays: {references}");

    let mut review = context(Action::Review);
    review.options.review.scope = Some(ReviewScope::Changes);
    let diff = "diff --git a/README.md b/README.md\n+x\ndiff --git a/src/new.rs b/src/new.rs\n\
                new file (untracked)\n+pub fn new() {}\nnew file (untracked, binary or large): logo.png\n";
    review.changes_diff = Some(diff);
    let references = build_reference_prompt(&review).unwrap().unwrap();
    assert!(!references.contains("pub fn new"), "{references}");
    for name in ["README.md", "src/new.rs", "logo.png"] {
        assert!(references.contains(&format!("- `{name}`\n")), "{name}: {references}");
    }

    // Nothing inlined, nothing to save: no smaller prompt.
    let mut empty = context(Action::Analyze);
    empty.text = "";
    assert_eq!(build_reference_prompt(&empty).unwrap(), None);
}

#[test]
fn truncated_file_shows_a_window_around_the_selection() {
    let text: String = (1..=60)
        .map(|n| {
            if n == 33 {
                format!("let long = \"{}\";\n", "x".repeat(80))
            } else {
                format!("line {n}\n")
            }
        })
        .collect();
    let mut ctx = context(Action::Refactor);
    ctx.text = &text;
    ctx.selection =
        Some(Selection { start_line: 31, end_line: 32, text: "line 32\nlet long".into() });
    ctx.instruction = Some("Tidy up.");
    insta::assert_snapshot!(build_prompt_with(&ctx, &small_limits()).unwrap());
}

#[test]
fn markdown_with_backticks_gets_a_longer_fence() {
    let text = "# Notes\n\n```rust\nfn main() {}\n```\n\nInline `code` too.\n";
    let mut ctx = context(Action::Analyze);
    ctx.file_path = Path::new("/home/u/proj/docs/notes.md");
    ctx.language_id = "markdown";
    ctx.text = text;
    insta::assert_snapshot!(build(&ctx));
}

#[test]
fn a_cursor_without_selected_text_is_named_as_such() {
    let mut ctx = context(Action::Generate);
    ctx.selection = Some(Selection { start_line: 10, end_line: 10, text: String::new() });
    ctx.instruction = Some("Add a `bottom` function.");
    let prompt = build(&ctx);
    assert!(
        prompt.contains("## Cursor\n\nThe cursor is on line 11 of `src/lib.rs`.\n"),
        "{prompt}"
    );
}

#[test]
fn system_prompt_addenda() {
    insta::assert_snapshot!("addendum_edit", system_prompt_addendum(Action::Refactor));
    insta::assert_snapshot!("addendum_read_only", system_prompt_addendum(Action::Review));
    assert_eq!(system_prompt_addendum(Action::Generate), system_prompt_addendum(Action::Refactor));
    assert_eq!(system_prompt_addendum(Action::Analyze), system_prompt_addendum(Action::Review));
}

#[test]
fn edit_actions_need_an_instruction() {
    for action in [Action::Generate, Action::Refactor] {
        for instruction in [None, Some(""), Some(" \n\t")] {
            let mut ctx = context(action);
            ctx.instruction = instruction;
            assert_eq!(build_prompt(&ctx), Err(PromptError::MissingInstruction { action }));
        }
    }
    assert_eq!(
        PromptError::MissingInstruction { action: Action::Refactor }.to_string(),
        "refactor needs an instruction: say what to refactor"
    );
    for action in [Action::Analyze, Action::Review] {
        assert!(build_prompt(&context(action)).is_ok(), "{action}");
    }
}

#[test]
fn the_instruction_arrives_verbatim() {
    let hostile =
        "; rm -rf ~ $(whoami) `id` \\n \"quoted\" 'single' <!-- --> ${HOME} %s {{x}}\n  indented";
    for action in [Action::Generate, Action::Analyze, Action::Refactor, Action::Review] {
        let mut ctx = context(action);
        ctx.instruction = Some(hostile);
        let prompt = build(&ctx);
        assert!(prompt.contains(&format!("```text\n{hostile}\n```\n")), "{prompt}");
    }
}

#[test]
fn fences_outgrow_every_backtick_run_inside() {
    for run in 0..9 {
        let content = format!("a {} b", "`".repeat(run));
        let block = fenced(&content, "text");
        let fence_len = block.chars().take_while(|c| *c == '`').count();
        assert!(fence_len >= 3 && fence_len > run, "run {run}: {block}");
        assert!(block.ends_with(&format!("\n{}\n", "`".repeat(fence_len))));
    }
    let mut ctx = context(Action::Refactor);
    ctx.instruction = Some("Wrap it in ```` fences ``````");
    assert!(build(&ctx).contains("```````text\nWrap it in ```` fences ``````\n```````\n"));
}

#[test]
fn an_edit_prompt_never_names_the_real_workspace() {
    let mut ctx = context(Action::Refactor);
    ctx.instruction = Some("Tidy up.");
    let prompt = build(&ctx);
    assert!(!prompt.contains(ROOT), "{prompt}");
    assert!(prompt.contains(&format!("current working directory, `{MIRROR}`")));
    let read_only = build(&context(Action::Analyze));
    assert!(read_only.contains(&format!("current working directory, `{ROOT}`")));
}

#[test]
fn files_must_be_inside_the_workspace() {
    let cases = [
        (
            "/home/u/other/lib.rs",
            PromptError::OutsideWorkspace {
                file: "/home/u/other/lib.rs".into(),
                workspace: ROOT.into(),
            },
        ),
        (
            "/home/u/proj/../secret.rs",
            PromptError::OutsideWorkspace {
                file: "/home/u/proj/../secret.rs".into(),
                workspace: ROOT.into(),
            },
        ),
        (
            "/home/u/projector/x.rs",
            PromptError::OutsideWorkspace {
                file: "/home/u/projector/x.rs".into(),
                workspace: ROOT.into(),
            },
        ),
        (
            "/home/u/proj",
            PromptError::OutsideWorkspace { file: ROOT.into(), workspace: ROOT.into() },
        ),
        ("src/lib.rs", PromptError::RelativePath { path: "src/lib.rs".into() }),
    ];
    for (file, expected) in cases {
        let mut ctx = context(Action::Analyze);
        ctx.file_path = Path::new(file);
        assert_eq!(build_prompt(&ctx), Err(expected), "{file}");
    }
    let mut ctx = context(Action::Analyze);
    ctx.file_path = Path::new("/home/u/proj/./src/../src/lib.rs");
    assert!(build(&ctx).contains("`src/lib.rs` (language `rust`"));
}

#[test]
fn selections_are_checked_against_the_document() {
    let line_count = RUST.lines().count() + 1;
    for (start_line, end_line) in [(5, 4), (15, 15), (100, 120)] {
        let mut ctx = context(Action::Analyze);
        ctx.selection = Some(Selection { start_line, end_line, text: "x".into() });
        assert_eq!(
            build_prompt(&ctx),
            Err(PromptError::InvalidSelection { start_line, end_line, line_count }),
            "{start_line}..{end_line}"
        );
    }
    // The empty line after the final line break exists for LSP, and an end past the file is cut.
    let mut ctx = context(Action::Analyze);
    ctx.selection = Some(Selection { start_line: 14, end_line: 14, text: String::new() });
    assert!(build(&ctx).contains("The cursor is on line 15"));
    ctx.selection = Some(Selection { start_line: 12, end_line: 40, text: "    counts".into() });
    assert!(build(&ctx).contains("The user selected lines 13–15 of `src/lib.rs`"));
}

#[test]
fn whole_line_selections_do_not_count_the_next_line() {
    let mut ctx = context(Action::Analyze);
    ctx.selection = loop_selection();
    let prompt = build(&ctx);
    assert!(prompt.contains("The user selected lines 6–8 of `src/lib.rs`:"), "{prompt}");
    assert!(prompt.contains("- Analyze the selected code (lines 6–8 of `src/lib.rs`)."));
}

#[test]
fn review_scopes_need_their_inputs() {
    let mut ctx = context(Action::Review);
    ctx.options.review.scope = Some(ReviewScope::Selection);
    assert_eq!(build_prompt(&ctx), Err(PromptError::MissingSelection));
    ctx.options.review.scope = Some(ReviewScope::Changes);
    assert_eq!(build_prompt(&ctx), Err(PromptError::MissingChanges));
    ctx.changes_diff = Some(" \n");
    assert_eq!(build_prompt(&ctx), Err(PromptError::NoChanges));
}

#[test]
fn the_directory_for_new_files_stays_in_the_workspace() {
    let cases = [
        ("/etc", Err("must be relative to the workspace root")),
        ("../elsewhere", Err("must stay inside the workspace")),
        ("src/../../x", Err("must stay inside the workspace")),
        ("src/./gen/../new/", Ok(Some("src/new"))),
        (".", Ok(None)),
        ("", Ok(None)),
    ];
    for (directory, expected) in cases {
        let expected = expected.map(|shown| shown.map(str::to_owned)).map_err(|reason| {
            PromptError::InvalidDirectory { directory: directory.to_owned(), reason }
        });
        assert_eq!(workspace_directory(directory), expected, "{directory}");
    }
    let mut ctx = context(Action::Generate);
    ctx.instruction = Some("x");
    ctx.options.generate.directory = Some("../up".into());
    assert_eq!(
        build_prompt(&ctx).unwrap_err().to_string(),
        "the directory \"../up\" must stay inside the workspace"
    );
    ctx.options.generate.directory = Some(".".into());
    assert!(!build(&ctx).contains("Put new files in"));
}

#[test]
fn long_files_are_truncated_with_the_default_limits() {
    let text: String = (1..=5_000).map(|n| format!("let v{n} = {n};\n")).collect();
    let mut ctx = context(Action::Analyze);
    ctx.text = &text;
    ctx.selection =
        Some(Selection { start_line: 2_999, end_line: 2_999, text: "let v3000 = 3000;".into() });
    let prompt = build(&ctx);
    assert!(
        prompt.contains("it has 5000 lines and only lines 2800–3199 are shown"),
        "{}",
        &prompt[..2000]
    );
    assert!(prompt.contains("\n3000 | let v3000 = 3000;\n"));
    assert!(!prompt.contains("let v2799 ") && !prompt.contains("let v3200 "));
    assert!(prompt.len() < WINDOW_BYTES + 10_000);

    // Without a selection the window starts at the top.
    ctx.selection = None;
    assert!(build(&ctx).contains("only lines 1–400 are shown"));
}

#[test]
fn a_file_of_few_huge_lines_is_cut_by_bytes() {
    let text: String = (0..200).map(|_| format!("{}\n", "m".repeat(5_000))).collect();
    let mut ctx = context(Action::Analyze);
    ctx.text = &text;
    let prompt = build(&ctx);
    assert!(
        prompt.contains("it has 200 lines and only lines 1–38 are shown"),
        "{}",
        &prompt[..1500]
    );
    assert!(prompt.contains(" … [line cut: 5000 characters]"));
    assert!(prompt.len() < WINDOW_BYTES + 5_000);
}

#[test]
fn long_selections_and_diffs_are_cut() {
    let text: String = (1..=10_000).map(|n| format!("line {n}\n")).collect();
    let mut ctx = context(Action::Analyze);
    ctx.text = &text;
    ctx.selection = Some(Selection { start_line: 0, end_line: 10_000, text: text.clone() });
    let prompt = build(&ctx);
    let header = "The user selected lines 1–10000 of `src/lib.rs` (only its first 4110 of 10000 lines are shown):";
    assert!(prompt.contains(header), "{}", &prompt[prompt.find("## Selection").unwrap()..][..300]);
    assert!(prompt.contains(" 4110 | line 4110\n```\n") && !prompt.contains("line 4111\n"));

    let diff: String = (1..=50_000).map(|n| format!("+added {n}\n")).collect();
    let mut ctx = context(Action::Review);
    ctx.options.review.scope = Some(ReviewScope::Changes);
    ctx.changes_diff = Some(&diff);
    let prompt = build(&ctx);
    assert!(prompt.contains("(truncated to 10085 of its 50000 lines: "), "{}", &prompt[..1000]);
    assert!(prompt.len() < MAX_FILE_BYTES + 10_000);
}

#[test]
fn a_huge_single_line_selection_or_diff_is_cut() {
    let minified = "m".repeat(1_000_000);
    let mut ctx = context(Action::Analyze);
    ctx.text = &minified;
    ctx.selection = Some(Selection { start_line: 0, end_line: 0, text: minified.clone() });
    let prompt = build(&ctx);
    assert!(prompt.len() < 20_000, "{}", prompt.len());
    assert_eq!(prompt.matches(" … [line cut: 1000000 characters]").count(), 2);

    let mut ctx = context(Action::Review);
    ctx.options.review.scope = Some(ReviewScope::Changes);
    let diff = format!("+{minified}\n+short\n");
    ctx.changes_diff = Some(&diff);
    let prompt = build(&ctx);
    assert!(
        prompt.contains("(truncated to 2 of its 2 lines, long lines cut: "),
        "{}",
        &prompt[..1000]
    );
    assert!(prompt.contains(" … [line cut: 1000001 characters]\n+short\n"));
}

#[test]
fn empty_files_are_named_as_such() {
    let mut ctx = context(Action::Analyze);
    ctx.text = "";
    let prompt = build(&ctx);
    assert!(
        prompt.contains("`src/lib.rs` (language `rust`, 0 lines)\n\nThe file is empty.\n"),
        "{prompt}"
    );
}

fn scope_of(directory: Option<&str>, count: usize, include_tests: bool) -> ScopeFiles {
    let files = (0..count).map(|n| format!("{}/f{n:03}.rs", directory.unwrap_or("src")));
    let tests = ["tests/it.rs".to_owned()];
    ScopeFiles::new(directory.map(str::to_owned), files.chain(tests), include_tests, true)
}

#[test]
fn a_folder_review_lists_its_files_and_shows_none() {
    let scope = scope_of(Some("src"), 3, false);
    let mut ctx = context(Action::Review);
    ctx.options.review.scope = Some(ReviewScope::Folder);
    ctx.options.review.min_severity = Severity::Warning;
    ctx.scope_files = Some(&scope);
    let prompt = build(&ctx);
    assert!(prompt.contains("This review covers the folder `src/`: 3 files (tracked"), "{prompt}");
    assert!(prompt.contains("1 test files are left out."), "{prompt}");
    assert!(prompt.contains("```text\nsrc/f000.rs\nsrc/f001.rs\nsrc/f002.rs\n```"), "{prompt}");
    assert!(prompt.contains("read each one you need with the Read tool"), "{prompt}");
    assert!(prompt.contains("severity `warning` or more severe"), "{prompt}");
    assert!(prompt.contains(r#""path": "src/f000.rs""#), "{prompt}");
    // The target file's text is not inlined.
    assert!(!prompt.contains("pub fn count"), "{prompt}");
    assert!(!prompt.contains("## File\n"), "{prompt}");
}

#[test]
fn a_workspace_analysis_bounds_its_list_and_honours_depth_and_tests() {
    let scope = scope_of(None, crate::model::scope::MAX_LISTED_FILES + 5, true);
    let mut ctx = context(Action::Analyze);
    ctx.options.review.scope = Some(ReviewScope::Workspace);
    ctx.options.analyze = AnalyzeOptions { depth: Depth::Quick, include_tests: true };
    ctx.scope_files = Some(&scope);
    let prompt = build(&ctx);
    assert!(prompt.contains("This analysis covers the whole workspace: 306 files"), "{prompt}");
    assert!(prompt.contains("…and 6 more files, not listed here"), "{prompt}");
    assert!(prompt.contains("- Be quick: read only the files most likely to matter"));
    assert!(prompt.contains("- The tests are in scope too"));
    assert!(!prompt.contains("test files are left out"));
    // 300 names stay far below one file's worth of inlined text.
    assert!(prompt.len() < 12_000, "{}", prompt.len());
}

#[test]
fn tree_scopes_need_their_files_and_a_reading_action() {
    let mut ctx = context(Action::Review);
    ctx.options.review.scope = Some(ReviewScope::Workspace);
    assert_eq!(build_prompt(&ctx), Err(PromptError::MissingScopeFiles));
    let empty = ScopeFiles::new(Some("docs".into()), Vec::new(), false, true);
    ctx.options.review.scope = Some(ReviewScope::Folder);
    ctx.scope_files = Some(&empty);
    assert_eq!(
        build_prompt(&ctx).unwrap_err().to_string(),
        "there are no files to look at in the folder `docs/`"
    );
    let mut generate = context(Action::Generate);
    generate.instruction = Some("x");
    generate.options.review.scope = Some(ReviewScope::Folder);
    assert_eq!(build_prompt(&generate), Err(PromptError::ScopeNotForAction("folder")));
}
