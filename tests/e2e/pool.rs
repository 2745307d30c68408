//! The warm pool against the real CLI and the fake API: a matching run takes the warm process,
//! the pool refills after each use, a non-matching run spawns its own, and nothing survives the
//! pool's (or the server's) shutdown.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use claude_lsp::claude::args::CliOptions;
use claude_lsp::claude::control::{DenyAll, InitializeRequest};
use claude_lsp::claude::session::{ClaudeSession, RunLimits, RunResult, SessionConfig, run_turn};
use claude_lsp::engine::pool::{
    MAX_KEYS, MAX_USES, PoolLimits, PooledSession, Returnable, WarmPool,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::cli::{ProcInfo, TestHome, cli_sessions, leftover_processes, real_cli};
use crate::support::fake_api::{FakeApi, RecordedRequest, Script, Turn};
use crate::support::lsp_client::full_capabilities;
use crate::support::wait::{eventually, poll};
use crate::support::workspace::{Workspace, cli_cwd};

const LIB: &str = "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";
const WAIT: Duration = Duration::from_secs(60);

fn limits() -> RunLimits {
    RunLimits { timeout: WAIT, idle_timeout: None }
}

fn config(api: &FakeApi, home: &TestHome, cwd: &Path) -> SessionConfig {
    SessionConfig {
        binary: real_cli(),
        options: CliOptions {
            tools: Some(vec!["Read".into()]),
            include_partial_messages: true,
            ..CliOptions::default()
        },
        cwd: cwd.to_path_buf(),
        env: api.cli_env(home.path()),
        handler: Arc::new(DenyAll),
    }
}

/// Whether `process` is a CLI that runs with `home` as its HOME (this test's, and only those).
fn is_ours(home: &Path) -> impl Fn(&ProcInfo) -> bool {
    let (home, cli) = (home.display().to_string(), real_cli());
    move |process| process.runs(&cli) && process.env_var("HOME").as_deref() == Some(home.as_str())
}

fn pids(processes: &[ProcInfo]) -> Vec<u32> {
    let mut pids: Vec<u32> = processes.iter().map(|process| process.pid).collect();
    pids.sort_unstable();
    pids
}

fn cwd_of(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

#[tokio::test]
async fn a_matching_run_takes_the_warm_process_and_the_pool_refills_after() {
    let api = FakeApi::start(Turn::text("Warm answer.")).await;
    let home = TestHome::new();
    let workspace = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let pool = WarmPool::new(PoolLimits { per_key: 1, idle: Duration::from_secs(600) });
    let init = InitializeRequest::default();
    let cancel = CancellationToken::new();

    pool.fill(config(&api, &home, workspace.path()));
    pool.settled().await;
    let stats = pool.stats();
    assert_eq!((stats.warm, stats.filling), (1, 0), "{stats:?}");
    let warm_pid = pool.warm_pids()[0];
    assert_eq!(pids(&cli_sessions(home.path())), [warm_pid]);
    assert!(api.requests().is_empty(), "warming up must not call the API");

    let pooled = pool.acquire(config(&api, &home, workspace.path()), &init, &cancel).await.unwrap();
    assert!(pooled.was_warm());
    assert_eq!(pooled.session().pid(), warm_pid);
    assert_eq!(pool.stats().warm, 0, "a taken process leaves the pool");
    let result = run_turn(pooled.session(), "hello", limits(), &cancel, &mut |_| {}).await.unwrap();
    assert_eq!(result.text, "Warm answer.");
    pooled.finish();

    // The used process goes (it holds that conversation); a fresh one takes its place.
    let survivors = leftover_processes(|p| p.pid == warm_pid, WAIT).await;
    assert!(survivors.is_empty(), "the used process survived: {survivors:?}");
    let refilled = eventually("the pool refilled", async || {
        let pids = pool.warm_pids();
        (pool.stats().warm == 1).then(|| pids[0])
    })
    .await;
    assert_ne!(refilled, warm_pid);

    // Another working directory is another key: that run spawns its own process.
    let other = pool.acquire(config(&api, &home, elsewhere.path()), &init, &cancel).await.unwrap();
    assert!(!other.was_warm());
    assert_ne!(other.session().pid(), refilled);
    let result = run_turn(other.session(), "hi", limits(), &cancel, &mut |_| {}).await.unwrap();
    assert_eq!(result.text, "Warm answer.");
    assert_eq!(pool.warm_pids(), [refilled], "the other run must not take the warm process");
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.misses), (1, 1), "{stats:?}");
    other.finish();

    pool.shutdown().await;
    let survivors = leftover_processes(is_ours(home.path()), WAIT).await;
    assert!(survivors.is_empty(), "processes survived the pool's shutdown: {survivors:?}");
    assert_eq!(pool.stats().warm, 0);
}

