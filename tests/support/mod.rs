//! Shared test support: a fake Anthropic API, the pinned CLIs, process inspection.
//! Each integration test includes it with `mod support;` and uses a subset.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cli;
pub mod fake_api;
pub mod lsp_client;
pub mod plan;
pub mod workspace;
