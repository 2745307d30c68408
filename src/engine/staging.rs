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

use crate::base::platform::{self, symlink};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::hash::Hasher;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::base::git::{Git, GitError, prefixed};
use crate::base::path_style::PathStyle;
use crate::base::paths::{self, workspace_key};
use crate::model::edits::FileChange;

const MIB: u64 = 1024 * 1024;
/// Budget for one ordinary git call (status, reset, diff, …).
const GIT_TIMEOUT: Duration = Duration::from_secs(120);
/// Budget for the first checkout of a mirror, which writes the whole tree.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(600);
/// More concurrent edit runs than this in one workspace is a runaway, not a workload.
const MAX_SLOTS: usize = 32;
/// A lock file still empty after this long was left by a process that died while creating it.
const EMPTY_LOCK_GRACE: Duration = Duration::from_secs(10);

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

#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("the workspace {} is not a directory", .path.display())]
    NotADirectory { path: PathBuf },
    #[error("{}", too_large_message(*.bytes, *.files, *.limit_bytes, *.limit_files))]
    TooLarge { bytes: u64, files: usize, limit_bytes: u64, limit_files: usize },
    #[error("cannot run git ({message}); it is needed to stage edits in a git workspace")]
    GitUnavailable { message: String },
    #[error("`{command}` failed: {stderr}")]
    Git { command: String, stderr: String },
    #[error("{}: {message}", .path.display())]
    Io { path: PathBuf, message: String },
    #[error(
        "the run changed {}, which is binary or not UTF-8 text; only text changes can be applied",
        .path.display()
    )]
    BinaryChange { path: PathBuf },
    #[error("the run changed {}, which is outside the workspace; it cannot be applied", .path.display())]
    OutsideWorkspace { path: PathBuf },
    #[error(
        "the run created, changed or removed the symbolic link {}; links cannot be applied as edits",
        .path.display()
    )]
    SymlinkChange { path: PathBuf },
    #[error("a staging mirror of {} is in use by a running action; try again when it ends", .workspace.display())]
    InUse { workspace: PathBuf },
    #[error("all {limit} staging mirrors of {} are in use; wait for a running action to end", .workspace.display())]
    AllSlotsBusy { workspace: PathBuf, limit: usize },
}

impl From<GitError> for StagingError {
    fn from(err: GitError) -> Self {
        match err {
            GitError::Unavailable { message } => Self::GitUnavailable { message },
            GitError::Failed { command, stderr } => Self::Git { command, stderr },
        }
    }
}

fn too_large_message(bytes: u64, files: usize, limit_bytes: u64, limit_files: usize) -> String {
    if files > limit_files {
        format!(
            "the workspace is not a git repository with commits and has more files than the copy \
             limit ({limit_files} files); make it a git repository (then only changed files are \
             copied) or open a smaller folder"
        )
    } else {
        format!(
            "the workspace is not a git repository with commits and is larger than the copy limit \
             ({} MB; found at least {} MB in {files} files); raise the setting `stagingMaxCopyMb`, \
             make it a git repository (then only changed files are copied) or open a smaller folder",
            limit_bytes / MIB,
            bytes.div_ceil(MIB),
        )
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StagingError + '_ {
    move |err| StagingError::Io { path: path.to_path_buf(), message: err.to_string() }
}

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
        let lease = match &workspace.repo {
            Some(repo @ Repository { head: Some(head), .. }) => {
                sync_git(&workspace, repo, head, &paths, &own_dir, overlays, lock).await?
            }
            _ => sync_copy(&workspace, &paths, &own_dir, overlays, settings, lock).await?,
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

/// The slot a `<key dir>` entry belongs to: `3`, `3.lock`, `3.git`, `3.base`, `3.ignore.git` → 3.
fn slot_number(name: &OsStr) -> Option<usize> {
    let name = name.to_str()?;
    name.split('.').next()?.parse().ok()
}

struct SlotPaths {
    slot: usize,
    mirror: PathBuf,
    git_dir: PathBuf,
    base: PathBuf,
    ignore_repo: PathBuf,
}

impl SlotPaths {
    fn new(key_dir: &Path, slot: usize) -> Self {
        Self {
            slot,
            mirror: key_dir.join(slot.to_string()),
            git_dir: key_dir.join(format!("{slot}.git")),
            base: key_dir.join(format!("{slot}.base")),
            ignore_repo: key_dir.join(format!("{slot}.ignore.git")),
        }
    }
}

fn take_free_slot(key_dir: &Path, workspace: &Path) -> Result<(usize, SlotLock), StagingError> {
    for slot in 0..MAX_SLOTS {
        if let Some(lock) = SlotLock::try_take(key_dir.join(format!("{slot}.lock")))? {
            return Ok((slot, lock));
        }
    }
    Err(StagingError::AllSlotsBusy { workspace: workspace.to_path_buf(), limit: MAX_SLOTS })
}

/// An exclusive claim on one mirror slot, across threads and processes: a lock file holding the
/// owner's pid and start time. A lock whose owner is gone (a crashed server) is taken over.
#[derive(Debug)]
struct SlotLock {
    path: PathBuf,
}

impl SlotLock {
    fn try_take(path: PathBuf) -> Result<Option<Self>, StagingError> {
        let owner = lock_owner_id(std::process::id());
        // Two attempts: the second follows the removal of a stale lock.
        for _ in 0..2 {
            match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(owner.as_bytes()).map_err(io_error(&path))?;
                    return Ok(Some(Self { path }));
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    if lock_is_held(&path) {
                        return Ok(None);
                    }
                    tracing::info!(lock = %path.display(), "taking over a mirror lock left by a process that is gone");
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                        Err(err) => return Err(io_error(&path)(err)),
                    }
                }
                Err(err) => return Err(io_error(&path)(err)),
            }
        }
        Ok(None)
    }
}

impl Drop for SlotLock {
    fn drop(&mut self) {
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                tracing::warn!(lock = %self.path.display(), %err, "cannot release a mirror lock");
            }
        }
    }
}

/// `"<pid> <start time>"`: the start time tells a live owner from a reused pid.
fn lock_owner_id(pid: u32) -> String {
    match process_start_time(pid) {
        Some(start) => format!("{pid} {start}\n"),
        None => format!("{pid}\n"),
    }
}

