//! A scripted stand-in for the Anthropic Messages API, as a process, for the editor tests
//! (Neovim, VS Code) that drive the real server and the real `claude` CLI from outside Rust.
//!
//! ```text
//! cargo run --example fake_api_server -- --script turns.json [--record requests.jsonl]
//! ```
//!
//! When ready it prints one line, `{"baseUrl":"http://127.0.0.1:PORT"}`, on stdout. It serves
//! until killed, or until its stdin reaches EOF when stdin is a pipe or a terminal (a harness that
//! holds the write end open can stop it by closing it; `/dev/null` does not count as closed).
//!
//! The script is `{"turns": [turn, …]}`. Turn `i` answers a request whose conversation holds `i`
//! assistant messages (so turn 0 is the first API call, turn 1 the call after the first tool
//! result); past the end the last turn repeats. A turn is one of:
//!
//! ```text
//! {"text": "…"}
//! {"toolUse": {"name": "Edit", "input": {…}}}
//! {"blocks": [{"text": "…"}, {"thinking": "…"}, {"toolUse": {…}}]}
//! {"error": {"status": 429, "retryAfter": 1, "type"?: "…", "message"?: "…"}}
//! {"slowText": {"chunks": ["a", "b"], "intervalMs": 200}}
//! {"hang": true}
//! ```
//!
//! `{{cwd}}` in any text or tool input string is replaced by the CLI's working directory as the
//! request states it (` - Primary working directory: /path` in its environment section): edit
//! runs happen in a staging mirror whose path a script cannot know in advance.

#[allow(dead_code)] // shared with the Rust tests, which use more of it
#[path = "../tests/e2e/support/fake_api.rs"]
mod fake_api;

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use fake_api::{Block, FakeApi, RecordedRequest, Turn};

const CWD_PLACEHOLDER: &str = "{{cwd}}";
/// How the CLI's system prompt names its working directory (2.1.197 puts the environment section
/// in `system`; 2.1.330 sends it as a `system`-role entry of `messages`).
const CWD_MARKER: &str = "- Primary working directory:";

const USAGE: &str = "usage: fake_api_server --script <turns.json> [--record <requests.jsonl>]";

