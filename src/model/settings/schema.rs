//! The settings' shape: every field with its default, the names users write, and a `Debug`
//! that redacts secrets.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::redaction::{
    AgentNames, McpServerNames, RedactedEnv, serialize_redacted_env, serialize_redacted_mcp,
};
use crate::base::logging::LogLevel;

/// The `--permission-mode` values both pinned CLIs accept (2.1.197 and 2.1.330). 2.1.330 calls
/// `default` `manual`; that spelling is accepted here too and stored as `default`.
pub(super) const PERMISSION_MODES: [&str; 5] =
    ["default", "acceptEdits", "plan", "bypassPermissions", "dontAsk"];

/// Every setting name, as written by the user (camelCase, without the `claude.` prefix).
pub(super) const SETTING_NAMES: [&str; 36] = [
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

/// The server's settings. `Debug` and `Serialize` redact secrets (see `redaction.rs`).
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
    /// The CLI's `--permission-mode`; one of `PERMISSION_MODES`.
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
    pub(super) const ALL: [Delivery; 2] = [Delivery::Apply, Delivery::Review];

    pub(super) fn as_str(self) -> &'static str {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pretty_assertions::assert_eq;

    use super::*;

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
}
