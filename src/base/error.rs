//! Errors as the client sees them: a stable code in the JSON-RPC server range and
//! `data: {kind, retryable, hint}`. The table is mirrored in README.md ("Errors").

use std::fmt;

use crate::base::secrets::redacted;

/// One row of the error table: a stable kind, its code, and whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorKind {
    pub name: &'static str,
    pub code: i64,
    pub retryable: bool,
}

macro_rules! kinds {
    ($($ident:ident = ($name:literal, $code:literal, $retryable:literal);)*) => {
        impl ErrorKind {
            $(pub const $ident: ErrorKind = ErrorKind { name: $name, code: $code, retryable: $retryable };)*
            /// Every kind, in code order (the README table is generated from this order).
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$ident),*];
        }
    };
}

kinds! {
    CLI_NOT_FOUND = ("cli_not_found", -32001, false);
    CLI_TOO_OLD = ("cli_too_old", -32002, false);
    AUTH_FAILED = ("auth_failed", -32003, false);
    RATE_LIMITED = ("rate_limited", -32004, true);
    OVERLOADED = ("overloaded", -32005, true);
    API_ERROR = ("api_error", -32006, true);
    PROMPT_TOO_LONG = ("prompt_too_long", -32007, false);
    MAX_TURNS = ("max_turns", -32008, false);
    BUDGET_EXCEEDED = ("budget_exceeded", -32009, false);
    STRUCTURED_OUTPUT_FAILED = ("structured_output_failed", -32010, true);
    TIMEOUT = ("timeout", -32011, true);
    PROCESS_CRASHED = ("process_crashed", -32012, true);
    PROTOCOL = ("protocol", -32013, true);
    FILE_ACCESS = ("file_access", -32014, false);
    EDIT_CONFLICT = ("edit_conflict", -32015, true);
    STAGING_FAILED = ("staging_failed", -32016, false);
    UNSUPPORTED_BY_CLIENT = ("unsupported_by_client", -32017, false);
    SANDBOX_VIOLATION = ("sandbox_violation", -32018, false);
    CIRCUIT_OPEN = ("circuit_open", -32019, true);
    SESSION_NOT_FOUND = ("session_not_found", -32020, false);
    SANDBOX_UNAVAILABLE = ("sandbox_unavailable", -32021, false);
    PARSE_ERROR = ("parse_error", -32700, false);
    INVALID_REQUEST = ("invalid_request", -32600, false);
    METHOD_NOT_FOUND = ("method_not_found", -32601, false);
    INVALID_PARAMS = ("invalid_params", -32602, false);
    INTERNAL = ("internal", -32603, false);
    CANCELLED = ("cancelled", -32800, false);
}

impl ErrorKind {
    pub fn by_name(name: &str) -> Option<ErrorKind> {
        Self::ALL.iter().copied().find(|kind| kind.name == name)
    }
}

/// An error on its way to the client.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerError {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: String,
}

impl ServerError {
    pub fn new(kind: ErrorKind, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self { kind, message: message.into(), hint: hint.into() }
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(ErrorKind::INVALID_PARAMS, message.clone(), "check the request's parameters")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INTERNAL, message, "this is a bug in claude-lsp; please report it")
    }

    pub fn cancelled() -> Self {
        Self::new(ErrorKind::CANCELLED, "the run was cancelled", "nothing was applied")
    }

    pub fn file_access(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FILE_ACCESS, message, "open the file in the editor, or check its path")
    }

    /// The one-line text shown with window/showMessage on the command path (redacted).
    pub fn user_message(&self) -> String {
        let text = if self.hint.is_empty() {
            format!("Claude: {}", self.message)
        } else {
            format!("Claude: {} ({})", self.message, self.hint)
        };
        redacted(&text)
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.kind.name)
    }
}

impl std::error::Error for ServerError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_are_unique() {
        for (i, a) in ErrorKind::ALL.iter().enumerate() {
            for b in &ErrorKind::ALL[i + 1..] {
                assert_ne!(a.code, b.code, "{} and {}", a.name, b.name);
                assert_ne!(a.name, b.name);
            }
        }
    }

    /// README.md's "Errors" table is the client's reference: one row per kind, in code order,
    /// with the code, the kind and whether it is retryable.
    #[test]
    fn the_readme_error_table_lists_every_kind() {
        let readme = include_str!("../../README.md");
        let section =
            readme.split("\n## Errors\n").nth(1).expect("README.md has no \"## Errors\" section");
        let rows: Vec<Vec<&str>> = section
            .lines()
            .skip_while(|line| !line.starts_with("| code |"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .map(|line| line.split('|').map(str::trim).collect())
            .collect();
        let listed: Vec<(i64, &str, bool)> = rows
            .iter()
            .map(|cells| {
                let code = cells[1].parse().unwrap_or_else(|_| panic!("bad code in {cells:?}"));
                (code, cells[2].trim_matches('`'), cells[3] == "yes")
            })
            .collect();
        let expected: Vec<(i64, &str, bool)> =
            ErrorKind::ALL.iter().map(|kind| (kind.code, kind.name, kind.retryable)).collect();
        assert_eq!(
            listed, expected,
            "update the Errors table in README.md to match ErrorKind::ALL"
        );
    }

    #[test]
    fn server_defined_codes_stay_in_the_server_range() {
        for kind in ErrorKind::ALL {
            let standard = [-32700, -32600, -32601, -32602, -32603, -32800].contains(&kind.code);
            assert!(standard || (-32099..=-32000).contains(&kind.code), "{}", kind.name);
        }
    }
}
