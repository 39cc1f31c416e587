//! One reading of the JSON text, before any field is looked at.
//!
//! An approved event leaves the gate as the input bytes, unchanged, so the
//! carrier's parser reads the same text the gate decided on. Parsers
//! disagree on duplicate keys (first wins, last wins, an error) and on how
//! deep they nest; an event that two parsers could read differently is
//! `malformed`. This pass walks the whole value once and refuses a
//! duplicate key at any level and nesting deeper than [`MAX_DEPTH`]; it
//! allocates only for keys that hold escapes and for objects of many keys.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use smallvec::SmallVec;

/// Objects and arrays nested deeper than this are malformed. The contract's
/// event is 2 deep; 64 leaves room for upstream metadata and stays under
/// serde_json's own limit of 128.
pub const MAX_DEPTH: usize = 64;

/// Objects with more keys than this are checked with a hash set instead of
/// a scan, so a 64 KiB object of distinct keys costs linear time.
const SCAN_KEYS: usize = 16;

/// Field names of the contract (§2): a duplicate of one is named in the
/// detail; any other key is not (it could hold personal data).
const CONTRACT_KEYS: &[&str] = &[
    "message_id",
    "created_at",
    "to",
    "sender",
    "category",
    "body",
    "campaign_id",
    "subject",
    "template_id",
    "recipient",
    "targeting",
    "age",
    "student",
    "region",
    "timezone",
    "personalized",
];

/// Walks `text` as one JSON value. `Err` holds the detail for `malformed`.
pub(super) fn audit(text: &str) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_str(text);
    Node::TOP
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| {
            if e.is_syntax() || e.is_eof() {
                format!("not JSON: {e}")
            } else {
                e.to_string()
            }
        })
}

/// The nesting level of a value (the top level is 0).
#[derive(Clone, Copy)]
pub(super) struct Node {
    depth: usize,
}

impl Node {
    pub(super) const TOP: Node = Node { depth: 0 };

    /// The level of the values inside this one, or the error for nesting
    /// too deep.
    pub(super) fn child<E: serde::de::Error>(self) -> Result<Node, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!(
                "nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(Node {
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Node {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let child = self.child()?;
        while seq.next_element_seed(child)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let child = self.child()?;
        let mut keys = Keys::default();
        while keys.next(&mut map)?.is_some() {
            map.next_value_seed(child)?;
        }
        Ok(())
    }
}

/// The keys of one object so far: the next key is an error if it repeats
/// one of them.
#[derive(Default)]
pub(super) struct Keys<'de> {
    /// Scanned: most objects have a few keys, kept without allocating.
    few: SmallVec<[Cow<'de, str>; SCAN_KEYS]>,
    /// Replaces `few` past [`SCAN_KEYS`].
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Keys<'de> {
    /// The next key of `map`, or `None` at the end of the object.
    pub(super) fn next<A: MapAccess<'de>>(
        &mut self,
        map: &mut A,
    ) -> Result<Option<Cow<'de, str>>, A::Error> {
        let Some(key) = next_key(map)? else {
            return Ok(None);
        };
        self.insert(key.clone())?;
        Ok(Some(key))
    }

    /// Remembers `key`; an error if it was seen before.
    pub(super) fn insert<E: serde::de::Error>(&mut self, key: Cow<'de, str>) -> Result<(), E> {
        if let Some(set) = self.many.as_mut() {
            if set.contains(&key) {
                return Err(duplicate_key(&key));
            }
            set.insert(key);
            return Ok(());
        }
        if self.few.contains(&key) {
            return Err(duplicate_key(&key));
        }
        self.few.push(key);
        if self.few.len() == SCAN_KEYS {
            self.many = Some(self.few.drain(..).collect());
        }
        Ok(())
    }
}

/// The next key of an object, borrowed from the input when it can be.
pub(super) fn next_key<'de, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<Option<Cow<'de, str>>, A::Error> {
    Ok(map.next_key::<Key<'de>>()?.map(|Key(k)| k))
}

/// A repeated key of an object, named only when it is a contract field.
pub(super) fn duplicate_key<E: serde::de::Error>(key: &str) -> E {
    if CONTRACT_KEYS.contains(&key) {
        E::custom(format_args!("duplicate key \"{key}\""))
    } else {
        E::custom("duplicate key (not a contract field)")
    }
}

/// An object key, borrowed from the input when it holds no escape.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_string())))
    }
}

/// A control character that has no place in a text field: C0 and C1
/// controls and DEL. `multiline` fields (the body) keep tab, LF and CR.
pub(super) fn control_character(s: &str, multiline: bool) -> Option<char> {
    // Every control character starts with one of these bytes in UTF-8 (C1
    // controls are C2 80–9F): a byte scan settles almost every text.
    // (A branch-free fold, so the compiler vectorizes it.)
    let suspect = s
        .bytes()
        .fold(false, |hit, b| hit | (b < 0x20) | (b == 0x7f) | (b == 0xc2));
    if !suspect {
        return None;
    }
    s.chars()
        .find(|&c| c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_at_any_level_are_refused() {
        assert_eq!(
            audit(r#"{"to":"+1","body":"a","to":"+2"}"#).unwrap_err(),
            "duplicate key \"to\" at line 1 column 26"
        );
        assert!(audit(r#"{"recipient":{"age":1,"age":2}}"#).is_err());
        assert!(
            audit(r#"{"x":[{"+8613812345678":1,"+8613812345678":2}]}"#)
                .unwrap_err()
                .starts_with("duplicate key (not a contract field)")
        );
        // An escaped spelling of the same key is the same key.
        assert!(audit(r#"{"to":1,"t\u006f":2}"#).is_err());
        // The same key in two different objects is fine.
        assert!(audit(r#"{"a":{"k":1},"b":{"k":1},"k":[{"k":1}]}"#).is_ok());
    }

    #[test]
    fn many_keys_switch_to_a_set_and_still_find_a_repeat() {
        let keys: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
        let ok = format!("{{{}}}", keys.join(","));
        assert!(audit(&ok).is_ok());
        let bad = format!("{{{},\"k3\":0}}", keys.join(","));
        assert!(audit(&bad).unwrap_err().starts_with("duplicate key"));
    }

    #[test]
    fn nesting_is_capped_at_64() {
        let nest = |n: usize| format!("{{\"x\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        // The object is level 1, so 63 arrays inside it make 64 levels.
        assert!(audit(&nest(MAX_DEPTH - 1)).is_ok());
        assert!(
            audit(&nest(MAX_DEPTH))
                .unwrap_err()
                .starts_with("nested deeper than 64 levels")
        );
        assert!(audit(&nest(20_000)).is_err());
    }

    #[test]
    fn trailing_text_and_bad_json_are_not_json() {
        assert!(audit("{} {}").unwrap_err().starts_with("not JSON"));
        assert!(audit("{").unwrap_err().starts_with("not JSON"));
    }

    #[test]
    fn control_characters() {
        assert_eq!(control_character("a\u{0}b", true), Some('\u{0}'));
        assert_eq!(control_character("line\nnext\r\n\tx", true), None);
        assert_eq!(control_character("a\nb", false), Some('\n'));
        assert_eq!(control_character("x\u{7f}", true), Some('\u{7f}'));
        assert_eq!(control_character("x\u{85}", true), Some('\u{85}'));
        assert_eq!(control_character("退订 🙂", false), None);
    }
}
