//! Git mirrors: a private repository per slot, borrowing the user's objects read-only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::base::git::{Git, prefixed};
use crate::base::platform::{self};

use super::error::{StagingError, blocking, io_error};
use super::files::*;
use super::slots::SlotPaths;
use super::workspace::{Repository, Synced, Workspace, resolve_overlays};

/// What a git mirror held right after the sync; its changes are measured against it.
#[derive(Debug)]
pub(super) struct GitBaseline {
    /// The slot's private repository; the mirror top is its work tree.
    git_dir: PathBuf,
    excludes_file: Option<PathBuf>,
    commit: String,
    /// Files the sync wrote over the commit (dirty workspace files, overlays), keyed by path
    /// relative to the mirror top.
    synced: BTreeMap<PathBuf, State>,
}

/// Budget for one ordinary git call (status, reset, diff, …).
pub(super) const GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Budget for the first checkout of a mirror, which writes the whole tree.
pub(super) const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(600);

pub(super) async fn sync_git(
    workspace: &Workspace,
    repo: &Repository,
    head: &str,
    paths: &SlotPaths,
    own_dir: &Path,
    overlays: &[(PathBuf, String)],
) -> Result<Synced<GitBaseline>, StagingError> {
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
    Ok(Synced {
        root,
        mirror_top,
        workspace_top: repo.toplevel.clone(),
        prefix: repo.prefix.clone(),
        baseline: GitBaseline {
            git_dir: paths.git_dir.clone(),
            excludes_file: repo.excludes_file.clone(),
            commit: head.to_owned(),
            synced,
        },
    })
}

/// git on a slot's private repository, with the user's global excludes file (the private
/// repository reads no user config, but ignored files must stay ignored).
pub(super) fn private_git(git_dir: &Path, work_tree: &Path, excludes_file: Option<&Path>) -> Git {
    let git = Git::private(git_dir, work_tree);
    match excludes_file {
        Some(file) => git.arg("-c").arg(prefixed("core.excludesFile=", file)),
        None => git,
    }
}

/// Make `paths.git_dir` the slot's private repository, reusing a valid one. Returns whether it
/// was reused. A mirror an older version made as a `git worktree` of the user's repository is
/// removed, and the user's worktree list pruned of it.
pub(super) async fn ensure_private_repository(
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

pub(super) async fn remove_slot_repository(paths: &SlotPaths) -> Result<(), StagingError> {
    remove_dir_off_thread(paths.mirror.clone()).await?;
    remove_dir_off_thread(paths.git_dir.clone()).await
}

/// A mirror made by an older version: a worktree of the user's repository (`.git` is a file) and
/// no private repository. (An agent may leave a `.git` file in its mirror; that is no worktree.)
pub(super) fn is_legacy_worktree(paths: &SlotPaths) -> bool {
    fs::symlink_metadata(paths.mirror.join(".git")).is_ok_and(|meta| meta.is_file())
        && fs::symlink_metadata(&paths.git_dir).is_err()
}

/// Forget worktrees whose directory is gone; a failure only leaves a stale entry behind.
pub(super) async fn prune_worktrees(toplevel: &Path) {
    if let Err(err) = Git::new(toplevel).args(["worktree", "prune"]).run().await {
        tracing::warn!(%err, repository = %toplevel.display(), "cannot prune old staging worktrees");
    }
}

pub(super) fn private_repository_matches(git_dir: &Path, objects: &Path) -> bool {
    git_dir.join("HEAD").is_file()
        && fs::read(git_dir.join("objects/info/alternates"))
            .is_ok_and(|alternates| alternates == alternates_line(objects))
}

pub(super) fn alternates_line(objects: &Path) -> Vec<u8> {
    [objects.as_os_str().as_encoded_bytes(), b"\n"].concat()
}

/// A repository at `git_dir` with HEAD detached at `head`, no refs, no hooks, a minimal config,
/// and objects borrowed read-only from `objects` (git never writes to an alternate).
pub(super) fn init_repository(
    git_dir: &Path,
    objects: &Path,
    head: &str,
) -> Result<(), StagingError> {
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
pub(super) fn write_agent_repository(
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
pub(super) async fn sync_git_files(
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

pub(super) fn copy_dirty_files(
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

pub(super) struct StatusEntry {
    pub(super) path: PathBuf,
    pub(super) submodule: bool,
}

/// `git status --porcelain=v2 -z` → the paths that differ from HEAD (both sides of a rename).
pub(super) fn parse_status(output: &[u8]) -> Vec<StatusEntry> {
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

pub(super) struct RawDiffEntry {
    pub(super) path: PathBuf,
    pub(super) head_mode: String,
    pub(super) head_oid: String,
}

/// `git diff --raw -z` → one entry per path, with the mode and object on the commit side.
pub(super) fn parse_raw_diff(output: &[u8]) -> Vec<RawDiffEntry> {
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
pub(super) async fn read_blobs(
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

pub(super) fn split_nul(output: &[u8]) -> impl Iterator<Item = PathBuf> + '_ {
    output.split(|byte| *byte == 0).filter(|path| !path.is_empty()).map(bytes_to_path)
}

pub(super) fn bytes_to_path(bytes: &[u8]) -> PathBuf {
    platform::path_from_bytes(bytes.to_vec())
}

/// Compare each path's baseline with the mirror (`rel` relative to `mirror_top`); blob
/// baselines are looked up in `blobs`.
pub(super) fn diff_against(
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
pub(super) enum Before {
    Known(State),
    Blob { oid: String, symlink: bool },
}

/// The paths of a git mirror that differ from its baseline, each with its state before (from
/// the commit or what the sync wrote) and now.
pub(super) async fn git_diffs(
    mirror_top: &Path,
    baseline: &GitBaseline,
) -> Result<Vec<(PathBuf, State, State)>, StagingError> {
    let GitBaseline { git_dir, excludes_file, commit, synced } = baseline;
    let git = || private_git(git_dir, mirror_top, excludes_file.as_deref());
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

    let mirror_top = mirror_top.to_path_buf();
    blocking(move || diff_against(&mirror_top, before_of, &blobs)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

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
}
