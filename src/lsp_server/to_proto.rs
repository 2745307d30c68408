//! Domain values in their wire form: the one place the LSP face turns what the engine and the
//! model produce into the protocol's types ([`crate::protocol::lsp_ext`]). What `claude-lsp run`
//! prints too (the action, findings, run metadata) comes from [`crate::report`].

use std::collections::BTreeMap;

use serde_json::json;

use crate::base::error::ServerError;
use crate::base::secrets::redacted;
use crate::engine::breaker::CircuitSnapshot;
use crate::engine::conversations::LiveProcess;
use crate::engine::metrics::{
    Bucket, HistogramSnapshot, MetricsReport, MetricsSnapshot, RetryCounts,
};
use crate::engine::pipeline::OutputKind;
use crate::engine::pool::PoolStats;
use crate::engine::scheduler::SchedulerStats;
use crate::model::audit::{AuditEntry, DecidedBy, Decision};
use crate::model::edits::{self, FileChange};
use crate::model::sessions::{Outcome, RunRecord, SessionRecord};
use crate::model::transcripts::{Role, TranscriptMessage};
use crate::model::usage::{ModelSuggestion, RunUsage, UsageCounts};
use crate::protocol::lsp::jsonrpc;
use crate::protocol::lsp_ext::{self, ChangedFile, FileAction};
pub use crate::report::{action, finding, run_metadata};

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

/// A changed file as the action's result lists it (`None` for a path no URI can name).
pub fn changed_file(change: &FileChange) -> Option<ChangedFile> {
    let (path, action) = match change {
        FileChange::Modified { path, .. } => (path, FileAction::Modified),
        FileChange::Created { path, .. } => (path, FileAction::Created),
        FileChange::Deleted { path, .. } => (path, FileAction::Deleted),
        FileChange::Renamed { to, .. } => (to, FileAction::Renamed),
    };
    Some(ChangedFile { uri: edits::path_to_uri(path).ok()?, action })
}

pub fn output_kind(kind: OutputKind) -> lsp_ext::OutputKind {
    match kind {
        OutputKind::Text => lsp_ext::OutputKind::Text,
        OutputKind::Thinking => lsp_ext::OutputKind::Thinking,
        OutputKind::ToolUse => lsp_ext::OutputKind::ToolUse,
        OutputKind::ToolResult => lsp_ext::OutputKind::ToolResult,
    }
}

/// A conversation of the session index, with its process while one is kept alive.
pub fn session_info(record: SessionRecord, live: Option<LiveProcess>) -> lsp_ext::SessionInfo {
    lsp_ext::SessionInfo { record: session_record(record), live: live.map(live_process) }
}

fn session_record(record: SessionRecord) -> lsp_ext::SessionRecord {
    lsp_ext::SessionRecord {
        id: record.id,
        action: action(record.action),
        uri: record.uri,
        range: record.range,
        instruction: record.instruction,
        started_at: record.started_at,
        ended_at: record.ended_at,
        outcome: outcome(record.outcome),
        summary: record.summary,
        usage: usage_counts(record.usage),
        workspace: record.workspace,
        mirror: record.mirror,
        parent: record.parent,
        runs: record.runs.into_iter().map(run_record).collect(),
    }
}

fn run_record(run: RunRecord) -> lsp_ext::RunRecord {
    lsp_ext::RunRecord {
        action: action(run.action),
        instruction: run.instruction,
        started_at: run.started_at,
        ended_at: run.ended_at,
        outcome: outcome(run.outcome),
        summary: run.summary,
        usage: run_usage(run.usage),
    }
}

fn outcome(outcome: Outcome) -> lsp_ext::Outcome {
    match outcome {
        Outcome::Success => lsp_ext::Outcome::Success,
        Outcome::Error => lsp_ext::Outcome::Error,
        Outcome::Cancelled => lsp_ext::Outcome::Cancelled,
    }
}

fn live_process(live: LiveProcess) -> lsp_ext::LiveProcess {
    lsp_ext::LiveProcess { pid: live.pid, idle_secs: live.idle_secs }
}

pub fn usage_counts(counts: UsageCounts) -> lsp_ext::UsageCounts {
    lsp_ext::UsageCounts {
        runs: counts.runs,
        turns: counts.turns,
        input_tokens: counts.input_tokens,
        output_tokens: counts.output_tokens,
        cache_read_tokens: counts.cache_read_tokens,
        cache_creation_tokens: counts.cache_creation_tokens,
        cost_usd: counts.cost_usd,
        duration_ms: counts.duration_ms,
    }
}

/// Counts by day or by model.
pub fn usage_by(counts: BTreeMap<String, UsageCounts>) -> BTreeMap<String, lsp_ext::UsageCounts> {
    counts.into_iter().map(|(key, counts)| (key, usage_counts(counts))).collect()
}

pub fn model_suggestion(suggestion: ModelSuggestion) -> lsp_ext::ModelSuggestion {
    let ModelSuggestion {
        action,
        model,
        cheaper_model,
        runs,
        cheaper_runs,
        avg_cost_usd,
        cheaper_avg_cost_usd,
    } = suggestion;
    lsp_ext::ModelSuggestion {
        action,
        model,
        cheaper_model,
        runs,
        cheaper_runs,
        avg_cost_usd,
        cheaper_avg_cost_usd,
    }
}

pub fn run_usage(usage: RunUsage) -> lsp_ext::RunUsage {
    lsp_ext::RunUsage {
        counts: usage_counts(usage.counts),
        model: usage.model,
        models: usage_by(usage.models),
    }
}

