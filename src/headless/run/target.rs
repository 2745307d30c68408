//! The target argument, `path[:line[:col][-line[:col]]]`, and the selection it names.

use std::path::{Path, PathBuf};

use super::failure::Failure;
use crate::model::documents::{Document, PositionEncoding};
use crate::model::edits;
use crate::model::prompt::Selection;
use crate::protocol::lsp::{Position, Range};

/// A 1-based position or range in a target argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TargetRange {
    pub(super) start_line: u32,
    pub(super) start_column: Option<u32>,
    pub(super) end: Option<(u32, Option<u32>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TargetSpec {
    pub(super) path: PathBuf,
    pub(super) range: Option<TargetRange>,
}

/// `path[:line[:col][-line[:col]]]`, with `path` relative to `cwd`. A path that exists as written
/// (even with colons in its name) is taken whole.
pub(super) fn parse_target(text: &str, cwd: &Path) -> Result<TargetSpec, Failure> {
    let resolve = |path: &str| -> Result<PathBuf, Failure> {
        let path = cwd.join(path);
        path.canonicalize().map_err(|err| Failure::usage(format!("{}: {err}", path.display())))
    };
    if text.is_empty() {
        return Err(Failure::usage("the target is empty: name a file"));
    }
    if cwd.join(text).exists() {
        return Ok(TargetSpec { path: resolve(text)?, range: None });
    }
    let Some((path, range)) = split_range(text) else {
        return Ok(TargetSpec { path: resolve(text)?, range: None });
    };
    let range = parse_range(range).map_err(|why| {
        Failure::usage(format!("{text:?}: {why} (expected path:line[:col][-line[:col]])"))
    })?;
    Ok(TargetSpec { path: resolve(path)?, range: Some(range) })
}

/// The path and the range text after the first `:` that starts a range.
pub(super) fn split_range(text: &str) -> Option<(&str, &str)> {
    let index = text
        .char_indices()
        .filter(|(_, c)| *c == ':')
        .map(|(i, _)| i)
        .find(|i| text[i + 1..].starts_with(|c: char| c.is_ascii_digit()))?;
    Some((&text[..index], &text[index + 1..]))
}

pub(super) fn parse_range(text: &str) -> Result<TargetRange, String> {
    let point = |text: &str| -> Result<(u32, Option<u32>), String> {
        let mut parts = text.split(':');
        let number = |part: Option<&str>, what: &str| -> Result<Option<u32>, String> {
            match part {
                None => Ok(None),
                Some(part) => match part.parse::<u32>() {
                    Ok(0) => Err(format!("{what} numbers start at 1")),
                    Ok(n) => Ok(Some(n)),
                    Err(_) => Err(format!("{part:?} is not a {what} number")),
                },
            }
        };
        let line =
            number(parts.next(), "line")?.ok_or_else(|| "a line number is missing".to_owned())?;
        let column = number(parts.next(), "column")?;
        if parts.next().is_some() {
            return Err("too many `:` parts".to_owned());
        }
        Ok((line, column))
    };
    let (start, end) = match text.split_once('-') {
        Some((start, end)) => (point(start)?, Some(point(end)?)),
        None => (point(text)?, None),
    };
    if let Some((end_line, _)) = end
        && end_line < start.0
    {
        return Err("the range ends before it starts".to_owned());
    }
    Ok(TargetRange { start_line: start.0, start_column: start.1, end })
}

impl TargetRange {
    /// The selected text: whole lines unless columns are given; `line` or `line:col` alone
    /// selects that line.
    pub(super) fn selection(self, text: &str) -> Result<Selection, Failure> {
        // A document needs a URI; this one is never shown.
        let uri = edits::path_to_uri(Path::new("/selection"))
            .map_err(|err| Failure::usage(format!("cannot index the file: {err}")))?;
        let doc = Document::new(uri, String::new(), 0, text);
        let line_count = text.lines().count().max(1) as u32;
        let line_length = |line: u32| -> Result<u32, Failure> {
            if line > line_count {
                return Err(Failure::usage(format!(
                    "line {line} is past the end of the file ({line_count} lines)"
                )));
            }
            let chars = doc.line_text(line as usize - 1).map_or(0, |l| l.chars().count());
            Ok(chars as u32)
        };
        let column = |line: u32, column: u32| -> Result<u32, Failure> {
            let length = line_length(line)?;
            if column > length + 1 {
                return Err(Failure::usage(format!(
                    "line {line} has {length} characters; column {column} is past its end"
                )));
            }
            Ok(column - 1)
        };
        let (start, end) = match self.end {
            None => {
                let length = line_length(self.start_line)?;
                ((self.start_line, 0), (self.start_line, length))
            }
            Some((end_line, end_column)) => {
                let start_column = match self.start_column {
                    Some(c) => column(self.start_line, c)?,
                    None => 0,
                };
                let end_column = match end_column {
                    Some(c) => column(end_line, c)?,
                    None => line_length(end_line)?,
                };
                ((self.start_line, start_column), (end_line, end_column))
            }
        };
        if self.end.is_some() && end <= start {
            return Err(Failure::usage("the range is empty"));
        }
        let range =
            Range::new(Position::new(start.0 - 1, start.1), Position::new(end.0 - 1, end.1));
        Ok(Selection {
            start_line: range.start.line,
            end_line: range.end.line,
            text: doc.range_text(range, PositionEncoding::Utf32),
        })
    }
}
