//! Proves the test bench: the fake Anthropic API (its wire format against a plain HTTP client, its
//! behaviour against the real pinned CLI, `CLAUDE_LSP_TEST_CLI_VERSION=newest|oldest`), the
//! fault-injection fake claude, and the process helpers.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::support::cli::{
    STREAM_JSON_ARGS, StreamJsonCli, TestHome, children_of, expected_cli_version, fake_claude,
    leftover_processes, processes_running, real_cli,
};
use crate::support::fake_api::{Block, DUMMY_API_KEY, FakeApi, Turn};
use claude_lsp::base::process::ProcessSpec;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A hang guard, never a measure: a loaded machine may take many seconds to start the CLI.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// A raw HTTP/1.0 exchange (the response body ends when the server closes the connection).
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The SSE events as (event name, data JSON).
    fn sse_events(&self) -> Vec<(String, Value)> {
        self.body
            .split("\n\n")
            .filter(|event| !event.trim().is_empty())
            .map(|event| {
                let field = |prefix| event.lines().find_map(|line| line.strip_prefix(prefix));
                let name = some(field("event: "), "an SSE event name");
                let data = some(field("data: "), "an SSE data line");
                (name.to_owned(), ok(serde_json::from_str(data), "SSE data JSON"))
            })
            .collect()
    }
}

/// `result`'s value; a test failure naming `what` otherwise. (Helpers are not `#[test]` functions,
/// so the crate's no-unwrap lint applies to them.)
fn ok<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    result.unwrap_or_else(|err| panic!("{what}: {err}"))
}

fn some<T>(option: Option<T>, what: &str) -> T {
    option.unwrap_or_else(|| panic!("missing {what}"))
}

