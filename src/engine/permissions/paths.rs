//! Where a path really points, and whether that lies inside the directories a run may use.

use std::path::{Component, Path, PathBuf};

use crate::base::path_style::PathStyle;

/// Device files a command may name without reaching outside anything (`2>/dev/null`).
const HARMLESS_DEVICES: &[&str] = &["/dev/null", "/dev/stdin", "/dev/stdout", "/dev/stderr"];

/// Dangling symlinks followed before giving up, as the kernel's `ELOOP` limit.
const MAX_LINK_DEPTH: usize = 40;

/// The real location of `path`, as the OS would resolve it: relative to `base`, `~` and `$HOME`
/// expanded to `home`, and every existing component's symlinks followed *before* the next `..`
/// is applied (so `link/..` is the link target's parent, as for the kernel). Components that do
/// not exist yet (a file about to be created) are kept as written. `None` for `~user` forms,
/// whose target cannot be known here, and for symlink loops.
pub fn resolve(base: &Path, home: &Path, path: &str) -> Option<PathBuf> {
    resolve_within(base, home, path, MAX_LINK_DEPTH)
}

fn resolve_within(base: &Path, home: &Path, path: &str, links_left: usize) -> Option<PathBuf> {
    let expanded = expand_home(path, home)?;
    let absolute = if expanded.is_absolute() { expanded } else { base.join(expanded) };
    let mut resolved = PathBuf::new();
    // Once a component is missing, nothing below it can be a symlink.
    let mut exists = true;
    for component in absolute.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => resolved.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => {
                resolved.push(name);
                if exists {
                    match resolved.canonicalize() {
                        Ok(real) => resolved = real,
                        // A dangling symlink still points somewhere: judge it by its target.
                        Err(_) => match std::fs::read_link(&resolved) {
                            Ok(target) => {
                                let links_left = links_left.checked_sub(1)?;
                                let parent = resolved.parent().map(Path::to_path_buf);
                                let target = target.to_string_lossy().into_owned();
                                resolved = resolve_within(
                                    &parent.unwrap_or_default(),
                                    home,
                                    &target,
                                    links_left,
                                )?;
                                exists = false;
                            }
                            Err(_) => exists = false,
                        },
                    }
                }
            }
        }
    }
    Some(resolved)
}

fn expand_home(path: &str, home: &Path) -> Option<PathBuf> {
    for prefix in ["$HOME", "${HOME}", "~"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            return match rest.strip_prefix('/') {
                Some(rest) => Some(home.join(rest)),
                None if rest.is_empty() => Some(home.to_path_buf()),
                // `~user/…` or `$HOMEDIR`: another directory we cannot resolve.
                None => None,
            };
        }
    }
    Some(PathBuf::from(path))
}

/// Whether a word of a shell command looks like it names a file outside its working directory:
/// absolute, home-relative, or climbing with `..`.
pub fn is_path_like(word: &str) -> bool {
    word.starts_with('/')
        || word.starts_with('~')
        || word.starts_with("$HOME")
        || word.starts_with("${HOME}")
        || word == ".."
        || word.starts_with("../")
        || word.contains("/../")
        || word.ends_with("/..")
}

pub fn is_harmless_device(word: &str) -> bool {
    HARMLESS_DEVICES.contains(&word)
}

/// The directories a run may read, and the one it may write.
#[derive(Debug, Clone)]
pub struct Roots {
    /// The run's working directory: the workspace (read-only runs) or its mirror (edit runs).
    write: PathBuf,
    /// `write` first, then the additional directories the user allowed for reading.
    read: Vec<PathBuf>,
    home: PathBuf,
    case_insensitive: bool,
}

impl Roots {
    pub fn new(root: &Path, extra: &[PathBuf], home: &Path) -> Self {
        let real = |dir: &Path| {
            resolve(Path::new("/"), home, &dir.to_string_lossy())
                .unwrap_or_else(|| dir.to_path_buf())
        };
        let write = real(root);
        let read =
            std::iter::once(write.clone()).chain(extra.iter().map(|dir| real(dir))).collect();
        let case_insensitive = is_case_insensitive(&write);
        Self { write, read, home: home.to_path_buf(), case_insensitive }
    }

