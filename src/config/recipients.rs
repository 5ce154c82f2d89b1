//! Recipient lists as `castsync.yaml` writes them, and the names people gave them.
//!
//! A list (`recipients:`, or an `access:` rule's) takes three spellings, mixed as needed:
//!
//! ```yaml
//! recipients:
//!   - age1…                 # a bare key: shown as a short fingerprint
//!   - alice: age1…          # a named key
//! recipients:               # or a mapping, every key named
//!   alice: age1…
//!   ci-prod: ssh-ed25519 AAAA…
//! ```
//!
//! Names are for people reading reports (`audit`, `doctor`, `rekey --check`): a name stands for
//! one key across the whole file, and a key has at most one name. What is encrypted never
//! depends on a name. Nothing here ever repeats a key that fails the syntax check (it may be
//! a private key pasted by mistake), and the deserializer's errors quote nothing.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// Longest recipient name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// One list of recipients, in file order, each with its name when it has one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients {
    entries: Vec<(Option<String>, String)>,
}

impl Recipients {
    /// Unnamed keys (what a list of plain strings means).
    pub fn from_keys(keys: impl IntoIterator<Item = impl Into<String>>) -> Recipients {
        Recipients {
            entries: keys.into_iter().map(|k| (None, k.into())).collect(),
        }
    }

    /// Adds one key, named or not.
    pub fn push(&mut self, name: Option<String>, key: String) {
        self.entries.push((name, key));
    }

    /// The keys, in file order: what a manifest is encrypted to.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> {
        self.entries.iter().map(|(_, key)| key.as_str())
    }

    /// `(name, key)` in file order.
    pub fn entries(&self) -> impl Iterator<Item = (Option<&str>, &str)> {
        self.entries
            .iter()
            .map(|(name, key)| (name.as_deref(), key.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The key as castsync records it in a manifest's `castsync:` block: an age key in lower
/// case, an SSH key as its type and key data without the comment. This is the form
/// `crypto::parse_recipient` gives (`Recipient::as_str`), computed without parsing the key,
/// so a name can be found for any key a manifest recorded.
pub fn canonical(key: &str) -> String {
    let key = key.trim();
    if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("age1")) {
        return key.to_ascii_lowercase();
    }
    let mut words = key.split_whitespace();
    match (words.next(), words.next()) {
        (Some(kind), Some(data)) => format!("{kind} {data}"),
        _ => key.to_owned(),
    }
}

/// A key as reports show it when nobody named it: an age key's first 12 and last 6
/// characters (`age1qyqszqgp…3290gq`), an SSH key's type and the start of its SHA-256
/// fingerprint as `ssh-keygen -l` prints it (`ssh-ed25519 SHA256:Yz3k8xQbWm4p…`).
pub fn short_label(key: &str) -> String {
    let key = canonical(key);
    let mut words = key.split(' ');
    if let (Some(kind), Some(data)) = (words.next(), words.next()) {
        use base64::Engine as _;
        use sha2::Digest as _;
        let engine = base64::engine::general_purpose::STANDARD;
        return match engine.decode(data) {
            Ok(blob) => {
                let digest = sha2::Sha256::digest(&blob);
                let print = base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest);
                format!("{kind} SHA256:{}…", &print[..12])
            }
            Err(_) => format!("{kind} (unreadable key)"),
        };
    }
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 20 {
        return key;
    }
    let head: String = chars[..12].iter().collect();
    let tail: String = chars[chars.len() - 6..].iter().collect();
    format!("{head}…{tail}")
}

/// Why a recipient name is refused. The message never repeats a name that may be a key.
pub fn name_problem(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("age-secret-key-") || lower.starts_with("age-plugin-") {
        return Some(
            "this name is a private key: remove it from castsync.yaml, treat it as leaked, and write `NAME: PUBLIC_KEY`",
        );
    }
    if lower.starts_with("age1") || lower.starts_with("ssh-") {
        return Some(
            "the name looks like a key: a named recipient is written `NAME: KEY` (e.g. `alice: age1…`)",
        );
    }
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Some("a name is 1 to 64 characters");
    }
    let valid = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'+'));
    if !valid {
        return Some(
            "a name is letters, digits and . _ - @ +, starting with a letter or a digit (e.g. alice, ci-prod)",
        );
    }
    None
}

