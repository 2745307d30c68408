//! The last long answer of a command run per document, for clients that cannot show a document
//! (Helix, Zed): their status line flattens and cuts a long message, so the whole answer is
//! served as a hover over the lines it is about. The lines follow the document's edits.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::base::text::line_breaks;
use crate::model::edits;
use crate::model::prompt::Action;
use crate::model::regions::follow_change;
use crate::protocol::lsp::{TextDocumentContentChangeEvent, Uri};

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
        let mut by_path = self.by_path.lock();
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
        let mut by_path = self.by_path.lock();
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
        self.by_path.lock().remove(path);
    }

    /// The answer about `line` of `path`, if any.
    pub fn at(&self, path: &Path, line: u32) -> Option<Answer> {
        let by_path = self.by_path.lock();
        let (_, answer) = by_path.get(path)?;
        match answer.lines {
            Some((first, last)) if !(first..=last).contains(&line) => None,
            _ => Some(answer.clone()),
        }
    }
}

/// Write `text` as the document `name` among the answers in the cache dir (the oldest are
/// pruned).
pub fn write_answer(cache_dir: &Path, name: &str, text: &str) -> std::io::Result<Uri> {
    let dir = cache_dir.join("answers");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    prune_answers(&dir, KEPT_ANSWERS);
    edits::path_to_uri(&path).map_err(|err| std::io::Error::other(err.to_string()))
}

/// Answer documents kept in the cache dir; older ones are removed as new ones come.
const KEPT_ANSWERS: usize = 50;

/// Remove all but the `keep` newest answer documents in `dir` (best effort: an answer the
/// editor still shows is only a file it reads once).
fn prune_answers(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut answers: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "md"))
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .collect();
    if answers.len() <= keep {
        return;
    }
    answers.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, old) in answers.into_iter().skip(keep) {
        if let Err(err) = std::fs::remove_file(&old) {
            tracing::debug!(path = %old.display(), %err, "could not remove an old answer");
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

    #[test]
    fn only_the_newest_answers_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path();
        let mut written = Vec::new();
        for n in 0..5 {
            let uri = write_answer(cache, &format!("analyze-run{n}.md"), "text").unwrap();
            written.push(edits::uri_to_path(&uri).unwrap());
            // Modification times must differ for "newest" to mean something.
            let when = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + n);
            std::fs::File::options()
                .write(true)
                .open(written.last().unwrap())
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        std::fs::write(cache.join("answers/notes.txt"), "not an answer").unwrap();
        prune_answers(&cache.join("answers"), 2);
        let left: Vec<bool> = written.iter().map(|path| path.exists()).collect();
        assert_eq!(left, [false, false, false, true, true]);
        assert!(cache.join("answers/notes.txt").exists(), "only answers are pruned");
    }
}
