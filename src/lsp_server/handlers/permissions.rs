//! The editor side of permissions: questions as `window/showMessageRequest`, their progress
//! lines, and the `claude/audit` request.
//!
//! Editors cut long messages, so a question longer than `SHOWN_CHARS` is never asked as is:
//! it shows its beginning, says how much more there is, and offers only "Show the whole
//! command" or "Deny". The whole text then opens as a document (`window/showDocument`) or, in
//! editors without one (Helix), arrives as a `window/showMessage` naming the file that holds it;
//! only then are the allow answers offered.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::mpsc::WeakUnboundedSender;

use crate::base::error::{ErrorKind, ServerError};
use crate::engine::permissions::{Answer, DENY, UserPrompter};
use crate::engine::pipeline::Activity;
use crate::lsp_server::handlers::show::open_in_editor;
use crate::lsp_server::state::ServerState;
use crate::lsp_server::to_proto;
use crate::model::answers::write_answer;
use crate::model::edits;
use crate::protocol::lsp::{Client, MessageActionItem, MessageType};
use crate::protocol::lsp_ext::{AuditParams, AuditResult};

/// Entries `claude/audit` returns when the request names no limit, and at most.
const DEFAULT_AUDIT_ENTRIES: usize = 100;
const MAX_AUDIT_ENTRIES: usize = 10_000;

/// The longest question asked in one message.
const SHOWN_CHARS: usize = 300;
/// The answer that shows a long question whole before it can be allowed.
const SHOW_WHOLE: &str = "Show the whole command";

/// Asks the user of this editor; says what it does in the run's progress.
struct LspPrompter {
    client: Client,
    can_show: bool,
    /// The client opens documents (`window/showDocument`).
    can_open: bool,
    /// Where a long question is written for the user to read.
    cache_dir: PathBuf,
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
        let (can_open, cache_dir) = (self.can_open, self.cache_dir.clone());
        let question = question.to_owned();
        let choices: Vec<String> = choices.iter().map(|choice| (*choice).to_owned()).collect();
        Box::pin(async move {
            let Some((cut, more)) = cut_at(&question, SHOWN_CHARS) else {
                return request(&client, question, &choices).await;
            };
            let head = &question[..cut];
            let first = format!(
                "{head}… ({more} more characters not shown: choose “{SHOW_WHOLE}” to read the \
                 whole request before allowing it)"
            );
            match request(&client, first, &[SHOW_WHOLE.to_owned(), DENY.to_owned()]).await {
                Answer::Chosen(choice) if choice == SHOW_WHOLE => {}
                answer => return answer,
            }
            let shown = show_whole(&client, can_open, &cache_dir, &question).await;
            let again = format!("{head}… ({more} more characters, {shown})");
            request(&client, again, &choices).await
        })
    }

    fn status(&self, message: &str) {
        if let Some(status) = self.status.upgrade() {
            let _ = status.send(Activity::Status(message.to_owned()));
        }
    }
}

/// Where `text` is cut to keep `max` characters, and how many characters are cut off; `None`
/// when it is short enough.
fn cut_at(text: &str, max: usize) -> Option<(usize, usize)> {
    let (cut, _) = text.char_indices().nth(max)?;
    Some((cut, text[cut..].chars().count()))
}

/// One `window/showMessageRequest`.
async fn request(client: &Client, message: String, choices: &[String]) -> Answer {
    let actions = choices
        .iter()
        .map(|title| MessageActionItem { title: title.clone(), properties: HashMap::new() })
        .collect();
    match client.show_message_request(MessageType::WARNING, message, Some(actions)).await {
        Ok(Some(item)) => Answer::Chosen(item.title),
        Ok(None) => Answer::Dismissed,
        Err(err) => Answer::Failed(err.to_string()),
    }
}

/// Show the whole question: as a document when the editor opens one, else as a message that
/// also names the file holding it. Says where it was shown.
async fn show_whole(client: &Client, can_open: bool, cache_dir: &Path, question: &str) -> String {
    let name = format!("permission-{}.md", uuid::Uuid::new_v4());
    let written =
        write_answer(cache_dir, &name, &format!("# Permission requested\n\n{question}\n"));
    let path = match written {
        Ok(uri) if can_open && open_in_editor(client, &uri).await => {
            return "shown whole in the document just opened".to_owned();
        }
        Ok(uri) => edits::uri_to_path(&uri).ok(),
        Err(err) => {
            tracing::warn!(%err, "could not write the permission question");
            None
        }
    };
    let saved = path.map(|path| format!("; also saved in {}", path.display())).unwrap_or_default();
    let message = format!("Claude asks permission for:\n{question}{saved}");
    client.show_message(MessageType::INFO, message).await;
    format!("shown whole in the message before this one{saved}")
}

/// The prompter of one run: questions to this client, progress lines into `status`.
pub fn prompter(
    state: &ServerState,
    status: WeakUnboundedSender<Activity>,
) -> Arc<dyn UserPrompter> {
    Arc::new(LspPrompter {
        client: state.client.clone(),
        can_show: state.client_info().show_message_request,
        can_open: state.client_info().show_document,
        cache_dir: state.options.cache_dir.clone(),
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
    Ok(AuditResult { entries: entries.into_iter().map(to_proto::audit_entry).collect() })
}
