//! An LSP test client for an in-process claude-lsp over `tokio::io::duplex`.
//!
//! It answers the server's requests the way an editor would (applyEdit, workDoneProgress/create,
//! showMessageRequest, showDocument, configuration), records every message, and — like ruff's
//! TestServer — `finish()` fails the test if a server notification was never looked at.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use claude_lsp::lsp_server::server::ServerOptions;
use claude_lsp::lsp_server::transport::Ending;
use claude_lsp::protocol::lsp::notification::{
    Cancel, DidChangeTextDocument, DidOpenTextDocument, Exit, Initialized, Notification,
};
use claude_lsp::protocol::lsp::request::{Request, Shutdown};
use claude_lsp::protocol::lsp::{
    CancelParams, DidChangeTextDocumentParams, DidOpenTextDocumentParams, InitializedParams,
    NumberOrString, TextDocumentItem,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{BufReader, DuplexStream, WriteHalf};
use tokio::sync::{Notify, oneshot};

use super::frame::{read_frame, write_frame};
use super::wait::WAIT;

/// Notifications a test may leave unread.
const IGNORABLE: &[&str] = &["window/logMessage", "telemetry/event"];

/// How the client answers the server's requests.
#[derive(Clone)]
pub struct Behaviour {
    /// `workspace/applyEdit`: applied (true) or refused.
    pub apply_edits: bool,
    /// `window/showMessageRequest`: the title of the action to pick, or None (dismissed).
    pub message_action: Option<String>,
    /// Picked instead of `message_action` by a `window/showMessageRequest` that offers it.
    pub preferred_action: Option<String>,
    /// Delay before answering `window/showMessageRequest`.
    pub message_delay: Duration,
    /// `workspace/configuration`: the value for every requested item.
    pub configuration: Value,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            apply_edits: true,
            message_action: None,
            preferred_action: None,
            message_delay: Duration::ZERO,
            configuration: Value::Null,
        }
    }
}

#[derive(Default)]
struct Inbox {
    /// Notifications not yet taken by the test, in arrival order.
    notifications: VecDeque<Value>,
    /// Every request the server sent, in order (answered automatically).
    server_requests: Vec<Value>,
    responses: HashMap<i64, oneshot::Sender<Value>>,
    /// Responses to no request in flight: a second answer to one request, or an answer to a
    /// request never sent. Each request must be answered exactly once.
    stray_responses: Vec<Value>,
    /// Every message both ways, in order (see [`TestClient::transcript`]).
    transcript: Vec<(Duration, Direction, Value)>,
    started: Option<tokio::time::Instant>,
    /// Progress tokens the server began and has not ended yet.
    open_progress: HashSet<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Direction {
    ToServer,
    FromServer,
}

impl Inbox {
    fn record(&mut self, direction: Direction, message: &Value) {
        let started = *self.started.get_or_insert_with(tokio::time::Instant::now);
        self.transcript.push((started.elapsed(), direction, message.clone()));
        if direction == Direction::FromServer && message["method"] == "$/progress" {
            let token = message["params"]["token"].to_string();
            match message["params"]["value"]["kind"].as_str() {
                Some("begin") => {
                    self.open_progress.insert(token);
                }
                Some("end") => {
                    self.open_progress.remove(&token);
                }
                _ => {}
            }
        }
    }
}

/// What a finished run leaves for the client besides its answer.
const RUN_NOTIFICATIONS: &[&str] =
    &["$/progress", "claude/output", "claude/usageChanged", "claude/usage"];

pub struct TestClient {
    writer: Arc<tokio::sync::Mutex<WriteHalf<DuplexStream>>>,
    inbox: Arc<Mutex<Inbox>>,
    arrived: Arc<Notify>,
    behaviour: Arc<Mutex<Behaviour>>,
    next_id: i64,
    server: tokio::task::JoinHandle<Ending>,
    reader: tokio::task::JoinHandle<()>,
}

impl TestClient {
    /// Start an in-process server. Call [`TestClient::initialize`] next.
    pub fn start(options: ServerOptions) -> Self {
        let (client_end, server_end) = tokio::io::duplex(1 << 20);
        let (server_read, server_write) = tokio::io::split(server_end);
        let server =
            tokio::spawn(claude_lsp::lsp_server::server::serve(server_read, server_write, options));
        let (client_read, client_write) = tokio::io::split(client_end);
        let writer = Arc::new(tokio::sync::Mutex::new(client_write));
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let arrived = Arc::new(Notify::new());
        let behaviour = Arc::new(Mutex::new(Behaviour::default()));
        let reader = tokio::spawn(read_loop(
            client_read,
            writer.clone(),
            inbox.clone(),
            arrived.clone(),
            behaviour.clone(),
        ));
        Self { writer, inbox, arrived, behaviour, next_id: 1, server, reader }
    }

