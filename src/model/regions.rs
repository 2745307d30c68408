//! The regions of documents that a conversation wrote, so `Claude: refine…` can be offered on
//! them and continue that conversation. Tracked by whole lines, which needs no position
//! encoding, and moved along as the document changes.
//!
//! An edit becomes real only when the editor applies it (for a command, through
//! `workspace/applyEdit`; for a request, whenever the plugin decides), and the editor tells us
//! through `didChange` or `didOpen` in any order relative to its answer. So regions start out
//! *expected*, with the text the document will have once the edit is in, and become active the
//! moment the document has exactly that text.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use similar::{DiffOp, TextDiff};

use crate::base::text::line_breaks;
use crate::protocol::lsp::{Position, TextDocumentContentChangeEvent};

/// Active regions kept per document (the oldest go first).
const MAX_ACTIVE: usize = 64;
/// Edits per document waiting to be applied.
const MAX_EXPECTED: usize = 8;

/// Lines `start_line..=end_line` were written by conversation `session_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducedRegion {
    pub session_id: String,
    /// What the conversation was asked (for the code action's title).
    pub label: String,
    pub start_line: u32,
    pub end_line: u32,
}

struct Expected {
    text: String,
    regions: Vec<ProducedRegion>,
}

#[derive(Default)]
struct Documents {
    active: HashMap<PathBuf, Vec<ProducedRegion>>,
    expected: HashMap<PathBuf, Vec<Expected>>,
}

#[derive(Default)]
pub struct Regions {
    documents: Mutex<Documents>,
}

impl std::fmt::Debug for Regions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Regions").finish_non_exhaustive()
    }
}

impl Regions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Regions an edit of `path` will produce once the document's text is `text`. `current` is
    /// the document's text now, when it is open (the editor may have applied the edit already).
    pub fn expect(
        &self,
        path: PathBuf,
        text: String,
        regions: Vec<ProducedRegion>,
        current: Option<&str>,
    ) {
        if regions.is_empty() {
            return;
        }
        let mut documents = self.documents.lock();
        if current == Some(text.as_str()) {
            activate(&mut documents, &path, regions);
            return;
        }
        let expected = documents.expected.entry(path).or_default();
        expected.push(Expected { text, regions });
        if expected.len() > MAX_EXPECTED {
            expected.remove(0);
        }
    }

    /// `didOpen`: an edit applied to a closed file arrives as its opening text.
    pub fn opened(&self, path: &Path, text: &str) {
        let mut documents = self.documents.lock();
        arrive(&mut documents, path, text);
    }

    /// `didChange` (after the store applied it): move the regions along; activate an expected
    /// edit whose text has arrived. `text` gives the document's new text (only asked for when
    /// an edit of this document is expected).
    pub fn changed(
        &self,
        path: &Path,
        changes: &[TextDocumentContentChangeEvent],
        text: impl FnOnce() -> Option<String>,
    ) {
        let mut documents = self.documents.lock();
        if let Some(regions) = documents.active.get_mut(path) {
            for change in changes {
                match change.range {
                    Some(range) => {
                        let breaks = line_breaks(&change.text);
                        for region in regions.iter_mut() {
                            shift(region, range.start, range.end, breaks);
                        }
                    }
                    // A whole new text: nothing can be followed through it.
                    None => regions.clear(),
                }
            }
            if regions.is_empty() {
                documents.active.remove(path);
            }
        }
        if documents.expected.contains_key(path)
            && let Some(text) = text()
        {
            arrive(&mut documents, path, &text);
        }
    }

    /// `didClose`: changes are no longer seen, so its regions cannot be followed.
    pub fn closed(&self, path: &Path) {
        self.documents.lock().active.remove(path);
    }

    /// The regions of `path` that touch `lines`, newest first.
    pub fn at(&self, path: &Path, lines: RangeInclusive<u32>) -> Vec<ProducedRegion> {
        let documents = self.documents.lock();
        let Some(regions) = documents.active.get(path) else { return Vec::new() };
        regions
            .iter()
            .rev()
            .filter(|region| region.start_line <= *lines.end() && *lines.start() <= region.end_line)
            .cloned()
            .collect()
    }
}

fn arrive(documents: &mut Documents, path: &Path, text: &str) {
    let Some(expected) = documents.expected.get_mut(path) else { return };
    let Some(index) = expected.iter().position(|edit| edit.text == text) else { return };
    let edit = expected.remove(index);
    if expected.is_empty() {
        documents.expected.remove(path);
    }
    activate(documents, path, edit.regions);
}

fn activate(documents: &mut Documents, path: &Path, regions: Vec<ProducedRegion>) {
    let active = documents.active.entry(path.to_path_buf()).or_default();
    active.extend(regions);
    if active.len() > MAX_ACTIVE {
        let excess = active.len() - MAX_ACTIVE;
        active.drain(..excess);
    }
}

/// Move `region` for a change replacing `start..end` with text holding `breaks` line breaks.
fn shift(region: &mut ProducedRegion, start: Position, end: Position, breaks: u32) {
    (region.start_line, region.end_line) =
        follow_change((region.start_line, region.end_line), start, end, breaks);
}

