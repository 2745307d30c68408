//! initialize / initialized / shutdown, settings and workspace folders.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::lsp_server::state::{ClientInfo, ServerState};
use crate::model::edits;
use crate::model::settings::{SettingsWarning, parse_settings};
use crate::protocol::lsp::*;
use crate::protocol::lsp_ext;

/// The `workspace/configuration` section and `initializationOptions` key of our settings.
pub const SETTINGS_SECTION: &str = "claude";

pub async fn initialize(state: &ServerState, params: InitializeParams) -> InitializeResult {
    let info = ClientInfo::from_capabilities(&params.capabilities);
    let encoding = info.encoding;
    // Long answers reach clients that cannot show a document as a hover (answers.rs).
    let hover_answers = !info.show_document && info.hover;
    state.set_client_info(info);
    state.set_workspace_folders(workspace_paths(&params));
    let (settings, warnings) = parse_settings(params.initialization_options.as_ref());
    state.set_settings(settings).await;
    *state.pending_warnings.lock() = warnings;

    InitializeResult {
        capabilities: ServerCapabilities {
            position_encoding: Some(encoding.kind()),
            text_document_sync: Some(TextDocumentSyncCapability::Options(
                TextDocumentSyncOptions {
                    open_close: Some(true),
                    change: Some(TextDocumentSyncKind::INCREMENTAL),
                    // No `save`: the text follows didChange, and nothing happens on a save.
                    ..TextDocumentSyncOptions::default()
                },
            )),
            code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
                code_action_kinds: Some(vec![
                    CodeActionKind::QUICKFIX,
                    CodeActionKind::REFACTOR_REWRITE,
                    CodeActionKind::SOURCE,
                ]),
                // Every action is complete when listed (a command, or a fix's edit checked
                // against the text): there is nothing to resolve.
                resolve_provider: None,
                work_done_progress_options: WorkDoneProgressOptions::default(),
            })),
            hover_provider: hover_answers.then_some(HoverProviderCapability::Simple(true)),
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
                    "requests": lsp_ext::REQUESTS,
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
    let warnings = std::mem::take(&mut *state.pending_warnings.lock());
    show_warnings(state, &warnings).await;
    watch_files(state);
    prewarm(state, state.workspace_folders());
}

/// Asks a client that can watch files for the server to report changes and deletions on disk:
/// findings of files that are not open go stale when their file changes (VS Code, Helix and Zed
/// register this way; Neovim on Linux does not offer it). Creations change no finding.
fn watch_files(state: &Arc<ServerState>) {
    if !state.client_info().watched_files_registration {
        return;
    }
    let registration = Registration {
        id: "claude-lsp/watched-files".to_owned(),
        method: "workspace/didChangeWatchedFiles".to_owned(),
        register_options: serde_json::to_value(DidChangeWatchedFilesRegistrationOptions {
            watchers: vec![FileSystemWatcher {
                glob_pattern: GlobPattern::String("**/*".to_owned()),
                kind: Some(WatchKind::Change | WatchKind::Delete),
            }],
        })
        .ok(),
    };
    // A request to the client: never hold `initialized` up waiting for its answer.
    let client = state.client.clone();
    tokio::spawn(async move {
        if let Err(err) = client.register_capability(vec![registration]).await {
            tracing::warn!(error = %err, "the client refused to watch files for the server");
        }
    });
}

pub async fn shutdown(state: &ServerState) {
    let cancelled = state.cancel_runs(None);
    if cancelled > 0 {
        tracing::info!(cancelled, "shutdown cancelled runs in flight");
    }
    // Turns still finishing after their answer stop too (their processes retired), and the
    // books of those runs are written.
    state.background.shutdown().await;
    tracing::info!("metrics at shutdown: {}", state.metrics.summary_line());
    // Warm processes are idle: they exit as soon as their stdin closes.
    state.pool.shutdown().await;
    // So are the processes kept for conversations' next turns.
    state.conversations.close_all().await;
}

/// Once the editor is gone (`exit`, or its input ended): cancel every run at once (the
/// interrupt stops the agent's commands; nothing more goes to the API) and stop every idle CLI,
/// as `shutdown` does.
pub async fn client_gone(state: &ServerState) {
    tracing::info!("the client is gone: cancelling every run");
    shutdown(state).await;
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
    // Mirrors of a folder the editor no longer has would otherwise stay in the cache for good.
    // Removing a large mirror takes a while: off the message loop.
    let staging = state.staging.clone();
    tokio::spawn(async move {
        for folder in removed {
            if let Err(err) = staging.remove(&folder).await {
                tracing::info!(%err, folder = %folder.display(), "keeping the mirrors of a removed folder");
            }
        }
    });
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

/// Fill the read-only key of each workspace not seen before, in the background: after
/// `initialized` for the workspace folders, and on the first didOpen of a workspace. The
/// template is built exactly as a run builds its own (same runner, same kind of prompter), so the
/// warm process matches. A CLI that cannot be found is left for the first run to report.
pub fn prewarm(state: &Arc<ServerState>, workspaces: Vec<PathBuf>) {
    if !state.pool.is_enabled() {
        return;
    }
    let workspaces: Vec<PathBuf> =
        workspaces.into_iter().filter(|workspace| state.pool.first_sight(workspace)).collect();
    if workspaces.is_empty() {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        let mut runner = match state.runner(&state.snapshot()).await {
            Ok(runner) => runner,
            Err(err) => {
                tracing::debug!(error = %err.message, "no warm processes: the CLI is not usable");
                return;
            }
        };
        // Runs ask the user through this editor; the warm process is re-bound to the run's
        // own prompter when taken, so its status lines may go nowhere until then.
        let (status, _) = tokio::sync::mpsc::unbounded_channel();
        runner.permissions.prompter =
            Some(super::permissions::prompter(&state, status.downgrade()));
        for workspace in workspaces {
            let (config, initialize) = runner.warm_template(&workspace);
            state.pool.fill_with(config, initialize);
        }
    });
}
