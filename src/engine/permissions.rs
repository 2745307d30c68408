//! What the agent may do in a run, decided by claude-lsp for every tool call.
//!
//! Every CLI that serves a run registers a `PreToolUse` hook for all tools ([`hook_registration`]),
//! so each call reaches [`PermissionGate`] *before* the CLI applies its own rules — which would
//! otherwise wave through calls matched by `--allowedTools` and "read-only" shell commands such
//! as `cat ~/.ssh/id_rsa`. The gate answers the hook with an explicit allow or deny:
//!
//! 1. the action's tool profile: analyze/review only read; generate/refactor may also edit;
//! 2. the path sandbox: every path a call names (file paths, search roots, absolute Glob
//!    patterns, the shell's working directory and the paths in a Bash command) must resolve —
//!    symlinks, `..`, `~` and case included — inside the run's root (the workspace, or the
//!    mirror for edit runs) or, for reading, an additional directory;
//! 3. `disallowedTools` rules deny, `allowedTools` rules allow (in the CLI's rule syntax);
//! 4. Bash, WebFetch, WebSearch and MCP tools that no rule allows are put to the user
//!    ([`UserPrompter`]): allow once, allow for this session (remembered per conversation), or
//!    deny; no answer within `permissionTimeoutSecs`, or nobody to ask, denies.
//!
//! Every decision is appended to the audit log (`crate::model::audit`). `can_use_tool` requests (which
//! the CLI sends only for calls its rules leave open) get the same answer as the hook gave.

mod paths;
pub(crate) mod rules;
mod shell;
pub mod tools;

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::base::error::{ErrorKind, ServerError};
use crate::base::secrets::redacted;
use crate::claude::args::PermissionMode;
use crate::claude::control::{ControlHandler, HookMatcher, InitializeRequest, PermissionDecision};
use crate::claude::protocol::CanUseToolRequest;
use crate::engine::sandbox;
use crate::model::audit::{AuditEntry, AuditLog, DecidedBy, Decision};
use crate::model::edits::FileChange;
use crate::model::settings::Settings;
use paths::Roots;
use rules::{RuleContext, ToolRule, parse_rules};
use tools::{DELEGATE_TOOLS, EDIT_TOOLS, READ_TOOLS};

/// Built-in tools that reach beyond the files: they need a rule or the user's consent.
pub const GATED_TOOLS: &[&str] = &["Bash", "WebFetch", "WebSearch"];
/// Tools with no effect outside the conversation: structured answers, plans, loading deferred
/// tool definitions, and reading or stopping the output of shells already allowed (newer CLIs
/// call `BashOutput`/`KillShell` `TaskOutput`/`TaskStop`).
const INERT_TOOLS: &[&str] = &[
    "StructuredOutput",
    "TodoWrite",
    "ToolSearch",
    "BashOutput",
    "KillShell",
    "TaskOutput",
    "TaskStop",
];

/// The callback id of the `PreToolUse` hook that routes every tool call through the gate.
pub const PRE_TOOL_USE_HOOK: &str = "claude_lsp_pre_tool_use";

/// The answers a permission question offers.
pub const ALLOW_ONCE: &str = "Allow once";
pub const ALLOW_FOR_SESSION: &str = "Allow for this session";
pub const DENY: &str = "Deny";
const CHOICES: [&str; 3] = [ALLOW_ONCE, ALLOW_FOR_SESSION, DENY];

/// How much of a command or input the audit log and the questions quote.
const MAX_QUOTED_CHARS: usize = 300;
/// Conversations whose "allow for this session" answers are remembered.
const MAX_REMEMBERED_SESSIONS: usize = 256;
/// Hook decisions kept for a `can_use_tool` about the same call.
const MAX_REMEMBERED_CALLS: usize = 1024;
/// Beyond the run's own timeout: the CLI must never give up on the hook first (a timed-out hook
/// does not block the call).
const HOOK_TIMEOUT_MARGIN_SECS: u64 = 60;

