//! The LSP face: the transport, the `LanguageServer` implementation that only delegates, the
//! server state, and one handler file per concern.

pub mod from_proto;
pub mod handlers;
pub mod server;
pub mod state;
pub mod to_proto;
pub mod transport;
