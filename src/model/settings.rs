//! Settings from `initializationOptions` and the `claude` section of `workspace/configuration`.
//!
//! Parsing never fails. Settings are read field by field, so one bad value costs only that value:
//! it falls back to its default and produces a [`SettingsWarning`] the server shows to the user.
//! Unknown fields are ignored with a warning (with a "did you mean" hint for near misses).
//!
//! `env` and `mcpServers` may hold secrets (API keys, tokens). They never leave this type in
//! clear text except through [`Settings::cli_env`] and the fields themselves: `Debug` and
//! `Serialize` redact them, and warnings describe their values by type only.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::base::logging::LogLevel;
use crate::base::secrets::is_secret_name;
use crate::base::text::json_kind;

/// The configuration section (and the prefix of every field name in warnings).
const SECTION: &str = "claude";

/// The env var the CLI reads for its own API retry count (cli-protocol.md §1.3).
const CLI_MAX_RETRIES_VAR: &str = "CLAUDE_CODE_MAX_RETRIES";

/// The env var that keeps the CLI's git snapshot (branch, `git status`, the last five commits)
/// and its commit/PR instructions out of the system prompt. Without it the CLI runs six git
/// commands when it starts and again after every `/clear`; a run's prompt carries what it needs
/// (a review its diff), commits are never the agent's to make, and in a staging mirror that
/// snapshot describes the mirror, not the user's repository. `env` can set it to the empty
/// string to have the snapshot back (the CLI reads any other value as "disable").
const CLI_GIT_CONTEXT_VAR: &str = "CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS";

/// What secret values are shown as (`env` names that hold secrets: [`is_secret_name`]).
const REDACTED: &str = "<redacted>";

/// Longest duration setting accepted: one week. Larger values would overflow `Instant`
/// arithmetic in timers, and nobody means them.
const MAX_SECONDS: u64 = 7 * 24 * 60 * 60;

/// How much of a bad value a warning quotes.
const MAX_QUOTED_CHARS: usize = 60;

/// The `--permission-mode` values both pinned CLIs accept (2.1.197 and 2.1.330). 2.1.330 calls
/// `default` `manual`; that spelling is accepted here too and stored as `default`.
pub const PERMISSION_MODES: [&str; 5] =
    ["default", "acceptEdits", "plan", "bypassPermissions", "dontAsk"];

/// Every setting name, as written by the user (camelCase, without the `claude.` prefix).
const SETTING_NAMES: [&str; 36] = [
    "cliPath",
    "model",
    "fallbackModel",
    "maxTurns",
    "appendSystemPrompt",
    "allowedTools",
    "disallowedTools",
    "timeoutSecs",
    "idleTimeoutSecs",
    "maxConcurrent",
    "env",
    "warmPool",
    "poolIdleSecs",
    "maxBudgetUsd",
    "dailyBudgetUsd",
    "logLevel",
    "logFile",
    "permissionMode",
    "permissionTimeoutSecs",
    "additionalDirectories",
    "mcpServers",
    "requestsPerMinute",
    "maxRetries",
    "sessionIdleSecs",
    "liveSessions",
    "maxIdleMemoryMb",
    "stagingMaxCopyMb",
    "maxRetriesCli",
    "circuitFailureThreshold",
    "circuitCooldownSecs",
    "dangerouslyAllowUnsandboxedBash",
    "delivery",
    "systemPrompt",
    "agents",
    "resultCache",
    // Accepted for symmetry with VS Code's `contributes.configuration`; see `apply_field`.
    "serverPath",
];

/// The server's settings. `Debug` and `Serialize` redact secrets (see the module docs).
#[derive(Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// The `claude` executable; `None`: discover it.
    pub cli_path: Option<PathBuf>,
    pub model: Option<String>,
    pub fallback_model: Option<String>,
    pub max_turns: Option<u32>,
    pub append_system_prompt: Option<String>,
    pub allowed_tools: Vec<String>,
    pub disallowed_tools: Vec<String>,
    /// Wall-clock limit of one run.
    pub timeout_secs: u64,
    /// A run that shows no activity for this long is stopped.
    pub idle_timeout_secs: u64,
    /// At most this many CLI processes at once; more requests wait in a queue.
    pub max_concurrent: usize,
    /// Extra environment for the CLI (may hold an API key: redacted in `Debug`/`Serialize`).
    #[serde(serialize_with = "serialize_redacted_env")]
    pub env: BTreeMap<String, String>,
    /// CLI processes kept started ahead of need; 0 disables the pool.
    pub warm_pool: usize,
    /// A warm process unused for this long is stopped.
    pub pool_idle_secs: u64,
    /// The CLI's own `--max-budget-usd` per run.
    pub max_budget_usd: Option<f64>,
    /// Runs are refused once the day's cost reaches this.
    pub daily_budget_usd: Option<f64>,
    pub log_level: LogLevel,
    pub log_file: Option<PathBuf>,
    /// The CLI's `--permission-mode`; one of [`PERMISSION_MODES`].
    pub permission_mode: Option<String>,
    /// How long a permission question waits for the user before it is denied.
    pub permission_timeout_secs: u64,
    /// Absolute directories the CLI may use besides the workspace (`--add-dir`).
    pub additional_directories: Vec<PathBuf>,
    /// MCP server configs by name, the value of `--mcp-config`'s `mcpServers`.
    #[serde(serialize_with = "serialize_redacted_mcp")]
    pub mcp_servers: Option<Value>,
    /// Client-side rate limit on runs started.
    pub requests_per_minute: Option<u32>,
    /// How often the server retries a run after 429/529/5xx.
    pub max_retries: u32,
    /// A conversation's CLI process, kept alive for its next turn, closes after this long unused
    /// (its next turn then resumes it in a new process).
    pub session_idle_secs: u64,
    /// At most this many conversations keep their CLI process alive between turns (~230 MB
    /// each); 0: every follow-up resumes its conversation in a new process.
    pub live_sessions: usize,
    /// The most memory (RSS, MB) the idle CLI processes may hold together: warm ones and live
    /// conversations'; beyond it the least recently used goes. `None`: no budget. Measured on
    /// Linux only (elsewhere there is no budget).
    pub max_idle_memory_mb: Option<u64>,
    /// Size cap of the plain copy used as a mirror for workspaces outside git.
    pub staging_max_copy_mb: u64,
    /// `CLAUDE_CODE_MAX_RETRIES` given to the CLI (its own default of 10 means minutes of
    /// backoff before the server hears about an outage).
    pub max_retries_cli: u32,
    /// Consecutive API failures (within a minute) that stop new runs for a while.
    pub circuit_failure_threshold: u32,
    /// How long new runs are refused once the API keeps failing, before one probe goes through.
    pub circuit_cooldown_secs: u64,
    /// Let Bash run where the OS sandbox is unavailable (its commands are then contained only
    /// by the argument checks). Off: Bash is refused there.
    pub dangerously_allow_unsandboxed_bash: bool,
    /// How a command run's edit reaches the files: applied at once, or offered hunk by hunk.
    pub delivery: Delivery,
    /// Replaces the CLI's whole system prompt (`--system-prompt`); each action's own
    /// instructions and `appendSystemPrompt` are still appended.
    pub system_prompt: Option<String>,
    /// Custom subagents by name, in the CLI's `--agents` shape:
    /// `{name: {description, prompt, tools?, model?}}`.
    pub agents: Option<Value>,
    /// Answer an analyze or review whose inputs are unchanged from the result cache.
    pub result_cache: bool,
}

/// The `delivery` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Delivery {
    /// A command run's edit goes to the editor through `workspace/applyEdit` at once.
    #[default]
    Apply,
    /// Each hunk is shown where it lands and applied or discarded on its own (code actions).
    Review,
}

