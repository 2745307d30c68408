//! The LSP byte transport: `Content-Length` frames in, each message checked against JSON-RPC
//! 2.0, whole frames out. It replaces tower-lsp-server's `Server`, whose reader stops for good
//! after the first message it cannot decode (tokio-util's `FramedRead` ends the stream after a
//! decoder error), drops the answer to unknown `$/` requests, and cannot return while requests
//! are in flight. tower-lsp-server's `LspService` (routing, lifecycle, `Client`) is kept.
//!
//! A bad message gets the spec's error (`-32700` with id null when it is not JSON, `-32600`
//! with its id when the id is readable) and the server reads on. Reading resyncs on the next
//! `Content-Length` header after bytes that are no frame.

use std::fmt;
use std::pin::pin;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::channel::mpsc;
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tower_service::Service;

use crate::base::error::{ErrorKind, ServerError};
use crate::lsp_server::to_proto;
use crate::protocol::lsp::ClientSocket;
use crate::protocol::lsp::jsonrpc::{self, Id, Request, Response};

/// The largest body accepted. Anything longer is refused and skipped (a length this large is a
/// broken or hostile client, not a document).
pub const MAX_BODY: usize = 256 << 20;
/// A header block (or a line of one) longer than this is garbage, not headers.
const MAX_HEADER_BLOCK: usize = 8 << 10;
const CONTENT_LENGTH: &[u8] = b"content-length";
/// Client messages accepted but not yet started (as in tower-lsp-server).
const QUEUED_MESSAGES: usize = 100;
const READ_CHUNK: usize = 64 << 10;
/// After `exit` or the end of the input, the last answers may take this long to be written. A
/// hang guard (a client that stopped reading): `exit` cancels every request in flight, so their
/// answers are immediate.
const LAST_WRITES: Duration = Duration::from_secs(5);

const PARSE_HINT: &str = "send one JSON object per Content-Length frame, in UTF-8";
const REQUEST_HINT: &str = "send a JSON-RPC 2.0 message: \"jsonrpc\": \"2.0\", a string method, \
                            an integer or string id, object or array params";

/// Why bytes on the input are not a frame. Each is answered with a parse error (id null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Bytes that are not a header; skipped up to the next `Content-Length`.
    Garbage,
    MissingLength,
    BadLength(String),
    TooLarge(u64),
    Charset(String),
    /// The input ended inside a frame.
    Truncated,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Garbage => write!(f, "bytes that are not an LSP header; skipped to the next one"),
            Self::MissingLength => write!(f, "a header block without Content-Length; skipped"),
            Self::BadLength(value) => write!(f, "Content-Length {value:?} is not a length"),
            Self::TooLarge(length) => {
                write!(f, "Content-Length {length} is over the limit of {MAX_BODY} bytes; skipped")
            }
            Self::Charset(charset) => {
                write!(f, "charset {charset:?} is not supported (only utf-8); message skipped")
            }
            Self::Truncated => write!(f, "the input ended inside a message"),
        }
    }
}

#[derive(Debug, Default)]
enum DecodeState {
    #[default]
    Headers,
    Body {
        length: usize,
        charset: Option<String>,
    },
    /// Looking for the next `Content-Length` after an error (already reported).
    Skipping,
}

/// Splits bytes into `Content-Length` frames. Pure: feed it bytes, take frames out.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
    state: DecodeState,
}

