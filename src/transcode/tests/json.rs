//! The proto3 JSON mapping at the edges: int64 as strings, NaN and Infinity,
//! numbers sent as strings, null, Timestamp, unknown fields, positions.
//!
//! `google.protobuf.UninterpretedOption` is in the pool (options.proto
//! imports descriptor.proto) and has int64, uint64 and double fields, which
//! timesheets.proto lacks.

use prost_reflect::{DeserializeOptions, DynamicMessage, SerializeOptions, Value};

use crate::{proto::descriptor_pool, transcode::json};

const OPTION: &str = "google.protobuf.UninterpretedOption";
const TIMESHEET: &str = "timesheets.v1.Timesheet";

fn read(message: &str, body: &str) -> Result<DynamicMessage, String> {
    let desc = descriptor_pool()
        .get_message_by_name(message)
        .expect("message");
    json::read_message(desc, None, body.as_bytes(), &DeserializeOptions::new())
        .map_err(|e| e.to_string())
}

fn field(message: &DynamicMessage, name: &str) -> Value {
    message.get_field_by_name(name).expect("field").into_owned()
}

fn write(message: &DynamicMessage) -> serde_json::Value {
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    let bytes = json::write_message(message, None, &options, true).expect("serializes");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// (description, message, body, field, expected value or an error).
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Result<Value, ()>,
);

