//! The permission audit log: one JSON line per decision about a tool call, appended to
//! `<cache dir>/audit.jsonl`. The file is rotated to `audit.jsonl.1` past a size cap, so it never
//! grows without bound; `claude/audit` reads the newest entries back.

use parking_lot::Mutex;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::base::secrets::redacted;

const FILE_NAME: &str = "audit.jsonl";
const ROTATED_NAME: &str = "audit.jsonl.1";
/// Past this size the log is rotated (one old file is kept).
const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// Allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    Allow,
    Deny,
}

/// Who or what made a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DecidedBy {
    /// claude-lsp's own policy: the action's tool profile and the path sandbox.
    Policy,
    /// An `allowedTools` / `disallowedTools` rule (named in `rule`).
    Rule,
    /// The user, answering the question just now.
    User,
    /// The user's earlier "Allow for this session" (the grant is named in `rule`).
    Session,
    /// The question went unanswered for `permissionTimeoutSecs`.
    Timeout,
    /// Nobody could be asked (the editor cannot show questions, or a headless run).
    NoPrompt,
    /// The `permissionMode` setting (`bypassPermissions` or `dontAsk`).
    Mode,
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// RFC 3339, UTC.
    pub time: String,
    /// The CLI conversation the call belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The workspace the run works on.
    pub workspace: String,
    pub tool: String,
    /// The command, path, URL or query of the call (shortened, secrets redacted).
    pub input: String,
    pub decision: Decision,
    pub by: DecidedBy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why, in words (the model sees this for a denial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl AuditEntry {
    /// The entry with secrets hidden: a command, a rule or a reason can quote one.
    fn redacted(&self) -> Self {
        Self {
            input: redacted(&self.input),
            rule: self.rule.as_deref().map(redacted),
            reason: self.reason.as_deref().map(redacted),
            ..self.clone()
        }
    }
}

/// Appends entries; safe to share between runs.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    /// Serialises appends and rotation within this process.
    write: Mutex<()>,
}

impl AuditLog {
    /// A log in `dir` (created on the first append).
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf(), write: Mutex::new(()) }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Append `entry`, its texts redacted.
    pub fn append(&self, entry: &AuditEntry) -> io::Result<()> {
        let mut line = serde_json::to_string(&entry.redacted()).map_err(io::Error::other)?;
        line.push('\n');
        let _guard = self.write.lock();
        fs::create_dir_all(&self.dir)?;
        let path = self.path();
        if fs::metadata(&path).is_ok_and(|meta| meta.len() + line.len() as u64 > MAX_BYTES) {
            fs::rename(&path, self.dir.join(ROTATED_NAME))?;
        }
        // One write of a whole line: concurrent appenders (another server instance) never
        // interleave inside a line.
        OpenOptions::new().create(true).append(true).open(&path)?.write_all(line.as_bytes())
    }

    /// The newest `limit` entries (oldest first), of one conversation when `session_id` is given.
    /// Lines that cannot be read (a torn write, an older format) are skipped.
    pub fn recent(&self, limit: usize, session_id: Option<&str>) -> io::Result<Vec<AuditEntry>> {
        let mut entries = Vec::new();
        for name in [ROTATED_NAME, FILE_NAME] {
            let text = match fs::read_to_string(self.dir.join(name)) {
                Ok(text) => text,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            entries.extend(
                text.lines()
                    .filter_map(|line| serde_json::from_str::<AuditEntry>(line).ok())
                    // Lines written before a secret was known.
                    .map(|entry| entry.redacted())
                    .filter(|entry| {
                        session_id.is_none_or(|id| entry.session_id.as_deref() == Some(id))
                    }),
            );
        }
        let skip = entries.len().saturating_sub(limit);
        Ok(entries.split_off(skip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn entry(tool: &str, session: &str) -> AuditEntry {
        AuditEntry {
            time: "2026-11-21T12:00:00Z".into(),
            session_id: Some(session.into()),
            workspace: "/ws".into(),
            tool: tool.into(),
            input: "cargo test".into(),
            decision: Decision::Allow,
            by: DecidedBy::Rule,
            rule: Some("Bash(cargo test:*)".into()),
            reason: None,
        }
    }

    #[test]
    fn entries_are_json_lines_read_back_newest_last() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(&dir.path().join("cache"));
        assert_eq!(log.recent(10, None).unwrap(), []);
        for (tool, session) in [("Bash", "s1"), ("Read", "s2"), ("Edit", "s1")] {
            log.append(&entry(tool, session)).unwrap();
        }
        let text = fs::read_to_string(log.path()).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(
            first,
            serde_json::json!({
                "time": "2026-11-21T12:00:00Z", "sessionId": "s1", "workspace": "/ws", "tool": "Bash",
                "input": "cargo test", "decision": "allow", "by": "rule", "rule": "Bash(cargo test:*)",
            })
        );
        let tools =
            |entries: Vec<AuditEntry>| entries.into_iter().map(|e| e.tool).collect::<Vec<_>>();
        assert_eq!(tools(log.recent(10, None).unwrap()), ["Bash", "Read", "Edit"]);
        assert_eq!(tools(log.recent(2, None).unwrap()), ["Read", "Edit"]);
        assert_eq!(tools(log.recent(10, Some("s1")).unwrap()), ["Bash", "Edit"]);
        assert_eq!(tools(log.recent(0, None).unwrap()), Vec::<String>::new());
    }

    #[test]
    fn torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path());
        log.append(&entry("Bash", "s")).unwrap();
        OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap()
            .write_all(b"{\"time\":\"2026")
            .unwrap();
        fs::OpenOptions::new().append(true).open(log.path()).unwrap().write_all(b"\n").unwrap();
        log.append(&entry("Read", "s")).unwrap();
        let tools: Vec<String> =
            log.recent(10, None).unwrap().into_iter().map(|e| e.tool).collect();
        assert_eq!(tools, ["Bash", "Read"]);
    }

    #[test]
    fn the_log_rotates_past_its_cap_and_reads_across_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path());
        let big = AuditEntry { input: "x".repeat(600_000), ..entry("Bash", "s") };
        for _ in 0..8 {
            log.append(&big).unwrap();
        }
        log.append(&entry("Read", "s")).unwrap();
        assert!(fs::metadata(log.path()).unwrap().len() <= MAX_BYTES);
        assert!(dir.path().join(ROTATED_NAME).exists());
        let recent = log.recent(3, None).unwrap();
        assert_eq!(recent.len(), 3);
        assert_eq!(recent.last().unwrap().tool, "Read");
    }
}