/// Field 22 of `/proc/<pid>/stat` (Linux only; elsewhere the pid alone identifies the owner).
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses; fields after it do not.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

fn lock_is_held(path: &Path) -> bool {
    let Ok(content) = fs::read_to_string(path) else {
        // Unreadable: assume a live owner rather than steal a slot.
        return true;
    };
    let mut fields = content.split_whitespace();
    let Some(pid) = fields.next().and_then(|pid| pid.parse::<u32>().ok()) else {
        // Empty: the owner may be between creating the file and writing its pid.
        let age = fs::metadata(path)
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok());
        return age.is_none_or(|age| age < EMPTY_LOCK_GRACE);
    };
    if !platform::process_is_alive(pid) {
        return false;
    }
    let recorded_start = fields.next().and_then(|start| start.parse::<u64>().ok());
    match (recorded_start, process_start_time(pid)) {
        (Some(recorded), Some(current)) => recorded == current,
        _ => true,
    }
}

/// The workspace as the caller named it and as the file system resolves it.
struct Workspace {
    /// Absolute, lexically normalized: the prefix of every path reported to the caller.
    given: PathBuf,
    canonical: PathBuf,
    repo: Option<Repository>,
}

struct Repository {
    /// Canonical top directory of the working tree that contains the workspace.
    toplevel: PathBuf,
    /// The workspace relative to `toplevel` (empty when the workspace is the top).
    prefix: PathBuf,
    common_dir: PathBuf,
    /// `None` in a repository without commits.
    head: Option<String>,
    /// The user's `core.excludesFile`, when set to an absolute path.
    excludes_file: Option<PathBuf>,
}

impl Repository {
    /// The object database mirrors borrow from.
    fn objects(&self) -> PathBuf {
        self.common_dir.join("objects")
    }
}

impl Workspace {
    async fn resolve(path: &Path) -> Result<Self, StagingError> {
        let given = absolute_normalized(path)?;
        let canonical = match fs::canonicalize(&given) {
            Ok(canonical) if canonical.is_dir() => canonical,
            _ => return Err(StagingError::NotADirectory { path: given }),
        };
        let repo = find_repository(&canonical).await?;
        Ok(Self { given, canonical, repo })
    }

    /// `path` (absolute, in the workspace) relative to the workspace root, following symbolic
    /// links in the workspace so that a file reached through an alias maps to its real place.
    fn relative(&self, path: &Path) -> Option<PathBuf> {
        let path = normalize_absolute(path)?;
        let resolved = fs::canonicalize(&path).ok().or_else(|| {
            let parent = fs::canonicalize(path.parent()?).ok()?;
            Some(parent.join(path.file_name()?))
        });
        let candidates = [resolved, Some(path)];
        candidates.into_iter().flatten().find_map(|candidate| {
            relative_to_first(PathStyle::NATIVE, &candidate, &[&self.canonical, &self.given])
                .filter(|rel| !rel.as_os_str().is_empty())
        })
    }
}

