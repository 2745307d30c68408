//! One JSON value read as one setting (a string, a path, an integer in range, an agent, …), or
//! the problem in words for the warning.

use std::path::PathBuf;

use serde_json::Value;

use super::schema::{Delivery, PERMISSION_MODES};
use crate::base::logging::LogLevel;

/// How much of a bad value a warning quotes.
const MAX_QUOTED_CHARS: usize = 60;

/// One subagent as the CLI's `--agents` wants it.
pub(super) fn check_agent(name: &str, agent: &Value) -> Result<(), String> {
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

/// A bad value as quoted in a warning: compact JSON, cut short.
pub(super) fn describe(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// A one-line string (a name); empty means unset.
pub(super) fn parse_string(value: &Value) -> Result<Option<String>, String> {
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
pub(super) fn parse_text(value: &Value) -> Result<Option<String>, String> {
    let Value::String(text) = value else {
        return Err(format!("expected a string, got {}", describe(value)));
    };
    if text.contains('\0') {
        return Err("contains a NUL character".to_owned());
    }
    Ok((!text.trim().is_empty()).then(|| text.clone()))
}

/// A path, with a leading `~` expanded to the home directory.
pub(super) fn parse_path(value: &Value) -> Result<Option<PathBuf>, String> {
    let Some(text) = parse_string(value)? else { return Ok(None) };
    let expanded = match (text.strip_prefix('~'), dirs::home_dir()) {
        (Some(""), Some(home)) => home,
        (Some(rest), Some(home)) if rest.starts_with('/') => home.join(&rest[1..]),
        _ => PathBuf::from(text),
    };
    Ok(Some(expanded))
}

pub(super) fn parse_absolute_path(value: &Value) -> Result<Option<PathBuf>, String> {
    match parse_path(value)? {
        Some(path) if !path.is_absolute() => {
            Err(format!("expected an absolute path, got {}", describe(value)))
        }
        path => Ok(path),
    }
}

pub(super) fn parse_permission_mode(value: &Value) -> Result<Option<String>, String> {
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

pub(super) fn parse_bool(value: &Value) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| format!("expected true or false, got {}", describe(value)))
}

pub(super) fn parse_log_level(value: &Value) -> Result<LogLevel, String> {
    value.as_str().and_then(LogLevel::parse).ok_or_else(|| {
        let names: Vec<&str> = LogLevel::ALL.iter().map(|level| level.as_str()).collect();
        format!("expected one of {}, got {}", names.join(", "), describe(value))
    })
}

pub(super) fn parse_delivery(value: &Value) -> Result<Delivery, String> {
    let wanted = value.as_str().map(str::to_ascii_lowercase);
    Delivery::ALL
        .into_iter()
        .find(|delivery| wanted.as_deref() == Some(delivery.as_str()))
        .ok_or_else(|| format!("expected \"apply\" or \"review\", got {}", describe(value)))
}

/// An amount of US dollars: a positive, finite number.
pub(super) fn parse_dollars(value: &Value) -> Result<Option<f64>, String> {
    match value.as_f64() {
        Some(amount) if amount.is_finite() && amount > 0.0 => Ok(Some(amount)),
        _ => Err(format!("expected a positive number of US dollars, got {}", describe(value))),
    }
}

/// Adapts a parser of always-present values to the `optional` shape.
pub(super) fn present<T>(
    parse: impl Fn(&Value) -> Result<T, String>,
) -> impl Fn(&Value) -> Result<Option<T>, String> {
    move |value| parse(value).map(Some)
}

/// An integer in `min..=max`. Integral floats (`300.0`) are accepted: some clients send every
/// number as a float.
pub(super) fn int_in<T: TryFrom<u64>>(min: u64, max: u64) -> impl Fn(&Value) -> Result<T, String> {
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
