//! Findings of review and analyze runs, from the model's answer to anchored diagnostics.
//!
//! * [`schema`]: the JSON schema the CLI is asked to fill (`--json-schema`). Checked on the pinned
//!   CLIs (2.1.197 and 2.1.330): it offers the model a `StructuredOutput` tool whose
//!   `input_schema` is this schema, validates each call against it (5 failed calls end the run
//!   with `error_max_structured_output_retries`), and puts the accepted input in
//!   `result.structured_output`. A model that answers in plain text instead ends the run with no
//!   structured output at all.
//! * [`read_report`]: the answer as a [`Report`]: the structured output, else the last fenced
//!   `json` block of the text, else the plain text with a note saying why there are no findings.
//! * [`place`]: each finding located in its file. The code it quotes (`fix.oldText`, else
//!   `snippet`) decides where it goes and the line numbers only choose between occurrences, so
//!   line numbers that are off by a few are corrected. A finding that cannot be located is
//!   listed for the summary, never placed at a guess.
//! * [`FindingStore`]: placed findings per file, anchored while the user edits: an edit before a
//!   finding moves it, an edit touching it removes it.
//! * [`to_diagnostic`]: a finding as the editor shows it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ropey::Rope;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::base::paths::normalize;
use crate::base::text::json_kind;
use crate::claude::args::Effort;
use crate::model::documents::{Document, LineIndex, PositionEncoding, exact_text};
use crate::model::edits;
use crate::model::prompt::{Depth, Severity};
use crate::protocol::lsp::{
    Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString,
    Position, Range, TextEdit, Uri,
};

/// The `source` of every diagnostic claude-lsp publishes.
pub const SOURCE: &str = "claude";

/// With several occurrences of a finding's quoted code, the nearest one is taken only when it is
/// at most this many lines from the lines the finding names.
const NEAR_LINES: u32 = 40;

/// Occurrences of quoted code looked at per finding (a one-character snippet in a huge file
/// would otherwise cost a scan per occurrence).
const MAX_OCCURRENCES: usize = 1_000;

/// The most turns a quick analysis may take (reading a file or two, then answering).
const QUICK_MAX_TURNS: u32 = 5;

/// A finding of review/analyze, placed in its file (`range` in the negotiated encoding).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Names the finding in `claude.applyFinding` / `claude.dismissFinding` (and in the
    /// diagnostic's `data.findingId`).
    pub id: String,
    pub uri: Uri,
    pub range: Range,
    pub severity: Severity,
    pub category: Category,
    pub title: String,
    pub explanation: String,
    pub suggestion: Option<String>,
    /// Checked against the code: `old_text` is exactly the text at `range`.
    pub fix: Option<FindingFix>,
    pub related: Vec<RelatedLocation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingFix {
    pub old_text: String,
    pub new_text: String,
}

/// Another place that matters to a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedLocation {
    pub uri: Uri,
    pub range: Range,
    pub message: String,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Bug,
    Security,
    Performance,
    Correctness,
    Maintainability,
    Style,
    Test,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Bug,
        Category::Security,
        Category::Performance,
        Category::Correctness,
        Category::Maintainability,
        Category::Style,
        Category::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Bug => "bug",
            Category::Security => "security",
            Category::Performance => "performance",
            Category::Correctness => "correctness",
            Category::Maintainability => "maintainability",
            Category::Style => "style",
            Category::Test => "test",
        }
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
        Severity::Hint => "hint",
    }
}

/// The JSON schema of a findings report, for `--json-schema`.
pub fn schema() -> Value {
    let severities: Vec<&str> =
        [Severity::Error, Severity::Warning, Severity::Info, Severity::Hint]
            .into_iter()
            .map(severity_name)
            .collect();
    let categories: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
    let line =
        |description: &str| json!({"type": "integer", "minimum": 1, "description": description});
    let text = |description: &str| json!({"type": "string", "description": description});
    json!({
        "type": "object",
        "properties": {
            "findings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": text("The file, relative to the workspace root"),
                        "startLine": line("First line, 1-based"),
                        "startColumn": line("First character on startLine, 1-based (optional)"),
                        "endLine": line("Last line, 1-based, inclusive"),
                        "endColumn": line("Last character on endLine, 1-based, inclusive (optional)"),
                        "severity": {"type": "string", "enum": severities},
                        "category": {"type": "string", "enum": categories},
                        "title": text("One line naming the problem"),
                        "explanation": text("What is wrong and why it matters"),
                        "suggestion": text("How to fix it, in words"),
                        "snippet": text("The code the finding is about, copied verbatim from the file"),
                        "fix": {
                            "type": "object",
                            "properties": {
                                "oldText": text("The exact current code to replace, verbatim"),
                                "newText": text("Its replacement"),
                            },
                            "required": ["oldText", "newText"],
                        },
                        "related": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "path": text("The file, relative to the workspace root"),
                                    "line": line("1-based"),
                                    "message": text("Why this place matters"),
                                },
                                "required": ["path", "line", "message"],
                            },
                        },
                    },
                    "required": ["path", "startLine", "endLine", "severity", "category", "title", "explanation"],
                },
            },
            "summary": text("The answer in Markdown"),
        },
        "required": ["findings", "summary"],
    })
}

/// The max turns and effort of an analysis at `depth`; `max_turns` is the user's setting, which
/// a quick analysis never exceeds.
pub fn analysis_limits(depth: Depth, max_turns: Option<u32>) -> (Option<u32>, Option<Effort>) {
    match depth {
        Depth::Quick => {
            let turns = max_turns.map_or(QUICK_MAX_TURNS, |turns| turns.min(QUICK_MAX_TURNS));
            (Some(turns), Some(Effort::Low))
        }
        Depth::Normal => (max_turns, None),
        Depth::Deep => (max_turns, Some(Effort::High)),
    }
}