pub fn transcript_message(message: TranscriptMessage) -> lsp_ext::TranscriptMessage {
    let role = match message.role {
        Role::User => lsp_ext::Role::User,
        Role::Assistant => lsp_ext::Role::Assistant,
    };
    lsp_ext::TranscriptMessage {
        role,
        text: message.text,
        tools: message.tools,
        timestamp: message.timestamp,
    }
}

pub fn audit_entry(entry: AuditEntry) -> lsp_ext::AuditEntry {
    let decision = match entry.decision {
        Decision::Allow => lsp_ext::Decision::Allow,
        Decision::Deny => lsp_ext::Decision::Deny,
    };
    let by = match entry.by {
        DecidedBy::Policy => lsp_ext::DecidedBy::Policy,
        DecidedBy::Rule => lsp_ext::DecidedBy::Rule,
        DecidedBy::User => lsp_ext::DecidedBy::User,
        DecidedBy::Session => lsp_ext::DecidedBy::Session,
        DecidedBy::Timeout => lsp_ext::DecidedBy::Timeout,
        DecidedBy::NoPrompt => lsp_ext::DecidedBy::NoPrompt,
        DecidedBy::Mode => lsp_ext::DecidedBy::Mode,
    };
    lsp_ext::AuditEntry {
        time: entry.time,
        session_id: entry.session_id,
        workspace: entry.workspace,
        tool: entry.tool,
        input: entry.input,
        decision,
        by,
        rule: entry.rule,
        reason: entry.reason,
    }
}

/// `claude/metrics`: the counters, the queue, the circuit breaker and the warm pool.
pub fn metrics_report(report: MetricsReport) -> lsp_ext::MetricsReport {
    // Taken apart field by field, so a field the domain gains cannot be left off the wire.
    let MetricsReport { metrics, scheduler, circuit, pool } = report;
    let MetricsSnapshot {
        uptime_secs,
        requests,
        duration_ms,
        queue_wait_ms,
        retries,
        recoveries,
        tokens,
        cost_usd,
    } = metrics;
    let SchedulerStats { max_concurrent, running, queued } = scheduler;
    let CircuitSnapshot { state, consecutive_failures, times_opened, retry_in_secs, cause } =
        circuit;
    let PoolStats { warm, filling, hits, misses, recycled, started, discarded } = pool;
    let counts = |counts: RetryCounts| lsp_ext::RetryCounts {
        total: counts.total,
        by_reason: counts.by_reason,
    };
    lsp_ext::MetricsReport {
        metrics: lsp_ext::MetricsSnapshot {
            uptime_secs,
            requests: lsp_ext::RequestCounts {
                total: requests.total,
                by_action: requests.by_action,
            },
            duration_ms: histogram(duration_ms),
            queue_wait_ms: histogram(queue_wait_ms),
            retries: counts(retries),
            recoveries: counts(recoveries),
            tokens: lsp_ext::TokenCounts {
                input: tokens.input,
                output: tokens.output,
                cache_read: tokens.cache_read,
            },
            cost_usd,
        },
        scheduler: lsp_ext::SchedulerStats { max_concurrent, running, queued },
        circuit: lsp_ext::CircuitSnapshot {
            state: state.to_owned(),
            consecutive_failures,
            times_opened,
            retry_in_secs,
            cause,
        },
        pool: lsp_ext::PoolStats { warm, filling, hits, misses, recycled, started, discarded },
    }
}

fn histogram(histogram: HistogramSnapshot) -> lsp_ext::HistogramSnapshot {
    let bucket = |bucket: Bucket| lsp_ext::Bucket { le_ms: bucket.le_ms, count: bucket.count };
    lsp_ext::HistogramSnapshot {
        count: histogram.count,
        sum_ms: histogram.sum_ms,
        max_ms: histogram.max_ms,
        p50_ms: histogram.p50_ms,
        p90_ms: histogram.p90_ms,
        p99_ms: histogram.p99_ms,
        buckets: histogram.buckets.into_iter().map(bucket).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::error::ErrorKind;

    #[test]
    fn requests_are_counted_by_action_and_outcome_on_the_wire() {
        let metrics = crate::engine::metrics::Metrics::new();
        let second = std::time::Duration::from_secs(1);
        metrics.record_request("refactor", "success", second);
        metrics.record_request("refactor", "success", second);
        metrics.record_request("refactor", "overloaded", second);
        metrics.record_request("review", "cancelled", second);
        let report = MetricsReport {
            metrics: metrics.snapshot(),
            scheduler: crate::engine::scheduler::SchedulerStats {
                max_concurrent: 2,
                running: 0,
                queued: 0,
            },
            circuit: crate::engine::breaker::CircuitBreaker::new(Default::default()).snapshot(),
            pool: crate::engine::pool::PoolStats::default(),
        };
        let wire = serde_json::to_value(metrics_report(report)).unwrap();
        assert_eq!(
            wire["requests"],
            json!({"total": 4, "byAction": {
                "refactor": {"overloaded": 1, "success": 2},
                "review": {"cancelled": 1},
            }})
        );
        assert_eq!(wire["scheduler"], json!({"maxConcurrent": 2, "running": 0, "queued": 0}));
        assert_eq!(wire["circuit"]["state"], "closed");
        assert_eq!(wire["durationMs"]["buckets"], json!([{"leMs": 1000, "count": 4}]));
    }

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
