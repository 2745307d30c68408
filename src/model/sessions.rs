//! The session index: every conversation a workspace had with Claude (what was asked, how it
//! ended, what it cost, where it ran), persisted per workspace in the cache dir. The CLI's own
//! transcripts of those conversations are transcripts.rs.
//!
//! On disk, `<cache>/sessions/<workspace key>/` holds `index.jsonl` (one [`SessionRecord`] per
//! line) and `usage.json` (a [`UsageLedger`]). Both are rewritten whole on every change, through
//! a temporary file and a rename, so a crash never leaves half a file. A damaged file is moved
//! aside (`….corrupt-<time>`) and rebuilt from what can still be read: the index from its
//! readable lines, the usage from the index; the caller shows the returned warnings.
//!
//! Every operation reads the files again (they are small), so two servers on one workspace see
//! each other's runs; writes from one server are serialized by a lock.

use parking_lot::Mutex;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::base::error::{ErrorKind, ServerError};
use crate::base::files::write_atomically;
use crate::base::paths::workspace_key;
use crate::base::secrets::redacted;
use crate::model::prompt::Action;
use crate::model::usage::{RunUsage, UsageCounts, UsageLedger};
use crate::protocol::lsp::{Range, Uri};

/// Sessions kept per workspace; the oldest are forgotten first (their usage stays counted).
const MAX_SESSIONS: usize = 500;
/// Runs kept per session record (the session's totals keep counting all of them).
const MAX_RUNS_PER_SESSION: usize = 100;
/// Longest summary kept per run.
const SUMMARY_CHARS: usize = 160;
const INDEX_FILE: &str = "index.jsonl";
const USAGE_FILE: &str = "usage.json";

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Error,
    Cancelled,
}

/// One run (turn) of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    pub started_at: String,
    pub ended_at: String,
    pub outcome: Outcome,
    /// The answer's first line, or the error.
    pub summary: String,
    pub usage: RunUsage,
}

/// One conversation. Its first run named the action, document and range; later runs (continue,
/// refine) are appended to `runs`, and the totals add up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    pub id: String,
    pub action: Action,
    pub uri: Uri,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    pub started_at: String,
    pub ended_at: String,
    /// How the latest run ended.
    pub outcome: Outcome,
    /// The latest run's summary.
    pub summary: String,
    /// All runs of the conversation added up.
    pub usage: UsageCounts,
    pub workspace: PathBuf,
    /// The staging mirror the CLI ran in (edit actions); else it ran in the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<PathBuf>,
    /// The conversation this one was forked from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default)]
    pub runs: Vec<RunRecord>,
}

impl SessionRecord {
    /// Hide secrets in the texts a record keeps (the instruction, an error's summary).
    fn redact_texts(&mut self) {
        self.summary = redacted(&self.summary);
        self.instruction = self.instruction.as_deref().map(redacted);
        for run in &mut self.runs {
            run.summary = redacted(&run.summary);
            run.instruction = run.instruction.as_deref().map(redacted);
        }
    }
}

/// A run's summary (also the label of the regions it wrote): the first line of its answer or
/// error, shortened.
pub fn summarize(text: &str) -> String {
    crate::model::activity::headline(text, SUMMARY_CHARS)
}

/// A run that just ended, to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedRun {
    pub session_id: String,
    /// Set when the run forked a new conversation off this one.
    pub parent: Option<String>,
    pub action: Action,
    pub uri: Uri,
    pub range: Option<Range>,
    pub instruction: Option<String>,
    pub workspace: PathBuf,
    pub mirror: Option<PathBuf>,
    pub started_at: String,
    pub ended_at: String,
    pub outcome: Outcome,
    pub summary: String,
    pub usage: RunUsage,
}

/// A value read from disk, and what went wrong on the way (for the user to see).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    pub value: T,
    pub warnings: Vec<String>,
}

/// What recording a run changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub session: SessionRecord,
    pub ledger: UsageLedger,
}

/// The index and usage files of every workspace, under one cache dir.
#[derive(Debug)]
pub struct SessionStore {
    root: PathBuf,
    /// Serializes read-modify-write cycles (and recoveries) within this server.
    files: Mutex<()>,
}

impl SessionStore {
    /// Files live under `<cache_dir>/sessions/`.
    pub fn new(cache_dir: &Path) -> Self {
        Self { root: cache_dir.join("sessions"), files: Mutex::new(()) }
    }

    /// The directory holding one workspace's files.
    pub fn workspace_dir(&self, workspace: &Path) -> PathBuf {
        let canonical = fs::canonicalize(workspace).unwrap_or_else(|_| workspace.to_path_buf());
        self.root.join(workspace_key(&canonical))
    }