/// One finding as the model reported it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportedFinding {
    pub path: String,
    pub start_line: u32,
    #[serde(default)]
    pub start_column: Option<u32>,
    /// Required by the schema; a fenced block may leave it out (then: `start_line`).
    #[serde(default)]
    pub end_line: Option<u32>,
    #[serde(default)]
    pub end_column: Option<u32>,
    pub severity: Severity,
    pub category: Category,
    pub title: String,
    pub explanation: String,
    #[serde(default)]
    pub suggestion: Option<String>,
    #[serde(default)]
    pub snippet: Option<String>,
    #[serde(default)]
    pub fix: Option<ReportedFix>,
    #[serde(default)]
    pub related: Vec<ReportedRelated>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportedFix {
    pub old_text: String,
    pub new_text: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReportedRelated {
    pub path: String,
    pub line: u32,
    pub message: String,
}

/// Where a report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportSource {
    Structured,
    FencedJson,
    PlainText,
}

/// The model's answer, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The answer in Markdown (without the findings block of a text answer).
    pub summary: String,
    pub findings: Vec<ReportedFinding>,
    /// Sentences for the user about what could not be read.
    pub notes: Vec<String>,
    pub source: ReportSource,
}

/// Structured output that is not a findings report. The CLI validates it against [`schema`],
/// so this means the CLI and claude-lsp disagree about the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Claude's structured output is not a findings report: {reason}")]
pub struct MalformedReport {
    pub reason: String,
}

/// Reads the answer of a run: `structured` (`result.structured_output`) when there is one, else
/// the last fenced `json` block of `text` that holds `findings`, else `text` with a note.
pub fn read_report(structured: Option<&Value>, text: &str) -> Result<Report, MalformedReport> {
    if let Some(value) = structured {
        let object = value.as_object().ok_or_else(|| MalformedReport {
            reason: format!("expected an object, got {}", json_kind(value)),
        })?;
        let findings = object
            .get("findings")
            .and_then(Value::as_array)
            .ok_or_else(|| MalformedReport { reason: "it has no `findings` list".to_owned() })?;
        let summary = object.get("summary").and_then(Value::as_str).unwrap_or_default();
        let (findings, notes) = read_findings(findings);
        return Ok(Report {
            summary: summary.trim().to_owned(),
            findings,
            notes,
            source: ReportSource::Structured,
        });
    }
    match last_findings_block(text) {
        Some(Ok(block)) => {
            let rest = format!("{}{}", &text[..block.span.start], &text[block.span.end..]);
            let rest = rest.trim();
            let summary = match block.value.get("summary").and_then(Value::as_str) {
                Some(summary) if rest.is_empty() => summary.trim(),
                _ => rest,
            };
            let findings = block.value.get("findings").and_then(Value::as_array);
            let (findings, notes) = read_findings(findings.map_or(&[][..], Vec::as_slice));
            Ok(Report {
                summary: summary.to_owned(),
                findings,
                notes,
                source: ReportSource::FencedJson,
            })
        }
        Some(Err(why)) => Ok(plain_text(
            text,
            format!(
                "The findings in Claude's answer could not be read ({why}), so none are shown as diagnostics."
            ),
        )),
        None => Ok(plain_text(
            text,
            "Claude did not return its findings in the structured format, so none are shown as \
             diagnostics."
                .to_owned(),
        )),
    }
}

fn plain_text(text: &str, note: String) -> Report {
    Report {
        summary: text.trim().to_owned(),
        findings: Vec::new(),
        notes: vec![note],
        source: ReportSource::PlainText,
    }
}

/// Every finding that reads; a note for each that does not.
fn read_findings(values: &[Value]) -> (Vec<ReportedFinding>, Vec<String>) {
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    for (index, value) in values.iter().enumerate() {
        match serde_json::from_value::<ReportedFinding>(value.clone()) {
            Ok(finding) => findings.push(finding),
            Err(err) => {
                let title = value.get("title").and_then(Value::as_str).map(str::trim);
                let named = match title {
                    Some(title) if !title.is_empty() => format!(" (“{title}”)"),
                    _ => String::new(),
                };
                notes.push(format!("Finding {}{named} could not be read: {err}.", index + 1));
            }
        }
    }
    (findings, notes)
}

/// A fenced code block of a Markdown text.
struct FencedBlock<'a> {
    /// Byte span of the whole block, fences included.
    span: std::ops::Range<usize>,
    info: &'a str,
    content: &'a str,
}

/// The fenced blocks of `text` (``` or ~~~ fences of 3 or more; an unclosed block runs to the
/// end, as in CommonMark).
fn fenced_blocks(text: &str) -> Vec<FencedBlock<'_>> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, usize, char, usize, &str)> = None;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let start = at;
        at += line.len();
        let trimmed = line.trim();
        let fence_char = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = fence_char.map_or(0, |c| trimmed.chars().take_while(|x| *x == c).count());
        match (open, fence_char) {
            (None, Some(c)) if run >= 3 => {
                open = Some((start, at, c, run, trimmed[run..].trim()));
            }
            (Some((block_start, content_start, c, length, info)), Some(found))
                if found == c && run >= length && trimmed.len() == run =>
            {
                blocks.push(FencedBlock {
                    span: block_start..at,
                    info,
                    content: &text[content_start..start],
                });
                open = None;
            }
            _ => {}
        }
    }
    if let Some((block_start, content_start, _, _, info)) = open {
        blocks.push(FencedBlock {
            span: block_start..text.len(),
            info,
            content: &text[content_start..],
        });
    }
    blocks
}

struct FindingsBlock {
    span: std::ops::Range<usize>,
    value: Value,
}

/// The last fenced block holding a JSON object with `findings`; `Err` when there is a `json`
/// block that mentions findings but is not valid JSON of that shape.
fn last_findings_block(text: &str) -> Option<Result<FindingsBlock, String>> {
    let mut broken = None;
    for block in fenced_blocks(text).into_iter().rev() {
        let language = block.info.split_whitespace().next().unwrap_or("");
        if !matches!(language.to_ascii_lowercase().as_str(), "" | "json" | "jsonc") {
            continue;
        }
        let content = block.content.trim();
        if !content.starts_with('{') {
            continue;
        }
        match serde_json::from_str::<Value>(content) {
            Ok(value) if value.get("findings").is_some_and(Value::is_array) => {
                return Some(Ok(FindingsBlock { span: block.span, value }));
            }
            Ok(_) => {}
            Err(err) if broken.is_none() && content.contains("\"findings\"") => {
                broken = Some(format!("its JSON is invalid: {err}"));
            }
            Err(_) => {}
        }
    }
    broken.map(Err)
}

