//! What the agent is doing, in words, for progress reports ("Reading src/lib.rs").

use serde_json::Value;

/// Longest report message; editors show one line.
const MAX_MESSAGE_CHARS: usize = 120;

/// Describe one tool call. `display_path` turns a path the CLI saw (maybe in the staging mirror)
/// into the workspace-relative path the user knows.
pub fn describe_tool_use(
    name: &str,
    input: &Value,
    display_path: &dyn Fn(&str) -> String,
) -> String {
    let field = |key: &str| input.get(key).and_then(Value::as_str);
    let path = || field("file_path").or_else(|| field("notebook_path")).or_else(|| field("path"));
    let message = match name {
        "Read" => path().map(|p| format!("Reading {}", display_path(p))),
        "Edit" | "MultiEdit" | "NotebookEdit" => {
            path().map(|p| format!("Editing {}", display_path(p)))
        }
        "Write" => path().map(|p| format!("Writing {}", display_path(p))),
        "Grep" => field("pattern").map(|p| format!("Searching \"{p}\"")),
        "Glob" => field("pattern").map(|p| format!("Finding files {p}")),
        "Bash" => field("command").map(|c| format!("Running: {}", first_line(c))),
        "WebFetch" => field("url").map(|u| format!("Fetching {u}")),
        "WebSearch" => field("query").map(|q| format!("Searching the web for \"{q}\"")),
        "Task" | "Agent" => field("description").map(|d| format!("Delegating: {d}")),
        "TodoWrite" => Some("Planning".to_owned()),
        "StructuredOutput" => Some("Writing the report".to_owned()),
        _ => None,
    };
    let message = message.unwrap_or_else(|| match name.strip_prefix("mcp__") {
        Some(rest) => format!("Using {}", rest.replace("__", ": ")),
        None => format!("Using {name}"),
    });
    truncate(&message)
}

/// A line of the agent's text, as a progress message.
pub fn describe_text(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|line| !line.is_empty())?;
    Some(truncate(line))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// "1.2k" for token counts in summaries.
pub fn compact_count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1_000.0),
        _ => format!("{:.1}M", n as f64 / 1_000_000.0),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn strip(path: &str) -> String {
        path.trim_start_matches("/mirror/").to_owned()
    }

    #[test]
    fn tool_calls_read_as_sentences() {
        let cases = [
            ("Read", json!({"file_path": "/mirror/src/x.rs"}), "Reading src/x.rs"),
            ("Edit", json!({"file_path": "/mirror/src/x.rs"}), "Editing src/x.rs"),
            ("Write", json!({"file_path": "/mirror/new.rs"}), "Writing new.rs"),
            ("Grep", json!({"pattern": "foo"}), "Searching \"foo\""),
            ("Bash", json!({"command": "cargo test\nmore"}), "Running: cargo test"),
            ("mcp__lsp__echo", json!({}), "Using lsp: echo"),
            ("Zap", json!({}), "Using Zap"),
            ("Read", json!({}), "Using Read"),
        ];
        for (name, input, want) in cases {
            assert_eq!(describe_tool_use(name, &input, &strip), want);
        }
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(300);
        let text = describe_text(&long).unwrap();
        assert_eq!(text.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(text.ends_with('…'));
        assert_eq!(describe_text("\n  \n  hello \nworld"), Some("hello".to_owned()));
        assert_eq!(describe_text(" \n "), None);
    }

    #[test]
    fn counts_are_compact() {
        assert_eq!(compact_count(999), "999");
        assert_eq!(compact_count(1_234), "1.2k");
        assert_eq!(compact_count(2_500_000), "2.5M");
    }
}
