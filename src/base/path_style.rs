//! Path text as each OS spells it, as pure functions of a [`PathStyle`], so the Windows rules
//! (drive letters, `\` and `/`, `\\?\` prefixes, UNC shares, case-insensitive names) are tested
//! on any machine. Used for `file:` URIs ([`crate::model::edits`]) and containment checks
//! ([`crate::engine::permissions`], [`crate::engine::staging`]).

use std::path::{Path, PathBuf};

/// How an OS spells paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathStyle {
    /// `/` separates; `/` starts an absolute path; names are bytes.
    Posix,
    /// `\` or `/` separate; `C:\`, `\\server\share\` and `\\?\…` start absolute paths; names
    /// ignore case.
    Windows,
}

impl PathStyle {
    /// This machine's style.
    pub const NATIVE: PathStyle = if cfg!(windows) { PathStyle::Windows } else { PathStyle::Posix };

    /// `path` in the form paths are compared in: on Windows the `\\?\` (verbatim) prefix that
    /// `canonicalize` adds is dropped, `/` becomes `\`, a trailing CR/LF (never part of a Windows
    /// name; left by a CRLF line) and a trailing separator are dropped, and the drive letter is
    /// upper case. Posix paths are returned as they are.
    pub fn comparable(self, path: &str) -> String {
        match self {
            PathStyle::Posix => path.to_owned(),
            PathStyle::Windows => {
                let path = path.trim_end_matches(['\r', '\n']).replace('/', "\\");
                let path = match path.strip_prefix(r"\\?\UNC\") {
                    Some(share) => format!(r"\\{share}"),
                    None => path.strip_prefix(r"\\?\").map(str::to_owned).unwrap_or(path),
                };
                let mut path = match drive_letter(&path) {
                    Some(letter) => format!("{}{}", letter.to_ascii_uppercase(), &path[1..]),
                    None => path,
                };
                while path.len() > 3 && path.ends_with('\\') {
                    path.pop();
                }
                path
            }
        }
    }

    /// The part of `path` below `root` (both absolute; empty when they are the same), by name,
    /// in `path`'s spelling (on Windows its comparable form): `c:/WS/src/a.rs` below `\\?\C:\ws`
    /// is `src\a.rs`, and `C:\ws2` is not below `C:\ws`. `None` when `path` is not within.
    /// `case_insensitive` applies to Posix paths (macOS); Windows names always ignore case.
    pub fn relative(self, path: &str, root: &str, case_insensitive: bool) -> Option<String> {
        let fold = case_insensitive || self == PathStyle::Windows;
        let same_name =
            |a: &str, b: &str| if fold { a.to_lowercase() == b.to_lowercase() } else { a == b };
        let separator = self.separator();
        let (path, root) = (self.comparable(path), self.comparable(root));
        let mut root_names: Vec<&str> = root.split(separator).collect();
        // A trailing separator (`/`, `C:\`) names no further directory.
        while root_names.len() > 1 && root_names.last() == Some(&"") {
            root_names.pop();
        }
        let mut names = path.split(separator);
        for root_name in root_names {
            if !same_name(names.next()?, root_name) {
                return None;
            }
        }
        let rest: Vec<&str> = names.filter(|name| !name.is_empty()).collect();
        Some(rest.join(&separator.to_string()))
    }

    /// [`Self::relative`] for paths: Posix paths (unless `case_insensitive`) by component as they
    /// are, since they need not be Unicode; other paths by name, `None` when not Unicode.
    pub fn strip_root(self, path: &Path, root: &Path, case_insensitive: bool) -> Option<PathBuf> {
        match self {
            PathStyle::Posix if !case_insensitive => {
                path.strip_prefix(root).ok().map(Path::to_path_buf)
            }
            style => {
                style.relative(path.to_str()?, root.to_str()?, case_insensitive).map(PathBuf::from)
            }
        }
    }

    fn separator(self) -> char {
        match self {
            PathStyle::Posix => '/',
            PathStyle::Windows => '\\',
        }
    }

    /// The URI path (before percent-encoding, always starting with `/`) and host of an absolute
    /// Windows path: `C:\a b` → (``, `/C:/a b`); `\\server\share\x` → (`server`, `/share/x`).
    /// `None` when the path is not absolute.
    #[cfg(any(not(unix), test))]
    pub fn windows_uri_parts(path: &str) -> Option<(String, String)> {
        let path = PathStyle::Windows.comparable(path).replace('\\', "/");
        if let Some(unc) = path.strip_prefix("//") {
            let (host, rest) = unc.split_once('/')?;
            return (!host.is_empty()).then(|| (host.to_owned(), format!("/{rest}")));
        }
        let absolute = drive_letter(&path).is_some() && path[2..].starts_with('/');
        absolute.then(|| (String::new(), format!("/{path}")))
    }

    /// The Windows path of a decoded `file:` URI's host and path: `/c:/a` → `C:\a`,
    /// (`server`, `/share/x`) → `\\server\share\x`. `None` when it names no absolute path.
    #[cfg(any(not(unix), test))]
    pub fn windows_path_of_uri(host: &str, path: &str) -> Option<String> {
        if !host.is_empty() {
            let share = path.strip_prefix('/').filter(|share| !share.is_empty())?;
            return Some(format!(r"\\{host}\{}", share.replace('/', "\\")));
        }
        let path = path.strip_prefix('/')?;
        let absolute = drive_letter(path).is_some() && path[2..].starts_with('/');
        absolute.then(|| PathStyle::Windows.comparable(path))
    }
}

/// The drive letter of `C:…`.
fn drive_letter(path: &str) -> Option<char> {
    let mut chars = path.chars();
    let letter = chars.next().filter(char::is_ascii_alphabetic)?;
    (chars.next() == Some(':')).then_some(letter)
}

#[cfg(test)]
mod tests {
    use super::PathStyle::{Posix, Windows};
    use super::*;

