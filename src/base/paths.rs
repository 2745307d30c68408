//! Where claude-lsp keeps its files (the cache directory, the per-workspace names in it), and
//! paths taken lexically, without touching the file system.

use std::path::{Component, Path, PathBuf};

/// The default cache dir (mirrors, answers, the session index, the usage ledger, the audit log):
/// the user's cache dir + `claude-lsp`. The server and `claude-lsp run` share it, so a headless
/// run shows up in an editor's `claude/sessions` and `claude/usage`.
pub fn default_cache_dir() -> PathBuf {
    dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("claude-lsp")
}

/// The readable last path component plus a stable hash of the whole canonical path: the name of a
/// workspace's directory under the cache (mirrors, sessions).
pub fn workspace_key(canonical: &Path) -> String {
    // FNV-1a: stable across Rust releases, unlike std's DefaultHasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in canonical.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let name: String = canonical
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_else(|| "root".into())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
        .take(40)
        .collect();
    format!("{name}-{hash:016x}")
}

/// `path` with `.` and `..` resolved lexically; `None` when a `..` climbs above the start: the
/// root of an absolute path, or the first component of a relative one.
pub fn normalize(path: &Path) -> Option<PathBuf> {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !matches!(normal.components().next_back(), Some(Component::Normal(_))) {
                    return None;
                }
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    Some(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_resolve_and_nothing_climbs_above_its_start() {
        assert_eq!(normalize(Path::new("/a/b/../c/./d")), Some(PathBuf::from("/a/c/d")));
        assert_eq!(normalize(Path::new("/a/..")), Some(PathBuf::from("/")));
        assert_eq!(normalize(Path::new("/a/../..")), None);
        assert_eq!(normalize(Path::new("a/./b/..")), Some(PathBuf::from("a")));
        assert_eq!(normalize(Path::new("a/../..")), None);
        assert_eq!(normalize(Path::new("../a")), None);
        assert_eq!(normalize(Path::new("")), Some(PathBuf::new()));
    }
}
