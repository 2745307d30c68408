//! Everything that differs between operating systems, behind `cfg`, so the rest of the crate is
//! portable by construction: process trees and what ends them, the parent-death guard, liveness
//! of a pid, file identity, permissions, symlinks and paths as bytes.
//!
//! How a child's process tree is held and ended:
//!
//! | | tree | parent death (the server killed, even by `SIGKILL`) |
//! |---|---|---|
//! | Linux | own process group | `PR_SET_PDEATHSIG` = `SIGKILL` |
//! | macOS, other Unix | own process group | a watchdog in the group ([`PARENT_WATCHDOG`]) |
//! | Windows | a Job Object per child | the job's kill-on-close: only the server holds its handle |
//!
//! Spawning itself stays in [`crate::base::process`]: this module configures a command and holds
//! the tree, it never creates one.

use std::ffi::OsString;
use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};

/// How to end a process tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Ask it to exit (`SIGTERM`). Windows has no such request for a console-less child: there
    /// it is [`Stop::Kill`] (the ladder's interrupt and stdin EOF came first).
    Terminate,
    /// End it now (`SIGKILL`; `TerminateJobObject`).
    Kill,
}

/// Polls every second for the parent (`$1`) and kills its own process group when the parent is
/// gone; then replaces the shell with the real program (`$2…`), which keeps the shell's pid and
/// so leads the group. Its descriptors go to /dev/null so it never holds the child's pipes open.
/// Used where the kernel has no parent-death signal (macOS): a `kqueue` watch would need a
/// process of our own after `fork`, and this one costs a `sleep` per second per child.
pub const PARENT_WATCHDOG: &str = r#"parent=$1; shift
(while kill -0 "$parent" 2>/dev/null; do sleep 1; done; kill -KILL 0) </dev/null >/dev/null 2>&1 &
exec "$@""#;

/// The program and arguments that start `program args` under this OS's parent-death guard.
pub fn guarded_argv(program: &Path, args: &[OsString]) -> (PathBuf, Vec<OsString>) {
    if cfg!(all(unix, not(target_os = "linux"))) {
        let mut wrapped: Vec<OsString> = vec![
            "-c".into(),
            PARENT_WATCHDOG.into(),
            "sh".into(),
            std::process::id().to_string().into(),
        ];
        wrapped.push(program.as_os_str().to_owned());
        wrapped.extend(args.iter().cloned());
        (PathBuf::from("/bin/sh"), wrapped)
    } else {
        (program.to_path_buf(), args.to_vec())
    }
}

pub use imp::{ProcessTree, file_identity, prepare_command, process_is_alive};

#[cfg(unix)]
mod imp {
    use super::*;
    use rustix::process::{Pid, Signal};

    /// Own process group; on Linux the parent-death signal as well.
    pub fn prepare_command(command: &mut tokio::process::Command) {
        command.process_group(0);
        #[cfg(target_os = "linux")]
        set_parent_death_signal(command);
    }

    /// The parent-death signal (`PR_SET_PDEATHSIG`) fires when the *thread* that spawned the
    /// child exits, not only the process: see [`crate::base::process`] on where spawning is safe.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn set_parent_death_signal(command: &mut tokio::process::Command) {
        let parent = rustix::process::getpid();
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // syscalls (prctl, getppid). If the parent already died before prctl took effect, fail.
        unsafe {
            command.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
                if rustix::process::getppid() != Some(parent) {
                    return Err(io::Error::other("parent exited during spawn"));
                }
                Ok(())
            });
        }
    }

    /// A child's process group (the child leads it).
    #[derive(Debug)]
    pub struct ProcessTree {
        group: Option<Pid>,
    }

    impl ProcessTree {
        pub fn adopt(_child: &tokio::process::Child, pid: u32) -> io::Result<Self> {
            Ok(Self { group: i32::try_from(pid).ok().and_then(Pid::from_raw) })
        }

        pub fn stop(&self, stop: Stop) {
            self.signal(match stop {
                Stop::Terminate => Signal::TERM,
                Stop::Kill => Signal::KILL,
            });
        }

        /// Any signal (tests send `SIGINT` as a terminal would).
        pub fn signal(&self, signal: Signal) {
            if let Some(group) = self.group {
                // ESRCH (already gone) is the common, harmless failure here.
                let _ = rustix::process::kill_process_group(group, signal);
            }
        }
    }

    /// Whether `pid` names a running process (or a zombie), ours or another user's.
    pub fn process_is_alive(pid: u32) -> bool {
        let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else { return false };
        matches!(rustix::process::test_kill_process(pid), Ok(()) | Err(rustix::io::Errno::PERM))
    }

    /// Device and inode: a directory removed and created again at the same path differs.
    pub fn file_identity(path: &Path) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|meta| (meta.dev(), meta.ino()))
    }
}

