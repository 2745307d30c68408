//! Typed CLI flags. Every value is its own argv element: no shell, no string splicing.
//!
//! Checked against `claude --help` of the pinned CLIs (2.1.197 and 2.1.330); `--max-turns` and
//! `--permission-prompt-tool` are hidden flags the official SDKs pass.

use std::ffi::OsString;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::errors::ClaudeError;

/// `--permission-mode`, spelled as the CLI spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PermissionMode {
    /// Ask (through `can_use_tool`) for anything not allowed by rules. 2.1.330 lists it as
    /// `manual` but still accepts `default`, which 2.1.197 requires.
    Default,
    AcceptEdits,
    Plan,
    BypassPermissions,
    DontAsk,
}

impl PermissionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::AcceptEdits => "acceptEdits",
            Self::Plan => "plan",
            Self::BypassPermissions => "bypassPermissions",
            Self::DontAsk => "dontAsk",
        }
    }
}

/// `--effort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    Low,
    Medium,
    High,
    #[serde(rename = "xhigh")]
    XHigh,
    Max,
}

impl Effort {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::XHigh => "xhigh",
            Self::Max => "max",
        }
    }
}

/// Everything the driver can put on the CLI's command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CliOptions {
    pub model: Option<String>,
    pub fallback_model: Option<String>,
    pub max_turns: Option<u32>,
    pub max_budget_usd: Option<f64>,
    pub permission_mode: Option<PermissionMode>,
    pub allowed_tools: Vec<String>,
    pub disallowed_tools: Vec<String>,
    /// The built-in tool set: `Some(vec![])` disables every tool, `None` keeps the default.
    pub tools: Option<Vec<String>>,
    pub system_prompt: Option<String>,
    pub append_system_prompt: Option<String>,
    /// `--agents`: custom subagents, `{name: {description, prompt, tools?, model?}}`.
    pub agents: Option<serde_json::Value>,
    pub json_schema: Option<serde_json::Value>,
    /// A `{"mcpServers": {…}}` object.
    pub mcp_config: Option<serde_json::Value>,
    pub strict_mcp_config: bool,
    pub add_dirs: Vec<PathBuf>,
    pub resume: Option<String>,
    pub continue_session: bool,
    pub fork_session: bool,
    pub session_id: Option<String>,
    pub include_partial_messages: bool,
    /// Which settings files are read (`user`, `project`, `local`); `Some(vec![])` reads none.
    pub setting_sources: Option<Vec<String>>,
    pub no_session_persistence: bool,
    pub effort: Option<Effort>,
    /// Ask the host (`can_use_tool` control requests) instead of denying silently.
    pub permission_prompt_tool_stdio: bool,
    /// `--settings`: a settings object layered over the user's (the run's `sandbox`).
    pub settings: Option<serde_json::Value>,
}