/// The `--tools` list for a run: reading, editing for edit runs, and the gated built-ins that
/// could be allowed at all — by an `allowedTools` rule, by the user when they can be asked, or by
/// `permissionMode: bypassPermissions` — unless a `disallowedTools` rule bans the whole tool; and
/// `Task` when the `agents` setting names subagents for it to run.
pub fn tool_profile(may_edit: bool, settings: &Settings, can_ask: bool) -> Vec<String> {
    let (allow, deny) =
        (parse_rules(&settings.allowed_tools), parse_rules(&settings.disallowed_tools));
    let bypass = permission_mode(settings) == Some(PermissionMode::BypassPermissions);
    let banned = |tool: &str| deny.iter().any(|rule| rule.is_whole_tool() && rule.names_tool(tool));
    let edit: &[&str] = if may_edit { &["Edit", "Write"] } else { &[] };
    let gated = GATED_TOOLS.iter().filter(|tool| {
        let allowed = can_ask || bypass || allow.iter().any(|rule| rule.names_tool(tool));
        allowed && !banned(tool)
    });
    let delegate = ["Task"].into_iter().filter(|tool| settings.agents.is_some() && !banned(tool));
    let tools = READ_TOOLS.iter().chain(edit).chain(gated).copied().chain(delegate);
    tools.map(str::to_owned).collect()
}

/// The `permissionMode` setting as the CLI flag (settings already validated the spelling).
pub fn permission_mode(settings: &Settings) -> Option<PermissionMode> {
    let mode = settings.permission_mode.as_deref()?;
    serde_json::from_value(Value::String(mode.to_owned())).ok()
}

/// A run whose settings allow Bash (a rule, or `bypassPermissions`) where its commands cannot be
/// sandboxed fails at once, rather than have every command refused one by one.
pub fn check_bash_sandbox(settings: &Settings) -> Result<(), ServerError> {
    let allows_bash = permission_mode(settings) == Some(PermissionMode::BypassPermissions)
        || parse_rules(&settings.allowed_tools).iter().any(|rule| rule.names_tool("Bash"));
    match sandbox::bash_refusal(settings) {
        Some(refusal) if allows_bash => Err(refusal),
        _ => Ok(()),
    }
}

/// The `initialize` request that registers the gate's `PreToolUse` hook for every tool. Every
/// CLI process that serves a run must be initialized with it (warm ones included).
pub fn hook_registration(settings: &Settings) -> InitializeRequest {
    let matcher = HookMatcher {
        matcher: None,
        callback_ids: vec![PRE_TOOL_USE_HOOK.to_owned()],
        timeout_secs: Some(settings.timeout_secs.saturating_add(HOOK_TIMEOUT_MARGIN_SECS)),
    };
    InitializeRequest {
        hooks: [("PreToolUse".to_owned(), vec![matcher])].into_iter().collect(),
        ..InitializeRequest::default()
    }
}

/// Refuse a run's file changes unless every path lies inside `workspace` (symlinks resolved):
/// nothing outside the workspace may ever reach a WorkspaceEdit.
pub fn check_changes_inside(workspace: &Path, changes: &[FileChange]) -> Result<(), ServerError> {
    let home = dirs::home_dir().unwrap_or_else(|| PathBuf::from("/"));
    let roots = Roots::new(workspace, &[], &home);
    for path in changes.iter().flat_map(FileChange::paths) {
        if let Err(reason) = roots.writable(workspace, &path.to_string_lossy()) {
            return Err(ServerError::new(
                ErrorKind::SANDBOX_VIOLATION,
                format!("the run changed a file outside the workspace: {reason}"),
                "nothing was applied; a changed path leads out of the workspace (through a symlink or `..`)",
            ));
        }
    }
    Ok(())
}

/// The user's answer to a permission question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// One of the offered choices, by its title.
    Chosen(String),
    /// Closed without choosing.
    Dismissed,
    /// The question could not be shown.
    Failed(String),
}

