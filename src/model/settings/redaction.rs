//! Secrets in `env` and `mcpServers` kept out of `Debug` and `Serialize`: values under
//! secret-looking names replaced, MCP configs and agents shown by name.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::base::secrets::is_secret_name;

/// What secret values are shown as (`env` names that hold secrets: [`is_secret_name`]).
const REDACTED: &str = "<redacted>";

/// `env` for `Debug`: every key, the values of secret-looking keys replaced.
pub(super) struct RedactedEnv<'a>(pub(super) &'a BTreeMap<String, String>);

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
pub(super) struct AgentNames<'a>(pub(super) &'a Value);

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
pub(super) struct McpServerNames<'a>(pub(super) &'a Value);

impl fmt::Debug for McpServerNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Object(servers) => f.debug_list().entries(servers.keys()).finish(),
            _ => f.write_str(REDACTED),
        }
    }
}

pub(super) fn serialize_redacted_env<S: Serializer>(
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

pub(super) fn serialize_redacted_mcp<S: Serializer>(
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
