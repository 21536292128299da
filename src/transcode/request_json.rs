//! A JSON request body written straight to protobuf bytes, for the request
//! shapes where that plainly gives what the general path gives.
//!
//! The general path (`request::build`) reads the body into a
//! `DynamicMessage` through prost-reflect's serde support and encodes that;
//! under callgrind those two steps cost a REST create 7.4k and 9.8k
//! instructions, more than the rest of its transcoding together. This
//! writer covers the common shape: singular scalars and strings, and nested
//! messages of the same kind, in proto3 files. It never decides anything
//! the general path could decide differently: whatever it does not cover
//! (another field kind, a well-known type, a oneof, `null`, a number sent
//! as a string, a repeated key, an unknown name, malformed JSON) makes it
//! step aside with `None`, and the general path reads the same body from
//! the start, with its own errors. `tests::request_json` holds the two to
//! the same message on random and mutated bodies.

use std::fmt;

use foldhash::{HashMap, HashMapExt as _};
use prost::encoding::{self, WireType};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor, Syntax};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

/// A field the writer takes, by how its value is read and written.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Double,
    Int32,
    Sint32,
    Sfixed32,
    Uint32,
    Fixed32,
    Int64,
    Sint64,
    Sfixed64,
    Uint64,
    Fixed64,
    Bool,
    String,
    /// A nested message, by its index in `Plan::messages`.
    Message(usize),
}

#[derive(Debug, Clone, Copy)]
struct Field {
    number: u32,
    /// Position among the message's fields, to notice a repeated key.
    index: u32,
    shape: Shape,
}

/// One message type: every JSON key prost-reflect accepts, resolved as it
/// resolves them (a field's JSON name first, then a proto name, since a
/// custom `json_name` may equal another field's proto name). `None` is a
/// field the writer leaves to the general path; a key missing here is no
/// field at all.
#[derive(Debug, Default)]
struct Message {
    keys: HashMap<Box<str>, Option<Field>>,
}

/// How one binding's body is written, built once with the routes.
#[derive(Debug)]
pub(crate) struct Plan {
    /// `body: "field"`: the body is this field of the request message.
    field: Option<u32>,
    /// Index 0 is the body's own message type; the rest are the message
    /// types reachable from it, each once, so recursive types terminate.
    messages: Vec<Message>,
}

impl Plan {
    /// The plan for a body that is the whole `input` message (`field` is
    /// `None`) or its `field`, or `None` when that body's type is not one
    /// this writer covers.
    pub(crate) fn new(input: &MessageDescriptor, field: Option<&FieldDescriptor>) -> Option<Self> {
        let root = match field {
            None => input.clone(),
            Some(field) if field.is_list() || field.is_map() => return None,
            Some(field) => match field.kind() {
                Kind::Message(message) if covered(&message) => message,
                _ => return None,
            },
        };
        if !covered(&root) {
            return None;
        }
        let mut order = vec![root];
        let mut messages = Vec::new();
        let mut index_of = HashMap::new();
        index_of.insert(order[0].full_name().to_owned(), 0usize);
        while messages.len() < order.len() {
            let desc = order[messages.len()].clone();
            let mut fields = Vec::new();
            for (index, field) in desc.fields().enumerate() {
                let index = u32::try_from(index).ok().filter(|&i| i < 64)?;
                let entry = shape(&field, &mut order, &mut index_of).map(|shape| Field {
                    number: field.number(),
                    index,
                    shape,
                });
                fields.push((field, entry));
            }
            // Proto names first, so that JSON names overwrite them.
            let mut message = Message::default();
            for (field, entry) in &fields {
                message.keys.insert(field.name().into(), *entry);
            }
            for (field, entry) in &fields {
                message.keys.insert(field.json_name().into(), *entry);
            }
            messages.push(message);
        }
        Some(Self {
            field: field.map(FieldDescriptor::number),
            messages,
        })
    }

    /// The encoded request message, or `None` to leave `json` to the
    /// general path.
    pub(crate) fn write(&self, json: &[u8]) -> Option<Vec<u8>> {
        let mut input = serde_json::Deserializer::from_slice(json);
        let mut out = Vec::with_capacity(json.len());
        MessageSeed {
            plan: self,
            message: 0,
            out: &mut out,
        }
        .deserialize(&mut input)
        .ok()?;
        input.end().ok()?;
        match self.field {
            None => Some(out),
            Some(number) => {
                let mut framed = Vec::with_capacity(out.len() + 8);
                write_bytes(number, &out, &mut framed);
                Some(framed)
            }
        }
    }
}

/// Proto3 messages that are not well-known types (those have JSON forms of
/// their own) and have at most 64 fields (the repeated-key check's mask).
fn covered(desc: &MessageDescriptor) -> bool {
    desc.parent_file().syntax() == Syntax::Proto3
        && !desc.full_name().starts_with("google.protobuf.")
        && desc.fields().len() <= 64
}

