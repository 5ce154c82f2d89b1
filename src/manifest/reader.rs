//! The first pass over a manifest: what the YAML says, before any rule is applied.
//!
//! serde_norway's `Value` has no positions and resolves `1.10` to a float before we can see
//! the text, so this pass walks the document with our own visitors instead. Every scalar is
//! read with `deserialize_str`, which hands over the text exactly as written (a plain `1.10`
//! stays `"1.10"`); where the text is borrowed from the input, its address gives us the byte
//! offset, and from that the line and whether it was quoted. Keys are always simple names, so
//! they are always borrowed and always have a line.
//!
//! Nothing here may echo a value: serde's own "invalid type" messages quote the offending
//! scalar, so every visitor below answers each kind of input itself and reports the problem
//! through [`Failure`], which carries no value text.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use zeroize::Zeroizing;

use super::ValueProblem;

/// Answers every scalar kind but a string (and `Some`, and an enum) with `$failure`, so that
/// no serde default (which quotes the value) can produce the error. Defined before `mod uses`
/// so that the `uses:` visitors can call it too.
macro_rules! refuse_scalars {
    ($failure:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(self.0.fail($failure))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(self.0.fail($failure))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(self.0.fail($failure))
        }
        fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
            Err(self.0.fail($failure))
        }
        fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
            Err(self.0.fail($failure))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(self.0.fail($failure))
        }
        fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
            Err(self.0.fail($failure))
        }
        fn visit_some<D: Deserializer<'de>>(self, _: D) -> Result<Self::Value, D::Error> {
            Err(self.0.fail($failure))
        }
        fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.0.fail($failure))
        }
    };
}

/// Reads `$name` with `deserialize_any`, so that its visitor sees every kind of input.
macro_rules! seed_via_visitor {
    ($name:ident -> $value:ty) => {
        impl<'de> DeserializeSeed<'de> for $name<'_, '_> {
            type Value = $value;
            fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<$value, D::Error> {
                de.deserialize_any(self)
            }
        }
    };
}

/// An empty value (`key:` or `key: null`) reads as `$empty`.
macro_rules! empty_reads_as {
    ($empty:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($empty)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($empty)
        }
    };
}

mod uses;
pub(super) use uses::{RawUsed, RawUses};

/// A scalar as written: its text (decoded for quoted styles) and, when the text was borrowed
/// from the input, its byte offset there.
pub(super) struct RawScalar {
    pub text: Zeroizing<String>,
    pub offset: Option<usize>,
}

/// The document as far as it could be read.
#[derive(Default)]
pub(super) struct RawDoc {
    /// Top-level keys in document order.
    pub top: Vec<RawScalar>,
    pub agent: Option<RawScalar>,
    /// `group:` of a shared group's manifest.
    pub group: Option<RawScalar>,
    /// `environment:` of an environment's overlay.
    pub environment: Option<RawScalar>,
    /// `uses:` as written (`None` when absent or empty).
    pub uses: Option<RawUses>,
    /// `secrets:` entries in document order (duplicates kept, so the caller can name them).
    pub secrets: Vec<(RawScalar, RawScalar)>,
    pub meta: Option<RawMeta>,
}

#[derive(Default)]
pub(super) struct RawMeta {
    pub keys: Vec<RawScalar>,
    pub recipients: Vec<String>,
}

