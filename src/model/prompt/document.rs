//! The file's text as LSP lines, a selection checked against it, the window of a long file.

use std::ops::RangeInclusive;

use super::context::{PromptError, Selection};
use super::limits::{TextLimits, shown_line};
use crate::base::text::lsp_lines;

/// The text of the file, split into LSP lines.
pub(super) struct Document<'a> {
    pub(super) text: &'a str,
    /// The lines shown: a final line break does not start another line.
    pub(super) lines: Vec<&'a str>,
}

/// A selection checked against the document, with its last line corrected.
pub(super) struct CheckedSelection<'a> {
    /// 0-based, inclusive.
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) text: &'a str,
}

impl CheckedSelection<'_> {
    pub(super) fn lines_label(&self) -> String {
        if self.start == self.end {
            format!("line {}", self.start + 1)
        } else {
            format!("lines {}–{}", self.start + 1, self.end + 1)
        }
    }
}

impl<'a> Document<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        let mut lines: Vec<&str> = lsp_lines(text).collect();
        if lines.last() == Some(&"") {
            lines.pop();
        }
        Self { text, lines }
    }

    /// "CRLF" or "CR" when the file does not use plain `\n`, so edits keep its endings.
    pub(super) fn line_ending(&self) -> Option<&'static str> {
        let (mut crlf, mut cr, mut lf) = (false, false, false);
        let bytes = self.text.as_bytes();
        for at in memchr::memchr2_iter(b'\n', b'\r', bytes) {
            match (bytes[at], bytes.get(at + 1)) {
                (b'\r', Some(b'\n')) => crlf = true,
                (b'\r', _) => cr = true,
                // The `\n` of a `\r\n` was counted with its `\r`.
                (_, _) if at > 0 && bytes[at - 1] == b'\r' => {}
                _ => lf = true,
            }
        }
        match (crlf, cr, lf) {
            (false, false, _) => None,
            (true, false, false) => Some("CRLF"),
            (false, true, false) => Some("CR"),
            _ => Some("mixed"),
        }
    }

    pub(super) fn check<'s>(
        &self,
        selection: &'s Selection,
    ) -> Result<CheckedSelection<'s>, PromptError> {
        // LSP counts the empty line after a final line break (the cursor can be there).
        let lsp_line_count = lsp_lines(self.text).count();
        let last_line = lsp_line_count - 1;
        let start = selection.start_line as usize;
        if selection.start_line > selection.end_line || start > last_line {
            return Err(PromptError::InvalidSelection {
                start_line: selection.start_line,
                end_line: selection.end_line,
                line_count: lsp_line_count,
            });
        }
        // A selection of whole lines ends at column 0 of the next line, which is not selected.
        let ends_with_break = selection.text.ends_with(['\n', '\r']);
        let end = if ends_with_break && selection.end_line > selection.start_line {
            selection.end_line as usize - 1
        } else {
            selection.end_line as usize
        };
        Ok(CheckedSelection { start, end: end.min(last_line), text: &selection.text })
    }

    /// The lines to show of a long file: the focus first, then alternately the lines above and
    /// below it, within the window's line and byte budgets.
    pub(super) fn window(
        &self,
        focus: RangeInclusive<usize>,
        limits: &TextLimits,
    ) -> std::ops::Range<usize> {
        let last = self.lines.len().saturating_sub(1);
        let focus_start = (*focus.start()).min(last);
        let focus_end = (*focus.end()).min(last);
        // What a line costs once numbered and, if too long, cut.
        let cost =
            |index: usize| shown_line(self.lines[index], Some(limits.max_line_chars)).len() + 8;
        let mut start = focus_start;
        let mut end = focus_start + 1;
        let mut bytes = cost(focus_start);
        let fits = |bytes: usize, lines: usize| {
            lines <= limits.window_lines && bytes <= limits.window_bytes
        };
        while end <= focus_end && fits(bytes + cost(end), end - start + 1) {
            bytes += cost(end);
            end += 1;
        }
        loop {
            let mut grew = false;
            if start > 0 && fits(bytes + cost(start - 1), end - start + 1) {
                start -= 1;
                bytes += cost(start);
                grew = true;
            }
            if end < self.lines.len() && fits(bytes + cost(end), end - start + 1) {
                bytes += cost(end);
                end += 1;
                grew = true;
            }
            if !grew {
                break;
            }
        }
        start..end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsp_lines_follow_the_lsp_line_breaks() {
        let lines: Vec<&str> = lsp_lines("a\nb\r\nc\rd\n").collect();
        assert_eq!(lines, ["a", "b", "c", "d", ""]);
        assert_eq!(lsp_lines("").collect::<Vec<_>>(), [""]);
        assert_eq!(lsp_lines("\r\n\r\n").collect::<Vec<_>>(), ["", "", ""]);
        assert_eq!(Document::new("x\r\ny\r\n").line_ending(), Some("CRLF"));
        assert_eq!(Document::new("x\ny\r\n").line_ending(), Some("mixed"));
        assert_eq!(Document::new("x\ny\n").line_ending(), None);
        assert_eq!(Document::new("x\ry\r").line_ending(), Some("CR"));
        assert_eq!(Document::new("x\r\ny\r").line_ending(), Some("mixed"));
        assert_eq!(Document::new("no break").line_ending(), None);
    }
}
