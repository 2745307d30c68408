//! Text diff → minimal TextEdits; WorkspaceEdit assembly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};
use ropey::Rope;
use similar::{Algorithm, DiffOp, capture_diff_slices};

use crate::base::text::lines_with_breaks;
use crate::model::documents::{LineIndex, PositionEncoding};
use crate::protocol::lsp::{
    ClientCapabilities, CreateFile, CreateFileOptions, DeleteFile, DocumentChangeOperation,
    DocumentChanges, OneOf, OptionalVersionedTextDocumentIdentifier, Range, RenameFile, ResourceOp,
    ResourceOperationKind, TextDocumentEdit, TextEdit, Uri, WorkspaceEdit,
};

/// One file that a run changed, as found in the staging mirror, with workspace paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    Modified { path: PathBuf, before: String, after: String },
    Created { path: PathBuf, content: String },
    Deleted { path: PathBuf, before: String },
    Renamed { from: PathBuf, to: PathBuf, before: String, after: String },
}

impl FileChange {
    /// The workspace paths this change touches.
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            Self::Modified { path, .. }
            | Self::Created { path, .. }
            | Self::Deleted { path, .. } => {
                vec![path]
            }
            Self::Renamed { from, to, .. } => vec![from, to],
        }
    }
}

/// Edits refined token by token only below this many tokens per changed hunk: beyond it the
/// token diff costs more than a slightly larger edit is worth.
const REFINE_TOKEN_LIMIT: usize = 20_000;

/// Why an edit could not be built or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error(
        "the editor cannot create, rename or delete files through LSP (client capability \
         workspace.workspaceEdit.resourceOperations), so these changes were not applied: {}",
        join_paths(.paths)
    )]
    ResourceOpsUnsupported { paths: Vec<PathBuf> },
    #[error("invalid edit range {}: its end is before its start", show_range(.range))]
    InvalidRange { range: Range },
    #[error("edits overlap: {} and {}", show_range(.first), show_range(.second))]
    OverlappingEdits { first: Range, second: Range },
    #[error("{uri} does not name a local file: {reason}")]
    NotAFileUri { uri: String, reason: &'static str },
    #[error("cannot turn {} into a file URI: {reason}", .path.display())]
    InvalidPath { path: PathBuf, reason: &'static str },
}

fn join_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

fn show_range(range: &Range) -> String {
    format!(
        "{}:{}–{}:{}",
        range.start.line, range.start.character, range.end.line, range.end.character
    )
}

/// The user's and the run's changes touch the same lines of the text the run started from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the document was edited during the run where the run also changed it ({}); the run's \
     result was not merged",
    show_line_spans(.lines)
)]
pub struct MergeConflict {
    /// Zero-based, end-exclusive line ranges of the base text; an empty range means both sides
    /// inserted different lines at that line.
    pub lines: Vec<std::ops::Range<usize>>,
}

fn show_line_spans(spans: &[std::ops::Range<usize>]) -> String {
    let shown: Vec<String> = spans
        .iter()
        .map(|span| match span.len() {
            0 => format!("insertions at line {}", span.start + 1),
            1 => format!("line {}", span.start + 1),
            _ => format!("lines {}–{}", span.start + 1, span.end),
        })
        .collect();
    shown.join(", ")
}

/// Splits one changed hunk into words, runs of horizontal space, line breaks (`\r\n` whole) and
/// single other characters, so that a diff over them changes whole words.
fn tokenize(text: &str) -> Vec<&str> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let is_space = |c: char| c.is_whitespace() && c != '\n' && c != '\r';
    let mut tokens = Vec::new();
    let mut rest = text;
    while let Some(first) = rest.chars().next() {
        let run_of = |keep: &dyn Fn(char) -> bool| rest.find(|c| !keep(c)).unwrap_or(rest.len());
        let len = if is_word(first) {
            run_of(&is_word)
        } else if is_space(first) {
            run_of(&is_space)
        } else if rest.starts_with("\r\n") {
            2
        } else {
            first.len_utf8()
        };
        let (token, tail) = rest.split_at(len);
        tokens.push(token);
        rest = tail;
    }
    tokens
}

/// Byte offset of every token boundary: `offsets[i]` is where token `i` starts, the last entry
/// is the total length.
fn boundaries(tokens: &[&str]) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(tokens.len() + 1);
    let mut at = 0;
    offsets.push(0);
    for token in tokens {
        at += token.len();
        offsets.push(at);
    }
    offsets
}

/// The changed spans (old index range, new index range) of a diff, touching changes joined.
fn changed_spans<T: Eq + std::hash::Hash>(
    old: &[T],
    new: &[T],
) -> Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let mut spans: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> = Vec::new();
    for op in capture_diff_slices(Algorithm::Myers, old, new) {
        if matches!(op, DiffOp::Equal { .. }) {
            continue;
        }
        let (old_span, new_span) = (op.old_range(), op.new_range());
        match spans.last_mut() {
            Some((last_old, last_new))
                if last_old.end == old_span.start && last_new.end == new_span.start =>
            {
                last_old.end = old_span.end;
                last_new.end = new_span.end;
            }
            _ => spans.push((old_span, new_span)),
        }
    }
    spans
}

/// `before[old]` is to become `after[new]` (byte ranges).
#[derive(Debug)]
struct Replacement {
    old: std::ops::Range<usize>,
    new: std::ops::Range<usize>,
}

