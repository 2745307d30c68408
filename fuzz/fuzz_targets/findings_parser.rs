//! The findings parser: any answer text, and any structured output, gives a report or a
//! malformed-report reason without a panic; a report's summary can always be written.
#![no_main]

use claude_lsp::model::findings::read_report;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let structured = serde_json::from_str::<Value>(&text).ok();
    let _ = read_report(structured.as_ref(), &text);
    let _ = read_report(None, &text);
});
