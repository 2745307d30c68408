//! Text synchronisation: open documents live in the store as ropes with versions.

use std::sync::Arc;

use crate::lsp_server::state::ServerState;
use crate::model::documents::Document;
use crate::protocol::lsp::{
    DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams, MessageType,
};

pub async fn did_open(state: &Arc<ServerState>, params: DidOpenTextDocumentParams) {
    let doc = params.text_document;
    // The first document of a workspace warms a CLI process for it.
    if let Ok(path) = crate::model::edits::uri_to_path(&doc.uri) {
        super::lifecycle::prewarm(state, vec![state.workspace_for(&path)]);
    }
    crate::lsp_server::handlers::sessions::document_opened(state, &doc.uri, &doc.text);
    state.documents.write().open(doc.uri.clone(), doc.language_id, doc.version, &doc.text);
    // Findings placed on the file while it was closed go if it changed since.
    crate::lsp_server::handlers::findings::did_open(state, &doc.uri, &doc.text).await;
    crate::lsp_server::handlers::review::opened(state, &doc.uri, &doc.text).await;
}

/// A stale, out-of-order or malformed change is logged and refused; the document keeps its last
/// good text (the editor's next full sync, or a reopen, repairs it). A change that was lost, not
/// merely repeated, leaves the document out of sync: the user is told once, and runs on it are
/// refused until it is repaired.
pub async fn did_change(state: &ServerState, params: DidChangeTextDocumentParams) {
    let encoding = state.encoding();
    let uri = params.text_document.uri;
    let before = crate::lsp_server::handlers::findings::text_before_change(
        state,
        &uri,
        &params.content_changes,
    );
    let (result, newly_out_of_sync) = {
        let mut documents = state.documents.write();
        let was_in_sync = documents.get(&uri).is_some_and(|doc| !doc.is_out_of_sync());
        let result =
            documents.change(&uri, params.text_document.version, &params.content_changes, encoding);
        let out_of_sync = documents.get(&uri).is_some_and(Document::is_out_of_sync);
        (result, was_in_sync && out_of_sync)
    };
    match result {
        Err(err) => {
            tracing::warn!(uri = uri.as_str(), %err, "refused a document change");
            if newly_out_of_sync {
                let message = format!(
                    "Claude: a change to {} could not be applied ({err}); Claude actions on this \
                     file are refused until you reopen it",
                    crate::model::edits::uri_to_path(&uri)
                        .map_or_else(|_| uri.as_str().to_owned(), |p| p.display().to_string())
                );
                state.client.show_message(MessageType::WARNING, message).await;
            }
        }
        // Proposed changes and findings move with the text (and go when their own code is
        // edited). Both are diagnostics: the changes move first, so whichever publishes shows
        // both where they are now.
        Ok(()) => {
            let followed = crate::lsp_server::handlers::review::follow_change(
                state,
                &uri,
                &params.content_changes,
                before.as_deref(),
            );
            crate::lsp_server::handlers::findings::did_change(
                state,
                &uri,
                &params.content_changes,
                before,
            )
            .await;
            crate::lsp_server::handlers::review::after_change(state, followed).await;
            // So do the regions conversations wrote, and the lines a kept answer is about.
            crate::lsp_server::handlers::sessions::document_changed(
                state,
                &uri,
                &params.content_changes,
            );
            if let Ok(path) = crate::model::edits::uri_to_path(&uri) {
                state.answers.changed(&path, &params.content_changes);
            }
        }
    }
}

pub fn did_close(state: &ServerState, params: DidCloseTextDocumentParams) {
    let uri = &params.text_document.uri;
    let text = state.documents.read().get(uri).map(|doc| doc.text());
    if let Some(text) = text {
        crate::lsp_server::handlers::findings::did_close(state, uri, &text);
    }
    state.documents.write().close(&params.text_document.uri);
    crate::lsp_server::handlers::sessions::document_closed(state, &params.text_document.uri);
    if let Ok(path) = crate::model::edits::uri_to_path(&params.text_document.uri) {
        state.answers.closed(&path);
    }
}
