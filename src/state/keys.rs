//! One agent's key records in memory, in one of three forms:
//! - parsed, while the agent is planned or written;
//! - the compact JSON text the state file holds ([`AgentKeys::compact`]), once saved: every
//!   save writes each agent's text as it is, so a run that saves after each of a thousand
//!   agents does not serialize the others a thousand times;
//! - packed into one small byte string ([`AgentKeys::pack`]), for a process that idles with
//!   them: a daemon following a thousand agents holds twenty thousand records between runs.
//!   As JSON a record takes about 200 bytes, most of it field names, a hex fingerprint and the
//!   same revision and time repeated on every key; packed, it is its name, the fingerprint's
//!   32 bytes and three small indices into the agent's table of distinct strings: about 54.
//!
//! Text and packed bytes are only ever made from a parsed map, so they always read back.
//! Nothing here holds a value: a record is a keyed fingerprint.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

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
    /// A [`Records`] map packed by [`pack`].
    Packed(Box<[u8]>),
    Parsed(Records),
}

impl Default for AgentKeys {
    fn default() -> Self {
        AgentKeys::Parsed(Records::new())
    }
}

/// The one fingerprint form castsync writes, held as its 32 bytes.
const HMAC_PREFIX: &str = "hmac-sha256:";
/// A fingerprint held as its bytes (tag, then 32 bytes) or as an index into the strings.
const TAG_HMAC: u8 = 0;
const TAG_STRING: u8 = 1;

/// The records packed: the agent's distinct strings (fingerprints of another form, platform
/// times, revisions, times of writing), then each key in order with its fingerprint and the
/// indices of its strings. Numbers are LEB128; an optional string's index is stored plus one,
/// zero meaning none.
fn pack(records: &Records) -> Box<[u8]> {
    let mut strings = Strings::default();
    let mut body = Vec::with_capacity(records.len() * 56);
    put_number(&mut body, records.len());
    for (key, record) in records {
        put_text(&mut body, key);
        match hmac_bytes(&record.fingerprint) {
            Some(bytes) => {
                body.push(TAG_HMAC);
                body.extend_from_slice(&bytes);
            }
            None => {
                body.push(TAG_STRING);
                put_number(&mut body, strings.index(&record.fingerprint));
            }
        }
        let observed = strings.optional(record.observed_at.as_deref());
        let revision = strings.optional(record.revision.as_deref());
        let applied = strings.index(&record.applied_at);
        for n in [observed, revision, applied] {
            put_number(&mut body, n);
        }
    }
    let table: usize = strings.list.iter().map(|s| s.len() + 2).sum();
    let mut packed = Vec::with_capacity(table + body.len());
    put_number(&mut packed, strings.list.len());
    for s in &strings.list {
        put_text(&mut packed, s);
    }
    packed.extend_from_slice(&body);
    packed.into_boxed_slice()
}

/// The distinct strings of one agent's records, each with its index.
#[derive(Default)]
struct Strings<'a> {
    list: Vec<&'a str>,
    index: HashMap<&'a str, usize>,
}

impl<'a> Strings<'a> {
    fn index(&mut self, s: &'a str) -> usize {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        self.list.push(s);
        self.index.insert(s, self.list.len() - 1);
        self.list.len() - 1
    }

    /// The index plus one, or zero for none.
    fn optional(&mut self, s: Option<&'a str>) -> usize {
        s.map_or(0, |s| self.index(s) + 1)
    }
}

/// The 32 bytes of `hmac-sha256:` + 64 lowercase hex digits (exactly what
/// `State::fingerprint` makes, so that it prints back the same), else `None`.
fn hmac_bytes(fingerprint: &str) -> Option<[u8; 32]> {
    let digits = fingerprint.strip_prefix(HMAC_PREFIX)?;
    if digits.len() != 64 || digits.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(digits, &mut bytes).ok()?;
    Some(bytes)
}

