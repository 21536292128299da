//! Refuses a JSON request body that names a field twice, or a map key
//! twice, before prost-reflect reads it: prost-reflect keeps the last, so
//! `{"hours":1,"hours":2}` would store 2 and an upload naming `user_id` and
//! `userId` would belong to whichever came last, which a proxy or a log may
//! read the other way. The protobuf JSON conformance suite requires a parse
//! failure here (FieldNameDuplicate*).
//!
//! One pass over the body with the descriptor, keeping nothing but the keys
//! of the object being read. It runs only on the general path: the direct
//! writer (`request_json`) steps aside on a repeated key.

use std::{borrow::Cow, collections::HashSet, fmt};

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

/// Scalars and `null` hold no keys: whether they fit the field is the
/// parser's to judge.
macro_rules! accept_scalars {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }
    };
}

/// Walks `json`, the whole `desc` message or (with `field`) that field's value.
pub(super) fn check(
    desc: &MessageDescriptor,
    field: Option<&FieldDescriptor>,
    json: &[u8],
) -> Result<(), serde_json::Error> {
    let mut input = serde_json::Deserializer::from_slice(json);
    match field {
        None => FieldsOf(desc).deserialize(&mut input),
        Some(field) => ValueOf(field).deserialize(&mut input),
    }
}

/// A map key as the map reads it: integer keys by value (`"1"` and `"01"`
/// are one key), anything else by its text.
#[derive(PartialEq, Eq, Hash)]
enum MapKey<'a> {
    Number(i128),
    Text(Cow<'a, str>),
}

impl<'a> MapKey<'a> {
    fn of(kind: Option<&Kind>, key: &Cow<'a, str>) -> Self {
        let integer = matches!(
            kind,
            Some(
                Kind::Int32
                    | Kind::Int64
                    | Kind::Uint32
                    | Kind::Uint64
                    | Kind::Sint32
                    | Kind::Sint64
                    | Kind::Fixed32
                    | Kind::Fixed64
                    | Kind::Sfixed32
                    | Kind::Sfixed64
            )
        );
        match key.parse::<i128>() {
            Ok(number) if integer => MapKey::Number(number),
            _ => MapKey::Text(key.clone()),
        }
    }
}

/// Walks a JSON object as `desc` reads it and refuses a field named twice,
/// under one name or under both its JSON and proto names (the protobuf JSON
/// conformance suite's FieldNameDuplicate cases), and a map key given twice.
/// Anything else is left alone: unknown keys, wrong types and the
/// well-known types' own forms are the parser's to judge.
struct FieldsOf<'a>(&'a MessageDescriptor);

impl<'de> DeserializeSeed<'de> for FieldsOf<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldsOf<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if is_well_known(self.0) {
            while map
                .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                .is_some()
            {}
            return Ok(());
        }
        let mut seen = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            // Resolved as prost-reflect resolves it: JSON name, then proto name.
            let field = self
                .0
                .get_field_by_json_name(&key)
                .or_else(|| self.0.get_field_by_name(&key));
            match field {
                Some(field) if seen.contains(&field.number()) => {
                    return Err(de::Error::custom(format_args!(
                        "field `{}` given more than once",
                        field.json_name()
                    )));
                }
                Some(field) => {
                    seen.push(field.number());
                    map.next_value_seed(ValueOf(&field))?;
                }
                None => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(())
    }

    accept_scalars!();
}

/// The value of one field, walked for [`FieldsOf`]'s check.
struct ValueOf<'a>(&'a FieldDescriptor);

impl<'de> DeserializeSeed<'de> for ValueOf<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl ValueOf<'_> {
    /// A map's key kind.
    fn key_kind(&self) -> Option<Kind> {
        match self.0.kind() {
            Kind::Message(entry) if self.0.is_map() => Some(entry.map_entry_key_field().kind()),
            _ => None,
        }
    }

    /// The message type an element (or map value) of this field is walked
    /// as; well-known types have JSON forms of their own.
    fn element(&self) -> Option<MessageDescriptor> {
        let kind = if self.0.is_map() {
            match self.0.kind() {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                _ => return None,
            }
        } else {
            self.0.kind()
        };
        match kind {
            Kind::Message(message) if !is_well_known(&message) => Some(message),
            _ => None,
        }
    }
}

/// The well-known types have JSON forms of their own (a Timestamp is a
/// string, a Struct an object of any keys), which the check leaves alone.
fn is_well_known(message: &MessageDescriptor) -> bool {
    message.package_name() == "google.protobuf"
}

impl<'de> Visitor<'de> for ValueOf<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let element = self.element();
        if !self.0.is_map() {
            return match element {
                Some(message) if !self.0.is_list() => FieldsOf(&message).visit_map(map),
                _ => {
                    while map
                        .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                        .is_some()
                    {}
                    Ok(())
                }
            };
        }
        let key_kind = self.key_kind();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if !seen.insert(MapKey::of(key_kind.as_ref(), &key)) {
                return Err(de::Error::custom(format_args!(
                    "map `{}` has the key {key:?} more than once",
                    self.0.json_name()
                )));
            }
            match &element {
                Some(message) => map.next_value_seed(FieldsOf(message))?,
                None => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        match self.element().filter(|_| self.0.is_list()) {
            Some(message) => while seq.next_element_seed(FieldsOf(&message))?.is_some() {},
            None => while seq.next_element::<de::IgnoredAny>()?.is_some() {},
        }
        Ok(())
    }

    accept_scalars!();
}
