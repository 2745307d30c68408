//! The real `claude-lsp` binary over stdio survives any message (issue 13, finding 7): each
//! malformed message gets its JSON-RPC error and the next request its answer; unknown `$/`
//! requests get MethodNotFound; the end of the input, or `exit`, ends the server even with a run
//! in flight; a client slow or silent on `window/workDoneProgress/create` still gets its run's
//! answer.

use std::path::Path;
use std::time::Duration;

use claude_lsp::base::process::{ChildProcess, ProcessSpec};
use claude_lsp::lsp_server::transport::FrameDecoder;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::mpsc;

use crate::support::cli::{TestHome, real_cli};
use crate::support::fake_api::{CLI_ENV_TO_REMOVE, FakeApi, Script, Turn};
use crate::support::lsp_client::file_uri;

/// Hang guard for any single wait.
const WAIT: Duration = Duration::from_secs(120);

fn framed(body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The binary as a child, spoken to in raw bytes. Every message it sends is kept until a test
/// takes it; server requests are answered only when a test says so.
struct Stdio {
    child: ChildProcess,
    stdin: Option<ChildStdin>,
    incoming: mpsc::UnboundedReceiver<Value>,
    /// Responses not taken yet.
    responses: Vec<Value>,
    /// Requests from the server not taken yet.
    server_requests: Vec<Value>,
    next_id: i64,
    _home: TestHome,
}

impl Stdio {
    /// Start the binary (HOME, so its cache dir, in a temp dir) and initialize it.
    async fn start(root: &Path, capabilities: Value, settings: Value) -> Self {
        let home = TestHome::new();
        let spec = CLI_ENV_TO_REMOVE
            .iter()
            .chain(&["ANTHROPIC_API_KEY", "CLAUDE_LSP_LOG", "XDG_CACHE_HOME"])
            .fold(ProcessSpec::new(env!("CARGO_BIN_EXE_claude-lsp"), root), |spec, key| {
                spec.env_remove(key)
            })
            .env("HOME", home.path())
            .piped_stdin();
        let mut child = spec.spawn().unwrap();
        let stdin = child.take_stdin();
        let (tx, incoming) = mpsc::unbounded_channel();
        tokio::spawn(read_messages(child.take_stdout().unwrap(), tx));
        let mut server = Self {
            child,
            stdin,
            incoming,
            responses: Vec::new(),
            server_requests: Vec::new(),
            next_id: 1,
            _home: home,
        };
        let root_uri = file_uri(root);
        let params = json!({
            "processId": null, "rootUri": root_uri, "capabilities": capabilities,
            "initializationOptions": settings,
            "workspaceFolders": [{"uri": root_uri, "name": "ws"}],
        });
        let answer = server.request("initialize", params).await;
        assert!(answer.get("result").is_some(), "{answer}");
        server.notify("initialized", json!({})).await;
        server
    }

    async fn write_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is closed");
        stdin.write_all(bytes).await.unwrap();
        stdin.flush().await.unwrap();
    }

    async fn send(&mut self, message: Value) {
        self.write_raw(&framed(message.to_string().as_bytes())).await;
    }

    async fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params})).await;
    }

    async fn send_request(&mut self, method: &str, params: Value) -> Value {
        let id = json!(self.next_id);
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        id
    }

    /// Send a request and wait for its whole response message.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params).await;
        self.response(&id).await
    }

    /// The next message from the server, filed by kind.
    async fn receive(&mut self) {
        let message = tokio::time::timeout(WAIT, self.incoming.recv())
            .await
            .unwrap_or_else(|_| panic!("nothing from the server in {WAIT:?}: {}", self.stderr()))
            .unwrap_or_else(|| panic!("the server closed its output: {}", self.stderr()));
        match (message.get("method"), message.get("id")) {
            (None, _) => self.responses.push(message),
            (Some(_), Some(_)) => self.server_requests.push(message),
            (Some(_), None) => {}
        }
    }

    /// The first response with `id` (null: a refusal of a message whose id could not be read).
    async fn response(&mut self, id: &Value) -> Value {
        loop {
            if let Some(at) = self.responses.iter().position(|r| &r["id"] == id) {
                return self.responses.remove(at);
            }
            self.receive().await;
        }
    }

    async fn server_request(&mut self, method: &str) -> Value {
        loop {
            if let Some(at) = self.server_requests.iter().position(|r| r["method"] == method) {
                return self.server_requests.remove(at);
            }
            self.receive().await;
        }
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    async fn wait_exit(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the server did not exit: {}", self.stderr()))
            .unwrap()
    }

    /// `shutdown` + `exit`: the server exits with 0 and sent no response nobody asked for.
    async fn shut_down(mut self) {
        let answer = self.request("shutdown", Value::Null).await;
        assert!(answer.get("result").is_some(), "{answer}");
        self.notify("exit", Value::Null).await;
        let status = self.wait_exit().await;
        assert_eq!(status.code(), Some(0), "{}", self.stderr());
        while let Some(message) = self.incoming.recv().await {
            assert!(message.get("method").is_some(), "a response nobody asked for: {message}");
        }
        assert!(self.responses.is_empty(), "responses nobody asked for: {:#?}", self.responses);
    }

    fn stderr(&self) -> String {
        self.child.stderr_tail()
    }
}