/// Why reading stopped. None of these carry a value's text.
pub(super) enum Failure {
    /// The YAML itself is broken (libyaml's message, or an anchor/recursion/document limit).
    Yaml(serde_yaml::Error),
    /// The document is not a mapping.
    NotAMapping,
    /// A mapping key that is not a scalar.
    ComplexKey,
    /// `agent:` is not a scalar.
    AgentNotScalar,
    /// `secrets:` is neither a mapping nor empty.
    SecretsNotMapping,
    /// A secret's value is a list or a mapping (`key` is filled in once known).
    NotScalar {
        key: Option<RawScalar>,
        problem: ValueProblem,
    },
    /// The `castsync:` block is malformed.
    Meta(&'static str),
    /// `group:` is not a scalar.
    GroupNotScalar,
    /// `environment:` is not a scalar.
    EnvironmentNotScalar,
    /// The `uses:` block is malformed (the problem, in words that quote nothing).
    Uses(&'static str),
}

/// Reads `text`; on failure returns what was read before it, so that the caller can still
/// report an earlier, more useful problem (e.g. a wrong `agent`).
pub(super) fn read(text: &str) -> (RawDoc, Option<(Failure, super::Pos)>) {
    let mut state = State {
        text,
        doc: RawDoc::default(),
        failure: None,
    };
    let de = serde_yaml::Deserializer::from_str(text);
    let result = Top(&mut state).deserialize(de);
    let failure = match result {
        Ok(()) => None,
        Err(err) => {
            let pos = err.location().map_or_else(super::Pos::default, |l| {
                super::Pos::at(l.line(), l.column())
            });
            Some((state.failure.take().unwrap_or(Failure::Yaml(err)), pos))
        }
    };
    (state.doc, failure)
}

struct State<'t> {
    text: &'t str,
    doc: RawDoc,
    failure: Option<Failure>,
}

impl State<'_> {
    fn fail<E: de::Error>(&mut self, failure: Failure) -> E {
        self.failure = Some(failure);
        E::custom("castsync: see the recorded failure")
    }

    fn offset_of(&self, borrowed: &str) -> Option<usize> {
        let start = self.text.as_ptr() as usize;
        let at = borrowed.as_ptr() as usize;
        (at >= start && at + borrowed.len() <= start + self.text.len()).then(|| at - start)
    }
}

/// The text serde puts in `expecting` for a scalar read; a failed scalar read whose message
/// contains it was a list or a mapping where a scalar belongs (serde_norway reports that as
/// "invalid type: sequence|map, expected …").
const EXPECTING_SCALAR: &str = "castsync-scalar";

/// Reads one scalar as written; the error carries `Some(List | Mapping)` when it was not a
/// scalar.
fn read_scalar<'de, D: Deserializer<'de>>(
    state: &State<'_>,
    de: D,
) -> Result<RawScalar, (D::Error, Option<ValueProblem>)> {
    match de.deserialize_str(ScalarVisitor) {
        Ok(ScalarText::Borrowed(s)) => Ok(RawScalar {
            offset: state.offset_of(s),
            text: Zeroizing::new(s.to_owned()),
        }),
        Ok(ScalarText::Owned(text)) => Ok(RawScalar { text, offset: None }),
        Err(err) => {
            let msg = err.to_string();
            let kind = if !msg.contains(EXPECTING_SCALAR) {
                None
            } else if msg.contains("sequence") {
                Some(ValueProblem::List)
            } else {
                Some(ValueProblem::Mapping)
            };
            Err((err, kind))
        }
    }
}

/// Reads one scalar as written; a list or a mapping in its place fails with `failure`.
fn scalar_or<'de, D: Deserializer<'de>>(
    state: &mut State<'_>,
    de: D,
    failure: Failure,
) -> Result<RawScalar, D::Error> {
    read_scalar(state, de).map_err(|(err, kind)| match kind {
        Some(_) => state.fail(failure),
        None => err,
    })
}

enum ScalarText<'de> {
    Borrowed(&'de str),
    Owned(Zeroizing<String>),
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = ScalarText<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTING_SCALAR)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(ScalarText::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(ScalarText::Owned(Zeroizing::new(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(ScalarText::Owned(Zeroizing::new(v)))
    }
}

/// Answers every kind of input that is not a mapping (or null) with `$failure`, so that no
/// serde default (which quotes the value) can produce the error.
macro_rules! refuse_non_mappings {
    ($failure:expr) => {
        refuse_scalars!($failure);
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(self.0.fail($failure))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.0.fail($failure))
        }
    };
}

/// The whole document.
struct Top<'s, 't>(&'s mut State<'t>);

