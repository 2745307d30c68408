//! What the settings give a CLI process: its environment (with the variables derived from
//! the settings), its home, its time limits, the secrets to redact from its output, and the hash
//! that decides which warm process may serve a run.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::schema::Settings;
use crate::base::secrets::is_secret_name;

/// The env var the CLI reads for its own API retry count (cli-protocol.md §1.3).
const CLI_MAX_RETRIES_VAR: &str = "CLAUDE_CODE_MAX_RETRIES";

/// The env var that keeps the CLI's git snapshot (branch, `git status`, the last five commits)
/// and its commit/PR instructions out of the system prompt. Without it the CLI runs six git
/// commands when it starts and again after every `/clear`; a run's prompt carries what it needs
/// (a review its diff), commits are never the agent's to make, and in a staging mirror that
/// snapshot describes the mirror, not the user's repository. `env` can set it to the empty
/// string to have the snapshot back (the CLI reads any other value as "disable").
const CLI_GIT_CONTEXT_VAR: &str = "CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS";

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
    /// git snapshot in the system prompt (`CLI_GIT_CONTEXT_VAR`), then the user's `env`. A
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

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::super::test_fixtures::{full_settings, parse};
    use super::*;
    use crate::base::logging::LogLevel;

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
}
