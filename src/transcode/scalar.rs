//! Text → protobuf value, for values that arrive as plain strings: path
//! variables and query parameters.
//!
//! JSON bodies never come through here; prost-reflect's serde support maps
//! those. The rules mirror the proto3 JSON mapping for a JSON string, so a
//! value means the same thing in the path, the query and the body.

use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, Value};
use serde::de::value::{Error as PlainError, StrDeserializer};

/// Bytes fields accept standard and URL-safe base64, padded or not, like the
/// proto3 JSON mapping; URL-safe is the one that survives a query string.
const PADDING_EITHER: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, PADDING_EITHER);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, PADDING_EITHER);

/// Wrapper types whose text form is their single `value` field's.
const WRAPPERS: &[&str] = &[
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
];

/// Well-known types whose JSON form is a string prost-reflect can parse.
const STRING_FORMED: &[&str] = &[
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
];

/// Whether a field of this kind can be set from one string.
pub(crate) fn is_text_bindable(kind: &Kind) -> bool {
    match kind {
        Kind::Message(message) => {
            let name = message.full_name();
            WRAPPERS.contains(&name) || STRING_FORMED.contains(&name)
        }
        _ => true,
    }
}

/// Parses `text` as a value of `kind`. The error says what was expected,
/// never echoing more than the caller sent.
pub(crate) fn parse(kind: &Kind, text: &str) -> Result<Value, String> {
    let value = match kind {
        Kind::Double => Value::F64(parse_float(text).ok_or("expected a number")?),
        Kind::Float => {
            let wide = parse_float(text).ok_or("expected a number")?;
            // Narrowing is the point: a float field holds an f32. A finite
            // number past its range is refused, as in a JSON body, rather
            // than turned into an infinity.
            let narrow = wide as f32;
            if wide.is_finite() && !narrow.is_finite() {
                return Err("expected a number within a float's range".to_owned());
            }
            Value::F32(narrow)
        }
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(text.parse().map_err(|_| "expected a 32-bit integer")?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(text.parse().map_err(|_| "expected a 64-bit integer")?)
        }
        Kind::Uint32 | Kind::Fixed32 => Value::U32(
            text.parse()
                .map_err(|_| "expected an unsigned 32-bit integer")?,
        ),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(
            text.parse()
                .map_err(|_| "expected an unsigned 64-bit integer")?,
        ),
        Kind::Bool => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err("expected true or false".to_owned()),
        },
        Kind::String => Value::String(text.to_owned()),
        Kind::Bytes => {
            let bytes = STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE.decode(text))
                .map_err(|_| "expected base64")?;
            Value::Bytes(bytes.into())
        }
        Kind::Enum(desc) => {
            let number = match desc.get_value_by_name(text) {
                Some(value) => value.number(),
                None => text.parse().map_err(|_| {
                    let names: Vec<_> = desc.values().map(|v| v.name().to_owned()).collect();
                    format!("expected one of {}", names.join(", "))
                })?,
            };
            Value::EnumNumber(number)
        }
        Kind::Message(desc) => Value::Message(parse_message(desc, text)?),
    };
    Ok(value)
}

fn parse_message(desc: &MessageDescriptor, text: &str) -> Result<DynamicMessage, String> {
    if WRAPPERS.contains(&desc.full_name()) {
        let field = desc
            .get_field_by_name("value")
            .ok_or("malformed wrapper type")?;
        let mut message = DynamicMessage::new(desc.clone());
        message.set_field(&field, parse(&field.kind(), text)?);
        return Ok(message);
    }
    if STRING_FORMED.contains(&desc.full_name()) {
        return DynamicMessage::deserialize(desc.clone(), StrDeserializer::<PlainError>::new(text))
            .map_err(|err| err.to_string());
    }
    Err(format!("{} cannot be given as text", desc.full_name()))
}

