//! The OS sandbox around everything the agent executes: the CLI's own (bubblewrap + socat on
//! Linux, Seatbelt on macOS), configured for each run through `--settings` (its `sandbox` key).
//!
//! Checking a Bash command's arguments ([`crate::engine::permissions`]) is a first filter and the basis
//! of the permission question; this is what holds: a sandboxed command can write only inside the
//! run's root (the mirror of an edit run; nothing at all for read-only runs), cannot read the
//! secrets listed in [`denied_reads`], reaches only the network domains a `WebFetch` rule allows,
//! and lives in a PID namespace that bubblewrap tears down when the CLI dies
//! (`--die-with-parent`).
//!
//! Where no sandbox is available, Bash is refused unless `dangerouslyAllowUnsandboxedBash` says
//! otherwise ([`bash_refusal`]).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::base::error::{ErrorKind, ServerError};
use crate::base::secrets::is_secret_name;
use crate::engine::permissions::rules::{ToolRule, parse_rules};
use crate::model::settings::Settings;
use crate::model::transcripts::cli_config_dir;

/// The setting that lets Bash run without a sandbox.
pub const OPT_OUT_SETTING: &str = "dangerouslyAllowUnsandboxedBash";

/// Whether the CLI can sandbox its commands on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// What confines the commands (`bubblewrap` or `Seatbelt`).
    Available(&'static str),
    /// Why not, in words.
    Unavailable(String),
}

impl Availability {
    pub fn is_available(&self) -> bool {
        matches!(self, Self::Available(_))
    }
}

/// The sandbox state for a CLI spawned with `settings` (whose `env` may set `PATH`). Decided as
/// the CLI decides it — the platform, then `bwrap` and `socat` on `PATH` — once per `PATH`.
pub fn availability(settings: &Settings) -> Availability {
    static CACHE: OnceLock<Mutex<HashMap<Option<OsString>, Availability>>> = OnceLock::new();
    let path = settings.env.get("PATH").map(OsString::from).or_else(|| std::env::var_os("PATH"));
    let mut cache = CACHE.get_or_init(Mutex::default).lock();
    cache.entry(path.clone()).or_insert_with(|| detect(path.as_deref())).clone()
}

fn detect(path: Option<&std::ffi::OsStr>) -> Availability {
    if cfg!(target_os = "macos") {
        return if Path::new("/usr/bin/sandbox-exec").is_file() {
            Availability::Available("Seatbelt")
        } else {
            Availability::Unavailable("sandbox-exec (Seatbelt) is missing".to_owned())
        };
    }
    if !cfg!(target_os = "linux") {
        return Availability::Unavailable(format!(
            "Claude Code has no command sandbox on {}",
            std::env::consts::OS
        ));
    }
    let missing: Vec<&str> = ["bwrap", "socat"]
        .into_iter()
        .filter(|program| find_executable(program, path).is_none())
        .collect();
    if missing.is_empty() {
        Availability::Available("bubblewrap")
    } else {
        Availability::Unavailable(format!("{} not found on PATH", missing.join(" and ")))
    }
}

/// `program` in one of `path`'s directories, executable.
fn find_executable(program: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?).map(|dir| dir.join(program)).find(|candidate| {
        std::fs::metadata(candidate).is_ok_and(|meta| crate::base::platform::is_executable(&meta))
    })
}

/// Why Bash may not run under `settings`, or `None` when it may (sandboxed, or opted out).
pub fn bash_refusal(settings: &Settings) -> Option<ServerError> {
    match availability(settings) {
        Availability::Available(_) => None,
        Availability::Unavailable(_) if settings.dangerously_allow_unsandboxed_bash => None,
        Availability::Unavailable(why) => Some(ServerError::new(
            ErrorKind::SANDBOX_UNAVAILABLE,
            format!("Bash is refused: its commands cannot be sandboxed here ({why})"),
            format!(
                "install bubblewrap and socat (e.g. `apt install bubblewrap socat`), or set \
                 `{OPT_OUT_SETTING}: true` to run Bash contained only by argument checks"
            ),
        )),
    }
}

/// The `--settings` object for a run in `root` (the mirror for edit runs, else the workspace),
/// or `None` when no sandbox is available (Bash is then refused or, opted out, unsandboxed).
pub fn cli_settings(root: &Path, may_edit: bool, settings: &Settings) -> Option<Value> {
    availability(settings).is_available().then(|| sandbox_config(root, may_edit, settings))
}