    pub fn set_behaviour(&self, update: impl FnOnce(&mut Behaviour)) {
        update(&mut self.behaviour.lock().unwrap());
    }

    /// `initialize` + `initialized`. Returns the server's InitializeResult.
    pub async fn initialize(&mut self, root: &Path, capabilities: Value, options: Value) -> Value {
        let root_uri = file_uri(root);
        // Untyped: the capabilities go to the server exactly as given (a replayed client's
        // included), not as far as the LSP types know them.
        let result = self
            .request_json(
                "initialize",
                json!({
                    "processId": null,
                    "rootUri": root_uri,
                    "capabilities": capabilities,
                    "initializationOptions": options,
                    "workspaceFolders": [{"uri": root_uri, "name": "ws"}],
                }),
            )
            .await
            .expect("initialize failed");
        self.notify::<Initialized>(InitializedParams {}).await;
        result
    }

    /// Send a typed LSP notification.
    pub async fn notify<N: Notification>(&self, params: N::Params) {
        self.notify_json(N::METHOD, to_json(&params)).await;
    }

    /// Send a typed LSP request and wait for its answer: Ok(result, which must parse as the
    /// method's result type) or Err(error object).
    pub async fn request<R: Request>(&mut self, params: R::Params) -> Result<R::Result, Value> {
        let result = self.request_json(R::METHOD, to_json(&params)).await?;
        Ok(from_json(R::METHOD, result))
    }

