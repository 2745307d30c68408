use std::sync::Arc;
use std::time::Duration;

use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::events::{RunEvent, RunResult, Usage};
use super::tasks::handle_control_request;
use super::turn_tracker::TurnTracker;
use crate::claude::control::ControlHandler;
use crate::claude::errors::ClaudeError;
use crate::claude::protocol::{ControlRequestKind, Message, parse_line};

/// Feed captured CLI output through a tracker, as the reader does for one turn.
fn replay(fixture: &str, interrupted: bool) -> Vec<RunEvent> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tracker = TurnTracker::new(1, tx, None);
    tracker.interrupted = interrupted;
    for line in fixture.lines().filter(|l| !l.is_empty()) {
        match parse_line(line.as_bytes()).unwrap() {
            Message::Result(result) => {
                let outcome = tracker.outcome(result);
                tracker.emit(RunEvent::Finished(outcome));
            }
            message => tracker.on_message(message),
        }
    }
    drop(tracker);
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    events
}

fn finished(events: &[RunEvent]) -> &Result<RunResult, ClaudeError> {
    match events.last() {
        Some(RunEvent::Finished(result)) => result,
        other => panic!("the last event is not Finished: {other:?}"),
    }
}

#[test]
fn a_plain_turn_streams_deltas_and_finishes() {
    for fixture in [
        include_str!("../testdata/plain_partial_newest.ndjson"),
        include_str!("../testdata/plain_partial_oldest.ndjson"),
    ] {
        let events = replay(fixture, false);
        assert!(
            matches!(&events[0], RunEvent::Init { cli_version: Some(v), .. } if v.starts_with("2.1."))
        );
        let deltas: String = events
            .iter()
            .filter_map(|e| match e {
                RunEvent::TextDelta(text) => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deltas, "Hello there");
        assert!(events.contains(&RunEvent::ThinkingDelta("hmm".into())));
        assert!(events.contains(&RunEvent::Thinking("hmm".into())));
        assert!(events.contains(&RunEvent::Text("Hello there".into())));
        let result = finished(&events).as_ref().unwrap();
        assert_eq!(result.text, "Hello there");
        assert_eq!(result.usage, Usage { input_tokens: 10, output_tokens: 5, ..Usage::default() });
        assert!(result.cost_usd > 0.0);
        assert_eq!(result.num_turns, 1);
        let RunEvent::Init { session_id, model, .. } = &events[0] else { unreachable!() };
        assert_eq!(&result.session_id, session_id);
        assert_eq!(&result.model, model);
    }
}

#[test]
fn tool_calls_and_structured_results_become_events() {
    for fixture in [
        include_str!("../testdata/edit_newest.ndjson"),
        include_str!("../testdata/edit_oldest.ndjson"),
    ] {
        let events = replay(fixture, false);
        let tools: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                RunEvent::ToolUse { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(tools, ["Read", "Edit"]);
        let results: Vec<(&str, bool, &Option<Value>)> = events
            .iter()
            .filter_map(|e| match e {
                RunEvent::ToolResult { tool_use_id, is_error, structured, .. } => {
                    Some((tool_use_id.as_str(), *is_error, structured))
                }
                _ => None,
            })
            .collect();
        assert_eq!(results.len(), 2);
        assert_eq!((results[0].0, results[0].1), ("toolu_01", false));
        let patch = results[1].2.as_ref().unwrap();
        assert_eq!(
            (patch["oldString"].as_str(), patch["newString"].as_str()),
            (Some("hello"), Some("hi"))
        );
        assert_eq!(finished(&events).as_ref().unwrap().text, "Done editing.");
    }
}

#[test]
fn api_failures_finish_with_typed_errors() {
    for (fixture, kind) in [
        (include_str!("../testdata/err_529_newest.ndjson"), "overloaded"),
        (include_str!("../testdata/err_529_oldest.ndjson"), "overloaded"),
        (include_str!("../testdata/err_400_newest.ndjson"), "prompt_too_long"),
    ] {
        let events = replay(fixture, false);
        let err = finished(&events).as_ref().unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        // The synthetic message explains the error; it is not the model's text.
        assert!(!events.iter().any(|e| matches!(e, RunEvent::Text(_))));
    }
    let retry = replay(include_str!("../testdata/err_529_newest.ndjson"), false);
    assert!(
        retry.iter().any(|e| matches!(e, RunEvent::ApiRetry { status: Some(529), attempt: 1, .. }))
    );
}

#[test]
fn each_api_response_reports_its_usage_at_its_start_and_end() {
    let fixture = [
        r#"{"type":"system","subtype":"init","session_id":"s"}"#,
        r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m1","model":"claude-haiku-4-5","usage":{"input_tokens":10,"cache_read_input_tokens":7,"output_tokens":1}}}}"#,
        r#"{"type":"stream_event","event":{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":42}}}"#,
        r#"{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"s"}"#,
    ]
    .join("\n");
    let usage: Vec<_> = replay(&fixture, false)
        .into_iter()
        .filter_map(|event| match event {
            RunEvent::ApiUsage { message_id, model, usage } => Some((message_id, model, usage)),
            _ => None,
        })
        .collect();
    let at = |output_tokens| Usage {
        input_tokens: 10,
        output_tokens,
        cache_read_tokens: 7,
        ..Usage::default()
    };
    let model = Some("claude-haiku-4-5".to_owned());
    assert_eq!(usage, [("m1".into(), model.clone(), at(1)), ("m1".into(), model, at(42))]);
}

#[test]
fn rate_limits_carry_the_announced_retry_delay() {
    let fixture = [
        r#"{"type":"system","subtype":"init","session_id":"s"}"#,
        r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":1,"retry_delay_ms":1000.4,"error_status":429,"error":"rate_limit"}"#,
        r#"{"type":"assistant","message":{"model":"<synthetic>","content":[{"type":"text","text":"API Error: Request rejected (429)"}]},"error":"rate_limit"}"#,
        r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"result":"API Error: Request rejected (429)"}"#,
    ]
    .join("\n");
    let events = replay(&fixture, false);
    assert_eq!(
        finished(&events),
        &Err(ClaudeError::RateLimited {
            retry_after: Some(Duration::from_millis(1000)),
            message: "API Error: Request rejected (429)".into()
        })
    );
}

#[test]
fn an_interrupted_turn_is_cancelled() {
    let fixture = [
        r#"{"type":"system","subtype":"init","session_id":"s"}"#,
        r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"[Request interrupted by user]"}]}}"#,
        r#"{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["[ede_diagnostic] result_type=user"]}"#,
    ]
    .join("\n");
    assert_eq!(finished(&replay(&fixture, true)), &Err(ClaudeError::Cancelled));
    // Without our interrupt (and no aborted_* reason) it is a failure, not a cancel.
    assert_eq!(finished(&replay(&fixture, false)).as_ref().unwrap_err().kind(), "execution_failed");
}

