//! The one place LSP types come from. Swapping the types crate changes this file only.

pub use tower_lsp_server::jsonrpc;
pub use tower_lsp_server::ls_types::*;
pub use tower_lsp_server::{Client, ClientSocket, LanguageServer, LspService, LspServiceBuilder};

/// JSON-schema stand-ins for LSP types, for `#[schemars(with = …)]` on our protocol types. The
/// schema only names them (`tsType`): TypeScript takes them from `vscode-languageserver-protocol`.
pub mod schema {
    use std::borrow::Cow;

    use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

    macro_rules! named {
        ($($name:ident => $ts:literal),* $(,)?) => {$(
            pub struct $name;
            impl JsonSchema for $name {
                fn inline_schema() -> bool {
                    true
                }
                fn schema_name() -> Cow<'static, str> {
                    Cow::Borrowed($ts)
                }
                fn json_schema(_: &mut SchemaGenerator) -> Schema {
                    json_schema!({ "tsType": $ts, "description": concat!("LSP `", $ts, "`") })
                }
            }
        )*};
    }

    named! {
        Range => "lsp.Range",
        TextDocumentIdentifier => "lsp.TextDocumentIdentifier",
        WorkspaceEdit => "lsp.WorkspaceEdit",
        Diagnostic => "lsp.Diagnostic",
        ProgressToken => "lsp.ProgressToken",
    }

    /// A `Uri` is a string on the wire.
    pub struct Uri;
    impl JsonSchema for Uri {
        fn inline_schema() -> bool {
            true
        }
        fn schema_name() -> Cow<'static, str> {
            Cow::Borrowed("Uri")
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({ "type": "string", "format": "uri" })
        }
    }
}
