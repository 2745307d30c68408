//! NDJSON framing of the CLI's stdout.
//!
//! Lines have no fixed size cap: the CLI writes a whole answer or tool result on one line (2 MB
//! lines were observed, and SDKs with a 1 MiB cap broke on them). Lines that are not messages
//! (invalid UTF-8, not JSON) never stop the stream; they go to a bounded [`DiagnosticsTail`].

use std::collections::VecDeque;
use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::errors::redact;
use super::protocol::{Message, parse_line};

/// Read size when the buffer has no room left; the buffer doubles for long lines.
const MIN_READ: usize = 64 * 1024;

/// Why the line stream ended badly.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The stream ended in the middle of a line: the writer died or was killed mid-write.
    #[error("output ended in the middle of a line ({} bytes without a newline)", partial.len())]
    EofMidLine { partial: Bytes },
    #[error("cannot read output: {0}")]
    Io(#[from] io::Error),
}

/// Splits a byte stream into `\n`-terminated lines, with no cap on line length.
#[derive(Debug)]
pub struct LineReader<R> {
    reader: R,
    buf: BytesMut,
    /// Bytes before this offset are known to hold no newline.
    scanned: usize,
    done: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(reader: R) -> Self {
        Self { reader, buf: BytesMut::with_capacity(MIN_READ), scanned: 0, done: false }
    }

    /// The next line without its `\n` (and without a trailing `\r`). `None` at a clean end of
    /// stream; an error item for bytes left without a newline at the end, then `None`.
    pub async fn next_line(&mut self) -> Option<Result<Bytes, LineError>> {
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf[self.scanned..]) {
                let mut line = self.buf.split_to(self.scanned + pos + 1);
                self.scanned = 0;
                line.truncate(line.len() - 1);
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                return Some(Ok(line.freeze()));
            }
            self.scanned = self.buf.len();
            if self.done {
                return None;
            }
            if self.buf.capacity() - self.buf.len() < MIN_READ {
                // Doubling keeps a huge line's cost linear.
                self.buf.reserve(self.buf.len().max(MIN_READ));
            }
            match self.reader.read_buf(&mut self.buf).await {
                Ok(0) => {
                    self.done = true;
                    if !self.buf.is_empty() {
                        self.scanned = 0;
                        let partial = self.buf.split().freeze();
                        return Some(Err(LineError::EofMidLine { partial }));
                    }
                    return None;
                }
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.done = true;
                    return Some(Err(LineError::Io(err)));
                }
            }
        }
    }
}

/// The last few stdout lines that were not messages, for error reports.
#[derive(Debug, Clone)]
pub struct DiagnosticsTail {
    lines: VecDeque<String>,
    max_lines: usize,
    max_line_chars: usize,
}

impl Default for DiagnosticsTail {
    fn default() -> Self {
        Self::new(20, 500)
    }
}

impl DiagnosticsTail {
    pub fn new(max_lines: usize, max_line_chars: usize) -> Self {
        Self { lines: VecDeque::new(), max_lines, max_line_chars }
    }

    /// Keep a redacted, shortened copy of `line` with the reason it was rejected.
    pub fn push(&mut self, line: &[u8], reason: &str) {
        if self.max_lines == 0 {
            return;
        }
        let text = String::from_utf8_lossy(line);
        let shown: String = text.chars().take(self.max_line_chars).collect();
        let ellipsis = if shown.len() < text.len() { "…" } else { "" };
        let entry = format!("{}{ellipsis} ({reason})", redact(&shown));
        tracing::debug!(line = %entry, "ignoring a stdout line that is not a message");
        if self.lines.len() == self.max_lines {
            self.lines.pop_front();
        }
        self.lines.push_back(entry);
    }

    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// All kept lines, one per line.
    pub fn text(&self) -> String {
        self.lines.iter().map(String::as_str).collect::<Vec<_>>().join("\n")
    }
}

/// Typed messages from a line stream; lines that are not messages go to the diagnostics tail.
#[derive(Debug)]
pub struct MessageReader<R> {
    lines: LineReader<R>,
    diagnostics: DiagnosticsTail,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    pub fn new(reader: R) -> Self {
        Self { lines: LineReader::new(reader), diagnostics: DiagnosticsTail::default() }
    }