    /// The workspace's sessions, newest first.
    pub fn sessions(&self, workspace: &Path) -> Loaded<Vec<SessionRecord>> {
        let _files = self.files.lock();
        let mut loaded = self.read_index(workspace);
        loaded.value.sort_by(|a, b| b.ended_at.cmp(&a.ended_at));
        loaded
    }

    /// The workspace's usage ledger.
    pub fn usage(&self, workspace: &Path) -> Loaded<UsageLedger> {
        let _files = self.files.lock();
        self.read_usage(workspace)
    }

    /// Add a run to its session (a new record for a new conversation) and to the usage ledger.
    pub fn record(&self, run: &FinishedRun) -> io::Result<Loaded<Recorded>> {
        let _files = self.files.lock();
        let dir = self.workspace_dir(&run.workspace);
        let Loaded { value: mut sessions, mut warnings } = self.read_index(&run.workspace);
        let session = apply_run(&mut sessions, run);
        forget_oldest(&mut sessions);
        write_atomically(&dir.join(INDEX_FILE), &index_text(&sessions))?;
        let usage = self.read_usage(&run.workspace);
        warnings.extend(usage.warnings);
        let mut ledger = usage.value;
        ledger.add(day_of(&run.ended_at), &run.usage);
        write_atomically(&dir.join(USAGE_FILE), &usage_text(&ledger)?)?;
        Ok(Loaded { value: Recorded { session, ledger }, warnings })
    }

    fn read_index(&self, workspace: &Path) -> Loaded<Vec<SessionRecord>> {
        let path = self.workspace_dir(workspace).join(INDEX_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Loaded { value: Vec::new(), warnings: Vec::new() };
            }
            Err(err) => {
                let warning = format!("cannot read the session index {}: {err}", path.display());
                return Loaded { value: Vec::new(), warnings: vec![warning] };
            }
        };
        let (sessions, unreadable) = parse_index(&bytes);
        if unreadable == 0 {
            return Loaded { value: sessions, warnings: Vec::new() };
        }
        let warning = match recover(&path, &index_text(&sessions)) {
            Ok(kept) => format!(
                "the session index of {} was damaged: {} session(s) recovered, {unreadable} \
                 unreadable line(s) dropped; the damaged file was kept as {}",
                workspace.display(),
                sessions.len(),
                kept.display()
            ),
            Err(err) => format!(
                "the session index {} is damaged ({unreadable} unreadable line(s)) and could not \
                 be repaired: {err}",
                path.display()
            ),
        };
        tracing::warn!("{warning}");
        Loaded { value: sessions, warnings: vec![warning] }
    }

    fn read_usage(&self, workspace: &Path) -> Loaded<UsageLedger> {
        let path = self.workspace_dir(workspace).join(USAGE_FILE);
        let problem = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<UsageLedger>(&bytes) {
                Ok(ledger) => return Loaded { value: ledger, warnings: Vec::new() },
                Err(err) => err.to_string(),
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Loaded { value: UsageLedger::default(), warnings: Vec::new() };
            }
            Err(err) => {
                let warning = format!("cannot read the usage totals {}: {err}", path.display());
                return Loaded { value: UsageLedger::default(), warnings: vec![warning] };
            }
        };
        // Rebuilt from the runs the index still holds.
        let Loaded { value: sessions, mut warnings } = self.read_index(workspace);
        let mut ledger = UsageLedger::default();
        for run in sessions.iter().flat_map(|session| &session.runs) {
            ledger.add(day_of(&run.ended_at), &run.usage);
        }
        let warning = match usage_text(&ledger).and_then(|text| recover(&path, &text)) {
            Ok(kept) => format!(
                "the usage totals of {} were damaged ({problem}); they were rebuilt from the \
                 session index; the damaged file was kept as {}",
                workspace.display(),
                kept.display()
            ),
            Err(err) => format!(
                "the usage totals {} are damaged ({problem}) and could not be rebuilt: {err}",
                path.display()
            ),
        };
        tracing::warn!("{warning}");
        warnings.push(warning);
        Loaded { value: ledger, warnings }
    }
}

/// The readable records of an index file, and how many lines could not be read.
fn parse_index(bytes: &[u8]) -> (Vec<SessionRecord>, usize) {
    let mut sessions: Vec<SessionRecord> = Vec::new();
    let mut unreadable = 0;
    for line in bytes.split(|byte| *byte == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<SessionRecord>(line) {
            // A repeated id (two servers raced): the later line is the newer state.
            Ok(mut record) => {
                // An index written before a secret was known (or by an older server).
                record.redact_texts();
                match sessions.iter_mut().find(|known| known.id == record.id) {
                    Some(known) => *known = record,
                    None => sessions.push(record),
                }
            }
            Err(_) => unreadable += 1,
        }
    }
    (sessions, unreadable)
}

