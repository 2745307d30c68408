//! The speed table (issue 8): one run measures everything and prints a Markdown table with the
//! machine it ran on.
//!
//! - NDJSON framing + parsing throughput (captured CLI output);
//! - position conversion and `didChange` on a 100k-line document;
//! - staging mirror re-sync on a generated 10k-file git repository with 20 dirty files;
//! - claude-lsp's own cost per streamed message (a scripted CLI streaming text deltas through
//!   the whole server to an LSP client, minus the same request with no deltas);
//! - end to end on the fake API, LSP request → first `$/progress` report with model text, and
//!   → result, for (a) a CLI spawned per request, (b) the warm pool, (c) a direct `claude -p`;
//! - resident memory of an idle server and of one warm CLI process.
//!
//! `cargo bench --bench speed` runs it in full. Under `cargo test --all-targets` (no `--bench`
//! argument) it runs once with small inputs, as a smoke test of the measurements themselves.

// A benchmark's setup failures abort it, and its output is the table on stdout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use claude_lsp::base::process::{ChildProcess, ProcessSpec};
use claude_lsp::claude::lines::MessageReader;
use claude_lsp::engine::staging::{StagingManager, StagingSettings};
use claude_lsp::lsp_server::server::ServerOptions;
use claude_lsp::model::documents::{Document, DocumentStore, PositionEncoding};
use claude_lsp::protocol::lsp::{Position, Range, TextDocumentContentChangeEvent, Uri};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use support::cli::{TestHome, expected_cli_version, processes_running, real_cli};
use support::fake_api::{Block, CLI_ENV_TO_REMOVE, FakeApi, RecordedRequest, Turn};
use support::frame::{read_frame, write_frame};
use support::lsp_client::{TestClient, file_uri, full_capabilities};

/// How much work each measurement does.
#[derive(Clone, Copy)]
struct Sizes {
    ndjson_repeats: usize,
    document_lines: usize,
    conversions: usize,
    changes: usize,
    repo_dirs: usize,
    repo_files_per_dir: usize,
    resyncs: usize,
    deltas: usize,
    overhead_runs: usize,
    e2e_runs: usize,
}

const FULL: Sizes = Sizes {
    ndjson_repeats: 2_000,
    document_lines: 100_000,
    conversions: 100_000,
    changes: 2_000,
    repo_dirs: 100,
    repo_files_per_dir: 100,
    resyncs: 15,
    deltas: 10_000,
    overhead_runs: 5,
    e2e_runs: 10,
};

const SMOKE: Sizes = Sizes {
    ndjson_repeats: 10,
    document_lines: 100_000,
    conversions: 1_000,
    changes: 20,
    repo_dirs: 5,
    repo_files_per_dir: 20,
    resyncs: 2,
    deltas: 200,
    overhead_runs: 1,
    e2e_runs: 1,
};

const ANSWER: &str = "The function adds two numbers.";
/// How the answer starts: a progress report that starts so shows the model's text.
const ANSWER_START: &str = "The function";
const LIB: &str = "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";
const WAIT: Duration = Duration::from_secs(120);

/// What a run leaves for the client besides its progress and output, which no measurement reads.
const UNEXAMINED: &[&str] = &["textDocument/publishDiagnostics", "window/showMessage"];

struct Row {
    what: String,
    result: String,
    target: String,
}

#[derive(Default)]
struct Table {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Table {
    fn row(
        &mut self,
        what: impl Into<String>,
        result: impl Into<String>,
        target: impl Into<String>,
    ) {
        let row = Row { what: what.into(), result: result.into(), target: target.into() };
        eprintln!("speed: {} = {}", row.what, row.result);
        self.rows.push(row);
    }
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let sizes = if full { FULL } else { SMOKE };
    let scratch = tempfile::Builder::new().prefix("claude-lsp-speed-").tempdir().unwrap();
    // Written before anything is spawned: an executable still open for writing in a forked
    // child fails to exec (ETXTBSY).
    let scripted_cli = write_scripted_cli(scratch.path());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut table = Table::default();

    ndjson(&mut table, sizes);
    positions(&mut table, sizes);
    runtime.block_on(resync(&mut table, sizes, scratch.path()));
    runtime.block_on(per_message_overhead(&mut table, sizes, &scripted_cli, scratch.path()));
    runtime.block_on(end_to_end(&mut table, sizes));
    runtime.block_on(memory(&mut table));