/// Narrows a replacement to the characters that differ, without ever splitting a `\r\n` of
/// `before` (a position between `\r` and `\n` does not exist in LSP).
fn narrow(before: &str, after: &str, replacement: Replacement) -> Option<Replacement> {
    let Replacement { old, new } = replacement;
    let (old_text, new_text) = (&before[old.clone()], &after[new.clone()]);
    let mut prefix: usize = old_text
        .chars()
        .zip(new_text.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    let room = old_text.len().min(new_text.len()) - prefix;
    let mut suffix = 0;
    for (a, b) in old_text.chars().rev().zip(new_text.chars().rev()) {
        if a != b || suffix + a.len_utf8() > room {
            break;
        }
        suffix += a.len_utf8();
    }
    let inside_crlf = |at: usize| before[..at].ends_with('\r') && before[at..].starts_with('\n');
    if prefix > 0 && inside_crlf(old.start + prefix) {
        prefix -= 1;
    }
    if suffix > 0 && inside_crlf(old.end - suffix) {
        suffix -= 1;
    }
    let narrowed = Replacement {
        old: old.start + prefix..old.end - suffix,
        new: new.start + prefix..new.end - suffix,
    };
    (!narrowed.old.is_empty() || !narrowed.new.is_empty()).then_some(narrowed)
}

/// The word-level replacements inside one changed line hunk.
fn refine(before: &str, after: &str, hunk: Replacement, out: &mut Vec<Replacement>) {
    let old_tokens = tokenize(&before[hunk.old.clone()]);
    let new_tokens = tokenize(&after[hunk.new.clone()]);
    if old_tokens.len() + new_tokens.len() > REFINE_TOKEN_LIMIT {
        out.extend(narrow(before, after, hunk));
        return;
    }
    let old_at = boundaries(&old_tokens);
    let new_at = boundaries(&new_tokens);
    for (old_span, new_span) in changed_spans(&old_tokens, &new_tokens) {
        let replacement = Replacement {
            old: hunk.old.start + old_at[old_span.start]..hunk.old.start + old_at[old_span.end],
            new: hunk.new.start + new_at[new_span.start]..hunk.new.start + new_at[new_span.end],
        };
        out.extend(narrow(before, after, replacement));
    }
}

/// Minimal `TextEdit`s turning `before` into `after`: a line diff first, then a word diff inside
/// each changed hunk, each edit narrowed to the characters that differ. Positions are in `enc`
/// against `before`; line breaks are copied exactly (CRLF stays CRLF).
pub fn text_edits(before: &str, after: &str, enc: PositionEncoding) -> Vec<TextEdit> {
    if before == after {
        return Vec::new();
    }
    let old_lines: Vec<&str> = lines_with_breaks(before).collect();
    let new_lines: Vec<&str> = lines_with_breaks(after).collect();
    let old_at = boundaries(&old_lines);
    let new_at = boundaries(&new_lines);
    let mut replacements = Vec::new();
    for (old_span, new_span) in changed_spans(&old_lines, &new_lines) {
        let hunk = Replacement {
            old: old_at[old_span.start]..old_at[old_span.end],
            new: new_at[new_span.start]..new_at[new_span.end],
        };
        refine(before, after, hunk, &mut replacements);
    }
    let rope = Rope::from_str(before);
    let lines = LineIndex::new(&rope);
    let position = |byte: usize| lines.position(&rope, rope.byte_to_char(byte), enc);
    replacements
        .into_iter()
        .map(|r| TextEdit {
            range: Range::new(position(r.old.start), position(r.old.end)),
            new_text: after[r.new].to_owned(),
        })
        .collect()
}

/// The changed blocks of lines turning `before` into `after`, one `TextEdit` each: its range
/// spans whole lines of `before` (empty for lines only inserted), its text the lines they become.
/// A review offers each on its own.
pub fn line_hunks(before: &str, after: &str, enc: PositionEncoding) -> Vec<TextEdit> {
    let old_lines: Vec<&str> = lines_with_breaks(before).collect();
    let new_lines: Vec<&str> = lines_with_breaks(after).collect();
    let old_at = boundaries(&old_lines);
    let new_at = boundaries(&new_lines);
    let rope = Rope::from_str(before);
    let lines = LineIndex::new(&rope);
    let position = |byte: usize| lines.position(&rope, rope.byte_to_char(byte), enc);
    changed_spans(&old_lines, &new_lines)
        .into_iter()
        .map(|(old, new)| TextEdit {
            range: Range::new(position(old_at[old.start]), position(old_at[old.end])),
            new_text: after[new_at[new.start]..new_at[new.end]].to_owned(),
        })
        .collect()
}

/// Applies `edits` (positions in `enc` against `text`, non-overlapping, in any order; inserts at
/// one position keep their order) and returns the new text.
pub fn apply_text_edits(
    text: &str,
    edits: &[TextEdit],
    enc: PositionEncoding,
) -> Result<String, EditError> {
    let rope = Rope::from_str(text);
    let lines = LineIndex::new(&rope);
    let mut spans = Vec::with_capacity(edits.len());
    for edit in edits {
        let chars = lines
            .char_range(&rope, edit.range, enc)
            .map_err(|_| EditError::InvalidRange { range: edit.range })?;
        let bytes = rope.char_to_byte(chars.start)..rope.char_to_byte(chars.end);
        spans.push((bytes, edit));
    }
    // Stable: inserts at the same position stay in the order given.
    spans.sort_by_key(|(bytes, _)| (bytes.start, bytes.end));
    let mut result = String::with_capacity(text.len());
    let mut cursor = 0;
    let mut previous: Option<&TextEdit> = None;
    for (bytes, edit) in spans {
        if bytes.start < cursor {
            return Err(EditError::OverlappingEdits {
                first: previous.map_or(edit.range, |p| p.range),
                second: edit.range,
            });
        }
        result.push_str(&text[cursor..bytes.start]);
        result.push_str(&edit.new_text);
        cursor = bytes.end;
        previous = Some(edit);
    }
    result.push_str(&text[cursor..]);
    Ok(result)
}

/// Which side of a three-way merge a hunk comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Theirs,
}

