//! Rule matching: any rule text against any call (paths, URLs, commands) decides without a panic
//! and in linear time (libFuzzer's timeout catches a matcher that backtracks).
#![no_main]

use std::path::Path;

use claude_lsp::engine::permissions::{Policy, ToolCall};
use claude_lsp::model::settings::parse_settings;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let (Some(rule), Some(subject)) = (parts.next(), parts.next()) else { return };
    let grant = parts.next().unwrap_or("");
    let options = json!({"allowedTools": [rule], "disallowedTools": [format!("Read({subject})")]});
    let (settings, _) = parse_settings(Some(&options));
    let policy = Policy::new(Path::new("/ws"), &settings, true);
    let calls = [
        ("Read", json!({"file_path": subject})),
        ("Edit", json!({"file_path": format!("/ws/{subject}")})),
        ("Glob", json!({"pattern": subject})),
        ("WebFetch", json!({"url": subject})),
        ("WebSearch", json!({"query": subject})),
        ("Bash", json!({"command": subject})),
    ];
    for (tool, input) in &calls {
        let call = ToolCall { tool, input, cwd: None };
        let _ = policy.evaluate(&call, &|granted| granted == grant);
    }
});