impl Delivery {
    const ALL: [Delivery; 2] = [Delivery::Apply, Delivery::Review];

    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Apply => "apply",
            Delivery::Review => "review",
        }
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cli_path: None,
            model: None,
            fallback_model: None,
            max_turns: None,
            append_system_prompt: None,
            allowed_tools: Vec::new(),
            disallowed_tools: Vec::new(),
            timeout_secs: 300,
            idle_timeout_secs: 120,
            max_concurrent: 4,
            env: BTreeMap::new(),
            warm_pool: 1,
            pool_idle_secs: 600,
            max_budget_usd: None,
            daily_budget_usd: None,
            log_level: LogLevel::Info,
            log_file: None,
            permission_mode: None,
            permission_timeout_secs: 60,
            additional_directories: Vec::new(),
            mcp_servers: None,
            requests_per_minute: None,
            max_retries: 3,
            session_idle_secs: 900,
            live_sessions: 2,
            max_idle_memory_mb: None,
            staging_max_copy_mb: 200,
            max_retries_cli: 2,
            circuit_failure_threshold: 5,
            circuit_cooldown_secs: 30,
            dangerously_allow_unsandboxed_bash: false,
            delivery: Delivery::Apply,
            system_prompt: None,
            agents: None,
            result_cache: true,
        }
    }
}

impl Settings {
    /// The home directory the CLI sees (`~` in its tool inputs): the `HOME` of its environment.
    pub fn cli_home(&self) -> PathBuf {
        self.env
            .get("HOME")
            .map(PathBuf::from)
            .or_else(dirs::home_dir)
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// Environment additions for the CLI: `CLAUDE_CODE_MAX_RETRIES` from `maxRetriesCli`, no
    /// git snapshot in the system prompt ([`CLI_GIT_CONTEXT_VAR`]), then the user's `env`. A
    /// variable the user sets in `env` wins over the derived one.
    pub fn cli_env(&self) -> Vec<(String, String)> {
        let mut vars = Vec::with_capacity(self.env.len() + 2);
        if !self.env.contains_key(CLI_MAX_RETRIES_VAR) {
            vars.push((CLI_MAX_RETRIES_VAR.to_owned(), self.max_retries_cli.to_string()));
        }
        if !self.env.contains_key(CLI_GIT_CONTEXT_VAR) {
            vars.push((CLI_GIT_CONTEXT_VAR.to_owned(), "1".to_owned()));
        }
        vars.extend(self.env.iter().map(|(key, value)| (key.clone(), value.clone())));
        vars
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// The values `env` gives under secret-looking names (keys, tokens, passwords): they must be
    /// redacted wherever they could show up.
    pub fn secret_env_values(&self) -> Vec<String> {
        self.env
            .iter()
            .filter(|(name, _)| is_secret_name(name))
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// A hash of the fields that change how a CLI process is spawned (its argv and env): a warm
    /// process started under other values must not serve a run. Stable within one process.
    pub fn hash_for_pool(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.cli_path.hash(&mut hasher);
        self.model.hash(&mut hasher);
        self.fallback_model.hash(&mut hasher);
        self.max_turns.hash(&mut hasher);
        self.append_system_prompt.hash(&mut hasher);
        self.allowed_tools.hash(&mut hasher);
        self.disallowed_tools.hash(&mut hasher);
        self.env.hash(&mut hasher);
        self.max_budget_usd.map(f64::to_bits).hash(&mut hasher);
        self.permission_mode.hash(&mut hasher);
        self.additional_directories.hash(&mut hasher);
        match &self.mcp_servers {
            Some(servers) => {
                true.hash(&mut hasher);
                hash_json(servers, &mut hasher);
            }
            None => false.hash(&mut hasher),
        }
        self.max_retries_cli.hash(&mut hasher);
        self.dangerously_allow_unsandboxed_bash.hash(&mut hasher);
        self.system_prompt.hash(&mut hasher);
        match &self.agents {
            Some(agents) => {
                true.hash(&mut hasher);
                hash_json(agents, &mut hasher);
            }
            None => false.hash(&mut hasher),
        }
        hasher.finish()
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let Settings {
            cli_path,
            model,
            fallback_model,
            max_turns,
            append_system_prompt,
            allowed_tools,
            disallowed_tools,
            timeout_secs,
            idle_timeout_secs,
            max_concurrent,
            env,
            warm_pool,
            pool_idle_secs,
            max_budget_usd,
            daily_budget_usd,
            log_level,
            log_file,
            permission_mode,
            permission_timeout_secs,
            additional_directories,
            mcp_servers,
            requests_per_minute,
            max_retries,
            session_idle_secs,
            live_sessions,
            max_idle_memory_mb,
            staging_max_copy_mb,
            max_retries_cli,
            circuit_failure_threshold,
            circuit_cooldown_secs,
            dangerously_allow_unsandboxed_bash,
            delivery,
            system_prompt,
            agents,
            result_cache,
        } = self;
        f.debug_struct("Settings")
            .field("cli_path", cli_path)
            .field("model", model)
            .field("fallback_model", fallback_model)
            .field("max_turns", max_turns)
            .field("append_system_prompt", append_system_prompt)
            .field("allowed_tools", allowed_tools)
            .field("disallowed_tools", disallowed_tools)
            .field("timeout_secs", timeout_secs)
            .field("idle_timeout_secs", idle_timeout_secs)
            .field("max_concurrent", max_concurrent)
            .field("env", &RedactedEnv(env))
            .field("warm_pool", warm_pool)
            .field("pool_idle_secs", pool_idle_secs)
            .field("max_budget_usd", max_budget_usd)
            .field("daily_budget_usd", daily_budget_usd)
            .field("log_level", log_level)
            .field("log_file", log_file)
            .field("permission_mode", permission_mode)
            .field("permission_timeout_secs", permission_timeout_secs)
            .field("additional_directories", additional_directories)
            .field("mcp_servers", &mcp_servers.as_ref().map(McpServerNames))
            .field("requests_per_minute", requests_per_minute)
            .field("max_retries", max_retries)
            .field("session_idle_secs", session_idle_secs)
            .field("live_sessions", live_sessions)
            .field("max_idle_memory_mb", max_idle_memory_mb)
            .field("staging_max_copy_mb", staging_max_copy_mb)
            .field("max_retries_cli", max_retries_cli)
            .field("circuit_failure_threshold", circuit_failure_threshold)
            .field("circuit_cooldown_secs", circuit_cooldown_secs)
            .field("dangerously_allow_unsandboxed_bash", dangerously_allow_unsandboxed_bash)
            .field("delivery", delivery)
            .field("system_prompt", system_prompt)
            .field("agents", &agents.as_ref().map(AgentNames))
            .field("result_cache", result_cache)
            .finish()
    }
}

/// `env` for `Debug`: every key, the values of secret-looking keys replaced.
struct RedactedEnv<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for RedactedEnv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(key, value)| {
                (key, if is_secret_name(key) { REDACTED } else { value.as_str() })
            }))
            .finish()
    }
}

/// `agents` for `Debug`: their names (a prompt is long and says nothing about the settings).
struct AgentNames<'a>(&'a Value);

impl fmt::Debug for AgentNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Object(agents) => f.debug_list().entries(agents.keys()).finish(),
            other => write!(f, "{other}"),
        }
    }
}

/// `mcpServers` for `Debug`: server names only, since secrets hide in many places of a server
/// config (env, headers, args, URLs).
struct McpServerNames<'a>(&'a Value);

impl fmt::Debug for McpServerNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Object(servers) => f.debug_list().entries(servers.keys()).finish(),
            _ => f.write_str(REDACTED),
        }
    }
}

fn serialize_redacted_env<S: Serializer>(
    env: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let redacted: BTreeMap<&str, &str> = env
        .iter()
        .map(|(key, value)| {
            (key.as_str(), if is_secret_name(key) { REDACTED } else { value.as_str() })
        })
        .collect();
    redacted.serialize(serializer)
}