#[cfg(windows)]
mod imp {
    use super::*;
    use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
    use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE, STILL_ACTIVE};
    use windows_sys::Win32::Storage::FileSystem::{
        BY_HANDLE_FILE_INFORMATION, GetFileInformationByHandle,
    };
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, TH32CS_SNAPTHREAD, THREADENTRY32, Thread32First, Thread32Next,
    };
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
        JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
        SetInformationJobObject, TerminateJobObject,
    };
    use windows_sys::Win32::System::Threading::{
        CREATE_NO_WINDOW, CREATE_SUSPENDED, GetExitCodeProcess, OpenProcess, OpenThread,
        PROCESS_QUERY_LIMITED_INFORMATION, ResumeThread, THREAD_SUSPEND_RESUME,
    };

    /// Started suspended, so nothing it starts escapes the job it is put in before it runs; no
    /// console window of its own.
    pub fn prepare_command(command: &mut tokio::process::Command) {
        command.creation_flags(CREATE_SUSPENDED | CREATE_NO_WINDOW);
    }

    /// A Job Object holding the child and everything it starts. Closing the last handle to it
    /// (dropping this, or the server dying) kills them all.
    #[derive(Debug)]
    pub struct ProcessTree {
        job: OwnedHandle,
    }

    impl ProcessTree {
        /// Put the suspended `child` in a new job, then let it run.
        #[allow(unsafe_code)]
        pub fn adopt(child: &tokio::process::Child, pid: u32) -> io::Result<Self> {
            let process = child
                .raw_handle()
                .ok_or_else(|| io::Error::other("child exited before it was tracked"))?;
            // SAFETY: plain Win32 calls on handles this function owns or borrows from `child`;
            // the job handle is owned by `OwnedHandle` from here on.
            let job = unsafe {
                let raw = CreateJobObjectW(std::ptr::null(), std::ptr::null());
                if raw.is_null() {
                    return Err(io::Error::last_os_error());
                }
                OwnedHandle::from_raw_handle(raw as RawHandle)
            };
            let mut limits = JOBOBJECT_EXTENDED_LIMIT_INFORMATION::default();
            limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
            // SAFETY: `limits` outlives the call and its size is passed with it.
            let set = unsafe {
                SetInformationJobObject(
                    job.as_raw_handle() as HANDLE,
                    JobObjectExtendedLimitInformation,
                    (&raw const limits).cast(),
                    size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
                )
            };
            // SAFETY: both handles are valid for the call.
            if set == 0
                || unsafe {
                    AssignProcessToJobObject(job.as_raw_handle() as HANDLE, process as HANDLE)
                } == 0
            {
                return Err(io::Error::last_os_error());
            }
            resume_threads(pid)?;
            Ok(Self { job })
        }

        /// Windows cannot ask a console-less process to exit: both end the whole job.
        #[allow(unsafe_code)]
        pub fn stop(&self, _stop: Stop) {
            // SAFETY: the job handle is valid while `self` lives.
            let _ = unsafe { TerminateJobObject(self.job.as_raw_handle() as HANDLE, 1) };
        }
    }

    /// Resume the threads of a process started suspended (std keeps its thread handle).
    #[allow(unsafe_code)]
    fn resume_threads(pid: u32) -> io::Result<()> {
        // SAFETY: the snapshot is owned by `OwnedHandle`; each thread handle is closed by its
        // own `OwnedHandle`; `entry.dwSize` is set as the API requires.
        unsafe {
            let raw = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
            if raw == INVALID_HANDLE_VALUE {
                return Err(io::Error::last_os_error());
            }
            let snapshot = OwnedHandle::from_raw_handle(raw as RawHandle);
            let mut entry =
                THREADENTRY32 { dwSize: size_of::<THREADENTRY32>() as u32, ..Default::default() };
            let mut more = Thread32First(snapshot.as_raw_handle() as HANDLE, &raw mut entry);
            while more != 0 {
                if entry.th32OwnerProcessID == pid {
                    let thread = OpenThread(THREAD_SUSPEND_RESUME, 0, entry.th32ThreadID);
                    if thread.is_null() {
                        return Err(io::Error::last_os_error());
                    }
                    let thread = OwnedHandle::from_raw_handle(thread as RawHandle);
                    if ResumeThread(thread.as_raw_handle() as HANDLE) == u32::MAX {
                        return Err(io::Error::last_os_error());
                    }
                }
                more = Thread32Next(snapshot.as_raw_handle() as HANDLE, &raw mut entry);
            }
        }
        Ok(())
    }

    /// Whether `pid` names a running process.
    #[allow(unsafe_code)]
    pub fn process_is_alive(pid: u32) -> bool {
        // SAFETY: the process handle is owned by `OwnedHandle`; the exit code is a local.
        unsafe {
            let raw = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
            if raw.is_null() {
                // Access denied means it exists (another user's); anything else, it does not.
                return io::Error::last_os_error().raw_os_error() == Some(5);
            }
            let process = OwnedHandle::from_raw_handle(raw as RawHandle);
            let mut code = 0u32;
            GetExitCodeProcess(process.as_raw_handle() as HANDLE, &raw mut code) != 0
                && code == STILL_ACTIVE as u32
        }
    }

    /// Volume serial number and file index: a directory removed and created again differs.
    #[allow(unsafe_code)]
    pub fn file_identity(path: &Path) -> Option<(u64, u64)> {
        // std opens directories too (it asks for backup semantics).
        let file = std::fs::File::open(path).ok()?;
        let mut info = BY_HANDLE_FILE_INFORMATION::default();
        // SAFETY: the handle is valid while `file` lives; `info` is a local.
        let ok =
            unsafe { GetFileInformationByHandle(file.as_raw_handle() as HANDLE, &raw mut info) };
        (ok != 0).then(|| {
            let index = (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow);
            (u64::from(info.dwVolumeSerialNumber), index)
        })
    }
}

