//! Finding the `claude` binary and checking its version.
//!
//! Order: the `cliPath` setting → `CLAUDE_LSP_CLI` → `claude` on `PATH` → `~/.claude/local/claude`
//! → `~/.local/bin/claude` (the native installer) → the npm global bin → the workspace's
//! `node_modules/.bin/claude`. A path the user named explicitly (setting or env) is decisive:
//! if it is wrong, that is reported rather than silently replaced by another binary.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::base::process::ProcessSpec;

use super::errors::{ClaudeError, redact};

/// A `major.minor.patch` CLI version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CliVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// The oldest CLI the driver supports (the oldest one the tests pin).
pub const MIN_SUPPORTED_VERSION: CliVersion = CliVersion { major: 2, minor: 1, patch: 197 };

/// The newest CLI the tests pin; newer ones are accepted and logged.
pub const NEWEST_TESTED_VERSION: CliVersion = CliVersion { major: 2, minor: 1, patch: 330 };

impl fmt::Display for CliVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why a version string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a version: {0:?}")]
pub struct ParseVersionError(String);

impl FromStr for CliVersion {
    type Err = ParseVersionError;

    /// Reads `2.1.330 (Claude Code)`, `2.1.330`, `v2.1.330` or `2.1.330-beta.1`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseVersionError(text.chars().take(80).collect());
        let token = text.split_whitespace().next().ok_or_else(error)?;
        let token = token.strip_prefix('v').unwrap_or(token);
        let mut parts = token.splitn(3, '.');
        let mut number = |last: bool| -> Result<u32, ParseVersionError> {
            let part = parts.next().ok_or_else(error)?;
            let digits = if last {
                part.split(|c: char| !c.is_ascii_digit()).next().unwrap_or_default()
            } else {
                part
            };
            digits.parse().map_err(|_| error())
        };
        Ok(Self { major: number(false)?, minor: number(false)?, patch: number(true)? })
    }
}

/// A CLI binary that was found and answered `--version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliBinary {
    /// With symlinks resolved, so the real executable (npm's `bin/claude.exe`) is spawned.
    pub path: PathBuf,
    pub version: CliVersion,
}

/// Where to look. [`DiscoverOptions::from_env`] fills it from this process's environment;
/// tests fill it by hand.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    /// The `cliPath` setting.
    pub cli_path: Option<PathBuf>,
    pub workspace: Option<PathBuf>,
    /// `PATH`.
    pub env_path: Option<OsString>,
    /// `CLAUDE_LSP_CLI`.
    pub env_cli: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// npm's global bin directory when known without running npm (`$npm_config_prefix/bin`);
    /// otherwise `npm prefix -g` runs, and only if every earlier place failed.
    pub npm_global_bin: Option<PathBuf>,
    pub version_timeout: Duration,
}

impl DiscoverOptions {
    pub fn from_env(cli_path: Option<PathBuf>, workspace: Option<PathBuf>) -> Self {
        Self {
            cli_path,
            workspace,
            env_path: std::env::var_os("PATH"),
            env_cli: std::env::var_os("CLAUDE_LSP_CLI")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            home: dirs::home_dir(),
            npm_global_bin: std::env::var_os("npm_config_prefix")
                .filter(|v| !v.is_empty())
                .map(|prefix| npm_bin_dir(Path::new(&prefix))),
            version_timeout: Duration::from_secs(10),
        }
    }
}

#[cfg(windows)]
const EXECUTABLE_NAMES: &[&str] = &["claude.exe"];
#[cfg(not(windows))]
const EXECUTABLE_NAMES: &[&str] = &["claude"];

