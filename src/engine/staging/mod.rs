//! The staging mirror (DESIGN.md §4): edit actions run the CLI in a mirror of the workspace, so
//! the CLI sees its own edits on disk while the user's files stay untouched until the editor
//! applies the resulting `WorkspaceEdit`.
//!
//! On disk, `<cache_root>/mirrors/<workspace key>/` holds per slot `N`: the mirror `N/`, its lock
//! `N.lock`, for git mirrors the server's private repository `N.git/`, and for copy mirrors the
//! pristine baseline `N.base/` plus an empty repository `N.ignore.git` used only to evaluate
//! `.gitignore` rules.
//!
//! Two kinds of mirror:
//! - A workspace inside a git repository with a commit gets a private repository `N.git` whose
//!   work tree is `N/`. It borrows the user's objects read-only (`objects/info/alternates`) and
//!   shares nothing writable with the user's repository: not config, hooks, refs, index or
//!   worktree list. A re-sync resets it to the workspace's HEAD, cleans untracked files, then
//!   copies only what `git status` reports dirty in the workspace. The baseline is that commit
//!   plus a snapshot of the copied files, so `changes()` asks git for candidates and compares
//!   only those. The agent gets a repository of its own in `N/.git`, rebuilt at every sync; the
//!   server never runs git on it, since the agent may have changed anything in it.
//! - Any other workspace (including a repository without commits) gets a plain copy, capped in
//!   size. It is kept in step rsync-style (size + mtime quick check) from a pristine baseline copy
//!   beside it, which also provides the "before" text of changed files.

mod copy_mirror;
mod error;
mod files;
mod git_mirror;
mod slots;
mod workspace;

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::base::path_style::PathStyle;
use crate::base::paths::workspace_key;
use crate::model::edits::FileChange;

pub use copy_mirror::StagingSettings;
use copy_mirror::{CopyBaseline, copy_diffs, sync_copy};
pub use error::StagingError;
use error::io_error;
use files::{
    State, absolute_normalized, normalize_absolute, relative_to_first, remove_dir_off_thread,
    replace_path_mentions,
};
use git_mirror::{GitBaseline, git_diffs, is_legacy_worktree, prune_worktrees, sync_git};
use slots::{SlotLock, SlotPaths, slot_number, take_free_slot};
use workspace::{Repository, Workspace, find_repository};

/// Hands out mirrors of workspaces; cheap to clone, all state lives on disk.
#[derive(Debug, Clone)]
pub struct StagingManager {
    mirrors_dir: PathBuf,
}

impl StagingManager {
    /// Mirrors live under `<cache_root>/mirrors/`.
    pub fn new(cache_root: PathBuf) -> Self {
        Self { mirrors_dir: cache_root.join("mirrors") }
    }

    /// A mirror of `workspace`, re-synced: reset to HEAD, then the working tree's modified,
    /// deleted and untracked-not-ignored files copied in, then `overlays` (absolute workspace
    /// path → unsaved buffer text) written. Overlays outside the workspace are skipped.
    ///
    /// Slot 0 is the stable per-workspace path (the CLI stores sessions per working directory,
    /// so `--resume` needs the same path); while it is leased, a concurrent acquire gets slot 1,
    /// 2, …. The lease returns its slot on drop.
    pub async fn acquire(
        &self,
        workspace: &Path,
        overlays: &[(PathBuf, String)],
        settings: &StagingSettings,
    ) -> Result<MirrorLease, StagingError> {
        let started = std::time::Instant::now();
        let workspace = Workspace::resolve(workspace).await?;
        let key_dir = self.key_dir(&workspace.canonical);
        fs::create_dir_all(&key_dir).map_err(io_error(&key_dir))?;
        let key_dir = fs::canonicalize(&key_dir).map_err(io_error(&key_dir))?;
        let (slot, lock) = take_free_slot(&key_dir, &workspace.given)?;
        let paths = SlotPaths::new(&key_dir, slot);
        // Never mirror the mirrors: the cache may lie inside the workspace (a home directory).
        let own_dir = key_dir.parent().unwrap_or(&key_dir).to_path_buf();
        let synced = match &workspace.repo {
            Some(repo @ Repository { head: Some(head), .. }) => {
                let synced = sync_git(&workspace, repo, head, &paths, &own_dir, overlays).await?;
                synced.map(Baseline::Git)
            }
            _ => sync_copy(&workspace, &paths, &own_dir, overlays, settings)
                .await?
                .map(Baseline::Copy),
        };
        let lease = MirrorLease {
            slot: paths.slot,
            root: synced.root,
            mirror_top: synced.mirror_top,
            workspace: workspace.given.clone(),
            workspace_top: synced.workspace_top,
            prefix: synced.prefix,
            baseline: synced.baseline,
            _lock: lock,
        };
        tracing::debug!(
            workspace = %workspace.given.display(),
            mirror = %lease.root.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "staging mirror synced"
        );
        Ok(lease)
    }

