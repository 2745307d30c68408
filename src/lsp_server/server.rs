//! The `LanguageServer` implementation: a thin layer that only delegates to `handlers`.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::lsp_server::handlers::{self, actions, lifecycle};
pub use crate::lsp_server::state::ServerOptions;
use crate::lsp_server::state::ServerState;
use crate::lsp_server::transport::Ending;
use crate::model::prompt::Action;
use crate::protocol::lsp::jsonrpc::Method;
use crate::protocol::lsp::jsonrpc::Result;
use crate::protocol::lsp::request::Request;
use crate::protocol::lsp::*;
use crate::protocol::lsp_ext::{self, ActionParams, ActionResult, requests as ext};

/// Requests run concurrently up to this many; long Claude runs must never stall `didChange`.
const CONCURRENCY: usize = 256;

pub struct Backend {
    state: Arc<ServerState>,
}

/// Registers a handler for a typed custom request of `lsp_ext::requests`: the method name, the
/// parameters and the result all come from the request type, so no handler can answer another
/// shape than the protocol declares.
trait TypedRequests {
    fn request<R, F>(self, handler: F) -> Self
    where
        R: Request,
        F: for<'a> Method<&'a Backend, (R::Params,), Result<R::Result>>
            + Clone
            + Send
            + Sync
            + 'static;
}

impl TypedRequests for LspServiceBuilder<Backend> {
    fn request<R, F>(self, handler: F) -> Self
    where
        R: Request,
        F: for<'a> Method<&'a Backend, (R::Params,), Result<R::Result>>
            + Clone
            + Send
            + Sync
            + 'static,
    {
        self.custom_method(R::METHOD, handler)
    }
}

/// Serve LSP on `input`/`output` until `exit` or the end of the input (see `transport`). The
/// ending gives the process's exit code.
pub async fn serve<I, O>(input: I, output: O, options: ServerOptions) -> Ending
where
    I: AsyncRead + Unpin,
    O: AsyncWrite,
{
    let built = Arc::new(std::sync::OnceLock::new());
    let (service, socket) = LspService::build(|client| {
        let state = Arc::new(ServerState::new(client, options));
        let _ = built.set(Arc::clone(&state));
        Backend { state }
    })
    .request::<ext::Generate, _>(Backend::generate)
    .request::<ext::Analyze, _>(Backend::analyze)
    .request::<ext::Refactor, _>(Backend::refactor)
    .request::<ext::Review, _>(Backend::review)
    .request::<ext::Runs, _>(Backend::runs)
    .request::<ext::Metrics, _>(Backend::metrics)
    .request::<ext::Audit, _>(Backend::audit)
    .request::<ext::Sessions, _>(Backend::sessions)
    .request::<ext::Session, _>(Backend::session)
    .request::<ext::Usage, _>(Backend::usage)
    .request::<ext::Estimate, _>(Backend::estimate)
    .custom_method("window/workDoneProgress/cancel", Backend::progress_cancel)
    .finish();
    let ending =
        crate::lsp_server::transport::serve(input, output, service, socket, CONCURRENCY).await;
    // The editor is gone (`exit`, or its input ended): stop every run and process before
    // returning, since the process exits right after.
    if let Some(state) = built.get() {
        lifecycle::client_gone(state).await;
    }
    ending
}

impl Backend {
    async fn generate(&self, params: ActionParams) -> Result<ActionResult> {
        Ok(actions::request(self.state.clone(), Action::Generate, params).await?)
    }

    async fn analyze(&self, params: ActionParams) -> Result<ActionResult> {
        Ok(actions::request(self.state.clone(), Action::Analyze, params).await?)
    }

    async fn refactor(&self, params: ActionParams) -> Result<ActionResult> {
        Ok(actions::request(self.state.clone(), Action::Refactor, params).await?)
    }

    async fn review(&self, params: ActionParams) -> Result<ActionResult> {
        Ok(actions::request(self.state.clone(), Action::Review, params).await?)
    }

    async fn runs(&self, _params: Option<serde_json::Value>) -> Result<lsp_ext::RunsResult> {
        Ok(handlers::commands::runs(&self.state))
    }

    async fn metrics(&self, _params: Option<serde_json::Value>) -> Result<lsp_ext::MetricsReport> {
        Ok(crate::lsp_server::to_proto::metrics_report(self.state.metrics_report()))
    }

    async fn audit(&self, params: Option<lsp_ext::AuditParams>) -> Result<lsp_ext::AuditResult> {
        Ok(handlers::permissions::audit(&self.state, params)?)
    }

    async fn sessions(
        &self,
        params: Option<lsp_ext::SessionsParams>,
    ) -> Result<lsp_ext::SessionsResult> {
        Ok(handlers::sessions::sessions(&self.state, params.unwrap_or_default()).await?)
    }

    async fn session(&self, params: lsp_ext::SessionParams) -> Result<lsp_ext::SessionDetail> {
        Ok(handlers::sessions::session(&self.state, params).await?)
    }

    async fn usage(&self, params: Option<lsp_ext::UsageParams>) -> Result<lsp_ext::UsageReport> {
        Ok(handlers::sessions::usage(&self.state, params.unwrap_or_default()).await?)
    }

    async fn estimate(&self, params: lsp_ext::EstimateParams) -> Result<lsp_ext::EstimateResult> {
        Ok(actions::estimate(&self.state, params).await?)
    }

    async fn progress_cancel(&self, params: WorkDoneProgressCancelParams) {
        self.state.cancel_by_progress_token(&params.token);
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        Ok(handlers::lifecycle::initialize(&self.state, params).await)
    }

    async fn initialized(&self, _: InitializedParams) {
        handlers::lifecycle::initialized(&self.state).await;
    }

    async fn shutdown(&self) -> Result<()> {
        handlers::lifecycle::shutdown(&self.state).await;
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        handlers::documents::did_open(&self.state, params).await;
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        handlers::documents::did_change(&self.state, params).await;
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        handlers::documents::did_close(&self.state, params);
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        handlers::lifecycle::did_change_configuration(&self.state, params).await;
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        let uris = params.changes.into_iter().map(|change| change.uri);
        handlers::findings::files_changed(&self.state, uris).await;
    }

    async fn did_change_workspace_folders(&self, params: DidChangeWorkspaceFoldersParams) {
        handlers::lifecycle::did_change_workspace_folders(&self.state, params);
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        Ok(handlers::code_action::code_actions(&self.state, params))
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        Ok(handlers::hover::hover(&self.state, params))
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<LSPAny>> {
        Ok(handlers::commands::execute(&self.state, params).await?)
    }
}
