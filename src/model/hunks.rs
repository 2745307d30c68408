//! Proposed changes waiting for the user's review (`delivery: "review"`): a command run's edit
//! split into hunks, each shown where it lands and applied or discarded on its own. A hunk
//! follows the user's edits elsewhere in its document (as findings do) and is withdrawn when an
//! edit touches it: its text is then no longer what the run changed.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;

use crate::model::documents::{PositionEncoding, exact_text};
use crate::model::edits::FileChange;
use crate::model::findings::{SOURCE, Splice};
use crate::protocol::lsp::{Diagnostic, DiagnosticSeverity, NumberOrString, Range, TextEdit, Uri};

/// The `code` of a proposed change's diagnostic.
const CODE: &str = "proposed-change";
/// Lines of proposed text a diagnostic's message quotes.
const QUOTED_LINES: usize = 30;

/// What a hunk would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proposal {
    /// Replace the hunk's range (whole lines of its document, reading `old_text`) with `new_text`.
    Text { old_text: String, new_text: String },
    /// Create, delete or rename a file: shown at the hunk's range of the document the run was
    /// started on.
    File(FileChange),
}

/// One proposed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    pub id: String,
    pub run_id: String,
    /// What the run was (`refactor`, …), for messages.
    pub label: String,
    /// Where it is shown (and, for a text hunk, what it replaces).
    pub range: Range,
    pub proposal: Proposal,
}

impl Hunk {
    pub fn new(run_id: &str, label: &str, range: Range, proposal: Proposal) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = format!("c{}", NEXT.fetch_add(1, Ordering::Relaxed));
        Self { id, run_id: run_id.to_owned(), label: label.to_owned(), range, proposal }
    }

    /// The edit applying a text hunk to `text`, when its lines still read what the run changed.
    pub fn edit_of(&self, text: &str, encoding: PositionEncoding) -> Option<TextEdit> {
        let Proposal::Text { old_text, new_text } = &self.proposal else { return None };
        let current = exact_text(text, self.range, encoding)?;
        (current == *old_text).then(|| TextEdit { range: self.range, new_text: new_text.clone() })
    }

    /// The lines it is shown on, 1-based, for messages and titles.
    pub fn lines(&self) -> String {
        let first = self.range.start.line + 1;
        let last = last_line(self.range) + 1;
        if last > first { format!("lines {first}–{last}") } else { format!("line {first}") }
    }
}

/// The last line a range covers: one ending at the start of a line leaves that line out.
pub fn last_line(range: Range) -> u32 {
    if range.end.character == 0 && range.end.line > range.start.line {
        range.end.line - 1
    } else {
        range.end.line
    }
}

#[derive(Debug, Clone)]
struct ShownIn {
    uri: Uri,
    hunks: Vec<Hunk>,
}

/// A hunk taken out of the store, with where it was shown.
#[derive(Debug, Clone)]
pub struct Taken {
    pub path: PathBuf,
    pub uri: Uri,
    pub hunk: Hunk,
}

/// The hunks waiting for review, by the path of the document they are shown in.
#[derive(Debug, Default)]
pub struct HunkStore {
    files: HashMap<PathBuf, ShownIn>,
}

impl HunkStore {
    pub fn add(&mut self, path: PathBuf, uri: Uri, hunks: Vec<Hunk>) {
        if hunks.is_empty() {
            return;
        }
        let shown = self.files.entry(path).or_insert_with(|| ShownIn { uri, hunks: Vec::new() });
        shown.hunks.extend(hunks);
        shown.hunks.sort_by_key(|hunk| (hunk.range.start, hunk.range.end));
    }

    /// The hunks shown in the document at `path`, top to bottom.
    pub fn in_file(&self, path: &Path) -> Vec<Hunk> {
        self.files.get(path).map(|shown| shown.hunks.clone()).unwrap_or_default()
    }

    pub fn touches(&self, path: &Path) -> bool {
        self.files.contains_key(path)
    }

    /// Takes out hunk `id` of run `run_id`, or (no id) every hunk of the run.
    pub fn take(&mut self, run_id: &str, id: Option<&str>) -> Vec<Taken> {
        let wanted = |hunk: &Hunk| hunk.run_id == run_id && id.is_none_or(|id| hunk.id == id);
        let mut taken = Vec::new();
        for (path, shown) in &mut self.files {
            let (out, kept) = shown.hunks.drain(..).partition(|hunk| wanted(hunk));
            shown.hunks = kept;
            taken.extend(out.into_iter().map(|hunk| Taken {
                path: path.clone(),
                uri: shown.uri.clone(),
                hunk,
            }));
        }
        self.files.retain(|_, shown| !shown.hunks.is_empty());
        taken.sort_by(|a, b| (&a.path, a.hunk.range.start).cmp(&(&b.path, b.hunk.range.start)));
        taken
    }

