//! Logging: `tracing` to stderr or a log file, never stdout (it carries the protocol), and every
//! line passed through secret redaction before it is written.

use parking_lot::Mutex;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

use crate::base::secrets::redact;

/// How much the server logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const ALL: [LogLevel; 6] = [
        LogLevel::Off,
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    /// The name `tracing_subscriber::EnvFilter` understands.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    pub fn parse(name: &str) -> Option<LogLevel> {
        let name = name.trim().to_ascii_lowercase();
        if name == "warning" {
            return Some(LogLevel::Warn);
        }
        Self::ALL.into_iter().find(|level| level.as_str() == name)
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The environment variable that overrides the `logLevel` setting (an EnvFilter directive).
pub const LOG_ENV: &str = "CLAUDE_LSP_LOG";

/// Where log lines go; switchable at run time when the `logFile` setting changes.
#[derive(Clone, Default)]
pub struct LogSink {
    file: Arc<Mutex<Option<File>>>,
}

impl LogSink {
    /// Send log lines to `path` (appending), or back to stderr with `None`.
    pub fn set_file(&self, path: Option<&Path>) -> io::Result<()> {
        let file = match path {
            Some(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                Some(OpenOptions::new().create(true).append(true).open(path)?)
            }
            None => None,
        };
        *self.file.lock() = file;
        Ok(())
    }
}

/// One log event's bytes, redacted and written when dropped (tracing writes an event in pieces).
pub struct RedactingWriter {
    sink: LogSink,
    buffer: Vec<u8>,
}

impl Write for RedactingWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buffer);
        let clean = redact(&text);
        let mut file = self.sink.file.lock();
        // Logging must never take the server down: a failed write is dropped.
        let _ = match file.as_mut() {
            Some(file) => file.write_all(clean.as_bytes()),
            None => io::stderr().write_all(clean.as_bytes()),
        };
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter { sink: self.clone(), buffer: Vec::new() }
    }
}

/// Lets settings change the level and the destination after start-up.
#[derive(Clone)]
pub struct LogControl {
    sink: LogSink,
    filter: reload::Handle<EnvFilter, tracing_subscriber::Registry>,
    env_override: bool,
}

impl LogControl {
    /// Apply the `logLevel` / `logFile` settings (`CLAUDE_LSP_LOG` wins over `logLevel`).
    pub fn apply(&self, level: LogLevel, file: Option<&Path>) -> Result<(), String> {
        if !self.env_override {
            self.filter
                .reload(EnvFilter::new(filter_for(level)))
                .map_err(|err| format!("cannot change the log level: {err}"))?;
        }
        self.sink.set_file(file).map_err(|err| {
            format!(
                "cannot open the log file {}: {err}",
                file.map_or_else(String::new, |f| f.display().to_string())
            )
        })
    }
}

fn filter_for(level: LogLevel) -> String {
    format!("claude_lsp={},warn", level.as_str())
}

/// Install the global subscriber (stderr until settings say otherwise).
pub fn init() -> Option<LogControl> {
    let from_env = std::env::var(LOG_ENV).ok().filter(|v| !v.is_empty());
    let env_override = from_env.is_some();
    let filter = EnvFilter::new(from_env.unwrap_or_else(|| filter_for(LogLevel::default())));
    let (filter, handle) = reload::Layer::new(filter);
    let sink = LogSink::default();
    let fmt = tracing_subscriber::fmt::layer().with_writer(sink.clone()).with_ansi(false);
    tracing_subscriber::registry().with(filter).with(fmt).try_init().ok()?;
    Some(LogControl { sink, filter: handle, env_override })
}
