//! Resilience end to end (issue 5): retries that resume the session, the fallback model, fast
//! failure of errors that waiting cannot fix, timeouts, the queue, the circuit breaker, and a
//! load test with injected faults. In-process server, the real CLI, the fake API.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use claude_lsp::base::process::ProcessSpec;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::support::cli::{
    ProcInfo, cli_sessions, lasting_zombies, leftover_processes, live_processes, real_cli,
};
use crate::support::fake_api::{RecordedRequest, Script, Turn};
use crate::support::lsp_client::{TestClient, full_capabilities};
use crate::support::wait::eventually;
use crate::support::workspace::{Workspace, cli_cwd};

const LIB: &str = "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";

/// The longest a test waits for one answer (in the load test runs queue behind each other).
const ANSWER_WAIT: Duration = Duration::from_secs(240);

/// A workspace whose runs spawn only for themselves (no warm processes), with `extra` settings.
async fn start(script: impl Into<Script>, extra: Value) -> Workspace {
    let mut settings = json!({"warmPool": 0});
    settings.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    Workspace::start(&[("src/lib.rs", LIB)], script, full_capabilities(), settings).await
}

/// Replace the settings (through workspace/configuration) with the fake API's environment,
/// `cli_retries` as `CLAUDE_CODE_MAX_RETRIES`, and `extra`; returns once they apply.
pub(crate) async fn reconfigure(ws: &mut Workspace, cli_retries: u32, extra: Value) {
    let retries = json!({"CLAUDE_CODE_MAX_RETRIES": cli_retries.to_string()});
    let mut settings = json!({"warmPool": 0, "env": retries});
    settings.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let wanted = settings["maxConcurrent"].as_u64().expect("reconfigure needs maxConcurrent");
    ws.change_settings(settings).await;
    // maxConcurrent shows in claude/metrics: once it does, the new settings are in place.
    eventually("the new settings apply", async || {
        (metrics(ws).await["scheduler"]["maxConcurrent"].as_u64() == Some(wanted)).then_some(())
    })
    .await;
}

async fn metrics(ws: &mut Workspace) -> Value {
    ws.client.request_json("claude/metrics", json!({})).await.unwrap()
}

fn analyze_params(ws: &Workspace, instruction: &str, token: &str) -> Value {
    json!({
        "textDocument": {"uri": ws.uri("src/lib.rs")},
        "instruction": instruction,
        "workDoneToken": token,
    })
}

async fn answer_within(answer: oneshot::Receiver<Value>, wait: Duration) -> Result<Value, Value> {
    let response = tokio::time::timeout(wait, answer)
        .await
        .expect("no answer from the server in time")
        .expect("the server went away");
    match response.get("error") {
        Some(error) => Err(error.clone()),
        None => Ok(response["result"].clone()),
    }
}

/// The progress messages reported on `token` so far (taken off the queue).
fn progress_messages(client: &TestClient, token: &str) -> Vec<String> {
    client
        .take_notifications("$/progress")
        .into_iter()
        .filter(|p| p["token"] == token)
        .filter_map(|p| p["value"]["message"].as_str().map(str::to_owned))
        .collect()
}

/// Matches the CLI processes of this test that are still there: live ones by their HOME, and
/// zombies the in-process server never reaped. A zombie has no environment left to tell whose
/// it is; it is a child of this test process, where the server runs.
fn our_clis(ws: &Workspace) -> impl Fn(&ProcInfo) -> bool + use<> {
    let cli = real_cli();
    let home = ws.home.path().display().to_string();
    let test_process = std::process::id();
    move |process: &ProcInfo| {
        process.runs(&cli)
            && if process.is_zombie() {
                process.ppid == test_process
            } else {
                process.env_var("HOME").as_deref() == Some(home.as_str())
            }
    }
}

async fn assert_no_cli_left(ours: impl Fn(&ProcInfo) -> bool) {
    let left = leftover_processes(ours, Duration::from_secs(20)).await;
    assert!(left.is_empty(), "CLI processes survived: {left:#?}");
}

/// While the server is up: no CLI of this test is left (running or unreaped), and no child of
/// this test process (where the server runs) stays a zombie. For tests whose settings keep no
/// warm pool and no live conversation, so that every CLI ends with its run.
async fn assert_nothing_left_while_up(ws: &Workspace) {
    assert_no_cli_left(our_clis(ws)).await;
    let zombies = lasting_zombies(std::process::id(), Duration::from_secs(20)).await;
    assert!(zombies.is_empty(), "children the server never reaped: {zombies:#?}");
}

/// Every request the client sent has exactly one answer, as the transcript of the connection
/// shows (`finish()` also fails on an answer to no request in flight). Returns how many there
/// were.
fn assert_each_request_answered_once(client: &TestClient) -> usize {
    let mut sent: Vec<i64> = Vec::new();
    let mut answers: HashMap<i64, usize> = HashMap::new();
    for line in client.transcript().lines() {
        let (to_server, message) =
            match (line.split_once("  client → server  "), line.split_once("  server → client  "))
            {
                (Some((_, message)), _) => (true, message),
                (None, Some((_, message))) => (false, message),
                (None, None) => panic!("not a transcript line: {line}"),
            };
        let message: Value = serde_json::from_str(message).unwrap();
        let id = message.get("id").and_then(Value::as_i64);
        let is_request = message.get("method").is_some();
        match (to_server, is_request, id) {
            (true, true, Some(id)) => sent.push(id),
            (false, false, Some(id)) => *answers.entry(id).or_default() += 1,
            // Notifications, the server's requests and the client's answers to them.
            _ => {}
        }
    }
    let twice: Vec<(&i64, &usize)> = answers.iter().filter(|(_, count)| **count != 1).collect();
    assert!(twice.is_empty(), "requests answered more than once: {twice:?}");
    let unanswered: Vec<&i64> = sent.iter().filter(|id| !answers.contains_key(id)).collect();
    assert!(unanswered.is_empty(), "requests never answered: {unanswered:?}");
    let unasked: Vec<&i64> = answers.keys().filter(|id| !sent.contains(id)).collect();
    assert!(unasked.is_empty(), "answers to requests never sent: {unasked:?}");
    assert_eq!(answers.values().sum::<usize>(), sent.len());
    sent.len()
}

