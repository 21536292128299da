//! `reply_json` against the reference path (`DynamicMessage` decode, then
//! prost-reflect's serializer with the transcoder's options), byte for
//! byte, on random messages: every reply type of timesheets.proto and a
//! test message with every scalar kind, enums, nesting, repeated and
//! packed fields, proto3 `optional`, a oneof, maps and bytes, and every
//! other message of the pool.

use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MapKey, MessageDescriptor, Value};

use super::pool_with;
use crate::{
    proto::descriptor_pool,
    transcode::{JsonNames, json, reply_json, serialize_options},
};

/// A small deterministic generator (xorshift64*): the cases are the same on
/// every run, and a failure names the seed that made it.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

fn int64(rng: &mut Rng) -> i64 {
    let any = rng.next() as i64;
    rng.pick(&[0, 1, -1, i64::MIN, i64::MAX, any, 300])
}

fn float64(rng: &mut Rng) -> f64 {
    let any = f64::from_bits(rng.next());
    rng.pick(&[
        0.0,
        -0.0,
        7.5,
        8.0,
        1e300,
        -1.5e-300,
        f64::MIN_POSITIVE / 4.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        any,
    ])
}

fn text(rng: &mut Rng) -> String {
    let pieces = [
        "",
        "Website",
        "x",
        "\"quoted\"",
        "back\\slash",
        "tab\tnew\nline",
        "\u{1}\u{1f}",
        // DEL is the one ASCII control character JSON leaves unescaped.
        "\u{7f}",
        "é",
        "日本",
        "😀",
        "</script>",
        "\u{2028}",
    ];
    (0..rng.below(3)).map(|_| rng.pick(&pieces)).collect()
}

