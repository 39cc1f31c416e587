//! Event fields as they arrive, before their types are checked.
//!
//! Validation must name every bad field, so a field cannot simply be typed
//! (serde would stop at the first mismatch). A `serde_json::Value` per field
//! did the job but allocated every string and object. [`Loose`] keeps only
//! what validation reads: strings (borrowed from the input when they hold
//! no escapes), booleans, non-negative integers, and the *kind* of anything
//! else. [`Shaped`] is the same for the two nested objects.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One JSON value, kept as far as validation needs it.
#[derive(Debug)]
pub(super) enum Loose<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    /// A non-negative integer (what an age can be).
    UInt(u64),
    /// Any other value, by kind: "a number", "an array", ….
    Other(&'static str),
}

impl<'a> Loose<'a> {
    /// "a string", "a boolean", …: for error details.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Loose::Str(_) => "a string",
            Loose::Bool(_) => "a boolean",
            Loose::UInt(_) => "a number",
            Loose::Other(kind) => kind,
        }
    }

    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Loose::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A field that should be an object of shape `T`.
#[derive(Debug)]
pub(super) enum Shaped<T> {
    Object(T),
    /// Not an object: its kind, for the error detail.
    Other(&'static str),
}

/// Skips a sequence or a map, so a wrong-kind value can still be stepped over.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Loose<'de>, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Loose<'de>, E> {
        Ok(Loose::UInt(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Loose<'de>, E> {
        Ok(u64::try_from(v).map_or(Loose::Other("a number"), Loose::UInt))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Loose<'de>, E> {
        Ok(Loose::Other("a number"))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Loose<'de>, E> {
        Ok(Loose::Other("null"))
    }
    fn visit_none<E>(self) -> Result<Loose<'de>, E> {
        Ok(Loose::Other("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Loose<'de>, A::Error> {
        drain_seq(seq).map(|()| Loose::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Loose<'de>, A::Error> {
        drain_map(map).map(|()| Loose::Other("an object"))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Loose<'a>, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

struct ShapedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ShapedVisitor<T> {
    type Value = Shaped<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Shaped<T>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Shaped::Object)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Shaped<T>, E> {
        Ok(Shaped::Other("a boolean"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Shaped<T>, E> {
        Ok(Shaped::Other("a number"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Shaped<T>, E> {
        Ok(Shaped::Other("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Shaped<T>, E> {
        Ok(Shaped::Other("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Shaped<T>, E> {
        Ok(Shaped::Other("a string"))
    }
    fn visit_unit<E>(self) -> Result<Shaped<T>, E> {
        Ok(Shaped::Other("null"))
    }
    fn visit_none<E>(self) -> Result<Shaped<T>, E> {
        Ok(Shaped::Other("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Shaped<T>, A::Error> {
        drain_seq(seq).map(|()| Shaped::Other("an array"))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shaped<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Shaped<T>, D::Error> {
        d.deserialize_any(ShapedVisitor(PhantomData))
    }
}