/// Permission bits for change detection: the Unix mode; on Windows only read-only is known.
pub fn file_mode(meta: &Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode()
    }
    #[cfg(not(unix))]
    {
        if meta.permissions().readonly() { 0o444 } else { 0o644 }
    }
}

/// Whether `meta` is a file this user may execute (on Windows every file: `PATHEXT` decides).
pub fn is_executable(meta: &Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// Let the owner write into (and list) the directory `dir`.
pub fn make_dir_writable(dir: &Path, meta: &Metadata) {
    let mut permissions = meta.permissions();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        permissions.set_mode(permissions.mode() | 0o700);
    }
    #[cfg(not(unix))]
    #[allow(clippy::permissions_set_readonly_false)] // Windows has no world-writable bits
    permissions.set_readonly(false);
    let _ = std::fs::set_permissions(dir, permissions);
}

/// A symlink at `link` pointing to `target`. Windows tells file links from directory links:
/// the kind follows what `target` names (relative to the link's directory), a file when nothing.
pub fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(target, link)
    }
    #[cfg(windows)]
    {
        let resolved = link.parent().map_or_else(|| target.to_path_buf(), |dir| dir.join(target));
        if resolved.is_dir() {
            std::os::windows::fs::symlink_dir(target, link)
        } else {
            std::os::windows::fs::symlink_file(target, link)
        }
    }
}

/// A path from bytes a tool printed (git): raw bytes on Unix; UTF-8 (lossy) on Windows, where
/// git prints paths as UTF-8.
pub fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        PathBuf::from(OsString::from_vec(bytes))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// The resident memory (RSS, bytes) of process `pid` and all its descendants, or `None` where it
/// cannot be measured: the process is gone, or the OS is not Linux (no `/proc`; the idle memory
/// budget then does nothing).
pub fn tree_rss_bytes(pid: u32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        proc_tree_rss(pid)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

#[cfg(target_os = "linux")]
fn proc_tree_rss(root: u32) -> Option<u64> {
    // `VmRSS` is in kB; a kernel thread or a process that just ended has none.
    let rss = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let line = status.lines().find_map(|line| line.strip_prefix("VmRSS:"));
        let kb = line.and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok());
        kb.unwrap_or(0u64) * 1024
    };
    // `stat` is "pid (comm) state ppid …"; comm may hold spaces and parentheses.
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
    };
    if !Path::new(&format!("/proc/{root}")).exists() {
        return None;
    }
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let parents: Vec<(u32, u32)> =
        pids.iter().filter_map(|&pid| Some((pid, parent(pid)?))).collect();
    let mut tree = vec![root];
    let mut index = 0;
    while let Some(&pid) = tree.get(index) {
        tree.extend(parents.iter().filter(|(_, ppid)| *ppid == pid).map(|(child, _)| *child));
        index += 1;
    }
    Some(tree.into_iter().map(rss).sum())
}