/// Who each key is, for reports: key (canonical) → name, from every list of a config (and,
/// for `audit`, of its earlier versions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    by_key: BTreeMap<String, String>,
}

impl Names {
    /// Adds the names of `list`; a name already known for a key is kept (the caller adds the
    /// most authoritative list first).
    pub fn add(&mut self, list: &Recipients) {
        for (name, key) in list.entries() {
            if let Some(name) = name {
                self.by_key
                    .entry(canonical(key))
                    .or_insert_with(|| name.to_owned());
            }
        }
    }

    /// Adds every name `other` knows and this does not.
    pub fn merge(&mut self, other: &Names) {
        for (key, name) in &other.by_key {
            self.by_key
                .entry(key.clone())
                .or_insert_with(|| name.clone());
        }
    }

    /// The name given to `key`, if any.
    pub fn name(&self, key: &str) -> Option<&str> {
        self.by_key.get(&canonical(key)).map(String::as_str)
    }

    /// The name of `key`, else its short fingerprint.
    pub fn label(&self, key: &str) -> String {
        match self.name(key) {
            Some(name) => name.to_owned(),
            None => short_label(key),
        }
    }

    /// How a report that always listed whole keys (`rekey --check`, `doctor`) shows `key`:
    /// as before when nobody is named anywhere, else as [`Names::label`].
    pub fn shown(&self, key: &str) -> String {
        if self.by_key.is_empty() {
            key.to_owned()
        } else {
            self.label(key)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// `(key, name)` pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_key.iter().map(|(k, n)| (k.as_str(), n.as_str()))
    }
}

impl Serialize for Recipients {
    /// A list: bare keys as strings, named ones as one-entry mappings.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Named<'a>(&'a str, &'a str);
        impl Serialize for Named<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(self.0, self.1)?;
                map.end()
            }
        }
        let mut seq = serializer.serialize_seq(Some(self.entries.len()))?;
        for (name, key) in self.entries() {
            match name {
                Some(name) => seq.serialize_element(&Named(name, key))?,
                None => seq.serialize_element(key)?,
            }
        }
        seq.end()
    }
}

const EXPECTED: &str =
    "a list of recipients (`- age1…`, or `- alice: age1…`), or a mapping of names to keys";

