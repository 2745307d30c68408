//! The shell-command checker: any Bash command (and working directory) gets a verdict without
//! a panic, and a command that names a path outside the workspace is never allowed by a rule.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use claude_lsp::engine::permissions::{Policy, ToolCall, Verdict};
use claude_lsp::model::settings::parse_settings;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

static ROOT: LazyLock<PathBuf> = LazyLock::new(|| {
    let root = std::env::temp_dir().join("claude-lsp-fuzz-ws");
    let _ = std::fs::create_dir_all(root.join("src"));
    root.canonicalize().unwrap_or(root)
});

static POLICY: LazyLock<Policy> = LazyLock::new(|| {
    let options = json!({"allowedTools": ["Bash(git diff:*)", "Bash(cat:*)", "Bash(echo *)"]});
    let (settings, _) = parse_settings(Some(&options));
    Policy::new(&ROOT, &settings, true)
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (command, cwd) = text.split_once('\0').unwrap_or((&text, ""));
    let input = json!({"command": command});
    let cwd = (!cwd.is_empty()).then(|| ROOT.join(cwd));
    let call = ToolCall { tool: "Bash", input: &input, cwd: cwd.as_deref() };
    let verdict = POLICY.evaluate(&call, &|_| false);
    // A word (between blanks, operators and quotes) that is the path; after a `#` the rest may
    // be a comment, which names nothing. A quoted string is one word to the shell (`-c 'echo >
    // /etc/passwd'` is an argument, not the path), so quoted commands are left to the checker.
    let named = !command.contains(['#', '\'', '"'])
        && command
            .split(|c: char| c.is_whitespace() || ";&|<>()`".contains(c))
            .any(|word| word == "/etc/passwd");
    if named && matches!(verdict, Verdict::Allow { .. }) {
        panic!("a command naming /etc/passwd was allowed: {command:?}");
    }
});
