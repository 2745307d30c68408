//! The model layer: pure data and logic — actions and prompts, documents and positions, edits
//! and merges, findings, folder scopes, settings, and the stores (sessions, usage ledger, audit
//! log) and the CLI's transcripts.

pub mod activity;
pub mod answers;
pub mod audit;
pub mod documents;
pub mod edits;
pub mod findings;
pub mod hunks;
pub mod prompt;
pub mod regions;
pub mod scope;
pub mod sessions;
pub mod settings;
pub mod transcripts;
pub mod usage;
