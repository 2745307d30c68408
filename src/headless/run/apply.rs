//! `--apply`: the run's changes written to disk, merged onto what changed meanwhile, or nothing
//! written at all.

use std::path::{Path, PathBuf};

use super::failure::{Failure, exit};
use crate::model::edits::{self, FileChange};

/// One file write of `--apply`, decided before anything is written.
enum FileWrite {
    Put { path: PathBuf, text: String },
    Remove { path: PathBuf },
}

/// Write the run's changes to disk. A file that changed since the run started is merged when
/// the changes do not overlap; otherwise nothing at all is written.
pub(super) fn apply_changes(changes: &[FileChange]) -> Result<(), Failure> {
    let conflict = |path: &Path, why: &str| Failure {
        code: exit::NOT_APPLIED,
        message: format!("{}: {why}", path.display()),
        hint: "nothing was written; run it again".to_owned(),
    };
    let current = |path: &Path| std::fs::read_to_string(path).ok();
    let mut writes = Vec::new();
    for change in changes {
        match change {
            FileChange::Modified { path, before, after } => {
                let now =
                    current(path).ok_or_else(|| conflict(path, "it was deleted during the run"))?;
                let text = if now == *before {
                    after.clone()
                } else {
                    edits::merge3(before, after, &now).map_err(|err| {
                        conflict(
                            path,
                            &format!("it changed during the run and the edits overlap: {err}"),
                        )
                    })?
                };
                writes.push(FileWrite::Put { path: path.clone(), text });
            }
            FileChange::Created { path, content } => match current(path) {
                Some(now) if now == *content => {}
                Some(_) => {
                    return Err(conflict(
                        path,
                        "a different file was created there during the run",
                    ));
                }
                None => writes.push(FileWrite::Put { path: path.clone(), text: content.clone() }),
            },
            FileChange::Deleted { path, before } => match current(path) {
                Some(now) if now == *before => {
                    writes.push(FileWrite::Remove { path: path.clone() })
                }
                Some(_) => {
                    return Err(conflict(path, "it changed during the run; not deleting it"));
                }
                None => {}
            },
            FileChange::Renamed { from, to, before, after } => {
                if current(from).as_deref() != Some(before.as_str()) {
                    return Err(conflict(from, "it changed during the run; not renaming it"));
                }
                if to.exists() {
                    return Err(conflict(to, "a file was created there during the run"));
                }
                writes.push(FileWrite::Put { path: to.clone(), text: after.clone() });
                writes.push(FileWrite::Remove { path: from.clone() });
            }
        }
    }
    for write in writes {
        let written = match &write {
            FileWrite::Put { path, text } => path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(path, text))
                .map_err(|err| (path.clone(), err)),
            FileWrite::Remove { path } => {
                std::fs::remove_file(path).map_err(|err| (path.clone(), err))
            }
        };
        written.map_err(|(path, err)| Failure {
            code: exit::NOT_APPLIED,
            message: format!("cannot write {}: {err}", path.display()),
            hint: "some files may have been written; check `git status`".to_owned(),
        })?;
    }
    Ok(())
}
