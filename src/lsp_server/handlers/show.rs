//! Showing a document to the user in the editor.

use crate::protocol::lsp::{Client, ShowDocumentParams, Uri};

/// Open a document in the editor (`window/showDocument`); whether the editor showed it.
pub async fn open_in_editor(client: &Client, uri: &Uri) -> bool {
    let params = ShowDocumentParams {
        uri: uri.clone(),
        external: Some(false),
        take_focus: Some(true),
        selection: None,
    };
    client.show_document(params).await.is_ok_and(|shown| shown)
}