    #[test]
    fn windows_paths_compare_in_one_form() {
        for (given, comparable) in [
            (r"C:\ws\src", r"C:\ws\src"),
            (r"c:/ws/src/", r"C:\ws\src"),
            (r"\\?\C:\ws", r"C:\ws"),
            (r"\\?\UNC\server\share\x", r"\\server\share\x"),
            ("C:\\ws\\a.rs\r\n", r"C:\ws\a.rs"),
            (r"C:\", r"C:\"),
        ] {
            assert_eq!(Windows.comparable(given), comparable, "{given:?}");
        }
        assert_eq!(Posix.comparable("/ws/a\r"), "/ws/a\r", "a Posix name may end in CR");
    }

    #[test]
    fn windows_containment_ignores_case_separators_and_verbatim_prefixes() {
        let inside = [
            (r"C:\ws\src\a.rs", r"C:\ws"),
            (r"c:/WS/Src", r"C:\ws"),
            (r"\\?\C:\ws\a.rs", r"C:\ws"),
            (r"C:\ws\a.rs", r"\\?\C:\ws\"),
            (r"C:\ws", r"c:\ws"),
            (r"\\server\share\ws\a", r"\\?\UNC\server\share\ws"),
            (r"D:\any", r"D:\"),
        ];
        for (path, root) in inside {
            assert!(Windows.relative(path, root, false).is_some(), "{path} in {root}");
        }
        let outside = [
            (r"C:\ws2\a.rs", r"C:\ws"),
            (r"D:\ws\a.rs", r"C:\ws"),
            (r"C:\w", r"C:\ws"),
            (r"\\other\share\ws", r"\\server\share\ws"),
        ];
        for (path, root) in outside {
            assert!(Windows.relative(path, root, false).is_none(), "{path} not in {root}");
        }
    }

    #[test]
    fn posix_containment_is_exact_unless_the_file_system_ignores_case() {
        assert!(Posix.relative("/ws/a", "/ws", false).is_some());
        assert!(Posix.relative("/ws", "/ws/", false).is_some());
        assert!(Posix.relative("/ws2/a", "/ws", false).is_none());
        assert!(Posix.relative("/WS/a", "/ws", false).is_none());
        assert!(Posix.relative("/WS/a", "/ws", true).is_some());
        assert!(Posix.relative("/a", "/", false).is_some());
    }

    #[test]
    fn the_part_below_a_root_keeps_the_path_spelling() {
        for (path, root, rest) in [
            (r"c:/WS/Src/a.rs", r"\\?\C:\ws", r"Src\a.rs"),
            (r"\\?\C:\ws\a.rs", r"C:\ws\", "a.rs"),
            (r"C:\ws", r"c:\WS", ""),
            (r"D:\any\x", r"D:\", r"any\x"),
            (r"\\server\share\ws\a", r"\\?\UNC\server\share\ws", "a"),
        ] {
            assert_eq!(
                Windows.relative(path, root, false).as_deref(),
                Some(rest),
                "{path} in {root}"
            );
        }
        assert_eq!(Windows.relative(r"C:\ws2\a", r"C:\ws", false), None);
        assert_eq!(Posix.relative("/WS/Src/a", "/ws", true).as_deref(), Some("Src/a"));
        assert_eq!(Posix.relative("/ws//a/", "/ws", false).as_deref(), Some("a"));
        assert_eq!(Posix.relative("/a/b", "/", false).as_deref(), Some("a/b"));
        assert_eq!(Posix.relative("/WS/a", "/ws", false), None);
    }

    #[test]
    fn strip_root_compares_paths_by_the_style_rules() {
        let rest = Windows.strip_root(Path::new(r"C:\Ws\src\a.rs"), Path::new(r"\\?\c:\ws"), false);
        assert_eq!(rest, Some(PathBuf::from(r"src\a.rs")));
        assert_eq!(Windows.strip_root(Path::new(r"D:\ws\a"), Path::new(r"C:\ws"), false), None);
        assert_eq!(
            Posix.strip_root(Path::new("/ws/a/b"), Path::new("/ws"), false),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(Posix.strip_root(Path::new("/WS/a"), Path::new("/ws"), false), None);
        assert_eq!(
            Posix.strip_root(Path::new("/WS/a"), Path::new("/ws"), true),
            Some(PathBuf::from("a"))
        );
    }

    #[test]
    fn windows_paths_and_uri_parts_convert_both_ways() {
        for (path, host, uri_path) in [
            (r"C:\ws\a b.rs", "", "/C:/ws/a b.rs"),
            (r"\\?\C:\ws\a.rs", "", "/C:/ws/a.rs"),
            (r"\\server\share\x.rs", "server", "/share/x.rs"),
        ] {
            let parts = PathStyle::windows_uri_parts(path).unwrap();
            assert_eq!(parts, (host.to_owned(), uri_path.to_owned()), "{path}");
            let back = PathStyle::windows_path_of_uri(host, uri_path).unwrap();
            assert_eq!(back, Windows.comparable(path));
        }
        // VS Code writes the drive letter in lower case (`file:///c%3A/…`, decoded `/c:/…`).
        assert_eq!(PathStyle::windows_path_of_uri("", "/c:/ws/a.rs").unwrap(), r"C:\ws\a.rs");
        for relative in [r"ws\a.rs", r"C:ws", r"\ws\a.rs", r"\\server"] {
            assert_eq!(PathStyle::windows_uri_parts(relative), None, "{relative}");
        }
        assert_eq!(PathStyle::windows_path_of_uri("", "/ws/a.rs"), None);
        assert_eq!(PathStyle::windows_path_of_uri("server", "/"), None);
    }
}
