//! The redacted view of a manifest: its agent (or shared group), the shared groups it uses
//! (`uses: GROUP (KEY, …)`), and, sorted, each key with a short keyed fingerprint of its value. It is what `git diff` shows through `castsync textconv` and what
//! `castsync diff` compares: enough to see which keys were added, removed or changed, never a
//! value and never an unkeyed hash of one.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::crypto::Identities;

/// The purpose string of the fingerprint key derived from the user's identity.
const PURPOSE: &str = "castsync redacted-view fingerprint v1";

/// Hex digits of fingerprint shown: 48 bits, plenty to notice a change.
const FINGERPRINT_HEX: usize = 12;

/// Fingerprints for one user: keyed by a secret derived from their identity, so the same
/// value gives the same fingerprint across separate processes (git runs textconv once per
/// file version) but means nothing to anyone else.
pub struct Fingerprinter {
    key: Zeroizing<[u8; 32]>,
}

impl Fingerprinter {
    pub fn for_identities(identities: &Identities) -> Option<Fingerprinter> {
        identities
            .derive_key(PURPOSE)
            .map(|key| Fingerprinter { key })
    }

    /// The keyed fingerprint of `key`'s value `value` (equal only for equal values).
    pub fn of(&self, key: &str, value: &str) -> String {
        self.fingerprint(key, value)
    }

    fn fingerprint(&self, key: &str, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key[..])
            .expect("HMAC-SHA256 accepts keys of any length");
        mac.update(key.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let mut hex = hex::encode(mac.finalize().into_bytes());
        hex.truncate(FINGERPRINT_HEX);
        hex
    }
}

/// The redacted view of a decrypted manifest. Lenient on purpose: a diff should show what it
/// can even of an invalid manifest, so this reads the YAML loosely (any scalar's text) and
/// says so in one line when it cannot.
pub fn view(plaintext: &str, fp: &Fingerprinter) -> String {
    let plaintext = plaintext.strip_prefix('\u{feff}').unwrap_or(plaintext);
    if crate::yaml_depth::check(plaintext).is_err() {
        return "# castsync: decrypted, but not valid YAML or nested too deeply (run `castsync validate`)\n"
            .into();
    }
    let doc: serde_yaml::Value = match serde_yaml::from_str(plaintext) {
        Ok(v) => v,
        Err(_) => {
            return "# castsync: decrypted, but not valid YAML (run `castsync validate`)\n".into();
        }
    };
    let mut out = String::new();
    // Only a valid slug is shown: anything else in `agent:` (or `group:`) may be a misplaced
    // value.
    let slug = |v: Option<&serde_yaml::Value>| -> String {
        match v.and_then(serde_yaml::Value::as_str) {
            Some(a) if crate::names::validate_slug(a).is_ok() => a.to_owned(),
            Some(_) => "<not a valid slug>".to_owned(),
            None => "<missing>".to_owned(),
        }
    };
    match doc.get("group") {
        Some(group) if doc.get("agent").is_none() => {
            out.push_str(&format!("group: {}\n", slug(Some(group))));
        }
        _ => out.push_str(&format!("agent: {}\n", slug(doc.get("agent")))),
    }
    for line in uses_lines(doc.get("uses")) {
        out.push_str(&line);
        out.push('\n');
    }
    let mut lines: Vec<String> = Vec::new();
    if let Some(secrets) = doc.get("secrets").and_then(serde_yaml::Value::as_mapping) {
        for (k, v) in secrets {
            // The key's text, held only to hash it unless it is a valid name: a typo such as
            // `{K: x, TOKEN value}` puts a value into a key.
            let key = Zeroizing::new(match k {
                serde_yaml::Value::String(s) => s.clone(),
                other => scalar_text(other).unwrap_or_default(),
            });
            let valid = crate::names::validate_key(&key).is_ok();
            let shown = match scalar_text(v) {
                Some(text) => {
                    // The value's text is held only for hashing.
                    let text = Zeroizing::new(text);
                    fp.fingerprint(&key, &text)
                }
                None => "<not a scalar>".into(),
            };
            lines.push(if valid {
                format!("{} {shown}", key.as_str())
            } else {
                format!("<invalid key name> {shown}")
            });
        }
    }
    lines.sort();
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// `uses: GROUP (KEY, KEY)` or `uses: GROUP (*)` per group, sorted: names only, and only valid
/// ones (anything else there may be a misplaced value).
fn uses_lines(uses: Option<&serde_yaml::Value>) -> Vec<String> {
    let group_name = |v: &serde_yaml::Value| {
        let text = scalar_text(v)?;
        Some(if crate::names::validate_slug(&text).is_ok() {
            text
        } else {
            "<not a valid slug>".to_owned()
        })
    };
    let key_name = |v: &serde_yaml::Value| {
        let text = scalar_text(v)?;
        Some(if crate::names::validate_key(&text).is_ok() {
            text
        } else {
            "<invalid key name>".to_owned()
        })
    };
    let mut lines = Vec::new();
    match uses {
        Some(serde_yaml::Value::Sequence(groups)) => {
            for g in groups.iter().filter_map(group_name) {
                lines.push(format!("uses: {g} (*)"));
            }
        }
        Some(serde_yaml::Value::Mapping(groups)) => {
            for (g, keys) in groups {
                let Some(g) = group_name(g) else { continue };
                let keys = match keys {
                    serde_yaml::Value::Sequence(keys) => {
                        let mut keys: Vec<String> = keys.iter().filter_map(key_name).collect();
                        keys.sort();
                        keys.join(", ")
                    }
                    _ => "*".to_owned(),
                };
                lines.push(format!("uses: {g} ({keys})"));
            }
        }
        _ => {}
    }
    lines.sort();
    lines
}

/// What a view says an agent takes from one group: the group and its keys (`None`: every
/// key).
pub type UsedGroup = (String, Option<Vec<String>>);

/// The redacted view of an encrypted manifest, or a one-line notice of why there is none
/// (never a value: a file nobody here can open is told apart by a hash of its ciphertext).
pub fn decrypted_view(
    identities: &Identities,
    fp: &Fingerprinter,
    bytes: &[u8],
    file: &Path,
) -> Result<String, String> {
    let plain = identities.decrypt(bytes, file).map_err(|_| {
        // A hash of the ciphertext (never of a value) so that two versions nobody here can
        // open still show as different.
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(bytes));
        format!(
            "cannot decrypt this version with your identities (not a recipient?); key names hidden (ciphertext sha256:{})",
            &digest[..12]
        )
    })?;
    let text = std::str::from_utf8(&plain)
        .map_err(|_| "the decrypted manifest is not UTF-8 text".to_owned())?;
    Ok(view(text, fp))
}

