//! The base layer: what every other layer builds on, depending on nothing of ours.

pub(crate) mod error;
pub(crate) mod files;
pub mod git;
pub mod logging;
pub(crate) mod path_style;
pub(crate) mod paths;
pub mod platform;
pub mod process;
pub(crate) mod secrets;
pub(crate) mod text;
pub(crate) mod time;
