//! Public keys that manifests are encrypted to: `age1…` X25519 keys, `age1NAME1…` age plugin
//! recipients (served by `age-plugin-NAME` on PATH) and `ssh-ed25519` / `ssh-rsa` public key
//! lines, as written in castsync.yaml.
//!
//! A string that is not a supported recipient is refused with an error that says what kind
//! of string it looks like; the error shows at most its first 20 characters, and nothing of
//! a string that looks like a private key.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use super::CryptoError;

/// How many characters of a rejected string an error message may show.
const PREVIEW_CHARS: usize = 20;

/// The kind of public key behind a [`Recipient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecipientKind {
    /// An `age1…` X25519 key (`age-keygen`, `castsync keygen`).
    X25519,
    /// An `ssh-ed25519 AAAA…` public key.
    SshEd25519,
    /// An `ssh-rsa AAAA…` public key (at least 2048 bits).
    SshRsa,
    /// An `age1NAME1…` age plugin recipient (a YubiKey, a TPM, …).
    Plugin,
}

/// A parsed public key. Two recipients are equal when their keys are, whatever the comment.
#[derive(Clone)]
pub struct Recipient {
    key: Key,
    canonical: String,
    comment: Option<String>,
}

#[derive(Clone)]
enum Key {
    X25519(age::x25519::Recipient),
    Ssh(age::ssh::Recipient),
    Plugin(age::plugin::Recipient),
}

impl Recipient {
    /// The normalised form, for recording in manifest metadata and comparing recipient sets:
    /// `age1…` in lowercase, or `ssh-ed25519 BASE64` / `ssh-rsa BASE64` without the comment.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The comment that followed an ssh public key (`alice@laptop`), if any.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    pub fn kind(&self) -> RecipientKind {
        match &self.key {
            Key::X25519(_) => RecipientKind::X25519,
            Key::Ssh(age::ssh::Recipient::SshEd25519(..)) => RecipientKind::SshEd25519,
            Key::Ssh(age::ssh::Recipient::SshRsa(..)) => RecipientKind::SshRsa,
            Key::Plugin(_) => RecipientKind::Plugin,
        }
    }

    /// The plugin's name (`yubikey` for `age1yubikey1…`), for a plugin recipient.
    pub fn plugin(&self) -> Option<&str> {
        match &self.key {
            Key::Plugin(r) => Some(r.plugin()),
            _ => None,
        }
    }

    /// A native recipient as age's, or the plugin recipient (which age wraps per plugin).
    pub(super) fn as_age(&self) -> Result<&dyn age::Recipient, &age::plugin::Recipient> {
        match &self.key {
            Key::X25519(r) => Ok(r),
            Key::Ssh(r) => Ok(r),
            Key::Plugin(r) => Err(r),
        }
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical
    }
}

impl Eq for Recipient {}

impl Hash for Recipient {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.canonical.hash(state);
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({})", self.canonical)
    }
}

impl FromStr for Recipient {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_recipient(s)
    }
}

/// Parses one recipient as written in castsync.yaml.
///
/// Accepts `age1…` X25519 keys, `age1NAME1…` plugin recipients and `ssh-ed25519` / `ssh-rsa`
/// public key lines (with an optional trailing comment). Refuses `age1pq1…` post-quantum
/// keys, other ssh key types, and anything that looks like a private key, each with its own
/// message. Whether a plugin's program is installed is checked when encrypting.
pub fn parse_recipient(s: &str) -> Result<Recipient, CryptoError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(invalid(s, "the recipient is empty"));
    }
    if let Some(what) = secret_kind(s) {
        return Err(CryptoError::SecretKeyAsRecipient { what });
    }
    if starts_with_ignore_case(s, "age1") {
        return parse_age(s);
    }
    let mut words = s.split_whitespace();
    let key_type = words.next().unwrap_or_default();
    match key_type {
        "ssh-ed25519" | "ssh-rsa" => parse_ssh(s, key_type, words),
        other if looks_like_ssh_key_type(other) => Err(invalid(
            s,
            &format!(
                "ssh key type `{}` is not supported: use an ssh-ed25519 or ssh-rsa key, or an age1… key",
                preview(other)
            ),
        )),
        _ => Err(invalid(
            s,
            "not a public key: expected an age1… recipient or an `ssh-ed25519 …` / `ssh-rsa …` line",
        )),
    }
}

