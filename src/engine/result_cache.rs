//! The result cache: an analyze or review whose inputs are unchanged is answered from disk, in
//! milliseconds and with no API call.
//!
//! The key hashes everything the run is given: the prompt (which carries the buffer's text as the
//! editor has it, saved or not, the selection, the diagnostics, the uncommitted diff, the
//! instruction, the options and, for a folder or workspace scope, the list of its files), the
//! options themselves, the action, the workspace the agent works in, the run's model (its own
//! `model` option or the setting), the settings that shape the CLI's spawn (system prompt,
//! agents, tools: `Settings::hash_for_pool`), the CLI's version and, for a folder or workspace
//! scope, the content of every file in it ([`scope_digest`]). Any change to one of them misses.
//! Other files the agent reads on its own are not in the key.
//!
//! Entries live under `<cache dir>/results/`, one file each, bounded by count and bytes; the
//! least recently used go first (a hit refreshes an entry's modification time).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::base::files::write_atomically;
use crate::claude::session::RunResult;
use crate::model::prompt::{Action, ActionOptions, ReviewScope};
use crate::model::scope::ScopeFiles;
use crate::model::settings::Settings;

/// The entry format; an entry of another version is a miss.
const FORMAT: u32 = 1;

/// How much the cache may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    pub max_entries: usize,
    pub max_bytes: u64,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self { max_entries: 500, max_bytes: 50 * 1024 * 1024 }
    }
}

/// The cache directory and its bounds.
#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
    limits: CacheLimits,
}

/// What a cached run answered: enough to give the face the same outcome again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    format: u32,
    key: String,
    /// When the run that made it ended, RFC 3339.
    created_at: String,
    session_id: String,
    text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    structured_output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<String>,
}

/// A hit: what the run that made the entry answered, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedAnswer {
    pub session_id: String,
    pub text: String,
    pub structured_output: Option<Value>,
    pub model: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// What a run's cache key is made of.
#[derive(Debug, Clone, Copy)]
pub struct CacheInputs<'a> {
    pub action: Action,
    /// Where the agent works (and reads from).
    pub workspace: &'a Path,
    pub options: &'a ActionOptions,
    /// A turn of an existing conversation: its answer depends on the turns before.
    pub follow_up: bool,
    /// The whole prompt the agent gets.
    pub prompt: &'a str,
    /// The run's model: its own `model` option, else the setting (`None`: the CLI's default).
    pub model: Option<&'a str>,
    /// For a folder or workspace scope: [`scope_digest`] of its files.
    pub scope_content: Option<&'a str>,
    pub settings: &'a Settings,
    pub cli_version: &'a str,
}

impl ResultCache {
    /// The cache under `cache_dir` (`<cache_dir>/results/`).
    pub fn new(cache_dir: &Path, limits: CacheLimits) -> Self {
        Self { dir: cache_dir.join("results"), limits }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The cached answer for `key`, if there is one; a hit becomes the most recently used.
    pub fn get(&self, key: &str) -> Option<CachedAnswer> {
        let path = self.path(key);
        let entry: Entry = serde_json::from_slice(&fs::read(&path).ok()?).ok()?;
        if entry.format != FORMAT || entry.key != key {
            return None;
        }
        if let Err(err) = fs::File::options()
            .append(true)
            .open(&path)
            .and_then(|file| file.set_modified(SystemTime::now()))
        {
            tracing::debug!(%err, "could not mark a result cache entry as used");
        }
        Some(CachedAnswer {
            session_id: entry.session_id,
            text: entry.text,
            structured_output: entry.structured_output,
            model: entry.model,
            created_at: entry.created_at,
        })
    }

    /// Keep a run's answer (`text`, as the user reads it, and its `result`) under `key`, then
    /// evict the least recently used entries beyond the limits.
    pub fn put(&self, key: &str, text: &str, result: &RunResult) -> io::Result<()> {
        let entry = Entry {
            format: FORMAT,
            key: key.to_owned(),
            created_at: crate::base::time::rfc3339(crate::base::time::now_secs()),
            session_id: result.session_id.clone(),
            text: text.to_owned(),
            structured_output: result.structured_output.clone(),
            model: result.model.clone(),
        };
        let bytes = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        write_atomically(&self.path(key), &bytes)?;
        self.evict()
    }

    /// Remove the least recently used entries until the cache is within its limits.
    fn evict(&self) -> io::Result<()> {
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "json"))
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), entry.path()))
            })
            .collect();
        entries.sort();
        let mut bytes: u64 = entries.iter().map(|(_, size, _)| size).sum();
        let mut count = entries.len();
        for (_, size, path) in entries {
            if count <= self.limits.max_entries && bytes <= self.limits.max_bytes {
                break;
            }
            fs::remove_file(&path)?;
            count -= 1;
            bytes = bytes.saturating_sub(size);
        }
        Ok(())
    }
}

