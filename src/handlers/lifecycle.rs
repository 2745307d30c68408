//! initialize / initialized / shutdown, settings and workspace folders.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde_json::{Value, json};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::edits;
use crate::lsp::*;
use crate::lsp_ext;
use crate::settings::{SettingsWarning, parse_settings};
use crate::state::{ClientInfo, ServerState};

/// The `workspace/configuration` section and `initializationOptions` key of our settings.
pub const SETTINGS_SECTION: &str = "claude";

pub async fn initialize(state: &ServerState, params: InitializeParams) -> InitializeResult {
    let info = ClientInfo::from_capabilities(&params.capabilities);
    let encoding = info.encoding;
    state.set_client_info(info);
    state.set_workspace_folders(workspace_paths(&params));
    let (settings, warnings) = parse_settings(params.initialization_options.as_ref());
    state.set_settings(settings).await;
    *crate::state::lock(&state.pending_warnings) = warnings;

    InitializeResult {
        capabilities: ServerCapabilities {
            position_encoding: Some(encoding.kind()),
            text_document_sync: Some(TextDocumentSyncCapability::Options(
                TextDocumentSyncOptions {
                    open_close: Some(true),
                    change: Some(TextDocumentSyncKind::INCREMENTAL),
                    save: Some(TextDocumentSyncSaveOptions::Supported(true)),
                    ..TextDocumentSyncOptions::default()
                },
            )),
            code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
                code_action_kinds: Some(vec![
                    CodeActionKind::QUICKFIX,
                    CodeActionKind::REFACTOR_REWRITE,
                    CodeActionKind::SOURCE,
                ]),
                resolve_provider: Some(true),
                work_done_progress_options: WorkDoneProgressOptions::default(),
            })),
            execute_command_provider: Some(ExecuteCommandOptions {
                commands: lsp_ext::commands::ALL.iter().map(|c| (*c).to_owned()).collect(),
                work_done_progress_options: WorkDoneProgressOptions::default(),
            }),
            workspace: Some(WorkspaceServerCapabilities {
                workspace_folders: Some(WorkspaceFoldersServerCapabilities {
                    supported: Some(true),
                    change_notifications: Some(OneOf::Left(true)),
                }),
                file_operations: None,
            }),
            experimental: Some(json!({
                "claudeLsp": {
                    "version": env!("CARGO_PKG_VERSION"),
                    "requests": [lsp_ext::GENERATE, lsp_ext::ANALYZE, lsp_ext::REFACTOR, lsp_ext::REVIEW,
                                 lsp_ext::RUNS, lsp_ext::METRICS, lsp_ext::SESSIONS,
                                 lsp_ext::SESSION, lsp_ext::USAGE],
                    "commands": lsp_ext::commands::ALL,
                }
            })),
            ..ServerCapabilities::default()
        },
        server_info: Some(ServerInfo {
            name: "claude-lsp".to_owned(),
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        }),
        offset_encoding: None,
    }
}

pub async fn initialized(state: &Arc<ServerState>) {
    let warnings = std::mem::take(&mut *crate::state::lock(&state.pending_warnings));
    show_warnings(state, &warnings).await;
    crate::pool::prewarm(state, state.workspace_folders());
}

pub async fn shutdown(state: &ServerState) {
    let cancelled = state.cancel_runs(None);
    if cancelled > 0 {
        tracing::info!(cancelled, "shutdown cancelled runs in flight");
    }
    tracing::info!("metrics at shutdown: {}", state.metrics.summary_line());
    // Warm processes are idle: they exit as soon as their stdin closes.
    state.pool.shutdown().await;
    // So are the processes kept for conversations' next turns.
    state.conversations.close_all().await;
}