fn scalar(rng: &mut Rng, kind: &Kind, depth: u32) -> Value {
    match kind {
        Kind::Double => Value::F64(float64(rng)),
        Kind::Float => Value::F32(float64(rng) as f32),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(int64(rng) as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(int64(rng)),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(int64(rng) as u32),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(int64(rng) as u64),
        Kind::Bool => Value::Bool(rng.below(2) == 1),
        Kind::String => Value::String(text(rng)),
        Kind::Bytes => Value::Bytes(text(rng).into_bytes().into()),
        Kind::Enum(desc) => {
            let known: Vec<i32> = desc.values().map(|v| v.number()).collect();
            let n = if rng.below(5) == 0 {
                99
            } else {
                rng.pick(&known)
            };
            Value::EnumNumber(n)
        }
        Kind::Message(desc) => Value::Message(message(rng, desc, depth + 1)),
    }
}

pub(super) fn message(rng: &mut Rng, desc: &MessageDescriptor, depth: u32) -> DynamicMessage {
    let mut message = DynamicMessage::new(desc.clone());
    if desc.full_name() == "google.protobuf.Timestamp" {
        let any = (rng.next() % 253_402_300_799) as i64;
        let seconds = rng.pick(&[
            0,
            1_764_400_000,
            -62_135_596_800,
            253_402_300_799,
            -1,
            any,
            253_402_300_800, // beyond 9999: the reference refuses it
        ]);
        let nanos = rng.pick(&[0, 5_000_000, 123_456_000, 1, 999_999_999, -1, 1_000_000_000]);
        message.set_field_by_name("seconds", Value::I64(seconds));
        message.set_field_by_name("nanos", Value::I32(nanos));
        return message;
    }
    if depth > 3 {
        return message;
    }
    for field in desc.fields() {
        if rng.below(3) == 0 {
            continue;
        }
        let kind = field.kind();
        let value = match &kind {
            // The test message's one map has string keys and values.
            Kind::Message(entry) if field.is_map() => Value::Map(
                (0..rng.below(3))
                    .map(|i| {
                        let value = scalar(rng, &entry.map_entry_value_field().kind(), depth);
                        (MapKey::String(format!("k{i}")), value)
                    })
                    .collect(),
            ),
            _ if field.is_list() => Value::List(
                (0..rng.below(4))
                    .map(|_| scalar(rng, &kind, depth))
                    .collect(),
            ),
            _ => scalar(rng, &kind, depth),
        };
        message.set_field(&field, value);
    }
    message
}

/// Both paths on `bytes`; `true` when the fast one wrote the reply.
fn agree(desc: &MessageDescriptor, bytes: &[u8], seed: u64) -> bool {
    let mut wrote = false;
    for names in [JsonNames::Proto, JsonNames::Camel] {
        let proto_names = names == JsonNames::Proto;
        let options = serialize_options(names);
        // The whole message, and two of its fields as a `response_body`.
        let count = desc.fields().len().max(1);
        let pick = |n: u64| desc.fields().nth(n as usize % count);
        let fields = [None, pick(seed), pick(seed / 7)];
        for field in fields {
            let Some(fast) = reply_json::write(bytes, desc, field.as_ref(), proto_names) else {
                continue;
            };
            wrote = true;
            let reference = DynamicMessage::decode(desc.clone(), bytes)
                .ok()
                .and_then(|m| json::write_message(&m, field.as_ref(), &options, proto_names).ok());
            assert_eq!(
                Some(String::from_utf8_lossy(&fast).into_owned()),
                reference.map(|r| String::from_utf8_lossy(&r).into_owned()),
                "{} (field {:?}, {names:?}, seed {seed})",
                desc.full_name(),
                field.map(|f| f.name().to_owned()),
            );
        }
    }
    wrote
}

pub(super) fn everything_pool() -> DescriptorPool {
    let field = |name: &str, number: u32, label: &str, kind: &str, extra: &str| {
        format!(
            r#"{{"name":"{name}","number":{number},"label":"LABEL_{label}","type":"TYPE_{kind}"{extra}}}"#
        )
    };
    let kinds = [
        "DOUBLE", "FLOAT", "INT64", "UINT64", "INT32", "FIXED64", "FIXED32", "BOOL", "STRING",
        "UINT32", "SFIXED32", "SFIXED64", "SINT32", "SINT64",
    ];
    let mut fields = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let n = i as u32 + 1;
        fields.push(field(
            &format!("one_{}", kind.to_lowercase()),
            n,
            "OPTIONAL",
            kind,
            "",
        ));
        fields.push(field(
            &format!("many_{}", kind.to_lowercase()),
            n + 100,
            "REPEATED",
            kind,
            "",
        ));
    }
    fields.push(field(
        "color",
        30,
        "OPTIONAL",
        "ENUM",
        r#","typeName":".test.v1.Color""#,
    ));
    fields.push(field(
        "colors",
        31,
        "REPEATED",
        "ENUM",
        r#","typeName":".test.v1.Color""#,
    ));
    fields.push(field(
        "child",
        32,
        "OPTIONAL",
        "MESSAGE",
        r#","typeName":".test.v1.Everything""#,
    ));
    fields.push(field(
        "children",
        33,
        "REPEATED",
        "MESSAGE",
        r#","typeName":".test.v1.Everything""#,
    ));
    fields.push(field(
        "at",
        34,
        "OPTIONAL",
        "MESSAGE",
        r#","typeName":".google.protobuf.Timestamp""#,
    ));
    fields.push(field(
        "ats",
        35,
        "REPEATED",
        "MESSAGE",
        r#","typeName":".google.protobuf.Timestamp""#,
    ));
    fields.push(field(
        "maybe",
        36,
        "OPTIONAL",
        "STRING",
        r#","oneofIndex":1,"proto3Optional":true"#,
    ));
    fields.push(field(
        "either_text",
        37,
        "OPTIONAL",
        "STRING",
        r#","oneofIndex":0"#,
    ));
    fields.push(field(
        "either_number",
        38,
        "OPTIONAL",
        "INT32",
        r#","oneofIndex":0"#,
    ));
    fields.push(field("blob", 39, "OPTIONAL", "BYTES", ""));
    fields.push(field(
        "labels",
        40,
        "REPEATED",
        "MESSAGE",
        r#","typeName":".test.v1.Everything.LabelsEntry""#,
    ));
    fields.push(field(
        "unpacked",
        41,
        "REPEATED",
        "INT32",
        r#","options":{"packed":false}"#,
    ));
    pool_with(&format!(
        r#"{{
            "name": "test/v1/everything.proto",
            "package": "test.v1",
            "dependency": ["google/protobuf/timestamp.proto"],
            "syntax": "proto3",
            "messageType": [{{
                "name": "Everything",
                "field": [{}],
                "oneofDecl": [{{"name": "either"}}, {{"name": "_maybe"}}],
                "nestedType": [{{"name": "LabelsEntry", "options": {{"mapEntry": true}}, "field": [
                    {}, {}
                ]}}]
            }}],
            "enumType": [{{"name": "Color", "value": [
                {{"name": "COLOR_UNSPECIFIED", "number": 0}},
                {{"name": "RED", "number": 1}},
                {{"name": "GREEN", "number": 2}}
            ]}}]
        }}"#,
        fields.join(","),
        field("key", 1, "OPTIONAL", "STRING", ""),
        field("value", 2, "OPTIONAL", "STRING", ""),
    ))
}