/// The cache key of a run; `None` when the run may not be cached: another action than analyze
/// or review, a follow-up in a conversation, or a folder or workspace scope without the digest
/// of its files.
pub fn key(inputs: &CacheInputs) -> Option<String> {
    if !matches!(inputs.action, Action::Analyze | Action::Review) || inputs.follow_up {
        return None;
    }
    // Every scope by name: one added later must decide here whether its code is in the prompt.
    match inputs.options.review.scope {
        None | Some(ReviewScope::File | ReviewScope::Selection | ReviewScope::Changes) => {}
        // The agent reads the files from disk: their content must be in the key.
        Some(ReviewScope::Folder | ReviewScope::Workspace) => {
            inputs.scope_content?;
        }
    }
    let material = serde_json::json!({
        "format": FORMAT,
        "action": inputs.action,
        "workspace": inputs.workspace,
        "prompt": inputs.prompt,
        // Every field and value by name (the domain's options have no serialized form: only
        // the wire types do).
        "options": format!("{:?}", inputs.options),
        "model": inputs.model,
        "scope": inputs.scope_content,
        "spawn": inputs.settings.hash_for_pool().to_string(),
        "cli": inputs.cli_version,
    });
    Some(format!("{:032x}", fnv1a_128(FNV_OFFSET, material.to_string().as_bytes())))
}

/// The content of a folder or workspace scope, for the key: each file's path and bytes (a file
/// that cannot be read counts as missing). `None` when the scope has more files than the prompt
/// lists: the agent may read those too, and a key over part of the scope could answer stale.
pub fn scope_digest(workspace: &Path, files: &ScopeFiles) -> Option<String> {
    if files.total > files.listed.len() {
        return None;
    }
    let digest = files.listed.iter().fold(FNV_OFFSET, |hash, file| {
        let hash = fnv1a_128(hash, file.as_bytes());
        match fs::read(workspace.join(file)) {
            Ok(content) => fnv1a_128(fnv1a_128(hash, b"\0"), &content),
            Err(_) => fnv1a_128(hash, b"\0missing"),
        }
    });
    Some(format!("{digest:032x}"))
}

const FNV_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;

