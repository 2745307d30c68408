//! The last long answer of a command run per document, for clients that cannot show a document
//! (Helix, Zed): their status line flattens and cuts a long message, so the whole answer is
//! served as a hover over the lines it is about. The lines follow the document's edits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::protocol::lsp::TextDocumentContentChangeEvent;
use crate::model::prompt::Action;
use crate::base::text::line_breaks;
use crate::model::regions::follow_change;
use crate::lsp_server::state::lock;

/// Documents with a kept answer; beyond this the oldest answer goes.
const MAX_DOCUMENTS: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub action: Action,
    pub text: String,
    /// The lines the run was about (inclusive); `None`: the whole document.
    pub lines: Option<(u32, u32)>,
}

#[derive(Default)]
pub struct Answers {
    /// Per document: the answer and when it was kept (for eviction).
    by_path: Mutex<HashMap<PathBuf, (u64, Answer)>>,
    kept: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answers").finish_non_exhaustive()
    }
}

impl Answers {
    /// Keep `answer` as `path`'s answer (replacing an older one).
    pub fn keep(&self, path: PathBuf, answer: Answer) {
        let order = self.kept.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut by_path = lock(&self.by_path);
        by_path.insert(path, (order, answer));
        if by_path.len() > MAX_DOCUMENTS
            && let Some(oldest) =
                by_path.iter().min_by_key(|(_, (order, _))| *order).map(|(path, _)| path.clone())
        {
            by_path.remove(&oldest);
        }
    }

    /// `didChange` (after the store applied it): the answer's lines move with the text; a
    /// whole new text leaves nothing to follow, so the answer goes.
    pub fn changed(&self, path: &Path, changes: &[TextDocumentContentChangeEvent]) {
        let mut by_path = lock(&self.by_path);
        let Some((_, answer)) = by_path.get_mut(path) else { return };
        for change in changes {
            match (change.range, answer.lines.as_mut()) {
                (Some(range), Some(lines)) => {
                    *lines =
                        follow_change(*lines, range.start, range.end, line_breaks(&change.text));
                }
                (Some(_), None) => {}
                (None, _) => {
                    by_path.remove(path);
                    return;
                }
            }
        }
    }

    /// `didClose`: changes are no longer seen, so the lines cannot be followed.
    pub fn closed(&self, path: &Path) {
        lock(&self.by_path).remove(path);
    }

    /// The answer about `line` of `path`, if any.
    pub fn at(&self, path: &Path, line: u32) -> Option<Answer> {
        let by_path = lock(&self.by_path);
        let (_, answer) = by_path.get(path)?;
        match answer.lines {
            Some((first, last)) if !(first..=last).contains(&line) => None,
            _ => Some(answer.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::lsp::{Position, Range};

    fn change(start: u32, end: u32, text: &str) -> TextDocumentContentChangeEvent {
        TextDocumentContentChangeEvent {
            range: Some(Range::new(Position::new(start, 0), Position::new(end, 0))),
            range_length: None,
            text: text.to_owned(),
        }
    }

    fn answer(lines: Option<(u32, u32)>) -> Answer {
        Answer { action: Action::Analyze, text: "The whole answer.".to_owned(), lines }
    }

    #[test]
    fn an_answer_is_found_on_its_lines_and_follows_edits_above_them() {
        let answers = Answers::default();
        let path = Path::new("/w/src/lib.rs");
        answers.keep(path.to_path_buf(), answer(Some((4, 6))));
        assert!(answers.at(path, 3).is_none());
        assert_eq!(answers.at(path, 5), Some(answer(Some((4, 6)))));
        // Two lines typed above: the answer is now about lines 6..=8.
        answers.changed(path, &[change(0, 0, "a\nb\n")]);
        assert!(answers.at(path, 4).is_none());
        assert!(answers.at(path, 8).is_some());
        assert!(answers.at(Path::new("/w/other.rs"), 8).is_none());
    }

    #[test]
    fn a_whole_document_answer_is_found_anywhere_until_a_full_sync_or_close() {
        let answers = Answers::default();
        let path = Path::new("/w/src/lib.rs");
        answers.keep(path.to_path_buf(), answer(None));
        assert!(answers.at(path, 1000).is_some());
        answers.changed(
            path,
            &[TextDocumentContentChangeEvent {
                range: None,
                range_length: None,
                text: "new".to_owned(),
            }],
        );
        assert!(answers.at(path, 0).is_none());
        answers.keep(path.to_path_buf(), answer(None));
        answers.closed(path);
        assert!(answers.at(path, 0).is_none());
    }

    #[test]
    fn only_the_newest_documents_keep_their_answers() {
        let answers = Answers::default();
        for n in 0..=MAX_DOCUMENTS {
            answers.keep(PathBuf::from(format!("/w/{n}.rs")), answer(None));
        }
        assert!(answers.at(Path::new("/w/0.rs"), 0).is_none(), "the oldest went");
        assert!(answers.at(Path::new(&format!("/w/{MAX_DOCUMENTS}.rs")), 0).is_some());
    }
}