/// Lines `base` of the base text became lines `side` of one side.
#[derive(Debug)]
struct Hunk {
    from: Side,
    base: std::ops::Range<usize>,
    side: std::ops::Range<usize>,
}

/// Whether two base line ranges touch the same lines. An insertion (empty range) overlaps a
/// range it falls strictly inside, or another insertion at the same line; edits that are merely
/// adjacent do not overlap, their order in the result is unambiguous.
fn overlaps(a: &std::ops::Range<usize>, b: &std::ops::Range<usize>) -> bool {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => a.start == b.start,
        (true, false) => b.start < a.start && a.start < b.end,
        (false, true) => a.start < b.start && b.start < a.end,
        (false, false) => a.start < b.end && b.start < a.end,
    }
}

/// The text of base lines `span` after applying one side's `hunks` (all inside `span`).
fn side_text<'a>(
    base: &[&str],
    side: &[&str],
    hunks: impl Iterator<Item = &'a Hunk>,
    span: std::ops::Range<usize>,
) -> String {
    let mut text = String::new();
    let mut cursor = span.start;
    for hunk in hunks {
        text.extend(base[cursor..hunk.base.start].iter().copied());
        text.extend(side[hunk.side.clone()].iter().copied());
        cursor = hunk.base.end;
    }
    text.extend(base[cursor..span.end].iter().copied());
    text
}

/// Three-way line merge of the run's result (`ours`) with what the user typed meanwhile
/// (`theirs`), both descended from `base`. Changes to disjoint lines combine; the same change on
/// both sides is taken once; anything else is a [`MergeConflict`].
pub fn merge3(base: &str, ours: &str, theirs: &str) -> Result<String, MergeConflict> {
    if ours == theirs || base == theirs {
        return Ok(ours.to_owned());
    }
    if base == ours {
        return Ok(theirs.to_owned());
    }
    let base_lines: Vec<&str> = lines_with_breaks(base).collect();
    let ours_lines: Vec<&str> = lines_with_breaks(ours).collect();
    let theirs_lines: Vec<&str> = lines_with_breaks(theirs).collect();
    let side_hunks = |from: Side, lines: &[&str]| -> Vec<Hunk> {
        changed_spans(&base_lines, lines)
            .into_iter()
            .map(|(base, side)| Hunk { from, base, side })
            .collect()
    };
    let mut hunks = side_hunks(Side::Ours, &ours_lines);
    hunks.extend(side_hunks(Side::Theirs, &theirs_lines));
    // Insertions sort before a change starting at the same line, matching their place in the text.
    hunks.sort_by_key(|hunk| (hunk.base.start, hunk.base.end));

    let mut merged = String::with_capacity(ours.len().max(theirs.len()));
    let mut conflicts = Vec::new();
    let mut cursor = 0;
    let mut first = 0;
    while first < hunks.len() {
        // Grow a cluster of hunks that overlap one another (hunks are sorted by start).
        let mut span = hunks[first].base.clone();
        let mut end = first + 1;
        while end < hunks.len() && overlaps(&span, &hunks[end].base) {
            span = span.start.min(hunks[end].base.start)..span.end.max(hunks[end].base.end);
            end += 1;
        }
        let cluster = &hunks[first..end];
        merged.extend(base_lines[cursor..span.start].iter().copied());
        let text_of = |from: Side, lines: &[&str]| {
            let own = cluster.iter().filter(|hunk| hunk.from == from);
            side_text(&base_lines, lines, own, span.clone())
        };
        let changed_by = |from: Side| cluster.iter().any(|hunk| hunk.from == from);
        let ours_text = text_of(Side::Ours, &ours_lines);
        let theirs_text = text_of(Side::Theirs, &theirs_lines);
        if ours_text == theirs_text || !changed_by(Side::Theirs) {
            merged.push_str(&ours_text);
        } else if !changed_by(Side::Ours) {
            merged.push_str(&theirs_text);
        } else {
            conflicts.push(span.clone());
        }
        cursor = span.end;
        first = end;
    }
    merged.extend(base_lines[cursor..].iter().copied());
    if conflicts.is_empty() { Ok(merged) } else { Err(MergeConflict { lines: conflicts }) }
}

/// What the client accepts in a `WorkspaceEdit` (`workspace.workspaceEdit` capabilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EditCapabilities {
    /// Versioned `documentChanges` instead of the plain `changes` map.
    pub document_changes: bool,
    pub create: bool,
    pub rename: bool,
    pub delete: bool,
}

impl EditCapabilities {
    pub fn from_client(caps: &ClientCapabilities) -> Self {
        let Some(edit) =
            caps.workspace.as_ref().and_then(|workspace| workspace.workspace_edit.as_ref())
        else {
            return Self::default();
        };
        let operations = edit.resource_operations.as_deref().unwrap_or_default();
        Self {
            document_changes: edit.document_changes == Some(true),
            create: operations.contains(&ResourceOperationKind::Create),
            rename: operations.contains(&ResourceOperationKind::Rename),
            delete: operations.contains(&ResourceOperationKind::Delete),
        }
    }

    /// Whether a `WorkspaceEdit` for this client can express `change`.
    fn supports(&self, change: &FileChange) -> bool {
        let resource_op = match change {
            FileChange::Modified { .. } => return true,
            FileChange::Created { .. } => self.create,
            FileChange::Deleted { .. } => self.delete,
            FileChange::Renamed { .. } => self.rename,
        };
        self.document_changes && resource_op
    }
}