/// FNV-1a, 128 bits, from `hash` on: stable across Rust releases and machines (std's
/// `DefaultHasher` is not).
fn fnv1a_128(hash: u128, bytes: &[u8]) -> u128 {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes.iter().fold(hash, |hash, byte| (hash ^ u128::from(*byte)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claude::session::Usage;
    use pretty_assertions::assert_eq;

    fn inputs<'a>(
        action: Action,
        prompt: &'a str,
        settings: &'a Settings,
        cli_version: &'a str,
    ) -> CacheInputs<'a> {
        static OPTIONS: std::sync::LazyLock<ActionOptions> =
            std::sync::LazyLock::new(ActionOptions::default);
        CacheInputs {
            action,
            workspace: Path::new("/ws"),
            options: &OPTIONS,
            follow_up: false,
            prompt,
            model: settings.model.as_deref(),
            scope_content: None,
            settings,
            cli_version,
        }
    }

    fn result(text: &str) -> RunResult {
        RunResult {
            session_id: "s-1".into(),
            text: text.into(),
            structured_output: Some(serde_json::json!({"findings": [], "summary": text})),
            usage: Usage { input_tokens: 9, ..Usage::default() },
            cost_usd: 0.25,
            num_turns: 2,
            duration_ms: 40,
            model: Some("m".into()),
            permission_denials: Vec::new(),
            raw: Value::Null,
        }
    }

    #[test]
    fn the_key_follows_every_input() {
        let settings = Settings::default();
        let base = key(&inputs(Action::Review, "prompt", &settings, "2.1.330")).unwrap();
        assert_eq!(base.len(), 32);
        assert_eq!(
            key(&inputs(Action::Review, "prompt", &settings, "2.1.330")),
            Some(base.clone())
        );
        let other_model = Settings { model: Some("haiku".into()), ..Settings::default() };
        let other_prompt = Settings { system_prompt: Some("x".into()), ..Settings::default() };
        let run_model = CacheInputs {
            model: Some("claude-haiku-4-5"),
            ..inputs(Action::Review, "prompt", &settings, "2.1.330")
        };
        let elsewhere = CacheInputs {
            workspace: Path::new("/other"),
            ..inputs(Action::Review, "prompt", &settings, "2.1.330")
        };
        for changed in [
            key(&inputs(Action::Review, "prompt 2", &settings, "2.1.330")),
            key(&inputs(Action::Analyze, "prompt", &settings, "2.1.330")),
            key(&inputs(Action::Review, "prompt", &settings, "2.1.331")),
            key(&inputs(Action::Review, "prompt", &other_model, "2.1.330")),
            key(&inputs(Action::Review, "prompt", &other_prompt, "2.1.330")),
            key(&elsewhere),
            key(&run_model),
        ] {
            assert_ne!(changed.unwrap(), base);
        }
    }

    #[test]
    fn a_folder_scope_is_keyed_by_its_files_content() {
        let settings = Settings::default();
        let mut options = ActionOptions::default();
        options.review.scope = Some(ReviewScope::Folder);
        let folder = |scope_content| CacheInputs {
            options: &options,
            scope_content,
            ..inputs(Action::Review, "prompt", &settings, "v")
        };
        assert_eq!(key(&folder(None)), None, "a folder scope without its content is not cached");
        let base = key(&folder(Some("digest 1"))).unwrap();
        assert_ne!(key(&folder(Some("digest 2"))).unwrap(), base);
        // The options are in the key themselves, not only through the prompt.
        assert_ne!(key(&inputs(Action::Review, "prompt", &settings, "v")).unwrap(), base);

        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.rs"), "fn a() {}").unwrap();
        let files = ScopeFiles::new(None, ["a.rs".to_owned(), "b.rs".to_owned()], true, true);
        let before = scope_digest(dir.path(), &files).unwrap();
        assert_eq!(scope_digest(dir.path(), &files).unwrap(), before);
        fs::write(dir.path().join("b.rs"), "fn b() {}").unwrap();
        let created = scope_digest(dir.path(), &files).unwrap();
        assert_ne!(created, before, "a file that appeared");
        fs::write(dir.path().join("a.rs"), "fn a() { }").unwrap();
        assert_ne!(scope_digest(dir.path(), &files).unwrap(), created, "an edited file");

        let many = (0..=crate::model::scope::MAX_LISTED_FILES).map(|i| format!("f{i}.rs"));
        let truncated = ScopeFiles::new(None, many, true, true);
        assert_eq!(scope_digest(dir.path(), &truncated), None, "files the prompt does not list");
    }

    #[test]
    fn edits_and_follow_ups_are_never_cached() {
        let settings = Settings::default();
        assert_eq!(key(&inputs(Action::Refactor, "p", &settings, "v")), None);
        assert_eq!(key(&inputs(Action::Generate, "p", &settings, "v")), None);
        let follow_up =
            CacheInputs { follow_up: true, ..inputs(Action::Review, "p", &settings, "v") };
        assert_eq!(key(&follow_up), None);
    }

    #[test]
    fn a_hit_gives_the_answer_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path(), CacheLimits::default());
        assert!(cache.get("k").is_none());
        cache.put("k", "two findings", &result("raw")).unwrap();
        let hit = cache.get("k").unwrap();
        assert_eq!(hit.text, "two findings");
        assert_eq!(hit.structured_output, result("raw").structured_output);
        assert_eq!((hit.session_id.as_str(), hit.model.as_deref()), ("s-1", Some("m")));
        // A damaged entry is a miss, never an error.
        fs::write(dir.path().join("results/k.json"), "{not json").unwrap();
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn the_least_recently_used_entries_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache =
            ResultCache::new(dir.path(), CacheLimits { max_entries: 2, max_bytes: u64::MAX });
        let age = |key: &str, secs: u64| {
            let path = dir.path().join(format!("results/{key}.json"));
            let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            let file = fs::File::options().append(true).open(path);
            file.and_then(|file| file.set_modified(when)).unwrap();
        };
        cache.put("a", "a", &result("a")).unwrap();
        age("a", 1_000);
        cache.put("b", "b", &result("b")).unwrap();
        age("b", 2_000);
        // Reading `a` makes it the most recently used: `b` goes when `c` comes.
        assert!(cache.get("a").is_some());
        cache.put("c", "c", &result("c")).unwrap();
        assert!(cache.get("b").is_none());
        assert!(cache.get("a").is_some() && cache.get("c").is_some());

        let small = ResultCache::new(dir.path(), CacheLimits { max_entries: 10, max_bytes: 1 });
        small.put("d", "d", &result("d")).unwrap();
        assert!(["a", "c", "d"].iter().all(|key| small.get(key).is_none()), "over the byte limit");
    }
}
