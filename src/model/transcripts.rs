//! The CLI's own transcripts of conversations (`<config dir>/projects/<dir name>/<id>.jsonl`):
//! where they are, how to make one resumable from another directory, and how they read as
//! messages. The format is the CLI's (cli-protocol.md §7); the session index that points at them
//! is sessions.rs.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::base::files::write_atomically;
use crate::base::secrets::redacted;
use crate::model::usage::CliTotals;

/// Longest text of one transcript message returned to a client.
const MAX_MESSAGE_CHARS: usize = 20_000;

/// Where the CLI keeps its state (`projects/` holds the transcripts): `CLAUDE_CONFIG_DIR`, else
/// `$HOME/.claude`. The CLI's environment is ours plus the `env` setting, so `env` is asked
/// first for each variable. `None` when no home directory is known.
pub fn cli_config_dir(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let var = |key: &str| {
        env.get(key).cloned().or_else(|| std::env::var(key).ok()).filter(|value| !value.is_empty())
    };
    if let Some(dir) = var("CLAUDE_CONFIG_DIR") {
        return Some(PathBuf::from(dir));
    }
    var("HOME").map(PathBuf::from).or_else(dirs::home_dir).map(|home| home.join(".claude"))
}

/// The CLI's name for a working directory under `projects/`: every character but ASCII letters
/// and digits becomes `-`; past 200 characters the name is cut and a hash of the path added
/// (cli-protocol.md §7).
pub fn project_dir_name(cwd: &Path) -> String {
    const MAX: usize = 200;
    let path = fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    let text = path.to_string_lossy();
    // JavaScript strings are UTF-16: the CLI replaces each code unit.
    let units: Vec<u16> = text.encode_utf16().collect();
    let name: String = units
        .iter()
        .map(|unit| match char::from_u32(u32::from(*unit)) {
            Some(c) if c.is_ascii_alphanumeric() => c,
            _ => '-',
        })
        .collect();
    if name.len() <= MAX {
        return name;
    }
    // JavaScript's classic string hash, as a 32-bit integer, in base 36.
    let hash = units.iter().fold(0i32, |hash, unit| {
        hash.wrapping_shl(5).wrapping_sub(hash).wrapping_add(i32::from(*unit))
    });
    format!("{}-{}", &name[..MAX], base36(hash.unsigned_abs()))
}

fn base36(mut n: u32) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// The transcript of conversation `id`: the longest `projects/*/<id>.jsonl` (transcripts only
/// grow, and a conversation continued from another directory may have a copy in each).
pub fn find_transcript(config_dir: &Path, id: &str) -> Option<PathBuf> {
    let file_name = format!("{id}.jsonl");
    let projects = fs::read_dir(config_dir.join("projects")).ok()?;
    projects
        .filter_map(Result::ok)
        .map(|project| project.path().join(&file_name))
        .filter_map(|path| Some((fs::metadata(&path).ok()?.len(), path)))
        .max()
        .map(|(_, path)| path)
}

/// Make conversation `id` resumable from `cwd`, and return the transcript the CLI will read
/// (`None`: the CLI has no transcript of it). Older CLIs (2.1.197) look a conversation up only
/// under their working directory's project folder, so a conversation continued from another
/// directory (a busy mirror slot, a read-only follow-up of an edit) gets the newest transcript
/// copied there first.
pub fn prepare_resume(config_dir: &Path, id: &str, cwd: &Path) -> io::Result<Option<PathBuf>> {
    let Some(newest) = find_transcript(config_dir, id) else { return Ok(None) };
    let target =
        config_dir.join("projects").join(project_dir_name(cwd)).join(format!("{id}.jsonl"));
    if newest == target {
        return Ok(Some(target));
    }
    let newest_len = fs::metadata(&newest)?.len();
    let target_len = fs::metadata(&target).map(|meta| meta.len()).ok();
    if target_len.is_none_or(|len| len < newest_len) {
        write_atomically(&target, &fs::read(&newest)?)?;
    }
    Ok(Some(target))
}