async fn http(fake: &FakeApi, method: &str, path: &str, body: &Value) -> RawResponse {
    let address = fake.base_url().trim_start_matches("http://").to_owned();
    let mut stream = ok(tokio::net::TcpStream::connect(&address).await, "connect to the fake");
    let body = body.to_string();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    ok(stream.write_all(request.as_bytes()).await, "send the request");
    let mut raw = Vec::new();
    ok(stream.read_to_end(&mut raw).await, "read the response");
    let raw = ok(String::from_utf8(raw), "a UTF-8 response");
    let (head, body) = some(raw.split_once("\r\n\r\n"), "the end of the response head");
    let mut lines = head.lines();
    let status_code = some(lines.next().and_then(|l| l.split(' ').nth(1)), "a status line");
    let status = ok(status_code.parse(), "a numeric status");
    let headers = lines
        .map(|line| {
            let (key, value) = some(line.split_once(':'), "a header separator");
            (key.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    RawResponse { status, headers, body: body.to_owned() }
}

/// A messages request whose conversation is at turn `turn` (that many assistant messages).
fn request_at_turn(turn: usize, stream: bool) -> Value {
    let mut messages = vec![json!({"role": "user", "content": "start"})];
    for _ in 0..turn {
        messages.push(json!({"role": "assistant", "content": [{"type": "text", "text": "ok"}]}));
        messages.push(json!({"role": "user", "content": "go on"}));
    }
    json!({"model": "claude-test-model", "stream": stream, "messages": messages})
}

fn reply_text(response: &RawResponse) -> String {
    let message: Value = ok(serde_json::from_str(&response.body), "a JSON message");
    some(message["content"][0]["text"].as_str(), "a text block").to_owned()
}

#[tokio::test]
async fn turns_are_picked_by_assistant_count_and_the_last_repeats() {
    let fake = FakeApi::start(vec![Turn::text("first"), Turn::text("second")]).await;
    for (turn, expected) in [(1, "second"), (0, "first"), (5, "second")] {
        let response = http(&fake, "POST", "/v1/messages", &request_at_turn(turn, false)).await;
        assert_eq!(response.status, 200);
        assert_eq!(reply_text(&response), expected, "turn {turn}");
    }
    let recorded = fake.requests();
    assert_eq!(recorded.iter().map(|r| r.turn_index()).collect::<Vec<_>>(), [1, 0, 5]);
    assert_eq!(recorded[0].model(), Some("claude-test-model"));
}

#[tokio::test]
async fn a_function_script_sees_the_request() {
    let fake =
        FakeApi::start_fn(|request| Turn::text(format!("echo: {}", request.last_user_text())))
            .await;
    let response = http(&fake, "POST", "/v1/messages?beta=true", &request_at_turn(0, false)).await;
    assert_eq!(reply_text(&response), "echo: start");
    assert_eq!(fake.requests()[0].path, "/v1/messages?beta=true");
}

#[tokio::test]
async fn errors_have_the_anthropic_shape_status_and_retry_after() {
    let cases = [
        (Turn::unauthorized(), 401, "authentication_error", None),
        (Turn::rate_limited(7), 429, "rate_limit_error", Some("7")),
        (Turn::overloaded(), 529, "overloaded_error", None),
        (Turn::server_error(), 500, "api_error", None),
        (Turn::prompt_too_long(), 400, "invalid_request_error", None),
    ];
    for (turn, status, error_type, retry_after) in cases {
        let fake = FakeApi::start(turn).await;
        let response = http(&fake, "POST", "/v1/messages", &request_at_turn(0, true)).await;
        assert_eq!(response.status, status);
        assert_eq!(response.header("retry-after"), retry_after);
        assert!(response.header("request-id").is_some());
        let body: Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], error_type);
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let fake = FakeApi::start(Turn::prompt_too_long()).await;
    let response = http(&fake, "POST", "/v1/messages", &request_at_turn(0, true)).await;
    assert!(response.body.contains("prompt is too long: 300000 tokens > 200000 maximum"));
}

#[tokio::test]
async fn a_reply_streams_the_real_sse_event_sequence() {
    let fake = FakeApi::start(
        Turn::reply(vec![
            Block::Thinking("Let me think about it.".into()),
            Block::Text("I will read the file now.".into()),
            Block::ToolUse { name: "Read".into(), input: json!({"file_path": "/tmp/x.rs"}) },
        ])
        .with_usage(42, 17),
    )
    .await;
    let response = http(&fake, "POST", "/v1/messages", &request_at_turn(0, true)).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/event-stream; charset=utf-8"));
    let events = response.sse_events();
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str(), "event name and data type agree");
    }
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names[..2], ["message_start", "ping"]);
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    assert_eq!(events[0].1["message"]["model"], "claude-test-model");
    assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 42);

    // Reassemble each block from its deltas, as a client would.
    let mut thinking = String::new();
    let mut signature = String::new();
    let mut text = String::new();
    let mut tool_json = String::new();
    let mut text_deltas = 0;
    for (_, data) in &events {
        let delta = &data["delta"];
        match delta["type"].as_str() {
            Some("thinking_delta") => thinking += delta["thinking"].as_str().unwrap(),
            Some("signature_delta") => signature += delta["signature"].as_str().unwrap(),
            Some("text_delta") => {
                text += delta["text"].as_str().unwrap();
                text_deltas += 1;
            }
            Some("input_json_delta") => tool_json += delta["partial_json"].as_str().unwrap(),
            _ => {}
        }
    }
    assert_eq!(thinking, "Let me think about it.");
    assert!(!signature.is_empty());
    assert_eq!(text, "I will read the file now.");
    assert!(text_deltas > 1, "text is streamed in several deltas");
    assert_eq!(
        serde_json::from_str::<Value>(&tool_json).unwrap(),
        json!({"file_path": "/tmp/x.rs"})
    );

    let starts: Vec<&Value> = events
        .iter()
        .filter(|(name, _)| name == "content_block_start")
        .map(|(_, data)| &data["content_block"])
        .collect();
    assert_eq!(starts.len(), 3);
    assert_eq!(starts[0]["type"], "thinking");
    assert_eq!(starts[1]["type"], "text");
    assert_eq!(starts[2]["type"], "tool_use");
    assert_eq!(starts[2]["name"], "Read");
    assert!(starts[2]["id"].as_str().unwrap().starts_with("toolu_"));
    let end = &events[events.len() - 2].1;
    assert_eq!(end["delta"]["stop_reason"], "tool_use");
    assert_eq!(end["usage"]["output_tokens"], 17);
}

