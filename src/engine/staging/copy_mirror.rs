//! Copy mirrors: a plain copy of a workspace that is not a git repository with a commit, kept
//! in step rsync-style from a pristine baseline copy beside it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::base::git::Git;
use crate::base::platform::symlink;

use super::error::{MIB, StagingError, blocking, io_error};
use super::files::*;
use super::git_mirror::{
    is_legacy_worktree, private_git, prune_worktrees, remove_slot_repository, split_nul,
};
use super::slots::SlotPaths;
use super::workspace::{Synced, Workspace, excludes_file, resolve_overlays};

/// Limits for workspaces that have to be copied whole (not a git repository with a commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagingSettings {
    /// Total size of regular files copied (setting `stagingMaxCopyMb`).
    pub max_copy_bytes: u64,
    /// Number of files and symbolic links copied.
    pub max_copy_files: usize,
}

impl Default for StagingSettings {
    fn default() -> Self {
        Self { max_copy_bytes: 200 * MIB, max_copy_files: 20_000 }
    }
}

/// What a copy mirror held right after the sync; its changes are measured against it.
#[derive(Debug)]
pub(super) struct CopyBaseline {
    base_dir: PathBuf,
    /// The mirror's files after the sync, relative to the root.
    manifest: BTreeMap<PathBuf, Entry>,
    /// Overlay texts written over the copied files, relative to the root.
    overlays: BTreeMap<PathBuf, String>,
    ignore: IgnoreRules,
}

pub(super) async fn sync_copy(
    workspace: &Workspace,
    paths: &SlotPaths,
    own_dir: &Path,
    overlays: &[(PathBuf, String)],
    settings: &StagingSettings,
) -> Result<Synced<CopyBaseline>, StagingError> {
    // A repository without commits: copy what git would track, and let it judge ignores.
    let (listing, ignore) = match &workspace.repo {
        Some(_) => {
            let files = Git::new(&workspace.canonical)
                .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
                .run()
                .await?;
            let root = workspace.canonical.clone();
            let settings = settings.clone();
            let own_dir = own_dir.to_path_buf();
            let listing = blocking(move || {
                let rels = split_nul(&files).filter(|rel| !root.join(rel).starts_with(&own_dir));
                list_files(&root, rels, &settings)
            })
            .await?;
            (listing, IgnoreRules::Repository { workspace: workspace.canonical.clone() })
        }
        None => {
            let root = workspace.canonical.clone();
            let settings = settings.clone();
            let own_dir = own_dir.to_path_buf();
            let listing = blocking(move || walk(&root, Some(&settings), Some(&own_dir))).await?;
            (listing, private_ignore_rules(&paths.ignore_repo).await)
        }
    };

    if fs::symlink_metadata(&paths.mirror).is_ok() && fs::symlink_metadata(&paths.base).is_err() {
        // The slot held a git mirror: start the copy afresh.
        let legacy = is_legacy_worktree(paths);
        remove_slot_repository(paths).await?;
        if let (true, Some(repo)) = (legacy, &workspace.repo) {
            prune_worktrees(&repo.toplevel).await;
        }
    }
    let source = workspace.canonical.clone();
    let base_dir = paths.base.clone();
    let mirror = paths.mirror.clone();
    let (manifest, copied) = blocking(move || {
        fs::create_dir_all(&base_dir).map_err(io_error(&base_dir))?;
        fs::create_dir_all(&mirror).map_err(io_error(&mirror))?;
        let (base, to_base) = sync_tree(&source, &listing, &base_dir)?;
        let (manifest, to_mirror) = sync_tree(&base_dir, &base, &mirror)?;
        Ok((manifest, to_base + to_mirror))
    })
    .await?;
    tracing::debug!(workspace = %workspace.given.display(), copied, "copy mirror synced");

    let root = fs::canonicalize(&paths.mirror).map_err(io_error(&paths.mirror))?;
    let mut manifest = manifest;
    let mut written = BTreeMap::new();
    for (rel, text) in resolve_overlays(workspace, overlays) {
        write_text(&root, &rel, text)?;
        let entry = entry_of(&root.join(&rel)).map_err(io_error(&root.join(&rel)))?;
        if let Some(entry) = entry {
            manifest.insert(rel.clone(), entry);
        }
        written.insert(rel, text.to_owned());
    }
    Ok(Synced {
        mirror_top: root.clone(),
        root,
        workspace_top: workspace.canonical.clone(),
        prefix: PathBuf::new(),
        baseline: CopyBaseline {
            base_dir: paths.base.clone(),
            manifest,
            overlays: written,
            ignore,
        },
    })
}