/// The running totals the CLI restores when it resumes this transcript: its last `cost-state`
/// line (CLIs that write none start from zero).
pub fn transcript_cost_state(transcript: &Path) -> CliTotals {
    let Ok(text) = fs::read(transcript) else { return CliTotals::default() };
    text.split(|byte| *byte == b'\n')
        .rev()
        .filter(|line| memchr::memmem::find(line, b"\"cost-state\"").is_some())
        .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
        .find(|line| line.get("type").and_then(Value::as_str) == Some("cost-state"))
        .map(|line| CliTotals::from_cost_state(&line))
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One message of a conversation, as the user would read it.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptMessage {
    pub role: Role,
    pub text: String,
    /// Tools the assistant called in this message.
    pub tools: Vec<String>,
    pub timestamp: Option<String>,
}

/// The user and assistant messages of a transcript, in order: the user's prompts, the
/// assistant's text and tool calls. Tool results, side chains (subagents), replays and the
/// CLI's bookkeeping lines are left out; unreadable lines are skipped.
pub fn read_transcript(path: &Path) -> io::Result<Vec<TranscriptMessage>> {
    let bytes = fs::read(path)?;
    let mut messages: Vec<TranscriptMessage> = Vec::new();
    let mut last_assistant_id: Option<String> = None;
    for line in bytes.split(|byte| *byte == b'\n') {
        let Ok(entry) = serde_json::from_slice::<Value>(line) else { continue };
        let flag = |key: &str| entry.get(key).and_then(Value::as_bool).unwrap_or(false);
        if flag("isSidechain") || flag("isMeta") || flag("isReplay") {
            continue;
        }
        let role = match entry.get("type").and_then(Value::as_str) {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            _ => continue,
        };
        let Some(message) = entry.get("message") else { continue };
        let (text, tools) = content_text(message.get("content"));
        if text.is_empty() && tools.is_empty() {
            // A user line holding only tool results, or an empty block.
            continue;
        }
        let timestamp = entry.get("timestamp").and_then(Value::as_str).map(str::to_owned);
        // The CLI writes one line per content block of an assistant message: join them.
        let message_id = message.get("id").and_then(Value::as_str).map(str::to_owned);
        let continues = role == Role::Assistant
            && message_id.is_some()
            && message_id == last_assistant_id
            && messages.last().is_some_and(|last| last.role == Role::Assistant);
        last_assistant_id = if role == Role::Assistant { message_id } else { None };
        match messages.last_mut() {
            Some(last) if continues => {
                if !text.is_empty() {
                    if !last.text.is_empty() {
                        last.text.push_str("\n\n");
                    }
                    last.text.push_str(&text);
                }
                last.tools.extend(tools);
            }
            _ => messages.push(TranscriptMessage { role, text, tools, timestamp }),
        }
    }
    for message in &mut messages {
        message.text = redacted(&message.text);
        if message.text.chars().count() > MAX_MESSAGE_CHARS {
            message.text = message.text.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "\n…";
        }
    }
    Ok(messages)
}

/// The text blocks of a message's content (a string or a list of blocks), and its tool calls.
fn content_text(content: Option<&Value>) -> (String, Vec<String>) {
    match content {
        Some(Value::String(text)) => (text.clone(), Vec::new()),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::new();
            let mut tools = Vec::new();
            for block in blocks {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(text) = block.get("text").and_then(Value::as_str) {
                            texts.push(text.to_owned());
                        }
                    }
                    Some("tool_use") => {
                        if let Some(name) = block.get("name").and_then(Value::as_str) {
                            tools.push(name.to_owned());
                        }
                    }
                    _ => {}
                }
            }
            (texts.join("\n\n"), tools)
        }
        _ => (String::new(), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn project_folders_are_named_like_the_cli_names_them() {
        assert_eq!(project_dir_name(Path::new("/home/u/proj")), "-home-u-proj");
        assert_eq!(project_dir_name(Path::new("/tmp/a_b.c/é")), "-tmp-a-b-c--");
        let long = format!("/{}", "x".repeat(300));
        let name = project_dir_name(Path::new(&long));
        assert!(name.starts_with(&format!("-{}", "x".repeat(199))), "{name}");
        assert_eq!(name.len(), 200 + 1 + name.rsplit('-').next().unwrap().len());
        assert_ne!(name, project_dir_name(Path::new(&format!("{long}y"))));
    }

    #[test]
    fn the_config_dir_comes_from_the_env_setting_first() {
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        assert_eq!(
            cli_config_dir(&env(&[("CLAUDE_CONFIG_DIR", "/c"), ("HOME", "/h")])),
            Some(PathBuf::from("/c"))
        );
        if std::env::var_os("CLAUDE_CONFIG_DIR").is_none() {
            assert_eq!(cli_config_dir(&env(&[("HOME", "/h")])), Some(PathBuf::from("/h/.claude")));
        }
    }

    #[test]
    fn a_conversation_continued_elsewhere_gets_its_newest_transcript_copied_there() {
        let config = tempfile::tempdir().unwrap();
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let id = "0587b30b-efc8-4667-ae28-47c9bb2c591d";
        assert_eq!(prepare_resume(config.path(), id, first.path()).unwrap(), None);
        let home = config.path().join("projects").join(project_dir_name(first.path()));
        fs::create_dir_all(&home).unwrap();
        fs::write(home.join(format!("{id}.jsonl")), "line 1\nline 2\n").unwrap();

        let same = prepare_resume(config.path(), id, first.path()).unwrap().unwrap();
        assert_eq!(same, home.join(format!("{id}.jsonl")));
        let moved = prepare_resume(config.path(), id, second.path()).unwrap().unwrap();
        assert_ne!(moved, same);
        assert_eq!(fs::read_to_string(&moved).unwrap(), "line 1\nline 2\n");
        // The copy grew there; going back brings the longer one along.
        fs::write(&moved, "line 1\nline 2\nline 3\n").unwrap();
        assert_eq!(find_transcript(config.path(), id), Some(moved.clone()));
        prepare_resume(config.path(), id, first.path()).unwrap();
        assert_eq!(fs::read_to_string(&same).unwrap(), "line 1\nline 2\nline 3\n");
    }

    #[test]
    fn transcripts_read_as_user_and_assistant_messages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let lines = [
            json!({"type": "queue-operation", "operation": "enqueue", "content": "first"}),
            json!({"type": "user", "message": {"role": "user", "content": "rename add to sum"}, "timestamp": "2026-11-21T13:21:42.416Z"}),
            json!({"type": "attachment", "attachment": {"type": "environment"}}),
            json!({"type": "assistant", "message": {"id": "msg_1", "role": "assistant", "content": [{"type": "thinking", "thinking": "hmm"}]}}),
            json!({"type": "assistant", "message": {"id": "msg_1", "role": "assistant", "content": [{"type": "text", "text": "Reading it."}]}}),
            json!({"type": "assistant", "message": {"id": "msg_1", "role": "assistant", "content": [{"type": "tool_use", "name": "Read", "input": {}}]}}),
            json!({"type": "user", "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "fn add"}]}}),
            json!({"type": "assistant", "isSidechain": true, "message": {"id": "msg_s", "content": [{"type": "text", "text": "subagent"}]}}),
            json!({"type": "assistant", "message": {"id": "msg_2", "role": "assistant", "content": [{"type": "text", "text": "Renamed."}]}}),
            json!({"type": "cost-state", "totalCostUSD": 0.25, "modelUsage": {"m": {"inputTokens": 7, "costUSD": 0.25}}}),
            json!({"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": "now add docs"}]}}),
        ];
        let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        text.push_str("{not json\n");
        fs::write(&path, text).unwrap();
        let messages = read_transcript(&path).unwrap();
        let view: Vec<(Role, &str, Vec<&str>)> = messages
            .iter()
            .map(|m| (m.role, m.text.as_str(), m.tools.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            view,
            [
                (Role::User, "rename add to sum", vec![]),
                (Role::Assistant, "Reading it.", vec!["Read"]),
                (Role::Assistant, "Renamed.", vec![]),
                (Role::User, "now add docs", vec![]),
            ]
        );
        assert_eq!(messages[0].timestamp.as_deref(), Some("2026-11-21T13:21:42.416Z"));
        let state = transcript_cost_state(&path);
        assert_eq!(state.cost_usd, 0.25);
        assert_eq!(state.models["m"].input_tokens, 7);
        assert_eq!(transcript_cost_state(&dir.path().join("missing")), CliTotals::default());
    }
}
