//! Finding the binaries under test (the pinned real CLI, the fault-injection fake), driving a CLI
//! in stream-json mode, and listing processes to prove none is left behind.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use claude_lsp::base::process::{ChildProcess, ProcessSpec};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

use super::fake_api::CLI_ENV_TO_REMOVE;
use super::wait::poll;

/// The flags every headless driver passes (cli-protocol.md §1).
pub const STREAM_JSON_ARGS: &[&str] =
    &["-p", "--output-format", "stream-json", "--input-format", "stream-json", "--verbose"];

const INSTALL_HINT: &str =
    "install the pinned CLIs with `scripts/test` (runs everything) or `npm ci --prefix tests/cli`";

/// Which pinned CLI the tests run against: `newest` (default) or `oldest`, from
/// `CLAUDE_LSP_TEST_CLI_VERSION`.
pub fn cli_version_label() -> &'static str {
    match std::env::var("CLAUDE_LSP_TEST_CLI_VERSION").as_deref() {
        Err(_) | Ok("" | "newest") => "newest",
        Ok("oldest") => "oldest",
        Ok(other) => panic!(
            "CLAUDE_LSP_TEST_CLI_VERSION={other:?} is not a pinned version: use `newest` or `oldest`"
        ),
    }
}

/// The version the selected pinned CLI reports.
pub fn expected_cli_version() -> &'static str {
    match cli_version_label() {
        "oldest" => "2.1.197",
        _ => "2.1.330",
    }
}

/// The real `claude` binary to test against: `CLAUDE_LSP_TEST_CLI` if set, else the pinned npm
/// install selected by `CLAUDE_LSP_TEST_CLI_VERSION`. Panics (never skips) when it is missing.
pub fn real_cli() -> PathBuf {
    let (path, origin) = match std::env::var_os("CLAUDE_LSP_TEST_CLI") {
        Some(path) if !path.is_empty() => (PathBuf::from(path), "CLAUDE_LSP_TEST_CLI".to_owned()),
        _ => {
            let label = cli_version_label();
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/cli/node_modules")
                .join(format!("claude-code-{label}"))
                .join("bin/claude.exe");
            (path, format!("CLAUDE_LSP_TEST_CLI_VERSION={label}"))
        }
    };
    assert!(
        path.is_file(),
        "the Claude Code CLI for the tests is missing: looked for {} (from {origin}); {INSTALL_HINT}",
        path.display()
    );
    path
}

/// The fault-injection fake `claude` (examples/fake_claude.rs). The first call in a test process
/// runs `cargo build --example fake_claude` (a no-op when it is fresh), so a test run with
/// `--test <name>`, which does not build examples, still gets a current binary.
pub fn fake_claude() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_fake_claude).clone()
}

fn build_fake_claude() -> PathBuf {
    let test_exe = std::env::current_exe()
        .unwrap_or_else(|err| panic!("cannot locate the running test binary: {err}"));
    // <target>/<profile>/deps/<test binary> → <target>/<profile>/examples/fake_claude
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("unexpected test binary location {}", test_exe.display()));
    let binary = profile_dir.join("examples").join("fake_claude");
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(name) => name,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let spec = ProcessSpec::new(cargo, env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--quiet",
        "--example",
        "fake_claude",
        "--profile",
        profile,
    ]);
    let hint = "build it with `cargo build --example fake_claude`";
    // The caller may be inside a tokio runtime, which cannot block on another; use a thread.
    let built = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .and_then(|runtime| runtime.block_on(spec.output(Duration::from_secs(600))))
    })
    .join()
    .unwrap_or_else(|_| panic!("building the fake claude panicked"));
    match built {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!("cannot build the fake claude ({}): {}", output.status, output.stderr),
        // No cargo at run time (e.g. an archived test run): a binary built earlier will do.
        Err(err) if binary.is_file() => {
            eprintln!("cannot run cargo ({err}); using the existing {}", binary.display());
        }
        Err(err) => panic!("cannot run cargo to build the fake claude: {err}; {hint}"),
    }
    assert!(
        binary.is_file(),
        "the fake claude binary is missing at {} after building it; {hint}",
        binary.display()
    );
    binary
}

