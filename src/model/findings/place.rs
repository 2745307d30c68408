//! Each reported finding located in its file as the file is now. The code it quotes decides
//! where it goes; line numbers only choose between occurrences.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ropey::Rope;

use super::finding::{Finding, FindingFix, RelatedLocation, severity_name};
use super::report::ReportedFinding;
use crate::base::paths::normalize;
use crate::model::documents::{Document, LineIndex, PositionEncoding};
use crate::model::edits;
use crate::model::prompt::Severity;
use crate::protocol::lsp::{Position, Range, Uri};

/// With several occurrences of a finding's quoted code, the nearest one is taken only when it is
/// at most this many lines from the lines the finding names.
const NEAR_LINES: u32 = 40;

/// Occurrences of quoted code looked at per finding (a one-character snippet in a huge file
/// would otherwise cost a scan per occurrence).
const MAX_OCCURRENCES: usize = 1_000;

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

/// The splices turning `before` into `after`, ready for `rebase`: the edits of a diff are all
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
pub(super) fn rebase(range: Range, splices: &[Splice]) -> Option<Range> {
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
