//! `textDocument/hover`: the whole of a long answer, over the code it is about, for clients
//! that cannot show it as a document (see `answers.rs`).

use crate::lsp_server::state::ServerState;
use crate::protocol::lsp::{Hover, HoverContents, HoverParams, MarkupContent, MarkupKind};

pub fn hover(state: &ServerState, params: HoverParams) -> Option<Hover> {
    let position = params.text_document_position_params;
    let path = crate::model::edits::uri_to_path(&position.text_document.uri).ok()?;
    let answer = state.answers.at(&path, position.position.line)?;
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: format!("**Claude ({})**\n\n{}", answer.action, answer.text),
        }),
        range: None,
    })
}
