//! The control protocol (cli-protocol.md §5): what the host answers when the CLI asks for a
//! permission, runs a hook or talks to an SDK MCP server, and the `initialize` request.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::errors::ClaudeError;
use super::protocol::CanUseToolRequest;

/// The host's answer to a `can_use_tool` request.
#[derive(Debug, Clone, PartialEq)]
pub enum PermissionDecision {
    /// Run the tool, optionally with rewritten input and with permission rules to add.
    Allow { updated_input: Option<Value>, updated_permissions: Option<Vec<Value>> },
    /// Refuse; the model sees `message`. `interrupt` also ends the turn.
    Deny { message: String, interrupt: bool },
}

impl PermissionDecision {
    pub fn allow() -> Self {
        Self::Allow { updated_input: None, updated_permissions: None }
    }

    pub fn deny(message: impl Into<String>) -> Self {
        Self::Deny { message: message.into(), interrupt: false }
    }

    /// The `response` body of the control_response. An allow always carries `updatedInput`
    /// (the original input when not rewritten), as the official SDKs send it.
    pub fn to_response(&self, original_input: &Value) -> Value {
        match self {
            Self::Allow { updated_input, updated_permissions } => {
                let mut body = Map::new();
                body.insert("behavior".into(), "allow".into());
                body.insert(
                    "updatedInput".into(),
                    updated_input.clone().unwrap_or_else(|| original_input.clone()),
                );
                if let Some(permissions) = updated_permissions {
                    body.insert("updatedPermissions".into(), Value::Array(permissions.clone()));
                }
                Value::Object(body)
            }
            Self::Deny { message, interrupt } => {
                json!({"behavior": "deny", "message": message, "interrupt": interrupt})
            }
        }
    }
}

/// Answers the requests the CLI sends to the host. Each request runs in its own task, so a slow
/// answer (a user deciding on a permission) never blocks the others. A handler that panics gets
/// an `error` response sent for it.
pub trait ControlHandler: Send + Sync + 'static {
    fn can_use_tool(&self, request: CanUseToolRequest) -> BoxFuture<'static, PermissionDecision>;

    /// A registered hook fired; the answer is its hook output (`{}` = no opinion).
    fn hook_callback(&self, callback_id: String, input: Value) -> BoxFuture<'static, Value> {
        let _ = (callback_id, input);
        Box::pin(async { json!({}) })
    }

    /// A JSON-RPC message for the SDK MCP server `server_name`. Return the JSON-RPC reply for a
    /// request, `None` for a notification (the driver then acks it, which the CLI requires).
    fn mcp_message(
        &self,
        server_name: String,
        message: Value,
    ) -> BoxFuture<'static, Option<Value>> {
        let _ = server_name;
        let reply = mcp_method_not_found(&message);
        Box::pin(async move { reply })
    }
}

/// The JSON-RPC "method not found" reply for a request; `None` for a notification (no `id`).
pub fn mcp_method_not_found(message: &Value) -> Option<Value> {
    let id = message.get("id").filter(|id| !id.is_null())?;
    let method = message.get("method").and_then(Value::as_str).unwrap_or("?");
    Some(json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": -32601, "message": format!("Method not found: {method}")},
    }))
}

/// Denies every tool that needs permission (read-only tools need none). For read-only runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct DenyAll;

impl ControlHandler for DenyAll {
    fn can_use_tool(&self, request: CanUseToolRequest) -> BoxFuture<'static, PermissionDecision> {
        let message = format!("{} is not allowed in this mode", request.tool_name);
        Box::pin(async move { PermissionDecision::deny(message) })
    }
}

/// Hook matchers for one hook event in `initialize`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookMatcher {
    /// Tool-name pattern (`Bash`, `Edit|Write`); `None` matches everything.
    pub matcher: Option<String>,
    /// Ids the CLI echoes back in `hook_callback`.
    pub callback_ids: Vec<String>,
    pub timeout_secs: Option<u64>,
}

/// The `initialize` control request: what the CLI cannot take on its command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InitializeRequest {
    /// Hook event name (`PreToolUse`, `PostToolUse`, `UserPromptSubmit`, `Stop`, …) → matchers.
    pub hooks: BTreeMap<String, Vec<HookMatcher>>,
    /// Names of SDK MCP servers the host serves through [`ControlHandler::mcp_message`].
    pub sdk_mcp_servers: Vec<String>,
    pub json_schema: Option<Value>,
    pub system_prompt: Option<String>,
    pub append_system_prompt: Option<String>,
}

