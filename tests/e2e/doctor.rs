//! `claude-lsp doctor` as a user runs it: the real binary, with the real CLI and the fake API,
//! or with no CLI anywhere.
use std::path::Path;
use std::time::Duration;

use claude_lsp::base::process::{ProcessOutput, ProcessSpec};

use crate::support::cli::{TestHome, expected_cli_version, real_cli};
use crate::support::fake_api::{CLI_ENV_TO_REMOVE, DUMMY_API_KEY, FakeApi, Turn};

const TIMEOUT: Duration = Duration::from_secs(120);

/// `claude-lsp doctor <args>` with HOME, the cache and the PATH under `home`, none of the
/// developer's Anthropic variables inherited, plus `env`.
async fn doctor(home: &TestHome, env: &[(String, String)], args: &[&str]) -> (i32, String) {
    let spec = CLI_ENV_TO_REMOVE
        .iter()
        .chain(&["ANTHROPIC_API_KEY", "CLAUDE_LSP_CLI", "CLAUDE_LSP_LOG", "CLAUDE_CONFIG_DIR"])
        .fold(ProcessSpec::new(env!("CARGO_BIN_EXE_claude-lsp"), home.path()), |spec, key| {
            spec.env_remove(key)
        })
        .arg("doctor")
        .args(args.iter().copied())
        .env("HOME", home.path())
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .envs(env.iter().map(|(key, value)| (key.as_str(), value.as_str())));
    let output: ProcessOutput = spec.output(TIMEOUT).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), format!("{stdout}{}", output.stderr))
}

/// A PATH with no `claude` (and no npm) on it, and an npm prefix without one either.
fn empty_search_path(home: &Path) -> Vec<(String, String)> {
    let empty = home.join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let empty = empty.display().to_string();
    vec![("PATH".to_owned(), empty.clone()), ("npm_config_prefix".to_owned(), empty)]
}

#[tokio::test]
async fn a_missing_cli_is_reported_with_where_we_looked_and_how_to_install() {
    let home = TestHome::new();
    let secret = "sk-ant-api03-doctor-must-never-print-this";
    let mut env = empty_search_path(home.path());
    env.push(("ANTHROPIC_API_KEY".to_owned(), secret.to_owned()));
    let (code, report) = doctor(&home, &env, &[]).await;
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("[fail] Claude Code CLI   not found. Looked in:"), "{report}");
    assert!(
        report.contains(&format!("{}/.local/bin/claude (not found)", home.path().display())),
        "{report}"
    );
    assert!(report.contains("npm install -g @anthropic-ai/claude-code"), "{report}");
    // What credentials exist is said by name; the secret itself never appears.
    assert!(report.contains("ANTHROPIC_API_KEY is set"), "{report}");
    assert!(!report.contains(secret), "the API key leaked: {report}");
    assert!(report.contains("[ok]   Cache directory"), "{report}");
    // The platform, its sandbox, and what it lacks.
    assert!(
        report.contains(&format!(
            "[ok]   Platform          linux {} (tested end to end)",
            std::env::consts::ARCH
        )),
        "{report}"
    );
    assert!(report.contains("sandbox: bubblewrap"), "{report}");
    assert!(report.contains("not supported: nothing known"), "{report}");
    // No bwrap or socat on that PATH: what it means and what to do.
    assert!(
        report.contains("[warn] Sandbox           unavailable (bwrap and socat not found on PATH): Bash is refused. Install bubblewrap and socat"),
        "{report}"
    );

    let (code, report) = doctor(&home, &env, &["--cli", "/nonexistent/claude"]).await;
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("/nonexistent/claude (not found)"), "{report}");
}

#[tokio::test]
async fn with_the_cli_and_a_key_every_check_passes_and_smoke_runs_a_turn() {
    let api = FakeApi::start(Turn::text("ok")).await;
    let home = TestHome::new();
    let cli = real_cli().display().to_string();
    let mut env = empty_search_path(home.path());
    env.extend(api.cli_env(home.path()));
    let (code, report) = doctor(&home, &env, &["--smoke", "--cli", &cli]).await;
    assert_eq!(code, 0, "{report}");
    let lines: Vec<&str> = report.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[ok]   Claude Code CLI") && l.contains("named by --cli")),
        "{report}"
    );
    assert!(lines.iter().any(|l| l.starts_with(&format!("[ok]   Version           {}", expected_cli_version()))), "{report}");
    assert!(
        lines.contains(
            &"[ok]   Authentication    API key from ANTHROPIC_API_KEY (ANTHROPIC_API_KEY is set)"
        ),
        "{report}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("[ok]   Smoke test        answered \"ok\"")),
        "{report}"
    );
    assert!(!report.contains(DUMMY_API_KEY), "the API key leaked: {report}");
    assert_eq!(api.requests().len(), 1, "the smoke test is one turn; the other checks call no API");
}

#[tokio::test]
async fn without_credentials_the_cli_confirms_nobody_is_logged_in() {
    let api = FakeApi::start(Turn::text("unused")).await;
    let home = TestHome::new();
    let cli = real_cli().display().to_string();
    let mut env = empty_search_path(home.path());
    env.extend(api.cli_env(home.path()).into_iter().filter(|(key, _)| key != "ANTHROPIC_API_KEY"));
    let (code, report) = doctor(&home, &env, &["--cli", &cli]).await;
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("[fail] Authentication    not logged in"), "{report}");
    assert!(report.contains("/login"), "{report}");
    assert!(api.requests().is_empty());
}
