//! Parsing through [`parse_settings`](super::parse::parse_settings): every field, the `claude`
//! wrapper, and each kind of bad value (wrong type, out of range, unknown name, NUL, bad list
//! element) costing only its own field, with the warning the user sees. And the redaction of
//! secrets in `Debug` and `Serialize`, shown on settings with every field set (here, since the
//! fixtures import the schema, whose `Debug` and `Serialize` use `redaction.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use pretty_assertions::assert_eq;
use serde_json::json;

use super::parse::parse_settings;
use super::schema::{Delivery, SETTING_NAMES, Settings};
use super::test_fixtures::{full_settings, full_settings_json, parse};
use crate::base::logging::LogLevel;

#[test]
fn absent_null_and_empty_give_defaults_without_warnings() {
    assert_eq!(parse_settings(None), (Settings::default(), Vec::new()));
    for value in [json!(null), json!({}), json!({"claude": null}), json!({"claude": {}})] {
        assert_eq!(parse(value.clone()), (Settings::default(), Vec::new()), "{value}");
    }
}

#[test]
fn every_field_is_parsed() {
    assert_eq!(parse(full_settings_json()), (full_settings(), Vec::new()));
}

#[test]
fn the_claude_key_may_wrap_the_fields() {
    assert_eq!(parse(json!({"claude": full_settings_json()})), (full_settings(), Vec::new()));
}

#[test]
fn keys_next_to_the_claude_section_are_reported() {
    let (settings, warnings) = parse(json!({"claude": {"model": "m"}, "editor": {"x": 1}}));
    assert_eq!(settings.model.as_deref(), Some("m"));
    assert_eq!(warnings, ["editor: unknown setting next to the claude section, ignored"]);
}

#[test]
fn every_setting_name_is_known() {
    for name in SETTING_NAMES {
        let (_, warnings) = parse(json!({ name: null }));
        assert_eq!(warnings, Vec::<String>::new(), "{name}");
    }
}

#[test]
fn a_value_that_is_not_an_object_gives_one_warning_and_defaults() {
    let cases = [
        (json!(42), "claude: expected an object, got 42; using defaults"),
        (json!("fast"), "claude: expected an object, got \"fast\"; using defaults"),
        (json!([1, 2]), "claude: expected an object, got [1,2]; using defaults"),
        (json!({"claude": true}), "claude: expected an object, got true; using defaults"),
    ];
    for (value, expected) in cases {
        assert_eq!(parse(value), (Settings::default(), vec![expected.to_owned()]));
    }
}

#[test]
fn wrong_types_fall_back_to_the_default_with_a_warning() {
    let cases = [
        (
            json!({"timeoutSecs": "abc"}),
            r#"claude.timeoutSecs: expected a positive integer, got "abc"; using 300"#,
        ),
        (
            json!({"timeoutSecs": 2.5}),
            "claude.timeoutSecs: expected a positive integer, got 2.5; using 300",
        ),
        (
            json!({"maxRetries": "3"}),
            r#"claude.maxRetries: expected a non-negative integer, got "3"; using 3"#,
        ),
        (json!({"model": 42}), "claude.model: expected a string, got 42; leaving it unset"),
        (
            json!({"maxTurns": true}),
            "claude.maxTurns: expected a positive integer, got true; leaving it unset",
        ),
        (
            json!({"cliPath": ["claude"]}),
            r#"claude.cliPath: expected a string, got ["claude"]; leaving it unset"#,
        ),
        (
            json!({"allowedTools": "Read"}),
            r#"claude.allowedTools: expected a list, got "Read"; using an empty list"#,
        ),
        (
            json!({"logLevel": "loud"}),
            r#"claude.logLevel: expected one of off, error, warn, info, debug, trace, got "loud"; using info"#,
        ),
        (
            json!({"logLevel": 3}),
            "claude.logLevel: expected one of off, error, warn, info, debug, trace, got 3; using info",
        ),
        (
            json!({"maxBudgetUsd": "5"}),
            r#"claude.maxBudgetUsd: expected a positive number of US dollars, got "5"; leaving it unset"#,
        ),
        (
            json!({"permissionMode": "yolo"}),
            r#"claude.permissionMode: expected one of default, acceptEdits, plan, bypassPermissions, dontAsk (or manual), got "yolo"; leaving it unset"#,
        ),
        (
            json!({"mcpServers": "{\"x\":{}}"}),
            "claude.mcpServers: expected an object of server configs, got a string; using none",
        ),
        (
            json!({"mcpServers": {"x": "cmd"}}),
            "claude.mcpServers.x: expected an object (a server config), got a string; server ignored",
        ),
        (
            json!({"env": ["A=1"]}),
            "claude.env: expected an object of strings, got a list; using no extra variables",
        ),
        (
            json!({"appendSystemPrompt": {"text": "x"}}),
            r#"claude.appendSystemPrompt: expected a string, got {"text":"x"}; leaving it unset"#,
        ),
    ];
    for (value, expected) in cases {
        let (settings, warnings) = parse(value.clone());
        assert_eq!(warnings, [expected], "{value}");
        assert_eq!(settings, Settings::default(), "{value}");
    }
}