#[derive(Debug, PartialEq)]
struct Options {
    script: PathBuf,
    record: Option<PathBuf>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut script = None;
    let mut record = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let slot = match arg.as_str() {
            "--script" => &mut script,
            "--record" => &mut record,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        };
        let value = args.next().ok_or_else(|| format!("`{arg}` needs a file path\n{USAGE}"))?;
        *slot = Some(PathBuf::from(value));
    }
    let script = script.ok_or_else(|| format!("`--script` is required\n{USAGE}"))?;
    Ok(Options { script, record })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptFile {
    turns: Vec<TurnSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
enum TurnSpec {
    Text(String),
    ToolUse(ToolUseSpec),
    Blocks(Vec<BlockSpec>),
    Error(ErrorSpec),
    SlowText(SlowTextSpec),
    Hang(bool),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
enum BlockSpec {
    Text(String),
    Thinking(String),
    ToolUse(ToolUseSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolUseSpec {
    name: String,
    #[serde(default = "empty_object")]
    input: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ErrorSpec {
    status: u16,
    #[serde(rename = "type")]
    error_type: Option<String>,
    message: Option<String>,
    retry_after: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SlowTextSpec {
    chunks: Vec<String>,
    interval_ms: u64,
}

fn empty_object() -> Value {
    json!({})
}

/// Parse and check a script; every problem names the turn it is in.
fn parse_script(text: &str) -> Result<Vec<Turn>, String> {
    let file: ScriptFile =
        serde_json::from_str(text).map_err(|err| format!("invalid script: {err}"))?;
    if file.turns.is_empty() {
        return Err("invalid script: `turns` is empty; give at least one turn".to_owned());
    }
    file.turns
        .into_iter()
        .enumerate()
        .map(|(index, spec)| turn_from_spec(spec).map_err(|err| format!("turn {index}: {err}")))
        .collect()
}

fn turn_from_spec(spec: TurnSpec) -> Result<Turn, String> {
    Ok(match spec {
        TurnSpec::Text(text) => Turn::text(text),
        TurnSpec::ToolUse(tool) => Turn::reply(vec![tool_block(tool)?]),
        TurnSpec::Blocks(blocks) => {
            if blocks.is_empty() {
                return Err("`blocks` is empty".to_owned());
            }
            let blocks = blocks
                .into_iter()
                .map(|block| match block {
                    BlockSpec::Text(text) => Ok(Block::Text(text)),
                    BlockSpec::Thinking(text) => Ok(Block::Thinking(text)),
                    BlockSpec::ToolUse(tool) => tool_block(tool),
                })
                .collect::<Result<_, String>>()?;
            Turn::reply(blocks)
        }
        TurnSpec::Error(error) => {
            if !(400..=599).contains(&error.status) {
                return Err(format!(
                    "error status {} is not an HTTP error (400–599)",
                    error.status
                ));
            }
            let (default_type, default_message) = default_error(error.status);
            Turn::Error {
                status: error.status,
                error_type: error.error_type.unwrap_or_else(|| default_type.to_owned()),
                message: error.message.unwrap_or_else(|| default_message.to_owned()),
                retry_after: error.retry_after,
            }
        }
        TurnSpec::SlowText(slow) => {
            if slow.chunks.is_empty() {
                return Err("`slowText.chunks` is empty".to_owned());
            }
            Turn::slow_text(slow.chunks, Duration::from_millis(slow.interval_ms))
        }
        TurnSpec::Hang(true) => Turn::Hang,
        TurnSpec::Hang(false) => {
            return Err("`hang` must be true (leave the turn out instead)".to_owned());
        }
    })
}

fn tool_block(tool: ToolUseSpec) -> Result<Block, String> {
    if !tool.input.is_object() {
        return Err(format!("the input of tool `{}` must be a JSON object", tool.name));
    }
    Ok(Block::ToolUse { name: tool.name, input: tool.input })
}

/// The error type and message the real API sends with `status`.
fn default_error(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("invalid_request_error", "invalid request"),
        401 => ("authentication_error", "invalid x-api-key"),
        403 => ("permission_error", "permission denied"),
        404 => ("not_found_error", "not found"),
        413 => ("request_too_large", "request too large"),
        429 => {
            ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit")
        }
        529 => ("overloaded_error", "Overloaded"),
        _ => ("api_error", "Internal server error"),
    }
}

/// The CLI's working directory as the request states it.
fn request_cwd(body: &Value) -> Option<String> {
    match body {
        Value::String(text) => text.lines().find_map(|line| {
            let cwd = line.trim_start().strip_prefix(CWD_MARKER)?.trim();
            (!cwd.is_empty()).then(|| cwd.to_owned())
        }),
        Value::Array(items) => items.iter().find_map(request_cwd),
        Value::Object(fields) => fields.values().find_map(request_cwd),
        _ => None,
    }
}

fn uses_placeholder(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains(CWD_PLACEHOLDER),
        Value::Array(items) => items.iter().any(uses_placeholder),
        Value::Object(fields) => fields.values().any(uses_placeholder),
        _ => false,
    }
}

fn substitute(value: &Value, cwd: &str) -> Value {
    match value {
        Value::String(text) => Value::String(text.replace(CWD_PLACEHOLDER, cwd)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| substitute(item, cwd)).collect())
        }
        Value::Object(fields) => Value::Object(
            fields.iter().map(|(key, item)| (key.clone(), substitute(item, cwd))).collect(),
        ),
        other => other.clone(),
    }
}

fn block_uses_placeholder(block: &Block) -> bool {
    match block {
        Block::Text(text) | Block::Thinking(text) => text.contains(CWD_PLACEHOLDER),
        Block::ToolUse { input, .. } => uses_placeholder(input),
    }
}

fn turn_uses_placeholder(turn: &Turn) -> bool {
    match turn {
        Turn::Reply { blocks, .. } => blocks.iter().any(block_uses_placeholder),
        Turn::SlowText { chunks, .. } => chunks.iter().any(|chunk| chunk.contains(CWD_PLACEHOLDER)),
        Turn::Delay(_, inner) | Turn::Held(_, inner) => turn_uses_placeholder(inner),
        Turn::Error { .. } | Turn::Hang => false,
    }
}

fn substitute_turn(turn: &Turn, cwd: &str) -> Turn {
    match turn {
        Turn::Reply { blocks, usage } => Turn::Reply {
            blocks: blocks
                .iter()
                .map(|block| match block {
                    Block::Text(text) => Block::Text(text.replace(CWD_PLACEHOLDER, cwd)),
                    Block::Thinking(text) => Block::Thinking(text.replace(CWD_PLACEHOLDER, cwd)),
                    Block::ToolUse { name, input } => {
                        Block::ToolUse { name: name.clone(), input: substitute(input, cwd) }
                    }
                })
                .collect(),
            usage: *usage,
        },
        Turn::SlowText { chunks, interval } => Turn::SlowText {
            chunks: chunks.iter().map(|chunk| chunk.replace(CWD_PLACEHOLDER, cwd)).collect(),
            interval: *interval,
        },
        Turn::Delay(delay, inner) => Turn::Delay(*delay, Box::new(substitute_turn(inner, cwd))),
        Turn::Held(gate, inner) => Turn::Held(gate.clone(), Box::new(substitute_turn(inner, cwd))),
        other => other.clone(),
    }
}

/// The answer to `request`: its turn, with `{{cwd}}` filled in.
fn reply_to(turns: &[Turn], request: &RecordedRequest) -> Turn {
    let index = request.turn_index().min(turns.len().saturating_sub(1));
    let Some(turn) = turns.get(index) else {
        return Turn::error(500, "api_error", "fake API: the script has no turns");
    };
    if !turn_uses_placeholder(turn) {
        return turn.clone();
    }
    match request_cwd(&request.body) {
        Some(cwd) => substitute_turn(turn, &cwd),
        None => {
            let message = format!(
                "fake API: turn {index} uses {CWD_PLACEHOLDER} but the request names no working \
                 directory (no `{CWD_MARKER}` line)"
            );
            tracing::error!("{message}");
            // 400 is not retried, so the CLI reports it at once.
            Turn::error(400, "invalid_request_error", &message)
        }
    }
}

/// One line of the `--record` file.
fn record_line(request: &RecordedRequest) -> Value {
    let headers: serde_json::Map<String, Value> = request
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect();
    json!({
        "method": request.method,
        "path": request.path,
        "turnIndex": request.turn_index(),
        "cwd": request_cwd(&request.body),
        "headers": headers,
        "body": request.body,
    })
}

fn append_record(file: &Mutex<File>, request: &RecordedRequest) {
    let mut line = record_line(request).to_string();
    line.push('\n');
    let Ok(mut file) = file.lock() else { return };
    if let Err(err) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
        tracing::error!(%err, "fake API: cannot write the record file");
    }
}

/// True when EOF on stdin means "stop": a pipe, a socket or a terminal. `/dev/null` (what a
/// backgrounded shell job gets) and regular files are at EOF from the start.
fn stdin_signals_shutdown() -> bool {
    if io::stdin().is_terminal() {
        return true;
    }
    std::fs::metadata(Path::new("/proc/self/fd/0"))
        .map(|meta| meta.file_type().is_fifo() || meta.file_type().is_socket())
        .unwrap_or(false)
}

async fn wait_for_stdin_eof() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 1024];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    let text = std::fs::read_to_string(&options.script)
        .map_err(|err| format!("cannot read script {}: {err}", options.script.display()))?;
    let turns =
        parse_script(&text).map_err(|err| format!("{}: {err}", options.script.display()))?;
    let record = match &options.record {
        Some(path) => Some(Arc::new(Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|err| format!("cannot open record file {}: {err}", path.display()))?,
        ))),
        None => None,
    };
    let api = FakeApi::start_fn(move |request| {
        if let Some(file) = &record {
            append_record(file, request);
        }
        reply_to(&turns, request)
    })
    .await;

    let ready = json!({ "baseUrl": api.base_url() });
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{ready}")
        .and_then(|()| stdout.flush())
        .map_err(|err| format!("cannot write to stdout: {err}"))?;
    drop(stdout);

    if stdin_signals_shutdown() {
        wait_for_stdin_eof().await;
    } else {
        std::future::pending::<()>().await;
    }
    drop(api);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_writer(io::stderr).with_env_filter("warn").init();
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            let _ = writeln!(io::stderr(), "fake_api_server: {message}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(io::stderr(), "fake_api_server: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn request(body: Value) -> RecordedRequest {
        RecordedRequest {
            method: "POST".to_owned(),
            path: "/v1/messages?beta=true".to_owned(),
            headers: vec![("x-api-key".to_owned(), "sk-ant-test-0000dummy".to_owned())],
            body,
            received_at: Instant::now(),
        }
    }

    const ENVIRONMENT: &str = "# Environment\nYou have been invoked in the following environment: \n - Primary working directory: /tmp/mirror/ws\n - Is a git repository: true\n";

    #[test]
    fn cwd_is_found_in_the_system_prompt_of_older_clis() {
        let body = json!({ "system": [{ "type": "text", "text": ENVIRONMENT }], "messages": [] });
        assert_eq!(request_cwd(&body).as_deref(), Some("/tmp/mirror/ws"));
    }

    #[test]
    fn cwd_is_found_in_a_system_message_of_newer_clis() {
        let body = json!({
            "system": "You are Claude Code.",
            "messages": [
                { "role": "system", "content": [{ "type": "text", "text": ENVIRONMENT }] },
                { "role": "user", "content": "hi" },
            ],
        });
        assert_eq!(request_cwd(&body).as_deref(), Some("/tmp/mirror/ws"));
    }

    #[test]
    fn placeholder_is_replaced_in_nested_tool_input() {
        let turns = parse_script(
            r#"{"turns": [{"toolUse": {"name": "Edit", "input": {"file_path": "{{cwd}}/a.rs", "edits": [{"old": "{{cwd}}"}]}}}]}"#,
        )
        .unwrap();
        let body =
            json!({ "system": ENVIRONMENT, "messages": [{ "role": "user", "content": "go" }] });
        let Turn::Reply { blocks, .. } = reply_to(&turns, &request(body)) else {
            panic!("not a reply")
        };
        assert_eq!(
            blocks,
            vec![Block::ToolUse {
                name: "Edit".to_owned(),
                input: json!({ "file_path": "/tmp/mirror/ws/a.rs", "edits": [{ "old": "/tmp/mirror/ws" }] }),
            }]
        );
    }

    #[test]
    fn placeholder_without_a_working_directory_is_a_clear_api_error() {
        let turns = parse_script(r#"{"turns": [{"text": "in {{cwd}}"}]}"#).unwrap();
        let body = json!({ "messages": [{ "role": "user", "content": "go" }] });
        match reply_to(&turns, &request(body)) {
            Turn::Error { status, message, .. } => {
                assert_eq!(status, 400);
                assert!(message.contains("{{cwd}}"), "{message}");
            }
            other => panic!("expected an error turn, got {other:?}"),
        }
    }

    #[test]
    fn turn_index_counts_assistant_messages_and_the_last_turn_repeats() {
        let turns = parse_script(r#"{"turns": [{"text": "zero"}, {"text": "one"}]}"#).unwrap();
        let at = |assistants: usize| {
            let mut messages = vec![json!({ "role": "user", "content": "go" })];
            for _ in 0..assistants {
                messages.push(
                    json!({ "role": "assistant", "content": [{ "type": "text", "text": "x" }] }),
                );
                messages.push(json!({ "role": "user", "content": "more" }));
            }
            reply_to(&turns, &request(json!({ "messages": messages })))
        };
        assert_eq!(at(0), Turn::text("zero"));
        assert_eq!(at(1), Turn::text("one"));
        assert_eq!(at(5), Turn::text("one"));
    }

    #[test]
    fn every_turn_shape_parses() {
        let turns = parse_script(
            r#"{"turns": [
                {"text": "hi"},
                {"toolUse": {"name": "Read", "input": {"file_path": "/x"}}},
                {"blocks": [{"text": "a"}, {"thinking": "t"}, {"toolUse": {"name": "Bash", "input": {"command": "ls"}}}]},
                {"error": {"status": 429, "retryAfter": 1}},
                {"slowText": {"chunks": ["a", "b"], "intervalMs": 200}},
                {"hang": true}
            ]}"#,
        )
        .unwrap();
        assert_eq!(turns.len(), 6);
        assert_eq!(
            turns[3],
            Turn::Error {
                status: 429,
                error_type: "rate_limit_error".to_owned(),
                message: "Number of request tokens has exceeded your per-minute rate limit"
                    .to_owned(),
                retry_after: Some(1),
            }
        );
        assert_eq!(turns[4], Turn::slow_text(["a", "b"], Duration::from_millis(200)));
        assert_eq!(turns[5], Turn::Hang);
    }

    #[test]
    fn bad_scripts_are_refused_with_the_place_of_the_problem() {
        let cases = [
            (r#"{"turns": []}"#, "empty"),
            (r#"{"turns": [{"txt": "typo"}]}"#, "unknown variant `txt`"),
            (r#"{"turns": [{"text": "a"}, {"hang": false}]}"#, "turn 1: `hang` must be true"),
            (r#"{"turns": [{"error": {"status": 200}}]}"#, "turn 0: error status 200"),
            (
                r#"{"turns": [{"toolUse": {"name": "Edit", "input": [1]}}]}"#,
                "must be a JSON object",
            ),
            (r#"{"turns": [{"blocks": []}]}"#, "`blocks` is empty"),
            ("not json", "invalid script"),
        ];
        for (script, expected) in cases {
            let err = parse_script(script).unwrap_err();
            assert!(err.contains(expected), "{script}: {err}");
        }
    }

    #[test]
    fn arguments_are_checked() {
        let args = |list: &[&str]| parse_args(list.iter().map(|s| (*s).to_owned()));
        assert_eq!(
            args(&["--script", "s.json", "--record", "r.jsonl"]).unwrap(),
            Options { script: "s.json".into(), record: Some("r.jsonl".into()) }
        );
        assert!(args(&[]).unwrap_err().contains("--script` is required"));
        assert!(args(&["--script"]).unwrap_err().contains("needs a file path"));
        assert!(args(&["--port", "1"]).unwrap_err().contains("unknown argument `--port`"));
    }

    #[test]
    fn records_carry_the_request_and_its_turn() {
        let body =
            json!({ "system": ENVIRONMENT, "messages": [{ "role": "user", "content": "go" }] });
        let line = record_line(&request(body.clone()));
        assert_eq!(line["path"], "/v1/messages?beta=true");
        assert_eq!(line["turnIndex"], 0);
        assert_eq!(line["cwd"], "/tmp/mirror/ws");
        assert_eq!(line["body"], body);
    }
}