    println!("{}", render(&table, full));
}

// ---- library-level measurements ---------------------------------------------------------------

/// Real CLI output (one plain turn with partial messages), framed and parsed.
fn ndjson(table: &mut Table, sizes: Sizes) {
    let turn = include_str!("../src/claude/testdata/plain_partial_newest.ndjson");
    let stream = turn.repeat(sizes.ndjson_repeats).into_bytes();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let started = Instant::now();
    let messages = runtime.block_on(async {
        let mut reader = MessageReader::new(stream.as_slice());
        let mut count = 0usize;
        while let Some(message) = reader.next_message().await {
            assert!(message.is_ok(), "the fixture must parse");
            count += 1;
        }
        count
    });
    let elapsed = started.elapsed();
    let mb_per_s = stream.len() as f64 / 1e6 / elapsed.as_secs_f64();
    table.row(
        "NDJSON framing + parsing (captured CLI turn)",
        format!("{mb_per_s:.0} MB/s, {:.1} µs per message", micros(elapsed) / messages as f64),
        "",
    );
}

fn large_text(lines: usize) -> String {
    (0..lines)
        .map(|i| match i % 4 {
            0 => format!("fn item_{i}() -> u32 {{ {i} }}\n"),
            1 => format!("    // 注释 {i} 😀 more text here\n"),
            2 => format!("    let value_{i} = \"é\";\n"),
            _ => "\n".to_owned(),
        })
        .collect()
}

/// Positions ↔ offsets and incremental changes on a large document.
fn positions(table: &mut Table, sizes: Sizes) {
    let lines = sizes.document_lines;
    let text = large_text(lines);
    let uri = Uri::from_str("file:///bench/large.rs").unwrap();
    let doc = Document::new(uri.clone(), "rust".to_owned(), 1, &text);
    let positions: Vec<Position> = (0..sizes.conversions)
        .map(|i| Position::new((i * 7919 % lines) as u32, (i % 30) as u32))
        .collect();
    let started = Instant::now();
    let mut sum = 0usize;
    for position in &positions {
        sum = sum.wrapping_add(doc.offset(*position, PositionEncoding::Utf16));
    }
    let per_conversion = started.elapsed() / sizes.conversions as u32;
    std::hint::black_box(sum);
    table.row(
        format!("Position → offset (UTF-16), {}k-line document", lines / 1000),
        format!("{:.2} µs", micros(per_conversion)),
        "",
    );

    let mut store = DocumentStore::new();
    store.open(uri.clone(), "rust".to_owned(), 1, &text);
    let started = Instant::now();
    for i in 0..sizes.changes {
        let line = (i * 7919 % lines) as u32;
        let change = TextDocumentContentChangeEvent {
            range: Some(Range::new(Position::new(line, 0), Position::new(line, 0))),
            range_length: None,
            text: "x".to_owned(),
        };
        store.change(&uri, 2 + i as i32, &[change], PositionEncoding::Utf16).unwrap();
    }
    let per_change = started.elapsed() / sizes.changes as u32;
    table.row(
        format!("didChange (one incremental edit), {}k-line document", lines / 1000),
        format!("{:.1} µs", micros(per_change)),
        "",
    );
}

async fn git(dir: &Path, args: &[&str]) {
    let output = ProcessSpec::new("git", dir)
        .args(["-c", "user.name=Bench", "-c", "user.email=bench@example.com"])
        .args(args.iter().copied())
        .output(Duration::from_secs(600))
        .await
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {}", output.stderr);
}

/// A generated repository, 20 files dirty (15 modified, 5 untracked); the mirror already exists.
/// Measured: the re-sync before a run, after a run that edited files in the mirror.
async fn resync(table: &mut Table, sizes: Sizes, scratch: &Path) {
    let workspace = scratch.join("repo");
    for dir in 0..sizes.repo_dirs {
        let dir_path = workspace.join(format!("module_{dir:03}"));
        fs::create_dir_all(&dir_path).unwrap();
        for index in 0..sizes.repo_files_per_dir {
            let text =
                format!("// module {dir} file {index}\npub fn f{index}() -> usize {{ {dir} }}\n");
            fs::write(dir_path.join(format!("file_{index:03}.rs")), text).unwrap();
        }
    }
    git(&workspace, &["init", "-q"]).await;
    git(&workspace, &["add", "-A"]).await;
    git(&workspace, &["commit", "-q", "-m", "generated"]).await;
    let file =
        |dir: usize, index: usize| workspace.join(format!("module_{dir:03}/file_{index:03}.rs"));
    for dirty in 0..15 {
        fs::write(
            file(dirty % sizes.repo_dirs, dirty % sizes.repo_files_per_dir),
            format!("// dirty {dirty}\n"),
        )
        .unwrap();
    }
    for untracked in 0..5 {
        let path = workspace
            .join(format!("module_{:03}/untracked_{untracked}.rs", untracked % sizes.repo_dirs));
        fs::write(path, "// untracked\n").unwrap();
    }
    let manager = StagingManager::new(scratch.join("cache"));
    let settings = StagingSettings::default();
    drop(manager.acquire(&workspace, &[], &settings).await.unwrap()); // the first checkout
    let mut samples = Vec::new();
    for _ in 0..sizes.resyncs {
        let started = Instant::now();
        let lease = manager.acquire(&workspace, &[], &settings).await.unwrap();
        samples.push(started.elapsed());
        // What a run does in its mirror, undone by the next re-sync.
        for index in 0..5 {
            fs::write(
                lease.root().join(format!("module_000/file_{index:03}.rs")),
                "// edited by the run\n",
            )
            .unwrap();
        }
        fs::write(lease.root().join("module_000/created_by_run.rs"), "// new\n").unwrap();
    }
    let files = sizes.repo_dirs * sizes.repo_files_per_dir;
    table.row(
        format!("Mirror re-sync, {}-file git repository, 20 dirty files", group(files)),
        format!("{:.0} ms (median of {})", millis(median(&mut samples)), samples.len()),
        "< 200 ms",
    );
}

// ---- the server's own cost per streamed message -----------------------------------------------

/// A stand-in CLI: answers `--version`, acks control requests, and answers a user line with the
/// NDJSON in `$SPEED_FIXTURE`.
fn write_scripted_cli(dir: &Path) -> PathBuf {
    let path = dir.join("scripted-claude");
    let script = r#"#!/bin/sh
if [ "$1" = "--version" ]; then echo "2.1.330 (Claude Code)"; exit 0; fi
while IFS= read -r line; do
  case "$line" in
    *'"type":"control_request"'*)
      id=$(printf '%s' "$line" | sed -n 's/.*"request_id":"\([^"]*\)".*/\1/p')
      printf '{"type":"control_response","response":{"subtype":"success","request_id":"%s","response":{}}}\n' "$id";;
    *'"type":"user"'*)
      cat "$SPEED_FIXTURE";;
  esac
