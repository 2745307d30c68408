//! The actions and their options: what a run does and how.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The four actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Generate,
    Analyze,
    Refactor,
    Review,
}

impl Action {
    /// Whether the action changes files (and so runs in the staging mirror with edit tools).
    pub fn is_edit(self) -> bool {
        matches!(self, Action::Generate | Action::Refactor)
    }

    fn name(self) -> &'static str {
        match self {
            Action::Generate => "generate",
            Action::Analyze => "analyze",
            Action::Refactor => "refactor",
            Action::Review => "review",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How thorough an analysis is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Depth {
    Quick,
    #[default]
    Normal,
    Deep,
}

/// What a review looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewScope {
    Selection,
    File,
    /// The workspace's uncommitted changes.
    Changes,
    /// Every file of a folder (`directory`, default: the target's folder): listed, not inlined.
    Folder,
    /// Every file of the workspace: listed, not inlined.
    Workspace,
}

impl ReviewScope {
    /// Whether the scope is a folder or the workspace, which the prompt lists instead of showing.
    pub fn is_tree(self) -> bool {
        matches!(self, ReviewScope::Folder | ReviewScope::Workspace)
    }
}

/// Finding severities, most severe first (so `a <= b` means "a is at least as severe as b").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
    Hint,
}

impl Severity {
    pub(super) const ALL: [Severity; 4] =
        [Severity::Error, Severity::Warning, Severity::Info, Severity::Hint];

    pub(super) fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::Hint => "hint",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnalyzeOptions {
    pub depth: Depth,
    /// Also look at the tests covering the code.
    pub include_tests: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewOptions {
    /// Findings less severe than this are not reported (default: info, so hints are left out).
    pub min_severity: Severity,
    /// `None`: the selection when there is one, else the file. Analyze reads `folder` and
    /// `workspace` from here too.
    pub scope: Option<ReviewScope>,
    /// Ask for a replacement text with each finding.
    pub fix: bool,
}

impl Default for ReviewOptions {
    fn default() -> Self {
        Self { min_severity: Severity::Info, scope: None, fix: false }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Where new files go (generate), or the folder of a `folder` scope (analyze, review):
    /// relative to the workspace root.
    pub directory: Option<String>,
}

/// The per-action options (each action reads its own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionOptions {
    pub analyze: AnalyzeOptions,
    pub review: ReviewOptions,
    pub generate: GenerateOptions,
    /// The model of this run (default: the `model` setting).
    pub model: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn actions_name_themselves() {
        let all = [Action::Generate, Action::Analyze, Action::Refactor, Action::Review];
        let names: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["generate", "analyze", "refactor", "review"]);
        assert_eq!(
            serde_json::to_value(all).unwrap(),
            json!(["generate", "analyze", "refactor", "review"])
        );
        assert_eq!(serde_json::from_value::<Action>(json!("review")).unwrap(), Action::Review);
        let edits: Vec<bool> = all.iter().map(|action| action.is_edit()).collect();
        assert_eq!(edits, [true, false, true, false]);
        assert!(Severity::Error < Severity::Hint);
    }
}
