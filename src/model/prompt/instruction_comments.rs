//! The scan for instruction comments (`claude: …`, `TODO: …`) behind the cheap code actions.

use std::ops::RangeInclusive;

use serde::Serialize;

use crate::base::text::lsp_lines;

/// An instruction found in a comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstructionComment {
    /// 0-based.
    pub line: u32,
    pub instruction: String,
    pub kind: InstructionKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstructionKind {
    /// `claude: …`
    Claude,
    /// `TODO: …` or `TODO(name): …`
    Todo,
    /// `FIXME: …` or `FIXME(name): …`
    Fixme,
}

/// Comment openers of common languages, longest first where one starts another.
const COMMENT_MARKERS: [&str; 8] = ["<!--", "/*", "(*", "//", "--", "#", ";", "%"];
/// Closers cut from the end of an instruction.
const COMMENT_CLOSERS: [&str; 4] = ["*/", "-->", "*)", "-}"];
const KEYWORDS: [(&str, InstructionKind); 3] = [
    ("claude", InstructionKind::Claude),
    ("todo", InstructionKind::Todo),
    ("fixme", InstructionKind::Fixme),
];

/// Finds `claude: …`, `TODO: …` and `FIXME: …` (any case; TODO and FIXME may carry a
/// `(name)`) at the start of a comment on the 0-based `lines` of `text`. Comments start with
/// `//`, `#`, `--`, `/*`, `<!--`, `(*`, `;`, `%`, or a leading `*` (inside a block comment).
/// A marker inside a string literal on the same line does not start a comment, so `"TODO: x"` in
/// code is not found; a line inside a multi-line comment or string without a marker is not
/// found either.
pub fn instruction_comments(text: &str, lines: RangeInclusive<u32>) -> Vec<InstructionComment> {
    let (first, last) = (*lines.start(), *lines.end());
    if first > last {
        return Vec::new();
    }
    lsp_lines(text)
        .enumerate()
        .skip(first as usize)
        .take((last - first) as usize + 1)
        .filter_map(|(index, line)| {
            let (kind, instruction) = instruction_in_line(line)?;
            Some(InstructionComment { line: u32::try_from(index).ok()?, instruction, kind })
        })
        .collect()
}

fn instruction_in_line(line: &str) -> Option<(InstructionKind, String)> {
    let indent = line.len() - line.trim_start().len();
    let body = &line[indent..];
    if body.starts_with('*') && !body.starts_with("*/") {
        if let Some(found) = instruction_after_marker(&body[1..]) {
            return Some(found);
        }
    }
    let bytes = line.as_bytes();
    let mut quote = None;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if let Some(open) = quote {
            if byte == b'\\' {
                at += 2;
                continue;
            }
            if byte == open {
                quote = None;
            }
            at += 1;
            continue;
        }
        match byte {
            b'"' | b'`' => quote = Some(byte),
            // A lone apostrophe (a Rust lifetime, a Lisp quote, prose) opens no string.
            b'\'' if memchr::memchr(b'\'', &bytes[at + 1..]).is_some() => quote = Some(byte),
            _ => {
                // Compared as bytes: `at` may be inside a multi-byte character. Markers are
                // ASCII, so the end of a matched one is a character boundary.
                let rest = &bytes[at..];
                if let Some(marker) =
                    COMMENT_MARKERS.iter().find(|marker| rest.starts_with(marker.as_bytes()))
                {
                    if let Some(found) = instruction_after_marker(&line[at + marker.len()..]) {
                        return Some(found);
                    }
                    at += marker.len();
                    continue;
                }
            }
        }
        at += 1;
    }
    None
}

