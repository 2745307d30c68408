//! Text helpers: lines as LSP counts them (`\n`, `\r\n` and a lone `\r` each end a line), and
//! JSON values named in words for messages.

use serde_json::Value;

/// The lines of `text`, each with its line break, so that joining them gives `text` back byte for
/// byte. The last line has no break; there is no empty line after a final break.
pub fn lines_with_breaks(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = match memchr::memchr2(b'\n', b'\r', rest.as_bytes()) {
            Some(at) if rest[at..].starts_with("\r\n") => at + 2,
            Some(at) => at + 1,
            None => rest.len(),
        };
        let (line, after) = rest.split_at(end);
        rest = after;
        Some(line)
    })
}

/// The LSP lines of `text`, without their breaks. Always yields at least one (possibly empty)
/// line, and an empty last line after a final line break.
pub fn lsp_lines(text: &str) -> impl Iterator<Item = &str> {
    let empty_last = text.is_empty() || ends_with_break(text);
    lines_with_breaks(text).map(without_break).chain(empty_last.then_some(""))
}

/// How many line breaks `text` holds.
pub fn line_breaks(text: &str) -> u32 {
    let breaks = lines_with_breaks(text).filter(|line| ends_with_break(line)).count();
    u32::try_from(breaks).unwrap_or(u32::MAX)
}

fn ends_with_break(text: &str) -> bool {
    text.ends_with(['\n', '\r'])
}

/// A line of [`lines_with_breaks`] without its break (`\r\n` is one break; a line never ends in
/// `\r` before its `\n` break, or that would be a `\r\n`).
fn without_break(line: &str) -> &str {
    line.strip_suffix("\r\n").or_else(|| line.strip_suffix(['\n', '\r'])).unwrap_or(line)
}

/// A JSON value's type in words, for messages about values that must not be quoted.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_breaks_and_join_back_to_the_text() {
        for text in ["", "a", "a\n", "a\nb\r\nc\rd", "\r\n\r\n", "\r\r\n\n", "x\r"] {
            let lines: Vec<&str> = lines_with_breaks(text).collect();
            assert_eq!(lines.concat(), text);
            assert!(lines.iter().all(|line| !line.is_empty()), "{text:?}: {lines:?}");
        }
        let lines: Vec<&str> = lines_with_breaks("a\nb\r\nc\rd").collect();
        assert_eq!(lines, ["a\n", "b\r\n", "c\r", "d"]);
        assert_eq!(lines_with_breaks("\r\r\n\n").collect::<Vec<_>>(), ["\r", "\r\n", "\n"]);
    }

    #[test]
    fn lsp_lines_drop_the_breaks_and_end_with_the_line_after_the_last_break() {
        assert_eq!(lsp_lines("a\nb\r\nc\rd\n").collect::<Vec<_>>(), ["a", "b", "c", "d", ""]);
        assert_eq!(lsp_lines("").collect::<Vec<_>>(), [""]);
        assert_eq!(lsp_lines("\r\n\r\n").collect::<Vec<_>>(), ["", "", ""]);
        assert_eq!(lsp_lines("\r\r\n").collect::<Vec<_>>(), ["", "", ""]);
        assert_eq!(lsp_lines("tail").collect::<Vec<_>>(), ["tail"]);
    }

    #[test]
    fn a_crlf_is_one_break_and_a_lone_cr_is_one_too() {
        assert_eq!(line_breaks(""), 0);
        assert_eq!(line_breaks("no break"), 0);
        assert_eq!(line_breaks("a\nb\r\nc\rd"), 3);
        assert_eq!(line_breaks("\r\r\n\n"), 3);
    }
}
