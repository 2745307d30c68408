//! Folder and workspace scopes of analyze and review: which files are in scope, how many the
//! prompt names, and progress through them as the agent reads. The prompt lists the files and
//! the agent reads what it needs, so a scope of hundreds of files costs a list, not their text.

use std::collections::HashSet;
use std::path::Path;

/// The most files a prompt names; the rest are counted.
pub const MAX_LISTED_FILES: usize = 300;

/// The files of a folder or workspace scope, as the prompt shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeFiles {
    /// The folder, relative to the workspace root and `/`-separated; `None`: the whole workspace.
    pub directory: Option<String>,
    /// The first [`MAX_LISTED_FILES`] files in scope, relative to the workspace root, sorted.
    pub listed: Vec<String>,
    /// How many files are in scope (listed or not).
    pub total: usize,
    /// Test files left out (without `includeTests`).
    pub tests_left_out: usize,
    /// Whether the list follows `.gitignore` (git listed it) or is a plain directory walk.
    pub from_git: bool,
}

impl ScopeFiles {
    /// The scope from every file under `directory` (workspace-relative, `/`-separated paths):
    /// test files dropped unless `include_tests`, sorted, the list bounded.
    pub fn new(
        directory: Option<String>,
        files: impl IntoIterator<Item = String>,
        include_tests: bool,
        from_git: bool,
    ) -> Self {
        let mut kept = Vec::new();
        let mut tests_left_out = 0;
        for file in files {
            if !include_tests && is_test_path(&file) {
                tests_left_out += 1;
            } else {
                kept.push(file);
            }
        }
        kept.sort();
        kept.dedup();
        let total = kept.len();
        kept.truncate(MAX_LISTED_FILES);
        Self { directory, listed: kept, total, tests_left_out, from_git }
    }

    /// Whether `relative` (workspace-relative, `/`-separated) lies in the scope's folder.
    pub fn contains(&self, relative: &str) -> bool {
        match &self.directory {
            None => true,
            Some(directory) => {
                relative.strip_prefix(directory.as_str()).is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

/// Whether a workspace-relative path is a test: under a `test`, `tests`, `spec`, `__tests__`
/// (…) directory, or named like one (`*_test.go`, `test_*.py`, `*.test.ts`, `*.spec.js`,
/// `*Test.java`).
pub fn is_test_path(relative: &str) -> bool {
    const TEST_DIRS: [&str; 7] = ["test", "tests", "spec", "specs", "__tests__", "testing", "e2e"];
    let mut parts: Vec<&str> = relative.split('/').collect();
    let Some(name) = parts.pop() else { return false };
    if parts.iter().any(|dir| TEST_DIRS.contains(&dir.to_ascii_lowercase().as_str())) {
        return true;
    }
    let stem = name.split('.').next().unwrap_or(name);
    let lower = stem.to_ascii_lowercase();
    lower.starts_with("test_")
        || lower.ends_with("_test")
        || lower.ends_with("_spec")
        || stem.ends_with("Test")
        || stem.ends_with("Tests")
        || name.contains(".test.")
        || name.contains(".spec.")
}

/// Progress through a scope: which of its files the agent has read so far.
#[derive(Debug, Clone)]
pub struct ScopeProgress {
    scope: ScopeFiles,
    read: HashSet<String>,
}

impl ScopeProgress {
    pub fn new(scope: ScopeFiles) -> Self {
        Self { scope, read: HashSet::new() }
    }

    /// The agent reads `relative`: "(3 of 12 files)" when it is in scope.
    pub fn read(&mut self, relative: &str) -> Option<String> {
        if !self.scope.contains(relative) {
            return None;
        }
        self.read.insert(relative.to_owned());
        let total = self.scope.total.max(self.read.len());
        Some(format!("({} of {total} files)", self.read.len()))
    }
}

/// A path as the scope lists it: relative to `root`, `/`-separated; `None` outside it.
pub fn relative_path(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let parts: Vec<String> = relative
        .components()
        .map(|component| component.as_os_str().to_string_lossy().into_owned())
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn tests_are_recognized_by_directory_and_name() {
        for test in [
            "tests/e2e.rs",
            "src/__tests__/a.js",
            "pkg/parse_test.go",
            "test_io.py",
            "web/app.test.ts",
            "web/app.spec.js",
            "src/main/java/FooTest.java",
            "Spec/x.rb",
        ] {
            assert!(is_test_path(test), "{test}");
        }
        for code in ["src/lib.rs", "src/testimony.rs", "contest/a.rs", "src/attest.py", "latest.go"]
        {
            assert!(!is_test_path(code), "{code}");
        }
    }

    #[test]
    fn the_list_is_sorted_bounded_and_counts_what_it_leaves_out() {
        let files = (0..MAX_LISTED_FILES + 20).rev().map(|n| format!("src/f{n:04}.rs"));
        let tests = ["tests/a.rs".to_owned(), "src/b_test.go".to_owned()];
        let scope = ScopeFiles::new(Some("src".into()), files.chain(tests.clone()), false, true);
        assert_eq!(scope.total, MAX_LISTED_FILES + 20);
        assert_eq!(scope.listed.len(), MAX_LISTED_FILES);
        assert_eq!(scope.listed[0], "src/f0000.rs");
        assert_eq!(scope.tests_left_out, 2);
        let with_tests = ScopeFiles::new(None, tests, true, false);
        assert_eq!(with_tests.listed, ["src/b_test.go", "tests/a.rs"]);
        assert_eq!(with_tests.tests_left_out, 0);
    }

    #[test]
    fn progress_counts_distinct_files_in_scope() {
        let scope = ScopeFiles::new(
            Some("src".into()),
            ["src/a.rs", "src/b.rs", "src/c.rs"].map(str::to_owned),
            true,
            true,
        );
        let mut progress = ScopeProgress::new(scope);
        assert_eq!(progress.read("src/a.rs").as_deref(), Some("(1 of 3 files)"));
        assert_eq!(progress.read("src/a.rs").as_deref(), Some("(1 of 3 files)"));
        assert_eq!(progress.read("README.md"), None);
        assert_eq!(progress.read("srcx/a.rs"), None);
        assert_eq!(progress.read("src/b.rs").as_deref(), Some("(2 of 3 files)"));
    }

    #[test]
    fn relative_paths_are_slash_separated_inside_the_root() {
        let root = Path::new("/ws");
        assert_eq!(relative_path(root, Path::new("/ws/src/a.rs")).as_deref(), Some("src/a.rs"));
        assert_eq!(relative_path(root, Path::new("/ws")), None);
        assert_eq!(relative_path(root, Path::new("/other/a.rs")), None);
    }
}