fn serialize_redacted_mcp<S: Serializer>(
    servers: &Option<Value>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    servers.as_ref().map(redact_json).serialize(serializer)
}

/// A copy of `value` with the values of secret-looking object keys replaced.
fn redact_json(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = if is_secret_name(key) {
                        Value::String(REDACTED.to_owned())
                    } else {
                        redact_json(value)
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_json).collect()),
        other => other.clone(),
    }
}

/// Hashes JSON independently of object key order (serde_json may preserve insertion order).
fn hash_json(value: &Value, hasher: &mut DefaultHasher) {
    match value {
        Value::Null => 0u8.hash(hasher),
        Value::Bool(flag) => (1u8, flag).hash(hasher),
        Value::Number(number) => (2u8, number.to_string()).hash(hasher),
        Value::String(text) => (3u8, text).hash(hasher),
        Value::Array(items) => {
            (4u8, items.len()).hash(hasher);
            for item in items {
                hash_json(item, hasher);
            }
        }
        Value::Object(map) => {
            (5u8, map.len()).hash(hasher);
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (key, item) in entries {
                key.hash(hasher);
                hash_json(item, hasher);
            }
        }
    }
}

/// One setting that could not be used as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsWarning {
    /// The setting's full name, e.g. `claude.timeoutSecs`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for SettingsWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Parses settings from `initializationOptions` or the `claude` section of
/// `workspace/configuration`. Accepts `{ "claude": {...} }` or the bare object; `null` or absent
/// gives the defaults. Never fails: see the module docs.
pub fn parse_settings(value: Option<&Value>) -> (Settings, Vec<SettingsWarning>) {
    let mut parser = Parser::default();
    let mut settings = Settings::default();
    if let Some(section) = parser.section(value) {
        for (key, value) in section {
            parser.apply_field(&mut settings, key, value);
        }
    }
    (settings, parser.warnings)
}

#[derive(Default)]
struct Parser {
    warnings: Vec<SettingsWarning>,
}

impl Parser {
    fn warn(&mut self, field: String, message: String) {
        self.warnings.push(SettingsWarning { field, message });
    }

    /// The object holding the fields, or `None` for "use the defaults".
    fn section<'v>(&mut self, value: Option<&'v Value>) -> Option<&'v Map<String, Value>> {
        let map = match value? {
            Value::Null => return None,
            Value::Object(map) => map,
            other => {
                self.warn(
                    SECTION.to_owned(),
                    format!("expected an object, got {}; using defaults", describe(other)),
                );
                return None;
            }
        };
        let Some(inner) = map.get(SECTION) else { return Some(map) };
        for key in map.keys().filter(|key| *key != SECTION) {
            self.warn(
                key.clone(),
                format!("unknown setting next to the {SECTION} section, ignored"),
            );
        }
        match inner {
            Value::Null => None,
            Value::Object(inner) => Some(inner),
            other => {
                self.warn(
                    SECTION.to_owned(),
                    format!("expected an object, got {}; using defaults", describe(other)),
                );
                None
            }
        }
    }

    /// Parses one field into `settings`; a bad value leaves the default and warns.
    fn apply_field(&mut self, settings: &mut Settings, key: &str, value: &Value) {
        let defaults = Settings::default();
        match key {
            "cliPath" => settings.cli_path = self.optional(key, value, parse_path),
            "model" => settings.model = self.optional(key, value, parse_string),
            "fallbackModel" => settings.fallback_model = self.optional(key, value, parse_string),
            "maxTurns" => {
                settings.max_turns = self.optional(key, value, present(int_in(1, u32::MAX.into())));
            }
            "appendSystemPrompt" => {
                settings.append_system_prompt = self.optional(key, value, parse_text);
            }
            "allowedTools" => settings.allowed_tools = self.list(key, value, parse_string),
            "disallowedTools" => settings.disallowed_tools = self.list(key, value, parse_string),
            "timeoutSecs" => {
                settings.timeout_secs =
                    self.defaulted(key, value, defaults.timeout_secs, int_in(1, MAX_SECONDS));
            }
            "idleTimeoutSecs" => {
                settings.idle_timeout_secs =
                    self.defaulted(key, value, defaults.idle_timeout_secs, int_in(1, MAX_SECONDS));
            }
            "maxConcurrent" => {
                settings.max_concurrent =
                    self.defaulted(key, value, defaults.max_concurrent, int_in(1, 64));
            }
            "env" => settings.env = self.env(value),
            "warmPool" => {
                settings.warm_pool = self.defaulted(key, value, defaults.warm_pool, int_in(0, 16));
            }
            "poolIdleSecs" => {
                settings.pool_idle_secs =
                    self.defaulted(key, value, defaults.pool_idle_secs, int_in(1, MAX_SECONDS));
            }
            "maxBudgetUsd" => settings.max_budget_usd = self.optional(key, value, parse_dollars),
            "dailyBudgetUsd" => {
                settings.daily_budget_usd = self.optional(key, value, parse_dollars)
            }
            "logLevel" => {
                settings.log_level =
                    self.defaulted(key, value, defaults.log_level, parse_log_level);
            }
            "logFile" => settings.log_file = self.optional(key, value, parse_absolute_path),
            "permissionMode" => {
                settings.permission_mode = self.optional(key, value, parse_permission_mode);
            }
            "permissionTimeoutSecs" => {
                settings.permission_timeout_secs = self.defaulted(
                    key,
                    value,
                    defaults.permission_timeout_secs,
                    int_in(1, MAX_SECONDS),
                );
            }
            "additionalDirectories" => {
                settings.additional_directories = self.list(key, value, parse_absolute_path)
            }
            "mcpServers" => settings.mcp_servers = self.mcp_servers(key, value),
            "requestsPerMinute" => {
                settings.requests_per_minute =
                    self.optional(key, value, present(int_in(1, 10_000)));
            }
            "maxRetries" => {
                settings.max_retries =
                    self.defaulted(key, value, defaults.max_retries, int_in(0, 10));
            }
            "sessionIdleSecs" => {
                settings.session_idle_secs =
                    self.defaulted(key, value, defaults.session_idle_secs, int_in(1, MAX_SECONDS));
            }
            "liveSessions" => {
                settings.live_sessions =
                    self.defaulted(key, value, defaults.live_sessions, int_in(0, 64));
            }
            "maxIdleMemoryMb" => {
                settings.max_idle_memory_mb =
                    self.optional(key, value, present(int_in(1, 1_000_000)));
            }
            "stagingMaxCopyMb" => {
                settings.staging_max_copy_mb =
                    self.defaulted(key, value, defaults.staging_max_copy_mb, int_in(1, 1_000_000));
            }
            "maxRetriesCli" => {
                settings.max_retries_cli =
                    self.defaulted(key, value, defaults.max_retries_cli, int_in(0, 10));
            }
            "circuitFailureThreshold" => {
                settings.circuit_failure_threshold =
                    self.defaulted(key, value, defaults.circuit_failure_threshold, int_in(1, 1000));
            }
            "circuitCooldownSecs" => {
                settings.circuit_cooldown_secs = self.defaulted(
                    key,
                    value,
                    defaults.circuit_cooldown_secs,
                    int_in(1, MAX_SECONDS),
                );
            }
            "dangerouslyAllowUnsandboxedBash" => {
                settings.dangerously_allow_unsandboxed_bash =
                    self.defaulted(key, value, false, parse_bool);
            }
            "delivery" => {
                settings.delivery = self.defaulted(key, value, defaults.delivery, parse_delivery);
            }
            "systemPrompt" => settings.system_prompt = self.optional(key, value, parse_text),
            "agents" => settings.agents = self.agents(key, value),
            "resultCache" => {
                settings.result_cache =
                    self.defaulted(key, value, defaults.result_cache, parse_bool);
            }
            // The VS Code extension's own setting (where to find claude-lsp): it may arrive with
            // the rest of the section, and is none of the server's business.
            "serverPath" => {}
            unknown => {
                let message = match suggestion(unknown) {
                    Some(known) => {
                        format!("unknown setting, ignored (did you mean {SECTION}.{known}?)")
                    }
                    None => "unknown setting, ignored".to_owned(),
                };
                self.warn(field_name(unknown), message);
            }
        }
    }

    /// A setting without a default: `null` or a bad value leaves it unset.
    fn optional<T>(
        &mut self,
        key: &str,
        value: &Value,
        parse: impl FnOnce(&Value) -> Result<Option<T>, String>,
    ) -> Option<T> {
        if value.is_null() {
            return None;
        }
        parse(value).unwrap_or_else(|problem| {
            self.warn(field_name(key), format!("{problem}; leaving it unset"));
            None
        })
    }

    /// A setting with a default: `null` or a bad value gives the default.
    fn defaulted<T: fmt::Display + Copy>(
        &mut self,
        key: &str,
        value: &Value,
        default: T,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> T {
        if value.is_null() {
            return default;
        }
        parse(value).unwrap_or_else(|problem| {
            self.warn(field_name(key), format!("{problem}; using {default}"));
            default
        })
    }

    /// The elements of a list setting, each checked on its own.
    fn list<T>(
        &mut self,
        key: &str,
        value: &Value,
        parse: impl Fn(&Value) -> Result<Option<T>, String>,
    ) -> Vec<T> {
        let items = match value {
            Value::Null => return Vec::new(),
            Value::Array(items) => items,
            other => {
                self.warn(
                    field_name(key),
                    format!("expected a list, got {}; using an empty list", describe(other)),
                );
                return Vec::new();
            }
        };
        let mut parsed = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match parse(item) {
                Ok(Some(item)) => parsed.push(item),
                Ok(None) => {}
                Err(problem) => self
                    .warn(format!("{}[{index}]", field_name(key)), format!("{problem}; ignored")),
            }
        }
        parsed
    }

    /// Environment variables. Numbers and booleans are taken as their text; values are never
    /// quoted in warnings, since they may be secrets.
    fn env(&mut self, value: &Value) -> BTreeMap<String, String> {
        let key = "env";
        let map = match value {
            Value::Null => return BTreeMap::new(),
            Value::Object(map) => map,
            other => {
                self.warn(
                    field_name(key),
                    format!(
                        "expected an object of strings, got {}; using no extra variables",
                        json_kind(other)
                    ),
                );
                return BTreeMap::new();
            }
        };
        let mut env = BTreeMap::new();
        for (name, value) in map {
            let field = format!("{}.{name}", field_name(key));
            if name.is_empty() || name.contains(['=', '\0']) {
                self.warn(
                    field,
                    "not a valid variable name (empty, or contains '=' or NUL); ignored".to_owned(),
                );
                continue;
            }
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                other => {
                    self.warn(
                        field,
                        format!("expected a string, got {}; ignored", json_kind(other)),
                    );
                    continue;
                }
            };
            if text.contains('\0') {
                self.warn(field, "contains a NUL character; ignored".to_owned());
                continue;
            }
            env.insert(name.clone(), text);
        }
        env
    }

    /// MCP servers by name. Also accepts the content of an `.mcp.json` file
    /// (`{"mcpServers": {...}}`). Configs are described by type only: they may hold secrets.
    fn mcp_servers(&mut self, key: &str, value: &Value) -> Option<Value> {
        let servers = match value {
            Value::Null => return None,
            Value::Object(map) => match map.get("mcpServers") {
                Some(Value::Object(inner)) if map.len() == 1 => inner,
                _ => map,
            },
            other => {
                self.warn(
                    field_name(key),
                    format!(
                        "expected an object of server configs, got {}; using none",
                        json_kind(other)
                    ),
                );
                return None;
            }
        };
        let mut valid = Map::new();
        for (name, config) in servers {
            if config.is_object() {
                valid.insert(name.clone(), config.clone());
            } else {
                self.warn(
                    format!("{}.{name}", field_name(key)),
                    format!(
                        "expected an object (a server config), got {}; server ignored",
                        json_kind(config)
                    ),
                );
            }
        }
        (!valid.is_empty()).then_some(Value::Object(valid))
    }

    /// Custom subagents by name, each `{description, prompt, tools?, model?}` (the CLI's
    /// `--agents`); other fields are passed on as they are, for newer CLIs. A bad agent is
    /// left out with a warning, the others kept.
    fn agents(&mut self, key: &str, value: &Value) -> Option<Value> {
        let agents = match value {
            Value::Null => return None,
            Value::Object(map) => map,
            other => {
                self.warn(
                    field_name(key),
                    format!(
                        "expected an object of agents by name, got {}; using none",
                        describe(other)
                    ),
                );
                return None;
            }
        };
        let mut valid = Map::new();
        for (name, agent) in agents {
            let field = format!("{}.{name}", field_name(key));
            match check_agent(name, agent) {
                Ok(()) => {
                    valid.insert(name.clone(), agent.clone());
                }
                Err(problem) => self.warn(field, format!("{problem}; agent ignored")),
            }
        }
        (!valid.is_empty()).then_some(Value::Object(valid))
    }
}