#[tokio::test]
async fn a_warm_process_whose_directory_was_recreated_is_not_used() {
    let api = FakeApi::start(Turn::text("Fresh.")).await;
    let home = TestHome::new();
    let root = tempfile::tempdir().unwrap();
    let mirror = root.path().join("mirror");
    std::fs::create_dir(&mirror).unwrap();
    let pool = WarmPool::new(PoolLimits { per_key: 1, idle: Duration::from_secs(600) });
    pool.fill(config(&api, &home, &mirror));
    pool.settled().await;
    let stale_pid = pool.warm_pids()[0];

    // Same path, new directory: the warm process still sits in the deleted one.
    std::fs::rename(&mirror, root.path().join("old")).unwrap();
    std::fs::create_dir(&mirror).unwrap();
    let cancel = CancellationToken::new();
    let pooled = pool
        .acquire(config(&api, &home, &mirror), &InitializeRequest::default(), &cancel)
        .await
        .unwrap();
    assert!(!pooled.was_warm());
    assert_eq!(cwd_of(pooled.session().pid()).unwrap(), mirror.canonicalize().unwrap());
    let result = run_turn(pooled.session(), "hello", limits(), &cancel, &mut |_| {}).await.unwrap();
    assert_eq!(result.text, "Fresh.");
    pooled.finish();
    let survivors = leftover_processes(|p| p.pid == stale_pid, WAIT).await;
    assert!(survivors.is_empty(), "the stale warm process was not stopped");
    pool.shutdown().await;
    let survivors = leftover_processes(is_ours(home.path()), WAIT).await;
    assert!(survivors.is_empty(), "{survivors:?}");
}

/// The model answers after a pause, so a test can look at the processes while a run is in flight.
fn slow_script(request: &RecordedRequest) -> Turn {
    let path = format!("{}/src/lib.rs", cli_cwd(request));
    let edit =
        json!({"file_path": path, "old_string": "fn add(a: i32", "new_string": "fn sum(a: i32"});
    let is_edit_run = request.tool_names().iter().any(|tool| tool == "Edit");
    match (is_edit_run, request.turn_index()) {
        (false, _) => Turn::delayed(Duration::from_millis(1500), Turn::text("It adds.")),
        (true, 0) => Turn::delayed(
            Duration::from_millis(1500),
            Turn::tool_use("Read", json!({"file_path": path})),
        ),
        (true, 1) => Turn::tool_use("Edit", edit),
        (true, _) => Turn::text("Renamed."),
    }
}

