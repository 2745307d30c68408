//! Open documents (ropey ropes + LSP versions) and the one place where LSP positions are converted.
//!
//! Offsets in this module are *char* indices (Unicode scalar values), the unit ropey indexes by.
//! LSP lines end at `\n`, `\r\n` or a lone `\r` only. Ropey's own line API also breaks at U+2028,
//! form feed, NEL, … (its `unicode_lines` feature), so it cannot be used for LSP lines: the
//! [`LineIndex`] below keeps the LSP line starts instead.

use std::collections::HashMap;
use std::path::Path;

use ropey::Rope;

use crate::protocol::lsp::{
    Position, PositionEncodingKind, Range, TextDocumentContentChangeEvent, Uri,
};

/// The unit in which a position's `character` counts, as negotiated with the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PositionEncoding {
    Utf8,
    /// The LSP default, and the only encoding every client supports.
    #[default]
    Utf16,
    Utf32,
}

impl PositionEncoding {
    /// Picks from the client's `general.positionEncodings`: utf-8 first (it needs no
    /// transcoding), then utf-32, then utf-16, which is also the answer when the list is absent.
    pub fn negotiate(client: Option<&[PositionEncodingKind]>) -> Self {
        let offered = client.unwrap_or_default();
        let offers = |kind: &PositionEncodingKind| offered.iter().any(|o| o == kind);
        if offers(&PositionEncodingKind::UTF8) {
            Self::Utf8
        } else if offers(&PositionEncodingKind::UTF32) {
            Self::Utf32
        } else {
            Self::Utf16
        }
    }

    /// The value announced in `ServerCapabilities::position_encoding`.
    pub fn kind(self) -> PositionEncodingKind {
        match self {
            Self::Utf8 => PositionEncodingKind::UTF8,
            Self::Utf16 => PositionEncodingKind::UTF16,
            Self::Utf32 => PositionEncodingKind::UTF32,
        }
    }

    /// How many code units of this encoding `ch` takes.
    fn width(self, ch: char) -> usize {
        match self {
            Self::Utf8 => ch.len_utf8(),
            Self::Utf16 => ch.len_utf16(),
            Self::Utf32 => 1,
        }
    }
}

/// Why a document could not be changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error(
        "document change for version {got} ignored: the document is already at version {current} \
         (versions must increase)"
    )]
    StaleVersion { current: i32, got: i32 },
    #[error(
        "invalid range {}:{}–{}:{}: its end is before its start",
        .start.line, .start.character, .end.line, .end.character
    )]
    InvalidRange { start: Position, end: Position },
    #[error("document {uri} is not open (didChange before didOpen, or after didClose)")]
    NotOpen { uri: String },
}