/// A throwaway home directory: HOME and CLAUDE_CONFIG_DIR (`<home>/.claude`) for one test, so the
/// CLI's state (sessions, `.claude.json`) never touches the developer's.
pub struct TestHome {
    dir: tempfile::TempDir,
}

impl TestHome {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("claude-lsp-home-")
            .tempdir()
            .unwrap_or_else(|err| panic!("cannot create a temporary HOME: {err}"));
        let config_dir = dir.path().join(".claude");
        fs::create_dir(&config_dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", config_dir.display()));
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `<home>/.claude`, the value of CLAUDE_CONFIG_DIR.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join(".claude")
    }
}

impl Default for TestHome {
    fn default() -> Self {
        Self::new()
    }
}

/// A CLI (real or fake) running in stream-json mode, driven line by line.
pub struct StreamJsonCli {
    child: ChildProcess,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl StreamJsonCli {
    /// Spawn `program` with [`STREAM_JSON_ARGS`] plus `extra_args`, in `cwd`, with `env` added
    /// (and the developer's Anthropic variables removed).
    pub fn spawn(
        program: &Path,
        cwd: &Path,
        env: &[(String, String)],
        extra_args: &[&str],
    ) -> Self {
        let spec = CLI_ENV_TO_REMOVE
            .iter()
            .fold(ProcessSpec::new(program, cwd), |spec, key| spec.env_remove(key))
            .args(STREAM_JSON_ARGS.iter().chain(extra_args))
            .envs(env.iter().map(|(key, value)| (key.as_str(), value.as_str())))
            .piped_stdin();
        let mut child = spec.spawn().unwrap_or_else(|err| panic!("cannot spawn the CLI: {err}"));
        let stdin = child.take_stdin();
        let stdout = child.take_stdout().unwrap_or_else(|| panic!("the CLI's stdout is not piped"));
        Self { child, stdin, stdout: BufReader::new(stdout).lines() }
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn stderr_tail(&self) -> String {
        self.child.stderr_tail()
    }

    /// Write one NDJSON line to the CLI's stdin.
    pub async fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().unwrap_or_else(|| panic!("stdin is already closed"));
        let mut line = message.to_string();
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .await
            .unwrap_or_else(|err| panic!("cannot write to the CLI's stdin: {err}"));
        stdin.flush().await.unwrap_or_else(|err| panic!("cannot flush the CLI's stdin: {err}"));
    }

    /// Send a user prompt, shaped as the official SDKs send it.
    pub async fn send_user(&mut self, text: &str) {
        self.send(&json!({
            "type": "user",
            "message": { "role": "user", "content": text },
            "parent_tool_use_id": null,
            "session_id": "default",
        }))
        .await;
    }

    /// Close stdin: the CLI finishes the running turn, then exits.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next stdout message; `None` at end of output. Panics on a timeout or a non-JSON line.
    pub async fn next_message(&mut self, timeout: Duration) -> Option<Value> {
        let line = tokio::time::timeout(timeout, self.stdout.next_line())
            .await
            .unwrap_or_else(|_| {
                panic!("no CLI output within {timeout:?}; stderr: {}", self.child.stderr_tail())
            })
            .unwrap_or_else(|err| panic!("cannot read the CLI's stdout: {err}"))?;
        Some(
            serde_json::from_str(&line).unwrap_or_else(|err| {
                panic!("the CLI wrote a line that is not JSON ({err}): {line}")
            }),
        )
    }

    /// Every message up to and including the next `result`. Panics if the output ends first or
    /// `timeout` passes.
    pub async fn read_until_result(&mut self, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut messages = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(message) = self.next_message(left).await else {
                panic!(
                    "the CLI's output ended before a result; got {messages:#?}; stderr: {}",
                    self.child.stderr_tail()
                );
            };
            let is_result = message.get("type").and_then(Value::as_str) == Some("result");
            messages.push(message);
            if is_result {
                return messages;
            }
        }
    }

