//! Framing and parsing of the CLI's stdout: single lines, a stream of typical turn output, and
//! one 2 MB line (the size of a long answer). Run with `cargo bench --bench ndjson`.

use std::hint::black_box;

use claude_lsp::claude::lines::MessageReader;
use claude_lsp::claude::protocol::parse_line;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Real CLI output: one plain turn with partial messages (init, stream events, result).
const TURN: &str = include_str!("../src/claude/testdata/plain_partial_newest.ndjson");

fn single_lines(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_line");
    for (name, kind) in [
        ("system/init", "\"init\""),
        ("stream_event", "\"stream_event\""),
        ("result", "\"result\""),
    ] {
        let Some(line) = TURN.lines().find(|line| line.contains(kind)) else {
            panic!("the fixture has no {name} line");
        };
        group.throughput(Throughput::Bytes(line.len() as u64));
        group.bench_function(name, |b| b.iter(|| parse_line(black_box(line.as_bytes()))));
    }
    group.finish();
}

/// Read every message of `stream` through the line reader and parser.
fn read_all(runtime: &tokio::runtime::Runtime, stream: &[u8]) -> usize {
    runtime.block_on(async {
        let mut reader = MessageReader::new(stream);
        let mut count = 0;
        while let Some(message) = reader.next_message().await {
            if message.is_ok() {
                count += 1;
            }
        }
        count
    })
}

fn streams(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|err| panic!("cannot build a runtime: {err}"));
    let mut group = c.benchmark_group("message_reader");

    let turns: Vec<u8> = TURN.repeat(100).into_bytes();
    group.throughput(Throughput::Bytes(turns.len() as u64));
    group.bench_function("100 turns of typical output", |b| {
        b.iter(|| read_all(&runtime, black_box(&turns)))
    });

    let text = "x".repeat(2 * 1024 * 1024);
    let huge = format!(
        "{{\"type\":\"assistant\",\"message\":{{\"content\":[{{\"type\":\"text\",\"text\":\"{text}\"}}]}}}}\n"
    )
    .into_bytes();
    group.throughput(Throughput::Bytes(huge.len() as u64));
    group.sample_size(20);
    group.bench_function("one 2 MB assistant line", |b| {
        b.iter(|| read_all(&runtime, black_box(&huge)))
    });
    group.finish();
}

criterion_group!(benches, single_lines, streams);
criterion_main!(benches);
