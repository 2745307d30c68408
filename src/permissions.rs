//! What the agent may do in a run: the tool profile per action and the path sandbox, answered
//! through the CLI's `can_use_tool` control requests.

use std::path::{Component, Path, PathBuf};

use futures::future::BoxFuture;
use serde_json::Value;

use crate::claude::control::{CanUseToolRequest, ControlHandler, PermissionDecision};

/// Tools every run may use: reading and searching.
pub const READ_TOOLS: &[&str] = &["Read", "Grep", "Glob"];
/// Tools that change files; only edit runs get them, and only inside their mirror.
pub const EDIT_TOOLS: &[&str] = &["Edit", "Write", "MultiEdit", "NotebookEdit"];

/// The `--tools` list for a run.
pub fn tool_profile(may_edit: bool) -> Vec<String> {
    let edit: &[&str] = if may_edit { &["Edit", "Write"] } else { &[] };
    READ_TOOLS.iter().chain(edit).map(|tool| (*tool).to_owned()).collect()
}

/// Decides tool calls for one run: inside `roots` only, edits only when `may_edit`.
#[derive(Debug, Clone)]
pub struct Sandbox {
    roots: Vec<PathBuf>,
    may_edit: bool,
}

impl Sandbox {
    /// `root` is the run's working directory (the workspace, or the mirror for edit runs);
    /// `extra` are additional directories the user allowed for reading.
    pub fn new(root: &Path, extra: &[PathBuf], may_edit: bool) -> Self {
        let roots = std::iter::once(root).chain(extra.iter().map(PathBuf::as_path));
        Self { roots: roots.map(resolve).collect(), may_edit }
    }

    pub fn decide(&self, tool: &str, input: &Value) -> PermissionDecision {
        let is_edit = EDIT_TOOLS.contains(&tool);
        if is_edit && !self.may_edit {
            return deny(format!("{tool} is not allowed: this action is read-only"));
        }
        if !is_edit && !READ_TOOLS.contains(&tool) {
            return deny(format!("{tool} is not allowed in this run"));
        }
        let path = ["file_path", "notebook_path", "path"]
            .iter()
            .find_map(|key| input.get(*key).and_then(Value::as_str));
        match path {
            // Grep/Glob without a path search the working directory.
            None if !is_edit => allow(),
            None => deny(format!("{tool} needs a file path")),
            Some(path) => {
                let resolved = resolve(Path::new(path));
                let allowed_roots = if is_edit { &self.roots[..1] } else { &self.roots[..] };
                if allowed_roots.iter().any(|root| resolved.starts_with(root)) {
                    allow()
                } else {
                    deny(format!("{path} is outside the workspace; only files inside it may be used"))
                }
            }
        }
    }
}

impl ControlHandler for Sandbox {
    fn can_use_tool(&self, request: CanUseToolRequest) -> BoxFuture<'static, PermissionDecision> {
        let decision = self.decide(&request.tool_name, &request.input);
        tracing::debug!(tool = %request.tool_name, ?decision, "tool permission");
        Box::pin(async move { decision })
    }
}

fn allow() -> PermissionDecision {
    PermissionDecision::Allow { updated_input: None, updated_permissions: None }
}

fn deny(message: String) -> PermissionDecision {
    PermissionDecision::Deny { message, interrupt: false }
}

/// The real location of `path`: `~` expanded, `.`/`..` folded, and symlinks resolved for the
/// longest prefix that exists (a file about to be created has no canonical path yet).
pub fn resolve(path: &Path) -> PathBuf {
    let expanded = match path.strip_prefix("~") {
        Ok(rest) => dirs::home_dir().unwrap_or_default().join(rest),
        Err(_) => path.to_path_buf(),
    };
    let mut normal = PathBuf::new();
    for component in expanded.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    let mut existing = normal.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |acc, part| acc.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn allowed(decision: &PermissionDecision) -> bool {
        matches!(decision, PermissionDecision::Allow { .. })
    }

    #[test]
    fn paths_must_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir(&root).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let sandbox = Sandbox::new(&root, &[], true);
        let root_str = root.display().to_string();
        let cases = [
            ("Read", format!("{root_str}/a.rs"), true),
            ("Edit", format!("{root_str}/new/dir/b.rs"), true),
            ("Read", "/etc/passwd".to_owned(), false),
            ("Edit", format!("{root_str}/../x"), false),
            ("Write", format!("{root_str}/link/escape.txt"), false),
            ("Read", "~/.ssh/id_rsa".to_owned(), false),
        ];
        for (tool, path, want) in cases {
            let decision = sandbox.decide(tool, &json!({"file_path": path}));
            assert_eq!(allowed(&decision), want, "{tool} {path}: {decision:?}");
        }
    }

    #[test]
    fn read_only_runs_cannot_edit_or_use_other_tools() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::new(dir.path(), &[], false);
        let file = dir.path().join("a.rs").display().to_string();
        assert!(allowed(&sandbox.decide("Read", &json!({"file_path": file}))));
        assert!(allowed(&sandbox.decide("Grep", &json!({"pattern": "x"}))));
        assert!(!allowed(&sandbox.decide("Edit", &json!({"file_path": file}))));
        assert!(!allowed(&sandbox.decide("Bash", &json!({"command": "ls"}))));
    }

    #[test]
    fn extra_roots_are_readable_but_not_writable() {
        let dir = tempfile::tempdir().unwrap();
        let (root, extra) = (dir.path().join("ws"), dir.path().join("docs"));
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&extra).unwrap();
        let sandbox = Sandbox::new(&root, std::slice::from_ref(&extra), true);
        let doc = json!({"file_path": extra.join("a.md")});
        assert!(allowed(&sandbox.decide("Read", &doc)));
        assert!(!allowed(&sandbox.decide("Edit", &doc)));
    }

    #[test]
    fn profiles() {
        assert_eq!(tool_profile(false), ["Read", "Grep", "Glob"]);
        assert_eq!(tool_profile(true), ["Read", "Grep", "Glob", "Edit", "Write"]);
    }
}