done
"#;
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// One turn of captured CLI output with `deltas` text deltas in it.
fn fixture_with_deltas(deltas: usize) -> String {
    let turn = include_str!("../src/claude/testdata/plain_partial_newest.ndjson");
    let line = |needle: &str| -> &str {
        turn.lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} line"))
    };
    let delta = line(r#""text_delta","text":"Hello there""#);
    let mut out = String::new();
    for needle in [r#""subtype":"init""#, "message_start", r#""content_block_start","index":1"#] {
        out.push_str(line(needle));
        out.push('\n');
    }
    for i in 0..deltas {
        out.push_str(&delta.replace(r#""text":"Hello there""#, &format!(r#""text":"w{i} ""#)));
        out.push('\n');
    }
    for needle in [
        r#""text":"Hello there"}],"stop_reason""#,
        r#""content_block_stop","index":1"#,
        "message_delta",
        "message_stop",
        r#""type":"result""#,
    ] {
        out.push_str(line(needle));
        out.push('\n');
    }
    out
}

/// The server's time for a request whose CLI streams `deltas` messages, minus the same request
/// with none, per message: parsing, routing, progress, and one `claude/output` notification to
/// the client per delta.
async fn per_message_overhead(table: &mut Table, sizes: Sizes, cli: &Path, scratch: &Path) {
    let workspace = scratch.join("overhead-ws");
    fs::create_dir_all(&workspace).unwrap();
    fs::write(workspace.join("lib.rs"), LIB).unwrap();
    let fixture = scratch.join("fixture.ndjson");
    let cache = scratch.join("overhead-cache");
    let mut client =
        TestClient::start(ServerOptions { cache_dir: cache, ..ServerOptions::default() });
    let settings = json!({"cliPath": cli, "warmPool": 0, "env": {"SPEED_FIXTURE": fixture}});
    client.initialize(&workspace, full_capabilities(), settings).await;
    let uri = file_uri(&workspace.join("lib.rs"));
    let with_deltas = fixture_with_deltas(sizes.deltas);
    let without = fixture_with_deltas(0);
    let (mut long, mut short) = (Vec::new(), Vec::new());
    for run in 0..sizes.overhead_runs * 2 + 1 {
        let (text, samples) =
            if run % 2 == 0 { (&without, &mut short) } else { (&with_deltas, &mut long) };
        fs::write(&fixture, text).unwrap();
        let started = Instant::now();
        client.request_json("claude/analyze", json!({"textDocument": {"uri": uri}})).await.unwrap();
        let elapsed = started.elapsed();
        let outputs = client.drain_also(UNEXAMINED).await;
        if run > 0 {
            // The first request also found the CLI and warmed caches: not a sample.
            samples.push(elapsed);
        }
        if text == &with_deltas {
            assert!(outputs.len() > sizes.deltas, "every delta reaches the client");
        }
    }
    let extra = median(&mut long).saturating_sub(median(&mut short));
    let per_message = micros(extra) / sizes.deltas as f64;
    table.row(
        "claude-lsp's own cost per streamed message (parse → route → `claude/output` to the client)",
        format!("{per_message:.1} µs"),
        "< 1 ms",
    );
    client.finish().await;
}

// ---- end to end ---------------------------------------------------------------------------

/// The model's answer: its words first; with the findings tool offered, an empty report.
fn scripted_answer(request: &RecordedRequest) -> Turn {
    let structured = request.tool_names().iter().any(|tool| tool == "StructuredOutput");
    match (structured, request.turn_index()) {
        (_, 1..) => Turn::text("Done."),
        (true, 0) => Turn::reply(vec![
            Block::Text(ANSWER.to_owned()),
            Block::ToolUse {
                name: "StructuredOutput".to_owned(),
                input: json!({"findings": [], "summary": ANSWER}),
            },
        ]),
        (false, 0) => Turn::text(ANSWER),
    }
}

struct Timing {
    first_text: Duration,
    result: Duration,
}

/// Our CLI processes (by HOME) and their CPU ticks.
fn our_processes(home: &Path) -> Vec<(u32, u64)> {
    let home = home.display().to_string();
    processes_running(&real_cli())
        .into_iter()
        .filter(|process| process.env_var("HOME").as_deref() == Some(home.as_str()))
        .map(|process| (process.pid, cpu_ticks(process.pid)))
        .collect()
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 after the name).
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    tick(11) + tick(12)
}

/// Wait until exactly `count` of our CLI processes exist and none used CPU for half a second:
/// a warm process is then initialized and idle, and nothing else competes with the next run.
async fn quiet_with(home: &Path, count: usize) {
    let deadline = Instant::now() + WAIT;
    let mut last = Vec::new();
    let mut since = Instant::now();
    loop {
        let now = our_processes(home);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if last.len() == count && since.elapsed() >= Duration::from_millis(500) {
            return;
        }
        assert!(Instant::now() < deadline, "the CLI processes never settled at {count}: {last:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How the server gets a CLI process for each measured request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// (a) `warmPool` 0: the request spawns the CLI.
    Spawn,
    /// (b) a warm process that never ran a turn: a new server (and pool) for every request.
    WarmFresh,
    /// (b′) the warm pool in steady use: a used process, cleared and given back after its run.
    WarmReused,
}

/// (a), (b) and (b′): LSP requests to an in-process server.
async fn through_the_server(api: &FakeApi, mode: Mode, runs: usize) -> Vec<Timing> {
    let home = TestHome::new();
    let workspace = tempfile::Builder::new().prefix("claude-lsp-speed-ws-").tempdir().unwrap();
    fs::write(workspace.path().join("lib.rs"), LIB).unwrap();
    let uri = file_uri(&workspace.path().join("lib.rs"));
    let warm = usize::from(mode != Mode::Spawn);
    let mut server: Option<(TestClient, tempfile::TempDir)> = None;
    let mut timings = Vec::new();
    // One unmeasured run first: CLI discovery, and the OS page cache.
    for run in 0..=runs {
        if server.is_none() || mode == Mode::WarmFresh {
            if let Some((old, _cache)) = server.take() {
                finish(old).await;
            }
            server = Some(start_server(api, &home, workspace.path(), warm).await);
        }
        let (client, _) = server.as_mut().unwrap();
        // A finished run's process stays for a follow-up for a second (sessionIdleSecs), then
        // goes back to the pool in place of the fresh process started meanwhile.
        quiet_with(home.path(), warm).await;
        let token = format!("speed-{run}");
        let started = Instant::now();
        let (_, answer) = client
            .start_request(
                "claude/analyze",
                json!({"textDocument": {"uri": uri}, "workDoneToken": token}),
            )
            .await;
        client
            .wait_for_notification("$/progress", |params| {
                params["token"] == token.as_str()
                    && params["value"]["kind"] == "report"
                    && params["value"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with(ANSWER_START))
            })
            .await;
        let first_text = started.elapsed();
        let result = TestClient::answer(answer).await.unwrap();
        let elapsed = started.elapsed();
        assert!(result["text"].as_str().unwrap().contains("adds two numbers"), "{result}");
        client.drain_also(UNEXAMINED).await;
        if run > 0 {
            timings.push(Timing { first_text, result: elapsed });
        }
    }
    let (mut client, _cache) = server.unwrap();
    if mode == Mode::WarmReused {
        // Once the last run's process is back too.
        quiet_with(home.path(), warm).await;
        let metrics = client.request_json("claude/metrics", Value::Null).await.unwrap();
        assert!(
            metrics["pool"]["recycled"].as_u64().unwrap_or(0) >= runs as u64,
            "the runs were not served by reused processes: {metrics}"
        );
    }
    finish(client).await;
    timings
}

async fn start_server(
    api: &FakeApi,
    home: &TestHome,
    workspace: &Path,
    warm: usize,
) -> (TestClient, tempfile::TempDir) {
    let cache = tempfile::Builder::new().prefix("claude-lsp-speed-cache-").tempdir().unwrap();
    let options =
        ServerOptions { cache_dir: cache.path().to_path_buf(), ..ServerOptions::default() };
    let mut client = TestClient::start(options);
    let env: serde_json::Map<String, Value> =
        api.cli_env(home.path()).into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    let settings =
        json!({"cliPath": real_cli(), "env": env, "warmPool": warm, "sessionIdleSecs": 1});
    client.initialize(workspace, full_capabilities(), settings).await;
    (client, cache)
}

async fn finish(client: TestClient) {
    client.drain_also(UNEXAMINED).await;
    client.finish().await;
}

/// (c): `claude -p` spawned for the request, as a plain script would.
async fn direct_cli(api: &FakeApi, runs: usize) -> Vec<Timing> {
    let home = TestHome::new();
    let workspace = tempfile::Builder::new().prefix("claude-lsp-speed-ws-").tempdir().unwrap();
    fs::write(workspace.path().join("lib.rs"), LIB).unwrap();
    let mut timings = Vec::new();
    for run in 0..=runs {
        quiet_with(home.path(), 0).await;
        let spec = CLI_ENV_TO_REMOVE
            .iter()
            .fold(ProcessSpec::new(real_cli(), workspace.path()), |spec, key| spec.env_remove(key))
            .args([
                "-p",
                "Explain what lib.rs does.",
                "--output-format",
                "stream-json",
                "--verbose",
                // As the server runs it: text arrives as it streams.
                "--include-partial-messages",
            ])
            .envs(api.cli_env(home.path()));
        let started = Instant::now();
        let mut child = spec.spawn().unwrap();
        let mut lines = BufReader::new(child.take_stdout().unwrap()).lines();
        let mut first_text = None;
        let result = loop {
            let line = lines.next_line().await.unwrap().expect("the CLI ended before its result");
            let message: Value = serde_json::from_str(&line).unwrap();
            let streamed_text = message["type"] == "stream_event"
                && message["event"]["delta"]["type"] == "text_delta";
            let text_block = message["type"] == "assistant"
                && message["message"]["content"]
                    .as_array()
                    .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "text"));
            let has_text = streamed_text || text_block;
            if has_text && first_text.is_none() {
                first_text = Some(started.elapsed());
            }
            if message["type"] == "result" {
                break started.elapsed();
            }
        };
        child.wait().await.unwrap();
        if run > 0 {
            timings.push(Timing {
                first_text: first_text.expect("no text before the result"),
                result,
            });
        }
    }
    timings
}

async fn end_to_end(table: &mut Table, sizes: Sizes) {
    let api = FakeApi::start(support::fake_api::Script::from_fn(scripted_answer)).await;
    let runs = sizes.e2e_runs;
    let count = || api.requests().len();
    let before = count();
    let mut spawn = through_the_server(&api, Mode::Spawn, runs).await;
    let after_spawn = count();
    let mut fresh = through_the_server(&api, Mode::WarmFresh, runs).await;
    let after_fresh = count();
    let mut reused = through_the_server(&api, Mode::WarmReused, runs).await;
    let after_reused = count();
    let mut direct = direct_cli(&api, runs).await;
    let per_run = |from: usize, to: usize| (to - from) as f64 / (runs + 1) as f64;
    table.notes.push(format!(
        "API requests per run: (a) {:.1}, (b) {:.1}, (b′) {:.1}, (c) {:.1}: every mode does the same work at the API.",
        per_run(before, after_spawn),
        per_run(after_spawn, after_fresh),
        per_run(after_fresh, after_reused),
        per_run(after_reused, count())
    ));
    let stat = |timings: &mut Vec<Timing>, pick: fn(&Timing) -> Duration| {
        let mut values: Vec<Duration> = timings.iter().map(pick).collect();
        median(&mut values)
    };
    let first = |t: &Timing| t.first_text;
    let done = |t: &Timing| t.result;
    let (spawn_first, spawn_done) = (stat(&mut spawn, first), stat(&mut spawn, done));
    let (fresh_first, fresh_done) = (stat(&mut fresh, first), stat(&mut fresh, done));
    let (reused_first, reused_done) = (stat(&mut reused, first), stat(&mut reused, done));
    let (direct_first, direct_done) = (stat(&mut direct, first), stat(&mut direct, done));
    let ratio = |slow: Duration, fast: Duration| slow.as_secs_f64() / fast.as_secs_f64();
    let label = |mode: &str| {
        format!("End to end, {mode}: request → first progress with model text / → result")
    };
    let ms = |first: Duration, done: Duration| {
        format!("{:.0} ms / {:.0} ms", millis(first), millis(done))
    };
    table.row(label("(a) CLI spawned per request"), ms(spawn_first, spawn_done), "");
    table.row(label("(b) warm pool, a fresh process"), ms(fresh_first, fresh_done), "");
    table.row(
        label("(b′) warm pool in steady use, a used process cleared and given back"),
        ms(reused_first, reused_done),
        "",
    );
    table.row(
        "End to end, (c) direct `claude -p` (no server): spawn → first text / → result",
        ms(direct_first, direct_done),
        "",
    );
    table.row(
        "Speed-up, first progress: (a)/(b′) · (a)/(b) · (c)/(b′)",
        format!(
            "{:.1}× · {:.1}× · {:.1}×",
            ratio(spawn_first, reused_first),
            ratio(spawn_first, fresh_first),
            ratio(direct_first, reused_first)
        ),
        "≥ 10× over (a)",
    );
    table.row(
        "Speed-up, result: (a)/(b′) · (a)/(b) · (c)/(b′)",
        format!(
            "{:.1}× · {:.1}× · {:.1}×",
            ratio(spawn_done, reused_done),
            ratio(spawn_done, fresh_done),
            ratio(direct_done, reused_done)
        ),
        "",
    );
    table.notes.push(format!(
        "End to end: medians of {runs} runs per mode (after one unmeasured run), one at a time, on the fake API (tests/support/fake_api.rs) with the pinned CLI {}. The request is `claude/analyze` of a 3-line file; the model's reply is scripted, so the times are claude-lsp's and the CLI's own. Before each run the machine is quiet: no CLI process busy, and in (b) and (b′) the warm process initialized. (b) starts a new server for every request, so its process has never run a turn; (b′) is one server whose finished run's process is let go after `sessionIdleSecs` 1 and, cleared, takes the fresh process's place in the pool. (c) runs with `--include-partial-messages`, as the server does, and counts the first streamed text.",
        expected_cli_version()
    ));
}

// ---- memory -----------------------------------------------------------------------------------

/// A `claude-lsp` process spoken to over its stdio.
struct ServerProcess {
    child: ChildProcess,
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
    next_id: i64,
}

impl ServerProcess {
    fn start(cwd: &Path, home: &TestHome) -> Self {
        let spec = CLI_ENV_TO_REMOVE
            .iter()
            .fold(ProcessSpec::new(env!("CARGO_BIN_EXE_claude-lsp"), cwd), |spec, key| {
                spec.env_remove(key)
            })
            .env("XDG_CACHE_HOME", home.path().join("cache"))
            .piped_stdin();
        let mut child = spec.spawn().unwrap();
        let stdin = child.take_stdin().unwrap();
        let stdout = BufReader::new(child.take_stdout().unwrap());
        Self { child, stdin, stdout, next_id: 1 }
    }

    async fn send(&mut self, message: Value) {
        write_frame(&mut self.stdin, message.to_string().as_bytes()).await.unwrap();
    }

    /// Send a request and read messages until its response.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        loop {
            let body = read_frame(&mut self.stdout).await.expect("the server's output ended");
            let message: Value = serde_json::from_slice(&body).unwrap();
            if message["id"] == id && message.get("method").is_none() {
                return message;
            }
        }
    }

    async fn stop(mut self) {
        self.request("shutdown", Value::Null).await;
        self.send(json!({"jsonrpc": "2.0", "method": "exit"})).await;
        tokio::time::timeout(WAIT, self.child.wait()).await.unwrap().unwrap();
    }
}