/// A file's text as Claude saw it (for the target: the buffer when the run started; otherwise
/// the disk) and as it is now (the open buffer, or the disk).
#[derive(Debug, Clone)]
pub struct FileText {
    /// The URI to publish under: the client's own spelling when the document is open.
    pub uri: Uri,
    pub seen: String,
    pub current: String,
}

pub struct PlaceOptions<'a> {
    pub workspace: &'a Path,
    pub encoding: PositionEncoding,
    /// Findings less severe than this are left out.
    pub min_severity: Option<Severity>,
}

/// The outcome of placing a report's findings.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// Placed findings with their file.
    pub placed: Vec<(PathBuf, Finding)>,
    /// One Markdown list item per finding that could not be placed.
    pub unplaced: Vec<String>,
    /// How many findings were less severe than the minimum.
    pub left_out: usize,
    /// Findings placed without their fix (it did not match the code exactly).
    pub fixes_dropped: usize,
}

/// A file loaded for placement.
struct LoadedFile {
    uri: Uri,
    seen: Document,
    /// Edits from the seen text to the current one, last first (see [`Splice`]).
    to_current: Vec<Splice>,
}

/// Places every finding of `findings` in its file, as the file is now. `text_of` loads a file
/// (an absolute path inside the workspace); `None` when it does not exist.
pub fn place(
    findings: &[ReportedFinding],
    options: &PlaceOptions,
    text_of: &mut dyn FnMut(&Path) -> Option<FileText>,
) -> Placement {
    let mut files: HashMap<PathBuf, Option<LoadedFile>> = HashMap::new();
    let mut placement = Placement::default();
    for finding in findings {
        if options.min_severity.is_some_and(|min| finding.severity > min) {
            placement.left_out += 1;
            continue;
        }
        let located = match resolve_path(options.workspace, &finding.path) {
            Ok(path) => match loaded(&mut files, &path, text_of, options.encoding) {
                Some(file) => locate(finding, &file.seen, options.encoding).and_then(|spot| {
                    let range = rebase(spot.range, &file.to_current)
                        .ok_or("the code changed while Claude was looking at it")?;
                    Ok((path.clone(), file.uri.clone(), spot, range))
                }),
                None => Err("there is no such file in the workspace"),
            },
            Err(why) => Err(why),
        };
        let (path, uri, spot, range) = match located {
            Ok(located) => located,
            Err(why) => {
                placement.unplaced.push(unplaced_item(finding, why));
                continue;
            }
        };
        if finding.fix.is_some() && spot.fix.is_none() {
            placement.fixes_dropped += 1;
        }
        let mut related = Vec::new();
        for item in &finding.related {
            let Ok(path) = resolve_path(options.workspace, &item.path) else { continue };
            let Some(file) = loaded(&mut files, &path, text_of, options.encoding) else {
                continue;
            };
            let Some(range) = line_range(&file.seen, item.line, item.line, options.encoding)
                .and_then(|range| rebase(range, &file.to_current))
            else {
                continue;
            };
            related.push(RelatedLocation {
                uri: file.uri.clone(),
                range,
                message: item.message.trim().to_owned(),
            });
        }
        placement.placed.push((
            path,
            Finding {
                id: new_id(),
                uri,
                range,
                severity: finding.severity,
                category: finding.category,
                title: finding.title.trim().to_owned(),
                explanation: finding.explanation.trim().to_owned(),
                suggestion: finding
                    .suggestion
                    .as_deref()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                fix: spot.fix,
                related,
            },
        ));
    }
    placement
}

/// The file at `path`, loaded on first use.
fn loaded<'a>(
    files: &'a mut HashMap<PathBuf, Option<LoadedFile>>,
    path: &Path,
    text_of: &mut dyn FnMut(&Path) -> Option<FileText>,
    encoding: PositionEncoding,
) -> Option<&'a LoadedFile> {
    files
        .entry(path.to_path_buf())
        .or_insert_with(|| text_of(path).map(|text| load_file(text, encoding)))
        .as_ref()
}

fn load_file(text: FileText, encoding: PositionEncoding) -> LoadedFile {
    let to_current = if text.seen == text.current {
        Vec::new()
    } else {
        splices_between(&text.seen, &text.current, encoding)
    };
    let seen = Document::new(text.uri.clone(), String::new(), 0, &text.seen);
    LoadedFile { uri: text.uri, seen, to_current }
}

/// The splices turning `before` into `after`, ready for [`rebase`]: the edits of a diff are all
/// relative to `before`, so they are applied last first (each then only moves what follows it).
pub fn splices_between(before: &str, after: &str, encoding: PositionEncoding) -> Vec<Splice> {
    let mut splices: Vec<Splice> = edits::text_edits(before, after, encoding)
        .iter()
        .map(|edit| Splice::new(edit.range, &edit.new_text, encoding))
        .collect();
    splices.reverse();
    splices
}

/// `range` after `splices` (in order); `None` when one of them touches it.
fn rebase(range: Range, splices: &[Splice]) -> Option<Range> {
    splices.iter().try_fold(range, |range, splice| splice.shift(range))
}

fn new_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("f{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn unplaced_item(finding: &ReportedFinding, why: &str) -> String {
    let lines = match finding.end_line {
        Some(end) if end > finding.start_line => format!("{}-{end}", finding.start_line),
        _ => finding.start_line.to_string(),
    };
    let mut item = format!(
        "- **{}** ({}, {}) at `{}:{lines}`: {}",
        finding.title.trim(),
        severity_name(finding.severity),
        finding.category.as_str(),
        finding.path.trim(),
        finding.explanation.trim()
    );
    if let Some(suggestion) = finding.suggestion.as_deref().map(str::trim).filter(|s| !s.is_empty())
    {
        let _ = write!(item, " Suggestion: {suggestion}");
    }
    let _ = write!(item, " _(Not shown as a diagnostic: {why}.)_");
    // Continuation lines stay inside the list item.
    item.replace('\n', "\n  ")
}

