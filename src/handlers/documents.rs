//! Text synchronisation: open documents live in the store as ropes with versions.

use crate::lsp::{DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams};
use crate::state::{ServerState, write};

pub fn did_open(state: &ServerState, params: DidOpenTextDocumentParams) {
    let doc = params.text_document;
    write(&state.documents).open(doc.uri, doc.language_id, doc.version, &doc.text);
}

/// A stale, out-of-order or malformed change is logged and refused; the document keeps its last
/// good text (the editor's next full sync, or a reopen, repairs it).
pub async fn did_change(state: &ServerState, params: DidChangeTextDocumentParams) {
    let encoding = state.encoding();
    let uri = params.text_document.uri;
    let result = write(&state.documents).change(
        &uri,
        params.text_document.version,
        &params.content_changes,
        encoding,
    );
    if let Err(err) = result {
        tracing::warn!(uri = uri.as_str(), %err, "refused a document change");
    }
}

pub fn did_close(state: &ServerState, params: DidCloseTextDocumentParams) {
    write(&state.documents).close(&params.text_document.uri);
}