#[test]
fn one_bad_field_does_not_discard_the_others() {
    let (settings, warnings) =
        parse(json!({"model": "m", "timeoutSecs": "abc", "maxConcurrent": 8, "env": {"A": "1"}}));
    assert_eq!(warnings.len(), 1);
    assert_eq!(settings.model.as_deref(), Some("m"));
    assert_eq!(settings.timeout_secs, 300);
    assert_eq!(settings.max_concurrent, 8);
    assert_eq!(settings.env, BTreeMap::from([("A".to_owned(), "1".to_owned())]));
}

#[test]
fn long_bad_values_are_cut_short_in_warnings() {
    let (_, warnings) = parse(json!({"model": ["x".repeat(500)]}));
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains('…'), "{}", warnings[0]);
    assert!(warnings[0].len() < 150, "{}", warnings[0]);
}

#[test]
fn out_of_range_values_fall_back_to_the_default() {
    let cases = [
        (
            json!({"maxConcurrent": 0}),
            "claude.maxConcurrent: expected an integer from 1 to 64, got 0; using 4",
        ),
        (
            json!({"maxConcurrent": 1000}),
            "claude.maxConcurrent: expected an integer from 1 to 64, got 1000; using 4",
        ),
        (
            json!({"timeoutSecs": 0}),
            "claude.timeoutSecs: expected an integer from 1 to 604800, got 0; using 300",
        ),
        (
            json!({"timeoutSecs": -5}),
            "claude.timeoutSecs: expected an integer from 1 to 604800, got -5; using 300",
        ),
        (
            json!({"timeoutSecs": 1e300}),
            "claude.timeoutSecs: expected an integer from 1 to 604800, got 1e+300; using 300",
        ),
        (
            json!({"idleTimeoutSecs": 18446744073709551615u64}),
            "claude.idleTimeoutSecs: expected an integer from 1 to 604800, got 18446744073709551615; using 120",
        ),
        (
            json!({"maxTurns": 0}),
            "claude.maxTurns: expected an integer from 1 to 4294967295, got 0; leaving it unset",
        ),
        (
            json!({"maxRetries": 11}),
            "claude.maxRetries: expected an integer from 0 to 10, got 11; using 3",
        ),
        (
            json!({"warmPool": 17}),
            "claude.warmPool: expected an integer from 0 to 16, got 17; using 1",
        ),
        (
            json!({"maxBudgetUsd": -1}),
            "claude.maxBudgetUsd: expected a positive number of US dollars, got -1; leaving it unset",
        ),
        (
            json!({"dailyBudgetUsd": 0}),
            "claude.dailyBudgetUsd: expected a positive number of US dollars, got 0; leaving it unset",
        ),
        (
            json!({"requestsPerMinute": 0}),
            "claude.requestsPerMinute: expected an integer from 1 to 10000, got 0; leaving it unset",
        ),
    ];
    for (value, expected) in cases {
        let (settings, warnings) = parse(value.clone());
        assert_eq!(warnings, [expected], "{value}");
        assert_eq!(settings, Settings::default(), "{value}");
    }
}