/// Once the editor is gone — `ended` fires on `exit` ([`EndOnExit`]) or when its input closes
/// ([`EndOnEof`]) — cancel every run at once (the interrupt stops the agent's commands; nothing
/// more goes to the API) and stop every idle CLI, as `shutdown` does. The transport only returns
/// once every request in flight is answered, so without this it would wait for whole runs.
pub fn end_when(state: &Arc<ServerState>, ended: CancellationToken) {
    let state = Arc::clone(state);
    tokio::spawn(async move {
        ended.cancelled().await;
        tracing::info!("the client is gone: cancelling every run");
        shutdown(&state).await;
    });
}

/// The server's input, firing `ended` when it ends (EOF or a read error).
pub struct EndOnEof<R> {
    input: R,
    ended: CancellationToken,
}

impl<R> EndOnEof<R> {
    pub fn new(input: R, ended: CancellationToken) -> Self {
        Self { input, ended }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for EndOnEof<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let wanted = buf.remaining() > 0;
        let poll = Pin::new(&mut self.input).poll_read(cx, buf);
        match &poll {
            Poll::Ready(Ok(())) if wanted && buf.filled().len() == before => self.ended.cancel(),
            Poll::Ready(Err(_)) => self.ended.cancel(),
            _ => {}
        }
        poll
    }
}

/// The LSP service, firing `ended` when the client sends `exit`.
pub struct EndOnExit<S> {
    service: S,
    ended: CancellationToken,
}

impl<S> EndOnExit<S> {
    pub fn new(service: S, ended: CancellationToken) -> Self {
        Self { service, ended }
    }
}

impl<S: tower_service::Service<jsonrpc::Request>> tower_service::Service<jsonrpc::Request>
    for EndOnExit<S>
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: jsonrpc::Request) -> Self::Future {
        if request.method() == "exit" {
            self.ended.cancel();
        }
        self.service.call(request)
    }
}

/// Pull the `claude` section when the client supports workspace/configuration, else take the
/// pushed settings (`{"claude": {…}}` or the bare object).
pub async fn did_change_configuration(state: &ServerState, params: DidChangeConfigurationParams) {
    let value = if state.client_info().configuration {
        let item =
            ConfigurationItem { scope_uri: None, section: Some(SETTINGS_SECTION.to_owned()) };
        match state.client.configuration(vec![item]).await {
            Ok(mut values) if !values.is_empty() => values.swap_remove(0),
            Ok(_) => Value::Null,
            Err(err) => {
                tracing::warn!(%err, "workspace/configuration failed; using the pushed settings");
                params.settings
            }
        }
    } else {
        params.settings
    };
    if value.is_null() {
        return;
    }
    let (settings, warnings) = parse_settings(Some(&value));
    state.set_settings(settings).await;
    show_warnings(state, &warnings).await;
}

pub fn did_change_workspace_folders(state: &ServerState, params: DidChangeWorkspaceFoldersParams) {
    let mut folders = state.workspace_folders();
    let removed: Vec<PathBuf> = folder_paths(&params.event.removed).collect();
    folders.retain(|folder| !removed.contains(folder));
    folders.extend(folder_paths(&params.event.added));
    state.set_workspace_folders(folders);
}

async fn show_warnings(state: &ServerState, warnings: &[SettingsWarning]) {
    for warning in warnings {
        tracing::warn!(%warning, "settings");
        state.client.show_message(MessageType::WARNING, format!("claude-lsp: {warning}")).await;
    }
}

#[allow(deprecated)] // root_uri: clients without workspaceFolders still send it
fn workspace_paths(params: &InitializeParams) -> Vec<PathBuf> {
    match &params.workspace_folders {
        Some(folders) if !folders.is_empty() => folder_paths(folders).collect(),
        _ => params.root_uri.iter().filter_map(|uri| edits::uri_to_path(uri).ok()).collect(),
    }
}

fn folder_paths(folders: &[WorkspaceFolder]) -> impl Iterator<Item = PathBuf> + '_ {
    folders.iter().filter_map(|folder| edits::uri_to_path(&folder.uri).ok())
}