/// The CLI drops tools of an SDK MCP server with this name (cli-protocol.md §5.4).
const RESERVED_MCP_SERVER: &str = "ide";

impl InitializeRequest {
    pub fn validate(&self) -> Result<(), ClaudeError> {
        for name in &self.sdk_mcp_servers {
            if name.trim().is_empty() {
                return Err(invalid("an SDK MCP server name is empty"));
            }
            if name == RESERVED_MCP_SERVER {
                return Err(invalid(
                    "the SDK MCP server name `ide` is reserved by Claude Code, which hides its tools; pick another name",
                ));
            }
        }
        for (event, matchers) in &self.hooks {
            if event.trim().is_empty() {
                return Err(invalid("a hook event name is empty"));
            }
            if matchers.iter().any(|m| m.callback_ids.is_empty()) {
                return Err(invalid(&format!("a {event} hook matcher has no callback ids")));
            }
        }
        Ok(())
    }

    /// The `request` object of the control_request.
    pub fn to_request(&self) -> Value {
        let mut request = Map::new();
        request.insert("subtype".into(), "initialize".into());
        let hooks = if self.hooks.is_empty() {
            Value::Null
        } else {
            let events = self.hooks.iter().map(|(event, matchers)| {
                let matchers = matchers.iter().map(|m| {
                    let mut entry =
                        json!({"matcher": m.matcher, "hookCallbackIds": m.callback_ids});
                    if let (Some(timeout), Some(map)) = (m.timeout_secs, entry.as_object_mut()) {
                        map.insert("timeout".into(), timeout.into());
                    }
                    entry
                });
                (event.clone(), Value::Array(matchers.collect()))
            });
            Value::Object(events.collect())
        };
        request.insert("hooks".into(), hooks);
        if !self.sdk_mcp_servers.is_empty() {
            request.insert("sdkMcpServers".into(), json!(self.sdk_mcp_servers));
        }
        if let Some(schema) = &self.json_schema {
            request.insert("jsonSchema".into(), schema.clone());
        }
        if let Some(prompt) = &self.system_prompt {
            request.insert("systemPrompt".into(), prompt.clone().into());
        }
        if let Some(prompt) = &self.append_system_prompt {
            request.insert("appendSystemPrompt".into(), prompt.clone().into());
        }
        Value::Object(request)
    }
}

fn invalid(message: &str) -> ClaudeError {
    ClaudeError::InvalidOptions { message: message.to_owned() }
}

/// A control handler that can be re-bound while its process runs: a warm or live process is
/// spawned before anyone knows which run it will serve, and permission questions must reach the
/// run that is asking, not the one that spawned the process.
pub struct RebindableHandler(parking_lot::Mutex<Arc<dyn ControlHandler>>);

impl RebindableHandler {
    pub fn new(handler: Arc<dyn ControlHandler>) -> Arc<Self> {
        Arc::new(Self(parking_lot::Mutex::new(handler)))
    }

    pub fn bind(&self, handler: Arc<dyn ControlHandler>) {
        *self.0.lock() = handler;
    }

    fn current(&self) -> Arc<dyn ControlHandler> {
        self.0.lock().clone()
    }
}

