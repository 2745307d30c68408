use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::place::rebase;
use super::report::QUICK_MAX_TURNS;
use super::*;
use crate::claude::args::Effort;
use crate::model::documents::PositionEncoding;
use crate::model::edits;
use crate::model::prompt::{Depth, Severity};
use crate::protocol::lsp::{Diagnostic, Position, Range, TextEdit, Uri};

#[test]
fn the_prompts_findings_example_is_a_valid_report() {
    for fix in [false, true] {
        let example = crate::model::prompt::findings_example(fix);
        let report = read_report(Some(&example), "").unwrap();
        assert_eq!((report.findings.len(), report.notes.len()), (1, 0), "{report:?}");
    }
}

const WS: &str = "/ws";
const LIB: &str = "fn main() {\n    let x = parse(input).unwrap();\n    println!(\"{x}\");\n}\n\nfn parse(s: &str) -> Option<u32> {\n    s.parse().ok()\n}\n";

fn uri(path: &str) -> Uri {
    edits::path_to_uri(Path::new(path)).unwrap()
}

fn range(sl: u32, sc: u32, el: u32, ec: u32) -> Range {
    Range::new(Position::new(sl, sc), Position::new(el, ec))
}

fn reported(value: Value) -> ReportedFinding {
    let mut base = json!({
        "path": "src/lib.rs", "startLine": 2, "endLine": 2, "severity": "warning",
        "category": "bug", "title": "Unwrap on user input", "explanation": "It panics.",
    });
    base.as_object_mut().unwrap().extend(value.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

/// Places `findings` in files given as (relative path, seen text, current text).
fn place_in(files: &[(&str, &str, &str)], findings: &[ReportedFinding]) -> Placement {
    place_with(files, findings, None, PositionEncoding::Utf16)
}

fn place_with(
    files: &[(&str, &str, &str)],
    findings: &[ReportedFinding],
    min_severity: Option<Severity>,
    encoding: PositionEncoding,
) -> Placement {
    let files: HashMap<PathBuf, FileText> = files
        .iter()
        .map(|(name, seen, current)| {
            let path = Path::new(WS).join(name);
            let uri = edits::path_to_uri(&path).unwrap();
            (path, FileText { uri, seen: (*seen).to_owned(), current: (*current).to_owned() })
        })
        .collect();
    let options = PlaceOptions { workspace: Path::new(WS), encoding, min_severity };
    place(findings, &options, &mut |path| files.get(path).cloned())
}

fn only_range(placement: &Placement) -> Range {
    assert!(placement.unplaced.is_empty(), "{:#?}", placement.unplaced);
    assert_eq!(placement.placed.len(), 1, "{placement:#?}");
    placement.placed[0].1.range
}

#[test]
fn the_schema_names_every_severity_and_category_and_requires_the_core_fields() {
    let schema = schema();
    let item = &schema["properties"]["findings"]["items"];
    let severities: Vec<Value> =
        [Severity::Error, Severity::Warning, Severity::Info, Severity::Hint]
            .iter()
            .map(|s| serde_json::to_value(s).unwrap())
            .collect();
    assert_eq!(item["properties"]["severity"]["enum"], json!(severities));
    let categories: Vec<Value> =
        Category::ALL.iter().map(|c| serde_json::to_value(c).unwrap()).collect();
    assert_eq!(item["properties"]["category"]["enum"], json!(categories));
    assert_eq!(
        item["required"],
        json!(["path", "startLine", "endLine", "severity", "category", "title", "explanation"])
    );
    assert_eq!(schema["required"], json!(["findings", "summary"]));
    let options =
        crate::claude::args::CliOptions { json_schema: Some(schema), ..Default::default() };
    assert_eq!(options.validate(), Ok(()));
}

#[test]
fn analysis_depth_sets_turns_and_effort() {
    assert_eq!(analysis_limits(Depth::Quick, None), (Some(QUICK_MAX_TURNS), Some(Effort::Low)));
    assert_eq!(analysis_limits(Depth::Quick, Some(2)), (Some(2), Some(Effort::Low)));
    assert_eq!(analysis_limits(Depth::Quick, Some(50)), (Some(QUICK_MAX_TURNS), Some(Effort::Low)));
    assert_eq!(analysis_limits(Depth::Normal, Some(7)), (Some(7), None));
    assert_eq!(analysis_limits(Depth::Deep, None), (None, Some(Effort::High)));
}

#[test]
fn structured_output_is_read_and_a_bad_finding_becomes_a_note() {
    let value = json!({
        "summary": "  Two problems.  ",
        "findings": [
            {"path": "a.rs", "startLine": 3, "endLine": 4, "severity": "error", "category": "security",
             "title": "T", "explanation": "E", "fix": {"oldText": "a", "newText": "b"},
             "related": [{"path": "b.rs", "line": 9, "message": "caller"}]},
            {"path": "a.rs", "startLine": 1, "severity": "nit", "category": "bug", "title": "Odd", "explanation": "?"},
        ],
    });
    let report = read_report(Some(&value), "{\"json\": \"text\"}").unwrap();
    assert_eq!(report.source, ReportSource::Structured);
    assert_eq!(report.summary, "Two problems.");
    assert_eq!(report.findings.len(), 1);
    let finding = &report.findings[0];
    assert_eq!(
        (finding.start_line, finding.end_line, finding.severity),
        (3, Some(4), Severity::Error)
    );
    assert_eq!(finding.fix, Some(ReportedFix { old_text: "a".into(), new_text: "b".into() }));
    assert_eq!(finding.related[0].line, 9);
    assert_eq!(report.notes.len(), 1);
    assert!(
        report.notes[0].starts_with("Finding 2 (“Odd”) could not be read: unknown variant `nit`"),
        "{:?}",
        report.notes
    );
}

#[test]
fn structured_output_of_the_wrong_shape_is_an_error() {
    for (value, reason) in [
        (json!([1]), "expected an object, got a list"),
        (json!({"summary": "s"}), "it has no `findings` list"),
        (json!({"findings": {"a": 1}}), "it has no `findings` list"),
    ] {
        let err = read_report(Some(&value), "").unwrap_err();
        assert_eq!(err.reason, reason);
        assert!(err.to_string().starts_with("Claude's structured output is not a findings report"));
    }
}

#[test]
fn a_fenced_json_block_is_the_first_fallback() {
    let text = "The code is mostly fine.\n\n```rust\nfn x() {}\n```\n\n```json\n{\"findings\": [{\"path\": \"a.rs\", \"startLine\": 1, \"endLine\": 1, \"severity\": \"info\", \"category\": \"style\", \"title\": \"T\", \"explanation\": \"E\"}]}\n```\n";
    let report = read_report(None, text).unwrap();
    assert_eq!(report.source, ReportSource::FencedJson);
    assert_eq!(report.summary, "The code is mostly fine.\n\n```rust\nfn x() {}\n```");
    assert_eq!(report.findings.len(), 1);
    assert!(report.notes.is_empty());

    // Only the block: its summary is the answer. Tilde fences and an unclosed block count.
    let text = "~~~json\n{\"summary\": \"All good.\", \"findings\": []}\n~~~";
    let report = read_report(None, text).unwrap();
    assert_eq!((report.summary.as_str(), report.findings.len()), ("All good.", 0));
    let report = read_report(None, "Answer.\n````\n{\"findings\": []}\n").unwrap();
    assert_eq!((report.source, report.summary.as_str()), (ReportSource::FencedJson, "Answer."));
}

#[test]
fn plain_text_is_the_last_fallback_with_a_note() {
    let report = read_report(None, "  Looks fine to me.\n").unwrap();
    assert_eq!(report.source, ReportSource::PlainText);
    assert_eq!(report.summary, "Looks fine to me.");
    assert!(report.findings.is_empty());
    assert_eq!(
        report.notes,
        [
            "Claude did not return its findings in the structured format, so none are shown as diagnostics."
        ]
    );

    let broken = "Findings:\n```json\n{\"findings\": [oops]}\n```";
    let report = read_report(None, broken).unwrap();
    assert_eq!(report.source, ReportSource::PlainText);
    assert_eq!(report.summary, broken);
    assert!(
        report.notes[0].starts_with(
            "The findings in Claude's answer could not be read (its JSON is invalid: "
        ),
        "{:?}",
        report.notes
    );
}

#[test]
fn lines_without_quoted_code_are_placed_from_the_first_non_blank_character() {
    let placement = place_in(&[("src/lib.rs", LIB, LIB)], &[reported(json!({}))]);
    assert_eq!(only_range(&placement), range(1, 4, 1, 34));
    let (path, finding) = &placement.placed[0];
    assert_eq!(path, Path::new("/ws/src/lib.rs"));
    assert_eq!(finding.uri, uri("/ws/src/lib.rs"));
    assert_eq!(finding.title, "Unwrap on user input");
    assert!(finding.id.starts_with('f'));
}

#[test]
fn columns_narrow_a_finding_without_quoted_code() {
    let finding = reported(json!({"startColumn": 13, "endColumn": 24}));
    assert_eq!(only_range(&place_in(&[("src/lib.rs", LIB, LIB)], &[finding])), range(1, 12, 1, 24));
    // Columns past the line's end are ignored, not trusted.
    let finding = reported(json!({"startColumn": 13, "endColumn": 99}));
    assert_eq!(only_range(&place_in(&[("src/lib.rs", LIB, LIB)], &[finding])), range(1, 4, 1, 34));
}

#[test]
fn quoted_code_relocates_line_numbers_that_are_off() {
    // The model says lines 5-6, but the code is on line 2.
    let finding =
        reported(json!({"startLine": 5, "endLine": 6, "snippet": "parse(input).unwrap()"}));
    assert_eq!(only_range(&place_in(&[("src/lib.rs", LIB, LIB)], &[finding])), range(1, 12, 1, 33));
    // A fix's old text places it exactly, and the fix is kept.
    let finding = reported(json!({"startLine": 4, "endLine": 4,
        "fix": {"oldText": "parse(input).unwrap()", "newText": "parse(input)?"}}));
    let placement = place_in(&[("src/lib.rs", LIB, LIB)], &[finding]);
    assert_eq!(only_range(&placement), range(1, 12, 1, 33));
    assert_eq!(
        placement.placed[0].1.fix,
        Some(FindingFix {
            old_text: "parse(input).unwrap()".into(),
            new_text: "parse(input)?".into(),
        })
    );
    assert_eq!(placement.fixes_dropped, 0);
}

#[test]
fn quoted_code_with_other_indentation_is_found_but_its_fix_is_dropped() {
    let finding = reported(json!({"startLine": 6, "endLine": 8,
        "fix": {"oldText": "fn parse(s: &str) -> Option<u32> {\n  s.parse().ok()\n}", "newText": "x"}}));
    let placement = place_in(&[("src/lib.rs", LIB, LIB)], &[finding]);
    assert_eq!(only_range(&placement), range(5, 0, 7, 1));
    assert_eq!(placement.placed[0].1.fix, None);
    assert_eq!(placement.fixes_dropped, 1);
    assert!(
        summary_text(
            &Report {
                summary: "S".into(),
                findings: vec![],
                notes: vec![],
                source: ReportSource::Structured
            },
            &placement
        )
        .ends_with("_1 fix did not match the code exactly and was left out._")
    );
}

#[test]
fn a_finding_that_cannot_be_located_is_reported_not_placed() {
    let cases = [
        (json!({"snippet": "no such code"}), "the code it quotes is not in the file"),
        (json!({"startLine": 40, "endLine": 41}), "its lines are past the end of the file"),
        (
            json!({"startLine": 0, "endLine": 0}),
            "its line numbers start at 0, but lines are counted from 1",
        ),
        (json!({"path": "../etc/passwd"}), "its file is outside the workspace"),
        (json!({"path": "/elsewhere/lib.rs"}), "its file is outside the workspace"),
        (json!({"path": "src/missing.rs"}), "there is no such file in the workspace"),
        (json!({"path": " "}), "it names no file"),
    ];
    for (fields, why) in cases {
        let placement = place_in(&[("src/lib.rs", LIB, LIB)], &[reported(fields.clone())]);
        assert!(placement.placed.is_empty(), "{fields}: {placement:#?}");
        assert_eq!(placement.unplaced.len(), 1);
        assert!(
            placement.unplaced[0].ends_with(&format!("_(Not shown as a diagnostic: {why}.)_")),
            "{fields}: {}",
            placement.unplaced[0]
        );
    }
    let finding = reported(json!({"startLine": 40, "endLine": 41, "suggestion": "Use ?."}));
    let placement = place_in(&[("src/lib.rs", LIB, LIB)], &[finding]);
    assert_eq!(
        placement.unplaced[0],
        "- **Unwrap on user input** (warning, bug) at `src/lib.rs:40-41`: It panics. Suggestion: Use ?. _(Not shown as a diagnostic: its lines are past the end of the file.)_"
    );
}

#[test]
fn repeated_code_picks_the_nearest_occurrence_or_refuses_to_guess() {
    let text = "a();\nb();\na();\nc();\nd();\ne();\na();\n";
    let near = |line: u32| {
        reported(json!({"path": "x.rs", "startLine": line, "endLine": line, "snippet": "a();"}))
    };
    assert_eq!(only_range(&place_in(&[("x.rs", text, text)], &[near(4)])), range(2, 0, 2, 4));
    assert_eq!(only_range(&place_in(&[("x.rs", text, text)], &[near(7)])), range(6, 0, 6, 4));
    // Line 2 is as near to line 1 as to line 3.
    let placement = place_in(&[("x.rs", text, text)], &[near(2)]);
    assert!(placement.placed.is_empty());
    assert!(placement.unplaced[0].contains("equally near its lines"), "{}", placement.unplaced[0]);
    // Far from every occurrence: no guess. A unique snippet is trusted anywhere.
    let long: String = (0..200).map(|i| format!("line{i}();\na();\n")).collect();
    let placement = place_in(&[("x.rs", &long, &long)], &[near(398)]);
    assert_eq!(only_range(&placement), range(397, 0, 397, 4));
    let far =
        reported(json!({"path": "x.rs", "startLine": 1, "endLine": 1, "snippet": "line150();"}));
    assert_eq!(only_range(&place_in(&[("x.rs", &long, &long)], &[far])), range(300, 0, 300, 10));
    let mut text = String::from("a();\n");
    text.push_str(&"x();\n".repeat(100));
    text.push_str("a();\n");
    let placement = place_in(&[("x.rs", &text, &text)], &[near(50)]);
    assert!(
        placement.unplaced[0].contains("none of them near its lines"),
        "{}",
        placement.unplaced[0]
    );
}

#[test]
fn positions_follow_the_encoding_and_fixes_follow_the_line_endings() {
    let text = "let s = \"😀\"; let x = 1;\r\nlet y = 2;\r\n";
    let finding = reported(json!({"path": "m.rs", "startLine": 1, "endLine": 2,
        "fix": {"oldText": "let x = 1;\nlet y", "newText": "let x = 2;\nlet y"}}));
    let utf16 = place_with(
        &[("m.rs", text, text)],
        std::slice::from_ref(&finding),
        None,
        PositionEncoding::Utf16,
    );
    assert_eq!(only_range(&utf16), range(0, 14, 1, 5));
    assert_eq!(utf16.placed[0].1.fix.as_ref().unwrap().old_text, "let x = 1;\r\nlet y");
    assert_eq!(utf16.placed[0].1.fix.as_ref().unwrap().new_text, "let x = 2;\r\nlet y");
    let utf8 = place_with(&[("m.rs", text, text)], &[finding], None, PositionEncoding::Utf8);
    assert_eq!(only_range(&utf8), range(0, 16, 1, 5));
}

#[test]
fn findings_below_the_minimum_severity_are_left_out() {
    let findings = [reported(json!({"severity": "hint"})), reported(json!({"severity": "error"}))];
    let placement = place_with(
        &[("src/lib.rs", LIB, LIB)],
        &findings,
        Some(Severity::Warning),
        PositionEncoding::Utf16,
    );
    assert_eq!(placement.placed.len(), 1);
    assert_eq!(placement.placed[0].1.severity, Severity::Error);
    assert_eq!(placement.left_out, 1);
}

#[test]
fn related_locations_are_placed_on_their_lines_and_dropped_when_missing() {
    let other = "use crate::parse;\n\nfn caller() { parse(\"1\"); }\n";
    let finding = reported(json!({"related": [
        {"path": "src/caller.rs", "line": 3, "message": "called here"},
        {"path": "src/caller.rs", "line": 30, "message": "nowhere"},
        {"path": "src/gone.rs", "line": 1, "message": "missing"},
    ]}));
    let placement =
        place_in(&[("src/lib.rs", LIB, LIB), ("src/caller.rs", other, other)], &[finding]);
    only_range(&placement);
    assert_eq!(
        placement.placed[0].1.related,
        vec![RelatedLocation {
            uri: uri("/ws/src/caller.rs"),
            range: range(2, 0, 2, 27),
            message: "called here".into(),
        }]
    );
}

#[test]
fn typing_during_the_run_moves_findings_or_drops_the_ones_it_touched() {
    let typed_above = format!("// new comment\n{LIB}");
    let finding = reported(json!({"snippet": "parse(input).unwrap()"}));
    let placement = place_in(&[("src/lib.rs", LIB, &typed_above)], std::slice::from_ref(&finding));
    assert_eq!(only_range(&placement), range(2, 12, 2, 33));
    let typed_inside = LIB.replace("parse(input)", "parse(other)");
    let placement = place_in(&[("src/lib.rs", LIB, &typed_inside)], &[finding]);
    assert!(placement.placed.is_empty());
    assert!(placement.unplaced[0].contains("the code changed while Claude was looking at it"));
}

fn splice(sl: u32, sc: u32, el: u32, ec: u32, text: &str) -> Splice {
    Splice::new(range(sl, sc, el, ec), text, PositionEncoding::Utf16)
}

#[test]
fn splices_move_what_follows_them_and_remove_what_they_touch() {
    let finding = range(5, 4, 6, 10);
    // Lines inserted above.
    assert_eq!(splice(1, 0, 1, 0, "a\nb\n").shift(finding), Some(range(7, 4, 8, 10)));
    // Lines deleted above.
    assert_eq!(splice(1, 0, 3, 0, "").shift(finding), Some(range(3, 4, 4, 10)));
    // Typing on the same line, before the finding, moves its start only.
    assert_eq!(splice(5, 0, 5, 0, "xy").shift(finding), Some(range(5, 6, 6, 10)));
    // Typing right at its start counts as before it; right at its end, as after it.
    assert_eq!(splice(5, 4, 5, 4, "z").shift(finding), Some(range(5, 5, 6, 10)));
    assert_eq!(splice(6, 10, 6, 10, "z").shift(finding), Some(finding));
    // A line break typed before it on its line.
    assert_eq!(splice(5, 2, 5, 2, "\r\n  ").shift(finding), Some(range(6, 4, 7, 10)));
    // Joining its first line to the line above.
    assert_eq!(splice(4, 7, 5, 0, "").shift(finding), Some(range(4, 11, 5, 10)));
    // After it: no change.
    assert_eq!(splice(9, 0, 9, 0, "x\n").shift(finding), Some(finding));
    // Inside it, or across one of its ends: gone.
    assert_eq!(splice(5, 8, 5, 8, "x").shift(finding), None);
    assert_eq!(splice(4, 0, 5, 5, "").shift(finding), None);
    assert_eq!(splice(6, 9, 7, 0, "").shift(finding), None);
    // Widths count in the encoding: an emoji is two UTF-16 units.
    assert_eq!(splice(5, 0, 5, 0, "😀").shift(finding), Some(range(5, 6, 6, 10)));
    let utf8 = Splice::new(range(5, 0, 5, 0), "😀", PositionEncoding::Utf8);
    assert_eq!(utf8.shift(finding), Some(range(5, 8, 6, 10)));
}

#[test]
fn splices_between_two_texts_rebase_ranges() {
    let before = "a\nb\nc\nd\n";
    let after = "a\nnew\nb\nc\nD\n";
    let splices = splices_between(before, after, PositionEncoding::Utf16);
    assert_eq!(rebase(range(2, 0, 2, 1), &splices), Some(range(3, 0, 3, 1)));
    assert_eq!(rebase(range(3, 0, 3, 1), &splices), None);
}

fn stored(id: &str, path: &str, at: Range) -> (PathBuf, Finding) {
    (
        PathBuf::from(path),
        Finding {
            id: id.into(),
            uri: uri(path),
            range: at,
            severity: Severity::Warning,
            category: Category::Bug,
            title: format!("title {id}"),
            explanation: "why".into(),
            suggestion: None,
            fix: None,
            related: Vec::new(),
        },
    )
}

fn ids(publication: &Publication) -> Vec<&str> {
    publication.findings.iter().map(|f| f.id.as_str()).collect()
}

#[test]
fn a_new_run_replaces_what_it_covers() {
    let a = Path::new("/ws/a.rs");
    let file_a = Reviewed::File { path: a.to_path_buf() };
    let mut store = FindingStore::default();
    let published = store.replace(
        &file_a,
        &uri("/ws/a.rs"),
        vec![
            stored("1", "/ws/a.rs", range(1, 0, 1, 5)),
            stored("2", "/ws/a.rs", range(20, 0, 21, 5)),
            stored("3", "/ws/b.rs", range(3, 0, 3, 1)),
        ],
    );
    assert_eq!(published.iter().map(ids).collect::<Vec<_>>(), [vec!["1", "2"], vec!["3"]]);

    // A review of lines 0-5 of a.rs replaces finding 1 only.
    let lines = Reviewed::Lines { path: a.to_path_buf(), start: 0, end: 5 };
    let published =
        store.replace(&lines, &uri("/ws/a.rs"), vec![stored("4", "/ws/a.rs", range(2, 0, 2, 1))]);
    assert_eq!(published.len(), 1);
    assert_eq!(ids(&published[0]), ["2", "4"]);

    // A review of the changes adds, and replaces only an earlier review of the changes.
    let changes = Reviewed::Changes { workspace: PathBuf::from("/ws") };
    store.replace(&changes, &uri("/ws/a.rs"), vec![stored("5", "/ws/b.rs", range(9, 0, 9, 1))]);
    assert_eq!(store.findings_in(Path::new("/ws/b.rs")).len(), 2);
    let published = store.replace(&changes, &uri("/ws/a.rs"), vec![]);
    assert_eq!(published.len(), 1);
    assert_eq!(ids(&published[0]), ["3"]);

    // A new review of the file replaces everything of the earlier file and lines runs,
    // here and in b.rs, and publishes a.rs even when nothing is left.
    let published = store.replace(&file_a, &uri("/ws/a.rs"), vec![]);
    assert_eq!(
        published.iter().map(|p| (p.path.clone(), p.findings.len())).collect::<Vec<_>>(),
        [(PathBuf::from("/ws/a.rs"), 0), (PathBuf::from("/ws/b.rs"), 0)]
    );
    assert!(!store.touches(a));
    assert!(!store.touches(Path::new("/ws/b.rs")));
}

#[test]
fn a_tree_run_replaces_every_run_inside_its_folder() {
    let mut store = FindingStore::default();
    let a = Path::new("/ws/src/a.rs");
    store.replace(
        &Reviewed::File { path: a.to_path_buf() },
        &uri("/ws/src/a.rs"),
        vec![stored("1", "/ws/src/a.rs", range(1, 0, 1, 5))],
    );
    let outside = Reviewed::File { path: PathBuf::from("/ws/top.rs") };
    store.replace(&outside, &uri("/ws/top.rs"), vec![stored("2", "/ws/top.rs", range(0, 0, 0, 1))]);
    let src = Reviewed::Tree { root: PathBuf::from("/ws/src") };
    let published =
        store.replace(&src, &uri("/ws/src"), vec![stored("3", "/ws/src/b.rs", range(2, 0, 2, 1))]);
    // a.rs is published empty, b.rs with the new finding; top.rs is outside the folder.
    assert_eq!(
        published.iter().map(|p| (p.path.clone(), ids(p).len())).collect::<Vec<_>>(),
        [(PathBuf::from("/ws/src/a.rs"), 0), (PathBuf::from("/ws/src/b.rs"), 1)]
    );
    assert!(store.touches(Path::new("/ws/top.rs")));
    let workspace = Reviewed::Tree { root: PathBuf::from("/ws") };
    store.replace(&workspace, &uri("/ws"), vec![]);
    assert!(!store.touches(Path::new("/ws/top.rs")));
    assert!(!store.touches(Path::new("/ws/src/b.rs")));
}

#[test]
fn findings_of_a_closed_file_go_when_it_opens_or_changes_with_other_text() {
    let b = Path::new("/ws/b.rs");
    let tree = Reviewed::Tree { root: PathBuf::from("/ws") };
    let mut store = FindingStore::default();
    let run = |store: &mut FindingStore| {
        store.replace(&tree, &uri("/ws"), vec![stored("1", "/ws/b.rs", range(0, 0, 0, 1))]);
        store.note_closed_text(b, "old\n");
    };
    run(&mut store);
    // Opened with the text they were placed on: they stay, and edits move them from here.
    assert_eq!(store.opened(b, "old\n"), None);
    assert_eq!(store.opened(b, "other\n"), None, "an open file's findings follow edits");
    assert!(store.touches(b));

    run(&mut store);
    let cleared = store.opened(b, "new\n").unwrap();
    assert_eq!((cleared.path.as_path(), cleared.findings.len()), (b, 0));

    run(&mut store);
    assert_eq!(store.changed_on_disk(b, Some("old\n")), None, "same text: a touch");
    assert_eq!(store.changed_on_disk(b, Some("new\n")).unwrap().findings.len(), 0);
    run(&mut store);
    assert_eq!(store.changed_on_disk(b, None).unwrap().findings.len(), 0, "deleted");
    assert_eq!(store.changed_on_disk(b, None), None, "nothing left to clear");
}

#[test]
fn dismissing_one_finding_or_all_of_a_file() {
    let a = Path::new("/ws/a.rs");
    let mut store = FindingStore::default();
    store.replace(
        &Reviewed::File { path: a.to_path_buf() },
        &uri("/ws/a.rs"),
        vec![
            stored("1", "/ws/a.rs", range(1, 0, 1, 5)),
            stored("2", "/ws/a.rs", range(2, 0, 2, 5)),
            stored("3", "/ws/a.rs", range(3, 0, 3, 5)),
        ],
    );
    assert_eq!(store.get(a, "2").map(|f| f.title), Some("title 2".to_owned()));
    let (removed, publication) = store.dismiss(a, Some("2"));
    assert_eq!((removed, ids(&publication.unwrap())), (1, vec!["1", "3"]));
    assert_eq!(store.dismiss(a, Some("2")), (0, None));
    assert_eq!(store.get(a, "2"), None);
    let (removed, publication) = store.dismiss(a, None);
    assert_eq!((removed, publication.unwrap().findings.len()), (2, 0));
    assert_eq!(store.dismiss(a, None), (0, None));
}

#[test]
fn edits_move_findings_and_remove_the_ones_they_touch() {
    let a = Path::new("/ws/a.rs");
    let mut store = FindingStore::default();
    let (_, mut with_related) = stored("2", "/ws/b.rs", range(0, 0, 0, 3));
    with_related.related.push(RelatedLocation {
        uri: uri("/ws/a.rs"),
        range: range(8, 0, 8, 2),
        message: "m".into(),
    });
    store.replace(
        &Reviewed::File { path: a.to_path_buf() },
        &uri("/ws/a.rs"),
        vec![
            stored("1", "/ws/a.rs", range(4, 2, 4, 9)),
            stored("3", "/ws/a.rs", range(6, 0, 6, 4)),
            (PathBuf::from("/ws/b.rs"), with_related),
        ],
    );
    // Two lines typed at the top: everything in a.rs moves, b.rs's related location too.
    let published = store.apply_splices(a, &[splice(0, 0, 0, 0, "x\ny\n")]);
    assert_eq!(published.len(), 2);
    assert_eq!(
        published[0].findings.iter().map(|f| f.range).collect::<Vec<_>>(),
        [range(6, 2, 6, 9), range(8, 0, 8, 4)]
    );
    assert_eq!(published[1].findings[0].related[0].range, range(10, 0, 10, 2));
    // Typing inside finding 1 removes it; finding 3 is below on other lines and stays.
    let published = store.apply_splices(a, &[splice(6, 5, 6, 5, "z")]);
    assert_eq!(published.len(), 1);
    assert_eq!(ids(&published[0]), ["3"]);
    // Typing after everything changes nothing and publishes nothing.
    assert!(store.apply_splices(a, &[splice(40, 0, 40, 0, "tail")]).is_empty());
    assert!(store.touches(a));
}

#[test]
fn a_finding_becomes_a_diagnostic() {
    let (_, mut finding) = stored("f7", "/ws/a.rs", range(1, 2, 1, 8));
    finding.severity = Severity::Error;
    finding.category = Category::Security;
    finding.suggestion = Some("Escape it.".into());
    finding.related.push(RelatedLocation {
        uri: uri("/ws/b.rs"),
        range: range(4, 0, 4, 3),
        message: "input comes from here".into(),
    });
    let diagnostic = to_diagnostic(&finding, true);
    assert_eq!(
        serde_json::to_value(&diagnostic).unwrap(),
        json!({
            "range": range(1, 2, 1, 8),
            "severity": 1,
            "code": "security",
            "source": "claude",
            "message": "title f7\n\nwhy\n\nSuggestion: Escape it.",
            "relatedInformation": [{"location": {"uri": "file:///ws/b.rs", "range": range(4, 0, 4, 3)}, "message": "input comes from here"}],
            "data": {"findingId": "f7"},
        })
    );
    assert_eq!(finding_id(&diagnostic), Some("f7"));
    let plain = to_diagnostic(&finding, false);
    assert_eq!(plain.related_information, None);
    assert!(
        plain.message.ends_with("\n\nSee also /ws/b.rs:5: input comes from here"),
        "{}",
        plain.message
    );
    let foreign = Diagnostic { source: Some("rustc".into()), ..diagnostic };
    assert_eq!(finding_id(&foreign), None);
}

#[test]
fn a_secret_the_model_quoted_in_a_finding_is_not_shown() {
    let key = "sk-ant-api03-quotedbythemodel0123456789";
    let (_, mut finding) = stored("f8", "/ws/a.rs", range(1, 2, 1, 8));
    finding.explanation = format!("The key {key} is committed.");
    finding.related.push(RelatedLocation {
        uri: uri("/ws/b.rs"),
        range: range(4, 0, 4, 3),
        message: format!("and again: {key}"),
    });
    for related_information in [true, false] {
        let shown = serde_json::to_string(&to_diagnostic(&finding, related_information)).unwrap();
        assert!(!shown.contains(key), "{shown}");
    }
}

#[test]
fn a_fix_applies_only_to_the_code_it_was_made_for() {
    let (_, mut finding) = stored("1", "/ws/src/lib.rs", range(1, 12, 1, 33));
    assert_eq!(fix_edit(&finding, LIB, PositionEncoding::Utf16), Err(FixError::NoFix));
    finding.fix = Some(FindingFix {
        old_text: "parse(input).unwrap()".into(),
        new_text: "parse(input)?".into(),
    });
    assert_eq!(
        fix_edit(&finding, LIB, PositionEncoding::Utf16),
        Ok(TextEdit { range: range(1, 12, 1, 33), new_text: "parse(input)?".into() })
    );
    let changed = LIB.replace("input", "inpt");
    assert_eq!(
        fix_edit(&finding, &changed, PositionEncoding::Utf16),
        Err(FixError::Changed { found: "parse(inpt).unwrap();".into() })
    );
    // A range past the end of the text is clamped by the conversion; it must not match.
    finding.range = range(40, 0, 40, 21);
    assert!(matches!(
        fix_edit(&finding, LIB, PositionEncoding::Utf16),
        Err(FixError::Changed { .. })
    ));
}

#[test]
fn the_summary_lists_what_could_not_be_placed_and_the_notes() {
    let report = Report {
        summary: "Overall fine.".into(),
        findings: vec![],
        notes: vec!["Finding 3 could not be read: missing field `title`.".into()],
        source: ReportSource::Structured,
    };
    let placement = Placement {
        unplaced: vec!["- **A** …".into(), "- **B** …".into()],
        ..Placement::default()
    };
    assert_eq!(
        summary_text(&report, &placement),
        "Overall fine.\n\n**2 findings could not be located in the code:**\n\n- **A** …\n- **B** …\n\n_Finding 3 could not be read: missing field `title`._"
    );
    let empty = Report { summary: String::new(), ..report };
    assert_eq!(
        summary_text(&empty, &Placement::default()),
        "_Finding 3 could not be read: missing field `title`._"
    );
}