fn put_number(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    put_number(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// Reads packed bytes back.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }

    fn number(&mut self) -> Option<usize> {
        let mut n: usize = 0;
        for shift in (0..usize::BITS).step_by(7) {
            let b = self.byte()?;
            n |= usize::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.bytes.split_at_checked(len)?;
        self.bytes = rest;
        Some(taken)
    }

    fn text(&mut self) -> Option<&'a str> {
        let len = self.number()?;
        std::str::from_utf8(self.take(len)?).ok()
    }
}

/// The records in packed bytes; `None` if the bytes are not what [`pack`] makes (which
/// cannot happen; see the module doc).
fn unpack(bytes: &[u8]) -> Option<Records> {
    let mut r = Reader { bytes };
    let strings = (0..r.number()?)
        .map(|_| r.text())
        .collect::<Option<Vec<&str>>>()?;
    let string = |i: usize| strings.get(i).map(|s| s.to_string());
    let optional = |i: usize| match i {
        0 => Some(None),
        i => string(i - 1).map(Some),
    };
    let mut records = Records::new();
    for _ in 0..r.number()? {
        let key = r.text()?.to_owned();
        let fingerprint = match r.byte()? {
            TAG_HMAC => format!("{HMAC_PREFIX}{}", hex::encode(r.take(32)?)),
            TAG_STRING => string(r.number()?)?,
            _ => return None,
        };
        let record = KeyRecord {
            fingerprint,
            observed_at: optional(r.number()?)?,
            revision: optional(r.number()?)?,
            applied_at: string(r.number()?)?,
        };
        records.insert(key, record);
    }
    r.bytes.is_empty().then_some(records)
}

/// Reads bytes this module packed, and (below) text it wrote. Neither can fail (see the
/// module doc); if one ever did, the agent's keys would read as unrecorded (and be saved so),
/// so they are set once more as `unverified`: the safe direction.
fn unpacked(bytes: &[u8]) -> Records {
    unpack(bytes).unwrap_or_default()
}

fn parsed(text: &RawValue) -> Records {
    serde_json::from_str(text.get()).unwrap_or_default()
}

impl AgentKeys {
    /// The records, parsed if they are text or packed.
    pub fn get(&self) -> Cow<'_, Records> {
        match self {
            AgentKeys::Parsed(records) => Cow::Borrowed(records),
            AgentKeys::Text(text) => Cow::Owned(parsed(text)),
            AgentKeys::Packed(bytes) => Cow::Owned(unpacked(bytes)),
        }
    }

    /// The records to change (parsed now if they were text or packed).
    pub fn get_mut(&mut self) -> &mut Records {
        if !matches!(self, AgentKeys::Parsed(_)) {
            *self = AgentKeys::Parsed(self.get().into_owned());
        }
        match self {
            AgentKeys::Parsed(records) => records,
            // Parsed just above.
            AgentKeys::Text(_) | AgentKeys::Packed(_) => unreachable!("parsed above"),
        }
    }

    /// As the text that is saved (before a save).
    pub fn compact(&mut self) {
        if !matches!(self, AgentKeys::Text(_))
            && let Ok(text) = serde_json::value::to_raw_value(self)
        {
            *self = AgentKeys::Text(text);
        }
    }

    /// Packed, the smallest form, to hold while idle.
    pub fn pack(&mut self) {
        if !matches!(self, AgentKeys::Packed(_)) {
            *self = AgentKeys::Packed(pack(&self.get()));
        }
    }
}

impl Serialize for AgentKeys {
    /// The same JSON from every form. Packed records are read back first: a save makes every
    /// agent text once ([`AgentKeys::compact`]), so this is once per agent and cycle.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            AgentKeys::Text(text) => text.serialize(serializer),
            AgentKeys::Parsed(records) => records.serialize(serializer),
            AgentKeys::Packed(bytes) => unpacked(bytes).serialize(serializer),
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
    use proptest::prelude::*;

