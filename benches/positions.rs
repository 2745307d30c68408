//! Position conversion, incremental document changes and edit diffing on a large document.
//! Run with `cargo bench --bench positions`.

use std::hint::black_box;
use std::str::FromStr;

use claude_lsp::model::documents::{Document, LineIndex, PositionEncoding};
use claude_lsp::model::edits::text_edits;
use claude_lsp::protocol::lsp::{Position, Range, TextDocumentContentChangeEvent, Uri};
use criterion::{Criterion, criterion_group, criterion_main};

const LINES: usize = 20_000;

/// A source-like text of `LINES` lines with CRLF breaks and some multi-unit characters.
fn large_text() -> String {
    (0..LINES)
        .map(|i| match i % 4 {
            0 => format!("fn item_{i}() -> u32 {{ {i} }}\r\n"),
            1 => format!("    // 注释 {i} 😀 more text here\r\n"),
            2 => format!("    let value_{i} = \"é\u{301}\";\r\n"),
            _ => "\r\n".to_owned(),
        })
        .collect()
}

fn document(text: &str) -> Document {
    let uri = Uri::from_str("file:///bench/large.rs").unwrap_or_else(|e| panic!("uri: {e}"));
    Document::new(uri, "rust".to_owned(), 1, text)
}

fn conversions(c: &mut Criterion) {
    let text = large_text();
    let doc = document(&text);
    c.bench_function("line index of 20k lines", |b| {
        b.iter(|| LineIndex::new(black_box(doc.rope())))
    });
    let positions: Vec<Position> =
        (0..1000u32).map(|i| Position::new(i * 19 % LINES as u32, i % 30)).collect();
    c.bench_function("1000 positions → offsets (utf-16)", |b| {
        b.iter(|| {
            positions
                .iter()
                .map(|&p| doc.offset(black_box(p), PositionEncoding::Utf16))
                .sum::<usize>()
        })
    });
    let offsets: Vec<usize> = (0..1000usize).map(|i| i * 613 % text.chars().count()).collect();
    c.bench_function("1000 offsets → positions (utf-16)", |b| {
        b.iter(|| {
            offsets
                .iter()
                .map(|&o| doc.position(black_box(o), PositionEncoding::Utf16).line)
                .sum::<u32>()
        })
    });
}

fn keystrokes(c: &mut Criterion) {
    let doc = document(&large_text());
    c.bench_function("one keystroke in the middle of 20k lines", |b| {
        b.iter_batched(
            || doc.clone(),
            |mut doc| {
                let at = Position::new(LINES as u32 / 2, 4);
                let change = TextDocumentContentChangeEvent {
                    range: Some(Range::new(at, at)),
                    range_length: None,
                    text: "x\r\n".to_owned(),
                };
                doc.apply_changes(2, &[change], PositionEncoding::Utf16)
                    .unwrap_or_else(|e| panic!("change: {e}"));
                doc
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

fn diffing(c: &mut Criterion) {
    let before = large_text();
    let after = before
        .replacen("item_100()", "renamed_100()", 1)
        .replacen("value_5002", "total_5002", 1)
        .replacen("fn item_19996", "// removed\r\nfn item_19996", 1);
    c.bench_function("text_edits for 3 changes in 20k lines", |b| {
        b.iter(|| text_edits(black_box(&before), black_box(&after), PositionEncoding::Utf16))
    });
}

criterion_group!(benches, conversions, keystrokes, diffing);
criterion_main!(benches);
