//! `claude-lsp doctor`: is everything in place for claude-lsp to work? Where the Claude Code CLI
//! was found and whether its version is supported, how it authenticates (the source only, never
//! a secret), the platform and what it supports, git, the OS sandbox for the agent's commands, and a writable cache directory; `--smoke` also runs one real turn.
//!
//! The report goes to stdout, one check per line (`[ok]`, `[warn]`, `[fail]`); the exit code is
//! 0 when nothing failed, 1 otherwise.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::claude::args::CliOptions;
use crate::claude::control::{DenyAll, InitializeRequest};
use crate::claude::discover::{
    CliBinary, DiscoverOptions, MIN_SUPPORTED_VERSION, NEWEST_TESTED_VERSION, discover,
};
use crate::claude::errors::{ClaudeError, INSTALL_HINT, redact};
use crate::claude::session::{ClaudeSession, RunLimits, SessionConfig, run_turn};
use crate::model::settings::{Settings, parse_settings};

/// How long the CLI may take to start and answer `initialize`.
const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(30);
/// The smoke test's one turn.
const SMOKE_TIMEOUT: Duration = Duration::from_secs(120);
const SMOKE_PROMPT: &str = "This is a connectivity check. Reply with exactly the word: ok";

/// `claude-lsp doctor [--smoke]`
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Also run one real turn against the API (costs a few tokens).
    #[arg(long)]
    pub smoke: bool,
    /// Settings as the editor would send them: a JSON object, or `@FILE` holding one (their
    /// `cliPath` and `env` matter here).
    #[arg(long, value_name = "JSON|@FILE")]
    pub settings: Option<String>,
    /// The `claude` executable to check.
    #[arg(long, value_name = "PATH")]
    pub cli: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "[ok]  ",
            Status::Warn => "[warn]",
            Status::Fail => "[fail]",
        }
    }
}

struct Check {
    name: &'static str,
    status: Status,
    detail: String,
}

impl Check {
    fn new(name: &'static str, status: Status, detail: impl Into<String>) -> Self {
        // Whatever a check quotes (an error, a path) passes through secret redaction.
        Self { name, status, detail: redact(&detail.into()).into_owned() }
    }
}

/// Run the `doctor` subcommand; returns the process exit code.
pub async fn main(args: DoctorArgs) -> u8 {
    let checks = run_checks(&args).await;
    let mut report = format!("claude-lsp {} doctor\n", env!("CARGO_PKG_VERSION"));
    for check in &checks {
        let mut lines = check.detail.lines();
        let first = lines.next().unwrap_or_default();
        let _ = writeln!(report, "{} {:<17} {first}", check.status.label(), check.name);
        for line in lines {
            let _ = writeln!(report, "{:7}{:<18}{line}", "", "");
        }
    }
    let failed = checks.iter().filter(|check| check.status == Status::Fail).count();
    let _ = match failed {
        0 => writeln!(report, "Everything claude-lsp needs is in place."),
        1 => writeln!(report, "1 check failed."),
        n => writeln!(report, "{n} checks failed."),
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(report.as_bytes()).and_then(|()| stdout.flush());
    u8::from(failed > 0)
}

async fn run_checks(args: &DoctorArgs) -> Vec<Check> {
    let mut checks = Vec::new();
    let settings = match load_settings(args.settings.as_deref()) {
        Ok(settings) => settings,
        Err(message) => {
            checks.push(Check::new("Settings", Status::Fail, message));
            Settings::default()
        }
    };
    // A relative --cli is relative to where the user typed it.
    let flag =
        args.cli.as_ref().map(|cli| std::path::absolute(cli).unwrap_or_else(|_| cli.clone()));
    let cli_path = flag.or_else(|| settings.cli_path.clone());
    let env = effective_env(&settings);

    checks.push(check_platform());
    let cli = check_cli(&mut checks, cli_path, args.cli.is_some()).await;
    let account = match &cli {
        Some(cli) => ask_account(cli, &settings).await,
        None => Err("skipped: no usable CLI".to_owned()),
    };
    checks.push(check_auth(&env, account));
    checks.push(check_git().await);
    checks.push(check_sandbox(&settings));
    checks.push(check_cache_dir());
    if args.smoke {
        checks.push(match &cli {
            Some(cli) => smoke(cli, &settings).await,
            None => Check::new("Smoke test", Status::Fail, "skipped: no usable CLI"),
        });
    }
    checks
}

fn load_settings(arg: Option<&str>) -> Result<Settings, String> {
    let Some(arg) = arg else { return Ok(Settings::default()) };
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read the settings file {path}: {err}"))?,
        None => arg.to_owned(),
    };
    let value: Value = serde_json::from_str(&text)
        .map_err(|err| format!("--settings is not valid JSON: {err}"))?;
    let (settings, warnings) = parse_settings(Some(&value));
    match warnings.is_empty() {
        true => Ok(settings),
        false => Err(warnings.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")),
    }
}

/// The environment the CLI would run with: ours, with the settings' `env` over it.
fn effective_env(settings: &Settings) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = std::env::vars().collect();
    env.extend(settings.cli_env());
    env
}

