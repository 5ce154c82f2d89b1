//! Rules for agent slugs and secret key names, shared by the manifest, the CLI and the
//! platform client (which validates before it sends anything).

use thiserror::Error;

/// Longest key name castsync accepts, in bytes. The platform's own limit is not documented
/// (assumption: castsync's rule, applied before anything is sent).
pub const MAX_KEY_LEN: usize = 256;
/// Longest agent slug, in bytes (`^[a-z0-9][a-z0-9._-]{0,62}$`).
pub const MAX_SLUG_LEN: usize = 63;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    /// A slug that does not match `^[a-z0-9][a-z0-9._-]{0,62}$` or contains `..`.
    #[error(
        "invalid agent slug {0:?}: use 1-63 characters from a-z, 0-9, '.', '_', '-', starting with a letter or digit, without '..'"
    )]
    Slug(String),
    /// A key that is not a valid environment variable name.
    #[error(
        "invalid key name {0:?}: keys must be environment variable names ([A-Za-z_][A-Za-z0-9_]*, at most 256 bytes)"
    )]
    Key(String),
}

/// Checks an agent slug.
pub fn validate_slug(slug: &str) -> Result<(), NameError> {
    let bytes = slug.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_SLUG_LEN
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && !slug.contains("..");
    if ok {
        Ok(())
    } else {
        Err(NameError::Slug(slug.to_owned()))
    }
}

/// Checks a key name: `[A-Za-z_][A-Za-z0-9_]*`, at most [`MAX_KEY_LEN`] bytes.
pub fn validate_key(key: &str) -> Result<(), NameError> {
    let bytes = key.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_KEY_LEN
        && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    if ok {
        Ok(())
    } else {
        Err(NameError::Key(key.to_owned()))
    }
}

/// What is wrong with a key name, described by position and never by repeating it (the
/// likeliest invalid "key" on a command line is a value typed where the key goes); `None`
/// when it is valid.
pub fn key_fault(key: &str) -> Option<String> {
    validate_key(key).err()?;
    let bad = key
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit())));
    Some(match bad {
        _ if key.is_empty() => "it is empty".to_owned(),
        Some((0, c)) if c.is_ascii_digit() => "it starts with a digit".to_owned(),
        Some((i, c)) if c.is_ascii_graphic() => {
            format!("character {} is {c:?}", key[..i].chars().count() + 1)
        }
        Some((i, _)) => format!(
            "character {} is not a letter, digit or _",
            key[..i].chars().count() + 1
        ),
        None => format!("it is longer than {MAX_KEY_LEN} bytes"),
    })
}

/// True when a valid key name is not in Castari's UPPERCASE_WITH_UNDERSCORES convention.
pub fn key_is_lowercase(key: &str) -> bool {
    key.bytes().any(|b| b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_fault_is_described_without_the_key() {
        assert_eq!(key_fault("GOOD_KEY"), None);
        assert_eq!(key_fault("").as_deref(), Some("it is empty"));
        assert_eq!(key_fault("1ABC").as_deref(), Some("it starts with a digit"));
        assert_eq!(
            key_fault("sk-canary").as_deref(),
            Some("character 3 is '-'")
        );
        assert_eq!(
            key_fault("A\tB").as_deref(),
            Some("character 2 is not a letter, digit or _")
        );
        let long = "K".repeat(MAX_KEY_LEN + 1);
        assert_eq!(
            key_fault(&long),
            Some(format!("it is longer than {MAX_KEY_LEN} bytes"))
        );
    }

    #[test]
    fn slugs_follow_the_platform_pattern() {
        for ok in ["a", "support-bot", "billing.agent_2", "0x", &"a".repeat(63)] {
            assert!(validate_slug(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "A",
            "a..b",
            "a/b",
            "a b",
            &"a".repeat(64),
            "é",
        ] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_must_be_environment_variable_names() {
        for ok in ["A", "_A", "OPENAI_API_KEY", "lower_ok", &"K".repeat(256)] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A.B", "A B", &"K".repeat(257), "Ä"] {
            assert!(validate_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lowercase_keys_are_flagged() {
        assert!(key_is_lowercase("openai_key"));
        assert!(!key_is_lowercase("OPENAI_KEY_2"));
    }
}
