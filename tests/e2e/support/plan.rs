//! Scripts in which the fake model calls tools, one per turn, selected by a marker in the prompt.

use serde_json::{Value, json};

use super::fake_api::{RecordedRequest, Script, Turn};
use super::workspace::cli_cwd;

/// Tool calls the fake model makes for one prompt, one per turn, then a text answer.
pub struct Plan {
    /// Text in the prompt that selects this plan (part of the request's instruction).
    pub marker: &'static str,
    pub calls: Vec<(&'static str, Value)>,
}

/// A script serving `plans`. In string inputs, `{cwd}` becomes the CLI's working directory. Turns
/// are counted from the prompt carrying the marker, so a continued conversation starts its plan.
pub fn script(plans: Vec<Plan>) -> Script {
    Script::from_fn(move |request: &RecordedRequest| {
        let messages = request.messages();
        let found = messages.iter().enumerate().rev().find_map(|(index, message)| {
            let text = message.to_string();
            let plan = plans
                .iter()
                .find(|plan| message["role"] == "user" && text.contains(plan.marker))?;
            Some((index, plan))
        });
        let Some((index, plan)) = found else {
            return Turn::text("no plan matches this prompt");
        };
        let step = messages[index..].iter().filter(|m| m["role"] == "assistant").count();
        match plan.calls.get(step) {
            Some((tool, input)) => {
                let cwd = cli_cwd(request);
                let input = substitute(input, &cwd);
                Turn::tool_use(*tool, input)
            }
            None => Turn::text(format!("done {}", plan.marker)),
        }
    })
}

fn substitute(value: &Value, cwd: &str) -> Value {
    match value {
        Value::String(text) => Value::String(text.replace("{cwd}", cwd)),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, cwd)).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), substitute(v, cwd))).collect())
        }
        other => other.clone(),
    }
}

/// A Bash tool input.
pub fn bash(command: &str) -> Value {
    json!({"command": command, "description": "test command"})
}