/// The answer shown to the user: the summary, then what could not be placed or read.
pub fn summary_text(report: &Report, placement: &Placement) -> String {
    let mut text = report.summary.clone();
    let mut push_paragraph = |paragraph: &str| {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(paragraph);
    };
    if !placement.unplaced.is_empty() {
        let count = placement.unplaced.len();
        let heading = if count == 1 {
            "**1 finding could not be located in the code:**".to_owned()
        } else {
            format!("**{count} findings could not be located in the code:**")
        };
        push_paragraph(&format!("{heading}\n\n{}", placement.unplaced.join("\n")));
    }
    if placement.fixes_dropped > 0 {
        push_paragraph(&format!(
            "_{} fix{} did not match the code exactly and {} left out._",
            placement.fixes_dropped,
            if placement.fixes_dropped == 1 { "" } else { "es" },
            if placement.fixes_dropped == 1 { "was" } else { "were" },
        ));
    }
    for note in &report.notes {
        push_paragraph(&format!("_{note}_"));
    }
    text
}

/// An answer and its findings as plain text (the headless output, the editor's output channel):
/// the answer, then each finding as `path:line:col: severity [category] title` with its
/// explanation and suggestion indented. Paths are relative to `workspace`.
pub fn plain_answer(text: &str, findings: &[Finding], workspace: &Path) -> String {
    let mut out = String::new();
    let text = text.trim_end();
    if !text.is_empty() {
        out.push_str(text);
        out.push('\n');
    }
    if !findings.is_empty() {
        out.push('\n');
    }
    for finding in findings {
        let path = shown_path(finding, workspace);
        let _ = writeln!(
            out,
            "{path}:{}:{}: {} [{}] {}",
            finding.range.start.line + 1,
            finding.range.start.character + 1,
            severity_name(finding.severity),
            finding.category.as_str(),
            finding.title
        );
        for line in finding.explanation.lines() {
            let _ = writeln!(out, "    {line}");
        }
        if let Some(suggestion) = &finding.suggestion {
            let _ = writeln!(out, "    suggestion: {suggestion}");
        }
    }
    out
}

/// An answer and its findings as Markdown (`claude-lsp run --format markdown`): the answer,
/// then a `## Findings` list, each finding with its place, severity, category, explanation and
/// suggestion.
pub fn markdown_answer(text: &str, findings: &[Finding], workspace: &Path) -> String {
    let mut out = String::new();
    let text = text.trim();
    if !text.is_empty() {
        out.push_str(text);
        out.push_str("\n\n");
    }
    if findings.is_empty() {
        out.push_str("No findings.\n");
        return out;
    }
    out.push_str("## Findings\n\n");
    for finding in findings {
        let _ = writeln!(
            out,
            "- **{}** `{}:{}` ({}, {})",
            finding.title,
            shown_path(finding, workspace),
            finding.range.start.line + 1,
            severity_name(finding.severity),
            finding.category.as_str(),
        );
        for line in finding.explanation.lines() {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(suggestion) = &finding.suggestion {
            let _ = writeln!(out, "  *Suggestion:* {suggestion}");
        }
    }
    out
}

/// A finding's file, relative to `workspace` when inside it.
fn shown_path(finding: &Finding, workspace: &Path) -> String {
    edits::uri_to_path(&finding.uri)
        .map(|path| path.strip_prefix(workspace).map(Path::to_path_buf).unwrap_or(path))
        .map_or_else(|_| finding.uri.as_str().to_owned(), |path| path.display().to_string())
}

/// The absolute path of a reported path, which must stay inside the workspace.
fn resolve_path(workspace: &Path, reported: &str) -> Result<PathBuf, &'static str> {
    let reported = reported.trim();
    if reported.is_empty() {
        return Err("it names no file");
    }
    let path = Path::new(reported);
    let joined = if path.is_absolute() { path.to_path_buf() } else { workspace.join(path) };
    let outside = "its file is outside the workspace";
    let normal = normalize(&joined).ok_or(outside)?;
    if let Ok(relative) = normal.strip_prefix(workspace) {
        return Ok(workspace.join(relative));
    }
    // The CLI may name files under the workspace's canonical path (a symlinked temp dir).
    if let Ok(canonical) = workspace.canonicalize()
        && let Ok(relative) = normal.strip_prefix(&canonical)
    {
        return Ok(workspace.join(relative));
    }
    Err(outside)
}

/// Where a finding goes in the text Claude saw.
struct Spot {
    range: Range,
    /// The fix, kept only when its `oldText` is exactly the text at `range`.
    fix: Option<FindingFix>,
}

fn locate(
    finding: &ReportedFinding,
    doc: &Document,
    encoding: PositionEncoding,
) -> Result<Spot, &'static str> {
    if finding.start_line == 0 {
        return Err("its line numbers start at 0, but lines are counted from 1");
    }
    let start_line = finding.start_line;
    let end_line = finding.end_line.unwrap_or(start_line).max(start_line);
    let text = doc.text();
    let crlf = text.contains("\r\n");
    let fix = finding.fix.as_ref().filter(|fix| !fix.old_text.trim().is_empty());
    let snippet = finding.snippet.as_deref().filter(|s| !s.trim().is_empty());

    // The fix's old text places the finding exactly, and only then can the fix be applied.
    let mut failure = None;
    if let Some(fix) = fix {
        let old_text = with_line_endings(&fix.old_text, crlf);
        match choose(&exact(&text, &old_text, doc), start_line, end_line) {
            Ok(Some(span)) => {
                let fix = FindingFix { old_text, new_text: with_line_endings(&fix.new_text, crlf) };
                return Ok(Spot { range: span_range(doc, span, encoding), fix: Some(fix) });
            }
            Ok(None) => {}
            Err(why) => failure = Some(why),
        }
    }
    let quotes: Vec<&str> =
        snippet.into_iter().chain(fix.map(|fix| fix.old_text.as_str())).collect();
    for quote in &quotes {
        let quote = with_line_endings(quote.trim_matches(['\r', '\n']), crlf);
        let mut spans = exact(&text, &quote, doc);
        if spans.is_empty() {
            spans = by_trimmed_lines(doc, &quote);
        }
        match choose(&spans, start_line, end_line) {
            Ok(Some(span)) => {
                return Ok(Spot { range: span_range(doc, span, encoding), fix: None });
            }
            Ok(None) => {}
            Err(why) => {
                failure.get_or_insert(why);
            }
        }
    }
    if !quotes.is_empty() {
        return Err(failure.unwrap_or("the code it quotes is not in the file"));
    }
    let range = match (finding.start_column, finding.end_column) {
        (Some(start), Some(end)) => columns_range(doc, start_line, start, end_line, end, encoding),
        _ => None,
    };
    let range = range.or_else(|| line_range(doc, start_line, end_line, encoding));
    range.map(|range| Spot { range, fix: None }).ok_or("its lines are past the end of the file")
}

