//! One agent's key records in memory: kept as the compact JSON they are saved as, and parsed
//! only while the agent is planned or written. A daemon following a thousand agents holds
//! twenty thousand records between runs; as text they take well under half the memory of
//! parsed maps, and a save writes them as they are instead of serializing them again.
//!
//! Text is only ever made from a parsed map (when the state is read, or by [`AgentKeys::compact`]),
//! so it always parses back. Nothing here holds a value: a record is a keyed fingerprint.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use super::KeyRecord;

/// key → record.
pub type Records = BTreeMap<String, KeyRecord>;

#[derive(Debug, Clone)]
pub enum AgentKeys {
    /// Compact JSON of a [`Records`] map.
    Text(Box<RawValue>),
    Parsed(Records),
}

impl Default for AgentKeys {
    fn default() -> Self {
        AgentKeys::Parsed(Records::new())
    }
}

/// Parses text this module made. It cannot fail (see the module doc); if it ever did, the
/// agent's keys would read as unrecorded, so they are set once more as `unverified`: the
/// safe direction.
fn parse(text: &RawValue) -> Records {
    serde_json::from_str(text.get()).unwrap_or_default()
}

impl AgentKeys {
    /// The records, parsed if they are text.
    pub fn get(&self) -> Cow<'_, Records> {
        match self {
            AgentKeys::Parsed(records) => Cow::Borrowed(records),
            AgentKeys::Text(text) => Cow::Owned(parse(text)),
        }
    }

    /// The records to change (parsed now if they were text).
    pub fn get_mut(&mut self) -> &mut Records {
        if let AgentKeys::Text(text) = self {
            *self = AgentKeys::Parsed(parse(text));
        }
        match self {
            AgentKeys::Parsed(records) => records,
            // Parsed just above.
            AgentKeys::Text(_) => unreachable!("text was parsed above"),
        }
    }

    /// Back to text, to hold between runs.
    pub fn compact(&mut self) {
        if let AgentKeys::Parsed(records) = self
            && let Ok(text) = serde_json::value::to_raw_value(records)
        {
            *self = AgentKeys::Text(text);
        }
    }
}

impl Serialize for AgentKeys {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            AgentKeys::Text(text) => text.serialize(serializer),
            AgentKeys::Parsed(records) => records.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for AgentKeys {
    /// Every record is checked as it is read; what is kept is the compact text of the parsed
    /// map (whatever the file's layout was).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let records = Records::deserialize(deserializer)?;
        serde_json::value::to_raw_value(&records)
            .map(AgentKeys::Text)
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fingerprint: &str) -> KeyRecord {
        KeyRecord {
            fingerprint: fingerprint.into(),
            observed_at: None,
            revision: Some("c1".into()),
            applied_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn text_and_parsed_records_read_and_save_alike() {
        let mut keys = AgentKeys::default();
        keys.get_mut().insert("A".into(), record("hmac-sha256:aa"));
        let parsed = serde_json::to_string(&keys).unwrap();
        keys.compact();
        assert!(matches!(keys, AgentKeys::Text(_)));
        assert_eq!(serde_json::to_string(&keys).unwrap(), parsed);
        assert_eq!(keys.get()["A"], record("hmac-sha256:aa"));
        keys.get_mut().insert("B".into(), record("hmac-sha256:bb"));
        assert!(matches!(keys, AgentKeys::Parsed(_)));
        assert_eq!(keys.get().len(), 2);
    }

    #[test]
    fn a_file_of_any_layout_is_held_compact_and_a_bad_record_refused() {
        let pretty = "{\n  \"A\": {\n    \"fingerprint\": \"hmac-sha256:aa\",\n    \"applied_at\": \"t\"\n  }\n}";
        let keys: AgentKeys = serde_json::from_str(pretty).unwrap();
        let AgentKeys::Text(text) = &keys else {
            panic!("read as text")
        };
        assert_eq!(
            text.get(),
            r#"{"A":{"fingerprint":"hmac-sha256:aa","applied_at":"t"}}"#
        );
        assert!(serde_json::from_str::<AgentKeys>(r#"{"A": {"applied_at": 1}}"#).is_err());
    }
}
