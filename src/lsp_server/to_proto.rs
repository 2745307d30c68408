//! Domain values in their wire form: the one place the LSP face turns what the engine and the
//! model produce into the protocol's types.

use serde_json::json;

use crate::base::error::ServerError;
use crate::base::secrets::redacted;
use crate::protocol::lsp::jsonrpc;

/// An error as JSON-RPC carries it: the stable code, and `data: {kind, retryable, hint}`.
/// Message and hint are redacted: an error can quote the CLI or the API.
pub fn error(err: &ServerError) -> jsonrpc::Error {
    jsonrpc::Error {
        code: jsonrpc::ErrorCode::from(err.kind.code),
        message: redacted(&err.message).into(),
        data: Some(json!({
            "kind": err.kind.name,
            "retryable": err.kind.retryable,
            "hint": redacted(&err.hint),
        })),
    }
}

/// A cost estimate as `claude/estimate` answers it.
pub fn estimate(
    estimate: &crate::model::usage::CostEstimate,
) -> crate::protocol::lsp_ext::EstimateResult {
    crate::protocol::lsp_ext::EstimateResult {
        input_tokens: estimate.input_tokens,
        model: estimate.model.clone(),
        priced_as: estimate.price.family.to_owned(),
        cost_usd_low: estimate.cost_usd_low,
        cost_usd_high: estimate.cost_usd_high,
        message: estimate.describe(),
    }
}

impl From<ServerError> for jsonrpc::Error {
    fn from(err: ServerError) -> Self {
        error(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::error::ErrorKind;

    #[test]
    fn wire_shape_carries_kind_retryable_and_hint() {
        let err = ServerError::new(ErrorKind::RATE_LIMITED, "slow down", "wait a minute");
        let wire = serde_json::to_value(error(&err)).unwrap();
        assert_eq!(
            wire,
            json!({"code": -32004, "message": "slow down",
                   "data": {"kind": "rate_limited", "retryable": true, "hint": "wait a minute"}})
        );
    }

    #[test]
    fn secrets_never_reach_the_wire() {
        let err = ServerError::new(
            ErrorKind::API_ERROR,
            "the API said: key sk-ant-api03-abcdef is invalid",
            "send Bearer abc.def-1 instead",
        );
        let wire = serde_json::to_string(&error(&err)).unwrap();
        assert!(!wire.contains("abcdef") && !wire.contains("abc.def"), "{wire}");
        let shown = err.user_message();
        assert!(!shown.contains("abcdef") && !shown.contains("abc.def"), "{shown}");
    }
}
