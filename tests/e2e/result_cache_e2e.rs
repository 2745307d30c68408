//! The result cache end to end, with the real CLI and the fake API: an unchanged review is
//! answered with zero API requests and says so; an edit to the buffer misses; `noCache` bypasses;
//! a folder review misses when a file in it changes on disk or the run asks for another model.

use serde_json::{Value, json};

use crate::support::fake_api::Turn;
use crate::support::lsp_client::full_capabilities;
use crate::support::workspace::Workspace;

const LIB: &str = "pub fn parse_port(text: &str) -> u16 {\n    text.trim().parse().unwrap()\n}\n";

fn review_answer() -> Turn {
    Turn::tool_use(
        "StructuredOutput",
        json!({"summary": "One bug.", "findings": [{
            "path": "src/lib.rs", "startLine": 2, "endLine": 2, "severity": "error",
            "category": "bug", "title": "Panics on a bad port",
            "explanation": "`unwrap` panics on bad input.", "snippet": "text.trim().parse().unwrap()",
        }]}),
    )
}

/// `claude/review` of lib.rs with a progress token: the result and the progress messages.
async fn review(ws: &mut Workspace, token: &str, extra: Value) -> (Value, Vec<Value>) {
    let mut params = json!({"textDocument": {"uri": ws.uri("src/lib.rs")}, "workDoneToken": token});
    params.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let result = ws.client.request_json("claude/review", params).await.unwrap();
    let progress = ws.client.progress_until_end(&json!(token)).await;
    (result, progress)
}

fn said(progress: &[Value], words: &str) -> bool {
    progress.iter().any(|value| value["message"].as_str().is_some_and(|m| m.contains(words)))
}

#[tokio::test]
async fn an_unchanged_review_is_answered_from_the_cache_with_no_api_call() {
    let mut ws =
        Workspace::start(&[("src/lib.rs", LIB)], review_answer(), full_capabilities(), json!({}))
            .await;
    let uri = ws.uri("src/lib.rs");
    ws.client.did_open(&uri, "rust", 1, LIB).await;

    let (first, progress) = review(&mut ws, "r1", json!({})).await;
    assert_eq!(first["findings"].as_array().unwrap().len(), 1, "{first}");
    assert!(first["metadata"].get("cached").is_none(), "{first}");
    assert!(!said(&progress, "Cached"), "{progress:#?}");
    let after_first = ws.api.all_requests().len();
    assert!(!ws.api.requests().is_empty());

    // Same buffer, same options: the cache answers, and the fake API sees nothing new.
    let (second, progress) = review(&mut ws, "r2", json!({})).await;
    assert_eq!(second["metadata"]["cached"], json!(true), "{second}");
    // The same findings, placed again (each placement numbers its findings anew).
    let without_ids = |result: &Value| {
        let mut findings = result["findings"].clone();
        findings
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .for_each(|f| drop(f.as_object_mut().unwrap().remove("id")));
        findings
    };
    assert_eq!(without_ids(&second), without_ids(&first));
    assert_eq!(second["sessionId"], first["sessionId"]);
    assert_eq!(second["metadata"]["costUsd"], json!(0.0));
    assert_eq!(ws.api.all_requests().len(), after_first, "a cache hit made API requests");
    assert!(said(&progress, "Cached: the inputs are unchanged"), "{progress:#?}");
    assert!(said(&progress, "cached"), "the end message says so: {progress:#?}");

    // An unsaved edit to the buffer changes the input: a miss, and a real run.
    let edited = LIB.replace("u16", "u32");
    ws.client.did_change(&uri, 2, json!([{"text": edited}])).await;
    let before = ws.api.requests().len();
    let (third, _) = review(&mut ws, "r3", json!({})).await;
    assert!(third["metadata"].get("cached").is_none(), "{third}");
    assert!(ws.api.requests().len() > before, "the edited buffer was not reviewed again");

    // Unchanged again, but `noCache`: the run goes to the API.
    let before = ws.api.requests().len();
    let (fourth, progress) = review(&mut ws, "r4", json!({"noCache": true})).await;
    assert!(fourth["metadata"].get("cached").is_none(), "{fourth}");
    assert!(!said(&progress, "Cached"), "{progress:#?}");
    assert!(ws.api.requests().len() > before, "noCache did not bypass the cache");

    // The entries are on disk, under the cache dir.
    let entries = std::fs::read_dir(ws.cache_dir().join("results")).unwrap().count();
    assert_eq!(entries, 2, "one entry per distinct input");
    ws.drain().await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_folder_review_is_cached_until_a_file_in_the_folder_or_the_model_changes() {
    let files = [("src/lib.rs", LIB), ("src/util.rs", "pub fn one() -> u8 {\n    1\n}\n")];
    let mut ws = Workspace::start(&files, review_answer(), full_capabilities(), json!({})).await;
    let folder = json!({"textDocument": {"uri": ws.uri("src")}, "scope": "folder"});
    let review_folder = async |ws: &mut Workspace, extra: Value| {
        let mut params = folder.clone();
        params.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let before = ws.api.all_requests().len();
        let result = ws.client.request_json("claude/review", params).await.unwrap();
        let called = ws.api.all_requests().len() > before;
        assert_eq!(result["metadata"].get("cached").is_some(), !called, "{result}");
        called
    };
    assert!(review_folder(&mut ws, json!({})).await, "the first review runs");
    assert!(!review_folder(&mut ws, json!({})).await, "unchanged: from the cache");

    // The agent reads the folder's files from disk: a change there (no editor involved) misses.
    std::fs::write(ws.path("src/util.rs"), "pub fn one() -> u8 {\n    2\n}\n").unwrap();
    assert!(review_folder(&mut ws, json!({})).await, "a file in the folder changed");
    assert!(!review_folder(&mut ws, json!({})).await);
    // So does a new file in the folder, and another model for the run.
    std::fs::write(ws.path("src/new.rs"), "pub fn two() {}\n").unwrap();
    assert!(review_folder(&mut ws, json!({})).await, "a file was added to the folder");
    assert!(review_folder(&mut ws, json!({"model": "claude-haiku-4-5"})).await, "another model");
    assert!(!review_folder(&mut ws, json!({"model": "claude-haiku-4-5"})).await);
    ws.drain().await;
    ws.client.finish().await;
}
