//! Secrets nowhere (issue 13, finding 8): with secrets in the `env` setting, a model that echoes
//! them (and an `sk-ant-` key) in its text and tool inputs, and a run that fails quoting them,
//! no secret reaches the client (answers, `claude/session`, `claude/sessions`, progress,
//! `claude/output`, errors, the permission question) or the disk (the audit log, the session
//! index, the log file). The real CLI, the fake API, an in-process server.

use std::path::Path;

use claude_lsp::base::logging::LogLevel;
use serde_json::{Value, json};

use crate::support::fake_api::{RecordedRequest, Script, Turn};
use crate::support::lsp_client::full_capabilities;
use crate::support::wait::eventually;
use crate::support::workspace::Workspace;

const LIB: &str = "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";
/// A secret under a secret-looking name in the `env` setting.
const SERVICE_TOKEN: &str = "tok-7f3a9c1e5b2d4a60";
/// The API key given in the `env` setting, in no recognisable key form.
const API_KEY: &str = "plainkey-51d2e8a4c7b9";
/// An Anthropic key the model makes up: hidden by its form alone.
const SK_KEY: &str = "sk-ant-api03-MadeUpKeyValue_0123456789";
const SECRETS: [&str; 3] = [SERVICE_TOKEN, API_KEY, SK_KEY];

fn script() -> Script {
    Script::from_fn(|request: &RecordedRequest| {
        let prompt = request.messages().first().map(Value::to_string).unwrap_or_default();
        if prompt.contains("PLAN-FAIL") {
            return Turn::error(
                400,
                "invalid_request_error",
                &format!("rejected token {SERVICE_TOKEN} for key {API_KEY} ({SK_KEY})"),
            );
        }
        match request.messages().iter().filter(|m| m["role"] == "assistant").count() {
            0 => Turn::tool_use(
                "Bash",
                json!({"command": format!("echo {SERVICE_TOKEN} {API_KEY} {SK_KEY}"),
                       "description": "print the secrets"}),
            ),
            _ => Turn::text(format!(
                "The token is {SERVICE_TOKEN}, the key {API_KEY}, and a key {SK_KEY} done."
            )),
        }
    })
}

/// Every file under `dir`, as text.
fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            found.push((path.display().to_string(), text));
        }
    }
    found
}

fn assert_no_secret(place: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} reached {place}:\n{text}");
    }
}

#[tokio::test]
async fn no_secret_reaches_the_client_the_index_the_audit_log_or_the_log() {
    let logs = tempfile::tempdir().unwrap();
    let log_file = logs.path().join("claude-lsp.log");
    // The server's own logging, to a file (this test binary has no other subscriber).
    let log = claude_lsp::base::logging::init().expect("the only subscriber");
    log.apply(LogLevel::Trace, Some(&log_file)).unwrap();

    // (The fake API accepts any key.)
    let settings = json!({
        "warmPool": 0,
        "env": {"ANTHROPIC_API_KEY": API_KEY, "MY_SERVICE_TOKEN": SERVICE_TOKEN},
    });
    let mut ws =
        Workspace::start(&[("src/lib.rs", LIB)], script(), full_capabilities(), settings).await;
    ws.client.set_behaviour(|b| b.message_action = Some("Allow once".into()));

    let uri = ws.uri("src/lib.rs");
    let instruction = format!("PLAN-ECHO with my token {SERVICE_TOKEN}");
    // An edit run: its Bash runs sandboxed in the mirror on both pinned CLIs (2.1.197's sandbox
    // cannot start in the read-only working directory of an analyze run).
    let result = ws
        .client
        .request_json(
            "claude/refactor",
            json!({"textDocument": {"uri": uri}, "instruction": instruction, "workDoneToken": "p1"}),
        )
        .await
        .unwrap();
    let text = result["text"].as_str().unwrap();
    assert!(text.starts_with("The token is [REDACTED], the key [REDACTED]"), "{text}");
    let progress = ws.client.progress_until_end(&json!("p1")).await;
    // The echo ran (allowed once): its output, the secrets, went through claude/output.
    let last = ws.api.requests().pop().unwrap();
    assert!(last.tool_results_for("Bash")[0].contains(SERVICE_TOKEN), "the command did not run");

    let failure = ws
        .client
        .request_json(
            "claude/analyze",
            json!({"textDocument": {"uri": uri}, "instruction": "PLAN-FAIL", "workDoneToken": "p2"}),
        )
        .await
        .unwrap_err();
    assert!(failure["message"].as_str().unwrap().contains("[REDACTED]"), "{failure}");
    let failed_progress = ws.client.progress_until_end(&json!("p2")).await;

    let sessions = ws.client.request_json("claude/sessions", json!({})).await.unwrap();
    let listed = sessions["sessions"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{sessions:#}");
    assert!(
        listed
            .iter()
            .any(|s| s["outcome"] == "error"
                && s["summary"].as_str().unwrap().contains("[REDACTED]")),
        "{sessions:#}"
    );
    // The live CLI writes its transcript as it goes: wait until the answer is in it.
    let transcript = eventually("the transcripts hold the answer", async || {
        let mut transcript = String::new();
        for session in listed {
            let id = session["id"].as_str().unwrap();
            let detail =
                ws.client.request_json("claude/session", json!({"sessionId": id})).await.unwrap();
            transcript.push_str(&detail.to_string());
        }
        transcript.contains("The token is [REDACTED]").then_some(transcript)
    })
    .await;

    let questions = ws.client.server_requests("window/showMessageRequest");
    assert_eq!(questions.len(), 1, "{questions:#?}");
    assert!(questions[0]["message"].as_str().unwrap().contains("echo [REDACTED]"));
    let outputs = ws.client.take_notifications("claude/output");
    assert!(
        outputs.iter().any(|o| o["kind"] == "toolResult"
            && o["text"].as_str().is_some_and(|t| t.contains("[REDACTED]"))),
        "{outputs:#?}"
    );
    let places = [
        ("the answer", result.to_string()),
        ("the error", failure.to_string()),
        ("claude/sessions", sessions.to_string()),
        ("claude/session", transcript),
        ("the permission question", Value::Array(questions).to_string()),
        ("$/progress", Value::Array([progress, failed_progress].concat()).to_string()),
        ("claude/output", Value::Array(outputs).to_string()),
    ];
    for (place, text) in &places {
        assert_no_secret(place, text);
    }

    let stored = files_under(ws.cache_dir());
    let names: Vec<&str> = stored.iter().map(|(name, _)| name.as_str()).collect();
    assert!(names.iter().any(|n| n.ends_with("audit.jsonl")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("sessions")), "{names:?}");
    for (name, text) in &stored {
        assert_no_secret(name, text);
    }
    let audit = stored.iter().find(|(name, _)| name.ends_with("audit.jsonl")).unwrap();
    assert!(audit.1.contains("echo [REDACTED]"), "{}", audit.1);

    for method in
        ["$/progress", "claude/usage", "claude/usageChanged", "textDocument/publishDiagnostics"]
    {
        ws.client.take_notifications(method);
    }
    ws.client.finish().await;
    let logged = std::fs::read_to_string(&log_file).unwrap();
    assert!(logged.contains("tool permission"), "the log is empty: {logged}");
    assert_no_secret("the log file", &logged);
}
