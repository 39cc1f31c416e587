//! Event fields as they arrive, before their types are checked.
//!
//! Validation must name every bad field, so a field cannot simply be typed
//! (serde would stop at the first mismatch). A `serde_json::Value` per field
//! did the job but allocated every string and object. [`Loose`] keeps only
//! what validation reads: strings (borrowed from the input when they hold
//! no escapes), booleans, non-negative integers, and the *kind* of anything
//! else. [`Shaped`] is the same for the two nested objects.
//!
//! The readers here are also the strict reading (strict.rs) of everything
//! they step over: a repeated key or nesting too deep anywhere fails the
//! whole read, in the same single pass.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::strict::{Keys, Node, duplicate_key, next_key};

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

/// The event's fields as they arrive; unknown keys are read strictly and
/// dropped.
#[derive(Default)]
pub(super) struct Raw<'a> {
    pub message_id: Option<Loose<'a>>,
    pub created_at: Option<Loose<'a>>,
    pub to: Option<Loose<'a>>,
    pub sender: Option<Loose<'a>>,
    pub category: Option<Loose<'a>>,
    pub body: Option<Loose<'a>>,
    pub campaign_id: Option<Loose<'a>>,
    pub subject: Option<Loose<'a>>,
    pub template_id: Option<Loose<'a>>,
    pub recipient: Option<Shaped<RawRecipient<'a>>>,
    pub targeting: Option<Shaped<RawTargeting<'a>>>,
}

/// `recipient` as it arrives.
#[derive(Default)]
pub(super) struct RawRecipient<'a> {
    pub age: Option<Loose<'a>>,
    pub student: Option<Loose<'a>>,
    pub region: Option<Loose<'a>>,
    pub timezone: Option<Loose<'a>>,
}

/// `targeting` as it arrives.
#[derive(Default)]
pub(super) struct RawTargeting<'a> {
    pub personalized: Option<Loose<'a>>,
}

/// An object read key by key: known keys into their slot, the rest read
/// strictly and dropped.
trait Object<'de>: Default {
    /// Reads the value of `key` if it is one of this object's fields (`at`:
    /// the level of that value) and returns the field's number (0–31), or
    /// `None`, reading nothing, for any other key.
    fn field<A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        at: Node,
    ) -> Result<Option<u32>, A::Error>;
}

/// A field's value; `null` counts as absent.
fn loose<'de, A: MapAccess<'de>>(map: &mut A, at: Node) -> Result<Option<Loose<'de>>, A::Error> {
    map.next_value_seed(LooseSeed(at))
        .map(|v| (!matches!(v, Loose::Other("null"))).then_some(v))
}

/// A nested object's value; `null` counts as absent.
fn shaped<'de, T: Object<'de>, A: MapAccess<'de>>(
    map: &mut A,
    at: Node,
) -> Result<Option<Shaped<T>>, A::Error> {
    map.next_value_seed(ShapedSeed(at, PhantomData))
        .map(|v| (!matches!(v, Shaped::Other("null"))).then_some(v))
}

impl<'de> Object<'de> for Raw<'de> {
    fn field<A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        at: Node,
    ) -> Result<Option<u32>, A::Error> {
        let (n, slot) = match key {
            "message_id" => (0, &mut self.message_id),
            "created_at" => (1, &mut self.created_at),
            "to" => (2, &mut self.to),
            "sender" => (3, &mut self.sender),
            "category" => (4, &mut self.category),
            "body" => (5, &mut self.body),
            "campaign_id" => (6, &mut self.campaign_id),
            "subject" => (7, &mut self.subject),
            "template_id" => (8, &mut self.template_id),
            "recipient" => {
                self.recipient = shaped(map, at)?;
                return Ok(Some(9));
            }
            "targeting" => {
                self.targeting = shaped(map, at)?;
                return Ok(Some(10));
            }
            _ => return Ok(None),
        };
        *slot = loose(map, at)?;
        Ok(Some(n))
    }
}

impl<'de> Object<'de> for RawRecipient<'de> {
    fn field<A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        at: Node,
    ) -> Result<Option<u32>, A::Error> {
        let (n, slot) = match key {
            "age" => (0, &mut self.age),
            "student" => (1, &mut self.student),
            "region" => (2, &mut self.region),
            "timezone" => (3, &mut self.timezone),
            _ => return Ok(None),
        };
        *slot = loose(map, at)?;
        Ok(Some(n))
    }
}

impl<'de> Object<'de> for RawTargeting<'de> {
    fn field<A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        at: Node,
    ) -> Result<Option<u32>, A::Error> {
        if key != "personalized" {
            return Ok(None);
        }
        self.personalized = loose(map, at)?;
        Ok(Some(0))
    }
}

/// Reads one object whose own level is `node`. Known fields are told
/// apart from repeats by a bit each; only other keys are remembered.
fn read_object<'de, T: Object<'de>, A: MapAccess<'de>>(
    node: Node,
    mut map: A,
) -> Result<T, A::Error> {
    let child = node.child()?;
    let mut known = 0u32;
    let mut others = Keys::default();
    let mut out = T::default();
    while let Some(key) = next_key(&mut map)? {
        match out.field(&key, &mut map, child)? {
            Some(n) if known & (1 << n) != 0 => return Err(duplicate_key(&key)),
            Some(n) => known |= 1 << n,
            None => {
                map.next_value_seed(child)?;
                others.insert(key)?;
            }
        }
    }
    Ok(out)
}

impl<'de> serde::Deserialize<'de> for Raw<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjectVisitor(Node::TOP, PhantomData))
    }
}

struct ObjectVisitor<T>(Node, PhantomData<T>);

impl<'de, T: Object<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        read_object(self.0, map)
    }
}

/// A [`Loose`] value at a level.
#[derive(Clone, Copy)]
struct LooseSeed(Node);

impl<'de> DeserializeSeed<'de> for LooseSeed {
    type Value = Loose<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Loose<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LooseSeed {
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
        self.0.visit_seq(seq).map(|()| Loose::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Loose<'de>, A::Error> {
        self.0.visit_map(map).map(|()| Loose::Other("an object"))
    }
}

/// A [`Shaped`] object at a level.
struct ShapedSeed<T>(Node, PhantomData<T>);

impl<'de, T: Object<'de>> DeserializeSeed<'de> for ShapedSeed<T> {
    type Value = Shaped<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Shaped<T>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Object<'de>> Visitor<'de> for ShapedSeed<T> {
    type Value = Shaped<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Shaped<T>, A::Error> {
        read_object(self.0, map).map(Shaped::Object)
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
        self.0.visit_seq(seq).map(|()| Shaped::Other("an array"))
    }
}
