//! JSON ↔ `DynamicMessage`, straight through prost-reflect's serde support:
//! a request body into the whole message or into one field of it, and a
//! response message (or its `response_body` field) out. No
//! `serde_json::Value` in between; a body is scanned once beforehand for
//! repeated keys (`unique_keys`), which prost-reflect would let through.
//!
//! Numbers sent as strings (Android's `"hours":"8"`) need nothing here:
//! prost-reflect's float and integer visitors accept decimal strings, as the
//! proto3 JSON mapping allows.

use std::io;

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, MessageDescriptor, SerializeOptions,
};
use serde::{
    Deserializer, Serialize, Serializer,
    de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor},
    ser::{self, Impossible, SerializeMap},
};

/// The content type of every response body the transcoder writes.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// A message with its serialization options, as one `Serialize` value.
pub(crate) struct WithOptions<'a>(pub &'a DynamicMessage, pub &'a SerializeOptions);

impl Serialize for WithOptions<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_with_options(serializer, self.1)
    }
}

/// Refuses JSON nested deeper than `max_depth` with one linear scan, before
/// the recursive parser sees it (serde_json's own limit is 128 and not
/// configurable).
pub(crate) fn check_depth(
    json: &[u8],
    max_depth: usize,
) -> Result<(), super::error::TranscodeError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in json {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(super::error::TranscodeError::InvalidArgument {
                        field: None,
                        message: format!(
                            "invalid JSON body: nested deeper than {max_depth} levels"
                        ),
                    });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Reads a JSON document into a new `desc` message: the whole message, or,
/// with `field`, just that top-level field, as `body: "field"` rules need.
pub(crate) fn read_message(
    desc: MessageDescriptor,
    field: Option<&FieldDescriptor>,
    json: &[u8],
    options: &DeserializeOptions,
) -> Result<DynamicMessage, serde_json::Error> {
    // prost-reflect keeps the last of a repeated key; refuse it first.
    super::unique_keys::check(&desc, field, json)?;
    let mut input = serde_json::Deserializer::from_slice(json);
    let message = match field {
        None => DynamicMessage::deserialize_with_options(desc, &mut input, options)?,
        Some(field) => {
            // The JSON name: prost-reflect resolves a key by JSON name
            // before proto name, and a custom `json_name` may equal
            // another field's proto name; JSON names are unique.
            let one = OneField {
                name: field.json_name(),
                value: &mut input,
            };
            DynamicMessage::deserialize_with_options(desc, one, options)?
        }
    };
    input.end()?;
    Ok(message)
}

/// Writes `message`, or only its `field`, as JSON. `proto_names` must match
/// `options`: it is how the field's key is recognised in the output.
pub(crate) fn write_message(
    message: &DynamicMessage,
    field: Option<&FieldDescriptor>,
    options: &SerializeOptions,
    proto_names: bool,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = serde_json::Serializer::new(Vec::new());
    match field {
        None => message.serialize_with_options(&mut out, options)?,
        Some(field) => {
            let name = if proto_names {
                field.name()
            } else {
                field.json_name()
            };
            message.serialize_with_options(
                PickField {
                    name,
                    out: &mut out,
                },
                options,
            )?;
        }
    }
    Ok(out.into_inner())
}

/// Presents a JSON value as the one-entry map `{name: value}`, so that
/// prost-reflect maps a body bound to one field with all its rules
/// (repeated, maps, well-known types) and positions in errors still point
/// into the client's document.
struct OneField<'a, R> {
    name: &'a str,
    value: &'a mut serde_json::Deserializer<R>,
}

impl<'de, R: serde_json::de::Read<'de>> Deserializer<'de> for OneField<'_, R> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(OneEntry {
            name: Some(self.name),
            value: Some(self.value),
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

struct OneEntry<'a, R> {
    name: Option<&'a str>,
    value: Option<&'a mut serde_json::Deserializer<R>>,
}

impl<'de, R: serde_json::de::Read<'de>> MapAccess<'de> for OneEntry<'_, R> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        self.name
            .take()
            .map(|name| seed.deserialize(name.into_deserializer()))
            .transpose()
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(value),
            None => Err(de::Error::custom("the body was read twice")),
        }
    }
}

/// Serializes only the entry `name` of the message map prost-reflect
/// writes, as the bare JSON value: `response_body` without re-implementing
/// the JSON mapping of each field kind. The other fields are skipped
/// without being serialized. A field absent from the output (an unset
/// message) becomes `null`.
struct PickField<'a, W> {
    name: &'a str,
    out: &'a mut serde_json::Serializer<W>,
}

struct PickMap<'a, W> {
    name: &'a str,
    out: &'a mut serde_json::Serializer<W>,
    picking: bool,
    found: bool,
}

fn not_a_message() -> serde_json::Error {
    ser::Error::custom("response_body needs a message with fields")
}

macro_rules! refuse {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {$(
        fn $method(self, $(_: $arg),*) -> Result<(), serde_json::Error> {
            Err(not_a_message())
        }
    )*};
}

impl<'a, W: io::Write> Serializer for PickField<'a, W> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Impossible<(), serde_json::Error>;
    type SerializeTuple = Impossible<(), serde_json::Error>;
    type SerializeTupleStruct = Impossible<(), serde_json::Error>;
    type SerializeTupleVariant = Impossible<(), serde_json::Error>;
    type SerializeMap = PickMap<'a, W>;
    type SerializeStruct = Impossible<(), serde_json::Error>;
    type SerializeStructVariant = Impossible<(), serde_json::Error>;

    refuse! {
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_str(&str), serialize_bytes(&[u8]), serialize_none(), serialize_unit(),
        serialize_unit_struct(&'static str), serialize_unit_variant(&'static str, u32, &'static str),
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Self::Error> {
        Err(not_a_message())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), Self::Error> {
        Err(not_a_message())
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Self::Error> {
        Err(not_a_message())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        Err(not_a_message())
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Self::Error> {
        Err(not_a_message())
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Self::Error> {
        Err(not_a_message())
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        Err(not_a_message())
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        Ok(PickMap {
            name: self.name,
            out: self.out,
            picking: false,
            found: false,
        })
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Self::Error> {
        Err(not_a_message())
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        Err(not_a_message())
    }
}

impl<W: io::Write> SerializeMap for PickMap<'_, W> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Self::Error> {
        // Keys are the few top-level field names, so rendering each to a
        // small string is cheaper than another Serializer implementation.
        let key = serde_json::to_string(key)?;
        self.picking = !self.found
            && key.strip_prefix('"').and_then(|k| k.strip_suffix('"')) == Some(self.name);
        Ok(())
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Self::Error> {
        if self.picking {
            value.serialize(&mut *self.out)?;
            self.found = true;
            self.picking = false;
        }
        Ok(())
    }

    fn end(self) -> Result<(), Self::Error> {
        if self.found {
            Ok(())
        } else {
            ser::Serializer::serialize_unit(&mut *self.out)
        }
    }
}