fn index_text(sessions: &[SessionRecord]) -> Vec<u8> {
    let mut text = Vec::new();
    for session in sessions {
        // A record always serializes: its fields are strings, numbers and maps with string keys.
        if let Ok(line) = serde_json::to_vec(session) {
            text.extend_from_slice(&line);
            text.push(b'\n');
        }
    }
    text
}

fn usage_text(ledger: &UsageLedger) -> io::Result<Vec<u8>> {
    serde_json::to_vec_pretty(ledger).map_err(io::Error::other)
}

/// Move a damaged file aside and write its rebuilt content in its place. Returns where the
/// damaged file went.
fn recover(path: &Path, rebuilt: &[u8]) -> io::Result<PathBuf> {
    let stamp = crate::base::time::rfc3339(crate::base::time::now_secs()).replace([':', '-'], "");
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let mut kept = path.with_file_name(format!("{name}.corrupt-{stamp}"));
    let mut n = 1;
    while kept.exists() {
        kept = path.with_file_name(format!("{name}.corrupt-{stamp}-{n}"));
        n += 1;
    }
    fs::rename(path, &kept)?;
    write_atomically(path, rebuilt)?;
    Ok(kept)
}

fn apply_run(sessions: &mut Vec<SessionRecord>, run: &FinishedRun) -> SessionRecord {
    let run_record = RunRecord {
        action: run.action,
        instruction: run.instruction.clone(),
        started_at: run.started_at.clone(),
        ended_at: run.ended_at.clone(),
        outcome: run.outcome,
        summary: run.summary.clone(),
        usage: run.usage.clone(),
    };
    if let Some(session) = sessions.iter_mut().find(|session| session.id == run.session_id) {
        session.ended_at = run.ended_at.clone();
        session.outcome = run.outcome;
        session.summary = run.summary.clone();
        session.usage.add(&run.usage.counts);
        if run.mirror.is_some() {
            session.mirror = run.mirror.clone();
        }
        session.runs.push(run_record);
        if session.runs.len() > MAX_RUNS_PER_SESSION {
            let excess = session.runs.len() - MAX_RUNS_PER_SESSION;
            session.runs.drain(..excess);
        }
        session.redact_texts();
        return session.clone();
    }
    let mut session = SessionRecord {
        id: run.session_id.clone(),
        action: run.action,
        uri: run.uri.clone(),
        range: run.range,
        instruction: run.instruction.clone(),
        started_at: run.started_at.clone(),
        ended_at: run.ended_at.clone(),
        outcome: run.outcome,
        summary: run.summary.clone(),
        usage: run.usage.counts,
        workspace: run.workspace.clone(),
        mirror: run.mirror.clone(),
        parent: run.parent.clone(),
        runs: vec![run_record],
    };
    session.redact_texts();
    sessions.push(session.clone());
    session
}

fn forget_oldest(sessions: &mut Vec<SessionRecord>) {
    if sessions.len() > MAX_SESSIONS {
        sessions.sort_by(|a, b| b.ended_at.cmp(&a.ended_at));
        sessions.truncate(MAX_SESSIONS);
    }
}

/// `YYYY-MM-DD` of an RFC 3339 time.
fn day_of(time: &str) -> &str {
    time.get(..10).unwrap_or(time)
}

/// A session id is used in file names and on the CLI's command line: letters, digits, `-` and
/// `_` only, starting with a letter or digit (never a flag).
pub fn check_session_id(id: &str) -> Result<(), ServerError> {
    let valid = (1..=128).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ServerError::invalid_params(format!(
            "{id:?} is not a session id (expected letters, digits and dashes, as in a sessionId \
             from an earlier result)"
        )))
    }
}

