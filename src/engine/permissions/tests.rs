use std::sync::atomic::{AtomicUsize, Ordering};

use pretty_assertions::assert_eq;
use serde_json::json;

use super::*;

/// `<tmp>/ws` (with `src/`, and `link → <tmp>/outside`), `<tmp>/outside`, `<tmp>/docs` and a home.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
    docs: PathBuf,
    home: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let [root, outside, docs, home] =
            ["ws", "outside", "docs", "home"].map(|name| base.join(name));
        for d in [&root, &outside, &docs, &home] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::create_dir(root.join("src")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        Self { _dir: dir, root, outside, docs, home }
    }

    fn settings(&self, extra: Value) -> Settings {
        let mut options = json!({
            "env": {"HOME": self.home},
            "additionalDirectories": [self.docs],
        });
        if let (Some(options), Some(extra)) = (options.as_object_mut(), extra.as_object()) {
            options.extend(extra.clone());
        }
        let (settings, warnings) = crate::model::settings::parse_settings(Some(&options));
        assert_eq!(warnings, [], "test settings must be valid");
        settings
    }

    fn policy(&self, may_edit: bool, extra: Value) -> Policy {
        Policy::new(&self.root, &self.settings(extra), may_edit)
    }

    fn path(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }
}

fn verdict(policy: &Policy, tool: &str, input: Value) -> Verdict {
    policy.evaluate(&ToolCall { tool, input: &input, cwd: None }, &|_| false)
}

fn is_allowed(verdict: &Verdict) -> bool {
    matches!(verdict, Verdict::Allow { .. })
}