    /// Remove every mirror of `workspace` (and prune the repository's worktree list of mirrors an
    /// older version made as worktrees). Fails with [`StagingError::InUse`] while any of them is
    /// leased.
    pub async fn remove(&self, workspace: &Path) -> Result<(), StagingError> {
        let given = absolute_normalized(workspace)?;
        let canonical = fs::canonicalize(&given).unwrap_or_else(|_| given.clone());
        let key_dir = self.key_dir(&canonical);
        let entries = match fs::read_dir(&key_dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(io_error(&key_dir)(err)),
        };
        let slots: BTreeSet<usize> = entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| slot_number(&entry.file_name()))
            .collect();
        let legacy = slots.iter().any(|slot| is_legacy_worktree(&SlotPaths::new(&key_dir, *slot)));
        let mut locks = Vec::with_capacity(slots.len());
        for slot in slots {
            match SlotLock::try_take(key_dir.join(format!("{slot}.lock")))? {
                Some(lock) => locks.push(lock),
                None => return Err(StagingError::InUse { workspace: given }),
            }
        }
        remove_dir_off_thread(key_dir).await?;
        drop(locks);
        if legacy && let Ok(Some(repo)) = find_repository(&canonical).await {
            prune_worktrees(&repo.toplevel).await;
        }
        Ok(())
    }

    fn key_dir(&self, canonical_workspace: &Path) -> PathBuf {
        self.mirrors_dir.join(workspace_key(canonical_workspace))
    }
}

/// A leased, synced mirror. Dropping it returns the slot.
#[derive(Debug)]
pub struct MirrorLease {
    slot: usize,
    /// Canonical working directory of the mirror: where the CLI runs.
    root: PathBuf,
    /// The mirror's counterpart of `workspace_top` (the worktree top in git mode).
    mirror_top: PathBuf,
    workspace: PathBuf,
    workspace_top: PathBuf,
    /// `root` relative to `mirror_top`.
    prefix: PathBuf,
    baseline: Baseline,
    _lock: SlotLock,
}

/// What the mirror held right after the sync; `changes()` is measured against it.
#[derive(Debug)]
enum Baseline {
    Git(GitBaseline),
    Copy(CopyBaseline),
}

