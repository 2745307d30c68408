//! Position conversion: any text, any edits, any positions. The incrementally kept line index
//! always equals one built from scratch, and offset → position → offset is the identity (but
//! for an offset between the `\r` and `\n` of a line break, which maps to the line's end).
#![no_main]

use claude_lsp::model::documents::{Document, LineIndex, PositionEncoding};
use claude_lsp::protocol::lsp::{Position, Range, TextDocumentContentChangeEvent, Uri};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    encoding: u8,
    text: String,
    edits: Vec<(u32, u32, u32, u32, String)>,
    offsets: Vec<u16>,
}

fuzz_target!(|input: Input| {
    let enc = match input.encoding % 3 {
        0 => PositionEncoding::Utf8,
        1 => PositionEncoding::Utf16,
        _ => PositionEncoding::Utf32,
    };
    let Ok(uri) = "file:///fuzz.txt".parse::<Uri>() else { return };
    let mut doc = Document::new(uri, "plaintext".into(), 1, &input.text);
    for (version, (l1, c1, l2, c2, text)) in (2..).zip(input.edits.into_iter().take(16)) {
        let (start, end) = (Position::new(l1 % 64, c1 % 256), Position::new(l2 % 64, c2 % 256));
        let range = Range::new(start.min(end), start.max(end));
        let change =
            TextDocumentContentChangeEvent { range: Some(range), range_length: None, text };
        let _ = doc.apply_changes(version, &[change], enc);
        assert_eq!(doc.line_index(), &LineIndex::new(doc.rope()), "incremental index drifted");
    }
    let rope = doc.rope();
    let len = rope.len_chars();
    for offset in input.offsets.into_iter().take(64).map(usize::from) {
        let position = doc.position(offset, enc);
        let back = doc.offset(position, enc);
        let offset = offset.min(len);
        let inside_crlf =
            offset > 0 && offset < len && rope.char(offset - 1) == '\r' && rope.char(offset) == '\n';
        assert_eq!(back, if inside_crlf { offset - 1 } else { offset }, "at {position:?}");
    }
});
