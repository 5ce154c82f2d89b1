//! The first pass over `group:` and `uses:`: what the YAML says, as written, with offsets for
//! line numbers. The rules (valid names, no duplicates, no empty lists) are applied by
//! `manifest::uses`; like the rest of the reader, nothing here may echo a scalar's text.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use zeroize::Zeroizing;

use super::{Failure, Key, RawScalar, State, scalar_or};

/// `uses:` as written.
pub(in crate::manifest) enum RawUses {
    /// `uses: [openai, stripe]`: every key of each group.
    List(Vec<RawScalar>),
    /// `uses: {openai: [OPENAI_API_KEY], stripe: "*"}`.
    Map(Vec<(RawScalar, RawUsed)>),
}

/// What one group entry of the mapping form takes.
pub(in crate::manifest) enum RawUsed {
    /// A scalar: only `"*"` (every key) is valid; the rules check the text.
    Scalar(RawScalar),
    /// A list of key names.
    Keys(Vec<RawScalar>),
}

const USES_SHAPE: &str = "`uses:` must be a list of group names (`uses: [openai]`: every key of each group) or a mapping of group to key names (`uses: {openai: [OPENAI_API_KEY]}`)";
const LIST_ITEM: &str =
    "each item of the `uses:` list must be a group name, not a list or a mapping";
const GROUP_ENTRY: &str = "each group under `uses:` takes a list of key names (`openai: [OPENAI_API_KEY]`) or \"*\" for every key of the group";

/// `group:` of a shared group's manifest.
pub(in crate::manifest) struct Group<'s, 't>(pub &'s mut State<'t>);

impl<'de> DeserializeSeed<'de> for Group<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        self.0.doc.group = Some(scalar_or(self.0, de, Failure::GroupNotScalar)?);
        Ok(())
    }
}

/// `uses:`.
pub(in crate::manifest) struct Uses<'s, 't>(pub &'s mut State<'t>);

seed_via_visitor!(Uses -> ());

impl<'de> Visitor<'de> for Uses<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the uses block")
    }

    refuse_scalars!(Failure::Uses(USES_SHAPE));

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.0.fail(Failure::Uses(USES_SHAPE)))
    }

    empty_reads_as!(());

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let names = scalar_list(self.0, seq, LIST_ITEM)?;
        self.0.doc.uses = Some(RawUses::List(names));
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        let mut entries = Vec::new();
        while let Some(group) = map.next_key_seed(Key(state))? {
            let used = map.next_value_seed(Used(state))?;
            entries.push((group, used));
        }
        state.doc.uses = Some(RawUses::Map(entries));
        Ok(())
    }
}

/// The scalars of a list; a list or mapping among them fails with `problem`.
fn scalar_list<'de, A: SeqAccess<'de>>(
    state: &mut State<'_>,
    mut seq: A,
    problem: &'static str,
) -> Result<Vec<RawScalar>, A::Error> {
    let mut out = Vec::new();
    while let Some(item) = seq.next_element_seed(Item(state, problem))? {
        out.push(item);
    }
    Ok(out)
}

struct Item<'s, 't>(&'s mut State<'t>, &'static str);

impl<'de> DeserializeSeed<'de> for Item<'_, '_> {
    type Value = RawScalar;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<RawScalar, D::Error> {
        scalar_or(self.0, de, Failure::Uses(self.1))
    }
}

/// The value of one group entry of the mapping form.
struct Used<'s, 't>(&'s mut State<'t>);

seed_via_visitor!(Used -> RawUsed);

impl<'de> Visitor<'de> for Used<'_, '_> {
    type Value = RawUsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of key names")
    }

    refuse_scalars!(Failure::Uses(GROUP_ENTRY));

    fn visit_unit<E: de::Error>(self) -> Result<RawUsed, E> {
        Err(self.0.fail(Failure::Uses(GROUP_ENTRY)))
    }

    fn visit_none<E: de::Error>(self) -> Result<RawUsed, E> {
        Err(self.0.fail(Failure::Uses(GROUP_ENTRY)))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<RawUsed, E> {
        Ok(RawUsed::Scalar(RawScalar {
            offset: self.0.offset_of(v),
            text: Zeroizing::new(v.to_owned()),
        }))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawUsed, E> {
        Ok(RawUsed::Scalar(RawScalar {
            offset: None,
            text: Zeroizing::new(v.to_owned()),
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawUsed, A::Error> {
        scalar_list(self.0, seq, GROUP_ENTRY).map(RawUsed::Keys)
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<RawUsed, A::Error> {
        Err(self.0.fail(Failure::Uses(GROUP_ENTRY)))
    }
}
