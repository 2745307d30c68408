//! Parsing: the settings read field by field, a bad value replaced by its default with a
//! [`SettingsWarning`], unknown fields reported with a "did you mean" hint.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::schema::{SETTING_NAMES, Settings};
use super::values::{
    check_agent, describe, int_in, parse_absolute_path, parse_bool, parse_delivery, parse_dollars,
    parse_log_level, parse_path, parse_permission_mode, parse_string, parse_text, present,
};
use crate::base::text::json_kind;

/// The configuration section (and the prefix of every field name in warnings).
const SECTION: &str = "claude";

/// Longest duration setting accepted: one week. Larger values would overflow `Instant`
/// arithmetic in timers, and nobody means them.
const MAX_SECONDS: u64 = 7 * 24 * 60 * 60;

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
/// gives the defaults. Never fails: see the module docs of `settings`.
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
