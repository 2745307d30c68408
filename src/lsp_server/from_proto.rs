//! The protocol's parameters in the domain's terms: the one place the LSP face turns what a
//! client sent ([`crate::protocol::lsp_ext`]) into the model's types.

use crate::model::prompt::{
    Action, ActionOptions, AnalyzeOptions, Depth, GenerateOptions, ReviewOptions, ReviewScope,
    Severity,
};
use crate::protocol::lsp_ext;

pub fn action(action: lsp_ext::Action) -> Action {
    match action {
        lsp_ext::Action::Generate => Action::Generate,
        lsp_ext::Action::Analyze => Action::Analyze,
        lsp_ext::Action::Refactor => Action::Refactor,
        lsp_ext::Action::Review => Action::Review,
    }
}

/// The flat `depth` / `includeTests` / `minSeverity` / `scope` / `fix` / `directory` / `model`
/// fields of an action's parameters.
pub fn action_options(options: &lsp_ext::ActionOptions) -> ActionOptions {
    let lsp_ext::ActionOptions { analyze, review, generate, model } = options;
    ActionOptions {
        analyze: AnalyzeOptions {
            depth: depth(analyze.depth),
            include_tests: analyze.include_tests,
        },
        review: ReviewOptions {
            min_severity: severity(review.min_severity),
            scope: review.scope.map(review_scope),
            fix: review.fix,
        },
        generate: GenerateOptions { directory: generate.directory.clone() },
        model: model.clone(),
    }
}

pub fn review_scope(scope: lsp_ext::ReviewScope) -> ReviewScope {
    match scope {
        lsp_ext::ReviewScope::Selection => ReviewScope::Selection,
        lsp_ext::ReviewScope::File => ReviewScope::File,
        lsp_ext::ReviewScope::Changes => ReviewScope::Changes,
        lsp_ext::ReviewScope::Folder => ReviewScope::Folder,
        lsp_ext::ReviewScope::Workspace => ReviewScope::Workspace,
    }
}

fn depth(depth: lsp_ext::Depth) -> Depth {
    match depth {
        lsp_ext::Depth::Quick => Depth::Quick,
        lsp_ext::Depth::Normal => Depth::Normal,
        lsp_ext::Depth::Deep => Depth::Deep,
    }
}

fn severity(severity: lsp_ext::Severity) -> Severity {
    match severity {
        lsp_ext::Severity::Error => Severity::Error,
        lsp_ext::Severity::Warning => Severity::Warning,
        lsp_ext::Severity::Info => Severity::Info,
        lsp_ext::Severity::Hint => Severity::Hint,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The wire options as a client sends them, flat in the action's parameters.
    fn read(params: serde_json::Value) -> Result<ActionOptions, serde_json::Error> {
        serde_json::from_value::<lsp_ext::ActionOptions>(params).map(|wire| action_options(&wire))
    }

    #[test]
    fn options_read_the_flat_action_params() {
        let options = read(json!({
            "textDocument": {"uri": "file:///x"}, "depth": "deep", "includeTests": true,
            "minSeverity": "error", "scope": "changes", "fix": true, "directory": "gen",
            "model": "claude-haiku-4-5",
        }))
        .unwrap();
        assert_eq!(
            options,
            ActionOptions {
                analyze: AnalyzeOptions { depth: Depth::Deep, include_tests: true },
                review: ReviewOptions {
                    min_severity: Severity::Error,
                    scope: Some(ReviewScope::Changes),
                    fix: true
                },
                generate: GenerateOptions { directory: Some("gen".into()) },
                model: Some("claude-haiku-4-5".into()),
            }
        );
        let defaults = read(json!({})).unwrap();
        assert_eq!(defaults, ActionOptions::default());
        assert_eq!(defaults.review.min_severity, Severity::Info);
        assert!(read(json!({"depth": "bottomless"})).is_err());
    }
}