/// One `WorkspaceEdit` for all files a run changed. Open documents (`open_version` gives their
/// version) get edits pinned to that version; closed files get version `null`. Without
/// `documentChanges` support only the `changes` map is used, and files created, renamed or
/// deleted are refused with [`EditError::ResourceOpsUnsupported`], as they are when the client
/// lacks the matching resource operation.
pub fn build_workspace_edit(
    changes: &[FileChange],
    caps: &EditCapabilities,
    enc: PositionEncoding,
    open_version: &dyn Fn(&Path) -> Option<i32>,
) -> Result<WorkspaceEdit, EditError> {
    let unsupported: Vec<PathBuf> = changes
        .iter()
        .filter(|change| !caps.supports(change))
        .flat_map(FileChange::paths)
        .map(Path::to_path_buf)
        .collect();
    if !unsupported.is_empty() {
        return Err(EditError::ResourceOpsUnsupported { paths: unsupported });
    }

    if !caps.document_changes {
        let mut map = HashMap::new();
        for change in changes {
            if let FileChange::Modified { path, before, after } = change {
                let edits = text_edits(before, after, enc);
                if !edits.is_empty() {
                    map.insert(path_to_uri(path)?, edits);
                }
            }
        }
        return Ok(WorkspaceEdit { changes: Some(map), ..WorkspaceEdit::default() });
    }

    let document_edit = |uri: Uri, version: Option<i32>, edits: Vec<TextEdit>| TextDocumentEdit {
        text_document: OptionalVersionedTextDocumentIdentifier { uri, version },
        edits: edits.into_iter().map(OneOf::Left).collect(),
    };
    let mut operations = Vec::new();
    for change in changes {
        match change {
            FileChange::Modified { path, before, after } => {
                let edits = text_edits(before, after, enc);
                if !edits.is_empty() {
                    let edit = document_edit(path_to_uri(path)?, open_version(path), edits);
                    operations.push(DocumentChangeOperation::Edit(edit));
                }
            }
            FileChange::Created { path, content } => {
                let uri = path_to_uri(path)?;
                operations.push(DocumentChangeOperation::Op(ResourceOp::Create(CreateFile {
                    uri: uri.clone(),
                    options: Some(CreateFileOptions {
                        overwrite: None,
                        ignore_if_exists: Some(false),
                    }),
                    annotation_id: None,
                })));
                if !content.is_empty() {
                    let insert = TextEdit { range: Range::default(), new_text: content.clone() };
                    let edit = document_edit(uri, None, vec![insert]);
                    operations.push(DocumentChangeOperation::Edit(edit));
                }
            }
            FileChange::Deleted { path, .. } => {
                operations.push(DocumentChangeOperation::Op(ResourceOp::Delete(DeleteFile {
                    uri: path_to_uri(path)?,
                    options: None,
                    annotation_id: None,
                })));
            }
            FileChange::Renamed { from, to, before, after } => {
                let new_uri = path_to_uri(to)?;
                operations.push(DocumentChangeOperation::Op(ResourceOp::Rename(RenameFile {
                    old_uri: path_to_uri(from)?,
                    new_uri: new_uri.clone(),
                    options: None,
                    annotation_id: None,
                })));
                let edits = text_edits(before, after, enc);
                if !edits.is_empty() {
                    let edit = document_edit(new_uri, None, edits);
                    operations.push(DocumentChangeOperation::Edit(edit));
                }
            }
        }
    }
    Ok(WorkspaceEdit {
        document_changes: Some(DocumentChanges::Operations(operations)),
        ..WorkspaceEdit::default()
    })
}

/// Characters left as they are in a file URI path: RFC 3986 unreserved characters and `/`.
const PATH_ENCODE_SET: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

/// The `file://` URI of an absolute path (percent-encoding spaces, `#`, `%`, non-ASCII, …).
/// Windows paths become `file:///C:/…`, and UNC shares `file://server/share/…`.
pub fn path_to_uri(path: &Path) -> Result<Uri, EditError> {
    let invalid = |reason| EditError::InvalidPath { path: path.to_path_buf(), reason };
    if !path.is_absolute() {
        return Err(invalid("the path is relative"));
    }
    let (host, bytes) = uri_parts(path).ok_or_else(|| invalid("the path is not valid Unicode"))?;
    let encoded = percent_encode(&bytes, PATH_ENCODE_SET).to_string();
    Uri::from_str(&format!("file://{host}{encoded}"))
        .map_err(|_| invalid("it does not form a valid URI"))
}

/// The path of a `file:` URI (`file:///…` or `file://localhost/…`; on Windows also
/// `file:///c%3A/…` and `file://server/share/…`), percent-decoded.
pub fn uri_to_path(uri: &Uri) -> Result<PathBuf, EditError> {
    let text = uri.as_str();
    let not_file = |reason| EditError::NotAFileUri { uri: text.to_owned(), reason };
    let (scheme, rest) = text.split_once(':').ok_or_else(|| not_file("it has no scheme"))?;
    if !scheme.eq_ignore_ascii_case("file") {
        return Err(not_file("only file: URIs name local files"));
    }
    let (host, path) = match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            let split = authority_and_path.find('/').unwrap_or(authority_and_path.len());
            authority_and_path.split_at(split)
        }
        None => ("", rest),
    };
    let host = if host.eq_ignore_ascii_case("localhost") { "" } else { host };
    if path.contains(['?', '#']) {
        return Err(not_file("it has a query or a fragment"));
    }
    if !path.starts_with('/') {
        return Err(not_file("its path is not absolute"));
    }
    let bytes: Vec<u8> = percent_decode_str(path).collect();
    if bytes.contains(&0) {
        return Err(not_file("its path contains a NUL byte"));
    }
    path_of_uri(host, bytes).map_err(not_file)
}

