//! The editor side of permissions: questions as `window/showMessageRequest`, their progress
//! lines, and the `claude/audit` request.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::mpsc::WeakUnboundedSender;

use crate::error::{ErrorKind, ServerError};
use crate::lsp::{Client, MessageActionItem, MessageType};
use crate::lsp_ext::{AuditParams, AuditResult};
use crate::permissions::{Answer, UserPrompter};
use crate::pipeline::Activity;
use crate::state::ServerState;

/// Entries `claude/audit` returns when the request names no limit, and at most.
const DEFAULT_AUDIT_ENTRIES: usize = 100;
const MAX_AUDIT_ENTRIES: usize = 10_000;

/// Asks the user of this editor; says what it does in the run's progress.
struct LspPrompter {
    client: Client,
    can_show: bool,
    /// The run's activity channel. Weak: the run's own sender going away must still end the
    /// forwarding of its activities, even while the CLI process (and this prompter) lingers.
    status: WeakUnboundedSender<Activity>,
}

impl UserPrompter for LspPrompter {
    fn unavailable(&self) -> Option<String> {
        (!self.can_show).then(|| {
            "your editor cannot show permission questions (it does not declare window.showMessage support)"
                .to_owned()
        })
    }

    fn ask(&self, question: &str, choices: &[&str]) -> BoxFuture<'static, Answer> {
        let client = self.client.clone();
        let question = question.to_owned();
        let actions = choices
            .iter()
            .map(|title| MessageActionItem {
                title: (*title).to_owned(),
                properties: HashMap::new(),
            })
            .collect();
        Box::pin(async move {
            match client.show_message_request(MessageType::WARNING, question, Some(actions)).await {
                Ok(Some(item)) => Answer::Chosen(item.title),
                Ok(None) => Answer::Dismissed,
                Err(err) => Answer::Failed(err.to_string()),
            }
        })
    }

    fn status(&self, message: &str) {
        if let Some(status) = self.status.upgrade() {
            let _ = status.send(Activity::Status(message.to_owned()));
        }
    }
}

/// The prompter of one run: questions to this client, progress lines into `status`.
pub fn prompter(
    state: &ServerState,
    status: WeakUnboundedSender<Activity>,
) -> Arc<dyn UserPrompter> {
    Arc::new(LspPrompter {
        client: state.client.clone(),
        can_show: state.client_info().show_message_request,
        status,
    })
}

/// `claude/audit`: the newest permission decisions, oldest first.
pub fn audit(state: &ServerState, params: Option<AuditParams>) -> Result<AuditResult, ServerError> {
    let params = params.unwrap_or_default();
    let limit = params.limit.unwrap_or(DEFAULT_AUDIT_ENTRIES).min(MAX_AUDIT_ENTRIES);
    let Some(log) = &state.permissions.audit else {
        return Ok(AuditResult { entries: Vec::new() });
    };
    let entries = log.recent(limit, params.session_id.as_deref()).map_err(|err| {
        ServerError::new(
            ErrorKind::FILE_ACCESS,
            format!("cannot read the audit log {}: {err}", log.path().display()),
            "check that the cache directory is readable",
        )
    })?;
    Ok(AuditResult { entries })
}