fn sandbox_config(root: &Path, may_edit: bool, settings: &Settings) -> Value {
    let home = settings.cli_home();
    let mut allow_read: Vec<PathBuf> = vec![root.to_path_buf()];
    allow_read.extend(settings.additional_directories.iter().cloned());
    let allow_write: Vec<PathBuf> = if may_edit { vec![root.to_path_buf()] } else { Vec::new() };
    // The CLI always lets a command write its working directory: a read-only run takes it back.
    let deny_write: Vec<PathBuf> = if may_edit { Vec::new() } else { vec![root.to_path_buf()] };
    let deny_read = denied_reads(&home, cli_config_dir(&settings.env).as_deref());
    let files: Vec<Value> =
        deny_read.iter().map(|path| json!({"path": path, "mode": "deny"})).collect();
    let env_vars: Vec<Value> = secret_env_names(settings)
        .iter()
        .map(|name| json!({"name": name, "mode": "deny"}))
        .collect();
    json!({
        "sandbox": {
            "enabled": true,
            // Never fall back to running commands unsandboxed.
            "failIfUnavailable": true,
            "allowUnsandboxedCommands": false,
            "excludedCommands": [],
            // Our permission flow (rules, then the editor's question) decides every command.
            "autoAllowBashIfSandboxed": false,
            "filesystem": {
                "allowWrite": allow_write,
                "denyWrite": deny_write,
                "denyRead": deny_read,
                "allowRead": allow_read,
            },
            "credentials": { "files": files, "envVars": env_vars },
            "network": { "allowedDomains": allowed_domains(settings) },
        }
    })
}

/// The secret-looking variables of the CLI's environment (ours plus `env`): unset for sandboxed
/// commands, so that `echo $ANTHROPIC_API_KEY` shows the model nothing.
fn secret_env_names(settings: &Settings) -> Vec<String> {
    let inherited = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
    let mut names: Vec<String> = inherited
        .chain(settings.env.keys().cloned())
        .filter(|name| is_secret_name(name))
        // The CLI rejects settings naming anything else.
        .filter(|name| {
            name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// What sandboxed commands may never read: credentials in the CLI's home and config dir, and
/// other users' homes (`allowRead` gives back the run's root and `additionalDirectories`).
pub fn denied_reads(home: &Path, config_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = [
        ".ssh",
        ".aws",
        ".gnupg",
        ".netrc",
        ".config/gh",
        ".config/gcloud",
        ".docker/config.json",
        ".kube",
        ".claude/.credentials.json",
        ".claude.json",
    ]
    .into_iter()
    .map(|name| home.join(name))
    .collect();
    if let Some(dir) = config_dir {
        paths.push(dir.join(".credentials.json"));
        paths.push(dir.join(".claude.json"));
    }
    for others in [Path::new("/home"), Path::new("/root")] {
        if !home.starts_with(others) {
            paths.push(others.to_path_buf());
        } else if let Ok(entries) = std::fs::read_dir(others) {
            // The CLI's own home is in there: only its neighbours are denied.
            paths.extend(entries.flatten().map(|e| e.path()).filter(|p| !home.starts_with(p)));
        }
    }
    paths.dedup();
    paths
}

/// The network domains sandboxed commands may reach: those `WebFetch(domain:…)` rules allow.
fn allowed_domains(settings: &Settings) -> Vec<String> {
    let rules = parse_rules(&settings.allowed_tools);
    rules.iter().filter_map(ToolRule::web_fetch_domain).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn an_empty_path_has_no_sandbox_on_linux() {
        if cfg!(target_os = "linux") {
            assert_eq!(
                detect(Some(std::ffi::OsStr::new(""))),
                Availability::Unavailable("bwrap and socat not found on PATH".to_owned())
            );
        }
    }

    #[test]
    fn other_homes_are_denied_but_not_the_one_in_use() {
        let denied = denied_reads(Path::new("/home/u"), Some(Path::new("/cfg")));
        assert!(denied.contains(&PathBuf::from("/home/u/.ssh")));
        assert!(denied.contains(&PathBuf::from("/cfg/.credentials.json")));
        assert!(denied.contains(&PathBuf::from("/root")));
        assert!(!denied.contains(&PathBuf::from("/home")));
        assert!(denied_reads(Path::new("/tmp/h"), None).contains(&PathBuf::from("/home")));
    }

    #[test]
    fn read_only_runs_may_write_nothing() {
        let settings = Settings::default();
        let config = sandbox_config(Path::new("/ws"), false, &settings);
        let fs = &config["sandbox"]["filesystem"];
        assert_eq!(fs["allowWrite"], json!([]));
        assert_eq!(fs["denyWrite"], json!(["/ws"]));
        let edit = sandbox_config(Path::new("/mirror"), true, &settings);
        assert_eq!(edit["sandbox"]["filesystem"]["allowWrite"], json!(["/mirror"]));
        assert_eq!(edit["sandbox"]["allowUnsandboxedCommands"], json!(false));
        assert_eq!(edit["sandbox"]["network"]["allowedDomains"], json!([]));
    }

    #[test]
    fn secret_variables_are_unset_for_commands() {
        let settings = Settings {
            env: [("MY_SERVICE_TOKEN", "t"), ("PATH", "/bin"), ("BAD-KEY", "x")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            ..Settings::default()
        };
        let names = secret_env_names(&settings);
        assert!(names.contains(&"MY_SERVICE_TOKEN".to_owned()), "{names:?}");
        assert!(!names.iter().any(|name| name == "PATH" || name == "BAD-KEY"), "{names:?}");
    }
}