    /// The next message; `None` at end of stream, an error for a cut-off last line or a read
    /// failure (the stream is over after that).
    pub async fn next_message(&mut self) -> Option<Result<Message, LineError>> {
        loop {
            let line = match self.lines.next_line().await? {
                Ok(line) => line,
                Err(err) => {
                    if let LineError::EofMidLine { partial } = &err {
                        self.diagnostics.push(partial, "cut off at end of output");
                    }
                    return Some(Err(err));
                }
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match parse_line(&line) {
                Ok(message) => return Some(Ok(message)),
                Err(err) => self.diagnostics.push(&line, &err.to_string()),
            }
        }
    }

    pub fn diagnostics(&self) -> &DiagnosticsTail {
        &self.diagnostics
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claude::protocol::SystemMessage;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;

    /// Hands out its data a few bytes per read, to split lines across reads.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let end = (self.pos + self.step).min(self.data.len()).min(self.pos + buf.remaining());
            let chunk = self.data[self.pos..end].to_vec();
            buf.put_slice(&chunk);
            self.pos = end;
            Poll::Ready(Ok(()))
        }
    }

    async fn collect(data: &[u8], step: usize) -> Vec<Result<Bytes, String>> {
        let mut reader = LineReader::new(Trickle { data: data.to_vec(), pos: 0, step });
        let mut out = Vec::new();
        while let Some(item) = reader.next_line().await {
            out.push(item.map_err(|e| e.to_string()));
        }
        out
    }

    #[tokio::test]
    async fn splits_lines_across_reads() {
        for step in [1, 3, 1000] {
            let lines = collect(b"one\ntwo\r\n\nthree\n", step).await;
            let expected: Vec<Result<Bytes, String>> = ["one", "two", "", "three"]
                .iter()
                .map(|s| Ok(Bytes::copy_from_slice(s.as_bytes())))
                .collect();
            assert_eq!(lines, expected, "step {step}");
        }
    }

    #[tokio::test]
    async fn eof_mid_line_returns_the_partial_bytes() {
        let mut reader = LineReader::new(&b"ok\n{\"type\":\"res"[..]);
        assert_eq!(reader.next_line().await.unwrap().unwrap(), "ok");
        match reader.next_line().await {
            Some(Err(LineError::EofMidLine { partial })) => assert_eq!(partial, "{\"type\":\"res"),
            other => panic!("expected a cut-off line, got {other:?}"),
        }
        assert!(reader.next_line().await.is_none());
        assert!(reader.next_line().await.is_none());
    }

    #[tokio::test]
    async fn a_64_mb_line_arrives_intact() {
        let text = "x".repeat(64 * 1024 * 1024);
        let line = format!(
            "{{\"type\":\"assistant\",\"message\":{{\"content\":[{{\"type\":\"text\",\"text\":\"{text}\"}}]}}}}\n"
        );
        let mut reader = MessageReader::new(line.as_bytes());
        let Some(Ok(Message::Assistant(assistant))) = reader.next_message().await else {
            panic!("no assistant message")
        };
        match &assistant.message.content[0] {
            crate::claude::protocol::ContentBlock::Text { text: got } => assert!(got == &text),
            other => panic!("unexpected block {other:?}"),
        }
        assert!(reader.next_message().await.is_none());
    }

    #[tokio::test]
    async fn bad_lines_go_to_the_tail_and_the_stream_goes_on() {
        let data = b"garbage here\n\xff\xfe\n{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"s\"}\n   \nsk-ant-api03-SECRET leaked\n";
        let mut reader = MessageReader::new(&data[..]);
        assert!(matches!(
            reader.next_message().await,
            Some(Ok(Message::System(SystemMessage::Init(_))))
        ));
        assert!(reader.next_message().await.is_none());
        let tail: Vec<&str> = reader.diagnostics().lines().collect();
        assert_eq!(tail.len(), 3, "{tail:?}");
        assert!(tail[0].starts_with("garbage here (line is not JSON"));
        assert!(tail[1].contains("not valid UTF-8"));
        assert!(tail[2].starts_with("[REDACTED] leaked"), "{}", tail[2]);
    }

    #[test]
    fn diagnostics_tail_is_bounded() {
        let mut tail = DiagnosticsTail::new(2, 5);
        for line in ["aaaaaaaa", "b", "c"] {
            tail.push(line.as_bytes(), "bad");
        }
        assert_eq!(tail.text(), "b (bad)\nc (bad)");
        let mut short = DiagnosticsTail::new(1, 3);
        short.push(b"abcdef", "bad");
        assert_eq!(short.text(), "abc… (bad)");
        assert!(!short.is_empty());
    }
}