#[test]
fn json_input_values_map_as_proto3_specifies() {
    let cases: &[Case] = &[
        (
            "int64 as a string is exact",
            OPTION,
            r#"{"negative_int_value":"-9007199254740993"}"#,
            "negative_int_value",
            Ok(Value::I64(-9_007_199_254_740_993)),
        ),
        (
            "int64 as a number",
            OPTION,
            r#"{"negative_int_value":-5}"#,
            "negative_int_value",
            Ok(Value::I64(-5)),
        ),
        (
            "lowerCamelCase names",
            OPTION,
            r#"{"negativeIntValue":"7"}"#,
            "negative_int_value",
            Ok(Value::I64(7)),
        ),
        (
            "uint64 refuses a negative string",
            OPTION,
            r#"{"positive_int_value":"-1"}"#,
            "positive_int_value",
            Err(()),
        ),
        (
            "int64 refuses a fraction",
            OPTION,
            r#"{"negative_int_value":1.5}"#,
            "negative_int_value",
            Err(()),
        ),
        (
            "a double as a string (Android)",
            TIMESHEET,
            r#"{"hours":"8"}"#,
            "hours",
            Ok(Value::F64(8.0)),
        ),
        (
            "a double as a number",
            TIMESHEET,
            r#"{"hours":7.5}"#,
            "hours",
            Ok(Value::F64(7.5)),
        ),
        (
            "Infinity as a string",
            OPTION,
            r#"{"double_value":"Infinity"}"#,
            "double_value",
            Ok(Value::F64(f64::INFINITY)),
        ),
        (
            "-Infinity as a string",
            OPTION,
            r#"{"double_value":"-Infinity"}"#,
            "double_value",
            Ok(Value::F64(f64::NEG_INFINITY)),
        ),
        (
            "a word is not a double",
            TIMESHEET,
            r#"{"hours":"eight"}"#,
            "hours",
            Err(()),
        ),
        (
            "null leaves the default",
            TIMESHEET,
            r#"{"hours":null}"#,
            "hours",
            Ok(Value::F64(0.0)),
        ),
        (
            "null for a string",
            TIMESHEET,
            r#"{"notes":null}"#,
            "notes",
            Ok(Value::String(String::new())),
        ),
        (
            "a string for a bool is refused",
            TIMESHEET,
            r#"{"approved":"true"}"#,
            "approved",
            Err(()),
        ),
        (
            "a number for a string is refused",
            TIMESHEET,
            r#"{"project":5}"#,
            "project",
            Err(()),
        ),
    ];
    for (description, message, body, name, expected) in cases {
        let got = read(message, body).map(|m| field(&m, name)).map_err(|_| ());
        assert_eq!(&got, expected, "{description}: {body}");
    }
    let nan = read(OPTION, r#"{"double_value":"NaN"}"#).expect("NaN parses");
    assert!(
        field(&nan, "double_value")
            .as_f64()
            .is_some_and(f64::is_nan),
        "NaN as a string"
    );
}

#[test]
fn json_output_keeps_int64_exact_and_spells_out_special_doubles() {
    let message = read(
        OPTION,
        r#"{"negative_int_value":"-9007199254740993","double_value":"NaN"}"#,
    )
    .expect("parses");
    let out = write(&message);
    assert_eq!(
        out["negative_int_value"], "-9007199254740993",
        "int64 is a string"
    );
    assert_eq!(out["double_value"], "NaN");
    let infinite = read(OPTION, r#"{"double_value":"-Infinity"}"#).expect("parses");
    assert_eq!(write(&infinite)["double_value"], "-Infinity");
}

#[test]
fn timestamps_round_trip_as_rfc_3339() {
    let message = read(TIMESHEET, r#"{"create_time":"2017-05-10T17:40:20.095Z"}"#).expect("parses");
    assert_eq!(write(&message)["create_time"], "2017-05-10T17:40:20.095Z");
    let offset =
        read(TIMESHEET, r#"{"createTime":"2017-05-10T19:40:20+02:00"}"#).expect("an offset parses");
    assert_eq!(write(&offset)["create_time"], "2017-05-10T17:40:20Z");
    assert!(
        read(TIMESHEET, r#"{"create_time":"2017-05-10"}"#).is_err(),
        "a bare date is not a Timestamp"
    );
    assert!(
        read(TIMESHEET, r#"{"create_time":1494438020}"#).is_err(),
        "seconds are not a Timestamp"
    );
}

#[test]
fn output_always_includes_default_values_but_not_unset_messages() {
    let message = read(TIMESHEET, r#"{"id":"t1"}"#).expect("parses");
    let out = write(&message);
    assert_eq!(out["approved"], false);
    assert_eq!(out["notes"], "");
    assert_eq!(out["hours"], 0.0);
    assert!(
        out.get("approve_time").is_none(),
        "an unset Timestamp is left out: {out}"
    );
}

#[test]
fn unknown_fields_are_named_with_their_position() {
    let err =
        read(TIMESHEET, "{\n  \"hours\": 1,\n  \"colour\": \"red\"\n}").expect_err("unknown field");
    assert!(err.contains("colour"), "names the field: {err}");
    assert!(err.contains("line 3"), "gives the line: {err}");
    let desc = descriptor_pool()
        .get_message_by_name(TIMESHEET)
        .expect("message");
    let relaxed = DeserializeOptions::new().deny_unknown_fields(false);
    let message = json::read_message(desc, None, br#"{"colour":"red","hours":2}"#, &relaxed)
        .expect("ignored");
    assert_eq!(field(&message, "hours"), Value::F64(2.0));
}

#[test]
fn malformed_json_reports_the_parser_position() {
    let cases: &[(&str, &str, &str)] = &[
        ("a missing value", r#"{"hours": }"#, "line 1 column 11"),
        ("trailing garbage", r#"{"hours": 1} x"#, "line 1 column 14"),
        ("not an object", r#"[1]"#, "line 1 column"),
        ("truncated", r#"{"hours": 1"#, "line 1 column 11"),
    ];
    for (description, body, position) in cases {
        let err = read(TIMESHEET, body).expect_err(description);
        assert!(err.contains(position), "{description}: {err}");
    }
}

#[test]
fn a_body_bound_to_one_field_maps_with_the_same_rules() {
    let pool = descriptor_pool();
    let desc = pool
        .get_message_by_name("timesheets.v1.CreateTimesheetRequest")
        .expect("message");
    let body_field = desc.get_field_by_name("timesheet").expect("field");
    let options = DeserializeOptions::new();
    let body = br#"{"date":"2026-11-27","hours":"8","userId":"ignored"}"#;
    let message =
        json::read_message(desc.clone(), Some(&body_field), body, &options).expect("parses");
    let timesheet = field(&message, "timesheet");
    let timesheet = timesheet.as_message().expect("message");
    assert_eq!(field(timesheet, "hours"), Value::F64(8.0));
    assert_eq!(field(timesheet, "user_id"), Value::String("ignored".into()));
    assert_eq!(
        field(&message, "request_id"),
        Value::String(String::new()),
        "siblings untouched"
    );

    let err = json::read_message(
        desc.clone(),
        Some(&body_field),
        b"{\"hours\": true}",
        &options,
    )
    .expect_err("a bool is not hours");
    assert!(
        err.to_string().contains("line 1"),
        "positions point into the body: {err}"
    );
    assert!(
        json::read_message(desc, Some(&body_field), b"[]", &options).is_err(),
        "an array is not a message"
    );
}

#[test]
fn response_body_picks_one_field_as_a_bare_value() {
    let pool = descriptor_pool();
    let desc = pool
        .get_message_by_name("timesheets.v1.ListTimesheetsResponse")
        .expect("message");
    let body = br#"{"timesheets":[{"id":"a"},{"id":"b"}],"next_page_token":"n"}"#;
    let message =
        json::read_message(desc.clone(), None, body, &DeserializeOptions::new()).expect("parses");
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    let pick = |name: &str, proto_names: bool| {
        let field = desc.get_field_by_name(name).expect("field");
        let options = options.clone().use_proto_field_name(proto_names);
        let bytes =
            json::write_message(&message, Some(&field), &options, proto_names).expect("serializes");
        serde_json::from_slice::<serde_json::Value>(&bytes).expect("JSON")
    };
    let list = pick("timesheets", true);
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(2),
        "a bare array: {list}"
    );
    assert_eq!(list[0]["approved"], false, "defaults inside the array");
    assert_eq!(pick("next_page_token", true), "n", "a scalar field");
    assert_eq!(
        pick("next_page_token", false),
        "n",
        "found under its camelCase name too"
    );
}

#[test]
fn a_field_named_twice_is_refused_under_either_of_its_names() {
    let pool = super::reply_json::everything_pool();
    let everything = |body: &str| {
        let desc = pool
            .get_message_by_name("test.v1.Everything")
            .expect("message");
        json::read_message(desc, None, body.as_bytes(), &DeserializeOptions::new())
            .map(drop)
            .map_err(|e| e.to_string())
    };
    for (description, body) in [
        ("the same key", r#"{"hours": 1, "hours": 2}"#),
        ("JSON and proto name", r#"{"userId": "a", "user_id": "b"}"#),
    ] {
        let err = read(TIMESHEET, body).expect_err(description);
        assert!(err.contains("more than once"), "{description}: {err}");
    }
    for (description, body) in [
        (
            "in a nested message",
            r#"{"child": {"oneString": "a", "one_string": "b"}}"#,
        ),
        (
            "in a list of messages",
            r#"{"children": [{}, {"oneBool": true, "oneBool": false}]}"#,
        ),
        ("a map key", r#"{"labels": {"a": "1", "b": "2", "a": "3"}}"#),
    ] {
        let err = everything(body).expect_err(description);
        assert!(err.contains("more than once"), "{description}: {err}");
    }
    // Distinct fields, equal keys in different objects, equal map values and
    // a well-known type's own form are all fine.
    for body in [
        r#"{"oneString": "a", "child": {"oneString": "b", "child": {"oneString": "c"}}}"#,
        r#"{"children": [{"oneBool": true}, {"oneBool": false}]}"#,
        r#"{"labels": {"a": "1", "b": "1"}, "at": "2026-11-27T00:00:00Z"}"#,
    ] {
        everything(body).unwrap_or_else(|e| panic!("{body}: {e}"));
    }
    // An unknown key named twice is the unknown-field error, as named once.
    let err = everything(r#"{"colour": 1, "colour": 2}"#).expect_err("unknown field");
    assert!(
        err.contains("colour") && !err.contains("more than once"),
        "{err}"
    );
}

#[test]
fn integer_map_keys_are_one_key_whatever_their_spelling() {
    let pool = super::pool_with(
        r#"{
            "name": "test/v1/counts.proto",
            "package": "test.v1",
            "syntax": "proto3",
            "messageType": [{
                "name": "Counts",
                "field": [{"name": "by_id", "number": 1, "label": "LABEL_REPEATED",
                           "type": "TYPE_MESSAGE", "typeName": ".test.v1.Counts.ByIdEntry"}],
                "nestedType": [{"name": "ByIdEntry", "options": {"mapEntry": true}, "field": [
                    {"name": "key", "number": 1, "label": "LABEL_OPTIONAL", "type": "TYPE_INT32"},
                    {"name": "value", "number": 2, "label": "LABEL_OPTIONAL", "type": "TYPE_STRING"}
                ]}]
            }]
        }"#,
    );
    let counts = |body: &str| {
        let desc = pool.get_message_by_name("test.v1.Counts").expect("message");
        json::read_message(desc, None, body.as_bytes(), &DeserializeOptions::new())
            .map(drop)
            .map_err(|e| e.to_string())
    };
    counts(r#"{"byId": {"1": "a", "2": "b"}}"#).expect("distinct keys");
    for body in [
        r#"{"byId": {"1": "a", "1": "b"}}"#,
        r#"{"byId": {"1": "a", "01": "b"}}"#,
    ] {
        let err = counts(body).expect_err(body);
        assert!(err.contains("more than once"), "{body}: {err}");
    }
}