/// Where the CLI is and whether its version is supported.
async fn check_cli(
    checks: &mut Vec<Check>,
    cli_path: Option<PathBuf>,
    from_flag: bool,
) -> Option<CliBinary> {
    let source = match (&cli_path, std::env::var_os("CLAUDE_LSP_CLI").filter(|v| !v.is_empty())) {
        (Some(_), _) if from_flag => "named by --cli",
        (Some(_), _) => "named by the cliPath setting",
        (None, Some(_)) => "named by CLAUDE_LSP_CLI",
        (None, None) => "found on the search path",
    };
    let workspace = std::env::current_dir().ok();
    match discover(&DiscoverOptions::from_env(cli_path, workspace)).await {
        Ok(cli) => {
            checks.push(Check::new(
                "Claude Code CLI",
                Status::Ok,
                format!("{} ({source})", cli.path.display()),
            ));
            let (status, note) = if cli.version > NEWEST_TESTED_VERSION {
                (
                    Status::Ok,
                    format!("supported; newer than the newest tested, {NEWEST_TESTED_VERSION}"),
                )
            } else {
                (Status::Ok, format!("supported ({MIN_SUPPORTED_VERSION} or newer)"))
            };
            checks.push(Check::new("Version", status, format!("{} — {note}", cli.version)));
            Some(cli)
        }
        Err(err @ ClaudeError::CliTooOld { .. }) => {
            checks.push(Check::new(
                "Claude Code CLI",
                Status::Fail,
                format!("{err}\n{}", err.hint()),
            ));
            None
        }
        Err(ClaudeError::CliNotFound { searched }) => {
            let mut detail = String::from("not found. Looked in:");
            for place in &searched {
                let _ = write!(detail, "\n  {place}");
            }
            let _ = write!(
                detail,
                "\nInstall it with `{INSTALL_HINT}`, or name it with the `cliPath` setting or CLAUDE_LSP_CLI."
            );
            checks.push(Check::new("Claude Code CLI", Status::Fail, detail));
            None
        }
        Err(err) => {
            checks.push(Check::new(
                "Claude Code CLI",
                Status::Fail,
                format!("{err}\n{}", err.hint()),
            ));
            None
        }
    }
}

/// What the CLI itself says about its credentials: the `account` of its `initialize` answer
/// (`apiKeySource`, `tokenSource`, `apiProvider`). Starts the CLI but makes no API call.
async fn ask_account(cli: &CliBinary, settings: &Settings) -> Result<Value, String> {
    let dir =
        ScratchDir::create().map_err(|err| format!("cannot create a scratch directory: {err}"))?;
    let session = ClaudeSession::spawn(scratch_config(cli, settings, dir.path()))
        .await
        .map_err(|err| err.to_string())?;
    let answer = session.initialize(InitializeRequest::default(), INITIALIZE_TIMEOUT).await;
    session.shutdown().await;
    let answer = answer.map_err(|err| err.to_string())?;
    answer.get("account").cloned().ok_or_else(|| "the CLI did not describe its account".to_owned())
}

