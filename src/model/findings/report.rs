//! The model's answer read as a findings report: the schema the CLI is asked to fill, then the
//! structured output, else the last fenced `json` block, else the plain text with a note.

use serde::Deserialize;
use serde_json::{Value, json};

use super::finding::{Category, severity_name};
use crate::base::text::json_kind;
use crate::claude::args::Effort;
use crate::model::prompt::{Depth, Severity};

/// The most turns a quick analysis may take (reading a file or two, then answering).
pub(super) const QUICK_MAX_TURNS: u32 = 5;

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