#[tokio::test]
async fn count_tokens_probes_and_unknown_paths_are_answered() {
    let fake = FakeApi::start(Turn::text("unused")).await;
    let counted =
        http(&fake, "POST", "/v1/messages/count_tokens", &request_at_turn(0, false)).await;
    assert_eq!(counted.status, 200);
    let body: Value = serde_json::from_str(&counted.body).unwrap();
    assert!(body["input_tokens"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(http(&fake, "HEAD", "/", &Value::Null).await.status, 200);
    let missing = http(&fake, "GET", "/v1/models", &Value::Null).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("not_found_error"));
    let not_json = http(&fake, "POST", "/v1/messages", &json!("just a string")).await;
    assert_eq!(not_json.status, 400);
    assert_eq!(fake.requests().len(), 1, "only POST /v1/messages counts as a messages request");
    assert_eq!(fake.all_requests().len(), 4, "every request is recorded");
}

#[tokio::test]
async fn hang_holds_the_request_until_the_fake_is_dropped() {
    let fake = FakeApi::start(Turn::Hang).await;
    let base = fake.base_url();
    let pending = tokio::spawn({
        let address = base.trim_start_matches("http://").to_owned();
        async move {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            let body = request_at_turn(0, true).to_string();
            let request = format!(
                "POST /v1/messages HTTP/1.0\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await.unwrap();
            String::from_utf8_lossy(&raw).into_owned()
        }
    });
    fake.wait_for_requests(1, HANG_GUARD).await;
    let mut pending = pending;
    let early = tokio::time::timeout(Duration::from_millis(300), &mut pending).await;
    assert!(early.is_err(), "a hanging turn must not answer: {early:?}");
    drop(fake);
    let answer = tokio::time::timeout(HANG_GUARD, pending).await.unwrap().unwrap();
    assert!(!answer.starts_with("HTTP/1.0 200") && !answer.starts_with("HTTP/1.1 200"), "{answer}");
}

// ---- against the real CLI ------------------------------------------------------------------

fn assistant_blocks<'a>(messages: &'a [Value], block_type: &str) -> Vec<&'a Value> {
    messages
        .iter()
        .filter(|m| m["type"] == "assistant")
        .flat_map(|m| m["message"]["content"].as_array().into_iter().flatten())
        .filter(|block| block["type"] == block_type)
        .collect()
}

#[tokio::test]
async fn pinned_cli_reports_the_expected_version() {
    let output = ProcessSpec::new(real_cli(), std::env::temp_dir())
        .arg("--version")
        .output(HANG_GUARD)
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with(expected_cli_version()),
        "expected {}, got {stdout:?}",
        expected_cli_version()
    );
}

#[tokio::test]
async fn a_text_turn_reaches_the_cli() {
    let fake = FakeApi::start(Turn::text("Hello from the fake API.")).await;
    let home = TestHome::new();
    let workspace = tempfile::tempdir().unwrap();
    let mut cli =
        StreamJsonCli::spawn(&real_cli(), workspace.path(), &fake.cli_env(home.path()), &[]);
    cli.send_user("Please say hello, bench").await;
    let messages = cli.read_until_result(HANG_GUARD).await;
    cli.close_stdin();

    let texts = assistant_blocks(&messages, "text");
    assert_eq!(texts.len(), 1, "{messages:#?}");
    assert_eq!(texts[0]["text"], "Hello from the fake API.");
    let result = messages.last().unwrap();
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["result"], "Hello from the fake API.");
    assert!(cli.wait(HANG_GUARD).await.success());

    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "one plain turn is one API call");
    let request = &requests[0];
    assert_eq!(request.path, "/v1/messages?beta=true");
    assert!(request.is_stream());
    assert_eq!(request.header("x-api-key"), Some(DUMMY_API_KEY));
    assert!(request.last_user_text().contains("Please say hello, bench"));
    assert!(request.all_text().contains("Please say hello, bench"));
    assert!(request.tool_names().iter().any(|name| name == "Read"), "{:?}", request.tool_names());
}