fn rss_mb(pid: u32) -> f64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024.0
}

/// The release server after `initialize` with nothing to do, and one warm CLI process.
async fn memory(table: &mut Table) {
    let api = FakeApi::start(Turn::text("unused")).await;
    let workspace = tempfile::Builder::new().prefix("claude-lsp-speed-ws-").tempdir().unwrap();
    fs::write(workspace.path().join("lib.rs"), LIB).unwrap();
    let root = file_uri(workspace.path());
    let mut measured = Vec::new();
    for warm in [0, 1] {
        let home = TestHome::new();
        let mut server = ServerProcess::start(workspace.path(), &home);
        let env: serde_json::Map<String, Value> =
            api.cli_env(home.path()).into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        let options = json!({"cliPath": real_cli(), "env": env, "warmPool": warm});
        server
            .request("initialize", json!({"processId": null, "rootUri": root, "capabilities": {}, "initializationOptions": options}))
            .await;
        server.send(json!({"jsonrpc": "2.0", "method": "initialized", "params": {}})).await;
        quiet_with(home.path(), warm).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let server_rss = rss_mb(server.child.pid());
        let cli_rss: Vec<f64> =
            our_processes(home.path()).iter().map(|(pid, _)| rss_mb(*pid)).collect();
        measured.push((server_rss, cli_rss));
        server.stop().await;
    }
    table.row(
        "Idle server RSS (after initialize, warmPool 0)",
        format!("{:.1} MB", measured[0].0),
        "< 20 MB",
    );
    let warm_cli = measured[1].1.first().copied().unwrap_or(f64::NAN);
    table.row(
        "One warm CLI process RSS (initialized, idle; the cost of warmPool 1 per key)",
        format!("{warm_cli:.0} MB (server itself: {:.1} MB)", measured[1].0),
        "",
    );
}

// ---- output -----------------------------------------------------------------------------------

fn render(table: &Table, full: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| Measurement | Result | Target |");
    let _ = writeln!(out, "|---|---|---|");
    for row in &table.rows {
        let _ = writeln!(out, "| {} | {} | {} |", row.what, row.result, row.target);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Machine: {}.", machine());
    let _ = writeln!(
        out,
        "Method: `cargo bench --bench speed` ({}), release build; library figures are averages over many operations, the re-sync is a median.",
        if full {
            "full run"
        } else {
            "smoke run: small inputs, one sample each — not for comparison"
        }
    );
    for note in &table.notes {
        let _ = writeln!(out, "{note}");
    }
    out
}

fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gb = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| {
            meminfo
                .lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores available, {memory_gb:.0} GB RAM, Linux {}", kernel.trim())
}

fn median(values: &mut [Duration]) -> Duration {
    assert!(!values.is_empty(), "no samples");
    values.sort_unstable();
    values[values.len() / 2]
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// 10000 → "10,000".
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