    /// Puts back hunks taken out (an edit the editor did not apply).
    pub fn restore(&mut self, taken: Vec<Taken>) {
        for Taken { path, uri, hunk } in taken {
            self.add(path, uri, vec![hunk]);
        }
    }

    /// Moves the hunks of `path` through `splices` (in order). Returns whether any moved and
    /// the hunks a splice touched, which are withdrawn.
    pub fn apply_splices(&mut self, path: &Path, splices: &[Splice]) -> (bool, Vec<Hunk>) {
        let Some(shown) = self.files.get_mut(path) else { return (false, Vec::new()) };
        let mut moved = false;
        let mut withdrawn = Vec::new();
        for mut hunk in std::mem::take(&mut shown.hunks) {
            match splices.iter().try_fold(hunk.range, |range, splice| splice.shift(range)) {
                Some(range) => {
                    moved |= range != hunk.range;
                    hunk.range = range;
                    shown.hunks.push(hunk);
                }
                None => withdrawn.push(hunk),
            }
        }
        if shown.hunks.is_empty() {
            self.files.remove(path);
        }
        (moved || !withdrawn.is_empty(), withdrawn)
    }

    /// Withdraws the text hunks of `path` whose lines no longer read what the run changed (a
    /// document opened with other text than the disk had).
    pub fn check_text(&mut self, path: &Path, text: &str, encoding: PositionEncoding) -> Vec<Hunk> {
        let Some(shown) = self.files.get_mut(path) else { return Vec::new() };
        let (kept, withdrawn): (Vec<Hunk>, Vec<Hunk>) =
            std::mem::take(&mut shown.hunks).into_iter().partition(|hunk| {
                matches!(hunk.proposal, Proposal::File(_)) || hunk.edit_of(text, encoding).is_some()
            });
        shown.hunks = kept;
        if shown.hunks.is_empty() {
            self.files.remove(path);
        }
        withdrawn
    }
}

/// A hunk as a diagnostic: Information, `source` claude, the proposed text in its message,
/// `data` naming the run and the hunk (what `claude.applyChange` / `claude.discardChange` take).
pub fn to_diagnostic(hunk: &Hunk) -> Diagnostic {
    Diagnostic {
        range: hunk.range,
        severity: Some(DiagnosticSeverity::INFORMATION),
        code: Some(NumberOrString::String(CODE.to_owned())),
        source: Some(SOURCE.to_owned()),
        // The model wrote it: a secret it quoted is not shown in the editor's problem list.
        message: crate::base::secrets::redacted(&message(hunk)),
        data: Some(json!({ "runId": hunk.run_id, "changeId": hunk.id })),
        ..Diagnostic::default()
    }
}

/// The hunk a diagnostic claude-lsp published stands for: (run id, change id).
pub fn change_of(diagnostic: &Diagnostic) -> Option<(&str, &str)> {
    if diagnostic.source.as_deref() != Some(SOURCE) {
        return None;
    }
    let data = diagnostic.data.as_ref()?;
    Some((data.get("runId")?.as_str()?, data.get("changeId")?.as_str()?))
}

fn message(hunk: &Hunk) -> String {
    let label = &hunk.label;
    match &hunk.proposal {
        Proposal::Text { new_text, .. } if new_text.is_empty() => {
            format!("Claude ({label}) proposes deleting these lines")
        }
        Proposal::Text { old_text, new_text } => {
            let verb = if old_text.is_empty() { "inserting" } else { "replacing these lines with" };
            format!("Claude ({label}) proposes {verb}:\n{}", quoted(new_text))
        }
        Proposal::File(FileChange::Created { path, content }) => {
            format!("Claude ({label}) proposes creating {}:\n{}", path.display(), quoted(content))
        }
        Proposal::File(FileChange::Deleted { path, .. }) => {
            format!("Claude ({label}) proposes deleting {}", path.display())
        }
        Proposal::File(FileChange::Renamed { from, to, .. }) => {
            format!("Claude ({label}) proposes renaming {} to {}", from.display(), to.display())
        }
        Proposal::File(FileChange::Modified { path, .. }) => {
            format!("Claude ({label}) proposes changing {}", path.display())
        }
    }
}