impl MirrorLease {
    /// The mirror's working directory: run the CLI here.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The workspace, absolute, as the caller named it.
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// Which slot this lease holds (0 is the stable, session-resumable one).
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The workspace path of a path in the mirror (relative paths are taken from the mirror
    /// root); `None` when it lies outside the mirror root.
    pub fn to_workspace_path(&self, mirror_path: &Path) -> Option<PathBuf> {
        let path = normalize_absolute(&self.root.join(mirror_path))?;
        let rel = relative_to_first(PathStyle::NATIVE, &path, &[&self.root])?;
        Some(self.workspace.join(rel))
    }

    /// The mirror path of a workspace path (relative paths are taken from the workspace root);
    /// `None` when it lies outside the workspace.
    pub fn to_mirror_path(&self, workspace_path: &Path) -> Option<PathBuf> {
        let path = normalize_absolute(&self.workspace.join(workspace_path))?;
        let canonical_workspace = self.workspace_top.join(&self.prefix);
        let rel =
            relative_to_first(PathStyle::NATIVE, &path, &[&self.workspace, &canonical_workspace])?;
        Some(self.root.join(rel))
    }

    /// `text` with every mention of the mirror replaced by the workspace, for anything shown
    /// to the user.
    pub fn map_text(&self, text: &str) -> String {
        let mapped = replace_path_mentions(text, &self.root, &self.workspace);
        if self.mirror_top == self.root {
            mapped
        } else {
            // Mentions of the repository outside the workspace directory.
            replace_path_mentions(&mapped, &self.mirror_top, &self.workspace_top)
        }
    }

    /// Files that differ from the synced baseline, with workspace paths, sorted by path.
    /// Text files only: binary changes, symbolic link changes and changes outside the
    /// workspace are errors. Ignored files (build output) are not reported; a file deleted and
    /// another created with the same content is reported as `Renamed`.
    pub async fn changes(&self) -> Result<Vec<FileChange>, StagingError> {
        let diffs = match &self.baseline {
            Baseline::Git(baseline) => git_diffs(&self.mirror_top, baseline).await?,
            Baseline::Copy(baseline) => copy_diffs(&self.root, baseline).await?,
        };
        let mut changes = Vec::with_capacity(diffs.len());
        for (rel, before, after) in diffs {
            if let Some(change) = self.classify(&rel, before, after)? {
                changes.push(change);
            }
        }
        let mut changes = pair_renames(changes);
        changes.sort_by(|a, b| change_path(a).cmp(change_path(b)));
        Ok(changes)
    }

    /// One difference as a `FileChange`, or the error that forbids applying it. `rel` is
    /// relative to `mirror_top`.
    fn classify(
        &self,
        rel: &Path,
        before: State,
        after: State,
    ) -> Result<Option<FileChange>, StagingError> {
        let Ok(inside) = rel.strip_prefix(&self.prefix) else {
            return Err(StagingError::OutsideWorkspace { path: self.workspace_top.join(rel) });
        };
        let path = self.workspace.join(inside);
        if let State::Symlink(target) = &after {
            let link_dir = self.mirror_top.join(rel);
            let link_dir = link_dir.parent().unwrap_or(&self.mirror_top);
            let inside_root = normalize_absolute(&link_dir.join(target)).is_some_and(|resolved| {
                relative_to_first(PathStyle::NATIVE, &resolved, &[&self.root]).is_some()
            });
            if !inside_root {
                return Err(StagingError::OutsideWorkspace { path });
            }
        }
        match (before, after) {
            (before, after) if before == after => Ok(None),
            (State::Symlink(_), _) | (_, State::Symlink(_)) => {
                Err(StagingError::SymlinkChange { path })
            }
            (State::Binary { .. }, _) | (_, State::Binary { .. }) => {
                Err(StagingError::BinaryChange { path })
            }
            (State::Absent, State::Text(content)) => {
                Ok(Some(FileChange::Created { path, content }))
            }
            (State::Text(before), State::Absent) => Ok(Some(FileChange::Deleted { path, before })),
            (State::Text(before), State::Text(after)) => {
                Ok(Some(FileChange::Modified { path, before, after }))
            }
            (State::Absent, State::Absent) => Ok(None),
        }
    }
}

fn change_path(change: &FileChange) -> &Path {
    match change {
        FileChange::Modified { path, .. }
        | FileChange::Created { path, .. }
        | FileChange::Deleted { path, .. } => path,
        FileChange::Renamed { to, .. } => to,
    }
}

/// Deleted + Created with the same (non-empty) content → Renamed, pairing in path order.
fn pair_renames(changes: Vec<FileChange>) -> Vec<FileChange> {
    let mut created_by_content: HashMap<String, Vec<PathBuf>> = HashMap::new();
    let mut rest = Vec::with_capacity(changes.len());
    let mut deleted = Vec::new();
    for change in changes {
        match change {
            FileChange::Created { path, content } if !content.is_empty() => {
                created_by_content.entry(content).or_default().push(path);
            }
            FileChange::Deleted { path, before } if !before.is_empty() => {
                deleted.push((path, before));
            }
            other => rest.push(other),
        }
    }
    for paths in created_by_content.values_mut() {
        // Pop from the end below hands out the smallest path first.
        paths.sort_by(|a, b| b.cmp(a));
    }
    deleted.sort();
    for (from, before) in deleted {
        match created_by_content.get_mut(&before).and_then(Vec::pop) {
            Some(to) => {
                rest.push(FileChange::Renamed { from, to, after: before.clone(), before });
            }
            None => rest.push(FileChange::Deleted { path: from, before }),
        }
    }
    for (content, paths) in created_by_content {
        for path in paths {
            rest.push(FileChange::Created { path, content: content.clone() });
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn renames_pair_identical_content_only() {
        let changes = vec![
            FileChange::Deleted { path: "/w/old.rs".into(), before: "fn a() {}\n".into() },
            FileChange::Created { path: "/w/new.rs".into(), content: "fn a() {}\n".into() },
            FileChange::Deleted { path: "/w/other.rs".into(), before: "x".into() },
            FileChange::Created { path: "/w/else.rs".into(), content: "y".into() },
            FileChange::Deleted { path: "/w/empty".into(), before: String::new() },
            FileChange::Created { path: "/w/empty2".into(), content: String::new() },
        ];
        let mut paired = pair_renames(changes);
        paired.sort_by(|a, b| change_path(a).cmp(change_path(b)));
        assert_eq!(
            paired,
            [
                FileChange::Created { path: "/w/else.rs".into(), content: "y".into() },
                FileChange::Deleted { path: "/w/empty".into(), before: String::new() },
                FileChange::Created { path: "/w/empty2".into(), content: String::new() },
                FileChange::Renamed {
                    from: "/w/old.rs".into(),
                    to: "/w/new.rs".into(),
                    before: "fn a() {}\n".into(),
                    after: "fn a() {}\n".into(),
                },
                FileChange::Deleted { path: "/w/other.rs".into(), before: "x".into() },
            ]
        );
    }
}
