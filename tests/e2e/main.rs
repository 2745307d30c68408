//! The integration tests, as one binary: `support` (the fake Anthropic API, the pinned CLIs, the
//! LSP test client) compiles once, and every module below shares it. One module's tests:
//! `cargo test --test e2e lsp_e2e::`.
//!
//! All tests run as threads of this one process, so none may change process-wide state (the
//! environment, the current directory, a global tracing subscriber): a child process gets its
//! environment through its `ProcessSpec`, a server through its settings. Checks for leftover
//! processes match a test's own processes (by pid, or by the temporary HOME each test has), never
//! "any CLI".
//!
//! `protocol_schema.rs` and `architecture.rs` stay binaries of their own: they use nothing of
//! `support` and read the sources, not a server; the schema test's documented command
//! (`UPDATE_PROTOCOL_SCHEMA=1 cargo test --test protocol_schema`) rewrites a committed file.

// Helpers outside `#[test]` functions unwrap too: a failed setup step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod agents_e2e;
mod code_actions_e2e;
mod containment_git;
mod cost_e2e;
mod doctor;
mod driver_e2e;
mod driver_faults;
mod fake_api_selftest;
mod findings_e2e;
mod headless;
mod helix_client;
mod jsonrpc_robustness;
mod lsp_e2e;
mod permissions_e2e;
mod pool;
mod resilience;
mod result_cache_e2e;
mod sandbox_e2e;
mod scopes_e2e;
mod secrets_e2e;
mod server_process;
mod sessions_e2e;
mod staging;
mod subagents_e2e;
