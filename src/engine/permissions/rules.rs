//! Permission rules in the CLI's syntax (`allowedTools` / `disallowedTools` settings):
//! `Bash`, `Bash(cargo test:*)`, `Bash(git diff *)`, `Edit(src/**)`, `Read(//etc/**)`,
//! `Read(~/.ssh/**)`, `WebFetch(domain:example.com)`, `mcp__server`, `mcp__server__tool`.

use std::fmt;
use std::path::Path;

use globset::GlobBuilder;
use serde_json::Value;
use url::Url;

use super::paths;
use super::tools::{EDIT_TOOLS, READ_TOOLS};

/// The rules of a setting; one that does not parse is logged and left out.
pub fn parse_rules(texts: &[String]) -> Vec<ToolRule> {
    texts
        .iter()
        .filter_map(|text| match ToolRule::parse(text) {
            Ok(rule) => Some(rule),
            Err(err) => {
                tracing::warn!(%err, "permission rule ignored");
                None
            }
        })
        .collect()
}

/// One parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRule {
    tool: String,
    content: Option<String>,
}

impl ToolRule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (tool, content) = match text.split_once('(') {
            None => (text, None),
            Some((tool, rest)) => {
                let content = rest
                    .strip_suffix(')')
                    .ok_or_else(|| format!("the rule `{text}` has no closing parenthesis"))?;
                (tool.trim(), Some(content.trim().to_owned()).filter(|c| !c.is_empty()))
            }
        };
        if tool.is_empty()
            || !tool.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '*'))
        {
            return Err(format!("the rule `{text}` does not start with a tool name"));
        }
        Ok(Self { tool: tool.to_owned(), content })
    }

    /// Whether the rule names `tool` at all. `Edit` rules cover every file-editing tool and
    /// `Read` rules every file-reading one, as in the CLI; `mcp__srv` and `mcp__srv__*` cover all
    /// of a server's tools.
    pub fn names_tool(&self, tool: &str) -> bool {
        if self.tool == tool {
            return true;
        }
        if self.tool == "Edit" && EDIT_TOOLS.contains(&tool) {
            return true;
        }
        if self.tool == "Read" && READ_TOOLS.contains(&tool) {
            return true;
        }
        let server = self.tool.strip_suffix("__*").unwrap_or(&self.tool);
        server.starts_with("mcp__")
            && server.matches("__").count() == 1
            && tool.strip_prefix(server).is_some_and(|rest| rest.starts_with("__"))
    }

    /// Whether the rule covers a call of `tool` with `input`. `commands` are the call's simple
    /// Bash commands (one of them is matched at a time, see [`ToolRule::matches_command`]);
    /// `paths` are the resolved paths the call names.
    pub fn matches_call(
        &self,
        tool: &str,
        input: &Value,
        paths: &[std::path::PathBuf],
        ctx: &RuleContext,
    ) -> bool {
        if !self.names_tool(tool) {
            return false;
        }
        let Some(content) = &self.content else { return true };
        if self.tool == "Read"
            || self.tool == "Edit"
            || READ_TOOLS.contains(&self.tool.as_str())
            || EDIT_TOOLS.contains(&self.tool.as_str())
        {
            let pattern = ctx.absolute_pattern(content);
            return paths.iter().any(|path| glob_match(&pattern, &path.to_string_lossy()));
        }
        match self.tool.as_str() {
            "WebFetch" => {
                let host = input.get("url").and_then(Value::as_str).and_then(url_host);
                match (content.strip_prefix("domain:"), host) {
                    (Some(domain), Some(host)) => on_domain(&host, domain),
                    _ => false,
                }
            }
            "WebSearch" => input.get("query").and_then(Value::as_str) == Some(content.as_str()),
            _ => false,
        }
    }

    /// Whether this (Bash) rule covers one simple command.
    pub fn matches_command(&self, command: &str) -> bool {
        if self.tool != "Bash" {
            return false;
        }
        let command = command.trim();
        match &self.content {
            None => true,
            Some(content) => {
                if let Some(prefix) = content.strip_suffix(":*") {
                    return word_prefix(command, prefix.trim_end());
                }
                if let Some(prefix) = content.strip_suffix(" *")
                    && !prefix.contains('*')
                {
                    return word_prefix(command, prefix.trim_end());
                }
                if content.contains('*') {
                    return wildcard_match(content, command);
                }
                command == content
            }
        }
    }

    /// The domain of a `WebFetch(domain:…)` rule.
    pub fn web_fetch_domain(&self) -> Option<&str> {
        let content = self.content.as_deref().filter(|_| self.tool == "WebFetch")?;
        content.strip_prefix("domain:")
    }

    pub fn is_bash(&self) -> bool {
        self.tool == "Bash"
    }

    /// A bare tool name (no content): it covers every call of the tool.
    pub fn is_whole_tool(&self) -> bool {
        self.content.is_none()
    }
}

