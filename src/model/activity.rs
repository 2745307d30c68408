//! What the agent is doing, in words, for progress reports ("Reading src/lib.rs").

use std::time::{Duration, Instant};

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

/// The agent's text as it streams, as progress: the line it is writing, in whole words, at most
/// one report per interval, so a long answer shows as it comes without flooding the editor.
/// Only whole words are shown: a secret arriving in pieces is never shown in part (reports are
/// redacted as a whole).
#[derive(Debug)]
pub struct TextProgress {
    interval: Duration,
    /// The line being written, and the last non-empty line before it.
    line: String,
    previous_line: String,
    last_report: Option<(Instant, String)>,
    /// A report came from the current block's pieces.
    reported_in_block: bool,
}

impl TextProgress {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            line: String::new(),
            previous_line: String::new(),
            last_report: None,
            reported_in_block: false,
        }
    }

    /// A piece of streamed text: a report to send now, if one is due.
    pub fn piece(&mut self, text: &str, now: Instant) -> Option<String> {
        for (i, part) in text.split('\n').enumerate() {
            if i > 0 && !self.line.trim().is_empty() {
                self.previous_line = std::mem::take(&mut self.line);
            } else if i > 0 {
                self.line.clear();
            }
            self.line.push_str(part);
        }
        let due = self.last_report.as_ref().is_none_or(|(at, _)| now >= *at + self.interval);
        if !due {
            return None;
        }
        // The words written so far of the current line, else the line before it.
        let words = self.line.rfind(char::is_whitespace).map_or("", |end| &self.line[..end]);
        let shown = if words.trim().is_empty() { self.previous_line.trim() } else { words.trim() };
        let shown = shown.to_owned();
        self.report(&shown, now)
    }

    /// A text block is complete (its whole text): its first line when none of its pieces was
    /// reported (no streaming), else its last line when the reports have not shown it yet.
    pub fn block(&mut self, text: &str, now: Instant) -> Option<String> {
        let streamed = std::mem::take(&mut self.reported_in_block);
        self.line.clear();
        self.previous_line.clear();
        if !streamed {
            let line = describe_text(text)?;
            self.last_report = Some((now, line.clone()));
            return Some(line);
        }
        let last = text.lines().map(str::trim).rfind(|line| !line.is_empty())?;
        self.report(last, now)
    }

    fn report(&mut self, text: &str, now: Instant) -> Option<String> {
        if text.is_empty() {
            return None;
        }
        let message = tail(text);
        if self.last_report.as_ref().is_some_and(|(_, last)| *last == message) {
            return None;
        }
        self.reported_in_block = true;
        self.last_report = Some((now, message.clone()));
        Some(message)
    }
}

/// The end of a long line ("…" and its last words): a line being written shows what is new.
fn tail(text: &str) -> String {
    let count = text.chars().count();
    if count <= MAX_MESSAGE_CHARS {
        return text.to_owned();
    }
    let skip = count - MAX_MESSAGE_CHARS;
    let start = text.char_indices().nth(skip).map_or(0, |(i, _)| i);
    let mut rest = &text[start..];
    // Start at a word.
    if !text[..start].ends_with(char::is_whitespace)
        && let Some(space) = rest.find(char::is_whitespace)
    {
        rest = &rest[space..];
    }
    format!("…{}", rest.trim_start())
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

/// The first non-empty line of `text`, cut to `max_chars` with "…".
pub fn headline(text: &str, max_chars: usize) -> String {
    let line = text.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or("");
    if line.chars().count() <= max_chars {
        return line.to_owned();
    }
    let cut: String = line.chars().take(max_chars.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
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
    fn streamed_text_shows_whole_words_at_most_once_per_interval() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut progress = TextProgress::new(Duration::from_millis(200));
        // The first words show at once; a word still being written does not.
        assert_eq!(progress.piece("The funct", at(0)), Some("The".to_owned()));
        assert_eq!(progress.piece("ion adds two", at(50)), None, "too soon");
        assert_eq!(progress.piece(" numbers", at(250)), Some("The function adds two".to_owned()));
        // A finished line shows while the next one has no whole word yet.
        assert_eq!(
            progress.piece(".\nSecond", at(500)),
            Some("The function adds two numbers.".to_owned())
        );
        assert_eq!(progress.piece(" line", at(800)), Some("Second".to_owned()));
        // The block's end shows its last line, once.
        assert_eq!(
            progress.block("The function adds two numbers.\nSecond line", at(810)),
            Some("Second line".to_owned())
        );
        assert_eq!(progress.block("Second line", at(820)), None, "not streamed, but the same line");
        // Without pieces (no partial messages), a block shows its first line.
        assert_eq!(progress.block("\nFirst\nthen more", at(900)), Some("First".to_owned()));
    }

    #[test]
    fn a_secret_streamed_in_pieces_never_shows_in_part() {
        let start = Instant::now();
        let mut progress = TextProgress::new(Duration::ZERO);
        let mut shown = Vec::new();
        for (i, piece) in ["the key is sk-an", "t-api03-abcdef", "ghij and more"].iter().enumerate()
        {
            shown.extend(progress.piece(piece, start + Duration::from_millis(i as u64)));
        }
        assert_eq!(shown, ["the key is", "the key is sk-ant-api03-abcdefghij and"]);
    }

    #[test]
    fn long_lines_show_their_latest_words() {
        let mut progress = TextProgress::new(Duration::ZERO);
        let line = format!("{}end ", "word ".repeat(40));
        let shown = progress.piece(&line, Instant::now()).unwrap();
        assert!(shown.starts_with("…word") && shown.ends_with("word end"), "{shown}");
        assert!(shown.chars().count() <= MAX_MESSAGE_CHARS + 1, "{shown}");
    }

    #[test]
    fn counts_are_compact() {
        assert_eq!(compact_count(999), "999");
        assert_eq!(compact_count(1_234), "1.2k");
        assert_eq!(compact_count(2_500_000), "2.5M");
    }
}