/// Find the CLI, run `--version`, and check it is supported.
pub async fn discover(opts: &DiscoverOptions) -> Result<CliBinary, ClaudeError> {
    for (label, path) in [("cliPath setting", &opts.cli_path), ("CLAUDE_LSP_CLI", &opts.env_cli)] {
        let Some(path) = path else { continue };
        return match probe(path, opts.version_timeout).await {
            Probe::Found(binary) => Ok(binary),
            Probe::TooOld(err) => Err(err),
            Probe::Unusable(reason) => Err(ClaudeError::CliNotFound {
                searched: vec![format!("{label}: {} ({reason})", path.display())],
            }),
        };
    }

    let mut search = Search::default();
    let path_dirs: Vec<PathBuf> =
        opts.env_path.as_deref().map(|p| std::env::split_paths(p).collect()).unwrap_or_default();
    for dir in &path_dirs {
        for name in EXECUTABLE_NAMES {
            if let Some(found) = search.try_candidate(&dir.join(name), opts.version_timeout).await {
                return Ok(found);
            }
        }
    }
    let shown_path = opts.env_path.as_deref().map(|p| p.to_string_lossy().into_owned());
    search.note(format!("PATH ({})", shown_path.as_deref().unwrap_or("unset")));

    if let Some(home) = &opts.home {
        for candidate in [home.join(".claude/local/claude"), home.join(".local/bin/claude")] {
            if let Some(found) = search.try_listed(&candidate, opts.version_timeout).await {
                return Ok(found);
            }
        }
    }

    let npm_bin = match &opts.npm_global_bin {
        Some(dir) => Some(dir.clone()),
        None => npm_global_bin(&path_dirs, opts.version_timeout).await,
    };
    match npm_bin {
        Some(dir) => {
            for name in EXECUTABLE_NAMES {
                if let Some(found) = search.try_listed(&dir.join(name), opts.version_timeout).await
                {
                    return Ok(found);
                }
            }
        }
        None => search.note("npm global bin (npm not found)".to_owned()),
    }

    if let Some(workspace) = &opts.workspace {
        let candidate = workspace.join("node_modules/.bin").join(EXECUTABLE_NAMES[0]);
        if let Some(found) = search.try_listed(&candidate, opts.version_timeout).await {
            return Ok(found);
        }
    }

    Err(search.too_old.unwrap_or(ClaudeError::CliNotFound { searched: search.searched }))
}

/// What was looked at so far, for the error message.
#[derive(Default)]
struct Search {
    searched: Vec<String>,
    /// The first binary that was found but too old: reported if nothing better turns up.
    too_old: Option<ClaudeError>,
}

impl Search {
    fn note(&mut self, place: String) {
        self.searched.push(place);
    }

    /// A candidate from a directory list (PATH): only usable-but-broken ones are listed.
    async fn try_candidate(&mut self, path: &Path, timeout: Duration) -> Option<CliBinary> {
        if !path.is_file() {
            return None;
        }
        self.try_listed(path, timeout).await
    }

    /// A fixed place: listed in the error whether it exists or not.
    async fn try_listed(&mut self, path: &Path, timeout: Duration) -> Option<CliBinary> {
        match probe(path, timeout).await {
            Probe::Found(binary) => Some(binary),
            Probe::TooOld(err) => {
                self.note(format!("{} (too old)", path.display()));
                self.too_old.get_or_insert(err);
                None
            }
            Probe::Unusable(reason) => {
                self.note(format!("{} ({reason})", path.display()));
                None
            }
        }
    }
}

enum Probe {
    Found(CliBinary),
    TooOld(ClaudeError),
    Unusable(String),
}

async fn probe(path: &Path, timeout: Duration) -> Probe {
    if !path.is_file() {
        return Probe::Unusable("not found".to_owned());
    }
    if !is_executable(path) {
        return Probe::Unusable("not executable".to_owned());
    }
    let real_path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let version = match read_version(path, timeout).await {
        Ok(version) => version,
        Err(reason) => return Probe::Unusable(reason),
    };
    if version < MIN_SUPPORTED_VERSION {
        return Probe::TooOld(ClaudeError::CliTooOld {
            found: version.to_string(),
            minimum: MIN_SUPPORTED_VERSION.to_string(),
            path: real_path,
        });
    }
    if version > NEWEST_TESTED_VERSION {
        tracing::info!(
            %version,
            newest_tested = %NEWEST_TESTED_VERSION,
            "Claude Code CLI is newer than the newest tested version; continuing"
        );
    }
    tracing::debug!(path = %real_path.display(), %version, "found the Claude Code CLI");
    Probe::Found(CliBinary { path: real_path, version })
}