impl FrameDecoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole body or framing error; None until more bytes arrive.
    pub fn next_frame(&mut self) -> Option<Result<Bytes, FrameError>> {
        loop {
            match &self.state {
                DecodeState::Skipping => match find_content_length(&self.buf) {
                    Some(at) => {
                        self.buf.advance(at);
                        self.state = DecodeState::Headers;
                    }
                    None => {
                        // Keep what could be the start of the header name.
                        let keep = CONTENT_LENGTH.len() - 1;
                        self.buf.advance(self.buf.len().saturating_sub(keep));
                        return None;
                    }
                },
                DecodeState::Headers => match self.headers()? {
                    Ok(()) => {}
                    Err(err) => return Some(Err(err)),
                },
                DecodeState::Body { length, charset } => {
                    if self.buf.len() < *length {
                        return None;
                    }
                    let body = self.buf.split_to(*length).freeze();
                    let charset = charset.clone();
                    self.state = DecodeState::Headers;
                    return Some(charset.map_or(Ok(body), |c| Err(FrameError::Charset(c))));
                }
            }
        }
    }

    /// At the end of the input: what was left unfinished, if anything.
    pub fn finish(&mut self) -> Option<FrameError> {
        let unfinished = match self.state {
            DecodeState::Body { .. } => true,
            DecodeState::Headers => !self.buf.iter().all(u8::is_ascii_whitespace),
            DecodeState::Skipping => false,
        };
        self.buf.clear();
        self.state = DecodeState::Headers;
        unfinished.then_some(FrameError::Truncated)
    }

    /// Parse one header block: None when it is incomplete, else the next state is set (an
    /// error also sets `Skipping`).
    fn headers(&mut self) -> Option<Result<(), FrameError>> {
        let mut pos = 0;
        let mut length: Option<Result<usize, FrameError>> = None;
        let mut charset = None;
        loop {
            let Some(newline) = memchr::memchr(b'\n', &self.buf[pos..]) else {
                return (self.buf.len() > MAX_HEADER_BLOCK).then(|| self.garbage());
            };
            let end = pos + newline + 1;
            let line = self.buf[pos..pos + newline]
                .strip_suffix(b"\r")
                .unwrap_or(&self.buf[pos..pos + newline]);
            if line.is_empty() {
                if pos == 0 {
                    // Blank lines between frames are harmless.
                    self.buf.advance(end);
                    continue;
                }
                self.buf.advance(end);
                return Some(self.body_state(length, charset));
            }
            if end > MAX_HEADER_BLOCK {
                return Some(self.garbage());
            }
            let Some((name, value)) = header(line) else {
                return Some(self.garbage());
            };
            if name.eq_ignore_ascii_case(CONTENT_LENGTH) {
                let parsed = parse_length(value);
                length = match (length, parsed) {
                    (Some(Ok(a)), Ok(b)) if a != b => Some(Err(FrameError::BadLength(format!(
                        "{a} and {b} (two Content-Length headers)"
                    )))),
                    (Some(Err(err)), _) => Some(Err(err)),
                    (_, parsed) => Some(parsed),
                };
            } else if name.eq_ignore_ascii_case(b"content-type") {
                charset = unsupported_charset(value);
            }
            pos = end;
        }
    }

    fn body_state(
        &mut self,
        length: Option<Result<usize, FrameError>>,
        charset: Option<String>,
    ) -> Result<(), FrameError> {
        match length {
            Some(Ok(length)) => {
                self.state = DecodeState::Body { length, charset };
                Ok(())
            }
            Some(Err(err)) => {
                self.state = DecodeState::Skipping;
                Err(err)
            }
            None => {
                self.state = DecodeState::Skipping;
                Err(FrameError::MissingLength)
            }
        }
    }

    /// Skip from one byte past here: the header this block may start with must not be found
    /// again.
    fn garbage(&mut self) -> Result<(), FrameError> {
        self.buf.advance(1);
        self.state = DecodeState::Skipping;
        Err(FrameError::Garbage)
    }
}

/// `Name: value` with a token name, or None.
fn header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', line)?;
    let name = &line[..colon];
    let token = !name.is_empty() && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-');
    token.then(|| (name, line[colon + 1..].trim_ascii()))
}

fn parse_length(value: &[u8]) -> Result<usize, FrameError> {
    let text = String::from_utf8_lossy(value);
    let too_large = |length: u64| Err(FrameError::TooLarge(length));
    match text.parse::<u64>() {
        Ok(length) if length > MAX_BODY as u64 => too_large(length),
        Ok(length) => usize::try_from(length).or_else(|_| too_large(length)),
        Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            too_large(u64::MAX)
        }
        Err(_) => Err(FrameError::BadLength(text.chars().take(40).collect())),
    }
}

