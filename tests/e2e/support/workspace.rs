//! A workspace for end-to-end tests: a temp git repository, a temp HOME and cache dir, a fake
//! API, and an initialized in-process claude-lsp pointed at the real CLI.

use std::path::{Path, PathBuf};
use std::time::Duration;

use claude_lsp::base::process::ProcessSpec;
use claude_lsp::lsp_server::server::ServerOptions;
use claude_lsp::protocol::lsp::DidChangeConfigurationParams;
use claude_lsp::protocol::lsp::notification::DidChangeConfiguration;
use serde_json::{Value, json};

use super::cli::{TestHome, real_cli};
use super::fake_api::{FakeApi, RecordedRequest, Script};
use super::lsp_client::{TestClient, file_uri};

pub struct Workspace {
    pub api: FakeApi,
    pub client: TestClient,
    pub home: TestHome,
    dir: tempfile::TempDir,
    cache: tempfile::TempDir,
}

/// [`Workspace::settings_section`].
fn settings_section(api: &FakeApi, home: &TestHome, settings: Value) -> Value {
    let mut env = api.cli_env_setting(home.path());
    let mut settings = settings;
    let settings = settings.as_object_mut().expect("settings are a JSON object");
    if let Some(Value::Object(extra_env)) = settings.remove("env") {
        env.extend(extra_env);
    }
    let mut section = json!({"cliPath": real_cli(), "env": env});
    section.as_object_mut().unwrap().extend(std::mem::take(settings));
    section
}

impl Workspace {
    /// A git repository holding `files` (committed), and a server initialized with
    /// `capabilities` and [`Workspace::settings_section`] of `settings`.
    pub async fn start(
        files: &[(&str, &str)],
        script: impl Into<Script>,
        capabilities: Value,
        settings: Value,
    ) -> Self {
        let dir = git_repo(files).await;
        let api = FakeApi::start(script).await;
        let home = TestHome::new();
        let cache = tempfile::Builder::new().prefix("claude-lsp-cache-").tempdir().unwrap();
        let mut client = TestClient::start(ServerOptions {
            cache_dir: cache.path().to_path_buf(),
            ..ServerOptions::default()
        });
        let options = settings_section(&api, &home, settings);
        client.initialize(dir.path(), capabilities, options).await;
        Self { api, client, home, dir, cache }
    }

    /// The `claude` settings section a client would send: the real CLI on the fake API, and
    /// `settings` over it (an `env` object adds to the fake API's env).
    pub fn settings_section(&self, settings: Value) -> Value {
        settings_section(&self.api, &self.home, settings)
    }

    /// The user changes the settings to [`Workspace::settings_section`] of `extra`: the client
    /// answers the server's pull with it and says so by `didChangeConfiguration`.
    pub async fn change_settings(&mut self, extra: Value) {
        let section = self.settings_section(extra);
        self.client.set_behaviour(|b| b.configuration = section);
        self.client
            .notify::<DidChangeConfiguration>(DidChangeConfigurationParams {
                settings: Value::Null,
            })
            .await;
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn cache_dir(&self) -> &Path {
        self.cache.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn uri(&self, name: &str) -> String {
        file_uri(&self.path(name))
    }

    /// An action request (`claude/refactor`, …) on `file` with `instruction`.
    pub async fn act(
        &mut self,
        method: &str,
        file: &str,
        instruction: &str,
    ) -> Result<Value, Value> {
        let params = json!({"textDocument": {"uri": self.uri(file)}, "instruction": instruction});
        self.client.request_json(method, params).await
    }

    /// Drop the notifications a test does not examine, once every run's progress has ended
    /// (the client checks none is left unread).
    pub async fn drain(&self) {
        self.client.drain().await;
        self.client.take_notifications("textDocument/publishDiagnostics");
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }
}

/// A temp git repository holding `files`, committed.
pub async fn git_repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("claude-lsp-ws-").tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    git(dir.path(), &["init", "-q"]).await;
    git(dir.path(), &["add", "-A"]).await;
    let identity = ["-c", "user.name=t", "-c", "user.email=t@t"];
    git(dir.path(), &[&identity[..], &["commit", "-qm", "init", "--allow-empty"]].concat()).await;
    dir
}

/// Run git in `dir` (failing the test if it fails); its stdout.
pub async fn git(dir: &Path, args: &[&str]) -> String {
    let out = ProcessSpec::new("git", dir)
        .args(args.iter().copied())
        .output(Duration::from_secs(30))
        .await
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", out.stderr);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The CLI's working directory as it told the model: an environment block names it, in the
/// system prompt (older CLIs) or in a system message (newer ones).
pub fn cli_cwd(request: &RecordedRequest) -> String {
    const MARKER: &str = "Primary working directory: ";
    let body = request.body.to_string();
    let start = body
        .find(MARKER)
        .unwrap_or_else(|| panic!("no working directory in the request: {body:.2000}"))
        + MARKER.len();
    // The body is JSON text: the path ends at the escaped line break.
    let rest = &body[start..];
    rest[..rest.find(['\\', '"']).unwrap_or(rest.len())].to_owned()
}
