//! File system work shared by both kinds of mirror: a path's state as a diff sees it, writing
//! and removing files without following links out of the mirror, and path text mapping.

use std::fs;
use std::hash::Hasher;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::base::path_style::PathStyle;
use crate::base::paths;
use crate::base::platform::{self, symlink};

use super::error::{StagingError, blocking, io_error};

/// The content of one path, as far as a diff is concerned. Binary content is kept as a digest:
/// it can only ever be reported as an error, and may be large.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum State {
    Absent,
    Text(String),
    Binary { len: u64, digest: u64 },
    Symlink(PathBuf),
}

impl State {
    pub(super) fn from_bytes(bytes: Vec<u8>) -> Self {
        if memchr::memchr(0, &bytes).is_none() {
            match String::from_utf8(bytes) {
                Ok(text) => return Self::Text(text),
                Err(err) => return Self::binary(err.as_bytes()),
            }
        }
        Self::binary(&bytes)
    }

    pub(super) fn binary(bytes: &[u8]) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        hasher.write(bytes);
        Self::Binary { len: bytes.len() as u64, digest: hasher.finish() }
    }

    pub(super) fn from_blob(bytes: Vec<u8>, symlink: bool) -> Self {
        if symlink {
            Self::Symlink(platform::path_from_bytes(bytes))
        } else {
            Self::from_bytes(bytes)
        }
    }
}

/// The state of `root/rel` without following symbolic links, neither the last component nor
/// any directory on the way (a path below a link is not in the tree). Directories and special
/// files count as absent: only files are diffed.
pub(super) fn read_state(root: &Path, rel: &Path) -> Result<State, StagingError> {
    let mut dir = root.to_path_buf();
    let mut components = rel.components().peekable();
    while let Some(component) = components.next() {
        dir.push(component);
        let meta = match fs::symlink_metadata(&dir) {
            Ok(meta) => meta,
            Err(err) if is_absent(&err) => return Ok(State::Absent),
            Err(err) => return Err(io_error(&dir)(err)),
        };
        if components.peek().is_some() {
            if !meta.is_dir() {
                return Ok(State::Absent);
            }
            continue;
        }
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&dir).map_err(io_error(&dir))?;
            return Ok(State::Symlink(target));
        }
        if meta.is_file() {
            let bytes = fs::read(&dir).map_err(io_error(&dir))?;
            return Ok(State::from_bytes(bytes));
        }
    }
    Ok(State::Absent)
}

pub(super) fn is_absent(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// `.git` directories (or files) hold repository state, never part of an edit.
pub(super) fn is_git_metadata(rel: &Path) -> bool {
    rel.components().any(|component| component.as_os_str() == ".git")
}

/// Copy one file or symbolic link to `target/rel`, returning what was written.
pub(super) fn copy_entry(from: &Path, target: &Path, rel: &Path) -> Result<State, StagingError> {
    let meta = fs::symlink_metadata(from).map_err(io_error(from))?;
    let to = target.join(rel);
    prepare_destination(target, rel)?;
    if meta.file_type().is_symlink() {
        let link = fs::read_link(from).map_err(io_error(from))?;
        symlink(&link, &to).map_err(io_error(&to))?;
        return Ok(State::Symlink(link));
    }
    let bytes = fs::read(from).map_err(io_error(from))?;
    fs::write(&to, &bytes).map_err(io_error(&to))?;
    fs::set_permissions(&to, meta.permissions()).map_err(io_error(&to))?;
    Ok(State::from_bytes(bytes))
}

/// Write an unsaved buffer over `root/rel`, keeping the file's permissions.
pub(super) fn write_text(root: &Path, rel: &Path, text: &str) -> Result<(), StagingError> {
    let path = root.join(rel);
    let permissions = fs::symlink_metadata(&path)
        .ok()
        .filter(|meta| meta.is_file())
        .map(|meta| meta.permissions());
    prepare_destination(root, rel)?;
    fs::write(&path, text).map_err(io_error(&path))?;
    if let Some(permissions) = permissions {
        fs::set_permissions(&path, permissions).map_err(io_error(&path))?;
    }
    Ok(())
}

/// A file or symbolic link as the quick check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Entry {
    File { len: u64, modified: Option<SystemTime>, mode: u32 },
    Symlink(PathBuf),
}