/// What claude-lsp offers on an OS (`std::env::consts::OS`), for `claude-lsp doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    /// Whether the test suite runs end to end there (otherwise it is only type-checked).
    pub tested: bool,
    /// The sandbox around the agent's commands, or why there is none.
    pub sandbox: &'static str,
    /// What holds the agent in, and by what (the OS, or claude-lsp's own checks).
    pub contained: &'static str,
    /// What nothing holds in.
    pub not_contained: &'static str,
    /// How the CLI and its helpers end when the server dies.
    pub cleanup: &'static str,
    /// What does not work there.
    pub not_supported: &'static str,
}

/// Where Claude Code's sandbox (bubblewrap, Seatbelt) holds.
const UNIX_CONTAINED: &str = "Bash commands, by the OS sandbox: writes only in the run's root \
                              (the staging mirror of an edit run, nowhere for analyze and \
                              review), no reads of credentials, network only to WebFetch allow \
                              rules' domains; the file tools, by claude-lsp's path checks";
const UNIX_NOT_CONTAINED: &str = "nothing, while the sandbox is available (see Sandbox)";

pub fn support(os: &str) -> Support {
    match os {
        "linux" => Support {
            tested: true,
            sandbox: "bubblewrap (with socat), as Claude Code uses it",
            contained: UNIX_CONTAINED,
            not_contained: UNIX_NOT_CONTAINED,
            cleanup: "parent-death signal",
            not_supported: "nothing known",
        },
        "macos" => Support {
            tested: false,
            sandbox: "Seatbelt (sandbox-exec), as Claude Code uses it",
            contained: UNIX_CONTAINED,
            not_contained: UNIX_NOT_CONTAINED,
            cleanup: "a watchdog per CLI process, within a second",
            not_supported: "nothing known, but the test suite has not run here",
        },
        "windows" => Support {
            tested: false,
            sandbox: "none used: claude-lsp neither detects nor configures Claude Code's own \
                      Windows sandbox (srt-win: a sandbox user and network filters that \
                      `claude sandbox install` sets up with one UAC prompt; in Claude Code \
                      2.1.330 it exists behind a feature gate, 2.1.197 has no `claude sandbox` \
                      command)",
            contained: "the agent's file tools (Read, Edit, Write, Grep, Glob) and each path a \
                        Bash command names, by claude-lsp's path checks (not by the OS); the \
                        edits of generate and refactor, written in the staging mirror, reach \
                        your files only through the editor; the CLI's process tree, by a Job \
                        Object",
            not_contained: "a program Bash runs: it could read and write whatever you can and \
                            reach any host, so Bash is refused unless \
                            dangerouslyAllowUnsandboxedBash; no OS rule keeps the CLI from \
                            your secrets (~/.ssh, ~/.aws) or the network",
            cleanup: "a Job Object per CLI process",
            not_supported: "sandboxed Bash (Bash is refused unless dangerouslyAllowUnsandboxedBash; \
                            the agent's file tools are still held to the workspace by the \
                            permission checks); the test suite has not run here",
        },
        _ => Support {
            tested: false,
            sandbox: "none: Claude Code has no command sandbox here",
            contained: "the agent's file tools and the paths Bash commands name, by claude-lsp's \
                        path checks (not by the OS)",
            not_contained: "a program Bash runs (Bash is refused unless \
                            dangerouslyAllowUnsandboxedBash)",
            cleanup: "a watchdog per CLI process, within a second",
            not_supported: "sandboxed Bash; this platform is neither built nor checked",
        },
    }
}

#[cfg(test)]
mod support_tests {
    use super::*;

    #[test]
    fn each_platform_says_what_it_lacks() {
        assert!(support("linux").tested);
        assert!(support("macos").sandbox.starts_with("Seatbelt"));
        let windows = support("windows");
        assert!(!windows.tested && windows.sandbox.starts_with("none"));
        assert!(windows.not_supported.contains("sandboxed Bash"));
        assert!(windows.sandbox.contains("claude sandbox install"), "{}", windows.sandbox);
        assert!(windows.contained.contains("path checks (not by the OS)"));
        assert!(windows.not_contained.contains("Bash is refused"));
        assert!(support("freebsd").not_supported.contains("neither built nor checked"));
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pid_is_not_alive() {
        assert!(process_is_alive(std::process::id()));
        assert!(!process_is_alive(u32::MAX));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_memory_of_a_process_tree_is_measured() {
        let own = tree_rss_bytes(std::process::id()).expect("this process is measurable");
        assert!(own > 1024 * 1024, "{own}");
        assert_eq!(tree_rss_bytes(u32::MAX), None);
    }
}
