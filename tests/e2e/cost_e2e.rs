//! Cost before the run: `claude/estimate` against what the same run then used, with the real CLI
//! and a fake API that reports each request's input tokens as its body's size (4 characters a
//! token, the rule the estimate uses for the prompt; the CLI's own system prompt and tools are
//! in the body too).

use serde_json::json;

use crate::support::fake_api::{Script, Turn};
use crate::support::lsp_client::full_capabilities;
use crate::support::workspace::Workspace;

/// Long enough that the prompt is a fair part of the input.
fn source() -> String {
    (0..120)
        .map(|i| format!("pub fn f{i}(x: u32) -> u32 {{\n    x.wrapping_mul({i})\n}}\n"))
        .collect()
}

#[tokio::test]
async fn the_estimate_is_within_twice_the_input_tokens_of_the_run() {
    let script = Script::from_fn(|request| {
        let input_tokens = request.body.to_string().len() as u64 / 4;
        Turn::text("It multiplies.").with_usage(input_tokens, 5)
    });
    let lib = source();
    let mut ws =
        Workspace::start(&[("src/lib.rs", lib.as_str())], script, full_capabilities(), json!({}))
            .await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, &lib).await;

    let estimate = ws
        .client
        .request_json("claude/estimate", json!({"action": "analyze", "textDocument": {"uri": uri}}))
        .await
        .unwrap();
    assert!(ws.api.requests().is_empty(), "an estimate calls no API");
    assert_eq!(estimate["pricedAs"], "Sonnet", "{estimate}");
    let low = estimate["costUsdLow"].as_f64().unwrap();
    assert!(low > 0.0 && estimate["costUsdHigh"].as_f64().unwrap() > low, "{estimate}");
    assert!(estimate["message"].as_str().unwrap().starts_with("Estimate: ~"), "{estimate}");

    let analyzed = ws
        .client
        .request_json("claude/analyze", json!({"textDocument": {"uri": uri}, "workDoneToken": "a"}))
        .await
        .unwrap();
    let progress = ws.client.progress_until_end(&json!("a")).await;
    let estimated = estimate["inputTokens"].as_u64().unwrap();
    let actual = analyzed["metadata"]["inputTokens"].as_u64().unwrap();
    assert!(
        estimated * 2 >= actual && actual * 2 >= estimated,
        "estimated {estimated} input tokens, the run used {actual}"
    );
    let first_report = progress.iter().find(|value| value["kind"] == "report").unwrap();
    assert_eq!(first_report["message"], estimate["message"], "{progress:#?}");

    // The usage report forecasts the day from the run (one run: no model to compare with).
    let usage = ws.client.request_json("claude/usage", json!({})).await.unwrap();
    let today = usage["today"]["costUsd"].as_f64().unwrap();
    let burn = usage["burnRateUsdPerHour"].as_f64().unwrap();
    let projected = usage["projectedTodayUsd"].as_f64().unwrap();
    assert!(today > 0.0 && burn > 0.0 && burn <= today, "{usage}");
    assert!(projected >= today, "{usage}");
    assert!(usage.get("cheaperModel").is_none(), "{usage}");
    ws.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn an_estimate_of_an_unknown_action_is_a_clear_error() {
    let mut ws =
        Workspace::start(&[("src/lib.rs", "")], Turn::text("x"), full_capabilities(), json!({}))
            .await;
    let uri = ws.uri("src/lib.rs");
    let err = ws
        .client
        .request_json("claude/estimate", json!({"action": "explain", "textDocument": {"uri": uri}}))
        .await
        .unwrap_err();
    assert!(err["message"].as_str().unwrap().contains("unknown action \"explain\""), "{err}");
    ws.drain().await;
    ws.client.finish().await;
}
