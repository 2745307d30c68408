//! What both faces put out about a run, in its wire form ([`crate::protocol::lsp_ext`]): the
//! action, the findings and what the run took. The LSP server sends these (through
//! `lsp_server::to_proto`) and `claude-lsp run --json` prints them, so the two cannot drift.
//! A layer of its own just below the faces: neither face imports the other.

use crate::claude::session::RunResult;
use crate::model::findings::{Category, Finding, FindingFix, RelatedLocation};
use crate::model::prompt::{Action, Severity};
use crate::protocol::lsp_ext;

pub fn action(action: Action) -> lsp_ext::Action {
    match action {
        Action::Generate => lsp_ext::Action::Generate,
        Action::Analyze => lsp_ext::Action::Analyze,
        Action::Refactor => lsp_ext::Action::Refactor,
        Action::Review => lsp_ext::Action::Review,
    }
}

/// What the run took: its own turns, tokens and cost (`cost_usd` is the run's own share: see
/// `ActionOutcome::result`); `cached`: answered from the result cache, with no API call.
pub fn run_metadata(result: &RunResult, cached: bool) -> lsp_ext::RunMetadata {
    lsp_ext::RunMetadata {
        duration_ms: result.duration_ms,
        num_turns: result.num_turns,
        input_tokens: result.usage.input_tokens,
        output_tokens: result.usage.output_tokens,
        cache_read_tokens: result.usage.cache_read_tokens,
        cost_usd: result.cost_usd,
        model: result.model.clone(),
        cached,
    }
}

pub fn finding(finding: &Finding) -> lsp_ext::Finding {
    lsp_ext::Finding {
        id: finding.id.clone(),
        uri: finding.uri.clone(),
        range: finding.range,
        severity: severity(finding.severity),
        category: category(finding.category),
        title: finding.title.clone(),
        explanation: finding.explanation.clone(),
        suggestion: finding.suggestion.clone(),
        fix: finding.fix.as_ref().map(fix),
        related: finding.related.iter().map(related).collect(),
    }
}

fn severity(severity: Severity) -> lsp_ext::Severity {
    match severity {
        Severity::Error => lsp_ext::Severity::Error,
        Severity::Warning => lsp_ext::Severity::Warning,
        Severity::Info => lsp_ext::Severity::Info,
        Severity::Hint => lsp_ext::Severity::Hint,
    }
}

fn category(category: Category) -> lsp_ext::Category {
    match category {
        Category::Bug => lsp_ext::Category::Bug,
        Category::Security => lsp_ext::Category::Security,
        Category::Performance => lsp_ext::Category::Performance,
        Category::Correctness => lsp_ext::Category::Correctness,
        Category::Maintainability => lsp_ext::Category::Maintainability,
        Category::Style => lsp_ext::Category::Style,
        Category::Test => lsp_ext::Category::Test,
    }
}

fn fix(fix: &FindingFix) -> lsp_ext::FindingFix {
    lsp_ext::FindingFix { old_text: fix.old_text.clone(), new_text: fix.new_text.clone() }
}

fn related(related: &RelatedLocation) -> lsp_ext::RelatedLocation {
    lsp_ext::RelatedLocation {
        uri: related.uri.clone(),
        range: related.range,
        message: related.message.clone(),
    }
}
