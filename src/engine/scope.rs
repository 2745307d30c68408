//! The files of a folder or workspace scope: git's list where the workspace is in a repository
//! (tracked files and untracked ones `.gitignore` does not exclude), else a bounded walk that
//! skips hidden and dependency folders.

use std::path::{Path, PathBuf};

use crate::base::error::ServerError;
use crate::base::git::Git;
use crate::model::scope::{ScopeFiles, relative_path};

/// A walk without git stops after this many files.
const MAX_WALKED_FILES: usize = 20_000;
/// Folders a walk without git skips besides hidden ones: dependencies and build output.
const SKIPPED_FOLDERS: [&str; 4] = ["node_modules", "target", "vendor", "__pycache__"];

/// The files under `directory` (workspace-relative; `None`: the whole workspace).
pub async fn files_in_scope(
    workspace: &Path,
    directory: Option<&str>,
    include_tests: bool,
) -> Result<ScopeFiles, ServerError> {
    let root = directory.map_or_else(|| workspace.to_path_buf(), |dir| workspace.join(dir));
    if !root.is_dir() {
        return Err(ServerError::file_access(format!("{} is not a folder", root.display())));
    }
    let listed = Git::new(workspace)
        .args(["ls-files", "--cached", "--others", "--exclude-standard", "-z", "--"])
        .arg(root.as_os_str())
        .run()
        .await;
    let workspace = workspace.to_path_buf();
    let directory = directory.map(str::to_owned);
    let files = tokio::task::spawn_blocking(move || match listed {
        Ok(output) => {
            // Relative to the workspace (git's working directory); deleted tracked files and
            // submodules are not files to read.
            let files = String::from_utf8_lossy(&output)
                .split('\0')
                .filter(|name| !name.is_empty() && workspace.join(name).is_file())
                .map(|name| name.to_owned())
                .collect::<Vec<_>>();
            ScopeFiles::new(directory, files, include_tests, true)
        }
        Err(err) => {
            tracing::debug!(%err, "no git list of the scope: walking the folder");
            ScopeFiles::new(directory, walk(&workspace, &root), include_tests, false)
        }
    })
    .await
    .map_err(|err| ServerError::internal(format!("listing the files failed: {err}")))?;
    Ok(files)
}

/// Every file under `root` (not following links), workspace-relative, skipping hidden and
/// dependency folders, at most [`MAX_WALKED_FILES`].
fn walk(workspace: &Path, root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(kind) = entry.file_type() else { continue };
            if name.starts_with('.') {
                continue;
            }
            if kind.is_dir() {
                if !SKIPPED_FOLDERS.contains(&name.as_ref()) {
                    pending.push(entry.path());
                }
            } else if kind.is_file() {
                files.extend(relative_path(workspace, &entry.path()));
                if files.len() >= MAX_WALKED_FILES {
                    return files;
                }
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn write(root: &Path, files: &[&str]) {
        for file in files {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x\n").unwrap();
        }
    }

    async fn git(dir: &Path, args: &[&str]) {
        Git::new(dir).args(args.iter().copied()).run().await.unwrap();
    }

    #[tokio::test]
    async fn git_lists_tracked_and_untracked_files_and_respects_gitignore() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        write(&root, &["src/a.rs", "src/b.rs", "src/gen/out.rs", "tests/t.rs", "README.md"]);
        std::fs::write(root.join(".gitignore"), "src/gen/\n").unwrap();
        git(&root, &["init", "-q"]).await;
        git(&root, &["add", "src/a.rs"]).await;
        let scope = files_in_scope(&root, Some("src"), false).await.unwrap();
        assert!(scope.from_git);
        assert_eq!(scope.listed, ["src/a.rs", "src/b.rs"]);
        let everything = files_in_scope(&root, None, true).await.unwrap();
        assert_eq!(
            everything.listed,
            [".gitignore", "README.md", "src/a.rs", "src/b.rs", "tests/t.rs"]
        );
        let without_tests = files_in_scope(&root, None, false).await.unwrap();
        assert_eq!(without_tests.tests_left_out, 1);
    }

    #[tokio::test]
    async fn without_git_the_walk_skips_hidden_and_dependency_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        write(&root, &["a.py", "pkg/b.py", ".venv/x.py", "node_modules/m/i.js", "pkg/.hidden"]);
        let scope = files_in_scope(&root, None, true).await.unwrap();
        assert!(!scope.from_git);
        assert_eq!(scope.listed, ["a.py", "pkg/b.py"]);
        let missing = files_in_scope(&root, Some("nope"), true).await.unwrap_err();
        assert!(missing.message.contains("is not a folder"), "{}", missing.message);
    }
}