/// The lines `first..=last` after a change replacing `start..end` with text holding `breaks`
/// line breaks: moved when the change is above them; grown or shrunk when it is inside or across
/// them (they keep what is left plus what was typed); unchanged below.
pub fn follow_change(
    (first, last): (u32, u32),
    start: Position,
    end: Position,
    breaks: u32,
) -> (u32, u32) {
    let removed = end.line.saturating_sub(start.line);
    let delta = i64::from(breaks) - i64::from(removed);
    let moved = |line: u32| u32::try_from((i64::from(line) + delta).max(0)).unwrap_or(u32::MAX);
    if end <= Position::new(first, 0) {
        (moved(first), moved(last))
    } else if start.line <= last {
        let first = first.min(start.line);
        (first, moved(last).max(first))
    } else {
        (first, last)
    }
}

/// The line ranges of `after` (inclusive) that are new or changed relative to `before`.
pub fn produced_lines(before: &str, after: &str) -> Vec<(u32, u32)> {
    let diff = TextDiff::from_lines(before, after);
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for op in diff.ops() {
        let (start, len) = match *op {
            DiffOp::Insert { new_index, new_len, .. } => (new_index, new_len),
            DiffOp::Replace { new_index, new_len, .. } => (new_index, new_len),
            DiffOp::Equal { .. } | DiffOp::Delete { .. } => continue,
        };
        if len == 0 {
            continue;
        }
        let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(start + len - 1)) else {
            continue;
        };
        match ranges.last_mut() {
            Some(last) if last.1 + 1 >= start => last.1 = last.1.max(end),
            _ => ranges.push((start, end)),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::lsp::Range;
    use pretty_assertions::assert_eq;

    fn region(start_line: u32, end_line: u32) -> ProducedRegion {
        ProducedRegion { session_id: "s".into(), label: "l".into(), start_line, end_line }
    }

    fn change(sl: u32, sc: u32, el: u32, ec: u32, text: &str) -> TextDocumentContentChangeEvent {
        TextDocumentContentChangeEvent {
            range: Some(Range::new(Position::new(sl, sc), Position::new(el, ec))),
            range_length: None,
            text: text.to_owned(),
        }
    }

    fn lines_after(changes: &[TextDocumentContentChangeEvent]) -> Vec<(u32, u32)> {
        let regions = Regions::new();
        let path = Path::new("/w/a.rs");
        regions.expect(path.into(), "x".into(), vec![region(10, 12)], Some("x"));
        regions.changed(path, changes, || None);
        regions.at(path, 0..=u32::MAX).iter().map(|r| (r.start_line, r.end_line)).collect()
    }

    #[test]
    fn regions_move_with_edits_above_and_grow_or_shrink_with_edits_inside() {
        assert_eq!(lines_after(&[change(0, 0, 0, 0, "a\nb\n")]), [(12, 14)], "two lines above");
        assert_eq!(
            lines_after(&[change(10, 0, 10, 0, "// note\n")]),
            [(11, 13)],
            "a line right above"
        );
        assert_eq!(lines_after(&[change(2, 0, 5, 0, "")]), [(7, 9)], "lines deleted above");
        assert_eq!(lines_after(&[change(11, 3, 11, 3, "\n\n")]), [(10, 14)], "lines typed inside");
        assert_eq!(lines_after(&[change(11, 0, 12, 4, "z")]), [(10, 11)], "lines deleted inside");
        assert_eq!(lines_after(&[change(13, 0, 20, 0, "")]), [(10, 12)], "below is no concern");
        assert_eq!(lines_after(&[change(8, 0, 11, 0, "")]), [(8, 9)], "deleted across the start");
        assert_eq!(lines_after(&[change(0, 0, 0, 0, "\r\n\r")]), [(12, 14)], "CRLF and a lone CR");
        let full =
            TextDocumentContentChangeEvent { range: None, range_length: None, text: "new".into() };
        assert_eq!(lines_after(&[full]), []);
    }

    #[test]
    fn an_expected_edit_becomes_active_when_its_text_arrives() {
        let regions = Regions::new();
        let path = Path::new("/w/a.rs");
        regions.expect(
            path.into(),
            "fn sum() {}\n".into(),
            vec![region(0, 0)],
            Some("fn add() {}\n"),
        );
        assert!(regions.at(path, 0..=0).is_empty(), "not applied yet");
        regions.changed(path, &[change(0, 3, 0, 6, "sub")], || Some("fn sub() {}\n".into()));
        assert!(regions.at(path, 0..=0).is_empty(), "a different text");
        regions.changed(path, &[change(0, 3, 0, 6, "sum")], || Some("fn sum() {}\n".into()));
        assert_eq!(regions.at(path, 0..=0), [region(0, 0)]);
        assert!(regions.at(path, 1..=5).is_empty());
        regions.closed(path);
        assert!(regions.at(path, 0..=0).is_empty());

        let other = Path::new("/w/new.rs");
        regions.expect(other.into(), "hello\n".into(), vec![region(0, 0)], None);
        regions.opened(other, "hello\n");
        assert_eq!(regions.at(other, 0..=0).len(), 1, "an edit applied to a closed file");
    }

    #[test]
    fn produced_lines_are_the_new_and_changed_lines_of_the_result() {
        let before = "a\nb\nc\nd\n";
        assert_eq!(produced_lines(before, "a\nB\nc\nd\n"), [(1, 1)]);
        assert_eq!(produced_lines(before, "a\nb\nx\ny\nc\nd\n"), [(2, 3)]);
        assert_eq!(produced_lines(before, "a\nB\nC\nd\n"), [(1, 2)]);
        assert_eq!(produced_lines(before, "a\nd\n"), []);
        assert_eq!(produced_lines("", "x\ny\n"), [(0, 1)]);
    }
}