fn parse_age(s: &str) -> Result<Recipient, CryptoError> {
    if s.contains(char::is_whitespace) {
        return Err(invalid(
            s,
            "unexpected text after the age1… key: put a comment on its own line (`# alice`)",
        ));
    }
    let lower = s.to_ascii_lowercase();
    // Bech32: the human-readable part ends at the last '1' (the data alphabet has none).
    // "age" is X25519; "age1pq" is ML-KEM hybrid; "age1NAME" is a plugin (yubikey, tpm, …).
    let hrp = lower.rfind('1').map_or("", |i| &lower[..i]);
    match hrp {
        "age" => match lower.parse::<age::x25519::Recipient>() {
            Ok(key) => Ok(Recipient {
                canonical: key.to_string(),
                key: Key::X25519(key),
                comment: None,
            }),
            Err(_) => Err(invalid(
                s,
                "not a valid age1… X25519 recipient (wrong length or checksum: was it copied whole?)",
            )),
        },
        "age1pq" => Err(CryptoError::PostQuantumRecipient {
            preview: preview(s),
        }),
        plugin if plugin.len() > 4 => match lower.parse::<age::plugin::Recipient>() {
            Ok(key) => Ok(Recipient {
                canonical: lower.clone(),
                key: Key::Plugin(key),
                comment: None,
            }),
            Err(_) => Err(invalid(
                s,
                &format!(
                    "not a valid age plugin recipient (plugin `{}`): wrong checksum or a name with characters other than a-z, 0-9, '+', '-', '.', '_' (was it copied whole?)",
                    preview(&plugin[4..])
                ),
            )),
        },
        _ => Err(invalid(s, "not a valid age1… recipient")),
    }
}

fn parse_ssh<'a>(
    s: &str,
    key_type: &str,
    mut words: impl Iterator<Item = &'a str>,
) -> Result<Recipient, CryptoError> {
    let Some(blob) = words.next() else {
        return Err(invalid(
            s,
            &format!("`{key_type}` is not followed by a key"),
        ));
    };
    let comment = words.collect::<Vec<_>>().join(" ");
    let key = format!("{key_type} {blob}")
        .parse::<age::ssh::Recipient>()
        .map_err(|err| {
            use age::ssh::ParseRecipientKeyError as E;
            let reason = match err {
                E::RsaModulusTooSmall => "the ssh-rsa key is shorter than 2048 bits".to_owned(),
                E::RsaModulusTooLarge => "the ssh-rsa key is larger than age supports".to_owned(),
                E::Unsupported(t) => format!("ssh key type `{}` is not supported", preview(&t)),
                _ => format!("not a valid {key_type} public key (was it copied whole?)"),
            };
            invalid(s, &reason)
        })?;
    Ok(Recipient {
        canonical: key.to_string(),
        key: Key::Ssh(key),
        comment: (!comment.is_empty()).then_some(comment),
    })
}

/// Names the kind of private key a string looks like, so that it is never echoed.
fn secret_kind(s: &str) -> Option<&'static str> {
    if starts_with_ignore_case(s, "AGE-SECRET-KEY-") {
        Some("an age secret key (AGE-SECRET-KEY-1…)")
    } else if starts_with_ignore_case(s, "AGE-PLUGIN-") {
        Some("an age plugin identity (AGE-PLUGIN-…)")
    } else if s.starts_with("-----BEGIN") {
        Some("a PEM or OpenSSH private key block")
    } else {
        None
    }
}