/// The git repository whose working tree contains `dir`, if any. A missing git binary, a bare
/// repository or a `.git` directory all mean "not a git workspace".
async fn find_repository(dir: &Path) -> Result<Option<Repository>, StagingError> {
    let located = Git::new(dir)
        .args(["rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir"])
        .run_status()
        .await;
    let stdout = match located {
        Ok((0, stdout)) => stdout,
        Ok(_) => return Ok(None),
        Err(GitError::Unavailable { message }) => {
            tracing::info!(%message, "git unavailable; staging by plain copy");
            return Ok(None);
        }
        Err(err) => return Err(err.into()),
    };
    let text = String::from_utf8_lossy(&stdout);
    let mut lines = text.lines();
    let (Some(toplevel), Some(common_dir)) = (lines.next(), lines.next()) else {
        return Ok(None);
    };
    let toplevel = fs::canonicalize(toplevel).map_err(io_error(Path::new(toplevel)))?;
    let common_dir = fs::canonicalize(common_dir).map_err(io_error(Path::new(common_dir)))?;
    let Some(prefix) = relative_to_first(PathStyle::NATIVE, dir, &[&toplevel]) else {
        return Ok(None);
    };
    let head = Git::new(&toplevel)
        .args(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
        .run_status();
    let ((code, head), excludes_file) = tokio::try_join!(head, excludes_file(&toplevel))?;
    let head = (code == 0).then(|| String::from_utf8_lossy(&head).trim().to_owned());
    Ok(Some(Repository { toplevel, prefix, common_dir, head, excludes_file }))
}

/// The user's `core.excludesFile` as git sees it from `dir`, when set to an absolute path.
async fn excludes_file(dir: &Path) -> Result<Option<PathBuf>, GitError> {
    let (code, stdout) =
        Git::new(dir).args(["config", "--path", "--get", "core.excludesFile"]).run_status().await?;
    let file = platform::path_from_bytes(stdout.strip_suffix(b"\n").unwrap_or(&stdout).to_vec());
    Ok((code == 0 && file.is_absolute()).then_some(file))
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
    Git {
        /// The slot's private repository; the mirror top is its work tree.
        git_dir: PathBuf,
        excludes_file: Option<PathBuf>,
        commit: String,
        /// Files the sync wrote over the commit (dirty workspace files, overlays), keyed by
        /// path relative to `mirror_top`.
        synced: BTreeMap<PathBuf, State>,
    },
    Copy {
        base_dir: PathBuf,
        /// The mirror's files after the sync, relative to `root`.
        manifest: BTreeMap<PathBuf, Entry>,
        /// Overlay texts written over the copied files, relative to `root`.
        overlays: BTreeMap<PathBuf, String>,
        ignore: IgnoreRules,
    },
}

/// How to tell which files a run created are ignored (build output, not edits).
#[derive(Debug)]
enum IgnoreRules {
    /// The workspace's own repository (one without commits), asked from the workspace root.
    Repository { workspace: PathBuf },
    /// A private empty repository whose work tree is the mirror: `.gitignore` files in the
    /// mirror and the user's global excludes still apply.
    Private { git_dir: PathBuf, excludes_file: Option<PathBuf> },
    /// git is unavailable: every created file counts.
    None,
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
            Baseline::Git { git_dir, excludes_file, commit, synced } => {
                let git = || private_git(git_dir, &self.mirror_top, excludes_file.as_deref());
                self.git_diffs(git, commit, synced).await?
            }
            Baseline::Copy { base_dir, manifest, overlays, ignore } => {
                self.copy_diffs(base_dir, manifest, overlays, ignore).await?
            }
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

    async fn git_diffs(
        &self,
        git: impl Fn() -> Git,
        commit: &str,
        synced: &BTreeMap<PathBuf, State>,
    ) -> Result<Vec<(PathBuf, State, State)>, StagingError> {
        let diff = git()
            .diff()
            .args(["--raw", "-z", "--no-abbrev", "--no-renames"])
            .args(["--ignore-submodules=all", commit, "--"])
            .run();
        let others = git().args(["ls-files", "-z", "--others", "--exclude-standard"]).run();
        let (diff, others) = tokio::join!(diff, others);
        let (diff, others) = (diff?, others?);

        let mut before_of: BTreeMap<PathBuf, Before> = BTreeMap::new();
        for entry in parse_raw_diff(&diff) {
            let before = match entry.head_mode.as_str() {
                "000000" => Before::Known(State::Absent),
                "160000" => continue, // a submodule: not ours to edit
                mode => Before::Blob { oid: entry.head_oid, symlink: mode == "120000" },
            };
            before_of.insert(entry.path, before);
        }
        for path in split_nul(&others) {
            if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
                tracing::info!(path = %path.display(), "skipping a repository nested in the mirror");
                continue;
            }
            before_of.entry(path).or_insert(Before::Known(State::Absent));
        }
        for (path, state) in synced {
            before_of.insert(path.clone(), Before::Known(state.clone()));
        }
        before_of.retain(|path, _| !is_git_metadata(path));

        let oids: BTreeSet<&str> = before_of
            .values()
            .filter_map(|before| match before {
                Before::Blob { oid, .. } => Some(oid.as_str()),
                Before::Known(_) => None,
            })
            .collect();
        let blobs = read_blobs(git(), oids).await?;

        let mirror_top = self.mirror_top.clone();
        blocking(move || diff_against(&mirror_top, before_of, &blobs)).await
    }

    async fn copy_diffs(
        &self,
        base_dir: &Path,
        manifest: &BTreeMap<PathBuf, Entry>,
        overlays: &BTreeMap<PathBuf, String>,
        ignore: &IgnoreRules,
    ) -> Result<Vec<(PathBuf, State, State)>, StagingError> {
        let root = self.root.clone();
        let current = blocking(move || walk(&root, None, None)).await?;
        let mut candidates: BTreeSet<&PathBuf> = BTreeSet::new();
        for (rel, entry) in manifest {
            if current.get(rel) != Some(entry) {
                candidates.insert(rel);
            }
        }
        let created: Vec<&PathBuf> =
            current.keys().filter(|rel| !manifest.contains_key(*rel)).collect();
        let ignored = ignored_paths(ignore, &self.root, &created).await?;
        candidates.extend(created.into_iter().filter(|rel| !ignored.contains(*rel)));

        let candidates: Vec<(PathBuf, Option<String>, bool)> = candidates
            .into_iter()
            .filter(|rel| !is_git_metadata(rel))
            .map(|rel| (rel.clone(), overlays.get(rel).cloned(), manifest.contains_key(rel)))
            .collect();
        let (root, base_dir) = (self.root.clone(), base_dir.to_path_buf());
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

/// Compare each path's baseline with the mirror (`rel` relative to `mirror_top`); blob
/// baselines are looked up in `blobs`.
fn diff_against(
    mirror_top: &Path,
    before_of: BTreeMap<PathBuf, Before>,
    blobs: &HashMap<String, Vec<u8>>,
) -> Result<Vec<(PathBuf, State, State)>, StagingError> {
    let mut diffs = Vec::new();
    for (rel, before) in before_of {
        let before = match before {
            Before::Known(state) => state,
            // The same blob may back several paths, hence the clone.
            Before::Blob { oid, symlink } => match blobs.get(&oid) {
                Some(bytes) => State::from_blob(bytes.clone(), symlink),
                None => {
                    return Err(StagingError::Git {
                        command: "git cat-file --batch".into(),
                        stderr: format!("object {oid} is missing from the repository"),
                    });
                }
            },
        };
        let after = read_state(mirror_top, &rel)?;
        if before != after {
            diffs.push((rel, before, after));
        }
    }
    Ok(diffs)
}

/// Where the baseline content of a changed path comes from.
enum Before {
    Known(State),
    Blob { oid: String, symlink: bool },
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

/// The content of one path, as far as a diff is concerned. Binary content is kept as a digest:
/// it can only ever be reported as an error, and may be large.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Absent,
    Text(String),
    Binary { len: u64, digest: u64 },
    Symlink(PathBuf),
}

impl State {
    fn from_bytes(bytes: Vec<u8>) -> Self {
        if memchr::memchr(0, &bytes).is_none() {
            match String::from_utf8(bytes) {
                Ok(text) => return Self::Text(text),
                Err(err) => return Self::binary(err.as_bytes()),
            }
        }
        Self::binary(&bytes)
    }

    fn binary(bytes: &[u8]) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        hasher.write(bytes);
        Self::Binary { len: bytes.len() as u64, digest: hasher.finish() }
    }

    fn from_blob(bytes: Vec<u8>, symlink: bool) -> Self {
        if symlink {
            Self::Symlink(platform::path_from_bytes(bytes))
        } else {
            Self::from_bytes(bytes)
        }
    }
}

/// The state of `root/rel` without following symbolic links, neither the last component nor
/// any directory on the way (a path below a link is not in the tree). Directories and special
/// files count as absent: only files are diffed.
fn read_state(root: &Path, rel: &Path) -> Result<State, StagingError> {
    let mut dir = root.to_path_buf();
    let mut components = rel.components().peekable();
    while let Some(component) = components.next() {
        dir.push(component);
        let meta = match fs::symlink_metadata(&dir) {
            Ok(meta) => meta,
            Err(err) if is_absent(&err) => return Ok(State::Absent),
            Err(err) => return Err(io_error(&dir)(err)),
        };
        if components.peek().is_some() {
            if !meta.is_dir() {
                return Ok(State::Absent);
            }
            continue;
        }
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&dir).map_err(io_error(&dir))?;
            return Ok(State::Symlink(target));
        }
        if meta.is_file() {
            let bytes = fs::read(&dir).map_err(io_error(&dir))?;
            return Ok(State::from_bytes(bytes));
        }
    }
    Ok(State::Absent)
}

