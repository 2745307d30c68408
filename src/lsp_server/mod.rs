//! The LSP face: the transport, the `LanguageServer` implementation that only delegates, the
//! server state, and one handler file per concern.

pub(crate) mod from_proto;
pub(crate) mod handlers;
pub mod server;
pub(crate) mod state;
pub(crate) mod to_proto;
pub mod transport;