/// One subagent as the CLI's `--agents` wants it.
fn check_agent(name: &str, agent: &Value) -> Result<(), String> {
    if name.trim().is_empty() || name.contains('\0') {
        return Err("an agent needs a name (not empty, no NUL)".to_owned());
    }
    let Value::Object(fields) = agent else {
        return Err(format!(
            "expected an object {{description, prompt, tools?, model?}}, got {}",
            describe(agent)
        ));
    };
    for required in ["description", "prompt"] {
        match fields.get(required) {
            Some(Value::String(text)) if !text.trim().is_empty() && !text.contains('\0') => {}
            Some(other) => {
                return Err(format!(
                    "`{required}` must be non-empty text, got {}",
                    describe(other)
                ));
            }
            None => return Err(format!("`{required}` is missing")),
        }
    }
    match fields.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tools)) if tools.iter().all(|tool| tool.as_str().is_some()) => {}
        Some(other) => {
            return Err(format!("`tools` must be a list of tool names, got {}", describe(other)));
        }
    }
    match fields.get("model") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(model)) if !model.trim().is_empty() => Ok(()),
        Some(other) => Err(format!("`model` must be a model name, got {}", describe(other))),
    }
}

fn field_name(key: &str) -> String {
    format!("{SECTION}.{key}")
}

/// The known setting an unknown name most likely meant: same letters ignoring case, `_`, `-`
/// and a leading `claude.`.
fn suggestion(unknown: &str) -> Option<&'static str> {
    fn normalize(name: &str) -> String {
        let name = name.strip_prefix("claude.").unwrap_or(name);
        name.chars().filter(|c| !matches!(c, '_' | '-')).flat_map(char::to_lowercase).collect()
    }
    let wanted = normalize(unknown);
    SETTING_NAMES.into_iter().find(|known| normalize(known) == wanted)
}