async fn read_messages(mut stdout: ChildStdout, tx: mpsc::UnboundedSender<Value>) {
    let mut decoder = FrameDecoder::default();
    let mut chunk = vec![0; 64 << 10];
    loop {
        while let Some(frame) = decoder.next_frame() {
            let body = frame.expect("the server wrote a broken frame");
            let _ = tx.send(serde_json::from_slice(&body).expect("the server wrote bad JSON"));
        }
        match stdout.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(read) => decoder.push(&chunk[..read]),
        }
    }
}

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("claude-lsp-rpc-").tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/lib.rs"), "pub fn one() -> i32 {\n    1\n}\n").unwrap();
    dir
}

/// Settings that run the real CLI against `api`, its state under `home`.
fn cli_settings(api: &FakeApi, home: &TestHome) -> Value {
    let env = api.cli_env_setting(home.path());
    json!({"cliPath": real_cli(), "env": env, "warmPool": 0})
}

/// Check the refusal and that the server still answers a request after it.
async fn assert_refused(server: &mut Stdio, what: &str, id: Value, code: i64) -> Value {
    let reply = server.response(&id).await;
    assert_eq!(reply["error"]["code"], code, "{what}: {reply}");
    assert!(reply["error"]["data"]["hint"].is_string(), "{what}: {reply}");
    let metrics = server.request("claude/metrics", json!({})).await;
    assert!(metrics["result"].is_object(), "after {what}: {metrics}");
    reply
}