fn span_range(doc: &Document, span: (usize, usize), encoding: PositionEncoding) -> Range {
    Range::new(doc.position(span.0, encoding), doc.position(span.1, encoding))
}

/// `text` with its line breaks in the document's style.
fn with_line_endings(text: &str, crlf: bool) -> String {
    let lf = text.replace("\r\n", "\n");
    if crlf { lf.replace('\n', "\r\n") } else { lf }
}

/// A char span of the document with its first and last lines (0-based).
type Span = (usize, usize, u32, u32);

/// Every exact occurrence of `needle`, as char spans.
fn exact(text: &str, needle: &str, doc: &Document) -> Vec<Span> {
    if needle.is_empty() {
        return Vec::new();
    }
    let rope = doc.rope();
    let mut spans = Vec::new();
    let mut from = 0;
    while spans.len() < MAX_OCCURRENCES
        && let Some(found) = text[from..].find(needle)
    {
        let byte = from + found;
        let start = rope.byte_to_char(byte);
        let end = rope.byte_to_char(byte + needle.len());
        let first = rope_line(doc, start);
        let last = rope_line(doc, end.saturating_sub(1).max(start));
        spans.push((start, end, first, last));
        from = byte + needle.chars().next().map_or(1, char::len_utf8);
    }
    spans
}

/// The LSP line (0-based) holding a char offset.
fn rope_line(doc: &Document, char_offset: usize) -> u32 {
    doc.position(char_offset, PositionEncoding::Utf32).line
}

/// Occurrences of `needle` with its indentation ignored: lines equal once trimmed (the first may
/// end a line and the last may start one). Spans cover the text from the first line's first
/// non-blank character to the end of the last line.
fn by_trimmed_lines(doc: &Document, needle: &str) -> Vec<Span> {
    let wanted: Vec<&str> = needle.lines().map(str::trim).collect();
    let first_wanted = wanted.iter().position(|line| !line.is_empty());
    let last_wanted = wanted.iter().rposition(|line| !line.is_empty());
    let (Some(first_wanted), Some(last_wanted)) = (first_wanted, last_wanted) else {
        return Vec::new();
    };
    let wanted = &wanted[first_wanted..=last_wanted];
    let lines: Vec<String> = (0..doc.line_count()).filter_map(|line| doc.line_text(line)).collect();
    let matches = |window: &[String]| {
        window.iter().zip(wanted).enumerate().all(|(offset, (have, want))| {
            let have = have.trim();
            match (offset, wanted.len()) {
                (_, 1) => have.contains(want),
                (0, _) => have.ends_with(want),
                (o, n) if o == n - 1 => have.starts_with(want),
                _ => have == *want,
            }
        })
    };
    let index = doc.line_index();
    let rope = doc.rope();
    let mut spans = Vec::new();
    for (start, window) in lines.windows(wanted.len()).enumerate() {
        if spans.len() >= MAX_OCCURRENCES {
            break;
        }
        if !matches(window) {
            continue;
        }
        let last = start + wanted.len() - 1;
        let (Some(line_start), Some(line_end)) =
            (index.line_start(start), index.line_end(rope, last))
        else {
            continue;
        };
        let indent = window[0].chars().take_while(|c| c.is_whitespace()).count();
        spans.push((line_start + indent, line_end, saturate(start), saturate(last)));
    }
    spans
}

/// The occurrence nearest to lines `start_line..=end_line` (1-based): `Ok(None)` when there is
/// none, an error when the choice is not clear.
fn choose(
    spans: &[Span],
    start_line: u32,
    end_line: u32,
) -> Result<Option<(usize, usize)>, &'static str> {
    let (start, end) = (start_line - 1, end_line - 1);
    let distance = |span: &Span| {
        let (first, last) = (span.2, span.3);
        if last < start { start - last } else { first.saturating_sub(end) }
    };
    let Some(nearest) = spans.iter().min_by_key(|span| distance(span)) else {
        return Ok(None);
    };
    let best = distance(nearest);
    if spans.len() > 1 && best > 0 {
        if best > NEAR_LINES {
            return Err("the code it quotes appears several times, none of them near its lines");
        }
        if spans.iter().filter(|span| distance(span) == best).count() > 1 {
            return Err("the code it quotes appears several times, equally near its lines");
        }
    }
    Ok(Some((nearest.0, nearest.1)))
}

/// How many lines a text has as shown to Claude: the empty line after a final line break does
/// not count, an empty text has one (empty) line.
fn content_lines(doc: &Document) -> u32 {
    let count = doc.line_count();
    let rope = doc.rope();
    let ends_with_break =
        rope.len_chars() > 0 && matches!(rope.char(rope.len_chars() - 1), '\n' | '\r');
    saturate(if ends_with_break { count - 1 } else { count }.max(1))
}