impl fmt::Display for ToolRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.content {
            Some(content) => write!(f, "{}({content})", self.tool),
            None => f.write_str(&self.tool),
        }
    }
}

/// Where relative path patterns are anchored.
pub struct RuleContext<'a> {
    /// `/pattern` and `./pattern` are relative to the workspace (the CLI: to the settings file).
    pub root: &'a Path,
    pub home: &'a Path,
}

impl RuleContext<'_> {
    /// A path pattern as an absolute glob: `//abs` is absolute, `~/x` is in the home, `/x` and
    /// `./x` are in the root, and a bare `name` matches at any depth below the root.
    fn absolute_pattern(&self, pattern: &str) -> String {
        // The root and home are literal paths: a `[` or `*` in them is no wildcard.
        let root = globset::escape(self.root.to_string_lossy().trim_end_matches('/'));
        if let Some(absolute) = pattern.strip_prefix("//") {
            format!("/{absolute}")
        } else if let Some(rest) = pattern.strip_prefix("~/") {
            format!("{}/{rest}", globset::escape(self.home.to_string_lossy().trim_end_matches('/')))
        } else if let Some(rest) = pattern.strip_prefix('/').or_else(|| pattern.strip_prefix("./"))
        {
            format!("{root}/{rest}")
        } else if pattern.contains('/') {
            format!("{root}/{pattern}")
        } else {
            format!("{root}/**/{pattern}")
        }
    }
}

/// `command` is `prefix` or starts with `prefix` followed by a word break.
fn word_prefix(command: &str, prefix: &str) -> bool {
    command == prefix
        || command.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(char::is_whitespace))
}

