//! `request_json` against the general path (prost-reflect's reader with the
//! transcoder's options, then its encoder): whenever the direct writer
//! writes a body, the general path must read the same body into the same
//! message. Bodies are random messages as prost-reflect writes them, under
//! both name styles and both 64-bit integer forms, and the same bodies
//! after a mutation: a key put in front (a known field or an unknown one,
//! so also repeated keys) with a value of any JSON type, a cut, or trailing
//! text.

use prost::Message as _;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor,
    ReflectMessage as _, SerializeOptions,
};

use super::reply_json::{Rng, everything_pool, message};
use crate::{
    proto::descriptor_pool,
    transcode::{json, request_json::Plan},
};

/// Values that break one assumption or another of a typed reader.
const ODD_VALUES: &[&str] = &[
    "1",
    "-0",
    "1.5",
    "7.0",
    "1e2",
    "\"1\"",
    "\"NaN\"",
    "null",
    "true",
    "{}",
    "[]",
    "\"x\"",
    "\"\\u00e9\"",
    "2147483648",
    "-2147483649",
    "4294967296",
    "18446744073709551616",
    "-9223372036854775809",
    "1e400",
];

fn body(rng: &mut Rng, desc: &MessageDescriptor) -> Option<String> {
    let options = SerializeOptions::new()
        .use_proto_field_name(rng.below(2) == 0)
        .stringify_64_bit_integers(rng.below(2) == 0);
    let mut message = message(rng, desc, 0);
    // Half the cases keep only the shapes the writer covers, so that the
    // writer has bodies of every covered kind to write.
    if rng.below(2) == 0 {
        keep_covered(&mut message);
    }
    let mut out = serde_json::Serializer::new(Vec::new());
    // Out-of-range timestamps do not serialize; such a case has no body.
    message.serialize_with_options(&mut out, &options).ok()?;
    String::from_utf8(out.into_inner()).ok()
}

/// Clears every field the writer leaves to the general path, here and in
/// nested messages.
fn keep_covered(message: &mut DynamicMessage) {
    for field in message.descriptor().fields() {
        let real_oneof = field
            .containing_oneof()
            .is_some_and(|oneof| !oneof.is_synthetic());
        let covered = !field.is_list()
            && !field.is_map()
            && !real_oneof
            && match field.kind() {
                Kind::Float | Kind::Bytes | Kind::Enum(_) => false,
                Kind::Message(desc) => !desc.full_name().starts_with("google.protobuf."),
                _ => true,
            };
        if !covered {
            message.clear_field(&field);
        } else if let Kind::Message(_) = field.kind()
            && message.has_field(&field)
            && let Some(nested) = message.get_field_mut(&field).as_message_mut()
        {
            keep_covered(nested);
        }
    }
}

fn mutate(rng: &mut Rng, desc: &MessageDescriptor, body: &str) -> String {
    match rng.below(6) {
        0..=1 => body.to_owned(),
        2 | 3 => {
            let fields: Vec<FieldDescriptor> = desc.fields().collect();
            let key = if fields.is_empty() || rng.below(5) == 0 {
                "unknownField".to_owned()
            } else {
                let field = &fields[rng.below(fields.len() as u64) as usize];
                if rng.below(2) == 0 {
                    field.json_name().to_owned()
                } else {
                    field.name().to_owned()
                }
            };
            let value = rng.pick(ODD_VALUES);
            let rest = body.strip_prefix('{').unwrap_or(body);
            let comma = if rest.trim_start().starts_with('}') {
                ""
            } else {
                ","
            };
            format!("{{\"{key}\":{value}{comma}{rest}")
        }
        4 => {
            let cut = rng.below(body.len() as u64 + 1) as usize;
            body.get(..cut).unwrap_or(body).to_owned()
        }
        _ => format!("{body} x"),
    }
}

/// Both paths on one body; `true` when the direct writer wrote it.
fn agree(
    input: &MessageDescriptor,
    field: Option<&FieldDescriptor>,
    plan: &Plan,
    body: &str,
) -> bool {
    let Some(fast) = plan.write(body.as_bytes()) else {
        return false;
    };
    for options in [
        DeserializeOptions::new(),
        DeserializeOptions::new().deny_unknown_fields(false),
    ] {
        let reference = json::read_message(input.clone(), field, body.as_bytes(), &options)
            .unwrap_or_else(|err| {
                panic!(
                    "{} (field {:?}): written directly, refused by prost-reflect ({err}): {body}",
                    input.full_name(),
                    field.map(FieldDescriptor::name)
                )
            });
        let written = DynamicMessage::decode(input.clone(), fast.as_slice()).expect("decodes");
        assert_eq!(
            written.encode_to_vec(),
            reference.encode_to_vec(),
            "{} (field {:?}): {body}",
            input.full_name(),
            field.map(FieldDescriptor::name)
        );
    }
    true
}

/// Random and mutated bodies for `input` (whole) and each of its singular
/// message fields (as `body: "field"`); how many the writer wrote.
fn random_cases(input: &MessageDescriptor, cases: u64) -> u64 {
    let mut targets = vec![(None, input.clone())];
    for field in input.fields() {
        if let Kind::Message(desc) = field.kind()
            && !field.is_list()
            && !field.is_map()
        {
            targets.push((Some(field), desc));
        }
    }
    let mut written = 0;
    for (field, desc) in &targets {
        let Some(plan) = Plan::new(input, field.as_ref()) else {
            continue;
        };
        for seed in 1..=cases {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let Some(body) = body(&mut rng, desc) else {
                continue;
            };
            let body = mutate(&mut rng, desc, &body);
            written += u64::from(agree(input, field.as_ref(), &plan, &body));
        }
    }
    written
}

