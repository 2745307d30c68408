//! The one place LSP types come from. Swapping the types crate changes this file only.

pub use tower_lsp_server::jsonrpc;
pub use tower_lsp_server::ls_types::*;
pub use tower_lsp_server::{Client, ClientSocket, LanguageServer, LspService};