impl ControlHandler for RebindableHandler {
    fn can_use_tool(&self, request: CanUseToolRequest) -> BoxFuture<'static, PermissionDecision> {
        self.current().can_use_tool(request)
    }

    fn hook_callback(&self, callback_id: String, input: Value) -> BoxFuture<'static, Value> {
        self.current().hook_callback(callback_id, input)
    }

    fn mcp_message(
        &self,
        server_name: String,
        message: Value,
    ) -> BoxFuture<'static, Option<Value>> {
        self.current().mcp_message(server_name, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn allow_echoes_the_original_input_unless_rewritten() {
        let input = json!({"command": "touch x"});
        assert_eq!(
            PermissionDecision::allow().to_response(&input),
            json!({"behavior": "allow", "updatedInput": {"command": "touch x"}})
        );
        let rewritten = PermissionDecision::Allow {
            updated_input: Some(json!({"command": "echo hi"})),
            updated_permissions: Some(vec![
                json!({"type": "setMode", "mode": "acceptEdits", "destination": "session"}),
            ]),
        };
        assert_eq!(
            rewritten.to_response(&input),
            json!({
                "behavior": "allow",
                "updatedInput": {"command": "echo hi"},
                "updatedPermissions": [{"type": "setMode", "mode": "acceptEdits", "destination": "session"}],
            })
        );
    }

    #[test]
    fn deny_carries_message_and_interrupt() {
        let deny = PermissionDecision::Deny { message: "no".into(), interrupt: true };
        assert_eq!(
            deny.to_response(&json!({})),
            json!({"behavior": "deny", "message": "no", "interrupt": true})
        );
    }

    #[test]
    fn can_use_tool_request_reads_every_field() {
        let body = json!({
            "subtype": "can_use_tool", "tool_name": "Bash", "display_name": "Bash",
            "input": {"command": "echo hi > out.txt"},
            "permission_suggestions": [{"type": "addRules"}],
            "blocked_path": "/p/out.txt", "tool_use_id": "toolu_01"
        });
        let request = CanUseToolRequest::from_request(&body).unwrap();
        assert_eq!(request.tool_name, "Bash");
        assert_eq!(request.input, json!({"command": "echo hi > out.txt"}));
        assert_eq!(request.tool_use_id.as_deref(), Some("toolu_01"));
        assert_eq!(request.permission_suggestions, vec![json!({"type": "addRules"})]);
        assert_eq!(request.blocked_path.as_deref(), Some("/p/out.txt"));
        assert_eq!(request.raw["display_name"], "Bash");
        assert!(CanUseToolRequest::from_request(&json!({"input": {}})).is_none());
    }

    #[tokio::test]
    async fn default_handlers_ack_hooks_and_reject_unknown_mcp_methods() {
        let handler = DenyAll;
        assert_eq!(handler.hook_callback("hook_0".into(), json!({})).await, json!({}));
        let reply = handler
            .mcp_message("lsp".into(), json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}))
            .await
            .unwrap();
        assert_eq!(reply["id"], 4);
        assert_eq!(reply["error"]["code"], -32601);
        let notification = handler.mcp_message(
            "lsp".into(),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        );
        assert_eq!(notification.await, None);
        let request = CanUseToolRequest::from_request(&json!({"tool_name": "Write"})).unwrap();
        assert!(matches!(
            handler.can_use_tool(request).await,
            PermissionDecision::Deny { interrupt: false, .. }
        ));
    }

    #[test]
    fn initialize_request_serialises_like_the_ts_sdk() {
        let request = InitializeRequest {
            hooks: BTreeMap::from([(
                "PreToolUse".to_owned(),
                vec![HookMatcher {
                    matcher: Some("Bash".into()),
                    callback_ids: vec!["hook_0".into()],
                    timeout_secs: Some(30),
                }],
            )]),
            sdk_mcp_servers: vec!["lsp".into()],
            json_schema: Some(json!({"type": "object"})),
            system_prompt: Some("sys".into()),
            append_system_prompt: Some("more".into()),
        };
        assert_eq!(
            request.to_request(),
            json!({
                "subtype": "initialize",
                "hooks": {"PreToolUse": [{"matcher": "Bash", "hookCallbackIds": ["hook_0"], "timeout": 30}]},
                "sdkMcpServers": ["lsp"],
                "jsonSchema": {"type": "object"},
                "systemPrompt": "sys",
                "appendSystemPrompt": "more",
            })
        );
        assert_eq!(
            InitializeRequest::default().to_request(),
            json!({"subtype": "initialize", "hooks": null})
        );
    }

    #[test]
    fn initialize_rejects_the_reserved_ide_server_and_empty_names() {
        let ide = InitializeRequest { sdk_mcp_servers: vec!["ide".into()], ..Default::default() };
        assert!(ide.validate().unwrap_err().to_string().contains("reserved"));
        let empty = InitializeRequest { sdk_mcp_servers: vec![" ".into()], ..Default::default() };
        assert!(empty.validate().is_err());
        let no_ids = InitializeRequest {
            hooks: BTreeMap::from([("Stop".to_owned(), vec![HookMatcher::default()])]),
            ..Default::default()
        };
        assert!(no_ids.validate().is_err());
        let ok = InitializeRequest { sdk_mcp_servers: vec!["lsp".into()], ..Default::default() };
        assert!(ok.validate().is_ok());
    }
}
