//! Embedded text as the prompt shows it: numbered lines, fences no content can close.

use std::fmt::Write as _;

use super::limits::shown_line;

/// Width of the line number column: at least 4, so `  12 | code`.
pub(super) fn number_width(line_count: usize) -> usize {
    line_count.to_string().len().max(4)
}

/// `  12 | code` lines, 1-based; lines longer than `max_line_chars` are cut.
pub(super) fn numbered<'l>(
    lines: impl Iterator<Item = (usize, &'l str)>,
    width: usize,
    max_line_chars: Option<usize>,
) -> String {
    let mut out = String::new();
    for (index, line) in lines {
        let _ = write!(out, "{:>width$} |", index + 1);
        if !line.is_empty() {
            out.push(' ');
            out.push_str(&shown_line(line, max_line_chars));
        }
        out.push('\n');
    }
    out
}

/// `content` in a fenced block whose fence is longer than any backtick run inside it.
pub fn fenced(content: &str, tag: &str) -> String {
    let longest_run = content.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run.max(2) + 1);
    let mut block = format!("{fence}{tag}\n{content}");
    if !content.ends_with('\n') {
        block.push('\n');
    }
    let _ = writeln!(block, "{fence}");
    block
}