/// The groups and keys a view's `uses:` lines name.
pub fn uses_of(view: &str) -> Vec<UsedGroup> {
    view.lines()
        .filter_map(|l| l.strip_prefix("uses: "))
        .filter_map(|rest| {
            let (group, keys) = rest.split_once(" (")?;
            let keys = keys.strip_suffix(')')?;
            let keys = (keys != "*").then(|| keys.split(", ").map(str::to_owned).collect());
            Some((group.to_owned(), keys))
        })
        .collect()
}

fn scalar_text(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        serde_yaml::Value::Null => Some(String::new()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp() -> Fingerprinter {
        Fingerprinter {
            key: Zeroizing::new([7u8; 32]),
        }
    }

    #[test]
    fn the_view_lists_sorted_keys_with_fingerprints_and_no_values() {
        let v = view(
            "agent: bot\nsecrets:\n  ZED: canary-view-1\n  ALPHA: canary-view-2\n",
            &fp(),
        );
        let lines: Vec<&str> = v.lines().collect();
        assert_eq!(lines[0], "agent: bot");
        assert!(lines[1].starts_with("ALPHA ") && lines[2].starts_with("ZED "));
        assert_eq!(lines[1].len(), "ALPHA ".len() + FINGERPRINT_HEX);
        assert!(!v.contains("canary"));
    }

    #[test]
    fn equal_values_under_different_keys_get_different_fingerprints() {
        let f = fp();
        assert_ne!(f.fingerprint("A", "same"), f.fingerprint("B", "same"));
        assert_eq!(f.fingerprint("A", "same"), f.fingerprint("A", "same"));
        assert_ne!(f.fingerprint("A", "same"), f.fingerprint("A", "other"));
    }

    #[test]
    fn a_group_view_names_the_group_and_an_agent_view_its_uses() {
        let v = view("group: openai\nsecrets:\n  K: canary-view-3\n", &fp());
        assert!(v.starts_with("group: openai\nK "), "{v}");
        let v = view(
            "agent: bot\nuses:\n  openai: [B, A]\n  stripe: \"*\"\nsecrets: {}\n",
            &fp(),
        );
        assert_eq!(
            v, "agent: bot\nuses: openai (A, B)\nuses: stripe (*)\n",
            "{v}"
        );
        assert_eq!(
            uses_of(&v),
            vec![
                (
                    "openai".to_owned(),
                    Some(vec!["A".to_owned(), "B".to_owned()])
                ),
                ("stripe".to_owned(), None)
            ]
        );
        let short = view("agent: bot\nuses: [openai]\n", &fp());
        assert_eq!(uses_of(&short), vec![("openai".to_owned(), None)]);
        assert!(!v.contains("canary"));
    }

    #[test]
    fn keys_that_are_not_names_and_agents_that_are_not_slugs_are_not_shown() {
        let v = view(
            "agent: canary-agent!\nsecrets: {K: x, TOKEN canary-in-key, 0x4c08canary: 1}\n",
            &fp(),
        );
        assert!(!v.contains("canary"), "{v}");
        assert_eq!(v.matches("<invalid key name> ").count(), 2, "{v}");
        assert!(v.starts_with("agent: <not a valid slug>\n"), "{v}");
    }

    #[test]
    fn invalid_yaml_gives_a_one_line_notice() {
        assert!(view("agent: [", &fp()).starts_with("# castsync: decrypted, but not valid YAML"));
    }
}