fn denial(verdict: Verdict) -> (DecidedBy, String) {
    match verdict {
        Verdict::Deny { by, reason, .. } => (by, reason),
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn bash(command: &str) -> Value {
    json!({"command": command, "description": "test"})
}

#[test]
fn file_paths_must_stay_inside_the_root() {
    let f = Fixture::new();
    let policy = f.policy(true, json!({}));
    let cases = [
        ("Read", f.path("src/a.rs"), true),
        ("Edit", f.path("new/dir/b.rs"), true),
        ("Write", "relative/c.rs".to_owned(), true),
        ("Read", "/etc/passwd".to_owned(), false),
        ("Edit", "/etc/passwd".to_owned(), false),
        ("Edit", f.path("../x"), false),
        ("Write", "../../x".to_owned(), false),
        ("Write", f.path("link/escape.txt"), false),
        ("Write", f.path("link/../escape.txt"), false),
        ("Read", "~/.ssh/id_rsa".to_owned(), false),
        ("Write", "~/.ssh/id_rsa".to_owned(), false),
    ];
    for (tool, path, want) in cases {
        let got = verdict(&policy, tool, json!({"file_path": path, "content": "x"}));
        assert_eq!(is_allowed(&got), want, "{tool} {path}: {got:?}");
        if !want {
            let (by, reason) = denial(got);
            assert_eq!(by, DecidedBy::Policy);
            assert!(reason.contains("outside"), "{reason}");
        }
    }
    let notebook = verdict(&policy, "NotebookEdit", json!({"notebook_path": "/tmp/x.ipynb"}));
    assert!(!is_allowed(&notebook));
    let grep = verdict(&policy, "Grep", json!({"pattern": "x", "path": "/etc"}));
    assert!(!is_allowed(&grep));
    assert!(is_allowed(&verdict(&policy, "Grep", json!({"pattern": "x"}))));
}

#[test]
fn absolute_glob_patterns_are_search_roots_too() {
    let f = Fixture::new();
    let policy = f.policy(false, json!({}));
    assert!(is_allowed(&verdict(&policy, "Glob", json!({"pattern": "src/**/*.rs"}))));
    assert!(is_allowed(&verdict(
        &policy,
        "Glob",
        json!({"pattern": format!("{}/**/*.rs", f.root.display())})
    )));
    for pattern in ["/etc/**/*.conf", "~/.ssh/*", "../*", "../../**"] {
        assert!(!is_allowed(&verdict(&policy, "Glob", json!({"pattern": pattern}))), "{pattern}");
    }
    assert_eq!(glob_prefix("/etc/**/x"), "/etc");
    assert_eq!(glob_prefix("/*"), "/");
    assert_eq!(glob_prefix("../a/*.rs"), "../a");
    assert_eq!(glob_prefix("*.rs"), ".");
    assert_eq!(glob_prefix("~/.ssh"), "~/.ssh");
}

#[test]
fn additional_directories_are_readable_but_never_writable() {
    let f = Fixture::new();
    let policy = f.policy(true, json!({}));
    let doc = f.docs.join("a.md").display().to_string();
    assert!(is_allowed(&verdict(&policy, "Read", json!({"file_path": doc}))));
    assert!(!is_allowed(&verdict(&policy, "Edit", json!({"file_path": doc}))));
}

#[test]
fn read_only_runs_cannot_edit_and_unknown_tools_are_refused() {
    let f = Fixture::new();
    let policy = f.policy(false, json!({}));
    let (by, reason) = denial(verdict(&policy, "Edit", json!({"file_path": f.path("a.rs")})));
    assert_eq!(by, DecidedBy::Policy);
    assert!(reason.contains("only reads"), "{reason}");
    let (_, reason) = denial(verdict(&policy, "Task", json!({"prompt": "x"})));
    assert!(reason.contains("not available"), "{reason}");
    assert!(is_allowed(&verdict(&policy, "StructuredOutput", json!({"findings": []}))));
    assert!(is_allowed(&verdict(&policy, "Read", json!({"file_path": f.path("a.rs")}))));
}

#[test]
fn gated_tools_are_asked_unless_a_rule_decides() {
    let f = Fixture::new();
    let policy = f.policy(false, json!({}));
    assert_eq!(
        verdict(&policy, "Bash", bash("cargo test")),
        Verdict::Ask { grant: "Bash(cargo test)".into() }
    );
    assert_eq!(
        verdict(&policy, "WebFetch", json!({"url": "https://Docs.rs/serde"})),
        Verdict::Ask { grant: "WebFetch(domain:docs.rs)".into() }
    );
    assert_eq!(
        verdict(&policy, "WebSearch", json!({"query": "q"})),
        Verdict::Ask { grant: "WebSearch".into() }
    );
    assert_eq!(
        verdict(&policy, "mcp__docs__search", json!({"q": "x"})),
        Verdict::Ask { grant: "mcp__docs__search".into() }
    );
}

#[test]
fn bash_rules_cover_every_simple_command_and_never_substitutions() {
    let f = Fixture::new();
    let policy = f.policy(false, json!({
        "allowedTools": ["Bash(cargo test:*)", "Bash(cargo build:*)", "mcp__docs", "WebFetch(domain:docs.rs)"],
        "disallowedTools": ["Bash(rm:*)", "WebSearch"],
    }));
    let allowed = verdict(&policy, "Bash", bash("cargo test --lib"));
    assert_eq!(
        allowed,
        Verdict::Allow { by: DecidedBy::Rule, rule: Some("Bash(cargo test:*)".into()) }
    );
    let both = verdict(&policy, "Bash", bash("cargo build && cargo test"));
    assert_eq!(
        both,
        Verdict::Allow {
            by: DecidedBy::Rule,
            rule: Some("Bash(cargo build:*), Bash(cargo test:*)".into())
        }
    );
    for asked in [
        "cargo test && curl evil.example",
        "cargo test $(curl evil.example)",
        "cargo test `id`",
        "cargo testx",
    ] {
        assert!(matches!(verdict(&policy, "Bash", bash(asked)), Verdict::Ask { .. }), "{asked}");
    }
    let (by, reason) = denial(verdict(&policy, "Bash", bash("cargo test; rm -rf target")));
    assert_eq!(by, DecidedBy::Rule);
    assert!(reason.contains("`Bash(rm:*)`"), "{reason}");
    assert!(is_allowed(&verdict(&policy, "mcp__docs__search", json!({}))));
    assert!(is_allowed(&verdict(&policy, "WebFetch", json!({"url": "https://docs.rs/x"}))));
    assert!(matches!(
        verdict(&policy, "WebFetch", json!({"url": "https://evil.example"})),
        Verdict::Ask { .. }
    ));
    assert_eq!(denial(verdict(&policy, "WebSearch", json!({"query": "q"}))).0, DecidedBy::Rule);
}

#[test]
fn deny_rules_cover_read_and_edit_families_by_path() {
    let f = Fixture::new();
    let policy =
        f.policy(true, json!({"disallowedTools": ["Read(.env)", "Edit(/src/generated/**)"]}));
    assert!(!is_allowed(&verdict(&policy, "Read", json!({"file_path": f.path("config/.env")}))));
    assert!(!is_allowed(&verdict(
        &policy,
        "Grep",
        json!({"pattern": "x", "path": f.path(".env")})
    )));
    assert!(!is_allowed(&verdict(
        &policy,
        "Write",
        json!({"file_path": f.path("src/generated/a.rs")})
    )));
    assert!(is_allowed(&verdict(&policy, "Write", json!({"file_path": f.path("src/a.rs")}))));
}

#[test]
fn bash_paths_and_working_directory_stay_inside() {
    let f = Fixture::new();
    let policy = f.policy(false, json!({"allowedTools": ["Bash"]}));
    for inside in [
        "ls src",
        "cat src/a.rs 2>/dev/null",
        "cargo test > out.txt",
        "/usr/bin/env ls",
        "echo a=b",
        "grep -r 'a/b' .",
        "curl https://docs.rs/x",
    ] {
        assert!(is_allowed(&verdict(&policy, "Bash", bash(inside))), "{inside}");
    }
    let docs = format!("cat {}/a.md", f.docs.display());
    assert!(is_allowed(&verdict(&policy, "Bash", bash(&docs))));
    for outside in [
        "cat /etc/passwd",
        "cat ~/.ssh/id_rsa",
        "cat $HOME/.ssh/id_rsa",
        "cat ../../x",
        "cd .. && ls",
        "cp src/a.rs link/x",
        "ls link",
        "cargo build --target-dir=/tmp/elsewhere",
        "X=/etc/passwd sh -c 'cat $X'",
        "ls 'src/../../outside'",
    ] {
        let got = verdict(&policy, "Bash", bash(outside));
        assert!(!is_allowed(&got), "{outside}: {got:?}");
        let (by, reason) = denial(got);
        assert_eq!(by, DecidedBy::Policy, "{outside}");
        assert!(reason.contains("outside the workspace"), "{outside}: {reason}");
    }
    let elsewhere = ToolCall { tool: "Bash", input: &bash("ls"), cwd: Some(&f.outside) };
    let (_, reason) = denial(policy.evaluate(&elsewhere, &|_| false));
    assert!(reason.contains("working directory"), "{reason}");
}

#[test]
fn session_grants_and_modes() {
    let f = Fixture::new();
    let policy = f.policy(false, json!({}));
    let input = bash("cargo test");
    let call = ToolCall { tool: "Bash", input: &input, cwd: None };
    let granted = policy.evaluate(&call, &|grant| grant == "Bash(cargo test)");
    assert_eq!(
        granted,
        Verdict::Allow { by: DecidedBy::Session, rule: Some("Bash(cargo test)".into()) }
    );

    let bypass = f.policy(false, json!({"permissionMode": "bypassPermissions"}));
    assert_eq!(
        verdict(&bypass, "Bash", bash("cargo test")),
        Verdict::Allow { by: DecidedBy::Mode, rule: Some("bypassPermissions".into()) }
    );
    // The sandbox holds whatever the mode.
    assert!(!is_allowed(&verdict(&bypass, "Bash", bash("cat /etc/passwd"))));
    let dont_ask = f.policy(false, json!({"permissionMode": "dontAsk"}));
    assert_eq!(denial(verdict(&dont_ask, "Bash", bash("cargo test"))).0, DecidedBy::Mode);
}

#[test]
fn profiles() {
    let f = Fixture::new();
    let plain = f.settings(json!({}));
    assert_eq!(tool_profile(false, &plain, false), ["Read", "Grep", "Glob"]);
    assert_eq!(tool_profile(true, &plain, false), ["Read", "Grep", "Glob", "Edit", "Write"]);
    assert_eq!(
        tool_profile(false, &plain, true),
        ["Read", "Grep", "Glob", "Bash", "WebFetch", "WebSearch"]
    );
    let rules = f.settings(
        json!({"allowedTools": ["Bash(cargo test:*)"], "disallowedTools": ["WebSearch"]}),
    );
    assert_eq!(tool_profile(false, &rules, false), ["Read", "Grep", "Glob", "Bash"]);
    assert_eq!(tool_profile(false, &rules, true), ["Read", "Grep", "Glob", "Bash", "WebFetch"]);
    let bypass = f.settings(json!({"permissionMode": "bypassPermissions"}));
    assert_eq!(
        tool_profile(false, &bypass, false),
        ["Read", "Grep", "Glob", "Bash", "WebFetch", "WebSearch"]
    );
    assert_eq!(permission_mode(&bypass), Some(PermissionMode::BypassPermissions));
    assert_eq!(permission_mode(&plain), None);
}

#[test]
fn the_agents_setting_brings_the_task_tool_to_run_them() {
    let f = Fixture::new();
    let agents = json!({"agents": {"tester": {"description": "Writes tests", "prompt": "Test."}}});
    let with_agents = f.settings(agents.clone());
    assert_eq!(tool_profile(false, &with_agents, false), ["Read", "Grep", "Glob", "Task"]);
    assert_eq!(
        tool_profile(true, &with_agents, false),
        ["Read", "Grep", "Glob", "Edit", "Write", "Task"]
    );
    let task = json!({"description": "tests", "prompt": "Write tests", "subagent_type": "tester"});
    let policy = f.policy(false, agents.clone());
    assert_eq!(
        verdict(&policy, "Task", task.clone()),
        Verdict::Allow { by: DecidedBy::Policy, rule: None }
    );
    // Newer CLIs name the tool `Agent`.
    assert!(is_allowed(&verdict(&policy, "Agent", task.clone())));
    // Without agents, no Task (read_only_runs_cannot_edit_and_unknown_tools_are_refused).
    let (_, reason) = denial(verdict(&f.policy(false, json!({})), "Task", task.clone()));
    assert!(reason.contains("agents setting"), "{reason}");
    // A rule that bans the tool wins over the setting.
    let mut banned = agents;
    banned["disallowedTools"] = json!(["Task"]);
    assert_eq!(tool_profile(false, &f.settings(banned.clone()), false), ["Read", "Grep", "Glob"]);
    assert!(!is_allowed(&verdict(&f.policy(false, banned), "Task", task)));
}

#[test]
fn the_hook_covers_every_tool_and_outlives_the_run() {
    let settings = Settings { timeout_secs: 300, ..Settings::default() };
    assert_eq!(
        hook_registration(&settings).to_request(),
        json!({"subtype": "initialize", "hooks": {"PreToolUse": [
            {"matcher": null, "hookCallbackIds": [PRE_TOOL_USE_HOOK], "timeout": 360}
        ]}})
    );
}

#[test]
fn changes_outside_the_workspace_never_become_edits() {
    let f = Fixture::new();
    let inside = FileChange::Created { path: f.root.join("src/new.rs"), content: String::new() };
    assert_eq!(check_changes_inside(&f.root, std::slice::from_ref(&inside)), Ok(()));
    let escapes = [
        FileChange::Created { path: f.outside.join("x"), content: String::new() },
        FileChange::Modified {
            path: f.root.join("link/x"),
            before: String::new(),
            after: "x".into(),
        },
        FileChange::Renamed {
            from: f.root.join("a"),
            to: f.root.join("../b"),
            before: String::new(),
            after: String::new(),
        },
    ];
    for change in escapes {
        let error = check_changes_inside(&f.root, &[inside.clone(), change.clone()]).unwrap_err();
        assert_eq!(error.kind, ErrorKind::SANDBOX_VIOLATION, "{change:?}");
    }
}

#[test]
fn questions_and_summaries_speak_of_the_workspace() {
    let root = Path::new("/cache/mirror/0");
    let ws = Path::new("/home/u/proj");
    assert_eq!(
        question("Bash", &bash("cargo test --manifest-path /cache/mirror/0/Cargo.toml"), root, ws),
        "Claude wants to run `cargo test --manifest-path /home/u/proj/Cargo.toml` in /home/u/proj"
    );
    assert_eq!(
        question("WebFetch", &json!({"url": "https://x.y/z"}), root, ws),
        "Claude wants to fetch https://x.y/z"
    );
    assert_eq!(
        question("mcp__docs__search", &json!({"q": "serde"}), root, ws),
        r#"Claude wants to use the MCP tool search of docs with {"q":"serde"}"#
    );
    let secret = summarize_input("Bash", &bash("curl -H 'Authorization: Bearer abc.def' x"));
    assert!(!secret.contains("abc.def"), "{secret}");
    let long = summarize_input("Bash", &bash(&"x".repeat(1000)));
    assert_eq!(long.chars().count(), MAX_QUOTED_CHARS + 1);
}

/// Answers with a fixed script and counts the questions.
struct ScriptedPrompter {
    answer: Option<Answer>,
    unavailable: Option<String>,
    asked: AtomicUsize,
    statuses: Mutex<Vec<String>>,
}

impl ScriptedPrompter {
    fn new(answer: Option<Answer>) -> Arc<Self> {
        Arc::new(Self {
            answer,
            unavailable: None,
            asked: AtomicUsize::new(0),
            statuses: Mutex::new(Vec::new()),
        })
    }
}

impl UserPrompter for ScriptedPrompter {
    fn unavailable(&self) -> Option<String> {
        self.unavailable.clone()
    }

    fn ask(&self, _question: &str, choices: &[&str]) -> BoxFuture<'static, Answer> {
        assert_eq!(choices, CHOICES);
        self.asked.fetch_add(1, Ordering::SeqCst);
        let answer = self.answer.clone();
        Box::pin(async move {
            match answer {
                Some(answer) => answer,
                None => std::future::pending().await,
            }
        })
    }

    fn status(&self, message: &str) {
        self.statuses.lock().push(message.to_owned());
    }
}

struct GateFixture {
    f: Fixture,
    gate: PermissionGate,
    audit: Arc<AuditLog>,
    grants: Arc<SessionGrants>,
}

fn gate(prompter: Option<Arc<dyn UserPrompter>>, extra: Value) -> GateFixture {
    let f = Fixture::new();
    let audit = Arc::new(AuditLog::new(&f.home.join("cache")));
    let grants = Arc::new(SessionGrants::default());
    let settings = f.settings(extra);
    let services =
        PermissionServices { prompter, grants: grants.clone(), audit: Some(audit.clone()) };
    let gate =
        PermissionGate::new(Policy::new(&f.root, &settings, false), services, &f.root, &settings);
    GateFixture { f, gate, audit, grants }
}

async fn hook(
    gate: &PermissionGate,
    session: &str,
    tool_use_id: &str,
    tool: &str,
    input: Value,
) -> Value {
    let input = json!({
        "hook_event_name": "PreToolUse", "session_id": session, "tool_name": tool,
        "tool_input": input, "tool_use_id": tool_use_id,
    });
    gate.hook_callback(PRE_TOOL_USE_HOOK.to_owned(), input).await
}

fn hook_verdict(output: &Value) -> (&str, &str) {
    let specific = &output["hookSpecificOutput"];
    assert_eq!(specific["hookEventName"], "PreToolUse");
    (
        specific["permissionDecision"].as_str().unwrap(),
        specific["permissionDecisionReason"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn allow_for_this_session_is_remembered_per_conversation() {
    let prompter = ScriptedPrompter::new(Some(Answer::Chosen(ALLOW_FOR_SESSION.into())));
    let g = gate(Some(prompter.clone()), json!({}));
    for id in ["toolu_1", "toolu_2"] {
        let output = hook(&g.gate, "s1", id, "Bash", bash("cargo test")).await;
        assert_eq!(hook_verdict(&output).0, "allow");
    }
    assert_eq!(prompter.asked.load(Ordering::SeqCst), 1, "the second call must not be asked");
    assert!(g.grants.contains("s1", "Bash(cargo test)"));
    // Another conversation, or another command, is asked again.
    hook(&g.gate, "s2", "toolu_3", "Bash", bash("cargo test")).await;
    hook(&g.gate, "s1", "toolu_4", "Bash", bash("cargo build")).await;
    assert_eq!(prompter.asked.load(Ordering::SeqCst), 3);
    let statuses = prompter.statuses.lock().clone();
    let expected = format!(
        "Waiting for your permission: Claude wants to run `cargo test` in {}",
        g.f.root.display()
    );
    assert_eq!(statuses[0], expected);

    let entries = g.audit.recent(10, Some("s1")).unwrap();
    let summary: Vec<(DecidedBy, Option<&str>)> =
        entries.iter().map(|e| (e.by, e.rule.as_deref())).collect();
    assert_eq!(
        summary,
        [
            (DecidedBy::User, Some("Bash(cargo test)")),
            (DecidedBy::Session, Some("Bash(cargo test)")),
            (DecidedBy::User, Some("Bash(cargo build)")),
        ]
    );
    assert!(entries.iter().all(|e| e.decision == Decision::Allow && e.tool == "Bash"));
    assert_eq!(entries[0].input, "cargo test");
}

#[tokio::test]
async fn allow_once_deny_and_dismiss() {
    for (answer, want, by, reason) in [
        (Answer::Chosen(ALLOW_ONCE.into()), "allow", DecidedBy::User, "allowed by claude-lsp"),
        (Answer::Chosen(DENY.into()), "deny", DecidedBy::User, "the user denied this call"),
        (
            Answer::Dismissed,
            "deny",
            DecidedBy::User,
            "the user dismissed the permission question; the call was denied",
        ),
        (
            Answer::Failed("boom".into()),
            "deny",
            DecidedBy::User,
            "the permission question could not be shown (boom); the call was denied",
        ),
    ] {
        let prompter = ScriptedPrompter::new(Some(answer.clone()));
        let g = gate(Some(prompter.clone()), json!({}));
        for id in ["toolu_1", "toolu_2"] {
            let output = hook(&g.gate, "s", id, "Bash", bash("touch x")).await;
            assert_eq!(hook_verdict(&output), (want, reason), "{answer:?}");
        }
        assert_eq!(prompter.asked.load(Ordering::SeqCst), 2, "{answer:?}: once means once");
        let entries = g.audit.recent(10, None).unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(|e| e.by == by && e.rule.is_none()), "{entries:?}");
    }
}

#[tokio::test]
async fn an_unanswered_question_is_denied_after_the_timeout() {
    let prompter = ScriptedPrompter::new(None);
    let g = gate(Some(prompter.clone()), json!({"permissionTimeoutSecs": 1}));
    let output = hook(&g.gate, "s", "toolu_1", "Bash", bash("cargo test")).await;
    let (decision, reason) = hook_verdict(&output);
    assert_eq!(decision, "deny");
    assert!(reason.contains("did not answer the permission question within 1 s"), "{reason}");
    assert_eq!(prompter.statuses.lock().last().unwrap(), "No answer within 1 s: denied");
    assert_eq!(g.audit.recent(1, None).unwrap()[0].by, DecidedBy::Timeout);
}

#[tokio::test]
async fn nobody_to_ask_denies_and_says_why() {
    let unable = Arc::new(ScriptedPrompter {
        unavailable: Some("your editor cannot show permission questions".into()),
        ..Arc::into_inner(ScriptedPrompter::new(None)).unwrap()
    });
    let g = gate(Some(unable.clone()), json!({}));
    let output = hook(&g.gate, "s", "toolu_1", "Bash", bash("cargo test")).await;
    let (decision, reason) = hook_verdict(&output);
    assert_eq!(decision, "deny");
    assert!(reason.contains("your editor cannot show permission questions"), "{reason}");
    assert!(reason.contains("`Bash(cargo test)`"), "{reason}");
    assert_eq!(unable.asked.load(Ordering::SeqCst), 0);
    let status = unable.statuses.lock()[0].clone();
    assert!(status.starts_with("Denied without asking (your editor cannot show permission questions): Claude wants to run `cargo test`"), "{status}");

    let headless = gate(None, json!({}));
    let output = hook(&headless.gate, "s", "toolu_1", "WebSearch", json!({"query": "q"})).await;
    assert!(hook_verdict(&output).1.contains("this run cannot ask"), "{output}");
    assert_eq!(headless.audit.recent(1, None).unwrap()[0].by, DecidedBy::NoPrompt);
}

#[tokio::test]
async fn can_use_tool_repeats_the_hook_decision_without_asking_again() {
    let prompter = ScriptedPrompter::new(Some(Answer::Chosen(ALLOW_ONCE.into())));
    let g = gate(Some(prompter.clone()), json!({}));
    hook(&g.gate, "s", "toolu_1", "Bash", bash("touch x")).await;
    let request = CanUseToolRequest {
        tool_name: "Bash".into(),
        input: bash("touch x"),
        tool_use_id: Some("toolu_1".into()),
        permission_suggestions: Vec::new(),
        blocked_path: None,
        raw: json!({}),
    };
    assert_eq!(g.gate.can_use_tool(request.clone()).await, PermissionDecision::allow());
    assert_eq!(prompter.asked.load(Ordering::SeqCst), 1);
    // A call the hook never saw is decided on its own (and asked).
    let unseen = CanUseToolRequest { tool_use_id: Some("toolu_9".into()), ..request };
    assert_eq!(g.gate.can_use_tool(unseen).await, PermissionDecision::allow());
    assert_eq!(prompter.asked.load(Ordering::SeqCst), 2);
    // Sandbox denials reach the model with their reason.
    let escape = json!({"file_path": "/etc/passwd"});
    let output = hook(&g.gate, "s", "toolu_3", "Read", escape).await;
    assert_eq!(
        hook_verdict(&output),
        (
            "deny",
            "/etc/passwd is outside the workspace and the additional directories; only paths inside may be used"
        )
    );
    assert_eq!(g.gate.hook_callback("other".into(), json!({})).await, json!({}));
}

#[test]
fn grants_forget_the_oldest_conversation_first() {
    let grants = SessionGrants::default();
    for i in 0..=MAX_REMEMBERED_SESSIONS {
        grants.grant(&format!("s{i}"), "Bash(x)");
    }
    assert!(!grants.contains("s0", "Bash(x)"));
    assert!(grants.contains("s1", "Bash(x)"));
    assert!(grants.contains(&format!("s{MAX_REMEMBERED_SESSIONS}"), "Bash(x)"));
}

#[test]
fn without_a_sandbox_bash_is_refused_unless_the_user_opts_out() {
    let f = Fixture::new();
    // A PATH without bwrap and socat.
    let no_sandbox = json!({"env": {"HOME": f.home, "PATH": f.home}, "allowedTools": ["Bash"]});
    let (by, reason) =
        denial(verdict(&f.policy(false, no_sandbox.clone()), "Bash", bash("cargo test")));
    assert_eq!(by, DecidedBy::Policy);
    assert!(reason.contains("bubblewrap") && reason.contains("dangerouslyAllowUnsandboxedBash"));
    let refusal = check_bash_sandbox(&f.settings(no_sandbox)).unwrap_err();
    assert_eq!(refusal.kind, crate::base::error::ErrorKind::SANDBOX_UNAVAILABLE);
    // Without a Bash rule the run goes ahead (its Bash calls are refused one by one).
    assert!(check_bash_sandbox(&f.settings(json!({"env": {"PATH": f.home}}))).is_ok());

    let opted_out = json!({
        "env": {"HOME": f.home, "PATH": f.home},
        "allowedTools": ["Bash"],
        "dangerouslyAllowUnsandboxedBash": true,
    });
    assert!(is_allowed(&verdict(&f.policy(false, opted_out.clone()), "Bash", bash("cargo test"))));
    assert!(check_bash_sandbox(&f.settings(opted_out)).is_ok());
}

#[test]
fn a_session_grant_reads_the_url_host_as_whatwg_does() {
    let f = Fixture::new();
    let policy = f.policy(false, json!({}));
    let input = json!({"url": "https://evil.com\\@good.com/x", "prompt": "read"});
    assert_eq!(grant_key("WebFetch", &input), "WebFetch(domain:evil.com)");
    let call = ToolCall { tool: "WebFetch", input: &input, cwd: None };
    let verdict = policy.evaluate(&call, &|grant| grant == "WebFetch(domain:good.com)");
    assert_eq!(verdict, Verdict::Ask { grant: "WebFetch(domain:evil.com)".into() });
}