#[test]
fn range_edges_and_integral_floats_are_accepted() {
    let (settings, warnings) = parse(json!({
        "timeoutSecs": 300.0, "maxConcurrent": 64, "warmPool": 0, "maxRetries": 0,
        "maxRetriesCli": 10, "idleTimeoutSecs": 604800,
    }));
    assert_eq!(warnings, Vec::<String>::new());
    assert_eq!(settings.timeout_secs, 300);
    assert_eq!(settings.max_concurrent, 64);
    assert_eq!(settings.warm_pool, 0);
    assert_eq!(settings.max_retries, 0);
    assert_eq!(settings.max_retries_cli, 10);
    assert_eq!(settings.idle_timeout(), Duration::from_secs(604800));
}

#[test]
fn unknown_fields_are_ignored_with_a_warning_and_a_hint_for_near_misses() {
    let (settings, warnings) = parse(json!({
        "fooBar": 1, "timeout_secs": 10, "MODEL": "m", "claude.maxTurns": 3, "model": "real",
    }));
    assert_eq!(settings.model.as_deref(), Some("real"));
    assert_eq!(settings.timeout_secs, 300);
    let mut warnings = warnings;
    warnings.sort();
    assert_eq!(
        warnings,
        [
            "claude.MODEL: unknown setting, ignored (did you mean claude.model?)",
            "claude.claude.maxTurns: unknown setting, ignored (did you mean claude.maxTurns?)",
            "claude.fooBar: unknown setting, ignored",
            "claude.timeout_secs: unknown setting, ignored (did you mean claude.timeoutSecs?)",
        ]
    );
}

#[test]
fn the_vscode_server_path_setting_is_not_reported() {
    assert_eq!(
        parse(json!({"serverPath": "/usr/bin/claude-lsp"})),
        (Settings::default(), Vec::new())
    );
}

#[test]
fn empty_strings_mean_unset() {
    let (settings, warnings) = parse(json!({
        "cliPath": "", "model": "  ", "fallbackModel": "", "appendSystemPrompt": "\n",
        "logFile": "", "permissionMode": "",
    }));
    assert_eq!((settings, warnings), (Settings::default(), Vec::new()));
}

#[test]
fn names_are_trimmed_but_free_text_is_kept() {
    let (settings, _) = parse(json!({"model": " opus ", "appendSystemPrompt": "  Be terse.  "}));
    assert_eq!(settings.model.as_deref(), Some("opus"));
    assert_eq!(settings.append_system_prompt.as_deref(), Some("  Be terse.  "));
}

#[test]
fn nul_characters_are_refused_because_they_cannot_reach_argv() {
    let (settings, warnings) =
        parse(json!({"model": "a\u{0}b", "allowedTools": ["Read", "E\u{0}"]}));
    assert_eq!(settings.model, None);
    assert_eq!(settings.allowed_tools, ["Read"]);
    assert_eq!(
        warnings,
        [
            "claude.allowedTools[1]: contains a NUL character; ignored",
            "claude.model: contains a NUL character; leaving it unset",
        ]
    );
}

#[test]
fn bad_list_elements_are_dropped_one_by_one() {
    let (settings, warnings) = parse(json!({"allowedTools": ["Read", 7, "", null, " Edit "]}));
    assert_eq!(settings.allowed_tools, ["Read", "Edit"]);
    assert_eq!(
        warnings,
        [
            "claude.allowedTools[1]: expected a string, got 7; ignored",
            "claude.allowedTools[3]: expected a string, got null; ignored",
        ]
    );
}

