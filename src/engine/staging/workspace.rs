//! The workspace being mirrored: its paths as given and as resolved, its git repository, and
//! where a freshly synced mirror lies.

use std::fs;
use std::path::{Path, PathBuf};

use crate::base::git::{Git, GitError};
use crate::base::path_style::PathStyle;
use crate::base::platform::{self};

use super::error::{StagingError, io_error};
use super::files::{absolute_normalized, is_git_metadata, normalize_absolute, relative_to_first};

/// The workspace as the caller named it and as the file system resolves it.
pub(super) struct Workspace {
    /// Absolute, lexically normalized: the prefix of every path reported to the caller.
    pub(super) given: PathBuf,
    pub(super) canonical: PathBuf,
    pub(super) repo: Option<Repository>,
}

pub(super) struct Repository {
    /// Canonical top directory of the working tree that contains the workspace.
    pub(super) toplevel: PathBuf,
    /// The workspace relative to `toplevel` (empty when the workspace is the top).
    pub(super) prefix: PathBuf,
    pub(super) common_dir: PathBuf,
    /// `None` in a repository without commits.
    pub(super) head: Option<String>,
    /// The user's `core.excludesFile`, when set to an absolute path.
    pub(super) excludes_file: Option<PathBuf>,
}

impl Repository {
    /// The object database mirrors borrow from.
    pub(super) fn objects(&self) -> PathBuf {
        self.common_dir.join("objects")
    }
}

impl Workspace {
    pub(super) async fn resolve(path: &Path) -> Result<Self, StagingError> {
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
    pub(super) fn relative(&self, path: &Path) -> Option<PathBuf> {
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
pub(super) async fn find_repository(dir: &Path) -> Result<Option<Repository>, StagingError> {
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
pub(super) async fn excludes_file(dir: &Path) -> Result<Option<PathBuf>, GitError> {
    let (code, stdout) =
        Git::new(dir).args(["config", "--path", "--get", "core.excludesFile"]).run_status().await?;
    let file = platform::path_from_bytes(stdout.strip_suffix(b"\n").unwrap_or(&stdout).to_vec());
    Ok((code == 0 && file.is_absolute()).then_some(file))
}

/// Overlays inside the workspace, as (path relative to the workspace, text).
pub(super) fn resolve_overlays<'a>(
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

/// Where a freshly synced mirror lies, and what it held (`B`: the git or copy baseline).
pub(super) struct Synced<B> {
    /// Canonical working directory of the mirror: where the CLI runs.
    pub(super) root: PathBuf,
    /// The mirror's counterpart of `workspace_top` (the worktree top in git mode).
    pub(super) mirror_top: PathBuf,
    pub(super) workspace_top: PathBuf,
    /// `root` relative to `mirror_top`.
    pub(super) prefix: PathBuf,
    pub(super) baseline: B,
}

impl<B> Synced<B> {
    pub(super) fn map<C>(self, into: impl FnOnce(B) -> C) -> Synced<C> {
        let Synced { root, mirror_top, workspace_top, prefix, baseline } = self;
        Synced { root, mirror_top, workspace_top, prefix, baseline: into(baseline) }
    }
}