/// The char offset at which every LSP line of a text starts. Line 0 always starts at 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Scans the whole text once; reuse the index for many conversions on the same text.
    pub fn new(rope: &Rope) -> Self {
        Self { starts: scan_line_starts(rope.chunks()) }
    }

    pub fn line_count(&self) -> usize {
        self.starts.len()
    }

    /// Char offset where `line` starts, `None` past the last line.
    pub fn line_start(&self, line: usize) -> Option<usize> {
        self.starts.get(line).copied()
    }

    /// Char offset where `line`'s content ends (before its line break), `None` past the last line.
    pub fn line_end(&self, rope: &Rope, line: usize) -> Option<usize> {
        self.starts.get(line)?;
        let Some(&next) = self.starts.get(line + 1) else {
            return Some(rope.len_chars());
        };
        let crlf = next >= 2 && rope.char(next - 1) == '\n' && rope.char(next - 2) == '\r';
        Some(if crlf { next - 2 } else { next - 1 })
    }

    /// The char offset of `pos`, clamped: past the line's end → the line's end (never into its
    /// line break), past the last line → the end of the text, inside a multi-unit character →
    /// the start of that character.
    pub fn offset(&self, rope: &Rope, pos: Position, enc: PositionEncoding) -> usize {
        let line = pos.line as usize;
        let (Some(start), Some(end)) = (self.line_start(line), self.line_end(rope, line)) else {
            return rope.len_chars();
        };
        let mut remaining = pos.character as usize;
        let mut offset = start;
        for ch in rope.slice(start..end).chars() {
            let width = enc.width(ch);
            if width > remaining {
                break;
            }
            remaining -= width;
            offset += 1;
        }
        offset
    }

    /// The position of `char_offset` (clamped to the end of the text). An offset inside a
    /// `\r\n` pair maps to the end of its line.
    pub fn position(&self, rope: &Rope, char_offset: usize, enc: PositionEncoding) -> Position {
        let offset = char_offset.min(rope.len_chars());
        // `starts[0] == 0 <= offset`, so the partition point is at least 1.
        let line = self.starts.partition_point(|&start| start <= offset) - 1;
        let start = self.starts[line];
        let end = self.line_end(rope, line).unwrap_or(start);
        let character: usize =
            rope.slice(start..offset.min(end).max(start)).chars().map(|ch| enc.width(ch)).sum();
        Position::new(saturate(line), saturate(character))
    }

    /// The char range of `range`, or an error when its end is before its start.
    pub fn char_range(
        &self,
        rope: &Rope,
        range: Range,
        enc: PositionEncoding,
    ) -> Result<std::ops::Range<usize>, DocumentError> {
        if range.end < range.start {
            return Err(DocumentError::InvalidRange { start: range.start, end: range.end });
        }
        let start = self.offset(rope, range.start, enc);
        // Clamping is monotonic, so this `max` only guards the invariant.
        let end = self.offset(rope, range.end, enc).max(start);
        Ok(start..end)
    }

    /// Updates the index after `rope` (already edited) had `removed` chars at `start` replaced by
    /// `inserted` chars. Only the line starts near the edit are rescanned.
    fn splice(&mut self, rope: &Rope, start: usize, removed: usize, inserted: usize) {
        // Whether `q` starts a line depends on chars `q - 1` and `q` only. Starts before `start`
        // see unchanged chars; old starts after `start + removed` see unchanged (shifted) chars.
        // Line 0 always starts at 0, whatever the edit.
        let keep_before = self.starts.partition_point(|&s| s < start.max(1));
        let keep_after = self.starts.partition_point(|&s| s <= start + removed);
        let first = start.max(1);
        let last = start + inserted;
        let mut rescanned = Vec::new();
        if first <= last {
            let mut chars = rope.chars_at(first - 1);
            let mut previous = chars.next();
            for q in first..=last {
                let current = chars.next();
                let starts_line = match previous {
                    Some('\n') => true,
                    Some('\r') => current != Some('\n'),
                    _ => false,
                };
                if starts_line {
                    rescanned.push(q);
                }
                previous = current;
            }
        }
        let shifted: Vec<usize> =
            self.starts[keep_after..].iter().map(|&s| s - removed + inserted).collect();
        self.starts.truncate(keep_before);
        self.starts.extend(rescanned);
        self.starts.extend(shifted);
    }
}

/// Line starts of a text given as chunks (a `\r\n` may straddle two chunks).
fn scan_line_starts<'a>(chunks: impl Iterator<Item = &'a str>) -> Vec<usize> {
    let mut starts = vec![0];
    let mut chunk_start = 0;
    // A chunk ended in `\r`: the next line starts after it unless the next chunk opens with `\n`.
    let mut pending_cr = false;
    for chunk in chunks {
        let bytes = chunk.as_bytes();
        if bytes.is_empty() {
            continue;
        }
        let mut byte_pos = 0;
        let mut char_pos = chunk_start;
        if pending_cr {
            pending_cr = false;
            if bytes.first() == Some(&b'\n') {
                byte_pos = 1;
                char_pos += 1;
            }
            starts.push(char_pos);
        }
        for at in memchr::memchr2_iter(b'\n', b'\r', bytes) {
            if at < byte_pos {
                continue; // the `\n` of a `\r\n` already handled
            }
            char_pos += count_chars(&bytes[byte_pos..at]);
            let break_len = match (bytes[at], bytes.get(at + 1)) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => {
                    pending_cr = true;
                    byte_pos = at + 1;
                    char_pos += 1;
                    continue;
                }
                _ => 1,
            };
            byte_pos = at + break_len;
            char_pos += break_len;
            starts.push(char_pos);
        }
        chunk_start = char_pos + count_chars(&bytes[byte_pos..]);
    }
    if pending_cr {
        starts.push(chunk_start);
    }
    starts
}

/// Number of chars in valid UTF-8: every byte that is not a continuation byte starts one.
fn count_chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| (b as i8) >= -0x40).count()
}