/// The shape of a singular field outside any real oneof, or `None`.
fn shape(
    field: &FieldDescriptor,
    order: &mut Vec<MessageDescriptor>,
    index_of: &mut HashMap<String, usize>,
) -> Option<Shape> {
    if field.is_list()
        || field.is_map()
        || field
            .containing_oneof()
            .is_some_and(|oneof| !oneof.is_synthetic())
    {
        return None;
    }
    Some(match field.kind() {
        Kind::Double => Shape::Double,
        Kind::Int32 => Shape::Int32,
        Kind::Sint32 => Shape::Sint32,
        Kind::Sfixed32 => Shape::Sfixed32,
        Kind::Uint32 => Shape::Uint32,
        Kind::Fixed32 => Shape::Fixed32,
        Kind::Int64 => Shape::Int64,
        Kind::Sint64 => Shape::Sint64,
        Kind::Sfixed64 => Shape::Sfixed64,
        Kind::Uint64 => Shape::Uint64,
        Kind::Fixed64 => Shape::Fixed64,
        Kind::Bool => Shape::Bool,
        Kind::String => Shape::String,
        Kind::Message(message) if covered(&message) => {
            let next = order.len();
            let index = *index_of
                .entry(message.full_name().to_owned())
                .or_insert(next);
            if index == next {
                order.push(message);
            }
            Shape::Message(index)
        }
        // float (prost-reflect's own rounding), bytes (base64), enums
        // (names), and well-known types stay with the general path.
        _ => return None,
    })
}

fn write_bytes(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
    encoding::encode_key(number, WireType::LengthDelimited, out);
    encoding::encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Any failure: the general path will say what it is.
fn aside<E: de::Error>() -> E {
    E::custom("left to the general path")
}

/// Reads one JSON object as message `message` of the plan, appending its
/// fields to `out`.
struct MessageSeed<'p, 'o> {
    plan: &'p Plan,
    message: usize,
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let message = &self.plan.messages[self.message];
        let mut seen = 0u64;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let field = message
                .keys
                .get(key.as_str())
                .copied()
                .flatten()
                .ok_or_else(aside)?;
            let bit = 1u64 << field.index;
            if seen & bit != 0 {
                return Err(aside());
            }
            seen |= bit;
            let (number, out) = (field.number, &mut *self.out);
            match field.shape {
                Shape::Double => encoding::double::encode(number, &map.next_value()?, out),
                Shape::Bool => encoding::bool::encode(number, &map.next_value()?, out),
                Shape::Int32 => encoding::int32::encode(number, &int32(&mut map)?, out),
                Shape::Sint32 => encoding::sint32::encode(number, &int32(&mut map)?, out),
                Shape::Sfixed32 => encoding::sfixed32::encode(number, &int32(&mut map)?, out),
                Shape::Uint32 => encoding::uint32::encode(number, &uint32(&mut map)?, out),
                Shape::Fixed32 => encoding::fixed32::encode(number, &uint32(&mut map)?, out),
                Shape::Int64 => encoding::int64::encode(number, &map.next_value()?, out),
                Shape::Sint64 => encoding::sint64::encode(number, &map.next_value()?, out),
                Shape::Sfixed64 => encoding::sfixed64::encode(number, &map.next_value()?, out),
                Shape::Uint64 => encoding::uint64::encode(number, &map.next_value()?, out),
                Shape::Fixed64 => encoding::fixed64::encode(number, &map.next_value()?, out),
                Shape::String => map.next_value_seed(StringSeed { number, out })?,
                Shape::Message(index) => {
                    let mut nested = Vec::new();
                    map.next_value_seed(MessageSeed {
                        plan: self.plan,
                        message: index,
                        out: &mut nested,
                    })?;
                    write_bytes(number, &nested, out);
                }
            }
        }
        Ok(())
    }
}

fn int32<'de, A: MapAccess<'de>>(map: &mut A) -> Result<i32, A::Error> {
    i32::try_from(map.next_value::<i64>()?).map_err(|_| aside())
}

fn uint32<'de, A: MapAccess<'de>>(map: &mut A) -> Result<u32, A::Error> {
    u32::try_from(map.next_value::<u64>()?).map_err(|_| aside())
}

/// A JSON object key, borrowed from the body unless it has escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl Key<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(key.into()))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(key.to_owned().into()))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Writes a JSON string as a string field, without an intermediate `String`
/// when the body has no escapes in it.
struct StringSeed<'o> {
    number: u32,
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for StringSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StringSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        write_bytes(self.number, text.as_bytes(), self.out);
        Ok(())
    }
}
