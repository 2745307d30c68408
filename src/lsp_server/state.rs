//! The server's shared state. Locks are never held across an `.await`.

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::base::error::ServerError;
use crate::base::logging::LogControl;
use crate::base::paths::default_cache_dir;
use crate::claude::discover::{CliBinary, DiscoverOptions, discover};
use crate::engine::breaker::{CircuitBreaker, CircuitConfig};
use crate::engine::metrics::{Metrics, MetricsReport};
use crate::engine::pipeline::Runner;
use crate::engine::pool::{PoolLimits, WarmPool};
use crate::engine::result_cache::{CacheLimits, ResultCache};
use crate::engine::retry::Resilience;
use crate::engine::scheduler::Scheduler;
use crate::engine::staging::StagingManager;
use crate::model::documents::{DocumentStore, PositionEncoding};
use crate::model::edits::EditCapabilities;
use crate::model::prompt::Action;
use crate::model::settings::Settings;
use crate::protocol::lsp::{Client, ClientCapabilities, NumberOrString, Uri};

/// Options of one server instance (set by `main`, or by a test).
#[derive(Clone)]
pub struct ServerOptions {
    /// Where mirrors, answers and logs go (default: the user cache dir + `claude-lsp`).
    pub cache_dir: PathBuf,
    /// Applies the logLevel/logFile settings; None when logging is not ours to change (tests).
    pub log: Option<LogControl>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self { cache_dir: default_cache_dir(), log: None }
    }
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions").field("cache_dir", &self.cache_dir).finish_non_exhaustive()
    }
}

/// What the client told us in `initialize`.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub encoding: PositionEncoding,
    pub edits: EditCapabilities,
    pub progress_create: bool,
    pub show_document: bool,
    /// `textDocument.hover`: the client can show a hover (how clients without showDocument read
    /// a long answer).
    pub hover: bool,
    /// `window.showMessage`: the client answers `window/showMessageRequest` with its actions
    /// (how permission questions reach the user).
    pub show_message_request: bool,
    pub configuration: bool,
    pub related_information: bool,
    /// `experimental.claudeLsp.usageNotifications`: send `claude/usage` after each run.
    pub usage_notifications: bool,
    /// The client watches files for a server that registers `workspace/didChangeWatchedFiles`.
    pub watched_files_registration: bool,
}

impl ClientInfo {
    pub fn from_capabilities(caps: &ClientCapabilities) -> Self {
        let window = caps.window.as_ref();
        let workspace = caps.workspace.as_ref();
        Self {
            encoding: PositionEncoding::negotiate(
                caps.general.as_ref().and_then(|g| g.position_encodings.as_deref()),
            ),
            edits: EditCapabilities::from_client(caps),
            progress_create: window.and_then(|w| w.work_done_progress).unwrap_or(false),
            show_document: window
                .and_then(|w| w.show_document.as_ref())
                .is_some_and(|sd| sd.support),
            hover: caps.text_document.as_ref().is_some_and(|td| td.hover.is_some()),
            show_message_request: window.is_some_and(|w| w.show_message.is_some()),
            configuration: workspace.and_then(|w| w.configuration).unwrap_or(false),
            related_information: caps
                .text_document
                .as_ref()
                .and_then(|td| td.publish_diagnostics.as_ref())
                .and_then(|pd| pd.related_information)
                .unwrap_or(false),
            usage_notifications: caps
                .experimental
                .as_ref()
                .and_then(|experimental| experimental.pointer("/claudeLsp/usageNotifications"))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            watched_files_registration: workspace
                .and_then(|w| w.did_change_watched_files.as_ref())
                .and_then(|watched| watched.dynamic_registration)
                .unwrap_or(false),
        }
    }
}

/// What a request works with, taken once when it starts (as rust-analyzer's handlers take a
/// `GlobalStateSnapshot`): the settings, what the client can do and the workspace folders. A run
/// sees one version of them from its start to its delivery, even when the editor changes the
/// settings or the folders meanwhile; cheap to take (two `Arc`s and a copy of `ClientInfo`).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub settings: Arc<Settings>,
    pub client: ClientInfo,
    pub folders: Arc<[PathBuf]>,
}

impl Snapshot {
    /// The workspace folder holding `file` (the innermost one), else the file's directory.
    pub fn workspace_for(&self, file: &Path) -> PathBuf {
        workspace_among(&self.folders, file)
    }
}