fn is_absent(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// `.git` directories (or files) hold repository state, never part of an edit.
fn is_git_metadata(rel: &Path) -> bool {
    rel.components().any(|component| component.as_os_str() == ".git")
}

// ---------------------------------------------------------------------------------------------
// Git mirrors: a private repository per slot, borrowing the user's objects read-only

async fn sync_git(
    workspace: &Workspace,
    repo: &Repository,
    head: &str,
    paths: &SlotPaths,
    own_dir: &Path,
    overlays: &[(PathBuf, String)],
    lock: SlotLock,
) -> Result<MirrorLease, StagingError> {
    if paths.base.exists() {
        // The slot was a copy mirror (the repository had no commit then).
        remove_dir_off_thread(paths.base.clone()).await?;
    }
    let reused = ensure_private_repository(repo, head, paths).await?;
    let mut synced = match sync_git_files(workspace, repo, head, paths, own_dir, reused).await {
        Ok(synced) => synced,
        Err(err) if reused => {
            // A previous run may have left the mirror in a state git cannot reset (a read-only
            // directory, objects the user has since pruned): rebuild it once.
            tracing::warn!(%err, mirror = %paths.mirror.display(), "rebuilding the staging mirror");
            remove_slot_repository(paths).await?;
            ensure_private_repository(repo, head, paths).await?;
            sync_git_files(workspace, repo, head, paths, own_dir, false).await?
        }
        Err(err) => return Err(err),
    };
    let mirror_top = fs::canonicalize(&paths.mirror).map_err(io_error(&paths.mirror))?;
    // `join("")` would add a trailing slash, which breaks path-mention mapping.
    let root = if repo.prefix.as_os_str().is_empty() {
        mirror_top.clone()
    } else {
        mirror_top.join(&repo.prefix)
    };
    fs::create_dir_all(&root).map_err(io_error(&root))?;

    for (rel, text) in resolve_overlays(workspace, overlays) {
        let rel = repo.prefix.join(rel);
        write_text(&mirror_top, &rel, text)?;
        synced.insert(rel, State::Text(text.to_owned()));
    }
    let (git_dir, objects, commit) = (paths.git_dir.clone(), repo.objects(), head.to_owned());
    let agent_top = mirror_top.clone();
    blocking(move || write_agent_repository(&git_dir, &agent_top, &objects, &commit)).await?;
    Ok(MirrorLease {
        slot: paths.slot,
        root,
        mirror_top,
        workspace: workspace.given.clone(),
        workspace_top: repo.toplevel.clone(),
        prefix: repo.prefix.clone(),
        baseline: Baseline::Git {
            git_dir: paths.git_dir.clone(),
            excludes_file: repo.excludes_file.clone(),
            commit: head.to_owned(),
            synced,
        },
        _lock: lock,
    })
}

/// git on a slot's private repository, with the user's global excludes file (the private
/// repository reads no user config, but ignored files must stay ignored).
fn private_git(git_dir: &Path, work_tree: &Path, excludes_file: Option<&Path>) -> Git {
    let git = Git::private(git_dir, work_tree);
    match excludes_file {
        Some(file) => git.arg("-c").arg(prefixed("core.excludesFile=", file)),
        None => git,
    }
}

/// Make `paths.git_dir` the slot's private repository, reusing a valid one. Returns whether it
/// was reused. A mirror an older version made as a `git worktree` of the user's repository is
/// removed, and the user's worktree list pruned of it.
async fn ensure_private_repository(
    repo: &Repository,
    head: &str,
    paths: &SlotPaths,
) -> Result<bool, StagingError> {
    let objects = repo.objects();
    if paths.mirror.is_dir() && private_repository_matches(&paths.git_dir, &objects) {
        // We hold the slot, so no git process of ours runs here: a lock is a crash leftover.
        let index_lock = paths.git_dir.join("index.lock");
        if index_lock.exists() {
            tracing::info!(lock = %index_lock.display(), "removing a stale index lock in the mirror");
            fs::remove_file(&index_lock).map_err(io_error(&index_lock))?;
        }
        return Ok(true);
    }
    let legacy = is_legacy_worktree(paths);
    remove_slot_repository(paths).await?;
    if legacy {
        prune_worktrees(&repo.toplevel).await;
    }
    let (git_dir, mirror, head) = (paths.git_dir.clone(), paths.mirror.clone(), head.to_owned());
    blocking(move || {
        fs::create_dir_all(&mirror).map_err(io_error(&mirror))?;
        init_repository(&git_dir, &objects, &head)
    })
    .await?;
    Ok(false)
}

async fn remove_slot_repository(paths: &SlotPaths) -> Result<(), StagingError> {
    remove_dir_off_thread(paths.mirror.clone()).await?;
    remove_dir_off_thread(paths.git_dir.clone()).await
}

/// A mirror made by an older version: a worktree of the user's repository (`.git` is a file) and
/// no private repository. (An agent may leave a `.git` file in its mirror; that is no worktree.)
fn is_legacy_worktree(paths: &SlotPaths) -> bool {
    fs::symlink_metadata(paths.mirror.join(".git")).is_ok_and(|meta| meta.is_file())
        && fs::symlink_metadata(&paths.git_dir).is_err()
}

/// Forget worktrees whose directory is gone; a failure only leaves a stale entry behind.
async fn prune_worktrees(toplevel: &Path) {
    if let Err(err) = Git::new(toplevel).args(["worktree", "prune"]).run().await {
        tracing::warn!(%err, repository = %toplevel.display(), "cannot prune old staging worktrees");
    }
}

fn private_repository_matches(git_dir: &Path, objects: &Path) -> bool {
    git_dir.join("HEAD").is_file()
        && fs::read(git_dir.join("objects/info/alternates"))
            .is_ok_and(|alternates| alternates == alternates_line(objects))
}

fn alternates_line(objects: &Path) -> Vec<u8> {
    [objects.as_os_str().as_encoded_bytes(), b"\n"].concat()
}

/// A repository at `git_dir` with HEAD detached at `head`, no refs, no hooks, a minimal config,
/// and objects borrowed read-only from `objects` (git never writes to an alternate).
fn init_repository(git_dir: &Path, objects: &Path, head: &str) -> Result<(), StagingError> {
    if objects.as_os_str().as_encoded_bytes().contains(&b'\n') {
        return Err(StagingError::Io {
            path: objects.to_path_buf(),
            message: "a repository path with a line break cannot be borrowed from".into(),
        });
    }
    // A SHA-256 repository names its commits with 64 hex digits.
    let config: &[u8] = if head.len() == 64 {
        b"[core]\n\trepositoryformatversion = 1\n\tfilemode = true\n\tbare = false\n\
          \tlogallrefupdates = false\n[extensions]\n\tobjectformat = sha256\n"
    } else {
        b"[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\
          \tlogallrefupdates = false\n"
    };
    for dir in ["objects/info", "refs/heads", "refs/tags"] {
        let dir = git_dir.join(dir);
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    }
    let head = format!("{head}\n");
    let files: [(&str, &[u8]); 3] = [
        ("config", config),
        ("objects/info/alternates", &alternates_line(objects)),
        ("HEAD", head.as_bytes()),
    ];
    for (name, content) in files {
        let path = git_dir.join(name);
        fs::write(&path, content).map_err(io_error(&path))?;
    }
    Ok(())
}

/// The repository the agent sees in its mirror (`<mirror>/.git`): fresh on every sync, at the
/// synced commit with the private index, so whatever the agent did to it last run (config,
/// hooks, refs, a link to elsewhere) is gone. The server never runs git on it.
fn write_agent_repository(
    private_git_dir: &Path,
    mirror_top: &Path,
    objects: &Path,
    head: &str,
) -> Result<(), StagingError> {
    let git_dir = mirror_top.join(".git");
    remove_path(&git_dir)?;
    init_repository(&git_dir, objects, head)?;
    let index = private_git_dir.join("index");
    if index.is_file() {
        let target = git_dir.join("index");
        fs::copy(&index, &target).map_err(io_error(&target))?;
    }
    Ok(())
}

/// Reset the mirror to `head` and copy the workspace's dirty files in. Returns what was copied
/// (relative to the mirror top).
async fn sync_git_files(
    workspace: &Workspace,
    repo: &Repository,
    head: &str,
    paths: &SlotPaths,
    own_dir: &Path,
    reused: bool,
) -> Result<BTreeMap<PathBuf, State>, StagingError> {
    let excludes = repo.excludes_file.as_deref();
    let reset_mirror = async {
        // A fresh repository has an empty index: the reset checks out the whole tree.
        let timeout = if reused { GIT_TIMEOUT } else { CHECKOUT_TIMEOUT };
        private_git(&paths.git_dir, &paths.mirror, excludes)
            .args(["reset", "--quiet", "--hard", head])
            .timeout(timeout)
            .run()
            .await?;
        // No `-x`: ignored files (build output, installed dependencies) survive, so the next
        // run does not rebuild from scratch. They are never reported as changes, so they
        // cannot leak into an edit.
        private_git(&paths.git_dir, &paths.mirror, excludes).args(["clean", "-ffdq"]).run().await
    };
    let mut status = Git::new(&repo.toplevel).arg("--literal-pathspecs").args([
        "status",
        "--porcelain=v2",
        "-z",
        "--untracked-files=all",
        "--no-renames",
        "--",
    ]);
    if !repo.prefix.as_os_str().is_empty() {
        status = status.arg(&repo.prefix);
    }
    // Independent trees: both walks run at once.
    let (reset, status) = tokio::join!(reset_mirror, status.run());
    reset?;
    let dirty = parse_status(&status?);
    let source = repo.toplevel.clone();
    let target = paths.mirror.clone();
    let dirty: Vec<StatusEntry> =
        dirty.into_iter().filter(|entry| !source.join(&entry.path).starts_with(own_dir)).collect();
    let synced = blocking(move || copy_dirty_files(&source, &target, dirty)).await?;
    tracing::debug!(workspace = %workspace.given.display(), files = synced.len(), "dirty files copied");
    Ok(synced)
}

fn copy_dirty_files(
    source: &Path,
    target: &Path,
    dirty: Vec<StatusEntry>,
) -> Result<BTreeMap<PathBuf, State>, StagingError> {
    let mut copies = Vec::new();
    let mut synced = BTreeMap::new();
    for entry in dirty {
        if entry.submodule {
            tracing::info!(path = %entry.path.display(), "skipping a submodule in the staging mirror");
            continue;
        }
        let from = source.join(&entry.path);
        match fs::symlink_metadata(&from) {
            Ok(meta) if meta.is_file() || meta.file_type().is_symlink() => {
                copies.push(entry.path);
            }
            Ok(meta) if meta.is_dir() => {
                // A file replaced by a directory: its files are listed on their own.
                remove_non_directory(&target.join(&entry.path))?;
                synced.insert(entry.path, State::Absent);
            }
            Ok(_) => tracing::info!(path = %from.display(), "skipping a special file"),
            Err(err) if is_absent(&err) => {
                remove_path(&target.join(&entry.path))?;
                synced.insert(entry.path, State::Absent);
            }
            Err(err) => return Err(io_error(&from)(err)),
        }
    }
    // Deletions first: a deleted file may have become the directory of a new one.
    for rel in copies {
        let state = copy_entry(&source.join(&rel), target, &rel)?;
        synced.insert(rel, state);
    }
    Ok(synced)
}

/// Copy one file or symbolic link to `target/rel`, returning what was written.
fn copy_entry(from: &Path, target: &Path, rel: &Path) -> Result<State, StagingError> {
    let meta = fs::symlink_metadata(from).map_err(io_error(from))?;
    let to = target.join(rel);
    prepare_destination(target, rel)?;
    if meta.file_type().is_symlink() {
        let link = fs::read_link(from).map_err(io_error(from))?;
        symlink(&link, &to).map_err(io_error(&to))?;
        return Ok(State::Symlink(link));
    }
    let bytes = fs::read(from).map_err(io_error(from))?;
    fs::write(&to, &bytes).map_err(io_error(&to))?;
    fs::set_permissions(&to, meta.permissions()).map_err(io_error(&to))?;
    Ok(State::from_bytes(bytes))
}

/// Write an unsaved buffer over `root/rel`, keeping the file's permissions.
fn write_text(root: &Path, rel: &Path, text: &str) -> Result<(), StagingError> {
    let path = root.join(rel);
    let permissions = fs::symlink_metadata(&path)
        .ok()
        .filter(|meta| meta.is_file())
        .map(|meta| meta.permissions());
    prepare_destination(root, rel)?;
    fs::write(&path, text).map_err(io_error(&path))?;
    if let Some(permissions) = permissions {
        fs::set_permissions(&path, permissions).map_err(io_error(&path))?;
    }
    Ok(())
}

/// Overlays inside the workspace, as (path relative to the workspace, text).
fn resolve_overlays<'a>(
    workspace: &Workspace,
    overlays: &'a [(PathBuf, String)],
) -> Vec<(PathBuf, &'a str)> {
    overlays
        .iter()
        .filter_map(|(path, text)| match workspace.relative(path) {
            Some(rel) if !is_git_metadata(&rel) => Some((rel, text.as_str())),
            _ => {
                tracing::debug!(path = %path.display(), "overlay outside the workspace skipped");
                None
            }
        })
        .collect()
}