/// The first lines of `text`, saying how many more there are.
fn quoted(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut quoted = lines.iter().take(QUOTED_LINES).copied().collect::<Vec<_>>().join("\n");
    if lines.len() > QUOTED_LINES {
        let _ = write!(quoted, "\n… ({} more lines)", lines.len() - QUOTED_LINES);
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::lsp::Position;
    use pretty_assertions::assert_eq;

    fn range(sl: u32, sc: u32, el: u32, ec: u32) -> Range {
        Range::new(Position::new(sl, sc), Position::new(el, ec))
    }

    fn text_hunk(run: &str, start: u32, end: u32, old_text: &str, new_text: &str) -> Hunk {
        let proposal =
            Proposal::Text { old_text: old_text.to_owned(), new_text: new_text.to_owned() };
        Hunk::new(run, "refactor", range(start, 0, end, 0), proposal)
    }

    fn store() -> (HunkStore, PathBuf, Hunk, Hunk) {
        let path = PathBuf::from("/w/a.rs");
        let uri: Uri = "file:///w/a.rs".parse().unwrap();
        let first = text_hunk("r1", 1, 2, "b\n", "B\n");
        let second = text_hunk("r1", 4, 4, "", "x\n");
        let mut store = HunkStore::default();
        store.add(path.clone(), uri, vec![second.clone(), first.clone()]);
        (store, path, first, second)
    }

    #[test]
    fn hunks_follow_edits_elsewhere_and_are_withdrawn_when_an_edit_touches_them() {
        let (mut store, path, first, second) = store();
        let utf16 = PositionEncoding::Utf16;
        // Two lines typed at the top: both move down.
        let above = Splice::new(range(0, 0, 0, 0), "//\n//\n", utf16);
        assert_eq!(store.apply_splices(&path, &[above]), (true, vec![]));
        let lines: Vec<Range> = store.in_file(&path).iter().map(|hunk| hunk.range).collect();
        assert_eq!(lines, [range(3, 0, 4, 0), range(6, 0, 6, 0)]);
        // Typing inside the first withdraws it; the second stays where it is.
        let inside = Splice::new(range(3, 1, 3, 1), "!", utf16);
        let (changed, withdrawn) = store.apply_splices(&path, &[inside]);
        assert!(changed);
        assert_eq!(withdrawn.iter().map(|hunk| &hunk.id).collect::<Vec<_>>(), [&first.id]);
        assert_eq!(store.in_file(&path).len(), 1);
        // Below the last hunk: nothing moves.
        let below = Splice::new(range(9, 0, 9, 0), "z", utf16);
        assert_eq!(store.apply_splices(&path, &[below]), (false, vec![]));
        assert_eq!(store.in_file(&path)[0].id, second.id);
    }

    #[test]
    fn taking_one_or_all_of_a_run_and_putting_them_back() {
        let (mut store, path, first, second) = store();
        let other = text_hunk("r2", 7, 8, "h\n", "H\n");
        store.add(path.clone(), "file:///w/a.rs".parse().unwrap(), vec![other.clone()]);
        let one = store.take("r1", Some(&second.id));
        assert_eq!(one.iter().map(|t| &t.hunk).collect::<Vec<_>>(), [&second]);
        assert!(store.take("r1", Some(&second.id)).is_empty(), "gone once taken");
        store.restore(one);
        let all = store.take("r1", None);
        assert_eq!(all.iter().map(|t| &t.hunk).collect::<Vec<_>>(), [&first, &second]);
        assert_eq!(store.in_file(&path), [other]);
        store.take("r2", None);
        assert!(!store.touches(&path), "a file without hunks is forgotten");
    }

    #[test]
    fn a_hunk_applies_only_while_its_lines_read_what_the_run_changed() {
        let (mut store, path, first, second) = store();
        let text = "a\nb\nc\nd\ne\n";
        let utf8 = PositionEncoding::Utf8;
        assert_eq!(first.edit_of(text, utf8).unwrap().new_text, "B\n");
        assert_eq!(second.edit_of(text, utf8).unwrap().range, range(4, 0, 4, 0));
        assert!(first.edit_of("a\nbee\nc\n", utf8).is_none(), "its line changed");
        assert!(second.edit_of("a\n", utf8).is_none(), "its place is gone");
        let withdrawn = store.check_text(&path, "a\nbee\nc\nd\ne\n", utf8);
        assert_eq!(withdrawn, [first]);
        assert_eq!(store.in_file(&path), [second]);
    }

    #[test]
    fn a_diagnostic_quotes_the_proposed_text_and_names_run_and_change() {
        let (_, _, first, _) = store();
        let diagnostic = to_diagnostic(&first);
        assert_eq!(diagnostic.severity, Some(DiagnosticSeverity::INFORMATION));
        assert_eq!(diagnostic.message, "Claude (refactor) proposes replacing these lines with:\nB");
        assert_eq!(change_of(&diagnostic), Some(("r1", first.id.as_str())));
        assert_eq!(first.lines(), "line 2");
        let long = "x\n".repeat(QUOTED_LINES + 5);
        let created = Hunk::new(
            "r1",
            "generate",
            range(0, 0, 0, 0),
            Proposal::File(FileChange::Created { path: "/w/t.rs".into(), content: long }),
        );
        let message = to_diagnostic(&created).message;
        assert!(message.starts_with("Claude (generate) proposes creating /w/t.rs:\nx\n"));
        assert!(message.ends_with("x\n… (5 more lines)"), "{message}");
    }
}