/// Puts permission questions to the user (in an editor: `window/showMessageRequest`).
pub trait UserPrompter: Send + Sync + 'static {
    /// Why no question can be asked at all (e.g. the editor has no showMessageRequest), or `None`.
    fn unavailable(&self) -> Option<String>;

    /// Ask `question`; the answer is one of `choices`. The gate enforces the timeout.
    fn ask(&self, question: &str, choices: &[&str]) -> BoxFuture<'static, Answer>;

    /// Tell the user what the gate is doing (a progress line: "Waiting for your permission: …").
    fn status(&self, message: &str);
}

/// "Allow for this session" answers, per CLI conversation (session id). Shared by all runs, so a
/// continued conversation keeps them.
#[derive(Debug, Default)]
pub struct SessionGrants {
    inner: Mutex<GrantsInner>,
}

#[derive(Debug, Default)]
struct GrantsInner {
    by_session: HashMap<String, HashSet<String>>,
    /// Sessions in the order they were first granted something; the oldest is forgotten first.
    order: VecDeque<String>,
}

impl SessionGrants {
    pub fn contains(&self, session: &str, grant: &str) -> bool {
        self.inner.lock().by_session.get(session).is_some_and(|grants| grants.contains(grant))
    }

    pub fn grant(&self, session: &str, grant: &str) {
        let mut inner = self.inner.lock();
        if !inner.by_session.contains_key(session) {
            if inner.order.len() >= MAX_REMEMBERED_SESSIONS
                && let Some(oldest) = inner.order.pop_front()
            {
                inner.by_session.remove(&oldest);
            }
            inner.order.push_back(session.to_owned());
        }
        inner.by_session.entry(session.to_owned()).or_default().insert(grant.to_owned());
    }
}

/// What the gate needs beyond the run's own settings: someone to ask, the grants to remember, the
/// log to write. The default has nobody to ask and no log (a headless run denies what needs a yes).
#[derive(Clone, Default)]
pub struct PermissionServices {
    pub prompter: Option<Arc<dyn UserPrompter>>,
    pub grants: Arc<SessionGrants>,
    pub audit: Option<Arc<AuditLog>>,
}

impl PermissionServices {
    /// Whether a question could reach the user at all.
    pub fn can_ask(&self) -> bool {
        self.prompter.as_ref().is_some_and(|prompter| prompter.unavailable().is_none())
    }
}

/// What a call is, for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ToolKind {
    Read,
    Edit,
    /// Bash, WebFetch, WebSearch and MCP tools: a rule or the user decides.
    Gated,
    Inert,
    /// `Task`: runs a subagent of the `agents` setting, whose calls the gate sees one by one.
    Delegate,
    /// Anything else: not part of any profile.
    Other,
}

impl ToolKind {
    fn of(tool: &str) -> Self {
        if READ_TOOLS.contains(&tool) {
            Self::Read
        } else if EDIT_TOOLS.contains(&tool) {
            Self::Edit
        } else if GATED_TOOLS.contains(&tool) || tool.starts_with("mcp__") {
            Self::Gated
        } else if INERT_TOOLS.contains(&tool) {
            Self::Inert
        } else if DELEGATE_TOOLS.contains(&tool) {
            Self::Delegate
        } else {
            Self::Other
        }
    }
}

/// One tool call, as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct ToolCall<'a> {
    pub tool: &'a str,
    pub input: &'a Value,
    /// The CLI's working directory at the time of the call (Bash `cd`s move it); `None`: the root.
    pub cwd: Option<&'a Path>,
}

/// What the policy says about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow {
        by: DecidedBy,
        rule: Option<String>,
    },
    Deny {
        by: DecidedBy,
        rule: Option<String>,
        reason: String,
    },
    /// Only the user can decide; `grant` is what "allow for this session" remembers.
    Ask {
        grant: String,
    },
}