#[test]
fn every_request_body_written_directly_is_read_the_same_by_prost_reflect() {
    let pool = descriptor_pool();
    let service = pool
        .get_service_by_name(crate::proto::SERVICE_NAME)
        .expect("service");
    for method in service.methods() {
        random_cases(&method.input(), 300);
    }
    // Guards the test itself: the create body, the hot one, must really be
    // written directly (as the whole message and as its `timesheet`).
    let create = pool
        .get_message_by_name("timesheets.v1.CreateTimesheetRequest")
        .expect("message");
    let written = random_cases(&create, 300);
    assert!(
        written > 80,
        "only {written} of 600 create bodies written directly"
    );
}

#[test]
fn every_field_shape_is_written_directly_as_prost_reflect_reads_it_or_left_to_it() {
    let pool = everything_pool();
    let desc = pool
        .get_message_by_name("test.v1.Everything")
        .expect("message");
    // Most cases leave the writer something it does not cover (a 64-bit
    // integer as a string, a NaN, a mutation); about a tenth have nothing.
    let written = random_cases(&desc, 1000);
    assert!(written > 50, "only {written} of 1000 written directly");
    // descriptor.proto (proto2), the well-known types, google.api's rules.
    for desc in descriptor_pool().all_messages() {
        random_cases(&desc, 20);
    }
}

#[test]
fn a_create_body_is_written_directly_and_what_it_does_not_cover_is_left_to_the_general_path() {
    let create = descriptor_pool()
        .get_message_by_name("timesheets.v1.CreateTimesheetRequest")
        .expect("message");
    let field = create.get_field_by_name("timesheet").expect("field");
    let plan = Plan::new(&create, Some(&field)).expect("covered");
    let body = r#"{"date":"2026-11-27","project":"Website","hours":7.5,"notes":"x"}"#;
    assert!(agree(&create, Some(&field), &plan, body));
    for aside in [
        // A number as a string (Android's), null, a repeated key, an
        // unknown key, a well-known type, trailing text, not an object.
        r#"{"hours":"8"}"#,
        r#"{"notes":null}"#,
        r#"{"notes":"a","notes":"b"}"#,
        r#"{"notes":"a","notes":"a"}"#,
        r#"{"userId":"a","user_id":"a"}"#,
        r#"{"nope":1}"#,
        r#"{"createTime":"2026-11-27T00:00:00Z"}"#,
        r#"{"hours":7.5} x"#,
        r#"[]"#,
        "",
    ] {
        assert!(plan.write(aside.as_bytes()).is_none(), "{aside}");
    }
}

#[test]
fn a_custom_json_name_that_is_another_fields_proto_name_is_resolved_as_prost_reflect_resolves_it() {
    // `c` is written `a_b` in JSON, which is also the proto name of field 2;
    // `g` (bytes, left to the general path) is written `h_i`, the proto name
    // of field 6. prost-reflect reads a key as a JSON name first.
    let pool = super::pool_with(
        r#"{
            "name": "test/v1/names.proto", "package": "test.v1", "syntax": "proto3",
            "messageType": [{"name": "Names", "field": [
                {"name": "c", "number": 1, "label": "LABEL_OPTIONAL", "type": "TYPE_STRING", "jsonName": "a_b"},
                {"name": "a_b", "number": 2, "label": "LABEL_OPTIONAL", "type": "TYPE_STRING", "jsonName": "aB"},
                {"name": "g", "number": 5, "label": "LABEL_OPTIONAL", "type": "TYPE_BYTES", "jsonName": "h_i"},
                {"name": "h_i", "number": 6, "label": "LABEL_OPTIONAL", "type": "TYPE_STRING", "jsonName": "hI"},
                {"name": "inner", "number": 7, "label": "LABEL_OPTIONAL", "type": "TYPE_MESSAGE", "typeName": ".test.v1.Names", "jsonName": "c"}
            ]},
            {"name": "Outer", "field": [
                {"name": "names", "number": 1, "label": "LABEL_OPTIONAL", "type": "TYPE_MESSAGE", "typeName": ".test.v1.Names", "jsonName": "theNames"},
                {"name": "other", "number": 2, "label": "LABEL_OPTIONAL", "type": "TYPE_STRING", "jsonName": "names"}
            ]}]
        }"#,
    );
    let names = pool.get_message_by_name("test.v1.Names").expect("message");
    let plan = Plan::new(&names, None).expect("covered");
    for body in [
        r#"{"a_b":"x"}"#,
        r#"{"aB":"x"}"#,
        r#"{"c":{"a_b":"y"}}"#,
        r#"{"inner":{"aB":"y"}}"#,
        r#"{"hI":"z"}"#,
    ] {
        assert!(agree(&names, None, &plan, body), "written directly: {body}");
    }
    // `h_i` is the bytes field's JSON name: the general path's.
    assert!(plan.write(br#"{"h_i":"AAAA"}"#).is_none());
    // As a body field (`body: "names"`), though another field's JSON name
    // is `names`: both paths put the body in the field the rule names.
    let outer = pool.get_message_by_name("test.v1.Outer").expect("message");
    let field = outer.get_field_by_name("names").expect("field");
    let plan = Plan::new(&outer, Some(&field)).expect("covered");
    assert!(agree(
        &outer,
        Some(&field),
        &plan,
        r#"{"a_b":"x","hI":"y"}"#
    ));
}