#[test]
fn paths_expand_the_home_directory_and_must_be_absolute_where_it_matters() {
    let home = dirs::home_dir().expect("the test machine has a home directory");
    let (settings, warnings) = parse(json!({
        "cliPath": "~/.local/bin/claude",
        "logFile": "logs/claude.log",
        "additionalDirectories": ["~", "../shared", "/srv/data"],
    }));
    assert_eq!(settings.cli_path, Some(home.join(".local/bin/claude")));
    assert_eq!(settings.log_file, None);
    assert_eq!(settings.additional_directories, [home, PathBuf::from("/srv/data")]);
    assert_eq!(
        warnings,
        [
            r#"claude.additionalDirectories[1]: expected an absolute path, got "../shared"; ignored"#,
            r#"claude.logFile: expected an absolute path, got "logs/claude.log"; leaving it unset"#,
        ]
    );
}

#[test]
fn a_bare_command_name_is_a_valid_cli_path() {
    let (settings, warnings) = parse(json!({"cliPath": "claude"}));
    assert_eq!((settings.cli_path, warnings), (Some(PathBuf::from("claude")), Vec::new()));
}

#[test]
fn log_levels_are_case_insensitive() {
    for (name, level) in
        [("WARN", LogLevel::Warn), ("warning", LogLevel::Warn), ("Off", LogLevel::Off)]
    {
        assert_eq!(parse(json!({"logLevel": name})).0.log_level, level, "{name}");
    }
    assert_eq!(LogLevel::Trace.to_string(), "trace");
}

#[test]
fn delivery_is_apply_or_review_and_anything_else_warns() {
    assert_eq!(parse(json!({})).0.delivery, Delivery::Apply);
    assert_eq!(parse(json!({"delivery": "Review"})).0.delivery, Delivery::Review);
    let (settings, warnings) = parse(json!({"delivery": "hunks"}));
    assert_eq!(settings.delivery, Delivery::Apply);
    assert_eq!(
        warnings,
        ["claude.delivery: expected \"apply\" or \"review\", got \"hunks\"; using apply"]
    );
}

#[test]
fn both_spellings_of_the_manual_permission_mode_are_accepted() {
    let cases = [
        ("default", "default"),
        ("manual", "default"),
        ("plan", "plan"),
        ("acceptEdits", "acceptEdits"),
        ("bypassPermissions", "bypassPermissions"),
        ("dontAsk", "dontAsk"),
    ];
    for (given, stored) in cases {
        let expected = Settings { permission_mode: Some(stored.to_owned()), ..Settings::default() };
        assert_eq!(parse(json!({"permissionMode": given})), (expected, Vec::new()), "{given}");
    }
}

#[test]
fn env_takes_scalars_as_text_and_never_quotes_values_in_warnings() {
    let (settings, warnings) = parse(json!({"env": {
        "DEBUG": 1, "VERBOSE": true, "NAME": "x", "": "empty", "A=B": "eq",
        "GITHUB_TOKEN": ["ghp_leaked"], "API_KEY": null,
    }}));
    assert_eq!(
        settings.env,
        BTreeMap::from([
            ("DEBUG".to_owned(), "1".to_owned()),
            ("NAME".to_owned(), "x".to_owned()),
            ("VERBOSE".to_owned(), "true".to_owned()),
        ])
    );
    let mut warnings = warnings;
    warnings.sort();
    assert_eq!(
        warnings,
        [
            "claude.env.: not a valid variable name (empty, or contains '=' or NUL); ignored",
            "claude.env.A=B: not a valid variable name (empty, or contains '=' or NUL); ignored",
            "claude.env.API_KEY: expected a string, got null; ignored",
            "claude.env.GITHUB_TOKEN: expected a string, got a list; ignored",
        ]
    );
    assert!(warnings.iter().all(|warning| !warning.contains("ghp_leaked")));
}

