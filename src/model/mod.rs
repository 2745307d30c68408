//! The model layer: pure data and logic — actions and prompts, documents and positions, edits
//! and merges, findings, folder scopes, settings, and the stores (sessions, usage ledger, audit
//! log) and the CLI's transcripts.

pub(crate) mod activity;
pub(crate) mod answers;
pub(crate) mod audit;
pub mod documents;
pub mod edits;
pub mod findings;
pub(crate) mod hunks;
pub(crate) mod prompt;
pub(crate) mod regions;
pub(crate) mod scope;
pub(crate) mod sessions;
pub mod settings;
pub(crate) mod transcripts;
pub(crate) mod usage;
