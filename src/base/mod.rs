//! The base layer: what every other layer builds on, depending on nothing of ours.

pub mod error;
pub mod files;
pub mod git;
pub mod logging;
pub mod path_style;
pub mod paths;
pub mod platform;
pub mod process;
pub mod secrets;
pub mod text;
pub mod time;