    /// Send a notification given as JSON (custom methods, and malformed params on purpose).
    pub async fn notify_json(&self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params})).await;
    }

    /// Send a request given as JSON and wait for its answer: Ok(result) or Err(error object).
    pub async fn request_json(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let (_, answer) = self.start_request(method, params).await;
        Self::answer(answer).await
    }

    /// Send a request without waiting; returns its id and the pending answer.
    pub async fn start_request(
        &mut self,
        method: &str,
        params: Value,
    ) -> (i64, oneshot::Receiver<Value>) {
        let id = self.next_id;
        self.next_id += 1;
        let (tx, rx) = oneshot::channel();
        self.inbox.lock().unwrap().responses.insert(id, tx);
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        (id, rx)
    }

    pub async fn answer(answer: oneshot::Receiver<Value>) -> Result<Value, Value> {
        let response = tokio::time::timeout(WAIT, answer)
            .await
            .expect("no answer from the server in time")
            .expect("the server went away");
        match response.get("error") {
            Some(error) => Err(error.clone()),
            None => Ok(response.get("result").cloned().unwrap_or(Value::Null)),
        }
    }

    pub async fn cancel(&self, id: i64) {
        let id = i32::try_from(id).expect("request ids stay small");
        self.notify::<Cancel>(CancelParams { id: NumberOrString::Number(id) }).await;
    }

    pub async fn did_open(&self, uri: &str, language_id: &str, version: i32, text: &str) {
        let text_document = TextDocumentItem {
            uri: uri.parse().expect("not a URI"),
            language_id: language_id.to_owned(),
            version,
            text: text.to_owned(),
        };
        self.notify::<DidOpenTextDocument>(DidOpenTextDocumentParams { text_document }).await;
    }

    /// `changes`: the `contentChanges` array, as JSON.
    pub async fn did_change(&self, uri: &str, version: i32, changes: Value) {
        let params: DidChangeTextDocumentParams = from_json(
            DidChangeTextDocument::METHOD,
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": changes}),
        );
        self.notify::<DidChangeTextDocument>(params).await;
    }

    /// Wait for the next notification with `method`, taking it (and only it) off the queue.
    pub async fn next_notification(&self, method: &str) -> Value {
        self.wait_for_notification(method, |_| true).await
    }

    /// Wait for a notification with `method` whose params satisfy `pred`, taking it off the
    /// queue; earlier ones with the same method that do not match stay queued.
    pub async fn wait_for_notification(
        &self,
        method: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let arrived = self.arrived.notified();
            {
                let mut inbox = self.inbox.lock().unwrap();
                let found = inbox
                    .notifications
                    .iter()
                    .position(|n| n["method"] == method && pred(&n["params"]));
                if let Some(index) = found {
                    return inbox.notifications.remove(index).unwrap()["params"].clone();
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "no {method} notification within {WAIT:?}; queued: {:#?}",
                    self.inbox.lock().unwrap().notifications
                );
            }
        }
    }

    /// Take every notification with `method` received so far.
    pub fn take_notifications(&self, method: &str) -> Vec<Value> {
        let mut inbox = self.inbox.lock().unwrap();
        let (taken, kept) = inbox.notifications.drain(..).partition(|n| n["method"] == method);
        inbox.notifications = kept;
        taken.into_iter().map(|n: Value| n["params"].clone()).collect()
    }

    /// Every request the server sent with `method` so far (answered already).
    pub fn server_requests(&self, method: &str) -> Vec<Value> {
        let inbox = self.inbox.lock().unwrap();
        inbox
            .server_requests
            .iter()
            .filter(|r| r["method"] == method)
            .map(|r| r["params"].clone())
            .collect()
    }

    /// Wait until the server has sent a request with `method` (e.g. workspace/applyEdit).
    pub async fn wait_for_server_request(&self, method: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let arrived = self.arrived.notified();
            if let Some(request) = self.server_requests(method).into_iter().next() {
                return request;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("the server sent no {method} request within {WAIT:?}");
            }
        }
    }

    /// All `$/progress` values for `token`, taken off the queue, waiting until the `end`.
    pub async fn progress_until_end(&self, token: &Value) -> Vec<Value> {
        let mut values = Vec::new();
        loop {
            let params = self.wait_for_notification("$/progress", |p| &p["token"] == token).await;
            let kind = params["value"]["kind"].clone();
            values.push(params["value"].clone());
            if kind == "end" {
                return values;
            }
        }
    }

    /// Wait until every progress the server began has ended. A run's `$/progress` end may arrive
    /// after its response (the transport does not order notifications against responses), so a
    /// test settles before it takes what a finished run left.
    pub async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let arrived = self.arrived.notified();
            if self.inbox.lock().unwrap().open_progress.is_empty() {
                return;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "progress never ended within {WAIT:?}: {:?}",
                    self.inbox.lock().unwrap().open_progress
                );
            }
        }
    }

    /// Settle, then take everything finished runs left that a test does not examine; returns
    /// the `claude/output` notifications.
    pub async fn drain(&self) -> Vec<Value> {
        self.drain_also(&[]).await
    }

    /// [`TestClient::drain`], also taking the notifications with the `also` methods (diagnostics,
    /// messages) a test does not examine.
    pub async fn drain_also(&self, also: &[&str]) -> Vec<Value> {
        self.settle().await;
        let mut output = Vec::new();
        for method in RUN_NOTIFICATIONS.iter().chain(also) {
            let taken = self.take_notifications(method);
            if *method == "claude/output" {
                output = taken;
            }
        }
        output
    }

    /// Every message exchanged so far, one per line: time since the first, direction, JSON.
    pub fn transcript(&self) -> String {
        let inbox = self.inbox.lock().unwrap();
        inbox
            .transcript
            .iter()
            .map(|(at, direction, message)| {
                let arrow = match direction {
                    Direction::ToServer => "client → server",
                    Direction::FromServer => "server → client",
                };
                format!("{:>8.3} s  {arrow}  {message}\n", at.as_secs_f64())
            })
            .collect()
    }

    /// Shut the server down (`shutdown` + `exit`), check it stopped serving, and fail if any
    /// server notification was left unread or any request was answered more than once.
    pub async fn finish(mut self) {
        self.request::<Shutdown>(()).await.expect("shutdown failed");
        self.notify::<Exit>(()).await;
        let ending = tokio::time::timeout(WAIT, &mut self.server)
            .await
            .expect("the server kept serving after exit")
            .expect("the server task panicked");
        assert_eq!(ending, Ending::Exit { after_shutdown: true });
        // Read what the server wrote before it ended: a message still in the pipe must count.
        tokio::time::timeout(WAIT, &mut self.reader)
            .await
            .expect("the server's output never closed")
            .expect("the reader task panicked");
        let inbox = self.inbox.lock().unwrap();
        let unread: Vec<&Value> = inbox
            .notifications
            .iter()
            .filter(|n| !IGNORABLE.contains(&n["method"].as_str().unwrap_or("")))
            .collect();
        assert!(unread.is_empty(), "server notifications left unread: {unread:#?}");
        assert!(
            inbox.stray_responses.is_empty(),
            "responses to no request in flight (answered twice, or never asked): {:#?}",
            inbox.stray_responses
        );
    }

    async fn send(&self, message: Value) {
        self.inbox.lock().unwrap().record(Direction::ToServer, &message);
        write_message(&self.writer, &message).await;
    }
}

