//! The one redaction of secrets, applied to everything the server stores or sends: the session
//! index, transcripts, summaries, the audit log, permission questions, progress, `claude/output`,
//! errors and logs.
//!
//! [`redact`] hides:
//! - API keys by their form (`sk-ant-…`, other `sk-…` keys, GitHub, AWS, Slack and Google keys),
//!   bearer tokens, basic credentials, passwords in URLs, and values written as
//!   `api_key=…` / `"token": "…"` / `X-Api-Key: …`;
//! - the values of this process's environment variables whose names look secret
//!   ([`is_secret_name`]);
//! - every value [`register`]ed: the settings' `env` values under secret-looking names
//!   (registered when settings load and on every change). Registration only adds: a secret seen
//!   once stays hidden for the life of the process (over-redacting a stale value is harmless).
//!
//! Streamed text arrives in pieces that can split a secret; [`StreamRedactor`] holds back the
//! last word of each piece until the next one shows where it ends.

use parking_lot::RwLock;
use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";
/// Shorter values are not treated as secrets: replacing every "x" would garble text.
const MIN_SECRET_LEN: usize = 6;
/// A streamed word longer than this is passed on: no secret we know of is that long.
const MAX_HELD_BACK: usize = 4096;
/// Parts of environment variable names whose values are secrets.
const SECRET_NAME_PARTS: [&str; 8] =
    ["KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "AUTHORIZATION", "CREDENTIAL", "COOKIE"];

static REGISTERED: LazyLock<RwLock<Vec<String>>> = LazyLock::new(|| RwLock::new(Vec::new()));

/// Whether an environment variable of this name holds a secret (`*KEY*`, `*TOKEN*`, `*SECRET*`,
/// `*PASSWORD*`, `*CREDENTIAL*`, `AUTH*`, …).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("AUTH") || SECRET_NAME_PARTS.iter().any(|part| upper.contains(part))
}

/// Hide these values wherever they appear from now on.
pub fn register(secrets: impl IntoIterator<Item = String>) {
    let mut registered = REGISTERED.write();
    for secret in secrets {
        if secret.len() >= MIN_SECRET_LEN && !registered.contains(&secret) {
            registered.push(secret);
        }
    }
}

/// `text` with every known secret replaced by `[REDACTED]`.
pub fn redact(text: &str) -> Cow<'_, str> {
    redact_with(text, &[])
}

/// [`redact`], plus `extra` values (e.g. the secrets in one child's environment).
pub fn redact_with<'a>(text: &'a str, extra: &[String]) -> Cow<'a, str> {
    let mut out = redact_patterns(text);
    let registered = REGISTERED.read();
    let values = registered.iter().chain(PROCESS_SECRETS.iter()).chain(extra);
    for secret in values.filter(|secret| secret.len() >= MIN_SECRET_LEN) {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
        }
    }
    out
}

/// [`redact`] into an owned string.
pub fn redacted(text: &str) -> String {
    redact(text).into_owned()
}

/// The values of this process's secret-named environment variables (read once: the server never
/// changes its own environment). Paths and phrases are left out (a `KEYMAP=/usr/share/…` is no
/// secret, and hiding it would garble text).
static PROCESS_SECRETS: LazyLock<Vec<String>> = LazyLock::new(|| {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(name, value)| {
            is_secret_name(name)
                && value.len() >= MIN_SECRET_LEN
                && !value.starts_with('/')
                && !value.contains(char::is_whitespace)
        })
        .map(|(_, value)| value)
        .collect()
});