fn looks_like_ssh_key_type(word: &str) -> bool {
    ["ssh-", "ecdsa-", "sk-", "rsa-sha2-"]
        .iter()
        .any(|prefix| word.starts_with(prefix))
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn invalid(s: &str, reason: &str) -> CryptoError {
    CryptoError::InvalidRecipient {
        preview: preview(s),
        reason: reason.to_owned(),
    }
}

/// The first [`PREVIEW_CHARS`] characters of `s`, with `…` when cut.
pub(super) fn preview(s: &str) -> String {
    let mut out: String = s.chars().take(PREVIEW_CHARS).collect();
    if s.chars().nth(PREVIEW_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const X25519: &str = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq";
    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN";

    fn message(s: &str) -> String {
        parse_recipient(s).expect_err("must be refused").to_string()
    }

    #[test]
    fn an_x25519_recipient_is_parsed_and_normalised_to_lowercase() {
        let r = parse_recipient(&format!("  {}  ", X25519.to_uppercase())).unwrap();
        assert_eq!(r.as_str(), X25519);
        assert_eq!(r.kind(), RecipientKind::X25519);
        assert_eq!(r.comment(), None);
    }

    #[test]
    fn an_ssh_ed25519_line_keeps_its_comment_apart_from_the_key() {
        let r = parse_recipient(&format!("{ED25519}   alice@laptop  work")).unwrap();
        assert_eq!(r.as_str(), ED25519);
        assert_eq!(r.comment(), Some("alice@laptop work"));
        assert_eq!(r.kind(), RecipientKind::SshEd25519);
        assert_eq!(
            r,
            parse_recipient(ED25519).unwrap(),
            "comments do not change identity"
        );
    }

    #[test]
    fn a_post_quantum_recipient_is_refused_as_not_supported_by_this_build() {
        let msg = message("age1pq1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq");
        assert!(
            msg.contains("post-quantum age recipients are not supported by this build of castsync"),
            "{msg}"
        );
        assert!(msg.contains("age1pq1qqqqqqqqqqqqq…"), "{msg}");
    }

    #[test]
    fn a_plugin_recipient_is_parsed_and_a_broken_one_names_its_plugin() {
        // A well-formed plugin recipient (bech32 of 33 bytes, as age-plugin-yubikey writes).
        let yubikey = "age1yubikey1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0jqmenk29";
        let r = parse_recipient(&yubikey.to_uppercase()).unwrap();
        assert_eq!(r.kind(), RecipientKind::Plugin);
        assert_eq!(r.plugin(), Some("yubikey"));
        assert_eq!(r.as_str(), yubikey);
        let msg = message("age1yubikey1qwerty0000000000000000000000000000000");
        assert!(msg.contains("plugin `yubikey`"), "{msg}");
    }

    #[test]
    fn a_recipient_with_a_broken_checksum_says_so() {
        let mut broken = X25519.to_owned();
        broken.pop();
        broken.push('x');
        assert!(message(&broken).contains("wrong length or checksum"));
    }

    #[test]
    fn a_secret_key_given_as_recipient_is_never_echoed() {
        let secret = "AGE-SECRET-KEY-1CANARYCANARYCANARYCANARYCANARYCANARYCANARYCANARYQQQQQQ";
        let msg = message(secret);
        assert!(msg.contains("age secret key"), "{msg}");
        assert!(!msg.contains("CANARY"), "{msg}");
        assert!(message("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn").contains("private key"));
    }

    #[test]
    fn an_unsupported_ssh_key_type_is_named() {
        let msg = message("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAA");
        assert!(msg.contains("ssh key type `ecdsa-sha2-nistp256`"), "{msg}");
    }

    #[test]
    fn an_unknown_string_is_refused_showing_at_most_twenty_characters() {
        let msg = message("hello this is definitely not a key at all, canary-tail");
        assert!(msg.contains("`hello this is defini…`"), "{msg}");
        assert!(!msg.contains("canary-tail"), "{msg}");
        assert!(msg.contains("expected an age1… recipient"), "{msg}");
    }

    #[test]
    fn a_truncated_ssh_key_is_refused() {
        let msg = message(&ED25519[..40]);
        assert!(msg.contains("not a valid ssh-ed25519 public key"), "{msg}");
        assert!(message("ssh-rsa").contains("is not followed by a key"));
    }

    #[test]
    fn an_empty_recipient_is_refused() {
        assert!(message("   ").contains("empty"));
    }
}