/// Typed params as the JSON the server receives.
fn to_json(params: &impl Serialize) -> Value {
    serde_json::to_value(params).expect("LSP params serialize")
}

/// `value` as the LSP type `T` of `method`'s params or result; panics when it does not fit.
fn from_json<T: DeserializeOwned>(method: &str, value: Value) -> T {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|err| panic!("{method}: not the LSP type ({err}): {value:#}"))
}

async fn write_message(writer: &tokio::sync::Mutex<WriteHalf<DuplexStream>>, message: &Value) {
    let body = serde_json::to_vec(message).unwrap();
    write_frame(&mut *writer.lock().await, &body).await.unwrap();
}

async fn read_loop(
    read: tokio::io::ReadHalf<DuplexStream>,
    writer: Arc<tokio::sync::Mutex<WriteHalf<DuplexStream>>>,
    inbox: Arc<Mutex<Inbox>>,
    arrived: Arc<Notify>,
    behaviour: Arc<Mutex<Behaviour>>,
) {
    let mut reader = BufReader::new(read);
    while let Some(message) = read_message(&mut reader).await {
        inbox.lock().unwrap().record(Direction::FromServer, &message);
        let is_request = message.get("method").is_some() && message.get("id").is_some();
        let is_response = message.get("method").is_none();
        if is_response {
            let id = message["id"].as_i64().unwrap_or(-1);
            let mut inbox = inbox.lock().unwrap();
            match inbox.responses.remove(&id) {
                Some(tx) => {
                    let _ = tx.send(message);
                }
                None => inbox.stray_responses.push(message),
            }
        } else if is_request {
            inbox.lock().unwrap().server_requests.push(message.clone());
            let behaviour = behaviour.lock().unwrap().clone();
            let writer = writer.clone();
            let inbox = inbox.clone();
            // Answer on its own task: a delayed answer must not block reading.
            tokio::spawn(async move {
                let result = answer_server_request(&message, &behaviour).await;
                let reply = json!({"jsonrpc": "2.0", "id": message["id"], "result": result});
                inbox.lock().unwrap().record(Direction::ToServer, &reply);
                write_message(&writer, &reply).await;
            });
        } else {
            inbox.lock().unwrap().notifications.push_back(message);
        }
        arrived.notify_waiters();
    }
}

