//! Paths as prompts show them: relative to the workspace, inside it, `/`-separated.

use std::path::{Path, PathBuf};

use super::context::PromptError;
use super::options::{ActionOptions, ReviewScope};
use crate::base::paths::normalize;

/// The file's path relative to the workspace root, both taken lexically (`.` and `..` resolved).
pub(super) fn relative_to_workspace(root: &Path, file: &Path) -> Result<PathBuf, PromptError> {
    for path in [root, file] {
        if !path.is_absolute() {
            return Err(PromptError::RelativePath { path: path.to_path_buf() });
        }
    }
    let outside = || PromptError::OutsideWorkspace {
        file: file.to_path_buf(),
        workspace: root.to_path_buf(),
    };
    let (Some(root_normal), Some(file_normal)) = (normalize(root), normalize(file)) else {
        return Err(outside());
    };
    match file_normal.strip_prefix(&root_normal) {
        Ok(relative) if relative.as_os_str().is_empty() => Err(outside()),
        Ok(relative) => Ok(relative.to_path_buf()),
        Err(_) => Err(outside()),
    }
}

/// A path as shown in prompts: `/`-separated.
pub(super) fn display_path(path: &Path) -> String {
    path.components()
        .map(|component| component.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// A `directory` option (generate's new files, a folder scope): relative, inside the workspace,
/// `/`-separated; `None` for the root.
pub(super) fn workspace_directory(directory: &str) -> Result<Option<String>, PromptError> {
    let invalid =
        |reason| PromptError::InvalidDirectory { directory: directory.to_owned(), reason };
    let path = Path::new(directory.trim());
    if path.has_root() {
        return Err(invalid("must be relative to the workspace root"));
    }
    let normal = normalize(path).ok_or_else(|| invalid("must stay inside the workspace"))?;
    let shown = display_path(&normal);
    Ok((!shown.is_empty()).then_some(shown))
}

/// The folder a `scope` looks at, workspace-relative (`None`: the whole workspace). A folder
/// scope takes the `directory` option, else the target when it is a folder, else the target's
/// folder; any other scope has none.
pub fn scope_directory(
    options: &ActionOptions,
    workspace: &Path,
    target: &Path,
    target_is_dir: bool,
) -> Result<Option<String>, PromptError> {
    if options.review.scope != Some(ReviewScope::Folder) {
        return Ok(None);
    }
    if let Some(directory) = &options.generate.directory {
        return workspace_directory(directory);
    }
    let folder = if target_is_dir { target } else { target.parent().unwrap_or(target) };
    match relative_to_workspace(workspace, folder) {
        Ok(relative) => Ok(Some(display_path(&relative))),
        // The target's folder is the workspace root.
        Err(PromptError::OutsideWorkspace { .. }) if normalize(folder) == normalize(workspace) => {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "/home/u/proj";
    const FILE: &str = "/home/u/proj/src/lib.rs";

    #[test]
    fn a_folder_scope_defaults_to_the_targets_folder() {
        let root = Path::new(ROOT);
        let mut options = ActionOptions::default();
        let folder = |options: &ActionOptions, target: &str, is_dir| {
            scope_directory(options, root, Path::new(target), is_dir)
        };
        assert_eq!(folder(&options, FILE, false), Ok(None), "no folder scope");
        options.review.scope = Some(ReviewScope::Folder);
        assert_eq!(folder(&options, FILE, false), Ok(Some("src".into())));
        assert_eq!(folder(&options, "/home/u/proj/src/a", true), Ok(Some("src/a".into())));
        assert_eq!(folder(&options, "/home/u/proj/top.rs", false), Ok(None));
        assert_eq!(folder(&options, ROOT, true), Ok(None));
        options.generate.directory = Some("lib/".into());
        assert_eq!(folder(&options, FILE, false), Ok(Some("lib".into())));
        options.generate.directory = Some("../x".into());
        assert!(folder(&options, FILE, false).is_err());
    }
}