/// Secrets recognised by their form.
fn redact_patterns(text: &str) -> Cow<'_, str> {
    /// Whole matches that are secrets.
    static WHOLE: LazyLock<Vec<Regex>> = LazyLock::new(|| {
        [
            r"sk-ant-[A-Za-z0-9_-]+",
            r"\bsk-[A-Za-z0-9_-]{20,}",
            r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}",
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
            r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
            r"\bAIza[0-9A-Za-z_-]{35}",
            r"(?i)\bBearer\s+[A-Za-z0-9._~+/=-]+",
            r"(?i)\bBasic\s+[A-Za-z0-9+/]{8,}={0,2}",
        ]
        .iter()
        .filter_map(|pattern| Regex::new(pattern).ok())
        .collect()
    });
    /// `name = value`, `"name": "value"`, `Name: value` and `scheme://user:password@`: the value
    /// (group `value`) is the secret.
    static VALUES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
        [
            r#"(?i)\b[A-Za-z0-9_.-]*(?:api[_-]?key|token|secret|password|passwd|credential)[A-Za-z0-9_.-]*["']?\s*[:=]\s*["']?(?P<value>[^\s"'&,;<>()\[\]{}\\]+)"#,
            r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@]+:(?P<value>[^/\s@]+)@",
        ]
        .iter()
        .filter_map(|pattern| Regex::new(pattern).ok())
        .collect()
    });
    let mut out = Cow::Borrowed(text);
    for pattern in WHOLE.iter() {
        if pattern.is_match(&out) {
            out = Cow::Owned(pattern.replace_all(&out, REDACTED).into_owned());
        }
    }
    for pattern in VALUES.iter() {
        if pattern.is_match(&out) {
            let replaced = pattern.replace_all(&out, |caps: &Captures| hide_value(caps));
            if let Cow::Owned(replaced) = replaced {
                out = Cow::Owned(replaced);
            }
        }
    }
    out
}

/// The match with its `value` group hidden, unless the value cannot be a secret: a count
/// (`output_tokens=1234`), a short word, or what was already redacted.
fn hide_value(caps: &Captures) -> String {
    let whole = caps.get(0).map_or("", |m| m.as_str());
    let Some(value) = caps.name("value") else { return whole.to_owned() };
    let plain = value.as_str();
    if plain.len() < MIN_SECRET_LEN
        || plain.starts_with(REDACTED)
        || !plain.chars().any(|c| c.is_ascii_alphabetic())
    {
        return whole.to_owned();
    }
    let start = value.start() - caps.get(0).map_or(0, |m| m.start());
    format!("{}{REDACTED}{}", &whole[..start], &whole[start + plain.len()..])
}

/// Redacts a stream of text pieces without letting a secret through in two halves: the last
/// word of what arrived so far (with a `Bearer` or `name:` before it) is held back until it is
/// complete.
#[derive(Debug, Default)]
pub struct StreamRedactor {
    pending: String,
}

impl StreamRedactor {
    /// Take the next piece; returns what can be shown now (possibly empty).
    pub fn push(&mut self, piece: &str) -> String {
        self.pending.push_str(piece);
        let keep_from = hold_back_start(&self.pending);
        if keep_from == 0 && self.pending.len() <= MAX_HELD_BACK {
            return String::new();
        }
        let cut = if self.pending.len() - keep_from > MAX_HELD_BACK {
            self.pending.len()
        } else {
            keep_from
        };
        let ready: String = self.pending.drain(..cut).collect();
        redacted(&ready)
    }

    /// The end of the stream: everything still held back.
    pub fn flush(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        redacted(&rest)
    }
}

/// Where the held-back tail of `text` starts: at its last word, which may be incomplete, or at
/// the word before when that introduces a secret (`Bearer`, `Basic`, `token:`, `key =`).
fn hold_back_start(text: &str) -> usize {
    let last_word = word_start(text, text.len());
    let before = text[..last_word].trim_end();
    let previous_word = word_start(before, before.len());
    let previous = &before[previous_word..];
    let introduces = previous.eq_ignore_ascii_case("bearer")
        || previous.eq_ignore_ascii_case("basic")
        || previous.ends_with([':', '=']);
    if introduces { previous_word } else { last_word }
}