seed_via_visitor!(Top -> ());

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a manifest mapping")
    }

    refuse_non_mappings!(Failure::NotAMapping);

    empty_reads_as!(());

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        while let Some(key) = map.next_key_seed(Key(state))? {
            let name = key.text.as_str().to_owned();
            state.doc.top.push(key);
            match name.as_str() {
                "agent" => map.next_value_seed(Agent(state))?,
                "group" => map.next_value_seed(uses::Group(state))?,
                "environment" => map.next_value_seed(EnvironmentName(state))?,
                "uses" => map.next_value_seed(uses::Uses(state))?,
                "secrets" => map.next_value_seed(Secrets(state))?,
                "castsync" => map.next_value_seed(Meta(state))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A mapping key: a scalar, read as written.
struct Key<'s, 't>(&'s mut State<'t>);

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    type Value = RawScalar;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<RawScalar, D::Error> {
        scalar_or(self.0, de, Failure::ComplexKey)
    }
}

struct Agent<'s, 't>(&'s mut State<'t>);

impl<'de> DeserializeSeed<'de> for Agent<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        self.0.doc.agent = Some(scalar_or(self.0, de, Failure::AgentNotScalar)?);
        Ok(())
    }
}

/// `environment:` of an overlay.
struct EnvironmentName<'s, 't>(&'s mut State<'t>);

impl<'de> DeserializeSeed<'de> for EnvironmentName<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        match read_scalar(self.0, de) {
            Ok(scalar) => {
                self.0.doc.environment = Some(scalar);
                Ok(())
            }
            Err((_, Some(_))) => Err(self.0.fail(Failure::EnvironmentNotScalar)),
            Err((err, None)) => Err(err),
        }
    }
}

struct Secrets<'s, 't>(&'s mut State<'t>);

seed_via_visitor!(Secrets -> ());

impl<'de> Visitor<'de> for Secrets<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of secrets")
    }

    refuse_non_mappings!(Failure::SecretsNotMapping);

    empty_reads_as!(());

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        while let Some(key) = map.next_key_seed(Key(state))? {
            match map.next_value_seed(SecretValue(state)) {
                Ok(value) => state.doc.secrets.push((key, value)),
                Err(err) => {
                    if let Some(Failure::NotScalar { key: slot, .. }) = &mut state.failure {
                        *slot = Some(key);
                    }
                    return Err(err);
                }
            }
        }
        Ok(())
    }
}

struct SecretValue<'s, 't>(&'s mut State<'t>);

impl<'de> DeserializeSeed<'de> for SecretValue<'_, '_> {
    type Value = RawScalar;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<RawScalar, D::Error> {
        read_scalar(self.0, de).map_err(|(err, kind)| match kind {
            Some(problem) => self.0.fail(Failure::NotScalar { key: None, problem }),
            None => err,
        })
    }
}

/// The `castsync:` metadata block: `{ recipients: [ … ] }`.
struct Meta<'s, 't>(&'s mut State<'t>);

const META_NOT_MAPPING: &str =
    "the castsync: block must be a mapping such as `castsync: { recipients: [...] }`";
const RECIPIENTS_NOT_LIST: &str = "castsync.recipients must be a list of recipient strings";

seed_via_visitor!(Meta -> ());

impl<'de> Visitor<'de> for Meta<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the castsync metadata mapping")
    }

    refuse_non_mappings!(Failure::Meta(META_NOT_MAPPING));

    empty_reads_as!(());

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        let mut meta = RawMeta::default();
        while let Some(key) = map.next_key_seed(Key(state))? {
            if key.text.as_str() == "recipients" {
                meta.recipients = map.next_value_seed(Recipients(state))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
            meta.keys.push(key);
        }
        state.doc.meta = Some(meta);
        Ok(())
    }
}

struct Recipients<'s, 't>(&'s mut State<'t>);

seed_via_visitor!(Recipients -> Vec<String>);

impl<'de> Visitor<'de> for Recipients<'_, '_> {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of recipients")
    }

    refuse_scalars!(Failure::Meta(RECIPIENTS_NOT_LIST));
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(self.0.fail(Failure::Meta(RECIPIENTS_NOT_LIST)))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.0.fail(Failure::Meta(RECIPIENTS_NOT_LIST)))
    }

    empty_reads_as!(Vec::new());

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let state = self.0;
        let mut out = Vec::new();
        while let Some(item) = seq.next_element_seed(Recipient(state))? {
            out.push(item);
        }
        Ok(out)
    }
}

struct Recipient<'s, 't>(&'s mut State<'t>);

impl<'de> DeserializeSeed<'de> for Recipient<'_, '_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<String, D::Error> {
        let scalar = scalar_or(self.0, de, Failure::Meta(RECIPIENTS_NOT_LIST))?;
        Ok(scalar.text.as_str().to_owned())
    }
}