/// The instruction when the comment text right after a marker starts with a keyword and a colon.
fn instruction_after_marker(comment: &str) -> Option<(InstructionKind, String)> {
    // Repeated or decorated markers: `///`, `//!`, `/**`, `##`, `;;;`, `---`.
    let text = comment.trim_start_matches(['/', '*', '!', '#', ';', '%', '-']).trim_start();
    let (kind, rest) = KEYWORDS.iter().find_map(|(keyword, kind)| {
        let head = text.get(..keyword.len())?;
        head.eq_ignore_ascii_case(keyword).then(|| (*kind, &text[keyword.len()..]))
    })?;
    let rest = match (kind, rest.strip_prefix('(')) {
        (InstructionKind::Todo | InstructionKind::Fixme, Some(owner)) => {
            &owner[owner.find(')')? + 1..]
        }
        _ => rest,
    };
    let mut instruction = rest.strip_prefix(':')?.trim();
    while let Some(stripped) =
        COMMENT_CLOSERS.iter().find_map(|closer| instruction.strip_suffix(closer))
    {
        instruction = stripped.trim_end();
    }
    (!instruction.is_empty()).then(|| (kind, instruction.to_owned()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn found(text: &str) -> Vec<(u32, InstructionKind, String)> {
        instruction_comments(text, 0..=u32::MAX)
            .into_iter()
            .map(|comment| (comment.line, comment.kind, comment.instruction))
            .collect()
    }

    #[test]
    fn instruction_comments_across_languages() {
        use InstructionKind::{Claude, Fixme, Todo};
        let cases: &[(&str, Option<(InstructionKind, &str)>)] = &[
            ("// claude: make this async", Some((Claude, "make this async"))),
            ("    // Claude: extract a helper", Some((Claude, "extract a helper"))),
            ("/// TODO: document the panics", Some((Todo, "document the panics"))),
            ("//! FIXME: crate docs are stale", Some((Fixme, "crate docs are stale"))),
            ("# TODO(alice): handle None", Some((Todo, "handle None"))),
            ("// FIXME(bob): race on close", Some((Fixme, "race on close"))),
            ("// TODO(unclosed: x", None),
            ("// claude(x): owners are for TODO and FIXME", None),
            ("## fixme: lowercase works too", Some((Fixme, "lowercase works too"))),
            ("-- TODO: add an index", Some((Todo, "add an index"))),
            ("/* TODO: free the buffer */", Some((Todo, "free the buffer"))),
            ("/** claude: add docs */", Some((Claude, "add docs"))),
            (" * TODO: inside a block comment", Some((Todo, "inside a block comment"))),
            ("<!-- claude: add alt text -->", Some((Claude, "add alt text"))),
            ("; TODO: save the registers", Some((Todo, "save the registers"))),
            (";;; FIXME: elisp", Some((Fixme, "elisp"))),
            ("% TODO: cite the paper", Some((Todo, "cite the paper"))),
            ("(* TODO: tail recursion *)", Some((Todo, "tail recursion"))),
            ("let x = 1; // TODO: overflow?", Some((Todo, "overflow?"))),
            ("x = f(\"a#b\")  # FIXME: quote handling", Some((Fixme, "quote handling"))),
            ("url = \"http://example.com\"  # TODO: config", Some((Todo, "config"))),
            ("fn f<'a>(x: &'a str) {} // TODO: lifetimes", Some((Todo, "lifetimes"))),
            ("let c = '\"'; // TODO: char", Some((Todo, "char"))),
            ("#[derive(Debug)] // claude: derive Clone", Some((Claude, "derive Clone"))),
            ("*ptr = 0; // TODO: null check", Some((Todo, "null check"))),
            ("// TODO:no space", Some((Todo, "no space"))),
            (
                "// claude: use `?` here; don't \"unwrap\"",
                Some((Claude, "use `?` here; don't \"unwrap\"")),
            ),
            // Not instructions:
            ("let s = \"TODO: not a comment\";", None),
            ("let s = \"// TODO: inside a string\";", None),
            ("let s = 'x // TODO: single quotes';", None),
            ("let s = `${a} // TODO: template`;", None),
            ("let s = \"escaped \\\" // TODO: still a string\";", None),
            ("s = \"unterminated // TODO: x", None),
            ("todo!(\"TODO: later\")", None),
            ("// this is not a TODO: mid-sentence", None),
            ("// TODO fix without a colon", None),
            ("// TODOS: plural", None),
            ("// TODO:", None),
            ("// TODO: */", None),
            ("#include <todo.h>", None),
            ("TODO: no comment marker", None),
            ("see http://host/TODO: path", None),
            ("*/", None),
            ("", None),
        ];
        for (line, expected) in cases {
            let expected: Vec<_> = expected
                .iter()
                .map(|(kind, instruction)| (0, *kind, (*instruction).to_owned()))
                .collect();
            assert_eq!(found(line), expected, "{line:?}");
        }
    }

    #[test]
    fn instruction_comments_respect_the_line_range() {
        let text = "// claude: one\r\nfn a() {}\r\n# TODO: three\n// FIXME: four\r// claude: five";
        assert_eq!(
            instruction_comments(text, 0..=4),
            [
                InstructionComment {
                    line: 0,
                    instruction: "one".into(),
                    kind: InstructionKind::Claude
                },
                InstructionComment {
                    line: 2,
                    instruction: "three".into(),
                    kind: InstructionKind::Todo
                },
                InstructionComment {
                    line: 3,
                    instruction: "four".into(),
                    kind: InstructionKind::Fixme
                },
                InstructionComment {
                    line: 4,
                    instruction: "five".into(),
                    kind: InstructionKind::Claude
                },
            ]
        );
        let lines: Vec<u32> = instruction_comments(text, 1..=3).iter().map(|c| c.line).collect();
        assert_eq!(lines, [2, 3]);
        let reversed = RangeInclusive::new(3, 1);
        assert_eq!(instruction_comments(text, reversed), []);
        assert_eq!(instruction_comments(text, 10..=20), []);
        assert_eq!(instruction_comments("", 0..=0), []);
        assert_eq!(serde_json::to_value(InstructionKind::Fixme).unwrap(), json!("fixme"));
    }

    #[test]
    fn instruction_comments_handle_non_ascii_text() {
        assert_eq!(
            found("// claude: übersetze «das» — bitte"),
            [(0, InstructionKind::Claude, "übersetze «das» — bitte".to_owned())]
        );
        assert_eq!(found("let s = \"é\"; # TODO: ñ"), [(0, InstructionKind::Todo, "ñ".to_owned())]);
        assert_eq!(found("日本語 // TODO: 直す"), [(0, InstructionKind::Todo, "直す".to_owned())]);
    }
}