/// The entry at `path`, or `None` for a directory or special file.
pub(super) fn entry_of(path: &Path) -> io::Result<Option<Entry>> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(Some(Entry::Symlink(fs::read_link(path)?)));
    }
    if meta.is_file() {
        let mode = platform::file_mode(&meta);
        return Ok(Some(Entry::File { len: meta.len(), modified: meta.modified().ok(), mode }));
    }
    Ok(None)
}

/// Make room for a new file at `root/rel`: every directory on the way exists as a real
/// directory (a file or link in the way is removed: writing through a link could leave the
/// mirror), and nothing is left at `rel` itself.
pub(super) fn prepare_destination(root: &Path, rel: &Path) -> Result<(), StagingError> {
    let mut dir = root.to_path_buf();
    let mut components = rel.components().peekable();
    while let Some(component) = components.next() {
        dir.push(component);
        if components.peek().is_none() {
            return remove_path(&dir);
        }
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => remove_path(&dir)?,
            Err(err) if is_absent(&err) => {}
            Err(err) => return Err(io_error(&dir)(err)),
        }
        fs::create_dir(&dir).map_err(io_error(&dir))?;
    }
    Ok(())
}

/// Remove whatever is at `path` (file, link or directory tree); absent is fine.
pub(super) fn remove_path(path: &Path) -> Result<(), StagingError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => force_remove_dir(path),
        Ok(_) => remove_file_forcing(path),
        Err(err) if is_absent(&err) => Ok(()),
        Err(err) => Err(io_error(path)(err)),
    }
}

/// Remove a file or link at `path`, leaving a directory alone.
pub(super) fn remove_non_directory(path: &Path) -> Result<(), StagingError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => remove_file_forcing(path),
        Err(err) if is_absent(&err) => Ok(()),
        Err(err) => Err(io_error(path)(err)),
    }
}

pub(super) fn remove_file_forcing(path: &Path) -> Result<(), StagingError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            // A run may leave read-only directories behind (e.g. a Go module cache).
            if let Some(parent) = path.parent() {
                make_writable(parent);
            }
            fs::remove_file(path).map_err(io_error(path))
        }
        Err(err) if is_absent(&err) => Ok(()),
        Err(err) => Err(io_error(path)(err)),
    }
}

/// `remove_dir_all`, also through read-only directories. Never follows symbolic links.
pub(super) fn force_remove_dir(path: &Path) -> Result<(), StagingError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if is_absent(&err) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            make_tree_writable(path);
            fs::remove_dir_all(path).map_err(io_error(path))
        }
        Err(err) => Err(io_error(path)(err)),
    }
}

pub(super) fn make_writable(dir: &Path) {
    if let Ok(meta) = fs::symlink_metadata(dir)
        && meta.is_dir()
    {
        platform::make_dir_writable(dir, &meta);
    }
}

pub(super) fn make_tree_writable(root: &Path) {
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        make_writable(&dir);
        let Ok(listing) = fs::read_dir(&dir) else { continue };
        for item in listing.flatten() {
            if item.file_type().is_ok_and(|file_type| file_type.is_dir()) {
                pending.push(item.path());
            }
        }
    }
}

/// Lexically resolve `.` and `..` (no file system access). `None` if `..` climbs above the
/// root or the path is relative.
pub(super) fn normalize_absolute(path: &Path) -> Option<PathBuf> {
    paths::normalize(path).filter(|normal| normal.is_absolute())
}

/// `path` relative to the first of `roots` it lies in, with names compared as `style` compares
/// them: on Windows `C:\ws`, `c:/WS` and the `\\?\C:\ws` that `canonicalize` gives are one
/// directory, so a path the CLI or the editor spells one way maps onto a root spelled the other.
pub(super) fn relative_to_first(style: PathStyle, path: &Path, roots: &[&Path]) -> Option<PathBuf> {
    roots.iter().find_map(|root| style.strip_root(path, root, false))
}

pub(super) fn absolute_normalized(path: &Path) -> Result<PathBuf, StagingError> {
    let absolute = std::path::absolute(path).map_err(io_error(path))?;
    normalize_absolute(&absolute).ok_or(StagingError::NotADirectory { path: absolute })
}

