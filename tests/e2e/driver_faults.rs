//! The CLI driver against a CLI that misbehaves: the fault-injection fake (examples/fake_claude.rs).
//! Every fault must end in a typed outcome within bounded time, with no panic and no process left.
// Helpers outside #[test] fns unwrap too: a failed setup step is a failed test.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::cli::{
    ProcInfo, TestHome, fake_claude, leftover_processes, live_processes, wait_for_process,
};
use claude_lsp::claude::args::CliOptions;
use claude_lsp::claude::control::{DenyAll, InitializeRequest};
use claude_lsp::claude::errors::ClaudeError;
use claude_lsp::claude::session::{
    ClaudeSession, RunEvent, RunLimits, RunResult, SessionConfig, run_once,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const GENEROUS: RunLimits = RunLimits { timeout: Duration::from_secs(60), idle_timeout: None };

fn config(home: &TestHome, mode: &str, extra_env: &[(&str, &str)]) -> SessionConfig {
    let mut env = vec![
        ("FAKE_CLAUDE_MODE".to_owned(), mode.to_owned()),
        ("HOME".to_owned(), home.path().display().to_string()),
    ];
    env.extend(extra_env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    SessionConfig {
        binary: fake_claude(),
        options: CliOptions::default(),
        cwd: home.path().to_owned(),
        env,
        handler: Arc::new(DenyAll),
    }
}

/// Run one turn and collect its events.
async fn run(
    config: SessionConfig,
    limits: RunLimits,
) -> (Result<RunResult, ClaudeError>, Vec<RunEvent>, Duration) {
    let started = Instant::now();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let result = run_once(config, "hello", limits, CancellationToken::new(), move |event| {
        sink.lock().unwrap().push(event.clone());
    })
    .await;
    let events = events.lock().unwrap().clone();
    (result, events, started.elapsed())
}

fn texts(events: &[RunEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Text(text) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// No process runs the fake under `home` any more (each test has its own home).
async fn assert_no_fake_left(home: &Path) {
    let binary = fake_claude();
    let home = home.display().to_string();
    let survivors = leftover_processes(
        |p| p.runs(&binary) && p.env_var("HOME").as_deref() == Some(home.as_str()),
        Duration::from_secs(5),
    )
    .await;
    assert!(survivors.is_empty(), "fake CLI processes left behind: {survivors:#?}");
}

#[tokio::test]
async fn normal_turn_succeeds_with_the_flags_and_environment_we_built() {
    let home = TestHome::new();
    let argv_file: PathBuf = home.path().join("argv.txt");
    let argv_path = argv_file.display().to_string();
    let mut config =
        config(&home, "normal", &[("FAKE_CLAUDE_ARGV_FILE", &argv_path), ("CLAUDECODE", "1")]);
    config.options.model = Some("sonnet".into());
    let (result, events, _) = run(config, GENEROUS).await;
    let result = result.unwrap();
    assert_eq!(result.text, "Hello from fake claude.");
    assert_eq!(result.usage.input_tokens, 12);
    assert!(matches!(&events[0], RunEvent::Init { cli_version: Some(v), .. } if v == "2.1.330"));
    assert!(matches!(events.last(), Some(RunEvent::Finished(Ok(_)))));

    let argv: Vec<String> =
        std::fs::read_to_string(&argv_file).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(
        argv,
        [
            "-p",
            "--output-format",
            "stream-json",
            "--input-format",
            "stream-json",
            "--verbose",
            "--model",
            "sonnet",
            "--permission-prompt-tool",
            "stdio"
        ]
    );
    assert_no_fake_left(home.path()).await;
}

#[tokio::test]
async fn the_child_environment_is_prepared() {
    let home = TestHome::new();
    let session =
        ClaudeSession::spawn(config(&home, "normal", &[("CLAUDECODE", "1")])).await.unwrap();
    let process = live_processes().into_iter().find(|p| p.pid == session.pid()).unwrap();
    assert_eq!(process.env_var("CLAUDE_CODE_ENTRYPOINT").as_deref(), Some("sdk-rust-claude-lsp"));
    assert_eq!(process.env_var("CLAUDECODE"), None);
    assert_eq!(process.env_var("FAKE_CLAUDE_MODE").as_deref(), Some("normal"));
    session.shutdown().await;
}

#[tokio::test]
async fn crash_mid_line_is_a_process_crash_with_the_stderr_tail() {
    let home = TestHome::new();
    let (result, events, elapsed) = run(config(&home, "crash_mid_line", &[]), GENEROUS).await;
    match result {
        Err(ClaudeError::ProcessCrashed { code: Some(3), stderr_tail }) => {
            assert!(stderr_tail.contains("simulated crash"), "{stderr_tail}");
        }
        other => panic!("expected a crash, got {other:?}"),
    }
    assert!(matches!(events.last(), Some(RunEvent::Finished(Err(_)))));
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_no_fake_left(home.path()).await;
}

#[tokio::test]
async fn garbage_lines_are_skipped_and_the_turn_succeeds() {
    let home = TestHome::new();
    let (result, events, _) = run(config(&home, "garbage", &[]), GENEROUS).await;
    assert_eq!(result.unwrap().text, "Hello from fake claude.");
    assert_eq!(texts(&events), ["Hello from fake claude."]);
    let others: Vec<&Value> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Other(raw) => Some(raw),
            _ => None,
        })
        .collect();
    assert_eq!(others.len(), 2, "{others:?}");
    assert_eq!(others[0]["type"], "a_kind_from_the_future");
    assert_eq!(others[1], &serde_json::json!([1, 2, 3]));
}

#[tokio::test]
async fn a_64_mb_line_is_delivered_intact() {
    let home = TestHome::new();
    let (result, events, _) = run(config(&home, "huge_line", &[]), GENEROUS).await;
    assert!(result.is_ok(), "{result:?}");
    let text = texts(&events);
    assert_eq!(text.len(), 1);
    assert_eq!(text[0].len(), 64 * 1024 * 1024);
    assert!(text[0].bytes().all(|b| b == b'x'));
}

#[tokio::test]
async fn silence_hits_the_idle_timeout_and_the_process_is_killed() {
    let home = TestHome::new();
    let limits =
        RunLimits { timeout: Duration::from_secs(60), idle_timeout: Some(Duration::from_secs(1)) };
    let (result, _, elapsed) = run(config(&home, "silence", &[]), limits).await;
    assert_eq!(result, Err(ClaudeError::Timeout { after: Duration::from_secs(1), idle: true }));
    // idle 1 s + an unanswered interrupt (2 s) + stdin EOF ignored (2 s) + SIGTERM.
    assert!(elapsed < Duration::from_secs(9), "took {elapsed:?}");
    assert_no_fake_left(home.path()).await;
}

#[tokio::test]
async fn silence_hits_the_run_timeout() {
    let home = TestHome::new();
    let limits = RunLimits { timeout: Duration::from_millis(800), idle_timeout: None };
    let (result, _, elapsed) = run(config(&home, "silence", &[]), limits).await;
    assert_eq!(
        result,
        Err(ClaudeError::Timeout { after: Duration::from_millis(800), idle: false })
    );
    assert!(elapsed < Duration::from_secs(9), "took {elapsed:?}");
    assert_no_fake_left(home.path()).await;
}

#[tokio::test]
async fn cancelling_a_silent_run_kills_the_process() {
    let home = TestHome::new();
    let config = config(&home, "silence", &[]);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    // Cancel once the fake runs (it never writes anything to wait for).
    let fake = fake_claude();
    let home_text = home.path().display().to_string();
    let ours = |p: &ProcInfo| p.runs(&fake) && p.env_var("HOME").as_deref() == Some(&home_text);
    let cancel_once_running = async {
        wait_for_process(ours, Duration::from_secs(60)).await;
        trigger.cancel();
    };
    let started = Instant::now();
    let (result, ()) =
        tokio::join!(run_once(config, "hi", GENEROUS, cancel, |_| {}), cancel_once_running);
    assert_eq!(result, Err(ClaudeError::Cancelled));
    assert!(started.elapsed() < Duration::from_secs(9), "took {:?}", started.elapsed());
    assert_no_fake_left(home.path()).await;
}

#[tokio::test]
async fn slow_drip_still_delivers_the_message() {
    let home = TestHome::new();
    let limits =
        RunLimits { timeout: Duration::from_secs(60), idle_timeout: Some(Duration::from_secs(5)) };
    let (result, events, _) =
        run(config(&home, "slow_drip", &[("FAKE_CLAUDE_DRIP_MS", "1")]), limits).await;
    assert_eq!(result.unwrap().text, "Hello from fake claude.");
    assert_eq!(texts(&events), ["Hello from fake claude."]);
}

#[tokio::test]
async fn eof_mid_line_is_a_clear_error() {
    let home = TestHome::new();
    let (result, _, elapsed) = run(config(&home, "eof_mid_line", &[]), GENEROUS).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), "protocol", "{err:?}");
    assert!(err.to_string().contains("middle of a line"), "{err}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[tokio::test]
async fn one_session_serves_several_turns_and_refuses_overlap() {
    let home = TestHome::new();
    let session = ClaudeSession::spawn(config(&home, "normal", &[])).await.unwrap();
    let response =
        session.initialize(InitializeRequest::default(), Duration::from_secs(10)).await.unwrap();
    assert_eq!(response["output_style"], "default");
    for _ in 0..2 {
        let turn = session.send("again").await.unwrap();
        assert_eq!(turn.finish().await.unwrap().text, "Hello from fake claude.");
    }
    assert!(session.session_id().is_some());
    assert_eq!(session.cli_version().as_deref(), Some("2.1.330"));
    let first = session.send("one").await.unwrap();
    let busy = session.send("two").await;
    assert!(matches!(busy, Err(ClaudeError::Busy)), "{busy:?}");
    first.finish().await.unwrap();
    // The fake refuses control requests it does not model, as the real CLI refuses unknown ones.
    let refused = session.set_model(Some("sonnet")).await.unwrap_err();
    assert!(refused.to_string().contains("Unsupported control request subtype"), "{refused}");
    let pid = session.pid();
    session.shutdown().await;
    assert!(live_processes().iter().all(|p| p.pid != pid));
}

#[tokio::test]
async fn a_dropped_session_takes_its_process_with_it() {
    let home = TestHome::new();
    let session = ClaudeSession::spawn(config(&home, "silence", &[])).await.unwrap();
    assert!(session.is_alive());
    drop(session);
    assert_no_fake_left(home.path()).await;
}

#[tokio::test]
async fn a_missing_binary_or_directory_is_reported() {
    let home = TestHome::new();
    let mut missing = config(&home, "normal", &[]);
    missing.binary = home.path().join("no-such-claude");
    let err = ClaudeSession::spawn(missing).await.unwrap_err();
    assert_eq!(err.kind(), "cli_not_found");
    assert!(err.to_string().contains("no-such-claude"), "{err}");

    let mut no_cwd = config(&home, "normal", &[]);
    no_cwd.cwd = home.path().join("gone");
    let err = ClaudeSession::spawn(no_cwd).await.unwrap_err();
    assert_eq!(err.kind(), "invalid_options");

    let mut bad_options = config(&home, "normal", &[]);
    bad_options.options.max_turns = Some(0);
    assert_eq!(ClaudeSession::spawn(bad_options).await.unwrap_err().kind(), "invalid_options");
}

#[tokio::test]
async fn secrets_in_stderr_never_reach_the_error() {
    let home = TestHome::new();
    // The fake names an unknown FAKE_CLAUDE_MODE on stderr: make that name hold secrets.
    let secret = "my-very-secret-key-123";
    let mode = format!("sk-ant-api03-LEAKED {secret}");
    let (result, _, _) =
        run(config(&home, &mode, &[("ANTHROPIC_API_KEY", secret)]), GENEROUS).await;
    let err = result.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("unknown FAKE_CLAUDE_MODE"), "{text}");
    assert!(!text.contains("LEAKED") && !text.contains(secret), "{text}");
}
