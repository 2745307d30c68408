//! The staging mirror against real git in temporary directories.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::Duration;

use claude_lsp::base::process::ProcessSpec;
use claude_lsp::engine::staging::{MirrorLease, StagingError, StagingManager, StagingSettings};
use claude_lsp::model::edits::FileChange;
use pretty_assertions::assert_eq;
use tempfile::TempDir;

/// Run git in `dir` as a user would, with a fixed identity and no global or system config.
async fn git(dir: &Path, args: &[&str]) -> String {
    let output = ProcessSpec::new("git", dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(["-c", "init.defaultBranch=main", "-c", "protocol.file.allow=always"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output(Duration::from_secs(60))
        .await
        .unwrap();
    assert!(output.status.success(), "git {args:?} failed: {}", output.stderr);
    String::from_utf8(output.stdout).unwrap()
}

fn write(path: impl AsRef<Path>, content: impl AsRef<[u8]>) {
    let path = path.as_ref();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap()
}

/// Every file and link under `root` (`.git` excluded) with its content or target.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for item in fs::read_dir(&dir).unwrap() {
            let item = item.unwrap();
            let path = item.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let file_type = item.file_type().unwrap();
            if file_type.is_symlink() {
                let target = fs::read_link(&path).unwrap();
                files.insert(rel, [b"link:", target.as_os_str().as_encoded_bytes()].concat());
            } else if file_type.is_dir() {
                if item.file_name() != ".git" {
                    pending.push(path);
                }
            } else {
                files.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    files
}

struct Fixture {
    _dirs: TempDir,
    workspace: PathBuf,
    manager: StagingManager,
}

impl Fixture {
    /// A fresh cache and an empty workspace directory.
    fn empty() -> Self {
        let dirs = tempfile::tempdir().unwrap();
        let workspace = dirs.path().join("work space");
        fs::create_dir(&workspace).unwrap();
        let manager = StagingManager::new(dirs.path().join("cache"));
        Self { _dirs: dirs, workspace, manager }
    }

    /// A repository with one commit: a.txt, b.txt, c.txt, src/lib.rs and a .gitignore.
    async fn repo() -> Self {
        let fixture = Self::empty();
        let ws = &fixture.workspace;
        git(ws, &["init", "-q"]).await;
        write(ws.join(".gitignore"), "build/\n*.log\n");
        write(ws.join("a.txt"), "alpha\n");
        write(ws.join("b.txt"), "bravo\n");
        write(ws.join("c.txt"), "charlie\nis moving\n");
        write(ws.join("src/lib.rs"), "pub fn lib() {}\n");
        fixture.commit("initial").await;
        fixture
    }

    async fn commit(&self, message: &str) {
        git(&self.workspace, &["add", "-A"]).await;
        git(&self.workspace, &["commit", "-q", "-m", message]).await;
    }

    fn ws(&self, rel: &str) -> PathBuf {
        self.workspace.join(rel)
    }

    async fn acquire(&self) -> MirrorLease {
        self.acquire_with(&[]).await
    }

    async fn acquire_with(&self, overlays: &[(PathBuf, String)]) -> MirrorLease {
        self.manager.acquire(&self.workspace, overlays, &StagingSettings::default()).await.unwrap()
    }
}

fn mirror(lease: &MirrorLease, rel: &str) -> PathBuf {
    lease.root().join(rel)
}

#[tokio::test]
async fn dirty_deleted_untracked_and_ignored_files_are_synced() {
    let fx = Fixture::repo().await;
    write(fx.ws("a.txt"), "alpha, edited\n");
    fs::remove_file(fx.ws("b.txt")).unwrap();
    write(fx.ws("new dir/ünï cödé file.txt"), "fresh\n");
    write(fx.ws("build/out.bin"), [0u8, 1, 2]);
    write(fx.ws("debug.log"), "noise\n");

    let lease = fx.acquire().await;
    assert_ne!(lease.root(), fx.workspace.as_path());
    assert_eq!(read(mirror(&lease, "a.txt")), "alpha, edited\n");
    assert!(!mirror(&lease, "b.txt").exists(), "a file deleted in the workspace is in the mirror");
    assert_eq!(read(mirror(&lease, "new dir/ünï cödé file.txt")), "fresh\n");
    assert_eq!(read(mirror(&lease, "c.txt")), "charlie\nis moving\n");
    assert!(!mirror(&lease, "build").exists(), "ignored files were copied");
    assert!(!mirror(&lease, "debug.log").exists(), "ignored files were copied");
    assert_eq!(lease.changes().await.unwrap(), []);
}

#[tokio::test]
async fn unsaved_overlays_win_over_the_disk() {
    let fx = Fixture::repo().await;
    write(fx.ws("a.txt"), "saved\n");
    let outside = tempfile::tempdir().unwrap();
    let overlays = vec![
        (fx.ws("a.txt"), "unsaved\n".to_owned()),
        (fx.ws("src/unsaved new.rs"), "fn never_saved() {}\n".to_owned()),
        (outside.path().join("elsewhere.txt"), "not ours\n".to_owned()),
    ];
    let lease = fx.acquire_with(&overlays).await;
    assert_eq!(read(mirror(&lease, "a.txt")), "unsaved\n");
    assert_eq!(read(mirror(&lease, "src/unsaved new.rs")), "fn never_saved() {}\n");
    assert!(!outside.path().join("elsewhere.txt").exists());
    assert_eq!(lease.changes().await.unwrap(), [], "overlays belong to the baseline");

    // The run edits the overlaid file: `before` is the unsaved text, not the disk.
    write(mirror(&lease, "a.txt"), "unsaved, then edited by the run\n");
    assert_eq!(
        lease.changes().await.unwrap(),
        [FileChange::Modified {
            path: fx.ws("a.txt"),
            before: "unsaved\n".into(),
            after: "unsaved, then edited by the run\n".into(),
        }]
    );
}

#[tokio::test]
async fn changes_are_reported_exactly_and_the_workspace_is_untouched() {
    let fx = Fixture::repo().await;
    write(fx.ws("b.txt"), "bravo, dirty in the workspace\n");
    let before_run = snapshot(&fx.workspace);

    let lease = fx.acquire().await;
    write(mirror(&lease, "a.txt"), "alpha, edited by the run\n");
    write(mirror(&lease, "b.txt"), "bravo, edited by the run\n");
    write(mirror(&lease, "src/new module.rs"), "pub fn new() {}\n");
    fs::remove_file(mirror(&lease, "src/lib.rs")).unwrap();
    write(mirror(&lease, "moved/c.txt"), read(mirror(&lease, "c.txt")));
    fs::remove_file(mirror(&lease, "c.txt")).unwrap();
    write(mirror(&lease, "build/artifact.bin"), [0u8, 159, 146, 150]);
    write(mirror(&lease, "run.log"), "ignored\n");

    let changes = lease.changes().await.unwrap();
    assert_eq!(
        changes,
        [
            FileChange::Modified {
                path: fx.ws("a.txt"),
                before: "alpha\n".into(),
                after: "alpha, edited by the run\n".into(),
            },
            FileChange::Modified {
                path: fx.ws("b.txt"),
                before: "bravo, dirty in the workspace\n".into(),
                after: "bravo, edited by the run\n".into(),
            },
            FileChange::Renamed {
                from: fx.ws("c.txt"),
                to: fx.ws("moved/c.txt"),
                before: "charlie\nis moving\n".into(),
                after: "charlie\nis moving\n".into(),
            },
            FileChange::Deleted { path: fx.ws("src/lib.rs"), before: "pub fn lib() {}\n".into() },
            FileChange::Created {
                path: fx.ws("src/new module.rs"),
                content: "pub fn new() {}\n".into(),
            },
        ]
    );
    assert_eq!(snapshot(&fx.workspace), before_run, "the workspace changed on disk");
}

#[tokio::test]
async fn a_resync_throws_away_the_previous_run() {
    let fx = Fixture::repo().await;
    let first = fx.acquire().await;
    let root = first.root().to_path_buf();
    write(mirror(&first, "a.txt"), "run one\n");
    fs::remove_file(mirror(&first, "b.txt")).unwrap();
    write(mirror(&first, "leftover/new.txt"), "run one\n");
    // The run may even commit and switch branches in its mirror.
    git(&root, &["checkout", "-q", "--detach"]).await;
    git(&root, &["commit", "-q", "-am", "run one commit"]).await;
    drop(first);

    write(fx.ws("c.txt"), "changed in the workspace meanwhile\n");
    let second = fx.acquire().await;
    assert_eq!(second.root(), root, "slot 0 must be stable for session resume");
    assert_eq!(second.changes().await.unwrap(), []);
    assert_eq!(read(mirror(&second, "a.txt")), "alpha\n");
    assert_eq!(read(mirror(&second, "b.txt")), "bravo\n");
    assert_eq!(read(mirror(&second, "c.txt")), "changed in the workspace meanwhile\n");
    assert!(!mirror(&second, "leftover").exists());
}

#[tokio::test]
async fn the_mirror_follows_the_workspace_head() {
    let fx = Fixture::repo().await;
    drop(fx.acquire().await);
    write(fx.ws("a.txt"), "alpha v2\n");
    fs::remove_file(fx.ws("b.txt")).unwrap();
    write(fx.ws("d.txt"), "delta\n");
    fx.commit("second").await;

    let lease = fx.acquire().await;
    assert_eq!(read(mirror(&lease, "a.txt")), "alpha v2\n");
    assert!(!mirror(&lease, "b.txt").exists());
    assert_eq!(read(mirror(&lease, "d.txt")), "delta\n");
    assert_eq!(lease.changes().await.unwrap(), []);
    let head = git(&fx.workspace, &["rev-parse", "HEAD"]).await;
    assert_eq!(git(lease.root(), &["rev-parse", "HEAD"]).await, head);
}

#[tokio::test]
async fn concurrent_acquires_get_separate_mirrors() {
    let fx = Fixture::repo().await;
    let settings = StagingSettings::default();
    let (first, second) = tokio::join!(
        fx.manager.acquire(&fx.workspace, &[], &settings),
        fx.manager.acquire(&fx.workspace, &[], &settings),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_ne!(first.root(), second.root());
    let mut slots = [first.slot(), second.slot()];
    slots.sort();
    assert_eq!(slots, [0, 1]);

    write(mirror(&first, "a.txt"), "first run\n");
    assert_eq!(read(mirror(&second, "a.txt")), "alpha\n");
    assert_eq!(second.changes().await.unwrap(), []);
    assert_eq!(first.changes().await.unwrap().len(), 1);

    let slot_zero_root =
        if first.slot() == 0 { first.root().to_path_buf() } else { second.root().to_path_buf() };
    drop(first);
    drop(second);
    assert_eq!(fx.acquire().await.root(), slot_zero_root);
}

#[tokio::test]
async fn binary_changes_are_refused_with_the_path() {
    let fx = Fixture::repo().await;
    let lease = fx.acquire().await;
    write(mirror(&lease, "image.png"), [0x89, b'P', b'N', b'G', 0, 0]);
    match lease.changes().await {
        Err(StagingError::BinaryChange { path }) => assert_eq!(path, fx.ws("image.png")),
        other => panic!("expected BinaryChange, got {other:?}"),
    }
    fs::remove_file(mirror(&lease, "image.png")).unwrap();
    write(mirror(&lease, "a.txt"), [b'a', 0xff, b'\n']);
    let err = lease.changes().await.unwrap_err();
    assert!(err.to_string().contains("a.txt") && err.to_string().contains("binary"), "{err}");
}

#[tokio::test]
async fn symlinks_pointing_outside_are_not_changes_and_new_ones_are_refused() {
    let fx = Fixture::repo().await;
    let outside = tempfile::tempdir().unwrap();
    symlink(outside.path(), fx.ws("outside")).unwrap();
    fx.commit("link out").await;

    let lease = fx.acquire().await;
    // Writing through the committed link lands outside the mirror: not a change inside.
    write(mirror(&lease, "outside/through.txt"), "via the link\n");
    write(mirror(&lease, "a.txt"), "edited\n");
    assert_eq!(
        lease.changes().await.unwrap(),
        [FileChange::Modified {
            path: fx.ws("a.txt"),
            before: "alpha\n".into(),
            after: "edited\n".into(),
        }]
    );

    symlink(outside.path(), mirror(&lease, "escape")).unwrap();
    match lease.changes().await {
        Err(StagingError::OutsideWorkspace { path }) => assert_eq!(path, fx.ws("escape")),
        other => panic!("expected OutsideWorkspace, got {other:?}"),
    }
    fs::remove_file(mirror(&lease, "escape")).unwrap();
    symlink("../../../../..", mirror(&lease, "src/climb")).unwrap();
    assert!(matches!(lease.changes().await, Err(StagingError::OutsideWorkspace { .. })));
    fs::remove_file(mirror(&lease, "src/climb")).unwrap();
    symlink("a.txt", mirror(&lease, "alias")).unwrap();
    assert!(matches!(lease.changes().await, Err(StagingError::SymlinkChange { .. })));
}

#[tokio::test]
async fn paths_and_text_map_between_mirror_and_workspace() {
    let fx = Fixture::repo().await;
    let lease = fx.acquire().await;
    let root = lease.root().to_path_buf();
    assert_eq!(lease.workspace(), fx.workspace);
    assert_eq!(lease.to_workspace_path(&root.join("src/lib.rs")), Some(fx.ws("src/lib.rs")));
    assert_eq!(lease.to_workspace_path(Path::new("src/lib.rs")), Some(fx.ws("src/lib.rs")));
    assert_eq!(lease.to_workspace_path(&root.join("../escape.rs")), None);
    assert_eq!(lease.to_workspace_path(Path::new("/etc/passwd")), None);
    assert_eq!(lease.to_mirror_path(&fx.ws("src/lib.rs")), Some(root.join("src/lib.rs")));
    assert_eq!(lease.to_mirror_path(&fx.ws("src/../../escape.rs")), None);
    assert_eq!(lease.to_mirror_path(Path::new("/etc/passwd")), None);

    let text = format!("Edited {}/src/lib.rs; cwd is {}.", root.display(), root.display());
    let expected =
        format!("Edited {}/src/lib.rs; cwd is {}.", fx.workspace.display(), fx.workspace.display());
    assert_eq!(lease.map_text(&text), expected);
}

#[tokio::test]
async fn a_workspace_in_a_repository_subdirectory_is_confined_to_it() {
    let fx = Fixture::repo().await;
    write(fx.ws("src/lib.rs"), "pub fn lib() { /* dirty */ }\n");
    write(fx.ws("a.txt"), "dirty outside the sub-workspace\n");
    let sub = fx.ws("src");
    let lease = fx.manager.acquire(&sub, &[], &StagingSettings::default()).await.unwrap();
    assert!(lease.root().ends_with("src"), "{}", lease.root().display());
    assert_eq!(read(lease.root().join("lib.rs")), "pub fn lib() { /* dirty */ }\n");
    assert_eq!(lease.changes().await.unwrap(), []);

    write(lease.root().join("more.rs"), "fn more() {}\n");
    assert_eq!(
        lease.changes().await.unwrap(),
        [FileChange::Created { path: sub.join("more.rs"), content: "fn more() {}\n".into() }]
    );
    write(lease.root().join("../a.txt"), "changed outside\n");
    match lease.changes().await {
        Err(StagingError::OutsideWorkspace { path }) => assert!(path.ends_with("a.txt")),
        other => panic!("expected OutsideWorkspace, got {other:?}"),
    }
}

#[tokio::test]
async fn a_plain_directory_is_copied_and_diffed() {
    let fx = Fixture::empty();
    write(fx.ws("notes.md"), "# notes\n");
    write(fx.ws("deep/dir/keep.txt"), "keep\n");
    write(fx.ws("old name.txt"), "to be renamed\n");
    write(fx.ws(".gitignore"), "target/\n");
    symlink("notes.md", fx.ws("link to notes")).unwrap();
    let before_run = snapshot(&fx.workspace);

    let lease = fx.acquire().await;
    assert_eq!(snapshot(lease.root()), before_run, "the copy differs from the workspace");
    write(mirror(&lease, "notes.md"), "# notes\nmore\n");
    fs::remove_file(mirror(&lease, "deep/dir/keep.txt")).unwrap();
    fs::rename(mirror(&lease, "old name.txt"), mirror(&lease, "deep/new name.txt")).unwrap();
    write(mirror(&lease, "fresh.txt"), "fresh\n");
    write(mirror(&lease, "target/debug/app"), [0u8, 1, 2]);
    assert_eq!(
        lease.changes().await.unwrap(),
        [
            FileChange::Deleted { path: fx.ws("deep/dir/keep.txt"), before: "keep\n".into() },
            FileChange::Renamed {
                from: fx.ws("old name.txt"),
                to: fx.ws("deep/new name.txt"),
                before: "to be renamed\n".into(),
                after: "to be renamed\n".into(),
            },
            FileChange::Created { path: fx.ws("fresh.txt"), content: "fresh\n".into() },
            FileChange::Modified {
                path: fx.ws("notes.md"),
                before: "# notes\n".into(),
                after: "# notes\nmore\n".into(),
            },
        ]
    );
    drop(lease);
    assert_eq!(snapshot(&fx.workspace), before_run, "the workspace changed on disk");

    write(fx.ws("notes.md"), "# notes, saved later\n");
    let lease = fx.acquire().await;
    assert_eq!(snapshot(lease.root()), snapshot(&fx.workspace), "the re-sync missed something");
    assert_eq!(lease.changes().await.unwrap(), []);
}

#[tokio::test]
async fn a_plain_directory_beyond_the_caps_is_refused_clearly() {
    let fx = Fixture::empty();
    for index in 0..3 {
        write(fx.ws(&format!("file{index}.txt")), vec![b'x'; 1000]);
    }
    let few_files = StagingSettings { max_copy_bytes: 1 << 30, max_copy_files: 2 };
    let err = fx.manager.acquire(&fx.workspace, &[], &few_files).await.unwrap_err();
    assert!(matches!(err, StagingError::TooLarge { limit_files: 2, .. }), "{err:?}");
    assert!(err.to_string().contains("2 files"), "{err}");

    let few_bytes = StagingSettings { max_copy_bytes: 1500, max_copy_files: 100 };
    let err = fx.manager.acquire(&fx.workspace, &[], &few_bytes).await.unwrap_err();
    assert!(matches!(err, StagingError::TooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("stagingMaxCopyMb"), "{err}");

    let enough = StagingSettings { max_copy_bytes: 3000, max_copy_files: 3 };
    fx.manager.acquire(&fx.workspace, &[], &enough).await.unwrap();
}

#[tokio::test]
async fn a_repository_without_commits_is_copied_respecting_ignores() {
    let fx = Fixture::empty();
    git(&fx.workspace, &["init", "-q"]).await;
    write(fx.ws(".gitignore"), "node_modules/\n");
    write(fx.ws("index.js"), "console.log(1)\n");
    write(fx.ws("node_modules/dep/index.js"), "module.exports = 1\n");

    let lease = fx.acquire().await;
    assert_eq!(read(mirror(&lease, "index.js")), "console.log(1)\n");
    assert!(!mirror(&lease, "node_modules").exists(), "ignored files were copied");
    write(mirror(&lease, "node_modules/other/x.js"), "installed by the run\n");
    write(mirror(&lease, "lib.js"), "export {}\n");
    assert_eq!(
        lease.changes().await.unwrap(),
        [FileChange::Created { path: fx.ws("lib.js"), content: "export {}\n".into() }]
    );
    drop(lease);

    // The first commit turns the copy into a git mirror.
    fx.commit("first").await;
    let lease = fx.acquire().await;
    assert!(lease.root().join(".git/HEAD").is_file(), "not a git mirror after the first commit");
    assert!(!mirror(&lease, "lib.js").exists());
    assert_eq!(lease.changes().await.unwrap(), []);
}

#[tokio::test]
async fn a_crashed_server_leaves_nothing_that_blocks_the_next_one() {
    let fx = Fixture::repo().await;
    let lease = fx.acquire().await;
    let root = lease.root().to_path_buf();
    let slot_dir = root.parent().unwrap().to_path_buf();
    drop(lease);
    // Crash leftovers: the mirror directory gone behind git's back, and a lock file owned by a
    // pid that no longer runs (Linux pids stay below 2^22).
    fs::remove_dir_all(&root).unwrap();
    fs::write(slot_dir.join("0.lock"), "4194305 1\n").unwrap();

    let lease = fx.acquire().await;
    assert_eq!(lease.root(), root);
    assert_eq!(read(mirror(&lease, "a.txt")), "alpha\n");
    assert_eq!(lease.changes().await.unwrap(), []);
}

#[tokio::test]
async fn submodules_are_skipped() {
    let fx = Fixture::repo().await;
    let library = tempfile::tempdir().unwrap();
    git(library.path(), &["init", "-q"]).await;
    write(library.path().join("lib.txt"), "library\n");
    git(library.path(), &["add", "-A"]).await;
    git(library.path(), &["commit", "-q", "-m", "library"]).await;
    let url = library.path().to_str().unwrap();
    git(&fx.workspace, &["submodule", "add", "-q", url, "vendor/lib"]).await;
    fx.commit("add submodule").await;
    write(fx.ws("vendor/lib/lib.txt"), "dirty inside the submodule\n");
    write(fx.ws("a.txt"), "dirty\n");

    let lease = fx.acquire().await;
    assert_eq!(read(mirror(&lease, "a.txt")), "dirty\n");
    assert!(!mirror(&lease, "vendor/lib/lib.txt").exists(), "submodule content was copied");
    assert_eq!(lease.changes().await.unwrap(), []);
}

#[tokio::test]
async fn remove_deletes_every_mirror_and_leaves_the_worktree_list_alone() {
    let fx = Fixture::repo().await;
    let settings = StagingSettings::default();
    let first = fx.manager.acquire(&fx.workspace, &[], &settings).await.unwrap();
    let second = fx.manager.acquire(&fx.workspace, &[], &settings).await.unwrap();
    let roots = [first.root().to_path_buf(), second.root().to_path_buf()];
    assert!(matches!(fx.manager.remove(&fx.workspace).await, Err(StagingError::InUse { .. })));
    drop(first);
    drop(second);

    fx.manager.remove(&fx.workspace).await.unwrap();
    for root in &roots {
        assert!(!root.exists(), "{} survived", root.display());
    }
    let worktrees = git(&fx.workspace, &["worktree", "list", "--porcelain"]).await;
    assert_eq!(worktrees.matches("worktree ").count(), 1, "{worktrees}");
    // And the workspace can be staged again afterwards.
    assert_eq!(fx.acquire().await.changes().await.unwrap(), []);
}

#[tokio::test]
async fn a_missing_workspace_is_not_a_directory() {
    let fx = Fixture::empty();
    let missing = fx.ws("nope");
    let err = fx.manager.acquire(&missing, &[], &StagingSettings::default()).await.unwrap_err();
    assert!(matches!(err, StagingError::NotADirectory { .. }), "{err:?}");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn a_cache_inside_the_workspace_is_never_mirrored() {
    for with_git in [false, true] {
        let fx = Fixture::empty();
        write(fx.ws("main.rs"), "fn main() {}\n");
        if with_git {
            git(&fx.workspace, &["init", "-q"]).await;
            fx.commit("initial").await;
        }
        // Like a home directory opened as the workspace, with the cache in it.
        let manager = StagingManager::new(fx.ws(".cache/claude-lsp"));
        let settings = StagingSettings::default();
        drop(manager.acquire(&fx.workspace, &[], &settings).await.unwrap());
        let lease = manager.acquire(&fx.workspace, &[], &settings).await.unwrap();
        assert!(!mirror(&lease, ".cache").exists(), "the mirror holds the cache (git: {with_git})");
        assert_eq!(read(mirror(&lease, "main.rs")), "fn main() {}\n");
        assert_eq!(lease.changes().await.unwrap(), [], "git: {with_git}");
    }
}

#[tokio::test]
async fn git_in_the_mirror_never_reaches_the_users_repository() {
    let fx = Fixture::repo().await;
    let user_git = fx.ws(".git");
    let before = snapshot(&user_git);
    let elsewhere = tempfile::tempdir().unwrap();
    let marker = elsewhere.path().join("marker");
    let hooks = elsewhere.path().join("hooks");
    write(hooks.join("post-checkout"), format!("#!/bin/sh\ntouch {}\n", marker.display()));
    fs::set_permissions(hooks.join("post-checkout"), fs::Permissions::from_mode(0o755)).unwrap();

    // What an agent allowed to run git does in its mirror.
    let lease = fx.acquire().await;
    let root = lease.root().to_path_buf();
    git(&root, &["commit", "-q", "--allow-empty", "-m", "agent commit"]).await;
    git(&root, &["update-ref", "refs/heads/main", "HEAD"]).await;
    git(&root, &["config", "core.fsmonitor", &format!("touch {}", marker.display())]).await;
    git(&root, &["config", "core.hooksPath", hooks.to_str().unwrap()]).await;
    git(&root, &["config", "core.worktree", fx.workspace.to_str().unwrap()]).await;
    write(mirror(&lease, "a.txt"), "edited by the run\n");
    let edited = [FileChange::Modified {
        path: fx.ws("a.txt"),
        before: "alpha\n".into(),
        after: "edited by the run\n".into(),
    }];
    assert_eq!(lease.changes().await.unwrap(), edited);
    drop(lease);

    // The next sync starts from a clean repository, even if the agent left `.git` pointing at the
    // user's repository.
    let lease = fx.acquire().await;
    let config = fs::read_to_string(root.join(".git/config")).unwrap();
    assert!(!config.contains("fsmonitor") && !config.contains("hooksPath"), "{config}");
    write(mirror(&lease, "a.txt"), "edited by the run\n");
    fs::remove_dir_all(root.join(".git")).unwrap();
    symlink(&user_git, root.join(".git")).unwrap();
    assert_eq!(lease.changes().await.unwrap(), edited);
    drop(lease);
    let lease = fx.acquire().await;
    assert!(fs::symlink_metadata(root.join(".git")).unwrap().is_dir());
    assert_eq!(lease.changes().await.unwrap(), []);
    // A `.git` file naming the user's repository, as a worktree has.
    fs::remove_dir_all(root.join(".git")).unwrap();
    write(root.join(".git"), format!("gitdir: {}\n", user_git.display()));
    drop(lease);
    let lease = fx.acquire().await;
    assert!(root.join(".git/HEAD").is_file());
    assert_eq!(lease.changes().await.unwrap(), []);
    drop(lease);

    assert_eq!(snapshot(&user_git), before, "the user's repository changed");
    assert_eq!(read(fx.ws("a.txt")), "alpha\n");
    assert!(!marker.exists(), "a program the agent configured ran");
    git(&fx.workspace, &["status", "--porcelain"]).await;
    assert!(!marker.exists(), "the user's own git status ran a program the agent configured");
}

#[tokio::test]
async fn a_worktree_mirror_left_by_an_older_version_is_replaced_and_pruned() {
    let fx = Fixture::repo().await;
    let root = fx.acquire().await.root().to_path_buf();
    fs::remove_dir_all(&root).unwrap();
    fs::remove_dir_all(root.with_extension("git")).unwrap();
    git(&fx.workspace, &["worktree", "add", "-q", "--detach", root.to_str().unwrap(), "HEAD"])
        .await;
    let worktrees = || git(&fx.workspace, &["worktree", "list", "--porcelain"]);
    assert_eq!(worktrees().await.matches("worktree ").count(), 2);

    let lease = fx.acquire().await;
    assert_eq!(lease.root(), root);
    assert!(root.join(".git/HEAD").is_file(), "the mirror is still a worktree");
    assert_eq!(worktrees().await.matches("worktree ").count(), 1, "the old worktree is listed");
    assert_eq!(lease.changes().await.unwrap(), []);
    assert_eq!(read(mirror(&lease, "a.txt")), "alpha\n");
}