async fn answer_server_request(request: &Value, behaviour: &Behaviour) -> Value {
    let params = &request["params"];
    match request["method"].as_str().unwrap_or("") {
        "workspace/applyEdit" => json!({"applied": behaviour.apply_edits}),
        "window/showMessageRequest" => {
            tokio::time::sleep(behaviour.message_delay).await;
            let offered = |title: &String| {
                params["actions"].as_array().is_some_and(|actions| {
                    actions.iter().any(|action| action["title"] == title.as_str())
                })
            };
            let preferred = behaviour.preferred_action.as_ref().filter(|title| offered(title));
            match preferred.or(behaviour.message_action.as_ref()) {
                Some(title) => json!({"title": title}),
                None => Value::Null,
            }
        }
        "window/showDocument" => json!({"success": true}),
        "workspace/configuration" => {
            let items = params["items"].as_array().map_or(0, Vec::len);
            Value::Array(vec![behaviour.configuration.clone(); items])
        }
        _ => Value::Null,
    }
}

async fn read_message(reader: &mut BufReader<tokio::io::ReadHalf<DuplexStream>>) -> Option<Value> {
    serde_json::from_slice(&read_frame(reader).await?).ok()
}

/// `file://` URI of a path (test paths are plain ASCII temp dirs unless a test says otherwise).
pub fn file_uri(path: &Path) -> String {
    claude_lsp::model::edits::path_to_uri(path).expect("not a file path").to_string()
}

/// The capabilities of a full-featured client (documentChanges, resource operations,
/// workDoneProgress, showDocument, utf-16 positions).
pub fn full_capabilities() -> Value {
    json!({
        "general": {"positionEncodings": ["utf-16"]},
        "workspace": {
            "applyEdit": true,
            "workspaceEdit": {"documentChanges": true, "resourceOperations": ["create", "rename", "delete"]},
            "configuration": true,
            "workspaceFolders": true,
            "executeCommand": {},
        },
        "textDocument": {
            "synchronization": {"didSave": true},
            "codeAction": {"codeActionLiteralSupport": {"codeActionKind": {"valueSet": ["quickfix", "refactor", "source"]}},
                           "resolveSupport": {"properties": ["edit", "command"]}},
            "publishDiagnostics": {"relatedInformation": true},
        },
        "window": {"workDoneProgress": true, "showMessage": {}, "showDocument": {"support": true}},
    })
}

/// A minimal client: no documentChanges, no workDoneProgress, no showDocument.
pub fn minimal_capabilities() -> Value {
    json!({"workspace": {"applyEdit": true}, "textDocument": {}, "window": {}})
}

/// Apply LSP text edits to `text`, as an editor would. Positions are taken as byte offsets in
/// their line: UTF-8 positions, or UTF-16 ones on ASCII text.
pub fn apply_edits(text: &str, edits: &[Value]) -> String {
    let line_starts: Vec<usize> =
        std::iter::once(0).chain(text.match_indices('\n').map(|(index, _)| index + 1)).collect();
    let offset = |position: &Value| {
        let line = position["line"].as_u64().unwrap() as usize;
        let character = position["character"].as_u64().unwrap() as usize;
        line_starts.get(line).map_or(text.len(), |start| start + character)
    };
    let mut spans: Vec<(usize, usize, &str)> = edits
        .iter()
        .map(|edit| {
            (
                offset(&edit["range"]["start"]),
                offset(&edit["range"]["end"]),
                edit["newText"].as_str().unwrap(),
            )
        })
        .collect();
    spans.sort_by_key(|span| std::cmp::Reverse(span.0));
    let mut result = text.to_owned();
    for (start, end, new_text) in spans {
        result.replace_range(start..end, new_text);
    }
    result
}