/// The charset a `Content-Type` names when it is not UTF-8 (none named means UTF-8).
fn unsupported_charset(value: &[u8]) -> Option<String> {
    let value = String::from_utf8_lossy(value);
    let charset = value.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_owned())
    })?;
    let utf8 = charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8");
    (!utf8).then_some(charset)
}

/// Where `content-length` starts in `haystack`, in any case.
fn find_content_length(haystack: &[u8]) -> Option<usize> {
    memchr::memchr2_iter(b'c', b'C', haystack).find(|&at| {
        haystack
            .get(at..at + CONTENT_LENGTH.len())
            .is_some_and(|window| window.eq_ignore_ascii_case(CONTENT_LENGTH))
    })
}

/// One frame's body, checked.
#[derive(Debug)]
pub enum Incoming {
    /// A request or notification for the language server.
    Request(Request),
    /// The client's answer to one of the server's requests.
    Response(Response),
    /// Not a valid message: the error answers to send (none for a bad response).
    Rejected(Vec<Response>),
}

/// Check one body against JSON-RPC 2.0 as LSP uses it.
pub fn decode_message(body: &[u8]) -> Incoming {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => single(object),
        Ok(Value::Array(items)) => batch(&items),
        Ok(_) => reject(Id::Null, "a message must be a JSON object".to_owned()),
        Err(err) => Incoming::Rejected(vec![unreadable(body, &err)]),
    }
}

/// serde_json refuses invalid UTF-8 and lone surrogates in strings. When the rest is sound JSON
/// the id can still be read, so the client's request gets its answer.
fn unreadable(body: &[u8], err: &serde_json::Error) -> Response {
    /// Every other field is skipped without decoding its strings.
    #[derive(Deserialize)]
    struct Probe {
        id: Option<Value>,
    }
    let object = body.trim_ascii_start().starts_with(b"{");
    match serde_json::from_slice::<Probe>(body) {
        Ok(Probe { id }) if object => {
            let id = id.as_ref().and_then(valid_id).unwrap_or(Id::Null);
            invalid_request(id, format!("a string is not valid Unicode: {err}"))
        }
        _ => error_response(
            ErrorKind::PARSE_ERROR,
            Id::Null,
            format!("the message is not JSON: {err}"),
            PARSE_HINT,
        ),
    }
}

/// LSP has no batches: each request in one is refused with its own id (so no client waits on
/// it), as separate messages; a batch with no request id gets one refusal with id null.
fn batch(items: &[Value]) -> Incoming {
    const WHY: &str = "batches are not supported by LSP; send each message in its own frame";
    let mut replies: Vec<Response> = items
        .iter()
        .filter(|item| item.get("method").is_some())
        .filter_map(|item| item.get("id").and_then(valid_id))
        .map(|id| invalid_request(id, WHY.to_owned()))
        .collect();
    if replies.is_empty() {
        replies.push(invalid_request(Id::Null, WHY.to_owned()));
    }
    Incoming::Rejected(replies)
}

fn single(object: Map<String, Value>) -> Incoming {
    let is_response = !object.contains_key("method")
        && (object.contains_key("result") || object.contains_key("error"));
    if is_response {
        return response(object);
    }
    let id = object.get("id").and_then(valid_id).unwrap_or(Id::Null);
    match request(object) {
        Ok(request) => Incoming::Request(request),
        Err(problem) => reject(id, problem),
    }
}

/// The checked request, its params moved rather than decoded again (they can be megabytes).
fn request(mut object: Map<String, Value>) -> Result<Request, String> {
    check_version(&object)?;
    let mut request = match object.remove("method") {
        Some(Value::String(method)) => Request::build(method),
        Some(other) => {
            return Err(format!("\"method\" must be a string, not {}", describe(&other)));
        }
        None => return Err("the message has no \"method\"".to_owned()),
    };
    if let Some(id) = object.remove("id") {
        let valid = valid_id(&id).ok_or_else(|| {
            format!("\"id\" must be a 64-bit integer or a string, not {}", describe(&id))
        })?;
        request = request.id(valid);
    }
    match object.remove("params") {
        None => {}
        Some(params @ (Value::Null | Value::Object(_) | Value::Array(_))) => {
            request = request.params(params);
        }
        Some(other) => {
            return Err(format!(
                "\"params\" must be an object or an array, not {}",
                describe(&other)
            ));
        }
    }
    Ok(request.finish())
}

