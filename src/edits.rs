//! Text diff → minimal TextEdits; WorkspaceEdit assembly.

use std::path::PathBuf;

/// One file that a run changed, as found in the staging mirror, with workspace paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    Modified { path: PathBuf, before: String, after: String },
    Created { path: PathBuf, content: String },
    Deleted { path: PathBuf, before: String },
    Renamed { from: PathBuf, to: PathBuf, before: String, after: String },
}