    fn record(fingerprint: &str) -> KeyRecord {
        KeyRecord {
            fingerprint: fingerprint.into(),
            observed_at: None,
            revision: Some("c1".into()),
            applied_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn hmac(byte: u8) -> String {
        format!("{HMAC_PREFIX}{}", hex::encode([byte; 32]))
    }

    #[test]
    fn records_in_every_form_read_and_save_alike() {
        let mut keys = AgentKeys::default();
        keys.get_mut().insert("A".into(), record(&hmac(0xaa)));
        let parsed = serde_json::to_string(&keys).unwrap();
        for (step, form) in [
            (AgentKeys::pack as fn(&mut AgentKeys), "packed"),
            (AgentKeys::compact, "text"),
            (AgentKeys::pack, "packed"),
            (AgentKeys::compact, "text"),
        ] {
            step(&mut keys);
            let held = match keys {
                AgentKeys::Text(_) => "text",
                AgentKeys::Packed(_) => "packed",
                AgentKeys::Parsed(_) => "parsed",
            };
            assert_eq!(held, form);
            assert_eq!(serde_json::to_string(&keys).unwrap(), parsed);
            assert_eq!(keys.get()["A"], record(&hmac(0xaa)));
        }
        keys.pack();
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

    #[test]
    fn an_agent_of_twenty_keys_packs_to_about_fifty_bytes_a_key() {
        let records: Records = (0..20u8)
            .map(|i| {
                let mut r = record(&hmac(i));
                r.revision = Some("0123456789abcdef0123456789abcdef01234567".into());
                (format!("SERVICE_KEY_{i:02}"), r)
            })
            .collect();
        let json = serde_json::to_string(&records).unwrap();
        let packed = pack(&records);
        assert!(packed.len() < 20 * 56, "{} bytes", packed.len());
        assert!(
            packed.len() * 3 < json.len(),
            "{} against {}",
            packed.len(),
            json.len()
        );
    }

    fn any_record() -> impl Strategy<Value = KeyRecord> {
        let fingerprint = prop_oneof![
            any::<[u8; 32]>().prop_map(|b| format!("{HMAC_PREFIX}{}", hex::encode(b))),
            // Forms kept as text: upper-case digits, another length, anything at all.
            any::<[u8; 32]>().prop_map(|b| format!("{HMAC_PREFIX}{}", hex::encode_upper(b))),
            "hmac-sha256:[0-9a-f]{0,70}",
            ".*",
        ];
        let time = prop_oneof!["2026-01-01T00:00:0[0-3]Z", ".*"];
        (
            fingerprint,
            proptest::option::of(time.clone()),
            proptest::option::of("[0-9a-f]{1,2}|worktree|.*"),
            time,
        )
            .prop_map(
                |(fingerprint, observed_at, revision, applied_at)| KeyRecord {
                    fingerprint,
                    observed_at,
                    revision,
                    applied_at,
                },
            )
    }

    proptest! {
        #[test]
        fn records_read_back_and_save_exactly_as_parsed(
            records in proptest::collection::btree_map(".*", any_record(), 0..40)
        ) {
            let parsed = AgentKeys::Parsed(records.clone());
            let mut packed = parsed.clone();
            packed.pack();
            prop_assert_eq!(packed.get().into_owned(), records.clone());
            let saved = serde_json::to_string(&parsed).unwrap();
            prop_assert_eq!(serde_json::to_string(&packed).unwrap(), saved.clone());
            packed.compact();
            prop_assert_eq!(serde_json::to_string(&packed).unwrap(), saved);
            packed.pack();
            prop_assert_eq!(packed.get().into_owned(), records);
        }

        #[test]
        fn bytes_of_any_kind_read_as_no_records_or_some_without_panicking(
            bytes in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            let keys = AgentKeys::Packed(bytes.into_boxed_slice());
            let records = keys.get().into_owned();
            let saved = serde_json::to_string(&keys).unwrap();
            prop_assert_eq!(serde_json::from_str::<Records>(&saved).unwrap(), records);
        }
    }
}
