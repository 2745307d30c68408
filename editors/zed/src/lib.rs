//! Zed extension for claude-lsp: starts the `claude-lsp` language server for the languages listed
//! in `extension.toml` and hands it the user's settings.
//!
//! Zed settings (`settings.json`):
//! ```json
//! "lsp": {
//!   "claude-lsp": {
//!     "binary": { "path": "/path/to/claude-lsp", "arguments": [], "env": {} },
//!     "initialization_options": { "model": "sonnet" },
//!     "settings": { "timeoutSecs": 600 }
//!   }
//! }
//! ```
//! `initialization_options` go to `initialize`; `settings` answer the server's
//! `workspace/configuration` request for the `claude` section.

use zed_extension_api::{
    self as zed, EnvVars, LanguageServerId, Result, serde_json::Value, settings::CommandSettings,
    settings::LspSettings,
};

/// The executable looked up on the worktree's PATH when no `binary.path` is set.
const SERVER_BINARY: &str = "claude-lsp";
/// The section the server asks for with `workspace/configuration`.
const CONFIGURATION_SECTION: &str = "claude";

struct ClaudeLspExtension;

/// The command that starts the server: `binary.path` from the settings, else `claude-lsp` found on
/// the worktree's PATH. The worktree's shell environment is passed on (the server and the `claude`
/// CLI it runs need PATH, HOME and the user's API settings), with `binary.env` on top.
fn server_command(
    binary: Option<CommandSettings>,
    found_on_path: Option<String>,
    shell_env: EnvVars,
) -> Result<zed::Command> {
    let (configured_path, arguments, extra_env) = match binary {
        Some(binary) => (binary.path, binary.arguments, binary.env),
        None => (None, None, None),
    };
    let command = configured_path.or(found_on_path).ok_or_else(|| {
        format!(
            "`{SERVER_BINARY}` was not found on PATH. Install it (`cargo install --path .` in the \
             claude-lsp repository) or set `lsp.{SERVER_BINARY}.binary.path` in Zed's settings."
        )
    })?;
    let mut env = shell_env;
    if let Some(extra_env) = extra_env {
        let mut extra: Vec<(String, String)> = extra_env.into_iter().collect();
        extra.sort();
        for (key, value) in extra {
            env.retain(|(existing, _)| *existing != key);
            env.push((key, value));
        }
    }
    Ok(zed::Command { command, args: arguments.unwrap_or_default(), env })
}

/// What the server gets for `workspace/configuration`: the user's settings under `claude`.
fn workspace_configuration(settings: Option<Value>) -> Option<Value> {
    let settings = settings?;
    let mut configuration = zed::serde_json::Map::new();
    configuration.insert(CONFIGURATION_SECTION.to_owned(), settings);
    Some(Value::Object(configuration))
}

fn lsp_settings(language_server_id: &LanguageServerId, worktree: &zed::Worktree) -> LspSettings {
    // Unreadable settings are the same as none: the server has defaults for everything.
    LspSettings::for_worktree(language_server_id.as_ref(), worktree).unwrap_or_default()
}

impl zed::Extension for ClaudeLspExtension {
    fn new() -> Self {
        Self
    }

    fn language_server_command(
        &mut self,
        language_server_id: &LanguageServerId,
        worktree: &zed::Worktree,
    ) -> Result<zed::Command> {
        let binary = lsp_settings(language_server_id, worktree).binary;
        let needs_lookup = binary.as_ref().is_none_or(|binary| binary.path.is_none());
        let found_on_path = if needs_lookup { worktree.which(SERVER_BINARY) } else { None };
        server_command(binary, found_on_path, worktree.shell_env())
    }

    fn language_server_initialization_options(
        &mut self,
        language_server_id: &LanguageServerId,
        worktree: &zed::Worktree,
    ) -> Result<Option<Value>> {
        Ok(lsp_settings(language_server_id, worktree).initialization_options)
    }

    fn language_server_workspace_configuration(
        &mut self,
        language_server_id: &LanguageServerId,
        worktree: &zed::Worktree,
    ) -> Result<Option<Value>> {
        Ok(workspace_configuration(lsp_settings(language_server_id, worktree).settings))
    }
}

zed::register_extension!(ClaudeLspExtension);

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use zed_extension_api::serde_json::json;

    use super::*;

    fn shell_env() -> EnvVars {
        vec![("PATH".to_owned(), "/usr/bin".to_owned()), ("HOME".to_owned(), "/home/u".to_owned())]
    }

    #[test]
    fn the_server_is_found_on_path_by_default() {
        let command =
            server_command(None, Some("/usr/bin/claude-lsp".to_owned()), shell_env()).unwrap();
        assert_eq!(command.command, "/usr/bin/claude-lsp");
        assert!(command.args.is_empty());
        assert_eq!(command.env, shell_env());
    }

    #[test]
    fn a_configured_binary_wins_and_its_env_overrides_the_shell() {
        let binary = CommandSettings {
            path: Some("/opt/claude-lsp".to_owned()),
            arguments: Some(vec!["--stdio".to_owned()]),
            env: Some(HashMap::from([("HOME".to_owned(), "/tmp/h".to_owned())])),
        };
        let command =
            server_command(Some(binary), Some("/usr/bin/claude-lsp".to_owned()), shell_env())
                .unwrap();
        assert_eq!(command.command, "/opt/claude-lsp");
        assert_eq!(command.args, vec!["--stdio"]);
        assert_eq!(
            command.env,
            vec![
                ("PATH".to_owned(), "/usr/bin".to_owned()),
                ("HOME".to_owned(), "/tmp/h".to_owned())
            ]
        );
    }

    #[test]
    fn a_missing_server_says_how_to_install_or_configure_it() {
        let err = server_command(None, None, shell_env()).unwrap_err();
        assert!(err.contains("cargo install"), "{err}");
        assert!(err.contains("lsp.claude-lsp.binary.path"), "{err}");
    }

    #[test]
    fn settings_answer_the_claude_configuration_section() {
        assert_eq!(
            workspace_configuration(Some(json!({ "timeoutSecs": 600 }))),
            Some(json!({ "claude": { "timeoutSecs": 600 } }))
        );
        assert_eq!(workspace_configuration(None), None);
    }
}