/// The start of the word that ends at `end` (after trailing non-whitespace).
fn word_start(text: &str, end: usize) -> usize {
    text[..end]
        .rfind(char::is_whitespace)
        .map_or(0, |index| index + text[index..].chars().next().map_or(1, char::len_utf8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_and_key_patterns_are_hidden() {
        register(["registered-secret-value".to_owned(), "abc".to_owned()]);
        let text = "key sk-ant-api03-XYZ, token registered-secret-value, short abc";
        assert_eq!(redact(text), "key [REDACTED], token [REDACTED], short abc");
        assert!(matches!(redact("plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn keys_and_tokens_in_any_form_are_hidden() {
        let cases = [
            (
                "key sk-ant-api03-AbC_d-9 and Authorization: Bearer abc.DEF-123= done",
                "key [REDACTED] and Authorization: [REDACTED] done",
            ),
            ("openai sk-proj-abcdefghijklmnopqrstuvwxyz", "openai [REDACTED]"),
            ("gh ghp_abcdefghijklmnopqrstuvwxyz0123", "gh [REDACTED]"),
            ("aws AKIAABCDEFGHIJKLMNOP.", "aws [REDACTED]."),
            ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: [REDACTED]"),
            ("export MY_SERVICE_TOKEN=tok-abc123", "export MY_SERVICE_TOKEN=[REDACTED]"),
            (r#"{"api_key": "k3y-value", "n": 1}"#, r#"{"api_key": "[REDACTED]", "n": 1}"#),
            ("x-api-key: abcdef123", "x-api-key: [REDACTED]"),
            ("git clone https://me:hunter22@host/r", "git clone https://me:[REDACTED]@host/r"),
            // Counts and short words are no secrets.
            ("output_tokens=123456 token: none", "output_tokens=123456 token: none"),
            ("nothing secret here", "nothing secret here"),
        ];
        for (text, want) in cases {
            assert_eq!(redact(text), want, "{text}");
        }
    }

    #[test]
    fn extra_values_are_hidden_too() {
        let secrets = vec!["my-private-key".to_owned(), "x".to_owned()];
        assert_eq!(redact_with("use my-private-key x", &secrets), "use [REDACTED] x");
    }

    #[test]
    fn secret_names() {
        for name in ["ANTHROPIC_API_KEY", "my_service_token", "DB_PASSWORD", "AUTH_HEADER"] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["HOME", "PATH", "HTTPS_PROXY", "CLAUDE_CONFIG_DIR"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn a_secret_split_across_pieces_never_shows() {
        let secret = "sk-ant-api03-SPLITSECRET_value";
        let text = format!(
            "Here is {secret} and Bearer abc.def-123 end, token: tok-SPLITTOKEN.\nNext line"
        );
        for piece_len in 1..=text.len() {
            let mut redactor = StreamRedactor::default();
            let mut shown = String::new();
            let chars: Vec<char> = text.chars().collect();
            for piece in chars.chunks(piece_len) {
                let piece: String = piece.iter().collect();
                let out = redactor.push(&piece);
                assert!(
                    !out.contains("SPLITSECRET")
                        && !out.contains("abc.def")
                        && !out.contains("SPLITTOKEN"),
                    "{out:?}"
                );
                shown.push_str(&out);
            }
            shown.push_str(&redactor.flush());
            assert_eq!(
                shown, "Here is [REDACTED] and [REDACTED] end, token: [REDACTED]\nNext line",
                "pieces of {piece_len}"
            );
        }
    }

    #[test]
    fn text_flows_once_words_are_complete() {
        let mut redactor = StreamRedactor::default();
        assert_eq!(redactor.push("Hello wor"), "Hello ");
        assert_eq!(redactor.push("ld and more"), "world and ");
        assert_eq!(redactor.push(" Bearer"), "more ");
        assert_eq!(redactor.push(" tok"), "");
        assert_eq!(redactor.flush(), "[REDACTED]");
        assert_eq!(redactor.flush(), "");
    }

    #[test]
    fn an_endless_word_is_not_held_forever() {
        let mut redactor = StreamRedactor::default();
        let long = "x".repeat(MAX_HELD_BACK + 1);
        assert_eq!(redactor.push(&long), long);
    }
}
