//! The wire: LSP's own types ([`lsp`]) and claude-lsp's extensions ([`lsp_ext`]). A leaf — it uses
//! nothing else of ours; the LSP face converts domain types to and from it.

pub mod lsp;
pub mod lsp_ext;