    /// Wait for the process to exit; panics after `timeout` (the child is then killed on drop).
    pub async fn wait(&mut self, timeout: Duration) -> ExitStatus {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the CLI did not exit within {timeout:?}"))
            .unwrap_or_else(|err| panic!("cannot wait for the CLI: {err}"))
    }
}

/// A process seen in /proc. A zombie (`state == 'Z'`) has exited but its parent has not waited
/// for it yet: its `exe`, `cmdline` and environment are gone; `name`, `ppid` and `start_time`
/// remain.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    /// The state letter from /proc/<pid>/stat (`R`, `S`, `Z`, …).
    pub state: char,
    /// The command name from /proc/<pid>/stat: the executable's file name, cut to 15 bytes.
    pub name: String,
    /// When the process started (clock ticks after boot): with the pid, names one process even
    /// if the pid is used again later.
    pub start_time: u64,
    pub exe: Option<PathBuf>,
    pub cmdline: Vec<String>,
}

/// The longest command name the kernel keeps (`TASK_COMM_LEN` less its NUL).
const COMM_LEN: usize = 15;

impl ProcInfo {
    fn read(pid: u32) -> Option<Self> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may itself contain ") ", so cut at the last one.
        let (open, close) = (stat.find('(')?, stat.rfind(')')?);
        let name = stat.get(open + 1..close)?.to_owned();
        let after_name = &stat[close + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 3 (state), 4 (ppid) and 22 (starttime) of proc(5), counted from the pid.
        let state = fields.first()?.chars().next()?;
        let ppid = fields.get(1)?.parse().ok()?;
        let start_time = fields.get(19)?.parse().ok()?;
        let exe = fs::read_link(format!("/proc/{pid}/exe")).ok().map(|exe| {
            // A binary replaced on disk while running shows as "<path> (deleted)".
            let text = exe.to_string_lossy();
            PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(&text))
        });
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|raw| {
                raw.split(|&byte| byte == 0)
                    .filter(|arg| !arg.is_empty())
                    .map(|arg| String::from_utf8_lossy(arg).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        Some(Self { pid, ppid, state, name, start_time, exe, cmdline })
    }

    /// True if the process has exited and waits to be reaped by its parent.
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }

    /// True if this process runs `binary` (by its executable or its argv[0]; a zombie, which has
    /// neither any more, by its command name).
    pub fn runs(&self, binary: &Path) -> bool {
        if self.is_zombie() {
            return binary.file_name().is_some_and(|file| {
                let file = file.to_string_lossy();
                let cut = file.as_bytes().get(..COMM_LEN).unwrap_or(file.as_bytes());
                self.name.as_bytes() == cut
            });
        }
        let wanted = fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf());
        let same = |candidate: &Path| {
            candidate == binary || fs::canonicalize(candidate).is_ok_and(|path| path == wanted)
        };
        self.exe.as_deref().is_some_and(same)
            || self.cmdline.first().is_some_and(|argv0| same(Path::new(argv0)))
    }

    /// The value of `key` in the process's environment (readable for our own processes; a
    /// zombie has none).
    pub fn env_var(&self, key: &str) -> Option<String> {
        let environ = fs::read(format!("/proc/{}/environ", self.pid)).ok()?;
        environ.split(|&byte| byte == 0).find_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            entry.strip_prefix(key)?.strip_prefix('=').map(str::to_owned)
        })
    }
}

/// Every process in /proc, zombies included.
pub fn all_processes() -> Vec<ProcInfo> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter_map(ProcInfo::read)
        .collect()
}

/// Every process that is alive, zombies excluded: for "is it running?". To ask "is anything
/// left?", use [`remaining_processes`] or [`leftover_processes`], which report zombies too.
pub fn live_processes() -> Vec<ProcInfo> {
    all_processes().into_iter().filter(|process| !process.is_zombie()).collect()
}