/// The error for anything that is not a string where a key (or a name) belongs: it quotes
/// nothing.
fn not_text<E: de::Error>(what: &str) -> E {
    E::custom(format!(
        "recipients: {what} must be text (a key such as age1… or ssh-ed25519 AAAA…, or a name)"
    ))
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = Recipients;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Recipients, E> {
        Ok(Recipients::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<Recipients, E> {
        Ok(Recipients::default())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Recipients, E> {
        Err(E::custom(format!(
            "recipients must be {EXPECTED}, not a single text"
        )))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Recipients, A::Error> {
        let mut out = Recipients::default();
        while let Some(Item(name, key)) = seq.next_element()? {
            out.push(name, key);
        }
        Ok(out)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Recipients, A::Error> {
        let mut out = Recipients::default();
        while let Some(name) = map.next_key::<Text>()? {
            let key = map.next_value::<Text>()?;
            out.push(Some(name.0), key.0);
        }
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for Recipients {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ListVisitor)
    }
}

/// One list item: a bare key, or a one-entry `name: key` mapping.
struct Item(Option<String>, String);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key (age1…) or one `name: key` pair")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Item, E> {
                Ok(Item(None, v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                let Some(name) = map.next_key::<Text>()? else {
                    return Err(de::Error::custom(
                        "recipients: an empty mapping in the list; write `- NAME: KEY`",
                    ));
                };
                let key = map.next_value::<Text>()?;
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(
                        "recipients: a list item holds more than one `name: key` pair; give each recipient its own `- NAME: KEY` line",
                    ));
                }
                Ok(Item(Some(name.0), key.0))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Item, E> {
                Err(not_text("a list item"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Item, E> {
                Err(not_text("a list item"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Item, E> {
                Err(not_text("a list item"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Item, E> {
                Err(not_text("a list item"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Item, E> {
                Err(not_text("a list item"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Item, A::Error> {
                Err(not_text("a list item"))
            }
        }
        deserializer.deserialize_any(ItemVisitor)
    }
}

/// A string where a name or a key belongs (anything else is refused without quoting it).
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("text")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Text, E> {
                Err(not_text("a name or a key"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Text, E> {
                Err(not_text("a name or a key"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Text, E> {
                Err(not_text("a name or a key"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Text, E> {
                Err(not_text("a name or a key"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
                Err(not_text("a name or a key"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Text, A::Error> {
                Err(not_text("a name or a key"))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Text, A::Error> {
                Err(not_text("a name or a key"))
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE: &str = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq";
    const SSH: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@laptop";

    fn list(yaml: &str) -> Result<Recipients, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn bare_keys_named_items_and_a_mapping_all_read() {
        let bare = list(&format!("[{AGE}]")).unwrap();
        assert_eq!(bare, Recipients::from_keys([AGE]));
        let mixed = list(&format!("- {AGE}\n- ci-prod: {SSH}\n")).unwrap();
        assert_eq!(
            mixed.entries().collect::<Vec<_>>(),
            vec![(None, AGE), (Some("ci-prod"), SSH)]
        );
        let mapping = list(&format!("alice: {AGE}\nbob: {SSH}\n")).unwrap();
        assert_eq!(
            mapping.entries().collect::<Vec<_>>(),
            vec![(Some("alice"), AGE), (Some("bob"), SSH)]
        );
        assert!(list("~").unwrap().is_empty());
    }

    #[test]
    fn a_list_written_back_reads_as_the_same_list() {
        let mixed = list(&format!("- {AGE}\n- ci-prod: {SSH}\n")).unwrap();
        let text = serde_yaml::to_string(&mixed).unwrap();
        assert_eq!(list(&text).unwrap(), mixed);
        // Without names it is exactly the plain list it always was.
        let plain = serde_json::to_value(Recipients::from_keys([AGE])).unwrap();
        assert_eq!(plain, serde_json::json!([AGE]));
    }

    #[test]
    fn malformed_lists_are_refused_without_quoting_them() {
        for (yaml, expected) in [
            ("AGE-SECRET-KEY-1SECRETSECRET", "not a single text"),
            ("- [AGE-SECRET-KEY-1SECRETSECRET]", "must be text"),
            ("- {a: age1x, b: age1y}", "more than one"),
            ("alice: [AGE-SECRET-KEY-1SECRETSECRET]", "must be text"),
            ("- 12", "must be text"),
        ] {
            let err = list(yaml).unwrap_err();
            assert!(err.contains(expected), "{yaml}: {err}");
            assert!(!err.contains("SECRET"), "{yaml}: {err}");
        }
    }

    #[test]
    fn the_canonical_form_is_the_one_crypto_records() {
        for key in [AGE, SSH, &AGE.to_ascii_uppercase()] {
            let parsed = crate::crypto::parse_recipient(key).unwrap();
            assert_eq!(canonical(key), parsed.as_str(), "{key}");
        }
    }

    #[test]
    fn unnamed_keys_show_as_short_fingerprints() {
        assert_eq!(short_label(AGE), "age1qyqszqgp…3290gq");
        let ssh = short_label(SSH);
        assert!(ssh.starts_with("ssh-ed25519 SHA256:"), "{ssh}");
        assert_eq!(ssh.chars().count(), "ssh-ed25519 SHA256:".len() + 13);
        // The same key with another comment is the same key.
        assert_eq!(short_label(&SSH.replace("alice@laptop", "x")), ssh);
    }

    #[test]
    fn names_follow_the_key_whatever_its_spelling() {
        let mut names = Names::default();
        names.add(&list(&format!("- alice: {SSH}\n- {AGE}\n")).unwrap());
        let other_comment = SSH.replace("alice@laptop", "work");
        assert_eq!(names.label(&other_comment), "alice");
        assert_eq!(names.label(AGE), short_label(AGE));
    }

    #[test]
    fn names_that_are_keys_or_odd_are_refused() {
        assert_eq!(name_problem("alice"), None);
        assert_eq!(name_problem("ci-prod.eu@team+1"), None);
        for bad in [
            "",
            "age1abc",
            "AGE-SECRET-KEY-1X",
            "ssh-ed25519",
            "-x",
            "a b",
        ] {
            let problem = name_problem(bad).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(!problem.contains("SECRET"), "{problem}");
        }
        assert!(name_problem(&"a".repeat(65)).is_some());
    }
}