/// An empty directory of our own under the temp dir, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn create() -> std::io::Result<Self> {
        let name =
            format!("claude-lsp-doctor-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path)?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CLI in a scratch directory with no tools: nothing it does can touch the user's files.
fn scratch_config(cli: &CliBinary, settings: &Settings, dir: &Path) -> SessionConfig {
    SessionConfig {
        binary: cli.path.clone(),
        options: CliOptions {
            model: settings.model.clone(),
            tools: Some(Vec::new()),
            max_turns: Some(1),
            no_session_persistence: true,
            ..CliOptions::default()
        },
        cwd: dir.to_path_buf(),
        env: settings.cli_env(),
        handler: Arc::new(DenyAll),
    }
}

/// Which credentials are there (by name only), and which one the CLI uses.
fn check_auth(env: &BTreeMap<String, String>, account: Result<Value, String>) -> Check {
    let set = |name: &str| env.get(name).is_some_and(|value| !value.trim().is_empty());
    let mut found: Vec<String> =
        ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"]
            .into_iter()
            .filter(|name| set(name))
            .map(|name| format!("{name} is set"))
            .collect();
    for (name, provider) in [
        ("CLAUDE_CODE_USE_BEDROCK", "Amazon Bedrock"),
        ("CLAUDE_CODE_USE_VERTEX", "Google Vertex AI"),
    ] {
        if env.get(name).is_some_and(|value| value == "1" || value == "true") {
            found.push(format!("{provider} ({name})"));
        }
    }
    let config_dir = env
        .get("CLAUDE_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| env.get("HOME").map(|home| Path::new(home).join(".claude")));
    if let Some(credentials) = config_dir.map(|dir| dir.join(".credentials.json"))
        && credentials.is_file()
    {
        found.push(format!("a /login in {}", credentials.display()));
    }
    let local = if found.is_empty() { "no credentials found".to_owned() } else { found.join("; ") };
    match account {
        Ok(account) => {
            let field = |key: &str| {
                account.get(key).and_then(Value::as_str).filter(|v| !v.is_empty() && *v != "none")
            };
            let provider = field("apiProvider").filter(|p| *p != "firstParty");
            let used = match (field("apiKeySource"), field("tokenSource"), provider) {
                (Some(source), _, _) => Some(format!("API key from {source}")),
                (None, Some(source), _) => Some(format!("OAuth token from {source}")),
                (None, None, Some(provider)) => Some(format!("{provider} credentials")),
                (None, None, None) => None,
            };
            match used {
                Some(used) => Check::new("Authentication", Status::Ok, format!("{used} ({local})")),
                None => Check::new(
                    "Authentication",
                    Status::Fail,
                    format!(
                        "not logged in ({local}). Run `claude` in a terminal and log in with /login, or set ANTHROPIC_API_KEY (in the environment or the `env` setting)."
                    ),
                ),
            }
        }
        // Without the CLI's word, say what is there.
        Err(why) => {
            let status = if found.is_empty() { Status::Fail } else { Status::Warn };
            Check::new(
                "Authentication",
                status,
                format!("{local} (not confirmed by the CLI: {why})"),
            )
        }
    }
}

/// The OS, the sandbox it offers, and what is not supported there (a warning where the test
/// suite does not run end to end).
fn check_platform() -> Check {
    platform_check(std::env::consts::OS, std::env::consts::ARCH)
}

fn platform_check(os: &str, arch: &str) -> Check {
    let support = crate::base::platform::support(os);
    let status = if support.tested { Status::Ok } else { Status::Warn };
    let tested = if support.tested { "tested end to end" } else { "type-checked only" };
    Check::new(
        "Platform",
        status,
        format!(
            "{os} {arch} ({tested})\nsandbox: {}\ncontained: {}\nnot contained: {}\n\
             children end with the server by: {}\nnot supported: {}",
            support.sandbox,
            support.contained,
            support.not_contained,
            support.cleanup,
            support.not_supported
        ),
    )
}

/// Whether the agent's commands run in the OS sandbox, and what it means when they cannot.
fn check_sandbox(settings: &Settings) -> Check {
    use crate::engine::sandbox::{Availability, OPT_OUT_SETTING, availability};
    match availability(settings) {
        Availability::Available(mechanism) => Check::new(
            "Sandbox",
            Status::Ok,
            format!(
                "{mechanism}: Bash commands run sandboxed (they write only in the run's root, \
                 cannot read credentials, reach the network only as WebFetch rules allow)"
            ),
        ),
        Availability::Unavailable(why) if settings.dangerously_allow_unsandboxed_bash => {
            Check::new(
                "Sandbox",
                Status::Warn,
                format!(
                    "unavailable ({why}); {OPT_OUT_SETTING} is set: Bash runs unsandboxed, \
                     contained only by argument checks"
                ),
            )
        }
        Availability::Unavailable(why) => Check::new(
            "Sandbox",
            Status::Warn,
            format!(
                "unavailable ({why}): Bash is refused. Install bubblewrap and socat \
                 (apt install bubblewrap socat), or set {OPT_OUT_SETTING}: true"
            ),
        ),
    }
}

async fn check_git() -> Check {
    let dir = std::env::temp_dir();
    let output = crate::base::git::Git::new(&dir).arg("--version").run().await;
    match output {
        Ok(output) => {
            Check::new("git", Status::Ok, String::from_utf8_lossy(&output).trim().to_owned())
        }
        _ => Check::new(
            "git",
            Status::Warn,
            "not found: edit actions then copy the workspace (up to `stagingMaxCopyMb`) instead of mirroring its repository, and review of uncommitted changes is unavailable",
        ),
    }
}

/// The server keeps mirrors, answers and logs here; it must be writable.
fn check_cache_dir() -> Check {
    let dir = crate::base::paths::default_cache_dir();
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&probe, b"ok"))
        .and_then(|()| std::fs::remove_file(&probe));
    match written {
        Ok(()) => {
            Check::new("Cache directory", Status::Ok, format!("{} (writable)", dir.display()))
        }
        Err(err) => Check::new(
            "Cache directory",
            Status::Fail,
            format!(
                "{} is not writable: {err}. Set XDG_CACHE_HOME to a writable directory.",
                dir.display()
            ),
        ),
    }
}

