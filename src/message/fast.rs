//!
//! A borrowed, typed parse of `content_block_delta` events for the accumulator's fast
//! path. It accepts only plain objects with distinct keys, so whatever it accepts, the
//! `Value` path reads the same way; anything else is `None`.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Thinking,
    InputJson,
    Other,
}

#[derive(Debug)]
pub struct Delta<'a> {
    pub index: u64,
    pub kind: Kind,
    /// `text`, `thinking` or `partial_json`, as the kind says; empty when absent.
    pub text: Cow<'a, str>,
}

/// Parses `{"type":"content_block_delta","index":N,"delta":{"type":…,…}}`. With
/// `untyped` (no `event:` line) the data's `type` must say `content_block_delta`;
/// otherwise it is not looked at, as in the `Value` path.
pub fn parse_delta(data: &str, untyped: bool) -> Option<Delta<'_>> {
    let mut de = serde_json::Deserializer::from_str(data);
    let delta = de.deserialize_map(EventVisitor { untyped }).ok()?;
    de.end().ok()?;
    let (kind, text) = match delta.delta_type.as_deref() {
        Some("text_delta") => (Kind::Text, delta.text),
        Some("thinking_delta") => (Kind::Thinking, delta.thinking),
        Some("input_json_delta") => (Kind::InputJson, delta.partial_json),
        _ => (Kind::Other, None),
    };
    if kind == Kind::Other {
        return None;
    }
    Some(Delta {
        index: delta.index,
        kind,
        text: text.unwrap_or(Cow::Borrowed("")),
    })
}

struct Fields<'a> {
    index: u64,
    delta_type: Option<Cow<'a, str>>,
    text: Option<Cow<'a, str>>,
    thinking: Option<Cow<'a, str>>,
    partial_json: Option<Cow<'a, str>>,
}

/// Any failure: the caller falls back and learns nothing from the message.
fn bail<E: de::Error>() -> E {
    E::custom("not for the fast path")
}

/// Sets a field once; a second occurrence of the key is refused (the `Value`
/// path would keep the last one).
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(bail());
    }
    *slot = Some(value);
    Ok(())
}

struct EventVisitor {
    untyped: bool,
}

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a content_block_delta object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut event_type = None;
        let mut index = None;
        let mut delta = None;
        while let Some(key) = map.next_key_seed(Str)? {
            match key.as_ref() {
                "type" if self.untyped => {
                    let t = map.next_value_seed(Str)?;
                    if t != "content_block_delta" {
                        return Err(bail());
                    }
                    once(&mut event_type, ())?;
                }
                "index" => once(&mut index, map.next_value::<u64>()?)?,
                "delta" => once(&mut delta, map.next_value_seed(DeltaSeed)?)?,
                // Keys the `Value` path does not read: skipped, repeats and all.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if self.untyped && event_type.is_none() {
            return Err(bail());
        }
        let (Some(index), Some(mut fields)) = (index, delta) else {
            return Err(bail());
        };
        fields.index = index;
        Ok(fields)
    }
}

struct DeltaSeed;

impl<'de> DeserializeSeed<'de> for DeltaSeed {
    type Value = Fields<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Fields<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DeltaSeed {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a delta object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Fields {
            index: 0,
            delta_type: None,
            text: None,
            thinking: None,
            partial_json: None,
        };
        while let Some(key) = map.next_key_seed(Str)? {
            let slot = match key.as_ref() {
                "type" => &mut fields.delta_type,
                "text" => &mut fields.text,
                "thinking" => &mut fields.thinking,
                "partial_json" => &mut fields.partial_json,
                // Keys the `Value` path does not read: skipped, repeats and all.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            once(slot, map.next_value_seed(Str)?)?;
        }
        Ok(fields)
    }
}

/// A string, borrowed from the input when it has no escapes.
struct Str;

impl<'de> DeserializeSeed<'de> for Str {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Str {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}