#[tokio::test]
async fn the_server_serves_runs_from_warm_processes_and_stops_them_at_shutdown() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Script::from_fn(slow_script),
        full_capabilities(),
        json!({"warmPool": 1}),
    )
    .await;
    let home = ws.home.path().to_path_buf();
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, LIB).await;

    // `initialized` warmed one process in the workspace (the didOpen of the same workspace adds
    // none). Wait until it is the only one and has settled.
    let workspace = ws.root().canonicalize().unwrap();
    let warm = eventually("a warm process runs in the workspace", async || {
        let processes = cli_sessions(&home);
        (processes.len() == 1 && cwd_of(processes[0].pid).as_deref() == Some(workspace.as_path()))
            .then(|| processes[0].pid)
    })
    .await;
    assert!(ws.api.requests().is_empty(), "warming up must not call the API");

    // A read-only run: while the model thinks, the warm process is the only CLI there is.
    let (_, answer) = ws
        .client
        .start_request(
            "claude/analyze",
            json!({"textDocument": {"uri": uri}, "workDoneToken": "a1"}),
        )
        .await;
    ws.api.wait_for_requests(1, WAIT).await;
    assert_eq!(
        pids(&cli_sessions(&home)),
        [warm],
        "the run spawned a process instead of taking the warm one"
    );
    let result = crate::support::lsp_client::TestClient::answer(answer).await.unwrap();
    assert!(result["text"].as_str().unwrap().starts_with("It adds."), "{result}");
    // The pool starts a replacement in the workspace. (The used process is not the pool's any
    // more: it ends, or lives on as the conversation's process for a follow-up.)
    eventually("the read-only key is refilled", async || {
        pids(&cli_sessions(&home))
            .iter()
            .any(|pid| *pid != warm && cwd_of(*pid).as_deref() == Some(workspace.as_path()))
            .then_some(())
    })
    .await;

    // The first edit run creates the mirror and spawns there; the pool then learns that key.
    let refactor = json!({"textDocument": {"uri": uri}, "instruction": "rename add to sum"});
    let first = ws.client.request_json("claude/refactor", refactor.clone()).await.unwrap();
    assert_eq!(first["text"], "Renamed.");
    let edit_request =
        ws.api.requests().into_iter().find(|r| r.tool_names().iter().any(|t| t == "Edit"));
    let mirror = PathBuf::from(cli_cwd(&edit_request.unwrap()));
    assert_ne!(mirror, workspace);
    let in_mirror = |pids: &[u32]| {
        pids.iter().filter(|pid| cwd_of(**pid).as_deref() == Some(mirror.as_path())).count()
    };
    // Settled, not just warmed: the check below is that the next run spawns nothing.
    let before_second = settled_pids(&home).await;
    assert!(
        in_mirror(&before_second) >= 1,
        "no process was warmed in the mirror: {before_second:?}"
    );

    // The second edit run takes the warm mirror process: nothing is spawned while it runs.
    let requests_before = ws.api.requests().len();
    let (_, answer) = ws.client.start_request("claude/refactor", refactor).await;
    ws.api.wait_for_requests(requests_before + 1, WAIT).await;
    assert_eq!(
        pids(&cli_sessions(&home)),
        before_second,
        "the second edit run spawned a process instead of taking the warm one"
    );
    let second = crate::support::lsp_client::TestClient::answer(answer).await.unwrap();
    assert_eq!(second["edit"], first["edit"]);

    shut_down(ws).await;
}

/// Shut the server down (leaving no notification unread) and check that `shutdown` waited for
/// the pool: nothing of this test's is left.
async fn shut_down(ws: Workspace) {
    let home = ws.home.path().to_path_buf();
    ws.client.drain().await;
    ws.client.take_notifications("textDocument/publishDiagnostics");
    ws.client.finish().await;
    let survivors = leftover_processes(is_ours(&home), Duration::from_secs(5)).await;
    assert!(survivors.is_empty(), "CLI processes survived the server's shutdown: {survivors:?}");
}

/// Our CLI processes once the set has stopped changing for a second (a refill spawns its process
/// right away; only its start-up takes longer).
async fn settled_pids(home: &Path) -> Vec<u32> {
    let deadline = Instant::now() + WAIT;
    let mut last = pids(&cli_sessions(home));
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = pids(&cli_sessions(home));
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= Duration::from_secs(1) {
            return last;
        }
        assert!(Instant::now() < deadline, "our CLI processes never settled: {last:?}");
    }
}

/// A pool of one process per key, with `idle` as its poolIdleSecs.
fn pool_of_one(idle: Duration) -> WarmPool {
    WarmPool::new(PoolLimits { per_key: 1, idle })
}

/// The warm process of a pool of one, once there is exactly one.
async fn the_warm_pid(pool: &WarmPool) -> u32 {
    eventually("one warm process", async || {
        let pids = pool.warm_pids();
        (pool.stats().filling == 0 && pids.len() == 1).then(|| pids[0])
    })
    .await
}

/// A pool of one process per key in one workspace, filled, answering "Answer." to every turn.
struct OneKey {
    api: FakeApi,
    home: TestHome,
    workspace: tempfile::TempDir,
    pool: WarmPool,
    cancel: CancellationToken,
}

impl OneKey {
    async fn start() -> Self {
        let key = Self {
            api: FakeApi::start(Turn::text("Answer.")).await,
            home: TestHome::new(),
            workspace: tempfile::tempdir().unwrap(),
            pool: pool_of_one(Duration::from_secs(600)),
            cancel: CancellationToken::new(),
        };
        key.pool.fill(key.config());
        key
    }

    fn config(&self) -> SessionConfig {
        config(&self.api, &self.home, self.workspace.path())
    }

