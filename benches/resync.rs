//! Re-sync cost of a staging mirror: it must follow what changed, not the repository size.
//!
//! A generated repository of 10,000 committed files with 20 dirty ones (15 modified, 5
//! untracked); the mirror exists already (the first acquire pays for the checkout). Measured:
//! a re-sync (`acquire`) after a run that edited files in the mirror, and `changes()` after
//! such a run.

// Setup failures abort the benchmark; there is nothing to recover.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use claude_lsp::base::process::ProcessSpec;
use claude_lsp::engine::staging::{MirrorLease, StagingManager, StagingSettings};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

const DIRS: usize = 100;
const FILES_PER_DIR: usize = 100;

async fn git(dir: &Path, args: &[&str]) {
    let output = ProcessSpec::new("git", dir)
        .args(["-c", "user.name=Bench", "-c", "user.email=bench@example.com"])
        .args(args)
        .output(Duration::from_secs(300))
        .await
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {}", output.stderr);
}

fn file(workspace: &Path, dir: usize, index: usize) -> PathBuf {
    workspace.join(format!("module_{dir:03}/file_{index:03}.rs"))
}

/// 10k committed files, then 15 of them modified and 5 new untracked ones.
async fn generate(workspace: &Path) {
    for dir in 0..DIRS {
        fs::create_dir_all(workspace.join(format!("module_{dir:03}"))).unwrap();
        for index in 0..FILES_PER_DIR {
            let text =
                format!("// module {dir} file {index}\npub fn f{index}() -> usize {{ {dir} }}\n");
            fs::write(file(workspace, dir, index), text).unwrap();
        }
    }
    git(workspace, &["init", "-q"]).await;
    git(workspace, &["add", "-A"]).await;
    git(workspace, &["commit", "-q", "-m", "generated"]).await;
    for dirty in 0..15 {
        fs::write(file(workspace, dirty * 6, dirty), format!("// dirty {dirty}\n")).unwrap();
    }
    for untracked in 0..5 {
        let path = workspace.join(format!("module_{:03}/untracked_{untracked}.rs", untracked * 20));
        fs::write(path, "// untracked\n").unwrap();
    }
}

/// What a run typically does in its mirror: edit a few files, create one.
fn simulate_run(lease: &MirrorLease) {
    for index in 0..5 {
        let path = lease.root().join(format!("module_050/file_{index:03}.rs"));
        fs::write(path, format!("// edited by the run {index}\n")).unwrap();
    }
    fs::write(lease.root().join("module_050/created_by_run.rs"), "// new\n").unwrap();
}

fn resync(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let dirs = tempfile::tempdir().unwrap();
    let workspace = dirs.path().join("workspace");
    fs::create_dir(&workspace).unwrap();
    runtime.block_on(generate(&workspace));
    let manager = StagingManager::new(dirs.path().join("cache"));
    let settings = StagingSettings::default();
    let acquire = || runtime.block_on(manager.acquire(&workspace, &[], &settings)).unwrap();
    drop(acquire()); // creates the mirror

    let mut group = c.benchmark_group("staging");
    group.sample_size(20);
    group.bench_function("resync_10k_files_20_dirty", |b| {
        b.iter(|| {
            let lease = acquire();
            simulate_run(&lease);
        });
    });
    let lease = acquire();
    simulate_run(&lease);
    group.bench_function("changes_after_a_run_10k_files", |b| {
        b.iter(|| runtime.block_on(lease.changes()).unwrap());
    });
    group.finish();
}

criterion_group!(benches, resync);
criterion_main!(benches);