fn check_version(object: &Map<String, Value>) -> Result<(), String> {
    match object.get("jsonrpc") {
        Some(Value::String(version)) if version == "2.0" => Ok(()),
        Some(other) => Err(format!("\"jsonrpc\" must be \"2.0\", not {}", describe(other))),
        None => Err("the message has no \"jsonrpc\": \"2.0\"".to_owned()),
    }
}

/// A response is never answered. One that is malformed but names its request fails that
/// request, so nothing on the server waits for an answer that will not come.
fn response(object: Map<String, Value>) -> Incoming {
    let id = match object.get("id") {
        Some(Value::Null) => Some(Id::Null),
        Some(id) => valid_id(id),
        None => None,
    };
    let problem = check_version(&object).err().or_else(|| match id {
        None => Some("a response needs an integer, string or null \"id\"".to_owned()),
        Some(_) => check_response_body(&object).err(),
    });
    let Some(problem) = problem else {
        return match serde_json::from_value::<Response>(Value::Object(object)) {
            Ok(response) => Incoming::Response(response),
            Err(err) => rejected_response(id, err.to_string()),
        };
    };
    rejected_response(id, problem)
}

fn check_response_body(object: &Map<String, Value>) -> Result<(), String> {
    match (object.get("result"), object.get("error")) {
        (Some(_), Some(_)) => Err("a response has \"result\" or \"error\", not both".to_owned()),
        (None, Some(Value::Object(error))) => {
            let code = error.get("code").is_some_and(|code| code.as_i64().is_some());
            let message = error.get("message").is_some_and(Value::is_string);
            (code && message)
                .then_some(())
                .ok_or_else(|| "an error needs an integer \"code\" and a string \"message\"".into())
        }
        (None, Some(other)) => Err(format!("\"error\" must be an object, not {}", describe(other))),
        _ => Ok(()),
    }
}

fn rejected_response(id: Option<Id>, problem: String) -> Incoming {
    tracing::warn!(?id, "invalid response from the client: {problem}");
    match id {
        Some(id @ (Id::Number(_) | Id::String(_))) => {
            let mut error = jsonrpc::Error::invalid_request();
            error.message = format!("the client's answer was invalid: {problem}").into();
            Incoming::Response(Response::from_error(id, error))
        }
        _ => Incoming::Rejected(Vec::new()),
    }
}

/// An id LSP allows on a request: an integer that fits in i64, or a string.
fn valid_id(id: &Value) -> Option<Id> {
    match id {
        Value::Number(number) => number.as_i64().map(Id::Number),
        Value::String(text) => Some(Id::String(text.clone())),
        _ => None,
    }
}