    /// Take a process for a new conversation and run one turn in it.
    async fn converse(&self, prompt: &str) -> (PooledSession, RunResult) {
        let init = InitializeRequest::default();
        let taken = self.pool.acquire(self.config(), &init, &self.cancel).await.unwrap();
        let result =
            run_turn(taken.session(), prompt, limits(), &self.cancel, &mut |_| {}).await.unwrap();
        (taken, result)
    }

    /// The warm process serves a conversation that keeps it, as a live conversation does: its
    /// key is asked for a replacement. Returns its pid and how it goes back.
    async fn kept_by_a_conversation(&self) -> (u32, ClaudeSession, Returnable) {
        let used = the_warm_pid(&self.pool).await;
        let (taken, _) = self.converse("q").await;
        let (session, _, returnable) = taken.into_parts();
        let mut returnable = returnable.expect("a pooled run's process can go back");
        returnable.refill();
        (used, session, returnable)
    }

    /// Shut the pool down and check that none of its processes is left.
    async fn finish(self) {
        self.pool.shutdown().await;
        let survivors = leftover_processes(is_ours(self.home.path()), WAIT).await;
        assert!(survivors.is_empty(), "{survivors:?}");
    }
}

/// The text of the user's messages in an API request.
fn user_text(request: &RecordedRequest) -> String {
    let messages = request.body["messages"].as_array().cloned().unwrap_or_default();
    messages.iter().filter(|m| m["role"] == "user").map(|m| m["content"].to_string()).collect()
}

#[tokio::test]
async fn a_used_process_comes_back_cleared_and_serves_the_next_conversation() {
    let key = OneKey::start().await;
    let warm_pid = the_warm_pid(&key.pool).await;

    let (first, first_result) = key.converse("first question").await;
    first.give_back(true);
    assert_eq!(the_warm_pid(&key.pool).await, warm_pid, "the used process should be back");
    assert_eq!(key.pool.stats().recycled, 1);
    assert_eq!(pids(&cli_sessions(key.home.path())), [warm_pid], "giving back spawns nothing");

    let (second, second_result) = key.converse("second question").await;
    assert!(second.was_warm());
    assert_eq!(second.session().pid(), warm_pid);
    assert_ne!(second_result.session_id, first_result.session_id, "a new conversation");
    let seen = user_text(key.api.requests().last().unwrap());
    assert!(seen.contains("second question"), "{seen}");
    assert!(!seen.contains("first question"), "the earlier conversation leaked: {seen}");
    // Measured from the totals the pool hands over, the second conversation cost what the first
    // did (newer CLIs restart their totals at /clear; 2.1.197 keeps them).
    let own_cost = second_result.cost_usd - second.totals().cost_usd;
    assert!((own_cost - first_result.cost_usd).abs() < 1e-9, "{own_cost} vs {first_result:?}");
    second.finish();
    key.finish().await;
}

#[tokio::test]
async fn a_process_is_not_given_back_after_a_stateful_tool_or_its_last_use() {
    let key = OneKey::start().await;
    let mut pid = the_warm_pid(&key.pool).await;

    // A conversation that ran Bash (say) holds a shell: the process ends and a fresh one comes.
    let (used, _) = key.converse("q").await;
    used.give_back(false);
    let replaced = the_warm_pid(&key.pool).await;
    assert_ne!(replaced, pid);
    assert!(leftover_processes(|p| p.pid == pid, WAIT).await.is_empty());
    pid = replaced;

    // A clean process serves MAX_USES conversations, then makes way for a fresh one.
    for conversation in 1..=MAX_USES {
        let (taken, _) = key.converse("q").await;
        assert_eq!(taken.session().pid(), pid, "conversation {conversation}");
        taken.give_back(true);
        let now = the_warm_pid(&key.pool).await;
        if conversation < MAX_USES {
            assert_eq!(now, pid, "conversation {conversation}: the process should be back");
        } else {
            assert_ne!(now, pid, "after {conversation} conversations the process must go");
        }
    }
    assert_eq!(key.pool.stats().recycled, u64::from(MAX_USES) - 1);
    key.finish().await;
}