struct StatusEntry {
    path: PathBuf,
    submodule: bool,
}

/// `git status --porcelain=v2 -z` → the paths that differ from HEAD (both sides of a rename).
fn parse_status(output: &[u8]) -> Vec<StatusEntry> {
    let mut entries = Vec::new();
    let mut records = output.split(|byte| *byte == 0).filter(|record| !record.is_empty());
    while let Some(record) = records.next() {
        // Fields before the path: `1` ordinary (8), `2` rename/copy (9, then the original
        // path as the next record), `u` unmerged (10), `?` untracked (1).
        let (fields_before_path, has_origin) = match record.first() {
            Some(b'1') => (8, false),
            Some(b'2') => (9, true),
            Some(b'u') => (10, false),
            Some(b'?') => (1, false),
            _ => continue,
        };
        let mut parts = record.splitn(fields_before_path + 1, |byte| *byte == b' ');
        let fields: Vec<&[u8]> = parts.by_ref().take(fields_before_path).collect();
        let Some(path) = parts.next() else { continue };
        let submodule = fields.get(2).is_some_and(|sub| sub.first() == Some(&b'S'))
            || (record.first() == Some(&b'?') && path.ends_with(b"/"));
        entries.push(StatusEntry { path: bytes_to_path(path), submodule });
        if has_origin && let Some(origin) = records.next() {
            entries.push(StatusEntry { path: bytes_to_path(origin), submodule });
        }
    }
    entries
}

