//! Shared test support: a fake Anthropic API, the pinned CLIs, process inspection, an LSP test
//! client. The e2e test binary (`tests/e2e/main.rs`) includes it once; `benches/speed.rs`
//! includes it too and uses a subset.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cli;
pub mod fake_api;
pub mod frame;
pub mod lsp_client;
pub mod plan;
pub mod wait;
pub mod workspace;