#[tokio::test]
async fn a_used_process_let_go_by_its_conversation_takes_a_fresh_ones_place() {
    let key = OneKey::start().await;
    // A conversation keeps the process; the key is topped up with a fresh one meanwhile.
    let (used, session, returnable) = key.kept_by_a_conversation().await;
    let fresh = the_warm_pid(&key.pool).await;
    assert_ne!(fresh, used);

    // The conversation lets it go: the used process, quicker to answer, replaces the fresh one.
    returnable.give_back(session, true);
    eventually("the used process is back", async || {
        (key.pool.warm_pids() == [used] && key.pool.stats().filling == 0).then_some(())
    })
    .await;
    assert!(leftover_processes(|p| p.pid == fresh, WAIT).await.is_empty(), "the fresh one stays");
    assert_eq!(key.pool.stats().recycled, 1);
    key.finish().await;
}

#[tokio::test]
async fn warm_processes_stop_after_pool_idle_secs_and_beyond_max_keys() {
    let api = FakeApi::start(Turn::text("unused")).await;
    let home = TestHome::new();
    let dirs: Vec<tempfile::TempDir> =
        (0..=MAX_KEYS).map(|_| tempfile::tempdir().unwrap()).collect();

    // One key more than MAX_KEYS: the least recently used key and its process go.
    let pool = pool_of_one(Duration::from_secs(600));
    for dir in &dirs {
        pool.fill(config(&api, &home, dir.path()));
        pool.settled().await;
    }
    let cwds: Vec<PathBuf> = eventually("MAX_KEYS warm processes", async || {
        let warm = pool.warm_pids();
        (warm.len() == MAX_KEYS && cli_sessions(home.path()).len() == warm.len())
            .then(|| warm.iter().filter_map(|pid| cwd_of(*pid)).collect())
    })
    .await;
    let first = dirs[0].path().canonicalize().unwrap();
    assert!(!cwds.contains(&first), "the least recently used key kept its process: {cwds:?}");
    pool.shutdown().await;

    // poolIdleSecs: an unused warm process stops on its own.
    let pool = pool_of_one(Duration::from_secs(1));
    pool.fill(config(&api, &home, dirs[0].path()));
    let pid = the_warm_pid(&pool).await;
    let survivors = leftover_processes(|p| p.pid == pid, WAIT).await;
    assert!(survivors.is_empty(), "the idle warm process kept running");
    assert_eq!(pool.stats().warm, 0);
    pool.shutdown().await;
    assert!(api.requests().is_empty(), "warm processes never call the API");
}

#[tokio::test]
async fn without_live_sessions_the_next_request_takes_the_cleared_process() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::text("It adds."),
        full_capabilities(),
        json!({"warmPool": 1, "liveSessions": 0}),
    )
    .await;
    let home = ws.home.path().to_path_buf();
    let uri = ws.uri("src/lib.rs");
    let warm = eventually("one warm process", async || {
        let processes = cli_sessions(&home);
        (processes.len() == 1).then(|| processes[0].pid)
    })
    .await;
    let mut costs = Vec::new();
    for question in ["what does add do?", "is add pure?"] {
        let params = json!({"textDocument": {"uri": uri}, "instruction": question});
        let result = ws.client.request_json("claude/analyze", params).await.unwrap();
        costs.push(result["metadata"]["costUsd"].as_f64().unwrap());
        assert!(result["text"].as_str().unwrap().starts_with("It adds."), "{result}");
        // Back in the pool once it is cleared: warm again, nothing filling, no other process.
        eventually("the run's process is back in the pool, alone", async || {
            let metrics = ws.client.request_json("claude/metrics", Value::Null).await.unwrap();
            let pool = &metrics["pool"];
            let back = pool["warm"] == 1 && pool["filling"] == 0;
            (back && pids(&cli_sessions(&home)) == [warm]).then_some(())
        })
        .await;
    }
    // Each run is charged its own cost, whatever the reused process cost before.
    assert!(costs[0] > 0.0 && (costs[1] - costs[0]).abs() < 1e-9, "{costs:?}");
    let requests = ws.api.requests();
    let last = user_text(requests.last().unwrap());
    assert!(last.contains("is add pure?"), "{last}");
    assert!(!last.contains("what does add do?"), "the earlier conversation leaked: {last}");
    let metrics = ws.client.request_json("claude/metrics", Value::Null).await.unwrap();
    assert_eq!(metrics["pool"]["recycled"], 2, "{metrics}");

    shut_down(ws).await;
}