/// The host and (unencoded) path of `path`'s URI.
#[cfg(unix)]
fn uri_parts(path: &Path) -> Option<(String, Vec<u8>)> {
    use std::os::unix::ffi::OsStrExt;
    Some((String::new(), path.as_os_str().as_bytes().to_vec()))
}

#[cfg(not(unix))]
fn uri_parts(path: &Path) -> Option<(String, Vec<u8>)> {
    let (host, path) = crate::base::path_style::PathStyle::windows_uri_parts(path.to_str()?)?;
    Some((host, path.into_bytes()))
}

/// The local path of a URI's host and decoded path, or why there is none.
#[cfg(unix)]
fn path_of_uri(host: &str, bytes: Vec<u8>) -> Result<PathBuf, &'static str> {
    use std::os::unix::ffi::OsStringExt;
    if !host.is_empty() {
        return Err("it names a remote host");
    }
    Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

#[cfg(not(unix))]
fn path_of_uri(host: &str, bytes: Vec<u8>) -> Result<PathBuf, &'static str> {
    let text = String::from_utf8(bytes).map_err(|_| "its path is not valid Unicode")?;
    crate::base::path_style::PathStyle::windows_path_of_uri(host, &text)
        .map(PathBuf::from)
        .ok_or("its path is not absolute")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::documents::test_rng::{self, Rng};
    use crate::protocol::lsp::Position;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    const ALL: [PositionEncoding; 3] =
        [PositionEncoding::Utf8, PositionEncoding::Utf16, PositionEncoding::Utf32];

    fn edit(start: (u32, u32), end: (u32, u32), new_text: &str) -> TextEdit {
        TextEdit {
            range: Range::new(Position::new(start.0, start.1), Position::new(end.0, end.1)),
            new_text: new_text.to_owned(),
        }
    }

    fn assert_round_trip(before: &str, after: &str) {
        for enc in ALL {
            let edits = text_edits(before, after, enc);
            let applied = apply_text_edits(before, &edits, enc)
                .unwrap_or_else(|e| panic!("{before:?} → {after:?} {enc:?}: {e}"));
            assert_eq!(applied, after, "{before:?} → {after:?} {enc:?}: {edits:?}");
        }
    }

    /// `text` with a few random pieces replaced, inserted or removed, like an edit would.
    fn mutate(rng: &mut Rng, text: &str) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        for _ in 0..=rng.below(4) {
            let at = rng.below(chars.len() + 1);
            let remove = rng.below(4).min(chars.len() - at);
            let insert: Vec<char> = test_rng::text(rng, 3).chars().collect();
            chars.splice(at..at + remove, insert);
        }
        chars.into_iter().collect()
    }

    #[test]
    fn text_edits_turn_before_into_after_for_random_texts() {
        let mut rng = Rng::new(42);
        for _ in 0..300 {
            let before = test_rng::text(&mut rng, 40);
            let unrelated = test_rng::text(&mut rng, 40);
            let mutated = mutate(&mut rng, &before);
            assert_round_trip(&before, &unrelated);
            assert_round_trip(&before, &mutated);
        }
        for (before, after) in [
            ("", ""),
            ("", "x\r\n"),
            ("x\r\n", ""),
            ("a\r\nb", "a\rb"),
            ("a\rb", "a\r\nb"),
            ("a\r\nb", "a\nb"),
            ("a\nb", "a\r\nb"),
            ("😀😀", "😀🙂😀"),
            ("e\u{301}", "e\u{300}"),
            ("中文\r\n", "中国文\r\n"),
        ] {
            assert_round_trip(before, after);
        }
    }

    #[test]
    fn line_hunks_are_whole_blocks_of_lines_that_apply_one_by_one() {
        let before = "a\nb\nc\nd\ne\n";
        let after = "a\nB\nc\nd\nx\ny\ne";
        let hunks = line_hunks(before, after, PositionEncoding::Utf16);
        assert_eq!(
            hunks,
            [edit((1, 0), (2, 0), "B\n"), edit((4, 0), (5, 0), "x\ny\ne")],
            "a changed line, then a block replacing the last line"
        );
        assert_eq!(apply_text_edits(before, &hunks, PositionEncoding::Utf16).unwrap(), after);
        assert_eq!(
            apply_text_edits(before, &hunks[..1], PositionEncoding::Utf16).unwrap(),
            "a\nB\nc\nd\ne\n",
            "one hunk alone"
        );
        assert_eq!(
            line_hunks("a\nc\n", "a\nb\nc\n", PositionEncoding::Utf8),
            [edit((1, 0), (1, 0), "b\n")],
            "lines only inserted: an empty range"
        );
        for (before, after) in [("", "x\r\n"), ("x\r\ny\r\n", "y\r\n"), ("😀\n", "🙂\n")] {
            for enc in ALL {
                let hunks = line_hunks(before, after, enc);
                assert_eq!(apply_text_edits(before, &hunks, enc).unwrap(), after, "{enc:?}");
            }
        }
    }

    #[test]
    fn identical_texts_need_no_edits() {
        assert_eq!(text_edits("same\r\n", "same\r\n", PositionEncoding::Utf16), vec![]);
    }

    #[test]
    fn a_one_word_change_is_one_small_edit() {
        let before = "fn main() {\n    let count = 1;\n}\n";
        let after = "fn main() {\n    let total = 1;\n}\n";
        assert_eq!(
            text_edits(before, after, PositionEncoding::Utf16),
            vec![edit((1, 8), (1, 13), "total")]
        );
        // Only the differing characters of a word are replaced.
        assert_eq!(
            text_edits("let foo_bar = 1;", "let foo_baz = 1;", PositionEncoding::Utf16),
            vec![edit((0, 10), (0, 11), "z")]
        );
    }

    #[test]
    fn edit_positions_follow_the_encoding() {
        let before = "// 😀 中\nlet x = count;\nlet y = 😀count;\n";
        let after = "// 😀 中\nlet x = total;\nlet y = 😀total;\n";
        let expected = [
            (PositionEncoding::Utf8, 12),
            (PositionEncoding::Utf16, 10),
            (PositionEncoding::Utf32, 9),
        ];
        for (enc, column) in expected {
            assert_eq!(
                text_edits(before, after, enc),
                vec![edit((1, 8), (1, 13), "total"), edit((2, column), (2, column + 5), "total"),],
                "{enc:?}"
            );
        }
    }

    #[test]
    fn insertion_at_end_without_trailing_newline() {
        assert_eq!(
            text_edits("a\nb", "a\nb\nc", PositionEncoding::Utf16),
            vec![edit((1, 1), (1, 1), "\nc")]
        );
        assert_eq!(
            text_edits("", "first", PositionEncoding::Utf16),
            vec![edit((0, 0), (0, 0), "first")]
        );
    }

    #[test]
    fn crlf_documents_stay_crlf() {
        let before = "one\r\ntwo\r\nthree\r\n";
        let after = "one\r\n2\r\nthree\r\nfour\r\n";
        let edits = text_edits(before, after, PositionEncoding::Utf16);
        assert_eq!(edits, vec![edit((1, 0), (1, 3), "2"), edit((3, 0), (3, 0), "four\r\n")]);
        // Deleting a whole CRLF line removes its `\r\n` as a unit.
        assert_eq!(
            text_edits("a\r\nb\r\nc", "a\r\nc", PositionEncoding::Utf16),
            vec![edit((1, 0), (2, 0), "")]
        );
        // Turning CRLF into LF never puts an edit between `\r` and `\n`.
        assert_eq!(
            text_edits("a\r\nb", "a\nb", PositionEncoding::Utf16),
            vec![edit((0, 1), (1, 0), "\n")]
        );
    }

    #[test]
    fn applying_edits_in_any_order() {
        let text = "alpha beta\r\ngamma 😀 delta";
        let edits = [
            edit((1, 9), (1, 14), "DELTA"),
            edit((0, 0), (0, 5), "ALPHA"),
            edit((1, 6), (1, 8), "🙂"),
        ];
        assert_eq!(
            apply_text_edits(text, &edits, PositionEncoding::Utf16).unwrap(),
            "ALPHA beta\r\ngamma 🙂 DELTA"
        );
        // Inserts at one position keep their order; an insert precedes a replacement there.
        let inserts =
            [edit((0, 0), (0, 1), "X"), edit((0, 0), (0, 0), "1"), edit((0, 0), (0, 0), "2")];
        assert_eq!(apply_text_edits("ab", &inserts, PositionEncoding::Utf16).unwrap(), "12Xb");
    }

    #[test]
    fn overlapping_or_reversed_edits_are_errors() {
        let overlapping = [edit((0, 0), (0, 3), "x"), edit((0, 2), (0, 4), "y")];
        let error = apply_text_edits("abcdef", &overlapping, PositionEncoding::Utf16).unwrap_err();
        assert_eq!(
            error,
            EditError::OverlappingEdits {
                first: overlapping[0].range,
                second: overlapping[1].range,
            }
        );
        assert_eq!(error.to_string(), "edits overlap: 0:0–0:3 and 0:2–0:4");

        let reversed = [edit((1, 0), (0, 2), "x")];
        let error = apply_text_edits("ab\ncd", &reversed, PositionEncoding::Utf16).unwrap_err();
        assert_eq!(error, EditError::InvalidRange { range: reversed[0].range });
        assert_eq!(error.to_string(), "invalid edit range 1:0–0:2: its end is before its start");
    }

    fn line_spans(spans: &[(usize, usize)]) -> Vec<std::ops::Range<usize>> {
        spans.iter().map(|&(start, end)| start..end).collect()
    }

    #[test]
    fn merge_combines_changes_to_different_lines() {
        let base = "a\nb\nc\nd\ne\n";
        let ours = "A\nb\nc\nd\ne\n";
        let theirs = "a\nb\nc\nd\nE\n";
        assert_eq!(merge3(base, ours, theirs).unwrap(), "A\nb\nc\nd\nE\n");
        // Edits on adjacent lines do not overlap.
        assert_eq!(merge3("a\nb\nc\n", "a\nB\nc\n", "a\nb\nC\n").unwrap(), "a\nB\nC\n");
        // Only one side changed.
        assert_eq!(merge3(base, ours, base).unwrap(), ours);
        assert_eq!(merge3(base, base, theirs).unwrap(), theirs);
    }

    #[test]
    fn merge_of_insertions() {
        let base = "a\nb\nc\n";
        // Insertions at adjacent, different lines.
        assert_eq!(
            merge3(base, "a\nours\nb\nc\n", "a\nb\ntheirs\nc\n").unwrap(),
            "a\nours\nb\ntheirs\nc\n"
        );
        // An insertion right before a line the other side changed.
        assert_eq!(
            merge3(base, "a\nB\nc\n", "a\ninserted\nb\nc\n").unwrap(),
            "a\ninserted\nB\nc\n"
        );
        // The same insertion on both sides is taken once.
        assert_eq!(
            merge3(base, "a\nsame\nb\nc\n", "a\nsame\nb\nc\nend\n").unwrap(),
            "a\nsame\nb\nc\nend\n"
        );
        // Different insertions at the same line conflict: their order is unknown.
        assert_eq!(
            merge3(base, "a\nours\nb\nc\n", "a\ntheirs\nb\nc\n").unwrap_err(),
            MergeConflict { lines: line_spans(&[(1, 1)]) }
        );
    }

    #[test]
    fn merge_of_identical_changes_is_not_a_conflict() {
        let base = "x\ny\nz\n";
        let changed = "x\nY\nz\n";
        assert_eq!(merge3(base, changed, changed).unwrap(), changed);
        assert_eq!(
            merge3(base, "x\nY\nz\nours\n", "theirs\nx\nY\nz\n").unwrap(),
            "theirs\nx\nY\nz\nours\n"
        );
    }

    #[test]
    fn merge_of_overlapping_changes_is_a_conflict() {
        let base = "1\n2\n3\n4\n5\n6\n";
        let ours = "1\nTWO\nTHREE\n4\n5\nsix\n";
        let theirs = "1\n2\nthree\n4\n5\nSIX\n";
        let conflict = merge3(base, ours, theirs).unwrap_err();
        assert_eq!(conflict, MergeConflict { lines: line_spans(&[(1, 3), (5, 6)]) });
        assert_eq!(
            conflict.to_string(),
            "the document was edited during the run where the run also changed it (lines 2–3, \
             line 6); the run's result was not merged"
        );
        let conflict = merge3("a\n", "b\n", "c\n").unwrap_err();
        assert_eq!(conflict.lines, line_spans(&[(0, 1)]));
    }

    /// Replaces, inserts or deletes a few of `lines` with new lines named after `side`.
    fn change_lines(rng: &mut Rng, lines: &[String], side: &str) -> Vec<String> {
        let mut changed = lines.to_vec();
        for n in 0..=rng.below(3) {
            let at = rng.below(changed.len() + 1);
            let remove = rng.below(3).min(changed.len() - at);
            let added = (0..rng.below(3)).map(|k| format!("{side} {n}.{k}\r\n"));
            changed.splice(at..at + remove, added);
        }
        changed
    }

    #[test]
    fn merge_of_changes_on_either_side_of_an_untouched_line() {
        let mut rng = Rng::new(9);
        for round in 0..200 {
            let base: Vec<String> =
                (0..rng.below(12) + 1).map(|i| format!("line {i}\r\n")).collect();
            let keep = rng.below(base.len());
            let ours_part = change_lines(&mut rng, &base[..keep], "ours");
            let theirs_part = change_lines(&mut rng, &base[keep + 1..], "theirs");
            let ours = [ours_part.concat(), base[keep..].concat()].concat();
            let theirs = [base[..=keep].concat(), theirs_part.concat()].concat();
            let expected = [ours_part.concat(), base[keep].clone(), theirs_part.concat()].concat();
            assert_eq!(merge3(&base.concat(), &ours, &theirs), Ok(expected), "round {round}");
        }
    }

    #[test]
    fn merge_keeps_line_breaks_exactly() {
        let base = "a\r\nb\r\nc";
        assert_eq!(merge3(base, "A\r\nb\r\nc", "a\r\nb\r\nc\r\nd").unwrap(), "A\r\nb\r\nc\r\nd");
        assert_eq!(merge3("a\rb\rc", "a\rB\rc", "a\rb\rC").unwrap(), "a\rB\rC");
    }

    #[test]
    fn capabilities_come_from_the_client() {
        let caps: ClientCapabilities = serde_json::from_value(json!({
            "workspace": {"workspaceEdit": {
                "documentChanges": true,
                "resourceOperations": ["create", "delete"]
            }}
        }))
        .unwrap();
        assert_eq!(
            EditCapabilities::from_client(&caps),
            EditCapabilities { document_changes: true, create: true, rename: false, delete: true }
        );
        assert_eq!(
            EditCapabilities::from_client(&ClientCapabilities::default()),
            EditCapabilities::default()
        );
    }

    const FULL: EditCapabilities =
        EditCapabilities { document_changes: true, create: true, rename: true, delete: true };

    fn workspace_edit_json(
        changes: &[FileChange],
        caps: &EditCapabilities,
    ) -> Result<serde_json::Value, EditError> {
        let open = |path: &Path| (path == Path::new("/ws/open.rs")).then_some(7);
        let edit = build_workspace_edit(changes, caps, PositionEncoding::Utf16, &open)?;
        Ok(serde_json::to_value(edit).unwrap())
    }

    fn modified(path: &str) -> FileChange {
        FileChange::Modified {
            path: path.into(),
            before: "let a = 1;\n".into(),
            after: "let b = 1;\n".into(),
        }
    }

    #[test]
    fn workspace_edit_for_modified_open_and_closed_files() {
        let json =
            workspace_edit_json(&[modified("/ws/open.rs"), modified("/ws/closed.rs")], &FULL)
                .unwrap();
        let rename_a = json!([{
            "range": {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 5}},
            "newText": "b"
        }]);
        assert_eq!(
            json,
            json!({"documentChanges": [
                {"textDocument": {"uri": "file:///ws/open.rs", "version": 7}, "edits": rename_a},
                {"textDocument": {"uri": "file:///ws/closed.rs", "version": null}, "edits": rename_a}
            ]})
        );
    }

    #[test]
    fn workspace_edit_for_created_deleted_and_renamed_files() {
        let changes = [
            FileChange::Created {
                path: "/ws/new dir/n#1.rs".into(),
                content: "fn n() {}\n".into(),
            },
            FileChange::Created { path: "/ws/empty.txt".into(), content: String::new() },
            FileChange::Deleted { path: "/ws/old.rs".into(), before: "gone\n".into() },
            FileChange::Renamed {
                from: "/ws/a.rs".into(),
                to: "/ws/b.rs".into(),
                before: "mod a;\n".into(),
                after: "mod b;\n".into(),
            },
        ];
        let json = workspace_edit_json(&changes, &FULL).unwrap();
        let zero =
            json!({"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}});
        assert_eq!(
            json,
            json!({"documentChanges": [
                {"kind": "create", "uri": "file:///ws/new%20dir/n%231.rs",
                 "options": {"ignoreIfExists": false}},
                {"textDocument": {"uri": "file:///ws/new%20dir/n%231.rs", "version": null},
                 "edits": [{"range": zero, "newText": "fn n() {}\n"}]},
                {"kind": "create", "uri": "file:///ws/empty.txt", "options": {"ignoreIfExists": false}},
                {"kind": "delete", "uri": "file:///ws/old.rs"},
                {"kind": "rename", "oldUri": "file:///ws/a.rs", "newUri": "file:///ws/b.rs"},
                {"textDocument": {"uri": "file:///ws/b.rs", "version": null},
                 "edits": [{"range": {"start": {"line": 0, "character": 4},
                                      "end": {"line": 0, "character": 5}},
                            "newText": "b"}]}
            ]})
        );
    }

    #[test]
    fn workspace_edit_without_document_changes_uses_the_changes_map() {
        let caps = EditCapabilities::default();
        let unchanged = FileChange::Modified {
            path: "/ws/same.rs".into(),
            before: "x".into(),
            after: "x".into(),
        };
        let json = workspace_edit_json(&[modified("/ws/open.rs"), unchanged], &caps).unwrap();
        assert_eq!(
            json,
            json!({"changes": {"file:///ws/open.rs": [{
                "range": {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 5}},
                "newText": "b"
            }]}})
        );

        let changes = [
            modified("/ws/open.rs"),
            FileChange::Created { path: "/ws/new.rs".into(), content: "x".into() },
            FileChange::Renamed {
                from: "/ws/a.rs".into(),
                to: "/ws/b.rs".into(),
                before: String::new(),
                after: String::new(),
            },
        ];
        let error = workspace_edit_json(&changes, &caps).unwrap_err();
        assert_eq!(
            error,
            EditError::ResourceOpsUnsupported {
                paths: vec!["/ws/new.rs".into(), "/ws/a.rs".into(), "/ws/b.rs".into()]
            }
        );
        assert_eq!(
            error.to_string(),
            "the editor cannot create, rename or delete files through LSP (client capability \
             workspace.workspaceEdit.resourceOperations), so these changes were not applied: \
             /ws/new.rs, /ws/a.rs, /ws/b.rs"
        );
    }

    #[test]
    fn resource_operations_the_client_lacks_are_refused() {
        let no_delete = EditCapabilities { delete: false, ..FULL };
        let changes = [
            FileChange::Created { path: "/ws/new.rs".into(), content: "x".into() },
            FileChange::Deleted { path: "/ws/old.rs".into(), before: "y".into() },
        ];
        assert_eq!(
            workspace_edit_json(&changes, &no_delete).unwrap_err(),
            EditError::ResourceOpsUnsupported { paths: vec!["/ws/old.rs".into()] }
        );
    }

    #[test]
    fn paths_and_file_uris_convert_both_ways() {
        let cases = [
            ("/plain/file.rs", "file:///plain/file.rs"),
            ("/with space/a b.rs", "file:///with%20space/a%20b.rs"),
            ("/hash#/x#y.rs", "file:///hash%23/x%23y.rs"),
            ("/per%cent/50%.txt", "file:///per%25cent/50%25.txt"),
            ("/q?/a&b=c;d", "file:///q%3F/a%26b%3Dc%3Bd"),
            ("/ünï/中文/😀.rs", "file:///%C3%BCn%C3%AF/%E4%B8%AD%E6%96%87/%F0%9F%98%80.rs"),
            ("/keep-._~/x", "file:///keep-._~/x"),
        ];
        for (path, uri) in cases {
            let made = path_to_uri(Path::new(path)).unwrap();
            assert_eq!(made.as_str(), uri);
            assert_eq!(uri_to_path(&made).unwrap(), PathBuf::from(path));
        }
        let parse = |text: &str| Uri::from_str(text).unwrap();
        assert_eq!(
            uri_to_path(&parse("file://localhost/etc/hosts")).unwrap(),
            PathBuf::from("/etc/hosts")
        );
        assert_eq!(uri_to_path(&parse("FILE:///a%2fb")).unwrap(), PathBuf::from("/a/b"));
        assert_eq!(uri_to_path(&parse("file:/short/form")).unwrap(), PathBuf::from("/short/form"));
    }

    #[test]
    fn bad_paths_and_uris_are_errors() {
        let error = path_to_uri(Path::new("relative/x.rs")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot turn relative/x.rs into a file URI: the path is relative"
        );
        let cases = [
            ("untitled:Untitled-1", "only file: URIs name local files"),
            ("https://example.com/a.rs", "only file: URIs name local files"),
            ("file://server/share/a.rs", "it names a remote host"),
            ("file:///a.rs?x=1", "it has a query or a fragment"),
            ("file:///a.rs#L3", "it has a query or a fragment"),
            ("file:///a%00b", "its path contains a NUL byte"),
            ("file:relative.rs", "its path is not absolute"),
        ];
        for (text, reason) in cases {
            let uri = Uri::from_str(text).unwrap();
            assert_eq!(
                uri_to_path(&uri).unwrap_err(),
                EditError::NotAFileUri { uri: text.to_owned(), reason },
                "{text}"
            );
        }
    }

    #[test]
    fn file_change_lists_its_paths() {
        let renamed = FileChange::Renamed {
            from: "/a".into(),
            to: "/b".into(),
            before: String::new(),
            after: String::new(),
        };
        assert_eq!(renamed.paths(), vec![Path::new("/a"), Path::new("/b")]);
        assert_eq!(modified("/m").paths(), vec![Path::new("/m")]);
    }
}
