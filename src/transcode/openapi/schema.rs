//! Messages and fields → JSON Schema, following the proto3 JSON mapping as
//! the transcoder applies it: well-known types inline in their JSON forms,
//! every other message a `$ref` described once under `components/schemas`.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use super::{
    Builder,
    comments::{comment, field_comment},
};

/// The value field of a map entry, fixed by descriptor.proto; looked up
/// instead of `map_entry_value_field`, which panics on a malformed pool.
const MAP_VALUE_NUMBER: u32 = 2;
pub(super) const SCHEMAS: &str = "#/components/schemas/";

impl Builder {
    pub(super) fn json_name<'f>(&self, field: &'f FieldDescriptor) -> &'f str {
        if self.proto_names {
            field.name()
        } else {
            field.json_name()
        }
    }

    /// A field's schema with its comment as the description.
    fn described(&mut self, field: &FieldDescriptor) -> Value {
        let mut schema = self.value_schema(field);
        if let (Some(text), Value::Object(s)) = (field_comment(field), &mut schema) {
            s.insert("description".into(), text.into());
        }
        schema
    }

    pub(super) fn value_schema(&mut self, field: &FieldDescriptor) -> Value {
        if field.is_map()
            && let Kind::Message(entry) = field.kind()
            && let Some(value) = entry.get_field(MAP_VALUE_NUMBER)
        {
            return json!({"type": "object", "additionalProperties": self.kind_schema(&value.kind())});
        }
        let item = self.kind_schema(&field.kind());
        if field.is_list() {
            json!({"type": "array", "items": item})
        } else {
            item
        }
    }

    pub(super) fn kind_schema(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double | Kind::Float => json!({
                "type": ["number", "string"],
                "format": if *kind == Kind::Double { "double" } else { "float" },
                // Only constrains strings: what the JSON mapping accepts there.
                "pattern": r"^(-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?|NaN|-?Infinity)$",
            }),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({
                "type": "integer", "format": "int32",
                "minimum": i32::MIN, "maximum": i32::MAX,
            }),
            Kind::Uint32 | Kind::Fixed32 => json!({
                "type": "integer", "format": "uint32", "minimum": 0, "maximum": u32::MAX,
            }),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({
                "type": ["string", "integer"], "format": "int64", "pattern": "^-?[0-9]+$",
            }),
            Kind::Uint64 | Kind::Fixed64 => json!({
                "type": ["string", "integer"], "format": "uint64", "pattern": "^[0-9]+$",
                "minimum": 0,
            }),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "format": "byte", "contentEncoding": "base64"}),
            Kind::Enum(e) if e.full_name() == "google.protobuf.NullValue" => {
                json!({"type": "null"})
            }
            Kind::Enum(e) => {
                let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
                json!({"type": "string", "enum": names})
            }
            Kind::Message(message) => self.message_ref(message),
        }
    }

    /// A well-known type inline, any other message as a `$ref` (queued).
    pub(super) fn message_ref(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(schema) = self.well_known(message) {
            return schema;
        }
        let name = message.full_name().to_owned();
        if self.queued.insert(name.clone()) {
            self.pending.push(message.clone());
        }
        json!({"$ref": format!("{SCHEMAS}{name}")})
    }

    fn well_known(&mut self, message: &MessageDescriptor) -> Option<Value> {
        let schema = match message.full_name() {
            "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
            "google.protobuf.Duration" => {
                json!({"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"})
            }
            "google.protobuf.FieldMask" => json!({"type": "string"}),
            "google.protobuf.Empty" | "google.protobuf.Struct" => json!({"type": "object"}),
            "google.protobuf.ListValue" => json!({"type": "array"}),
            "google.protobuf.Value" => json!({}),
            "google.protobuf.Any" => json!({
                "type": "object",
                "properties": {"@type": {"type": "string"}},
                "required": ["@type"],
            }),
            name if is_wrapper(name) => {
                let value = message.get_field_by_name("value")?;
                self.kind_schema(&value.kind())
            }
            _ => return None,
        };
        Some(schema)
    }

    /// `message`'s schema without the fields at `omitted`, chains of field
    /// numbers: those a binding's path sets, and so not its body. Inline
    /// when any is omitted (down to the omitted fields, and as references
    /// beside them), else the message's reference.
    pub(super) fn message_without(
        &mut self,
        message: &MessageDescriptor,
        omitted: &[&[u32]],
    ) -> Value {
        if omitted.is_empty() || is_well_known(message) {
            return self.message_ref(message);
        }
        let mut properties = Map::new();
        for field in message.fields() {
            let number = field.number();
            if omitted.contains(&&[number][..]) {
                continue;
            }
            let schema = match self.field_without(&field, omitted) {
                Some(mut schema) => {
                    if let (Some(text), Value::Object(s)) = (field_comment(&field), &mut schema) {
                        s.insert("description".into(), text.into());
                    }
                    schema
                }
                None => self.described(&field),
            };
            properties.insert(self.json_name(&field).to_owned(), schema);
        }
        self.object(message, properties)
    }

    /// `field`'s schema without the fields at `omitted` (chains that start
    /// with `field`'s own number) when it is a singular message that has
    /// any of them; `None` when nothing below it is left out.
    pub(super) fn field_without(
        &mut self,
        field: &FieldDescriptor,
        omitted: &[&[u32]],
    ) -> Option<Value> {
        let deeper = below(omitted, field.number());
        match field.kind() {
            Kind::Message(nested) if !deeper.is_empty() && !field.is_list() => {
                Some(self.message_without(&nested, &deeper))
            }
            _ => None,
        }
    }

    /// An object schema of `message` with `properties`.
    fn object(&self, message: &MessageDescriptor, properties: Map<String, Value>) -> Value {
        let mut schema = Map::new();
        schema.insert("type".into(), "object".into());
        if let Some(text) = comment(&message.parent_file(), message.path()) {
            schema.insert("description".into(), text.into());
        }
        schema.insert("properties".into(), properties.into());
        if self.closed_objects {
            schema.insert("additionalProperties".into(), false.into());
        }
        schema.into()
    }

    /// Describes every queued message, following the references each adds.
    pub(super) fn drain(&mut self) {
        while let Some(message) = self.pending.pop() {
            let mut properties = Map::new();
            for field in message.fields() {
                let schema = self.described(&field);
                properties.insert(self.json_name(&field).to_owned(), schema);
            }
            let schema = self.object(&message, properties);
            self.schemas.insert(message.full_name().to_owned(), schema);
        }
    }
}

/// The rest of each chain of field numbers that starts with `number`.
fn below<'c>(chains: &[&'c [u32]], number: u32) -> Vec<&'c [u32]> {
    chains
        .iter()
        .filter_map(|chain| match chain.split_first() {
            Some((&first, rest)) if first == number => Some(rest),
            _ => None,
        })
        .collect()
}

fn is_wrapper(name: &str) -> bool {
    name.strip_prefix("google.protobuf.")
        .and_then(|n| n.strip_suffix("Value"))
        .is_some_and(|t| {
            [
                "Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes",
            ]
            .contains(&t)
        })
}

pub(super) fn is_well_known(message: &MessageDescriptor) -> bool {
    message.full_name().starts_with("google.protobuf.")
}
