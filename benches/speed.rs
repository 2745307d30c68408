//! The speed table (issue 8): one run measures everything and prints a Markdown table with the
//! machine it ran on.
//!
//! - NDJSON framing + parsing throughput (captured CLI output);
//! - position conversion and `didChange` on a 100k-line document;
//! - staging mirror re-sync on a generated 10k-file git repository with 20 dirty files;
//! - claude-lsp's own cost per streamed message (a scripted CLI streaming text deltas through
//!   the whole server to an LSP client, minus the same request with no deltas);
//! - resident memory of an idle server and of one warm CLI process;
//! - end to end on the fake API, claude-lsp at default settings beside its peers in the same run
//!   (the CLI itself, `warmPool` 0, `claude -p`, the ACP adapter): benches/speed/peers.rs.
//!
//! `cargo bench --bench speed` runs it in full. Under `cargo test --all-targets` (no `--bench`
//! argument) it runs once with small inputs and one measured round of each end-to-end case, as
//! a smoke test of the measurements themselves; no timing is checked.

// A benchmark's setup failures abort it, and its output is the table on stdout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/e2e/support/mod.rs"]
mod support;

#[path = "speed/peers.rs"]
mod peers;

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use claude_lsp::base::process::ProcessSpec;
use claude_lsp::claude::lines::MessageReader;
use claude_lsp::engine::staging::{StagingManager, StagingSettings};
use claude_lsp::lsp_server::server::ServerOptions;
use claude_lsp::model::documents::{Document, DocumentStore, PositionEncoding};
use claude_lsp::protocol::lsp::{Position, Range, TextDocumentContentChangeEvent, Uri};
use serde_json::json;

use peers::LspServer;
use support::cli::{TestHome, processes_running, real_cli};
use support::fake_api::{FakeApi, Turn};
use support::lsp_client::{TestClient, file_uri, full_capabilities};
use support::wait::eventually;

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
    runtime.block_on(memory(&mut table));
    let peers = runtime.block_on(peers::compare(sizes.e2e_runs));

    println!("{}", render(&table, full));
    println!("{peers}");
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
        // A real run each time: the result cache would answer the repeated request with no CLI.
        let params = json!({"textDocument": {"uri": uri}, "noCache": true});
        client.request_json("claude/analyze", params).await.unwrap();
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

// ---- memory -----------------------------------------------------------------------------------

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
    let mut measured = Vec::new();
    for warm in [0, 1] {
        let home = TestHome::new();
        let settings = json!({"warmPool": warm});
        let server = LspServer::start(workspace.path(), &home, &api, settings).await;
        let clis = eventually("the warm pool is filled and idle", async || {
            peers::idle(&[server.pid()]).await;
            let tree = peers::tree(server.pid());
            let clis: Vec<u32> = processes_running(&real_cli())
                .into_iter()
                .map(|process| process.pid)
                .filter(|pid| tree.contains(pid))
                .collect();
            (clis.len() == warm).then_some(clis)
        })
        .await;
        let cli_rss: Vec<f64> = clis.into_iter().map(rss_mb).collect();
        measured.push((rss_mb(server.pid()), cli_rss));
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
