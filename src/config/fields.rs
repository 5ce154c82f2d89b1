//! The field names serde's derive knows for a struct, read straight from the derive.
//!
//! The unknown-field check and the JSON Schema sync test both need the list of valid names;
//! asking the derive (which passes them to `Deserializer::deserialize_struct`) means the list
//! can never drift from the Rust type.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::fmt;

/// The names of the fields that `T`'s derived `Deserialize` accepts (empty if `T` is not a
/// struct).
pub fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The probe always stops with an error once it has seen the field list.
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

struct Probe<'a>(&'a mut &'static [&'static str]);

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = fields;
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        alpha: u8,
        #[serde(rename = "beta_two")]
        beta: String,
    }

    #[test]
    fn the_probe_reads_field_names_as_serde_sees_them() {
        assert_eq!(fields_of::<Sample>(), &["alpha", "beta_two"]);
    }

    #[test]
    fn a_type_that_is_not_a_struct_has_no_fields() {
        assert!(fields_of::<String>().is_empty());
    }
}