/// Run `<path> --version` and parse `2.1.330 (Claude Code)`.
pub async fn read_version(path: &Path, timeout: Duration) -> Result<CliVersion, String> {
    let output = ProcessSpec::new(path, std::env::temp_dir())
        .arg("--version")
        .env_remove("CLAUDECODE")
        .output(timeout)
        .await
        .map_err(|err| format!("--version failed: {}", redact(&err.to_string())))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let detail =
            if output.stderr.trim().is_empty() { stdout.trim() } else { output.stderr.trim() };
        let detail: String = redact(detail).chars().take(200).collect();
        return Err(format!("--version exited with {}: {detail}", output.status));
    }
    stdout.trim().parse().map_err(|err: ParseVersionError| format!("--version printed {err}"))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| crate::base::platform::is_executable(&meta))
}

#[cfg(windows)]
fn npm_bin_dir(prefix: &Path) -> PathBuf {
    prefix.to_owned()
}

#[cfg(not(windows))]
fn npm_bin_dir(prefix: &Path) -> PathBuf {
    prefix.join("bin")
}

/// `npm prefix -g`, run only when nothing else was found (npm takes a while to start).
async fn npm_global_bin(path_dirs: &[PathBuf], timeout: Duration) -> Option<PathBuf> {
    let npm_names: &[&str] = if cfg!(windows) { &["npm.exe"] } else { &["npm"] };
    let npm = path_dirs
        .iter()
        .flat_map(|dir| npm_names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())?;
    let output = ProcessSpec::new(&npm, std::env::temp_dir())
        .args(["prefix", "-g"])
        .output(timeout.max(Duration::from_secs(5)))
        .await
        .map_err(|err| tracing::debug!(error = %err, "npm prefix -g failed"))
        .ok()?;
    let prefix = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !prefix.is_empty()).then(|| npm_bin_dir(Path::new(&prefix)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A committed script that prints the contents of `<its invoked path>.behaviour` as its
    /// version (or hangs / fails), and acts as `npm prefix -g` when invoked as `npm`. Tests only
    /// symlink to it: writing executables while other tests fork can fail with ETXTBSY.
    fn fake_cli_script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/claude/testdata/fake_cli_version.sh")
    }

    /// Place a fake CLI at `path` that behaves as `behaviour` ("2.1.250 (Claude Code)", "hang",
    /// "fail", or any text to print).
    fn fake_cli(path: &Path, behaviour: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(fake_cli_script(), path).unwrap();
        fs::write(format!("{}.behaviour", path.display()), behaviour).unwrap();
    }

    fn options(root: &Path) -> DiscoverOptions {
        DiscoverOptions {
            cli_path: None,
            workspace: None,
            env_path: Some(root.join("empty-path-dir").into_os_string()),
            env_cli: None,
            home: Some(root.join("home")),
            npm_global_bin: Some(root.join("no-npm")),
            version_timeout: Duration::from_secs(10),
        }
    }

    fn version(text: &str) -> CliVersion {
        text.parse().unwrap()
    }

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(version("2.1.330 (Claude Code)"), CliVersion { major: 2, minor: 1, patch: 330 });
        assert_eq!(version("v2.1.197\n"), MIN_SUPPORTED_VERSION);
        assert_eq!(version("2.1.331-beta.2"), CliVersion { major: 2, minor: 1, patch: 331 });
        assert!(version("2.1.196") < MIN_SUPPORTED_VERSION);
        assert!(version("2.2.0") > NEWEST_TESTED_VERSION);
        assert_eq!(MIN_SUPPORTED_VERSION.to_string(), "2.1.197");
        for bad in ["", "Claude Code", "2.1", "2.x.3", "a.b.c"] {
            assert!(bad.parse::<CliVersion>().is_err(), "{bad:?} parsed");
        }
    }

    #[tokio::test]
    async fn the_setting_wins_and_symlinks_resolve_to_the_real_binary() {
        let root = tempfile::tempdir().unwrap();
        let setting = root.path().join("custom/claude");
        fake_cli(&setting, "2.1.300 (Claude Code)");
        fake_cli(&root.path().join("pathdir/claude"), "2.1.301 (Claude Code)");
        let mut opts = options(root.path());
        opts.cli_path = Some(setting);
        opts.env_path = Some(root.path().join("pathdir").into_os_string());
        let found = discover(&opts).await.unwrap();
        assert_eq!(found.version, version("2.1.300"));
        assert_eq!(found.path, fs::canonicalize(fake_cli_script()).unwrap());
    }

    #[tokio::test]
    async fn a_wrong_setting_is_reported_not_replaced() {
        let root = tempfile::tempdir().unwrap();
        fake_cli(&root.path().join("pathdir/claude"), "2.1.301 (Claude Code)");
        let mut opts = options(root.path());
        opts.cli_path = Some(root.path().join("missing/claude"));
        opts.env_path = Some(root.path().join("pathdir").into_os_string());
        let err = discover(&opts).await.unwrap_err();
        let ClaudeError::CliNotFound { searched } = &err else { panic!("{err:?}") };
        assert_eq!(searched.len(), 1);
        assert!(
            searched[0].starts_with("cliPath setting: ") && searched[0].ends_with("(not found)"),
            "{searched:?}"
        );
    }

    #[tokio::test]
    async fn env_var_comes_before_path() {
        let root = tempfile::tempdir().unwrap();
        let env_cli = root.path().join("env/claude");
        fake_cli(&env_cli, "2.1.302 (Claude Code)");
        fake_cli(&root.path().join("pathdir/claude"), "2.1.301 (Claude Code)");
        let mut opts = options(root.path());
        opts.env_cli = Some(env_cli);
        opts.env_path = Some(root.path().join("pathdir").into_os_string());
        assert_eq!(discover(&opts).await.unwrap().version, version("2.1.302"));
    }

    #[tokio::test]
    async fn path_is_searched_in_order_skipping_broken_binaries() {
        let root = tempfile::tempdir().unwrap();
        fake_cli(&root.path().join("a/claude"), "garbage output");
        fake_cli(&root.path().join("b/claude"), "2.1.303 (Claude Code)");
        fake_cli(&root.path().join("c/claude"), "2.1.304 (Claude Code)");
        let mut opts = options(root.path());
        opts.env_path =
            Some(std::env::join_paths(["a", "b", "c"].map(|d| root.path().join(d))).unwrap());
        assert_eq!(discover(&opts).await.unwrap().version, version("2.1.303"));
    }

    #[tokio::test]
    async fn home_locations_then_npm_then_workspace() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        let workspace = root.path().join("ws");
        fake_cli(&workspace.join("node_modules/.bin/claude"), "2.1.307 (Claude Code)");
        let mut opts = options(root.path());
        opts.workspace = Some(workspace);
        assert_eq!(discover(&opts).await.unwrap().version, version("2.1.307"));

        fake_cli(&root.path().join("npm-prefix/bin/claude"), "2.1.306 (Claude Code)");
        opts.npm_global_bin = Some(root.path().join("npm-prefix/bin"));
        assert_eq!(discover(&opts).await.unwrap().version, version("2.1.306"));

        fake_cli(&home.join(".local/bin/claude"), "2.1.305 (Claude Code)");
        assert_eq!(discover(&opts).await.unwrap().version, version("2.1.305"));

        fake_cli(&home.join(".claude/local/claude"), "2.1.304 (Claude Code)");
        assert_eq!(discover(&opts).await.unwrap().version, version("2.1.304"));
    }

    #[tokio::test]
    async fn npm_prefix_runs_when_the_global_bin_is_unknown() {
        let root = tempfile::tempdir().unwrap();
        let npm = root.path().join("npmbin/npm");
        fake_cli(&npm, "");
        fs::write(
            format!("{}.prefix", npm.display()),
            root.path().join("global").display().to_string(),
        )
        .unwrap();
        fake_cli(&root.path().join("global/bin/claude"), "2.1.308 (Claude Code)");
        let mut opts = options(root.path());
        opts.npm_global_bin = None;
        opts.env_path = Some(root.path().join("npmbin").into_os_string());
        assert_eq!(discover(&opts).await.unwrap().version, version("2.1.308"));
    }

    #[tokio::test]
    async fn too_old_is_reported_when_nothing_newer_exists() {
        let root = tempfile::tempdir().unwrap();
        fake_cli(&root.path().join("pathdir/claude"), "2.0.1 (Claude Code)");
        let mut opts = options(root.path());
        opts.env_path = Some(root.path().join("pathdir").into_os_string());
        let err = discover(&opts).await.unwrap_err();
        let ClaudeError::CliTooOld { found, minimum, .. } = &err else { panic!("{err:?}") };
        assert_eq!((found.as_str(), minimum.as_str()), ("2.0.1", "2.1.197"));
        assert!(err.to_string().contains("npm install -g @anthropic-ai/claude-code"));

        // A supported binary later in the order still wins.
        fake_cli(&root.path().join("home/.claude/local/claude"), "2.1.250 (Claude Code)");
        assert_eq!(discover(&opts).await.unwrap().version, version("2.1.250"));
    }

    #[tokio::test]
    async fn not_found_lists_every_place_and_how_to_install() {
        let root = tempfile::tempdir().unwrap();
        let mut opts = options(root.path());
        opts.workspace = Some(root.path().join("ws"));
        let err = discover(&opts).await.unwrap_err();
        let ClaudeError::CliNotFound { searched } = &err else { panic!("{err:?}") };
        let text = err.to_string();
        assert_eq!(searched.len(), 5, "{searched:#?}");
        for place in [
            "PATH (",
            ".claude/local/claude",
            ".local/bin/claude",
            "no-npm/claude",
            "ws/node_modules/.bin/claude",
        ] {
            assert!(text.contains(place), "{text} lacks {place}");
        }
        assert!(text.contains("npm install -g @anthropic-ai/claude-code"));
    }

    #[tokio::test]
    async fn a_hanging_or_failing_version_is_bounded_and_reported() {
        let root = tempfile::tempdir().unwrap();
        let hang = root.path().join("hang/claude");
        fake_cli(&hang, "hang");
        let mut opts = options(root.path());
        opts.cli_path = Some(hang);
        opts.version_timeout = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let err = discover(&opts).await.unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.contains("did not finish"), "{err}");

        let fail = root.path().join("fail/claude");
        fake_cli(&fail, "fail");
        opts.cli_path = Some(fail);
        let err = discover(&opts).await.unwrap_err().to_string();
        assert!(err.contains("exited with") && err.contains("broken"), "{err}");
    }

    #[tokio::test]
    async fn a_non_executable_file_is_skipped() {
        let root = tempfile::tempdir().unwrap();
        let plain = root.path().join("plain/claude");
        fs::create_dir_all(plain.parent().unwrap()).unwrap();
        fs::write(&plain, "not a program").unwrap();
        let mut opts = options(root.path());
        opts.cli_path = Some(plain);
        assert!(discover(&opts).await.unwrap_err().to_string().contains("not executable"));
    }
}