/// An empty repository to evaluate `.gitignore` rules in the mirror, created on first use.
pub(super) async fn private_ignore_rules(git_dir: &Path) -> IgnoreRules {
    let parent = git_dir.parent().unwrap_or(git_dir);
    let created = match git_dir.join("HEAD").is_file() {
        true => Ok(Vec::new()),
        false => Git::new(parent).args(["init", "--quiet", "--bare"]).arg(git_dir).run().await,
    };
    match created {
        Ok(_) => IgnoreRules::Private {
            git_dir: git_dir.to_path_buf(),
            excludes_file: excludes_file(parent).await.ok().flatten(),
        },
        Err(err) => {
            tracing::info!(%err, "cannot create an ignore-rules repository; created files all count");
            IgnoreRules::None
        }
    }
}

/// Which of `paths` (relative to the mirror root) the ignore rules exclude.
pub(super) async fn ignored_paths(
    rules: &IgnoreRules,
    mirror_root: &Path,
    paths: &[&PathBuf],
) -> Result<BTreeSet<PathBuf>, StagingError> {
    if paths.is_empty() {
        return Ok(BTreeSet::new());
    }
    let command = match rules {
        IgnoreRules::Repository { workspace } => Git::new(workspace),
        IgnoreRules::Private { git_dir, excludes_file } => {
            private_git(git_dir, mirror_root, excludes_file.as_deref())
        }
        IgnoreRules::None => return Ok(BTreeSet::new()),
    };
    let input: Vec<u8> = paths
        .iter()
        .flat_map(|path| [path.as_os_str().as_encoded_bytes(), b"\0"].concat())
        .collect();
    let output = command
        .args(["check-ignore", "-z", "--stdin"])
        .allow_exit_codes(&[1]) // 1: nothing is ignored
        .run_with_input(input)
        .await?;
    Ok(split_nul(&output).collect())
}

/// How to tell which files a run created are ignored (build output, not edits).
#[derive(Debug)]
pub(super) enum IgnoreRules {
    /// The workspace's own repository (one without commits), asked from the workspace root.
    Repository { workspace: PathBuf },
    /// A private empty repository whose work tree is the mirror: `.gitignore` files in the
    /// mirror and the user's global excludes still apply.
    Private { git_dir: PathBuf, excludes_file: Option<PathBuf> },
    /// git is unavailable: every created file counts.
    None,
}

/// Counts what a copy would take, failing as soon as a cap is passed.
pub(super) struct CopyBudget<'a> {
    pub(super) settings: Option<&'a StagingSettings>,
    pub(super) files: usize,
    pub(super) bytes: u64,
}

impl CopyBudget<'_> {
    pub(super) fn charge(&mut self, entry: &Entry) -> Result<(), StagingError> {
        self.files += 1;
        if let Entry::File { len, .. } = entry {
            self.bytes += len;
        }
        match self.settings {
            Some(limits)
                if self.files > limits.max_copy_files || self.bytes > limits.max_copy_bytes =>
            {
                Err(StagingError::TooLarge {
                    bytes: self.bytes,
                    files: self.files,
                    limit_bytes: limits.max_copy_bytes,
                    limit_files: limits.max_copy_files,
                })
            }
            _ => Ok(()),
        }
    }
}

/// Every file and symbolic link under `root` (links are listed, never followed), relative to
/// `root`, within the copy caps when `settings` is given, leaving out the directory `skip`.
pub(super) fn walk(
    root: &Path,
    settings: Option<&StagingSettings>,
    skip: Option<&Path>,
) -> Result<BTreeMap<PathBuf, Entry>, StagingError> {
    let mut budget = CopyBudget { settings, files: 0, bytes: 0 };
    let mut entries = BTreeMap::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel_dir) = pending.pop() {
        let dir = root.join(&rel_dir);
        let listing = match fs::read_dir(&dir) {
            Ok(listing) => listing,
            // Gone since it was listed (the run or the user is still writing): nothing to copy.
            Err(err) if is_absent(&err) => continue,
            Err(err) => return Err(io_error(&dir)(err)),
        };
        for item in listing {
            let item = item.map_err(io_error(&dir))?;
            let rel = rel_dir.join(item.file_name());
            let file_type = item.file_type().map_err(io_error(&item.path()))?;
            if file_type.is_dir() {
                if skip != Some(item.path().as_path()) {
                    pending.push(rel);
                }
                continue;
            }
            match entry_of(&item.path()) {
                Ok(Some(entry)) => {
                    budget.charge(&entry)?;
                    entries.insert(rel, entry);
                }
                Ok(None) => {
                    tracing::debug!(path = %item.path().display(), "special file not copied")
                }
                Err(err) if is_absent(&err) => {}
                Err(err) => return Err(io_error(&item.path())(err)),
            }
        }
    }
    Ok(entries)
}