impl CliOptions {
    /// The argv after the program name. Always starts with the stream-json flags.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> =
            ["-p", "--output-format", "stream-json", "--input-format", "stream-json", "--verbose"]
                .into_iter()
                .map(OsString::from)
                .collect();
        let mut flag = |name: &str, value: Option<OsString>| {
            args.push(name.into());
            if let Some(value) = value {
                args.push(value);
            }
        };
        if let Some(model) = &self.model {
            flag("--model", Some(model.into()));
        }
        if let Some(model) = &self.fallback_model {
            flag("--fallback-model", Some(model.into()));
        }
        if let Some(turns) = self.max_turns {
            flag("--max-turns", Some(turns.to_string().into()));
        }
        if let Some(budget) = self.max_budget_usd {
            // f64's Display never uses exponent notation, which the CLI would not parse.
            flag("--max-budget-usd", Some(budget.to_string().into()));
        }
        if let Some(mode) = self.permission_mode {
            flag("--permission-mode", Some(mode.as_str().into()));
        }
        if !self.allowed_tools.is_empty() {
            flag("--allowedTools", Some(self.allowed_tools.join(",").into()));
        }
        if !self.disallowed_tools.is_empty() {
            flag("--disallowedTools", Some(self.disallowed_tools.join(",").into()));
        }
        if let Some(tools) = &self.tools {
            flag("--tools", Some(tools.join(",").into()));
        }
        if let Some(prompt) = &self.system_prompt {
            flag("--system-prompt", Some(prompt.into()));
        }
        if let Some(prompt) = &self.append_system_prompt {
            flag("--append-system-prompt", Some(prompt.into()));
        }
        if let Some(agents) = &self.agents {
            flag("--agents", Some(agents.to_string().into()));
        }
        if let Some(schema) = &self.json_schema {
            flag("--json-schema", Some(schema.to_string().into()));
        }
        if let Some(config) = &self.mcp_config {
            flag("--mcp-config", Some(config.to_string().into()));
        }
        if self.strict_mcp_config {
            flag("--strict-mcp-config", None);
        }
        for dir in &self.add_dirs {
            flag("--add-dir", Some(dir.into()));
        }
        if let Some(session) = &self.resume {
            flag("--resume", Some(session.into()));
        }
        if self.continue_session {
            flag("--continue", None);
        }
        if self.fork_session {
            flag("--fork-session", None);
        }
        if let Some(id) = &self.session_id {
            flag("--session-id", Some(id.into()));
        }
        if self.include_partial_messages {
            flag("--include-partial-messages", None);
        }
        if let Some(sources) = &self.setting_sources {
            flag("--setting-sources", Some(sources.join(",").into()));
        }
        if self.no_session_persistence {
            flag("--no-session-persistence", None);
        }
        if let Some(effort) = self.effort {
            flag("--effort", Some(effort.as_str().into()));
        }
        if self.permission_prompt_tool_stdio {
            flag("--permission-prompt-tool", Some("stdio".into()));
        }
        if let Some(settings) = &self.settings {
            flag("--settings", Some(settings.to_string().into()));
        }
        args
    }

    /// Reject values the CLI would refuse (or misread) before anything is spawned.
    pub fn validate(&self) -> Result<(), ClaudeError> {
        let invalid = |message: String| Err(ClaudeError::InvalidOptions { message });
        for (name, value) in [
            ("model", &self.model),
            ("fallbackModel", &self.fallback_model),
            ("resume", &self.resume),
            ("sessionId", &self.session_id),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return invalid(format!("`{name}` is empty"));
            }
        }
        if self.max_turns == Some(0) {
            return invalid("`maxTurns` must be at least 1".to_owned());
        }
        if let Some(budget) = self.max_budget_usd
            && !(budget.is_finite() && budget > 0.0)
        {
            return invalid(format!("`maxBudgetUsd` must be a positive number, got {budget}"));
        }
        if let Some(id) = &self.session_id
            && uuid::Uuid::parse_str(id).is_err()
        {
            return invalid(format!("`sessionId` must be a UUID, got {id:?}"));
        }
        if self.continue_session && self.resume.is_some() {
            return invalid("`continue` and `resume` cannot be combined".to_owned());
        }
        if self.fork_session && !self.continue_session && self.resume.is_none() {
            return invalid("`forkSession` needs `resume` or `continue`".to_owned());
        }
        let tool_lists = [&self.allowed_tools, &self.disallowed_tools];
        if let Some(tool) = tool_lists.into_iter().flatten().find(|t| t.trim().is_empty()) {
            return invalid(format!("a tool name is empty: {tool:?}"));
        }
        if let Some(config) = &self.mcp_config
            && !config.get("mcpServers").is_some_and(serde_json::Value::is_object)
        {
            return invalid("`mcpConfig` must be an object with an `mcpServers` object".to_owned());
        }
        if let Some(schema) = &self.json_schema
            && !schema.is_object()
        {
            return invalid("`jsonSchema` must be a JSON object".to_owned());
        }
        if self.settings.as_ref().is_some_and(|settings| !settings.is_object()) {
            return invalid("`settings` must be a JSON object".to_owned());
        }
        // argv cannot carry NUL bytes; the spawn would fail with a vaguer message.
        if self.to_args().iter().any(|arg| arg.as_encoded_bytes().contains(&0)) {
            return invalid("an option contains a NUL character".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    const BASE: [&str; 6] =
        ["-p", "--output-format", "stream-json", "--input-format", "stream-json", "--verbose"];

    /// The args after the always-present stream-json prefix.
    fn extra(options: CliOptions) -> Vec<String> {
        let args = options.to_args();
        assert_eq!(args[..BASE.len()], BASE.map(OsString::from));
        args[BASE.len()..].iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn defaults_are_only_the_stream_json_flags() {
        assert_eq!(extra(CliOptions::default()), Vec::<String>::new());
    }

    #[test]
    fn model() {
        assert_eq!(
            extra(CliOptions { model: Some("sonnet".into()), ..Default::default() }),
            ["--model", "sonnet"]
        );
    }

    #[test]
    fn fallback_model() {
        assert_eq!(
            extra(CliOptions { fallback_model: Some("haiku".into()), ..Default::default() }),
            ["--fallback-model", "haiku"]
        );
    }

    #[test]
    fn max_turns() {
        assert_eq!(
            extra(CliOptions { max_turns: Some(3), ..Default::default() }),
            ["--max-turns", "3"]
        );
    }

    #[test]
    fn max_budget_usd_never_uses_exponents() {
        assert_eq!(
            extra(CliOptions { max_budget_usd: Some(0.0000001), ..Default::default() }),
            ["--max-budget-usd", "0.0000001"]
        );
    }

    #[test]
    fn permission_mode() {
        let modes = [
            (PermissionMode::Default, "default"),
            (PermissionMode::AcceptEdits, "acceptEdits"),
            (PermissionMode::Plan, "plan"),
            (PermissionMode::BypassPermissions, "bypassPermissions"),
            (PermissionMode::DontAsk, "dontAsk"),
        ];
        for (mode, text) in modes {
            assert_eq!(
                extra(CliOptions { permission_mode: Some(mode), ..Default::default() }),
                ["--permission-mode", text]
            );
            assert_eq!(serde_json::to_value(mode).unwrap(), json!(text));
        }
    }

    #[test]
    fn allowed_tools() {
        assert_eq!(
            extra(CliOptions {
                allowed_tools: vec!["Read".into(), "Bash(git *)".into()],
                ..Default::default()
            }),
            ["--allowedTools", "Read,Bash(git *)"]
        );
    }

    #[test]
    fn disallowed_tools() {
        assert_eq!(
            extra(CliOptions { disallowed_tools: vec!["Bash".into()], ..Default::default() }),
            ["--disallowedTools", "Bash"]
        );
    }

    #[test]
    fn tools_empty_disables_all() {
        assert_eq!(
            extra(CliOptions { tools: Some(vec![]), ..Default::default() }),
            ["--tools", ""]
        );
        assert_eq!(
            extra(CliOptions {
                tools: Some(vec!["Read".into(), "Edit".into()]),
                ..Default::default()
            }),
            ["--tools", "Read,Edit"]
        );
    }

    #[test]
    fn system_prompt_is_one_argument() {
        assert_eq!(
            extra(CliOptions {
                system_prompt: Some("be brief; rm -rf / \"quoted\"".into()),
                ..Default::default()
            }),
            ["--system-prompt", "be brief; rm -rf / \"quoted\""]
        );
    }

    #[test]
    fn append_system_prompt() {
        assert_eq!(
            extra(CliOptions { append_system_prompt: Some("more".into()), ..Default::default() }),
            ["--append-system-prompt", "more"]
        );
    }

    #[test]
    fn agents_are_one_json_argument() {
        let agents =
            serde_json::json!({"tester": {"description": "Writes tests", "prompt": "Test."}});
        assert_eq!(
            extra(CliOptions { agents: Some(agents.clone()), ..Default::default() }),
            ["--agents".to_owned(), agents.to_string()]
        );
    }

    #[test]
    fn json_schema() {
        assert_eq!(
            extra(CliOptions {
                json_schema: Some(json!({"type": "object"})),
                ..Default::default()
            }),
            ["--json-schema", r#"{"type":"object"}"#]
        );
    }

    #[test]
    fn mcp_config() {
        let config = json!({"mcpServers": {"x": {"command": "x"}}});
        assert_eq!(
            extra(CliOptions { mcp_config: Some(config.clone()), ..Default::default() }),
            ["--mcp-config".to_owned(), config.to_string()]
        );
    }

    #[test]
    fn strict_mcp_config() {
        assert_eq!(
            extra(CliOptions { strict_mcp_config: true, ..Default::default() }),
            ["--strict-mcp-config"]
        );
    }

    #[test]
    fn add_dirs_repeat_the_flag() {
        assert_eq!(
            extra(CliOptions { add_dirs: vec!["/a".into(), "/b c".into()], ..Default::default() }),
            ["--add-dir", "/a", "--add-dir", "/b c"]
        );
    }

    #[test]
    fn resume() {
        assert_eq!(
            extra(CliOptions { resume: Some("abc".into()), ..Default::default() }),
            ["--resume", "abc"]
        );
    }

    #[test]
    fn continue_session() {
        assert_eq!(
            extra(CliOptions { continue_session: true, ..Default::default() }),
            ["--continue"]
        );
    }

    #[test]
    fn fork_session() {
        assert_eq!(
            extra(CliOptions {
                resume: Some("abc".into()),
                fork_session: true,
                ..Default::default()
            }),
            ["--resume", "abc", "--fork-session"]
        );
    }

    #[test]
    fn session_id() {
        let id = "8a4a1c1e-1111-4222-8333-944455556666";
        assert_eq!(
            extra(CliOptions { session_id: Some(id.into()), ..Default::default() }),
            ["--session-id", id]
        );
    }

    #[test]
    fn include_partial_messages() {
        assert_eq!(
            extra(CliOptions { include_partial_messages: true, ..Default::default() }),
            ["--include-partial-messages"]
        );
    }

    #[test]
    fn setting_sources() {
        assert_eq!(
            extra(CliOptions {
                setting_sources: Some(vec!["user".into(), "project".into()]),
                ..Default::default()
            }),
            ["--setting-sources", "user,project"]
        );
        assert_eq!(
            extra(CliOptions { setting_sources: Some(vec![]), ..Default::default() }),
            ["--setting-sources", ""]
        );
    }

    #[test]
    fn no_session_persistence() {
        assert_eq!(
            extra(CliOptions { no_session_persistence: true, ..Default::default() }),
            ["--no-session-persistence"]
        );
    }

    #[test]
    fn effort() {
        for (effort, text) in [
            (Effort::Low, "low"),
            (Effort::Medium, "medium"),
            (Effort::High, "high"),
            (Effort::XHigh, "xhigh"),
            (Effort::Max, "max"),
        ] {
            assert_eq!(
                extra(CliOptions { effort: Some(effort), ..Default::default() }),
                ["--effort", text]
            );
            assert_eq!(serde_json::to_value(effort).unwrap(), json!(text));
        }
    }

    #[test]
    fn permission_prompt_tool_stdio() {
        assert_eq!(
            extra(CliOptions { permission_prompt_tool_stdio: true, ..Default::default() }),
            ["--permission-prompt-tool", "stdio"]
        );
    }

    #[test]
    fn settings_are_one_json_argument() {
        let settings = json!({"sandbox": {"enabled": true}});
        assert_eq!(
            extra(CliOptions { settings: Some(settings), ..Default::default() }),
            ["--settings", r#"{"sandbox":{"enabled":true}}"#]
        );
    }

    #[test]
    fn validate_accepts_sane_options() {
        let options = CliOptions {
            model: Some("sonnet".into()),
            max_turns: Some(5),
            max_budget_usd: Some(0.5),
            session_id: Some("8a4a1c1e-1111-4222-8333-944455556666".into()),
            mcp_config: Some(json!({"mcpServers": {}})),
            json_schema: Some(json!({"type": "object"})),
            ..Default::default()
        };
        assert_eq!(options.validate(), Ok(()));
    }

    #[test]
    fn validate_rejects_bad_values_with_clear_messages() {
        let cases: [(CliOptions, &str); 11] = [
            (CliOptions { model: Some(" ".into()), ..Default::default() }, "`model` is empty"),
            (CliOptions { max_turns: Some(0), ..Default::default() }, "maxTurns"),
            (CliOptions { max_budget_usd: Some(f64::NAN), ..Default::default() }, "maxBudgetUsd"),
            (CliOptions { max_budget_usd: Some(-1.0), ..Default::default() }, "maxBudgetUsd"),
            (CliOptions { session_id: Some("not-a-uuid".into()), ..Default::default() }, "UUID"),
            (
                CliOptions {
                    continue_session: true,
                    resume: Some("x".into()),
                    ..Default::default()
                },
                "cannot be combined",
            ),
            (CliOptions { fork_session: true, ..Default::default() }, "forkSession"),
            (
                CliOptions { allowed_tools: vec!["".into()], ..Default::default() },
                "tool name is empty",
            ),
            (CliOptions { mcp_config: Some(json!([])), ..Default::default() }, "mcpServers"),
            (CliOptions { settings: Some(json!("x")), ..Default::default() }, "`settings`"),
            (CliOptions { append_system_prompt: Some("a\0b".into()), ..Default::default() }, "NUL"),
        ];
        for (options, needle) in cases {
            let err = options.validate().unwrap_err();
            assert_eq!(err.kind(), "invalid_options");
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
    }
}