/// The static part of the decision: profile, sandbox, rules and mode. Pure apart from reading
/// the file system to resolve paths.
#[derive(Debug, Clone)]
pub struct Policy {
    roots: Roots,
    may_edit: bool,
    allow: Vec<ToolRule>,
    deny: Vec<ToolRule>,
    mode: Option<PermissionMode>,
    /// The `agents` setting names subagents: `Task` may run them.
    delegates: bool,
    /// Why Bash may not run at all (no sandbox, no opt-out), with what to do about it.
    bash_refused: Option<String>,
}

impl Policy {
    /// `root` is the run's working directory (the workspace, or the mirror for edit runs).
    pub fn new(root: &Path, settings: &Settings, may_edit: bool) -> Self {
        Self {
            roots: Roots::new(root, &settings.additional_directories, &settings.cli_home()),
            may_edit,
            allow: parse_rules(&settings.allowed_tools),
            deny: parse_rules(&settings.disallowed_tools),
            mode: permission_mode(settings),
            delegates: settings.agents.is_some(),
            bash_refused: sandbox::bash_refusal(settings)
                .map(|refusal| format!("{} ({})", refusal.message, refusal.hint)),
        }
    }

    pub fn root(&self) -> &Path {
        self.roots.root()
    }

    /// The verdict on `call`; `granted` says whether the conversation holds a session grant.
    pub fn evaluate(&self, call: &ToolCall, granted: &dyn Fn(&str) -> bool) -> Verdict {
        let tool = call.tool;
        let cwd = call.cwd.unwrap_or(self.roots.root());
        let kind = ToolKind::of(tool);
        let policy_denies =
            |reason: String| Verdict::Deny { by: DecidedBy::Policy, rule: None, reason };
        match kind {
            ToolKind::Edit if !self.may_edit => {
                return policy_denies(format!(
                    "{tool} is not allowed: this action only reads files (use refactor or generate to change them)"
                ));
            }
            ToolKind::Other => {
                return policy_denies(format!("{tool} is not available in this run"));
            }
            ToolKind::Delegate if !self.delegates => {
                return policy_denies(format!(
                    "{tool} is not available in this run (the agents setting names no subagents)"
                ));
            }
            _ => {}
        }
        if let (Some(refusal), "Bash") = (&self.bash_refused, tool) {
            return policy_denies(refusal.clone());
        }
        if let Err(reason) = self.check_paths(kind, call, cwd) {
            return policy_denies(reason);
        }
        if let Some(rule) = self.denied_by(call, cwd) {
            return Verdict::Deny {
                by: DecidedBy::Rule,
                reason: format!("{tool} is denied by the rule `{rule}` (disallowedTools)"),
                rule: Some(rule),
            };
        }
        if kind != ToolKind::Gated {
            return Verdict::Allow { by: DecidedBy::Policy, rule: None };
        }
        if let Some(rule) = self.allowed_by(call, cwd) {
            return Verdict::Allow { by: DecidedBy::Rule, rule: Some(rule) };
        }
        let grant = grant_key(tool, call.input);
        if granted(&grant) {
            return Verdict::Allow { by: DecidedBy::Session, rule: Some(grant) };
        }
        match self.mode {
            Some(PermissionMode::BypassPermissions) => {
                Verdict::Allow { by: DecidedBy::Mode, rule: Some("bypassPermissions".to_owned()) }
            }
            Some(PermissionMode::DontAsk) => Verdict::Deny {
                by: DecidedBy::Mode,
                rule: Some("dontAsk".to_owned()),
                reason: format!(
                    "{tool} is not allowed by any allowedTools rule, and permissionMode dontAsk never asks"
                ),
            },
            _ => Verdict::Ask { grant },
        }
    }

