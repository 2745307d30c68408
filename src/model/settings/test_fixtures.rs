//! Settings used by the tests of several files: every field set, as JSON and as `Settings`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::parse::parse_settings;
use super::schema::{Delivery, Settings};
use crate::base::logging::LogLevel;

pub(super) fn parse(value: Value) -> (Settings, Vec<String>) {
    let (settings, warnings) = parse_settings(Some(&value));
    (settings, warnings.iter().map(ToString::to_string).collect())
}

pub(super) fn full_settings_json() -> Value {
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

pub(super) fn full_settings() -> Settings {
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