fn saturate(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// The char offset of `pos` in `text_rope` (clamped, see [`LineIndex::offset`]). Scans the text:
/// for many conversions on one text build a [`LineIndex`] once, or use [`Document::offset`].
pub fn to_offset(text_rope: &Rope, pos: Position, enc: PositionEncoding) -> usize {
    LineIndex::new(text_rope).offset(text_rope, pos, enc)
}

/// The position of `char_offset` in `text_rope` (see [`LineIndex::position`]). Scans the text.
pub fn to_position(text_rope: &Rope, char_offset: usize, enc: PositionEncoding) -> Position {
    LineIndex::new(text_rope).position(text_rope, char_offset, enc)
}

/// The text at `range` of `text`, when `range` names existing positions exactly (a position past
/// the end of its line would be clamped: then the code it was computed for is gone).
pub fn exact_text(text: &str, range: Range, enc: PositionEncoding) -> Option<String> {
    let rope = Rope::from_str(text);
    let index = LineIndex::new(&rope);
    let span = index.char_range(&rope, range, enc).ok()?;
    let exact = index.position(&rope, span.start, enc) == range.start
        && index.position(&rope, span.end, enc) == range.end;
    exact.then(|| rope.slice(span).to_string())
}

/// One open text document.
#[derive(Debug, Clone)]
pub struct Document {
    uri: Uri,
    language_id: String,
    version: i32,
    rope: Rope,
    lines: LineIndex,
    /// A change the editor made could not be applied: this text is behind the editor's until
    /// a change that sends the whole text (or a reopen).
    out_of_sync: bool,
}

impl Document {
    pub fn new(uri: Uri, language_id: String, version: i32, text: &str) -> Self {
        let rope = Rope::from_str(text);
        let lines = LineIndex::new(&rope);
        Self { uri, language_id, version, rope, lines, out_of_sync: false }
    }

    /// True when a change could not be applied, so the editor's text differs from this one.
    pub fn is_out_of_sync(&self) -> bool {
        self.out_of_sync
    }

    /// The full text, line breaks exactly as received.
    pub fn text(&self) -> String {
        self.rope.to_string()
    }

    pub fn version(&self) -> i32 {
        self.version
    }

    pub fn language_id(&self) -> &str {
        &self.language_id
    }

    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    pub fn rope(&self) -> &Rope {
        &self.rope
    }

    /// The LSP line index of the current text.
    pub fn line_index(&self) -> &LineIndex {
        &self.lines
    }

    /// Number of LSP lines (a text ending in a line break has an empty last line).
    pub fn line_count(&self) -> usize {
        self.lines.line_count()
    }

    /// Applies `didChange` content changes in order, all or nothing, moving to `version`. A
    /// change that cannot be applied leaves the document out of sync with the editor (a stale
    /// version is only a repeat, and changes nothing).
    pub fn apply_changes(
        &mut self,
        version: i32,
        changes: &[TextDocumentContentChangeEvent],
        enc: PositionEncoding,
    ) -> Result<(), DocumentError> {
        if version <= self.version {
            return Err(DocumentError::StaleVersion { current: self.version, got: version });
        }
        let applied = self.apply_in_order(changes, enc);
        match &applied {
            Ok(()) => {
                self.version = version;
                // Only the whole text brings a document that missed a change back in step.
                if changes.iter().any(|change| change.range.is_none()) {
                    self.out_of_sync = false;
                }
            }
            Err(_) => self.out_of_sync = true,
        }
        applied
    }

    fn apply_in_order(
        &mut self,
        changes: &[TextDocumentContentChangeEvent],
        enc: PositionEncoding,
    ) -> Result<(), DocumentError> {
        // Ropes clone in O(1) (shared nodes), so staging the edits costs little.
        let mut rope = self.rope.clone();
        let mut lines = self.lines.clone();
        for change in changes {
            match change.range {
                None => {
                    rope = Rope::from_str(&change.text);
                    lines = LineIndex::new(&rope);
                }
                Some(range) => {
                    let span = lines.char_range(&rope, range, enc)?;
                    rope.remove(span.clone());
                    rope.insert(span.start, &change.text);
                    let inserted = count_chars(change.text.as_bytes());
                    lines.splice(&rope, span.start, span.len(), inserted);
                }
            }
        }
        self.rope = rope;
        self.lines = lines;
        Ok(())
    }

    /// The char offset of `pos`, clamped (see [`LineIndex::offset`]).
    pub fn offset(&self, pos: Position, enc: PositionEncoding) -> usize {
        self.lines.offset(&self.rope, pos, enc)
    }

    /// The position of a char offset (clamped to the end of the text).
    pub fn position(&self, char_offset: usize, enc: PositionEncoding) -> Position {
        self.lines.position(&self.rope, char_offset, enc)
    }

    /// The text in `range`; empty when its end is before its start.
    pub fn range_text(&self, range: Range, enc: PositionEncoding) -> String {
        self.lines
            .char_range(&self.rope, range, enc)
            .map(|span| self.rope.slice(span).to_string())
            .unwrap_or_default()
    }

    /// The text of `line` without its line break; `None` past the last line.
    pub fn line_text(&self, line: usize) -> Option<String> {
        let start = self.lines.line_start(line)?;
        let end = self.lines.line_end(&self.rope, line)?;
        Some(self.rope.slice(start..end).to_string())
    }
}

/// The open documents, keyed by the URI the client used.
#[derive(Debug, Default)]
pub struct DocumentStore {
    documents: HashMap<Uri, Document>,
}

impl DocumentStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// `didOpen`: a document opened again replaces the previous one.
    pub fn open(&mut self, uri: Uri, language_id: String, version: i32, text: &str) {
        let document = Document::new(uri.clone(), language_id, version, text);
        self.documents.insert(uri, document);
    }

    /// `didChange`.
    pub fn change(
        &mut self,
        uri: &Uri,
        version: i32,
        changes: &[TextDocumentContentChangeEvent],
        enc: PositionEncoding,
    ) -> Result<(), DocumentError> {
        let document = self
            .documents
            .get_mut(uri)
            .ok_or_else(|| DocumentError::NotOpen { uri: uri.as_str().to_owned() })?;
        document.apply_changes(version, changes, enc)
    }

    /// `didClose`: returns the document if it was open.
    pub fn close(&mut self, uri: &Uri) -> Option<Document> {
        self.documents.remove(uri)
    }

    pub fn get(&self, uri: &Uri) -> Option<&Document> {
        self.documents.get(uri)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Document> {
        self.documents.values()
    }
}

/// The LSP language id for a file the editor has not opened, from its extension.
pub fn language_from_path(path: &Path) -> String {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let id = match ext {
        "rs" => "rust",
        "py" => "python",
        "ts" => "typescript",
        "tsx" => "typescriptreact",
        "js" | "mjs" | "cjs" => "javascript",
        "go" => "go",
        "c" | "h" => "c",
        "cc" | "cpp" | "hpp" | "cxx" => "cpp",
        "java" => "java",
        "lua" => "lua",
        "rb" => "ruby",
        "md" => "markdown",
        "sh" => "shellscript",
        "toml" => "toml",
        "json" => "json",
        "yaml" | "yml" => "yaml",
        _ => "plaintext",
    };
    id.to_owned()
}

/// A small deterministic pseudo-random generator for fuzz-like tests (no proptest here).
#[cfg(test)]
pub(crate) mod test_rng {
    pub(crate) struct Rng(u64);

    impl Rng {
        pub(crate) fn new(seed: u64) -> Self {
            Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }

        /// xorshift64*.
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Uniform-enough value in `0..bound` (`bound > 0`).
        pub(crate) fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound as u64) as usize
        }

        pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    /// Pieces that exercise every conversion: multi-unit chars, combining marks, all line breaks,
    /// and characters that ropey (but not LSP) treats as line breaks.
    pub(crate) const PIECES: &[&str] = &[
        "a", "b", "word", " ", "_x1", "\n", "\r\n", "\r", "😀", "中文", "e\u{301}", "\u{2028}",
        "\u{c}", "é", "\t", "🇫🇷", "ß",
    ];

    pub(crate) fn text(rng: &mut Rng, max_pieces: usize) -> String {
        let count = rng.below(max_pieces + 1);
        (0..count).map(|_| *rng.pick(PIECES)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_rng::{self, Rng};
    use super::*;
    use pretty_assertions::assert_eq;
    use std::str::FromStr;

    const ALL: [PositionEncoding; 3] =
        [PositionEncoding::Utf8, PositionEncoding::Utf16, PositionEncoding::Utf32];

    fn uri() -> Uri {
        Uri::from_str("file:///project/src/lib.rs").unwrap()
    }

    fn pos(line: u32, character: u32) -> Position {
        Position::new(line, character)
    }

    fn change(range: Option<(u32, u32, u32, u32)>, text: &str) -> TextDocumentContentChangeEvent {
        TextDocumentContentChangeEvent {
            range: range.map(|(l1, c1, l2, c2)| Range::new(pos(l1, c1), pos(l2, c2))),
            range_length: None,
            text: text.to_owned(),
        }
    }

    /// Line starts computed the slow, obvious way.
    fn reference_line_starts(text: &str) -> Vec<usize> {
        let chars: Vec<char> = text.chars().collect();
        let mut starts = vec![0];
        for (i, &ch) in chars.iter().enumerate() {
            let breaks = ch == '\n' || (ch == '\r' && chars.get(i + 1) != Some(&'\n'));
            if breaks {
                starts.push(i + 1);
            }
        }
        starts
    }

    #[test]
    fn negotiates_utf8_then_utf32_then_utf16() {
        use PositionEncodingKind as K;
        let cases: &[(Option<&[K]>, PositionEncoding)] = &[
            (None, PositionEncoding::Utf16),
            (Some(&[]), PositionEncoding::Utf16),
            (Some(&[K::UTF16]), PositionEncoding::Utf16),
            (Some(&[K::UTF16, K::UTF8]), PositionEncoding::Utf8),
            (Some(&[K::UTF32, K::UTF16]), PositionEncoding::Utf32),
            (Some(&[K::UTF32, K::UTF8]), PositionEncoding::Utf8),
            (Some(&[K::new("utf-7")]), PositionEncoding::Utf16),
        ];
        for (offered, expected) in cases {
            assert_eq!(PositionEncoding::negotiate(*offered), *expected, "{offered:?}");
        }
        for enc in ALL {
            assert_eq!(PositionEncoding::negotiate(Some(&[enc.kind()])), enc);
        }
    }

    #[test]
    fn only_lf_crlf_and_lone_cr_break_lines() {
        let cases: &[(&str, &[usize])] = &[
            ("", &[0]),
            ("a", &[0]),
            ("a\n", &[0, 2]),
            ("a\r\nb", &[0, 3]),
            ("a\rb", &[0, 2]),
            ("a\r", &[0, 2]),
            ("\r\n\r\n", &[0, 2, 4]),
            ("\n\r", &[0, 1, 2]),
            ("\r\r\n", &[0, 1, 3]),
            ("a\u{2028}b\u{c}c\u{85}d\u{b}e", &[0]),
        ];
        for (text, expected) in cases {
            let rope = Rope::from_str(text);
            assert_eq!(LineIndex::new(&rope).starts, *expected, "{text:?}");
        }
    }

    #[test]
    fn line_starts_are_right_across_rope_chunks() {
        let mut rng = Rng::new(7);
        for _ in 0..20 {
            // Large enough for many ropey chunks, so `\r\n` pairs land on chunk edges.
            let text = test_rng::text(&mut rng, 3000);
            let rope = Rope::from_str(&text);
            assert_eq!(LineIndex::new(&rope).starts, reference_line_starts(&text));
        }
        let long_crlf = "xy\r\n".repeat(5000);
        let rope = Rope::from_str(&long_crlf);
        assert!(rope.chunks().count() > 10);
        assert_eq!(LineIndex::new(&rope).starts, reference_line_starts(&long_crlf));
    }

    #[test]
    fn crlf_split_between_chunks_is_one_line_break() {
        let cases: &[(&[&str], &[usize])] = &[
            (&["a\r", "\nb"], &[0, 3]),
            (&["a\r", "b"], &[0, 2]),
            (&["a\r"], &[0, 2]),
            (&["a\r", "", "\n"], &[0, 3]),
            (&["中\r", "\n文\r", "\r\n"], &[0, 3, 5, 7]),
        ];
        for (chunks, expected) in cases {
            assert_eq!(scan_line_starts(chunks.iter().copied()), *expected, "{chunks:?}");
        }
    }

    #[test]
    fn positions_convert_to_offsets_with_clamping() {
        use PositionEncoding::{Utf8, Utf16, Utf32};
        // (text, position, encoding, expected char offset)
        let cases: &[(&str, (u32, u32), PositionEncoding, usize)] = &[
            ("hello\nworld", (1, 3), Utf8, 9),
            ("hello\nworld", (1, 3), Utf16, 9),
            ("hello\nworld", (1, 3), Utf32, 9),
            // 😀 is 2 UTF-16 units and 4 UTF-8 bytes.
            ("a😀b", (0, 3), Utf16, 2),
            ("a😀b", (0, 2), Utf16, 1), // inside the surrogate pair → before it
            ("a😀b", (0, 5), Utf8, 2),
            ("a😀b", (0, 3), Utf8, 1), // inside the UTF-8 sequence → before it
            ("a😀b", (0, 2), Utf32, 2),
            // CJK: 3 UTF-8 bytes, 1 UTF-16 unit each.
            ("中文x", (0, 6), Utf8, 2),
            ("中文x", (0, 4), Utf8, 1),
            ("中文x", (0, 2), Utf16, 2),
            // A combining mark is a char of its own.
            ("e\u{301}x", (0, 2), Utf16, 2),
            ("e\u{301}x", (0, 3), Utf8, 2),
            ("e\u{301}x", (0, 1), Utf32, 1),
            // CRLF: past the line end stops before the `\r`.
            ("ab\r\ncd", (0, 5), Utf16, 2),
            ("ab\r\ncd", (0, 3), Utf8, 2),
            ("ab\r\ncd", (1, 0), Utf16, 4),
            ("ab\r\ncd", (1, 9), Utf16, 6),
            // Lone CR.
            ("ab\rcd", (1, 1), Utf16, 4),
            ("ab\rcd", (0, 9), Utf16, 2),
            // Form feed and U+2028 are not LSP line breaks.
            ("a\u{c}b\nc", (1, 0), Utf16, 4),
            ("a\u{2028}b\nc", (0, 3), Utf16, 3),
            ("a\u{2028}b\nc", (0, 5), Utf8, 3),
            // Past the last line → end of text.
            ("ab\ncd", (5, 0), Utf16, 5),
            ("ab\n", (1, 4), Utf16, 3),
            ("ab\n", (2, 0), Utf16, 3),
            // Empty document.
            ("", (0, 0), Utf16, 0),
            ("", (3, 3), Utf8, 0),
        ];
        for &(text, (line, character), enc, expected) in cases {
            let rope = Rope::from_str(text);
            assert_eq!(
                to_offset(&rope, pos(line, character), enc),
                expected,
                "{text:?} {line}:{character} {enc:?}"
            );
        }
    }

    #[test]
    fn offsets_convert_to_positions() {
        use PositionEncoding::{Utf8, Utf16, Utf32};
        // (text, char offset, encoding, expected position)
        let cases: &[(&str, usize, PositionEncoding, (u32, u32))] = &[
            ("hello\nworld", 9, Utf16, (1, 3)),
            ("a😀b", 2, Utf8, (0, 5)),
            ("a😀b", 2, Utf16, (0, 3)),
            ("a😀b", 2, Utf32, (0, 2)),
            ("中文x", 2, Utf8, (0, 6)),
            ("ab\r\ncd", 2, Utf16, (0, 2)),
            ("ab\r\ncd", 3, Utf16, (0, 2)), // between `\r` and `\n` → end of line
            ("ab\r\ncd", 4, Utf16, (1, 0)),
            ("ab\rcd", 3, Utf16, (1, 0)),
            ("ab\r", 3, Utf16, (1, 0)),
            ("ab", 99, Utf16, (0, 2)),
            ("", 0, Utf8, (0, 0)),
            ("", 5, Utf8, (0, 0)),
            ("x\u{c}y\nz", 3, Utf16, (0, 3)),
        ];
        for &(text, offset, enc, (line, character)) in cases {
            let rope = Rope::from_str(text);
            assert_eq!(
                to_position(&rope, offset, enc),
                pos(line, character),
                "{text:?} @{offset} {enc:?}"
            );
        }
    }

    #[test]
    fn offsets_round_trip_in_every_encoding() {
        let mut rng = Rng::new(11);
        let mut texts: Vec<String> = ["", "a😀b\r\n中文\re\u{301}\n", "\r\n\r\n", "🇫🇷\u{2028}x\r"]
            .iter()
            .map(|t| (*t).to_owned())
            .collect();
        texts.extend((0..40).map(|_| test_rng::text(&mut rng, 40)));
        for text in &texts {
            let rope = Rope::from_str(text);
            let index = LineIndex::new(&rope);
            let chars: Vec<char> = text.chars().collect();
            for enc in ALL {
                for offset in 0..=chars.len() {
                    let inside_crlf =
                        offset > 0 && chars[offset - 1] == '\r' && chars.get(offset) == Some(&'\n');
                    let position = index.position(&rope, offset, enc);
                    let back = index.offset(&rope, position, enc);
                    if inside_crlf {
                        assert_eq!(back, offset - 1, "{text:?} @{offset} {enc:?}");
                    } else {
                        assert_eq!(back, offset, "{text:?} @{offset} {enc:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn document_accessors() {
        let doc = Document::new(uri(), "rust".into(), 3, "fn a() {}\r\n  b😀\rlast");
        assert_eq!(doc.version(), 3);
        assert_eq!(doc.language_id(), "rust");
        assert_eq!(doc.uri(), &uri());
        assert_eq!(doc.line_count(), 3);
        assert_eq!(doc.line_text(0).as_deref(), Some("fn a() {}"));
        assert_eq!(doc.line_text(1).as_deref(), Some("  b😀"));
        assert_eq!(doc.line_text(2).as_deref(), Some("last"));
        assert_eq!(doc.line_text(3), None);
        assert_eq!(doc.text(), "fn a() {}\r\n  b😀\rlast");
        assert_eq!(doc.rope().len_chars(), 20);
        let range = Range::new(pos(0, 3), pos(1, 5));
        assert_eq!(doc.range_text(range, PositionEncoding::Utf16), "a() {}\r\n  b😀");
        assert_eq!(doc.range_text(range, PositionEncoding::Utf8), "a() {}\r\n  b");
        let reversed = Range::new(pos(1, 0), pos(0, 0));
        assert_eq!(doc.range_text(reversed, PositionEncoding::Utf16), "");
        assert_eq!(doc.position(12, PositionEncoding::Utf16), pos(1, 1));
        assert_eq!(doc.offset(pos(2, 2), PositionEncoding::Utf16), 18);
    }

    #[test]
    fn incremental_changes_apply_in_order() {
        use PositionEncoding::{Utf8, Utf16};
        // (initial text, changes, encoding, expected text)
        let cases: Vec<(&str, Vec<TextDocumentContentChangeEvent>, PositionEncoding, &str)> = vec![
            ("hello world", vec![change(Some((0, 6, 0, 11)), "there")], Utf16, "hello there"),
            (
                "a\r\nb\r\n",
                vec![change(Some((1, 1, 1, 1)), "c"), change(Some((0, 0, 0, 0)), "> ")],
                Utf16,
                "> a\r\nbc\r\n",
            ),
            ("😀x", vec![change(Some((0, 2, 0, 3)), "y")], Utf16, "😀y"),
            ("😀x", vec![change(Some((0, 4, 0, 5)), "y")], Utf8, "😀y"),
            ("one\ntwo\nthree", vec![change(Some((0, 3, 2, 0)), " ")], Utf16, "one three"),
            ("abc", vec![change(Some((0, 1, 0, 99)), "Z")], Utf16, "aZ"),
            ("abc", vec![change(Some((7, 0, 9, 0)), "!")], Utf16, "abc!"),
            ("a\rb", vec![change(Some((1, 0, 1, 0)), "\n")], Utf16, "a\r\nb"),
            (
                "old",
                vec![change(None, "new\r\n"), change(Some((1, 0, 1, 0)), "x")],
                Utf16,
                "new\r\nx",
            ),
            ("", vec![change(Some((0, 0, 0, 0)), "中\r\n文")], Utf8, "中\r\n文"),
        ];
        for (initial, changes, enc, expected) in cases {
            let mut doc = Document::new(uri(), "text".into(), 1, initial);
            doc.apply_changes(2, &changes, enc).unwrap();
            assert_eq!(doc.text(), expected, "{initial:?}");
            assert_eq!(doc.version(), 2);
            assert_eq!(doc.lines, LineIndex::new(doc.rope()), "index after {initial:?}");
        }
    }

    #[test]
    fn a_change_that_cannot_apply_leaves_the_document_out_of_sync_until_a_full_text() {
        let mut doc = Document::new(uri(), "text".into(), 1, "abc\ndef");
        assert!(doc.apply_changes(1, &[change(None, "x")], PositionEncoding::Utf16).is_err());
        assert!(!doc.is_out_of_sync(), "a repeated version is not a missed change");
        let bad = [change(Some((1, 2, 0, 1)), "y")];
        assert!(doc.apply_changes(2, &bad, PositionEncoding::Utf16).is_err());
        assert!(doc.is_out_of_sync());
        doc.apply_changes(3, &[change(Some((0, 0, 0, 0)), "z")], PositionEncoding::Utf16).unwrap();
        assert!(doc.is_out_of_sync(), "an edit on top of the wrong text is still wrong");
        doc.apply_changes(4, &[change(None, "fresh")], PositionEncoding::Utf16).unwrap();
        assert!(!doc.is_out_of_sync());
        assert_eq!(doc.text(), "fresh");
    }

    #[test]
    fn stale_versions_and_invalid_ranges_are_errors_and_change_nothing() {
        let mut doc = Document::new(uri(), "text".into(), 5, "abc\ndef");
        let insert = [change(Some((0, 0, 0, 0)), "x")];
        for stale in [5, 4, -1] {
            let error = doc.apply_changes(stale, &insert, PositionEncoding::Utf16).unwrap_err();
            assert_eq!(error, DocumentError::StaleVersion { current: 5, got: stale });
            assert!(error.to_string().contains("already at version 5"), "{error}");
        }
        let changes = [change(Some((0, 0, 0, 0)), "x"), change(Some((1, 2, 0, 1)), "y")];
        let error = doc.apply_changes(6, &changes, PositionEncoding::Utf16).unwrap_err();
        assert_eq!(error, DocumentError::InvalidRange { start: pos(1, 2), end: pos(0, 1) });
        assert_eq!(error.to_string(), "invalid range 1:2–0:1: its end is before its start");
        assert_eq!(doc.text(), "abc\ndef");
        assert_eq!(doc.version(), 5);
        doc.apply_changes(6, &insert, PositionEncoding::Utf16).unwrap();
        assert_eq!(doc.text(), "xabc\ndef");
    }

    #[test]
    fn random_edits_keep_the_line_index_exact() {
        let mut rng = Rng::new(3);
        for round in 0..60 {
            let initial = test_rng::text(&mut rng, 30);
            let mut doc = Document::new(uri(), "text".into(), 0, &initial);
            let mut expected: Vec<char> = initial.chars().collect();
            for version in 1..15 {
                let len = expected.len();
                let start = rng.below(len + 1);
                let end = start + rng.below(len - start + 1);
                let inserted = test_rng::text(&mut rng, 4);
                let enc = *rng.pick(&ALL);
                let range = Range::new(doc.position(start, enc), doc.position(end, enc));
                // Positions cannot point inside a `\r\n`; mirror the clamping.
                let start = doc.offset(range.start, enc);
                let end = doc.offset(range.end, enc);
                let event = TextDocumentContentChangeEvent {
                    range: Some(range),
                    range_length: None,
                    text: inserted.clone(),
                };
                doc.apply_changes(version, &[event], enc)
                    .unwrap_or_else(|e| panic!("round {round}: {e}"));
                expected.splice(start..end, inserted.chars());
                let expected_text: String = expected.iter().collect();
                assert_eq!(doc.text(), expected_text, "round {round}");
                assert_eq!(
                    doc.lines.starts,
                    reference_line_starts(&expected_text),
                    "round {round}"
                );
            }
        }
    }

    #[test]
    fn store_opens_changes_and_closes() {
        let mut store = DocumentStore::new();
        let missing =
            store.change(&uri(), 2, &[change(None, "x")], PositionEncoding::Utf16).unwrap_err();
        assert_eq!(missing, DocumentError::NotOpen { uri: "file:///project/src/lib.rs".into() });
        assert!(missing.to_string().contains("is not open"));

        store.open(uri(), "rust".into(), 1, "one");
        store
            .change(&uri(), 2, &[change(Some((0, 3, 0, 3)), "!")], PositionEncoding::Utf16)
            .unwrap();
        assert_eq!(store.get(&uri()).unwrap().text(), "one!");
        // Opening again replaces, version included.
        store.open(uri(), "rust".into(), 1, "two");
        assert_eq!(store.get(&uri()).unwrap().text(), "two");
        assert_eq!(store.get(&uri()).unwrap().version(), 1);
        assert_eq!(store.iter().count(), 1);

        let closed = store.close(&uri()).unwrap();
        assert_eq!(closed.text(), "two");
        assert!(store.get(&uri()).is_none());
        assert!(store.close(&uri()).is_none());
    }
}