/// The entries of `rels` (relative to `root`) that exist as files or links, within the caps.
pub(super) fn list_files(
    root: &Path,
    rels: impl Iterator<Item = PathBuf>,
    settings: &StagingSettings,
) -> Result<BTreeMap<PathBuf, Entry>, StagingError> {
    let mut budget = CopyBudget { settings: Some(settings), files: 0, bytes: 0 };
    let mut entries = BTreeMap::new();
    for rel in rels {
        let path = root.join(&rel);
        match entry_of(&path) {
            Ok(Some(entry)) => {
                budget.charge(&entry)?;
                entries.insert(rel, entry);
            }
            Ok(None) => {}
            Err(err) if is_absent(&err) => {}
            Err(err) => return Err(io_error(&path)(err)),
        }
    }
    Ok(entries)
}

/// Make `target` hold exactly `source_entries` (read from `source`), copying only entries
/// whose size, mtime or mode differ. Returns the entries now in `target` and how many were
/// copied.
pub(super) fn sync_tree(
    source: &Path,
    source_entries: &BTreeMap<PathBuf, Entry>,
    target: &Path,
) -> Result<(BTreeMap<PathBuf, Entry>, usize), StagingError> {
    let existing = walk(target, None, None)?;
    for rel in existing.keys().filter(|rel| !source_entries.contains_key(*rel)) {
        remove_path(&target.join(rel))?;
    }
    let mut result = BTreeMap::new();
    let mut copied = 0;
    for (rel, entry) in source_entries {
        if existing.get(rel) == Some(entry) {
            result.insert(rel.clone(), entry.clone());
            continue;
        }
        let from = source.join(rel);
        match copy_preserving_mtime(&from, target, rel) {
            Ok(Some(entry)) => {
                result.insert(rel.clone(), entry);
                copied += 1;
            }
            Ok(None) => {}
            // Deleted since the listing: gone from the copy as well.
            Err(StagingError::Io { .. }) if fs::symlink_metadata(&from).is_err() => {
                remove_path(&target.join(rel))?;
            }
            Err(err) => return Err(err),
        }
    }
    Ok((result, copied))
}

/// Copy a file (content, permissions, mtime) or a symbolic link, returning the new entry.
pub(super) fn copy_preserving_mtime(
    from: &Path,
    target: &Path,
    rel: &Path,
) -> Result<Option<Entry>, StagingError> {
    let to = target.join(rel);
    let meta = fs::symlink_metadata(from).map_err(io_error(from))?;
    if meta.file_type().is_symlink() {
        let link = fs::read_link(from).map_err(io_error(from))?;
        prepare_destination(target, rel)?;
        symlink(&link, &to).map_err(io_error(&to))?;
        return Ok(Some(Entry::Symlink(link)));
    }
    if !meta.is_file() {
        return Ok(None);
    }
    prepare_destination(target, rel)?;
    let mut reader = fs::File::open(from).map_err(io_error(from))?;
    let mut writer = fs::File::create(&to).map_err(io_error(&to))?;
    io::copy(&mut reader, &mut writer).map_err(io_error(&to))?;
    let modified = meta.modified().ok();
    if let Some(modified) = modified {
        writer.set_modified(modified).map_err(io_error(&to))?;
    }
    drop(writer);
    fs::set_permissions(&to, meta.permissions()).map_err(io_error(&to))?;
    entry_of(&to).map_err(io_error(&to))
}

/// The paths of a copy mirror that differ from its baseline copy, each with its state before
/// and now. Files the run created that `.gitignore` ignores are left out.
pub(super) async fn copy_diffs(
    root: &Path,
    baseline: &CopyBaseline,
) -> Result<Vec<(PathBuf, State, State)>, StagingError> {
    let CopyBaseline { base_dir, manifest, overlays, ignore } = baseline;
    let root_dir = root.to_path_buf();
    let current = blocking(move || walk(&root_dir, None, None)).await?;
    let mut candidates: BTreeSet<&PathBuf> = BTreeSet::new();
    for (rel, entry) in manifest {
        if current.get(rel) != Some(entry) {
            candidates.insert(rel);
        }
    }
    let created: Vec<&PathBuf> =
        current.keys().filter(|rel| !manifest.contains_key(*rel)).collect();
    let ignored = ignored_paths(ignore, root, &created).await?;
    candidates.extend(created.into_iter().filter(|rel| !ignored.contains(*rel)));

    let candidates: Vec<(PathBuf, Option<String>, bool)> = candidates
        .into_iter()
        .filter(|rel| !is_git_metadata(rel))
        .map(|rel| (rel.clone(), overlays.get(rel).cloned(), manifest.contains_key(rel)))
        .collect();
    let (root, base_dir) = (root.to_path_buf(), base_dir.clone());
    blocking(move || {
        let mut diffs = Vec::new();
        for (rel, overlay, in_baseline) in candidates {
            let before = match (overlay, in_baseline) {
                (Some(text), _) => State::Text(text),
                (None, true) => read_state(&base_dir, &rel)?,
                (None, false) => State::Absent,
            };
            let after = read_state(&root, &rel)?;
            if before != after {
                diffs.push((rel, before, after));
            }
        }
        Ok(diffs)
    })
    .await
}
