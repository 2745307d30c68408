//! The model layer: pure data and logic — actions and prompts, documents and positions, edits
//! and merges, findings, settings, and the stores (sessions, usage ledger, audit log).

pub mod activity;
pub mod answers;
pub mod audit;
pub mod documents;
pub mod edits;
pub mod findings;
pub mod hunks;
pub mod prompt;
pub mod regions;
pub mod sessions;
pub mod settings;
pub mod usage;