/// Every process a test may have left behind: the live ones, and the zombies whose parent is
/// this test process or one of its descendants (a parent under test that never waited for its
/// child). A zombie adopted by init or another reaper outside the test is the system's to reap
/// (some container inits never do), so it is not reported.
pub fn remaining_processes() -> Vec<ProcInfo> {
    let all = all_processes();
    let parents: HashMap<u32, u32> =
        all.iter().map(|process| (process.pid, process.ppid)).collect();
    let test = std::process::id();
    let in_test = |mut pid: u32| {
        // Walk up the parents; the depth bound guards against a pid reused mid-listing.
        for _ in 0..64 {
            if pid == test {
                return true;
            }
            match parents.get(&pid) {
                Some(&parent) if parent != 0 && parent != pid => pid = parent,
                _ => return false,
            }
        }
        false
    };
    all.iter().filter(|process| !process.is_zombie() || in_test(process.ppid)).cloned().collect()
}

/// Processes running `binary` that are still there (see [`remaining_processes`]).
pub fn processes_running(binary: &Path) -> Vec<ProcInfo> {
    remaining_processes().into_iter().filter(|process| process.runs(binary)).collect()
}

/// The real CLI's processes that carry `home` as their HOME (a test's own), counted as the
/// sessions the server started: not the CLI's helpers, which run the same executable under
/// another name (its bundled ripgrep is `claude.exe` with argv0 `rg`) for a moment.
pub fn cli_sessions(home: &Path) -> Vec<ProcInfo> {
    let home = home.display().to_string();
    let ours: Vec<ProcInfo> = processes_running(&real_cli())
        .into_iter()
        .filter(|process| process.env_var("HOME").as_deref() == Some(home.as_str()))
        .collect();
    let pids: Vec<u32> = ours.iter().map(|process| process.pid).collect();
    ours.into_iter().filter(|process| !pids.contains(&process.ppid)).collect()
}

/// Direct children of `pid`, zombies included (a child stays one until it is reaped).
pub fn children_of(pid: u32) -> Vec<ProcInfo> {
    all_processes().into_iter().filter(|process| process.ppid == pid).collect()
}

/// Poll until no remaining process (live, or a zombie the test's processes never reaped; see
/// [`remaining_processes`]) matches `matches`, for up to `timeout`. Returns the survivors
/// (empty when everything is gone).
pub async fn leftover_processes(
    matches: impl Fn(&ProcInfo) -> bool,
    timeout: Duration,
) -> Vec<ProcInfo> {
    let survivors = async || remaining_processes().into_iter().filter(&matches).collect::<Vec<_>>();
    poll(timeout, survivors, Vec::is_empty).await
}

/// Poll until a live process matches `matches`, for up to `timeout` (a hang guard).
pub async fn wait_for_process(
    matches: impl Fn(&ProcInfo) -> bool,
    timeout: Duration,
) -> Option<ProcInfo> {
    poll(timeout, async || live_processes().into_iter().find(&matches), Option::is_some).await
}

/// The zombie children of `parent` that stay unreaped for `timeout`: children it never waited
/// for. A child that has just exited is a zombie until its parent reaps it, so only the zombies
/// seen now that are still zombies after `timeout` are reported (later ones are not looked at:
/// other tests in the same process may be ending children meanwhile).
pub async fn lasting_zombies(parent: u32, timeout: Duration) -> Vec<ProcInfo> {
    let mut zombies: Vec<ProcInfo> =
        children_of(parent).into_iter().filter(ProcInfo::is_zombie).collect();
    let still_zombies = async || {
        let now = children_of(parent);
        zombies.retain(|zombie| {
            now.iter().any(|process| {
                process.pid == zombie.pid
                    && process.start_time == zombie.start_time
                    && process.is_zombie()
            })
        });
        zombies.clone()
    };
    poll(timeout, still_zombies, Vec::is_empty).await
}