/// The folder of `folders` holding `file` (the innermost one), else the file's directory.
fn workspace_among(folders: &[PathBuf], file: &Path) -> PathBuf {
    folders
        .iter()
        .filter(|folder| file.starts_with(folder))
        .max_by_key(|folder| folder.components().count())
        .cloned()
        .or_else(|| file.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// A run in flight.
#[derive(Debug, Clone)]
pub struct RunEntry {
    pub action: Action,
    pub uri: Uri,
    pub started_at: String,
    pub cancel: CancellationToken,
    pub progress_token: Option<NumberOrString>,
}

pub struct ServerState {
    pub client: Client,
    pub options: ServerOptions,
    pub documents: RwLock<DocumentStore>,
    settings: RwLock<Arc<Settings>>,
    client_info: OnceLock<ClientInfo>,
    workspace_folders: RwLock<Arc<[PathBuf]>>,
    runs: Mutex<HashMap<String, RunEntry>>,
    pub staging: Arc<StagingManager>,
    cli: tokio::sync::Mutex<Option<CliBinary>>,
    /// Who may start a CLI run now (`maxConcurrent`, the queue, `requestsPerMinute`).
    pub scheduler: Scheduler,
    /// Refuses runs while the API keeps failing.
    pub circuit: Arc<CircuitBreaker>,
    pub metrics: Arc<Metrics>,
    /// Settings warnings from `initialize`, shown once the client is `initialized`.
    pub pending_warnings: Mutex<Vec<crate::model::settings::SettingsWarning>>,
    /// Session grants and the audit log, shared by every run (each run adds its own prompter).
    pub permissions: crate::engine::permissions::PermissionServices,
    /// CLI processes started ahead of need (`warmPool`).
    pub pool: WarmPool,
    /// Published findings of review/analyze runs, anchored to their documents.
    findings: Mutex<crate::model::findings::FindingStore>,
    /// Proposed changes waiting for review (`delivery: "review"`), shown where they land.
    hunks: Mutex<crate::model::hunks::HunkStore>,
    /// The session index and usage ledger of every workspace (on disk, in the cache dir).
    pub sessions: Arc<crate::model::sessions::SessionStore>,
    /// Conversations whose CLI process stays alive for their next turn.
    pub conversations: Arc<crate::engine::conversations::Conversations>,
    /// Findings runs' CLIs finishing their turns after the answer, and those runs' books.
    pub background: crate::engine::background::Background,
    /// Regions of documents that conversations wrote (for `Claude: refine…`).
    pub regions: crate::model::regions::Regions,
    /// Long answers kept for a hover, for clients that cannot show a document.
    pub answers: crate::model::answers::Answers,
}

impl ServerState {
    pub fn new(client: Client, options: ServerOptions) -> Self {
        let settings = Settings::default();
        let scheduler = Scheduler::new(settings.max_concurrent);
        let circuit = Arc::new(CircuitBreaker::new(circuit_config(&settings)));
        let pool = WarmPool::new(PoolLimits::from_settings(&settings));
        pool.count_waiting_runs(scheduler.waiting_runs());
        let conversations = Arc::new(crate::engine::conversations::Conversations::new());
        let idle_elsewhere: std::sync::Weak<dyn crate::engine::pool::IdleHolder> =
            Arc::downgrade(&conversations) as _;
        pool.share_idle_memory_with(idle_elsewhere);
        Self {
            client,
            staging: Arc::new(StagingManager::new(options.cache_dir.clone())),
            sessions: Arc::new(crate::model::sessions::SessionStore::new(&options.cache_dir)),
            permissions: crate::engine::permissions::PermissionServices {
                audit: Some(Arc::new(crate::model::audit::AuditLog::new(&options.cache_dir))),
                ..Default::default()
            },
            options,
            documents: RwLock::new(DocumentStore::default()),
            settings: RwLock::new(Arc::new(settings)),
            client_info: OnceLock::new(),
            workspace_folders: RwLock::new(Arc::from([])),
            runs: Mutex::new(HashMap::new()),
            cli: tokio::sync::Mutex::new(None),
            scheduler,
            circuit,
            metrics: Arc::new(Metrics::new()),
            pending_warnings: Mutex::new(Vec::new()),
            pool,
            findings: Mutex::new(crate::model::findings::FindingStore::default()),
            hunks: Mutex::new(crate::model::hunks::HunkStore::default()),
            conversations,
            background: crate::engine::background::Background::default(),
            regions: crate::model::regions::Regions::new(),
            answers: crate::model::answers::Answers::default(),
        }
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings.read().clone()
    }

    /// The settings, client and folders as they are now, for one request from start to end.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            settings: self.settings(),
            client: self.client_info(),
            folders: self.workspace_folders.read().clone(),
        }
    }

    /// The published findings. Never hold the guard across an `.await`.
    pub fn findings(&self) -> parking_lot::MutexGuard<'_, crate::model::findings::FindingStore> {
        self.findings.lock()
    }

    /// The proposed changes waiting for review. Never hold the guard across an `.await`.
    pub fn hunks(&self) -> parking_lot::MutexGuard<'_, crate::model::hunks::HunkStore> {
        self.hunks.lock()
    }

    /// Replace the settings. A changed `cliPath` or `env` forgets the discovered CLI; a changed
    /// `maxConcurrent` applies at once (a higher limit starts waiting runs).
    pub async fn set_settings(&self, settings: Settings) {
        let old = std::mem::replace(&mut *self.settings.write(), Arc::new(settings.clone()));
        if let Some(log) = &self.options.log
            && (old.log_level != settings.log_level || old.log_file != settings.log_file)
            && let Err(err) = log.apply(settings.log_level, settings.log_file.as_deref())
        {
            tracing::warn!(%err, "logging settings");
        }
        if old.cli_path != settings.cli_path {
            *self.cli.lock().await = None;
        }
        self.scheduler.set_max_concurrent(settings.max_concurrent);
        self.scheduler.set_requests_per_minute(settings.requests_per_minute);
        self.circuit.set_config(circuit_config(&settings));
        crate::base::secrets::register(settings.secret_env_values());
        self.pool.set_limits(PoolLimits::from_settings(&settings));
        self.pool.set_idle_memory_budget(settings.max_idle_memory_mb);
        if old.hash_for_pool() != settings.hash_for_pool() {
            // The warm processes were started with the old flags or environment.
            self.pool.clear();
        }
    }

    pub fn set_client_info(&self, info: ClientInfo) {
        let _ = self.client_info.set(info);
    }

    pub fn client_info(&self) -> ClientInfo {
        self.client_info
            .get()
            .cloned()
            .unwrap_or_else(|| ClientInfo::from_capabilities(&ClientCapabilities::default()))
    }

    pub fn encoding(&self) -> PositionEncoding {
        self.client_info().encoding
    }

    pub fn set_workspace_folders(&self, folders: Vec<PathBuf>) {
        *self.workspace_folders.write() = folders.into();
    }

    pub fn workspace_folders(&self) -> Vec<PathBuf> {
        self.workspace_folders.read().to_vec()
    }

    /// The workspace folder holding `file` (the innermost one), else the file's directory.
    pub fn workspace_for(&self, file: &Path) -> PathBuf {
        workspace_among(&self.workspace_folders.read(), file)
    }

    /// A runner with the snapshot's settings and the CLI, discovered once and cached until
    /// `cliPath` changes.
    pub async fn runner(&self, snapshot: &Snapshot) -> Result<Runner, ServerError> {
        let settings = Settings::clone(&snapshot.settings);
        let mut cached = self.cli.lock().await;
        let cli = match cached.as_ref() {
            Some(cli) => cli.clone(),
            None => {
                let workspace = snapshot.folders.first().cloned();
                let options = DiscoverOptions::from_env(settings.cli_path.clone(), workspace);
                let cli = discover(&options).await.map_err(|err| err.server_error())?;
                tracing::info!(path = %cli.path.display(), version = %cli.version, "using the Claude Code CLI");
                *cached = Some(cli.clone());
                cli
            }
        };
        Ok(Runner {
            cli,
            settings,
            staging: self.staging.clone(),
            permissions: self.permissions.clone(),
            pool: Some(self.pool.clone()),
            resilience: self.resilience(),
            conversations: Some(self.conversations.clone()),
            sessions: self.sessions.clone(),
            results: Some(ResultCache::new(&self.options.cache_dir, CacheLimits::default())),
            background: self.background.clone(),
        })
    }

    /// What retries report to: this server's circuit breaker and metrics.
    pub fn resilience(&self) -> Resilience {
        Resilience { circuit: Some(self.circuit.clone()), metrics: Some(self.metrics.clone()) }
    }

    /// `claude/metrics`: the counters plus the queue and the circuit as they are now.
    pub fn metrics_report(&self) -> MetricsReport {
        MetricsReport {
            metrics: self.metrics.snapshot(),
            scheduler: self.scheduler.stats(),
            circuit: self.circuit.snapshot(),
            pool: self.pool.stats(),
        }
    }

    pub fn register_run(&self, run_id: String, entry: RunEntry) {
        self.runs.lock().insert(run_id, entry);
    }

    pub fn set_run_progress_token(&self, run_id: &str, token: NumberOrString) {
        if let Some(entry) = self.runs.lock().get_mut(run_id) {
            entry.progress_token = Some(token);
        }
    }

    pub fn finish_run(&self, run_id: &str) {
        self.runs.lock().remove(run_id);
    }

    pub fn runs(&self) -> Vec<(String, RunEntry)> {
        self.runs.lock().iter().map(|(id, entry)| (id.clone(), entry.clone())).collect()
    }

    /// Cancel one run (by id), or every run. Returns how many were cancelled.
    pub fn cancel_runs(&self, run_id: Option<&str>) -> usize {
        let runs = self.runs.lock();
        let matching = runs.iter().filter(|(id, _)| run_id.is_none_or(|wanted| wanted == *id));
        matching.map(|(_, entry)| entry.cancel.cancel()).count()
    }

    /// Cancel the run reporting progress on `token` (window/workDoneProgress/cancel).
    pub fn cancel_by_progress_token(&self, token: &NumberOrString) -> usize {
        let runs = self.runs.lock();
        let matching = runs.values().filter(|entry| entry.progress_token.as_ref() == Some(token));
        matching.map(|entry| entry.cancel.cancel()).count()
    }
}

fn circuit_config(settings: &Settings) -> CircuitConfig {
    CircuitConfig {
        failure_threshold: settings.circuit_failure_threshold,
        cooldown: std::time::Duration::from_secs(settings.circuit_cooldown_secs),
        ..CircuitConfig::default()
    }
}