struct RawDiffEntry {
    path: PathBuf,
    head_mode: String,
    head_oid: String,
}

/// `git diff --raw -z` → one entry per path, with the mode and object on the commit side.
fn parse_raw_diff(output: &[u8]) -> Vec<RawDiffEntry> {
    let mut entries = Vec::new();
    let mut records = output.split(|byte| *byte == 0);
    while let Some(header) = records.next() {
        let Some(header) = header.strip_prefix(b":") else { continue };
        let header = String::from_utf8_lossy(header);
        let fields: Vec<&str> = header.split(' ').collect();
        let [head_mode, _, head_oid, _, status] = fields.as_slice() else { continue };
        let paths = if status.starts_with(['R', 'C']) { 2 } else { 1 };
        for _ in 0..paths {
            let Some(path) = records.next() else { break };
            entries.push(RawDiffEntry {
                path: bytes_to_path(path),
                head_mode: (*head_mode).to_owned(),
                head_oid: (*head_oid).to_owned(),
            });
        }
    }
    entries
}

/// Read blobs by object name with one `git cat-file --batch`.
async fn read_blobs(
    git: Git,
    oids: BTreeSet<&str>,
) -> Result<HashMap<String, Vec<u8>>, StagingError> {
    if oids.is_empty() {
        return Ok(HashMap::new());
    }
    let input: Vec<u8> = oids.iter().flat_map(|oid| [oid.as_bytes(), b"\n"].concat()).collect();
    let output = git.args(["cat-file", "--batch"]).run_with_input(input).await?;
    let malformed = || StagingError::Git {
        command: "git cat-file --batch".into(),
        stderr: "unexpected output".into(),
    };
    let mut blobs = HashMap::new();
    let mut rest = output.as_slice();
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).ok_or_else(malformed)?;
        let header = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end + 1..];
        let fields: Vec<&str> = header.split(' ').collect();
        let [oid, _kind, size] = fields.as_slice() else {
            return Err(StagingError::Git {
                command: "git cat-file --batch".into(),
                stderr: format!("cannot read object: {header}"),
            });
        };
        let size: usize = size.parse().map_err(|_| malformed())?;
        let content = rest.get(..size).ok_or_else(malformed)?;
        blobs.insert((*oid).to_owned(), content.to_vec());
        rest = rest.get(size + 1..).unwrap_or_default();
    }
    Ok(blobs)
}

fn split_nul(output: &[u8]) -> impl Iterator<Item = PathBuf> + '_ {
    output.split(|byte| *byte == 0).filter(|path| !path.is_empty()).map(bytes_to_path)
}

fn bytes_to_path(bytes: &[u8]) -> PathBuf {
    platform::path_from_bytes(bytes.to_vec())
}

// ---------------------------------------------------------------------------------------------
// Copy mirrors

async fn sync_copy(
    workspace: &Workspace,
    paths: &SlotPaths,
    own_dir: &Path,
    overlays: &[(PathBuf, String)],
    settings: &StagingSettings,
    lock: SlotLock,
) -> Result<MirrorLease, StagingError> {
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
    Ok(MirrorLease {
        slot: paths.slot,
        mirror_top: root.clone(),
        root,
        workspace: workspace.given.clone(),
        workspace_top: workspace.canonical.clone(),
        prefix: PathBuf::new(),
        baseline: Baseline::Copy {
            base_dir: paths.base.clone(),
            manifest,
            overlays: written,
            ignore,
        },
        _lock: lock,
    })
}

