//! Slots of a workspace's mirror directory and their locks: slot 0 is the stable,
//! session-resumable mirror; concurrent runs take 1, 2, …; a lock held by a dead process is taken
//! over.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::base::platform::{self};

use super::error::{StagingError, io_error};

/// More concurrent edit runs than this in one workspace is a runaway, not a workload.
pub(super) const MAX_SLOTS: usize = 32;

/// A lock file still empty after this long was left by a process that died while creating it.
pub(super) const EMPTY_LOCK_GRACE: Duration = Duration::from_secs(10);

/// The slot a `<key dir>` entry belongs to: `3`, `3.lock`, `3.git`, `3.base`, `3.ignore.git` → 3.
pub(super) fn slot_number(name: &OsStr) -> Option<usize> {
    let name = name.to_str()?;
    name.split('.').next()?.parse().ok()
}

pub(super) struct SlotPaths {
    pub(super) slot: usize,
    pub(super) mirror: PathBuf,
    pub(super) git_dir: PathBuf,
    pub(super) base: PathBuf,
    pub(super) ignore_repo: PathBuf,
}

impl SlotPaths {
    pub(super) fn new(key_dir: &Path, slot: usize) -> Self {
        Self {
            slot,
            mirror: key_dir.join(slot.to_string()),
            git_dir: key_dir.join(format!("{slot}.git")),
            base: key_dir.join(format!("{slot}.base")),
            ignore_repo: key_dir.join(format!("{slot}.ignore.git")),
        }
    }
}

pub(super) fn take_free_slot(
    key_dir: &Path,
    workspace: &Path,
) -> Result<(usize, SlotLock), StagingError> {
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
pub(super) struct SlotLock {
    pub(super) path: PathBuf,
}

impl SlotLock {
    pub(super) fn try_take(path: PathBuf) -> Result<Option<Self>, StagingError> {
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
pub(super) fn lock_owner_id(pid: u32) -> String {
    match process_start_time(pid) {
        Some(start) => format!("{pid} {start}\n"),
        None => format!("{pid}\n"),
    }
}

/// Field 22 of `/proc/<pid>/stat` (Linux only; elsewhere the pid alone identifies the owner).
pub(super) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses; fields after it do not.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

pub(super) fn lock_is_held(path: &Path) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