/// Lines `start..=end` (1-based) from the first non-blank character of the first to the end of
/// the last; `None` when they are not in the text.
fn line_range(doc: &Document, start: u32, end: u32, encoding: PositionEncoding) -> Option<Range> {
    if start == 0 || end < start || end > content_lines(doc) {
        return None;
    }
    let (first, last) = ((start - 1) as usize, (end - 1) as usize);
    let index = doc.line_index();
    let indent = doc.line_text(first)?.chars().take_while(|c| c.is_whitespace()).count();
    let from = index.line_start(first)? + indent;
    let to = index.line_end(doc.rope(), last)?.max(from);
    Some(Range::new(doc.position(from, encoding), doc.position(to, encoding)))
}

/// 1-based, inclusive columns (characters); `None` when they do not fit their lines.
fn columns_range(
    doc: &Document,
    start_line: u32,
    start_column: u32,
    end_line: u32,
    end_column: u32,
    encoding: PositionEncoding,
) -> Option<Range> {
    if start_line == 0 || end_line > content_lines(doc) || start_column == 0 {
        return None;
    }
    let (first, last) = ((start_line - 1) as usize, (end_line - 1) as usize);
    let first_length = doc.line_text(first)?.chars().count();
    let last_length = doc.line_text(last)?.chars().count();
    let (start_column, end_column) = (start_column as usize, end_column as usize);
    if start_column > first_length || end_column > last_length {
        return None;
    }
    let index = doc.line_index();
    let from = index.line_start(first)? + start_column - 1;
    let to = index.line_start(last)? + end_column;
    (from < to).then(|| Range::new(doc.position(from, encoding), doc.position(to, encoding)))
}

fn saturate(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// One text change: `range` (in the text before it) replaced by text that ends `lines` line
/// breaks later, `last_width` code units into its last line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Splice {
    range: Range,
    lines: u32,
    last_width: u32,
}

impl Splice {
    pub fn new(range: Range, inserted: &str, encoding: PositionEncoding) -> Self {
        let rope = Rope::from_str(inserted);
        let end = LineIndex::new(&rope).position(&rope, rope.len_chars(), encoding);
        Self { range, lines: end.line, last_width: end.character }
    }

    /// Where the inserted text ends.
    fn new_end(&self) -> Position {
        let start = self.range.start;
        if self.lines == 0 {
            Position::new(start.line, start.character.saturating_add(self.last_width))
        } else {
            Position::new(start.line.saturating_add(self.lines), self.last_width)
        }
    }

    /// A position at or after the splice's end, moved by it.
    fn move_position(&self, position: Position) -> Position {
        let (old_end, new_end) = (self.range.end, self.new_end());
        if position.line == old_end.line {
            let character = position.character.saturating_sub(old_end.character);
            Position::new(new_end.line, new_end.character.saturating_add(character))
        } else {
            let line = i64::from(position.line) - i64::from(old_end.line) + i64::from(new_end.line);
            Position::new(u32::try_from(line).unwrap_or(0), position.character)
        }
    }

    /// `range` after this splice: moved when the splice ends before it (typing right at its
    /// start counts as before), unchanged when the splice starts after it (or right at its end),
    /// `None` when the splice touches it.
    pub fn shift(&self, range: Range) -> Option<Range> {
        if self.range.end <= range.start {
            Some(Range::new(self.move_position(range.start), self.move_position(range.end)))
        } else if self.range.start >= range.end {
            Some(range)
        } else {
            None
        }
    }
}

/// What a run looked at. A new run's findings replace what an earlier run of a region it covers
/// reported, and every finding inside the region it looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reviewed {
    /// Lines `start..=end` (0-based) of a file.
    Lines {
        path: PathBuf,
        start: u32,
        end: u32,
    },
    File {
        path: PathBuf,
    },
    /// The uncommitted changes of a workspace.
    Changes {
        workspace: PathBuf,
    },
    /// Every file under a folder (a folder or workspace scope).
    Tree {
        root: PathBuf,
    },
}

impl Reviewed {
    /// Whether a run of `self` supersedes an earlier run of `earlier`.
    fn covers(&self, earlier: &Reviewed) -> bool {
        match (self, earlier) {
            (
                Reviewed::File { path },
                Reviewed::File { path: p } | Reviewed::Lines { path: p, .. },
            ) => path == p,
            (
                Reviewed::Lines { path, start, end },
                Reviewed::Lines { path: p, start: s, end: e },
            ) => path == p && start <= e && s <= end,
            (Reviewed::Changes { workspace }, Reviewed::Changes { workspace: w }) => workspace == w,
            (Reviewed::Tree { root }, Reviewed::Tree { root: r }) => r.starts_with(root),
            (
                Reviewed::Tree { root },
                Reviewed::File { path: p } | Reviewed::Lines { path: p, .. },
            ) => p.starts_with(root),
            _ => false,
        }
    }

    /// Whether a finding at `range` of `path` is inside what a run of `self` looked at.
    fn contains(&self, path: &Path, range: &Range) -> bool {
        match self {
            Reviewed::File { path: p } => p == path,
            Reviewed::Lines { path: p, start, end } => {
                p == path && range.start.line <= *end && *start <= range.end.line
            }
            Reviewed::Changes { .. } => false,
            Reviewed::Tree { root } => path.starts_with(root),
        }
    }