/// Replace every mention of the path `from` in `text` by `to`, where the mention ends at a
/// path boundary (so `/m/1` does not rewrite `/m/10`).
pub(super) fn replace_path_mentions(text: &str, from: &Path, to: &Path) -> String {
    let (Some(from), Some(to)) = (from.to_str(), to.to_str()) else {
        return text.to_owned();
    };
    // A trailing slash would make the next path component look like a longer file name.
    let (from, to) = (from.trim_end_matches('/'), to.trim_end_matches('/'));
    if from.is_empty() {
        return text.to_owned();
    }
    let mut mapped = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let after = &rest[at + from.len()..];
        let continues_name = continues_file_name(after);
        mapped.push_str(&rest[..at]);
        mapped.push_str(if continues_name { from } else { to });
        rest = after;
    }
    mapped.push_str(rest);
    mapped
}

/// Whether `rest` goes on with the same file name: `1` in `/m/10`, `.lock` in `/m/1.lock`, but
/// not the full stop in "written to /m/1."
pub(super) fn continues_file_name(rest: &str) -> bool {
    let is_name_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let mut chars = rest.chars();
    match chars.next() {
        Some('.') => chars.next().is_some_and(|c| is_name_char(c) || c == '.'),
        Some(c) => is_name_char(c),
        None => false,
    }
}

/// Remove a directory tree that may be large (a whole mirror) without stalling the runtime.
pub(super) async fn remove_dir_off_thread(path: PathBuf) -> Result<(), StagingError> {
    blocking(move || force_remove_dir(&path)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn path_mentions_map_whether_or_not_the_root_ends_in_a_slash() {
        let text = "updated /c/m/0/src/lib.rs; see /c/m/01/x and /c/m/0.";
        for from in ["/c/m/0", "/c/m/0/"] {
            assert_eq!(
                replace_path_mentions(text, Path::new(from), Path::new("/ws")),
                "updated /ws/src/lib.rs; see /c/m/01/x and /ws."
            );
        }
    }

    #[test]
    fn path_mentions_are_replaced_only_at_boundaries() {
        let text = "/m/1/src/a.rs, /m/10/b.rs and `/m/1`. /m/1-x, /m/1.lock stay; cwd /m/1.";
        let mapped = replace_path_mentions(text, Path::new("/m/1"), Path::new("/home/u/p"));
        let expected = "/home/u/p/src/a.rs, /m/10/b.rs and `/home/u/p`. /m/1-x, /m/1.lock stay; \
                        cwd /home/u/p.";
        assert_eq!(mapped, expected);
    }

    #[test]
    fn windows_paths_map_onto_roots_spelled_another_way() {
        let windows = |path: &str, roots: &[&str]| {
            let roots: Vec<&Path> = roots.iter().map(Path::new).collect();
            relative_to_first(PathStyle::Windows, Path::new(path), &roots)
        };
        // The editor's path (from `file:///c%3A/…`) against the canonical workspace root.
        let workspace = [r"\\?\C:\Users\me\ws", r"C:\Users\me\ws"];
        assert_eq!(
            windows(r"c:\users\ME\ws\src\a.rs", &workspace),
            Some(PathBuf::from(r"src\a.rs"))
        );
        assert_eq!(
            windows(r"C:/Users/me/ws/src/a.rs", &workspace),
            Some(PathBuf::from(r"src\a.rs"))
        );
        assert_eq!(windows(r"C:\Users\me\ws", &workspace), Some(PathBuf::new()));
        assert_eq!(windows(r"C:\Users\me\ws2\a.rs", &workspace), None);
        assert_eq!(windows(r"D:\Users\me\ws\a.rs", &workspace), None);
        // A path the CLI prints in the mirror (no `\\?\`) against the canonical mirror root.
        let mirror = [r"\\?\C:\Users\me\AppData\Local\claude-lsp\m\1"];
        let printed = r"C:\Users\me\AppData\Local\claude-lsp\m\1\src\a.rs";
        assert_eq!(windows(printed, &mirror), Some(PathBuf::from(r"src\a.rs")));
        // A symbolic link's target on another share stays outside.
        assert_eq!(windows(r"\\server\share\a.rs", &mirror), None);
        // On Linux the same names are exact bytes.
        let posix = relative_to_first(PathStyle::Posix, Path::new("/WS/a"), &[Path::new("/ws")]);
        assert_eq!(posix, None);
    }

    #[test]
    fn normalize_refuses_to_climb_above_the_root() {
        assert_eq!(normalize_absolute(Path::new("/a/b/../c/./d")), Some(PathBuf::from("/a/c/d")));
        assert_eq!(normalize_absolute(Path::new("/a/../..")), None);
        assert_eq!(normalize_absolute(Path::new("relative")), None);
    }
}