/// One real turn: the whole path from this machine to the API and back.
async fn smoke(cli: &CliBinary, settings: &Settings) -> Check {
    let dir = match ScratchDir::create() {
        Ok(dir) => dir,
        Err(err) => {
            return Check::new(
                "Smoke test",
                Status::Fail,
                format!("cannot create a scratch directory: {err}"),
            );
        }
    };
    let started = Instant::now();
    let session = match ClaudeSession::spawn(scratch_config(cli, settings, dir.path())).await {
        Ok(session) => session,
        Err(err) => {
            return Check::new("Smoke test", Status::Fail, format!("{err}\n{}", err.hint()));
        }
    };
    let limits = RunLimits { timeout: SMOKE_TIMEOUT, idle_timeout: None };
    let cancel = CancellationToken::new();
    let outcome = run_turn(&session, SMOKE_PROMPT, limits, &cancel, &mut |_| {}).await;
    session.shutdown().await;
    match outcome {
        Ok(result) => {
            let answer: String = result.text.trim().chars().take(60).collect();
            let model = result.model.as_deref().unwrap_or("unknown model");
            Check::new(
                "Smoke test",
                Status::Ok,
                format!(
                    "answered {answer:?} in {:.1} s ({model}, ${:.4})",
                    started.elapsed().as_secs_f64(),
                    result.cost_usd
                ),
            )
        }
        Err(err) => Check::new("Smoke test", Status::Fail, format!("{err}\n{}", err.hint())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn windows_is_reported_with_what_is_and_is_not_contained() {
        let check = platform_check("windows", "x86_64");
        assert_eq!(check.status, Status::Warn);
        let lines: Vec<&str> = check.detail.lines().collect();
        assert_eq!(lines[0], "windows x86_64 (type-checked only)");
        assert!(lines[1].starts_with("sandbox: none used") && lines[1].contains("srt-win"));
        assert!(lines[2].starts_with("contained: the agent's file tools"), "{}", lines[2]);
        assert!(lines[3].starts_with("not contained: a program Bash runs"), "{}", lines[3]);
        assert_eq!(lines[4], "children end with the server by: a Job Object per CLI process");
        let linux = platform_check("linux", "x86_64");
        assert_eq!(linux.status, Status::Ok);
        assert!(linux.detail.contains("contained: Bash commands, by the OS sandbox"));
    }

    #[test]
    fn auth_names_the_source_and_never_the_secret() {
        let secret = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789";
        let vars = env(&[("ANTHROPIC_API_KEY", secret), ("HOME", "/nonexistent")]);
        let account = json!({"apiKeySource": "ANTHROPIC_API_KEY", "tokenSource": "none", "apiProvider": "firstParty"});
        let check = check_auth(&vars, Ok(account));
        assert_eq!(check.status, Status::Ok);
        assert_eq!(check.detail, "API key from ANTHROPIC_API_KEY (ANTHROPIC_API_KEY is set)");
        assert!(!check.detail.contains(secret));
    }

    #[test]
    fn no_credentials_is_a_failure_with_the_way_to_log_in() {
        let vars = env(&[("HOME", "/nonexistent")]);
        let account =
            json!({"apiKeySource": "none", "tokenSource": "none", "apiProvider": "firstParty"});
        let check = check_auth(&vars, Ok(account));
        assert_eq!(check.status, Status::Fail);
        assert!(check.detail.contains("/login"), "{}", check.detail);
        let unconfirmed = check_auth(&vars, Err("skipped: no usable CLI".into()));
        assert_eq!(unconfirmed.status, Status::Fail);
        let with_token =
            check_auth(&env(&[("CLAUDE_CODE_OAUTH_TOKEN", "x")]), Err("skipped".into()));
        assert_eq!(with_token.status, Status::Warn);
    }

    #[test]
    fn a_login_file_and_other_providers_are_recognised() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".claude")).unwrap();
        std::fs::write(home.path().join(".claude/.credentials.json"), "{}").unwrap();
        let vars =
            env(&[("HOME", home.path().to_str().unwrap()), ("CLAUDE_CODE_USE_BEDROCK", "1")]);
        let account =
            json!({"apiKeySource": "none", "tokenSource": "none", "apiProvider": "bedrock"});
        let check = check_auth(&vars, Ok(account));
        assert_eq!(check.status, Status::Ok);
        assert!(check.detail.starts_with("bedrock credentials"), "{}", check.detail);
        assert!(
            check.detail.contains("Amazon Bedrock") && check.detail.contains(".credentials.json")
        );
    }
}
