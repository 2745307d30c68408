//! LSP request and notification handlers, one file per concern. `server.rs` only delegates here.

pub mod actions;
pub mod code_action;
pub mod commands;
pub mod documents;
pub mod findings;
pub mod hover;
pub mod lifecycle;
pub mod permissions;
pub mod progress;
pub mod review;
pub mod sessions;
pub mod show;