#[tokio::test]
async fn a_tool_result_is_sent_back_on_the_next_turn() {
    let workspace = tempfile::tempdir().unwrap();
    let notes = workspace.path().join("notes.txt");
    std::fs::write(&notes, "the secret word is pumpkin\n").unwrap();
    let fake = FakeApi::start(vec![
        Turn::tool_use("Read", json!({"file_path": notes.display().to_string()})),
        Turn::text("The word is pumpkin."),
    ])
    .await;
    let home = TestHome::new();
    let mut cli =
        StreamJsonCli::spawn(&real_cli(), workspace.path(), &fake.cli_env(home.path()), &[]);
    cli.send_user("What is the secret word in notes.txt?").await;
    let messages = cli.read_until_result(HANG_GUARD).await;
    cli.close_stdin();

    let tool_uses = assistant_blocks(&messages, "tool_use");
    assert_eq!(tool_uses.len(), 1, "{messages:#?}");
    assert_eq!(tool_uses[0]["name"], "Read");
    let result = messages.last().unwrap();
    assert_eq!(result["is_error"], false, "{result:#}");
    assert_eq!(result["result"], "The word is pumpkin.");

    let requests = fake.requests();
    let second = requests.iter().find(|r| r.turn_index() == 1).expect("a request at turn 1");
    assert!(second.has_tool_result_for("Read"));
    let read_results = second.tool_results_for("Read");
    assert!(read_results[0].contains("the secret word is pumpkin"), "{read_results:?}");
    assert!(cli.wait(HANG_GUARD).await.success());
}

#[tokio::test]
async fn thinking_and_text_blocks_reach_the_cli() {
    let fake = FakeApi::start(Turn::reply(vec![
        Block::Thinking("The user wants a greeting.".into()),
        Block::Text("Greetings.".into()),
    ]))
    .await;
    let home = TestHome::new();
    let workspace = tempfile::tempdir().unwrap();
    let mut cli =
        StreamJsonCli::spawn(&real_cli(), workspace.path(), &fake.cli_env(home.path()), &[]);
    cli.send_user("greet me").await;
    let messages = cli.read_until_result(HANG_GUARD).await;
    cli.close_stdin();

    let thinking = assistant_blocks(&messages, "thinking");
    assert_eq!(thinking.len(), 1, "{messages:#?}");
    assert_eq!(thinking[0]["thinking"], "The user wants a greeting.");
    assert_eq!(messages.last().unwrap()["result"], "Greetings.");
}

#[tokio::test]
async fn slow_text_arrives_as_spread_out_deltas() {
    let interval = Duration::from_millis(250);
    let fake = FakeApi::start(Turn::slow_text(["one ", "two ", "three ", "four"], interval)).await;
    let home = TestHome::new();
    let workspace = tempfile::tempdir().unwrap();
    let mut cli = StreamJsonCli::spawn(
        &real_cli(),
        workspace.path(),
        &fake.cli_env(home.path()),
        &["--include-partial-messages"],
    );
    cli.send_user("count slowly").await;
    let mut delta_times = Vec::new();
    let result = loop {
        let message = cli.next_message(HANG_GUARD).await.expect("output ended before a result");
        if message["type"] == "stream_event" && message["event"]["delta"]["type"] == "text_delta" {
            delta_times.push(Instant::now());
        }
        if message["type"] == "result" {
            break message;
        }
    };
    cli.close_stdin();
    assert_eq!(result["result"], "one two three four");
    assert_eq!(delta_times.len(), 4);
    let spread = delta_times[3] - delta_times[0];
    assert!(spread >= interval * 2, "deltas arrived within {spread:?}: not streamed");
}

#[tokio::test]
async fn an_unauthorized_key_gives_an_error_result_without_a_retry_loop() {
    let fake = FakeApi::start(Turn::unauthorized()).await;
    let home = TestHome::new();
    let workspace = tempfile::tempdir().unwrap();
    let mut cli =
        StreamJsonCli::spawn(&real_cli(), workspace.path(), &fake.cli_env(home.path()), &[]);
    cli.send_user("hello?").await;
    let messages = cli.read_until_result(HANG_GUARD).await;
    cli.close_stdin();

    let result = messages.last().unwrap();
    assert_eq!(result["is_error"], true, "{result:#}");
    assert_eq!(result["api_error_status"], 401);
    let status = cli.wait(HANG_GUARD).await;
    assert_eq!(status.code(), Some(1), "the last result was an error");
    let requests = fake.requests();
    // `cli_env` allows one retry: the error comes after at most two calls, not the default ten.
    assert!((1..=2).contains(&requests.len()), "{} API calls", requests.len());
    assert!(requests[0].last_user_text().contains("hello?"));
}

