//! Settings from `initializationOptions` and the `claude` section of `workspace/configuration`.
//!
//! Parsing never fails. Settings are read field by field, so one bad value costs only that value:
//! it falls back to its default and produces a [`SettingsWarning`] the server shows to the user.
//! Unknown fields are ignored with a warning (with a "did you mean" hint for near misses).
//!
//! `env` and `mcpServers` may hold secrets (API keys, tokens). They never leave this type in
//! clear text except through [`Settings::cli_env`] and the fields themselves: `Debug` and
//! `Serialize` redact them, and warnings describe their values by type only.
//!
//! - `schema.rs`: the fields, their defaults, the names users write, a redacting `Debug`.
//! - `parse.rs`: reading the section field by field, with warnings; `values.rs`: one value
//!   read as one setting.
//! - `cli_process.rs`: what the settings give a CLI process (environment, home, time limits,
//!   secrets to redact, the warm-pool hash).
//! - `redaction.rs`: the redacted forms of `env` and `mcpServers` for `Debug` and `Serialize`.

mod cli_process;
mod parse;
mod redaction;
mod schema;
#[cfg(test)]
mod test_fixtures;
#[cfg(test)]
mod tests;
mod values;

pub use parse::{SettingsWarning, parse_settings};
pub use schema::{Delivery, Settings};