    /// The path sandbox: the first path of the call that lies outside where it may.
    fn check_paths(&self, kind: ToolKind, call: &ToolCall, cwd: &Path) -> Result<(), String> {
        let input = call.input;
        let field = |key: &str| input.get(key).and_then(Value::as_str);
        for key in ["file_path", "notebook_path", "path"] {
            if let Some(path) = field(key) {
                if kind == ToolKind::Edit {
                    self.roots.writable(cwd, path)?;
                } else {
                    self.roots.readable(cwd, path)?;
                }
            }
        }
        if call.tool == "Glob"
            && let Some(pattern) = field("pattern")
            && paths::is_path_like(pattern)
        {
            let base = field("path").unwrap_or(".");
            let base =
                paths::resolve(cwd, self.roots.home(), base).unwrap_or_else(|| cwd.to_path_buf());
            self.roots.readable(&base, &glob_prefix(pattern))?;
        }
        if call.tool == "Bash" {
            let cwd_text = cwd.to_string_lossy();
            self.roots.readable(Path::new("/"), &cwd_text).map_err(|_| {
                format!("the shell's working directory {cwd_text} is outside the workspace")
            })?;
            // Every argument is judged as a path: a relative word can still leave the workspace
            // through a symlink (`cat link/secret`). Words that are no path resolve inside.
            let command = field("command").unwrap_or("");
            for word in shell::parse(command).argument_words() {
                let value = word.split_once('=').map(|(_, value)| value);
                for candidate in std::iter::once(word).chain(value) {
                    if !candidate.is_empty() && !paths::is_harmless_device(candidate) {
                        self.roots.readable(cwd, candidate).map_err(|reason| {
                            format!("the command names a path outside the workspace: {reason}")
                        })?;
                    }
                }
            }
        }
        Ok(())
    }

    fn rule_context(&self) -> RuleContext<'_> {
        RuleContext { root: self.roots.root(), home: self.roots.home() }
    }

    /// The first `disallowedTools` rule that covers the call (any one of its Bash commands).
    fn denied_by(&self, call: &ToolCall, cwd: &Path) -> Option<String> {
        if call.tool == "Bash" {
            let command = call.input.get("command").and_then(Value::as_str).unwrap_or("");
            let commands = shell::parse(command).command_texts();
            let rule = self.deny.iter().find(|rule| {
                rule.is_bash()
                    && (rule.is_whole_tool() || commands.iter().any(|c| rule.matches_command(c)))
            });
            return rule.map(ToString::to_string);
        }
        let call_paths = rules::call_paths(call.input, cwd, self.roots.home());
        let ctx = self.rule_context();
        self.deny
            .iter()
            .find(|rule| rule.matches_call(call.tool, call.input, &call_paths, &ctx))
            .map(ToString::to_string)
    }

    /// The `allowedTools` rule(s) that cover the call. A Bash command line is covered only when
    /// each of its simple commands is, and never when it substitutes commands (`$(…)`, backticks).
    fn allowed_by(&self, call: &ToolCall, cwd: &Path) -> Option<String> {
        if call.tool == "Bash" {
            let command = call.input.get("command").and_then(Value::as_str).unwrap_or("");
            let line = shell::parse(command);
            if line.has_substitution || line.commands.is_empty() {
                return None;
            }
            let mut used: Vec<String> = Vec::new();
            for text in line.command_texts() {
                let rule = self.allow.iter().find(|rule| rule.matches_command(&text))?.to_string();
                if !used.contains(&rule) {
                    used.push(rule);
                }
            }
            return Some(used.join(", "));
        }
        let call_paths = rules::call_paths(call.input, cwd, self.roots.home());
        let ctx = self.rule_context();
        self.allow
            .iter()
            .find(|rule| rule.matches_call(call.tool, call.input, &call_paths, &ctx))
            .map(ToString::to_string)
    }
}

/// The directory part of a glob pattern, up to its first wildcard.
fn glob_prefix(pattern: &str) -> String {
    let Some(cut) = pattern.find(['*', '?', '[', '{']) else { return pattern.to_owned() };
    let fixed = &pattern[..cut];
    match fixed.rfind('/') {
        Some(0) => "/".to_owned(),
        Some(slash) => fixed[..slash].to_owned(),
        None => ".".to_owned(),
    }
}