/// An empty repository to evaluate `.gitignore` rules in the mirror, created on first use.
async fn private_ignore_rules(git_dir: &Path) -> IgnoreRules {
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
async fn ignored_paths(
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

/// A file or symbolic link as the quick check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File { len: u64, modified: Option<SystemTime>, mode: u32 },
    Symlink(PathBuf),
}

/// The entry at `path`, or `None` for a directory or special file.
fn entry_of(path: &Path) -> io::Result<Option<Entry>> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(Some(Entry::Symlink(fs::read_link(path)?)));
    }
    if meta.is_file() {
        let mode = platform::file_mode(&meta);
        return Ok(Some(Entry::File { len: meta.len(), modified: meta.modified().ok(), mode }));
    }
    Ok(None)
}

/// Counts what a copy would take, failing as soon as a cap is passed.
struct CopyBudget<'a> {
    settings: Option<&'a StagingSettings>,
    files: usize,
    bytes: u64,
}

impl CopyBudget<'_> {
    fn charge(&mut self, entry: &Entry) -> Result<(), StagingError> {
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
fn walk(
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
fn list_files(
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
fn sync_tree(
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
fn copy_preserving_mtime(
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

// ---------------------------------------------------------------------------------------------
// File system helpers

/// Make room for a new file at `root/rel`: every directory on the way exists as a real
/// directory (a file or link in the way is removed: writing through a link could leave the
/// mirror), and nothing is left at `rel` itself.
fn prepare_destination(root: &Path, rel: &Path) -> Result<(), StagingError> {
    let mut dir = root.to_path_buf();
    let mut components = rel.components().peekable();
    while let Some(component) = components.next() {
        dir.push(component);
        if components.peek().is_none() {
            return remove_path(&dir);
        }
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => remove_path(&dir)?,
            Err(err) if is_absent(&err) => {}
            Err(err) => return Err(io_error(&dir)(err)),
        }
        fs::create_dir(&dir).map_err(io_error(&dir))?;
    }
    Ok(())
}

/// Remove whatever is at `path` (file, link or directory tree); absent is fine.
fn remove_path(path: &Path) -> Result<(), StagingError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => force_remove_dir(path),
        Ok(_) => remove_file_forcing(path),
        Err(err) if is_absent(&err) => Ok(()),
        Err(err) => Err(io_error(path)(err)),
    }
}

/// Remove a file or link at `path`, leaving a directory alone.
fn remove_non_directory(path: &Path) -> Result<(), StagingError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => remove_file_forcing(path),
        Err(err) if is_absent(&err) => Ok(()),
        Err(err) => Err(io_error(path)(err)),
    }
}

fn remove_file_forcing(path: &Path) -> Result<(), StagingError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            // A run may leave read-only directories behind (e.g. a Go module cache).
            if let Some(parent) = path.parent() {
                make_writable(parent);
            }
            fs::remove_file(path).map_err(io_error(path))
        }
        Err(err) if is_absent(&err) => Ok(()),
        Err(err) => Err(io_error(path)(err)),
    }
}

/// `remove_dir_all`, also through read-only directories. Never follows symbolic links.
fn force_remove_dir(path: &Path) -> Result<(), StagingError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if is_absent(&err) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            make_tree_writable(path);
            fs::remove_dir_all(path).map_err(io_error(path))
        }
        Err(err) => Err(io_error(path)(err)),
    }
}

fn make_writable(dir: &Path) {
    if let Ok(meta) = fs::symlink_metadata(dir)
        && meta.is_dir()
    {
        platform::make_dir_writable(dir, &meta);
    }
}

fn make_tree_writable(root: &Path) {
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        make_writable(&dir);
        let Ok(listing) = fs::read_dir(&dir) else { continue };
        for item in listing.flatten() {
            if item.file_type().is_ok_and(|file_type| file_type.is_dir()) {
                pending.push(item.path());
            }
        }
    }
}

/// `path` relative to the first of `roots` it lies in, with names compared as `style` compares
/// them: on Windows `C:\ws`, `c:/WS` and the `\\?\C:\ws` that `canonicalize` gives are one
/// directory, so a path the CLI or the editor spells one way maps onto a root spelled the other.
fn relative_to_first(style: PathStyle, path: &Path, roots: &[&Path]) -> Option<PathBuf> {
    roots.iter().find_map(|root| style.strip_root(path, root, false))
}

/// Lexically resolve `.` and `..` (no file system access). `None` if `..` climbs above the
/// root or the path is relative.
fn normalize_absolute(path: &Path) -> Option<PathBuf> {
    paths::normalize(path).filter(|normal| normal.is_absolute())
}

fn absolute_normalized(path: &Path) -> Result<PathBuf, StagingError> {
    let absolute = std::path::absolute(path).map_err(io_error(path))?;
    normalize_absolute(&absolute).ok_or(StagingError::NotADirectory { path: absolute })
}

/// Replace every mention of the path `from` in `text` by `to`, where the mention ends at a
/// path boundary (so `/m/1` does not rewrite `/m/10`).
fn replace_path_mentions(text: &str, from: &Path, to: &Path) -> String {
    let (Some(from), Some(to)) = (from.to_str(), to.to_str()) else {
        return text.to_owned();
    };
    // A trailing slash would make the next path component look like a longer file name.
    let (from, to) = (from.trim_end_matches('/'), to.trim_end_matches('/'));
    if from.is_empty() {
        return text.to_owned();
    }
    let mut mapped = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let after = &rest[at + from.len()..];
        let continues_name = continues_file_name(after);
        mapped.push_str(&rest[..at]);
        mapped.push_str(if continues_name { from } else { to });
        rest = after;
    }
    mapped.push_str(rest);
    mapped
}

/// Whether `rest` goes on with the same file name: `1` in `/m/10`, `.lock` in `/m/1.lock`, but
/// not the full stop in "written to /m/1."
fn continues_file_name(rest: &str) -> bool {
    let is_name_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let mut chars = rest.chars();
    match chars.next() {
        Some('.') => chars.next().is_some_and(|c| is_name_char(c) || c == '.'),
        Some(c) => is_name_char(c),
        None => false,
    }
}

/// Remove a directory tree that may be large (a whole mirror) without stalling the runtime.
async fn remove_dir_off_thread(path: PathBuf) -> Result<(), StagingError> {
    blocking(move || force_remove_dir(&path)).await
}