// ---- the fault-injection fake claude and the process helpers ------------------------------

/// Run the fake claude in `mode`: one user line, stdin closed, all output collected.
async fn run_fake_claude(mode: &str, extra_env: &[(&str, &str)]) -> (ExitStatus, Vec<u8>, String) {
    let spec = ProcessSpec::new(fake_claude(), std::env::temp_dir())
        .args(STREAM_JSON_ARGS)
        .env("FAKE_CLAUDE_MODE", mode)
        .envs(extra_env.iter().copied())
        .piped_stdin();
    let mut child = ok(spec.spawn(), "spawn the fake claude");
    let mut stdin = some(child.take_stdin(), "the fake's stdin");
    let mut stdout = some(child.take_stdout(), "the fake's stdout");
    let user = json!({"type": "user", "message": {"role": "user", "content": "hi"}});
    match stdin.write_all(format!("{user}\n").as_bytes()).await {
        // A fake that refuses to start may exit before it reads anything.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => ok(written, "write to the fake"),
    }
    drop(stdin);
    let mut output = Vec::new();
    let read = tokio::time::timeout(HANG_GUARD, stdout.read_to_end(&mut output));
    ok(ok(read.await, &format!("fake claude in {mode} mode finishing")), "read the fake's stdout");
    // `wait` returns once stderr is drained: the tail is complete.
    let status = ok(child.wait().await, "wait for the fake");
    (status, output, child.stderr_tail())
}

fn json_lines(output: &[u8]) -> Vec<Value> {
    output
        .split(|&byte| byte == b'\n')
        .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
        .filter(Value::is_object)
        .collect()
}

#[tokio::test]
async fn fake_claude_runs_a_normal_session() {
    let workspace = tempfile::tempdir().unwrap();
    let argv_file = workspace.path().join("argv.txt");
    let env = [("FAKE_CLAUDE_ARGV_FILE".to_owned(), argv_file.display().to_string())];
    let mut cli = StreamJsonCli::spawn(&fake_claude(), workspace.path(), &env, &["--model", "x y"]);
    cli.send(&json!({"type": "control_request", "request_id": "req_init",
                     "request": {"subtype": "initialize", "hooks": null}}))
        .await;
    let init_response = cli.next_message(HANG_GUARD).await.unwrap();
    assert_eq!(init_response["type"], "control_response");
    assert_eq!(init_response["response"]["subtype"], "success");
    assert_eq!(init_response["response"]["request_id"], "req_init");
    assert_eq!(init_response["response"]["response"]["pid"], cli.pid());

    cli.send_user("hello \"quoted\" {json-looking} text").await;
    let messages = cli.read_until_result(HANG_GUARD).await;
    let kinds: Vec<&str> = messages.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["system", "assistant", "result"]);
    assert_eq!(messages[0]["subtype"], "init");
    assert_eq!(messages[0]["claude_code_version"], "2.1.330");
    assert_eq!(messages[1]["message"]["content"][0]["text"], "Hello from fake claude.");
    let result = &messages[2];
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["session_id"], messages[0]["session_id"]);
    assert!(result["usage"]["input_tokens"].as_u64().is_some());
    assert!(result["total_cost_usd"].as_f64().is_some());

    cli.send(&json!({"type": "control_request", "request_id": "req_stop",
                     "request": {"subtype": "interrupt"}}))
        .await;
    let interrupt = cli.next_message(HANG_GUARD).await.unwrap();
    assert_eq!(interrupt["response"]["subtype"], "success");
    assert_eq!(interrupt["response"]["request_id"], "req_stop");
    cli.send(&json!({"type": "control_request", "request_id": "req_odd",
                     "request": {"subtype": "no_such_subtype"}}))
        .await;
    let refused = cli.next_message(HANG_GUARD).await.unwrap();
    assert_eq!(refused["response"]["subtype"], "error");

    cli.close_stdin();
    assert!(cli.wait(HANG_GUARD).await.success());
    let argv = std::fs::read_to_string(&argv_file).unwrap();
    let expected: Vec<&str> = STREAM_JSON_ARGS.iter().copied().chain(["--model", "x y"]).collect();
    assert_eq!(argv.lines().collect::<Vec<_>>(), expected);
}