/// `*` matches any run of characters (spaces included).
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = match parts.split_first() {
        Some(split) => split,
        None => return text.is_empty(),
    };
    let Some(mut remaining) = text.strip_prefix(first) else { return false };
    let Some((last, middle)) = rest.split_last() else { return remaining.is_empty() };
    for part in middle {
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

/// Glob over paths, matched by `globset` in linear time: `**` crosses directories, `*` and `?`
/// stay within one component, `{a,b}` and `[ab]` as in the CLI. A pattern naming a directory
/// covers everything below it. A pattern that does not compile matches nothing.
fn glob_match(pattern: &str, path: &str) -> bool {
    let below = format!("{}/**", pattern.trim_end_matches('/'));
    [pattern, below.as_str()].into_iter().any(|pattern| {
        GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .is_ok_and(|glob| glob.compile_matcher().is_match(path))
    })
}

/// The host of a URL as a WHATWG parser (and so the fetching tool) reads it: lower-cased,
/// IDNs in punycode, `\` a path separator (`https://evil.com\@good.com/` is on `evil.com`).
pub fn url_host(url: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    url.host_str().filter(|host| !host.is_empty()).map(str::to_owned)
}

/// `host` is `domain` or one of its subdomains; `domain` is normalized as a URL host would be.
fn on_domain(host: &str, domain: &str) -> bool {
    if domain.contains(['/', '\\', '@', ':', '?', '#']) {
        return false;
    }
    let Some(domain) = url_host(&format!("https://{domain}/")) else { return false };
    host == domain || host.strip_suffix(domain.as_str()).is_some_and(|sub| sub.ends_with('.'))
}

/// The resolved paths a call names, for path rules (relative to `cwd`).
pub fn call_paths(input: &Value, cwd: &Path, home: &Path) -> Vec<std::path::PathBuf> {
    ["file_path", "notebook_path", "path"]
        .iter()
        .filter_map(|key| input.get(*key).and_then(Value::as_str))
        .filter_map(|path| paths::resolve(cwd, home, path))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;

    fn rule(text: &str) -> ToolRule {
        ToolRule::parse(text).unwrap()
    }

    #[test]
    fn parsing() {
        assert_eq!(rule("Bash").to_string(), "Bash");
        assert_eq!(rule(" Bash( cargo test:* ) ").to_string(), "Bash(cargo test:*)");
        assert_eq!(rule("Bash()").to_string(), "Bash");
        assert_eq!(rule("mcp__docs__search").to_string(), "mcp__docs__search");
        assert!(ToolRule::parse("Bash(cargo test").unwrap_err().contains("closing parenthesis"));
        assert!(ToolRule::parse("(x)").unwrap_err().contains("tool name"));
        assert!(ToolRule::parse("rm -rf /").is_err());
    }

    #[test]
    fn bash_rules() {
        let cases = [
            ("Bash", "anything at all", true),
            ("Bash(cargo test:*)", "cargo test", true),
            ("Bash(cargo test:*)", "cargo test --workspace", true),
            ("Bash(cargo test:*)", "cargo testing", false),
            ("Bash(cargo test:*)", "cargo build", false),
            ("Bash(git diff *)", "git diff HEAD", true),
            ("Bash(git diff *)", "git diff", true),
            ("Bash(git diff *)", "git differ", false),
            ("Bash(npm run *:ci)", "npm run test:ci", true),
            ("Bash(npm run *:ci)", "npm run test:dev", false),
            ("Bash(npm run build)", "npm run build", true),
            ("Bash(npm run build)", "npm run build --prod", false),
            ("Read", "cat x", false),
        ];
        for (text, command, want) in cases {
            assert_eq!(rule(text).matches_command(command), want, "{text} vs {command}");
        }
    }

    #[test]
    fn tool_families_and_mcp_servers() {
        assert!(rule("Edit").names_tool("Write"));
        assert!(rule("Edit").names_tool("NotebookEdit"));
        assert!(rule("Read").names_tool("Grep"));
        assert!(!rule("Read").names_tool("Edit"));
        assert!(rule("mcp__docs").names_tool("mcp__docs__search"));
        assert!(rule("mcp__docs__*").names_tool("mcp__docs__search"));
        assert!(!rule("mcp__docs").names_tool("mcp__docsx__search"));
        assert!(rule("mcp__docs__search").names_tool("mcp__docs__search"));
        assert!(!rule("mcp__docs__search").names_tool("mcp__docs__fetch"));
    }

    #[test]
    fn path_rules() {
        let root = PathBuf::from("/ws");
        let home = PathBuf::from("/home/u");
        let ctx = RuleContext { root: &root, home: &home };
        let matches = |text: &str, tool: &str, path: &str| {
            rule(text).matches_call(tool, &json!({}), &[PathBuf::from(path)], &ctx)
        };
        assert!(matches("Edit(src/**)", "Write", "/ws/src/a/b.rs"));
        assert!(!matches("Edit(src/**)", "Write", "/ws/tests/a.rs"));
        assert!(matches("Edit(/src/*.rs)", "Edit", "/ws/src/a.rs"));
        assert!(!matches("Edit(/src/*.rs)", "Edit", "/ws/src/a/b.rs"));
        assert!(matches("Read(.env)", "Read", "/ws/config/.env"));
        assert!(matches("Read(.env)", "Read", "/ws/.env"));
        assert!(matches("Read(//etc/**)", "Grep", "/etc/passwd"));
        assert!(matches("Read(~/.ssh)", "Read", "/home/u/.ssh/id_rsa"));
        assert!(matches("Read(secrets)", "Glob", "/ws/a/secrets"));
        assert!(!matches("Read(secrets)", "Glob", "/ws/a/secretsx"));
        assert!(!matches("Read(secrets)", "Edit", "/ws/secrets"));
    }

    /// Whether the rule `text` covers a WebFetch of `url`.
    fn fetch(text: &str, url: &str) -> bool {
        let root = PathBuf::from("/ws");
        let ctx = RuleContext { root: &root, home: &root };
        rule(text).matches_call("WebFetch", &json!({"url": url}), &[], &ctx)
    }

    #[test]
    fn web_rules() {
        assert!(fetch("WebFetch(domain:docs.rs)", "https://docs.rs/serde"));
        assert!(fetch("WebFetch(domain:rs)", "https://user@Docs.RS:443/x"));
        assert!(!fetch("WebFetch(domain:docs.rs)", "https://evil-docs.rs/"));
        assert!(!fetch("WebFetch(docs.rs)", "https://docs.rs/"));
        assert!(fetch("WebFetch", "https://anything/"));
        assert!(fetch("WebFetch(domain:Docs.RS)", "https://api.docs.rs/"));
        assert!(fetch("WebFetch(domain:bücher.de)", "https://www.xn--bcher-kva.de/"));
        assert!(!fetch("WebFetch(domain:docs.rs)", "docs.rs/serde"));
    }

    #[test]
    fn a_url_host_is_read_as_whatwg_reads_it() {
        assert_eq!(url_host("https://evil.com\\@good.com/x").as_deref(), Some("evil.com"));
        assert!(!fetch("WebFetch(domain:good.com)", "https://evil.com\\@good.com/x"));
        assert!(fetch("WebFetch(domain:evil.com)", "https://evil.com\\@good.com/x"));
        assert_eq!(url_host("https://good.com@evil.com/").as_deref(), Some("evil.com"));
        assert_eq!(url_host("HTTPS://User:pw@[::1]:8080/").as_deref(), Some("[::1]"));
        assert!(!fetch("WebFetch(domain:good.com)", "https://evilgood.com/"));
        assert!(!fetch("WebFetch(domain:good.com@evil.com)", "https://evil.com/"));
        let root = PathBuf::from("/ws");
        let ctx = RuleContext { root: &root, home: &root };
        let search = |text: &str, query: &str| {
            rule(text).matches_call("WebSearch", &json!({"query": query}), &[], &ctx)
        };
        assert!(search("WebSearch", "rust"));
        assert!(search("WebSearch(rust)", "rust"));
        assert!(!search("WebSearch(rust)", "go"));
    }

    #[test]
    fn globs_and_wildcards() {
        assert!(glob_match("/a/**/c", "/a/c"));
        assert!(glob_match("/a/**/c", "/a/b/x/c"));
        assert!(glob_match("/a/*.rs", "/a/x.rs"));
        assert!(!glob_match("/a/*.rs", "/a/b/x.rs"));
        assert!(glob_match("/a/?.rs", "/a/x.rs"));
        assert!(glob_match("/a/b", "/a/b/c/d"));
        assert!(glob_match("/a/{x,y}.rs", "/a/y.rs"));
        assert!(!glob_match("/a/[", "/a/["));
    }

    #[test]
    fn many_double_stars_on_a_long_path_finish() {
        // The old backtracking matcher took millions of steps here; globset is linear.
        let path = format!("/{}", "ab/".repeat(43));
        assert_eq!(path.len(), 130);
        let path = format!("{path}xy");
        assert!(!glob_match("/**/a*/**/b*/**/c", &path));
        assert!(glob_match("/**/a*/**/a*/**/xy", &path));
    }

    #[test]
    fn wildcards_in_the_root_are_literal() {
        let root = PathBuf::from("/w[s]");
        let home = PathBuf::from("/home/*");
        let ctx = RuleContext { root: &root, home: &home };
        let matches = |text: &str, path: &str| {
            rule(text).matches_call("Read", &json!({}), &[PathBuf::from(path)], &ctx)
        };
        assert!(matches("Read(src/**)", "/w[s]/src/a.rs"));
        assert!(!matches("Read(src/**)", "/ws/src/a.rs"));
        assert!(matches("Read(~/.ssh)", "/home/*/.ssh/id"));
        assert!(!matches("Read(~/.ssh)", "/home/u/.ssh/id"));
        assert!(wildcard_match("a*b*c", "a-b-c"));
        assert!(!wildcard_match("a*b*c", "a-c-b"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("ab*ba", "aba"));
    }
}
