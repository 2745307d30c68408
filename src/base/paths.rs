//! Paths taken lexically, without touching the file system.

use std::path::{Component, Path, PathBuf};

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
