//! `workspace/executeCommand`: every action is reachable without custom requests (Helix).

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::base::error::ServerError;
use crate::lsp_server::handlers::{actions, review, sessions};
use crate::lsp_server::state::ServerState;
use crate::lsp_server::to_proto;
use crate::model::prompt::Action;
use crate::protocol::lsp::ExecuteCommandParams;
use crate::protocol::lsp_ext::{ActionParams, CancelParams, RunInfo, RunsResult, commands};

pub async fn execute(
    state: &Arc<ServerState>,
    params: ExecuteCommandParams,
) -> Result<Option<Value>, ServerError> {
    let arguments = params.arguments;
    let action = match params.command.as_str() {
        commands::GENERATE => Some(Action::Generate),
        commands::ANALYZE => Some(Action::Analyze),
        commands::REFACTOR => Some(Action::Refactor),
        commands::REVIEW => Some(Action::Review),
        _ => None,
    };
    if let Some(action) = action {
        let params: ActionParams = argument(&params.command, arguments)?;
        let started = actions::command(state.clone(), action, params);
        return Ok(Some(json!(started)));
    }
    match params.command.as_str() {
        commands::CANCEL => {
            let params: CancelParams = optional_argument(&params.command, arguments)?;
            let cancelled = state.cancel_runs(params.run_id.as_deref());
            Ok(Some(json!({ "cancelled": cancelled })))
        }
        commands::APPLY_FINDING => {
            let reference = argument(&params.command, arguments)?;
            Ok(Some(crate::lsp_server::handlers::findings::apply_finding(state, reference).await?))
        }
        commands::DISMISS_FINDING => {
            let reference = argument(&params.command, arguments)?;
            Ok(Some(
                crate::lsp_server::handlers::findings::dismiss_finding(state, reference).await?,
            ))
        }
        commands::APPLY_CHANGE => {
            let reference = argument(&params.command, arguments)?;
            Ok(Some(review::apply_change(state, reference).await?))
        }
        commands::DISCARD_CHANGE => {
            let reference = argument(&params.command, arguments)?;
            Ok(Some(review::discard_change(state, reference).await?))
        }
        commands::CONTINUE => {
            let params = argument(&params.command, arguments)?;
            let (action, params) = sessions::continuation(state, params).await?;
            Ok(Some(json!(actions::command(state.clone(), action, params))))
        }
        commands::SHOW_USAGE => {
            Ok(Some(json!(crate::lsp_server::handlers::sessions::show_usage(state).await?)))
        }
        other => Err(ServerError::invalid_params(format!("unknown command {other}"))),
    }
}

/// `claude/runs`: the runs in flight.
pub fn runs(state: &ServerState) -> RunsResult {
    let runs: Vec<RunInfo> = state
        .runs()
        .into_iter()
        .map(|(run_id, entry)| RunInfo {
            run_id,
            action: to_proto::action(entry.action),
            uri: entry.uri,
            started_at: entry.started_at,
        })
        .collect();
    RunsResult { runs }
}

fn argument<T: DeserializeOwned>(command: &str, arguments: Vec<Value>) -> Result<T, ServerError> {
    let first = arguments.into_iter().next().ok_or_else(|| {
        ServerError::invalid_params(format!("{command} takes one argument (an object)"))
    })?;
    serde_json::from_value(first)
        .map_err(|err| ServerError::invalid_params(format!("{command}: bad argument: {err}")))
}

fn optional_argument<T: DeserializeOwned + Default>(
    command: &str,
    arguments: Vec<Value>,
) -> Result<T, ServerError> {
    if arguments.is_empty() { Ok(T::default()) } else { argument(command, arguments) }
}