fn random_cases(desc: &MessageDescriptor, cases: u64) -> u64 {
    let mut written = 0;
    for seed in 1..=cases {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let first = message(&mut rng, desc, 0).encode_to_vec();
        written += u64::from(agree(desc, &first, seed));
        // A concatenation is a valid encoding too, meaning a merge: later
        // scalars win, lists append, singular messages merge.
        let mut both = first;
        both.extend(message(&mut rng, desc, 0).encode_to_vec());
        agree(desc, &both, seed);
    }
    written
}

#[test]
fn every_reply_type_is_written_exactly_as_prost_reflect_writes_it() {
    let pool = descriptor_pool();
    let service = pool
        .get_service_by_name(crate::proto::SERVICE_NAME)
        .expect("service");
    for method in service.methods() {
        let output = method.output();
        let written = random_cases(&output, 300);
        // Guards the test itself: the fast path must really run for the
        // service's own replies. (google.protobuf.Empty, a well-known
        // type, is always the reference path's.)
        if !output.full_name().starts_with("google.protobuf.") {
            assert!(
                written > 0,
                "{} never took the fast path",
                output.full_name()
            );
        }
    }
}

#[test]
fn every_message_of_the_pool_is_written_as_prost_reflect_writes_it_or_left_to_it() {
    // descriptor.proto (proto2, extension ranges), the well-known types,
    // google.api's rules: shapes the service's replies do not have.
    for desc in descriptor_pool().all_messages() {
        random_cases(&desc, 20);
    }
}

#[test]
fn every_field_shape_is_written_exactly_as_prost_reflect_writes_it_or_left_to_it() {
    let pool = everything_pool();
    let desc = pool
        .get_message_by_name("test.v1.Everything")
        .expect("message");
    let written = random_cases(&desc, 1000);
    // Maps and bytes send a message to the reference path; most cases
    // have neither set at the top level or below.
    assert!(written > 100, "only {written} of 1000 took the fast path");
}

#[test]
fn malformed_or_truncated_encodings_are_left_to_the_reference_path() {
    let desc = descriptor_pool()
        .get_message_by_name("timesheets.v1.Timesheet")
        .expect("message");
    let mut rng = Rng(7);
    let good = message(&mut rng, &desc, 0).encode_to_vec();
    for cut in 1..good.len() {
        let bytes = &good[..cut];
        if let Some(fast) = reply_json::write(bytes, &desc, None, true) {
            // A cut on a field boundary is itself a valid, shorter message.
            let reference = DynamicMessage::decode(desc.clone(), bytes).expect("valid prefix");
            let options = serialize_options(JsonNames::Proto);
            assert_eq!(
                fast,
                json::write_message(&reference, None, &options, true).expect("writes")
            );
        }
    }
    for bad in [
        &[0x0f_u8][..],
        &[0x0a, 0x05, b'a'],
        &[0x08, 0xff],
        &[0x00, 0x00],
        // A string field (`id`) whose bytes are not UTF-8: a lone
        // continuation byte, a truncated sequence, an overlong `/`.
        &[0x0a, 0x01, 0x80],
        &[0x0a, 0x02, b'a', 0xc3],
        &[0x0a, 0x02, 0xc0, 0xaf],
    ] {
        assert!(
            reply_json::write(bad, &desc, None, true).is_none(),
            "{bad:?}"
        );
    }
}