/// A value for an error message: short, whatever its size.
fn describe(value: &Value) -> String {
    match value {
        Value::Number(_) | Value::Bool(_) | Value::Null => value.to_string(),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn reject(id: Id, problem: String) -> Incoming {
    Incoming::Rejected(vec![invalid_request(id, problem)])
}

fn invalid_request(id: Id, problem: String) -> Response {
    error_response(ErrorKind::INVALID_REQUEST, id, problem, REQUEST_HINT)
}

fn error_response(kind: ErrorKind, id: Id, message: String, hint: &str) -> Response {
    Response::from_error(id, to_proto::error(&ServerError::new(kind, message, hint)))
}

fn method_not_found(id: Id, method: &str) -> Response {
    let message = format!("method not found: {method}");
    error_response(
        ErrorKind::METHOD_NOT_FOUND,
        id,
        message,
        "this server does not implement this request",
    )
}

/// Everything `bytes` decodes to when read in one go, the input ending after them. For
/// fuzzing the framing and the message checks together.
pub fn decode_frames(bytes: &[u8]) -> Vec<Result<Incoming, FrameError>> {
    let mut decoder = FrameDecoder::default();
    decoder.push(bytes);
    let mut decoded = Vec::new();
    while let Some(frame) = decoder.next_frame() {
        decoded.push(frame.map(|body| decode_message(&body)));
    }
    decoded.extend(decoder.finish().map(Err));
    decoded
}

/// A message as one frame: header and body together, so frames never interleave.
fn frame(message: &impl Serialize) -> Option<Bytes> {
    match serde_json::to_vec(message) {
        Ok(body) => {
            let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
            frame.extend_from_slice(&body);
            Some(frame.into())
        }
        Err(err) => {
            tracing::error!(%err, "cannot serialize an outgoing message");
            None
        }
    }
}

/// How serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// End of input, a read error, or the output is gone: nobody is listening any more.
    Gone,
    /// `exit` arrived: tower-lsp-server cancelled every request in flight (answered -32800).
    Exit {
        /// A `shutdown` request came first, as LSP asks.
        after_shutdown: bool,
    },
}

impl Ending {
    /// The process's exit code: LSP asks for 1 after an `exit` no `shutdown` came before.
    pub fn exit_code(self) -> u8 {
        match self {
            Ending::Exit { after_shutdown: false } => 1,
            Ending::Exit { after_shutdown: true } | Ending::Gone => 0,
        }
    }
}

/// Serve `service` over `input`/`output` until `exit`, the end of the input, or a failed write.
/// Requests in flight when the input ends are dropped (which cancels their runs); after `exit`
/// their cancellations are still answered.
pub async fn serve<I, O, S>(
    input: I,
    output: O,
    service: S,
    socket: ClientSocket,
    concurrency: usize,
) -> Ending
where
    I: AsyncRead + Unpin,
    O: AsyncWrite,
    S: Service<Request, Response = Option<Response>>,
    S::Error: fmt::Display,
    S::Future: Send + 'static,
{
    let (server_requests, client_responses) = socket.split();
    let (out_tx, out_rx) = mpsc::channel::<Bytes>(QUEUED_MESSAGES);
    let (tasks_tx, tasks_rx) = mpsc::channel(QUEUED_MESSAGES);
    let mut writer = pin!(write_output(output, out_rx, server_requests));
    let mut answers = Box::pin(answer_requests(tasks_rx, concurrency, out_tx.clone()));
    let mut reader = Box::pin(read_input(input, service, tasks_tx, client_responses, out_tx));
    // One task, as in tower-lsp-server: `LspService` is not ready while `initialize` runs and
    // relies on the answering future to wake the reader.
    let mut answering = true;
    let ending = loop {
        tokio::select! {
            ending = &mut reader => break ending,
            () = &mut answers, if answering => answering = false,
            // The output is gone: nothing more can reach the client.
            () = &mut writer => return Ending::Gone,
        }
    };
    drop(reader);
    tracing::info!(?ending, "stopped reading the client's messages");
    let finished = match ending {
        Ending::Exit { .. } if answering => {
            let drained = async { futures::join!(answers, writer) };
            tokio::time::timeout(LAST_WRITES, drained).await.is_ok()
        }
        _ => {
            // Dropping the requests in flight cancels their runs.
            drop(answers);
            tokio::time::timeout(LAST_WRITES, writer).await.is_ok()
        }
    };
    if !finished {
        tracing::warn!("gave up writing the last answers after {LAST_WRITES:?}");
    }
    ending
}

async fn read_input<I, S>(
    mut input: I,
    mut service: S,
    mut tasks: mpsc::Sender<futures::future::BoxFuture<'static, Option<Response>>>,
    mut client_responses: impl Sink<Response> + Unpin,
    mut out: mpsc::Sender<Bytes>,
) -> Ending
where
    I: AsyncRead + Unpin,
    S: Service<Request, Response = Option<Response>>,
    S::Error: fmt::Display,
    S::Future: Send + 'static,
{
    let mut decoder = FrameDecoder::default();
    let mut chunk = vec![0; READ_CHUNK];
    let mut after_shutdown = false;
    loop {
        while let Some(next) = decoder.next_frame() {
            let incoming = match next {
                Ok(body) => decode_message(&body),
                Err(err) => {
                    tracing::warn!("unreadable input: {err}");
                    let reply = error_response(
                        ErrorKind::PARSE_ERROR,
                        Id::Null,
                        err.to_string(),
                        PARSE_HINT,
                    );
                    Incoming::Rejected(vec![reply])
                }
            };
            match incoming {
                Incoming::Request(request) => {
                    if let Err(err) = futures::future::poll_fn(|cx| service.poll_ready(cx)).await {
                        tracing::info!(%err, "the language server stopped");
                        return Ending::Exit { after_shutdown };
                    }
                    let method = request.method().to_owned();
                    let exit = method == "exit";
                    after_shutdown |= method == "shutdown";
                    let id = request.id().cloned();
                    let call = service.call(request);
                    let task = Box::pin(async move {
                        match call.await {
                            Ok(Some(response)) => Some(response),
                            // Every request gets one answer; tower-lsp-server gives none to an
                            // unknown `$/` request.
                            Ok(None) => id.map(|id| method_not_found(id, &method)),
                            Err(err) => {
                                tracing::debug!(%err, "request not served");
                                None
                            }
                        }
                    });
                    if tasks.send(task).await.is_err() {
                        return Ending::Gone;
                    }
                    if exit {
                        return Ending::Exit { after_shutdown };
                    }
                }
                Incoming::Response(response) => {
                    // Refused only once the server has exited: nothing waits for it then.
                    let _ = client_responses.send(response).await;
                }
                Incoming::Rejected(replies) => {
                    for reply in replies {
                        if let Some(error) = reply.error() {
                            tracing::warn!(id = %reply.id(), "refused a message: {}", error.message);
                        }
                        if let Some(bytes) = frame(&reply)
                            && out.send(bytes).await.is_err()
                        {
                            return Ending::Gone;
                        }
                    }
                }
            }
        }
        match input.read(&mut chunk).await {
            Ok(0) => {
                if let Some(err) = decoder.finish() {
                    tracing::warn!("{err}");
                }
                tracing::info!("the client closed the input");
                return Ending::Gone;
            }
            Ok(read) => decoder.push(&chunk[..read]),
            Err(err) => {
                tracing::warn!(%err, "cannot read the client's input");
                return Ending::Gone;
            }
        }
    }
}

async fn answer_requests(
    tasks: mpsc::Receiver<futures::future::BoxFuture<'static, Option<Response>>>,
    concurrency: usize,
    out: mpsc::Sender<Bytes>,
) {
    let mut answers = tasks
        .buffer_unordered(concurrency)
        .filter_map(|answer| futures::future::ready(answer.as_ref().and_then(frame)));
    let mut out = out;
    while let Some(bytes) = answers.next().await {
        if out.send(bytes).await.is_err() {
            return;
        }
    }
}

/// Write answers and the server's own requests and notifications, a whole frame at a time.
/// Ends when every answer is written and no answer can come any more, or when writing fails.
async fn write_output<O: AsyncWrite>(
    output: O,
    mut answers: mpsc::Receiver<Bytes>,
    mut server_requests: impl Stream<Item = Request> + Unpin,
) {
    let mut output = pin!(output);
    let mut requests_open = true;
    loop {
        let bytes = tokio::select! {
            answer = answers.next() => match answer {
                Some(bytes) => bytes,
                None => break,
            },
            request = server_requests.next(), if requests_open => match request.as_ref().and_then(frame) {
                Some(bytes) => bytes,
                None => {
                    requests_open = request.is_some();
                    continue;
                }
            },
        };
        let written = async {
            output.write_all(&bytes).await?;
            output.flush().await
        };
        if let Err(err) = written.await {
            tracing::warn!(%err, "cannot write to the client");
            return;
        }
    }
    if let Err(err) = output.flush().await {
        tracing::warn!(%err, "cannot write to the client");
    }
}

#[cfg(test)]
mod tests;