/// A bad value as quoted in a warning: compact JSON, cut short.
fn describe(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// A one-line string (a name); empty means unset.
fn parse_string(value: &Value) -> Result<Option<String>, String> {
    let Value::String(text) = value else {
        return Err(format!("expected a string, got {}", describe(value)));
    };
    if text.contains('\0') {
        return Err("contains a NUL character".to_owned());
    }
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// Free text, kept as written; empty means unset.
fn parse_text(value: &Value) -> Result<Option<String>, String> {
    let Value::String(text) = value else {
        return Err(format!("expected a string, got {}", describe(value)));
    };
    if text.contains('\0') {
        return Err("contains a NUL character".to_owned());
    }
    Ok((!text.trim().is_empty()).then(|| text.clone()))
}

/// A path, with a leading `~` expanded to the home directory.
fn parse_path(value: &Value) -> Result<Option<PathBuf>, String> {
    let Some(text) = parse_string(value)? else { return Ok(None) };
    let expanded = match (text.strip_prefix('~'), dirs::home_dir()) {
        (Some(""), Some(home)) => home,
        (Some(rest), Some(home)) if rest.starts_with('/') => home.join(&rest[1..]),
        _ => PathBuf::from(text),
    };
    Ok(Some(expanded))
}

fn parse_absolute_path(value: &Value) -> Result<Option<PathBuf>, String> {
    match parse_path(value)? {
        Some(path) if !path.is_absolute() => {
            Err(format!("expected an absolute path, got {}", describe(value)))
        }
        path => Ok(path),
    }
}

fn parse_permission_mode(value: &Value) -> Result<Option<String>, String> {
    match parse_string(value)? {
        Some(mode) if mode == "manual" => Ok(Some("default".to_owned())),
        Some(mode) if !PERMISSION_MODES.contains(&mode.as_str()) => Err(format!(
            "expected one of {} (or manual), got {}",
            PERMISSION_MODES.join(", "),
            describe(value)
        )),
        mode => Ok(mode),
    }
}

fn parse_bool(value: &Value) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| format!("expected true or false, got {}", describe(value)))
}

fn parse_log_level(value: &Value) -> Result<LogLevel, String> {
    value.as_str().and_then(LogLevel::parse).ok_or_else(|| {
        let names: Vec<&str> = LogLevel::ALL.iter().map(|level| level.as_str()).collect();
        format!("expected one of {}, got {}", names.join(", "), describe(value))
    })
}

fn parse_delivery(value: &Value) -> Result<Delivery, String> {
    let wanted = value.as_str().map(str::to_ascii_lowercase);
    Delivery::ALL
        .into_iter()
        .find(|delivery| wanted.as_deref() == Some(delivery.as_str()))
        .ok_or_else(|| format!("expected \"apply\" or \"review\", got {}", describe(value)))
}

/// An amount of US dollars: a positive, finite number.
fn parse_dollars(value: &Value) -> Result<Option<f64>, String> {
    match value.as_f64() {
        Some(amount) if amount.is_finite() && amount > 0.0 => Ok(Some(amount)),
        _ => Err(format!("expected a positive number of US dollars, got {}", describe(value))),
    }
}

/// Adapts a parser of always-present values to the `optional` shape.
fn present<T>(
    parse: impl Fn(&Value) -> Result<T, String>,
) -> impl Fn(&Value) -> Result<Option<T>, String> {
    move |value| parse(value).map(Some)
}