    pub fn root(&self) -> &Path {
        &self.write
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `path` (relative to `base`) resolved, if it lies inside a readable root.
    pub fn readable(&self, base: &Path, path: &str) -> Result<PathBuf, String> {
        self.inside(base, path, &self.read)
    }

    /// `path` (relative to `base`) resolved, if it lies inside the writable root.
    pub fn writable(&self, base: &Path, path: &str) -> Result<PathBuf, String> {
        self.inside(base, path, std::slice::from_ref(&self.write))
    }

    fn inside(&self, base: &Path, path: &str, roots: &[PathBuf]) -> Result<PathBuf, String> {
        let outside = || {
            let which = if roots.len() > 1 {
                "the workspace and the additional directories"
            } else {
                "the workspace"
            };
            format!("{path} is outside {which}; only paths inside may be used")
        };
        let resolved = resolve(base, &self.home, path).ok_or_else(outside)?;
        if roots.iter().any(|root| self.starts_with(&resolved, root)) {
            Ok(resolved)
        } else {
            Err(outside())
        }
    }

    fn starts_with(&self, path: &Path, root: &Path) -> bool {
        PathStyle::NATIVE.strip_root(path, root, self.case_insensitive).is_some()
    }
}

/// Whether the file system holding `dir` ignores case (macOS and Windows defaults): the same
/// directory is found under a case-flipped name.
fn is_case_insensitive(dir: &Path) -> bool {
    let Some(name) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return false;
    };
    let flipped: String = name
        .chars()
        .map(|c| if c.is_lowercase() { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
        .collect();
    if flipped == name {
        return false;
    }
    let twin = dir.with_file_name(flipped);
    same_file(dir, &twin)
}

fn same_file(a: &Path, b: &Path) -> bool {
    use crate::base::platform::file_identity;
    matches!((file_identity(a), file_identity(b)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        base: PathBuf,
        root: PathBuf,
        outside: PathBuf,
        home: PathBuf,
    }

    /// `<tmp>/ws` with `link → <tmp>/outside` and `dangling → <tmp>/outside/new`, plus a home.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let (root, outside, home) = (base.join("ws"), base.join("outside"), base.join("home"));
        for d in [&root, &outside, &home] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::create_dir(root.join("src")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("new"), root.join("dangling")).unwrap();
        Fixture { _dir: dir, base, root, outside, home }
    }

    #[test]
    fn resolve_follows_symlinks_before_climbing() {
        let f = fixture();
        let at = |p: &str| resolve(&f.root, &f.home, p).unwrap();
        assert_eq!(at("src/../a.rs"), f.root.join("a.rs"));
        assert_eq!(at("./new/dir/b.rs"), f.root.join("new/dir/b.rs"));
        assert_eq!(at("link/x"), f.outside.join("x"));
        // `link/..` is the parent of the link's *target*, as the kernel sees it.
        assert_eq!(at("link/../escape"), f.base.join("escape"));
        assert_eq!(at("dangling"), f.outside.join("new"));
        assert_eq!(at("~/.ssh/id_rsa"), f.home.join(".ssh/id_rsa"));
        assert_eq!(at("$HOME/.ssh"), f.home.join(".ssh"));
        assert_eq!(at("${HOME}"), f.home);
        assert_eq!(at("/../../etc/passwd"), PathBuf::from("/etc/passwd"));
        assert_eq!(resolve(&f.root, &f.home, "~root/.ssh"), None);
        std::os::unix::fs::symlink(f.root.join("loop-b"), f.root.join("loop-a")).unwrap();
        std::os::unix::fs::symlink(f.root.join("loop-a"), f.root.join("loop-b")).unwrap();
        assert_eq!(resolve(&f.root, &f.home, "loop-a/x"), None);
    }

    #[test]
    fn roots_separate_reading_from_writing() {
        let f = fixture();
        let docs = f.base.join("docs");
        std::fs::create_dir(&docs).unwrap();
        let roots = Roots::new(&f.root, std::slice::from_ref(&docs), &f.home);
        assert!(roots.writable(&f.root, "src/new.rs").is_ok());
        assert!(roots.readable(&f.root, &docs.join("a.md").to_string_lossy()).is_ok());
        let error = roots.writable(&f.root, &docs.join("a.md").to_string_lossy()).unwrap_err();
        assert!(error.contains("outside the workspace"), "{error}");
        for escape in
            ["/etc/passwd", "../../x", "link/escape.txt", "dangling", "~/.ssh/id_rsa", "~root/x"]
        {
            let error = roots.readable(&f.root, escape).unwrap_err();
            assert!(error.starts_with(escape) && error.contains("outside"), "{escape}: {error}");
        }
    }

    #[test]
    fn a_root_given_through_a_symlink_is_compared_by_its_target() {
        let f = fixture();
        let alias = f.base.join("alias");
        std::os::unix::fs::symlink(&f.root, &alias).unwrap();
        let roots = Roots::new(&alias, &[], &f.home);
        assert_eq!(roots.root(), f.root);
        assert!(roots.writable(&alias, "src/a.rs").is_ok());
        assert!(roots.writable(&f.root, &f.root.join("src/a.rs").to_string_lossy()).is_ok());
    }

    #[test]
    fn path_like_words() {
        for word in
            ["/etc", "~", "~/.ssh", "$HOME/x", "${HOME}/x", "..", "../x", "a/../../b", "a/.."]
        {
            assert!(is_path_like(word), "{word}");
        }
        for word in ["src/lib.rs", "-v", "https://example.com/a", "a..b", "..."] {
            assert!(!is_path_like(word), "{word}");
        }
    }

    #[test]
    fn case_sensitivity_is_probed_on_the_real_file_system() {
        let f = fixture();
        // The test machines use case-sensitive file systems; the probe must not guess otherwise.
        let expected = f.root.with_file_name("WS").exists();
        assert_eq!(is_case_insensitive(&f.root), expected);
    }
}