fn kind(error: &Value) -> &str {
    error["data"]["kind"].as_str().unwrap_or_else(|| panic!("not a typed error: {error}"))
}

/// Counts calls per key, for scripts that fail the first calls of a conversation.
#[derive(Clone, Default)]
struct CallCounter(Arc<Mutex<HashMap<String, usize>>>);

impl CallCounter {
    /// 1 for the first call with `key`.
    fn next(&self, key: &str) -> usize {
        let mut counts = self.0.lock().unwrap();
        let count = counts.entry(key.to_owned()).or_default();
        *count += 1;
        *count
    }
}

#[tokio::test]
async fn the_process_listing_reports_a_child_nobody_reaped_until_it_is_reaped() {
    // A child that has exited but was never waited for: a zombie of this test process.
    let mut child = ProcessSpec::new("/bin/sh", "/").args(["-c", "exit 0"]).spawn().unwrap();
    let pid = child.pid();
    let zombie = eventually("the exited child is a zombie", async || {
        let zombie = leftover_processes(|p| p.pid == pid && p.is_zombie(), Duration::ZERO).await;
        (!zombie.is_empty()).then_some(zombie)
    })
    .await;
    assert_eq!(zombie.len(), 1, "the exited child is not reported");
    assert!(zombie[0].runs(Path::new("/bin/sh")), "{zombie:?}");
    assert!(!live_processes().iter().any(|p| p.pid == pid), "a zombie is not alive");
    // "Nothing left" fails on it, and so does the zombie check.
    let survivors = leftover_processes(|p| p.pid == pid, Duration::from_millis(200)).await;
    assert_eq!(survivors.len(), 1, "{survivors:?}");
    let zombies = lasting_zombies(std::process::id(), Duration::from_millis(200)).await;
    assert!(zombies.iter().any(|z| z.pid == pid), "{zombies:?}");
    // Once reaped, it is gone.
    assert!(child.wait().await.unwrap().success());
    assert!(leftover_processes(|p| p.pid == pid, Duration::from_secs(5)).await.is_empty());
}

#[tokio::test]
async fn a_retry_resumes_the_session_in_the_same_mirror_and_keeps_the_edit_already_made() {
    let failures = CallCounter::default();
    let script = move |request: &RecordedRequest| {
        let path = format!("{}/src/lib.rs", cli_cwd(request));
        match request.turn_index() {
            0 => Turn::tool_use("Read", json!({"file_path": path})),
            1 => Turn::tool_use(
                "Edit",
                json!({"file_path": path, "old_string": "fn add(a: i32", "new_string": "fn sum(a: i32"}),
            ),
            // The API fails both tries the CLI makes (CLAUDE_CODE_MAX_RETRIES=1), then recovers.
            _ if failures.next("after-edit") <= 2 => Turn::overloaded(),
            _ => Turn::text("Renamed add to sum."),
        }
    };
    let mut ws = start(Script::from_fn(script), json!({"maxRetries": 3})).await;
    let uri = ws.uri("src/lib.rs");
    let result = ws
        .client
        .request_json(
            "claude/refactor",
            json!({"textDocument": {"uri": uri}, "instruction": "rename add to sum", "workDoneToken": "r1"}),
        )
        .await
        .unwrap();
    // The edit made before the failure is in the result: the retry ran in the same mirror.
    assert_eq!(
        result["edit"]["documentChanges"][0]["edits"],
        json!([{"range": {"start": {"line": 0, "character": 3}, "end": {"line": 0, "character": 6}}, "newText": "sum"}])
    );
    assert_eq!(result["text"], "Renamed add to sum.");
    let requests = ws.api.requests();
    let last = requests.last().unwrap();
    // The retry continued the conversation: the first prompt, the Read and the Edit are there, and
    // the Edit was made once.
    let conversation = last.all_text();
    assert!(conversation.contains("rename add to sum"), "{conversation}");
    assert!(conversation.contains("Continue the task from where you stopped"), "{conversation}");
    assert_eq!(last.tool_results_for("Edit").len(), 1);
    assert_eq!(cli_cwd(last), cli_cwd(&requests[0]), "the retry must run in the same mirror");
    let messages = progress_messages(&ws.client, "r1");
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Retrying in ")
                && m.contains("(attempt 2/4): API overloaded (529)")),
        "{messages:#?}"
    );
    let report = metrics(&mut ws).await;
    assert_eq!(report["retries"]["byReason"], json!({"overloaded": 1}));
    assert_eq!(report["requests"]["byAction"]["refactor"]["success"], 1);
    ws.client.drain_also(&["window/showMessage"]).await;
    let ours = our_clis(&ws);
    ws.client.finish().await;
    assert_no_cli_left(ours).await;
}