/// The error for a conversation nobody knows.
pub fn session_not_found(id: &str, why: &str) -> ServerError {
    ServerError::new(
        ErrorKind::SESSION_NOT_FOUND,
        format!("no conversation {id}: {why}"),
        "list the workspace's conversations with claude/sessions, or start a new one",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use std::collections::BTreeMap;

    fn uri(path: &str) -> Uri {
        path.parse().unwrap()
    }

    fn run(id: &str, workspace: &Path, ended_at: &str, cost: f64) -> FinishedRun {
        FinishedRun {
            session_id: id.into(),
            parent: None,
            action: Action::Refactor,
            uri: uri("file:///w/src/lib.rs"),
            range: None,
            instruction: Some("rename".into()),
            workspace: workspace.to_path_buf(),
            mirror: None,
            started_at: ended_at.into(),
            ended_at: ended_at.into(),
            outcome: Outcome::Success,
            summary: "Renamed.".into(),
            usage: RunUsage {
                counts: UsageCounts {
                    runs: 1,
                    turns: 3,
                    cost_usd: cost,
                    input_tokens: 30,
                    ..UsageCounts::default()
                },
                model: Some("m".into()),
                models: BTreeMap::new(),
            },
        }
    }

    #[test]
    fn runs_are_recorded_per_session_and_survive_a_reload() {
        let cache = tempfile::tempdir().unwrap();
        let workspace = tempfile::tempdir().unwrap();
        let store = SessionStore::new(cache.path());
        store.record(&run("a", workspace.path(), "2026-11-20T10:00:00Z", 1.0)).unwrap();
        store.record(&run("b", workspace.path(), "2026-11-21T10:00:00Z", 2.0)).unwrap();
        let recorded =
            store.record(&run("a", workspace.path(), "2026-11-21T11:00:00Z", 0.5)).unwrap();
        assert!(recorded.warnings.is_empty());
        assert_eq!(recorded.value.session.runs.len(), 2);
        assert_eq!(recorded.value.session.usage.cost_usd, 1.5);

        let reopened = SessionStore::new(cache.path());
        let sessions = reopened.sessions(workspace.path());
        assert!(sessions.warnings.is_empty());
        let ids: Vec<&str> = sessions.value.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"], "newest first");
        assert_eq!(sessions.value[0].started_at, "2026-11-20T10:00:00Z");
        let ledger = reopened.usage(workspace.path()).value;
        assert_eq!(ledger.total().cost_usd, 3.5);
        assert_eq!(ledger.day("2026-11-21").cost_usd, 2.5);
        assert_eq!(ledger.day("2026-11-21").runs, 2);
    }

    #[test]
    fn a_damaged_index_is_moved_aside_and_rebuilt_from_its_readable_lines() {
        let cache = tempfile::tempdir().unwrap();
        let workspace = tempfile::tempdir().unwrap();
        let store = SessionStore::new(cache.path());
        store.record(&run("a", workspace.path(), "2026-11-20T10:00:00Z", 1.0)).unwrap();
        store.record(&run("b", workspace.path(), "2026-11-21T10:00:00Z", 2.0)).unwrap();
        let dir = store.workspace_dir(workspace.path());
        let index = dir.join(INDEX_FILE);
        let mut text = fs::read(&index).unwrap();
        text.extend_from_slice(b"{\"id\": \"half a rec\n\xff\xfe not json\n");
        fs::write(&index, &text).unwrap();

        let loaded = store.sessions(workspace.path());
        assert_eq!(loaded.value.len(), 2);
        assert_eq!(loaded.warnings.len(), 1);
        assert!(
            loaded.warnings[0].contains("2 session(s) recovered, 2 unreadable line(s)"),
            "{:?}",
            loaded.warnings
        );
        let kept: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(fs::read(&kept[0]).unwrap(), text, "the damaged file is kept as it was");
        // Repaired: the next read is clean.
        assert!(store.sessions(workspace.path()).warnings.is_empty());
    }

    #[test]
    fn damaged_usage_totals_are_rebuilt_from_the_index() {
        let cache = tempfile::tempdir().unwrap();
        let workspace = tempfile::tempdir().unwrap();
        let store = SessionStore::new(cache.path());
        store.record(&run("a", workspace.path(), "2026-11-20T10:00:00Z", 1.0)).unwrap();
        store.record(&run("a", workspace.path(), "2026-11-21T10:00:00Z", 2.0)).unwrap();
        let before = store.usage(workspace.path()).value;
        fs::write(store.workspace_dir(workspace.path()).join(USAGE_FILE), "{\"days\": [").unwrap();
        let loaded = store.usage(workspace.path());
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("rebuilt from the session index"));
        assert_eq!(loaded.value, before);
        assert!(store.usage(workspace.path()).warnings.is_empty());
    }

    #[test]
    fn the_index_keeps_the_newest_sessions() {
        let mut sessions = Vec::new();
        let workspace = Path::new("/w");
        for i in 0..MAX_SESSIONS + 3 {
            apply_run(
                &mut sessions,
                &run(
                    &format!("s{i}"),
                    workspace,
                    &format!("2026-11-21T10:{:02}:{:02}Z", i / 60, i % 60),
                    0.0,
                ),
            );
        }
        forget_oldest(&mut sessions);
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(!sessions.iter().any(|s| s.id == "s0" || s.id == "s2"));
        assert!(sessions.iter().any(|s| s.id == "s3"));
    }

    #[test]
    fn session_ids_that_could_escape_a_path_or_pose_as_a_flag_are_refused() {
        assert!(check_session_id("3d45c782-8a4b-43c2-b96c-549384b034af").is_ok());
        for bad in ["", "../etc/passwd", "a/b", "--fork-session", "-x", "a b", &"a".repeat(129)] {
            let err = check_session_id(bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::INVALID_PARAMS, "{bad}");
        }
    }
}