    /// The file whose diagnostics a run of `self` always publishes (to clear the old ones).
    fn target(&self) -> Option<&Path> {
        match self {
            Reviewed::Lines { path, .. } | Reviewed::File { path } => Some(path),
            Reviewed::Changes { .. } | Reviewed::Tree { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
struct StoredFinding {
    finding: Finding,
    origin: Reviewed,
}

#[derive(Debug, Clone)]
struct FileFindings {
    uri: Uri,
    findings: Vec<StoredFinding>,
    /// While the file is not open in the editor: a hash of the text its findings were placed
    /// on, so opening it with other text (or a change on disk) shows they are stale.
    closed_text: Option<u64>,
}

/// A file whose diagnostics must be published again, with its findings now.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub path: PathBuf,
    pub uri: Uri,
    pub findings: Vec<Finding>,
}

/// The published findings, per file (by path: clients spell URIs differently).
#[derive(Debug, Default)]
pub struct FindingStore {
    files: HashMap<PathBuf, FileFindings>,
}

impl FindingStore {
    /// Stores a run's findings. `target_uri` is the URI of the reviewed file (published even when
    /// it has no findings left). Returns every file to publish again.
    pub fn replace(
        &mut self,
        reviewed: &Reviewed,
        target_uri: &Uri,
        findings: Vec<(PathBuf, Finding)>,
    ) -> Vec<Publication> {
        let mut touched: Vec<PathBuf> = Vec::new();
        let mut touch = |path: &Path| {
            if !touched.iter().any(|p| p == path) {
                touched.push(path.to_path_buf());
            }
        };
        for (path, file) in &mut self.files {
            let before = file.findings.len();
            file.findings.retain(|stored| {
                !(reviewed.covers(&stored.origin) || reviewed.contains(path, &stored.finding.range))
            });
            if file.findings.len() != before {
                touch(path);
            }
        }
        if let Some(target) = reviewed.target() {
            touch(target);
            self.files.entry(target.to_path_buf()).or_insert_with(|| FileFindings {
                uri: target_uri.clone(),
                findings: Vec::new(),
                closed_text: None,
            });
        }
        for (path, finding) in findings {
            touch(&path);
            let file = self.files.entry(path).or_insert_with(|| FileFindings {
                uri: finding.uri.clone(),
                findings: Vec::new(),
                closed_text: None,
            });
            file.findings.push(StoredFinding { finding, origin: reviewed.clone() });
        }
        self.publications(touched)
    }

    /// The finding `id` of the file at `path`.
    pub fn get(&self, path: &Path, id: &str) -> Option<Finding> {
        let file = self.files.get(path)?;
        file.findings.iter().find(|s| s.finding.id == id).map(|s| s.finding.clone())
    }

    /// The findings of the file at `path`, in the order they were reported.
    pub fn findings_in(&self, path: &Path) -> Vec<Finding> {
        self.files
            .get(path)
            .map(|file| file.findings.iter().map(|s| s.finding.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether any finding, or any of their related locations, is in the file at `path`.
    pub fn touches(&self, path: &Path) -> bool {
        self.files.get(path).is_some_and(|file| !file.findings.is_empty())
            || self.files.values().any(|file| {
                file.findings.iter().any(|s| s.finding.related.iter().any(|r| is_in(&r.uri, path)))
            })
    }

    /// Removes finding `id` of the file at `path`, or all of its findings. Returns how many went,
    /// and the file to publish again when any did.
    pub fn dismiss(&mut self, path: &Path, id: Option<&str>) -> (usize, Option<Publication>) {
        let Some(file) = self.files.get_mut(path) else { return (0, None) };
        let before = file.findings.len();
        file.findings.retain(|stored| id.is_some_and(|id| stored.finding.id != id));
        let removed = before - file.findings.len();
        if removed == 0 {
            return (0, None);
        }
        (removed, self.publications(vec![path.to_path_buf()]).pop())
    }

    /// The file at `path` is not open in the editor and holds `text`, which its findings stand
    /// for (placed on it, or left with it when the editor closed the file).
    pub fn note_closed_text(&mut self, path: &Path, text: &str) {
        if let Some(file) = self.files.get_mut(path) {
            file.closed_text = Some(text_hash(text));
        }
    }

    /// The editor opened the file at `path` with `text`. Findings that stood for another text
    /// go (they may point anywhere now); from here on, edits move them. Returns the file to
    /// publish again when they went.
    pub fn opened(&mut self, path: &Path, text: &str) -> Option<Publication> {
        let file = self.files.get_mut(path)?;
        let stale = file.closed_text.take().is_some_and(|hash| hash != text_hash(text));
        if stale { self.dismiss(path, None).1 } else { None }
    }

    /// The file at `path`, not open in the editor, changed on disk (`text`: what it holds now;
    /// `None`: deleted or unreadable). Its findings go unless the text is the one they stand for.
    pub fn changed_on_disk(&mut self, path: &Path, text: Option<&str>) -> Option<Publication> {
        let file = self.files.get(path)?;
        let same = text.is_some_and(|text| file.closed_text == Some(text_hash(text)));
        if same { None } else { self.dismiss(path, None).1 }
    }

    /// Moves the findings of the file at `path` (and related locations there) through `splices`,
    /// applied in order; findings they touch are removed. Returns the files to publish again.
    pub fn apply_splices(&mut self, path: &Path, splices: &[Splice]) -> Vec<Publication> {
        let mut touched = Vec::new();
        for (file_path, file) in &mut self.files {
            let own = file_path == path;
            let mut changed = false;
            file.findings.retain_mut(|stored| {
                let finding = &mut stored.finding;
                if own {
                    match rebase(finding.range, splices) {
                        Some(range) => {
                            changed |= range != finding.range;
                            finding.range = range;
                        }
                        None => {
                            changed = true;
                            return false;
                        }
                    }
                }
                finding.related.retain_mut(|related| {
                    if !is_in(&related.uri, path) {
                        return true;
                    }
                    let moved = rebase(related.range, splices);
                    changed |= moved != Some(related.range);
                    moved.map(|range| related.range = range).is_some()
                });
                true
            });
            if changed {
                touched.push(file_path.clone());
            }
        }
        self.publications(touched)
    }

    /// Snapshots of `paths`; files left without findings are forgotten once published.
    fn publications(&mut self, paths: Vec<PathBuf>) -> Vec<Publication> {
        let mut publications = Vec::new();
        for path in paths {
            let Some(file) = self.files.get(&path) else { continue };
            let findings: Vec<Finding> = file.findings.iter().map(|s| s.finding.clone()).collect();
            let uri = file.uri.clone();
            if findings.is_empty() {
                self.files.remove(&path);
            }
            publications.push(Publication { path, uri, findings });
        }
        publications.sort_by(|a, b| a.path.cmp(&b.path));
        publications
    }
}

fn text_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

fn is_in(uri: &Uri, path: &Path) -> bool {
    edits::uri_to_path(uri).is_ok_and(|p| p == path)
}

/// A finding as a diagnostic: `source` claude, `code` its category, `data.findingId` its id.
/// Without client support for related information, the related locations go in the message.
pub fn to_diagnostic(finding: &Finding, related_information: bool) -> Diagnostic {
    let severity = match finding.severity {
        Severity::Error => DiagnosticSeverity::ERROR,
        Severity::Warning => DiagnosticSeverity::WARNING,
        Severity::Info => DiagnosticSeverity::INFORMATION,
        Severity::Hint => DiagnosticSeverity::HINT,
    };
    let mut message = finding.title.clone();
    if !finding.explanation.is_empty() {
        let _ = write!(message, "\n\n{}", finding.explanation);
    }
    if let Some(suggestion) = &finding.suggestion {
        let _ = write!(message, "\n\nSuggestion: {suggestion}");
    }
    let related = if related_information {
        let related: Vec<DiagnosticRelatedInformation> = finding
            .related
            .iter()
            .map(|related| DiagnosticRelatedInformation {
                location: Location { uri: related.uri.clone(), range: related.range },
                message: crate::base::secrets::redacted(&related.message),
            })
            .collect();
        (!related.is_empty()).then_some(related)
    } else {
        for related in &finding.related {
            let place = edits::uri_to_path(&related.uri)
                .map_or_else(|_| related.uri.as_str().to_owned(), |p| p.display().to_string());
            let _ = write!(
                message,
                "\n\nSee also {place}:{}: {}",
                related.range.start.line + 1,
                related.message
            );
        }
        None
    };
    Diagnostic {
        range: finding.range,
        severity: Some(severity),
        code: Some(NumberOrString::String(finding.category.as_str().to_owned())),
        source: Some(SOURCE.to_owned()),
        // The model wrote it: a secret it quoted is not shown in the editor's problem list.
        message: crate::base::secrets::redacted(&message),
        related_information: related,
        data: Some(json!({ "findingId": finding.id })),
        ..Diagnostic::default()
    }
}

/// The id of the finding behind a diagnostic claude-lsp published.
pub fn finding_id(diagnostic: &Diagnostic) -> Option<&str> {
    if diagnostic.source.as_deref() != Some(SOURCE) {
        return None;
    }
    diagnostic.data.as_ref()?.get("findingId")?.as_str()
}

/// Checks a finding's fix against the current `text` of its file: the edit that applies it, or
/// why it cannot be applied.
pub fn fix_edit(
    finding: &Finding,
    text: &str,
    encoding: PositionEncoding,
) -> Result<TextEdit, FixError> {
    let fix = finding.fix.as_ref().ok_or(FixError::NoFix)?;
    match exact_text(text, finding.range, encoding) {
        Some(found) if found == fix.old_text => {}
        found => return Err(FixError::Changed { found: found.unwrap_or_default() }),
    }
    Ok(TextEdit { range: finding.range, new_text: fix.new_text.clone() })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FixError {
    #[error("this finding has no fix")]
    NoFix,
    #[error("the code at the finding changed since the review")]
    Changed { found: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

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
        assert_eq!(
            analysis_limits(Depth::Quick, Some(50)),
            (Some(QUICK_MAX_TURNS), Some(Effort::Low))
        );
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
            report.notes[0]
                .starts_with("Finding 2 (“Odd”) could not be read: unknown variant `nit`"),
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
            assert!(
                err.to_string().starts_with("Claude's structured output is not a findings report")
            );
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
        assert_eq!(
            only_range(&place_in(&[("src/lib.rs", LIB, LIB)], &[finding])),
            range(1, 12, 1, 24)
        );
        // Columns past the line's end are ignored, not trusted.
        let finding = reported(json!({"startColumn": 13, "endColumn": 99}));
        assert_eq!(
            only_range(&place_in(&[("src/lib.rs", LIB, LIB)], &[finding])),
            range(1, 4, 1, 34)
        );
    }

    #[test]
    fn quoted_code_relocates_line_numbers_that_are_off() {
        // The model says lines 5-6, but the code is on line 2.
        let finding =
            reported(json!({"startLine": 5, "endLine": 6, "snippet": "parse(input).unwrap()"}));
        assert_eq!(
            only_range(&place_in(&[("src/lib.rs", LIB, LIB)], &[finding])),
            range(1, 12, 1, 33)
        );
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
        assert!(
            placement.unplaced[0].contains("equally near its lines"),
            "{}",
            placement.unplaced[0]
        );
        // Far from every occurrence: no guess. A unique snippet is trusted anywhere.
        let long: String = (0..200).map(|i| format!("line{i}();\na();\n")).collect();
        let placement = place_in(&[("x.rs", &long, &long)], &[near(398)]);
        assert_eq!(only_range(&placement), range(397, 0, 397, 4));
        let far = reported(
            json!({"path": "x.rs", "startLine": 1, "endLine": 1, "snippet": "line150();"}),
        );
        assert_eq!(
            only_range(&place_in(&[("x.rs", &long, &long)], &[far])),
            range(300, 0, 300, 10)
        );
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
        let findings =
            [reported(json!({"severity": "hint"})), reported(json!({"severity": "error"}))];
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
        let placement =
            place_in(&[("src/lib.rs", LIB, &typed_above)], std::slice::from_ref(&finding));
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
        let published = store.replace(
            &lines,
            &uri("/ws/a.rs"),
            vec![stored("4", "/ws/a.rs", range(2, 0, 2, 1))],
        );
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
        store.replace(
            &outside,
            &uri("/ws/top.rs"),
            vec![stored("2", "/ws/top.rs", range(0, 0, 0, 1))],
        );
        let src = Reviewed::Tree { root: PathBuf::from("/ws/src") };
        let published = store.replace(
            &src,
            &uri("/ws/src"),
            vec![stored("3", "/ws/src/b.rs", range(2, 0, 2, 1))],
        );
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
            let shown =
                serde_json::to_string(&to_diagnostic(&finding, related_information)).unwrap();
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
}