#[tokio::test]
async fn a_retry_after_an_overload_uses_the_fallback_model() {
    let failures = CallCounter::default();
    let script = move |_: &RecordedRequest| {
        if failures.next("all") <= 2 { Turn::overloaded() } else { Turn::text("Fine.") }
    };
    let mut ws = start(
        Script::from_fn(script),
        json!({"model": "claude-main-test", "fallbackModel": "claude-fallback-test"}),
    )
    .await;
    let params = analyze_params(&ws, "explain", "f1");
    let result = ws.client.request_json("claude/analyze", params).await.unwrap();
    // Analyze may add a note about findings after the model's text.
    assert!(result["text"].as_str().unwrap().starts_with("Fine."), "{result}");
    let models: Vec<String> =
        ws.api.requests().iter().map(|r| r.model().unwrap_or_default().to_owned()).collect();
    assert_eq!(models.last().map(String::as_str), Some("claude-fallback-test"), "{models:?}");
    assert_eq!(models[0], "claude-main-test", "{models:?}");
    assert_eq!(metrics(&mut ws).await["retries"]["total"], 1, "the server retried once");
    ws.client.drain_also(&["window/showMessage"]).await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_retry_after_a_429_waits_at_least_the_retry_after_the_api_asked_for() {
    // Both tries of the CLI (CLAUDE_CODE_MAX_RETRIES=1) get a 429 asking for 3 s; then the API
    // recovers. Without the header the first retry would wait at most 1 s (full jitter).
    let failures = CallCounter::default();
    let script = move |_: &RecordedRequest| {
        if failures.next("all") <= 2 { Turn::rate_limited(3) } else { Turn::text("Fine.") }
    };
    let mut ws = start(Script::from_fn(script), json!({"maxRetries": 3})).await;
    let result =
        ws.client.request_json("claude/analyze", analyze_params(&ws, "explain", "ra1")).await;
    assert!(result.unwrap()["text"].as_str().unwrap().starts_with("Fine."));
    let messages = progress_messages(&ws.client, "ra1");
    let waits: Vec<u64> = messages
        .iter()
        .filter_map(|m| m.strip_prefix("Retrying in "))
        .filter_map(|rest| rest.strip_suffix(" s (attempt 2/4): rate limited (429)"))
        .map(|secs| secs.parse().unwrap())
        .collect();
    assert_eq!(waits.len(), 1, "{messages:#?}");
    assert!(waits[0] >= 3, "the retry did not wait for the API's retry-after: {messages:#?}");
    let report = metrics(&mut ws).await;
    assert_eq!(report["retries"]["byReason"], json!({"rate_limited": 1}), "{report:#}");
    ws.client.drain_also(&["window/showMessage"]).await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_bad_key_fails_in_seconds_with_a_login_hint_even_when_the_cli_would_retry_for_minutes() {
    let mut ws = start(Turn::unauthorized(), json!({})).await;
    // Ten CLI retries of a 401 would take about three minutes (cli-protocol.md §6.3).
    reconfigure(&mut ws, 10, json!({"maxConcurrent": 3, "maxRetries": 3})).await;
    let params = analyze_params(&ws, "explain", "a1");
    let error = ws.client.request_json("claude/analyze", params).await.unwrap_err();
    assert_eq!(kind(&error), "auth_failed", "{error}");
    assert_eq!(error["code"], -32003);
    assert_eq!(error["data"]["retryable"], false);
    assert!(error["data"]["hint"].as_str().unwrap().contains("/login"), "{error}");
    // The server stopped the CLI at its first retry: one call, maybe a second in flight.
    let calls = ws.api.requests().len();
    assert!((1..=2).contains(&calls), "{calls} API calls for a bad key");
    assert_eq!(metrics(&mut ws).await["retries"]["total"], 0);
    // Progress never announces a retry that will not happen.
    ws.client.settle().await;
    let progress = progress_messages(&ws.client, "a1");
    assert!(!progress.iter().any(|m| m.contains("retrying")), "{progress:#?}");
    assert!(progress.iter().any(|m| m.contains("rejected the credentials")), "{progress:#?}");
    ws.client.drain_also(&["window/showMessage"]).await;
    let ours = our_clis(&ws);
    ws.client.finish().await;
    assert_no_cli_left(ours).await;
}

/// A line of `LIB` that an inlined prompt carries and a prompt of references does not.
const LIB_LINE: &str = "a + b";

#[tokio::test]
async fn a_prompt_too_long_for_the_context_is_retried_once_with_the_file_referenced_not_inlined() {
    let script = Script::faults_first(1, Turn::prompt_too_long(), Turn::text("Recovered answer."));
    let mut ws = start(script, json!({})).await;
    let params = analyze_params(&ws, "explain", "c1");
    let result = ws.client.request_json("claude/analyze", params).await.unwrap();
    assert!(result["text"].as_str().unwrap().starts_with("Recovered answer."), "{result}");
    let requests = ws.api.requests();
    // The first call overflowed; the rest (the CLI may ask again for the structured answer) are
    // of a new conversation, which names the file instead of inlining it.
    assert!(requests[0].last_user_text().contains(LIB_LINE));
    assert!(requests.len() >= 2);
    assert_eq!(requests[1].turn_index(), 0, "the smaller prompt starts a new conversation");
    let smaller = requests[1].last_user_text();
    assert!(smaller.contains("read `src/lib.rs` with the Read tool"), "{smaller}");
    for request in &requests[1..] {
        assert!(!request.all_text().contains(LIB_LINE), "the file is still inlined");
    }
    let messages = progress_messages(&ws.client, "c1");
    assert!(
        messages.iter().any(|m| m == "Context too long: retrying with a smaller prompt"),
        "{messages:#?}"
    );
    let report = metrics(&mut ws).await;
    assert_eq!(report["recoveries"]["byReason"], json!({"prompt_too_long": 1}), "{report:#}");
    assert_eq!(report["retries"]["total"], 0);
    ws.client.drain_also(&["window/showMessage"]).await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_follow_up_too_long_for_the_context_is_answered_after_the_conversation_is_compacted() {
    // The follow-up overflows until the conversation has been compacted. The newest CLI compacts
    // by itself; an older one (2.1.197) cannot, and the server's `/compact` does it.
    let compacted = Arc::new(AtomicBool::new(false));
    let seen = compacted.clone();
    let script = move |request: &RecordedRequest| {
        if request.all_text().contains("create a detailed summary of the conversation") {
            seen.store(true, Ordering::SeqCst);
            return Turn::text("Summary: the user asked about add.");
        }
        if request.last_user_text().contains("big-follow-up") && !seen.load(Ordering::SeqCst) {
            return Turn::prompt_too_long();
        }
        if request.has_tool_result_for("StructuredOutput") {
            Turn::text("done")
        } else {
            Turn::tool_use("StructuredOutput", json!({"findings": [], "summary": "Answered."}))
        }
    };
    let mut ws = start(Script::from_fn(script), json!({})).await;
    let first = ws.client.request_json("claude/analyze", analyze_params(&ws, "first", "f1")).await;
    let session = first.unwrap()["sessionId"].as_str().unwrap().to_owned();
    let mut params = analyze_params(&ws, "big-follow-up", "f2");
    params["sessionId"] = json!(session);
    let result = ws.client.request_json("claude/analyze", params).await.unwrap();
    assert_eq!(result["sessionId"], session.as_str(), "the conversation went on: {result}");
    assert!(result["text"].as_str().unwrap().starts_with("Answered."), "{result}");
    assert!(compacted.load(Ordering::SeqCst), "the conversation was never compacted");
    let last = ws.api.requests().pop().unwrap();
    assert!(last.all_text().contains("big-follow-up"), "the follow-up was asked after compacting");
    ws.client.drain_also(&["window/showMessage"]).await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_prompt_always_too_long_fails_after_the_smaller_try_with_a_hint_to_select_less() {
    let mut ws = start(Turn::prompt_too_long(), json!({"maxRetries": 3})).await;
    let params = analyze_params(&ws, "explain", "p1");
    let error = ws.client.request_json("claude/analyze", params).await.unwrap_err();
    assert_eq!(kind(&error), "prompt_too_long", "{error}");
    assert_eq!(error["code"], -32007);
    assert_eq!(error["data"]["retryable"], false);
    assert!(error["data"]["hint"].as_str().unwrap().contains("Select less"), "{error}");
    let requests = ws.api.requests();
    assert_eq!(requests.len(), 2, "one smaller try, and no retry of a prompt that is too long");
    assert!(!requests[1].last_user_text().contains(LIB_LINE));
    assert_eq!(metrics(&mut ws).await["retries"]["total"], 0);
    ws.client.drain_also(&["window/showMessage"]).await;
    ws.client.finish().await;
}

#[tokio::test]
async fn retries_give_up_after_max_retries_with_the_last_typed_error() {
    let mut ws = start(Turn::server_error(), json!({"maxRetries": 1})).await;
    let params = analyze_params(&ws, "explain", "g1");
    let error = ws.client.request_json("claude/analyze", params).await.unwrap_err();
    assert_eq!(kind(&error), "api_error", "{error}");
    assert_eq!(error["data"]["retryable"], true);
    assert!(error["message"].as_str().unwrap().ends_with("(gave up after 2 attempts)"), "{error}");
    // Two attempts, each one call plus the CLI's own retry.
    assert_eq!(ws.api.requests().len(), 4);
    ws.client.drain_also(&["window/showMessage"]).await;
    ws.client.finish().await;
}

#[tokio::test]
async fn the_run_timeout_ends_a_run_that_keeps_talking() {
    let chunks: Vec<String> = (0..100).map(|i| format!("word{i} ")).collect();
    let mut ws =
        start(Turn::slow_text(chunks, Duration::from_millis(200)), json!({"timeoutSecs": 4})).await;
    let params = analyze_params(&ws, "explain", "t1");
    let error = ws.client.request_json("claude/analyze", params).await.unwrap_err();
    assert_eq!(kind(&error), "timeout", "{error}");
    assert!(error["message"].as_str().unwrap().contains("timed out after 4s"), "{error}");
    assert!(error["data"]["hint"].as_str().unwrap().contains("timeoutSecs"), "{error}");
    ws.client.drain_also(&["window/showMessage"]).await;
    let ours = our_clis(&ws);
    ws.client.finish().await;
    assert_no_cli_left(ours).await;
}

#[tokio::test]
async fn a_hung_api_call_is_ended_by_the_idle_timeout_and_the_session_resumed() {
    let script = Script::faults_first(1, Turn::Hang, Turn::text("Answered after the hang."));
    let mut ws = start(script, json!({"idleTimeoutSecs": 3, "maxRetries": 0})).await;
    let params = analyze_params(&ws, "explain", "h1");
    let result = ws.client.request_json("claude/analyze", params).await.unwrap();
    assert!(result["text"].as_str().unwrap().starts_with("Answered after the hang."), "{result}");
    // The call after the hang (the CLI may ask again for the structured answer) went on with
    // the same conversation: the first prompt is there, and the request to continue.
    let requests = ws.api.requests();
    assert!(requests.len() >= 2);
    let resumed = requests[1].all_text();
    assert!(resumed.contains("explain"), "{resumed}");
    assert!(resumed.contains("Continue the task from where you stopped"), "{resumed}");
    let messages = progress_messages(&ws.client, "h1");
    assert!(
        messages.iter().any(|m| m == "The API call hung: resuming the session"),
        "{messages:#?}"
    );
    let report = metrics(&mut ws).await;
    assert_eq!(report["recoveries"]["byReason"], json!({"timeout": 1}), "{report:#}");
    ws.client.drain_also(&["window/showMessage"]).await;
    let ours = our_clis(&ws);
    ws.client.finish().await;
    assert_no_cli_left(ours).await;
}

#[tokio::test]
async fn a_cli_killed_mid_turn_is_resumed_once_and_the_run_answered() {
    let script = Script::faults_first(1, Turn::Hang, Turn::text("Answered after the crash."));
    let mut ws = start(script, json!({"maxRetries": 0})).await;
    let params = analyze_params(&ws, "explain", "k1");
    let (_, answer) = ws.client.start_request("claude/analyze", params).await;
    // Mid-turn: the API has the request and the CLI waits for its answer.
    ws.api.wait_for_requests(1, Duration::from_secs(60)).await;
    // The run's CLI session, not a helper it runs for a moment (its bundled ripgrep).
    let clis = cli_sessions(ws.home.path());
    assert_eq!(clis.len(), 1, "{clis:#?}");
    let pid = rustix::process::Pid::from_raw(clis[0].pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    let result = answer_within(answer, ANSWER_WAIT).await.unwrap();
    assert!(result["text"].as_str().unwrap().starts_with("Answered after the crash."), "{result}");
    // The killed CLI may not have saved its session: then the run starts it again.
    let requests = ws.api.requests();
    assert!(requests.len() >= 2);
    assert!(requests[1].all_text().contains("explain"));
    let messages = progress_messages(&ws.client, "k1");
    assert!(
        messages.iter().any(|m| m == "Claude Code exited unexpectedly: resuming the session"),
        "{messages:#?}"
    );
    let report = metrics(&mut ws).await;
    assert_eq!(report["recoveries"]["byReason"], json!({"process_crashed": 1}), "{report:#}");
    assert_eq!(report["requests"]["byAction"]["analyze"], json!({"success": 1}));
    ws.client.drain_also(&["window/showMessage"]).await;
    let ours = our_clis(&ws);
    ws.client.finish().await;
    assert_no_cli_left(ours).await;
}

#[tokio::test]
async fn an_api_call_that_hangs_again_after_the_resume_fails_the_run_retryable() {
    let mut ws = start(Turn::Hang, json!({"idleTimeoutSecs": 3})).await;
    let params = analyze_params(&ws, "explain", "i1");
    let error = ws.client.request_json("claude/analyze", params).await.unwrap_err();
    assert_eq!(kind(&error), "timeout", "{error}");
    assert_eq!(error["data"]["retryable"], true);
    assert!(error["message"].as_str().unwrap().contains("no output from Claude Code"), "{error}");
    assert_eq!(ws.api.requests().len(), 2, "a hang is resumed once, not retried");
    ws.client.drain_also(&["window/showMessage"]).await;
    let ours = our_clis(&ws);
    ws.client.finish().await;
    assert_no_cli_left(ours).await;
}

#[tokio::test]
async fn a_queued_run_reports_its_place_and_can_be_cancelled_before_it_spawns_anything() {
    // The first run holds the only slot: its API call never answers.
    let script = |request: &RecordedRequest| {
        if request.all_text().contains("first-run") { Turn::Hang } else { Turn::text("done") }
    };
    let mut ws = start(Script::from_fn(script), json!({})).await;
    reconfigure(&mut ws, 1, json!({"maxConcurrent": 1})).await;
    let first = analyze_params(&ws, "first-run", "q1");
    let (first_id, first_answer) = ws.client.start_request("claude/analyze", first).await;
    ws.api.wait_for_requests(1, Duration::from_secs(60)).await;
    let queued = |token: &'static str, message: &'static str| {
        move |p: &Value| p["token"] == token && p["value"]["message"] == message
    };
    // One at a time: requests are served concurrently, so two sent together may join the queue
    // in either order.
    let (second_id, second_answer) =
        ws.client.start_request("claude/analyze", analyze_params(&ws, "second-run", "q2")).await;
    ws.client.wait_for_notification("$/progress", queued("q2", "Queued (0 ahead)")).await;
    let (_, third_answer) =
        ws.client.start_request("claude/analyze", analyze_params(&ws, "third-run", "q3")).await;
    ws.client.wait_for_notification("$/progress", queued("q3", "Queued (1 ahead)")).await;
    assert_eq!(
        metrics(&mut ws).await["scheduler"],
        json!({"maxConcurrent": 1, "running": 1, "queued": 2})
    );

    // Cancel the second while it waits: it answers RequestCancelled, the third moves up.
    ws.client.cancel(second_id).await;
    let cancelled = answer_within(second_answer, ANSWER_WAIT).await.unwrap_err();
    assert_eq!(cancelled["code"], -32800, "{cancelled}");
    ws.client.wait_for_notification("$/progress", queued("q3", "Queued (0 ahead)")).await;

    // A queued command run is cancelled with claude.cancel.
    let started = ws
        .client
        .request_json(
            "workspace/executeCommand",
            json!({"command": "claude.analyze", "arguments": [analyze_params(&ws, "fourth-run", "q4")]}),
        )
        .await
        .unwrap();
    ws.client.wait_for_notification("$/progress", queued("q4", "Queued (1 ahead)")).await;
    let cancel = json!({"command": "claude.cancel", "arguments": [{"runId": started["runId"]}]});
    let cancelled = ws.client.request_json("workspace/executeCommand", cancel).await.unwrap();
    assert_eq!(cancelled, json!({"cancelled": 1}));
    let message = ws.client.next_notification("window/showMessage").await;
    assert_eq!(message["message"], "Claude: analyze cancelled; nothing was applied");

    ws.client.cancel(first_id).await;
    assert_eq!(answer_within(first_answer, ANSWER_WAIT).await.unwrap_err()["code"], -32800);
    let third = answer_within(third_answer, ANSWER_WAIT).await.unwrap();
    assert!(third["text"].as_str().unwrap().starts_with("done"), "{third}");
    let prompts: Vec<String> = ws.api.requests().iter().map(RecordedRequest::all_text).collect();
    for cancelled in ["second-run", "fourth-run"] {
        assert!(!prompts.iter().any(|p| p.contains(cancelled)), "{cancelled} reached the API");
    }
    ws.client.drain_also(&["window/showMessage"]).await;
    let ours = our_clis(&ws);
    ws.client.finish().await;
    assert_no_cli_left(ours).await;
}

/// A workspace with a second folder, `sub`, whose runs have their own queue turn and bucket.
async fn start_with_sub_folder(script: impl Into<Script>, extra: Value) -> Workspace {
    let mut settings = json!({"warmPool": 0});
    settings.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let files = [("src/lib.rs", LIB), ("sub/src/lib.rs", LIB)];
    let ws = Workspace::start(&files, script, full_capabilities(), settings).await;
    let sub = ws.uri("sub");
    ws.client
        .notify_json(
            "workspace/didChangeWorkspaceFolders",
            json!({"event": {"added": [{"uri": sub, "name": "sub"}], "removed": []}}),
        )
        .await;
    ws
}

/// Waits for the first progress message on `token` that says where the run waits: in the
/// queue (`Queued (n ahead)`) or for the rate limit.
async fn waiting_message(client: &TestClient, token: &str) -> String {
    let waits = |p: &Value| {
        p["token"] == token
            && p["value"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Queued (") || m.starts_with("Rate limited"))
    };
    let progress = client.wait_for_notification("$/progress", waits).await;
    progress["value"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn runs_beyond_requests_per_minute_wait_for_the_bucket_then_queue_and_are_served() {
    // The holder keeps the only slot (its API call never answers), so runs that got a token
    // wait in the queue and spawn nothing.
    let script = |request: &RecordedRequest| {
        if request.all_text().contains("holder-run") { Turn::Hang } else { Turn::text("done") }
    };
    let extra = json!({"requestsPerMinute": 60, "maxConcurrent": 1, "liveSessions": 0});
    let mut ws = start(Script::from_fn(script), extra).await;
    let (holder_id, holder_answer) =
        ws.client.start_request("claude/analyze", analyze_params(&ws, "holder-run", "h")).await;
    ws.api.wait_for_requests(1, Duration::from_secs(60)).await;

    // 60 a minute allows a burst of 60 (the holder took one), then one a second. Send runs
    // until one finds the bucket empty: that one says so instead of queueing.
    let mut fillers = Vec::new();
    let limited_answer = loop {
        let n = fillers.len();
        assert!(n < 1000, "no run was ever rate limited");
        let token = format!("f{n}");
        let params = analyze_params(&ws, &format!("filler-{n}"), &token);
        let (id, answer) = ws.client.start_request("claude/analyze", params).await;
        let message = waiting_message(&ws.client, &token).await;
        if message.starts_with("Rate limited") {
            // The bucket was just emptied: the next token comes within a second.
            assert_eq!(message, "Rate limited (requestsPerMinute): starting in 1 s");
            break answer;
        }
        assert_eq!(message, format!("Queued ({n} ahead)"));
        fillers.push((id, answer));
    };
    assert!(fillers.len() >= 59, "a burst of a minute's worth passes: {}", fillers.len());
    let limited = fillers.len();
    let limited_token = format!("f{limited}");

    // The runs that got a token leave the queue; the rate-limited one, once its token comes,
    // joins the queue behind the holder.
    for (id, _) in &fillers {
        ws.client.cancel(*id).await;
    }
    for (_, answer) in fillers.drain(..) {
        assert_eq!(answer_within(answer, ANSWER_WAIT).await.unwrap_err()["code"], -32800);
    }
    let first_in_line =
        |p: &Value| p["token"] == limited_token && p["value"]["message"] == "Queued (0 ahead)";
    ws.client.wait_for_notification("$/progress", first_in_line).await;
    assert_eq!(
        metrics(&mut ws).await["scheduler"],
        json!({"maxConcurrent": 1, "running": 1, "queued": 1})
    );

    // The holder goes; the run that waited for the rate limit is served.
    ws.client.cancel(holder_id).await;
    assert_eq!(answer_within(holder_answer, ANSWER_WAIT).await.unwrap_err()["code"], -32800);
    let served = answer_within(limited_answer, ANSWER_WAIT).await.unwrap();
    assert!(served["text"].as_str().unwrap().starts_with("done"), "{served}");
    // Of the runs after the holder, only the served one reached the API.
    let mut reached: Vec<usize> =
        ws.api.requests().iter().filter_map(|r| marker_number(r, "filler-")).collect();
    reached.sort_unstable();
    reached.dedup();
    assert_eq!(reached, [limited], "cancelled runs reached the API");
    let report = metrics(&mut ws).await;
    // Only the holder and the served run ever got a slot (and so a CLI).
    assert_eq!(report["queueWaitMs"]["count"], 2, "{report:#}");
    assert_eq!(
        report["requests"]["byAction"]["analyze"],
        json!({"success": 1, "cancelled": limited + 1}),
        "{report:#}"
    );
    assert_nothing_left_while_up(&ws).await;
    ws.client.drain_also(&["window/showMessage"]).await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_rate_limited_run_spawns_nothing_is_cancellable_and_other_folders_have_own_buckets() {
    let mut ws = start_with_sub_folder(
        Turn::text("done"),
        json!({"requestsPerMinute": 1, "liveSessions": 0}),
    )
    .await;
    // The first run takes this folder's one token of the minute.
    let first =
        ws.client.request_json("claude/analyze", analyze_params(&ws, "first-run", "r1")).await;
    assert!(first.unwrap()["text"].as_str().unwrap().starts_with("done"));

    // The second waits for the bucket and says so.
    let (second_id, mut second_answer) =
        ws.client.start_request("claude/analyze", analyze_params(&ws, "second-run", "r2")).await;
    let message = waiting_message(&ws.client, "r2").await;
    let secs: u64 = message
        .strip_prefix("Rate limited (requestsPerMinute): starting in ")
        .and_then(|rest| rest.strip_suffix(" s"))
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("{message}"));
    assert!((1..=60).contains(&secs), "{message}");
    // It waits before the queue: it holds no slot, and no CLI of this test runs.
    assert_eq!(
        metrics(&mut ws).await["scheduler"],
        json!({"maxConcurrent": 4, "running": 0, "queued": 0})
    );
    assert_nothing_left_while_up(&ws).await;

    // The other folder has a bucket of its own: its run is served meanwhile.
    let sub_params = json!({"textDocument": {"uri": ws.uri("sub/src/lib.rs")},
                            "instruction": "other-folder-run", "workDoneToken": "r3"});
    let other = ws.client.request_json("claude/analyze", sub_params).await.unwrap();
    assert!(other["text"].as_str().unwrap().starts_with("done"), "{other}");
    assert!(
        matches!(second_answer.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
        "the rate-limited run was answered before its token came"
    );

    // Cancelled while it waits: answered RequestCancelled, and it never reached the CLI or the
    // API (it never got a slot, and a CLI is spawned only once a run has one).
    ws.client.cancel(second_id).await;
    let cancelled = answer_within(second_answer, ANSWER_WAIT).await.unwrap_err();
    assert_eq!(cancelled["code"], -32800, "{cancelled}");
    let end = ws
        .client
        .wait_for_notification("$/progress", |p| p["token"] == "r2" && p["value"]["kind"] == "end")
        .await;
    assert_eq!(end["value"]["message"], "Cancelled; nothing was applied");
    let prompts: Vec<String> = ws.api.requests().iter().map(RecordedRequest::all_text).collect();
    assert!(prompts.iter().any(|p| p.contains("other-folder-run")), "{prompts:#?}");
    assert!(!prompts.iter().any(|p| p.contains("second-run")), "the cancelled run reached the API");
    let report = metrics(&mut ws).await;
    assert_eq!(report["queueWaitMs"]["count"], 2, "{report:#}");
    assert_eq!(
        report["requests"]["byAction"]["analyze"],
        json!({"success": 2, "cancelled": 1}),
        "{report:#}"
    );
    assert_nothing_left_while_up(&ws).await;
    ws.client.drain_also(&["window/showMessage"]).await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_budget_overrun_fails_at_once_with_a_hint() {
    let script = |request: &RecordedRequest| match request.turn_index() {
        0 => {
            Turn::tool_use("Read", json!({"file_path": format!("{}/src/lib.rs", cli_cwd(request))}))
                .with_usage(2_000_000, 1_000)
        }
        _ => Turn::text("done"),
    };
    let mut ws = start(Script::from_fn(script), json!({"maxBudgetUsd": 0.0001})).await;
    let params = analyze_params(&ws, "explain", "b1");
    let error = ws.client.request_json("claude/analyze", params).await.unwrap_err();
    assert_eq!(kind(&error), "budget_exceeded", "{error}");
    assert_eq!(error["data"]["retryable"], false);
    assert!(error["data"]["hint"].as_str().unwrap().contains("maxBudgetUsd"), "{error}");
    assert_eq!(metrics(&mut ws).await["retries"]["total"], 0);
    ws.client.drain_also(&["window/showMessage"]).await;
    ws.client.finish().await;
}

#[tokio::test]
async fn a_daily_budget_caps_a_run_while_it_runs_and_the_day_goes_over_by_at_most_one_call() {
    // Every API call reports the same large usage, so each costs the same: `call`.
    let script = |request: &RecordedRequest| {
        let read = Turn::tool_use(
            "Read",
            json!({"file_path": format!("{}/src/lib.rs", cli_cwd(request))}),
        );
        let turn = if request.all_text().contains("budgeted-run") {
            if request.turn_index() < 2 { read } else { Turn::text("done") }
        } else if request.has_tool_result_for("StructuredOutput") {
            Turn::text("done")
        } else {
            Turn::tool_use("StructuredOutput", json!({"findings": [], "summary": "Looks fine."}))
        };
        turn.with_usage(100_000, 1_000)
    };
    let mut ws = start(Script::from_fn(script), json!({})).await;
    // A run without a daily budget measures the price of a call: it makes one (its structured
    // answer ends it).
    let first =
        ws.client.request_json("claude/analyze", analyze_params(&ws, "calibrate", "d0")).await;
    assert!(first.is_ok(), "{first:?}");
    // The answer came from the structured call; its cost is in the books once the CLI has
    // ended its turn.
    let call = eventually("the calibrating run is in the books", async || {
        let usage = ws.client.request_json("claude/usage", json!({})).await.unwrap();
        (usage["total"]["runs"] == 1).then(|| usage["total"]["costUsd"].as_f64().unwrap())
    })
    .await;
    assert_eq!(ws.api.requests().len(), 1);
    assert!(call > 0.0);
    let first_cost = call;
    // What is left of the day is one and a half calls.
    let budget = first_cost + 1.5 * call;
    reconfigure(&mut ws, 1, json!({"maxConcurrent": 3, "dailyBudgetUsd": budget})).await;

    let error = ws
        .client
        .request_json("claude/analyze", analyze_params(&ws, "budgeted-run", "d1"))
        .await
        .unwrap_err();
    assert_eq!(kind(&error), "budget_exceeded", "{error}");
    assert_eq!(error["data"]["retryable"], false);
    assert!(error["message"].as_str().unwrap().contains("dailyBudgetUsd"), "{error}");
    assert!(error["data"]["hint"].as_str().unwrap().contains("dailyBudgetUsd"), "{error}");
    // The CLI stopped after the call that crossed the budget: the second of the run.
    assert_eq!(ws.api.requests().len(), 3, "the run went on past its budget");
    let usage = ws.client.request_json("claude/usage", json!({})).await.unwrap();
    let today = usage["today"]["costUsd"].as_f64().unwrap();
    assert!(today > budget, "the failed run's spending is in the books: {usage:#}");
    assert!(today <= budget + call * 1.000_001, "over by more than one call: {usage:#}");

    // The day is spent: the next run is refused before it reaches the API.
    let refused = ws
        .client
        .request_json("claude/analyze", analyze_params(&ws, "after-budget", "d2"))
        .await
        .unwrap_err();
    assert_eq!(kind(&refused), "budget_exceeded", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("has reached the daily budget"));
    assert_eq!(ws.api.requests().len(), 3);
    ws.client.drain_also(&["window/showMessage"]).await;
    ws.client.finish().await;
}

/// The number in a `req-<n>` marker of the conversation.
fn request_number(request: &RecordedRequest) -> Option<usize> {
    marker_number(request, "req-")
}

/// The number after the first `marker` in the conversation (`req-17` → 17).
fn marker_number(request: &RecordedRequest, marker: &str) -> Option<usize> {
    let text = request.all_text();
    let start = text.find(marker)? + marker.len();
    let digits: String = text[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Requests of the load test whose first API call hangs (the idle timeout ends it, and the run
/// resumes its session).
const HANGING: [usize; 2] = [17, 117];

/// One request in five fails its first two API calls (the CLI's try and its one retry), with a
/// 429, a 529 or a 500 in turn; then the server's retry succeeds.
fn injected_fault(n: usize) -> Option<Turn> {
    if n % 5 != 1 {
        return None;
    }
    Some(match (n / 5) % 3 {
        0 => Turn::rate_limited(1),
        1 => Turn::overloaded(),
        _ => Turn::server_error(),
    })
}

#[tokio::test]
async fn under_load_with_faults_every_request_is_answered_once_and_the_circuit_opens_and_closes() {
    let outage = Arc::new(AtomicBool::new(false));
    let calls = CallCounter::default();
    let in_outage = outage.clone();
    let script = move |request: &RecordedRequest| {
        if in_outage.load(Ordering::SeqCst) {
            return Turn::server_error();
        }
        if let Some(n) = request_number(request) {
            let call = calls.next(&n.to_string());
            if HANGING.contains(&n) && call == 1 {
                return Turn::Hang;
            }
            if let Some(fault) = injected_fault(n).filter(|_| call <= 2) {
                return fault;
            }
        }
        if request.has_tool_result_for("StructuredOutput") {
            Turn::text("done")
        } else {
            Turn::tool_use("StructuredOutput", json!({"findings": [], "summary": "Looks fine."}))
        }
    };
    let files = [("src/lib.rs", LIB), ("sub/src/lib.rs", LIB)];
    // No warm pool and no live conversations: every CLI ends with its run, so "no process left"
    // can be checked exactly while the server is up.
    let settings = json!({"maxConcurrent": 4, "maxRetries": 3, "idleTimeoutSecs": 15,
                          "timeoutSecs": 200, "circuitFailureThreshold": 5, "circuitCooldownSecs": 10,
                          "warmPool": 0, "liveSessions": 0});
    let mut ws =
        Workspace::start(&files, Script::from_fn(script), full_capabilities(), settings).await;
    // A second workspace folder: its runs queue fairly next to the first one's.
    let sub = ws.uri("sub");
    ws.client
        .notify_json(
            "workspace/didChangeWorkspaceFolders",
            json!({"event": {"added": [{"uri": sub, "name": "sub"}], "removed": []}}),
        )
        .await;

    // Phase 1: 200 requests at once, 20% with transient faults, two that hang once.
    let mut answers = Vec::new();
    for n in 0..200 {
        let file = if n % 2 == 0 { "src/lib.rs" } else { "sub/src/lib.rs" };
        let params =
            json!({"textDocument": {"uri": ws.uri(file)}, "instruction": format!("req-{n}")});
        answers.push((n, ws.client.start_request("claude/analyze", params).await.1));
    }
    for (n, answer) in answers {
        if let Err(error) = answer_within(answer, ANSWER_WAIT).await {
            panic!("req-{n} failed: {error}");
        }
    }
    let report = metrics(&mut ws).await;
    assert_eq!(report["requests"]["total"], 200, "{report:#}");
    assert_eq!(report["requests"]["byAction"]["analyze"], json!({"success": 200}));
    assert_eq!(report["recoveries"]["byReason"], json!({"timeout": HANGING.len()}), "{report:#}");
    let faulty = (0..200).filter(|n| injected_fault(*n).is_some()).count();
    assert_eq!(
        report["retries"]["total"], faulty as u64,
        "one retry per faulty request: {report:#}"
    );
    assert_eq!(report["circuit"]["state"], "closed");
    assert_eq!(report["queueWaitMs"]["count"], 200);
    // A run answered at its findings keeps its slot until its CLI has ended the turn.
    let scheduler = eventually("every CLI has ended its turn", async || {
        let scheduler = metrics(&mut ws).await["scheduler"].clone();
        (scheduler["running"] == 0).then_some(scheduler)
    })
    .await;
    assert_eq!(scheduler, json!({"maxConcurrent": 4, "running": 0, "queued": 0}));
    // With every request answered and the server still up, no CLI is left and none unreaped.
    assert_nothing_left_while_up(&ws).await;

    // Phase 2: a sustained outage opens the circuit; then new requests fail fast.
    outage.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    for n in 0..10 {
        let params = analyze_params(&ws, &format!("outage-{n}"), &format!("o{n}"));
        answers.push(ws.client.start_request("claude/analyze", params).await.1);
    }
    let mut kinds = Vec::new();
    for answer in answers {
        let error = answer_within(answer, ANSWER_WAIT).await.unwrap_err();
        kinds.push(kind(&error).to_owned());
    }
    assert!(kinds.iter().all(|k| k == "api_error" || k == "circuit_open"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "circuit_open"), "{kinds:?}");
    let report = metrics(&mut ws).await;
    assert_eq!(report["circuit"]["state"], "open", "{report:#}");
    assert_eq!(report["circuit"]["cause"], "API error 500");
    let calls_before = ws.api.requests().len();
    let refused = ws
        .client
        .request_json("claude/analyze", analyze_params(&ws, "while-open", "w1"))
        .await
        .unwrap_err();
    assert_eq!(kind(&refused), "circuit_open", "{refused}");
    assert_eq!(refused["code"], -32019);
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("API error 500") && message.contains("tries it again in"),
        "{message}"
    );
    assert_eq!(ws.api.requests().len(), calls_before, "a refused run must not reach the API");

    // Phase 3: the API recovers; after the cooldown one probe closes the circuit.
    outage.store(false, Ordering::SeqCst);
    eventually("the circuit's cooldown ends", async || {
        (metrics(&mut ws).await["circuit"]["retryInSecs"] == 0).then_some(())
    })
    .await;
    let probe = ws.client.request_json("claude/analyze", analyze_params(&ws, "probe", "p1")).await;
    assert!(probe.is_ok(), "{probe:?}");
    let report = metrics(&mut ws).await;
    assert_eq!(report["circuit"]["state"], "closed", "{report:#}");
    assert!(report["circuit"]["timesOpened"].as_u64().unwrap() >= 1);
    for n in 0..3 {
        let params = analyze_params(&ws, &format!("after-{n}"), &format!("z{n}"));
        assert!(ws.client.request_json("claude/analyze", params).await.is_ok());
    }
    // Each of the 215 analyze requests (and every other request) was answered exactly once.
    let asked = assert_each_request_answered_once(&ws.client);
    assert!(asked > 200 + 10 + 1 + 1 + 3, "{asked} requests");
    let report = metrics(&mut ws).await;
    assert_eq!(report["requests"]["total"], 200 + 10 + 1 + 1 + 3, "{report:#}");
    assert_nothing_left_while_up(&ws).await;
    ws.client.drain_also(&["window/showMessage"]).await;
    let ours = our_clis(&ws);
    ws.client.finish().await;
    assert_no_cli_left(ours).await;
}