async fn blocking<T, F>(work: F) -> Result<T, StagingError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StagingError> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|err| StagingError::Io {
        path: PathBuf::new(),
        message: format!("staging file work did not finish: {err}"),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn path_mentions_map_whether_or_not_the_root_ends_in_a_slash() {
        let text = "updated /c/m/0/src/lib.rs; see /c/m/01/x and /c/m/0.";
        for from in ["/c/m/0", "/c/m/0/"] {
            assert_eq!(
                replace_path_mentions(text, Path::new(from), Path::new("/ws")),
                "updated /ws/src/lib.rs; see /c/m/01/x and /ws."
            );
        }
    }

    #[test]
    fn status_parsing_keeps_spaces_and_flags_submodules() {
        let output = b"1 .M N... 100644 100644 100644 aa bb dir/a file.txt\0\
            1 .M SC.. 160000 160000 160000 cc dd vendor/sub\0\
            2 R. N... 100644 100644 100644 ee ff R100 new name\0old name\0\
            u UU N... 100644 100644 100644 100644 a1 a2 a3 conflict.rs\0\
            ? caf\xc3\xa9 \xe2\x98\x83.md\0? nested/\0";
        let entries = parse_status(output);
        let paths: Vec<(String, bool)> = entries
            .iter()
            .map(|entry| (entry.path.to_string_lossy().into_owned(), entry.submodule))
            .collect();
        assert_eq!(
            paths,
            [
                ("dir/a file.txt".to_owned(), false),
                ("vendor/sub".to_owned(), true),
                ("new name".to_owned(), false),
                ("old name".to_owned(), false),
                ("conflict.rs".to_owned(), false),
                ("café ☃.md".to_owned(), false),
                ("nested/".to_owned(), true),
            ]
        );
    }

    #[test]
    fn raw_diff_parsing_reads_the_commit_side() {
        let output =
            b":100644 000000 1111 0000 D\0gone.txt\0:000000 100644 0000 0000 A\0new\nline\0";
        let entries = parse_raw_diff(output);
        let summary: Vec<(String, String, String)> = entries
            .iter()
            .map(|e| {
                (e.path.to_string_lossy().into_owned(), e.head_mode.clone(), e.head_oid.clone())
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("gone.txt".to_owned(), "100644".to_owned(), "1111".to_owned()),
                ("new\nline".to_owned(), "000000".to_owned(), "0000".to_owned()),
            ]
        );
    }

    #[test]
    fn path_mentions_are_replaced_only_at_boundaries() {
        let text = "/m/1/src/a.rs, /m/10/b.rs and `/m/1`. /m/1-x, /m/1.lock stay; cwd /m/1.";
        let mapped = replace_path_mentions(text, Path::new("/m/1"), Path::new("/home/u/p"));
        let expected = "/home/u/p/src/a.rs, /m/10/b.rs and `/home/u/p`. /m/1-x, /m/1.lock stay; \
                        cwd /home/u/p.";
        assert_eq!(mapped, expected);
    }

    #[test]
    fn windows_paths_map_onto_roots_spelled_another_way() {
        let windows = |path: &str, roots: &[&str]| {
            let roots: Vec<&Path> = roots.iter().map(Path::new).collect();
            relative_to_first(PathStyle::Windows, Path::new(path), &roots)
        };
        // The editor's path (from `file:///c%3A/…`) against the canonical workspace root.
        let workspace = [r"\\?\C:\Users\me\ws", r"C:\Users\me\ws"];
        assert_eq!(
            windows(r"c:\users\ME\ws\src\a.rs", &workspace),
            Some(PathBuf::from(r"src\a.rs"))
        );
        assert_eq!(
            windows(r"C:/Users/me/ws/src/a.rs", &workspace),
            Some(PathBuf::from(r"src\a.rs"))
        );
        assert_eq!(windows(r"C:\Users\me\ws", &workspace), Some(PathBuf::new()));
        assert_eq!(windows(r"C:\Users\me\ws2\a.rs", &workspace), None);
        assert_eq!(windows(r"D:\Users\me\ws\a.rs", &workspace), None);
        // A path the CLI prints in the mirror (no `\\?\`) against the canonical mirror root.
        let mirror = [r"\\?\C:\Users\me\AppData\Local\claude-lsp\m\1"];
        let printed = r"C:\Users\me\AppData\Local\claude-lsp\m\1\src\a.rs";
        assert_eq!(windows(printed, &mirror), Some(PathBuf::from(r"src\a.rs")));
        // A symbolic link's target on another share stays outside.
        assert_eq!(windows(r"\\server\share\a.rs", &mirror), None);
        // On Linux the same names are exact bytes.
        let posix = relative_to_first(PathStyle::Posix, Path::new("/WS/a"), &[Path::new("/ws")]);
        assert_eq!(posix, None);
    }

    #[test]
    fn normalize_refuses_to_climb_above_the_root() {
        assert_eq!(normalize_absolute(Path::new("/a/b/../c/./d")), Some(PathBuf::from("/a/c/d")));
        assert_eq!(normalize_absolute(Path::new("/a/../..")), None);
        assert_eq!(normalize_absolute(Path::new("relative")), None);
    }

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

    #[test]
    fn stale_locks_are_taken_over_and_live_ones_respected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.lock");
        let held = SlotLock::try_take(path.clone()).unwrap().unwrap();
        assert!(SlotLock::try_take(path.clone()).unwrap().is_none(), "a live lock was stolen");
        drop(held);
        assert!(!path.exists());
        // A pid that cannot be running: the maximum pid on Linux is below 2^22.
        fs::write(&path, "4194305 1\n").unwrap();
        assert!(SlotLock::try_take(path.clone()).unwrap().is_some());
    }

    #[test]
    fn too_large_names_the_limit_and_the_setting() {
        let err = StagingError::TooLarge {
            bytes: 300 * MIB,
            files: 10,
            limit_bytes: 200 * MIB,
            limit_files: 20_000,
        };
        let message = err.to_string();
        assert!(message.contains("200 MB") && message.contains("stagingMaxCopyMb"), "{message}");
        let err = StagingError::TooLarge {
            bytes: 1,
            files: 20_001,
            limit_bytes: 200 * MIB,
            limit_files: 20_000,
        };
        assert!(err.to_string().contains("20000 files"), "{err}");
    }
}
