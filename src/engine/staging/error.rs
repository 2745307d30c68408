//! What can go wrong while staging, and the helpers that turn I/O failures into it.

use std::io;
use std::path::{Path, PathBuf};

use crate::base::git::GitError;

pub(super) const MIB: u64 = 1024 * 1024;

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

pub(super) fn too_large_message(
    bytes: u64,
    files: usize,
    limit_bytes: u64,
    limit_files: usize,
) -> String {
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

pub(super) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StagingError + '_ {
    move |err| StagingError::Io { path: path.to_path_buf(), message: err.to_string() }
}

pub(super) async fn blocking<T, F>(work: F) -> Result<T, StagingError>
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
