//! The published findings per file, anchored while the user edits: an edit before a finding
//! moves it, an edit touching it removes it; a new run replaces what it covers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::finding::Finding;
use super::place::{Splice, rebase};
use crate::model::edits;
use crate::protocol::lsp::{Range, Uri};

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
