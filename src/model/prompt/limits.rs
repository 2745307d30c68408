//! How much text a prompt embeds: the limits, and how much of a text fits in them.

use std::borrow::Cow;

/// Files up to this many lines (and [`MAX_FILE_BYTES`]) are shown whole; longer ones are shown
/// as a window around the selection.
pub(super) const MAX_FILE_LINES: usize = 2_000;
/// Files up to this many bytes (and [`MAX_FILE_LINES`]) are shown whole (~30k tokens).
pub(super) const MAX_FILE_BYTES: usize = 120_000;
/// The most lines a window of a long file shows.
pub(super) const WINDOW_LINES: usize = 400;
/// The most bytes a window of a long file (or a long selection or diff) shows.
pub(super) const WINDOW_BYTES: usize = 40_000;
/// Lines longer than this are cut inside a window (minified code would otherwise fill it).
pub(super) const MAX_LINE_CHARS: usize = 1_000;

/// The limits on how much text a prompt embeds. Tests shrink them to keep snapshots readable.
#[derive(Debug, Clone, Copy)]
pub(super) struct TextLimits {
    pub(super) max_file_lines: usize,
    pub(super) max_file_bytes: usize,
    pub(super) window_lines: usize,
    pub(super) window_bytes: usize,
    pub(super) max_line_chars: usize,
    /// False: name the file, the selection and the changes, and let the agent read them.
    pub(super) inline_text: bool,
}

impl TextLimits {
    pub(super) const DEFAULT: TextLimits = TextLimits {
        max_file_lines: MAX_FILE_LINES,
        max_file_bytes: MAX_FILE_BYTES,
        window_lines: WINDOW_LINES,
        window_bytes: WINDOW_BYTES,
        max_line_chars: MAX_LINE_CHARS,
        inline_text: true,
    };
    pub(super) const REFERENCES: TextLimits =
        TextLimits { inline_text: false, ..TextLimits::DEFAULT };
}

/// How many of `lines` fit in `budget` bytes (at least one), and whether that is fewer than
/// all. Lines count as [`shown_line`] shows them.
pub(super) fn prefix_within(
    lines: &[&str],
    budget: usize,
    max_line_chars: Option<usize>,
) -> (usize, bool) {
    let mut bytes = 0;
    for (index, line) in lines.iter().enumerate() {
        bytes += shown_line(line, max_line_chars).len() + 1;
        if bytes > budget && index > 0 {
            return (index, true);
        }
    }
    (lines.len(), false)
}

/// `line`, cut after `max_chars` characters with a note saying so.
pub(super) fn shown_line(line: &str, max_chars: Option<usize>) -> Cow<'_, str> {
    match max_chars.and_then(|max| line.char_indices().nth(max)) {
        Some((cut, _)) => Cow::Owned(format!(
            "{} … [line cut: {} characters]",
            &line[..cut],
            line.chars().count()
        )),
        None => Cow::Borrowed(line),
    }
}