#[tokio::test]
async fn fake_claude_reports_a_version() {
    let version = |spec: ProcessSpec| async move {
        let output = spec.arg("--version").output(HANG_GUARD).await.unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    let temp = std::env::temp_dir();
    assert_eq!(version(ProcessSpec::new(fake_claude(), &temp)).await, "2.1.330 (Claude Code)\n");
    let old = ProcessSpec::new(fake_claude(), &temp).env("FAKE_CLAUDE_VERSION", "1.0.0");
    assert_eq!(version(old).await, "1.0.0 (Claude Code)\n");
}

#[tokio::test]
async fn fake_claude_fault_modes_break_the_stream_as_documented() {
    let (status, output, stderr) = run_fake_claude("crash_mid_line", &[]).await;
    assert_eq!(status.code(), Some(3));
    assert!(!output.ends_with(b"\n"), "the last line is cut");
    assert!(stderr.contains("simulated crash"), "{stderr}");

    let (status, output, _) = run_fake_claude("eof_mid_line", &[]).await;
    assert_eq!(status.code(), Some(0));
    assert!(!output.ends_with(b"\n"));
    assert_eq!(json_lines(&output).len(), 1, "only system/init is whole");

    let (status, output, _) = run_fake_claude("garbage", &[]).await;
    assert!(status.success());
    assert!(std::str::from_utf8(&output).is_err(), "contains invalid UTF-8");
    let lines = output.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()).count();
    let valid = json_lines(&output);
    assert!(lines > valid.len() + 2, "garbage lines are mixed in");
    assert_eq!(valid.last().unwrap()["type"], "result");

    let (status, output, _) = run_fake_claude("huge_line", &[]).await;
    assert!(status.success());
    let longest = output.split(|&byte| byte == b'\n').map(<[u8]>::len).max().unwrap();
    assert!(longest > 64 * 1024 * 1024, "longest line {longest} bytes");
    let kinds: Vec<Value> = json_lines(&output).iter().map(|m| m["type"].clone()).collect();
    assert_eq!(kinds, ["system", "assistant", "result"]);

    let started = Instant::now();
    let (status, output, _) = run_fake_claude("slow_drip", &[("FAKE_CLAUDE_DRIP_MS", "1")]).await;
    assert!(status.success());
    // A lower bound the fake's own pauses guarantee (a byte a millisecond), whatever the load.
    assert!(started.elapsed() > Duration::from_millis(300), "dripped slowly");
    assert_eq!(json_lines(&output).len(), 3);
}

#[tokio::test]
async fn fake_claude_rejects_bad_input_and_modes_without_panicking() {
    let spec = ProcessSpec::new(fake_claude(), std::env::temp_dir()).piped_stdin();
    let mut child = spec.spawn().unwrap();
    let mut stdin = child.take_stdin().unwrap();
    stdin.write_all(b"this is not json\n").await.unwrap();
    drop(stdin);
    let status = tokio::time::timeout(HANG_GUARD, child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(child.stderr_tail().contains("Error parsing streaming input line"));

    let (status, _, stderr) = run_fake_claude("no_such_mode", &[]).await;
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("unknown FAKE_CLAUDE_MODE"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[tokio::test]
async fn silence_never_answers_and_the_process_helpers_find_it() {
    let binary = fake_claude();
    let env = [("FAKE_CLAUDE_MODE".to_owned(), "silence".to_owned())];
    let mut cli = StreamJsonCli::spawn(&binary, &std::env::temp_dir(), &env, &[]);
    let pid = cli.pid();
    cli.send_user("anyone there?").await;
    cli.close_stdin();
    let nothing = tokio::time::timeout(Duration::from_millis(500), cli.next_message(HANG_GUARD));
    assert!(nothing.await.is_err(), "silence wrote something");

    let running = processes_running(&binary);
    let found = running.iter().find(|p| p.pid == pid).expect("found by its binary");
    assert_eq!(found.ppid, std::process::id());
    assert_eq!(found.env_var("FAKE_CLAUDE_MODE").as_deref(), Some("silence"));
    assert!(children_of(std::process::id()).iter().any(|p| p.pid == pid));

    drop(cli);
    let survivors = leftover_processes(|p| p.pid == pid, HANG_GUARD).await;
    assert!(survivors.is_empty(), "{survivors:?}");
}