#[tokio::test]
async fn a_used_process_coming_back_cancels_the_replacement_still_starting() {
    let key = OneKey::start().await;
    // A conversation keeps the process; its key starts a replacement.
    let (used, session, returnable) = key.kept_by_a_conversation().await;
    let starting = eventually("the replacement's process runs", async || {
        let others: Vec<u32> =
            pids(&cli_sessions(key.home.path())).into_iter().filter(|pid| *pid != used).collect();
        (others.len() == 1).then(|| others[0])
    })
    .await;
    let stats = key.pool.stats();
    assert_eq!((stats.warm, stats.filling), (0, 1), "still starting: {stats:?}");

    // The conversation lets its process go before the replacement is ready: the used process
    // takes its place and the start is cancelled, its process stopped.
    returnable.give_back(session, true);
    eventually("the used process is back, alone", async || {
        let back = key.pool.warm_pids() == [used] && key.pool.stats().filling == 0;
        (back && pids(&cli_sessions(key.home.path())) == [used]).then_some(())
    })
    .await;
    assert!(leftover_processes(|p| p.pid == starting, WAIT).await.is_empty());
    let stats = key.pool.stats();
    assert_eq!((stats.recycled, stats.started, stats.discarded), (1, 2, 1), "{stats:?}");
    key.finish().await;
}

/// The pool's counts as `claude/metrics` reports them, once nothing is being started or cleared.
async fn settled_pool(ws: &mut Workspace) -> Value {
    let client = &mut ws.client;
    eventually("the pool settles", async || {
        let metrics = client.request_json("claude/metrics", Value::Null).await.unwrap();
        (metrics["pool"]["filling"] == 0).then(|| metrics["pool"].clone())
    })
    .await
}

#[tokio::test]
async fn sequential_requests_at_default_settings_start_only_processes_they_use() {
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::text("It adds."),
        full_capabilities(),
        json!({}),
    )
    .await;
    let home = ws.home.path().to_path_buf();
    let uri = ws.uri("src/lib.rs");
    const REQUESTS: u64 = 6;
    for question in 0..REQUESTS {
        let params = json!({"textDocument": {"uri": uri}, "instruction": format!("q{question}")});
        let result = ws.client.request_json("claude/analyze", params).await.unwrap();
        assert!(result["text"].as_str().unwrap().starts_with("It adds."), "{result}");
    }
    let pool = settled_pool(&mut ws).await;
    // Defaults: warmPool 1, liveSessions 2. The first requests take fresh processes (the warm
    // one, then one refill each while their conversations keep theirs); from the third on, the
    // conversation let go makes way for the new one and its process comes back cleared for the
    // next request, so nothing else starts, and nothing started is thrown away.
    assert_eq!(pool["hits"], REQUESTS, "{pool}");
    assert_eq!(pool["misses"], 0, "{pool}");
    assert_eq!(pool["started"], 3, "{pool}");
    assert_eq!(pool["discarded"], 0, "{pool}");
    assert_eq!(pool["recycled"], REQUESTS - 2, "{pool}");
    assert_eq!(cli_sessions(&home).len(), 3, "one warm process and two conversations' idle");
    shut_down(ws).await;
}