#[test]
fn unknown_output_is_passed_on_raw_and_replays_are_dropped() {
    let fixture = [
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed"}}"#,
        r#"{"type":"system","subtype":"hologram"}"#,
        r#"{"type":"system","subtype":"task_started","description":"sleep"}"#,
        r#"{"type":"user","message":{"role":"user","content":"hi"},"isReplay":true}"#,
        r#"{"type":"result","subtype":"success","is_error":false,"session_id":"s"}"#,
    ]
    .join("\n");
    let events = replay(&fixture, false);
    assert_eq!(
        events[..3],
        [
            RunEvent::Other(
                json!({"type":"rate_limit_event","rate_limit_info":{"status":"allowed"}})
            ),
            RunEvent::Other(json!({"type":"system","subtype":"hologram"})),
            RunEvent::Task { subtype: "task_started".into(), description: Some("sleep".into()) },
        ]
    );
    assert_eq!(events.len(), 4);
    assert_eq!(finished(&events).as_ref().unwrap().session_id, "s");
}

#[tokio::test]
async fn handlers_answer_every_kind_of_request() {
    use crate::claude::control::DenyAll;
    use crate::claude::protocol::CanUseToolRequest;
    let handler: Arc<dyn ControlHandler> = Arc::new(DenyAll);
    let request = CanUseToolRequest {
        tool_name: "Bash".into(),
        input: json!({"command": "rm x"}),
        tool_use_id: None,
        permission_suggestions: vec![],
        blocked_path: None,
        raw: json!({}),
    };
    let denied =
        handle_control_request(ControlRequestKind::CanUseTool(request), handler.clone()).await;
    assert_eq!(denied.unwrap()["behavior"], "deny");
    let ack = handle_control_request(
        ControlRequestKind::McpMessage {
            server_name: "lsp".into(),
            message: json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        },
        handler.clone(),
    )
    .await;
    assert_eq!(ack, Ok(json!({"mcp_response": {"jsonrpc": "2.0", "result": {}}})));
    let hook = handle_control_request(
        ControlRequestKind::HookCallback {
            callback_id: "h".into(),
            input: json!({}),
            tool_use_id: None,
        },
        handler.clone(),
    )
    .await;
    assert_eq!(hook, Ok(json!({})));
    let other = handle_control_request(
        ControlRequestKind::Other { subtype: "elicitation".into(), raw: json!({}) },
        handler,
    )
    .await;
    assert_eq!(other, Err("Unsupported control request subtype: elicitation".into()));
}
