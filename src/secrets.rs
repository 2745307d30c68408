//! Redaction of secrets from everything the server writes: logs, progress, `claude/output`,
//! error messages and answers.
//!
//! [`redact`] hides what [`crate::claude::errors::redact`] hides (API keys `sk-ant-…`, bearer
//! tokens, the values of `ANTHROPIC_API_KEY` & co. in this process's environment) plus every
//! secret registered with [`register`]: the values the settings' `env` gives the CLI under
//! secret-looking names. Registration only adds (a secret seen once stays hidden for the life of
//! the process; over-redacting a stale value is harmless).
//!
//! Streamed text arrives in pieces that can split a secret; [`StreamRedactor`] holds back the
//! last word of each piece until the next one shows where it ends.

use std::borrow::Cow;
use std::sync::{LazyLock, RwLock};

use crate::claude::errors::redact_secrets;

/// Shorter values are not treated as secrets (the driver's redaction ignores them as well).
const MIN_SECRET_LEN: usize = 6;
/// A streamed word longer than this is passed on: no secret we know of is that long.
const MAX_HELD_BACK: usize = 4096;

static REGISTERED: LazyLock<RwLock<Vec<String>>> = LazyLock::new(|| RwLock::new(Vec::new()));

/// Hide these values wherever they appear from now on.
pub fn register(secrets: impl IntoIterator<Item = String>) {
    let mut registered = REGISTERED.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    for secret in secrets {
        if secret.len() >= MIN_SECRET_LEN && !registered.contains(&secret) {
            registered.push(secret);
        }
    }
}

/// `text` with every known secret replaced by `[REDACTED]`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let registered = REGISTERED.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let env_secrets = crate::claude::errors::SECRET_ENV_VARS
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .chain(registered.iter().cloned())
        .collect::<Vec<String>>();
    redact_secrets(text, &env_secrets)
}

/// [`redact`] into an owned string.
pub fn redacted(text: &str) -> String {
    redact(text).into_owned()
}

/// Redacts a stream of text pieces without letting a secret through in two halves: the last
/// word of what arrived so far (with a `Bearer` before it) is held back until it is complete.
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
/// the word before when that is `Bearer` (the token after it is part of the secret).
fn hold_back_start(text: &str) -> usize {
    let last_word = word_start(text, text.len());
    let before = text[..last_word].trim_end();
    let previous_word = word_start(before, before.len());
    if before[previous_word..].eq_ignore_ascii_case("bearer") { previous_word } else { last_word }
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
    fn a_secret_split_across_pieces_never_shows() {
        let secret = "sk-ant-api03-SPLITSECRET_value";
        let text = format!("Here is {secret} and Bearer abc.def-123 end.\nNext line");
        for piece_len in 1..=text.len() {
            let mut redactor = StreamRedactor::default();
            let mut shown = String::new();
            let chars: Vec<char> = text.chars().collect();
            for piece in chars.chunks(piece_len) {
                let piece: String = piece.iter().collect();
                let out = redactor.push(&piece);
                assert!(!out.contains("SPLITSECRET") && !out.contains("abc.def"), "{out:?}");
                shown.push_str(&out);
            }
            shown.push_str(&redactor.flush());
            assert_eq!(
                shown, "Here is [REDACTED] and [REDACTED] end.\nNext line",
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