#[test]
fn mcp_servers_accept_the_content_of_an_mcp_json_file() {
    let servers = json!({"fs": {"command": "fs-mcp"}});
    let (settings, warnings) = parse(json!({"mcpServers": {"mcpServers": servers.clone()}}));
    assert_eq!((settings.mcp_servers, warnings), (Some(servers), Vec::new()));
    let (settings, warnings) = parse(json!({"mcpServers": {}}));
    assert_eq!((settings.mcp_servers, warnings), (None, Vec::new()));
}

#[test]
fn a_bad_agent_is_left_out_with_a_warning_and_the_others_kept() {
    let (settings, warnings) = parse(json!({"agents": {
        "good": {"description": "Reviews", "prompt": "Review.", "color": "blue"},
        "no_prompt": {"description": "x"},
        "bad_tools": {"description": "x", "prompt": "y", "tools": "Read"},
        "not_an_object": "prompt",
    }}));
    assert_eq!(
        settings.agents,
        Some(json!({"good": {"description": "Reviews", "prompt": "Review.", "color": "blue"}}))
    );
    assert_eq!(
        warnings,
        [
            "claude.agents.bad_tools: `tools` must be a list of tool names, got \"Read\"; agent ignored",
            "claude.agents.no_prompt: `prompt` is missing; agent ignored",
            "claude.agents.not_an_object: expected an object {description, prompt, tools?, model?}, got \"prompt\"; agent ignored",
        ]
    );
    let (settings, warnings) = parse(json!({"agents": ["reviewer"], "systemPrompt": 3}));
    assert_eq!((settings.agents, settings.system_prompt), (None, None));
    assert_eq!(
        warnings,
        [
            "claude.agents: expected an object of agents by name, got [\"reviewer\"]; using none",
            "claude.systemPrompt: expected a string, got 3; leaving it unset",
        ]
    );
}

#[test]
fn debug_redacts_secret_env_values_and_mcp_configs() {
    let mut settings = full_settings();
    settings.env.insert("GITHUB_TOKEN".into(), "ghp_tokenvalue".into());
    settings.env.insert("db_password".into(), "hunter2".into());
    settings.env.insert("CLIENT_SECRET".into(), "shh".into());
    settings.mcp_servers = Some(
        json!({"github": {"env": {"GITHUB_PAT": "ghp_in_mcp"}, "args": ["--auth", "ghp_arg"]}}),
    );
    for text in [format!("{settings:?}"), format!("{settings:#?}")] {
        for secret in ["sk-ant-secret", "ghp_tokenvalue", "hunter2", "shh", "ghp_in_mcp", "ghp_arg"]
        {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        for visible in [
            "ANTHROPIC_API_KEY",
            "GITHUB_TOKEN",
            "<redacted>",
            "http://proxy:3128",
            "\"github\"",
            "claude-opus-4",
        ] {
            assert!(text.contains(visible), "{visible} missing from {text}");
        }
    }
}

#[test]
fn serialize_redacts_secrets_too() {
    let mut settings = full_settings();
    settings.mcp_servers = Some(
        json!({"api": {"url": "https://x", "headers": {"Authorization": "Bearer abc"}, "env": {"API_KEY": "k1"}}}),
    );
    let value = serde_json::to_value(&settings).unwrap();
    assert_eq!(
        value["env"],
        json!({"ANTHROPIC_API_KEY": "<redacted>", "HTTPS_PROXY": "http://proxy:3128"})
    );
    assert_eq!(
        value["mcpServers"],
        json!({"api": {"url": "https://x", "headers": {"Authorization": "<redacted>"}, "env": {"API_KEY": "<redacted>"}}})
    );
    assert_eq!(value["timeoutSecs"], json!(600));
    assert_eq!(value["logLevel"], json!("debug"));
}