#[tokio::test]
async fn every_malformed_message_gets_its_error_and_the_server_keeps_serving() {
    let dir = workspace();
    let mut server = Stdio::start(dir.path(), json!({}), json!({"warmPool": 0})).await;
    let invalid = -32600;
    let parse = -32700;
    let cases: Vec<(&str, Vec<u8>, Value, i64)> = vec![
        ("id 1.5", br#"{"jsonrpc":"2.0","id":1.5,"method":"claude/metrics"}"#.to_vec(), Value::Null, invalid),
        ("id true", br#"{"jsonrpc":"2.0","id":true,"method":"claude/metrics"}"#.to_vec(), Value::Null, invalid),
        (
            "id 2^63",
            br#"{"jsonrpc":"2.0","id":9223372036854775808,"method":"claude/metrics"}"#.to_vec(),
            Value::Null,
            invalid,
        ),
        ("id object", br#"{"jsonrpc":"2.0","id":{},"method":"claude/metrics"}"#.to_vec(), Value::Null, invalid),
        ("not JSON", b"hello, server".to_vec(), Value::Null, parse),
        ("truncated JSON", br#"{"jsonrpc":"2.0","id":100,"meth"#.to_vec(), Value::Null, parse),
        ("method 5", br#"{"jsonrpc":"2.0","id":101,"method":5}"#.to_vec(), json!(101), invalid),
        ("jsonrpc 1.0", br#"{"jsonrpc":"1.0","id":102,"method":"claude/metrics"}"#.to_vec(), json!(102), invalid),
        ("no jsonrpc", br#"{"id":103,"method":"claude/metrics"}"#.to_vec(), json!(103), invalid),
        (
            "lone surrogate",
            br#"{"jsonrpc":"2.0","id":104,"method":"claude/metrics","params":{"a":"\ud800"}}"#.to_vec(),
            json!(104),
            invalid,
        ),
        (
            "invalid UTF-8",
            b"{\"jsonrpc\":\"2.0\",\"id\":105,\"method\":\"claude/metrics\",\"params\":{\"a\":\"\xc3\x28\"}}"
                .to_vec(),
            json!(105),
            invalid,
        ),
        ("$/foo request", br#"{"jsonrpc":"2.0","id":106,"method":"$/foo"}"#.to_vec(), json!(106), -32601),
    ];
    for (what, body, id, code) in cases {
        server.write_raw(&framed(&body)).await;
        assert_refused(&mut server, what, id, code).await;
    }

    // A batch: each request in it is refused with its own id.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 200, "method": "claude/metrics"},
        {"jsonrpc": "2.0", "id": "two-hundred-one", "method": "claude/metrics"},
    ]);
    server.write_raw(&framed(batch.to_string().as_bytes())).await;
    assert_refused(&mut server, "batch", json!(200), invalid).await;
    assert_refused(&mut server, "batch", json!("two-hundred-one"), invalid).await;

    // Framing: garbage between frames, a header block without a length, an absurd length.
    server.write_raw(b"\x00\x01 garbage between frames\r\n").await;
    assert_refused(&mut server, "garbage", Value::Null, parse).await;
    server.write_raw(b"Content-Type: application/vscode-jsonrpc\r\n\r\n{\"id\": 300}").await;
    assert_refused(&mut server, "no length", Value::Null, parse).await;
    server.write_raw(b"Content-Length: 99999999999\r\n\r\n{\"id\": 301}").await;
    let reply = assert_refused(&mut server, "huge length", Value::Null, parse).await;
    assert!(reply["error"]["message"].as_str().unwrap().contains("over the limit"), "{reply}");

    // An unknown `$/` notification is ignored: `shut_down` checks nothing answered it.
    server.notify("$/foo", json!({})).await;
    server.shut_down().await;
}

#[tokio::test]
async fn the_input_ending_inside_a_message_ends_the_server_cleanly() {
    let dir = workspace();
    let mut server = Stdio::start(dir.path(), json!({}), json!({"warmPool": 0})).await;
    server.write_raw(b"Content-Length: 100\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":").await;
    server.close_stdin();
    let status = server.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
}

#[tokio::test]
async fn a_client_slow_or_silent_on_progress_create_still_gets_its_runs_answer() {
    let api = FakeApi::start(Script::from_fn(|_| Turn::text("Nothing to report."))).await;
    let home = TestHome::new();
    let settings = cli_settings(&api, &home);
    let dir = workspace();
    let capabilities = json!({"window": {"workDoneProgress": true}});
    let mut server = Stdio::start(dir.path(), capabilities, settings).await;
    let analyze = json!({
        "textDocument": {"uri": file_uri(&dir.path().join("src/lib.rs"))},
        "instruction": "look at it",
    });

    // Slow: while the token waits for the client, a malformed message arrives; the client
    // confirms the token after its refusal.
    let first = server.send_request("claude/analyze", analyze.clone()).await;
    let create = server.server_request("window/workDoneProgress/create").await;
    server.write_raw(&framed(b"{not json")).await;
    assert_refused(&mut server, "not JSON", Value::Null, -32700).await;
    server.send(json!({"jsonrpc": "2.0", "id": create["id"], "result": null})).await;
    let answer = server.response(&first).await;
    assert!(answer["result"]["text"].as_str().unwrap().contains("Nothing to report"), "{answer}");

    // Silent: the token is never confirmed; the run goes on without progress (a real run, not
    // the result cache's answer to the same request).
    let mut analyze = analyze;
    analyze["noCache"] = json!(true);
    let second = server.send_request("claude/analyze", analyze).await;
    server.server_request("window/workDoneProgress/create").await;
    let answer = server.response(&second).await;
    assert!(answer["result"]["text"].as_str().unwrap().contains("Nothing to report"), "{answer}");
    server.shut_down().await;
}

/// A server with one analyze run waiting on the API forever (keep the rest alive with it).
async fn run_in_flight() -> (Stdio, Value, FakeApi, TestHome, tempfile::TempDir) {
    let api = FakeApi::start(Turn::Hang).await;
    let home = TestHome::new();
    let dir = workspace();
    let mut server = Stdio::start(dir.path(), json!({}), cli_settings(&api, &home)).await;
    let analyze = json!({
        "textDocument": {"uri": file_uri(&dir.path().join("src/lib.rs"))},
        "instruction": "never answered",
    });
    let id = server.send_request("claude/analyze", analyze).await;
    api.wait_for_requests(1, WAIT).await;
    (server, id, api, home, dir)
}

#[tokio::test]
async fn the_input_ending_with_a_run_in_flight_ends_the_server_at_once() {
    let (mut server, _id, _api, _home, _dir) = run_in_flight().await;
    server.close_stdin();
    let status = server.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
}

#[tokio::test]
async fn exit_with_a_run_in_flight_answers_it_cancelled_and_ends_the_server() {
    let (mut server, id, _api, _home, _dir) = run_in_flight().await;
    // No shutdown first, and the input stays open.
    server.notify("exit", Value::Null).await;
    let answer = server.response(&id).await;
    assert_eq!(answer["error"]["code"], -32800, "{answer}");
    server.wait_exit().await;
}
