//! The CLI's NDJSON stream: any bytes, read in pieces of any size, give back exactly their
//! lines (round trip), and the message reader never panics or stops early.
#![no_main]

use claude_lsp::claude::lines::{LineError, LineReader, MessageReader};
use libfuzzer_sys::fuzz_target;
use tokio::io::BufReader;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, stream)) = data.split_first() else { return };
    // Reads return at most `piece` bytes: lines arrive split anywhere.
    let piece = usize::from(piece % 16) + 1;
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let mut lines = LineReader::new(BufReader::with_capacity(piece, stream));
        let mut read = Vec::new();
        let mut partial = None;
        while let Some(line) = lines.next_line().await {
            match line {
                Ok(line) => read.push(line),
                Err(LineError::EofMidLine { partial: rest }) => partial = Some(rest),
                Err(err) => panic!("reading a slice failed: {err}"),
            }
        }
        let mut expected: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
        let last = expected.pop().unwrap_or_default();
        assert_eq!(partial.as_deref().unwrap_or_default(), last);
        assert_eq!(read.len(), expected.len());
        for (got, want) in read.iter().zip(expected) {
            assert_eq!(got.as_ref(), want.strip_suffix(b"\r").unwrap_or(want));
        }

        let mut messages = MessageReader::new(BufReader::with_capacity(piece, stream));
        while let Some(message) = messages.next_message().await {
            if message.is_err() {
                assert!(messages.next_message().await.is_none(), "an error ends the stream");
                break;
            }
        }
        let _ = messages.diagnostics().text();
    });
});