/// What "allow for this session" remembers, in the rule syntax: the exact Bash command, the
/// WebFetch domain, or the tool.
fn grant_key(tool: &str, input: &Value) -> String {
    let field = |key: &str| input.get(key).and_then(Value::as_str);
    match tool {
        "Bash" => format!("Bash({})", field("command").unwrap_or("").trim()),
        "WebFetch" => match field("url").and_then(rules::url_host) {
            Some(host) => format!("WebFetch(domain:{host})"),
            None => tool.to_owned(),
        },
        _ => tool.to_owned(),
    }
}

/// The call in a few words, for the audit log (secrets redacted).
pub fn summarize_input(tool: &str, input: &Value) -> String {
    shorten(&describe_input(tool, input))
}

/// The whole command, path, URL or query of a call (secrets redacted), for the question.
fn describe_input(tool: &str, input: &Value) -> String {
    let field = |key: &str| input.get(key).and_then(Value::as_str);
    let text = match tool {
        "Bash" => field("command").map(str::to_owned),
        "WebFetch" => field("url").map(str::to_owned),
        "WebSearch" => field("query").map(str::to_owned),
        "Grep" => field("pattern").map(|pattern| match field("path") {
            Some(path) => format!("{pattern} in {path}"),
            None => pattern.to_owned(),
        }),
        "Glob" => field("pattern").map(|pattern| match field("path") {
            Some(path) => format!("{path}/{pattern}"),
            None => pattern.to_owned(),
        }),
        _ => field("file_path").or_else(|| field("notebook_path")).map(str::to_owned),
    };
    redacted(&text.unwrap_or_else(|| input.to_string()))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `text` with paths in the run's root (a mirror) shown as the workspace paths the user knows.
fn in_workspace(text: &str, root: &Path, workspace: &Path) -> String {
    let root = root.to_string_lossy();
    if root == workspace.to_string_lossy() {
        text.to_owned()
    } else {
        text.replace(root.as_ref(), &workspace.to_string_lossy())
    }
}

/// The permission question for a call: the whole input, never cut (the prompter shows a long
/// question in full before it can be allowed).
fn question(tool: &str, input: &Value, root: &Path, workspace: &Path) -> String {
    let summary = in_workspace(&describe_input(tool, input), root, workspace);
    match tool {
        "Bash" => format!("Claude wants to run `{summary}` in {}", workspace.display()),
        "WebFetch" => format!("Claude wants to fetch {summary}"),
        "WebSearch" => format!("Claude wants to search the web for \"{summary}\""),
        _ => match tool.strip_prefix("mcp__").and_then(|rest| rest.split_once("__")) {
            Some((server, name)) => {
                format!("Claude wants to use the MCP tool {name} of {server} with {summary}")
            }
            None => format!("Claude wants to use {tool} ({summary})"),
        },
    }
}

/// Decides every tool call of one CLI process (see the module docs).
#[derive(Clone)]
pub struct PermissionGate {
    inner: Arc<Gate>,
}

struct Gate {
    policy: Policy,
    services: PermissionServices,
    /// The workspace the user knows (the policy's root may be its mirror).
    workspace: PathBuf,
    timeout: Duration,
    /// One question at a time, so that a "for this session" answer covers the calls behind it.
    asking: tokio::sync::Mutex<()>,
    /// Hook decisions by tool_use_id, so a `can_use_tool` about the same call is not asked again.
    decided: Mutex<HashMap<String, PermissionDecision>>,
    /// The conversation, learned from the hook inputs.
    session_id: Mutex<Option<String>>,
}

impl PermissionGate {
    pub fn new(
        policy: Policy,
        services: PermissionServices,
        workspace: &Path,
        settings: &Settings,
    ) -> Self {
        Self {
            inner: Arc::new(Gate {
                policy,
                services,
                workspace: workspace.to_path_buf(),
                timeout: Duration::from_secs(settings.permission_timeout_secs),
                asking: tokio::sync::Mutex::new(()),
                decided: Mutex::new(HashMap::new()),
                session_id: Mutex::new(None),
            }),
        }
    }
}

/// A tool call with everything the gate needs, owned (it crosses an `.await`).
struct PendingCall {
    tool: String,
    input: Value,
    cwd: Option<PathBuf>,
    session_id: Option<String>,
}

impl Gate {
    async fn decide(&self, call: PendingCall) -> PermissionDecision {
        let session = call.session_id.clone().or_else(|| self.session_id.lock().clone());
        let session_key = session.clone().unwrap_or_default();
        let grants = &self.services.grants;
        let tool_call = ToolCall { tool: &call.tool, input: &call.input, cwd: call.cwd.as_deref() };
        let verdict =
            self.policy.evaluate(&tool_call, &|grant| grants.contains(&session_key, grant));
        match verdict {
            Verdict::Allow { by, rule } => self.allow(&call, session, by, rule),
            Verdict::Deny { by, rule, reason } => self.deny(&call, session, by, rule, reason),
            Verdict::Ask { grant } => self.ask(&call, session, grant).await,
        }
    }

    async fn ask(
        &self,
        call: &PendingCall,
        session: Option<String>,
        grant: String,
    ) -> PermissionDecision {
        let tool = &call.tool;
        let question = question(tool, &call.input, self.policy.root(), &self.workspace);
        let advice = format!("allow it with the allowedTools setting, e.g. `{grant}`");
        let Some(prompter) = self.services.prompter.clone() else {
            let reason =
                format!("{tool} needs the user's permission, but this run cannot ask; {advice}");
            return self.deny(call, session, DecidedBy::NoPrompt, None, reason);
        };
        if let Some(why) = prompter.unavailable() {
            prompter.status(&format!("Denied without asking ({why}): {question}"));
            let reason = format!("{tool} needs the user's permission, but {why}; {advice}");
            return self.deny(call, session, DecidedBy::NoPrompt, None, reason);
        }
        let _turn = self.asking.lock().await;
        let session_key = session.clone().unwrap_or_default();
        if self.services.grants.contains(&session_key, &grant) {
            return self.allow(call, session, DecidedBy::Session, Some(grant));
        }
        prompter.status(&format!("Waiting for your permission: {question}"));
        let answer = tokio::time::timeout(self.timeout, prompter.ask(&question, &CHOICES)).await;
        match answer {
            Err(_) => {
                let secs = self.timeout.as_secs();
                prompter.status(&format!("No answer within {secs} s: denied"));
                let reason = format!(
                    "the user did not answer the permission question within {secs} s; the call was denied"
                );
                self.deny(call, session, DecidedBy::Timeout, None, reason)
            }
            Ok(Answer::Chosen(choice)) if choice == ALLOW_ONCE => {
                self.allow(call, session, DecidedBy::User, None)
            }
            Ok(Answer::Chosen(choice)) if choice == ALLOW_FOR_SESSION => {
                self.services.grants.grant(&session_key, &grant);
                self.allow(call, session, DecidedBy::User, Some(grant))
            }
            Ok(answer) => {
                let reason = match answer {
                    Answer::Failed(why) => format!(
                        "the permission question could not be shown ({why}); the call was denied"
                    ),
                    Answer::Dismissed => {
                        "the user dismissed the permission question; the call was denied".to_owned()
                    }
                    Answer::Chosen(_) => "the user denied this call".to_owned(),
                };
                self.deny(call, session, DecidedBy::User, None, reason)
            }
        }
    }

    fn allow(
        &self,
        call: &PendingCall,
        session: Option<String>,
        by: DecidedBy,
        rule: Option<String>,
    ) -> PermissionDecision {
        self.record(call, session, Decision::Allow, by, rule, None);
        PermissionDecision::allow()
    }

    fn deny(
        &self,
        call: &PendingCall,
        session: Option<String>,
        by: DecidedBy,
        rule: Option<String>,
        reason: String,
    ) -> PermissionDecision {
        self.record(call, session, Decision::Deny, by, rule, Some(reason.clone()));
        PermissionDecision::deny(reason)
    }

    fn record(
        &self,
        call: &PendingCall,
        session_id: Option<String>,
        decision: Decision,
        by: DecidedBy,
        rule: Option<String>,
        reason: Option<String>,
    ) {
        let entry = AuditEntry {
            time: crate::base::time::rfc3339(crate::base::time::now_secs()),
            session_id,
            workspace: self.workspace.display().to_string(),
            tool: call.tool.clone(),
            input: in_workspace(
                &summarize_input(&call.tool, &call.input),
                self.policy.root(),
                &self.workspace,
            ),
            decision,
            by,
            rule,
            reason,
        };
        tracing::info!(tool = %entry.tool, input = %entry.input, ?decision, ?by, rule = ?entry.rule, "tool permission");
        if let Some(audit) = &self.services.audit
            && let Err(err) = audit.append(&entry)
        {
            tracing::warn!(%err, path = %audit.path().display(), "cannot write the audit log");
        }
    }

    fn remember(&self, tool_use_id: Option<String>, decision: &PermissionDecision) {
        if let Some(id) = tool_use_id {
            let mut decided = self.decided.lock();
            if decided.len() >= MAX_REMEMBERED_CALLS {
                decided.clear();
            }
            decided.insert(id, decision.clone());
        }
    }
}

impl ControlHandler for PermissionGate {
    fn can_use_tool(&self, request: CanUseToolRequest) -> BoxFuture<'static, PermissionDecision> {
        let gate = self.inner.clone();
        Box::pin(async move {
            let earlier =
                request.tool_use_id.as_ref().and_then(|id| gate.decided.lock().remove(id));
            if let Some(decision) = earlier {
                return decision;
            }
            let call = PendingCall {
                tool: request.tool_name,
                input: request.input,
                cwd: None,
                session_id: None,
            };
            gate.decide(call).await
        })
    }

    fn hook_callback(&self, callback_id: String, input: Value) -> BoxFuture<'static, Value> {
        let gate = self.inner.clone();
        Box::pin(async move {
            if callback_id != PRE_TOOL_USE_HOOK {
                return json!({});
            }
            let text = |key: &str| input.get(key).and_then(Value::as_str).map(str::to_owned);
            let session_id = text("session_id");
            if let Some(id) = &session_id {
                *gate.session_id.lock() = Some(id.clone());
            }
            let decision = match text("tool_name") {
                Some(tool) => {
                    let call = PendingCall {
                        tool,
                        input: input.get("tool_input").cloned().unwrap_or_else(|| json!({})),
                        cwd: text("cwd").map(PathBuf::from),
                        session_id,
                    };
                    gate.decide(call).await
                }
                None => {
                    PermissionDecision::deny("a tool call without a tool name cannot be checked")
                }
            };
            gate.remember(text("tool_use_id"), &decision);
            pre_tool_use_output(&decision)
        })
    }
}

/// The hook's answer: an explicit allow or deny, so the CLI's own rules never decide first.
fn pre_tool_use_output(decision: &PermissionDecision) -> Value {
    let (verdict, reason) = match decision {
        PermissionDecision::Allow { .. } => ("allow", "allowed by claude-lsp"),
        PermissionDecision::Deny { message, .. } => ("deny", message.as_str()),
    };
    json!({"hookSpecificOutput": {
        "hookEventName": "PreToolUse",
        "permissionDecision": verdict,
        "permissionDecisionReason": reason,
    }})
}

#[cfg(test)]
mod tests;