#[tokio::test]
async fn a_burst_beyond_max_concurrent_runs_no_more_than_it_plus_the_warm_pool() {
    const BURST: usize = 8;
    const MAX_CONCURRENT: usize = 4;
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::delayed(Duration::from_millis(500), Turn::text("It adds.")),
        full_capabilities(),
        json!({"maxConcurrent": MAX_CONCURRENT, "warmPool": 1}),
    )
    .await;
    let home = ws.home.path().to_path_buf();
    let uri = ws.uri("src/lib.rs");
    eventually("the warm process", async || (cli_sessions(&home).len() == 1).then_some(())).await;

    // Look at the process tree throughout the burst.
    let done = CancellationToken::new();
    let sampler = {
        let (done, home) = (done.clone(), home.clone());
        tokio::spawn(async move {
            let mut most: Vec<ProcInfo> = Vec::new();
            while !done.is_cancelled() {
                let now = cli_sessions(&home);
                if now.len() > most.len() {
                    most = now;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            most
        })
    };
    let mut answers = Vec::new();
    for question in 0..BURST {
        let params = json!({"textDocument": {"uri": uri}, "instruction": format!("q{question}")});
        answers.push(ws.client.start_request("claude/analyze", params).await.1);
    }
    for answer in answers {
        let result = crate::support::lsp_client::TestClient::answer(answer).await.unwrap();
        assert!(result["text"].as_str().unwrap().starts_with("It adds."), "{result}");
    }
    done.cancel();
    let most = sampler.await.unwrap();
    assert!(
        most.len() <= MAX_CONCURRENT + 1,
        "{} CLI processes ran at once: {most:#?}",
        most.len()
    );
    let pool = settled_pool(&mut ws).await;
    // The queued runs took the processes of the runs before them: none spawned its own.
    assert_eq!(pool["misses"], MAX_CONCURRENT as u64 - 1, "{pool}");
    shut_down(ws).await;
}

/// The sentence the CLI puts before its git snapshot in the system prompt.
const GIT_SNAPSHOT: &str = "This is the git status at the start of the conversation";

#[tokio::test]
async fn the_cli_puts_no_git_snapshot_in_the_prompt_unless_env_asks_for_it() {
    // By default the CLI runs no git status (at its start and after each /clear) for a
    // snapshot in its prompt; a user's `env` can bring it back (the CLI reads any non-empty
    // value as "disable").
    for (env, snapshot) in
        [(json!({}), false), (json!({"CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS": ""}), true)]
    {
        let mut ws = Workspace::start(
            &[("src/lib.rs", LIB)],
            Turn::text("It adds."),
            full_capabilities(),
            json!({"env": env}),
        )
        .await;
        let uri = ws.uri("src/lib.rs");
        let params = json!({"textDocument": {"uri": uri}});
        ws.client.request_json("claude/analyze", params).await.unwrap();
        let body = ws.api.requests()[0].body.to_string();
        assert_eq!(body.contains(GIT_SNAPSHOT), snapshot, "env {env}: {body}");
        shut_down(ws).await;
    }
}

#[tokio::test]
async fn idle_processes_beyond_max_idle_memory_mb_stop_least_recently_used_first() {
    use claude_lsp::base::platform::tree_rss_bytes;
    let mut ws = Workspace::start(
        &[("src/lib.rs", LIB)],
        Turn::text("It adds."),
        full_capabilities(),
        json!({}),
    )
    .await;
    let home = ws.home.path().to_path_buf();
    let uri = ws.uri("src/lib.rs");
    for question in ["q1", "q2"] {
        let params = json!({"textDocument": {"uri": uri}, "instruction": question});
        ws.client.request_json("claude/analyze", params).await.unwrap();
    }
    // Idle now: the two conversations' processes and a fresh warm one.
    settled_pool(&mut ws).await;
    let sessions = ws.client.request_json("claude/sessions", json!({})).await.unwrap();
    let live: Vec<u32> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|session| session["live"]["pid"].as_u64().unwrap() as u32)
        .collect();
    let [newer, older] = live[..] else { panic!("two live conversations: {sessions}") };
    let others = async || -> Vec<u32> {
        pids(&cli_sessions(&home)).into_iter().filter(|pid| !live.contains(pid)).collect()
    };
    let others = poll(WAIT, others, |others| others.len() == 1).await;
    let [warm] = others[..] else {
        panic!("one warm process besides the conversations' {live:?}, found {others:?}")
    };
    let rss = |pid: u32| tree_rss_bytes(pid).expect("a live CLI process is measurable");
    // Room for two of the three, with half a process to spare either way.
    let budget = (rss(newer) + rss(warm) + rss(older) / 2) >> 20;
    ws.change_settings(json!({"maxIdleMemoryMb": budget})).await;
    let mut left = vec![newer, warm];
    left.sort_unstable();
    let found = poll(WAIT, async || pids(&cli_sessions(&home)), |found| *found == left).await;
    assert_eq!(found, left, "only the least recently used idle process ({older}) stops");

    // A tiny budget: no process stays idle, and requests are still answered.
    ws.change_settings(json!({"maxIdleMemoryMb": 1})).await;
    eventually("no idle process is left", async || cli_sessions(&home).is_empty().then_some(()))
        .await;
    let params = json!({"textDocument": {"uri": uri}, "instruction": "q3"});
    let result = ws.client.request_json("claude/analyze", params).await.unwrap();
    assert!(result["text"].as_str().unwrap().starts_with("It adds."), "{result}");
    eventually("its process does not stay either", async || {
        cli_sessions(&home).is_empty().then_some(())
    })
    .await;
    shut_down(ws).await;
}