/// An integer in `min..=max`. Integral floats (`300.0`) are accepted: some clients send every
/// number as a float.
fn int_in<T: TryFrom<u64>>(min: u64, max: u64) -> impl Fn(&Value) -> Result<T, String> {
    move |value| {
        let kind = if min == 0 { "a non-negative integer" } else { "a positive integer" };
        let Value::Number(number) = value else {
            return Err(format!("expected {kind}, got {}", describe(value)));
        };
        // Floats are taken when integral; `as` saturates, so huge ones fail the range check.
        let integer = match (number.as_u64(), number.as_i64(), number.as_f64()) {
            (Some(unsigned), _, _) => i128::from(unsigned),
            (None, Some(signed), _) => i128::from(signed),
            (None, None, Some(float)) if float.fract() == 0.0 => float as i128,
            _ => return Err(format!("expected {kind}, got {number}")),
        };
        u64::try_from(integer)
            .ok()
            .filter(|integer| (min..=max).contains(integer))
            .and_then(|integer| T::try_from(integer).ok())
            .ok_or_else(|| format!("expected an integer from {min} to {max}, got {number}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn parse(value: Value) -> (Settings, Vec<String>) {
        let (settings, warnings) = parse_settings(Some(&value));
        (settings, warnings.iter().map(ToString::to_string).collect())
    }

    fn full_settings_json() -> Value {
        json!({
            "cliPath": "/opt/claude/bin/claude",
            "model": "claude-opus-4",
            "fallbackModel": "claude-sonnet-4",
            "maxTurns": 12,
            "appendSystemPrompt": "Prefer small functions.\n",
            "allowedTools": ["Read", "Bash(git diff:*)"],
            "disallowedTools": ["WebFetch"],
            "timeoutSecs": 600,
            "idleTimeoutSecs": 90,
            "maxConcurrent": 2,
            "env": {"HTTPS_PROXY": "http://proxy:3128", "ANTHROPIC_API_KEY": "sk-ant-secret"},
            "warmPool": 0,
            "poolIdleSecs": 30,
            "maxBudgetUsd": 0.5,
            "dailyBudgetUsd": 20,
            "logLevel": "debug",
            "logFile": "/tmp/claude-lsp.log",
            "permissionMode": "acceptEdits",
            "permissionTimeoutSecs": 15,
            "additionalDirectories": ["/srv/shared"],
            "mcpServers": {"docs": {"command": "docs-mcp", "args": []}},
            "requestsPerMinute": 30,
            "maxRetries": 5,
            "sessionIdleSecs": 60,
            "liveSessions": 1,
            "maxIdleMemoryMb": 512,
            "stagingMaxCopyMb": 50,
            "maxRetriesCli": 0,
            "circuitFailureThreshold": 3,
            "circuitCooldownSecs": 10,
            "dangerouslyAllowUnsandboxedBash": true,
            "delivery": "review",
            "systemPrompt": "You review Rust code.",
            "agents": {"tester": {"description": "Writes tests", "prompt": "Write tests.", "tools": ["Read"], "model": "haiku"}},
            "resultCache": false,
        })
    }

    fn full_settings() -> Settings {
        Settings {
            cli_path: Some(PathBuf::from("/opt/claude/bin/claude")),
            model: Some("claude-opus-4".into()),
            fallback_model: Some("claude-sonnet-4".into()),
            max_turns: Some(12),
            append_system_prompt: Some("Prefer small functions.\n".into()),
            allowed_tools: vec!["Read".into(), "Bash(git diff:*)".into()],
            disallowed_tools: vec!["WebFetch".into()],
            timeout_secs: 600,
            idle_timeout_secs: 90,
            max_concurrent: 2,
            env: BTreeMap::from([
                ("ANTHROPIC_API_KEY".into(), "sk-ant-secret".into()),
                ("HTTPS_PROXY".into(), "http://proxy:3128".into()),
            ]),
            warm_pool: 0,
            pool_idle_secs: 30,
            max_budget_usd: Some(0.5),
            daily_budget_usd: Some(20.0),
            log_level: LogLevel::Debug,
            log_file: Some(PathBuf::from("/tmp/claude-lsp.log")),
            permission_mode: Some("acceptEdits".into()),
            permission_timeout_secs: 15,
            additional_directories: vec![PathBuf::from("/srv/shared")],
            mcp_servers: Some(json!({"docs": {"command": "docs-mcp", "args": []}})),
            requests_per_minute: Some(30),
            max_retries: 5,
            session_idle_secs: 60,
            live_sessions: 1,
            max_idle_memory_mb: Some(512),
            staging_max_copy_mb: 50,
            max_retries_cli: 0,
            circuit_failure_threshold: 3,
            circuit_cooldown_secs: 10,
            dangerously_allow_unsandboxed_bash: true,
            delivery: Delivery::Review,
            system_prompt: Some("You review Rust code.".into()),
            agents: Some(
                json!({"tester": {"description": "Writes tests", "prompt": "Write tests.", "tools": ["Read"], "model": "haiku"}}),
            ),
            result_cache: false,
        }
    }

    #[test]
    fn defaults_match_the_contract() {
        let defaults = Settings::default();
        assert_eq!(defaults.timeout_secs, 300);
        assert_eq!(defaults.idle_timeout_secs, 120);
        assert_eq!(defaults.max_concurrent, 4);
        assert_eq!(defaults.warm_pool, 1);
        assert_eq!(defaults.pool_idle_secs, 600);
        assert_eq!(defaults.log_level, LogLevel::Info);
        assert_eq!(defaults.permission_timeout_secs, 60);
        assert_eq!(defaults.max_retries, 3);
        assert_eq!(defaults.session_idle_secs, 900);
        assert_eq!(defaults.live_sessions, 2);
        assert_eq!(defaults.max_idle_memory_mb, None);
        assert_eq!(defaults.staging_max_copy_mb, 200);
        assert_eq!(defaults.max_retries_cli, 2);
        assert_eq!(defaults.circuit_failure_threshold, 5);
        assert_eq!(defaults.circuit_cooldown_secs, 30);
        assert_eq!(defaults.timeout(), Duration::from_secs(300));
        assert_eq!(defaults.idle_timeout(), Duration::from_secs(120));
        assert!(defaults.cli_path.is_none() && defaults.model.is_none() && defaults.env.is_empty());
    }

    #[test]
    fn absent_null_and_empty_give_defaults_without_warnings() {
        assert_eq!(parse_settings(None), (Settings::default(), Vec::new()));
        for value in [json!(null), json!({}), json!({"claude": null}), json!({"claude": {}})] {
            assert_eq!(parse(value.clone()), (Settings::default(), Vec::new()), "{value}");
        }
    }

    #[test]
    fn every_field_is_parsed() {
        assert_eq!(parse(full_settings_json()), (full_settings(), Vec::new()));
    }

    #[test]
    fn the_claude_key_may_wrap_the_fields() {
        assert_eq!(parse(json!({"claude": full_settings_json()})), (full_settings(), Vec::new()));
    }

    #[test]
    fn keys_next_to_the_claude_section_are_reported() {
        let (settings, warnings) = parse(json!({"claude": {"model": "m"}, "editor": {"x": 1}}));
        assert_eq!(settings.model.as_deref(), Some("m"));
        assert_eq!(warnings, ["editor: unknown setting next to the claude section, ignored"]);
    }

    #[test]
    fn every_setting_name_is_known() {
        for name in SETTING_NAMES {
            let (_, warnings) = parse(json!({ name: null }));
            assert_eq!(warnings, Vec::<String>::new(), "{name}");
        }
    }

    #[test]
    fn a_value_that_is_not_an_object_gives_one_warning_and_defaults() {
        let cases = [
            (json!(42), "claude: expected an object, got 42; using defaults"),
            (json!("fast"), "claude: expected an object, got \"fast\"; using defaults"),
            (json!([1, 2]), "claude: expected an object, got [1,2]; using defaults"),
            (json!({"claude": true}), "claude: expected an object, got true; using defaults"),
        ];
        for (value, expected) in cases {
            assert_eq!(parse(value), (Settings::default(), vec![expected.to_owned()]));
        }
    }

    #[test]
    fn wrong_types_fall_back_to_the_default_with_a_warning() {
        let cases = [
            (
                json!({"timeoutSecs": "abc"}),
                r#"claude.timeoutSecs: expected a positive integer, got "abc"; using 300"#,
            ),
            (
                json!({"timeoutSecs": 2.5}),
                "claude.timeoutSecs: expected a positive integer, got 2.5; using 300",
            ),
            (
                json!({"maxRetries": "3"}),
                r#"claude.maxRetries: expected a non-negative integer, got "3"; using 3"#,
            ),
            (json!({"model": 42}), "claude.model: expected a string, got 42; leaving it unset"),
            (
                json!({"maxTurns": true}),
                "claude.maxTurns: expected a positive integer, got true; leaving it unset",
            ),
            (
                json!({"cliPath": ["claude"]}),
                r#"claude.cliPath: expected a string, got ["claude"]; leaving it unset"#,
            ),
            (
                json!({"allowedTools": "Read"}),
                r#"claude.allowedTools: expected a list, got "Read"; using an empty list"#,
            ),
            (
                json!({"logLevel": "loud"}),
                r#"claude.logLevel: expected one of off, error, warn, info, debug, trace, got "loud"; using info"#,
            ),
            (
                json!({"logLevel": 3}),
                "claude.logLevel: expected one of off, error, warn, info, debug, trace, got 3; using info",
            ),
            (
                json!({"maxBudgetUsd": "5"}),
                r#"claude.maxBudgetUsd: expected a positive number of US dollars, got "5"; leaving it unset"#,
            ),
            (
                json!({"permissionMode": "yolo"}),
                r#"claude.permissionMode: expected one of default, acceptEdits, plan, bypassPermissions, dontAsk (or manual), got "yolo"; leaving it unset"#,
            ),
            (
                json!({"mcpServers": "{\"x\":{}}"}),
                "claude.mcpServers: expected an object of server configs, got a string; using none",
            ),
            (
                json!({"mcpServers": {"x": "cmd"}}),
                "claude.mcpServers.x: expected an object (a server config), got a string; server ignored",
            ),
            (
                json!({"env": ["A=1"]}),
                "claude.env: expected an object of strings, got a list; using no extra variables",
            ),
            (
                json!({"appendSystemPrompt": {"text": "x"}}),
                r#"claude.appendSystemPrompt: expected a string, got {"text":"x"}; leaving it unset"#,
            ),
        ];
        for (value, expected) in cases {
            let (settings, warnings) = parse(value.clone());
            assert_eq!(warnings, [expected], "{value}");
            assert_eq!(settings, Settings::default(), "{value}");
        }
    }

    #[test]
    fn one_bad_field_does_not_discard_the_others() {
        let (settings, warnings) = parse(
            json!({"model": "m", "timeoutSecs": "abc", "maxConcurrent": 8, "env": {"A": "1"}}),
        );
        assert_eq!(warnings.len(), 1);
        assert_eq!(settings.model.as_deref(), Some("m"));
        assert_eq!(settings.timeout_secs, 300);
        assert_eq!(settings.max_concurrent, 8);
        assert_eq!(settings.env, BTreeMap::from([("A".to_owned(), "1".to_owned())]));
    }

    #[test]
    fn long_bad_values_are_cut_short_in_warnings() {
        let (_, warnings) = parse(json!({"model": ["x".repeat(500)]}));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains('…'), "{}", warnings[0]);
        assert!(warnings[0].len() < 150, "{}", warnings[0]);
    }

    #[test]
    fn out_of_range_values_fall_back_to_the_default() {
        let cases = [
            (
                json!({"maxConcurrent": 0}),
                "claude.maxConcurrent: expected an integer from 1 to 64, got 0; using 4",
            ),
            (
                json!({"maxConcurrent": 1000}),
                "claude.maxConcurrent: expected an integer from 1 to 64, got 1000; using 4",
            ),
            (
                json!({"timeoutSecs": 0}),
                "claude.timeoutSecs: expected an integer from 1 to 604800, got 0; using 300",
            ),
            (
                json!({"timeoutSecs": -5}),
                "claude.timeoutSecs: expected an integer from 1 to 604800, got -5; using 300",
            ),
            (
                json!({"timeoutSecs": 1e300}),
                "claude.timeoutSecs: expected an integer from 1 to 604800, got 1e+300; using 300",
            ),
            (
                json!({"idleTimeoutSecs": 18446744073709551615u64}),
                "claude.idleTimeoutSecs: expected an integer from 1 to 604800, got 18446744073709551615; using 120",
            ),
            (
                json!({"maxTurns": 0}),
                "claude.maxTurns: expected an integer from 1 to 4294967295, got 0; leaving it unset",
            ),
            (
                json!({"maxRetries": 11}),
                "claude.maxRetries: expected an integer from 0 to 10, got 11; using 3",
            ),
            (
                json!({"warmPool": 17}),
                "claude.warmPool: expected an integer from 0 to 16, got 17; using 1",
            ),
            (
                json!({"maxBudgetUsd": -1}),
                "claude.maxBudgetUsd: expected a positive number of US dollars, got -1; leaving it unset",
            ),
            (
                json!({"dailyBudgetUsd": 0}),
                "claude.dailyBudgetUsd: expected a positive number of US dollars, got 0; leaving it unset",
            ),
            (
                json!({"requestsPerMinute": 0}),
                "claude.requestsPerMinute: expected an integer from 1 to 10000, got 0; leaving it unset",
            ),
        ];
        for (value, expected) in cases {
            let (settings, warnings) = parse(value.clone());
            assert_eq!(warnings, [expected], "{value}");
            assert_eq!(settings, Settings::default(), "{value}");
        }
    }

    #[test]
    fn range_edges_and_integral_floats_are_accepted() {
        let (settings, warnings) = parse(json!({
            "timeoutSecs": 300.0, "maxConcurrent": 64, "warmPool": 0, "maxRetries": 0,
            "maxRetriesCli": 10, "idleTimeoutSecs": 604800,
        }));
        assert_eq!(warnings, Vec::<String>::new());
        assert_eq!(settings.timeout_secs, 300);
        assert_eq!(settings.max_concurrent, 64);
        assert_eq!(settings.warm_pool, 0);
        assert_eq!(settings.max_retries, 0);
        assert_eq!(settings.max_retries_cli, 10);
        assert_eq!(settings.idle_timeout(), Duration::from_secs(604800));
    }

    #[test]
    fn unknown_fields_are_ignored_with_a_warning_and_a_hint_for_near_misses() {
        let (settings, warnings) = parse(json!({
            "fooBar": 1, "timeout_secs": 10, "MODEL": "m", "claude.maxTurns": 3, "model": "real",
        }));
        assert_eq!(settings.model.as_deref(), Some("real"));
        assert_eq!(settings.timeout_secs, 300);
        let mut warnings = warnings;
        warnings.sort();
        assert_eq!(
            warnings,
            [
                "claude.MODEL: unknown setting, ignored (did you mean claude.model?)",
                "claude.claude.maxTurns: unknown setting, ignored (did you mean claude.maxTurns?)",
                "claude.fooBar: unknown setting, ignored",
                "claude.timeout_secs: unknown setting, ignored (did you mean claude.timeoutSecs?)",
            ]
        );
    }

    #[test]
    fn the_vscode_server_path_setting_is_not_reported() {
        assert_eq!(
            parse(json!({"serverPath": "/usr/bin/claude-lsp"})),
            (Settings::default(), Vec::new())
        );
    }

    #[test]
    fn empty_strings_mean_unset() {
        let (settings, warnings) = parse(json!({
            "cliPath": "", "model": "  ", "fallbackModel": "", "appendSystemPrompt": "\n",
            "logFile": "", "permissionMode": "",
        }));
        assert_eq!((settings, warnings), (Settings::default(), Vec::new()));
    }

    #[test]
    fn names_are_trimmed_but_free_text_is_kept() {
        let (settings, _) =
            parse(json!({"model": " opus ", "appendSystemPrompt": "  Be terse.  "}));
        assert_eq!(settings.model.as_deref(), Some("opus"));
        assert_eq!(settings.append_system_prompt.as_deref(), Some("  Be terse.  "));
    }

    #[test]
    fn nul_characters_are_refused_because_they_cannot_reach_argv() {
        let (settings, warnings) =
            parse(json!({"model": "a\u{0}b", "allowedTools": ["Read", "E\u{0}"]}));
        assert_eq!(settings.model, None);
        assert_eq!(settings.allowed_tools, ["Read"]);
        assert_eq!(
            warnings,
            [
                "claude.allowedTools[1]: contains a NUL character; ignored",
                "claude.model: contains a NUL character; leaving it unset",
            ]
        );
    }

    #[test]
    fn bad_list_elements_are_dropped_one_by_one() {
        let (settings, warnings) = parse(json!({"allowedTools": ["Read", 7, "", null, " Edit "]}));
        assert_eq!(settings.allowed_tools, ["Read", "Edit"]);
        assert_eq!(
            warnings,
            [
                "claude.allowedTools[1]: expected a string, got 7; ignored",
                "claude.allowedTools[3]: expected a string, got null; ignored",
            ]
        );
    }

    #[test]
    fn paths_expand_the_home_directory_and_must_be_absolute_where_it_matters() {
        let home = dirs::home_dir().expect("the test machine has a home directory");
        let (settings, warnings) = parse(json!({
            "cliPath": "~/.local/bin/claude",
            "logFile": "logs/claude.log",
            "additionalDirectories": ["~", "../shared", "/srv/data"],
        }));
        assert_eq!(settings.cli_path, Some(home.join(".local/bin/claude")));
        assert_eq!(settings.log_file, None);
        assert_eq!(settings.additional_directories, [home, PathBuf::from("/srv/data")]);
        assert_eq!(
            warnings,
            [
                r#"claude.additionalDirectories[1]: expected an absolute path, got "../shared"; ignored"#,
                r#"claude.logFile: expected an absolute path, got "logs/claude.log"; leaving it unset"#,
            ]
        );
    }

    #[test]
    fn a_bare_command_name_is_a_valid_cli_path() {
        let (settings, warnings) = parse(json!({"cliPath": "claude"}));
        assert_eq!((settings.cli_path, warnings), (Some(PathBuf::from("claude")), Vec::new()));
    }

    #[test]
    fn log_levels_are_case_insensitive() {
        for (name, level) in
            [("WARN", LogLevel::Warn), ("warning", LogLevel::Warn), ("Off", LogLevel::Off)]
        {
            assert_eq!(parse(json!({"logLevel": name})).0.log_level, level, "{name}");
        }
        assert_eq!(LogLevel::Trace.to_string(), "trace");
    }

    #[test]
    fn delivery_is_apply_or_review_and_anything_else_warns() {
        assert_eq!(parse(json!({})).0.delivery, Delivery::Apply);
        assert_eq!(parse(json!({"delivery": "Review"})).0.delivery, Delivery::Review);
        let (settings, warnings) = parse(json!({"delivery": "hunks"}));
        assert_eq!(settings.delivery, Delivery::Apply);
        assert_eq!(
            warnings,
            ["claude.delivery: expected \"apply\" or \"review\", got \"hunks\"; using apply"]
        );
    }

    #[test]
    fn both_spellings_of_the_manual_permission_mode_are_accepted() {
        let cases = [
            ("default", "default"),
            ("manual", "default"),
            ("plan", "plan"),
            ("acceptEdits", "acceptEdits"),
            ("bypassPermissions", "bypassPermissions"),
            ("dontAsk", "dontAsk"),
        ];
        for (given, stored) in cases {
            let expected =
                Settings { permission_mode: Some(stored.to_owned()), ..Settings::default() };
            assert_eq!(parse(json!({"permissionMode": given})), (expected, Vec::new()), "{given}");
        }
    }

    #[test]
    fn env_takes_scalars_as_text_and_never_quotes_values_in_warnings() {
        let (settings, warnings) = parse(json!({"env": {
            "DEBUG": 1, "VERBOSE": true, "NAME": "x", "": "empty", "A=B": "eq",
            "GITHUB_TOKEN": ["ghp_leaked"], "API_KEY": null,
        }}));
        assert_eq!(
            settings.env,
            BTreeMap::from([
                ("DEBUG".to_owned(), "1".to_owned()),
                ("NAME".to_owned(), "x".to_owned()),
                ("VERBOSE".to_owned(), "true".to_owned()),
            ])
        );
        let mut warnings = warnings;
        warnings.sort();
        assert_eq!(
            warnings,
            [
                "claude.env.: not a valid variable name (empty, or contains '=' or NUL); ignored",
                "claude.env.A=B: not a valid variable name (empty, or contains '=' or NUL); ignored",
                "claude.env.API_KEY: expected a string, got null; ignored",
                "claude.env.GITHUB_TOKEN: expected a string, got a list; ignored",
            ]
        );
        assert!(warnings.iter().all(|warning| !warning.contains("ghp_leaked")));
    }

    #[test]
    fn mcp_servers_accept_the_content_of_an_mcp_json_file() {
        let servers = json!({"fs": {"command": "fs-mcp"}});
        let (settings, warnings) = parse(json!({"mcpServers": {"mcpServers": servers.clone()}}));
        assert_eq!((settings.mcp_servers, warnings), (Some(servers), Vec::new()));
        let (settings, warnings) = parse(json!({"mcpServers": {}}));
        assert_eq!((settings.mcp_servers, warnings), (None, Vec::new()));
    }

    #[test]
    fn cli_env_sets_the_cli_retry_count_and_the_users_variables() {
        let (settings, _) = parse(json!({"maxRetriesCli": 1, "env": {"HTTPS_PROXY": "http://p"}}));
        assert_eq!(
            settings.cli_env(),
            [
                ("CLAUDE_CODE_MAX_RETRIES".to_owned(), "1".to_owned()),
                ("CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS".to_owned(), "1".to_owned()),
                ("HTTPS_PROXY".to_owned(), "http://p".to_owned()),
            ]
        );
        assert_eq!(
            Settings::default().cli_env(),
            [
                ("CLAUDE_CODE_MAX_RETRIES".to_owned(), "2".to_owned()),
                ("CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS".to_owned(), "1".to_owned()),
            ]
        );
    }

    #[test]
    fn secret_env_values_are_the_ones_under_secret_names() {
        let (settings, _) = parse(json!({"env": {
            "ANTHROPIC_API_KEY": "sk-ant-1", "MY_SERVICE_TOKEN": "t0k3n", "HTTPS_PROXY": "http://p",
        }}));
        let mut secrets = settings.secret_env_values();
        secrets.sort();
        assert_eq!(secrets, ["sk-ant-1", "t0k3n"]);
    }

    #[test]
    fn an_explicit_env_variable_wins_over_max_retries_cli() {
        let (settings, _) = parse(json!({"maxRetriesCli": 1, "env": {
            "CLAUDE_CODE_MAX_RETRIES": 7, "CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS": "",
        }}));
        let mut env = settings.cli_env();
        env.sort();
        assert_eq!(
            env,
            [
                ("CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS".to_owned(), String::new()),
                ("CLAUDE_CODE_MAX_RETRIES".to_owned(), "7".to_owned()),
            ]
        );
    }

    #[test]
    fn debug_redacts_secret_env_values_and_mcp_configs() {
        let mut settings = full_settings();
        settings.env.insert("GITHUB_TOKEN".into(), "ghp_tokenvalue".into());
        settings.env.insert("db_password".into(), "hunter2".into());
        settings.env.insert("CLIENT_SECRET".into(), "shh".into());
        settings.mcp_servers = Some(
            json!({"github": {"env": {"GITHUB_PAT": "ghp_in_mcp"}, "args": ["--auth", "ghp_arg"]}}),
        );
        for text in [format!("{settings:?}"), format!("{settings:#?}")] {
            for secret in
                ["sk-ant-secret", "ghp_tokenvalue", "hunter2", "shh", "ghp_in_mcp", "ghp_arg"]
            {
                assert!(!text.contains(secret), "{secret} leaked in {text}");
            }
            for visible in [
                "ANTHROPIC_API_KEY",
                "GITHUB_TOKEN",
                "<redacted>",
                "http://proxy:3128",
                "\"github\"",
                "claude-opus-4",
            ] {
                assert!(text.contains(visible), "{visible} missing from {text}");
            }
        }
    }

    #[test]
    fn serialize_redacts_secrets_too() {
        let mut settings = full_settings();
        settings.mcp_servers = Some(
            json!({"api": {"url": "https://x", "headers": {"Authorization": "Bearer abc"}, "env": {"API_KEY": "k1"}}}),
        );
        let value = serde_json::to_value(&settings).unwrap();
        assert_eq!(
            value["env"],
            json!({"ANTHROPIC_API_KEY": "<redacted>", "HTTPS_PROXY": "http://proxy:3128"})
        );
        assert_eq!(
            value["mcpServers"],
            json!({"api": {"url": "https://x", "headers": {"Authorization": "<redacted>"}, "env": {"API_KEY": "<redacted>"}}})
        );
        assert_eq!(value["timeoutSecs"], json!(600));
        assert_eq!(value["logLevel"], json!("debug"));
    }

    #[test]
    fn the_pool_hash_follows_spawn_fields_only() {
        let base = full_settings();
        let mut unrelated = base.clone();
        unrelated.timeout_secs = 1;
        unrelated.max_concurrent = 1;
        unrelated.log_level = LogLevel::Trace;
        unrelated.daily_budget_usd = None;
        assert_eq!(base.hash_for_pool(), unrelated.hash_for_pool());

        let changes: [fn(&mut Settings); 8] = [
            |s| s.model = Some("other".into()),
            |s| s.env.insert("X".into(), "1".into()).map_or((), drop),
            |s| s.allowed_tools.clear(),
            |s| s.permission_mode = None,
            |s| s.max_retries_cli = 9,
            |s| s.mcp_servers = Some(json!({"docs": {"command": "other"}})),
            |s| s.system_prompt = None,
            |s| s.agents = Some(json!({"other": {"description": "d", "prompt": "p"}})),
        ];
        for change in changes {
            let mut changed = base.clone();
            change(&mut changed);
            assert_ne!(base.hash_for_pool(), changed.hash_for_pool(), "{changed:?}");
        }
    }

    #[test]
    fn the_pool_hash_ignores_mcp_key_order() {
        let first = Settings {
            mcp_servers: Some(json!({"a": {"command": "x", "args": ["1"]}, "b": {"command": "y"}})),
            ..Settings::default()
        };
        let second = Settings {
            mcp_servers: Some(json!({"b": {"command": "y"}, "a": {"args": ["1"], "command": "x"}})),
            ..Settings::default()
        };
        assert_eq!(first.hash_for_pool(), second.hash_for_pool());
    }

    #[test]
    fn a_bad_agent_is_left_out_with_a_warning_and_the_others_kept() {
        let (settings, warnings) = parse(json!({"agents": {
            "good": {"description": "Reviews", "prompt": "Review.", "color": "blue"},
            "no_prompt": {"description": "x"},
            "bad_tools": {"description": "x", "prompt": "y", "tools": "Read"},
            "not_an_object": "prompt",
        }}));
        assert_eq!(
            settings.agents,
            Some(json!({"good": {"description": "Reviews", "prompt": "Review.", "color": "blue"}}))
        );
        assert_eq!(
            warnings,
            [
                "claude.agents.bad_tools: `tools` must be a list of tool names, got \"Read\"; agent ignored",
                "claude.agents.no_prompt: `prompt` is missing; agent ignored",
                "claude.agents.not_an_object: expected an object {description, prompt, tools?, model?}, got \"prompt\"; agent ignored",
            ]
        );
        let (settings, warnings) = parse(json!({"agents": ["reviewer"], "systemPrompt": 3}));
        assert_eq!((settings.agents, settings.system_prompt), (None, None));
        assert_eq!(
            warnings,
            [
                "claude.agents: expected an object of agents by name, got [\"reviewer\"]; using none",
                "claude.systemPrompt: expected a string, got 3; leaving it unset",
            ]
        );
    }
}