/// The proto3 JSON spellings of the special values, plus decimal text.
/// Rust's own parser would also take `inf` or `nan`, which the mapping does
/// not allow, so those are matched first and the rest must look numeric.
/// Decimal text too large for a double is refused, not rounded to an
/// infinity: the mapping gives infinities only by name.
fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ if text
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            text.parse().ok().filter(|value: &f64| value.is_finite())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::descriptor_pool;

    fn kind_of(message: &str, field: &str) -> Kind {
        let pool = descriptor_pool();
        let desc = pool.get_message_by_name(message).expect("message");
        desc.get_field_by_name(field).expect("field").kind()
    }

    #[test]
    fn text_values_follow_the_json_string_forms() {
        let cases: &[(&str, Kind, &str, Result<Value, ()>)] = &[
            (
                "a double from decimal text",
                Kind::Double,
                "7.5",
                Ok(Value::F64(7.5)),
            ),
            (
                "a double from an integer",
                Kind::Double,
                "8",
                Ok(Value::F64(8.0)),
            ),
            (
                "Infinity is spelled out",
                Kind::Double,
                "Infinity",
                Ok(Value::F64(f64::INFINITY)),
            ),
            (
                "-Infinity is spelled out",
                Kind::Double,
                "-Infinity",
                Ok(Value::F64(f64::NEG_INFINITY)),
            ),
            ("inf is not the JSON spelling", Kind::Double, "inf", Err(())),
            (
                "a double past its range is refused",
                Kind::Double,
                "1e999",
                Err(()),
            ),
            (
                "a float past its range is refused",
                Kind::Float,
                "1e39",
                Err(()),
            ),
            (
                "a float spelled Infinity stays infinite",
                Kind::Float,
                "Infinity",
                Ok(Value::F32(f32::INFINITY)),
            ),
            (
                "a float narrows what it can hold",
                Kind::Float,
                "0.1",
                Ok(Value::F32(0.1)),
            ),
            ("a word is not a double", Kind::Double, "eight", Err(())),
            (
                "int64 beyond 2^53 is exact",
                Kind::Int64,
                "9007199254740993",
                Ok(Value::I64(9_007_199_254_740_993)),
            ),
            (
                "int32 overflow is refused",
                Kind::Int32,
                "2147483648",
                Err(()),
            ),
            ("a negative uint is refused", Kind::Uint32, "-1", Err(())),
            ("a fraction is not an int", Kind::Int32, "1.5", Err(())),
            (
                "bool is true or false",
                Kind::Bool,
                "true",
                Ok(Value::Bool(true)),
            ),
            ("bool is not 1", Kind::Bool, "1", Err(())),
            (
                "strings stay as they are",
                Kind::String,
                "a b/c",
                Ok(Value::String("a b/c".into())),
            ),
            (
                "url-safe base64 bytes",
                Kind::Bytes,
                "-_8",
                Ok(Value::Bytes(vec![0xfb, 0xff].into())),
            ),
            (
                "standard base64 bytes",
                Kind::Bytes,
                "+/8=",
                Ok(Value::Bytes(vec![0xfb, 0xff].into())),
            ),
        ];
        for (description, kind, text, expected) in cases {
            let got = parse(kind, text).map_err(|_| ());
            assert_eq!(&got, expected, "{description}");
        }
        let nan = parse(&Kind::Double, "NaN").expect("NaN parses");
        assert!(nan.as_f64().is_some_and(f64::is_nan), "NaN is spelled out");
    }

    #[test]
    fn timestamps_in_text_use_rfc_3339() {
        let kind = kind_of("timesheets.v1.Timesheet", "create_time");
        let value = parse(&kind, "2017-05-10T17:40:20.095Z").expect("RFC 3339 parses");
        let message = value.as_message().expect("a message");
        let seconds = message.get_field_by_name("seconds").expect("seconds");
        assert_eq!(seconds.as_i64(), Some(1_494_438_020));
        assert!(
            parse(&kind, "2017-05-10").is_err(),
            "a bare date is not a Timestamp"
        );
        assert!(is_text_bindable(&kind));
    }

    #[test]
    fn plain_messages_cannot_be_set_from_text() {
        let kind = kind_of("timesheets.v1.CreateTimesheetRequest", "timesheet");
        assert!(!is_text_bindable(&kind));
        assert!(parse(&kind, "x").is_err());
    }
}
